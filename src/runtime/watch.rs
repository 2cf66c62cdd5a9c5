//! Watches and controllers, the same for every kind: a watch feeding a shared cache that parses objects one
//! by one (one that no longer parses is reported and skipped), re-lists after an error with its own short
//! backoff, and logs when it is lost and when it is back; the controller of a kind, reconciling what
//! changed and, after an outage, what had work pending; the controller of a [`part::Part`] of a kind; and
//! watches of the objects Navigator writes for a kind, handed to the owner's controller.

use std::fmt::Debug;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, ObjectReference};
use kube::api::{Api, ApiResource, DynamicObject, ObjectMeta};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tracing::{debug, info, warn};

use super::context::Context;
use super::events::Recorder;
use super::reconciler::{self, Managed, error_policy, reconcile};
use super::{error, part, schedule, server};

/// Changes that need a reconcile: the spec (generation), deletion, and the create-pending marker; a status
/// write of our own does not wake the object again.
pub(crate) fn spec_key<K: Resource>(obj: &K) -> Option<u64> {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    obj.meta().generation.hash(&mut hasher);
    obj.meta().deletion_timestamp.is_some().hash(&mut hasher);
    obj.meta().finalizers.hash(&mut hasher);
    Some(hasher.finish())
}

/// What a watch can cache: Navigator's kinds and the Kubernetes objects it writes for them.
pub(crate) trait Cacheable:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}

impl<K> Cacheable for K where K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static {}

