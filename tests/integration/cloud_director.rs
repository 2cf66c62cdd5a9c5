//! The engine's scenarios on VMware Cloud Director: the operator with a `driver: CloudDirector` endpoint
//! against the Cloud Director emulator (`navigator simulator --api cloud-director`, over HTTPS with its own
//! CA). Provisioning, resize, suspend, deletion with Delete and Orphan, a customer grant's VCD user, the
//! kill test, faults (5xx, BUSY_ENTITY, expired sessions, a task that fails), and an invoice recomputed from
//! the emulator's audit trail alone. What the emulator holds is read from its `/sim/inventory` and
//! `/sim/stats`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, ListParams};
use navigator::api::{AccessGrant, CloudServiceSubscription, CustomerOrg, Invoice};
use navigator::billing::cluster::usage::rating_records;
use navigator::billing::{BillingCycle, Currency, InvoiceHeader, Price, PriceBook, draft_invoice};
use navigator::endpoint::UsageWindow;
use navigator::endpoint::cloud_director::usage::{AuditEvent, usage_from_audit_trail};
use navigator::simulator::cloud_director::{Inventory, Operation, VcdFaultPatch};
use navigator::simulator::faults::FaultPatch;
use rand::RngExt;
use rust_decimal::Decimal;
use serde_json::json;

use crate::support::{eventually, shared};
use crate::world::{CloudDirector, Conditions, Operator, World};

const WAIT: Duration = Duration::from_secs(180);

/// A provider whose endpoint is the emulator, driven by the CloudDirector driver.
async fn vcd_world(prefix: &str, vcd: &CloudDirector, rate_limit: u32) -> World {
    let endpoint = |world: &World| {
        json!({
            "driver": "CloudDirector",
            "url": vcd.url,
            "caBundle": vcd.ca_pem,
            "credentialsSecretRef": {"name": world.endpoint, "namespace": "default", "key": "token"},
            "rateLimit": {"requestsPerSecond": rate_limit, "burst": 1},
            "maxConcurrentOperations": 16,
            "pollInterval": "5s",
            "requestTimeout": "5s",
            "cloudDirector": {
                "username": vcd.user,
                "providerVdc": "navigator-pvdc",
                "storageProfile": "gold",
                "networkPool": "navigator-pool",
                "vcpuSpeedMHz": 2000
            }
        })
    };
    World::with_endpoint(shared().client().await, prefix, &vcd.password, endpoint).await
}

async fn inventory(vcd: &CloudDirector) -> Inventory {
    vcd.control().inventory().await.expect("the emulator's inventory")
}

/// The organisations the emulator holds, by name, with their VDC names and users (name -> role).
async fn holdings(vcd: &CloudDirector) -> BTreeMap<String, (Vec<String>, BTreeMap<String, String>)> {
    inventory(vcd)
        .await
        .orgs
        .into_iter()
        .map(|org| {
            let mut vdcs: Vec<String> = org.vdcs.iter().map(|v| v.name.clone()).collect();
            vdcs.sort();
            let users = org.users.iter().map(|u| (u.name.clone(), u.role.clone())).collect();
            (org.name, (vdcs, users))
        })
        .collect()
}

async fn vdc_size(vcd: &CloudDirector, org: &str, vdc: &str) -> Option<(i64, i64, i64)> {
    let inventory = inventory(vcd).await;
    let org = inventory.orgs.into_iter().find(|o| o.name == org)?;
    let vdc = org.vdcs.into_iter().find(|v| v.name == vdc)?;
    Some((vdc.cpu_allocated_mhz, vdc.memory_mb, vdc.storage_mb))
}

fn run_params(world: &World) -> ListParams {
    ListParams::default().labels(&format!("{}={}", crate::world::RUN_LABEL, world.run))
}

