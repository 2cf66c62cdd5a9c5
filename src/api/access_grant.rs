//! AccessGrant (in a provider's namespace): a person or group given a role, provider-wide or on one
//! customer organisation, optionally until a time.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{DNS_SUBDOMAIN, Subject};
use super::conditions::{self, Condition};
use super::references::LocalRef;

/// The role catalogue: each role is a ClusterRole shipped with Navigator.
///
/// `Provider*` roles apply to the provider's namespace, `Customer*` roles to one customer (its namespace and
/// its tenant organisation on the endpoint), `Distributor*` and `Reseller*` roles to an organisation acting
/// as distributor or reseller.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema)]
pub enum Role {
    /// Everything in the provider organisation, including access grants.
    ProviderAdministrator,
    /// Customers, subscriptions and support, including deleting them.
    ProviderOperationsAdministrator,
    /// Customers, subscriptions and support, but not deleting customer organisations.
    ProviderOperationsUser,
    /// Customer organisations, their contacts and access grants.
    ProviderAccountAdministrator,
    /// Invoices, billing status and contracts, read-only.
    ProviderBillingUser,
    /// Support requests.
    ProviderSupportUser,
    /// Subscriptions: the services provisioned for customers.
    ProviderServiceManager,
    /// Read access to the provider's resources, for building on them.
    ProviderDeveloper,
    /// Everything a customer may see and do, on one customer.
    CustomerAdministrator,
    /// Using one customer's services.
    CustomerUser,
    /// One customer's invoices, read-only.
    CustomerBillingUser,
    /// Everything in an organisation acting as distributor.
    DistributorAdministrator,
    /// Read access in an organisation acting as distributor.
    DistributorUser,
    /// Everything in an organisation acting as reseller.
    ResellerAdministrator,
    /// Read access in an organisation acting as reseller.
    ResellerUser,
}

impl Role {
    /// Every role, in catalogue order.
    pub const ALL: [Role; 15] = [
        Role::ProviderAdministrator,
        Role::ProviderOperationsAdministrator,
        Role::ProviderOperationsUser,
        Role::ProviderAccountAdministrator,
        Role::ProviderBillingUser,
        Role::ProviderSupportUser,
        Role::ProviderServiceManager,
        Role::ProviderDeveloper,
        Role::CustomerAdministrator,
        Role::CustomerUser,
        Role::CustomerBillingUser,
        Role::DistributorAdministrator,
        Role::DistributorUser,
        Role::ResellerAdministrator,
        Role::ResellerUser,
    ];

    /// Whether the role applies to one customer (and so needs `scope.customerOrgRef`).
    pub fn is_customer_role(self) -> bool {
        matches!(
            self,
            Role::CustomerAdministrator | Role::CustomerUser | Role::CustomerBillingUser
        )
    }

    /// The role's name as written in the spec, e.g. `ProviderBillingUser`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ProviderAdministrator => "ProviderAdministrator",
            Role::ProviderOperationsAdministrator => "ProviderOperationsAdministrator",
            Role::ProviderOperationsUser => "ProviderOperationsUser",
            Role::ProviderAccountAdministrator => "ProviderAccountAdministrator",
            Role::ProviderBillingUser => "ProviderBillingUser",
            Role::ProviderSupportUser => "ProviderSupportUser",
            Role::ProviderServiceManager => "ProviderServiceManager",
            Role::ProviderDeveloper => "ProviderDeveloper",
            Role::CustomerAdministrator => "CustomerAdministrator",
            Role::CustomerUser => "CustomerUser",
            Role::CustomerBillingUser => "CustomerBillingUser",
            Role::DistributorAdministrator => "DistributorAdministrator",
            Role::DistributorUser => "DistributorUser",
            Role::ResellerAdministrator => "ResellerAdministrator",
            Role::ResellerUser => "ResellerUser",
        }
    }
}

