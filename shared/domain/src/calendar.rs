//! Working-day calendar in Asia/Ho_Chi_Minh: processing times are counted in working days.
//!
//! Vietnam has kept UTC+07:00 without daylight saving since 1975, so local time is a fixed
//! offset; no time-zone database is needed on Lambda.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use jiff::Timestamp;
use jiff::civil::{Date, Time, Weekday};
use jiff::tz::{TimeZone, offset};
use serde::Deserialize;

use crate::lunar;

/// Dossiers received at or after this local time start counting on the next working day.
pub const CUT_OFF: Time = Time::constant(17, 0, 0, 0);

/// Years for which the rule-based holidays are computed.
const FIRST_YEAR: i16 = 2000;
const LAST_YEAR: i16 = 2099;

pub fn vietnam_tz() -> TimeZone {
    TimeZone::fixed(offset(7))
}

/// The local (Vietnamese) civil date of an instant.
pub fn local_date(at: Timestamp) -> Date {
    at.to_zoned(vietnam_tz()).date()
}

#[derive(Deserialize)]
struct AdjustmentFile {
    adjustments: BTreeMap<String, YearAdjustment>,
}

#[derive(Deserialize)]
struct YearAdjustment {
    #[serde(default)]
    off: Vec<Date>,
    #[serde(default)]
    work: Vec<Date>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum CalendarError {
    #[error("calendar adjustments: {0}")]
    Adjustments(String),
}

/// Working days: Monday to Friday, minus public holidays, plus make-up working Saturdays.
#[derive(Debug, Clone)]
pub struct WorkingCalendar {
    /// The rule holidays of each year from `FIRST_YEAR`, computed when a date of that year
    /// is first asked about: the lunar new year takes trigonometry, and a function that
    /// starts should not pay for a century of them (it was most of the submission
    /// function's own start-up work).
    rules: Box<[OnceLock<Vec<Date>>]>,
    /// The yearly decisions: a date made a holiday (`true`) or a working day (`false`).
    decided: BTreeMap<Date, bool>,
    extra_workdays: BTreeSet<Date>,
}

impl WorkingCalendar {
    /// The Vietnamese calendar: computed rules plus the yearly decisions shipped in
    /// `data/calendar_vn.json`.
    pub fn vietnam() -> &'static WorkingCalendar {
        static CAL: OnceLock<WorkingCalendar> = OnceLock::new();
        CAL.get_or_init(|| {
            WorkingCalendar::with_adjustments(include_str!("../data/calendar_vn.json"))
                .expect("the shipped calendar data parses")
        })
    }

    /// Rules for every year plus the adjustments in `json` (same shape as the shipped file).
    pub fn with_adjustments(json: &str) -> Result<WorkingCalendar, CalendarError> {
        let file: AdjustmentFile =
            serde_json::from_str(json).map_err(|e| CalendarError::Adjustments(e.to_string()))?;
        let mut decided = BTreeMap::new();
        let mut extra_workdays = BTreeSet::new();
        // In the file's order; within a year, its working days first, then its days off.
        for adj in file.adjustments.values() {
            for d in &adj.work {
                decided.insert(*d, false);
                if is_weekend(*d) {
                    extra_workdays.insert(*d);
                }
            }
            for d in &adj.off {
                decided.insert(*d, true);
            }
        }
        let years = (LAST_YEAR - FIRST_YEAR + 1) as usize;
        Ok(WorkingCalendar {
            rules: (0..years).map(|_| OnceLock::new()).collect(),
            decided,
            extra_workdays,
        })
    }

    pub fn is_holiday(&self, d: Date) -> bool {
        if let Some(&off) = self.decided.get(&d) {
            return off;
        }
        let Some(year) = self
            .rules
            .get(usize::try_from(d.year() - FIRST_YEAR).unwrap_or(usize::MAX))
        else {
            return false;
        };
        year.get_or_init(|| rule_holidays(d.year())).contains(&d)
    }

