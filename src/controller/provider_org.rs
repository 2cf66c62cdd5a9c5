//! ProviderOrg: the provider's namespace, its administrators' RoleBinding, what it is entitled to, and its
//! billing: invoices for each closed period, the current period's view, and what is attributed to it.

use async_trait::async_trait;
use kube::ResourceExt;

use super::conditions::Phase;
use super::context::Context;
use super::entitlement;
use super::error::Error;
use super::namespaces::{self, PROVIDER_ORG_LABEL};
use super::reconciler::{Managed, Outcome};
use super::{billing_views, invoicing};
use crate::api::ProviderOrg;
use crate::api::provider_org::ProviderOrgStatus;

crate::impl_object!(ProviderOrg, ProviderOrgStatus, cluster);

/// The ClusterRole the provider's administrators are bound to in its namespace (from the role catalogue).
pub const ADMINISTRATOR_ROLE: &str = "navigator-provider-administrator";
pub const ADMINISTRATORS_BINDING: &str = "navigator-provider-administrators";

#[async_trait]
impl Managed for ProviderOrg {
    // The namespace is left in place when the ProviderOrg goes: it holds the provider's customers, whose own
    // finalizers decide what happens to what they provisioned.
    const FINALIZER: Option<&'static str> = None;

    async fn apply(&self, ctx: &Context) -> Result<Outcome<ProviderOrgStatus>, Error> {
        let name = self.name_any();
        let namespace = &self.spec.namespace;
        let labels = namespaces::ownership_labels(&[(PROVIDER_ORG_LABEL, &name)]);
        let children = &ctx.stores.children;
        namespaces::ensure_namespace(&ctx.client, &children.provider_namespaces, namespace, labels.clone()).await?;
        let subjects = namespaces::rbac_subjects(&self.spec.administrators);
        namespaces::ensure_role_binding(
            &ctx.client,
            &children.administrator_bindings,
            namespace,
            ADMINISTRATORS_BINDING,
            ADMINISTRATOR_ROLE,
            subjects,
            labels,
        )
        .await?;

        let today = ctx.clock.now().to_zoned(jiff::tz::TimeZone::UTC).date();
        let contracts = ctx.stores.contracts_in(namespace);
        let entitlements = entitlement::entitlements(&contracts, today);
        let mut status = self.status.clone().unwrap_or_default();
        status.namespace = Some(namespace.clone());
        let message = if entitlements.endpoints.is_empty() {
            format!("namespace {namespace} ready; no active commitment contract yet, so nothing can be provisioned")
        } else {
            format!(
                "namespace {namespace} ready; entitled to {} on {}",
                entitlements.services.join(", "),
                entitlements.endpoints.join(", ")
            )
        };
        status.entitlements = Some(entitlements);
        // Entitlements change at contract boundaries: look again at the next one.
        let next = contracts
            .iter()
            .filter_map(|c| entitlement::next_boundary(&c.spec, today))
            .min();
        let mut requeue = next
            .and_then(|day| super::commitment_contract::until_day(ctx, day))
            .map_or(ctx.settings.resync, |until| until.min(ctx.settings.resync));

        // Billing: the last closed period's invoices, the current period's view, and what is attributed to
        // this organisation as a reseller. A problem there is reported, but what is above is still written.
        let mut problem = None;
        let mut message = message;
        match self.spec.billing.as_ref().map(invoicing::Billing::new) {
            None => status.billing = None,
            Some(Err(error)) => problem = Some(error),
            Some(Ok(billing)) => {
                let now = ctx.clock.now();
                match invoicing::invoice_last_closed_period(self, &billing, ctx).await {
                    Ok(done) => {
                        message = format!("{message}; {} invoices issued for {}", done.issued, done.period.label());
                        // Just after the current period closes, its invoices are due.
                        if let Ok(current) = billing.cycle.next(&done.period) {
                            requeue = requeue.min(billing_views::until(now, current.end()));
                        }
                    }
                    Err(error) => problem = Some(error),
                }
                match billing_views::provider_view(self, &billing, ctx).await {
                    Ok(view) => status.billing = Some(view),
                    Err(error) => problem = problem.or(Some(error)),
                }
                requeue = requeue.min(billing_views::until_next_refresh(now));
            }
        }
        match billing_views::attributed(self, ctx).await {
            Ok(attributed) => status.attributed = attributed,
            Err(error) => problem = problem.or(Some(error)),
        }
        let phase = match problem {
            None => Phase::ready(message),
            Some(error) => billing_views::about("billing", error.phase()),
        };
        Ok(Outcome::new(status, phase).requeue_after(requeue))
    }
}
