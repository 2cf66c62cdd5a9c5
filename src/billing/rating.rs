//! Rating: usage × price book → line items.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;
use serde::Serialize;

use super::money::Currency;
use super::price::PriceBook;

/// A metered quantity reported by the endpoint: how much of one metric one subscription of one customer
/// used in the rated window. Several records with the same key are added up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageRecord {
    /// The customer organisation (its Kubernetes name).
    pub customer: String,
    /// The subscription (the CloudServiceSubscription's name).
    pub subscription: String,
    /// The service type, matched against the price book.
    pub service: String,
    /// The metric, matched against the price book.
    pub metric: String,
    /// The unit of `quantity`; must equal the unit of the price.
    pub unit: String,
    /// The quantity used; never negative.
    pub quantity: Decimal,
}

/// One line of an invoice: a quantity of one metric of one subscription at one unit price.
///
/// `amount` is `quantity × unit_price` rounded half to even to the currency's minor unit, with exactly
/// that many decimal places. With a graduated price, a subscription's metric gives one line per price band
/// that received a quantity, `tier` naming the band (from 1); `tier` is `None` for a flat price.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LineItem {
    /// The customer organisation.
    pub customer: String,
    /// The subscription.
    pub subscription: String,
    /// The service type.
    pub service: String,
    /// The metric.
    pub metric: String,
    /// The band of a graduated price (from 1), or `None` for a flat price.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<u32>,
    /// The quantity, without trailing zeros (`3.5`, not `3.50`).
    pub quantity: Decimal,
    /// The unit of the quantity.
    pub unit: String,
    /// The price of one unit, as written in the price book.
    pub unit_price: Decimal,
    /// `quantity × unit_price`, rounded half to even to the currency's minor unit.
    pub amount: Decimal,
}

/// Why usage could not be rated or invoiced.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RatingError {
    /// Usage of a metric that the price book has no price for. Unpriced usage is never dropped silently.
    #[error(
        "no price for service {service:?}, metric {metric:?} (used by subscription {subscription:?}): \
         add it to the price book"
    )]
    Unpriced {
        service: String,
        metric: String,
        subscription: String,
    },
    /// Usage reported in another unit than the price's.
    #[error("usage of service {service:?}, metric {metric:?} is in {found:?} but the price is per {expected:?}")]
    UnitMismatch {
        service: String,
        metric: String,
        expected: String,
        found: String,
    },
    /// A negative usage quantity.
    #[error("negative usage {quantity} of service {service:?}, metric {metric:?} (subscription {subscription:?})")]
    NegativeQuantity {
        service: String,
        metric: String,
        subscription: String,
        quantity: Decimal,
    },
    /// A record or line of another customer than the invoice's.
    #[error("usage of customer {found:?} cannot go on the invoice of customer {expected:?}")]
    CustomerMismatch { expected: String, found: String },
    /// A tax rate outside 0..=1.
    #[error("tax rate {0} is out of range: it is a fraction between 0 and 1 (0.19 for 19%)")]
    TaxRate(Decimal),
    /// A number too large for the decimal type (about 7.9 × 10²⁸).
    #[error("amount too large to compute while {0}")]
    Overflow(&'static str),
}

/// Adds `values`, failing instead of overflowing.
pub(crate) fn checked_sum(
    values: impl IntoIterator<Item = Decimal>,
    what: &'static str,
) -> Result<Decimal, RatingError> {
    values.into_iter().try_fold(Decimal::ZERO, |sum, v| {
        sum.checked_add(v).ok_or(RatingError::Overflow(what))
    })
}

/// Rates `usage` with `book` in `currency`.
///
/// - Records are first added up per (customer, subscription, service, metric); the order of the records and
///   how a quantity is split into records do not matter.
/// - Each key gives one line per price band it reaches (one line for a flat price): `amount` = quantity ×
///   unit price, rounded half to even to the currency's minor unit.
/// - Keys whose total quantity is zero give no line.
/// - Lines are sorted by customer, subscription, service, metric and band, so the result depends only on the
///   usage and the book.
///
/// Errors: usage with no price in the book ([`RatingError::Unpriced`], naming service and metric: nothing
/// is dropped silently), a unit that differs from the price's, a negative quantity, and overflow. When
/// several keys are wrong, the error is about the first of them in the sort order above, whatever the
/// order of the records.
pub fn rate(usage: &[UsageRecord], book: &PriceBook, currency: Currency) -> Result<Vec<LineItem>, RatingError> {
    let mut totals: BTreeMap<Key<'_>, Aggregate<'_>> = BTreeMap::new();
    for r in usage {
        let key = (
            r.customer.as_str(),
            r.subscription.as_str(),
            r.service.as_str(),
            r.metric.as_str(),
        );
        let agg = totals.entry(key).or_default();
        agg.quantity = agg.quantity.and_then(|q| q.checked_add(r.quantity));
        agg.units.insert(r.unit.as_str());
        if r.quantity < Decimal::ZERO {
            agg.most_negative = Some(agg.most_negative.map_or(r.quantity, |q| q.min(r.quantity)));
        }
    }
    let mut lines = Vec::new();
    for ((customer, subscription, service, metric), agg) in totals {
        if let Some(quantity) = agg.most_negative {
            return Err(RatingError::NegativeQuantity {
                service: service.to_owned(),
                metric: metric.to_owned(),
                subscription: subscription.to_owned(),
                quantity,
            });
        }
        let quantity = agg.quantity.ok_or(RatingError::Overflow("adding up usage"))?;
        let price = book.get(service, metric).ok_or_else(|| RatingError::Unpriced {
            service: service.to_owned(),
            metric: metric.to_owned(),
            subscription: subscription.to_owned(),
        })?;
        if let Some(found) = agg.units.iter().find(|&&u| u != price.unit) {
            return Err(RatingError::UnitMismatch {
                service: service.to_owned(),
                metric: metric.to_owned(),
                expected: price.unit.clone(),
                found: (*found).to_owned(),
            });
        }
        if quantity.is_zero() {
            continue;
        }
        for (tier, band_quantity, unit_price) in price.bands(quantity) {
            let exact = band_quantity
                .checked_mul(unit_price)
                .ok_or(RatingError::Overflow("rating a line"))?;
            lines.push(LineItem {
                customer: customer.to_owned(),
                subscription: subscription.to_owned(),
                service: service.to_owned(),
                metric: metric.to_owned(),
                tier,
                quantity: band_quantity.normalize(),
                unit: price.unit.clone(),
                unit_price,
                amount: currency.round(exact),
            });
        }
    }
    Ok(lines)
}

/// (customer, subscription, service, metric)
type Key<'a> = (&'a str, &'a str, &'a str, &'a str);

struct Aggregate<'a> {
    /// The sum so far; `None` once it overflowed.
    quantity: Option<Decimal>,
    units: BTreeSet<&'a str>,
    most_negative: Option<Decimal>,
}

impl Default for Aggregate<'_> {
    fn default() -> Self {
        Aggregate {
            quantity: Some(Decimal::ZERO),
            units: BTreeSet::new(),
            most_negative: None,
        }
    }
}
