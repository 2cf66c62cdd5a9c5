//! The one generic reconciler every Navigator kind runs through.
//!
//! A kind implements [`Managed`]: how to reach its API, where its status keeps conditions, what one
//! reconcile does (`apply`, returning the kind's status fields and a [`Phase`]) and what deleting it
//! involves (`cleanup`). This module does the rest the same way for all of them: finalizers, conditions
//! with stable transition times, `observedGeneration`, status written with server-side apply only when it
//! changed, an Event per transition, jittered requeues, and per-object exponential backoff on errors.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{debug, warn};

use crate::runtime::conditions::{self, Phase};
use crate::runtime::context::Context;
use crate::runtime::error::Error;
use crate::runtime::schedule;

/// The field manager Navigator writes status under.
pub const FIELD_MANAGER: &str = "navigator";

/// The conditions this reconciler writes on every kind. Other condition types belong to other writers (a
/// [`crate::runtime::part::Part`] of the kind's status).
pub const CONDITIONS: [&str; 4] = [
    conditions::READY,
    conditions::SYNCED,
    conditions::RECONCILING,
    conditions::STALLED,
];

/// What one `apply` produced: the kind's new status (conditions are filled in by the reconciler), where
/// the object stands, and when to look again (the reconciler picks a default from the phase otherwise).
pub struct Outcome<S> {
    pub status: S,
    pub phase: Phase,
    pub requeue_after: Option<Duration>,
    /// Requeue at `requeue_after` without jitter: for deadlines that must be met on time (a grant's expiry).
    pub exact: bool,
}

impl<S> Outcome<S> {
    pub fn new(status: S, phase: Phase) -> Self {
        Outcome {
            status,
            phase,
            requeue_after: None,
            exact: false,
        }
    }

    pub fn requeue_after(mut self, after: Duration) -> Self {
        self.requeue_after = Some(after);
        self
    }

    /// Look again exactly `after` from now (no jitter), e.g. at a deadline.
    pub fn requeue_exactly_after(mut self, after: Duration) -> Self {
        self.requeue_after = Some(after);
        self.exact = true;
        self
    }
}

/// Whether cleanup finished, so the finalizer can go.
pub enum Cleanup {
    Done,
    /// Still removing what was provisioned (e.g. an instance being deleted); look again later.
    Pending {
        reason: String,
        message: String,
    },
}

/// How the reconciler reaches a kind's API and status; implemented for every kind by [`impl_object!`].
pub trait Object:
    Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Serialize + Send + Sync + 'static
{
    type Status: Clone + Debug + Default + PartialEq + Serialize + Send + Sync;

    /// The API to patch this object through (namespaced or cluster-wide, as the kind is).
    fn api(client: kube::Client, namespace: Option<&str>) -> Api<Self>;
    fn status(&self) -> Option<&Self::Status>;
    fn conditions(status: &Self::Status) -> &[Condition];
    fn set_conditions(status: &mut Self::Status, conditions: Vec<Condition>, observed_generation: Option<i64>);
}

/// Implements [`Object`] for a kind whose status has `conditions` and `observed_generation` fields.
#[macro_export]
macro_rules! impl_object {
    ($kind:ty, $status:ty, namespaced) => {
        $crate::impl_object!(@impl $kind, $status, |client, namespace: Option<&str>| {
            kube::Api::namespaced(client, namespace.expect("a namespaced object has a namespace"))
        });
    };
    ($kind:ty, $status:ty, cluster) => {
        $crate::impl_object!(@impl $kind, $status, |client, _namespace: Option<&str>| kube::Api::all(client));
    };
    (@impl $kind:ty, $status:ty, $api:expr) => {
        impl $crate::runtime::reconciler::Object for $kind {
            type Status = $status;
            fn api(client: kube::Client, namespace: Option<&str>) -> kube::Api<Self> {
                let api: fn(kube::Client, Option<&str>) -> kube::Api<Self> = $api;
                api(client, namespace)
            }
            fn status(&self) -> Option<&$status> {
                self.status.as_ref()
            }
            fn conditions(status: &$status) -> &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition] {
                &status.conditions
            }
            fn set_conditions(
                status: &mut $status,
                conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
                observed_generation: Option<i64>,
            ) {
                status.conditions = conditions;
                status.observed_generation = observed_generation;
            }
        }
    };
}

