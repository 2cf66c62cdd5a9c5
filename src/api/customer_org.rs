//! CustomerOrg (in a provider's namespace): a customer organisation, which becomes a tenant organisation on
//! a cloud endpoint and a customer namespace in the cluster.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, ValidationRule,
};
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{DNS_LABEL, DeletionPolicy};
use super::conditions::{self, Condition};
use super::references::ClusterRef;

/// The longest CustomerOrg name: with a provider namespace of at most 30 characters and `-`, the customer
/// namespace `<provider namespace>-<customer org name>` stays within the 63 characters of a namespace name.
pub const MAX_CUSTOMER_ORG_NAME_LEN: usize = 32;

/// The namespace Navigator creates for a customer: `<provider namespace>-<customer org name>`.
pub fn customer_namespace(provider_namespace: &str, customer_org_name: &str) -> String {
    format!("{provider_namespace}-{customer_org_name}")
}

/// The rule on a CustomerOrg's `metadata.name`: a DNS label of at most [`MAX_CUSTOMER_ORG_NAME_LEN`]
/// characters.
pub fn name_rule() -> ValidationRule {
    ValidationRule {
        rule: format!("size(self) <= {MAX_CUSTOMER_ORG_NAME_LEN} && self.matches('{DNS_LABEL}')"),
        message: Some(format!(
            "a CustomerOrg name must be a DNS label (lower-case letters, digits and '-') of at most \
             {MAX_CUSTOMER_ORG_NAME_LEN} characters: it names the customer namespace <provider namespace>-<name>"
        )),
        ..Default::default()
    }
}

/// The CustomerOrg CRD: the derived one, plus [`name_rule`] declared on `metadata.name` itself. The derive
/// leaves `metadata` out of the schema, so it could only put the rule on the object's root, where the
/// apiserver reports a refusal at the field path `<nil>`; on the name it reports `metadata.name` and the
/// value. (A root schema may declare `metadata.name` and `metadata.generateName`, nothing else of metadata.)
pub fn crd() -> CustomResourceDefinition {
    let mut crd = CustomerOrg::crd();
    let name = JSONSchemaProps {
        type_: Some("string".into()),
        description: Some(format!(
            "The CustomerOrg's name: a DNS label of at most {MAX_CUSTOMER_ORG_NAME_LEN} characters, so that the \
             customer namespace <provider namespace>-<name> fits in 63."
        )),
        x_kubernetes_validations: Some(vec![name_rule()]),
        ..Default::default()
    };
    let metadata = JSONSchemaProps {
        type_: Some("object".into()),
        properties: Some([("name".to_string(), name)].into()),
        ..Default::default()
    };
    for version in &mut crd.spec.versions {
        if let Some(root) = version.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut()) {
            root.properties
                .get_or_insert_default()
                .insert("metadata".into(), metadata.clone());
        }
    }
    crd
}

/// A customer organisation of the provider in whose namespace it lives. Navigator creates a tenant
/// organisation named `tenantName` on the endpoint and a namespace `<provider namespace>-<name>` in the
/// cluster for what the customer may see (its invoices).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
// The derive's printcolumn(...) lists repeat `type_ = "string"`, which clippy takes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[kube(
    group = "navigator.cloudpartner.io",
    version = "v1alpha1",
    kind = "CustomerOrg",
    plural = "customerorgs",
    namespaced,
    status = "CustomerOrgStatus",
    shortname = "co",
    shortname = "corg",
    category = "navigator",
    derive = "PartialEq",
    doc = "A customer organisation of the provider in whose namespace it lives. Navigator creates a tenant \
           organisation named spec.tenantName on the endpoint and the customer namespace \
           <provider namespace>-<CustomerOrg name> in the cluster. The name is a DNS label of at most 32 \
           characters so that this namespace name stays within 63.",
    printcolumn(name = "Display Name", type_ = "string", json_path = ".spec.displayName"),
    printcolumn(name = "Tenant", type_ = "string", json_path = ".spec.tenantName"),
    printcolumn(name = "Endpoint", type_ = "string", json_path = ".spec.endpointRef.name"),
    printcolumn(name = "Namespace", type_ = "string", json_path = ".status.namespace", priority = 1),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
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
pub struct CustomerOrgSpec {
    /// The customer's name as people read it, e.g. `Globex Corporation`.
    #[schemars(length(min = 1, max = 256))]
    pub display_name: String,

