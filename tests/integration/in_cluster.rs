//! Installed the way platform teams install it: the image `make image` builds (buildah, no daemon), imported
//! into a real node (containerd, kubelet, kube-proxy, kube-scheduler: `navigator_testenv::node`), and the
//! chart installed with `helm install`. The operator runs as two Pods under the chart's ServiceAccount and
//! security context, passes its probes, answers `/metrics` through its Service, and reconciles the examples
//! against a simulator on an address the pods reach. Deleting the leader's Pod hands over without a duplicate
//! create; `helm upgrade` and `helm uninstall` do what the README says.
//!
//! This test runs its own control plane with a node (the chart's cluster-wide objects belong to one release
//! per cluster, and the shared control plane listens on loopback only, which pods cannot reach).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use navigator_testenv::node::{Cluster, host_address};
use serde_json::{Value, json};

use crate::packaging::{Named, chart_dir, examples_for_run, navigator_objects, wait_all_ready};
use crate::support::eventually;
use crate::world::Simulator;

const RELEASE: &str = "navigator";
const NAMESPACE: &str = "navigator-system";
const WAIT: Duration = Duration::from_secs(240);
const POD_LABELS: &str = "app.kubernetes.io/name=navigator,app.kubernetes.io/instance=navigator";

/// What `scripts/image.sh` printed.
struct Image {
    name: String,
    archive: PathBuf,
    digest: String,
    size: u64,
}

/// `make image`: builds the image (the release binary is reused when up to date).
fn build_image() -> Image {
    let output = Command::new(navigator_testenv::repo_root().join("scripts/image.sh"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("running scripts/image.sh");
    assert!(output.status.success(), "scripts/image.sh failed ({})", output.status);
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}:")))
            .unwrap_or_else(|| panic!("scripts/image.sh printed no {key}:\n{text}"))
            .trim()
            .to_string()
    };
    let archive = PathBuf::from(field("archive"));
    let size = std::fs::metadata(&archive).expect("the image archive").len();
    Image {
        name: field("image"),
        archive,
        digest: field("digest"),
        size,
    }
}

/// Runs a command of the cluster (kubectl, helm) and returns its stdout, failing the test with its stderr.
fn run(mut command: Command) -> String {
    let output = command.output().expect("running a cluster command");
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn kubectl(cluster: &Cluster, args: &[&str]) -> String {
    let mut command = cluster.control_plane.kubectl("admin");
    command.args(args);
    run(command)
}

fn kubectl_apply(cluster: &Cluster, docs: &[Value]) {
    crate::support::kubectl_documents(
        &cluster.control_plane,
        &["apply", "--server-side", "--field-manager=navigator-tests"],
        docs,
    );
}

async fn lease_holder(admin: &kube::Client) -> Option<String> {
    let lease = Api::<Lease>::namespaced(admin.clone(), NAMESPACE)
        .get_opt(RELEASE)
        .await
        .ok()??;
    lease.spec?.holder_identity.filter(|h| !h.is_empty())
}

/// The operator's pods that are Ready, by name.
async fn ready_pods(admin: &kube::Client) -> Vec<Pod> {
    let pods = Api::<Pod>::namespaced(admin.clone(), NAMESPACE)
        .list(&ListParams::default().labels(POD_LABELS))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    pods.into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .collect()
}

fn name_of(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

/// Samples of an OpenMetrics text (`name{labels}` to value) and its declared families.
fn parse_metrics(text: &str) -> (Vec<(String, f64)>, BTreeSet<String>) {
    let mut samples = Vec::new();
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            names.insert(rest.split(' ').next().unwrap_or_default().to_string());
        } else if !line.starts_with('#')
            && let Some((series, value)) = line.rsplit_once(' ')
        {
            samples.push((series.to_string(), value.parse().unwrap_or(f64::NAN)));
        }
    }
    (samples, names)
}

fn sum(samples: &[(String, f64)], metric: &str) -> f64 {
    samples
        .iter()
        .filter(|(series, _)| series.split('{').next() == Some(metric))
        .map(|(_, v)| v)
        .sum()
}

