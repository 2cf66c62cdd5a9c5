//! What the simulated cloud offers, and how it meters it.
//!
//! Metering is deterministic: an instance is billed for the resources it had while it was provisioned
//! (Ready or Updating), from the moment provisioning finished until the moment its deletion was requested.
//! A change of resources is billed from the moment the update finishes. Quantities are exact to the
//! millisecond and rounded half-even to six decimal places (1 ms is about 0.0000003 hours).

use jiff::Timestamp;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::endpoint::{MetricInfo, Resources, RoleInfo, ServiceTypeInfo};

/// The decimal places of usage quantities.
pub const QUANTITY_DECIMALS: u32 = 6;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    Vcpu,
    MemoryGib,
    StorageGib,
}

impl Resource {
    fn of(self, resources: &Resources) -> u32 {
        match self {
            Resource::Vcpu => resources.vcpu,
            Resource::MemoryGib => resources.memory_gib,
            Resource::StorageGib => resources.storage_gib,
        }
    }

    fn field(self) -> &'static str {
        match self {
            Resource::Vcpu => "vcpu",
            Resource::MemoryGib => "memoryGiB",
            Resource::StorageGib => "storageGiB",
        }
    }
}

#[derive(Debug)]
pub struct Metric {
    pub name: &'static str,
    pub unit: &'static str,
    /// The resource that, multiplied by hours, gives the metric.
    pub resource: Resource,
}

#[derive(Debug)]
pub struct ServiceType {
    pub name: &'static str,
    pub description: &'static str,
    pub metrics: &'static [Metric],
    /// Allowed range of each resource, inclusive: (vcpu, memoryGiB, storageGiB).
    pub limits: [(Resource, u32, u32); 3],
}

const VCPU_HOURS: Metric = Metric {
    name: "vcpu-hours",
    unit: "vCPU-hour",
    resource: Resource::Vcpu,
};
const MEMORY_GIB_HOURS: Metric = Metric {
    name: "memory-gib-hours",
    unit: "GiB-hour",
    resource: Resource::MemoryGib,
};
const STORAGE_GIB_HOURS: Metric = Metric {
    name: "storage-gib-hours",
    unit: "GiB-hour",
    resource: Resource::StorageGib,
};

/// The service types the simulator offers.
pub const CATALOG: &[ServiceType] = &[
    ServiceType {
        name: "compute",
        description: "Virtual machines: vCPUs, memory and block storage",
        metrics: &[VCPU_HOURS, MEMORY_GIB_HOURS, STORAGE_GIB_HOURS],
        limits: [
            (Resource::Vcpu, 1, 256),
            (Resource::MemoryGib, 1, 2048),
            (Resource::StorageGib, 0, 65_536),
        ],
    },
    ServiceType {
        name: "kubernetes",
        description: "A managed Kubernetes cluster sized by its worker capacity",
        metrics: &[VCPU_HOURS, MEMORY_GIB_HOURS, STORAGE_GIB_HOURS],
        limits: [
            (Resource::Vcpu, 2, 1024),
            (Resource::MemoryGib, 4, 8192),
            (Resource::StorageGib, 0, 65_536),
        ],
    },
    ServiceType {
        name: "object-storage",
        description: "An S3-compatible bucket with a storage quota",
        metrics: &[STORAGE_GIB_HOURS],
        limits: [
            (Resource::Vcpu, 0, 0),
            (Resource::MemoryGib, 0, 0),
            (Resource::StorageGib, 1, 1_048_576),
        ],
    },
];

/// The roles a user can hold in an organisation.
pub const ROLES: &[(&str, &str)] = &[
    (
        "OrganizationAdministrator",
        "Manages the organisation's users and services",
    ),
    ("OrganizationUser", "Uses the organisation's services"),
    ("BillingUser", "Reads the organisation's usage and bills"),
];

pub fn service_type(name: &str) -> Option<&'static ServiceType> {
    CATALOG.iter().find(|t| t.name == name)
}

pub fn catalog_info() -> Vec<ServiceTypeInfo> {
    CATALOG
        .iter()
        .map(|t| ServiceTypeInfo {
            name: t.name.into(),
            description: t.description.into(),
            metrics: t
                .metrics
                .iter()
                .map(|m| MetricInfo {
                    name: m.name.into(),
                    unit: m.unit.into(),
                })
                .collect(),
        })
        .collect()
}

pub fn roles_info() -> Vec<RoleInfo> {
    ROLES
        .iter()
        .map(|(name, description)| RoleInfo {
            name: (*name).into(),
            description: (*description).into(),
        })
        .collect()
}

/// Checks resources against the service type's ranges; the error names the field.
pub fn check_resources(service: &ServiceType, resources: &Resources) -> Result<(), String> {
    for (resource, min, max) in service.limits {
        let value = resource.of(resources);
        if value < min || value > max {
            return Err(if min == max {
                format!(
                    "resources.{} must be {min} for service type {}, not {value}",
                    resource.field(),
                    service.name
                )
            } else {
                format!(
                    "resources.{} must be between {min} and {max} for service type {}, not {value}",
                    resource.field(),
                    service.name
                )
            });
        }
    }
    Ok(())
}

/// From `from` on, the instance is billed for `resources` (`None`: not billed, e.g. failed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Segment {
    pub from: Timestamp,
    pub resources: Option<Resources>,
}

/// The billing history of one instance (kept after it is deleted, so past windows can be metered).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meter {
    pub instance: String,
    pub instance_id: String,
    pub service_type: String,
    /// In order of `from`.
    pub segments: Vec<Segment>,
    /// When deletion was requested: billing stops there.
    pub end: Option<Timestamp>,
}

