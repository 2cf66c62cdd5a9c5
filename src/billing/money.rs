//! Currencies and the one rounding rule used for money.

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Serialize, Serializer};

/// A currency of ISO 4217 with the number of digits of its minor unit (2 for EUR and USD: cents; 0 for JPY
/// and KRW; 3 for BHD, KWD, OMR, JOD, TND, ...).
///
/// Only active ISO 4217 currencies are known; codes without a minor unit (gold, SDR, test codes) are refused.
/// Serialized as its code, e.g. `"EUR"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    code: &'static str,
    minor_units: u32,
}

/// A currency code that is not an active ISO 4217 currency with a minor unit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown currency {0:?}: expected an ISO 4217 code such as EUR, USD or JPY")]
pub struct UnknownCurrency(pub String);

impl Currency {
    /// The currency with this ISO 4217 alphabetic code. The code is matched without regard to ASCII case
    /// (`"eur"` is EUR); anything else that is not in the table is an error.
    pub fn from_code(code: &str) -> Result<Currency, UnknownCurrency> {
        let upper = code.to_ascii_uppercase();
        ISO_4217
            .iter()
            .find(|(c, _)| *c == upper)
            .map(|&(code, minor_units)| Currency { code, minor_units })
            .ok_or_else(|| UnknownCurrency(code.to_owned()))
    }

    /// The upper-case ISO 4217 code, e.g. `"EUR"`.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// How many decimal digits the minor unit has (2 for EUR, 0 for JPY, 3 for BHD).
    pub fn minor_units(&self) -> u32 {
        self.minor_units
    }

    /// `value` rounded to this currency's minor unit, half to even ("banker's rounding": 0.125 → 0.12,
    /// 0.135 → 0.14), and written with exactly that many decimal places (12 → 12.00 in EUR).
    ///
    /// This is the only rounding applied to money in this module.
    pub fn round(&self, value: Decimal) -> Decimal {
        round_half_even(value, self.minor_units)
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code)
    }
}

impl std::str::FromStr for Currency {
    type Err = UnknownCurrency;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::from_code(s)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code)
    }
}

/// `value` rounded half to even to `dp` decimal places, with its scale set to exactly `dp` where the
/// value's magnitude allows it (so amounts print as `12.00`, not `12`).
pub(crate) fn round_half_even(value: Decimal, dp: u32) -> Decimal {
    let mut rounded = value.round_dp_with_strategy(dp, RoundingStrategy::MidpointNearestEven);
    // Only ever raises the scale here (the value already has at most `dp` places), so it cannot round.
    rounded.rescale(dp);
    rounded
}

