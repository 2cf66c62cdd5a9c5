//! Publishing Events (events.k8s.io/v1), one create per Event.
//!
//! kube's own `Recorder` keeps every Event it sent for six minutes, to fold a repeat into a series, and
//! scans that whole cache on every publish: with 10,000 objects becoming Ready that is 10,000 Events held
//! (about 15 MB) and 10,000 scans of up to 10,000 entries, under one lock that every reconcile waits on.
//! Navigator records an Event only on a transition (the Ready summary or its reason changing, an invoice
//! issued, a vendor's reply), so repeats are rare and folding buys little: each Event is its own object.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};

/// Sends Events about objects on behalf of one reporting controller (and instance).
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    reporter: Reporter,
}

impl Recorder {
    pub fn new(client: kube::Client, reporter: Reporter) -> Self {
        Recorder { client, reporter }
    }

    /// Creates the Event `event` about the object `reference` points to, in its namespace (`default` for a
    /// cluster-scoped object, as kubectl looks for them).
    pub async fn publish(&self, event: &Event, reference: &ObjectReference) -> Result<(), kube::Error> {
        let event = to_k8s(&self.reporter, event, reference, k8s_openapi::jiff::Timestamp::now());
        let namespace = reference.namespace.as_deref().unwrap_or("default");
        Api::<K8sEvent>::namespaced(self.client.clone(), namespace)
            .create(&PostParams::default(), &event)
            .await
            .map(|_| ())
    }
}

/// The Event object: named after the object and the time (as kube's recorder and client-go name them).
fn to_k8s(
    reporter: &Reporter,
    event: &Event,
    reference: &ObjectReference,
    now: k8s_openapi::jiff::Timestamp,
) -> K8sEvent {
    let subject = reference.name.as_deref().unwrap_or(&reporter.controller);
    K8sEvent {
        action: Some(event.action.clone()),
        reason: Some(event.reason.clone()),
        event_time: Some(MicroTime(now)),
        regarding: Some(reference.clone()),
        related: event.secondary.clone(),
        note: event.note.clone(),
        metadata: ObjectMeta {
            namespace: reference.namespace.clone(),
            name: Some(format!("{subject}.{:x}", now.as_nanosecond())),
            ..Default::default()
        },
        reporting_controller: Some(reporter.controller.clone()),
        reporting_instance: Some(reporter.instance.clone().unwrap_or_else(|| reporter.controller.clone())),
        type_: Some(
            match event.type_ {
                EventType::Normal => "Normal",
                EventType::Warning => "Warning",
            }
            .into(),
        ),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_names_its_object_reporter_and_time() {
        let reporter = Reporter {
            controller: "navigator".into(),
            instance: None,
        };
        let reference = ObjectReference {
            kind: Some("CloudServiceSubscription".into()),
            namespace: Some("acme".into()),
            name: Some("web".into()),
            ..Default::default()
        };
        let event = Event {
            type_: EventType::Warning,
            reason: "NotEntitled".into(),
            note: Some("no contract".into()),
            action: "Reconcile".into(),
            secondary: None,
        };
        let now = k8s_openapi::jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let k8s = to_k8s(&reporter, &event, &reference, now);
        assert_eq!(k8s.metadata.namespace.as_deref(), Some("acme"));
        assert_eq!(k8s.metadata.name, Some(format!("web.{:x}", now.as_nanosecond())));
        assert_eq!(k8s.type_.as_deref(), Some("Warning"));
        assert_eq!(k8s.reason.as_deref(), Some("NotEntitled"));
        assert_eq!(k8s.reporting_instance.as_deref(), Some("navigator"));
        assert_eq!(k8s.regarding, Some(reference));
    }
}
