//! Billing against the real apiserver and the simulator over HTTP: invoices of a closed period whose totals
//! are computed by hand here, written again identical when deleted and untouched when the operator runs
//! again; the views in ProviderOrg and CommitmentContract status; what a reseller is attributed; the CSV and
//! JSON exports as a user with read access only; and a contract that expires stopping new provisioning.
//!
//! The operator runs on the real clock, so usage is placed in the *last closed* billing period through the
//! simulator's `X-Simulator-Time` header: instances are created and deleted there, dated in the past, before
//! the operator starts, and the operator bills that period as it would after the month ended.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use navigator::api::{CloudServiceSubscription, CommitmentContract, CustomerOrg, Invoice, ProviderOrg};
use navigator::billing::BillingCycle;
use navigator::endpoint::{InstanceDesired, OrgDesired, Resources, Secret};
use navigator::simulator::SimControl;
use rust_decimal::Decimal;
use serde_json::json;

use crate::support::{eventually, shared};
use crate::world::{Conditions, Operator, Simulator, TOKEN, World};

const WAIT: Duration = Duration::from_secs(120);

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn hours(h: i64) -> SignedDuration {
    SignedDuration::from_hours(h)
}

fn compute(vcpu: u32, memory_gib: u32, storage_gib: u32) -> InstanceDesired {
    InstanceDesired {
        service_type: "compute".into(),
        resources: Resources {
            vcpu,
            memory_gib,
            storage_gib,
        },
        parameters: Default::default(),
    }
}

/// One instance's life on the simulator: created at `from`, maybe resized, deleted at `until`.
struct Run {
    customer: &'static str,
    name: &'static str,
    desired: InstanceDesired,
    from: Timestamp,
    resize: Option<(Timestamp, InstanceDesired)>,
    until: Timestamp,
}

/// `navigator run` for this world, re-checking every object every 5 seconds (the shortest resync): the
/// reseller's ProviderOrg counts the invoices attributed to it at its next reconcile, which would otherwise
/// be up to ten minutes later.
fn operator(world: &World) -> Operator {
    Operator::start_with(
        &format!("operator-{}", world.run),
        &world.run,
        &shared().kubeconfig("admin"),
        &["--resync-seconds", "5"],
        &[],
    )
}

