//! Fault injection: which requests fail, and how, drawn from a seeded generator.
//!
//! Every `/v1` request draws from the generator in arrival order, whatever the rates, so the same seed
//! and the same sequence of requests give the same faults. Half of the 5xx answers and timeouts on a
//! mutating request come after the mutation was applied (the answer is lost), so a client only converges
//! without duplicates if it is idempotent.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

/// The fault settings (flags at start, `PUT /sim/faults` at run time).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultConfig {
    /// Share of requests answered with a 5xx (0 to 1).
    #[serde(rename = "fault5xxRate")]
    pub rate_5xx: f64,
    /// Share of requests answered 429 with Retry-After.
    #[serde(rename = "fault429Rate")]
    pub rate_429: f64,
    /// The Retry-After of those 429s, in seconds.
    pub retry_after_seconds: u64,
    /// Share of requests that hang (longer than a client's timeout) and then answer 504.
    #[serde(rename = "faultTimeoutRate")]
    pub rate_timeout: f64,
    /// How long a hanging request hangs, in seconds.
    pub hang_seconds: u64,
    /// Latency added to every `/v1` request, in milliseconds.
    pub latency_ms: u64,
    /// The seed of the fault sequence.
    pub seed: u64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            rate_5xx: 0.0,
            rate_429: 0.0,
            retry_after_seconds: 1,
            rate_timeout: 0.0,
            hang_seconds: 60,
            latency_ms: 0,
            seed: 0,
        }
    }
}

impl FaultConfig {
    pub fn validate(&self) -> Result<(), String> {
        for (name, rate) in [
            ("fault5xxRate", self.rate_5xx),
            ("fault429Rate", self.rate_429),
            ("faultTimeoutRate", self.rate_timeout),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1, not {rate}"));
            }
        }
        if self.rate_5xx + self.rate_429 + self.rate_timeout > 1.0 {
            return Err("the fault rates must add up to at most 1".into());
        }
        Ok(())
    }
}

/// A change of fault settings: absent fields keep their value; a seed restarts the sequence.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultPatch {
    #[serde(rename = "fault5xxRate", skip_serializing_if = "Option::is_none")]
    pub rate_5xx: Option<f64>,
    #[serde(rename = "fault429Rate", skip_serializing_if = "Option::is_none")]
    pub rate_429: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
    #[serde(rename = "faultTimeoutRate", skip_serializing_if = "Option::is_none")]
    pub rate_timeout: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hang_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl FaultPatch {
    /// No faults at all.
    pub fn none() -> Self {
        FaultPatch {
            rate_5xx: Some(0.0),
            rate_429: Some(0.0),
            rate_timeout: Some(0.0),
            latency_ms: Some(0),
            ..FaultPatch::default()
        }
    }
}

/// What happens to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Answer 5xx; `after`: apply the request first.
    ServerError {
        after: bool,
    },
    Throttle {
        retry_after: Duration,
    },
    /// Hang, then answer 504; `after`: apply the request first.
    Hang {
        after: bool,
        duration: Duration,
    },
}

impl Fault {
    /// The label under which `/sim/stats` counts it.
    pub fn kind(self) -> Option<&'static str> {
        match self {
            Fault::None => None,
            Fault::ServerError { after: false } => Some("5xx-before"),
            Fault::ServerError { after: true } => Some("5xx-after"),
            Fault::Throttle { .. } => Some("429"),
            Fault::Hang { after: false, .. } => Some("timeout-before"),
            Fault::Hang { after: true, .. } => Some("timeout-after"),
        }
    }
}

pub struct Faults {
    config: FaultConfig,
    rng: StdRng,
}

impl Faults {
    pub fn new(config: FaultConfig) -> Self {
        let rng = StdRng::seed_from_u64(config.seed);
        Faults { config, rng }
    }

