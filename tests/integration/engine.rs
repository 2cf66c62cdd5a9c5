//! The provisioning engine against the real apiserver and the simulator over HTTP: dangling references,
//! crash safety under SIGKILL, convergence through faults within the rate limit, deletion and orphaning,
//! and a quiet steady state.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Namespace};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams};
use navigator::api::{CloudServiceSubscription, CustomerOrg};
use rand::RngExt;

use crate::support::eventually;
use crate::world::{Conditions, Operator, Simulator, World};

const WAIT: Duration = Duration::from_secs(120);

async fn condition_of<K>(api: &Api<K>, name: &str, type_: &str) -> Option<(String, String)>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Conditions,
{
    let obj = api.get_opt(name).await.ok()??;
    obj.condition(type_).map(|c| (c.status, c.reason))
}

async fn events_for(client: &kube::Client, namespace: &str, name: &str) -> Vec<Event> {
    let params = ListParams::default().fields(&format!("involvedObject.name={name}"));
    Api::<Event>::namespaced(client.clone(), namespace)
        .list(&params)
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

#[tokio::test]
async fn customers_and_subscriptions_reach_ready_and_the_simulator_holds_exactly_them() {
    let simulator = Simulator::start("basic", &["--provision-seconds", "1"]).await;
    let world = World::new("basic", &simulator, 50).await;
    let _operator = Operator::start(&world.run);
    world.customer("alpha", "Delete").await;
    world.customer("beta", "Delete").await;
    world.subscription("alpha-web", "alpha", 2).await;
    world.subscription("alpha-db", "alpha", 4).await;
    world.subscription("beta-web", "beta", 1).await;

    assert_eq!(world.all_ready(&world.customers(), WAIT).await, 2);
    assert_eq!(world.all_ready(&world.subscriptions(), WAIT).await, 3);

    let orgs = simulator.org_names().await;
    assert_eq!(orgs, vec![world.tenant("alpha"), world.tenant("beta")]);
    assert_eq!(
        simulator.instance_names(&world.tenant("alpha")).await,
        vec!["alpha-db", "alpha-web"]
    );
    assert_eq!(simulator.instance_names(&world.tenant("beta")).await, vec!["beta-web"]);

    let sub = world.subscriptions().get("alpha-db").await.unwrap();
    let status = sub.status.unwrap();
    assert!(status.external_id.is_some(), "the endpoint's id is reported");
    assert_eq!(status.contract.as_deref(), Some("main"));
    assert_eq!(status.observed_generation, sub.metadata.generation);

    // Changing resources updates the instance on the endpoint.
    world.subscription("alpha-db", "alpha", 8).await;
    eventually(WAIT, "the instance to be resized to 8 vCPU", || async {
        let page: serde_json::Value = simulator
            .get_json(&format!("/v1/orgs/{}/instances/alpha-db", world.tenant("alpha")))
            .await;
        (page["resources"]["vcpu"] == 8 && page["state"] == "Ready").then_some(())
    })
    .await;
    world.all_ready(&world.subscriptions(), WAIT).await;

    // The customer namespace exists and is labelled as Navigator's.
    let ns = Api::<Namespace>::all(world.client.clone())
        .get(&format!("{}-alpha", world.namespace))
        .await
        .unwrap();
    assert_eq!(
        ns.labels()
            .get("navigator.cloudpartner.io/customer-org")
            .map(String::as_str),
        Some("alpha")
    );
}

#[tokio::test]
async fn dangling_references_stall_with_a_reason_and_an_event_then_recover_by_themselves() {
    let simulator = Simulator::start("dangling", &["--provision-seconds", "0"]).await;
    let world = World::new("dangling", &simulator, 50).await;
    let _operator = Operator::start(&world.run);

    // A subscription naming a customer that does not exist yet.
    world.subscription("orphan-sub", "late-customer", 1).await;
    let subs = world.subscriptions();
    eventually(WAIT, "the subscription to stall on the missing customer", || async {
        let stalled = condition_of(&subs, "orphan-sub", "Stalled").await?;
        let ready = condition_of(&subs, "orphan-sub", "Ready").await?;
        (stalled == ("True".into(), "CustomerOrgNotFound".into()) && ready.0 == "False").then_some(())
    })
    .await;
    eventually(WAIT, "a Warning event naming the missing customer", || async {
        let events = events_for(&world.client, &world.namespace, "orphan-sub").await;
        events
            .iter()
            .any(|e| e.type_.as_deref() == Some("Warning") && e.reason.as_deref() == Some("CustomerOrgNotFound"))
            .then_some(())
    })
    .await;

    // A customer naming an endpoint that does not exist.
    world
        .apply::<CustomerOrg>(Some(&world.namespace), serde_json::json!({
            "metadata": {"name": "lost"},
            "spec": {"displayName": "Lost", "tenantName": format!("{}-lost", world.run), "endpointRef": {"name": format!("nowhere-{}", world.run)}}
        }))
        .await;
    let customers = world.customers();
    eventually(WAIT, "the customer to stall on the missing endpoint", || async {
        let stalled = condition_of(&customers, "lost", "Stalled").await?;
        (stalled == ("True".into(), "EndpointNotFound".into())).then_some(())
    })
    .await;

    // The missing customer appears: the subscription proceeds without anyone touching it.
    world.customer("late-customer", "Delete").await;
    eventually(WAIT, "the subscription to recover once its customer exists", || async {
        let ready = condition_of(&subs, "orphan-sub", "Ready").await?;
        (ready.0 == "True").then_some(())
    })
    .await;
    assert_eq!(
        simulator.instance_names(&world.tenant("late-customer")).await,
        vec!["orphan-sub"]
    );
}

/// Reads the simulator's counters and checks there is exactly one instance per subscription and nothing
/// else, each created once.
async fn assert_exactly_one_instance_each(
    simulator: &Simulator,
    world: &World,
    customers: &[&str],
    per_customer: usize,
) {
    for customer in customers {
        let names = simulator.instance_names(&world.tenant(customer)).await;
        let expected: BTreeSet<String> = (0..per_customer).map(|i| format!("{customer}-{i:03}")).collect();
        assert_eq!(
            names.into_iter().collect::<BTreeSet<_>>(),
            expected,
            "instances of {customer}"
        );
    }
    let stats = simulator.stats().await;
    assert_eq!(
        stats.creates.instances.len(),
        customers.len() * per_customer,
        "every instance was created"
    );
    assert_eq!(
        stats.max_creates_per_object, 1,
        "no object was created twice: {:?}",
        stats.creates
    );
}

/// How the kill test's endpoint keys what it creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ids {
    /// Names are keys: a repeated create is harmless (the simulator's default).
    Names,
    /// The endpoint assigns ids and a repeated create makes a second object (`--assign-ids`), with creates
    /// that take a while, so a kill often comes while one is in flight.
    Assigned,
}

