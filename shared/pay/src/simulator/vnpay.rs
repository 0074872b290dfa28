//! VNPay's side: the payment page, the IPN it sends, `querydr` and `refund`.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use motcua_domain::payment::Provider;
use serde_json::{Value, json};

use super::{Sim, SimTxn, TxnState, corrupt, page_of, with_query};
use crate::sig::{Encoding, HMAC_SHA512};
use crate::vnpay::{self, QUERYDR_ANSWER, pipe_sign, text, vn_time};

fn key(s: &Sim) -> ring::hmac::Key {
    ring::hmac::Key::new(HMAC_SHA512, &s.o.vnpay_secret)
}

pub(super) async fn page(State(s): State<Sim>, RawQuery(q): RawQuery) -> Response {
    let q = q.unwrap_or_default();
    let Ok(pairs) = vnpay::verify(&q, &key(&s)) else {
        // VNPay's page says "Sai chữ ký" (code 70).
        return (StatusCode::BAD_REQUEST, "70: Sai chu ky").into_response();
    };
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.to_string())
            .unwrap_or_default()
    };
    if get("vnp_TmnCode") != s.o.vnpay_tmn_code || get("vnp_Version") != vnpay::VERSION {
        return (StatusCode::BAD_REQUEST, "02: Merchant khong hop le").into_response();
    }
    let Some(amount) = vnpay::amount_of(&get("vnp_Amount")) else {
        return (StatusCode::BAD_REQUEST, "03: So tien khong hop le").into_response();
    };
    let t = s.open(SimTxn {
        provider: Provider::Vnpay,
        txn_ref: get("vnp_TxnRef"),
        amount: amount.as_vnd(),
        order_info: get("vnp_OrderInfo"),
        return_url: get("vnp_ReturnUrl"),
        ipn_url: s.o.vnpay_ipn_url.clone(),
        state: TxnState::Open,
        transaction_no: 0,
        paid_at: None,
        refunded: 0,
        created: get("vnp_CreateDate"),
    });
    page_of(&t, "VNPay")
}

/// The result fields VNPay sends to the IPN and the return URL, signed.
fn result_fields(s: &Sim, t: &SimTxn, amount: u64) -> Vec<(&'static str, String)> {
    let (code, status) = match t.state {
        TxnState::Paid => ("00", "00"),
        TxnState::Cancelled => ("24", "02"),
        TxnState::Failed => ("51", "02"),
        TxnState::Open => ("99", "01"),
    };
    let mut f = vec![
        ("vnp_Amount", (amount * 100).to_string()),
        ("vnp_BankCode", "NCB".to_owned()),
        ("vnp_BankTranNo", format!("VNP{}", t.transaction_no)),
        ("vnp_CardType", "ATM".to_owned()),
        ("vnp_OrderInfo", t.order_info.clone()),
        (
            "vnp_PayDate",
            vn_time(t.paid_at.unwrap_or_else(jiff::Timestamp::now)),
        ),
        ("vnp_ResponseCode", code.to_owned()),
        ("vnp_TmnCode", s.o.vnpay_tmn_code.clone()),
        ("vnp_TransactionNo", t.transaction_no.to_string()),
        ("vnp_TransactionStatus", status.to_owned()),
        ("vnp_TxnRef", t.txn_ref.clone()),
    ];
    let hash = vnpay::sign(&s.o.vnpay_secret, &f);
    f.push(("vnp_SecureHash", hash));
    f
}

fn query_of(f: &[(&str, String)]) -> String {
    f.iter()
        .map(|(k, v)| format!("{k}={}", crate::sig::form_encode(v, Encoding::Php)))
        .collect::<Vec<_>>()
        .join("&")
}

pub(super) async fn callback(s: &Sim, t: &SimTxn, behaviour: &str) {
    let amount = if behaviour == "wrong_amount" {
        t.amount + 1_000
    } else {
        t.amount
    };
    let mut f = result_fields(s, t, amount);
    if behaviour == "bad_signature"
        && let Some(last) = f.last_mut()
    {
        last.1 = corrupt(&last.1);
    }
    // VNPay calls the IPN with GET.
    let url = with_query(&t.ipn_url, &query_of(&f));
    s.call(t, behaviour, url, None).await;
}

pub(super) fn return_url(s: &Sim, t: &SimTxn) -> String {
    with_query(&t.return_url, &query_of(&result_fields(s, t, t.amount)))
}