    pub fn config(&self) -> &FaultConfig {
        &self.config
    }

    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.config.latency_ms)
    }

    pub fn apply(&mut self, patch: &FaultPatch) -> Result<(), String> {
        let mut config = self.config.clone();
        let FaultPatch {
            rate_5xx,
            rate_429,
            retry_after_seconds,
            rate_timeout,
            hang_seconds,
            latency_ms,
            seed,
        } = patch.clone();
        config.rate_5xx = rate_5xx.unwrap_or(config.rate_5xx);
        config.rate_429 = rate_429.unwrap_or(config.rate_429);
        config.retry_after_seconds = retry_after_seconds.unwrap_or(config.retry_after_seconds);
        config.rate_timeout = rate_timeout.unwrap_or(config.rate_timeout);
        config.hang_seconds = hang_seconds.unwrap_or(config.hang_seconds);
        config.latency_ms = latency_ms.unwrap_or(config.latency_ms);
        config.validate()?;
        if let Some(seed) = seed {
            config.seed = seed;
            self.rng = StdRng::seed_from_u64(seed);
        }
        self.config = config;
        Ok(())
    }

    /// Draws the fault of the next request. Faults "after" apply only to requests that change state.
    pub fn draw(&mut self, mutating: bool) -> Fault {
        let roll: f64 = self.rng.random();
        let after = mutating && self.rng.random_bool(0.5);
        let c = &self.config;
        if roll < c.rate_5xx {
            Fault::ServerError { after }
        } else if roll < c.rate_5xx + c.rate_429 {
            Fault::Throttle {
                retry_after: Duration::from_secs(c.retry_after_seconds),
            }
        } else if roll < c.rate_5xx + c.rate_429 + c.rate_timeout {
            Fault::Hang {
                after,
                duration: Duration::from_secs(c.hang_seconds),
            }
        } else {
            Fault::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(seed: u64) -> FaultConfig {
        FaultConfig {
            rate_5xx: 0.2,
            rate_429: 0.1,
            rate_timeout: 0.05,
            seed,
            ..FaultConfig::default()
        }
    }

    fn sequence(faults: &mut Faults, n: usize) -> Vec<Fault> {
        (0..n).map(|i| faults.draw(i % 3 == 0)).collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_faults() {
        let a = sequence(&mut Faults::new(config(7)), 500);
        let b = sequence(&mut Faults::new(config(7)), 500);
        let c = sequence(&mut Faults::new(config(8)), 500);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn rates_are_roughly_honoured() {
        let faults = sequence(&mut Faults::new(config(1)), 10_000);
        let count = |f: fn(&Fault) -> bool| faults.iter().filter(|x| f(x)).count();
        let errors = count(|f| matches!(f, Fault::ServerError { .. }));
        let throttles = count(|f| matches!(f, Fault::Throttle { .. }));
        let hangs = count(|f| matches!(f, Fault::Hang { .. }));
        assert!((1_700..2_300).contains(&errors), "{errors}");
        assert!((800..1_200).contains(&throttles), "{throttles}");
        assert!((350..650).contains(&hangs), "{hangs}");
        assert!(count(|f| matches!(f, Fault::ServerError { after: true })) > 0);
        // Reads are never "applied, then failed".
        let mut reads = Faults::new(config(1));
        assert!((0..1000).all(|_| !matches!(reads.draw(false), Fault::ServerError { after: true })));
    }

    #[test]
    fn patches_are_validated_and_reseed() {
        let mut faults = Faults::new(FaultConfig::default());
        assert!(
            faults
                .apply(&FaultPatch {
                    rate_5xx: Some(1.5),
                    ..FaultPatch::default()
                })
                .is_err()
        );
        assert!(
            faults
                .apply(&FaultPatch {
                    rate_5xx: Some(0.6),
                    rate_429: Some(0.6),
                    ..FaultPatch::default()
                })
                .is_err()
        );
        assert_eq!(
            faults.config(),
            &FaultConfig::default(),
            "a refused patch changes nothing"
        );
        faults
            .apply(&FaultPatch {
                rate_5xx: Some(0.5),
                seed: Some(3),
                ..FaultPatch::default()
            })
            .unwrap();
        let first = sequence(&mut faults, 50);
        faults
            .apply(&FaultPatch {
                seed: Some(3),
                ..FaultPatch::default()
            })
            .unwrap();
        assert_eq!(sequence(&mut faults, 50), first);
        faults.apply(&FaultPatch::none()).unwrap();
        assert!(sequence(&mut faults, 100).iter().all(|f| *f == Fault::None));
    }
}
