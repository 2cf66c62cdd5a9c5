//! When to look at an object again: phase-based requeue intervals, jitter, and per-object backoff.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rand::RngExt;

use crate::runtime::conditions::Phase;
use crate::runtime::context::Settings;

/// The default wait before the next reconcile, by phase: in-progress work is polled soon, a Ready
/// object is re-checked for drift rarely, a stalled one now and then (a watch usually wakes it first).
pub fn after(phase: &Phase, settings: &Settings) -> Duration {
    match phase {
        Phase::Ready { .. } => settings.resync,
        Phase::Progressing { .. } => settings.progress_poll,
        Phase::Stalled { .. } => settings.stalled_retry,
        Phase::Failed { .. } => settings.max_backoff,
    }
}

/// The second of the resync period (`period_secs` long) in which the object `namespace/name` is
/// re-checked: a hash of its key, so the objects of a kind are spread evenly over the period, each keeps its place across
/// restarts, and no per-object timer has to be held (at 100,000 objects those timers were 6% of the
/// operator's memory).
pub fn resync_slot(namespace: Option<&str>, name: &str, period_secs: u64) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (namespace, name).hash(&mut hasher);
    hasher.finish() % period_secs.max(1)
}

/// Whether `slot` comes due when the resync clock moves from second `from` (exclusive) to `to`
/// (inclusive), both counted from the clock's start: a tick that came late still covers the seconds it
/// missed, and a whole period or more covers every slot.
pub fn resync_due(slot: u64, from: u64, to: u64, period_secs: u64) -> bool {
    let period = period_secs.max(1);
    if to <= from {
        return false;
    }
    if to - from >= period {
        return true;
    }
    // How far past `from` the slot next comes, in 1..=period.
    let ahead = (slot + period - from % period) % period;
    let ahead = if ahead == 0 { period } else { ahead };
    ahead <= to - from
}

/// Spreads requeues ±10% so objects created together do not poll together forever.
pub fn jitter(delay: Duration) -> Duration {
    let factor = rand::rng().random_range(0.9..=1.1);
    delay.mul_f64(factor)
}

