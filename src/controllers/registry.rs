//! The one list of the kinds Navigator reconciles ([`kinds!`] at the end of this file). From it come the
//! caches reconciles read ([`Stores`]), the channels that wake a kind ([`Wakers`]), the CRD check at start,
//! the per-kind gauges, and the start of every controller. What is particular to a kind's wiring (what a
//! change of one of its objects wakes, what else its controller watches) is its [`Kind`] implementation,
//! in its own file.

use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use kube::api::{Api, ListParams};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::watcher;
use kube::{CustomResourceExt, Resource, ResourceExt};

use crate::api::{
    AccessGrant, CloudEndpoint, CloudServiceSubscription, CommitmentContract, CustomerOrg, Invoice, ProviderOrg,
    SupportRequest, TenantClaim,
};
use crate::controllers::business_metrics::{self, Snapshot};
use crate::runtime::context::Context;
use crate::runtime::metrics::ScrapeGauges;
use crate::runtime::reconciler::Managed;
use crate::runtime::server;
use crate::runtime::watch::{controller, drive_debounced};

/// How a kind joins the operator, beyond what it does ([`Managed`]). The defaults fit a kind whose objects
/// wake nobody and whose controller watches only its own objects.
pub trait Kind: Managed {
    /// Wakes the objects that wait on `obj`, which just changed (see [`super::wake`]).
    fn changed(_wakers: &Wakers, _stores: &Stores, _obj: &Self) {}

    /// How long the triggers for one object must stop before it is reconciled: none by default; longer for
    /// a kind whose reconcile reads much and which a burst of changes elsewhere wakes many times over.
    const DEBOUNCE: Duration = Duration::ZERO;

    /// Starts this kind's controllers: the watch feeding `writer`, reconciling what changed and what
    /// `woken` names.
    fn start(
        wiring: &mut Wiring,
        writer: Writer<Self>,
        woken: UnboundedReceiver<ObjectRef<Self>>,
    ) -> Vec<BoxFuture<'static, ()>> {
        let controller = wiring.controller(writer).reconcile_on(woken);
        vec![drive_debounced(controller, wiring.ctx.clone(), Self::DEBOUNCE)]
    }
}

/// What starting the controllers shares.
pub struct Wiring {
    pub client: kube::Client,
    /// The watch settings of Navigator's kinds (the `--selector`).
    pub config: watcher::Config,
    pub ctx: Arc<Context>,
    pub wakers: Wakers,
    /// The writers of the [`Children`] caches, each taken by the kind whose controller watches them.
    pub children: ChildWriters,
}

impl Wiring {
    /// The hook a kind's watch calls on every object it caches: [`Kind::changed`].
    pub fn on_change<K: Kind>(&self) -> impl Fn(&K) + Send + 'static {
        let (wakers, stores) = (self.wakers.clone(), self.ctx.stores.clone());
        move |obj| K::changed(&wakers, &stores, obj)
    }

    /// The controller of kind `K` over the watch feeding `writer`, calling [`Kind::changed`] on every object.
    pub fn controller<K: Kind>(&self, writer: Writer<K>) -> kube::runtime::Controller<K> {
        controller(
            &self.client,
            &self.config,
            writer,
            &self.ctx.recorder,
            self.on_change::<K>(),
        )
    }
}

/// Caches of what Navigator writes for its kinds, each fed by a watch of the label only Navigator sets on
/// them, so a reconcile compares with the cache instead of reading live, and a child deleted or edited by
/// someone else wakes its owner. Namespaces are cached as metadata only: only labels matter.
#[derive(Clone)]
pub struct Children {
    pub provider_namespaces: Store<PartialObjectMeta<Namespace>>,
    pub customer_namespaces: Store<PartialObjectMeta<Namespace>>,
    /// The RoleBindings of ProviderOrg administrators.
    pub administrator_bindings: Store<RoleBinding>,
    pub grant_bindings: Store<RoleBinding>,
    /// AccessGrant directory entries: a ClusterRole and a ClusterRoleBinding per grant.
    pub grant_roles: Store<ClusterRole>,
    pub grant_role_bindings: Store<ClusterRoleBinding>,
}

/// The writers behind [`Children`], taken by the controller that watches each.
pub struct ChildWriters {
    pub provider_namespaces: Option<Writer<PartialObjectMeta<Namespace>>>,
    pub customer_namespaces: Option<Writer<PartialObjectMeta<Namespace>>>,
    pub administrator_bindings: Option<Writer<RoleBinding>>,
    pub grant_bindings: Option<Writer<RoleBinding>>,
    pub grant_roles: Option<Writer<ClusterRole>>,
    pub grant_role_bindings: Option<Writer<ClusterRoleBinding>>,
}

fn children() -> (Children, ChildWriters) {
    let (provider_namespaces, provider_namespaces_writer) = reflector::store();
    let (customer_namespaces, customer_namespaces_writer) = reflector::store();
    let (administrator_bindings, administrator_bindings_writer) = reflector::store();
    let (grant_bindings, grant_bindings_writer) = reflector::store();
    let (grant_roles, grant_roles_writer) = reflector::store();
    let (grant_role_bindings, grant_role_bindings_writer) = reflector::store();
    (
        Children {
            provider_namespaces,
            customer_namespaces,
            administrator_bindings,
            grant_bindings,
            grant_roles,
            grant_role_bindings,
        },
        ChildWriters {
            provider_namespaces: Some(provider_namespaces_writer),
            customer_namespaces: Some(customer_namespaces_writer),
            administrator_bindings: Some(administrator_bindings_writer),
            grant_bindings: Some(grant_bindings_writer),
            grant_roles: Some(grant_roles_writer),
            grant_role_bindings: Some(grant_role_bindings_writer),
        },
    )
}

