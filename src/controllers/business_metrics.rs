//! The business gauges on `/metrics`, computed from the caches at each scrape: what the provider bills and
//! invoices, how far its commitments are consumed, its customers' subscriptions and grants, its support
//! requests and their response deadlines, and the health of its endpoints.
//!
//! Cardinality is bounded by design: series are per provider, customer, service, metric, currency,
//! severity, state or reason, never per object (see the README's table). Each family is a pure function
//! of the cached objects and the current instant, so the unit tests below need no cluster.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use kube::ResourceExt;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use crate::api::commitment_contract::{Consumption, ContractPhase};
use crate::api::conditions::{Condition, find};
use crate::api::support_request::CommentSource;
use crate::api::{
    AccessGrant, CloudEndpoint, CloudServiceSubscription, CommitmentContract, InvoiceSpec, ProviderOrg, SupportRequest,
};
use crate::billing::cluster::views::term;
use crate::runtime::metrics::{InvoicedTotal, Labels, ScrapeGauges};

/// One gauge's series.
type Series = Vec<(Labels, f64)>;

fn label(name: &'static str, value: impl Into<String>) -> (&'static str, String) {
    (name, value.into())
}

fn float(value: Decimal) -> f64 {
    value.to_f64().unwrap_or(f64::NAN)
}

/// Names the provider of each provider namespace.
pub fn providers_by_namespace(providers: &[Arc<ProviderOrg>]) -> BTreeMap<String, String> {
    providers
        .iter()
        .map(|p| (p.spec.namespace.clone(), p.name_any()))
        .collect()
}

/// The provider of a namespaced object, or `""` when its namespace is no provider's (it is counted, not
/// dropped, so totals stay true).
fn provider_of<'a>(namespaces: &'a BTreeMap<String, String>, obj: &impl ResourceExt) -> &'a str {
    obj.namespace()
        .and_then(|ns| namespaces.get(&ns))
        .map_or("", String::as_str)
}

/// Counts equal label sets.
fn count(labels: impl IntoIterator<Item = Labels>) -> Series {
    let mut counts: BTreeMap<Labels, f64> = BTreeMap::new();
    for l in labels {
        *counts.entry(l).or_default() += 1.0;
    }
    counts.into_iter().collect()
}

/// Current billing period per provider: estimated charges (before tax), usage per metric, and the largest
/// customers' charges, as billing last wrote them in `status.billing`.
pub fn current_period(providers: &[Arc<ProviderOrg>]) -> (Series, Series, Series) {
    let (mut charges, mut usage, mut customers) = (Vec::new(), Vec::new(), Vec::new());
    for provider in providers {
        let Some(view) = provider.status.as_ref().and_then(|s| s.billing.as_ref()) else {
            continue;
        };
        let name = provider.name_any();
        if let Some(estimate) = &view.estimated_charges {
            let labels = vec![label("provider", &name), label("currency", &estimate.currency)];
            charges.push((labels, float(estimate.amount)));
        }
        for m in &view.usage {
            let labels = vec![
                label("provider", &name),
                label("service", &m.service),
                label("metric", &m.metric),
                label("unit", &m.unit),
            ];
            usage.push((labels, float(m.quantity)));
        }
        for c in &view.top_customers {
            let labels = vec![
                label("provider", &name),
                label("customer", &c.customer_org),
                label("currency", &c.amount.currency),
            ];
            customers.push((labels, float(c.amount.amount)));
        }
    }
    (charges, usage, customers)
}

/// The last closed period's invoices per provider (of those still cached): totals and subtotals per
/// customer and currency, and how many customers were invoiced per currency.
pub fn invoiced(
    invoiced: &BTreeMap<String, Vec<InvoicedTotal>>,
    providers: &[Arc<ProviderOrg>],
) -> (Series, Series, Series) {
    let (mut totals, mut subtotals, mut counts) = (Vec::new(), Vec::new(), Vec::new());
    for provider in providers {
        let name = provider.name_any();
        let Some(invoices) = invoiced.get(&name) else {
            continue;
        };
        for i in invoices {
            let labels = vec![
                label("provider", &name),
                label("customer", &i.customer),
                label("currency", &i.currency),
            ];
            totals.push((labels.clone(), i.total));
            subtotals.push((labels, i.subtotal));
            counts.push((vec![label("provider", &name), label("currency", &i.currency)], 1.0));
        }
    }
    (totals, subtotals, counts)
}