#[tokio::test]
async fn customers_and_subscriptions_become_orgs_and_vdcs_that_resize_suspend_and_go() {
    let vcd = CloudDirector::start("vcd-basic", &["--provision-seconds", "1"]).await;
    let world = vcd_world("vcd-basic", &vcd, 100).await;
    let _operator = Operator::start(&world.run);
    world.customer("gone", "Delete").await;
    world.customer("kept", "Orphan").await;
    world.subscription("gone-web", "gone", 2).await;
    world
        .apply::<CloudServiceSubscription>(Some(&world.namespace), json!({
            "metadata": {"name": "kept-web"},
            "spec": {"customerOrgRef": {"name": "kept"}, "serviceType": "compute", "resources": {"vcpu": 1, "memoryGiB": 2, "storageGiB": 20}, "deletionPolicy": "Orphan"}
        }))
        .await;
    assert_eq!(world.all_ready(&world.customers(), WAIT).await, 2);
    assert_eq!(world.all_ready(&world.subscriptions(), WAIT).await, 2);

    let held = holdings(&vcd).await;
    assert_eq!(
        held.keys().cloned().collect::<Vec<_>>(),
        vec![world.tenant("gone"), world.tenant("kept")]
    );
    assert_eq!(held[&world.tenant("gone")].0, vec!["gone-web"]);
    // 2 vCPU at 2000 MHz, 2 GiB, 20 GiB.
    assert_eq!(
        vdc_size(&vcd, &world.tenant("gone"), "gone-web").await,
        Some((4000, 2048, 20480))
    );
    let status = world.subscriptions().get("gone-web").await.unwrap().status.unwrap();
    assert!(
        status
            .external_id
            .as_deref()
            .is_some_and(|id| id.starts_with("urn:vcloud:vdc:")),
        "{status:?}"
    );
    assert!(
        status.access_url.as_deref().is_some_and(|u| u.contains("/tenant/")),
        "{status:?}"
    );

    // Resize: more vCPUs (the VDC's compute capacity) and more storage (its storage profile's limit).
    world
        .apply::<CloudServiceSubscription>(Some(&world.namespace), json!({
            "metadata": {"name": "gone-web"},
            "spec": {"customerOrgRef": {"name": "gone"}, "serviceType": "compute", "resources": {"vcpu": 4, "memoryGiB": 2, "storageGiB": 40}}
        }))
        .await;
    eventually(WAIT, "the VDC to be resized", || async {
        (vdc_size(&vcd, &world.tenant("gone"), "gone-web").await == Some((8000, 2048, 40960))).then_some(())
    })
    .await;
    world.all_ready(&world.subscriptions(), WAIT).await;

    // Suspend: the organisation is disabled, then enabled again.
    let suspend = |suspended: bool| {
        json!({
            "metadata": {"name": "gone"},
            "spec": {"displayName": "Customer gone", "tenantName": world.tenant("gone"),
                     "endpointRef": {"name": world.endpoint}, "deletionPolicy": "Delete", "suspended": suspended}
        })
    };
    world.apply::<CustomerOrg>(Some(&world.namespace), suspend(true)).await;
    let org_enabled = |enabled: bool| {
        let vcd = &vcd;
        let tenant = world.tenant("gone");
        async move {
            let inventory = inventory(vcd).await;
            inventory
                .orgs
                .iter()
                .any(|o| o.name == tenant && o.enabled == enabled)
                .then_some(())
        }
    };
    eventually(WAIT, "the organisation to be disabled", || org_enabled(false)).await;
    world.apply::<CustomerOrg>(Some(&world.namespace), suspend(false)).await;
    eventually(WAIT, "the organisation to be enabled again", || org_enabled(true)).await;

    // Deletion: the Delete customer's org and VDC go, the Orphan customer's stay.
    let customers = world.customers();
    customers.delete("gone", &DeleteParams::default()).await.unwrap();
    customers.delete("kept", &DeleteParams::default()).await.unwrap();
    eventually(WAIT, "both customers and their subscriptions to be gone", || async {
        let left = customers.list(&run_params(&world)).await.ok()?.items.len()
            + world.subscriptions().list(&run_params(&world)).await.ok()?.items.len();
        (left == 0).then_some(())
    })
    .await;
    let held = holdings(&vcd).await;
    assert!(!held.contains_key(&world.tenant("gone")), "{held:?}");
    assert_eq!(
        held[&world.tenant("kept")].0,
        vec!["kept-web"],
        "the orphaned VDC stays"
    );
    let stats = vcd.control().stats().await.unwrap();
    println!(
        "cloud director basic: {} requests, by template {:?}",
        stats.requests.total, stats.by_template
    );
}