/// Runs the `navigator` binary as `identity` and returns its standard output; panics with its error output
/// when it fails.
fn navigator_as(identity: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_navigator"))
        .args(args)
        .env("KUBECONFIG", shared().kubeconfig(identity))
        .output()
        .expect("running navigator");
    assert!(
        output.status.success(),
        "navigator {args:?} as {identity} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

fn csv_rows(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    reader
        .records()
        .map(|r| {
            header
                .iter()
                .cloned()
                .zip(r.unwrap().iter().map(String::from))
                .collect()
        })
        .collect()
}

async fn issued(api: &Api<Invoice>, name: &str) -> Option<Invoice> {
    let invoice = api.get_opt(name).await.ok()??;
    let status = invoice.status.as_ref()?;
    (status.phase.is_some()
        && status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True"))
    .then_some(invoice)
}

/// Gives `user` read access to invoices in `namespaces` and to CustomerOrgs in `provider_namespace`, and
/// nothing else.
async fn grant_read_access(client: &kube::Client, user: &str, provider_namespace: &str, namespaces: &[String]) {
    let grants = [(provider_namespace.to_owned(), "customerorgs")]
        .into_iter()
        .chain(namespaces.iter().map(|n| (n.clone(), "invoices")));
    for (namespace, resource) in grants {
        let role: Role = serde_json::from_value(json!({
            "metadata": {"name": format!("read-{resource}"), "namespace": namespace},
            "rules": [{"apiGroups": ["navigator.cloudpartner.io"], "resources": [resource], "verbs": ["get", "list"]}]
        }))
        .unwrap();
        Api::<Role>::namespaced(client.clone(), &namespace)
            .create(&PostParams::default(), &role)
            .await
            .expect("creating a Role");
        let binding: RoleBinding = serde_json::from_value(json!({
            "metadata": {"name": format!("{user}-reads-{resource}"), "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": format!("read-{resource}")},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]
        }))
        .unwrap();
        Api::<RoleBinding>::namespaced(client.clone(), &namespace)
            .create(&PostParams::default(), &binding)
            .await
            .expect("creating a RoleBinding");
    }
}

#[tokio::test]
async fn two_customers_are_invoiced_from_their_usage_in_the_closed_period_and_rerunning_changes_nothing() {
    let simulator = Simulator::start("billing", &["--provision-seconds", "0"]).await;
    let world = World::new("billing", &simulator, 50).await;
    let now = Timestamp::now();
    let cycle = BillingCycle::utc(1).unwrap();
    let closed = cycle.last_closed(now).unwrap();
    let (ps, pe) = (closed.start(), closed.end());

    // The provisioning history, dated in the closed period (and around it), on the simulator.
    let sim = SimControl::new(&simulator.url, Secret::new(TOKEN));
    let (alpha, beta) = (world.tenant("alpha"), world.tenant("beta"));
    for (tenant, name) in [(&alpha, "alpha"), (&beta, "beta")] {
        let org = OrgDesired {
            display_name: format!("Customer {name}"),
            enabled: true,
        };
        sim.apply_org_at(ps - hours(24), tenant, &org).await.unwrap();
    }
    let run = |customer: &'static str, name: &'static str, desired, from, until| Run {
        customer,
        name,
        desired,
        from,
        resize: None,
        until,
    };
    let history = [
        // alpha-vm: 4 vCPU, 16 GiB, 100 GiB for 10 days = 240 h.
        run("alpha", "alpha-vm", compute(4, 16, 100), ps + hours(2), ps + hours(242)),
        // alpha-db: 2 vCPU for 5 h, then 6 vCPU for 5 h; 8 GiB and 50 GiB all 10 h.
        Run {
            resize: Some((ps + hours(29), compute(6, 8, 50))),
            ..run("alpha", "alpha-db", compute(2, 8, 50), ps + hours(24), ps + hours(34))
        },
        // beta-old: started 2 h before the period, 1 h of it inside.
        run("beta", "beta-old", compute(5, 10, 100), ps - hours(2), ps + hours(1)),
        // beta-vm: half an hour.
        run(
            "beta",
            "beta-vm",
            compute(3, 12, 250),
            ps + SignedDuration::from_mins(210),
            ps + hours(4),
        ),
        // beta-late: the last hour of the period and the first half hour of the next.
        run(
            "beta",
            "beta-late",
            compute(2, 4, 50),
            pe - hours(1),
            pe + SignedDuration::from_mins(30),
        ),
    ];
    for r in &history {
        let tenant = world.tenant(r.customer);
        sim.apply_instance_at(r.from, &tenant, r.name, &r.desired)
            .await
            .unwrap();
        if let Some((at, resized)) = &r.resize {
            sim.apply_instance_at(*at, &tenant, r.name, resized).await.unwrap();
        }
        sim.delete_instance_at(r.until, &tenant, r.name).await.unwrap();
    }

    // The provider bills in EUR with 21 % tax; beta was sold by a reseller.
    let reseller = format!("r-{}", world.run);
    world
        .apply::<ProviderOrg>(
            None,
            json!({
                "metadata": {"name": world.namespace},
                "spec": {
                    "displayName": format!("Provider {}", world.run), "partnerTypes": ["CloudProvider"],
                    "namespace": world.namespace,
                    "billing": {"currency": "EUR", "billingDay": 1, "taxRate": "0.21", "priceBook": [
                        {"service": "compute", "metric": "vcpu-hours", "unit": "vCPU-hour", "unitPrice": "0.0250"},
                        {"service": "compute", "metric": "memory-gib-hours", "unit": "GiB-hour", "unitPrice": "0.0040"},
                        {"service": "compute", "metric": "storage-gib-hours", "unit": "GiB-hour", "unitPrice": "0.0002"}
                    ]}
                }
            }),
        )
        .await;
    world
        .apply::<ProviderOrg>(None, json!({
            "metadata": {"name": reseller},
            "spec": {"displayName": "Reseller", "partnerTypes": ["Reseller"], "distributorRef": {"name": world.namespace}, "namespace": reseller}
        }))
        .await;
    world.customer("alpha", "Delete").await;
    world
        .apply::<CustomerOrg>(Some(&world.namespace), json!({
            "metadata": {"name": "beta"},
            "spec": {"displayName": "Customer beta", "tenantName": beta, "endpointRef": {"name": world.endpoint}, "resellerRef": {"name": reseller}}
        }))
        .await;
    let mut operator = operator(&world);

    // The invoices, computed here by hand. Line amounts are quantity × unit price rounded half to even to
    // the cent; subtotal is their sum; tax is 21 % of it, rounded the same way.
    //
    // alpha-vm  vcpu 4 × 240 = 960 × 0.025 = 24.00; memory 16 × 240 = 3840 × 0.004 = 15.36;
    //           storage 100 × 240 = 24000 × 0.0002 = 4.80
    // alpha-db  vcpu 2 × 5 + 6 × 5 = 40 × 0.025 = 1.00; memory 8 × 10 = 80 × 0.004 = 0.32;
    //           storage 50 × 10 = 500 × 0.0002 = 0.10
    // alpha     subtotal 45.58, tax 9.5718 → 9.57, total 55.15
    //
    // beta-late vcpu 2 × 1 = 2 → 0.05; memory 4 → 0.016 → 0.02; storage 50 → 0.01
    // beta-old  vcpu 5 × 1 = 5 → 0.125 → 0.12 (half to even); memory 10 → 0.04; storage 100 → 0.02
    // beta-vm   vcpu 3 × 0.5 = 1.5 → 0.0375 → 0.04; memory 6 → 0.024 → 0.02; storage 125 → 0.025 → 0.02
    // beta      subtotal 0.34, tax 0.0714 → 0.07, total 0.41
    let label = closed.label();
    let alpha_invoices = Api::<Invoice>::namespaced(world.client.clone(), &format!("{}-alpha", world.namespace));
    let beta_invoices = Api::<Invoice>::namespaced(world.client.clone(), &format!("{}-beta", world.namespace));
    let alpha_name = format!("alpha-{label}");
    let beta_name = format!("beta-{label}");
    let alpha_invoice = eventually(WAIT, "alpha's invoice to be issued", || {
        issued(&alpha_invoices, &alpha_name)
    })
    .await;
    let beta_invoice = eventually(WAIT, "beta's invoice to be issued", || {
        issued(&beta_invoices, &beta_name)
    })
    .await;

    let a = &alpha_invoice.spec;
    assert_eq!(
        (a.subtotal, a.tax, a.total),
        (d("45.58"), d("9.57"), d("55.15")),
        "alpha: {a:#?}"
    );
    assert_eq!((a.currency.as_str(), a.tax_rate), ("EUR", d("0.21")));
    assert_eq!((a.period_start, a.period_end), (closed.start_date(), closed.last_day()));
    assert_eq!(a.issued_at.0, pe, "issued at the end of the period, not when written");
    assert_eq!(
        (a.customer_org_ref.name.as_str(), a.customer_org_ref.namespace.as_str()),
        ("alpha", world.namespace.as_str())
    );
    assert_eq!(a.provider_org_ref.name, world.namespace);
    assert!(a.reseller_ref.is_none());
    let lines: Vec<(&str, &str, String, String)> = a
        .line_items
        .iter()
        .map(|l| {
            (
                l.subscription.as_str(),
                l.metric.as_str(),
                l.quantity.to_string(),
                l.amount.to_string(),
            )
        })
        .collect();
    let line = |s, m, q: &str, amount: &str| (s, m, q.to_owned(), amount.to_owned());
    assert_eq!(
        lines,
        vec![
            line("alpha-db", "memory-gib-hours", "80", "0.32"),
            line("alpha-db", "storage-gib-hours", "500", "0.10"),
            line("alpha-db", "vcpu-hours", "40", "1.00"),
            line("alpha-vm", "memory-gib-hours", "3840", "15.36"),
            line("alpha-vm", "storage-gib-hours", "24000", "4.80"),
            line("alpha-vm", "vcpu-hours", "960", "24.00"),
        ]
    );

    let b = &beta_invoice.spec;
    assert_eq!(
        (b.subtotal, b.tax, b.total),
        (d("0.34"), d("0.07"), d("0.41")),
        "beta: {b:#?}"
    );
    assert_eq!(
        b.reseller_ref.as_ref().map(|r| r.name.as_str()),
        Some(reseller.as_str())
    );
    assert_eq!(b.line_items.len(), 9);
    let old_vcpu = b
        .line_items
        .iter()
        .find(|l| l.subscription == "beta-old" && l.metric == "vcpu-hours")
        .unwrap();
    assert_eq!(
        (old_vcpu.quantity, old_vcpu.amount.to_string()),
        (d("5"), "0.12".into())
    );
    assert_eq!(
        b.line_items.iter().map(|l| l.amount).sum::<Decimal>(),
        b.subtotal,
        "the subtotal is the sum of the lines"
    );

    // The reseller's status shows what is attributed to it.
    let providers = Api::<ProviderOrg>::all(world.client.clone());
    let attributed = eventually(WAIT, "the reseller's status to show beta's invoice", || async {
        let r = providers.get(&reseller).await.ok()?;
        let attributed = r.status?.attributed;
        (!attributed.is_empty()).then_some(attributed)
    })
    .await;
    assert_eq!(attributed.len(), 1, "{attributed:?}");
    assert_eq!(attributed[0].provider_org, world.namespace);
    assert_eq!(attributed[0].invoices, 1);
    assert_eq!(attributed[0].period_start, closed.start_date());
    assert_eq!(
        (attributed[0].subtotal.amount, attributed[0].total.amount),
        (d("0.34"), d("0.41"))
    );

    // The provider's view of the current period: only beta-late's first half hour falls in it, and only
    // once the view's hour (asOf, a full hour) is past it.
    let view = eventually(WAIT, "the provider's billing view", || async {
        let p = providers.get(&world.namespace).await.ok()?;
        let status = p.status?;
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True" && c.message.contains("2 invoices issued"))
            .then_some(())?;
        status.billing
    })
    .await;
    let as_of = view.as_of.as_ref().expect("asOf").0;
    assert_eq!(as_of.as_second() % 3600, 0, "the view is as of a full hour");
    assert_eq!(view.period_start, Some(cycle.next(&closed).unwrap().start_date()));
    let late_in_view = as_of >= pe + SignedDuration::from_mins(30);
    let usage: Vec<(String, Decimal)> = view.usage.iter().map(|u| (u.metric.clone(), u.quantity)).collect();
    let charges = view.estimated_charges.as_ref().expect("estimated charges");
    if late_in_view {
        // vcpu 1 → 0.025 → 0.02; memory 2 → 0.008 → 0.01; storage 25 → 0.005 → 0.00.
        assert_eq!(
            usage,
            vec![
                ("memory-gib-hours".into(), d("2")),
                ("storage-gib-hours".into(), d("25")),
                ("vcpu-hours".into(), d("1"))
            ]
        );
        assert_eq!(charges.amount, d("0.03"));
        assert_eq!(view.top_customers.len(), 1);
        assert_eq!(view.top_customers[0].customer_org, "beta");
    } else {
        assert!(usage.is_empty(), "{usage:?}");
        assert_eq!(charges.amount, d("0"));
    }

    // The contract's consumption since its start (2020) up to its asOf: every vCPU-hour of both customers.
    // alpha 960 + 40; beta-old 5 × 3 h = 15; beta-vm 1.5; beta-late 2 before the period's end and 1 after
    // (once asOf is past it).
    let expected_vcpu =
        |as_of: Timestamp| d("1018.5") + Decimal::from(u8::from(as_of >= pe + SignedDuration::from_mins(30)));
    let contracts = Api::<CommitmentContract>::namespaced(world.client.clone(), &world.namespace);
    let (contract, consumed_vcpu) = eventually(WAIT, "the contract's consumption", || async {
        let status = contracts.get("main").await.ok()?.status?;
        let as_of = status.as_of.as_ref()?.0;
        let consumed = status.consumed.as_ref()?.quantities.first()?.quantity;
        (consumed == expected_vcpu(as_of)).then_some((status, consumed))
    })
    .await;
    assert_eq!(contract.as_of.as_ref().unwrap().0.as_second() % 3600, 0);
    let remaining = &contract.remaining.as_ref().unwrap().quantities[0];
    assert_eq!(
        (remaining.metric.as_str(), remaining.quantity),
        ("vcpu-hours", d("1000") - consumed_vcpu)
    );
    let forecast = contract.forecast.as_ref().expect("a forecast").quantities[0].quantity;
    assert!(
        forecast > consumed_vcpu,
        "the forecast extrapolates to 2099: {forecast}"
    );

    // Running again changes nothing: restart the operator and delete alpha's invoice by mistake. It is
    // written again, identical; beta's, examined in the same pass, is not touched.
    operator.process.kill();
    alpha_invoices
        .delete(&alpha_name, &DeleteParams::default())
        .await
        .unwrap();
    operator.process.start();
    let rewritten = eventually(WAIT, "alpha's invoice to be written again", || async {
        issued(&alpha_invoices, &alpha_name)
            .await
            .filter(|i| i.uid() != alpha_invoice.uid())
    })
    .await;
    assert_eq!(rewritten.spec, alpha_invoice.spec, "written again identical");
    assert_eq!(rewritten.labels(), alpha_invoice.labels());
    let beta_again = beta_invoices.get(&beta_name).await.unwrap();
    assert_eq!(
        beta_again.resource_version(),
        beta_invoice.resource_version(),
        "an issued invoice is never written again"
    );

    // The exports, as alice, who may only read invoices (and the provider's customer list).
    let customer_namespaces = [
        format!("{}-alpha", world.namespace),
        format!("{}-beta", world.namespace),
    ];
    grant_read_access(&world.client, "alice", &world.namespace, &customer_namespaces).await;
    let alpha_namespace = customer_namespaces[0].as_str();
    let csv = navigator_as(
        "alice",
        &["invoice", "export", "-n", alpha_namespace, "--period", &label],
    );
    let rows = csv_rows(&csv);
    assert_eq!(rows.len(), 6, "one row per line:\n{csv}");
    let sum: Decimal = rows.iter().map(|r| d(&r["amount"])).sum();
    assert_eq!(sum, d("45.58"));
    assert!(
        rows.iter()
            .all(|r| r["invoice_total"] == "55.15" && r["invoice"] == alpha_name)
    );
    println!("invoice export (CSV) of {alpha_name}:\n{csv}");

    let json_text = navigator_as(
        "alice",
        &[
            "invoice",
            "export",
            "--provider-namespace",
            &world.namespace,
            "--format",
            "json",
        ],
    );
    let exported: serde_json::Value = serde_json::from_str(&json_text).unwrap();
    let totals: Vec<(&str, &str)> = exported
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["name"].as_str().unwrap(), i["total"].as_str().unwrap()))
        .collect();
    assert_eq!(
        totals,
        vec![(alpha_name.as_str(), "55.15"), (beta_name.as_str(), "0.41")]
    );

    let report = navigator_as(
        "alice",
        &[
            "usage",
            "report",
            "--provider-namespace",
            &world.namespace,
            "--period",
            &label,
        ],
    );
    let rows = csv_rows(&report);
    let vcpu: Vec<(&str, &str, &str, &str)> = rows
        .iter()
        .filter(|r| r["metric"] == "vcpu-hours")
        .map(|r| {
            (
                r["customer"].as_str(),
                r["quantity"].as_str(),
                r["unit_price"].as_str(),
                r["amount"].as_str(),
            )
        })
        .collect();
    // beta: 0.05 + 0.12 + 0.04 over three subscriptions.
    assert_eq!(
        vcpu,
        vec![("alpha", "1000", "0.0250", "25.00"), ("beta", "8.5", "0.0250", "0.21")]
    );
    println!("usage report for {label}:\n{report}");
    let mut shown = rewritten.clone();
    shown.metadata.managed_fields = None;
    println!(
        "invoice {alpha_name} as `kubectl get invoice -o yaml` shows it:\n{}",
        serde_yaml::to_string(&shown).unwrap()
    );
}

