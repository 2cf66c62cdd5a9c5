//! The `navigator` command line: parsing and dispatch only. Each subcommand's work lives in the library.
use clap::{Parser, Subcommand};

/// Navigator runs a cloud service provider's partner business as Kubernetes resources.
#[derive(Parser)]
#[command(name = "navigator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controllers against the current kubeconfig (or in-cluster), until SIGTERM or Ctrl-C.
    Run(RunArgs),
    // Subcommands are added here as they are built, one variant each; no placeholders.
    /// Serve the simulated cloud (the Navigator endpoint API) for the demo and tests, until SIGTERM or Ctrl-C.
    Simulator(navigator::simulator::SimulatorArgs),
    /// Print every CustomResourceDefinition as YAML, or write one file per kind into directories.
    Crds {
        /// Write `<plural>.navigator.cloudpartner.io.yaml` files into this directory instead of printing
        /// (repeat for several directories).
        #[arg(long = "out-dir", value_name = "DIR")]
        out_dir: Vec<std::path::PathBuf>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Address of the HTTP server for /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:8080", env = "NAVIGATOR_LISTEN")]
    listen: std::net::SocketAddr,
    /// Log format: text for people, json for log pipelines.
    #[arg(long, value_enum, default_value_t = navigator::logging::LogFormat::Text, env = "NAVIGATOR_LOG_FORMAT")]
    log_format: navigator::logging::LogFormat,
    /// How often a Ready object is re-checked on its endpoint for drift, in seconds (jittered ±10%).
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(5..))]
    resync_seconds: u64,
    /// Only reconcile objects whose labels match this selector, e.g. `shard=a` (all objects when unset).
    #[arg(long, env = "NAVIGATOR_SELECTOR")]
    selector: Option<String>,
    /// Reconciles of one kind running at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=512))]
    concurrency: u16,
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    navigator::logging::init(args.log_format);
    let client = kube::Client::try_default().await?;
    let settings = navigator::controller::context::Settings {
        resync: std::time::Duration::from_secs(args.resync_seconds),
        concurrency: args.concurrency,
        ..Default::default()
    };
    navigator::controller::run(
        client,
        navigator::controller::RunOptions {
            listen: args.listen,
            settings,
            selector: args.selector,
        },
    )
    .await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => run(args).await,
        Command::Simulator(args) => navigator::simulator::run(args).await,
        Command::Crds { out_dir } => navigator::api::crds::run(&out_dir, &mut std::io::stdout().lock()),
    }
}
