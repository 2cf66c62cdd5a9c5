//! Usage from what Cloud Director itself records: the audit trail's VDC events (create, modify, delete),
//! each carrying the VDC's allocation after the change. Between two events a VDC held what the first one
//! says, so integrating that history over a window gives vCPU-hours (CPU MHz / vCPU speed), memory GiB-hours
//! and storage GiB-hours, the metrics Navigator's simulator meters. Anyone can recompute an invoice from the
//! same audit trail and get the same numbers, which sampling the VDCs at poll times could not promise.

use std::collections::BTreeMap;

use jiff::Timestamp;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Deserialize;

use super::rules::service_type_of;
use crate::endpoint::{UsageRecord, UsageWindow};
use crate::simulator::metering::{self, QUANTITY_DECIMALS};

pub const VDC_CREATE: &str = "com/vmware/cloud/event/vdc/create";
pub const VDC_MODIFY: &str = "com/vmware/cloud/event/vdc/modify";
pub const VDC_DELETE: &str = "com/vmware/cloud/event/vdc/delete";

/// The service type reported for a VDC whose service type neither its events nor its description say
/// (one made outside Navigator, or deleted before Cloud Director recorded descriptions).
pub const UNKNOWN_SERVICE: &str = "unknown";

#[derive(Clone, Debug, Default, Deserialize)]
pub struct EntityRef {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub id: String,
}

/// One `GET /cloudapi/1.0.0/auditTrail` value.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    #[serde(default)]
    pub event_type: String,
    #[serde(default)]
    pub event_status: String,
    pub timestamp: Timestamp,
    #[serde(default)]
    pub entity: EntityRef,
    #[serde(default)]
    pub additional_properties: BTreeMap<String, String>,
}

/// What a VDC held from one moment on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Allocation {
    cpu_mhz: u64,
    vcpu_mhz: u64,
    memory_mb: u64,
    storage_mb: u64,
}