/// [`spec_key`], and the conditions other writers set (a [`part::Part`]'s): Ready summarises them, so a
/// change of one reconciles the kind again (a status write of its own still does not).
pub(crate) fn change_key<K: reconciler::Object>(obj: &K) -> Option<u64> {
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
pub(crate) fn part_controller<P: part::Part>(
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
pub(crate) fn controller<K: Managed>(
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
pub(crate) fn has_pending_work<K: reconciler::Object>(obj: &K) -> bool {
    let (ready, _) = server::ready_and_pending(obj);
    obj.meta().deletion_timestamp.is_some() || !ready
}

/// A watch of one kind feeding its shared cache ([`cached`]); `on_change` sees every object after the cache
/// has it (to wake dependents), and only changes that need a reconcile reach the controller.
pub(crate) fn watched<K: Managed>(
    client: &kube::Client,
    config: &watcher::Config,
    writer: reflector::store::Writer<K>,
    recorder: &Recorder,
    on_change: impl Fn(&K) + Send + 'static,
    on_restored: impl Fn(&reflector::Store<K>) + Send + 'static,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static {
    let (client, config, cache, recorder) = (client.clone(), config.clone(), writer.as_reader(), recorder.clone());
    let events =
        relisting(move || tolerant_watcher(&client, &config, cache.clone(), &recorder)).modify(only_shard_label);
    cached(K::kind(&()).to_string(), events, writer, on_restored)
        .applied_objects()
        .inspect_ok(move |obj| on_change(obj))
        .predicate_filter(change_key, Default::default())
}

/// What no reconcile reads, dropped before an object is cached: managedFields (the largest part of a
/// server-side-applied object) and the copy of the whole object that a client-side `kubectl apply` keeps in
/// an annotation. At 100,000 objects they would be most of the cache.
pub(crate) fn lean<K: Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

/// Of the labels of Navigator's own kinds, only the shard's is read (to skip what another shard owns); the
/// `--selector` is applied by the API server. Users' and GitOps tools' labels are dropped before the cache:
/// even one label costs a whole map node (over 500 bytes) per object. (The objects Navigator writes keep
/// theirs: their labels say who owns them.)
pub(crate) fn only_shard_label<K: Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    let shard = meta
        .labels
        .as_mut()
        .and_then(|labels| labels.remove_entry(super::shard::LABEL));
    meta.labels = shard.map(|(key, value)| std::collections::BTreeMap::from([(key, value)]));
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A watch feeding one cache, of a kind Navigator reconciles or of objects it writes (`name` says which, in
/// logs and in the readiness of the caches). A lost watch (the API server restarting, say) is logged once,
/// retried within seconds, and logged again when it is back, when `on_restored` gets the cache (which kept
/// serving reconciles meanwhile).
pub(crate) fn cached<K: Cacheable>(
    name: String,
    events: impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    writer: reflector::store::Writer<K>,
    on_restored: impl Fn(&reflector::Store<K>) + Send + 'static,
) -> impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static {
    let store = writer.as_reader();
    server::CacheSync::global().expect(&name);
    let mut lost = false;
    events
        .modify(lean)
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
pub(crate) fn relisting<K, S>(
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
pub(crate) fn tolerant_watcher<K: Cacheable>(
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
pub(crate) struct Unparsable {
    metadata: Box<ObjectMeta>,
    error: String,
}

/// Parses a raw object as `K`; the error names the field that does not fit (`spec.x: invalid type: ...`).
pub(crate) fn parse<K: Cacheable>(raw: DynamicObject) -> Result<K, Unparsable> {
    let DynamicObject { mut metadata, data, .. } = raw;
    // Dropped before the cache anyway (see `cached`): not worth converting.
    metadata.managed_fields = None;
    if let Some(annotations) = metadata.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
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
pub(crate) fn typed_event<K: Cacheable>(
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
pub(crate) fn report_unparsable<K: Cacheable>(bad: Unparsable, recorder: &Recorder) {
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
pub(crate) fn unparsable_note(kind: &str, error: &str) -> String {
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
pub(crate) fn children<C: Cacheable>(
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
pub(crate) fn touched<C: Cacheable>(
    event: watcher::Event<C>,
    listed: &mut bool,
    cache: &reflector::Store<C>,
) -> Option<C> {
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
pub(crate) trait WatchesChildren<K: Managed> {
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
pub(crate) fn labelled(key: &str) -> watcher::Config {
    watcher::Config::default().any_semantic().labels(key)
}

/// The whole objects of kind `C` carrying label `key`, for the cache behind `writer`.
pub(crate) fn whole<C: Cacheable>(
    client: &kube::Client,
    key: &str,
    writer: &reflector::store::Writer<C>,
    recorder: &Recorder,
) -> impl futures::Stream<Item = Result<watcher::Event<C>, watcher::Error>> + Send + use<C> {
    let (client, config, cache, recorder) = (client.clone(), labelled(key), writer.as_reader(), recorder.clone());
    relisting(move || tolerant_watcher(&client, &config, cache.clone(), &recorder))
}

/// The namespaces carrying label `key`, metadata only: their labels are all a reconcile compares.
pub(crate) fn namespace_metadata(
    client: &kube::Client,
    key: &str,
) -> impl futures::Stream<Item = Result<watcher::Event<PartialObjectMeta<Namespace>>, watcher::Error>> + Send + use<> {
    let (client, config) = (client.clone(), labelled(key));
    relisting(move || watcher(Api::<PartialObjectMeta<Namespace>>::all(client.clone()), config.clone()))
}

pub(crate) fn drive<K: Managed>(
    controller: Controller<K>,
    ctx: Arc<Context>,
) -> futures::future::BoxFuture<'static, ()> {
    drive_debounced(controller, ctx, std::time::Duration::ZERO)
}

/// [`drive`], reconciling an object only once no trigger for it came for `debounce`: for a kind whose
/// reconcile reads much (a contract reads the usage of every customer) and which a burst of changes
/// elsewhere wakes many times over.
pub(crate) fn drive_debounced<K: Managed>(
    controller: Controller<K>,
    ctx: Arc<Context>,
    debounce: std::time::Duration,
) -> futures::future::BoxFuture<'static, ()> {
    let config = ControllerConfig::default()
        .concurrency(ctx.settings.concurrency)
        .debounce(debounce);
    run_controller(controller.with_config(config), reconcile::<K>, error_policy::<K>, ctx)
}

/// The objects of `store` to re-check for drift, each once per `period`, in the second of the period its
/// key gives ([`schedule::resync_slot`]): one walk of the cache per second instead of a timer held per
/// object. A Ready object waits for this (and for changes); others keep their own requeues.
pub(crate) fn resyncs<K: reconciler::Object>(
    store: reflector::Store<K>,
    period: std::time::Duration,
) -> impl futures::Stream<Item = ObjectRef<K>> + Send + 'static {
    let period_secs = period.as_secs().max(1);
    let start = tokio::time::Instant::now();
    let mut ticks = tokio::time::interval_at(
        start + std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(1),
    );
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    futures::stream::unfold((ticks, 0u64), move |(mut ticks, from)| {
        let store = store.clone();
        async move {
            ticks.tick().await;
            let to = start.elapsed().as_secs();
            let due: Vec<ObjectRef<K>> = store
                .state()
                .iter()
                .filter(|obj| {
                    let meta = obj.meta();
                    let name = meta.name.as_deref().unwrap_or_default();
                    let slot = schedule::resync_slot(meta.namespace.as_deref(), name, period_secs);
                    schedule::resync_due(slot, from, to, period_secs)
                })
                .map(|obj| ObjectRef::from_obj(obj.as_ref()))
                .collect();
            Some((futures::stream::iter(due), (ticks, to.max(from))))
        }
    })
    .flatten()
}

pub(crate) fn drive_part<P: part::Part>(
    controller: Controller<P::Kind>,
    ctx: Arc<Context>,
) -> futures::future::BoxFuture<'static, ()> {
    let config = ControllerConfig::default().concurrency(ctx.settings.concurrency);
    run_controller(
        controller.with_config(config),
        part::reconcile::<P>,
        part::error_policy::<P>,
        ctx,
    )
}

/// Runs a controller until a shutdown signal, with the resync walk of its cache ([`resyncs`]) as a trigger.
pub(crate) fn run_controller<K, Fut>(
    controller: Controller<K>,
    reconcile: fn(Arc<K>, Arc<Context>) -> Fut,
    error_policy: fn(Arc<K>, &error::Error, Arc<Context>) -> kube::runtime::controller::Action,
    ctx: Arc<Context>,
) -> futures::future::BoxFuture<'static, ()>
where
    K: reconciler::Object,
    Fut: std::future::Future<Output = Result<kube::runtime::controller::Action, error::Error>> + Send + 'static,
{
    let resyncs = resyncs(controller.store(), ctx.settings.resync);
    controller
        .reconcile_on(resyncs)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::CustomerOrg;
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
    fn the_cache_keeps_no_managed_fields_nor_the_last_applied_copy_but_the_other_annotations() {
        let mut binding = RoleBinding::default();
        binding.metadata.managed_fields = Some(vec![Default::default()]);
        binding.metadata.annotations = Some(
            [
                (LAST_APPLIED, "{\"kind\":\"RoleBinding\"}"),
                (PENDING, "2026-11-30T07:00:00Z"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        );
        lean(&mut binding);
        assert!(binding.metadata.managed_fields.is_none());
        let annotations = binding.metadata.annotations.clone().unwrap();
        assert_eq!(
            annotations.keys().collect::<Vec<_>>(),
            [PENDING],
            "the create protocol's marks stay"
        );
        binding.metadata.annotations = Some([(LAST_APPLIED.to_string(), "{}".to_string())].into());
        lean(&mut binding);
        assert!(binding.metadata.annotations.is_none());
    }

    const PENDING: &str = crate::api::keys::PENDING_INSTANCE;

    #[test]
    fn navigator_kinds_are_cached_with_their_shard_label_only() {
        let labelled = |labels: &[(&str, &str)]| {
            let mut org: CustomerOrg = serde_json::from_value(json!({"metadata": {"name": "globex"}, "spec": {"displayName": "Globex", "tenantName": "globex", "endpointRef": {"name": "sim"}}})).unwrap();
            org.metadata.labels = Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
            org
        };
        let mut org = labelled(&[
            ("app.kubernetes.io/instance", "customers"),
            (crate::runtime::shard::LABEL, "2"),
            ("team", "platform"),
        ]);
        only_shard_label(&mut org);
        assert_eq!(
            org.metadata.labels,
            Some([(crate::runtime::shard::LABEL.to_string(), "2".to_string())].into())
        );
        assert_eq!(
            crate::runtime::shard::owner(&org.metadata, 3),
            2,
            "the shard still reads it"
        );
        let mut org = labelled(&[("team", "platform")]);
        only_shard_label(&mut org);
        assert_eq!(org.metadata.labels, None);
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
