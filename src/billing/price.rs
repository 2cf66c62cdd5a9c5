//! The price book: what one unit of each metered quantity costs.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Serialize;

/// The price of one metric of one service.
///
/// Flat when `tiers` is empty: every unit costs `unit_price`. Graduated otherwise: the first
/// `tiers[0].up_to` units cost `tiers[0].unit_price`, the units above that up to `tiers[1].up_to` cost
/// `tiers[1].unit_price`, and so on; the units above the last threshold cost `unit_price`. Tiers apply to
/// the quantity of one line (one subscription, service and metric within the rated window), not across
/// subscriptions or customers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Price {
    /// The service type, e.g. `compute`.
    pub service: String,
    /// The metric, e.g. `vcpu-hours`.
    pub metric: String,
    /// The unit the quantity is measured in, e.g. `vCPU-h`; usage must be reported in the same unit.
    pub unit: String,
    /// The price of one unit (of the units above the last tier, if there are tiers).
    pub unit_price: Decimal,
    /// Graduated tiers, thresholds strictly increasing; empty for a flat price.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<Tier>,
}

/// One band of a graduated price: the units up to `up_to` (above the previous tier's threshold) cost
/// `unit_price` each.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tier {
    /// The quantity up to which (inclusive) this band's price applies.
    pub up_to: Decimal,
    /// The price of one unit in this band.
    pub unit_price: Decimal,
}

impl Price {
    /// A flat per-unit price.
    pub fn flat(service: &str, metric: &str, unit: &str, unit_price: Decimal) -> Price {
        Price {
            service: service.to_owned(),
            metric: metric.to_owned(),
            unit: unit.to_owned(),
            unit_price,
            tiers: Vec::new(),
        }
    }

    /// A graduated price: `tiers` as `(up_to, unit_price)`, then `above` for every unit beyond the last.
    pub fn graduated(service: &str, metric: &str, unit: &str, tiers: &[(Decimal, Decimal)], above: Decimal) -> Price {
        Price {
            tiers: tiers
                .iter()
                .map(|&(up_to, unit_price)| Tier { up_to, unit_price })
                .collect(),
            ..Price::flat(service, metric, unit, above)
        }
    }

    /// Splits `quantity` (not negative) into the bands of this price: `(band, quantity, unit_price)` with
    /// `band` counted from 1 (the band above the last tier is `tiers.len() + 1`), or `None` for a flat
    /// price. Bands that receive nothing are left out; a flat price always yields one entry.
    pub(crate) fn bands(&self, quantity: Decimal) -> Vec<(Option<u32>, Decimal, Decimal)> {
        if self.tiers.is_empty() {
            return vec![(None, quantity, self.unit_price)];
        }
        let mut bands = Vec::new();
        let mut lower = Decimal::ZERO;
        let prices = self.tiers.iter().map(|t| (Some(t.up_to), t.unit_price));
        for (index, (up_to, unit_price)) in prices.chain([(None, self.unit_price)]).enumerate() {
            if quantity <= lower {
                break;
            }
            let upper = up_to.map_or(quantity, |u| u.min(quantity));
            // Thresholds are validated to be increasing, so `upper > lower` here and nothing overflows:
            // both lie between zero and `quantity`.
            bands.push((Some(index as u32 + 1), upper - lower, unit_price));
            if let Some(u) = up_to {
                lower = u;
            }
        }
        bands
    }
}

/// A set of prices, at most one per (service, metric).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PriceBook {
    entries: BTreeMap<(String, String), Price>,
}

/// Why a price book was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PriceBookError {
    /// Two prices for the same service and metric.
    #[error("the price book has more than one price for service {service:?}, metric {metric:?}")]
    Duplicate { service: String, metric: String },
    /// A negative unit price (credits and discounts are not prices).
    #[error("the price for service {service:?}, metric {metric:?} is negative")]
    NegativePrice { service: String, metric: String },
    /// Tier thresholds that are not positive and strictly increasing.
    #[error("the tiers of service {service:?}, metric {metric:?} must have positive, strictly increasing thresholds")]
    BadTiers { service: String, metric: String },
    /// An empty service, metric or unit.
    #[error("a price has an empty service, metric or unit (service {service:?}, metric {metric:?})")]
    EmptyName { service: String, metric: String },
}