impl Allocation {
    fn of(event: &AuditEvent) -> Self {
        if event.event_type == VDC_DELETE {
            return Allocation::default();
        }
        let number = |key: &str| {
            event
                .additional_properties
                .get(key)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        Allocation {
            cpu_mhz: number("vdc.cpu.allocated.mhz"),
            vcpu_mhz: number("vdc.cpu.speed.mhz"),
            memory_mb: number("vdc.memory.allocated.mb"),
            storage_mb: number("vdc.storage.limit.mb"),
        }
    }

    /// The amount of each metric per hour.
    fn per_hour(&self, metric: &str) -> Decimal {
        let gib = |mb: u64| Decimal::from(mb) / Decimal::from(1024);
        match metric {
            "vcpu-hours" if self.vcpu_mhz > 0 => Decimal::from(self.cpu_mhz) / Decimal::from(self.vcpu_mhz),
            "memory-gib-hours" => gib(self.memory_mb),
            "storage-gib-hours" => gib(self.storage_mb),
            _ => Decimal::ZERO,
        }
    }
}

/// One VDC's history.
#[derive(Default)]
struct History {
    name: String,
    service_type: Option<String>,
    changes: Vec<(Timestamp, Allocation)>,
}

fn is_vdc_event(event: &AuditEvent) -> bool {
    [VDC_CREATE, VDC_MODIFY, VDC_DELETE].contains(&event.event_type.as_str())
        && event.event_status.eq_ignore_ascii_case("SUCCESS")
}

/// The usage of every VDC in `events` (one organisation's audit trail up to the window's end, in any
/// order) within `window`. `descriptions` holds the descriptions of VDCs that still exist, by id, for
/// VDCs whose events do not carry one.
pub fn usage_from_audit_trail(
    events: &[AuditEvent],
    window: UsageWindow,
    descriptions: &BTreeMap<String, String>,
) -> Vec<UsageRecord> {
    let mut histories: BTreeMap<&str, History> = BTreeMap::new();
    let mut ordered: Vec<&AuditEvent> = events.iter().filter(|e| is_vdc_event(e)).collect();
    ordered.sort_by_key(|e| e.timestamp);
    for event in ordered {
        let history = histories.entry(&event.entity.id).or_default();
        history.name.clone_from(&event.entity.name);
        if let Some(service) = event
            .additional_properties
            .get("vdc.description")
            .and_then(|d| service_type_of(d))
        {
            history.service_type = Some(service.to_owned());
        }
        history.changes.push((event.timestamp, Allocation::of(event)));
    }
    let mut records = Vec::new();
    for (id, history) in histories {
        let service_type = history
            .service_type
            .or_else(|| descriptions.get(id).and_then(|d| service_type_of(d)))
            .unwrap_or_else(|| UNKNOWN_SERVICE.to_owned());
        let metrics: Vec<(&str, &str)> = match metering::service_type(&service_type) {
            Some(known) => known.metrics.iter().map(|m| (m.name, m.unit)).collect(),
            None => vec![
                ("vcpu-hours", "vCPU-hour"),
                ("memory-gib-hours", "GiB-hour"),
                ("storage-gib-hours", "GiB-hour"),
            ],
        };
        // Each allocation holds from its change until the next one (the last until the window's end).
        let spans: Vec<(i64, Allocation)> = history
            .changes
            .iter()
            .enumerate()
            .filter_map(|(i, (from, allocation))| {
                let until = history.changes.get(i + 1).map_or(window.to, |(next, _)| *next);
                let (from, until) = ((*from).max(window.from), until.min(window.to));
                (from < until).then(|| (from.duration_until(until).as_millis() as i64, *allocation))
            })
            .filter(|(_, allocation)| *allocation != Allocation::default())
            .collect();
        if spans.is_empty() {
            continue;
        }
        for (metric, unit) in metrics {
            let quantity: Decimal = spans
                .iter()
                .map(|(millis, allocation)| {
                    allocation.per_hour(metric) * Decimal::from(*millis) / Decimal::from(3_600_000)
                })
                .sum();
            records.push(UsageRecord {
                instance: history.name.clone(),
                instance_external_id: id.to_owned(),
                service_type: service_type.clone(),
                metric: metric.to_owned(),
                unit: unit.to_owned(),
                quantity: quantity
                    .round_dp_with_strategy(QUANTITY_DECIMALS, RoundingStrategy::MidpointNearestEven)
                    .normalize(),
            });
        }
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(time: &str) -> Timestamp {
        format!("2026-03-01T{time}Z").parse().unwrap()
    }

    fn event(kind: &str, time: &str, id: &str, cpu: u64, memory: u64, storage: u64) -> AuditEvent {
        let mut properties = BTreeMap::from([
            ("vdc.cpu.allocated.mhz".to_owned(), cpu.to_string()),
            ("vdc.cpu.speed.mhz".to_owned(), "2000".to_owned()),
            ("vdc.memory.allocated.mb".to_owned(), memory.to_string()),
            ("vdc.storage.limit.mb".to_owned(), storage.to_string()),
        ]);
        if kind == VDC_CREATE {
            properties.insert("vdc.description".into(), "navigator:serviceType=compute".into());
        }
        AuditEvent {
            event_type: kind.to_owned(),
            event_status: "SUCCESS".to_owned(),
            timestamp: at(time),
            entity: EntityRef {
                name: format!("vdc-{id}"),
                id: format!("urn:vcloud:vdc:{id}"),
            },
            additional_properties: properties,
        }
    }

    fn window(from: &str, to: &str) -> UsageWindow {
        UsageWindow::new(at(from), at(to)).unwrap()
    }

    fn quantities(records: &[UsageRecord]) -> Vec<(String, String, String)> {
        records
            .iter()
            .map(|r| (r.instance.clone(), r.metric.clone(), r.quantity.to_string()))
            .collect()
    }

    #[test]
    fn allocation_history_is_integrated_over_the_window() {
        // 2 vCPU (4000 MHz at 2000 MHz), 4 GiB, 100 GiB from 01:00; resized to 4 vCPU, 8 GiB, 200 GiB at
        // 03:00; deleted at 04:30.
        let events = vec![
            event(VDC_MODIFY, "03:00:00", "a", 8000, 8192, 204800),
            event(VDC_CREATE, "01:00:00", "a", 4000, 4096, 102400),
            event(VDC_DELETE, "04:30:00", "a", 0, 0, 0),
        ];
        let records = usage_from_audit_trail(&events, window("00:00:00", "06:00:00"), &BTreeMap::new());
        assert_eq!(
            quantities(&records),
            vec![
                ("vdc-a".into(), "vcpu-hours".into(), "10".into()),
                ("vdc-a".into(), "memory-gib-hours".into(), "20".into()),
                ("vdc-a".into(), "storage-gib-hours".into(), "500".into()),
            ]
        );
        assert!(
            records
                .iter()
                .all(|r| r.service_type == "compute" && r.instance_external_id == "urn:vcloud:vdc:a")
        );
        // Only the part inside the window counts: 02:00-03:00 at 2 vCPU, 03:00-03:30 at 4 vCPU.
        let part = usage_from_audit_trail(&events, window("02:00:00", "03:30:00"), &BTreeMap::new());
        assert_eq!(part[0].quantity, Decimal::from(4));
    }

    #[test]
    fn windows_that_split_a_period_add_up_to_the_whole() {
        let events = vec![
            event(VDC_CREATE, "00:10:07", "a", 6000, 3072, 1024),
            event(VDC_MODIFY, "02:47:13", "a", 2000, 1024, 1024),
        ];
        let whole = usage_from_audit_trail(&events, window("00:00:00", "05:00:00"), &BTreeMap::new());
        let first = usage_from_audit_trail(&events, window("00:00:00", "01:00:00"), &BTreeMap::new());
        let second = usage_from_audit_trail(&events, window("01:00:00", "05:00:00"), &BTreeMap::new());
        for metric in 0..3 {
            assert_eq!(first[metric].quantity + second[metric].quantity, whole[metric].quantity);
        }
    }

    #[test]
    fn vdcs_without_allocation_in_the_window_and_failed_events_are_left_out() {
        let mut failed = event(VDC_MODIFY, "02:00:00", "a", 99_000, 0, 0);
        failed.event_status = "FAILURE".into();
        let events = vec![
            event(VDC_CREATE, "01:00:00", "a", 2000, 1024, 0),
            failed,
            event(VDC_CREATE, "00:00:00", "gone", 2000, 1024, 0),
            event(VDC_DELETE, "00:30:00", "gone", 0, 0, 0),
            event(VDC_CREATE, "07:00:00", "later", 2000, 1024, 0),
        ];
        let records = usage_from_audit_trail(&events, window("01:00:00", "03:00:00"), &BTreeMap::new());
        assert_eq!(
            quantities(&records),
            vec![
                ("vdc-a".into(), "vcpu-hours".into(), "2".into()),
                ("vdc-a".into(), "memory-gib-hours".into(), "2".into()),
                ("vdc-a".into(), "storage-gib-hours".into(), "0".into()),
            ]
        );
    }

    #[test]
    fn the_service_type_comes_from_the_events_or_the_live_description() {
        let mut created = event(VDC_CREATE, "00:00:00", "s", 0, 0, 10240);
        created.additional_properties.remove("vdc.description");
        let descriptions = BTreeMap::from([(
            "urn:vcloud:vdc:s".to_owned(),
            "navigator:serviceType=object-storage".to_owned(),
        )]);
        let records = usage_from_audit_trail(
            std::slice::from_ref(&created),
            window("00:00:00", "01:00:00"),
            &descriptions,
        );
        // Object storage is metered by storage alone.
        assert_eq!(
            quantities(&records),
            vec![("vdc-s".into(), "storage-gib-hours".into(), "10".into())]
        );
        assert_eq!(records[0].service_type, "object-storage");
        let unknown = usage_from_audit_trail(&[created], window("00:00:00", "01:00:00"), &BTreeMap::new());
        assert_eq!(unknown.len(), 3);
        assert_eq!(unknown[0].service_type, UNKNOWN_SERVICE);
    }

    #[test]
    fn an_event_read_twice_counts_once() {
        // Pages of a list that shifts while it is read can repeat an event; the history is the same.
        let events = vec![
            event(VDC_CREATE, "01:00:00", "a", 4000, 2048, 10240),
            event(VDC_MODIFY, "02:00:00", "a", 8000, 2048, 10240),
            event(VDC_DELETE, "03:00:00", "a", 0, 0, 0),
        ];
        let mut repeated = events.clone();
        repeated.extend(events.iter().cloned());
        let window = window("00:00:00", "04:00:00");
        assert_eq!(
            quantities(&usage_from_audit_trail(&repeated, window, &BTreeMap::new())),
            quantities(&usage_from_audit_trail(&events, window, &BTreeMap::new()))
        );
        assert_eq!(
            usage_from_audit_trail(&repeated, window, &BTreeMap::new())[0].quantity,
            Decimal::from(6)
        );
    }

    #[test]
    fn quantities_are_rounded_to_six_places() {
        // One vCPU for one second: 1/3600 hour.
        let events = vec![
            event(VDC_CREATE, "00:00:00", "a", 2000, 0, 0),
            event(VDC_DELETE, "00:00:01", "a", 0, 0, 0),
        ];
        let records = usage_from_audit_trail(&events, window("00:00:00", "01:00:00"), &BTreeMap::new());
        assert_eq!(records[0].quantity.to_string(), "0.000278");
    }
}