#[tokio::test]
async fn a_contract_that_expires_stops_new_provisioning() {
    let simulator = Simulator::start("expiry", &["--provision-seconds", "0"]).await;
    let world = World::new("expiry", &simulator, 50).await;
    let _operator = Operator::start(&world.run);
    world.customer("x1", "Delete").await;
    let kubernetes = |name: &str| {
        json!({
            "metadata": {"name": name},
            "spec": {"customerOrgRef": {"name": "x1"}, "serviceType": "kubernetes", "resources": {"vcpu": 2, "memoryGiB": 4, "storageGiB": 20}}
        })
    };
    world.contract("k8s", &["kubernetes"]).await;
    world
        .apply::<CloudServiceSubscription>(Some(&world.namespace), kubernetes("x1-k8s-1"))
        .await;
    let subs = world.subscriptions();
    eventually(WAIT, "the first kubernetes subscription to be Ready", || async {
        subs.get("x1-k8s-1").await.ok()?.is_ready().then_some(())
    })
    .await;

    // The contract ends: it ended yesterday.
    let yesterday = Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .yesterday()
        .unwrap();
    world
        .apply::<CommitmentContract>(
            Some(&world.namespace),
            json!({
                "metadata": {"name": "k8s"},
                "spec": {
                    "contractNumber": format!("CC-{}-k8s", world.run),
                    "startDate": "2020-01-01", "endDate": yesterday.to_string(),
                    "services": ["kubernetes"], "endpoints": [world.endpoint],
                    "commitments": [{"metric": "vcpu-hours", "quantity": "1000"}]
                }
            }),
        )
        .await;
    let contracts = Api::<CommitmentContract>::namespaced(world.client.clone(), &world.namespace);
    eventually(WAIT, "the contract to be Expired", || async {
        let phase = contracts.get("k8s").await.ok()?.status?.phase?;
        (phase == navigator::api::commitment_contract::ContractPhase::Expired).then_some(())
    })
    .await;

    // A new kubernetes subscription is refused; nothing is provisioned for it.
    world
        .apply::<CloudServiceSubscription>(Some(&world.namespace), kubernetes("x1-k8s-2"))
        .await;
    let stalled = eventually(WAIT, "the new subscription to stall as NotEntitled", || async {
        let sub = subs.get("x1-k8s-2").await.ok()?;
        let stalled = sub.condition("Stalled")?;
        (stalled.status == "True" && stalled.reason == "NotEntitled").then_some(stalled)
    })
    .await;
    assert!(stalled.message.contains("kubernetes"), "{}", stalled.message);
    let instances = simulator.instance_names(&world.tenant("x1")).await;
    assert!(!instances.contains(&"x1-k8s-2".to_string()), "{instances:?}");
    assert!(
        instances.contains(&"x1-k8s-1".to_string()),
        "what was provisioned under the contract is not removed: {instances:?}"
    );
    // Compute is still covered by the world's other contract.
    world.subscription("x1-vm", "x1", 1).await;
    eventually(WAIT, "a compute subscription to be Ready", || async {
        subs.get("x1-vm").await.ok()?.is_ready().then_some(())
    })
    .await;
}