#[tokio::test]
async fn a_customer_grant_becomes_a_cloud_director_user_with_the_mapped_role_then_goes() {
    let vcd = CloudDirector::start("vcd-grant", &["--provision-seconds", "1"]).await;
    let world = vcd_world("vcd-grant", &vcd, 100).await;
    let _operator = Operator::start(&world.run);
    world.customer("acme", "Delete").await;
    world.all_ready(&world.customers(), WAIT).await;
    let tenant = world.tenant("acme");
    let role_of = |user: &'static str| {
        let vcd = &vcd;
        let tenant = tenant.clone();
        async move { holdings(vcd).await.get(&tenant)?.1.get(user).cloned() }
    };

    world
        .customer_grant("carol-admin", "carol", "CustomerAdministrator", "acme")
        .await;
    eventually(WAIT, "carol to be an Organization Administrator", || async {
        (role_of("carol").await.as_deref() == Some("Organization Administrator")).then_some(())
    })
    .await;
    world
        .customer_grant("carol-admin", "carol", "CustomerUser", "acme")
        .await;
    eventually(WAIT, "carol's role to change to vApp Author", || async {
        (role_of("carol").await.as_deref() == Some("vApp Author")).then_some(())
    })
    .await;
    world
        .grants()
        .delete("carol-admin", &DeleteParams::default())
        .await
        .unwrap();
    eventually(WAIT, "carol's user to be removed", || async {
        role_of("carol").await.is_none().then_some(())
    })
    .await;
    let grants = world.grants();
    eventually(WAIT, "the grant to be gone", || async {
        grants.get_opt("carol-admin").await.ok()?.is_none().then_some(())
    })
    .await;
}

#[tokio::test]
async fn killing_the_operator_on_cloud_director_makes_one_org_user_and_vdc_each() {
    // Creates answer after 300 ms, so kills land between a create's start and its answer.
    let vcd = CloudDirector::start("vcd-kill", &["--provision-seconds", "1", "--create-seconds", "0.3"]).await;
    let world = vcd_world("vcd-kill", &vcd, 200).await;
    let mut operator = Operator::start(&world.run);
    let customers: Vec<String> = (0..20).map(|i| format!("k{i:02}")).collect();
    for customer in &customers {
        world.customer(customer, "Delete").await;
        world
            .customer_grant(
                &format!("{customer}-admin"),
                &format!("admin-{customer}"),
                "CustomerAdministrator",
                customer,
            )
            .await;
    }
    for i in 0..10 {
        for customer in &customers {
            world.subscription(&format!("{customer}-{i}"), customer, 1).await;
        }
    }

    let started = Instant::now();
    let mut kills = 0;
    let mut rng = rand::rng();
    while started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(rng.random_range(500..3000))).await;
        operator.process.kill();
        kills += 1;
        operator.process.start();
    }
    world.all_ready(&world.customers(), Duration::from_secs(600)).await;
    world.all_ready(&world.subscriptions(), Duration::from_secs(600)).await;
    world.all_ready(&world.grants(), Duration::from_secs(600)).await;
    let converged = started.elapsed();

    let held = holdings(&vcd).await;
    let ours: BTreeMap<_, _> = held.iter().filter(|(name, _)| name.starts_with(&world.run)).collect();
    assert_eq!(
        ours.len(),
        customers.len(),
        "one organisation per customer: {:?}",
        ours.keys()
    );
    for customer in &customers {
        let (vdcs, users) = &held[&world.tenant(customer)];
        let expected: Vec<String> = (0..10).map(|i| format!("{customer}-{i}")).collect();
        assert_eq!(vdcs, &expected, "one VDC per subscription of {customer}");
        assert_eq!(
            users.keys().cloned().collect::<Vec<_>>(),
            vec![format!("admin-{customer}")],
            "one user per person in {customer}"
        );
    }
    let stats = vcd.control().stats().await.unwrap();
    assert_eq!(
        (stats.duplicates.orgs, stats.duplicates.users, stats.duplicates.vdcs),
        (0, 0, 0),
        "no duplicates: {:?}",
        stats.duplicates
    );
    println!(
        "cloud director kill test: {kills} SIGKILLs, {} customers, {} subscriptions, {} users; converged in {:?}; \
         {} requests; creates {:?}; duplicates 0",
        customers.len(),
        customers.len() * 10,
        customers.len(),
        converged,
        stats.requests.total,
        stats
            .creates
            .iter()
            .map(|(kind, names)| (kind.clone(), names.values().sum::<u64>()))
            .collect::<BTreeMap<_, _>>()
    );
}

