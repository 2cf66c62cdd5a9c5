//! Navigator's simulated cloud: an HTTP server that implements the Navigator endpoint API
//! (`docs/endpoint-api.yaml`) with in-memory state, asynchronous provisioning, deterministic metering,
//! support tickets, and fault injection. `navigator simulator` runs it; tests start it in-process with
//! [`spawn`] and drive it through the real Http driver.

pub mod cloud_director;
pub mod control;
pub mod faults;
pub mod metering;
pub mod persist;
pub mod server;
pub mod state;
pub mod stats;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

pub use control::SimControl;
pub use faults::{FaultConfig, FaultPatch};
pub use stats::SimStats;

use crate::endpoint::{HttpDriverConfig, Secret};

/// The token the simulator accepts unless told otherwise.
pub const DEV_TOKEN: &str = "navigator-dev-token";

/// Everything the simulator is started with.
#[derive(Clone, Debug)]
pub struct SimulatorConfig {
    /// The bearer token clients must send.
    pub token: Secret,
    /// Where the state is kept across restarts; `None` keeps it in memory only.
    pub state_file: Option<PathBuf>,
    /// How long provisioning, updates and deletions take (users stay Invited as long).
    pub provision_time: Duration,
    pub faults: FaultConfig,
    /// Assign ids like Cloud Director and Request Tracker: organisations, users and instances are created
    /// with `POST` and addressed by id, tickets ignore idempotency keys, and a repeated create makes a second
    /// object. `false`: names are keys (the default).
    pub assign_ids: bool,
    /// How long a `POST` create (of a ticket, or of anything with `assign_ids`) takes before the object
    /// exists and the answer comes. The simulator finishes a create it accepted even when the client has
    /// gone away meanwhile, as a real endpoint does.
    pub create_time: Duration,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            token: Secret::new(DEV_TOKEN),
            state_file: None,
            provision_time: Duration::from_secs(2),
            faults: FaultConfig::default(),
            assign_ids: false,
            create_time: Duration::ZERO,
        }
    }
}

/// Which API the simulator serves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SimulatedApi {
    /// The Navigator endpoint API (docs/endpoint-api.yaml), over HTTP.
    #[default]
    Navigator,
    /// VMware Cloud Director's API (the subset the CloudDirector driver uses), over HTTPS.
    CloudDirector,
}

/// `navigator simulator`: serve the simulated cloud.
#[derive(clap::Args)]
pub struct SimulatorArgs {
    /// The API to serve.
    #[arg(long, value_enum, default_value_t = SimulatedApi::Navigator)]
    pub api: SimulatedApi,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8089")]
    pub listen: SocketAddr,
    /// Bearer token clients must send.
    #[arg(long, env = "NAVIGATOR_SIMULATOR_TOKEN", default_value = DEV_TOKEN, hide_env_values = true)]
    pub token: String,
    /// Keep the state in this file (written atomically) so it survives a restart.
    #[arg(long)]
    pub state_file: Option<PathBuf>,
    /// Seconds that provisioning, updates and deletions take.
    #[arg(long, default_value_t = 2.0)]
    pub provision_seconds: f64,
    /// Share of API requests answered with a 5xx (0 to 1); half of those on changes apply the change first.
    #[arg(long, default_value_t = 0.0)]
    pub fault_5xx_rate: f64,
    /// Share of API requests answered 429 with Retry-After.
    #[arg(long, default_value_t = 0.0)]
    pub fault_429_rate: f64,
    /// The Retry-After of those 429s, in seconds.
    #[arg(long, default_value_t = 1)]
    pub retry_after_seconds: u64,
    /// Share of API requests that hang (see --fault-hang-seconds) and then answer 504.
    #[arg(long, default_value_t = 0.0)]
    pub fault_timeout_rate: f64,
    /// How long a hanging request hangs, in seconds (longer than the clients' timeout).
    #[arg(long, default_value_t = 60)]
    pub fault_hang_seconds: u64,
    /// Milliseconds of latency added to every API request.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Seed of the fault sequence: the same seed gives the same faults.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Assign ids like Cloud Director and Request Tracker: objects are created with POST and addressed by
    /// id, found by name with a search, and a repeated create makes a second object.
    #[arg(long)]
    pub assign_ids: bool,
    /// Seconds a POST create takes before the object exists and the answer comes; the simulator finishes
    /// it even when the client has gone away meanwhile.
    #[arg(long, default_value_t = 0.0)]
    pub create_seconds: f64,
    #[command(flatten)]
    pub cloud_director: cloud_director::CloudDirectorArgs,
}

