//! The Request Tracker driver: a provider's support endpoint on Request Tracker 5's REST2 API
//! (`<url>/REST/2.0`). It offers tickets only; organisations, users, instances and usage are `Unsupported`.
//!
//! - A ticket is filed in the configured queue with the request's uid in an idempotency custom field, its
//!   severity in a severity custom field and as RT's priority, and the customer in a customer field when one
//!   is configured. RT assigns ticket ids and a repeated create files a second ticket, so creates are sent
//!   once (the reconciler's create protocol guards them) and `find_ticket` searches the idempotency field
//!   with TicketSQL.
//! - RT drops a value for a custom field that is unknown or not applied to the queue and still answers
//!   201/200 without a word, so the driver checks the queue's fields before every create and at every probe
//!   (`info`), and reads each new ticket back to check that it holds its key.
//! - A provider comment is an RT comment (internal) or correspondence (a reply), sent with the subject
//!   `Navigator comment <key>`: the transaction's `Data` keeps the subject, so one history read shows
//!   which comments arrived, and a comment is never sent twice.
//! - Comments and replies written by any other RT user than the one who filed the ticket (Navigator's) are
//!   the vendor's. RT's statuses map to [`TicketState`]: `new` New, `open` Open, `stalled`
//!   WaitingOnCustomer, `resolved`, `rejected` and `deleted` Closed. Closing resolves the ticket; reopening
//!   sets it `open`. RT answers an invalid status change with 200 and a message: the ticket is read back.
//!
//! Calls are not retried inside the driver: every failure is classified and the reconciler retries with
//! backoff, which also keeps creates to one request.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};

use super::http::{RequestObserver, base_url, describe, http_client, retry_after};
use super::limits::Limits;
use super::*;

/// The subject of a provider comment, followed by its idempotency key.
pub const COMMENT_MARKER: &str = "Navigator comment ";

/// What the driver needs to reach RT and where it files tickets; filled from a CloudEndpoint.
#[derive(Clone)]
pub struct RequestTrackerConfig {
    /// RT's web address, e.g. `https://rt.example.com`; REST2 is under `/REST/2.0`.
    pub url: String,
    /// An RT authentication token, or the password of `username`. Never logged.
    pub credentials: Secret,
    /// Set: HTTP Basic with this user and `credentials` as password. Unset: `credentials` is a token.
    pub username: Option<String>,
    pub queue: String,
    pub idempotency_key_field: String,
    pub severity_field: String,
    pub customer_field: Option<String>,
    pub ca_bundle_pem: Option<Vec<u8>>,
    pub rate_limit_per_second: u32,
    pub max_concurrent: usize,
    pub timeout: Duration,
    pub observer: Option<Arc<dyn RequestObserver>>,
}

impl RequestTrackerConfig {
    /// A configuration with the default field names and limits (10 requests/s, 8 in flight, 10 s timeout).
    pub fn new(url: impl Into<String>, credentials: impl Into<Secret>, queue: impl Into<String>) -> Self {
        RequestTrackerConfig {
            url: url.into(),
            credentials: credentials.into(),
            username: None,
            queue: queue.into(),
            idempotency_key_field: "Navigator Request".into(),
            severity_field: "Severity".into(),
            customer_field: None,
            ca_bundle_pem: None,
            rate_limit_per_second: 10,
            max_concurrent: 8,
            timeout: Duration::from_secs(10),
            observer: None,
        }
    }
}

/// A driver for one Request Tracker queue.
pub struct RequestTrackerDriver {
    base: Url,
    credentials: Secret,
    username: Option<String>,
    queue: String,
    idempotency_key_field: String,
    severity_field: String,
    customer_field: Option<String>,
    client: reqwest::Client,
    limits: Limits,
    timeout: Duration,
    max_queue_wait: Duration,
    observer: Option<Arc<dyn RequestObserver>>,
    /// The text of transactions already read: RT never changes it, and a poll would read it again.
    bodies: Mutex<HashMap<String, String>>,
    /// When the queue and its custom fields were last found in order.
    queue_checked: Mutex<Option<std::time::Instant>>,
}

/// How long a passed queue check spares a create from checking again.
const QUEUE_CHECK_VALID: Duration = Duration::from_secs(60);

impl fmt::Debug for RequestTrackerDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestTrackerDriver")
            .field("base", &self.base.as_str())
            .field("queue", &self.queue)
            .field("credentials", &self.credentials)
            .finish()
    }
}

