//! CloudEndpoint (cluster-scoped): a cloud infrastructure or service endpoint that Navigator provisions on.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::DURATION;
use super::conditions::{self, Condition};
use super::references::SecretKeyRef;

/// How Navigator talks to a CloudEndpoint.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum EndpointDriver {
    /// Navigator's own simulated cloud (`navigator simulator`), which speaks the Navigator endpoint API.
    #[default]
    Simulator,
    /// Any cloud fronted by the Navigator endpoint API (a small REST/JSON contract, see the OpenAPI file).
    Http,
    /// VMware Cloud Director's own API (CloudAPI and the legacy XML API).
    CloudDirector,
    /// Request Tracker 5's REST2 API: a support endpoint only (tickets), no organisations or services.
    RequestTracker,
}

/// A cloud infrastructure or service endpoint that Navigator provisions customer organisations and services
/// on, and reads usage and support tickets from. Created by the platform team; providers use the endpoints
/// their commitment contracts cover.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
// The derive's printcolumn(...) lists repeat `type_ = "string"`, which clippy takes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[kube(
    group = "navigator.cloudpartner.io",
    version = "v1alpha1",
    kind = "CloudEndpoint",
    plural = "cloudendpoints",
    status = "CloudEndpointStatus",
    shortname = "cep",
    category = "navigator",
    derive = "PartialEq",
    doc = "A cloud infrastructure or service endpoint that Navigator provisions customer organisations and \
           services on, and reads usage and support tickets from. Cluster-scoped; created by the platform team.",
    printcolumn(name = "Driver", type_ = "string", json_path = ".spec.driver"),
    printcolumn(name = "URL", type_ = "string", json_path = ".spec.url"),
    printcolumn(name = "Version", type_ = "string", json_path = ".status.version"),
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
#[x_kube(validation = Rule::new("self.driver == 'CloudDirector' ? has(self.cloudDirector) : !has(self.cloudDirector)")
    .message("cloudDirector is required with driver CloudDirector and not allowed with the other drivers")
    .field_path(".cloudDirector"),
    validation = Rule::new("self.driver == 'RequestTracker' ? has(self.requestTracker) : !has(self.requestTracker)")
    .message("requestTracker is required with driver RequestTracker and not allowed with the other drivers")
    .field_path(".requestTracker"))]
pub struct CloudEndpointSpec {
    /// How Navigator talks to the endpoint: `Simulator` (Navigator's simulated cloud), `Http` (the Navigator
    /// endpoint API in front of any cloud), `CloudDirector` (VMware Cloud Director's own API) or
    /// `RequestTracker` (a Request Tracker 5 ticket system, as a provider's support endpoint).
    pub driver: EndpointDriver,

    /// Base URL of the endpoint's API, e.g. `https://cloud.example.com` or `http://127.0.0.1:8089` for a
    /// local simulator. Must be an absolute `http` or `https` URL.
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new("isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHost() != ''")
        .message("url must be an absolute http or https URL, e.g. https://cloud.example.com"))]
    pub url: String,

    /// The Secret key holding the credential Navigator authenticates with: the bearer token for `Simulator`
    /// and `Http`, the password of `cloudDirector.username` for `CloudDirector`. Navigator never writes it
    /// into logs, events or status.
    pub credentials_secret_ref: SecretKeyRef,

    /// PEM-encoded certificate authorities to trust for the endpoint's TLS certificate, in addition to the
    /// system's. Leave empty for endpoints with a publicly trusted certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    #[x_kube(validation = Rule::new("self.contains('-----BEGIN CERTIFICATE-----')")
        .message("caBundle must hold PEM certificates (-----BEGIN CERTIFICATE-----)"))]
    pub ca_bundle: Option<String>,

    /// How many requests per second Navigator sends to this endpoint at most, across all objects.
    #[serde(default)]
    pub rate_limit: RateLimit,

    /// How many long-running operations (provisioning, updates, deletions) Navigator keeps in flight on this
    /// endpoint at once; more wait their turn.
    #[serde(default = "default_max_concurrent_operations")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_concurrent_operations: i32,

    /// How often Navigator checks on work in progress on this endpoint (provisioning, updates, deletions) and
    /// probes the endpoint itself (at most every 30s), as a duration such as `5s` or `1m` (hours `h`, minutes
    /// `m`, seconds `s`). Objects that are Ready are re-checked for drift far less often (`navigator run
    /// --resync-seconds`, 10 minutes by default). Navigator adds jitter so checks spread out. Between 5s and 24h.
    #[serde(default = "default_poll_interval")]
    #[schemars(regex(pattern = DURATION), length(min = 2, max = 20))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('5s') && duration(self) <= duration('24h')")
        .message("pollInterval must be between 5s and 24h"))]
    pub poll_interval: String,

    /// How long Navigator waits for one answer from the endpoint before it gives up and retries later,
    /// as a duration such as `30s`. Between 1s and 10m.
    #[serde(default = "default_request_timeout")]
    #[schemars(regex(pattern = DURATION), length(min = 2, max = 20))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s') && duration(self) <= duration('10m')")
        .message("requestTimeout must be between 1s and 10m"))]
    pub request_timeout: String,

    /// Settings only VMware Cloud Director needs. Required with driver `CloudDirector`, not allowed otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_director: Option<CloudDirectorSettings>,

    /// Settings only Request Tracker needs. Required with driver `RequestTracker`, not allowed otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_tracker: Option<RequestTrackerSettings>,
}

