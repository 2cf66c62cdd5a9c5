//! A real Kubernetes control plane on loopback for Navigator's tests, demo and benchmarks.
//!
//! [`ControlPlane::start`] runs etcd, kube-apiserver and kube-controller-manager, built from their
//! upstream Go modules by `tests/controlplane/build.sh`, on free loopback ports under one temporary
//! directory. Every process it starts is stopped when the process that started them exits, however it
//! exits (normal end, panic, `SIGKILL`): a small watchdog holds the read end of a pipe whose write end
//! only we hold, and kills the control plane's process group when the pipe closes.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::net::{IpAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub mod flux;
pub mod git_server;
pub mod node;
pub mod request_tracker;
pub use node::Node;
pub use request_tracker::RequestTracker;

/// A person the control plane knows by a bearer token.
#[derive(Clone, Debug)]
pub struct Identity {
    pub name: &'static str,
    pub groups: &'static [&'static str],
}

/// The administrator (in `system:masters`) and non-admin test users, each in a group of their own, so
/// tests can check RBAC as real users rather than by impersonation alone.
pub const IDENTITIES: &[Identity] = &[
    Identity {
        name: "admin",
        groups: &["system:masters"],
    },
    Identity {
        name: "alice",
        groups: &["navigator:test:team-a"],
    },
    Identity {
        name: "bob",
        groups: &["navigator:test:team-b"],
    },
    Identity {
        name: "carol",
        groups: &["navigator:test:team-c"],
    },
    Identity {
        name: "dave",
        groups: &["navigator:test:team-d"],
    },
];

/// The Kubernetes version the harness builds; `tests/controlplane/go.mod` pins the same.
pub const KUBERNETES_VERSION: &str = "v1.37.2";

/// How [`ControlPlane::start_with`] starts the control plane; the default is the loopback-only one of the tests.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// An address of this machine that pods can reach (see [`node::host_address`]): the apiserver listens on
    /// every interface and advertises it as the `kubernetes` Service's endpoint, admits ServiceAccount tokens
    /// into pods and knows the node's identities, and kube-controller-manager runs its default controllers, so
    /// that a [`Node`] can join. Without it nothing listens beyond loopback.
    pub advertise: Option<IpAddr>,
}

