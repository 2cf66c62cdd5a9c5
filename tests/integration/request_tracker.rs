//! SupportRequests through a real Request Tracker 5 (started by `navigator_testenv::RequestTracker`, one per
//! test binary, plus a private one for the outage test): the whole lifecycle (filed once with its custom
//! fields, an internal comment and a reply sent once, a vendor reply made through REST2 as the vendor user
//! arriving in status and as an Event, respondBy from the severity, closed and reopened); SIGKILLs of the
//! operator while 50 requests with comments are filed (one ticket each, each comment once, counted in RT);
//! RT stopped for a while (requests wait with a retrying condition, all delivered when it is back); and
//! misconfigured endpoints (a bad token, an unknown queue, a queue without the fields) stall naming why.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use navigator::api::support_request::CommentSource;
use navigator::api::{CloudEndpoint, ProviderOrg, SupportRequest};
use navigator_testenv::request_tracker::{
    BARE_QUEUE, CUSTOMER_FIELD, KEY_FIELD, NAVIGATOR_PASSWORD, NAVIGATOR_USER, QUEUE, RequestTracker,
};
use serde_json::{Value, json};

use crate::support::eventually;
use crate::world::{Conditions, Operator, RUN_LABEL, Simulator, World};

const WAIT: Duration = Duration::from_secs(180);

/// How Navigator logs in to RT.
enum Login<'a> {
    Token(&'a str),
    Password(&'a str, &'a str),
}

/// A CloudEndpoint `name` of driver RequestTracker on `rt`'s `queue`, with its credentials Secret.
async fn rt_endpoint(world: &World, name: &str, rt: &RequestTracker, queue: &str, login: Login<'_>, poll: &str) {
    let (secret, username) = match login {
        Login::Token(token) => (token, None),
        Login::Password(user, password) => (password, Some(user)),
    };
    let object: Secret = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "labels": {RUN_LABEL: world.run}},
        "stringData": {"token": secret}
    }))
    .unwrap();
    Api::<Secret>::namespaced(world.client.clone(), "default")
        .create(&PostParams::default(), &object)
        .await
        .expect("creating the RT Secret");
    let mut settings = json!({"queue": queue, "customerField": CUSTOMER_FIELD});
    if let Some(user) = username {
        settings["username"] = json!(user);
    }
    world
        .apply::<CloudEndpoint>(
            None,
            json!({
                "metadata": {"name": name},
                "spec": {
                    "driver": "RequestTracker",
                    "url": rt.url(),
                    "credentialsSecretRef": {"name": name, "namespace": "default", "key": "token"},
                    "pollInterval": poll,
                    "requestTimeout": "10s",
                    "requestTracker": settings
                }
            }),
        )
        .await;
}

/// The world's provider, with its support requests filed through the endpoint `support` (Major: 2 hours).
async fn support_through(world: &World, support: &str) {
    world
        .apply::<ProviderOrg>(None, json!({
            "metadata": {"name": world.namespace},
            "spec": {"displayName": format!("Provider {}", world.run), "partnerTypes": ["CloudProvider"], "namespace": world.namespace,
                     "support": {"supportEndpointRef": {"name": support}, "responseTimes": {"major": "2h"}}}
        }))
        .await;
}

fn request(name: &str, comments: Value, state: &str) -> Value {
    json!({
        "metadata": {"name": name},
        "spec": {
            "customerOrgRef": {"name": "globex"},
            "severity": "Major",
            "product": "Compute",
            "subject": format!("{name}: virtual machines do not start"),
            "description": "Since this morning's maintenance new VMs stay in Provisioning.",
            "contact": {"name": "Hank Scorpio", "email": "hank@globex.example"},
            "comments": comments,
            "requestedState": state
        }
    })
}

/// REST2 as one RT user, for what the tests do and count in RT.
struct Rest {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Rest {
    fn new(rt: &RequestTracker, token: &str) -> Self {
        Rest {
            http: reqwest::Client::new(),
            base: format!("{}/REST/2.0", rt.url()),
            token: token.to_string(),
        }
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let answer = self
            .http
            .get(format!("{}{path}", self.base))
            .query(query)
            .header("Authorization", format!("token {}", self.token))
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success(), "GET {path}: {}", answer.status());
        answer.json().await.unwrap()
    }

