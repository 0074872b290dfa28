//! From an event to the counters: the dossier the event is about is read as it is now,
//! its contribution computed and put in place of the one applied before, with the
//! difference added to the counters in the same write. An event whose dossier version was
//! applied already (a duplicate, or one that comes after a later one) changes nothing.

use motcua_domain::kpi::contribution;
use motcua_domain::{Dossier, EventEnvelope};
use motcua_ports::StoreError;
use motcua_ports::reports::Applied;
use uuid::Uuid;

use crate::ReportState;

/// What became of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The dossier's contribution was replaced (its counts may be the same).
    Applied,
    /// This version (or a later one) was applied already.
    Unchanged,
    /// Nothing to count: not about a dossier, or no such dossier.
    Ignored(&'static str),
}

/// How often a lost race is retried before the event is left for redelivery.
const ATTEMPTS: usize = 5;

/// Applies the event: its subject is the dossier it is about.
pub async fn apply_event(s: &ReportState, e: &EventEnvelope) -> Result<Outcome, StoreError> {
    if !(e.kind.starts_with("dossier.") || e.kind.starts_with("payment.")) {
        return Ok(Outcome::Ignored("not a dossier or payment event"));
    }
    let Ok(id) = Uuid::parse_str(&e.subject) else {
        return Ok(Outcome::Ignored("the subject is not a dossier id"));
    };
    apply_dossier(s, id).await
}

/// Brings the dossier's applied contribution up to date.
pub async fn apply_dossier(s: &ReportState, id: Uuid) -> Result<Outcome, StoreError> {
    for _ in 0..ATTEMPTS {
        let Some(d) = s.dossiers.get(id).await? else {
            return Ok(Outcome::Ignored("no such dossier"));
        };
        match sync(s, &d).await {
            Err(StoreError::Conflict) => continue,
            other => return other,
        }
    }
    Err(StoreError::Unavailable(
        "the dossier's counters kept changing; retried later".into(),
    ))
}

/// Puts `d`'s contribution in place of what was applied, unless a version at least as new
/// was applied. `Conflict`: someone applied in between (read again and retry).
pub async fn sync(s: &ReportState, d: &Dossier) -> Result<Outcome, StoreError> {
    let previous = s.kpi.applied(d.id).await?;
    if previous.as_ref().is_some_and(|p| p.version >= d.version) {
        return Ok(Outcome::Unchanged);
    }
    let next = Applied {
        version: d.version,
        contribution: contribution(d),
    };
    s.kpi.replace(d.id, previous.as_ref(), &next).await?;
    Ok(Outcome::Applied)
}
