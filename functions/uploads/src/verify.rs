//! Verification of an arrived file: size, checksum and real type against its slot, then
//! the malware scan; the file moves to the clean area and the upload is `verified`, or it
//! is deleted and the upload `rejected` with the reason. Fed by S3 `ObjectCreated`
//! notifications through SQS on AWS, and by the runner after each local PUT.
//!
//! Safe to repeat: an upload is settled once ([`UploadStore::settle_upload`]), a file is
//! moved before its upload is marked verified (a crash between the two finds it in the
//! clean area on the next delivery), and an event for an upload already settled only
//! removes what a second PUT may have left in quarantine.

use jiff::Timestamp;
use motcua_domain::upload::{
    Arrived, RejectReason, ScanOutcome, StoredDocument, Upload, UploadStatus, judge, sniff,
    upload_of_key,
};
use motcua_ports::StoreError;
use motcua_ports::uploads::{UploadPorts, Verdict};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// What became of one object event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Verified(ScanOutcome),
    Rejected(RejectReason),
    /// Nothing to do: not an upload key, an unknown upload, already settled, no object.
    Ignored(&'static str),
}

/// Worth retrying: the store, the object store or the scanner did not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Retry(pub String);

impl From<StoreError> for Retry {
    fn from(e: StoreError) -> Self {
        Retry(e.to_string())
    }
}

/// Verifies the object `key` (a quarantine key) that was just written.
pub async fn verify_object(
    ports: &UploadPorts,
    key: &str,
    now: Timestamp,
) -> Result<Outcome, Retry> {
    let Some(id) = upload_of_key(key) else {
        tracing::warn!(
            key_len = key.len(),
            "an object event for a key that names no upload: dropped"
        );
        return Ok(Outcome::Ignored("not an upload key"));
    };
    let Some(upload) = ports.uploads.upload(id).await? else {
        tracing::warn!(upload = %id, "an object event for an unknown upload: dropped");
        return Ok(Outcome::Ignored("unknown upload"));
    };
    if upload.status != UploadStatus::AwaitingFile {
        return settled_already(ports, &upload).await;
    }
    // Read one byte more than declared, to tell "larger" without reading a huge file.
    let limit = upload.size.saturating_add(1);
    let (body, found_at) = match ports.objects.read(&upload.quarantine_key(), limit).await? {
        Some(b) => (b, upload.quarantine_key()),
        // Moved by an earlier delivery that stopped before recording the outcome.
        None => match ports.objects.read(&upload.clean_key(), limit).await? {
            Some(b) => (b, upload.clean_key()),
            None => return Ok(Outcome::Ignored("no object")),
        },
    };
    let arrived = Arrived {
        size: body.size,
        sha256: if body.size == body.bytes.len() as u64 {
            Sha256::digest(&body.bytes).into()
        } else {
            [0; 32]
        },
        sniffed: sniff(&body.bytes),
    };
    let scan = match judge(&upload, &arrived) {
        Err(reason) => return reject(ports, upload, &found_at, reason, now).await,
        Ok(()) => ports
            .scanner
            .scan(&body.bytes)
            .await
            .map_err(|e| Retry(e.to_string()))?,
    };
    let outcome = match scan {
        Verdict::Infected(signature) => {
            tracing::warn!(upload = %upload.id, %signature, "malware found: the file is deleted");
            return reject(ports, upload, &found_at, RejectReason::Infected, now).await;
        }
        Verdict::Clean => ScanOutcome::Clean,
        Verdict::Skipped => ScanOutcome::Skipped,
    };
    if found_at != upload.clean_key() {
        ports
            .objects
            .rename(&found_at, &upload.clean_key(), upload.kind.mime())
            .await?;
    }
    let mut done = upload;
    done.status = UploadStatus::Verified;
    done.scan = Some(outcome);
    done.settled_at = Some(now);
    match ports.uploads.settle_upload(&done).await {
        Ok(()) => {}
        // Settled meanwhile (the sweeper expired it): that outcome stands.
        Err(StoreError::Conflict) => return now_settled(ports, done.id).await,
        Err(e) => return Err(e.into()),
    }
    file_in_store(ports, &done, now).await?;
    tracing::info!(upload = %done.id, scan = ?outcome, "upload verified");
    Ok(Outcome::Verified(outcome))
}

