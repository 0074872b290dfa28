//! Revoked token subjects on SQLite.

use async_trait::async_trait;
use jiff::Timestamp;
use motcua_ports::StoreResult;
use motcua_ports::identity::RevokedSubjects;
use rusqlite::OptionalExtension;

use crate::{EmbeddedStore, map_sql};

#[async_trait]
impl RevokedSubjects for EmbeddedStore {
    async fn revoke_subject(&self, subject: &str, until: Timestamp) -> StoreResult<()> {
        let (subject, until) = (subject.to_owned(), until.as_second());
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO revoked_subjects (subject, until_s) VALUES (?1, ?2)
                 ON CONFLICT (subject) DO UPDATE SET until_s = max(until_s, excluded.until_s)",
            )
            .and_then(|mut st| st.execute(rusqlite::params![subject, until]))
            .map_err(map_sql)?;
            Ok(())
        })
        .await
    }

    async fn subject_revoked(&self, subject: &str, now: Timestamp) -> StoreResult<bool> {
        let c = self.reader();
        let until: Option<i64> = c
            .prepare_cached("SELECT until_s FROM revoked_subjects WHERE subject = ?1")
            .and_then(|mut st| st.query_row([subject], |r| r.get(0)).optional())
            .map_err(map_sql)?;
        Ok(until.is_some_and(|u| u > now.as_second()))
    }
}
