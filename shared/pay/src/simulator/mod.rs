//! VNPay, MoMo and the national platform on loopback, for the runner and the tests: real
//! HTTP in each provider's own format, a payment page a developer clicks through, signed
//! callbacks sent back to the system, and the status and refund APIs.
//!
//! ```text
//! GET  /vnpay/paymentv2/vpcpay.html?…            VNPay's payment page (checks our signature)
//! POST /vnpay/merchant_webapi/api/transaction     querydr, refund
//! POST /momo/v2/gateway/api/{create,query,refund}
//! GET  /momo/pay/<orderId>                        MoMo's payment page
//! GET  /paygov/pay?…, POST /paygov/query          the national platform (example profile)
//! POST /_sim/pay/<provider>/<txn_ref>  as=<behaviour>
//!      the payer's choice, as the page's buttons send it (curl can too); answers 303 to
//!      the return URL, or JSON with `Accept: application/json`
//! GET  /_sim/transactions, GET /_sim/callbacks    what happened, for tests and developers
//! POST /_sim/lose-next-refund                     the next refund is made, its answer lost
//! POST /_sim/refuse-duplicate-refunds             a refund request sent again: "duplicate"
//! ```
//! Behaviours: `success`, `failure`, `cancel`, `duplicate` (the callback twice),
//! `delayed:<ms>` (the callback later), `wrong_amount` (signed, for 1,000 ₫ more),
//! `bad_signature`, `never` (paid, but no callback: only a status query finds out).

mod momo;
mod paygov;
mod vnpay;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jiff::Timestamp;
use motcua_domain::payment::Provider;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::paygov::PaygovProfile;

/// The merchant accounts the simulator knows (the same values the system is configured
/// with).
#[derive(Clone)]
pub struct SimOptions {
    pub vnpay_tmn_code: String,
    pub vnpay_secret: Vec<u8>,
    /// VNPay's IPN URL is set in VNPay's merchant portal, not sent per payment.
    pub vnpay_ipn_url: String,
    pub momo_partner_code: String,
    pub momo_access_key: String,
    pub momo_secret: Vec<u8>,
    pub paygov_merchant: String,
    pub paygov_secret: Vec<u8>,
    pub paygov_profile: PaygovProfile,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnState {
    /// On the payment page.
    Open,
    Paid,
    Failed,
    Cancelled,
}

/// A transaction as the provider sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimTxn {
    pub provider: Provider,
    pub txn_ref: String,
    /// In đồng.
    pub amount: u64,
    pub order_info: String,
    pub return_url: String,
    pub ipn_url: String,
    pub state: TxnState,
    pub transaction_no: u64,
    pub paid_at: Option<Timestamp>,
    pub refunded: u64,
    /// VNPay's `vnp_CreateDate`.
    pub created: String,
}

/// One callback the simulator sent and the answer it got.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimCallback {
    pub provider: Provider,
    pub txn_ref: String,
    pub behaviour: String,
    /// HTTP status of the system's answer (0: unreachable).
    pub status: u16,
    pub answer: String,
}

#[derive(Default)]
struct Inner {
    txns: HashMap<(Provider, String), SimTxn>,
    /// Refund answers by the request's id: the same request again gets the same answer
    /// and refunds nothing more.
    refunds: HashMap<String, serde_json::Value>,
    /// The next refund is made, and its answer lost (503).
    lose_next_refund: bool,
    /// A refund request sent again is refused as a duplicate (as a provider may answer)
    /// instead of getting its first answer.
    refuse_duplicate_refunds: bool,
    callbacks: Vec<SimCallback>,
    next_no: u64,
}

#[derive(Clone)]
struct Sim {
    inner: Arc<Mutex<Inner>>,
    o: Arc<SimOptions>,
    base: String,
    http: reqwest::Client,
}

