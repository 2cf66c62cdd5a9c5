//! Sharding across operator instances (issue 15): the chart's MutatingAdmissionPolicy, rendered by `helm
//! template --set sharding.shards=3` and applied with kubectl, labels each object with its shard; three
//! `navigator run --shards 3 --shard-index i` instances (and a standby for shard 1) each reconcile only
//! their shard under their own Lease; references across shards resolve; a SIGKILLed shard leader is
//! replaced by its standby; and no object is reconciled by two shards.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use navigator::api::{CloudEndpoint, CommitmentContract, ProviderOrg};
use navigator::runtime::shard::{LABEL, shard_of};
use serde_json::{Value, json};

use crate::packaging::helm_template;
use crate::support::{eventually, shared};
use crate::world::{Conditions, Operator, RUN_LABEL, Simulator, World, log_path};

const SHARDS: u32 = 3;
const WAIT: Duration = Duration::from_secs(240);
const LEASE_NAMESPACE: &str = "default";

/// Applies (or, with `delete`, deletes) YAML documents with kubectl as the admin.
fn kubectl(verb: &[&str], docs: &[Value]) {
    crate::support::kubectl_documents(shared(), verb, docs);
}

/// The chart's sharding policy and binding for three shards, as shipped, except that the binding matches
/// only this run's objects (other tests share the control plane) and both carry the run in their names.
fn policy_for_run(run: &str) -> Vec<Value> {
    let shards = format!("sharding.shards={SHARDS}");
    let mut docs = helm_template(&["--set", &shards, "--show-only", "templates/sharding.yaml"])
        .expect("the chart renders its sharding policy");
    assert_eq!(docs.len(), 2, "a policy and its binding: {docs:?}");
    let name = format!("navigator-shard-{run}");
    for doc in &mut docs {
        doc["metadata"]["name"] = json!(name);
        if doc["kind"] == "MutatingAdmissionPolicyBinding" {
            doc["spec"]["policyName"] = json!(name);
            doc["spec"]["matchResources"] = json!({"objectSelector": {"matchLabels": {RUN_LABEL: run}}});
        }
    }
    docs
}

/// The first `per_shard` names `<prefix>-NNN` of each shard, in the world's namespace.
fn names_per_shard(namespace: &str, prefix: &str, per_shard: usize) -> Vec<String> {
    let mut taken = BTreeMap::<u32, usize>::new();
    let mut names = Vec::new();
    for i in 0.. {
        let name = format!("{prefix}-{i:03}");
        let count = taken.entry(shard_of(namespace, &name, SHARDS)).or_default();
        if *count < per_shard {
            *count += 1;
            names.push(name);
        }
        if names.len() == per_shard * SHARDS as usize {
            return names;
        }
    }
    unreachable!()
}

fn label_of(obj: &impl ResourceExt) -> Option<u32> {
    obj.labels().get(LABEL).and_then(|v| v.parse().ok())
}

/// The objects (`Kind/namespace/name`, or `Kind/name` when cluster-scoped) the operator's log says it
/// reconciled: the runtime's debug line `reconciled object=...`, written after every reconcile of an
/// object, or of a part of it (`ProviderOrg/<name>/billing`).
fn reconciled_by(log: &str) -> BTreeSet<String> {
    std::fs::read_to_string(log_path(log))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split(" reconciled object=").nth(1))
        .filter_map(|rest| rest.split(' ').next())
        .map(|key| {
            let parts: Vec<&str> = key.split('/').collect();
            let cluster_scoped = matches!(parts[0], "ProviderOrg" | "CloudEndpoint");
            parts[..if cluster_scoped { 2 } else { 3 }.min(parts.len())].join("/")
        })
        .collect()
}

async fn lease(admin: &kube::Client, name: &str) -> Option<Lease> {
    Api::<Lease>::namespaced(admin.clone(), LEASE_NAMESPACE)
        .get_opt(name)
        .await
        .ok()?
}

async fn holder(admin: &kube::Client, name: &str) -> Option<String> {
    lease(admin, name).await?.spec?.holder_identity
}

