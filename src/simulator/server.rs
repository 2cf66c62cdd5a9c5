//! The HTTP server: the Navigator endpoint API under `/v1` and the simulator's own controls under
//! `/sim`. Handlers lock the state briefly and never wait while holding it.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, Request, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};

use super::faults::{Fault, FaultPatch, Faults};
use super::metering;
use super::state::{Applied, Refusal, State};
use super::stats::{Kind, Stats};
use crate::endpoint::http::{ErrorBody, IDEMPOTENCY_KEY};
use crate::endpoint::{
    EndpointInfo, InstanceDesired, NewInstance, NewOrg, NewUser, OrgDesired, Secret, TicketDesired, TicketState,
    UserDesired,
};

/// The header with which a request says what time it is (simulator only; see the API document).
pub const SIMULATOR_TIME: &str = "X-Simulator-Time";

/// The most items one list answer holds.
const MAX_PAGE: usize = 1_000;

/// What every handler shares.
pub struct Shared {
    state: Mutex<State>,
    pub stats: Stats,
    faults: Mutex<Faults>,
    token: Secret,
    provision: Duration,
    /// Set when the state changed and the state file should be written.
    pub dirty: Notify,
    shutdown: watch::Receiver<bool>,
    /// See [`super::SimulatorConfig::assign_ids`].
    assign_ids: bool,
    /// See [`super::SimulatorConfig::create_time`].
    create_time: Duration,
}

pub type App = Arc<Shared>;

impl Shared {
    pub fn new(
        state: State,
        faults: Faults,
        token: Secret,
        provision: Duration,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Shared {
            state: Mutex::new(state),
            stats: Stats::default(),
            faults: Mutex::new(faults),
            token,
            provision,
            dirty: Notify::new(),
            shutdown,
            assign_ids: false,
            create_time: Duration::ZERO,
        }
    }

    /// Whether ids are assigned by the simulator, and how long a `POST` create takes.
    pub fn with_creates(mut self, assign_ids: bool, create_time: Duration) -> Self {
        self.assign_ids = assign_ids;
        self.create_time = create_time;
        self
    }

    /// Carries out a `POST` create after the create time, to its end even when the client goes away in the
    /// meantime (its request future is dropped then, but not this task): a real endpoint finishes what it
    /// accepted, which is what makes a lost answer dangerous.
    async fn create_detached(self: &Arc<Self>, create: impl FnOnce(&Shared) -> Answer + Send + 'static) -> Answer {
        let app = self.clone();
        let task = tokio::spawn(async move {
            if !app.create_time.is_zero() {
                app.pause(app.create_time).await;
            }
            create(&app)
        });
        task.await.unwrap_or_else(|error| {
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal",
                format!("the create failed: {error}"),
            ))
        })
    }

    /// `POST` creates of organisations, users and instances exist only where the simulator assigns ids.
    fn require_assigned_ids(&self, put_path: &str) -> Result<(), ApiError> {
        if self.assign_ids {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("this endpoint keys objects by name: create with PUT {put_path}"),
            ))
        }
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn changed(&self) {
        self.dirty.notify_one();
    }

    /// Counts a create and schedules a save after a PUT, then answers with the object.
    fn applied<T: Serialize>(&self, applied: Applied, kind: Kind, key: String, view: T, async_op: bool) -> Answer {
        if applied == Applied::Created {
            self.stats.created(kind, key);
        }
        if applied != Applied::Unchanged {
            self.changed();
        }
        answer(applied_status(applied, async_op), view)
    }

    /// Sleeps, but not past shutdown (a hanging request must not hold the server open).
    async fn pause(&self, duration: Duration) {
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(duration) => {}
            _ = shutdown.wait_for(|stop| *stop) => {}
        }
    }
}

/// The contract's error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "Invalid", message)
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Invalid(m) => ApiError::invalid(m),
            Refusal::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "NotFound", m),
            Refusal::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "Conflict", m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(ErrorBody {
                code: self.code.into(),
                message: self.message,
            }),
        )
            .into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

type Answer = Result<Response, ApiError>;

/// The time of the request: `X-Simulator-Time` when given, else the clock.
#[derive(Clone, Copy, Debug)]
struct Now(Timestamp);

fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(value)| value)
        .map_err(|rejection| ApiError::invalid(rejection.body_text()))
}

fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(value)| value)
        .map_err(|rejection| ApiError::invalid(rejection.body_text()))
}

fn answer(status: StatusCode, body: impl Serialize) -> Answer {
    Ok((status, Json(body)).into_response())
}

fn applied_status(applied: Applied, asynchronous: bool) -> StatusCode {
    match applied {
        Applied::Created | Applied::Changed if asynchronous => StatusCode::ACCEPTED,
        Applied::Created => StatusCode::CREATED,
        Applied::Changed | Applied::Unchanged => StatusCode::OK,
    }
}

/// Compares in time independent of where the strings differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorize(app: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match given {
        Some(token) if same_secret(token.as_bytes(), app.token.expose().as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "the bearer token is not valid",
        )),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "send the endpoint's token as 'Authorization: Bearer <token>'",
        )),
    }
}

fn request_time(headers: &HeaderMap) -> Result<Timestamp, ApiError> {
    match headers.get(SIMULATOR_TIME) {
        None => Ok(Timestamp::now()),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.parse::<Timestamp>().ok())
            .ok_or_else(|| ApiError::invalid(format!("{SIMULATOR_TIME} must be an RFC 3339 time"))),
    }
}

/// Logs one `/v1` request when it ends, also when the client goes away first (the answer is dropped).
struct LogOnEnd<'a> {
    app: &'a App,
    method: Method,
    path: String,
    arrived: Instant,
    status: Option<u16>,
}

impl Drop for LogOnEnd<'_> {
    fn drop(&mut self) {
        let method = self.method.as_str();
        self.app.stats.ended(method, &self.path, self.arrived, self.status);
    }
}

/// Counts and logs every `/v1` request, then lets `gate` decide its fate.
async fn contract_gate(AxumState(app): AxumState<App>, request: Request, next: Next) -> Response {
    let arrived = Instant::now();
    app.stats.request(request.method().as_str(), arrived);
    let mut log = LogOnEnd {
        app: &app,
        method: request.method().clone(),
        path: request.uri().path().to_owned(),
        arrived,
        status: None,
    };
    let response = gate(&app, request, next).await;
    log.status = Some(response.status().as_u16());
    response
}

/// Authenticates, dates, delays and maybe fails a `/v1` request.
async fn gate(app: &App, mut request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    if let Err(error) = authorize(app, request.headers()) {
        tracing::info!(%method, %path, status = 401, "refused: not authenticated");
        return error.into_response();
    }
    let now = match request_time(request.headers()) {
        Ok(now) => now,
        Err(error) => return error.into_response(),
    };
    request.extensions_mut().insert(Now(now));
    let mutating = !matches!(method, Method::GET | Method::HEAD);
    let (latency, fault) = {
        let mut faults = app.faults();
        (faults.latency(), faults.draw(mutating))
    };
    if !latency.is_zero() {
        app.pause(latency).await;
    }
    if let Some(kind) = fault.kind() {
        app.stats.fault(kind);
    }
    let response = match fault {
        Fault::None => next.run(request).await,
        Fault::ServerError { after } => {
            if after {
                drop(next.run(request).await);
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal",
                    "simulated failure after the change",
                )
                .into_response()
            } else {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", "simulated outage").into_response()
            }
        }
        Fault::Throttle { retry_after } => ApiError {
            retry_after: Some(retry_after.as_secs()),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Throttled",
                "simulated throttling; retry later",
            )
        }
        .into_response(),
        Fault::Hang { after, duration } => {
            if after {
                drop(next.run(request).await);
            }
            app.pause(duration).await;
            ApiError::new(StatusCode::GATEWAY_TIMEOUT, "Timeout", "simulated timeout").into_response()
        }
    };
    let status = response.status().as_u16();
    let fault = fault.kind().unwrap_or("none");
    if mutating {
        tracing::info!(%method, %path, status, fault, "request");
    } else {
        tracing::debug!(%method, %path, status, fault, "request");
    }
    response
}

