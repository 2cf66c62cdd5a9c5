//! A real node for the local control plane: containerd (with runc and the CNI bridge plugin) under a temporary
//! folder, kubelet registered with the apiserver, kube-proxy (nftables) for Services and kube-scheduler, so
//! that Deployments run as pods that reach the apiserver through the `kubernetes` Service like anywhere else.
//!
//! The control plane must be started with [`crate::Options::advertise`] set to [`host_address`]: pods cannot
//! reach loopback. One node at a time per machine (the bridge and kube-proxy's nftables table have fixed
//! names): a lock file makes a second one wait. Its watchdog, like the control plane's, stops everything when
//! the process that started it ends in any way: kubelet first, then the pods' containers through containerd,
//! then the rest; it unmounts what kubelet and containerd mounted, removes kube-proxy's table, the bridge and
//! the folder.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{ControlPlane, free_port, repo_root};

/// The node's name (kubelet's `--hostname-override`).
pub const NODE_NAME: &str = "navigator-node";
/// The pods' addresses (the bridge's host-local range).
pub const POD_CIDR: &str = "10.244.0.0/24";
/// The sandbox image, built from the static busybox by `scripts/image.sh pause` and imported at start.
pub const PAUSE_IMAGE: &str = "navigator.local/pause:busybox";
const BRIDGE: &str = "navigator0";
const LOCK: &str = "/tmp/navigator-node.lock";

/// The node's components' identities and groups, as the apiserver's token file knows them (written by the
/// control plane when it is started for a node). The bootstrap RBAC policy binds the proxy and scheduler
/// users to their roles; the Node authorizer gives kubelet what its pods need and no more.
pub(crate) const IDENTITIES: &[(&str, &str)] = &[
    ("system:node:navigator-node", "system:nodes"),
    ("system:kube-proxy", ""),
    ("system:kube-scheduler", ""),
];

/// The programs and packages a node needs, checked up front for a clear error.
const TOOLS: &[(&str, &str)] = &[
    ("containerd", "containerd"),
    ("ctr", "containerd"),
    ("runc", "runc"),
    ("nft", "nftables"),
    ("buildah", "buildah"),
    ("busybox", "busybox-static"),
];

/// An address of this machine other than loopback (the one of its default route), which pods reach
/// through the bridge's gateway.
pub fn host_address() -> Result<IpAddr> {
    // Connecting a UDP socket sends nothing; it only picks the route and so the source address.
    let socket = UdpSocket::bind("0.0.0.0:0")?;
    socket
        // A documentation address (TEST-NET-3): any address off this machine's links picks the default route.
        .connect("203.0.113.1:9")
        .context("this machine has no route beyond loopback: a node needs an address pods can reach")?;
    let address = socket.local_addr()?.ip();
    if address.is_loopback() || address.is_unspecified() {
        bail!("this machine has no address beyond loopback ({address}): a node needs one pods can reach");
    }
    Ok(address)
}

/// Builds kubelet, kube-proxy and kube-scheduler when missing (`tests/controlplane/build.sh --node`).
pub fn ensure_binaries() -> Result<PathBuf> {
    let status = Command::new(repo_root().join("tests/controlplane/build.sh"))
        .arg("--node")
        .status()
        .context("running tests/controlplane/build.sh --node")?;
    if !status.success() {
        bail!("tests/controlplane/build.sh --node failed ({status})");
    }
    Ok(crate::bin_dir())
}

/// A control plane with a node (for the in-cluster tests and `make cluster NODE=1`). The node is dropped, and
/// so stopped, before the control plane.
pub struct Cluster {
    pub node: Node,
    pub control_plane: ControlPlane,
}

impl Cluster {
    /// Starts a control plane reachable from pods, then a node that joins it.
    pub fn start() -> Result<Cluster> {
        let control_plane = ControlPlane::start_with(crate::Options {
            advertise: Some(host_address()?),
        })?;
        let node = Node::start(&control_plane)?;
        Ok(Cluster { node, control_plane })
    }
}

/// A running node. Dropping it stops it (its pods' containers included).
pub struct Node {
    dir: PathBuf,
    bin: PathBuf,
    processes: Mutex<Vec<(String, Child)>>,
    watchdog: Mutex<Option<(Child, ChildStdin)>>,
    /// From the start of containerd to the node reporting Ready.
    pub start_time: Duration,
}

