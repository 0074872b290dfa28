//! The function binaries as Lambda runs them: each is started as a child process with
//! `AWS_LAMBDA_RUNTIME_API` pointing at a Runtime API on loopback and driven with events
//! (our samples and the `aws_lambda_events` crate's own fixtures), on LocalStack where the
//! function needs AWS. Answers, batch item failures and Lambda-format errors are checked.

use std::time::Duration;

use motcua_tests::lambda::{
    LambdaHarness, Outcome, answer, aws_table, body, event, function_binary,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn the_submission_binary_answers_http_api_events() {
    let (table, aws_env) = aws_table("lambda-submission").await;
    let mut env = vec![("MOTCUA_BACKEND", "aws"), ("MOTCUA_TABLE", table.as_str())];
    env.extend(aws_env.iter().map(|(k, v)| (*k, v.as_str())));
    let f = LambdaHarness::start(&function_binary("submission").unwrap(), &env)
        .await
        .unwrap();
    // An empty catalogue on a fresh store: the list is there, and empty.
    let a = answer(
        f.invoke(event("apigw/get-procedures.json"), WAIT)
            .await
            .unwrap(),
    );
    assert_eq!(a["statusCode"], 200, "{a}");
    assert!(body(&a).is_array(), "{a}");
    // Someone else's HTTP API event (a JWT-authorizer context, a path we do not serve):
    // converted by lambda_http as on AWS, answered with our problem document.
    let a = answer(
        f.invoke(
            event("third-party/example-apigw-v2-request-jwt-authorizer.json"),
            WAIT,
        )
        .await
        .unwrap(),
    );
    assert_eq!(a["statusCode"], 404, "{a}");
    assert_eq!(
        a["headers"]["content-type"], "application/problem+json",
        "{a}"
    );
    assert_eq!(body(&a)["type"], "urn:motcua:problem:not-found");
    // Not an HTTP event at all: reported to /error in Lambda's format, and the next
    // invocation is served by the same process.
    match f.invoke(json!({"hello": "world"}), WAIT).await.unwrap() {
        Outcome::Error { body, .. } => {
            assert!(body["errorType"].is_string(), "{body}");
            assert!(body["errorMessage"].is_string(), "{body}");
        }
        other => panic!("expected an error, got {other:?}"),
    }
    let a = answer(
        f.invoke(event("apigw/get-procedures.json"), WAIT)
            .await
            .unwrap(),
    );
    assert_eq!(a["statusCode"], 200);
    assert_serves_the_one_document(&f).await;
}

#[tokio::test]
async fn the_relay_binary_reports_batch_item_failures() {
    motcua_aws::localstack::ensure_running().expect("LocalStack");
    let endpoint = motcua_aws::localstack::endpoint();
    let suffix = uuid::Uuid::now_v7().simple().to_string();
    let table = format!("motcua-lambda-{suffix}");
    let conf = motcua_aws::localstack::config().await;
    let store = motcua_aws::DynamoStore::new(
        motcua_aws::aws_sdk_dynamodb::Client::new(&conf),
        table.as_str(),
    );
    store.ensure_table().await.unwrap();
    let bus = format!("motcua-lambda-{suffix}");
    motcua_aws::events::EventBridgePublisher::new(
        motcua_aws::aws_sdk_eventbridge::Client::new(&conf),
        bus.as_str(),
    )
    .ensure_bus()
    .await
    .unwrap();
    let f = LambdaHarness::start(
        &function_binary("relay").unwrap(),
        &[
            ("MOTCUA_TABLE", &table),
            ("MOTCUA_EVENT_BUS", &bus),
            ("AWS_ENDPOINT_URL", &endpoint),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ],
    )
    .await
    .unwrap();
    // Our outbox insert: published, nothing to retry.
    let a = answer(
        f.invoke(event("dynamodb/outbox-insert.json"), WAIT)
            .await
            .unwrap(),
    );
    assert_eq!(a["batchItemFailures"], json!([]), "{a}");
    // Someone else's stream batch (items that are not ours): skipped, nothing failed.
    let a = answer(
        f.invoke(event("third-party/example-dynamodb-event.json"), WAIT)
            .await
            .unwrap(),
    );
    assert_eq!(a["batchItemFailures"], json!([]), "{a}");
    // An outbox record without a readable event: reported as a batch item failure, so it
    // is retried and then reaches the on-failure destination instead of vanishing.
    let mut garbled = event("dynamodb/outbox-insert.json");
    garbled["Records"][0]["dynamodb"]["NewImage"]["body"]["S"] = json!("not an event");
    let seq = garbled["Records"][0]["dynamodb"]["SequenceNumber"].clone();
    let a = answer(f.invoke(garbled, WAIT).await.unwrap());
    assert_eq!(
        a["batchItemFailures"],
        json!([{"itemIdentifier": seq}]),
        "{a}"
    );
    store.delete_table().await.unwrap();
}

#[tokio::test]
async fn a_function_that_cannot_start_says_so_to_lambda() {
    // No table named: the relay cannot start; Lambda hears why at /runtime/init/error or
    // sees the process end, and no invocation is answered.
    let mut f = LambdaHarness::start(&function_binary("relay").unwrap(), &[])
        .await
        .unwrap();
    let r = f
        .invoke(json!({"Records": []}), Duration::from_secs(5))
        .await;
    assert!(r.is_err(), "{r:?}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        f.init_error().is_some() || !f.alive(),
        "the failed start is visible"
    );
}

#[tokio::test]
async fn a_panic_in_a_handler_is_an_error_answer_and_the_next_call_is_served() {
    let mut f = LambdaHarness::start(&function_binary("panic-probe").unwrap(), &[])
        .await
        .unwrap();
    match f.invoke(json!({"panic": true}), WAIT).await.unwrap() {
        Outcome::Error { body, .. } => {
            assert!(
                body["errorMessage"]
                    .as_str()
                    .is_some_and(|m| m.contains("panicked on purpose")),
                "{body}"
            );
        }
        other => panic!("expected an error, got {other:?}"),
    }
    assert!(f.alive(), "the process survives the panic");
    let a = answer(f.invoke(json!({"n": 2}), WAIT).await.unwrap());
    assert_eq!(a, json!({"n": 2}));
}

/// The release profile, which `sam build` (cargo-lambda) builds the packages with, keeps
/// unwinding: cargo-lambda would otherwise pass panic=abort and a panic would kill the
/// process.
#[test]
fn the_release_profile_says_unwind() {
    let manifest = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml"),
    )
    .unwrap();
    let release = manifest
        .split("[profile.release]")
        .nth(1)
        .and_then(|s| s.split("\n[").next())
        .unwrap();
    assert!(
        release.lines().any(|l| l.trim() == "panic = \"unwind\""),
        "{release}"
    );
}