/// Exponential backoff per object: 1 s, 2 s, 4 s, … up to `max`, forgotten on success. The table holds
/// only objects that are currently failing, so it stays small.
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Records one more failure of `key` and returns how long to wait before retrying it.
    pub fn failure(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().expect("backoff table");
        let count = failures.entry(key.to_string()).or_insert(0);
        *count = count.saturating_add(1);
        jitter(backoff_delay(self.base, self.max, *count))
    }

    pub fn success(&self, key: &str) {
        self.forget(key);
    }

    pub fn forget(&self, key: &str) {
        self.failures.lock().expect("backoff table").remove(key);
    }

    /// How many objects are currently backing off (for metrics).
    pub fn len(&self) -> usize {
        self.failures.lock().expect("backoff table").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How long after its creation an object's Stalled outcome is held back. GitOps tools apply a whole folder
/// at once and check health a moment later; in that moment the operator's caches may not hold the objects
/// applied beside this one yet, so "your customer does not exist" would be a false Stalled, which Flux
/// and Argo CD take as a failed sync. A stall that persists past the grace is reported as it is.
pub const STALL_GRACE: Duration = Duration::from_secs(5);

/// How soon an object whose stall was held back looks again.
pub const STALL_RECHECK: Duration = Duration::from_secs(1);

/// The reason reported while a young object's stall is held back.
pub const RECHECKING: &str = "CheckingReferences";

/// `phase` as reported for an object `age` old, and when to look again if that differs from the phase's
/// default: a Stalled outcome within [`STALL_GRACE`] of the object's creation becomes Progressing with
/// the stall's message, rechecked after [`STALL_RECHECK`].
pub fn hold_back_young_stall(phase: Phase, age: Duration) -> (Phase, Option<Duration>) {
    match phase {
        Phase::Stalled { reason, message } if age < STALL_GRACE => (
            Phase::progressing(
                RECHECKING,
                format!(
                    "{reason}: {message} (checking again: objects applied together may not have reached the operator yet)"
                ),
            ),
            Some(STALL_RECHECK),
        ),
        phase => (phase, None),
    }
}

/// How long ago the object was created, by this machine's clock; zero when the API server's clock is ahead.
pub fn age(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Duration {
    meta.creation_timestamp
        .as_ref()
        .and_then(|created| jiff::Timestamp::now().duration_since(created.0).try_into().ok())
        .unwrap_or(Duration::ZERO)
}

/// How soon an object looks again after a write refused because the cached copy it came from was behind.
pub const OUTDATED_RETRY: Duration = Duration::from_millis(500);

/// How soon an object retries after the API server itself was unreachable or unavailable, whatever its
/// own backoff: such a failure says nothing about the object, and when the API server returns, pending
/// work should go on within seconds.
pub const APISERVER_RETRY: Duration = Duration::from_secs(2);

/// Waits between attempts to re-establish a watch: 250 ms doubling to 2 s, reset by any event. kube's
/// default grows to 30 s, which after an API server restart left the caches without updates for 16-24 s
/// while work was pending; an attempt is one cheap request, so trying often costs little.
pub struct WatchBackoff {
    next: Duration,
}

impl WatchBackoff {
    const FIRST: Duration = Duration::from_millis(250);
    const MAX: Duration = Duration::from_secs(2);
}

impl Default for WatchBackoff {
    fn default() -> Self {
        WatchBackoff { next: Self::FIRST }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = self.next;
        self.next = (delay * 2).min(Self::MAX);
        Some(jitter(delay))
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// The wait before retrying a failed object: its backoff (already jittered), but no longer than
/// [`APISERVER_RETRY`] (jittered) when the API server was what failed, and never sooner than the
/// endpoint's Retry-After. The Retry-After floor comes last, so jitter cannot bring the retry forward.
pub fn retry_delay(backoff: Duration, retry_after: Option<Duration>, apiserver_unavailable: bool) -> Duration {
    let backoff = if apiserver_unavailable {
        backoff.min(jitter(APISERVER_RETRY))
    } else {
        backoff
    };
    retry_after.map_or(backoff, |retry_after| backoff.max(retry_after))
}

/// `base × 2^(failures-1)`, capped at `max`.
pub fn backoff_delay(base: Duration, max: Duration, failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(20);
    base.saturating_mul(1u32 << exponent).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let (base, max) = (Duration::from_secs(1), Duration::from_secs(60));
        let delays: Vec<u64> = (1..=8).map(|n| backoff_delay(base, max, n).as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(
            backoff_delay(base, max, u32::MAX),
            max,
            "no overflow after many failures"
        );
    }

    #[test]
    fn success_resets_the_backoff() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        backoff.failure("a");
        backoff.failure("a");
        assert!(
            backoff.failure("a") >= Duration::from_millis(3600),
            "third failure waits about 4 s"
        );
        backoff.success("a");
        assert!(
            backoff.failure("a") <= Duration::from_millis(1100),
            "after success it starts again at 1 s"
        );
        assert_eq!(backoff.len(), 1);
    }

    #[test]
    fn an_unavailable_api_server_retries_within_seconds_whatever_the_backoff() {
        let long = Duration::from_secs(64);
        assert_eq!(retry_delay(long, None, false), long);
        assert!(retry_delay(long, None, true) <= APISERVER_RETRY.mul_f64(1.1));
        assert_eq!(
            retry_delay(Duration::from_millis(500), None, true),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn a_lost_watch_retries_within_two_seconds_and_starts_over_after_an_event() {
        use kube::runtime::utils::Backoff as _;
        let mut backoff = WatchBackoff::default();
        let delays: Vec<Duration> = (0..10).map(|_| backoff.next().unwrap()).collect();
        assert!(delays[0] <= Duration::from_millis(275));
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(2200)), "{delays:?}");
        backoff.reset();
        assert!(backoff.next().unwrap() <= Duration::from_millis(275));
    }

    #[test]
    fn a_retry_waits_for_the_longer_of_backoff_and_retry_after() {
        let s = Duration::from_secs;
        assert_eq!(retry_delay(s(1), Some(s(3)), false), s(3), "the endpoint said 3 s");
        assert_eq!(retry_delay(s(8), Some(s(3)), false), s(8), "the backoff is longer");
        assert_eq!(retry_delay(s(2), None, false), s(2));
        // The first failure's backoff (about 1 s) never beats a Retry-After, jitter included.
        let backoff = Backoff::new(s(1), s(60));
        assert_eq!(retry_delay(backoff.failure("a"), Some(s(3)), false), s(3));
    }

    #[test]
    fn every_object_is_resynced_exactly_once_per_period_even_when_ticks_come_late() {
        let period = 600;
        let keys: Vec<(String, String)> = (0..3000)
            .map(|i| (format!("customer-{}", i % 7), format!("s{i:06}")))
            .collect();
        let slots: Vec<u64> = keys
            .iter()
            .map(|(ns, name)| resync_slot(Some(ns), name, period))
            .collect();
        assert!(slots.iter().all(|s| *s < period));
        // Ticks of 1 s, with some late ones covering several seconds, over two periods.
        let mut ticks = vec![0u64];
        while *ticks.last().unwrap() < 2 * period {
            let last = *ticks.last().unwrap();
            ticks.push(last + if last % 97 == 0 { 7 } else { 1 });
        }
        let mut resyncs = vec![0u32; keys.len()];
        for pair in ticks.windows(2) {
            for (i, slot) in slots.iter().enumerate() {
                if resync_due(*slot, pair[0], pair[1], period) {
                    resyncs[i] += 1;
                }
            }
        }
        let end = *ticks.last().unwrap();
        for (i, count) in resyncs.iter().enumerate() {
            let expected = (1..=end).filter(|second| second % period == slots[i]).count() as u32;
            assert_eq!(*count, expected, "object {i} (slot {})", slots[i]);
        }
        // Spread: no second of the period holds more than a few times its share.
        let mut per_second = vec![0u32; period as usize];
        slots.iter().for_each(|s| per_second[*s as usize] += 1);
        assert!(per_second.iter().all(|n| *n <= 25), "{:?}", per_second.iter().max());
        assert!(
            resync_due(5, 10, 10 + period, period),
            "a whole period late covers every slot"
        );
        assert!(!resync_due(5, 10, 10, period), "no time, nothing due");
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..1000 {
            let d = jitter(Duration::from_secs(100));
            assert!(d >= Duration::from_secs(90) && d <= Duration::from_secs(110), "{d:?}");
        }
    }

    #[test]
    fn a_stall_right_after_creation_is_rechecked_before_it_is_reported() {
        let stalled = Phase::stalled("CustomerOrgNotFound", "CustomerOrg acme does not exist");
        let (young, recheck) = hold_back_young_stall(stalled.clone(), Duration::from_millis(300));
        assert_eq!(young.reason(), RECHECKING);
        assert!(matches!(young, Phase::Progressing { .. }));
        assert!(young.message().contains("CustomerOrg acme does not exist"));
        assert_eq!(recheck, Some(STALL_RECHECK));

        let (old, none) = hold_back_young_stall(stalled.clone(), STALL_GRACE);
        assert_eq!((old, none), (stalled, None));
        let ready = Phase::ready("up");
        assert_eq!(hold_back_young_stall(ready.clone(), Duration::ZERO), (ready, None));
    }
}
