//! Money and other exact decimal numbers.
//!
//! Amounts, prices and usage quantities are decimals, never floats. In YAML and JSON they are strings such
//! as `"0.0125"` or `"1250.00"` (a number would be rounded by some YAML and JSON tools), with up to 15
//! digits before the decimal point and 10 after, so every value fits [`Decimal`] exactly. Currencies are
//! ISO 4217 codes such as `EUR` or `USD`.

use rust_decimal::Decimal;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// A decimal number, possibly negative, as a string.
pub const DECIMAL: &str = r"^-?[0-9]{1,15}(\.[0-9]{1,10})?$";

/// A rate between 0 and 1 inclusive, as a string, e.g. `"0.21"` for 21 %.
pub const RATE: &str = r"^(0(\.[0-9]{1,10})?|1(\.0{1,10})?)$";

/// An ISO 4217 currency code.
pub const CURRENCY: &str = r"^[A-Z]{3}$";

/// Schema of a decimal string that may be negative.
pub fn decimal(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "pattern": DECIMAL,
        "maxLength": 27,
        "description": "A decimal number as a string, e.g. \"-12.50\"."
    })
}

/// Schema of a decimal string that is zero or more. The pattern checks the shape and a rule the sign, so that
/// a negative value is refused with a message saying so rather than with the pattern.
pub fn non_negative_decimal(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "pattern": DECIMAL,
        "maxLength": 27,
        "description": "A decimal number of zero or more as a string, e.g. \"0.0125\".",
        "x-kubernetes-validations": [{
            "rule": "!self.startsWith('-')",
            "message": "must be zero or more, not negative",
        }]
    })
}

/// Schema of [`Money`] whose amount is zero or more, for amounts people write (a committed amount); the
/// amounts Navigator writes may be negative (a commitment exceeded, a credit).
pub fn non_negative_money(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = Money::json_schema(generator);
    let mut amount = non_negative_decimal(generator);
    amount.insert(
        "description".into(),
        "The amount, zero or more, as a decimal string, e.g. `\"250000.00\"`.".into(),
    );
    let properties = schema.get_mut("properties").and_then(|p| p.as_object_mut());
    properties
        .expect("Money has properties")
        .insert("amount".into(), amount.into());
    schema
}

/// Schema of a rate between 0 and 1 as a decimal string.
pub fn rate(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "pattern": RATE,
        "maxLength": 12,
        "description": "A rate between 0 and 1 as a decimal string, e.g. \"0.21\"."
    })
}

/// An amount of money in one currency.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Money {
    /// The amount as a decimal string, e.g. `"1250.00"`.
    #[serde(with = "rust_decimal::serde::str")]
    #[schemars(schema_with = "decimal")]
    pub amount: Decimal,
    /// ISO 4217 currency code, e.g. `EUR`.
    #[schemars(regex(pattern = CURRENCY), length(min = 3, max = 3))]
    pub currency: String,
}

impl Money {
    /// `amount` in `currency`.
    pub fn new(amount: Decimal, currency: impl Into<String>) -> Self {
        Self {
            amount,
            currency: currency.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn money_is_a_decimal_string_and_keeps_its_scale() {
        let money: Money = serde_json::from_value(json!({"amount": "1250.50", "currency": "EUR"})).unwrap();
        assert_eq!(money.amount, Decimal::new(125050, 2));
        assert_eq!(
            serde_json::to_value(&money).unwrap(),
            json!({"amount": "1250.50", "currency": "EUR"})
        );
    }

    #[test]
    fn a_float_amount_is_refused() {
        assert!(serde_json::from_value::<Money>(json!({"amount": 12.5, "currency": "EUR"})).is_err());
    }

    #[test]
    fn the_largest_value_the_pattern_allows_fits_a_decimal() {
        let widest = format!("-{}.{}", "9".repeat(15), "9".repeat(10));
        assert!(widest.parse::<Decimal>().is_ok());
        assert_eq!(widest.len(), 27);
    }
}