/// An answer signed over the first `n` fields of the querydr order.
fn signed_answer(s: &Sim, mut v: Value, n: usize) -> Json<Value> {
    let values: Vec<String> = QUERYDR_ANSWER[..n].iter().map(|f| text(&v, f)).collect();
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    v["vnp_SecureHash"] = Value::String(pipe_sign(&s.o.vnpay_secret, &refs));
    Json(v)
}

pub(super) async fn api(State(s): State<Sim>, Json(r): Json<Value>) -> Response {
    let command = text(&r, "vnp_Command");
    let order: &[&str] = match command.as_str() {
        "querydr" => &[
            "vnp_RequestId",
            "vnp_Version",
            "vnp_Command",
            "vnp_TmnCode",
            "vnp_TxnRef",
            "vnp_TransactionDate",
            "vnp_CreateDate",
            "vnp_IpAddr",
            "vnp_OrderInfo",
        ],
        "refund" => &[
            "vnp_RequestId",
            "vnp_Version",
            "vnp_Command",
            "vnp_TmnCode",
            "vnp_TransactionType",
            "vnp_TxnRef",
            "vnp_Amount",
            "vnp_TransactionNo",
            "vnp_TransactionDate",
            "vnp_CreateBy",
            "vnp_CreateDate",
            "vnp_IpAddr",
            "vnp_OrderInfo",
        ],
        _ => return (StatusCode::BAD_REQUEST, "unknown command").into_response(),
    };
    let n = if command == "querydr" { 15 } else { 13 };
    let values: Vec<String> = order.iter().map(|f| text(&r, f)).collect();
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    let expected = pipe_sign(&s.o.vnpay_secret, &refs);
    let base = |code: &str, msg: &str| {
        json!({
            "vnp_ResponseId": uuid::Uuid::now_v7().simple().to_string(),
            "vnp_Command": command,
            "vnp_ResponseCode": code,
            "vnp_Message": msg,
            "vnp_TmnCode": s.o.vnpay_tmn_code,
            "vnp_TxnRef": text(&r, "vnp_TxnRef"),
        })
    };
    if !crate::sig::ct_eq(
        expected.as_bytes(),
        text(&r, "vnp_SecureHash").to_ascii_lowercase().as_bytes(),
    ) {
        return signed_answer(&s, base("97", "Invalid Checksum"), n).into_response();
    }
    let request_id = format!("vnpay:{}", text(&r, "vnp_RequestId"));
    // (The lock is released before anything else takes it.)
    let seen = super::lock(&s.inner).refunds.get(&request_id).cloned();
    if command == "refund"
        && let Some(done) = seen
    {
        if super::refusing_duplicates(&s) {
            return signed_answer(&s, base("94", "Duplicate request"), n).into_response();
        }
        return Json(done).into_response();
    }
    let Some(mut t) = s.txn(Provider::Vnpay, &text(&r, "vnp_TxnRef")) else {
        return signed_answer(&s, base("91", "Transaction not found"), n).into_response();
    };
    let status = match t.state {
        TxnState::Paid if t.refunded >= t.amount => "06",
        TxnState::Paid => "00",
        TxnState::Open => "01",
        _ => "02",
    };
    let mut v = base("00", "Success");
    v["vnp_Amount"] = Value::String((t.amount * 100).to_string());
    v["vnp_BankCode"] = Value::String("NCB".into());
    v["vnp_PayDate"] = Value::String(t.paid_at.map(vn_time).unwrap_or_default());
    v["vnp_TransactionNo"] = Value::String(t.transaction_no.to_string());
    v["vnp_TransactionType"] = Value::String("01".into());
    v["vnp_TransactionStatus"] = Value::String(status.into());
    v["vnp_OrderInfo"] = Value::String(t.order_info.clone());
    if command == "refund" {
        let amount = vnpay::amount_of(&text(&r, "vnp_Amount")).map(|m| m.as_vnd());
        match amount {
            Some(a) if t.state == TxnState::Paid && a > 0 && a <= t.amount - t.refunded => {
                t.refunded += a;
                s.set(&t);
                v["vnp_Amount"] = Value::String((a * 100).to_string());
                v["vnp_TransactionType"] = text(&r, "vnp_TransactionType").into();
            }
            _ => {
                v["vnp_ResponseCode"] = Value::String("02".into());
                v["vnp_Message"] = Value::String("Refund amount invalid".into());
            }
        }
    }
    let answer = signed_answer(&s, v, n);
    if command == "refund" {
        super::lock(&s.inner)
            .refunds
            .insert(request_id, answer.0.clone());
        if super::losing(&s) {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    }
    answer.into_response()
}
