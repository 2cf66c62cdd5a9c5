//! The emulator's HTTP layer: routes, the gate every API request passes (version, session, faults,
//! request log), and handlers that turn `State`'s answers into VCD's documents. Decisions live in
//! `state`, `query` and `xml`; this file only wires them to requests.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, MatchedPath, Path, Query, Request, State as AxumState};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use base64::Engine;
use jiff::{SignedDuration, Timestamp};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{Notify, watch};

use super::query::{self, ApiVersion, Filter, PageOf, Requested};
use super::state::{EntityKind, NewUser, NewVdc, Operation, Refusal, State, TaskStatus, VdcSpec};
use super::xml::{self, Hrefs};
use crate::simulator::faults::{Fault, FaultConfig, FaultPatch, Faults};
use crate::simulator::stats::{RequestLog, RequestStats, Stats};

/// The provider organisation's name, as VCD calls it.
pub const SYSTEM_ORG: &str = "System";

/// What the emulator was started with that requests consult.
#[derive(Clone, Debug)]
pub struct Settings {
    pub user: String,
    pub password: String,
    pub api_token: Option<String>,
    pub versions: Vec<ApiVersion>,
    pub provision: Duration,
    pub create_time: Duration,
    pub session_ttl: Duration,
}

/// A logged-in session.
#[derive(Clone, Debug)]
pub struct Session {
    pub id: String,
    pub expires: Instant,
    /// Made from an API token: no user management.
    pub from_api_token: bool,
}

/// Faults: the simulator's, plus Cloud Director's own `BUSY_ENTITY` on writes.
pub struct VcdFaults {
    faults: Faults,
    busy_rate: f64,
    busy_rng: StdRng,
}

/// The fault settings as `GET/PUT /sim/faults` show them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VcdFaultConfig {
    #[serde(flatten)]
    pub common: FaultConfig,
    /// Share of writes to an organisation, VDC or user answered 400 `BUSY_ENTITY`.
    pub fault_busy_rate: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VcdFaultPatch {
    #[serde(flatten)]
    pub common: FaultPatch,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault_busy_rate: Option<f64>,
}

impl VcdFaults {
    pub fn new(config: VcdFaultConfig) -> Self {
        VcdFaults {
            busy_rng: StdRng::seed_from_u64(config.common.seed.wrapping_add(1)),
            faults: Faults::new(config.common),
            busy_rate: config.fault_busy_rate,
        }
    }

    pub fn config(&self) -> VcdFaultConfig {
        VcdFaultConfig {
            common: self.faults.config().clone(),
            fault_busy_rate: self.busy_rate,
        }
    }

    fn apply(&mut self, patch: &VcdFaultPatch) -> Result<(), String> {
        if let Some(rate) = patch.fault_busy_rate.filter(|r| !(0.0..=1.0).contains(r)) {
            return Err(format!("faultBusyRate must be between 0 and 1, not {rate}"));
        }
        self.faults.apply(&patch.common)?;
        if let Some(seed) = patch.common.seed {
            self.busy_rng = StdRng::seed_from_u64(seed.wrapping_add(1));
        }
        self.busy_rate = patch.fault_busy_rate.unwrap_or(self.busy_rate);
        Ok(())
    }

    fn busy(&mut self) -> bool {
        self.busy_rate > 0.0 && self.busy_rng.random::<f64>() < self.busy_rate
    }
}

/// What `/sim/stats` counts beyond the request totals.
#[derive(Default)]
struct Counters {
    by_template: BTreeMap<String, u64>,
    creates: BTreeMap<&'static str, BTreeMap<String, u64>>,
}

pub struct Shared {
    state: Mutex<State>,
    sessions: Mutex<HashMap<String, Session>>,
    faults: Mutex<VcdFaults>,
    stats: Stats,
    counters: Mutex<Counters>,
    /// The time `/sim/clock` set, standing still until set again; `None`: the real time.
    clock: Mutex<Option<Timestamp>>,
    pub settings: Settings,
    pub dirty: Notify,
    shutdown: watch::Receiver<bool>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub fn new(state: State, faults: VcdFaultConfig, settings: Settings, shutdown: watch::Receiver<bool>) -> Self {
        Shared {
            state: Mutex::new(state),
            sessions: Mutex::default(),
            faults: Mutex::new(VcdFaults::new(faults)),
            stats: Stats::default(),
            counters: Mutex::default(),
            clock: Mutex::default(),
            settings,
            dirty: Notify::new(),
            shutdown,
        }
    }

    /// The emulator's time: the one `/sim/clock` set, else the real time.
    pub fn now(&self) -> Timestamp {
        lock(&self.clock).unwrap_or_else(Timestamp::now)
    }

    /// The state with every task that has ended by now applied.
    pub fn state(&self) -> MutexGuard<'_, State> {
        let now = self.now();
        let mut state = lock(&self.state);
        if state.settle(now) {
            self.dirty.notify_one();
        }
        state
    }

    fn run_time(&self) -> SignedDuration {
        SignedDuration::try_from(self.settings.provision).unwrap_or(SignedDuration::ZERO)
    }

    fn changed(&self) {
        self.dirty.notify_one();
    }

    fn created(&self, kind: &'static str, key: String) {
        *lock(&self.counters)
            .creates
            .entry(kind)
            .or_default()
            .entry(key)
            .or_default() += 1;
    }

    async fn pause(&self, duration: Duration) {
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(duration) => {}
            _ = shutdown.wait_for(|stop| *stop) => {}
        }
    }

    fn new_session(&self, from_api_token: bool) -> (String, Session) {
        let token = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        let session = Session {
            id: super::state::new_id(),
            expires: Instant::now() + self.settings.session_ttl,
            from_api_token,
        };
        lock(&self.sessions).insert(token.clone(), session.clone());
        (token, session)
    }
}

pub type App = Arc<Shared>;
type Answer = Result<Response, ApiError>;

/// A refusal, written as XML (legacy API) or JSON (CloudAPI).
#[derive(Debug)]
pub struct ApiError {
    refusal: Refusal,
    json: bool,
    retry_after: Option<u64>,
}

impl ApiError {
    fn xml(refusal: Refusal) -> Self {
        ApiError {
            refusal,
            json: false,
            retry_after: None,
        }
    }

    fn json(refusal: Refusal) -> Self {
        ApiError {
            refusal,
            json: true,
            retry_after: None,
        }
    }

    fn for_path(path: &str, refusal: Refusal) -> Self {
        if path.starts_with("/cloudapi") || path.starts_with("/oauth") || path.starts_with("/sim") {
            ApiError::json(refusal)
        } else {
            ApiError::xml(refusal)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let Refusal { status, code, message } = self.refusal;
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = if self.json {
            (
                status,
                Json(json!({
                    "minorErrorCode": code,
                    "message": message,
                    "stackTrace": format!("com.vmware.vcloud.api.rest.RestApiException: {message}"),
                })),
            )
                .into_response()
        } else {
            (
                status,
                [(header::CONTENT_TYPE, xml::ERROR_TYPE)],
                xml::error(status.as_u16(), code, &message),
            )
                .into_response()
        };
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

fn xml_response(status: StatusCode, media_type: &str, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, media_type.to_owned())], body).into_response()
}

