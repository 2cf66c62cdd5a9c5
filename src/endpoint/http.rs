//! The Http driver: the Navigator endpoint API (`docs/endpoint-api.yaml`) over reqwest.
//!
//! Every request passes the endpoint's limits (rate and concurrency, see `limits`), carries a timeout,
//! and is retried a bounded number of times on 5xx, connection errors and 429 (honouring Retry-After),
//! within a small total wait so a reconcile worker never waits long; past that the call fails with a
//! retryable error and the reconciler comes back later, not before the Retry-After it carries. A
//! Retry-After also holds every other call to the endpoint until it passes (see `limits`). Retries pass
//! through the limits again. A request
//! that timed out is not retried here: it already cost a full timeout. Every call of the contract is
//! idempotent (names are keys, creates carry idempotency keys), so a retry after a lost response is safe,
//! except a create on an endpoint that assigns ids (`/v1/info` says `assignsIds`): that is sent once, and
//! a lost answer is left to the reconciler's create protocol, which looks before it creates again.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use rand::RngExt;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::limits::Limits;
use super::*;

/// The header that makes a create or comment idempotent.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// How to reach one endpoint and how hard to push it; filled from a CloudEndpoint and its Secret.
#[derive(Clone)]
pub struct HttpDriverConfig {
    /// Base URL; the contract's paths (`/v1/...`) are appended to it.
    pub url: String,
    /// The bearer token. Never logged.
    pub token: Secret,
    /// PEM certificates to trust for this endpoint instead of the system's roots.
    pub ca_bundle_pem: Option<Vec<u8>>,
    /// The most requests started in any one second, retries included.
    pub rate_limit_per_second: u32,
    /// The most requests in flight at once.
    pub max_concurrent: usize,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Retries of one call after a 5xx, a connection error or a 429.
    pub max_retries: u32,
    /// No retry starts later than this after the call began (a longer Retry-After ends the call
    /// `Throttled` at once). With the defaults a call takes at most about 25 s: queueing, this budget, and
    /// one last request with its timeout.
    pub retry_budget: Duration,
    /// The most one request waits for the rate limit or a free slot before the call ends `Throttled`.
    pub max_queue_wait: Duration,
    /// Told about every request sent (for metrics); none by default.
    pub observer: Option<Arc<dyn RequestObserver>>,
}

/// Sees every HTTP request an [`HttpDriver`] sends to its endpoint, retries included: how it ended
/// (`Success`, or the [`DriverError::reason`] of the failure) and how long the endpoint took to answer
/// (waiting for the driver's own limits is not counted). Navigator's metrics implement it per endpoint.
pub trait RequestObserver: Send + Sync {
    fn observe(&self, outcome: &'static str, took: Duration);
}

impl HttpDriverConfig {
    /// A configuration with the defaults: 20 requests/s, 8 in flight, 10 s timeout, 3 retries within 5 s.
    pub fn new(url: impl Into<String>, token: impl Into<Secret>) -> Self {
        HttpDriverConfig {
            url: url.into(),
            token: token.into(),
            ca_bundle_pem: None,
            rate_limit_per_second: 20,
            max_concurrent: 8,
            timeout: Duration::from_secs(10),
            max_retries: 3,
            retry_budget: Duration::from_secs(5),
            max_queue_wait: Duration::from_secs(5),
            observer: None,
        }
    }
}

impl fmt::Debug for HttpDriverConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpDriverConfig")
            .field("url", &self.url)
            .field("token", &self.token)
            .field(
                "ca_bundle_pem",
                &self.ca_bundle_pem.as_ref().map(|pem| format!("{} bytes", pem.len())),
            )
            .field("rate_limit_per_second", &self.rate_limit_per_second)
            .field("max_concurrent", &self.max_concurrent)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("retry_budget", &self.retry_budget)
            .field("max_queue_wait", &self.max_queue_wait)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

/// A driver for one endpoint that implements the Navigator endpoint API.
pub struct HttpDriver {
    base: Url,
    token: Secret,
    client: reqwest::Client,
    limits: Limits,
    timeout: Duration,
    max_retries: u32,
    retry_budget: Duration,
    observer: Option<Arc<dyn RequestObserver>>,
    /// Whether the endpoint assigns ids, as its `/v1/info` last said; `None` until it was asked.
    assigns_ids: RwLock<Option<bool>>,
    /// See [`Capabilities::create_grace`].
    create_grace: Duration,
}

impl fmt::Debug for HttpDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpDriver")
            .field("base", &self.base.as_str())
            .field("token", &self.token)
            .finish()
    }
}

