//! The CloudDirector driver: Navigator's organisations, users and service instances as VMware Cloud
//! Director organisations, local users and organisation VDCs.
//!
//! It speaks Cloud Director's API the way VMware's Go SDK does at API 37 to 39: version from
//! `/api/versions`, a provider session from CloudAPI, organisations, users and VDCs through the legacy XML
//! API, look-ups through CloudAPI lists and `/api/query`. The decisions (version, roles, sizes, states,
//! what an error means, usage) are pure functions in `rules`, `xml` and `usage`; this file sends requests.
//!
//! One session serves every call; an expired one (401) is replaced once per call. Requests pass the
//! endpoint's rate limit and concurrency cap (see `limits`) and are retried on 5xx, 429 and BUSY_ENTITY
//! within a small budget, except creates, which are sent once (Cloud Director assigns ids, so a repeat
//! would make a second entity; the reconciler's create protocol looks up by name instead). Every
//! asynchronous operation's Task is followed: while it runs, no other operation is started on the entity.

pub mod rules;
pub mod usage;
pub mod xml;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rand::RngExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use self::rules::{Operation, Refusal, TaskState};
use super::http::{HttpDriverConfig, RequestObserver, backoff, connect, describe, retry_after};
use super::limits::Limits;
use super::*;
use crate::api::cloud_endpoint::{CloudDirectorCredential, CloudDirectorSettings};

/// How to reach one Cloud Director and what to provision there.
#[derive(Clone, Debug)]
pub struct CloudDirectorConfig {
    /// URL, credential (password or API token), CA bundle, limits, timeout, retries, observer.
    pub http: HttpDriverConfig,
    pub settings: CloudDirectorSettings,
}

/// A logged-in session: the API version it speaks and its bearer token.
#[derive(Clone)]
struct Session {
    version: String,
    token: Secret,
}

/// An operation this driver started, followed through its task.
#[derive(Clone, Debug)]
struct Tracked {
    task: String,
    operation: Operation,
    /// Cloud Director's error, once the task failed (kept for a create: the VDC stays Failed).
    failure: Option<String>,
}

pub struct CloudDirectorDriver {
    base: Url,
    client: reqwest::Client,
    credential: Secret,
    settings: CloudDirectorSettings,
    limits: Limits,
    timeout: Duration,
    max_retries: u32,
    retry_budget: Duration,
    observer: Option<Arc<dyn RequestObserver>>,
    create_grace: Duration,
    session: tokio::sync::RwLock<Option<Session>>,
    /// Held while logging in, so concurrent calls wait for one login instead of making several sessions.
    login: tokio::sync::Mutex<()>,
    /// What this process started and has not seen finish, by entity (`org:NAME`, `vdc:ORG/NAME`). After a
    /// restart the tasks embedded in an entity (and BUSY_ENTITY) tell the same.
    tracked: Mutex<HashMap<String, Tracked>>,
    placement: tokio::sync::Mutex<Option<xml::VdcPlacement>>,
}

impl fmt::Debug for CloudDirectorDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudDirectorDriver")
            .field("base", &self.base.as_str())
            .field("username", &self.settings.username)
            .field("credential", &self.credential)
            .finish()
    }
}

/// Which of Cloud Director's two APIs a request goes to (they differ in Accept header and error format).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Api {
    Legacy,
    Cloud,
}

/// One request, rebuilt for every attempt.
struct Request {
    method: Method,
    url: Url,
    api: Api,
    body: Option<(&'static str, String)>,
    /// The organisation (uuid) a CloudAPI request acts in.
    tenant: Option<String>,
}

/// A 2xx answer.
struct Answer {
    status: StatusCode,
    /// The session token a login answers with.
    access_token: Option<String>,
    /// Where a CloudAPI write's task is.
    location: Option<String>,
    body: String,
}

/// A failed request, classified.
#[derive(Debug)]
struct Failure {
    refusal: Refusal,
    message: String,
    retry_after: Duration,
}

impl From<Failure> for DriverError {
    fn from(failure: Failure) -> Self {
        let message = failure.message;
        match failure.refusal {
            Refusal::Unauthenticated => DriverError::Unauthorized { message },
            Refusal::NotFound => DriverError::NotFound { message },
            Refusal::DuplicateName | Refusal::Busy => DriverError::Conflict { message },
            Refusal::Throttled => DriverError::Throttled {
                retry_after: failure.retry_after,
            },
            Refusal::VersionNotServed | Refusal::Unavailable => DriverError::Unavailable { message, source: None },
            Refusal::Invalid => DriverError::Invalid { message },
        }
    }
}

fn unavailable(message: String) -> Failure {
    Failure {
        refusal: Refusal::Unavailable,
        message,
        retry_after: Duration::ZERO,
    }
}

/// Cloud Director's error body, legacy XML or CloudAPI JSON: (minor code, message).
fn error_of(body: &str) -> Option<(String, String)> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct JsonError {
        #[serde(default)]
        minor_error_code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(error) = serde_json::from_str::<JsonError>(body) {
        return Some((error.minor_error_code, error.message));
    }
    let error: xml::ErrorXml = quick_xml::de::from_str(body).ok()?;
    Some((error.minor, error.message))
}

/// One page of a CloudAPI list.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page<T> {
    #[serde(default)]
    page_count: u64,
    #[serde(default = "Vec::new")]
    values: Vec<T>,
}

/// A CloudAPI organisation.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Org {
    id: String,
    name: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    is_enabled: bool,
}

impl Org {
    fn external(&self) -> ExternalOrg {
        ExternalOrg {
            external_id: self.id.clone(),
            name: self.name.clone(),
            display_name: self.display_name.clone(),
            enabled: self.is_enabled,
            state: if self.is_enabled {
                OrgState::Active
            } else {
                OrgState::Suspended
            },
            // Cloud Director does not say when an organisation was made.
            created_at: Timestamp::now(),
        }
    }
}

#[derive(Deserialize)]
struct RoleRecord {
    id: String,
    name: String,
}

#[derive(Deserialize)]
struct ApiTokenAnswer {
    access_token: String,
}

/// A password for a new local user: nobody signs in with it (Navigator does not keep it); the person sets
/// their own through the provider's identity provider or a reset.
fn new_password() -> String {
    let random: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(28)
        .map(char::from)
        .collect();
    format!("Nv-{random}9!")
}

fn org_key(name: &str) -> String {
    format!("org:{name}")
}

fn vdc_key(org: &str, name: &str) -> String {
    format!("vdc:{org}/{name}")
}