fn default_max_concurrent_operations() -> i32 {
    8
}

fn default_poll_interval() -> String {
    "30s".into()
}

fn default_request_timeout() -> String {
    "30s".into()
}

/// A token-bucket limit on the requests Navigator sends to one endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// Sustained requests per second, across everything Navigator does on this endpoint.
    #[serde(default = "default_requests_per_second")]
    #[schemars(range(min = 1, max = 10000))]
    pub requests_per_second: i32,
    /// Requests that may be sent at once above the sustained rate after a quiet period.
    #[serde(default = "default_burst")]
    #[schemars(range(min = 1, max = 10000))]
    pub burst: i32,
}

fn default_requests_per_second() -> i32 {
    10
}

fn default_burst() -> i32 {
    20
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            requests_per_second: default_requests_per_second(),
            burst: default_burst(),
        }
    }
}

/// How Cloud Director allocates a customer's compute resources in its organisation VDC.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum AllocationModel {
    /// Flexible allocation (Cloud Director 9.7 and later).
    #[default]
    Flex,
    /// Pay as you go: resources are committed as virtual machines start.
    AllocationVApp,
    /// A percentage of the allocated resources is committed.
    AllocationPool,
    /// All allocated resources are committed.
    ReservationPool,
}

/// What the credentials Secret of a Cloud Director endpoint holds.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum CloudDirectorCredential {
    /// The password of `username` (logged in at `/cloudapi/1.0.0/sessions/provider`).
    #[default]
    Password,
    /// A provider API token (exchanged at `/oauth/provider/token`). Cloud Director refuses user management
    /// to such sessions, so customer access grants stall with a message saying why; everything else works.
    ApiToken,
}

/// The Cloud Director role each Navigator customer role becomes in the customer's organisation. Each
/// must name a role that exists in every tenant organisation (Cloud Director's predefined roles do), and no
/// two may be the same, so that a user's role on the endpoint tells which Navigator role it came from.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.customerAdministrator != self.customerUser && self.customerAdministrator != self.customerBillingUser && self.customerUser != self.customerBillingUser")
    .message("roles must name three different Cloud Director roles"))]
pub struct CloudDirectorRoles {
    /// The role of `CustomerAdministrator` grants.
    #[serde(default = "default_vcd_admin_role")]
    #[schemars(length(min = 1, max = 128))]
    pub customer_administrator: String,
    /// The role of `CustomerUser` grants.
    #[serde(default = "default_vcd_user_role")]
    #[schemars(length(min = 1, max = 128))]
    pub customer_user: String,
    /// The role of `CustomerBillingUser` grants. Cloud Director has no billing role; the default is its
    /// least privileged predefined role.
    #[serde(default = "default_vcd_billing_role")]
    #[schemars(length(min = 1, max = 128))]
    pub customer_billing_user: String,
}

fn default_vcd_admin_role() -> String {
    "Organization Administrator".into()
}

fn default_vcd_user_role() -> String {
    "vApp Author".into()
}

fn default_vcd_billing_role() -> String {
    "Console Access Only".into()
}

impl Default for CloudDirectorRoles {
    fn default() -> Self {
        CloudDirectorRoles {
            customer_administrator: default_vcd_admin_role(),
            customer_user: default_vcd_user_role(),
            customer_billing_user: default_vcd_billing_role(),
        }
    }
}

