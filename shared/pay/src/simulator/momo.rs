//! MoMo's side: create, the payment page, the IPN, query and refund.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use motcua_domain::payment::Provider;
use serde_json::{Value, json};

use super::{Sim, SimTxn, TxnState, corrupt, page_of, query_of, with_query};
use crate::momo::{CREATE_FIELDS, IPN_FIELDS, QUERY_FIELDS, REFUND_FIELDS, sign};
use crate::vnpay::text;

fn signed_by_merchant(s: &Sim, r: &Value, fields: &[&str]) -> bool {
    let expected = sign(&s.o.momo_secret, r, fields, &s.o.momo_access_key);
    crate::sig::ct_eq(expected.as_bytes(), text(r, "signature").as_bytes())
        && text(r, "partnerCode") == s.o.momo_partner_code
}

fn amount(r: &Value) -> Option<u64> {
    r.get("amount").and_then(Value::as_u64)
}

pub(super) async fn create(State(s): State<Sim>, Json(r): Json<Value>) -> Json<Value> {
    if !signed_by_merchant(&s, &r, &CREATE_FIELDS) {
        return Json(json!({"resultCode": 11007, "message": "Invalid signature."}));
    }
    let Some(a) = amount(&r).filter(|a| (1_000..=50_000_000).contains(a)) else {
        return Json(json!({"resultCode": 22, "message": "Invalid amount."}));
    };
    let t = s.open(SimTxn {
        provider: Provider::Momo,
        txn_ref: text(&r, "orderId"),
        amount: a,
        order_info: text(&r, "orderInfo"),
        return_url: text(&r, "redirectUrl"),
        ipn_url: text(&r, "ipnUrl"),
        state: TxnState::Open,
        transaction_no: 0,
        paid_at: None,
        refunded: 0,
        created: String::new(),
    });
    Json(json!({
        "partnerCode": s.o.momo_partner_code,
        "orderId": t.txn_ref,
        "requestId": text(&r, "requestId"),
        "amount": t.amount,
        "responseTime": jiff::Timestamp::now().as_millisecond(),
        "message": "Thành công.",
        "resultCode": 0,
        "payUrl": format!("{}/momo/pay/{}", s.base, t.txn_ref),
    }))
}

pub(super) async fn page(State(s): State<Sim>, Path(order): Path<String>) -> Response {
    match s.txn(Provider::Momo, &order) {
        Some(t) => page_of(&t, "MoMo"),
        None => (StatusCode::NOT_FOUND, "no such order").into_response(),
    }
}

fn result_code(t: &SimTxn) -> i64 {
    match t.state {
        TxnState::Paid => 0,
        TxnState::Cancelled => 1006,
        TxnState::Failed => 1001,
        TxnState::Open => 1000,
    }
}

/// The IPN body (also the return URL's parameters), signed.
fn result_body(s: &Sim, t: &SimTxn, amount: u64) -> Value {
    let code = result_code(t);
    let mut v = json!({
        "partnerCode": s.o.momo_partner_code,
        "orderId": t.txn_ref,
        "requestId": t.txn_ref,
        "amount": amount,
        "orderInfo": t.order_info,
        "orderType": "momo_wallet",
        "transId": t.transaction_no,
        "resultCode": code,
        "message": if code == 0 { "Thành công." } else { "Giao dịch thất bại." },
        "payType": "qr",
        "responseTime": t.paid_at.unwrap_or_else(jiff::Timestamp::now).as_millisecond(),
        "extraData": "",
    });
    v["signature"] = Value::String(sign(
        &s.o.momo_secret,
        &v,
        &IPN_FIELDS,
        &s.o.momo_access_key,
    ));
    v
}

pub(super) async fn callback(s: &Sim, t: &SimTxn, behaviour: &str) {
    let amount = if behaviour == "wrong_amount" {
        t.amount + 1_000
    } else {
        t.amount
    };
    let mut body = result_body(s, t, amount);
    if behaviour == "bad_signature" {
        body["signature"] = Value::String(corrupt(&text(&body, "signature")));
    }
    s.call(t, behaviour, t.ipn_url.clone(), Some(body)).await;
}

pub(super) fn return_url(s: &Sim, t: &SimTxn) -> String {
    with_query(&t.return_url, &query_of(&result_body(s, t, t.amount)))
}

pub(super) async fn query(State(s): State<Sim>, Json(r): Json<Value>) -> Json<Value> {
    if !signed_by_merchant(&s, &r, &QUERY_FIELDS) {
        return Json(json!({"resultCode": 11007, "message": "Invalid signature."}));
    }
    match s.txn(Provider::Momo, &text(&r, "orderId")) {
        Some(t) => Json(result_body(&s, &t, t.amount)),
        None => {
            let mut v = json!({
                "partnerCode": s.o.momo_partner_code,
                "orderId": text(&r, "orderId"),
                "requestId": text(&r, "requestId"),
                "resultCode": 42,
                "message": "Invalid orderId or orderId is not found.",
            });
            v["signature"] = Value::String(sign(
                &s.o.momo_secret,
                &v,
                &IPN_FIELDS,
                &s.o.momo_access_key,
            ));
            Json(v)
        }
    }
}

pub(super) async fn refund(State(s): State<Sim>, Json(r): Json<Value>) -> Json<Value> {
    if !signed_by_merchant(&s, &r, &REFUND_FIELDS) {
        return Json(json!({"resultCode": 11007, "message": "Invalid signature."}));
    }
    let request_id = format!("momo:{}", text(&r, "orderId"));
    let seen = super::lock(&s.inner).refunds.get(&request_id).cloned();
    if let Some(done) = seen {
        return Json(done);
    }
    let trans_id = r.get("transId").and_then(Value::as_u64).unwrap_or(0);
    let found = {
        let inner = super::lock(&s.inner);
        inner
            .txns
            .values()
            .find(|t| t.provider == Provider::Momo && t.transaction_no == trans_id)
            .cloned()
    };
    let Some(mut t) = found else {
        return Json(json!({"resultCode": 1080, "message": "Refund failed: unknown transaction."}));
    };
    match amount(&r) {
        Some(a) if t.state == TxnState::Paid && a > 0 && a <= t.amount - t.refunded => {
            t.refunded += a;
            s.set(&t);
            let done = json!({
                "partnerCode": s.o.momo_partner_code,
                "orderId": text(&r, "orderId"),
                "amount": a,
                "transId": t.transaction_no + 1_000_000,
                "resultCode": 0,
                "message": "Thành công.",
            });
            super::lock(&s.inner)
                .refunds
                .insert(request_id, done.clone());
            Json(done)
        }
        _ => Json(json!({"resultCode": 1081, "message": "Refund amount invalid."})),
    }
}
