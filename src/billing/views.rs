//! Summaries for status: usage and charges per metric, the largest customers, reseller totals.
//!
//! Every amount here is a sum of already rounded line amounts (before tax), unless named `total`.

use std::collections::BTreeMap;

use jiff::civil::Date;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::api::invoice::InvoiceSpec;

use super::money::Currency;
use super::price::PriceBook;
use super::rating::{LineItem, RatingError, UsageRecord, rate};

/// The charges of one customer, before tax.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerCharge {
    /// The customer organisation.
    pub customer: String,
    /// The sum of its line amounts.
    pub amount: Decimal,
}

/// The usage of one metric and what it costs, over all customers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricSummary {
    /// The service type.
    pub service: String,
    /// The metric.
    pub metric: String,
    /// The unit of `quantity`.
    pub unit: String,
    /// The total quantity.
    pub quantity: Decimal,
    /// The sum of the line amounts, before tax.
    pub amount: Decimal,
}

/// The charges so far in a period, for the provider's status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChargeEstimate {
    /// The currency of the amounts.
    pub currency: Currency,
    /// The sum of all line amounts, before tax.
    pub estimated_charges: Decimal,
    /// Usage and charges per metric, sorted by service, metric and unit.
    pub usage: Vec<MetricSummary>,
    /// The customers with the largest charges, largest first (see [`top_customers`]).
    pub top_customers: Vec<CustomerCharge>,
}

/// What the invoices one provider issued for one period to the customers attributed to one reseller add up
/// to, in one currency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResellerTotal {
    /// The reseller organisation.
    pub reseller: String,
    /// The provider organisation that issued the invoices.
    pub provider: String,
    /// The first and last day of the billing period.
    pub period_start: Date,
    pub period_end: Date,
    /// The currency of the amounts.
    pub currency: String,
    /// How many invoices.
    pub invoices: u32,
    /// The sum of their subtotals (before tax).
    pub subtotal: Decimal,
    /// The sum of their totals (with tax).
    pub total: Decimal,
}

fn add(a: Decimal, b: Decimal) -> Result<Decimal, RatingError> {
    a.checked_add(b).ok_or(RatingError::Overflow("adding up charges"))
}

/// The charges per customer, sorted by customer name.
pub fn customer_charges(lines: &[LineItem]) -> Result<Vec<CustomerCharge>, RatingError> {
    let mut sums: BTreeMap<&str, Decimal> = BTreeMap::new();
    for line in lines {
        let sum = sums.entry(&line.customer).or_default();
        *sum = add(*sum, line.amount)?;
    }
    Ok(sums
        .into_iter()
        .map(|(customer, amount)| CustomerCharge {
            customer: customer.to_owned(),
            amount,
        })
        .collect())
}

/// The `n` customers with the largest amounts, largest first; equal amounts are ordered by customer name,
/// so the result does not depend on the order of `charges`. Entries of the same customer are added first.
pub fn top_customers(charges: &[CustomerCharge], n: usize) -> Result<Vec<CustomerCharge>, RatingError> {
    let mut sums: BTreeMap<&str, Decimal> = BTreeMap::new();
    for c in charges {
        let sum = sums.entry(&c.customer).or_default();
        *sum = add(*sum, c.amount)?;
    }
    let mut all: Vec<CustomerCharge> = sums
        .into_iter()
        .map(|(customer, amount)| CustomerCharge {
            customer: customer.to_owned(),
            amount,
        })
        .collect();
    all.sort_by(|a, b| b.amount.cmp(&a.amount).then_with(|| a.customer.cmp(&b.customer)));
    all.truncate(n);
    Ok(all)
}

/// Quantity and amount per (service, metric, unit), over all customers and bands, sorted by those keys.
pub fn metric_summary(lines: &[LineItem]) -> Result<Vec<MetricSummary>, RatingError> {
    let mut sums: BTreeMap<(&str, &str, &str), (Decimal, Decimal)> = BTreeMap::new();
    for line in lines {
        let (quantity, amount) = sums.entry((&line.service, &line.metric, &line.unit)).or_default();
        *quantity = quantity
            .checked_add(line.quantity)
            .ok_or(RatingError::Overflow("adding up usage"))?;
        *amount = add(*amount, line.amount)?;
    }
    Ok(sums
        .into_iter()
        .map(|((service, metric, unit), (quantity, amount))| MetricSummary {
            service: service.to_owned(),
            metric: metric.to_owned(),
            unit: unit.to_owned(),
            quantity: quantity.normalize(),
            amount,
        })
        .collect())
}

/// The estimated charges of `usage` (typically the current period so far, all customers): rates it and
/// summarises per metric and for the `top_n` largest customers. Amounts are before tax: tax is computed
/// per invoice.
pub fn estimate_charges(
    usage: &[UsageRecord],
    book: &PriceBook,
    currency: Currency,
    top_n: usize,
) -> Result<ChargeEstimate, RatingError> {
    let lines = rate(usage, book, currency)?;
    let estimated_charges = lines.iter().try_fold(Decimal::ZERO, |sum, l| add(sum, l.amount))?;
    Ok(ChargeEstimate {
        currency,
        estimated_charges: currency.round(estimated_charges),
        usage: metric_summary(&lines)?,
        top_customers: top_customers(&customer_charges(&lines)?, top_n)?,
    })
}

/// Totals of the invoices attributed to a reseller (invoices without a reseller are left out), per reseller,
/// issuing provider, period and currency, sorted by those keys; invoices in different currencies are never
/// added together. The amounts on invoices are already rounded, so the sums are exact.
pub fn reseller_totals<'a>(
    invoices: impl IntoIterator<Item = &'a InvoiceSpec>,
) -> Result<Vec<ResellerTotal>, RatingError> {
    type Key<'a> = (&'a str, &'a str, Date, Date, &'a str);
    let mut sums: BTreeMap<Key<'a>, ResellerTotal> = BTreeMap::new();
    for invoice in invoices {
        let Some(reseller) = invoice.reseller_ref.as_ref() else {
            continue;
        };
        let key = (
            reseller.name.as_str(),
            invoice.provider_org_ref.name.as_str(),
            invoice.period_start,
            invoice.period_end,
            invoice.currency.as_str(),
        );
        let entry = sums.entry(key).or_insert_with(|| ResellerTotal {
            reseller: reseller.name.clone(),
            provider: invoice.provider_org_ref.name.clone(),
            period_start: invoice.period_start,
            period_end: invoice.period_end,
            currency: invoice.currency.clone(),
            invoices: 0,
            subtotal: Decimal::ZERO,
            total: Decimal::ZERO,
        });
        entry.invoices += 1;
        entry.subtotal = add(entry.subtotal, invoice.subtotal)?;
        entry.total = add(entry.total, invoice.total)?;
    }
    Ok(sums.into_values().collect())
}
