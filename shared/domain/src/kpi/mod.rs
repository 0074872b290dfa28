//! What the province is judged on (Decision 766/QĐ-TTg): each dossier's contribution to
//! the counters of its agency and month, and the indicators computed from the counters.
//!
//! A dossier contributes to one row: its agency × the month (Vietnam time) it was filed.
//! Its contribution is a function of the dossier alone ([`contribution`]), so a consumer
//! keeps, per dossier, the last contribution it applied and adds only the difference: a
//! redelivered or late event changes nothing, and the counters always equal the sum of
//! the dossiers' current contributions (which is what a rebuild computes).
//!
//! Time enters only through open dossiers: whether an open dossier is overdue depends on
//! the day of the report. Open dossiers are therefore counted by due date
//! (`open_due:<date>`), and the report decides which dates are past.

pub mod score;

use std::collections::BTreeMap;
use std::fmt;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::calendar::local_date;
use crate::catalogue::DocumentSource;
use crate::dossier::{Dossier, DossierResult, Status};
use crate::ids::AgencyCode;
use crate::intake::IntakeChannel;
use crate::payment::FeeChannel;

/// A calendar month, `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    pub year: i16,
    /// 1–12.
    pub month: i8,
}

impl Month {
    pub fn of(d: Date) -> Month {
        Month {
            year: d.year(),
            month: d.month(),
        }
    }

    /// `YYYY-MM` with a year from 2000 to 2999.
    pub fn parse(s: &str) -> Option<Month> {
        let (y, m) = s.split_once('-')?;
        if y.len() != 4 || m.len() != 2 || !y.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let (year, month): (i16, i8) = (y.parse().ok()?, m.parse().ok()?);
        ((2000..=2999).contains(&year) && (1..=12).contains(&month))
            .then_some(Month { year, month })
    }