/// The address the client used, for hrefs.
fn hrefs(headers: &HeaderMap) -> Hrefs {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    Hrefs {
        base: format!("https://{host}"),
    }
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
        });
    authorization.or_else(|| {
        headers
            .get("x-vmware-vcloud-access-token")
            .and_then(|h| h.to_str().ok())
    })
}

/// `user@org:password` from a Basic header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Paths that answer without a session.
fn is_public(method: &Method, path: &str) -> bool {
    path == "/api/versions"
        || path.starts_with("/oauth/")
        || (method == Method::POST && matches!(path, "/cloudapi/1.0.0/sessions/provider" | "/cloudapi/1.0.0/sessions"))
}

/// Counts and logs every API request, then lets `gate` decide its fate.
async fn api_gate(AxumState(app): AxumState<App>, request: Request, next: Next) -> Response {
    let arrived = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let template = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| path.clone(), |m| m.as_str().to_owned());
    app.stats.request(method.as_str(), arrived);
    *lock(&app.counters)
        .by_template
        .entry(format!("{method} {template}"))
        .or_default() += 1;
    let mut log = LogOnEnd {
        app: &app,
        method: method.clone(),
        path: path.clone(),
        query,
        arrived,
        status: None,
    };
    let mut response = gate(&app, request, next).await;
    log.status = Some(response.status().as_u16());
    let request_id = super::state::new_id();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-vmware-vcloud-request-id", value);
    }
    response
}

/// Logs a request when it ends, also when the client went away before the answer.
struct LogOnEnd<'a> {
    app: &'a Shared,
    method: Method,
    path: String,
    query: Option<String>,
    arrived: Instant,
    status: Option<u16>,
}

impl Drop for LogOnEnd<'_> {
    fn drop(&mut self) {
        self.app.stats.ended_with_query(
            self.method.as_str(),
            &self.path,
            self.query.clone(),
            self.arrived,
            self.status,
        );
    }
}

/// Version, session, latency and faults, in the order VCD would refuse them.
async fn gate(app: &App, mut request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let refuse = |refusal: Refusal| ApiError::for_path(&path, refusal).into_response();
    if path != "/api/versions" && !path.starts_with("/oauth/") {
        let accept: Vec<&str> = request
            .headers()
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|h| h.to_str().ok())
            .collect();
        match query::requested_version(&accept, &app.settings.versions) {
            Requested::Served(version) => {
                let version = ApiVersionInUse(version.to_owned());
                request.extensions_mut().insert(version);
            }
            Requested::NotAcceptable => {
                return refuse(Refusal::new(
                    406,
                    "NOT_ACCEPTABLE",
                    query::not_acceptable_message(&app.settings.versions),
                ));
            }
        }
    }
    if !is_public(&method, &path) {
        let session = bearer_token(request.headers()).and_then(|token| {
            let mut sessions = lock(&app.sessions);
            match sessions.get(token) {
                Some(session) if session.expires > Instant::now() => Some((token.to_owned(), session.clone())),
                Some(_) => {
                    sessions.remove(token);
                    None
                }
                None => None,
            }
        });
        match session {
            Some((token, session)) => {
                request.extensions_mut().insert(SessionToken(token));
                request.extensions_mut().insert(session);
            }
            None => {
                return refuse(Refusal::new(
                    401,
                    "UNAUTHORIZED",
                    "The session is missing, has expired or was logged out; log in again.",
                ));
            }
        }
    }
    let mutating = !matches!(method, Method::GET | Method::HEAD);
    let targets_entity = mutating && ["/org/", "/vdc/", "/user/"].iter().any(|part| path.contains(part));
    let (latency, fault, busy) = {
        let mut faults = lock(&app.faults);
        let fault = faults.faults.draw(mutating);
        let busy = targets_entity && faults.busy();
        (faults.faults.latency(), fault, busy)
    };
    if !latency.is_zero() {
        app.pause(latency).await;
    }
    if busy {
        app.stats.fault("busy");
        return refuse(Refusal::new(
            400,
            "BUSY_ENTITY",
            "The entity is busy completing an operation (injected fault).",
        ));
    }
    if let Some(kind) = fault.kind() {
        app.stats.fault(kind);
    }
    match fault {
        Fault::None => next.run(request).await,
        Fault::ServerError { after } => {
            if after {
                drop(next.run(request).await);
                refuse(Refusal::new(
                    500,
                    "INTERNAL_SERVER_ERROR",
                    "Injected failure after the change.",
                ))
            } else {
                refuse(Refusal::new(503, "SERVICE_UNAVAILABLE", "Injected outage."))
            }
        }
        Fault::Throttle { retry_after } => ApiError {
            retry_after: Some(retry_after.as_secs()),
            ..ApiError::for_path(&path, Refusal::new(429, "TOO_MANY_REQUESTS", "Injected throttling."))
        }
        .into_response(),
        Fault::Hang { after, duration } => {
            if after {
                drop(next.run(request).await);
            }
            app.pause(duration).await;
            refuse(Refusal::new(504, "GATEWAY_TIMEOUT", "Injected timeout."))
        }
    }
}

/// The API version the request's `Accept` header named.
#[derive(Clone, Debug)]
struct ApiVersionInUse(String);

#[derive(Clone, Debug)]
struct SessionToken(String);

/// What an API handler needs of its request, in one extractor: the emulator, the address the client used
/// (for hrefs), the API version its `Accept` named, its session and its tenant context. The gate has
/// checked version and session already; public paths (`/api/versions`, logins) have neither.
#[derive(Clone)]
struct Call {
    app: App,
    hrefs: Hrefs,
    version: Option<String>,
    session: Option<(SessionToken, Session)>,
    /// The organisation id of `X-VMWARE-VCLOUD-TENANT-CONTEXT`, without its URN prefix.
    tenant: Option<String>,
}

impl FromRequestParts<App> for Call {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let extensions = &parts.extensions;
        let session = extensions
            .get::<SessionToken>()
            .cloned()
            .zip(extensions.get::<Session>().cloned());
        Ok(Call {
            app: app.clone(),
            hrefs: hrefs(&parts.headers),
            version: extensions.get::<ApiVersionInUse>().map(|v| v.0.clone()),
            session,
            tenant: parts
                .headers
                .get("x-vmware-vcloud-tenant-context")
                .and_then(|h| h.to_str().ok())
                .map(|id| bare_id(id).to_owned()),
        })
    }
}

impl Call {
    /// `media_type` with the request's API version.
    fn versioned(&self, media_type: &str) -> String {
        match &self.version {
            Some(version) => format!("{media_type};version={version}"),
            None => media_type.to_owned(),
        }
    }

    /// A legacy API document of `media_type` at the request's version.
    fn xml(&self, status: StatusCode, media_type: &str, body: String) -> Response {
        xml_response(status, &self.versioned(media_type), body)
    }

    /// The request's session; the gate lets no request without one reach a handler that asks.
    fn session(&self) -> Result<&(SessionToken, Session), ApiError> {
        self.session
            .as_ref()
            .ok_or_else(|| ApiError::json(Refusal::new(401, "UNAUTHORIZED", "No session.")))
    }

