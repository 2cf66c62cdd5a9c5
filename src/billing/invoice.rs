//! Invoice drafts: the lines of one customer for one period, with subtotal, tax and total.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::api::invoice::{InvoiceSpec, LineItem as ApiLineItem};
use crate::api::references::{ClusterRef, NamespacedRef};

use super::money::Currency;
use super::period::{Period, invoice_name};
use super::price::PriceBook;
use super::rating::{LineItem, RatingError, UsageRecord, checked_sum, rate};

/// What an invoice is about, apart from its lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvoiceHeader {
    /// The customer organisation billed.
    pub customer: String,
    /// The provider organisation that bills.
    pub provider: String,
    /// The reseller the customer is attributed to, if any.
    pub reseller: Option<String>,
    /// The billing period.
    pub period: Period,
    /// The currency of every amount.
    pub currency: Currency,
    /// The tax rate as a fraction between 0 and 1 (0.19 for 19%); may be zero.
    pub tax_rate: Decimal,
}

/// The invoice of one customer for one period, as computed (the Invoice resource is written from it).
///
/// - `subtotal` is the sum of the line amounts, which are already rounded.
/// - `tax` is `subtotal × tax_rate` rounded half to even to the currency's minor unit.
/// - `total` is `subtotal + tax`.
///
/// The same usage, price book and header always give the same draft, lines in the same order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceDraft {
    /// The invoice's object name, [`invoice_name`] of customer and period.
    pub name: String,
    /// The customer organisation billed.
    pub customer: String,
    /// The provider organisation that bills.
    pub provider: String,
    /// The reseller the customer is attributed to, if any.
    pub reseller: Option<String>,
    /// The billing period.
    pub period: Period,
    /// The currency of every amount.
    pub currency: Currency,
    /// The line items, sorted by subscription, service, metric and band.
    pub lines: Vec<LineItem>,
    /// The sum of the line amounts.
    pub subtotal: Decimal,
    /// The tax rate applied, a fraction (0.19 for 19%).
    pub tax_rate: Decimal,
    /// `subtotal × tax_rate`, rounded half to even to the currency's minor unit.
    pub tax: Decimal,
    /// `subtotal + tax`.
    pub total: Decimal,
}

impl InvoiceDraft {
    /// The invoice with these lines: sorts them, and computes subtotal, tax and total.
    ///
    /// Errors: a line of another customer, a tax rate outside 0..=1, overflow.
    pub fn new(header: InvoiceHeader, mut lines: Vec<LineItem>) -> Result<InvoiceDraft, RatingError> {
        if header.tax_rate < Decimal::ZERO || header.tax_rate > Decimal::ONE {
            return Err(RatingError::TaxRate(header.tax_rate));
        }
        if let Some(line) = lines.iter().find(|l| l.customer != header.customer) {
            return Err(RatingError::CustomerMismatch {
                expected: header.customer,
                found: line.customer.clone(),
            });
        }
        lines.sort_by(|a, b| line_key(a).cmp(&line_key(b)));
        let currency = header.currency;
        let subtotal = currency.round(checked_sum(lines.iter().map(|l| l.amount), "adding up the lines")?);
        let tax = currency.round(
            subtotal
                .checked_mul(header.tax_rate)
                .ok_or(RatingError::Overflow("computing tax"))?,
        );
        let total = currency.round(subtotal.checked_add(tax).ok_or(RatingError::Overflow("adding tax"))?);
        Ok(InvoiceDraft {
            name: invoice_name(&header.customer, &header.period),
            customer: header.customer,
            provider: header.provider,
            reseller: header.reseller,
            period: header.period,
            currency,
            lines,
            subtotal,
            tax_rate: header.tax_rate,
            tax,
            total,
        })
    }
}

impl InvoiceDraft {
    /// The spec of the Invoice resource for this draft. It depends only on the draft: `issuedAt` is the end
    /// of the period (the moment the invoice became due), not the moment it was written, so writing it again
    /// gives the same object. `provider_namespace` is where the CustomerOrg lives.
    ///
    /// The API's price book has flat prices only, so lines carry no band; a band of a graduated price would
    /// still be its own line with its own unit price.
    pub fn spec(&self, provider_namespace: &str) -> InvoiceSpec {
        InvoiceSpec {
            customer_org_ref: NamespacedRef {
                name: self.customer.clone(),
                namespace: provider_namespace.to_owned(),
            },
            provider_org_ref: ClusterRef::new(&self.provider),
            reseller_ref: self.reseller.as_ref().map(ClusterRef::new),
            period_start: self.period.start_date(),
            period_end: self.period.last_day(),
            issued_at: Time(self.period.end()),
            currency: self.currency.code().to_owned(),
            line_items: self
                .lines
                .iter()
                .map(|l| ApiLineItem {
                    subscription: l.subscription.clone(),
                    service: l.service.clone(),
                    metric: l.metric.clone(),
                    quantity: l.quantity,
                    unit: l.unit.clone(),
                    unit_price: l.unit_price,
                    amount: l.amount,
                })
                .collect(),
            subtotal: self.subtotal,
            tax_rate: self.tax_rate,
            tax: self.tax,
            total: self.total,
        }
    }
}

fn line_key(l: &LineItem) -> (&str, &str, &str, &str, Option<u32>, Decimal, Decimal) {
    (
        &l.customer,
        &l.subscription,
        &l.service,
        &l.metric,
        l.tier,
        l.unit_price,
        l.quantity,
    )
}

/// The invoice of `header.customer`: rates `usage` (the customer's usage in `header.period`, as the meter
/// reports it) with `book`, then builds the draft. Usage of another customer is an error, not skipped.
/// No usage gives an invoice without lines and a zero total.
pub fn draft_invoice(
    header: InvoiceHeader,
    usage: &[UsageRecord],
    book: &PriceBook,
) -> Result<InvoiceDraft, RatingError> {
    if let Some(found) = usage
        .iter()
        .map(|r| &r.customer)
        .filter(|c| **c != header.customer)
        .min()
    {
        return Err(RatingError::CustomerMismatch {
            expected: header.customer,
            found: found.clone(),
        });
    }
    let lines = rate(usage, book, header.currency)?;
    InvoiceDraft::new(header, lines)
}
