//! VCD's legacy XML: the documents the emulator writes (a small element writer, so the attribute and
//! element names read as they appear on the wire) and the request bodies it reads (serde over quick-xml).

use jiff::Timestamp;
use quick_xml::escape::escape;
use serde::Deserialize;

use super::state::{Org, State, Task, TaskStatus, User, Vdc};

pub const NAMESPACE: &str = "http://www.vmware.com/vcloud/v1.5";
pub const ORG_TYPE: &str = "application/vnd.vmware.vcloud.org+xml";
pub const ADMIN_ORG_TYPE: &str = "application/vnd.vmware.admin.organization+xml";
pub const ADMIN_USER_TYPE: &str = "application/vnd.vmware.admin.user+xml";
pub const ADMIN_VDC_TYPE: &str = "application/vnd.vmware.admin.vdc+xml";
pub const VDC_TYPE: &str = "application/vnd.vmware.vcloud.vdc+xml";
pub const TASK_TYPE: &str = "application/vnd.vmware.vcloud.task+xml";
pub const ROLE_TYPE: &str = "application/vnd.vmware.admin.role+xml";
pub const ERROR_TYPE: &str = "application/vnd.vmware.vcloud.error+xml";

/// A tiny XML writer: elements open, close, or are written whole, with escaped attributes and text.
#[derive(Default)]
pub struct Xml {
    out: String,
}

impl Xml {
    pub fn new() -> Self {
        Xml {
            out: String::from("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n"),
        }
    }

    fn start(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.out.push('<');
        self.out.push_str(name);
        for (key, value) in attrs {
            self.out.push_str(&format!(" {key}=\"{}\"", escape(*value)));
        }
    }

    pub fn open(&mut self, name: &str, attrs: &[(&str, &str)]) -> &mut Self {
        self.start(name, attrs);
        self.out.push('>');
        self
    }

    pub fn close(&mut self, name: &str) -> &mut Self {
        self.out.push_str(&format!("</{name}>"));
        self
    }

    pub fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) -> &mut Self {
        self.start(name, attrs);
        self.out.push_str("/>");
        self
    }

    pub fn text(&mut self, name: &str, value: impl std::fmt::Display) -> &mut Self {
        self.out
            .push_str(&format!("<{name}>{}</{name}>", escape(value.to_string().as_str())));
        self
    }

    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.out)
    }
}

/// Builds hrefs and URNs from the address the client used.
#[derive(Clone, Debug)]
pub struct Hrefs {
    pub base: String,
}

impl Hrefs {
    pub fn org(&self, id: &str) -> String {
        format!("{}/api/org/{id}", self.base)
    }
    pub fn admin_org(&self, id: &str) -> String {
        format!("{}/api/admin/org/{id}", self.base)
    }
    pub fn user(&self, id: &str) -> String {
        format!("{}/api/admin/user/{id}", self.base)
    }
    pub fn role(&self, id: &str) -> String {
        format!("{}/api/admin/role/{id}", self.base)
    }
    pub fn vdc(&self, id: &str) -> String {
        format!("{}/api/vdc/{id}", self.base)
    }
    pub fn admin_vdc(&self, id: &str) -> String {
        format!("{}/api/admin/vdc/{id}", self.base)
    }
    pub fn task(&self, id: &str) -> String {
        format!("{}/api/task/{id}", self.base)
    }
    pub fn provider_vdc(&self, id: &str) -> String {
        format!("{}/api/admin/providervdc/{id}", self.base)
    }
    pub fn provider_storage_profile(&self, id: &str) -> String {
        format!("{}/api/admin/pvdcStorageProfile/{id}", self.base)
    }
    pub fn vdc_storage_profile(&self, id: &str) -> String {
        format!("{}/api/vdcStorageProfile/{id}", self.base)
    }
    pub fn network_pool(&self, id: &str) -> String {
        format!("{}/api/admin/extension/networkPool/{id}", self.base)
    }
}

pub fn urn(kind: &str, id: &str) -> String {
    format!("urn:vcloud:{kind}:{id}")
}