#[tokio::test]
async fn three_shards_split_the_objects_read_across_shards_and_a_killed_shard_is_taken_over_by_its_standby() {
    let admin = shared().client().await;
    let simulator = Simulator::start("sharding", &["--provision-seconds", "1"]).await;
    // The endpoint, provider and contract are created before the policy: they carry no shard label, and
    // each instance computes their shard from their names, as the policy would have.
    let world = World::new("shard", &simulator, 100).await;
    let ns = world.namespace.clone();
    let policy = policy_for_run(&world.run);
    kubectl(&["apply", "--server-side", "--field-manager=navigator-tests"], &policy);

    // The API server loads a new policy within moments: an update without the label (re-applying the
    // contract) gets it once the policy is in force, with the value the operator computes.
    eventually(WAIT, "the policy to label an updated contract", || async {
        let contract: CommitmentContract = world.contract("main", &["compute"]).await;
        label_of(&contract).filter(|l| *l == shard_of(&ns, "main", SHARDS))
    })
    .await;

    // A name as long as Kubernetes allows stays within the policy's CEL cost limit: a server-side dry run
    // goes through admission and stores nothing.
    let long = format!("c{}", "-0123456789abcdef".repeat(14));
    let contract: CommitmentContract = serde_json::from_value(json!({
        "apiVersion": "navigator.cloudpartner.io/v1alpha1", "kind": "CommitmentContract",
        "metadata": {"name": long, "namespace": ns, "labels": {RUN_LABEL: world.run}},
        "spec": {"contractNumber": "CC-long", "startDate": "2020-01-01", "endDate": "2099-12-31",
                 "services": ["compute"], "endpoints": [world.endpoint],
                 "commitments": [{"metric": "vcpu-hours", "quantity": "1"}]}
    }))
    .unwrap();
    let dry_run = kube::api::PostParams {
        dry_run: true,
        ..Default::default()
    };
    let created = Api::<CommitmentContract>::namespaced(admin.clone(), &ns)
        .create(&dry_run, &contract)
        .await
        .expect("a dry-run create of a contract with a 239-character name");
    assert_eq!(label_of(&created), Some(shard_of(&ns, &long, SHARDS)));

    // Three shards, and a standby for shard 1 (started once its leader holds the lease). Short leases keep
    // the takeover quick; the chart's defaults are 15 s and 5 s.
    let lease_base = format!("shard-{}", world.run);
    let kubeconfig = shared().kubeconfig("admin");
    let start = |shard: u32, role: &str| {
        let identity = format!("{role}-{shard}-{}", world.run);
        let args: Vec<String> = [
            "--shards",
            &SHARDS.to_string(),
            "--shard-index",
            &shard.to_string(),
            "--leader-election",
            "--leader-election-namespace",
            LEASE_NAMESPACE,
            "--leader-election-lease-name",
            &lease_base,
            "--leader-election-lease-seconds",
            "4",
            "--leader-election-renew-margin-seconds",
            "2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let operator = Operator::start_with(&identity, &world.run, &kubeconfig, &args, &[("POD_NAME", &identity)]);
        (identity, operator)
    };
    let mut leaders: Vec<(String, Operator)> = (0..SHARDS).map(|shard| start(shard, "leader")).collect();
    for (shard, (identity, _)) in leaders.iter().enumerate() {
        let name = format!("{lease_base}-shard-{shard}");
        eventually(WAIT, &format!("{identity} to hold {name}"), || async {
            (holder(&admin, &name).await.as_deref() == Some(identity.as_str())).then_some(())
        })
        .await;
    }
    let (standby_identity, standby) = start(1, "standby");

    // Customers in three different shards, and subscriptions four per shard, each on a customer of another
    // shard, so every subscription resolves its customer across shards.
    let customers = names_per_shard(&ns, "cust", 1);
    for customer in &customers {
        world.customer(customer, "Delete").await;
    }
    let customer_in = |shard: u32| -> &str {
        customers
            .iter()
            .find(|c| shard_of(&ns, c, SHARDS) == shard)
            .expect("a customer per shard")
    };
    let subscriptions = names_per_shard(&ns, "web", 4);
    for name in &subscriptions {
        let shard = shard_of(&ns, name, SHARDS);
        world.subscription(name, customer_in((shard + 1) % SHARDS), 1).await;
    }
    let grants = names_per_shard(&ns, "grant", 1);
    for (i, grant) in grants.iter().enumerate() {
        world
            .customer_grant(
                grant,
                &format!("user{i}"),
                "CustomerAdministrator",
                customer_in(i as u32),
            )
            .await;
    }
    assert_eq!(world.all_ready(&world.customers(), WAIT).await, 3);
    assert_eq!(world.all_ready(&world.subscriptions(), WAIT).await, 12);
    assert_eq!(world.all_ready(&world.grants(), WAIT).await, 3);
    let endpoints = Api::<CloudEndpoint>::all(admin.clone());
    let providers = Api::<ProviderOrg>::all(admin.clone());
    eventually(WAIT, "the endpoint and provider to be Ready", || async {
        let endpoint = endpoints.get(&world.endpoint).await.ok()?;
        let provider = providers.get(&ns).await.ok()?;
        (endpoint.is_ready() && provider.is_ready()).then_some(())
    })
    .await;

    // Every object created under the policy carries the shard label the API server gave it, equal to the
    // operator's own computation; the three shards all hold subscriptions.
    let mut labelled = BTreeMap::<u32, usize>::new();
    let run = ListParams::default().labels(&format!("{RUN_LABEL}={}", world.run));
    let subs = world.subscriptions().list(&run).await.unwrap().items;
    for sub in &subs {
        let label = label_of(sub).unwrap_or_else(|| panic!("{} has no shard label", sub.name_any()));
        assert_eq!(label, shard_of(&ns, &sub.name_any(), SHARDS), "{}", sub.name_any());
        *labelled.entry(label).or_default() += 1;
    }
    assert_eq!(
        labelled,
        BTreeMap::from([(0, 4), (1, 4), (2, 4)]),
        "subscriptions per shard"
    );
    for customer in world.customers().list(&run).await.unwrap().items {
        assert_eq!(label_of(&customer), Some(shard_of(&ns, &customer.name_any(), SHARDS)));
    }
    for grant in world.grants().list(&run).await.unwrap().items {
        assert_eq!(label_of(&grant), Some(shard_of(&ns, &grant.name_any(), SHARDS)));
    }
    let endpoint = endpoints.get(&world.endpoint).await.unwrap();
    assert_eq!(label_of(&endpoint), None, "created before the policy, never updated");

    // Each object was reconciled by exactly one instance: the leader of its shard.
    // Objects of this run have no shard label other than the one the policy gave (equal to shard_of, as
    // checked above), so the owner of each is shard_of its key.
    let shard_of_key = |key: &str| -> u32 {
        let parts: Vec<&str> = key.split('/').collect();
        match parts.as_slice() {
            [_, name] => shard_of("", name, SHARDS),
            [_, namespace, name] => shard_of(namespace, name, SHARDS),
            _ => panic!("unexpected object key {key}"),
        }
    };
    let mut seen = BTreeMap::<String, Vec<u32>>::new();
    for (shard, (identity, _)) in leaders.iter().enumerate() {
        let reconciled = reconciled_by(identity);
        assert!(
            reconciled.iter().any(|k| k.starts_with("CloudServiceSubscription/")),
            "shard {shard} reconciled subscriptions: {reconciled:?}"
        );
        for key in reconciled.into_iter().filter(|k| k.contains(&world.run)) {
            seen.entry(key).or_default().push(shard as u32);
        }
    }
    for (key, shards) in &seen {
        assert_eq!(
            shards,
            &vec![shard_of_key(key)],
            "{key} was reconciled by the shards {shards:?}"
        );
    }
    let objects = 3 + 12 + 3 + 2; // customers, subscriptions, grants, the endpoint and the provider
    assert!(seen.len() >= objects, "every object reconciled once: {seen:?}");
    assert!(
        reconciled_by(&standby_identity).is_empty(),
        "the standby reconciled nothing"
    );
    let per_shard: BTreeMap<u32, usize> = seen.values().fold(BTreeMap::new(), |mut acc, shards| {
        *acc.entry(shards[0]).or_default() += 1;
        acc
    });
    println!(
        "objects reconciled per shard: {per_shard:?} (of {} objects)",
        seen.len()
    );

    // SIGKILL shard 1's leader: its lease must expire before the standby takes it. Meanwhile, shard 1 gets
    // a new subscription and a resize, which only its standby can now reconcile.
    let lease_1 = format!("{lease_base}-shard-1");
    let before_kill = lease(&admin, &lease_1).await.expect("shard 1's lease");
    let killed_at = Instant::now();
    leaders[1].1.process.kill();
    let new_name = names_per_shard(&ns, "late", 1)
        .into_iter()
        .find(|n| shard_of(&ns, n, SHARDS) == 1)
        .unwrap();
    world.subscription(&new_name, customer_in(0), 1).await;
    let resized = subscriptions
        .iter()
        .find(|n| shard_of(&ns, n, SHARDS) == 1)
        .unwrap()
        .clone();
    world.subscription(&resized, customer_in(2), 3).await;
    eventually(WAIT, "the standby to take shard 1's lease", || async {
        (holder(&admin, &lease_1).await.as_deref() == Some(standby_identity.as_str())).then_some(())
    })
    .await;
    assert_eq!(world.all_ready(&world.subscriptions(), WAIT).await, 13);
    eventually(WAIT, "the resize to reach the endpoint", || async {
        let page: Value = simulator
            .get_json(&format!(
                "/v1/orgs/{}/instances/{resized}",
                world.tenant(customer_in(2))
            ))
            .await;
        (page["resources"]["vcpu"] == 3 && page["state"] == "Ready").then_some(())
    })
    .await;
    let takeover = killed_at.elapsed();
    let taken = lease(&admin, &lease_1).await.unwrap();
    let gap = match (
        before_kill.spec.and_then(|s| s.renew_time),
        taken.spec.and_then(|s| s.acquire_time),
    ) {
        (Some(renewed), Some(acquired)) => acquired.0.as_millisecond() - renewed.0.as_millisecond(),
        _ => panic!("the lease records its renewal and acquisition"),
    };
    assert!(
        gap >= 0,
        "the standby acquired the lease only after the killed leader's last renewal"
    );
    println!(
        "takeover: shard 1's standby acquired its lease {gap} ms after the killed leader's last renewal (lease 4 s); \
         the new subscription and the resize were done {:.1?} after the kill",
        takeover
    );

    // The standby reconciled shard 1's objects only, the new one among them; no other shard touched them.
    let by_standby = reconciled_by(&standby_identity);
    let new_key = format!("CloudServiceSubscription/{ns}/{new_name}");
    assert!(by_standby.contains(&new_key), "{by_standby:?}");
    for key in by_standby.iter().filter(|k| k.contains(&world.run)) {
        assert_eq!(shard_of_key(key), 1, "the standby of shard 1 reconciled {key}");
    }
    for shard in [0, 2] {
        let reconciled = reconciled_by(&leaders[shard].0);
        assert!(!reconciled.contains(&new_key), "shard {shard} reconciled {new_key}");
        for key in reconciled.iter().filter(|k| k.contains(&world.run)) {
            assert_eq!(shard_of_key(key), shard as u32, "shard {shard} reconciled {key}");
        }
    }

    // Nothing was provisioned twice: one create per organisation and per instance.
    let stats = simulator.stats().await;
    assert_eq!(
        stats.max_creates_per_object, 1,
        "a duplicate create: {:?}",
        stats.creates
    );
    assert_eq!(stats.creates.instances.len(), 13);
    assert_eq!(stats.creates.orgs.len(), 3);

    kubectl(&["delete", "--ignore-not-found"], &policy);
    drop(standby);
    drop(leaders);
}

#[test]
fn the_chart_renders_a_deployment_and_a_lease_per_shard_and_the_policy_only_when_sharded() {
    let args = |docs: &[Value], name: &str| -> Vec<String> {
        let deployment = docs
            .iter()
            .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no Deployment {name}"));
        serde_json::from_value(deployment["spec"]["template"]["spec"]["containers"][0]["args"].clone()).unwrap()
    };
    let kinds = |docs: &[Value], kind: &str| docs.iter().filter(|d| d["kind"] == kind).count();

    let plain = helm_template(&[]).expect("the chart renders with its defaults");
    assert_eq!(kinds(&plain, "Deployment"), 1);
    assert!(!args(&plain, "navigator").iter().any(|a| a.starts_with("--shard")));
    assert_eq!(
        kinds(&plain, "MutatingAdmissionPolicy"),
        0,
        "no policy without sharding"
    );

    let sharded = helm_template(&["--set", "sharding.shards=3"]).expect("the chart renders three shards");
    assert_eq!(kinds(&sharded, "Deployment"), 3);
    for shard in 0..3 {
        let name = format!("navigator-shard-{shard}");
        let args = args(&sharded, &name);
        assert!(args.contains(&"--shards=3".to_string()), "{args:?}");
        assert!(args.contains(&format!("--shard-index={shard}")), "{args:?}");
        let deployment = sharded.iter().find(|d| d["metadata"]["name"] == name.as_str()).unwrap();
        assert_eq!(deployment["spec"]["selector"]["matchLabels"][LABEL], shard.to_string());
        assert_eq!(
            deployment["spec"]["template"]["metadata"]["labels"][LABEL],
            shard.to_string()
        );
    }
    let role = sharded
        .iter()
        .find(|d| d["kind"] == "Role" && d["metadata"]["name"] == "navigator-leader-election")
        .expect("the leader-election Role");
    assert_eq!(
        role["rules"][1]["resourceNames"],
        json!(["navigator-shard-0", "navigator-shard-1", "navigator-shard-2"]),
        "each shard's Lease, as navigator run names it"
    );
    assert_eq!(kinds(&sharded, "MutatingAdmissionPolicy"), 1);
    assert_eq!(kinds(&sharded, "MutatingAdmissionPolicyBinding"), 1);

    for bad in ["sharding.shards=0", "sharding.shards=33"] {
        let error = helm_template(&["--set", bad]).expect_err(bad);
        assert!(
            error.contains("/sharding/shards"),
            "helm's refusal of {bad} names the key: {error}"
        );
    }
}
