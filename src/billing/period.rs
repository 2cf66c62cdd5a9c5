//! Billing periods and the names of the invoices written for them.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Serialize;

/// A billing period: from the start of `start_date` (inclusive) to the start of `end_date` (exclusive),
/// both in the billing time zone. `start` and `end` are the same bounds as instants, the window to ask the
/// meter for.
///
/// Periods come from a [`BillingCycle`]: a period is one calendar month long and starts on the billing day.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Period {
    start: Timestamp,
    end: Timestamp,
    start_date: Date,
    end_date: Date,
}

impl Period {
    /// The first instant of the period.
    pub fn start(&self) -> Timestamp {
        self.start
    }
    /// The first instant after the period.
    pub fn end(&self) -> Timestamp {
        self.end
    }
    /// The first day of the period, in the billing time zone.
    pub fn start_date(&self) -> Date {
        self.start_date
    }
    /// The first day after the period, in the billing time zone (the period's last day is the day before).
    pub fn end_date(&self) -> Date {
        self.end_date
    }
    /// Whether `instant` lies in the period (`start <= instant < end`).
    pub fn contains(&self, instant: Timestamp) -> bool {
        self.start <= instant && instant < self.end
    }
    /// Whether the period is over at `now` (`end <= now`): usage for it is final and it can be invoiced.
    pub fn is_closed_at(&self, now: Timestamp) -> bool {
        self.end <= now
    }
    /// A short label for the period: `2026-11` for a period starting on the 1st of November 2026,
    /// `2026-11-15` for one starting on the 15th. Distinct periods of one cycle have distinct labels.
    pub fn label(&self) -> String {
        period_label(self.start_date)
    }
    /// The last day of the period (inclusive), in the billing time zone: the day before `end_date`.
    pub fn last_day(&self) -> Date {
        self.end_date.saturating_sub(jiff::ToSpan::day(1))
    }
}

/// The label of the period that starts on `start_date`: `2026-11` when it starts on the 1st of the month,
/// `2026-11-15` otherwise (see [`Period::label`]). Invoices carry it, and exports select periods by it.
pub fn period_label(start_date: Date) -> String {
    let d = start_date;
    if d.day() == 1 {
        format!("{:04}-{:02}", d.year(), d.month())
    } else {
        format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
    }
}

/// When billing periods start: every month on `billing_day` (1 to 28, so that every month has it) at
/// midnight in `time_zone`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillingCycle {
    day: i8,
    time_zone: TimeZone,
}

/// Why a billing period could not be computed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    /// A billing day outside 1..=28.
    #[error("billing day {0} is out of range: it must be between 1 and 28")]
    BillingDay(u8),
    /// A period so close to the limits of the calendar that it cannot be represented.
    #[error("billing period out of range: {0}")]
    OutOfRange(String),
}

fn out_of_range(e: jiff::Error) -> PeriodError {
    PeriodError::OutOfRange(e.to_string())
}

impl BillingCycle {
    /// A monthly cycle starting on `billing_day` (1 to 28) at midnight in `time_zone`.
    pub fn new(billing_day: u8, time_zone: TimeZone) -> Result<BillingCycle, PeriodError> {
        if !(1..=28).contains(&billing_day) {
            return Err(PeriodError::BillingDay(billing_day));
        }
        Ok(BillingCycle {
            day: billing_day as i8,
            time_zone,
        })
    }

    /// A monthly cycle starting on `billing_day` (1 to 28) at midnight UTC.
    pub fn utc(billing_day: u8) -> Result<BillingCycle, PeriodError> {
        BillingCycle::new(billing_day, TimeZone::UTC)
    }

    /// The day of the month on which periods start.
    pub fn billing_day(&self) -> u8 {
        self.day as u8
    }

    /// The time zone whose midnight starts a period.
    pub fn time_zone(&self) -> &TimeZone {
        &self.time_zone
    }

    /// The period that contains `instant`.
    pub fn period_containing(&self, instant: Timestamp) -> Result<Period, PeriodError> {
        let local = instant.to_zoned(self.time_zone.clone()).date();
        let (year, month) = if local.day() >= self.day {
            (local.year(), local.month())
        } else {
            previous_month(local.year(), local.month())
        };
        self.period_starting_in(year, month)
    }

