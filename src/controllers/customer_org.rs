//! CustomerOrg: the tenant organisation on the endpoint and the customer namespace; suspend and resume;
//! on deletion, its subscriptions and grants go first, then the tenant organisation.
//!
//! A tenant belongs to exactly one CustomerOrg: before anything is written on the endpoint, the CustomerOrg
//! claims its tenant ([`crate::controllers::tenant_claim`]). One whose tenant another CustomerOrg holds stalls with reason
//! `TenantClaimed`, has no external id (so its subscriptions, grants and support requests never act on the
//! endpoint) and, when deleted, leaves the endpoint alone. Only the holder changes or deletes the tenant, and
//! it releases the claim last.

use std::collections::BTreeMap;

use async_trait::async_trait;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams};
use tracing::info;

use crate::api::common::DeletionPolicy;
use crate::api::customer_org::{CustomerOrgState, CustomerOrgStatus};
use crate::api::{AccessGrant, CloudServiceSubscription, CustomerOrg};
use crate::controllers::cloud_endpoint::{driver_for, driver_for_cleanup, require_endpoint};
use crate::controllers::entitlement;
use crate::controllers::namespaces::{self, CUSTOMER_ORG_LABEL, PROVIDER_NAMESPACE_LABEL};
use crate::controllers::tenant_claim::{self, Claimed, TENANT_CLAIMED};
use crate::endpoint::{Deletion, DriverError, ExternalOrg, OrgDesired};
use crate::runtime::conditions::{self, Phase};
use crate::runtime::context::Context;
use crate::runtime::create_protocol::{self, Creating};
use crate::runtime::error::Error;
use crate::runtime::reconciler::{Cleanup, Managed, Outcome};

crate::impl_object!(CustomerOrg, CustomerOrgStatus, namespaced);

pub use crate::api::keys::CUSTOMER_ORG_FINALIZER as FINALIZER;

/// The customer namespace: `<provider namespace>-<customer org name>` (the API keeps it within 63).
pub fn customer_namespace(org: &CustomerOrg) -> String {
    format!("{}-{}", org.namespace().unwrap_or_default(), org.name_any())
}

fn namespace_labels(org: &CustomerOrg) -> BTreeMap<String, String> {
    let provider_namespace = org.namespace().unwrap_or_default();
    namespaces::ownership_labels(&[
        (CUSTOMER_ORG_LABEL, &org.name_any()),
        (PROVIDER_NAMESPACE_LABEL, &provider_namespace),
    ])
}

/// Whether the CustomerOrg holds its tenant and provisioned it: only then may anything act for it on the
/// endpoint. The external id is written only while the CustomerOrg holds the claim on its tenant, and
/// removed when it is found claimed by another.
pub fn holds_tenant(customer: &CustomerOrg) -> bool {
    customer.status.as_ref().is_some_and(|s| s.external_id.is_some())
}

/// The named CustomerOrg of `namespace`, provisioned (its tenant exists on the endpoint), for the kinds that
/// act for a customer: a missing or deleting one stalls the caller, and so does one whose tenant another
/// CustomerOrg holds; one not provisioned yet makes it wait.
pub fn provisioned(ctx: &Context, namespace: &str, name: &str) -> Result<std::sync::Arc<CustomerOrg>, Error> {
    let customer = ctx.stores.customer(namespace, name).ok_or_else(|| {
        Error::stalled(
            "CustomerOrgNotFound",
            format!("CustomerOrg {name} does not exist in namespace {namespace}"),
        )
    })?;
    if customer.metadata.deletion_timestamp.is_some() {
        return Err(Error::stalled(
            "CustomerOrgDeleting",
            format!("CustomerOrg {name} is being deleted"),
        ));
    }
    let ready = customer
        .status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, conditions::READY));
    if let Some(ready) = ready.filter(|c| c.reason == TENANT_CLAIMED) {
        return Err(Error::stalled(
            TENANT_CLAIMED,
            format!("CustomerOrg {name} does not hold its tenant: {}", ready.message),
        ));
    }
    if !holds_tenant(&customer) {
        return Err(Error::waiting(
            "WaitingForCustomerOrg",
            format!("CustomerOrg {name} is not provisioned yet"),
        ));
    }
    Ok(customer)
}