/// Authenticates the simulator's own controls (not counted, never failed).
async fn control_gate(AxumState(app): AxumState<App>, mut request: Request, next: Next) -> Response {
    if let Err(error) = authorize(&app, request.headers()) {
        return error.into_response();
    }
    match request_time(request.headers()) {
        Ok(now) => {
            request.extensions_mut().insert(Now(now));
            next.run(request).await
        }
        Err(error) => error.into_response(),
    }
}

pub fn router(app: App) -> Router {
    let contract = Router::new()
        .route("/v1/info", get(info))
        .route("/v1/orgs", get(list_orgs).post(create_org))
        .route("/v1/orgs/{org}", put(put_org).get(get_org).delete(delete_org))
        .route("/v1/orgs/{org}/users", get(list_users).post(create_user))
        .route(
            "/v1/orgs/{org}/users/{username}",
            put(put_user).get(get_user).delete(delete_user),
        )
        .route("/v1/orgs/{org}/instances", get(list_instances).post(create_instance))
        .route(
            "/v1/orgs/{org}/instances/{name}",
            put(put_instance).get(get_instance).delete(delete_instance),
        )
        .route("/v1/orgs/{org}/usage", get(usage))
        .route("/v1/tickets", post(create_ticket).get(find_tickets))
        .route("/v1/tickets/{id}", get(get_ticket))
        .route("/v1/tickets/{id}/comments", post(add_comment))
        .route("/v1/tickets/{id}/close", post(close_ticket))
        .route("/v1/tickets/{id}/reopen", post(reopen_ticket))
        .route_layer(middleware::from_fn_with_state(app.clone(), contract_gate));
    let controls = Router::new()
        .route("/sim/stats", get(stats).delete(reset_stats))
        .route("/sim/requests", get(requests))
        .route("/sim/faults", get(faults).put(set_faults))
        .route("/sim/tickets/{id}/reply", post(vendor_reply))
        .route_layer(middleware::from_fn_with_state(app.clone(), control_gate));
    contract
        .merge(controls)
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                "no such path in the Navigator endpoint API",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "this path does not take that method",
            )
        })
        .with_state(app)
}

// --- /v1 ------------------------------------------------------------------------------------------

