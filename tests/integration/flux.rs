//! Flux for real: source-controller and kustomize-controller (built from their Go modules by
//! `tests/flux/build.sh`) sync `examples/` from a Git repository served on loopback by `git http-backend`,
//! with the GitRepository and Kustomization of `examples/gitops/flux/`. The operator runs as a process with
//! the simulator, on a control plane of this test's own (the examples' fixed names would collide with other
//! tests' objects on the shared one).
//!
//! What a platform team relies on: Flux applies exactly the top-level manifests of `examples/` (the
//! GitRepository's ignore rules keep the rest of the repository out), reports the Kustomization Ready only
//! once every Navigator object is Ready (kstatus inside Flux reading Navigator's conditions, `wait: true`),
//! and reports a broken commit on the Kustomization: an object Navigator stalls on fails the health check
//! at once, and a change Navigator's schema refuses fails the apply with the schema's message.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use navigator_testenv::ControlPlane;
use navigator_testenv::flux::{self, Flux};
use navigator_testenv::git_server::{GitServer, git};
use serde_json::{Value, json};

use crate::support::eventually;
use crate::world::{Operator, Simulator, TOKEN};

const WAIT: Duration = Duration::from_secs(300);
/// The Kustomization and GitRepository of `examples/gitops/flux/`.
const NAME: &str = "navigator-acme-cloud";
const NAVIGATOR_GROUP: &str = "navigator.cloudpartner.io";
const FIELD_MANAGER: &str = "navigator-tests";

fn yaml_documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| <Value as serde::Deserialize>::deserialize(doc).expect("valid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

fn flux_manifest(file: &str) -> Value {
    let path = navigator_testenv::repo_root().join("examples/gitops/flux").join(file);
    yaml_documents(&std::fs::read_to_string(&path).unwrap()).remove(0)
}

fn git_repositories(client: &kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("source.toolkit.fluxcd.io", "v1", "GitRepository");
    Api::namespaced_with(client.clone(), flux::NAMESPACE, &ApiResource::from_gvk(&gvk))
}

fn kustomizations(client: &kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("kustomize.toolkit.fluxcd.io", "v1", "Kustomization");
    Api::namespaced_with(client.clone(), flux::NAMESPACE, &ApiResource::from_gvk(&gvk))
}

async fn apply(api: &Api<DynamicObject>, manifest: &Value) {
    let name = manifest["metadata"]["name"].as_str().unwrap();
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(manifest),
    )
    .await
    .unwrap_or_else(|e| panic!("applying {name}: {e}"));
}

/// An object's condition of type `type_`, from its JSON.
fn condition<'a>(object: &'a Value, type_: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// One object Flux applied: `(group, kind, namespace, name)`, the namespace empty for cluster-scoped kinds.
type Applied = (String, String, String, String);

/// The Kustomization's inventory, read from its entry ids (`<namespace>_<name>_<group>_<kind>`).
fn inventory(kustomization: &Value) -> BTreeSet<Applied> {
    kustomization["status"]["inventory"]["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|entry| {
            let id = entry["id"].as_str().unwrap();
            let parts: Vec<&str> = id.splitn(4, '_').collect();
            assert_eq!(parts.len(), 4, "inventory id {id}");
            (parts[2].into(), parts[3].into(), parts[0].into(), parts[1].into())
        })
        .collect()
}

