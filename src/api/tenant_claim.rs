//! TenantClaim (cluster-scoped): which CustomerOrg holds a tenant organisation on an endpoint.
//!
//! Written only by the operator, never by users. Its name is derived from the endpoint and the tenant name
//! ([`claim_name`]), so creating it is the lock: the API server accepts one create per name and refuses the
//! second with `AlreadyExists`, whichever operator instance sends it and whenever. Its spec never changes.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{DNS_LABEL, DNS_SUBDOMAIN};
use super::references::ClusterRef;

/// The longest Kubernetes object name (a DNS subdomain).
const MAX_NAME_LEN: usize = 253;

/// Which CustomerOrg holds a tenant organisation on an endpoint. A tenant belongs to exactly one
/// CustomerOrg: the first to claim it. Another CustomerOrg naming the same tenant on the same endpoint stalls
/// with reason `TenantClaimed` and Navigator does nothing for it on the endpoint.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
// The derive's printcolumn(...) lists repeat `type_ = "string"`, which clippy takes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[kube(
    group = "navigator.cloudpartner.io",
    version = "v1alpha1",
    kind = "TenantClaim",
    plural = "tenantclaims",
    shortname = "tc",
    category = "navigator",
    derive = "PartialEq",
    doc = "Which CustomerOrg holds a tenant organisation on an endpoint: a tenant belongs to exactly one \
           CustomerOrg, the first to claim it, and another CustomerOrg naming it stalls with reason \
           TenantClaimed. Cluster-scoped; written only by Navigator (when a CustomerOrg first provisions or \
           adopts its tenant) and deleted by it once the tenant is gone or orphaned. Read it to see who holds \
           which tenant; do not create, change or delete it. Its name is <endpoint>.<tenant name>, shortened and \
           followed by a hash where that would be longer than 253 characters.",
    printcolumn(name = "Endpoint", type_ = "string", json_path = ".spec.endpointRef.name"),
    printcolumn(name = "Tenant", type_ = "string", json_path = ".spec.tenantName"),
    printcolumn(name = "Provider", type_ = "string", json_path = ".spec.providerOrgRef.name"),
    printcolumn(
        name = "Customer Namespace",
        type_ = "string",
        json_path = ".spec.customerOrgRef.namespace"
    ),
    printcolumn(name = "Customer", type_ = "string", json_path = ".spec.customerOrgRef.name"),
    printcolumn(name = "Adopted", type_ = "boolean", json_path = ".spec.adopted"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self == oldSelf").message("a TenantClaim's spec cannot be changed"))]
pub struct TenantClaimSpec {
    /// The CloudEndpoint the tenant organisation lives on.
    pub endpoint_ref: ClusterRef,

    /// The tenant organisation's name on the endpoint, as the CustomerOrg's `spec.tenantName` spells it.
    /// Tenant names are compared without regard to case, as Cloud Director compares organisation names.
    #[schemars(length(min = 1, max = 253))]
    pub tenant_name: String,

    /// The CustomerOrg holding the tenant.
    pub customer_org_ref: ClaimantRef,

    /// The ProviderOrg whose namespace the holding CustomerOrg lives in.
    pub provider_org_ref: ClusterRef,

    /// `true` when the tenant organisation already existed on the endpoint when it was claimed (created
    /// outside Navigator, or left behind by a CustomerOrg deleted with `deletionPolicy: Orphan`), so Navigator
    /// adopted it rather than created it.
    #[serde(default)]
    pub adopted: bool,
}

/// The CustomerOrg holding a tenant, down to its uid: a CustomerOrg deleted and created again under the same
/// name is another CustomerOrg.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClaimantRef {
    /// Namespace of the CustomerOrg (its provider's namespace).
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS_LABEL))]
    pub namespace: String,
    /// Name of the CustomerOrg.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN))]
    pub name: String,
    /// `metadata.uid` of the CustomerOrg.
    #[schemars(length(min = 1, max = 128))]
    pub uid: String,
}

/// The key tenant names are compared by: Cloud Director treats organisation names without regard to case.
pub fn tenant_key(tenant: &str) -> String {
    tenant.to_lowercase()
}

/// The name of the TenantClaim for `tenant` on `endpoint`: the same for every spelling of the tenant that
/// differs only in case, and always a valid object name.
///
/// Usually `<endpoint>.<tenant>` (e.g. `cloud-eu.globex`): the schemas make the endpoint name a DNS subdomain
/// and the tenant name a DNS label, which has no dot, so the pair can be read back from the name. When that
/// does not fit in 253 characters (an endpoint name longer than 189), or the names are not of those shapes,
/// the name is a cleaned-up, shortened form followed by 16 hexadecimal digits of a hash of both names, so
/// different pairs still get different names. Should two pairs ever share a name, the claim's spec tells them
/// apart and the second stalls: a tenant is never shared.
pub fn claim_name(endpoint: &str, tenant: &str) -> String {
    let tenant = tenant_key(tenant);
    let readable = format!("{endpoint}.{tenant}");
    if readable.len() <= MAX_NAME_LEN && is_dns_label(&tenant) && is_dns_subdomain(endpoint) {
        return readable;
    }
    let mut hash_input = endpoint.as_bytes().to_vec();
    hash_input.push(0);
    hash_input.extend_from_slice(tenant.as_bytes());
    let hash = format!("{:016x}", fnv1a(&hash_input));
    let mut base = cleaned(&readable.to_lowercase());
    // `cleaned` yields ASCII, so byte truncation is character truncation.
    base.truncate(MAX_NAME_LEN - 1 - hash.len());
    let base = base.trim_end_matches(['-', '.']);
    if base.is_empty() {
        hash
    } else {
        format!("{base}.{hash}")
    }
}

