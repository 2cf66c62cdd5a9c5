//! The Helm chart, installed for real: `helm install` (the helm built from its Go module) into the test
//! control plane, then the operator process run with the chart's ServiceAccount identity (a token from the
//! TokenRequest API in a kubeconfig), standing in for the Deployment's pod, which cannot run without nodes.
//! It shows that the examples reach Ready under exactly the chart's permissions, that two replicas elect one
//! leader and hand over when it is killed without provisioning anything twice, and that `/metrics` moves.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use navigator::api::Invoice;
use navigator::endpoint::{InstanceDesired, OrgDesired, Resources};
use navigator::simulator::{FaultPatch, SimControl};
use serde_json::{Value, json};

use crate::support::{eventually, shared};
use crate::world::{Operator, RUN_LABEL, Simulator, TOKEN, World, log_path};

/// The release every test shares: the chart's cluster-wide objects (the role catalogue, the admission
/// policy) can belong to one release only.
pub const RELEASE: &str = "navigator";
/// The release namespace, as in the README and the examples (they keep the endpoint credentials there).
pub const NAMESPACE: &str = "navigator-system";
/// The chart's object names with this release name (its "fullname"): ServiceAccount, ClusterRole, Lease.
pub const FULLNAME: &str = "navigator";

const WAIT: Duration = Duration::from_secs(180);

pub(crate) fn chart_dir() -> PathBuf {
    navigator_testenv::repo_root().join("charts/navigator")
}

/// Installs the chart once per test binary with `helm install` and returns the release namespace. The
/// tests' own worlds keep endpoint credentials in `default`, which the chart is told to allow.
pub fn installed_chart() -> &'static str {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let output = shared()
            .helm()
            .args(["install", RELEASE])
            .arg(chart_dir())
            .args(["--namespace", NAMESPACE, "--create-namespace"])
            .args(["--set", "rbac.credentialNamespaces={default}"])
            .output()
            .expect("running helm install");
        assert!(
            output.status.success(),
            "helm install failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    });
    NAMESPACE
}

/// `helm template` of the chart with extra arguments (no cluster needed): the documents, or helm's error.
pub(crate) fn helm_template(extra: &[&str]) -> Result<Vec<Value>, String> {
    let home = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("helm-template");
    let output = std::process::Command::new(navigator_testenv::bin_dir().join("helm"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .args(["template", RELEASE])
        .arg(chart_dir())
        .args(["--namespace", NAMESPACE])
        .args(extra)
        .output()
        .map_err(|e| format!("running helm: {e} (run `make controlplane` to build it)"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(yaml_documents(&String::from_utf8_lossy(&output.stdout)))
}

pub(crate) fn yaml_documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .filter_map(|doc| {
            let value = <Value as serde::Deserialize>::deserialize(doc).expect("valid YAML");
            (!value.is_null()).then_some(value)
        })
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("the chart renders no {kind} {name}"))
}

/// A kubeconfig holding a token from the TokenRequest API for the chart's ServiceAccount: the identity the
/// Deployment's pod would have.
pub async fn service_account_kubeconfig(admin: &kube::Client, name: &str) -> PathBuf {
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..Default::default()
        }),
        ..Default::default()
    };
    let issued: TokenRequest = Api::<ServiceAccount>::namespaced(admin.clone(), NAMESPACE)
        .create_subresource("token", FULLNAME, &PostParams::default(), &request)
        .await
        .expect("a token for the chart's ServiceAccount from the TokenRequest API");
    let token = issued.status.expect("an issued token").token;
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {
            "server": shared().server(),
            "certificate-authority": shared().dir().join("pki/ca.crt"),
        }}],
        "users": [{"name": FULLNAME, "user": {"token": token}}],
        "contexts": [{"name": FULLNAME, "context": {"cluster": "test", "user": FULLNAME, "namespace": NAMESPACE}}],
        "current-context": FULLNAME,
    });
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("kubeconfig-{name}.yaml"));
    std::fs::write(&path, serde_yaml::to_string(&config).unwrap()).unwrap();
    path
}

