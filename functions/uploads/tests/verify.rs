//! The verifier and the sweeper on the embedded store and a local object folder: events
//! redelivered, out of order, for unknown keys, S3's test event, a scanner that is down,
//! and a crash between moving a file and recording it.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use motcua_domain::upload::{
    FileName, FileType, RejectReason, ScanOutcome, Sha256Digest, Upload, UploadStatus,
};
use motcua_embedded::{EmbeddedStore, LocalObjects, PutHeaders};
use motcua_ports::uploads::{NoScanner, ObjectStore, PutConditions, Scanner, UploadPorts};
use motcua_uploads::clamd::Clamd;
use motcua_uploads::sweep::sweep;
use motcua_uploads::verify::{Outcome, handle_batch, keys_of, verify_object};
use sha2::{Digest, Sha256};
use uuid::Uuid;

const PDF: &[u8] = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n";

struct Env {
    ports: UploadPorts,
    objects: Arc<LocalObjects>,
}

fn env_with(scanner: Arc<dyn Scanner>) -> Env {
    let dir = std::env::temp_dir().join(format!("motcua-verify-{}", Uuid::now_v7()));
    let store = EmbeddedStore::open(&dir).unwrap();
    let objects = Arc::new(LocalObjects::new(&dir, "http://127.0.0.1:9", b"k").unwrap());
    Env {
        ports: store.upload_ports(objects.clone(), scanner),
        objects,
    }
}

fn env() -> Env {
    env_with(Arc::new(NoScanner))
}

fn sha(bytes: &[u8]) -> String {
    Sha256Digest(Sha256::digest(bytes).into()).to_base64()
}

impl Env {
    /// A slot for `declared` bytes of `kind`, and the PUT of `sent` to it.
    async fn slot_and_put(&self, kind: FileType, declared: &[u8], sent: &[u8]) -> Upload {
        let now = Timestamp::now();
        let u = Upload {
            id: Uuid::new_v4(),
            owner: "citizen-a".into(),
            agency: None,
            file_name: FileName::parse(&format!("f.{}", kind.as_str()), kind).unwrap(),
            kind,
            size: declared.len() as u64,
            sha256: sha(declared),
            procedure_code: None,
            document_code: None,
            status: UploadStatus::AwaitingFile,
            reason: None,
            scan: None,
            created_at: now,
            expires_at: now + Duration::from_secs(300),
            settled_at: None,
            cited_by: None,
        };
        self.ports.uploads.create_upload(&u).await.unwrap();
        let put = self
            .objects
            .presign_put(
                &u.quarantine_key(),
                &PutConditions {
                    content_type: kind.mime().into(),
                    size: sent.len() as u64,
                    sha256: sha(sent),
                    expires_in: Duration::from_secs(300),
                },
            )
            .await
            .unwrap();
        let query = put.url.split_once('?').unwrap().1;
        let checksum = sha(sent);
        self.objects
            .accept_put(
                &u.quarantine_key(),
                query,
                &PutHeaders {
                    content_type: Some(kind.mime()),
                    content_length: Some(sent.len() as u64),
                    checksum_sha256: Some(&checksum),
                    if_none_match: Some("*"),
                },
                sent,
                now,
            )
            .unwrap();
        u
    }

    async fn status(&self, id: Uuid) -> Upload {
        self.ports.uploads.upload(id).await.unwrap().unwrap()
    }
}

#[tokio::test]
async fn a_matching_file_is_verified_once_and_filed_in_the_owners_store() {
    let e = env();
    let u = e.slot_and_put(FileType::Pdf, PDF, PDF).await;
    let now = Timestamp::now();
    let first = verify_object(&e.ports, &u.quarantine_key(), now).await;
    assert_eq!(first, Ok(Outcome::Verified(ScanOutcome::Skipped)));
    let done = e.status(u.id).await;
    assert_eq!(
        (done.status, done.scan),
        (UploadStatus::Verified, Some(ScanOutcome::Skipped))
    );
    assert!(
        e.objects
            .read(&u.clean_key(), 1000)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        e.objects
            .read(&u.quarantine_key(), 1000)
            .await
            .unwrap()
            .is_none()
    );
    // Redelivered: nothing changes.
    let again = verify_object(&e.ports, &u.quarantine_key(), now).await;
    assert_eq!(again, Ok(Outcome::Ignored("already settled")));
    assert_eq!(e.status(u.id).await, done);
    let doc = e.ports.documents.document(u.id).await.unwrap().unwrap();
    assert_eq!((doc.owner.as_str(), doc.upload), ("citizen-a", u.id));
}

#[tokio::test]
async fn a_file_that_is_not_what_its_slot_declared_is_deleted_and_the_reason_kept() {
    let e = env();
    // The bytes of a PDF, declared (and named) a JPEG: the signed checksum matches, the
    // content does not.
    let u = e.slot_and_put(FileType::Jpeg, PDF, PDF).await;
    let out = verify_object(&e.ports, &u.quarantine_key(), Timestamp::now()).await;
    let want = RejectReason::TypeMismatch {
        declared: FileType::Jpeg,
        found: Some(FileType::Pdf),
    };
    assert_eq!(out, Ok(Outcome::Rejected(want.clone())));
    let done = e.status(u.id).await;
    assert_eq!(
        (done.status, done.reason),
        (UploadStatus::Rejected, Some(want))
    );
    assert!(
        e.objects
            .read(&u.quarantine_key(), 10)
            .await
            .unwrap()
            .is_none()
    );
    assert!(e.ports.documents.document(u.id).await.unwrap().is_none());
    // A size or checksum other than declared (S3 refuses such a PUT; the verifier checks
    // anyway): rejected too.
    let mut other = PDF.to_vec();
    other.push(b'\n');
    let u = e.slot_and_put(FileType::Pdf, PDF, &other).await;
    let out = verify_object(&e.ports, &u.quarantine_key(), Timestamp::now()).await;
    assert!(
        matches!(
            out,
            Ok(Outcome::Rejected(RejectReason::SizeMismatch { .. }))
        ),
        "{out:?}"
    );
    let mut same_size = PDF.to_vec();
    same_size[9] = b'2';
    let u = e.slot_and_put(FileType::Pdf, PDF, &same_size).await;
    let out = verify_object(&e.ports, &u.quarantine_key(), Timestamp::now()).await;
    assert_eq!(out, Ok(Outcome::Rejected(RejectReason::ChecksumMismatch)));
}

