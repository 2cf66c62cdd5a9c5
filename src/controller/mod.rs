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
pub mod part;
pub mod provider_billing;
pub mod provider_org;
pub mod quota;
pub mod reconciler;
pub mod schedule;
pub mod server;
pub mod subscription;
pub mod support_request;
pub mod tenant_claim;
pub mod usage;
pub mod wake;

use std::fmt::Debug;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, ObjectReference};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, ObjectMeta};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{CustomResourceExt, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tracing::{debug, info, warn};

use crate::api::{
    AccessGrant, CloudEndpoint, CloudServiceSubscription, CommitmentContract, CustomerOrg, ProviderOrg, SupportRequest,
};
use access_grant::GRANT_UID_LABEL;
use context::{Children, Context, Settings, Stores};
use namespaces::{CUSTOMER_ORG_LABEL, PROVIDER_ORG_LABEL};
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
    check::<crate::api::TenantClaim>(client).await?;
    Ok(())
}

/// Changes that need a reconcile: the spec (generation), deletion, and the create-pending marker; a status
/// write of our own does not wake the object again.
fn spec_key<K: Resource>(obj: &K) -> Option<u64> {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    obj.meta().generation.hash(&mut hasher);
    obj.meta().deletion_timestamp.is_some().hash(&mut hasher);
    obj.meta().finalizers.hash(&mut hasher);
    Some(hasher.finish())
}

/// What a watch can cache: Navigator's kinds and the Kubernetes objects it writes for them.
trait Cacheable: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static {}

impl<K> Cacheable for K where K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static {}

/// [`spec_key`], and the conditions other writers set (a [`part::Part`]'s): Ready summarises them, so a
/// change of one reconciles the kind again (a status write of its own still does not).
fn change_key<K: reconciler::Object>(obj: &K) -> Option<u64> {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    spec_key(obj).hash(&mut hasher);
    let conditions = obj.status().map(K::conditions).unwrap_or_default();
    for c in conditions
        .iter()
        .filter(|c| !reconciler::CONDITIONS.contains(&c.type_.as_str()))
    {
        (&c.type_, &c.status, &c.reason, &c.message).hash(&mut hasher);
    }
    Some(hasher.finish())
}

/// The controller of a [`part::Part`] of a kind, over the kind's cache: it sees the objects its kind's
/// watch sends it (`objects`), reconciling those whose spec changed, deletion aside.
fn part_controller<P: part::Part>(
    objects: futures::channel::mpsc::UnboundedReceiver<P::Kind>,
    store: reflector::Store<P::Kind>,
) -> Controller<P::Kind> {
    let changed = objects
        .map(Ok::<_, watcher::Error>)
        .predicate_filter(spec_key, Default::default());
    Controller::for_stream(changed, store)
}

/// The controller of one kind: a watch feeding the kind's shared cache ([`watched`]), reconciling what
/// changed, plus the objects with pending work whenever the watch comes back after being lost.
fn controller<K: Managed>(
    client: &kube::Client,
    config: &watcher::Config,
    writer: reflector::store::Writer<K>,
    recorder: &Recorder,
    on_change: impl Fn(&K) + Send + 'static,
) -> Controller<K> {
    let store = writer.as_reader();
    let (wake_pending, pending) = futures::channel::mpsc::unbounded();
    let events = watched(
        client,
        config,
        writer,
        recorder,
        on_change,
        move |store: &reflector::Store<K>| {
            for obj in store.state().iter().filter(|o| has_pending_work(o.as_ref())) {
                let _ = wake_pending.unbounded_send(reflector::ObjectRef::from_obj(obj.as_ref()));
            }
        },
    );
    Controller::for_stream(events, store).reconcile_on(pending)
}

/// Not Ready yet, or being deleted: work that an outage may have left waiting on a long backoff.
fn has_pending_work<K: reconciler::Object>(obj: &K) -> bool {
    obj.meta().deletion_timestamp.is_some()
        || !obj
            .status()
            .is_some_and(|s| crate::api::conditions::is_ready(K::conditions(s)))
}

