//! KPI counters on the SQLite file: the applied contribution per dossier, and one row per
//! agency × month × counter name. A replacement checks the applied version and adds the
//! difference in the same write (one writer: no shards needed).

use async_trait::async_trait;
use motcua_domain::AgencyCode;
use motcua_domain::kpi::{Counts, Month, RowKey};
use motcua_ports::reports::{Applied, KpiStore};
use motcua_ports::{StoreError, StoreResult};
use rusqlite::{OptionalExtension, params};
use uuid::Uuid;

use crate::{EmbeddedStore, from_json, map_sql, to_json};

pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS kpi_applied (
    dossier_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS kpi_counts (
    month TEXT NOT NULL,
    agency TEXT NOT NULL,
    name TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (month, agency, name)
) WITHOUT ROWID;
"#;

#[async_trait]
impl KpiStore for EmbeddedStore {
    async fn applied(&self, dossier: Uuid) -> StoreResult<Option<Applied>> {
        let c = self.reader();
        c.prepare_cached("SELECT body FROM kpi_applied WHERE dossier_id = ?1")
            .and_then(|mut st| {
                st.query_row([dossier.to_string()], |r| r.get::<_, String>(0))
                    .optional()
            })
            .map_err(map_sql)?
            .map(|b| from_json(&b))
            .transpose()
    }

    async fn replace(
        &self,
        dossier: Uuid,
        previous: Option<&Applied>,
        next: &Applied,
    ) -> StoreResult<()> {
        let id = dossier.to_string();
        let expected = previous.map(|p| p.version as i64);
        let body = to_json(next)?;
        let version = next.version as i64;
        // What each row gains: the previous contribution taken from its row, the next
        // one added to its own (the same row for the same dossier).
        let mut changes: Vec<(String, String, String, i64)> = Vec::new();
        if let Some(p) = previous {
            let r = &p.contribution.row;
            for (k, v) in &p.contribution.counts.0 {
                changes.push((r.month.to_string(), r.agency.as_str().into(), k.clone(), -v));
            }
        }
        let r = &next.contribution.row;
        for (k, v) in &next.contribution.counts.0 {
            changes.push((r.month.to_string(), r.agency.as_str().into(), k.clone(), *v));
        }
        self.write(move |c| {
            let stored: Option<i64> = c
                .prepare_cached("SELECT version FROM kpi_applied WHERE dossier_id = ?1")
                .and_then(|mut st| st.query_row([&id], |r| r.get(0)).optional())
                .map_err(map_sql)?;
            if stored != expected {
                return Err(StoreError::Conflict);
            }
            c.prepare_cached(
                "INSERT INTO kpi_applied (dossier_id, version, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT (dossier_id) DO UPDATE SET version = excluded.version, body = excluded.body",
            )
            .and_then(|mut st| st.execute(params![id, version, body]))
            .map_err(map_sql)?;
            let mut add = c
                .prepare_cached(
                    "INSERT INTO kpi_counts (month, agency, name, value) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (month, agency, name) DO UPDATE SET value = value + excluded.value",
                )
                .map_err(map_sql)?;
            for (m, a, k, v) in &changes {
                add.execute(params![m, a, k, v]).map_err(map_sql)?;
            }
            // Zeros are not kept.
            let mut del = c
                .prepare_cached(
                    "DELETE FROM kpi_counts WHERE month = ?1 AND agency = ?2 AND name = ?3 AND value = 0",
                )
                .map_err(map_sql)?;
            for (m, a, k, _) in &changes {
                del.execute(params![m, a, k]).map_err(map_sql)?;
            }
            Ok(())
        })
        .await
    }

    async fn rows(
        &self,
        agencies: &[AgencyCode],
        from: Month,
        to: Month,
    ) -> StoreResult<Vec<(RowKey, Counts)>> {
        let wanted: std::collections::BTreeSet<&str> =
            agencies.iter().map(|a| a.as_str()).collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let c = self.reader();
        let mut st = c
            .prepare_cached(
                "SELECT month, agency, name, value FROM kpi_counts
                 WHERE month >= ?1 AND month <= ?2 ORDER BY agency, month, name",
            )
            .map_err(map_sql)?;
        let found = st
            .query_map(params![from.to_string(), to.to_string()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .map_err(map_sql)?;
        let mut out: Vec<(RowKey, Counts)> = Vec::new();
        for row in found {
            let (month, agency, name, value) = row.map_err(map_sql)?;
            if !wanted.contains(agency.as_str()) {
                continue;
            }
            let key = RowKey {
                agency: AgencyCode::parse(&agency).map_err(crate::backend)?,
                month: Month::parse(&month)
                    .ok_or_else(|| StoreError::Backend(format!("month {month}")))?,
            };
            match out.last_mut() {
                Some((k, c)) if *k == key => c.add(&name, value),
                _ => {
                    let mut c = Counts::default();
                    c.add(&name, value);
                    out.push((key, c));
                }
            }
        }
        out.retain(|(_, c)| !c.is_empty());
        Ok(out)
    }

    async fn reset(&self) -> StoreResult<()> {
        self.write(|c| {
            c.execute_batch("DELETE FROM kpi_applied; DELETE FROM kpi_counts;")
                .map_err(map_sql)
        })
        .await
    }
}
