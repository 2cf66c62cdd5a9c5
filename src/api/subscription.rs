//! CloudServiceSubscription (in a provider's namespace): one service provisioned for one customer.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use super::common::{DeletionPolicy, IDENTIFIER};
use super::conditions::{self, Condition};
use super::references::{ClusterRef, LocalRef};

/// One cloud service provisioned on an endpoint for one customer of the provider in whose namespace it
/// lives: a compute allocation, a Kubernetes cluster, object storage, backup and so on.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
// The derive's printcolumn(...) lists repeat `type_ = "string"`, which clippy takes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[kube(
    group = "navigator.cloudpartner.io",
    version = "v1alpha1",
    kind = "CloudServiceSubscription",
    plural = "cloudservicesubscriptions",
    namespaced,
    status = "CloudServiceSubscriptionStatus",
    shortname = "css",
    shortname = "sub",
    category = "navigator",
    derive = "PartialEq",
    doc = "One cloud service (compute, Kubernetes, object storage, backup, ...) provisioned on an endpoint for one \
           customer of the provider in whose namespace it lives. Navigator provisions it, keeps it as the spec \
           says and reports the endpoint's state.",
    printcolumn(name = "Customer", type_ = "string", json_path = ".spec.customerOrgRef.name"),
    printcolumn(name = "Service", type_ = "string", json_path = ".spec.serviceType"),
    printcolumn(name = "Endpoint", type_ = "string", json_path = ".status.endpoint", priority = 1),
    printcolumn(name = "Contract", type_ = "string", json_path = ".status.contract", priority = 1),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(name = "Access URL", type_ = "string", json_path = ".status.accessUrl", priority = 1),
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
#[x_kube(validation = Rule::new(
    "has(self.endpointRef) == has(oldSelf.endpointRef) && (!has(self.endpointRef) || self.endpointRef == oldSelf.endpointRef)"
)
.message("endpointRef is immutable: it can be neither set, changed nor removed after creation")
.field_path(".endpointRef"))]
pub struct CloudServiceSubscriptionSpec {
    /// The CustomerOrg, in this namespace, the service is provisioned for. Cannot be changed.
    #[x_kube(validation = Rule::new("self == oldSelf").message("customerOrgRef is immutable"))]
    pub customer_org_ref: LocalRef,

    /// The service type, as the endpoint offers it: e.g. `compute`, `kubernetes`, `object-storage` or
    /// `backup` (see the CloudEndpoint's status for what it offers). Cannot be changed.
    #[schemars(regex(pattern = IDENTIFIER), length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("serviceType is immutable"))]
    pub service_type: String,

    /// The CloudEndpoint to provision on. Defaults to the customer's endpoint
    /// (`spec.endpointRef` of the CustomerOrg). Can only be given at creation and never changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_ref: Option<ClusterRef>,

    /// The resources the service gets. Changing them resizes the service on the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,

    /// Service-specific settings passed to the endpoint as they are, e.g. `kubernetesVersion: "1.33"` or
    /// `region: eu-west`. Keys are letters, digits, `-`, `_` and `.`, up to 63 characters; at most 64
    /// entries; values up to 1024 characters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "parameters_schema")]
    #[x_kube(validation = Rule::new("self.all(k, size(k) <= 63 && k.matches('^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$'))")
        .message("parameters keys must be letters, digits, '-', '_' and '.', up to 63 characters"))]
    pub parameters: BTreeMap<String, String>,

    /// The CommitmentContract, in this namespace, this service is consumed against. When unset, Navigator
    /// picks an active contract covering the service type and endpoint and shows it in `status.contract`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_ref: Option<LocalRef>,

    /// What happens to the service on the endpoint when this subscription is deleted: `Delete` (the
    /// default) removes it, `Orphan` leaves it running.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

fn parameters_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "maxProperties": 64,
        "additionalProperties": {"type": "string", "maxLength": 1024}
    })
}

/// The size of a service. Quantities are whole numbers (vCPUs, GiB) rather than Kubernetes quantity
/// strings such as `512Mi`: endpoints allocate them that way and they are easy to compare and bill.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.vcpu) || has(self.memoryGiB) || has(self.storageGiB)")
    .message("resources must set at least one of vcpu, memoryGiB and storageGiB"))]
pub struct Resources {
    /// Number of virtual CPUs, at least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4096))]
    pub vcpu: Option<i64>,
    /// Memory in GiB, at least 1.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "memoryGiB")]
    #[schemars(range(min = 1, max = 65536))]
    pub memory_gib: Option<i64>,
    /// Storage in GiB, at least 1.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "storageGiB")]
    #[schemars(range(min = 1, max = 1_048_576))]
    pub storage_gib: Option<i64>,
}

/// The state of a service instance as the endpoint reports it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ServiceState {
    /// Being created.
    Provisioning,
    /// Running as the spec asks.
    Ready,
    /// Being changed to match the spec.
    Updating,
    /// Being removed.
    Deleting,
    /// The endpoint reports a failure; see `message`.
    Failed,
}

/// What the endpoint reports about the service.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudServiceSubscriptionStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` is `True` when the service runs on the endpoint as the spec asks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions::schema")]
    pub conditions: Vec<Condition>,
    /// The service instance's id on the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// The CloudEndpoint the service is provisioned on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Where the customer reaches the service (console, API or cluster URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_url: Option<String>,
    /// The endpoint's state of the service: `Provisioning`, `Ready`, `Updating`, `Deleting` or `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ServiceState>,
    /// The CommitmentContract the service is consumed against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
    /// The endpoint's last message about the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
