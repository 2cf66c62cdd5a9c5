//! AccessGrant: a subject given one role of the catalogue (the `navigator-*` ClusterRoles of the Helm
//! chart), turned into RoleBindings in the provider's namespace or in a customer's namespace, a user in the
//! customer's tenant organisation on the endpoint for customer roles, and a directory entry that lets the
//! subject find the organisation (`navigator org list`). Revoked at `expiresAt` and when deleted.
//!
//! Where a role is bound:
//! - provider, distributor and reseller roles: the provider's namespace; those that read invoices
//!   ([`reaches_customer_namespaces`]) also in every customer namespace of the provider, including
//!   customers added later;
//! - customer roles: only the customer's namespace (`<provider namespace>-<customer>`), never the
//!   provider's, so a customer sees its own invoices and nothing of other customers or of the provider.
//!
//! Everything a grant creates is named after the grant and labelled with its uid, so two grants for the same
//! subject never touch each other's objects. The endpoint user is shared by every grant of the same user on
//! the same customer: it holds the strongest endpoint role among those grants, and goes with the last one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleBinding, RoleRef};
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use crate::api::access_grant::{AccessGrantStatus, BindingRef, EndpointUser, GrantPhase, Role};
use crate::api::common::SubjectKind;
use crate::api::{AccessGrant, CustomerOrg};
use crate::controllers::cloud_endpoint::{driver_for, driver_for_cleanup};
use crate::controllers::customer_org::{customer_namespace, provisioned};
use crate::controllers::namespaces::{MANAGED_BY, delete_if_present, rbac_subjects};
use crate::endpoint::{Deletion, DriverError, UserDesired};
use crate::runtime::conditions::Phase;
use crate::runtime::context::Context;
use crate::runtime::create_protocol::{self, Creating};
use crate::runtime::error::Error;
use crate::runtime::reconciler::{Cleanup, FIELD_MANAGER, Managed, Object, Outcome};

crate::impl_object!(AccessGrant, AccessGrantStatus, namespaced);

pub use crate::api::keys::ACCESS_GRANT_FINALIZER as FINALIZER;
pub use crate::api::keys::GRANT_ANNOTATION;
pub use crate::api::keys::GRANT_UID_LABEL;
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
/// Kubernetes object names are at most this long.
const MAX_NAME: usize = 253;

/// The catalogue ClusterRole of a role: `navigator-` and the role in kebab case, e.g.
/// `navigator-provider-billing-user` (the Helm chart's `templates/roles.yaml` ships them).
pub fn cluster_role(role: Role) -> String {
    let mut name = String::from("navigator");
    for c in role.as_str().chars() {
        if c.is_ascii_uppercase() {
            name.push('-');
        }
        name.push(c.to_ascii_lowercase());
    }
    name
}

/// Provider-wide roles that read invoices, which live in the customer namespaces: they are bound in every
/// customer namespace of the provider too.
pub fn reaches_customer_namespaces(role: Role) -> bool {
    matches!(
        role,
        Role::ProviderAdministrator
            | Role::ProviderBillingUser
            | Role::DistributorAdministrator
            | Role::ResellerAdministrator
    )
}

/// The endpoint's role for a customer role (the Navigator endpoint API's roles), strongest first.
pub fn endpoint_role(role: Role) -> Option<&'static str> {
    match role {
        Role::CustomerAdministrator => Some("OrganizationAdministrator"),
        Role::CustomerUser => Some("OrganizationUser"),
        Role::CustomerBillingUser => Some("BillingUser"),
        _ => None,
    }
}

/// The strongest of several customer roles, as the endpoint role one user holds for all of them.
pub fn strongest_endpoint_role(roles: impl IntoIterator<Item = Role>) -> Option<&'static str> {
    let rank = |r: &&str| match *r {
        "OrganizationAdministrator" => 0,
        "OrganizationUser" => 1,
        _ => 2,
    };
    roles.into_iter().filter_map(endpoint_role).min_by_key(rank)
}

/// The RoleBindings' name: `navigator-grant-<grant name>` (the grant's uid when that would be too long).
pub fn binding_name(grant: &AccessGrant) -> String {
    let name = format!("navigator-grant-{}", grant.name_any());
    if name.len() <= MAX_NAME {
        name
    } else {
        format!("navigator-grant-{}", grant.uid().unwrap_or_default())
    }
}

/// The directory ClusterRole and ClusterRoleBinding's name: `navigator-grant:<namespace>:<grant name>`.
pub fn directory_name(grant: &AccessGrant) -> String {
    let name = format!(
        "navigator-grant:{}:{}",
        grant.namespace().unwrap_or_default(),
        grant.name_any()
    );
    if name.len() <= MAX_NAME {
        name
    } else {
        format!("navigator-grant:{}", grant.uid().unwrap_or_default())
    }
}

