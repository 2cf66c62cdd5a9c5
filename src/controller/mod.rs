//! The controllers: one generic reconciler ([`reconciler`]) driving every kind, wired up by [`run`].
//!
//! Each kind's file holds only what is particular to it (what `apply` and `cleanup` do); conditions,
//! finalizers, status writes, events, requeues and backoff are the reconciler's, the same for all.

pub mod access_grant;
pub mod billing_views;
pub mod clock;
pub mod cloud_endpoint;
pub mod commitment_contract;
pub mod conditions;
pub mod context;
pub mod create_protocol;
pub mod customer_org;
pub mod entitlement;
pub mod error;
pub mod invoicing;
pub mod leader;
pub mod metrics;
pub mod namespaces;
pub mod provider_org;
pub mod quota;
pub mod reconciler;
pub mod schedule;
pub mod server;
pub mod subscription;
pub mod support_request;
pub mod wake;

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use futures::{FutureExt, StreamExt, TryStreamExt};
use kube::api::{Api, ListParams};
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::reflector;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{CustomResourceExt, Resource};
use tracing::{debug, info, warn};

use crate::api::{
    AccessGrant, CloudEndpoint, CloudServiceSubscription, CommitmentContract, CustomerOrg, ProviderOrg, SupportRequest,
};
use context::{Context, Settings, Stores};
use reconciler::{Managed, error_policy, reconcile};

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
    Ok(())
}

/// Reconciles on changes that matter: the spec (generation), deletion, and the create-pending marker; a
/// status write of our own does not wake the object again.
fn change_key<K: Resource>(obj: &K) -> Option<u64> {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    obj.meta().generation.hash(&mut hasher);
    obj.meta().deletion_timestamp.is_some().hash(&mut hasher);
    obj.meta().finalizers.hash(&mut hasher);
    Some(hasher.finish())
}

/// The controller of one kind: a watch feeding the kind's shared cache ([`watched`]), reconciling what
/// changed, plus the objects with pending work whenever the watch comes back after being lost.
fn controller<K: Managed>(
    client: &kube::Client,
    config: &watcher::Config,
    writer: reflector::store::Writer<K>,
    on_change: impl Fn(&K) + Send + 'static,
) -> Controller<K> {
    let store = writer.as_reader();
    let (wake_pending, pending) = futures::channel::mpsc::unbounded();
    let events = watched(client, config, writer, on_change, move |store: &reflector::Store<K>| {
        for obj in store.state().iter().filter(|o| has_pending_work(o.as_ref())) {
            let _ = wake_pending.unbounded_send(reflector::ObjectRef::from_obj(obj.as_ref()));
        }
    });
    Controller::for_stream(events, store).reconcile_on(pending)
}

/// Not Ready yet, or being deleted: work that an outage may have left waiting on a long backoff.
fn has_pending_work<K: reconciler::Object>(obj: &K) -> bool {
    obj.meta().deletion_timestamp.is_some()
        || !obj
            .status()
            .is_some_and(|s| crate::api::conditions::is_ready(K::conditions(s)))
}

/// A watch of one kind feeding its shared cache; `on_change` sees every object after the cache has it
/// (to wake dependents), and only changes that need a reconcile reach the controller. A lost watch (the
/// API server restarting, say) is logged once, retried within seconds, and logged again when it is back,
/// when `on_restored` gets the cache (which kept serving reconciles meanwhile).
fn watched<K: Managed>(
    client: &kube::Client,
    config: &watcher::Config,
    writer: reflector::store::Writer<K>,
    on_change: impl Fn(&K) + Send + 'static,
    on_restored: impl Fn(&reflector::Store<K>) + Send + 'static,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static {
    let kind = K::kind(&()).to_string();
    let store = writer.as_reader();
    server::CacheSync::global().expect(&kind);
    let mut lost = false;
    relisting_watcher(Api::<K>::all(client.clone()), config.clone())
        // managedFields are the largest part of a server-side-applied object and nothing here reads them:
        // dropping them before the cache keeps memory lean at thousands of objects.
        .modify(|obj| kube::ResourceExt::managed_fields_mut(obj).clear())
        .reflect(writer)
        .inspect(move |event| match event {
            Err(error) if !lost => {
                lost = true;
                warn!(kind = %kind, %error, "watch lost; reconciling from the cache while it reconnects");
            }
            Err(error) => debug!(kind = %kind, %error, "watch still reconnecting"),
            Ok(watcher::Event::InitDone) => {
                server::CacheSync::global().synced(&kind);
                if std::mem::take(&mut lost) {
                    info!(kind = %kind, "watch restored; looking at objects with pending work");
                    on_restored(&store);
                }
            }
            Ok(_) => {}
        })
        .applied_objects()
        .inspect_ok(move |obj| on_change(obj))
        .predicate_filter(change_key, Default::default())
        // Errors were logged above and the watch backs off by itself; passed on, they would also make the
        // controller back its trigger stream off, up to 30 s.
        .filter(|item| futures::future::ready(item.is_ok()))
}