/// A 2xx answer: its status and JSON body (`Null` when empty).
struct Answer {
    status: StatusCode,
    body: Value,
}

impl RequestTrackerDriver {
    pub fn new(config: RequestTrackerConfig) -> DriverResult<Self> {
        let mut base = base_url(&config.url)?;
        if let Ok(mut segments) = base.path_segments_mut() {
            segments.extend(["REST", "2.0"]);
        }
        // RT answers slowly (a Perl server, often a few workers): a call waits its turn up to one request
        // timeout rather than failing `Throttled` and losing the reconcile's work so far.
        let max_queue_wait = config.timeout;
        Ok(RequestTrackerDriver {
            base,
            client: http_client(config.ca_bundle_pem.as_deref(), config.timeout, config.max_concurrent)?,
            limits: Limits::new(
                config.rate_limit_per_second.max(1),
                config.max_concurrent.max(1),
                max_queue_wait,
            ),
            credentials: config.credentials,
            username: config.username,
            queue: config.queue,
            idempotency_key_field: config.idempotency_key_field,
            severity_field: config.severity_field,
            customer_field: config.customer_field,
            timeout: config.timeout,
            max_queue_wait,
            observer: config.observer,
            bodies: Mutex::new(HashMap::new()),
            queue_checked: Mutex::new(None),
        })
    }

    fn queue_checked_within(&self, within: Duration) -> bool {
        let checked = *self.queue_checked.lock().unwrap_or_else(|e| e.into_inner());
        checked.is_some_and(|at| at.elapsed() < within)
    }

    /// The custom fields tickets need in the queue.
    fn required_fields(&self) -> Vec<&str> {
        let mut fields = vec![self.idempotency_key_field.as_str(), self.severity_field.as_str()];
        fields.extend(self.customer_field.as_deref());
        fields
    }

    fn url(&self, path: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.extend(path);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// One request, through the endpoint's limits; a non-2xx answer is classified.
    async fn call(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> DriverResult<Answer> {
        let url = self.url(path, query);
        let _slot = self
            .limits
            .acquire()
            .await
            .map_err(|retry_after| DriverError::Throttled { retry_after })?;
        let started = std::time::Instant::now();
        let result = self.exchange(&method, &url, body).await;
        if let Err(DriverError::Throttled { retry_after }) = &result {
            self.limits.hold_until(tokio::time::Instant::now() + *retry_after);
        }
        if let Some(observer) = &self.observer {
            observer.observe(
                result.as_ref().map_or_else(|e| e.reason(), |_| "Success"),
                started.elapsed(),
            );
        }
        result
    }

    async fn exchange(&self, method: &Method, url: &Url, body: Option<Value>) -> DriverResult<Answer> {
        let mut request = self
            .client
            .request(method.clone(), url.clone())
            .timeout(self.timeout)
            .header(reqwest::header::ACCEPT, "application/json");
        request = match &self.username {
            Some(user) => request.basic_auth(user, Some(self.credentials.expose())),
            None => request.header(
                reqwest::header::AUTHORIZATION,
                format!("token {}", self.credentials.expose()),
            ),
        };
        if let Some(body) = body {
            request = request.json(&body);
        }
        let what = format!("{method} {}", url.path());
        let unavailable = |e: reqwest::Error| {
            let e = e.without_url();
            DriverError::Unavailable {
                message: format!("{what}: {}", describe(&e)),
                source: Some(Box::new(e)),
            }
        };
        let response = request.send().await.map_err(unavailable)?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(unavailable)?;
        tracing::debug!(%what, status = status.as_u16(), "Request Tracker answered");
        if status.is_success() {
            let body = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).map_err(|e| {
                    DriverError::unavailable(format!("{what}: Request Tracker's answer is not JSON: {e}"))
                })?
            };
            return Ok(Answer { status, body });
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(DriverError::Throttled {
                retry_after: retry_after(&headers),
            });
        }
        Err(classify(status, &rt_message(&bytes), &what, self.username.as_deref()))
    }

    async fn get(&self, path: &[&str], query: &[(&str, &str)]) -> DriverResult<Value> {
        Ok(self.call(Method::GET, path, query, None).await?.body)
    }

