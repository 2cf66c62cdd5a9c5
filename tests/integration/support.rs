//! Helpers shared by the integration tests: waiting on a condition, fresh namespaces.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};

pub use navigator_testenv::shared;

/// Polls `check` until it returns `Some`, failing the test with `what` after `timeout`.
/// Used for eventual outcomes (a controller acting), never to assert how fast something happens.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Creates a namespace with a unique name starting with `prefix`, so tests sharing one control plane
/// never see each other's objects.
pub async fn fresh_namespace(client: &kube::Client, prefix: &str) -> String {
    let name = format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let ns = Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("creating a test namespace");
    name
}

/// Runs `kubectl ARGS -f -` as the administrator of `control_plane` on YAML documents, failing the test with
/// kubectl's own message when it refuses them.
pub fn kubectl_documents(control_plane: &navigator_testenv::ControlPlane, args: &[&str], docs: &[serde_json::Value]) {
    use std::io::Write;
    use std::process::Stdio;
    let text: String = docs
        .iter()
        .map(|d| format!("---\n{}", serde_yaml::to_string(d).unwrap()))
        .collect();
    let mut child = control_plane
        .kubectl("admin")
        .args(args)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "kubectl {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