impl CloudDirectorDriver {
    pub fn new(config: CloudDirectorConfig) -> DriverResult<Self> {
        let (base, client) = connect(&config.http)?;
        let http = config.http;
        Ok(CloudDirectorDriver {
            base,
            client,
            credential: http.token,
            settings: config.settings,
            limits: Limits::new(http.rate_limit_per_second, http.max_concurrent, http.max_queue_wait),
            timeout: http.timeout,
            max_retries: http.max_retries,
            retry_budget: http.retry_budget,
            observer: http.observer,
            create_grace: (http.max_queue_wait + http.timeout) * 2,
            session: tokio::sync::RwLock::new(None),
            login: tokio::sync::Mutex::new(()),
            tracked: Mutex::new(HashMap::new()),
            placement: tokio::sync::Mutex::new(None),
        })
    }

    // -----------------------------------------------------------------------------------------------
    // Requests and the session

    /// The URL of `path` (with its query) on this endpoint. Also takes an href Cloud Director returned,
    /// keeping only its path and query: the host it names may be one this client cannot reach.
    fn url(&self, path_or_href: &str) -> Url {
        let mut url = self.base.clone();
        match Url::parse(path_or_href) {
            // An href already holds the full path.
            Ok(href) => {
                url.set_path(href.path());
                url.set_query(href.query());
            }
            Err(_) => {
                let (path, query) = path_or_href.split_once('?').unwrap_or((path_or_href, ""));
                url.set_path(&format!("{}{path}", self.base.path().trim_end_matches('/')));
                url.set_query((!query.is_empty()).then_some(query));
            }
        }
        url
    }

    fn request(&self, method: Method, url: Url, api: Api) -> Request {
        Request {
            method,
            url,
            api,
            body: None,
            tenant: None,
        }
    }

    /// The current session, logging in (and choosing the API version) when there is none.
    async fn session(&self) -> DriverResult<Session> {
        if let Some(session) = self.session.read().await.clone() {
            return Ok(session);
        }
        let _login = self.login.lock().await;
        if let Some(session) = self.session.read().await.clone() {
            return Ok(session);
        }
        let session = self.log_in().await?;
        *self.session.write().await = Some(session.clone());
        Ok(session)
    }

    /// Drops `used` if it is still the current session (another call may have replaced it already).
    async fn forget_session(&self, used: &Session) {
        let mut current = self.session.write().await;
        if current.as_ref().is_some_and(|s| s.token == used.token) {
            *current = None;
        }
    }

    async fn log_in(&self) -> DriverResult<Session> {
        let versions = self.url("/api/versions");
        let answer = self
            .exchange(
                &self.request(Method::GET, versions, Api::Legacy),
                None,
                "application/*+xml",
            )
            .await?;
        let offered: xml::SupportedVersions =
            xml::parse("version list", &answer.body).map_err(DriverError::unavailable)?;
        let offered: Vec<(String, bool)> = offered
            .versions
            .into_iter()
            .map(|v| (v.version, v.deprecated))
            .collect();
        let version = rules::choose_version(&offered, self.settings.api_version.as_deref())?;
        let json = format!("application/json;version={version}");
        let token = match self.settings.credential {
            CloudDirectorCredential::Password => {
                let mut request = self.request(Method::POST, self.url("/cloudapi/1.0.0/sessions/provider"), Api::Cloud);
                request.body = Some(("application/json", String::new()));
                let user = format!("{}@{}", self.settings.username, self.settings.org);
                let answer = self
                    .exchange(&request, Some(Credential::Basic(&user, &self.credential)), &json)
                    .await
                    .map_err(|f| login_failure(f, &format!("the login of {user}")))?;
                answer.access_token.ok_or_else(|| {
                    DriverError::unavailable("Cloud Director's login answer carries no X-VMWARE-VCLOUD-ACCESS-TOKEN")
                })?
            }
            CloudDirectorCredential::ApiToken => {
                let mut request = self.request(Method::POST, self.url("/oauth/provider/token"), Api::Cloud);
                // A form body is encoded like a URL query.
                let mut form = self.base.clone();
                form.query_pairs_mut()
                    .clear()
                    .append_pair("grant_type", "refresh_token")
                    .append_pair("refresh_token", self.credential.expose());
                let form = form.query().unwrap_or_default().to_owned();
                request.body = Some(("application/x-www-form-urlencoded", form));
                let answer = self
                    .exchange(&request, None, "application/json")
                    .await
                    .map_err(|f| login_failure(f, "the API token"))?;
                let token: ApiTokenAnswer = serde_json::from_str(&answer.body)
                    .map_err(|e| DriverError::unavailable(format!("Cloud Director's token answer is not JSON: {e}")))?;
                token.access_token
            }
        };
        Ok(Session {
            version,
            token: Secret::new(token),
        })
    }

