//! The driver's decisions, without I/O: which API version to speak, which Cloud Director role a Navigator
//! role becomes, how big a VDC is, what an entity's state is, and what an error answer means.

use std::collections::BTreeMap;

use reqwest::{StatusCode, Url};

use crate::api::cloud_endpoint::CloudDirectorRoles;
use crate::endpoint::{DriverError, InstanceState, Resources};

/// The API versions this driver speaks: 37.x (Cloud Director 10.4) to 39.x (10.6), where organisations and
/// users are written through the legacy XML API. 40 and later (VCF Automation) use other paths.
pub const SPOKEN_MAJORS: std::ops::RangeInclusive<u32> = 37..=39;

fn parse_version(version: &str) -> Option<(u32, u32)> {
    let (major, minor) = version.trim().split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The version to use: the pinned one if the server offers it (not deprecated), else the highest version
/// the server offers (not deprecated) that this driver speaks. The error lists what the server offers.
pub fn choose_version(offered: &[(String, bool)], pinned: Option<&str>) -> Result<String, DriverError> {
    let usable = |(version, deprecated): &&(String, bool)| {
        !deprecated && parse_version(version).is_some_and(|(major, _)| SPOKEN_MAJORS.contains(&major))
    };
    let chosen = match pinned {
        Some(pin) => offered
            .iter()
            .filter(usable)
            .find(|(v, _)| v == pin)
            .map(|(v, _)| v.clone()),
        None => offered
            .iter()
            .filter(usable)
            .max_by_key(|(v, _)| parse_version(v))
            .map(|(v, _)| v.clone()),
    };
    chosen.ok_or_else(|| {
        let list: Vec<String> = offered
            .iter()
            .map(|(v, deprecated)| {
                if *deprecated {
                    format!("{v} (deprecated)")
                } else {
                    v.clone()
                }
            })
            .collect();
        let wanted = match pinned {
            Some(pin) => format!("API version {pin} (set in cloudDirector.apiVersion)"),
            None => "any API version from 37.0 to 39.x that is not deprecated".to_owned(),
        };
        DriverError::Unsupported {
            operation: format!("{wanted}; the server offers: {}", list.join(", ")),
        }
    })
}

/// The Navigator endpoint roles (what access grants ask the driver for), in the order of
/// [`CloudDirectorRoles`]' fields.
pub const ENDPOINT_ROLES: [&str; 3] = ["OrganizationAdministrator", "OrganizationUser", "BillingUser"];

/// The Cloud Director role of a Navigator endpoint role.
pub fn vcd_role<'a>(roles: &'a CloudDirectorRoles, endpoint_role: &str) -> Option<&'a str> {
    match endpoint_role {
        "OrganizationAdministrator" => Some(&roles.customer_administrator),
        "OrganizationUser" => Some(&roles.customer_user),
        "BillingUser" => Some(&roles.customer_billing_user),
        _ => None,
    }
}

/// The Navigator endpoint role a Cloud Director role stands for; a role outside the mapping is reported as
/// itself (so the user reads as not up to date and gets the mapped role).
pub fn endpoint_role(roles: &CloudDirectorRoles, vcd_role_name: &str) -> String {
    ENDPOINT_ROLES
        .iter()
        .find(|role| vcd_role(roles, role) == Some(vcd_role_name))
        .map_or_else(|| vcd_role_name.to_owned(), |role| (*role).to_owned())
}

/// A VDC's size in Cloud Director's units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VdcSize {
    pub cpu_mhz: u64,
    pub memory_mb: u64,
    pub storage_mb: u64,
    /// The speed of one vCPU.
    pub vcpu_mhz: u64,
}

const MB_PER_GIB: u64 = 1024;

/// A subscription's resources as a VDC: vCPUs at the endpoint's vCPU speed, GiB as MB.
pub fn vdc_size(resources: &Resources, vcpu_mhz: u64) -> VdcSize {
    VdcSize {
        cpu_mhz: u64::from(resources.vcpu) * vcpu_mhz,
        memory_mb: u64::from(resources.memory_gib) * MB_PER_GIB,
        storage_mb: u64::from(resources.storage_gib) * MB_PER_GIB,
        vcpu_mhz,
    }
}

/// A VDC's size as resources (the inverse of [`vdc_size`]; a size set by someone else is rounded down).
pub fn resources(size: &VdcSize) -> Resources {
    let narrow = |value: u64| u32::try_from(value).unwrap_or(u32::MAX);
    Resources {
        vcpu: narrow(size.cpu_mhz.checked_div(size.vcpu_mhz).unwrap_or(0)),
        memory_gib: narrow(size.memory_mb / MB_PER_GIB),
        storage_gib: narrow(size.storage_mb / MB_PER_GIB),
    }
}

