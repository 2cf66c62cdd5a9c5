//! A small world for engine tests: the simulator and the operator as real processes (the `navigator`
//! binary, so they can be killed with SIGKILL), the CRDs installed once, and builders for a provider with
//! its endpoint, contract, customers and subscriptions, all labelled with the test's own run label so
//! several tests can run side by side, each with its own operator (`navigator run --selector`).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use navigator::api::{
    AccessGrant, CloudEndpoint, CloudServiceSubscription, CommitmentContract, CustomerOrg, ProviderOrg, SupportRequest,
};
use navigator::runtime::reconciler::Object;
use navigator::simulator::cloud_director::VcdControl;
use navigator::simulator::stats::SimStats;
use serde_json::json;

use crate::support::{eventually, shared};

pub const RUN_LABEL: &str = "navigator.test/run";
pub const TOKEN: &str = "navigator-test-simulator-token";

/// Logs of the processes a test starts, kept after the run (under target/, ignored by git) for diagnosis.
pub fn log_path(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-logs");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("{name}.log"))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn navigator_binary() -> &'static str {
    env!("CARGO_BIN_EXE_navigator")
}

/// A process killed when dropped (also when the test panics).
pub struct Process {
    child: Option<Child>,
    /// Words run before the binary (a profiler such as `heaptrack -o FILE`), or none.
    wrapper: Vec<String>,
    command: Vec<String>,
    envs: Vec<(String, String)>,
    log: std::path::PathBuf,
}

impl Process {
    fn spawn(args: Vec<String>, envs: Vec<(String, String)>, log: std::path::PathBuf) -> Self {
        Process::spawn_wrapped(Vec::new(), args, envs, log)
    }

    fn spawn_wrapped(
        wrapper: Vec<String>,
        args: Vec<String>,
        envs: Vec<(String, String)>,
        log: std::path::PathBuf,
    ) -> Self {
        let mut process = Process {
            child: None,
            wrapper,
            command: args,
            envs,
            log,
        };
        process.start();
        process
    }

    /// Starts (or restarts) the process with the same arguments, appending to the same log.
    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut words = self.wrapper.iter().map(String::as_str).chain([navigator_binary()]);
        let child = Command::new(words.next().unwrap())
            .args(words)
            .args(&self.command)
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting navigator");
        self.child = Some(child);
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// SIGKILL: no chance to clean up, as in a node failure or an OOM kill.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `navigator simulator` on a free loopback port (stopped when dropped).
pub struct Simulator {
    _process: Process,
    pub url: String,
}

impl Simulator {
    pub async fn start(name: &str, extra: &[&str]) -> Self {
        Simulator::start_on("127.0.0.1", name, extra).await
    }

