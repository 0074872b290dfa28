//! The national platform's side, in the configured profile: the payment page, the
//! callback and the status query.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use motcua_domain::payment::Provider;
use serde_json::{Map, Value};

use super::{Sim, SimTxn, TxnState, corrupt, page_of, query_of, with_query};
use crate::paygov::parse_callback;
use crate::vnpay::text;

pub(super) async fn page(State(s): State<Sim>, RawQuery(q): RawQuery) -> Response {
    let prof = &s.o.paygov_profile;
    let f = &prof.fields;
    let Ok(v) = parse_callback(q.unwrap_or_default().as_bytes()) else {
        return (StatusCode::BAD_REQUEST, "malformed").into_response();
    };
    if !prof.signed(&s.o.paygov_secret, &v, &prof.pay_signed)
        || text(&v, &f.merchant) != s.o.paygov_merchant
    {
        return (StatusCode::BAD_REQUEST, "signature").into_response();
    }
    let Ok(amount) = text(&v, &f.amount).parse::<u64>() else {
        return (StatusCode::BAD_REQUEST, "amount").into_response();
    };
    let t = s.open(SimTxn {
        provider: Provider::Paygov,
        txn_ref: text(&v, &f.txn_ref),
        amount,
        order_info: text(&v, &f.order_info),
        return_url: text(&v, &f.return_url),
        ipn_url: text(&v, &f.notify_url),
        state: TxnState::Open,
        transaction_no: 0,
        paid_at: None,
        refunded: 0,
        created: text(&v, &f.time),
    });
    page_of(&t, "PayGov")
}

fn result_body(s: &Sim, t: &SimTxn, amount: u64) -> Value {
    let prof = &s.o.paygov_profile;
    let f = &prof.fields;
    let code = match t.state {
        TxnState::Paid => prof.paid.clone(),
        TxnState::Open => prof.pending.first().cloned().unwrap_or_default(),
        TxnState::Cancelled => prof.cancelled.first().cloned().unwrap_or_default(),
        TxnState::Failed => "51".to_owned(),
    };
    let mut m = Map::new();
    for (k, v) in [
        (&f.merchant, s.o.paygov_merchant.clone()),
        (&f.txn_ref, t.txn_ref.clone()),
        (&f.amount, amount.to_string()),
        (&f.result, code),
        (&f.transaction, format!("PG{}", t.transaction_no)),
        (
            &f.time,
            prof.time(t.paid_at.unwrap_or_else(jiff::Timestamp::now)),
        ),
    ] {
        m.insert(k.clone(), Value::String(v));
    }
    let mut v = Value::Object(m);
    v[&f.hash] = Value::String(prof.sign(&s.o.paygov_secret, &v, &prof.callback_signed));
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
        let h = s.o.paygov_profile.fields.hash.clone();
        body[&h] = Value::String(corrupt(&text(&body, &h)));
    }
    s.call(t, behaviour, t.ipn_url.clone(), Some(body)).await;
}

pub(super) fn return_url(s: &Sim, t: &SimTxn) -> String {
    with_query(&t.return_url, &query_of(&result_body(s, t, t.amount)))
}

pub(super) async fn query(State(s): State<Sim>, Json(r): Json<Value>) -> Response {
    let prof = &s.o.paygov_profile;
    let f = &prof.fields;
    if !prof.signed(&s.o.paygov_secret, &r, &prof.query_signed)
        || text(&r, &f.command) != prof.query_command
    {
        return (StatusCode::BAD_REQUEST, "signature").into_response();
    }
    let t = match s.txn(Provider::Paygov, &text(&r, &f.txn_ref)) {
        Some(t) => t,
        None => {
            let mut m = Map::new();
            m.insert(
                f.merchant.clone(),
                Value::String(s.o.paygov_merchant.clone()),
            );
            m.insert(f.txn_ref.clone(), Value::String(text(&r, &f.txn_ref)));
            m.insert(
                f.result.clone(),
                Value::String(prof.unknown.first().cloned().unwrap_or_default()),
            );
            let mut v = Value::Object(m);
            v[&f.hash] =
                Value::String(prof.sign(&s.o.paygov_secret, &v, &prof.query_answer_signed));
            return Json(v).into_response();
        }
    };
    let mut v = result_body(&s, &t, t.amount);
    v[&f.hash] = Value::String(prof.sign(&s.o.paygov_secret, &v, &prof.query_answer_signed));
    Json(v).into_response()
}
