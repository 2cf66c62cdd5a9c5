//! CustomerOrg: the tenant organisation on the endpoint and the customer namespace; suspend and resume;
//! on deletion, its subscriptions and grants go first, then the tenant organisation.

use std::collections::BTreeMap;

use async_trait::async_trait;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams};

use super::cloud_endpoint::{driver_for, require_endpoint};
use super::conditions::Phase;
use super::context::Context;
use super::create_protocol::{self, Creating};
use super::entitlement;
use super::error::Error;
use super::namespaces::{self, CUSTOMER_ORG_LABEL, PROVIDER_NAMESPACE_LABEL};
use super::reconciler::{Cleanup, Managed, Outcome};
use crate::api::common::DeletionPolicy;
use crate::api::customer_org::{CustomerOrgState, CustomerOrgStatus};
use crate::api::{AccessGrant, CloudServiceSubscription, CustomerOrg};
use crate::endpoint::{Deletion, DriverError, OrgDesired};

crate::impl_object!(CustomerOrg, CustomerOrgStatus, namespaced);

pub const FINALIZER: &str = "navigator.cloudpartner.io/customer-org";

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

/// The named CustomerOrg of `namespace`, provisioned (its tenant exists on the endpoint), for the kinds that
/// act for a customer: a missing or deleting one stalls the caller, one not provisioned yet makes it wait.
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
    if customer.status.as_ref().and_then(|s| s.external_id.as_ref()).is_none() {
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
        if ctx.stores.provider_of_namespace(&namespace).is_none() {
            return Err(Error::stalled(
                "ProviderOrgNotFound",
                format!("no ProviderOrg has namespace {namespace}; customer orgs live in their provider's namespace"),
            ));
        }
        require_endpoint(endpoint, ctx)?;
        let today = ctx.clock.now().to_zoned(jiff::tz::TimeZone::UTC).date();
        if entitlement::covering(&ctx.stores.contracts_in(&namespace), endpoint, None, today).is_none() {
            return Err(Error::stalled(
                "NotEntitled",
                format!("no active commitment contract in {namespace} covers endpoint {endpoint}"),
            ));
        }
        let entry = driver_for(endpoint, ctx).await?;

        let customer_namespace = customer_namespace(self);
        namespaces::ensure_namespace(&ctx.client, &customer_namespace, namespace_labels(self)).await?;

        let tenant = &self.spec.tenant_name;
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
        status.state = Some(if org.enabled {
            CustomerOrgState::Active
        } else {
            CustomerOrgState::Suspended
        });
        let phase = if !org.is_up_to_date(&desired) {
            Phase::progressing("Updating", format!("tenant {tenant} is being updated on {endpoint}"))
        } else if self.spec.suspended {
            Phase::Ready {
                reason: "Suspended".into(),
                message: format!("tenant {tenant} is suspended on {endpoint}"),
            }
        } else {
            Phase::ready(format!(
                "tenant {tenant} is active on {endpoint}; namespace {customer_namespace}"
            ))
        };
        Ok(Outcome::new(status, phase))
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

        if self.spec.deletion_policy == DeletionPolicy::Orphan {
            return Ok(Cleanup::Done);
        }
        let endpoint = &self.spec.endpoint_ref.name;
        if ctx.stores.endpoint(endpoint).is_some() {
            let entry = driver_for(endpoint, ctx).await?;
            match entry.driver.delete_org(&self.spec.tenant_name).await {
                Ok(Deletion::Gone) | Err(DriverError::NotFound { .. }) => {}
                Ok(Deletion::InProgress) => {
                    return Ok(Cleanup::Pending {
                        reason: "Deleting".into(),
                        message: format!("tenant {} is being deleted on {endpoint}", self.spec.tenant_name),
                    });
                }
                Err(error) => return Err(error.into()),
            }
        }
        // With the endpoint gone there is nothing left to delete there; the namespace still goes.
        namespaces::delete_namespace_if_ours(&ctx.client, &customer_namespace(self), &namespace_labels(self)).await?;
        Ok(Cleanup::Done)
    }
}
