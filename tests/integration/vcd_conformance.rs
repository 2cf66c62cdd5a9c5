//! The Cloud Director emulator checked from outside: its wire behaviour with a plain HTTPS client, and
//! VMware's own Go SDK (go-vcloud-director, `tests/vcd-conformance`) doing what an administrator's tools
//! do against it.

use std::time::Duration;

use reqwest::StatusCode;

use crate::world::CloudDirector;

fn client(emulator: &CloudDirector) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(emulator.ca_pem.as_bytes()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

const XML_38: &str = "application/*+xml;version=38.0";

#[tokio::test]
async fn the_emulator_answers_versions_logins_and_missing_entities_as_cloud_director_does() {
    let emulator = CloudDirector::start("wire", &["--api-versions", "36.3:deprecated,37.0,38.0"]).await;
    let http = client(&emulator);
    let url = |path: &str| format!("{}{path}", emulator.url);

    let versions = http
        .get(url("/api/versions"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        versions.contains("<VersionInfo deprecated=\"true\"><Version>36.3</Version>"),
        "{versions}"
    );
    assert!(
        versions.contains(&format!(
            "<LoginUrl>{}/cloudapi/1.0.0/sessions</LoginUrl>",
            emulator.url
        )),
        "{versions}"
    );

    let wrong = http
        .post(url("/cloudapi/1.0.0/sessions/provider"))
        .basic_auth("administrator@System", Some("wrong"))
        .header("Accept", "application/json;version=38.0")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    let login = http
        .post(url("/cloudapi/1.0.0/sessions/provider"))
        .basic_auth("administrator@System", Some(&emulator.password))
        .header("Accept", "application/json;version=38.0")
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let token = login.headers()["x-vmware-vcloud-access-token"]
        .to_str()
        .unwrap()
        .to_owned();

    let unsupported = http
        .get(url("/api/org"))
        .bearer_auth(&token)
        .header("Accept", "application/*+xml;version=39.0")
        .send()
        .await
        .unwrap();
    assert_eq!(unsupported.status(), StatusCode::NOT_ACCEPTABLE);
    let body = unsupported.text().await.unwrap();
    assert!(body.contains("minorErrorCode=\"NOT_ACCEPTABLE\""), "{body}");
    assert!(
        body.contains("Supported API versions are: [38.0, 37.0, 36.3]"),
        "{body}"
    );

    // "bearer" in any case, as VMware's SDK writes it.
    let orgs = http
        .get(url("/api/org"))
        .header("Authorization", format!("bearer {token}"))
        .header("Accept", XML_38)
        .send()
        .await
        .unwrap();
    assert_eq!(orgs.status(), StatusCode::OK);

    let missing = "11111111-2222-3333-4444-555555555555";
    let legacy = http
        .get(url(&format!("/api/admin/org/{missing}")))
        .bearer_auth(&token)
        .header("Accept", XML_38)
        .send()
        .await
        .unwrap();
    assert_eq!(legacy.status(), StatusCode::FORBIDDEN);
    assert!(legacy.text().await.unwrap().contains("ACCESS_TO_RESOURCE_IS_FORBIDDEN"));
    let cloudapi = http
        .get(url(&format!("/cloudapi/1.0.0/orgs/urn:vcloud:org:{missing}")))
        .bearer_auth(&token)
        .header("Accept", "application/json;version=38.0")
        .send()
        .await
        .unwrap();
    assert_eq!(cloudapi.status(), StatusCode::FORBIDDEN);
    let error: serde_json::Value = cloudapi.json().await.unwrap();
    assert_eq!(error["minorErrorCode"], "ACCESS_TO_RESOURCE_IS_FORBIDDEN");

    emulator.control().expire_sessions().await.unwrap();
    let expired = http
        .get(url("/api/org"))
        .bearer_auth(&token)
        .header("Accept", XML_38)
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
}

/// Builds `tests/vcd-conformance` (a no-op when its stamp matches) and answers the binary's path.
fn conformance_program() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = std::process::Command::new(root.join("tests/vcd-conformance/build.sh"))
        .status()
        .expect("running tests/vcd-conformance/build.sh (needs Go)");
    assert!(status.success(), "building the conformance program failed: {status}");
    let bin = std::env::var_os("VCD_CONFORMANCE_BIN_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join(".cache/bin"));
    bin.join("vcd-conformance")
}

#[tokio::test]
async fn vmware_go_sdk_provisions_and_deletes_an_org_a_user_and_a_vdc_on_the_emulator() {
    const API_TOKEN: &str = "navigator-test-vcd-api-token";
    let program = tokio::task::spawn_blocking(conformance_program).await.unwrap();
    let emulator = CloudDirector::start("conformance", &["--provision-seconds", "1", "--api-token", API_TOKEN]).await;
    let ca_file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("vcd-conformance-ca.pem");
    std::fs::write(&ca_file, &emulator.ca_pem).unwrap();

    let started = std::time::Instant::now();
    // The SDK has no CA option and its `insecure` flag stays off: the CA goes into Go's system pool.
    let output = tokio::process::Command::new(&program)
        .env("SSL_CERT_FILE", &ca_file)
        .env("VCD_URL", &emulator.url)
        .env("VCD_USER", &emulator.user)
        .env("VCD_PASSWORD", &emulator.password)
        .env("VCD_API_TOKEN", API_TOKEN)
        .output()
        .await
        .expect("running the conformance program");
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}{stderr}");

    let control = emulator.control();
    let stats = control.stats().await.unwrap();
    println!("Calls the SDK made (method, path template: count), in {elapsed:.1?}:");
    for (call, count) in &stats.by_template {
        println!("  {call}: {count}");
    }
    assert!(
        output.status.success(),
        "the conformance program failed ({}):\n{stdout}{stderr}",
        output.status
    );
    assert!(stdout.contains("PASS"), "{stdout}");

    // It exercised the legacy XML and the CloudAPI paths the driver relies on, and left nothing behind.
    for call in [
        "GET /api/versions",
        "POST /cloudapi/1.0.0/sessions/provider",
        "POST /oauth/provider/token",
        "POST /api/admin/orgs",
        "POST /api/admin/org/{id}/users",
        "PUT /api/admin/user/{id}",
        "POST /api/admin/org/{id}/vdcsparams",
        "PUT /api/admin/vdc/{id}",
        "DELETE /api/vdc/{id}",
        "DELETE /api/admin/org/{id}",
        "GET /api/task/{id}",
        "GET /api/query",
        "GET /cloudapi/1.0.0/orgs/",
        "GET /cloudapi/1.0.0/roles/",
        "GET /cloudapi/1.0.0/auditTrail/",
    ] {
        assert!(stats.by_template.contains_key(call), "the SDK never called {call}");
    }
    let log = control.requests().await.unwrap();
    let server_errors: Vec<_> = log
        .requests
        .iter()
        .filter(|r| r.status.is_some_and(|s| s >= 500))
        .collect();
    assert!(server_errors.is_empty(), "the emulator answered 5xx: {server_errors:?}");
    let inventory = control.inventory().await.unwrap();
    assert!(inventory.orgs.is_empty(), "left behind: {inventory:?}");
}
