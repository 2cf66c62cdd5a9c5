//! Counters that tests read through `GET /sim/stats`: requests, creates per object, faults, and the
//! busiest one-second window; and the log of recent requests behind `GET /sim/requests`, for tests that
//! check when a client came back.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::state::Held;

/// The kinds of objects whose creates are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Org,
    User,
    Instance,
    Ticket,
}

/// The answer of `GET /sim/stats`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimStats {
    pub requests: RequestStats,
    /// How many times each object was created (key: `org`, `org/user`, `org/instance`, or the ticket's
    /// idempotency key). More than one means a duplicate, unless it was deleted in between.
    pub creates: CreateStats,
    /// The largest count in `creates`.
    pub max_creates_per_object: u64,
    /// What the simulator holds now (instances whose deletion finished are not counted).
    pub held: Held,
    /// Extra copies among what it holds now: objects beyond the first of the same name (users and
    /// instances: in the same organisation; tickets: of the same idempotency key). Only an endpoint that
    /// assigns ids can hold any.
    #[serde(default)]
    pub duplicates: Held,
    /// Faults injected, by kind: `5xx-before`, `5xx-after`, `429`, `timeout-before`, `timeout-after`.
    pub faults: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestStats {
    /// Every `/v1` request that reached the simulator, answered or not.
    pub total: u64,
    pub by_method: BTreeMap<String, u64>,
    /// The most `/v1` requests that arrived within any one second.
    pub peak_per_second: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateStats {
    pub orgs: BTreeMap<String, u64>,
    pub users: BTreeMap<String, u64>,
    pub instances: BTreeMap<String, u64>,
    pub tickets: BTreeMap<String, u64>,
}

/// One `/v1` request in `GET /sim/requests`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    /// When it arrived, in milliseconds since the simulator started (a monotonic clock, unlike the
    /// request's `X-Simulator-Time`).
    pub at_ms: u64,
    pub method: String,
    pub path: String,
    /// The query string, where the endpoint logs it (the Cloud Director emulator does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The status it was answered with; `None` when the client went away before the answer.
    pub status: Option<u16>,
}

/// The answer of `GET /sim/requests`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestLog {
    /// The latest requests, in the order they ended (answered or abandoned); sort by `atMs` for arrival
    /// order. A request still waiting for its answer is not listed yet.
    pub requests: Vec<RequestRecord>,
    /// How many older records were dropped to keep the log at [`LOG_CAPACITY`].
    pub dropped: u64,
}

/// The most records the request log keeps (a long benchmark must not grow it without bound).
pub const LOG_CAPACITY: usize = 100_000;

#[derive(Default)]
struct Counters {
    requests: RequestStats,
    creates: CreateStats,
    faults: BTreeMap<String, u64>,
    /// Arrivals within the last second.
    recent: VecDeque<Instant>,
    log: VecDeque<RequestRecord>,
    dropped: u64,
}

pub struct Stats {
    counters: Mutex<Counters>,
    /// What the log's times count from.
    started: Instant,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            counters: Mutex::default(),
            started: Instant::now(),
        }
    }
}

const WINDOW: Duration = Duration::from_secs(1);

