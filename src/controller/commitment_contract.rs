//! CommitmentContract: its phase (Pending, Active, Expired) from its dates, re-evaluated at each boundary.

use std::time::Duration;

use async_trait::async_trait;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::conditions::Phase;
use super::context::Context;
use super::entitlement;
use super::error::Error;
use super::reconciler::{Managed, Outcome};
use crate::api::CommitmentContract;
use crate::api::commitment_contract::{CommitmentContractStatus, ContractPhase};

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
        let outcome = Outcome::new(
            status,
            Phase::Ready {
                reason: reason.into(),
                message,
            },
        );
        Ok(
            match entitlement::next_boundary(&self.spec, today).and_then(|day| until_day(ctx, day)) {
                Some(until) => outcome.requeue_after(until.min(ctx.settings.resync)),
                None => outcome.requeue_after(ctx.settings.resync),
            },
        )
    }
}

/// How long until the start of `day` (UTC), plus a second so the boundary has surely passed.
pub fn until_day(ctx: &Context, day: Date) -> Option<Duration> {
    let start = day.to_zoned(TimeZone::UTC).ok()?.timestamp();
    let seconds = (start.as_second() - ctx.clock.now().as_second()).max(0) + 1;
    Some(Duration::from_secs(seconds as u64))
}
