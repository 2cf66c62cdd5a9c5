//! The operator's HTTP server, on the metrics port:
//!
//! - `/healthz`: the process runs and its runtime answers (the liveness probe).
//! - `/readyz`: `200` when this instance is useful. A leader (or the only instance) is ready once every
//!   cache has its first full list, so its reconciles see the whole picture; a standby waiting for the
//!   leader lease is ready as it is (it stands in for the leader when needed). `503` otherwise, with why.
//! - `/metrics`: Prometheus metrics in the OpenMetrics text format (see [`crate::runtime::metrics`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::api::conditions::{Condition, READY, find};
use crate::runtime::context::Context;
use crate::runtime::leader::{Leadership, Role};
use crate::runtime::metrics::ScrapeGauges;
use crate::runtime::reconciler::Object;

struct ServerState {
    ctx: Arc<Context>,
    leadership: Arc<Leadership>,
}

/// Which watches have delivered their first full list, per kind. `watched` (in `controller`) registers
/// each kind when it builds its watch and marks it synced at the list's end.
///
/// Reconciles wait here until every kind is synced ([`CacheSync::wait_all_synced`]): a reconcile that ran
/// on a cache still filling would take "not in the cache" for "does not exist" (a false `Stalled`, or a
/// cleanup concluding an instance is gone). This does not use `Store::wait_until_ready`: kube's
/// controllers wait on it too, and its one-shot channel wakes only the last task that polled it, so a
/// second waiter can leave a controller asleep. One operator runs per process, so the registry is
/// process-wide.
pub struct CacheSync {
    kinds: Mutex<BTreeMap<String, bool>>,
    all_synced: tokio::sync::watch::Sender<bool>,
}

impl Default for CacheSync {
    fn default() -> Self {
        CacheSync {
            kinds: Mutex::default(),
            all_synced: tokio::sync::watch::Sender::new(false),
        }
    }
}

impl CacheSync {
    /// The registry of this process.
    pub fn global() -> &'static CacheSync {
        static CACHES: OnceLock<CacheSync> = OnceLock::new();
        CACHES.get_or_init(CacheSync::default)
    }

    /// A watch of `kind` exists and has not listed everything yet.
    pub fn expect(&self, kind: &str) {
        let mut kinds = self.kinds.lock().expect("cache sync");
        kinds.entry(kind.to_string()).or_insert(false);
        self.all_synced.send_replace(all_true(&kinds));
    }

    /// The watch of `kind` delivered its first full list.
    pub fn synced(&self, kind: &str) {
        let mut kinds = self.kinds.lock().expect("cache sync");
        kinds.insert(kind.to_string(), true);
        self.all_synced.send_replace(all_true(&kinds));
    }

    /// Whether every registered watch has listed everything (and there is at least one).
    pub fn all_synced(&self) -> bool {
        *self.all_synced.borrow()
    }

    /// Returns once every registered watch has listed everything (at once when they have).
    pub async fn wait_all_synced(&self) {
        let mut synced = self.all_synced.subscribe();
        // The sender lives as long as the process-wide registry, so this cannot fail.
        let _ = synced.wait_for(|synced| *synced).await;
    }
}

fn all_true(kinds: &BTreeMap<String, bool>) -> bool {
    !kinds.is_empty() && kinds.values().all(|synced| *synced)
}

pub async fn serve(listen: SocketAddr, ctx: Arc<Context>, leadership: Arc<Leadership>) -> anyhow::Result<()> {
    let state = Arc::new(ServerState { ctx, leadership });
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen} for /healthz, /readyz and /metrics: {e}"))?;
    axum::serve(listener, app).await?;
    Ok(())
}

/// The answer of `/readyz` for a role and whether the caches are synced.
pub fn readiness(role: Role, caches_synced: bool) -> (StatusCode, &'static str) {
    match (role, caches_synced) {
        (Role::Standby, _) => (StatusCode::OK, "ready: standing by for the leader lease"),
        (Role::Leader, true) => (StatusCode::OK, "ready: leader, caches synced"),
        (Role::Sole, true) => (StatusCode::OK, "ready: caches synced"),
        (Role::Leader | Role::Sole, false) => (StatusCode::SERVICE_UNAVAILABLE, "not ready: caches not synced yet"),
    }
}

async fn readyz(State(state): State<Arc<ServerState>>) -> impl IntoResponse {
    readiness(state.leadership.role(), CacheSync::global().all_synced())
}

async fn metrics(State(state): State<Arc<ServerState>>) -> impl IntoResponse {
    let mut scraped = ScrapeGauges::default();
    // The caches hold every shard, so one shard (the first) reports the object and business gauges and the
    // others none: summed over instances, they still count each object once.
    if state.ctx.shard.is_none_or(|shard| shard.index == 0) {
        state.ctx.stores.record_gauges(&state.ctx, &mut scraped);
    }
    state.ctx.metrics.backing_off.set(state.ctx.backoff.len() as i64);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.ctx.metrics.encode_with(&scraped),
    )
}

/// Sets the gauges of one kind from a snapshot of its cache.
pub fn set_objects<K: Object>(ctx: &Context, objects: &[Arc<K>]) {
    ctx.metrics
        .set_objects(&K::kind(&()), objects.iter().map(|o| ready_and_pending(o.as_ref())));
}

/// An object's Ready condition, if it has one.
pub fn ready_condition<K: Object>(obj: &K) -> Option<&Condition> {
    obj.status().and_then(|s| find(K::conditions(s), READY))
}

/// Whether an object is Ready, and whether its current generation still waits for a reconcile (no
/// status yet, or a Ready condition written for an older generation).
pub fn ready_and_pending<K: Object>(obj: &K) -> (bool, bool) {
    let ready = obj.status().and_then(|s| find(K::conditions(s), READY).cloned());
    let is_ready = ready.as_ref().is_some_and(|c| c.status == "True");
    let pending = ready.is_none_or(|c| c.observed_generation != obj.meta().generation);
    (is_ready, pending)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caches_are_synced_when_every_registered_watch_listed_everything() {
        let caches = CacheSync::default();
        assert!(!caches.all_synced(), "nothing registered yet");
        caches.expect("CustomerOrg");
        caches.expect("ProviderOrg");
        caches.synced("CustomerOrg");
        assert!(!caches.all_synced());
        caches.synced("ProviderOrg");
        caches.expect("ProviderOrg");
        assert!(caches.all_synced(), "registering again keeps what was synced");
    }

    #[tokio::test]
    async fn every_waiter_wakes_when_the_last_cache_syncs() {
        let caches = std::sync::Arc::new(CacheSync::default());
        caches.expect("CustomerOrg");
        caches.expect("CloudServiceSubscription");
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let caches = caches.clone();
                tokio::spawn(async move { caches.wait_all_synced().await })
            })
            .collect();
        tokio::task::yield_now().await;
        caches.synced("CloudServiceSubscription");
        tokio::task::yield_now().await;
        assert!(waiters.iter().all(|w| !w.is_finished()), "one kind still lists");
        caches.synced("CustomerOrg");
        for waiter in waiters {
            tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
                .await
                .expect("every waiter wakes, not only the last one to poll")
                .unwrap();
        }
    }

    #[test]
    fn a_standby_is_ready_and_a_leader_only_with_synced_caches() {
        assert_eq!(readiness(Role::Standby, false).0, StatusCode::OK);
        assert_eq!(readiness(Role::Leader, false).0, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(readiness(Role::Leader, true).0, StatusCode::OK);
        assert_eq!(readiness(Role::Sole, false).0, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(readiness(Role::Sole, true).0, StatusCode::OK);
    }
}
