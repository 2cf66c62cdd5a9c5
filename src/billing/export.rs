//! Exports for people and spreadsheets: Invoice resources as CSV or JSON, and a usage report as CSV.
//!
//! The input is the Invoice resources as they are in the cluster (what the customer is billed), so an
//! export needs nothing but read access to them.
//!
//! CSV follows RFC 4180 (written by the `csv` crate): a header row, fields separated by commas, records
//! ended by CRLF, a field quoted (with `"` doubled inside) when it holds a comma, a quote, a CR or an LF.
//! Numbers are plain decimals: a dot, no thousands separators, no exponent; money with exactly the
//! currency's minor-unit digits. Dates are ISO 8601 (`2026-11-30`). Text is UTF-8 without a byte-order mark.
//!
//! Text cells that a spreadsheet would take for a formula (starting with `=`, `+`, `-`, `@`, a tab or a CR)
//! are written with a leading `'`, which spreadsheets show as text: a unit or a name chosen by someone
//! else cannot run as a formula in the reader's spreadsheet. Number cells are written from decimals and
//! never guarded, so a negative amount stays a number.

use std::borrow::Cow;
use std::collections::BTreeMap;

use kube::ResourceExt;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::api::Invoice;
use crate::api::invoice::InvoiceSpec;

/// The columns of [`invoices_csv`].
pub const INVOICE_CSV_HEADER: [&str; 20] = [
    "invoice",
    "namespace",
    "customer",
    "provider",
    "reseller",
    "period_first_day",
    "period_last_day",
    "issued_at",
    "currency",
    "subscription",
    "service",
    "metric",
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
pub const USAGE_CSV_HEADER: [&str; 10] = [
    "service",
    "metric",
    "customer",
    "quantity",
    "unit",
    "unit_price",
    "amount",
    "currency",
    "period_first_day",
    "period_last_day",
];

/// Why an export could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("writing CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("writing JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the numbers are too large to add up")]
    Overflow,
}

/// `text` as a spreadsheet cell: with a leading `'` when a spreadsheet would read it as a formula.
pub fn spreadsheet_text(text: &str) -> Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

fn csv_writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new())
}

fn finish(writer: csv::Writer<Vec<u8>>) -> Result<String, ExportError> {
    let bytes = writer
        .into_inner()
        .map_err(|e| ExportError::Csv(e.into_error().into()))?;
    // Every field written was a Rust string, so the bytes are UTF-8.
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Invoices as CSV: one row per line item, in the order given and then the order of the lines.
///
/// Each row repeats its invoice's columns (name, namespace, customer, provider, reseller, period, issue
/// time, currency) and ends with the invoice's subtotal, tax rate, tax and total, so the sheet can be
/// filtered and pivoted; summing `amount` over one invoice gives `invoice_subtotal`. An invoice without
/// lines gets one row with the line columns empty, so that every invoice appears. `period_last_day` is the
/// last day included.
pub fn invoices_csv(invoices: &[Invoice]) -> Result<String, ExportError> {
    let mut w = csv_writer();
    w.write_record(INVOICE_CSV_HEADER)?;
    for invoice in invoices {
        let spec = &invoice.spec;
        let head: [String; 9] = [
            spreadsheet_text(&invoice.name_any()).into_owned(),
            spreadsheet_text(&invoice.namespace().unwrap_or_default()).into_owned(),
            spreadsheet_text(&spec.customer_org_ref.name).into_owned(),
            spreadsheet_text(&spec.provider_org_ref.name).into_owned(),
            spec.reseller_ref
                .as_ref()
                .map(|r| spreadsheet_text(&r.name).into_owned())
                .unwrap_or_default(),
            spec.period_start.to_string(),
            spec.period_end.to_string(),
            spec.issued_at.0.to_string(),
            spreadsheet_text(&spec.currency).into_owned(),
        ];
        let tail = [
            spec.subtotal.to_string(),
            spec.tax_rate.to_string(),
            spec.tax.to_string(),
            spec.total.to_string(),
        ];
        let lines: Vec<[String; 7]> = if spec.line_items.is_empty() {
            vec![Default::default()]
        } else {
            spec.line_items
                .iter()
                .map(|l| {
                    [
                        spreadsheet_text(&l.subscription).into_owned(),
                        spreadsheet_text(&l.service).into_owned(),
                        spreadsheet_text(&l.metric).into_owned(),
                        l.quantity.to_string(),
                        spreadsheet_text(&l.unit).into_owned(),
                        l.unit_price.to_string(),
                        l.amount.to_string(),
                    ]
                })
                .collect()
        };
        for line in lines {
            w.write_record(head.iter().chain(&line).chain(&tail))?;
        }
    }
    finish(w)
}

/// One invoice as exported to JSON: its name and namespace, then its spec's fields.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExportedInvoice<'a> {
    name: String,
    namespace: String,
    #[serde(flatten)]
    spec: &'a InvoiceSpec,
}

/// Invoices as a pretty-printed JSON array: each invoice's `name` and `namespace` and the fields of its
/// spec (camelCase keys as in the resource; every decimal as a string such as `"12.50"`, so no precision is
/// lost to floating point).
pub fn invoices_json(invoices: &[Invoice]) -> Result<String, ExportError> {
    let exported: Vec<ExportedInvoice<'_>> = invoices
        .iter()
        .map(|i| ExportedInvoice {
            name: i.name_any(),
            namespace: i.namespace().unwrap_or_default(),
            spec: &i.spec,
        })
        .collect();
    Ok(serde_json::to_string_pretty(&exported)?)
}

