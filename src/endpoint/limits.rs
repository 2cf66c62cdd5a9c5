//! Per-endpoint request limits: a rate limit (requests per second) and a cap on requests in flight.
//!
//! The endpoint counts a request when it arrives, and the client cannot see that moment: it lies somewhere
//! between the request's start and its answer. So a request holds its place in the rate limit from its
//! start until one second after its answer (or failure), and a new request starts only while fewer than
//! `limit` requests are in flight or answered within the last second. Then any `limit + 1` arrivals at the
//! endpoint are at least a second apart, whatever the network did: a guarantee, not a margin. (A token
//! bucket cannot give it: with rate `n` and burst `n` it lets almost `2n` requests through in one second.)
//! The price is small: answers that take `L` seconds lower the most a driver sends to `limit / (1 + L)`
//! per second.
//!
//! A new limiter starts as if its last window had been fully used: its first request starts one window
//! after it was made. A restarted operator knows nothing of what the killed one sent, so an empty start
//! could add a whole window's worth on top of what the old one sent in its last second (kills in quick
//! succession doubled the rate the endpoint saw). A restart takes far longer than a request's flight, so
//! every request of the old process has arrived before the new one makes its limiter, and no window of
//! the endpoint's clock sees requests of both. The price: up to one window (a second) of delay whenever a
//! driver is made (at start, and when its endpoint or Secret changed).
//!
//! When the endpoint says "come back after T" (429, or 503 with Retry-After), no call to it starts
//! before T, whichever object it is for: an endpoint that throttles is throttling this client.
//!
//! Callers never queue for long: when no place frees within `max_wait`, the caller gets back how long to
//! wait and the call ends `Throttled`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The window the endpoint's rate limit counts in.
pub const RATE_WINDOW: Duration = Duration::from_secs(1);

/// The bookkeeping, without a clock of its own (tests pass the time).
#[derive(Debug)]
pub struct Window {
    limit: usize,
    max_concurrent: usize,
    window: Duration,
    in_flight: usize,
    /// When answers arrived, oldest first, for those still within the window.
    answered: VecDeque<Instant>,
    /// No request starts before this (the endpoint's Retry-After).
    held_until: Option<Instant>,
}

impl Window {
    /// A window made at `now`, as if `limit` answers had just arrived: the first request starts one
    /// window later (see the module's comment on restarts).
    pub fn new(limit: u32, max_concurrent: usize, window: Duration, now: Instant) -> Self {
        let limit = limit.max(1) as usize;
        Window {
            limit,
            max_concurrent: max_concurrent.max(1),
            window,
            in_flight: 0,
            answered: std::iter::repeat_n(now, limit).collect(),
            held_until: None,
        }
    }

    /// Starts nothing before `until` (a later hold already in place stays).
    pub fn hold_until(&mut self, until: Instant) {
        self.held_until = self.held_until.max(Some(until));
    }

    fn forget_old(&mut self, now: Instant) {
        while self.answered.front().is_some_and(|&t| t + self.window <= now) {
            self.answered.pop_front();
        }
    }

    /// Starts a request at `now` if the limits allow; otherwise answers when a place frees by time alone
    /// (`None`: only when a request in flight ends).
    pub fn try_start(&mut self, now: Instant) -> Result<(), Option<Instant>> {
        self.forget_old(now);
        if let Some(until) = self.held_until.filter(|&until| until > now) {
            return Err(Some(until));
        }
        if self.in_flight < self.max_concurrent && self.in_flight + self.answered.len() < self.limit {
            self.in_flight += 1;
            return Ok(());
        }
        if self.in_flight >= self.max_concurrent {
            return Err(None);
        }
        Err(self.answered.front().map(|&t| t + self.window))
    }

    /// A request that started ended (answered, failed or abandoned) at `now`.
    pub fn finish(&mut self, now: Instant) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.forget_old(now);
        self.answered.push_back(now);
    }
}