impl Node {
    /// Starts containerd, kube-scheduler, kube-proxy and kubelet for `cp` and waits until the node is Ready.
    pub fn start(cp: &ControlPlane) -> Result<Node> {
        let address = cp
            .advertise
            .context("the control plane was started without Options::advertise: pods could not reach it")?;
        for (tool, package) in TOOLS {
            if Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .map(|s| !s.success())
                .unwrap_or(true)
            {
                bail!("{tool} is missing (Debian package {package}): run `make deps`");
            }
        }
        if !Path::new("/usr/lib/cni/bridge").exists() {
            bail!("the CNI plugins are missing (Debian package containernetworking-plugins): run `make deps`");
        }
        let bin = ensure_binaries()?;
        let dir = std::env::temp_dir().join(format!("navigator-node-{}-{}", std::process::id(), free_port()?));
        fs::create_dir_all(&dir)?;
        let watchdog = spawn_watchdog(&dir)?;
        let mut node = Node {
            dir: dir.clone(),
            bin,
            processes: Mutex::new(Vec::new()),
            watchdog: Mutex::new(Some(watchdog)),
            start_time: Duration::ZERO,
        };
        let started = Instant::now();

        let socket = dir.join("containerd.sock");
        fs::write(
            dir.join("containerd.toml"),
            format!(
                r#"version = 2
root = "{dir}/containerd/root"
state = "{dir}/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{socket}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{dir}/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # These VMs withhold CAP_SYS_RESOURCE: runc cannot lower a sandbox's oom_score_adj below ours.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{dir}/cni"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
"#,
                dir = dir.display(),
                socket = socket.display()
            ),
        )?;
        fs::create_dir_all(dir.join("cni"))?;
        // A bridge with host-local addresses. No masquerade: pods only talk to this machine's addresses.
        fs::write(
            dir.join("cni/10-navigator.conflist"),
            serde_json::to_string_pretty(&serde_json::json!({
                "cniVersion": "0.4.0",
                "name": "navigator",
                "plugins": [{
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": true,
                    "ipMasq": false,
                    "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_CIDR}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": dir.join("cni-ipam"),
                    },
                }],
            }))?,
        )?;
        node.spawn(
            "containerd",
            Path::new("containerd"),
            &[format!("--config={}", dir.join("containerd.toml").display())],
        )?;
        node.wait_for(Duration::from_secs(30), "containerd", |n| {
            n.ctr()
                .arg("version")
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        })?;
        let pause = Command::new(repo_root().join("scripts/image.sh"))
            .arg("pause")
            .stderr(Stdio::inherit())
            .output()
            .context("running scripts/image.sh pause")?;
        if !pause.status.success() {
            bail!("scripts/image.sh pause failed ({})", pause.status);
        }
        node.import_image(Path::new(String::from_utf8_lossy(&pause.stdout).trim()))?;