/// The invoices of a period added up per customer and currency, sorted by those.
pub fn invoiced_totals(invoices: &[InvoiceSpec]) -> Vec<InvoicedTotal> {
    let mut sums: BTreeMap<(&str, &str), (Decimal, Decimal)> = BTreeMap::new();
    for invoice in invoices {
        let key = (invoice.customer_org_ref.name.as_str(), invoice.currency.as_str());
        let (subtotal, total) = sums.entry(key).or_default();
        *subtotal = subtotal.saturating_add(invoice.subtotal);
        *total = total.saturating_add(invoice.total);
    }
    sums.into_iter()
        .map(|((customer, currency), (subtotal, total))| InvoicedTotal {
            customer: customer.to_string(),
            currency: currency.to_string(),
            subtotal: float(subtotal),
            total: float(total),
        })
        .collect()
}

/// The commitments of active contracts per provider: amounts per currency and quantities per metric, each
/// as `committed`, `consumed`, `remaining` and `forecast` (the `measure` label); and the seconds until the
/// earliest active contract's term ends.
pub fn commitments(
    contracts: &[Arc<CommitmentContract>],
    namespaces: &BTreeMap<String, String>,
    now: Timestamp,
) -> (Series, Series, Series, Series) {
    let (mut amounts, mut quantities, mut phases) = (Vec::new(), Vec::new(), Vec::new());
    let mut ends: BTreeMap<&str, f64> = BTreeMap::new();
    for contract in contracts {
        let provider = provider_of(namespaces, contract.as_ref());
        let status = contract.status.clone().unwrap_or_default();
        let phase = status.phase.map_or("Unknown".to_string(), |p| format!("{p:?}"));
        phases.push(vec![label("provider", provider), label("phase", phase)]);
        if status.phase != Some(ContractPhase::Active) {
            continue;
        }
        if let Ok(term) = term(&contract.spec) {
            let left = term.end().duration_since(now).as_secs_f64();
            let earliest = ends.entry(provider).or_insert(left);
            *earliest = earliest.min(left);
        }
        let committed = Consumption {
            quantities: contract
                .spec
                .commitments
                .iter()
                .map(|c| crate::api::commitment_contract::MetricQuantity {
                    metric: c.metric.clone(),
                    quantity: c.quantity,
                })
                .collect(),
            amount: contract.spec.committed_amount.clone(),
        };
        let measures = [
            ("committed", Some(&committed)),
            ("consumed", status.consumed.as_ref()),
            ("remaining", status.remaining.as_ref()),
            ("forecast", status.forecast.as_ref()),
        ];
        for (measure, consumption) in measures {
            let Some(consumption) = consumption else { continue };
            if let Some(money) = &consumption.amount {
                let labels = vec![
                    label("provider", provider),
                    label("currency", &money.currency),
                    label("measure", measure),
                ];
                amounts.push((labels, float(money.amount)));
            }
            for q in &consumption.quantities {
                let labels = vec![
                    label("provider", provider),
                    label("metric", &q.metric),
                    label("measure", measure),
                ];
                quantities.push((labels, float(q.quantity)));
            }
        }
    }
    let expiry = ends
        .into_iter()
        .map(|(provider, left)| (vec![label("provider", provider)], left))
        .collect();
    (amounts, quantities, expiry, count(phases))
}

/// Subscriptions per provider, customer, service and state (`Pending` before the endpoint reported one).
pub fn subscriptions(subscriptions: &[Arc<CloudServiceSubscription>], namespaces: &BTreeMap<String, String>) -> Series {
    count(subscriptions.iter().map(|s| {
        let state = s
            .status
            .as_ref()
            .and_then(|st| st.state)
            .map_or("Pending".to_string(), |st| format!("{st:?}"));
        vec![
            label("provider", provider_of(namespaces, s.as_ref())),
            label("customer", &s.spec.customer_org_ref.name),
            label("service", &s.spec.service_type),
            label("state", state),
        ]
    }))
}

