//! A tenant on an endpoint belongs to exactly one CustomerOrg, as users meet it: a second CustomerOrg naming
//! a tenant another one holds stalls with `TenantClaimed` and a Warning Event and touches nothing on the
//! endpoint (in the same provider, across providers as a real user of another provider, in a race of two
//! operators with different selectors, across an operator restart); an unclaimed tenant that exists on the
//! endpoint is adopted and says so. Every operator here runs with the Helm chart's ServiceAccount, so the
//! chart's RBAC is what the claims are made with.

use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use navigator::api::access_grant::Role;
use navigator::api::tenant_claim::claim_name;
use navigator::api::{AccessGrant, CloudEndpoint, CloudServiceSubscription, CustomerOrg, TenantClaim};
use navigator::endpoint::OrgDesired;
use navigator::simulator::SimControl;
use serde_json::json;

use crate::support::{eventually, shared};
use crate::world::{Conditions, Operator, RUN_LABEL, Simulator, TOKEN, World};

const WAIT: Duration = Duration::from_secs(120);

/// A world of its own on its own simulator (instances ready at once).
async fn world(prefix: &str) -> (Simulator, World) {
    let simulator = Simulator::start(prefix, &["--provision-seconds", "0"]).await;
    let world = World::new(prefix, &simulator, 50).await;
    (simulator, world)
}

/// The operator of a world, as the chart's ServiceAccount.
async fn operator(world: &World) -> Operator {
    let kubeconfig = chart_identity(&world.run).await;
    Operator::start_with(&format!("operator-{}", world.run), &world.run, &kubeconfig, &[], &[])
}

/// A kubeconfig for the Helm chart's ServiceAccount (the chart installed once per test binary).
async fn chart_identity(name: &str) -> std::path::PathBuf {
    crate::access::install_access_templates().await;
    crate::packaging::service_account_kubeconfig(&shared().client().await, name).await
}

/// A CustomerOrg of `world`'s provider (or of `namespace`) with an explicit tenant.
async fn customer(world: &World, namespace: &str, name: &str, tenant: &str, policy: &str) -> CustomerOrg {
    world
        .apply(
            Some(namespace),
            json!({
                "metadata": {"name": name},
                "spec": {
                    "displayName": format!("Customer {name}"),
                    "tenantName": tenant,
                    "endpointRef": {"name": world.endpoint},
                    "deletionPolicy": policy
                }
            }),
        )
        .await
}

/// The Ready condition once the CustomerOrg has settled: Ready, or refused its tenant.
async fn settled(api: &Api<CustomerOrg>, name: &str) -> Condition {
    eventually(
        WAIT,
        &format!("CustomerOrg {name} to be Ready or refused its tenant"),
        || async {
            let ready = api.get(name).await.ok()?.condition("Ready")?;
            (ready.status == "True" || ready.reason == "TenantClaimed").then_some(ready)
        },
    )
    .await
}

/// Waits for `name` to be refused its tenant, and returns the Ready condition's message.
async fn refused(api: &Api<CustomerOrg>, name: &str) -> String {
    let ready = settled(api, name).await;
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "TenantClaimed"),
        "CustomerOrg {name} must not get a tenant another CustomerOrg holds: {}",
        ready.message
    );
    let stalled = api.get(name).await.unwrap().condition("Stalled").unwrap();
    assert_eq!(stalled.status, "True", "a refused tenant needs the user: Stalled");
    ready.message
}

async fn warning_event(client: &kube::Client, namespace: &str, name: &str, reason: &str) {
    let params = ListParams::default().fields(&format!("involvedObject.name={name}"));
    let events = Api::<Event>::namespaced(client.clone(), namespace);
    eventually(WAIT, &format!("a Warning event {reason} on {name}"), || async {
        let list = events.list(&params).await.ok()?;
        list.items
            .iter()
            .any(|e| e.type_.as_deref() == Some("Warning") && e.reason.as_deref() == Some(reason))
            .then_some(())
    })
    .await;
}

async fn claim_of(client: &kube::Client, endpoint: &str, tenant: &str) -> Option<TenantClaim> {
    Api::<TenantClaim>::all(client.clone())
        .get_opt(&claim_name(endpoint, tenant))
        .await
        .unwrap()
}

