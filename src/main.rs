//! The `navigator` command line: parsing and dispatch only. Each subcommand's work lives in the library.
use clap::{Parser, Subcommand};

/// jemalloc instead of glibc's malloc (for every allocation in the process, C libraries' too): the
/// operator's caches are many small, long-lived allocations made and freed by several threads, which
/// glibc's per-thread arenas fragment. Measured with `make bench` at 10,000 subscriptions: peak resident
/// memory 72 MiB with glibc, 53 with jemalloc (mimalloc 3: 82).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's built-in settings (`MALLOC_CONF` in the environment still overrides them): one arena instead
/// of four per core, whose partly used pages each kept their own share of the heap. The threads that
/// allocate are few and keep per-thread caches. Measured at 10,000 subscriptions: 1 MiB less peak memory.
#[unsafe(export_name = "malloc_conf")]
static MALLOC_CONF: &[u8; 10] = b"narenas:1\0";

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
    Simulator(Box<navigator::simulator::SimulatorArgs>),
    /// Print every CustomResourceDefinition as YAML, or write one file per kind into directories.
    Crds {
        /// Write `<plural>.navigator.cloudpartner.io.yaml` files into this directory instead of printing
        /// (repeat for several directories).
        #[arg(long = "out-dir", value_name = "DIR")]
        out_dir: Vec<std::path::PathBuf>,
    },
    /// The organisations you hold a role in, and switching between them (sets the kubeconfig namespace).
    #[command(subcommand)]
    Org(navigator::cli::org::OrgCommand),
    /// Invoices: export them as CSV or JSON, or render one as PDF or HTML (needs only read access to them).
    #[command(subcommand)]
    Invoice(navigator::cli::export::InvoiceCommand),
    /// Usage: a CSV report per service, metric and customer from the invoices (needs only read access).
    #[command(subcommand)]
    Usage(navigator::cli::export::UsageCommand),
}

/// Parses the command line. Installed as `kubectl-navigator` it is a kubectl plugin (`kubectl navigator org
/// list`), and help and errors say so.
fn parse_cli() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let invoked_as = std::env::args_os().next().unwrap_or_default();
    let plugin = std::path::Path::new(&invoked_as)
        .file_name()
        .is_some_and(|name| name.to_string_lossy().starts_with("kubectl-"));
    let mut command = Cli::command();
    if plugin {
        command = command.bin_name("kubectl navigator");
    }
    Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|error| error.exit())
}

#[derive(clap::Args)]
struct RunArgs {
    /// Address of the HTTP server for /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:8080", env = "NAVIGATOR_LISTEN")]
    listen: std::net::SocketAddr,
    /// Log format: text for people, json for log pipelines.
    #[arg(long, value_enum, default_value_t = navigator::logging::LogFormat::Text, env = "NAVIGATOR_LOG_FORMAT")]
    log_format: navigator::logging::LogFormat,
    /// How often a Ready object is re-checked on its endpoint for drift, in seconds (each object at its own
    /// second of the period, spread by a hash of its name).
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(5..))]
    resync_seconds: u64,
    /// Only reconcile objects whose labels match this selector, e.g. `shard=a` (all objects when unset).
    #[arg(long, env = "NAVIGATOR_SELECTOR")]
    selector: Option<String>,
    /// Reconciles of one kind running at once. A reconcile mostly waits on the API server and the endpoint
    /// (each endpoint has its own cap, `maxConcurrentOperations`), so this is set well above the cores.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=512))]
    concurrency: u16,
    #[command(flatten)]
    leader: LeaderElectionArgs,
    #[command(flatten)]
    shard: ShardArgs,
}

#[derive(clap::Args)]
struct ShardArgs {
    /// How many shards split the objects (each object's shard is its navigator.cloudpartner.io/shard label,
    /// which the chart's admission policy sets); 1 reconciles every object.
    #[arg(long, default_value_t = 1, env = "NAVIGATOR_SHARDS")]
    shards: u32,
    /// The shard this instance reconciles, from 0. With leader election its Lease is
    /// `<lease name>-shard-<index>`, so each shard has its own leader and standbys.
    #[arg(long, default_value_t = 0, env = "NAVIGATOR_SHARD_INDEX")]
    shard_index: u32,
}

impl ShardArgs {
    fn shard(&self) -> anyhow::Result<Option<navigator::runtime::shard::Shard>> {
        let shard = navigator::runtime::shard::Shard::new(self.shard_index, self.shards)?;
        Ok((shard.count > 1).then_some(shard))
    }
}

#[derive(clap::Args)]
struct LeaderElectionArgs {
    /// Reconcile only while holding a Lease, so that of several replicas exactly one works and the others
    /// stand by (ready, idle) to take over.
    #[arg(long, env = "NAVIGATOR_LEADER_ELECTION")]
    leader_election: bool,
    /// Namespace of the leader Lease (in a cluster: the pod's own namespace, from POD_NAMESPACE).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    leader_election_namespace: String,
    /// Name of the leader Lease; replicas of one installation share it.
    #[arg(long, default_value = "navigator")]
    leader_election_lease_name: String,
    /// How long the lease holds after its last renewal, in seconds: the longest handover after a crash.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(2..=3600))]
    leader_election_lease_seconds: u64,
    /// How long before the lease expires the leader renews it, in seconds (less than the lease).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3599))]
    leader_election_renew_margin_seconds: u64,
}

impl LeaderElectionArgs {
    fn election(
        &self,
        shard: Option<navigator::runtime::shard::Shard>,
    ) -> Option<navigator::runtime::leader::LeaderElection> {
        let lease_name = match shard {
            Some(shard) => shard.lease_name(&self.leader_election_lease_name),
            None => self.leader_election_lease_name.clone(),
        };
        self.leader_election
            .then(|| navigator::runtime::leader::LeaderElection {
                namespace: self.leader_election_namespace.clone(),
                lease_name,
                identity: navigator::runtime::leader::default_identity(),
                lease_duration: std::time::Duration::from_secs(self.leader_election_lease_seconds),
                renew_margin: std::time::Duration::from_secs(self.leader_election_renew_margin_seconds),
            })
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    navigator::logging::init(args.log_format);
    let shard = args.shard.shard()?;
    let client = kube::Client::try_default().await?;
    let settings = navigator::runtime::context::Settings {
        resync: std::time::Duration::from_secs(args.resync_seconds),
        concurrency: args.concurrency,
        ..Default::default()
    };
    navigator::controllers::run(
        client,
        navigator::controllers::RunOptions {
            listen: args.listen,
            settings,
            selector: args.selector,
            leader_election: args.leader.election(shard),
            shard,
        },
    )
    .await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match parse_cli().command {
        Command::Run(args) => run(args).await,
        Command::Simulator(args) => navigator::simulator::run(*args).await,
        Command::Crds { out_dir } => navigator::api::crds::run(&out_dir, &mut std::io::stdout().lock()),
        Command::Org(command) => navigator::cli::org::run(command, &mut std::io::stdout().lock()).await,
        Command::Invoice(command) => navigator::cli::export::run_invoice(command, &mut std::io::stdout().lock()).await,
        Command::Usage(command) => navigator::cli::export::run_usage(command, &mut std::io::stdout().lock()).await,
    }
}