#[tokio::test]
async fn events_for_keys_that_name_no_upload_are_dropped() {
    let e = env();
    for key in [
        format!("quarantine/{}", Uuid::new_v4()),
        "clean/x".to_owned(),
        "quarantine/../../etc/passwd".to_owned(),
    ] {
        let out = verify_object(&e.ports, &key, Timestamp::now()).await;
        assert!(matches!(out, Ok(Outcome::Ignored(_))), "{key}: {out:?}");
    }
}

#[tokio::test]
async fn a_scanner_that_does_not_answer_leaves_the_file_waiting_and_the_message_retried() {
    // Nothing listens on port 9: the real clamd adapter cannot connect.
    let e = env_with(Arc::new(Clamd::new("127.0.0.1:9", Duration::from_secs(2))));
    let u = e.slot_and_put(FileType::Pdf, PDF, PDF).await;
    let body = notification(&u.quarantine_key());
    let failed = handle_batch(
        &e.ports,
        &[
            ("m-1".into(), body),
            (
                "m-2".into(),
                r#"{"Event":"s3:TestEvent","Bucket":"b"}"#.into(),
            ),
            ("m-3".into(), "not json".into()),
        ],
        Timestamp::now(),
    )
    .await;
    assert_eq!(failed, vec!["m-1".to_owned()], "only the scan is retried");
    assert_eq!(e.status(u.id).await.status, UploadStatus::AwaitingFile);
    assert!(
        e.objects
            .read(&u.quarantine_key(), 10)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_crash_between_moving_the_file_and_recording_it_is_finished_by_the_next_delivery() {
    let e = env();
    let u = e.slot_and_put(FileType::Pdf, PDF, PDF).await;
    // The first delivery moved the file and stopped.
    e.objects
        .rename(&u.quarantine_key(), &u.clean_key(), "application/pdf")
        .await
        .unwrap();
    let out = verify_object(&e.ports, &u.quarantine_key(), Timestamp::now()).await;
    assert_eq!(out, Ok(Outcome::Verified(ScanOutcome::Skipped)));
    assert_eq!(e.status(u.id).await.status, UploadStatus::Verified);
    assert!(
        e.objects
            .read(&u.clean_key(), 1000)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_second_file_sent_to_a_verified_slot_is_removed_and_changes_nothing() {
    let e = env();
    let u = e.slot_and_put(FileType::Pdf, PDF, PDF).await;
    verify_object(&e.ports, &u.quarantine_key(), Timestamp::now())
        .await
        .unwrap();
    let done = e.status(u.id).await;
    // The quarantine key is free again once the file moved: a second PUT lands there.
    std::fs::write(
        e.objects_root().join(u.quarantine_key()),
        b"%PDF-1.4 something else",
    )
    .unwrap();
    let out = verify_object(&e.ports, &u.quarantine_key(), Timestamp::now()).await;
    assert_eq!(out, Ok(Outcome::Ignored("already settled")));
    assert!(
        e.objects
            .read(&u.quarantine_key(), 10)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(e.status(u.id).await, done);
    assert_eq!(
        e.objects
            .read(&u.clean_key(), 1000)
            .await
            .unwrap()
            .unwrap()
            .bytes,
        PDF
    );
}

#[tokio::test]
async fn slots_that_never_got_a_file_expire_and_their_leftovers_go() {
    let e = env();
    let u = e.slot_and_put(FileType::Pdf, PDF, PDF).await;
    let later = Timestamp::now() + Duration::from_secs(300 + 2 * 3600);
    // Expired before its event was handled (the scanner was down for hours).
    let swept = sweep(&e.ports, later, 100).await.unwrap();
    assert_eq!(swept.expired, 1);
    assert_eq!(e.status(u.id).await.status, UploadStatus::Expired);
    assert!(
        e.objects
            .read(&u.quarantine_key(), 10)
            .await
            .unwrap()
            .is_none()
    );
    // A late event changes nothing.
    let out = verify_object(&e.ports, &u.quarantine_key(), later).await;
    assert_eq!(out, Ok(Outcome::Ignored("already settled")));
    assert_eq!(sweep(&e.ports, later, 100).await.unwrap().expired, 0);
}

#[test]
fn s3_notifications_name_url_encoded_keys_and_only_created_objects_count() {
    let body = notification("quarantine/a+b%2Fc");
    assert_eq!(keys_of(&body).unwrap(), vec!["quarantine/a b/c".to_owned()]);
    let removed = body.replace("ObjectCreated:Put", "ObjectRemoved:Delete");
    assert!(keys_of(&removed).unwrap().is_empty());
    assert!(keys_of(r#"{"Event":"s3:TestEvent"}"#).unwrap().is_empty());
    assert!(keys_of("[]").is_err());
}

fn notification(key: &str) -> String {
    serde_json::json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "motcua-files"}, "object": {"key": key, "size": 1}}
    }]})
    .to_string()
}

impl Env {
    fn objects_root(&self) -> std::path::PathBuf {
        self.objects.root().to_path_buf()
    }
}
