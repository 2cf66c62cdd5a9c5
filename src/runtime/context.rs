//! What every reconcile shares: the client, the caches of the kinds it reads, the endpoint drivers, the
//! clock, the backoff table, metrics and the event recorder.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use kube::runtime::events::Reporter;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::controllers::registry::Stores;
use crate::endpoint::Driver;
use crate::runtime::clock::Clock;
use crate::runtime::events::Recorder;
use crate::runtime::metrics::Metrics;
use crate::runtime::reconciler::Object;
use crate::runtime::schedule::Backoff;

/// Operator-wide timing and sizing.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How often a Ready object is checked for drift on its endpoint (each at a second of the period that a
    /// hash of its name gives; see `watch::resyncs`).
    pub resync: Duration,
    /// How often work in progress is checked when the endpoint sets no poll interval.
    pub progress_poll: Duration,
    /// How often a Stalled object looks again on its own (watches usually wake it sooner).
    pub stalled_retry: Duration,
    /// First and longest wait of the per-object exponential backoff on errors.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Reconciles of one kind running at once.
    pub concurrency: u16,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            resync: Duration::from_secs(600),
            progress_poll: Duration::from_secs(5),
            stalled_retry: Duration::from_secs(30),
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            concurrency: 64,
        }
    }
}

/// One driver per CloudEndpoint, kept while the endpoint's spec and credentials are unchanged so its
/// rate limiter and concurrency cap really are per endpoint.
#[derive(Default)]
pub struct Drivers {
    entries: RwLock<HashMap<String, DriverEntry>>,
}

#[derive(Clone)]
pub struct DriverEntry {
    /// Endpoint uid and generation, and the credentials Secret's resourceVersion, it was built from.
    pub built_from: String,
    pub driver: Arc<dyn Driver>,
    /// The endpoint's poll interval for work in progress.
    pub poll: Duration,
    /// Slots for background reads (billing's usage reads) on this endpoint, across the whole process, so
    /// they leave room for provisioning; sized from the endpoint's spec the driver was built from.
    pub background_reads: Arc<tokio::sync::Semaphore>,
}

impl Drivers {
    pub fn get(&self, endpoint: &str) -> Option<DriverEntry> {
        self.entries.read().expect("drivers").get(endpoint).cloned()
    }

    /// Keeps the entry already built from the same endpoint spec and credentials if another reconcile got
    /// there first, so there is never more than one driver (one rate limiter) per endpoint; else stores
    /// `build()`'s. Returns the entry in use.
    pub fn get_or_insert(
        &self,
        endpoint: &str,
        built_from: &str,
        build: impl FnOnce() -> Result<DriverEntry, crate::runtime::error::Error>,
    ) -> Result<DriverEntry, crate::runtime::error::Error> {
        let mut entries = self.entries.write().expect("drivers");
        if let Some(entry) = entries.get(endpoint).filter(|e| e.built_from == built_from) {
            return Ok(entry.clone());
        }
        let entry = build()?;
        entries.insert(endpoint.to_string(), entry.clone());
        Ok(entry)
    }
}

pub struct Context {
    pub client: kube::Client,
    pub recorder: Recorder,
    pub settings: Settings,
    pub clock: Arc<dyn Clock>,
    pub backoff: Backoff,
    pub metrics: Arc<Metrics>,
    pub stores: Stores,
    pub drivers: Drivers,
    /// The shard this instance reconciles; every object when `None` (see [`crate::runtime::shard`]).
    pub shard: Option<crate::runtime::shard::Shard>,
}

impl Context {
    /// An object that a cleanup depends on (a subscription's customer, a customer's endpoint), from the
    /// cache or, when the cache does not hold it, from the API server. A cleanup may conclude that
    /// something is gone only from the API: a cache can lag behind, and "not cached" taken as "gone" once
    /// released finalizers without deleting anything on the endpoint.
    /// Whether this instance reconciles `obj`: always unsharded, else only the objects of its shard. The
    /// caches hold every shard (reconciles read across shards), so what another shard owns is skipped here.
    pub fn owns<K: kube::Resource>(&self, obj: &K) -> bool {
        self.shard.is_none_or(|shard| shard.owns(obj.meta()))
    }

    pub async fn cached_or_live<K: Object>(
        &self,
        store: &Store<K>,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Arc<K>>, crate::runtime::error::Error> {
        let key = match namespace {
            Some(namespace) => ObjectRef::new(name).within(namespace),
            None => ObjectRef::new(name),
        };
        if let Some(obj) = store.get(&key) {
            return Ok(Some(obj));
        }
        Ok(K::api(self.client.clone(), namespace)
            .get_opt(name)
            .await?
            .map(Arc::new))
    }

    pub fn new(
        client: kube::Client,
        settings: Settings,
        clock: Arc<dyn Clock>,
        stores: Stores,
        metrics: Arc<Metrics>,
    ) -> Self {
        let reporter = Reporter {
            controller: "navigator".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            backoff: Backoff::new(settings.min_backoff, settings.max_backoff),
            client,
            settings,
            clock,
            metrics,
            stores,
            drivers: Drivers::default(),
            shard: None,
        }
    }
}
