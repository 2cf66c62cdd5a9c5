//! TenantClaim: the lock that gives a tenant on an endpoint to exactly one CustomerOrg.
//!
//! A CustomerOrg claims its tenant before it writes anything on the endpoint, and only the holder ever
//! changes or deletes the tenant. The claim's name is derived from the endpoint and the tenant
//! ([`claim_name`]), so the API server's create is the lock: of two CustomerOrgs claiming the same tenant, in
//! one operator or in two with different `--selector`s, at the same second or a year apart, one create
//! succeeds and the other gets `AlreadyExists`. Claims are read live from the API, never from a cache a
//! selector filters, and outlive operator restarts. Nobody reconciles them: the CustomerOrg controller
//! creates one when it first holds its tenant and deletes it last, once the tenant is gone or orphaned.

use kube::api::{Api, DeleteParams, ObjectMeta, PostParams, Preconditions};
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use crate::api::CustomerOrg;
use crate::api::references::ClusterRef;
use crate::api::tenant_claim::{ClaimantRef, TenantClaim, TenantClaimSpec, claim_name, tenant_key};
use crate::controllers::namespaces::ownership_labels;
use crate::endpoint::Driver;
use crate::runtime::context::Context;
use crate::runtime::error::Error;

/// The reason a CustomerOrg whose tenant another CustomerOrg holds stalls with.
pub const TENANT_CLAIMED: &str = "TenantClaimed";

/// Where a CustomerOrg stands with the claim on its tenant.
#[derive(Debug, PartialEq)]
pub enum Standing {
    /// Nobody claims the tenant: it may be claimed.
    Absent,
    /// This CustomerOrg holds it.
    Ours { adopted: bool },
    /// Another CustomerOrg, which still exists, holds it.
    HeldByOther(Box<TenantClaimSpec>),
    /// The claim names a CustomerOrg that no longer exists (force-deleted, its finalizer removed by hand, or
    /// deleted and created again under the same name): it may be taken over.
    Stale,
}

/// Decides where `me` stands, from the claim found under the tenant's claim name and the uid of the live
/// CustomerOrg the claim names (`None` when it does not exist).
pub fn standing(
    claim: Option<&TenantClaimSpec>,
    me: &ClaimantRef,
    endpoint: &str,
    tenant: &str,
    holder_uid: Option<&str>,
) -> Standing {
    let Some(claim) = claim else { return Standing::Absent };
    let same_tenant = claim.endpoint_ref.name == endpoint && tenant_key(&claim.tenant_name) == tenant_key(tenant);
    if !same_tenant {
        // Two (endpoint, tenant) pairs sharing one claim name: never share, whoever holds it.
        return Standing::HeldByOther(Box::new(claim.clone()));
    }
    if claim.customer_org_ref.uid == me.uid {
        return Standing::Ours { adopted: claim.adopted };
    }
    if holder_uid == Some(claim.customer_org_ref.uid.as_str()) {
        Standing::HeldByOther(Box::new(claim.clone()))
    } else {
        Standing::Stale
    }
}

/// What a CustomerOrg that may not use its tenant is told. A holder in the same provider is named (the
/// provider's users see it anyway); a holder of another provider only by its provider, never by its
/// customer's name or namespace.
pub fn refusal(tenant: &str, endpoint: &str, holder: &TenantClaimSpec, my_provider: &str) -> String {
    let held_by = if holder.provider_org_ref.name == my_provider {
        format!("CustomerOrg {} of the same provider", holder.customer_org_ref.name)
    } else {
        format!("a customer of provider {}", holder.provider_org_ref.name)
    };
    format!(
        "tenant {tenant} on endpoint {endpoint} is already claimed by {held_by}; a tenant belongs to one \
         CustomerOrg, and Navigator does nothing on the endpoint for this one. Delete it and create a \
         CustomerOrg with another tenantName"
    )
}

/// The outcome of claiming a tenant.
#[derive(Debug, PartialEq)]
pub enum Claimed {
    /// This CustomerOrg holds the tenant; `adopted` when it existed on the endpoint before the claim.
    Held { adopted: bool },
    /// Another CustomerOrg holds it; the message says so.
    Refused(String),
}

