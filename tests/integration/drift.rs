//! Drift: what the operator writes (RoleBindings, directory entries, namespaces) is watched, so one deleted
//! or edited by someone else is repaired within seconds, not at the next resync (10 minutes); and an object
//! that no longer parses (stored under an older schema) is reported and skipped while the others of its
//! kind keep reconciling.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{CustomResourceDefinition, JSONSchemaProps};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use kube::{CustomResourceExt, ResourceExt};
use navigator::api::access_grant::GrantPhase;
use navigator::api::{AccessGrant, CustomerOrg, ProviderOrg};
use serde_json::json;

use crate::support::eventually;
use crate::world::{Conditions, Operator, RUN_LABEL, Simulator, World, log_path};

const WAIT: Duration = Duration::from_secs(120);
/// The bound for repairing what someone else deleted or edited.
const REPAIRED: Duration = Duration::from_secs(10);

/// A world with its operator and an Active ProviderDeveloper grant `dev` to erin.
async fn world_with_grant(prefix: &str) -> (Simulator, World, Operator, AccessGrant) {
    let simulator = Simulator::start(prefix, &["--provision-seconds", "0"]).await;
    let world = World::new(prefix, &simulator, 50).await;
    let operator = Operator::start(&world.run);
    // The grant comes once the provider has settled, so that nothing but the repair under test can
    // reconcile it again within seconds of its becoming Active (a provider change wakes waiting grants).
    world
        .all_ready(&Api::<ProviderOrg>::all(world.client.clone()), WAIT)
        .await;
    world
        .apply::<AccessGrant>(
            Some(&world.namespace),
            json!({
                "metadata": {"name": "dev"},
                "spec": {"subject": {"kind": "User", "name": "erin", "email": "erin@example.test"}, "role": "ProviderDeveloper"}
            }),
        )
        .await;
    let grants = Api::<AccessGrant>::namespaced(world.client.clone(), &world.namespace);
    let grant = eventually(WAIT, "grant dev to be Active", || async {
        let grant = grants.get("dev").await.ok()?;
        (grant.status.as_ref()?.phase == Some(GrantPhase::Active)).then_some(grant)
    })
    .await;
    (simulator, world, operator, grant)
}

fn directory_name(world: &World) -> String {
    format!("navigator-grant:{}:dev", world.namespace)
}

fn subject_names(subjects: Option<Vec<k8s_openapi::api::rbac::v1::Subject>>) -> Vec<String> {
    subjects.unwrap_or_default().into_iter().map(|s| s.name).collect()
}