    /// The queue's ticket custom fields; `Invalid` naming the queue or the fields that are missing.
    async fn check_queue(&self) -> DriverResult<()> {
        let queue = match self.get(&["queue", &self.queue], &[]).await {
            Ok(queue) => queue,
            Err(DriverError::NotFound { .. }) => {
                return Err(DriverError::Invalid {
                    message: format!(
                        "queue {:?} does not exist in Request Tracker, or Navigator's RT user may not see it; \
                         check requestTracker.queue",
                        self.queue
                    ),
                });
            }
            Err(e) => return Err(e),
        };
        let applied = names_of(&queue["TicketCustomFields"]);
        match missing_fields(&self.required_fields(), &applied) {
            None => {
                *self.queue_checked.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::time::Instant::now());
                Ok(())
            }
            Some(missing) => Err(DriverError::Invalid {
                message: format!(
                    "custom field(s) {missing} are not applied to queue {:?} in Request Tracker (RT drops their \
                     values silently); create them and apply them to the queue, or change requestTracker's \
                     field names",
                    self.queue
                ),
            }),
        }
    }

    /// The ticket's history, oldest first: every page.
    async fn history(&self, id: &str) -> DriverResult<Vec<Value>> {
        let mut transactions = Vec::new();
        let mut page = 1u32;
        loop {
            let page_text = page.to_string();
            let query = [
                ("fields", "Type,Creator,Created,Data"),
                ("per_page", "100"),
                ("page", page_text.as_str()),
            ];
            let mut answer = self.get(&["ticket", id, "history"], &query).await?;
            if let Value::Array(items) = answer["items"].take() {
                transactions.extend(items);
            }
            if f64::from(page) >= answer["pages"].as_f64().unwrap_or(1.0) {
                return Ok(transactions);
            }
            page += 1;
        }
    }

    /// The ticket's comments and replies, oldest first, with their text.
    async fn comments(&self, id: &str, filed_by: &str) -> DriverResult<Vec<Comment>> {
        let mut comments = Vec::new();
        for transaction in self.history(id).await? {
            let Some(mut comment) = comment_of(&transaction, filed_by) else {
                continue;
            };
            if comment.idempotency_key.is_none() {
                comment.body = self.body(&comment.id).await?;
            }
            comments.push(comment);
        }
        Ok(comments)
    }

    /// The provider comment sent with this key, if it is in the ticket's history.
    async fn sent_comment(&self, id: &str, idempotency_key: &str) -> DriverResult<Option<Comment>> {
        let marker = format!("{COMMENT_MARKER}{idempotency_key}");
        Ok(self
            .history(id)
            .await?
            .iter()
            .filter(|t| t["Data"].as_str().is_some_and(|subject| subject.trim() == marker))
            .find_map(|t| comment_of(t, t["Creator"]["id"].as_str().unwrap_or_default())))
    }

    /// The plain text of a transaction.
    async fn body(&self, transaction: &str) -> DriverResult<String> {
        if let Some(body) = self.bodies.lock().unwrap_or_else(|e| e.into_inner()).get(transaction) {
            return Ok(body.clone());
        }
        let answer = self
            .get(
                &["transaction", transaction, "attachments"],
                &[("fields", "Content,ContentType")],
            )
            .await?;
        let body = answer["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["ContentType"].as_str() == Some("text/plain"))
            .and_then(|a| a["Content"].as_str())
            .unwrap_or_default()
            .trim_end()
            .to_string();
        self.bodies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(transaction.to_string(), body.clone());
        Ok(body)
    }

    /// Sets the ticket's RT status, unless `done` says it is there already; RT's answer is 200 whether it
    /// took the change or not, so the ticket is read back.
    async fn set_status(&self, id: &str, status: &str, done: fn(TicketState) -> bool) -> DriverResult<Ticket> {
        let ticket = self.require_ticket(id).await?;
        if done(ticket.state) {
            return Ok(ticket);
        }
        let answer = self
            .call(Method::PUT, &["ticket", id], &[], Some(json!({ "Status": status })))
            .await?;
        let ticket = self.require_ticket(id).await?;
        if done(ticket.state) {
            return Ok(ticket);
        }
        Err(DriverError::Invalid {
            message: format!(
                "Request Tracker did not set ticket {id} {status}: {}",
                messages(&answer.body).join("; ")
            ),
        })
    }

    async fn require_ticket(&self, id: &str) -> DriverResult<Ticket> {
        self.get_ticket(id).await?.ok_or_else(|| DriverError::NotFound {
            message: format!("ticket {id} not found in Request Tracker"),
        })
    }

    fn fields(&self) -> Fields<'_> {
        Fields {
            idempotency_key: &self.idempotency_key_field,
            severity: &self.severity_field,
            customer: self.customer_field.as_deref(),
        }
    }
}