/// The contract's error body.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

#[derive(Deserialize)]
struct List<T> {
    items: Vec<T>,
}

/// What a search on an endpoint that assigns ids needs of an object: the name searched by (a ticket's:
/// its idempotency key), the endpoint's id, and its age (the oldest copy is the one kept).
trait Found: DeserializeOwned + Send {
    /// The query parameter to search by.
    const NAME_FIELD: &'static str;
    fn name(&self) -> &str;
    fn id(&self) -> &str;
    fn created(&self) -> Timestamp;
}

/// `Found` for an object with a name field, an `external_id` and a `created_at`.
macro_rules! found {
    ($kind:ty, $field:literal, $name:ident) => {
        impl Found for $kind {
            const NAME_FIELD: &'static str = $field;
            fn name(&self) -> &str {
                &self.$name
            }
            fn id(&self) -> &str {
                &self.external_id
            }
            fn created(&self) -> Timestamp {
                self.created_at
            }
        }
    };
}
found!(ExternalOrg, "name", name);
found!(ExternalUser, "username", username);
found!(ExternalInstance, "name", name);

impl Found for Ticket {
    const NAME_FIELD: &'static str = "idempotencyKey";
    fn name(&self) -> &str {
        self.idempotency_key.as_deref().unwrap_or_default()
    }
    fn id(&self) -> &str {
        &self.external_id
    }
    fn created(&self) -> Timestamp {
        self.created_at
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CommentRequest<'a> {
    body: &'a str,
}

/// One request of a call, rebuilt for every attempt.
struct Call<'a> {
    method: Method,
    path: &'a [&'a str],
    query: &'a [(&'a str, String)],
    body: Option<serde_json::Value>,
    idempotency_key: Option<&'a str>,
}

impl HttpDriver {
    pub fn new(config: HttpDriverConfig) -> DriverResult<Self> {
        let (base, client) = connect(&config)?;
        Ok(HttpDriver {
            base,
            token: config.token,
            client,
            limits: Limits::new(
                config.rate_limit_per_second,
                config.max_concurrent,
                config.max_queue_wait,
            ),
            timeout: config.timeout,
            max_retries: config.max_retries,
            retry_budget: config.retry_budget,
            observer: config.observer,
            assigns_ids: RwLock::new(None),
            create_grace: (config.max_queue_wait + config.timeout) * 2,
        })
    }

    /// Whether the endpoint assigns ids; asks `/v1/info` the first time.
    async fn assigns_ids(&self) -> DriverResult<bool> {
        let known = *self.assigns_ids.read().unwrap_or_else(|e| e.into_inner());
        match known {
            Some(assigns) => Ok(assigns),
            None => Ok(self.info().await?.assigns_ids),
        }
    }

    /// A create on an endpoint that assigns ids: one request, never retried here, because a repeat after
    /// a lost answer would make a second object.
    async fn post_once<T: DeserializeOwned>(
        &self,
        path: &[&str],
        body: serde_json::Value,
        idempotency_key: Option<&str>,
    ) -> DriverResult<T> {
        let call = Call {
            method: Method::POST,
            path,
            query: &[],
            body: Some(body),
            idempotency_key,
        };
        let url = self.url(call.path, call.query);
        match self.attempt(&call, &url).await {
            Ok(answer) => answer.json(),
            Err(Attempt::Retry(error) | Attempt::Final(error)) => Err(error),
        }
    }

