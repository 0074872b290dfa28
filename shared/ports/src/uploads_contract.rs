//! The contract of the upload records, the download audit, the document store and the
//! citation of uploads by dossiers; run with
//! [`uploads_contract_tests!`](crate::uploads_contract_tests).

use jiff::Timestamp;
use motcua_domain::upload::{
    FileName, FileType, RejectReason, Sha256Digest, StoredDocument, Upload, UploadStatus,
};
use motcua_domain::{Command, EventEnvelope, Role, WorkingCalendar};
use uuid::Uuid;

use crate::contract::{officer, sample};
use crate::uploads::{DocumentStore, Download, UploadStore};
use crate::{Citation, PageRequest, StoreError, SubmissionPorts};

/// One `#[tokio::test]` per case; `$make` is an async expression giving fresh
/// `(SubmissionPorts, Records)` on one store.
#[macro_export]
macro_rules! uploads_contract_tests {
    ($make:expr) => {
        $crate::uploads_contract_tests!(@each $make;
            uploads_are_created_once_and_settled_once,
            stale_uploads_are_those_awaiting_past_their_expiry,
            a_dossier_claims_only_verified_uploads_of_its_owner_not_cited_elsewhere,
            a_transition_may_cite_what_its_dossier_already_cites,
            reused_files_stay_free_and_name_the_dossiers_reusing_them,
            downloads_are_audited,
            documents_are_added_once_and_listed_newest_first_per_owner
        );
    };
    (@each $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (submission, uploads) = $make.await;
                $crate::uploads_contract::$name(submission, uploads).await;
            }
        )*
    };
}

/// The stores under test.
pub struct Records {
    pub uploads: std::sync::Arc<dyn UploadStore>,
    pub documents: std::sync::Arc<dyn DocumentStore>,
}

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_773_712_800 + secs).expect("valid")
}

pub fn upload(owner: &str, expires_at: Timestamp) -> Upload {
    Upload {
        id: Uuid::new_v4(),
        owner: owner.into(),
        agency: None,
        file_name: FileName::parse("Tờ khai.pdf", FileType::Pdf).expect("a name"),
        kind: FileType::Pdf,
        size: 1234,
        sha256: Sha256Digest([9; 32]).to_base64(),
        procedure_code: None,
        document_code: Some("to-khai".into()),
        status: UploadStatus::AwaitingFile,
        reason: None,
        scan: None,
        created_at: t(0),
        expires_at,
        settled_at: None,
        cited_by: None,
    }
}

async fn verified(ports: &Records, owner: &str) -> Upload {
    let mut u = upload(owner, t(600));
    ports.uploads.create_upload(&u).await.expect("created");
    u.status = UploadStatus::Verified;
    u.settled_at = Some(t(10));
    ports.uploads.settle_upload(&u).await.expect("settled");
    u
}

pub async fn uploads_are_created_once_and_settled_once(_: SubmissionPorts, ports: Records) {
    let u = upload("owner-a", t(600));
    ports.uploads.create_upload(&u).await.expect("created");
    assert_eq!(
        ports.uploads.create_upload(&u).await,
        Err(StoreError::Duplicate)
    );
    assert_eq!(ports.uploads.upload(u.id).await.unwrap(), Some(u.clone()));
    assert_eq!(ports.uploads.upload(Uuid::new_v4()).await.unwrap(), None);
    let mut rejected = u.clone();
    rejected.status = UploadStatus::Rejected;
    rejected.reason = Some(RejectReason::ChecksumMismatch);
    rejected.settled_at = Some(t(30));
    ports
        .uploads
        .settle_upload(&rejected)
        .await
        .expect("settled");
    // A redelivered event that would verify it now changes nothing.
    let mut late = u.clone();
    late.status = UploadStatus::Verified;
    assert_eq!(
        ports.uploads.settle_upload(&late).await,
        Err(StoreError::Conflict)
    );
    assert_eq!(ports.uploads.upload(u.id).await.unwrap(), Some(rejected));
}

