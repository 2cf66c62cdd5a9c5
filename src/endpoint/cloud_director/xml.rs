//! Cloud Director's legacy XML API: the documents the driver reads (parsed with quick-xml's serde support,
//! which matches elements by local name and ignores what the driver does not need) and the ones it sends
//! (written by hand, because Cloud Director insists on the schema's element order).

use std::collections::BTreeMap;

use quick_xml::escape::escape;
use quick_xml::events::Event;
use serde::Deserialize;

use super::rules::VdcSize;
use crate::api::cloud_endpoint::AllocationModel;

/// The vCloud namespace of every legacy document.
pub const NS: &str = "http://www.vmware.com/vcloud/v1.5";

pub const ORG_CONTENT_TYPE: &str = "application/vnd.vmware.admin.organization+xml";
pub const USER_CONTENT_TYPE: &str = "application/vnd.vmware.admin.user+xml";
pub const CREATE_VDC_CONTENT_TYPE: &str = "application/vnd.vmware.admin.createVdcParams+xml";
pub const VDC_CONTENT_TYPE: &str = "application/vnd.vmware.admin.vdc+xml";
pub const STORAGE_PROFILE_CONTENT_TYPE: &str = "application/vnd.vmware.admin.vdcstorageProfile+xml";

pub fn parse<T: for<'de> Deserialize<'de>>(what: &str, body: &str) -> Result<T, String> {
    quick_xml::de::from_str(body).map_err(|e| format!("Cloud Director's {what} is not the XML expected: {e}"))
}

/// `GET /api/versions`.
#[derive(Debug, Deserialize)]
pub struct SupportedVersions {
    #[serde(rename = "VersionInfo", default)]
    pub versions: Vec<VersionInfo>,
}

#[derive(Debug, Deserialize)]
pub struct VersionInfo {
    #[serde(rename = "@deprecated", default)]
    pub deprecated: bool,
    #[serde(rename = "Version")]
    pub version: String,
}

