//! Ports of the uploads capability: upload records, the object store that holds the
//! files, the malware scanner, and the applicant's personal document store.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use motcua_domain::Role;
use motcua_domain::upload::{StoredDocument, Upload};
use uuid::Uuid;

use crate::{Page, PageRequest, StoreResult};

/// Upload records.
#[async_trait]
pub trait UploadStore: Send + Sync {
    /// Stores a new slot. `Duplicate` if the id exists.
    async fn create_upload(&self, upload: &Upload) -> StoreResult<()>;

    async fn upload(&self, id: Uuid) -> StoreResult<Option<Upload>>;

    /// Records what became of a slot still awaiting its file (verified, rejected,
    /// expired). `Conflict` if it is no longer awaiting one: a redelivered event or the
    /// sweeper got there first, and the first outcome stands.
    async fn settle_upload(&self, upload: &Upload) -> StoreResult<()>;

    /// Slots still awaiting a file that expired before `before`, at most `limit`.
    async fn stale_uploads(&self, before: Timestamp, limit: u32) -> StoreResult<Vec<Upload>>;

    /// Audits a download link handed out.
    async fn record_download(&self, download: &Download) -> StoreResult<()>;

    /// The downloads of an upload, oldest first (at most 1,000).
    async fn downloads(&self, upload: Uuid) -> StoreResult<Vec<Download>>;

    /// The dossiers that cite an upload as a reused document ([`crate::Citation::shared`]),
    /// at most 1,000.
    async fn reused_by(&self, upload: Uuid) -> StoreResult<Vec<Uuid>>;
}

/// Who was given a download link of a file, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    pub upload: Uuid,
    pub at: Timestamp,
    /// The token's subject.
    pub actor: String,
    pub role: Role,
}

/// A request the client makes itself: method, URL and the headers it must send as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedRequest {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub expires_at: Timestamp,
}

/// What a presigned PUT binds: the object may only be written with exactly these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutConditions {
    pub content_type: String,
    pub size: u64,
    /// Standard base64 SHA-256, sent as `x-amz-checksum-sha256`.
    pub sha256: String,
    pub expires_in: Duration,
}

impl PutConditions {
    /// The headers the client must send with the PUT, as signed, in both object stores.
    pub fn headers(&self) -> Vec<(String, String)> {
        vec![
            ("Content-Type".into(), self.content_type.clone()),
            ("Content-Length".into(), self.size.to_string()),
            ("x-amz-checksum-sha256".into(), self.sha256.clone()),
            ("If-None-Match".into(), "*".into()),
        ]
    }
}

/// An object read back, up to a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectBody {
    /// The bytes read: all of them when `size <= limit`.
    pub bytes: Vec<u8>,
    /// The object's whole size.
    pub size: u64,
}

/// Where files live: S3 on AWS, a folder under the data directory locally.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// A PUT of `key` that succeeds only with the conditions' length, type and checksum.
    async fn presign_put(&self, key: &str, c: &PutConditions) -> StoreResult<PresignedRequest>;

    /// A GET of `key`, offered for download as `file_name`.
    async fn presign_get(
        &self,
        key: &str,
        file_name: &str,
        content_type: &str,
        expires_in: Duration,
    ) -> StoreResult<PresignedRequest>;

    /// The object's bytes, at most `limit` of them; `None` if there is no such object.
    async fn read(&self, key: &str, limit: u64) -> StoreResult<Option<ObjectBody>>;

    /// Moves an object (copy, then delete the source), keeping none of the headers its
    /// uploader set: the copy has `content_type` and nothing else (no `Content-Encoding`,
    /// `Cache-Control`, … that the bytes checked would not match). Moving a missing
    /// source whose destination exists is done already: `Ok`.
    async fn rename(&self, from: &str, to: &str, content_type: &str) -> StoreResult<()>;

    /// Deletes an object; a missing one is `Ok`.
    async fn delete(&self, key: &str) -> StoreResult<()>;

    /// Keys under `prefix` last written before `before`, at most `limit`.
    async fn older_than(
        &self,
        prefix: &str,
        before: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<String>>;
}

/// What the scanner said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Clean,
    /// No scanner is configured: nothing was looked at.
    Skipped,
    /// Malware, with the signature's name (for the log, not the applicant).
    Infected(String),
}

/// The malware scanner could not give an answer (down, timed out, file too large for
/// it): the file waits and the event is retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scanner unavailable: {0}")]
pub struct ScanError(pub String);

#[async_trait]
pub trait Scanner: Send + Sync {
    async fn scan(&self, bytes: &[u8]) -> Result<Verdict, ScanError>;
}

/// The scanner of a deployment that explicitly has none (`MOTCUA_SCANNER=none`): every
/// file is `Skipped`, and the upload record says so.
pub struct NoScanner;

#[async_trait]
impl Scanner for NoScanner {
    async fn scan(&self, _bytes: &[u8]) -> Result<Verdict, ScanError> {
        Ok(Verdict::Skipped)
    }
}

/// The applicant's personal document store (kho dữ liệu điện tử).
#[async_trait]
pub trait DocumentStore: Send + Sync {
    /// Adds a document; adding the same id again changes nothing.
    async fn add_document(&self, doc: &StoredDocument) -> StoreResult<()>;

    async fn document(&self, id: Uuid) -> StoreResult<Option<StoredDocument>>;

    /// An owner's documents, newest first.
    async fn documents(&self, owner: &str, page: &PageRequest)
    -> StoreResult<Page<StoredDocument>>;
}

/// Everything the uploads function needs.
#[derive(Clone)]
pub struct UploadPorts {
    pub uploads: Arc<dyn UploadStore>,
    pub objects: Arc<dyn ObjectStore>,
    pub scanner: Arc<dyn Scanner>,
    pub documents: Arc<dyn DocumentStore>,
}