    async fn post(&self, path: &str, body: Value) {
        let answer = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("token {}", self.token))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), reqwest::StatusCode::CREATED, "POST {path}");
    }

    /// Ids of the tickets matching a TicketSQL query, every page.
    async fn ticket_ids(&self, query: &str) -> Vec<String> {
        let found = self
            .get("/tickets", &[("query", query), ("per_page", "100"), ("fields", "id")])
            .await;
        assert!(
            found["pages"].as_f64().unwrap_or(1.0) <= 1.0,
            "more than 100 tickets: {query}"
        );
        found["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].to_string().trim_matches('"').to_string())
            .collect()
    }

    /// The ticket's comment and correspondence transactions: (type, creator, subject).
    async fn conversation(&self, id: &str) -> Vec<(String, String, String)> {
        let history = self
            .get(
                &format!("/ticket/{id}/history"),
                &[("fields", "Type,Creator,Data"), ("per_page", "100")],
            )
            .await;
        history["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| matches!(t["Type"].as_str(), Some("Comment" | "Correspond")))
            .map(|t| {
                (
                    t["Type"].as_str().unwrap().to_string(),
                    t["Creator"]["id"].as_str().unwrap_or_default().to_string(),
                    t["Data"].as_str().unwrap_or_default().trim().to_string(),
                )
            })
            .collect()
    }
}

fn key_query(key: &str) -> String {
    format!("'CF.{{{KEY_FIELD}}}' = '{key}'")
}

#[tokio::test]
async fn a_support_request_lives_its_whole_life_in_request_tracker() {
    let rt = RequestTracker::shared();
    let simulator = Simulator::start("rt-life", &["--provision-seconds", "0"]).await;
    let world = World::new("rt-life", &simulator, 50).await;
    let support = format!("rt-{}", world.run);
    rt_endpoint(&world, &support, rt, QUEUE, Login::Token(&rt.navigator_token), "5s").await;
    support_through(&world, &support).await;
    let _operator = Operator::start(&world.run);
    world.customer("globex", "Delete").await;
    let c1 = json!({"id": "c1", "author": "jane@acme.example", "body": "Restarting does not help.", "visibility": "Internal"});
    world
        .apply::<SupportRequest>(Some(&world.namespace), request("vm-boot", json!([c1]), "Open"))
        .await;
    let requests = world.support_requests();

    let filed = eventually(WAIT, "the request to be filed in RT and Ready", || async {
        let r = requests.get("vm-boot").await.ok()?;
        (r.is_ready() && r.status.as_ref()?.delivered_comments == ["c1"]).then_some(r)
    })
    .await;
    let status = filed.status.clone().unwrap();
    let id = status.ticket_id.clone().expect("a ticket id");
    let uid = filed.uid().unwrap();
    assert_eq!(status.vendor_state.as_deref(), Some("New"));
    let created = filed.metadata.creation_timestamp.clone().unwrap().0;
    assert_eq!(
        status.respond_by.map(|t| t.0),
        Some(created + jiff::SignedDuration::from_hours(2)),
        "respondBy is the creation time plus the provider's Major response time"
    );
    println!("ticket {id}: {}", rt.ticket_url(&id));

    // In RT, as the vendor sees it.
    let navigator = Rest::new(rt, &rt.navigator_token);
    assert_eq!(
        navigator.ticket_ids(&key_query(&uid)).await,
        std::slice::from_ref(&id),
        "one ticket, keyed by the uid"
    );
    let ticket = navigator.get(&format!("/ticket/{id}"), &[]).await;
    let field = |name: &str| {
        ticket["CustomFields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .map(|f| f["values"].clone())
    };
    assert_eq!(field("Severity"), Some(json!(["Major"])));
    assert_eq!(field(CUSTOMER_FIELD), Some(json!([world.tenant("globex")])));
    assert_eq!(ticket["Priority"].to_string().trim_matches('"'), "70");
    assert_eq!(ticket["Requestor"][0]["id"], "hank@globex.example");
    assert_eq!(
        navigator.conversation(&id).await,
        [(
            "Comment".into(),
            NAVIGATOR_USER.into(),
            format!("Navigator comment {uid}/c1")
        )],
        "the internal comment, sent once as an RT comment"
    );

    // The vendor answers through RT.
    let vendor = Rest::new(rt, &rt.vendor_token);
    vendor
        .post(
            &format!("/ticket/{id}/correspond"),
            json!({"Content": "Please send the hypervisor logs.", "ContentType": "text/plain"}),
        )
        .await;
    eventually(WAIT, "the vendor's reply and RT's open state in status", || async {
        let status = requests.get("vm-boot").await.ok()?.status?;
        let replied = status
            .comments
            .iter()
            .any(|c| c.source == CommentSource::Vendor && c.body == "Please send the hypervisor logs.");
        (replied && status.vendor_state.as_deref() == Some("Open")).then_some(())
    })
    .await;
    eventually(WAIT, "an Event carrying the vendor's reply", || async {
        let events = world.events_for("vm-boot").await;
        events
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("VendorReplied")
                    && e.message.as_deref().is_some_and(|m| m.contains("hypervisor logs"))
            })
            .then_some(())
    })
    .await;

    // The provider answers publicly: RT correspondence, once.
    let c2 = json!({"id": "c2", "body": "Logs are attached to the customer portal."});
    world
        .apply::<SupportRequest>(Some(&world.namespace), request("vm-boot", json!([c1, c2]), "Open"))
        .await;
    eventually(WAIT, "c2 to be delivered", || async {
        let status = requests.get("vm-boot").await.ok()?.status?;
        (status.delivered_comments == ["c1", "c2"]).then_some(())
    })
    .await;
    let conversation = navigator.conversation(&id).await;
    let ours = |kind: &str, key: &str| {
        conversation
            .iter()
            .filter(|(t, who, subject)| {
                t == kind && who == NAVIGATOR_USER && *subject == format!("Navigator comment {uid}/{key}")
            })
            .count()
    };
    assert_eq!(
        (ours("Comment", "c1"), ours("Correspond", "c2")),
        (1, 1),
        "{conversation:?}"
    );

    // Closed on request: RT resolves it. Then reopened.
    world
        .apply::<SupportRequest>(Some(&world.namespace), request("vm-boot", json!([c1, c2]), "Closed"))
        .await;
    eventually(WAIT, "the ticket to be resolved", || async {
        let r = requests.get("vm-boot").await.ok()?;
        let ready = r.condition("Ready")?;
        let status = r.status?;
        (status.vendor_state.as_deref() == Some("Closed") && status.closed_on_request && ready.reason == "Closed")
            .then_some(())
    })
    .await;
    assert_eq!(navigator.get(&format!("/ticket/{id}"), &[]).await["Status"], "resolved");
    world
        .apply::<SupportRequest>(Some(&world.namespace), request("vm-boot", json!([c1, c2]), "Open"))
        .await;
    eventually(WAIT, "the ticket to be open again", || async {
        let status = requests.get("vm-boot").await.ok()?.status?;
        (status.vendor_state.as_deref() == Some("Open") && !status.closed_on_request).then_some(())
    })
    .await;
    assert_eq!(navigator.get(&format!("/ticket/{id}"), &[]).await["Status"], "open");
    assert_eq!(
        navigator.ticket_ids(&key_query(&uid)).await.len(),
        1,
        "still one ticket"
    );
}

