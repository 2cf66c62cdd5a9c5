//! The endpoint's word on how hard to push it, kept end to end: a Retry-After holds the object's next
//! call until it has passed (not just the retries inside one call), and restarting the operator never
//! pushes the endpoint past its rate limit.

use std::collections::BTreeMap;
use std::time::Duration;

use navigator::endpoint::Secret;
use navigator::simulator::stats::RequestRecord;
use navigator::simulator::{FaultPatch, SimControl};
use rand::RngExt;

use crate::support::eventually;
use crate::world::{Operator, Simulator, TOKEN, World};

const WAIT: Duration = Duration::from_secs(120);

/// Every time a path was answered 429 with `retry_after` and then requested again sooner, as
/// `(path, answered at ms, next arrival at ms)`.
fn came_back_too_soon(log: &[RequestRecord], retry_after: Duration) -> Vec<(String, u64, u64)> {
    let mut by_path: BTreeMap<&str, Vec<&RequestRecord>> = BTreeMap::new();
    for record in log {
        by_path.entry(&record.path).or_default().push(record);
    }
    let wait = retry_after.as_millis() as u64;
    let mut too_soon = Vec::new();
    for (path, mut records) in by_path {
        records.sort_by_key(|r| r.at_ms);
        for pair in records.windows(2) {
            let (throttled, next) = (pair[0], pair[1]);
            if throttled.status == Some(429) && next.at_ms < throttled.at_ms + wait {
                too_soon.push((path.to_owned(), throttled.at_ms, next.at_ms));
            }
        }
    }
    too_soon
}

#[tokio::test]
async fn a_throttled_object_waits_out_retry_after_between_reconciles_then_becomes_ready() {
    let simulator = Simulator::start("retry-after", &["--provision-seconds", "0"]).await;
    let control = SimControl::new(&simulator.url, Secret::new(TOKEN));
    let world = World::new("retry-after", &simulator, 50).await;
    let _operator = Operator::start(&world.run);
    world.customer("r1", "Delete").await;
    world.all_ready(&world.customers(), WAIT).await;

    // From now on every request is answered 429 with Retry-After: 3. One call tries twice within its
    // retry budget (0 s and 3 s) and gives up; the object's own backoff after that is about 1 s.
    let retry_after = Duration::from_secs(3);
    control
        .set_faults(&FaultPatch {
            rate_429: Some(1.0),
            retry_after_seconds: Some(retry_after.as_secs()),
            ..FaultPatch::default()
        })
        .await
        .unwrap();
    world.subscription("r1-web", "r1", 1).await;
    let path = format!("/v1/orgs/{}/instances/r1-web", world.tenant("r1"));
    let throttled = |log: &[RequestRecord]| log.iter().filter(|r| r.path == path && r.status == Some(429)).count();
    // Four throttled tries of the subscription: at least one reconcile gave up and came back.
    eventually(WAIT, "the subscription's calls to be throttled four times", || async {
        let log = control.requests().await.ok()?;
        (throttled(&log.requests) >= 4).then_some(())
    })
    .await;

    control.set_faults(&FaultPatch::none()).await.unwrap();
    world.all_ready(&world.subscriptions(), WAIT).await;

    let log = control.requests().await.unwrap();
    assert_eq!(log.dropped, 0);
    assert!(throttled(&log.requests) >= 4);
    let too_soon = came_back_too_soon(&log.requests, retry_after);
    assert!(
        too_soon.is_empty(),
        "requested again before the Retry-After of {retry_after:?} had passed (path, 429 at ms, next at ms): {too_soon:?}"
    );
}

#[tokio::test]
async fn restarting_the_operator_in_quick_succession_stays_within_the_endpoints_rate_limit() {
    let rate_limit = 20;
    let simulator = Simulator::start("restarts", &["--provision-seconds", "2"]).await;
    let world = World::new("restarts", &simulator, rate_limit).await;
    let mut operator = Operator::start(&world.run);
    let customers = ["k1", "k2"];
    for customer in customers {
        world.customer(customer, "Delete").await;
    }
    for i in 0..30 {
        for customer in customers {
            world.subscription(&format!("{customer}-{i:03}"), customer, 1).await;
        }
    }
    // Every restart finds work pending: each new process reconciles everything from a fresh list, and
    // would start with a whole second's worth of requests on top of what the killed one just sent.
    eventually(WAIT, "the operator to be busy with the endpoint", || async {
        (simulator.stats().await.requests.total >= u64::from(rate_limit)).then_some(())
    })
    .await;
    for _ in 0..6 {
        operator.process.kill();
        operator.process.start();
        // Long enough for the new process to get going, short enough that it is still busy when killed.
        let wait = rand::rng().random_range(1_500..2_500);
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
    let ready = world.all_ready(&world.subscriptions(), Duration::from_secs(300)).await;
    assert_eq!(ready, 60);

    let stats = simulator.stats().await;
    println!(
        "restart test: 6 restarts, {} requests, peak {}/s (limit {rate_limit})",
        stats.requests.total, stats.requests.peak_per_second
    );
    assert!(
        stats.requests.peak_per_second <= u64::from(rate_limit),
        "the simulator saw {} requests in one second across restarts, above the endpoint's limit {rate_limit}",
        stats.requests.peak_per_second
    );
}
