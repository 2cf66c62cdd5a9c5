//! What people look at, checked against real parts: a real Prometheus (Debian's `prometheus`, installed by
//! `scripts/deps.sh`) scrapes a running operator while a provider with billing, a commitment, a customer
//! with a subscription, an access grant, a support request and an invoice exists, and every panel query of
//! both Grafana dashboards in the chart returns data; the same Prometheus loads the chart's alert rules and
//! evaluates them without error. `promtool` checks and unit-tests the rules the chart's PrometheusRule
//! carries. `navigator invoice render` writes the invoice as PDF and HTML: the PDF's text (`pdftotext`)
//! says what the invoice says, the same bytes come out twice, and page 1 is rendered to PNG (`pdftoppm`)
//! for people to look at.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use kube::api::Api;
use navigator::api::{CommitmentContract, CustomerOrg, Invoice, ProviderOrg};
use navigator::billing::{BillingCycle, invoice_name};
use navigator::endpoint::{InstanceDesired, OrgDesired, Resources, Secret};
use navigator::simulator::SimControl;
use serde_json::{Value, json};

use crate::support::{eventually, shared};
use crate::world::{Operator, Simulator, TOKEN, World, free_port, log_path};

const WAIT: Duration = Duration::from_secs(180);

fn repo_root() -> PathBuf {
    navigator_testenv::repo_root()
}

/// A folder of its own under the test's temporary directory, emptied first.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("observability").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs a tool to completion; panics with its output when it fails or is missing.
fn run_tool(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e} (run `make deps` to install it)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{program} {args:?} failed:\n{text}");
    text
}

/// `prometheus` on a free loopback port with its own configuration and data under `dir`, scraping
/// `target` (host:port) every second and evaluating `rules`. Killed when dropped, also when a test fails.
struct Prometheus {
    child: Child,
    url: String,
}