/// A running control plane. Dropping it stops every process it started; so does the end of the process.
pub struct ControlPlane {
    dir: PathBuf,
    advertise: Option<IpAddr>,
    server: String,
    etcd_url: String,
    bin: PathBuf,
    processes: Mutex<Vec<(String, Child)>>,
    // Closing this pipe (drop or process exit) makes the watchdog kill everything and remove `dir`.
    watchdog: Mutex<Option<ChildStdin>>,
}

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// Where the control plane binaries live: `$NAVIGATOR_BIN` or `.cache/bin` in the repository.
pub fn bin_dir() -> PathBuf {
    std::env::var_os("NAVIGATOR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".cache/bin"))
}

/// Builds the binaries when they are missing or of another pinned version (a no-op otherwise).
pub fn ensure_binaries() -> Result<PathBuf> {
    let status = Command::new(repo_root().join("tests/controlplane/build.sh"))
        .status()
        .context("running tests/controlplane/build.sh")?;
    if !status.success() {
        bail!("tests/controlplane/build.sh failed ({status})");
    }
    Ok(bin_dir())
}

/// The control plane shared by every test in one test binary, started on first use.
pub fn shared() -> &'static ControlPlane {
    static SHARED: OnceLock<ControlPlane> = OnceLock::new();
    SHARED.get_or_init(|| ControlPlane::start().expect("starting the test control plane"))
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn token_of(identity: &str) -> String {
    format!("navigator-test-token-{identity}")
}

impl ControlPlane {
    /// Builds what is missing, starts etcd, kube-apiserver and kube-controller-manager, and waits until
    /// the apiserver answers `/readyz` and the default namespace exists.
    pub fn start() -> Result<Self> {
        Self::start_with(Options::default())
    }

    /// [`ControlPlane::start`] with options (e.g. reachable from a [`Node`]'s pods).
    pub fn start_with(options: Options) -> Result<Self> {
        let bin = ensure_binaries()?;
        let dir = std::env::temp_dir().join(format!(
            "navigator-controlplane-{}-{}",
            std::process::id(),
            free_port()?
        ));
        fs::create_dir_all(&dir)?;
        let watchdog = spawn_watchdog(&dir)?;

        let etcd_port = free_port()?;
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let apiserver_port = free_port()?;
        let server = format!("https://127.0.0.1:{apiserver_port}");
        let cp = ControlPlane {
            dir: dir.clone(),
            advertise: options.advertise,
            server,
            etcd_url: etcd_url.clone(),
            bin: bin.clone(),
            processes: Mutex::new(Vec::new()),
            watchdog: Mutex::new(Some(watchdog)),
        };
        cp.write_credentials()?;

        let peer_url = format!("http://127.0.0.1:{}", free_port()?);
        cp.spawn(
            "etcd",
            &[
                "--name=navigator-test".into(),
                format!("--data-dir={}", dir.join("etcd").display()),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=navigator-test={peer_url}"),
                "--unsafe-no-fsync".into(),
                // The default 2 GiB quota fills up in a 100,000-object benchmark (`make bench`).
                "--quota-backend-bytes=8589934592".into(),
                "--log-level=warn".into(),
            ],
        )?;
        cp.spawn("kube-apiserver", &cp.apiserver_args(apiserver_port))?;
        cp.wait_ready(Duration::from_secs(120))?;
        // With a node: Deployments, ReplicaSets, EndpointSlices, default ServiceAccounts, the root CA ConfigMap.
        let controllers = if cp.advertise.is_some() {
            "*"
        } else {
            "garbage-collector-controller,namespace-controller,serviceaccount-token-controller"
        };
        cp.spawn(
            "kube-controller-manager",
            &[
                format!("--kubeconfig={}", cp.kubeconfig("admin").display()),
                "--leader-elect=false".into(),
                format!("--controllers={controllers}"),
                format!(
                    "--service-account-private-key-file={}",
                    dir.join("pki/sa.key").display()
                ),
                format!("--root-ca-file={}", dir.join("pki/ca.crt").display()),
                "--use-service-account-credentials=false".into(),
                format!("--secure-port={}", free_port()?),
                "--bind-address=127.0.0.1".into(),
                "--v=1".into(),
            ],
        )?;
        // The default namespace appears once the apiserver's own bootstrap controllers ran.
        cp.wait_for(Duration::from_secs(60), "the default namespace", |cp| {
            cp.kubectl("admin")
                .args(["get", "namespace", "default"])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        })?;
        Ok(cp)
    }

    fn apiserver_args(&self, port: u16) -> Vec<String> {
        let pki = self.dir.join("pki");
        let mut args = vec![
            format!("--etcd-servers={}", self.etcd_url),
            format!("--cert-dir={}", pki.display()),
            format!("--tls-cert-file={}", pki.join("apiserver.crt").display()),
            format!("--tls-private-key-file={}", pki.join("apiserver.key").display()),
            format!("--client-ca-file={}", pki.join("ca.crt").display()),
            format!("--secure-port={port}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            // No nodes and a loopback address: the `kubernetes` Service endpoints are not maintained.
            "--endpoint-reconciler-type=none".into(),
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!("--service-account-key-file={}", pki.join("sa.pub").display()),
            format!("--service-account-signing-key-file={}", pki.join("sa.key").display()),
            "--authorization-mode=Node,RBAC".into(),
            "--allow-privileged=true".into(),
            "--disable-admission-plugins=ServiceAccount".into(),
            format!("--token-auth-file={}", self.dir.join("tokens.csv").display()),
            // The audit log lets tests count the writes a client made (e.g. none in steady state).
            format!("--audit-policy-file={}", self.dir.join("audit-policy.yaml").display()),
            format!("--audit-log-path={}", self.audit_log().display()),
            "--audit-log-format=json".into(),
            "--audit-log-mode=blocking".into(),
            // Never rotated (the default rotates at 100 MB), so a count from an offset sees every write, also
            // in a 100,000-object benchmark.
            "--audit-log-maxsize=1000000".into(),
            "--v=0".into(),
        ];
        if let Some(address) = self.advertise {
            let replace = |args: &mut Vec<String>, flag: &str, value: String| {
                args.retain(|a| !a.starts_with(&format!("--{flag}=")));
                args.push(format!("--{flag}={value}"));
            };
            replace(&mut args, "bind-address", "0.0.0.0".into());
            replace(&mut args, "advertise-address", address.to_string());
            // The `kubernetes` Service gets the advertised address as its endpoint, which pods reach.
            replace(&mut args, "endpoint-reconciler-type", "lease".into());
            // Pods get their ServiceAccount's token volume.
            replace(&mut args, "disable-admission-plugins", String::new());
            args.push(format!(
                "--kubelet-client-certificate={}",
                pki.join("kubelet-client.crt").display()
            ));
            args.push(format!(
                "--kubelet-client-key={}",
                pki.join("kubelet-client.key").display()
            ));
            args.push("--kubelet-preferred-address-types=InternalIP".into());
        }
        args
    }

    fn write_credentials(&self) -> Result<()> {
        let pki = self.dir.join("pki");
        fs::create_dir_all(&pki)?;
        let ca_key = rcgen::KeyPair::generate()?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "navigator-test-ca");
        let ca = ca_params.self_signed(&ca_key)?;
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let server_key = rcgen::KeyPair::generate()?;
        let mut names = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "kubernetes.default.svc".to_string(),
        ];
        // Pods reach the apiserver at the `kubernetes` Service's address, then the advertised one.
        if let Some(address) = self.advertise {
            names.extend([
                "10.0.0.1".to_string(),
                "kubernetes".to_string(),
                "kubernetes.default".to_string(),
                "kubernetes.default.svc.cluster.local".to_string(),
                address.to_string(),
            ]);
        }
        let mut server_params = rcgen::CertificateParams::new(names)?;
        server_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kube-apiserver");
        let server_cert = server_params.signed_by(&server_key, &issuer)?;
        fs::write(pki.join("ca.crt"), ca.pem())?;
        fs::write(pki.join("apiserver.crt"), server_cert.pem())?;
        fs::write(pki.join("apiserver.key"), server_key.serialize_pem())?;
        if self.advertise.is_some() {
            // The apiserver's client certificate for kubelets (logs, exec), which trust this CA only.
            let client_key = rcgen::KeyPair::generate()?;
            let mut client_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
            client_params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "kube-apiserver-kubelet-client");
            client_params
                .distinguished_name
                .push(rcgen::DnType::OrganizationName, "system:masters");
            let client_cert = client_params.signed_by(&client_key, &issuer)?;
            fs::write(pki.join("kubelet-client.crt"), client_cert.pem())?;
            fs::write(pki.join("kubelet-client.key"), client_key.serialize_pem())?;
        }
        let service_account_key = rcgen::KeyPair::generate()?;
        fs::write(pki.join("sa.key"), service_account_key.serialize_pem())?;
        fs::write(pki.join("sa.pub"), service_account_key.public_key_pem())?;

        let tokens: String = IDENTITIES
            .iter()
            .map(|id| {
                format!(
                    "{},{},{},\"{}\"\n",
                    token_of(id.name),
                    id.name,
                    id.name,
                    id.groups.join(",")
                )
            })
            .collect();
        let node_tokens: String = if self.advertise.is_some() {
            node::IDENTITIES
                .iter()
                .map(|(name, group)| format!("{},{name},{name},\"{group}\"\n", token_of(name)))
                .collect()
        } else {
            String::new()
        };
        fs::write(self.dir.join("tokens.csv"), tokens + &node_tokens)?;
        fs::write(
            self.dir.join("audit-policy.yaml"),
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n  verbs: [create, update, patch, delete, deletecollection]\n- level: None\n",
        )?;
        for id in IDENTITIES {
            fs::write(self.kubeconfig(id.name), self.kubeconfig_yaml(id.name)?)?;
        }
        Ok(())
    }

    fn kubeconfig_yaml(&self, identity: &str) -> Result<String> {
        let mut cluster = BTreeMap::new();
        cluster.insert("server", self.server.clone());
        cluster.insert(
            "certificate-authority",
            self.dir.join("pki/ca.crt").display().to_string(),
        );
        let doc = serde_yaml::to_string(&serde_yaml::Value::Mapping(
            [
                ("apiVersion", serde_yaml::Value::from("v1")),
                ("kind", "Config".into()),
                (
                    "clusters",
                    serde_yaml::to_value(vec![named("navigator-test", "cluster", serde_yaml::to_value(cluster)?)])?,
                ),
                (
                    "users",
                    serde_yaml::to_value(vec![named(
                        identity,
                        "user",
                        serde_yaml::to_value(BTreeMap::from([("token", token_of(identity))]))?,
                    )])?,
                ),
                (
                    "contexts",
                    serde_yaml::to_value(vec![named(
                        identity,
                        "context",
                        serde_yaml::to_value(BTreeMap::from([
                            ("cluster", "navigator-test"),
                            ("user", identity),
                            ("namespace", "default"),
                        ]))?,
                    )])?,
                ),
                ("current-context", identity.into()),
            ]
            .into_iter()
            .map(|(k, v)| (serde_yaml::Value::from(k), v))
            .collect(),
        ))?;
        Ok(doc)
    }

    fn spawn(&self, name: &str, args: &[String]) -> Result<()> {
        let log = fs::File::create(self.dir.join(format!("{name}.log")))?;
        let mut command = Command::new(self.bin.join(name));
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // All control plane processes share the first one's process group, which the watchdog kills.
        let group = self
            .processes
            .lock()
            .unwrap()
            .first()
            .map(|(_, c)| c.id() as i32)
            .unwrap_or(0);
        command.process_group(group);
        let child = command
            .spawn()
            .with_context(|| format!("starting {name} from {}", self.bin.display()))?;
        if group == 0 {
            let mut watchdog = self.watchdog.lock().unwrap();
            let pipe = watchdog.as_mut().expect("watchdog pipe");
            writeln!(pipe, "{}", child.id())?;
            pipe.flush()?;
        }
        self.processes.lock().unwrap().push((name.to_string(), child));
        Ok(())
    }

    fn wait_ready(&self, timeout: Duration) -> Result<()> {
        self.wait_for(timeout, "kube-apiserver /readyz", |cp| {
            cp.kubectl("admin")
                .args(["get", "--raw", "/readyz"])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        })
    }

    fn wait_for(&self, timeout: Duration, what: &str, ready: impl Fn(&Self) -> bool) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if ready(self) {
                return Ok(());
            }
            if let Some(exited) = self.exited_process() {
                bail!(
                    "{exited} exited while waiting for {what}; the end of its log:\n{}",
                    self.log_tail(&exited)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let logs: Vec<String> = self
            .processes
            .lock()
            .unwrap()
            .iter()
            .map(|(name, _)| name.clone())
            .collect();
        let tails: Vec<String> = logs
            .iter()
            .map(|name| format!("--- {name}:\n{}", self.log_tail(name)))
            .collect();
        bail!(
            "timed out after {timeout:?} waiting for {what}; the end of each log:\n{}",
            tails.join("\n")
        )
    }

    /// The name of a control plane process that has exited, if one has.
    fn exited_process(&self) -> Option<String> {
        let mut processes = self.processes.lock().unwrap();
        processes
            .iter_mut()
            .find_map(|(name, c)| matches!(c.try_wait(), Ok(Some(_))).then(|| name.clone()))
    }

    /// The last lines of a process's log (the directory is removed when we exit, so errors carry them).
    fn log_tail(&self, name: &str) -> String {
        let log = fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(25)..].join("\n")
    }

    /// The apiserver's URL, e.g. `https://127.0.0.1:43121`.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The temporary directory holding the data, logs and kubeconfigs of this control plane.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the control plane binaries (and kubectl and helm) are.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The process ids of etcd, kube-apiserver and kube-controller-manager.
    pub fn pids(&self) -> Vec<u32> {
        self.processes.lock().unwrap().iter().map(|(_, c)| c.id()).collect()
    }

    /// The apiserver's audit log (metadata of every write), as JSON lines.
    pub fn audit_log(&self) -> PathBuf {
        self.dir.join("audit.log")
    }

    /// The PEM of the certificate authority that signed the apiserver's serving certificate.
    pub fn ca_pem(&self) -> Result<String> {
        Ok(fs::read_to_string(self.dir.join("pki/ca.crt"))?)
    }

    /// The kubeconfig file of one of [`IDENTITIES`].
    pub fn kubeconfig(&self, identity: &str) -> PathBuf {
        self.dir.join(format!("kubeconfig-{identity}.yaml"))
    }

    /// The bearer token of one of [`IDENTITIES`].
    pub fn token(&self, identity: &str) -> String {
        token_of(identity)
    }

    /// kubectl, of the same version as the server, acting as `identity`.
    pub fn kubectl(&self, identity: &str) -> Command {
        let mut command = Command::new(self.bin.join("kubectl"));
        command.env("KUBECONFIG", self.kubeconfig(identity));
        command
    }

    /// helm, built from its Go module, acting as the admin, with its caches inside this control plane's directory.
    pub fn helm(&self) -> Command {
        let mut command = Command::new(self.bin.join("helm"));
        command
            .env("KUBECONFIG", self.kubeconfig("admin"))
            .env("HELM_CACHE_HOME", self.dir.join("helm/cache"))
            .env("HELM_CONFIG_HOME", self.dir.join("helm/config"))
            .env("HELM_DATA_HOME", self.dir.join("helm/data"));
        command
    }

    /// A client acting as the administrator.
    pub async fn client(&self) -> kube::Client {
        self.client_as("admin").await
    }

    /// A client acting as one of [`IDENTITIES`].
    pub async fn client_as(&self, identity: &str) -> kube::Client {
        let kubeconfig =
            kube::config::Kubeconfig::read_from(self.kubeconfig(identity)).expect("reading a test kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
            .await
            .expect("a valid test kubeconfig");
        kube::Client::try_from(config).expect("a kube client")
    }

    /// Kills kube-apiserver (SIGKILL, as in a crash), keeps it down for `down_for`, then starts it again on
    /// the same port with the same etcd and waits until it is ready: for tests of clients that must ride
    /// out an API server restart. etcd and kube-controller-manager keep running.
    pub fn restart_apiserver(&self, down_for: Duration) -> Result<()> {
        {
            let mut processes = self.processes.lock().unwrap();
            let index = processes
                .iter()
                .position(|(name, _)| name == "kube-apiserver")
                .context("kube-apiserver is not running")?;
            let (_, mut child) = processes.remove(index);
            child.kill()?;
            child.wait()?;
        }
        std::thread::sleep(down_for);
        let port: u16 = self
            .server
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .context("the apiserver URL has a port")?;
        // The log of the first run is kept beside the new one.
        let log = self.dir.join("kube-apiserver.log");
        let _ = fs::rename(&log, self.dir.join("kube-apiserver.before-restart.log"));
        self.spawn("kube-apiserver", &self.apiserver_args(port))?;
        self.wait_ready(Duration::from_secs(120))
    }

    /// Stops every process now (the watchdog would otherwise do it when this process ends).
    pub fn stop(&self) {
        stop_children(&self.processes);
        // Closing the pipe lets the watchdog remove the directory and exit.
        self.watchdog.lock().unwrap().take();
    }
}

