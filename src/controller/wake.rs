//! Waking dependents: when an object another one waits on changes (a customer org becomes Ready, an
//! endpoint answers, a contract appears), the objects that are not Ready yet and refer to it are
//! reconciled at once instead of at their next poll. Only not-Ready dependents are woken, so a steady
//! system wakes nothing.

use futures::channel::mpsc::UnboundedSender;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use super::context::Stores;
use crate::api::conditions::is_ready;
use crate::api::{CloudEndpoint, CloudServiceSubscription, CommitmentContract, CustomerOrg, ProviderOrg};

/// Where to send the objects to reconcile now.
#[derive(Clone)]
pub struct Wakers {
    pub customers: UnboundedSender<ObjectRef<CustomerOrg>>,
    pub subscriptions: UnboundedSender<ObjectRef<CloudServiceSubscription>>,
}

fn customer_ready(c: &CustomerOrg) -> bool {
    c.status.as_ref().is_some_and(|s| is_ready(&s.conditions))
}

fn subscription_ready(s: &CloudServiceSubscription) -> bool {
    s.status.as_ref().is_some_and(|s| is_ready(&s.conditions))
}

impl Wakers {
    fn customers_where(&self, stores: &Stores, matches: impl Fn(&CustomerOrg) -> bool) {
        for customer in stores
            .customers
            .state()
            .iter()
            .filter(|c| !customer_ready(c) && matches(c))
        {
            let _ = self.customers.unbounded_send(ObjectRef::from_obj(customer.as_ref()));
        }
    }

    fn subscriptions_where(&self, stores: &Stores, matches: impl Fn(&CloudServiceSubscription) -> bool) {
        for sub in stores
            .subscriptions
            .state()
            .iter()
            .filter(|s| !subscription_ready(s) && matches(s))
        {
            let _ = self.subscriptions.unbounded_send(ObjectRef::from_obj(sub.as_ref()));
        }
    }

    /// A customer org changed: its waiting subscriptions may go on (or learn it is gone).
    pub fn customer_changed(&self, stores: &Stores, customer: &CustomerOrg) {
        let (namespace, name) = (customer.namespace(), customer.name_any());
        self.subscriptions_where(stores, |s| {
            s.namespace() == namespace && s.spec.customer_org_ref.name == name
        });
    }

    /// An endpoint changed: customers on it may go on.
    pub fn endpoint_changed(&self, stores: &Stores, endpoint: &CloudEndpoint) {
        let name = endpoint.name_any();
        self.customers_where(stores, |c| c.spec.endpoint_ref.name == name);
        self.subscriptions_where(stores, |s| s.spec.endpoint_ref.as_ref().is_some_and(|e| e.name == name));
    }

    /// A contract changed: entitlement in its namespace may have changed.
    pub fn contract_changed(&self, stores: &Stores, contract: &CommitmentContract) {
        let namespace = contract.namespace();
        self.customers_where(stores, |c| c.namespace() == namespace);
        self.subscriptions_where(stores, |s| s.namespace() == namespace);
    }

    /// A provider changed: customers in its namespace may go on.
    pub fn provider_changed(&self, stores: &Stores, provider: &ProviderOrg) {
        let namespace = Some(provider.spec.namespace.clone());
        self.customers_where(stores, |c| c.namespace() == namespace);
    }
}
