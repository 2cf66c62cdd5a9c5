//! Prometheus metrics of the operator, served on `/metrics` in the OpenMetrics text format.
//!
//! Every name starts with `navigator_`:
//!
//! | metric | type | labels | what it counts |
//! |---|---|---|---|
//! | `reconciles_total` | counter | kind | reconciles run |
//! | `reconcile_errors_total` | counter | kind | reconciles that failed and are retried with backoff |
//! | `reconcile_duration_seconds` | histogram | kind | time one reconcile took |
//! | `reconciles_in_flight` | gauge | kind | reconciles running now |
//! | `objects` | gauge | kind, ready | objects in the caches per Ready state |
//! | `objects_pending` | gauge | kind | objects whose current spec was not reconciled yet (the work queue as users see it) |
//! | `objects_backing_off` | gauge | | objects waiting to retry after an error |
//! | `endpoint_requests_total` | counter | endpoint, outcome | HTTP requests sent to each endpoint, retries included; outcome `Success` or the error class |
//! | `endpoint_request_errors_total` | counter | endpoint | requests that failed (anything but `Success` and `NotFound`) |
//! | `endpoint_request_duration_seconds` | histogram | endpoint | time from sending a request to its full answer |
//! | `leader` | gauge | | 1 while this instance reconciles, 0 while it stands by |
//! | `build_info` | gauge | version | always 1 |
//!
//! The business gauges (billing, commitments, subscriptions, support, endpoints) are computed from the
//! caches at each scrape into a fresh [`ScrapeGauges`] (see `crate::controllers::business_metrics`), so a
//! series whose objects went away disappears with them.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::endpoint::http::RequestObserver;

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointOnlyLabel {
    pub endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: String,
}

pub struct Metrics {
    pub registry: Registry,
    reconciles: Family<KindLabel, Counter>,
    reconcile_errors: Family<KindLabel, Counter>,
    reconcile_duration: Family<KindLabel, Histogram>,
    in_flight: Family<KindLabel, Gauge>,
    pub objects: Family<ObjectsLabel, Gauge>,
    pub pending: Family<KindLabel, Gauge>,
    pub backing_off: Gauge,
    pub endpoint_requests: Family<EndpointLabel, Counter>,
    endpoint_errors: Family<EndpointOnlyLabel, Counter>,
    endpoint_duration: Family<EndpointOnlyLabel, Histogram>,
    pub leader: Gauge,
    /// What each provider's last closed billing period was invoiced, per provider name, as billing last
    /// found it; billing runs apart from scrapes and invoices are not cached, so billing records it here.
    pub invoiced: Mutex<BTreeMap<String, Vec<InvoicedTotal>>>,
}

/// The invoices of one customer in one currency for a provider's last closed billing period.
#[derive(Clone, Debug, PartialEq)]
pub struct InvoicedTotal {
    pub customer: String,
    pub currency: String,
    /// The sum of the invoices' subtotals (before tax).
    pub subtotal: f64,
    /// The sum of their totals (with tax).
    pub total: f64,
}

