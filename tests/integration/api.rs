//! The API on the real apiserver: the generated CRDs install and become Established, every manifest of the
//! invalid corpus (`tests/invalid/`) is refused with a message naming the offending field, updates of
//! mutable fields pass and updates of immutable ones fail (`tests/invalid/updates/`), the examples are
//! accepted, and `kubectl explain` shows the field documentation.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde::Deserialize;
use serde_json::Value;

use crate::support::{eventually, fresh_namespace, shared};

const WAIT: Duration = Duration::from_secs(60);
const FIELD_MANAGER: &str = "navigator-api-tests";
/// What the apiserver adds, at the field path `<nil>`, when an earlier error kept it from running the rules.
const SKIPPED_RULES_NOTE: &str = "<nil>: Invalid value: null: some validation rules were not checked";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Installs the committed CRDs (`crds/`) with server-side apply and waits until every one is Established
/// and its kind is served. Idempotent: any test that needs the Navigator kinds may call it.
pub async fn install_crds(client: &kube::Client) {
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    let mut names = Vec::new();
    for path in yaml_files(&repo().join("crds")) {
        for document in documents(&path) {
            let crd: CustomResourceDefinition = serde_json::from_value(document).expect("a CRD");
            let name = crd.metadata.name.clone().expect("a CRD name");
            crds.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&crd))
                .await
                .unwrap_or_else(|e| panic!("installing {name} from {}: {e}", path.display()));
            names.push((name, crd.spec.names.kind.clone()));
        }
    }
    assert_eq!(names.len(), 9, "crds/ should hold the nine Navigator CRDs");
    for (name, kind) in names {
        eventually(WAIT, &format!("{name} to be Established"), || async {
            let crd = crds.get(&name).await.ok()?;
            crd.status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(())
        })
        .await;
        // Discovery may lag the Established condition by a moment.
        let resource = navigator_resource(&kind).0;
        let api = Api::<DynamicObject>::all_with(client.clone(), &resource);
        eventually(WAIT, &format!("the apiserver to serve {kind}"), || async {
            api.list(&ListParams::default().limit(1)).await.ok()
        })
        .await;
    }
}

/// The API resource of a Navigator kind, and whether it is namespaced, from the generated CRDs.
fn navigator_resource(kind: &str) -> (ApiResource, bool) {
    let crd = navigator::api::crds::all()
        .into_iter()
        .find(|crd| crd.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("{kind} is not a Navigator kind"));
    let gvk = GroupVersionKind::gvk(navigator::api::GROUP, navigator::api::VERSION, kind);
    (
        ApiResource::from_gvk_with_plural(&gvk, &crd.spec.names.plural),
        crd.spec.scope == "Namespaced",
    )
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file() && path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|document| Value::deserialize(document).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display())))
        .filter(|value| !value.is_null())
        .collect()
}

/// One file of the corpus: what it holds and what the server must answer.
struct Case {
    path: PathBuf,
    documents: Vec<Value>,
    /// `None`: the server must accept it.
    refusal: Option<Refusal>,
}

struct Refusal {
    /// The path of the offending field, e.g. `spec.tenantName`, that the message must name.
    field: String,
    /// Text the message must contain (compared without regard to case).
    message: String,
}

impl Case {
    fn load(path: PathBuf) -> Case {
        let text = std::fs::read_to_string(&path).unwrap();
        let header = |key: &str| {
            text.lines().take_while(|line| line.starts_with('#')).find_map(|line| {
                line.strip_prefix(&format!("# {key}: "))
                    .map(str::trim)
                    .map(String::from)
            })
        };
        let refusal = match (header("expect-field"), header("expect-message"), header("expect")) {
            (Some(field), Some(message), None) => Some(Refusal { field, message }),
            (None, None, Some(accepted)) if accepted == "accepted" => None,
            _ => panic!(
                "{}: start with `# expect-field: <path>` and `# expect-message: <text>`, or `# expect: accepted`",
                path.display()
            ),
        };
        Case {
            documents: documents(&path),
            path,
            refusal,
        }
    }

