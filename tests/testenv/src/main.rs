//! `navigator-testenv`: starts the local control plane for people (`make cluster`, `make demo`) and
//! keeps it up until Ctrl-C. It prints the `export KUBECONFIG=...` line, and with `--kubeconfig-out`
//! also copies the admin kubeconfig to a fixed path that scripts can wait for.
//!
//! `navigator-testenv rt [--env-out PATH]` starts a Request Tracker instead (as the tests do) and, with
//! `--env-out`, writes its address and tokens as shell variables to PATH for scripts.

use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("rt") {
        args.next();
        return request_tracker(args);
    }
    let mut kubeconfig_out = None;
    let mut with_node = false;
    let mut imports = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--kubeconfig-out" => kubeconfig_out = args.next(),
            "--node" => with_node = true,
            "--import" => imports.extend(args.next()),
            "--help" | "-h" => {
                println!(
                    "usage: navigator-testenv [--kubeconfig-out PATH] [--node [--import OCI-ARCHIVE]...]\nStarts etcd, kube-apiserver and kube-controller-manager on loopback until Ctrl-C.\nWith --node also a node (containerd, kubelet, kube-proxy, kube-scheduler) that runs pods; --import loads an image (make image) into it."
                );
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other:?} (try --help)"),
        }
    }
    let started = Instant::now();
    let cluster;
    let plain;
    let cp = if with_node {
        cluster = navigator_testenv::node::Cluster::start()?;
        for archive in &imports {
            cluster.node.import_image(std::path::Path::new(archive))?;
            println!("Imported {archive} into the node.");
        }
        println!(
            "Node {} is Ready (containerd, kubelet, kube-proxy, kube-scheduler; started in {:.1?}); its logs are in {}.",
            navigator_testenv::node::NODE_NAME,
            cluster.node.start_time,
            cluster.node.dir().display()
        );
        &cluster.control_plane
    } else {
        anyhow::ensure!(imports.is_empty(), "--import needs --node");
        plain = navigator_testenv::ControlPlane::start()?;
        &plain
    };
    let admin = cp.kubeconfig("admin");
    if let Some(out) = &kubeconfig_out {
        // Written last and renamed into place, so a waiting script never reads half a file.
        let tmp = format!("{out}.tmp");
        std::fs::copy(&admin, &tmp)?;
        std::fs::rename(&tmp, out)?;
    }
    println!(
        "Control plane {} is up at {} (started in {:.1?}).",
        navigator_testenv::KUBERNETES_VERSION,
        cp.server(),
        started.elapsed()
    );
    println!("From another terminal:");
    println!(
        "  export KUBECONFIG={}",
        kubeconfig_out
            .as_deref()
            .map(std::path::PathBuf::from)
            .unwrap_or(admin)
            .display()
    );
    println!(
        "  export PATH={}:$PATH   # kubectl and helm of the same version",
        cp.bin().display()
    );
    println!(
        "Test users (kubeconfig each): {}",
        navigator_testenv::IDENTITIES
            .iter()
            .map(|i| cp.kubeconfig(i.name).display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("Press Ctrl-C to stop it; everything it started stops with it.");
    loop {
        std::thread::park();
    }
}

/// Runs a Request Tracker until Ctrl-C.
fn request_tracker(mut args: impl Iterator<Item = String>) -> anyhow::Result<()> {
    use navigator_testenv::request_tracker as rt;
    let mut env_out = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--env-out" => env_out = args.next(),
            other => anyhow::bail!("unknown argument {other:?} (usage: navigator-testenv rt [--env-out PATH])"),
        }
    }
    let tracker = rt::RequestTracker::start()?;
    let env = format!(
        "RT_URL={}\nRT_QUEUE='{}'\nRT_NAVIGATOR_TOKEN={}\nRT_VENDOR_TOKEN={}\nRT_DIR={}\n",
        tracker.url(),
        rt::QUEUE,
        tracker.navigator_token,
        tracker.vendor_token,
        tracker.dir().display()
    );
    if let Some(out) = &env_out {
        let tmp = format!("{out}.tmp");
        std::fs::write(&tmp, &env)?;
        std::fs::rename(&tmp, out)?;
    }
    println!(
        "Request Tracker is up at {} (database and tokens in {:.1?}, server answering after {:.1?}).",
        tracker.url(),
        tracker.setup_time,
        *tracker.start_time.lock().unwrap()
    );
    print!("{env}");
    println!(
        "Users: {} (password {}) and {}. Press Ctrl-C to stop it.",
        rt::NAVIGATOR_USER,
        rt::NAVIGATOR_PASSWORD,
        rt::VENDOR_USER
    );
    loop {
        std::thread::park();
    }
}