#[tokio::test]
async fn faults_on_cloud_director_converge_and_a_failed_task_reports_vcds_error() {
    let vcd = CloudDirector::start("vcd-faults", &["--provision-seconds", "1"]).await;
    let control = vcd.control();
    control
        .set_faults(&VcdFaultPatch {
            common: FaultPatch {
                rate_5xx: Some(0.1),
                seed: Some(7),
                ..FaultPatch::none()
            },
            fault_busy_rate: Some(0.1),
        })
        .await
        .unwrap();
    let world = vcd_world("vcd-faults", &vcd, 100).await;
    let _operator = Operator::start(&world.run);
    for customer in ["f1", "f2", "f3"] {
        world.customer(customer, "Delete").await;
        for i in 0..5 {
            world.subscription(&format!("{customer}-{i}"), customer, 1).await;
        }
    }
    // Sessions expire while the work is under way: the driver logs in again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    control.expire_sessions().await.unwrap();
    world.all_ready(&world.customers(), WAIT).await;
    world.all_ready(&world.subscriptions(), WAIT).await;
    let stats = control.stats().await.unwrap();
    assert_eq!(
        (stats.duplicates.orgs, stats.duplicates.vdcs),
        (0, 0),
        "no duplicates through faults: {:?}",
        stats.duplicates
    );
    assert_eq!(stats.counts.vdcs as usize, 15, "{:?}", stats.counts);

    // A VDC create whose task fails: the subscription's condition carries Cloud Director's error.
    let why = "No resource pool in provider VDC navigator-pvdc has 2000 MHz free";
    control.fail_next_task(Operation::VdcCreate, why).await.unwrap();
    world.subscription("f1-failing", "f1", 1).await;
    let subscriptions = world.subscriptions();
    let message = eventually(
        WAIT,
        "the failed task's error in the subscription's condition",
        || async {
            let sub = subscriptions.get("f1-failing").await.ok()?;
            let ready = sub.condition("Ready")?;
            ready
                .message
                .contains(why)
                .then_some(format!("{}: {}", ready.reason, ready.message))
        },
    )
    .await;
    let faults = control.stats().await.unwrap().faults;
    println!(
        "cloud director faults: injected {faults:?}; {} requests; sessions expired once; failed task reported as {message:?}",
        stats.requests.total
    );
}

#[tokio::test]
async fn an_api_token_endpoint_provisions_but_stalls_user_management_saying_why() {
    let vcd = CloudDirector::start(
        "vcd-token",
        &["--provision-seconds", "1", "--api-token", "navigator-test-api-token"],
    )
    .await;
    let endpoint = |world: &World| {
        json!({
            "driver": "CloudDirector",
            "url": vcd.url,
            "caBundle": vcd.ca_pem,
            "credentialsSecretRef": {"name": world.endpoint, "namespace": "default", "key": "token"},
            "pollInterval": "5s",
            "cloudDirector": {"username": vcd.user, "credential": "ApiToken", "providerVdc": "navigator-pvdc", "storageProfile": "gold"}
        })
    };
    let world = World::with_endpoint(
        shared().client().await,
        "vcd-token",
        "navigator-test-api-token",
        endpoint,
    )
    .await;
    let _operator = Operator::start(&world.run);
    world.customer("tok", "Delete").await;
    world.subscription("tok-web", "tok", 1).await;
    world.all_ready(&world.subscriptions(), WAIT).await;
    world
        .customer_grant("tok-admin", "tom", "CustomerAdministrator", "tok")
        .await;
    let grants = world.grants();
    let message = eventually(WAIT, "the grant to stall on user management", || async {
        let grant: AccessGrant = grants.get("tok-admin").await.ok()?;
        let ready = grant.condition("Ready")?;
        (ready.reason == "Unsupported").then_some(ready.message)
    })
    .await;
    assert!(message.contains("API token"), "{message}");
}