#[tokio::test]
async fn usage_without_a_price_writes_no_invoice_and_says_which_metric() {
    let simulator = Simulator::start("unpriced", &["--provision-seconds", "0"]).await;
    let world = World::new("unpriced", &simulator, 50).await;
    let closed = BillingCycle::utc(1).unwrap().last_closed(Timestamp::now()).unwrap();
    let sim = SimControl::new(&simulator.url, Secret::new(TOKEN));
    let tenant = world.tenant("u1");
    let org = OrgDesired {
        display_name: "Customer u1".into(),
        enabled: true,
    };
    sim.apply_org_at(closed.start(), &tenant, &org).await.unwrap();
    sim.apply_instance_at(closed.start() + hours(1), &tenant, "u1-vm", &compute(1, 1, 10))
        .await
        .unwrap();
    sim.delete_instance_at(closed.start() + hours(2), &tenant, "u1-vm")
        .await
        .unwrap();
    // The price book has no price for storage.
    world
        .apply::<ProviderOrg>(
            None,
            json!({
                "metadata": {"name": world.namespace},
                "spec": {
                    "displayName": format!("Provider {}", world.run), "partnerTypes": ["CloudProvider"],
                    "namespace": world.namespace,
                    "billing": {"currency": "EUR", "priceBook": [
                        {"service": "compute", "metric": "vcpu-hours", "unit": "vCPU-hour", "unitPrice": "0.0250"},
                        {"service": "compute", "metric": "memory-gib-hours", "unit": "GiB-hour", "unitPrice": "0.0040"}
                    ]}
                }
            }),
        )
        .await;
    world.customer("u1", "Delete").await;
    let _operator = Operator::start(&world.run);

    let providers = Api::<ProviderOrg>::all(world.client.clone());
    let stalled = eventually(WAIT, "the provider to stall on the unpriced usage", || async {
        let stalled = providers.get(&world.namespace).await.ok()?.condition("Stalled")?;
        (stalled.status == "True" && stalled.reason == "UnpricedUsage").then_some(stalled)
    })
    .await;
    assert!(
        stalled.message.contains("customer u1") && stalled.message.contains("storage-gib-hours"),
        "{}",
        stalled.message
    );
    // Billing reports the problem in its own condition too.
    let billing = providers
        .get(&world.namespace)
        .await
        .unwrap()
        .condition("Billing")
        .expect("a Billing condition");
    assert_eq!(
        (billing.status.as_str(), billing.reason.as_str()),
        ("False", "UnpricedUsage"),
        "{billing:?}"
    );
    assert!(billing.message.contains("storage-gib-hours"), "{}", billing.message);
    eventually(WAIT, "a Warning event on the provider", || async {
        let params = kube::api::ListParams::default().fields(&format!("involvedObject.name={}", world.namespace));
        let events = Api::<k8s_openapi::api::core::v1::Event>::all(world.client.clone())
            .list(&params)
            .await
            .ok()?;
        events
            .items
            .iter()
            .any(|e| e.type_.as_deref() == Some("Warning") && e.reason.as_deref() == Some("UnpricedUsage"))
            .then_some(())
    })
    .await;
    let invoices = Api::<Invoice>::namespaced(world.client.clone(), &format!("{}-u1", world.namespace));
    assert!(
        invoices
            .get_opt(&format!("u1-{}", closed.label()))
            .await
            .unwrap()
            .is_none(),
        "an invoice is complete or not written"
    );
}

