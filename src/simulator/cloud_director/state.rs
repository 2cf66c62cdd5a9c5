//! What the Cloud Director emulator holds, and the rules that change it: organisations with their users,
//! roles and VDCs, tasks that finish `provision` after they start, and the audit trail. Pure (time is an
//! argument), so the rules are unit-tested without a server; `settle` applies what finished tasks do.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// The tenant roles every new organisation gets (each with its own id per organisation, as on VCD).
pub const TENANT_ROLES: [&str; 6] = [
    "Organization Administrator",
    "Catalog Author",
    "vApp Author",
    "vApp User",
    "Console Access Only",
    "Defer to Identity Provider",
];

/// A thing with an id (a bare UUID; URNs and hrefs are built from it) and a name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Named {
    pub id: String,
    pub name: String,
}

impl Named {
    pub fn new(name: &str) -> Self {
        Named {
            id: new_id(),
            name: name.to_owned(),
        }
    }
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The provider's inventory that tenants' VDCs are carved from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    pub provider_vdc: Named,
    pub storage_profiles: Vec<Named>,
    pub network_pool: Named,
}

impl Inventory {
    pub fn new(provider_vdc: &str, storage_profiles: &[String], network_pool: &str) -> Self {
        Inventory {
            provider_vdc: Named::new(provider_vdc),
            storage_profiles: storage_profiles.iter().map(|name| Named::new(name)).collect(),
            network_pool: Named::new(network_pool),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Org {
    pub id: String,
    pub name: String,
    pub full_name: String,
    pub description: String,
    pub enabled: bool,
    pub roles: Vec<Named>,
    pub users: BTreeMap<String, User>,
    pub vdcs: BTreeMap<String, Vdc>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub name: String,
    pub role_id: String,
    pub enabled: bool,
    pub full_name: String,
    pub email: String,
    pub provider_type: String,
    pub stored_vm_quota: i64,
    pub deployed_vm_quota: i64,
}

/// A capacity as VCD writes it: units (MHz, MB), allocation and limit.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capacity {
    pub units: String,
    pub allocated: i64,
    pub limit: i64,
}

impl Capacity {
    /// What the VDC may use: its allocation, or its limit where nothing is allocated (pay-as-you-go
    /// VDCs set only a limit).
    pub fn granted(&self) -> i64 {
        if self.allocated > 0 { self.allocated } else { self.limit }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageAllocation {
    pub id: String,
    /// The provider VDC storage profile it uses.
    pub profile: Named,
    pub limit_mb: i64,
    pub default: bool,
    pub enabled: bool,
}

/// What a client sets on a VDC (create and update).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VdcSpec {
    pub description: String,
    pub allocation_model: String,
    pub cpu: Capacity,
    pub memory: Capacity,
    pub nic_quota: i64,
    pub network_quota: i64,
    pub vm_quota: i64,
    pub enabled: bool,
    pub vcpu_mhz: Option<i64>,
    pub resource_guaranteed_cpu: Option<f64>,
    pub resource_guaranteed_memory: Option<f64>,
    pub network_pool: Option<Named>,
    pub is_elastic: Option<bool>,
    pub include_memory_overhead: Option<bool>,
    pub thin_provision: bool,
    pub fast_provisioning: bool,
}

/// vCPU speed VCD assumes when a VDC names none.
pub const DEFAULT_VCPU_MHZ: i64 = 1000;

impl VdcSpec {
    pub fn vcpu_mhz(&self) -> i64 {
        self.vcpu_mhz.unwrap_or(DEFAULT_VCPU_MHZ)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Vdc {
    pub id: String,
    pub name: String,
    pub spec: VdcSpec,
    pub storage: Vec<StorageAllocation>,
    /// The create task has succeeded (VCD's status 1; 0 before).
    pub ready: bool,
}

impl Vdc {
    pub fn storage_limit_mb(&self) -> i64 {
        self.storage.iter().map(|s| s.limit_mb).sum()
    }
}

/// The operations that run as tasks, by the names `/sim/fail-next-task` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Operation {
    OrgCreate,
    OrgUpdate,
    OrgDelete,
    VdcCreate,
    VdcUpdate,
    VdcDelete,
}

impl Operation {
    /// VCD's `operationName`.
    pub fn operation_name(self) -> &'static str {
        match self {
            Operation::OrgCreate => "orgCreateOrg",
            Operation::OrgUpdate => "orgUpdateOrg",
            Operation::OrgDelete => "orgDeleteOrg",
            Operation::VdcCreate => "vdcCreateVdc",
            Operation::VdcUpdate => "vdcUpdateVdc",
            Operation::VdcDelete => "vdcDeleteVdc",
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Operation::OrgCreate | Operation::VdcCreate => "Created",
            Operation::OrgUpdate | Operation::VdcUpdate => "Updated",
            Operation::OrgDelete | Operation::VdcDelete => "Deleted",
        }
    }

    pub fn owner_kind(self) -> EntityKind {
        match self {
            Operation::OrgCreate | Operation::OrgUpdate | Operation::OrgDelete => EntityKind::Org,
            Operation::VdcCreate | Operation::VdcUpdate | Operation::VdcDelete => EntityKind::Vdc,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EntityKind {
    Org,
    Vdc,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub id: String,
    pub operation: Operation,
    /// The entity it works on (an org or a VDC), and the org it belongs to.
    pub owner: Named,
    pub org: Named,
    pub started: Timestamp,
    pub ends: Timestamp,
    /// `Some(message)`: the task ends in `error` with it.
    pub error: Option<String>,
    /// Its effect has been applied (it ended and `settle` saw it).
    pub settled: bool,
    /// The VDC settings an update applies when it succeeds.
    pub update: Option<VdcSpec>,
}

/// VCD's task states the emulator uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskStatus {
    Running,
    Success,
    Error,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Running => "running",
            TaskStatus::Success => "success",
            TaskStatus::Error => "error",
        }
    }
}

impl Task {
    pub fn status(&self, now: Timestamp) -> TaskStatus {
        if now < self.ends {
            TaskStatus::Running
        } else if self.error.is_some() {
            TaskStatus::Error
        } else {
            TaskStatus::Success
        }
    }

    /// Percent done, by time.
    pub fn progress(&self, now: Timestamp) -> i64 {
        let total = self.ends.duration_since(self.started).as_millis();
        if total <= 0 || now >= self.ends {
            return 100;
        }
        (now.duration_since(self.started).as_millis() * 100 / total).clamp(0, 99) as i64
    }

    pub fn operation_text(&self) -> String {
        let kind = match self.operation.owner_kind() {
            EntityKind::Org => "Organization",
            EntityKind::Vdc => "Virtual Datacenter",
        };
        format!(
            "{} {kind} {}({})",
            self.operation.verb(),
            self.owner.name,
            self.owner.id
        )
    }
}

/// One audit trail event (VCD's `/cloudapi/1.0.0/auditTrail`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub id: String,
    pub event_type: String,
    pub timestamp: Timestamp,
    pub tenant: Named,
    pub entity: Named,
    pub properties: BTreeMap<String, String>,
}

/// Why a request cannot be done: VCD's minor error code, HTTP status and message.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Refusal::new(400, "BAD_REQUEST", message)
    }

