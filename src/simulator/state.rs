//! The simulated cloud's state and the rules that change it: pure functions of the request and the time.
//!
//! Objects are kept under a key: their name where names are keys (`put_*`), or the id the simulator
//! assigned where it assigns ids (`create_*`, `update_*`; `--assign-ids`). There a repeated create makes a
//! second object of the same name, as on Cloud Director, and the `list_*` searches find them by name.
//!
//! Nothing runs in the background. Asynchronous operations store when they finish (`settles_at`,
//! `gone_at`), and every read derives the state from those timestamps and the request's time, so ten
//! thousand idle objects cost nothing but their memory.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::metering::{self, Meter, Segment};
use crate::endpoint::{
    Author, Comment, ExternalInstance, ExternalOrg, ExternalUser, InstanceDesired, InstanceState, OrgDesired, OrgState,
    Resources, Ticket, TicketDesired, TicketState, UsageRecord, UsageReport, UserDesired, UserState,
};

/// The parameter that makes the simulator fail an instance's provisioning (for tests and demos).
pub const FAIL_PARAMETER: &str = "simulator/fail";

/// Why the simulator refuses a request; the server turns it into the contract's error answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    Invalid(String),
    NotFound(String),
    Conflict(String),
}

pub type Outcome<T> = Result<T, Refusal>;

/// What a create-or-update did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    Created,
    Changed,
    Unchanged,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct State {
    pub orgs: BTreeMap<String, OrgRecord>,
    /// Meters of deleted instances, by organisation name: past windows stay billable.
    pub retired: BTreeMap<String, Vec<Meter>>,
    pub tickets: BTreeMap<u64, Ticket>,
    pub next_ticket: u64,
    pub next_comment: u64,
    /// Idempotency key to the ids of the tickets created with it, oldest first; rebuilt from `tickets` on
    /// load.
    #[serde(skip)]
    ticket_keys: HashMap<String, Vec<u64>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrgRecord {
    pub id: String,
    /// Navigator's name for it (the key too, where names are keys).
    #[serde(default)]
    pub name: String,
    pub display_name: String,
    pub enabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub users: BTreeMap<String, UserRecord>,
    pub instances: BTreeMap<String, InstanceRecord>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRecord {
    pub id: String,
    #[serde(default)]
    pub username: String,
    pub email: String,
    pub role: String,
    pub created_at: Timestamp,
    /// When the invited user is considered to have signed in.
    pub active_at: Timestamp,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceRecord {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub service_type: String,
    pub resources: Resources,
    pub parameters: BTreeMap<String, String>,
    pub created_at: Timestamp,
    /// The last change of spec, or the delete request.
    pub updated_at: Timestamp,
    /// When the latest create or update finishes.
    pub settles_at: Timestamp,
    /// When the instance first was (or will be) ready; `None` while no provisioning succeeded.
    pub first_ready_at: Option<Timestamp>,
    /// Whether the latest create or update fails.
    pub failed: bool,
    pub deleting: Option<DeleteOp>,
    pub meter: Meter,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteOp {
    pub requested_at: Timestamp,
    pub gone_at: Timestamp,
}

/// How many objects the simulator holds (or how many of them are extra copies: see [`State::duplicates`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Held {
    pub orgs: u64,
    pub users: u64,
    pub instances: u64,
    pub tickets: u64,
}

fn later(at: Timestamp, by: Duration) -> Outcome<Timestamp> {
    at.checked_add(by)
        .map_err(|_| Refusal::Invalid(format!("time {at} is out of range")))
}

/// Names Navigator chooses: DNS labels.
pub fn check_name(what: &str, name: &str) -> Outcome<()> {
    let ok = (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Refusal::Invalid(format!(
            "{what} name {name:?} must be 1 to 63 lowercase letters, digits or '-', starting and ending with a letter or digit"
        )))
    }
}

pub fn check_username(name: &str) -> Outcome<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._@".contains(&b))
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Refusal::Invalid(format!(
            "username {name:?} must be 1 to 64 lowercase letters, digits, '-', '.', '_' or '@', starting and ending with a letter or digit"
        )))
    }
}

fn check_text(field: &str, value: &str, max: usize) -> Outcome<()> {
    if value.trim().is_empty() {
        return Err(Refusal::Invalid(format!("{field} must not be empty")));
    }
    if value.chars().count() > max {
        return Err(Refusal::Invalid(format!("{field} must be at most {max} characters")));
    }
    Ok(())
}

/// Idempotency keys: 1 to 255 visible ASCII characters.
pub fn check_key(key: &str) -> Outcome<()> {
    if (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(Refusal::Invalid(
            "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
        ))
    }
}

fn org_not_found(org: &str) -> Refusal {
    Refusal::NotFound(format!("organisation {org} not found"))
}

fn user_not_found(org: &str, username: &str) -> Refusal {
    Refusal::NotFound(format!("user {username} not found in organisation {org}"))
}

/// A user's e-mail address and role; answers the address trimmed.
fn check_user(desired: &UserDesired) -> Outcome<&str> {
    let email = desired.email.trim();
    if email.len() > 254 || email.contains(char::is_whitespace) || !email.contains('@') {
        return Err(Refusal::Invalid(format!(
            "email {:?} is not an email address",
            desired.email
        )));
    }
    if !metering::ROLES.iter().any(|(role, _)| *role == desired.role) {
        let roles: Vec<&str> = metering::ROLES.iter().map(|(r, _)| *r).collect();
        return Err(Refusal::Invalid(format!(
            "role {:?} is not one of {}",
            desired.role,
            roles.join(", ")
        )));
    }
    Ok(email)
}

