//! Invoice (in a customer's namespace): the bill for one customer and one billing period, written by
//! Navigator and never changed afterwards.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::IDENTIFIER;
use super::conditions::{self, Condition};
use super::money::{self, CURRENCY};
use super::references::{ClusterRef, NamespacedRef};

/// The bill for one customer and one billing period. Navigator writes it into the customer's namespace when
/// the period closes, computed only from the endpoint's usage in the period and the price book in force;
/// once written its spec never changes.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
// The derive's printcolumn(...) lists repeat `type_ = "string"`, which clippy takes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[kube(
    group = "navigator.cloudpartner.io",
    version = "v1alpha1",
    kind = "Invoice",
    plural = "invoices",
    namespaced,
    status = "InvoiceStatus",
    shortname = "inv",
    category = "navigator",
    derive = "PartialEq",
    doc = "The bill for one customer and one billing period, in the customer's namespace. Written by Navigator \
           when the period closes, from the endpoint's usage and the provider's price book; its spec never \
           changes once written.",
    printcolumn(name = "Customer", type_ = "string", json_path = ".spec.customerOrgRef.name"),
    printcolumn(
        name = "Provider",
        type_ = "string",
        json_path = ".spec.providerOrgRef.name",
        priority = 1
    ),
    printcolumn(name = "Period Start", type_ = "string", json_path = ".spec.periodStart"),
    printcolumn(name = "Period End", type_ = "string", json_path = ".spec.periodEnd"),
    printcolumn(name = "Total", type_ = "string", json_path = ".spec.total"),
    printcolumn(name = "Currency", type_ = "string", json_path = ".spec.currency"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#,
        priority = 1
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#,
        priority = 1
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self == oldSelf").message("an issued invoice never changes: spec is immutable"),
    validation = Rule::new("self.periodEnd >= self.periodStart").message("periodEnd must not be before periodStart").field_path(".periodEnd")
)]
pub struct InvoiceSpec {
    /// The customer billed: its CustomerOrg, which lives in the provider's namespace.
    pub customer_org_ref: NamespacedRef,

    /// The ProviderOrg that bills the customer.
    pub provider_org_ref: ClusterRef,

    /// The ProviderOrg of the reseller the customer is attributed to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reseller_ref: Option<ClusterRef>,

    /// First day of the billing period (UTC, inclusive), e.g. `2026-06-01`.
    #[schemars(with = "String", extend("format" = "date"))]
    pub period_start: jiff::civil::Date,

    /// Last day of the billing period (UTC, inclusive), e.g. `2026-06-30`.
    #[schemars(with = "String", extend("format" = "date"))]
    pub period_end: jiff::civil::Date,

    /// When Navigator issued the invoice.
    pub issued_at: Time,

    /// ISO 4217 currency of every amount on the invoice.
    #[schemars(regex(pattern = CURRENCY), length(min = 3, max = 3))]
    pub currency: String,

    /// One line per subscription and metric used in the period.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    pub line_items: Vec<LineItem>,

    /// Sum of the line amounts.
    #[serde(with = "rust_decimal::serde::str")]
    #[schemars(schema_with = "money::decimal")]
    pub subtotal: Decimal,

    /// The tax rate applied to the subtotal, e.g. `"0.21"`.
    #[serde(with = "rust_decimal::serde::str")]
    #[schemars(schema_with = "money::rate")]
    pub tax_rate: Decimal,

    /// Tax on the subtotal, rounded half-even to the currency's minor unit.
    #[serde(with = "rust_decimal::serde::str")]
    #[schemars(schema_with = "money::decimal")]
    pub tax: Decimal,

    /// Subtotal plus tax: what the customer owes.
    #[serde(with = "rust_decimal::serde::str")]
    #[schemars(schema_with = "money::decimal")]
    pub total: Decimal,
}

/// One line of an invoice: the usage of one metric by one subscription, rated at the price book's price.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LineItem {
    /// Name of the CloudServiceSubscription that used it.
    #[schemars(length(min = 1, max = 253))]
    pub subscription: String,
    /// The service type, e.g. `compute`.
    #[schemars(regex(pattern = IDENTIFIER), length(min = 1, max = 63))]
    pub service: String,
    /// The metric, e.g. `vcpu-hours`.
    #[schemars(regex(pattern = IDENTIFIER), length(min = 1, max = 63))]
    pub metric: String,
    /// The quantity used in the period, as a decimal string.
    #[serde(with = "rust_decimal::serde::str")]
    #[schemars(schema_with = "money::decimal")]
    pub quantity: Decimal,
    /// The unit of the quantity, e.g. `vCPU-hour`.
    #[schemars(length(max = 63))]
    pub unit: String,
    /// The price of one unit.
    #[serde(with = "rust_decimal::serde::str")]
    #[schemars(schema_with = "money::decimal")]
    pub unit_price: Decimal,
    /// Quantity times unit price, rounded half-even to the currency's minor unit.
    #[serde(with = "rust_decimal::serde::str")]
    #[schemars(schema_with = "money::decimal")]
    pub amount: Decimal,
}

/// Where an invoice is in its life.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum InvoicePhase {
    /// Written and final.
    Issued,
}

/// The invoice's state.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` is `True` once the invoice is issued.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions::schema")]
    pub conditions: Vec<Condition>,
    /// `Issued` once written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<InvoicePhase>,
}
