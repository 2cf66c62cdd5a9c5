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