/// The people granted access to every customer in the assigning mode: alice twice (two grants share her
/// endpoint user), bob once.
const PEOPLE: [(&str, &str, &str); 3] = [
    ("alice-admin", "alice", "CustomerAdministrator"),
    ("alice-billing", "alice", "CustomerBillingUser"),
    ("bob-user", "bob", "CustomerUser"),
];

/// Kills the operator with SIGKILL at random moments while it provisions, then checks that everything
/// exists exactly once on the endpoint: one instance per subscription and, where the endpoint assigns ids,
/// also one organisation per CustomerOrg (created during the kills), one user per person per tenant and
/// one ticket per SupportRequest; nothing else.
async fn kill_the_operator_at_random_moments(ids: Ids) {
    let (name, per_customer) = match ids {
        Ids::Names => ("crash", 50),
        Ids::Assigned => ("crash-ids", 25),
    };
    let mut args = vec!["--provision-seconds", "2"];
    if ids == Ids::Assigned {
        args.extend(["--assign-ids", "--create-seconds", "1.5"]);
    }
    let simulator = Simulator::start(name, &args).await;
    let world = World::new(name, &simulator, 200).await;
    let customers = ["c1", "c2", "c3", "c4"];
    if ids == Ids::Names {
        for customer in customers {
            world.customer(customer, "Delete").await;
        }
    }
    let mut operator = Operator::start(&world.run);
    let started = std::time::Instant::now();

    // Everything is declared while the operator is being killed: customers (where ids are assigned), their
    // subscriptions, and then grants and support requests.
    let declare = async {
        if ids == Ids::Assigned {
            for customer in customers {
                world.customer(customer, "Delete").await;
            }
        }
        for i in 0..per_customer {
            for customer in customers {
                world
                    .subscription(&format!("{customer}-{i:03}"), customer, 1 + (i % 4) as i64)
                    .await;
            }
        }
        if ids == Ids::Assigned {
            for customer in customers {
                for (grant, person, role) in PEOPLE {
                    world
                        .customer_grant(&format!("{customer}-{grant}"), person, role, customer)
                        .await;
                }
                world.support_request(&format!("{customer}-help"), customer).await;
            }
        }
    };
    let kill = async {
        let mut kills = 0;
        while kills < 6 {
            let wait = rand::rng().random_range(300..2500);
            tokio::time::sleep(Duration::from_millis(wait)).await;
            operator.process.kill();
            kills += 1;
            operator.process.start();
        }
        kills
    };
    let ((), kills) = tokio::join!(declare, kill);

    let converge = Duration::from_secs(300);
    let total = world.all_ready(&world.subscriptions(), converge).await;
    assert_eq!(total, customers.len() * per_customer);
    world.all_ready(&world.customers(), converge).await;
    if ids == Ids::Assigned {
        world.all_ready(&world.grants(), converge).await;
        world.all_ready(&world.support_requests(), converge).await;
    }
    // The figures first, so that they show also when an assertion below fails.
    let stats = simulator.stats().await;
    let creates = &stats.creates;
    let count = |m: &std::collections::BTreeMap<String, u64>| (m.len(), m.values().sum::<u64>());
    println!(
        "kill test ({ids:?}): {kills} SIGKILLs; ready after {:.1?}; objects created (distinct, creates): orgs {:?}, users {:?}, instances {:?}, tickets {:?}; max creates per object {}; duplicates held {:?}; {} requests to the simulator",
        started.elapsed(),
        count(&creates.orgs),
        count(&creates.users),
        count(&creates.instances),
        count(&creates.tickets),
        stats.max_creates_per_object,
        stats.duplicates,
        stats.requests.total,
    );
    if ids == Ids::Names {
        assert_exactly_one_instance_each(&simulator, &world, &customers, per_customer).await;
    } else {
        let contents = simulator.contents().await;
        let tenants: Vec<String> = contents.iter().map(|o| o.name.clone()).collect();
        assert_eq!(
            tenants,
            customers.map(|c| world.tenant(c)).to_vec(),
            "one organisation per CustomerOrg"
        );
        for (org, customer) in contents.iter().zip(customers) {
            assert_eq!(org.users, vec!["alice", "bob"], "one user per person in {}", org.name);
            let expected: Vec<String> = (0..per_customer).map(|i| format!("{customer}-{i:03}")).collect();
            assert_eq!(org.instances, expected, "one instance per subscription of {customer}");
        }
        let mut uids: Vec<String> = world
            .support_requests()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .filter_map(|r| r.uid())
            .collect();
        uids.sort();
        assert_eq!(uids.len(), customers.len());
        assert_eq!(simulator.ticket_keys().await, uids, "one ticket per SupportRequest");
    }
    assert_eq!(
        stats.duplicates,
        Default::default(),
        "the endpoint holds no second copy of anything"
    );
    assert_eq!(
        stats.max_creates_per_object, 1,
        "no object was created twice: {:?}",
        stats.creates
    );
}