/// An HTTP API event for `GET <path>`, made from our sample.
fn get(path: &str) -> Value {
    let mut e = event("apigw/get-procedures.json");
    e["rawPath"] = json!(path);
    e["requestContext"]["http"]["path"] = json!(path);
    e["routeKey"] = json!(format!("GET {path}"));
    e
}

#[tokio::test]
async fn the_identity_binary_starts_with_its_keys_and_serves_its_routes() {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let (table, aws_env) = aws_table("lambda-identity").await;
    let key = motcua_http::SigningKey::generate("k-lambda");
    let keys = motcua_http::signing_keys_to_json(std::slice::from_ref(&key));
    let (id_key, account_key) = (b64(&[3u8; 32]), b64(&[4u8; 32]));
    let mut env = vec![
        ("MOTCUA_BACKEND", "aws"),
        ("MOTCUA_TABLE", table.as_str()),
        ("MOTCUA_ID_HASH_KEY", id_key.as_str()),
        ("MOTCUA_ACCOUNT_KEY", account_key.as_str()),
        ("MOTCUA_SIGNING_KEYS", keys.as_str()),
        ("MOTCUA_REGISTRY_URL", "http://127.0.0.1:9"),
        ("MOTCUA_JWT_ISSUER", "https://id.example.test"),
    ];
    env.extend(aws_env.iter().map(|(k, v)| (*k, v.as_str())));
    let f = LambdaHarness::start(&function_binary("identity").unwrap(), &env)
        .await
        .unwrap();
    let a = answer(f.invoke(get("/.well-known/jwks.json"), WAIT).await.unwrap());
    assert_eq!(a["statusCode"], 200, "{a}");
    assert_eq!(body(&a)["keys"][0]["kid"], "k-lambda", "{a}");
    let a = answer(
        f.invoke(get("/.well-known/openid-configuration"), WAIT)
            .await
            .unwrap(),
    );
    assert_eq!(body(&a)["issuer"], "https://id.example.test", "{a}");
    // A protected route without a token: our 401 problem, through the same binary.
    let a = answer(f.invoke(get("/v1/me"), WAIT).await.unwrap());
    assert_eq!(a["statusCode"], 401, "{a}");
    assert_serves_the_one_document(&f).await;
}

