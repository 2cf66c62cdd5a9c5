//! References between objects: to a sibling in the same namespace, to a cluster-scoped object, to a key of
//! a Secret.
//!
//! A reference is only a name (and a namespace where the target may live elsewhere). Whether the target
//! exists is checked by the controller, which reports a missing target as `Ready=False`, `Stalled=True`
//! with a reason, instead of refusing the object: objects can be applied in any order.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{DNS_LABEL, DNS_SUBDOMAIN};

/// A reference by name to another Navigator object in the same namespace as the referring object.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalRef {
    /// Name of the object, in the same namespace as the object that refers to it.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN))]
    pub name: String,
}

/// A reference by name to a cluster-scoped Navigator object (a CloudEndpoint or a ProviderOrg).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRef {
    /// Name of the cluster-scoped object.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN))]
    pub name: String,
}

/// A reference to an object in a given namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespacedRef {
    /// Name of the object.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN))]
    pub name: String,
    /// Namespace of the object.
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS_LABEL))]
    pub namespace: String,
}

/// One key of a Kubernetes Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN))]
    pub name: String,
    /// Namespace of the Secret, usually the namespace Navigator runs in. Navigator needs read access to it.
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS_LABEL))]
    pub namespace: String,
    /// Key in the Secret's data whose value is used.
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY))]
    pub key: String,
}

/// What a Secret data key may look like (the same rule Kubernetes applies to Secret keys).
pub const SECRET_KEY: &str = r"^[-._a-zA-Z0-9]+$";

impl LocalRef {
    /// A reference to `name` in the referring object's namespace.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }
}

impl ClusterRef {
    /// A reference to the cluster-scoped object `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }
}