/// A watch of one kind feeding its shared cache ([`cached`]); `on_change` sees every object after the cache
/// has it (to wake dependents), and only changes that need a reconcile reach the controller.
fn watched<K: Managed>(
    client: &kube::Client,
    config: &watcher::Config,
    writer: reflector::store::Writer<K>,
    recorder: &Recorder,
    on_change: impl Fn(&K) + Send + 'static,
    on_restored: impl Fn(&reflector::Store<K>) + Send + 'static,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static {
    let (client, config, cache, recorder) = (client.clone(), config.clone(), writer.as_reader(), recorder.clone());
    let events = relisting(move || tolerant_watcher(&client, &config, cache.clone(), &recorder));
    cached(K::kind(&()).to_string(), events, writer, on_restored)
        .applied_objects()
        .inspect_ok(move |obj| on_change(obj))
        .predicate_filter(change_key, Default::default())
}

/// A watch feeding one cache, of a kind Navigator reconciles or of objects it writes (`name` says which, in
/// logs and in the readiness of the caches). A lost watch (the API server restarting, say) is logged once,
/// retried within seconds, and logged again when it is back, when `on_restored` gets the cache (which kept
/// serving reconciles meanwhile).
fn cached<K: Cacheable>(
    name: String,
    events: impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    writer: reflector::store::Writer<K>,
    on_restored: impl Fn(&reflector::Store<K>) + Send + 'static,
) -> impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static {
    let store = writer.as_reader();
    server::CacheSync::global().expect(&name);
    let mut lost = false;
    events
        // managedFields are the largest part of a server-side-applied object and nothing here reads them:
        // dropping them before the cache keeps memory lean at thousands of objects.
        .modify(|obj| kube::ResourceExt::managed_fields_mut(obj).clear())
        .reflect(writer)
        .inspect(move |event| match event {
            Err(error) if !lost => {
                lost = true;
                warn!(kind = %name, %error, "watch lost; reconciling from the cache while it reconnects");
            }
            Err(error) => debug!(kind = %name, %error, "watch still reconnecting"),
            Ok(watcher::Event::InitDone) => {
                server::CacheSync::global().synced(&name);
                if std::mem::take(&mut lost) {
                    info!(kind = %name, "watch restored; looking at objects with pending work");
                    on_restored(&store);
                }
            }
            Ok(_) => {}
        })
        // Errors were logged above and the watch backs off by itself; passed on, they would also make the
        // controllers back their trigger streams off, up to 30 s.
        .filter(|event| futures::future::ready(event.is_ok()))
}

/// A watch started by `start`, started afresh (a full list) after any error, waiting
/// [`schedule::WatchBackoff`] first. kube's own watcher resumes a broken watch silently from its last
/// resourceVersion, so nothing would tell that it is back; a fresh list does (its `InitDone` event), and it
/// also brings back anything the cache missed while the watch was down. The backoff starts over only once
/// events flow again (a list's `Init` comes before its request, so it proves nothing).
fn relisting<K, S>(
    start: impl Fn() -> S + Send + 'static,
) -> impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static
where
    K: Send + 'static,
    S: futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    use kube::runtime::utils::Backoff as _;
    let start = move || start().boxed();
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

/// The watch of kind `K`, read as raw objects and parsed one by one, so that one object that no longer
/// parses (stored under an older schema, say) cannot stall the others of its kind: kube's typed watcher
/// fails the whole list on it, and retries forever. Such an object is reported, in the log and with a
/// Warning Event on it, and skipped: the cache keeps the version it last read, if any.
fn tolerant_watcher<K: Cacheable>(
    client: &kube::Client,
    config: &watcher::Config,
    cache: reflector::Store<K>,
    recorder: &Recorder,
) -> impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + use<K> {
    let resource = ApiResource::erase::<K>(&());
    let recorder = recorder.clone();
    watcher(
        Api::<DynamicObject>::all_with(client.clone(), &resource),
        config.clone(),
    )
    .try_filter_map(move |event| {
        let (event, unparsable) = typed_event(event, &cache);
        if let Some(unparsable) = unparsable {
            report_unparsable::<K>(unparsable, &recorder);
        }
        futures::future::ready(Ok(event))
    })
}

/// An object that does not parse as its kind: its metadata, and what does not fit.
#[derive(Debug)]
struct Unparsable {
    metadata: Box<ObjectMeta>,
    error: String,
}