#[tokio::test]
async fn killing_the_operator_at_random_moments_never_loses_or_duplicates_an_instance() {
    kill_the_operator_at_random_moments(Ids::Names).await;
}

#[tokio::test]
async fn killing_the_operator_where_the_endpoint_assigns_ids_duplicates_no_org_user_instance_or_ticket() {
    kill_the_operator_at_random_moments(Ids::Assigned).await;
}

#[tokio::test]
async fn faults_and_throttling_converge_without_duplicates_and_within_the_rate_limit() {
    let rate_limit = 20;
    let simulator = Simulator::start(
        "faults",
        &[
            "--provision-seconds",
            "1",
            "--fault-5xx-rate",
            "0.2",
            "--fault-429-rate",
            "0.1",
            "--retry-after-seconds",
            "1",
            "--fault-timeout-rate",
            "0.03",
            "--fault-hang-seconds",
            "5",
            "--seed",
            "7",
        ],
    )
    .await;
    let world = World::new("faults", &simulator, rate_limit).await;
    let _operator = Operator::start(&world.run);
    let customers = ["f1", "f2"];
    for customer in customers {
        world.customer(customer, "Delete").await;
    }
    let per_customer = 20;
    for i in 0..per_customer {
        for customer in customers {
            world.subscription(&format!("{customer}-{i:03}"), customer, 1).await;
        }
    }
    let started = std::time::Instant::now();
    world.all_ready(&world.subscriptions(), Duration::from_secs(400)).await;
    assert_exactly_one_instance_each(&simulator, &world, &customers, per_customer).await;
    let stats = simulator.stats().await;
    assert!(
        stats.faults.values().sum::<u64>() > 0,
        "faults were injected: {:?}",
        stats.faults
    );
    assert!(
        stats.requests.peak_per_second <= rate_limit as u64,
        "the simulator saw {} requests in one second, above the endpoint's limit {rate_limit}",
        stats.requests.peak_per_second
    );
    println!(
        "fault test: converged in {:.1?}; {} requests, peak {}/s (limit {rate_limit}); faults injected {:?}",
        started.elapsed(),
        stats.requests.total,
        stats.requests.peak_per_second,
        stats.faults
    );
}