    /// User management needs a password session, as on VCD.
    fn refuse_api_token_session(&self) -> Result<(), ApiError> {
        if self.session()?.1.from_api_token {
            return Err(ApiError::xml(Refusal::new(
                403,
                "ACCESS_TO_RESOURCE_IS_FORBIDDEN",
                "API token sessions cannot perform user management: log in with a user name and password.",
            )));
        }
        Ok(())
    }

    /// A task document answered with 202 and its `Location`.
    fn task_response(&self, task: &str) -> Answer {
        let state = self.app.state();
        let task = &state.tasks[task];
        let mut response = self.xml(
            StatusCode::ACCEPTED,
            xml::TASK_TYPE,
            xml::task(&self.hrefs, task, self.app.now()),
        );
        if let Ok(location) = HeaderValue::from_str(&self.hrefs.task(&task.id)) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        Ok(response)
    }

    /// Runs a create after the create time, to its end even when the client has gone away meanwhile.
    async fn create_detached(self, create: impl FnOnce(&Call) -> Answer + Send + 'static) -> Answer {
        tokio::spawn(async move {
            let create_time = self.app.settings.create_time;
            if !create_time.is_zero() {
                self.app.pause(create_time).await;
            }
            create(&self)
        })
        .await
        .unwrap_or_else(|error| {
            Err(ApiError::xml(Refusal::new(
                500,
                "INTERNAL_SERVER_ERROR",
                error.to_string(),
            )))
        })
    }
}

/// The emulator's own controls: Basic auth with the administrator's user name and password.
async fn control_gate(AxumState(app): AxumState<App>, request: Request, next: Next) -> Response {
    let authorized = basic_credentials(request.headers())
        .is_some_and(|(user, password)| user == app.settings.user && password == app.settings.password);
    if !authorized {
        return ApiError::json(Refusal::new(
            401,
            "UNAUTHORIZED",
            "Basic auth with the administrator's user and password.",
        ))
        .into_response();
    }
    next.run(request).await
}

pub fn router(app: App) -> Router {
    let api = Router::new()
        .route("/api/versions", get(versions))
        .route("/cloudapi/1.0.0/sessions/provider", post(login_provider).delete(logout))
        .route("/cloudapi/1.0.0/sessions", post(login_tenant))
        .route("/cloudapi/1.0.0/sessions/current", get(current_session).delete(logout))
        .route("/cloudapi/1.0.0/sessions/{id}", delete(logout))
        .route("/api/session", delete(logout))
        .route("/oauth/provider/token", post(api_token_login))
        .route("/cloudapi/1.0.0/orgs", get(cloudapi_orgs))
        .route("/cloudapi/1.0.0/orgs/", get(cloudapi_orgs))
        .route("/cloudapi/1.0.0/orgs/{urn}", get(cloudapi_org))
        .route("/cloudapi/1.0.0/roles", get(cloudapi_roles))
        .route("/cloudapi/1.0.0/roles/", get(cloudapi_roles))
        .route("/cloudapi/1.0.0/auditTrail", get(audit_trail))
        .route("/cloudapi/1.0.0/auditTrail/", get(audit_trail))
        .route("/api/org", get(org_list))
        .route("/api/admin/orgs", post(create_org))
        .route("/api/admin/org/{id}", get(get_org).put(update_org).delete(delete_org))
        .route(
            "/api/admin/org/{id}/action/disable",
            enable_disable(EntityKind::Org, false),
        )
        .route(
            "/api/admin/org/{id}/action/enable",
            enable_disable(EntityKind::Org, true),
        )
        .route("/api/admin/org/{id}/users", post(create_user))
        .route(
            "/api/admin/user/{id}",
            get(get_user).put(update_user).delete(delete_user),
        )
        .route("/api/admin/org/{id}/vdcsparams", post(create_vdc))
        .route(
            "/api/admin/vdc/{id}",
            get(get_admin_vdc).put(update_vdc).delete(delete_vdc),
        )
        .route("/api/vdc/{id}", get(get_vdc).delete(delete_vdc))
        .route(
            "/api/admin/vdc/{id}/action/disable",
            enable_disable(EntityKind::Vdc, false),
        )
        .route(
            "/api/admin/vdc/{id}/action/enable",
            enable_disable(EntityKind::Vdc, true),
        )
        .route(
            "/api/admin/vdcStorageProfile/{id}",
            get(get_storage_profile).put(update_storage_profile),
        )
        .route("/api/task/{id}", get(get_task))
        .route("/api/query", get(query_records))
        .route_layer(middleware::from_fn_with_state(app.clone(), api_gate));
    let control = Router::new()
        .route("/sim/stats", get(sim_stats).delete(sim_reset_stats))
        .route("/sim/requests", get(sim_requests))
        .route("/sim/faults", get(sim_faults).put(sim_set_faults))
        .route("/sim/fail-next-task", post(sim_fail_next_task))
        .route("/sim/expire-sessions", post(sim_expire_sessions))
        .route("/sim/inventory", get(sim_inventory))
        .route(
            "/sim/clock",
            get(sim_clock).put(sim_set_clock).delete(sim_release_clock),
        )
        .route_layer(middleware::from_fn_with_state(app.clone(), control_gate));
    api.merge(control).fallback(not_served).with_state(app)
}

async fn not_served(request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let message = format!("{} {path} is not served by this emulator.", request.method());
    let status = if path.starts_with("/api") || path.starts_with("/cloudapi") {
        403
    } else {
        404
    };
    ApiError::for_path(&path, Refusal::new(status, "ACCESS_TO_RESOURCE_IS_FORBIDDEN", message)).into_response()
}

// ---- Versions and sessions ----

async fn versions(call: Call) -> Response {
    xml_response(
        StatusCode::OK,
        "application/xml;charset=UTF-8",
        xml::versions(&call.hrefs, &call.app.settings.versions),
    )
}

fn session_json(app: &Shared, hrefs: &Hrefs, session: &Session) -> serde_json::Value {
    let system = json!({"name": SYSTEM_ORG, "id": "urn:vcloud:org:a93c9db9-7471-3192-8d09-a8f7eeda85f9"});
    json!({
        "id": xml::urn("session", &session.id),
        "site": {"name": "navigator-emulator", "id": "urn:vcloud:site:00000000-0000-0000-0000-000000000001"},
        "user": {"name": app.settings.user, "id": "urn:vcloud:user:00000000-0000-0000-0000-000000000001"},
        "org": system,
        "operatingOrg": system,
        "location": format!("{}/cloudapi/1.0.0/sessions/{}", hrefs.base, session.id),
        "roles": ["System Administrator"],
        "roleRefs": [{"name": "System Administrator", "id": "urn:vcloud:role:00000000-0000-0000-0000-000000000001"}],
        "sessionIdleTimeoutMinutes": app.settings.session_ttl.as_secs() / 60,
    })
}

async fn login_provider(call: Call, headers: HeaderMap) -> Answer {
    let expected = format!("{}@{SYSTEM_ORG}", call.app.settings.user);
    let valid = basic_credentials(&headers)
        .is_some_and(|(user, password)| user.eq_ignore_ascii_case(&expected) && password == call.app.settings.password);
    if !valid {
        return Err(ApiError::json(Refusal::new(
            401,
            "UNAUTHORIZED",
            "Invalid credentials: log in as user@System with the provider administrator's password.",
        )));
    }
    let (token, session) = call.app.new_session(false);
    let body = session_json(&call.app, &call.hrefs, &session);
    let mut response = Json(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        "x-vmware-vcloud-access-token",
        HeaderValue::from_str(&token).expect("hex token"),
    );
    headers.insert("x-vmware-vcloud-token-type", HeaderValue::from_static("Bearer"));
    Ok(response)
}