fn claimant(customer: &CustomerOrg) -> ClaimantRef {
    ClaimantRef {
        namespace: customer.namespace().unwrap_or_default(),
        name: customer.name_any(),
        uid: customer.uid().unwrap_or_default(),
    }
}

fn claims(ctx: &Context) -> Api<TenantClaim> {
    Api::all(ctx.client.clone())
}

/// Claims the CustomerOrg's tenant, or confirms it holds it. `driver` tells whether the tenant already
/// exists on the endpoint (an adoption); without one, a new claim counts as not adopted.
pub async fn claim(
    ctx: &Context,
    customer: &CustomerOrg,
    provider: &str,
    driver: Option<&dyn Driver>,
) -> Result<Claimed, Error> {
    let me = claimant(customer);
    let endpoint = &customer.spec.endpoint_ref.name;
    let tenant = &customer.spec.tenant_name;
    let name = claim_name(endpoint, tenant);
    let api = claims(ctx);
    // Each turn either ends or saw the claim change hands (a create or a takeover by someone else); three
    // turns settle any race of two claimants.
    for _ in 0..3 {
        let found = api.get_opt(&name).await?;
        let holder_uid = match &found {
            Some(c) if c.spec.customer_org_ref.uid != me.uid => {
                let holder = &c.spec.customer_org_ref;
                Api::<CustomerOrg>::namespaced(ctx.client.clone(), &holder.namespace)
                    .get_opt(&holder.name)
                    .await?
                    .and_then(|h| h.uid())
            }
            _ => None,
        };
        match standing(
            found.as_ref().map(|c| &c.spec),
            &me,
            endpoint,
            tenant,
            holder_uid.as_deref(),
        ) {
            Standing::Ours { adopted } => return Ok(Claimed::Held { adopted }),
            Standing::HeldByOther(holder) => {
                return Ok(Claimed::Refused(refusal(tenant, endpoint, &holder, provider)));
            }
            Standing::Stale => {
                let Some(stale) = found else { continue };
                warn!(
                    claim = %name,
                    holder = %format!("{}/{}", stale.spec.customer_org_ref.namespace, stale.spec.customer_org_ref.name),
                    claimant = %format!("{}/{}", me.namespace, me.name),
                    "the CustomerOrg holding the tenant no longer exists; taking its claim over"
                );
                release(ctx, &stale).await?;
            }
            Standing::Absent => {
                let existing = match driver {
                    Some(driver) => driver.observe_org(tenant).await?.map(|org| org.external_id),
                    None => None,
                };
                // A tenant this CustomerOrg created itself before claims existed is not an adoption.
                let provisioned_by_me = customer.status.as_ref().and_then(|s| s.external_id.as_ref());
                let adopted = existing.is_some() && existing.as_ref() != provisioned_by_me;
                let claim = TenantClaim {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        labels: Some(ownership_labels(&[])),
                        ..Default::default()
                    },
                    spec: TenantClaimSpec {
                        endpoint_ref: ClusterRef::new(endpoint),
                        tenant_name: tenant.clone(),
                        customer_org_ref: me.clone(),
                        provider_org_ref: ClusterRef::new(provider),
                        adopted,
                    },
                };
                match api.create(&PostParams::default(), &claim).await {
                    Ok(_) => {
                        info!(claim = %name, claimant = %format!("{}/{}", me.namespace, me.name), adopted, "tenant claimed");
                        return Ok(Claimed::Held { adopted });
                    }
                    // Someone claimed it first: look again at who.
                    Err(kube::Error::Api(status)) if status.code == 409 => {}
                    Err(error) => return Err(error.into()),
                }
            }
        }
    }
    Err(Error::waiting(
        "TenantClaimContended",
        format!("the claim on tenant {tenant} on endpoint {endpoint} kept changing hands; looking again"),
    ))
}