/// Reads the running operator containers' processes from the node's /proc (through containerd's task
/// list): what the kernel enforces, not what the Pod spec asks for.
fn operator_processes(cluster: &Cluster, image: &str) -> Vec<String> {
    let containers = run({
        let mut c = cluster.node.ctr();
        c.args(["containers", "ls"]);
        c
    });
    let ids: BTreeSet<&str> = containers
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some(image))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let tasks = run({
        let mut c = cluster.node.ctr();
        c.args(["tasks", "ls"]);
        c
    });
    tasks
        .lines()
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            let (id, pid, status) = (fields.next()?, fields.next()?, fields.next()?);
            (ids.contains(id) && status == "RUNNING").then(|| pid.to_string())
        })
        .collect()
}

fn proc_status(pid: &str, key: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn root_mount_options(pid: &str) -> String {
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
    mountinfo
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.get(4) == Some(&"/"))
        .and_then(|f| f.get(5).map(|o| o.to_string()))
        .unwrap_or_default()
}

fn subscription(run: &str, name: &str) -> Value {
    json!({
        "apiVersion": "navigator.cloudpartner.io/v1alpha1",
        "kind": "CloudServiceSubscription",
        "metadata": {"name": name, "namespace": format!("p-{run}")},
        "spec": {"customerOrgRef": {"name": "globex"}, "serviceType": "compute", "resources": {"vcpu": 2, "memoryGiB": 4, "storageGiB": 20}}
    })
}

