//! Reading usage from the endpoints, for invoices and the billing views: which reads one pass needs (a
//! pure plan, one read per customer × endpoint × window) and running them concurrently.
//!
//! Two bounds keep this from flooding an endpoint: one pass keeps at most [`READS_PER_PASS`] reads in
//! flight, and the whole process at most half of an endpoint's `maxConcurrentOperations` usage reads on
//! that endpoint ([`reads_per_endpoint`]), so billing leaves room for provisioning and never queues in the
//! driver long enough to be refused as throttled. The driver's own rate limit and concurrency cap apply on
//! top, as for every request.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;

use crate::api::{CloudServiceSubscription, CommitmentContract, CustomerOrg};
use crate::billing;
use crate::controllers::cloud_endpoint::driver_for;
use crate::endpoint::{self, DriverError, UsageWindow};
use crate::runtime::context::Context;
use crate::runtime::error::Error;

/// Usage reads one pass (a provider's invoices, its view, a contract's view) keeps in flight at most.
pub const READS_PER_PASS: usize = 16;

/// The longest window asked of an endpoint at once (the Navigator endpoint API allows ten years).
const MAX_WINDOW: SignedDuration = SignedDuration::from_hours(24 * 3_650);

/// One customer whose usage a pass wants: records are attributed to `customer`, read for its `tenant` on
/// each of `endpoints`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub customer: String,
    pub tenant: String,
    pub endpoints: BTreeSet<String>,
}

impl Wanted {
    pub fn of(customer: &CustomerOrg, endpoints: BTreeSet<String>) -> Self {
        Wanted {
            customer: customer.name_any(),
            tenant: customer.spec.tenant_name.clone(),
            // A customer that does not hold its tenant used nothing: the usage there is another customer's.
            endpoints: if crate::controllers::customer_org::holds_tenant(customer) {
                endpoints
            } else {
                BTreeSet::new()
            },
        }
    }
}

/// One request for usage: the customer at index `customer` of the wanted list, on `endpoint`, over `window`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Read {
    pub customer: usize,
    pub endpoint: String,
    pub window: UsageWindow,
}

/// The endpoints a customer's usage is read from: its own, those its subscriptions name, and those the
/// provider's contracts list (subscriptions that were deleted still have usage there).
pub fn usage_endpoints(
    customer: &CustomerOrg,
    subscriptions: &[Arc<CloudServiceSubscription>],
    contracts: &[Arc<CommitmentContract>],
) -> BTreeSet<String> {
    let name = customer.name_any();
    let mut endpoints = BTreeSet::from([customer.spec.endpoint_ref.name.clone()]);
    for sub in subscriptions.iter().filter(|s| s.spec.customer_org_ref.name == name) {
        if let Some(endpoint) = &sub.spec.endpoint_ref {
            endpoints.insert(endpoint.name.clone());
        }
    }
    for contract in contracts {
        endpoints.extend(contract.spec.endpoints.iter().cloned());
    }
    endpoints
}

/// `[from, to)` cut into windows the endpoint accepts; none when `from` is not before `to`.
pub fn windows(from: Timestamp, to: Timestamp) -> Vec<UsageWindow> {
    let mut windows = Vec::new();
    let mut start = from;
    while start < to {
        let end = start.checked_add(MAX_WINDOW).map_or(to, |e| e.min(to));
        windows.push(UsageWindow { from: start, to: end });
        start = end;
    }
    windows
}

/// Every read `wanted` needs over `[from, to)`: customer by customer, endpoint by endpoint (in name order),
/// window by window. An endpoint for which `exists` is false (its CloudEndpoint is gone) is not read: it
/// contributes nothing.
pub fn plan(wanted: &[Wanted], from: Timestamp, to: Timestamp, exists: impl Fn(&str) -> bool) -> Vec<Read> {
    let windows = windows(from, to);
    let mut reads = Vec::new();
    for (customer, want) in wanted.iter().enumerate() {
        for endpoint in want.endpoints.iter().filter(|e| exists(e)) {
            reads.extend(windows.iter().map(|window| Read {
                customer,
                endpoint: endpoint.clone(),
                window: *window,
            }));
        }
    }
    reads
}

