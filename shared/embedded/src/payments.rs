//! Payment records on the SQLite file. A partial unique index keeps one open payment per
//! fee; a settlement updates the payment, the dossier, its history and the outbox in one
//! write.

use async_trait::async_trait;
use jiff::Timestamp;
use jiff::civil::Date;
use motcua_domain::calendar::local_date;
use motcua_domain::payment::Payment;
use motcua_domain::{Dossier, EventEnvelope, HistoryEntry};
use motcua_ports::payments::{PER_DOSSIER, PaymentStore, ReconciliationReport};
use motcua_ports::{StoreError, StoreResult};
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use crate::{DossierRow, EmbeddedStore, from_json, map_sql, micros, to_json};

pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS payments (
    id TEXT PRIMARY KEY,
    dossier_id TEXT NOT NULL,
    fee_key INTEGER NOT NULL,
    open INTEGER NOT NULL,
    created_us INTEGER NOT NULL,
    day TEXT NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS payments_open_fee ON payments (dossier_id, fee_key) WHERE open = 1;
CREATE INDEX IF NOT EXISTS payments_by_dossier ON payments (dossier_id, created_us, id);
CREATE INDEX IF NOT EXISTS payments_open ON payments (created_us, id) WHERE open = 1;
CREATE INDEX IF NOT EXISTS payments_by_day ON payments (day, created_us, id);
CREATE TABLE IF NOT EXISTS payment_reports (
    day TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
"#;

/// A payment as owned column values.
struct Row {
    id: String,
    dossier_id: String,
    fee_key: i64,
    open: bool,
    created_us: i64,
    day: String,
    version: i64,
    body: String,
}

impl Row {
    fn new(p: &Payment) -> StoreResult<Row> {
        Ok(Row {
            id: p.id.to_string(),
            dossier_id: p.dossier_id.to_string(),
            fee_key: i64::try_from(p.fee_key).map_err(crate::backend)?,
            open: p.status.is_open(),
            created_us: micros(p.created_at),
            day: local_date(p.created_at).to_string(),
            version: p.version as i64,
            body: to_json(p)?,
        })
    }

    fn update(&self, c: &Connection) -> StoreResult<()> {
        let changed = c
            .prepare_cached(
                "UPDATE payments SET open = ?2, version = ?3, body = ?4 WHERE id = ?1 AND version = ?5",
            )
            .and_then(|mut st| {
                st.execute(params![
                    self.id,
                    self.open,
                    self.version,
                    self.body,
                    self.version - 1
                ])
            })
            .map_err(map_sql)?;
        if changed != 1 {
            return Err(StoreError::Conflict);
        }
        Ok(())
    }
}

fn read_all(c: &Connection, sql: &str, args: impl rusqlite::Params) -> StoreResult<Vec<Payment>> {
    let mut st = c.prepare_cached(sql).map_err(map_sql)?;
    let rows = st
        .query_map(args, |r| r.get::<_, String>(0))
        .map_err(map_sql)?;
    rows.map(|r| r.map_err(map_sql).and_then(|b| from_json(&b)))
        .collect()
}

#[async_trait]
impl PaymentStore for EmbeddedStore {
    async fn open(&self, p: &Payment) -> StoreResult<()> {
        let row = Row::new(p)?;
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO payments (id, dossier_id, fee_key, open, created_us, day, version, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    row.id,
                    row.dossier_id,
                    row.fee_key,
                    row.open,
                    row.created_us,
                    row.day,
                    row.version,
                    row.body
                ])
            })
            .map_err(map_sql)?;
            Ok(())
        })
        .await
    }

    async fn open_for(&self, dossier: Uuid, fee_key: u64) -> StoreResult<Option<Payment>> {
        let c = self.reader();
        c.prepare_cached(
            "SELECT body FROM payments WHERE dossier_id = ?1 AND fee_key = ?2 AND open = 1",
        )
        .and_then(|mut st| {
            st.query_row(params![dossier.to_string(), fee_key as i64], |r| {
                r.get::<_, String>(0)
            })
            .optional()
        })
        .map_err(map_sql)?
        .map(|b| from_json(&b))
        .transpose()
    }

    async fn get(&self, id: Uuid) -> StoreResult<Option<Payment>> {
        let c = self.reader();
        c.prepare_cached("SELECT body FROM payments WHERE id = ?1")
            .and_then(|mut st| {
                st.query_row([id.to_string()], |r| r.get::<_, String>(0))
                    .optional()
            })
            .map_err(map_sql)?
            .map(|b| from_json(&b))
            .transpose()
    }

    async fn for_dossier(&self, dossier: Uuid) -> StoreResult<Vec<Payment>> {
        read_all(
            &self.reader(),
            "SELECT body FROM payments WHERE dossier_id = ?1 ORDER BY created_us, id LIMIT ?2",
            params![dossier.to_string(), PER_DOSSIER],
        )
    }

    async fn update(&self, p: &Payment) -> StoreResult<()> {
        let row = Row::new(p)?;
        self.write(move |c| row.update(c)).await
    }

    async fn settle(
        &self,
        p: &Payment,
        dossier: Option<(&Dossier, &HistoryEntry)>,
        event: &EventEnvelope,
    ) -> StoreResult<()> {
        let row = Row::new(p)?;
        let change = match dossier {
            Some((d, h)) => Some(DossierRow::new(d, h, event)?),
            None => None,
        };
        let (event_id, event_body) = (event.id.to_string(), to_json(event)?);
        self.write(move |c| {
            row.update(c)?;
            match change {
                Some(d) => {
                    d.update_dossier(c)?;
                    d.insert_history_and_event(c)
                }
                None => c
                    .prepare_cached("INSERT INTO outbox (id, body) VALUES (?1, ?2)")
                    .and_then(|mut st| st.execute(params![event_id, event_body]))
                    .map(|_| ())
                    .map_err(map_sql),
            }
        })
        .await
    }

    async fn open_before(&self, before: Timestamp, limit: u32) -> StoreResult<Vec<Payment>> {
        read_all(
            &self.reader(),
            "SELECT body FROM payments WHERE open = 1 AND created_us < ?1
             ORDER BY created_us, id LIMIT ?2",
            params![micros(before), limit],
        )
    }

    async fn created_on(
        &self,
        day: Date,
        after: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<Payment>> {
        let c = self.reader();
        let (from_us, from_id) = match after {
            None => (i64::MIN, String::new()),
            Some(id) => {
                let created: Option<i64> = c
                    .prepare_cached("SELECT created_us FROM payments WHERE id = ?1")
                    .and_then(|mut st| st.query_row([id.to_string()], |r| r.get(0)).optional())
                    .map_err(map_sql)?;
                (created.ok_or(StoreError::BadCursor)?, id.to_string())
            }
        };
        read_all(
            &c,
            "SELECT body FROM payments WHERE day = ?1 AND (created_us, id) > (?2, ?3)
             ORDER BY created_us, id LIMIT ?4",
            params![day.to_string(), from_us, from_id, limit],
        )
    }

    async fn put_report(&self, r: &ReconciliationReport) -> StoreResult<()> {
        let (day, body) = (r.day.to_string(), to_json(r)?);
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO payment_reports (day, body) VALUES (?1, ?2)
                 ON CONFLICT (day) DO UPDATE SET body = excluded.body",
            )
            .and_then(|mut st| st.execute(params![day, body]))
            .map(|_| ())
            .map_err(map_sql)
        })
        .await
    }

    async fn report(&self, day: Date) -> StoreResult<Option<ReconciliationReport>> {
        let c = self.reader();
        c.prepare_cached("SELECT body FROM payment_reports WHERE day = ?1")
            .and_then(|mut st| {
                st.query_row([day.to_string()], |r| r.get::<_, String>(0))
                    .optional()
            })
            .map_err(map_sql)?
            .map(|b| from_json(&b))
            .transpose()
    }
}