#[derive(Debug)]
struct Shared {
    window: Mutex<Window>,
    ended: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The limits of one endpoint, shared by every call to it.
#[derive(Debug, Clone)]
pub struct Limits {
    shared: Arc<Shared>,
    max_wait: Duration,
}

/// Held while a request is in flight; dropping it records that the request ended.
#[derive(Debug)]
pub struct Slot {
    shared: Arc<Shared>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.lock().finish(Instant::now());
        self.shared.ended.notify_waiters();
    }
}

impl Limits {
    pub fn new(rate_limit_per_second: u32, max_concurrent: usize, max_wait: Duration) -> Self {
        let window = Window::new(rate_limit_per_second, max_concurrent, RATE_WINDOW, Instant::now());
        Limits {
            shared: Arc::new(Shared {
                window: Mutex::new(window),
                ended: Notify::new(),
            }),
            max_wait,
        }
    }

    /// Holds every request to this endpoint until `until` (the endpoint asked to come back then).
    pub fn hold_until(&self, until: Instant) {
        self.shared.lock().hold_until(until);
    }

    /// Waits (at most `max_wait`) until a request may start; `Err` carries how long to come back after.
    pub async fn acquire(&self) -> Result<Slot, Duration> {
        let deadline = Instant::now() + self.max_wait;
        loop {
            // Registered before looking, so an end between the look and the wait is not missed.
            let ended = self.shared.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            let now = Instant::now();
            let frees_at = match self.shared.lock().try_start(now) {
                Ok(()) => {
                    return Ok(Slot {
                        shared: self.shared.clone(),
                    });
                }
                Err(frees_at) => frees_at,
            };
            if now >= deadline || frees_at.is_some_and(|at| at > deadline) {
                let wait = frees_at.map_or(Duration::from_secs(1), |at| at - now);
                return Err(wait.max(Duration::from_millis(100)));
            }
            let wake = frees_at.map_or(deadline, |at| at.min(deadline));
            tokio::select! {
                _ = &mut ended => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    /// A window made a second before `t0`, so its start-up wait is over at `t0`.
    fn settled(limit: u32, max_concurrent: usize) -> (Window, Instant) {
        let made = Instant::now();
        let window = Duration::from_secs(1);
        (Window::new(limit, max_concurrent, window, made), made + window)
    }

    #[test]
    fn a_request_holds_its_place_until_a_second_after_its_answer() {
        let (mut w, t0) = settled(2, 10);
        assert_eq!(w.try_start(t0), Ok(()));
        assert_eq!(w.try_start(t0), Ok(()));
        // Both in flight: nothing frees by time alone.
        assert_eq!(w.try_start(t0), Err(None));
        w.finish(ms(t0, 300));
        // Answered at 300 ms: its place frees at 1300 ms.
        assert_eq!(w.try_start(ms(t0, 400)), Err(Some(ms(t0, 1_300))));
        assert_eq!(w.try_start(ms(t0, 1_300)), Ok(()));
    }

    #[test]
    fn concurrency_is_capped_apart_from_the_rate() {
        let (mut w, t0) = settled(100, 1);
        assert_eq!(w.try_start(t0), Ok(()));
        assert_eq!(w.try_start(t0), Err(None));
        w.finish(t0);
        assert_eq!(w.try_start(t0), Ok(()));
    }

    /// Whatever the delays, no window of the endpoint's clock sees more than the limit.
    #[test]
    fn arrivals_never_exceed_the_limit_in_any_second() {
        let (mut w, t0) = settled(3, 10);
        let mut arrivals: Vec<Instant> = Vec::new();
        let mut answers_due: Vec<Instant> = Vec::new();
        let mut now = t0;
        for i in 0..60u64 {
            // Try every 10 ms until a place is free, recording answers as their time comes.
            loop {
                answers_due.sort();
                while answers_due.first().is_some_and(|&a| a <= now) {
                    w.finish(answers_due.remove(0));
                }
                if w.try_start(now).is_ok() {
                    break;
                }
                now += Duration::from_millis(10);
            }
            // Arrival delays cycle through 0..=400 ms, answers take up to 200 ms more.
            let arrival = now + Duration::from_millis((i * 137) % 401);
            arrivals.push(arrival);
            answers_due.push(arrival + Duration::from_millis((i * 53) % 200));
        }
        for &start in &arrivals {
            let in_window = arrivals
                .iter()
                .filter(|&&a| a >= start && a < start + Duration::from_secs(1))
                .count();
            assert!(in_window <= 3, "{in_window} arrivals within one second");
        }
    }

    /// Sends as fast as the window allows from `from` until `to`, answers arriving at once; returns the
    /// arrivals.
    fn send_flat_out(w: &mut Window, from: Instant, to: Instant) -> Vec<Instant> {
        let mut arrivals = Vec::new();
        let mut now = from;
        while now < to {
            match w.try_start(now) {
                Ok(()) => {
                    arrivals.push(now);
                    w.finish(now);
                }
                Err(_) => now += Duration::from_millis(10),
            }
        }
        arrivals
    }

    fn busiest_second(arrivals: &[Instant]) -> usize {
        arrivals
            .iter()
            .map(|&start| {
                arrivals
                    .iter()
                    .filter(|&&a| a >= start && a < start + Duration::from_secs(1))
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    /// A process killed while sending flat out and restarted at once (its new window knows nothing of
    /// the old one): the endpoint still sees at most the limit in any one second.
    #[test]
    fn a_restart_never_exceeds_the_limit_across_it() {
        let t0 = Instant::now();
        let mut old = Window::new(5, 10, Duration::from_secs(1), t0);
        let mut arrivals = send_flat_out(&mut old, t0, ms(t0, 2_500));
        // Killed at 2.5 s, the new process makes its window 100 ms later.
        let mut new = Window::new(5, 10, Duration::from_secs(1), ms(t0, 2_600));
        let after_restart = send_flat_out(&mut new, ms(t0, 2_600), ms(t0, 5_000));
        assert!(after_restart.iter().all(|&a| a >= ms(t0, 3_600)), "{after_restart:?}");
        arrivals.extend(after_restart);
        assert_eq!(busiest_second(&arrivals), 5);
    }

    #[test]
    fn a_hold_stops_every_start_until_it_ends() {
        let (mut w, t0) = settled(100, 10);
        assert_eq!(w.try_start(t0), Ok(()));
        w.finish(t0);
        w.hold_until(ms(t0, 3_000));
        // A shorter hold said later does not shorten it.
        w.hold_until(ms(t0, 1_000));
        assert_eq!(w.try_start(ms(t0, 10)), Err(Some(ms(t0, 3_000))));
        assert_eq!(w.try_start(ms(t0, 2_999)), Err(Some(ms(t0, 3_000))));
        assert_eq!(w.try_start(ms(t0, 3_000)), Ok(()));
    }

    #[tokio::test]
    async fn a_new_limiter_waits_out_a_window_and_gives_up_instead_of_queueing_long() {
        let limits = Limits::new(1, 4, Duration::from_millis(50));
        // Just made, as if its last second had been fully used: the first place frees in a second, later
        // than the caller can wait.
        match limits.acquire().await {
            Err(wait) => assert!(wait > Duration::from_millis(800), "{wait:?}"),
            Ok(_) => panic!("a new limiter let a request through at once"),
        }
    }

    #[tokio::test]
    async fn a_waiter_starts_when_a_request_in_flight_ends() {
        let limits = Limits::new(100, 1, Duration::from_secs(30));
        let held = limits.acquire().await.unwrap();
        let waiter = {
            let limits = limits.clone();
            tokio::spawn(async move { limits.acquire().await.map(drop) })
        };
        tokio::task::yield_now().await;
        drop(held);
        assert!(waiter.await.unwrap().is_ok());
    }
}