#[tokio::test]
async fn a_deleted_grant_role_binding_and_directory_entry_are_back_within_10_s() {
    let (_simulator, world, _operator, _grant) = world_with_grant("drift-delete").await;
    let bindings = Api::<RoleBinding>::namespaced(world.client.clone(), &world.namespace);
    let roles = Api::<ClusterRole>::all(world.client.clone());
    let directory = directory_name(&world);
    let binding_uid = bindings.get("navigator-grant-dev").await.unwrap().uid();
    let role_uid = roles.get(&directory).await.unwrap().uid();

    bindings
        .delete("navigator-grant-dev", &DeleteParams::default())
        .await
        .unwrap();
    roles.delete(&directory, &DeleteParams::default()).await.unwrap();
    eventually(
        REPAIRED,
        "the RoleBinding and the directory ClusterRole to be made again",
        || async {
            let binding = bindings.get_opt("navigator-grant-dev").await.ok()??;
            let role = roles.get_opt(&directory).await.ok()??;
            (binding.uid() != binding_uid && role.uid() != role_uid).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn an_edited_grant_role_binding_is_repaired_within_10_s() {
    let (_simulator, world, _operator, _grant) = world_with_grant("drift-edit").await;
    let bindings = Api::<RoleBinding>::namespaced(world.client.clone(), &world.namespace);
    let directory_bindings = Api::<ClusterRoleBinding>::all(world.client.clone());
    let directory = directory_name(&world);

    // Someone hands erin's access to mallory, in the namespace and in the directory.
    let mallory = json!({"subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "mallory"}]});
    bindings
        .patch("navigator-grant-dev", &PatchParams::default(), &Patch::Merge(&mallory))
        .await
        .unwrap();
    directory_bindings
        .patch(&directory, &PatchParams::default(), &Patch::Merge(&mallory))
        .await
        .unwrap();
    eventually(REPAIRED, "the bindings to name erin again, and only erin", || async {
        let binding = bindings.get("navigator-grant-dev").await.ok()?;
        let entry = directory_bindings.get(&directory).await.ok()?;
        (subject_names(binding.subjects) == ["erin"] && subject_names(entry.subjects) == ["erin"]).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_deleted_administrators_binding_and_a_relabelled_customer_namespace_are_repaired_within_10_s() {
    let simulator = Simulator::start("drift-org", &["--provision-seconds", "0"]).await;
    let world = World::new("drift-org", &simulator, 50).await;
    let _operator = Operator::start(&world.run);
    world
        .apply::<ProviderOrg>(
            None,
            json!({
                "metadata": {"name": world.namespace},
                "spec": {"displayName": format!("Provider {}", world.run), "partnerTypes": ["CloudProvider"],
                         "namespace": world.namespace, "administrators": [{"kind": "User", "name": "frank"}]}
            }),
        )
        .await;
    world.customer("a", "Delete").await;
    world.all_ready(&world.customers(), WAIT).await;
    let bindings = Api::<RoleBinding>::namespaced(world.client.clone(), &world.namespace);
    let administrators = "navigator-provider-administrators";
    let uid = eventually(WAIT, "the administrators' RoleBinding", || async {
        Some(bindings.get_opt(administrators).await.ok()??.uid())
    })
    .await;
    let namespaces = Api::<Namespace>::all(world.client.clone());
    let customer_namespace = format!("{}-a", world.namespace);
    const MANAGED_BY: &str = "app.kubernetes.io/managed-by";

    bindings.delete(administrators, &DeleteParams::default()).await.unwrap();
    let unlabel = json!({"metadata": {"labels": {MANAGED_BY: null}}});
    namespaces
        .patch(&customer_namespace, &PatchParams::default(), &Patch::Merge(&unlabel))
        .await
        .unwrap();
    eventually(
        REPAIRED,
        "the administrators' RoleBinding back, and the customer namespace labelled again",
        || async {
            let binding = bindings.get_opt(administrators).await.ok()??;
            let namespace = namespaces.get(&customer_namespace).await.ok()?;
            let labelled = namespace.labels().get(MANAGED_BY).map(String::as_str) == Some("navigator");
            (binding.uid() != uid && subject_names(binding.subjects) == ["frank"] && labelled).then_some(())
        },
    )
    .await;
}

/// Replaces the CustomerOrg CRD's schema of `spec` with one that takes anything, as an older version of the
/// CRD might have, so an object that Navigator cannot read can be stored.
async fn loosen_customer_schema(client: &kube::Client) {
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    let mut crd = crds.get(CustomerOrg::crd_name()).await.unwrap();
    let schema = crd.spec.versions[0]
        .schema
        .as_mut()
        .and_then(|s| s.open_api_v3_schema.as_mut())
        .expect("a schema");
    schema.properties.as_mut().unwrap().insert(
        "spec".into(),
        JSONSchemaProps {
            type_: Some("object".into()),
            x_kubernetes_preserve_unknown_fields: Some(true),
            ..Default::default()
        },
    );
    crds.replace(CustomerOrg::crd_name(), &PostParams::default(), &crd)
        .await
        .expect("loosening the CustomerOrg schema");
}

/// Stores CustomerOrg `name` with a number as its display name (which Navigator reads as a string), once
/// the loosened schema lets it through.
async fn store_unreadable_customer(world: &World, name: &str) {
    let api = Api::<DynamicObject>::namespaced_with(
        world.client.clone(),
        &world.namespace,
        &ApiResource::erase::<CustomerOrg>(&()),
    );
    let object = json!({
        "apiVersion": "navigator.cloudpartner.io/v1alpha1", "kind": "CustomerOrg",
        "metadata": {"name": name, "labels": {RUN_LABEL: world.run}},
        "spec": {"displayName": 42, "tenantName": world.tenant(name), "endpointRef": {"name": world.endpoint}}
    });
    let ssa = PatchParams::apply("navigator-tests").force();
    eventually(
        WAIT,
        &format!("CustomerOrg {name} with a number as its name to be stored"),
        || async { api.patch(name, &ssa, &Patch::Apply(&object)).await.ok().map(|_| ()) },
    )
    .await;
}

/// The Warning Events with reason `reason` on object `name` in `namespace`.
async fn warnings(client: &kube::Client, namespace: &str, name: &str, reason: &str) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map(|list| list.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| {
            e.type_.as_deref() == Some("Warning")
                && e.reason.as_deref() == Some(reason)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
        })
        .collect()
}

#[tokio::test]
async fn an_object_that_no_longer_parses_is_reported_and_the_others_of_its_kind_keep_reconciling() {
    // A control plane of this test's own: CRDs are cluster-wide, and changing one would disturb other tests.
    let control_plane = tokio::task::spawn_blocking(navigator_testenv::ControlPlane::start)
        .await
        .unwrap()
        .expect("starting a control plane for this test");
    let simulator = Simulator::start("unparsable", &["--provision-seconds", "0"]).await;
    let world = World::new_on(control_plane.client().await, "unparsable", &simulator, 50).await;

    // Stored while an older, looser schema was installed; then the current CRDs come back.
    loosen_customer_schema(&world.client).await;
    store_unreadable_customer(&world, "broken").await;
    crate::api::install_crds(&world.client).await;

    let log = format!("operator-{}", world.run);
    let _operator = Operator::start_with(&log, &world.run, &control_plane.kubeconfig("admin"), &[], &[]);
    world.customer("good", "Delete").await;
    let customers = world.customers();
    eventually(
        WAIT,
        "CustomerOrg good to be Ready beside the unreadable one",
        || async { customers.get("good").await.ok()?.is_ready().then_some(()) },
    )
    .await;
    let event = eventually(WAIT, "a Warning Event Unparsable on CustomerOrg broken", || async {
        warnings(&world.client, &world.namespace, "broken", "Unparsable")
            .await
            .pop()
    })
    .await;
    let note = event.note.unwrap_or_default();
    assert!(note.contains("spec.displayName: invalid type: integer `42`"), "{note}");
    let logged = std::fs::read_to_string(log_path(&log)).unwrap();
    assert!(
        logged
            .lines()
            .any(|l| l.contains("cannot read this object") && l.contains(&format!("{}/broken", world.namespace))),
        "the operator logs the object it skips"
    );

    // An object that stops parsing while the operator runs: reported too, and nothing else stops.
    loosen_customer_schema(&world.client).await;
    store_unreadable_customer(&world, "good").await;
    eventually(WAIT, "a Warning Event Unparsable on CustomerOrg good", || async {
        warnings(&world.client, &world.namespace, "good", "Unparsable")
            .await
            .pop()
    })
    .await;
    world.customer("later", "Delete").await;
    eventually(WAIT, "CustomerOrg later to be Ready", || async {
        customers.get("later").await.ok()?.is_ready().then_some(())
    })
    .await;
}

/// Drift on the endpoint itself, which no watch sees: an instance deleted there behind Navigator's back is
/// found and made again at the object's next resync (every 5 s here), although a Ready object holds no
/// timer of its own (the resync walks the cache).
#[tokio::test]
async fn an_instance_deleted_on_the_endpoint_is_made_again_at_the_next_resync() {
    let simulator = Simulator::start("resync", &["--provision-seconds", "0"]).await;
    let world = World::new("resync", &simulator, 50).await;
    let _operator = Operator::start_with(
        &format!("operator-{}", world.run),
        &world.run,
        &crate::support::shared().kubeconfig("admin"),
        &["--resync-seconds", "5"],
        &[],
    );
    world.customer("acme", "Delete").await;
    world.subscription("app", "acme", 1).await;
    world.all_ready(&world.subscriptions(), WAIT).await;
    let org = world.tenant("acme");
    assert_eq!(simulator.instance_names(&org).await, vec!["app".to_string()]);

    let deleted = reqwest::Client::new()
        .delete(format!("{}/v1/orgs/{org}/instances/app", simulator.url))
        .bearer_auth(crate::world::TOKEN)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    eventually(
        Duration::from_secs(3),
        "the instance to be gone on the endpoint",
        || async { simulator.instance_names(&org).await.is_empty().then_some(()) },
    )
    .await;
    // One resync period, plus the time to look and make it again.
    eventually(Duration::from_secs(15), "the instance to be made again", || async {
        (simulator.instance_names(&org).await == vec!["app".to_string()]).then_some(())
    })
    .await;
}