#[tokio::test]
async fn deleting_a_customer_removes_its_instances_and_tenant_unless_orphaned() {
    let simulator = Simulator::start("delete", &["--provision-seconds", "1"]).await;
    let world = World::new("delete", &simulator, 50).await;
    let _operator = Operator::start(&world.run);
    world.customer("gone", "Delete").await;
    world.customer("kept", "Orphan").await;
    world.subscription("gone-1", "gone", 1).await;
    world.subscription("gone-2", "gone", 1).await;
    world
        .apply::<CloudServiceSubscription>(Some(&world.namespace), serde_json::json!({
            "metadata": {"name": "kept-1"},
            "spec": {"customerOrgRef": {"name": "kept"}, "serviceType": "compute", "resources": {"vcpu": 1, "memoryGiB": 2, "storageGiB": 20}, "deletionPolicy": "Orphan"}
        }))
        .await;
    world.all_ready(&world.subscriptions(), WAIT).await;

    let customers = world.customers();
    for name in ["gone", "kept"] {
        let finalizers = customers.get(name).await.unwrap().finalizers().to_vec();
        assert_eq!(
            finalizers,
            vec![navigator::controllers::customer_org::FINALIZER.to_string()],
            "customer {name} is guarded"
        );
    }
    customers.delete("gone", &DeleteParams::default()).await.unwrap();
    customers.delete("kept", &DeleteParams::default()).await.unwrap();
    eventually(
        WAIT,
        "both customer orgs and their subscriptions to be gone",
        || async {
            let left = customers.list(&ListParams::default()).await.ok()?.items.len()
                + world
                    .subscriptions()
                    .list(&ListParams::default())
                    .await
                    .ok()?
                    .items
                    .len();
            (left == 0).then_some(())
        },
    )
    .await;

    let orgs = simulator.org_names().await;
    assert!(
        !orgs.contains(&world.tenant("gone")),
        "the Delete customer's tenant is removed: {orgs:?}"
    );
    assert!(
        orgs.contains(&world.tenant("kept")),
        "the Orphan customer's tenant stays: {orgs:?}"
    );
    assert_eq!(
        simulator.instance_names(&world.tenant("kept")).await,
        vec!["kept-1"],
        "the orphaned instance stays"
    );
    let namespaces = Api::<Namespace>::all(world.client.clone());
    eventually(WAIT, "the deleted customer's namespace to go", || async {
        let ns = namespaces.get_opt(&format!("{}-gone", world.namespace)).await.ok()?;
        ns.is_none_or(|n| n.metadata.deletion_timestamp.is_some()).then_some(())
    })
    .await;
}