    /// The last period that is over at `now`: the one before the period containing `now`. This is the
    /// period to invoice at `now`.
    pub fn last_closed(&self, now: Timestamp) -> Result<Period, PeriodError> {
        let current = self.period_containing(now)?;
        self.previous(&current)
    }

    /// The period just before `period`.
    pub fn previous(&self, period: &Period) -> Result<Period, PeriodError> {
        let (year, month) = previous_month(period.start_date.year(), period.start_date.month());
        self.period_starting_in(year, month)
    }

    /// The period just after `period`.
    pub fn next(&self, period: &Period) -> Result<Period, PeriodError> {
        let (year, month) = next_month(period.start_date.year(), period.start_date.month());
        self.period_starting_in(year, month)
    }

    fn period_starting_in(&self, year: i16, month: i8) -> Result<Period, PeriodError> {
        let start_date = Date::new(year, month, self.day).map_err(out_of_range)?;
        let (next_year, next_month) = next_month(year, month);
        let end_date = Date::new(next_year, next_month, self.day).map_err(out_of_range)?;
        // Midnight that does not exist (a DST gap) resolves to the first instant of the day.
        let start = start_date
            .to_zoned(self.time_zone.clone())
            .map_err(out_of_range)?
            .timestamp();
        let end = end_date
            .to_zoned(self.time_zone.clone())
            .map_err(out_of_range)?
            .timestamp();
        Ok(Period {
            start,
            end,
            start_date,
            end_date,
        })
    }
}

fn previous_month(year: i16, month: i8) -> (i16, i8) {
    if month == 1 { (year - 1, 12) } else { (year, month - 1) }
}

fn next_month(year: i16, month: i8) -> (i16, i8) {
    if month == 12 { (year + 1, 1) } else { (year, month + 1) }
}

/// The Kubernetes object name of the invoice of `customer` for `period`: `<customer>-<period label>`, for
/// example `acme-2026-11` (see [`Period::label`]).
///
/// The name is always a valid DNS-1123 label (lower-case letters, digits and `-`, starting and ending with a
/// letter or digit, at most 63 characters) and depends only on its inputs. When `customer` is not itself
/// such a label short enough to fit (upper case, dots, too long), it is lower-cased, every other
/// character becomes `-`, it is shortened to fit, and 8 hexadecimal digits of a hash of the original
/// customer name are added (`acme-corp-1f0e3c2a-2026-11`), so that different customers still get
/// different names. Distinct periods of one customer always get distinct names.
pub fn invoice_name(customer: &str, period: &Period) -> String {
    const MAX: usize = 63;
    let label = period.label();
    let room = MAX - 1 - label.len();
    let is_label_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    let plain = !customer.is_empty()
        && customer.len() <= room
        && customer.chars().all(is_label_char)
        && !customer.starts_with('-')
        && !customer.ends_with('-');
    if plain {
        return format!("{customer}-{label}");
    }
    let hash = format!("{:08x}", fnv1a(customer.as_bytes()) as u32);
    let mut base = String::new();
    for c in customer.chars().map(|c| c.to_ascii_lowercase()) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if !(c == '-' && (base.is_empty() || base.ends_with('-'))) {
            base.push(c);
        }
    }
    // `base` is ASCII, so byte truncation is character truncation.
    base.truncate(room - 1 - hash.len());
    let base = base.trim_end_matches('-');
    if base.is_empty() {
        format!("{hash}-{label}")
    } else {
        format!("{base}-{hash}-{label}")
    }
}