    /// A simulator listening on `host` (e.g. an address pods on the test node reach) instead of loopback.
    pub async fn start_on(host: &str, name: &str, extra: &[&str]) -> Self {
        let port = free_port();
        let mut args = vec![
            "simulator".to_string(),
            "--listen".into(),
            format!("{host}:{port}"),
            "--token".into(),
            TOKEN.into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = log_path(&format!("simulator-{name}"));
        let process = Process::spawn(args, vec![("RUST_LOG".into(), "warn".into())], log);
        let simulator = Simulator {
            _process: process,
            url: format!("http://{host}:{port}"),
        };
        let http = reqwest::Client::new();
        eventually(Duration::from_secs(30), "the simulator to listen", || {
            let request = http
                .get(format!("{}/sim/stats", simulator.url))
                .bearer_auth(TOKEN)
                .send();
            async move { request.await.ok().map(|_| ()) }
        })
        .await;
        simulator
    }

    pub async fn stats(&self) -> SimStats {
        self.get_json::<SimStats>("/sim/stats").await
    }

    /// GETs a simulator path, retrying the faults the simulator may be injecting into its own answers.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let mut last_error = String::new();
        for _ in 0..50 {
            match http.get(format!("{}{path}", self.url)).bearer_auth(TOKEN).send().await {
                Ok(response) if response.status().is_success() => {
                    return response.json().await.expect("simulator JSON");
                }
                Ok(response) => last_error = format!("status {}", response.status()),
                Err(error) => last_error = error.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("GET {path} from the simulator kept failing: {last_error}");
    }

    /// Names of the organisations the simulator holds.
    pub async fn org_names(&self) -> Vec<String> {
        let page: serde_json::Value = self.get_json("/v1/orgs").await;
        let mut names: Vec<String> = items(&page)
            .iter()
            .filter_map(|o| o["name"].as_str().map(String::from))
            .collect();
        names.sort();
        names
    }

    /// Everything the simulator holds, by organisation, in either id mode: lists rather than sets, so that
    /// a second copy of anything shows. Sorted by organisation name, names within.
    pub async fn contents(&self) -> Vec<OrgContents> {
        let info: serde_json::Value = self.get_json("/v1/info").await;
        let assigns_ids = info["assignsIds"].as_bool().unwrap_or(false);
        let page: serde_json::Value = self.get_json("/v1/orgs").await;
        let mut contents = Vec::new();
        for org in items(&page) {
            let name = org["name"].as_str().unwrap_or_default().to_string();
            // The path names the organisation by its key: its id where the simulator assigns ids.
            let key = if assigns_ids {
                org["id"].as_str().unwrap_or_default().to_string()
            } else {
                name.clone()
            };
            let names = |page: serde_json::Value, field: &str| {
                let mut names: Vec<String> = items(&page)
                    .iter()
                    .filter_map(|o| o[field].as_str().map(String::from))
                    .collect();
                names.sort();
                names
            };
            let users = names(self.get_json(&format!("/v1/orgs/{key}/users")).await, "username");
            let instances = names(self.get_json(&format!("/v1/orgs/{key}/instances")).await, "name");
            contents.push(OrgContents { name, users, instances });
        }
        contents.sort_by(|a, b| a.name.cmp(&b.name));
        contents
    }

    /// The idempotency keys of every ticket the simulator holds, sorted (a second copy shows twice).
    pub async fn ticket_keys(&self) -> Vec<String> {
        let page: serde_json::Value = self.get_json("/v1/tickets").await;
        let mut keys: Vec<String> = items(&page)
            .iter()
            .filter_map(|t| t["idempotencyKey"].as_str().map(String::from))
            .collect();
        keys.sort();
        keys
    }

    /// Names of the instances one organisation holds (deletions that finished are gone).
    pub async fn instance_names(&self, org: &str) -> Vec<String> {
        let page: serde_json::Value = self.get_json(&format!("/v1/orgs/{org}/instances")).await;
        let mut names: Vec<String> = items(&page)
            .iter()
            .filter_map(|o| o["name"].as_str().map(String::from))
            .collect();
        names.sort();
        names
    }
}

/// `navigator simulator --api cloud-director` on a free loopback port (stopped when dropped): HTTPS with
/// a CA made at start, read from `--tls-dir`.
pub struct CloudDirector {
    _process: Process,
    _tls_dir: TempDir,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The CA certificate (PEM) that clients trust.
    pub ca_pem: String,
    pub user: String,
    pub password: String,
}

/// A directory removed when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl CloudDirector {
    /// The administrator's password the tests' emulators use.
    pub const PASSWORD: &str = "navigator-test-vcd-password";

    pub async fn start(name: &str, extra: &[&str]) -> Self {
        let port = free_port();
        let tls_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("vcd-tls")
            .join(format!("{name}-{port}"));
        let _ = std::fs::remove_dir_all(&tls_dir);
        let mut args = vec![
            "simulator".to_string(),
            "--api".into(),
            "cloud-director".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--tls-dir".into(),
            tls_dir.display().to_string(),
            "--password".into(),
            Self::PASSWORD.into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = log_path(&format!("cloud-director-{name}"));
        let process = Process::spawn(args, vec![("RUST_LOG".into(), "warn".into())], log);
        let ca_file = tls_dir.join("ca.pem");
        let ca_pem = eventually(Duration::from_secs(30), "the Cloud Director emulator's CA", || {
            let read = std::fs::read_to_string(&ca_file)
                .ok()
                .filter(|pem| pem.contains("END CERTIFICATE"));
            async move { read }
        })
        .await;
        let emulator = CloudDirector {
            _process: process,
            _tls_dir: TempDir(tls_dir),
            url: format!("https://127.0.0.1:{port}"),
            ca_pem,
            user: "administrator".into(),
            password: Self::PASSWORD.into(),
        };
        let control = emulator.control();
        eventually(Duration::from_secs(30), "the Cloud Director emulator to listen", || {
            let control = control.clone();
            async move { control.stats().await.ok().map(|_| ()) }
        })
        .await;
        emulator
    }

    /// The client of the emulator's `/sim` endpoints.
    pub fn control(&self) -> VcdControl {
        VcdControl::new(&self.url, &self.ca_pem, &self.user, &self.password).expect("the emulator's CA parses")
    }
}

/// One organisation the simulator holds, with the names of its users and instances.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgContents {
    pub name: String,
    pub users: Vec<String>,
    pub instances: Vec<String>,
}

fn items(page: &serde_json::Value) -> Vec<serde_json::Value> {
    page.get("items")
        .or_else(|| page.get("values"))
        .and_then(|v| v.as_array())
        .cloned()
        .or_else(|| page.as_array().cloned())
        .unwrap_or_default()
}

/// `navigator run` as the admin, seeing only objects labelled with `run`.
pub struct Operator {
    pub process: Process,
    /// Base URL of its /healthz, /readyz and /metrics server.
    pub url: String,
}

impl Operator {
    /// Waits up to `timeout` until the operator answers `/readyz` with 200 (its caches have their first
    /// full list).
    pub async fn until_ready(&self, timeout: Duration) {
        let http = reqwest::Client::new();
        eventually(timeout, "the operator to be ready", || {
            let request = http.get(format!("{}/readyz", self.url)).send();
            async move { request.await.ok().filter(|r| r.status().is_success()).map(|_| ()) }
        })
        .await;
    }

