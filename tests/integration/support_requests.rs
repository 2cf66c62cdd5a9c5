//! SupportRequests against the real apiserver and the simulator playing the vendor over HTTP: a full
//! conversation (filed once, a vendor reply in status and as an Event, a provider comment delivered exactly
//! once across an operator SIGKILL that also lost the status, closed on request), and a request for a
//! customer that does not exist stalls with a reason, then proceeds once the customer exists.

use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use navigator::api::{ProviderOrg, SupportRequest};
use navigator::endpoint::{Secret, Ticket, TicketState};
use navigator::simulator::control::SimControl;
use serde_json::json;

use crate::support::eventually;
use crate::world::{Conditions, Operator, Simulator, TOKEN, World};

const WAIT: Duration = Duration::from_secs(120);

fn request(customer: &str, comments: serde_json::Value, state: &str) -> serde_json::Value {
    json!({
        "metadata": {"name": "vm-boot"},
        "spec": {
            "customerOrgRef": {"name": customer},
            "severity": "Major",
            "product": "Compute",
            "subject": "Virtual machines do not start after maintenance",
            "description": "Since this morning's maintenance new VMs stay in Provisioning.",
            "contact": {"name": "Hank Scorpio", "email": "hank@globex.example"},
            "comments": comments,
            "requestedState": state
        }
    })
}

async fn tickets_of(simulator: &Simulator, tenant: &str) -> Vec<Ticket> {
    let page: serde_json::Value = simulator.get_json(&format!("/v1/tickets?org={tenant}")).await;
    serde_json::from_value(page["items"].clone()).unwrap()
}

#[tokio::test]
async fn a_support_request_is_filed_once_converses_with_the_vendor_across_a_crash_and_closes() {
    let simulator = Simulator::start("support", &["--provision-seconds", "0"]).await;
    let world = World::new("support", &simulator, 50).await;
    // The provider's support settings: tickets go through its endpoint, a Major request is due in 2 hours.
    world
        .apply::<ProviderOrg>(None, json!({
            "metadata": {"name": world.namespace},
            "spec": {"displayName": format!("Provider {}", world.run), "partnerTypes": ["CloudProvider"], "namespace": world.namespace,
                     "support": {"supportEndpointRef": {"name": world.endpoint}, "responseTimes": {"major": "2h"}}}
        }))
        .await;
    let mut operator = Operator::start(&world.run);
    world.customer("globex", "Delete").await;
    let comments =
        json!([{"id": "c1", "author": "jane@acme.example", "body": "Restarting from the console does not help."}]);
    world
        .apply::<SupportRequest>(Some(&world.namespace), request("globex", comments, "Open"))
        .await;
    let requests = Api::<SupportRequest>::namespaced(world.client.clone(), &world.namespace);

    let filed = eventually(WAIT, "the request to be filed and Ready", || async {
        let r = requests.get("vm-boot").await.ok()?;
        (r.is_ready() && r.status.as_ref()?.delivered_comments == ["c1"]).then_some(r)
    })
    .await;
    let status = filed.status.clone().unwrap();
    let ticket_id = status.ticket_id.clone().expect("a ticket id");
    assert_eq!(status.vendor_state.as_deref(), Some("New"));
    let created = filed.metadata.creation_timestamp.clone().unwrap().0;
    assert_eq!(
        status.respond_by.map(|t| t.0),
        Some(created + jiff::SignedDuration::from_hours(2)),
        "respondBy is the creation time plus the provider's Major response time"
    );
    let tenant = world.tenant("globex");
    let tickets = tickets_of(&simulator, &tenant).await;
    assert_eq!(tickets.len(), 1, "one ticket for the customer");
    assert_eq!(tickets[0].external_id, ticket_id);
    assert_eq!(
        tickets[0].idempotency_key.as_deref(),
        filed.uid().as_deref(),
        "filed with the request's uid as key"
    );
    assert_eq!(tickets[0].contact, "Hank Scorpio <hank@globex.example>");

    // The vendor answers and waits on the customer.
    let vendor = SimControl::new(&simulator.url, Secret::new(TOKEN));
    vendor
        .vendor_reply(
            &ticket_id,
            Some("Please send the hypervisor logs."),
            Some(TicketState::WaitingOnCustomer),
        )
        .await
        .unwrap();
    eventually(WAIT, "the vendor's reply and state in status", || async {
        let status = requests.get("vm-boot").await.ok()?.status?;
        let replied = status.comments.iter().any(|c| {
            c.source == navigator::api::support_request::CommentSource::Vendor
                && c.body == "Please send the hypervisor logs."
        });
        (replied && status.vendor_state.as_deref() == Some("WaitingOnCustomer")).then_some(())
    })
    .await;
    eventually(WAIT, "Events for the reply and the state change", || async {
        let events = world.events_for("vm-boot").await;
        let reasons: Vec<&str> = events.iter().filter_map(|e| e.reason.as_deref()).collect();
        (reasons.contains(&"VendorReplied") && reasons.contains(&"VendorStateChanged")).then_some(())
    })
    .await;

    // The operator dies; meanwhile the provider answers, and the request's status is lost as well (as if the
    // crash came between sending and recording). Nothing may be filed or sent twice.
    operator.process.kill();
    let comments = json!([
        {"id": "c1", "author": "jane@acme.example", "body": "Restarting from the console does not help."},
        {"id": "c2", "author": "jane@acme.example", "body": "Logs attached to the customer portal."}
    ]);
    world
        .apply::<SupportRequest>(Some(&world.namespace), request("globex", comments, "Open"))
        .await;
    requests
        .patch_status(
            "vm-boot",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"ticketId": null, "deliveredComments": null, "comments": null, "vendorState": null}}),
            ),
        )
        .await
        .unwrap();
    operator.process.start();
    let after = eventually(WAIT, "c2 to be delivered after the restart", || async {
        let status = requests.get("vm-boot").await.ok()?.status?;
        (status.delivered_comments == ["c1", "c2"]).then_some(status)
    })
    .await;
    assert_eq!(
        after.ticket_id.as_deref(),
        Some(ticket_id.as_str()),
        "the same ticket, found by its key"
    );
    let tickets = tickets_of(&simulator, &tenant).await;
    assert_eq!(tickets.len(), 1, "no second ticket after the crash");
    let uid = filed.uid().unwrap();
    for id in ["c1", "c2"] {
        let key = format!("{uid}/{id}");
        let sent = tickets[0]
            .comments
            .iter()
            .filter(|c| c.idempotency_key.as_deref() == Some(key.as_str()))
            .count();
        assert_eq!(sent, 1, "comment {id} reached the vendor exactly once");
    }
    assert!(
        tickets[0]
            .comments
            .iter()
            .any(|c| c.body.contains("— jane@acme.example")),
        "signed by its author"
    );
    assert_eq!(
        tickets[0].state,
        TicketState::Open,
        "the provider's answer gives the vendor work again"
    );

    // A second reply: a second Event with its own text (not folded into the first one's).
    vendor
        .vendor_reply(
            &ticket_id,
            Some("Fixed by a hypervisor patch."),
            Some(TicketState::Resolved),
        )
        .await
        .unwrap();
    eventually(WAIT, "the second reply's Event and the Resolved state", || async {
        let events = world.events_for("vm-boot").await;
        let notes: Vec<&str> = events
            .iter()
            .filter(|e| e.reason.as_deref() == Some("VendorReplied"))
            .filter_map(|e| e.message.as_deref())
            .collect();
        let both = notes.iter().any(|n| n.contains("hypervisor logs")) && notes.iter().any(|n| n.contains("Fixed by"));
        let state = requests.get("vm-boot").await.ok()?.status?.vendor_state;
        (both && state.as_deref() == Some("Resolved")).then_some(())
    })
    .await;

    // Closing.
    let comments = json!([
        {"id": "c1", "author": "jane@acme.example", "body": "Restarting from the console does not help."},
        {"id": "c2", "author": "jane@acme.example", "body": "Logs attached to the customer portal."}
    ]);
    world
        .apply::<SupportRequest>(Some(&world.namespace), request("globex", comments, "Closed"))
        .await;
    eventually(WAIT, "the ticket to be closed", || async {
        let r = requests.get("vm-boot").await.ok()?;
        let ready = r.condition("Ready")?;
        (r.status?.vendor_state.as_deref() == Some("Closed") && ready.status == "True" && ready.reason == "Closed")
            .then_some(())
    })
    .await;
    assert_eq!(tickets_of(&simulator, &tenant).await[0].state, TicketState::Closed);
}

