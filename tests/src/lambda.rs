//! A Lambda Runtime API on loopback, for running the function binaries as Lambda runs
//! them: the binary polls `GET /2018-06-01/runtime/invocation/next`, gets an event with the
//! invocation headers, and posts its answer to `…/{id}/response` or its failure to
//! `…/{id}/error` (or `…/runtime/init/error` when it cannot start).

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

/// How an invocation ended, as the runtime posted it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `POST …/{id}/response`: the handler's answer.
    Response(Value),
    /// `POST …/{id}/error`: Lambda's error document (`errorType`, `errorMessage`) and the
    /// `Lambda-Runtime-Function-Error-Type` header, if any.
    Error {
        body: Value,
        error_type_header: Option<String>,
    },
}

type Pending = (String, Value);

#[derive(Clone)]
struct Api {
    queue: Arc<tokio::sync::Mutex<mpsc::Receiver<Pending>>>,
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<Outcome>>>>,
    init_error: Arc<Mutex<Option<Value>>>,
    polls: Arc<std::sync::atomic::AtomicUsize>,
    /// When the function first asked for an invocation: the end of its init phase.
    first_poll: Arc<Mutex<Option<Instant>>>,
}

/// A Runtime API server and a function binary polling it.
pub struct LambdaHarness {
    addr: std::net::SocketAddr,
    send: mpsc::Sender<Pending>,
    api: Api,
    child: Option<Child>,
    next_id: std::sync::atomic::AtomicU64,
    spawned: Instant,
}

async fn next(State(api): State<Api>) -> Response {
    api.polls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    api.first_poll
        .lock()
        .unwrap()
        .get_or_insert_with(Instant::now);
    let Some((id, event)) = api.queue.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    let deadline = jiff::Timestamp::now().as_millisecond() + 30_000;
    let mut headers = HeaderMap::new();
    let put = |h: &mut HeaderMap, k: &'static str, v: String| {
        h.insert(k, HeaderValue::from_str(&v).expect("header"));
    };
    put(&mut headers, "lambda-runtime-aws-request-id", id);
    put(
        &mut headers,
        "lambda-runtime-deadline-ms",
        deadline.to_string(),
    );
    put(
        &mut headers,
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:000000000000:function:motcua-test".into(),
    );
    put(
        &mut headers,
        "lambda-runtime-trace-id",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".into(),
    );
    (headers, event.to_string()).into_response()
}

async fn response(State(api): State<Api>, UrlPath(id): UrlPath<String>, body: Bytes) -> StatusCode {
    let value = serde_json::from_slice(&body)
        .unwrap_or(Value::String(String::from_utf8_lossy(&body).into_owned()));
    finish(&api, &id, Outcome::Response(value))
}

async fn error(
    State(api): State<Api>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let error_type_header = headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    finish(
        &api,
        &id,
        Outcome::Error {
            body,
            error_type_header,
        },
    )
}

fn finish(api: &Api, id: &str, outcome: Outcome) -> StatusCode {
    match api.waiting.lock().unwrap().remove(id) {
        Some(tx) => {
            let _ = tx.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn init_error(State(api): State<Api>, body: Bytes) -> StatusCode {
    *api.init_error.lock().unwrap() = Some(serde_json::from_slice(&body).unwrap_or(Value::Null));
    StatusCode::ACCEPTED
}

impl LambdaHarness {
    /// Starts the Runtime API, then `binary` with `env` (and the variables Lambda sets).
    pub async fn start(binary: &Path, env: &[(&str, &str)]) -> anyhow::Result<LambdaHarness> {
        let (send, recv) = mpsc::channel(16);
        let api = Api {
            queue: Arc::new(tokio::sync::Mutex::new(recv)),
            waiting: Arc::default(),
            init_error: Arc::default(),
            polls: Arc::default(),
            first_poll: Arc::default(),
        };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(api.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let mut cmd = Command::new(binary);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "motcua-test")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/motcua-test")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let spawned = Instant::now();
        let child = cmd.spawn()?;
        Ok(LambdaHarness {
            addr,
            send,
            api,
            child: Some(child),
            next_id: Default::default(),
            spawned,
        })
    }

    /// Invokes the function with `event`; its outcome, or an error after `timeout`.
    pub async fn invoke(&self, event: Value, timeout: Duration) -> anyhow::Result<Outcome> {
        let n = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let id = format!("req-{n}-{}", uuid::Uuid::now_v7().simple());
        let (tx, rx) = oneshot::channel();
        self.api.waiting.lock().unwrap().insert(id.clone(), tx);
        self.send.send((id, event)).await?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(_)) => anyhow::bail!("the invocation was dropped"),
            Err(_) => {
                let init = self.api.init_error.lock().unwrap().clone();
                anyhow::bail!("no answer within {timeout:?} (init error: {init:?})")
            }
        }
    }

    /// What the binary posted to `/runtime/init/error`, if it could not start.
    pub fn init_error(&self) -> Option<Value> {
        self.api.init_error.lock().unwrap().clone()
    }

    /// The function process's id (to freeze and thaw it as Lambda does).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Whether the function process is still running.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// When the process was started.
    pub fn spawned_at(&self) -> Instant {
        self.spawned
    }

    /// When the process first asked for an invocation (its init phase was over).
    pub fn first_poll_at(&self) -> Option<Instant> {
        *self.api.first_poll.lock().unwrap()
    }

    /// The process's resident set size in bytes (`VmRSS` of `/proc/<pid>/status`).
    pub fn rss_bytes(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    /// The Runtime API's address (`AWS_LAMBDA_RUNTIME_API`).
    pub fn runtime_api(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for LambdaHarness {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A function binary of this build (`target/debug/<name>`), the one `cargo build --bins`
/// makes from the same `main.rs` that `sam build` packages.
pub fn function_binary(name: &str) -> anyhow::Result<std::path::PathBuf> {
    let runner = crate::runner_binary()?;
    let path = runner.with_file_name(name);
    anyhow::ensure!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    Ok(path)
}

/// A sample event of `events/` (API Gateway, SQS, DynamoDB Streams…).
pub fn event(path: &str) -> serde_json::Value {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(path);
    serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap()
}

/// A fresh table on LocalStack and the variables that point an SDK at it.
pub async fn aws_table(label: &str) -> (String, Vec<(&'static str, String)>) {
    motcua_aws::localstack::ensure_running().expect("LocalStack");
    let table = format!("motcua-{label}-{}", uuid::Uuid::now_v7().simple());
    let conf = motcua_aws::localstack::config().await;
    motcua_aws::DynamoStore::new(
        motcua_aws::aws_sdk_dynamodb::Client::new(&conf),
        table.as_str(),
    )
    .ensure_table()
    .await
    .unwrap();
    let env = vec![
        ("AWS_ENDPOINT_URL", motcua_aws::localstack::endpoint()),
        ("AWS_ACCESS_KEY_ID", "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
    ];
    (table, env)
}

/// The answer of an invocation that answered.
pub fn answer(o: Outcome) -> serde_json::Value {
    match o {
        Outcome::Response(v) => v,
        other => panic!("expected an answer, got {other:?}"),
    }
}

/// The JSON body of an API Gateway answer.
pub fn body(answer: &serde_json::Value) -> serde_json::Value {
    serde_json::from_str(answer["body"].as_str().unwrap_or("null"))
        .unwrap_or(serde_json::Value::Null)
}