/// 64-bit FNV-1a: a small, stable hash (the standard library's hashers may change between releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Whether `name` is a DNS-1123 label: 1 to 63 lower-case letters, digits and `-`, starting and ending
/// with a letter or digit.
pub fn is_dns1123_label(name: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| alnum(c) || c == '-')
        && name.starts_with(alnum)
        && name.ends_with(alnum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;
    use proptest::prelude::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn berlin() -> TimeZone {
        TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap()
    }

    #[test]
    fn billing_day_must_be_1_to_28() {
        assert_eq!(BillingCycle::utc(0), Err(PeriodError::BillingDay(0)));
        assert_eq!(BillingCycle::utc(29), Err(PeriodError::BillingDay(29)));
        assert!(BillingCycle::utc(1).is_ok());
        assert!(BillingCycle::utc(28).is_ok());
    }

    #[test]
    fn period_containing_an_instant_on_the_first() {
        let cycle = BillingCycle::utc(1).unwrap();
        let p = cycle.period_containing(ts("2026-11-17T08:30:00Z")).unwrap();
        assert_eq!(p.start(), ts("2026-11-01T00:00:00Z"));
        assert_eq!(p.end(), ts("2026-12-01T00:00:00Z"));
        assert_eq!((p.start_date(), p.end_date()), (date(2026, 11, 1), date(2026, 12, 1)));
        assert_eq!(p.label(), "2026-11");
        assert_eq!(p.last_day(), date(2026, 11, 30));
        assert_eq!(period_label(date(2026, 11, 15)), "2026-11-15");
        // Bounds: the start belongs to the period, the end to the next one.
        assert_eq!(cycle.period_containing(ts("2026-11-01T00:00:00Z")).unwrap(), p);
        assert_eq!(
            cycle.period_containing(ts("2026-10-31T23:59:59.999Z")).unwrap().label(),
            "2026-10"
        );
        assert_eq!(
            cycle.period_containing(ts("2026-12-01T00:00:00Z")).unwrap().label(),
            "2026-12"
        );
        assert!(p.contains(ts("2026-11-30T23:59:59Z")) && !p.contains(p.end()));
    }

    #[test]
    fn period_with_a_mid_month_billing_day_across_the_year_end() {
        let cycle = BillingCycle::utc(15).unwrap();
        let p = cycle.period_containing(ts("2027-01-10T12:00:00Z")).unwrap();
        assert_eq!((p.start_date(), p.end_date()), (date(2026, 12, 15), date(2027, 1, 15)));
        assert_eq!(p.label(), "2026-12-15");
        let p = cycle.period_containing(ts("2027-01-15T00:00:00Z")).unwrap();
        assert_eq!((p.start_date(), p.end_date()), (date(2027, 1, 15), date(2027, 2, 15)));
    }

    #[test]
    fn previous_next_and_last_closed() {
        let cycle = BillingCycle::utc(1).unwrap();
        let now = ts("2026-01-03T00:00:00Z");
        let closed = cycle.last_closed(now).unwrap();
        assert_eq!(
            (closed.start_date(), closed.end_date()),
            (date(2025, 12, 1), date(2026, 1, 1))
        );
        assert!(closed.is_closed_at(now));
        let current = cycle.period_containing(now).unwrap();
        assert!(!current.is_closed_at(now));
        assert_eq!(cycle.next(&closed).unwrap(), current);
        assert_eq!(cycle.previous(&current).unwrap(), closed);
        // Exactly at a boundary, the period that just ended is the last closed one.
        let closed = cycle.last_closed(ts("2026-02-01T00:00:00Z")).unwrap();
        assert_eq!(closed.start_date(), date(2026, 1, 1));
    }

    #[test]
    fn periods_follow_midnight_in_the_billing_time_zone() {
        let cycle = BillingCycle::new(1, berlin()).unwrap();
        // 23:30 UTC on 31 October is already 1 November in Berlin (CET, UTC+1).
        let p = cycle.period_containing(ts("2026-10-31T23:30:00Z")).unwrap();
        assert_eq!(p.label(), "2026-11");
        assert_eq!(p.start(), ts("2026-10-31T23:00:00Z"));
        assert_eq!(p.end(), ts("2026-11-30T23:00:00Z"));
        // April starts in summer time (CEST, UTC+2).
        let p = cycle.period_containing(ts("2026-04-10T00:00:00Z")).unwrap();
        assert_eq!(p.start(), ts("2026-03-31T22:00:00Z"));
        assert_eq!(p.end(), ts("2026-04-30T22:00:00Z"));
        let march = cycle.previous(&p).unwrap();
        assert_eq!(march.start(), ts("2026-02-28T23:00:00Z"));
        assert_eq!(march.end(), p.start(), "periods tile time without gaps");
    }

    #[test]
    fn invoice_names() {
        let cycle = BillingCycle::utc(1).unwrap();
        let nov = cycle.period_containing(ts("2026-11-17T08:30:00Z")).unwrap();
        assert_eq!(invoice_name("acme", &nov), "acme-2026-11");
        let mid = BillingCycle::utc(15)
            .unwrap()
            .period_containing(ts("2026-11-17T08:30:00Z"))
            .unwrap();
        assert_eq!(invoice_name("acme", &mid), "acme-2026-11-15");

        let odd = invoice_name("Acme.Corp", &nov);
        assert!(
            odd.starts_with("acme-corp-") && odd.ends_with("-2026-11") && odd.len() == 26,
            "{odd}"
        );
        assert_ne!(odd, invoice_name("acme.corp", &nov));
        assert_ne!(odd, invoice_name("acme-corp", &nov));
        let long = "a".repeat(63);
        let name = invoice_name(&long, &nov);
        assert_eq!(name.len(), 63, "{name}");
        assert!(is_dns1123_label(&name), "{name}");
        assert_ne!(name, invoice_name(&"a".repeat(64), &nov));
        let empty = invoice_name("", &nov);
        assert!(is_dns1123_label(&empty) && empty.ends_with("-2026-11"), "{empty}");
        let symbols = invoice_name("---", &nov);
        assert!(is_dns1123_label(&symbols), "{symbols}");
    }

    #[test]
    fn dns1123_label_check() {
        assert!(is_dns1123_label("a") && is_dns1123_label("acme-2026-11"));
        assert!(!is_dns1123_label("") && !is_dns1123_label("-a") && !is_dns1123_label("a-"));
        assert!(!is_dns1123_label("A") && !is_dns1123_label("a.b") && !is_dns1123_label(&"a".repeat(64)));
    }

    proptest! {
        #![proptest_config(crate::billing::tests::proptest_config())]
        #[test]
        fn invoice_names_are_labels_and_distinct_per_period(
            customer in "\\PC{0,80}",
            day in 1u8..=28,
            secs_a in 0i64..4_102_444_800,
            secs_b in 0i64..4_102_444_800,
        ) {
            let cycle = BillingCycle::utc(day).unwrap();
            let a = cycle.period_containing(Timestamp::from_second(secs_a).unwrap()).unwrap();
            let b = cycle.period_containing(Timestamp::from_second(secs_b).unwrap()).unwrap();
            let (na, nb) = (invoice_name(&customer, &a), invoice_name(&customer, &b));
            prop_assert!(is_dns1123_label(&na), "{:?}", na);
            prop_assert_eq!(a == b, na == nb);
            prop_assert_eq!(cycle.next(&a).unwrap() == b, cycle.previous(&b).unwrap() == a);
        }

        #[test]
        fn periods_contain_their_instant_and_tile_time(day in 1u8..=28, secs in 0i64..4_102_444_800, offset in -12i8..=14) {
            let tz = TimeZone::fixed(jiff::tz::offset(offset));
            let cycle = BillingCycle::new(day, tz).unwrap();
            let instant = Timestamp::from_second(secs).unwrap();
            let p = cycle.period_containing(instant).unwrap();
            prop_assert!(p.contains(instant));
            prop_assert_eq!(p.start_date().day() as u8, day);
            prop_assert_eq!(cycle.next(&p).unwrap().start(), p.end());
            prop_assert_eq!(cycle.previous(&p).unwrap().end(), p.start());
            prop_assert!(cycle.last_closed(instant).unwrap().is_closed_at(instant));
        }

        #[test]
        fn plain_customer_names_are_kept(customer in "[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?", secs in 0i64..4_102_444_800) {
            let p = BillingCycle::utc(1).unwrap().period_containing(Timestamp::from_second(secs).unwrap()).unwrap();
            prop_assert_eq!(invoice_name(&customer, &p), format!("{}-{}", customer, p.label()));
        }
    }
}
