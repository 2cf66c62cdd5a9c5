//! A VMware Cloud Director emulator: the subset of VCD's API that Navigator's CloudDirector driver and
//! VMware's Go SDK (go-vcloud-director) use, over HTTPS, with VCD's shapes (legacy XML API, JSON
//! CloudAPI, tasks with `Owner`, errors, 403 for what does not exist, pagination, FIQL filters), tasks
//! that run for `--provision-seconds`, an audit trail of VDC allocations, a state file and faults.
//! Written from VCD's documented behaviour and from what the SDK was seen to send and read.
//!
//! `navigator simulator --api cloud-director` runs it; tests start it in-process with [`spawn`].

pub mod control;
pub mod query;
pub mod server;
pub mod state;
pub mod tls;
pub mod xml;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use control::VcdControl;
pub use server::{Clock, FailNextTask, Inventory, VcdFaultConfig, VcdFaultPatch, VcdStats};
pub use state::Operation;

/// The provider administrator's password unless told otherwise.
pub const DEV_PASSWORD: &str = "navigator-dev-password";
pub const DEFAULT_VERSIONS: &str = "37.0,37.1,37.2,38.0,38.1";

/// Everything the emulator is started with.
#[derive(Clone, Debug)]
pub struct CloudDirectorConfig {
    pub user: String,
    pub password: String,
    pub api_token: Option<String>,
    pub versions: Vec<query::ApiVersion>,
    pub provider_vdc: String,
    pub storage_profiles: Vec<String>,
    pub network_pool: String,
    pub provision_time: Duration,
    pub create_time: Duration,
    pub session_ttl: Duration,
    pub state_file: Option<PathBuf>,
    /// Where `ca.pem` is written at start.
    pub tls_dir: Option<PathBuf>,
    pub faults: VcdFaultConfig,
}

impl Default for CloudDirectorConfig {
    fn default() -> Self {
        CloudDirectorConfig {
            user: "administrator".into(),
            password: DEV_PASSWORD.into(),
            api_token: None,
            versions: query::parse_versions(DEFAULT_VERSIONS).expect("the default versions parse"),
            provider_vdc: "navigator-pvdc".into(),
            storage_profiles: vec!["gold".into(), "silver".into()],
            network_pool: "navigator-pool".into(),
            provision_time: Duration::from_secs(2),
            create_time: Duration::ZERO,
            session_ttl: Duration::from_secs(1800),
            state_file: None,
            tls_dir: None,
            faults: VcdFaultConfig::default(),
        }
    }
}

/// The Cloud Director flags of `navigator simulator --api cloud-director` (the shared ones, such as
/// `--listen`, `--state-file`, `--provision-seconds`, `--create-seconds` and the fault rates, are the
/// simulator's).
#[derive(clap::Args, Debug, Clone)]
pub struct CloudDirectorArgs {
    /// Write the emulator's CA certificate to DIR/ca.pem at start (HTTPS only; the certificate is made
    /// at start for 127.0.0.1 and localhost).
    #[arg(long, value_name = "DIR")]
    pub tls_dir: Option<PathBuf>,
    /// The provider administrator (logs in as USER@System).
    #[arg(long, default_value = "administrator")]
    pub user: String,
    /// The provider administrator's password.
    #[arg(long, env = "NAVIGATOR_VCD_PASSWORD", default_value = DEV_PASSWORD, hide_env_values = true)]
    pub password: String,
    /// An API token accepted as refresh_token at POST /oauth/provider/token.
    #[arg(long, env = "NAVIGATOR_VCD_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// API versions served, each optionally `:deprecated` (e.g. 36.3:deprecated).
    #[arg(long, default_value = DEFAULT_VERSIONS)]
    pub api_versions: String,
    /// The provider VDC tenants' VDCs are carved from.
    #[arg(long, default_value = "navigator-pvdc")]
    pub provider_vdc: String,
    /// The provider VDC's storage profiles, comma-separated.
    #[arg(long, default_value = "gold,silver", value_delimiter = ',')]
    pub storage_profiles: Vec<String>,
    /// The network pool.
    #[arg(long, default_value = "navigator-pool")]
    pub network_pool: String,
    /// Seconds a session token lives; afterwards it answers 401.
    #[arg(long, default_value_t = 1800.0)]
    pub session_seconds: f64,
    /// Share of writes to an organisation, VDC or user answered 400 BUSY_ENTITY.
    #[arg(long, default_value_t = 0.0)]
    pub fault_busy_rate: f64,
}

