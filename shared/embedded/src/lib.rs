//! The embedded backend: every port on one SQLite file in WAL mode.
//!
//! Writes go to one writer thread that owns the only writing connection (SQLite allows one
//! writer at a time anyway) and commits them in groups: it takes every write waiting in
//! its queue, runs each in its own savepoint (a failing write undoes only itself), commits
//! once with `synchronous=FULL`, and only then answers each caller. So an accepted write is
//! on disk (fsync'd) before anyone hears "created", and under load one fsync covers many
//! writes. Reads use a small pool of read-only connections beside the writer, as WAL allows.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use jiff::civil::Date;
use motcua_domain::calendar::local_date;
use motcua_domain::{
    AgencyCode, Dossier, DossierCode, EventEnvelope, HistoryEntry, Procedure, Status,
};
use motcua_ports::{
    Catalogue, Citation, DossierStore, IdempotencyBegin, IdempotencyStore, Outbox, Page,
    PageRequest, Sequences, StoreError, StoreResult, StoredResponse, SubmissionPorts,
};
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};
use uuid::Uuid;

/// The database file inside the data directory.
pub const DB_FILE: &str = "motcua.db";

/// A request still marked in progress after this long is presumed crashed and may be redone.
const IN_PROGRESS_LEASE_SECS: i64 = 60;