/// The endpoint's usage records as rating input, attributed to `customer`. Navigator names an instance
/// after its subscription, so the instance name is the subscription's.
pub fn rating_records(customer: &str, records: Vec<endpoint::UsageRecord>) -> Vec<billing::UsageRecord> {
    records
        .into_iter()
        .map(|r| billing::UsageRecord {
            customer: customer.to_owned(),
            subscription: r.instance,
            service: r.service_type,
            metric: r.metric,
            unit: r.unit,
            quantity: r.quantity,
        })
        .collect()
}

/// What each of `wanted` used in `[from, to)`, in the same order: its records (in plan order), or the first
/// error among its reads. An endpoint that does not meter usage contributes nothing, and so does one where
/// the customer's tenant does not exist.
pub async fn read(
    ctx: &Context,
    wanted: &[Wanted],
    from: Timestamp,
    to: Timestamp,
) -> Vec<Result<Vec<billing::UsageRecord>, Error>> {
    let reads = plan(wanted, from, to, |e| ctx.stores.endpoint(e).is_some());
    // Indices rather than references as stream items: the future must be Send for every lifetime.
    let mut results: Vec<(usize, Result<Vec<endpoint::UsageRecord>, Error>)> = futures::stream::iter(0..reads.len())
        .map(|i| {
            let read = &reads[i];
            let tenant = wanted[read.customer].tenant.as_str();
            async move { (i, read_one(ctx, tenant, read).await) }
        })
        .buffer_unordered(READS_PER_PASS)
        .collect()
        .await;
    results.sort_by_key(|(i, _)| *i);
    let mut usage: Vec<Result<Vec<billing::UsageRecord>, Error>> = wanted.iter().map(|_| Ok(Vec::new())).collect();
    for (i, result) in results {
        let customer = reads[i].customer;
        match result {
            Ok(found) => {
                if let Ok(records) = &mut usage[customer] {
                    records.extend(rating_records(&wanted[customer].customer, found));
                }
            }
            Err(error) if usage[customer].is_ok() => usage[customer] = Err(error),
            Err(_) => {}
        }
    }
    usage
}

async fn read_one(ctx: &Context, tenant: &str, read: &Read) -> Result<Vec<endpoint::UsageRecord>, Error> {
    let entry = driver_for(&read.endpoint, ctx).await?;
    if !entry.driver.capabilities().usage {
        return Ok(Vec::new());
    }
    // The semaphore is never closed; without a permit (it cannot happen) the read simply goes on.
    let _slot = entry.background_reads.clone().acquire_owned().await.ok();
    match entry.driver.usage(tenant, read.window).await {
        Ok(found) => Ok(found),
        Err(DriverError::NotFound { .. }) => Ok(Vec::new()),
        Err(error) => Err(error.into()),
    }
}

