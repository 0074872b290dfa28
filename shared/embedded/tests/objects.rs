//! The local folder playing S3: presigned PUTs store exactly what they signed, once;
//! presigned GETs serve their key under its name; keys are ours, nothing else.

use std::time::Duration;

use jiff::Timestamp;
use motcua_embedded::{LocalObjects, PutHeaders, PutRefusal};
use motcua_ports::uploads::{ObjectStore, PutConditions};
use sha2::{Digest, Sha256};
fn store() -> LocalObjects {
    let dir = std::env::temp_dir().join(format!("motcua-objects-{}", uuid::Uuid::now_v7()));
    LocalObjects::new(&dir, "http://127.0.0.1:3000", b"secret").unwrap()
}

fn query(url: &str) -> &str {
    url.split_once('?').map_or("", |(_, q)| q)
}

fn sha(body: &[u8]) -> String {
    motcua_domain::upload::Sha256Digest(Sha256::digest(body).into()).to_base64()
}

#[tokio::test]
async fn a_presigned_put_stores_exactly_what_it_signed_once() {
    let s = store();
    let body = b"%PDF-1.7 hello";
    let key = "quarantine/0b6e1c9e-8f5c-4b7e-9a51-6d1f2e3a4b5c";
    let c = PutConditions {
        content_type: "application/pdf".into(),
        size: body.len() as u64,
        sha256: sha(body),
        expires_in: Duration::from_secs(300),
    };
    let p = s.presign_put(key, &c).await.unwrap();
    assert!(
        p.url
            .starts_with("http://127.0.0.1:3000/_local/objects/quarantine/")
    );
    let q = query(&p.url);
    let h = PutHeaders {
        content_type: Some("application/pdf"),
        content_length: Some(body.len() as u64),
        checksum_sha256: Some(&c.sha256),
        if_none_match: Some("*"),
    };
    let now = Timestamp::now();
    let other_sha = sha(b"other");
    let refusals = [
        // Someone else's slot: the signature names another key.
        (
            s.accept_put(
                "quarantine/1b6e1c9e-8f5c-4b7e-9a51-6d1f2e3a4b5c",
                q,
                &h,
                body,
                now,
            ),
            PutRefusal::SignatureDoesNotMatch,
        ),
        (
            s.accept_put(
                key,
                q,
                &PutHeaders {
                    content_type: Some("image/png"),
                    ..h.clone()
                },
                body,
                now,
            ),
            PutRefusal::SignatureDoesNotMatch,
        ),
        (
            s.accept_put(
                key,
                q,
                &PutHeaders {
                    content_length: Some(3),
                    ..h.clone()
                },
                b"abc",
                now,
            ),
            PutRefusal::SignatureDoesNotMatch,
        ),
        (
            s.accept_put(
                key,
                q,
                &PutHeaders {
                    checksum_sha256: Some(&other_sha),
                    ..h.clone()
                },
                body,
                now,
            ),
            PutRefusal::SignatureDoesNotMatch,
        ),
        (
            s.accept_put(
                key,
                q,
                &PutHeaders {
                    if_none_match: None,
                    ..h.clone()
                },
                body,
                now,
            ),
            PutRefusal::SignatureDoesNotMatch,
        ),
        (
            s.accept_put(
                key,
                &q.replace("X-Motcua-Expires=", "X-Motcua-Expires=9"),
                &h,
                body,
                now,
            ),
            PutRefusal::SignatureDoesNotMatch,
        ),
        // The signed length and checksum, another body.
        (
            s.accept_put(key, q, &h, b"%PDF-1.7 hellO", now),
            PutRefusal::BadDigest,
        ),
        (
            s.accept_put(key, q, &h, b"%PDF-1.7 hell", now),
            PutRefusal::IncompleteBody,
        ),
        (
            s.accept_put(key, q, &h, body, now + Duration::from_secs(301)),
            PutRefusal::Expired,
        ),
    ];
    for (i, (got, want)) in refusals.into_iter().enumerate() {
        assert_eq!(got, Err(want), "case {i}");
    }
    assert_eq!(s.read(key, 100).await.unwrap(), None, "nothing kept");
    s.accept_put(key, q, &h, body, now).expect("stored");
    assert_eq!(s.read(key, 100).await.unwrap().unwrap().bytes, body);
    assert_eq!(
        s.accept_put(key, q, &h, body, now),
        Err(PutRefusal::PreconditionFailed)
    );
    let part = s.read(key, 4).await.unwrap().unwrap();
    assert_eq!(
        (part.bytes.as_slice(), part.size),
        (&b"%PDF"[..], body.len() as u64)
    );
}

#[tokio::test]
async fn a_presigned_get_serves_its_key_with_its_name() {
    let s = store();
    let key = "clean/0b6e1c9e-8f5c-4b7e-9a51-6d1f2e3a4b5c";
    let g = s
        .presign_get(
            key,
            "Giấy khai sinh.pdf",
            "application/pdf",
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let q = query(&g.url);
    assert_eq!(
        s.open_get(key, q, Timestamp::now()).err(),
        Some(PutRefusal::NoSuchKey)
    );
    std::fs::create_dir_all(s.root().join("clean")).unwrap();
    std::fs::write(s.root().join(key), b"x").unwrap();
    let grant = s.open_get(key, q, Timestamp::now()).unwrap();
    assert_eq!(grant.content_type, "application/pdf");
    assert!(
        grant
            .content_disposition
            .contains("filename*=UTF-8''Gi%E1%BA%A5y%20khai%20sinh.pdf")
    );
    assert_eq!(
        s.open_get(
            "clean/1b6e1c9e-8f5c-4b7e-9a51-6d1f2e3a4b5c",
            q,
            Timestamp::now()
        )
        .err(),
        Some(PutRefusal::SignatureDoesNotMatch)
    );
    assert_eq!(
        s.open_get(key, q, Timestamp::now() + Duration::from_secs(61))
            .err(),
        Some(PutRefusal::Expired)
    );
    for bad in ["../x", "clean/../../etc", "Clean/x", "clean//x", ""] {
        assert!(s.read(bad, 1).await.is_err(), "{bad:?}");
    }
}