async fn login_tenant() -> Answer {
    Err(ApiError::json(Refusal::new(
        401,
        "UNAUTHORIZED",
        "Tenant logins are not emulated: log in as the provider at /cloudapi/1.0.0/sessions/provider.",
    )))
}

async fn current_session(call: Call) -> Answer {
    let (_, session) = call.session()?;
    Ok(Json(session_json(&call.app, &call.hrefs, session)).into_response())
}

async fn logout(call: Call) -> Answer {
    let (token, _) = call.session()?;
    lock(&call.app.sessions).remove(&token.0);
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    refresh_token: Option<String>,
}

async fn api_token_login(call: Call, body: String) -> Answer {
    let form: TokenForm = serde_urlencoded_form(&body);
    let valid = form.grant_type.as_deref() == Some("refresh_token")
        && call.app.settings.api_token.is_some()
        && form.refresh_token == call.app.settings.api_token;
    if !valid {
        return Err(ApiError::json(Refusal::new(
            400,
            "BAD_REQUEST",
            "invalid_grant: the refresh_token is not a valid API token.",
        )));
    }
    let (token, _) = call.app.new_session(true);
    Ok(Json(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": call.app.settings.session_ttl.as_secs(),
        "refresh_token": form.refresh_token,
    }))
    .into_response())
}

fn serde_urlencoded_form(body: &str) -> TokenForm {
    let mut form = TokenForm {
        grant_type: None,
        refresh_token: None,
    };
    for (key, value) in form_urlencoded::parse(body.as_bytes()) {
        match key.as_ref() {
            "grant_type" => form.grant_type = Some(value.into_owned()),
            "refresh_token" => form.refresh_token = Some(value.into_owned()),
            _ => {}
        }
    }
    form
}

// ---- CloudAPI ----

/// A CloudAPI page: the envelope, and `Link` headers to the next and last pages.
fn cloudapi_page(
    hrefs: &Hrefs,
    path: &str,
    params: &HashMap<String, String>,
    page: PageOf<serde_json::Value>,
    model: &str,
) -> Response {
    let link = |to: usize, rel: &str| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("page", &to.to_string());
        query.append_pair("pageSize", &page.page_size.to_string());
        for key in ["filter", "filterEncoded", "sortAsc", "sortDesc"] {
            if let Some(value) = params.get(key) {
                query.append_pair(key, value);
            }
        }
        format!(
            "<{}{path}?{}>;rel=\"{rel}\";type=\"application/json\";model=\"{model}\"",
            hrefs.base,
            query.finish()
        )
    };
    let mut links = Vec::new();
    if page.has_next() {
        links.push(link(page.page + 1, "nextPage"));
    }
    if page.page_count > 0 {
        links.push(link(page.page_count, "lastPage"));
    }
    let body = json!({
        "resultTotal": page.total,
        "pageCount": page.page_count,
        "page": page.page,
        "pageSize": page.page_size,
        "associations": null,
        "values": page.items,
    });
    let mut response = Json(body).into_response();
    for link in links {
        if let Ok(value) = HeaderValue::from_str(&link) {
            response.headers_mut().append(header::LINK, value);
        }
    }
    response
}

/// Filters and pages records (each a JSON object whose top-level and `x.y` fields the filter may name).
fn filter_and_page(
    mut records: Vec<serde_json::Value>,
    params: &HashMap<String, String>,
) -> Result<PageOf<serde_json::Value>, Refusal> {
    if let Some(filter) = params.get("filter") {
        let encoded = params.get("filterEncoded").is_some_and(|v| v == "true");
        let filter = Filter::parse(filter, encoded).map_err(Refusal::bad_request)?;
        records.retain(|record| {
            filter.matches(|field| {
                field
                    .split('.')
                    .try_fold(record, |value, key| value.get(key))
                    .and_then(|value| value.as_str())
            })
        });
    }
    query::paginate(
        records,
        params.get("page").map(String::as_str),
        params.get("pageSize").map(String::as_str),
    )
    .map_err(Refusal::bad_request)
}

async fn cloudapi_orgs(call: Call, Query(params): Query<HashMap<String, String>>) -> Answer {
    let records: Vec<serde_json::Value> = call.app.state().orgs.values().map(org_json).collect();
    let page = filter_and_page(records, &params).map_err(ApiError::json)?;
    Ok(cloudapi_page(
        &call.hrefs,
        "/cloudapi/1.0.0/orgs/",
        &params,
        page,
        "Orgs",
    ))
}

fn org_json(org: &super::state::Org) -> serde_json::Value {
    json!({
        "id": xml::urn("org", &org.id),
        "name": org.name,
        "displayName": org.full_name,
        "description": org.description,
        "isEnabled": org.enabled,
        "orgVdcCount": org.vdcs.len(),
        "catalogCount": 0,
        "vappCount": 0,
        "runningVMCount": 0,
        "userCount": org.users.len(),
        "diskCount": 0,
        "managedBy": {"name": SYSTEM_ORG, "id": "urn:vcloud:org:a93c9db9-7471-3192-8d09-a8f7eeda85f9"},
        "canPublish": false,
    })
}

/// An id from a URN or a bare UUID.
fn bare_id(id: &str) -> &str {
    id.rsplit(':').next().unwrap_or(id)
}

async fn cloudapi_org(call: Call, Path(urn): Path<String>) -> Answer {
    let state = call.app.state();
    let org = state.org(bare_id(&urn)).map_err(ApiError::json)?;
    Ok(Json(org_json(org)).into_response())
}

async fn cloudapi_roles(call: Call, Query(params): Query<HashMap<String, String>>) -> Answer {
    let roles: Vec<(String, String)> = match &call.tenant {
        Some(org) => {
            let state = call.app.state();
            let org = state.org(org).map_err(ApiError::json)?;
            org.roles.iter().map(|r| (r.id.clone(), r.name.clone())).collect()
        }
        None => vec![(
            "00000000-0000-0000-0000-000000000001".to_owned(),
            "System Administrator".to_owned(),
        )],
    };
    let records = roles
        .into_iter()
        .map(|(id, name)| {
            json!({"id": xml::urn("role", &id), "name": name, "description": "", "bundleKey": "", "readOnly": true})
        })
        .collect();
    let page = filter_and_page(records, &params).map_err(ApiError::json)?;
    Ok(cloudapi_page(
        &call.hrefs,
        "/cloudapi/1.0.0/roles/",
        &params,
        page,
        "Roles",
    ))
}