mod notifications;
mod objects;
mod payments;
mod reports;
mod uploads;
pub use notifications::LocalSendRate;
pub use objects::{
    GetGrant, LocalObjects, OBJECTS_PATH, PutHeaders, PutRefusal, content_disposition,
};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS procedures (
    code TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dossiers (
    id TEXT PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    applicant TEXT NOT NULL,
    agency TEXT NOT NULL,
    status INTEGER NOT NULL,
    queue_key TEXT NOT NULL,
    submitted_us INTEGER NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dossiers_by_applicant ON dossiers (applicant, submitted_us DESC, id DESC);
CREATE INDEX IF NOT EXISTS dossiers_queue ON dossiers (agency, queue_key, id);
CREATE INDEX IF NOT EXISTS dossiers_queue_status ON dossiers (agency, status, queue_key, id);
CREATE TABLE IF NOT EXISTS history (
    dossier_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (dossier_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    pos INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    published INTEGER NOT NULL DEFAULT 0,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (published, pos);
CREATE TABLE IF NOT EXISTS sequences (
    agency TEXT NOT NULL,
    day TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (agency, day)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    id_hash TEXT NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (kind, id_hash)
);
CREATE TABLE IF NOT EXISTS audit (
    id TEXT PRIMARY KEY,
    id_hash TEXT NOT NULL,
    at_us INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_hash ON audit (id_hash, at_us DESC);
CREATE TABLE IF NOT EXISTS attempts (
    key TEXT NOT NULL,
    at_us INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_by_key ON attempts (key, at_us);
CREATE INDEX IF NOT EXISTS attempts_by_time ON attempts (at_us);
CREATE TABLE IF NOT EXISTS business_grants (
    business_id TEXT NOT NULL,
    member_hash TEXT NOT NULL,
    id TEXT NOT NULL UNIQUE,
    at_us INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (business_id, member_hash)
);
CREATE TABLE IF NOT EXISTS challenges (
    id TEXT PRIMARY KEY,
    expires_s INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS challenges_by_expiry ON challenges (expires_s);
-- Registry answers are no longer kept (names, birth dates at rest): gone from old files.
DROP TABLE IF EXISTS verification_cache;
CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    spent INTEGER NOT NULL DEFAULT 0,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS revoked_families (
    family TEXT PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS revoked_subjects (
    subject TEXT PRIMARY KEY,
    until_s INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    done INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    status INTEGER,
    content_type TEXT,
    body BLOB,
    headers TEXT
);
"#;

/// Columns added after a table first shipped: (table, column, declaration). `open` adds
/// the ones an older data file lacks.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("idempotency", "headers", "TEXT"),
    ("refresh_tokens", "retried", "INTEGER NOT NULL DEFAULT 0"),
];

fn add_missing_columns(c: &Connection) -> rusqlite::Result<()> {
    for (table, column, decl) in ADDED_COLUMNS {
        let present: bool = c
            .prepare(&format!(
                "SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1"
            ))?
            .exists([column])?;
        if !present {
            c.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"))?;
        }
    }
    Ok(())
}

/// A write to run inside the group transaction: returns whether it succeeded (else its
/// savepoint is rolled back) and what to do once the group's commit outcome is known.
/// A queued write: run on the writer's connection inside the group's transaction, or,
/// given `None` (the transaction could not begin), not run at all — only answered.
type WriteOp = Box<dyn FnOnce(Option<&Connection>) -> (bool, Reply) + Send>;
type Reply = Box<dyn FnOnce(StoreResult<()>) + Send>;

/// Most writes committed in one transaction.
const MAX_GROUP: usize = 512;

struct Db {
    writes: std::sync::mpsc::Sender<WriteOp>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    path: PathBuf,
}

/// All submission ports on one SQLite file.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Db>,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn map_sql(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation) => StoreError::Duplicate,
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => {
            StoreError::Unavailable("database busy".into())
        }
        _ => backend(e),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves the connection usable: SQLite rolls back an
    // unfinished transaction when it is dropped.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn open_conn(path: &Path, read_only: bool) -> rusqlite::Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let c = Connection::open_with_flags(path, flags)?;
    c.busy_timeout(std::time::Duration::from_secs(5))?;
    c.set_prepared_statement_cache_capacity(64);
    if !read_only {
        c.pragma_update(None, "journal_mode", "WAL")?;
        // Every commit is fsync'd: group commit keeps that affordable.
        c.pragma_update(None, "synchronous", "FULL")?;
    }
    Ok(c)
}

/// The writer thread: commits whatever is queued as one transaction, then answers.
fn writer_loop(conn: Connection, rx: std::sync::mpsc::Receiver<WriteOp>) {
    let mut group: Vec<WriteOp> = Vec::with_capacity(MAX_GROUP);
    while let Ok(first) = rx.recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(op) => group.push(op),
                Err(_) => break,
            }
        }
        commit_group(&conn, &mut group, |c| c.execute_batch("BEGIN IMMEDIATE"));
    }
}

/// Runs `group` in one transaction begun by `begin`, each write in a savepoint, then
/// answers every write with the commit's outcome. If the transaction cannot begin, no
/// write of the group runs (outside a transaction a dossier could land without its
/// event): each is answered with the error.
fn commit_group(
    conn: &Connection,
    group: &mut Vec<WriteOp>,
    begin: impl FnOnce(&Connection) -> rusqlite::Result<()>,
) {
    if let Err(e) = begin(conn) {
        let err = map_sql(e);
        for op in group.drain(..) {
            let (_, reply) = op(None);
            reply(Err(err.clone()));
        }
        return;
    }
    let mut replies: Vec<Reply> = Vec::with_capacity(group.len());
    for op in group.drain(..) {
        let sp = conn.execute_batch("SAVEPOINT w");
        let (ok, reply) = op(Some(conn));
        if sp.is_ok() {
            let end = if ok {
                "RELEASE w"
            } else {
                "ROLLBACK TO w; RELEASE w"
            };
            let _ = conn.execute_batch(end);
        }
        replies.push(reply);
    }
    let outcome = conn.execute_batch("COMMIT").map_err(map_sql);
    if outcome.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    for reply in replies.drain(..) {
        reply(outcome.clone());
    }
}

impl EmbeddedStore {
    /// Opens (or creates) `dir/motcua.db`, creating `dir` if needed.
    pub fn open(dir: &Path) -> StoreResult<EmbeddedStore> {
        std::fs::create_dir_all(dir).map_err(backend)?;
        let path = dir.join(DB_FILE);
        let writer = open_conn(&path, false).map_err(map_sql)?;
        writer.execute_batch(SCHEMA).map_err(map_sql)?;
        writer.execute_batch(uploads::SCHEMA).map_err(map_sql)?;
        writer
            .execute_batch(notifications::SCHEMA)
            .map_err(map_sql)?;
        writer.execute_batch(payments::SCHEMA).map_err(map_sql)?;
        writer.execute_batch(reports::SCHEMA).map_err(map_sql)?;
        add_missing_columns(&writer).map_err(map_sql)?;
        let n = std::thread::available_parallelism().map_or(2, |n| n.get()) * 2;
        let readers = (0..n.max(2))
            .map(|_| open_conn(&path, true).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()
            .map_err(map_sql)?;
        let (tx, rx) = std::sync::mpsc::channel::<WriteOp>();
        std::thread::Builder::new()
            .name("motcua-sqlite-writer".into())
            .spawn(move || writer_loop(writer, rx))
            .map_err(backend)?;
        Ok(EmbeddedStore {
            db: Arc::new(Db {
                writes: tx,
                readers,
                next_reader: AtomicUsize::new(0),
                path,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.db.path
    }

    /// The submission ports, all served by this store.
    pub fn submission_ports(&self) -> SubmissionPorts {
        SubmissionPorts {
            catalogue: Arc::new(self.clone()),
            sequences: Arc::new(self.clone()),
            dossiers: Arc::new(self.clone()),
            outbox: Arc::new(self.clone()),
            idempotency: Arc::new(self.clone()),
            attempts: Arc::new(self.clone()),
            revoked: Arc::new(self.clone()),
            uploads: Arc::new(self.clone()),
            documents: Arc::new(self.clone()),
        }
    }

    /// The notifications ports: deliveries in this store, the send rate counted in this
    /// process.
    pub fn notification_ports(&self) -> motcua_ports::notifications::NotificationPorts {
        motcua_ports::notifications::NotificationPorts {
            deliveries: Arc::new(self.clone()),
            rate: Arc::new(LocalSendRate::default()),
        }
    }

    /// The payments ports: records in this store, and the given providers.
    pub fn payment_ports(
        &self,
        providers: motcua_ports::payments::Providers,
    ) -> motcua_ports::payments::PaymentPorts {
        motcua_ports::payments::PaymentPorts {
            payments: Arc::new(self.clone()),
            providers,
        }
    }

    /// The uploads ports on this store, with the given object store and scanner.
    pub fn upload_ports(
        &self,
        objects: Arc<dyn motcua_ports::uploads::ObjectStore>,
        scanner: Arc<dyn motcua_ports::uploads::Scanner>,
    ) -> motcua_ports::uploads::UploadPorts {
        motcua_ports::uploads::UploadPorts {
            uploads: Arc::new(self.clone()),
            objects,
            scanner,
            documents: Arc::new(self.clone()),
        }
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        let n = self.db.readers.len();
        let start = self.db.next_reader.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            if let Ok(g) = self.db.readers[(start + i) % n].try_lock() {
                return g;
            }
        }
        lock(&self.db.readers[start % n])
    }

    /// Runs `f` in the writer's next group commit; answers once the group is on disk.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let op: WriteOp = Box::new(move |conn: Option<&Connection>| {
            let r = conn.map(f);
            let ok = r.as_ref().is_some_and(|r| r.is_ok());
            let reply: Reply = Box::new(move |commit: StoreResult<()>| {
                let _ = tx.send(match r {
                    Some(r) => commit.and(r),
                    None => {
                        commit.and(Err(StoreError::Unavailable("the write did not run".into())))
                    }
                });
            });
            (ok, reply)
        });
        let stopped = || StoreError::Unavailable("the database writer has stopped".into());
        self.db.writes.send(op).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(backend)
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> StoreResult<T> {
    serde_json::from_str(s).map_err(backend)
}

fn micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

/// Queue order: by due date; dossiers without one (not received yet) by submission date.
fn queue_key(d: &Dossier) -> String {
    let day = d.due_date.unwrap_or_else(|| local_date(d.submitted_at));
    format!("{day}|{:020}", micros(d.submitted_at))
}

fn encode_cursor(key: &str, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{key}\n{id}"))
}

fn decode_cursor(c: &str) -> StoreResult<(String, String)> {
    let raw = URL_SAFE_NO_PAD
        .decode(c)
        .map_err(|_| StoreError::BadCursor)?;
    let s = String::from_utf8(raw).map_err(|_| StoreError::BadCursor)?;
    let (k, id) = s.split_once('\n').ok_or(StoreError::BadCursor)?;
    Uuid::parse_str(id).map_err(|_| StoreError::BadCursor)?;
    Ok((k.to_owned(), id.to_owned()))
}

fn page_of<T: serde::de::DeserializeOwned>(
    rows: Vec<(String, String, String)>,
    limit: u32,
) -> StoreResult<Page<T>> {
    let more = rows.len() > limit as usize;
    let mut items = Vec::with_capacity(rows.len().min(limit as usize));
    let mut last = None;
    for (key, id, body) in rows.into_iter().take(limit as usize) {
        items.push(from_json::<T>(&body)?);
        last = Some((key, id));
    }
    let next_cursor = match (more, last) {
        (true, Some((k, id))) => Some(encode_cursor(&k, &id)),
        _ => None,
    };
    Ok(Page { items, next_cursor })
}

#[async_trait]
impl Catalogue for EmbeddedStore {
    async fn procedures(&self) -> StoreResult<Vec<Procedure>> {
        let c = self.reader();
        let mut st = c
            .prepare_cached("SELECT body FROM procedures ORDER BY code")
            .map_err(map_sql)?;
        let rows = st
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(map_sql)?;
        rows.map(|r| r.map_err(map_sql).and_then(|b| from_json(&b)))
            .collect()
    }

    async fn procedure(&self, code: &str) -> StoreResult<Option<Procedure>> {
        let c = self.reader();
        let body: Option<String> = c
            .prepare_cached("SELECT body FROM procedures WHERE code = ?1")
            .and_then(|mut st| st.query_row([code], |r| r.get(0)).optional())
            .map_err(map_sql)?;
        body.map(|b| from_json(&b)).transpose()
    }

    async fn put_procedure(&self, p: &Procedure) -> StoreResult<()> {
        let body = to_json(p)?;
        let code = p.code.clone();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO procedures (code, body) VALUES (?1, ?2)
                 ON CONFLICT(code) DO UPDATE SET body = excluded.body",
            )
            .and_then(|mut st| st.execute(params![code, body]))
            .map_err(map_sql)?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl Sequences for EmbeddedStore {
    async fn next(&self, agency: &AgencyCode, day: Date) -> StoreResult<u32> {
        let (agency, day) = (agency.as_str().to_owned(), day.to_string());
        let v: i64 = self
            .write(move |c| {
                c.prepare_cached(
                    "INSERT INTO sequences (agency, day, value) VALUES (?1, ?2, 1)
                     ON CONFLICT(agency, day) DO UPDATE SET value = value + 1
                     RETURNING value",
                )
                .and_then(|mut st| st.query_row(params![agency, day], |r| r.get(0)))
                .map_err(map_sql)
            })
            .await?;
        u32::try_from(v).map_err(backend)
    }
}

/// A dossier change as owned column values, ready to move into the writer thread.
struct DossierRow {
    id: String,
    code: String,
    applicant: String,
    agency: String,
    status: u8,
    queue_key: String,
    submitted_us: i64,
    version: i64,
    body: String,
    history_seq: i64,
    history_body: String,
    event_id: String,
    event_body: String,
}

impl DossierRow {
    fn new(d: &Dossier, h: &HistoryEntry, e: &EventEnvelope) -> StoreResult<DossierRow> {
        Ok(DossierRow {
            id: d.id.to_string(),
            code: d.code.as_str().to_owned(),
            applicant: d.applicant.subject.clone(),
            agency: d.agency.as_str().to_owned(),
            status: d.status.code(),
            queue_key: queue_key(d),
            submitted_us: micros(d.submitted_at),
            version: d.version as i64,
            body: to_json(d)?,
            history_seq: h.seq as i64,
            history_body: to_json(h)?,
            event_id: e.id.to_string(),
            event_body: to_json(e)?,
        })
    }

    /// Replaces the dossier if its stored version is the one before; `Conflict` otherwise.
    fn update_dossier(&self, c: &Connection) -> StoreResult<()> {
        let changed = c
            .prepare_cached(
                "UPDATE dossiers SET status = ?2, queue_key = ?3, version = ?4, body = ?5
                 WHERE id = ?1 AND version = ?6",
            )
            .and_then(|mut st| {
                st.execute(params![
                    self.id,
                    self.status,
                    self.queue_key,
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

    fn insert_history_and_event(&self, c: &Connection) -> StoreResult<()> {
        c.prepare_cached("INSERT INTO history (dossier_id, seq, body) VALUES (?1, ?2, ?3)")
            .and_then(|mut st| st.execute(params![self.id, self.history_seq, self.history_body]))
            .map_err(|e| match map_sql(e) {
                StoreError::Duplicate => StoreError::Conflict,
                other => other,
            })?;
        c.prepare_cached("INSERT INTO outbox (id, body) VALUES (?1, ?2)")
            .and_then(|mut st| st.execute(params![self.event_id, self.event_body]))
            .map_err(map_sql)?;
        Ok(())
    }
}

#[async_trait]
impl DossierStore for EmbeddedStore {
    async fn create_citing(
        &self,
        d: &Dossier,
        h: &HistoryEntry,
        e: &EventEnvelope,
        cites: &[Citation],
    ) -> StoreResult<()> {
        let row = DossierRow::new(d, h, e)?;
        let cites = cites.to_vec();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO dossiers (id, code, applicant, agency, status, queue_key, submitted_us, version, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    row.id,
                    row.code,
                    row.applicant,
                    row.agency,
                    row.status,
                    row.queue_key,
                    row.submitted_us,
                    row.version,
                    row.body
                ])
            })
            .map_err(map_sql)?;
            uploads::claim(c, &row.id, &cites)?;
            row.insert_history_and_event(c)
        })
        .await
    }

    async fn get(&self, id: Uuid) -> StoreResult<Option<Dossier>> {
        let c = self.reader();
        let body: Option<String> = c
            .prepare_cached("SELECT body FROM dossiers WHERE id = ?1")
            .and_then(|mut st| st.query_row([id.to_string()], |r| r.get(0)).optional())
            .map_err(map_sql)?;
        body.map(|b| from_json(&b)).transpose()
    }

    async fn get_by_code(&self, code: &DossierCode) -> StoreResult<Option<Dossier>> {
        let c = self.reader();
        let body: Option<String> = c
            .prepare_cached("SELECT body FROM dossiers WHERE code = ?1")
            .and_then(|mut st| st.query_row([code.as_str()], |r| r.get(0)).optional())
            .map_err(map_sql)?;
        body.map(|b| from_json(&b)).transpose()
    }

    async fn history(&self, id: Uuid) -> StoreResult<Vec<HistoryEntry>> {
        let c = self.reader();
        let mut st = c
            .prepare_cached("SELECT body FROM history WHERE dossier_id = ?1 ORDER BY seq")
            .map_err(map_sql)?;
        let rows = st
            .query_map([id.to_string()], |r| r.get::<_, String>(0))
            .map_err(map_sql)?;
        rows.map(|r| r.map_err(map_sql).and_then(|b| from_json(&b)))
            .collect()
    }

    async fn list_by_applicant(
        &self,
        subject: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<Dossier>> {
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
                "SELECT submitted_us, id, body FROM dossiers
                 WHERE applicant = ?1 AND (submitted_us, id) < (?2, ?3)
                 ORDER BY submitted_us DESC, id DESC LIMIT ?4",
            )
            .map_err(map_sql)?;
        let rows = st
            .query_map(params![subject, after_us, after_id, limit + 1], |r| {
                Ok((r.get::<_, i64>(0)?.to_string(), r.get(1)?, r.get(2)?))
            })
            .map_err(map_sql)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(map_sql)?;
        page_of(rows, limit)
    }

    async fn agency_queue(
        &self,
        agency: &AgencyCode,
        status: Option<Status>,
        page: &PageRequest,
    ) -> StoreResult<Page<Dossier>> {
        let limit = page.limit.clamp(1, PageRequest::MAX_LIMIT);
        let (after_key, after_id) = match &page.cursor {
            Some(c) => decode_cursor(c)?,
            None => (String::new(), String::new()),
        };
        let c = self.reader();
        let map = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?, r.get(2)?));
        let rows = match status {
            Some(s) => c
                .prepare_cached(
                    "SELECT queue_key, id, body FROM dossiers
                     WHERE agency = ?1 AND status = ?2 AND (queue_key, id) > (?3, ?4)
                     ORDER BY queue_key, id LIMIT ?5",
                )
                .and_then(|mut st| {
                    st.query_map(
                        params![agency.as_str(), s.code(), after_key, after_id, limit + 1],
                        map,
                    )?
                    .collect::<Result<Vec<_>, _>>()
                }),
            None => c
                .prepare_cached(
                    "SELECT queue_key, id, body FROM dossiers
                     WHERE agency = ?1 AND (queue_key, id) > (?2, ?3)
                     ORDER BY queue_key, id LIMIT ?4",
                )
                .and_then(|mut st| {
                    st.query_map(
                        params![agency.as_str(), after_key, after_id, limit + 1],
                        map,
                    )?
                    .collect::<Result<Vec<_>, _>>()
                }),
        }
        .map_err(map_sql)?;
        page_of(rows, limit)
    }

    async fn refile(&self, d: &Dossier) -> StoreResult<()> {
        let (id, applicant, version, body) = (
            d.id.to_string(),
            d.applicant.subject.clone(),
            d.version as i64,
            to_json(d)?,
        );
        self.write(move |c| {
            let changed = c
                .prepare_cached(
                    "UPDATE dossiers SET applicant = ?2, body = ?3 WHERE id = ?1 AND version = ?4",
                )
                .and_then(|mut st| st.execute(params![id, applicant, body, version]))
                .map_err(map_sql)?;
            if changed != 1 {
                return Err(StoreError::Conflict);
            }
            Ok(())
        })
        .await
    }

    async fn transition_citing(
        &self,
        d: &Dossier,
        h: &HistoryEntry,
        e: &EventEnvelope,
        cites: &[Citation],
    ) -> StoreResult<()> {
        let row = DossierRow::new(d, h, e)?;
        let cites = cites.to_vec();
        self.write(move |c| {
            row.update_dossier(c)?;
            uploads::claim(c, &row.id, &cites)?;
            row.insert_history_and_event(c)
        })
        .await
    }
}

#[async_trait]
impl Outbox for EmbeddedStore {
    async fn pending(&self, limit: u32) -> StoreResult<Vec<EventEnvelope>> {
        let c = self.reader();
        let mut st = c
            .prepare_cached("SELECT body FROM outbox WHERE published = 0 ORDER BY pos LIMIT ?1")
            .map_err(map_sql)?;
        let rows = st
            .query_map([limit], |r| r.get::<_, String>(0))
            .map_err(map_sql)?;
        rows.map(|r| r.map_err(map_sql).and_then(|b| from_json(&b)))
            .collect()
    }

    async fn pending_after(
        &self,
        limit: u32,
        after: &EventEnvelope,
    ) -> StoreResult<Vec<EventEnvelope>> {
        let c = self.reader();
        let mut st = c
            .prepare_cached(
                "SELECT body FROM outbox WHERE published = 0
                 AND pos > (SELECT pos FROM outbox WHERE id = ?2) ORDER BY pos LIMIT ?1",
            )
            .map_err(map_sql)?;
        let rows = st
            .query_map(params![limit, after.id.to_string()], |r| {
                r.get::<_, String>(0)
            })
            .map_err(map_sql)?;
        rows.map(|r| r.map_err(map_sql).and_then(|b| from_json(&b)))
            .collect()
    }

    async fn mark_published(&self, ids: &[Uuid]) -> StoreResult<()> {
        let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        self.write(move |c| {
            let mut st = c
                .prepare_cached("UPDATE outbox SET published = 1 WHERE id = ?1")
                .map_err(map_sql)?;
            for id in &ids {
                st.execute([id]).map_err(map_sql)?;
            }
            Ok(())
        })
        .await
    }
}

type IdempotencyRow = (
    String,
    bool,
    i64,
    i64,
    Option<u16>,
    Option<String>,
    Option<Vec<u8>>,
    Option<String>,
);

#[async_trait]
impl IdempotencyStore for EmbeddedStore {
    async fn begin(
        &self,
        key: &str,
        fingerprint: &str,
        now: Timestamp,
        ttl_secs: u64,
    ) -> StoreResult<IdempotencyBegin> {
        let now_s = now.as_second();
        let (key, fingerprint) = (key.to_owned(), fingerprint.to_owned());
        self.write(move |c| {
            let row: Option<IdempotencyRow> = c
                .prepare_cached(
                    "SELECT fingerprint, done, started_at, expires_at, status, content_type, body, headers
                     FROM idempotency WHERE key = ?1",
                )
                .and_then(|mut st| {
                    st.query_row([&key], |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                            r.get(6)?,
                            r.get(7)?,
                        ))
                    })
                    .optional()
                })
                .map_err(map_sql)?;
            let outcome = match row {
                Some((_, _, _, expires, ..)) if expires <= now_s => None,
                Some((fp, ..)) if fp != fingerprint => Some(IdempotencyBegin::Mismatch),
                Some((_, true, _, _, Some(status), ct, body, headers)) => {
                    Some(IdempotencyBegin::Replay(StoredResponse {
                        status,
                        content_type: ct.unwrap_or_default(),
                        body: body.unwrap_or_default(),
                        headers: StoredResponse::parse_headers(
                            headers.as_deref().unwrap_or_default(),
                        ),
                    }))
                }
                Some((_, false, started, ..)) if now_s - started < IN_PROGRESS_LEASE_SECS => {
                    Some(IdempotencyBegin::InProgress)
                }
                _ => None,
            };
            if let Some(o) = outcome {
                return Ok(o);
            }
            c.prepare_cached(
                "INSERT OR REPLACE INTO idempotency (key, fingerprint, done, started_at, expires_at)
                 VALUES (?1, ?2, 0, ?3, ?4)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    key,
                    fingerprint,
                    now_s,
                    now_s.saturating_add(ttl_secs as i64)
                ])
            })
            .map_err(map_sql)?;
            Ok(IdempotencyBegin::Started)
        })
        .await
    }

    async fn complete(&self, key: &str, r: &StoredResponse) -> StoreResult<()> {
        let (key, r) = (key.to_owned(), r.clone());
        self.write(move |c| {
            c.prepare_cached(
                "UPDATE idempotency SET done = 1, status = ?2, content_type = ?3, body = ?4, headers = ?5
                 WHERE key = ?1",
            )
            .and_then(|mut st| {
                st.execute(params![
                    key,
                    r.status,
                    r.content_type,
                    r.body,
                    r.headers_text()
                ])
            })
            .map_err(map_sql)?;
            Ok(())
        })
        .await
    }

    async fn release(&self, key: &str) -> StoreResult<()> {
        let key = key.to_owned();
        self.write(move |c| {
            c.prepare_cached("DELETE FROM idempotency WHERE key = ?1 AND done = 0")
                .and_then(|mut st| st.execute([key]))
                .map_err(map_sql)?;
            Ok(())
        })
        .await
    }
}

