//! Exports for people and spreadsheets: invoices as CSV or JSON, and a usage report as CSV.
//!
//! CSV follows RFC 4180: a header row, fields separated by commas, records ended by CRLF, a field quoted
//! (with `"` doubled inside) when it holds a comma, a quote, a CR or an LF. Numbers are written as plain
//! decimals: a dot, no thousands separators, no exponent; money with exactly the currency's minor-unit
//! digits. Dates are ISO 8601 (`2026-11-30`). Text is UTF-8 without a byte-order mark.

use std::collections::BTreeMap;
use std::io;

use rust_decimal::Decimal;

use super::invoice::InvoiceDraft;
use super::money::Currency;
use super::rating::{LineItem, RatingError};

/// The columns of [`invoices_csv`].
pub const INVOICE_CSV_HEADER: [&str; 19] = [
    "invoice",
    "customer",
    "provider",
    "reseller",
    "period_first_day",
    "period_last_day",
    "currency",
    "subscription",
    "service",
    "metric",
    "tier",
    "quantity",
    "unit",
    "unit_price",
    "amount",
    "invoice_subtotal",
    "tax_rate",
    "invoice_tax",
    "invoice_total",
];

/// The columns of [`usage_report_csv`].
pub const USAGE_CSV_HEADER: [&str; 8] = [
    "service",
    "metric",
    "customer",
    "quantity",
    "unit",
    "unit_price",
    "amount",
    "currency",
];

/// Invoices as CSV: one row per line item, in the order given and then the order of the lines.
///
/// Each row repeats its invoice's columns (name, customer, provider, reseller, period, currency) and ends
/// with the invoice's subtotal, tax rate, tax and total, so the sheet can be filtered and pivoted; summing
/// `amount` over one invoice gives `invoice_subtotal`. An invoice without lines gets one row with the line
/// columns empty, so that every invoice appears. `period_last_day` is the last day included.
pub fn invoices_csv(invoices: &[InvoiceDraft]) -> String {
    let mut out = String::new();
    push_record(&mut out, INVOICE_CSV_HEADER);
    for inv in invoices {
        let last_day = inv
            .period
            .end_date()
            .yesterday()
            .map(|d| d.to_string())
            .unwrap_or_default();
        let head = [
            inv.name.clone(),
            inv.customer.clone(),
            inv.provider.clone(),
            inv.reseller.clone().unwrap_or_default(),
            inv.period.start_date().to_string(),
            last_day,
            inv.currency.to_string(),
        ];
        let tail = [
            inv.subtotal.to_string(),
            inv.tax_rate.to_string(),
            inv.tax.to_string(),
            inv.total.to_string(),
        ];
        let empty_line: [String; 8] = Default::default();
        let lines: Vec<[String; 8]> = if inv.lines.is_empty() {
            vec![empty_line]
        } else {
            inv.lines
                .iter()
                .map(|l| {
                    [
                        l.subscription.clone(),
                        l.service.clone(),
                        l.metric.clone(),
                        l.tier.map(|t| t.to_string()).unwrap_or_default(),
                        l.quantity.to_string(),
                        l.unit.clone(),
                        l.unit_price.to_string(),
                        l.amount.to_string(),
                    ]
                })
                .collect()
        };
        for line in lines {
            push_record(&mut out, head.iter().chain(&line).chain(&tail));
        }
    }
    out
}

/// Writes [`invoices_csv`] to `w`.
pub fn write_invoices_csv(w: &mut impl io::Write, invoices: &[InvoiceDraft]) -> io::Result<()> {
    w.write_all(invoices_csv(invoices).as_bytes())
}

/// Invoices as a pretty-printed JSON array of [`InvoiceDraft`] (camelCase keys; every decimal as a
/// string, such as `"12.50"`, so no precision is lost to floating point).
pub fn invoices_json(invoices: &[InvoiceDraft]) -> serde_json::Result<String> {
    serde_json::to_string_pretty(invoices)
}

/// Writes [`invoices_json`] to `w`.
pub fn write_invoices_json(w: &mut impl io::Write, invoices: &[InvoiceDraft]) -> serde_json::Result<()> {
    serde_json::to_writer_pretty(w, invoices)
}

