//! Ports: the narrow traits handlers depend on. Each has an embedded adapter (SQLite file)
//! and an AWS adapter (DynamoDB), and both must pass the [`contract`] suite.

use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;
use jiff::civil::Date;
use motcua_domain::{
    AgencyCode, Dossier, DossierCode, EventEnvelope, HistoryEntry, Procedure, Status,
};
use uuid::Uuid;

#[cfg(feature = "contract")]
pub mod contract;
pub mod identity;
#[cfg(feature = "contract")]
pub mod identity_contract;
pub mod notifications;
#[cfg(feature = "contract")]
pub mod notifications_contract;
pub mod payments;
#[cfg(feature = "contract")]
pub mod payments_contract;
pub mod reports;
#[cfg(feature = "contract")]
pub mod reports_contract;
pub mod uploads;
#[cfg(feature = "contract")]
pub mod uploads_contract;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost: the item changed since it was read (stale version).
    #[error("conflict: the item changed since it was read")]
    Conflict,
    /// The key (id or dossier code) is already taken.
    #[error("duplicate key")]
    Duplicate,
    /// The pagination cursor is not one this store issued.
    #[error("invalid cursor")]
    BadCursor,
    /// Temporary: throttled, timed out, busy. The caller may retry later (503).
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// A bug or corruption: logged, answered 500.
    #[error("backend error: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What page the caller wants: at most `limit` items after the opaque `cursor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    pub cursor: Option<String>,
}

impl PageRequest {
    pub const MAX_LIMIT: u32 = 100;

    pub fn first(limit: u32) -> Self {
        PageRequest {
            limit: limit.clamp(1, Self::MAX_LIMIT),
            cursor: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Present when more items may follow.
    pub next_cursor: Option<String>,
}

/// The procedure catalogue.
#[async_trait]
pub trait Catalogue: Send + Sync {
    async fn procedures(&self) -> StoreResult<Vec<Procedure>>;
    async fn procedure(&self, code: &str) -> StoreResult<Option<Procedure>>;
    /// Inserts or replaces a procedure (seeding, admin).
    async fn put_procedure(&self, procedure: &Procedure) -> StoreResult<()>;
}

/// Per-agency daily counters behind dossier codes.
#[async_trait]
pub trait Sequences: Send + Sync {
    /// The next number (1, 2, …) for `agency` on `day`; never the same twice.
    async fn next(&self, agency: &AgencyCode, day: Date) -> StoreResult<u32>;
}

/// Dossiers, their history and their outbox events.
#[async_trait]
pub trait DossierStore: Send + Sync {
    /// Stores a new dossier with its first history entry and event, atomically.
    /// `Duplicate` when the id or the dossier code exists.
    async fn create(
        &self,
        dossier: &Dossier,
        history: &HistoryEntry,
        event: &EventEnvelope,
    ) -> StoreResult<()> {
        self.create_citing(dossier, history, event, &[]).await
    }

    /// [`DossierStore::create`], claiming the cited uploads in the same transaction:
    /// `Conflict` (and nothing stored) if one is not verified, not the citation's owner's,
    /// or cited by another dossier.
    async fn create_citing(
        &self,
        dossier: &Dossier,
        history: &HistoryEntry,
        event: &EventEnvelope,
        cites: &[Citation],
    ) -> StoreResult<()>;

    async fn get(&self, id: Uuid) -> StoreResult<Option<Dossier>>;

    async fn get_by_code(&self, code: &DossierCode) -> StoreResult<Option<Dossier>>;

    /// History in order (seq ascending).
    async fn history(&self, id: Uuid) -> StoreResult<Vec<HistoryEntry>>;

    /// An applicant's dossiers, newest first.
    async fn list_by_applicant(
        &self,
        subject: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<Dossier>>;

    /// An agency's queue, optionally one status, ordered by due date (dossiers not yet
    /// received by their submission date), oldest first.
    async fn agency_queue(
        &self,
        agency: &AgencyCode,
        status: Option<Status>,
        page: &PageRequest,
    ) -> StoreResult<Page<Dossier>>;

    /// Replaces the dossier if its stored version is still `dossier.version - 1`, and
    /// appends the history entry and the outbox event, atomically. `Conflict` otherwise.
    async fn transition(
        &self,
        dossier: &Dossier,
        history: &HistoryEntry,
        event: &EventEnvelope,
    ) -> StoreResult<()> {
        self.transition_citing(dossier, history, event, &[]).await
    }

    /// [`DossierStore::transition`], claiming the cited uploads as
    /// [`DossierStore::create_citing`] does. An upload this dossier already cites may be
    /// cited again.
    async fn transition_citing(
        &self,
        dossier: &Dossier,
        history: &HistoryEntry,
        event: &EventEnvelope,
        cites: &[Citation],
    ) -> StoreResult<()>;
    /// Files `dossier` under its (new) applicant owner, its version unchanged: the move of a
    /// dossier filed under an account id by earlier versions to the person's owner
    /// reference. `Conflict` if the stored version is no longer `dossier.version`.
    async fn refile(&self, dossier: &Dossier) -> StoreResult<()>;
}

/// An upload a dossier cites, claimed in the dossier's own transaction so that no two
/// dossiers cite one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Citation {
    pub upload: Uuid,
    /// Who must own it: the applicant, or the officer attaching a result file.
    pub owner: String,
    /// Reused (a document of the applicant's store, or an earlier dossier's result): the
    /// file stays free for other dossiers, and this dossier's officers may read it. Not
    /// shared: the dossier takes the file for itself.
    pub shared: bool,
}

/// Events written by the dossier transactions, waiting to be relayed to the bus.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Oldest unpublished events first.
    async fn pending(&self, limit: u32) -> StoreResult<Vec<EventEnvelope>>;
    /// The unpublished events that come after `after` in [`Outbox::pending`]'s order
    /// (`after` itself may be published by now), oldest first, at most `limit`.
    async fn pending_after(
        &self,
        limit: u32,
        after: &EventEnvelope,
    ) -> StoreResult<Vec<EventEnvelope>>;
    /// Marks events as relayed; unknown or already-marked ids are ignored.
    async fn mark_published(&self, ids: &[Uuid]) -> StoreResult<()>;
}

/// Where relayed events go (EventBridge on AWS, an in-process bus locally).
#[async_trait]
pub trait EventPublisher: Send + Sync {
    /// Publishes the events; returns the ids of those that were not accepted (to retry).
    async fn publish(&self, events: &[EventEnvelope]) -> StoreResult<Vec<Uuid>>;
}

/// The first answer to a request, kept for replay to retries with the same key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    /// The headers a replay must carry as well (`Location`, `ETag`), as (name, value).
    pub headers: Vec<(String, String)>,
}