/// kube's watcher, started afresh (a full list) after any error, waiting [`schedule::WatchBackoff`]
/// first. kube's own watcher resumes a broken watch silently from its last resourceVersion, so nothing
/// would tell that it is back; a fresh list does (its `InitDone` event), and it also brings back anything
/// the cache missed while the watch was down. The backoff starts over only once events flow again (a
/// list's `Init` comes before its request, so it proves nothing).
fn relisting_watcher<K: Managed>(
    api: Api<K>,
    config: watcher::Config,
) -> impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static {
    use kube::runtime::utils::Backoff as _;
    let start = move || watcher(api.clone(), config.clone()).boxed();
    let state = (start(), start, schedule::WatchBackoff::default(), None);
    futures::stream::unfold(state, |(mut current, start, mut backoff, wait)| async move {
        if let Some(wait) = wait {
            tokio::time::sleep(wait).await;
            current = start();
        }
        loop {
            match current.next().await {
                Some(Ok(event)) => {
                    if !matches!(event, watcher::Event::Init) {
                        backoff.reset();
                    }
                    return Some((Ok(event), (current, start, backoff, None)));
                }
                Some(Err(error)) => {
                    let wait = backoff.next();
                    return Some((Err(error), (current, start, backoff, wait)));
                }
                // kube's watcher never ends; if it did, a fresh one lists again.
                None => current = start(),
            }
        }
    })
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

fn drive<K: Managed>(controller: Controller<K>, ctx: Arc<Context>) -> futures::future::BoxFuture<'static, ()> {
    let config = ControllerConfig::default().concurrency(ctx.settings.concurrency);
    controller
        .with_config(config)
        .shutdown_on_signal()
        .run(reconcile::<K>, error_policy::<K>, ctx)
        .for_each(|_| futures::future::ready(()))
        .boxed()
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
    let stores = Stores {
        endpoints: endpoints.clone(),
        providers: providers.clone(),
        contracts: contracts.clone(),
        customers: customers.clone(),
        subscriptions: subscriptions.clone(),
        grants: grants.clone(),
        support_requests: support_requests.clone(),
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

    let endpoint_controller = controller(
        &client,
        &config,
        endpoints_writer,
        wake_on(&wakers, &stores, wake::Wakers::endpoint_changed),
    );
    let provider_controller = controller(
        &client,
        &config,
        providers_writer,
        wake_on(&wakers, &stores, wake::Wakers::provider_changed),
    );
    let contract_controller = controller(
        &client,
        &config,
        contracts_writer,
        wake_on(&wakers, &stores, wake::Wakers::contract_changed),
    );
    let customer_controller = controller(
        &client,
        &config,
        customers_writer,
        wake_on(&wakers, &stores, wake::Wakers::customer_changed),
    );
    let subscription_controller = controller(
        &client,
        &config,
        subscriptions_writer,
        |_: &CloudServiceSubscription| {},
    );
    let grant_controller = controller(&client, &config, grants_writer, |_: &AccessGrant| {});
    let support_request_controller = controller(&client, &config, support_requests_writer, |_: &SupportRequest| {});

    let metrics = Arc::new(metrics::Metrics::default());
    let ctx = Arc::new(Context::new(
        client.clone(),
        options.settings.clone(),
        Arc::new(clock::SystemClock),
        stores,
        metrics,
    ));

    let leadership = Arc::new(leader::Leadership::new(ctx.metrics.leader.clone()));
    let server = server::serve(options.listen, ctx.clone(), leadership.clone());
    info!(listen = %options.listen, "navigator controllers starting");
    let controllers = futures::future::join_all([
        drive(endpoint_controller, ctx.clone()),
        drive(provider_controller.reconcile_on(providers_to_wake), ctx.clone()),
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