pub async fn stale_uploads_are_those_awaiting_past_their_expiry(
    _: SubmissionPorts,
    ports: Records,
) {
    // Other tests' uploads may share the store: look only at ours.
    let owner = format!("stale-{}", Uuid::new_v4());
    let early = upload(&owner, t(100));
    let late = upload(&owner, t(10_000));
    let mut done = upload(&owner, t(50));
    for u in [&early, &late, &done] {
        ports.uploads.create_upload(u).await.expect("created");
    }
    done.status = UploadStatus::Verified;
    ports.uploads.settle_upload(&done).await.expect("settled");
    let stale: Vec<Uuid> = ports
        .uploads
        .stale_uploads(t(5_000), 1000)
        .await
        .expect("listed")
        .into_iter()
        .filter(|u| u.owner == owner)
        .map(|u| u.id)
        .collect();
    assert_eq!(stale, vec![early.id]);
}

pub async fn a_dossier_claims_only_verified_uploads_of_its_owner_not_cited_elsewhere(
    sub: SubmissionPorts,
    ports: Records,
) {
    let mine = verified(&ports, "citizen-a").await;
    let theirs = verified(&ports, "citizen-b").await;
    let waiting = upload("citizen-a", t(600));
    ports
        .uploads
        .create_upload(&waiting)
        .await
        .expect("created");
    let cite = |u: &Upload| Citation {
        upload: u.id,
        owner: "citizen-a".into(),
        shared: false,
    };
    // Someone else's file, or one not verified: nothing is stored.
    for (seq, bad) in [(1, &theirs), (2, &waiting)] {
        let (d, h, e) = sample("citizen-a", seq, t(100));
        assert_eq!(
            sub.dossiers
                .create_citing(&d, &h, &e, &[cite(&mine), cite(bad)])
                .await,
            Err(StoreError::Conflict),
            "citing {:?}",
            bad.status
        );
        assert_eq!(sub.dossiers.get(d.id).await.unwrap(), None);
        assert_eq!(
            ports
                .uploads
                .upload(mine.id)
                .await
                .unwrap()
                .unwrap()
                .cited_by,
            None,
            "the failed dossier claimed nothing"
        );
    }
    let (d, h, e) = sample("citizen-a", 3, t(100));
    sub.dossiers
        .create_citing(&d, &h, &e, &[cite(&mine)])
        .await
        .expect("cited");
    assert_eq!(
        ports
            .uploads
            .upload(mine.id)
            .await
            .unwrap()
            .unwrap()
            .cited_by,
        Some(d.id)
    );
    // A second dossier may not cite the same file.
    let (d2, h2, e2) = sample("citizen-a", 4, t(100));
    assert_eq!(
        sub.dossiers
            .create_citing(&d2, &h2, &e2, &[cite(&mine)])
            .await,
        Err(StoreError::Conflict)
    );
    assert_eq!(sub.dossiers.get(d2.id).await.unwrap(), None);
    // A taken dossier code is still `Duplicate`, citations or not.
    let (mut d3, h3, e3) = sample("citizen-a", 5, t(100));
    d3.code = d.code.clone();
    let fresh = verified(&ports, "citizen-a").await;
    assert_eq!(
        sub.dossiers
            .create_citing(&d3, &h3, &e3, &[cite(&fresh)])
            .await,
        Err(StoreError::Duplicate)
    );
}

pub async fn a_transition_may_cite_what_its_dossier_already_cites(
    sub: SubmissionPorts,
    ports: Records,
) {
    let first = verified(&ports, "citizen-a").await;
    let added = verified(&ports, "citizen-a").await;
    let cite = |u: &Upload| Citation {
        upload: u.id,
        owner: "citizen-a".into(),
        shared: false,
    };
    let (d, h, e) = sample("citizen-a", 1, t(100));
    sub.dossiers
        .create_citing(&d, &h, &e, &[cite(&first)])
        .await
        .expect("created");
    let (next, h2) = d
        .apply(
            &officer(&d.agency),
            &Command::Receive,
            t(200),
            WorkingCalendar::vietnam(),
        )
        .expect("received");
    let e2 = EventEnvelope::dossier(&next, &h2);
    sub.dossiers
        .transition_citing(&next, &h2, &e2, &[cite(&first), cite(&added)])
        .await
        .expect("transition citing the first file again and a new one");
    assert_eq!(
        ports
            .uploads
            .upload(added.id)
            .await
            .unwrap()
            .unwrap()
            .cited_by,
        Some(d.id)
    );
    // A failed claim undoes the whole transition.
    let other = verified(&ports, "citizen-b").await;
    let (n2, h3) = next
        .apply(
            &officer(&d.agency),
            &Command::Process,
            t(300),
            WorkingCalendar::vietnam(),
        )
        .expect("processing");
    let e3 = EventEnvelope::dossier(&n2, &h3);
    assert_eq!(
        sub.dossiers
            .transition_citing(&n2, &h3, &e3, &[cite(&other)])
            .await,
        Err(StoreError::Conflict)
    );
    assert_eq!(
        sub.dossiers.get(d.id).await.unwrap().unwrap().version,
        next.version
    );
}