async fn audit_trail(call: Call, Query(params): Query<HashMap<String, String>>) -> Answer {
    let records = {
        let state = call.app.state();
        let mut events: Vec<&super::state::AuditEvent> = state.audit.iter().collect();
        events.sort_by_key(|e| e.timestamp);
        events
            .into_iter()
            .map(|e| {
                json!({
                    "eventId": xml::urn("audit", &e.id),
                    "eventType": e.event_type,
                    "eventStatus": "SUCCESS",
                    "timestamp": xml::timestamp(e.timestamp),
                    "tenant": {"name": e.tenant.name, "id": xml::urn("org", &e.tenant.id)},
                    "entity": {"name": e.entity.name, "id": xml::urn("vdc", &e.entity.id)},
                    "additionalProperties": e.properties,
                })
            })
            .collect()
    };
    let page = filter_and_page(records, &params).map_err(ApiError::json)?;
    Ok(cloudapi_page(
        &call.hrefs,
        "/cloudapi/1.0.0/auditTrail/",
        &params,
        page,
        "AuditLogEvents",
    ))
}

// ---- Legacy XML: organisations ----

async fn org_list(call: Call) -> Response {
    let body = xml::org_list(&call.hrefs, &call.app.state());
    call.xml(StatusCode::OK, "application/vnd.vmware.vcloud.orgList+xml", body)
}

async fn create_org(call: Call, body: String) -> Answer {
    let input: xml::AdminOrgIn = xml::parse(&body, "AdminOrg").map_err(|m| ApiError::xml(Refusal::bad_request(m)))?;
    call.create_detached(move |call| {
        let now = call.app.now();
        let mut state = call.app.state();
        let name = input.name.clone();
        let (id, task) = state
            .create_org(input.fields(), now, call.app.run_time())
            .map_err(ApiError::xml)?;
        call.app.created("orgs", name);
        call.app.changed();
        let task = state.tasks[&task].clone();
        let body = xml::admin_org(&call.hrefs, &state, &state.orgs[&id], now, Some(&task));
        Ok(call.xml(StatusCode::CREATED, xml::ADMIN_ORG_TYPE, body))
    })
    .await
}

async fn get_org(call: Call, Path(id): Path<String>) -> Answer {
    let state = call.app.state();
    let org = state.org(&id).map_err(ApiError::xml)?;
    let body = xml::admin_org(&call.hrefs, &state, org, call.app.now(), None);
    Ok(call.xml(StatusCode::OK, xml::ADMIN_ORG_TYPE, body))
}

async fn update_org(call: Call, Path(id): Path<String>, body: String) -> Answer {
    let input: xml::AdminOrgIn = xml::parse(&body, "AdminOrg").map_err(|m| ApiError::xml(Refusal::bad_request(m)))?;
    let task = call
        .app
        .state()
        .update_org(&id, input.fields(), call.app.now(), call.app.run_time())
        .map_err(ApiError::xml)?;
    call.app.changed();
    call.task_response(&task)
}

#[derive(Deserialize)]
struct DeleteParams {
    #[serde(default)]
    force: Option<String>,
    #[serde(default)]
    recursive: Option<String>,
}

impl DeleteParams {
    fn force(&self) -> bool {
        self.force.as_deref() == Some("true")
    }
    fn recursive(&self) -> bool {
        self.recursive.as_deref() == Some("true")
    }
}

async fn delete_org(call: Call, Path(id): Path<String>, Query(params): Query<DeleteParams>) -> Answer {
    let task = call
        .app
        .state()
        .delete_org(
            &id,
            params.force(),
            params.recursive(),
            call.app.now(),
            call.app.run_time(),
        )
        .map_err(ApiError::xml)?;
    call.app.changed();
    call.task_response(&task)
}