/// Every audit trail event of organisation `org`, read as anyone with the provider's password can: a fresh
/// login, then `GET /cloudapi/1.0.0/auditTrail` page by page (two events a page, so paging counts).
async fn audit_trail_of(vcd: &CloudDirector, org: &str) -> Vec<AuditEvent> {
    let ca = reqwest::Certificate::from_pem(vcd.ca_pem.as_bytes()).unwrap();
    let http = reqwest::Client::builder().tls_certs_only([ca]).build().unwrap();
    const JSON: &str = "application/json;version=38.0";
    let login = http
        .post(format!("{}/cloudapi/1.0.0/sessions/provider", vcd.url))
        .basic_auth(format!("{}@System", vcd.user), Some(&vcd.password))
        .header("Accept", JSON)
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200, "the login");
    let token = login.headers()["x-vmware-vcloud-access-token"]
        .to_str()
        .unwrap()
        .to_owned();
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Page {
        page_count: u64,
        values: Vec<serde_json::Value>,
    }
    let mut events = Vec::new();
    let mut page = 1u64;
    loop {
        let answer: Page = http
            .get(format!("{}/cloudapi/1.0.0/auditTrail", vcd.url))
            .query(&[
                ("filter", format!("tenant.name=={org}")),
                ("page", page.to_string()),
                ("pageSize", "2".to_owned()),
            ])
            .bearer_auth(&token)
            .header("Accept", JSON)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        for value in answer.values {
            assert_eq!(
                value["tenant"]["name"], org,
                "the filter keeps one organisation's events"
            );
            events.push(serde_json::from_value(value).unwrap());
        }
        if page >= answer.page_count {
            return events;
        }
        page += 1;
    }
}

/// The provider's prices of compute: metric, unit, price in EUR.
const PRICES: [(&str, &str, &str); 3] = [
    ("vcpu-hours", "vCPU-hour", "0.0250"),
    ("memory-gib-hours", "GiB-hour", "0.0040"),
    ("storage-gib-hours", "GiB-hour", "0.0002"),
];

/// A subscription's spec with these resources.
fn compute(name: &str, customer: &str, vcpu: u32, memory_gib: u32, storage_gib: u32) -> serde_json::Value {
    json!({
        "metadata": {"name": name},
        "spec": {"customerOrgRef": {"name": customer}, "serviceType": "compute",
                 "resources": {"vcpu": vcpu, "memoryGiB": memory_gib, "storageGiB": storage_gib}}
    })
}

