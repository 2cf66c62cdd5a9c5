//! ProviderOrg (cluster-scoped): an onboarded partner organisation, with its namespace, administrators,
//! billing settings and price book, and support settings.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{DNS_LABEL, DURATION, IDENTIFIER, Subject};
use super::conditions::{self, Condition};
use super::money::{self, CURRENCY, Money};
use super::references::ClusterRef;

/// The longest `spec.namespace`: with `-` and a CustomerOrg name of at most 32 characters, the customer
/// namespaces `<provider namespace>-<customer org name>` stay within the 63 characters of a namespace name.
pub const MAX_PROVIDER_NAMESPACE_LEN: usize = 30;

/// What kind of partner an organisation is; one organisation can be several.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema)]
pub enum PartnerType {
    /// Provides cloud services to its own customers under signed commitment contracts.
    CloudProvider,
    /// Sells the vendor's cloud services through resellers.
    Distributor,
    /// Sells cloud services to customers, buying through a distributor.
    Reseller,
}

/// An onboarded partner organisation: a cloud provider, distributor or reseller. It gets a namespace of
/// its own where its contracts, customers, subscriptions, access grants and support requests live.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
// The derive's printcolumn(...) lists repeat `type_ = "string"`, which clippy takes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[kube(
    group = "navigator.cloudpartner.io",
    version = "v1alpha1",
    kind = "ProviderOrg",
    plural = "providerorgs",
    status = "ProviderOrgStatus",
    shortname = "porg",
    category = "navigator",
    derive = "PartialEq",
    doc = "An onboarded partner organisation (cloud provider, distributor or reseller). Cluster-scoped; created \
           by the platform team. Navigator creates its namespace, where the provider manages its contracts, \
           customers, subscriptions, access grants and support requests.",
    printcolumn(name = "Display Name", type_ = "string", json_path = ".spec.displayName"),
    printcolumn(name = "Namespace", type_ = "string", json_path = ".spec.namespace"),
    printcolumn(name = "Types", type_ = "string", json_path = ".spec.partnerTypes"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("'Reseller' in self.partnerTypes ? has(self.distributorRef) : !has(self.distributorRef)")
        .message("distributorRef is required for a Reseller and not allowed otherwise")
        .field_path(".distributorRef")
)]
pub struct ProviderOrgSpec {
    /// The organisation's name as people read it, e.g. `Acme Cloud Services`.
    #[schemars(length(min = 1, max = 256))]
    pub display_name: String,

    /// What kind of partner this is: one or more of `CloudProvider`, `Distributor` and `Reseller`.
    #[schemars(length(min = 1, max = 3))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub partner_types: Vec<PartnerType>,

    /// For a `Reseller`: the ProviderOrg of the distributor it buys through. Required for a reseller, not
    /// allowed otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distributor_ref: Option<ClusterRef>,

    /// The namespace Navigator creates for this organisation, where its contracts, customers, subscriptions,
    /// access grants and support requests live. A DNS label of at most 30 characters, so that customer
    /// namespaces (`<this namespace>-<CustomerOrg name>`) stay within 63. Cannot be changed. A namespace that
    /// already exists and was not created by Navigator for this organisation is never taken over.
    #[schemars(length(min = 1, max = 30), regex(pattern = DNS_LABEL))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("namespace is immutable"))]
    pub namespace: String,

    /// The people who administer this organisation: they are bound to the Provider Administrator role in
    /// its namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub administrators: Vec<Subject>,

    /// Billing settings and the price book customers are charged from. Without it no invoices are written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing: Option<BillingSettings>,

    /// How support requests are handled: the endpoint that holds tickets and the response times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support: Option<SupportSettings>,
}

/// How and when customers are billed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BillingSettings {
    /// ISO 4217 currency of all prices and invoices, e.g. `EUR`.
    #[schemars(regex(pattern = CURRENCY), length(min = 3, max = 3))]
    pub currency: String,
    /// Day of the month (1 to 28) on which a billing period starts; the period ends the day before the same
    /// day of the next month. Periods run in UTC.
    #[serde(default = "default_billing_day")]
    #[schemars(range(min = 1, max = 28))]
    pub billing_day: i32,
    /// Tax rate applied to the subtotal of each invoice, as a decimal string between 0 and 1, e.g. `"0.21"`
    /// for 21 %. `"0"` when prices include tax or no tax applies.
    #[serde(default, with = "rust_decimal::serde::str")]
    #[schemars(schema_with = "money::rate")]
    pub tax_rate: Decimal,
    /// The price of each metered metric of each service. Usage of a metric without a price is reported but
    /// not charged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["service".into(), "metric".into()]))]
    pub price_book: Vec<Price>,
}

fn default_billing_day() -> i32 {
    1
}

/// The price of one unit of one metric of one service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Price {
    /// The service type, e.g. `compute`.
    #[schemars(regex(pattern = IDENTIFIER), length(min = 1, max = 63))]
    pub service: String,
    /// The metric as the endpoint meters it, e.g. `vcpu-hours`.
    #[schemars(regex(pattern = IDENTIFIER), length(min = 1, max = 63))]
    pub metric: String,
    /// The unit one price applies to, as shown on invoices, e.g. `vCPU-hour`.
    #[schemars(length(min = 1, max = 63))]
    pub unit: String,
    /// Price of one unit in the billing currency, as a decimal string of zero or more, e.g. `"0.0125"`.
    #[serde(with = "rust_decimal::serde::str")]
    #[schemars(schema_with = "money::non_negative_decimal")]
    pub unit_price: Decimal,
}