#[tokio::test]
async fn once_everything_is_ready_the_operator_writes_nothing() {
    let simulator = Simulator::start("steady", &["--provision-seconds", "0"]).await;
    let world = World::new("steady", &simulator, 50).await;
    let _operator = Operator::start(&world.run);
    world.customer("s1", "Delete").await;
    for i in 0..5 {
        world.subscription(&format!("s1-{i}"), "s1", 1).await;
    }
    world.all_ready(&world.subscriptions(), WAIT).await;
    world.all_ready(&world.customers(), WAIT).await;
    // Let in-flight reconciles (the last status write's own echo) settle, then watch 20 seconds of audit log.
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Billing views legitimately refresh once an hour, just after the hour: keep the window clear of that.
    let into_hour = jiff::Timestamp::now().as_second().rem_euclid(3600);
    if !(30..=3600 - 40).contains(&into_hour) {
        tokio::time::sleep(Duration::from_secs((3600 - into_hour + 30).rem_euclid(3600) as u64)).await;
    }
    let audit = crate::support::shared().audit_log();
    let offset = std::fs::metadata(&audit).map(|m| m.len()).unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(20)).await;
    let text = std::fs::read(&audit).unwrap();
    let window = String::from_utf8_lossy(&text[offset as usize..]);
    let ours: Vec<String> = window
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| {
            let ns = e["objectRef"]["namespace"].as_str().unwrap_or_default();
            let name = e["objectRef"]["name"].as_str().unwrap_or_default();
            // The test itself is idle during the window, so every write to this world's objects is the operator's.
            ns.starts_with(&world.namespace) || name.contains(&world.run) || name == world.namespace
        })
        .map(|e| {
            format!(
                "{} {} {}",
                e["verb"], e["objectRef"]["resource"], e["objectRef"]["name"]
            )
        })
        .collect();
    assert!(ours.is_empty(), "the operator wrote in steady state: {ours:?}");
}

#[tokio::test]
async fn an_unentitled_subscription_is_refused_then_proceeds_when_a_contract_covers_it() {
    let simulator = Simulator::start("entitle", &["--provision-seconds", "0"]).await;
    let world = World::new("entitle", &simulator, 50).await;
    let _operator = Operator::start(&world.run);
    world.customer("e1", "Delete").await;
    world
        .apply::<CloudServiceSubscription>(Some(&world.namespace), serde_json::json!({
            "metadata": {"name": "e1-k8s"},
            "spec": {"customerOrgRef": {"name": "e1"}, "serviceType": "kubernetes", "resources": {"vcpu": 2, "memoryGiB": 4, "storageGiB": 20}}
        }))
        .await;
    let subs = world.subscriptions();
    eventually(WAIT, "the kubernetes subscription to stall as NotEntitled", || async {
        (condition_of(&subs, "e1-k8s", "Stalled").await? == ("True".into(), "NotEntitled".into())).then_some(())
    })
    .await;
    assert!(
        simulator.instance_names(&world.tenant("e1")).await.is_empty(),
        "nothing is provisioned without entitlement"
    );

    world.contract("kubernetes", &["kubernetes"]).await;
    eventually(
        WAIT,
        "the subscription to proceed once a contract covers it",
        || async { (condition_of(&subs, "e1-k8s", "Ready").await?.0 == "True").then_some(()) },
    )
    .await;
    let sub = subs.get("e1-k8s").await.unwrap();
    assert_eq!(sub.status.unwrap().contract.as_deref(), Some("kubernetes"));
}

#[tokio::test]
async fn a_subscription_over_the_customer_quota_stalls_until_the_quota_grows() {
    let simulator = Simulator::start("quota", &["--provision-seconds", "0"]).await;
    let world = World::new("quota", &simulator, 50).await;
    let _operator = Operator::start(&world.run);
    let customer = |vcpu: i64| {
        serde_json::json!({
            "metadata": {"name": "q1"},
            "spec": {"displayName": "Q1", "tenantName": world.tenant("q1"), "endpointRef": {"name": world.endpoint},
                     "quotas": {"vcpu": vcpu}}
        })
    };
    world.apply::<CustomerOrg>(Some(&world.namespace), customer(3)).await;
    world.subscription("q1-first", "q1", 2).await;
    let subs = world.subscriptions();
    eventually(WAIT, "the first subscription to be Ready", || async {
        (condition_of(&subs, "q1-first", "Ready").await?.0 == "True").then_some(())
    })
    .await;
    world.subscription("q1-second", "q1", 2).await;
    eventually(WAIT, "the second subscription to stall over the quota", || async {
        (condition_of(&subs, "q1-second", "Stalled").await? == ("True".into(), "QuotaExceeded".into())).then_some(())
    })
    .await;
    assert_eq!(
        simulator.instance_names(&world.tenant("q1")).await,
        vec!["q1-first"],
        "nothing over quota is provisioned"
    );

    world.apply::<CustomerOrg>(Some(&world.namespace), customer(4)).await;
    eventually(
        WAIT,
        "the second subscription to proceed once the quota allows it",
        || async { (condition_of(&subs, "q1-second", "Ready").await?.0 == "True").then_some(()) },
    )
    .await;
}
