//! Waking dependents: when an object another one waits on changes (a customer org becomes Ready, an
//! endpoint answers, a contract appears), the objects that are not Ready yet and refer to it are
//! reconciled at once instead of at their next poll. Only not-Ready dependents are woken, so a steady
//! system wakes nothing. (One exception, for billing: a Ready customer's change wakes its provider and
//! contracts, which count its usage; a steady customer does not change.)

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use crate::api::conditions::is_ready;
use crate::api::{
    AccessGrant, CloudEndpoint, CloudServiceSubscription, CommitmentContract, CustomerOrg, ProviderOrg, SupportRequest,
};
use crate::controllers::registry::Stores;

pub use super::registry::Wakers;

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

    fn support_requests_where(&self, stores: &Stores, matches: impl Fn(&SupportRequest) -> bool) {
        for request in stores
            .support_requests
            .state()
            .iter()
            .filter(|r| !r.status.as_ref().is_some_and(|s| is_ready(&s.conditions)) && matches(r))
        {
            let _ = self
                .support_requests
                .unbounded_send(ObjectRef::from_obj(request.as_ref()));
        }
    }

    fn grants_where(&self, stores: &Stores, matches: impl Fn(&AccessGrant) -> bool) {
        for grant in stores.grants.state().iter().filter(|g| matches(g)) {
            let _ = self.grants.unbounded_send(ObjectRef::from_obj(grant.as_ref()));
        }
    }

    /// A customer org changed: its waiting subscriptions, grants and support requests may go on (or learn it
    /// is gone), and the provider-wide roles that read invoices gain a binding in a new customer namespace or
    /// drop the one in a customer's that is going (woken only then, so a steady system wakes nothing).
    pub fn customer_changed(&self, stores: &Stores, customer: &CustomerOrg) {
        let (namespace, name) = (customer.namespace(), customer.name_any());
        // A customer just provisioned may be due an invoice for the last closed period, and its usage counts
        // against the provider's contracts: they look now rather than at their next resync. Customer status
        // changes are rare in a steady system.
        if customer_ready(customer) {
            let provider = namespace.as_deref().and_then(|ns| stores.provider_of_namespace(ns));
            if let Some(provider) = provider.filter(|p| p.spec.billing.is_some()) {
                let _ = self.providers.unbounded_send(ObjectRef::from_obj(provider.as_ref()));
            }
            for contract in namespace
                .as_deref()
                .map(|ns| stores.contracts_in(ns))
                .unwrap_or_default()
            {
                let _ = self.contracts.unbounded_send(ObjectRef::from_obj(contract.as_ref()));
            }
        }
        self.subscriptions_where(stores, |s| {
            s.namespace() == namespace && s.spec.customer_org_ref.name == name
        });
        self.support_requests_where(stores, |r| {
            r.namespace() == namespace && r.spec.customer_org_ref.name == name
        });
        let customer_namespace = customer.status.as_ref().and_then(|s| s.namespace.clone());
        self.grants_where(stores, |g| {
            if g.namespace() != namespace {
                return false;
            }
            let ready = g.status.as_ref().is_some_and(|s| is_ready(&s.conditions));
            let bound_there = |ns: &str| {
                g.status
                    .as_ref()
                    .is_some_and(|s| s.bindings.iter().any(|b| b.namespace == ns))
            };
            let deleting = customer.metadata.deletion_timestamp.is_some();
            (g.customer_name() == Some(name.as_str()) && !ready)
                || (crate::controllers::access_grant::reaches_customer_namespaces(g.spec.role)
                    && customer_namespace
                        .as_deref()
                        .is_some_and(|ns| bound_there(ns) == deleting))
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
        self.support_requests_where(stores, |r| r.namespace() == namespace);
        self.grants_where(stores, |g| {
            g.namespace() == namespace && !g.status.as_ref().is_some_and(|s| is_ready(&s.conditions))
        });
    }
}
