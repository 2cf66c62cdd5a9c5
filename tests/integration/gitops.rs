//! GitOps health: how Flux and Argo CD read Navigator's objects. Flux's rules are kstatus, computed here by
//! the upstream library (`sigs.k8s.io/cli-utils/pkg/kstatus/status`, in the small Go program
//! `tests/controlplane/kstatus`); Argo CD's are the Lua scripts of `examples/gitops/argocd`, run here by
//! Debian's Lua 5.1 (the language version Argo CD embeds). Both read the same live objects: InProgress and
//! Progressing while an instance is provisioned, Current and Healthy when Ready, Failed and Degraded when
//! Stalled.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use kube::Resource;
use kube::api::Api;
use navigator::api::{CloudEndpoint, CommitmentContract, CustomerOrg, ProviderOrg};
use serde_json::{Value, json};

use crate::support::eventually;
use crate::world::{Operator, Simulator, World};

const WAIT: Duration = Duration::from_secs(120);

fn gitops_dir() -> PathBuf {
    navigator_testenv::repo_root().join("examples/gitops")
}

fn yaml_documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| <Value as serde::Deserialize>::deserialize(doc).expect("valid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

/// Every Navigator kind with a status, from the CRDs the code generates. Kinds without one (TenantClaim, a
/// record only Navigator writes) never come from Git, so no GitOps tool judges their health.
fn kinds() -> Vec<String> {
    navigator::api::crds::all()
        .into_iter()
        .filter(|crd| {
            crd.spec.versions[0]
                .subresources
                .as_ref()
                .is_some_and(|s| s.status.is_some())
        })
        .map(|crd| crd.spec.names.kind)
        .collect()
}

/// kstatus of one object, as Flux computes it: `(status, message)`.
fn kstatus(object: &Value) -> (String, String) {
    let binary = navigator_testenv::bin_dir().join("kstatus");
    let mut child = Command::new(&binary)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "running {} (built by tests/controlplane/build.sh): {e}",
                binary.display()
            )
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(object.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "kstatus failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let verdict: Value = serde_json::from_slice(&output.stdout).expect("kstatus prints JSON");
    (
        verdict["status"].as_str().unwrap().to_string(),
        verdict["message"].as_str().unwrap_or_default().to_string(),
    )
}

/// A JSON value as a Lua table constructor, the way Argo CD hands objects to its health scripts (JSON null
/// becomes nil, so the key is absent).
fn lua_literal(value: &Value) -> String {
    match value {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => lua_string(s),
        Value::Array(items) => format!("{{{}}}", items.iter().map(lua_literal).collect::<Vec<_>>().join(", ")),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("[{}] = {}", lua_string(k), lua_literal(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn lua_string(s: &str) -> String {
    let mut out = String::from("\"");
    for byte in s.bytes() {
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b' '..=b'~' => out.push(byte as char),
            _ => out.push_str(&format!("\\{byte:03}")),
        }
    }
    out.push('"');
    out
}

/// Argo CD's health of one object: its kind's script from `examples/gitops/argocd/health/`, run by Lua 5.1
/// with the object as the global `obj`. Returns `(status, message)`.
fn argo_health(object: &Value) -> (String, String) {
    let kind = object["kind"].as_str().unwrap();
    let script = std::fs::read_to_string(gitops_dir().join(format!("argocd/health/{kind}.lua")))
        .unwrap_or_else(|e| panic!("no Argo CD health script for {kind}: {e}"));
    let chunk = format!(
        "obj = {}\nlocal function health()\n{script}\nend\nlocal hs = health()\nio.write(hs.status, \"\\n\", hs.message or \"\")\n",
        lua_literal(object)
    );
    let mut child = Command::new("lua5.1")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running lua5.1: {e}; install it with scripts/deps.sh (apt-get install lua5.1)"));
    child.stdin.take().unwrap().write_all(chunk.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the {kind} health script failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let (status, message) = text.split_once('\n').unwrap_or((&text, ""));
    (status.to_string(), message.to_string())
}

/// The live object as JSON, with its apiVersion and kind (as Flux and Argo CD read it).
async fn live<K>(api: &Api<K>, name: &str) -> Value
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object = api.get(name).await.unwrap_or_else(|e| panic!("reading {name}: {e}"));
    let mut value = serde_json::to_value(&object).unwrap();
    value["apiVersion"] = json!(K::api_version(&()));
    value["kind"] = json!(K::kind(&()));
    value
}

fn condition<'a>(object: &'a Value, type_: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// Both verdicts on one live object, with the object in the failure message.
fn assert_health(object: &Value, flux: &str, argo: &str) {
    let (kstatus, kstatus_message) = kstatus(object);
    let (health, health_message) = argo_health(object);
    assert_eq!(
        (kstatus.as_str(), health.as_str()),
        (flux, argo),
        "kstatus ({kstatus_message}) and Argo CD ({health_message}) on {}",
        serde_json::to_string_pretty(object).unwrap()
    );
}

#[test]
fn argocd_cm_holds_one_health_script_per_kind_identical_to_the_lua_files() {
    let docs = yaml_documents(&std::fs::read_to_string(gitops_dir().join("argocd/argocd-cm.yaml")).unwrap());
    let data = docs[0]["data"].as_object().expect("argocd-cm data");
    let mut covered = BTreeSet::new();
    for (key, script) in data {
        let kind = key
            .strip_prefix("resource.customizations.health.navigator.cloudpartner.io_")
            .unwrap_or_else(|| panic!("unexpected key {key}"));
        let file = std::fs::read_to_string(gitops_dir().join(format!("argocd/health/{kind}.lua"))).unwrap();
        assert_eq!(
            script.as_str().unwrap(),
            file,
            "argocd-cm's {kind} script differs from health/{kind}.lua"
        );
        covered.insert(kind.to_string());
    }
    assert_eq!(covered, kinds().into_iter().collect(), "one script per kind");

    // An object Navigator has not reconciled yet is Progressing, whatever its kind.
    for kind in kinds() {
        let fresh = json!({"apiVersion": "navigator.cloudpartner.io/v1alpha1", "kind": kind, "metadata": {"name": "x", "generation": 1}});
        assert_eq!(argo_health(&fresh).0, "Progressing", "{kind} without status");
    }

    let application =
        &yaml_documents(&std::fs::read_to_string(gitops_dir().join("argocd/application.yaml")).unwrap())[0];
    assert_eq!(application["kind"], "Application");
    assert_eq!(application["spec"]["source"]["path"], "examples");
}

/// The manifests' shape; `flux::flux_applies_the_examples_from_git_waits_for_navigator_and_reports_a_broken_commit`
/// runs them with Flux itself.
#[test]
fn the_flux_kustomization_applies_the_examples_and_waits_for_them() {
    let flux = gitops_dir().join("flux");
    let source = &yaml_documents(&std::fs::read_to_string(flux.join("gitrepository.yaml")).unwrap())[0];
    let kustomization = &yaml_documents(&std::fs::read_to_string(flux.join("kustomization.yaml")).unwrap())[0];
    assert_eq!(source["kind"], "GitRepository");
    assert_eq!(kustomization["kind"], "Kustomization");
    assert_eq!(kustomization["spec"]["sourceRef"]["name"], source["metadata"]["name"]);
    assert_eq!(kustomization["spec"]["path"], "./examples");
    assert_eq!(kustomization["spec"]["wait"], true);
    // With `wait: true` Flux checks every applied object and ignores a healthChecks list.
    assert!(kustomization["spec"]["healthChecks"].is_null());
}

#[tokio::test]
async fn kstatus_and_argo_cd_read_live_objects_as_in_progress_current_and_failed() {
    // Provisioning takes 20 s on this simulator, long enough to read an instance while it is created.
    let simulator = Simulator::start("gitops", &["--provision-seconds", "20"]).await;
    let world = World::new("gitops", &simulator, 50).await;
    let mut operator = Operator::start(&world.run);
    world.customer("acme", "Delete").await;
    world.subscription("web", "acme", 2).await;
    let subscriptions = world.subscriptions();

    // Provisioning: Ready=False, Reconciling=True.
    let creating = eventually(WAIT, "the subscription to be Creating", || async {
        let object = live(&subscriptions, "web").await;
        let reconciling = condition(&object, "Reconciling")?;
        (reconciling["status"] == "True" && reconciling["reason"] == "Creating").then_some(object)
    })
    .await;
    assert_health(&creating, "InProgress", "Progressing");

    // Ready.
    world.all_ready(&subscriptions, WAIT).await;
    assert_health(&live(&subscriptions, "web").await, "Current", "Healthy");
    world.all_ready(&world.customers(), WAIT).await;
    assert_health(&live(&world.customers(), "acme").await, "Current", "Healthy");
    let namespace = world.namespace.clone();
    assert_health(
        &live(&Api::<CloudEndpoint>::all(world.client.clone()), &world.endpoint).await,
        "Current",
        "Healthy",
    );
    assert_health(
        &live(&Api::<ProviderOrg>::all(world.client.clone()), &namespace).await,
        "Current",
        "Healthy",
    );
    assert_health(
        &live(
            &Api::<CommitmentContract>::namespaced(world.client.clone(), &namespace),
            "main",
        )
        .await,
        "Current",
        "Healthy",
    );

    // Stalled: a subscription naming a customer that does not exist.
    world.subscription("lost", "nobody", 1).await;
    let stalled = eventually(WAIT, "the subscription to stall", || async {
        let object = live(&subscriptions, "lost").await;
        (condition(&object, "Stalled")?["status"] == "True").then_some(object)
    })
    .await;
    assert_health(&stalled, "Failed", "Degraded");
    let (_, message) = argo_health(&stalled);
    assert!(message.contains("nobody"), "Degraded says what is missing: {message}");

    // A suspended customer is Ready for kstatus and Suspended for Argo CD.
    world
        .apply::<CustomerOrg>(
            Some(&namespace),
            json!({"metadata": {"name": "acme"}, "spec": {
                "displayName": "Customer acme", "tenantName": world.tenant("acme"),
                "endpointRef": {"name": world.endpoint}, "deletionPolicy": "Delete", "suspended": true
            }}),
        )
        .await;
    let suspended = eventually(WAIT, "the customer to be suspended", || async {
        let object = live(&world.customers(), "acme").await;
        let ready = condition(&object, "Ready")?;
        (ready["reason"] == "Suspended" && object["status"]["observedGeneration"] == object["metadata"]["generation"])
            .then_some(object)
    })
    .await;
    assert_health(&suspended, "Current", "Suspended");

    // A change Navigator has not seen yet (the operator is stopped): both wait for it.
    operator.process.kill();
    world.subscription("web", "acme", 4).await;
    let unseen = live(&subscriptions, "web").await;
    assert_ne!(unseen["status"]["observedGeneration"], unseen["metadata"]["generation"]);
    assert_health(&unseen, "InProgress", "Progressing");
}