/// Gives a person or group a role, provider-wide or on one customer organisation (optionally only some of
/// its subscriptions), optionally until a time.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
// The derive's printcolumn(...) lists repeat `type_ = "string"`, which clippy takes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[kube(
    group = "navigator.cloudpartner.io",
    version = "v1alpha1",
    kind = "AccessGrant",
    plural = "accessgrants",
    namespaced,
    status = "AccessGrantStatus",
    shortname = "ag",
    category = "navigator",
    derive = "PartialEq",
    doc = "Gives a user or group one role of the Navigator role catalogue in the provider organisation whose \
           namespace it lives in: provider-wide, or on one customer organisation (optionally only some of its \
           subscriptions), optionally until a time. Navigator turns it into RoleBindings and, for a customer \
           scope, a user with the matching role in the customer's tenant organisation on the endpoint.",
    printcolumn(name = "Subject", type_ = "string", json_path = ".spec.subject.name"),
    printcolumn(name = "Role", type_ = "string", json_path = ".spec.role"),
    printcolumn(name = "Customer", type_ = "string", json_path = ".spec.scope.customerOrgRef.name"),
    printcolumn(name = "Expires", type_ = "string", json_path = ".spec.expiresAt", priority = 1),
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
    validation = Rule::new("!self.role.startsWith('Customer') || (has(self.scope) && has(self.scope.customerOrgRef))")
        .message("customer roles (Customer*) need scope.customerOrgRef: the customer they apply to")
        .field_path(".scope"),
    validation = Rule::new("self.role.startsWith('Customer') || !has(self.scope) || !has(self.scope.customerOrgRef)")
        .message("scope.customerOrgRef is only allowed with customer roles (Customer*); provider, distributor and reseller roles apply to the whole organisation")
        .field_path(".scope"),
    // On the spec rather than the field, so that adding or removing it is refused too: a rule on the field
    // runs only when both the old and the new object have it.
    validation = Rule::new("has(self.scope) && has(self.scope.customerOrgRef) ? has(oldSelf.scope) && has(oldSelf.scope.customerOrgRef) && self.scope.customerOrgRef == oldSelf.scope.customerOrgRef : !has(oldSelf.scope) || !has(oldSelf.scope.customerOrgRef)")
        .message("cannot be changed, added or removed: to give this subject access to another customer, delete this AccessGrant and create a new one")
        .field_path(".scope.customerOrgRef")
        .reason(Reason::FieldValueForbidden)
)]
pub struct AccessGrantSpec {
    /// Who gets the role: a `User` or a `Group` as the Kubernetes API server authenticates them. For a
    /// customer scope, `email` is used to invite the user on the endpoint.
    pub subject: Subject,

    /// The role, one of: ProviderAdministrator, ProviderOperationsAdministrator, ProviderOperationsUser,
    /// ProviderAccountAdministrator, ProviderBillingUser, ProviderSupportUser, ProviderServiceManager,
    /// ProviderDeveloper (provider-wide); CustomerAdministrator, CustomerUser, CustomerBillingUser (need
    /// `scope.customerOrgRef`); DistributorAdministrator, DistributorUser, ResellerAdministrator, ResellerUser
    /// (for an organisation acting as distributor or reseller).
    pub role: Role,

    /// Where the role applies. Unset: the whole provider organisation. Customer roles need
    /// `scope.customerOrgRef`; the other roles do not allow it. `scope.customerOrgRef` is fixed when the
    /// grant is created; `scope.subscriptions` can be changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<GrantScope>,

    /// When the grant ends, as an RFC 3339 time such as `2026-12-31T23:59:59Z`. Navigator revokes it then
    /// without anyone acting. Unset: it lasts until the AccessGrant is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
}

/// Where a grant applies.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.subscriptions) || has(self.customerOrgRef)")
    .message("subscriptions can only be listed with a customerOrgRef: they belong to that customer")
    .field_path(".subscriptions"))]
pub struct GrantScope {
    /// The CustomerOrg, in this namespace, the role applies to. Required for customer roles, not allowed
    /// for the others. Cannot be changed, added or removed once the grant exists: moving access to another
    /// customer is revoking it from one and granting it on the other, so delete this AccessGrant and create a
    /// new one (the subject never holds access in both customers' tenant organisations at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_org_ref: Option<LocalRef>,
    /// Names of CloudServiceSubscriptions of that customer the role is limited to. Unset: all of the
    /// customer's subscriptions. Can be changed at any time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1, max = 64), inner(regex(pattern = DNS_SUBDOMAIN), length(min = 1, max = 253)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub subscriptions: Vec<String>,
}

/// Where a grant is in its life.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum GrantPhase {
    /// Not yet in effect: bindings or the endpoint user are being set up, or a reference is missing.
    Pending,
    /// In effect.
    Active,
    /// `expiresAt` has passed and the access was removed.
    Expired,
    /// The access was removed because the grant is being deleted.
    Revoked,
}

/// A RoleBinding Navigator created for a grant.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BindingRef {
    /// Namespace of the RoleBinding.
    pub namespace: String,
    /// Name of the RoleBinding.
    pub name: String,
}

/// The user Navigator created or invited on the endpoint for a customer-scoped grant.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointUser {
    /// The user's id on the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The user name on the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The endpoint's role the user holds in the tenant organisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// What the grant has put in place.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessGrantStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` is `True` when the subject holds the role everywhere the grant says.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions::schema")]
    pub conditions: Vec<Condition>,
    /// `Pending`, `Active`, `Expired` or `Revoked`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<GrantPhase>,
    /// The RoleBindings that give the subject the role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bindings: Vec<BindingRef>,
    /// For a customer scope: the subject's user in the customer's tenant organisation on the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_user: Option<EndpointUser>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_str_is_the_serialized_name_and_only_customer_roles_are_customer_roles() {
        for role in Role::ALL {
            assert_eq!(serde_json::to_value(role).unwrap(), serde_json::json!(role.as_str()));
            assert_eq!(
                role.is_customer_role(),
                role.as_str().starts_with("Customer"),
                "{role:?}"
            );
        }
    }
}