/// A citizen's verified file enters their personal document store (officers' result
/// files enter the applicant's store with the dossier's result, not here).
async fn file_in_store(ports: &UploadPorts, u: &Upload, now: Timestamp) -> Result<(), Retry> {
    if u.agency.is_none() {
        ports
            .documents
            .add_document(&StoredDocument::of_upload(u, u.settled_at.unwrap_or(now)))
            .await?;
    }
    Ok(())
}

async fn reject(
    ports: &UploadPorts,
    upload: Upload,
    key: &str,
    reason: RejectReason,
    now: Timestamp,
) -> Result<Outcome, Retry> {
    let mut done = upload;
    done.status = UploadStatus::Rejected;
    done.reason = Some(reason.clone());
    done.settled_at = Some(now);
    // Recorded first: a crash before the delete leaves a settled upload whose object the
    // next delivery (or the sweeper) removes.
    match ports.uploads.settle_upload(&done).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => return now_settled(ports, done.id).await,
        Err(e) => return Err(e.into()),
    }
    ports.objects.delete(key).await?;
    tracing::info!(upload = %done.id, reason = ?reason, "upload rejected");
    Ok(Outcome::Rejected(reason))
}

async fn now_settled(ports: &UploadPorts, id: uuid::Uuid) -> Result<Outcome, Retry> {
    match ports.uploads.upload(id).await? {
        Some(u) => settled_already(ports, &u).await,
        None => Ok(Outcome::Ignored("unknown upload")),
    }
}

/// An event for an upload already settled: a redelivery, or a second PUT to the slot.
async fn settled_already(ports: &UploadPorts, u: &Upload) -> Result<Outcome, Retry> {
    match u.status {
        UploadStatus::Verified => {
            // The verified file is in the clean area; anything in quarantine is a second
            // upload, never verified: removed.
            ports.objects.delete(&u.quarantine_key()).await?;
            file_in_store(ports, u, u.settled_at.unwrap_or(u.created_at)).await?;
        }
        UploadStatus::Rejected | UploadStatus::Expired => {
            ports.objects.delete(&u.quarantine_key()).await?;
            ports.objects.delete(&u.clean_key()).await?;
        }
        UploadStatus::AwaitingFile => {}
    }
    Ok(Outcome::Ignored("already settled"))
}

/// One SQS message's body: an S3 event notification, or S3's test event.
#[derive(Debug, Deserialize)]
struct Notification {
    #[serde(rename = "Records", default)]
    records: Vec<S3Record>,
    #[serde(rename = "Event", default)]
    event: Option<String>,
}

#[derive(Debug, Deserialize)]
struct S3Record {
    #[serde(rename = "eventName", default)]
    event_name: String,
    s3: S3Entity,
}

#[derive(Debug, Deserialize)]
struct S3Entity {
    object: S3Object,
}

#[derive(Debug, Deserialize)]
struct S3Object {
    key: String,
}

/// The object keys an SQS message body names (S3 URL-encodes them, `+` for a space);
/// `Ok(vec![])` for S3's `s3:TestEvent` and events other than `ObjectCreated:*`; `Err` for
/// a body that is not an S3 notification.
pub fn keys_of(body: &str) -> Result<Vec<String>, serde_json::Error> {
    let v: serde_json::Value = serde_json::from_str(body)?;
    if !v.get("Records").is_some_and(|r| r.is_array()) && v.get("Event").is_none() {
        // A JSON array would read as a notification of no records: it is none.
        return Err(serde::de::Error::custom("neither Records nor Event"));
    }
    let n: Notification = serde_json::from_value(v)?;
    if n.event.as_deref() == Some("s3:TestEvent") {
        return Ok(vec![]);
    }
    Ok(n.records
        .into_iter()
        .filter(|r| r.event_name.starts_with("ObjectCreated:"))
        .map(|r| {
            form_urlencoded::parse(format!("k={}", r.s3.object.key).as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        })
        .collect())
}

/// Handles a batch of SQS messages `(message id, body)`; answers the ids to retry
/// (partial batch failure). A body that is no S3 notification is logged and dropped.
pub async fn handle_batch(
    ports: &UploadPorts,
    messages: &[(String, String)],
    now: Timestamp,
) -> Vec<String> {
    let mut failed = Vec::new();
    for (id, body) in messages {
        let keys = match keys_of(body) {
            Ok(k) => k,
            Err(e) => {
                tracing::error!(message = %id, error = %e, "not an S3 notification: dropped");
                continue;
            }
        };
        for key in keys {
            match verify_object(ports, &key, now).await {
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(message = %id, error = %e, "verification failed; retried");
                    failed.push(id.clone());
                    break;
                }
            }
        }
    }
    failed
}