async fn gone<K>(api: &Api<K>, name: &str)
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    eventually(WAIT, &format!("{name} to be deleted"), || async {
        api.get_opt(name).await.ok()?.is_none().then_some(())
    })
    .await;
}

async fn instance_vcpu(simulator: &Simulator, tenant: &str, name: &str) -> i64 {
    let page: serde_json::Value = simulator.get_json(&format!("/v1/orgs/{tenant}/instances/{name}")).await;
    page["resources"]["vcpu"].as_i64().expect("an instance with resources")
}

#[tokio::test]
async fn a_second_customer_org_for_a_held_tenant_stalls_and_deleting_it_leaves_the_tenant_alone() {
    let (simulator, world) = world("claim-same").await;
    let _operator = operator(&world).await;
    let tenant = world.tenant("first");
    world.customer("first", "Delete").await;
    world.subscription("first-vm", "first", 2).await;
    world.all_ready(&world.subscriptions(), WAIT).await;

    customer(&world, &world.namespace, "second", &tenant, "Delete").await;
    let customers = world.customers();
    let message = refused(&customers, "second").await;
    assert!(
        message.contains(&format!(
            "tenant {tenant} on endpoint {} is already claimed by CustomerOrg first of the same provider",
            world.endpoint
        )),
        "{message}"
    );
    warning_event(&world.client, &world.namespace, "second", "TenantClaimed").await;
    let second = customers.get("second").await.unwrap();
    assert!(
        second.status.as_ref().unwrap().external_id.is_none(),
        "the refused CustomerOrg records nothing of the tenant"
    );
    let first = customers.get("first").await.unwrap();
    assert!(first.is_ready(), "the holder stays Ready");
    let claim = claim_of(&world.client, &world.endpoint, &tenant)
        .await
        .expect("a claim");
    assert_eq!(
        (
            claim.spec.customer_org_ref.name.as_str(),
            claim.spec.customer_org_ref.uid.clone()
        ),
        ("first", first.uid().unwrap())
    );
    assert!(!claim.spec.adopted, "the first CustomerOrg created its tenant");

    customers.delete("second", &DeleteParams::default()).await.unwrap();
    gone(&customers, "second").await;
    assert!(
        simulator.org_names().await.contains(&tenant),
        "deleting the refused CustomerOrg must not delete the holder's tenant"
    );
    assert_eq!(simulator.instance_names(&tenant).await, vec!["first-vm"]);
    assert!(customers.get("first").await.unwrap().is_ready());
    let claim = claim_of(&world.client, &world.endpoint, &tenant)
        .await
        .expect("the claim stays");
    assert_eq!(claim.spec.customer_org_ref.name, "first");
}

