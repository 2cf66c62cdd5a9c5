//! One crash-safe create protocol for everything Navigator creates on an endpoint: organisations, users,
//! service instances and support tickets.
//!
//! Where the endpoint keys objects by the name Navigator chooses, a repeated create is harmless. Where it
//! assigns ids itself and a repeated create makes a second object (Cloud Director, Request Tracker), a
//! crash between "create" and "record the id", or a create whose answer was lost, must not lead to a
//! second create while the first may still land. Every create therefore runs
//!
//! observe -> decide -> mark -> create -> unmark
//!
//! - **observe**: look the object up by name (tickets: by idempotency key). What is found is adopted, and
//!   any marker left by an earlier round is cleared; nothing is created.
//! - **decide** ([`decide`], pure): from how the endpoint keys this kind of object ([`CreateKey`], from the
//!   driver's [`Capabilities`]), the object's annotations and the time: create now (with or without a
//!   marker), wait, or hold back a create the endpoint refused.
//! - **mark**: where ids are server-assigned, record `create-pending-<what>` with the time on the
//!   Kubernetes object *before* creating. The write carries the object's resourceVersion, so a stale copy
//!   (a cache behind, a second writer) gets 409 and creates nothing this round.
//! - **create**: sent once by the driver. Its answer decides the rest: the object (unmark), a definite
//!   refusal (400/401/403: recorded as `create-failed-<what>` with time, generation and reason, and not
//!   repeated until the spec changes or the operator's longest backoff passed), a definite "not now"
//!   (429, 404, 409: unmark, retried with backoff), or an unknown outcome (timeout, 5xx, a lost answer: the
//!   marker stays).
//! - **unmark**: clear the marker (and any refusal). The id itself is recorded in the kind's status by the
//!   reconciler right after; a crash before that is harmless, because the next round observes first.
//!
//! While a marker is younger than the endpoint's grace ([`Capabilities::create_grace`], derived from the
//! endpoint's request timeout and queueing limit) and nothing is found, the next rounds wait instead of
//! creating again; once it is older, the earlier create cannot land any more and a new one is made, with a
//! new marker. No kind holds a number of its own.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::endpoint::{Capabilities, CreateKey, Driver, DriverError, DriverResult};
use crate::runtime::context::Context;
use crate::runtime::error::Error;
use crate::runtime::reconciler::Object;

pub use crate::api::keys::{
    FAILED_INSTANCE, FAILED_ORG, FAILED_TICKET, FAILED_USER, PENDING_INSTANCE, PENDING_ORG, PENDING_TICKET,
    PENDING_USER,
};

/// What is being created on the endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Creating {
    Org,
    User,
    Instance,
    Ticket,
}

impl Creating {
    pub fn noun(self) -> &'static str {
        match self {
            Creating::Org => "organisation",
            Creating::User => "user",
            Creating::Instance => "instance",
            Creating::Ticket => "ticket",
        }
    }

    /// The create-pending marker: when the create started whose outcome is not known yet.
    pub fn pending_annotation(self) -> &'static str {
        match self {
            Creating::Org => PENDING_ORG,
            Creating::User => PENDING_USER,
            Creating::Instance => PENDING_INSTANCE,
            Creating::Ticket => PENDING_TICKET,
        }
    }

    /// The record of a create the endpoint refused.
    pub fn failed_annotation(self) -> &'static str {
        match self {
            Creating::Org => FAILED_ORG,
            Creating::User => FAILED_USER,
            Creating::Instance => FAILED_INSTANCE,
            Creating::Ticket => FAILED_TICKET,
        }
    }

    /// How the endpoint keys this kind of object; `None` when it has no ticket API.
    pub fn key(self, capabilities: &Capabilities) -> Option<CreateKey> {
        match self {
            Creating::Org => Some(capabilities.orgs),
            Creating::User => Some(capabilities.users),
            Creating::Instance => Some(capabilities.instances),
            Creating::Ticket => capabilities.tickets,
        }
    }
}

/// A create the endpoint refused, as recorded in the `create-failed-<what>` annotation (JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub at: Timestamp,
    /// The object's generation (its spec) that was refused.
    pub generation: Option<i64>,
    pub reason: String,
    pub message: String,
}

