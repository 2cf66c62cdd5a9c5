//! Burn-down of a commitment contract: consumed, remaining, and where the current rate leads.

use jiff::Timestamp;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;

use super::money::round_half_even;

/// The term of a contract: from `start` (inclusive) to `end` (exclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Term {
    start: Timestamp,
    end: Timestamp,
}

/// Where an instant lies relative to a term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum TermPhase {
    /// Before the start: the contract is not in force yet.
    Pending,
    /// From the start (inclusive) to the end (exclusive).
    Active,
    /// At or after the end.
    Expired,
}

/// Why a burn-down could not be computed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BurnDownError {
    /// A term whose end is not after its start.
    #[error("the term ends ({end}) before or when it starts ({start})")]
    EmptyTerm { start: Timestamp, end: Timestamp },
    /// A negative committed or consumed quantity.
    #[error("committed and consumed quantities cannot be negative")]
    Negative,
    /// A number too large for the decimal type.
    #[error("burn-down numbers too large to compute")]
    Overflow,
}

impl Term {
    /// The term from `start` to `end`; `end` must be after `start`.
    pub fn new(start: Timestamp, end: Timestamp) -> Result<Term, BurnDownError> {
        if end <= start {
            return Err(BurnDownError::EmptyTerm { start, end });
        }
        Ok(Term { start, end })
    }
    /// The first instant of the term.
    pub fn start(&self) -> Timestamp {
        self.start
    }
    /// The first instant after the term.
    pub fn end(&self) -> Timestamp {
        self.end
    }
    /// The phase at `now`.
    pub fn phase(&self, now: Timestamp) -> TermPhase {
        if now < self.start {
            TermPhase::Pending
        } else if now < self.end {
            TermPhase::Active
        } else {
            TermPhase::Expired
        }
    }
    /// The next instant after `now` at which the phase changes (start or end), if any: when to look again.
    pub fn next_boundary(&self, now: Timestamp) -> Option<Timestamp> {
        match self.phase(now) {
            TermPhase::Pending => Some(self.start),
            TermPhase::Active => Some(self.end),
            TermPhase::Expired => None,
        }
    }
}

/// The burn-down of a commitment at one instant. All quantities are in the commitment's unit (a quantity
/// such as vCPU-hours, or an amount of money).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BurnDown {
    /// The phase of the term at the instant.
    pub phase: TermPhase,
    /// The committed quantity.
    pub committed: Decimal,
    /// What was consumed so far.
    pub consumed: Decimal,
    /// `committed − consumed`, but never below zero: consumption beyond the commitment is `overage`.
    pub remaining: Decimal,
    /// `consumed − committed` when positive, else zero.
    pub overage: Decimal,
    /// Consumption at the end of the term if it goes on at the average rate so far:
    /// `consumed × term length / time elapsed`, rounded half to even to the requested scale. The actual
    /// consumption once the term is over; `None` before the term and at its very first instant (no rate yet).
    pub forecast_at_end: Option<Decimal>,
    /// When consumption reaches the commitment at that rate, if that happens before the end of the term and
    /// has not happened yet (whole milliseconds, rounded half to even).
    pub forecast_exhausted_at: Option<Timestamp>,
}

