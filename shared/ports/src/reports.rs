//! The KPI counters: per dossier, the contribution last applied; per agency × month, the
//! sum of the applied contributions. A contribution is replaced together with the counters
//! it changes, conditioned on the one it replaces, so the counters always equal the sum of
//! the applied contributions, however many consumers race.

use async_trait::async_trait;
use motcua_domain::AgencyCode;
use motcua_domain::kpi::{Contribution, Counts, Month, RowKey};
use uuid::Uuid;

use crate::StoreResult;

/// A dossier's contribution as applied, and the dossier version it was computed from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Applied {
    pub version: u64,
    pub contribution: Contribution,
}

/// Most months one report may span.
pub const MAX_MONTHS: i64 = 36;

#[async_trait]
pub trait KpiStore: Send + Sync {
    /// What was applied for `dossier`, if anything.
    async fn applied(&self, dossier: Uuid) -> StoreResult<Option<Applied>>;

    /// Replaces the dossier's applied contribution `previous` (as [`KpiStore::applied`]
    /// read it; `None`: nothing applied) with `next`, and adds the difference to the
    /// counters, atomically. `Conflict` (and nothing written) if what is applied is no
    /// longer `previous` (by version).
    async fn replace(
        &self,
        dossier: Uuid,
        previous: Option<&Applied>,
        next: &Applied,
    ) -> StoreResult<()>;

    /// The counters of `agencies` for the months `from` to `to` (both included), one
    /// entry per row that holds a count, in (agency, month) order.
    async fn rows(
        &self,
        agencies: &[AgencyCode],
        from: Month,
        to: Month,
    ) -> StoreResult<Vec<(RowKey, Counts)>>;

    /// Forgets every applied contribution and counter (before a rebuild).
    async fn reset(&self) -> StoreResult<()>;
}

/// The rows summed into one set of counts.
pub fn total<'a>(rows: impl IntoIterator<Item = &'a (RowKey, Counts)>) -> Counts {
    let mut t = Counts::default();
    for (_, c) in rows {
        t.add_all(c);
    }
    t
}
