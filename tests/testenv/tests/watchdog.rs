//! The control plane must not outlive the process that started it, even when that process panics
//! without running any destructor: the watchdog stops it and removes its directory.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const CHILD: &str = "NAVIGATOR_TESTENV_WATCHDOG_CHILD";

#[test]
fn control_plane_stops_when_its_owner_dies_without_cleaning_up() {
    if std::env::var_os(CHILD).is_some() {
        let cp = navigator_testenv::ControlPlane::start().expect("control plane");
        let pids: Vec<String> = cp.pids().iter().map(u32::to_string).collect();
        println!("PIDS={} DIR={}", pids.join(","), cp.dir().display());
        std::mem::forget(cp); // no Drop, no stop(): only the watchdog is left to clean up
        panic!("deliberate panic while the control plane runs");
    }

    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "control_plane_stops_when_its_owner_dies_without_cleaning_up",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .expect("running the child test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "the child must have panicked");
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("PIDS="))
        .unwrap_or_else(|| panic!("no PIDS line in {stdout}"))
        .1;
    let (pids, dir) = line.split_once(" DIR=").unwrap();
    let pids: Vec<&str> = pids.split(',').collect();
    assert_eq!(
        pids.len(),
        3,
        "etcd, kube-apiserver and kube-controller-manager were started"
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    let alive = || {
        pids.iter()
            .filter(|p| Path::new(&format!("/proc/{p}")).exists())
            .count()
    };
    while alive() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(alive(), 0, "control plane processes {pids:?} outlived their owner");
    while Path::new(dir).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!Path::new(dir).exists(), "the watchdog removes {dir}");
}