/// The labels of one series of a gauge computed at scrape time, in order.
pub type Labels = Vec<(&'static str, String)>;

/// Gauges computed at one scrape: a registry made fresh for each scrape, encoded after the operational
/// metrics.
pub struct ScrapeGauges(Registry);

impl Default for ScrapeGauges {
    fn default() -> Self {
        ScrapeGauges(Registry::with_prefix("navigator"))
    }
}

impl ScrapeGauges {
    /// Adds the gauge `navigator_<name>` with one series per sample. Samples with the same labels add up.
    pub fn add(&mut self, name: &str, help: &str, samples: impl IntoIterator<Item = (Labels, f64)>) {
        let family = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        for (labels, value) in samples {
            family.get_or_create(&labels).inc_by(value);
        }
        self.0.register(name, help, family);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("navigator");
        // 1 ms to about 33 s: a reconcile that waits on a slow endpoint ends within the driver's budget.
        let reconcile_duration = Family::<KindLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        // 1 ms to about 16 s: one HTTP request, bounded by the endpoint's request timeout.
        let endpoint_duration = Family::<EndpointOnlyLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 15))
        });
        let metrics = Metrics {
            registry: Registry::default(),
            reconciles: Family::default(),
            reconcile_errors: Family::default(),
            reconcile_duration,
            in_flight: Family::default(),
            objects: Family::default(),
            pending: Family::default(),
            backing_off: Gauge::default(),
            endpoint_requests: Family::default(),
            endpoint_errors: Family::default(),
            endpoint_duration,
            leader: Gauge::default(),
            invoiced: Mutex::default(),
        };
        registry.register("reconciles", "Reconciles run, per kind", metrics.reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that failed and are retried with backoff, per kind",
            metrics.reconcile_errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took, per kind",
            metrics.reconcile_duration.clone(),
        );
        registry.register(
            "reconciles_in_flight",
            "Reconciles running now, per kind",
            metrics.in_flight.clone(),
        );
        registry.register(
            "objects",
            "Objects in the operator's caches, per kind and Ready state",
            metrics.objects.clone(),
        );
        registry.register(
            "objects_pending",
            "Objects whose current generation has not been reconciled yet, per kind",
            metrics.pending.clone(),
        );
        registry.register(
            "objects_backing_off",
            "Objects waiting to retry after an error",
            metrics.backing_off.clone(),
        );
        registry.register(
            "endpoint_requests",
            "HTTP requests sent to each endpoint (retries included), per outcome",
            metrics.endpoint_requests.clone(),
        );
        registry.register(
            "endpoint_request_errors",
            "HTTP requests to each endpoint that failed (any outcome but Success and NotFound)",
            metrics.endpoint_errors.clone(),
        );
        registry.register(
            "endpoint_request_duration_seconds",
            "Time from sending a request to an endpoint to its full answer",
            metrics.endpoint_duration.clone(),
        );
        registry.register(
            "leader",
            "1 while this instance holds the leader lease (or runs without leader election), 0 while it stands by",
            metrics.leader.clone(),
        );
        let build_info = Family::<VersionLabel, Gauge>::default();
        build_info
            .get_or_create(&VersionLabel {
                version: env!("CARGO_PKG_VERSION").to_string(),
            })
            .set(1);
        registry.register("build_info", "The running Navigator's version", build_info);
        Metrics { registry, ..metrics }
    }
}

