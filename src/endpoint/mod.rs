//! The driver layer: one trait through which every controller talks to a cloud endpoint.
//!
//! The trait is shaped like Crossplane's external client: each external thing (organisation, user,
//! service instance, support ticket) is observed, applied (create or update) and deleted, every call is
//! idempotent and none waits for a long operation; an asynchronous operation is started and its state is
//! read again on a later reconcile.
//!
//! The types here are also the JSON of the Navigator endpoint API (`docs/endpoint-api.yaml`), so the Http
//! driver and the simulator read and write the same shapes. A driver for an endpoint with a different API
//! (Cloud Director, Request Tracker) maps that API onto these types: it finds objects by name, keeps the
//! endpoint's own id in `external_id`, and classifies that endpoint's quirks (403 for "not found", errors
//! answered as 200 with a message) into [`DriverError`].

pub mod cloud_director;
pub mod http;
pub mod limits;
pub mod request_tracker;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub use cloud_director::{CloudDirectorConfig, CloudDirectorDriver};
pub use http::{HttpDriver, HttpDriverConfig};
pub use request_tracker::{RequestTrackerConfig, RequestTrackerDriver};

/// The result of every driver call.
pub type DriverResult<T> = Result<T, DriverError>;

/// What a driver call can fail with, classified for the reconciler.
///
/// The class decides what happens next: `Unauthorized` and `Invalid` wait for a change by the user (the
/// Secret or the spec), `NotFound` is an answer the caller interprets, the rest are retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The object, or the organisation it lives in, does not exist on the endpoint.
    #[error("not found on the endpoint: {message}")]
    NotFound { message: String },
    /// The endpoint refused the credentials. Permanent until the credentials Secret changes.
    #[error("the endpoint refused the credentials: {message}; check the token in the endpoint's Secret")]
    Unauthorized { message: String },
    /// The endpoint refused the request as invalid. Permanent until the spec changes.
    #[error("the endpoint refused the request: {message}")]
    Invalid { message: String },
    /// The object's current state does not allow the request yet (for example deleting an organisation
    /// that still holds instances, or changing an instance that is being deleted). Retried with backoff.
    #[error("conflict on the endpoint: {message}")]
    Conflict { message: String },
    /// The endpoint (or this driver's own rate limit and concurrency cap) asks to come back later.
    #[error("the endpoint is throttling requests; retry after {}s", retry_after.as_secs_f64())]
    Throttled { retry_after: Duration },
    /// The endpoint could not be reached or failed (5xx, timeout, connection error, an answer that is not
    /// the contract's). Retried with backoff.
    #[error("the endpoint is unavailable: {message}")]
    Unavailable {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// This driver's endpoint does not offer the operation (for example no support API).
    #[error("the endpoint does not support {operation}")]
    Unsupported { operation: String },
}

impl DriverError {
    /// A short CamelCase word for condition reasons and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            DriverError::NotFound { .. } => "NotFound",
            DriverError::Unauthorized { .. } => "Unauthorized",
            DriverError::Invalid { .. } => "InvalidRequest",
            DriverError::Conflict { .. } => "Conflict",
            DriverError::Throttled { .. } => "Throttled",
            DriverError::Unavailable { .. } => "EndpointUnavailable",
            DriverError::Unsupported { .. } => "Unsupported",
        }
    }

    /// Whether trying the same call again later can succeed without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            DriverError::Conflict { .. } | DriverError::Throttled { .. } | DriverError::Unavailable { .. }
        )
    }

    /// How long the endpoint asked to wait, when it said so.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            DriverError::Throttled { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        DriverError::Unavailable {
            message: message.into(),
            source: None,
        }
    }
}

/// How the endpoint keys a kind of object on create, which decides how the reconciler makes create
/// crash-safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateKey {
    /// Objects are keyed by the name Navigator chooses: repeating a create updates the same object.
    Name,
    /// The endpoint assigns the id but honours an idempotency key: repeating a create with the same key
    /// returns the first object, and `find_*` by that key answers when the outcome is unknown.
    IdempotencyKey,
    /// The endpoint assigns the id and a repeated create makes a second object. The reconciler records a
    /// create-pending marker before creating and, while the outcome is unknown, looks the object up
    /// (by name or key) instead of creating again.
    ServerAssigned,
}

