//! Invoicing, part of ProviderOrg billing ([`crate::controllers::provider_billing`]): once a billing period has closed,
//! one Invoice per customer in the customer's namespace, computed only from the endpoints' usage in the
//! period and the provider's price book.
//!
//! Decisions:
//!
//! - **Which period.** Each billing pass invoices the *last closed* period (the one before the period that
//!   contains now). Periods before it are not backfilled: an operator that was down for a whole billing
//!   period does not write that period's invoices later. Billing runs again just after each period ends,
//!   and at least every resync.
//! - **Which customers.** Every CustomerOrg of the provider that is provisioned (its namespace exists) and
//!   not being deleted, if it existed before the period ended or the endpoint reports usage of it in the
//!   period (a tenant adopted from before Navigator). A customer without usage gets an invoice with no
//!   lines and a zero total.
//! - **Create only.** An invoice that exists is never changed (its spec is immutable in the API too). One
//!   deleted by mistake is written again at the next billing pass, identical: its content depends only on the
//!   period's usage, which is final once the period closed, and the price book (`issuedAt` is the end of
//!   the period). Changing the price book after a period closed changes what a re-written invoice says;
//!   change prices at a period boundary.
//! - **Where usage comes from.** A customer's usage is read, per endpoint, from its own endpoint, the
//!   endpoints its subscriptions name and every endpoint the provider's contracts list (subscriptions that
//!   were deleted still have usage there). An instance's name is its subscription's name. The usage of all
//!   the customers still to invoice is read concurrently ([`crate::billing::cluster::usage`]), then their invoices are written,
//!   a few at a time.
//! - **Errors.** One customer's problem (unpriced usage, an endpoint that does not answer) does not stop the
//!   invoices of the others; the first problem (in customer name order) is reported on the ProviderOrg.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use rust_decimal::Decimal;
use tracing::{debug, info};

use crate::api::invoice::InvoicePhase;
use crate::api::provider_org::BillingSettings;
use crate::api::{CloudServiceSubscription, CustomerOrg, Invoice, InvoiceSpec, ProviderOrg};
use crate::billing::cluster::usage::{self, Wanted, usage_endpoints};
use crate::billing::{
    self, BillingCycle, Currency, InvoiceDraft, InvoiceHeader, Period, PriceBook, RatingError, draft_invoice,
    invoice_name,
};
use crate::controllers::namespaces::{CUSTOMER_ORG_LABEL, MANAGED_BY, PROVIDER_ORG_LABEL};
use crate::runtime::conditions::{self, Phase};
use crate::runtime::context::Context;
use crate::runtime::error::Error;
use crate::runtime::reconciler::FIELD_MANAGER;

pub use crate::api::keys::{BILLING_PERIOD_LABEL, RESELLER_LABEL};

/// A provider's billing settings, checked.
pub struct Billing {
    pub cycle: BillingCycle,
    pub currency: Currency,
    pub tax_rate: Decimal,
    pub book: PriceBook,
}

impl Billing {
    /// Checks `spec.billing`; what the schema cannot check (an unknown currency code) stalls the ProviderOrg.
    pub fn new(settings: &BillingSettings) -> Result<Billing, Error> {
        let invalid = |message: String| Error::stalled("InvalidBilling", message);
        let day = u8::try_from(settings.billing_day).unwrap_or(0);
        let cycle = BillingCycle::utc(day).map_err(|e| invalid(format!("spec.billing.billingDay: {e}")))?;
        let currency =
            Currency::from_code(&settings.currency).map_err(|e| invalid(format!("spec.billing.currency: {e}")))?;
        if settings.tax_rate < Decimal::ZERO || settings.tax_rate > Decimal::ONE {
            return Err(invalid(format!(
                "spec.billing.taxRate {} is not between 0 and 1",
                settings.tax_rate
            )));
        }
        let prices = settings
            .price_book
            .iter()
            .map(|p| billing::Price::flat(&p.service, &p.metric, &p.unit, p.unit_price));
        let book = PriceBook::new(prices).map_err(|e| invalid(format!("spec.billing.priceBook: {e}")))?;
        Ok(Billing {
            cycle,
            currency,
            tax_rate: settings.tax_rate,
            book,
        })
    }
}

/// A rating problem as a reconcile error: the user must change the price book (or the usage must go), so it
/// stalls; the message names the customer.
pub fn rating_error(customer: &str, error: RatingError) -> Error {
    let reason = match error {
        RatingError::Unpriced { .. } => "UnpricedUsage",
        RatingError::UnitMismatch { .. } => "UnitMismatch",
        _ => "RatingFailed",
    };
    Error::stalled(reason, format!("customer {customer}: {error}"))
}