/// `POST …/action/enable|disable` of an organisation or a VDC: at once, 204.
fn set_enabled(app: &Shared, kind: EntityKind, id: &str, enabled: bool) -> Answer {
    let now = app.now();
    let mut state = app.state();
    match kind {
        EntityKind::Org => state.set_org_enabled(id, enabled, now),
        EntityKind::Vdc => state.set_vdc_enabled(id, enabled, now),
    }
    .map_err(ApiError::xml)?;
    app.changed();
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The enable and disable routes of an entity kind.
fn enable_disable(kind: EntityKind, enabled: bool) -> axum::routing::MethodRouter<App> {
    post(
        move |AxumState(app): AxumState<App>, Path(id): Path<String>| async move { set_enabled(&app, kind, &id, enabled) },
    )
}

// ---- Legacy XML: users ----

fn new_user(input: xml::UserIn) -> Result<NewUser, ApiError> {
    let role = input
        .role
        .ok_or_else(|| ApiError::xml(Refusal::bad_request("A user needs a Role.")))?;
    if input.password.as_deref().is_none_or(str::is_empty) {
        return Err(ApiError::xml(Refusal::bad_request("A local user needs a Password.")));
    }
    Ok(NewUser {
        name: input.name,
        role_id: xml::id_of(&role.href).to_owned(),
        enabled: input.is_enabled,
        full_name: input.full_name,
        email: input.email,
        provider_type: input.provider_type.unwrap_or_else(|| "INTEGRATED".to_owned()),
        stored_vm_quota: input.stored_vm_quota,
        deployed_vm_quota: input.deployed_vm_quota,
    })
}

async fn create_user(call: Call, Path(org_id): Path<String>, body: String) -> Answer {
    call.refuse_api_token_session()?;
    let input: xml::UserIn = xml::parse(&body, "User").map_err(|m| ApiError::xml(Refusal::bad_request(m)))?;
    let user = new_user(input)?;
    call.create_detached(move |call| {
        let mut state = call.app.state();
        let name = user.name.clone();
        let id = state.create_user(&org_id, user).map_err(ApiError::xml)?;
        let (org, user) = state.user(&id).map_err(ApiError::xml)?;
        call.app.created("users", format!("{}/{name}", org.name));
        call.app.changed();
        Ok(call.xml(
            StatusCode::CREATED,
            xml::ADMIN_USER_TYPE,
            xml::user(&call.hrefs, org, user),
        ))
    })
    .await
}

async fn get_user(call: Call, Path(id): Path<String>) -> Answer {
    let state = call.app.state();
    let (org, user) = state.user(&id).map_err(ApiError::xml)?;
    Ok(call.xml(StatusCode::OK, xml::ADMIN_USER_TYPE, xml::user(&call.hrefs, org, user)))
}

async fn update_user(call: Call, Path(id): Path<String>, body: String) -> Answer {
    call.refuse_api_token_session()?;
    let input: xml::UserIn = xml::parse(&body, "User").map_err(|m| ApiError::xml(Refusal::bad_request(m)))?;
    let role = input
        .role
        .as_ref()
        .ok_or_else(|| ApiError::xml(Refusal::bad_request("A user needs a Role.")))?;
    let user = NewUser {
        role_id: xml::id_of(&role.href).to_owned(),
        name: input.name,
        enabled: input.is_enabled,
        full_name: input.full_name,
        email: input.email,
        provider_type: input.provider_type.unwrap_or_else(|| "INTEGRATED".to_owned()),
        stored_vm_quota: input.stored_vm_quota,
        deployed_vm_quota: input.deployed_vm_quota,
    };
    let mut state = call.app.state();
    state.update_user(&id, user).map_err(ApiError::xml)?;
    call.app.changed();
    let (org, user) = state.user(&id).map_err(ApiError::xml)?;
    Ok(call.xml(StatusCode::OK, xml::ADMIN_USER_TYPE, xml::user(&call.hrefs, org, user)))
}

async fn delete_user(call: Call, Path(id): Path<String>) -> Answer {
    call.refuse_api_token_session()?;
    call.app.state().delete_user(&id).map_err(ApiError::xml)?;
    call.app.changed();
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- Legacy XML: VDCs ----

/// Reads the VDC settings both `CreateVdcParams` and `AdminVdc` carry.
fn vdc_spec(input: &xml::VdcIn, state: &State, enabled_default: bool) -> Result<VdcSpec, Refusal> {
    let [capacity] = input.compute_capacity.as_slice() else {
        return Err(Refusal::bad_request("A VDC needs exactly one ComputeCapacity."));
    };
    let capacity_of = |c: &Option<xml::CapacityIn>, what: &str| {
        c.as_ref()
            .map(|c| super::state::Capacity {
                units: c.units.clone(),
                allocated: c.allocated,
                limit: c.limit,
            })
            .ok_or_else(|| Refusal::bad_request(format!("ComputeCapacity needs {what}.")))
    };
    let network_pool = match &input.network_pool {
        Some(pool) => {
            let known = &state.inventory.network_pool;
            if xml::id_of(&pool.href) != known.id {
                return Err(Refusal::bad_request(format!(
                    "The network pool {} does not exist.",
                    pool.href
                )));
            }
            Some(known.clone())
        }
        None => None,
    };
    Ok(VdcSpec {
        description: input.description.clone(),
        allocation_model: input.allocation_model.clone(),
        cpu: capacity_of(&capacity.cpu, "Cpu")?,
        memory: capacity_of(&capacity.memory, "Memory")?,
        nic_quota: input.nic_quota,
        network_quota: input.network_quota,
        vm_quota: input.vm_quota,
        enabled: input.is_enabled.unwrap_or(enabled_default),
        vcpu_mhz: input.vcpu_in_mhz.or(input.vcpu_in_mhz2),
        resource_guaranteed_cpu: input.resource_guaranteed_cpu,
        resource_guaranteed_memory: input.resource_guaranteed_memory,
        network_pool,
        is_elastic: input.is_elastic,
        include_memory_overhead: input.include_memory_overhead,
        thin_provision: input.is_thin_provision,
        fast_provisioning: input.uses_fast_provisioning,
    })
}

async fn create_vdc(call: Call, Path(org_id): Path<String>, body: String) -> Answer {
    let input: xml::VdcIn = xml::parse(&body, "CreateVdcParams").map_err(|m| ApiError::xml(Refusal::bad_request(m)))?;
    call.create_detached(move |call| {
        let now = call.app.now();
        let mut state = call.app.state();
        // CreateVdcParams leaves out a false IsEnabled, so a new VDC is enabled unless it says otherwise.
        let spec = vdc_spec(&input, &state, true).map_err(ApiError::xml)?;
        let storage = input
            .storage_profiles
            .iter()
            .map(|p| {
                if p.units != "MB" {
                    return Err(Refusal::bad_request(format!(
                        "VdcStorageProfile Units must be MB, not '{}'.",
                        p.units
                    )));
                }
                let href = p.provider_profile.as_ref().map(|r| r.href.as_str()).unwrap_or_default();
                Ok((
                    xml::id_of(href).to_owned(),
                    p.limit,
                    p.default,
                    p.enabled.unwrap_or(true),
                ))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(ApiError::xml)?;
        let provider_vdc_id = input
            .provider_vdc
            .as_ref()
            .map(|r| xml::id_of(&r.href).to_owned())
            .ok_or_else(|| ApiError::xml(Refusal::bad_request("A VDC needs a ProviderVdcReference.")))?;
        let new = NewVdc {
            name: input.name.clone(),
            spec,
            storage,
            provider_vdc_id,
        };
        let (id, task) = state
            .create_vdc(&org_id, new, now, call.app.run_time())
            .map_err(ApiError::xml)?;
        let (org, vdc) = state.vdc(&id).map_err(ApiError::xml)?;
        call.app.created("vdcs", format!("{}/{}", org.name, vdc.name));
        call.app.changed();
        let task = state.tasks[&task].clone();
        let body = xml::vdc(&call.hrefs, &state, org, vdc, true, now, Some(&task));
        Ok(call.xml(StatusCode::CREATED, xml::ADMIN_VDC_TYPE, body))
    })
    .await
}

fn show_vdc(call: &Call, id: &str, admin: bool) -> Answer {
    let state = call.app.state();
    let (org, vdc) = state.vdc(id).map_err(ApiError::xml)?;
    let body = xml::vdc(&call.hrefs, &state, org, vdc, admin, call.app.now(), None);
    let media_type = if admin { xml::ADMIN_VDC_TYPE } else { xml::VDC_TYPE };
    Ok(call.xml(StatusCode::OK, media_type, body))
}

async fn get_admin_vdc(call: Call, Path(id): Path<String>) -> Answer {
    show_vdc(&call, &id, true)
}

async fn get_vdc(call: Call, Path(id): Path<String>) -> Answer {
    show_vdc(&call, &id, false)
}

async fn update_vdc(call: Call, Path(id): Path<String>, body: String) -> Answer {
    let input: xml::VdcIn = xml::parse(&body, "AdminVdc").map_err(|m| ApiError::xml(Refusal::bad_request(m)))?;
    let task = {
        let mut state = call.app.state();
        let current = state.vdc(&id).map_err(ApiError::xml)?.1.spec.enabled;
        let spec = vdc_spec(&input, &state, current).map_err(ApiError::xml)?;
        state
            .update_vdc(&id, &input.name, spec, call.app.now(), call.app.run_time())
            .map_err(ApiError::xml)?
    };
    call.app.changed();
    call.task_response(&task)
}

async fn delete_vdc(call: Call, Path(id): Path<String>, Query(params): Query<DeleteParams>) -> Answer {
    let task = call
        .app
        .state()
        .delete_vdc(&id, params.force(), call.app.now(), call.app.run_time())
        .map_err(ApiError::xml)?;
    call.app.changed();
    call.task_response(&task)
}

/// The VDC holding a storage profile, and the profile.
fn storage_of<'a>(
    state: &'a State,
    id: &str,
) -> Result<(&'a super::state::Vdc, &'a super::state::StorageAllocation), ApiError> {
    state
        .orgs
        .values()
        .flat_map(|org| org.vdcs.values())
        .find_map(|vdc| vdc.storage.iter().find(|s| s.id == id).map(|s| (vdc, s)))
        .ok_or_else(|| ApiError::xml(Refusal::not_found("ORG_VDC_STORAGE_PROFILE_VIEW", id)))
}

async fn get_storage_profile(call: Call, Path(id): Path<String>) -> Answer {
    let state = call.app.state();
    let (vdc, storage) = storage_of(&state, &id)?;
    Ok(call.xml(
        StatusCode::OK,
        xml::ADMIN_STORAGE_PROFILE_TYPE,
        xml::admin_storage_profile(&call.hrefs, vdc, storage),
    ))
}

/// `PUT /api/admin/vdcStorageProfile/{id}`: a new limit, at once (VCD answers the profile, no task).
async fn update_storage_profile(call: Call, Path(id): Path<String>, body: String) -> Answer {
    let input: xml::StorageProfileIn =
        xml::parse(&body, "AdminVdcStorageProfile").map_err(|m| ApiError::xml(Refusal::bad_request(m)))?;
    if input.units != "MB" {
        return Err(ApiError::xml(Refusal::bad_request(format!(
            "VdcStorageProfile Units must be MB, not '{}'.",
            input.units
        ))));
    }
    let mut state = call.app.state();
    state
        .update_storage(
            &id,
            input.limit,
            input.enabled.unwrap_or(true),
            input.default,
            call.app.now(),
        )
        .map_err(ApiError::xml)?;
    call.app.changed();
    let (vdc, storage) = storage_of(&state, &id)?;
    Ok(call.xml(
        StatusCode::OK,
        xml::ADMIN_STORAGE_PROFILE_TYPE,
        xml::admin_storage_profile(&call.hrefs, vdc, storage),
    ))
}

async fn get_task(call: Call, Path(id): Path<String>) -> Answer {
    let state = call.app.state();
    let task = state
        .tasks
        .get(&id)
        .ok_or_else(|| ApiError::xml(Refusal::not_found("Task View", &id)))?;
    Ok(call.xml(
        StatusCode::OK,
        xml::TASK_TYPE,
        xml::task(&call.hrefs, task, call.app.now()),
    ))
}

// ---- Legacy query service ----

type Record = (&'static str, Vec<(&'static str, String)>);

/// Every record of a query type, as element name and attributes.
fn records(query_type: &str, hrefs: &Hrefs, state: &State, now: Timestamp) -> Result<Vec<Record>, Refusal> {
    let inventory = &state.inventory;
    let pvdc_href = hrefs.provider_vdc(&inventory.provider_vdc.id);
    let records = match query_type {
        "providerVdc" => vec![(
            "VMWProviderVdcRecord",
            vec![
                ("href", pvdc_href.clone()),
                ("name", inventory.provider_vdc.name.clone()),
                ("status", "READY".to_owned()),
                ("isEnabled", "true".to_owned()),
                ("isBusy", "false".to_owned()),
            ],
        )],
        "providerVdcStorageProfile" => inventory
            .storage_profiles
            .iter()
            .map(|profile| {
                (
                    "ProviderVdcStorageProfileRecord",
                    vec![
                        ("href", hrefs.provider_storage_profile(&profile.id)),
                        ("name", profile.name.clone()),
                        ("providerVdc", pvdc_href.clone()),
                        ("isEnabled", "true".to_owned()),
                    ],
                )
            })
            .collect(),
        "networkPool" => vec![(
            "NetworkPoolRecord",
            vec![
                ("href", hrefs.network_pool(&inventory.network_pool.id)),
                ("name", inventory.network_pool.name.clone()),
                ("isBusy", "false".to_owned()),
                ("networkPoolType", "0".to_owned()),
            ],
        )],
        "adminOrgVdc" | "orgVdc" => {
            let element = if query_type == "adminOrgVdc" {
                "AdminVdcRecord"
            } else {
                "OrgVdcRecord"
            };
            state
                .orgs
                .values()
                .flat_map(|org| org.vdcs.values().map(move |vdc| (org, vdc)))
                .map(|(org, vdc)| {
                    let busy = state.running_on(&vdc.id, now).next().is_some();
                    let spec = &vdc.spec;
                    (
                        element,
                        vec![
                            ("href", hrefs.admin_vdc(&vdc.id)),
                            ("name", vdc.name.clone()),
                            ("org", hrefs.org(&org.id)),
                            ("orgName", org.name.clone()),
                            ("isEnabled", spec.enabled.to_string()),
                            ("isBusy", busy.to_string()),
                            ("status", vdc_record_status(vdc).to_owned()),
                            ("allocationModel", spec.allocation_model.clone()),
                            ("cpuAllocationMhz", spec.cpu.allocated.to_string()),
                            ("cpuLimitMhz", spec.cpu.limit.to_string()),
                            ("cpuUsedMhz", "0".to_owned()),
                            ("memoryAllocationMB", spec.memory.allocated.to_string()),
                            ("memoryLimitMB", spec.memory.limit.to_string()),
                            ("memoryUsedMB", "0".to_owned()),
                            ("storageLimitMB", vdc.storage_limit_mb().to_string()),
                            ("storageUsedMB", "0".to_owned()),
                            ("providerVdcName", inventory.provider_vdc.name.clone()),
                            ("providerVdc", pvdc_href.clone()),
                            ("numberOfStorageProfiles", vdc.storage.len().to_string()),
                        ],
                    )
                })
                .collect()
        }
        other => {
            return Err(Refusal::bad_request(format!(
                "The query type '{other}' is not served; this emulator serves providerVdc, \
                 providerVdcStorageProfile, networkPool, adminOrgVdc and orgVdc."
            )));
        }
    };
    Ok(records)
}

fn vdc_record_status(vdc: &super::state::Vdc) -> &'static str {
    match vdc.status() {
        "1" => "READY",
        "-1" => "FAILED_CREATION",
        _ => "NOT_READY",
    }
}

async fn query_records(call: Call, Query(params): Query<HashMap<String, String>>) -> Answer {
    let hrefs = call.hrefs.clone();
    let query_type = params
        .get("type")
        .ok_or_else(|| ApiError::xml(Refusal::bad_request("The query needs a type.")))?;
    let mut all = records(query_type, &hrefs, &call.app.state(), call.app.now()).map_err(ApiError::xml)?;
    if let Some(filter) = params.get("filter") {
        let encoded = params.get("filterEncoded").is_some_and(|v| v == "true");
        let filter = Filter::parse(filter, encoded).map_err(|m| ApiError::xml(Refusal::bad_request(m)))?;
        let known: Vec<&str> = all
            .first()
            .map(|(_, attrs)| attrs.iter().map(|(k, _)| *k).collect())
            .unwrap_or_default();
        if let Some(unknown) = filter.fields().find(|f| !known.is_empty() && !known.contains(f)) {
            return Err(ApiError::xml(Refusal::bad_request(format!(
                "The filter names '{unknown}', which {query_type} records do not have."
            ))));
        }
        all.retain(|(_, attrs)| {
            filter.matches(|field| attrs.iter().find(|(k, _)| *k == field).map(|(_, v)| v.as_str()))
        });
    }
    let page = query::paginate(
        all,
        params.get("page").map(String::as_str),
        params.get("pageSize").map(String::as_str),
    )
    .map_err(|m| ApiError::xml(Refusal::bad_request(m)))?;
    let next = page.has_next().then(|| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("type", query_type);
        query.append_pair("page", &(page.page + 1).to_string());
        query.append_pair("pageSize", &page.page_size.to_string());
        for key in ["filter", "filterEncoded"] {
            if let Some(value) = params.get(key) {
                query.append_pair(key, value);
            }
        }
        format!("{}/api/query?{}", hrefs.base, query.finish())
    });
    Ok(call.xml(
        StatusCode::OK,
        "application/vnd.vmware.vcloud.query.records+xml",
        xml::query_records(&hrefs, query_type, &page, next),
    ))
}