/// What a driver's endpoint offers, read by the reconciler before it creates anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    pub orgs: CreateKey,
    pub users: CreateKey,
    pub instances: CreateKey,
    /// `None` when the endpoint has no support-ticket API.
    pub tickets: Option<CreateKey>,
    /// Whether `usage` is metered by this endpoint.
    pub usage: bool,
    /// How long after a create was started its object may still appear on the endpoint when its answer
    /// was lost: the longest one create request can take with this driver's settings (waiting for a slot,
    /// then its timeout), with as long again for the endpoint to finish what it accepted. Until then a
    /// create whose outcome is unknown is not repeated where a repeat would make a second object.
    pub create_grace: Duration,
}

/// Whether a delete has finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deletion {
    /// The object no longer exists (also when it never existed).
    Gone,
    /// The endpoint accepted the delete and is still working on it: observe again later.
    InProgress,
}

// ---------------------------------------------------------------------------------------------------
// Endpoint information

/// What an endpoint is and offers (`GET /v1/info`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointInfo {
    /// The endpoint software's version.
    pub version: String,
    /// The contract version the endpoint implements (`v1`).
    pub api_version: String,
    /// The service types that can be provisioned, with the metrics each is metered by.
    pub service_types: Vec<ServiceTypeInfo>,
    /// The roles a user can hold in an organisation.
    #[serde(default)]
    pub roles: Vec<RoleInfo>,
    /// Whether the support-ticket API is offered.
    #[serde(default)]
    pub support: bool,
    /// Whether the endpoint assigns ids itself, as Cloud Director and Request Tracker do: objects are then
    /// created with `POST` on their collection and addressed by id, found by name with a search, and a
    /// repeated create makes a second object. `false` (the default): names are keys.
    #[serde(default)]
    pub assigns_ids: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceTypeInfo {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub metrics: Vec<MetricInfo>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricInfo {
    /// For example `vcpu-hours`.
    pub name: String,
    /// For example `vCPU-hour`.
    pub unit: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleInfo {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

// ---------------------------------------------------------------------------------------------------
// Organisations

/// The organisation Navigator wants on the endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrgDesired {
    pub display_name: String,
    /// `false` suspends the organisation; its users and instances are kept. Defaults to `true`.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrgState {
    Active,
    Suspended,
}

/// An organisation as the endpoint reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalOrg {
    /// The endpoint's own id for the organisation.
    #[serde(rename = "id")]
    pub external_id: String,
    /// Navigator's name for it.
    pub name: String,
    pub display_name: String,
    pub enabled: bool,
    pub state: OrgState,
    pub created_at: Timestamp,
}

impl ExternalOrg {
    /// Whether the organisation already matches what is desired.
    pub fn is_up_to_date(&self, desired: &OrgDesired) -> bool {
        self.display_name == desired.display_name && self.enabled == desired.enabled
    }
}

/// The body of `POST /v1/orgs` on an endpoint that assigns ids.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewOrg {
    pub name: String,
    #[serde(flatten)]
    pub spec: OrgDesired,
}

// ---------------------------------------------------------------------------------------------------
// Users

/// A user Navigator wants in an organisation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserDesired {
    pub email: String,
    /// One of the roles the endpoint lists in [`EndpointInfo::roles`].
    pub role: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserState {
    /// Created; the person has not signed in yet.
    Invited,
    Active,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalUser {
    #[serde(rename = "id")]
    pub external_id: String,
    pub username: String,
    pub email: String,
    pub role: String,
    pub state: UserState,
    pub created_at: Timestamp,
}

impl ExternalUser {
    pub fn is_up_to_date(&self, desired: &UserDesired) -> bool {
        self.email == desired.email && self.role == desired.role
    }
}

/// The body of `POST /v1/orgs/{org}/users` on an endpoint that assigns ids.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewUser {
    pub username: String,
    #[serde(flatten)]
    pub spec: UserDesired,
}

// ---------------------------------------------------------------------------------------------------
// Service instances