    pub fn is_working_day(&self, d: Date) -> bool {
        if self.is_holiday(d) {
            return false;
        }
        !is_weekend(d) || self.extra_workdays.contains(&d)
    }

    /// The first working day strictly after `d`.
    pub fn next_working_day(&self, d: Date) -> Date {
        let mut x = d;
        loop {
            x = x.tomorrow().expect("date in range");
            if self.is_working_day(x) {
                return x;
            }
        }
    }

    /// `d` itself when it is a working day, else the next one.
    pub fn on_or_after(&self, d: Date) -> Date {
        if self.is_working_day(d) {
            d
        } else {
            self.next_working_day(d)
        }
    }

    /// The working day on which the clock starts for something received at `at`: the same day
    /// when it is a working day and before the 17:00 cut-off, otherwise the next working day.
    pub fn clock_start(&self, at: Timestamp) -> Date {
        let z = at.to_zoned(vietnam_tz());
        let d = z.date();
        if self.is_working_day(d) && z.time() < CUT_OFF {
            d
        } else {
            self.next_working_day(d)
        }
    }

    /// `n` working days after the working day `start` (`start` itself when `n` is 0; a
    /// non-working `start` is first moved to the next working day).
    pub fn add_working_days(&self, start: Date, n: u32) -> Date {
        let mut d = self.on_or_after(start);
        for _ in 0..n {
            d = self.next_working_day(d);
        }
        d
    }

    /// The due date (ngày hẹn trả) of something received at `at` with `days` working days.
    pub fn due_date(&self, at: Timestamp, days: u32) -> Date {
        self.add_working_days(self.clock_start(at), days)
    }

    /// Working days in `(from, to]`; 0 when `to <= from`.
    pub fn working_days_between(&self, from: Date, to: Date) -> u32 {
        let mut n = 0;
        let mut d = from;
        while d < to {
            d = d.tomorrow().expect("date in range");
            if self.is_working_day(d) {
                n += 1;
            }
        }
        n
    }
}

fn is_weekend(d: Date) -> bool {
    matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday)
}