    /// Name of the customer's tenant organisation on the endpoint, e.g. `globex`: a DNS label (lower-case
    /// letters, digits and `-`) of at most 63 characters, unique on the endpoint. Cannot be changed: the
    /// tenant organisation keeps its name for its whole life.
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS_LABEL))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("tenantName is immutable"))]
    pub tenant_name: String,

    /// The CloudEndpoint the tenant organisation lives on; the default endpoint of the customer's
    /// subscriptions. Cannot be changed.
    #[x_kube(validation = Rule::new("self == oldSelf").message("endpointRef is immutable"))]
    pub endpoint_ref: ClusterRef,

    /// The ProviderOrg of the reseller that sold this customer, if any: the customer's usage is attributed to
    /// it and shown on its invoices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reseller_ref: Option<ClusterRef>,

    /// People to contact at the customer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub contacts: Vec<Contact>,

    /// Upper limits on what the customer's subscriptions may hold in total; no limit where unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quotas: Option<Quotas>,

    /// What happens to the tenant organisation on the endpoint when this CustomerOrg is deleted: `Delete`
    /// (the default) removes it, `Orphan` leaves it. The customer's subscriptions and access grants are
    /// deleted first either way.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// When `true`, the tenant organisation is disabled on the endpoint (its users cannot sign in and its
    /// services are stopped where the endpoint supports it); `false` enables it again.
    #[serde(default)]
    pub suspended: bool,
}

/// What a contact person is the contact for.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum ContactRole {
    /// The main contact.
    #[default]
    Primary,
    /// Invoices and payments.
    Billing,
    /// Technical matters and support.
    Technical,
}

/// A person to contact at the customer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    /// Full name.
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    /// E-mail address.
    #[schemars(email, length(min = 3, max = 254))]
    pub email: String,
    /// Telephone number in international format, e.g. `+31 20 123 4567`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^\+[0-9][0-9 ]{5,30}$"))]
    pub phone: Option<String>,
    /// What this person is the contact for: `Primary` (the default), `Billing` or `Technical`.
    #[serde(default)]
    pub role: ContactRole,
}

/// Totals the customer's subscriptions may not exceed. Quantities are whole numbers (vCPUs, GiB) rather than
/// Kubernetes quantity strings, as endpoints count them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Quotas {
    /// Total vCPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1_000_000))]
    pub vcpu: Option<i64>,
    /// Total memory in GiB.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "memoryGiB")]
    #[schemars(range(min = 0, max = 100_000_000))]
    pub memory_gib: Option<i64>,
    /// Total storage in GiB.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "storageGiB")]
    #[schemars(range(min = 0, max = 1_000_000_000))]
    pub storage_gib: Option<i64>,
    /// Number of subscriptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100_000))]
    pub subscriptions: Option<i64>,
}

/// Whether the tenant organisation is enabled on the endpoint.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum CustomerOrgState {
    /// Enabled: its users can sign in and its services run.
    Active,
    /// Disabled because `spec.suspended` is `true`.
    Suspended,
}

/// What Navigator set up for the customer.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerOrgStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` is `True` when the tenant organisation and the customer namespace exist as the spec asks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions::schema")]
    pub conditions: Vec<Condition>,
    /// The customer namespace Navigator created (it holds the customer's invoices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The tenant organisation's id on the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// `Active` or `Suspended`, as the endpoint reports the tenant organisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<CustomerOrgState>,
    /// The CloudEndpoint the tenant organisation lives on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// `true` when the tenant organisation already existed on the endpoint, claimed by no other CustomerOrg,
    /// and this CustomerOrg adopted it instead of creating it. Deleting this CustomerOrg deletes an adopted
    /// tenant too, unless `deletionPolicy` is `Orphan`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopted: bool,
}
