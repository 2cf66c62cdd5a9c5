//! Entitlement: which commitment contracts are in force, and which one covers a service on an endpoint.
//! Pure functions of the contracts and today's date.

use std::borrow::Borrow;
use std::collections::BTreeSet;

use jiff::civil::Date;
use kube::ResourceExt;

use crate::api::CommitmentContract;
use crate::api::commitment_contract::{CommitmentContractSpec, ContractPhase};
use crate::api::provider_org::Entitlements;

/// A contract is in force from the start of `startDate` through the end of `endDate` (UTC).
pub fn phase(spec: &CommitmentContractSpec, today: Date) -> ContractPhase {
    if today < spec.start_date {
        ContractPhase::Pending
    } else if today > spec.end_date {
        ContractPhase::Expired
    } else {
        ContractPhase::Active
    }
}

/// The next day on which the contract's phase changes, if it still will.
pub fn next_boundary(spec: &CommitmentContractSpec, today: Date) -> Option<Date> {
    match phase(spec, today) {
        ContractPhase::Pending => Some(spec.start_date),
        ContractPhase::Active => spec.end_date.tomorrow().ok(),
        ContractPhase::Expired => None,
    }
}

fn covers(spec: &CommitmentContractSpec, endpoint: &str, service: Option<&str>) -> bool {
    spec.endpoints.iter().any(|e| e == endpoint) && service.is_none_or(|s| spec.services.iter().any(|c| c == s))
}

/// The active contract covering `service` (or any service, when `None`) on `endpoint`, choosing the one
/// that ends last (then by name) so the choice is stable.
pub fn covering<'a>(
    contracts: &'a [impl Borrow<CommitmentContract>],
    endpoint: &str,
    service: Option<&str>,
    today: Date,
) -> Option<&'a CommitmentContract> {
    contracts
        .iter()
        .map(Borrow::borrow)
        .filter(|c| phase(&c.spec, today) == ContractPhase::Active && covers(&c.spec, endpoint, service))
        .max_by(|a, b| {
            a.spec
                .end_date
                .cmp(&b.spec.end_date)
                .then_with(|| b.name_any().cmp(&a.name_any()))
        })
}

/// Why a named contract cannot be used for `service` on `endpoint`, or `None` when it can.
pub fn refuse_named(contract: &CommitmentContract, endpoint: &str, service: &str, today: Date) -> Option<String> {
    let name = contract.name_any();
    match phase(&contract.spec, today) {
        ContractPhase::Pending => Some(format!("contract {name} starts on {}", contract.spec.start_date)),
        ContractPhase::Expired => Some(format!("contract {name} ended on {}", contract.spec.end_date)),
        ContractPhase::Active if !covers(&contract.spec, endpoint, Some(service)) => Some(format!(
            "contract {name} does not cover service {service} on endpoint {endpoint}"
        )),
        ContractPhase::Active => None,
    }
}

/// Everything the active contracts cover, sorted.
pub fn entitlements(contracts: &[impl Borrow<CommitmentContract>], today: Date) -> Entitlements {
    let active = contracts
        .iter()
        .map(Borrow::borrow)
        .filter(|c| phase(&c.spec, today) == ContractPhase::Active);
    let (mut services, mut endpoints) = (BTreeSet::new(), BTreeSet::new());
    for contract in active {
        services.extend(contract.spec.services.iter().cloned());
        endpoints.extend(contract.spec.endpoints.iter().cloned());
    }
    Entitlements {
        services: services.into_iter().collect(),
        endpoints: endpoints.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn contract(name: &str, start: Date, end: Date, services: &[&str], endpoints: &[&str]) -> CommitmentContract {
        let spec: CommitmentContractSpec = serde_json::from_value(serde_json::json!({
            "contractNumber": format!("C-{name}"),
            "startDate": start.to_string(),
            "endDate": end.to_string(),
            "services": services,
            "endpoints": endpoints,
        }))
        .expect("a valid contract spec");
        CommitmentContract::new(name, spec)
    }

    #[test]
    fn phase_follows_the_dates_inclusively() {
        let c = contract("a", date(2026, 1, 1), date(2026, 12, 31), &["compute"], &["sim"]);
        assert_eq!(phase(&c.spec, date(2025, 12, 31)), ContractPhase::Pending);
        assert_eq!(phase(&c.spec, date(2026, 1, 1)), ContractPhase::Active);
        assert_eq!(phase(&c.spec, date(2026, 12, 31)), ContractPhase::Active);
        assert_eq!(phase(&c.spec, date(2027, 1, 1)), ContractPhase::Expired);
        assert_eq!(next_boundary(&c.spec, date(2025, 6, 1)), Some(date(2026, 1, 1)));
        assert_eq!(next_boundary(&c.spec, date(2026, 6, 1)), Some(date(2027, 1, 1)));
        assert_eq!(next_boundary(&c.spec, date(2027, 6, 1)), None);
    }

    #[test]
    fn only_an_active_contract_covering_service_and_endpoint_entitles() {
        let today = date(2026, 6, 1);
        let contracts = vec![
            contract("expired", date(2025, 1, 1), date(2025, 12, 31), &["compute"], &["sim"]),
            contract(
                "storage",
                date(2026, 1, 1),
                date(2026, 12, 31),
                &["object-storage"],
                &["sim"],
            ),
            contract(
                "other-endpoint",
                date(2026, 1, 1),
                date(2026, 12, 31),
                &["compute"],
                &["vcd"],
            ),
        ];
        assert!(covering(&contracts, "sim", Some("compute"), today).is_none());
        assert_eq!(
            covering(&contracts, "sim", Some("object-storage"), today)
                .unwrap()
                .name_any(),
            "storage"
        );
        assert_eq!(covering(&contracts, "sim", None, today).unwrap().name_any(), "storage");
        assert_eq!(
            covering(&contracts, "vcd", Some("compute"), today).unwrap().name_any(),
            "other-endpoint"
        );
        let e = entitlements(&contracts, today);
        assert_eq!(e.services, vec!["compute", "object-storage"]);
        assert_eq!(e.endpoints, vec!["sim", "vcd"]);
    }

    #[test]
    fn the_longest_running_covering_contract_is_chosen() {
        let today = date(2026, 6, 1);
        let contracts = vec![
            contract("short", date(2026, 1, 1), date(2026, 7, 31), &["compute"], &["sim"]),
            contract("long", date(2026, 1, 1), date(2027, 12, 31), &["compute"], &["sim"]),
        ];
        assert_eq!(
            covering(&contracts, "sim", Some("compute"), today).unwrap().name_any(),
            "long"
        );
        let refused = refuse_named(&contracts[0], "sim", "backup", today).unwrap();
        assert!(refused.contains("does not cover service backup"), "{refused}");
        assert!(
            refuse_named(&contracts[0], "sim", "compute", date(2026, 8, 1))
                .unwrap()
                .contains("ended")
        );
    }
}