// ---------------------------------------------------------------------------------------------------
// Invoices

/// Whether a customer is invoiced for a closed period: when it existed before the period ended, or when the
/// endpoint reports usage of it in the period.
pub fn is_billed(created: Option<Timestamp>, period: &Period, has_usage: bool) -> bool {
    has_usage || created.is_some_and(|c| c < period.end())
}

/// Whether `value` can be a label value (at most 63 characters of `[A-Za-z0-9._-]`, alphanumeric at both
/// ends). Names that cannot are left out of the labels; the invoice is still written.
fn is_label_value(value: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    value.len() <= 63
        && value.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
        && value.starts_with(alnum)
        && value.ends_with(alnum)
}

/// The Invoice resource for `draft`, in `customer_namespace`, labelled with its provider, customer, period
/// and reseller so that they can be selected. Depends only on its arguments.
pub fn invoice_resource(draft: &InvoiceDraft, provider_namespace: &str, customer_namespace: &str) -> Invoice {
    let mut invoice = Invoice::new(&draft.name, draft.spec(provider_namespace));
    invoice.metadata.namespace = Some(customer_namespace.to_owned());
    let mut labels = BTreeMap::from([(MANAGED_BY.to_owned(), "navigator".to_owned())]);
    let period = draft.period.label();
    let candidates = [
        (PROVIDER_ORG_LABEL, Some(&draft.provider)),
        (CUSTOMER_ORG_LABEL, Some(&draft.customer)),
        (BILLING_PERIOD_LABEL, Some(&period)),
        (RESELLER_LABEL, draft.reseller.as_ref()),
    ];
    for (key, value) in candidates {
        if let Some(value) = value.filter(|v| is_label_value(v)) {
            labels.insert(key.to_owned(), value.clone());
        }
    }
    invoice.metadata.labels = Some(labels);
    invoice
}

/// The label selector of the invoices `provider` issued for `period`.
pub fn period_selector(provider: &str, period_label: &str) -> String {
    format!("{PROVIDER_ORG_LABEL}={provider},{BILLING_PERIOD_LABEL}={period_label}")
}

/// What invoicing the last closed period found and did.
#[derive(Debug)]
pub struct Invoiced {
    pub period: Period,
    /// Invoices of the period that exist now.
    pub issued: usize,
    /// Of those, written by this reconcile.
    pub written: usize,
    /// The invoices of the period that exist now, in customer order.
    pub invoices: Vec<InvoiceSpec>,
}

/// What became of one customer's invoice: `Some((written now, spec))`, or `None` when not invoiced.
type Outcome = Result<Option<(bool, InvoiceSpec)>, Error>;