/// Parses a raw object as `K`; the error names the field that does not fit (`spec.x: invalid type: ...`).
fn parse<K: Cacheable>(raw: DynamicObject) -> Result<K, Unparsable> {
    let DynamicObject { mut metadata, data, .. } = raw;
    // Dropped before the cache anyway (see `cached`): not worth converting.
    metadata.managed_fields = None;
    let mut object = match data {
        serde_json::Value::Object(object) => object,
        _ => serde_json::Map::new(),
    };
    object.insert("apiVersion".into(), K::api_version(&()).into());
    object.insert("kind".into(), K::kind(&()).into());
    object.insert("metadata".into(), serde_json::to_value(&metadata).unwrap_or_default());
    serde_path_to_error::deserialize(serde_json::Value::Object(object)).map_err(|error| Unparsable {
        metadata: Box::new(metadata),
        error: error.to_string(),
    })
}

/// What the cache of `K` gets for one raw watch event, and the object to report if it does not parse. Of
/// an object that does not parse, an update is skipped, a relist keeps the version the cache last read, and
/// a deletion removes that version.
fn typed_event<K: Cacheable>(
    event: watcher::Event<DynamicObject>,
    cache: &reflector::Store<K>,
) -> (Option<watcher::Event<K>>, Option<Unparsable>) {
    use watcher::Event;
    let last_read = |bad: &Unparsable| {
        let key = ObjectRef::<K>::new(bad.metadata.name.as_deref().unwrap_or_default());
        let key = match &bad.metadata.namespace {
            Some(namespace) => key.within(namespace),
            None => key,
        };
        cache.get(&key).map(|obj| obj.as_ref().clone())
    };
    match event {
        Event::Init => (Some(Event::Init), None),
        Event::InitDone => (Some(Event::InitDone), None),
        Event::Apply(raw) => match parse(raw) {
            Ok(obj) => (Some(Event::Apply(obj)), None),
            Err(bad) => (None, Some(bad)),
        },
        Event::InitApply(raw) => match parse(raw) {
            Ok(obj) => (Some(Event::InitApply(obj)), None),
            Err(bad) => (last_read(&bad).map(Event::InitApply), Some(bad)),
        },
        Event::Delete(raw) => match parse(raw) {
            Ok(obj) => (Some(Event::Delete(obj)), None),
            Err(bad) => (last_read(&bad).map(Event::Delete), None),
        },
    }
}

/// Says that an object cannot be read: a warning in the log, and a Warning Event on the object (sent in the
/// background, so the watch does not wait on it).
fn report_unparsable<K: Cacheable>(bad: Unparsable, recorder: &Recorder) {
    let kind = K::kind(&()).to_string();
    let name = bad.metadata.name.clone().unwrap_or_default();
    let object = match &bad.metadata.namespace {
        Some(namespace) => format!("{namespace}/{name}"),
        None => name.clone(),
    };
    warn!(kind = %kind, %object, error = %bad.error, "cannot read this object; skipping it until it is fixed, the others of its kind go on");
    let event = Event {
        type_: EventType::Warning,
        reason: "Unparsable".into(),
        note: Some(unparsable_note(&kind, &bad.error)),
        action: "Read".into(),
        secondary: None,
    };
    let reference = ObjectReference {
        api_version: Some(K::api_version(&()).to_string()),
        kind: Some(kind),
        name: Some(name),
        namespace: bad.metadata.namespace,
        uid: bad.metadata.uid,
        resource_version: bad.metadata.resource_version,
        ..Default::default()
    };
    let recorder = recorder.clone();
    tokio::spawn(async move {
        if let Err(error) = recorder.publish(&event, &reference).await {
            debug!(%error, "could not record the Unparsable event");
        }
    });
}

/// The note of the Unparsable Event: what does not fit, and what to do (an Event note holds at most 1 kB).
fn unparsable_note(kind: &str, error: &str) -> String {
    let mut note = format!(
        "Navigator cannot read this {kind} and skips it until it is fixed (was it stored under an older version of the CRD? re-apply it): {error}"
    );
    if note.len() > 1024 {
        let mut end = 1021;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
        note.push_str("...");
    }
    note
}

/// Objects of kind `C` that Navigator writes for one of its kinds, picked by the label selector of `events`
/// (a label only Navigator sets), cached in `writer`'s store for reconciles to compare with, and each one
/// that changes or goes handed on, for the owner's controller to map to its owner (`watches_stream`). The
/// first full list is not handed on (every owner reconciles at start anyway), and of a relist (after the
/// watch lost its place) only what changed meanwhile.
fn children<C: Cacheable>(
    name: &str,
    events: impl futures::Stream<Item = Result<watcher::Event<C>, watcher::Error>> + Send + 'static,
    writer: reflector::store::Writer<C>,
) -> impl futures::Stream<Item = Result<C, watcher::Error>> + Send + 'static {
    let store = writer.as_reader();
    let mut listed = false;
    cached(name.to_string(), events, writer, |_| {})
        .try_filter_map(move |event| futures::future::ready(Ok(touched(event, &mut listed, &store))))
}