impl Stats {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts a `/v1` request arriving at `now`.
    pub fn request(&self, method: &str, now: Instant) {
        let mut c = self.lock();
        c.requests.total += 1;
        *c.requests.by_method.entry(method.to_owned()).or_default() += 1;
        while c
            .recent
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= WINDOW)
        {
            c.recent.pop_front();
        }
        c.recent.push_back(now);
        let in_window = c.recent.len() as u64;
        c.requests.peak_per_second = c.requests.peak_per_second.max(in_window);
    }

    /// Logs a `/v1` request that arrived at `arrived` and ended with `status` (`None`: abandoned).
    pub fn ended(&self, method: &str, path: &str, arrived: Instant, status: Option<u16>) {
        self.ended_with_query(method, path, None, arrived, status);
    }

    /// Logs a request with its query string.
    pub fn ended_with_query(
        &self,
        method: &str,
        path: &str,
        query: Option<String>,
        arrived: Instant,
        status: Option<u16>,
    ) {
        let record = RequestRecord {
            at_ms: u64::try_from(arrived.saturating_duration_since(self.started).as_millis()).unwrap_or(u64::MAX),
            method: method.to_owned(),
            path: path.to_owned(),
            query,
            status,
        };
        let mut c = self.lock();
        if c.log.len() >= LOG_CAPACITY {
            c.log.pop_front();
            c.dropped += 1;
        }
        c.log.push_back(record);
    }

    pub fn log(&self) -> RequestLog {
        let c = self.lock();
        RequestLog {
            requests: c.log.iter().cloned().collect(),
            dropped: c.dropped,
        }
    }

    pub fn created(&self, kind: Kind, key: String) {
        let mut c = self.lock();
        let map = match kind {
            Kind::Org => &mut c.creates.orgs,
            Kind::User => &mut c.creates.users,
            Kind::Instance => &mut c.creates.instances,
            Kind::Ticket => &mut c.creates.tickets,
        };
        *map.entry(key).or_default() += 1;
    }

    pub fn fault(&self, kind: &str) {
        *self.lock().faults.entry(kind.to_owned()).or_default() += 1;
    }

    pub fn snapshot(&self, held: Held, duplicates: Held) -> SimStats {
        let c = self.lock();
        let max_creates_per_object = [
            &c.creates.orgs,
            &c.creates.users,
            &c.creates.instances,
            &c.creates.tickets,
        ]
        .into_iter()
        .flat_map(|m| m.values().copied())
        .max()
        .unwrap_or(0);
        SimStats {
            requests: c.requests.clone(),
            creates: c.creates.clone(),
            max_creates_per_object,
            held,
            duplicates,
            faults: c.faults.clone(),
        }
    }

    pub fn reset(&self) {
        *self.lock() = Counters::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_is_the_busiest_one_second_window() {
        let stats = Stats::default();
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // 3 requests in the first 100 ms, then 4 spread so that only 3 share any one second with others.
        for at in [0, 50, 100, 1_050, 1_500, 2_200, 2_900] {
            stats.request("GET", ms(at));
        }
        let snapshot = stats.snapshot(Held::default(), Held::default());
        assert_eq!(snapshot.requests.total, 7);
        assert_eq!(snapshot.requests.by_method["GET"], 7);
        assert_eq!(snapshot.requests.peak_per_second, 3);
        stats.created(Kind::Org, "acme".into());
        stats.created(Kind::Org, "acme".into());
        stats.created(Kind::Ticket, "k".into());
        let snapshot = stats.snapshot(Held::default(), Held::default());
        assert_eq!(snapshot.max_creates_per_object, 2);
        stats.reset();
        assert_eq!(stats.snapshot(Held::default(), Held::default()), SimStats::default());
    }

    #[test]
    fn the_log_keeps_when_each_request_arrived_and_how_it_ended() {
        let stats = Stats::default();
        let at = stats.started + Duration::from_millis(2_500);
        stats.ended("PUT", "/v1/orgs/acme", at, Some(429));
        stats.ended("GET", "/v1/info", at + Duration::from_millis(3_000), None);
        let log = stats.log();
        assert_eq!(log.dropped, 0);
        assert_eq!(
            log.requests[0],
            RequestRecord {
                at_ms: 2_500,
                method: "PUT".into(),
                path: "/v1/orgs/acme".into(),
                query: None,
                status: Some(429)
            }
        );
        assert_eq!((log.requests[1].at_ms, log.requests[1].status), (5_500, None));
        for _ in 0..LOG_CAPACITY {
            stats.ended("GET", "/v1/info", at, Some(200));
        }
        let log = stats.log();
        assert_eq!((log.requests.len(), log.dropped), (LOG_CAPACITY, 2));
        stats.reset();
        assert_eq!(stats.log(), RequestLog::default());
    }
}