impl CloudDirectorArgs {
    /// The configuration from these flags and the simulator's shared ones.
    pub fn config(&self, shared: &super::SimulatorArgs) -> anyhow::Result<CloudDirectorConfig> {
        let common = shared.config()?;
        if !(1.0..=86_400.0).contains(&self.session_seconds) {
            anyhow::bail!(
                "--session-seconds must be between 1 and 86400, not {}",
                self.session_seconds
            );
        }
        if !(0.0..=1.0).contains(&self.fault_busy_rate) {
            anyhow::bail!(
                "--fault-busy-rate must be between 0 and 1, not {}",
                self.fault_busy_rate
            );
        }
        if self.storage_profiles.iter().any(|p| p.trim().is_empty()) {
            anyhow::bail!("--storage-profiles must name at least one profile, without empty names");
        }
        Ok(CloudDirectorConfig {
            user: self.user.clone(),
            password: self.password.clone(),
            api_token: self.api_token.clone(),
            versions: query::parse_versions(&self.api_versions).map_err(anyhow::Error::msg)?,
            provider_vdc: self.provider_vdc.clone(),
            storage_profiles: self.storage_profiles.clone(),
            network_pool: self.network_pool.clone(),
            provision_time: common.provision_time,
            create_time: common.create_time,
            session_ttl: Duration::from_secs_f64(self.session_seconds),
            state_file: common.state_file,
            tls_dir: self.tls_dir.clone(),
            faults: VcdFaultConfig {
                common: common.faults,
                fault_busy_rate: self.fault_busy_rate,
            },
        })
    }
}

const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct StateFile {
    version: u32,
    state: state::State,
}

/// Reads the state file; a missing one is a fresh state with the configured inventory.
fn load(path: Option<&Path>, config: &CloudDirectorConfig) -> anyhow::Result<state::State> {
    let fresh = || {
        state::State::new(state::Inventory::new(
            &config.provider_vdc,
            &config.storage_profiles,
            &config.network_pool,
        ))
    };
    let Some(path) = path else { return Ok(fresh()) };
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(fresh()),
        Err(e) => return Err(e).with_context(|| format!("reading the state file {}", path.display())),
    };
    let file: StateFile = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a Cloud Director emulator state file", path.display()))?;
    if file.version != FORMAT_VERSION {
        anyhow::bail!(
            "the state file {} has format version {}, this emulator reads version {FORMAT_VERSION}",
            path.display(),
            file.version
        );
    }
    Ok(file.state)
}

async fn save(app: &server::Shared, path: &Path) -> anyhow::Result<()> {
    let bytes = {
        let state = app.state();
        serde_json::to_vec(&StateFile {
            version: FORMAT_VERSION,
            state: state.clone(),
        })?
    };
    let path = path.to_path_buf();
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    tokio::task::spawn_blocking(move || super::persist::write_atomically(&path, &bytes))
        .await
        .context("writing the state")?
}

/// Writes the state file after changes, at most every `SAVE_INTERVAL`, until shutdown.
async fn save_loop(app: Arc<server::Shared>, path: PathBuf, mut stopping: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = app.dirty.notified() => {}
            _ = stopping.wait_for(|stop| *stop) => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(super::persist::SAVE_INTERVAL) => {}
            _ = stopping.wait_for(|stop| *stop) => return,
        }
        if let Err(error) = save(&app, &path).await {
            tracing::error!(
                error = format!("{error:#}"),
                "cannot write the state file; will retry on the next change"
            );
        }
    }
}