/// Stops `processes` in reverse start order: SIGTERM, up to 10 s to exit, then SIGKILL.
pub(crate) fn stop_children(processes: &Mutex<Vec<(String, Child)>>) {
    for (_, child) in processes.lock().unwrap().iter_mut().rev() {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the watchdog: a shell in its own process group that reads process-group ids from its stdin and,
/// when stdin closes (because this process ended in any way), kills those groups and removes `dir`.
fn spawn_watchdog(dir: &Path) -> Result<ChildStdin> {
    let script = r#"
trap '' INT TERM HUP
groups=""
while read -r g; do groups="$groups $g"; done
for g in $groups; do kill -TERM -- "-$g" 2>/dev/null; done
for _ in $(seq 1 30); do
  alive=""
  for g in $groups; do kill -0 -- "-$g" 2>/dev/null && alive=1; done
  [ -z "$alive" ] && break
  sleep 0.1
done
for g in $groups; do kill -KILL -- "-$g" 2>/dev/null; done
rm -rf "$1"
"#;
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg("navigator-controlplane-watchdog")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .context("starting the control plane watchdog")?;
    Ok(child.stdin.take().expect("piped stdin"))
}

fn named(name: &str, key: &str, value: serde_yaml::Value) -> serde_yaml::Value {
    let mut map = serde_yaml::Mapping::new();
    map.insert("name".into(), name.into());
    map.insert(key.into(), value);
    serde_yaml::Value::Mapping(map)
}