/// Whether the grant has passed its `expiresAt` at `now`.
pub fn is_expired(grant: &AccessGrant, now: jiff::Timestamp) -> bool {
    grant.spec.expires_at.as_ref().is_some_and(|t| t.0 <= now)
}

/// Where the grant's RoleBindings go: for a customer role the customer's namespace only; otherwise the
/// provider's namespace and, for roles that read invoices, the namespace of every customer that has one.
pub fn binding_namespaces(
    grant: &AccessGrant,
    customer: Option<&CustomerOrg>,
    customers: &[Arc<CustomerOrg>],
) -> Vec<String> {
    let provider_namespace = grant.namespace().unwrap_or_default();
    if grant.spec.role.is_customer_role() {
        return customer.map(customer_namespace).into_iter().collect();
    }
    let mut namespaces = BTreeSet::from([provider_namespace.clone()]);
    if reaches_customer_namespaces(grant.spec.role) {
        namespaces.extend(
            customers
                .iter()
                .filter(|c| c.namespace().as_deref() == Some(provider_namespace.as_str()))
                .filter(|c| c.metadata.deletion_timestamp.is_none())
                .filter_map(|c| c.status.as_ref()?.namespace.clone()),
        );
    }
    namespaces.into_iter().collect()
}

/// Whether `other` gives the same user a customer role on the same customer and still holds (not this
/// grant, not being deleted, not expired): such grants share one endpoint user.
fn shares_endpoint_user(grant: &AccessGrant, other: &AccessGrant, now: jiff::Timestamp) -> bool {
    other.uid() != grant.uid()
        && other.namespace() == grant.namespace()
        && other.metadata.deletion_timestamp.is_none()
        && !is_expired(other, now)
        && other.spec.role.is_customer_role()
        && other.spec.subject.kind == SubjectKind::User
        && other.spec.subject.name == grant.spec.subject.name
        && other.customer_name() == grant.customer_name()
}

/// Which of the grants sharing one endpoint user creates it: the first by name (names are unique in the
/// namespace they share), so that two grants never create the same user side by side on an endpoint where
/// that makes two users (each guards only its own create with its marker). The others wait for the user
/// and then share it.
fn endpoint_user_creator<'a>(grant: &'a AccessGrant, siblings: &'a [Arc<AccessGrant>]) -> &'a AccessGrant {
    // A sibling that cannot name its user (no e-mail address) cannot create it either.
    siblings
        .iter()
        .map(|s| s.as_ref())
        .filter(|s| matches!(endpoint_identity(s), Ok(Some(_))))
        .chain([grant])
        .min_by(|a, b| a.name_any().cmp(&b.name_any()))
        .unwrap_or(grant)
}

/// The endpoint user of a customer-scoped grant to a person: user name and e-mail address. Groups have no
/// user on the endpoint.
fn endpoint_identity(grant: &AccessGrant) -> Result<Option<(String, String)>, Error> {
    let subject = &grant.spec.subject;
    if subject.kind != SubjectKind::User {
        return Ok(None);
    }
    let email = subject
        .email
        .clone()
        .or_else(|| subject.name.contains('@').then(|| subject.name.clone()))
        .ok_or_else(|| {
            Error::stalled(
                "EmailRequired",
                format!(
                    "subject {} needs spec.subject.email: a customer role also invites the person to the customer's tenant on the endpoint",
                    subject.name
                ),
            )
        })?;
    Ok(Some((subject.name.to_lowercase(), email)))
}

fn grant_labels(grant: &AccessGrant) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_string(), "navigator".to_string()),
        (GRANT_UID_LABEL.to_string(), grant.uid().unwrap_or_default()),
    ])
}

fn grant_annotations(grant: &AccessGrant) -> BTreeMap<String, String> {
    BTreeMap::from([(
        GRANT_ANNOTATION.to_string(),
        format!("{}/{}", grant.namespace().unwrap_or_default(), grant.name_any()),
    )])
}

/// The grant a RoleBinding, ClusterRole or ClusterRoleBinding was made for, from the annotation on it.
pub fn grant_owner(meta: &ObjectMeta) -> Option<ObjectRef<AccessGrant>> {
    let (namespace, name) = meta.annotations.as_ref()?.get(GRANT_ANNOTATION)?.split_once('/')?;
    Some(ObjectRef::new(name).within(namespace))
}

fn uid_selector(grant: &AccessGrant) -> ListParams {
    ListParams::default().labels(&format!("{GRANT_UID_LABEL}={}", grant.uid().unwrap_or_default()))
}