/// One provider with fifty customers: each customer's invoice holds its own usage and nobody else's (the
/// billing reads run concurrently and must not mix customers up), and how long one billing pass takes is
/// printed. The pass measured writes again the fifty invoices of the closed period (deleted first) and the
/// current period's view, while every endpoint request takes 100 ms. The figure is printed, not asserted.
#[tokio::test]
async fn fifty_customers_are_each_invoiced_their_own_usage_and_the_billing_pass_time_is_printed() {
    use futures::StreamExt;
    const CUSTOMERS: usize = 50;
    const LATENCY_MS: u64 = 100;
    let simulator = Simulator::start("billing-fifty", &["--provision-seconds", "0"]).await;
    let world = World::new("fifty", &simulator, 1000).await;
    let closed = BillingCycle::utc(1).unwrap().last_closed(Timestamp::now()).unwrap();
    let label = closed.label();
    let sim = SimControl::new(&simulator.url, Secret::new(TOKEN));
    let name = |i: usize| format!("c{i}");

    // Customer i ran i + 1 vCPUs for one hour of the closed period.
    futures::stream::iter(0..CUSTOMERS)
        .map(|i| {
            let (sim, tenant, closed) = (&sim, world.tenant(&name(i)), &closed);
            async move {
                let org = OrgDesired {
                    display_name: tenant.clone(),
                    enabled: true,
                };
                sim.apply_org_at(closed.start(), &tenant, &org).await.unwrap();
                let vm = format!("c{i}-vm");
                let vcpu = u32::try_from(i + 1).unwrap();
                sim.apply_instance_at(closed.start() + hours(1), &tenant, &vm, &compute(vcpu, 1, 10))
                    .await
                    .unwrap();
                sim.delete_instance_at(closed.start() + hours(2), &tenant, &vm)
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    let provider = |display_name: &str| {
        json!({
            "metadata": {"name": world.namespace},
            "spec": {
                "displayName": display_name, "partnerTypes": ["CloudProvider"], "namespace": world.namespace,
                "billing": {"currency": "EUR", "priceBook": [
                    {"service": "compute", "metric": "vcpu-hours", "unit": "vCPU-hour", "unitPrice": "0.0250"},
                    {"service": "compute", "metric": "memory-gib-hours", "unit": "GiB-hour", "unitPrice": "0.0040"},
                    {"service": "compute", "metric": "storage-gib-hours", "unit": "GiB-hour", "unitPrice": "0.0002"}
                ]}
            }
        })
    };
    world.apply::<ProviderOrg>(None, provider("Fifty customers")).await;
    futures::future::join_all((0..CUSTOMERS).map(|i| {
        let (world, customer) = (&world, name(i));
        async move { world.customer(&customer, "Delete").await }
    }))
    .await;
    let _operator = Operator::start(&world.run);

    let invoices = |i: usize| Api::<Invoice>::namespaced(world.client.clone(), &format!("{}-c{i}", world.namespace));
    let all_issued = || async {
        let mut found = Vec::new();
        for i in 0..CUSTOMERS {
            found.push(issued(&invoices(i), &format!("c{i}-{label}")).await?);
        }
        Some(found)
    };
    let found = eventually(Duration::from_secs(300), "the fifty invoices to be issued", all_issued).await;
    for (i, invoice) in found.iter().enumerate() {
        // (i + 1) vCPU-hours at 0.025, rounded half to even; 1 GiB-hour of memory (0.004) and 10 of storage
        // (0.002) round to nothing.
        let vcpu = (Decimal::from(i + 1) * d("0.025"))
            .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointNearestEven);
        let spec = &invoice.spec;
        assert_eq!(spec.customer_org_ref.name, name(i));
        assert_eq!(spec.total, vcpu, "c{i}: {spec:#?}");
        assert!(
            spec.line_items.iter().all(|l| l.subscription == format!("c{i}-vm")),
            "c{i}'s invoice holds only its own instance: {spec:#?}"
        );
        let vcpu_line = spec
            .line_items
            .iter()
            .find(|l| l.metric == "vcpu-hours")
            .expect("a vCPU line");
        assert_eq!(vcpu_line.quantity, Decimal::from(i + 1), "c{i}");
    }

    // One billing pass, measured: the invoices deleted, every endpoint request slowed down, and a change of
    // the ProviderOrg's spec to start the pass; it is done when billing reports the new generation.
    sim.set_faults(&navigator::simulator::FaultPatch {
        latency_ms: Some(LATENCY_MS),
        ..Default::default()
    })
    .await
    .unwrap();
    for i in 0..CUSTOMERS {
        invoices(i)
            .delete(&format!("c{i}-{label}"), &DeleteParams::default())
            .await
            .unwrap();
    }
    let providers = Api::<ProviderOrg>::all(world.client.clone());
    let generation = world
        .apply::<ProviderOrg>(None, provider("Fifty customers, again"))
        .await
        .metadata
        .generation;
    let started = std::time::Instant::now();
    eventually(Duration::from_secs(300), "billing at the new generation", || async {
        let p = providers.get(&world.namespace).await.ok()?;
        // Billing reports in its own condition; before it had one, in Ready.
        let done = p.condition("Billing").or_else(|| p.condition("Ready"))?;
        (done.observed_generation == generation && done.status == "True").then_some(())
    })
    .await;
    let took = started.elapsed();
    let again = eventually(WAIT, "the fifty invoices to be written again", all_issued).await;
    assert_eq!(again.len(), CUSTOMERS);

    // Billing and the rest of the ProviderOrg's reconcile write their own status fields, each under its own
    // field manager, so neither overwrites the other's.
    let p = providers.get(&world.namespace).await.unwrap();
    let billing = p.condition("Billing").expect("a Billing condition");
    assert_eq!(
        (billing.reason.as_str(), billing.message.as_str()),
        ("Billed", format!("{CUSTOMERS} invoices issued for {label}").as_str())
    );
    let ready = p.condition("Ready").unwrap();
    assert!(
        ready.message.ends_with(&billing.message),
        "Ready summarises billing: {}",
        ready.message
    );
    assert!(
        p.status.as_ref().unwrap().billing.is_some(),
        "the current period's view"
    );
    let owned = |manager: &str| {
        p.metadata
            .managed_fields
            .iter()
            .flatten()
            .filter(|m| m.manager.as_deref() == Some(manager) && m.subresource.as_deref() == Some("status"))
            .map(|m| serde_json::to_string(&m.fields_v1).unwrap())
            .collect::<String>()
    };
    let (reconcile, billing) = (owned("navigator"), owned("navigator-billing"));
    assert!(
        reconcile.contains(r#"k:{\"type\":\"Ready\"}"#) && !reconcile.contains("f:billing"),
        "navigator: {reconcile}"
    );
    assert!(
        billing.contains("f:billing") && billing.contains(r#"k:{\"type\":\"Billing\"}"#) && !billing.contains("Ready"),
        "navigator-billing: {billing}"
    );
    println!(
        "billing pass of one provider with {CUSTOMERS} customers ({CUSTOMERS} invoices written, the current \
         period's view), endpoint latency {LATENCY_MS} ms: {:.1} s",
        took.as_secs_f64()
    );
}