    fn name(&self) -> String {
        self.path.file_stem().unwrap().to_string_lossy().into_owned()
    }

    fn kind(&self) -> String {
        self.documents[0]["kind"].as_str().unwrap_or_default().to_string()
    }

    /// Why `outcome` is not what this case expects, if it is not.
    fn mismatch(&self, outcome: &Result<(), String>) -> Option<String> {
        match (&self.refusal, outcome) {
            (None, Ok(())) => None,
            (None, Err(message)) => Some(format!("should be accepted, was refused: {message}")),
            (Some(_), Ok(())) => Some("should be refused, was accepted".into()),
            // A rule declared on the object's root without a fieldPath is reported at the path `<nil>`. (The
            // apiserver's own note that it skipped rules after another error is at `<nil>` too, and is fine.)
            (Some(_), Err(message)) if message.replace(SKIPPED_RULES_NOTE, "").contains("<nil>") => {
                Some(format!("refused, but the error names no field (<nil>): {message}"))
            }
            (Some(refusal), Err(message)) => {
                let names_field = message.contains(&refusal.field);
                let says = message.to_lowercase().contains(&refusal.message.to_lowercase());
                (!names_field || !says).then(|| {
                    format!(
                        "refused, but the message does not name {:?} and say {:?}: {message}",
                        refusal.field, refusal.message
                    )
                })
            }
        }
    }
}

fn corpus(dir: &Path) -> Vec<Case> {
    yaml_files(dir).into_iter().map(Case::load).collect()
}

fn api_error(error: kube::Error) -> String {
    match error {
        kube::Error::Api(status) => status.message.clone(),
        other => panic!("expected an answer from the apiserver, got {other}"),
    }
}

#[test]
fn the_corpus_has_at_least_forty_cases_covering_every_kind() {
    let creates = corpus(&repo().join("tests/invalid"));
    assert!(creates.len() >= 40, "only {} invalid manifests", creates.len());
    let updates = corpus(&repo().join("tests/invalid/updates"));
    let every_kind: BTreeSet<String> = navigator::api::crds::all()
        .into_iter()
        .map(|crd| crd.spec.names.kind)
        .collect();
    let covered: BTreeSet<String> = creates.iter().map(Case::kind).collect();
    assert_eq!(covered, every_kind, "every kind needs invalid manifests");
    for case in &creates {
        assert!(
            case.refusal.is_some() && case.documents.len() == 1,
            "{}: one manifest that must be refused",
            case.name()
        );
    }
    for case in &updates {
        assert_eq!(
            case.documents.len(),
            2,
            "{}: an update case holds the object and its update",
            case.name()
        );
    }
    assert!(updates.iter().any(|c| c.refusal.is_none()) && updates.iter().any(|c| c.refusal.is_some()));
}