/// The object of a watch event that [`children`] hands on, if any; `listed` says whether the first full
/// list is done, `cache` is the store the watch feeds.
fn touched<C: Cacheable>(event: watcher::Event<C>, listed: &mut bool, cache: &reflector::Store<C>) -> Option<C> {
    match event {
        watcher::Event::Apply(obj) | watcher::Event::Delete(obj) => Some(obj),
        // Until the relist is done, the cache holds what it had before.
        watcher::Event::InitApply(obj) => {
            let changed = cache
                .get(&ObjectRef::from_obj(&obj))
                .is_none_or(|cached| cached.resource_version() != obj.resource_version());
            (*listed && changed).then_some(obj)
        }
        watcher::Event::InitDone => {
            *listed = true;
            None
        }
        watcher::Event::Init => None,
    }
}

/// Wiring a controller to the objects Navigator writes for its kind.
trait WatchesChildren<K: Managed> {
    /// Reconciles the owner (found by `owner` from a child's labels or annotations) of each child of kind `C`
    /// that changes or goes, watched by `events` into `writer`'s cache (see [`children`]).
    fn watches_children<C: Cacheable>(
        self,
        name: &str,
        events: impl futures::Stream<Item = Result<watcher::Event<C>, watcher::Error>> + Send + 'static,
        writer: reflector::store::Writer<C>,
        owner: fn(&ObjectMeta) -> Option<ObjectRef<K>>,
    ) -> Self;
}

impl<K: Managed> WatchesChildren<K> for Controller<K> {
    fn watches_children<C: Cacheable>(
        self,
        name: &str,
        events: impl futures::Stream<Item = Result<watcher::Event<C>, watcher::Error>> + Send + 'static,
        writer: reflector::store::Writer<C>,
        owner: fn(&ObjectMeta) -> Option<ObjectRef<K>>,
    ) -> Self {
        self.watches_stream(children(name, events, writer), move |child: C| owner(child.meta()))
    }
}

/// Watch settings for the objects carrying label `key` (Navigator's own label on what it writes).
fn labelled(key: &str) -> watcher::Config {
    watcher::Config::default().any_semantic().labels(key)
}

/// The whole objects of kind `C` carrying label `key`, for the cache behind `writer`.
fn whole<C: Cacheable>(
    client: &kube::Client,
    key: &str,
    writer: &reflector::store::Writer<C>,
    recorder: &Recorder,
) -> impl futures::Stream<Item = Result<watcher::Event<C>, watcher::Error>> + Send + use<C> {
    let (client, config, cache, recorder) = (client.clone(), labelled(key), writer.as_reader(), recorder.clone());
    relisting(move || tolerant_watcher(&client, &config, cache.clone(), &recorder))
}

/// The namespaces carrying label `key`, metadata only: their labels are all a reconcile compares.
fn namespace_metadata(
    client: &kube::Client,
    key: &str,
) -> impl futures::Stream<Item = Result<watcher::Event<PartialObjectMeta<Namespace>>, watcher::Error>> + Send + use<> {
    let (client, config) = (client.clone(), labelled(key));
    relisting(move || watcher(Api::<PartialObjectMeta<Namespace>>::all(client.clone()), config.clone()))
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
    run_controller(controller, reconcile::<K>, error_policy::<K>, ctx)
}

fn drive_part<P: part::Part>(
    controller: Controller<P::Kind>,
    ctx: Arc<Context>,
) -> futures::future::BoxFuture<'static, ()> {
    run_controller(controller, part::reconcile::<P>, part::error_policy::<P>, ctx)
}