#[tokio::test]
async fn an_invoice_from_cloud_director_is_recomputed_identical_from_its_audit_trail_alone() {
    // Tasks end at once and the emulator's clock stands where the test sets it: the history below lies in
    // the last closed billing period to the second, and the operator bills it as it would after the month.
    let vcd = CloudDirector::start("vcd-invoice", &["--provision-seconds", "0"]).await;
    let control = vcd.control();
    let cycle = BillingCycle::utc(1).unwrap();
    let closed = cycle.last_closed(Timestamp::now()).unwrap();
    let (ps, pe) = (closed.start(), closed.end());
    let at = |hours: i64| ps + SignedDuration::from_hours(hours);
    let world = vcd_world("vcd-invoice", &vcd, 100).await;
    let _operator = Operator::start(&world.run);
    let tenant = world.tenant("acme");
    let subscriptions = world.subscriptions();
    let subscribe = |spec: serde_json::Value| world.apply::<CloudServiceSubscription>(Some(&world.namespace), spec);
    let settled = |name: &'static str| {
        let subscriptions = &subscriptions;
        async move {
            let sub = subscriptions.get(name).await.ok()?;
            let observed = sub.status.as_ref()?.observed_generation;
            (sub.is_ready() && observed == sub.metadata.generation).then_some(())
        }
    };
    let sized = |vdc: &'static str, size: Option<(i64, i64, i64)>| {
        let (vcd, tenant) = (&vcd, &tenant);
        async move { (vdc_size(vcd, tenant, vdc).await == size).then_some(()) }
    };

    // web: 4 vCPU, 8 GiB, 100 GiB from 02:00 on the first day; 8 vCPU, 16 GiB, 200 GiB from 12:00; deleted
    // at 17:00. db: 2 vCPU, 4 GiB, 50 GiB from 03:00 to the end of the period, resized after it.
    control.set_clock(at(2)).await.unwrap();
    world.customer("acme", "Delete").await;
    subscribe(compute("web", "acme", 4, 8, 100)).await;
    eventually(WAIT, "web to be provisioned", || settled("web")).await;
    control.set_clock(at(3)).await.unwrap();
    subscribe(compute("db", "acme", 2, 4, 50)).await;
    eventually(WAIT, "db to be provisioned", || settled("db")).await;
    control.set_clock(at(12)).await.unwrap();
    subscribe(compute("web", "acme", 8, 16, 200)).await;
    eventually(WAIT, "web's VDC to be resized", || {
        sized("web", Some((16000, 16384, 204800)))
    })
    .await;
    eventually(WAIT, "web to be resized", || settled("web")).await;
    control.set_clock(at(17)).await.unwrap();
    subscriptions.delete("web", &DeleteParams::default()).await.unwrap();
    eventually(WAIT, "web to be deleted", || async {
        subscriptions.get_opt("web").await.ok()?.is_none().then_some(())
    })
    .await;
    assert_eq!(vdc_size(&vcd, &tenant, "web").await, None, "web's VDC is gone");
    control.set_clock(pe + SignedDuration::from_hours(2)).await.unwrap();
    subscribe(compute("db", "acme", 6, 4, 50)).await;
    eventually(WAIT, "db's VDC to be resized", || {
        sized("db", Some((12000, 4096, 51200)))
    })
    .await;

    // Only now does the provider bill (an invoice, once issued, never changes): EUR, 21 % tax.
    let price_book: Vec<serde_json::Value> = PRICES
        .iter()
        .map(|(metric, unit, price)| json!({"service": "compute", "metric": metric, "unit": unit, "unitPrice": price}))
        .collect();
    world
        .bill(json!({"currency": "EUR", "billingDay": 1, "taxRate": "0.21", "priceBook": price_book}))
        .await;
    let invoices = Api::<Invoice>::namespaced(world.client.clone(), &format!("{}-acme", world.namespace));
    let name = format!("acme-{}", closed.label());
    let invoice = eventually(WAIT, "acme's invoice to be issued", || async {
        let invoice = invoices.get_opt(&name).await.ok()??;
        invoice.status.as_ref()?.phase.is_some().then_some(invoice)
    })
    .await;

    // What was allocated: web 4 vCPU × 10 h + 8 vCPU × 5 h = 80 vCPU-hours, 8 × 10 + 16 × 5 = 160 GiB-hours
    // of memory, 100 × 10 + 200 × 5 = 2000 of storage; db 2 vCPU, 4 GiB, 50 GiB for the period but its
    // first three hours. A driver that sampled the VDCs at billing time would find web gone and db at 6 vCPU.
    let db_hours = Decimal::from(at(3).duration_until(pe).as_secs() / 3600);
    let quantities: Vec<(&str, &str, Decimal)> = invoice
        .spec
        .line_items
        .iter()
        .map(|l| (l.subscription.as_str(), l.metric.as_str(), l.quantity))
        .collect();
    assert_eq!(
        quantities,
        vec![
            ("db", "memory-gib-hours", db_hours * Decimal::from(4)),
            ("db", "storage-gib-hours", db_hours * Decimal::from(50)),
            ("db", "vcpu-hours", db_hours * Decimal::from(2)),
            ("web", "memory-gib-hours", Decimal::from(160)),
            ("web", "storage-gib-hours", Decimal::from(2000)),
            ("web", "vcpu-hours", Decimal::from(80)),
        ],
        "{:#?}",
        invoice.spec
    );

    // The same invoice from the endpoint alone: the audit trail read afresh, integrated by the usage
    // functions, rated with the provider's price book.
    let events = audit_trail_of(&vcd, &tenant).await;
    let records = usage_from_audit_trail(&events, UsageWindow::new(ps, pe).unwrap(), &BTreeMap::new());
    let book = PriceBook::new(
        PRICES
            .iter()
            .map(|(metric, unit, price)| Price::flat("compute", metric, unit, price.parse().unwrap())),
    )
    .unwrap();
    let header = InvoiceHeader {
        customer: "acme".into(),
        provider: world.namespace.clone(),
        reseller: None,
        period: closed.clone(),
        currency: Currency::from_code("EUR").unwrap(),
        tax_rate: "0.21".parse().unwrap(),
    };
    let recomputed = draft_invoice(header, &rating_records("acme", records), &book).unwrap();
    assert_eq!(
        recomputed.spec(&world.namespace),
        invoice.spec,
        "every line, the subtotal, tax and total recomputed from the audit trail"
    );
    println!(
        "cloud director invoice {name}: {} lines, subtotal {} tax {} total {} {}; recomputed identical from {} audit \
         trail events",
        invoice.spec.line_items.len(),
        invoice.spec.subtotal,
        invoice.spec.tax,
        invoice.spec.total,
        invoice.spec.currency,
        events.len()
    );
}
