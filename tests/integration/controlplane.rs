//! Proof that the test control plane is a real Kubernetes: version, CRDs with CEL, garbage collection,
//! namespace deletion, RBAC and server-side apply all behave as in a production cluster.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

use crate::support::{eventually, fresh_namespace, shared};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn server_reports_the_pinned_version_and_kubectl_of_that_version_talks_to_it() {
    let cp = shared();
    let info = cp.client().await.apiserver_version().await.expect("/version");
    assert_eq!(info.git_version, navigator_testenv::KUBERNETES_VERSION);
    assert_eq!(format!("v{}.{}", info.major, info.minor), "v1.37");

    let out = cp
        .kubectl("admin")
        .args(["version", "-o", "json"])
        .output()
        .expect("kubectl version");
    assert!(
        out.status.success(),
        "kubectl version failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let versions: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        versions["clientVersion"]["gitVersion"],
        navigator_testenv::KUBERNETES_VERSION
    );
    assert_eq!(
        versions["serverVersion"]["gitVersion"],
        navigator_testenv::KUBERNETES_VERSION
    );
}

fn widget_crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.harness.navigator.test"},
        "spec": {
            "group": "harness.navigator.test",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {
                        "type": "object",
                        "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}},
                        "x-kubernetes-validations": [{"rule": "self.min <= self.max", "message": "min must not exceed max"}]
                    }}
                }}
            }]
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn a_crd_becomes_established_serves_objects_and_its_cel_rule_refuses_bad_ones() {
    let client = shared().client().await;
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    crds.patch(
        "widgets.harness.navigator.test",
        &PatchParams::apply("navigator-tests").force(),
        &Patch::Apply(widget_crd()),
    )
    .await
    .expect("installing the CRD");
    eventually(WAIT, "the Widget CRD to be Established", || async {
        let crd = crds.get("widgets.harness.navigator.test").await.ok()?;
        let established = crd
            .status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        established.then_some(())
    })
    .await;

    let ns = fresh_namespace(&client, "crd").await;
    let gvk = GroupVersionKind::gvk("harness.navigator.test", "v1", "Widget");
    let widgets = Api::<DynamicObject>::namespaced_with(client.clone(), &ns, &ApiResource::from_gvk(&gvk));
    let widget = |name: &str, min: i64, max: i64| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "harness.navigator.test/v1", "kind": "Widget",
            "metadata": {"name": name}, "spec": {"min": min, "max": max}
        }))
        .unwrap()
    };
    // The API discovery may lag the Established condition by a moment.
    eventually(WAIT, "the apiserver to serve widgets", || async {
        widgets.create(&PostParams::default(), &widget("good", 1, 2)).await.ok()
    })
    .await;
    assert_eq!(widgets.get("good").await.unwrap().data["spec"]["max"], 2);

    let refused = widgets
        .create(&PostParams::default(), &widget("bad", 3, 2))
        .await
        .expect_err("CEL must refuse min > max");
    let message = refused.to_string();
    assert!(
        message.contains("min must not exceed max"),
        "unexpected error: {message}"
    );
}

#[tokio::test]
async fn deleting_an_owner_garbage_collects_its_dependents() {
    let client = shared().client().await;
    let ns = fresh_namespace(&client, "gc").await;
    let maps = Api::<ConfigMap>::namespaced(client.clone(), &ns);
    let owner = maps
        .create(&PostParams::default(), &config_map("owner", None))
        .await
        .unwrap();
    let owner_ref =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid.unwrap()});
    maps.create(&PostParams::default(), &config_map("dependent", Some(owner_ref)))
        .await
        .unwrap();

    maps.delete("owner", &DeleteParams::background()).await.unwrap();
    eventually(WAIT, "the garbage collector to delete the dependent", || async {
        matches!(maps.get_opt("dependent").await, Ok(None)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn deleting_a_namespace_removes_what_is_in_it() {
    let client = shared().client().await;
    let ns = fresh_namespace(&client, "nsdel").await;
    Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &config_map("inside", None))
        .await
        .unwrap();
    let namespaces = Api::<Namespace>::all(client.clone());
    namespaces.delete(&ns, &DeleteParams::default()).await.unwrap();
    // The namespace only disappears once the namespace controller has emptied it.
    eventually(
        WAIT,
        "the namespace controller to finish deleting the namespace",
        || async { matches!(namespaces.get_opt(&ns).await, Ok(None)).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn rbac_forbids_a_test_user_until_a_role_binding_allows_it() {
    let cp = shared();
    let admin = cp.client().await;
    let ns = fresh_namespace(&admin, "rbac").await;
    let as_alice = Api::<ConfigMap>::namespaced(cp.client_as("alice").await, &ns);

    let forbidden = as_alice
        .list(&Default::default())
        .await
        .expect_err("alice holds no role yet");
    assert!(
        matches!(&forbidden, kube::Error::Api(s) if s.code == 403),
        "expected 403, got {forbidden}"
    );

    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "configmap-reader"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]
    }))
    .unwrap();
    Api::<Role>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    // Bind the group rather than the user: it proves group membership from the token file works too.
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "team-a-reads"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "configmap-reader"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "navigator:test:team-a"}]
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();

    eventually(WAIT, "alice to be allowed by the RoleBinding", || async {
        as_alice.list(&Default::default()).await.ok()
    })
    .await;
    // bob is in another group: still forbidden.
    let as_bob = Api::<ConfigMap>::namespaced(cp.client_as("bob").await, &ns);
    assert!(
        as_bob.list(&Default::default()).await.is_err(),
        "bob must stay forbidden"
    );
}

#[tokio::test]
async fn server_side_apply_records_the_field_manager() {
    let client = shared().client().await;
    let ns = fresh_namespace(&client, "ssa").await;
    let maps = Api::<ConfigMap>::namespaced(client, &ns);
    let desired =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"colour": "blue"}});
    let params = PatchParams::apply("navigator-test-manager");
    maps.patch("applied", &params, &Patch::Apply(&desired)).await.unwrap();

    // Another manager taking the same field conflicts unless forced: that is server-side apply, not a merge.
    let other =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"colour": "red"}});
    let conflict = maps
        .patch("applied", &PatchParams::apply("someone-else"), &Patch::Apply(&other))
        .await
        .expect_err("a conflict");
    assert!(
        matches!(&conflict, kube::Error::Api(s) if s.code == 409),
        "expected 409, got {conflict}"
    );

    let live = maps.get("applied").await.unwrap();
    assert_eq!(live.data.unwrap()["colour"], "blue");
    let managers: Vec<_> = live
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(
        managers.contains(&"navigator-test-manager".to_string()),
        "managers: {managers:?}"
    );
}

fn config_map(name: &str, owner: Option<serde_json::Value>) -> ConfigMap {
    let mut value = json!({"metadata": {"name": name}, "data": {"k": "v"}});
    if let Some(owner) = owner {
        value["metadata"]["ownerReferences"] = json!([owner]);
    }
    serde_json::from_value(value).unwrap()
}