/// What an object's annotations say about one kind of create.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Marks {
    /// When a create was started whose outcome is not known yet.
    pub pending_since: Option<Timestamp>,
    pub refused: Option<Refusal>,
}

impl Marks {
    /// Reads the marks; unreadable values count as absent (the next write replaces them).
    pub fn read(what: Creating, annotations: &BTreeMap<String, String>) -> Self {
        Marks {
            pending_since: annotations.get(what.pending_annotation()).and_then(|v| v.parse().ok()),
            refused: annotations
                .get(what.failed_annotation())
                .and_then(|v| serde_json::from_str(v).ok()),
        }
    }

    fn is_empty(&self) -> bool {
        self.pending_since.is_none() && self.refused.is_none()
    }
}

/// How long to hold back, both from the endpoint and the operator's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How long a create whose outcome is unknown may still land ([`Capabilities::create_grace`]).
    pub grace: Duration,
    /// How long a refused create is not repeated while the spec stays the same.
    pub retry_refused_after: Duration,
}

/// What to do when the endpoint does not show the object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Create now; with `mark`, record the create-pending marker first.
    Create { mark: bool },
    /// An earlier create may still land: look again, and create no earlier than `until`.
    Wait { until: Timestamp },
    /// The endpoint refused this spec: do not create again before `until` unless the spec changes.
    Refused { until: Timestamp },
}

fn plus(at: Timestamp, by: Duration) -> Timestamp {
    let by = SignedDuration::try_from(by).unwrap_or(SignedDuration::MAX);
    at.checked_add(by).unwrap_or(Timestamp::MAX)
}

/// Decides how to create an object the endpoint did not show when observed.
pub fn decide(key: CreateKey, marks: &Marks, generation: Option<i64>, now: Timestamp, timing: &Timing) -> Step {
    if let Some(refused) = &marks.refused {
        let until = plus(refused.at, timing.retry_refused_after);
        if refused.generation == generation && now < until {
            return Step::Refused { until };
        }
    }
    match key {
        // A repeat finds the first object: nothing to guard.
        CreateKey::Name | CreateKey::IdempotencyKey => Step::Create { mark: false },
        CreateKey::ServerAssigned => match marks.pending_since {
            Some(since) if now < plus(since, timing.grace) => Step::Wait {
                until: plus(since, timing.grace),
            },
            _ => Step::Create { mark: true },
        },
    }
}

/// What a failed create says about whether the object exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The endpoint refused the request as it is (400, 401, 403, unsupported): nothing was created, and
    /// repeating it will not help until something changes.
    Refused,
    /// Nothing was created, but later may work (429, 404: the organisation is not there yet, 409).
    NotCreated,
    /// It may or may not have been created (a timeout, a 5xx, a lost or unreadable answer).
    Unknown,
}

impl Failure {
    pub fn of(error: &DriverError) -> Self {
        match error {
            DriverError::Invalid { .. } | DriverError::Unauthorized { .. } | DriverError::Unsupported { .. } => {
                Failure::Refused
            }
            DriverError::Throttled { .. } | DriverError::NotFound { .. } | DriverError::Conflict { .. } => {
                Failure::NotCreated
            }
            DriverError::Unavailable { .. } => Failure::Unknown,
        }
    }
}

/// Where the protocol keeps its marks: the annotations of the Kubernetes object the create is for.
#[async_trait]
pub trait Annotations: Send + Sync {
    /// Sets (`Some`) or removes (`None`) annotations, only if the object is still at `resource_version`.
    /// Answers the new resourceVersion, or `None` when the object changed since that version was read.
    async fn write(&self, resource_version: &str, changes: &[(&str, Option<String>)]) -> Result<Option<String>, Error>;
}

/// The annotations of one object through the API server: a JSON merge patch that carries
/// `metadata.resourceVersion`, which the API server checks (409 on a stale copy).
pub struct OnObject<K> {
    api: Api<K>,
    name: String,
}

