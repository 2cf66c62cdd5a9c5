//! The Navigator API: group `navigator.cloudpartner.io`, version `v1alpha1`.
//!
//! One file per kind holds its spec, status and the schema rules that refuse bad input at `kubectl apply`;
//! shared types live in [`common`], [`conditions`], [`references`] and [`money`]. [`crds`] turns the types
//! into the CustomResourceDefinitions committed under `crds/` and the Helm chart.
//!
//! Tenancy and names: a ProviderOrg (cluster-scoped) gets the namespace `spec.namespace` (at most 30
//! characters), where its CommitmentContracts, CustomerOrgs, CloudServiceSubscriptions, AccessGrants and
//! SupportRequests live. Each CustomerOrg (name at most 32 characters) gets the customer namespace
//! `<provider namespace>-<customer org name>` (at most 63), where its Invoices are written. A TenantClaim
//! (cluster-scoped, written only by Navigator) records which CustomerOrg holds a tenant on an endpoint.

pub mod access_grant;
pub mod cloud_endpoint;
pub mod commitment_contract;
pub mod common;
pub mod conditions;
pub mod crds;
pub mod customer_org;
pub mod invoice;
pub mod keys;
pub mod money;
pub mod provider_org;
pub mod references;
pub mod subscription;
pub mod support_request;
pub mod tenant_claim;

pub use access_grant::{AccessGrant, AccessGrantSpec, AccessGrantStatus};
pub use cloud_endpoint::{CloudEndpoint, CloudEndpointSpec, CloudEndpointStatus};
pub use commitment_contract::{CommitmentContract, CommitmentContractSpec, CommitmentContractStatus};
pub use customer_org::{CustomerOrg, CustomerOrgSpec, CustomerOrgStatus};
pub use invoice::{Invoice, InvoiceSpec, InvoiceStatus};
pub use provider_org::{ProviderOrg, ProviderOrgSpec, ProviderOrgStatus};
pub use subscription::{CloudServiceSubscription, CloudServiceSubscriptionSpec, CloudServiceSubscriptionStatus};
pub use support_request::{SupportRequest, SupportRequestSpec, SupportRequestStatus};
pub use tenant_claim::{TenantClaim, TenantClaimSpec};

/// The API group of every Navigator kind.
pub const GROUP: &str = "navigator.cloudpartner.io";
/// The API version of every Navigator kind.
pub const VERSION: &str = "v1alpha1";
/// The category every Navigator kind belongs to: `kubectl get navigator -A` lists them all.
pub const CATEGORY: &str = "navigator";

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::Value;

    /// Deserializes `value` as the Navigator kind it names; `Ok(false)` for kinds that are not Navigator's.
    fn parse_navigator_object(value: Value) -> Result<bool, serde_json::Error> {
        fn parse<T: serde::de::DeserializeOwned>(value: Value) -> Result<bool, serde_json::Error> {
            serde_json::from_value::<T>(value).map(|_| true)
        }
        match value["kind"].as_str().unwrap_or_default() {
            "CloudEndpoint" => parse::<CloudEndpoint>(value),
            "ProviderOrg" => parse::<ProviderOrg>(value),
            "CommitmentContract" => parse::<CommitmentContract>(value),
            "CustomerOrg" => parse::<CustomerOrg>(value),
            "CloudServiceSubscription" => parse::<CloudServiceSubscription>(value),
            "AccessGrant" => parse::<AccessGrant>(value),
            "SupportRequest" => parse::<SupportRequest>(value),
            "Invoice" => parse::<Invoice>(value),
            _ => Ok(false),
        }
    }

    #[test]
    fn the_examples_parse_as_the_rust_types() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let mut kinds = std::collections::BTreeSet::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for document in serde_yaml::Deserializer::from_str(&text) {
                let value = Value::deserialize(document).unwrap();
                let kind = value["kind"].as_str().unwrap_or_default().to_string();
                match parse_navigator_object(value) {
                    Ok(true) => {
                        kinds.insert(kind);
                    }
                    Ok(false) => {}
                    Err(error) => panic!("{}: a {kind} does not parse: {error}", path.display()),
                }
            }
        }
        // Invoices are written by Navigator, never by users.
        assert_eq!(
            kinds.len(),
            7,
            "the examples should show every user-written kind: {kinds:?}"
        );
    }

    #[test]
    fn an_empty_status_serializes_to_an_empty_object() {
        assert_eq!(
            serde_json::to_value(CustomerOrgStatus::default()).unwrap(),
            serde_json::json!({})
        );
        assert_eq!(
            serde_json::to_value(SupportRequestStatus::default()).unwrap(),
            serde_json::json!({})
        );
    }

    #[test]
    fn customer_namespaces_fit_in_a_namespace_name() {
        let provider = "p".repeat(provider_org::MAX_PROVIDER_NAMESPACE_LEN);
        let customer = "c".repeat(customer_org::MAX_CUSTOMER_ORG_NAME_LEN);
        assert!(customer_org::customer_namespace(&provider, &customer).len() <= 63);

        // The schema enforces the same limits.
        let schema =
            |crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition| {
                serde_json::to_value(
                    crd.spec.versions[0]
                        .schema
                        .as_ref()
                        .unwrap()
                        .open_api_v3_schema
                        .as_ref()
                        .unwrap(),
                )
                .unwrap()
            };
        use kube::CustomResourceExt;
        let provider_schema = schema(ProviderOrg::crd());
        assert_eq!(
            provider_schema["properties"]["spec"]["properties"]["namespace"]["maxLength"],
            provider_org::MAX_PROVIDER_NAMESPACE_LEN
        );
        let customer_rule =
            schema(customer_org::crd())["properties"]["metadata"]["properties"]["name"]["x-kubernetes-validations"][0]
                ["rule"]
                .as_str()
                .unwrap()
                .to_string();
        assert!(customer_rule.contains(&format!("size(self) <= {}", customer_org::MAX_CUSTOMER_ORG_NAME_LEN)));
    }
}