mod identity;
mod revoked;

#[cfg(test)]
mod tests {
    use super::*;

    async fn fresh() -> SubmissionPorts {
        let dir = std::env::temp_dir().join(format!("motcua-contract-{}", Uuid::now_v7()));
        EmbeddedStore::open(&dir).unwrap().submission_ports()
    }

    motcua_ports::contract_tests!(fresh());

    async fn fresh_identity() -> motcua_ports::identity::IdentityPorts {
        let dir = std::env::temp_dir().join(format!("motcua-identity-{}", Uuid::now_v7()));
        EmbeddedStore::open(&dir).unwrap().identity_ports()
    }

    motcua_ports::identity_contract_tests!(fresh_identity());

    async fn fresh_uploads() -> (SubmissionPorts, motcua_ports::uploads_contract::Records) {
        let dir = std::env::temp_dir().join(format!("motcua-uploads-{}", Uuid::now_v7()));
        let store = EmbeddedStore::open(&dir).unwrap();
        let records = motcua_ports::uploads_contract::Records {
            uploads: Arc::new(store.clone()),
            documents: Arc::new(store.clone()),
        };
        (store.submission_ports(), records)
    }

    motcua_ports::uploads_contract_tests!(fresh_uploads());

    async fn fresh_notifications() -> motcua_ports::notifications::NotificationPorts {
        let dir = std::env::temp_dir().join(format!("motcua-notify-{}", Uuid::now_v7()));
        EmbeddedStore::open(&dir).unwrap().notification_ports()
    }