/// One Navigator kind, as the generic reconciler sees it.
#[async_trait]
pub trait Managed: Object {
    /// The finalizer that guards what this kind provisions; `None` when deleting it needs no cleanup.
    const FINALIZER: Option<&'static str>;

    /// One reconcile: resolve references, check entitlement, observe, create/update/wait. Errors that
    /// need the user's change are returned as [`Phase::Stalled`] inside the outcome or as [`Error`]
    /// variants classified stalled; everything else is retried with backoff.
    async fn apply(&self, ctx: &Context) -> Result<Outcome<Self::Status>, Error>;

    /// Removes what was provisioned (honouring `deletionPolicy`) before the finalizer is released.
    async fn cleanup(&self, _ctx: &Context) -> Result<Cleanup, Error> {
        Ok(Cleanup::Done)
    }

    /// Clears from `status` the fields and conditions another writer owns (a [`crate::runtime::part::Part`] of this
    /// kind, under its own field manager): this reconciler neither writes nor compares them, so the two
    /// never overwrite each other and a steady object is not rewritten. Nothing by default.
    fn without_parts(_status: &mut Self::Status) {}
}

/// The entry point given to `kube::runtime::Controller::run` for every kind.
pub async fn reconcile<K: Managed>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.owns(&*obj) {
        // Another shard's: its own instance reconciles it (woken here by a watch or a dependent's change).
        return Ok(Action::await_change());
    }
    // Every kind's cache must hold its first full list before any decision: a reference missing from a
    // cache still filling is not a missing reference (no false Stalled, no cleanup concluding "gone").
    crate::runtime::server::CacheSync::global().wait_all_synced().await;
    let started = Instant::now();
    let kind = K::kind(&());
    let _in_flight = ctx.metrics.reconcile_started(&kind);
    let result = match K::FINALIZER {
        Some(name) => {
            let api = K::api(ctx.client.clone(), obj.namespace().as_deref());
            finalizer(&api, name, obj, |event| async {
                match event {
                    FinalizerEvent::Apply(obj) => Ok(apply_and_report(&*obj, &ctx).await),
                    FinalizerEvent::Cleanup(obj) => cleanup_and_report(&*obj, &ctx).await,
                }
            })
            .await
            .map_err(Error::from_finalizer)
        }
        None => Ok(apply_and_report(&*obj, &ctx).await),
    };
    let failed = result
        .as_ref()
        .is_err_and(|e| !matches!(e, Error::CleanupPending { .. } | Error::Outdated(_)));
    ctx.metrics.observe_reconcile(&kind, started.elapsed(), failed);
    result
}