#[tokio::test]
async fn every_invalid_manifest_is_refused_naming_the_offending_field() {
    let cp = shared();
    let client = cp.client().await;
    install_crds(&client).await;
    let namespace = fresh_namespace(&client, "invalid").await;
    let cases = corpus(&repo().join("tests/invalid"));

    // As a user: `kubectl apply` (client-side apply, strict field validation), several at a time.
    let kubectl_outcomes: Vec<(usize, Result<(), String>)> = stream::iter(cases.iter().enumerate())
        .map(|(i, case)| {
            let mut command = cp.kubectl("admin");
            command.args(["apply", "-n", &namespace, "-f"]).arg(&case.path);
            async move {
                let output = tokio::process::Command::from(command)
                    .output()
                    .await
                    .expect("running kubectl");
                let outcome = if output.status.success() {
                    Ok(())
                } else {
                    Err(String::from_utf8_lossy(&output.stderr).into_owned())
                };
                (i, outcome)
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;

    let mut failures = Vec::new();
    for (i, outcome) in kubectl_outcomes {
        if let Some(why) = cases[i].mismatch(&outcome) {
            failures.push(format!("{} (kubectl apply): {why}", cases[i].name()));
        }
    }

    // As GitOps tools do: server-side apply. Type errors are reported by a different layer there, so the
    // check is that it is refused and the message names the field.
    let params = PatchParams::apply(FIELD_MANAGER).force().validation_strict();
    for case in &cases {
        let object = &case.documents[0];
        let (resource, namespaced) = navigator_resource(&case.kind());
        let api = if namespaced {
            Api::<DynamicObject>::namespaced_with(client.clone(), &namespace, &resource)
        } else {
            Api::<DynamicObject>::all_with(client.clone(), &resource)
        };
        let name = object["metadata"]["name"].as_str().unwrap();
        let refusal = case.refusal.as_ref().unwrap();
        let leaf = refusal.field.rsplit('.').next().unwrap().split('[').next().unwrap();
        match api.patch(name, &params, &Patch::Apply(object)).await {
            Ok(_) => failures.push(format!(
                "{} (server-side apply): should be refused, was accepted",
                case.name()
            )),
            Err(error) => {
                let message = api_error(error);
                if !message.contains(leaf) {
                    failures.push(format!(
                        "{} (server-side apply): the message does not name {leaf:?}: {message}",
                        case.name()
                    ));
                }
            }
        }
    }

    // Whatever was wrongly accepted must not linger on the shared control plane.
    for case in &cases {
        let (resource, namespaced) = navigator_resource(&case.kind());
        if !namespaced {
            let name = case.documents[0]["metadata"]["name"].as_str().unwrap();
            let _ = Api::<DynamicObject>::all_with(client.clone(), &resource)
                .delete(name, &DeleteParams::default())
                .await;
        }
    }
    let _ = Api::<Namespace>::all(client.clone())
        .delete(&namespace, &DeleteParams::default())
        .await;
    assert!(
        failures.is_empty(),
        "{} of {} invalid manifests misbehaved:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn mutable_fields_change_and_immutable_fields_do_not() {
    let cp = shared();
    let client = cp.client().await;
    install_crds(&client).await;
    let namespace = fresh_namespace(&client, "updates").await;
    // Cluster-scoped objects get the namespace's unique suffix so that they cannot collide with others'.
    let suffix = namespace.rsplit('-').next().unwrap().to_string();
    let cases = corpus(&repo().join("tests/invalid/updates"));

    let mut failures = Vec::new();
    let mut cluster_objects = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let (resource, namespaced) = navigator_resource(&case.kind());
        let api = if namespaced {
            Api::<DynamicObject>::namespaced_with(client.clone(), &namespace, &resource)
        } else {
            Api::<DynamicObject>::all_with(client.clone(), &resource)
        };
        let mut original: DynamicObject = serde_json::from_value(case.documents[0].clone()).unwrap();
        let update = &case.documents[1];
        // Each case gets an object of its own.
        let base = original.metadata.name.take().unwrap();
        original.metadata.name = Some(if namespaced {
            format!("{base}-{i}")
        } else {
            format!("{base}-{suffix}-{i}")
        });
        let name = original.metadata.name.clone().unwrap();
        if let Err(error) = api.create(&PostParams::default(), &original).await {
            failures.push(format!(
                "{}: the original object is refused: {}",
                case.name(),
                api_error(error)
            ));
            continue;
        }
        if !namespaced {
            cluster_objects.push((resource.clone(), name.clone()));
        }
        // Replace the spec as `kubectl edit` or `kubectl replace` do: the update is exactly the new spec.
        let mut live = api.get(&name).await.unwrap();
        live.data["spec"] = update["spec"].clone();
        let outcome = api
            .replace(&name, &PostParams::default(), &live)
            .await
            .map(|_| ())
            .map_err(api_error);
        if let Some(why) = case.mismatch(&outcome) {
            failures.push(format!("{}: {why}", case.name()));
        }
    }

    for (resource, name) in cluster_objects {
        let _ = Api::<DynamicObject>::all_with(client.clone(), &resource)
            .delete(&name, &DeleteParams::default())
            .await;
    }
    let _ = Api::<Namespace>::all(client.clone())
        .delete(&namespace, &DeleteParams::default())
        .await;
    assert!(
        failures.is_empty(),
        "{} of {} update cases misbehaved:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn every_example_is_accepted_by_a_server_side_dry_run() {
    let cp = shared();
    let client = cp.client().await;
    install_crds(&client).await;
    let mut stdout = String::new();
    // The examples, and the Cloud Director provider's in their own folder.
    for examples in [repo().join("examples"), repo().join("examples/cloud-director")] {
        // A dry run persists nothing, so the namespaces the examples create are made for real first (what
        // the platform team and the ProviderOrg controller would have done).
        let namespaces = Api::<Namespace>::all(client.clone());
        let all: Vec<Value> = yaml_files(&examples).iter().flat_map(|path| documents(path)).collect();
        for document in all.iter().filter(|d| d["kind"] == "Namespace") {
            let namespace: Namespace = serde_json::from_value(document.clone()).unwrap();
            let name = namespace.metadata.name.clone().unwrap();
            namespaces
                .patch(&name, &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(&namespace))
                .await
                .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        }
        let output = cp
            .kubectl("admin")
            .args(["apply", "--dry-run=server", "-f"])
            .arg(&examples)
            .output()
            .expect("running kubectl");
        let out = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "kubectl apply --dry-run=server -f {} failed:\n{out}\n{}",
            examples.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            out.matches("(server dry run)").count(),
            all.len(),
            "every example object in {} is accepted:\n{out}",
            examples.display()
        );
        stdout.push_str(&out);
    }
    for kind in [
        "cloudendpoint",
        "providerorg",
        "commitmentcontract",
        "customerorg",
        "cloudservicesubscription",
        "accessgrant",
        "supportrequest",
    ] {
        assert!(
            stdout.contains(&format!("{kind}.navigator.cloudpartner.io/")),
            "the examples lack a {kind}:\n{stdout}"
        );
    }
}

/// Checks that `kubectl explain <path>` shows each of `texts`, once it shows `field`: the OpenAPI document
/// kubectl reads is published shortly after the CRD is established.
async fn assert_explains(cp: &navigator_testenv::ControlPlane, path: &str, field: &str, texts: &[&str]) {
    let explained = eventually(WAIT, &format!("kubectl explain {path} to show {field}"), || async {
        let output = cp.kubectl("admin").args(["explain", path]).output().ok()?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        (output.status.success() && text.contains(field)).then_some(text)
    })
    .await;
    // kubectl wraps the text to its terminal width; compare it as flowing text.
    let explained = explained.split_whitespace().collect::<Vec<_>>().join(" ");
    for text in texts {
        assert!(
            explained.contains(text),
            "kubectl explain {path} lacks {text:?}:\n{explained}"
        );
    }
}

#[tokio::test]
async fn kubectl_explains_the_fields_and_lists_every_kind_in_the_navigator_category() {
    let cp = shared();
    install_crds(&cp.client().await).await;

    assert_explains(
        cp,
        "customerorg.spec",
        "tenantName",
        &[
            "tenantName <string> -required- Name of the customer's tenant organisation on the endpoint",
            "Cannot be changed: the tenant organisation keeps its name for its whole life.",
            "deletionPolicy <string> enum: Delete, Orphan What happens to the tenant organisation on the endpoint",
        ],
    )
    .await;
    assert_explains(
        cp,
        "accessgrant.spec.scope",
        "customerOrgRef",
        &[
            "Cannot be changed, added or removed once the grant exists",
            "delete this AccessGrant and create a new one",
            "customer's subscriptions. Can be changed at any time.",
        ],
    )
    .await;

    let output = cp
        .kubectl("admin")
        .args(["api-resources", "--categories=navigator", "-o", "name"])
        .output()
        .unwrap();
    let listed: BTreeSet<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(String::from)
        .collect();
    let expected: BTreeSet<String> = navigator::api::crds::all()
        .iter()
        .map(|crd| crd.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(listed, expected, "kubectl api-resources --categories=navigator");
}
