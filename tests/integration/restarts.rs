//! Restarts: of the operator at steady state (no false `Stalled` while its caches fill), of the operator
//! while deletions are pending (nothing leaked on the endpoint, no finalizer left), and of the API server
//! while work is pending (Ready again within seconds of its return).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams};
use navigator::api::{CloudServiceSubscription, CustomerOrg};
use rand::RngExt;

use crate::support::eventually;
use crate::world::{Conditions, Operator, Simulator, World};

const WAIT: Duration = Duration::from_secs(180);

/// Warning Events in `namespace`, as (object, reason).
async fn warnings(client: &kube::Client, namespace: &str) -> Vec<(String, String)> {
    Api::<Event>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().fields("type=Warning"))
        .await
        .expect("listing events")
        .items
        .into_iter()
        .map(|e| (e.involved_object.name.unwrap_or_default(), e.reason.unwrap_or_default()))
        .collect()
}

/// When each object's Ready condition last changed, by `Kind/name`.
async fn ready_transitions(world: &World) -> BTreeMap<String, String> {
    let params = ListParams::default().labels(&format!("{}={}", crate::world::RUN_LABEL, world.run));
    let mut transitions = BTreeMap::new();
    for customer in world.customers().list(&params).await.unwrap() {
        let ready = customer.condition("Ready").expect("a Ready condition");
        transitions.insert(
            format!("CustomerOrg/{}", customer.name_any()),
            format!("{:?}", ready.last_transition_time),
        );
    }
    for sub in world.subscriptions().list(&params).await.unwrap() {
        let ready = sub.condition("Ready").expect("a Ready condition");
        transitions.insert(
            format!("Subscription/{}", sub.name_any()),
            format!("{:?}", ready.last_transition_time),
        );
    }
    transitions
}