const DESCRIPTION_PREFIX: &str = "navigator:";

/// The VDC description that records what Cloud Director has no field for: the service type the VDC was
/// made for and the subscription's parameters, as `navigator:serviceType=compute&region=eu-west`.
pub fn vdc_description(service_type: &str, parameters: &BTreeMap<String, String>) -> String {
    let mut encoded = Url::parse("navigator:x").expect("a constant URL");
    {
        let mut pairs = encoded.query_pairs_mut();
        pairs.append_pair("serviceType", service_type);
        for (key, value) in parameters {
            pairs.append_pair(key, value);
        }
    }
    format!("{DESCRIPTION_PREFIX}{}", encoded.query().unwrap_or_default())
}

/// The service type and parameters a VDC description records, if Navigator wrote it.
pub fn read_description(description: &str) -> Option<(String, BTreeMap<String, String>)> {
    let query = description.trim().strip_prefix(DESCRIPTION_PREFIX)?;
    let url = Url::parse(&format!("navigator:x?{query}")).ok()?;
    let mut service_type = None;
    let mut parameters = BTreeMap::new();
    for (key, value) in url.query_pairs() {
        if key == "serviceType" && service_type.is_none() {
            service_type = Some(value.into_owned());
        } else {
            parameters.insert(key.into_owned(), value.into_owned());
        }
    }
    Some((service_type.filter(|s| !s.is_empty())?, parameters))
}

/// The service type a VDC description records.
pub fn service_type_of(description: &str) -> Option<String> {
    read_description(description).map(|(service_type, _)| service_type)
}

/// The kind of operation running on an entity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

/// How a Cloud Director task stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskState {
    Running,
    Succeeded,
    Failed(String),
}

/// A task's `status` (and its error, if it failed). Cloud Director's `aborted` and `canceled` end the
/// operation without its effect, as a failure does.
pub fn task_state(status: &str, error: Option<(&str, &str)>) -> TaskState {
    match status {
        "success" => TaskState::Succeeded,
        "error" | "aborted" | "canceled" => {
            let why = match error {
                Some((code, message)) if !code.is_empty() => format!("{message} ({code})"),
                Some((_, message)) => message.to_owned(),
                None => format!("the task ended {status}"),
            };
            TaskState::Failed(why)
        }
        _ => TaskState::Running,
    }
}

/// What an operation's name says it does (`vdcCreateVdc`, `vdcUpdateVdc`, `vdcDeleteVdc`, ...).
pub fn operation_of(operation_name: &str) -> Operation {
    let name = operation_name.to_ascii_lowercase();
    if name.contains("delete") {
        Operation::Delete
    } else if name.contains("create") {
        Operation::Create
    } else {
        Operation::Update
    }
}

/// The state a VDC is in while an operation runs on it.
pub fn in_progress_state(operation: Operation) -> InstanceState {
    match operation {
        Operation::Create => InstanceState::Provisioning,
        Operation::Update => InstanceState::Updating,
        Operation::Delete => InstanceState::Deleting,
    }
}

/// The state of a VDC with no operation of this driver's running: from its `status` attribute and the
/// tasks still running on it.
pub fn vdc_state(status: i32, running: Option<Operation>) -> InstanceState {
    match (status, running) {
        (-1, _) => InstanceState::Failed,
        (_, Some(operation)) => in_progress_state(operation),
        (0, None) => InstanceState::Provisioning,
        _ => InstanceState::Ready,
    }
}

/// Whether a task status means it is still running.
pub fn is_running(status: &str) -> bool {
    matches!(task_state(status, None), TaskState::Running)
}

/// What an error answer means, with `code` the minor error code and `message` Cloud Director's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 401: the session expired (log in again once) or the credentials are wrong.
    Unauthenticated,
    /// 403, or 404: Cloud Director's "not found" (it does not tell missing from forbidden).
    NotFound,
    /// 400 DUPLICATE_NAME: the entity exists already (adopt it).
    DuplicateName,
    /// 400 BUSY_ENTITY: another operation runs on the entity (retry with backoff).
    Busy,
    /// 406: the version asked for is not served (negotiate again).
    VersionNotServed,
    /// 429 or 503 with Retry-After.
    Throttled,
    /// 5xx, 408: retry.
    Unavailable,
    /// Any other 4xx: permanent until something changes.
    Invalid,
}

