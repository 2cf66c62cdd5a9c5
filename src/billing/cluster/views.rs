//! Billing views in status: the ProviderOrg's current period (usage per metric, estimated charges, top five
//! customers), what is attributed to it as a reseller, and a CommitmentContract's consumption, remaining
//! commitment and forecast (burn-down).
//!
//! Usage is read from the endpoints up to the **last full hour** (`asOf`), so a view changes at most once
//! an hour however often it is computed, and a steady system writes no status in between. Views are
//! computed again just after each full hour (and at least every resync); each computation reads usage once
//! per customer and endpoint, concurrently ([`crate::billing::cluster::usage`]). An expired contract's consumption is final
//! and read only once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use rust_decimal::Decimal;

use crate::api::commitment_contract::{CommitmentContractSpec, Consumption, MetricQuantity};
use crate::api::money::Money;
use crate::api::provider_org::{AttributedInvoices, BillingView, CustomerCharges, MetricUsage};
use crate::api::{CommitmentContract, CustomerOrg, Invoice, ProviderOrg};
use crate::billing::cluster::invoicing::{self, Billing, RESELLER_LABEL};
use crate::billing::cluster::usage::{self, Wanted};
use crate::billing::{self, ChargeEstimate, Currency, Period, PriceBook, Term, burn_down, estimate_charges};
use crate::runtime::conditions::Phase;
use crate::runtime::context::Context;
use crate::runtime::error::Error;

/// How many customers the ProviderOrg's view lists.
pub const TOP_CUSTOMERS: usize = 5;
/// Decimal places of forecast quantities (money uses the currency's minor unit).
const QUANTITY_SCALE: u32 = 3;

/// `phase` with `what: ` before its message, to say which part of a reconcile it is about.
pub fn about(what: &str, phase: Phase) -> Phase {
    match phase {
        Phase::Ready { .. } => phase,
        Phase::Stalled { reason, message } => Phase::stalled(reason, format!("{what}: {message}")),
        Phase::Progressing { reason, message } => Phase::progressing(reason, format!("{what}: {message}")),
        Phase::Failed { reason, message } => Phase::failed(reason, format!("{what}: {message}")),
    }
}

/// The instant views are computed at: `now` rounded down to the full hour (UTC).
pub fn as_of(now: Timestamp) -> Timestamp {
    Timestamp::from_second(now.as_second().div_euclid(3600) * 3600).unwrap_or(now)
}

/// How long until just after the next full hour, when the views change.
pub fn until_next_refresh(now: Timestamp) -> Duration {
    until(now, as_of(now) + jiff::SignedDuration::from_hours(1))
}

/// How long from `now` until one second after `instant` (at least one second).
pub fn until(now: Timestamp, instant: Timestamp) -> Duration {
    let seconds = (instant.as_second() - now.as_second()).max(0) + 1;
    Duration::from_secs(seconds as u64)
}