impl<K: Object> OnObject<K> {
    pub fn new(client: kube::Client, obj: &K) -> Self {
        OnObject {
            api: K::api(client, obj.namespace().as_deref()),
            name: obj.name_any(),
        }
    }
}

#[async_trait]
impl<K: Object> Annotations for OnObject<K> {
    async fn write(&self, resource_version: &str, changes: &[(&str, Option<String>)]) -> Result<Option<String>, Error> {
        let annotations: serde_json::Map<String, serde_json::Value> =
            changes.iter().map(|(k, v)| ((*k).to_string(), json!(v))).collect();
        let patch = json!({"metadata": {"resourceVersion": resource_version, "annotations": annotations}});
        match self
            .api
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(obj) => Ok(Some(obj.resource_version().unwrap_or_default())),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(None),
            Err(error) => Err(error.into()),
        }
    }
}

/// Clears the marks of `what`; a stale copy clears nothing (the next round, reading the current object,
/// does it), so this never fails the round.
async fn unmark(store: &dyn Annotations, resource_version: &str, what: Creating) {
    let changes = [(what.pending_annotation(), None), (what.failed_annotation(), None)];
    if let Err(error) = store.write(resource_version, &changes).await {
        tracing::debug!(what = what.noun(), %error, "could not clear the create marks; the next round will");
    }
}

/// Runs the protocol for one create of `what`, on behalf of the object whose metadata is `meta` (as this
/// round read it). `observe` looks the object up, `create` creates it; `capabilities` is read after
/// observing (a driver may learn them from its first call). Answers the object found or created;
/// `Error::Waiting` while an earlier create may still land or a stale copy lost the marker race, and
/// `Error::Stalled` for a create refused before.
#[allow(clippy::too_many_arguments)]
pub async fn run<T>(
    what: Creating,
    meta: &ObjectMeta,
    now: impl Fn() -> Timestamp,
    retry_refused_after: Duration,
    store: &dyn Annotations,
    observe: impl Future<Output = DriverResult<Option<T>>>,
    capabilities: impl FnOnce() -> Capabilities,
    create: impl Future<Output = DriverResult<T>>,
) -> Result<T, Error> {
    let empty = BTreeMap::new();
    let marks = Marks::read(what, meta.annotations.as_ref().unwrap_or(&empty));
    let version = meta.resource_version.clone().unwrap_or_default();
    let noun = what.noun();

    if let Some(found) = observe.await? {
        if !marks.is_empty() {
            unmark(store, &version, what).await;
        }
        return Ok(found);
    }

    let capabilities = capabilities();
    let key = what
        .key(&capabilities)
        .ok_or_else(|| Error::stalled("SupportUnavailable", "the support endpoint has no support-ticket API"))?;
    let timing = Timing {
        grace: capabilities.create_grace,
        retry_refused_after,
    };
    let started = now();
    let mark = match decide(key, &marks, meta.generation, started, &timing) {
        Step::Create { mark } => mark,
        Step::Wait { until } => {
            let since = marks.pending_since.map(|t| t.to_string()).unwrap_or_default();
            return Err(Error::waiting(
                "CreatePending",
                format!(
                    "an earlier create of the {noun} (started {since}) may still land on the endpoint; looking for it, and creating again no earlier than {until}"
                ),
            ));
        }
        Step::Refused { until } => {
            let refused = marks.refused.unwrap_or_else(|| Refusal {
                at: started,
                generation: None,
                reason: "CreateRefused".into(),
                message: String::new(),
            });
            return Err(Error::stalled(
                refused.reason,
                format!(
                    "the endpoint refused to create the {noun} at {}: {}; Navigator tries again when the spec changes, or at {until}",
                    refused.at, refused.message
                ),
            ));
        }
    };

    let mut version = version;
    if mark {
        let changes = [(what.pending_annotation(), Some(started.to_string()))];
        match store.write(&version, &changes).await? {
            Some(new) => version = new,
            None => {
                return Err(Error::waiting(
                    "CreateMarkerConflict",
                    format!(
                        "the object changed since this copy was read; creating the {noun} once the current version is read"
                    ),
                ));
            }
        }
    }

    match create.await {
        Ok(created) => {
            if mark || !marks.is_empty() {
                unmark(store, &version, what).await;
            }
            Ok(created)
        }
        Err(error) => {
            match Failure::of(&error) {
                Failure::Unknown => {
                    // The marker stays: the next rounds look before they create again.
                }
                Failure::NotCreated => {
                    if mark {
                        unmark(store, &version, what).await;
                    }
                }
                Failure::Refused => {
                    let refusal = Refusal {
                        at: now(),
                        generation: meta.generation,
                        reason: error.reason().to_string(),
                        message: error.to_string(),
                    };
                    let record = serde_json::to_string(&refusal).unwrap_or_default();
                    let changes = [
                        (what.pending_annotation(), None),
                        (what.failed_annotation(), Some(record)),
                    ];
                    if let Err(write) = store.write(&version, &changes).await {
                        tracing::debug!(what = noun, error = %write, "could not record the refused create");
                    }
                }
            }
            Err(error.into())
        }
    }
}