#[tokio::test]
async fn a_request_for_a_customer_that_does_not_exist_stalls_then_proceeds_when_it_appears() {
    let simulator = Simulator::start("support-stall", &["--provision-seconds", "0"]).await;
    let world = World::new("support-stall", &simulator, 50).await;
    let _operator = Operator::start(&world.run);
    world
        .apply::<SupportRequest>(Some(&world.namespace), request("ghost", json!([]), "Open"))
        .await;
    let requests = Api::<SupportRequest>::namespaced(world.client.clone(), &world.namespace);
    eventually(WAIT, "the request to stall on the missing customer", || async {
        let r = requests.get("vm-boot").await.ok()?;
        let stalled = r.condition("Stalled")?;
        let ready = r.condition("Ready")?;
        (stalled.status == "True"
            && stalled.reason == "CustomerOrgNotFound"
            && ready.status == "False"
            && stalled.message.contains("ghost"))
        .then_some(())
    })
    .await;
    assert!(
        tickets_of(&simulator, &world.tenant("ghost")).await.is_empty(),
        "nothing filed"
    );
    eventually(WAIT, "a Warning event naming the reason", || async {
        let events = world.events_for("vm-boot").await;
        events
            .iter()
            .any(|e| e.type_.as_deref() == Some("Warning") && e.reason.as_deref() == Some("CustomerOrgNotFound"))
            .then_some(())
    })
    .await;

    // Without a support endpoint set, the customer's own endpoint holds the ticket.
    world.customer("ghost", "Delete").await;
    eventually(WAIT, "the request to be filed once the customer exists", || async {
        let r = requests.get("vm-boot").await.ok()?;
        (r.is_ready() && r.status?.ticket_id.is_some()).then_some(())
    })
    .await;
    assert_eq!(tickets_of(&simulator, &world.tenant("ghost")).await.len(), 1);
}