pub async fn downloads_are_audited(_: SubmissionPorts, ports: Records) {
    let u = verified(&ports, "citizen-a").await;
    for (i, who) in ["citizen-a", "officer-1"].iter().enumerate() {
        let role = if i == 0 { Role::Citizen } else { Role::Officer };
        ports
            .uploads
            .record_download(&Download {
                upload: u.id,
                at: t(100 + i as i64),
                actor: (*who).into(),
                role,
            })
            .await
            .expect("audited");
    }
    let seen = ports.uploads.downloads(u.id).await.expect("listed");
    let who: Vec<(&str, Role)> = seen.iter().map(|d| (d.actor.as_str(), d.role)).collect();
    assert_eq!(
        who,
        [("citizen-a", Role::Citizen), ("officer-1", Role::Officer)]
    );
    assert_eq!(seen[0].at, t(100));
    assert!(
        ports
            .uploads
            .downloads(Uuid::new_v4())
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn documents_are_added_once_and_listed_newest_first_per_owner(
    _: SubmissionPorts,
    ports: Records,
) {
    let owner = format!("docs-{}", Uuid::new_v4());
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut u = upload(&owner, t(600));
        u.status = UploadStatus::Verified;
        let doc = StoredDocument::of_upload(&u, t(i * 10));
        ports.documents.add_document(&doc).await.expect("added");
        ids.push(doc.id);
    }
    // Adding again keeps the first.
    let mut again = ports.documents.document(ids[0]).await.unwrap().unwrap();
    let first = again.clone();
    again.title = "changed".into();
    ports
        .documents
        .add_document(&again)
        .await
        .expect("no error");
    assert_eq!(ports.documents.document(ids[0]).await.unwrap(), Some(first));
    let other = StoredDocument::of_upload(&upload("someone-else", t(1)), t(5));
    ports.documents.add_document(&other).await.unwrap();
    let p1 = ports
        .documents
        .documents(&owner, &PageRequest::first(3))
        .await
        .unwrap();
    let p2 = ports
        .documents
        .documents(
            &owner,
            &PageRequest {
                limit: 3,
                cursor: p1.next_cursor.clone(),
            },
        )
        .await
        .unwrap();
    let listed: Vec<Uuid> = p1.items.iter().chain(&p2.items).map(|d| d.id).collect();
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(listed, newest_first);
    assert!(p1.next_cursor.is_some());
}

pub async fn reused_files_stay_free_and_name_the_dossiers_reusing_them(
    sub: SubmissionPorts,
    ports: Records,
) {
    let file = verified(&ports, "citizen-a").await;
    let reuse = Citation {
        upload: file.id,
        owner: "citizen-a".into(),
        shared: true,
    };
    let mut ids = Vec::new();
    for seq in 1..=2 {
        let (d, h, e) = sample("citizen-a", seq, t(100));
        sub.dossiers
            .create_citing(&d, &h, &e, std::slice::from_ref(&reuse))
            .await
            .expect("reused");
        ids.push(d.id);
    }
    ids.sort();
    let mut seen = ports.uploads.reused_by(file.id).await.unwrap();
    seen.sort();
    assert_eq!(seen, ids);
    assert_eq!(
        ports
            .uploads
            .upload(file.id)
            .await
            .unwrap()
            .unwrap()
            .cited_by,
        None,
        "reuse takes no file for itself"
    );
    assert!(
        ports
            .uploads
            .reused_by(Uuid::new_v4())
            .await
            .unwrap()
            .is_empty()
    );
}