impl PriceBook {
    /// A price book from its entries, checked: one price per (service, metric), no negative prices, tier
    /// thresholds positive and strictly increasing, and non-empty names and units.
    pub fn new(entries: impl IntoIterator<Item = Price>) -> Result<PriceBook, PriceBookError> {
        let mut book = BTreeMap::new();
        for price in entries {
            let (service, metric) = (price.service.clone(), price.metric.clone());
            if service.is_empty() || metric.is_empty() || price.unit.is_empty() {
                return Err(PriceBookError::EmptyName { service, metric });
            }
            if price.unit_price < Decimal::ZERO || price.tiers.iter().any(|t| t.unit_price < Decimal::ZERO) {
                return Err(PriceBookError::NegativePrice { service, metric });
            }
            let mut lower = Decimal::ZERO;
            for tier in &price.tiers {
                if tier.up_to <= lower {
                    return Err(PriceBookError::BadTiers { service, metric });
                }
                lower = tier.up_to;
            }
            if book.insert((service.clone(), metric.clone()), price).is_some() {
                return Err(PriceBookError::Duplicate { service, metric });
            }
        }
        Ok(PriceBook { entries: book })
    }

    /// The price of `metric` of `service`, if the book has one.
    pub fn get(&self, service: &str, metric: &str) -> Option<&Price> {
        self.entries.get(&(service.to_owned(), metric.to_owned()))
    }

    /// Every price, ordered by service, then metric.
    pub fn prices(&self) -> impl Iterator<Item = &Price> {
        self.entries.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn refuses_duplicates_negative_prices_and_bad_tiers() {
        let p = Price::flat("compute", "vcpu-hours", "vCPU-h", d("0.05"));
        assert_eq!(
            PriceBook::new([p.clone(), p.clone()]),
            Err(PriceBookError::Duplicate {
                service: "compute".into(),
                metric: "vcpu-hours".into()
            })
        );
        let negative = Price::flat("compute", "vcpu-hours", "vCPU-h", d("-0.01"));
        assert!(matches!(
            PriceBook::new([negative]),
            Err(PriceBookError::NegativePrice { .. })
        ));
        let negative_tier = Price::graduated("s", "m", "u", &[(d("10"), d("-1"))], d("1"));
        assert!(matches!(
            PriceBook::new([negative_tier]),
            Err(PriceBookError::NegativePrice { .. })
        ));
        let zero_threshold = Price::graduated("s", "m", "u", &[(d("0"), d("1"))], d("1"));
        assert!(matches!(
            PriceBook::new([zero_threshold]),
            Err(PriceBookError::BadTiers { .. })
        ));
        let not_increasing = Price::graduated("s", "m", "u", &[(d("10"), d("2")), (d("10"), d("1"))], d("1"));
        assert!(matches!(
            PriceBook::new([not_increasing]),
            Err(PriceBookError::BadTiers { .. })
        ));
        let no_unit = Price::flat("s", "m", "", d("1"));
        assert!(matches!(
            PriceBook::new([no_unit]),
            Err(PriceBookError::EmptyName { .. })
        ));
        let free = Price::flat("s", "m", "u", d("0"));
        assert!(PriceBook::new([free, p]).is_ok());
    }

    #[test]
    fn graduated_bands_split_the_quantity_at_the_thresholds() {
        let price = Price::graduated(
            "s",
            "m",
            "u",
            &[(d("100"), d("0.10")), (d("500"), d("0.08"))],
            d("0.05"),
        );
        let band = |b: u32, q: &str, p: &str| (Some(b), d(q), d(p));
        assert_eq!(price.bands(d("0")), vec![]);
        assert_eq!(price.bands(d("40")), vec![band(1, "40", "0.10")]);
        assert_eq!(price.bands(d("100")), vec![band(1, "100", "0.10")]);
        assert_eq!(
            price.bands(d("100.5")),
            vec![band(1, "100", "0.10"), band(2, "0.5", "0.08")]
        );
        assert_eq!(
            price.bands(d("750")),
            vec![band(1, "100", "0.10"), band(2, "400", "0.08"), band(3, "250", "0.05")]
        );
        let flat = Price::flat("s", "m", "u", d("0.3"));
        assert_eq!(flat.bands(d("0")), vec![(None, d("0"), d("0.3"))]);
        assert_eq!(flat.bands(d("7")), vec![(None, d("7"), d("0.3"))]);
    }
}