#[tokio::test]
async fn sigkills_while_fifty_requests_are_filed_leave_one_ticket_each_and_every_comment_once() {
    const REQUESTS: usize = 50;
    let rt = RequestTracker::shared();
    let simulator = Simulator::start("rt-kill", &["--provision-seconds", "0"]).await;
    let world = World::new("rt-kill", &simulator, 50).await;
    let support = format!("rt-{}", world.run);
    // RT's standalone server answers one request at a time: poll the 50 open tickets once a minute only.
    rt_endpoint(&world, &support, rt, QUEUE, Login::Token(&rt.navigator_token), "60s").await;
    support_through(&world, &support).await;
    let mut operator = Operator::start(&world.run);
    world.customer("globex", "Delete").await;
    let customers = world.customers();
    eventually(WAIT, "the customer to be provisioned", || async {
        customers.get("globex").await.ok()?.is_ready().then_some(())
    })
    .await;

    let started = Instant::now();
    let comments = json!([
        {"id": "c1", "body": "First observation.", "visibility": "Internal"},
        {"id": "c2", "body": "Second observation."}
    ]);
    for i in 0..REQUESTS {
        world
            .apply::<SupportRequest>(
                Some(&world.namespace),
                request(&format!("sr-{i:02}"), comments.clone(), "Open"),
            )
            .await;
    }
    let requests = world.support_requests();
    let all_done = || async {
        let list = requests.list(&ListParams::default()).await.ok()?;
        let done = list
            .items
            .iter()
            .filter(|r| r.is_ready() && r.status.as_ref().is_some_and(|s| s.delivered_comments.len() == 2))
            .count();
        Some(done)
    };
    // Kill the operator every few seconds while the work is under way, then let it finish.
    let mut kills = 0;
    while kills < 6 && all_done().await.unwrap_or(0) < REQUESTS {
        tokio::time::sleep(Duration::from_millis(4000 + 1000 * (kills % 3))).await;
        operator.process.kill();
        kills += 1;
        operator.process.start();
    }
    eventually(
        Duration::from_secs(600),
        "every request filed with both comments",
        || async { (all_done().await? == REQUESTS).then_some(()) },
    )
    .await;
    let took = started.elapsed();

    // Counted in RT: one ticket per request, each comment once.
    let navigator = Rest::new(rt, &rt.navigator_token);
    let tenant = world.tenant("globex");
    let tickets = navigator
        .ticket_ids(&format!("'CF.{{{CUSTOMER_FIELD}}}' = '{tenant}'"))
        .await;
    let mut comments_sent = 0;
    for request in requests.list(&ListParams::default()).await.unwrap().items {
        let uid = request.uid().unwrap();
        let ids = navigator.ticket_ids(&key_query(&uid)).await;
        assert_eq!(ids.len(), 1, "{}: tickets {ids:?}", request.name_any());
        let conversation = navigator.conversation(&ids[0]).await;
        for key in ["c1", "c2"] {
            let subject = format!("Navigator comment {uid}/{key}");
            let sent = conversation.iter().filter(|(_, _, s)| *s == subject).count();
            assert_eq!(sent, 1, "{} comment {key}: {conversation:?}", request.name_any());
            comments_sent += sent;
        }
    }
    println!(
        "RT kill test: {kills} SIGKILLs, {} tickets for {REQUESTS} requests, {comments_sent} comments for {} \
         written, all delivered in {took:.1?}",
        tickets.len(),
        REQUESTS * 2
    );
    assert_eq!(tickets.len(), REQUESTS, "one ticket per request, none twice");
}