/// Fails with a clear message when the CRD of `K` is not installed (one cheap list).
async fn check_crd<K>(client: &kube::Client) -> anyhow::Result<()>
where
    K: Resource<DynamicType = ()> + CustomResourceExt + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match Api::<K>::all(client.clone())
        .list_metadata(&ListParams::default().limit(1))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => anyhow::bail!(
            "the CustomResourceDefinition {} is not installed; install the CRDs first (kubectl apply -f crds/, or the Helm chart)",
            K::crd_name()
        ),
        Err(error) => Err(anyhow::anyhow!("cannot list {}: {error}", K::crd_name())),
    }
}

/// Lists the kinds once and generates what every kind needs from that list.
macro_rules! kinds {
    (reconciled: $($kind:ident => $field:ident),* $(,)?; written: $($other:ident),* $(,)?) => {
        /// Read-only caches of the kinds reconciles look up, fed by the controllers' own watches, so
        /// resolving a reference costs no request to the API server.
        #[derive(Clone)]
        pub struct Stores {
            $(pub $field: Store<$kind>,)*
            pub children: Children,
        }

        /// Where to send the objects of each kind to reconcile now.
        #[derive(Clone)]
        pub struct Wakers {
            $(pub $field: UnboundedSender<ObjectRef<$kind>>,)*
        }

        /// The writers behind [`Stores`] and the receiving ends of the [`Wakers`], one per kind.
        pub struct Feeds {
            $($field: (Writer<$kind>, UnboundedReceiver<ObjectRef<$kind>>),)*
            children: ChildWriters,
        }

        /// Every cache (empty until the watches list) and wake channel.
        pub fn caches() -> (Stores, Wakers, Feeds) {
            $(let $field = (reflector::store::<$kind>(), futures::channel::mpsc::unbounded());)*
            let (children, child_writers) = children();
            (
                Stores { $($field: $field.0.0.clone(),)* children },
                Wakers { $($field: $field.1.0,)* },
                Feeds { $($field: ($field.0.1, $field.1.1),)* children: child_writers },
            )
        }

        /// Checks that every Navigator CRD is installed, so a missing CRD is a clear message at start
        /// rather than a watch failing forever.
        pub async fn check_crds(client: &kube::Client) -> anyhow::Result<()> {
            $(check_crd::<$kind>(client).await?;)*
            $(check_crd::<$other>(client).await?;)*
            Ok(())
        }

        impl Stores {
            /// Sets the per-kind object gauges (Ready or not, pending) from the caches, and adds the
            /// gauges computed at each scrape: objects not Ready per reason, and the business gauges.
            pub fn record_gauges(&self, ctx: &Context, gauges: &mut ScrapeGauges) {
                let mut not_ready = Vec::new();
                $(
                    let objects = self.$field.state();
                    server::set_objects(ctx, &objects);
                    not_ready.extend(business_metrics::not_ready(
                        &$kind::kind(&()),
                        objects.iter().map(|o| server::ready_condition(o.as_ref())),
                    ));
                )*
                gauges.add("objects_not_ready", "Objects not Ready, per kind and reason", not_ready);
                business_metrics::record(gauges, &self.snapshot(ctx), ctx.clock.now());
            }
        }

        /// Starts every kind's controllers.
        pub fn start_all(
            client: kube::Client,
            config: watcher::Config,
            ctx: Arc<Context>,
            wakers: Wakers,
            feeds: Feeds,
        ) -> Vec<BoxFuture<'static, ()>> {
            let mut wiring = Wiring { client, config, ctx, wakers, children: feeds.children };
            let mut controllers = Vec::new();
            $(controllers.extend(<$kind as Kind>::start(&mut wiring, feeds.$field.0, feeds.$field.1));)*
            controllers
        }
    };
}

// Adding a kind is one line here (`reconciled:` for a kind with a controller, `written:` for one only
// Navigator writes), plus its types, its controller file with its `impl Kind`, and the chart's RBAC.
kinds! {
    reconciled:
        CloudEndpoint => endpoints,
        ProviderOrg => providers,
        CommitmentContract => contracts,
        CustomerOrg => customers,
        CloudServiceSubscription => subscriptions,
        AccessGrant => grants,
        SupportRequest => support_requests;
    written: Invoice, TenantClaim
}

impl Stores {
    /// What the business gauges are computed from.
    fn snapshot(&self, ctx: &Context) -> Snapshot {
        Snapshot {
            providers: self.providers.state(),
            contracts: self.contracts.state(),
            subscriptions: self.subscriptions.state(),
            grants: self.grants.state(),
            support_requests: self.support_requests.state(),
            endpoints: self.endpoints.state(),
            invoiced: ctx.metrics.invoiced(),
        }
    }

    pub fn endpoint(&self, name: &str) -> Option<Arc<CloudEndpoint>> {
        self.endpoints.get(&ObjectRef::new(name))
    }

    pub fn customer(&self, namespace: &str, name: &str) -> Option<Arc<CustomerOrg>> {
        self.customers.get(&ObjectRef::new(name).within(namespace))
    }

    /// The ProviderOrg whose namespace this is.
    pub fn provider_of_namespace(&self, namespace: &str) -> Option<Arc<ProviderOrg>> {
        self.providers
            .state()
            .into_iter()
            .find(|p| p.spec.namespace == namespace)
    }

    pub fn contracts_in(&self, namespace: &str) -> Vec<Arc<CommitmentContract>> {
        self.contracts
            .state()
            .into_iter()
            .filter(|c| c.namespace().as_deref() == Some(namespace))
            .collect()
    }
}
