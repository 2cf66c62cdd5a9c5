//! ProviderOrg billing, a [`Part`] with its own controller beside the ProviderOrg's reconcile: the
//! invoices of the last closed period ([`invoicing`]), the current period's view in `status.billing` and
//! what is attributed to the organisation as a reseller in `status.attributed` ([`views`]),
//! reported in the `Billing` condition. It writes only those, under the field manager
//! [`FIELD_MANAGER`]; the ProviderOrg's reconcile summarises the condition in Ready.
//!
//! A pass runs when the ProviderOrg's spec changes, when one of its customers becomes Ready, just after
//! each billing period closes and each full hour (when the view changes), and at least every resync. The
//! three parts of a pass run side by side, and each reads usage concurrently ([`crate::billing::cluster::usage`]).

use async_trait::async_trait;
use kube::ResourceExt;

use crate::api::ProviderOrg;
use crate::api::provider_org::ProviderOrgStatus;
use crate::billing::cluster::invoicing::{self, Billing};
use crate::billing::cluster::views;
use crate::controllers::business_metrics;
use crate::runtime::conditions::Phase;
use crate::runtime::context::Context;
use crate::runtime::error::Error;
use crate::runtime::part::Part;
use crate::runtime::reconciler::Outcome;

/// The field manager billing writes the ProviderOrg's status under.
pub const FIELD_MANAGER: &str = "navigator-billing";
/// The condition type billing reports in.
pub const CONDITION: &str = "Billing";

/// ProviderOrg billing.
pub struct ProviderBilling;

#[async_trait]
impl Part for ProviderBilling {
    type Kind = ProviderOrg;
    const NAME: &'static str = "billing";
    const FIELD_MANAGER: &'static str = FIELD_MANAGER;
    const CONDITION: &'static str = CONDITION;

    fn take(status: &mut ProviderOrgStatus) -> ProviderOrgStatus {
        ProviderOrgStatus {
            billing: status.billing.take(),
            attributed: std::mem::take(&mut status.attributed),
            ..ProviderOrgStatus::default()
        }
    }

    async fn apply(provider: &ProviderOrg, ctx: &Context) -> Result<Outcome<ProviderOrgStatus>, Error> {
        // What the last pass found stays where this one cannot compute it.
        let mut status = provider.status.clone().unwrap_or_default();
        let mut status = Self::take(&mut status);
        let now = ctx.clock.now();
        let mut problem = None;
        let billing = match provider.spec.billing.as_ref().map(Billing::new).transpose() {
            Ok(billing) => billing,
            Err(error) => {
                problem = Some(error);
                None
            }
        };
        let (invoiced, view, attributed) = match &billing {
            Some(billing) => {
                let (invoiced, view, attributed) = futures::join!(
                    invoicing::invoice_last_closed_period(provider, billing, ctx),
                    views::provider_view(provider, billing, ctx),
                    views::attributed(provider, ctx),
                );
                (Some(invoiced), Some(view), attributed)
            }
            None => (None, None, views::attributed(provider, ctx).await),
        };

        let mut requeue = ctx.settings.resync;
        let mut phase = Phase::Ready {
            reason: "NotConfigured".into(),
            message: "spec.billing is not set: no invoices are written".into(),
        };
        match invoiced {
            Some(Ok(done)) => {
                let totals = business_metrics::invoiced_totals(&done.invoices);
                ctx.metrics.set_invoiced(&provider.name_any(), totals);
                phase = Phase::Ready {
                    reason: "Billed".into(),
                    message: format!("{} invoices issued for {}", done.issued, done.period.label()),
                };
                // Just after the current period closes, its invoices are due.
                if let Some(current) = billing.as_ref().and_then(|b| b.cycle.next(&done.period).ok()) {
                    requeue = requeue.min(views::until(now, current.end()));
                }
            }
            Some(Err(error)) => problem = problem.or(Some(error)),
            None => ctx.metrics.set_invoiced(&provider.name_any(), Vec::new()),
        }
        match view {
            Some(Ok(view)) => status.billing = Some(view),
            Some(Err(error)) => problem = problem.or(Some(error)),
            None if provider.spec.billing.is_none() => status.billing = None,
            None => {}
        }
        match attributed {
            Ok(attributed) => status.attributed = attributed,
            Err(error) => problem = problem.or(Some(error)),
        }
        if billing.is_some() {
            requeue = requeue.min(views::until_next_refresh(now));
        }
        let phase = problem.map_or(phase, |error| error.phase());
        Ok(Outcome::new(status, phase).requeue_after(requeue))
    }
}