/// The size of a service instance. Which resources a service type uses, and their ranges, are the
/// endpoint's to decide; unused ones are zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    #[serde(default)]
    pub vcpu: u32,
    #[serde(default, rename = "memoryGiB")]
    pub memory_gib: u32,
    #[serde(default, rename = "storageGiB")]
    pub storage_gib: u32,
}

/// The service instance Navigator wants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceDesired {
    /// One of the service types in [`EndpointInfo::service_types`]; cannot change once created.
    pub service_type: String,
    pub resources: Resources,
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InstanceState {
    Provisioning,
    Ready,
    Updating,
    Deleting,
    Failed,
}

impl InstanceState {
    /// Whether an operation is still running on the endpoint (poll again later).
    pub fn is_in_progress(self) -> bool {
        matches!(
            self,
            InstanceState::Provisioning | InstanceState::Updating | InstanceState::Deleting
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalInstance {
    #[serde(rename = "id")]
    pub external_id: String,
    pub name: String,
    pub service_type: String,
    /// The resources last applied (what the instance becomes once an update finishes).
    pub resources: Resources,
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    pub state: InstanceState,
    /// Where the customer reaches the service, once it is ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_url: Option<String>,
    /// A human-readable word on the state, especially on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl ExternalInstance {
    /// Whether the instance already has what is desired (it may still be applying it: see `state`).
    pub fn is_up_to_date(&self, desired: &InstanceDesired) -> bool {
        self.service_type == desired.service_type
            && self.resources == desired.resources
            && self.parameters == desired.parameters
    }
}

/// The body of `POST /v1/orgs/{org}/instances` on an endpoint that assigns ids.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewInstance {
    pub name: String,
    #[serde(flatten)]
    pub spec: InstanceDesired,
}

// ---------------------------------------------------------------------------------------------------
// Usage

/// A half-open time window `[from, to)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UsageWindow {
    pub from: Timestamp,
    pub to: Timestamp,
}

impl UsageWindow {
    /// A window; `from` must be before `to`.
    pub fn new(from: Timestamp, to: Timestamp) -> DriverResult<Self> {
        if from >= to {
            return Err(DriverError::Invalid {
                message: format!("usage window from {from} is not before to {to}"),
            });
        }
        Ok(UsageWindow { from, to })
    }
}

/// How much of one metric one instance used in a window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageRecord {
    /// Navigator's name of the instance.
    pub instance: String,
    /// The endpoint's id of the instance.
    #[serde(rename = "instanceId")]
    pub instance_external_id: String,
    pub service_type: String,
    pub metric: String,
    pub unit: String,
    /// A decimal number, never a float (a string in JSON).
    pub quantity: Decimal,
}

/// The answer of `GET /v1/orgs/{org}/usage`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageReport {
    pub org: String,
    pub from: Timestamp,
    pub to: Timestamp,
    /// `false` while the window has not ended: the numbers still grow.
    pub complete: bool,
    pub records: Vec<UsageRecord>,
}

// ---------------------------------------------------------------------------------------------------
// Support tickets

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Severity {
    Critical,
    Major,
    Minor,
    Cosmetic,
}