    /// The items of a collection whose `field` is `value` (a search on an endpoint that assigns ids),
    /// oldest first. A missing parent (404) holds nothing.
    async fn search<T: Found>(&self, path: &[&str], field: &str, value: &str) -> DriverResult<Vec<T>> {
        let query = [(field, value.to_owned())];
        let call = Call {
            method: Method::GET,
            path,
            query: &query,
            body: None,
            idempotency_key: None,
        };
        let list: List<T> = match self.send(call).await {
            Ok(answer) => answer.json()?,
            Err(DriverError::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        // Only exact matches, whatever the endpoint's search does; the oldest first is the one to keep.
        let mut items: Vec<T> = list.items.into_iter().filter(|item| item.name() == value).collect();
        items.sort_by_key(|item| item.created());
        Ok(items)
    }

    async fn orgs_named(&self, name: &str) -> DriverResult<Vec<ExternalOrg>> {
        self.search(&["orgs"], "name", name).await
    }

    /// The id of the organisation of this name, on an endpoint that assigns ids.
    async fn org_id(&self, name: &str) -> DriverResult<Option<String>> {
        Ok(self.orgs_named(name).await?.into_iter().next().map(|o| o.external_id))
    }

    async fn require_org_id(&self, name: &str) -> DriverResult<String> {
        self.org_id(name).await?.ok_or_else(|| DriverError::NotFound {
            message: format!("organisation {name} not found"),
        })
    }

    /// The oldest `T` of this name in the organisation's `collection` (`users`, `instances`), on an endpoint
    /// that assigns ids.
    async fn observe_in_org<T: Found>(&self, org: &str, collection: &str, name: &str) -> DriverResult<Option<T>> {
        let Some(org_id) = self.org_id(org).await? else {
            return Ok(None);
        };
        let found = self.search(&["orgs", &org_id, collection], T::NAME_FIELD, name).await?;
        Ok(found.into_iter().next())
    }

    /// A `POST` create in the organisation's `collection`, on an endpoint that assigns ids.
    async fn create_in_org<T: Found>(&self, org: &str, collection: &str, body: &impl Serialize) -> DriverResult<T> {
        let org_id = self.require_org_id(org).await?;
        self.post_once(&["orgs", &org_id, collection], to_value(body)?, None)
            .await
    }

    /// Updates the oldest `T` of this name in the organisation's `collection` by its id; never creates.
    async fn update_in_org<T: Found>(
        &self,
        org: &str,
        collection: &str,
        name: &str,
        desired: &impl Serialize,
    ) -> DriverResult<T> {
        let org_id = self.require_org_id(org).await?;
        let found: Vec<T> = self.search(&["orgs", &org_id, collection], T::NAME_FIELD, name).await?;
        let first = found.first().ok_or_else(|| DriverError::NotFound {
            message: format!("{name} not found in the {collection} of organisation {org}"),
        })?;
        self.put(&["orgs", &org_id, collection, first.id()], desired).await
    }

    /// Deletes every `T` of this name in the organisation's `collection`, so that no copy is left behind.
    async fn delete_in_org<T: Found>(&self, org: &str, collection: &str, name: &str) -> DriverResult<Deletion> {
        let Some(org_id) = self.org_id(org).await? else {
            return Ok(Deletion::Gone);
        };
        let found: Vec<T> = self.search(&["orgs", &org_id, collection], T::NAME_FIELD, name).await?;
        self.delete_each(&["orgs", &org_id, collection], &found).await
    }

    /// Deletes each of `found` in `collection`: `Gone` once all are, else `InProgress`.
    async fn delete_each<T: Found>(&self, collection: &[&str], found: &[T]) -> DriverResult<Deletion> {
        let mut deletion = Deletion::Gone;
        for item in found {
            let path: Vec<&str> = collection.iter().copied().chain([item.id()]).collect();
            if self.delete(&path).await? == Deletion::InProgress {
                deletion = Deletion::InProgress;
            }
        }
        Ok(deletion)
    }

    fn url(&self, path: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.push("v1").extend(path);
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    /// Sends a call with retries and answers the status and body of a 2xx response.
    async fn send(&self, call: Call<'_>) -> DriverResult<Answer> {
        let url = self.url(call.path, call.query);
        let started = tokio::time::Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let result = self.attempt(&call, &url).await;
            let error = match result {
                Ok(answer) => return Ok(answer),
                Err(Attempt::Final(error)) => return Err(error),
                Err(Attempt::Retry(error)) => error,
            };
            let wait = match &error {
                DriverError::Throttled { retry_after } => *retry_after,
                _ => backoff(attempt),
            };
            if attempt > self.max_retries || started.elapsed() + wait > self.retry_budget {
                tracing::debug!(method = %call.method, url = %url, attempt, error = %error, "giving up on the call");
                return Err(error);
            }
            tracing::debug!(
                method = %call.method, url = %url, attempt, wait_ms = wait.as_millis() as u64, error = %error,
                "retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(&self, call: &Call<'_>, url: &Url) -> Result<Answer, Attempt> {
        let _slot = self.limits.acquire().await.map_err(|retry_after| {
            // Our own limits: retrying inside this call would only queue longer.
            Attempt::Final(DriverError::Throttled { retry_after })
        })?;
        let started = std::time::Instant::now();
        let result = self.exchange(call, url).await;
        if let Err(Attempt::Retry(DriverError::Throttled { retry_after })) = &result {
            // The endpoint throttles this client, not one object: hold every call to it, not just this one.
            self.limits.hold_until(tokio::time::Instant::now() + *retry_after);
        }
        if let Some(observer) = &self.observer {
            let outcome = match &result {
                Ok(_) => "Success",
                Err(Attempt::Retry(error) | Attempt::Final(error)) => error.reason(),
            };
            observer.observe(outcome, started.elapsed());
        }
        result
    }

    /// One request and its answer.
    async fn exchange(&self, call: &Call<'_>, url: &Url) -> Result<Answer, Attempt> {
        let mut request = self
            .client
            .request(call.method.clone(), url.clone())
            .bearer_auth(self.token.expose())
            .timeout(self.timeout)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(key) = call.idempotency_key {
            request = request.header(IDEMPOTENCY_KEY, key);
        }
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) if e.is_timeout() => {
                return Err(Attempt::Final(DriverError::Unavailable {
                    message: format!("{} {} timed out after {:?}", call.method, url.path(), self.timeout),
                    source: Some(Box::new(e.without_url())),
                }));
            }
            Err(e) => {
                let e = e.without_url();
                return Err(Attempt::Retry(DriverError::Unavailable {
                    message: format!("{} {} failed: {}", call.method, url.path(), describe(&e)),
                    source: Some(Box::new(e)),
                }));
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(e) if e.is_timeout() => {
                return Err(Attempt::Final(DriverError::Unavailable {
                    message: format!("{} {} timed out reading the answer", call.method, url.path()),
                    source: Some(Box::new(e.without_url())),
                }));
            }
            Err(e) => {
                let e = e.without_url();
                let message = format!(
                    "{} {}: reading the answer failed: {}",
                    call.method,
                    url.path(),
                    describe(&e)
                );
                return Err(Attempt::Retry(DriverError::Unavailable {
                    message,
                    source: Some(Box::new(e)),
                }));
            }
        };
        tracing::debug!(method = %call.method, path = url.path(), status = status.as_u16(), "endpoint answered");
        if status.is_success() {
            return Ok(Answer {
                status,
                body: body.to_vec(),
            });
        }
        Err(classify(status, &headers, &body, &call.method, url))
    }

    async fn get_optional<T: DeserializeOwned>(&self, path: &[&str]) -> DriverResult<Option<T>> {
        let call = Call {
            method: Method::GET,
            path,
            query: &[],
            body: None,
            idempotency_key: None,
        };
        match self.send(call).await {
            Ok(answer) => answer.json().map(Some),
            Err(DriverError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn put<T: DeserializeOwned>(&self, path: &[&str], body: &impl Serialize) -> DriverResult<T> {
        let body = to_value(body)?;
        let call = Call {
            method: Method::PUT,
            path,
            query: &[],
            body: Some(body),
            idempotency_key: None,
        };
        self.send(call).await?.json()
    }

    async fn delete(&self, path: &[&str]) -> DriverResult<Deletion> {
        let call = Call {
            method: Method::DELETE,
            path,
            query: &[],
            body: None,
            idempotency_key: None,
        };
        match self.send(call).await {
            Ok(Answer {
                status: StatusCode::ACCEPTED,
                ..
            }) => Ok(Deletion::InProgress),
            Ok(_) | Err(DriverError::NotFound { .. }) => Ok(Deletion::Gone),
            Err(e) => Err(e),
        }
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &[&str],
        body: Option<serde_json::Value>,
        idempotency_key: Option<&str>,
    ) -> DriverResult<T> {
        let call = Call {
            method: Method::POST,
            path,
            query: &[],
            body,
            idempotency_key,
        };
        self.send(call).await?.json()
    }
}

/// The endpoint's base URL (no trailing slash, query or credentials) and an HTTP client that trusts its CA
/// bundle, after checking the configuration; shared by every driver that speaks HTTP.
pub(super) fn connect(config: &HttpDriverConfig) -> DriverResult<(Url, reqwest::Client)> {
    let invalid = |message: String| DriverError::Invalid { message };
    let base = base_url(&config.url)?;
    if config.rate_limit_per_second == 0 {
        return Err(invalid("rate limit must be at least 1 request per second".into()));
    }
    if config.max_concurrent == 0 {
        return Err(invalid("max concurrent requests must be at least 1".into()));
    }
    if config.timeout.is_zero() {
        return Err(invalid("request timeout must be more than zero".into()));
    }
    let client = http_client(config.ca_bundle_pem.as_deref(), config.timeout, config.max_concurrent)?;
    Ok((base, client))
}

/// A 2xx answer.
struct Answer {
    status: StatusCode,
    body: Vec<u8>,
}

impl Answer {
    fn json<T: DeserializeOwned>(&self) -> DriverResult<T> {
        serde_json::from_slice(&self.body).map_err(|e| DriverError::Unavailable {
            message: format!("the endpoint's answer is not the contract's JSON: {e}"),
            source: Some(Box::new(e)),
        })
    }
}

enum Attempt {
    /// Worth another attempt within this call.
    Retry(DriverError),
    /// Report at once.
    Final(DriverError),
}

fn to_value(body: &impl Serialize) -> DriverResult<serde_json::Value> {
    serde_json::to_value(body).map_err(|e| DriverError::Invalid {
        message: format!("cannot encode the request: {e}"),
    })
}

/// An endpoint's base URL, checked: absolute http(s), no credentials in it (error messages name the URL;
/// credentials belong in the Secret), without query and trailing slash so paths append as segments.
pub(super) fn base_url(url: &str) -> DriverResult<Url> {
    let invalid = |message: String| DriverError::Invalid { message };
    let mut base = Url::parse(url).map_err(|e| invalid(format!("endpoint URL {url:?} is not a URL: {e}")))?;
    if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
        return Err(invalid(format!("endpoint URL {url:?} must be an http or https URL")));
    }
    if !base.username().is_empty() || base.password().is_some() {
        return Err(invalid(
            "the endpoint URL must not hold credentials; put the token in the Secret".into(),
        ));
    }
    base.set_query(None);
    base.set_fragment(None);
    if let Ok(mut segments) = base.path_segments_mut() {
        segments.pop_if_empty();
    }
    Ok(base)
}

/// The HTTP client for one endpoint: trusting `ca_bundle_pem` instead of the system's roots when given.
pub(super) fn http_client(
    ca_bundle_pem: Option<&[u8]>,
    timeout: Duration,
    max_concurrent: usize,
) -> DriverResult<reqwest::Client> {
    let invalid = |message: String| DriverError::Invalid { message };
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("navigator/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .pool_max_idle_per_host(max_concurrent);
    if let Some(pem) = ca_bundle_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| invalid(format!("the endpoint's CA bundle is not PEM certificates: {e}")))?;
        if certs.is_empty() {
            return Err(invalid("the endpoint's CA bundle holds no certificate".into()));
        }
        builder = builder.tls_certs_only(certs);
    }
    builder
        .build()
        .map_err(|e| invalid(format!("cannot build an HTTP client: {e}")))
}

/// Exponential backoff with jitter: about 100 ms, 200 ms, 400 ms, ... capped at 2 s.
pub(super) fn backoff(attempt: u32) -> Duration {
    let base = 100u64.saturating_mul(1 << attempt.saturating_sub(1).min(5)).min(2_000);
    let jitter = rand::rng().random_range(0..=base / 2);
    Duration::from_millis(base / 2 + jitter)
}

/// The error chain of a reqwest error in one line (its Display alone says little).
pub(super) fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Turns a non-2xx answer into a driver error, deciding whether this call may retry it.
fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8], method: &Method, url: &Url) -> Attempt {
    let message = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(error) => format!("{} ({})", error.message, error.code),
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text: String = text.chars().take(200).collect();
            format!("HTTP {} from {method} {}: {}", status.as_u16(), url.path(), text.trim())
        }
    };
    match status {
        StatusCode::NOT_FOUND => Attempt::Final(DriverError::NotFound { message }),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Attempt::Final(DriverError::Unauthorized { message }),
        StatusCode::CONFLICT | StatusCode::PRECONDITION_FAILED | StatusCode::LOCKED => {
            Attempt::Final(DriverError::Conflict { message })
        }
        StatusCode::TOO_MANY_REQUESTS => Attempt::Retry(DriverError::Throttled {
            retry_after: retry_after(headers),
        }),
        StatusCode::REQUEST_TIMEOUT => Attempt::Retry(DriverError::Unavailable { message, source: None }),
        s if s.is_server_error() => {
            // "Come back later", said by an overloaded endpoint.
            if s == StatusCode::SERVICE_UNAVAILABLE && headers.contains_key(RETRY_AFTER) {
                return Attempt::Retry(DriverError::Throttled {
                    retry_after: retry_after(headers),
                });
            }
            Attempt::Retry(DriverError::Unavailable { message, source: None })
        }
        s if s.is_client_error() => Attempt::Final(DriverError::Invalid { message }),
        _ => Attempt::Final(DriverError::Unavailable { message, source: None }),
    }
}