    /// VCD answers 403 both for what a session may not see and for what does not exist.
    pub fn not_found(what: &str, id: &str) -> Self {
        Refusal::new(
            403,
            "ACCESS_TO_RESOURCE_IS_FORBIDDEN",
            format!(
                "Either you need some or all of the following rights [{what}] to perform operations on entity {id} or it does not exist."
            ),
        )
    }

    fn duplicate(kind: &str, name: &str) -> Self {
        Refusal::new(
            400,
            "DUPLICATE_NAME",
            format!("The VCD entity {kind} {name} already exists."),
        )
    }

    fn busy(name: &str, id: &str) -> Self {
        Refusal::new(
            400,
            "BUSY_ENTITY",
            format!("The entity {name} (urn:vcloud:entity:{id}) is busy completing an operation."),
        )
    }
}

/// The whole state, as kept in the state file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub inventory: Inventory,
    pub orgs: BTreeMap<String, Org>,
    pub tasks: BTreeMap<String, Task>,
    pub audit: Vec<AuditEvent>,
    /// The next task of an operation fails with this message (`/sim/fail-next-task`).
    pub fail_next: BTreeMap<Operation, String>,
}

/// A new VDC as a client asks for it.
#[derive(Clone, Debug, PartialEq)]
pub struct NewVdc {
    pub name: String,
    pub spec: VdcSpec,
    /// Storage profile names with limit (MB), default flag and enabled flag.
    pub storage: Vec<(String, i64, bool, bool)>,
    pub provider_vdc_id: String,
}

/// An organisation's settings as a client writes them (create and update).
#[derive(Clone, Debug, PartialEq)]
pub struct OrgFields {
    pub name: String,
    pub full_name: String,
    pub description: String,
    pub enabled: bool,
}

/// A new user as a client asks for it.
#[derive(Clone, Debug, PartialEq)]
pub struct NewUser {
    pub name: String,
    pub role_id: String,
    pub enabled: bool,
    pub full_name: String,
    pub email: String,
    pub provider_type: String,
    pub stored_vm_quota: i64,
    pub deployed_vm_quota: i64,
}