/// The RoleBinding the grant wants in `namespace`. The one in the grant's own namespace is owned by the grant
/// (owner references cannot cross namespaces; the others go through the finalizer).
pub fn desired_binding(grant: &AccessGrant, namespace: &str) -> RoleBinding {
    let owned = grant.namespace().as_deref() == Some(namespace);
    RoleBinding {
        metadata: ObjectMeta {
            name: Some(binding_name(grant)),
            namespace: Some(namespace.to_string()),
            labels: Some(grant_labels(grant)),
            annotations: Some(grant_annotations(grant)),
            owner_references: owned.then(|| grant.controller_owner_ref(&()).into_iter().collect()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some(RBAC_GROUP.into()),
            kind: "ClusterRole".into(),
            name: cluster_role(grant.spec.role),
        },
        subjects: Some(rbac_subjects(std::slice::from_ref(&grant.spec.subject))),
    }
}

/// Whether the live binding already is what is wanted (Kubernetes adds nothing to these fields).
fn binding_up_to_date(live: &RoleBinding, wanted: &RoleBinding) -> bool {
    let labels_in_place = wanted
        .metadata
        .labels
        .iter()
        .flatten()
        .all(|(k, v)| live.metadata.labels.as_ref().and_then(|l| l.get(k)) == Some(v));
    live.role_ref == wanted.role_ref && live.subjects == wanted.subjects && labels_in_place
}

/// The directory entry: lets the subject read (only) the namespaces it holds the role in, so `navigator org
/// list` can find them without the right to list every namespace of the cluster.
pub fn desired_directory(grant: &AccessGrant, namespaces: &[String]) -> (ClusterRole, ClusterRoleBinding) {
    let name = directory_name(grant);
    let metadata = ObjectMeta {
        name: Some(name.clone()),
        labels: Some(grant_labels(grant)),
        annotations: Some(grant_annotations(grant)),
        ..Default::default()
    };
    let role = ClusterRole {
        metadata: metadata.clone(),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["namespaces".into()]),
            resource_names: Some(namespaces.to_vec()),
            verbs: vec!["get".into()],
            ..Default::default()
        }]),
        aggregation_rule: None,
    };
    let binding = ClusterRoleBinding {
        metadata,
        role_ref: RoleRef {
            api_group: Some(RBAC_GROUP.into()),
            kind: "ClusterRole".into(),
            name,
        },
        subjects: Some(rbac_subjects(std::slice::from_ref(&grant.spec.subject))),
    };
    (role, binding)
}

async fn apply_object<K>(api: &Api<K>, name: &str, object: &K) -> Result<(), Error>
where
    K: Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(object))
        .await?;
    Ok(())
}

impl AccessGrant {
    /// The grant's RoleBindings wherever they are, from the cache of the RoleBindings carrying a grant uid
    /// label; its watch wakes the grant when one of them changes or goes.
    fn cached_bindings(&self, ctx: &Context) -> Vec<Arc<RoleBinding>> {
        let uid = self.uid().unwrap_or_default();
        ctx.stores
            .children
            .grant_bindings
            .state_filter(|b| b.labels().get(GRANT_UID_LABEL) == Some(&uid))
    }

    /// Makes the grant's RoleBindings exactly one per namespace in `namespaces`: creates or fixes what is
    /// missing or different, deletes the grant's bindings elsewhere. Writes only what differs from the cache.
    async fn sync_bindings(&self, ctx: &Context, namespaces: &[String]) -> Result<Vec<BindingRef>, Error> {
        let cached = self.cached_bindings(ctx);
        for namespace in namespaces {
            let wanted = desired_binding(self, namespace);
            let name = binding_name(self);
            let existing = cached
                .iter()
                .find(|b| b.namespace().as_deref() == Some(namespace.as_str()) && b.name_any() == name);
            if existing.is_some_and(|b| binding_up_to_date(b, &wanted)) {
                continue;
            }
            let api = Api::<RoleBinding>::namespaced(ctx.client.clone(), namespace);
            if existing.is_some_and(|b| b.role_ref != wanted.role_ref) {
                // roleRef cannot change in place (the role of the grant changed).
                delete_if_present(&api, &name).await?;
            }
            apply_object(&api, &name, &wanted).await?;
        }
        for stale in cached.iter().filter(|b| {
            !namespaces.iter().any(|n| b.namespace().as_deref() == Some(n.as_str()))
                || b.name_any() != binding_name(self)
        }) {
            let api = Api::<RoleBinding>::namespaced(ctx.client.clone(), &stale.namespace().unwrap_or_default());
            delete_if_present(&api, &stale.name_any()).await?;
        }
        Ok(namespaces
            .iter()
            .map(|namespace| BindingRef {
                namespace: namespace.clone(),
                name: binding_name(self),
            })
            .collect())
    }