    pub fn start(run: &str) -> Self {
        Operator::start_with(&format!("operator-{run}"), run, &shared().kubeconfig("admin"), &[], &[])
    }

    /// `navigator run` as whoever `kubeconfig` names (e.g. a ServiceAccount token), with more arguments and
    /// environment; its log is `<log_name>.log`.
    pub fn start_with(
        log_name: &str,
        run: &str,
        kubeconfig: &std::path::Path,
        extra_args: &[&str],
        extra_env: &[(&str, &str)],
    ) -> Self {
        let selector = format!("{RUN_LABEL}={run}");
        Operator::start_selecting(log_name, &selector, kubeconfig, extra_args, extra_env)
    }

    /// `navigator run` seeing only objects that match the label `selector` (e.g. one shard of a run).
    pub fn start_selecting(
        log_name: &str,
        selector: &str,
        kubeconfig: &std::path::Path,
        extra_args: &[&str],
        extra_env: &[(&str, &str)],
    ) -> Self {
        let port = free_port();
        let mut args = vec![
            "run".to_string(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--selector".into(),
            selector.to_string(),
        ];
        args.extend(extra_args.iter().map(|a| a.to_string()));
        let mut envs = vec![
            ("KUBECONFIG".to_string(), kubeconfig.display().to_string()),
            ("RUST_LOG".into(), "info,navigator=debug,kube=warn".into()),
        ];
        envs.extend(extra_env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        // A profiler to run the operator under, e.g. `NAVIGATOR_OPERATOR_PROFILER="heaptrack -o target/heap"`
        // (the process then measured by the benchmarks is the profiler's).
        let profiler = std::env::var("NAVIGATOR_OPERATOR_PROFILER").unwrap_or_default();
        let wrapper = profiler.split_whitespace().map(String::from).collect();
        Operator {
            process: Process::spawn_wrapped(wrapper, args, envs, log_path(log_name)),
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

/// One test's provider: a run label, an endpoint on its own simulator, a provider namespace and contract.
pub struct World {
    pub client: kube::Client,
    pub run: String,
    pub namespace: String,
    pub endpoint: String,
}

impl World {
    /// Creates the credentials Secret, CloudEndpoint, ProviderOrg and an active contract covering
    /// `compute` on the endpoint.
    pub async fn new(prefix: &str, simulator: &Simulator, rate_limit: u32) -> Self {
        Self::new_on(shared().client().await, prefix, simulator, rate_limit).await
    }

    /// [`World::new`] on the control plane `client` talks to (a test's own, not the shared one).
    pub async fn new_on(client: kube::Client, prefix: &str, simulator: &Simulator, rate_limit: u32) -> Self {
        let endpoint = |world: &World| {
            json!({
                "driver": "Simulator",
                "url": simulator.url,
                "credentialsSecretRef": {"name": world.endpoint, "namespace": "default", "key": "token"},
                "rateLimit": {"requestsPerSecond": rate_limit, "burst": 1},
                "maxConcurrentOperations": 16,
                "pollInterval": "5s",
                "requestTimeout": "3s"
            })
        };
        Self::with_endpoint(client, prefix, TOKEN, endpoint).await
    }

    /// A world whose CloudEndpoint has the spec `endpoint` gives (from the world, for its names): its
    /// credential is `credential` under key `token` of the Secret `default/<endpoint name>`.
    pub async fn with_endpoint(
        client: kube::Client,
        prefix: &str,
        credential: &str,
        endpoint: impl FnOnce(&World) -> serde_json::Value,
    ) -> Self {
        crate::api::install_crds(&client).await;
        let run = format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
        let world = World {
            client,
            namespace: format!("p-{run}"),
            endpoint: format!("sim-{run}"),
            run,
        };
        world.apply_secret(credential).await;
        let spec = endpoint(&world);
        world
            .apply::<CloudEndpoint>(None, json!({"metadata": {"name": world.endpoint}, "spec": spec}))
            .await;
        world
            .apply::<ProviderOrg>(None, json!({
                "metadata": {"name": world.namespace},
                "spec": {"displayName": format!("Provider {}", world.run), "partnerTypes": ["CloudProvider"], "namespace": world.namespace}
            }))
            .await;
        // Declared up front, labelled as the ProviderOrg's, as a GitOps repository would (examples/ does too),
        // so the contract can be applied before the operator runs.
        let namespace: Namespace = serde_json::from_value(json!({
            "metadata": {"name": world.namespace, "labels": {
                "app.kubernetes.io/managed-by": "navigator",
                "navigator.cloudpartner.io/provider-org": world.namespace,
            }}
        }))
        .unwrap();
        Api::<Namespace>::all(world.client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .expect("creating the provider namespace");
        world.contract("main", &["compute"]).await;
        world
    }

    /// Another provider on this world's endpoint, run by the same operator: a ProviderOrg `<prefix>-<run>`
    /// (its namespace too) with an active contract covering `compute` on the endpoint. Returns its namespace.
    pub async fn other_provider(&self, prefix: &str) -> String {
        let name = format!("{prefix}-{}", self.run);
        self.apply::<ProviderOrg>(
            None,
            json!({
                "metadata": {"name": name},
                "spec": {"displayName": format!("Provider {name}"), "partnerTypes": ["CloudProvider"], "namespace": name}
            }),
        )
        .await;
        let providers = Api::<ProviderOrg>::all(self.client.clone());
        eventually(
            Duration::from_secs(120),
            &format!("provider {name} to be Ready"),
            || async { providers.get(&name).await.ok()?.is_ready().then_some(()) },
        )
        .await;
        self.apply::<CommitmentContract>(
            Some(&name),
            json!({
                "metadata": {"name": "main"},
                "spec": {
                    "contractNumber": format!("CC-{name}"),
                    "startDate": "2020-01-01", "endDate": "2099-12-31",
                    "services": ["compute"], "endpoints": [self.endpoint],
                    "commitments": [{"metric": "vcpu-hours", "quantity": "1"}]
                }
            }),
        )
        .await;
        name
    }

    /// Applies the world's ProviderOrg again, now billing with `billing` (its `spec.billing`).
    pub async fn bill(&self, billing: serde_json::Value) -> ProviderOrg {
        let name = &self.namespace;
        let spec = json!({"displayName": format!("Provider {}", self.run), "partnerTypes": ["CloudProvider"], "namespace": name, "billing": billing});
        self.apply(None, json!({"metadata": {"name": name}, "spec": spec}))
            .await
    }

    async fn apply_secret(&self, credential: &str) {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": self.endpoint, "namespace": "default", "labels": {RUN_LABEL: self.run}},
            "stringData": {"token": credential}
        }))
        .unwrap();
        Api::<Secret>::namespaced(self.client.clone(), "default")
            .create(&PostParams::default(), &secret)
            .await
            .expect("creating the Secret");
    }

    /// Server-side applies an object of kind `K` with this world's run label.
    pub async fn apply<K: Object>(&self, namespace: Option<&str>, mut value: serde_json::Value) -> K {
        value["apiVersion"] = json!(K::api_version(&()));
        value["kind"] = json!(K::kind(&()));
        value["metadata"]["labels"][RUN_LABEL] = json!(self.run);
        let name = value["metadata"]["name"].as_str().expect("a name").to_string();
        let api = K::api(self.client.clone(), namespace);
        api.patch(
            &name,
            &PatchParams::apply("navigator-tests").force(),
            &Patch::Apply(&value),
        )
        .await
        .unwrap_or_else(|e| panic!("applying {} {name}: {e}", K::kind(&())))
    }

    pub async fn contract(&self, name: &str, services: &[&str]) -> CommitmentContract {
        self.apply(
            Some(&self.namespace),
            json!({
                "metadata": {"name": name},
                "spec": {
                    "contractNumber": format!("CC-{}-{name}", self.run),
                    "startDate": "2020-01-01", "endDate": "2099-12-31",
                    "services": services, "endpoints": [self.endpoint],
                    "commitments": [{"metric": "vcpu-hours", "quantity": "1000"}]
                }
            }),
        )
        .await
    }

    pub async fn customer(&self, name: &str, policy: &str) -> CustomerOrg {
        self.apply(
            Some(&self.namespace),
            json!({
                "metadata": {"name": name},
                "spec": {
                    "displayName": format!("Customer {name}"),
                    "tenantName": format!("{}-{name}", self.run),
                    "endpointRef": {"name": self.endpoint},
                    "deletionPolicy": policy
                }
            }),
        )
        .await
    }

    pub async fn subscription(&self, name: &str, customer: &str, vcpu: i64) -> CloudServiceSubscription {
        self.apply(
            Some(&self.namespace),
            json!({
                "metadata": {"name": name},
                "spec": {
                    "customerOrgRef": {"name": customer},
                    "serviceType": "compute",
                    "resources": {"vcpu": vcpu, "memoryGiB": 2, "storageGiB": 20}
                }
            }),
        )
        .await
    }

    /// A grant of a customer `role` (e.g. `CustomerAdministrator`) on `customer` to the person `user`.
    pub async fn customer_grant(&self, name: &str, user: &str, role: &str, customer: &str) -> AccessGrant {
        self.apply(
            Some(&self.namespace),
            json!({
                "metadata": {"name": name},
                "spec": {
                    "subject": {"kind": "User", "name": user, "email": format!("{user}@example.test")},
                    "role": role,
                    "scope": {"customerOrgRef": {"name": customer}}
                }
            }),
        )
        .await
    }

    /// The Events about the object `name` in the provider namespace (none when the list fails).
    pub async fn events_for(&self, name: &str) -> Vec<k8s_openapi::api::core::v1::Event> {
        let params = kube::api::ListParams::default().fields(&format!("involvedObject.name={name}"));
        Api::<k8s_openapi::api::core::v1::Event>::namespaced(self.client.clone(), &self.namespace)
            .list(&params)
            .await
            .map(|l| l.items)
            .unwrap_or_default()
    }

    /// An open Major SupportRequest about `customer`.
    pub async fn support_request(&self, name: &str, customer: &str) -> SupportRequest {
        self.apply(
            Some(&self.namespace),
            json!({
                "metadata": {"name": name},
                "spec": {
                    "customerOrgRef": {"name": customer},
                    "severity": "Major",
                    "product": "Compute",
                    "subject": format!("{name}: virtual machines do not start"),
                    "description": "New VMs stay in Provisioning.",
                    "contact": {"name": "Hank Scorpio", "email": "hank@globex.example"}
                }
            }),
        )
        .await
    }

    pub fn grants(&self) -> Api<AccessGrant> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub fn support_requests(&self) -> Api<SupportRequest> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub fn tenant(&self, customer: &str) -> String {
        format!("{}-{customer}", self.run)
    }

    pub fn subscriptions(&self) -> Api<CloudServiceSubscription> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub fn customers(&self) -> Api<CustomerOrg> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Waits until every object of kind `K` in this world reports Ready=True; returns how many there are.
    pub async fn all_ready<K>(&self, api: &Api<K>, timeout: Duration) -> usize
    where
        K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Conditions,
    {
        let params = ListParams::default().labels(&format!("{RUN_LABEL}={}", self.run));
        eventually(
            timeout,
            &format!("every {} of run {} to be Ready", std::any::type_name::<K>(), self.run),
            || async {
                let list = api.list(&params).await.ok()?;
                let not_ready: Vec<String> = list
                    .items
                    .iter()
                    .filter(|o| !o.is_ready())
                    .map(|o| o.name_any())
                    .collect();
                not_ready.is_empty().then_some(list.items.len())
            },
        )
        .await
    }
}

/// Read access to the Ready condition of any Navigator kind.
pub trait Conditions {
    fn conditions(&self) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>;
    fn condition(&self, type_: &str) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
        self.conditions().into_iter().find(|c| c.type_ == type_)
    }
    fn is_ready(&self) -> bool {
        self.condition("Ready").is_some_and(|c| c.status == "True")
    }
}

macro_rules! conditions {
    ($($kind:ty),*) => {$(
        impl Conditions for $kind {
            fn conditions(&self) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
                self.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default()
            }
        }
    )*};
}
conditions!(
    CloudEndpoint,
    ProviderOrg,
    CommitmentContract,
    CustomerOrg,
    CloudServiceSubscription,
    navigator::api::AccessGrant,
    navigator::api::SupportRequest
);