impl State {
    pub fn new(inventory: Inventory) -> Self {
        State {
            inventory,
            orgs: BTreeMap::new(),
            tasks: BTreeMap::new(),
            audit: Vec::new(),
            fail_next: BTreeMap::new(),
        }
    }

    pub fn org(&self, id: &str) -> Result<&Org, Refusal> {
        self.orgs
            .get(id)
            .ok_or_else(|| Refusal::not_found("Organization View", id))
    }

    fn org_mut(&mut self, id: &str) -> Result<&mut Org, Refusal> {
        self.orgs
            .get_mut(id)
            .ok_or_else(|| Refusal::not_found("Organization View", id))
    }

    /// The org holding a VDC, and the VDC.
    pub fn vdc(&self, id: &str) -> Result<(&Org, &Vdc), Refusal> {
        self.orgs
            .values()
            .find_map(|org| org.vdcs.get(id).map(|vdc| (org, vdc)))
            .ok_or_else(|| Refusal::not_found("ORG_VDC_VIEW", id))
    }

    pub fn user(&self, id: &str) -> Result<(&Org, &User), Refusal> {
        self.orgs
            .values()
            .find_map(|org| org.users.get(id).map(|user| (org, user)))
            .ok_or_else(|| Refusal::not_found("General: View Users", id))
    }

    /// Tasks on an entity that have not ended.
    pub fn running_on(&self, entity: &str, now: Timestamp) -> impl Iterator<Item = &Task> {
        self.tasks
            .values()
            .filter(move |t| t.owner.id == entity && t.status(now) == TaskStatus::Running)
    }

    /// Refuses a write to an entity while a task on it runs, as VCD does.
    fn ensure_idle(&self, entity: &Named, now: Timestamp) -> Result<(), Refusal> {
        match self.running_on(&entity.id, now).next() {
            Some(_) => Err(Refusal::busy(&entity.name, &entity.id)),
            None => Ok(()),
        }
    }

    fn start_task(
        &mut self,
        operation: Operation,
        owner: Named,
        org: Named,
        now: Timestamp,
        run: SignedDuration,
    ) -> String {
        let task = Task {
            id: new_id(),
            operation,
            owner,
            org,
            started: now,
            ends: now + run,
            error: self.fail_next.remove(&operation),
            settled: false,
            update: None,
        };
        let id = task.id.clone();
        self.tasks.insert(id.clone(), task);
        id
    }

    /// Creates an organisation (enabled or not) with the tenant roles; answers it and its task.
    pub fn create_org(
        &mut self,
        fields: OrgFields,
        now: Timestamp,
        run: SignedDuration,
    ) -> Result<(String, String), Refusal> {
        let OrgFields {
            name,
            full_name,
            description,
            enabled,
        } = fields;
        validate_name("organization", &name)?;
        if full_name.is_empty() {
            return Err(Refusal::bad_request("The organization's FullName is required."));
        }
        if self.orgs.values().any(|o| o.name == name) {
            return Err(Refusal::duplicate("organization", &name));
        }
        let org = Org {
            id: new_id(),
            name,
            full_name,
            description,
            enabled,
            roles: TENANT_ROLES.iter().map(|role| Named::new(role)).collect(),
            users: BTreeMap::new(),
            vdcs: BTreeMap::new(),
        };
        let named = Named {
            id: org.id.clone(),
            name: org.name.clone(),
        };
        let id = org.id.clone();
        self.orgs.insert(id.clone(), org);
        let task = self.start_task(Operation::OrgCreate, named.clone(), named, now, run);
        Ok((id, task))
    }

    /// Changes an organisation's names and enabled flag (a rename must not clash); answers the task.
    pub fn update_org(
        &mut self,
        id: &str,
        fields: OrgFields,
        now: Timestamp,
        run: SignedDuration,
    ) -> Result<String, Refusal> {
        let named = self.org_named(id)?;
        self.ensure_idle(&named, now)?;
        validate_name("organization", &fields.name)?;
        if self.orgs.values().any(|o| o.name == fields.name && o.id != id) {
            return Err(Refusal::duplicate("organization", &fields.name));
        }
        let named = Named {
            id: id.to_owned(),
            name: fields.name.clone(),
        };
        let org = self.org_mut(id)?;
        org.name = fields.name;
        org.full_name = fields.full_name;
        org.description = fields.description;
        org.enabled = fields.enabled;
        Ok(self.start_task(Operation::OrgUpdate, named.clone(), named, now, run))
    }

    pub fn set_org_enabled(&mut self, id: &str, enabled: bool, now: Timestamp) -> Result<(), Refusal> {
        let named = self.org_named(id)?;
        self.ensure_idle(&named, now)?;
        self.org_mut(id)?.enabled = enabled;
        Ok(())
    }