fn run_controller<K, Fut>(
    controller: Controller<K>,
    reconcile: fn(Arc<K>, Arc<Context>) -> Fut,
    error_policy: fn(Arc<K>, &error::Error, Arc<Context>) -> kube::runtime::controller::Action,
    ctx: Arc<Context>,
) -> futures::future::BoxFuture<'static, ()>
where
    K: reconciler::Object,
    Fut: std::future::Future<Output = Result<kube::runtime::controller::Action, error::Error>> + Send + 'static,
{
    let config = ControllerConfig::default().concurrency(ctx.settings.concurrency);
    controller
        .with_config(config)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::rbac::v1::RoleBinding;
    use serde_json::json;
    use watcher::Event as E;

    fn raw_customer(display_name: serde_json::Value) -> DynamicObject {
        serde_json::from_value(json!({
            "metadata": {"name": "globex", "namespace": "acme", "resourceVersion": "7",
                         "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
            "spec": {"displayName": display_name, "tenantName": "globex", "endpointRef": {"name": "sim"}}
        }))
        .unwrap()
    }

    #[test]
    fn a_raw_object_parses_without_type_fields_and_without_managed_fields() {
        let customer: CustomerOrg = parse(raw_customer(json!("Globex"))).unwrap();
        assert_eq!(customer.spec.display_name, "Globex");
        assert!(customer.metadata.managed_fields.is_none());
    }

    #[test]
    fn an_object_that_no_longer_parses_is_reported_and_the_cache_keeps_what_it_last_read() {
        let (cache, mut writer) = reflector::store::<CustomerOrg>();
        let (event, report) = typed_event::<CustomerOrg>(E::Apply(raw_customer(json!("Globex"))), &cache);
        assert!(report.is_none());
        writer.apply_watcher_event(&event.unwrap());

        let (event, report) = typed_event::<CustomerOrg>(E::Apply(raw_customer(json!(42))), &cache);
        assert!(event.is_none(), "an update that does not parse is skipped");
        let report = report.expect("and reported");
        assert_eq!(report.metadata.name.as_deref(), Some("globex"));
        assert!(
            report.error.starts_with("spec.displayName: invalid type: integer `42`"),
            "the error names the field: {}",
            report.error
        );

        let (event, report) = typed_event::<CustomerOrg>(E::InitApply(raw_customer(json!(42))), &cache);
        assert!(report.is_some(), "reported again when listed again");
        match event {
            Some(E::InitApply(kept)) => assert_eq!(kept.spec.display_name, "Globex", "a relist keeps what was read"),
            _ => panic!("a relist keeps the version last read"),
        }
        let (event, report) = typed_event::<CustomerOrg>(E::Delete(raw_customer(json!(42))), &cache);
        assert!(report.is_none(), "nothing to report about an object that went");
        assert!(matches!(event, Some(E::Delete(_))), "a deletion removes what was read");
        writer.apply_watcher_event(&event.unwrap());
        assert!(cache.is_empty());

        let (event, report) = typed_event::<CustomerOrg>(E::InitApply(raw_customer(json!(42))), &cache);
        assert!(event.is_none() && report.is_some(), "never read: skipped");
    }

    #[test]
    fn the_note_of_the_unparsable_event_fits_in_an_event() {
        let note = unparsable_note("CustomerOrg", &"é".repeat(2000));
        assert!(note.len() <= 1024 && note.ends_with("..."), "{}", note.len());
        assert!(unparsable_note("CustomerOrg", "spec.x: bad").ends_with("spec.x: bad"));
    }

    #[test]
    fn children_are_handed_on_when_they_change_after_the_first_list_and_in_a_relist_only_if_changed() {
        let (cache, mut writer) = reflector::store::<RoleBinding>();
        let binding = |rv: &str| {
            let mut binding = RoleBinding::default();
            binding.metadata.name = Some("navigator-grant-g".into());
            binding.metadata.namespace = Some("acme".into());
            binding.metadata.resource_version = Some(rv.into());
            binding
        };
        let mut listed = false;
        let mut feed = |event: E<RoleBinding>, listed: &mut bool| {
            writer.apply_watcher_event(&event);
            touched(event, listed, &cache).is_some()
        };
        assert!(!feed(E::Init, &mut listed));
        assert!(
            !feed(E::InitApply(binding("1")), &mut listed),
            "every owner reconciles at start anyway"
        );
        assert!(!feed(E::InitDone, &mut listed));
        assert!(feed(E::Apply(binding("2")), &mut listed), "edited");
        assert!(feed(E::Delete(binding("2")), &mut listed), "deleted");
        assert!(feed(E::Apply(binding("3")), &mut listed), "made again");
        // A relist after the watch lost its place: only what changed meanwhile.
        assert!(!feed(E::Init, &mut listed));
        assert!(!feed(E::InitApply(binding("3")), &mut listed), "unchanged");
        assert!(!feed(E::InitDone, &mut listed));
        assert!(!feed(E::Init, &mut listed));
        assert!(
            feed(E::InitApply(binding("4")), &mut listed),
            "changed while the watch was away"
        );
    }
}