pub fn timestamp(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// VCD's error document.
pub fn error(status: u16, code: &str, message: &str) -> String {
    Xml::new()
        .empty(
            "Error",
            &[
                ("xmlns", NAMESPACE),
                ("majorErrorCode", &status.to_string()),
                ("minorErrorCode", code),
                ("message", message),
                (
                    "stackTrace",
                    &format!("com.vmware.vcloud.api.presentation.service.{code}: {message}"),
                ),
            ],
        )
        .finish()
}

pub fn versions(hrefs: &Hrefs, versions: &[super::query::ApiVersion]) -> String {
    let mut x = Xml::new();
    x.open(
        "SupportedVersions",
        &[("xmlns", "http://www.vmware.com/vcloud/versions")],
    );
    let login = format!("{}/cloudapi/1.0.0/sessions", hrefs.base);
    for v in versions {
        x.open(
            "VersionInfo",
            &[("deprecated", if v.deprecated { "true" } else { "false" })],
        )
        .text("Version", &v.version)
        .text("LoginUrl", &login)
        .close("VersionInfo");
    }
    x.close("SupportedVersions").finish()
}

pub fn org_list(hrefs: &Hrefs, state: &State) -> String {
    let mut x = Xml::new();
    x.open(
        "OrgList",
        &[
            ("xmlns", NAMESPACE),
            ("href", &format!("{}/api/org", hrefs.base)),
            ("type", "application/vnd.vmware.vcloud.orgList+xml"),
        ],
    );
    for org in state.orgs.values() {
        x.empty(
            "Org",
            &[("href", &hrefs.org(&org.id)), ("name", &org.name), ("type", ORG_TYPE)],
        );
    }
    x.close("OrgList").finish()
}

/// A task element (inside `<Tasks>` when `root` is false).
fn task_into(x: &mut Xml, hrefs: &Hrefs, task: &Task, now: Timestamp, root: bool) {
    let status = task.status(now);
    let (owner_type, owner_href, owner_kind) = match task.operation.owner_kind() {
        super::state::EntityKind::Org => (ADMIN_ORG_TYPE, hrefs.admin_org(&task.owner.id), "org"),
        super::state::EntityKind::Vdc => (ADMIN_VDC_TYPE, hrefs.admin_vdc(&task.owner.id), "vdc"),
    };
    let href = hrefs.task(&task.id);
    let id = urn("task", &task.id);
    let operation = task.operation_text();
    let started = timestamp(task.started);
    let ended = timestamp(task.ends);
    let expiry = timestamp(task.ends + jiff::SignedDuration::from_hours(24 * 30));
    let mut attrs = vec![];
    if root {
        attrs.push(("xmlns", NAMESPACE));
    }
    attrs.extend([
        ("cancelRequested", "false"),
        ("expiryTime", expiry.as_str()),
        ("operation", operation.as_str()),
        ("operationName", task.operation.operation_name()),
        ("serviceNamespace", "com.vmware.vcloud"),
        ("startTime", started.as_str()),
        ("status", status.as_str()),
        ("name", "task"),
        ("id", id.as_str()),
        ("href", href.as_str()),
        ("type", TASK_TYPE),
    ]);
    if status != TaskStatus::Running {
        attrs.push(("endTime", ended.as_str()));
    }
    x.open("Task", &attrs);
    if status == TaskStatus::Running {
        let cancel = format!("{href}/action/cancel");
        x.empty("Link", &[("rel", "task:cancel"), ("href", &cancel)]);
    }
    x.empty(
        "Owner",
        &[
            ("href", &owner_href),
            ("id", &urn(owner_kind, &task.owner.id)),
            ("name", &task.owner.name),
            ("type", owner_type),
        ],
    );
    if let (TaskStatus::Error, Some(message)) = (status, &task.error) {
        x.empty(
            "Error",
            &[
                ("majorErrorCode", "500"),
                ("message", message),
                ("minorErrorCode", "INTERNAL_SERVER_ERROR"),
            ],
        );
    }
    x.empty(
        "User",
        &[
            ("href", &hrefs.user("administrator")),
            ("name", "administrator"),
            ("type", ADMIN_USER_TYPE),
        ],
    );
    x.empty(
        "Organization",
        &[
            ("href", &hrefs.org(&task.org.id)),
            ("name", &task.org.name),
            ("type", ORG_TYPE),
        ],
    );
    x.text("Progress", task.progress(now));
    x.close("Task");
}

pub fn task(hrefs: &Hrefs, task: &Task, now: Timestamp) -> String {
    let mut x = Xml::new();
    task_into(&mut x, hrefs, task, now, true);
    x.finish()
}

/// The running tasks of an entity, as VCD embeds them in it (nothing when none runs).
fn tasks_into(x: &mut Xml, hrefs: &Hrefs, state: &State, entity: &str, now: Timestamp, extra: Option<&Task>) {
    let mut tasks: Vec<&Task> = state.running_on(entity, now).collect();
    if let Some(extra) = extra.filter(|t| !tasks.iter().any(|r| r.id == t.id)) {
        tasks.push(extra);
    }
    if tasks.is_empty() {
        return;
    }
    x.open("Tasks", &[]);
    for task in tasks {
        task_into(x, hrefs, task, now, false);
    }
    x.close("Tasks");
}

/// The admin view of an organisation, with every list the SDK walks (even when empty).
pub fn admin_org(hrefs: &Hrefs, state: &State, org: &Org, now: Timestamp, created: Option<&Task>) -> String {
    let mut x = Xml::new();
    let href = hrefs.admin_org(&org.id);
    x.open(
        "AdminOrg",
        &[
            ("xmlns", NAMESPACE),
            ("href", &href),
            ("type", ADMIN_ORG_TYPE),
            ("id", &urn("org", &org.id)),
            ("name", &org.name),
        ],
    );
    x.empty(
        "Link",
        &[("rel", "alternate"), ("href", &hrefs.org(&org.id)), ("type", ORG_TYPE)],
    );
    x.empty(
        "Link",
        &[
            ("rel", "add"),
            ("href", &format!("{href}/vdcsparams")),
            ("type", "application/vnd.vmware.admin.createVdcParams+xml"),
        ],
    );
    x.empty(
        "Link",
        &[
            ("rel", "add"),
            ("href", &format!("{href}/users")),
            ("type", ADMIN_USER_TYPE),
        ],
    );
    if !org.description.is_empty() {
        x.text("Description", &org.description);
    }
    x.text("FullName", &org.full_name).text("IsEnabled", org.enabled);
    tasks_into(&mut x, hrefs, state, &org.id, now, created);
    x.empty(
        "Settings",
        &[
            ("href", &format!("{href}/settings")),
            ("type", "application/vnd.vmware.admin.orgSettings+xml"),
        ],
    );
    x.open("Users", &[]);
    for user in org.users.values() {
        x.empty(
            "UserReference",
            &[
                ("href", &hrefs.user(&user.id)),
                ("name", &user.name),
                ("type", ADMIN_USER_TYPE),
            ],
        );
    }
    x.close("Users");
    x.empty("Groups", &[]);
    x.empty("Catalogs", &[]);
    x.open("Vdcs", &[]);
    for vdc in org.vdcs.values() {
        x.empty(
            "Vdc",
            &[
                ("href", &hrefs.admin_vdc(&vdc.id)),
                ("name", &vdc.name),
                ("type", ADMIN_VDC_TYPE),
            ],
        );
    }
    x.close("Vdcs");
    x.empty("Networks", &[]);
    x.open("RoleReferences", &[]);
    for role in &org.roles {
        x.empty(
            "RoleReference",
            &[
                ("href", &hrefs.role(&role.id)),
                ("name", &role.name),
                ("type", ROLE_TYPE),
            ],
        );
    }
    x.close("RoleReferences");
    x.close("AdminOrg").finish()
}

pub fn user(hrefs: &Hrefs, org: &Org, user: &User) -> String {
    let role = State::role(org, &user.role_id);
    let mut x = Xml::new();
    x.open(
        "User",
        &[
            ("xmlns", NAMESPACE),
            ("href", &hrefs.user(&user.id)),
            ("type", ADMIN_USER_TYPE),
            ("id", &urn("user", &user.id)),
            ("name", &user.name),
        ],
    );
    x.empty(
        "Link",
        &[
            ("rel", "up"),
            ("href", &hrefs.admin_org(&org.id)),
            ("type", ADMIN_ORG_TYPE),
        ],
    );
    if !user.full_name.is_empty() {
        x.text("FullName", &user.full_name);
    }
    if !user.email.is_empty() {
        x.text("EmailAddress", &user.email);
    }
    x.text("IsEnabled", user.enabled)
        .text("IsLocked", false)
        .text("IsExternal", false)
        .text("ProviderType", &user.provider_type)
        .text("StoredVmQuota", user.stored_vm_quota)
        .text("DeployedVmQuota", user.deployed_vm_quota);
    if let Some(role) = role {
        x.empty(
            "Role",
            &[
                ("href", &hrefs.role(&role.id)),
                ("name", &role.name),
                ("type", ROLE_TYPE),
            ],
        );
    }
    x.close("User").finish()
}

fn capacity_into(x: &mut Xml, name: &str, capacity: &super::state::Capacity) {
    x.open(name, &[])
        .text("Units", &capacity.units)
        .text("Allocated", capacity.allocated)
        .text("Limit", capacity.limit)
        .text("Reserved", 0)
        .text("Used", 0)
        .close(name);
}

/// A VDC: the tenant view (`/api/vdc/{id}`) or, with `admin`, the admin view (`/api/admin/vdc/{id}`).
pub fn vdc(
    hrefs: &Hrefs,
    state: &State,
    org: &Org,
    vdc: &Vdc,
    admin: bool,
    now: Timestamp,
    created: Option<&Task>,
) -> String {
    let (element, href, kind) = if admin {
        ("AdminVdc", hrefs.admin_vdc(&vdc.id), ADMIN_VDC_TYPE)
    } else {
        ("Vdc", hrefs.vdc(&vdc.id), VDC_TYPE)
    };
    let spec = &vdc.spec;
    let mut x = Xml::new();
    x.open(
        element,
        &[
            ("xmlns", NAMESPACE),
            ("status", if vdc.ready { "1" } else { "0" }),
            ("name", &vdc.name),
            ("id", &urn("vdc", &vdc.id)),
            ("href", &href),
            ("type", kind),
        ],
    );
    x.empty(
        "Link",
        &[("rel", "up"), ("href", &hrefs.org(&org.id)), ("type", ORG_TYPE)],
    );
    if admin {
        x.empty(
            "Link",
            &[("rel", "alternate"), ("href", &hrefs.vdc(&vdc.id)), ("type", VDC_TYPE)],
        );
    } else {
        x.empty(
            "Link",
            &[
                ("rel", "alternate"),
                ("href", &hrefs.admin_vdc(&vdc.id)),
                ("type", ADMIN_VDC_TYPE),
            ],
        );
    }
    if !spec.description.is_empty() {
        x.text("Description", &spec.description);
    }
    tasks_into(&mut x, hrefs, state, &vdc.id, now, created);
    x.text("AllocationModel", &spec.allocation_model);
    x.open("ComputeCapacity", &[]);
    capacity_into(&mut x, "Cpu", &spec.cpu);
    capacity_into(&mut x, "Memory", &spec.memory);
    x.close("ComputeCapacity");
    x.empty("ResourceEntities", &[])
        .empty("AvailableNetworks", &[])
        .empty("Capabilities", &[]);
    x.text("NicQuota", spec.nic_quota)
        .text("NetworkQuota", spec.network_quota)
        .text("UsedNetworkCount", 0)
        .text("VmQuota", spec.vm_quota)
        .text("IsEnabled", spec.enabled);
    x.open("VdcStorageProfiles", &[]);
    for storage in &vdc.storage {
        x.empty(
            "VdcStorageProfile",
            &[
                ("href", &hrefs.vdc_storage_profile(&storage.id)),
                ("name", &storage.profile.name),
                ("type", "application/vnd.vmware.vcloud.vdcStorageProfile+xml"),
            ],
        );
    }
    x.close("VdcStorageProfiles");
    x.text("VCpuInMhz2", spec.vcpu_mhz());
    if admin {
        if let Some(cpu) = spec.resource_guaranteed_cpu {
            x.text("ResourceGuaranteedCpu", cpu);
        }
        if let Some(memory) = spec.resource_guaranteed_memory {
            x.text("ResourceGuaranteedMemory", memory);
        }
        x.text("VCpuInMhz", spec.vcpu_mhz())
            .text("IsThinProvision", spec.thin_provision);
        if let Some(pool) = &spec.network_pool {
            x.empty(
                "NetworkPoolReference",
                &[
                    ("href", &hrefs.network_pool(&pool.id)),
                    ("name", &pool.name),
                    ("type", "application/vnd.vmware.admin.networkPool+xml"),
                ],
            );
        }
        let pvdc = &state.inventory.provider_vdc;
        x.empty(
            "ProviderVdcReference",
            &[
                ("href", &hrefs.provider_vdc(&pvdc.id)),
                ("name", &pvdc.name),
                ("type", "application/vnd.vmware.admin.providervdc+xml"),
            ],
        );
        x.text("UsesFastProvisioning", spec.fast_provisioning);
        if let Some(elastic) = spec.is_elastic {
            x.text("IsElastic", elastic);
        }
        if let Some(overhead) = spec.include_memory_overhead {
            x.text("IncludeMemoryOverhead", overhead);
        }
    }
    x.close(element).finish()
}

/// A `<QueryResultRecords>` page: each record is an element name and its attributes.
pub fn query_records(
    hrefs: &Hrefs,
    query_type: &str,
    page: &super::query::PageOf<(&'static str, Vec<(&'static str, String)>)>,
    next: Option<String>,
) -> String {
    let mut x = Xml::new();
    let page_no = page.page.to_string();
    let page_size = page.page_size.to_string();
    let total = page.total.to_string();
    let href = format!(
        "{}/api/query?type={query_type}&page={page_no}&pageSize={page_size}&format=records",
        hrefs.base
    );
    x.open(
        "QueryResultRecords",
        &[
            ("xmlns", NAMESPACE),
            ("total", &total),
            ("pageSize", &page_size),
            ("page", &page_no),
            ("name", query_type),
            ("type", "application/vnd.vmware.vcloud.query.records+xml"),
            ("href", &href),
        ],
    );
    if let Some(next) = next {
        x.empty(
            "Link",
            &[
                ("rel", "nextPage"),
                ("href", &next),
                ("type", "application/vnd.vmware.vcloud.query.records+xml"),
            ],
        );
    }
    for (element, attrs) in &page.items {
        let attrs: Vec<(&str, &str)> = attrs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        x.empty(element, &attrs);
    }
    x.close("QueryResultRecords").finish()
}