/// Public holidays of `year` by the Labor Code 2019 (Art. 112) and its compensation rule
/// (Art. 111.3: a holiday on a weekly rest day moves to the next working day).
fn rule_holidays(year: i16) -> Vec<Date> {
    let d = |m: i8, day: i8| Date::new(year, m, day).expect("valid fixed date");
    let mut days = vec![d(1, 1), d(4, 30), d(5, 1), d(9, 1), d(9, 2)];
    if let Some(hung) = lunar::lunar_to_solar(10, 3, year) {
        days.push(hung);
    }
    let tet = lunar::tet(year);
    let eve = tet.yesterday().expect("valid");
    days.push(eve);
    let mut t = tet;
    for _ in 0..4 {
        days.push(t);
        t = t.tomorrow().expect("valid");
    }
    days.sort();
    days.dedup();
    let set: BTreeSet<Date> = days.iter().copied().collect();
    let mut out = set.clone();
    for h in &days {
        if is_weekend(*h) {
            let mut c = *h;
            loop {
                c = c.tomorrow().expect("valid");
                if !is_weekend(c) && !out.contains(&c) {
                    out.insert(c);
                    break;
                }
            }
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;
    use proptest::prelude::*;

    fn cal() -> &'static WorkingCalendar {
        WorkingCalendar::vietnam()
    }

    fn at(y: i16, m: i8, d: i8, h: i8, min: i8) -> Timestamp {
        date(y, m, d)
            .at(h, min, 0, 0)
            .to_zoned(vietnam_tz())
            .unwrap()
            .timestamp()
    }

    #[test]
    fn tet_2026_is_off() {
        for day in 16..=20 {
            assert!(cal().is_holiday(date(2026, 2, day)), "Feb {day}");
        }
        assert!(cal().is_working_day(date(2026, 2, 23)));
        // Hung Kings day on Sunday 26/4/2026: Monday 27/4 is the compensatory day.
        assert!(cal().is_holiday(date(2026, 4, 26)));
        assert!(cal().is_holiday(date(2026, 4, 27)));
        assert!(cal().is_working_day(date(2026, 4, 28)));
    }

    #[test]
    fn adjustments_2025() {
        assert!(cal().is_holiday(date(2025, 1, 27)));
        assert!(cal().is_working_day(date(2025, 2, 3)));
        assert!(cal().is_holiday(date(2025, 5, 2)));
        // Saturday 26/4/2025 was a make-up working day.
        assert!(cal().is_working_day(date(2025, 4, 26)));
        assert!(!cal().is_working_day(date(2025, 4, 27)));
    }

    #[test]
    fn cut_off_and_weekends() {
        // Tuesday 2026-03-17 at 16:59: counts from that day.
        assert_eq!(
            cal().clock_start(at(2026, 3, 17, 16, 59)),
            date(2026, 3, 17)
        );
        // at 17:00 it counts from Wednesday.
        assert_eq!(cal().clock_start(at(2026, 3, 17, 17, 0)), date(2026, 3, 18));
        // Friday evening → Monday.
        assert_eq!(cal().clock_start(at(2026, 3, 20, 18, 0)), date(2026, 3, 23));
        // Saturday morning → Monday.
        assert_eq!(cal().clock_start(at(2026, 3, 21, 9, 0)), date(2026, 3, 23));
        // 10 working days from Tuesday 17/3/2026 → Tuesday 31/3.
        assert_eq!(cal().due_date(at(2026, 3, 17, 9, 0), 10), date(2026, 3, 31));
        // Across Hung Kings (27/4 comp.) and 30/4–1/5 2026: Friday 24/4 + 3 → Wednesday 29/4?
        // 24/4 Fri → 28/4 Tue (1), 29/4 Wed (2), 4/5 Mon (3).
        assert_eq!(
            cal().add_working_days(date(2026, 4, 24), 3),
            date(2026, 5, 4)
        );
        // Received the evening before Tết: counts after the break.
        assert_eq!(cal().clock_start(at(2026, 2, 13, 18, 0)), date(2026, 2, 23));
        // UTC late evening is already the next morning in Vietnam.
        let utc_evening: Timestamp = "2026-03-16T23:30:00Z".parse().unwrap();
        assert_eq!(local_date(utc_evening), date(2026, 3, 17));
    }

    #[test]
    fn counting_between() {
        assert_eq!(
            cal().working_days_between(date(2026, 3, 17), date(2026, 3, 24)),
            5
        );
        assert_eq!(
            cal().working_days_between(date(2026, 3, 24), date(2026, 3, 17)),
            0
        );
    }

    #[test]
    fn bad_adjustments_are_an_error() {
        assert!(WorkingCalendar::with_adjustments("{\"adjustments\": 3}").is_err());
    }

    fn any_instant() -> impl Strategy<Value = Timestamp> {
        // 2025-01-01 .. 2031-01-01
        (1_735_689_600i64..1_924_992_000i64).prop_map(|s| Timestamp::from_second(s).unwrap())
    }

    proptest! {
        #[test]
        fn due_date_is_a_working_day_not_before_start(at in any_instant(), n in 0u32..60) {
            let due = cal().due_date(at, n);
            prop_assert!(cal().is_working_day(due));
            prop_assert!(due >= local_date(at));
            prop_assert_eq!(cal().working_days_between(cal().clock_start(at), due), n);
        }

        #[test]
        fn due_date_is_monotonic(at in any_instant(), n in 0u32..60) {
            let a = cal().due_date(at, n);
            let b = cal().due_date(at, n + 1);
            prop_assert!(b > a);
        }

        #[test]
        fn later_receipt_never_earlier_due(at in any_instant(), secs in 0i64..864_000, n in 0u32..30) {
            let later = Timestamp::from_second(at.as_second() + secs).unwrap();
            prop_assert!(cal().due_date(later, n) >= cal().due_date(at, n));
        }
    }
}
