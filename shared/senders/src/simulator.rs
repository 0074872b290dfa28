//! A brandname-SMS gateway and a Zalo ZNS endpoint on loopback, for the runner and the
//! tests: real HTTP, the adapters' own wire format, scripted failures, and signed delivery
//! receipts sent back to the system.
//!
//! ```text
//! POST /sms, GET /sms/<request_id>    the gateway (Authorization: Bearer <key>)
//! POST /zns                           ZNS (access_token: <token>)
//! GET  /_sim/messages                 what was accepted, oldest first
//! POST /_sim/script  {"sms": ["lost", "http_503", "code:invalid_phone", "ok"], "zalo": ["error:-118"]}
//!                                     answers for the next requests, in order
//! ```
//! `lost` accepts the message and then answers 503: the provider took it, the caller
//! never heard. Nothing is deduplicated here: a message sent twice is recorded twice, so a
//! test sees it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One message the simulator accepted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SimMessage {
    /// `sms` or `zalo`.
    pub channel: String,
    /// Digits, as the adapters send them (`84912345678`).
    pub to: String,
    /// The SMS text, or the ZNS template id.
    pub text: String,
    #[serde(default)]
    pub params: Value,
    /// Our reference (`request_id` / `tracking_id`).
    pub reference: String,
    pub message_id: String,
}

#[derive(Default)]
struct Inner {
    messages: Vec<SimMessage>,
    sms_script: VecDeque<String>,
    lookup_script: VecDeque<String>,
    zalo_script: VecDeque<String>,
    next_id: u64,
}

#[derive(Clone)]
struct Sim {
    inner: Arc<Mutex<Inner>>,
    key: String,
    token: String,
    receipts: Option<(String, Vec<u8>)>,
    http: reqwest::Client,
}

/// A running simulator.
pub struct MessagingSimulator {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MessagingSimulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How the simulator is started.
#[derive(Debug, Clone, Default)]
pub struct SimOptions {
    /// The bearer key the gateway wants.
    pub key: String,
    /// The access token ZNS wants.
    pub token: String,
    /// Where to POST signed delivery receipts of accepted SMS, and the signing secret.
    pub receipts: Option<(String, Vec<u8>)>,
}

impl MessagingSimulator {
    pub async fn start(port: u16, o: SimOptions) -> std::io::Result<MessagingSimulator> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Mutex::new(Inner::default()));
        let sim = Sim {
            inner: inner.clone(),
            key: o.key,
            token: o.token,
            receipts: o.receipts,
            http: crate::client(),
        };
        let app = Router::new()
            .route("/sms", post(sms))
            .route("/sms/{reference}", get(sms_status))
            .route("/zns", post(zns))
            .route("/_sim/messages", get(messages))
            .route("/_sim/script", post(script))
            .with_state(sim);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(MessagingSimulator { addr, inner, task })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The gateway's URL for [`crate::gateway::SmsGateway`].
    pub fn sms_url(&self) -> String {
        format!("{}/sms", self.base_url())
    }

    /// The ZNS URL for [`crate::zalo::ZaloZns`].
    pub fn zns_url(&self) -> String {
        format!("{}/zns", self.base_url())
    }

    pub fn messages(&self) -> Vec<SimMessage> {
        lock(&self.inner).messages.clone()
    }

    /// Answers for the next SMS requests, in order (then `ok`).
    pub fn script_sms(&self, answers: &[&str]) {
        lock(&self.inner)
            .sms_script
            .extend(answers.iter().map(|a| a.to_string()));
    }

    /// Answers for the next status lookups (`http_503`…), then the truth.
    pub fn script_lookups(&self, answers: &[&str]) {
        lock(&self.inner)
            .lookup_script
            .extend(answers.iter().map(|a| a.to_string()));
    }

    pub fn script_zalo(&self, answers: &[&str]) {
        lock(&self.inner)
            .zalo_script
            .extend(answers.iter().map(|a| a.to_string()));
    }
}

fn lock(m: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Deserialize)]
struct SmsRequest {
    phone: String,
    message: String,
    request_id: String,
}