/// A usage report as CSV: service, metric, customer, quantity, unit, unit price, amount, currency.
///
/// Lines of one customer with the same service, metric, unit and unit price are added up (over
/// subscriptions and over bands of a graduated price that share a price); rows are sorted by service,
/// metric, customer and unit price. `amount` is the sum of the rounded line amounts, so the column adds up
/// to the invoices' subtotals.
pub fn usage_report_csv(lines: &[LineItem], currency: Currency) -> Result<String, RatingError> {
    // (service, metric, customer, unit, unit price) → (quantity, amount)
    type Row<'a> = (&'a str, &'a str, &'a str, &'a str, Decimal);
    let mut rows: BTreeMap<Row<'_>, (Decimal, Decimal)> = BTreeMap::new();
    for l in lines {
        let key = (
            l.service.as_str(),
            l.metric.as_str(),
            l.customer.as_str(),
            l.unit.as_str(),
            l.unit_price,
        );
        let (quantity, amount) = rows.entry(key).or_default();
        *quantity = quantity
            .checked_add(l.quantity)
            .ok_or(RatingError::Overflow("adding up usage"))?;
        *amount = amount
            .checked_add(l.amount)
            .ok_or(RatingError::Overflow("adding up amounts"))?;
    }
    let mut out = String::new();
    push_record(&mut out, USAGE_CSV_HEADER);
    for ((service, metric, customer, unit, unit_price), (quantity, amount)) in rows {
        push_record(
            &mut out,
            [
                service.to_owned(),
                metric.to_owned(),
                customer.to_owned(),
                quantity.normalize().to_string(),
                unit.to_owned(),
                unit_price.to_string(),
                currency.round(amount).to_string(),
                currency.to_string(),
            ],
        );
    }
    Ok(out)
}

/// Writes [`usage_report_csv`] to `w`.
pub fn write_usage_report_csv(w: &mut impl io::Write, lines: &[LineItem], currency: Currency) -> io::Result<()> {
    let csv = usage_report_csv(lines, currency).map_err(io::Error::other)?;
    w.write_all(csv.as_bytes())
}

/// Appends one RFC 4180 record, CRLF included.
fn push_record<S: AsRef<str>>(out: &mut String, fields: impl IntoIterator<Item = S>) {
    for (i, field) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let field = field.as_ref();
        if field.contains([',', '"', '\r', '\n']) {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(field);
        }
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A strict RFC 4180 reader, for the tests: every record must end with CRLF.
    pub(crate) fn parse_csv(text: &str) -> Vec<Vec<String>> {
        let mut records = Vec::new();
        let mut record = Vec::new();
        let mut field = String::new();
        let mut chars = text.chars().peekable();
        let mut quoted_field = false;
        while let Some(c) = chars.next() {
            match c {
                '"' if field.is_empty() && !quoted_field => {
                    quoted_field = true;
                    loop {
                        match chars.next().expect("unterminated quoted field") {
                            '"' if chars.peek() == Some(&'"') => {
                                chars.next();
                                field.push('"');
                            }
                            '"' => break,
                            other => field.push(other),
                        }
                    }
                }
                '"' => panic!("quote inside an unquoted field"),
                ',' => {
                    record.push(std::mem::take(&mut field));
                    quoted_field = false;
                }
                '\r' => {
                    assert_eq!(chars.next(), Some('\n'), "CR without LF");
                    record.push(std::mem::take(&mut field));
                    records.push(std::mem::take(&mut record));
                    quoted_field = false;
                }
                '\n' => panic!("bare LF outside quotes"),
                other => {
                    assert!(!quoted_field, "text after a closing quote");
                    field.push(other);
                }
            }
        }
        assert!(field.is_empty() && record.is_empty(), "last record not ended by CRLF");
        records
    }

    #[test]
    fn quotes_only_what_needs_quoting() {
        let mut out = String::new();
        push_record(
            &mut out,
            ["plain", "a,b", "say \"hi\"", "two\nlines", "cr\rhere", "", "1234.50"],
        );
        assert_eq!(
            out,
            "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\"cr\rhere\",,1234.50\r\n"
        );
    }

    proptest! {
        #![proptest_config(crate::billing::tests::proptest_config())]
        #[test]
        fn records_read_back_as_written(fields in proptest::collection::vec("\\PC*|[,\"\r\n a]{0,6}", 1..6)) {
            let mut out = String::new();
            push_record(&mut out, &fields);
            push_record(&mut out, ["end"]);
            prop_assert_eq!(parse_csv(&out), vec![fields.clone(), vec!["end".to_owned()]]);
        }
    }
}
