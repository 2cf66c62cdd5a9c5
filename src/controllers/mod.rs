//! One file per kind, holding only what is particular to it (what its `apply` and `cleanup` do, and what
//! wakes it), and [`run`], which wires every kind onto the generic runtime ([`crate::runtime`]):
//! conditions, finalizers, status writes, events, requeues, backoff and watches are the runtime's, the same
//! for all.

pub mod access_grant;
pub mod cloud_endpoint;
pub mod commitment_contract;
pub mod customer_org;
pub mod entitlement;
pub mod namespaces;
pub mod provider_billing;
pub mod provider_org;
pub mod quota;
pub mod subscription;
pub mod support_request;
pub mod tenant_claim;
pub mod wake;

use std::fmt::Debug;
use std::sync::Arc;

use kube::api::{Api, ListParams};
use kube::runtime::reflector;
use kube::runtime::watcher;
use kube::{CustomResourceExt, Resource};
use tracing::info;

use self::access_grant::GRANT_UID_LABEL;
use self::namespaces::{CUSTOMER_ORG_LABEL, PROVIDER_ORG_LABEL};
use crate::api::{
    AccessGrant, CloudEndpoint, CloudServiceSubscription, CommitmentContract, CustomerOrg, ProviderOrg, SupportRequest,
};
use crate::runtime::context::{Children, Context, Settings, Stores};
use crate::runtime::watch::{
    WatchesChildren, controller, drive, drive_part, namespace_metadata, part_controller, whole,
};
use crate::runtime::{clock, leader, metrics, server};

/// Where `navigator run` listens and how it paces itself.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub listen: std::net::SocketAddr,
    pub settings: Settings,
    /// Only objects whose labels match this selector are seen (for sharding, or instances side by side).
    pub selector: Option<String>,
    /// Reconcile only while holding this Lease (several replicas, one leader); always when `None`.
    pub leader_election: Option<leader::LeaderElection>,
}

/// Checks that every Navigator CRD is installed, with one cheap list per kind, so a missing CRD is a clear
/// message at start rather than a watch failing forever.
pub async fn check_crds(client: &kube::Client) -> anyhow::Result<()> {
    async fn check<K>(client: &kube::Client) -> anyhow::Result<()>
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
    check::<CloudEndpoint>(client).await?;
    check::<ProviderOrg>(client).await?;
    check::<CommitmentContract>(client).await?;
    check::<CustomerOrg>(client).await?;
    check::<CloudServiceSubscription>(client).await?;
    check::<AccessGrant>(client).await?;
    check::<SupportRequest>(client).await?;
    check::<crate::api::Invoice>(client).await?;
    check::<crate::api::TenantClaim>(client).await?;
    Ok(())
}

/// A change hook calling one of the [`wake::Wakers`] methods.
fn wake_on<K: 'static>(
    wakers: &wake::Wakers,
    stores: &Stores,
    wake: fn(&wake::Wakers, &Stores, &K),
) -> impl Fn(&K) + Send + 'static {
    let (wakers, stores) = (wakers.clone(), stores.clone());
    move |obj| wake(&wakers, &stores, obj)
}