/// Every wanted customer's usage in `[from, to)`, or the first customer's problem (in `wanted` order).
async fn all_usage(
    ctx: &Context,
    wanted: &[Wanted],
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<billing::UsageRecord>, Error> {
    let mut usage = Vec::new();
    for records in usage::read(ctx, wanted, from, to).await {
        usage.extend(records?);
    }
    Ok(usage)
}

fn customers_in(ctx: &Context, namespace: &str) -> Vec<Arc<CustomerOrg>> {
    let mut customers: Vec<Arc<CustomerOrg>> = ctx
        .stores
        .customers
        .state()
        .into_iter()
        .filter(|c| c.namespace().as_deref() == Some(namespace))
        .collect();
    customers.sort_by_key(|c| c.name_any());
    customers
}

// ---------------------------------------------------------------------------------------------------
// ProviderOrg: the current period

/// The view of the current period from its estimate (pure).
pub fn view(period: &Period, as_of: Timestamp, estimate: &ChargeEstimate) -> BillingView {
    let currency = estimate.currency.code();
    BillingView {
        period_start: Some(period.start_date()),
        period_end: Some(period.last_day()),
        as_of: Some(Time(as_of)),
        usage: estimate
            .usage
            .iter()
            .map(|m| MetricUsage {
                service: m.service.clone(),
                metric: m.metric.clone(),
                unit: m.unit.clone(),
                quantity: m.quantity,
            })
            .collect(),
        estimated_charges: Some(Money::new(estimate.estimated_charges, currency)),
        top_customers: estimate
            .top_customers
            .iter()
            .map(|c| CustomerCharges {
                customer_org: c.customer.clone(),
                amount: Money::new(c.amount, currency),
            })
            .collect(),
    }
}

/// The ProviderOrg's view of the current billing period: its customers' usage from the start of the period
/// to the last full hour, rated with the price book (before tax).
pub async fn provider_view(provider: &ProviderOrg, billing: &Billing, ctx: &Context) -> Result<BillingView, Error> {
    let now = ctx.clock.now();
    let period = billing
        .cycle
        .period_containing(now)
        .map_err(|e| Error::stalled("InvalidBilling", e.to_string()))?;
    let as_of = as_of(now).max(period.start());
    let namespace = &provider.spec.namespace;
    let subscriptions: Vec<_> = ctx
        .stores
        .subscriptions
        .state()
        .into_iter()
        .filter(|s| s.namespace().as_deref() == Some(namespace.as_str()))
        .collect();
    let contracts = ctx.stores.contracts_in(namespace);
    let wanted: Vec<Wanted> = customers_in(ctx, namespace)
        .iter()
        .map(|c| Wanted::of(c, usage::usage_endpoints(c, &subscriptions, &contracts)))
        .collect();
    let usage = all_usage(ctx, &wanted, period.start(), as_of).await?;
    let estimate = estimate_charges(&usage, &billing.book, billing.currency, TOP_CUSTOMERS).map_err(|e| {
        let customer = match &e {
            billing::RatingError::Unpriced { subscription, .. } => usage
                .iter()
                .find(|r| &r.subscription == subscription)
                .map(|r| r.customer.clone())
                .unwrap_or_default(),
            _ => String::new(),
        };
        invoicing::rating_error(&customer, e)
    })?;
    Ok(view(&period, as_of, &estimate))
}

// ---------------------------------------------------------------------------------------------------
// ProviderOrg: what is attributed to it as a reseller

/// What the invoices of the customers attributed to `reseller` add up to: for each provider billing such
/// customers, the invoices of its last closed period (one label-selected list per provider).
pub async fn attributed(reseller: &ProviderOrg, ctx: &Context) -> Result<Vec<AttributedInvoices>, Error> {
    let name = reseller.name_any();
    let mut billing_namespaces: Vec<String> = ctx
        .stores
        .customers
        .state()
        .iter()
        .filter(|c| c.spec.reseller_ref.as_ref().is_some_and(|r| r.name == name))
        .filter_map(|c| c.namespace())
        .collect();
    billing_namespaces.sort();
    billing_namespaces.dedup();
    let now = ctx.clock.now();
    let mut specs = Vec::new();
    for namespace in billing_namespaces {
        let Some(provider) = ctx.stores.provider_of_namespace(&namespace) else {
            continue;
        };
        let Some(settings) = &provider.spec.billing else {
            continue;
        };
        // The billing provider's own problems are reported on the billing provider.
        let Ok(billing) = Billing::new(settings) else { continue };
        let Ok(period) = billing.cycle.last_closed(now) else {
            continue;
        };
        let selector = format!(
            "{},{RESELLER_LABEL}={name}",
            invoicing::period_selector(&provider.name_any(), &period.label())
        );
        let invoices = Api::<Invoice>::all(ctx.client.clone())
            .list(&ListParams::default().labels(&selector))
            .await?;
        specs.extend(invoices.into_iter().map(|i| i.spec));
    }
    let totals = billing::reseller_totals(&specs).map_err(|e| invoicing::rating_error("", e))?;
    Ok(totals
        .into_iter()
        .map(|t| AttributedInvoices {
            provider_org: t.provider,
            period_start: t.period_start,
            period_end: t.period_end,
            invoices: i32::try_from(t.invoices).unwrap_or(i32::MAX),
            subtotal: Money::new(t.subtotal, &t.currency),
            total: Money::new(t.total, t.currency),
        })
        .collect())
}

// ---------------------------------------------------------------------------------------------------
// CommitmentContract: consumption and burn-down

/// A contract's term as instants: from the start of `startDate` to the end of `endDate` (UTC).
pub fn term(spec: &CommitmentContractSpec) -> Result<Term, Error> {
    let midnight = |date: jiff::civil::Date| date.to_zoned(TimeZone::UTC).map(|z| z.timestamp());
    let invalid = |e: String| Error::stalled("InvalidTerm", e);
    let start = midnight(spec.start_date).map_err(|e| invalid(e.to_string()))?;
    let end = spec
        .end_date
        .tomorrow()
        .and_then(midnight)
        .map_err(|e| invalid(e.to_string()))?;
    Term::new(start, end).map_err(|e| invalid(e.to_string()))
}

/// Consumption, remaining commitment and forecast of a contract at one instant.
#[derive(Clone, Debug, PartialEq)]
pub struct ContractView {
    pub as_of: Timestamp,
    pub consumed: Consumption,
    pub remaining: Consumption,
    pub forecast: Option<Consumption>,
}

/// The burn-down of `spec` given the usage it covers (`usage`: the provider's customers' usage of the
/// contract's services on its endpoints from the start of the term to `as_of`), pure.
///
/// Quantities count every usage record of the committed metric; the amount rates the same usage with the
/// provider's price book (`pricing`), required when the contract commits an amount. `remaining` is the
/// commitment minus consumption (negative when exceeded); the forecast extrapolates consumption so far
/// linearly to the end of the term.
pub fn consumption(
    spec: &CommitmentContractSpec,
    usage: &[billing::UsageRecord],
    pricing: Option<(&PriceBook, Currency)>,
    term: Term,
    as_of: Timestamp,
) -> Result<ContractView, Error> {
    let overflow = || Error::stalled("ConsumptionOverflow", "usage too large to add up");
    let covered: Vec<billing::UsageRecord> = usage
        .iter()
        .filter(|r| spec.services.contains(&r.service))
        .cloned()
        .collect();
    let mut per_metric: BTreeMap<&str, Decimal> = BTreeMap::new();
    for record in &covered {
        let sum = per_metric.entry(record.metric.as_str()).or_default();
        *sum = sum.checked_add(record.quantity).ok_or_else(overflow)?;
    }
    let burn = |committed: Decimal, consumed: Decimal, scale: u32| {
        burn_down(committed, consumed, term, as_of, scale)
            .map_err(|e| Error::stalled("InvalidCommitment", e.to_string()))
    };
    let (mut consumed, mut remaining, mut forecast) =
        (Consumption::default(), Consumption::default(), Consumption::default());
    for commitment in &spec.commitments {
        let used = per_metric
            .get(commitment.metric.as_str())
            .copied()
            .unwrap_or_default()
            .normalize();
        let quantity = |quantity: Decimal| MetricQuantity {
            metric: commitment.metric.clone(),
            quantity,
        };
        let left = commitment.quantity.checked_sub(used).ok_or_else(overflow)?;
        consumed.quantities.push(quantity(used));
        remaining.quantities.push(quantity(left.normalize()));
        if let Some(f) = burn(commitment.quantity, used, QUANTITY_SCALE)?.forecast_at_end {
            forecast.quantities.push(quantity(f.normalize()));
        }
    }
    if let Some(committed) = &spec.committed_amount {
        let Some((book, currency)) = pricing else {
            return Err(Error::stalled(
                "NoPriceBook",
                "committedAmount is measured at the provider's price book, but the ProviderOrg has no spec.billing",
            ));
        };
        if committed.currency != currency.code() {
            return Err(Error::stalled(
                "CurrencyMismatch",
                format!(
                    "committedAmount is in {} but the provider bills in {}",
                    committed.currency,
                    currency.code()
                ),
            ));
        }
        let lines = billing::rate(&covered, book, currency).map_err(|e| invoicing::rating_error("", e))?;
        let used = lines
            .iter()
            .try_fold(Decimal::ZERO, |sum, l| sum.checked_add(l.amount))
            .ok_or_else(overflow)?;
        let used = currency.round(used);
        let left = committed.amount.checked_sub(used).ok_or_else(overflow)?;
        consumed.amount = Some(Money::new(used, currency.code()));
        remaining.amount = Some(Money::new(currency.round(left), currency.code()));
        if let Some(f) = burn(committed.amount, used, currency.minor_units())?.forecast_at_end {
            forecast.amount = Some(Money::new(f, currency.code()));
        }
    }
    let forecast = (!forecast.quantities.is_empty() || forecast.amount.is_some()).then_some(forecast);
    Ok(ContractView {
        as_of,
        consumed,
        remaining,
        forecast,
    })
}

/// The contract's view at the last full hour (or the end of its term, if earlier), reading the usage of the
/// provider's customers on the contract's endpoints since the start of its term.
pub async fn contract_view(contract: &CommitmentContract, ctx: &Context) -> Result<ContractView, Error> {
    let spec = &contract.spec;
    let term = term(spec)?;
    let as_of = as_of(ctx.clock.now()).min(term.end());
    let namespace = contract.namespace().unwrap_or_default();
    let provider = ctx.stores.provider_of_namespace(&namespace);
    let billing = match provider.as_ref().and_then(|p| p.spec.billing.as_ref()) {
        Some(settings) if spec.committed_amount.is_some() => Some(Billing::new(settings)?),
        _ => None,
    };
    let endpoints: std::collections::BTreeSet<String> = spec.endpoints.iter().cloned().collect();
    let wanted: Vec<Wanted> = customers_in(ctx, &namespace)
        .iter()
        .map(|c| Wanted::of(c, endpoints.clone()))
        .collect();
    let usage = all_usage(ctx, &wanted, term.start(), as_of).await?;
    let pricing = billing.as_ref().map(|b| (&b.book, b.currency));
    consumption(spec, &usage, pricing, term, as_of)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }
    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }
    fn record(customer: &str, service: &str, metric: &str, quantity: &str) -> billing::UsageRecord {
        billing::UsageRecord {
            customer: customer.into(),
            subscription: format!("{customer}-vm"),
            service: service.into(),
            metric: metric.into(),
            unit: if metric == "vcpu-hours" {
                "vCPU-hour"
            } else {
                "GiB-hour"
            }
            .into(),
            quantity: d(quantity),
        }
    }
    fn contract(json: serde_json::Value) -> CommitmentContractSpec {
        let mut base = serde_json::json!({
            "contractNumber": "C-1", "startDate": "2026-01-01", "endDate": "2026-12-31",
            "services": ["compute"], "endpoints": ["sim"]
        });
        base.as_object_mut().unwrap().extend(json.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }
    fn book() -> PriceBook {
        PriceBook::new([
            billing::Price::flat("compute", "vcpu-hours", "vCPU-hour", d("0.025")),
            billing::Price::flat("compute", "memory-gib-hours", "GiB-hour", d("0.004")),
        ])
        .unwrap()
    }

    #[test]
    fn views_are_as_of_the_last_full_hour() {
        assert_eq!(as_of(ts("2026-11-24T21:29:02Z")), ts("2026-11-24T21:00:00Z"));
        assert_eq!(as_of(ts("2026-11-24T21:00:00Z")), ts("2026-11-24T21:00:00Z"));
        assert_eq!(
            until_next_refresh(ts("2026-11-24T21:29:02Z")),
            Duration::from_secs(30 * 60 + 59)
        );
        assert_eq!(
            until(ts("2026-11-24T21:00:00Z"), ts("2026-11-24T20:00:00Z")),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn the_term_runs_from_the_start_of_the_first_day_to_the_end_of_the_last() {
        let t = term(&contract(serde_json::json!({}))).unwrap();
        assert_eq!(
            (t.start(), t.end()),
            (ts("2026-01-01T00:00:00Z"), ts("2027-01-01T00:00:00Z"))
        );
    }

    #[test]
    fn consumption_counts_covered_services_and_forecasts_linearly() {
        let spec = contract(serde_json::json!({
            "commitments": [{"metric": "vcpu-hours", "quantity": "1000"}, {"metric": "storage-gib-hours", "quantity": "10"}],
            "committedAmount": {"amount": "100.00", "currency": "EUR"}
        }));
        let usage = [
            record("acme", "compute", "vcpu-hours", "100"),
            record("globex", "compute", "vcpu-hours", "25.5"),
            record("acme", "compute", "memory-gib-hours", "1000"),
            // Not a service of the contract: neither counted nor rated.
            record("acme", "kubernetes", "vcpu-hours", "999"),
        ];
        let t = term(&spec).unwrap();
        // 73 of 365 days: a fifth of the term.
        let at = ts("2026-03-15T00:00:00Z");
        let view = consumption(
            &spec,
            &usage,
            Some((&book(), Currency::from_code("EUR").unwrap())),
            t,
            at,
        )
        .unwrap();
        let q = |c: &Consumption| {
            c.quantities
                .iter()
                .map(|m| (m.metric.clone(), m.quantity.to_string()))
                .collect::<Vec<_>>()
        };
        let pair = |m: &str, v: &str| (m.to_owned(), v.to_owned());
        assert_eq!(
            q(&view.consumed),
            vec![pair("vcpu-hours", "125.5"), pair("storage-gib-hours", "0")]
        );
        assert_eq!(
            q(&view.remaining),
            vec![pair("vcpu-hours", "874.5"), pair("storage-gib-hours", "10")]
        );
        let forecast = view.forecast.clone().unwrap();
        // 125.5 × 5 = 627.5; nothing used forecasts nothing.
        assert_eq!(
            q(&forecast),
            vec![pair("vcpu-hours", "627.5"), pair("storage-gib-hours", "0")]
        );
        // 125.5 × 0.025 = 3.1375 → 3.14 (a line per subscription: 2.50 + 0.6375 → 0.64 = 3.14); memory
        // 1000 × 0.004 = 4.00. Consumed 7.14, remaining 92.86, forecast 35.70.
        assert_eq!(view.consumed.amount, Some(Money::new(d("7.14"), "EUR")));
        assert_eq!(view.remaining.amount, Some(Money::new(d("92.86"), "EUR")));
        assert_eq!(forecast.amount, Some(Money::new(d("35.70"), "EUR")));
    }

    #[test]
    fn an_exceeded_commitment_has_a_negative_remainder_and_no_forecast_at_the_start() {
        let spec = contract(serde_json::json!({"commitments": [{"metric": "vcpu-hours", "quantity": "10"}]}));
        let t = term(&spec).unwrap();
        let view = consumption(
            &spec,
            &[record("a", "compute", "vcpu-hours", "12")],
            None,
            t,
            ts("2026-06-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(view.remaining.quantities[0].quantity, d("-2"));
        let at_start = consumption(&spec, &[], None, t, t.start()).unwrap();
        assert_eq!(at_start.forecast, None, "no rate yet at the first instant");
        assert_eq!(at_start.consumed.quantities[0].quantity, d("0"));
    }

    #[test]
    fn a_committed_amount_needs_the_providers_price_book_in_its_currency() {
        let spec = contract(serde_json::json!({"committedAmount": {"amount": "100.00", "currency": "USD"}}));
        let t = term(&spec).unwrap();
        let at = ts("2026-06-01T00:00:00Z");
        let none = consumption(&spec, &[], None, t, at).unwrap_err();
        assert_eq!(none.phase().reason(), "NoPriceBook");
        let eur = Currency::from_code("EUR").unwrap();
        let other = consumption(&spec, &[], Some((&book(), eur)), t, at).unwrap_err();
        assert_eq!(other.phase().reason(), "CurrencyMismatch");
        let unpriced = contract(serde_json::json!({"committedAmount": {"amount": "1", "currency": "EUR"}}));
        let error = consumption(
            &unpriced,
            &[record("acme", "compute", "storage-gib-hours", "1")],
            Some((&book(), eur)),
            t,
            at,
        )
        .unwrap_err();
        assert_eq!(error.phase().reason(), "UnpricedUsage");
        assert!(error.to_string().contains("storage-gib-hours"), "{error}");
    }

    #[test]
    fn the_provider_view_carries_period_charges_and_top_customers() {
        let period = billing::BillingCycle::utc(1)
            .unwrap()
            .period_containing(ts("2026-11-24T21:29:02Z"))
            .unwrap();
        let usage = [
            record("acme", "compute", "vcpu-hours", "100"),
            record("globex", "compute", "vcpu-hours", "40"),
        ];
        let estimate = estimate_charges(&usage, &book(), Currency::from_code("EUR").unwrap(), TOP_CUSTOMERS).unwrap();
        let v = view(&period, ts("2026-11-24T21:00:00Z"), &estimate);
        assert_eq!(
            (v.period_start, v.period_end),
            (
                Some(jiff::civil::date(2026, 11, 1)),
                Some(jiff::civil::date(2026, 11, 30))
            )
        );
        assert_eq!(v.estimated_charges, Some(Money::new(d("3.50"), "EUR")));
        assert_eq!(v.usage.len(), 1);
        assert_eq!(v.usage[0].quantity, d("140"));
        assert_eq!(v.top_customers[0].customer_org, "acme");
        assert_eq!(v.top_customers[0].amount, Money::new(d("2.50"), "EUR"));
    }
}
