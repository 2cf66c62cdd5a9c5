//! A client for what only the simulator has: its counters, its fault settings, vendor replies, and
//! requests dated in the past (`X-Simulator-Time`) to build usage histories. For tests and the demo;
//! controllers use the `endpoint` driver.

use anyhow::Context;
use jiff::Timestamp;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::faults::{FaultConfig, FaultPatch};
use super::server::SIMULATOR_TIME;
use super::stats::{RequestLog, SimStats};
use crate::endpoint::{ExternalInstance, ExternalOrg, InstanceDesired, OrgDesired, Secret, Ticket, TicketState};

/// Sends a control request and reads its JSON answer (`None` for 204), naming the call in errors.
pub(crate) async fn json_answer<T: DeserializeOwned>(
    request: reqwest::RequestBuilder,
    method: &Method,
    path: &str,
) -> anyhow::Result<Option<T>> {
    let response = request.send().await.with_context(|| format!("{method} {path}"))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .with_context(|| format!("{method} {path}: reading the answer"))?;
    if !status.is_success() {
        anyhow::bail!("{method} {path}: HTTP {status}: {text}");
    }
    if status == StatusCode::NO_CONTENT {
        return Ok(None);
    }
    serde_json::from_str(&text)
        .map(Some)
        .with_context(|| format!("{method} {path}: unexpected answer {text}"))
}

#[derive(Clone, Debug)]
pub struct SimControl {
    base: String,
    token: Secret,
    client: reqwest::Client,
}

#[derive(Serialize)]
struct Reply<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<TicketState>,
}

impl SimControl {
    /// `url` is the simulator's base URL (`http://127.0.0.1:8089`).
    pub fn new(url: &str, token: Secret) -> Self {
        SimControl {
            base: url.trim_end_matches('/').to_owned(),
            token,
            client: reqwest::Client::new(),
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        at: Option<Timestamp>,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> anyhow::Result<Option<T>> {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(self.token.expose());
        if let Some(at) = at {
            request = request.header(SIMULATOR_TIME, at.to_string());
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        json_answer(request, &method, path).await
    }

    pub async fn stats(&self) -> anyhow::Result<SimStats> {
        self.call(Method::GET, "/sim/stats", None, None::<&()>)
            .await?
            .context("no stats in the answer")
    }

    /// The latest `/v1` requests: when each arrived and how it was answered.
    pub async fn requests(&self) -> anyhow::Result<RequestLog> {
        self.call(Method::GET, "/sim/requests", None, None::<&()>)
            .await?
            .context("no request log in the answer")
    }

    /// Zeroes the counters (requests, peak, creates, faults) and empties the request log.
    pub async fn reset_stats(&self) -> anyhow::Result<()> {
        self.call::<serde_json::Value>(Method::DELETE, "/sim/stats", None, None::<&()>)
            .await
            .map(drop)
    }

    pub async fn faults(&self) -> anyhow::Result<FaultConfig> {
        self.call(Method::GET, "/sim/faults", None, None::<&()>)
            .await?
            .context("no fault settings in the answer")
    }

    pub async fn set_faults(&self, patch: &FaultPatch) -> anyhow::Result<FaultConfig> {
        self.call(Method::PUT, "/sim/faults", None, Some(patch))
            .await?
            .context("no fault settings in the answer")
    }

    /// The vendor answers (`body`) and/or moves the ticket to `state`.
    pub async fn vendor_reply(
        &self,
        id: &str,
        body: Option<&str>,
        state: Option<TicketState>,
    ) -> anyhow::Result<Ticket> {
        let path = format!("/sim/tickets/{id}/reply");
        self.call(Method::POST, &path, None, Some(&Reply { body, state }))
            .await?
            .context("no ticket in the answer")
    }

    /// Creates or updates an organisation as of `at`. Goes through `/v1`, so set no faults first.
    pub async fn apply_org_at(&self, at: Timestamp, org: &str, desired: &OrgDesired) -> anyhow::Result<ExternalOrg> {
        let path = format!("/v1/orgs/{org}");
        self.call(Method::PUT, &path, Some(at), Some(desired))
            .await?
            .context("no organisation in the answer")
    }

    /// Creates or updates an instance as of `at` (which must not be before its last change).
    pub async fn apply_instance_at(
        &self,
        at: Timestamp,
        org: &str,
        name: &str,
        desired: &InstanceDesired,
    ) -> anyhow::Result<ExternalInstance> {
        let path = format!("/v1/orgs/{org}/instances/{name}");
        self.call(Method::PUT, &path, Some(at), Some(desired))
            .await?
            .context("no instance in the answer")
    }

    /// Requests an instance's deletion as of `at`: billing stops at `at`.
    pub async fn delete_instance_at(&self, at: Timestamp, org: &str, name: &str) -> anyhow::Result<()> {
        let path = format!("/v1/orgs/{org}/instances/{name}");
        self.call::<serde_json::Value>(Method::DELETE, &path, Some(at), None::<&()>)
            .await
            .map(drop)
    }
}