/// Requeue policy when the reconcile itself failed (status could not even be written).
pub fn error_policy<K: Managed>(obj: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action {
    if let Error::CleanupPending { .. } = error {
        return Action::requeue(schedule::jitter(ctx.settings.progress_poll));
    }
    if let Error::Outdated(_) = error {
        // The watch event of the newer version usually wakes it first.
        debug!(object = %object_key(&*obj), %error, "finalizer patch made from an outdated copy");
        return Action::requeue(schedule::jitter(schedule::OUTDATED_RETRY));
    }
    retry_after_error(&K::kind(&()), &object_key(&*obj), error, &ctx)
}

/// The object (`key`) retries on its backoff (never sooner than the endpoint's Retry-After) after a
/// reconcile that failed outright.
pub(super) fn retry_after_error(kind: &str, key: &str, error: &Error, ctx: &Context) -> Action {
    let delay = schedule::retry_delay(
        ctx.backoff.failure(key),
        error.retry_after(),
        error.is_apiserver_unavailable(),
    );
    warn!(kind = %kind, object = %key, error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

async fn apply_and_report<K: Managed>(obj: &K, ctx: &Context) -> Action {
    let key = object_key(obj);
    // The endpoint's Retry-After, when the error carried one, and whether the API server was what failed:
    // both shape the next retry, also when the error is only recorded as a status.
    let (outcome_status, phase, requeue, exact, retry_after, apiserver_unavailable) = match obj.apply(ctx).await {
        Ok(outcome) => (
            Some(outcome.status),
            outcome.phase,
            outcome.requeue_after,
            outcome.exact,
            None,
            false,
        ),
        Err(error) => (
            None,
            error.phase(),
            None,
            false,
            error.retry_after(),
            error.is_apiserver_unavailable(),
        ),
    };
    let (phase, recheck) = schedule::hold_back_young_stall(phase, schedule::age(obj.meta()));
    let requeue = recheck.or(requeue);
    let status = outcome_status.unwrap_or_else(|| obj.status().cloned().unwrap_or_default());
    if let Err(error) = write_status(obj, status, &phase, ctx).await {
        // Could not record the outcome: retry with backoff, the next attempt recomputes it.
        ctx.metrics.reconcile_failed(&K::kind(&()));
        let delay = schedule::retry_delay(
            ctx.backoff.failure(&key),
            retry_after,
            apiserver_unavailable || error.is_apiserver_unavailable(),
        );
        warn!(object = %key, %error, retry_in = ?delay, "writing status failed");
        return Action::requeue(delay);
    }
    let retry = Retry {
        after: retry_after,
        apiserver_unavailable,
    };
    next_action(&K::kind(&()), &key, &phase, requeue, exact, retry, ctx)
}

/// What a failed outcome says about when to retry: the endpoint's Retry-After, if any, and whether the API
/// server was what failed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Retry {
    pub after: Option<Duration>,
    pub apiserver_unavailable: bool,
}

/// When the object (`key`) looks again after an outcome in `phase`: a transient failure counts as a failed
/// reconcile of `kind` and waits on the object's backoff; otherwise the backoff is reset and it waits
/// `requeue`, or the phase's default. Jittered, unless `exact` asks for a deadline to be met on time.
pub(super) fn next_action(
    kind: &str,
    key: &str,
    phase: &Phase,
    requeue: Option<Duration>,
    exact: bool,
    retry: Retry,
    ctx: &Context,
) -> Action {
    let Retry {
        after: retry_after,
        apiserver_unavailable,
    } = retry;
    let delay = match phase {
        Phase::Failed { .. } => {
            ctx.metrics.reconcile_failed(kind);
            schedule::retry_delay(ctx.backoff.failure(key), retry_after, apiserver_unavailable)
        }
        _ => {
            ctx.backoff.success(key);
            // A Ready object with nothing to look at sooner is re-checked by the resync walk (watch::resyncs).
            if requeue.is_none() && matches!(phase, Phase::Ready { .. }) {
                debug!(object = %key, reason = phase.reason(), requeue_in = "resync", "reconciled");
                return Action::await_change();
            }
            let delay = requeue.unwrap_or_else(|| schedule::after(phase, &ctx.settings));
            if exact { delay } else { schedule::jitter(delay) }
        }
    };
    debug!(object = %key, reason = phase.reason(), requeue_in = ?delay, "reconciled");
    Action::requeue(delay)
}

async fn cleanup_and_report<K: Managed>(obj: &K, ctx: &Context) -> Result<Action, Error> {
    let outcome = obj.cleanup(ctx).await;
    match &outcome {
        Ok(Cleanup::Done) => debug!(object = %object_key(obj), "cleanup done"),
        Ok(Cleanup::Pending { reason, .. }) => debug!(object = %object_key(obj), reason, "cleanup pending"),
        Err(error) => debug!(object = %object_key(obj), %error, "cleanup failed"),
    }
    match outcome {
        Ok(Cleanup::Done) => {
            ctx.backoff.forget(&object_key(obj));
            publish(
                ctx,
                obj,
                EventType::Normal,
                "Deleted",
                "Cleanup",
                "removed what was provisioned",
            )
            .await;
            Ok(Action::await_change())
        }
        Ok(Cleanup::Pending { reason, message }) => {
            let status = obj.status().cloned().unwrap_or_default();
            write_status(obj, status, &Phase::progressing(&reason, &message), ctx).await?;
            // An error keeps the finalizer (kube's helper releases it on success); error_policy requeues it
            // at the progress poll without counting a failure.
            Err(Error::CleanupPending { reason, message })
        }
        Err(error) => {
            let phase = error.phase();
            let status = obj.status().cloned().unwrap_or_default();
            let _ = write_status(obj, status, &phase, ctx).await;
            Err(error)
        }
    }
}

/// Fills in conditions and `observedGeneration`, then writes the status (without what other writers own)
/// only when it differs from the live one, and records an Event when the Ready summary or its reason
/// changed.
async fn write_status<K: Managed>(obj: &K, mut status: K::Status, phase: &Phase, ctx: &Context) -> Result<(), Error> {
    let current = obj.status();
    let current_conditions = current.map(K::conditions).unwrap_or_default();
    let generation = obj.meta().generation;
    let wanted = conditions::for_phase(phase, current_conditions);
    let merged = conditions::merge(current_conditions, &wanted, generation, &Time(ctx.clock.now()));
    K::set_conditions(&mut status, merged, generation);
    // What other writers own is neither written (server-side apply keeps it theirs) nor compared.
    K::without_parts(&mut status);
    let current = current.cloned().map(|mut current| {
        K::without_parts(&mut current);
        current
    });
    if current.as_ref() == Some(&status) {
        return Ok(());
    }

    let api = K::api(ctx.client.clone(), obj.namespace().as_deref());
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::Kube)?;

    if let Some((type_, reason, message)) = transition(current_conditions, K::conditions(&status)) {
        publish(ctx, obj, type_, reason, "Reconcile", message).await;
    }
    Ok(())
}

/// The Event to record when the Ready condition's status or reason changed, if it did.
fn transition<'a>(before: &[Condition], after: &'a [Condition]) -> Option<(EventType, &'a str, &'a str)> {
    let new = conditions::find(after, conditions::READY)?;
    let old = conditions::find(before, conditions::READY);
    if old.is_some_and(|o| o.status == new.status && o.reason == new.reason) {
        return None;
    }
    let stalled = conditions::find(after, conditions::STALLED).is_some_and(|c| c.status == "True");
    let failed = conditions::find(after, conditions::SYNCED).is_some_and(|c| c.status == "False");
    let type_ = if stalled || failed {
        EventType::Warning
    } else {
        EventType::Normal
    };
    let message = if new.message.is_empty() {
        new.reason.as_str()
    } else {
        new.message.as_str()
    };
    Some((type_, new.reason.as_str(), message))
}

