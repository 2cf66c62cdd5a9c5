//! Namespaces Navigator creates for provider and customer organisations, and the RoleBindings in them.
//! A namespace that exists without Navigator's ownership labels is never taken over.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject as RbacSubject};
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};

use crate::api::common::{Subject, SubjectKind};
use crate::api::{CustomerOrg, ProviderOrg};
use crate::runtime::error::Error;
use crate::runtime::reconciler::FIELD_MANAGER;

pub use crate::api::keys::{CUSTOMER_ORG_LABEL, MANAGED_BY, PROVIDER_NAMESPACE_LABEL, PROVIDER_ORG_LABEL};

/// The labels that mark a namespace as Navigator's for one owner.
pub fn ownership_labels(owner: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = owner.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    labels.insert(MANAGED_BY.into(), "navigator".into());
    labels
}

/// The ProviderOrg a namespace or RoleBinding Navigator made for it belongs to, from its ownership labels.
pub fn provider_owner(meta: &ObjectMeta) -> Option<ObjectRef<ProviderOrg>> {
    Some(ObjectRef::new(meta.labels.as_ref()?.get(PROVIDER_ORG_LABEL)?))
}

/// The CustomerOrg a customer namespace belongs to, from its ownership labels.
pub fn customer_owner(meta: &ObjectMeta) -> Option<ObjectRef<CustomerOrg>> {
    let labels = meta.labels.as_ref()?;
    Some(ObjectRef::new(labels.get(CUSTOMER_ORG_LABEL)?).within(labels.get(PROVIDER_NAMESPACE_LABEL)?))
}

/// What to do about a namespace, given its live labels (`None` when it does not exist).
#[derive(Debug, PartialEq, Eq)]
pub enum NamespacePlan {
    Create,
    /// Ours, with every label in place: nothing to write.
    UpToDate,
    /// Ours but a label is missing or different (e.g. removed by hand): re-apply them.
    Relabel,
    /// Exists and belongs to someone else.
    Conflict(NamespaceOwner),
}

/// Who a namespace belongs to, as its labels say.
#[derive(Debug, PartialEq, Eq)]
pub enum NamespaceOwner {
    /// No Navigator owner label: someone else created it.
    NotNavigator,
    /// The namespace of a ProviderOrg.
    ProviderOrg(String),
    /// The customer namespace of a CustomerOrg living in `provider_namespace` (unknown when the label is gone).
    CustomerOrg {
        name: String,
        provider_namespace: Option<String>,
    },
}

/// Reads a namespace's owner from its labels.
pub fn owner_of(labels: &BTreeMap<String, String>) -> NamespaceOwner {
    if let Some(name) = labels.get(CUSTOMER_ORG_LABEL) {
        NamespaceOwner::CustomerOrg {
            name: name.clone(),
            provider_namespace: labels.get(PROVIDER_NAMESPACE_LABEL).cloned(),
        }
    } else if let Some(name) = labels.get(PROVIDER_ORG_LABEL) {
        NamespaceOwner::ProviderOrg(name.clone())
    } else {
        NamespaceOwner::NotNavigator
    }
}