/// Identity does not start without its settings, nor without a secret it is told to read:
/// no invocation is answered, and the process ends (Lambda reports the failed invocation
/// and starts a new environment for the next).
#[tokio::test]
async fn identity_does_not_start_without_its_settings_or_secrets() {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let (table, aws_env) = aws_table("lambda-identity-unstarted").await;
    let key = motcua_http::SigningKey::generate("k-late");
    let keys = motcua_http::signing_keys_to_json(std::slice::from_ref(&key));
    let account_key = b64(&[4u8; 32]);
    let missing = format!("motcua-missing-{}", uuid::Uuid::now_v7().simple());
    let mut env = vec![
        ("MOTCUA_BACKEND", "aws"),
        ("MOTCUA_TABLE", table.as_str()),
        ("MOTCUA_ID_HASH_KEY_SECRET", missing.as_str()),
        ("MOTCUA_ACCOUNT_KEY", account_key.as_str()),
        ("MOTCUA_REGISTRY_URL", "http://127.0.0.1:9"),
    ];
    env.extend(aws_env.iter().map(|(k, v)| (*k, v.as_str())));
    let without_keys = env.clone();
    env.push(("MOTCUA_SIGNING_KEYS", keys.as_str()));
    for env in [without_keys, env] {
        let mut f = LambdaHarness::start(&function_binary("identity").unwrap(), &env)
            .await
            .unwrap();
        let r = f
            .invoke(get("/.well-known/jwks.json"), Duration::from_secs(5))
            .await;
        assert!(r.is_err(), "{r:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            f.init_error().is_some() || !f.alive(),
            "the failed start is visible"
        );
    }
    let conf = motcua_aws::localstack::config().await;
    motcua_aws::DynamoStore::new(motcua_aws::aws_sdk_dynamodb::Client::new(&conf), table)
        .delete_table()
        .await
        .unwrap();
}

/// A TCP proxy to `upstream` (`host:port`) that holds every connection for `delay` before
/// passing it on: a slow Secrets Manager.
async fn slow_proxy(upstream: String, delay: Duration) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if let Ok(mut out) = tokio::net::TcpStream::connect(&upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                }
            });
        }
    });
    format!("http://{addr}")
}