/// Access grants per provider, role and phase (`Pending` before the first reconcile).
pub fn grants(grants: &[Arc<AccessGrant>], namespaces: &BTreeMap<String, String>) -> Series {
    count(grants.iter().map(|g| {
        let phase = g
            .status
            .as_ref()
            .and_then(|st| st.phase)
            .map_or("Pending".to_string(), |p| format!("{p:?}"));
        vec![
            label("provider", provider_of(namespaces, g.as_ref())),
            label("role", format!("{:?}", g.spec.role)),
            label("phase", phase),
        ]
    }))
}

/// Whether a request still waits for the vendor's first answer: filed (or not yet), not resolved or
/// closed, and no vendor comment yet.
pub fn awaits_response(request: &SupportRequest) -> bool {
    let Some(status) = &request.status else {
        return true;
    };
    let settled = matches!(status.vendor_state.as_deref(), Some("Resolved" | "Closed"));
    let answered = status.comments.iter().any(|c| c.source == CommentSource::Vendor);
    !settled && !answered
}

/// Support requests per provider, severity and vendor state (`Unfiled` before a ticket exists); and, per
/// provider and severity with requests awaiting the vendor's first answer, the seconds left to the
/// earliest `respondBy` (negative once passed) and how many have passed it.
pub fn support(
    requests: &[Arc<SupportRequest>],
    namespaces: &BTreeMap<String, String>,
    now: Timestamp,
) -> (Series, Series, Series) {
    let mut states = Vec::new();
    let mut earliest: BTreeMap<Labels, f64> = BTreeMap::new();
    let mut breached: BTreeMap<Labels, f64> = BTreeMap::new();
    for request in requests {
        let provider = provider_of(namespaces, request.as_ref());
        let severity = format!("{:?}", request.spec.severity);
        let state = request
            .status
            .as_ref()
            .and_then(|s| s.vendor_state.clone())
            .unwrap_or_else(|| "Unfiled".into());
        states.push(vec![
            label("provider", provider),
            label("severity", &severity),
            label("state", state),
        ]);
        let respond_by = request.status.as_ref().and_then(|s| s.respond_by.as_ref());
        let Some(respond_by) = respond_by.filter(|_| awaits_response(request)) else {
            continue;
        };
        let key = vec![label("provider", provider), label("severity", &severity)];
        let left = respond_by.0.duration_since(now).as_secs_f64();
        let entry = earliest.entry(key.clone()).or_insert(left);
        *entry = entry.min(left);
        *breached.entry(key).or_default() += if left < 0.0 { 1.0 } else { 0.0 };
    }
    (
        count(states),
        earliest.into_iter().collect(),
        breached.into_iter().collect(),
    )
}

/// Per endpoint: 1 when Ready, else 0, labelled with the Ready condition's reason (e.g. `Unauthorized`
/// when it refuses the credentials; `Unknown` before the first probe).
pub fn endpoints(endpoints: &[Arc<CloudEndpoint>]) -> Series {
    endpoints
        .iter()
        .map(|e| {
            let ready = e.status.as_ref().and_then(|s| find(&s.conditions, "Ready"));
            let is_ready = ready.is_some_and(|c| c.status == "True");
            let reason = ready.map_or("Unknown", |c| c.reason.as_str());
            let labels = vec![label("endpoint", e.name_any()), label("reason", reason)];
            (labels, if is_ready { 1.0 } else { 0.0 })
        })
        .collect()
}

/// Objects of `kind` that are not Ready, per reason of their Ready condition (`Unknown` before one).
pub fn not_ready<'a>(kind: &str, ready_conditions: impl IntoIterator<Item = Option<&'a Condition>>) -> Series {
    count(
        ready_conditions
            .into_iter()
            .filter(|c| c.is_none_or(|c| c.status != "True"))
            .map(|c| {
                vec![
                    label("kind", kind),
                    label("reason", c.map_or("Unknown", |c| c.reason.as_str())),
                ]
            }),
    )
}