    async fn sync_directory(&self, ctx: &Context, namespaces: &[String]) -> Result<(), Error> {
        let (role, binding) = desired_directory(self, namespaces);
        let name = directory_name(self);
        let children = &ctx.stores.children;
        let live_role = children.grant_roles.get(&ObjectRef::new(&name));
        if live_role.is_none_or(|r| r.rules != role.rules) {
            apply_object(&Api::<ClusterRole>::all(ctx.client.clone()), &name, &role).await?;
        }
        let live_binding = children.grant_role_bindings.get(&ObjectRef::new(&name));
        // The roleRef never changes (it is the entry's own ClusterRole); the subject may.
        if live_binding.is_none_or(|b| b.subjects != binding.subjects) {
            apply_object(&Api::<ClusterRoleBinding>::all(ctx.client.clone()), &name, &binding).await?;
        }
        Ok(())
    }

    /// The CustomerOrg this grant is scoped to, if any.
    pub fn customer_name(&self) -> Option<&str> {
        self.spec
            .scope
            .as_ref()
            .and_then(|s| s.customer_org_ref.as_ref())
            .map(|r| r.name.as_str())
    }

    /// The customer roles other live grants give the same user on the same customer.
    fn sibling_roles(&self, ctx: &Context) -> Vec<Role> {
        self.siblings(ctx).iter().map(|other| other.spec.role).collect()
    }

    /// The other live grants that share this grant's endpoint user.
    fn siblings(&self, ctx: &Context) -> Vec<Arc<AccessGrant>> {
        let now = ctx.clock.now();
        ctx.stores
            .grants
            .state()
            .into_iter()
            .filter(|other| shares_endpoint_user(self, other, now))
            .collect()
    }

    /// Gives the subject's endpoint user the strongest role of this grant and its siblings.
    async fn sync_endpoint_user(&self, ctx: &Context, customer: &CustomerOrg) -> Result<Option<EndpointUser>, Error> {
        let Some((username, email)) = endpoint_identity(self)? else {
            return Ok(None);
        };
        let roles = self.sibling_roles(ctx).into_iter().chain([self.spec.role]);
        // The schema allows a customer scope only with customer roles, which all map to an endpoint role;
        // should an object slip past it (an older CRD), say so instead of failing hard.
        let role = strongest_endpoint_role(roles).ok_or_else(|| {
            Error::stalled(
                "NoEndpointRole",
                format!("role {:?} has no role on the endpoint", self.spec.role),
            )
        })?;
        let entry = driver_for(&customer.spec.endpoint_ref.name, ctx).await?;
        let tenant = &customer.spec.tenant_name;
        let desired = UserDesired {
            email,
            role: role.to_string(),
        };
        let driver = entry.driver.as_ref();
        let siblings = self.siblings(ctx);
        let creator = endpoint_user_creator(self, &siblings);
        let user = if creator.uid() == self.uid() {
            let (observe, create) = (
                driver.observe_user(tenant, &username),
                driver.create_user(tenant, &username, &desired),
            );
            create_protocol::ensure(self, Creating::User, ctx, driver, observe, create).await?
        } else {
            driver.observe_user(tenant, &username).await?.ok_or_else(|| {
                Error::waiting(
                    "WaitingForEndpointUser",
                    format!(
                        "grant {} creates user {username} in tenant {tenant}; this grant then shares it",
                        creator.name_any()
                    ),
                )
            })?
        };
        let user = if user.is_up_to_date(&desired) {
            user
        } else {
            driver.apply_user(tenant, &username, &desired).await?
        };
        Ok(Some(EndpointUser {
            id: Some(user.external_id),
            username: Some(user.username),
            role: Some(user.role),
        }))
    }

    /// Removes the grant's endpoint user, or hands it the strongest role of the grants that remain.
    async fn revoke_endpoint_user(&self, ctx: &Context) -> Result<(), Error> {
        let (Some(customer_name), Some((username, email))) =
            (self.customer_name(), endpoint_identity(self).ok().flatten())
        else {
            return Ok(());
        };
        let namespace = self.namespace().unwrap_or_default();
        // With the customer (or its endpoint) really gone from the API, its tenant went with it, users
        // included; a customer that does not hold its tenant never had a user there (the tenant and its
        // users are another customer's).
        let Some(customer) = ctx
            .cached_or_live(&ctx.stores.customers, Some(&namespace), customer_name)
            .await?
            .filter(|c| crate::controllers::customer_org::holds_tenant(c))
        else {
            return Ok(());
        };
        let Some(entry) = driver_for_cleanup(&customer.spec.endpoint_ref.name, ctx).await? else {
            return Ok(());
        };
        let tenant = &customer.spec.tenant_name;
        match strongest_endpoint_role(self.sibling_roles(ctx)) {
            Some(role) => {
                let desired = UserDesired {
                    email,
                    role: role.to_string(),
                };
                // A user that is not there (an endpoint that assigns ids does not create it on update) is
                // created by the remaining grants themselves.
                match entry.driver.apply_user(tenant, &username, &desired).await {
                    Ok(_) | Err(DriverError::NotFound { .. }) => {}
                    Err(error) => return Err(error.into()),
                }
            }
            None => match entry.driver.delete_user(tenant, &username).await {
                Ok(Deletion::Gone | Deletion::InProgress) | Err(DriverError::NotFound { .. }) => {}
                Err(error) => return Err(error.into()),
            },
        }
        Ok(())
    }