/// The claim on the CustomerOrg's tenant if this CustomerOrg holds it.
pub async fn held(ctx: &Context, customer: &CustomerOrg) -> Result<Option<TenantClaim>, Error> {
    let endpoint = &customer.spec.endpoint_ref.name;
    let tenant = &customer.spec.tenant_name;
    let found = claims(ctx).get_opt(&claim_name(endpoint, tenant)).await?;
    let me = claimant(customer);
    Ok(found.filter(|c| {
        matches!(
            standing(Some(&c.spec), &me, endpoint, tenant, None),
            Standing::Ours { .. }
        )
    }))
}

/// Deletes this very claim (by uid): a claim someone else has taken over since stays.
pub async fn release(ctx: &Context, claim: &TenantClaim) -> Result<(), Error> {
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: claim.meta().uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match claims(ctx).delete(&claim.name_any(), &params).await {
        Ok(_) => Ok(()),
        // Gone already, or replaced by another claim (the uid precondition failed).
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(()),
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> ClaimantRef {
        ClaimantRef {
            namespace: "acme".into(),
            name: "globex".into(),
            uid: "uid-me".into(),
        }
    }

    fn claim_by(uid: &str, provider: &str, tenant: &str) -> TenantClaimSpec {
        TenantClaimSpec {
            endpoint_ref: ClusterRef::new("cloud"),
            tenant_name: tenant.into(),
            customer_org_ref: ClaimantRef {
                namespace: provider.into(),
                name: "initech".into(),
                uid: uid.into(),
            },
            provider_org_ref: ClusterRef::new(provider),
            adopted: true,
        }
    }

    #[test]
    fn no_claim_leaves_the_tenant_free() {
        assert_eq!(standing(None, &me(), "cloud", "globex", None), Standing::Absent);
    }

    #[test]
    fn a_claim_with_my_uid_is_mine_and_keeps_its_adoption() {
        let mine = claim_by("uid-me", "acme", "globex");
        assert_eq!(
            standing(Some(&mine), &me(), "cloud", "globex", None),
            Standing::Ours { adopted: true }
        );
        assert_eq!(
            standing(Some(&mine), &me(), "cloud", "GLOBEX", None),
            Standing::Ours { adopted: true },
            "tenant names compare without regard to case"
        );
    }

    #[test]
    fn a_claim_of_a_live_customer_org_is_theirs() {
        let theirs = claim_by("uid-other", "umbrella", "globex");
        assert_eq!(
            standing(Some(&theirs), &me(), "cloud", "globex", Some("uid-other")),
            Standing::HeldByOther(Box::new(theirs.clone()))
        );
    }

    #[test]
    fn a_claim_of_a_customer_org_that_is_gone_or_was_recreated_is_stale() {
        let theirs = claim_by("uid-other", "umbrella", "globex");
        assert_eq!(standing(Some(&theirs), &me(), "cloud", "globex", None), Standing::Stale);
        assert_eq!(
            standing(Some(&theirs), &me(), "cloud", "globex", Some("uid-new")),
            Standing::Stale,
            "a CustomerOrg created again under the same name is another CustomerOrg"
        );
    }

    #[test]
    fn a_claim_for_another_tenant_under_the_same_name_is_never_shared() {
        let other_tenant = claim_by("uid-me", "acme", "initech");
        assert!(matches!(
            standing(Some(&other_tenant), &me(), "cloud", "globex", None),
            Standing::HeldByOther(_)
        ));
    }

    #[test]
    fn the_refusal_names_another_providers_holder_only_by_its_provider() {
        let theirs = claim_by("uid-other", "umbrella", "globex");
        let message = refusal("globex", "cloud", &theirs, "acme");
        assert!(
            message.contains("tenant globex on endpoint cloud is already claimed by a customer of provider umbrella")
        );
        assert!(!message.contains("initech"), "{message}");
        let sibling = claim_by("uid-other", "acme", "globex");
        let message = refusal("globex", "cloud", &sibling, "acme");
        assert!(
            message.contains("CustomerOrg initech of the same provider"),
            "{message}"
        );
    }
}
