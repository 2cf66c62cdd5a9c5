//! Billing: rating usage with a price book, invoices, burn-down of commitments, summaries and exports.
//!
//! Everything here but [`cluster`] is a pure function of its arguments: no Kubernetes, no network, no clock
//! (the current instant is always a parameter), so the same inputs give the same invoice, byte for byte.
//! [`cluster`] is the thin layer that reads usage from the endpoints and writes invoices and views.
//!
//! Decisions that hold throughout:
//!
//! - **Money is [`rust_decimal::Decimal`]**, never a float. Decimals serialize as strings.
//! - **Rounding**: each line amount is `quantity × unit price` rounded *half to even* to the currency's
//!   minor unit ([`Currency::round`]: 0.125 → 0.12, 0.135 → 0.14 in EUR; 2.5 → 2 in JPY). The subtotal is
//!   the sum of the rounded lines; tax is `subtotal × tax rate` rounded the same way; total = subtotal +
//!   tax. Nothing else is rounded (quantities and unit prices keep their digits).
//! - **Currencies** are ISO 4217 codes with their minor-unit digits; an unknown code is an error.
//! - **Unpriced usage is an error** ([`RatingError::Unpriced`] names service and metric), never dropped:
//!   an invoice is either complete or not written. So are usage in another unit than the price's and
//!   negative usage.
//! - **Graduated tiers** are supported: a price may have thresholds; they apply per line key (customer,
//!   subscription, service, metric) within the rated window, and each band that receives a quantity is its
//!   own line, so every line is `quantity × unit_price` and a spreadsheet can check it.
//! - **Zero usage gives no line.**
//! - **Periods** are calendar months starting on a billing day (1 to 28) at midnight in a time zone; an
//!   invoice is named `<customer>-<yyyy>-<mm>` (or `-<yyyy>-<mm>-<dd>` when the billing day is not the 1st).
//! - **Burn-down**: remaining never goes below zero, consumption beyond the commitment is reported as
//!   overage; the forecast is linear from the start of the term.

mod burndown;
pub mod cluster;
pub mod document;
mod export;
mod invoice;
mod money;
mod period;
mod price;
mod rating;
mod views;

#[cfg(test)]
mod tests;

pub use burndown::{BurnDown, BurnDownError, Term, TermPhase, burn_down};
pub use export::{
    ExportError, INVOICE_CSV_HEADER, USAGE_CSV_HEADER, invoices_csv, invoices_json, spreadsheet_text, usage_report_csv,
};
pub use invoice::{InvoiceDraft, InvoiceHeader, draft_invoice};
pub use money::{Currency, UnknownCurrency};
pub use period::{BillingCycle, Period, PeriodError, invoice_name, is_dns1123_label, period_label};
pub use price::{Price, PriceBook, PriceBookError, Tier};
pub use rating::{LineItem, RatingError, UsageRecord, rate};
pub use views::{
    ChargeEstimate, CustomerCharge, MetricSummary, ResellerTotal, customer_charges, estimate_charges, metric_summary,
    reseller_totals, top_customers,
};