/// [`run`] for a Navigator object: its marks live in its own annotations, the grace comes from its
/// endpoint's driver, and a refused create is held back for the operator's longest backoff.
pub async fn ensure<K: Object, T>(
    obj: &K,
    what: Creating,
    ctx: &Context,
    driver: &dyn Driver,
    observe: impl Future<Output = DriverResult<Option<T>>>,
    create: impl Future<Output = DriverResult<T>>,
) -> Result<T, Error> {
    let store = OnObject::new(ctx.client.clone(), obj);
    run(
        what,
        obj.meta(),
        || ctx.clock.now(),
        ctx.settings.max_backoff,
        &store,
        observe,
        || driver.capabilities(),
        create,
    )
    .await
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use futures::FutureExt;

    use super::*;

    const GRACE: Duration = Duration::from_secs(16);
    const RETRY_REFUSED: Duration = Duration::from_secs(300);

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    fn timing() -> Timing {
        Timing {
            grace: GRACE,
            retry_refused_after: RETRY_REFUSED,
        }
    }

    fn refusal(seconds: i64, generation: i64) -> Refusal {
        Refusal {
            at: at(seconds),
            generation: Some(generation),
            reason: "InvalidRequest".into(),
            message: "vcpu 999 is too large".into(),
        }
    }

    #[test]
    fn the_decision_follows_the_key_the_marks_and_the_time() {
        use CreateKey::*;
        let none = Marks::default();
        let pending = |since| Marks {
            pending_since: Some(at(since)),
            refused: None,
        };
        let refused = |seconds, generation| Marks {
            pending_since: None,
            refused: Some(refusal(seconds, generation)),
        };
        let cases: Vec<(&str, CreateKey, Marks, i64, i64, Step)> = vec![
            (
                "names are keys: no marker",
                Name,
                none.clone(),
                1,
                0,
                Step::Create { mark: false },
            ),
            (
                "idempotency key: no marker",
                IdempotencyKey,
                none.clone(),
                1,
                0,
                Step::Create { mark: false },
            ),
            (
                "a stale marker means nothing where names are keys",
                Name,
                pending(0),
                1,
                1,
                Step::Create { mark: false },
            ),
            (
                "server-assigned: mark first",
                ServerAssigned,
                none.clone(),
                1,
                0,
                Step::Create { mark: true },
            ),
            (
                "an earlier create may still land",
                ServerAssigned,
                pending(0),
                1,
                10,
                Step::Wait { until: at(16) },
            ),
            (
                "at the end of the grace: create again",
                ServerAssigned,
                pending(0),
                1,
                16,
                Step::Create { mark: true },
            ),
            (
                "long after: create again",
                ServerAssigned,
                pending(0),
                1,
                1000,
                Step::Create { mark: true },
            ),
            (
                "refused for this spec",
                Name,
                refused(0, 1),
                1,
                10,
                Step::Refused { until: at(300) },
            ),
            (
                "refused, marker or not",
                ServerAssigned,
                refused(0, 1),
                1,
                10,
                Step::Refused { until: at(300) },
            ),
            (
                "refused for an older spec",
                Name,
                refused(0, 1),
                2,
                10,
                Step::Create { mark: false },
            ),
            (
                "refused long ago",
                ServerAssigned,
                refused(0, 1),
                1,
                300,
                Step::Create { mark: true },
            ),
        ];
        for (what, key, marks, generation, now, expected) in cases {
            assert_eq!(
                decide(key, &marks, Some(generation), at(now), &timing()),
                expected,
                "{what}"
            );
        }
    }

    #[test]
    fn marks_round_trip_through_annotations_and_garbage_counts_as_absent() {
        let annotations = BTreeMap::from([
            (PENDING_INSTANCE.to_string(), at(5).to_string()),
            (
                FAILED_INSTANCE.to_string(),
                serde_json::to_string(&refusal(3, 2)).unwrap(),
            ),
            (PENDING_ORG.to_string(), "yesterday".to_string()),
        ]);
        let marks = Marks::read(Creating::Instance, &annotations);
        assert_eq!(marks.pending_since, Some(at(5)));
        assert_eq!(marks.refused, Some(refusal(3, 2)));
        assert!(Marks::read(Creating::Org, &annotations).is_empty());
        assert!(Marks::read(Creating::User, &annotations).is_empty());
    }

    #[test]
    fn failures_are_sorted_by_what_they_say_about_the_object() {
        let cases = [
            (DriverError::Invalid { message: "x".into() }, Failure::Refused),
            (DriverError::Unauthorized { message: "x".into() }, Failure::Refused),
            (
                DriverError::Throttled {
                    retry_after: Duration::from_secs(1),
                },
                Failure::NotCreated,
            ),
            (DriverError::NotFound { message: "x".into() }, Failure::NotCreated),
            (DriverError::unavailable("timed out"), Failure::Unknown),
        ];
        for (error, failure) in cases {
            assert_eq!(Failure::of(&error), failure, "{error}");
        }
    }

    // --- the whole protocol through every crash point ----------------------------------------------

    /// An object the endpoint made.
    #[derive(Clone, Debug, PartialEq)]
    struct Made {
        id: u64,
        name: String,
    }

    /// How the next create goes.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Next {
        /// Created and answered.
        Fine,
        /// Created, then the operator dies before the answer arrives.
        CrashAfterCreate,
        /// Created, but the answer is lost (a timeout).
        LostAnswer,
        /// Accepted, answer lost, and the object shows only at this time (a slow endpoint).
        LandsAt(i64),
        /// Refused as invalid; nothing created.
        Refused,
        /// Throttled; nothing created.
        Throttled,
    }

    /// An in-process endpoint that assigns ids: every create makes a new object, whatever its name.
    #[derive(Default)]
    struct AssigningEndpoint {
        objects: Mutex<Vec<(Made, i64)>>,
        script: Mutex<VecDeque<Next>>,
        creates: Mutex<u64>,
        clock: Mutex<i64>,
    }

    impl AssigningEndpoint {
        fn next(&self, next: Next) {
            self.script.lock().unwrap().push_back(next);
        }

        fn now(&self) -> i64 {
            *self.clock.lock().unwrap()
        }

        async fn observe(&self, name: &str) -> DriverResult<Option<Made>> {
            let now = self.now();
            Ok(self
                .objects
                .lock()
                .unwrap()
                .iter()
                .find(|(m, visible)| m.name == name && *visible <= now)
                .map(|(m, _)| m.clone()))
        }

        fn make(&self, name: &str, visible: i64) -> Made {
            *self.creates.lock().unwrap() += 1;
            let mut objects = self.objects.lock().unwrap();
            let made = Made {
                id: objects.len() as u64 + 1,
                name: name.into(),
            };
            objects.push((made.clone(), visible));
            made
        }

        async fn create(&self, name: &str) -> DriverResult<Made> {
            let next = self.script.lock().unwrap().pop_front().unwrap_or(Next::Fine);
            match next {
                Next::Fine => Ok(self.make(name, self.now())),
                Next::CrashAfterCreate => {
                    self.make(name, self.now());
                    std::future::pending().await
                }
                Next::LostAnswer => {
                    self.make(name, self.now());
                    Err(DriverError::unavailable("POST /v1/orgs timed out"))
                }
                Next::LandsAt(at) => {
                    self.make(name, at);
                    Err(DriverError::unavailable("POST /v1/orgs timed out"))
                }
                Next::Refused => Err(DriverError::Invalid {
                    message: "name is taken by a reserved word".into(),
                }),
                Next::Throttled => Err(DriverError::Throttled {
                    retry_after: Duration::from_secs(1),
                }),
            }
        }

        fn copies(&self, name: &str) -> usize {
            self.objects
                .lock()
                .unwrap()
                .iter()
                .filter(|(m, _)| m.name == name)
                .count()
        }
    }

    /// The Kubernetes object's annotations, with resourceVersion preconditions like the API server's.
    struct FakeObject {
        annotations: Mutex<BTreeMap<String, String>>,
        version: Mutex<u64>,
        generation: Mutex<i64>,
        /// The operator dies right after this many more successful writes.
        crash_after_writes: Mutex<Option<u32>>,
        conflicts: Mutex<u32>,
    }

    impl FakeObject {
        fn new() -> Self {
            FakeObject {
                annotations: Mutex::new(BTreeMap::new()),
                version: Mutex::new(1),
                generation: Mutex::new(1),
                crash_after_writes: Mutex::new(None),
                conflicts: Mutex::new(0),
            }
        }

        /// The object as a fresh read sees it.
        fn read(&self) -> ObjectMeta {
            ObjectMeta {
                annotations: Some(self.annotations.lock().unwrap().clone()),
                resource_version: Some(self.version.lock().unwrap().to_string()),
                generation: Some(*self.generation.lock().unwrap()),
                ..ObjectMeta::default()
            }
        }

        fn crash_after_writes(&self, writes: u32) {
            *self.crash_after_writes.lock().unwrap() = Some(writes);
        }

        fn marks(&self) -> Marks {
            Marks::read(Creating::Org, &self.annotations.lock().unwrap())
        }
    }

    #[async_trait]
    impl Annotations for FakeObject {
        async fn write(
            &self,
            resource_version: &str,
            changes: &[(&str, Option<String>)],
        ) -> Result<Option<String>, Error> {
            let crash = {
                let mut version = self.version.lock().unwrap();
                if resource_version != version.to_string() {
                    *self.conflicts.lock().unwrap() += 1;
                    return Ok(None);
                }
                let mut annotations = self.annotations.lock().unwrap();
                for (key, value) in changes {
                    match value {
                        Some(value) => annotations.insert(key.to_string(), value.clone()),
                        None => annotations.remove(*key),
                    };
                }
                *version += 1;
                let mut crash = self.crash_after_writes.lock().unwrap();
                match crash.as_mut() {
                    Some(0) => unreachable!(),
                    Some(1) => {
                        *crash = None;
                        true
                    }
                    Some(n) => {
                        *n -= 1;
                        false
                    }
                    None => false,
                }
            };
            if crash {
                std::future::pending::<()>().await;
            }
            Ok(Some(self.version.lock().unwrap().to_string()))
        }
    }

    struct World {
        endpoint: AssigningEndpoint,
        object: FakeObject,
        key: CreateKey,
    }

    /// What one reconcile round came to; `None` when the operator died during it.
    type Round = Option<Result<Made, Error>>;

    impl World {
        fn new(key: CreateKey) -> Self {
            World {
                endpoint: AssigningEndpoint::default(),
                object: FakeObject::new(),
                key,
            }
        }

        fn capabilities(&self) -> Capabilities {
            Capabilities {
                orgs: self.key,
                users: self.key,
                instances: self.key,
                tickets: Some(self.key),
                usage: false,
                create_grace: GRACE,
            }
        }

        /// One round at `seconds`, reading the object as `meta` (a fresh read unless given).
        fn round_with(&self, seconds: i64, meta: ObjectMeta) -> Round {
            *self.endpoint.clock.lock().unwrap() = seconds;
            run(
                Creating::Org,
                &meta,
                || at(seconds),
                RETRY_REFUSED,
                &self.object,
                self.endpoint.observe("acme"),
                || self.capabilities(),
                self.endpoint.create("acme"),
            )
            .now_or_never()
        }

        fn round(&self, seconds: i64) -> Round {
            self.round_with(seconds, self.object.read())
        }

        /// Rounds every second from `from` until one answers the object; how many rounds that took.
        fn converge(&self, from: i64) -> (Made, i64) {
            for seconds in from..from + 120 {
                if let Some(Ok(made)) = self.round(seconds) {
                    return (made, seconds);
                }
            }
            panic!("no object after 120 rounds");
        }

        fn assert_one_and_clean(&self) {
            assert_eq!(self.endpoint.copies("acme"), 1, "exactly one object on the endpoint");
            assert_eq!(self.object.marks(), Marks::default(), "no marks left");
        }
    }

    fn crashed(round: Round) -> bool {
        round.is_none()
    }

    #[test]
    fn a_create_without_trouble_marks_creates_and_unmarks() {
        let world = World::new(CreateKey::ServerAssigned);
        let made = world.round(0).unwrap().unwrap();
        assert_eq!(made.id, 1);
        assert_eq!(*world.object.version.lock().unwrap(), 3, "two writes: mark and unmark");
        world.assert_one_and_clean();
        assert_eq!(world.round(1).unwrap().unwrap(), made, "later rounds adopt it");
        assert_eq!(*world.endpoint.creates.lock().unwrap(), 1);
    }

    #[test]
    fn a_crash_after_the_mark_waits_out_the_grace_then_creates_once() {
        let world = World::new(CreateKey::ServerAssigned);
        world.object.crash_after_writes(1);
        assert!(crashed(world.round(0)));
        assert_eq!(world.object.marks().pending_since, Some(at(0)));
        assert_eq!(world.endpoint.copies("acme"), 0);
        assert!(matches!(world.round(1), Some(Err(Error::Waiting { ref reason, .. })) if reason == "CreatePending"));
        let (_, when) = world.converge(2);
        assert_eq!(when, 16, "created again only once the grace has passed");
        world.assert_one_and_clean();
    }

    #[test]
    fn a_crash_after_the_create_adopts_what_was_created() {
        let world = World::new(CreateKey::ServerAssigned);
        world.endpoint.next(Next::CrashAfterCreate);
        assert!(crashed(world.round(0)));
        assert_eq!(
            world.object.marks().pending_since,
            Some(at(0)),
            "the marker survived the crash"
        );
        let (made, when) = world.converge(1);
        assert_eq!((made.id, when), (1, 1), "adopted at the next round");
        world.assert_one_and_clean();
        assert_eq!(*world.endpoint.creates.lock().unwrap(), 1);
    }

    #[test]
    fn a_crash_after_the_unmark_before_the_id_is_recorded_adopts_it() {
        let world = World::new(CreateKey::ServerAssigned);
        world.object.crash_after_writes(2);
        assert!(crashed(world.round(0)));
        assert_eq!(world.object.marks(), Marks::default());
        let (made, _) = world.converge(1);
        assert_eq!(made.id, 1);
        world.assert_one_and_clean();
    }

    #[test]
    fn a_lost_answer_keeps_the_marker_and_the_object_is_adopted() {
        let world = World::new(CreateKey::ServerAssigned);
        world.endpoint.next(Next::LostAnswer);
        assert!(matches!(
            world.round(0),
            Some(Err(Error::Endpoint(DriverError::Unavailable { .. })))
        ));
        assert_eq!(world.object.marks().pending_since, Some(at(0)));
        let (made, _) = world.converge(1);
        assert_eq!(made.id, 1);
        world.assert_one_and_clean();
    }

    #[test]
    fn a_create_that_lands_late_is_waited_for_not_repeated() {
        let world = World::new(CreateKey::ServerAssigned);
        world.endpoint.next(Next::LandsAt(9));
        assert!(world.round(0).unwrap().is_err());
        let (made, when) = world.converge(1);
        assert_eq!((made.id, when), (1, 9), "waited for the first create, then adopted it");
        world.assert_one_and_clean();
    }

    #[test]
    fn without_the_marker_the_same_late_create_makes_a_second_object() {
        // The same endpoint treated as if names were keys: what the protocol prevents does happen.
        let world = World::new(CreateKey::Name);
        world.endpoint.next(Next::LandsAt(9));
        assert!(world.round(0).unwrap().is_err());
        world.converge(1);
        assert_eq!(world.endpoint.copies("acme"), 2, "a duplicate");
    }

    #[test]
    fn a_refused_create_is_recorded_and_not_repeated_until_the_spec_changes() {
        let world = World::new(CreateKey::ServerAssigned);
        world.endpoint.next(Next::Refused);
        let first = world.round(0).unwrap().unwrap_err();
        assert_eq!(first.phase().reason(), "InvalidRequest");
        let marks = world.object.marks();
        assert_eq!(marks.pending_since, None, "the marker is replaced by the refusal");
        let refused = marks.refused.expect("the refusal is recorded");
        assert_eq!((refused.at, refused.generation), (at(0), Some(1)));
        for seconds in 1..20 {
            let error = world.round(seconds).unwrap().unwrap_err();
            assert!(matches!(error, Error::Stalled { ref reason, .. } if reason == "InvalidRequest"));
        }
        assert_eq!(*world.endpoint.creates.lock().unwrap(), 0, "not retried blindly");
        *world.object.generation.lock().unwrap() = 2;
        world.converge(20);
        world.assert_one_and_clean();
    }

    #[test]
    fn a_refused_create_is_tried_again_after_the_backoff() {
        let world = World::new(CreateKey::Name);
        world.endpoint.next(Next::Refused);
        assert!(world.round(0).unwrap().is_err());
        assert!(world.round(299).unwrap().is_err());
        assert_eq!(world.round(300).unwrap().unwrap().id, 1);
        world.assert_one_and_clean();
    }

    #[test]
    fn a_throttled_create_clears_its_marker_and_goes_again_at_once() {
        let world = World::new(CreateKey::ServerAssigned);
        world.endpoint.next(Next::Throttled);
        assert!(world.round(0).unwrap().is_err());
        assert_eq!(world.object.marks(), Marks::default(), "nothing can land: no marker");
        assert_eq!(world.round(1).unwrap().unwrap().id, 1);
        world.assert_one_and_clean();
    }

    #[test]
    fn a_stale_copy_cannot_mark_over_a_pending_create_nor_create_again() {
        let world = World::new(CreateKey::ServerAssigned);
        let stale = world.object.read();
        world.endpoint.next(Next::LandsAt(9));
        assert!(world.round(0).unwrap().is_err());
        // A later round still reading the copy from before the marker (a cache behind).
        let error = world.round_with(1, stale.clone()).unwrap().unwrap_err();
        assert!(matches!(error, Error::Waiting { ref reason, .. } if reason == "CreateMarkerConflict"));
        assert_eq!(*world.object.conflicts.lock().unwrap(), 1);
        assert_eq!(*world.endpoint.creates.lock().unwrap(), 1, "no second create");
        assert_eq!(world.object.marks().pending_since, Some(at(0)), "the marker stands");
        let (made, _) = world.converge(2);
        assert_eq!(made.id, 1);
        world.assert_one_and_clean();
    }

    #[test]
    fn a_stale_copy_that_finds_the_object_clears_nothing_it_should_not() {
        let world = World::new(CreateKey::ServerAssigned);
        world.endpoint.next(Next::CrashAfterCreate);
        assert!(crashed(world.round(0)));
        let marked = world.object.read();
        // Someone else's write moves the object on; the copy that shows the marker is now stale.
        let version = marked.resource_version.clone().unwrap();
        let other = [("example.com/other", Some("x".to_string()))];
        world.object.write(&version, &other).now_or_never().unwrap().unwrap();
        assert_eq!(world.round_with(1, marked).unwrap().unwrap().id, 1, "adopted");
        assert_eq!(
            world.object.marks().pending_since,
            Some(at(0)),
            "a stale copy cleared nothing"
        );
        world.converge(2);
        world.assert_one_and_clean();
    }
}
