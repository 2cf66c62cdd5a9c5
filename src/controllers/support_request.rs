//! SupportRequest: a ticket with the vendor, filed through the provider's support endpoint
//! (`ProviderOrg.spec.support.supportEndpointRef`, else the customer's own endpoint), the conversation and the
//! vendor's state kept in status, each comment of the spec sent once, the ticket closed on request.
//!
//! Crash safety comes from idempotency keys, never from status: the ticket is filed with the request's uid as
//! key (and looked up by it when status lost the ticket id) through the create protocol (`create_protocol`,
//! which also guards endpoints that only record the key), each comment with `<uid>/<comment id>`, and
//! which comments were delivered is read back from the ticket itself.

use async_trait::async_trait;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use std::time::Duration;

use crate::api::common::parse_duration;
use crate::api::provider_org::ResponseTimes;
use crate::api::support_request::{
    CommentSource, CommentVisibility, RequestedState, Severity, SupportRequestStatus, TicketComment,
};
use crate::api::{CustomerOrg, ProviderOrg, SupportRequest};
use crate::controllers::cloud_endpoint::{driver_for, require_endpoint};
use crate::controllers::customer_org::provisioned;
use crate::endpoint::{self, Author, Ticket, TicketDesired, TicketState};
use crate::runtime::conditions::Phase;
use crate::runtime::context::{Context, DriverEntry};
use crate::runtime::create_protocol::{self, Creating};
use crate::runtime::error::Error;
use crate::runtime::reconciler::{Managed, Outcome};

crate::impl_object!(SupportRequest, SupportRequestStatus, namespaced);

/// The idempotency key of one spec comment: `<request uid>/<comment id>`.
pub fn comment_key(uid: &str, comment_id: &str) -> String {
    format!("{uid}/{comment_id}")
}

/// How soon the vendor must respond to a request of this severity.
pub fn response_time(severity: Severity, times: &ResponseTimes) -> Option<Duration> {
    let text = match severity {
        Severity::Critical => &times.critical,
        Severity::Major => &times.major,
        Severity::Minor => &times.minor,
        Severity::Cosmetic => &times.cosmetic,
    };
    parse_duration(text)
}

/// The response deadline: when the request was created plus the response time of its severity.
pub fn respond_by(created: jiff::Timestamp, severity: Severity, times: &ResponseTimes) -> Option<jiff::Timestamp> {
    let after = response_time(severity, times)?;
    created.checked_add(jiff::SignedDuration::try_from(after).ok()?).ok()
}

fn endpoint_severity(severity: Severity) -> endpoint::Severity {
    match severity {
        Severity::Critical => endpoint::Severity::Critical,
        Severity::Major => endpoint::Severity::Major,
        Severity::Minor => endpoint::Severity::Minor,
        Severity::Cosmetic => endpoint::Severity::Cosmetic,
    }
}

/// The ticket as it is filed: about the customer's tenant, answered to the request's contact or else the
/// provider's support team.
pub fn desired_ticket(request: &SupportRequest, provider: &ProviderOrg, customer: &CustomerOrg) -> TicketDesired {
    let spec = &request.spec;
    let contact = match &spec.contact {
        Some(c) => format!("{} <{}>", c.name, c.email),
        None => format!("{} support", provider.spec.display_name),
    };
    TicketDesired {
        org: customer.spec.tenant_name.clone(),
        severity: endpoint_severity(spec.severity),
        product: spec.product.clone(),
        subject: spec.subject.clone(),
        description: spec.description.clone(),
        contact: contact.chars().take(256).collect(),
    }
}

/// The text sent for a spec comment: its body, signed by its author when it names one.
pub fn comment_text(comment: &crate::api::support_request::Comment) -> String {
    if comment.author.is_empty() {
        comment.body.clone()
    } else {
        format!("{}\n\n— {}", comment.body, comment.author)
    }
}

/// The conversation as status shows it (oldest first), and the ids of the spec comments the ticket holds.
pub fn conversation(request: &SupportRequest, ticket: &Ticket) -> (Vec<TicketComment>, Vec<String>) {
    let uid = request.uid().unwrap_or_default();
    let ours = |key: Option<&str>| {
        request
            .spec
            .comments
            .iter()
            .find(|c| key == Some(comment_key(&uid, &c.id).as_str()))
    };
    let comments = ticket
        .comments
        .iter()
        .map(|c| {
            let time = Some(Time(c.created_at));
            match (c.author, ours(c.idempotency_key.as_deref())) {
                (Author::Provider, Some(spec)) => TicketComment {
                    id: Some(spec.id.clone()),
                    source: CommentSource::Provider,
                    author: spec.author.clone(),
                    body: spec.body.clone(),
                    time,
                },
                (Author::Provider, None) => TicketComment {
                    id: None,
                    source: CommentSource::Provider,
                    author: String::new(),
                    body: c.body.clone(),
                    time,
                },
                (Author::Vendor, _) => TicketComment {
                    id: Some(c.id.clone()),
                    source: CommentSource::Vendor,
                    author: "vendor".into(),
                    body: c.body.clone(),
                    time,
                },
            }
        })
        .collect();
    let delivered = request
        .spec
        .comments
        .iter()
        .filter(|spec| {
            let key = comment_key(&uid, &spec.id);
            ticket
                .comments
                .iter()
                .any(|c| c.idempotency_key.as_deref() == Some(key.as_str()))
        })
        .map(|spec| spec.id.clone())
        .collect();
    (comments, delivered)
}

