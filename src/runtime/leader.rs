//! Leader election on a Kubernetes Lease (through the `kube-lease-manager` crate), so that of several
//! replicas exactly one reconciles.
//!
//! A standby serves `/healthz`, `/readyz` (ready: it stands by) and `/metrics` and does nothing else; it
//! starts no watch, so replicas cost the API server nothing until they lead. When the leader stops
//! renewing (killed, or its node lost), the lease expires after its duration and a standby takes it,
//! then starts the controllers from a fresh list. A leader that cannot renew, or finds the lease taken,
//! stops reconciling at once and exits with an error (Kubernetes restarts it as a standby), as
//! controller-runtime does: two instances never keep reconciling side by side past the renewal margin.
//! On SIGTERM the leader finishes its reconciles and releases the lease (a standby takes it at its next
//! check, at the latest when the lease would have expired); a standby asked to stop just exits.

use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use prometheus_client::metrics::gauge::Gauge;
use tracing::{info, warn};

/// Where the Lease is and how long it holds.
#[derive(Clone, Debug)]
pub struct LeaderElection {
    /// Namespace of the Lease (the namespace the operator is installed in).
    pub namespace: String,
    /// Name of the Lease; every replica of one installation uses the same.
    pub lease_name: String,
    /// This instance's name in the Lease's `holderIdentity` (the pod name in a cluster).
    pub identity: String,
    /// How long the lease holds after its last renewal: the longest a handover takes after a crash.
    pub lease_duration: Duration,
    /// How long before expiry the leader renews (also the clock skew tolerated between replicas).
    pub renew_margin: Duration,
}

impl LeaderElection {
    /// Checks the durations: whole seconds, the margin shorter than the lease.
    pub fn validate(&self) -> anyhow::Result<()> {
        let (lease, margin) = (self.lease_duration.as_secs(), self.renew_margin.as_secs());
        if margin == 0 || lease <= margin {
            anyhow::bail!(
                "the leader election renew margin ({margin}s) must be at least 1s and shorter than the lease duration ({lease}s)"
            );
        }
        Ok(())
    }
}

/// This instance's identity: the pod name (`POD_NAME`, set by the chart) or, outside a cluster, the host
/// name with a random suffix so that two processes on one machine differ.
pub fn default_identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME")
        && !pod.is_empty()
    {
        return pod;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "navigator".into());
    format!("{host}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// What this instance does now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Leader election is off: this instance always reconciles.
    Sole,
    /// Waiting for the lease; reconciles nothing.
    Standby,
    /// Holds the lease and reconciles.
    Leader,
}

/// The current [`Role`], shared with the health server and mirrored in the `navigator_leader` metric.
pub struct Leadership {
    role: AtomicU8,
    gauge: Gauge,
}

impl Leadership {
    pub fn new(gauge: Gauge) -> Self {
        let leadership = Leadership {
            role: AtomicU8::new(0),
            gauge,
        };
        leadership.set(Role::Sole);
        leadership
    }

    pub fn role(&self) -> Role {
        match self.role.load(Ordering::Acquire) {
            1 => Role::Standby,
            2 => Role::Leader,
            _ => Role::Sole,
        }
    }

    fn set(&self, role: Role) {
        let (code, reconciles) = match role {
            Role::Sole => (0, 1),
            Role::Standby => (1, 0),
            Role::Leader => (2, 1),
        };
        self.role.store(code, Ordering::Release);
        self.gauge.set(reconciles);
    }

    /// Runs `work` (the controllers) only while this instance holds the lease; without leader election,
    /// runs it at once. Returns when `work` ends (a shutdown signal) after releasing the lease, when a
    /// standby is asked to stop, or with an error when the lease is lost.
    pub async fn run_while_leading(
        &self,
        client: kube::Client,
        election: Option<&LeaderElection>,
        work: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let Some(election) = election else {
            self.set(Role::Sole);
            work.await;
            return Ok(());
        };
        election.validate()?;
        self.set(Role::Standby);
        let manager = LeaseManagerBuilder::new(client, &election.lease_name)
            .with_namespace(&election.namespace)
            .with_identity(&election.identity)
            .with_duration(election.lease_duration.as_secs())
            .with_grace(election.renew_margin.as_secs())
            .build()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot use the Lease {}/{}: {e}",
                    election.namespace,
                    election.lease_name
                )
            })?;
        info!(lease = %election.lease_name, namespace = %election.namespace, identity = %election.identity,
            "standing by until this instance holds the leader lease");

        tokio::select! {
            acquired = acquire(&manager) => acquired?,
            _ = shutdown_signal() => {
                info!("asked to stop while standing by");
                return Ok(());
            }
        }
        self.set(Role::Leader);
        info!(identity = %election.identity, "holding the leader lease; starting the controllers");

        let outcome = tokio::select! {
            _ = work => Ok(()),
            changed = manager.changed() => Err(match changed {
                Ok(_) => anyhow::anyhow!(
                    "lost the leader lease {}/{} to another instance; stopping so that only one instance reconciles",
                    election.namespace, election.lease_name
                ),
                Err(e) => anyhow::anyhow!(
                    "cannot renew the leader lease {}/{}: {e}; stopping so that no two instances reconcile at once",
                    election.namespace, election.lease_name
                ),
            }),
        };
        self.set(Role::Standby);
        if outcome.is_ok() {
            // A clean stop leaves the lease free rather than held by an instance that is gone.
            match manager.release().await {
                Ok(()) => info!("released the leader lease"),
                Err(e) => warn!(error = %e, "could not release the leader lease; it expires by itself"),
            }
        }
        outcome
    }
}

/// Waits until this instance holds the lease, retrying API errors.
async fn acquire(manager: &LeaseManager) -> anyhow::Result<()> {
    loop {
        match manager.changed().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => {
                warn!(error = %e, "leader election: cannot read or take the lease; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn election(lease: u64, margin: u64) -> LeaderElection {
        LeaderElection {
            namespace: "navigator-system".into(),
            lease_name: "navigator".into(),
            identity: "a".into(),
            lease_duration: Duration::from_secs(lease),
            renew_margin: Duration::from_secs(margin),
        }
    }

    #[test]
    fn the_renew_margin_must_be_shorter_than_the_lease() {
        assert!(election(15, 5).validate().is_ok());
        assert!(election(5, 5).validate().is_err());
        assert!(election(15, 0).validate().is_err());
    }

    #[test]
    fn the_role_is_mirrored_in_the_leader_gauge() {
        let gauge = Gauge::default();
        let leadership = Leadership::new(gauge.clone());
        assert_eq!((leadership.role(), gauge.get()), (Role::Sole, 1));
        leadership.set(Role::Standby);
        assert_eq!((leadership.role(), gauge.get()), (Role::Standby, 0));
        leadership.set(Role::Leader);
        assert_eq!((leadership.role(), gauge.get()), (Role::Leader, 1));
    }

    #[test]
    fn outside_a_cluster_two_identities_differ() {
        if std::env::var("POD_NAME").is_err() {
            assert_ne!(default_identity(), default_identity());
        }
    }
}