/// The custom field names tickets are read and written with.
#[derive(Clone, Copy, Debug)]
pub struct Fields<'a> {
    pub idempotency_key: &'a str,
    pub severity: &'a str,
    pub customer: Option<&'a str>,
}

/// RT's error message in a JSON body (`{"message": ...}`), else the start of the body.
fn rt_message(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(value) if value["message"].is_string() => value["message"].as_str().unwrap_or_default().to_string(),
        _ => String::from_utf8_lossy(body)
            .chars()
            .take(200)
            .collect::<String>()
            .trim()
            .to_string(),
    }
}

/// A non-2xx answer as a driver error.
pub fn classify(status: StatusCode, message: &str, what: &str, username: Option<&str>) -> DriverError {
    let message = format!("HTTP {} from {what}: {message}", status.as_u16());
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => DriverError::Unauthorized {
            message: match username {
                Some(user) => format!("Request Tracker refused user {user} and its password ({message})"),
                None => format!("Request Tracker refused the token ({message})"),
            },
        },
        StatusCode::NOT_FOUND => DriverError::NotFound { message },
        StatusCode::CONFLICT => DriverError::Conflict { message },
        s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => DriverError::unavailable(message),
        s if s.is_client_error() => DriverError::Invalid { message },
        _ => DriverError::unavailable(message),
    }
}

/// The messages of a REST2 update answer (a JSON list of strings).
pub fn messages(body: &Value) -> Vec<String> {
    body.as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str().map(String::from))
        .collect()
}

/// The `name`s of a list of REST2 references.
fn names_of(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["name"].as_str().map(String::from))
        .collect()
}

/// The required fields missing from `applied`, quoted and joined; `None` when all are there.
pub fn missing_fields(required: &[&str], applied: &[String]) -> Option<String> {
    let missing: Vec<String> = required
        .iter()
        .filter(|name| !applied.iter().any(|a| a == *name))
        .map(|name| format!("{name:?}"))
        .collect();
    (!missing.is_empty()).then(|| missing.join(", "))
}

/// A REST2 id, a string or a number.
fn id_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn timestamp(value: &Value) -> Timestamp {
    value
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// RT's priority for a severity (RT's scale is 0 to 99).
pub fn priority(severity: Severity) -> u8 {
    match severity {
        Severity::Critical => 90,
        Severity::Major => 70,
        Severity::Minor => 40,
        Severity::Cosmetic => 10,
    }
}

fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "Critical",
        Severity::Major => "Major",
        Severity::Minor => "Minor",
        Severity::Cosmetic => "Cosmetic",
    }
}

fn parse_severity(name: &str) -> Option<Severity> {
    [Severity::Critical, Severity::Major, Severity::Minor, Severity::Cosmetic]
        .into_iter()
        .find(|s| severity_name(*s).eq_ignore_ascii_case(name))
}

/// RT's status as a ticket state.
pub fn ticket_state(status: &str) -> Option<TicketState> {
    match status {
        "new" => Some(TicketState::New),
        "open" => Some(TicketState::Open),
        "stalled" => Some(TicketState::WaitingOnCustomer),
        "resolved" | "rejected" | "deleted" => Some(TicketState::Closed),
        _ => None,
    }
}

/// The e-mail address in a contact such as `Hank Scorpio <hank@globex.example>` or `hank@globex.example`;
/// `None` for a contact without one (RT's requestors are e-mail addresses).
pub fn contact_email(contact: &str) -> Option<&str> {
    let address = match (contact.rfind('<'), contact.rfind('>')) {
        (Some(start), Some(end)) if start < end => &contact[start + 1..end],
        _ => contact,
    };
    let address = address.trim();
    (address.contains('@') && !address.contains(char::is_whitespace)).then_some(address)
}

/// The body of `POST /ticket`.
pub fn new_ticket_body(queue: &str, fields: Fields<'_>, key: &str, desired: &TicketDesired) -> Value {
    let mut custom = serde_json::Map::new();
    custom.insert(fields.idempotency_key.into(), json!(key));
    custom.insert(fields.severity.into(), json!(severity_name(desired.severity)));
    if let Some(customer) = fields.customer {
        custom.insert(customer.into(), json!(desired.org));
    }
    let content = format!(
        "Customer: {}\nProduct: {}\nSeverity: {}\nContact: {}\n\n{}",
        desired.org,
        desired.product,
        severity_name(desired.severity),
        desired.contact,
        desired.description
    );
    let mut body = json!({
        "Queue": queue,
        "Subject": desired.subject,
        "Content": content,
        "ContentType": "text/plain",
        "Priority": priority(desired.severity),
        "CustomFields": custom,
    });
    if let Some(email) = contact_email(&desired.contact) {
        body["Requestor"] = json!(email);
    }
    body
}