#[tokio::test]
async fn a_user_of_another_provider_can_neither_claim_a_tenant_nor_get_a_user_or_instance_in_it() {
    let (simulator, world) = world("claim-cross").await;
    let _operator = operator(&world).await;
    let provider_a = world.namespace.clone();
    // Provider A's customer, with a name that must not reach provider B.
    let tenant = world.tenant("shared");
    customer(&world, &provider_a, "initech-private", &tenant, "Delete").await;
    world.subscription("vm", "initech-private", 3).await;
    world.all_ready(&world.subscriptions(), WAIT).await;

    // Provider B, onboarded by the platform team on the same endpoint; dave administers it and only it.
    let provider_b = world.other_provider("q").await;
    world
        .apply::<AccessGrant>(
            Some(&provider_b),
            json!({
                "metadata": {"name": "dave-admin"},
                "spec": {"subject": {"kind": "User", "name": "dave"}, "role": Role::ProviderAdministrator.as_str()}
            }),
        )
        .await;
    let admin_grants = Api::<AccessGrant>::namespaced(world.client.clone(), &provider_b);
    eventually(WAIT, "dave to administer provider B", || async {
        admin_grants.get("dave-admin").await.ok()?.is_ready().then_some(())
    })
    .await;
    let dave = shared().client_as("dave").await;
    assert!(
        Api::<CustomerOrg>::namespaced(dave.clone(), &provider_a)
            .list(&ListParams::default())
            .await
            .is_err(),
        "dave has no rights in provider A"
    );

    // As dave: a CustomerOrg naming provider A's tenant, a grant making himself its administrator, and a
    // subscription named like provider A's instance.
    let labels = json!({RUN_LABEL: world.run});
    let ssa = PatchParams::apply("dave").force();
    let as_dave = |kind: &str, name: &str, spec: serde_json::Value| {
        json!({"apiVersion": "navigator.cloudpartner.io/v1alpha1", "kind": kind,
               "metadata": {"name": name, "labels": labels}, "spec": spec})
    };
    let dave_customers = Api::<CustomerOrg>::namespaced(dave.clone(), &provider_b);
    dave_customers
        .patch(
            "takeover",
            &ssa,
            &Patch::Apply(as_dave(
                "CustomerOrg",
                "takeover",
                json!({"displayName": "Takeover", "tenantName": tenant, "endpointRef": {"name": world.endpoint}}),
            )),
        )
        .await
        .expect("dave may create customer orgs in provider B");
    let dave_grants = Api::<AccessGrant>::namespaced(dave.clone(), &provider_b);
    dave_grants
        .patch(
            "dave-takeover",
            &ssa,
            &Patch::Apply(as_dave(
                "AccessGrant",
                "dave-takeover",
                json!({"subject": {"kind": "User", "name": "dave", "email": "dave@example.test"},
                       "role": Role::CustomerAdministrator.as_str(), "scope": {"customerOrgRef": {"name": "takeover"}}}),
            )),
        )
        .await
        .expect("dave may grant customer roles in provider B");
    let dave_subscriptions = Api::<CloudServiceSubscription>::namespaced(dave.clone(), &provider_b);
    dave_subscriptions
        .patch(
            "vm",
            &ssa,
            &Patch::Apply(as_dave(
                "CloudServiceSubscription",
                "vm",
                json!({"customerOrgRef": {"name": "takeover"}, "serviceType": "compute",
                       "resources": {"vcpu": 1, "memoryGiB": 2, "storageGiB": 20}}),
            )),
        )
        .await
        .expect("dave may create subscriptions in provider B");

    // What dave sees: refused, naming provider A and nothing of its customer.
    let message = refused(&dave_customers, "takeover").await;
    assert!(
        message.contains(&format!(
            "tenant {tenant} on endpoint {} is already claimed by a customer of provider {provider_a}",
            world.endpoint
        )),
        "{message}"
    );
    assert!(
        !message.contains("initech"),
        "another provider's customer is private: {message}"
    );
    warning_event(&dave, &provider_b, "takeover", "TenantClaimed").await;
    let claims = Api::<TenantClaim>::all(dave.clone());
    assert!(
        claims.get(&claim_name(&world.endpoint, &tenant)).await.is_err(),
        "claims name other providers' customers: providers may not read them"
    );
    eventually(
        WAIT,
        "dave's grant and subscription to stall on the refused tenant",
        || async {
            let grant = dave_grants.get("dave-takeover").await.ok()?.condition("Ready")?;
            let sub = dave_subscriptions.get("vm").await.ok()?.condition("Ready")?;
            (grant.reason == "TenantClaimed" && sub.reason == "TenantClaimed").then_some(())
        },
    )
    .await;
    assert!(
        !crate::access::endpoint_users(&simulator, &tenant)
            .await
            .contains_key("dave"),
        "dave must not become a user of provider A's tenant"
    );
    assert_eq!(
        instance_vcpu(&simulator, &tenant, "vm").await,
        3,
        "provider A's instance keeps provider A's spec"
    );

    // Dave deletes all of it: provider A's tenant, instance and customer stay as they were.
    dave_subscriptions.delete("vm", &DeleteParams::default()).await.unwrap();
    dave_grants
        .delete("dave-takeover", &DeleteParams::default())
        .await
        .unwrap();
    dave_customers
        .delete("takeover", &DeleteParams::default())
        .await
        .unwrap();
    gone(&dave_subscriptions, "vm").await;
    gone(&dave_grants, "dave-takeover").await;
    gone(&dave_customers, "takeover").await;
    assert_eq!(simulator.instance_names(&tenant).await, vec!["vm"]);
    assert!(
        Api::<CustomerOrg>::namespaced(world.client.clone(), &provider_a)
            .get("initech-private")
            .await
            .unwrap()
            .is_ready()
    );
    let claim = claim_of(&world.client, &world.endpoint, &tenant)
        .await
        .expect("A's claim stays");
    assert_eq!(claim.spec.provider_org_ref.name, provider_a);
}