        for (name, _) in IDENTITIES {
            let file = dir.join(format!("kubeconfig-{}.yaml", name.replace(':', "-")));
            fs::write(&file, cp.kubeconfig_yaml(name)?)?;
        }
        let kubeconfig = |name: &str| {
            format!(
                "--kubeconfig={}",
                dir.join(format!("kubeconfig-{}.yaml", name.replace(':', "-")))
                    .display()
            )
        };
        let scheduler = cp.bin().join("kube-scheduler");
        node.spawn(
            "kube-scheduler",
            &scheduler,
            &[
                kubeconfig("system:kube-scheduler"),
                "--leader-elect=false".into(),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={}", free_port()?),
            ],
        )?;
        let proxy = node.bin.join("kube-proxy");
        node.spawn(
            "kube-proxy",
            &proxy,
            &[
                kubeconfig("system:kube-proxy"),
                "--proxy-mode=nftables".into(),
                format!("--hostname-override={NODE_NAME}"),
                "--cluster-cidr=10.244.0.0/16".into(),
                format!("--metrics-bind-address=127.0.0.1:{}", free_port()?),
                format!("--healthz-bind-address=127.0.0.1:{}", free_port()?),
                // Leave this machine's conntrack settings and our own OOM score alone.
                "--conntrack-max-per-core=0".into(),
                "--conntrack-tcp-timeout-established=0".into(),
                "--conntrack-tcp-timeout-close-wait=0".into(),
                "--oom-score-adj=0".into(),
            ],
        )?;
        let kubelet_root = dir.join("kubelet");
        fs::create_dir_all(&kubelet_root)?;
        fs::write(
            dir.join("kubelet.yaml"),
            serde_yaml::to_string(&serde_json::json!({
                "apiVersion": "kubelet.config.k8s.io/v1beta1",
                "kind": "KubeletConfiguration",
                // These machines mount cgroup v1 controllers; kubelet refuses them unless told.
                "failCgroupV1": false,
                "cgroupDriver": "cgroupfs",
                "cgroupsPerQOS": false,
                "enforceNodeAllocatable": [],
                "failSwapOn": false,
                "oomScoreAdj": 0,
                "containerRuntimeEndpoint": format!("unix://{}", socket.display()),
                "address": address.to_string(),
                "port": free_port()?,
                "readOnlyPort": 0,
                "healthzBindAddress": "127.0.0.1",
                "healthzPort": free_port()?,
                // Only the apiserver (a client certificate from the test CA) may call kubelet.
                "authentication": {
                    "anonymous": {"enabled": false},
                    "webhook": {"enabled": false},
                    "x509": {"clientCAFile": cp.dir().join("pki/ca.crt")},
                },
                "authorization": {"mode": "AlwaysAllow"},
                "podCIDR": POD_CIDR,
                "podLogsDirectory": dir.join("pod-logs"),
                "volumePluginDir": dir.join("volume-plugins"),
                "resolvConf": "/etc/resolv.conf",
                "clusterDomain": "cluster.local",
                // The imported images cannot be pulled again: never collect them.
                "imageGCHighThresholdPercent": 100,
                "imageGCLowThresholdPercent": 99,
                "evictionHard": {"memory.available": "100Mi"},
                "registerNode": true,
                // kube-proxy (nftables) owns the Service rules; kubelet's iptables chains are not needed.
                "makeIPTablesUtilChains": false,
            }))?,
        )?;
        let kubelet = node.bin.join("kubelet");
        node.spawn(
            "kubelet",
            &kubelet,
            &[
                format!("--config={}", dir.join("kubelet.yaml").display()),
                kubeconfig("system:node:navigator-node"),
                format!("--root-dir={}", kubelet_root.display()),
                format!("--cert-dir={}", dir.join("kubelet-pki").display()),
                format!("--hostname-override={NODE_NAME}"),
                format!("--node-ip={address}"),
                "--v=1".into(),
            ],
        )?;
        node.wait_for(Duration::from_secs(120), "the node to be Ready", |_| {
            cp.kubectl("admin")
                .args(["get", "node", NODE_NAME, "-o"])
                .arg("jsonpath={.status.conditions[?(@.type==\"Ready\")].status}")
                .output()
                .map(|o| o.status.success() && o.stdout == b"True")
                .unwrap_or(false)
        })?;
        node.start_time = started.elapsed();
        Ok(node)
    }

    /// `ctr` on this node's containerd, in the namespace kubelet uses.
    pub fn ctr(&self) -> Command {
        let mut command = Command::new("ctr");
        command
            .arg(format!("--address={}", self.dir.join("containerd.sock").display()))
            .arg("--namespace=k8s.io");
        command
    }

    /// Imports an OCI archive (e.g. `make image`'s) into the node's containerd, under the name it carries.
    pub fn import_image(&self, archive: &Path) -> Result<()> {
        let output = self
            .ctr()
            .args(["images", "import"])
            .arg(archive)
            .output()
            .context("running ctr images import")?;
        if !output.status.success() {
            bail!(
                "ctr images import {} failed: {}",
                archive.display(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    /// The folder holding containerd's and kubelet's state and every component's log (`<name>.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last lines of a component's log (kubelet, containerd, kube-proxy, kube-scheduler).
    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        let log = fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn spawn(&self, name: &str, program: &Path, args: &[String]) -> Result<()> {
        let log = fs::File::create(self.dir.join(format!("{name}.log")))?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Each in a group of its own: the watchdog stops them in order.
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {name} ({})", program.display()))?;
        {
            let mut watchdog = self.watchdog.lock().unwrap();
            let (_, pipe) = watchdog.as_mut().context("the node is stopped")?;
            writeln!(pipe, "{name} {}", child.id())?;
            pipe.flush()?;
        }
        self.processes.lock().unwrap().push((name.to_string(), child));
        Ok(())
    }

    fn wait_for(&self, timeout: Duration, what: &str, ready: impl Fn(&Self) -> bool) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if ready(self) {
                return Ok(());
            }
            let exited = self
                .processes
                .lock()
                .unwrap()
                .iter_mut()
                .find_map(|(name, c)| matches!(c.try_wait(), Ok(Some(_))).then(|| name.clone()));
            if let Some(exited) = exited {
                bail!(
                    "{exited} exited while waiting for {what}; the end of its log:\n{}",
                    self.log_tail(&exited, 30)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let tails: Vec<String> = self
            .processes
            .lock()
            .unwrap()
            .iter()
            .map(|(name, _)| format!("--- {name}:\n{}", self.log_tail(name, 15)))
            .collect();
        bail!(
            "timed out after {timeout:?} waiting for {what}; the end of each log:\n{}",
            tails.join("\n")
        )
    }

    /// Stops the node now and waits until its watchdog has cleaned up (it would otherwise do so when this
    /// process ends).
    pub fn stop(&self) {
        if let Some((mut child, pipe)) = self.watchdog.lock().unwrap().take() {
            drop(pipe);
            let _ = child.wait();
        }
        for (_, child) in self.processes.lock().unwrap().iter_mut() {
            let _ = child.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The node's watchdog: takes the machine's node lock, reads `name pid` lines (each process leads its own
/// group), and when its stdin closes stops them in order and cleans up what they left on this machine.
fn spawn_watchdog(dir: &Path) -> Result<(Child, ChildStdin)> {
    let script = r#"
trap '' INT TERM HUP
dir="$1" lock="$2" bridge="$3"
exec 9>>"$lock"
if ! flock -n 9; then
  echo waiting
  flock -w 900 9 || { echo busy; exit 1; }
fi
echo locked
declare -A group
while read -r name pid; do group[$name]=$pid; done
stop() { # PROCESS-GROUP...
  for g in "$@"; do kill -TERM -- "-$g" 2>/dev/null; done
  for _ in $(seq 1 50); do
    alive=""
    for g in "$@"; do kill -0 -- "-$g" 2>/dev/null && alive=1; done
    [ -z "$alive" ] && break
    sleep 0.1
  done
  for g in "$@"; do kill -KILL -- "-$g" 2>/dev/null; done
}
# kubelet first, so nothing restarts the containers; then the containers, while containerd still runs.
[ -n "${group[kubelet]:-}" ] && stop "${group[kubelet]}"
ctr=(ctr --address "$dir/containerd.sock" --namespace k8s.io)
if [ -n "${group[containerd]:-}" ]; then
  netns=""
  for c in $("${ctr[@]}" containers ls -q 2>/dev/null); do
    netns="$netns $("${ctr[@]}" containers info "$c" 2>/dev/null | grep -o '/var/run/netns/cni-[0-9a-f-]*' | head -1)"
  done
  for t in $("${ctr[@]}" tasks ls -q 2>/dev/null); do "${ctr[@]}" tasks kill --signal SIGKILL "$t" >/dev/null 2>&1; done
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    for t in $("${ctr[@]}" tasks ls -q 2>/dev/null); do "${ctr[@]}" tasks delete --force "$t" >/dev/null 2>&1; done
    [ -z "$("${ctr[@]}" tasks ls -q 2>/dev/null)" ] && break
    sleep 0.3
  done
  for n in $netns; do umount "$n" 2>/dev/null; rm -f "$n"; done
fi
rest=""
for name in "${!group[@]}"; do [ "$name" != kubelet ] && rest="$rest ${group[$name]}"; done
stop $rest
# Shims still holding our socket path (containerd starts them in groups of their own), e.g. when containerd
# was killed before us: their children are the containers (a shim is their subreaper).
for p in /proc/[0-9]*; do
  if grep -qF "$dir/" "$p/cmdline" 2>/dev/null; then
    pkill -KILL -P "${p#/proc/}" 2>/dev/null
    kill -KILL "${p#/proc/}" 2>/dev/null
  fi
done
# kubelet's iptables chains (a canary, a hint) and kube-proxy's nftables table.
for ipt in iptables ip6tables; do
  command -v "$ipt" >/dev/null || continue
  "$ipt" -w -D INPUT -j KUBE-FIREWALL 2>/dev/null
  "$ipt" -w -D OUTPUT -j KUBE-FIREWALL 2>/dev/null
  "$ipt" -w -F KUBE-FIREWALL 2>/dev/null
  "$ipt" -w -X KUBE-FIREWALL 2>/dev/null
  for t in mangle filter nat; do "$ipt" -w -t "$t" -X KUBE-KUBELET-CANARY 2>/dev/null; done
  "$ipt" -w -t mangle -X KUBE-IPTABLES-HINT 2>/dev/null
done
nft delete table ip kube-proxy 2>/dev/null
nft delete table ip6 kube-proxy 2>/dev/null
ip link delete "$bridge" 2>/dev/null
# kubelet's and containerd's mounts, innermost first.
for _ in 1 2 3; do
  awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
done
grep -qF " $dir " /proc/self/mounts && umount -l "$dir"
rm -rf --one-file-system "$dir"
"#;
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg("navigator-node-watchdog")
        .arg(dir)
        .arg(LOCK)
        .arg(BRIDGE)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .context("starting the node's watchdog")?;
    let stdin = child.stdin.take().expect("piped stdin");
    // Another node on this machine (another test run, `make cluster NODE=1`) holds the lock until it stops.
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line)?;
    if line.trim() == "waiting" {
        eprintln!("[node] another node runs on this machine; waiting up to 15 minutes for its lock {LOCK}");
        line.clear();
        stdout.read_line(&mut line)?;
    }
    if line.trim() != "locked" {
        bail!(
            "another node on this machine held the lock {LOCK} for 15 minutes (make cluster NODE=1, DEMO_NODE=1 make demo or another test run): stop it first"
        );
    }
    Ok((child, stdin))
}