/// The burn-down of `committed` given `consumed` so far in `term`, at `now`.
///
/// The forecast is linear in time from the start of the term; `scale` is the number of decimal places it is
/// rounded to (the currency's minor unit for an amount of money, say 3 for a quantity). Consumption before
/// the term (which should be zero) is reported as is and not forecast.
pub fn burn_down(
    committed: Decimal,
    consumed: Decimal,
    term: Term,
    now: Timestamp,
    scale: u32,
) -> Result<BurnDown, BurnDownError> {
    if committed < Decimal::ZERO || consumed < Decimal::ZERO {
        return Err(BurnDownError::Negative);
    }
    let difference = committed.checked_sub(consumed).ok_or(BurnDownError::Overflow)?;
    let (remaining, overage) = if difference >= Decimal::ZERO {
        (difference, Decimal::ZERO)
    } else {
        (Decimal::ZERO, -difference)
    };
    let phase = term.phase(now);
    let start_ms = term.start.as_millisecond();
    let length = Decimal::from(term.end.as_millisecond() - start_ms);
    let elapsed = Decimal::from(now.as_millisecond() - start_ms);
    let (forecast_at_end, forecast_exhausted_at) = match phase {
        TermPhase::Pending => (None, None),
        TermPhase::Expired => (Some(consumed), None),
        TermPhase::Active if elapsed.is_zero() => (None, None),
        TermPhase::Active => {
            let forecast = consumed
                .checked_mul(length)
                .and_then(|x| x.checked_div(elapsed))
                .ok_or(BurnDownError::Overflow)?;
            let exhausted_at = if consumed.is_zero() || consumed >= committed || forecast <= committed {
                None
            } else {
                // elapsed × committed / consumed < length, so this is inside the term.
                elapsed
                    .checked_mul(committed)
                    .and_then(|x| x.checked_div(consumed))
                    .map(|x| round_half_even(x, 0))
                    .and_then(|x| x.to_i64())
                    .and_then(|offset| Timestamp::from_millisecond(start_ms.checked_add(offset)?).ok())
            };
            (Some(round_half_even(forecast, scale)), exhausted_at)
        }
    };
    Ok(BurnDown {
        phase,
        committed,
        consumed,
        remaining,
        overage,
        forecast_at_end,
        forecast_exhausted_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }
    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }
    fn year_2026() -> Term {
        // 365 days.
        Term::new(ts("2026-01-01T00:00:00Z"), ts("2027-01-01T00:00:00Z")).unwrap()
    }

    #[test]
    fn term_must_not_be_empty() {
        let t = ts("2026-01-01T00:00:00Z");
        assert!(matches!(Term::new(t, t), Err(BurnDownError::EmptyTerm { .. })));
        assert!(Term::new(ts("2026-02-01T00:00:00Z"), t).is_err());
    }

    #[test]
    fn phases_and_boundaries() {
        let term = year_2026();
        assert_eq!(term.phase(ts("2025-12-31T23:59:59Z")), TermPhase::Pending);
        assert_eq!(term.next_boundary(ts("2025-12-31T23:59:59Z")), Some(term.start()));
        assert_eq!(term.phase(term.start()), TermPhase::Active);
        assert_eq!(term.next_boundary(term.start()), Some(term.end()));
        assert_eq!(term.phase(term.end()), TermPhase::Expired);
        assert_eq!(term.next_boundary(term.end()), None);
    }

    #[test]
    fn linear_forecast_in_the_middle_of_the_term() {
        // 73 of 365 days elapsed (a fifth), 2,000 of 12,000 consumed: 10,000 at the end, under commitment.
        let b = burn_down(d("12000"), d("2000"), year_2026(), ts("2026-03-15T00:00:00Z"), 2).unwrap();
        assert_eq!(b.phase, TermPhase::Active);
        assert_eq!((b.remaining, b.overage), (d("10000"), d("0")));
        assert_eq!(b.forecast_at_end.unwrap().to_string(), "10000.00");
        assert_eq!(b.forecast_exhausted_at, None);

        // 3,000 in a fifth: 15,000 at the end; 12,000 reached after 73 × 4 = 292 days, on 20 October.
        let b = burn_down(d("12000"), d("3000"), year_2026(), ts("2026-03-15T00:00:00Z"), 2).unwrap();
        assert_eq!(b.forecast_at_end, Some(d("15000")));
        assert_eq!(b.forecast_exhausted_at, Some(ts("2026-10-20T00:00:00Z")));
    }

    #[test]
    fn forecast_is_rounded_half_even_to_the_scale() {
        // Half of the 8,760-hour term: the forecast doubles consumption.
        let half = year_2026().start() + jiff::SignedDuration::from_hours(4380);
        assert_eq!(half, ts("2026-07-02T12:00:00Z"));
        let forecast = |consumed: &str, scale| {
            burn_down(d("100"), d(consumed), year_2026(), half, scale)
                .unwrap()
                .forecast_at_end
                .unwrap()
                .to_string()
        };
        assert_eq!(forecast("0.00125", 3), "0.002"); // 0.0025 → 0.002
        assert_eq!(forecast("0.00175", 3), "0.004"); // 0.0035 → 0.004
        assert_eq!(forecast("0.00126", 3), "0.003"); // 0.00252 → 0.003
        assert_eq!(forecast("7.25", 0), "14"); // 14.5 → 14
        assert_eq!(forecast("7.75", 0), "16"); // 15.5 → 16
        assert_eq!(forecast("10", 2), "20.00");
    }

    #[test]
    fn before_at_start_and_after_the_term() {
        let term = year_2026();
        let before = burn_down(d("500"), d("0"), term, ts("2025-06-01T00:00:00Z"), 0).unwrap();
        assert_eq!(before.phase, TermPhase::Pending);
        assert_eq!((before.remaining, before.forecast_at_end), (d("500"), None));
        let at_start = burn_down(d("500"), d("0"), term, term.start(), 0).unwrap();
        assert_eq!((at_start.phase, at_start.forecast_at_end), (TermPhase::Active, None));
        let after = burn_down(d("500"), d("650"), term, ts("2027-03-01T00:00:00Z"), 0).unwrap();
        assert_eq!(after.phase, TermPhase::Expired);
        assert_eq!((after.remaining, after.overage), (d("0"), d("150")));
        assert_eq!(after.forecast_at_end, Some(d("650")));
        assert_eq!(after.forecast_exhausted_at, None);
    }

    #[test]
    fn already_exhausted_and_idle_contracts() {
        let term = year_2026();
        let over = burn_down(d("100"), d("120"), term, ts("2026-07-02T12:00:00Z"), 2).unwrap();
        assert_eq!((over.remaining, over.overage), (d("0"), d("20")));
        assert_eq!(over.forecast_at_end, Some(d("240")));
        assert_eq!(over.forecast_exhausted_at, None, "already reached, no forecast");
        let idle = burn_down(d("100"), d("0"), term, ts("2026-07-02T12:00:00Z"), 2).unwrap();
        assert_eq!(idle.forecast_at_end, Some(d("0")));
        assert_eq!(idle.forecast_exhausted_at, None);
    }

    #[test]
    fn negative_numbers_are_refused() {
        let now = ts("2026-07-01T00:00:00Z");
        assert_eq!(
            burn_down(d("-1"), d("0"), year_2026(), now, 2),
            Err(BurnDownError::Negative)
        );
        assert_eq!(
            burn_down(d("1"), d("-0.5"), year_2026(), now, 2),
            Err(BurnDownError::Negative)
        );
    }
}