    /// Removes everything the grant gave: RoleBindings everywhere, the directory entry, the endpoint user.
    /// The bindings are listed live, not taken from the cache: this runs once, at expiry or deletion, and a
    /// binding made just before could still be missing from the cache, and would be left behind.
    async fn revoke(&self, ctx: &Context) -> Result<(), Error> {
        let all = Api::<RoleBinding>::all(ctx.client.clone());
        for binding in all.list(&uid_selector(self)).await?.items {
            let api = Api::<RoleBinding>::namespaced(ctx.client.clone(), &binding.namespace().unwrap_or_default());
            delete_if_present(&api, &binding.name_any()).await?;
        }
        let name = directory_name(self);
        delete_if_present(&Api::<ClusterRoleBinding>::all(ctx.client.clone()), &name).await?;
        delete_if_present(&Api::<ClusterRole>::all(ctx.client.clone()), &name).await?;
        self.revoke_endpoint_user(ctx).await
    }

    async fn grant(&self, ctx: &Context, status: &mut AccessGrantStatus) -> Result<Phase, Error> {
        let namespace = self.namespace().unwrap_or_default();
        if ctx.stores.provider_of_namespace(&namespace).is_none() {
            return Err(Error::stalled(
                "ProviderOrgNotFound",
                format!("no ProviderOrg has namespace {namespace}; access grants live in their provider's namespace"),
            ));
        }
        let customer = match self.customer_name() {
            Some(name) => Some(provisioned(ctx, &namespace, name)?),
            None => None,
        };
        let namespaces = binding_namespaces(self, customer.as_deref(), &ctx.stores.customers.state());
        status.bindings = self.sync_bindings(ctx, &namespaces).await?;
        self.sync_directory(ctx, &namespaces).await?;
        status.endpoint_user = match &customer {
            Some(customer) => self.sync_endpoint_user(ctx, customer).await?,
            None => None,
        };
        let subject = &self.spec.subject.name;
        let role = self.spec.role.as_str();
        let mut message = format!("{subject} holds {role} in {}", namespaces.join(", "));
        match (&customer, &status.endpoint_user) {
            (Some(customer), Some(user)) => message.push_str(&format!(
                "; user {} is {} of tenant {}",
                user.username.as_deref().unwrap_or_default(),
                user.role.as_deref().unwrap_or_default(),
                customer.spec.tenant_name
            )),
            (Some(_), None) => message.push_str("; a group has no user on the endpoint"),
            _ => {}
        }
        if self.spec.scope.as_ref().is_some_and(|s| !s.subscriptions.is_empty()) {
            message.push_str(
                "; the endpoint has no per-service permissions, so the subscriptions list is not enforced there",
            );
        }
        Ok(Phase::ready(message))
    }
}

#[async_trait]
impl Managed for AccessGrant {
    const FINALIZER: Option<&'static str> = Some(FINALIZER);

    async fn apply(&self, ctx: &Context) -> Result<Outcome<AccessGrantStatus>, Error> {
        let now = ctx.clock.now();
        let mut status = self.status.clone().unwrap_or_default();
        if is_expired(self, now) {
            // Revoked once; an Expired status is only written after everything went, so a crash repeats it.
            if status.phase != Some(GrantPhase::Expired) {
                self.revoke(ctx).await?;
            }
            status.phase = Some(GrantPhase::Expired);
            status.bindings.clear();
            status.endpoint_user = None;
            let expired_at = self
                .spec
                .expires_at
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default();
            let phase = Phase::stalled(
                "Expired",
                format!("expired at {expired_at}; every binding and the endpoint user were removed"),
            );
            // Nothing will change by itself: a later expiresAt (a spec change) wakes it through the watch.
            return Ok(Outcome::new(status, phase).requeue_after(ctx.settings.resync));
        }
        let outcome = match self.grant(ctx, &mut status).await {
            Ok(phase) => {
                status.phase = Some(GrantPhase::Active);
                Outcome::new(status, phase)
            }
            Err(error) => {
                // Not in effect yet (or no longer fully): Pending, with the reason in the conditions.
                status.phase = Some(GrantPhase::Pending);
                Outcome::new(status, error.phase())
            }
        };
        // Revoke on time: look again exactly at expiry when it comes before the next regular look.
        let until_expiry =
            self.spec.expires_at.as_ref().map(|t| {
                Duration::from_millis(u64::try_from(t.0.as_millisecond() - now.as_millisecond()).unwrap_or(0))
            });
        let regular = outcome
            .requeue_after
            .unwrap_or_else(|| crate::runtime::schedule::after(&outcome.phase, &ctx.settings));
        Ok(match until_expiry {
            Some(until) if until <= regular => outcome.requeue_exactly_after(until),
            _ => outcome,
        })
    }