/// A reference to another entity (`<Role href name/>`, `<UserReference .../>`).
#[derive(Debug, Default, Deserialize)]
pub struct Reference {
    #[serde(rename = "@href", default)]
    pub href: String,
    #[serde(rename = "@name", default)]
    pub name: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct Tasks {
    #[serde(rename = "Task", default)]
    pub tasks: Vec<Task>,
}

/// `GET /api/task/{id}`, or a task embedded in an entity.
#[derive(Debug, Deserialize)]
pub struct Task {
    #[serde(rename = "@href", default)]
    pub href: String,
    #[serde(rename = "@status", default)]
    pub status: String,
    #[serde(rename = "@operationName", default)]
    pub operation_name: String,
    #[serde(rename = "Error")]
    pub error: Option<ErrorXml>,
}

/// Cloud Director's legacy error document (also the `<Error>` of a failed task).
#[derive(Debug, Deserialize)]
pub struct ErrorXml {
    #[serde(rename = "@majorErrorCode", default)]
    pub major: String,
    #[serde(rename = "@minorErrorCode", default)]
    pub minor: String,
    #[serde(rename = "@message", default)]
    pub message: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct UserReferences {
    #[serde(rename = "UserReference", default)]
    pub users: Vec<Reference>,
}

/// `GET /api/admin/org/{id}` (and the answer of `POST /api/admin/orgs`).
#[derive(Debug, Deserialize)]
pub struct AdminOrg {
    #[serde(rename = "@href", default)]
    pub href: String,
    #[serde(rename = "@id", default)]
    pub id: String,
    #[serde(rename = "@name")]
    pub name: String,
    #[serde(rename = "FullName", default)]
    pub full_name: String,
    #[serde(rename = "IsEnabled", default)]
    pub is_enabled: bool,
    #[serde(rename = "Users", default)]
    pub users: UserReferences,
    #[serde(rename = "Tasks", default)]
    pub tasks: Tasks,
}

/// `GET /api/admin/user/{id}`.
#[derive(Debug, Deserialize)]
pub struct User {
    #[serde(rename = "@href", default)]
    pub href: String,
    #[serde(rename = "@id", default)]
    pub id: String,
    #[serde(rename = "@name")]
    pub name: String,
    #[serde(rename = "EmailAddress", default)]
    pub email: String,
    #[serde(rename = "IsEnabled", default)]
    pub is_enabled: bool,
    #[serde(rename = "Role", default)]
    pub role: Reference,
    #[serde(rename = "Tasks", default)]
    pub tasks: Tasks,
}

#[derive(Debug, Default, Deserialize)]
pub struct Capacity {
    #[serde(rename = "Allocated", default)]
    pub allocated: u64,
    #[serde(rename = "Limit", default)]
    pub limit: u64,
}

impl Capacity {
    /// What the VDC was sized to: pay-as-you-go VDCs carry it in the limit only.
    pub fn size(&self) -> u64 {
        if self.allocated > 0 { self.allocated } else { self.limit }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ComputeCapacity {
    #[serde(rename = "Cpu", default)]
    pub cpu: Capacity,
    #[serde(rename = "Memory", default)]
    pub memory: Capacity,
}

#[derive(Debug, Default, Deserialize)]
pub struct StorageProfileReferences {
    #[serde(rename = "VdcStorageProfile", default)]
    pub profiles: Vec<Reference>,
}

/// `GET /api/admin/vdc/{id}` (and the answer of `POST .../vdcsparams`).
#[derive(Debug, Deserialize)]
pub struct AdminVdc {
    #[serde(rename = "@href", default)]
    pub href: String,
    #[serde(rename = "@id", default)]
    pub id: String,
    #[serde(rename = "@name")]
    pub name: String,
    /// `0` not ready (being created), `1` ready, `-1` could not be created.
    #[serde(rename = "@status", default = "ready")]
    pub status: i32,
    #[serde(rename = "Description", default)]
    pub description: String,
    #[serde(rename = "AllocationModel", default)]
    pub allocation_model: String,
    #[serde(rename = "ComputeCapacity", default)]
    pub compute: ComputeCapacity,
    #[serde(rename = "VdcStorageProfiles", default)]
    pub storage_profiles: StorageProfileReferences,
    #[serde(rename = "IsEnabled", default)]
    pub is_enabled: bool,
    #[serde(rename = "VCpuInMhz2")]
    pub vcpu_mhz2: Option<u64>,
    #[serde(rename = "VCpuInMhz")]
    pub vcpu_mhz: Option<u64>,
    #[serde(rename = "Tasks", default)]
    pub tasks: Tasks,
}

fn ready() -> i32 {
    1
}

/// One page of `GET /api/query`: the attributes of each record, and the paging figures.
#[derive(Debug, Default, PartialEq)]
pub struct QueryPage {
    pub total: u64,
    pub page: u64,
    pub page_size: u64,
    pub records: Vec<BTreeMap<String, String>>,
}

impl QueryPage {
    pub fn has_more(&self) -> bool {
        self.page_size > 0 && self.page * self.page_size < self.total
    }
}

/// Reads a `QueryResultRecords` document: every element whose name ends in `Record` is a record, whatever
/// the query's type (`AdminVdcRecord`, `VMWProviderVdcRecord`, ...).
pub fn parse_query(body: &str) -> Result<QueryPage, String> {
    let mut reader = quick_xml::Reader::from_str(body);
    let mut page = QueryPage::default();
    let bad = |e: &dyn std::fmt::Display| format!("Cloud Director's query answer is not the XML expected: {e}");
    loop {
        let element = match reader.read_event().map_err(|e| bad(&e))? {
            Event::Start(e) | Event::Empty(e) => e,
            Event::Eof => break,
            _ => continue,
        };
        let local = element.local_name().as_ref().to_owned();
        let mut attributes = BTreeMap::new();
        for attribute in element.attributes() {
            let attribute = attribute.map_err(|e| bad(&e))?;
            let key = attribute.key.local_name().as_ref().to_owned();
            let value = attribute
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|e| bad(&e))?
                .into_owned();
            attributes.insert(key, value);
        }
        if local == "QueryResultRecords" {
            let number = |key: &str| attributes.get(key).and_then(|v| v.parse().ok()).unwrap_or(0);
            page.total = number("total");
            page.page = number("page");
            page.page_size = number("pageSize");
        } else if local.ends_with("Record") {
            page.records.push(attributes);
        }
    }
    Ok(page)
}

/// The body of `POST /api/admin/orgs`.
pub fn new_org(name: &str, full_name: &str, enabled: bool) -> String {
    format!(
        r#"<AdminOrg xmlns="{NS}" name="{}"><FullName>{}</FullName><IsEnabled>{enabled}</IsEnabled><Settings><OrgGeneralSettings/></Settings></AdminOrg>"#,
        escape(name),
        escape(full_name)
    )
}

/// The body of `POST /api/admin/org/{id}/users` and `PUT /api/admin/user/{id}`. The password is only sent
/// on create (Cloud Director keeps it unchanged when absent).
pub fn user(name: &str, email: &str, role_href: &str, password: Option<&str>) -> String {
    let password = password
        .map(|p| format!("<Password>{}</Password>", escape(p)))
        .unwrap_or_default();
    format!(
        r#"<User xmlns="{NS}" name="{}"><EmailAddress>{}</EmailAddress><IsEnabled>true</IsEnabled><ProviderType>INTEGRATED</ProviderType><StoredVmQuota>0</StoredVmQuota><DeployedVmQuota>0</DeployedVmQuota><Role href="{}"/>{password}</User>"#,
        escape(name),
        escape(email),
        escape(role_href)
    )
}

/// The hrefs a new VDC refers to, looked up by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VdcPlacement {
    pub provider_vdc: String,
    pub storage_profile: String,
    pub network_pool: Option<String>,
}

fn allocation_model(model: AllocationModel) -> &'static str {
    match model {
        AllocationModel::Flex => "Flex",
        AllocationModel::AllocationVApp => "AllocationVApp",
        AllocationModel::AllocationPool => "AllocationPool",
        AllocationModel::ReservationPool => "ReservationPool",
    }
}

/// `<ComputeCapacity>` in the schema's order; a pay-as-you-go VDC carries its size as the limit only.
fn compute_capacity(size: &VdcSize, model: AllocationModel) -> String {
    let allocated = |value: u64| {
        if model == AllocationModel::AllocationVApp {
            0
        } else {
            value
        }
    };
    format!(
        "<ComputeCapacity><Cpu><Units>MHz</Units><Allocated>{}</Allocated><Limit>{}</Limit></Cpu>\
         <Memory><Units>MB</Units><Allocated>{}</Allocated><Limit>{}</Limit></Memory></ComputeCapacity>",
        allocated(size.cpu_mhz),
        size.cpu_mhz,
        allocated(size.memory_mb),
        size.memory_mb
    )
}

/// What Flex VDCs require in addition (Cloud Director refuses a Flex VDC without them).
fn flex_fields(model: AllocationModel) -> &'static str {
    if model == AllocationModel::Flex {
        "<IsElastic>false</IsElastic><IncludeMemoryOverhead>true</IncludeMemoryOverhead>"
    } else {
        ""
    }
}

