//! Access as real users against the real apiserver: the role catalogue and the no-escalation admission
//! policy from the Helm chart (checked in `helm template`'s output, installed by the binary's one `helm
//! install`), AccessGrants turned into RoleBindings and endpoint
//! users by the operator, isolation between customers and providers, refusal of escalation at admission,
//! revocation at expiry and on deletion, and `navigator org list/switch` (also as `kubectl navigator`) as
//! two different users.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRole, Role as RbacRole, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use navigator::api::access_grant::{GrantPhase, Role};
use navigator::api::{AccessGrant, CommitmentContract, CustomerOrg, Invoice, ProviderOrg};
use navigator::controllers::access_grant::{
    cluster_role, desired_binding, desired_directory, directory_name, reaches_customer_namespaces,
};
use serde::Deserialize;
use serde_json::json;

use crate::support::{eventually, shared};
use crate::world::{Conditions, Operator, Simulator, World};

const WAIT: Duration = Duration::from_secs(120);
const POLICY: &str = "navigator-access-grant-no-escalation";

/// The chart's role catalogue and admission policy, rendered by helm.
fn rendered_templates() -> String {
    let chart = navigator_testenv::repo_root().join("charts/navigator");
    let out = shared()
        .helm()
        .args(["template", "navigator"])
        .arg(&chart)
        .args([
            "--show-only",
            "templates/roles.yaml",
            "--show-only",
            "templates/access-admission.yaml",
        ])
        .output()
        .expect("running helm template");
    assert!(
        out.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn documents(yaml: &str) -> Vec<serde_json::Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .filter_map(|doc| serde_yaml::Value::deserialize(doc).ok())
        .filter(|v| !v.is_null())
        .map(|v| serde_json::to_value(v).unwrap())
        .collect()
}
/// A client acting as `user`, through the admin's credentials and impersonation (for probes only; the tests
/// themselves act with the users' own tokens).
async fn impersonating(user: &str) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(shared().kubeconfig("admin")).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    config.auth_info.impersonate = Some(user.to_string());
    kube::Client::try_from(config).unwrap()
}

fn grant_json(name: &str, user: &str, role: Role, customer: Option<&str>) -> AccessGrant {
    let mut spec = json!({"subject": {"kind": "User", "name": user, "email": format!("{user}@example.test")}, "role": role.as_str()});
    if let Some(customer) = customer {
        spec["scope"] = json!({"customerOrgRef": {"name": customer}});
    }
    serde_json::from_value(json!({
        "apiVersion": "navigator.cloudpartner.io/v1alpha1", "kind": "AccessGrant",
        "metadata": {"name": name}, "spec": spec
    }))
    .unwrap()
}

/// Installs the role catalogue and the admission policy from the chart (with the rest of it) once per test
/// binary, and waits until the API server enforces the policy (a dry-run grant by a user who may create
/// grants but bind nothing is refused by it).
pub async fn install_access_templates() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    if INSTALLED.get().is_some() {
        return;
    }
    let client = shared().client().await;
    crate::api::install_crds(&client).await;
    // The chart's cluster-wide objects belong to one Helm release; this binary's packaging tests install it,
    // and so the role catalogue and the admission policy come from that same `helm install`.
    tokio::task::spawn_blocking(crate::packaging::installed_chart)
        .await
        .unwrap();

    let probe = "navigator-admission-probe";
    let role: RbacRole = serde_json::from_value(json!({
        "metadata": {"name": probe},
        "rules": [{"apiGroups": ["navigator.cloudpartner.io"], "resources": ["accessgrants"], "verbs": ["create"]}]
    }))
    .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": probe},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": probe},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": probe}]
    }))
    .unwrap();
    let ssa = PatchParams::apply("navigator-tests").force();
    Api::<RbacRole>::namespaced(client.clone(), "default")
        .patch(probe, &ssa, &Patch::Apply(&role))
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), "default")
        .patch(probe, &ssa, &Patch::Apply(&binding))
        .await
        .unwrap();
    let as_probe = Api::<AccessGrant>::namespaced(impersonating(probe).await, "default");
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    eventually(WAIT, "the no-escalation policy to be enforced", || async {
        match as_probe
            .create(&dry_run, &grant_json("probe", "someone", Role::ProviderDeveloper, None))
            .await
        {
            Err(kube::Error::Api(status)) if status.message.contains(POLICY) => Some(()),
            _ => None,
        }
    })
    .await;
    let _ = INSTALLED.set(());
}

