//! A client for the emulator's own `/sim` endpoints (counters, request log, faults, failing tasks,
//! expiring sessions, what it holds), for tests and the demo. Drivers use VCD's API.

use anyhow::Context;
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::server::{Clock, FailNextTask, Inventory, VcdFaultConfig, VcdFaultPatch, VcdStats};
use super::state::Operation;
use crate::simulator::stats::RequestLog;

#[derive(Clone, Debug)]
pub struct VcdControl {
    base: String,
    user: String,
    password: String,
    client: reqwest::Client,
}

impl VcdControl {
    /// `url` is the emulator's base URL (`https://127.0.0.1:PORT`), `ca_pem` the CA it was started with.
    pub fn new(url: &str, ca_pem: &str, user: &str, password: &str) -> anyhow::Result<Self> {
        let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).context("the emulator's CA certificate")?;
        let client = reqwest::Client::builder()
            .tls_certs_only([ca])
            .build()
            .context("building the HTTPS client")?;
        Ok(VcdControl {
            base: url.trim_end_matches('/').to_owned(),
            user: user.to_owned(),
            password: password.to_owned(),
            client,
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> anyhow::Result<Option<T>> {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .basic_auth(&self.user, Some(&self.password));
        if let Some(body) = body {
            request = request.json(body);
        }
        crate::simulator::control::json_answer(request, &method, path).await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.call(Method::GET, path, None::<&()>)
            .await?
            .with_context(|| format!("GET {path}: empty answer"))
    }

    pub async fn stats(&self) -> anyhow::Result<VcdStats> {
        self.get("/sim/stats").await
    }

    /// Zeroes the counters and empties the request log.
    pub async fn reset_stats(&self) -> anyhow::Result<()> {
        self.call::<()>(Method::DELETE, "/sim/stats", None::<&()>)
            .await
            .map(drop)
    }

    /// The request log: method, path, query and status of each API request.
    pub async fn requests(&self) -> anyhow::Result<RequestLog> {
        self.get("/sim/requests").await
    }

    pub async fn faults(&self) -> anyhow::Result<VcdFaultConfig> {
        self.get("/sim/faults").await
    }

    pub async fn set_faults(&self, patch: &VcdFaultPatch) -> anyhow::Result<VcdFaultConfig> {
        self.call(Method::PUT, "/sim/faults", Some(patch))
            .await?
            .context("no fault settings in the answer")
    }

    /// The next task of `operation` ends in `error` with `message`.
    pub async fn fail_next_task(&self, operation: Operation, message: &str) -> anyhow::Result<()> {
        let body = FailNextTask {
            operation,
            message: message.to_owned(),
        };
        self.call::<()>(Method::POST, "/sim/fail-next-task", Some(&body))
            .await
            .map(drop)
    }

    /// Every session token answers 401 from now on.
    pub async fn expire_sessions(&self) -> anyhow::Result<()> {
        self.call::<()>(Method::POST, "/sim/expire-sessions", None::<&()>)
            .await
            .map(drop)
    }

    /// The emulator's time, and whether it was set.
    pub async fn clock(&self) -> anyhow::Result<Clock> {
        self.get("/sim/clock").await
    }

    /// Sets the emulator's clock to `time`, where it stands still until set again (see `/sim/clock`).
    pub async fn set_clock(&self, time: jiff::Timestamp) -> anyhow::Result<()> {
        let clock = Clock { time, set: true };
        self.call::<Clock>(Method::PUT, "/sim/clock", Some(&clock))
            .await
            .map(drop)
    }

    /// The emulator's clock follows the real time again.
    pub async fn release_clock(&self) -> anyhow::Result<()> {
        self.call::<()>(Method::DELETE, "/sim/clock", None::<&()>)
            .await
            .map(drop)
    }

    /// The organisations with their users and VDCs.
    pub async fn inventory(&self) -> anyhow::Result<Inventory> {
        self.get("/sim/inventory").await
    }
}