fn lock(m: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Sim {
    /// Records a transaction opened on a payment page (again: the same one).
    fn open(&self, mut t: SimTxn) -> SimTxn {
        let mut inner = lock(&self.inner);
        let key = (t.provider, t.txn_ref.clone());
        if let Some(existing) = inner.txns.get(&key) {
            return existing.clone();
        }
        inner.next_no += 1;
        t.transaction_no = 14_226_000 + inner.next_no;
        inner.txns.insert(key, t.clone());
        t
    }

    fn txn(&self, provider: Provider, txn_ref: &str) -> Option<SimTxn> {
        lock(&self.inner)
            .txns
            .get(&(provider, txn_ref.to_owned()))
            .cloned()
    }

    fn set(&self, t: &SimTxn) {
        lock(&self.inner)
            .txns
            .insert((t.provider, t.txn_ref.clone()), t.clone());
    }

    fn log(&self, c: SimCallback) {
        lock(&self.inner).callbacks.push(c);
    }

    /// Sends a callback: GET with a query, or POST with a JSON body.
    async fn call(
        &self,
        t: &SimTxn,
        behaviour: &str,
        url: String,
        body: Option<serde_json::Value>,
    ) {
        let req = match body {
            Some(b) => self.http.post(&url).json(&b),
            None => self.http.get(&url),
        };
        let (status, answer) = match req.send().await {
            Ok(r) => {
                let s = r.status().as_u16();
                (s, r.text().await.unwrap_or_default())
            }
            Err(_) => (0, String::new()),
        };
        self.log(SimCallback {
            provider: t.provider,
            txn_ref: t.txn_ref.clone(),
            behaviour: behaviour.to_owned(),
            status,
            answer,
        });
    }
}

/// A running simulator.
pub struct PaymentSimulator {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PaymentSimulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PaymentSimulator {
    pub async fn start(port: u16, o: SimOptions) -> std::io::Result<PaymentSimulator> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Mutex::new(Inner::default()));
        let sim = Sim {
            inner: inner.clone(),
            o: Arc::new(o),
            base: format!("http://{addr}"),
            http: crate::client(),
        };
        let app = Router::new()
            .route("/vnpay/paymentv2/vpcpay.html", get(vnpay::page))
            .route("/vnpay/merchant_webapi/api/transaction", post(vnpay::api))
            .route("/momo/v2/gateway/api/create", post(momo::create))
            .route("/momo/v2/gateway/api/query", post(momo::query))
            .route("/momo/v2/gateway/api/refund", post(momo::refund))
            .route("/momo/pay/{order}", get(momo::page))
            .route("/paygov/pay", get(paygov::page))
            .route("/paygov/query", post(paygov::query))
            .route("/_sim/pay/{provider}/{txn_ref}", post(pay))
            .route("/_sim/transactions", get(transactions))
            .route("/_sim/callbacks", get(callbacks))
            .route("/_sim/lose-next-refund", post(lose_next_refund))
            .route(
                "/_sim/refuse-duplicate-refunds",
                post(refuse_duplicate_refunds),
            )
            .with_state(sim);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(PaymentSimulator { addr, inner, task })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn vnpay_pay_url(&self) -> String {
        format!("{}/vnpay/paymentv2/vpcpay.html", self.base_url())
    }

    pub fn vnpay_api_url(&self) -> String {
        format!("{}/vnpay/merchant_webapi/api/transaction", self.base_url())
    }

    pub fn momo_api_url(&self) -> String {
        format!("{}/momo/v2/gateway/api", self.base_url())
    }

    pub fn paygov_pay_url(&self) -> String {
        format!("{}/paygov/pay", self.base_url())
    }

    pub fn paygov_query_url(&self) -> String {
        format!("{}/paygov/query", self.base_url())
    }

    pub fn transactions(&self) -> Vec<SimTxn> {
        let mut all: Vec<SimTxn> = lock(&self.inner).txns.values().cloned().collect();
        all.sort_by_key(|t| t.transaction_no);
        all
    }

    pub fn callbacks(&self) -> Vec<SimCallback> {
        lock(&self.inner).callbacks.clone()
    }
}

/// The escaped text of `s` for HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The payment page: the order and one button per behaviour.
fn page_of(t: &SimTxn, name: &str) -> Response {
    let buttons: String = [
        ("success", "Thanh toán"),
        ("failure", "Thất bại (không đủ số dư)"),
        ("cancel", "Hủy giao dịch"),
        ("duplicate", "Thanh toán, báo kết quả hai lần"),
        ("delayed:3000", "Thanh toán, báo kết quả sau 3 giây"),
        ("never", "Thanh toán, không báo kết quả"),
        ("wrong_amount", "Báo sai số tiền"),
        ("bad_signature", "Báo sai chữ ký"),
    ]
    .iter()
    .map(|(b, label)| format!(r#"<button name="as" value="{b}">{}</button> "#, esc(label)))
    .collect();
    let body = format!(
        r#"<!doctype html><html lang="vi"><head><meta charset="utf-8"><title>{name} (mô phỏng)</title></head>
<body><h1>{name} — cổng thanh toán mô phỏng</h1>
<p>Đơn hàng: {info}</p><p>Mã tham chiếu: {txn}</p><p>Số tiền: {amount} ₫</p>
<form method="post" action="/_sim/pay/{provider}/{txn}">{buttons}</form></body></html>"#,
        info = esc(&t.order_info),
        txn = esc(&t.txn_ref),
        amount = t.amount,
        provider = t.provider.as_str(),
    );
    (
        [(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; form-action 'self'",
        )],
        Html(body),
    )
        .into_response()
}

/// The payer's choice: the provider settles the transaction, calls the system back as
/// the behaviour says, and sends the browser to the return URL.
async fn pay(
    State(s): State<Sim>,
    Path((provider, txn_ref)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    // `as=<behaviour>`, in the form body or (curl -d) the same.
    let behaviour = crate::sig::form_pairs(&body, 8)
        .unwrap_or_default()
        .into_iter()
        .find(|(k, _)| k == "as")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let Some(provider) = Provider::parse(&provider) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(mut t) = s.txn(provider, &txn_ref) else {
        return (StatusCode::NOT_FOUND, "no such transaction").into_response();
    };
    let b = behaviour.as_str();
    let known = matches!(
        b,
        "success" | "failure" | "cancel" | "duplicate" | "never" | "wrong_amount" | "bad_signature"
    ) || b
        .strip_prefix("delayed:")
        .is_some_and(|ms| ms.parse::<u64>().is_ok());
    if !known {
        return (StatusCode::BAD_REQUEST, "unknown behaviour").into_response();
    }
    if t.state == TxnState::Open {
        t.state = match b {
            "failure" => TxnState::Failed,
            "cancel" => TxnState::Cancelled,
            _ => TxnState::Paid,
        };
        t.paid_at = Some(Timestamp::now());
        s.set(&t);
    }
    let delay = b
        .strip_prefix("delayed:")
        .and_then(|ms| ms.parse::<u64>().ok());
    let times = match b {
        "never" => 0,
        "duplicate" => 2,
        _ => 1,
    };
    let send = {
        let (s, t, b) = (s.clone(), t.clone(), b.to_owned());
        async move {
            if let Some(ms) = delay {
                tokio::time::sleep(Duration::from_millis(ms.min(60_000))).await;
            }
            for _ in 0..times {
                match t.provider {
                    Provider::Vnpay => vnpay::callback(&s, &t, &b).await,
                    Provider::Momo => momo::callback(&s, &t, &b).await,
                    Provider::Paygov => paygov::callback(&s, &t, &b).await,
                }
            }
        }
    };
    if delay.is_some() {
        tokio::spawn(send);
    } else {
        send.await;
    }
    let back = match t.provider {
        Provider::Vnpay => vnpay::return_url(&s, &t),
        Provider::Momo => momo::return_url(&s, &t),
        Provider::Paygov => paygov::return_url(&s, &t),
    };
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if wants_json {
        return Json(json!({"return_url": back, "state": t.state})).into_response();
    }
    (StatusCode::SEE_OTHER, [(header::LOCATION, back)]).into_response()
}

async fn lose_next_refund(State(s): State<Sim>) -> StatusCode {
    lock(&s.inner).lose_next_refund = true;
    StatusCode::NO_CONTENT
}

async fn refuse_duplicate_refunds(State(s): State<Sim>) -> StatusCode {
    lock(&s.inner).refuse_duplicate_refunds = true;
    StatusCode::NO_CONTENT
}

/// Whether a repeated refund request is refused as a duplicate.
fn refusing_duplicates(s: &Sim) -> bool {
    lock(&s.inner).refuse_duplicate_refunds
}

/// Whether this refund's answer is to be lost (once).
fn losing(s: &Sim) -> bool {
    std::mem::take(&mut lock(&s.inner).lose_next_refund)
}

async fn transactions(State(s): State<Sim>) -> Json<Vec<SimTxn>> {
    let mut all: Vec<SimTxn> = lock(&s.inner).txns.values().cloned().collect();
    all.sort_by_key(|t| t.transaction_no);
    Json(all)
}

#[derive(Deserialize)]
struct CallbackFilter {
    txn_ref: Option<String>,
}

async fn callbacks(
    State(s): State<Sim>,
    Query(q): Query<CallbackFilter>,
) -> Json<Vec<SimCallback>> {
    Json(
        lock(&s.inner)
            .callbacks
            .iter()
            .filter(|c| q.txn_ref.as_deref().is_none_or(|r| r == c.txn_ref))
            .cloned()
            .collect(),
    )
}

/// `base` with `query` appended.
fn with_query(base: &str, query: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{query}")
}

/// The string fields of a JSON object as a form-encoded query, in the object's order.
fn query_of(body: &serde_json::Value) -> String {
    body.as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| {
            format!(
                "{k}={}",
                crate::sig::form_encode(&crate::vnpay::text(body, k), crate::sig::Encoding::Php)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A hex signature with its last digit changed.
fn corrupt(sig: &str) -> String {
    let mut s = sig.to_owned();
    let last = if s.ends_with('0') { '1' } else { '0' };
    s.pop();
    s.push(last);
    s
}
