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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {}
}