impl Prometheus {
    fn start(dir: &Path, target: &str, rules: &Path) -> Self {
        let config = dir.join("prometheus.yml");
        let text = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {rules}\n\
             scrape_configs:\n  - job_name: navigator\n    static_configs:\n      - targets: ['{target}']\n",
            rules = rules.display()
        );
        std::fs::write(&config, text).unwrap();
        let port = free_port();
        let log = std::fs::File::create(log_path("prometheus-observability")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting prometheus (run `make deps` to install it)");
        Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Option<Value> {
        let response = reqwest::Client::new()
            .get(format!("{}{path}", self.url))
            .query(query)
            .send()
            .await
            .ok()?;
        response.json().await.ok()
    }

    /// The instant vector of `expr` now: the result's series, or Prometheus's error.
    async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let answer = self.get("/api/v1/query", &[("query", expr)]).await.ok_or("no answer")?;
        if answer["status"] != "success" {
            return Err(format!("{}: {}", answer["errorType"], answer["error"]));
        }
        Ok(answer["data"]["result"].as_array().cloned().unwrap_or_default())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every panel query of a dashboard: (panel title, expr), rows' nested panels included.
fn panel_queries(dashboard: &Value) -> Vec<(String, String)> {
    fn walk(panels: &[Value], out: &mut Vec<(String, String)>) {
        for panel in panels {
            let title = panel["title"].as_str().unwrap_or_default();
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().expect("every target has an expr");
                out.push((title.to_string(), expr.to_string()));
            }
            walk(panel["panels"].as_array().map_or(&[], |p| p.as_slice()), out);
        }
    }
    let mut out = Vec::new();
    walk(dashboard["panels"].as_array().expect("panels"), &mut out);
    out
}

/// A panel expr as Grafana sends it: the dashboard's variables replaced (the provider picked, the rate
/// window Grafana would compute for a 1 s scrape interval).
fn as_grafana_sends(expr: &str, provider: &str) -> String {
    let expr = expr.replace("$__rate_interval", "1m").replace("$provider", provider);
    assert!(!expr.contains('$'), "a variable the test does not know in {expr}");
    expr
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

fn render(args: &[&str]) {
    let output = Command::new(env!("CARGO_BIN_EXE_navigator"))
        .args(["invoice", "render"])
        .args(args)
        .env("KUBECONFIG", shared().kubeconfig("admin"))
        .output()
        .expect("running navigator");
    assert!(
        output.status.success(),
        "navigator invoice render {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn every_dashboard_panel_returns_data_from_a_real_prometheus_and_the_invoice_renders() {
    let simulator = Simulator::start("observability", &["--provision-seconds", "0"]).await;
    let world = World::new("obs", &simulator, 50).await;
    let provider = world.namespace.clone();
    let now = Timestamp::now();
    // The current period must have begun at least a day ago, or its usage (whole hours) is still empty:
    // periods here start on the day of the month two days back (at most the 28th, the last billing day).
    let two_days_ago = (now - SignedDuration::from_hours(48)).to_zoned(jiff::tz::TimeZone::UTC);
    let billing_day = two_days_ago.day().min(28) as u8;
    let cycle = BillingCycle::utc(billing_day).unwrap();
    let closed = cycle.last_closed(now).unwrap();
    let current = cycle.next(&closed).unwrap();

    // globex's tenant ran a VM for 240 h in the last closed period, and runs one since the current period
    // began: an invoice for the one, current charges for the other.
    let sim = SimControl::new(&simulator.url, Secret::new(TOKEN));
    let tenant = world.tenant("globex");
    let org = OrgDesired {
        display_name: "Globex Corporation".into(),
        enabled: true,
    };
    sim.apply_org_at(closed.start() - SignedDuration::from_hours(24), &tenant, &org)
        .await
        .unwrap();
    let vm = compute(16, 64, 1000);
    let start = closed.start() + SignedDuration::from_hours(2);
    sim.apply_instance_at(start, &tenant, "globex-vm", &vm).await.unwrap();
    sim.delete_instance_at(start + SignedDuration::from_hours(240), &tenant, "globex-vm")
        .await
        .unwrap();
    sim.apply_instance_at(current.start(), &tenant, "globex-app", &compute(2, 4, 20))
        .await
        .unwrap();

    world
        .apply::<ProviderOrg>(
            None,
            json!({
                "metadata": {"name": provider},
                "spec": {
                    "displayName": "Acme Cloud Services", "partnerTypes": ["CloudProvider"], "namespace": provider,
                    "billing": {"currency": "EUR", "billingDay": billing_day, "taxRate": "0.21", "priceBook": [
                        {"service": "compute", "metric": "vcpu-hours", "unit": "vCPU-hour", "unitPrice": "0.0250"},
                        {"service": "compute", "metric": "memory-gib-hours", "unit": "GiB-hour", "unitPrice": "0.0040"},
                        {"service": "compute", "metric": "storage-gib-hours", "unit": "GiB-hour", "unitPrice": "0.0002"}
                    ]}
                }
            }),
        )
        .await;
    // A contract committing an amount, ending in 20 days (the expiry alert is due).
    let ends = (now + SignedDuration::from_hours(20 * 24))
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    world
        .apply::<CommitmentContract>(
            Some(&provider),
            json!({
                "metadata": {"name": "spend"},
                "spec": {
                    "contractNumber": format!("CC-{}-spend", world.run), "startDate": "2020-01-01",
                    "endDate": ends.to_string(),
                    "services": ["compute"], "endpoints": [world.endpoint],
                    "committedAmount": {"amount": "5000.00", "currency": "EUR"}
                }
            }),
        )
        .await;
    world
        .apply::<CustomerOrg>(Some(&provider), json!({
            "metadata": {"name": "globex"},
            "spec": {"displayName": "Globex Corporation", "tenantName": tenant, "endpointRef": {"name": world.endpoint}}
        }))
        .await;

    let operator = Operator::start_with(
        &format!("operator-{}", world.run),
        &world.run,
        &shared().kubeconfig("admin"),
        &["--resync-seconds", "5"],
        &[],
    );
    let rules = repo_root().join("charts/navigator/rules/navigator.rules.yaml");
    let prometheus = Prometheus::start(
        &scratch_dir("prometheus"),
        operator.url.trim_start_matches("http://"),
        &rules,
    );
    operator.until_ready(WAIT).await;
    world.subscription("globex-app", "globex", 2).await;
    world
        .customer_grant("globex-admin", "hank", "CustomerAdministrator", "globex")
        .await;
    world.support_request("vm-down", "globex").await;

    // Everything in place: the invoice issued, the objects Ready, the views written.
    let customer_namespace = format!("{provider}-globex");
    let invoice_name = invoice_name("globex", &closed);
    let invoices = Api::<Invoice>::namespaced(world.client.clone(), &customer_namespace);
    let invoice = eventually(WAIT, "globex's invoice to be issued", || async {
        invoices.get_opt(&invoice_name).await.ok().flatten()
    })
    .await;
    world.all_ready(&world.subscriptions(), WAIT).await;
    world.all_ready(&world.grants(), WAIT).await;
    world.all_ready(&world.support_requests(), WAIT).await;
    world
        .all_ready(
            &Api::<CommitmentContract>::namespaced(world.client.clone(), &provider),
            WAIT,
        )
        .await;

    // Every panel of both dashboards, as Grafana would query it, returns data. No panel is skipped.
    let mut queries = Vec::new();
    for file in ["business", "operations"] {
        let path = repo_root().join(format!("charts/navigator/dashboards/{file}.json"));
        let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let panels = panel_queries(&dashboard);
        assert!(panels.len() >= 10, "{file}: {} panel queries", panels.len());
        queries.extend(
            panels
                .into_iter()
                .map(|(title, expr)| (format!("{file}: {title}"), as_grafana_sends(&expr, &provider))),
        );
    }
    let mut answers: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        for (panel, expr) in &queries {
            if answers.contains_key(expr) {
                continue;
            }
            match prometheus.query(expr).await {
                Ok(series) if !series.is_empty() => {
                    answers.insert(expr.clone(), series);
                }
                Ok(_) => {}
                Err(error) => panic!("{panel}: Prometheus refuses {expr}: {error}"),
            }
        }
        if answers.len() == queries.len() || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let empty: Vec<String> = queries
        .iter()
        .filter(|(_, expr)| !answers.contains_key(expr))
        .map(|(panel, expr)| format!("{panel}: {expr}"))
        .collect();
    assert!(empty.is_empty(), "panels without data:\n{}", empty.join("\n"));
    println!("{} panel queries, each with data; for example:", queries.len());
    for (panel, expr) in queries.iter().take(40) {
        let first = &answers[expr][0];
        println!("  {panel}: {} = {}", first["metric"], first["value"][1]);
    }

    // What the business gauges say matches the objects.
    let value = |expr: &str| answers[&as_grafana_sends(expr, &provider)][0]["value"][1].clone();
    assert_eq!(
        value("sum by (provider, currency) (navigator_invoices{provider=~\"$provider\"})"),
        json!("1")
    );
    let invoiced = answers[&as_grafana_sends(
        "sum by (customer, currency) (navigator_invoiced_total{provider=~\"$provider\"})",
        &provider,
    )][0]
        .clone();
    assert_eq!(invoiced["metric"]["customer"], "globex");
    assert_eq!(invoiced["value"][1], json!(invoice.spec.total.to_string()));

    // The alert rules load into the same Prometheus and evaluate without error.
    let rules = eventually(WAIT, "the alert rules to be evaluated", || async {
        let answer = prometheus.get("/api/v1/rules", &[]).await?;
        let rules: Vec<Value> = answer["data"]["groups"]
            .as_array()?
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        (!rules.is_empty() && rules.iter().all(|r| r["lastEvaluation"] != "0001-01-01T00:00:00Z")).then_some(rules)
    })
    .await;
    for rule in &rules {
        assert_eq!(
            rule["health"], "ok",
            "rule {} fails: {}",
            rule["name"], rule["lastError"]
        );
    }
    // The contract ends in 20 days: the expiry alert is pending or firing.
    let expiring = rules
        .iter()
        .find(|r| r["name"] == "NavigatorCommitmentExpiring")
        .unwrap();
    assert!(
        expiring["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["labels"]["provider"] == provider.as_str()),
        "{expiring}"
    );

    // The invoice as documents.
    let out = scratch_dir("invoice");
    let pdf = out.join("invoice.pdf");
    let again = out.join("again.pdf");
    let html = out.join("invoice.html");
    let (pdf_s, again_s, html_s) = (pdf.to_str().unwrap(), again.to_str().unwrap(), html.to_str().unwrap());
    render(&[
        &invoice_name,
        "-n",
        &customer_namespace,
        "--format",
        "pdf",
        "--out",
        pdf_s,
    ]);
    render(&[&invoice_name, "-n", &customer_namespace, "--out", again_s]);
    render(&[
        &invoice_name,
        "-n",
        &customer_namespace,
        "--format",
        "html",
        "--out",
        html_s,
    ]);
    assert_eq!(
        std::fs::read(&pdf).unwrap(),
        std::fs::read(&again).unwrap(),
        "the same bytes on every run"
    );

    // 240 h of 16 vCPU, 64 GiB and 1000 GiB: 3840 vCPU-hours × 0.025 = 96.00, 15,360 GiB-hours × 0.004 =
    // 61.44, 240,000 GiB-hours × 0.0002 = 48.00; subtotal 205.44, tax 21 % = 43.1424 → 43.14, total 248.58.
    let text = run_tool("pdftotext", &["-layout", pdf_s, "-"]);
    println!("pdftotext of {invoice_name}:\n{text}");
    let period = format!("{} to {}", closed.start_date(), closed.last_day());
    for expected in [
        "Invoice",
        invoice_name.as_str(),
        "Acme Cloud Services",
        "Globex Corporation",
        period.as_str(),
        "3,840",
        "15,360",
        "240,000",
        "0.0250 EUR",
        "96.00 EUR",
        "61.44 EUR",
        "48.00 EUR",
        "205.44 EUR",
        "Tax (21 %)",
        "43.14 EUR",
        "248.58 EUR",
    ] {
        assert!(text.contains(expected), "the PDF does not say {expected:?}:\n{text}");
    }
    let total_line = text.lines().find(|l| l.contains("Total")).unwrap();
    assert!(total_line.contains("248.58 EUR"), "{total_line}");
    let info = run_tool("pdfinfo", &[pdf_s]);
    let pages = info.lines().find_map(|l| l.strip_prefix("Pages:")).map(str::trim);
    assert_eq!(pages, Some("1"), "{info}");
    assert!(!info.contains("CreationDate"), "no date in the PDF:\n{info}");
    let html_text = std::fs::read_to_string(&html).unwrap();
    for expected in [
        "Acme Cloud Services",
        "Globex Corporation",
        "248.58 EUR",
        "43.14 EUR",
        period.as_str(),
    ] {
        assert!(html_text.contains(expected), "the HTML does not say {expected:?}");
    }
    let png = out.join("page");
    run_tool(
        "pdftoppm",
        &["-png", "-r", "80", "-f", "1", "-l", "1", pdf_s, png.to_str().unwrap()],
    );
    println!("page 1 of the invoice as PNG: {}-1.png", png.display());
    assert!(out.join("page-1.png").exists());
    drop(prometheus);
}

#[test]
fn the_charts_alert_rules_pass_promtool_check_and_their_unit_tests() {
    // The rule groups the chart's PrometheusRule carries, as `helm template` renders them.
    let docs = crate::packaging::helm_template(&["--set", "metrics.prometheusRule.enabled=true"]).unwrap();
    let rule = docs
        .iter()
        .find(|d| d["kind"] == "PrometheusRule")
        .expect("a PrometheusRule when metrics.prometheusRule.enabled");
    let dir = scratch_dir("promtool");
    let rendered = dir.join("rendered.rules.yaml");
    std::fs::write(&rendered, serde_yaml::to_string(&rule["spec"]).unwrap()).unwrap();
    let checked = run_tool("promtool", &["check", "rules", rendered.to_str().unwrap()]);
    println!("{checked}");
    assert!(checked.contains("SUCCESS: 8 rules found"), "{checked}");

    // The unit tests run against the file the template includes: the same groups.
    let file = repo_root().join("charts/navigator/rules/navigator.rules.yaml");
    let source: Value = serde_yaml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(
        source, rule["spec"],
        "the PrometheusRule carries the rules file as it is"
    );
    let tests = repo_root().join("tests/prometheus/navigator.rules.test.yaml");
    let tested = run_tool("promtool", &["test", "rules", tests.to_str().unwrap()]);
    println!("{tested}");
    assert!(tested.contains("SUCCESS"), "{tested}");

    // With the option off there is no PrometheusRule and no dashboard.
    let docs = crate::packaging::helm_template(&[]).unwrap();
    assert!(!docs.iter().any(|d| d["kind"] == "PrometheusRule"));
    let docs = crate::packaging::helm_template(&["--set", "metrics.dashboards.enabled=true"]).unwrap();
    let dashboards: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "ConfigMap" && d["metadata"]["labels"]["grafana_dashboard"] == "1")
        .collect();
    assert_eq!(dashboards.len(), 2, "business and operations");
    for configmap in dashboards {
        let (key, json) = configmap["data"].as_object().unwrap().iter().next().unwrap();
        let dashboard: Value = serde_json::from_str(json.as_str().unwrap()).unwrap();
        let file = key.trim_start_matches("navigator-");
        let source: Value = serde_json::from_str(
            &std::fs::read_to_string(repo_root().join("charts/navigator/dashboards").join(file)).unwrap(),
        )
        .unwrap();
        assert_eq!(dashboard, source, "{key} is the chart's dashboards/{file}");
    }
}