fn is_forbidden<T>(result: &Result<T, kube::Error>) -> bool {
    matches!(result, Err(kube::Error::Api(status)) if status.code == 403)
}

async fn can_list<K>(client: &kube::Client, namespace: &str) -> bool
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let result = Api::<K>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await;
    assert!(
        result.is_ok() || is_forbidden(&result),
        "unexpected answer: {:?}",
        result.err()
    );
    result.is_ok()
}

/// An issued invoice for a customer, written as Navigator's billing would (as the admin).
async fn invoice(client: &kube::Client, namespace: &str, provider: &str, customer: &str) {
    let invoice: Invoice = serde_json::from_value(json!({
        "apiVersion": "navigator.cloudpartner.io/v1alpha1", "kind": "Invoice",
        "metadata": {"name": "2026-05", "namespace": namespace},
        "spec": {
            "customerOrgRef": {"name": customer, "namespace": provider}, "providerOrgRef": {"name": provider},
            "periodStart": "2026-05-01", "periodEnd": "2026-05-31", "issuedAt": "2026-06-01T00:00:00Z",
            "currency": "EUR", "lineItems": [], "subtotal": "0.00", "taxRate": "0.21", "tax": "0.00", "total": "0.00"
        }
    }))
    .unwrap();
    Api::<Invoice>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &invoice)
        .await
        .expect("creating an invoice");
}

async fn grant(world: &World, name: &str, user: &str, role: Role, customer: Option<&str>) -> AccessGrant {
    let value = serde_json::to_value(grant_json(name, user, role, customer)).unwrap();
    world.apply::<AccessGrant>(Some(&world.namespace), value).await
}

fn grants(world: &World) -> Api<AccessGrant> {
    Api::namespaced(world.client.clone(), &world.namespace)
}

async fn wait_phase(world: &World, name: &str, phase: GrantPhase) -> AccessGrant {
    let api = grants(world);
    eventually(WAIT, &format!("grant {name} to be {phase:?}"), || async {
        let grant = api.get(name).await.ok()?;
        (grant.status.as_ref()?.phase == Some(phase)).then_some(grant)
    })
    .await
}

