//! Conditions: the pure rules that turn a reconcile outcome into the standard condition set.
//!
//! Every kind reports `Ready` (the summary), `Synced` (the last reconcile reached what it talks to
//! without error), `Reconciling` (work under way) and `Stalled` (cannot go on without a change from
//! the user). These are the conditions Flux's kstatus and Argo CD read. A condition's
//! `lastTransitionTime` changes only when its status changes, so a steady object produces no writes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub use crate::api::conditions::{READY, RECONCILING, STALLED, SYNCED, find, is_ready};

/// Where one reconcile left the object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Everything declared exists and is up to date.
    Ready { reason: String, message: String },
    /// Work is under way (creating, updating, waiting on the endpoint or on another object).
    Progressing { reason: String, message: String },
    /// Cannot go on until the user changes something (a missing reference, no entitlement, a refusal).
    Stalled { reason: String, message: String },
    /// A transient error (endpoint down, throttled, API conflict): retried with backoff.
    Failed { reason: String, message: String },
}

impl Phase {
    pub fn ready(message: impl Into<String>) -> Self {
        Phase::Ready {
            reason: "Available".into(),
            message: message.into(),
        }
    }
    pub fn progressing(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Phase::Progressing {
            reason: reason.into(),
            message: message.into(),
        }
    }
    pub fn stalled(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Phase::Stalled {
            reason: reason.into(),
            message: message.into(),
        }
    }
    pub fn failed(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Phase::Failed {
            reason: reason.into(),
            message: message.into(),
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            Phase::Ready { reason, .. }
            | Phase::Progressing { reason, .. }
            | Phase::Stalled { reason, .. }
            | Phase::Failed { reason, .. } => reason,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Phase::Ready { message, .. }
            | Phase::Progressing { message, .. }
            | Phase::Stalled { message, .. }
            | Phase::Failed { message, .. } => message,
        }
    }

    pub fn is_ready(&self) -> bool {
        matches!(self, Phase::Ready { .. })
    }
}

/// One desired condition, before transition times are reconciled with the current ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

fn desired(type_: &'static str, status: bool, reason: &str, message: &str) -> Desired {
    Desired {
        type_,
        status,
        reason: reason.to_string(),
        message: message.to_string(),
    }
}

/// The standard conditions for a phase. A transient failure keeps `Ready` as it was (a Ready object
/// stays Ready while its endpoint blips) and says so in `Synced`.
pub fn for_phase(phase: &Phase, current: &[Condition]) -> Vec<Desired> {
    match phase {
        Phase::Ready { reason, message } => vec![
            desired(READY, true, reason, message),
            desired(SYNCED, true, "ReconcileSuccess", ""),
            desired(RECONCILING, false, reason, ""),
            desired(STALLED, false, reason, ""),
        ],
        Phase::Progressing { reason, message } => vec![
            desired(READY, false, reason, message),
            desired(SYNCED, true, "ReconcileSuccess", ""),
            desired(RECONCILING, true, reason, message),
            desired(STALLED, false, reason, ""),
        ],
        Phase::Stalled { reason, message } => vec![
            desired(READY, false, reason, message),
            desired(SYNCED, true, "ReconcileSuccess", ""),
            desired(RECONCILING, false, reason, ""),
            desired(STALLED, true, reason, message),
        ],
        Phase::Failed { reason, message } => {
            let was_ready = current.iter().any(|c| c.type_ == READY && c.status == "True");
            let ready = if was_ready {
                let kept = current.iter().find(|c| c.type_ == READY).expect("checked above");
                desired(READY, true, &kept.reason, &kept.message)
            } else {
                desired(READY, false, reason, message)
            };
            vec![
                ready,
                desired(SYNCED, false, "ReconcileError", &format!("{reason}: {message}")),
                desired(RECONCILING, true, reason, message),
                desired(STALLED, false, reason, ""),
            ]
        }
    }
}