/// A support ticket Navigator opens with the vendor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketDesired {
    /// The organisation (customer) the ticket is about.
    pub org: String,
    pub severity: Severity,
    pub product: String,
    pub subject: String,
    pub description: String,
    /// Who the vendor answers to (an email address or name).
    pub contact: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TicketState {
    New,
    Open,
    WaitingOnCustomer,
    Resolved,
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Author {
    /// The vendor's support team.
    Vendor,
    /// The provider (Navigator, on the customer's behalf).
    Provider,
}

/// Who on the endpoint may read a provider comment, where the endpoint tells them apart (Request Tracker:
/// a reply, mailed to the ticket's requestors, or an internal comment for the vendor's staff).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommentVisibility {
    /// A reply on the ticket, seen by everyone on it.
    #[default]
    Public,
    /// An internal note for the vendor's support staff.
    Internal,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Comment {
    pub id: String,
    pub author: Author,
    pub body: String,
    pub created_at: Timestamp,
    /// The key the provider sent the comment with, so a sender can tell which of its comments arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ticket {
    /// The endpoint's id for the ticket (it assigns it).
    #[serde(rename = "id")]
    pub external_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    pub org: String,
    pub severity: Severity,
    pub product: String,
    pub subject: String,
    pub description: String,
    pub contact: String,
    pub state: TicketState,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    #[serde(default)]
    pub comments: Vec<Comment>,
}

// ---------------------------------------------------------------------------------------------------
// The trait

/// One cloud endpoint, as the reconciler sees it. Held as `Arc<dyn Driver>`.
///
/// Every call but `create_*` is idempotent, and none waits for a long operation: `apply_*` and `delete_*`
/// start the work and report where it stands; the reconciler observes again on a later pass. `observe_*`
/// answers `Ok(None)` when the object does not exist; `delete_*` answers `Gone` also when it never did.
/// Whether a `create_*` may be repeated depends on [`Driver::capabilities`].
#[async_trait]
pub trait Driver: Send + Sync {
    /// How the endpoint keys creates; decides how the reconciler makes create crash-safe. A driver that has
    /// not yet learnt this from its endpoint answers the safe assumption, [`CreateKey::ServerAssigned`].
    fn capabilities(&self) -> Capabilities;

    /// The endpoint's version, service types and metrics. A cheap call, used as the health probe.
    async fn info(&self) -> DriverResult<EndpointInfo>;

    /// The organisation of this name (the oldest, should the endpoint hold several).
    async fn observe_org(&self, name: &str) -> DriverResult<Option<ExternalOrg>>;
    /// Creates the organisation. Where the endpoint assigns ids ([`CreateKey::ServerAssigned`]) every
    /// call makes a new organisation and is sent once, never retried by the driver: only the reconciler's
    /// create protocol (`controller::create_protocol`) calls it.
    async fn create_org(&self, name: &str, desired: &OrgDesired) -> DriverResult<ExternalOrg>;
    /// Brings the organisation to `desired`. Where names are keys this also creates a missing one; where
    /// the endpoint assigns ids a missing one is `NotFound` (only `create_org` creates).
    async fn apply_org(&self, name: &str, desired: &OrgDesired) -> DriverResult<ExternalOrg>;
    /// Deletes the organisation and its users. Fails with `Conflict` while it still holds instances.
    async fn delete_org(&self, name: &str) -> DriverResult<Deletion>;

    async fn observe_user(&self, org: &str, username: &str) -> DriverResult<Option<ExternalUser>>;
    /// Creates (invites) the user; like [`Driver::create_org`].
    async fn create_user(&self, org: &str, username: &str, desired: &UserDesired) -> DriverResult<ExternalUser>;
    /// Brings the user to `desired`; like [`Driver::apply_org`].
    async fn apply_user(&self, org: &str, username: &str, desired: &UserDesired) -> DriverResult<ExternalUser>;
    async fn delete_user(&self, org: &str, username: &str) -> DriverResult<Deletion>;

    async fn observe_instance(&self, org: &str, name: &str) -> DriverResult<Option<ExternalInstance>>;
    /// Creates the instance and returns at once (`Provisioning`); like [`Driver::create_org`].
    async fn create_instance(&self, org: &str, name: &str, desired: &InstanceDesired)
    -> DriverResult<ExternalInstance>;
    /// Changes the instance to `desired`; returns at once with the state the change left it in
    /// (`Updating`, or the current state when nothing changed). Creates like [`Driver::apply_org`].
    async fn apply_instance(&self, org: &str, name: &str, desired: &InstanceDesired) -> DriverResult<ExternalInstance>;
    async fn delete_instance(&self, org: &str, name: &str) -> DriverResult<Deletion>;

    /// What every instance of the organisation (also those deleted since) used in the window.
    async fn usage(&self, org: &str, window: UsageWindow) -> DriverResult<Vec<UsageRecord>>;

    /// Opens a ticket. Where tickets are [`CreateKey::IdempotencyKey`], repeating the call with the same
    /// key returns the first ticket; where they are [`CreateKey::ServerAssigned`] the key is only recorded
    /// (to find the ticket by) and a repeat opens a second ticket.
    async fn create_ticket(&self, idempotency_key: &str, desired: &TicketDesired) -> DriverResult<Ticket>;
    /// The ticket created with this key (the oldest, should there be several), if any: for when a create's
    /// outcome is unknown.
    async fn find_ticket(&self, idempotency_key: &str) -> DriverResult<Option<Ticket>>;
    async fn get_ticket(&self, id: &str) -> DriverResult<Option<Ticket>>;
    /// Adds a provider comment. Repeating the call with the same key adds nothing and returns the first.
    async fn add_comment(&self, id: &str, idempotency_key: &str, body: &str) -> DriverResult<Comment>;
    /// [`Driver::add_comment`] with a visibility, for endpoints that tell replies from internal notes; the
    /// others send every comment the one way they know.
    async fn add_comment_with(
        &self,
        id: &str,
        idempotency_key: &str,
        body: &str,
        _visibility: CommentVisibility,
    ) -> DriverResult<Comment> {
        self.add_comment(id, idempotency_key, body).await
    }
    /// Closes the ticket (closing a closed ticket is harmless).
    async fn close_ticket(&self, id: &str) -> DriverResult<Ticket>;
    /// Opens a closed ticket again (reopening an open ticket is harmless).
    async fn reopen_ticket(&self, _id: &str) -> DriverResult<Ticket> {
        Err(DriverError::Unsupported {
            operation: "reopening tickets".into(),
        })
    }
}

/// A bearer token or password: kept out of `Debug` and `Display` so it never reaches a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself: only for putting it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified() {
        let cases: Vec<(DriverError, &str, bool)> = vec![
            (DriverError::NotFound { message: "x".into() }, "NotFound", false),
            (DriverError::Unauthorized { message: "x".into() }, "Unauthorized", false),
            (DriverError::Invalid { message: "x".into() }, "InvalidRequest", false),
            (DriverError::Conflict { message: "x".into() }, "Conflict", true),
            (
                DriverError::Throttled {
                    retry_after: Duration::from_secs(2),
                },
                "Throttled",
                true,
            ),
            (DriverError::unavailable("x"), "EndpointUnavailable", true),
            (
                DriverError::Unsupported {
                    operation: "tickets".into(),
                },
                "Unsupported",
                false,
            ),
        ];
        for (error, reason, retryable) in cases {
            assert_eq!(error.reason(), reason, "{error}");
            assert_eq!(error.is_retryable(), retryable, "{error}");
        }
        assert_eq!(
            DriverError::Throttled {
                retry_after: Duration::from_secs(2)
            }
            .retry_after(),
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn secrets_are_redacted() {
        let secret = Secret::new("hunter2-very-secret");
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert_eq!(secret.expose(), "hunter2-very-secret");
    }

    #[test]
    fn wire_names_follow_the_contract() {
        let instance: ExternalInstance = serde_json::from_value(serde_json::json!({
            "id": "i-1", "name": "web", "serviceType": "compute",
            "resources": {"vcpu": 2, "memoryGiB": 4, "storageGiB": 20},
            "state": "Provisioning", "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"
        }))
        .unwrap();
        assert_eq!(instance.external_id, "i-1");
        assert_eq!(
            instance.resources,
            Resources {
                vcpu: 2,
                memory_gib: 4,
                storage_gib: 20
            }
        );
        let record: UsageRecord = serde_json::from_value(serde_json::json!({
            "instance": "web", "instanceId": "i-1", "serviceType": "compute",
            "metric": "vcpu-hours", "unit": "vCPU-hour", "quantity": "1.5"
        }))
        .unwrap();
        assert_eq!(record.quantity, Decimal::new(15, 1));
        assert_eq!(serde_json::to_value(&record).unwrap()["quantity"], "1.5");
    }

    #[test]
    fn usage_window_must_be_ordered() {
        let a: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let b: Timestamp = "2026-02-01T00:00:00Z".parse().unwrap();
        assert!(UsageWindow::new(a, b).is_ok());
        assert!(matches!(UsageWindow::new(b, a), Err(DriverError::Invalid { .. })));
        assert!(UsageWindow::new(a, a).is_err());
    }
}