/// Writes the missing invoices of the last closed period for every customer of `provider`.
pub async fn invoice_last_closed_period(
    provider: &ProviderOrg,
    billing: &Billing,
    ctx: &Context,
) -> Result<Invoiced, Error> {
    let now = ctx.clock.now();
    let period = billing
        .cycle
        .last_closed(now)
        .map_err(|e| Error::stalled("InvalidBilling", e.to_string()))?;
    let provider_name = provider.name_any();
    let provider_namespace = &provider.spec.namespace;
    let all = Api::<Invoice>::all(ctx.client.clone());
    let existing: BTreeMap<(String, String), Invoice> = all
        .list(&ListParams::default().labels(&period_selector(&provider_name, &period.label())))
        .await?
        .into_iter()
        .map(|i| ((i.namespace().unwrap_or_default(), i.name_any()), i))
        .collect();

    let subscriptions = subscriptions_in(ctx, provider_namespace);
    let contracts = ctx.stores.contracts_in(provider_namespace);
    let mut customers: Vec<Arc<CustomerOrg>> = ctx
        .stores
        .customers
        .state()
        .into_iter()
        .filter(|c| c.namespace().as_deref() == Some(provider_namespace.as_str()))
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .collect();
    customers.sort_by_key(|c| c.name_any());

    // What each provisioned customer needs: its invoice marked issued, or written. Outcomes are kept in
    // customer order, so the problem reported is the first customer's whatever finished first.
    let mut outcomes: Vec<(usize, Outcome)> = Vec::new();
    let mut missing: Vec<(usize, Arc<CustomerOrg>, String)> = Vec::new();
    for (index, customer) in customers.iter().enumerate() {
        let Some(customer_namespace) = customer.status.as_ref().and_then(|s| s.namespace.clone()) else {
            continue;
        };
        let name = invoice_name(&customer.name_any(), &period);
        match existing.get(&(customer_namespace.clone(), name)) {
            Some(invoice) => {
                let issued = ensure_issued(invoice, ctx).await;
                outcomes.push((index, issued.map(|()| Some((false, invoice.spec.clone())))));
            }
            None => missing.push((index, customer.clone(), customer_namespace)),
        }
    }
    let wanted: Vec<Wanted> = missing
        .iter()
        .map(|(_, customer, _)| Wanted::of(customer, usage_endpoints(customer, &subscriptions, &contracts)))
        .collect();
    let usage = usage::read(ctx, &wanted, period.start(), period.end()).await;
    let period = &period;
    let written: Vec<(usize, Outcome)> = futures::stream::iter(missing.into_iter().zip(usage))
        .map(|((index, customer, customer_namespace), usage)| async move {
            let outcome = match usage {
                Ok(usage) => write_invoice(provider, billing, period, &customer, &customer_namespace, usage, ctx).await,
                Err(error) => Err(error),
            };
            (index, outcome)
        })
        .buffer_unordered(usage::READS_PER_PASS)
        .collect()
        .await;
    outcomes.extend(written);
    outcomes.sort_by_key(|(index, _)| *index);

    let (mut written, mut first_error, mut invoices) = (0, None, Vec::new());
    for (index, outcome) in outcomes {
        match outcome {
            Ok(Some((new, spec))) => {
                written += usize::from(new);
                invoices.push(spec);
            }
            Ok(None) => {}
            Err(error) => {
                debug!(customer = %customers[index].name_any(), %error, "invoicing failed");
                first_error.get_or_insert(error);
            }
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(Invoiced {
            period: period.clone(),
            issued: invoices.len(),
            written,
            invoices,
        }),
    }
}

fn subscriptions_in(ctx: &Context, namespace: &str) -> Vec<Arc<CloudServiceSubscription>> {
    ctx.stores
        .subscriptions
        .state()
        .into_iter()
        .filter(|s| s.namespace().as_deref() == Some(namespace))
        .collect()
}

/// Computes from its `usage` in `period` and creates one customer's invoice: `Some((true, spec))` when
/// written, `Some((false, spec))` when it already existed, `None` when the customer is not invoiced for the
/// period.
async fn write_invoice(
    provider: &ProviderOrg,
    billing: &Billing,
    period: &Period,
    customer: &CustomerOrg,
    customer_namespace: &str,
    usage: Vec<billing::UsageRecord>,
    ctx: &Context,
) -> Outcome {
    let customer_name = customer.name_any();
    let created = customer.metadata.creation_timestamp.as_ref().map(|t| t.0);
    if !is_billed(created, period, !usage.is_empty()) {
        return Ok(None);
    }
    let header = InvoiceHeader {
        customer: customer_name.clone(),
        provider: provider.name_any(),
        reseller: customer.spec.reseller_ref.as_ref().map(|r| r.name.clone()),
        period: period.clone(),
        currency: billing.currency,
        tax_rate: billing.tax_rate,
    };
    let draft = draft_invoice(header, &usage, &billing.book).map_err(|e| rating_error(&customer_name, e))?;
    let invoice = invoice_resource(&draft, &provider.spec.namespace, customer_namespace);
    let api = Api::<Invoice>::namespaced(ctx.client.clone(), customer_namespace);
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let created = match api.create(&params, &invoice).await {
        Ok(created) => created,
        // Written meanwhile (or present without our labels): it stands as it is.
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let live = api.get(&draft.name).await?;
            ensure_issued(&live, ctx).await?;
            return Ok(Some((false, live.spec)));
        }
        Err(error) => return Err(error.into()),
    };
    info!(invoice = %draft.name, namespace = customer_namespace, total = %draft.total, "invoice issued");
    ensure_issued(&created, ctx).await?;
    let note = format!(
        "invoice {} for {} through {}: total {} {}",
        draft.name,
        period.start_date(),
        period.last_day(),
        draft.total,
        draft.currency
    );
    let event = Event {
        type_: EventType::Normal,
        reason: "Issued".into(),
        note: Some(note),
        action: "Invoice".into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &created.object_ref(&())).await {
        debug!(invoice = %draft.name, %error, "could not publish event");
    }
    Ok(Some((true, created.spec)))
}