/// The wait a Retry-After header asks for (one second when absent or unreadable).
pub(super) fn retry_after(headers: &HeaderMap) -> Duration {
    headers
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| parse_retry_after(value, jiff::Timestamp::now()))
        .unwrap_or(Duration::from_secs(1))
}

/// Retry-After as seconds or as an HTTP date (RFC 9110), capped at an hour so a wrong clock or header
/// cannot park objects for days.
fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    const MAX: Duration = Duration::from_secs(3_600);
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds).min(MAX));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new().parse_timestamp(value).ok()?;
    let wait = now.duration_until(at);
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO).min(MAX))
}

#[async_trait]
impl Driver for HttpDriver {
    fn capabilities(&self) -> Capabilities {
        let assigns_ids = *self.assigns_ids.read().unwrap_or_else(|e| e.into_inner());
        // Until the endpoint said, assume the worst: a repeated create makes a second object.
        let (key, tickets) = match assigns_ids {
            Some(false) => (CreateKey::Name, CreateKey::IdempotencyKey),
            Some(true) | None => (CreateKey::ServerAssigned, CreateKey::ServerAssigned),
        };
        Capabilities {
            orgs: key,
            users: key,
            instances: key,
            tickets: Some(tickets),
            usage: true,
            create_grace: self.create_grace,
        }
    }