/// A usage report as CSV: service, metric, customer, quantity, unit, unit price, amount, currency and the
/// billing period, from the line items of `invoices`.
///
/// Lines of one customer and one period with the same service, metric, unit, unit price and currency are
/// added up (over subscriptions); rows are sorted by period, service, metric, customer and unit price.
/// `amount` is the sum of the invoices' (rounded) line amounts, so the column adds up to the invoices'
/// subtotals.
pub fn usage_report_csv(invoices: &[Invoice]) -> Result<String, ExportError> {
    // (period first day, period last day, service, metric, customer, unit, unit price, currency)
    type Row<'a> = (String, String, &'a str, &'a str, &'a str, &'a str, Decimal, &'a str);
    let mut rows: BTreeMap<Row<'_>, (Decimal, Decimal)> = BTreeMap::new();
    for invoice in invoices {
        let spec = &invoice.spec;
        for l in &spec.line_items {
            let key = (
                spec.period_start.to_string(),
                spec.period_end.to_string(),
                l.service.as_str(),
                l.metric.as_str(),
                spec.customer_org_ref.name.as_str(),
                l.unit.as_str(),
                l.unit_price,
                spec.currency.as_str(),
            );
            let (quantity, amount) = rows.entry(key).or_default();
            *quantity = quantity.checked_add(l.quantity).ok_or(ExportError::Overflow)?;
            *amount = amount.checked_add(l.amount).ok_or(ExportError::Overflow)?;
        }
    }
    let mut w = csv_writer();
    w.write_record(USAGE_CSV_HEADER)?;
    for ((first_day, last_day, service, metric, customer, unit, unit_price, currency), (quantity, amount)) in rows {
        w.write_record([
            spreadsheet_text(service).into_owned(),
            spreadsheet_text(metric).into_owned(),
            spreadsheet_text(customer).into_owned(),
            quantity.normalize().to_string(),
            spreadsheet_text(unit).into_owned(),
            unit_price.to_string(),
            amount.to_string(),
            spreadsheet_text(currency).into_owned(),
            first_day,
            last_day,
        ])?;
    }
    finish(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::invoice::LineItem;
    use crate::api::references::{ClusterRef, NamespacedRef};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use proptest::prelude::*;

    fn invoice(unit: &str, customer: &str) -> Invoice {
        let spec = InvoiceSpec {
            customer_org_ref: NamespacedRef {
                name: customer.into(),
                namespace: "cloud".into(),
            },
            provider_org_ref: ClusterRef::new("cloudco"),
            reseller_ref: None,
            period_start: jiff::civil::date(2026, 10, 1),
            period_end: jiff::civil::date(2026, 10, 31),
            issued_at: Time("2026-11-01T00:00:00Z".parse().unwrap()),
            currency: "EUR".into(),
            line_items: vec![LineItem {
                subscription: "vm".into(),
                service: "compute".into(),
                metric: "vcpu-hours".into(),
                quantity: Decimal::new(15, 1),
                unit: unit.into(),
                unit_price: Decimal::new(2, 0),
                amount: Decimal::new(300, 2),
            }],
            subtotal: Decimal::new(300, 2),
            tax_rate: Decimal::ZERO,
            tax: Decimal::new(0, 2),
            total: Decimal::new(300, 2),
        };
        let mut invoice = Invoice::new("acme-2026-10", spec);
        invoice.metadata.namespace = Some("cloud-acme".into());
        invoice
    }

    proptest! {
        #![proptest_config(crate::billing::tests::proptest_config())]
        /// Whatever the text, a spreadsheet (here the `csv` crate's reader) reads back the guarded cell.
        #[test]
        fn text_cells_read_back_as_written(unit in "\\PC*|[,\"\r\n =+@-]{0,6}", customer in "\\PC{0,12}") {
            let (guarded_unit, guarded_customer) = (spreadsheet_text(&unit).into_owned(), spreadsheet_text(&customer).into_owned());
            let csv = invoices_csv(&[invoice(&unit, &customer)]).unwrap();
            let mut reader = csv::ReaderBuilder::new().from_reader(csv.as_bytes());
            let rows: Vec<csv::StringRecord> = reader.records().collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(rows.len(), 1);
            prop_assert_eq!(&rows[0][13], guarded_unit.as_str());
            prop_assert_eq!(&rows[0][2], guarded_customer.as_str());
            prop_assert_eq!(&rows[0][15], "3.00");
            let report = usage_report_csv(&[invoice(&unit, &customer)]).unwrap();
            let mut reader = csv::ReaderBuilder::new().from_reader(report.as_bytes());
            let rows: Vec<csv::StringRecord> = reader.records().collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(&rows[0][4], guarded_unit.as_str());
        }
    }

    #[test]
    fn formulas_are_turned_into_text_and_plain_text_is_kept() {
        assert_eq!(spreadsheet_text("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        for risky in ["+1", "-1+2", "@SUM(A1)", "\tx", "\rx"] {
            assert!(spreadsheet_text(risky).starts_with('\''), "{risky:?}");
        }
        assert!(matches!(spreadsheet_text("vCPU-hour"), Cow::Borrowed(_)));
        assert_eq!(spreadsheet_text(""), "");
    }
}
