//! Customer quotas: whether one more subscription fits in what the CustomerOrg allows.
//!
//! Subscriptions are counted in the order they were created (then by name), and a subscription fits when
//! it and every one created before it stay within the quota. So adding one that does not fit stalls only
//! that one; the ones already running keep running.

use kube::ResourceExt;

use crate::api::CloudServiceSubscription;
use crate::api::customer_org::Quotas;

/// Why `sub` does not fit in `quotas`, given all subscriptions of the same customer (it included), or
/// `None` when it fits. Subscriptions being deleted do not count.
pub fn exceeded(
    quotas: &Quotas,
    sub: &CloudServiceSubscription,
    of_customer: &[&CloudServiceSubscription],
) -> Option<String> {
    let key = |s: &CloudServiceSubscription| (s.creation_timestamp().map(|t| t.0), s.name_any());
    let mine = key(sub);
    let counted: Vec<&&CloudServiceSubscription> = of_customer
        .iter()
        .filter(|s| s.metadata.deletion_timestamp.is_none() && key(s) <= mine)
        .collect();
    let total =
        |pick: fn(&CloudServiceSubscription) -> Option<i64>| counted.iter().map(|s| pick(s).unwrap_or(0)).sum::<i64>();
    let checks: [(&str, Option<i64>, i64); 4] = [
        ("subscriptions", quotas.subscriptions, counted.len() as i64),
        (
            "vCPUs",
            quotas.vcpu,
            total(|s| s.spec.resources.as_ref().and_then(|r| r.vcpu)),
        ),
        (
            "GiB of memory",
            quotas.memory_gib,
            total(|s| s.spec.resources.as_ref().and_then(|r| r.memory_gib)),
        ),
        (
            "GiB of storage",
            quotas.storage_gib,
            total(|s| s.spec.resources.as_ref().and_then(|r| r.storage_gib)),
        ),
    ];
    checks
        .iter()
        .find(|(_, limit, used)| limit.is_some_and(|limit| *used > limit))
        .map(|(what, limit, used)| {
            format!(
                "the customer's quota allows {} {what}; with this subscription its subscriptions would hold {used}",
                limit.unwrap_or(0)
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn sub(name: &str, created: i64, vcpu: i64) -> CloudServiceSubscription {
        let mut s: CloudServiceSubscription = serde_json::from_value(serde_json::json!({
            "apiVersion": "navigator.cloudpartner.io/v1alpha1", "kind": "CloudServiceSubscription",
            "metadata": {"name": name, "namespace": "p"},
            "spec": {"customerOrgRef": {"name": "c"}, "serviceType": "compute", "resources": {"vcpu": vcpu, "memoryGiB": 1, "storageGiB": 10}}
        }))
        .unwrap();
        s.metadata.creation_timestamp = Some(Time(jiff::Timestamp::from_second(created).unwrap()));
        s
    }

    #[test]
    fn the_newest_subscription_that_does_not_fit_is_refused_and_the_older_ones_fit() {
        let quotas = Quotas {
            vcpu: Some(8),
            ..Default::default()
        };
        let (a, b, c) = (sub("a", 1, 4), sub("b", 2, 4), sub("c", 3, 2));
        let all = [&a, &b, &c];
        assert_eq!(exceeded(&quotas, &a, &all), None);
        assert_eq!(exceeded(&quotas, &b, &all), None);
        let refused = exceeded(&quotas, &c, &all).expect("c goes over 8 vCPUs");
        assert!(
            refused.contains("allows 8 vCPUs") && refused.contains("would hold 10"),
            "{refused}"
        );
    }

    #[test]
    fn subscriptions_being_deleted_free_their_share() {
        let quotas = Quotas {
            subscriptions: Some(1),
            ..Default::default()
        };
        let mut old = sub("old", 1, 1);
        old.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::from_second(5).unwrap()));
        let new = sub("new", 2, 1);
        assert_eq!(exceeded(&quotas, &new, &[&old, &new]), None);
        assert!(exceeded(&quotas, &new, &[&sub("old", 1, 1), &new]).is_some());
    }

    #[test]
    fn no_quota_means_no_limit() {
        let s = sub("a", 1, 1000);
        assert_eq!(exceeded(&Quotas::default(), &s, &[&s]), None);
    }
}