impl StoredResponse {
    /// The headers as stored: one `name:value` per line (header values hold no line breaks).
    pub fn headers_text(&self) -> String {
        self.headers
            .iter()
            .map(|(k, v)| format!("{k}:{v}\n"))
            .collect()
    }

    /// Reads what [`StoredResponse::headers_text`] wrote; lines without a name are skipped.
    pub fn parse_headers(text: &str) -> Vec<(String, String)> {
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| !k.is_empty())
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyBegin {
    /// First time this key is seen: the caller does the work, then `complete`s or `release`s.
    Started,
    /// Same key, same request, already answered: replay this.
    Replay(StoredResponse),
    /// Same key, same request, still being worked on by another call.
    InProgress,
    /// Same key, another request: refused (422).
    Mismatch,
}

/// Idempotency records, kept for a limited time.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// `key` is already scoped to the caller; `fingerprint` identifies the request.
    async fn begin(
        &self,
        key: &str,
        fingerprint: &str,
        now: Timestamp,
        ttl_secs: u64,
    ) -> StoreResult<IdempotencyBegin>;
    async fn complete(&self, key: &str, response: &StoredResponse) -> StoreResult<()>;
    /// Forgets a started record whose work failed in a way worth retrying.
    async fn release(&self, key: &str) -> StoreResult<()>;
}

/// Everything the submission capability needs, as shared trait objects.
#[derive(Clone)]
pub struct SubmissionPorts {
    pub catalogue: Arc<dyn Catalogue>,
    pub sequences: Arc<dyn Sequences>,
    pub dossiers: Arc<dyn DossierStore>,
    pub outbox: Arc<dyn Outbox>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// Failed public lookups, per client and per dossier code.
    pub attempts: Arc<dyn identity::AttemptLimiter>,
    /// Subjects of erased accounts, whose tokens are refused.
    pub revoked: Arc<dyn identity::RevokedSubjects>,
    /// Upload records: the files dossiers cite.
    pub uploads: Arc<dyn uploads::UploadStore>,
    /// The applicants' personal document stores.
    pub documents: Arc<dyn uploads::DocumentStore>,
}
