//! The simulator driven through the real Http driver, in process, on an ephemeral loopback port.
//! Assertions count things (states, creates, requests); waits are bounded polls, never timings.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use rust_decimal::{Decimal, RoundingStrategy};

use super::*;
use crate::endpoint::*;

fn quick() -> SimulatorConfig {
    SimulatorConfig {
        provision_time: Duration::from_millis(300),
        ..SimulatorConfig::default()
    }
}

fn driver(sim: &RunningSimulator) -> HttpDriver {
    HttpDriver::new(sim.driver_config()).unwrap()
}

fn compute(vcpu: u32, memory_gib: u32, storage_gib: u32) -> InstanceDesired {
    InstanceDesired {
        service_type: "compute".into(),
        resources: Resources {
            vcpu,
            memory_gib,
            storage_gib,
        },
        parameters: [("image".to_owned(), "debian-13".to_owned())].into(),
    }
}

fn org(display_name: &str) -> OrgDesired {
    OrgDesired {
        display_name: display_name.into(),
        enabled: true,
    }
}

/// Polls until `check` holds (at most about a minute, so a slow machine only makes it slower).
async fn eventually<T, F, Fut>(what: &str, mut probe: F, check: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = DriverResult<T>>,
{
    for _ in 0..600 {
        match probe().await {
            Ok(value) if check(&value) => return value,
            Ok(_) => {}
            Err(e) if e.is_retryable() => {}
            Err(e) => panic!("{what}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: never happened");
}

/// What the reconciler does with a retryable error: come back later (here: soon).
async fn converge<T, F, Fut>(what: &str, mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = DriverResult<T>>,
{
    for _ in 0..500 {
        match call().await {
            Ok(value) => return value,
            Err(e) if e.is_retryable() => {
                let wait = e
                    .retry_after()
                    .unwrap_or(Duration::from_millis(50))
                    .min(Duration::from_secs(1));
                tokio::time::sleep(wait).await;
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
    panic!("{what}: did not converge");
}

#[tokio::test]
async fn orgs_users_and_instances_round_trip() {
    let sim = spawn(quick()).await.unwrap();
    let d = driver(&sim);

    let info = d.info().await.unwrap();
    assert_eq!(info.api_version, "v1");
    let compute_type = info.service_types.iter().find(|t| t.name == "compute").unwrap();
    let metrics: Vec<&str> = compute_type.metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(metrics, ["vcpu-hours", "memory-gib-hours", "storage-gib-hours"]);

    // Organisations: create, repeat, update, suspend.
    assert_eq!(d.observe_org("acme").await.unwrap(), None);
    let created = d.apply_org("acme", &org("Acme")).await.unwrap();
    assert_eq!((created.state, created.name.as_str()), (OrgState::Active, "acme"));
    let again = d.apply_org("acme", &org("Acme")).await.unwrap();
    assert_eq!(
        again.external_id, created.external_id,
        "a repeated create is the same org"
    );
    let renamed = d.apply_org("acme", &org("Acme Corporation")).await.unwrap();
    assert!(renamed.is_up_to_date(&org("Acme Corporation")));
    let suspended = d
        .apply_org(
            "acme",
            &OrgDesired {
                enabled: false,
                ..org("Acme Corporation")
            },
        )
        .await
        .unwrap();
    assert_eq!(suspended.state, OrgState::Suspended);
    assert_eq!(d.observe_org("acme").await.unwrap().unwrap().state, OrgState::Suspended);
    d.apply_org("acme", &org("Acme Corporation")).await.unwrap();

    // Users: invited, then active; role change; delete.
    let alice = UserDesired {
        email: "alice@acme.example".into(),
        role: "OrganizationUser".into(),
    };
    let user = d.apply_user("acme", "alice", &alice).await.unwrap();
    assert_eq!(user.state, UserState::Invited);
    eventually(
        "alice active",
        || d.observe_user("acme", "alice"),
        |u| u.as_ref().unwrap().state == UserState::Active,
    )
    .await;
    let admin = UserDesired {
        role: "OrganizationAdministrator".into(),
        ..alice.clone()
    };
    assert!(
        d.apply_user("acme", "alice", &admin)
            .await
            .unwrap()
            .is_up_to_date(&admin)
    );
    assert!(matches!(
        d.apply_user(
            "acme",
            "bob",
            &UserDesired {
                role: "Root".into(),
                ..alice.clone()
            }
        )
        .await,
        Err(DriverError::Invalid { .. })
    ));
    assert!(matches!(
        d.apply_user("nobody", "alice", &alice).await,
        Err(DriverError::NotFound { .. })
    ));
    assert_eq!(d.delete_user("acme", "alice").await.unwrap(), Deletion::Gone);
    assert_eq!(d.observe_user("acme", "alice").await.unwrap(), None);
    assert_eq!(d.delete_user("acme", "alice").await.unwrap(), Deletion::Gone);

    // Instances: provisioning completes by itself; an update goes through Updating.
    let small = compute(2, 4, 20);
    let instance = d.apply_instance("acme", "web", &small).await.unwrap();
    assert_eq!(instance.state, InstanceState::Provisioning);
    assert!(instance.is_up_to_date(&small));
    let ready = eventually(
        "web ready",
        || d.observe_instance("acme", "web"),
        |i| i.as_ref().unwrap().state == InstanceState::Ready,
    )
    .await
    .unwrap();
    assert_eq!(ready.external_id, instance.external_id);
    assert!(ready.access_url.is_some());
    assert_eq!(
        d.apply_instance("acme", "web", &small).await.unwrap().state,
        InstanceState::Ready,
        "no change"
    );
    let large = compute(8, 32, 20);
    assert_eq!(
        d.apply_instance("acme", "web", &large).await.unwrap().state,
        InstanceState::Updating
    );
    eventually(
        "web resized",
        || d.observe_instance("acme", "web"),
        |i| i.as_ref().unwrap().state == InstanceState::Ready,
    )
    .await;
    let mut other_type = large.clone();
    other_type.service_type = "kubernetes".into();
    assert!(matches!(
        d.apply_instance("acme", "web", &other_type).await,
        Err(DriverError::Invalid { .. })
    ));
    let mut unknown = large.clone();
    unknown.service_type = "mainframe".into();
    match d.apply_instance("acme", "db", &unknown).await {
        Err(DriverError::Invalid { message }) => assert!(message.contains("serviceType"), "{message}"),
        other => panic!("expected Invalid, got {other:?}"),
    }

    // Deleting: asynchronous; the org cannot go before its instances.
    assert_eq!(d.delete_instance("acme", "web").await.unwrap(), Deletion::InProgress);
    assert_eq!(
        d.delete_instance("acme", "web").await.unwrap(),
        Deletion::InProgress,
        "repeat is harmless"
    );
    assert!(matches!(
        d.apply_instance("acme", "web", &large).await,
        Err(DriverError::Conflict { .. })
    ));
    match d.delete_org("acme").await {
        Err(e @ DriverError::Conflict { .. }) => assert!(e.is_retryable()),
        other => panic!("expected Conflict, got {other:?}"),
    }
    eventually("web gone", || d.observe_instance("acme", "web"), Option::is_none).await;
    assert_eq!(d.delete_instance("acme", "web").await.unwrap(), Deletion::Gone);
    assert_eq!(d.delete_org("acme").await.unwrap(), Deletion::Gone);
    assert_eq!(d.observe_org("acme").await.unwrap(), None);
    assert_eq!(d.delete_org("acme").await.unwrap(), Deletion::Gone);

    let stats = sim.control().stats().await.unwrap();
    assert_eq!(stats.creates.orgs["acme"], 1);
    assert_eq!(stats.creates.instances["acme/web"], 1);
    assert_eq!(stats.held.orgs + stats.held.instances, 0);

    // Wrong credentials are Unauthorized, not retryable.
    let wrong = HttpDriver::new(HttpDriverConfig::new(sim.url(), "wrong-token")).unwrap();
    match wrong.info().await {
        Err(e @ DriverError::Unauthorized { .. }) => assert!(!e.is_retryable()),
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    sim.stop().await.unwrap();
}

/// Resource × seconds → hours, as the contract rounds them.
fn hours(resource_seconds: i64) -> Decimal {
    (Decimal::from(resource_seconds) / Decimal::from(3_600))
        .round_dp_with_strategy(6, RoundingStrategy::MidpointNearestEven)
        .normalize()
}

#[tokio::test]
async fn usage_for_a_past_window_is_resources_times_hours() {
    let sim = spawn(SimulatorConfig {
        provision_time: Duration::from_secs(2),
        ..SimulatorConfig::default()
    })
    .await
    .unwrap();
    let control = sim.control();
    let d = driver(&sim);
    let t0: Timestamp = "2025-03-01T00:00:00Z".parse().unwrap();
    let h = |hours: i64| t0 + SignedDuration::from_hours(hours);

    control.apply_org_at(t0, "acme", &org("Acme")).await.unwrap();
    control
        .apply_instance_at(h(1), "acme", "web", &compute(2, 4, 10))
        .await
        .unwrap();
    control
        .apply_instance_at(h(5), "acme", "web", &compute(4, 4, 10))
        .await
        .unwrap();
    control.delete_instance_at(h(11), "acme", "web").await.unwrap();
    // Changing the past of an instance is refused.
    assert!(
        control
            .apply_instance_at(h(10), "acme", "web", &compute(1, 1, 1))
            .await
            .is_err()
    );

    let day = UsageWindow::new(t0, h(24)).unwrap();
    let records = d.usage("acme", day).await.unwrap();
    let quantity = |metric: &str| records.iter().find(|r| r.metric == metric).unwrap().quantity;
    // Ready 2 s after each change; billed until the delete request.
    let (ready, resized, deleted) = (3600 + 2, 5 * 3600 + 2, 11 * 3600);
    assert_eq!(
        quantity("vcpu-hours"),
        hours(2 * (resized - ready) + 4 * (deleted - resized))
    );
    assert_eq!(quantity("memory-gib-hours"), hours(4 * (deleted - ready)));
    assert_eq!(quantity("storage-gib-hours"), hours(10 * (deleted - ready)));
    assert_eq!(quantity("vcpu-hours").to_string(), "31.997778");
    assert!(
        records
            .iter()
            .all(|r| r.instance == "web" && r.service_type == "compute")
    );
    assert_eq!(
        records.iter().find(|r| r.metric == "vcpu-hours").unwrap().unit,
        "vCPU-hour"
    );

    // A window inside one segment, and the same window again: the same answer.
    let slice = UsageWindow::new(h(2), h(3)).unwrap();
    let first = d.usage("acme", slice).await.unwrap();
    assert_eq!(
        first.iter().find(|r| r.metric == "vcpu-hours").unwrap().quantity,
        Decimal::from(2)
    );
    assert_eq!(d.usage("acme", slice).await.unwrap(), first);
    // Before anything existed: nothing.
    assert!(
        d.usage("acme", UsageWindow::new(h(-24), t0).unwrap())
            .await
            .unwrap()
            .is_empty()
    );
    sim.stop().await.unwrap();
}

fn ticket() -> TicketDesired {
    TicketDesired {
        org: "acme".into(),
        severity: Severity::Major,
        product: "compute".into(),
        subject: "Instance web does not boot".into(),
        description: "Since 09:00 the console shows a kernel panic.".into(),
        contact: "ops@provider.example".into(),
    }
}

#[tokio::test]
async fn tickets_comments_and_vendor_replies() {
    let sim = spawn(quick()).await.unwrap();
    let d = driver(&sim);
    let control = sim.control();

    assert_eq!(d.find_ticket("sr-1").await.unwrap(), None);
    let created = d.create_ticket("sr-1", &ticket()).await.unwrap();
    assert_eq!(created.state, TicketState::New);
    let again = d.create_ticket("sr-1", &ticket()).await.unwrap();
    assert_eq!(
        again.external_id, created.external_id,
        "the same key is the same ticket"
    );
    assert_eq!(
        d.find_ticket("sr-1").await.unwrap().unwrap().external_id,
        created.external_id
    );
    let id = created.external_id.as_str();

    let comment = d
        .add_comment(id, "sr-1-c1", "It started after the update.")
        .await
        .unwrap();
    let repeat = d
        .add_comment(id, "sr-1-c1", "It started after the update.")
        .await
        .unwrap();
    assert_eq!(comment, repeat);
    assert_eq!(comment.author, Author::Provider);

    let replied = control
        .vendor_reply(
            id,
            Some("Please send the console log."),
            Some(TicketState::WaitingOnCustomer),
        )
        .await
        .unwrap();
    assert_eq!(replied.state, TicketState::WaitingOnCustomer);
    let seen = d.get_ticket(id).await.unwrap().unwrap();
    let authors: Vec<Author> = seen.comments.iter().map(|c| c.author).collect();
    assert_eq!(authors, [Author::Provider, Author::Vendor]);
    assert_eq!(seen.comments[1].body, "Please send the console log.");

    d.add_comment(id, "sr-1-c2", "Log attached.").await.unwrap();
    assert_eq!(d.get_ticket(id).await.unwrap().unwrap().state, TicketState::Open);
    assert_eq!(d.close_ticket(id).await.unwrap().state, TicketState::Closed);
    assert_eq!(d.close_ticket(id).await.unwrap().state, TicketState::Closed);
    assert!(matches!(
        d.add_comment(id, "sr-1-c3", "Too late").await,
        Err(DriverError::Conflict { .. })
    ));
    assert_eq!(d.reopen_ticket(id).await.unwrap().state, TicketState::Open);
    assert_eq!(d.reopen_ticket(id).await.unwrap().state, TicketState::Open);
    d.add_comment(id, "sr-1-c3", "Not too late after all").await.unwrap();
    d.close_ticket(id).await.unwrap();
    assert_eq!(d.get_ticket("424242").await.unwrap(), None);

    let stats = control.stats().await.unwrap();
    assert_eq!(stats.creates.tickets["sr-1"], 1);
    assert_eq!(d.get_ticket(id).await.unwrap().unwrap().comments.len(), 4);
    sim.stop().await.unwrap();
}

#[tokio::test]
async fn state_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!("navigator-sim-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = SimulatorConfig {
        state_file: Some(dir.join("state.json")),
        ..quick()
    };

    let sim = spawn(config.clone()).await.unwrap();
    let d = driver(&sim);
    let acme = d.apply_org("acme", &org("Acme")).await.unwrap();
    let web = d.apply_instance("acme", "web", &compute(2, 4, 20)).await.unwrap();
    let bob = UserDesired {
        email: "bob@acme.example".into(),
        role: "BillingUser".into(),
    };
    let user = d.apply_user("acme", "bob", &bob).await.unwrap();
    let filed = d.create_ticket("sr-9", &ticket()).await.unwrap();
    sim.stop().await.unwrap();

    let sim = spawn(config).await.unwrap();
    let d = driver(&sim);
    assert_eq!(
        d.observe_org("acme").await.unwrap().unwrap().external_id,
        acme.external_id
    );
    assert_eq!(
        d.observe_instance("acme", "web").await.unwrap().unwrap().external_id,
        web.external_id
    );
    assert_eq!(
        d.observe_user("acme", "bob").await.unwrap().unwrap().external_id,
        user.external_id
    );
    assert_eq!(
        d.create_ticket("sr-9", &ticket()).await.unwrap().external_id,
        filed.external_id
    );
    let next = d.create_ticket("sr-10", &ticket()).await.unwrap();
    assert_ne!(next.external_id, filed.external_id, "ticket ids are not reused");
    sim.stop().await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_same_seed_gives_the_same_faults() {
    let faults = FaultConfig {
        rate_5xx: 0.3,
        rate_429: 0.2,
        seed: 99,
        ..FaultConfig::default()
    };
    let mut sequences = Vec::new();
    for _ in 0..2 {
        let sim = spawn(SimulatorConfig {
            faults: faults.clone(),
            ..quick()
        })
        .await
        .unwrap();
        let client = reqwest::Client::new();
        let mut statuses = Vec::new();
        for _ in 0..40 {
            let response = client
                .get(format!("{}/v1/info", sim.url()))
                .bearer_auth(DEV_TOKEN)
                .send()
                .await
                .unwrap();
            statuses.push(response.status().as_u16());
        }
        sequences.push(statuses);
        sim.stop().await.unwrap();
    }
    assert_eq!(sequences[0], sequences[1]);
    assert!(sequences[0].contains(&200) && sequences[0].contains(&503) && sequences[0].contains(&429));
}

/// Sequential requests see the seed's fault sequence; a change answered 5xx or timed out "after" is
/// applied all the same, which is what forces clients to be idempotent.
#[tokio::test]
async fn faults_hit_changes_before_and_after() {
    let faults = FaultConfig {
        rate_5xx: 0.3,
        rate_timeout: 0.2,
        hang_seconds: 2,
        seed: 7,
        ..FaultConfig::default()
    };
    let sim = spawn(SimulatorConfig { faults, ..quick() }).await.unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let mut answered_ok = 0;
    for i in 0..40 {
        let response = client
            .put(format!("{}/v1/orgs/org-{i}", sim.url()))
            .bearer_auth(DEV_TOKEN)
            .json(&org("Customer"))
            .send()
            .await;
        if response.is_ok_and(|r| r.status().is_success()) {
            answered_ok += 1;
        }
    }
    let control = sim.control();
    control.set_faults(&FaultPatch::none()).await.unwrap();
    let stats = control.stats().await.unwrap();
    for kind in ["5xx-before", "5xx-after", "timeout-before", "timeout-after"] {
        assert!(
            stats.faults.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} with this seed: {:?}",
            stats.faults
        );
    }
    let applied_anyway = stats.faults["5xx-after"] + stats.faults["timeout-after"];
    assert_eq!(
        stats.held.orgs,
        answered_ok + applied_anyway,
        "changes failed 'after' were applied"
    );
    sim.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_driver_converges_through_faults_without_duplicates() {
    let faults = FaultConfig {
        rate_5xx: 0.2,
        rate_429: 0.1,
        retry_after_seconds: 1,
        rate_timeout: 0.04,
        hang_seconds: 3,
        seed: 42,
        ..FaultConfig::default()
    };
    let sim = spawn(SimulatorConfig {
        provision_time: Duration::from_millis(200),
        faults,
        ..SimulatorConfig::default()
    })
    .await
    .unwrap();
    const LIMIT: u32 = 30;
    let d = Arc::new(
        HttpDriver::new(HttpDriverConfig {
            rate_limit_per_second: LIMIT,
            max_concurrent: 8,
            timeout: Duration::from_secs(1),
            ..sim.driver_config()
        })
        .unwrap(),
    );
    const ORGS: usize = 6;
    let work = (0..ORGS).map(|n| {
        let d = d.clone();
        async move {
            let name = format!("org-{n}");
            let customer = org("Customer");
            converge("org", || d.apply_org(&name, &customer)).await;
            let alice = UserDesired {
                email: "alice@example.com".into(),
                role: "OrganizationUser".into(),
            };
            converge("user", || d.apply_user(&name, "alice", &alice)).await;
            for i in 0..2 {
                let instance = format!("vm-{i}");
                let desired = compute(2, 4, 20);
                converge("instance", || d.apply_instance(&name, &instance, &desired)).await;
                // Observe until ready, as the reconciler's later passes would.
                converge("ready", || async {
                    match d.observe_instance(&name, &instance).await? {
                        Some(i) if i.state == InstanceState::Ready => Ok(()),
                        _ => Err(DriverError::unavailable("not ready yet")),
                    }
                })
                .await;
            }
            let key = format!("sr-{n}");
            let desired = ticket();
            let filed = converge("ticket", || d.create_ticket(&key, &desired)).await;
            for c in 0..2 {
                let comment_key = format!("{key}-c{c}");
                converge("comment", || {
                    d.add_comment(&filed.external_id, &comment_key, "More detail.")
                })
                .await;
            }
            filed.external_id
        }
    });
    let tickets = futures::future::join_all(work).await;

    let control = sim.control();
    control.set_faults(&FaultPatch::none()).await.unwrap();
    for id in &tickets {
        let ticket = d.get_ticket(id).await.unwrap().unwrap();
        assert_eq!(
            ticket.comments.len(),
            2,
            "each comment arrived once: {:?}",
            ticket.comments
        );
    }
    let stats = control.stats().await.unwrap();
    eprintln!(
        "through faults: {} requests, peak {}/s (limit {LIMIT}), faults {:?}",
        stats.requests.total, stats.requests.peak_per_second, stats.faults
    );
    assert_eq!(stats.creates.orgs.len(), ORGS);
    assert_eq!(stats.creates.users.len(), ORGS);
    assert_eq!(stats.creates.instances.len(), 2 * ORGS);
    assert_eq!(stats.creates.tickets.len(), ORGS);
    assert_eq!(stats.max_creates_per_object, 1, "no duplicates: {:?}", stats.creates);
    assert_eq!(stats.held.instances, 2 * ORGS as u64);
    // Which kinds hit which request depends on arrival order here; `faults_hit_changes_before_and_after`
    // checks each kind deterministically.
    let injected: u64 = stats.faults.values().sum();
    assert!(injected >= 10, "too few faults injected: {:?}", stats.faults);
    assert!(
        stats.faults.get("429").copied().unwrap_or(0) > 0,
        "no 429: {:?}",
        stats.faults
    );
    assert!(
        stats.requests.peak_per_second <= u64::from(LIMIT),
        "peak {} over the limit {LIMIT}",
        stats.requests.peak_per_second
    );
    sim.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_holds_under_a_burst() {
    let sim = spawn(quick()).await.unwrap();
    const LIMIT: u32 = 10;
    let d = Arc::new(
        HttpDriver::new(HttpDriverConfig {
            rate_limit_per_second: LIMIT,
            max_concurrent: 32,
            max_queue_wait: Duration::from_secs(30),
            ..sim.driver_config()
        })
        .unwrap(),
    );
    let calls = (0..35).map(|_| {
        let d = d.clone();
        async move { d.info().await }
    });
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().all(Result::is_ok));
    let stats = sim.control().stats().await.unwrap();
    assert_eq!(stats.requests.total, 35);
    assert!(
        stats.requests.peak_per_second <= u64::from(LIMIT),
        "peak {}",
        stats.requests.peak_per_second
    );

    // A caller that cannot wait for the next free start is told to come back instead of queueing (a new
    // driver starts as if its last second had been fully used).
    let impatient = HttpDriver::new(HttpDriverConfig {
        rate_limit_per_second: 1,
        max_queue_wait: Duration::from_millis(100),
        ..sim.driver_config()
    })
    .unwrap();
    match impatient.info().await {
        Err(DriverError::Throttled { retry_after }) => assert!(retry_after > Duration::from_millis(100)),
        other => panic!("expected Throttled, got {other:?}"),
    }
    sim.stop().await.unwrap();
}

/// Captures everything logged on this thread.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_token_is_never_logged() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    // With one scoped subscriber alone, tracing caches each callsite's interest as seen from whichever
    // thread reaches it first, so another test reaching the driver's callsites first (while this one waits
    // out its new driver's first second) would hide them here. A second, silent dispatcher makes every
    // event ask the current thread's subscriber instead.
    let _silent = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let _guard = tracing::subscriber::set_default(subscriber);

    let token = "tok-very-secret-0123456789";
    let config = SimulatorConfig {
        token: Secret::new(token),
        ..quick()
    };
    tracing::info!(?config, "starting");
    let sim = spawn(config).await.unwrap();
    let d = HttpDriver::new(HttpDriverConfig::new(sim.url(), token)).unwrap();
    tracing::info!(?d, "driver");
    d.apply_org("acme", &org("Acme")).await.unwrap();
    d.observe_org("acme").await.unwrap();
    let wrong = HttpDriver::new(HttpDriverConfig::new(sim.url(), format!("{token}-wrong"))).unwrap();
    assert!(wrong.info().await.is_err());
    sim.stop().await.unwrap();

    let logged = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("/v1/orgs/acme"), "requests are logged: {logged}");
    assert!(!logged.contains(token), "the token leaked into the log");
}

#[tokio::test]
async fn retries_are_bounded_and_honour_retry_after() {
    let always_throttled = FaultConfig {
        rate_429: 1.0,
        retry_after_seconds: 0,
        ..FaultConfig::default()
    };
    let sim = spawn(SimulatorConfig {
        faults: always_throttled,
        ..quick()
    })
    .await
    .unwrap();
    let control = sim.control();
    let d = HttpDriver::new(HttpDriverConfig {
        max_retries: 3,
        ..sim.driver_config()
    })
    .unwrap();
    assert!(matches!(d.info().await, Err(DriverError::Throttled { .. })));
    assert_eq!(
        control.stats().await.unwrap().requests.total,
        4,
        "one request and three retries"
    );

    // A Retry-After beyond the retry budget ends the call at once, telling the caller when to return.
    control
        .set_faults(&FaultPatch {
            retry_after_seconds: Some(60),
            ..FaultPatch::default()
        })
        .await
        .unwrap();
    control.reset_stats().await.unwrap();
    match d.info().await {
        Err(DriverError::Throttled { retry_after }) => assert_eq!(retry_after, Duration::from_secs(60)),
        other => panic!("expected Throttled, got {other:?}"),
    }
    assert_eq!(control.stats().await.unwrap().requests.total, 1);
    // The endpoint throttles the client, not one call: a call for another object is held too, and told
    // when to come back without reaching the endpoint.
    match d.observe_org("someone-else").await {
        Err(DriverError::Throttled { retry_after }) => {
            assert!(retry_after > Duration::from_secs(50), "{retry_after:?}")
        }
        other => panic!("expected Throttled, got {other:?}"),
    }
    assert_eq!(
        control.stats().await.unwrap().requests.total,
        1,
        "the held call was not sent"
    );
    sim.stop().await.unwrap();

    // Nobody listening: retryable, after the bounded retries.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let nobody = HttpDriver::new(HttpDriverConfig {
        max_retries: 1,
        ..HttpDriverConfig::new(url, DEV_TOKEN)
    })
    .unwrap();
    match nobody.info().await {
        Err(e @ DriverError::Unavailable { .. }) => assert!(e.is_retryable()),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

fn assigning() -> SimulatorConfig {
    SimulatorConfig {
        assign_ids: true,
        ..quick()
    }
}

#[tokio::test]
async fn an_endpoint_that_assigns_ids_makes_a_second_object_on_a_repeated_create() {
    let sim = spawn(assigning()).await.unwrap();
    let d = driver(&sim);
    let control = sim.control();
    assert_eq!(
        d.capabilities().orgs,
        CreateKey::ServerAssigned,
        "until the endpoint said, the driver assumes the worst"
    );
    assert!(d.info().await.unwrap().assigns_ids);
    let caps = d.capabilities();
    assert_eq!(
        (caps.orgs, caps.users, caps.instances, caps.tickets),
        (
            CreateKey::ServerAssigned,
            CreateKey::ServerAssigned,
            CreateKey::ServerAssigned,
            Some(CreateKey::ServerAssigned)
        )
    );

    // Organisations: two creates, two organisations; observing finds the oldest, updates go to it by id.
    assert_eq!(d.observe_org("acme").await.unwrap(), None);
    let first = d.create_org("acme", &org("Acme")).await.unwrap();
    let second = d.create_org("acme", &org("Acme")).await.unwrap();
    assert_ne!(first.external_id, second.external_id, "a second organisation");
    assert_eq!(
        d.observe_org("acme").await.unwrap().unwrap().external_id,
        first.external_id
    );
    let renamed = d.apply_org("acme", &org("Acme Corporation")).await.unwrap();
    assert_eq!(
        (renamed.external_id.as_str(), renamed.display_name.as_str()),
        (first.external_id.as_str(), "Acme Corporation")
    );
    assert!(
        matches!(
            d.apply_org("nobody", &org("Nobody")).await,
            Err(DriverError::NotFound { .. })
        ),
        "an update never creates"
    );

    // Users and instances: the same, inside the oldest organisation.
    let alice = UserDesired {
        email: "alice@acme.example".into(),
        role: "OrganizationUser".into(),
    };
    let user = d.create_user("acme", "alice", &alice).await.unwrap();
    d.create_user("acme", "alice", &alice).await.unwrap();
    assert_eq!(
        d.observe_user("acme", "alice").await.unwrap().unwrap().external_id,
        user.external_id
    );
    let admin = UserDesired {
        role: "OrganizationAdministrator".into(),
        ..alice.clone()
    };
    assert_eq!(
        d.apply_user("acme", "alice", &admin).await.unwrap().external_id,
        user.external_id
    );
    assert!(matches!(
        d.apply_user("acme", "bob", &alice).await,
        Err(DriverError::NotFound { .. })
    ));
    let web = d.create_instance("acme", "web", &compute(2, 4, 20)).await.unwrap();
    assert_eq!(web.state, InstanceState::Provisioning);
    d.create_instance("acme", "web", &compute(2, 4, 20)).await.unwrap();
    let observed = d.observe_instance("acme", "web").await.unwrap().unwrap();
    assert_eq!(
        (observed.external_id.as_str(), observed.name.as_str()),
        (web.external_id.as_str(), "web")
    );
    let resized = d.apply_instance("acme", "web", &compute(4, 4, 20)).await.unwrap();
    assert_eq!(
        (resized.external_id, resized.resources.vcpu),
        (web.external_id.clone(), 4)
    );

    // Tickets: the key is only a field; a repeat opens a second ticket, the oldest is found.
    let ticket1 = d.create_ticket("sr-1", &ticket()).await.unwrap();
    let ticket2 = d.create_ticket("sr-1", &ticket()).await.unwrap();
    assert_ne!(ticket1.external_id, ticket2.external_id);
    assert_eq!(
        d.find_ticket("sr-1").await.unwrap().unwrap().external_id,
        ticket1.external_id
    );

    let stats = control.stats().await.unwrap();
    assert_eq!(stats.creates.orgs["acme"], 2);
    assert_eq!(stats.creates.users["acme/alice"], 2);
    assert_eq!(stats.creates.instances["acme/web"], 2);
    assert_eq!(stats.creates.tickets["sr-1"], 2);
    assert_eq!(stats.max_creates_per_object, 2);
    assert_eq!(
        (
            stats.duplicates.orgs,
            stats.duplicates.users,
            stats.duplicates.instances,
            stats.duplicates.tickets
        ),
        (1, 1, 1, 1),
        "one extra copy of each"
    );
    assert_eq!(stats.held.users, 2);

    // Deleting by name removes every copy.
    eventually(
        "both instances gone",
        || d.delete_instance("acme", "web"),
        |deletion| *deletion == Deletion::Gone,
    )
    .await;
    assert_eq!(d.delete_user("acme", "alice").await.unwrap(), Deletion::Gone);
    assert_eq!(d.observe_user("acme", "alice").await.unwrap(), None);
    assert_eq!(d.delete_org("acme").await.unwrap(), Deletion::Gone);
    assert_eq!(d.observe_org("acme").await.unwrap(), None);
    let held = control.stats().await.unwrap().held;
    assert_eq!((held.orgs, held.users, held.instances), (0, 0, 0));
}

#[tokio::test]
async fn where_names_are_keys_nothing_can_be_duplicated_and_post_creates_are_refused() {
    let sim = spawn(quick()).await.unwrap();
    let d = driver(&sim);
    assert!(!d.info().await.unwrap().assigns_ids);
    let caps = d.capabilities();
    assert_eq!(
        (caps.orgs, caps.tickets),
        (CreateKey::Name, Some(CreateKey::IdempotencyKey))
    );
    let first = d.create_org("acme", &org("Acme")).await.unwrap();
    assert_eq!(
        d.create_org("acme", &org("Acme")).await.unwrap().external_id,
        first.external_id
    );
    let refused = reqwest::Client::new()
        .post(format!("{}/v1/orgs", sim.url()))
        .bearer_auth(DEV_TOKEN)
        .json(&serde_json::json!({"name": "other", "displayName": "Other"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), reqwest::StatusCode::METHOD_NOT_ALLOWED);
    let stats = sim.control().stats().await.unwrap();
    assert_eq!(stats.duplicates, state::Held::default());
    assert_eq!(stats.max_creates_per_object, 1);
}

#[tokio::test]
async fn a_create_is_sent_once_and_lands_even_when_its_client_gave_up() {
    let sim = spawn(SimulatorConfig {
        create_time: Duration::from_millis(800),
        ..assigning()
    })
    .await
    .unwrap();
    let control = sim.control();
    let d = HttpDriver::new(HttpDriverConfig {
        timeout: Duration::from_millis(300),
        ..sim.driver_config()
    })
    .unwrap();
    assert!(d.info().await.unwrap().assigns_ids);
    let lost = d.create_org("acme", &org("Acme")).await;
    assert!(
        matches!(lost, Err(DriverError::Unavailable { .. })),
        "the answer did not come in time: {lost:?}"
    );
    assert_eq!(d.observe_org("acme").await.unwrap(), None, "not there yet");
    let landed = eventually("the create to land", || d.observe_org("acme"), Option::is_some).await;
    assert_eq!(landed.unwrap().name, "acme");
    let stats = control.stats().await.unwrap();
    assert_eq!(
        stats.requests.by_method["POST"], 1,
        "sent once, never retried by the driver"
    );
    assert_eq!(stats.creates.orgs["acme"], 1);

    // A 5xx on a create is not retried by the driver either: it may have been applied.
    control
        .set_faults(&FaultPatch {
            rate_5xx: Some(1.0),
            ..FaultPatch::default()
        })
        .await
        .unwrap();
    control.reset_stats().await.unwrap();
    assert!(d.create_org("globex", &org("Globex")).await.is_err());
    assert_eq!(control.stats().await.unwrap().requests.total, 1);
}