    /// Starts deleting an organisation: it must be disabled; with VDCs or users only `recursive` (or
    /// `force`) removes them too.
    pub fn delete_org(
        &mut self,
        id: &str,
        force: bool,
        recursive: bool,
        now: Timestamp,
        run: SignedDuration,
    ) -> Result<String, Refusal> {
        let named = self.org_named(id)?;
        self.ensure_idle(&named, now)?;
        let org = self.org(id)?;
        if org.enabled && !force {
            return Err(Refusal::bad_request(format!(
                "Organization {} cannot be deleted: before you can delete an organization, you must disable it.",
                org.name
            )));
        }
        if !(org.vdcs.is_empty() || recursive || force) {
            return Err(Refusal::bad_request(format!(
                "Organization {} cannot be deleted because it contains virtual datacenters; delete them first \
                 or use recursive=true.",
                org.name
            )));
        }
        if let Some(vdc) = org
            .vdcs
            .values()
            .find(|vdc| self.running_on(&vdc.id, now).next().is_some())
        {
            return Err(Refusal::busy(&vdc.name, &vdc.id));
        }
        Ok(self.start_task(Operation::OrgDelete, named.clone(), named, now, run))
    }

    fn org_named(&self, id: &str) -> Result<Named, Refusal> {
        let org = self.org(id)?;
        Ok(Named {
            id: org.id.clone(),
            name: org.name.clone(),
        })
    }