impl SimulatorArgs {
    pub fn config(&self) -> anyhow::Result<SimulatorConfig> {
        if !(0.0..=86_400.0).contains(&self.provision_seconds) {
            anyhow::bail!(
                "--provision-seconds must be between 0 and 86400, not {}",
                self.provision_seconds
            );
        }
        if !(0.0..=3_600.0).contains(&self.create_seconds) {
            anyhow::bail!(
                "--create-seconds must be between 0 and 3600, not {}",
                self.create_seconds
            );
        }
        let faults = FaultConfig {
            rate_5xx: self.fault_5xx_rate,
            rate_429: self.fault_429_rate,
            retry_after_seconds: self.retry_after_seconds,
            rate_timeout: self.fault_timeout_rate,
            hang_seconds: self.fault_hang_seconds,
            latency_ms: self.latency_ms,
            seed: self.seed,
        };
        faults.validate().map_err(anyhow::Error::msg)?;
        Ok(SimulatorConfig {
            token: Secret::new(self.token.clone()),
            state_file: self.state_file.clone(),
            provision_time: Duration::from_secs_f64(self.provision_seconds),
            faults,
            assign_ids: self.assign_ids,
            create_time: Duration::from_secs_f64(self.create_seconds),
        })
    }
}

/// Serves the simulator on `listener` until `shutdown` completes, then writes the state file a last time.
pub async fn serve(
    config: SimulatorConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    config.faults.validate().map_err(anyhow::Error::msg)?;
    let state = match &config.state_file {
        Some(path) => persist::load(path)?,
        None => state::State::default(),
    };
    let (stop, stopping) = watch::channel(false);
    let app = Arc::new(
        server::Shared::new(
            state,
            faults::Faults::new(config.faults.clone()),
            config.token.clone(),
            config.provision_time,
            stopping.clone(),
        )
        .with_creates(config.assign_ids, config.create_time),
    );
    let saver = config
        .state_file
        .clone()
        .map(|path| tokio::spawn(save_loop(app.clone(), path, stopping)));
    let signal = async move {
        shutdown.await;
        let _ = stop.send(true);
    };
    let served = axum::serve(listener, server::router(app.clone()))
        .with_graceful_shutdown(signal)
        .await;
    if let (Some(saver), Some(path)) = (saver, &config.state_file) {
        let _ = saver.await;
        save(&app, path).await?;
    }
    served.context("serving the simulator")
}

/// Writes the state file; answers how long encoding held the state's lock.
async fn save(app: &server::Shared, path: &std::path::Path) -> anyhow::Result<Duration> {
    let started = std::time::Instant::now();
    let bytes = {
        let mut state = app.state();
        state.sweep(jiff::Timestamp::now());
        persist::encode(&state)?
    };
    let locked = started.elapsed();
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || persist::write_atomically(&path, &bytes))
        .await
        .context("writing the state")??;
    Ok(locked)
}

/// Writes the state file after changes, at most every `SAVE_INTERVAL` (less often for a large state),
/// until shutdown.
async fn save_loop(app: Arc<server::Shared>, path: PathBuf, mut stopping: watch::Receiver<bool>) {
    let mut pause = persist::SAVE_INTERVAL;
    loop {
        tokio::select! {
            _ = app.dirty.notified() => {}
            _ = stopping.wait_for(|stop| *stop) => return,
        }
        // Changes in the meantime are written together; shutdown writes a last time itself.
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stopping.wait_for(|stop| *stop) => return,
        }
        match save(&app, &path).await {
            Ok(locked) => pause = persist::SAVE_INTERVAL.max(locked * persist::LOCK_SHARE),
            Err(error) => {
                tracing::error!(
                    error = format!("{error:#}"),
                    "cannot write the state file; will retry on the next change"
                )
            }
        }
    }
}

/// A simulator running in this process (for tests): stopped by [`RunningSimulator::stop`] or on drop.
pub struct RunningSimulator {
    addr: SocketAddr,
    token: Secret,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Starts a simulator on an ephemeral loopback port.
pub async fn spawn(config: SimulatorConfig) -> anyhow::Result<RunningSimulator> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding a loopback port")?;
    let addr = listener.local_addr()?;
    let token = config.token.clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(config, listener, async move {
        let _ = stopped.await;
    }));
    Ok(RunningSimulator {
        addr,
        token,
        stop: Some(stop),
        task: Some(task),
    })
}

impl RunningSimulator {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn token(&self) -> &Secret {
        &self.token
    }

    /// An Http driver configuration for this simulator, with the driver's defaults.
    pub fn driver_config(&self) -> HttpDriverConfig {
        HttpDriverConfig::new(self.url(), self.token.clone())
    }

    pub fn control(&self) -> SimControl {
        SimControl::new(&self.url(), self.token.clone())
    }

    /// Stops serving, waits for requests in flight, and writes the state file.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.context("the simulator task panicked")?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningSimulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// `navigator simulator`: serves until Ctrl-C or SIGTERM.
pub async fn run(args: SimulatorArgs) -> anyhow::Result<()> {
    if args.api == SimulatedApi::CloudDirector {
        return cloud_director::run(&args, &args.cloud_director).await;
    }
    crate::logging::init(crate::logging::LogFormat::Text);
    let config = args.config()?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!(
        url = format!("http://{}", listener.local_addr()?),
        state_file = config.state_file.as_ref().map(|p| p.display().to_string()),
        provision_seconds = config.provision_time.as_secs_f64(),
        assign_ids = config.assign_ids,
        create_seconds = config.create_time.as_secs_f64(),
        faults = ?config.faults,
        "navigator simulator serving the Navigator endpoint API"
    );
    serve(config, listener, shutdown_signal()).await?;
    tracing::info!("navigator simulator stopped");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}