/// The message of a `NamespaceConflict`: says whether the namespace is someone else's or another Navigator
/// organisation's, and what to do. `wanted` (the labels the asking object wants) tells who will read it: a
/// ProviderOrg's status is read by the platform team, who may see every owner; a CustomerOrg's by its
/// provider, who is told the owner only when it is one of its own customers, never another provider's.
pub fn conflict_message(namespace: &str, owner: &NamespaceOwner, wanted: &BTreeMap<String, String>) -> String {
    let asker_provider_namespace = wanted.get(PROVIDER_NAMESPACE_LABEL);
    let fix = if asker_provider_namespace.is_some() {
        "give this CustomerOrg another name"
    } else {
        "give this ProviderOrg another spec.namespace"
    };
    let owner_text = match (owner, asker_provider_namespace) {
        (NamespaceOwner::NotNavigator, _) => {
            return format!(
                "namespace {namespace} already exists and is not Navigator's (it has no Navigator owner label); \
                 {fix}, or delete that namespace if nothing in it is needed"
            );
        }
        (NamespaceOwner::ProviderOrg(name), None) => format!("ProviderOrg {name}"),
        (
            NamespaceOwner::CustomerOrg {
                name,
                provider_namespace: Some(theirs),
            },
            ours,
        ) if ours.is_none_or(|ours| ours == theirs) => {
            format!("CustomerOrg {name} of provider namespace {theirs} (its customer namespace)")
        }
        (NamespaceOwner::CustomerOrg { name, .. }, None) => format!("CustomerOrg {name} (its customer namespace)"),
        // Another provider's: its names are not this provider's to see.
        (NamespaceOwner::ProviderOrg(_) | NamespaceOwner::CustomerOrg { .. }, Some(_)) => {
            "another provider or one of its customers".to_string()
        }
    };
    format!("namespace {namespace} already belongs to {owner_text}; {fix}")
}

/// Decides what to do about a namespace. It is ours only when it carries our owner labels exactly; a
/// namespace carrying no Navigator label at all, or another owner's, is someone else's.
pub fn plan_namespace(live: Option<&BTreeMap<String, String>>, wanted: &BTreeMap<String, String>) -> NamespacePlan {
    let Some(live) = live else { return NamespacePlan::Create };
    let owner_keys = [PROVIDER_ORG_LABEL, CUSTOMER_ORG_LABEL, PROVIDER_NAMESPACE_LABEL];
    let same_owner = owner_keys.iter().all(|k| live.get(*k) == wanted.get(*k));
    let has_owner = owner_keys.iter().any(|k| live.contains_key(*k));
    if !has_owner || !same_owner {
        NamespacePlan::Conflict(owner_of(live))
    } else if wanted.iter().all(|(k, v)| live.get(k) == Some(v)) {
        NamespacePlan::UpToDate
    } else {
        NamespacePlan::Relabel
    }
}

/// Creates the namespace with the ownership labels, or checks it is ours. Writes only when needed, and
/// reads it live only when `cached` (Navigator's namespaces of this owner kind) does not show it as wanted.
pub async fn ensure_namespace(
    client: &kube::Client,
    cached: &Store<PartialObjectMeta<Namespace>>,
    name: &str,
    labels: BTreeMap<String, String>,
) -> Result<(), Error> {
    let in_place = cached.get(&ObjectRef::new(name)).is_some_and(|ns| {
        ns.metadata.deletion_timestamp.is_none()
            && plan_namespace(Some(ns.labels()), &labels) == NamespacePlan::UpToDate
    });
    if in_place {
        // Should it change or go, its watch wakes the owner to look again.
        return Ok(());
    }
    let api = Api::<Namespace>::all(client.clone());
    let live = api.get_opt(name).await?;
    if live.as_ref().is_some_and(|ns| ns.metadata.deletion_timestamp.is_some()) {
        return Err(Error::waiting(
            "NamespaceTerminating",
            format!("namespace {name} is being deleted"),
        ));
    }
    match plan_namespace(
        live.as_ref()
            .map(|ns| ns.metadata.labels.clone().unwrap_or_default())
            .as_ref(),
        &labels,
    ) {
        NamespacePlan::UpToDate => Ok(()),
        NamespacePlan::Conflict(owner) => Err(Error::stalled(
            "NamespaceConflict",
            conflict_message(name, &owner, &labels),
        )),
        NamespacePlan::Create | NamespacePlan::Relabel => {
            let ns = Namespace {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    labels: Some(labels),
                    ..Default::default()
                },
                ..Default::default()
            };
            api.patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&ns))
                .await?;
            Ok(())
        }
    }
}