async fn info(AxumState(app): AxumState<App>) -> Answer {
    answer(
        StatusCode::OK,
        EndpointInfo {
            version: concat!("navigator-simulator/", env!("CARGO_PKG_VERSION")).into(),
            api_version: "v1".into(),
            service_types: metering::catalog_info(),
            roles: metering::roles_info(),
            support: true,
            assigns_ids: app.assign_ids,
        },
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageQuery {
    after: Option<String>,
    limit: Option<usize>,
    /// Only organisations or instances of this name (a search, for endpoints that assign ids).
    name: Option<String>,
    /// Only users of this name.
    username: Option<String>,
}

impl PageQuery {
    fn limit(&self) -> usize {
        self.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE)
    }
}

#[derive(Serialize)]
struct Page<T> {
    items: Vec<T>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

async fn list_orgs(AxumState(app): AxumState<App>, q: Result<Query<PageQuery>, QueryRejection>) -> Answer {
    let q = query(q)?;
    let (items, next) = app.state().list_orgs(q.after.as_deref(), q.limit(), q.name.as_deref());
    answer(StatusCode::OK, Page { items, next })
}

async fn put_org(
    AxumState(app): AxumState<App>,
    Extension(Now(now)): Extension<Now>,
    Path(org): Path<String>,
    body: Result<Json<OrgDesired>, JsonRejection>,
) -> Answer {
    let desired = json_body(body)?;
    let (view, applied) = if app.assign_ids {
        app.state().update_org(&org, &desired, now)?
    } else {
        app.state().put_org(&org, &desired, now)?
    };
    app.applied(applied, Kind::Org, org, view, false)
}

async fn create_org(
    AxumState(app): AxumState<App>,
    Extension(Now(now)): Extension<Now>,
    body: Result<Json<NewOrg>, JsonRejection>,
) -> Answer {
    app.require_assigned_ids("/v1/orgs/{org}")?;
    let new = json_body(body)?;
    app.create_detached(move |app| {
        let view = app.state().create_org(&new.name, &new.spec, now)?;
        app.stats.created(Kind::Org, new.name);
        app.changed();
        answer(StatusCode::CREATED, view)
    })
    .await
}

async fn get_org(AxumState(app): AxumState<App>, Path(org): Path<String>) -> Answer {
    answer(StatusCode::OK, app.state().get_org(&org)?)
}

async fn delete_org(
    AxumState(app): AxumState<App>,
    Extension(Now(now)): Extension<Now>,
    Path(org): Path<String>,
) -> Answer {
    if app.state().delete_org(&org, now)? {
        app.changed();
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_users(
    AxumState(app): AxumState<App>,
    Extension(Now(now)): Extension<Now>,
    Path(org): Path<String>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Answer {
    let q = query(q)?;
    let (items, next) = app
        .state()
        .list_users(&org, now, q.after.as_deref(), q.limit(), q.username.as_deref())?;
    answer(StatusCode::OK, Page { items, next })
}

async fn put_user(
    AxumState(app): AxumState<App>,
    Extension(Now(now)): Extension<Now>,
    Path((org, username)): Path<(String, String)>,
    body: Result<Json<UserDesired>, JsonRejection>,
) -> Answer {
    let desired = json_body(body)?;
    let (view, applied) = if app.assign_ids {
        app.state().update_user(&org, &username, &desired, now)?
    } else {
        app.state().put_user(&org, &username, &desired, now, app.provision)?
    };
    app.applied(applied, Kind::User, format!("{org}/{username}"), view, false)
}

async fn create_user(
    AxumState(app): AxumState<App>,
    Extension(Now(now)): Extension<Now>,
    Path(org): Path<String>,
    body: Result<Json<NewUser>, JsonRejection>,
) -> Answer {
    app.require_assigned_ids("/v1/orgs/{org}/users/{username}")?;
    let new = json_body(body)?;
    app.create_detached(move |app| {
        let (view, org_name) = app
            .state()
            .create_user(&org, &new.username, &new.spec, now, app.provision)?;
        app.stats.created(Kind::User, format!("{org_name}/{}", new.username));
        app.changed();
        answer(StatusCode::CREATED, view)
    })
    .await
}

async fn get_user(
    AxumState(app): AxumState<App>,
    Extension(Now(now)): Extension<Now>,
    Path((org, username)): Path<(String, String)>,
) -> Answer {
    answer(StatusCode::OK, app.state().get_user(&org, &username, now)?)
}

async fn delete_user(AxumState(app): AxumState<App>, Path((org, username)): Path<(String, String)>) -> Answer {
    if app.state().delete_user(&org, &username) {
        app.changed();
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_instances(
    AxumState(app): AxumState<App>,
    Extension(Now(now)): Extension<Now>,
    Path(org): Path<String>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Answer {
    let q = query(q)?;
    let (items, next) = app
        .state()
        .list_instances(&org, now, q.after.as_deref(), q.limit(), q.name.as_deref())?;
    answer(StatusCode::OK, Page { items, next })
}

async fn put_instance(
    AxumState(app): AxumState<App>,
    Extension(Now(now)): Extension<Now>,
    Path((org, name)): Path<(String, String)>,
    body: Result<Json<InstanceDesired>, JsonRejection>,
) -> Answer {
    let desired = json_body(body)?;
    let (view, applied) = if app.assign_ids {
        app.state().update_instance(&org, &name, &desired, now, app.provision)?
    } else {
        app.state().put_instance(&org, &name, &desired, now, app.provision)?
    };
    app.applied(applied, Kind::Instance, format!("{org}/{name}"), view, true)
}

async fn create_instance(
    AxumState(app): AxumState<App>,
    Extension(Now(now)): Extension<Now>,
    Path(org): Path<String>,
    body: Result<Json<NewInstance>, JsonRejection>,
) -> Answer {
    app.require_assigned_ids("/v1/orgs/{org}/instances/{name}")?;
    let new = json_body(body)?;
    app.create_detached(move |app| {
        let (view, org_name) = app
            .state()
            .create_instance(&org, &new.name, &new.spec, now, app.provision)?;
        app.stats.created(Kind::Instance, format!("{org_name}/{}", new.name));
        app.changed();
        answer(StatusCode::ACCEPTED, view)
    })
    .await
}

async fn get_instance(
    AxumState(app): AxumState<App>,
    Extension(Now(now)): Extension<Now>,
    Path((org, name)): Path<(String, String)>,
) -> Answer {
    answer(StatusCode::OK, app.state().get_instance(&org, &name, now)?)
}

async fn delete_instance(
    AxumState(app): AxumState<App>,
    Extension(Now(now)): Extension<Now>,
    Path((org, name)): Path<(String, String)>,
) -> Answer {
    let deleting = app.state().delete_instance(&org, &name, now, app.provision)?;
    app.changed();
    match deleting {
        Some(view) => answer(StatusCode::ACCEPTED, view),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

#[derive(Deserialize)]
struct UsageQuery {
    from: String,
    to: String,
}

async fn usage(
    AxumState(app): AxumState<App>,
    Extension(Now(now)): Extension<Now>,
    Path(org): Path<String>,
    q: Result<Query<UsageQuery>, QueryRejection>,
) -> Answer {
    let q = query(q)?;
    let parse = |field: &str, value: &str| {
        value
            .parse::<Timestamp>()
            .map_err(|_| ApiError::invalid(format!("{field} must be an RFC 3339 time, not {value:?}")))
    };
    let (from, to) = (parse("from", &q.from)?, parse("to", &q.to)?);
    if from >= to {
        return Err(ApiError::invalid(format!("from ({from}) must be before to ({to})")));
    }
    if to.duration_since(from) > SignedDuration::from_hours(24 * 3_700) {
        return Err(ApiError::invalid("the window must be at most ten years long"));
    }
    answer(StatusCode::OK, app.state().usage(&org, from, to, now))
}

fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    headers
        .get(IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| ApiError::invalid(format!("the {IDEMPOTENCY_KEY} header is required")))
}

async fn create_ticket(
    AxumState(app): AxumState<App>,
    Extension(Now(now)): Extension<Now>,
    headers: HeaderMap,
    body: Result<Json<TicketDesired>, JsonRejection>,
) -> Answer {
    let key = idempotency_key(&headers)?;
    let desired = json_body(body)?;
    app.create_detached(move |app| {
        // Where ids are assigned the key is only a field to search by: a repeat opens a second ticket.
        let (ticket, created) = if app.assign_ids {
            (app.state().open_ticket(&key, &desired, now)?, true)
        } else {
            app.state().create_ticket(&key, &desired, now)?
        };
        if created {
            app.stats.created(Kind::Ticket, key);
            app.changed();
        }
        answer(if created { StatusCode::CREATED } else { StatusCode::OK }, ticket)
    })
    .await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TicketQuery {
    idempotency_key: Option<String>,
    org: Option<String>,
}

async fn find_tickets(AxumState(app): AxumState<App>, q: Result<Query<TicketQuery>, QueryRejection>) -> Answer {
    let q = query(q)?;
    let items = app.state().find_tickets(q.idempotency_key.as_deref(), q.org.as_deref());
    answer(StatusCode::OK, Page { items, next: None })
}

async fn get_ticket(AxumState(app): AxumState<App>, Path(id): Path<String>) -> Answer {
    answer(StatusCode::OK, app.state().get_ticket(&id)?)
}

#[derive(Deserialize)]
struct CommentBody {
    body: String,
}

async fn add_comment(
    AxumState(app): AxumState<App>,
    Extension(Now(now)): Extension<Now>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<CommentBody>, JsonRejection>,
) -> Answer {
    let key = idempotency_key(&headers)?;
    let body = json_body(body)?;
    let (comment, created) = app.state().add_comment(&id, &key, &body.body, now)?;
    if created {
        app.changed();
    }
    answer(if created { StatusCode::CREATED } else { StatusCode::OK }, comment)
}

async fn close_ticket(
    AxumState(app): AxumState<App>,
    Extension(Now(now)): Extension<Now>,
    Path(id): Path<String>,
) -> Answer {
    let ticket = app.state().close_ticket(&id, now)?;
    app.changed();
    answer(StatusCode::OK, ticket)
}

async fn reopen_ticket(
    AxumState(app): AxumState<App>,
    Extension(Now(now)): Extension<Now>,
    Path(id): Path<String>,
) -> Answer {
    let ticket = app.state().reopen_ticket(&id, now)?;
    app.changed();
    answer(StatusCode::OK, ticket)
}

// --- /sim -----------------------------------------------------------------------------------------

async fn stats(AxumState(app): AxumState<App>) -> Answer {
    let (held, duplicates) = {
        let state = app.state();
        (state.held(Timestamp::now()), state.duplicates(Timestamp::now()))
    };
    answer(StatusCode::OK, app.stats.snapshot(held, duplicates))
}

async fn requests(AxumState(app): AxumState<App>) -> Answer {
    answer(StatusCode::OK, app.stats.log())
}

async fn reset_stats(AxumState(app): AxumState<App>) -> Answer {
    app.stats.reset();
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn faults(AxumState(app): AxumState<App>) -> Answer {
    let config = app.faults().config().clone();
    answer(StatusCode::OK, config)
}

async fn set_faults(AxumState(app): AxumState<App>, body: Result<Json<FaultPatch>, JsonRejection>) -> Answer {
    let patch = json_body(body)?;
    let config = {
        let mut faults = app.faults();
        faults.apply(&patch).map_err(ApiError::invalid)?;
        faults.config().clone()
    };
    tracing::info!(?config, "fault settings changed");
    answer(StatusCode::OK, config)
}

#[derive(Deserialize)]
struct ReplyBody {
    body: Option<String>,
    state: Option<TicketState>,
}

async fn vendor_reply(
    AxumState(app): AxumState<App>,
    Extension(Now(now)): Extension<Now>,
    Path(id): Path<String>,
    body: Result<Json<ReplyBody>, JsonRejection>,
) -> Answer {
    let reply = json_body(body)?;
    let ticket = app.state().vendor_reply(&id, reply.body.as_deref(), reply.state, now)?;
    app.changed();
    answer(StatusCode::OK, ticket)
}

#[cfg(test)]
mod tests {
    /// Every path and method the server routes is in the API document, and nothing more.
    #[test]
    fn the_api_document_describes_every_route() {
        let routes: &[(&str, &[&str])] = &[
            ("/v1/info", &["get"]),
            ("/v1/orgs", &["get", "post"]),
            ("/v1/orgs/{org}", &["put", "get", "delete"]),
            ("/v1/orgs/{org}/users", &["get", "post"]),
            ("/v1/orgs/{org}/users/{username}", &["put", "get", "delete"]),
            ("/v1/orgs/{org}/instances", &["get", "post"]),
            ("/v1/orgs/{org}/instances/{name}", &["put", "get", "delete"]),
            ("/v1/orgs/{org}/usage", &["get"]),
            ("/v1/tickets", &["post", "get"]),
            ("/v1/tickets/{id}", &["get"]),
            ("/v1/tickets/{id}/comments", &["post"]),
            ("/v1/tickets/{id}/close", &["post"]),
            ("/v1/tickets/{id}/reopen", &["post"]),
            ("/sim/stats", &["get", "delete"]),
            ("/sim/requests", &["get"]),
            ("/sim/faults", &["get", "put"]),
            ("/sim/tickets/{id}/reply", &["post"]),
        ];
        let document: serde_yaml::Value =
            serde_yaml::from_str(include_str!("../../docs/endpoint-api.yaml")).expect("the API document is YAML");
        assert_eq!(document["openapi"].as_str(), Some("3.0.3"));
        let paths = document["paths"].as_mapping().expect("paths");
        assert_eq!(
            paths.len(),
            routes.len(),
            "the document has paths the server does not route"
        );
        for (path, methods) in routes {
            let item = paths.get(*path).unwrap_or_else(|| panic!("{path} is not documented"));
            for method in *methods {
                assert!(item.get(*method).is_some(), "{method} {path} is not documented");
            }
            let documented = item
                .as_mapping()
                .unwrap()
                .keys()
                .filter(|k| k.as_str() != Some("parameters"))
                .count();
            assert_eq!(
                documented,
                methods.len(),
                "{path} documents methods the server does not route"
            );
        }
        // Every schema reference resolves.
        let text = include_str!("../../docs/endpoint-api.yaml");
        let components = &document["components"];
        for reference in text.split("$ref: \"#/components/").skip(1) {
            let target = reference.split('"').next().unwrap();
            let mut node = components;
            for part in target.split('/') {
                node = &node[part];
            }
            assert!(!node.is_null(), "#/components/{target} does not exist");
        }
    }
}