/// Runs every controller and the health and metrics server until a shutdown signal.
pub async fn run(client: kube::Client, options: RunOptions) -> anyhow::Result<()> {
    check_crds(&client).await?;
    let mut config = watcher::Config::default().any_semantic();
    if let Some(selector) = &options.selector {
        config = config.labels(selector);
    }
    let (endpoints, endpoints_writer) = reflector::store::<CloudEndpoint>();
    let (providers, providers_writer) = reflector::store::<ProviderOrg>();
    let (contracts, contracts_writer) = reflector::store::<CommitmentContract>();
    let (customers, customers_writer) = reflector::store::<CustomerOrg>();
    let (subscriptions, subscriptions_writer) = reflector::store::<CloudServiceSubscription>();
    let (grants, grants_writer) = reflector::store::<AccessGrant>();
    let (support_requests, support_requests_writer) = reflector::store::<SupportRequest>();
    let (provider_namespaces, provider_namespaces_writer) = reflector::store();
    let (customer_namespaces, customer_namespaces_writer) = reflector::store();
    let (administrator_bindings, administrator_bindings_writer) = reflector::store();
    let (grant_bindings, grant_bindings_writer) = reflector::store();
    let (grant_roles, grant_roles_writer) = reflector::store();
    let (grant_role_bindings, grant_role_bindings_writer) = reflector::store();
    let stores = Stores {
        endpoints: endpoints.clone(),
        providers: providers.clone(),
        contracts: contracts.clone(),
        customers: customers.clone(),
        subscriptions: subscriptions.clone(),
        grants: grants.clone(),
        support_requests: support_requests.clone(),
        children: Children {
            provider_namespaces,
            customer_namespaces,
            administrator_bindings,
            grant_bindings,
            grant_roles,
            grant_role_bindings,
        },
    };
    let (wake_customers, customers_to_wake) = futures::channel::mpsc::unbounded();
    let (wake_subscriptions, subscriptions_to_wake) = futures::channel::mpsc::unbounded();
    let (wake_grants, grants_to_wake) = futures::channel::mpsc::unbounded();
    let (wake_support_requests, support_requests_to_wake) = futures::channel::mpsc::unbounded();
    let (wake_providers, providers_to_wake) = futures::channel::mpsc::unbounded();
    let (wake_contracts, contracts_to_wake) = futures::channel::mpsc::unbounded();
    let wakers = wake::Wakers {
        customers: wake_customers,
        subscriptions: wake_subscriptions,
        grants: wake_grants,
        support_requests: wake_support_requests,
        providers: wake_providers,
        contracts: wake_contracts,
    };
    let metrics = Arc::new(metrics::Metrics::default());
    let ctx = Arc::new(Context::new(
        client.clone(),
        options.settings.clone(),
        Arc::new(clock::SystemClock),
        stores.clone(),
        metrics,
    ));
    let recorder = &ctx.recorder;

    let endpoint_controller = controller(
        &client,
        &config,
        endpoints_writer,
        recorder,
        wake_on(&wakers, &stores, wake::Wakers::endpoint_changed),
    );
    // What Navigator writes for providers, customers and grants is watched by the labels it puts on them
    // (metadata only for namespaces), so one deleted or edited by someone else is repaired at once.
    // Billing is a second controller over the ProviderOrg cache, fed by the same watch.
    let (to_billing, providers_to_bill) = futures::channel::mpsc::unbounded();
    let wake_provider_dependents = wake_on(&wakers, &stores, wake::Wakers::provider_changed);
    let provider_controller = controller(
        &client,
        &config,
        providers_writer,
        recorder,
        move |provider: &ProviderOrg| {
            wake_provider_dependents(provider);
            let _ = to_billing.unbounded_send(provider.clone());
        },
    )
    .watches_children(
        "ProviderOrg namespaces",
        namespace_metadata(&client, PROVIDER_ORG_LABEL),
        provider_namespaces_writer,
        namespaces::provider_owner,
    )
    .watches_children(
        "ProviderOrg RoleBindings",
        whole(&client, PROVIDER_ORG_LABEL, &administrator_bindings_writer, recorder),
        administrator_bindings_writer,
        namespaces::provider_owner,
    );
    let billing_controller = part_controller::<provider_billing::ProviderBilling>(providers_to_bill, providers.clone());
    let contract_controller = controller(
        &client,
        &config,
        contracts_writer,
        recorder,
        wake_on(&wakers, &stores, wake::Wakers::contract_changed),
    );
    let customer_controller = controller(
        &client,
        &config,
        customers_writer,
        recorder,
        wake_on(&wakers, &stores, wake::Wakers::customer_changed),
    )
    .watches_children(
        "CustomerOrg namespaces",
        namespace_metadata(&client, CUSTOMER_ORG_LABEL),
        customer_namespaces_writer,
        namespaces::customer_owner,
    );
    let subscription_controller = controller(
        &client,
        &config,
        subscriptions_writer,
        recorder,
        |_: &CloudServiceSubscription| {},
    );
    let grant_controller = controller(&client, &config, grants_writer, recorder, |_: &AccessGrant| {})
        .watches_children(
            "AccessGrant RoleBindings",
            whole(&client, GRANT_UID_LABEL, &grant_bindings_writer, recorder),
            grant_bindings_writer,
            access_grant::grant_owner,
        )
        .watches_children(
            "AccessGrant ClusterRoles",
            whole(&client, GRANT_UID_LABEL, &grant_roles_writer, recorder),
            grant_roles_writer,
            access_grant::grant_owner,
        )
        .watches_children(
            "AccessGrant ClusterRoleBindings",
            whole(&client, GRANT_UID_LABEL, &grant_role_bindings_writer, recorder),
            grant_role_bindings_writer,
            access_grant::grant_owner,
        );
    let support_request_controller = controller(
        &client,
        &config,
        support_requests_writer,
        recorder,
        |_: &SupportRequest| {},
    );

    let leadership = Arc::new(leader::Leadership::new(ctx.metrics.leader.clone()));
    let server = server::serve(options.listen, ctx.clone(), leadership.clone());
    info!(listen = %options.listen, "navigator controllers starting");
    let controllers = futures::future::join_all([
        drive(endpoint_controller, ctx.clone()),
        drive(provider_controller, ctx.clone()),
        // Providers are woken for billing only (a customer became Ready: its invoice may be due).
        drive_part::<provider_billing::ProviderBilling>(
            billing_controller.reconcile_on(providers_to_wake),
            ctx.clone(),
        ),
        drive(contract_controller.reconcile_on(contracts_to_wake), ctx.clone()),
        drive(customer_controller.reconcile_on(customers_to_wake), ctx.clone()),
        drive(subscription_controller.reconcile_on(subscriptions_to_wake), ctx.clone()),
        drive(grant_controller.reconcile_on(grants_to_wake), ctx.clone()),
        drive(
            support_request_controller.reconcile_on(support_requests_to_wake),
            ctx.clone(),
        ),
    ]);
    // The watches and controllers run only while this instance leads (always, without leader election);
    // nothing above has touched the API server beyond the CRD check.
    let work = async {
        controllers.await;
        info!("controllers stopped");
    };
    tokio::select! {
        result = leadership.run_while_leading(client.clone(), options.leader_election.as_ref(), work) => result?,
        result = server => result?,
    }
    Ok(())
}