    pub fn next(self) -> Month {
        if self.month == 12 {
            Month {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Month {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    pub fn first_day(self) -> Date {
        Date::new(self.year, self.month, 1).expect("a month's first day exists")
    }

    /// The months from `self` to `to`, both included (none when `to` is earlier).
    pub fn through(self, to: Month) -> impl Iterator<Item = Month> {
        std::iter::successors(Some(self), |m| Some(m.next())).take_while(move |m| *m <= to)
    }

    /// How many months from `self` to `to`, both included.
    pub fn span(self, to: Month) -> i64 {
        (to.year as i64 * 12 + to.month as i64) - (self.year as i64 * 12 + self.month as i64) + 1
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl Serialize for Month {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Month {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Month, D::Error> {
        let s = String::deserialize(d)?;
        Month::parse(&s).ok_or_else(|| serde::de::Error::custom("a month is YYYY-MM"))
    }
}

/// Named counts; what a dossier contributes, and what a row of counters holds. Zero counts
/// are not kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Counts(pub BTreeMap<String, i64>);

impl Counts {
    pub fn get(&self, name: &str) -> i64 {
        self.0.get(name).copied().unwrap_or(0)
    }

    pub fn add(&mut self, name: &str, n: i64) {
        if n == 0 {
            return;
        }
        let v = self.0.entry(name.to_owned()).or_insert(0);
        *v += n;
        if *v == 0 {
            self.0.remove(name);
        }
    }

    pub fn add_all(&mut self, other: &Counts) {
        for (k, v) in &other.0 {
            self.add(k, *v);
        }
    }

    /// What turns `from` into `self`: `self − from`, zeros left out.
    pub fn minus(&self, from: &Counts) -> Counts {
        let mut d = self.clone();
        for (k, v) in &from.0 {
            d.add(k, -v);
        }
        d
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The counts whose name starts with `prefix`, with the prefix taken off.
    pub fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, i64)> {
        self.0
            .range(prefix.to_owned()..)
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(move |(k, v)| (&k[prefix.len()..], *v))
    }
}

/// Counter names. A name holds letters, digits, `_`, `:`, `.` and `-` only.
pub mod names {
    /// Every dossier, by the month it was filed.
    pub const FILED: &str = "filed";
    /// By channel: `filed_online`, `filed_counter`, `filed_postal`.
    pub const FILED_PREFIX: &str = "filed_";
    /// Received at intake (a receipt with a due date).
    pub const RECEIVED: &str = "received";
    /// Processing finished with a result (status 9 or 10).
    pub const FINISHED: &str = "finished";
    /// … on or before the due date.
    pub const FINISHED_ON_TIME: &str = "finished_on_time";
    /// Finished with an electronic result (a result file).
    pub const RESULT_ELECTRONIC: &str = "result_electronic";
    /// Received, open, waiting for the applicant's supplement: the deadline is suspended.
    pub const OPEN_WAITING: &str = "open_waiting";
    /// Received and open, by due date: `open_due:2026-12-31`.
    pub const OPEN_DUE_PREFIX: &str = "open_due:";
    /// A fee is charged (at submission, or the officer asked for one, or one was paid).
    pub const FEE_CHARGED: &str = "fee_charged";
    /// At least one fee paid online / at the counter.
    pub const PAID_ONLINE: &str = "paid_online";
    pub const PAID_COUNTER: &str = "paid_counter";
    /// Document components, digitised (state ≥ 1), reused (state 2 or 3).
    pub const DOCUMENTS: &str = "documents";
    pub const DOCUMENTS_DIGITISED: &str = "documents_digitised";
    pub const DOCUMENTS_REUSED: &str = "documents_reused";
    /// Dossiers whose every component is digitised; dossiers that reused at least one.
    pub const DOSSIERS_DIGITISED: &str = "dossiers_digitised";
    pub const DOSSIERS_REUSED: &str = "dossiers_reused";
    /// Online dossiers per procedure: `online_procedure:1.001193`.
    pub const ONLINE_PROCEDURE_PREFIX: &str = "online_procedure:";
}

/// Where a dossier's counts go: its agency and the month it was filed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RowKey {
    pub agency: AgencyCode,
    pub month: Month,
}

/// A dossier's contribution to the counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contribution {
    pub row: RowKey,
    pub counts: Counts,
}

/// Finished on time: on or before the due date (Vietnam time); a dossier with no due date
/// (never received) cannot be late.
fn on_time(d: &Dossier) -> bool {
    match (d.due_date, d.finished_at) {
        (Some(due), Some(f)) => local_date(f) <= due,
        _ => true,
    }
}

/// What `d` contributes, as it is now.
pub fn contribution(d: &Dossier) -> Contribution {
    use names::*;
    let mut c = Counts::default();
    c.add(FILED, 1);
    c.add(&format!("{FILED_PREFIX}{}", d.channel.as_str()), 1);
    if d.channel == IntakeChannel::Online {
        c.add(&format!("{ONLINE_PROCEDURE_PREFIX}{}", d.procedure_code), 1);
    }
    let received = d.received_at.is_some();
    if received {
        c.add(RECEIVED, 1);
    }
    match d.status {
        Status::Completed | Status::Returned => {
            c.add(FINISHED, 1);
            if on_time(d) {
                c.add(FINISHED_ON_TIME, 1);
            }
            if matches!(
                d.result,
                Some(DossierResult::Approved { file: Some(_), .. })
            ) {
                c.add(RESULT_ELECTRONIC, 1);
            }
        }
        Status::SupplementRequested if received => c.add(OPEN_WAITING, 1),
        Status::Received | Status::Processing | Status::PaymentRequested | Status::Stopped => {
            match d.due_date {
                Some(due) => c.add(&format!("{OPEN_DUE_PREFIX}{due}"), 1),
                None => c.add(OPEN_WAITING, 1),
            }
        }
        _ => {}
    }
    let charged = d.fee_at_submission || d.payment_request.is_some() || !d.fees.is_empty();
    if charged {
        c.add(FEE_CHARGED, 1);
        if d.fees.iter().any(|f| f.channel == FeeChannel::Online) {
            c.add(PAID_ONLINE, 1);
        }
        if d.fees.iter().any(|f| f.channel == FeeChannel::Counter) {
            c.add(PAID_COUNTER, 1);
        }
    }
    let states: Vec<u8> = d
        .documents
        .iter()
        .map(|doc| doc.source.digitisation_state())
        .collect();
    c.add(DOCUMENTS, states.len() as i64);
    c.add(
        DOCUMENTS_DIGITISED,
        states.iter().filter(|s| **s >= 1).count() as i64,
    );
    let reused = states.iter().filter(|s| **s >= 2).count() as i64;
    c.add(DOCUMENTS_REUSED, reused);
    if states.iter().all(|s| *s >= 1) {
        c.add(DOSSIERS_DIGITISED, 1);
    }
    if reused > 0 {
        c.add(DOSSIERS_REUSED, 1);
    }
    debug_assert!(
        d.documents
            .iter()
            .all(|doc| doc.source != DocumentSource::Paper || doc.source.digitisation_state() == 0)
    );
    Contribution {
        row: RowKey {
            agency: d.agency.clone(),
            month: Month::of(local_date(d.submitted_at)),
        },
        counts: c,
    }
}

/// Whether `name` is one a contribution can hold (what a store accepts as a column or an
/// attribute name).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 96
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'.' | b'-'))
}

#[cfg(test)]
mod tests;