    async fn cleanup(&self, ctx: &Context) -> Result<Cleanup, Error> {
        self.revoke(ctx).await?;
        if self
            .status
            .as_ref()
            .is_some_and(|s| s.phase != Some(GrantPhase::Revoked))
        {
            // Say so while the object is still there (watchers see it go Revoked, then disappear).
            let api = Self::api(ctx.client.clone(), self.namespace().as_deref());
            let patch =
                serde_json::json!({"status": {"phase": GrantPhase::Revoked, "bindings": null, "endpointUser": null}});
            if let Err(error) = api
                .patch_status(&self.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                tracing::debug!(grant = %self.name_any(), %error, "could not record the Revoked phase");
            }
        }
        Ok(Cleanup::Done)
    }
}

impl super::registry::Kind for AccessGrant {
    /// Also watches the grants' RoleBindings and directory entries (ClusterRole and ClusterRoleBinding), by
    /// the label Navigator puts on them, so one deleted or edited by someone else is repaired at once.
    fn start(
        wiring: &mut super::registry::Wiring,
        writer: kube::runtime::reflector::store::Writer<Self>,
        woken: futures::channel::mpsc::UnboundedReceiver<kube::runtime::reflector::ObjectRef<Self>>,
    ) -> Vec<futures::future::BoxFuture<'static, ()>> {
        use crate::runtime::watch::{WatchesChildren, drive, whole};
        let bindings = wiring.children.grant_bindings.take().expect("taken once");
        let roles = wiring.children.grant_roles.take().expect("taken once");
        let role_bindings = wiring.children.grant_role_bindings.take().expect("taken once");
        let (client, recorder) = (&wiring.client, &wiring.ctx.recorder);
        let controller = wiring
            .controller(writer)
            .watches_children(
                "AccessGrant RoleBindings",
                whole(client, GRANT_UID_LABEL, &bindings, recorder),
                bindings,
                grant_owner,
            )
            .watches_children(
                "AccessGrant ClusterRoles",
                whole(client, GRANT_UID_LABEL, &roles, recorder),
                roles,
                grant_owner,
            )
            .watches_children(
                "AccessGrant ClusterRoleBindings",
                whole(client, GRANT_UID_LABEL, &role_bindings, recorder),
                role_bindings,
                grant_owner,
            );
        vec![drive(controller.reconcile_on(woken), wiring.ctx.clone())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::access_grant::{AccessGrantSpec, GrantScope};
    use crate::api::common::Subject;
    use crate::api::customer_org::CustomerOrgStatus;
    use crate::api::references::LocalRef;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn grant(name: &str, role: Role, customer: Option<&str>) -> AccessGrant {
        let mut grant = AccessGrant::new(
            name,
            AccessGrantSpec {
                subject: Subject {
                    kind: SubjectKind::User,
                    name: "alice".into(),
                    email: Some("alice@example.test".into()),
                },
                role,
                scope: customer.map(|c| GrantScope {
                    customer_org_ref: Some(LocalRef::new(c)),
                    subscriptions: vec![],
                }),
                expires_at: None,
            },
        );
        grant.metadata.namespace = Some("acme".into());
        grant.metadata.uid = Some(format!("uid-{name}"));
        grant
    }

    fn customer(name: &str, provisioned: bool) -> Arc<CustomerOrg> {
        let mut customer: CustomerOrg = serde_json::from_value(serde_json::json!({
            "apiVersion": "navigator.cloudpartner.io/v1alpha1", "kind": "CustomerOrg",
            "metadata": {"name": name, "namespace": "acme"},
            "spec": {"displayName": name, "tenantName": name, "endpointRef": {"name": "sim"}}
        }))
        .unwrap();
        if provisioned {
            customer.status = Some(CustomerOrgStatus {
                namespace: Some(format!("acme-{name}")),
                ..Default::default()
            });
        }
        Arc::new(customer)
    }

    #[test]
    fn every_role_maps_to_its_kebab_case_cluster_role() {
        assert_eq!(
            cluster_role(Role::ProviderAdministrator),
            "navigator-provider-administrator"
        );
        assert_eq!(
            cluster_role(Role::ProviderBillingUser),
            "navigator-provider-billing-user"
        );
        assert_eq!(
            cluster_role(Role::CustomerAdministrator),
            "navigator-customer-administrator"
        );
        // The ProviderOrg controller binds administrators to the same catalogue role.
        assert_eq!(
            cluster_role(Role::ProviderAdministrator),
            crate::controllers::provider_org::ADMINISTRATOR_ROLE
        );
        let names: BTreeSet<String> = Role::ALL.into_iter().map(cluster_role).collect();
        assert_eq!(names.len(), Role::ALL.len(), "names are distinct");
    }

    #[test]
    fn customer_roles_bind_only_in_their_customer_namespace() {
        let customers = vec![customer("globex", true), customer("initech", true)];
        let g = grant("g", Role::CustomerAdministrator, Some("globex"));
        assert_eq!(
            binding_namespaces(&g, Some(&customers[0]), &customers),
            vec!["acme-globex"]
        );
    }

    #[test]
    fn invoice_readers_bind_in_every_provisioned_customer_namespace_and_others_only_in_the_provider_namespace() {
        let customers = vec![
            customer("globex", true),
            customer("initech", true),
            customer("late", false),
        ];
        let billing = grant("b", Role::ProviderBillingUser, None);
        assert_eq!(
            binding_namespaces(&billing, None, &customers),
            vec!["acme", "acme-globex", "acme-initech"]
        );
        let operations = grant("o", Role::ProviderOperationsUser, None);
        assert_eq!(binding_namespaces(&operations, None, &customers), vec!["acme"]);
    }

    #[test]
    fn the_strongest_endpoint_role_wins_and_only_customer_roles_have_one() {
        assert_eq!(
            strongest_endpoint_role([Role::CustomerBillingUser, Role::CustomerAdministrator]),
            Some("OrganizationAdministrator")
        );
        assert_eq!(
            strongest_endpoint_role([Role::CustomerBillingUser, Role::CustomerUser]),
            Some("OrganizationUser")
        );
        assert_eq!(strongest_endpoint_role([Role::ProviderAdministrator]), None);
        for role in Role::ALL {
            assert_eq!(endpoint_role(role).is_some(), role.is_customer_role(), "{role:?}");
        }
    }

    #[test]
    fn grants_of_the_same_user_on_the_same_customer_share_the_endpoint_user_while_they_hold() {
        let now: jiff::Timestamp = "2026-06-01T00:00:00Z".parse().unwrap();
        let admin = grant("admin", Role::CustomerAdministrator, Some("globex"));
        let billing = grant("billing", Role::CustomerBillingUser, Some("globex"));
        let elsewhere = grant("elsewhere", Role::CustomerUser, Some("initech"));
        assert!(shares_endpoint_user(&admin, &billing, now));
        assert!(!shares_endpoint_user(&admin, &admin, now), "not with itself");
        assert!(!shares_endpoint_user(&admin, &elsewhere, now), "another customer");
        let mut expired = billing.clone();
        expired.spec.expires_at = Some(Time("2026-05-31T00:00:00Z".parse().unwrap()));
        assert!(is_expired(&expired, now));
        assert!(
            !shares_endpoint_user(&admin, &expired, now),
            "an expired grant holds nothing"
        );
    }

    #[test]
    fn bindings_and_directory_entries_are_named_after_the_grant_and_only_the_local_one_is_owned() {
        let g = grant("ops", Role::ProviderBillingUser, None);
        let local = desired_binding(&g, "acme");
        assert_eq!(local.metadata.name.as_deref(), Some("navigator-grant-ops"));
        assert_eq!(local.role_ref.name, "navigator-provider-billing-user");
        assert_eq!(local.metadata.owner_references.as_ref().map(Vec::len), Some(1));
        let remote = desired_binding(&g, "acme-globex");
        assert!(remote.metadata.owner_references.is_none(), "no cross-namespace owner");
        assert!(binding_up_to_date(&local, &local));
        let (role, binding) = desired_directory(&g, &["acme".into(), "acme-globex".into()]);
        assert_eq!(role.metadata.name.as_deref(), Some("navigator-grant:acme:ops"));
        assert_eq!(binding.role_ref.name, "navigator-grant:acme:ops");
        let rule = &role.rules.unwrap()[0];
        assert_eq!(rule.verbs, vec!["get"]);
        assert_eq!(
            rule.resource_names.as_deref(),
            Some(&["acme".to_string(), "acme-globex".to_string()][..])
        );
        let long = grant(&"x".repeat(250), Role::ProviderDeveloper, None);
        assert_eq!(
            binding_name(&long),
            format!("navigator-grant-{}", long.uid().unwrap()),
            "too long: the uid"
        );
    }

    #[test]
    fn what_a_grant_made_maps_back_to_the_grant() {
        let g = grant("ops", Role::ProviderBillingUser, None);
        let owner = Some(ObjectRef::new("ops").within("acme"));
        assert_eq!(grant_owner(&desired_binding(&g, "acme-globex").metadata), owner);
        let (role, binding) = desired_directory(&g, &["acme".into()]);
        assert_eq!(grant_owner(&role.metadata), owner);
        assert_eq!(grant_owner(&binding.metadata), owner);
        assert_eq!(grant_owner(&ObjectMeta::default()), None);
    }

    /// A client that records each request (`METHOD path`) and answers a server-side apply with the object
    /// sent, anything else with 404.
    fn recording_client() -> (kube::Client, Arc<std::sync::Mutex<Vec<String>>>) {
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = requests.clone();
        let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
            let seen = seen.clone();
            async move {
                let (parts, body) = request.into_parts();
                seen.lock()
                    .unwrap()
                    .push(format!("{} {}", parts.method, parts.uri.path()));
                let body = body.collect_bytes().await?;
                let response = if parts.method == http::Method::PATCH {
                    http::Response::new(kube::client::Body::from(body.to_vec()))
                } else {
                    let status = serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                        "reason": "NotFound", "code": 404, "message": "not found"});
                    http::Response::builder()
                        .status(404)
                        .body(kube::client::Body::from(serde_json::to_vec(&status).unwrap()))
                        .unwrap()
                };
                Ok::<_, kube::Error>(response)
            }
        });
        (kube::Client::new(service, "default"), requests)
    }

    /// Empty caches, but for a provider with namespace `acme`.
    fn stores_with_provider() -> (crate::controllers::registry::Stores, Writers) {
        use kube::runtime::reflector::store;
        let (providers, mut providers_writer) = store();
        let provider: crate::api::ProviderOrg = serde_json::from_value(serde_json::json!({
            "apiVersion": "navigator.cloudpartner.io/v1alpha1", "kind": "ProviderOrg",
            "metadata": {"name": "acme"},
            "spec": {"displayName": "Acme", "partnerTypes": ["CloudProvider"], "namespace": "acme"}
        }))
        .unwrap();
        providers_writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(provider));
        let (grant_bindings, bindings) = store();
        let (grant_roles, roles) = store();
        let (grant_role_bindings, role_bindings) = store();
        let stores = crate::controllers::registry::Stores {
            endpoints: store().0,
            providers,
            contracts: store().0,
            customers: store().0,
            subscriptions: store().0,
            grants: store().0,
            support_requests: store().0,
            children: crate::controllers::registry::Children {
                provider_namespaces: store().0,
                customer_namespaces: store().0,
                administrator_bindings: store().0,
                grant_bindings,
                grant_roles,
                grant_role_bindings,
            },
        };
        (stores, (bindings, roles, role_bindings))
    }

    type Writers = (
        kube::runtime::reflector::store::Writer<RoleBinding>,
        kube::runtime::reflector::store::Writer<ClusterRole>,
        kube::runtime::reflector::store::Writer<ClusterRoleBinding>,
    );

    #[tokio::test]
    async fn a_grant_reconcile_compares_with_the_caches_and_never_lists_bindings_across_the_cluster() {
        use kube::runtime::watcher::Event;
        let (client, requests) = recording_client();
        let (stores, (mut bindings, mut roles, mut role_bindings)) = stores_with_provider();
        let ctx = Context::new(
            client,
            Default::default(),
            Arc::new(crate::runtime::clock::SystemClock),
            stores,
            Default::default(),
        );
        let g = grant("dev", Role::ProviderDeveloper, None);

        let outcome = g.apply(&ctx).await.expect("a reconcile");
        let sent = std::mem::take(&mut *requests.lock().unwrap());
        assert_eq!(
            sent,
            vec![
                "PATCH /apis/rbac.authorization.k8s.io/v1/namespaces/acme/rolebindings/navigator-grant-dev",
                "PATCH /apis/rbac.authorization.k8s.io/v1/clusterroles/navigator-grant:acme:dev",
                "PATCH /apis/rbac.authorization.k8s.io/v1/clusterrolebindings/navigator-grant:acme:dev",
            ],
            "nothing missing from the caches is read: it is written, each object by name"
        );
        assert_eq!(outcome.status.phase, Some(GrantPhase::Active));

        // Once the watches have brought back what was written, a reconcile sends nothing at all.
        bindings.apply_watcher_event(&Event::Apply(desired_binding(&g, "acme")));
        let (role, binding) = desired_directory(&g, &["acme".into()]);
        roles.apply_watcher_event(&Event::Apply(role));
        role_bindings.apply_watcher_event(&Event::Apply(binding));
        g.apply(&ctx).await.expect("a reconcile");
        assert_eq!(*requests.lock().unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_customer_grant_to_a_person_needs_an_email_and_a_group_has_no_endpoint_user() {
        let mut g = grant("g", Role::CustomerUser, Some("globex"));
        assert_eq!(
            endpoint_identity(&g).unwrap(),
            Some(("alice".to_string(), "alice@example.test".to_string()))
        );
        g.spec.subject.email = None;
        assert!(matches!(endpoint_identity(&g), Err(Error::Stalled { .. })));
        g.spec.subject.name = "Alice@Example.test".into();
        assert_eq!(
            endpoint_identity(&g).unwrap(),
            Some(("alice@example.test".to_string(), "Alice@Example.test".to_string()))
        );
        g.spec.subject.kind = SubjectKind::Group;
        assert_eq!(endpoint_identity(&g).unwrap(), None);
    }
}