/// The tenant organisation as the spec wants it.
pub fn desired_org(org: &CustomerOrg) -> OrgDesired {
    OrgDesired {
        display_name: org.spec.display_name.clone(),
        enabled: !org.spec.suspended,
    }
}

#[async_trait]
impl Managed for CustomerOrg {
    const FINALIZER: Option<&'static str> = Some(FINALIZER);

    async fn apply(&self, ctx: &Context) -> Result<Outcome<CustomerOrgStatus>, Error> {
        let namespace = self.namespace().unwrap_or_default();
        let endpoint = &self.spec.endpoint_ref.name;
        let Some(provider) = ctx.stores.provider_of_namespace(&namespace) else {
            return Err(Error::stalled(
                "ProviderOrgNotFound",
                format!("no ProviderOrg has namespace {namespace}; customer orgs live in their provider's namespace"),
            ));
        };
        require_endpoint(endpoint, ctx)?;
        let today = ctx.clock.now().to_zoned(jiff::tz::TimeZone::UTC).date();
        if entitlement::covering(&ctx.stores.contracts_in(&namespace), endpoint, None, today).is_none() {
            return Err(Error::stalled(
                "NotEntitled",
                format!("no active commitment contract in {namespace} covers endpoint {endpoint}"),
            ));
        }
        let entry = driver_for(endpoint, ctx).await?;

        // The claim comes before anything is written, on the endpoint or in the cluster.
        let tenant = &self.spec.tenant_name;
        let adopted = match tenant_claim::claim(ctx, self, &provider.name_any(), Some(entry.driver.as_ref())).await? {
            Claimed::Held { adopted } => adopted,
            Claimed::Refused(message) => {
                return Ok(Outcome::new(
                    refused_status(self),
                    Phase::stalled(TENANT_CLAIMED, message),
                ));
            }
        };

        let customer_namespace = customer_namespace(self);
        let cached = &ctx.stores.children.customer_namespaces;
        namespaces::ensure_namespace(&ctx.client, cached, &customer_namespace, namespace_labels(self)).await?;

        let desired = desired_org(self);
        let driver = entry.driver.as_ref();
        let (observe, create) = (driver.observe_org(tenant), driver.create_org(tenant, &desired));
        let org = create_protocol::ensure(self, Creating::Org, ctx, driver, observe, create).await?;
        let org = if org.is_up_to_date(&desired) {
            org
        } else {
            entry.driver.apply_org(tenant, &desired).await?
        };

        let mut status = self.status.clone().unwrap_or_default();
        status.namespace = Some(customer_namespace.clone());
        status.external_id = Some(org.external_id.clone());
        status.endpoint = Some(endpoint.clone());
        status.adopted = adopted;
        status.state = Some(if org.enabled {
            CustomerOrgState::Active
        } else {
            CustomerOrgState::Suspended
        });
        Ok(Outcome::new(status, org_phase(self, &org, adopted)))
    }