/// Vendor comments in `now` that `before` did not show: the replies to announce.
pub fn new_vendor_replies<'a>(before: &[TicketComment], now: &'a [TicketComment]) -> Vec<&'a TicketComment> {
    now.iter()
        .filter(|c| c.source == CommentSource::Vendor)
        .filter(|c| !before.iter().any(|b| b.source == CommentSource::Vendor && b.id == c.id))
        .collect()
}

fn endpoint_visibility(visibility: CommentVisibility) -> endpoint::CommentVisibility {
    match visibility {
        CommentVisibility::Public => endpoint::CommentVisibility::Public,
        CommentVisibility::Internal => endpoint::CommentVisibility::Internal,
    }
}

/// Whether to reopen the ticket: only one Navigator closed on request, once the request is `Open` again. A
/// ticket the vendor closed stays closed, so that Navigator never undoes the vendor's decision by itself.
pub fn reopens(requested: RequestedState, state: TicketState, closed_on_request: bool) -> bool {
    requested == RequestedState::Open && state == TicketState::Closed && closed_on_request
}

/// The ticket as a close or reopen answered it, with the conversation already read when the endpoint's
/// answer leaves it out.
fn keep_conversation(mut changed: Ticket, conversation: Vec<endpoint::Comment>) -> Ticket {
    if changed.comments.is_empty() {
        changed.comments = conversation;
    }
    changed
}

fn state_name(state: TicketState) -> String {
    format!("{state:?}")
}

impl SupportRequest {
    /// The ticket: the one status names, else the one filed with this request's key, else a new one.
    async fn ticket(&self, entry: &DriverEntry, desired: &TicketDesired, ctx: &Context) -> Result<Ticket, Error> {
        let uid = self.uid().unwrap_or_default();
        if let Some(id) = self.status.as_ref().and_then(|s| s.ticket_id.as_ref()) {
            return match entry.driver.get_ticket(id).await? {
                Some(ticket) => Ok(ticket),
                None => Err(Error::stalled(
                    "TicketNotFound",
                    format!("ticket {id} no longer exists in the vendor's support system"),
                )),
            };
        }
        let driver = entry.driver.as_ref();
        create_protocol::ensure(
            self,
            Creating::Ticket,
            ctx,
            driver,
            driver.find_ticket(&uid),
            driver.create_ticket(&uid, desired),
        )
        .await
    }

    /// Records an Event; `action` names what is new (the comment, the state), so that a tool grouping events
    /// by reason and action (as kube's own recorder does, keeping the first note) still shows each reply.
    async fn publish(&self, ctx: &Context, reason: &str, action: String, note: String) {
        let event = Event {
            type_: EventType::Normal,
            reason: reason.into(),
            note: Some(note.chars().take(1000).collect()),
            action: action.chars().take(128).collect(),
            secondary: None,
        };
        if let Err(error) = ctx.recorder.publish(&event, &self.object_ref(&())).await {
            tracing::debug!(request = %self.name_any(), %error, "could not publish event");
        }
    }
}

#[async_trait]
impl Managed for SupportRequest {
    // Deleting a request leaves the ticket with the vendor: its history is the vendor's record of the case.
    const FINALIZER: Option<&'static str> = None;