// ---- The emulator's controls ----

/// The answer of `GET /sim/stats`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VcdStats {
    pub requests: RequestStats,
    /// Requests by `METHOD /path/{template}`.
    pub by_template: BTreeMap<String, u64>,
    /// Creates by kind (`orgs`, `users`, `vdcs`) and name (`org`, `org/user`, `org/vdc`).
    pub creates: BTreeMap<String, BTreeMap<String, u64>>,
    /// Objects held now beyond the first of the same name (orgs system-wide; users and VDCs per org).
    pub duplicates: Counts,
    /// What the emulator holds now.
    pub counts: Counts,
    /// Running tasks.
    pub running_tasks: u64,
    /// Faults injected, by kind (`5xx-before`, `5xx-after`, `429`, `timeout-*`, `busy`).
    pub faults: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub orgs: u64,
    pub users: u64,
    pub vdcs: u64,
}

fn duplicates<'a>(names: impl Iterator<Item = &'a str>) -> u64 {
    let mut seen = std::collections::HashSet::new();
    names.filter(|name| !seen.insert(*name)).count() as u64
}

async fn sim_stats(AxumState(app): AxumState<App>) -> Response {
    let (counts, duplicates, running_tasks) = {
        let state = app.state();
        let now = app.now();
        let counts = Counts {
            orgs: state.orgs.len() as u64,
            users: state.orgs.values().map(|o| o.users.len() as u64).sum(),
            vdcs: state.orgs.values().map(|o| o.vdcs.len() as u64).sum(),
        };
        let duplicates = Counts {
            orgs: duplicates(state.orgs.values().map(|o| o.name.as_str())),
            users: state
                .orgs
                .values()
                .map(|o| duplicates(o.users.values().map(|u| u.name.as_str())))
                .sum(),
            vdcs: state
                .orgs
                .values()
                .map(|o| duplicates(o.vdcs.values().map(|v| v.name.as_str())))
                .sum(),
        };
        let running = state
            .tasks
            .values()
            .filter(|t| t.status(now) == TaskStatus::Running)
            .count() as u64;
        (counts, duplicates, running)
    };
    let snapshot = app.stats.snapshot(Default::default(), Default::default());
    let counters = lock(&app.counters);
    Json(VcdStats {
        requests: snapshot.requests,
        by_template: counters.by_template.clone(),
        creates: counters
            .creates
            .iter()
            .map(|(kind, names)| ((*kind).to_owned(), names.clone()))
            .collect(),
        duplicates,
        counts,
        running_tasks,
        faults: snapshot.faults,
    })
    .into_response()
}