/// What `examples/*.yaml` (the top level only) declares, as Flux would list it.
fn declared_in(examples: &Path) -> BTreeSet<Applied> {
    let mut declared = BTreeSet::new();
    for entry in std::fs::read_dir(examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            for doc in yaml_documents(&std::fs::read_to_string(&path).unwrap()) {
                let api_version = doc["apiVersion"].as_str().unwrap();
                let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
                declared.insert((
                    group.to_string(),
                    doc["kind"].as_str().unwrap().to_string(),
                    doc["metadata"]["namespace"].as_str().unwrap_or("").to_string(),
                    doc["metadata"]["name"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    declared
}

/// A Navigator object as JSON, or None when it does not exist (yet).
async fn navigator_object(client: &kube::Client, kind: &str, namespace: &str, name: &str) -> Option<Value> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(NAVIGATOR_GROUP, "v1alpha1", kind));
    let api: Api<DynamicObject> = if namespace.is_empty() {
        Api::all_with(client.clone(), &resource)
    } else {
        Api::namespaced_with(client.clone(), namespace, &resource)
    };
    let object = api.get_opt(name).await.ok()??;
    Some(serde_json::to_value(object).unwrap())
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Commits everything in the work tree and pushes it to the served repository; returns the commit id.
fn commit_and_push(work: &Path, message: &str) -> String {
    git(work, &["add", "--all"]).unwrap();
    git(work, &["commit", "--quiet", "-m", message]).unwrap();
    git(work, &["push", "--quiet", "origin", "main"]).unwrap();
    git(work, &["rev-parse", "HEAD"]).unwrap().trim().to_string()
}

/// What `flux reconcile source git` does: asks source-controller to fetch now rather than at its interval.
async fn request_reconcile(api: &Api<DynamicObject>) {
    let now = jiff::Timestamp::now().to_string();
    let patch = json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": now}}});
    api.patch(NAME, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("annotating the GitRepository");
}

/// The Kustomization once it has finished with `commit` (its last attempted revision), ready or not.
async fn kustomization_settled_at(client: &kube::Client, flux: &Flux, commit: &str, ready: &str) -> Value {
    let api = kustomizations(client);
    let what = format!("the Kustomization to report Ready={ready} for commit {commit}");
    let deadline = Instant::now() + WAIT;
    loop {
        let object = serde_json::to_value(api.get(NAME).await.unwrap()).unwrap();
        let attempted = object["status"]["lastAttemptedRevision"].as_str().unwrap_or("");
        let status = condition(&object, "Ready").and_then(|c| c["status"].as_str());
        if attempted.ends_with(commit) && status == Some(ready) {
            return object;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out waiting for {what}; the Kustomization:\n{}\nkustomize-controller's log:\n{}\nsource-controller's log:\n{}",
                serde_yaml::to_string(&object["status"]).unwrap(),
                flux.log_tail("kustomize-controller"),
                flux.log_tail("source-controller")
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn flux_applies_the_examples_from_git_waits_for_navigator_and_reports_a_broken_commit() {
    let cp = Arc::new(
        tokio::task::spawn_blocking(ControlPlane::start)
            .await
            .unwrap()
            .expect("starting a control plane for this test"),
    );
    let client = cp.client().await;
    crate::api::install_crds(&client).await;
    let flux = {
        let cp = cp.clone();
        tokio::task::spawn_blocking(move || Flux::start(&cp))
            .await
            .unwrap()
            .expect("starting Flux's controllers")
    };
    // Provisioning takes long enough that Flux is seen waiting for it.
    let simulator = Simulator::start("flux", &["--provision-seconds", "10"]).await;
    // Flux labels every object it applies with its Kustomization: the operator takes exactly those.
    let _operator = Operator::start_selecting(
        "operator-flux",
        &format!("kustomize.toolkit.fluxcd.io/name={NAME}"),
        &cp.kubeconfig("admin"),
        &[],
        &[],
    );

    // The provider's repository: this repository's examples/ (with its subfolders, which Flux must leave out).
    let git_dir = cp.dir().join("git");
    let server = GitServer::start(&git_dir.join("served")).unwrap();
    let bare = server.create_repository("navigator").unwrap();
    let work = git_dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "--quiet", "--initial-branch=main"]).unwrap();
    git(&work, &["remote", "add", "origin", &bare.display().to_string()]).unwrap();
    let examples = navigator_testenv::repo_root().join("examples");
    copy_tree(&examples, &work.join("examples"));

    // The manifests of examples/gitops/flux, pointed at this repository and this test's simulator (whose
    // address and token a real provider's endpoint would have in its own copy of the examples).
    let mut source = flux_manifest("gitrepository.yaml");
    source["spec"]["url"] = json!(server.url("navigator"));
    let mut kustomization = flux_manifest("kustomization.yaml");
    kustomization["spec"]["patches"] = json!([
        {"target": {"kind": "CloudEndpoint", "name": "simulator"},
         "patch": format!("- op: replace\n  path: /spec/url\n  value: {}\n", simulator.url)},
        {"target": {"kind": "Secret", "name": "simulator-credentials"},
         "patch": format!("- op: replace\n  path: /stringData/token\n  value: {TOKEN}\n")},
    ]);

    let pushed = Instant::now();
    let pushed_at = jiff::Timestamp::now();
    let first = commit_and_push(&work, "Navigator: Acme Cloud and its customers");
    apply(&git_repositories(&client), &source).await;
    apply(&kustomizations(&client), &kustomization).await;

    // Until Ready: every half second, whether the Kustomization was seen not Ready, after its first health
    // check, while a Navigator object was not Ready (its inventory is written at the end of a reconcile, so
    // the objects are those the commit declares). Its conditions are kept as a timeline for the log.
    let declared = declared_in(&examples);
    let api = kustomizations(&client);
    let mut seen_waiting: Option<String> = None;
    let mut timeline: Vec<String> = Vec::new();
    let ready = loop {
        let object = serde_json::to_value(api.get(NAME).await.unwrap()).unwrap();
        let state = ["Ready", "Healthy", "Reconciling"]
            .iter()
            .filter_map(|t| condition(&object, t).map(|c| format!("{t}={} ({})", c["status"], c["message"])))
            .collect::<Vec<_>>()
            .join(", ");
        if timeline.last().is_none_or(|last| !last.ends_with(&state)) {
            timeline.push(format!("{:>5.1?} {state}", pushed.elapsed()));
        }
        if condition(&object, "Ready").is_some_and(|c| c["status"] == "True") {
            break object;
        }
        // Objects applied together must not fail Flux's first health check while the operator's caches
        // catch up: a correct commit goes straight to Ready.
        if let Some(failed) = condition(&object, "Ready").filter(|c| c["reason"] == "HealthCheckFailed") {
            panic!(
                "the first sync of a correct commit failed its health check: {}\n{}",
                failed["message"],
                timeline.join("\n")
            );
        }
        // Flux has applied the commit (Healthy appears with its first health check) and is not Ready.
        let checked = condition(&object, "Healthy").is_some();
        if seen_waiting.is_none() && checked {
            for (group, kind, namespace, name) in &declared {
                if group != NAVIGATOR_GROUP {
                    continue;
                }
                let live = navigator_object(&client, kind, namespace, name).await;
                let not_ready = live
                    .as_ref()
                    .and_then(|o| condition(o, "Ready"))
                    .is_none_or(|c| c["status"] != "True");
                if not_ready {
                    seen_waiting = Some(format!("{kind} {namespace}/{name}"));
                    break;
                }
            }
        }
        assert!(
            pushed.elapsed() < WAIT,
            "the Kustomization was not Ready within {WAIT:?}:\n{}\nkustomize-controller's log:\n{}",
            serde_yaml::to_string(&object["status"]).unwrap(),
            flux.log_tail("kustomize-controller")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!(
        "Flux: the Kustomization's conditions since the push:\n{}",
        timeline.join("\n")
    );
    let commit_to_ready = pushed.elapsed();
    println!("Flux: commit {first} to Kustomization Ready in {commit_to_ready:.1?}");
    assert!(
        ready["status"]["lastAppliedRevision"]
            .as_str()
            .unwrap()
            .ends_with(&first),
        "Ready for the commit pushed: {}",
        ready["status"]["lastAppliedRevision"]
    );
    let waited_on = seen_waiting.expect("the Kustomization was seen not Ready while a Navigator object was not Ready");
    println!("Flux: not Ready while {waited_on} was not");

    // Exactly the top-level examples were applied: nothing from examples/gitops or examples/cloud-director.
    let applied = inventory(&ready);
    assert_eq!(applied, declared, "what Flux applied");

    // Every Navigator object turned Ready no later than the Kustomization did.
    let flux_ready_at = condition(&ready, "Ready").unwrap()["lastTransitionTime"]
        .as_str()
        .unwrap();
    let flux_ready_at: jiff::Timestamp = flux_ready_at.parse().unwrap();
    let mut navigator_objects = 0;
    let mut last_ready = pushed_at;
    for (group, kind, namespace, name) in &applied {
        if group != NAVIGATOR_GROUP {
            continue;
        }
        navigator_objects += 1;
        let live = navigator_object(&client, kind, namespace, name).await.unwrap();
        let object_ready = condition(&live, "Ready").unwrap_or_else(|| panic!("{kind} {name} has no Ready condition"));
        assert_eq!(
            object_ready["status"], "True",
            "{kind} {namespace}/{name} when Flux is Ready: {object_ready}"
        );
        let at: jiff::Timestamp = object_ready["lastTransitionTime"].as_str().unwrap().parse().unwrap();
        last_ready = last_ready.max(at);
        assert!(
            at <= flux_ready_at,
            "{kind} {namespace}/{name} turned Ready at {at}, after the Kustomization ({flux_ready_at})"
        );
    }
    assert!(
        navigator_objects >= 10,
        "the examples hold the Navigator objects ({navigator_objects})"
    );
    println!(
        "Navigator: all {navigator_objects} objects Ready {:.0} s after the push (to the second)",
        last_ready.duration_since(pushed_at).as_secs_f64()
    );

    // A broken commit Navigator refuses: a subscription to a service no contract covers. kstatus reads the
    // subscription's Stalled=True as Failed, and Flux fails the health check at once (no 10-minute timeout).
    let subscriptions = work.join("examples/40-subscriptions.yaml");
    let mut text = std::fs::read_to_string(&subscriptions).unwrap();
    text.push_str(
        "---\napiVersion: navigator.cloudpartner.io/v1alpha1\nkind: CloudServiceSubscription\nmetadata:\n  name: globex-gpu\n  namespace: acme-cloud\nspec:\n  customerOrgRef:\n    name: globex\n  serviceType: gpu\n  resources:\n    vcpu: 8\n",
    );
    std::fs::write(&subscriptions, &text).unwrap();
    let pushed = Instant::now();
    let stalled_commit = commit_and_push(&work, "Globex: a GPU subscription");
    request_reconcile(&git_repositories(&client)).await;
    let failed = kustomization_settled_at(&client, &flux, &stalled_commit, "False").await;
    let failed_ready = condition(&failed, "Ready").unwrap();
    let message = failed_ready["message"].as_str().unwrap();
    println!(
        "Flux on the uncovered service ({:.1?} after the push): reason {}, message: {message}",
        pushed.elapsed(),
        failed_ready["reason"]
    );
    assert_eq!(failed_ready["reason"], "HealthCheckFailed", "{failed_ready}");
    assert!(
        message.contains("CloudServiceSubscription/acme-cloud/globex-gpu status: 'Failed'"),
        "Flux names the subscription that failed: {message}"
    );
    let gpu = navigator_object(&client, "CloudServiceSubscription", "acme-cloud", "globex-gpu")
        .await
        .unwrap();
    let stalled = condition(&gpu, "Stalled").expect("the subscription reports Stalled");
    let why = stalled["message"].as_str().unwrap();
    println!(
        "Navigator on globex-gpu: Stalled {} ({}): {why}",
        stalled["status"], stalled["reason"]
    );
    assert_eq!(stalled["status"], "True");
    assert_eq!(stalled["reason"], "NotEntitled");
    assert!(why.contains("covers service gpu"), "Navigator says why: {why}");

    // A broken commit Navigator's schema refuses: renaming a customer's tenant. Flux's dry run fails with
    // the schema's own message, and nothing of the commit is applied.
    let customers = work.join("examples/30-customers.yaml");
    let text = std::fs::read_to_string(&customers).unwrap();
    assert!(text.contains("tenantName: globex\n"));
    std::fs::write(
        &customers,
        text.replacen("tenantName: globex\n", "tenantName: globex-eu\n", 1),
    )
    .unwrap();
    let pushed = Instant::now();
    let refused_commit = commit_and_push(&work, "Globex: rename the tenant");
    request_reconcile(&git_repositories(&client)).await;
    let refused = kustomization_settled_at(&client, &flux, &refused_commit, "False").await;
    let refused_ready = condition(&refused, "Ready").unwrap();
    let message = refused_ready["message"].as_str().unwrap();
    println!(
        "Flux on the renamed tenant ({:.1?} after the push): reason {}, message: {message}",
        pushed.elapsed(),
        refused_ready["reason"]
    );
    assert_eq!(refused_ready["reason"], "ReconciliationFailed", "{refused_ready}");
    assert!(
        message.contains("CustomerOrg/acme-cloud/globex") && message.contains("tenantName is immutable"),
        "Flux quotes Navigator's schema: {message}"
    );
    let globex = navigator_object(&client, "CustomerOrg", "acme-cloud", "globex")
        .await
        .unwrap();
    assert_eq!(
        globex["spec"]["tenantName"], "globex",
        "the refused commit changed nothing"
    );

    // Back to the first commit's content: Flux applies it, prunes the GPU subscription and is Ready again.
    git(&work, &["checkout", "--quiet", &first, "--", "examples"]).unwrap();
    let fixed_commit = commit_and_push(&work, "Back to the contract's services and Globex's tenant");
    request_reconcile(&git_repositories(&client)).await;
    let recovered = kustomization_settled_at(&client, &flux, &fixed_commit, "True").await;
    assert_eq!(
        inventory(&recovered),
        declared_in(&examples),
        "what Flux applied after the fix"
    );
    eventually(WAIT, "the GPU subscription to be pruned", || {
        let client = client.clone();
        async move {
            navigator_object(&client, "CloudServiceSubscription", "acme-cloud", "globex-gpu")
                .await
                .is_none()
                .then_some(())
        }
    })
    .await;
    drop(flux);
}