    async fn info(&self) -> DriverResult<EndpointInfo> {
        let call = Call {
            method: Method::GET,
            path: &["info"],
            query: &[],
            body: None,
            idempotency_key: None,
        };
        let info: EndpointInfo = self.send(call).await?.json()?;
        *self.assigns_ids.write().unwrap_or_else(|e| e.into_inner()) = Some(info.assigns_ids);
        Ok(info)
    }

    async fn observe_org(&self, name: &str) -> DriverResult<Option<ExternalOrg>> {
        if !self.assigns_ids().await? {
            return self.get_optional(&["orgs", name]).await;
        }
        Ok(self.orgs_named(name).await?.into_iter().next())
    }

    async fn create_org(&self, name: &str, desired: &OrgDesired) -> DriverResult<ExternalOrg> {
        if !self.assigns_ids().await? {
            return self.put(&["orgs", name], desired).await;
        }
        let body = to_value(&NewOrg {
            name: name.to_owned(),
            spec: desired.clone(),
        })?;
        self.post_once(&["orgs"], body, None).await
    }

    async fn apply_org(&self, name: &str, desired: &OrgDesired) -> DriverResult<ExternalOrg> {
        if !self.assigns_ids().await? {
            return self.put(&["orgs", name], desired).await;
        }
        let id = self.require_org_id(name).await?;
        self.put(&["orgs", &id], desired).await
    }