/// Serves the emulator on `listener` until `shutdown` completes, then writes the state file a last time.
pub async fn serve(
    config: CloudDirectorConfig,
    certificates: tls::Certificates,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    config.faults.common.validate().map_err(anyhow::Error::msg)?;
    let state = load(config.state_file.as_deref(), &config)?;
    let (stop, stopping) = watch::channel(false);
    let settings = server::Settings {
        user: config.user.clone(),
        password: config.password.clone(),
        api_token: config.api_token.clone(),
        versions: config.versions.clone(),
        provision: config.provision_time,
        create_time: config.create_time,
        session_ttl: config.session_ttl,
    };
    let app = Arc::new(server::Shared::new(
        state,
        config.faults.clone(),
        settings,
        stopping.clone(),
    ));
    let saver = config
        .state_file
        .clone()
        .map(|path| tokio::spawn(save_loop(app.clone(), path, stopping)));
    let signal = async move {
        shutdown.await;
        let _ = stop.send(true);
    };
    let served = tls::serve(listener, &certificates, server::router(app.clone()), signal).await;
    if let (Some(saver), Some(path)) = (saver, &config.state_file) {
        let _ = saver.await;
        save(&app, path).await?;
    }
    served.context("serving the Cloud Director emulator")
}

/// Makes the certificates and writes `ca.pem` into the TLS directory, if any.
fn certificates(config: &CloudDirectorConfig) -> anyhow::Result<tls::Certificates> {
    let certificates = tls::Certificates::generate().context("generating the TLS certificates")?;
    if let Some(dir) = &config.tls_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        super::persist::write_atomically(&dir.join("ca.pem"), certificates.ca_pem.as_bytes())?;
    }
    Ok(certificates)
}

/// An emulator running in this process (for tests): stopped by [`CloudDirectorHandle::stop`] or on drop.
pub struct CloudDirectorHandle {
    addr: SocketAddr,
    ca_pem: String,
    user: String,
    password: String,
    serving: super::Serving,
}

/// Starts the emulator on an ephemeral loopback port.
pub async fn spawn(config: CloudDirectorConfig) -> anyhow::Result<CloudDirectorHandle> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding a loopback port")?;
    let addr = listener.local_addr()?;
    let certificates = certificates(&config)?;
    let ca_pem = certificates.ca_pem.clone();
    let (user, password) = (config.user.clone(), config.password.clone());
    let serving = super::Serving::spawn(|stopped| {
        serve(config, certificates, listener, async move {
            let _ = stopped.await;
        })
    });
    Ok(CloudDirectorHandle {
        addr,
        ca_pem,
        user,
        password,
        serving,
    })
}

impl CloudDirectorHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The CA certificate (PEM) that signed the emulator's server certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn control(&self) -> anyhow::Result<VcdControl> {
        VcdControl::new(&self.url(), &self.ca_pem, &self.user, &self.password)
    }

    /// Stops serving, waits for requests in flight, and writes the state file.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.serving.stop().await
    }
}

/// `navigator simulator --api cloud-director`: serves until Ctrl-C or SIGTERM.
pub async fn run(args: &super::SimulatorArgs, vcd: &CloudDirectorArgs) -> anyhow::Result<()> {
    crate::logging::init(crate::logging::LogFormat::Text);
    let config = vcd.config(args)?;
    let certificates = certificates(&config)?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!(
        url = format!("https://{}", listener.local_addr()?),
        ca = config.tls_dir.as_ref().map(|d| d.join("ca.pem").display().to_string()),
        state_file = config.state_file.as_ref().map(|p| p.display().to_string()),
        versions = ?config.versions.iter().map(|v| v.version.as_str()).collect::<Vec<_>>(),
        provision_seconds = config.provision_time.as_secs_f64(),
        faults = ?config.faults,
        "navigator simulator serving the Cloud Director API"
    );
    serve(config, certificates, listener, super::shutdown_signal()).await?;
    tracing::info!("Cloud Director emulator stopped");
    Ok(())
}