#[tokio::test]
async fn two_operators_with_different_selectors_racing_for_one_tenant_give_it_to_exactly_one() {
    let (simulator, world) = world("claim-race").await;
    // Two shards of one run: each operator sees the shared objects and one of the two customers.
    let kubeconfig = chart_identity(&format!("{}-shards", world.run)).await;
    let shard = "navigator.test/shard";
    let operators: Vec<Operator> = ["a", "b"]
        .iter()
        .zip(["b", "a"])
        .map(|(own, other)| {
            Operator::start_selecting(
                &format!("operator-{}-{own}", world.run),
                &format!("{RUN_LABEL}={},{shard}!={other}", world.run),
                &kubeconfig,
                &[],
                &[],
            )
        })
        .collect();
    for operator in &operators {
        operator.until_ready(WAIT).await;
    }

    let tenant = world.tenant("contested");
    let create = |name: &'static str, own: &'static str| {
        world.apply::<CustomerOrg>(
            Some(&world.namespace),
            json!({
                "metadata": {"name": name, "labels": {shard: own}},
                "spec": {"displayName": name, "tenantName": tenant, "endpointRef": {"name": world.endpoint}}
            }),
        )
    };
    let (x, y) = tokio::join!(create("x", "a"), create("y", "b"));
    println!(
        "created x at {:?} and y at {:?}",
        x.meta().creation_timestamp,
        y.meta().creation_timestamp
    );

    let customers = world.customers();
    let (ready_x, ready_y) = (settled(&customers, "x").await, settled(&customers, "y").await);
    let winners: Vec<&str> = [("x", &ready_x), ("y", &ready_y)]
        .iter()
        .filter(|(_, c)| c.status == "True")
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one CustomerOrg holds the tenant: x {ready_x:?}, y {ready_y:?}"
    );
    let winner = customers.get(winners[0]).await.unwrap();
    let claim = claim_of(&world.client, &world.endpoint, &tenant)
        .await
        .expect("a claim");
    assert_eq!(Some(claim.spec.customer_org_ref.uid), winner.uid());
    assert_eq!(simulator.org_names().await.iter().filter(|o| **o == tenant).count(), 1);
}

#[tokio::test]
async fn an_unclaimed_tenant_that_exists_is_adopted_and_says_so_also_after_an_orphaning_delete() {
    let (simulator, world) = world("claim-adopt").await;
    let legacy = world.tenant("legacy");
    let org = OrgDesired {
        display_name: "Legacy customer".into(),
        enabled: true,
    };
    SimControl::new(&simulator.url, TOKEN.into())
        .apply_org_at(jiff::Timestamp::now(), &legacy, &org)
        .await
        .unwrap();
    let _operator = operator(&world).await;
    customer(&world, &world.namespace, "legacy", &legacy, "Delete").await;
    world.customer("fresh", "Orphan").await;
    let customers = world.customers();
    world.all_ready(&customers, WAIT).await;

    let adopted = customers.get("legacy").await.unwrap();
    assert!(adopted.status.as_ref().unwrap().adopted, "status.adopted");
    let message = adopted.condition("Ready").unwrap().message;
    assert!(
        message.contains("it existed there before this CustomerOrg and was adopted"),
        "{message}"
    );
    assert!(
        claim_of(&world.client, &world.endpoint, &legacy)
            .await
            .unwrap()
            .spec
            .adopted
    );
    let fresh = customers.get("fresh").await.unwrap();
    assert!(!fresh.status.as_ref().unwrap().adopted);
    assert!(!fresh.condition("Ready").unwrap().message.contains("adopted"));
    let fresh_tenant = world.tenant("fresh");
    assert!(
        !claim_of(&world.client, &world.endpoint, &fresh_tenant)
            .await
            .unwrap()
            .spec
            .adopted
    );

    // Deleted with Orphan, the tenant stays and its claim goes: the next CustomerOrg adopts it.
    customers.delete("fresh", &DeleteParams::default()).await.unwrap();
    gone(&customers, "fresh").await;
    assert!(simulator.org_names().await.contains(&fresh_tenant));
    assert!(claim_of(&world.client, &world.endpoint, &fresh_tenant).await.is_none());
    customer(&world, &world.namespace, "heir", &fresh_tenant, "Delete").await;
    let ready = settled(&customers, "heir").await;
    assert_eq!(ready.status, "True", "{}", ready.message);
    assert!(customers.get("heir").await.unwrap().status.unwrap().adopted);
}

