//! CloudServiceSubscription: one service instance for one customer on an endpoint. Provisions it, follows
//! the endpoint's asynchronous operation, reports external id, access URL and state, and updates the
//! instance when the resources change.

use async_trait::async_trait;
use kube::ResourceExt;

use crate::api::common::DeletionPolicy;
use crate::api::subscription::{CloudServiceSubscriptionStatus, ServiceState};
use crate::api::{CloudServiceSubscription, CustomerOrg};
use crate::controllers::cloud_endpoint::{driver_for, driver_for_cleanup, require_endpoint};
use crate::controllers::entitlement;
use crate::endpoint::{Deletion, DriverError, ExternalInstance, InstanceDesired, InstanceState, Resources};
use crate::runtime::conditions::Phase;
use crate::runtime::context::Context;
use crate::runtime::create_protocol::{self, Creating};
use crate::runtime::error::Error;
use crate::runtime::reconciler::{Cleanup, Managed, Outcome};

crate::impl_object!(CloudServiceSubscription, CloudServiceSubscriptionStatus, namespaced);

pub use crate::api::keys::SUBSCRIPTION_FINALIZER as FINALIZER;

/// The instance as the spec wants it. Resources left out of the spec are 0 ("none of this").
pub fn desired_instance(sub: &CloudServiceSubscription) -> InstanceDesired {
    let resources = sub.spec.resources.clone().unwrap_or_default();
    let amount = |v: Option<i64>| v.and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
    InstanceDesired {
        service_type: sub.spec.service_type.clone(),
        resources: Resources {
            vcpu: amount(resources.vcpu),
            memory_gib: amount(resources.memory_gib),
            storage_gib: amount(resources.storage_gib),
        },
        parameters: sub.spec.parameters.clone(),
    }
}

/// What to do next, given what the endpoint holds for this subscription.
#[derive(Debug, PartialEq)]
pub enum Plan {
    Create,
    Update,
    /// An operation is running on the endpoint; look again later.
    Wait,
    UpToDate,
    Failed(String),
}

pub fn plan(observed: Option<&ExternalInstance>, desired: &InstanceDesired) -> Plan {
    match observed {
        None => Plan::Create,
        Some(i) if i.state == InstanceState::Failed => Plan::Failed(i.message.clone().unwrap_or_default()),
        Some(i) if i.state.is_in_progress() => Plan::Wait,
        Some(i) if !i.is_up_to_date(desired) => Plan::Update,
        Some(_) => Plan::UpToDate,
    }
}

fn service_state(state: InstanceState) -> ServiceState {
    match state {
        InstanceState::Provisioning => ServiceState::Provisioning,
        InstanceState::Ready => ServiceState::Ready,
        InstanceState::Updating => ServiceState::Updating,
        InstanceState::Deleting => ServiceState::Deleting,
        InstanceState::Failed => ServiceState::Failed,
    }
}

impl CloudServiceSubscription {
    fn endpoint_name(&self, customer: &CustomerOrg) -> String {
        self.spec
            .endpoint_ref
            .as_ref()
            .map(|r| r.name.clone())
            .unwrap_or_else(|| customer.spec.endpoint_ref.name.clone())
    }

    /// The contract this subscription provisions under: the named one if it may be used, else the active
    /// contract covering its service on its endpoint.
    fn contract(&self, endpoint: &str, ctx: &Context) -> Result<String, Error> {
        let namespace = self.namespace().unwrap_or_default();
        let today = ctx.clock.now().to_zoned(jiff::tz::TimeZone::UTC).date();
        let contracts = ctx.stores.contracts_in(&namespace);
        let service = &self.spec.service_type;
        match &self.spec.contract_ref {
            Some(named) => {
                let contract = contracts.iter().find(|c| c.name_any() == named.name).ok_or_else(|| {
                    Error::stalled("ContractNotFound", format!("CommitmentContract {} does not exist", named.name))
                })?;
                match entitlement::refuse_named(contract, endpoint, service, today) {
                    Some(why) => Err(Error::stalled("NotEntitled", why)),
                    None => Ok(named.name.clone()),
                }
            }
            None => entitlement::covering(&contracts, endpoint, Some(service), today).map(|c| c.name_any()).ok_or_else(|| {
                Error::stalled(
                    "NotEntitled",
                    format!("no active commitment contract in {namespace} covers service {service} on endpoint {endpoint}"),
                )
            }),
        }
    }
}

#[async_trait]
impl Managed for CloudServiceSubscription {
    const FINALIZER: Option<&'static str> = Some(FINALIZER);

