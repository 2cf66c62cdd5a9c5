//! Conditions: every kind reports `status.conditions` in the standard `metav1.Condition` shape.
//!
//! The types are the ones of DESIGN.md: `Ready` (the summary), `Synced` (the last reconcile talked to the
//! endpoint without error), `Reconciling` (work is under way) and `Stalled` (nothing more happens until the
//! user changes something). kstatus (Flux) and Argo CD read these to tell Current, InProgress and Failed.
//!
//! The list is a map keyed by `type` for server-side apply, so each writer owns the conditions it sets.

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::{Schema, SchemaGenerator};

/// The summary condition: `True` when the object is what its spec asks for.
pub const READY: &str = "Ready";
/// `True` when the last reconcile talked to the endpoint without error.
pub const SYNCED: &str = "Synced";
/// `True` while Navigator is working towards the spec.
pub const RECONCILING: &str = "Reconciling";
/// `True` when Navigator cannot go on until the spec (or something it refers to) changes.
pub const STALLED: &str = "Stalled";

/// The schema of a `conditions` field: a list of `metav1.Condition`, merged by `type`.
pub fn schema(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<Vec<Condition>>();
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert("x-kubernetes-list-map-keys".into(), serde_json::json!(["type"]));
    schema
}

/// The condition of type `type_` in `conditions`, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether `conditions` hold `Ready=True`.
pub fn is_ready(conditions: &[Condition]) -> bool {
    find(conditions, READY).is_some_and(|c| c.status == "True")
}
