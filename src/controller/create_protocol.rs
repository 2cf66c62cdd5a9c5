//! Crash-safe create for endpoints that assign ids themselves.
//!
//! Where the endpoint keys objects by the name Navigator chooses (the Navigator endpoint API), a repeated
//! create is harmless and no guard is needed. Where the endpoint assigns the id and a repeated create makes
//! a second object (Cloud Director, Request Tracker), Navigator first records a create-pending annotation
//! with the time, then creates. If it crashes in between, the next reconcile sees the marker: it looks the
//! object up by name and adopts it when found; while not found it waits out a grace period (the create may
//! still land) before it creates again.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::error::Error;
use crate::endpoint::CreateKey;

pub const CREATE_PENDING: &str = "navigator.cloudpartner.io/create-pending";

#[derive(Debug, PartialEq, Eq)]
pub enum CreateStep {
    /// Create now; `mark` says whether to record the create-pending marker first.
    Create { mark: bool },
    /// A previous create's outcome is unknown and may still land: wait instead of creating a second copy.
    Wait,
}

/// Decides how to create an object the endpoint did not show when observed by name.
pub fn decide(key: CreateKey, pending_since: Option<Timestamp>, now: Timestamp, grace: Duration) -> CreateStep {
    match key {
        CreateKey::Name | CreateKey::IdempotencyKey => CreateStep::Create { mark: false },
        CreateKey::ServerAssigned => match pending_since {
            Some(since) if now.as_second() - since.as_second() < grace.as_secs() as i64 => CreateStep::Wait,
            _ => CreateStep::Create { mark: true },
        },
    }
}

/// When the create-pending marker was set, if it is.
pub fn pending_since(annotations: &BTreeMap<String, String>) -> Option<Timestamp> {
    annotations.get(CREATE_PENDING).and_then(|v| v.parse().ok())
}

/// Records (`Some(time)`) or clears (`None`) the create-pending marker with a merge patch on metadata.
pub async fn mark<K>(api: &Api<K>, name: &str, at: Option<Timestamp>) -> Result<(), Error>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    let value = at.map(|t| t.to_string());
    let patch = json!({"metadata": {"annotations": {CREATE_PENDING: value}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    #[test]
    fn name_keyed_endpoints_create_without_a_marker() {
        let step = decide(CreateKey::Name, Some(at(100)), at(101), Duration::from_secs(60));
        assert_eq!(step, CreateStep::Create { mark: false });
    }

    #[test]
    fn a_pending_create_is_not_repeated_within_the_grace_period() {
        let grace = Duration::from_secs(60);
        assert_eq!(
            decide(CreateKey::ServerAssigned, None, at(100), grace),
            CreateStep::Create { mark: true }
        );
        assert_eq!(
            decide(CreateKey::ServerAssigned, Some(at(100)), at(130), grace),
            CreateStep::Wait
        );
        assert_eq!(
            decide(CreateKey::ServerAssigned, Some(at(100)), at(161), grace),
            CreateStep::Create { mark: true }
        );
    }

    #[test]
    fn the_marker_round_trips_through_annotations() {
        let annotations = BTreeMap::from([(CREATE_PENDING.to_string(), at(1_700_000_000).to_string())]);
        assert_eq!(pending_since(&annotations), Some(at(1_700_000_000)));
        assert_eq!(pending_since(&BTreeMap::new()), None);
    }
}
