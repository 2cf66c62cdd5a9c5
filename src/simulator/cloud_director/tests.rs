//! The emulator in-process over HTTPS: what only a running server shows (the state file across a
//! restart, sessions that do not survive one, the controls).

use std::time::Duration;

use super::*;

const XML: &str = "application/*+xml;version=38.0";

async fn login(http: &reqwest::Client, url: &str) -> String {
    let response = http
        .post(format!("{url}/cloudapi/1.0.0/sessions/provider"))
        .basic_auth("administrator@System", Some(DEV_PASSWORD))
        .header("Accept", "application/json;version=38.0")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.headers()["x-vmware-vcloud-access-token"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// Creates the organisation `acme` through the legacy API.
async fn create_acme(http: &reqwest::Client, url: &str, token: &str) {
    let created = http
        .post(format!("{url}/api/admin/orgs"))
        .bearer_auth(token)
        .header("Accept", XML)
        .header("Content-Type", "application/vnd.vmware.admin.organization+xml")
        .body(r#"<AdminOrg xmlns="http://www.vmware.com/vcloud/v1.5" name="acme"><FullName>Acme</FullName><IsEnabled>true</IsEnabled></AdminOrg>"#)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
}

fn client(handle: &CloudDirectorHandle) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(handle.ca_pem().as_bytes()).unwrap();
    reqwest::Client::builder().tls_certs_only([ca]).build().unwrap()
}

#[tokio::test]
async fn organisations_survive_a_restart_and_sessions_do_not() {
    let dir = std::env::temp_dir().join(format!("vcd-emulator-{}", uuid::Uuid::new_v4()));
    let config = CloudDirectorConfig {
        state_file: Some(dir.join("state.json")),
        provision_time: Duration::from_millis(200),
        ..CloudDirectorConfig::default()
    };
    let first = spawn(config.clone()).await.unwrap();
    let http = client(&first);
    let token = login(&http, &first.url()).await;
    create_acme(&http, &first.url(), &token).await;
    let control = first.control().unwrap();
    control
        .fail_next_task(Operation::VdcCreate, "no capacity")
        .await
        .unwrap();
    let stats = control.stats().await.unwrap();
    assert_eq!(stats.creates["orgs"]["acme"], 1);
    assert_eq!(stats.counts.orgs, 1);
    first.stop().await.unwrap();

    let second = spawn(config).await.unwrap();
    let http = client(&second);
    let stale = http
        .get(format!("{}/api/org", second.url()))
        .bearer_auth(&token)
        .header("Accept", XML)
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 401, "sessions are not kept across a restart");
    let token = login(&http, &second.url()).await;
    let orgs = http
        .get(format!("{}/api/org", second.url()))
        .bearer_auth(&token)
        .header("Accept", XML)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(orgs.contains("name=\"acme\""), "{orgs}");
    let inventory = second.control().unwrap().inventory().await.unwrap();
    assert_eq!(inventory.orgs[0].name, "acme");
    second.stop().await.unwrap();
    let saved = std::fs::read_to_string(dir.join("state.json")).unwrap();
    assert!(
        saved.contains("\"vdcCreate\":\"no capacity\""),
        "the armed failure is kept: {saved}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_set_clock_stands_still_dates_tasks_and_does_not_go_back() {
    let emulator = spawn(CloudDirectorConfig {
        provision_time: Duration::from_millis(200),
        ..CloudDirectorConfig::default()
    })
    .await
    .unwrap();
    let control = emulator.control().unwrap();
    let start: jiff::Timestamp = "2026-10-01T02:00:00Z".parse().unwrap();
    control.set_clock(start).await.unwrap();
    let http = client(&emulator);
    let token = login(&http, &emulator.url()).await;
    create_acme(&http, &emulator.url(), &token).await;
    // Real time passes the task's 200 ms, the emulator's does not.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(control.clock().await.unwrap(), Clock { time: start, set: true });
    assert_eq!(control.stats().await.unwrap().running_tasks, 1);
    control
        .set_clock(start + jiff::SignedDuration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(control.stats().await.unwrap().running_tasks, 0);

    let back = control
        .set_clock(start - jiff::SignedDuration::from_hours(1))
        .await
        .unwrap_err();
    assert!(format!("{back:#}").contains("cannot go back"), "{back:#}");
    control.release_clock().await.unwrap();
    let clock = control.clock().await.unwrap();
    assert!(!clock.set && clock.time > start + jiff::SignedDuration::from_hours(24 * 30));
    emulator.stop().await.unwrap();
}