// ---- Request bodies ----

/// A reference (`href`, optionally `name`).
#[derive(Debug, Default, Deserialize)]
pub struct RefIn {
    #[serde(rename = "@href", default)]
    pub href: String,
    #[serde(rename = "@name", default)]
    pub name: String,
}

/// `POST /api/admin/orgs` and `PUT /api/admin/org/{id}`.
#[derive(Debug, Deserialize)]
pub struct AdminOrgIn {
    #[serde(rename = "@name")]
    pub name: String,
    #[serde(rename = "Description", default)]
    pub description: String,
    #[serde(rename = "FullName", default)]
    pub full_name: String,
    /// Go's encoder leaves out a false `IsEnabled`.
    #[serde(rename = "IsEnabled", default)]
    pub is_enabled: bool,
}

impl AdminOrgIn {
    pub fn fields(self) -> super::state::OrgFields {
        super::state::OrgFields {
            name: self.name,
            full_name: self.full_name,
            description: self.description,
            enabled: self.is_enabled,
        }
    }
}

/// `POST /api/admin/org/{id}/users` and `PUT /api/admin/user/{id}`.
#[derive(Debug, Deserialize)]
pub struct UserIn {
    #[serde(rename = "@name")]
    pub name: String,
    #[serde(rename = "FullName", default)]
    pub full_name: String,
    #[serde(rename = "EmailAddress", default)]
    pub email: String,
    #[serde(rename = "IsEnabled", default)]
    pub is_enabled: bool,
    #[serde(rename = "ProviderType", default)]
    pub provider_type: Option<String>,
    #[serde(rename = "StoredVmQuota", default)]
    pub stored_vm_quota: i64,
    #[serde(rename = "DeployedVmQuota", default)]
    pub deployed_vm_quota: i64,
    #[serde(rename = "Role")]
    pub role: Option<RefIn>,
    #[serde(rename = "Password", default)]
    pub password: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct CapacityIn {
    #[serde(rename = "Units", default)]
    pub units: String,
    #[serde(rename = "Allocated", default)]
    pub allocated: i64,
    #[serde(rename = "Limit", default)]
    pub limit: i64,
}

#[derive(Debug, Deserialize)]
pub struct ComputeCapacityIn {
    #[serde(rename = "Cpu")]
    pub cpu: Option<CapacityIn>,
    #[serde(rename = "Memory")]
    pub memory: Option<CapacityIn>,
}

#[derive(Debug, Deserialize)]
pub struct StorageProfileIn {
    #[serde(rename = "Enabled")]
    pub enabled: Option<bool>,
    #[serde(rename = "Units", default)]
    pub units: String,
    #[serde(rename = "Limit", default)]
    pub limit: i64,
    #[serde(rename = "Default", default)]
    pub default: bool,
    #[serde(rename = "ProviderVdcStorageProfile")]
    pub provider_profile: Option<RefIn>,
}

#[derive(Debug, Default, Deserialize)]
pub struct StorageProfileRefs {
    #[serde(rename = "VdcStorageProfile", default)]
    pub profiles: Vec<RefIn>,
}

/// `POST /api/admin/org/{id}/vdcsparams` (`CreateVdcParams`) and `PUT /api/admin/vdc/{id}` (`AdminVdc`):
/// the fields both carry.
#[derive(Debug, Deserialize)]
pub struct VdcIn {
    #[serde(rename = "@name")]
    pub name: String,
    #[serde(rename = "Description", default)]
    pub description: String,
    #[serde(rename = "AllocationModel", default)]
    pub allocation_model: String,
    #[serde(rename = "ComputeCapacity", default)]
    pub compute_capacity: Vec<ComputeCapacityIn>,
    #[serde(rename = "NicQuota", default)]
    pub nic_quota: i64,
    #[serde(rename = "NetworkQuota", default)]
    pub network_quota: i64,
    #[serde(rename = "VmQuota", default)]
    pub vm_quota: i64,
    #[serde(rename = "IsEnabled")]
    pub is_enabled: Option<bool>,
    /// Create: profiles with limits.
    #[serde(rename = "VdcStorageProfile", default)]
    pub storage_profiles: Vec<StorageProfileIn>,
    #[serde(rename = "ResourceGuaranteedMemory")]
    pub resource_guaranteed_memory: Option<f64>,
    #[serde(rename = "ResourceGuaranteedCpu")]
    pub resource_guaranteed_cpu: Option<f64>,
    #[serde(rename = "VCpuInMhz")]
    pub vcpu_in_mhz: Option<i64>,
    #[serde(rename = "VCpuInMhz2")]
    pub vcpu_in_mhz2: Option<i64>,
    #[serde(rename = "IsThinProvision", default)]
    pub is_thin_provision: bool,
    #[serde(rename = "NetworkPoolReference")]
    pub network_pool: Option<RefIn>,
    #[serde(rename = "ProviderVdcReference")]
    pub provider_vdc: Option<RefIn>,
    #[serde(rename = "UsesFastProvisioning", default)]
    pub uses_fast_provisioning: bool,
    #[serde(rename = "IsElastic")]
    pub is_elastic: Option<bool>,
    #[serde(rename = "IncludeMemoryOverhead")]
    pub include_memory_overhead: Option<bool>,
}

/// Parses a request body, saying what is wrong with it as VCD's 400 would.
pub fn parse<T: serde::de::DeserializeOwned>(body: &str, what: &str) -> Result<T, String> {
    quick_xml::de::from_str(body).map_err(|error| format!("The {what} in the request body is not valid: {error}"))
}

/// The last path segment of an href: the bare id.
pub fn id_of(href: &str) -> &str {
    href.trim_end_matches('/').rsplit('/').next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::cloud_director::state::{Inventory, State};

    fn org_fields(name: &str, full_name: &str) -> crate::simulator::cloud_director::state::OrgFields {
        crate::simulator::cloud_director::state::OrgFields {
            name: name.into(),
            full_name: full_name.into(),
            description: String::new(),
            enabled: true,
        }
    }

    fn hrefs() -> Hrefs {
        Hrefs {
            base: "https://127.0.0.1:8443".into(),
        }
    }

    #[test]
    fn the_sdk_s_create_vdc_params_are_read() {
        // As Go's encoding/xml writes types.VdcConfiguration (IsEnabled left out when false).
        let body = r#"<CreateVdcParams xmlns="http://www.vmware.com/vcloud/v1.5" name="acme-vdc">
            <AllocationModel>Flex</AllocationModel>
            <ComputeCapacity><Cpu><Units>MHz</Units><Allocated>4000</Allocated><Limit>4000</Limit></Cpu>
            <Memory><Units>MB</Units><Allocated>8192</Allocated><Limit>8192</Limit></Memory></ComputeCapacity>
            <VdcStorageProfile><Enabled>true</Enabled><Units>MB</Units><Limit>10240</Limit><Default>true</Default>
            <ProviderVdcStorageProfile href="https://h/api/admin/pvdcStorageProfile/sp-1"></ProviderVdcStorageProfile></VdcStorageProfile>
            <VCpuInMhz>2000</VCpuInMhz>
            <NetworkPoolReference href="https://h/api/admin/extension/networkPool/np-1"></NetworkPoolReference>
            <ProviderVdcReference href="https://h/api/admin/providervdc/pv-1"></ProviderVdcReference>
            <IsElastic>false</IsElastic><IncludeMemoryOverhead>true</IncludeMemoryOverhead></CreateVdcParams>"#;
        let vdc: VdcIn = parse(body, "CreateVdcParams").unwrap();
        assert_eq!(vdc.name, "acme-vdc");
        assert_eq!(vdc.compute_capacity[0].cpu.as_ref().unwrap().allocated, 4000);
        assert_eq!(vdc.storage_profiles[0].limit, 10240);
        assert_eq!(
            id_of(&vdc.storage_profiles[0].provider_profile.as_ref().unwrap().href),
            "sp-1"
        );
        assert_eq!(id_of(&vdc.provider_vdc.unwrap().href), "pv-1");
        assert_eq!(
            (vdc.is_enabled, vdc.is_elastic, vdc.vcpu_in_mhz),
            (None, Some(false), Some(2000))
        );
        assert!(
            parse::<VdcIn>("<CreateVdcParams/>", "CreateVdcParams")
                .unwrap_err()
                .contains("CreateVdcParams")
        );
    }

    #[test]
    fn an_admin_org_carries_every_list_the_sdk_walks() {
        let mut state = State::new(Inventory::new("pvdc", &["gold".into()], "pool"));
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let (id, task) = state
            .create_org(org_fields("acme", "Acme & Co"), now, jiff::SignedDuration::from_secs(2))
            .unwrap();
        let xml = admin_org(&hrefs(), &state, &state.orgs[&id], now, None);
        for part in [
            "<AdminOrg xmlns=\"http://www.vmware.com/vcloud/v1.5\"",
            &format!("href=\"https://127.0.0.1:8443/api/admin/org/{id}\""),
            &format!("id=\"urn:vcloud:org:{id}\""),
            "<FullName>Acme &amp; Co</FullName>",
            "<Settings ",
            "<Users></Users>",
            "<Catalogs/>",
            "<Vdcs></Vdcs>",
            "<Networks/>",
            "name=\"vApp Author\"",
            "<Tasks><Task cancelRequested=\"false\"",
            "status=\"running\"",
            &format!("href=\"https://127.0.0.1:8443/api/task/{task}\""),
            "<Owner href=",
        ] {
            assert!(xml.contains(part), "{part} missing from {xml}");
        }
        let list = org_list(&hrefs(), &state);
        assert!(list.contains(&format!(
            "<Org href=\"https://127.0.0.1:8443/api/org/{id}\" name=\"acme\""
        )));
    }

    #[test]
    fn a_finished_task_has_its_end_and_a_failed_one_its_error() {
        let mut state = State::new(Inventory::new("pvdc", &["gold".into()], "pool"));
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        state.fail_next.insert(
            crate::simulator::cloud_director::state::Operation::OrgCreate,
            "quota <exceeded>".into(),
        );
        let (_, task) = state
            .create_org(org_fields("acme", "Acme"), now, jiff::SignedDuration::from_secs(2))
            .unwrap();
        let later = now + jiff::SignedDuration::from_secs(3);
        let xml = super::task(&hrefs(), &state.tasks[&task], later);
        assert!(xml.contains("status=\"error\""), "{xml}");
        assert!(xml.contains("endTime=\"2027-01-15T08:00:02.000Z\""), "{xml}");
        assert!(xml.contains("message=\"quota &lt;exceeded&gt;\""), "{xml}");
        assert!(!xml.contains("task:cancel"));
    }

    #[test]
    fn errors_are_written_as_vcd_writes_them() {
        assert_eq!(
            error(400, "DUPLICATE_NAME", "The VCD entity acme already exists."),
            "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<Error xmlns=\"http://www.vmware.com/vcloud/v1.5\" \
             majorErrorCode=\"400\" minorErrorCode=\"DUPLICATE_NAME\" message=\"The VCD entity acme already exists.\" \
             stackTrace=\"com.vmware.vcloud.api.presentation.service.DUPLICATE_NAME: The VCD entity acme already exists.\"/>"
        );
    }
}