    async fn delete_org(&self, name: &str) -> DriverResult<Deletion> {
        if !self.assigns_ids().await? {
            return self.delete(&["orgs", name]).await;
        }
        // Every organisation of the name, so that none is left behind.
        let found = self.orgs_named(name).await?;
        self.delete_each(&["orgs"], &found).await
    }

    async fn observe_user(&self, org: &str, username: &str) -> DriverResult<Option<ExternalUser>> {
        if !self.assigns_ids().await? {
            return self.get_optional(&["orgs", org, "users", username]).await;
        }
        self.observe_in_org(org, "users", username).await
    }

    async fn create_user(&self, org: &str, username: &str, desired: &UserDesired) -> DriverResult<ExternalUser> {
        if !self.assigns_ids().await? {
            return self.put(&["orgs", org, "users", username], desired).await;
        }
        let body = NewUser {
            username: username.to_owned(),
            spec: desired.clone(),
        };
        self.create_in_org(org, "users", &body).await
    }

    async fn apply_user(&self, org: &str, username: &str, desired: &UserDesired) -> DriverResult<ExternalUser> {
        if !self.assigns_ids().await? {
            return self.put(&["orgs", org, "users", username], desired).await;
        }
        self.update_in_org(org, "users", username, desired).await
    }

    async fn delete_user(&self, org: &str, username: &str) -> DriverResult<Deletion> {
        if !self.assigns_ids().await? {
            return self.delete(&["orgs", org, "users", username]).await;
        }
        self.delete_in_org::<ExternalUser>(org, "users", username).await
    }