/// The endpoint's users of a tenant: user name -> role.
pub async fn endpoint_users(simulator: &Simulator, tenant: &str) -> BTreeMap<String, String> {
    let page: serde_json::Value = simulator.get_json(&format!("/v1/orgs/{tenant}/users")).await;
    page["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|u| {
            (
                u["username"].as_str().unwrap().to_string(),
                u["role"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A world with customers `a` and `b`, their namespaces Ready, an invoice in each, and its operator.
async fn world_with_customers(prefix: &str) -> (Simulator, World, Operator) {
    install_access_templates().await;
    let simulator = Simulator::start(prefix, &["--provision-seconds", "0"]).await;
    let world = World::new(prefix, &simulator, 50).await;
    let operator = Operator::start(&world.run);
    world.customer("a", "Delete").await;
    world.customer("b", "Delete").await;
    world.all_ready(&world.customers(), WAIT).await;
    for customer in ["a", "b"] {
        invoice(
            &world.client,
            &format!("{}-{customer}", world.namespace),
            &world.namespace,
            customer,
        )
        .await;
    }
    (simulator, world, operator)
}

#[tokio::test]
async fn the_chart_ships_one_cluster_role_per_catalogue_role_and_a_policy_that_knows_them_all() {
    let docs = documents(&rendered_templates());
    let roles: BTreeMap<String, ClusterRole> = docs
        .iter()
        .filter(|d| d["kind"] == "ClusterRole")
        .map(|d| serde_json::from_value::<ClusterRole>(d.clone()).unwrap())
        .map(|r| (r.name_any(), r))
        .collect();
    assert_eq!(
        roles.len(),
        Role::ALL.len(),
        "one ClusterRole per role: {:?}",
        roles.keys()
    );
    let policy = docs
        .iter()
        .find(|d| d["kind"] == "ValidatingAdmissionPolicy")
        .expect("the policy");
    let role_map = policy["spec"]["variables"][0]["expression"].as_str().unwrap();
    for role in Role::ALL {
        let name = cluster_role(role);
        let cluster_role = roles
            .get(&name)
            .unwrap_or_else(|| panic!("ClusterRole {name} for {role:?}"));
        let rules = cluster_role.rules.clone().unwrap_or_default();
        let allows = |resource: &str, verb: &str| {
            rules.iter().any(|r| {
                r.resources.as_deref().unwrap_or_default().iter().any(|x| x == resource)
                    && r.verbs.iter().any(|v| v == verb)
            })
        };
        assert!(
            rules
                .iter()
                .any(|r| r.verbs == ["hold"] && r.resource_names.as_deref() == Some(&[role.as_str().to_string()][..])),
            "{name} carries its hold marker"
        );
        // Roles bound in customer namespaces because they read invoices do read them, and only those.
        let reads_invoices = allows("invoices", "list");
        let bound_for_invoices = reaches_customer_namespaces(role) || role.is_customer_role();
        assert_eq!(
            reads_invoices,
            bound_for_invoices && role != Role::CustomerUser,
            "{name} and invoices"
        );
        assert!(
            role_map.contains(&format!("'{}': '{name}'", role.as_str())),
            "the policy maps {role:?} to {name}"
        );
    }
    let ops = &roles["navigator-provider-operations-user"].rules.clone().unwrap();
    assert!(
        !ops.iter().any(|r| r
            .resources
            .as_deref()
            .unwrap_or_default()
            .contains(&"customerorgs".to_string())
            && r.verbs.iter().any(|v| v == "delete")),
        "an operations user may not delete customer orgs"
    );
}

#[tokio::test]
async fn customers_see_only_their_invoices_billing_users_only_their_providers_and_org_list_shows_it() {
    let (simulator, world, _operator) = world_with_customers("iso").await;
    let provider = &world.namespace;
    let (ns_a, ns_b) = (format!("{provider}-a"), format!("{provider}-b"));

    // Another provider, with a customer and an invoice, run by the same operator.
    let other = format!("q-{}", world.run);
    world
        .apply::<ProviderOrg>(
            None,
            json!({
                "metadata": {"name": other},
                "spec": {"displayName": "Other provider", "partnerTypes": ["CloudProvider"], "namespace": other}
            }),
        )
        .await;
    let namespaces = Api::<Namespace>::all(world.client.clone());
    eventually(WAIT, "the other provider's namespace", || async {
        namespaces.get_opt(&other).await.ok()?
    })
    .await;
    world
        .apply::<CommitmentContract>(Some(&other), json!({
            "metadata": {"name": "main"},
            "spec": {"contractNumber": format!("CC-{other}"), "startDate": "2020-01-01", "endDate": "2099-12-31",
                     "services": ["compute"], "endpoints": [world.endpoint], "commitments": [{"metric": "vcpu-hours", "quantity": "1"}]}
        }))
        .await;
    world
        .apply::<CustomerOrg>(Some(&other), json!({
            "metadata": {"name": "c"},
            "spec": {"displayName": "C", "tenantName": format!("{}-qc", world.run), "endpointRef": {"name": world.endpoint}}
        }))
        .await;
    let other_customers = Api::<CustomerOrg>::namespaced(world.client.clone(), &other);
    eventually(WAIT, "the other provider's customer to be Ready", || async {
        other_customers.get("c").await.ok()?.is_ready().then_some(())
    })
    .await;
    let ns_other = format!("{other}-c");
    invoice(&world.client, &ns_other, &other, "c").await;

    grant(&world, "alice-a", "alice", Role::CustomerAdministrator, Some("a")).await;
    grant(&world, "bob-billing", "bob", Role::ProviderBillingUser, None).await;
    let alice_grant = wait_phase(&world, "alice-a", GrantPhase::Active).await;
    assert!(alice_grant.is_ready());
    wait_phase(&world, "bob-billing", GrantPhase::Active).await;
    let expected = vec![provider.clone(), ns_a.clone(), ns_b.clone()];
    eventually(
        WAIT,
        "bob to be bound where invoices are: the provider and each customer",
        || async {
            let grant = grants(&world).get("bob-billing").await.ok()?;
            let bound: Vec<String> = grant.status?.bindings.iter().map(|b| b.namespace.clone()).collect();
            (bound == expected).then_some(())
        },
    )
    .await;
    // What the operator wrote reads back exactly as it wants it, so a later look writes nothing.
    let bob_grant = grants(&world).get("bob-billing").await.unwrap();
    let live_entry = Api::<ClusterRole>::all(world.client.clone())
        .get(&directory_name(&bob_grant))
        .await
        .unwrap();
    assert_eq!(live_entry.rules, desired_directory(&bob_grant, &expected).0.rules);
    for ns in &expected {
        let live = Api::<RoleBinding>::namespaced(world.client.clone(), ns)
            .get("navigator-grant-bob-billing")
            .await
            .unwrap();
        let wanted = desired_binding(&bob_grant, ns);
        assert_eq!(
            (live.role_ref, live.subjects),
            (wanted.role_ref, wanted.subjects),
            "binding in {ns}"
        );
    }

    let alice = shared().client_as("alice").await;
    let invoices = Api::<Invoice>::namespaced(alice.clone(), &ns_a)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(invoices.items.len(), 1, "alice reads customer a's invoice");
    assert!(
        !can_list::<Invoice>(&alice, &ns_b).await,
        "alice sees nothing of customer b"
    );
    assert!(
        !can_list::<CustomerOrg>(&alice, provider).await,
        "alice sees nothing of the provider namespace"
    );
    assert!(!can_list::<Invoice>(&alice, provider).await);
    assert!(!can_list::<Invoice>(&alice, &ns_other).await);
    assert_eq!(
        endpoint_users(&simulator, &world.tenant("a"))
            .await
            .get("alice")
            .map(String::as_str),
        Some("OrganizationAdministrator"),
        "alice administers customer a's tenant on the endpoint"
    );

    let bob = shared().client_as("bob").await;
    for ns in [&ns_a, &ns_b] {
        let list = Api::<Invoice>::namespaced(bob.clone(), ns)
            .list(&ListParams::default())
            .await
            .unwrap();
        assert_eq!(list.items.len(), 1, "bob reads the invoice in {ns}");
    }
    assert!(
        can_list::<CommitmentContract>(&bob, provider).await,
        "billing status: contracts"
    );
    assert!(
        !can_list::<Invoice>(&bob, &ns_other).await,
        "nothing of another provider"
    );
    assert!(!can_list::<CommitmentContract>(&bob, &other).await);
    assert!(
        !can_list::<CustomerOrg>(&bob, provider).await,
        "a billing user reads billing and nothing else"
    );
    assert!(!can_list::<AccessGrant>(&bob, provider).await);

    // A customer added later: bob's billing role reaches its invoices too, without anyone touching the grant.
    world.customer("late", "Delete").await;
    let ns_late = format!("{provider}-late");
    eventually(WAIT, "bob's grant to reach the new customer's namespace", || async {
        let grant = grants(&world).get("bob-billing").await.ok()?;
        grant
            .status?
            .bindings
            .iter()
            .any(|b| b.namespace == ns_late)
            .then_some(())
    })
    .await;
    assert!(can_list::<Invoice>(&bob, &ns_late).await);

    // The same subject granted twice is no conflict: alice also gets the billing role on a.
    grant(&world, "alice-a-billing", "alice", Role::CustomerBillingUser, Some("a")).await;
    wait_phase(&world, "alice-a-billing", GrantPhase::Active).await;
    assert_eq!(
        endpoint_users(&simulator, &world.tenant("a"))
            .await
            .get("alice")
            .map(String::as_str),
        Some("OrganizationAdministrator"),
        "the stronger endpoint role stays"
    );

    // `navigator org list` as alice and as bob, and `kubectl navigator org switch` as alice.
    let alice_list = org(&["org", "list"], "alice", &kubeconfig_copy("alice"), false);
    println!("navigator org list as alice:\n{alice_list}");
    let line = |text: &str, ns: &str| {
        text.lines()
            .find(|l| l.split_whitespace().any(|w| w == ns))
            .map(String::from)
    };
    let alice_a = line(&alice_list, &ns_a).unwrap_or_else(|| panic!("alice sees customer a:\n{alice_list}"));
    assert!(
        alice_a.contains("Customer")
            && alice_a.contains("CustomerAdministrator")
            && alice_a.contains("CustomerBillingUser")
    );
    assert!(
        line(&alice_list, provider).is_none() && line(&alice_list, &ns_b).is_none(),
        "{alice_list}"
    );

    let bob_list = org(&["org", "list"], "bob", &kubeconfig_copy("bob"), false);
    println!("navigator org list as bob:\n{bob_list}");
    let bob_provider = line(&bob_list, provider).unwrap_or_else(|| panic!("bob sees the provider:\n{bob_list}"));
    assert!(
        bob_provider.contains("Provider") && bob_provider.contains("ProviderBillingUser"),
        "{bob_provider}"
    );
    assert!(
        line(&bob_list, &ns_a).is_some() && line(&bob_list, &ns_b).is_some(),
        "{bob_list}"
    );
    assert!(
        line(&bob_list, &other).is_none() && line(&bob_list, &ns_other).is_none(),
        "{bob_list}"
    );

    let kubeconfig = kubeconfig_copy("alice");
    let plugin_list = org(&["navigator", "org", "list"], "alice", &kubeconfig, true);
    assert!(
        line(&plugin_list, &ns_a).is_some(),
        "kubectl navigator org list works:\n{plugin_list}"
    );
    let switched = org(
        &["navigator", "org", "switch", &format!("{provider}/a")],
        "alice",
        &kubeconfig,
        true,
    );
    assert!(switched.contains(&ns_a), "{switched}");
    let current = shared()
        .kubectl("alice")
        .env("KUBECONFIG", &kubeconfig)
        .args([
            "config",
            "view",
            "--minify",
            "-o",
            "jsonpath={.contexts[0].context.namespace}",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&current.stdout),
        ns_a,
        "the context now uses customer a's namespace"
    );
    let get = shared()
        .kubectl("alice")
        .env("KUBECONFIG", &kubeconfig)
        .args(["get", "invoices", "-o", "name"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&get.stdout).trim(),
        "invoice.navigator.cloudpartner.io/2026-05"
    );
    let refused = org_output(&["navigator", "org", "switch", &ns_b], &kubeconfig, true);
    assert!(!refused.status.success(), "alice cannot switch to customer b");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("no role"),
        "{refused:?}"
    );

    // Deleting the admin grant revokes it; the billing grant holds on, with its own endpoint role.
    grants(&world)
        .delete("alice-a", &DeleteParams::default())
        .await
        .unwrap();
    eventually(WAIT, "the deleted grant to be gone", || async {
        grants(&world).get_opt("alice-a").await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(
        can_list::<Invoice>(&alice, &ns_a).await,
        "alice still reads a's invoices as billing user"
    );
    eventually(WAIT, "alice's endpoint role to drop to BillingUser", || async {
        (endpoint_users(&simulator, &world.tenant("a")).await.get("alice")? == "BillingUser").then_some(())
    })
    .await;
    let bindings = Api::<RoleBinding>::namespaced(world.client.clone(), &ns_a);
    assert!(bindings.get_opt("navigator-grant-alice-a").await.unwrap().is_none());
    assert!(
        bindings
            .get_opt("navigator-grant-alice-a-billing")
            .await
            .unwrap()
            .is_some()
    );
}

/// A copy of a test user's kubeconfig, so switching does not change the shared one (in the control plane's
/// directory, removed with it).
fn kubeconfig_copy(user: &str) -> std::path::PathBuf {
    let path = shared().dir().join(format!(
        "navigator-test-kubeconfig-{user}-{}.yaml",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::copy(shared().kubeconfig(user), &path).unwrap();
    path
}

/// Runs `navigator ARGS` (or `kubectl ARGS` with `kubectl-navigator` on PATH) with a kubeconfig.
fn org_output(args: &[&str], kubeconfig: &std::path::Path, as_plugin: bool) -> std::process::Output {
    let mut command = if as_plugin {
        let dir = shared()
            .dir()
            .join(format!("navigator-plugin-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_navigator"), dir.join("kubectl-navigator")).unwrap();
        let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
        let mut command = Command::new(shared().bin().join("kubectl"));
        command.env("PATH", path);
        command
    } else {
        Command::new(env!("CARGO_BIN_EXE_navigator"))
    };
    command
        .env("KUBECONFIG", kubeconfig)
        .args(args)
        .output()
        .expect("running navigator")
}

fn org(args: &[&str], user: &str, kubeconfig: &std::path::Path, as_plugin: bool) -> String {
    let out = org_output(args, kubeconfig, as_plugin);
    assert!(
        out.status.success(),
        "{args:?} as {user} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn an_operations_user_cannot_grant_provider_administrator_but_a_provider_administrator_can() {
    install_access_templates().await;
    let simulator = Simulator::start("escalate", &["--provision-seconds", "0"]).await;
    let world = World::new("escalate", &simulator, 50).await;
    let _operator = Operator::start(&world.run);
    let provider = world.namespace.clone();

    grant(&world, "carol-ops", "carol", Role::ProviderOperationsUser, None).await;
    grant(&world, "dave-admin", "dave", Role::ProviderAdministrator, None).await;
    wait_phase(&world, "carol-ops", GrantPhase::Active).await;
    wait_phase(&world, "dave-admin", GrantPhase::Active).await;
    // Carol may also create AccessGrants, so only the admission policy stands in her way.
    let ssa = PatchParams::apply("navigator-tests").force();
    let role: RbacRole = serde_json::from_value(json!({
        "metadata": {"name": "grant-writer"},
        "rules": [{"apiGroups": ["navigator.cloudpartner.io"], "resources": ["accessgrants"], "verbs": ["create", "get"]}]
    }))
    .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "carol-grant-writer"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "grant-writer"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "carol"}]
    }))
    .unwrap();
    Api::<RbacRole>::namespaced(world.client.clone(), &provider)
        .patch("grant-writer", &ssa, &Patch::Apply(&role))
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(world.client.clone(), &provider)
        .patch("carol-grant-writer", &ssa, &Patch::Apply(&binding))
        .await
        .unwrap();

    let carol = Api::<AccessGrant>::namespaced(shared().client_as("carol").await, &provider);
    let mut escalation = grant_json("carol-makes-admin", "carol", Role::ProviderAdministrator, None);
    escalation.metadata.labels = Some(BTreeMap::from([(
        crate::world::RUN_LABEL.to_string(),
        world.run.clone(),
    )]));
    let refused = carol.create(&PostParams::default(), &escalation).await;
    match &refused {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "{status:?}");
            assert!(status.message.contains(POLICY), "{}", status.message);
            assert!(
                status
                    .message
                    .contains("carol may not grant role ProviderAdministrator")
                    && status.message.contains("navigator-provider-administrator"),
                "the message says who may not grant what: {}",
                status.message
            );
        }
        other => panic!("carol's escalation was not refused: {other:?}"),
    }
    // Being an operations user: she works customers but may not delete them.
    let carol_customers = Api::<CustomerOrg>::namespaced(shared().client_as("carol").await, &provider);
    world.customer("a", "Delete").await;
    assert!(carol_customers.get("a").await.is_ok());
    let dry_delete = DeleteParams {
        dry_run: true,
        ..Default::default()
    };
    assert!(
        is_forbidden(&carol_customers.delete("a", &dry_delete).await),
        "operations users may not delete customer orgs"
    );

    // A Provider Administrator holds bind on every catalogue role: the same grant passes, and takes effect.
    let dave = Api::<AccessGrant>::namespaced(shared().client_as("dave").await, &provider);
    dave.create(&PostParams::default(), &escalation)
        .await
        .expect("a Provider Administrator may grant it");
    wait_phase(&world, "carol-makes-admin", GrantPhase::Active).await;
    let dave_customers = Api::<CustomerOrg>::namespaced(shared().client_as("dave").await, &provider);
    assert!(
        dave_customers.delete("a", &dry_delete).await.is_ok(),
        "an administrator may delete customer orgs"
    );
}

#[tokio::test]
async fn at_expiry_and_on_deletion_access_is_gone_everywhere() {
    let (simulator, world, _operator) = world_with_customers("expiry").await;
    let provider = world.namespace.clone();
    let ns_a = format!("{provider}-a");
    let carol = shared().client_as("carol").await;

    let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(20);
    let mut value =
        serde_json::to_value(grant_json("carol-until", "carol", Role::CustomerBillingUser, Some("a"))).unwrap();
    value["spec"]["expiresAt"] = json!(expires.to_string());
    world.apply::<AccessGrant>(Some(&provider), value).await;
    grant(&world, "carol-dev", "carol", Role::ProviderDeveloper, None).await;
    wait_phase(&world, "carol-dev", GrantPhase::Active).await;
    let active = wait_phase(&world, "carol-until", GrantPhase::Active).await;
    assert!(
        jiff::Timestamp::now() < expires,
        "the grant became Active before it expired (otherwise the test proves nothing)"
    );
    assert_eq!(active.status.unwrap().bindings.len(), 1);
    assert!(
        can_list::<Invoice>(&carol, &ns_a).await,
        "before expiry carol reads a's invoices"
    );
    assert_eq!(
        endpoint_users(&simulator, &world.tenant("a"))
            .await
            .get("carol")
            .map(String::as_str),
        Some("BillingUser")
    );
    assert!(
        can_list::<CustomerOrg>(&carol, &provider).await,
        "the developer grant lets carol read customers"
    );

    let expired = wait_phase(&world, "carol-until", GrantPhase::Expired).await;
    let ready = expired.condition("Ready").unwrap();
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "Expired"));
    assert!(expired.status.unwrap().bindings.is_empty());
    assert!(
        !can_list::<Invoice>(&carol, &ns_a).await,
        "after expiry carol's request is forbidden"
    );
    assert!(
        !endpoint_users(&simulator, &world.tenant("a"))
            .await
            .contains_key("carol"),
        "the endpoint user is gone"
    );
    assert!(
        Api::<ClusterRole>::all(world.client.clone())
            .get_opt(&format!("navigator-grant:{provider}:carol-until"))
            .await
            .unwrap()
            .is_none(),
        "the directory entry is gone"
    );
    assert!(
        can_list::<CustomerOrg>(&carol, &provider).await,
        "the other grant of the same subject holds"
    );

    grants(&world)
        .delete("carol-dev", &DeleteParams::default())
        .await
        .unwrap();
    eventually(WAIT, "carol's developer access to be revoked", || async {
        let gone = grants(&world).get_opt("carol-dev").await.ok()?.is_none();
        (gone && !can_list::<CustomerOrg>(&carol, &provider).await).then_some(())
    })
    .await;
}