/// Writes an invoice's status (`Issued`, Ready) unless it already says so: the invoice exists, so it was
/// issued even if an earlier reconcile stopped before writing its status.
async fn ensure_issued(invoice: &Invoice, ctx: &Context) -> Result<(), Error> {
    let current = invoice.status.clone().unwrap_or_default();
    if current.phase == Some(InvoicePhase::Issued) && conditions::is_ready(&current.conditions) {
        return Ok(());
    }
    let phase = Phase::Ready {
        reason: "Issued".into(),
        message: format!(
            "issued for {} through {}",
            invoice.spec.period_start, invoice.spec.period_end
        ),
    };
    let generation = invoice.metadata.generation;
    let wanted = conditions::for_phase(&phase, &current.conditions);
    let merged = conditions::merge(&current.conditions, &wanted, generation, &Time(ctx.clock.now()));
    let patch = serde_json::json!({
        "apiVersion": Invoice::api_version(&()),
        "kind": Invoice::kind(&()),
        "status": {
            "observedGeneration": generation,
            "conditions": merged,
            "phase": InvoicePhase::Issued,
        },
    });
    let api = Api::<Invoice>::namespaced(ctx.client.clone(), &invoice.namespace().unwrap_or_default());
    api.patch_status(
        &invoice.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn october() -> Period {
        BillingCycle::utc(1)
            .unwrap()
            .period_containing(ts("2026-10-10T00:00:00Z"))
            .unwrap()
    }

    fn billing_settings(json: serde_json::Value) -> BillingSettings {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_customer_is_invoiced_when_it_existed_in_the_period_or_used_something() {
        let p = october();
        assert!(
            is_billed(Some(ts("2026-09-01T00:00:00Z")), &p, false),
            "existed all month"
        );
        assert!(
            is_billed(Some(ts("2026-10-31T23:59:59Z")), &p, false),
            "created on the last day"
        );
        assert!(
            !is_billed(Some(ts("2026-11-01T00:00:00Z")), &p, false),
            "created after the period"
        );
        assert!(
            is_billed(Some(ts("2026-11-20T00:00:00Z")), &p, true),
            "adopted tenant with usage"
        );
        assert!(!is_billed(None, &p, false));
    }

    #[test]
    fn billing_settings_are_checked() {
        let ok = Billing::new(&billing_settings(serde_json::json!({
            "currency": "EUR", "billingDay": 15, "taxRate": "0.21",
            "priceBook": [{"service": "compute", "metric": "vcpu-hours", "unit": "vCPU-hour", "unitPrice": "0.025"}]
        })))
        .unwrap();
        assert_eq!(ok.cycle.billing_day(), 15);
        assert!(ok.book.get("compute", "vcpu-hours").is_some());
        let unknown = Billing::new(&billing_settings(serde_json::json!({"currency": "ABC"})))
            .err()
            .unwrap();
        assert_eq!(unknown.phase().reason(), "InvalidBilling");
        assert!(unknown.to_string().contains("spec.billing.currency"), "{unknown}");
        let day = Billing::new(&billing_settings(
            serde_json::json!({"currency": "EUR", "billingDay": 31}),
        ))
        .err()
        .unwrap();
        assert!(day.to_string().contains("billingDay"), "{day}");
    }

    #[test]
    fn the_invoice_resource_is_named_labelled_and_placed_by_customer_and_period() {
        let header = InvoiceHeader {
            customer: "acme".into(),
            provider: "cloudco".into(),
            reseller: Some("resell.co".into()),
            period: october(),
            currency: Currency::from_code("EUR").unwrap(),
            tax_rate: Decimal::from_str("0.21").unwrap(),
        };
        let draft = draft_invoice(header, &[], &PriceBook::default()).unwrap();
        let invoice = invoice_resource(&draft, "cloud", "cloud-acme");
        assert_eq!(invoice.name_any(), "acme-2026-10");
        assert_eq!(invoice.namespace().as_deref(), Some("cloud-acme"));
        let labels = invoice.labels();
        assert_eq!(labels.get(BILLING_PERIOD_LABEL).map(String::as_str), Some("2026-10"));
        assert_eq!(labels.get(PROVIDER_ORG_LABEL).map(String::as_str), Some("cloudco"));
        assert_eq!(labels.get(RESELLER_LABEL).map(String::as_str), Some("resell.co"));
        assert_eq!(invoice.spec.issued_at.0, ts("2026-11-01T00:00:00Z"));
        assert_eq!(invoice.spec.total.to_string(), "0.00");
        assert!(invoice.status.is_none());
        assert_eq!(
            period_selector("cloudco", "2026-10"),
            "navigator.cloudpartner.io/provider-org=cloudco,navigator.cloudpartner.io/billing-period=2026-10"
        );
        assert!(!is_label_value(&"a".repeat(64)));
        assert!(!is_label_value("-a"));
    }
}