    async fn cleanup(&self, ctx: &Context) -> Result<Cleanup, Error> {
        let namespace = self.namespace().unwrap_or_default();
        let name = self.name_any();

        // Subscriptions and grants of this customer go first; their own finalizers remove what they provisioned.
        let subscriptions = Api::<CloudServiceSubscription>::namespaced(ctx.client.clone(), &namespace);
        let mine: Vec<_> = subscriptions
            .list(&ListParams::default())
            .await?
            .into_iter()
            .filter(|s| s.spec.customer_org_ref.name == name)
            .collect();
        let grants = Api::<AccessGrant>::namespaced(ctx.client.clone(), &namespace);
        let my_grants: Vec<_> = grants
            .list(&ListParams::default())
            .await?
            .into_iter()
            .filter(|g| {
                g.spec
                    .scope
                    .as_ref()
                    .and_then(|s| s.customer_org_ref.as_ref())
                    .is_some_and(|r| r.name == name)
            })
            .collect();
        let remaining = mine.len() + my_grants.len();
        if remaining > 0 {
            for s in mine.iter().filter(|s| s.metadata.deletion_timestamp.is_none()) {
                subscriptions.delete(&s.name_any(), &DeleteParams::background()).await?;
            }
            for g in my_grants.iter().filter(|g| g.metadata.deletion_timestamp.is_none()) {
                grants.delete(&g.name_any(), &DeleteParams::background()).await?;
            }
            return Ok(Cleanup::Pending {
                reason: "DeletingDependents".into(),
                message: format!(
                    "waiting for {} subscriptions and {} grants to be deleted",
                    mine.len(),
                    my_grants.len()
                ),
            });
        }

        let customer_namespace = customer_namespace(self);
        let endpoint = &self.spec.endpoint_ref.name;
        let tenant = &self.spec.tenant_name;
        let Some(claim) = self.held_claim(ctx).await? else {
            // Another CustomerOrg holds the tenant, or this one never claimed it: nothing of the endpoint is ours.
            info!(customer = %format!("{namespace}/{name}"), %tenant, %endpoint, "not the holder of the tenant; leaving the endpoint alone");
            namespaces::delete_namespace_if_ours(&ctx.client, &customer_namespace, &namespace_labels(self)).await?;
            return Ok(Cleanup::Done);
        };

        if self.spec.deletion_policy == DeletionPolicy::Delete {
            // Gone only on the API server's word: a cache can lack an endpoint that exists (not synced yet,
            // or outside this operator's selector).
            if let Some(entry) = driver_for_cleanup(endpoint, ctx).await? {
                match entry.driver.delete_org(tenant).await {
                    Ok(Deletion::Gone) | Err(DriverError::NotFound { .. }) => {}
                    Ok(Deletion::InProgress) => {
                        return Ok(Cleanup::Pending {
                            reason: "Deleting".into(),
                            message: format!("tenant {tenant} is being deleted on {endpoint}"),
                        });
                    }
                    Err(error) => return Err(error.into()),
                }
            }
        }
        namespaces::delete_namespace_if_ours(&ctx.client, &customer_namespace, &namespace_labels(self)).await?;
        // Last: until the tenant is gone (or left by Orphan), nobody else may take it.
        tenant_claim::release(ctx, &claim).await?;
        Ok(Cleanup::Done)
    }
}

/// Where the tenant stands; an adopted tenant says so.
fn org_phase(customer: &CustomerOrg, org: &ExternalOrg, adopted: bool) -> Phase {
    let tenant = &customer.spec.tenant_name;
    let endpoint = &customer.spec.endpoint_ref.name;
    let updating = !org.is_up_to_date(&desired_org(customer));
    let state = match (updating, customer.spec.suspended) {
        (true, _) => "is being updated",
        (false, true) => "is suspended",
        (false, false) => "is active",
    };
    let mut message = format!("tenant {tenant} {state} on {endpoint}");
    if adopted {
        message.push_str("; it existed there before this CustomerOrg and was adopted");
    }
    if updating {
        Phase::progressing("Updating", message)
    } else if customer.spec.suspended {
        Phase::Ready {
            reason: "Suspended".into(),
            message,
        }
    } else {
        message.push_str(&format!("; namespace {}", customer_namespace(customer)));
        Phase::ready(message)
    }
}

/// The status of a CustomerOrg whose tenant another CustomerOrg holds: nothing of the tenant is its, so
/// nothing that acts on the endpoint for it (subscriptions, grants, billing) finds an external id or a
/// namespace to use.
fn refused_status(customer: &CustomerOrg) -> CustomerOrgStatus {
    let current = customer.status.clone().unwrap_or_default();
    CustomerOrgStatus {
        observed_generation: current.observed_generation,
        conditions: current.conditions,
        endpoint: Some(customer.spec.endpoint_ref.name.clone()),
        ..Default::default()
    }
}