/// Decrements the in-flight gauge of a kind when a reconcile ends, however it ends.
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    /// Counts a reconcile of `kind` as running until the returned guard is dropped.
    pub fn reconcile_started(&self, kind: &str) -> InFlight {
        let gauge = self
            .in_flight
            .get_or_create(&KindLabel { kind: kind.to_string() })
            .clone();
        gauge.inc();
        InFlight(gauge)
    }

    /// Counts a reconcile of `kind` that ended in an error retried with backoff (the endpoint failed, a
    /// write was refused), whether or not the reconcile itself returned an error.
    pub fn reconcile_failed(&self, kind: &str) {
        self.reconcile_errors
            .get_or_create(&KindLabel { kind: kind.to_string() })
            .inc();
    }

    pub fn observe_reconcile(&self, kind: &str, took: Duration, failed: bool) {
        let label = KindLabel { kind: kind.to_string() };
        self.reconciles.get_or_create(&label).inc();
        if failed {
            self.reconcile_failed(kind);
        }
        self.reconcile_duration
            .get_or_create(&label)
            .observe(took.as_secs_f64());
    }

    /// Records one HTTP request to `endpoint`; `outcome` is `Success` or the error class.
    pub fn observe_endpoint_request(&self, endpoint: &str, outcome: &str, took: Duration) {
        self.endpoint_requests
            .get_or_create(&EndpointLabel {
                endpoint: endpoint.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        let label = EndpointOnlyLabel {
            endpoint: endpoint.to_string(),
        };
        if is_request_error(outcome) {
            self.endpoint_errors.get_or_create(&label).inc();
        }
        self.endpoint_duration.get_or_create(&label).observe(took.as_secs_f64());
    }

    /// An observer for the driver of one endpoint, feeding the endpoint request metrics.
    pub fn endpoint_observer(self: &Arc<Self>, endpoint: &str) -> Arc<dyn RequestObserver> {
        Arc::new(EndpointObserver {
            endpoint: endpoint.to_string(),
            metrics: self.clone(),
        })
    }

    /// Sets the per-kind object gauges from a snapshot of one kind's objects: `(ready, pending)` each.
    pub fn set_objects(&self, kind: &str, objects: impl Iterator<Item = (bool, bool)>) {
        let (mut ready, mut not_ready, mut pending) = (0, 0, 0);
        for (is_ready, is_pending) in objects {
            if is_ready {
                ready += 1;
            } else {
                not_ready += 1;
            }
            if is_pending {
                pending += 1;
            }
        }
        let label = |ready: &str| ObjectsLabel {
            kind: kind.to_string(),
            ready: ready.to_string(),
        };
        self.objects.get_or_create(&label("true")).set(ready);
        self.objects.get_or_create(&label("false")).set(not_ready);
        self.pending
            .get_or_create(&KindLabel { kind: kind.to_string() })
            .set(pending);
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        self.encode_with(&ScrapeGauges::default())
    }

    /// The metrics and the gauges computed for this scrape, in the OpenMetrics text format.
    pub fn encode_with(&self, scraped: &ScrapeGauges) -> String {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut out = String::new();
        encode_registry(&mut out, &self.registry)
            .and_then(|()| encode_registry(&mut out, &scraped.0))
            .and_then(|()| encode_eof(&mut out))
            .expect("writing to a String");
        out
    }

    /// Records what `provider`'s last closed period was invoiced (see [`Metrics::invoiced`]).
    pub fn set_invoiced(&self, provider: &str, totals: Vec<InvoicedTotal>) {
        let mut invoiced = self.invoiced.lock().unwrap_or_else(|e| e.into_inner());
        invoiced.insert(provider.to_string(), totals);
    }

    /// What [`Metrics::set_invoiced`] recorded, per provider.
    pub fn invoiced(&self) -> BTreeMap<String, Vec<InvoicedTotal>> {
        self.invoiced.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A request that went wrong: not answered with success, and not the "not found" that observing an object
/// which does not exist yet expects.
pub fn is_request_error(outcome: &str) -> bool {
    !matches!(outcome, "Success" | "NotFound")
}

struct EndpointObserver {
    endpoint: String,
    metrics: Arc<Metrics>,
}

impl RequestObserver for EndpointObserver {
    fn observe(&self, outcome: &'static str, took: Duration) {
        self.metrics.observe_endpoint_request(&self.endpoint, outcome, took);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample `name{labels}` in an OpenMetrics text, if it is there.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn reconciles_errors_and_durations_are_counted_per_kind() {
        let metrics = Metrics::default();
        metrics.observe_reconcile("CustomerOrg", Duration::from_millis(3), false);
        metrics.observe_reconcile("CustomerOrg", Duration::from_millis(5), true);
        let text = metrics.encode();
        assert_eq!(
            sample(&text, r#"navigator_reconciles_total{kind="CustomerOrg"}"#),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, r#"navigator_reconcile_errors_total{kind="CustomerOrg"}"#),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"navigator_reconcile_duration_seconds_count{kind="CustomerOrg"}"#
            ),
            Some(2.0)
        );
        assert_eq!(sample(&text, r#"navigator_build_info{version="0.1.0"}"#), Some(1.0));
    }

    #[test]
    fn in_flight_goes_back_down_when_the_reconcile_ends() {
        let metrics = Metrics::default();
        let series = r#"navigator_reconciles_in_flight{kind="ProviderOrg"}"#;
        let guard = metrics.reconcile_started("ProviderOrg");
        assert_eq!(sample(&metrics.encode(), series), Some(1.0));
        drop(guard);
        assert_eq!(sample(&metrics.encode(), series), Some(0.0));
    }

    #[test]
    fn endpoint_requests_count_errors_but_not_not_found() {
        let metrics = Arc::new(Metrics::default());
        let observer = metrics.endpoint_observer("sim");
        observer.observe("Success", Duration::from_millis(2));
        observer.observe("NotFound", Duration::from_millis(2));
        observer.observe("EndpointUnavailable", Duration::from_millis(2));
        let text = metrics.encode();
        assert_eq!(
            sample(
                &text,
                r#"navigator_endpoint_requests_total{endpoint="sim",outcome="Success"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, r#"navigator_endpoint_request_errors_total{endpoint="sim"}"#),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"navigator_endpoint_request_duration_seconds_count{endpoint="sim"}"#
            ),
            Some(3.0)
        );
    }

    #[test]
    fn scrape_gauges_follow_the_operational_metrics_and_add_up_equal_labels() {
        let metrics = Metrics::default();
        let mut scraped = ScrapeGauges::default();
        let labels = |p: &str| vec![("provider", p.to_string())];
        scraped.add(
            "things",
            "Things",
            [(labels("a"), 1.0), (labels("a"), 2.5), (labels("b"), 1.0)],
        );
        let text = metrics.encode_with(&scraped);
        assert_eq!(sample(&text, r#"navigator_things{provider="a"}"#), Some(3.5));
        assert_eq!(sample(&text, r#"navigator_things{provider="b"}"#), Some(1.0));
        assert!(text.contains("navigator_build_info"));
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn object_gauges_count_ready_and_pending() {
        let metrics = Metrics::default();
        metrics.set_objects(
            "CustomerOrg",
            [(true, false), (false, true), (false, false)].into_iter(),
        );
        let text = metrics.encode();
        assert_eq!(
            sample(&text, r#"navigator_objects{kind="CustomerOrg",ready="true"}"#),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, r#"navigator_objects{kind="CustomerOrg",ready="false"}"#),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, r#"navigator_objects_pending{kind="CustomerOrg"}"#),
            Some(1.0)
        );
    }
}
