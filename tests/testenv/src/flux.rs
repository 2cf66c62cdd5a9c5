//! Flux on the local control plane: source-controller and kustomize-controller, built from their Go modules by
//! `tests/flux/build.sh`, run as processes outside the cluster with the admin's kubeconfig (as a Flux install
//! runs them in `flux-system`, minus the Pods). Their CRDs come from the same modules' files in Go's module
//! cache (`config/crd/bases`), so they always match the binaries.
//!
//! source-controller serves the artifacts it fetched on a loopback port, which it advertises in each
//! artifact's URL; kustomize-controller downloads them from there. Both run in one process group that a
//! watchdog kills when this process ends, however it ends; dropping [`Flux`] stops them too.

use std::fs;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{ControlPlane, bin_dir, free_port, repo_root, spawn_watchdog};

/// The namespace Flux's objects live in, as `flux install` names it.
pub const NAMESPACE: &str = "flux-system";

/// The controllers, as Go module paths (the binaries are named after their last element).
const CONTROLLERS: [&str; 2] = [
    "github.com/fluxcd/source-controller",
    "github.com/fluxcd/kustomize-controller",
];

/// Running Flux controllers.
pub struct Flux {
    dir: PathBuf,
    processes: Mutex<Vec<(String, Child)>>,
    watchdog: Mutex<Option<ChildStdin>>,
}

/// Builds the controllers when they are missing or of another pinned version (a no-op otherwise).
pub fn ensure_binaries() -> Result<PathBuf> {
    let status = Command::new(repo_root().join("tests/flux/build.sh"))
        .status()
        .context("running tests/flux/build.sh")?;
    if !status.success() {
        bail!("tests/flux/build.sh failed ({status})");
    }
    Ok(bin_dir())
}

/// The CRD files of the pinned controllers, from their modules' sources (downloaded into Go's module cache
/// by the build).
pub fn crd_files() -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for module in CONTROLLERS {
        let output = Command::new("go")
            .args(["list", "-m", "-f", "{{.Dir}}", module])
            .current_dir(repo_root().join("tests/flux"))
            .output()
            .context("running go list for Flux's modules")?;
        if !output.status.success() {
            bail!(
                "go list -m {module} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let dir = PathBuf::from(String::from_utf8(output.stdout)?.trim()).join("config/crd/bases");
        for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

impl Flux {
    /// Installs Flux's CRDs and the `flux-system` namespace on `cp`, starts both controllers and waits until
    /// each answers its readiness probe.
    pub fn start(cp: &ControlPlane) -> Result<Self> {
        let bin = ensure_binaries()?;
        let dir = cp.dir().join("flux");
        fs::create_dir_all(dir.join("artifacts"))?;
        let flux = Flux {
            watchdog: Mutex::new(Some(spawn_watchdog(&dir)?)),
            dir: dir.clone(),
            processes: Mutex::new(Vec::new()),
        };

        let mut apply = cp.kubectl("admin");
        apply.args(["apply", "--server-side", "--field-manager=flux-install"]);
        for file in crd_files()? {
            apply.arg("-f").arg(file);
        }
        run(&mut apply)?;
        run(cp.kubectl("admin").args([
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/gitrepositories.source.toolkit.fluxcd.io",
            "crd/kustomizations.kustomize.toolkit.fluxcd.io",
        ]))?;
        run(cp.kubectl("admin").args(["create", "namespace", NAMESPACE]))?;

        let kubeconfig = cp.kubeconfig("admin");
        let storage = format!("127.0.0.1:{}", free_port()?);
        let source_health = free_port()?;
        flux.spawn(
            &bin.join("source-controller"),
            &kubeconfig,
            &[
                format!("--storage-path={}", dir.join("artifacts").display()),
                format!("--storage-addr={storage}"),
                format!("--storage-adv-addr={storage}"),
                format!("--metrics-addr=127.0.0.1:{}", free_port()?),
                format!("--health-addr=127.0.0.1:{source_health}"),
                "--enable-leader-election=false".into(),
                "--watch-all-namespaces=true".into(),
                "--log-level=debug".into(),
            ],
        )?;
        let kustomize_health = free_port()?;
        flux.spawn(
            &bin.join("kustomize-controller"),
            &kubeconfig,
            &[
                format!("--metrics-addr=127.0.0.1:{}", free_port()?),
                format!("--health-addr=127.0.0.1:{kustomize_health}"),
                "--enable-leader-election=false".into(),
                "--watch-all-namespaces=true".into(),
                // Everything comes from Git here: no remote bases, no references across namespaces.
                "--no-remote-bases=true".into(),
                "--no-cross-namespace-refs=true".into(),
                "--log-level=debug".into(),
            ],
        )?;
        for (name, port) in [
            ("source-controller", source_health),
            ("kustomize-controller", kustomize_health),
        ] {
            flux.wait_ready(name, port, Duration::from_secs(120))?;
        }
        Ok(flux)
    }

    fn spawn(&self, binary: &Path, kubeconfig: &Path, args: &[String]) -> Result<()> {
        let name = binary.file_name().unwrap().to_string_lossy().into_owned();
        let log = fs::File::create(self.log(&name))?;
        let group = self
            .processes
            .lock()
            .unwrap()
            .first()
            .map(|(_, c)| c.id() as i32)
            .unwrap_or(0);
        let child = Command::new(binary)
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            // Where a Flux controller finds its own namespace (for its events and leases).
            .env("RUNTIME_NAMESPACE", NAMESPACE)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(group)
            .spawn()
            .with_context(|| format!("starting {} (built by tests/flux/build.sh)", binary.display()))?;
        if group == 0 {
            let mut watchdog = self.watchdog.lock().unwrap();
            let pipe = watchdog.as_mut().context("the watchdog is gone")?;
            writeln!(pipe, "{}", child.id())?;
            pipe.flush()?;
        }
        self.processes.lock().unwrap().push((name, child));
        Ok(())
    }

    fn wait_ready(&self, name: &str, port: u16, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if http_ok(port, "/readyz") {
                return Ok(());
            }
            let exited = self
                .processes
                .lock()
                .unwrap()
                .iter_mut()
                .find_map(|(n, c)| matches!(c.try_wait(), Ok(Some(_))).then(|| n.clone()));
            if let Some(exited) = exited {
                bail!(
                    "{exited} exited while waiting for {name}; the end of its log:\n{}",
                    self.log_tail(&exited)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!(
            "{name} was not ready within {timeout:?}; the end of its log:\n{}",
            self.log_tail(name)
        )
    }

    /// The log file of one controller (`source-controller` or `kustomize-controller`).
    pub fn log(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    /// The last lines of a controller's log, for failure messages (the directory goes with the test run).
    pub fn log_tail(&self, name: &str) -> String {
        let log = fs::read_to_string(self.log(name)).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Stops both controllers now (the watchdog would otherwise do it when this process ends).
    pub fn stop(&self) {
        crate::stop_children(&self.processes);
        self.watchdog.lock().unwrap().take();
    }
}

impl Drop for Flux {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(command: &mut Command) -> Result<()> {
    let output = command.output().with_context(|| format!("running {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Whether `GET path` on a loopback port answers 200.
fn http_ok(port: u16, path: &str) -> bool {
    use std::io::Read;
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}