    motcua_ports::notifications_contract_tests!(fresh_notifications());

    async fn fresh_payments() -> (SubmissionPorts, motcua_ports::payments::PaymentPorts) {
        let dir = std::env::temp_dir().join(format!("motcua-pay-{}", Uuid::now_v7()));
        let store = EmbeddedStore::open(&dir).unwrap();
        (
            store.submission_ports(),
            store.payment_ports(Default::default()),
        )
    }

    motcua_ports::payments_contract_tests!(fresh_payments());

    async fn fresh_kpi() -> Arc<dyn motcua_ports::reports::KpiStore> {
        let dir = std::env::temp_dir().join(format!("motcua-kpi-{}", Uuid::now_v7()));
        Arc::new(EmbeddedStore::open(&dir).unwrap())
    }

    motcua_ports::reports_contract_tests!(fresh_kpi());

    /// Issue 9, item 5: when the group's transaction cannot begin, none of its writes runs
    /// (before, each ran in autocommit mode: a dossier without its event).
    #[test]
    fn a_group_whose_transaction_cannot_begin_runs_no_write() {
        let dir = std::env::temp_dir().join(format!("motcua-begin-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let conn = open_conn(&dir.join(DB_FILE), false).unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER)").unwrap();
        let answers = Arc::new(Mutex::new(Vec::new()));
        let mut group: Vec<WriteOp> = (0..3)
            .map(|i| {
                let answers = answers.clone();
                Box::new(move |c: Option<&Connection>| {
                    let ok = c.is_some_and(|c| c.execute("INSERT INTO t VALUES (?1)", [i]).is_ok());
                    let reply: Reply = Box::new(move |r| answers.lock().unwrap().push(r));
                    (ok, reply)
                }) as WriteOp
            })
            .collect();
        commit_group(&conn, &mut group, |_| {
            Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                None,
            ))
        });
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0, "no write of the group ran");
        let answers = answers.lock().unwrap();
        assert_eq!(answers.len(), 3);
        assert!(answers.iter().all(|a| a.is_err()));
        // The next group commits as usual.
        let answered = Arc::new(Mutex::new(Vec::new()));
        let a = answered.clone();
        let mut group: Vec<WriteOp> = vec![Box::new(move |c: Option<&Connection>| {
            let ok = c.is_some_and(|c| c.execute("INSERT INTO t VALUES (9)", []).is_ok());
            let reply: Reply = Box::new(move |r| a.lock().unwrap().push(r));
            (ok, reply)
        })];
        commit_group(&conn, &mut group, |c| c.execute_batch("BEGIN IMMEDIATE"));
        assert_eq!(answered.lock().unwrap().as_slice(), &[Ok(())]);
    }

    /// Attempts older than a day are swept as new ones are recorded (review finding: the
    /// table only grew).
    #[tokio::test]
    async fn old_attempts_are_swept() {
        let ports = fresh_identity().await;
        let now = Timestamp::from_second(Timestamp::now().as_second()).unwrap();
        let old = Timestamp::from_second(now.as_second() - 2 * 86_400).unwrap();
        let since = Timestamp::from_second(now.as_second() - 3 * 86_400).unwrap();
        ports.attempts.reserve("k", old).await.unwrap();
        ports.attempts.reserve("other", old).await.unwrap();
        assert_eq!(
            ports
                .attempts
                .failures_since("k", since, 100)
                .await
                .unwrap()
                .len(),
            1
        );
        // (Sweeps run every 64th attempt.)
        for _ in 0..62 {
            ports.attempts.reserve("filler", now).await.unwrap();
        }
        ports.attempts.reserve("k", now).await.unwrap();
        assert_eq!(
            ports
                .attempts
                .failures_since("k", since, 100)
                .await
                .unwrap(),
            vec![now]
        );
        assert!(
            ports
                .attempts
                .failures_since("other", since, 100)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn data_survives_reopen() {
        let dir = std::env::temp_dir().join(format!("motcua-reopen-{}", Uuid::now_v7()));
        let (d, h, e) = motcua_ports::contract::sample("alice", 1, Timestamp::now());
        {
            let s = EmbeddedStore::open(&dir).unwrap();
            s.create(&d, &h, &e).await.unwrap();
        }
        let s = EmbeddedStore::open(&dir).unwrap();
        assert_eq!(s.get(d.id).await.unwrap(), Some(d));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_data_file_from_before_a_column_was_added_is_upgraded() {
        let dir = std::env::temp_dir().join(format!("motcua-upgrade-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let old = Connection::open(dir.join(DB_FILE)).unwrap();
        old.execute_batch(
            "CREATE TABLE idempotency (key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL,
             done INTEGER NOT NULL, started_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
             status INTEGER, content_type TEXT, body BLOB)",
        )
        .unwrap();
        drop(old);
        let s = EmbeddedStore::open(&dir).unwrap();
        let now = Timestamp::now();
        assert_eq!(
            s.begin("u:k", "fp", now, 60).await.unwrap(),
            IdempotencyBegin::Started
        );
        let r = StoredResponse {
            status: 201,
            content_type: "application/json".into(),
            body: b"{}".to_vec(),
            headers: vec![("etag".into(), "\"1\"".into())],
        };
        s.complete("u:k", &r).await.unwrap();
        assert_eq!(
            s.begin("u:k", "fp", now, 60).await.unwrap(),
            IdempotencyBegin::Replay(r)
        );
        drop(s);
        // Opening again finds the column there and leaves it alone.
        EmbeddedStore::open(&dir).unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }
}
