//! Prometheus metrics of the operator, served on `/metrics`.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectsLabel {
    pub kind: String,
    pub ready: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabel {
    pub endpoint: String,
    pub outcome: String,
}

pub struct Metrics {
    pub registry: Registry,
    reconciles: Family<KindLabel, Counter>,
    reconcile_errors: Family<KindLabel, Counter>,
    reconcile_duration: Family<KindLabel, Histogram>,
    pub objects: Family<ObjectsLabel, Gauge>,
    pub backing_off: Gauge,
    pub endpoint_requests: Family<EndpointLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("navigator");
        let reconciles = Family::<KindLabel, Counter>::default();
        let reconcile_errors = Family::<KindLabel, Counter>::default();
        let reconcile_duration = Family::<KindLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        let objects = Family::<ObjectsLabel, Gauge>::default();
        let backing_off = Gauge::default();
        let endpoint_requests = Family::<EndpointLabel, Counter>::default();
        registry.register("reconciles", "Reconciles run, per kind", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, per kind",
            reconcile_errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took",
            reconcile_duration.clone(),
        );
        registry.register("objects", "Objects per kind and Ready state", objects.clone());
        registry.register(
            "objects_backing_off",
            "Objects waiting to retry after an error",
            backing_off.clone(),
        );
        registry.register(
            "endpoint_requests",
            "Driver calls per endpoint and outcome",
            endpoint_requests.clone(),
        );
        Metrics {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            objects,
            backing_off,
            endpoint_requests,
        }
    }
}

impl Metrics {
    pub fn observe_reconcile(&self, kind: &str, took: Duration, failed: bool) {
        let label = KindLabel { kind: kind.to_string() };
        self.reconciles.get_or_create(&label).inc();
        if failed {
            self.reconcile_errors.get_or_create(&label).inc();
        }
        self.reconcile_duration
            .get_or_create(&label)
            .observe(took.as_secs_f64());
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }
}
