//! What every reconcile shares: the client, the caches of the kinds it reads, the endpoint drivers, the
//! clock, the backoff table, metrics and the event recorder.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::api::{
    AccessGrant, CloudEndpoint, CloudServiceSubscription, CommitmentContract, CustomerOrg, ProviderOrg, SupportRequest,
};
use crate::endpoint::Driver;
use crate::runtime::clock::Clock;
use crate::runtime::metrics::Metrics;
use crate::runtime::reconciler::Object;
use crate::runtime::schedule::Backoff;

/// Operator-wide timing and sizing.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How often a Ready object is checked for drift on its endpoint (jittered).
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
            concurrency: 16,
        }
    }
}

/// Read-only caches of the kinds reconciles look up, fed by the controllers' own watches, so resolving a
/// reference costs no request to the API server.
#[derive(Clone)]
pub struct Stores {
    pub endpoints: Store<CloudEndpoint>,
    pub providers: Store<ProviderOrg>,
    pub contracts: Store<CommitmentContract>,
    pub customers: Store<CustomerOrg>,
    pub subscriptions: Store<CloudServiceSubscription>,
    pub grants: Store<AccessGrant>,
    pub support_requests: Store<SupportRequest>,
    pub children: Children,
}

/// Caches of what Navigator writes for its kinds, each fed by a watch of the label only Navigator sets on
/// them (see `run`), so a reconcile compares with the cache instead of reading live, and a child deleted or
/// edited by someone else wakes its owner. Namespaces are cached as metadata only: only labels matter.
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

impl Stores {
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
}

impl Context {
    /// An object that a cleanup depends on (a subscription's customer, a customer's endpoint), from the
    /// cache or, when the cache does not hold it, from the API server. A cleanup may conclude that
    /// something is gone only from the API: a cache can lag behind, and "not cached" taken as "gone" once
    /// released finalizers without deleting anything on the endpoint.
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
        }
    }
}
