//! CommitmentContract: its phase (Pending, Active, Expired) from its dates, re-evaluated at each boundary,
//! and its consumption, remaining commitment and forecast (see [`crate::billing::cluster::views`]).

use std::time::Duration;

use async_trait::async_trait;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::CommitmentContract;
use crate::api::commitment_contract::{CommitmentContractStatus, ContractPhase};
use crate::billing::cluster::views;
use crate::controllers::entitlement;
use crate::runtime::conditions::Phase;
use crate::runtime::context::Context;
use crate::runtime::error::Error;
use crate::runtime::reconciler::{Managed, Outcome};

crate::impl_object!(CommitmentContract, CommitmentContractStatus, namespaced);

#[async_trait]
impl Managed for CommitmentContract {
    const FINALIZER: Option<&'static str> = None;

    async fn apply(&self, ctx: &Context) -> Result<Outcome<CommitmentContractStatus>, Error> {
        let today = ctx.clock.now().to_zoned(TimeZone::UTC).date();
        let phase = entitlement::phase(&self.spec, today);
        let mut status = self.status.clone().unwrap_or_default();
        status.phase = Some(phase);
        let (start, end) = (self.spec.start_date, self.spec.end_date);
        // The contract object is what its spec says in every phase, so it is Ready; the phase is the reason.
        // (An expired contract is the normal end of a term, not a failure for GitOps health to flag.)
        let (reason, message) = match phase {
            ContractPhase::Active => ("Active", format!("in force from {start} through {end}")),
            ContractPhase::Pending => ("Pending", format!("signed; in force from {start}")),
            ContractPhase::Expired => ("Expired", format!("ended on {end}")),
        };
        let mut outcome_phase = Phase::Ready {
            reason: reason.into(),
            message,
        };
        let mut requeue = entitlement::next_boundary(&self.spec, today)
            .and_then(|day| until_day(ctx, day))
            .map_or(ctx.settings.resync, |until| until.min(ctx.settings.resync));

        // Consumption against the commitment, as of the last full hour. Once the term is over it is final:
        // read it once more after expiry, then keep it.
        let final_already = phase == ContractPhase::Expired
            && status.consumed.is_some()
            && status.observed_generation == self.metadata.generation
            && views::term(&self.spec).is_ok_and(|t| status.as_of.as_ref().is_some_and(|a| a.0 == t.end()));
        if phase == ContractPhase::Pending {
            (status.as_of, status.consumed, status.remaining, status.forecast) = (None, None, None, None);
        } else if !final_already {
            match views::contract_view(self, ctx).await {
                Ok(view) => {
                    status.as_of = Some(Time(view.as_of));
                    status.consumed = Some(view.consumed);
                    status.remaining = Some(view.remaining);
                    status.forecast = view.forecast;
                }
                Err(error) => outcome_phase = views::about("consumption", error.phase()),
            }
        }
        if phase == ContractPhase::Active {
            requeue = requeue.min(views::until_next_refresh(ctx.clock.now()));
        }
        Ok(Outcome::new(status, outcome_phase).requeue_after(requeue))
    }
}

/// How long until the start of `day` (UTC), plus a second so the boundary has surely passed.
pub fn until_day(ctx: &Context, day: Date) -> Option<Duration> {
    let start = day.to_zoned(TimeZone::UTC).ok()?.timestamp();
    let seconds = (start.as_second() - ctx.clock.now().as_second()).max(0) + 1;
    Some(Duration::from_secs(seconds as u64))
}
/// How long a contract waits for the triggers to stop before it reconciles. Every customer that becomes
/// Ready wakes its provider's contracts, and each reconcile reads the usage of every customer: without this,
/// 1,000 customers created together cost about 150,000 endpoint requests (`make bench`, mixed run).
pub const CONSUMPTION_DEBOUNCE: Duration = Duration::from_secs(2);

impl super::registry::Kind for CommitmentContract {
    const DEBOUNCE: Duration = CONSUMPTION_DEBOUNCE;

    /// Entitlement in its namespace may have changed.
    fn changed(wakers: &super::registry::Wakers, stores: &super::registry::Stores, obj: &Self) {
        wakers.contract_changed(stores, obj);
    }
}