#[tokio::test]
async fn helm_install_runs_the_built_image_as_pods_on_a_real_node_with_failover_upgrade_and_uninstall() {
    let image = build_image();
    println!(
        "image: {} digest {} archive {:.1} MiB",
        image.name,
        image.digest,
        image.size as f64 / 1048576.0
    );
    let started = Instant::now();
    let cluster = Cluster::start().expect("starting a control plane with a node");
    println!(
        "node Ready {:.1?} after containerd started; control plane and node up in {:.1?}",
        cluster.node.start_time,
        started.elapsed()
    );
    cluster
        .node
        .import_image(&image.archive)
        .expect("importing the image into the node");
    let admin = cluster.control_plane.client().await;

    // The simulated cloud on this machine's address, which the pods reach through the bridge.
    let host = host_address().unwrap().to_string();
    let simulator = Simulator::start_on(&host, "in-cluster", &["--provision-seconds", "1"]).await;
    let run_id = format!("ic-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let docs = examples_for_run(&run_id, &simulator);
    let objects = navigator_objects(&docs);

    // helm install with the image as built (pullPolicy Never: nothing may come from a registry).
    let (repository, tag) = image.name.rsplit_once(':').unwrap();
    let installed = Instant::now();
    let mut helm = cluster.control_plane.helm();
    helm.args(["install", RELEASE])
        .arg(chart_dir())
        .args(["--namespace", NAMESPACE, "--create-namespace"])
        .args([
            "--set",
            &format!("image.repository={repository},image.tag={tag},image.pullPolicy=Never"),
        ]);
    run(helm);
    kubectl_apply(&cluster, &docs);
    wait_all_ready(&admin, &objects, WAIT).await;
    let to_ready = installed.elapsed();
    println!(
        "helm install to the {} example objects Ready: {to_ready:.1?}",
        objects.len()
    );

    // Both replicas run and pass their probes (the leader once its caches synced, the other standing by).
    let pods = eventually(WAIT, "two operator pods to be Ready", || async {
        let pods = ready_pods(&admin).await;
        (pods.len() == 2).then_some(pods)
    })
    .await;
    for pod in &pods {
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.service_account_name.as_deref(), Some(RELEASE));
        assert_eq!(spec.node_name.as_deref(), Some(navigator_testenv::node::NODE_NAME));
        assert_eq!(spec.containers[0].image.as_deref(), Some(image.name.as_str()));
    }
    // What the kernel enforces on the running containers: the chart's security context.
    let processes = operator_processes(&cluster, &image.name);
    assert_eq!(processes.len(), 2, "two operator containers run on the node");
    for pid in &processes {
        assert_eq!(
            proc_status(pid, "Uid"),
            "65532 65532 65532 65532",
            "runs as 65532 (pid {pid})"
        );
        assert_eq!(proc_status(pid, "Gid"), "65532 65532 65532 65532");
        assert_eq!(proc_status(pid, "CapEff"), "0000000000000000", "no capabilities");
        assert_eq!(proc_status(pid, "NoNewPrivs"), "1", "no privilege escalation");
        assert_eq!(proc_status(pid, "Seccomp"), "2", "the runtime's default seccomp filter");
        let root = root_mount_options(pid);
        assert!(root.split(',').any(|o| o == "ro"), "read-only root filesystem: {root}");
    }
    // It works as the chart's ServiceAccount (the apiserver's audit log names who wrote the statuses).
    let audit = std::fs::read_to_string(cluster.control_plane.audit_log()).unwrap();
    let service_account = format!("system:serviceaccount:{NAMESPACE}:{RELEASE}");
    assert!(
        audit.lines().any(|l| {
            let entry: Value = serde_json::from_str(l).unwrap_or_default();
            entry["user"]["username"] == service_account.as_str()
                && entry["objectRef"]["apiGroup"] == "navigator.cloudpartner.io"
                && entry["objectRef"]["subresource"] == "status"
        }),
        "status writes by {service_account} in the audit log"
    );

    // /metrics through the chart's Service (the apiserver's service proxy picks a ready endpoint), and
    // the leader's own counters through its pod.
    let via_service = kubectl(
        &cluster,
        &[
            "get",
            "--raw",
            &format!("/api/v1/namespaces/{NAMESPACE}/services/{RELEASE}-metrics:metrics/proxy/metrics"),
        ],
    );
    let (_, names) = parse_metrics(&via_service);
    // (Families both replicas declare: the standby has reconciled nothing.)
    for name in ["navigator_leader", "navigator_build_info", "navigator_objects"] {
        assert!(
            names.contains(name),
            "/metrics through the Service declares {name}: {names:?}"
        );
    }
    let leader = lease_holder(&admin).await.expect("a leader holds the lease");
    let standby = pods.iter().map(name_of).find(|p| *p != leader).expect("a standby pod");
    let scrape_pod = |pod: &str| {
        kubectl(
            &cluster,
            &[
                "get",
                "--raw",
                &format!("/api/v1/namespaces/{NAMESPACE}/pods/{pod}:8080/proxy/metrics"),
            ],
        )
    };
    let (leader_samples, _) = parse_metrics(&scrape_pod(&leader));
    let (standby_samples, _) = parse_metrics(&scrape_pod(&standby));
    assert_eq!(sum(&leader_samples, "navigator_leader"), 1.0);
    assert!(sum(&leader_samples, "navigator_reconciles_total") > 0.0);
    assert_eq!(sum(&standby_samples, "navigator_leader"), 0.0);
    assert_eq!(
        sum(&standby_samples, "navigator_reconciles_total"),
        0.0,
        "the standby reconciled nothing"
    );

    // Delete the leader's Pod: on SIGTERM it releases the lease and another replica takes it: the standby,
    // or the pod the Deployment starts in its place, whichever tries first (a standby polls the lease, a
    // starting pod tries at once).
    let deleted = Instant::now();
    kubectl(&cluster, &["-n", NAMESPACE, "delete", "pod", &leader, "--wait=false"]);
    let successor = eventually(WAIT, "another replica to take the lease", || async {
        let holder = lease_holder(&admin).await?;
        let live = ready_pods(&admin).await.iter().map(name_of).any(|p| p == holder);
        (holder != leader && live).then_some(holder)
    })
    .await;
    let failover = deleted.elapsed();
    let which = if successor == standby {
        "the standby"
    } else {
        "the replacement pod"
    };
    println!("failover: {which} {successor} holds the lease {failover:.1?} after {leader}'s Pod was deleted");
    let after_failover = subscription(&run_id, "globex-after-failover");
    kubectl_apply(&cluster, std::slice::from_ref(&after_failover));
    let mut all = objects.clone();
    all.extend(navigator_objects(std::slice::from_ref(&after_failover)));
    wait_all_ready(&admin, &all, WAIT).await;
    eventually(WAIT, "the Deployment to replace the deleted pod", || async {
        (ready_pods(&admin).await.len() == 2).then_some(())
    })
    .await;

    // helm upgrade with a changed value rolls the pods; a pod of the new revision takes the lease.
    let mut helm = cluster.control_plane.helm();
    helm.args(["upgrade", RELEASE]).arg(chart_dir()).args([
        "--namespace",
        NAMESPACE,
        "--reuse-values",
        "--set",
        "logLevel=debug",
    ]);
    run(helm);
    let upgraded = eventually(WAIT, "the rollout of the new revision", || async {
        let pods = ready_pods(&admin).await;
        let new: Vec<String> = pods
            .iter()
            .filter(|p| {
                p.spec.as_ref().unwrap().containers[0]
                    .env
                    .iter()
                    .flatten()
                    .any(|e| e.name == "RUST_LOG" && e.value.as_deref() == Some("debug"))
            })
            .map(name_of)
            .collect();
        let all = Api::<Pod>::namespaced(admin.clone(), NAMESPACE)
            .list(&ListParams::default().labels(POD_LABELS))
            .await
            .ok()?
            .items
            .len();
        (new.len() == 2 && all == 2).then_some(new)
    })
    .await;
    eventually(WAIT, "a pod of the new revision to lead", || async {
        let holder = lease_holder(&admin).await?;
        upgraded.contains(&holder).then_some(())
    })
    .await;
    let after_upgrade = subscription(&run_id, "globex-after-upgrade");
    kubectl_apply(&cluster, std::slice::from_ref(&after_upgrade));
    all.extend(navigator_objects(std::slice::from_ref(&after_upgrade)));
    wait_all_ready(&admin, &all, WAIT).await;

    // Nothing was provisioned twice across the handovers.
    let stats = simulator.stats().await;
    assert_eq!(
        stats.max_creates_per_object, 1,
        "a duplicate create: {:?}",
        stats.creates
    );

    // helm uninstall removes the operator, its RBAC, the role catalogue and the admission policy; the
    // CRDs, the Navigator objects and what was provisioned stay.
    let mut helm = cluster.control_plane.helm();
    helm.args(["uninstall", RELEASE, "--namespace", NAMESPACE]);
    run(helm);
    eventually(WAIT, "the operator's pods to be gone", || async {
        let pods = Api::<Pod>::namespaced(admin.clone(), NAMESPACE)
            .list(&ListParams::default().labels(POD_LABELS))
            .await
            .ok()?;
        pods.items.is_empty().then_some(())
    })
    .await;
    let gone = |args: &[&str]| {
        let output = cluster.control_plane.kubectl("admin").args(args).output().unwrap();
        !output.status.success() && String::from_utf8_lossy(&output.stderr).contains("NotFound")
    };
    assert!(gone(&["-n", NAMESPACE, "get", "deployment", RELEASE]));
    assert!(gone(&["get", "clusterrole", RELEASE]));
    assert!(gone(&["get", "clusterrolebinding", RELEASE]));
    assert!(gone(&[
        "get",
        "validatingadmissionpolicy",
        "navigator-access-grant-no-escalation"
    ]));
    let catalogue = kubectl(
        &cluster,
        &[
            "get",
            "clusterroles",
            "-l",
            "app.kubernetes.io/component=role-catalogue",
            "-o",
            "name",
        ],
    );
    assert_eq!(catalogue.trim(), "", "the role catalogue is removed");
    kubectl(&cluster, &["get", "crd", "customerorgs.navigator.cloudpartner.io"]);
    for object in &all {
        let Named { kind, namespace, name } = object;
        let mut args = vec!["get", kind.as_str(), name.as_str()];
        if let Some(ns) = namespace {
            args.extend(["-n", ns.as_str()]);
        }
        kubectl(&cluster, &args);
    }
    let left = simulator.stats().await;
    assert_eq!(
        (left.held.orgs, left.held.instances),
        (stats.held.orgs, stats.held.instances),
        "what was provisioned stays on the endpoint"
    );
    drop(cluster);
}