/// Lambda may freeze an environment that asked for work while identity's secret reads are
/// in flight (a pre-warmed one, say); thawed past the SDK's time limits, the reads fail
/// though their answers are there. The first event is still answered: the start is tried
/// once more instead of ending the process (review finding).
#[tokio::test]
async fn identity_answers_after_a_freeze_during_its_start() {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let (table, _) = aws_table("lambda-identity-frozen").await;
    let conf = motcua_aws::localstack::config().await;
    let secrets = motcua_aws::aws_sdk_secretsmanager::Client::new(&conf);
    let name = format!("motcua-frozen-hash-key-{}", uuid::Uuid::now_v7().simple());
    secrets
        .create_secret()
        .name(&name)
        .secret_string(b64(&[3u8; 32]))
        .send()
        .await
        .unwrap();
    let proxy = slow_proxy(motcua_aws::localstack::address(), Duration::from_secs(1)).await;
    let key = motcua_http::SigningKey::generate("k-frozen");
    let keys = motcua_http::signing_keys_to_json(std::slice::from_ref(&key));
    let account_key = b64(&[4u8; 32]);
    let env = [
        ("MOTCUA_BACKEND", "aws"),
        ("MOTCUA_TABLE", table.as_str()),
        ("MOTCUA_ID_HASH_KEY_SECRET", name.as_str()),
        ("MOTCUA_ACCOUNT_KEY", account_key.as_str()),
        ("MOTCUA_SIGNING_KEYS", keys.as_str()),
        ("MOTCUA_REGISTRY_URL", "http://127.0.0.1:9"),
        ("AWS_ENDPOINT_URL", proxy.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    let mut f = LambdaHarness::start(&function_binary("identity").unwrap(), &env)
        .await
        .unwrap();
    let asked = std::time::Instant::now();
    while f.first_poll_at().is_none() && asked.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(f.first_poll_at().is_some(), "identity asked for work");
    // Frozen while its read waits on the slow proxy, thawed past the SDK's 8 s limit.
    let pid = f.pid().unwrap().to_string();
    let signal = |s: &str| {
        assert!(
            std::process::Command::new("kill")
                .args([s, pid.as_str()])
                .status()
                .unwrap()
                .success()
        )
    };
    signal("-STOP");
    tokio::time::sleep(Duration::from_secs(9)).await;
    signal("-CONT");
    let a = answer(f.invoke(get("/.well-known/jwks.json"), WAIT).await.unwrap());
    assert_eq!(a["statusCode"], 200, "{a}");
    assert_eq!(body(&a)["keys"][0]["kid"], "k-frozen", "{a}");
    assert!(f.alive());
    let _ = secrets
        .delete_secret()
        .secret_id(&name)
        .force_delete_without_recovery(true)
        .send()
        .await;
    motcua_aws::DynamoStore::new(motcua_aws::aws_sdk_dynamodb::Client::new(&conf), table)
        .delete_table()
        .await
        .unwrap();
}

/// `GET /v1/openapi.json` answers the one document of every function.
async fn assert_serves_the_one_document(f: &LambdaHarness) {
    let a = answer(f.invoke(get("/v1/openapi.json"), WAIT).await.unwrap());
    assert_eq!(a["statusCode"], 200, "{a}");
    let want: Value = serde_json::from_str(motcua_http::openapi::DOCUMENT).unwrap();
    assert_eq!(body(&a), want);
    assert!(want["paths"]["/v1/dossiers"].is_object());
    assert!(want["paths"]["/v1/identity/citizens/verify"].is_object());
}

#[tokio::test]
async fn the_rotation_binary_runs_a_secrets_manager_rotation_step() {
    motcua_aws::localstack::ensure_running().expect("LocalStack");
    let endpoint = motcua_aws::localstack::endpoint();
    let conf = motcua_aws::localstack::config().await;
    let secrets = motcua_aws::aws_sdk_secretsmanager::Client::new(&conf);
    let arn = secrets
        .create_secret()
        .name(format!(
            "motcua-lambda-keys-{}",
            uuid::Uuid::now_v7().simple()
        ))
        .secret_string("[]")
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let f = LambdaHarness::start(
        &function_binary("rotate-signing-keys").unwrap(),
        &[
            ("AWS_ENDPOINT_URL", &endpoint),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ],
    )
    .await
    .unwrap();
    let token = uuid::Uuid::now_v7().to_string();
    // The event Secrets Manager sends: createSecret puts a pending version with a new key.
    let a = f
        .invoke(
            json!({"SecretId": arn, "ClientRequestToken": token, "Step": "createSecret"}),
            WAIT,
        )
        .await
        .unwrap();
    assert!(matches!(a, Outcome::Response(_)), "{a:?}");
    let pending = secrets
        .get_secret_value()
        .secret_id(&arn)
        .version_stage("AWSPENDING")
        .send()
        .await
        .unwrap();
    assert_eq!(pending.version_id(), Some(token.as_str()));
    let keys: Value = serde_json::from_str(pending.secret_string().unwrap()).unwrap();
    assert_eq!(
        keys["keys"].as_array().map(Vec::len),
        Some(1),
        "one new key: {keys}"
    );
    assert!(keys["keys"][0]["kid"].is_string());
    // A step it does not know is an error in Lambda's format.
    match f
        .invoke(
            json!({"SecretId": arn, "ClientRequestToken": token, "Step": "dance"}),
            WAIT,
        )
        .await
        .unwrap()
    {
        Outcome::Error { body, .. } => assert!(body["errorMessage"].is_string(), "{body}"),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn the_outbox_sweeper_binary_publishes_the_backlog_on_its_schedule() {
    motcua_aws::localstack::ensure_running().expect("LocalStack");
    let endpoint = motcua_aws::localstack::endpoint();
    let suffix = uuid::Uuid::now_v7().simple().to_string();
    let table = format!("motcua-sweep-{suffix}");
    let conf = motcua_aws::localstack::config().await;
    let store = motcua_aws::DynamoStore::new(
        motcua_aws::aws_sdk_dynamodb::Client::new(&conf),
        table.as_str(),
    );
    store.ensure_table().await.unwrap();
    let bus = format!("motcua-sweep-{suffix}");
    motcua_aws::events::EventBridgePublisher::new(
        motcua_aws::aws_sdk_eventbridge::Client::new(&conf),
        bus.as_str(),
    )
    .ensure_bus()
    .await
    .unwrap();
    // Two events the stream relay gave up on ten minutes ago, one just written.
    let ago = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() - 600).unwrap();
    for (seq, at) in [(1, ago), (2, ago), (3, jiff::Timestamp::now())] {
        let (d, h, e) = motcua_ports::contract::sample("alice", seq, at);
        motcua_ports::DossierStore::create(&store, &d, &h, &e)
            .await
            .unwrap();
    }
    let f = LambdaHarness::start(
        &function_binary("outbox-sweeper").unwrap(),
        &[
            ("MOTCUA_TABLE", &table),
            ("MOTCUA_EVENT_BUS", &bus),
            ("AWS_ENDPOINT_URL", &endpoint),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ],
    )
    .await
    .unwrap();
    // The scheduled event EventBridge sends.
    let scheduled = json!({
        "version": "0", "id": "89d1a02d-5ec7-412e-82f5-13505f849b41",
        "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-11-30T12:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/motcua-sweeper"],
        "detail": {}
    });
    let a = answer(f.invoke(scheduled.clone(), WAIT).await.unwrap());
    assert_eq!(a, json!({"published": 2, "failed": 0}));
    let a = answer(f.invoke(scheduled, WAIT).await.unwrap());
    assert_eq!(a, json!({"published": 0, "failed": 0}), "nothing twice");
    store.delete_table().await.unwrap();
}

/// What `sam build` packages links only what it uses on Lambda: no SQLite (the embedded
/// backend is the runner's) and no DynamoDB Streams client (the runner's poller).
#[test]
fn the_lambda_binaries_link_no_runner_only_crates() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for package in [
        "motcua-submission",
        "motcua-identity",
        "motcua-relay",
        "motcua-uploads",
        "motcua-notifications",
        "motcua-payments",
    ] {
        let out = std::process::Command::new(env!("CARGO"))
            .current_dir(&root)
            .args(["tree", "--offline", "-p", package, "-e", "normal"])
            .args(["--prefix", "none", "--format", "{p}"])
            .output()
            .expect("cargo tree");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let tree = String::from_utf8_lossy(&out.stdout);
        for banned in ["rusqlite ", "libsqlite3-sys ", "aws-sdk-dynamodbstreams "] {
            assert!(!tree.contains(banned), "{package} links {banned}");
        }
        assert!(
            tree.contains("lambda_runtime "),
            "the tree of {package} was read"
        );
    }
}

/// The uploads binaries on LocalStack: the HTTP function opens a slot whose presigned PUT
/// S3 accepts; the verifier, fed the SQS message S3 sends, verifies the file (and reports
/// the message as a batch item failure while the scanner does not answer); the sweeper
/// runs on its schedule.
#[tokio::test]
async fn the_uploads_binaries_open_slots_verify_arrivals_and_sweep() {
    let (table, aws_env) = aws_table("lambda-uploads").await;
    let conf = motcua_aws::localstack::config().await;
    let bucket = format!("motcua-lambda-{}", uuid::Uuid::now_v7().simple());
    motcua_aws::s3::S3Objects::new(&conf, &bucket)
        .unwrap()
        .ensure_bucket()
        .await
        .unwrap();
    let secret = "bW90Y3VhLXRlc3Qtc2VjcmV0LW9mLTMyLWJ5dGVzISE=";
    let mut env = vec![
        ("MOTCUA_TABLE", table.as_str()),
        ("MOTCUA_BUCKET", bucket.as_str()),
        ("MOTCUA_SCANNER", "none"),
        ("MOTCUA_JWT_SECRETS", secret),
    ];
    env.extend(aws_env.iter().map(|(k, v)| (*k, v.as_str())));
    let http = LambdaHarness::start(&function_binary("uploads").unwrap(), &env)
        .await
        .unwrap();
    let auth = motcua_http::Authenticator::new(
        "motcua",
        "motcua",
        &motcua_http::config::jwt_secrets(Some(secret.into())).unwrap(),
    )
    .unwrap();
    let token = auth.mint(
        "citizen-lambda",
        motcua_domain::Role::Citizen,
        None,
        jiff::Timestamp::now().as_second(),
        600,
    );
    let pdf = motcua_tests::SAMPLE_PDF;
    let mut post = event("apigw/get-procedures.json");
    post["rawPath"] = json!("/v1/uploads");
    post["requestContext"]["http"]["path"] = json!("/v1/uploads");
    post["requestContext"]["http"]["method"] = json!("POST");
    post["routeKey"] = json!("POST /v1/uploads");
    post["headers"]["authorization"] = json!(format!("Bearer {token}"));
    post["headers"]["content-type"] = json!("application/json");
    post["body"] = json!(
        json!({"file_name": "scan.pdf", "content_type": "application/pdf",
        "size": pdf.len(), "sha256": motcua_tests::sha256_b64(pdf)})
        .to_string()
    );
    post["isBase64Encoded"] = json!(false);
    let a = answer(http.invoke(post, WAIT).await.unwrap());
    assert_eq!(a["statusCode"], 201, "{a}");
    let slot = body(&a);
    let put = &slot["upload_request"];
    assert!(put["url"].as_str().unwrap().contains(&bucket), "{put}");
    let mut req = reqwest::Client::new().put(put["url"].as_str().unwrap());
    for (k, v) in put["headers"].as_object().unwrap() {
        req = req.header(k, v.as_str().unwrap());
    }
    let sent = req.body(pdf.to_vec()).send().await.unwrap();
    assert_eq!(sent.status(), 200, "{}", sent.text().await.unwrap());
    let id = slot["id"].as_str().unwrap();
    let mut arrival = event("sqs/upload-arrived.json");
    let mut note: Value =
        serde_json::from_str(arrival["Records"][0]["body"].as_str().unwrap()).unwrap();
    note["Records"][0]["s3"]["object"]["key"] = json!(format!("quarantine/{id}"));
    arrival["Records"][0]["body"] = json!(note.to_string());
    let store = motcua_aws::DynamoStore::new(
        motcua_aws::aws_sdk_dynamodb::Client::new(&conf),
        table.as_str(),
    );
    let status = |store: motcua_aws::DynamoStore| async move {
        use motcua_ports::uploads::UploadStore;
        store
            .upload(uuid::Uuid::parse_str(id).unwrap())
            .await
            .unwrap()
            .unwrap()
            .status
    };
    // The scanner does not answer: the message is handed back, the file waits.
    let mut down = env.clone();
    down.retain(|(k, _)| *k != "MOTCUA_SCANNER");
    down.push(("MOTCUA_SCANNER", "clamd:127.0.0.1:9"));
    down.push(("MOTCUA_SCANNER_TIMEOUT_SECS", "2"));
    let verifier = LambdaHarness::start(&function_binary("uploads-verifier").unwrap(), &down)
        .await
        .unwrap();
    let a = answer(verifier.invoke(arrival.clone(), WAIT).await.unwrap());
    let message_id = arrival["Records"][0]["messageId"].clone();
    assert_eq!(
        a["batchItemFailures"],
        json!([{"itemIdentifier": message_id}]),
        "{a}"
    );
    assert_eq!(
        status(store.clone()).await,
        motcua_domain::upload::UploadStatus::AwaitingFile
    );
    // Redelivered to a verifier whose scanner (none, explicitly) answers: verified.
    let verifier = LambdaHarness::start(&function_binary("uploads-verifier").unwrap(), &env)
        .await
        .unwrap();
    let a = answer(verifier.invoke(arrival.clone(), WAIT).await.unwrap());
    assert_eq!(a["batchItemFailures"], json!([]), "{a}");
    assert_eq!(
        status(store.clone()).await,
        motcua_domain::upload::UploadStatus::Verified
    );
    // S3's test event and a body that is no notification: nothing to retry.
    let mut other = arrival.clone();
    other["Records"][0]["body"] = json!(r#"{"Event":"s3:TestEvent","Bucket":"b"}"#);
    let a = answer(verifier.invoke(other.clone(), WAIT).await.unwrap());
    assert_eq!(a["batchItemFailures"], json!([]), "{a}");
    other["Records"][0]["body"] = json!("garbage");
    let a = answer(verifier.invoke(other, WAIT).await.unwrap());
    assert_eq!(a["batchItemFailures"], json!([]), "{a}");
    // The sweeper: nothing stale yet.
    let sweeper = LambdaHarness::start(&function_binary("uploads-sweeper").unwrap(), &env)
        .await
        .unwrap();
    let a = answer(
        sweeper
            .invoke(
                json!({"source": "aws.events", "detail-type": "Scheduled Event"}),
                WAIT,
            )
            .await
            .unwrap(),
    );
    assert_eq!(a, json!({"expired": 0, "removed": 0}));
    store.delete_table().await.unwrap();
}

/// The notifications binaries on LocalStack: the consumer, fed the SQS message the bus
/// rule sends, plans and sends the receipt's SMS through SNS, once however often the
/// message comes; a body that is no event is dropped; the dispatcher runs on its schedule;
/// the HTTP function shows the record to the applicant only.
#[tokio::test]
async fn the_notifications_binaries_send_once_and_show_the_records() {
    let (table, aws_env) = aws_table("lambda-notify").await;
    let conf = motcua_aws::localstack::config().await;
    let store = motcua_aws::DynamoStore::new(
        motcua_aws::aws_sdk_dynamodb::Client::new(&conf),
        table.as_str(),
    );
    // A received dossier, its phone a number of this test's own.
    let ports = store.submission_ports();
    for p in motcua_domain::catalogue::demo_catalogue() {
        ports.catalogue.put_procedure(&p).await.unwrap();
    }
    let phone = format!("+8498{:07}", std::process::id() % 10_000_000);
    let now = jiff::Timestamp::now();
    let (mut d, h, e) = motcua_ports::contract::sample("citizen-lambda", 1, now);
    d.applicant.phone = Some(phone.clone());
    ports.dossiers.create(&d, &h, &e).await.unwrap();
    let officer = motcua_ports::contract::officer(&d.agency);
    let (d, h) = d
        .apply(
            &officer,
            &motcua_domain::Command::Receive,
            now,
            motcua_domain::WorkingCalendar::vietnam(),
        )
        .unwrap();
    let received = motcua_domain::EventEnvelope::dossier(&d, &h);
    ports.dossiers.transition(&d, &h, &received).await.unwrap();
    let mut sqs = event("sqs/dossier-received.json");
    let mut bus: Value = serde_json::from_str(sqs["Records"][0]["body"].as_str().unwrap()).unwrap();
    bus["detail"] = serde_json::to_value(&received).unwrap();
    sqs["Records"][0]["body"] = json!(bus.to_string());

    let secret = "bW90Y3VhLXRlc3Qtc2VjcmV0LW9mLTMyLWJ5dGVzISE=";
    // The identity function's table, where erased accounts' subjects are revoked.
    let identity_table = format!("motcua-lambda-notify-id-{}", uuid::Uuid::now_v7().simple());
    let identity = motcua_aws::DynamoStore::new(
        motcua_aws::aws_sdk_dynamodb::Client::new(&conf),
        identity_table.as_str(),
    );
    identity.ensure_table().await.unwrap();
    use motcua_ports::identity::RevokedSubjects;
    identity
        .revoke_subject(
            "citizen-lambda",
            jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1),
        )
        .await
        .unwrap();
    let mut env = vec![
        ("MOTCUA_TABLE", table.as_str()),
        ("MOTCUA_SMS_PROVIDER", "sns"),
        ("MOTCUA_PORTAL_URL", "https://dichvucong.example.gov.vn"),
        ("MOTCUA_QUIET_HOURS", "00:00-00:00"),
        ("MOTCUA_JWT_SECRETS", secret),
    ];
    env.extend(aws_env.iter().map(|(k, v)| (*k, v.as_str())));
    let consumer = LambdaHarness::start(&function_binary("notifications-events").unwrap(), &env)
        .await
        .unwrap();
    let sent_to = |phone: String| async move {
        let v: Value = reqwest::Client::new()
            .get(format!(
                "{}/_aws/sns/sms-messages",
                motcua_aws::localstack::endpoint()
            ))
            .query(&[("phoneNumber", phone.as_str())])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(Value::Null);
        v["sms_messages"][phone.as_str()]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    for _ in 0..3 {
        let a = answer(consumer.invoke(sqs.clone(), WAIT).await.unwrap());
        assert_eq!(a["batchItemFailures"], json!([]), "{a}");
    }
    let mut sms = Vec::new();
    for _ in 0..50 {
        sms = sent_to(phone.clone()).await;
        if !sms.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sms.len(), 1, "{sms:?}");
    assert!(
        sms[0]["Message"].as_str().unwrap().starts_with(&format!(
            "DVC: Ho so {} da duoc tiep nhan.",
            d.code.as_str()
        )),
        "{sms:?}"
    );
    // A body that is no event of ours: dropped, not retried.
    let mut garbage = sqs.clone();
    garbage["Records"][0]["body"] = json!("garbage");
    let a = answer(consumer.invoke(garbage, WAIT).await.unwrap());
    assert_eq!(a["batchItemFailures"], json!([]), "{a}");
    // The dispatcher: nothing left to send.
    let dispatcher =
        LambdaHarness::start(&function_binary("notifications-dispatcher").unwrap(), &env)
            .await
            .unwrap();
    let a = answer(
        dispatcher
            .invoke(json!({"task": "dispatch"}), WAIT)
            .await
            .unwrap(),
    );
    assert_eq!(a["sent"], 0, "{a}");
    assert_eq!(a["failed"], 0, "{a}");
    assert_eq!(sent_to(phone.clone()).await.len(), 1);
    // The records, for the applicant.
    let http = LambdaHarness::start(&function_binary("notifications").unwrap(), &env)
        .await
        .unwrap();
    // Review finding: the HTTP function looked for revoked subjects in the dossier table.
    // With the identity table named, an erased account's token stops there.
    let mut with_identity = env.clone();
    with_identity.push(("MOTCUA_IDENTITY_TABLE", identity_table.as_str()));
    let guarded = LambdaHarness::start(&function_binary("notifications").unwrap(), &with_identity)
        .await
        .unwrap();
    let auth = motcua_http::Authenticator::new(
        "motcua",
        "motcua",
        &motcua_http::config::jwt_secrets(Some(secret.into())).unwrap(),
    )
    .unwrap();
    let get = |token: String| {
        let mut req = event("apigw/get-procedures.json");
        let path = format!("/v1/dossiers/{}/notifications", d.id);
        req["rawPath"] = json!(path);
        req["requestContext"]["http"]["path"] = json!(path);
        req["routeKey"] = json!("GET /v1/dossiers/{id}/notifications");
        req["headers"]["authorization"] = json!(format!("Bearer {token}"));
        req
    };
    let mint = |sub: &str| {
        auth.mint(
            sub,
            motcua_domain::Role::Citizen,
            None,
            jiff::Timestamp::now().as_second(),
            600,
        )
    };
    let a = answer(
        http.invoke(get(mint("citizen-lambda")), WAIT)
            .await
            .unwrap(),
    );
    assert_eq!(a["statusCode"], 200, "{a}");
    let list = body(&a);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["status"], "sent");
    assert_eq!(list[0]["channel"], "sms");
    let a = answer(http.invoke(get(mint("someone-else")), WAIT).await.unwrap());
    assert_eq!(a["statusCode"], 404, "{a}");
    let a = answer(
        guarded
            .invoke(get(mint("citizen-lambda")), WAIT)
            .await
            .unwrap(),
    );
    assert_eq!(a["statusCode"], 401, "{a}");
    let a = answer(
        guarded
            .invoke(get(mint("someone-else")), WAIT)
            .await
            .unwrap(),
    );
    assert_eq!(a["statusCode"], 404, "{a}");
    store.delete_table().await.unwrap();
    identity.delete_table().await.unwrap();
}
