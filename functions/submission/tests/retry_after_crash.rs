//! A keyed submission whose answer was never recorded (the function died between the
//! dossier's write and the idempotency record's completion) is retried once the record's
//! lease has run out: the retry must find the first dossier, not file a second one with a
//! new code and a second fee. On both backends (DynamoDB on LocalStack).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::Request;
use jiff::Timestamp;
use motcua_domain::{Role, WorkingCalendar};
use motcua_ports::{
    IdempotencyBegin, IdempotencyStore, PageRequest, StoreError, StoreResult, StoredResponse,
    SubmissionPorts,
};
use motcua_submission::{AppState, Clock, SubmissionConfig, router};
use tower::ServiceExt;

/// A clock the test moves forward.
#[derive(Default)]
struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_second(Timestamp::now().as_second() + self.0.load(Ordering::SeqCst))
            .unwrap()
    }
}

/// The real store, except that the first `complete` is lost, as when the process dies
/// after the work and before the answer is recorded.
struct DiesBeforeRecording {
    inner: Arc<dyn IdempotencyStore>,
    died: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl IdempotencyStore for DiesBeforeRecording {
    async fn begin(
        &self,
        key: &str,
        fingerprint: &str,
        now: Timestamp,
        ttl_secs: u64,
    ) -> StoreResult<IdempotencyBegin> {
        self.inner.begin(key, fingerprint, now, ttl_secs).await
    }
    async fn complete(&self, key: &str, response: &StoredResponse) -> StoreResult<()> {
        if !self.died.swap(true, Ordering::SeqCst) {
            return Err(StoreError::Unavailable("the process died".into()));
        }
        self.inner.complete(key, response).await
    }
    async fn release(&self, key: &str) -> StoreResult<()> {
        self.inner.release(key).await
    }
}

async fn post(
    app: &axum::Router,
    token: &str,
    key: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let req = Request::post("/v1/dossiers")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn request() -> serde_json::Value {
    serde_json::from_str(include_str!(
        "../../../events/api/submit-criminal-record.json"
    ))
    .unwrap()
}

/// A verified upload of `owner`'s for the sample's procedure.
async fn verified(ports: &SubmissionPorts, owner: &str) -> uuid::Uuid {
    let mut file = motcua_ports::uploads_contract::upload(owner, Timestamp::now());
    file.procedure_code = Some("2.000505".into());
    ports.uploads.create_upload(&file).await.unwrap();
    file.status = motcua_domain::upload::UploadStatus::Verified;
    ports.uploads.settle_upload(&file).await.unwrap();
    file.id
}

/// The sample request citing `file` as its declaration form.
fn citing(file: &uuid::Uuid) -> serde_json::Value {
    let mut r = request();
    r["documents"][0]["reference"] = file.to_string().into();
    r
}

const SECRET: &str = "bW90Y3VhLXRlc3Qtc2VjcmV0LW9mLTMyLWJ5dGVzISE=";

fn config() -> SubmissionConfig {
    SubmissionConfig::from_lookup(|k| (k == "MOTCUA_JWT_SECRETS").then(|| SECRET.into())).unwrap()
}

fn token(sub: &str) -> String {
    config()
        .authenticator()
        .mint(sub, Role::Citizen, None, Timestamp::now().as_second(), 600)
}

async fn retried_after_a_crash(ports: SubmissionPorts) {
    for p in motcua_domain::catalogue::demo_catalogue() {
        ports.catalogue.put_procedure(&p).await.unwrap();
    }
    let config = config();
    let auth = config.authenticator();
    let alice = token("citizen-crash");
    let clock = Arc::new(TestClock::default());
    let mut crashing = ports.clone();
    crashing.idempotency = Arc::new(DiesBeforeRecording {
        inner: ports.idempotency.clone(),
        died: Default::default(),
    });
    let app = router(AppState {
        ports: crashing,
        auth: Arc::new(auth),
        clock: clock.clone(),
        calendar: WorkingCalendar::vietnam(),
        config: Arc::new(config),
    });

    // The declaration form, uploaded and verified.
    let file = verified(&ports, "citizen-crash").await;
    let request = || citing(&file);
    let (status, first) = post(&app, &alice, "crash-1", &request()).await;
    assert_eq!(status, 201, "{first}");
    // Within the lease the record says "in progress".
    let (status, busy) = post(&app, &alice, "crash-1", &request()).await;
    assert_eq!(status, 409, "{busy}");
    // The lease runs out; the client retries.
    clock.0.store(120, Ordering::SeqCst);
    let (status, retry) = post(&app, &alice, "crash-1", &request()).await;
    assert_eq!(status, 201, "{retry}");
    assert_eq!(
        retry["id"], first["id"],
        "the retry found the first dossier"
    );
    assert_eq!(retry["code"], first["code"]);
    assert_eq!(retry["lookup_key"], first["lookup_key"]);
    let mine = ports
        .dossiers
        .list_by_applicant("citizen-crash", &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(mine.items.len(), 1, "one dossier, not two");
    let events = ports.outbox.pending(100).await.unwrap();
    assert_eq!(events.len(), 1, "one submission event: {events:?}");

    // The same key with another body (after its record expired) is another submission.
    clock.0.store(3 * 86_400, Ordering::SeqCst);
    let mut other = citing(&verified(&ports, "citizen-crash").await);
    other["form"]["copies"] = 3.into();
    let (status, second) = post(&app, &alice, "crash-1", &other).await;
    assert_eq!(status, 201, "{second}");
    assert_ne!(second["id"], first["id"]);
    // Another person's identical request with the same key is theirs alone.
    let token_b = token("citizen-other");
    let theirs_file = verified(&ports, "citizen-other").await;
    let (status, theirs) = post(&app, &token_b, "crash-1", &citing(&theirs_file)).await;
    assert_eq!(status, 201, "{theirs}");
    assert_ne!(theirs["id"], first["id"]);
}

#[tokio::test]
async fn sqlite_retry_after_a_crash_finds_the_first_dossier() {
    let dir = std::env::temp_dir().join(format!("motcua-crash-{}", uuid::Uuid::now_v7()));
    let store = motcua_embedded::EmbeddedStore::open(&dir).unwrap();
    retried_after_a_crash(store.submission_ports()).await;
}

#[tokio::test]
async fn dynamodb_retry_after_a_crash_finds_the_first_dossier() {
    use motcua_aws::localstack;
    localstack::ensure_running().expect("LocalStack");
    let conf = localstack::config().await;
    let store = motcua_aws::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&conf),
        format!("motcua-crash-{}", uuid::Uuid::now_v7().simple()),
    );
    store.ensure_table().await.unwrap();
    retried_after_a_crash(store.submission_ports()).await;
    store.delete_table().await.unwrap();
}
