//! The operator's HTTP server: `/healthz` (the process runs), `/readyz` (every cache has its first full
//! list, so reconciles see the whole picture) and `/metrics` (Prometheus text format).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::context::Context;
use super::metrics::ObjectsLabel;
use crate::api::conditions::is_ready;

struct ServerState {
    ctx: Arc<Context>,
    caches_synced: AtomicBool,
}

pub async fn serve(listen: SocketAddr, ctx: Arc<Context>) -> anyhow::Result<()> {
    let state = Arc::new(ServerState {
        ctx: ctx.clone(),
        caches_synced: AtomicBool::new(false),
    });
    let watcher = state.clone();
    tokio::spawn(async move {
        let stores = &watcher.ctx.stores;
        let synced = futures::future::try_join5(
            stores.endpoints.wait_until_ready(),
            stores.providers.wait_until_ready(),
            stores.contracts.wait_until_ready(),
            stores.customers.wait_until_ready(),
            stores.subscriptions.wait_until_ready(),
        )
        .await;
        if synced.is_ok() && stores.grants.wait_until_ready().await.is_ok() {
            watcher.caches_synced.store(true, Ordering::Relaxed);
        }
    });
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn readyz(State(state): State<Arc<ServerState>>) -> impl IntoResponse {
    if state.caches_synced.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced yet")
    }
}

async fn metrics(State(state): State<Arc<ServerState>>) -> impl IntoResponse {
    update_object_gauges(&state.ctx);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.ctx.metrics.encode(),
    )
}

/// Sets the objects-per-kind-and-Ready gauges from the caches.
pub fn update_object_gauges(ctx: &Context) {
    let stores = &ctx.stores;
    let counts = [
        (
            "CloudEndpoint",
            count(
                stores
                    .endpoints
                    .state()
                    .iter()
                    .map(|o| o.status.as_ref().map(|s| &s.conditions[..])),
            ),
        ),
        (
            "ProviderOrg",
            count(
                stores
                    .providers
                    .state()
                    .iter()
                    .map(|o| o.status.as_ref().map(|s| &s.conditions[..])),
            ),
        ),
        (
            "CommitmentContract",
            count(
                stores
                    .contracts
                    .state()
                    .iter()
                    .map(|o| o.status.as_ref().map(|s| &s.conditions[..])),
            ),
        ),
        (
            "CustomerOrg",
            count(
                stores
                    .customers
                    .state()
                    .iter()
                    .map(|o| o.status.as_ref().map(|s| &s.conditions[..])),
            ),
        ),
        (
            "CloudServiceSubscription",
            count(
                stores
                    .subscriptions
                    .state()
                    .iter()
                    .map(|o| o.status.as_ref().map(|s| &s.conditions[..])),
            ),
        ),
    ];
    for (kind, (ready, not_ready)) in counts {
        let label = |ready: &str| ObjectsLabel {
            kind: kind.to_string(),
            ready: ready.to_string(),
        };
        ctx.metrics.objects.get_or_create(&label("true")).set(ready);
        ctx.metrics.objects.get_or_create(&label("false")).set(not_ready);
    }
    ctx.metrics.backing_off.set(ctx.backoff.len() as i64);
}

fn count<'a>(
    conditions: impl Iterator<Item = Option<&'a [k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]>>,
) -> (i64, i64) {
    conditions.fold((0, 0), |(r, n), c| {
        if c.is_some_and(is_ready) {
            (r + 1, n)
        } else {
            (r, n + 1)
        }
    })
}