/// Merges desired conditions into the current list: keeps each condition's `lastTransitionTime` unless
/// its status changed, keeps conditions of other types, and orders the standard ones first.
pub fn merge(current: &[Condition], wanted: &[Desired], generation: Option<i64>, now: &Time) -> Vec<Condition> {
    let mut merged: Vec<Condition> = wanted
        .iter()
        .map(|d| {
            let status = if d.status { "True" } else { "False" }.to_string();
            let previous = current.iter().find(|c| c.type_ == d.type_);
            let last_transition_time = match previous {
                Some(p) if p.status == status => p.last_transition_time.clone(),
                _ => now.clone(),
            };
            Condition {
                type_: d.type_.to_string(),
                status,
                reason: d.reason.clone(),
                message: d.message.clone(),
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect();
    merged.extend(
        current
            .iter()
            .filter(|c| !wanted.iter().any(|d| d.type_ == c.type_))
            .cloned(),
    );
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap())
    }

    #[test]
    fn transition_time_is_kept_while_status_is_unchanged() {
        let first = merge(
            &[],
            &for_phase(&Phase::progressing("Creating", "creating"), &[]),
            Some(1),
            &at(100),
        );
        let second = merge(
            &first,
            &for_phase(&Phase::progressing("Creating", "still"), &first),
            Some(1),
            &at(200),
        );
        let ready = find(&second, READY).unwrap();
        assert_eq!(ready.last_transition_time, at(100));
        assert_eq!(ready.message, "still");

        let third = merge(&second, &for_phase(&Phase::ready("up"), &second), Some(2), &at(300));
        let ready = find(&third, READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.last_transition_time.clone()),
            ("True", at(300))
        );
        assert_eq!(ready.observed_generation, Some(2));
        // Stalled stayed False throughout: its transition time is the first one.
        assert_eq!(find(&third, STALLED).unwrap().last_transition_time, at(100));
    }

    #[test]
    fn same_outcome_twice_gives_identical_conditions() {
        let phase = Phase::stalled("CustomerOrgNotFound", "customer org acme does not exist");
        let first = merge(&[], &for_phase(&phase, &[]), Some(3), &at(10));
        let second = merge(&first, &for_phase(&phase, &first), Some(3), &at(20));
        assert_eq!(first, second, "a steady object must not change its status");
    }

    #[test]
    fn a_transient_failure_keeps_a_ready_object_ready_and_reports_synced_false() {
        let ready = merge(&[], &for_phase(&Phase::ready("up"), &[]), Some(1), &at(1));
        let failed = merge(
            &ready,
            &for_phase(&Phase::failed("Unavailable", "503 from endpoint"), &ready),
            Some(1),
            &at(2),
        );
        assert!(is_ready(&failed));
        let synced = find(&failed, SYNCED).unwrap();
        assert_eq!(
            (synced.status.as_str(), synced.reason.as_str()),
            ("False", "ReconcileError")
        );
        assert!(synced.message.contains("503"));
    }

    #[test]
    fn stalled_sets_stalled_true_and_ready_false_with_the_reason() {
        let conditions = merge(
            &[],
            &for_phase(&Phase::stalled("NotEntitled", "no contract"), &[]),
            None,
            &at(1),
        );
        let stalled = find(&conditions, STALLED).unwrap();
        assert_eq!(
            (stalled.status.as_str(), stalled.reason.as_str()),
            ("True", "NotEntitled")
        );
        let ready = find(&conditions, READY).unwrap();
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "NotEntitled"));
        assert_eq!(find(&conditions, RECONCILING).unwrap().status, "False");
    }

    #[test]
    fn conditions_of_other_types_are_kept() {
        let extra = Condition {
            type_: "Suspended".into(),
            status: "True".into(),
            reason: "Requested".into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: at(5),
        };
        let merged = merge(
            std::slice::from_ref(&extra),
            &for_phase(&Phase::ready("up"), &[]),
            None,
            &at(6),
        );
        assert_eq!(find(&merged, "Suspended"), Some(&extra));
    }
}
