//! Sharding: several operator instances split the objects, each reconciling only its shard.
//!
//! An object's shard is the value of its label [`LABEL`], which the API server itself sets at create time
//! (the chart's MutatingAdmissionPolicy, `templates/sharding.yaml`) from [`shard_of`] its namespace and
//! name. An object without the label (created before the policy was installed) or with a value out of
//! range belongs to the shard [`shard_of`] computes, the same the policy would have given it, so nothing
//! needs relabelling and no shard takes all the old objects.
//!
//! Every instance still watches and caches every object: a reconcile reads across shards (a subscription's
//! customer, contracts and sibling subscriptions for its quota; a grant's sibling grants; a provider's
//! billing over all its subscriptions), and a change in one shard wakes dependents in others. What is
//! split is the work: reconciles, endpoint requests and API writes.

use kube::api::ObjectMeta;

/// The label that names an object's shard, a decimal number from 0.
pub const LABEL: &str = crate::api::keys::SHARD_LABEL;

/// The most shards an installation can have (the chart's schema says the same).
pub const MAX_SHARDS: u32 = 32;

/// The characters of Kubernetes object names, in the order the hash numbers them (from 1; any other
/// character, such as the `/` between namespace and name, counts 0). Kept equal to the policy's CEL.
const ALPHABET: &str = "abcdefghijklmnopqrstuvwxyz0123456789-.";

/// Weights of the positions, repeating: primes above every shard count, so no position is ever lost to a
/// modulus (with weights sharing a factor with the shard count, every third character would not count for
/// three shards). Kept equal to the policy's CEL.
const WEIGHTS: [u64; 8] = [41, 43, 47, 53, 59, 61, 67, 71];

/// The shard of the object `namespace/name` (empty namespace for cluster-scoped kinds) among `count`.
/// Kubernetes' CEL has no hash function, so this is a position-weighted sum of the characters, which the
/// policy computes the same way: stable, and names that differ in one character (`web-1`, `web-2`) land
/// on different shards.
pub fn shard_of(namespace: &str, name: &str, count: u32) -> u32 {
    let key = format!("{namespace}/{name}");
    let sum: u64 = key
        .chars()
        .enumerate()
        .map(|(i, c)| {
            let code = ALPHABET.find(c).map_or(0, |p| p as u64 + 1);
            code * WEIGHTS[i % WEIGHTS.len()]
        })
        .sum();
    (sum % u64::from(count.max(1))) as u32
}

/// One instance's share of the objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This instance's shard, from 0.
    pub index: u32,
    /// How many shards there are.
    pub count: u32,
}

impl Shard {
    /// Checks `index` and `count` (given on the command line).
    pub fn new(index: u32, count: u32) -> anyhow::Result<Self> {
        if count == 0 || count > MAX_SHARDS {
            anyhow::bail!("--shards must be from 1 to {MAX_SHARDS}, not {count}");
        }
        if index >= count {
            anyhow::bail!(
                "--shard-index must be less than --shards ({count}): shards are numbered from 0, not {index}"
            );
        }
        Ok(Shard { index, count })
    }

    /// Whether the object with this metadata is this shard's to reconcile.
    pub fn owns(&self, meta: &ObjectMeta) -> bool {
        owner(meta, self.count) == self.index
    }

    /// The leader Lease of this shard: one per shard, so each shard has its own leader and standbys.
    pub fn lease_name(&self, base: &str) -> String {
        format!("{base}-shard-{}", self.index)
    }
}

/// The shard an object belongs to among `count`: its label when it holds a shard number in range, else the
/// one [`shard_of`] its namespace and name.
pub fn owner(meta: &ObjectMeta, count: u32) -> u32 {
    let labelled = meta
        .labels
        .as_ref()
        .and_then(|labels| labels.get(LABEL))
        .and_then(|value| value.parse::<u32>().ok())
        .filter(|shard| *shard < count);
    labelled.unwrap_or_else(|| {
        shard_of(
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default(),
            count,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(namespace: Option<&str>, name: &str, label: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: namespace.map(Into::into),
            labels: label.map(|l| [(LABEL.to_string(), l.to_string())].into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_hash_is_the_weighted_character_sum() {
        // "a/b": a=1 at weight 41, '/'=0, b=2 at weight 47.
        assert_eq!(shard_of("a", "b", 1000), 41 + 2 * 47);
        assert_eq!(shard_of("", "x", 1), 0);
    }

    #[test]
    fn numbered_names_spread_evenly_over_the_shards() {
        for count in [2, 3, 4, 5, 7, 8] {
            let mut per_shard = vec![0u32; count as usize];
            for i in 0..3000 {
                per_shard[shard_of("acme-cloud", &format!("web-{i:04}"), count) as usize] += 1;
            }
            let even = 3000 / count;
            assert!(
                per_shard.iter().all(|n| n.abs_diff(even) <= even / 5),
                "{count} shards: {per_shard:?}"
            );
        }
    }

    #[test]
    fn the_label_decides_and_a_missing_or_bad_label_falls_back_to_the_hash() {
        let hashed = shard_of("acme", "web", 3);
        let other = (hashed + 1) % 3;
        assert_eq!(owner(&meta(Some("acme"), "web", Some(&other.to_string())), 3), other);
        assert_eq!(owner(&meta(Some("acme"), "web", None), 3), hashed);
        assert_eq!(owner(&meta(Some("acme"), "web", Some("7")), 3), hashed, "out of range");
        assert_eq!(owner(&meta(Some("acme"), "web", Some("x")), 3), hashed, "not a number");
        let shard = Shard::new(other, 3).unwrap();
        assert!(shard.owns(&meta(Some("acme"), "web", Some(&other.to_string()))));
        assert!(!shard.owns(&meta(Some("acme"), "web", None)));
    }

    #[test]
    fn exactly_one_shard_owns_each_object() {
        for name in ["a", "globex", "web-0001", "p-x.y"] {
            let m = meta(None, name, None);
            let owners = (0..5).filter(|i| Shard::new(*i, 5).unwrap().owns(&m)).count();
            assert_eq!(owners, 1, "{name}");
        }
    }

    #[test]
    fn bad_shard_numbers_are_refused_with_a_message() {
        assert!(Shard::new(0, 1).is_ok());
        let error = Shard::new(3, 3).unwrap_err().to_string();
        assert!(error.contains("--shard-index"), "{error}");
        assert!(Shard::new(0, 0).is_err());
        assert!(Shard::new(0, MAX_SHARDS + 1).is_err());
    }

    #[test]
    fn each_shard_has_its_own_lease() {
        assert_eq!(Shard::new(2, 3).unwrap().lease_name("navigator"), "navigator-shard-2");
    }
}