#[tokio::test]
async fn a_claim_holds_across_an_operator_restart() {
    let (_simulator, world) = world("claim-restart").await;
    let mut operator = operator(&world).await;
    let tenant = world.tenant("first");
    world.customer("first", "Delete").await;
    let customers = world.customers();
    world.all_ready(&customers, WAIT).await;
    let before = claim_of(&world.client, &world.endpoint, &tenant).await;

    // The second CustomerOrg arrives while the operator is down.
    operator.process.kill();
    customer(&world, &world.namespace, "second", &tenant, "Delete").await;
    operator.process.start();
    refused(&customers, "second").await;
    assert!(customers.get("first").await.unwrap().is_ready());
    let after = claim_of(&world.client, &world.endpoint, &tenant)
        .await
        .expect("the claim");
    assert_eq!(
        Some(after.uid()),
        before.map(|c| c.uid()),
        "the same claim, never handed over"
    );
    assert_eq!(after.spec.customer_org_ref.name, "first");
}

#[tokio::test]
async fn deleting_a_customer_whose_endpoint_left_the_cache_deletes_its_tenant_on_the_api_servers_word() {
    let (simulator, world) = world("claim-cache").await;
    let operator = operator(&world).await;
    let tenant = world.tenant("leaving");
    world.customer("leaving", "Delete").await;
    let customers = world.customers();
    world.all_ready(&customers, WAIT).await;

    // The endpoint leaves this operator's selector, and so its cache; it still exists.
    let endpoints = Api::<CloudEndpoint>::all(world.client.clone());
    let unlabel = json!({"metadata": {"labels": {RUN_LABEL: null}}});
    endpoints
        .patch(&world.endpoint, &PatchParams::default(), &Patch::Merge(&unlabel))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    eventually(WAIT, "the endpoint to leave the operator's cache", || async {
        let text = http
            .get(format!("{}/metrics", operator.url))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let cached: f64 = text
            .lines()
            .filter(|l| l.starts_with(r#"navigator_objects{kind="CloudEndpoint""#))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        (cached == 0.0).then_some(())
    })
    .await;
    customers.delete("leaving", &DeleteParams::default()).await.unwrap();
    gone(&customers, "leaving").await;
    assert!(
        !simulator.org_names().await.contains(&tenant),
        "the tenant is deleted: the endpoint was only missing from a cache"
    );
    assert!(claim_of(&world.client, &world.endpoint, &tenant).await.is_none());
}

#[tokio::test]
async fn claim_names_are_valid_object_names_for_any_endpoint_and_tenant() {
    let client = shared().client().await;
    crate::api::install_crds(&client).await;
    let claims = Api::<TenantClaim>::all(client);
    let long_endpoint = format!("{}.example.com", "e".repeat(200));
    let long_tenant = "t".repeat(63);
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    for (endpoint, tenant) in [
        ("cloud", "globex"),
        ("cloud.example.com", "globex"),
        (long_endpoint.as_str(), long_tenant.as_str()),
        ("cloud", "Globex"),
    ] {
        let claim: TenantClaim = serde_json::from_value(json!({
            "apiVersion": "navigator.cloudpartner.io/v1alpha1", "kind": "TenantClaim",
            "metadata": {"name": claim_name(endpoint, tenant)},
            "spec": {"endpointRef": {"name": endpoint}, "tenantName": tenant,
                     "customerOrgRef": {"namespace": "acme", "name": "globex", "uid": "u-1"},
                     "providerOrgRef": {"name": "acme"}}
        }))
        .unwrap();
        claims
            .create(&dry_run, &claim)
            .await
            .unwrap_or_else(|e| panic!("{endpoint}/{tenant}: {e}"));
    }
}