/// How many usage reads the process keeps in flight on an endpoint with `max_concurrent_operations`
/// request slots: half of them (at least one), the other half left to provisioning and polls.
pub fn reads_per_endpoint(max_concurrent_operations: i32) -> usize {
    usize::try_from(max_concurrent_operations / 2).unwrap_or(0).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;
    use std::str::FromStr;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn customer(name: &str, endpoint: &str) -> CustomerOrg {
        let spec = serde_json::from_value(serde_json::json!({
            "displayName": name, "tenantName": name, "endpointRef": {"name": endpoint}
        }))
        .unwrap();
        let mut c = CustomerOrg::new(name, spec);
        c.metadata.namespace = Some("cloud".into());
        c
    }

    fn wanted(customer: &str, endpoints: &[&str]) -> Wanted {
        Wanted {
            customer: customer.into(),
            tenant: format!("t-{customer}"),
            endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn a_pass_reads_each_customer_on_each_existing_endpoint_for_each_window() {
        let wanted = [
            wanted("acme", &["sim-a", "gone"]),
            wanted("globex", &["sim-b", "sim-a"]),
        ];
        let exists = |e: &str| e != "gone";
        // Twenty-six years: three windows of at most ten years.
        let reads = plan(&wanted, ts("2000-01-01T00:00:00Z"), ts("2026-01-01T00:00:00Z"), exists);
        let shape: Vec<(usize, &str)> = reads.iter().map(|r| (r.customer, r.endpoint.as_str())).collect();
        let three = |c, e| [(c, e); 3];
        let expected: Vec<(usize, &str)> = [three(0, "sim-a"), three(1, "sim-a"), three(1, "sim-b")].concat();
        assert_eq!(
            shape, expected,
            "customer by customer, endpoints in name order, no read of a gone endpoint"
        );
        assert_eq!(reads[0].window.from, ts("2000-01-01T00:00:00Z"));
        assert_eq!(reads[2].window.to, ts("2026-01-01T00:00:00Z"));

        let month = plan(&wanted, ts("2026-10-01T00:00:00Z"), ts("2026-11-01T00:00:00Z"), exists);
        assert_eq!(month.len(), 3, "one read per customer and endpoint for a month");
        let empty = plan(&wanted, ts("2026-10-01T00:00:00Z"), ts("2026-10-01T00:00:00Z"), exists);
        assert!(empty.is_empty(), "nothing to read over an empty range");
        assert!(plan(&[], ts("2026-10-01T00:00:00Z"), ts("2026-11-01T00:00:00Z"), exists).is_empty());
    }

    #[test]
    fn usage_reads_take_half_an_endpoints_request_slots() {
        assert_eq!(reads_per_endpoint(16), 8);
        assert_eq!(reads_per_endpoint(8), 4);
        assert_eq!(reads_per_endpoint(1), 1, "at least one");
        assert_eq!(reads_per_endpoint(0), 1);
        assert_eq!(reads_per_endpoint(-3), 1);
    }

    #[test]
    fn long_windows_are_cut_into_pieces_the_endpoint_accepts() {
        assert!(windows(ts("2026-01-01T00:00:00Z"), ts("2026-01-01T00:00:00Z")).is_empty());
        assert!(windows(ts("2026-02-01T00:00:00Z"), ts("2026-01-01T00:00:00Z")).is_empty());
        let one = windows(ts("2026-01-01T00:00:00Z"), ts("2026-02-01T00:00:00Z"));
        assert_eq!(one.len(), 1);
        let many = windows(ts("2000-01-01T00:00:00Z"), ts("2026-01-01T00:00:00Z"));
        assert_eq!(many.len(), 3);
        assert_eq!(many[0].from, ts("2000-01-01T00:00:00Z"));
        assert_eq!(many[2].to, ts("2026-01-01T00:00:00Z"));
        for pair in many.windows(2) {
            assert_eq!(pair[0].to, pair[1].from, "windows tile the range");
        }
    }

    #[test]
    fn usage_is_read_from_every_endpoint_the_customer_could_have_used() {
        let acme = customer("acme", "sim-a");
        let sub = |name: &str, customer: &str, endpoint: Option<&str>| {
            let mut spec = serde_json::json!({"customerOrgRef": {"name": customer}, "serviceType": "compute"});
            if let Some(e) = endpoint {
                spec["endpointRef"] = serde_json::json!({"name": e});
            }
            Arc::new(CloudServiceSubscription::new(
                name,
                serde_json::from_value(spec).unwrap(),
            ))
        };
        let subs = vec![
            sub("a", "acme", Some("sim-b")),
            sub("b", "acme", None),
            sub("c", "other", Some("sim-x")),
        ];
        let contract: CommitmentContract = CommitmentContract::new(
            "main",
            serde_json::from_value(serde_json::json!({
                "contractNumber": "C-1", "startDate": "2026-01-01", "endDate": "2026-12-31",
                "services": ["compute"], "endpoints": ["sim-a", "sim-c"],
                "commitments": [{"metric": "vcpu-hours", "quantity": "1"}]
            }))
            .unwrap(),
        );
        let endpoints = usage_endpoints(&acme, &subs, &[Arc::new(contract)]);
        assert_eq!(
            endpoints.into_iter().collect::<Vec<_>>(),
            vec!["sim-a", "sim-b", "sim-c"]
        );
        let wanted = Wanted::of(&acme, BTreeSet::new());
        assert_eq!((wanted.customer.as_str(), wanted.tenant.as_str()), ("acme", "acme"));
    }

    #[test]
    fn endpoint_records_become_rating_input_of_the_customer() {
        let records = vec![endpoint::UsageRecord {
            instance: "web".into(),
            instance_external_id: "i-1".into(),
            service_type: "compute".into(),
            metric: "vcpu-hours".into(),
            unit: "vCPU-hour".into(),
            quantity: Decimal::from_str("2.5").unwrap(),
        }];
        let rated = rating_records("acme", records);
        assert_eq!(
            (
                rated[0].customer.as_str(),
                rated[0].subscription.as_str(),
                rated[0].service.as_str()
            ),
            ("acme", "web", "compute")
        );
    }
}