async fn publish<K: Managed>(ctx: &Context, obj: &K, type_: EventType, reason: &str, action: &str, note: &str) {
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note.chars().take(1000).collect()),
        action: action.to_string(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
        // Events are advisory; failing to record one must not fail the reconcile.
        debug!(object = %object_key(obj), %error, "could not publish event");
    }
}

/// `Kind/namespace/name` (or `Kind/name`), for logs and the backoff table.
pub fn object_key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    match obj.meta().namespace.as_deref() {
        Some(ns) => format!(
            "{}/{ns}/{}",
            K::kind(&()),
            obj.meta().name.as_deref().unwrap_or_default()
        ),
        None => format!("{}/{}", K::kind(&()), obj.meta().name.as_deref().unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::conditions::{for_phase, merge};

    fn at(seconds: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap())
    }

    #[test]
    fn an_event_is_recorded_only_when_ready_or_its_reason_changes() {
        let creating = merge(&[], &for_phase(&Phase::progressing("Creating", "c"), &[]), None, &at(1));
        let (type_, reason, _) = transition(&[], &creating).expect("first status is a transition");
        assert_eq!((type_, reason), (EventType::Normal, "Creating"));
        let again = merge(
            &creating,
            &for_phase(&Phase::progressing("Creating", "other text"), &creating),
            None,
            &at(2),
        );
        assert!(
            transition(&creating, &again).is_none(),
            "same status and reason: no event"
        );
        let stalled = merge(
            &again,
            &for_phase(&Phase::stalled("NotEntitled", "no contract"), &again),
            None,
            &at(3),
        );
        assert_eq!(
            transition(&again, &stalled).map(|t| (t.0, t.1)),
            Some((EventType::Warning, "NotEntitled"))
        );
    }
}
