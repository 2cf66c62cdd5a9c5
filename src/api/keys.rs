//! Every label, annotation and finalizer key Navigator writes, in one place. They are part of its contract
//! with users and tools (selectors, `kubectl get -l`, GitOps diffs), so they change only with the API
//! version.

// Labels on what Navigator creates, naming its owner (also the selectors of the operator's watches).

/// On everything Navigator creates, with the value `navigator`.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// On a provider's namespace and administrators' RoleBinding: the ProviderOrg's name.
pub const PROVIDER_ORG_LABEL: &str = "navigator.cloudpartner.io/provider-org";
/// On a customer namespace: the CustomerOrg's name.
pub const CUSTOMER_ORG_LABEL: &str = "navigator.cloudpartner.io/customer-org";
/// On a customer namespace: the provider namespace its CustomerOrg lives in.
pub const PROVIDER_NAMESPACE_LABEL: &str = "navigator.cloudpartner.io/provider-namespace";
/// On an AccessGrant's RoleBindings and directory entry: the grant's uid.
pub const GRANT_UID_LABEL: &str = "navigator.cloudpartner.io/access-grant-uid";
/// On an Invoice: its billing period, e.g. `2026-10`.
pub const BILLING_PERIOD_LABEL: &str = "navigator.cloudpartner.io/billing-period";
/// On an Invoice: the reseller the customer is attributed to.
pub const RESELLER_LABEL: &str = "navigator.cloudpartner.io/reseller";
/// On every object of Navigator's kinds when sharded: its shard, set by the chart's admission policy (see
/// `crate::runtime::shard`).
pub const SHARD_LABEL: &str = "navigator.cloudpartner.io/shard";

// Annotations.

/// On an AccessGrant's RoleBindings and directory entry: `<namespace>/<name>` of the grant.
pub const GRANT_ANNOTATION: &str = "navigator.cloudpartner.io/access-grant";
// The crash-safe create protocol's markers, one pair per thing created, so that one Kubernetes object could
// guard several creates without one's marker clearing another's.
pub const PENDING_ORG: &str = "navigator.cloudpartner.io/create-pending-org";
pub const PENDING_USER: &str = "navigator.cloudpartner.io/create-pending-user";
pub const PENDING_INSTANCE: &str = "navigator.cloudpartner.io/create-pending-instance";
pub const PENDING_TICKET: &str = "navigator.cloudpartner.io/create-pending-ticket";
pub const FAILED_ORG: &str = "navigator.cloudpartner.io/create-failed-org";
pub const FAILED_USER: &str = "navigator.cloudpartner.io/create-failed-user";
pub const FAILED_INSTANCE: &str = "navigator.cloudpartner.io/create-failed-instance";
pub const FAILED_TICKET: &str = "navigator.cloudpartner.io/create-failed-ticket";

// Finalizers: what a kind provisioned is removed before the object goes.

pub const CUSTOMER_ORG_FINALIZER: &str = "navigator.cloudpartner.io/customer-org";
pub const SUBSCRIPTION_FINALIZER: &str = "navigator.cloudpartner.io/subscription";
pub const ACCESS_GRANT_FINALIZER: &str = "navigator.cloudpartner.io/access-grant";
