//! SupportRequest (in a provider's namespace): a support case the provider opens with the vendor on a
//! customer's behalf.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::DNS_LABEL;
use super::conditions::{self, Condition};
use super::references::LocalRef;

/// How badly a problem affects the customer; it sets how soon the vendor must respond.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema)]
pub enum Severity {
    /// Production is down or unusable.
    Critical,
    /// Production is impaired.
    Major,
    /// A problem with a workaround.
    Minor,
    /// No impact on service.
    Cosmetic,
}

/// Whether the provider wants the case open or closed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum RequestedState {
    /// The case is worked on.
    #[default]
    Open,
    /// The case is done: Navigator closes the ticket.
    Closed,
}

/// A support case the provider works with the vendor's support team on behalf of one of its customers.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
// The derive's printcolumn(...) lists repeat `type_ = "string"`, which clippy takes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[kube(
    group = "navigator.cloudpartner.io",
    version = "v1alpha1",
    kind = "SupportRequest",
    plural = "supportrequests",
    namespaced,
    status = "SupportRequestStatus",
    shortname = "sr",
    category = "navigator",
    derive = "PartialEq",
    doc = "A support case the provider opens with the vendor on behalf of one of its customers. Navigator files \
           it as a ticket through the provider's support endpoint, sends each comment added to spec.comments \
           once, shows the vendor's state and replies in status, and closes the ticket when \
           spec.requestedState is Closed.",
    printcolumn(name = "Customer", type_ = "string", json_path = ".spec.customerOrgRef.name"),
    printcolumn(name = "Severity", type_ = "string", json_path = ".spec.severity"),
    printcolumn(name = "Subject", type_ = "string", json_path = ".spec.subject", priority = 1),
    printcolumn(name = "Ticket", type_ = "string", json_path = ".status.ticketId"),
    printcolumn(name = "Vendor State", type_ = "string", json_path = ".status.vendorState"),
    printcolumn(name = "Respond By", type_ = "string", json_path = ".status.respondBy", priority = 1),
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
    validation = Rule::new("!has(oldSelf.comments) || has(self.comments)")
        .message("comments can only be appended: existing comments cannot be removed")
        .field_path(".comments"),
    validation = Rule::new(
        "has(self.subscriptionRef) == has(oldSelf.subscriptionRef) && (!has(self.subscriptionRef) || self.subscriptionRef == oldSelf.subscriptionRef)"
    )
    .message("subscriptionRef is immutable: it can be neither set, changed nor removed after creation")
    .field_path(".subscriptionRef")
)]
pub struct SupportRequestSpec {
    /// The CustomerOrg, in this namespace, the case is opened for. Cannot be changed.
    #[x_kube(validation = Rule::new("self == oldSelf").message("customerOrgRef is immutable"))]
    pub customer_org_ref: LocalRef,

    /// The CloudServiceSubscription, in this namespace, the case is about, if it is about one. Can only be
    /// given at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_ref: Option<LocalRef>,

    /// How badly the problem affects the customer: `Critical`, `Major`, `Minor` or `Cosmetic`. Sets
    /// `status.respondBy` from the provider's response times. May be raised or lowered later.
    pub severity: Severity,

    /// The product or service the case is about, as the vendor names it, e.g. `Compute` or `Kubernetes`.
    /// Cannot be changed.
    #[schemars(length(min = 1, max = 128))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("product is immutable"))]
    pub product: String,

    /// One line saying what is wrong, e.g. `VMs in globex-prod do not start`.
    #[schemars(length(min = 1, max = 255))]
    pub subject: String,

    /// The problem in full: what happens, since when, what was tried. Sent when the ticket is filed, so it
    /// cannot be changed afterwards: add a comment instead.
    #[schemars(length(min = 1, max = 32768))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("description is immutable once filed: add a comment instead"))]
    pub description: String,

    /// Who the vendor should contact about the case. Unset: the provider's support team.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<SupportContact>,

    /// Comments from the provider to the vendor, in order. Each is sent once. Append new comments at the
    /// end; comments already listed cannot be changed, reordered or removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 200))]
    #[x_kube(
        merge_strategy = ListMerge::Map(vec!["id".into()]),
        validation = Rule::new("size(self) >= size(oldSelf) && oldSelf.all(i, c, self[i].id == c.id && self[i].body == c.body && self[i].author == c.author)")
            .message("comments can only be appended: existing comments cannot be changed, reordered or removed")
    )]
    pub comments: Vec<Comment>,

    /// `Open` (the default) while the case is worked on; `Closed` to close the ticket.
    #[serde(default)]
    pub requested_state: RequestedState,
}

/// Who to contact about a case.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SupportContact {
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
}

/// A comment from the provider to the vendor.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Comment {
    /// A key the author chooses, unique in the list, e.g. `c1` or `2026-07-01-logs`: how Navigator knows it
    /// sent this comment.
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS_LABEL))]
    pub id: String,
    /// The text of the comment.
    #[schemars(length(min = 1, max = 8192))]
    pub body: String,
    /// Who wrote it, as shown to the vendor. Unset: the provider's support team.
    #[serde(default)]
    #[schemars(length(max = 256))]
    pub author: String,
    /// Who on the vendor's side reads it: `Public` (the default) is a reply on the ticket, which the
    /// vendor's system may also mail to the ticket's contacts (Request Tracker: correspondence);
    /// `Internal` is a note for the vendor's support staff only (Request Tracker: a comment). Endpoints
    /// that do not tell the two apart send both the same way.
    #[serde(default, skip_serializing_if = "is_public")]
    pub visibility: CommentVisibility,
}

/// Who on the vendor's side reads a comment.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum CommentVisibility {
    /// A reply on the ticket, seen by everyone on it.
    #[default]
    Public,
    /// A note for the vendor's support staff only.
    Internal,
}

fn is_public(visibility: &CommentVisibility) -> bool {
    *visibility == CommentVisibility::Public
}

/// Where a comment in the conversation came from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum CommentSource {
    /// The vendor's support team.
    Vendor,
    /// The provider, sent from `spec.comments`.
    Provider,
}

/// One comment of the conversation on the ticket.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TicketComment {
    /// The comment's id: the vendor's for vendor comments, `spec.comments[].id` for the provider's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `Vendor` or `Provider`.
    pub source: CommentSource,
    /// Who wrote it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub author: String,
    /// The text.
    pub body: String,
    /// When it was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
}

/// The ticket as the vendor's support system shows it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SupportRequestStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` is `True` when the ticket is filed and every comment delivered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions::schema")]
    pub conditions: Vec<Condition>,
    /// The ticket's id in the vendor's support system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<String>,
    /// The ticket's state as the vendor reports it, e.g. `New`, `Open`, `Resolved`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_state: Option<String>,
    /// When the vendor must respond by, from the severity and the provider's response times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub respond_by: Option<Time>,
    /// The conversation on the ticket: the vendor's replies and the provider's delivered comments, oldest
    /// first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub comments: Vec<TicketComment>,
    /// Ids of the `spec.comments` already sent to the vendor.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delivered_comments: Vec<String>,
    /// Whether Navigator closed the ticket because `spec.requestedState` was `Closed`: setting it back to
    /// `Open` then reopens the ticket. A ticket the vendor closed stays closed while `requestedState` is
    /// `Open`; to reopen it, set `Closed` and then `Open`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub closed_on_request: bool,
}