impl CustomerOrg {
    /// The claim on this CustomerOrg's tenant if it holds it. One that provisioned its tenant before claims
    /// existed (an older Navigator) claims it now, so that it still cleans up after itself.
    async fn held_claim(&self, ctx: &Context) -> Result<Option<crate::api::TenantClaim>, Error> {
        if let Some(claim) = tenant_claim::held(ctx, self).await? {
            return Ok(Some(claim));
        }
        if !holds_tenant(self) {
            return Ok(None);
        }
        let namespace = self.namespace().unwrap_or_default();
        let provider = ctx
            .stores
            .provider_of_namespace(&namespace)
            .map(|p| p.name_any())
            .unwrap_or(namespace);
        match tenant_claim::claim(ctx, self, &provider, None).await? {
            Claimed::Held { .. } => tenant_claim::held(ctx, self).await,
            Claimed::Refused(_) => Ok(None),
        }
    }
}

impl super::registry::Kind for CustomerOrg {
    fn changed(wakers: &super::registry::Wakers, stores: &super::registry::Stores, obj: &Self) {
        wakers.customer_changed(stores, obj);
    }

    /// Also watches the customer namespaces (metadata only, by the label Navigator puts on them), so one
    /// deleted or edited by someone else is repaired at once.
    fn start(
        wiring: &mut super::registry::Wiring,
        writer: kube::runtime::reflector::store::Writer<Self>,
        woken: futures::channel::mpsc::UnboundedReceiver<kube::runtime::reflector::ObjectRef<Self>>,
    ) -> Vec<futures::future::BoxFuture<'static, ()>> {
        use crate::runtime::watch::{WatchesChildren, drive, namespace_metadata};
        let namespaces_writer = wiring.children.customer_namespaces.take().expect("taken once");
        let controller = wiring.controller(writer).watches_children(
            "CustomerOrg namespaces",
            namespace_metadata(&wiring.client, namespaces::CUSTOMER_ORG_LABEL),
            namespaces_writer,
            namespaces::customer_owner,
        );
        vec![drive(controller.reconcile_on(woken), wiring.ctx.clone())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::customer_org::CustomerOrgSpec;
    use crate::api::references::ClusterRef;

    fn customer(suspended: bool) -> CustomerOrg {
        let mut customer = CustomerOrg::new(
            "globex",
            CustomerOrgSpec {
                display_name: "Globex".into(),
                tenant_name: "globex".into(),
                endpoint_ref: ClusterRef::new("cloud"),
                reseller_ref: None,
                contacts: vec![],
                quotas: None,
                deletion_policy: DeletionPolicy::Delete,
                suspended,
            },
        );
        customer.metadata.namespace = Some("acme".into());
        customer
    }

    fn org(enabled: bool) -> ExternalOrg {
        ExternalOrg {
            external_id: "org-1".into(),
            name: "globex".into(),
            display_name: "Globex".into(),
            enabled,
            state: crate::endpoint::OrgState::Active,
            created_at: jiff::Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn an_adopted_tenant_says_so_when_ready() {
        let phase = org_phase(&customer(false), &org(true), true);
        assert!(phase.is_ready());
        assert_eq!(
            phase.message(),
            "tenant globex is active on cloud; it existed there before this CustomerOrg and was adopted; \
             namespace acme-globex"
        );
        let created = org_phase(&customer(false), &org(true), false);
        assert_eq!(
            created.message(),
            "tenant globex is active on cloud; namespace acme-globex"
        );
        let suspending = org_phase(&customer(true), &org(true), true);
        assert_eq!(suspending.reason(), "Updating");
        assert!(suspending.message().contains("was adopted"));
    }

    #[test]
    fn a_customer_refused_its_tenant_keeps_nothing_that_acts_on_it() {
        let mut refused = customer(false);
        refused.status = Some(CustomerOrgStatus {
            namespace: Some("acme-globex".into()),
            external_id: Some("org-1".into()),
            state: Some(CustomerOrgState::Active),
            adopted: true,
            ..Default::default()
        });
        assert!(holds_tenant(&refused));
        refused.status = Some(refused_status(&refused));
        assert!(!holds_tenant(&refused), "subscriptions and grants must not act for it");
        let status = refused.status.unwrap();
        assert_eq!((status.namespace, status.state, status.adopted), (None, None, false));
    }
}