/// How the organisation works support requests with the vendor.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SupportSettings {
    /// The CloudEndpoint whose support API holds this organisation's tickets.
    pub support_endpoint_ref: ClusterRef,
    /// How soon the vendor must respond to a new request, per severity; sets a request's `respondBy`.
    #[serde(default)]
    pub response_times: ResponseTimes,
}

/// Response time per severity, as durations such as `1h` or `24h` (hours `h`, minutes `m`, seconds `s`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResponseTimes {
    /// For `Critical` requests: production down.
    #[serde(default = "default_critical")]
    #[schemars(regex(pattern = DURATION), length(min = 2, max = 20))]
    pub critical: String,
    /// For `Major` requests: production impaired.
    #[serde(default = "default_major")]
    #[schemars(regex(pattern = DURATION), length(min = 2, max = 20))]
    pub major: String,
    /// For `Minor` requests: a workaround exists.
    #[serde(default = "default_minor")]
    #[schemars(regex(pattern = DURATION), length(min = 2, max = 20))]
    pub minor: String,
    /// For `Cosmetic` requests: no impact on service.
    #[serde(default = "default_cosmetic")]
    #[schemars(regex(pattern = DURATION), length(min = 2, max = 20))]
    pub cosmetic: String,
}

fn default_critical() -> String {
    "1h".into()
}
fn default_major() -> String {
    "4h".into()
}
fn default_minor() -> String {
    "24h".into()
}
fn default_cosmetic() -> String {
    "72h".into()
}

impl Default for ResponseTimes {
    fn default() -> Self {
        Self {
            critical: default_critical(),
            major: default_major(),
            minor: default_minor(),
            cosmetic: default_cosmetic(),
        }
    }
}

/// What Navigator set up for the organisation and what it is entitled to and consuming.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderOrgStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` is `True` when the namespace exists, the administrators are bound and billing has no problem.
    ///
    /// `Billing` reports billing, which runs apart from the rest (field manager `navigator-billing`): `True`
    /// when the last closed billing period is invoiced and `billing` and `attributed` are current (reason
    /// `Billed`, or `NotConfigured` without `spec.billing`); `False` when billing needs a change from you,
    /// the reason saying what (e.g. `UnpricedUsage`, `InvalidBilling`); `Unknown` when it could not finish
    /// for a passing reason (an endpoint not answering) and is being retried. A problem that needs a change
    /// also sets `Ready` to `False` and `Stalled` to `True` with the same reason and a Warning Event; a
    /// passing one sets `Synced` to `False`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions::schema")]
    pub conditions: Vec<Condition>,
    /// The namespace Navigator created for the organisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// What the organisation's active commitment contracts entitle it to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entitlements: Option<Entitlements>,
    /// Usage and charges of the current billing period, as billing last computed them (see the `Billing`
    /// condition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing: Option<BillingView>,
    /// For a reseller: what the invoices of the customers attributed to it add up to, for each provider that
    /// bills them, over that provider's last closed billing period (written by billing, see the `Billing`
    /// condition).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributed: Vec<AttributedInvoices>,
}

/// The invoices one provider issued for one billing period to the customers attributed to a reseller.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttributedInvoices {
    /// The ProviderOrg that issued the invoices.
    pub provider_org: String,
    /// First day of the billing period (UTC).
    #[schemars(with = "String", extend("format" = "date"))]
    pub period_start: jiff::civil::Date,
    /// Last day of the billing period (UTC), inclusive.
    #[schemars(with = "String", extend("format" = "date"))]
    pub period_end: jiff::civil::Date,
    /// How many invoices.
    #[schemars(range(min = 0))]
    pub invoices: i32,
    /// The sum of their subtotals (before tax).
    pub subtotal: Money,
    /// The sum of their totals (with tax).
    pub total: Money,
}

/// Service types and endpoints covered by at least one active commitment contract.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Entitlements {
    /// Service types the organisation may provision.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    /// Names of the CloudEndpoints the organisation may provision on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
}

/// The current billing period as Navigator last rated it. Usage is read up to the last full hour (`asOf`),
/// so the view changes at most once an hour.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BillingView {
    /// First day of the current billing period (UTC), e.g. `2026-07-01`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>", extend("format" = "date"))]
    pub period_start: Option<jiff::civil::Date>,
    /// Last day of the current billing period (UTC), inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>", extend("format" = "date"))]
    pub period_end: Option<jiff::civil::Date>,
    /// Up to when usage has been read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<Time>,
    /// Usage of the period so far, per service and metric, over all customers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usage: Vec<MetricUsage>,
    /// What the period's usage so far costs at the price book's prices, before tax.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_charges: Option<Money>,
    /// The five customers with the largest charges this period, largest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_customers: Vec<CustomerCharges>,
}

/// Usage of one metric of one service.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricUsage {
    /// The service type.
    pub service: String,
    /// The metric.
    pub metric: String,
    /// The unit of the quantity.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unit: String,
    /// The quantity used, as a decimal string.
    #[serde(with = "rust_decimal::serde::str")]
    #[schemars(schema_with = "money::decimal")]
    pub quantity: Decimal,
}

/// What one customer's usage costs.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerCharges {
    /// Name of the CustomerOrg.
    pub customer_org: String,
    /// Its charges, before tax.
    pub amount: Money,
}