#[tokio::test]
async fn restarting_the_operator_writes_no_false_stalled_status() {
    let simulator = Simulator::start("restart-steady", &["--provision-seconds", "1"]).await;
    let world = World::new("restart-steady", &simulator, 200).await;
    let mut operator = Operator::start(&world.run);
    let customers = ["r1", "r2", "r3"];
    for customer in customers {
        world.customer(customer, "Delete").await;
    }
    for i in 0..20 {
        for customer in customers {
            world.subscription(&format!("{customer}-{i:02}"), customer, 1).await;
        }
    }
    world.all_ready(&world.customers(), WAIT).await;
    world.all_ready(&world.subscriptions(), WAIT).await;
    let before = ready_transitions(&world).await;
    let warnings_before = warnings(&world.client, &world.namespace).await;

    // Each restart lists every kind again; before the fix, objects whose caches filled first were
    // reconciled against the others' empty caches and written as Stalled (CustomerOrgNotFound, ...).
    let restarts = 5;
    for _ in 0..restarts {
        operator.process.kill();
        operator.process.start();
        operator.until_ready(Duration::from_secs(60)).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    let new_warnings: Vec<_> = warnings(&world.client, &world.namespace)
        .await
        .into_iter()
        .filter(|w| !warnings_before.contains(w))
        .collect();
    assert!(
        new_warnings.is_empty(),
        "{restarts} restarts raised Warning events for objects whose references exist: {new_warnings:?}"
    );
    assert_eq!(
        ready_transitions(&world).await,
        before,
        "no object's Ready condition changed across {restarts} restarts"
    );
    println!(
        "steady-state restarts: {restarts} restarts, {} objects, no Warning event, no Ready transition",
        before.len()
    );
}

#[tokio::test]
async fn killing_the_operator_during_deletions_leaves_nothing_on_the_endpoint() {
    let simulator = Simulator::start("restart-delete", &["--provision-seconds", "1"]).await;
    let world = World::new("restart-delete", &simulator, 200).await;
    let mut operator = Operator::start(&world.run);
    let customers = ["d1", "d2"];
    for customer in customers {
        world.customer(customer, "Delete").await;
    }
    for i in 0..50 {
        for customer in customers {
            world.subscription(&format!("{customer}-{i:03}"), customer, 1).await;
        }
    }
    world.all_ready(&world.subscriptions(), WAIT).await;
    for customer in customers {
        assert_eq!(simulator.instance_names(&world.tenant(customer)).await.len(), 50);
    }

    // Everything goes at once, while the operator is down: subscriptions directly, and customers (which
    // also delete their subscriptions first). Then it is started and SIGKILLed again and again, so that
    // many of its reconciles are cleanups run right after a start, when caches are still filling (before
    // the fix, one of those took "customer not cached" for "gone" and released a finalizer without
    // deleting the instance).
    operator.process.kill();
    let params = ListParams::default().labels(&format!("{}={}", crate::world::RUN_LABEL, world.run));
    world
        .subscriptions()
        .delete_collection(&DeleteParams::background(), &params)
        .await
        .expect("deleting the subscriptions");
    for customer in customers {
        world
            .customers()
            .delete(customer, &DeleteParams::background())
            .await
            .unwrap();
    }
    let started = Instant::now();
    let mut kills = 0;
    while kills < 10 {
        operator.process.start();
        tokio::time::sleep(Duration::from_millis(rand::rng().random_range(300..1500))).await;
        operator.process.kill();
        kills += 1;
    }
    operator.process.start();

    let left = |api: Api<CustomerOrg>, subs: Api<CloudServiceSubscription>| async move {
        let customers = api.list(&ListParams::default()).await.ok()?.items;
        let subscriptions = subs.list(&ListParams::default()).await.ok()?.items;
        Some(
            customers
                .iter()
                .map(|c| format!("CustomerOrg/{} {:?}", c.name_any(), c.finalizers()))
                .chain(
                    subscriptions
                        .iter()
                        .map(|s| format!("Subscription/{} {:?}", s.name_any(), s.finalizers())),
                )
                .collect::<Vec<_>>(),
        )
    };
    eventually(
        WAIT,
        "every customer and subscription to be deleted, finalizers released",
        || async {
            left(world.customers(), world.subscriptions())
                .await
                .filter(|l| l.is_empty())
        },
    )
    .await;
    let orgs = simulator.org_names().await;
    for customer in customers {
        assert!(
            !orgs.contains(&world.tenant(customer)),
            "tenant {} is removed from the endpoint: {orgs:?}",
            world.tenant(customer)
        );
    }
    let stats = simulator.stats().await;
    println!(
        "deletion kill test: {kills} SIGKILLs, 100 subscriptions and 2 customers deleted in {:.1?}, nothing left on the endpoint; {} requests",
        started.elapsed(),
        stats.requests.total
    );
}

#[tokio::test]
async fn after_an_api_server_restart_pending_work_is_ready_within_seconds() {
    // A control plane of this test's own: restarting the shared one would disturb every other test.
    let control_plane = tokio::task::spawn_blocking(navigator_testenv::ControlPlane::start)
        .await
        .unwrap()
        .expect("starting a control plane for this test");
    let simulator = Simulator::start("apiserver-restart", &["--provision-seconds", "3"]).await;
    let world = World::new_on(control_plane.client().await, "apiserver-restart", &simulator, 200).await;
    let operator = Operator::start_with(
        "operator-apiserver-restart",
        &world.run,
        &control_plane.kubeconfig("admin"),
        &[],
        &[],
    );
    world.customer("a1", "Delete").await;
    world.all_ready(&world.customers(), WAIT).await;
    for i in 0..5 {
        world.subscription(&format!("a1-{i}"), "a1", 1).await;
    }
    // Provisioning (3 s on the endpoint) is under way when the API server goes away for 20 s: the
    // operator's status writes fail meanwhile, and before the fix its backoff had grown to 16-32 s.
    eventually(WAIT, "the subscriptions to be Creating", || async {
        let subs = world.subscriptions().list(&ListParams::default()).await.ok()?.items;
        (subs.len() == 5
            && subs
                .iter()
                .all(|s| s.condition("Ready").is_some_and(|c| c.reason == "Creating")))
        .then_some(())
    })
    .await;
    let down = Duration::from_secs(20);
    let cp = std::sync::Arc::new(control_plane);
    let restarting = cp.clone();
    tokio::task::spawn_blocking(move || restarting.restart_apiserver(down))
        .await
        .unwrap()
        .expect("restarting kube-apiserver");
    let back = Instant::now();
    // Right after the return a user applies one more subscription: the watches must be back to see it.
    world.subscription("a1-late", "a1", 1).await;
    // 10 s is the bound for pending work after the API server's return (before: 25-30 s, the
    // watches backing off for up to 30 s and failed reconciles on a backoff grown during the outage).
    // Part of it is the API server's own: requests for custom resources that reach it while it starts are
    // held until about 5 s after its start, also once /readyz passes. The subscription applied after the
    // return must be under way within the same bound; its Ready then waits for its own 3 s of provisioning
    // and the next progress poll (5 s), which are not the outage's.
    let client = cp.client().await;
    let subs: Api<CloudServiceSubscription> = Api::namespaced(client, &world.namespace);
    eventually(
        Duration::from_secs(10),
        "the 5 pending subscriptions to be Ready, and the one applied after the return to be under way, within 10 s of the API server's return",
        || async {
            let list = subs.list(&ListParams::default()).await.ok()?.items;
            let (late, pending): (Vec<_>, Vec<_>) = list.iter().partition(|s| s.name_any() == "a1-late");
            (pending.len() == 5
                && pending.iter().all(|s| s.is_ready())
                && late.iter().any(|s| s.condition("Ready").is_some()))
            .then_some(())
        },
    )
    .await;
    let pending_ready_after = back.elapsed();
    eventually(
        WAIT,
        "the subscription applied after the return to be Ready",
        || async { subs.get("a1-late").await.ok()?.is_ready().then_some(()) },
    )
    .await;
    let late_ready_after = back.elapsed();
    println!(
        "API server restart: down {down:?}; 5 pending subscriptions Ready {pending_ready_after:.1?} after it answered again, one applied after the return Ready after {late_ready_after:.1?}"
    );
    // The operator goes first, so that its log ends with the test rather than with the control plane's
    // shutdown.
    drop(operator);
}