async fn client_from(kubeconfig: &std::path::Path) -> kube::Client {
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig).unwrap(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// The examples (`examples/*.yaml`), renamed for one run so tests can share the cluster: the provider
/// namespace, the endpoint and its Secret get the run's names, the endpoint points at this test's
/// simulator, and everything carries the run label. Returns the documents to apply.
pub(crate) fn examples_for_run(run: &str, simulator: &Simulator) -> Vec<Value> {
    let renames: BTreeMap<&str, String> = BTreeMap::from([
        ("acme-cloud", format!("p-{run}")),
        ("simulator", format!("sim-{run}")),
        ("simulator-credentials", format!("creds-{run}")),
        ("http://127.0.0.1:8089", simulator.url.clone()),
        ("navigator-dev-token", TOKEN.to_string()),
    ]);
    fn rename(value: &mut Value, renames: &BTreeMap<&str, String>) {
        match value {
            Value::String(s) => {
                if let Some(new) = renames.get(s.as_str()) {
                    *s = new.clone();
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| rename(v, renames)),
            Value::Object(map) => map.values_mut().for_each(|v| rename(v, renames)),
            _ => {}
        }
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(navigator_testenv::repo_root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for file in files {
        for mut doc in yaml_documents(&std::fs::read_to_string(&file).unwrap()) {
            // The release namespace exists already (helm created it).
            if doc["kind"] == "Namespace" && doc["metadata"]["name"] == NAMESPACE {
                continue;
            }
            rename(&mut doc, &renames);
            doc["metadata"]["labels"][RUN_LABEL] = json!(run);
            docs.push(doc);
        }
    }
    docs
}

/// `kubectl apply --server-side` as the administrator (the platform team applying the manifests).
fn kubectl_apply(docs: &[Value]) {
    crate::support::kubectl_documents(
        shared(),
        &["apply", "--server-side", "--field-manager=navigator-tests"],
        docs,
    );
}

/// A Navigator object named by the examples: kind, namespace (if namespaced) and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Named {
    pub(crate) kind: String,
    pub(crate) namespace: Option<String>,
    pub(crate) name: String,
}

pub(crate) fn navigator_objects(docs: &[Value]) -> Vec<Named> {
    docs.iter()
        .filter(|d| {
            d["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("navigator.cloudpartner.io/"))
        })
        .map(|d| Named {
            kind: d["kind"].as_str().unwrap().to_string(),
            namespace: d["metadata"]["namespace"].as_str().map(String::from),
            name: d["metadata"]["name"].as_str().unwrap().to_string(),
        })
        .collect()
}

fn dynamic_api(client: &kube::Client, object: &Named) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("navigator.cloudpartner.io", "v1alpha1", &object.kind);
    let resource = ApiResource::from_gvk(&gvk);
    match &object.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

/// The Ready condition of an object as `status/reason: message`, or why there is none.
async fn ready_of(client: &kube::Client, object: &Named) -> (bool, String) {
    let Ok(Some(live)) = dynamic_api(client, object).get_opt(&object.name).await else {
        return (false, "not found".into());
    };
    let conditions = live.data["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    match conditions.iter().find(|c| c["type"] == "Ready") {
        Some(c) => (
            c["status"] == "True",
            format!("{}/{}: {}", c["status"], c["reason"], c["message"]),
        ),
        None => (false, "no Ready condition yet".into()),
    }
}

/// Waits until every object is Ready; on timeout the panic lists those that are not, with their reasons.
pub(crate) async fn wait_all_ready(client: &kube::Client, objects: &[Named], timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let mut waiting = Vec::new();
        for object in objects {
            let (ready, why) = ready_of(client, object).await;
            if !ready {
                waiting.push(format!("{} {:?}/{}: {why}", object.kind, object.namespace, object.name));
            }
        }
        if waiting.is_empty() {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?}; not Ready:\n{}", waiting.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One scrape of `/metrics`: every sample (`name{labels}` to value) and the declared metric names.
struct Scrape {
    samples: BTreeMap<String, f64>,
    names: BTreeSet<String>,
}

impl Scrape {
    async fn of(operator: &Operator) -> Scrape {
        let text = reqwest::get(format!("{}/metrics", operator.url))
            .await
            .expect("scraping /metrics")
            .text()
            .await
            .unwrap();
        let mut samples = BTreeMap::new();
        let mut names = BTreeSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                names.insert(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with('#')
                && let Some((series, value)) = line.rsplit_once(' ')
            {
                samples.insert(series.to_string(), value.parse().unwrap_or(f64::NAN));
            }
        }
        Scrape { samples, names }
    }

    fn get(&self, series: &str) -> f64 {
        self.samples.get(series).copied().unwrap_or(0.0)
    }

    /// The sum of every sample of a metric whose labels contain `label` (e.g. `kind="CustomerOrg"`).
    fn sum(&self, metric: &str, label: &str) -> f64 {
        self.samples
            .iter()
            .filter(|(series, _)| {
                series.split('{').next() == Some(metric) && (label.is_empty() || series.contains(label))
            })
            .map(|(_, v)| v)
            .sum()
    }
}

async fn lease_holder(admin: &kube::Client) -> Option<String> {
    let lease = Api::<Lease>::namespaced(admin.clone(), NAMESPACE)
        .get_opt(FULLNAME)
        .await
        .ok()??;
    lease.spec?.holder_identity
}

#[test]
fn the_chart_is_least_privilege_secure_by_default_and_refuses_bad_values() {
    let docs = helm_template(&[]).expect("the chart renders with its defaults");

    // The operator's ClusterRole: no wildcard anywhere, and `bind` only on the role catalogue.
    let role = find(&docs, "ClusterRole", FULLNAME);
    let rules = role["rules"].as_array().unwrap();
    for rule in rules {
        for field in ["apiGroups", "resources", "verbs", "resourceNames"] {
            for item in rule[field].as_array().into_iter().flatten() {
                assert!(
                    !item.as_str().unwrap().contains('*'),
                    "wildcard in the operator's ClusterRole: {rule}"
                );
            }
        }
        let verbs: Vec<&str> = rule["verbs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(
            !verbs.contains(&"escalate") && !verbs.contains(&"impersonate"),
            "the operator needs neither escalate nor impersonate: {rule}"
        );
    }
    let catalogue: BTreeSet<&str> = docs
        .iter()
        .filter(|d| {
            d["kind"] == "ClusterRole" && d["metadata"]["labels"]["app.kubernetes.io/component"] == "role-catalogue"
        })
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert!(!catalogue.is_empty(), "the chart ships the role catalogue");
    let bind = rules
        .iter()
        .find(|r| r["verbs"] == json!(["bind"]))
        .expect("a bind rule");
    let bindable: BTreeSet<&str> = bind["resourceNames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        bindable, catalogue,
        "the operator may bind exactly the catalogue's ClusterRoles"
    );
    // Secrets: readable only through Roles in the credential namespaces, never cluster-wide.
    assert!(
        !rules
            .iter()
            .any(|r| r["resources"].as_array().unwrap().contains(&json!("secrets"))),
        "no cluster-wide Secret access"
    );
    let binding = find(&docs, "ClusterRoleBinding", FULLNAME);
    assert_eq!(
        binding["roleRef"]["name"], FULLNAME,
        "bound to its own ClusterRole, not cluster-admin"
    );
    let credentials = find(&docs, "Role", &format!("{FULLNAME}-credentials"));
    assert_eq!(credentials["metadata"]["namespace"], NAMESPACE);
    assert_eq!(
        credentials["rules"],
        json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}])
    );
    let leases = find(&docs, "Role", &format!("{FULLNAME}-leader-election"));
    assert!(leases["rules"].to_string().contains("coordination.k8s.io"));

    // The Deployment: non-root, read-only root filesystem, no privilege escalation, RuntimeDefault seccomp,
    // resources, probes on the metrics port, leader election on.
    let deployment = find(&docs, "Deployment", FULLNAME);
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(container["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(container["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "metrics");
    assert_eq!(pod["serviceAccountName"], FULLNAME);
    assert_eq!(container["image"], "ghcr.io/navigator-operator/navigator:0.1.0");
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args.contains(&"--leader-election"),
        "leader election is on by default: {args:?}"
    );
    for kind in ["ServiceAccount", "Service", "PodDisruptionBudget"] {
        assert!(docs.iter().any(|d| d["kind"] == kind), "the chart renders a {kind}");
    }
    assert!(
        !docs
            .iter()
            .any(|d| d["kind"] == "ServiceMonitor" || d["kind"] == "NetworkPolicy")
    );

    // The optional objects.
    let all_on = helm_template(&[
        "--set",
        "metrics.serviceMonitor.enabled=true,networkPolicy.enabled=true,rbac.credentialNamespaces={default,vault}",
    ])
    .expect("the chart renders with every option on");
    find(&all_on, "ServiceMonitor", FULLNAME);
    find(&all_on, "NetworkPolicy", FULLNAME);
    let credential_namespaces: BTreeSet<&str> = all_on
        .iter()
        .filter(|d| d["kind"] == "Role" && d["metadata"]["name"] == format!("{FULLNAME}-credentials"))
        .map(|d| d["metadata"]["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(credential_namespaces, BTreeSet::from([NAMESPACE, "default", "vault"]));

    // values.schema.json refuses bad values with a message naming the value.
    for (bad, named) in [
        ("replicaCount=-1", "replicaCount"),
        ("logFormat=xml", "logFormat"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("metrics.port=70000", "port"),
        ("leaderElection.leaseDurationSeconds=1", "leaseDurationSeconds"),
        ("replicaCuont=2", "replicaCuont"),
    ] {
        let error = helm_template(&["--set", bad]).expect_err(bad);
        assert!(error.contains(named), "helm's refusal of {bad} names {named}: {error}");
    }
    let error = helm_template(&["--set", "leaderElection.renewMarginSeconds=20"]).expect_err("margin past the lease");
    assert!(error.contains("renewMarginSeconds"), "{error}");
}

#[tokio::test]
async fn the_examples_reach_ready_under_the_charts_service_account_and_metrics_move() {
    let admin = shared().client().await;
    installed_chart();

    // What helm installed.
    let sa = Api::<ServiceAccount>::namespaced(admin.clone(), NAMESPACE)
        .get(FULLNAME)
        .await;
    assert!(sa.is_ok(), "the chart's ServiceAccount exists");
    let status = shared()
        .helm()
        .args(["status", RELEASE, "--namespace", NAMESPACE, "-o", "json"])
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&status.stdout).expect("helm status as JSON");
    assert_eq!(status["info"]["status"], "deployed");
    let notes = status["info"]["notes"].as_str().unwrap_or_default();
    assert!(
        notes.contains(&format!("kubectl -n {NAMESPACE} get lease {FULLNAME}")),
        "NOTES.txt says how to find the leader:\n{notes}"
    );

    let kubeconfig = service_account_kubeconfig(&admin, "examples").await;
    // The identity is the ServiceAccount's, not an administrator's: it may not read Secrets elsewhere.
    let as_operator = client_from(&kubeconfig).await;
    let denied = Api::<Secret>::namespaced(as_operator.clone(), "kube-system")
        .list(&ListParams::default())
        .await;
    assert!(
        matches!(&denied, Err(kube::Error::Api(s)) if s.code == 403),
        "the chart's ServiceAccount must not list Secrets in kube-system: {denied:?}"
    );

    let simulator = Simulator::start("packaging-examples", &["--provision-seconds", "1"]).await;
    let run = format!("pkg-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let docs = examples_for_run(&run, &simulator);
    let objects = navigator_objects(&docs);
    let kinds: BTreeSet<&str> = objects.iter().map(|o| o.kind.as_str()).collect();
    assert!(kinds.len() >= 5, "the examples cover the kinds: {kinds:?}");
    // Globex has run its compute instance on the endpoint since two months ago, so the last closed billing
    // period has usage and the ProviderOrg issues Globex an invoice (exercising the invoice permissions).
    let control = SimControl::new(&simulator.url, TOKEN.into());
    let since = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * 60);
    let org = OrgDesired {
        display_name: "Globex Corporation".into(),
        enabled: true,
    };
    control.apply_org_at(since, "globex", &org).await.unwrap();
    let compute = InstanceDesired {
        service_type: "compute".into(),
        resources: Resources {
            vcpu: 16,
            memory_gib: 64,
            storage_gib: 500,
        },
        parameters: BTreeMap::from([("region".to_string(), "eu-west".to_string())]),
    };
    control
        .apply_instance_at(since, "globex", "globex-compute", &compute)
        .await
        .unwrap();
    kubectl_apply(&docs);

    let log = format!("operator-packaging-{run}");
    let operator = Operator::start_with(&log, &run, &kubeconfig, &[], &[]);
    wait_all_ready(&admin, &objects, WAIT).await;
    let invoices = Api::<Invoice>::namespaced(admin.clone(), &format!("p-{run}-globex"));
    eventually(
        WAIT,
        "Globex's invoice for the last closed period to be issued",
        || async {
            let list = invoices.list(&ListParams::default()).await.ok()?;
            list.items
                .iter()
                .any(|i| i.status.as_ref().is_some_and(|s| s.phase.is_some()))
                .then_some(())
        },
    )
    .await;

    // Nothing was refused along the way: the chart grants all the operator uses.
    let text = std::fs::read_to_string(log_path(&log)).unwrap();
    let refused: Vec<&str> = text
        .lines()
        .filter(|l| l.to_lowercase().contains("forbidden"))
        .collect();
    assert!(
        refused.is_empty(),
        "the operator was refused by RBAC:\n{}",
        refused.join("\n")
    );

    // /metrics names exist and count what happened.
    let before = Scrape::of(&operator).await;
    // (The error families appear with their first error, below.)
    for name in [
        "navigator_reconciles",
        "navigator_reconcile_duration_seconds",
        "navigator_reconciles_in_flight",
        "navigator_objects",
        "navigator_objects_pending",
        "navigator_objects_backing_off",
        "navigator_endpoint_requests",
        "navigator_endpoint_request_duration_seconds",
        "navigator_leader",
        "navigator_build_info",
    ] {
        assert!(
            before.names.contains(name),
            "/metrics declares {name}: {:?}",
            before.names
        );
    }
    let endpoint = format!("sim-{run}");
    for kind in &kinds {
        let label = format!("kind=\"{kind}\"");
        assert!(
            before.sum("navigator_reconciles_total", &label) > 0.0,
            "reconciles of {kind} are counted"
        );
        assert!(before.sum("navigator_reconcile_duration_seconds_count", &label) > 0.0);
        let ready = objects.iter().filter(|o| o.kind == *kind).count() as f64;
        assert_eq!(
            before.get(&format!("navigator_objects{{kind=\"{kind}\",ready=\"true\"}}")),
            ready,
            "every {kind} of the examples is counted Ready"
        );
    }
    let success = format!("navigator_endpoint_requests_total{{endpoint=\"{endpoint}\",outcome=\"Success\"}}");
    assert!(before.get(&success) > 0.0, "requests to the endpoint are counted");
    assert_eq!(before.get("navigator_leader"), 1.0);

    // Make the endpoint fail every request, add a subscription, and watch the error counters move.
    control
        .set_faults(&FaultPatch {
            rate_5xx: Some(1.0),
            ..Default::default()
        })
        .await
        .unwrap();
    let extra = json!({
        "apiVersion": "navigator.cloudpartner.io/v1alpha1",
        "kind": "CloudServiceSubscription",
        "metadata": {"name": "globex-extra", "namespace": format!("p-{run}"), "labels": {RUN_LABEL: run}},
        "spec": {"customerOrgRef": {"name": "globex"}, "serviceType": "compute", "resources": {"vcpu": 2, "memoryGiB": 4, "storageGiB": 20}}
    });
    kubectl_apply(std::slice::from_ref(&extra));
    let errors = format!("navigator_endpoint_request_errors_total{{endpoint=\"{endpoint}\"}}");
    let failed = before.sum("navigator_reconcile_errors_total", "");
    eventually(
        WAIT,
        "endpoint request errors and reconcile errors to be counted",
        || async {
            let now = Scrape::of(&operator).await;
            (now.get(&errors) > before.get(&errors) && now.sum("navigator_reconcile_errors_total", "") > failed)
                .then_some(())
        },
    )
    .await;
    control
        .set_faults(&FaultPatch {
            rate_5xx: Some(0.0),
            ..Default::default()
        })
        .await
        .unwrap();
    let after_faults = Scrape::of(&operator).await;
    for name in ["navigator_endpoint_request_errors", "navigator_reconcile_errors"] {
        assert!(after_faults.names.contains(name), "/metrics declares {name}");
    }
    let mut all = objects.clone();
    all.extend(navigator_objects(std::slice::from_ref(&extra)));
    wait_all_ready(&admin, &all, WAIT).await;
    let after = Scrape::of(&operator).await;
    let subscriptions = "kind=\"CloudServiceSubscription\"";
    assert!(
        after.sum("navigator_reconciles_total", subscriptions)
            > before.sum("navigator_reconciles_total", subscriptions)
    );
    assert!(
        after.sum("navigator_reconcile_duration_seconds_count", subscriptions)
            > before.sum("navigator_reconcile_duration_seconds_count", subscriptions)
    );
    assert!(after.get(&success) > before.get(&success));
    assert!(
        after.sum("navigator_endpoint_request_duration_seconds_count", &endpoint)
            > before.sum("navigator_endpoint_request_duration_seconds_count", &endpoint)
    );
    let ready_subscriptions = "navigator_objects{kind=\"CloudServiceSubscription\",ready=\"true\"}";
    assert_eq!(after.get(ready_subscriptions), before.get(ready_subscriptions) + 1.0);

    // /healthz and /readyz.
    for path in ["/healthz", "/readyz"] {
        let response = reqwest::get(format!("{}{path}", operator.url)).await.unwrap();
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "{path} answers 200, not {status} {body}");
    }
}

#[tokio::test]
async fn two_replicas_elect_one_leader_that_alone_reconciles_and_a_standby_takes_over_when_it_is_killed() {
    let admin = shared().client().await;
    installed_chart();
    let kubeconfig = service_account_kubeconfig(&admin, "leader").await;
    let simulator = Simulator::start("packaging-leader", &["--provision-seconds", "1"]).await;
    let world = World::new("leader", &simulator, 50).await;

    // Short leases keep the test quick; the chart's defaults are 15 s and 5 s.
    let election = [
        "--leader-election",
        "--leader-election-namespace",
        NAMESPACE,
        "--leader-election-lease-name",
        FULLNAME,
        "--leader-election-lease-seconds",
        "4",
        "--leader-election-renew-margin-seconds",
        "2",
    ];
    let (a, b) = (format!("replica-a-{}", world.run), format!("replica-b-{}", world.run));
    let mut first = Operator::start_with(&a, &world.run, &kubeconfig, &election, &[("POD_NAME", &a)]);
    eventually(WAIT, "replica a to hold the lease", || async {
        (lease_holder(&admin).await.as_deref() == Some(a.as_str())).then_some(())
    })
    .await;
    let second = Operator::start_with(&b, &world.run, &kubeconfig, &election, &[("POD_NAME", &b)]);
    let http = reqwest::Client::new();
    eventually(WAIT, "replica b to be ready as a standby", || async {
        let response = http.get(format!("{}/readyz", second.url)).send().await.ok()?;
        let ok = response.status().is_success();
        (ok && response.text().await.ok()?.contains("standing by")).then_some(())
    })
    .await;

    world.customer("alpha", "Delete").await;
    world.customer("beta", "Delete").await;
    for i in 0..6 {
        let customer = if i % 2 == 0 { "alpha" } else { "beta" };
        world.subscription(&format!("{customer}-{i:03}"), customer, 1).await;
    }
    assert_eq!(world.all_ready(&world.subscriptions(), WAIT).await, 6);

    // Only the leader reconciled: the standby's counters are all zero.
    let leader = Scrape::of(&first).await;
    let standby = Scrape::of(&second).await;
    assert!(leader.sum("navigator_reconciles_total", "") > 0.0);
    assert_eq!(
        standby.sum("navigator_reconciles_total", ""),
        0.0,
        "the standby reconciled nothing"
    );
    assert_eq!(standby.sum("navigator_endpoint_requests_total", ""), 0.0);
    assert_eq!(
        (leader.get("navigator_leader"), standby.get("navigator_leader")),
        (1.0, 0.0)
    );
    assert_eq!(lease_holder(&admin).await.as_deref(), Some(a.as_str()));
    let before_kill = Api::<Lease>::namespaced(admin.clone(), NAMESPACE)
        .get(FULLNAME)
        .await
        .unwrap();

    // SIGKILL the leader: no release, the lease must expire. Then give the new leader work to do.
    first.process.kill();
    for i in 6..10 {
        let customer = if i % 2 == 0 { "alpha" } else { "beta" };
        world.subscription(&format!("{customer}-{i:03}"), customer, 1).await;
    }
    world.subscription("alpha-000", "alpha", 3).await;
    eventually(WAIT, "replica b to take the lease", || async {
        (lease_holder(&admin).await.as_deref() == Some(b.as_str())).then_some(())
    })
    .await;
    assert_eq!(world.all_ready(&world.subscriptions(), WAIT).await, 10);
    eventually(WAIT, "the resize to reach the endpoint", || async {
        let page: Value = simulator
            .get_json(&format!("/v1/orgs/{}/instances/alpha-000", world.tenant("alpha")))
            .await;
        (page["resources"]["vcpu"] == 3 && page["state"] == "Ready").then_some(())
    })
    .await;
    let after = Scrape::of(&second).await;
    assert_eq!(after.get("navigator_leader"), 1.0);
    assert!(after.sum("navigator_reconciles_total", "kind=\"CloudServiceSubscription\"") > 0.0);

    // How long the handover took, from the Lease's own timestamps (reported, not asserted: timing).
    let taken = Api::<Lease>::namespaced(admin.clone(), NAMESPACE)
        .get(FULLNAME)
        .await
        .unwrap();
    if let (Some(renewed), Some(acquired)) = (
        before_kill.spec.and_then(|s| s.renew_time),
        taken.spec.as_ref().and_then(|s| s.acquire_time.clone()),
    ) {
        let gap = acquired.0.as_millisecond() - renewed.0.as_millisecond();
        println!("handover: replica b acquired the lease {gap} ms after replica a's last renewal (lease 4 s)");
    }

    // Nothing was provisioned twice: one create per organisation and per instance.
    let stats = simulator.stats().await;
    assert_eq!(
        stats.max_creates_per_object, 1,
        "a duplicate create: {:?}",
        stats.creates
    );
    assert_eq!(stats.creates.instances.len(), 10);
    assert_eq!(stats.creates.orgs.len(), 2);
    drop(second);
}
