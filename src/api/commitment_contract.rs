//! CommitmentContract (in a provider's namespace): a signed commitment that entitles the provider to
//! services and endpoints.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{DNS_SUBDOMAIN, IDENTIFIER};
use super::conditions::{self, Condition};
use super::money::{self, Money};

/// A signed commitment contract between the provider and the vendor. While it is in force (from `startDate`
/// through `endDate`) it entitles the provider in whose namespace it lives to provision the listed services
/// on the listed endpoints, and Navigator tracks consumption against the committed quantities or amount.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
// The derive's printcolumn(...) lists repeat `type_ = "string"`, which clippy takes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[kube(
    group = "navigator.cloudpartner.io",
    version = "v1alpha1",
    kind = "CommitmentContract",
    plural = "commitmentcontracts",
    namespaced,
    status = "CommitmentContractStatus",
    shortname = "cc",
    category = "navigator",
    derive = "PartialEq",
    doc = "A signed commitment contract. Lives in the namespace of the ProviderOrg it belongs to. While in force \
           (startDate through endDate, UTC) it entitles that provider to the listed services on the listed \
           endpoints; its status shows consumption against the commitment.",
    printcolumn(name = "Contract", type_ = "string", json_path = ".spec.contractNumber"),
    printcolumn(name = "Start", type_ = "string", json_path = ".spec.startDate"),
    printcolumn(name = "End", type_ = "string", json_path = ".spec.endDate"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
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
    validation = Rule::new("self.endDate > self.startDate").message("endDate must be after startDate").field_path(".endDate"),
    validation = Rule::new("has(self.commitments) || has(self.committedAmount)")
        .message("a contract commits to quantities (commitments), an amount (committedAmount) or both")
        .field_path(".commitments")
)]
pub struct CommitmentContractSpec {
    /// The contract number as written on the signed contract, e.g. `CC-2026-0042`. Cannot be changed.
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[A-Za-z0-9][-A-Za-z0-9._/]*$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("contractNumber is immutable"))]
    pub contract_number: String,

    /// First day the contract is in force, as a date such as `2026-01-01` (UTC, from the start of the day).
    #[schemars(with = "String", extend("format" = "date"))]
    pub start_date: jiff::civil::Date,

    /// Last day the contract is in force, as a date such as `2026-12-31` (UTC, to the end of the day).
    /// Must be after `startDate`.
    #[schemars(with = "String", extend("format" = "date"))]
    pub end_date: jiff::civil::Date,

    /// The contract term in months as written on the contract, e.g. `12`. For information: `startDate` and
    /// `endDate` decide when the contract is in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 120))]
    pub term_months: Option<i32>,

    /// The service types the contract covers, e.g. `compute`, `kubernetes`, `object-storage`, `backup`.
    #[schemars(length(min = 1, max = 32), inner(regex(pattern = IDENTIFIER), length(min = 1, max = 63)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub services: Vec<String>,

    /// Names of the CloudEndpoints the contract covers.
    #[schemars(length(min = 1, max = 32), inner(regex(pattern = DNS_SUBDOMAIN), length(min = 1, max = 253)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub endpoints: Vec<String>,

    /// Quantities committed over the whole term, per metric, e.g. 100000 `vcpu-hours`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1, max = 64))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["metric".into()]))]
    pub commitments: Vec<Commitment>,

    /// Amount of money committed over the whole term, measured at the provider's price book: an amount of
    /// zero or more as a decimal string, e.g. `"250000.00"`, in the provider's billing currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "money::non_negative_money", extend("nullable" = true))]
    pub committed_amount: Option<Money>,
}

/// A quantity of one metric committed over the whole term.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Commitment {
    /// The metric as the endpoints meter it, e.g. `vcpu-hours`.
    #[schemars(regex(pattern = IDENTIFIER), length(min = 1, max = 63))]
    pub metric: String,
    /// The committed quantity, as a decimal string of zero or more, e.g. `"100000"`.
    #[serde(with = "rust_decimal::serde::str")]
    #[schemars(schema_with = "money::non_negative_decimal")]
    pub quantity: Decimal,
}

/// Where a contract is in its life.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ContractPhase {
    /// Before `startDate`: signed but not yet in force.
    Pending,
    /// From `startDate` through `endDate`: in force.
    Active,
    /// After `endDate`: no longer in force.
    Expired,
}

/// The contract's phase and its consumption so far.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommitmentContractStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` is `True` when the contract is understood and its consumption up to date.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions::schema")]
    pub conditions: Vec<Condition>,
    /// `Pending` before `startDate`, `Active` while in force, `Expired` after `endDate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ContractPhase>,
    /// Up to when usage has been counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<Time>,
    /// What has been consumed against the commitment since `startDate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumed: Option<Consumption>,
    /// What remains of the commitment (negative when exceeded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<Consumption>,
    /// What will have been consumed at `endDate` if consumption goes on at the rate so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<Consumption>,
}

/// Quantities per metric and an amount of money, measured against a contract.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Consumption {
    /// Per committed metric.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quantities: Vec<MetricQuantity>,
    /// In money, when the contract commits an amount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Money>,
}

/// A quantity of one metric.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricQuantity {
    /// The metric, e.g. `vcpu-hours`.
    pub metric: String,
    /// The quantity, as a decimal string (negative when a commitment is exceeded).
    #[serde(with = "rust_decimal::serde::str")]
    #[schemars(schema_with = "money::decimal")]
    pub quantity: Decimal,
}