    async fn apply(&self, ctx: &Context) -> Result<Outcome<CloudServiceSubscriptionStatus>, Error> {
        let customer = crate::controllers::customer_org::provisioned(
            ctx,
            &self.namespace().unwrap_or_default(),
            &self.spec.customer_org_ref.name,
        )?;
        let endpoint = self.endpoint_name(&customer);
        require_endpoint(&endpoint, ctx)?;
        let contract = self.contract(&endpoint, ctx)?;
        if let Some(quotas) = &customer.spec.quotas {
            let siblings = ctx.stores.subscriptions.state();
            let of_customer: Vec<&CloudServiceSubscription> = siblings
                .iter()
                .map(|s| s.as_ref())
                .filter(|s| s.namespace() == self.namespace() && s.spec.customer_org_ref.name == customer.name_any())
                .collect();
            if let Some(why) = crate::controllers::quota::exceeded(quotas, self, &of_customer) {
                return Err(Error::stalled("QuotaExceeded", why));
            }
        }
        let entry = driver_for(&endpoint, ctx).await?;
        let tenant = &customer.spec.tenant_name;
        let name = self.name_any();
        let desired = desired_instance(self);

        let driver = entry.driver.as_ref();
        let observed = create_protocol::ensure(
            self,
            Creating::Instance,
            ctx,
            driver,
            driver.observe_instance(tenant, &name),
            driver.create_instance(tenant, &name, &desired),
        )
        .await?;
        let instance = match plan(Some(&observed), &desired) {
            Plan::Update => entry.driver.apply_instance(tenant, &name, &desired).await?,
            Plan::Create | Plan::Wait | Plan::UpToDate | Plan::Failed(_) => observed,
        };

        let mut status = self.status.clone().unwrap_or_default();
        status.endpoint = Some(endpoint.clone());
        status.contract = Some(contract);
        status.external_id = Some(instance.external_id.clone());
        status.access_url = instance.access_url.clone();
        status.state = Some(service_state(instance.state));
        status.message = instance.message.clone();
        let phase = match plan(Some(&instance), &desired) {
            Plan::UpToDate => Phase::ready(format!(
                "{} instance {name} is ready on {endpoint}",
                desired.service_type
            )),
            Plan::Failed(message) => Phase::stalled("ProvisioningFailed", format!("the endpoint reports: {message}")),
            Plan::Create | Plan::Update | Plan::Wait => {
                let reason = match instance.state {
                    InstanceState::Provisioning => "Creating",
                    InstanceState::Deleting => "WaitingForDeletion",
                    _ => "Updating",
                };
                Phase::progressing(
                    reason,
                    format!("{} instance {name} is {reason} on {endpoint}", desired.service_type),
                )
            }
        };
        let poll = entry.poll;
        let outcome = Outcome::new(status, phase);
        Ok(if outcome.phase.is_ready() {
            outcome
        } else {
            outcome.requeue_after(poll)
        })
    }

    async fn cleanup(&self, ctx: &Context) -> Result<Cleanup, Error> {
        if self.spec.deletion_policy == DeletionPolicy::Orphan {
            return Ok(Cleanup::Done);
        }
        let namespace = self.namespace().unwrap_or_default();
        // Nothing was provisioned without a provisioned customer (nor for one whose tenant another customer
        // holds: an instance of that name there is theirs); with the customer or endpoint really gone from
        // the API, the tenant (and the instance in it) went with them.
        let customer_name = &self.spec.customer_org_ref.name;
        let Some(customer) = ctx
            .cached_or_live(&ctx.stores.customers, Some(&namespace), customer_name)
            .await?
            .filter(|c| crate::controllers::customer_org::holds_tenant(c))
        else {
            return Ok(Cleanup::Done);
        };
        let endpoint = self.endpoint_name(&customer);
        let Some(entry) = driver_for_cleanup(&endpoint, ctx).await? else {
            return Ok(Cleanup::Done);
        };
        // Delete by name even when no external id was recorded: a create may have landed before a crash.
        match entry
            .driver
            .delete_instance(&customer.spec.tenant_name, &self.name_any())
            .await
        {
            Ok(Deletion::Gone) | Err(DriverError::NotFound { .. }) => Ok(Cleanup::Done),
            Ok(Deletion::InProgress) => Ok(Cleanup::Pending {
                reason: "Deleting".into(),
                message: format!("instance {} is being deleted on {endpoint}", self.name_any()),
            }),
            Err(error) => Err(error.into()),
        }
    }
}

impl super::registry::Kind for CloudServiceSubscription {}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(state: InstanceState, vcpu: u32) -> ExternalInstance {
        ExternalInstance {
            external_id: "id-1".into(),
            name: "web".into(),
            service_type: "compute".into(),
            resources: Resources {
                vcpu,
                memory_gib: 4,
                storage_gib: 50,
            },
            parameters: Default::default(),
            state,
            access_url: None,
            message: None,
            created_at: jiff::Timestamp::UNIX_EPOCH,
            updated_at: jiff::Timestamp::UNIX_EPOCH,
        }
    }

    fn desired(vcpu: u32) -> InstanceDesired {
        InstanceDesired {
            service_type: "compute".into(),
            resources: Resources {
                vcpu,
                memory_gib: 4,
                storage_gib: 50,
            },
            parameters: Default::default(),
        }
    }

    #[test]
    fn the_plan_follows_what_the_endpoint_holds() {
        assert_eq!(plan(None, &desired(2)), Plan::Create);
        assert_eq!(
            plan(Some(&instance(InstanceState::Provisioning, 2)), &desired(2)),
            Plan::Wait
        );
        assert_eq!(
            plan(Some(&instance(InstanceState::Ready, 2)), &desired(2)),
            Plan::UpToDate
        );
        assert_eq!(
            plan(Some(&instance(InstanceState::Ready, 2)), &desired(4)),
            Plan::Update
        );
        // A change while an operation runs waits for it rather than piling a second one on.
        assert_eq!(
            plan(Some(&instance(InstanceState::Updating, 2)), &desired(4)),
            Plan::Wait
        );
        assert!(matches!(
            plan(Some(&instance(InstanceState::Failed, 2)), &desired(2)),
            Plan::Failed(_)
        ));
    }
}
