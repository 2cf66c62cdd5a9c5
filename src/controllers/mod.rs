//! One file per kind, holding only what is particular to it (what its `apply` and `cleanup` do, and what
//! wakes it), and [`run`], which wires every kind onto the generic runtime ([`crate::runtime`]):
//! conditions, finalizers, status writes, events, requeues, backoff and watches are the runtime's, the same
//! for all.

pub mod access_grant;
pub mod business_metrics;
pub mod cloud_endpoint;
pub mod commitment_contract;
pub mod customer_org;
pub mod entitlement;
pub mod namespaces;
pub mod provider_billing;
pub mod provider_org;
pub mod quota;
pub mod registry;
pub mod subscription;
pub mod support_request;
pub mod tenant_claim;
pub mod wake;

use std::sync::Arc;

use kube::runtime::watcher;
use tracing::info;

use crate::runtime::context::{Context, Settings};
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
    /// Reconcile only this shard's objects (every object when `None`).
    pub shard: Option<crate::runtime::shard::Shard>,
}

pub use registry::check_crds;

/// Runs every controller and the health and metrics server until a shutdown signal.
pub async fn run(client: kube::Client, options: RunOptions) -> anyhow::Result<()> {
    check_crds(&client).await?;
    let mut config = watcher::Config::default().any_semantic();
    if let Some(selector) = &options.selector {
        config = config.labels(selector);
    }
    let (stores, wakers, feeds) = registry::caches();
    let metrics = Arc::new(metrics::Metrics::default());
    let mut ctx = Context::new(
        client.clone(),
        options.settings.clone(),
        Arc::new(clock::SystemClock),
        stores,
        metrics,
    );
    ctx.shard = options.shard;
    let ctx = Arc::new(ctx);
    let leadership = Arc::new(leader::Leadership::new(ctx.metrics.leader.clone()));
    let server = server::serve(options.listen, ctx.clone(), leadership.clone());
    match options.shard {
        Some(shard) => info!(listen = %options.listen, shard = shard.index, shards = shard.count,
            "navigator controllers starting; reconciling one shard"),
        None => info!(listen = %options.listen, "navigator controllers starting"),
    }
    let controllers = futures::future::join_all(registry::start_all(client.clone(), config, ctx, wakers, feeds));
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
