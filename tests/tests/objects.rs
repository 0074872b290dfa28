//! The object-store port's contract, on both stores: S3 (LocalStack, with signature
//! validation on) and the local folder served by the runner's object routes. Files go in
//! with a plain HTTP PUT to the presigned URL, exactly as a browser sends them.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use motcua_ports::uploads::{ObjectStore, PutConditions};
use reqwest::StatusCode;

const BODY: &[u8] = b"%PDF-1.4\n% the object-store contract\n%%EOF\n";

fn conditions(body: &[u8]) -> PutConditions {
    PutConditions {
        content_type: "application/pdf".into(),
        size: body.len() as u64,
        sha256: motcua_tests::sha256_b64(body),
        expires_in: Duration::from_secs(300),
    }
}

async fn put(store: &dyn ObjectStore, key: &str, signed: &[u8], sent: &[u8]) -> StatusCode {
    let p = store.presign_put(key, &conditions(signed)).await.unwrap();
    assert_eq!(p.method, "PUT");
    let mut req = reqwest::Client::new().put(&p.url);
    for (k, v) in &p.headers {
        if !k.eq_ignore_ascii_case("content-length") {
            req = req.header(k, v);
        }
    }
    req.body(sent.to_vec()).send().await.unwrap().status()
}

async fn contract(store: Arc<dyn ObjectStore>) {
    let id = uuid::Uuid::new_v4();
    let (quarantine, clean) = (format!("quarantine/{id}"), format!("clean/{id}"));
    // A body other than the signed one keeps nothing.
    let mut other = BODY.to_vec();
    other[3] = b'X';
    assert_eq!(
        put(store.as_ref(), &quarantine, BODY, &other).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(store.read(&quarantine, 1000).await.unwrap(), None);
    // The signed body is stored, once.
    assert_eq!(
        put(store.as_ref(), &quarantine, BODY, BODY).await,
        StatusCode::OK
    );
    assert_eq!(
        put(store.as_ref(), &quarantine, BODY, BODY).await,
        StatusCode::PRECONDITION_FAILED
    );
    let whole = store.read(&quarantine, 1000).await.unwrap().unwrap();
    assert_eq!(
        (whole.bytes.as_slice(), whole.size),
        (BODY, BODY.len() as u64)
    );
    let head = store.read(&quarantine, 4).await.unwrap().unwrap();
    assert_eq!(
        (head.bytes.as_slice(), head.size),
        (&BODY[..4], BODY.len() as u64)
    );
    // Listed as older than a moment from now, not than a moment ago.
    let now = Timestamp::now();
    let later = store
        .older_than("quarantine/", now + Duration::from_secs(3600), 10_000)
        .await
        .unwrap();
    assert!(later.contains(&quarantine), "{later:?}");
    let earlier = store
        .older_than("quarantine/", now - Duration::from_secs(3600), 10_000)
        .await
        .unwrap();
    assert!(!earlier.contains(&quarantine));
    // Moved: once, and a repeat is done already.
    store
        .rename(&quarantine, &clean, "application/pdf")
        .await
        .unwrap();
    store
        .rename(&quarantine, &clean, "application/pdf")
        .await
        .unwrap();
    assert_eq!(store.read(&quarantine, 10).await.unwrap(), None);
    assert_eq!(store.read(&clean, 1000).await.unwrap().unwrap().bytes, BODY);
    // A download names the file.
    let get = store
        .presign_get(
            &clean,
            "Giấy khai sinh.pdf",
            "application/pdf",
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let file = reqwest::get(&get.url).await.unwrap();
    assert_eq!(file.status(), StatusCode::OK);
    assert_eq!(file.headers()["content-type"], "application/pdf");
    let disposition = file.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    assert!(
        disposition.contains("UTF-8''Gi%E1%BA%A5y%20khai%20sinh.pdf"),
        "{disposition}"
    );
    assert_eq!(file.bytes().await.unwrap().as_ref(), BODY);
    // Deleted, and deleting again is fine.
    store.delete(&clean).await.unwrap();
    store.delete(&clean).await.unwrap();
    assert_eq!(store.read(&clean, 10).await.unwrap(), None);
    // Keys are ours only.
    for bad in ["../etc/passwd", "quarantine/../clean/x", "Quarantine/x", ""] {
        assert!(store.read(bad, 10).await.is_err(), "{bad:?}");
    }
}

#[tokio::test]
async fn s3_keeps_the_object_store_contract() {
    motcua_aws::localstack::ensure_running().expect("LocalStack");
    let conf = motcua_aws::localstack::config().await;
    let bucket = format!("motcua-objects-{}", uuid::Uuid::now_v7().simple());
    let s3 = motcua_aws::s3::S3Objects::new(&conf, &bucket).unwrap();
    s3.ensure_bucket().await.unwrap();
    contract(Arc::new(s3)).await;
}

#[tokio::test]
async fn the_local_folder_keeps_the_object_store_contract() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let dir = motcua_tests::fresh_data_dir("objects");
    let objects = Arc::new(
        motcua_embedded::LocalObjects::new(&dir, &format!("http://{addr}"), b"contract").unwrap(),
    );
    let routes = motcua_local::uploads::object_routes(
        objects.clone(),
        Arc::new(motcua_http::SystemClock::default()),
        None,
        1 << 20,
    );
    tokio::spawn(async move { axum::serve(listener, routes).await });
    contract(objects).await;
}
