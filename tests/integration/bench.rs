//! Scale benchmark (run with `make bench`; ignored by `make test`): how fast subscriptions reach Ready
//! compared with how fast the same API server accepts plain writes, how long one new subscription takes to
//! become Ready while many exist, and the operator's memory. It prints figures and asserts nothing about
//! speed: shared machines are noisy, so the ratio against a baseline measured in the same run is the figure
//! to compare between runs.

use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};

use crate::support::fresh_namespace;
use crate::world::{Conditions, Operator, RUN_LABEL, Simulator, World};

const CONCURRENT_WRITES: usize = 32;

fn objects() -> usize {
    std::env::var("NAVIGATOR_BENCH_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

async fn ready_count(world: &World) -> usize {
    let params = ListParams::default().labels(&format!("{RUN_LABEL}={}", world.run));
    match world.subscriptions().list(&params).await {
        Ok(list) => list.items.iter().filter(|s| s.is_ready()).count(),
        Err(_) => 0,
    }
}

#[tokio::test]
#[ignore = "benchmark: run with `make bench`"]
async fn scale_subscriptions_to_ready_against_the_apiserver_write_rate() {
    let n = objects();
    let customers = 10;

    // Baseline: plain ConfigMap creates at the same concurrency, on the same API server, in this run.
    let client = crate::support::shared().client().await;
    let namespace = fresh_namespace(&client, "bench-baseline").await;
    let maps = Api::<ConfigMap>::namespaced(client.clone(), &namespace);
    let started = Instant::now();
    stream::iter(0..n)
        .map(|i| {
            let maps = maps.clone();
            async move {
                let map: ConfigMap = serde_json::from_value(
                    serde_json::json!({"metadata": {"name": format!("cm-{i}")}, "data": {"k": "v"}}),
                )
                .unwrap();
                maps.create(&PostParams::default(), &map)
                    .await
                    .expect("baseline create");
            }
        })
        .buffer_unordered(CONCURRENT_WRITES)
        .collect::<Vec<_>>()
        .await;
    let baseline = started.elapsed();

    let simulator = Simulator::start("bench", &["--provision-seconds", "0"]).await;
    let world = World::new("bench", &simulator, 5000).await;
    let operator = Operator::start(&world.run);
    for c in 0..customers {
        world.customer(&format!("c{c}"), "Delete").await;
    }
    world.all_ready(&world.customers(), Duration::from_secs(120)).await;

    let started = Instant::now();
    stream::iter(0..n)
        .map(|i| {
            let world = &world;
            async move {
                world
                    .subscription(&format!("s{i:05}"), &format!("c{}", i % customers), 1)
                    .await
            }
        })
        .buffer_unordered(CONCURRENT_WRITES)
        .collect::<Vec<_>>()
        .await;
    let applied = started.elapsed();
    while ready_count(&world).await < n {
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "subscriptions did not all become Ready in 30 minutes"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let all_ready = started.elapsed();

    // Latency of one more subscription while the others exist.
    let subs = world.subscriptions();
    let mut latencies = Vec::new();
    for i in 0..5 {
        let name = format!("late-{i}");
        let started = Instant::now();
        world.subscription(&name, "c0", 1).await;
        loop {
            if subs.get(&name).await.is_ok_and(|s| s.is_ready()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let rss = operator.process.pid().and_then(rss_mib);

    let per_second = |count: usize, took: Duration| count as f64 / took.as_secs_f64();
    println!("scale benchmark, {n} subscriptions on {customers} customers, {CONCURRENT_WRITES} concurrent writes:");
    println!(
        "  baseline: {n} ConfigMap creates in {baseline:.2?} = {:.0}/s",
        per_second(n, baseline)
    );
    println!(
        "  subscriptions applied in {applied:.2?} = {:.0}/s",
        per_second(n, applied)
    );
    println!("  all Ready after {all_ready:.2?} = {:.0}/s", per_second(n, all_ready));
    println!(
        "  Ready rate / baseline write rate = {:.2}",
        baseline.as_secs_f64() / all_ready.as_secs_f64()
    );
    println!(
        "  one more subscription to Ready while {n} exist: median {:.2?}, max {:.2?}",
        latencies[2], latencies[4]
    );
    match rss {
        Some(mib) => println!("  operator resident memory: {mib:.1} MiB"),
        None => println!("  operator resident memory: unknown (no /proc)"),
    }
}