/// Active ISO 4217 currencies (list 1) with their minor-unit digits. Codes whose minor unit is "N.A."
/// (XAU, XDR, XXX, ...) are deliberately absent.
const ISO_4217: &[(&str, u32)] = &[
    ("AED", 2),
    ("AFN", 2),
    ("ALL", 2),
    ("AMD", 2),
    ("ANG", 2),
    ("AOA", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("AWG", 2),
    ("AZN", 2),
    ("BAM", 2),
    ("BBD", 2),
    ("BDT", 2),
    ("BGN", 2),
    ("BHD", 3),
    ("BIF", 0),
    ("BMD", 2),
    ("BND", 2),
    ("BOB", 2),
    ("BOV", 2),
    ("BRL", 2),
    ("BSD", 2),
    ("BTN", 2),
    ("BWP", 2),
    ("BYN", 2),
    ("BZD", 2),
    ("CAD", 2),
    ("CDF", 2),
    ("CHE", 2),
    ("CHF", 2),
    ("CHW", 2),
    ("CLF", 4),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("COU", 2),
    ("CRC", 2),
    ("CUP", 2),
    ("CVE", 2),
    ("CZK", 2),
    ("DJF", 0),
    ("DKK", 2),
    ("DOP", 2),
    ("DZD", 2),
    ("EGP", 2),
    ("ERN", 2),
    ("ETB", 2),
    ("EUR", 2),
    ("FJD", 2),
    ("FKP", 2),
    ("GBP", 2),
    ("GEL", 2),
    ("GHS", 2),
    ("GIP", 2),
    ("GMD", 2),
    ("GNF", 0),
    ("GTQ", 2),
    ("GYD", 2),
    ("HKD", 2),
    ("HNL", 2),
    ("HTG", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("IQD", 3),
    ("IRR", 2),
    ("ISK", 0),
    ("JMD", 2),
    ("JOD", 3),
    ("JPY", 0),
    ("KES", 2),
    ("KGS", 2),
    ("KHR", 2),
    ("KMF", 0),
    ("KPW", 2),
    ("KRW", 0),
    ("KWD", 3),
    ("KYD", 2),
    ("KZT", 2),
    ("LAK", 2),
    ("LBP", 2),
    ("LKR", 2),
    ("LRD", 2),
    ("LSL", 2),
    ("LYD", 3),
    ("MAD", 2),
    ("MDL", 2),
    ("MGA", 2),
    ("MKD", 2),
    ("MMK", 2),
    ("MNT", 2),
    ("MOP", 2),
    ("MRU", 2),
    ("MUR", 2),
    ("MVR", 2),
    ("MWK", 2),
    ("MXN", 2),
    ("MXV", 2),
    ("MYR", 2),
    ("MZN", 2),
    ("NAD", 2),
    ("NGN", 2),
    ("NIO", 2),
    ("NOK", 2),
    ("NPR", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PAB", 2),
    ("PEN", 2),
    ("PGK", 2),
    ("PHP", 2),
    ("PKR", 2),
    ("PLN", 2),
    ("PYG", 0),
    ("QAR", 2),
    ("RON", 2),
    ("RSD", 2),
    ("RUB", 2),
    ("RWF", 0),
    ("SAR", 2),
    ("SBD", 2),
    ("SCR", 2),
    ("SDG", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("SHP", 2),
    ("SLE", 2),
    ("SOS", 2),
    ("SRD", 2),
    ("SSP", 2),
    ("STN", 2),
    ("SVC", 2),
    ("SYP", 2),
    ("SZL", 2),
    ("THB", 2),
    ("TJS", 2),
    ("TMT", 2),
    ("TND", 3),
    ("TOP", 2),
    ("TRY", 2),
    ("TTD", 2),
    ("TWD", 2),
    ("TZS", 2),
    ("UAH", 2),
    ("UGX", 0),
    ("USD", 2),
    ("USN", 2),
    ("UYI", 0),
    ("UYU", 2),
    ("UYW", 4),
    ("UZS", 2),
    ("VED", 2),
    ("VES", 2),
    ("VND", 0),
    ("VUV", 0),
    ("WST", 2),
    ("XAF", 0),
    ("XCD", 2),
    ("XCG", 2),
    ("XOF", 0),
    ("XPF", 0),
    ("YER", 2),
    ("ZAR", 2),
    ("ZMW", 2),
    ("ZWG", 2),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn minor_units_follow_iso_4217() {
        for (code, digits) in [("EUR", 2), ("USD", 2), ("JPY", 0), ("KRW", 0), ("BHD", 3), ("KWD", 3)] {
            assert_eq!(Currency::from_code(code).unwrap().minor_units(), digits, "{code}");
        }
        for code in ["OMR", "JOD", "TND"] {
            assert_eq!(Currency::from_code(code).unwrap().minor_units(), 3, "{code}");
        }
    }

    #[test]
    fn code_is_case_insensitive_and_unknown_codes_are_refused() {
        assert_eq!(Currency::from_code("eur").unwrap().code(), "EUR");
        assert_eq!(Currency::from_code("XYZ"), Err(UnknownCurrency("XYZ".into())));
        assert!(Currency::from_code("").is_err());
        assert!(Currency::from_code("EURO").is_err());
        assert!(Currency::from_code("XAU").is_err(), "gold has no minor unit");
        let msg = Currency::from_code("ABC").unwrap_err().to_string();
        assert!(msg.contains("ABC"), "{msg}");
    }

    #[test]
    fn table_is_sorted_without_duplicates_and_well_formed() {
        for pair in ISO_4217.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{:?} before {:?}", pair[0], pair[1]);
        }
        for (code, digits) in ISO_4217 {
            assert!(
                code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()),
                "{code}"
            );
            assert!(*digits <= 4, "{code}");
        }
    }

    #[test]
    fn rounding_is_half_even_to_the_minor_unit() {
        let eur = Currency::from_code("EUR").unwrap();
        assert_eq!(eur.round(d("0.125")).to_string(), "0.12");
        assert_eq!(eur.round(d("0.135")).to_string(), "0.14");
        assert_eq!(eur.round(d("0.1250001")).to_string(), "0.13");
        assert_eq!(eur.round(d("2.675")).to_string(), "2.68");
        assert_eq!(eur.round(d("12")).to_string(), "12.00");
        assert_eq!(eur.round(d("-0.125")).to_string(), "-0.12");

        let jpy = Currency::from_code("JPY").unwrap();
        assert_eq!(jpy.round(d("2.5")).to_string(), "2");
        assert_eq!(jpy.round(d("3.5")).to_string(), "4");
        assert_eq!(jpy.round(d("1234.49")).to_string(), "1234");

        let bhd = Currency::from_code("BHD").unwrap();
        assert_eq!(bhd.round(d("0.0125")).to_string(), "0.012");
        assert_eq!(bhd.round(d("0.0135")).to_string(), "0.014");
        assert_eq!(bhd.round(d("7")).to_string(), "7.000");
    }
}