/// An instance's service type, resources and parameters.
fn check_instance(desired: &InstanceDesired) -> Outcome<()> {
    let service = metering::service_type(&desired.service_type).ok_or_else(|| {
        let names: Vec<&str> = metering::CATALOG.iter().map(|t| t.name).collect();
        Refusal::Invalid(format!(
            "serviceType {:?} is not one of {}",
            desired.service_type,
            names.join(", ")
        ))
    })?;
    metering::check_resources(service, &desired.resources).map_err(Refusal::Invalid)?;
    if desired.parameters.len() > 64
        || desired
            .parameters
            .iter()
            .any(|(k, v)| k.is_empty() || k.len() > 253 || v.len() > 4096)
    {
        return Err(Refusal::Invalid(
            "parameters: at most 64, keys 1 to 253 characters, values at most 4096".into(),
        ));
    }
    Ok(())
}

impl OrgRecord {
    fn new(id: String, name: &str, desired: &OrgDesired, now: Timestamp) -> Self {
        OrgRecord {
            id,
            name: name.to_owned(),
            display_name: desired.display_name.clone(),
            enabled: desired.enabled,
            created_at: now,
            updated_at: now,
            users: BTreeMap::new(),
            instances: BTreeMap::new(),
        }
    }

    fn view(&self) -> ExternalOrg {
        ExternalOrg {
            external_id: self.id.clone(),
            name: self.name.clone(),
            display_name: self.display_name.clone(),
            enabled: self.enabled,
            state: if self.enabled {
                OrgState::Active
            } else {
                OrgState::Suspended
            },
            created_at: self.created_at,
        }
    }
}

impl UserRecord {
    /// A new user, invited at `now` and active once `provision` passed.
    fn new(id: String, username: &str, email: &str, role: &str, now: Timestamp, provision: Duration) -> Outcome<Self> {
        Ok(UserRecord {
            id,
            username: username.to_owned(),
            email: email.to_owned(),
            role: role.to_owned(),
            created_at: now,
            active_at: later(now, provision)?,
        })
    }

    fn view(&self, now: Timestamp) -> ExternalUser {
        ExternalUser {
            external_id: self.id.clone(),
            username: self.username.clone(),
            email: self.email.clone(),
            role: self.role.clone(),
            state: if now < self.active_at {
                UserState::Invited
            } else {
                UserState::Active
            },
            created_at: self.created_at,
        }
    }
}

impl InstanceRecord {
    /// A new instance, provisioning from `now`.
    fn new(id: String, name: &str, desired: &InstanceDesired, now: Timestamp, provision: Duration) -> Outcome<Self> {
        let mut instance = InstanceRecord {
            id: id.clone(),
            name: name.to_owned(),
            service_type: desired.service_type.clone(),
            resources: desired.resources,
            parameters: desired.parameters.clone(),
            created_at: now,
            updated_at: now,
            settles_at: now,
            first_ready_at: None,
            failed: false,
            deleting: None,
            meter: Meter {
                instance: name.to_owned(),
                instance_id: id,
                service_type: desired.service_type.clone(),
                segments: Vec::new(),
                end: None,
            },
        };
        instance.start_operation(now, provision)?;
        Ok(instance)
    }

    fn is_gone(&self, now: Timestamp) -> bool {
        self.deleting.is_some_and(|d| now >= d.gone_at)
    }

    fn state(&self, now: Timestamp) -> InstanceState {
        if self.deleting.is_some() {
            InstanceState::Deleting
        } else if now < self.settles_at {
            match self.first_ready_at {
                Some(ready) if now >= ready => InstanceState::Updating,
                _ => InstanceState::Provisioning,
            }
        } else if self.failed {
            InstanceState::Failed
        } else {
            InstanceState::Ready
        }
    }

    /// The instance as the API shows it; `org` is its organisation's name.
    fn view(&self, org: &str, now: Timestamp) -> ExternalInstance {
        let name = &self.name;
        let state = self.state(now);
        // Messages depend on the state only, so a steady instance reads the same every time.
        let message = match state {
            InstanceState::Provisioning => Some("provisioning".to_owned()),
            InstanceState::Updating => Some("applying the new resources and parameters".to_owned()),
            InstanceState::Deleting => Some("deleting".to_owned()),
            InstanceState::Failed => Some(format!("provisioning failed (simulated by parameter {FAIL_PARAMETER})")),
            InstanceState::Ready => None,
        };
        let access_url = matches!(state, InstanceState::Ready | InstanceState::Updating)
            .then(|| format!("https://{name}.{org}.simulator.navigator.test"));
        ExternalInstance {
            external_id: self.id.clone(),
            name: name.clone(),
            service_type: self.service_type.clone(),
            resources: self.resources,
            parameters: self.parameters.clone(),
            state,
            access_url,
            message,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    /// Records a create or update at `now`: the change takes `provision` to finish and is billed from then.
    fn start_operation(&mut self, now: Timestamp, provision: Duration) -> Outcome<()> {
        let settles_at = later(now, provision)?;
        let fails = self.parameters.get(FAIL_PARAMETER).is_some_and(|v| v == "true");
        self.updated_at = now;
        self.settles_at = settles_at;
        self.failed = fails;
        if !fails && self.first_ready_at.is_none() {
            self.first_ready_at = Some(settles_at);
        }
        self.meter.push(Segment {
            from: settles_at,
            resources: (!fails).then_some(self.resources),
        });
        Ok(())
    }
}

/// Removes the instance if its deletion finished by `now`, keeping its meter.
fn settle(instances: &mut BTreeMap<String, InstanceRecord>, retired: &mut Vec<Meter>, name: &str, now: Timestamp) {
    if instances.get(name).is_some_and(|i| i.is_gone(now))
        && let Some(instance) = instances.remove(name)
    {
        retired.push(instance.meter);
    }
}

fn page<'a, V>(
    map: &'a BTreeMap<String, V>,
    after: Option<&str>,
    limit: usize,
    mut keep: impl FnMut(&V) -> bool,
) -> (Vec<(&'a String, &'a V)>, Option<String>) {
    let start = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.to_owned()));
    let mut items: Vec<_> = map
        .range((start, Bound::Unbounded))
        .filter(|(_, v)| keep(v))
        .take(limit + 1)
        .collect();
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|(k, _)| (*k).clone())
    } else {
        None
    };
    (items, next)
}