/// A history transaction as a comment: RT comments and correspondence only. Those by `filed_by` (the RT user
/// who filed the ticket: Navigator's) are the provider's, with the key from their subject; the body is left
/// empty for the caller to read where needed.
pub fn comment_of(transaction: &Value, filed_by: &str) -> Option<Comment> {
    if !matches!(transaction["Type"].as_str(), Some("Comment" | "Correspond")) {
        return None;
    }
    let id = id_of(&transaction["id"])?;
    let creator = transaction["Creator"]["id"].as_str().unwrap_or_default();
    let author = if creator == filed_by {
        Author::Provider
    } else {
        Author::Vendor
    };
    let idempotency_key = match author {
        Author::Provider => transaction["Data"]
            .as_str()
            .and_then(|subject| subject.trim().strip_prefix(COMMENT_MARKER))
            .map(|key| key.trim().to_string()),
        Author::Vendor => None,
    };
    Some(Comment {
        id,
        author,
        body: String::new(),
        created_at: timestamp(&transaction["Created"]),
        idempotency_key,
    })
}

/// The value of a single-value custom field of an RT ticket.
fn custom_field<'a>(ticket: &'a Value, name: &str) -> Option<&'a str> {
    ticket["CustomFields"]
        .as_array()?
        .iter()
        .find(|f| f["name"].as_str() == Some(name))?["values"]
        .as_array()?
        .first()?
        .as_str()
}

/// An RT ticket (`GET /ticket/{id}`) as a [`Ticket`]. The description and product are not read back:
/// they live in the ticket's first message, which nothing after filing needs.
pub fn ticket_of(rt: &Value, fields: Fields<'_>, comments: Vec<Comment>) -> DriverResult<Ticket> {
    let status = rt["Status"].as_str().unwrap_or_default();
    let state = ticket_state(status).ok_or_else(|| {
        DriverError::unavailable(format!(
            "Request Tracker answered a ticket with unknown status {status:?}"
        ))
    })?;
    let external_id =
        id_of(&rt["id"]).ok_or_else(|| DriverError::unavailable("Request Tracker answered a ticket without id"))?;
    Ok(Ticket {
        external_id,
        idempotency_key: custom_field(rt, fields.idempotency_key).map(String::from),
        org: fields
            .customer
            .and_then(|name| custom_field(rt, name))
            .unwrap_or_default()
            .to_string(),
        // A ticket whose severity field is empty (set by hand in RT) reads as Minor.
        severity: custom_field(rt, fields.severity)
            .and_then(parse_severity)
            .unwrap_or(Severity::Minor),
        product: String::new(),
        subject: rt["Subject"].as_str().unwrap_or_default().to_string(),
        description: String::new(),
        contact: rt["Requestor"][0]["id"].as_str().unwrap_or_default().to_string(),
        state,
        created_at: timestamp(&rt["Created"]),
        updated_at: timestamp(&rt["LastUpdated"]),
        comments,
    })
}

/// TicketSQL for the tickets in `queue` whose `field` is `value`.
pub fn search_query(queue: &str, field: &str, value: &str) -> String {
    let quote = |s: &str| s.replace('\\', "\\\\").replace('\'', "\\'");
    format!(
        "Queue = '{}' AND 'CF.{{{}}}' = '{}'",
        quote(queue),
        field.replace(['{', '}'], ""),
        quote(value)
    )
}

fn unsupported<T>(operation: &str) -> DriverResult<T> {
    Err(DriverError::Unsupported {
        operation: format!("{operation} (Request Tracker is a support endpoint only)"),
    })
}