    pub fn role<'a>(org: &'a Org, id: &str) -> Option<&'a Named> {
        org.roles.iter().find(|role| role.id == id)
    }

    pub fn create_user(&mut self, org_id: &str, user: NewUser) -> Result<String, Refusal> {
        let org = self.org(org_id)?;
        validate_name("user", &user.name)?;
        if State::role(org, &user.role_id).is_none() {
            return Err(Refusal::bad_request(format!(
                "The role {} does not exist in organization {}.",
                user.role_id, org.name
            )));
        }
        if org.users.values().any(|u| u.name == user.name) {
            return Err(Refusal::duplicate("user", &user.name));
        }
        let id = new_id();
        let created = User {
            id: id.clone(),
            name: user.name,
            role_id: user.role_id,
            enabled: user.enabled,
            full_name: user.full_name,
            email: user.email,
            provider_type: user.provider_type,
            stored_vm_quota: user.stored_vm_quota,
            deployed_vm_quota: user.deployed_vm_quota,
        };
        self.org_mut(org_id)?.users.insert(id.clone(), created);
        Ok(id)
    }

    /// Replaces a user's settings (full replace, as VCD's PUT); the name may change if it stays unique.
    pub fn update_user(&mut self, id: &str, user: NewUser) -> Result<(), Refusal> {
        let (org, _) = self.user(id)?;
        if State::role(org, &user.role_id).is_none() {
            return Err(Refusal::bad_request(format!(
                "The role {} does not exist in organization {}.",
                user.role_id, org.name
            )));
        }
        if org.users.values().any(|u| u.name == user.name && u.id != id) {
            return Err(Refusal::duplicate("user", &user.name));
        }
        let org_id = org.id.clone();
        let stored = self
            .org_mut(&org_id)?
            .users
            .get_mut(id)
            .ok_or_else(|| Refusal::not_found("General: View Users", id))?;
        *stored = User {
            id: id.to_owned(),
            name: user.name,
            role_id: user.role_id,
            enabled: user.enabled,
            full_name: user.full_name,
            email: user.email,
            provider_type: user.provider_type,
            stored_vm_quota: user.stored_vm_quota,
            deployed_vm_quota: user.deployed_vm_quota,
        };
        Ok(())
    }

    pub fn delete_user(&mut self, id: &str) -> Result<(), Refusal> {
        let org_id = self.user(id)?.0.id.clone();
        self.org_mut(&org_id)?.users.remove(id);
        Ok(())
    }

    /// Creates a VDC (not ready until its task succeeds); answers its id and the task's.
    pub fn create_vdc(
        &mut self,
        org_id: &str,
        new: NewVdc,
        now: Timestamp,
        run: SignedDuration,
    ) -> Result<(String, String), Refusal> {
        let org = self.org(org_id)?;
        validate_name("VDC", &new.name)?;
        validate_spec(&new.spec)?;
        if new.provider_vdc_id != self.inventory.provider_vdc.id {
            return Err(Refusal::bad_request(format!(
                "The provider VDC {} does not exist.",
                new.provider_vdc_id
            )));
        }
        if new.storage.is_empty() {
            return Err(Refusal::bad_request("A VDC needs at least one VdcStorageProfile."));
        }
        let storage = new
            .storage
            .iter()
            .map(|(profile_id, limit_mb, default, enabled)| {
                let profile = self
                    .inventory
                    .storage_profiles
                    .iter()
                    .find(|p| &p.id == profile_id)
                    .ok_or_else(|| {
                        Refusal::bad_request(format!("The provider VDC storage profile {profile_id} does not exist."))
                    })?;
                Ok(StorageAllocation {
                    id: new_id(),
                    profile: profile.clone(),
                    limit_mb: *limit_mb,
                    default: *default,
                    enabled: *enabled,
                })
            })
            .collect::<Result<Vec<_>, Refusal>>()?;
        if org.vdcs.values().any(|v| v.name == new.name) {
            return Err(Refusal::duplicate("VDC", &new.name));
        }
        let org_named = Named {
            id: org.id.clone(),
            name: org.name.clone(),
        };
        let vdc = Vdc {
            id: new_id(),
            name: new.name,
            spec: new.spec,
            storage,
            ready: false,
        };
        let owner = Named {
            id: vdc.id.clone(),
            name: vdc.name.clone(),
        };
        self.org_mut(org_id)?.vdcs.insert(vdc.id.clone(), vdc);
        let task = self.start_task(Operation::VdcCreate, owner.clone(), org_named, now, run);
        Ok((owner.id, task))
    }

    /// Starts changing a VDC's settings (applied when the task succeeds; a rename must not clash).
    pub fn update_vdc(
        &mut self,
        id: &str,
        name: &str,
        spec: VdcSpec,
        now: Timestamp,
        run: SignedDuration,
    ) -> Result<String, Refusal> {
        let (org, vdc) = self.vdc(id)?;
        let owner = Named {
            id: vdc.id.clone(),
            name: vdc.name.clone(),
        };
        self.ensure_idle(&owner, now)?;
        validate_name("VDC", name)?;
        validate_spec(&spec)?;
        if org.vdcs.values().any(|v| v.name == name && v.id != id) {
            return Err(Refusal::duplicate("VDC", name));
        }
        let org_named = Named {
            id: org.id.clone(),
            name: org.name.clone(),
        };
        let task = self.start_task(
            Operation::VdcUpdate,
            Named {
                id: id.to_owned(),
                name: name.to_owned(),
            },
            org_named,
            now,
            run,
        );
        if let Some(task) = self.tasks.get_mut(&task) {
            task.update = Some(spec);
        }
        Ok(task)
    }

    pub fn set_vdc_enabled(&mut self, id: &str, enabled: bool, now: Timestamp) -> Result<(), Refusal> {
        let (org, vdc) = self.vdc(id)?;
        let owner = Named {
            id: vdc.id.clone(),
            name: vdc.name.clone(),
        };
        self.ensure_idle(&owner, now)?;
        let org_id = org.id.clone();
        if let Some(vdc) = self.org_mut(&org_id)?.vdcs.get_mut(id) {
            vdc.spec.enabled = enabled;
        }
        Ok(())
    }

    /// Starts deleting a VDC: it must be disabled unless `force`.
    pub fn delete_vdc(
        &mut self,
        id: &str,
        force: bool,
        now: Timestamp,
        run: SignedDuration,
    ) -> Result<String, Refusal> {
        let (org, vdc) = self.vdc(id)?;
        let owner = Named {
            id: vdc.id.clone(),
            name: vdc.name.clone(),
        };
        self.ensure_idle(&owner, now)?;
        if vdc.spec.enabled && !force {
            return Err(Refusal::bad_request(format!(
                "VDC {} cannot be deleted: you must disable the virtual datacenter before you can delete it.",
                vdc.name
            )));
        }
        let org_named = Named {
            id: org.id.clone(),
            name: org.name.clone(),
        };
        Ok(self.start_task(Operation::VdcDelete, owner, org_named, now, run))
    }

    /// Applies what tasks that ended by `now` do, in the order they ended: a VDC becomes ready or its
    /// changes apply, deletions remove, failed creates remove what they created; VDC changes go to the
    /// audit trail at the time the task succeeded. Answers whether anything changed.
    pub fn settle(&mut self, now: Timestamp) -> bool {
        let mut ended: Vec<(Timestamp, String)> = self
            .tasks
            .values()
            .filter(|t| !t.settled && t.ends <= now)
            .map(|t| (t.ends, t.id.clone()))
            .collect();
        ended.sort();
        for (_, id) in &ended {
            let Some(task) = self.tasks.get_mut(id) else { continue };
            task.settled = true;
            let task = task.clone();
            self.apply(&task);
        }
        !ended.is_empty()
    }

    fn apply(&mut self, task: &Task) {
        let failed = task.error.is_some();
        match (task.operation, failed) {
            (Operation::OrgCreate, true) => {
                self.orgs.remove(&task.owner.id);
            }
            (Operation::OrgDelete, false) => {
                if let Some(org) = self.orgs.remove(&task.owner.id) {
                    for vdc in org.vdcs.values() {
                        self.audit_vdc("delete", &org, vdc, task.ends, true);
                    }
                }
            }
            (Operation::VdcCreate, true) => {
                if let Some(org) = self.orgs.get_mut(&task.org.id) {
                    org.vdcs.remove(&task.owner.id);
                }
            }
            (Operation::VdcCreate, false) => self.change_vdc(task, "create", |vdc| vdc.ready = true),
            (Operation::VdcUpdate, false) => {
                let update = task.update.clone();
                let name = task.owner.name.clone();
                self.change_vdc(task, "modify", move |vdc| {
                    if let Some(spec) = update {
                        vdc.spec = spec;
                    }
                    vdc.name = name;
                });
            }
            (Operation::VdcDelete, false) => {
                let Some(org) = self.orgs.get_mut(&task.org.id) else {
                    return;
                };
                if let Some(vdc) = org.vdcs.remove(&task.owner.id) {
                    let org = org.clone();
                    self.audit_vdc("delete", &org, &vdc, task.ends, true);
                }
            }
            _ => {}
        }
    }

    fn change_vdc(&mut self, task: &Task, event: &str, change: impl FnOnce(&mut Vdc)) {
        let Some(org) = self.orgs.get_mut(&task.org.id) else {
            return;
        };
        let Some(vdc) = org.vdcs.get_mut(&task.owner.id) else {
            return;
        };
        change(vdc);
        let vdc = vdc.clone();
        let org = org.clone();
        self.audit_vdc(event, &org, &vdc, task.ends, false);
    }

    /// Records a VDC's allocation after a change (zeros after a deletion).
    fn audit_vdc(&mut self, event: &str, org: &Org, vdc: &Vdc, at: Timestamp, deleted: bool) {
        let value = |v: i64| if deleted { "0".to_owned() } else { v.to_string() };
        let properties = BTreeMap::from([
            ("vdc.cpu.allocated.mhz".to_owned(), value(vdc.spec.cpu.granted())),
            ("vdc.cpu.speed.mhz".to_owned(), vdc.spec.vcpu_mhz().to_string()),
            ("vdc.memory.allocated.mb".to_owned(), value(vdc.spec.memory.granted())),
            ("vdc.storage.limit.mb".to_owned(), value(vdc.storage_limit_mb())),
            ("vdc.allocation.model".to_owned(), vdc.spec.allocation_model.clone()),
        ]);
        self.audit.push(AuditEvent {
            id: new_id(),
            event_type: format!("com/vmware/cloud/event/vdc/{event}"),
            timestamp: at,
            tenant: Named {
                id: org.id.clone(),
                name: org.name.clone(),
            },
            entity: Named {
                id: vdc.id.clone(),
                name: vdc.name.clone(),
            },
            properties,
        });
    }
}