impl State {
    /// Rebuilds what is not stored (after loading from a file), and names records of a state file written
    /// before records held their names (keyed by name then).
    pub fn reindex(&mut self) {
        self.ticket_keys.clear();
        for (id, ticket) in &self.tickets {
            if let Some(key) = &ticket.idempotency_key {
                self.ticket_keys.entry(key.clone()).or_default().push(*id);
            }
        }
        for (key, org) in &mut self.orgs {
            if org.name.is_empty() {
                org.name.clone_from(key);
            }
            for (key, user) in &mut org.users {
                if user.username.is_empty() {
                    user.username.clone_from(key);
                }
            }
            for (key, instance) in &mut org.instances {
                if instance.name.is_empty() {
                    instance.name.clone_from(key);
                }
            }
        }
    }

    /// Drops every instance whose deletion finished by `now`.
    pub fn sweep(&mut self, now: Timestamp) {
        for (org_name, org) in &mut self.orgs {
            let gone: Vec<String> = org
                .instances
                .iter()
                .filter(|(_, i)| i.is_gone(now))
                .map(|(n, _)| n.clone())
                .collect();
            if gone.is_empty() {
                continue;
            }
            let retired = self.retired.entry(org_name.clone()).or_default();
            for name in gone {
                settle(&mut org.instances, retired, &name, now);
            }
        }
    }

    pub fn held(&self, now: Timestamp) -> Held {
        let mut held = Held {
            orgs: self.orgs.len() as u64,
            tickets: self.tickets.len() as u64,
            ..Held::default()
        };
        for org in self.orgs.values() {
            held.users += org.users.len() as u64;
            held.instances += org.instances.values().filter(|i| !i.is_gone(now)).count() as u64;
        }
        held
    }