async fn sim_reset_stats(AxumState(app): AxumState<App>) -> Response {
    app.stats.reset();
    *lock(&app.counters) = Counters::default();
    StatusCode::NO_CONTENT.into_response()
}

async fn sim_requests(AxumState(app): AxumState<App>) -> Json<RequestLog> {
    Json(app.stats.log())
}

async fn sim_faults(AxumState(app): AxumState<App>) -> Json<VcdFaultConfig> {
    Json(lock(&app.faults).config())
}

async fn sim_set_faults(AxumState(app): AxumState<App>, Json(patch): Json<VcdFaultPatch>) -> Answer {
    let mut faults = lock(&app.faults);
    faults
        .apply(&patch)
        .map_err(|m| ApiError::json(Refusal::bad_request(m)))?;
    Ok(Json(faults.config()).into_response())
}

/// `POST /sim/fail-next-task`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailNextTask {
    pub operation: Operation,
    pub message: String,
}

async fn sim_fail_next_task(AxumState(app): AxumState<App>, Json(fail): Json<FailNextTask>) -> Response {
    app.state().fail_next.insert(fail.operation, fail.message);
    app.changed();
    StatusCode::NO_CONTENT.into_response()
}

async fn sim_expire_sessions(AxumState(app): AxumState<App>) -> Response {
    lock(&app.sessions).clear();
    StatusCode::NO_CONTENT.into_response()
}

/// `GET/PUT /sim/clock`: the emulator's time, and whether `/sim/clock` set it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Clock {
    pub time: Timestamp,
    #[serde(default)]
    pub set: bool,
}

async fn sim_clock(AxumState(app): AxumState<App>) -> Json<Clock> {
    let set = lock(&app.clock).is_some();
    Json(Clock { time: app.now(), set })
}

/// Sets the emulator's clock, which then stands still until set again: everything recorded from now on
/// (task ends, the audit trail) is dated at that time, so a test can lay out a billing period's history
/// to the second. A task started while it stands ends only once the clock is set past its end (use
/// `--provision-seconds 0`). It cannot go back before the last recorded change: VCD's records are in time
/// order.
async fn sim_set_clock(AxumState(app): AxumState<App>, Json(clock): Json<Clock>) -> Answer {
    {
        let state = app.state();
        let last = state
            .audit
            .iter()
            .map(|e| e.timestamp)
            .chain(state.tasks.values().map(|t| t.started))
            .max();
        if let Some(last) = last.filter(|last| clock.time < *last) {
            return Err(ApiError::json(Refusal::bad_request(format!(
                "The clock cannot go back to {} before the last recorded change at {last}.",
                clock.time
            ))));
        }
        *lock(&app.clock) = Some(clock.time);
    }
    // Tasks that ended by the new time take effect, dated when they ended.
    drop(app.state());
    Ok(Json(Clock {
        time: clock.time,
        set: true,
    })
    .into_response())
}

/// Back to the real time.
async fn sim_release_clock(AxumState(app): AxumState<App>) -> Response {
    *lock(&app.clock) = None;
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /sim/inventory`: what each organisation holds, for assertions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Inventory {
    pub orgs: Vec<InventoryOrg>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryOrg {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub users: Vec<InventoryUser>,
    pub vdcs: Vec<InventoryVdc>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryUser {
    pub name: String,
    pub role: String,
    pub enabled: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryVdc {
    pub name: String,
    /// VCD's status: 1 ready, 0 being created, -1 its create failed.
    pub status: i32,
    pub allocation_model: String,
    pub cpu_allocated_mhz: i64,
    pub memory_mb: i64,
    pub storage_mb: i64,
    pub enabled: bool,
    pub ready: bool,
}

async fn sim_inventory(AxumState(app): AxumState<App>) -> Json<Inventory> {
    let state = app.state();
    let orgs = state
        .orgs
        .values()
        .map(|org| InventoryOrg {
            id: org.id.clone(),
            name: org.name.clone(),
            enabled: org.enabled,
            users: org
                .users
                .values()
                .map(|user| InventoryUser {
                    name: user.name.clone(),
                    role: State::role(org, &user.role_id)
                        .map(|r| r.name.clone())
                        .unwrap_or_default(),
                    enabled: user.enabled,
                })
                .collect(),
            vdcs: org
                .vdcs
                .values()
                .map(|vdc| InventoryVdc {
                    name: vdc.name.clone(),
                    status: vdc.status().parse().unwrap_or(0),
                    allocation_model: vdc.spec.allocation_model.clone(),
                    cpu_allocated_mhz: vdc.spec.cpu.granted(),
                    memory_mb: vdc.spec.memory.granted(),
                    storage_mb: vdc.storage_limit_mb(),
                    enabled: vdc.spec.enabled,
                    ready: vdc.ready,
                })
                .collect(),
        })
        .collect();
    Json(Inventory { orgs })
}