    async fn apply(&self, ctx: &Context) -> Result<Outcome<SupportRequestStatus>, Error> {
        let namespace = self.namespace().unwrap_or_default();
        let provider = ctx.stores.provider_of_namespace(&namespace).ok_or_else(|| {
            Error::stalled(
                "ProviderOrgNotFound",
                format!(
                    "no ProviderOrg has namespace {namespace}; support requests live in their provider's namespace"
                ),
            )
        })?;
        let customer = provisioned(ctx, &namespace, &self.spec.customer_org_ref.name)?;
        let support = provider.spec.support.as_ref();
        let endpoint = support
            .map(|s| s.support_endpoint_ref.name.clone())
            .unwrap_or_else(|| customer.spec.endpoint_ref.name.clone());
        require_endpoint(&endpoint, ctx)?;
        let entry = driver_for(&endpoint, ctx).await?;
        if entry.driver.capabilities().tickets.is_none() {
            return Err(Error::stalled(
                "SupportUnavailable",
                format!(
                    "endpoint {endpoint} has no support-ticket API; set the ProviderOrg's support.supportEndpointRef"
                ),
            ));
        }

        let mut status = self.status.clone().unwrap_or_default();
        let times = support.map(|s| s.response_times.clone()).unwrap_or_default();
        status.respond_by = self
            .metadata
            .creation_timestamp
            .as_ref()
            .and_then(|created| respond_by(created.0, self.spec.severity, &times))
            .map(Time);

        let desired = desired_ticket(self, &provider, &customer);
        let mut ticket = self.ticket(&entry, &desired, ctx).await?;

        let uid = self.uid().unwrap_or_default();
        let (_, delivered) = conversation(self, &ticket);
        let pending: Vec<_> = self
            .spec
            .comments
            .iter()
            .filter(|c| !delivered.contains(&c.id))
            .collect();
        let requested = self.spec.requested_state;
        if reopens(requested, ticket.state, status.closed_on_request) {
            let reopened = entry.driver.reopen_ticket(&ticket.external_id).await?;
            ticket = keep_conversation(reopened, ticket.comments);
        }
        if ticket.state != TicketState::Closed {
            for comment in &pending {
                let sent = entry
                    .driver
                    .add_comment_with(
                        &ticket.external_id,
                        &comment_key(&uid, &comment.id),
                        &comment_text(comment),
                        endpoint_visibility(comment.visibility),
                    )
                    .await?;
                if !ticket.comments.iter().any(|c| c.id == sent.id) {
                    ticket.comments.push(sent);
                }
            }
        }
        if requested == RequestedState::Closed && ticket.state != TicketState::Closed {
            let closed = entry.driver.close_ticket(&ticket.external_id).await?;
            ticket = keep_conversation(closed, ticket.comments);
        }
        status.closed_on_request = requested == RequestedState::Closed && ticket.state == TicketState::Closed;

        let (comments, delivered) = conversation(self, &ticket);
        let before = status.comments.clone();
        for reply in new_vendor_replies(&before, &comments) {
            let action = format!("Comment-{}", reply.id.as_deref().unwrap_or_default());
            let note = format!("ticket {}: the vendor replied: {}", ticket.external_id, reply.body);
            self.publish(ctx, "VendorReplied", action, note).await;
        }
        let state = state_name(ticket.state);
        if status.vendor_state.as_deref() != Some(state.as_str()) {
            let note = match &status.vendor_state {
                Some(old) => format!("ticket {} moved from {old} to {state}", ticket.external_id),
                None => format!("ticket {} filed with the vendor ({state})", ticket.external_id),
            };
            self.publish(ctx, "VendorStateChanged", format!("State-{state}"), note)
                .await;
        }
        status.ticket_id = Some(ticket.external_id.clone());
        status.vendor_state = Some(state.clone());
        status.comments = comments;
        status.delivered_comments = delivered;

        let undelivered: Vec<&str> = self
            .spec
            .comments
            .iter()
            .filter(|c| !status.delivered_comments.contains(&c.id))
            .map(|c| c.id.as_str())
            .collect();
        let id = &ticket.external_id;
        let respond = status
            .respond_by
            .as_ref()
            .map(|t| format!("; the vendor must respond by {}", t.0))
            .unwrap_or_default();
        let phase = if !undelivered.is_empty() {
            Phase::stalled(
                "TicketClosed",
                format!(
                    "ticket {id} is closed, so comments {} cannot be sent; reopen it (requestedState Open, after Closed if the vendor closed it) or open a new SupportRequest",
                    undelivered.join(", ")
                ),
            )
        } else if ticket.state == TicketState::Closed {
            Phase::Ready {
                reason: "Closed".into(),
                message: format!("ticket {id} is closed"),
            }
        } else {
            Phase::ready(format!("ticket {id} is {state} with the vendor{respond}"))
        };
        let outcome = Outcome::new(status, phase);
        // Vendor replies arrive without a watch: poll the open ticket at the endpoint's poll interval.
        Ok(if ticket.state == TicketState::Closed {
            outcome
        } else {
            outcome.requeue_after(entry.poll)
        })
    }
}

impl super::registry::Kind for SupportRequest {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::references::LocalRef;
    use crate::api::support_request::{Comment as SpecComment, SupportRequestSpec};
    use crate::endpoint::Comment;