/// The body of `POST /api/admin/org/{id}/vdcsparams`, elements in `CreateVdcParams` order.
pub fn create_vdc(
    name: &str,
    description: &str,
    size: &VdcSize,
    model: AllocationModel,
    placement: &VdcPlacement,
) -> String {
    let network_pool = placement
        .network_pool
        .as_ref()
        .map(|href| format!(r#"<NetworkPoolReference href="{}"/>"#, escape(href)))
        .unwrap_or_default();
    format!(
        r#"<CreateVdcParams xmlns="{NS}" name="{}"><Description>{}</Description><AllocationModel>{}</AllocationModel>{}<NicQuota>0</NicQuota><NetworkQuota>0</NetworkQuota><VmQuota>0</VmQuota><IsEnabled>true</IsEnabled><VdcStorageProfile><Enabled>true</Enabled><Units>MB</Units><Limit>{}</Limit><Default>true</Default><ProviderVdcStorageProfile href="{}"/></VdcStorageProfile><VCpuInMhz>{}</VCpuInMhz><IsThinProvision>true</IsThinProvision>{network_pool}<ProviderVdcReference href="{}"/><UsesFastProvisioning>false</UsesFastProvisioning>{}</CreateVdcParams>"#,
        escape(name),
        escape(description),
        allocation_model(model),
        compute_capacity(size, model),
        size.storage_mb,
        escape(&placement.storage_profile),
        size.vcpu_mhz,
        escape(&placement.provider_vdc),
        flex_fields(model),
    )
}

/// The body of `PUT /api/admin/vdc/{id}`: the VDC's settings with the new compute capacity.
pub fn update_vdc(name: &str, description: &str, size: &VdcSize, model: AllocationModel) -> String {
    format!(
        r#"<AdminVdc xmlns="{NS}" name="{}"><Description>{}</Description><AllocationModel>{}</AllocationModel>{}<NicQuota>0</NicQuota><NetworkQuota>0</NetworkQuota><VmQuota>0</VmQuota><IsEnabled>true</IsEnabled><VCpuInMhz2>{}</VCpuInMhz2>{}</AdminVdc>"#,
        escape(name),
        escape(description),
        allocation_model(model),
        compute_capacity(size, model),
        size.vcpu_mhz,
        flex_fields(model),
    )
}

/// The body of `PUT /api/admin/vdcStorageProfile/{id}`: a new limit on the VDC's storage profile.
pub fn storage_profile(limit_mb: u64) -> String {
    format!(
        r#"<AdminVdcStorageProfile xmlns="{NS}"><Enabled>true</Enabled><Units>MB</Units><Limit>{limit_mb}</Limit><Default>true</Default></AdminVdcStorageProfile>"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_with_their_deprecation() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
            <SupportedVersions xmlns="http://www.vmware.com/vcloud/versions">
              <VersionInfo deprecated="true"><Version>36.3</Version><LoginUrl>https://h/api/sessions</LoginUrl></VersionInfo>
              <VersionInfo deprecated="false"><Version>38.0</Version><LoginUrl>https://h/cloudapi/1.0.0/sessions</LoginUrl></VersionInfo>
              <VersionInfo><Version>38.1</Version></VersionInfo>
            </SupportedVersions>"#;
        let versions: SupportedVersions = parse("version list", body).unwrap();
        let read: Vec<(bool, &str)> = versions
            .versions
            .iter()
            .map(|v| (v.deprecated, v.version.as_str()))
            .collect();
        assert_eq!(read, vec![(true, "36.3"), (false, "38.0"), (false, "38.1")]);
    }

    #[test]
    fn a_created_org_carries_its_task() {
        let body = r#"<AdminOrg xmlns="http://www.vmware.com/vcloud/v1.5" name="acme" id="urn:vcloud:org:1a" href="https://h/api/admin/org/1a">
              <Tasks><Task href="https://h/api/task/t1" status="running" operationName="orgCreate"><Owner href="https://h/api/admin/org/1a"/></Task></Tasks>
              <FullName>Acme &amp; Co</FullName><IsEnabled>true</IsEnabled><Settings/>
              <Users><UserReference name="bob" href="https://h/api/admin/user/u1"/></Users><Catalogs/><Vdcs/><Networks/><RoleReferences/>
            </AdminOrg>"#;
        let org: AdminOrg = parse("organisation", body).unwrap();
        assert_eq!(
            (org.name.as_str(), org.full_name.as_str(), org.is_enabled),
            ("acme", "Acme & Co", true)
        );
        assert_eq!(org.tasks.tasks[0].href, "https://h/api/task/t1");
        assert_eq!(org.users.users[0].name, "bob");
    }

    #[test]
    fn a_failed_task_carries_cloud_directors_error() {
        let body = r#"<Task xmlns="http://www.vmware.com/vcloud/v1.5" status="error" operationName="vdcCreate" href="https://h/api/task/t2">
              <Owner href="https://h/api/admin/vdc/v1" type="application/vnd.vmware.admin.vdc+xml"/>
              <Error majorErrorCode="500" minorErrorCode="INTERNAL_SERVER_ERROR" message="No resource pool with enough capacity"/>
            </Task>"#;
        let task: Task = parse("task", body).unwrap();
        assert_eq!(task.status, "error");
        assert_eq!(task.error.unwrap().message, "No resource pool with enough capacity");
    }

    #[test]
    fn a_vdc_is_read_with_its_capacity_and_state() {
        let body = r#"<AdminVdc xmlns="http://www.vmware.com/vcloud/v1.5" status="0" name="web" id="urn:vcloud:vdc:v1" href="https://h/api/admin/vdc/v1">
              <Description>navigator:serviceType=compute</Description><AllocationModel>Flex</AllocationModel>
              <ComputeCapacity><Cpu><Units>MHz</Units><Allocated>4000</Allocated><Limit>4000</Limit><Used>0</Used></Cpu>
                <Memory><Units>MB</Units><Allocated>8192</Allocated><Limit>8192</Limit></Memory></ComputeCapacity>
              <VdcStorageProfiles><VdcStorageProfile href="https://h/api/admin/vdcStorageProfile/s1" name="gold"/></VdcStorageProfiles>
              <IsEnabled>true</IsEnabled><VCpuInMhz2>2000</VCpuInMhz2>
            </AdminVdc>"#;
        let vdc: AdminVdc = parse("VDC", body).unwrap();
        assert_eq!(vdc.status, 0);
        assert_eq!((vdc.compute.cpu.size(), vdc.compute.memory.size()), (4000, 8192));
        assert_eq!(vdc.vcpu_mhz2, Some(2000));
        assert_eq!(vdc.storage_profiles.profiles[0].name, "gold");
        let payg: Capacity = parse("capacity", "<Cpu><Allocated>0</Allocated><Limit>3000</Limit></Cpu>").unwrap();
        assert_eq!(payg.size(), 3000);
    }

    #[test]
    fn query_records_and_paging_are_read_whatever_the_type() {
        let body = r#"<QueryResultRecords xmlns="http://www.vmware.com/vcloud/v1.5" total="30" page="1" pageSize="25">
              <Link rel="nextPage" href="https://h/api/query?page=2"/>
              <AdminVdcRecord name="web" orgName="acme" href="https://h/api/vdc/v1" cpuAllocationMhz="4000"/>
              <VMWProviderVdcRecord name="pvdc" href="https://h/api/admin/extension/providervdc/p1"/>
            </QueryResultRecords>"#;
        let page = parse_query(body).unwrap();
        assert_eq!((page.total, page.page, page.page_size), (30, 1, 25));
        assert!(page.has_more());
        assert_eq!(page.records.len(), 2);
        assert_eq!(page.records[0]["orgName"], "acme");
        assert_eq!(page.records[1]["href"], "https://h/api/admin/extension/providervdc/p1");
        assert!(
            !QueryPage {
                total: 25,
                page: 1,
                page_size: 25,
                records: vec![]
            }
            .has_more()
        );
    }

    #[test]
    fn documents_sent_are_escaped_and_in_schema_order() {
        let org = new_org("acme", "Acme <&> Co", false);
        assert!(
            org.contains("<FullName>Acme &lt;&amp;&gt; Co</FullName><IsEnabled>false</IsEnabled>"),
            "{org}"
        );
        let user = user("bob", "bob@example.com", "https://h/api/admin/role/r1", Some("p\"w<"));
        let order = [
            "<EmailAddress>",
            "<IsEnabled>",
            "<ProviderType>",
            "<StoredVmQuota>",
            "<Role ",
            "<Password>",
        ];
        let positions: Vec<usize> = order.iter().map(|tag| user.find(tag).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{user}");
        assert!(user.contains("<Password>p&quot;w&lt;</Password>"), "{user}");
    }

    #[test]
    fn a_vdc_request_follows_create_vdc_params() {
        let size = VdcSize {
            cpu_mhz: 4000,
            memory_mb: 8192,
            storage_mb: 51200,
            vcpu_mhz: 2000,
        };
        let placement = VdcPlacement {
            provider_vdc: "https://h/api/admin/providervdc/p1".into(),
            storage_profile: "https://h/api/admin/pvdcStorageProfile/s1".into(),
            network_pool: None,
        };
        let flex = create_vdc(
            "web",
            "navigator:serviceType=compute",
            &size,
            AllocationModel::Flex,
            &placement,
        );
        let order = [
            "<Description>",
            "<AllocationModel>Flex",
            "<ComputeCapacity>",
            "<NicQuota>",
            "<IsEnabled>",
            "<VdcStorageProfile>",
            "<VCpuInMhz>",
            "<ProviderVdcReference",
            "<IsElastic>",
            "<IncludeMemoryOverhead>",
        ];
        let positions: Vec<usize> = order.iter().map(|tag| flex.find(tag).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{flex}");
        assert!(flex.contains("<Limit>51200</Limit>"));
        assert!(!flex.contains("NetworkPoolReference"));
        let payg = create_vdc("web", "", &size, AllocationModel::AllocationVApp, &placement);
        assert!(payg.contains("<Allocated>0</Allocated><Limit>4000</Limit>"), "{payg}");
        assert!(!payg.contains("IsElastic"));
    }
}
