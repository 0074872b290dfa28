//! Upload records, download audit and the personal document store on the SQLite file.

use async_trait::async_trait;
use jiff::Timestamp;
use motcua_domain::Role;
use motcua_domain::upload::{StoredDocument, Upload, UploadStatus};
use motcua_ports::uploads::{DocumentStore, Download, UploadStore};
use motcua_ports::{Citation, Page, PageRequest, StoreError, StoreResult};
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use crate::{EmbeddedStore, decode_cursor, from_json, map_sql, micros, to_json};

pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    status TEXT NOT NULL,
    expires_s INTEGER NOT NULL,
    cited_by TEXT,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS uploads_awaiting ON uploads (status, expires_s);
CREATE TABLE IF NOT EXISTS upload_downloads (
    upload_id TEXT NOT NULL,
    at_us INTEGER NOT NULL,
    actor TEXT NOT NULL,
    role TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS upload_downloads_by_upload ON upload_downloads (upload_id, at_us);
CREATE TABLE IF NOT EXISTS upload_reuses (
    upload_id TEXT NOT NULL,
    dossier_id TEXT NOT NULL,
    PRIMARY KEY (upload_id, dossier_id)
);
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    added_us INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_by_owner ON documents (owner, added_us DESC, id DESC);
"#;

fn status_name(s: UploadStatus) -> &'static str {
    match s {
        UploadStatus::AwaitingFile => "awaiting_file",
        UploadStatus::Verified => "verified",
        UploadStatus::Rejected => "rejected",
        UploadStatus::Expired => "expired",
    }
}

/// Claims the cited uploads for `dossier` inside the caller's transaction: each must be
/// verified, the citation's owner's, and uncited or cited by this dossier already.
pub(crate) fn claim(c: &Connection, dossier: &str, cites: &[Citation]) -> StoreResult<()> {
    for cite in cites {
        if cite.shared {
            c.prepare_cached(
                "INSERT INTO upload_reuses (upload_id, dossier_id) VALUES (?1, ?2)
                 ON CONFLICT DO NOTHING",
            )
            .and_then(|mut st| st.execute(params![cite.upload.to_string(), dossier]))
            .map_err(map_sql)?;
            continue;
        }
        let changed = c
            .prepare_cached(
                "UPDATE uploads SET cited_by = ?1
                 WHERE id = ?2 AND owner = ?3 AND status = 'verified'
                   AND (cited_by IS NULL OR cited_by = ?1)",
            )
            .and_then(|mut st| st.execute(params![dossier, cite.upload.to_string(), cite.owner]))
            .map_err(map_sql)?;
        if changed != 1 {
            return Err(StoreError::Conflict);
        }
    }
    Ok(())
}