pub fn classify(status: StatusCode, code: &str, has_retry_after: bool) -> Refusal {
    match status.as_u16() {
        401 => Refusal::Unauthenticated,
        403 | 404 => Refusal::NotFound,
        406 => Refusal::VersionNotServed,
        429 => Refusal::Throttled,
        503 if has_retry_after => Refusal::Throttled,
        408 => Refusal::Unavailable,
        _ if code == "DUPLICATE_NAME" => Refusal::DuplicateName,
        _ if code == "BUSY_ENTITY" => Refusal::Busy,
        s if s >= 500 => Refusal::Unavailable,
        _ => Refusal::Invalid,
    }
}

/// A FIQL `field==value` filter, or `None` when the value holds a character FIQL gives a meaning to (the
/// caller then lists without a filter and matches by itself, as VMware's Go SDK does). The URL encoding is
/// the query builder's.
pub fn fiql_equals(field: &str, value: &str) -> Option<String> {
    const SPECIAL: &[char] = &[',', ';', '(', ')', '=', '!', '~', '<', '>', '*', '\'', '"'];
    (!value.is_empty() && !value.contains(SPECIAL)).then(|| format!("{field}=={value}"))
}

/// The uuid at the end of a Cloud Director id (`urn:vcloud:org:<uuid>`) or href (`.../org/<uuid>`).
pub fn uuid_of(id_or_href: &str) -> &str {
    let tail = id_or_href.rsplit(['/', ':']).next().unwrap_or(id_or_href);
    tail.split(['?', '#']).next().unwrap_or(tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(list: &[(&str, bool)]) -> Vec<(String, bool)> {
        list.iter().map(|(v, d)| ((*v).to_owned(), *d)).collect()
    }

    #[test]
    fn the_highest_version_both_speak_is_chosen() {
        let server = offered(&[
            ("36.3", true),
            ("37.0", false),
            ("38.1", false),
            ("38.0", false),
            ("40.0", false),
        ]);
        assert_eq!(choose_version(&server, None).unwrap(), "38.1");
        assert_eq!(choose_version(&server, Some("37.0")).unwrap(), "37.0");
        // 37.10 is newer than 37.9: versions compare as numbers.
        let minors = offered(&[("37.9", false), ("37.10", false)]);
        assert_eq!(choose_version(&minors, None).unwrap(), "37.10");
        // A deprecated version is not used, even if it is the highest.
        let deprecated = offered(&[("37.0", false), ("38.0", true)]);
        assert_eq!(choose_version(&deprecated, None).unwrap(), "37.0");
    }

    #[test]
    fn no_common_version_lists_what_the_server_offers() {
        let server = offered(&[("35.0", false), ("36.3", true), ("40.0", false)]);
        let error = choose_version(&server, None).unwrap_err().to_string();
        assert!(error.contains("35.0, 36.3 (deprecated), 40.0"), "{error}");
        let pinned = choose_version(&offered(&[("38.0", false)]), Some("38.1"))
            .unwrap_err()
            .to_string();
        assert!(pinned.contains("38.1") && pinned.contains("offers: 38.0"), "{pinned}");
    }

    #[test]
    fn roles_map_both_ways() {
        let roles = CloudDirectorRoles::default();
        assert_eq!(
            vcd_role(&roles, "OrganizationAdministrator"),
            Some("Organization Administrator")
        );
        assert_eq!(vcd_role(&roles, "OrganizationUser"), Some("vApp Author"));
        assert_eq!(vcd_role(&roles, "BillingUser"), Some("Console Access Only"));
        assert_eq!(vcd_role(&roles, "Nobody"), None);
        for role in ENDPOINT_ROLES {
            assert_eq!(endpoint_role(&roles, vcd_role(&roles, role).unwrap()), role);
        }
        assert_eq!(endpoint_role(&roles, "Catalog Author"), "Catalog Author");
        let custom = CloudDirectorRoles {
            customer_user: "Tenant Operator".into(),
            ..CloudDirectorRoles::default()
        };
        assert_eq!(vcd_role(&custom, "OrganizationUser"), Some("Tenant Operator"));
        assert_eq!(endpoint_role(&custom, "Tenant Operator"), "OrganizationUser");
    }

    #[test]
    fn resources_become_a_vdc_size_and_back() {
        let resources_in = Resources {
            vcpu: 4,
            memory_gib: 16,
            storage_gib: 100,
        };
        let size = vdc_size(&resources_in, 2000);
        assert_eq!(
            size,
            VdcSize {
                cpu_mhz: 8000,
                memory_mb: 16384,
                storage_mb: 102400,
                vcpu_mhz: 2000
            }
        );
        assert_eq!(resources(&size), resources_in);
        // A VDC sized by someone else reads as whole units, rounded down.
        let odd = VdcSize {
            cpu_mhz: 4500,
            memory_mb: 1500,
            storage_mb: 0,
            vcpu_mhz: 2000,
        };
        assert_eq!(
            resources(&odd),
            Resources {
                vcpu: 2,
                memory_gib: 1,
                storage_gib: 0
            }
        );
        assert_eq!(resources(&VdcSize { vcpu_mhz: 0, ..odd }).vcpu, 0);
    }

    #[test]
    fn the_service_type_and_parameters_travel_in_the_description() {
        let parameters = BTreeMap::from([("region".to_owned(), "eu west&1".to_owned())]);
        let description = vdc_description("kubernetes", &parameters);
        assert!(
            description.starts_with("navigator:serviceType=kubernetes&"),
            "{description}"
        );
        assert_eq!(
            read_description(&description),
            Some(("kubernetes".to_owned(), parameters))
        );
        assert_eq!(
            service_type_of(&vdc_description("compute", &BTreeMap::new())).as_deref(),
            Some("compute")
        );
        assert_eq!(service_type_of("made by hand"), None);
        assert_eq!(service_type_of("navigator:serviceType="), None);
    }

    #[test]
    fn tasks_and_vdcs_have_states() {
        assert_eq!(task_state("running", None), TaskState::Running);
        assert_eq!(task_state("queued", None), TaskState::Running);
        assert_eq!(task_state("success", None), TaskState::Succeeded);
        assert_eq!(
            task_state("error", Some(("BAD_REQUEST", "no capacity"))),
            TaskState::Failed("no capacity (BAD_REQUEST)".into())
        );
        assert_eq!(
            task_state("aborted", None),
            TaskState::Failed("the task ended aborted".into())
        );
        assert_eq!(operation_of("vdcDeleteVdc"), Operation::Delete);
        assert_eq!(operation_of("vdcCreate"), Operation::Create);
        assert_eq!(operation_of("vdcUpdateVdc"), Operation::Update);
        assert_eq!(vdc_state(1, None), InstanceState::Ready);
        assert_eq!(vdc_state(0, None), InstanceState::Provisioning);
        assert_eq!(vdc_state(1, Some(Operation::Update)), InstanceState::Updating);
        assert_eq!(vdc_state(-1, Some(Operation::Update)), InstanceState::Failed);
    }

    #[test]
    fn error_answers_are_classified_the_cloud_director_way() {
        let case = |status: u16, code: &str| classify(StatusCode::from_u16(status).unwrap(), code, false);
        assert_eq!(case(403, "ACCESS_TO_RESOURCE_IS_FORBIDDEN"), Refusal::NotFound);
        assert_eq!(case(400, "DUPLICATE_NAME"), Refusal::DuplicateName);
        assert_eq!(case(400, "BUSY_ENTITY"), Refusal::Busy);
        assert_eq!(case(400, "BAD_REQUEST"), Refusal::Invalid);
        assert_eq!(case(406, "NOT_ACCEPTABLE"), Refusal::VersionNotServed);
        assert_eq!(case(401, ""), Refusal::Unauthenticated);
        assert_eq!(case(502, ""), Refusal::Unavailable);
        assert_eq!(case(429, ""), Refusal::Throttled);
        assert_eq!(classify(StatusCode::SERVICE_UNAVAILABLE, "", true), Refusal::Throttled);
    }

    #[test]
    fn filters_are_left_out_for_values_fiql_would_misread() {
        assert_eq!(fiql_equals("name", "vApp Author").as_deref(), Some("name==vApp Author"));
        assert_eq!(fiql_equals("name", "a,b"), None);
        assert_eq!(fiql_equals("name", "x;y==z"), None);
        assert_eq!(fiql_equals("name", ""), None);
    }

    #[test]
    fn uuids_are_cut_from_ids_and_hrefs() {
        assert_eq!(uuid_of("urn:vcloud:org:1a2b"), "1a2b");
        assert_eq!(uuid_of("https://h/api/admin/org/1a2b"), "1a2b");
        assert_eq!(uuid_of("https://h/api/task/t1?x=y"), "t1");
    }
}