/// `text` as DNS labels joined by dots: other characters become `-`, labels lose leading and trailing `-`,
/// empty labels go.
fn cleaned(text: &str) -> String {
    text.split('.')
        .map(|label| {
            label
                .chars()
                .map(|c| {
                    if c.is_ascii_lowercase() || c.is_ascii_digit() {
                        c
                    } else {
                        '-'
                    }
                })
                .collect::<String>()
                .trim_matches('-')
                .to_string()
        })
        .filter(|label| !label.is_empty())
        .collect::<Vec<_>>()
        .join(".")
}

/// 64-bit FNV-1a: small and stable across Rust releases (the standard library's hashers are not).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Lower-case letters, digits and `-`, starting and ending with a letter or digit (of any length).
fn is_label_shaped(text: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    text.chars().all(|c| alnum(c) || c == '-') && text.starts_with(alnum) && text.ends_with(alnum)
}

/// A DNS label, the shape the CustomerOrg schema gives tenant names: at most 63 characters, no dot.
fn is_dns_label(text: &str) -> bool {
    text.len() <= 63 && is_label_shaped(text)
}

/// Whether `text` is a valid name for a cluster-scoped custom object, as Kubernetes checks it (a DNS
/// subdomain: at most 253 characters of label-shaped parts joined by dots; Kubernetes does not limit the
/// length of one part).
pub fn is_dns_subdomain(text: &str) -> bool {
    text.len() <= MAX_NAME_LEN && text.split('.').all(is_label_shaped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_claim_is_named_after_its_endpoint_and_tenant() {
        assert_eq!(claim_name("cloud-eu", "globex"), "cloud-eu.globex");
        assert_eq!(claim_name("cloud.example.com", "globex"), "cloud.example.com.globex");
    }

    #[test]
    fn tenant_names_differing_only_in_case_share_one_claim() {
        assert_eq!(claim_name("cloud-eu", "Globex"), claim_name("cloud-eu", "globex"));
        assert_eq!(tenant_key("GLOBEX"), tenant_key("globex"));
    }

    #[test]
    fn a_long_endpoint_name_still_gives_a_valid_distinct_name() {
        let endpoint = format!("{}.example.com", "e".repeat(220));
        let a = claim_name(&endpoint, &"t".repeat(63));
        let b = claim_name(&endpoint, &format!("{}u", "t".repeat(62)));
        assert!(is_dns_subdomain(&a), "{a}");
        assert!(is_dns_subdomain(&b), "{b}");
        assert_ne!(a, b, "tenants differing only past the cut still get different claims");
        assert!(a.starts_with("eeee"));
    }

    #[test]
    fn names_outside_the_schema_still_give_a_valid_name() {
        for (endpoint, tenant) in [
            ("", ""),
            ("-", "-"),
            ("a..b", "x_y"),
            ("Cloud EU", "Globex Corp."),
            ("é", "ü"),
        ] {
            let name = claim_name(endpoint, tenant);
            assert!(is_dns_subdomain(&name), "{endpoint:?}/{tenant:?} -> {name:?}");
        }
        assert_ne!(claim_name("a", "x_y"), claim_name("a", "x-y"));
    }

    proptest! {
        #[test]
        fn every_endpoint_and_tenant_the_schemas_allow_give_a_valid_name(
            endpoint in "[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?){0,3}",
            tenant in "[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?",
        ) {
            prop_assume!(endpoint.len() <= MAX_NAME_LEN);
            let name = claim_name(&endpoint, &tenant);
            prop_assert!(is_dns_subdomain(&name), "{} -> {}", endpoint, name);
        }

        #[test]
        fn any_text_gives_a_valid_name(endpoint in ".{0,300}", tenant in ".{0,80}") {
            let name = claim_name(&endpoint, &tenant);
            prop_assert!(is_dns_subdomain(&name), "{:?}/{:?} -> {:?}", endpoint, tenant, name);
        }

        #[test]
        fn different_pairs_the_schemas_allow_get_different_names(
            endpoint in "[a-z]{1,8}(\\.[a-z]{1,8})?",
            a in "[a-z0-9]{1,8}",
            b in "[a-z0-9]{1,8}",
        ) {
            prop_assume!(a != b);
            prop_assert_ne!(claim_name(&endpoint, &a), claim_name(&endpoint, &b));
        }
    }
}