    /// Extra copies among what the simulator holds: organisations beyond the first of a name, users beyond
    /// the first of a username in one organisation, instances beyond the first of a name in one
    /// organisation, tickets beyond the first of an idempotency key. Always zero where names are keys.
    pub fn duplicates(&self, now: Timestamp) -> Held {
        fn extra<'a>(names: impl Iterator<Item = &'a str>) -> u64 {
            let mut seen = std::collections::HashSet::new();
            names.filter(|name| !seen.insert(*name)).count() as u64
        }
        Held {
            orgs: extra(self.orgs.values().map(|o| o.name.as_str())),
            users: self
                .orgs
                .values()
                .map(|o| extra(o.users.values().map(|u| u.username.as_str())))
                .sum(),
            instances: self
                .orgs
                .values()
                .map(|o| {
                    extra(
                        o.instances
                            .values()
                            .filter(|i| !i.is_gone(now))
                            .map(|i| i.name.as_str()),
                    )
                })
                .sum(),
            tickets: self
                .ticket_keys
                .values()
                .map(|ids| ids.len().saturating_sub(1) as u64)
                .sum(),
        }
    }

    // --- organisations -------------------------------------------------------------------------

    /// Creates or updates the organisation keyed by `name` (names are keys).
    pub fn put_org(&mut self, name: &str, desired: &OrgDesired, now: Timestamp) -> Outcome<(ExternalOrg, Applied)> {
        check_name("organisation", name)?;
        check_text("displayName", &desired.display_name, 256)?;
        if let Some(org) = self.orgs.get_mut(name) {
            if org.display_name == desired.display_name && org.enabled == desired.enabled {
                return Ok((org.view(), Applied::Unchanged));
            }
            org.display_name.clone_from(&desired.display_name);
            org.enabled = desired.enabled;
            org.updated_at = now;
            return Ok((org.view(), Applied::Changed));
        }
        let org = OrgRecord::new(uuid::Uuid::new_v4().to_string(), name, desired, now);
        let view = org.view();
        self.orgs.insert(name.to_owned(), org);
        Ok((view, Applied::Created))
    }

    /// Creates a new organisation under an id of its own, whatever other organisations are named.
    pub fn create_org(&mut self, name: &str, desired: &OrgDesired, now: Timestamp) -> Outcome<ExternalOrg> {
        check_name("organisation", name)?;
        check_text("displayName", &desired.display_name, 256)?;
        let id = uuid::Uuid::new_v4().to_string();
        let org = OrgRecord::new(id.clone(), name, desired, now);
        let view = org.view();
        self.orgs.insert(id, org);
        Ok(view)
    }

    /// Updates the organisation keyed by `key`; never creates one.
    pub fn update_org(&mut self, key: &str, desired: &OrgDesired, now: Timestamp) -> Outcome<(ExternalOrg, Applied)> {
        if !self.orgs.contains_key(key) {
            return Err(org_not_found(key));
        }
        self.put_org(key, desired, now)
    }

    pub fn get_org(&self, key: &str) -> Outcome<ExternalOrg> {
        self.orgs
            .get(key)
            .map(OrgRecord::view)
            .ok_or_else(|| org_not_found(key))
    }

    /// One page of organisations, only those named `name` when given.
    pub fn list_orgs(
        &self,
        after: Option<&str>,
        limit: usize,
        name: Option<&str>,
    ) -> (Vec<ExternalOrg>, Option<String>) {
        let (items, next) = page(&self.orgs, after, limit, |o| name.is_none_or(|n| o.name == n));
        (items.into_iter().map(|(_, o)| o.view()).collect(), next)
    }

    /// Deletes an organisation and its users; refused while it holds instances, also ones being
    /// deleted. Answers whether it existed.
    pub fn delete_org(&mut self, name: &str, now: Timestamp) -> Outcome<bool> {
        let Some(org) = self.orgs.get_mut(name) else {
            return Ok(false);
        };
        let retired = self.retired.entry(name.to_owned()).or_default();
        let names: Vec<String> = org.instances.keys().cloned().collect();
        for instance in names {
            settle(&mut org.instances, retired, &instance, now);
        }
        if !org.instances.is_empty() {
            let deleting = org.instances.values().filter(|i| i.deleting.is_some()).count();
            return Err(Refusal::Conflict(format!(
                "organisation {name} still holds {} instances ({deleting} being deleted); delete them first",
                org.instances.len()
            )));
        }
        self.orgs.remove(name);
        Ok(true)
    }

    // --- users -----------------------------------------------------------------------------------

    /// Creates or updates the user keyed by `username` (names are keys).
    pub fn put_user(
        &mut self,
        org: &str,
        username: &str,
        desired: &UserDesired,
        now: Timestamp,
        provision: Duration,
    ) -> Outcome<(ExternalUser, Applied)> {
        check_username(username)?;
        let email = check_user(desired)?;
        let record = self.orgs.get_mut(org).ok_or_else(|| org_not_found(org))?;
        if let Some(user) = record.users.get_mut(username) {
            if user.email == email && user.role == desired.role {
                return Ok((user.view(now), Applied::Unchanged));
            }
            user.email = email.to_owned();
            user.role.clone_from(&desired.role);
            return Ok((user.view(now), Applied::Changed));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let user = UserRecord::new(id, username, email, &desired.role, now, provision)?;
        let view = user.view(now);
        record.users.insert(username.to_owned(), user);
        Ok((view, Applied::Created))
    }

    /// Creates a new user under an id of its own in the organisation keyed by `org`; answers it and the
    /// organisation's name.
    pub fn create_user(
        &mut self,
        org: &str,
        username: &str,
        desired: &UserDesired,
        now: Timestamp,
        provision: Duration,
    ) -> Outcome<(ExternalUser, String)> {
        check_username(username)?;
        let email = check_user(desired)?;
        let record = self.orgs.get_mut(org).ok_or_else(|| org_not_found(org))?;
        let id = uuid::Uuid::new_v4().to_string();
        let user = UserRecord::new(id.clone(), username, email, &desired.role, now, provision)?;
        let view = user.view(now);
        record.users.insert(id, user);
        Ok((view, record.name.clone()))
    }

    /// Updates the user keyed by `key`; never creates one.
    pub fn update_user(
        &mut self,
        org: &str,
        key: &str,
        desired: &UserDesired,
        now: Timestamp,
    ) -> Outcome<(ExternalUser, Applied)> {
        let record = self.orgs.get(org).ok_or_else(|| org_not_found(org))?;
        if !record.users.contains_key(key) {
            return Err(user_not_found(org, key));
        }
        self.put_user(org, key, desired, now, Duration::ZERO)
    }

    pub fn get_user(&self, org: &str, username: &str, now: Timestamp) -> Outcome<ExternalUser> {
        let record = self.orgs.get(org).ok_or_else(|| org_not_found(org))?;
        record
            .users
            .get(username)
            .map(|u| u.view(now))
            .ok_or_else(|| user_not_found(org, username))
    }

    /// One page of the organisation's users, only those with `username` when given.
    pub fn list_users(
        &self,
        org: &str,
        now: Timestamp,
        after: Option<&str>,
        limit: usize,
        username: Option<&str>,
    ) -> Outcome<(Vec<ExternalUser>, Option<String>)> {
        let record = self.orgs.get(org).ok_or_else(|| org_not_found(org))?;
        let (items, next) = page(&record.users, after, limit, |u| {
            username.is_none_or(|n| u.username == n)
        });
        Ok((items.into_iter().map(|(_, u)| u.view(now)).collect(), next))
    }

    /// Answers whether the user existed; a missing organisation means the user is gone too.
    pub fn delete_user(&mut self, org: &str, username: &str) -> bool {
        self.orgs
            .get_mut(org)
            .is_some_and(|o| o.users.remove(username).is_some())
    }

    // --- instances -----------------------------------------------------------------------------

    /// Creates or changes the instance keyed by `name` (names are keys).
    pub fn put_instance(
        &mut self,
        org: &str,
        name: &str,
        desired: &InstanceDesired,
        now: Timestamp,
        provision: Duration,
    ) -> Outcome<(ExternalInstance, Applied)> {
        check_name("instance", name)?;
        check_instance(desired)?;
        let record = self.orgs.get_mut(org).ok_or_else(|| org_not_found(org))?;
        let retired = self.retired.entry(org.to_owned()).or_default();
        settle(&mut record.instances, retired, name, now);
        let org_name = &record.name;
        if let Some(instance) = record.instances.get_mut(name) {
            if instance.deleting.is_some() {
                return Err(Refusal::Conflict(format!(
                    "instance {name} is being deleted; apply it again once it is gone"
                )));
            }
            if instance.service_type != desired.service_type {
                return Err(Refusal::Invalid(format!(
                    "serviceType of instance {name} is {} and cannot change to {}; delete the instance and create it again",
                    instance.service_type, desired.service_type
                )));
            }
            if instance.resources == desired.resources && instance.parameters == desired.parameters {
                return Ok((instance.view(org_name, now), Applied::Unchanged));
            }
            if now < instance.updated_at {
                return Err(Refusal::Invalid(format!(
                    "the request's time {now} is before instance {name}'s last change at {}",
                    instance.updated_at
                )));
            }
            instance.resources = desired.resources;
            instance.parameters.clone_from(&desired.parameters);
            instance.start_operation(now, provision)?;
            return Ok((instance.view(org_name, now), Applied::Changed));
        }
        let instance = InstanceRecord::new(uuid::Uuid::new_v4().to_string(), name, desired, now, provision)?;
        let view = instance.view(org_name, now);
        record.instances.insert(name.to_owned(), instance);
        Ok((view, Applied::Created))
    }

    /// Creates a new instance under an id of its own in the organisation keyed by `org`; answers it and
    /// the organisation's name.
    pub fn create_instance(
        &mut self,
        org: &str,
        name: &str,
        desired: &InstanceDesired,
        now: Timestamp,
        provision: Duration,
    ) -> Outcome<(ExternalInstance, String)> {
        check_name("instance", name)?;
        check_instance(desired)?;
        let record = self.orgs.get_mut(org).ok_or_else(|| org_not_found(org))?;
        let id = uuid::Uuid::new_v4().to_string();
        let instance = InstanceRecord::new(id.clone(), name, desired, now, provision)?;
        let view = instance.view(&record.name, now);
        record.instances.insert(id, instance);
        Ok((view, record.name.clone()))
    }

    /// Changes the instance keyed by `key`; never creates one.
    pub fn update_instance(
        &mut self,
        org: &str,
        key: &str,
        desired: &InstanceDesired,
        now: Timestamp,
        provision: Duration,
    ) -> Outcome<(ExternalInstance, Applied)> {
        self.get_instance(org, key, now)?;
        self.put_instance(org, key, desired, now, provision)
    }

    pub fn get_instance(&self, org: &str, name: &str, now: Timestamp) -> Outcome<ExternalInstance> {
        let record = self.orgs.get(org).ok_or_else(|| org_not_found(org))?;
        record
            .instances
            .get(name)
            .filter(|i| !i.is_gone(now))
            .map(|i| i.view(&record.name, now))
            .ok_or_else(|| Refusal::NotFound(format!("instance {name} not found in organisation {org}")))
    }

    /// One page of the organisation's instances, only those named `name` when given.
    pub fn list_instances(
        &self,
        org: &str,
        now: Timestamp,
        after: Option<&str>,
        limit: usize,
        name: Option<&str>,
    ) -> Outcome<(Vec<ExternalInstance>, Option<String>)> {
        let record = self.orgs.get(org).ok_or_else(|| org_not_found(org))?;
        let (items, next) = page(&record.instances, after, limit, |i| {
            !i.is_gone(now) && name.is_none_or(|n| i.name == n)
        });
        Ok((
            items.into_iter().map(|(_, i)| i.view(&record.name, now)).collect(),
            next,
        ))
    }

    /// Starts deleting the instance; `None` when it is already gone (or never existed).
    pub fn delete_instance(
        &mut self,
        org: &str,
        name: &str,
        now: Timestamp,
        provision: Duration,
    ) -> Outcome<Option<ExternalInstance>> {
        let Some(record) = self.orgs.get_mut(org) else {
            return Ok(None);
        };
        let retired = self.retired.entry(org.to_owned()).or_default();
        settle(&mut record.instances, retired, name, now);
        let Some(instance) = record.instances.get_mut(name) else {
            return Ok(None);
        };
        if instance.deleting.is_none() {
            if now < instance.updated_at {
                return Err(Refusal::Invalid(format!(
                    "the request's time {now} is before instance {name}'s last change at {}",
                    instance.updated_at
                )));
            }
            instance.deleting = Some(DeleteOp {
                requested_at: now,
                gone_at: later(now, provision)?,
            });
            instance.updated_at = now;
            instance.meter.end = Some(now);
        }
        if instance.is_gone(now) {
            settle(&mut record.instances, retired, name, now);
            return Ok(None);
        }
        Ok(Some(instance.view(&record.name, now)))
    }

    // --- usage ---------------------------------------------------------------------------------

    /// Usage of every instance the organisation has or had, in `[from, to)` as far as `now`.
    pub fn usage(&self, org: &str, from: Timestamp, to: Timestamp, now: Timestamp) -> UsageReport {
        let until = to.min(now);
        let live = self
            .orgs
            .get(org)
            .into_iter()
            .flat_map(|o| o.instances.values().map(|i| &i.meter));
        let retired = self.retired.get(org).into_iter().flatten();
        let mut records = Vec::new();
        for meter in live.chain(retired) {
            for (metric, quantity) in meter.usage(from, until).unwrap_or_default() {
                records.push(UsageRecord {
                    instance: meter.instance.clone(),
                    instance_external_id: meter.instance_id.clone(),
                    service_type: meter.service_type.clone(),
                    metric: metric.name.into(),
                    unit: metric.unit.into(),
                    quantity,
                });
            }
        }
        records.sort_by(|a, b| {
            (&a.instance, &a.instance_external_id, &a.metric).cmp(&(&b.instance, &b.instance_external_id, &b.metric))
        });
        UsageReport {
            org: org.into(),
            from,
            to,
            complete: to <= now,
            records,
        }
    }

    // --- tickets -------------------------------------------------------------------------------

    /// Opens a ticket, or answers the one opened before with the same key (`false`).
    pub fn create_ticket(&mut self, key: &str, desired: &TicketDesired, now: Timestamp) -> Outcome<(Ticket, bool)> {
        check_key(key)?;
        let first = self.ticket_keys.get(key).and_then(|ids| ids.first());
        if let Some(ticket) = first.and_then(|id| self.tickets.get(id)) {
            return Ok((ticket.clone(), false));
        }
        Ok((self.open_ticket(key, desired, now)?, true))
    }

    /// Opens a new ticket whatever tickets were opened with the same key before (the key is kept to find
    /// it by), as an endpoint that assigns ids and knows no idempotency keys does.
    pub fn open_ticket(&mut self, key: &str, desired: &TicketDesired, now: Timestamp) -> Outcome<Ticket> {
        check_key(key)?;
        check_text("org", &desired.org, 253)?;
        check_text("product", &desired.product, 256)?;
        check_text("subject", &desired.subject, 256)?;
        check_text("description", &desired.description, 65_536)?;
        check_text("contact", &desired.contact, 256)?;
        self.next_ticket += 1;
        let id = self.next_ticket;
        let ticket = Ticket {
            external_id: id.to_string(),
            idempotency_key: Some(key.to_owned()),
            org: desired.org.clone(),
            severity: desired.severity,
            product: desired.product.clone(),
            subject: desired.subject.clone(),
            description: desired.description.clone(),
            contact: desired.contact.clone(),
            state: TicketState::New,
            created_at: now,
            updated_at: now,
            comments: Vec::new(),
        };
        self.tickets.insert(id, ticket.clone());
        self.ticket_keys.entry(key.to_owned()).or_default().push(id);
        Ok(ticket)
    }

    pub fn find_tickets(&self, key: Option<&str>, org: Option<&str>) -> Vec<Ticket> {
        if let Some(key) = key {
            return self
                .ticket_keys
                .get(key)
                .into_iter()
                .flatten()
                .filter_map(|id| self.tickets.get(id))
                .filter(|t| org.is_none_or(|o| t.org == o))
                .cloned()
                .collect();
        }
        self.tickets
            .values()
            .filter(|t| org.is_none_or(|o| t.org == o))
            .cloned()
            .collect()
    }

    fn ticket_mut(&mut self, id: &str) -> Outcome<&mut Ticket> {
        id.parse::<u64>()
            .ok()
            .and_then(|n| self.tickets.get_mut(&n))
            .ok_or_else(|| Refusal::NotFound(format!("ticket {id} not found")))
    }

    pub fn get_ticket(&self, id: &str) -> Outcome<Ticket> {
        id.parse::<u64>()
            .ok()
            .and_then(|n| self.tickets.get(&n))
            .cloned()
            .ok_or_else(|| Refusal::NotFound(format!("ticket {id} not found")))
    }

    /// Adds a provider comment, or answers the one added before with the same key (`false`).
    pub fn add_comment(&mut self, id: &str, key: &str, body: &str, now: Timestamp) -> Outcome<(Comment, bool)> {
        check_key(key)?;
        let next_comment = self.next_comment + 1;
        let ticket = self.ticket_mut(id)?;
        if let Some(comment) = ticket
            .comments
            .iter()
            .find(|c| c.idempotency_key.as_deref() == Some(key))
        {
            return Ok((comment.clone(), false));
        }
        check_text("body", body, 65_536)?;
        if ticket.state == TicketState::Closed {
            return Err(Refusal::Conflict(format!("ticket {id} is closed; open a new ticket")));
        }
        let comment = Comment {
            id: next_comment.to_string(),
            author: Author::Provider,
            body: body.to_owned(),
            created_at: now,
            idempotency_key: Some(key.to_owned()),
        };
        ticket.comments.push(comment.clone());
        // The customer answered: the vendor has work again.
        if matches!(ticket.state, TicketState::WaitingOnCustomer | TicketState::Resolved) {
            ticket.state = TicketState::Open;
        }
        ticket.updated_at = now;
        self.next_comment = next_comment;
        Ok((comment, true))
    }

    pub fn close_ticket(&mut self, id: &str, now: Timestamp) -> Outcome<Ticket> {
        let ticket = self.ticket_mut(id)?;
        if ticket.state != TicketState::Closed {
            ticket.state = TicketState::Closed;
            ticket.updated_at = now;
        }
        Ok(ticket.clone())
    }

    /// Opens a closed ticket again; an open one is left as it is.
    pub fn reopen_ticket(&mut self, id: &str, now: Timestamp) -> Outcome<Ticket> {
        let ticket = self.ticket_mut(id)?;
        if ticket.state == TicketState::Closed {
            ticket.state = TicketState::Open;
            ticket.updated_at = now;
        }
        Ok(ticket.clone())
    }

    /// The vendor answers and/or moves the ticket (simulator only). A reply without a state opens a new
    /// ticket.
    pub fn vendor_reply(
        &mut self,
        id: &str,
        body: Option<&str>,
        state: Option<TicketState>,
        now: Timestamp,
    ) -> Outcome<Ticket> {
        if body.is_none() && state.is_none() {
            return Err(Refusal::Invalid("give a body, a state, or both".into()));
        }
        if let Some(body) = body {
            check_text("body", body, 65_536)?;
        }
        let next_comment = self.next_comment + 1;
        let ticket = self.ticket_mut(id)?;
        if let Some(body) = body {
            ticket.comments.push(Comment {
                id: next_comment.to_string(),
                author: Author::Vendor,
                body: body.to_owned(),
                created_at: now,
                idempotency_key: None,
            });
        }
        ticket.state = match state {
            Some(state) => state,
            None if ticket.state == TicketState::New => TicketState::Open,
            None => ticket.state,
        };
        ticket.updated_at = now;
        let ticket = ticket.clone();
        if body.is_some() {
            self.next_comment = next_comment;
        }
        Ok(ticket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::Severity;

    const P: Duration = Duration::from_secs(2);

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn at(base: Timestamp, seconds: i64) -> Timestamp {
        base + jiff::SignedDuration::from_secs(seconds)
    }

    fn with_org() -> State {
        let mut state = State::default();
        let desired = OrgDesired {
            display_name: "Acme".into(),
            enabled: true,
        };
        state.put_org("acme", &desired, ts("2026-01-01T00:00:00Z")).unwrap();
        state
    }

    fn compute(vcpu: u32) -> InstanceDesired {
        InstanceDesired {
            service_type: "compute".into(),
            resources: Resources {
                vcpu,
                memory_gib: 4,
                storage_gib: 10,
            },
            parameters: BTreeMap::new(),
        }
    }

    #[test]
    fn orgs_are_created_updated_and_refused_when_invalid() {
        let mut state = State::default();
        let t = ts("2026-01-01T00:00:00Z");
        let desired = OrgDesired {
            display_name: "Acme".into(),
            enabled: true,
        };
        let (created, applied) = state.put_org("acme", &desired, t).unwrap();
        assert_eq!(applied, Applied::Created);
        let (again, applied) = state.put_org("acme", &desired, t).unwrap();
        assert_eq!(
            (applied, &again.external_id),
            (Applied::Unchanged, &created.external_id)
        );
        let suspended = OrgDesired {
            enabled: false,
            ..desired.clone()
        };
        let (changed, applied) = state.put_org("acme", &suspended, t).unwrap();
        assert_eq!((applied, changed.state), (Applied::Changed, OrgState::Suspended));
        assert!(matches!(
            state.put_org("Acme_Corp", &desired, t),
            Err(Refusal::Invalid(_))
        ));
        assert!(matches!(
            state.put_org(
                "b",
                &OrgDesired {
                    display_name: " ".into(),
                    enabled: true
                },
                t
            ),
            Err(Refusal::Invalid(_))
        ));
    }

    #[test]
    fn an_instance_provisions_updates_and_deletes_by_the_clock() {
        let mut state = with_org();
        let t0 = ts("2026-01-01T00:00:00Z");
        let (view, applied) = state.put_instance("acme", "web", &compute(2), t0, P).unwrap();
        assert_eq!((applied, view.state), (Applied::Created, InstanceState::Provisioning));
        assert_eq!(view.access_url, None);
        assert_eq!(
            state.get_instance("acme", "web", at(t0, 1)).unwrap().state,
            InstanceState::Provisioning
        );
        let ready = state.get_instance("acme", "web", at(t0, 2)).unwrap();
        assert_eq!(ready.state, InstanceState::Ready);
        assert!(ready.access_url.is_some());

        let (_, applied) = state.put_instance("acme", "web", &compute(2), at(t0, 10), P).unwrap();
        assert_eq!(applied, Applied::Unchanged);
        let (view, applied) = state.put_instance("acme", "web", &compute(4), at(t0, 10), P).unwrap();
        assert_eq!((applied, view.state), (Applied::Changed, InstanceState::Updating));
        assert_eq!(
            state.get_instance("acme", "web", at(t0, 12)).unwrap().state,
            InstanceState::Ready
        );

        let mut other = compute(4);
        other.service_type = "kubernetes".into();
        assert!(matches!(
            state.put_instance("acme", "web", &other, at(t0, 13), P),
            Err(Refusal::Invalid(_))
        ));

        let deleting = state.delete_instance("acme", "web", at(t0, 20), P).unwrap().unwrap();
        assert_eq!(deleting.state, InstanceState::Deleting);
        assert!(matches!(
            state.put_instance("acme", "web", &compute(4), at(t0, 21), P),
            Err(Refusal::Conflict(_))
        ));
        assert!(matches!(
            state.delete_org("acme", at(t0, 21)),
            Err(Refusal::Conflict(_))
        ));
        assert!(matches!(
            state.get_instance("acme", "web", at(t0, 22)),
            Err(Refusal::NotFound(_))
        ));
        assert_eq!(state.delete_instance("acme", "web", at(t0, 22), P).unwrap(), None);
        assert_eq!(state.held(at(t0, 22)).instances, 0);
        assert!(state.delete_org("acme", at(t0, 22)).unwrap());
        assert!(!state.delete_org("acme", at(t0, 22)).unwrap());
    }

    #[test]
    fn usage_covers_deleted_instances_and_stops_at_the_delete_request() {
        let mut state = with_org();
        let t0 = ts("2026-01-01T00:00:00Z");
        state
            .put_instance("acme", "web", &compute(2), t0, Duration::ZERO)
            .unwrap();
        state
            .put_instance("acme", "web", &compute(4), at(t0, 3600), Duration::ZERO)
            .unwrap();
        assert_eq!(
            state
                .delete_instance("acme", "web", at(t0, 7200), Duration::ZERO)
                .unwrap(),
            None
        );
        // Re-created under the same name: a new instance, metered apart.
        state
            .put_instance("acme", "web", &compute(1), at(t0, 7200), Duration::ZERO)
            .unwrap();
        let report = state.usage("acme", t0, at(t0, 86_400), at(t0, 10_800));
        assert!(!report.complete);
        let vcpu: Vec<String> = report
            .records
            .iter()
            .filter(|r| r.metric == "vcpu-hours")
            .map(|r| r.quantity.to_string())
            .collect();
        let mut sorted = vcpu.clone();
        sorted.sort();
        // 2 × 1 h + 4 × 1 h for the first, 1 × 1 h (until "now") for the second.
        assert_eq!(sorted, vec!["1", "6"]);
        assert!(state.usage("acme", t0, at(t0, 86_400), at(t0, 86_400)).complete);
        assert!(
            state
                .usage("nobody", t0, at(t0, 86_400), at(t0, 86_400))
                .records
                .is_empty()
        );
    }

    #[test]
    fn a_failing_parameter_fails_provisioning_without_billing() {
        let mut state = with_org();
        let t0 = ts("2026-01-01T00:00:00Z");
        let mut desired = compute(2);
        desired.parameters.insert(FAIL_PARAMETER.into(), "true".into());
        state.put_instance("acme", "bad", &desired, t0, P).unwrap();
        let failed = state.get_instance("acme", "bad", at(t0, 5)).unwrap();
        assert_eq!(failed.state, InstanceState::Failed);
        assert!(failed.message.unwrap().contains(FAIL_PARAMETER));
        assert!(state.usage("acme", t0, at(t0, 3600), at(t0, 3600)).records.is_empty());
        desired.parameters.clear();
        let (view, _) = state.put_instance("acme", "bad", &desired, at(t0, 6), P).unwrap();
        assert_eq!(view.state, InstanceState::Provisioning);
        assert_eq!(
            state.get_instance("acme", "bad", at(t0, 8)).unwrap().state,
            InstanceState::Ready
        );
    }

    #[test]
    fn users_need_their_org_and_a_known_role() {
        let mut state = with_org();
        let t0 = ts("2026-01-01T00:00:00Z");
        let desired = UserDesired {
            email: "alice@example.com".into(),
            role: "OrganizationUser".into(),
        };
        assert!(matches!(
            state.put_user("nobody", "alice", &desired, t0, P),
            Err(Refusal::NotFound(_))
        ));
        let (user, applied) = state.put_user("acme", "alice", &desired, t0, P).unwrap();
        assert_eq!((applied, user.state), (Applied::Created, UserState::Invited));
        assert_eq!(
            state.get_user("acme", "alice", at(t0, 2)).unwrap().state,
            UserState::Active
        );
        let bad_role = UserDesired {
            role: "Root".into(),
            ..desired.clone()
        };
        assert!(matches!(
            state.put_user("acme", "alice", &bad_role, t0, P),
            Err(Refusal::Invalid(_))
        ));
        assert!(state.delete_user("acme", "alice"));
        assert!(!state.delete_user("acme", "alice"));
    }

    #[test]
    fn tickets_and_comments_are_idempotent_by_key() {
        let mut state = State::default();
        let t0 = ts("2026-01-01T00:00:00Z");
        let desired = TicketDesired {
            org: "acme".into(),
            severity: Severity::Major,
            product: "compute".into(),
            subject: "VM does not boot".into(),
            description: "Since this morning".into(),
            contact: "ops@example.com".into(),
        };
        let (ticket, created) = state.create_ticket("k1", &desired, t0).unwrap();
        assert!(created);
        let (again, created) = state.create_ticket("k1", &desired, t0).unwrap();
        assert!(!created);
        assert_eq!(again.external_id, ticket.external_id);
        assert_eq!(state.find_tickets(Some("k1"), None).len(), 1);
        assert!(state.find_tickets(Some("k2"), None).is_empty());

        let id = ticket.external_id.as_str();
        let (c1, created) = state.add_comment(id, "c1", "more detail", t0).unwrap();
        assert!(created);
        let (c1_again, created) = state.add_comment(id, "c1", "more detail", t0).unwrap();
        assert!(!created);
        assert_eq!(c1, c1_again);
        let replied = state
            .vendor_reply(id, Some("please send logs"), Some(TicketState::WaitingOnCustomer), t0)
            .unwrap();
        assert_eq!(replied.comments.len(), 2);
        assert_eq!(replied.comments[1].author, Author::Vendor);
        state.add_comment(id, "c2", "logs attached", t0).unwrap();
        assert_eq!(state.get_ticket(id).unwrap().state, TicketState::Open);
        assert_eq!(state.close_ticket(id, t0).unwrap().state, TicketState::Closed);
        assert!(matches!(
            state.add_comment(id, "c3", "late", t0),
            Err(Refusal::Conflict(_))
        ));
        assert_eq!(state.reopen_ticket(id, t0).unwrap().state, TicketState::Open);
        assert_eq!(
            state.reopen_ticket(id, t0).unwrap().state,
            TicketState::Open,
            "reopening twice is harmless"
        );
        assert!(state.add_comment(id, "c3", "after reopening", t0).is_ok());
        assert!(matches!(state.get_ticket("999"), Err(Refusal::NotFound(_))));

        // Survives a round trip through the state file's format, with its key index.
        let mut loaded: State = serde_json::from_slice(&serde_json::to_vec(&state).unwrap()).unwrap();
        loaded.reindex();
        assert_eq!(
            loaded.create_ticket("k1", &desired, t0).unwrap().0.external_id,
            ticket.external_id
        );
    }
}
