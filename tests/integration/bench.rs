//! Scale benchmarks (run with `make bench`; ignored by `make test`): how long N subscriptions take to become
//! Ready compared with the time the same API server needs for the writes the operator must make for them,
//! where those writes go (from the API server's audit log), how many endpoint requests they take, the
//! operator's memory and CPU, and a mixed run of customers, grants and support requests. They print figures
//! and assert nothing about speed: shared machines are noisy, so the ratio against baselines measured in the
//! same run is the figure to compare between runs. `NAVIGATOR_BENCH_OBJECTS` sets N (default 10,000).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Seek};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::world::{Conditions, Operator, RUN_LABEL, Simulator, World};

/// Writes in flight at once, for the user's applies and for every baseline.
const CONCURRENT_WRITES: usize = 32;
/// The bench's own writes carry this field manager (World::apply's), so the audit count can leave them out.
const OWN_FIELD_MANAGER: &str = "fieldManager=navigator-tests";
const CUSTOMERS: usize = 10;

fn objects() -> usize {
    std::env::var("NAVIGATOR_BENCH_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

fn per_second(count: usize, took: Duration) -> f64 {
    count as f64 / took.as_secs_f64()
}

/// The operator's peak and current resident memory (MiB) and CPU time (s), from /proc.
struct ProcessUse {
    peak_mib: f64,
    rss_mib: f64,
    /// Of the resident memory now: anonymous (heap, stacks) and file-backed (the binary's code and libraries).
    anon_mib: f64,
    file_mib: f64,
    cpu_seconds: f64,
}

fn process_use(pid: u32) -> Option<ProcessUse> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |field: &str| -> Option<f64> {
        status
            .lines()
            .find(|l| l.starts_with(field))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces): utime and stime are the 12th and 13th.
    let after_command: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = after_command.get(11)?.parse::<f64>().ok()? + after_command.get(12)?.parse::<f64>().ok()?;
    let hz: f64 = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);
    Some(ProcessUse {
        peak_mib: kib("VmHWM:")? / 1024.0,
        rss_mib: kib("VmRSS:")? / 1024.0,
        anon_mib: kib("RssAnon:")? / 1024.0,
        file_mib: kib("RssFile:")? / 1024.0,
        cpu_seconds: ticks / hz,
    })
}

/// When the bench's own watch first saw each object, and first saw it Ready.
#[derive(Default)]
struct Seen {
    created: HashMap<String, Instant>,
    ready: HashMap<String, Instant>,
}

/// A watch of the objects of kind `K` of this run, recording when each appears and when it is first Ready.
/// (Listing every few hundred milliseconds instead would load the API server with the very traffic being
/// measured.)
#[derive(Clone)]
struct Tracker {
    seen: Arc<Mutex<Seen>>,
}

impl Tracker {
    fn start<K>(api: Api<K>, run: &str) -> Self
    where
        K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Conditions + Send + Sync + 'static,
    {
        let tracker = Tracker { seen: Arc::default() };
        let seen = tracker.seen.clone();
        let config = watcher::Config::default().labels(&format!("{RUN_LABEL}={run}"));
        tokio::spawn(async move {
            let mut objects = watcher(api, config).default_backoff().applied_objects().boxed();
            while let Some(obj) = objects.next().await {
                let Ok(obj) = obj else { continue };
                let now = Instant::now();
                let mut seen = seen.lock().unwrap();
                let name = obj.name_any();
                if !seen.created.contains_key(&name) {
                    seen.created.insert(name.clone(), now);
                }
                if obj.is_ready() && !seen.ready.contains_key(&name) {
                    seen.ready.insert(name, now);
                }
            }
        });
        tracker
    }

    fn ready(&self) -> usize {
        self.seen.lock().unwrap().ready.len()
    }

    fn ready_at(&self, name: &str) -> Option<Instant> {
        self.seen.lock().unwrap().ready.get(name).copied()
    }