impl Meter {
    /// Adds a segment, keeping them ordered even if the provisioning time changed between restarts.
    pub fn push(&mut self, mut segment: Segment) {
        if let Some(last) = self.segments.last() {
            segment.from = segment.from.max(last.from);
        }
        self.segments.push(segment);
    }

    /// The quantity of each of the service type's metrics in `[from, to)`, or `None` when the instance
    /// was not billed at all in the window.
    pub fn usage(&self, from: Timestamp, to: Timestamp) -> Option<Vec<(&'static Metric, Decimal)>> {
        let service = service_type(&self.service_type)?;
        let to = match self.end {
            Some(end) => to.min(end),
            None => to,
        };
        let (from_ms, to_ms) = (from.as_millisecond(), to.as_millisecond());
        if from_ms >= to_ms {
            return None;
        }
        // Resource × milliseconds, per resource.
        let mut totals = [0i128; 3];
        let mut billed = false;
        for (i, segment) in self.segments.iter().enumerate() {
            let Some(resources) = segment.resources else { continue };
            let start = segment.from.as_millisecond().max(from_ms);
            let stop = self
                .segments
                .get(i + 1)
                .map_or(to_ms, |next| next.from.as_millisecond().min(to_ms));
            if stop <= start {
                continue;
            }
            billed = true;
            let ms = i128::from(stop - start);
            for (total, resource) in totals
                .iter_mut()
                .zip([Resource::Vcpu, Resource::MemoryGib, Resource::StorageGib])
            {
                *total += i128::from(resource.of(&resources)) * ms;
            }
        }
        if !billed {
            return None;
        }
        let hours = |resource_ms: i128| {
            let per_hour = Decimal::from(3_600_000u32);
            Decimal::try_from_i128_with_scale(resource_ms, 0)
                .ok()
                .and_then(|v| v.checked_div(per_hour))
                .map(|v| {
                    v.round_dp_with_strategy(QUANTITY_DECIMALS, RoundingStrategy::MidpointNearestEven)
                        .normalize()
                })
                .unwrap_or(Decimal::MAX)
        };
        Some(
            service
                .metrics
                .iter()
                .map(|metric| {
                    let index = match metric.resource {
                        Resource::Vcpu => 0,
                        Resource::MemoryGib => 1,
                        Resource::StorageGib => 2,
                    };
                    (metric, hours(totals[index]))
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn res(vcpu: u32, memory_gib: u32, storage_gib: u32) -> Resources {
        Resources {
            vcpu,
            memory_gib,
            storage_gib,
        }
    }

    fn meter(segments: Vec<(&str, Option<Resources>)>, end: Option<&str>) -> Meter {
        Meter {
            instance: "web".into(),
            instance_id: "id".into(),
            service_type: "compute".into(),
            segments: segments
                .into_iter()
                .map(|(from, resources)| Segment {
                    from: ts(from),
                    resources,
                })
                .collect(),
            end: end.map(ts),
        }
    }

    fn quantities(meter: &Meter, from: &str, to: &str) -> Option<Vec<(&'static str, String)>> {
        meter
            .usage(ts(from), ts(to))
            .map(|q| q.into_iter().map(|(m, v)| (m.name, v.to_string())).collect())
    }

    #[test]
    fn usage_is_resources_times_hours_in_the_window() {
        let m = meter(
            vec![("2026-01-01T10:00:00Z", Some(res(2, 4, 100)))],
            Some("2026-01-03T10:00:00Z"),
        );
        // The first of January: 14 hours.
        assert_eq!(
            quantities(&m, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z").unwrap(),
            vec![
                ("vcpu-hours", "28".into()),
                ("memory-gib-hours", "56".into()),
                ("storage-gib-hours", "1400".into())
            ]
        );
        // The whole life: 48 hours.
        assert_eq!(
            quantities(&m, "2025-12-01T00:00:00Z", "2026-02-01T00:00:00Z").unwrap()[0].1,
            "96"
        );
        // Before it existed and after it was deleted: nothing.
        assert_eq!(quantities(&m, "2025-12-01T00:00:00Z", "2026-01-01T10:00:00Z"), None);
        assert_eq!(quantities(&m, "2026-01-03T10:00:00Z", "2026-02-01T00:00:00Z"), None);
    }

    #[test]
    fn an_update_bills_new_resources_from_when_it_finished() {
        let m = meter(
            vec![
                ("2026-01-01T00:00:00Z", Some(res(1, 1, 0))),
                ("2026-01-01T06:00:00Z", Some(res(4, 1, 0))),
            ],
            None,
        );
        assert_eq!(
            quantities(&m, "2026-01-01T00:00:00Z", "2026-01-01T12:00:00Z").unwrap()[0].1,
            "30"
        );
    }

    #[test]
    fn failed_segments_are_not_billed_and_rounding_is_half_even() {
        let m = meter(
            vec![
                ("2026-01-01T00:00:00Z", Some(res(1, 1, 0))),
                ("2026-01-01T00:00:01Z", None),
            ],
            None,
        );
        // One second = 1/3600 h = 0.000277...
        assert_eq!(
            quantities(&m, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z").unwrap()[0].1,
            "0.000278"
        );
    }

    #[test]
    fn resources_are_checked_against_the_service_type() {
        let compute = service_type("compute").unwrap();
        assert!(check_resources(compute, &res(2, 4, 0)).is_ok());
        let error = check_resources(compute, &res(0, 4, 0)).unwrap_err();
        assert!(error.contains("resources.vcpu"), "{error}");
        let bucket = service_type("object-storage").unwrap();
        assert!(
            check_resources(bucket, &res(1, 0, 10))
                .unwrap_err()
                .contains("must be 0")
        );
    }
}