#[async_trait]
impl UploadStore for EmbeddedStore {
    async fn create_upload(&self, u: &Upload) -> StoreResult<()> {
        let (id, owner, status) = (u.id.to_string(), u.owner.clone(), status_name(u.status));
        let (expires, body) = (u.expires_at.as_second(), to_json(u)?);
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO uploads (id, owner, status, expires_s, body) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut st| st.execute(params![id, owner, status, expires, body]))
            .map_err(map_sql)?;
            Ok(())
        })
        .await
    }

    async fn upload(&self, id: Uuid) -> StoreResult<Option<Upload>> {
        let c = self.reader();
        let row: Option<(String, Option<String>)> = c
            .prepare_cached("SELECT body, cited_by FROM uploads WHERE id = ?1")
            .and_then(|mut st| {
                st.query_row([id.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(map_sql)?;
        let Some((body, cited_by)) = row else {
            return Ok(None);
        };
        let mut u: Upload = from_json(&body)?;
        // The citation lives in its column, written by the dossier's transaction.
        u.cited_by = cited_by.and_then(|s| Uuid::parse_str(&s).ok());
        Ok(Some(u))
    }

    async fn settle_upload(&self, u: &Upload) -> StoreResult<()> {
        let (id, status, body) = (u.id.to_string(), status_name(u.status), to_json(u)?);
        self.write(move |c| {
            let changed = c
                .prepare_cached(
                    "UPDATE uploads SET status = ?2, body = ?3
                     WHERE id = ?1 AND status = 'awaiting_file'",
                )
                .and_then(|mut st| st.execute(params![id, status, body]))
                .map_err(map_sql)?;
            if changed != 1 {
                return Err(StoreError::Conflict);
            }
            Ok(())
        })
        .await
    }

    async fn stale_uploads(&self, before: Timestamp, limit: u32) -> StoreResult<Vec<Upload>> {
        let c = self.reader();
        let mut st = c
            .prepare_cached(
                "SELECT body FROM uploads WHERE status = 'awaiting_file' AND expires_s < ?1
                 ORDER BY expires_s LIMIT ?2",
            )
            .map_err(map_sql)?;
        st.query_map(params![before.as_second(), limit], |r| {
            r.get::<_, String>(0)
        })
        .map_err(map_sql)?
        .map(|r| r.map_err(map_sql).and_then(|b| from_json(&b)))
        .collect()
    }

    async fn record_download(&self, d: &Download) -> StoreResult<()> {
        let (id, at, actor) = (d.upload.to_string(), micros(d.at), d.actor.clone());
        let role = d.role.as_str();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO upload_downloads (upload_id, at_us, actor, role) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut st| st.execute(params![id, at, actor, role]))
            .map_err(map_sql)?;
            Ok(())
        })
        .await
    }

    async fn downloads(&self, upload: Uuid) -> StoreResult<Vec<Download>> {
        let c = self.reader();
        let mut st = c
            .prepare_cached(
                "SELECT at_us, actor, role FROM upload_downloads WHERE upload_id = ?1
                 ORDER BY at_us LIMIT 1000",
            )
            .map_err(map_sql)?;
        st.query_map([upload.to_string()], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .map_err(map_sql)?
        .map(|r| {
            let (at, actor, role) = r.map_err(map_sql)?;
            Ok(Download {
                upload,
                at: Timestamp::from_microsecond(at).map_err(crate::backend)?,
                actor,
                role: Role::parse(&role).ok_or_else(|| crate::backend("unknown role"))?,
            })
        })
        .collect()
    }

    async fn reused_by(&self, upload: Uuid) -> StoreResult<Vec<Uuid>> {
        self.reuses(upload)
    }
}

impl EmbeddedStore {
    fn reuses(&self, upload: Uuid) -> StoreResult<Vec<Uuid>> {
        let c = self.reader();
        let mut st = c
            .prepare_cached("SELECT dossier_id FROM upload_reuses WHERE upload_id = ?1 LIMIT 1000")
            .map_err(map_sql)?;
        st.query_map([upload.to_string()], |r| r.get::<_, String>(0))
            .map_err(map_sql)?
            .map(|r| {
                let s = r.map_err(map_sql)?;
                Uuid::parse_str(&s).map_err(crate::backend)
            })
            .collect()
    }
}

#[async_trait]
impl DocumentStore for EmbeddedStore {
    async fn add_document(&self, d: &StoredDocument) -> StoreResult<()> {
        let (id, owner, at, body) = (
            d.id.to_string(),
            d.owner.clone(),
            micros(d.added_at),
            to_json(d)?,
        );
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO documents (id, owner, added_us, body) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO NOTHING",
            )
            .and_then(|mut st| st.execute(params![id, owner, at, body]))
            .map_err(map_sql)?;
            Ok(())
        })
        .await
    }

    async fn document(&self, id: Uuid) -> StoreResult<Option<StoredDocument>> {
        let c = self.reader();
        let body: Option<String> = c
            .prepare_cached("SELECT body FROM documents WHERE id = ?1")
            .and_then(|mut st| st.query_row([id.to_string()], |r| r.get(0)).optional())
            .map_err(map_sql)?;
        body.map(|b| from_json(&b)).transpose()
    }

    async fn documents(
        &self,
        owner: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<StoredDocument>> {
        let limit = page.limit.clamp(1, PageRequest::MAX_LIMIT);
        let (after_us, after_id) = match &page.cursor {
            Some(c) => {
                let (k, id) = decode_cursor(c)?;
                (k.parse::<i64>().map_err(|_| StoreError::BadCursor)?, id)
            }
            None => (i64::MAX, String::from("~")),
        };
        let c = self.reader();
        let mut st = c
            .prepare_cached(
                "SELECT added_us, id, body FROM documents
                 WHERE owner = ?1 AND (added_us, id) < (?2, ?3)
                 ORDER BY added_us DESC, id DESC LIMIT ?4",
            )
            .map_err(map_sql)?;
        let rows = st
            .query_map(params![owner, after_us, after_id, limit + 1], |r| {
                Ok((r.get::<_, i64>(0)?.to_string(), r.get(1)?, r.get(2)?))
            })
            .map_err(map_sql)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(map_sql)?;
        crate::page_of(rows, limit)
    }
}