    async fn observe_instance(&self, org: &str, name: &str) -> DriverResult<Option<ExternalInstance>> {
        if !self.assigns_ids().await? {
            return self.get_optional(&["orgs", org, "instances", name]).await;
        }
        self.observe_in_org(org, "instances", name).await
    }

    async fn create_instance(
        &self,
        org: &str,
        name: &str,
        desired: &InstanceDesired,
    ) -> DriverResult<ExternalInstance> {
        if !self.assigns_ids().await? {
            return self.put(&["orgs", org, "instances", name], desired).await;
        }
        let body = NewInstance {
            name: name.to_owned(),
            spec: desired.clone(),
        };
        self.create_in_org(org, "instances", &body).await
    }

    async fn apply_instance(&self, org: &str, name: &str, desired: &InstanceDesired) -> DriverResult<ExternalInstance> {
        if !self.assigns_ids().await? {
            return self.put(&["orgs", org, "instances", name], desired).await;
        }
        self.update_in_org(org, "instances", name, desired).await
    }

    async fn delete_instance(&self, org: &str, name: &str) -> DriverResult<Deletion> {
        if !self.assigns_ids().await? {
            return self.delete(&["orgs", org, "instances", name]).await;
        }
        self.delete_in_org::<ExternalInstance>(org, "instances", name).await
    }

    async fn usage(&self, org: &str, window: UsageWindow) -> DriverResult<Vec<UsageRecord>> {
        let org = if self.assigns_ids().await? {
            match self.org_id(org).await? {
                Some(id) => id,
                None => return Ok(Vec::new()),
            }
        } else {
            org.to_owned()
        };
        let query = [("from", window.from.to_string()), ("to", window.to.to_string())];
        let call = Call {
            method: Method::GET,
            path: &["orgs", &org, "usage"],
            query: &query,
            body: None,
            idempotency_key: None,
        };
        let report: UsageReport = self.send(call).await?.json()?;
        Ok(report.records)
    }

    async fn create_ticket(&self, idempotency_key: &str, desired: &TicketDesired) -> DriverResult<Ticket> {
        if self.assigns_ids().await? {
            return self
                .post_once(&["tickets"], to_value(desired)?, Some(idempotency_key))
                .await;
        }
        self.post(&["tickets"], Some(to_value(desired)?), Some(idempotency_key))
            .await
    }

    async fn find_ticket(&self, idempotency_key: &str) -> DriverResult<Option<Ticket>> {
        let found: Vec<Ticket> = self.search(&["tickets"], Ticket::NAME_FIELD, idempotency_key).await?;
        Ok(found.into_iter().next())
    }

    async fn get_ticket(&self, id: &str) -> DriverResult<Option<Ticket>> {
        self.get_optional(&["tickets", id]).await
    }

    async fn add_comment(&self, id: &str, idempotency_key: &str, body: &str) -> DriverResult<Comment> {
        let body = to_value(&CommentRequest { body })?;
        self.post(&["tickets", id, "comments"], Some(body), Some(idempotency_key))
            .await
    }