    /// Waits until `count` objects are Ready; answers when the last one was seen Ready.
    async fn until_ready(&self, count: usize, limit: Duration) -> Instant {
        let started = Instant::now();
        loop {
            {
                let seen = self.seen.lock().unwrap();
                if seen.ready.len() >= count {
                    return *seen.ready.values().max().expect("some Ready");
                }
            }
            assert!(
                started.elapsed() < limit,
                "only {} of {count} Ready after {limit:?}",
                self.ready()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Time from creation to Ready, p50 and p99, over the objects whose names pass `counted`.
    fn latencies(&self, counted: impl Fn(&str) -> bool) -> (Duration, Duration) {
        let seen = self.seen.lock().unwrap();
        let mut took: Vec<Duration> = seen
            .ready
            .iter()
            .filter(|(name, _)| counted(name))
            .filter_map(|(name, ready)| Some(ready.saturating_duration_since(*seen.created.get(name)?)))
            .collect();
        took.sort();
        let at = |q: f64| {
            took.get(((took.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or_default()
        };
        (at(0.5), at(0.99))
    }
}

/// The writes in the audit log from `offset` on to the objects this run owns (in `namespace` or its customer
/// namespaces, cluster-scoped, or named after `run`), not made by the bench itself nor by Kubernetes' own
/// controllers, counted by verb and resource. Benchmarks run one at a time, so these are the operator's.
fn audited_writes(offset: u64, namespace: &str, run: &str) -> BTreeMap<String, usize> {
    let path = crate::support::shared().audit_log();
    let mut file = std::fs::File::open(&path).expect("the audit log");
    file.seek(std::io::SeekFrom::Start(offset)).unwrap();
    let mut counts = BTreeMap::new();
    for line in std::io::BufReader::new(file).lines() {
        let Ok(line) = line else { break };
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let reference = &entry["objectRef"];
        let ns = reference["namespace"].as_str().unwrap_or_default();
        let name = reference["name"].as_str().unwrap_or_default();
        let ours = ns.is_empty() || ns == namespace || ns.starts_with(&format!("{namespace}-")) || name.contains(run);
        let by_kubernetes = entry["user"]["username"]
            .as_str()
            .unwrap_or_default()
            .starts_with("system:");
        let by_bench = entry["requestURI"]
            .as_str()
            .unwrap_or_default()
            .contains(OWN_FIELD_MANAGER);
        if !ours || by_kubernetes || by_bench {
            continue;
        }
        let resource = match reference["subresource"].as_str() {
            Some(sub) => format!("{}/{sub}", reference["resource"].as_str().unwrap_or_default()),
            None => reference["resource"].as_str().unwrap_or_default().to_string(),
        };
        *counts
            .entry(format!("{} {resource}", entry["verb"].as_str().unwrap_or_default()))
            .or_insert(0) += 1;
    }
    counts
}

fn audit_offset() -> u64 {
    std::fs::metadata(crate::support::shared().audit_log())
        .map(|m| m.len())
        .unwrap_or(0)
}

fn print_writes(counts: &BTreeMap<String, usize>, objects: usize) {
    let total: usize = counts.values().sum();
    println!(
        "  API writes by the operator: {total} = {:.2} per object",
        total as f64 / objects as f64
    );
    for (what, count) in counts {
        println!("    {what}: {count} = {:.2} per object", *count as f64 / objects as f64);
    }
}

/// Runs `write(i)` for `0..n`, `CONCURRENT_WRITES` at a time; answers how long it took.
async fn timed<F, Fut>(n: usize, write: F) -> Duration
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    stream::iter(0..n)
        .map(write)
        .buffer_unordered(CONCURRENT_WRITES)
        .collect::<Vec<_>>()
        .await;
    started.elapsed()
}

async fn namespace(client: &kube::Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("creating a bench namespace");
}

/// A subscription's status as the operator writes it once the instance is Ready (the same fields and
/// conditions, so the baseline's status writes weigh what the operator's do).
fn ready_status(name: &str, generation: i64) -> serde_json::Value {
    let now = jiff::Timestamp::now().to_string();
    let condition = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({"type": type_, "status": status, "reason": reason, "message": message,
               "lastTransitionTime": now, "observedGeneration": generation})
    };
    json!({
        "endpoint": "sim", "contract": "main", "externalId": format!("id-{name}"),
        "accessUrl": format!("https://{name}.t.simulator.navigator.test"), "state": "Ready",
        "observedGeneration": generation,
        "conditions": [
            condition("Ready", "True", "Available", &format!("compute instance {name} is ready on sim")),
            condition("Synced", "True", "ReconcileSuccess", ""),
            condition("Reconciling", "False", "ReconcileSuccess", ""),
            condition("Stalled", "False", "ReconcileSuccess", ""),
        ]
    })
}

/// The minimal writes, made by a plain client at the same concurrency: per object, the user's apply and
/// then what the operator must write (its finalizer, its Ready status, the Event of that transition), to
/// objects no operator watches. Answers how long the API server took for them.
async fn minimal_writes(client: &kube::Client, n: usize) -> Duration {
    let ns = format!("bench-minimal-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    namespace(client, &ns).await;
    let subs = Api::<navigator::api::CloudServiceSubscription>::namespaced(client.clone(), &ns);
    let events = Api::<Event>::namespaced(client.clone(), &ns);
    let finalizer = navigator::controllers::subscription::FINALIZER;
    timed(n, |i| {
        let (subs, events) = (subs.clone(), events.clone());
        async move {
            let name = format!("s{i:06}");
            let spec = json!({
                "apiVersion": "navigator.cloudpartner.io/v1alpha1", "kind": "CloudServiceSubscription",
                "metadata": {"name": name, "labels": {RUN_LABEL: "bench-minimal"}},
                "spec": {"customerOrgRef": {"name": "c0"}, "serviceType": "compute",
                         "resources": {"vcpu": 1, "memoryGiB": 2, "storageGiB": 20}}
            });
            let created = subs
                .patch(&name, &PatchParams::apply("bench-user").force(), &Patch::Apply(&spec))
                .await
                .expect("baseline apply");
            let with_finalizer =
                json!({"metadata": {"finalizers": [finalizer], "resourceVersion": created.resource_version()}});
            subs.patch(&name, &PatchParams::default(), &Patch::Merge(&with_finalizer))
                .await
                .expect("baseline finalizer");
            let status = json!({
                "apiVersion": "navigator.cloudpartner.io/v1alpha1", "kind": "CloudServiceSubscription",
                "status": ready_status(&name, created.metadata.generation.unwrap_or(1)),
            });
            subs.patch_status(&name, &PatchParams::apply("navigator").force(), &Patch::Apply(&status))
                .await
                .expect("baseline status");
            let event: Event = serde_json::from_value(json!({
                "metadata": {"name": format!("{name}.{:x}", jiff::Timestamp::now().as_nanosecond())},
                "eventTime": jiff::Timestamp::now().to_string(),
                "reportingController": "navigator", "reportingInstance": "navigator",
                "action": "Reconcile", "reason": "Available", "type": "Normal",
                "note": format!("compute instance {name} is ready on sim"),
                "regarding": {"apiVersion": "navigator.cloudpartner.io/v1alpha1", "kind": "CloudServiceSubscription",
                              "namespace": ns_of(&created), "name": name, "uid": created.uid()}
            }))
            .unwrap();
            events
                .create(&PostParams::default(), &event)
                .await
                .expect("baseline event");
        }
    })
    .await
}

fn ns_of<K: Resource>(obj: &K) -> String {
    obj.meta().namespace.clone().unwrap_or_default()
}

/// Plain ConfigMap creates: what the API server takes at this concurrency, with nothing else going on.
async fn plain_writes(client: &kube::Client, n: usize) -> Duration {
    let ns = format!("bench-plain-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    namespace(client, &ns).await;
    let maps = Api::<ConfigMap>::namespaced(client.clone(), &ns);
    timed(n, |i| {
        let maps = maps.clone();
        async move {
            let map: ConfigMap =
                serde_json::from_value(json!({"metadata": {"name": format!("cm-{i}")}, "data": {"k": "v"}})).unwrap();
            maps.create(&PostParams::default(), &map)
                .await
                .expect("baseline create");
        }
    })
    .await
}

/// The operator of a bench: logging at info (per-reconcile debug lines would be part of what is measured).
fn operator(world: &World) -> Operator {
    Operator::start_with(
        &format!("operator-{}", world.run),
        &world.run,
        &crate::support::shared().kubeconfig("admin"),
        &[],
        &[("RUST_LOG", "info,kube=warn")],
    )
}

fn print_process(operator: &Operator) {
    match operator.process.pid().and_then(process_use) {
        Some(u) => println!(
            "  operator: peak resident memory {:.1} MiB (now {:.1} MiB: {:.1} anonymous, {:.1} file-backed), CPU {:.1} s",
            u.peak_mib, u.rss_mib, u.anon_mib, u.file_mib, u.cpu_seconds
        ),
        None => println!("  operator memory and CPU: unknown (no /proc)"),
    }
}

#[tokio::test]
#[ignore = "benchmark: run with `make bench`"]
async fn scale_subscriptions_to_ready_against_the_apiserver_write_rate() {
    let n = objects();
    let client = crate::support::shared().client().await;

    let plain = plain_writes(&client, n).await;

    let simulator = Simulator::start("bench", &["--provision-seconds", "0"]).await;
    let world = World::new("bench", &simulator, 5000).await;
    let operator = operator(&world);
    for c in 0..CUSTOMERS {
        world.customer(&format!("c{c}"), "Delete").await;
    }
    world.all_ready(&world.customers(), Duration::from_secs(120)).await;
    let tracker = Tracker::start(world.subscriptions(), &world.run);
    let requests_before = simulator.stats().await.requests.total;
    let audit_from = audit_offset();
    let cpu_before = operator.process.pid().and_then(process_use).map(|u| u.cpu_seconds);

    let started = Instant::now();
    let applied = timed(n, |i| {
        let world = &world;
        async move {
            world
                .subscription(&format!("s{i:06}"), &format!("c{}", i % CUSTOMERS), 1)
                .await;
        }
    })
    .await;
    let last_ready = tracker.until_ready(n, Duration::from_secs(3 * 3600)).await;
    let all_ready = last_ready.duration_since(started);
    // The last status write's echo, and Events sent after it, land in the audit log just after.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes = audited_writes(audit_from, &world.namespace, &world.run);
    let requests = simulator.stats().await.requests.total - requests_before;
    let (p50, p99) = tracker.latencies(|_| true);
    let cpu = operator.process.pid().and_then(process_use).map(|u| u.cpu_seconds);

    // One more subscription while all the others exist, five times.
    let mut late = Vec::new();
    for i in 0..5 {
        let name = format!("late-{i}");
        let asked = Instant::now();
        world.subscription(&name, "c0", 1).await;
        let ready = loop {
            if let Some(at) = tracker.ready_at(&name) {
                break at;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        late.push(ready.duration_since(asked));
    }
    late.sort();

    // The operator's own writes, by a plain client, once the run above is done (so they do not share the
    // API server with it).
    let minimal = minimal_writes(&client, n).await;

    println!("scale benchmark: {n} subscriptions on {CUSTOMERS} customers, {CONCURRENT_WRITES} writes in flight");
    println!(
        "  plain-write baseline: {n} ConfigMap creates in {plain:.2?} = {:.0}/s",
        per_second(n, plain)
    );
    println!(
        "  minimal-writes baseline: {n} x (apply, finalizer, Ready status, Event) by a plain client in {minimal:.2?} = {:.0} objects/s",
        per_second(n, minimal)
    );
    println!("  applied in {applied:.2?} = {:.0}/s", per_second(n, applied));
    println!(
        "  all Ready {all_ready:.2?} after the first apply = {:.0}/s; {:.2} x the minimal-writes time",
        per_second(n, all_ready),
        all_ready.as_secs_f64() / minimal.as_secs_f64()
    );
    println!("  creation to Ready: p50 {p50:.2?}, p99 {p99:.2?}");
    println!(
        "  one more subscription to Ready while {n} exist: median {:.2?}, max {:.2?}",
        late[2], late[4]
    );
    print_writes(&writes, n);
    println!(
        "  endpoint requests: {requests} = {:.2} per object",
        requests as f64 / n as f64
    );
    if let (Some(before), Some(after)) = (cpu_before, cpu) {
        println!(
            "  operator CPU for the {n}: {:.1} s = {:.2} ms per object",
            after - before,
            (after - before) * 1000.0 / n as f64
        );
    }
    print_process(&operator);
}

#[tokio::test]
#[ignore = "benchmark: run with `make bench`"]
async fn scale_mixed_customers_grants_and_support_requests() {
    // A tenth of N of each kind: customers, the grants on them, and support requests about them.
    let n = (objects() / 10).max(10);
    let simulator = Simulator::start("mixed", &["--provision-seconds", "0"]).await;
    let world = World::new("mixed", &simulator, 5000).await;
    world
        .apply::<navigator::api::ProviderOrg>(None, json!({
            "metadata": {"name": world.namespace},
            "spec": {"displayName": format!("Provider {}", world.run), "partnerTypes": ["CloudProvider"], "namespace": world.namespace,
                     "support": {"supportEndpointRef": {"name": world.endpoint}, "responseTimes": {"major": "2h"}}}
        }))
        .await;
    let operator = operator(&world);
    operator.until_ready(Duration::from_secs(60)).await;
    let customers = Tracker::start(world.customers(), &world.run);
    let grants = Tracker::start(world.grants(), &world.run);
    let requests = Tracker::start(world.support_requests(), &world.run);
    let requests_before = simulator.stats().await.requests.total;
    let audit_from = audit_offset();

    let started = Instant::now();
    let applied = timed(n, |i| {
        let world = &world;
        async move {
            let customer = format!("m{i:05}");
            world.customer(&customer, "Delete").await;
            world
                .customer_grant(
                    &format!("{customer}-admin"),
                    &format!("u{i}"),
                    "CustomerAdministrator",
                    &customer,
                )
                .await;
            world.support_request(&format!("{customer}-case"), &customer).await;
        }
    })
    .await;
    let limit = Duration::from_secs(3 * 3600);
    let last = [
        customers.until_ready(n, limit).await,
        grants.until_ready(n, limit).await,
        requests.until_ready(n, limit).await,
    ];
    let all_ready = last.iter().max().unwrap().duration_since(started);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes = audited_writes(audit_from, &world.namespace, &world.run);
    let endpoint_requests = simulator.stats().await.requests.total - requests_before;

    println!("mixed benchmark: {n} customers, {n} grants, {n} support requests, {CONCURRENT_WRITES} writes in flight");
    println!(
        "  applied in {applied:.2?} = {:.0} objects/s",
        per_second(3 * n, applied)
    );
    println!(
        "  all Ready {all_ready:.2?} after the first apply = {:.0} objects/s",
        per_second(3 * n, all_ready)
    );
    for (kind, tracker) in [
        ("customers", &customers),
        ("grants", &grants),
        ("support requests", &requests),
    ] {
        let (p50, p99) = tracker.latencies(|_| true);
        println!("  {kind}: creation to Ready p50 {p50:.2?}, p99 {p99:.2?}");
    }
    print_writes(&writes, 3 * n);
    println!(
        "  endpoint requests: {endpoint_requests} = {:.2} per object",
        endpoint_requests as f64 / (3 * n) as f64
    );
    print_process(&operator);
}