/// What Navigator needs to know to provision on VMware Cloud Director.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CloudDirectorSettings {
    /// The provider (system administrator) user Navigator logs in as; its password is the credentials
    /// Secret key.
    #[schemars(length(min = 1, max = 128))]
    pub username: String,
    /// The organisation the user logs in to; `System` for a provider administrator.
    #[serde(default = "default_vcd_org")]
    #[schemars(length(min = 1, max = 128))]
    pub org: String,
    /// What the credentials Secret key holds: `Password` (of `username`) or a provider `ApiToken`.
    #[serde(default)]
    pub credential: CloudDirectorCredential,
    /// The API version to use, e.g. `38.0` (Cloud Director 10.5). Leave empty to use the highest version
    /// both the server (not deprecated) and Navigator (37.0 to 39.x) support. Navigator refuses to talk to
    /// a server that does not offer the version set here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{2}\.[0-9]{1,2}$"), length(max = 8))]
    pub api_version: Option<String>,
    /// Name of the provider VDC whose capacity customer organisation VDCs are carved from.
    #[schemars(length(min = 1, max = 128))]
    pub provider_vdc: String,
    /// Name of the provider VDC storage profile that customer storage is allocated from.
    #[schemars(length(min = 1, max = 128))]
    pub storage_profile: String,
    /// Allocation model of the organisation VDCs Navigator creates for service types not listed in
    /// `allocationModels`.
    #[serde(default)]
    pub allocation_model: AllocationModel,
    /// The service types this endpoint offers, each with the allocation model of its organisation VDCs,
    /// e.g. `{compute: Flex, kubernetes: ReservationPool}`. Empty: `compute` only, with `allocationModel`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32))]
    #[x_kube(validation = Rule::new("self.all(k, k.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$') && size(k) <= 63)")
        .message("allocationModels keys must be service type names (lowercase letters, digits and '-')"))]
    pub allocation_models: BTreeMap<String, AllocationModel>,
    /// The speed of one vCPU in MHz: a subscription's vCPUs become `vcpu * vcpuSpeedMHz` MHz of CPU
    /// allocation, and usage divides the allocation by it again. Between 256 and 10000.
    #[serde(default = "default_vcpu_speed_mhz", rename = "vcpuSpeedMHz")]
    #[schemars(range(min = 256, max = 10000))]
    pub vcpu_speed_mhz: i32,
    /// The Cloud Director role of each Navigator customer role.
    #[serde(default)]
    pub roles: CloudDirectorRoles,
    /// Name of the network pool for routed and isolated networks in customer VDCs; leave empty when
    /// customers get no such networks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub network_pool: Option<String>,
}

fn default_vcd_org() -> String {
    "System".into()
}

fn default_vcpu_speed_mhz() -> i32 {
    2000
}

impl CloudDirectorSettings {
    /// The service types offered and the allocation model of each.
    pub fn service_types(&self) -> BTreeMap<String, AllocationModel> {
        if self.allocation_models.is_empty() {
            BTreeMap::from([("compute".to_owned(), self.allocation_model)])
        } else {
            self.allocation_models.clone()
        }
    }
}

/// Where in Request Tracker Navigator files tickets, and the custom fields it fills. The queue and the custom
/// fields must exist, and the fields must be applied to the queue: Navigator checks at every probe and
/// stalls the endpoint, naming what is missing, because RT silently drops a value for a field it does not
/// know.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestTrackerSettings {
    /// The queue tickets are filed in, by name, e.g. `Vendor Support`.
    #[schemars(length(min = 1, max = 200))]
    pub queue: String,
    /// The RT user Navigator logs in as with a password (HTTP Basic); the password is the credentials Secret
    /// key. Unset: the Secret key holds an RT authentication token (`Authorization: token ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 200))]
    pub username: Option<String>,
    /// The ticket custom field (single value, free form) that holds the SupportRequest's uid: how Navigator
    /// finds a ticket again after a crash instead of filing it twice.
    #[serde(default = "default_rt_idempotency_field")]
    #[schemars(length(min = 1, max = 200))]
    pub idempotency_key_field: String,
    /// The ticket custom field (single value) that holds the severity: `Critical`, `Major`, `Minor` or
    /// `Cosmetic`. Navigator also sets RT's priority from it.
    #[serde(default = "default_rt_severity_field")]
    #[schemars(length(min = 1, max = 200))]
    pub severity_field: String,
    /// The ticket custom field (single value, free form) that holds the customer's tenant name. Unset: the
    /// customer is named in the ticket's text only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 200))]
    pub customer_field: Option<String>,
}

fn default_rt_idempotency_field() -> String {
    "Navigator Request".into()
}

fn default_rt_severity_field() -> String {
    "Severity".into()
}

/// What Navigator last saw of the endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudEndpointStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` is `True` when the endpoint answers and accepts Navigator's credentials.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions::schema")]
    pub conditions: Vec<Condition>,
    /// The version the endpoint reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The service types the endpoint offers and the metrics it meters for each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<EndpointService>,
    /// When Navigator last probed the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<Time>,
    /// What went wrong at the last probe, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A service type an endpoint offers.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointService {
    /// The service type, e.g. `compute`, `kubernetes`, `object-storage` or `backup`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The metrics the endpoint meters for this service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<EndpointMetric>,
}

/// A usage metric an endpoint meters.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointMetric {
    /// The metric name, e.g. `vcpu-hours`.
    pub name: String,
    /// The unit a quantity of this metric is counted in, e.g. `vCPU-hour`.
    pub unit: String,
}
