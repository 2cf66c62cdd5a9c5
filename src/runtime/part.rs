//! A part of a kind's status with a controller of its own (generic; ProviderOrg billing is one, see
//! [`crate::controllers::provider_billing`]).
//!
//! Work that is slow or apart from what the kind's reconcile does (reading usage from every endpoint for
//! every customer) runs beside it, over the same cache, as a second controller of the same kind. It owns
//! some status fields and one condition type, and writes only those, with server-side apply under its
//! own field manager; the kind's reconcile leaves them out of what it writes and compares
//! ([`Managed::without_parts`]). So the two never overwrite each other's fields, and neither sees the
//! other's as a difference to write.
//!
//! The part's condition is `True` when its work is done, `False` when it needs a change from the user, and
//! `Unknown` when it failed for a passing reason and is retried. The kind's reconcile folds it into `Ready`
//! ([`summarise`]), so a problem shows in the standard conditions, with their Events, as before the split.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use crate::runtime::conditions::{self, Phase};
use crate::runtime::context::Context;
use crate::runtime::error::Error;
use crate::runtime::reconciler::{Managed, Object, Outcome, Retry, next_action, object_key, retry_after_error};
use crate::runtime::schedule;

/// The status type of the kind a part belongs to.
pub type StatusOf<P> = <<P as Part>::Kind as Object>::Status;

/// One part of a kind's status, with its own controller and field manager.
#[async_trait]
pub trait Part: Send + Sync + 'static {
    type Kind: Managed;
    /// What the part is, for logs and metrics (`<Kind>/<name>`), e.g. `billing`.
    const NAME: &'static str;
    /// The field manager its status writes use.
    const FIELD_MANAGER: &'static str;
    /// The condition type it reports in.
    const CONDITION: &'static str;

    /// Moves this part's fields out of `status` (conditions aside) into an otherwise empty status: what
    /// the part writes, and what the kind's reconcile leaves out.
    fn take(status: &mut StatusOf<Self>) -> StatusOf<Self>;

    /// One pass: the part's fields (the others are ignored) and where its work stands.
    async fn apply(obj: &Self::Kind, ctx: &Context) -> Result<Outcome<StatusOf<Self>>, Error>;
}

/// The part's condition for `phase`: `True` when ready, `False` when stalled, `Unknown` otherwise (a
/// transient failure, retried). `lastTransitionTime` moves only when the status does.
pub fn condition(
    type_: &str,
    phase: &Phase,
    previous: Option<&Condition>,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    let status = match phase {
        Phase::Ready { .. } => "True",
        Phase::Stalled { .. } => "False",
        Phase::Progressing { .. } | Phase::Failed { .. } => "Unknown",
    };
    let last_transition_time = previous
        .filter(|p| p.status == status)
        .map_or_else(|| now.clone(), |p| p.last_transition_time.clone());
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: phase.reason().to_owned(),
        message: phase.message().to_owned(),
        observed_generation: generation,
        last_transition_time,
    }
}

/// The kind's own `base` phase with a part's condition folded in. The kind's own problem comes first;
/// then a part that is `False` stalls the object with its reason, one that is `Unknown` is a transient
/// failure (Ready stays as it was, Synced turns False), and one that is `True` adds its message to
/// Ready's when `show_message`. The part's messages are prefixed with `what: `.
pub fn summarise(base: Phase, what: &str, part: Option<&Condition>, show_message: bool) -> Phase {
    let Phase::Ready { reason, message } = base else {
        return base;
    };
    match part {
        Some(c) if c.status == "True" && show_message && !c.message.is_empty() => Phase::Ready {
            reason,
            message: format!("{message}; {}", c.message),
        },
        Some(c) if c.status == "False" => Phase::stalled(&c.reason, format!("{what}: {}", c.message)),
        Some(c) if c.status != "True" => Phase::failed(&c.reason, format!("{what}: {}", c.message)),
        _ => Phase::Ready { reason, message },
    }
}

/// The metrics label and log name of a part: `<Kind>/<name>`.
fn label<P: Part>() -> String {
    format!("{}/{}", P::Kind::kind(&()), P::NAME)
}

/// The backoff key of a part of one object, apart from the object's own.
fn key<P: Part>(obj: &P::Kind) -> String {
    format!("{}/{}", object_key(obj), P::NAME)
}

/// The entry point given to `kube::runtime::Controller::run` for a part.
pub async fn reconcile<P: Part>(obj: Arc<P::Kind>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.owns(&*obj) {
        // Another shard's object: its instance computes this part too.
        return Ok(Action::await_change());
    }
    crate::runtime::server::CacheSync::global().wait_all_synced().await;
    if obj.meta().deletion_timestamp.is_some() {
        // Going: nothing of it is worth computing any more.
        return Ok(Action::await_change());
    }
    let started = Instant::now();
    let label = label::<P>();
    let _in_flight = ctx.metrics.reconcile_started(&label);
    let (status, phase, requeue, retry) = match P::apply(&obj, &ctx).await {
        Ok(outcome) => (
            Some(outcome.status),
            outcome.phase,
            outcome.requeue_after,
            Retry::default(),
        ),
        Err(error) => (
            None,
            error.phase(),
            None,
            Retry {
                after: error.retry_after(),
                apiserver_unavailable: error.is_apiserver_unavailable(),
            },
        ),
    };
    let (phase, recheck) = schedule::hold_back_young_stall(phase, schedule::age(obj.meta()));
    let requeue = recheck.or(requeue);
    let mut status = status.unwrap_or_else(|| obj.status().cloned().unwrap_or_default());
    let written = write::<P>(&obj, P::take(&mut status), &phase, &ctx).await;
    ctx.metrics
        .observe_reconcile(&label, started.elapsed(), written.is_err());
    written?;
    Ok(next_action(
        &label,
        &key::<P>(&obj),
        &phase,
        requeue,
        false,
        retry,
        &ctx,
    ))
}