    async fn close_ticket(&self, id: &str) -> DriverResult<Ticket> {
        self.post(&["tickets", id, "close"], None, None).await
    }

    async fn reopen_ticket(&self, id: &str) -> DriverResult<Ticket> {
        self.post(&["tickets", id, "reopen"], None, None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_never_appears_in_debug_output() {
        let config = HttpDriverConfig::new("http://127.0.0.1:1", "s3cr3t-token-value");
        assert!(!format!("{config:?}").contains("s3cr3t"), "{config:?}");
        let driver = HttpDriver::new(config).unwrap();
        assert!(!format!("{driver:?}").contains("s3cr3t"), "{driver:?}");
    }

    #[test]
    fn paths_are_appended_to_the_base_url_and_escaped() {
        let driver = HttpDriver::new(HttpDriverConfig::new("https://cloud.example/navigator/", "t")).unwrap();
        assert_eq!(
            driver.url(&["orgs", "acme"], &[]).as_str(),
            "https://cloud.example/navigator/v1/orgs/acme"
        );
        assert_eq!(
            driver.url(&["tickets", "a/b"], &[]).as_str(),
            "https://cloud.example/navigator/v1/tickets/a%2Fb"
        );
        let query = [("idempotencyKey", "k 1&x".to_owned())];
        assert_eq!(
            driver.url(&["tickets"], &query).as_str(),
            "https://cloud.example/navigator/v1/tickets?idempotencyKey=k+1%26x"
        );
    }

    #[test]
    fn bad_configuration_is_invalid() {
        for config in [
            HttpDriverConfig::new("not a url", "t"),
            HttpDriverConfig::new("ftp://cloud.example", "t"),
            HttpDriverConfig::new("https://user:pw@cloud.example", "t"),
            HttpDriverConfig {
                rate_limit_per_second: 0,
                ..HttpDriverConfig::new("http://cloud.example", "t")
            },
            HttpDriverConfig {
                ca_bundle_pem: Some(b"not pem".to_vec()),
                ..HttpDriverConfig::new("http://cloud.example", "t")
            },
        ] {
            assert!(matches!(HttpDriver::new(config), Err(DriverError::Invalid { .. })));
        }
    }

    #[test]
    fn answers_are_classified() {
        let url = Url::parse("http://e/v1/orgs/a").unwrap();
        let body = br#"{"code":"Conflict","message":"org a still holds 2 instances"}"#;
        let mut headers = HeaderMap::new();
        let case = |status: u16, headers: &HeaderMap, body: &[u8]| {
            classify(StatusCode::from_u16(status).unwrap(), headers, body, &Method::PUT, &url)
        };
        assert!(matches!(
            case(404, &headers, b""),
            Attempt::Final(DriverError::NotFound { .. })
        ));
        assert!(matches!(
            case(401, &headers, b""),
            Attempt::Final(DriverError::Unauthorized { .. })
        ));
        assert!(matches!(
            case(400, &headers, b"<html>"),
            Attempt::Final(DriverError::Invalid { .. })
        ));
        assert!(matches!(
            case(500, &headers, b""),
            Attempt::Retry(DriverError::Unavailable { .. })
        ));
        match case(409, &headers, body) {
            Attempt::Final(DriverError::Conflict { message }) => assert!(message.contains("2 instances")),
            _ => panic!("409 is a conflict"),
        }
        headers.insert(RETRY_AFTER, "3".parse().unwrap());
        match case(429, &headers, b"") {
            Attempt::Retry(DriverError::Throttled { retry_after }) => assert_eq!(retry_after, Duration::from_secs(3)),
            _ => panic!("429 is throttled"),
        }
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_an_http_date() {
        let now: jiff::Timestamp = "1994-11-06T08:49:30Z".parse().unwrap();
        assert_eq!(parse_retry_after(" 3 ", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("86400", now), Some(Duration::from_secs(3_600)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO),
            "a date already past means now"
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..10 {
            let wait = backoff(attempt);
            assert!(wait <= Duration::from_secs(2));
            assert!(wait >= Duration::from_millis(50));
        }
        assert!(backoff(5) >= Duration::from_millis(800));
    }
}
