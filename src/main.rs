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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Simulator(args) => navigator::simulator::run(args).await,
        Command::Crds { out_dir } => navigator::api::crds::run(&out_dir, &mut std::io::stdout().lock()),
    }
}