#[async_trait]
impl Driver for RequestTrackerDriver {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            orgs: CreateKey::ServerAssigned,
            users: CreateKey::ServerAssigned,
            instances: CreateKey::ServerAssigned,
            tickets: Some(CreateKey::ServerAssigned),
            usage: false,
            // Waiting for a slot, one request's timeout, and as long again for RT to finish it.
            create_grace: (self.max_queue_wait + self.timeout) * 2,
        }
    }

    async fn info(&self) -> DriverResult<EndpointInfo> {
        let rt = self.get(&["rt"], &[]).await?;
        self.check_queue().await?;
        Ok(EndpointInfo {
            version: format!("Request Tracker {}", rt["Version"].as_str().unwrap_or("unknown")),
            api_version: "REST2".into(),
            service_types: Vec::new(),
            roles: Vec::new(),
            support: true,
            assigns_ids: true,
        })
    }

    async fn observe_org(&self, _name: &str) -> DriverResult<Option<ExternalOrg>> {
        unsupported("organisations")
    }
    async fn create_org(&self, _name: &str, _desired: &OrgDesired) -> DriverResult<ExternalOrg> {
        unsupported("organisations")
    }
    async fn apply_org(&self, _name: &str, _desired: &OrgDesired) -> DriverResult<ExternalOrg> {
        unsupported("organisations")
    }
    async fn delete_org(&self, _name: &str) -> DriverResult<Deletion> {
        unsupported("organisations")
    }
    async fn observe_user(&self, _org: &str, _username: &str) -> DriverResult<Option<ExternalUser>> {
        unsupported("users")
    }
    async fn create_user(&self, _org: &str, _username: &str, _desired: &UserDesired) -> DriverResult<ExternalUser> {
        unsupported("users")
    }
    async fn apply_user(&self, _org: &str, _username: &str, _desired: &UserDesired) -> DriverResult<ExternalUser> {
        unsupported("users")
    }
    async fn delete_user(&self, _org: &str, _username: &str) -> DriverResult<Deletion> {
        unsupported("users")
    }
    async fn observe_instance(&self, _org: &str, _name: &str) -> DriverResult<Option<ExternalInstance>> {
        unsupported("service instances")
    }
    async fn create_instance(
        &self,
        _org: &str,
        _name: &str,
        _desired: &InstanceDesired,
    ) -> DriverResult<ExternalInstance> {
        unsupported("service instances")
    }
    async fn apply_instance(
        &self,
        _org: &str,
        _name: &str,
        _desired: &InstanceDesired,
    ) -> DriverResult<ExternalInstance> {
        unsupported("service instances")
    }
    async fn delete_instance(&self, _org: &str, _name: &str) -> DriverResult<Deletion> {
        unsupported("service instances")
    }
    async fn usage(&self, _org: &str, _window: UsageWindow) -> DriverResult<Vec<UsageRecord>> {
        unsupported("usage")
    }

    async fn create_ticket(&self, idempotency_key: &str, desired: &TicketDesired) -> DriverResult<Ticket> {
        // A field RT does not know would be dropped silently, leaving a ticket nobody can find again: check
        // the queue unless a check passed within the last minute (the probe checks every poll).
        if !self.queue_checked_within(QUEUE_CHECK_VALID) {
            self.check_queue().await?;
        }
        let body = new_ticket_body(&self.queue, self.fields(), idempotency_key, desired);
        let answer = self.call(Method::POST, &["ticket"], &[], Some(body)).await?;
        let id = id_of(&answer.body["id"]).ok_or_else(|| {
            DriverError::unavailable(format!(
                "Request Tracker answered the create with HTTP {} and no ticket id: {}",
                answer.status.as_u16(),
                answer.body
            ))
        })?;
        let ticket = self.require_ticket(&id).await?;
        if ticket.idempotency_key.as_deref() != Some(idempotency_key) {
            return Err(DriverError::Invalid {
                message: format!(
                    "Request Tracker filed ticket {id} without custom field {:?} (it drops values it does not \
                     take): check that the field is free-form and applied to queue {:?}; ticket {id} cannot be \
                     found again by Navigator",
                    self.idempotency_key_field, self.queue
                ),
            });
        }
        Ok(ticket)
    }

    async fn find_ticket(&self, idempotency_key: &str) -> DriverResult<Option<Ticket>> {
        let query = search_query(&self.queue, &self.idempotency_key_field, idempotency_key);
        let found = self
            .get(
                &["tickets"],
                &[("query", &query), ("orderby", "id"), ("order", "ASC"), ("fields", "id")],
            )
            .await?;
        let oldest = found["items"]
            .as_array()
            .and_then(|items| items.first())
            .and_then(|t| id_of(&t["id"]));
        match oldest {
            Some(id) => self.get_ticket(&id).await,
            None => Ok(None),
        }
    }

    async fn get_ticket(&self, id: &str) -> DriverResult<Option<Ticket>> {
        let rt = match self.get(&["ticket", id], &[]).await {
            Ok(rt) => rt,
            Err(DriverError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let filed_by = rt["Creator"]["id"].as_str().unwrap_or_default().to_string();
        let comments = self.comments(id, &filed_by).await?;
        ticket_of(&rt, self.fields(), comments).map(Some)
    }

    async fn add_comment(&self, id: &str, idempotency_key: &str, body: &str) -> DriverResult<Comment> {
        self.add_comment_with(id, idempotency_key, body, CommentVisibility::Public)
            .await
    }

    async fn add_comment_with(
        &self,
        id: &str,
        idempotency_key: &str,
        body: &str,
        visibility: CommentVisibility,
    ) -> DriverResult<Comment> {
        // Only Navigator writes its marker subject, so the history alone tells whether the comment arrived.
        if let Some(comment) = self.sent_comment(id, idempotency_key).await? {
            return Ok(comment);
        }
        let action = match visibility {
            CommentVisibility::Public => "correspond",
            CommentVisibility::Internal => "comment",
        };
        let request = json!({
            "Subject": format!("{COMMENT_MARKER}{idempotency_key}"),
            "Content": body,
            "ContentType": "text/plain",
        });
        let answer = self
            .call(Method::POST, &["ticket", id, action], &[], Some(request))
            .await?;
        if answer.status != StatusCode::CREATED {
            return Err(DriverError::Invalid {
                message: format!(
                    "Request Tracker did not add the {action} to ticket {id}: {}",
                    messages(&answer.body).join("; ")
                ),
            });
        }
        // RT answers 201 only once the transaction is recorded; its id is read with the next poll.
        Ok(Comment {
            id: idempotency_key.to_string(),
            author: Author::Provider,
            body: body.to_string(),
            created_at: Timestamp::now(),
            idempotency_key: Some(idempotency_key.to_string()),
        })
    }

    async fn close_ticket(&self, id: &str) -> DriverResult<Ticket> {
        self.set_status(id, "resolved", |state| state == TicketState::Closed)
            .await
    }

    async fn reopen_ticket(&self, id: &str) -> DriverResult<Ticket> {
        self.set_status(id, "open", |state| state != TicketState::Closed).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: Fields<'static> = Fields {
        idempotency_key: "Navigator Request",
        severity: "Severity",
        customer: Some("Customer"),
    };

    #[test]
    fn rt_statuses_map_to_ticket_states() {
        assert_eq!(ticket_state("new"), Some(TicketState::New));
        assert_eq!(ticket_state("open"), Some(TicketState::Open));
        assert_eq!(ticket_state("stalled"), Some(TicketState::WaitingOnCustomer));
        for closed in ["resolved", "rejected", "deleted"] {
            assert_eq!(ticket_state(closed), Some(TicketState::Closed), "{closed}");
        }
        assert_eq!(ticket_state("parked"), None);
    }

    #[test]
    fn the_requestor_is_the_contacts_address() {
        assert_eq!(
            contact_email("Hank Scorpio <hank@globex.example>"),
            Some("hank@globex.example")
        );
        assert_eq!(contact_email("hank@globex.example"), Some("hank@globex.example"));
        assert_eq!(contact_email("Acme support"), None);
    }

    #[test]
    fn a_new_ticket_carries_key_severity_priority_customer_and_requestor() {
        let desired = TicketDesired {
            org: "globex".into(),
            severity: Severity::Critical,
            product: "Compute".into(),
            subject: "VMs do not start".into(),
            description: "since this morning".into(),
            contact: "Hank <hank@globex.example>".into(),
        };
        let body = new_ticket_body("Vendor Support", FIELDS, "uid-1", &desired);
        assert_eq!(body["Queue"], "Vendor Support");
        assert_eq!(body["Priority"], 90);
        assert_eq!(body["Requestor"], "hank@globex.example");
        assert_eq!(
            body["CustomFields"],
            json!({"Navigator Request": "uid-1", "Severity": "Critical", "Customer": "globex"})
        );
        assert!(body["Content"].as_str().unwrap().ends_with("since this morning"));
        let without_customer = Fields {
            customer: None,
            ..FIELDS
        };
        let body = new_ticket_body("Vendor Support", without_customer, "uid-1", &desired);
        assert_eq!(body["CustomFields"].as_object().unwrap().len(), 2);
    }

    #[test]
    fn comments_are_told_apart_by_who_wrote_them_and_keyed_by_their_subject() {
        let tx = |id: u32, kind: &str, creator: &str, data: &str| {
            json!({"id": id.to_string(), "Type": kind, "Creator": {"id": creator}, "Data": data,
                   "Created": "2026-11-30T04:05:03Z"})
        };
        let ours = comment_of(
            &tx(47, "Comment", "navigator", "Navigator comment u-1/c1\n"),
            "navigator",
        )
        .unwrap();
        assert_eq!(
            (ours.author, ours.idempotency_key.as_deref()),
            (Author::Provider, Some("u-1/c1"))
        );
        let vendor = comment_of(&tx(51, "Correspond", "vendor", "Navigator comment u-1/c1"), "navigator").unwrap();
        assert_eq!(
            (vendor.author, vendor.idempotency_key),
            (Author::Vendor, None),
            "only ours carry keys"
        );
        assert_eq!(vendor.id, "51");
        assert!(comment_of(&tx(50, "Status", "navigator", ""), "navigator").is_none());
        assert!(comment_of(&tx(41, "EmailRecord", "RT_System", "<x@y>"), "navigator").is_none());
    }

    #[test]
    fn a_ticket_is_read_from_rt_json() {
        let rt = json!({
            "id": 7, "Status": "stalled", "Subject": "VMs", "Created": "2026-11-30T04:04:59Z",
            "LastUpdated": "2026-11-30T05:00:00Z", "Requestor": [{"id": "hank@globex.example"}],
            "CustomFields": [
                {"name": "Customer", "values": ["globex"]},
                {"name": "Severity", "values": ["Major"]},
                {"name": "Navigator Request", "values": ["uid-1"]}
            ]
        });
        let ticket = ticket_of(&rt, FIELDS, vec![]).unwrap();
        assert_eq!(ticket.external_id, "7");
        assert_eq!(ticket.state, TicketState::WaitingOnCustomer);
        assert_eq!(ticket.idempotency_key.as_deref(), Some("uid-1"));
        assert_eq!((ticket.org.as_str(), ticket.severity), ("globex", Severity::Major));
        assert_eq!(ticket.contact, "hank@globex.example");
        let unknown = json!({"id": 7, "Status": "parked"});
        assert!(matches!(
            ticket_of(&unknown, FIELDS, vec![]),
            Err(DriverError::Unavailable { .. })
        ));
    }

    #[test]
    fn missing_fields_are_named() {
        let applied = vec!["Severity".to_string(), "Customer".to_string()];
        assert_eq!(
            missing_fields(&["Navigator Request", "Severity"], &applied).as_deref(),
            Some("\"Navigator Request\"")
        );
        assert_eq!(missing_fields(&["Severity"], &applied), None);
    }

    #[test]
    fn searches_quote_their_values() {
        assert_eq!(
            search_query("Vendor Support", "Navigator Request", "u-1"),
            "Queue = 'Vendor Support' AND 'CF.{Navigator Request}' = 'u-1'"
        );
        assert_eq!(
            search_query("It's", "F", "a'b"),
            "Queue = 'It\\'s' AND 'CF.{F}' = 'a\\'b'"
        );
    }

    #[test]
    fn answers_are_classified() {
        let unauthorized = classify(StatusCode::UNAUTHORIZED, "Unauthorized", "GET /REST/2.0/rt", None);
        assert!(matches!(&unauthorized, DriverError::Unauthorized { message } if message.contains("token")));
        let basic = classify(StatusCode::UNAUTHORIZED, "Unauthorized", "GET /", Some("navigator"));
        assert!(basic.to_string().contains("user navigator"));
        assert!(matches!(
            classify(StatusCode::NOT_FOUND, "Not Found", "x", None),
            DriverError::NotFound { .. }
        ));
        assert!(classify(StatusCode::BAD_GATEWAY, "", "x", None).is_retryable());
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, "bad", "x", None),
            DriverError::Invalid { .. }
        ));
        assert_eq!(
            messages(&json!(["Ticket 1: Status 'bogus' isn't a valid status"])).len(),
            1
        );
    }

    #[test]
    fn credentials_never_appear_in_debug_output() {
        let driver = RequestTrackerDriver::new(RequestTrackerConfig::new("http://127.0.0.1:1", "s3cr3t", "Q")).unwrap();
        assert!(!format!("{driver:?}").contains("s3cr3t"));
        assert_eq!(
            driver.url(&["queue", "Vendor Support"], &[]).as_str(),
            "http://127.0.0.1:1/REST/2.0/queue/Vendor%20Support"
        );
    }
}
