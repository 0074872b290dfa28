//! Delivery records on the SQLite file, and the runner's send rate (in memory: the runner
//! is one process).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use motcua_ports::notifications::{Delivery, DeliveryStore, PER_DOSSIER, SendRate, rate_window};
use motcua_ports::{StoreError, StoreResult};

use rusqlite::{OptionalExtension, params};
use uuid::Uuid;

use crate::{EmbeddedStore, from_json, map_sql, micros, to_json};

pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    dossier_id TEXT,
    created_us INTEGER NOT NULL,
    due_us INTEGER,
    provider_ref TEXT,
    version INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (due_us, id) WHERE due_us IS NOT NULL;
CREATE INDEX IF NOT EXISTS deliveries_by_dossier ON deliveries (dossier_id, created_us, id);
CREATE INDEX IF NOT EXISTS deliveries_by_provider ON deliveries (provider_ref);
"#;

/// The columns of a delivery besides its body.
fn columns(d: &Delivery) -> (Option<i64>, Option<String>) {
    let due = (!d.status.settled()).then(|| micros(d.due_at));
    let provider = match (&d.provider, &d.provider_id) {
        (Some(p), Some(id)) => Some(format!("{p}\n{id}")),
        _ => None,
    };
    (due, provider)
}

#[async_trait]
impl DeliveryStore for EmbeddedStore {
    async fn plan(&self, deliveries: &[Delivery]) -> StoreResult<Vec<(Delivery, bool)>> {
        if deliveries.is_empty() {
            return Ok(Vec::new());
        }
        let rows = deliveries
            .iter()
            .map(|d| {
                let (due, provider) = columns(d);
                Ok((d.clone(), due, provider, to_json(d)?))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        self.write(move |c| {
            let mut out = Vec::with_capacity(rows.len());
            for (d, due, provider, body) in rows {
                let added = c
                    .prepare_cached(
                        "INSERT INTO deliveries (id, key, dossier_id, created_us, due_us, provider_ref, version, body)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (key) DO NOTHING",
                    )
                    .and_then(|mut st| {
                        st.execute(params![
                            d.id.to_string(),
                            d.key,
                            d.dossier_id.map(|u| u.to_string()),
                            micros(d.created_at),
                            due,
                            provider,
                            d.version as i64,
                            body
                        ])
                    })
                    .map_err(map_sql)?;
                if added == 1 {
                    out.push((d, true));
                    continue;
                }
                let stored: String = c
                    .prepare_cached("SELECT body FROM deliveries WHERE key = ?1")
                    .and_then(|mut st| st.query_row([&d.key], |r| r.get(0)))
                    .map_err(map_sql)?;
                out.push((from_json(&stored)?, false));
            }
            Ok(out)
        })
        .await
    }

    async fn get(&self, id: Uuid) -> StoreResult<Option<Delivery>> {
        let body: Option<String> = self
            .reader()
            .prepare_cached("SELECT body FROM deliveries WHERE id = ?1")
            .and_then(|mut st| st.query_row([id.to_string()], |r| r.get(0)).optional())
            .map_err(map_sql)?;
        body.map(|b| from_json(&b)).transpose()
    }

    async fn update(&self, d: &Delivery) -> StoreResult<()> {
        let (due, provider) = columns(d);
        let (id, version, body) = (d.id.to_string(), d.version as i64, to_json(d)?);
        self.write(move |c| {
            let changed = c
                .prepare_cached(
                    "UPDATE deliveries SET due_us = ?2, provider_ref = ?3, version = ?4, body = ?5
                     WHERE id = ?1 AND version = ?4 - 1",
                )
                .and_then(|mut st| st.execute(params![id, due, provider, version, body]))
                .map_err(map_sql)?;
            if changed == 1 {
                Ok(())
            } else {
                Err(StoreError::Conflict)
            }
        })
        .await
    }

    async fn due(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<Delivery>> {
        let c = self.reader();
        let mut st = c
            .prepare_cached(
                "SELECT body FROM deliveries WHERE due_us IS NOT NULL AND due_us <= ?1
                 ORDER BY due_us, id LIMIT ?2",
            )
            .map_err(map_sql)?;
        let rows = st
            .query_map(params![micros(now), limit], |r| r.get::<_, String>(0))
            .map_err(map_sql)?;
        rows.map(|r| from_json(&r.map_err(map_sql)?)).collect()
    }

    async fn of_dossier(&self, dossier: Uuid) -> StoreResult<Vec<Delivery>> {
        let c = self.reader();
        let mut st = c
            .prepare_cached(
                "SELECT body FROM deliveries WHERE dossier_id = ?1
                 ORDER BY created_us, id LIMIT ?2",
            )
            .map_err(map_sql)?;
        let rows = st
            .query_map(params![dossier.to_string(), PER_DOSSIER], |r| {
                r.get::<_, String>(0)
            })
            .map_err(map_sql)?;
        rows.map(|r| from_json(&r.map_err(map_sql)?)).collect()
    }

    async fn by_provider_id(
        &self,
        provider: &str,
        provider_id: &str,
    ) -> StoreResult<Option<Delivery>> {
        let body: Option<String> = self
            .reader()
            .prepare_cached("SELECT body FROM deliveries WHERE provider_ref = ?1 LIMIT 1")
            .and_then(|mut st| {
                st.query_row([format!("{provider}\n{provider_id}")], |r| r.get(0))
                    .optional()
            })
            .map_err(map_sql)?;
        body.map(|b| from_json(&b)).transpose()
    }
}

/// Sends per bucket and window, in this process.
#[derive(Default)]
pub struct LocalSendRate {
    windows: Mutex<HashMap<String, (i64, u32)>>,
    periods: Mutex<HashMap<String, (i64, u32)>>,
}

#[async_trait]
impl SendRate for LocalSendRate {
    async fn take(
        &self,
        bucket: &str,
        per_second: u32,
        now: Timestamp,
    ) -> StoreResult<Result<(), SignedDuration>> {
        let (window, quota, next) = rate_window(per_second, now);
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        // Old windows go, so the map holds one entry per live bucket.
        if w.len() > 1024 {
            w.retain(|_, (s, _)| *s >= window);
        }
        let entry = w.entry(bucket.to_owned()).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        if entry.1 < quota {
            entry.1 += 1;
            return Ok(Ok(()));
        }
        Ok(Err(next.duration_since(now)))
    }

    async fn take_in(&self, bucket: &str, period: i64, limit: u32) -> StoreResult<bool> {
        let mut p = self.periods.lock().unwrap_or_else(|p| p.into_inner());
        if p.len() > 100_000 {
            p.retain(|_, (at, _)| *at >= period);
        }
        let entry = p.entry(bucket.to_owned()).or_insert((period, 0));
        if entry.0 != period {
            *entry = (period, 0);
        }
        if entry.1 < limit {
            entry.1 += 1;
            Ok(true)
        } else {
            Ok(false)
        }
    }
}