/// What the caches hold now, for [`record`].
pub struct Snapshot {
    pub providers: Vec<Arc<ProviderOrg>>,
    pub contracts: Vec<Arc<CommitmentContract>>,
    pub subscriptions: Vec<Arc<CloudServiceSubscription>>,
    pub grants: Vec<Arc<AccessGrant>>,
    pub support_requests: Vec<Arc<SupportRequest>>,
    pub endpoints: Vec<Arc<CloudEndpoint>>,
    pub invoiced: BTreeMap<String, Vec<InvoicedTotal>>,
}

/// Adds every business gauge of `snapshot` at `now` to `gauges`.
pub fn record(gauges: &mut ScrapeGauges, snapshot: &Snapshot, now: Timestamp) {
    let namespaces = providers_by_namespace(&snapshot.providers);
    let (charges, usage, customers) = current_period(&snapshot.providers);
    gauges.add(
        "billing_estimated_charges",
        "Charges of the current billing period so far, before tax, per provider and currency",
        charges,
    );
    gauges.add(
        "billing_usage",
        "Usage of the current billing period so far, per provider, service, metric and unit",
        usage,
    );
    gauges.add(
        "billing_customer_charges",
        "Charges of the current billing period so far, before tax, of each provider's five largest customers",
        customers,
    );
    let (totals, subtotals, counts) = invoiced(&snapshot.invoiced, &snapshot.providers);
    gauges.add(
        "invoiced_total",
        "What the last closed billing period was invoiced, with tax, per provider, customer and currency",
        totals,
    );
    gauges.add(
        "invoiced_subtotal",
        "What the last closed billing period was invoiced, before tax, per provider, customer and currency",
        subtotals,
    );
    gauges.add(
        "invoices",
        "Invoices issued for the last closed billing period, per provider and currency",
        counts,
    );
    let (amounts, quantities, expiry, phases) = commitments(&snapshot.contracts, &namespaces, now);
    gauges.add(
        "commitment_amount",
        "Committed amounts of active contracts per provider and currency; measure: committed, consumed, remaining, forecast",
        amounts,
    );
    gauges.add(
        "commitment_quantity",
        "Committed quantities of active contracts per provider and metric; measure: committed, consumed, remaining, forecast",
        quantities,
    );
    gauges.add(
        "commitment_expiry_seconds",
        "Seconds until the term of the provider's earliest ending active contract ends",
        expiry,
    );
    gauges.add("contracts", "Commitment contracts per provider and phase", phases);
    gauges.add(
        "subscriptions",
        "Subscriptions per provider, customer, service and state",
        subscriptions(&snapshot.subscriptions, &namespaces),
    );
    gauges.add(
        "access_grants",
        "Access grants per provider, role and phase",
        grants(&snapshot.grants, &namespaces),
    );
    let (states, time_left, breached) = support(&snapshot.support_requests, &namespaces, now);
    gauges.add(
        "support_requests",
        "Support requests per provider, severity and vendor state",
        states,
    );
    gauges.add(
        "support_response_time_left_seconds",
        "Seconds left to the earliest respondBy of requests awaiting the vendor's first answer (negative once passed)",
        time_left,
    );
    gauges.add(
        "support_response_deadlines_breached",
        "Requests awaiting the vendor's first answer past their respondBy, per provider and severity",
        breached,
    );
    gauges.add(
        "endpoint_ready",
        "1 when the endpoint is Ready, else 0, with the Ready condition's reason",
        endpoints(&snapshot.endpoints),
    );
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object<K: serde::de::DeserializeOwned>(value: serde_json::Value) -> Arc<K> {
        Arc::new(serde_json::from_value(value).unwrap())
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn labels(pairs: &[(&'static str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
    }

    fn namespaces() -> BTreeMap<String, String> {
        BTreeMap::from([("acme".to_string(), "acme-cloud".to_string())])
    }

    fn provider() -> Arc<ProviderOrg> {
        object(json!({
            "apiVersion": "navigator.cloudpartner.io/v1alpha1", "kind": "ProviderOrg",
            "metadata": {"name": "acme-cloud"},
            "spec": {"displayName": "Acme Cloud", "partnerTypes": ["CloudProvider"], "namespace": "acme"},
            "status": {"billing": {
                "estimatedCharges": {"amount": "12.50", "currency": "EUR"},
                "usage": [{"service": "compute", "metric": "vcpu-hours", "unit": "vCPU-hour", "quantity": "500"}],
                "topCustomers": [
                    {"customerOrg": "globex", "amount": {"amount": "10.00", "currency": "EUR"}},
                    {"customerOrg": "initech", "amount": {"amount": "2.50", "currency": "EUR"}}
                ]
            }}
        }))
    }

    fn contract(name: &str, end: &str, phase: &str) -> Arc<CommitmentContract> {
        object(json!({
            "apiVersion": "navigator.cloudpartner.io/v1alpha1", "kind": "CommitmentContract",
            "metadata": {"name": name, "namespace": "acme"},
            "spec": {
                "contractNumber": name, "startDate": "2026-01-01", "endDate": end, "services": ["compute"], "endpoints": ["sim"],
                "commitments": [{"metric": "vcpu-hours", "quantity": "1000"}],
                "committedAmount": {"amount": "100.00", "currency": "EUR"}
            },
            "status": {
                "phase": phase,
                "consumed": {"quantities": [{"metric": "vcpu-hours", "quantity": "600"}], "amount": {"amount": "60.00", "currency": "EUR"}},
                "remaining": {"quantities": [{"metric": "vcpu-hours", "quantity": "400"}], "amount": {"amount": "40.00", "currency": "EUR"}}
            }
        }))
    }

    fn request(name: &str, severity: &str, status: serde_json::Value) -> Arc<SupportRequest> {
        object(json!({
            "apiVersion": "navigator.cloudpartner.io/v1alpha1", "kind": "SupportRequest",
            "metadata": {"name": name, "namespace": "acme"},
            "spec": {"customerOrgRef": {"name": "globex"}, "severity": severity, "product": "Compute",
                     "subject": "down", "description": "down"},
            "status": status
        }))
    }

    #[test]
    fn the_current_period_comes_from_the_providers_billing_view() {
        let (charges, usage, customers) = current_period(&[provider()]);
        assert_eq!(
            charges,
            vec![(labels(&[("provider", "acme-cloud"), ("currency", "EUR")]), 12.5)]
        );
        assert_eq!(
            usage,
            vec![(
                labels(&[
                    ("provider", "acme-cloud"),
                    ("service", "compute"),
                    ("metric", "vcpu-hours"),
                    ("unit", "vCPU-hour")
                ]),
                500.0
            )]
        );
        assert_eq!(customers.len(), 2);
        assert_eq!(customers[0].0[1], ("customer", "globex".to_string()));
    }

    #[test]
    fn invoices_add_up_per_customer_and_currency_and_only_for_cached_providers() {
        let invoice = |customer: &str, currency: &str, subtotal: &str, total: &str| -> InvoiceSpec {
            serde_json::from_value(json!({
                "customerOrgRef": {"name": customer, "namespace": "acme-x"}, "providerOrgRef": {"name": "acme-cloud"},
                "periodStart": "2026-10-01", "periodEnd": "2026-10-31", "issuedAt": "2026-11-01T00:00:00Z",
                "currency": currency, "subtotal": subtotal, "taxRate": "0.21", "tax": "0", "total": total
            }))
            .unwrap()
        };
        let totals = invoiced_totals(&[
            invoice("initech", "EUR", "1.00", "1.21"),
            invoice("globex", "EUR", "10.00", "12.10"),
            invoice("globex", "USD", "5.00", "5.00"),
        ]);
        assert_eq!(totals.len(), 3);
        assert_eq!(
            (totals[0].customer.as_str(), totals[0].currency.as_str()),
            ("globex", "EUR")
        );
        assert_eq!((totals[0].subtotal, totals[0].total), (10.0, 12.1));
        let recorded = BTreeMap::from([
            ("acme-cloud".to_string(), totals),
            (
                "deleted-provider".to_string(),
                invoiced_totals(&[invoice("x", "EUR", "1", "1")]),
            ),
        ]);
        let (totals, subtotals, counts) = invoiced(&recorded, &[provider()]);
        assert_eq!(totals.len(), 3, "nothing of a provider no longer cached");
        assert_eq!(subtotals[2].1, 1.0);
        let mut gauges = ScrapeGauges::default();
        gauges.add("invoices", "", counts);
        let text = crate::runtime::metrics::Metrics::default().encode_with(&gauges);
        assert!(
            text.contains(r#"navigator_invoices{provider="acme-cloud",currency="EUR"} 2"#),
            "{text}"
        );
    }

    #[test]
    fn commitments_of_active_contracts_and_the_earliest_end() {
        let now = at("2026-11-30T00:00:00Z");
        let contracts = [
            contract("early", "2026-12-30", "Active"),
            contract("late", "2027-12-31", "Active"),
            contract("old", "2025-12-31", "Expired"),
        ];
        let (amounts, quantities, expiry, phases) = commitments(&contracts, &namespaces(), now);
        let amount = |measure: &str| {
            amounts
                .iter()
                .filter(|(l, _)| l[2].1 == measure)
                .map(|(_, v)| v)
                .sum::<f64>()
        };
        // Two active contracts (the expired one is left out); no forecast written yet.
        assert_eq!(amount("committed"), 200.0);
        assert_eq!(amount("consumed"), 120.0);
        assert_eq!(amount("remaining"), 80.0);
        assert_eq!(amount("forecast"), 0.0);
        assert_eq!(quantities.len(), 6);
        // The early contract's term ends at the end of 2026-12-30: 31 days from now.
        assert_eq!(expiry, vec![(labels(&[("provider", "acme-cloud")]), 31.0 * 86400.0)]);
        assert_eq!(
            phases,
            vec![
                (labels(&[("provider", "acme-cloud"), ("phase", "Active")]), 2.0),
                (labels(&[("provider", "acme-cloud"), ("phase", "Expired")]), 1.0)
            ]
        );
    }

    #[test]
    fn support_deadlines_count_only_requests_awaiting_the_vendors_first_answer() {
        let now = at("2026-11-30T12:00:00Z");
        let requests = [
            // Filed, due in one hour.
            request(
                "a",
                "Critical",
                json!({"vendorState": "Open", "respondBy": "2026-11-30T13:00:00Z"}),
            ),
            // Past its deadline.
            request(
                "b",
                "Critical",
                json!({"vendorState": "New", "respondBy": "2026-11-30T11:00:00Z"}),
            ),
            // Past its deadline but answered: neither breached nor counted for time left.
            request(
                "c",
                "Major",
                json!({"vendorState": "Open", "respondBy": "2026-11-30T10:00:00Z",
                "comments": [{"source": "Vendor", "author": "vendor", "body": "on it"}]}),
            ),
            // Resolved.
            request(
                "d",
                "Major",
                json!({"vendorState": "Resolved", "respondBy": "2026-11-30T10:00:00Z"}),
            ),
            // Not reconciled yet.
            request("e", "Minor", json!({})),
        ];
        let (states, left, breached) = support(&requests, &namespaces(), now);
        let key = |severity: &str| labels(&[("provider", "acme-cloud"), ("severity", severity)]);
        assert_eq!(left, vec![(key("Critical"), -3600.0)]);
        assert_eq!(breached, vec![(key("Critical"), 1.0)]);
        let state = |severity: &str, state: &str| {
            let l = labels(&[("provider", "acme-cloud"), ("severity", severity), ("state", state)]);
            states.iter().find(|(k, _)| *k == l).map(|(_, v)| *v)
        };
        assert_eq!(state("Critical", "Open"), Some(1.0));
        assert_eq!(state("Major", "Resolved"), Some(1.0));
        assert_eq!(state("Minor", "Unfiled"), Some(1.0));
        assert_eq!(states.len(), 5);
    }

    #[test]
    fn subscriptions_and_grants_are_counted_per_state_not_per_object() {
        let subscription = |name: &str, state: Option<&str>| -> Arc<CloudServiceSubscription> {
            object(json!({
                "apiVersion": "navigator.cloudpartner.io/v1alpha1", "kind": "CloudServiceSubscription",
                "metadata": {"name": name, "namespace": "acme"},
                "spec": {"customerOrgRef": {"name": "globex"}, "serviceType": "compute"},
                "status": state.map_or(json!({}), |s| json!({"state": s}))
            }))
        };
        let series = subscriptions(
            &[
                subscription("a", Some("Ready")),
                subscription("b", Some("Ready")),
                subscription("c", None),
            ],
            &namespaces(),
        );
        let key = |state: &str| {
            labels(&[
                ("provider", "acme-cloud"),
                ("customer", "globex"),
                ("service", "compute"),
                ("state", state),
            ])
        };
        assert_eq!(series, vec![(key("Pending"), 1.0), (key("Ready"), 2.0)]);

        let grant: Arc<AccessGrant> = object(json!({
            "apiVersion": "navigator.cloudpartner.io/v1alpha1", "kind": "AccessGrant",
            "metadata": {"name": "g", "namespace": "elsewhere"},
            "spec": {"subject": {"kind": "User", "name": "hank"}, "role": "CustomerUser",
                     "scope": {"customerOrgRef": {"name": "globex"}}},
            "status": {"phase": "Active"}
        }));
        assert_eq!(
            grants(&[grant], &namespaces()),
            vec![(
                labels(&[("provider", ""), ("role", "CustomerUser"), ("phase", "Active")]),
                1.0
            )],
            "a grant outside every provider namespace is counted under an empty provider"
        );
    }

    #[test]
    fn endpoints_report_ready_and_the_reason_and_objects_not_ready_count_per_reason() {
        let endpoint = |name: &str, status: &str, reason: &str| -> Arc<CloudEndpoint> {
            object(json!({
                "apiVersion": "navigator.cloudpartner.io/v1alpha1", "kind": "CloudEndpoint",
                "metadata": {"name": name},
                "spec": {"driver": "Simulator", "url": "http://127.0.0.1:1", "credentialsSecretRef": {"name": "s", "namespace": "n", "key": "token"}},
                "status": {"conditions": [{"type": "Ready", "status": status, "reason": reason, "message": "",
                           "lastTransitionTime": "2026-11-30T00:00:00Z"}]}
            }))
        };
        let series = endpoints(&[endpoint("a", "True", "Ready"), endpoint("b", "False", "Unauthorized")]);
        assert_eq!(
            series,
            vec![
                (labels(&[("endpoint", "a"), ("reason", "Ready")]), 1.0),
                (labels(&[("endpoint", "b"), ("reason", "Unauthorized")]), 0.0)
            ]
        );
        let conditions: Vec<Condition> = serde_json::from_value(json!([
            {"type": "Ready", "status": "True", "reason": "Ready", "message": "", "lastTransitionTime": "2026-11-30T00:00:00Z"},
            {"type": "Ready", "status": "False", "reason": "QuotaExceeded", "message": "", "lastTransitionTime": "2026-11-30T00:00:00Z"},
            {"type": "Ready", "status": "False", "reason": "QuotaExceeded", "message": "", "lastTransitionTime": "2026-11-30T00:00:00Z"}
        ]))
        .unwrap();
        let series = not_ready("CloudServiceSubscription", conditions.iter().map(Some).chain([None]));
        let key = |reason: &str| labels(&[("kind", "CloudServiceSubscription"), ("reason", reason)]);
        assert_eq!(series, vec![(key("QuotaExceeded"), 2.0), (key("Unknown"), 1.0)]);
    }
}