/// VCD's name rule for organisations (and, loosely, for VDCs and users): not empty, no `/`, `\` or spaces
/// at either end.
fn validate_name(kind: &str, name: &str) -> Result<(), Refusal> {
    if name.is_empty() || name.trim() != name || name.contains(['/', '\\']) || name.len() > 128 {
        return Err(Refusal::bad_request(format!(
            "The {kind} name '{name}' is invalid: it must be 1 to 128 characters without '/' or '\\' and \
             without leading or trailing spaces."
        )));
    }
    Ok(())
}

const ALLOCATION_MODELS: [&str; 4] = ["AllocationVApp", "AllocationPool", "ReservationPool", "Flex"];

fn validate_spec(spec: &VdcSpec) -> Result<(), Refusal> {
    if !ALLOCATION_MODELS.contains(&spec.allocation_model.as_str()) {
        return Err(Refusal::bad_request(format!(
            "The allocation model '{}' is not one of {}.",
            spec.allocation_model,
            ALLOCATION_MODELS.join(", ")
        )));
    }
    for (what, capacity, units) in [("Cpu", &spec.cpu, "MHz"), ("Memory", &spec.memory, "MB")] {
        if capacity.units != units {
            return Err(Refusal::bad_request(format!(
                "ComputeCapacity {what} Units must be {units}, not '{}'.",
                capacity.units
            )));
        }
        if capacity.allocated < 0 || capacity.limit < 0 {
            return Err(Refusal::bad_request(format!(
                "ComputeCapacity {what} must not be negative."
            )));
        }
    }
    if spec.allocation_model == "Flex" && (spec.is_elastic.is_none() || spec.include_memory_overhead.is_none()) {
        return Err(Refusal::bad_request(
            "A Flex VDC needs IsElastic and IncludeMemoryOverhead.",
        ));
    }
    if spec.vcpu_mhz.is_some_and(|mhz| mhz < 256) {
        return Err(Refusal::bad_request("VCpuInMhz must be at least 256."));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    const RUN: SignedDuration = SignedDuration::from_secs(2);

    fn fields(name: &str, full_name: &str) -> OrgFields {
        OrgFields {
            name: name.into(),
            full_name: full_name.into(),
            description: String::new(),
            enabled: true,
        }
    }

    fn state() -> State {
        State::new(Inventory::new("pvdc", &["gold".into(), "silver".into()], "pool"))
    }

    fn spec(cpu: i64) -> VdcSpec {
        VdcSpec {
            description: String::new(),
            allocation_model: "AllocationVApp".into(),
            cpu: Capacity {
                units: "MHz".into(),
                allocated: 0,
                limit: cpu,
            },
            memory: Capacity {
                units: "MB".into(),
                allocated: 0,
                limit: 4096,
            },
            nic_quota: 0,
            network_quota: 0,
            vm_quota: 0,
            enabled: true,
            vcpu_mhz: Some(2000),
            resource_guaranteed_cpu: None,
            resource_guaranteed_memory: None,
            network_pool: None,
            is_elastic: None,
            include_memory_overhead: None,
            thin_provision: false,
            fast_provisioning: false,
        }
    }

    fn new_vdc(state: &State, name: &str, cpu: i64) -> NewVdc {
        NewVdc {
            name: name.into(),
            spec: spec(cpu),
            storage: vec![(state.inventory.storage_profiles[0].id.clone(), 10_240, true, true)],
            provider_vdc_id: state.inventory.provider_vdc.id.clone(),
        }
    }

    #[test]
    fn orgs_have_unique_names_and_their_own_role_ids() {
        let mut s = state();
        let (a, _) = s.create_org(fields("acme", "Acme"), t(0), RUN).unwrap();
        let (b, _) = s.create_org(fields("beta", "Beta"), t(0), RUN).unwrap();
        let refusal = s.create_org(fields("acme", "Acme again"), t(1), RUN).unwrap_err();
        assert_eq!((refusal.status, refusal.code), (400, "DUPLICATE_NAME"));
        assert_eq!(s.orgs[&a].roles.len(), TENANT_ROLES.len());
        assert_ne!(s.orgs[&a].roles[0].id, s.orgs[&b].roles[0].id);
        assert_eq!(s.org("nope").unwrap_err().status, 403);
        assert_eq!(
            s.create_org(fields("a/b", "x"), t(0), RUN).unwrap_err().code,
            "BAD_REQUEST"
        );
    }

    #[test]
    fn a_vdc_is_ready_and_audited_only_when_its_task_succeeds() {
        let mut s = state();
        let (org, _) = s.create_org(fields("acme", "Acme"), t(0), RUN).unwrap();
        let (vdc, task) = s.create_vdc(&org, new_vdc(&s, "acme-vdc", 4000), t(0), RUN).unwrap();
        assert_eq!(s.tasks[&task].status(t(1)), TaskStatus::Running);
        assert_eq!(s.tasks[&task].progress(t(1)), 50);
        // Busy while the task runs.
        let busy = s.set_vdc_enabled(&vdc, false, t(1)).unwrap_err();
        assert_eq!(busy.code, "BUSY_ENTITY");
        assert!(!s.settle(t(1)));
        assert!(!s.vdc(&vdc).unwrap().1.ready);
        assert!(s.settle(t(2)));
        assert!(s.vdc(&vdc).unwrap().1.ready);
        assert_eq!(s.audit.len(), 1);
        let event = &s.audit[0];
        assert_eq!(event.event_type, "com/vmware/cloud/event/vdc/create");
        assert_eq!(event.timestamp, t(2));
        assert_eq!(event.properties["vdc.cpu.allocated.mhz"], "4000");
        assert_eq!(event.properties["vdc.cpu.speed.mhz"], "2000");
        assert_eq!(event.properties["vdc.storage.limit.mb"], "10240");
        assert_eq!(
            s.create_vdc(&org, new_vdc(&s, "acme-vdc", 1), t(3), RUN)
                .unwrap_err()
                .code,
            "DUPLICATE_NAME"
        );
    }

    #[test]
    fn updates_apply_at_success_and_deletes_need_a_disabled_vdc_or_force() {
        let mut s = state();
        let (org, _) = s.create_org(fields("acme", "Acme"), t(0), RUN).unwrap();
        let (vdc, _) = s.create_vdc(&org, new_vdc(&s, "v", 4000), t(0), RUN).unwrap();
        s.settle(t(2));
        s.update_vdc(&vdc, "v", spec(8000), t(3), RUN).unwrap();
        s.settle(t(4));
        assert_eq!(s.vdc(&vdc).unwrap().1.spec.cpu.limit, 4000, "not before the task ends");
        s.settle(t(5));
        assert_eq!(s.vdc(&vdc).unwrap().1.spec.cpu.limit, 8000);
        assert_eq!(s.audit.last().unwrap().event_type, "com/vmware/cloud/event/vdc/modify");
        assert_eq!(s.delete_vdc(&vdc, false, t(6), RUN).unwrap_err().code, "BAD_REQUEST");
        s.set_vdc_enabled(&vdc, false, t(6)).unwrap();
        s.delete_vdc(&vdc, false, t(6), RUN).unwrap();
        s.settle(t(8));
        assert_eq!(s.vdc(&vdc).unwrap_err().status, 403);
        let deleted = s.audit.last().unwrap();
        assert_eq!(deleted.event_type, "com/vmware/cloud/event/vdc/delete");
        assert_eq!(deleted.properties["vdc.cpu.allocated.mhz"], "0");
    }

    #[test]
    fn a_failed_task_reports_its_message_and_undoes_a_create() {
        let mut s = state();
        let (org, _) = s.create_org(fields("acme", "Acme"), t(0), RUN).unwrap();
        s.fail_next.insert(Operation::VdcCreate, "no capacity".into());
        let (vdc, task) = s.create_vdc(&org, new_vdc(&s, "v", 4000), t(0), RUN).unwrap();
        s.settle(t(2));
        assert_eq!(s.tasks[&task].status(t(2)), TaskStatus::Error);
        assert_eq!(s.tasks[&task].error.as_deref(), Some("no capacity"));
        assert!(s.vdc(&vdc).is_err());
        assert!(s.audit.is_empty());
        assert!(s.fail_next.is_empty(), "only the next task fails");
    }

    #[test]
    fn an_org_is_deleted_when_disabled_and_recursively_when_it_has_vdcs() {
        let mut s = state();
        let (org, _) = s.create_org(fields("acme", "Acme"), t(0), RUN).unwrap();
        s.create_vdc(&org, new_vdc(&s, "v", 4000), t(0), RUN).unwrap();
        s.settle(t(2));
        assert!(
            s.delete_org(&org, false, true, t(3), RUN)
                .unwrap_err()
                .message
                .contains("disable")
        );
        s.set_org_enabled(&org, false, t(3)).unwrap();
        assert!(
            s.delete_org(&org, false, false, t(3), RUN)
                .unwrap_err()
                .message
                .contains("recursive")
        );
        s.delete_org(&org, false, true, t(3), RUN).unwrap();
        assert_eq!(s.set_org_enabled(&org, true, t(4)).unwrap_err().code, "BUSY_ENTITY");
        s.settle(t(5));
        assert!(s.orgs.is_empty());
        assert_eq!(s.audit.last().unwrap().event_type, "com/vmware/cloud/event/vdc/delete");
    }

    #[test]
    fn users_need_a_role_of_their_org_and_a_unique_name() {
        let mut s = state();
        let (org, _) = s.create_org(fields("acme", "Acme"), t(0), RUN).unwrap();
        let (other, _) = s.create_org(fields("beta", "Beta"), t(0), RUN).unwrap();
        let user = |role: &str| NewUser {
            name: "bob".into(),
            role_id: role.into(),
            enabled: true,
            full_name: String::new(),
            email: String::new(),
            provider_type: "INTEGRATED".into(),
            stored_vm_quota: 0,
            deployed_vm_quota: 0,
        };
        let foreign = s.orgs[&other].roles[0].id.clone();
        assert_eq!(s.create_user(&org, user(&foreign)).unwrap_err().code, "BAD_REQUEST");
        let role = s.orgs[&org].roles[2].id.clone();
        let id = s.create_user(&org, user(&role)).unwrap();
        assert_eq!(s.create_user(&org, user(&role)).unwrap_err().code, "DUPLICATE_NAME");
        let admin = s.orgs[&org].roles[0].id.clone();
        s.update_user(&id, user(&admin)).unwrap();
        assert_eq!(s.user(&id).unwrap().1.role_id, admin);
        s.delete_user(&id).unwrap();
        assert_eq!(s.user(&id).unwrap_err().status, 403);
    }

    #[test]
    fn flex_vdcs_need_their_elasticity_settings() {
        let mut flex = spec(1000);
        flex.allocation_model = "Flex".into();
        assert!(validate_spec(&flex).unwrap_err().message.contains("IsElastic"));
        flex.is_elastic = Some(false);
        flex.include_memory_overhead = Some(true);
        assert!(validate_spec(&flex).is_ok());
        flex.cpu.units = "GHz".into();
        assert!(validate_spec(&flex).unwrap_err().message.contains("MHz"));
    }
}