    /// Sends a request in the session: a 401 logs in again once, a 406 drops the session (the next call
    /// chooses the version again), and with `retry` 5xx, 429 and BUSY_ENTITY are retried within the budget.
    async fn send(&self, request: &Request, retry: bool) -> Result<Answer, Failure> {
        let started = tokio::time::Instant::now();
        let mut attempt = 0u32;
        let mut logged_in_again = false;
        loop {
            let session = self.session().await.map_err(|e| Failure {
                refusal: match e {
                    DriverError::Unauthorized { .. } => Refusal::Unauthenticated,
                    DriverError::Invalid { .. } | DriverError::Unsupported { .. } => Refusal::Invalid,
                    _ => Refusal::Unavailable,
                },
                message: e.to_string(),
                retry_after: e.retry_after().unwrap_or(Duration::ZERO),
            })?;
            let accept = match request.api {
                Api::Legacy => format!("application/*+xml;version={}", session.version),
                Api::Cloud => format!("application/json;version={}", session.version),
            };
            let failure = match self
                .exchange(request, Some(Credential::Bearer(&session.token)), &accept)
                .await
            {
                Ok(answer) => return Ok(answer),
                Err(failure) => failure,
            };
            match failure.refusal {
                // An expired session: a request refused with 401 was not carried out, so repeating it is safe.
                Refusal::Unauthenticated if !logged_in_again => {
                    logged_in_again = true;
                    self.forget_session(&session).await;
                    continue;
                }
                Refusal::VersionNotServed => {
                    self.forget_session(&session).await;
                    return Err(failure);
                }
                Refusal::Unavailable | Refusal::Throttled | Refusal::Busy if retry => {}
                _ => return Err(failure),
            }
            attempt += 1;
            let wait = match failure.refusal {
                Refusal::Throttled => failure.retry_after,
                _ => backoff(attempt),
            };
            if attempt > self.max_retries || started.elapsed() + wait > self.retry_budget {
                return Err(failure);
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// One request through the endpoint's limits, and its answer.
    async fn exchange(
        &self,
        request: &Request,
        credential: Option<Credential<'_>>,
        accept: &str,
    ) -> Result<Answer, Failure> {
        let _slot = self.limits.acquire().await.map_err(|retry_after| Failure {
            refusal: Refusal::Throttled,
            message: "this driver's own rate limit".into(),
            retry_after,
        })?;
        let started = std::time::Instant::now();
        let result = self.exchange_now(request, credential, accept).await;
        if let Err(failure) = &result
            && failure.refusal == Refusal::Throttled
        {
            // The endpoint throttles this client, not one entity: hold every call.
            self.limits
                .hold_until(tokio::time::Instant::now() + failure.retry_after);
        }
        if let Some(observer) = &self.observer {
            let outcome = match &result {
                Ok(_) => "Success",
                Err(failure) => DriverError::from(Failure {
                    refusal: failure.refusal,
                    message: String::new(),
                    retry_after: failure.retry_after,
                })
                .reason(),
            };
            observer.observe(outcome, started.elapsed());
        }
        result
    }

    async fn exchange_now(
        &self,
        request: &Request,
        credential: Option<Credential<'_>>,
        accept: &str,
    ) -> Result<Answer, Failure> {
        let what = format!("{} {}", request.method, request.url.path());
        let mut builder = self
            .client
            .request(request.method.clone(), request.url.clone())
            .timeout(self.timeout)
            .header(ACCEPT, accept);
        builder = match credential {
            Some(Credential::Basic(user, password)) => builder.basic_auth(user, Some(password.expose())),
            Some(Credential::Bearer(token)) => builder.bearer_auth(token.expose()),
            None => builder,
        };
        if let Some(tenant) = &request.tenant {
            builder = builder.header("X-VMWARE-VCLOUD-TENANT-CONTEXT", tenant);
        }
        if let Some((content_type, body)) = &request.body {
            builder = builder.header(CONTENT_TYPE, *content_type).body(body.clone());
        }
        let response = builder.send().await.map_err(|e| {
            let e = e.without_url();
            unavailable(format!("{what} failed: {}", describe(&e)))
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.map_err(|e| {
            let e = e.without_url();
            unavailable(format!("{what}: reading the answer failed: {}", describe(&e)))
        })?;
        tracing::debug!(method = %request.method, path = request.url.path(), status = status.as_u16(), "Cloud Director answered");
        if status.is_success() {
            // The login's token comes in a header; tasks of CloudAPI writes in Location.
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
            return Ok(Answer {
                status,
                access_token: header("X-VMWARE-VCLOUD-ACCESS-TOKEN"),
                location: header(LOCATION.as_str()),
                body,
            });
        }
        let (code, message) = error_of(&body).unwrap_or_else(|| (String::new(), body.chars().take(200).collect()));
        let refusal = rules::classify(status, &code, headers.contains_key(RETRY_AFTER));
        let code = if code.is_empty() {
            String::new()
        } else {
            format!(", {code}")
        };
        Err(Failure {
            refusal,
            message: format!("{what}: HTTP {}{code}: {}", status.as_u16(), message.trim()),
            retry_after: retry_after(&headers),
        })
    }

    async fn get(&self, path: &str, api: Api) -> Result<Answer, Failure> {
        self.send(&self.request(Method::GET, self.url(path), api), true).await
    }

    /// A legacy entity, or `None` where Cloud Director says 403 (its "not found").
    async fn get_entity<T: DeserializeOwned>(&self, what: &str, path: &str) -> DriverResult<Option<T>> {
        match self.get(path, Api::Legacy).await {
            Ok(answer) => xml::parse(what, &answer.body)
                .map(Some)
                .map_err(DriverError::unavailable),
            Err(Failure {
                refusal: Refusal::NotFound,
                ..
            }) => Ok(None),
            Err(failure) => Err(failure.into()),
        }
    }

    /// A legacy write with an XML body; `retry` only for writes that are safe to repeat.
    async fn write(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, String)>,
        retry: bool,
    ) -> Result<Answer, Failure> {
        let mut request = self.request(method, self.url(path), Api::Legacy);
        request.body = body;
        self.send(&request, retry).await
    }

    /// Every value of a CloudAPI list (`path` ends in `/`), page by page, with a FIQL filter when the value
    /// allows one; the caller matches exactly.
    async fn cloud_list<T: DeserializeOwned>(
        &self,
        path: &str,
        filter: Option<String>,
        tenant: Option<&str>,
    ) -> DriverResult<Vec<T>> {
        let mut values = Vec::new();
        let mut page = 1u64;
        loop {
            let mut url = self.url(&format!("/cloudapi/1.0.0/{path}"));
            {
                let mut query = url.query_pairs_mut();
                if let Some(filter) = &filter {
                    query.append_pair("filter", filter);
                }
                query
                    .append_pair("page", &page.to_string())
                    .append_pair("pageSize", "128");
            }
            let mut request = self.request(Method::GET, url, Api::Cloud);
            request.tenant = tenant.map(str::to_owned);
            let answer = self.send(&request, true).await?;
            let list: Page<T> = serde_json::from_str(&answer.body).map_err(|e| {
                DriverError::unavailable(format!("Cloud Director's {path} list is not the JSON expected: {e}"))
            })?;
            values.extend(list.values);
            if page >= list.page_count {
                return Ok(values);
            }
            page += 1;
        }
    }

    /// The attributes of every record of a legacy query, page by page.
    async fn query(&self, kind: &str, name: &str) -> DriverResult<Vec<BTreeMap<String, String>>> {
        let mut records = Vec::new();
        let mut page = 1u64;
        loop {
            let mut url = self.url("/api/query");
            {
                let mut query = url.query_pairs_mut();
                query.append_pair("type", kind);
                if let Some(filter) = rules::fiql_equals("name", name) {
                    query.append_pair("filter", &filter);
                }
                query
                    .append_pair("page", &page.to_string())
                    .append_pair("pageSize", "128");
            }
            let answer = self.send(&self.request(Method::GET, url, Api::Legacy), true).await?;
            let found = xml::parse_query(&answer.body).map_err(DriverError::unavailable)?;
            let more = found.has_more();
            records.extend(
                found
                    .records
                    .into_iter()
                    .filter(|r| r.get("name").map(String::as_str) == Some(name)),
            );
            if !more {
                return Ok(records);
            }
            page += 1;
        }
    }

    /// The task an asynchronous write answered with: in Location (CloudAPI), as the body (deletes,
    /// updates), or embedded in the entity it created.
    fn task_of(answer: &Answer) -> Option<String> {
        if let Some(location) = answer.location.as_ref().filter(|l| l.contains("/task/")) {
            return Some(location.clone());
        }
        if let Ok(task) = quick_xml::de::from_str::<xml::Task>(&answer.body)
            && task.href.contains("/task/")
        {
            return Some(task.href);
        }
        #[derive(Deserialize)]
        struct WithTasks {
            #[serde(rename = "Tasks", default)]
            tasks: xml::Tasks,
        }
        let entity: WithTasks = quick_xml::de::from_str(&answer.body).ok()?;
        entity.tasks.tasks.into_iter().map(|t| t.href).find(|h| !h.is_empty())
    }

    fn track(&self, key: String, answer: &Answer, operation: Operation) {
        let mut tracked = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        match Self::task_of(answer) {
            Some(task) => {
                tracked.insert(
                    key,
                    Tracked {
                        task,
                        operation,
                        failure: None,
                    },
                );
            }
            None => {
                tracked.remove(&key);
            }
        }
    }

    fn forget(&self, key: &str) {
        self.tracked.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }

    /// The operation running on an entity and how it stands: the one this driver started (followed
    /// through its task), else one of the tasks Cloud Director embeds in the entity.
    async fn operation_on(&self, key: &str, embedded: &xml::Tasks) -> DriverResult<Option<(Operation, TaskState)>> {
        let tracked = self.tracked.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned();
        if let Some(tracked) = tracked {
            if let Some(failure) = tracked.failure {
                return Ok(Some((tracked.operation, TaskState::Failed(failure))));
            }
            let task: Option<xml::Task> = self.get_entity("task", &tracked.task).await?;
            // A task Cloud Director no longer shows has ended long ago.
            let state = task.map_or(TaskState::Succeeded, |t| {
                let error = t.error.as_ref().map(|e| (e.minor.as_str(), e.message.as_str()));
                rules::task_state(&t.status, error)
            });
            match &state {
                TaskState::Running => return Ok(Some((tracked.operation, state))),
                TaskState::Succeeded => self.forget(key),
                TaskState::Failed(why) => {
                    if tracked.operation == Operation::Create {
                        let mut all = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
                        if let Some(entry) = all.get_mut(key) {
                            entry.failure = Some(why.clone());
                        }
                    } else {
                        self.forget(key);
                    }
                    return Ok(Some((tracked.operation, state)));
                }
            }
        }
        Ok(embedded
            .tasks
            .iter()
            .find(|t| rules::is_running(&t.status))
            .map(|t| (rules::operation_of(&t.operation_name), TaskState::Running)))
    }

    // -----------------------------------------------------------------------------------------------
    // Organisations

    async fn find_org(&self, name: &str) -> DriverResult<Option<Org>> {
        let orgs: Vec<Org> = self.cloud_list("orgs/", rules::fiql_equals("name", name), None).await?;
        Ok(orgs.into_iter().find(|o| o.name == name))
    }

    async fn require_org(&self, name: &str) -> DriverResult<Org> {
        self.find_org(name).await?.ok_or_else(|| DriverError::NotFound {
            message: format!("organisation {name} not found on Cloud Director"),
        })
    }

    fn admin_org_path(org: &Org) -> String {
        format!("/api/admin/org/{}", rules::uuid_of(&org.id))
    }

    /// Starts deleting an entity the Cloud Director way: disable it, then delete it with its children,
    /// following the task. `Gone` once it no longer exists.
    async fn delete_entity(
        &self,
        key: &str,
        path: &str,
        enabled: bool,
        embedded: &xml::Tasks,
    ) -> DriverResult<Deletion> {
        match self.operation_on(key, embedded).await? {
            Some((Operation::Delete, TaskState::Running)) => return Ok(Deletion::InProgress),
            Some((_, TaskState::Running)) => {
                return Err(DriverError::Conflict {
                    message: format!("{path} is busy with another operation; deleting it once that ends"),
                });
            }
            Some((Operation::Delete, TaskState::Failed(why))) => {
                return Err(DriverError::unavailable(format!(
                    "Cloud Director failed to delete {path}: {why}"
                )));
            }
            _ => {}
        }
        if enabled {
            let answer = match self
                .write(Method::POST, &format!("{path}/action/disable"), None, true)
                .await
            {
                Ok(answer) => answer,
                Err(Failure {
                    refusal: Refusal::NotFound,
                    ..
                }) => return Ok(Deletion::Gone),
                Err(failure) => return Err(failure.into()),
            };
            if Self::task_of(&answer).is_some() {
                self.track(key.to_owned(), &answer, Operation::Delete);
                return Ok(Deletion::InProgress);
            }
        }
        match self
            .write(Method::DELETE, &format!("{path}?force=true&recursive=true"), None, true)
            .await
        {
            Ok(answer) => {
                self.track(key.to_owned(), &answer, Operation::Delete);
                Ok(Deletion::InProgress)
            }
            Err(Failure {
                refusal: Refusal::NotFound,
                ..
            }) => {
                self.forget(key);
                Ok(Deletion::Gone)
            }
            Err(failure) => Err(failure.into()),
        }
    }

    // -----------------------------------------------------------------------------------------------
    // Users

    /// User management needs a password session: Cloud Director refuses it to API-token sessions.
    fn check_user_management(&self) -> DriverResult<()> {
        match self.settings.credential {
            CloudDirectorCredential::Password => Ok(()),
            CloudDirectorCredential::ApiToken => Err(DriverError::Unsupported {
                operation: "user management with an API token: Cloud Director refuses it to API-token sessions; \
                            put the password of a provider user in the credentials Secret and set \
                            cloudDirector.credential to Password"
                    .into(),
            }),
        }
    }

    async fn find_user(&self, org: &str, username: &str) -> DriverResult<Option<xml::User>> {
        let Some(org) = self.find_org(org).await? else {
            return Ok(None);
        };
        let Some(admin) = self
            .get_entity::<xml::AdminOrg>("organisation", &Self::admin_org_path(&org))
            .await?
        else {
            return Ok(None);
        };
        let Some(reference) = admin.users.users.into_iter().find(|u| u.name == username) else {
            return Ok(None);
        };
        self.get_entity("user", &reference.href).await
    }

    fn external_user(&self, user: &xml::User) -> ExternalUser {
        ExternalUser {
            external_id: user.id.clone(),
            username: user.name.clone(),
            email: user.email.clone(),
            role: rules::endpoint_role(&self.settings.roles, &user.role.name),
            state: UserState::Active,
            created_at: Timestamp::now(),
        }
    }

    /// The href of the Cloud Director role of `endpoint_role` in the organisation, looked up by name in its
    /// tenant context (each organisation has its own copy of every role).
    async fn role_href(&self, org: &Org, endpoint_role: &str) -> DriverResult<String> {
        let name = rules::vcd_role(&self.settings.roles, endpoint_role).ok_or_else(|| DriverError::Invalid {
            message: format!("role {endpoint_role} has no Cloud Director role"),
        })?;
        let tenant = rules::uuid_of(&org.id);
        let roles: Vec<RoleRecord> = self
            .cloud_list("roles/", rules::fiql_equals("name", name), Some(tenant))
            .await?;
        let role = roles
            .into_iter()
            .find(|r| r.name == name)
            .ok_or_else(|| DriverError::Invalid {
                message: format!(
                    "Cloud Director role {name:?} (for {endpoint_role}) does not exist in organisation {}; set \
                 cloudDirector.roles to roles that exist",
                    org.name
                ),
            })?;
        Ok(self
            .url(&format!("/api/admin/role/{}", rules::uuid_of(&role.id)))
            .to_string())
    }

    // -----------------------------------------------------------------------------------------------
    // VDCs

    /// The provider VDC, storage profile and network pool of new VDCs, looked up by name once.
    async fn placement(&self) -> DriverResult<xml::VdcPlacement> {
        let mut cached = self.placement.lock().await;
        if let Some(placement) = cached.as_ref() {
            return Ok(placement.clone());
        }
        let missing = |what: &str, name: &str, field: &str| DriverError::Invalid {
            message: format!("{what} {name:?} not found on Cloud Director; check cloudDirector.{field}"),
        };
        let settings = &self.settings;
        let provider_vdc = self
            .query("providerVdc", &settings.provider_vdc)
            .await?
            .into_iter()
            .find_map(|r| r.get("href").cloned())
            .ok_or_else(|| missing("provider VDC", &settings.provider_vdc, "providerVdc"))?;
        let profiles = self
            .query("providerVdcStorageProfile", &settings.storage_profile)
            .await?;
        // A storage profile name can exist in several provider VDCs: take the one of ours.
        let storage_profile = profiles
            .iter()
            .find(|r| {
                r.get("providerVdc")
                    .is_none_or(|p| rules::uuid_of(p) == rules::uuid_of(&provider_vdc))
            })
            .and_then(|r| r.get("href").cloned())
            .ok_or_else(|| missing("storage profile", &settings.storage_profile, "storageProfile"))?;
        let network_pool = match &settings.network_pool {
            Some(pool) => Some(
                self.query("networkPool", pool)
                    .await?
                    .into_iter()
                    .find_map(|r| r.get("href").cloned())
                    .ok_or_else(|| missing("network pool", pool, "networkPool"))?,
            ),
            None => None,
        };
        let placement = xml::VdcPlacement {
            provider_vdc,
            storage_profile,
            network_pool,
        };
        *cached = Some(placement.clone());
        Ok(placement)
    }

    /// The VDC of this name in the organisation, with its storage limit (MB) from its query record.
    async fn find_vdc(&self, org: &str, name: &str) -> DriverResult<Option<(xml::AdminVdc, u64)>> {
        let records = self.query("adminOrgVdc", name).await?;
        let Some(record) = records.into_iter().find(|r| r.get("orgName").is_none_or(|o| o == org)) else {
            return Ok(None);
        };
        let Some(href) = record.get("href") else {
            return Ok(None);
        };
        let storage_mb = record.get("storageLimitMB").and_then(|v| v.parse().ok()).unwrap_or(0);
        let vdc = self
            .get_entity("VDC", &format!("/api/admin/vdc/{}", rules::uuid_of(href)))
            .await?;
        Ok(vdc.map(|vdc| (vdc, storage_mb)))
    }

    fn vcpu_mhz(&self) -> u64 {
        u64::try_from(self.settings.vcpu_speed_mhz).unwrap_or(1000).max(1)
    }

    fn instance(
        &self,
        org: &str,
        vdc: &xml::AdminVdc,
        storage_mb: u64,
        state: InstanceState,
        message: Option<String>,
    ) -> ExternalInstance {
        let size = rules::VdcSize {
            cpu_mhz: vdc.compute.cpu.size(),
            memory_mb: vdc.compute.memory.size(),
            storage_mb,
            vcpu_mhz: vdc.vcpu_mhz2.or(vdc.vcpu_mhz).unwrap_or_else(|| self.vcpu_mhz()),
        };
        let resources = rules::resources(&size);
        let uuid = rules::uuid_of(&vdc.id);
        let mut portal = self.base.clone();
        portal.set_path(&format!(
            "{}/tenant/{org}/vdcs/{uuid}",
            self.base.path().trim_end_matches('/')
        ));
        let (service_type, parameters) = rules::read_description(&vdc.description)
            .unwrap_or_else(|| (usage::UNKNOWN_SERVICE.to_owned(), BTreeMap::new()));
        ExternalInstance {
            external_id: vdc.id.clone(),
            name: vdc.name.clone(),
            service_type,
            resources,
            parameters,
            state,
            access_url: (state == InstanceState::Ready).then(|| portal.to_string()),
            message,
            created_at: Timestamp::now(),
            updated_at: Timestamp::now(),
        }
    }

    /// The href of the VDC's storage profile (the endpoint's, else its first).
    fn storage_profile_of<'a>(&self, vdc: &'a xml::AdminVdc) -> Option<&'a str> {
        let profiles = &vdc.storage_profiles.profiles;
        profiles
            .iter()
            .find(|p| p.name == self.settings.storage_profile)
            .or(profiles.first())
            .map(|p| p.href.as_str())
    }

    /// The VDC of this name and the instance it is, with any operation on it followed.
    async fn observe_vdc(&self, org: &str, name: &str) -> DriverResult<Option<(xml::AdminVdc, ExternalInstance)>> {
        let key = vdc_key(org, name);
        let Some((vdc, storage_mb)) = self.find_vdc(org, name).await? else {
            let tracked = self.tracked.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
            if let Some(Tracked {
                operation: Operation::Create,
                task,
                ..
            }) = tracked
            {
                // A VDC whose create failed and that Cloud Director removed: say why once, then create anew.
                let task: Option<xml::Task> = self.get_entity("task", &task).await?;
                if let Some(TaskState::Failed(why)) = task.map(|t| {
                    rules::task_state(
                        &t.status,
                        t.error.as_ref().map(|e| (e.minor.as_str(), e.message.as_str())),
                    )
                }) {
                    return Err(DriverError::unavailable(format!(
                        "Cloud Director failed to create VDC {name}: {why}; Navigator creates it again"
                    )));
                }
            }
            return Ok(None);
        };
        let (state, message) = match self.operation_on(&key, &vdc.tasks).await? {
            Some((operation, TaskState::Running)) => (rules::vdc_state(vdc.status, Some(operation)), None),
            Some((Operation::Create, TaskState::Failed(why))) => (InstanceState::Failed, Some(why)),
            Some((operation, TaskState::Failed(why))) => {
                let doing = if operation == Operation::Delete {
                    "delete"
                } else {
                    "resize"
                };
                return Err(DriverError::Conflict {
                    message: format!("Cloud Director failed to {doing} VDC {name}: {why}; Navigator tries again"),
                });
            }
            Some((_, TaskState::Succeeded)) | None => (rules::vdc_state(vdc.status, None), None),
        };
        let message = message.or_else(|| {
            (state == InstanceState::Failed).then(|| format!("Cloud Director could not create VDC {name}"))
        });
        let instance = self.instance(org, &vdc, storage_mb, state, message);
        Ok(Some((vdc, instance)))
    }

    fn allocation_model(&self, service_type: &str) -> DriverResult<crate::api::cloud_endpoint::AllocationModel> {
        let offered = self.settings.service_types();
        offered.get(service_type).copied().ok_or_else(|| DriverError::Invalid {
            message: format!(
                "service type {service_type} is not offered by this Cloud Director endpoint (offered: {}); \
                 see cloudDirector.allocationModels",
                offered.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        })
    }

    async fn audit_trail(&self, org: &str, window: UsageWindow) -> DriverResult<Vec<usage::AuditEvent>> {
        let mut filter = format!("timestamp=lt={}", window.to);
        if let Some(tenant) = rules::fiql_equals("tenant.name", org) {
            filter = format!("{filter};{tenant}");
        }
        #[derive(Deserialize)]
        struct Tenant {
            #[serde(default)]
            tenant: usage::EntityRef,
            #[serde(flatten)]
            event: usage::AuditEvent,
        }
        let events: Vec<Tenant> = self.cloud_list("auditTrail/", Some(filter), None).await?;
        Ok(events
            .into_iter()
            .filter(|e| e.tenant.name == org)
            .map(|e| e.event)
            .collect())
    }
}

/// How a request authenticates.
#[derive(Clone, Copy)]
enum Credential<'a> {
    Basic(&'a str, &'a Secret),
    Bearer(&'a Secret),
}

/// A refused login is the credentials' fault; anything else is the endpoint's.
fn login_failure(failure: Failure, what: &str) -> DriverError {
    match failure.refusal {
        Refusal::Unauthenticated | Refusal::NotFound => DriverError::Unauthorized {
            message: format!("Cloud Director refused {what}: {}", failure.message),
        },
        _ => failure.into(),
    }
}

#[async_trait]
impl Driver for CloudDirectorDriver {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            orgs: CreateKey::ServerAssigned,
            users: CreateKey::ServerAssigned,
            instances: CreateKey::ServerAssigned,
            tickets: None,
            usage: true,
            create_grace: self.create_grace,
        }
    }

    async fn info(&self) -> DriverResult<EndpointInfo> {
        let session = self.session().await?;
        self.placement().await?;
        let metrics = vec![
            MetricInfo {
                name: "vcpu-hours".into(),
                unit: "vCPU-hour".into(),
            },
            MetricInfo {
                name: "memory-gib-hours".into(),
                unit: "GiB-hour".into(),
            },
            MetricInfo {
                name: "storage-gib-hours".into(),
                unit: "GiB-hour".into(),
            },
        ];
        Ok(EndpointInfo {
            version: format!("Cloud Director API {}", session.version),
            api_version: session.version,
            service_types: self
                .settings
                .service_types()
                .into_iter()
                .map(|(name, model)| ServiceTypeInfo {
                    name,
                    description: format!("An organisation VDC ({model:?} allocation)"),
                    metrics: metrics.clone(),
                })
                .collect(),
            roles: rules::ENDPOINT_ROLES
                .iter()
                .map(|role| RoleInfo {
                    name: (*role).into(),
                    description: format!(
                        "Cloud Director role {:?}",
                        rules::vcd_role(&self.settings.roles, role).unwrap_or_default()
                    ),
                })
                .collect(),
            support: false,
            assigns_ids: true,
        })
    }

    async fn observe_org(&self, name: &str) -> DriverResult<Option<ExternalOrg>> {
        Ok(self.find_org(name).await?.map(|o| o.external()))
    }

    async fn create_org(&self, name: &str, desired: &OrgDesired) -> DriverResult<ExternalOrg> {
        let body = xml::new_org(name, &desired.display_name, desired.enabled);
        match self
            .write(
                Method::POST,
                "/api/admin/orgs",
                Some((xml::ORG_CONTENT_TYPE, body)),
                false,
            )
            .await
        {
            Ok(answer) => {
                let org: xml::AdminOrg = xml::parse("organisation", &answer.body).map_err(DriverError::unavailable)?;
                self.track(org_key(name), &answer, Operation::Create);
                Ok(Org {
                    id: org.id,
                    name: org.name,
                    display_name: org.full_name,
                    is_enabled: org.is_enabled,
                }
                .external())
            }
            // Already there (an earlier create whose answer was lost): adopt it.
            Err(Failure {
                refusal: Refusal::DuplicateName,
                message,
                ..
            }) => self.observe_org(name).await?.ok_or(DriverError::Conflict { message }),
            Err(failure) => Err(failure.into()),
        }
    }

    async fn apply_org(&self, name: &str, desired: &OrgDesired) -> DriverResult<ExternalOrg> {
        let org = self.require_org(name).await?;
        let path = Self::admin_org_path(&org);
        if org.display_name != desired.display_name {
            let body = xml::new_org(name, &desired.display_name, org.is_enabled);
            let answer = self
                .write(Method::PUT, &path, Some((xml::ORG_CONTENT_TYPE, body)), true)
                .await?;
            self.track(org_key(name), &answer, Operation::Update);
        }
        if org.is_enabled != desired.enabled {
            let action = if desired.enabled { "enable" } else { "disable" };
            self.write(Method::POST, &format!("{path}/action/{action}"), None, true)
                .await?;
        }
        Ok(Org {
            display_name: desired.display_name.clone(),
            is_enabled: desired.enabled,
            ..org
        }
        .external())
    }

    async fn delete_org(&self, name: &str) -> DriverResult<Deletion> {
        let Some(org) = self.find_org(name).await? else {
            self.forget(&org_key(name));
            return Ok(Deletion::Gone);
        };
        self.delete_entity(
            &org_key(name),
            &Self::admin_org_path(&org),
            org.is_enabled,
            &xml::Tasks::default(),
        )
        .await
    }

    async fn observe_user(&self, org: &str, username: &str) -> DriverResult<Option<ExternalUser>> {
        Ok(self.find_user(org, username).await?.map(|u| self.external_user(&u)))
    }

    async fn create_user(&self, org: &str, username: &str, desired: &UserDesired) -> DriverResult<ExternalUser> {
        self.check_user_management()?;
        let tenant = self.require_org(org).await?;
        let role = self.role_href(&tenant, &desired.role).await?;
        let password = new_password();
        let body = xml::user(username, &desired.email, &role, Some(&password));
        let path = format!("{}/users", Self::admin_org_path(&tenant));
        match self
            .write(Method::POST, &path, Some((xml::USER_CONTENT_TYPE, body)), false)
            .await
        {
            Ok(answer) => {
                let user: xml::User = xml::parse("user", &answer.body).map_err(DriverError::unavailable)?;
                Ok(self.external_user(&user))
            }
            Err(Failure {
                refusal: Refusal::DuplicateName,
                message,
                ..
            }) => self
                .observe_user(org, username)
                .await?
                .ok_or(DriverError::Conflict { message }),
            Err(failure) => Err(failure.into()),
        }
    }

    async fn apply_user(&self, org: &str, username: &str, desired: &UserDesired) -> DriverResult<ExternalUser> {
        self.check_user_management()?;
        let tenant = self.require_org(org).await?;
        let user = self
            .find_user(org, username)
            .await?
            .ok_or_else(|| DriverError::NotFound {
                message: format!("user {username} not found in organisation {org}"),
            })?;
        let role = self.role_href(&tenant, &desired.role).await?;
        let body = xml::user(username, &desired.email, &role, None);
        self.write(Method::PUT, &user.href, Some((xml::USER_CONTENT_TYPE, body)), true)
            .await?;
        Ok(ExternalUser {
            email: desired.email.clone(),
            role: desired.role.clone(),
            ..self.external_user(&user)
        })
    }

    async fn delete_user(&self, org: &str, username: &str) -> DriverResult<Deletion> {
        self.check_user_management()?;
        let Some(user) = self.find_user(org, username).await? else {
            return Ok(Deletion::Gone);
        };
        match self.write(Method::DELETE, &user.href, None, true).await {
            Ok(answer) if answer.status == StatusCode::ACCEPTED && Self::task_of(&answer).is_some() => {
                Ok(Deletion::InProgress)
            }
            Ok(_)
            | Err(Failure {
                refusal: Refusal::NotFound,
                ..
            }) => Ok(Deletion::Gone),
            Err(failure) => Err(failure.into()),
        }
    }

    async fn observe_instance(&self, org: &str, name: &str) -> DriverResult<Option<ExternalInstance>> {
        Ok(self.observe_vdc(org, name).await?.map(|(_, instance)| instance))
    }

    async fn create_instance(
        &self,
        org: &str,
        name: &str,
        desired: &InstanceDesired,
    ) -> DriverResult<ExternalInstance> {
        let model = self.allocation_model(&desired.service_type)?;
        let tenant = self.require_org(org).await?;
        let placement = self.placement().await?;
        let size = rules::vdc_size(&desired.resources, self.vcpu_mhz());
        let body = xml::create_vdc(
            name,
            &rules::vdc_description(&desired.service_type, &desired.parameters),
            &size,
            model,
            &placement,
        );
        let path = format!("{}/vdcsparams", Self::admin_org_path(&tenant));
        match self
            .write(Method::POST, &path, Some((xml::CREATE_VDC_CONTENT_TYPE, body)), false)
            .await
        {
            Ok(answer) => {
                let vdc: xml::AdminVdc = xml::parse("VDC", &answer.body).map_err(DriverError::unavailable)?;
                self.track(vdc_key(org, name), &answer, Operation::Create);
                Ok(ExternalInstance {
                    resources: desired.resources,
                    ..self.instance(org, &vdc, 0, InstanceState::Provisioning, None)
                })
            }
            Err(Failure {
                refusal: Refusal::DuplicateName,
                message,
                ..
            }) => self
                .observe_instance(org, name)
                .await?
                .ok_or(DriverError::Conflict { message }),
            Err(failure) => Err(failure.into()),
        }
    }

    async fn apply_instance(&self, org: &str, name: &str, desired: &InstanceDesired) -> DriverResult<ExternalInstance> {
        let (vdc, current) = self
            .observe_vdc(org, name)
            .await?
            .ok_or_else(|| DriverError::NotFound {
                message: format!("VDC {name} not found in organisation {org}"),
            })?;
        // One operation at a time on an entity: Cloud Director would answer BUSY_ENTITY.
        if current.state.is_in_progress() || current.is_up_to_date(desired) {
            return Ok(current);
        }
        if current.service_type != desired.service_type && current.service_type != usage::UNKNOWN_SERVICE {
            return Err(DriverError::Invalid {
                message: format!(
                    "VDC {name} was made for service type {}, not {}; a service type cannot change",
                    current.service_type, desired.service_type
                ),
            });
        }
        let model = self.allocation_model(&desired.service_type)?;
        let size = rules::vdc_size(&desired.resources, self.vcpu_mhz());
        // Storage first: it is synchronous, and the VDC's own update then runs alone.
        if current.resources.storage_gib != desired.resources.storage_gib
            && let Some(profile) = self.storage_profile_of(&vdc)
        {
            let body = xml::storage_profile(size.storage_mb);
            self.write(
                Method::PUT,
                profile,
                Some((xml::STORAGE_PROFILE_CONTENT_TYPE, body)),
                true,
            )
            .await
            // Its 403 would read as "not found": say what was refused instead.
            .map_err(|failure| match failure.refusal {
                Refusal::NotFound => DriverError::unavailable(format!(
                    "Cloud Director refused to change the storage limit of VDC {name}: {}",
                    failure.message
                )),
                _ => failure.into(),
            })?;
        }
        let compute_changed = current.resources.vcpu != desired.resources.vcpu
            || current.resources.memory_gib != desired.resources.memory_gib
            || current.service_type != desired.service_type
            || current.parameters != desired.parameters;
        let mut state = current.state;
        if compute_changed {
            let body = xml::update_vdc(
                name,
                &rules::vdc_description(&desired.service_type, &desired.parameters),
                &size,
                model,
            );
            let path = format!("/api/admin/vdc/{}", rules::uuid_of(&vdc.id));
            let answer = self
                .write(Method::PUT, &path, Some((xml::VDC_CONTENT_TYPE, body)), true)
                .await?;
            self.track(vdc_key(org, name), &answer, Operation::Update);
            if Self::task_of(&answer).is_some() {
                state = InstanceState::Updating;
            }
        }
        Ok(ExternalInstance {
            service_type: desired.service_type.clone(),
            resources: desired.resources,
            parameters: desired.parameters.clone(),
            state,
            access_url: None,
            ..current
        })
    }

    async fn delete_instance(&self, org: &str, name: &str) -> DriverResult<Deletion> {
        let key = vdc_key(org, name);
        let Some((vdc, _)) = self.find_vdc(org, name).await? else {
            self.forget(&key);
            return Ok(Deletion::Gone);
        };
        // A VDC whose create failed is deleted like any other.
        if self
            .tracked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .is_some_and(|t| t.failure.is_some())
        {
            self.forget(&key);
        }
        let path = format!("/api/admin/vdc/{}", rules::uuid_of(&vdc.id));
        self.delete_entity(&key, &path, vdc.is_enabled, &vdc.tasks).await
    }

    async fn usage(&self, org: &str, window: UsageWindow) -> DriverResult<Vec<UsageRecord>> {
        let events = self.audit_trail(org, window).await?;
        // Descriptions of VDCs whose events do not carry one (still existing VDCs only).
        let mut descriptions = BTreeMap::new();
        let without: std::collections::BTreeSet<&str> = events
            .iter()
            .filter(|e| e.event_type.starts_with("com/vmware/cloud/event/vdc/"))
            .filter(|e| !e.additional_properties.contains_key("vdc.description"))
            .map(|e| e.entity.id.as_str())
            .collect();
        for id in without {
            let path = format!("/api/admin/vdc/{}", rules::uuid_of(id));
            if let Some(vdc) = self.get_entity::<xml::AdminVdc>("VDC", &path).await? {
                descriptions.insert(id.to_owned(), vdc.description);
            }
        }
        Ok(usage::usage_from_audit_trail(&events, window, &descriptions))
    }

    async fn create_ticket(&self, _idempotency_key: &str, _desired: &TicketDesired) -> DriverResult<Ticket> {
        Err(no_tickets())
    }

    async fn find_ticket(&self, _idempotency_key: &str) -> DriverResult<Option<Ticket>> {
        Err(no_tickets())
    }

    async fn get_ticket(&self, _id: &str) -> DriverResult<Option<Ticket>> {
        Err(no_tickets())
    }

    async fn add_comment(&self, _id: &str, _idempotency_key: &str, _body: &str) -> DriverResult<Comment> {
        Err(no_tickets())
    }

    async fn close_ticket(&self, _id: &str) -> DriverResult<Ticket> {
        Err(no_tickets())
    }
}

fn no_tickets() -> DriverError {
    DriverError::Unsupported {
        operation: "support tickets: Cloud Director has no support API; a provider's support goes through its \
                    support endpoint"
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> CloudDirectorSettings {
        serde_json::from_value(serde_json::json!({
            "username": "administrator", "providerVdc": "pvdc", "storageProfile": "gold"
        }))
        .unwrap()
    }

    fn driver(url: &str) -> CloudDirectorDriver {
        CloudDirectorDriver::new(CloudDirectorConfig {
            http: HttpDriverConfig::new(url, "s3cr3t-password"),
            settings: settings(),
        })
        .unwrap()
    }

    #[test]
    fn the_password_never_appears_in_debug_output() {
        let driver = driver("https://vcd.example");
        assert!(!format!("{driver:?}").contains("s3cr3t"), "{driver:?}");
    }

    #[test]
    fn paths_and_hrefs_land_on_the_configured_endpoint() {
        let driver = driver("https://vcd.example/prefix/");
        assert_eq!(
            driver.url("/api/versions").as_str(),
            "https://vcd.example/prefix/api/versions"
        );
        // An href naming another host (VCD's public address behind a proxy) keeps only path and query.
        assert_eq!(
            driver.url("https://public.example/api/task/t1?x=1").as_str(),
            "https://vcd.example/api/task/t1?x=1"
        );
    }

    #[test]
    fn the_settings_defaults_offer_compute_with_the_default_roles() {
        let settings = settings();
        assert_eq!(settings.vcpu_speed_mhz, 2000);
        assert_eq!(settings.credential, CloudDirectorCredential::Password);
        assert_eq!(settings.service_types().keys().collect::<Vec<_>>(), vec!["compute"]);
        assert_eq!(settings.roles.customer_administrator, "Organization Administrator");
    }

    #[test]
    fn tasks_are_found_where_cloud_director_puts_them() {
        let answer = |location: Option<&str>, body: &str| Answer {
            status: StatusCode::ACCEPTED,
            access_token: None,
            location: location.map(str::to_owned),
            body: body.to_owned(),
        };
        assert_eq!(
            CloudDirectorDriver::task_of(&answer(Some("https://h/api/task/t1"), "")).as_deref(),
            Some("https://h/api/task/t1")
        );
        let task = r#"<Task xmlns="http://www.vmware.com/vcloud/v1.5" href="https://h/api/task/t2" status="running"/>"#;
        assert_eq!(
            CloudDirectorDriver::task_of(&answer(None, task)).as_deref(),
            Some("https://h/api/task/t2")
        );
        let vdc =
            r#"<AdminVdc name="web"><Tasks><Task href="https://h/api/task/t3" status="queued"/></Tasks></AdminVdc>"#;
        assert_eq!(
            CloudDirectorDriver::task_of(&answer(None, vdc)).as_deref(),
            Some("https://h/api/task/t3")
        );
        assert_eq!(CloudDirectorDriver::task_of(&answer(None, "")), None);
    }

    #[test]
    fn error_bodies_are_read_in_both_formats() {
        let legacy = r#"<Error xmlns="http://www.vmware.com/vcloud/v1.5" majorErrorCode="400" minorErrorCode="BUSY_ENTITY" message="The entity is busy"/>"#;
        assert_eq!(
            error_of(legacy),
            Some(("BUSY_ENTITY".into(), "The entity is busy".into()))
        );
        let cloud = r#"{"minorErrorCode":"ACCESS_TO_RESOURCE_IS_FORBIDDEN","message":"no","stackTrace":""}"#;
        assert_eq!(
            error_of(cloud),
            Some(("ACCESS_TO_RESOURCE_IS_FORBIDDEN".into(), "no".into()))
        );
    }

    #[test]
    fn new_passwords_differ_and_mix_character_classes() {
        let (a, b) = (new_password(), new_password());
        assert_ne!(a, b);
        assert!(a.len() >= 30 && a.chars().any(|c| c.is_ascii_digit()) && a.contains('!'));
    }
}