/// Deletes a namespace if it is ours (never someone else's).
pub async fn delete_namespace_if_ours(
    client: &kube::Client,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> Result<(), Error> {
    let api = Api::<Namespace>::all(client.clone());
    let Some(live) = api.get_opt(name).await? else {
        return Ok(());
    };
    let plan = plan_namespace(Some(&live.metadata.labels.clone().unwrap_or_default()), labels);
    if matches!(plan, NamespacePlan::UpToDate | NamespacePlan::Relabel) && live.metadata.deletion_timestamp.is_none() {
        api.delete(name, &DeleteParams::background()).await?;
    }
    Ok(())
}

/// RBAC subjects for Navigator subjects.
pub fn rbac_subjects(subjects: &[Subject]) -> Vec<RbacSubject> {
    subjects
        .iter()
        .map(|s| RbacSubject {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: match s.kind {
                SubjectKind::User => "User".into(),
                SubjectKind::Group => "Group".into(),
            },
            name: s.name.clone(),
            namespace: None,
        })
        .collect()
}

/// Deletes the named object, if it is there.
pub async fn delete_if_present<K>(api: &Api<K>, name: &str) -> Result<(), Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Makes a RoleBinding of `cluster_role` to `subjects` exist as given in `namespace` (or not exist, when
/// there are no subjects). Writes only when the binding in `cached` (the watched bindings carrying the same
/// owner label) differs; a change by someone else wakes the owner through that watch.
pub async fn ensure_role_binding(
    client: &kube::Client,
    cached: &Store<RoleBinding>,
    namespace: &str,
    name: &str,
    cluster_role: &str,
    subjects: Vec<RbacSubject>,
    labels: BTreeMap<String, String>,
) -> Result<(), Error> {
    let api = Api::<RoleBinding>::namespaced(client.clone(), namespace);
    let live = cached.get(&ObjectRef::new(name).within(namespace));
    if subjects.is_empty() {
        if live.is_some() {
            delete_if_present(&api, name).await?;
        }
        return Ok(());
    }
    let role_ref = RoleRef {
        api_group: Some("rbac.authorization.k8s.io".into()),
        kind: "ClusterRole".into(),
        name: cluster_role.into(),
    };
    let up_to_date = live.as_ref().is_some_and(|rb| {
        rb.role_ref == role_ref
            && rb.subjects.as_deref() == Some(subjects.as_slice())
            && labels
                .iter()
                .all(|(k, v)| rb.metadata.labels.as_ref().and_then(|l| l.get(k)) == Some(v))
    });
    if up_to_date {
        return Ok(());
    }
    if live.as_ref().is_some_and(|rb| rb.role_ref != role_ref) {
        // roleRef cannot change in place.
        delete_if_present(&api, name).await?;
    }
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels),
            ..Default::default()
        },
        role_ref,
        subjects: Some(subjects),
    };
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&binding),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_is_taken_only_when_it_carries_our_owner_labels() {
        let wanted = ownership_labels(&[(PROVIDER_ORG_LABEL, "acme")]);
        assert_eq!(plan_namespace(None, &wanted), NamespacePlan::Create);
        assert_eq!(plan_namespace(Some(&wanted), &wanted), NamespacePlan::UpToDate);
        let foreign = BTreeMap::from([("team".to_string(), "payments".to_string())]);
        assert_eq!(
            plan_namespace(Some(&foreign), &wanted),
            NamespacePlan::Conflict(NamespaceOwner::NotNavigator)
        );
        let other_owner = ownership_labels(&[(PROVIDER_ORG_LABEL, "globex")]);
        assert_eq!(
            plan_namespace(Some(&other_owner), &wanted),
            NamespacePlan::Conflict(NamespaceOwner::ProviderOrg("globex".into()))
        );
        let mut relabel = wanted.clone();
        relabel.remove(MANAGED_BY);
        assert_eq!(plan_namespace(Some(&relabel), &wanted), NamespacePlan::Relabel);
    }

    #[test]
    fn what_navigator_made_maps_back_to_its_owner_by_the_ownership_labels() {
        let meta = |labels: BTreeMap<String, String>| ObjectMeta {
            labels: Some(labels),
            ..Default::default()
        };
        let provider = meta(ownership_labels(&[(PROVIDER_ORG_LABEL, "acme")]));
        assert_eq!(provider_owner(&provider), Some(ObjectRef::new("acme")));
        assert_eq!(customer_owner(&provider), None);
        let customer = meta(ownership_labels(&[
            (CUSTOMER_ORG_LABEL, "globex"),
            (PROVIDER_NAMESPACE_LABEL, "acme"),
        ]));
        assert_eq!(customer_owner(&customer), Some(ObjectRef::new("globex").within("acme")));
        assert_eq!(provider_owner(&customer), None);
    }

    #[test]
    fn a_customer_namespace_is_not_a_provider_namespace() {
        let provider = ownership_labels(&[(PROVIDER_ORG_LABEL, "acme")]);
        let customer = ownership_labels(&[(CUSTOMER_ORG_LABEL, "acme"), (PROVIDER_NAMESPACE_LABEL, "p")]);
        assert!(matches!(
            plan_namespace(Some(&customer), &provider),
            NamespacePlan::Conflict(NamespaceOwner::CustomerOrg { .. })
        ));
        assert_eq!(
            plan_namespace(Some(&provider), &customer),
            NamespacePlan::Conflict(NamespaceOwner::ProviderOrg("acme".into()))
        );
    }

    fn customer_of(provider_namespace: &str, name: &str) -> BTreeMap<String, String> {
        ownership_labels(&[
            (CUSTOMER_ORG_LABEL, name),
            (PROVIDER_NAMESPACE_LABEL, provider_namespace),
        ])
    }

    #[test]
    fn a_conflict_says_whether_the_namespace_is_navigators_and_whose_only_to_those_who_may_know() {
        let message = |live: &BTreeMap<String, String>, wanted: &BTreeMap<String, String>| {
            conflict_message("acme-prod-x", &owner_of(live), wanted)
        };
        let provider_asks = ownership_labels(&[(PROVIDER_ORG_LABEL, "acme-prod-x")]);
        let customer_asks = customer_of("acme", "prod-x");

        // Not Navigator's at all: said so, whoever asks.
        let foreign = BTreeMap::from([("team".to_string(), "payments".to_string())]);
        for wanted in [&provider_asks, &customer_asks] {
            let text = message(&foreign, wanted);
            assert!(text.contains("is not Navigator's"), "{text}");
            assert!(!text.contains("belongs to"), "{text}");
        }
        assert!(message(&foreign, &customer_asks).contains("give this CustomerOrg another name"));
        assert!(message(&foreign, &provider_asks).contains("give this ProviderOrg another spec.namespace"));

        // Another provider's customer namespace.
        let other_customer = customer_of("acme-prod", "x");
        let text = message(&other_customer, &provider_asks);
        assert!(
            text.contains("already belongs to CustomerOrg x of provider namespace acme-prod"),
            "the platform team sees every owner: {text}"
        );
        assert!(!text.contains("not Navigator's"), "{text}");
        let text = message(&other_customer, &customer_asks);
        assert!(
            text.contains("already belongs to another provider or one of its customers"),
            "{text}"
        );
        assert!(
            !text.contains("provider namespace") && !text.contains("CustomerOrg x"),
            "no private details: {text}"
        );
        assert!(!text.contains("not Navigator's"), "{text}");

        // Another ProviderOrg's namespace.
        let other_provider = ownership_labels(&[(PROVIDER_ORG_LABEL, "globex")]);
        assert!(message(&other_provider, &provider_asks).contains("already belongs to ProviderOrg globex"));
        let text = message(&other_provider, &customer_asks);
        assert!(
            text.contains("another provider or one of its customers") && !text.contains("globex"),
            "{text}"
        );

        // One of the asking provider's own customers may be named.
        let own_customer = customer_of("acme", "prod");
        assert!(
            message(&own_customer, &customer_asks)
                .contains("already belongs to CustomerOrg prod of provider namespace acme")
        );
    }
}