    fn request(comments: &[(&str, &str)]) -> SupportRequest {
        let mut request = SupportRequest::new(
            "vm-boot",
            SupportRequestSpec {
                customer_org_ref: LocalRef::new("globex"),
                subscription_ref: None,
                severity: Severity::Major,
                product: "Compute".into(),
                subject: "VMs do not start".into(),
                description: "since this morning".into(),
                contact: None,
                comments: comments
                    .iter()
                    .map(|(id, author)| SpecComment {
                        id: (*id).into(),
                        body: format!("body of {id}"),
                        author: (*author).into(),
                        visibility: Default::default(),
                    })
                    .collect(),
                requested_state: RequestedState::Open,
            },
        );
        request.metadata.uid = Some("u-1".into());
        request
    }

    fn at(seconds: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(seconds).unwrap()
    }

    fn ticket(comments: Vec<Comment>) -> Ticket {
        Ticket {
            external_id: "7".into(),
            idempotency_key: Some("u-1".into()),
            org: "globex".into(),
            severity: endpoint::Severity::Major,
            product: "Compute".into(),
            subject: "VMs do not start".into(),
            description: "since this morning".into(),
            contact: "Acme support".into(),
            state: TicketState::Open,
            created_at: at(0),
            updated_at: at(0),
            comments,
        }
    }

    fn comment(id: &str, author: Author, key: Option<&str>) -> Comment {
        Comment {
            id: id.into(),
            author,
            body: format!("text {id}"),
            created_at: at(10),
            idempotency_key: key.map(String::from),
        }
    }

    #[test]
    fn respond_by_is_creation_plus_the_severity_response_time() {
        let times = ResponseTimes::default();
        assert_eq!(respond_by(at(0), Severity::Critical, &times), Some(at(3600)));
        assert_eq!(respond_by(at(0), Severity::Major, &times), Some(at(4 * 3600)));
        let custom = ResponseTimes {
            minor: "1h30m".into(),
            ..ResponseTimes::default()
        };
        assert_eq!(respond_by(at(100), Severity::Minor, &custom), Some(at(100 + 5400)));
        let broken = ResponseTimes {
            cosmetic: "soon".into(),
            ..ResponseTimes::default()
        };
        assert_eq!(respond_by(at(0), Severity::Cosmetic, &broken), None);
    }

    #[test]
    fn delivered_comments_are_read_from_the_ticket_by_key() {
        let request = request(&[("c1", "jane"), ("c2", "")]);
        let ticket = ticket(vec![
            comment("1", Author::Provider, Some("u-1/c1")),
            comment("2", Author::Vendor, None),
            comment("3", Author::Provider, Some("someone-else")),
        ]);
        let (comments, delivered) = conversation(&request, &ticket);
        assert_eq!(delivered, vec!["c1"], "c2 is not on the ticket yet");
        assert_eq!(comments.len(), 3);
        assert_eq!(
            (
                comments[0].id.as_deref(),
                comments[0].source,
                comments[0].author.as_str(),
                comments[0].body.as_str()
            ),
            (Some("c1"), CommentSource::Provider, "jane", "body of c1"),
            "our comment is shown as written in the spec"
        );
        assert_eq!(
            (comments[1].id.as_deref(), comments[1].source),
            (Some("2"), CommentSource::Vendor)
        );
        assert_eq!(
            (comments[2].id.as_deref(), comments[2].source),
            (None, CommentSource::Provider)
        );
    }

    #[test]
    fn only_vendor_comments_not_seen_before_are_new_replies() {
        let request = request(&[]);
        let first = conversation(&request, &ticket(vec![comment("2", Author::Vendor, None)])).0;
        let second = conversation(
            &request,
            &ticket(vec![
                comment("2", Author::Vendor, None),
                comment("5", Author::Vendor, None),
            ]),
        )
        .0;
        let new: Vec<_> = new_vendor_replies(&first, &second)
            .iter()
            .map(|c| c.id.clone())
            .collect();
        assert_eq!(new, vec![Some("5".to_string())]);
        assert!(new_vendor_replies(&second, &second).is_empty());
    }

    #[test]
    fn only_a_ticket_closed_on_request_is_reopened() {
        use RequestedState::{Closed, Open};
        assert!(
            reopens(Open, TicketState::Closed, true),
            "closed by Navigator, then Open again"
        );
        assert!(!reopens(Open, TicketState::Closed, false), "the vendor closed it");
        assert!(!reopens(Closed, TicketState::Closed, true), "still wanted closed");
        assert!(!reopens(Open, TicketState::Open, true), "already open");
    }

    #[test]
    fn comments_are_signed_by_their_author() {
        let request = request(&[("c1", "jane@acme.example"), ("c2", "")]);
        assert_eq!(
            comment_text(&request.spec.comments[0]),
            "body of c1\n\n— jane@acme.example"
        );
        assert_eq!(comment_text(&request.spec.comments[1]), "body of c2");
        assert_eq!(comment_key("u-1", "c1"), "u-1/c1");
    }
}