async fn sms(State(s): State<Sim>, headers: HeaderMap, Json(r): Json<SmsRequest>) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Bearer {}", s.key) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let (answer, message_id) = {
        let mut inner = lock(&s.inner);
        let answer = inner.sms_script.pop_front().unwrap_or_else(|| "ok".into());
        if answer.starts_with("code:") || answer.starts_with("http_") {
            (answer, None)
        } else {
            inner.next_id += 1;
            let id = format!("gw-{}", inner.next_id);
            inner.messages.push(SimMessage {
                channel: "sms".into(),
                to: r.phone.clone(),
                text: r.message.clone(),
                params: Value::Null,
                reference: r.request_id.clone(),
                message_id: id.clone(),
            });
            (answer, Some(id))
        }
    };
    if let (Some(id), Some((url, secret))) = (&message_id, &s.receipts) {
        let body = json!({"message_id": id, "status": "delivered"}).to_string();
        let signature = crate::receipt_signature(secret, body.as_bytes());
        let (http, url) = (s.http.clone(), url.clone());
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let _ = http
                .post(url)
                .header("content-type", "application/json")
                .header("x-signature", signature)
                .body(body)
                .send()
                .await;
        });
    }
    match (answer.as_str(), message_id) {
        ("lost", _) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        (a, _) if a.starts_with("http_") => {
            let code = a[5..].parse().unwrap_or(500);
            StatusCode::from_u16(code)
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
                .into_response()
        }
        (a, _) if a.starts_with("code:") => {
            Json(json!({"code": &a[5..], "message": "refused by the simulator"})).into_response()
        }
        (_, id) => Json(json!({"code": "00", "message_id": id})).into_response(),
    }
}

async fn sms_status(
    State(s): State<Sim>,
    headers: HeaderMap,
    Path(reference): Path<String>,
) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Bearer {}", s.key) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let mut inner = lock(&s.inner);
    if let Some(code) = inner
        .lookup_script
        .pop_front()
        .and_then(|a| a.strip_prefix("http_").and_then(|c| c.parse().ok()))
    {
        return StatusCode::from_u16(code)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response();
    }
    match inner
        .messages
        .iter()
        .find(|m| m.channel == "sms" && m.reference == reference)
    {
        Some(m) => Json(json!({"message_id": m.message_id, "status": "accepted"})).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[derive(Deserialize)]
struct ZnsRequest {
    phone: String,
    template_id: String,
    #[serde(default)]
    template_data: Value,
    #[serde(default)]
    tracking_id: String,
}

async fn zns(State(s): State<Sim>, headers: HeaderMap, Json(r): Json<ZnsRequest>) -> Response {
    let token = headers
        .get("access_token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if token != s.token {
        return Json(json!({"error": -124, "message": "Access token is invalid"})).into_response();
    }
    let mut inner = lock(&s.inner);
    let answer = inner.zalo_script.pop_front().unwrap_or_else(|| "ok".into());
    if let Some(code) = answer.strip_prefix("error:") {
        let code: i64 = code.parse().unwrap_or(-1);
        return Json(json!({"error": code, "message": "refused by the simulator"})).into_response();
    }
    if let Some(code) = answer.strip_prefix("http_") {
        return StatusCode::from_u16(code.parse().unwrap_or(500))
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response();
    }
    inner.next_id += 1;
    let id = format!("zns-{}", inner.next_id);
    inner.messages.push(SimMessage {
        channel: "zalo".into(),
        to: r.phone,
        text: r.template_id,
        params: r.template_data,
        reference: r.tracking_id,
        message_id: id.clone(),
    });
    if answer == "lost" {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    Json(json!({"error": 0, "message": "Success", "data": {"msg_id": id}})).into_response()
}

async fn messages(State(s): State<Sim>) -> Json<Vec<SimMessage>> {
    Json(lock(&s.inner).messages.clone())
}

#[derive(Deserialize)]
struct Script {
    #[serde(default)]
    sms: Vec<String>,
    #[serde(default)]
    zalo: Vec<String>,
}

async fn script(State(s): State<Sim>, Json(sc): Json<Script>) -> StatusCode {
    let mut inner = lock(&s.inner);
    inner.sms_script.extend(sc.sms);
    inner.zalo_script.extend(sc.zalo);
    StatusCode::NO_CONTENT
}