#[tokio::test]
async fn requests_wait_while_request_tracker_is_down_and_are_all_delivered_when_it_is_back() {
    const REQUESTS: usize = 5;
    // Its own RT, so that stopping it disturbs no other test. Basic auth this time.
    let rt = tokio::task::spawn_blocking(RequestTracker::start)
        .await
        .unwrap()
        .expect("starting RT");
    let simulator = Simulator::start("rt-down", &["--provision-seconds", "0"]).await;
    let world = World::new("rt-down", &simulator, 50).await;
    let support = format!("rt-{}", world.run);
    let login = Login::Password(NAVIGATOR_USER, NAVIGATOR_PASSWORD);
    rt_endpoint(&world, &support, &rt, QUEUE, login, "5s").await;
    support_through(&world, &support).await;
    let _operator = Operator::start(&world.run);
    world.customer("globex", "Delete").await;
    let endpoints = Api::<CloudEndpoint>::all(world.client.clone());
    eventually(WAIT, "the RT endpoint to be Ready", || async {
        endpoints.get(&support).await.ok()?.is_ready().then_some(())
    })
    .await;

    rt.pause();
    let down = Instant::now();
    for i in 0..REQUESTS {
        let comments = json!([{"id": "c1", "body": format!("Request {i} while RT is down.")}]);
        world
            .apply::<SupportRequest>(Some(&world.namespace), request(&format!("down-{i}"), comments, "Open"))
            .await;
    }
    let requests = world.support_requests();
    eventually(WAIT, "every request to wait with a retrying condition", || async {
        let list = requests.list(&ListParams::default()).await.ok()?;
        let waiting = list
            .items
            .iter()
            .filter(|r| {
                let retrying = r.condition("Reconciling");
                retrying.is_some_and(|c| c.status == "True" && c.reason == "EndpointUnavailable")
                    && !r.is_ready()
                    && r.condition("Stalled").is_none_or(|c| c.status == "False")
            })
            .count();
        (waiting == REQUESTS).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rt = tokio::task::spawn_blocking(move || {
        rt.resume().expect("restarting RT");
        rt
    })
    .await
    .unwrap();
    let downtime = down.elapsed();
    let back = Instant::now();
    eventually(
        Duration::from_secs(400),
        "every request filed once RT is back",
        || async {
            let list = requests.list(&ListParams::default()).await.ok()?;
            let done = list
                .items
                .iter()
                .filter(|r| r.is_ready() && r.status.as_ref().is_some_and(|s| s.delivered_comments == ["c1"]))
                .count();
            (done == REQUESTS).then_some(())
        },
    )
    .await;
    println!(
        "RT outage: down {downtime:.1?}, {REQUESTS} requests delivered {:.1?} after it was back",
        back.elapsed()
    );
    let navigator = Rest::new(&rt, &rt.navigator_token);
    let tenant = world.tenant("globex");
    let tickets = navigator
        .ticket_ids(&format!("'CF.{{{CUSTOMER_FIELD}}}' = '{tenant}'"))
        .await;
    assert_eq!(tickets.len(), REQUESTS, "nothing lost, nothing twice");
    for id in &tickets {
        assert_eq!(
            navigator.conversation(id).await.len(),
            1,
            "ticket {id}: its comment once"
        );
    }
}

#[tokio::test]
async fn a_bad_token_an_unknown_queue_or_a_queue_without_the_fields_stall_the_endpoint_naming_why() {
    let rt = RequestTracker::shared();
    let simulator = Simulator::start("rt-bad", &["--provision-seconds", "0"]).await;
    let world = World::new("rt-bad", &simulator, 50).await;
    let cases = [
        ("token", QUEUE, "1-27-not-a-valid-token", "Unauthorized", "token"),
        (
            "queue",
            "No Such Queue",
            rt.navigator_token.as_str(),
            "InvalidRequest",
            "No Such Queue",
        ),
        (
            "fields",
            BARE_QUEUE,
            rt.navigator_token.as_str(),
            "InvalidRequest",
            KEY_FIELD,
        ),
    ];
    for (suffix, queue, token, _, _) in &cases {
        let name = format!("rt-{suffix}-{}", world.run);
        rt_endpoint(&world, &name, rt, queue, Login::Token(token), "5s").await;
    }
    let _operator = Operator::start(&world.run);
    let endpoints = Api::<CloudEndpoint>::all(world.client.clone());
    for (suffix, _, _, reason, named) in cases {
        let name = format!("rt-{suffix}-{}", world.run);
        let stalled = eventually(WAIT, &format!("endpoint {name} to stall"), || async {
            let stalled = endpoints.get(&name).await.ok()?.condition("Stalled")?;
            (stalled.status == "True").then_some(stalled)
        })
        .await;
        println!("{name}: Stalled {}: {}", stalled.reason, stalled.message);
        assert_eq!(stalled.reason, reason, "{name}: {}", stalled.message);
        assert!(
            stalled.message.contains(named),
            "{name}: {:?} should name {named:?}",
            stalled.message
        );
    }
}