/// Requeue policy when a part's pass failed outright (its status could not be written).
pub fn error_policy<P: Part>(obj: Arc<P::Kind>, error: &Error, ctx: Arc<Context>) -> Action {
    retry_after_error(&label::<P>(), &key::<P>(&obj), error, &ctx)
}

/// Writes the part's fields and condition, under its field manager, when they differ from the live ones.
async fn write<P: Part>(obj: &P::Kind, mut fields: StatusOf<P>, phase: &Phase, ctx: &Context) -> Result<(), Error> {
    let current = obj.status();
    let previous = current.and_then(|s| conditions::find(P::Kind::conditions(s), P::CONDITION));
    let generation = obj.meta().generation;
    let condition = condition(P::CONDITION, phase, previous, generation, &Time(ctx.clock.now()));
    P::Kind::set_conditions(&mut fields, vec![condition], None);
    let mut live = current.cloned().unwrap_or_default();
    let mut live = P::take(&mut live);
    P::Kind::set_conditions(&mut live, previous.cloned().into_iter().collect(), None);
    if live == fields {
        return Ok(());
    }
    let patch = serde_json::json!({
        "apiVersion": P::Kind::api_version(&()),
        "kind": P::Kind::kind(&()),
        "status": fields,
    });
    P::Kind::api(ctx.client.clone(), obj.namespace().as_deref())
        .patch_status(
            &obj.name_any(),
            &PatchParams::apply(P::FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap())
    }

    fn part(status: &str, reason: &str, message: &str) -> Condition {
        Condition {
            type_: "Billing".into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            observed_generation: Some(1),
            last_transition_time: at(1),
        }
    }

    #[test]
    fn a_parts_condition_is_true_false_or_unknown_and_keeps_its_transition_time() {
        let ready = Phase::Ready {
            reason: "Billed".into(),
            message: "2 invoices issued".into(),
        };
        let first = condition("Billing", &ready, None, Some(1), &at(10));
        assert_eq!(
            (first.status.as_str(), first.reason.as_str(), first.message.as_str()),
            ("True", "Billed", "2 invoices issued")
        );
        assert_eq!(first.last_transition_time, at(10));
        let again = condition("Billing", &ready, Some(&first), Some(2), &at(20));
        assert_eq!(again.last_transition_time, at(10), "same status: same transition time");
        assert_eq!(again.observed_generation, Some(2));
        let stalled = condition(
            "Billing",
            &Phase::stalled("UnpricedUsage", "no price"),
            Some(&again),
            Some(2),
            &at(30),
        );
        assert_eq!(
            (stalled.status.as_str(), stalled.last_transition_time.clone()),
            ("False", at(30))
        );
        let failed = condition(
            "Billing",
            &Phase::failed("Unavailable", "503"),
            Some(&stalled),
            None,
            &at(40),
        );
        assert_eq!(failed.status, "Unknown");
        let waiting = condition("Billing", &Phase::progressing("Waiting", "w"), None, None, &at(40));
        assert_eq!(waiting.status, "Unknown");
    }

    #[test]
    fn ready_summarises_the_part_after_the_kinds_own_outcome() {
        let base = || Phase::ready("namespace p ready");
        assert_eq!(summarise(base(), "billing", None, true), base(), "no pass yet");
        let billed = part("True", "Billed", "2 invoices issued for 2026-10");
        assert_eq!(
            summarise(base(), "billing", Some(&billed), true).message(),
            "namespace p ready; 2 invoices issued for 2026-10"
        );
        assert_eq!(summarise(base(), "billing", Some(&billed), false), base());
        let unpriced = part("False", "UnpricedUsage", "customer u1: no price for storage-gib-hours");
        assert_eq!(
            summarise(base(), "billing", Some(&unpriced), true),
            Phase::stalled("UnpricedUsage", "billing: customer u1: no price for storage-gib-hours")
        );
        let down = part("Unknown", "Unavailable", "503 from endpoint");
        assert_eq!(
            summarise(base(), "billing", Some(&down), true),
            Phase::failed("Unavailable", "billing: 503 from endpoint")
        );
        let own = Phase::stalled("NamespaceTaken", "namespace p belongs to someone else");
        assert_eq!(
            summarise(own.clone(), "billing", Some(&unpriced), true),
            own,
            "the kind's own problem comes first"
        );
    }
}
