//! MoMo, all-in-one gateway v2: create, IPN, query and refund.
//!
//! Every signature is HMAC-SHA256, hex, over raw `k=v` pairs joined with `&` in the
//! documented order (no encoding); the access key is signed, never sent in a request.

use async_trait::async_trait;
use jiff::Timestamp;
use motcua_domain::Money;
use motcua_domain::payment::{Outcome, Payment, Provider, ProviderReport};
use motcua_ports::payments::{
    CallbackError, CallbackRequest, Checkout, CheckoutRequest, PaymentProvider, ProviderError,
    RefundAnswer, RefundRequest,
};
use ring::hmac;
use serde_json::{Value, json};

use crate::sig::{self, HMAC_SHA256};
use crate::vnpay::text;

/// Longest IPN body we read.
pub const MAX_IPN_BYTES: usize = 4096;

/// The IPN's signed fields, in order (the access key first, from our configuration).
pub const IPN_FIELDS: [&str; 13] = [
    "accessKey",
    "amount",
    "extraData",
    "message",
    "orderId",
    "orderInfo",
    "orderType",
    "partnerCode",
    "payType",
    "requestId",
    "responseTime",
    "resultCode",
    "transId",
];

pub const CREATE_FIELDS: [&str; 10] = [
    "accessKey",
    "amount",
    "extraData",
    "ipnUrl",
    "orderId",
    "orderInfo",
    "partnerCode",
    "redirectUrl",
    "requestId",
    "requestType",
];

pub const QUERY_FIELDS: [&str; 4] = ["accessKey", "orderId", "partnerCode", "requestId"];

pub const REFUND_FIELDS: [&str; 7] = [
    "accessKey",
    "amount",
    "description",
    "orderId",
    "partnerCode",
    "requestId",
    "transId",
];

#[derive(Clone)]
pub struct MomoConfig {
    pub partner_code: String,
    pub access_key: String,
    pub secret_key: Vec<u8>,
    /// The API base, e.g. `https://…/v2/gateway/api` (`/create`, `/query`, `/refund`).
    pub api_url: String,
    /// `payWithMethod` (wallet, cards, bank apps) or `captureWallet`.
    pub request_type: String,
}

/// The raw data of `fields` from `v` (the access key from `access_key`).
pub fn raw_data(v: &Value, fields: &[&str], access_key: &str) -> String {
    let mut out = String::with_capacity(256);
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(f);
        out.push('=');
        if *f == "accessKey" {
            out.push_str(access_key);
        } else {
            out.push_str(&text(v, f));
        }
    }
    out
}

pub fn sign(secret: &[u8], v: &Value, fields: &[&str], access_key: &str) -> String {
    sig::hmac_hex(
        HMAC_SHA256,
        secret,
        raw_data(v, fields, access_key).as_bytes(),
    )
}

/// The outcome a MoMo `resultCode` means.
pub fn outcome_of(code: i64) -> Outcome {
    match code {
        0 => Outcome::Paid,
        // Initiated, waiting for the payer; authorised, not captured; processing.
        1000 | 7000 | 7002 | 9000 => Outcome::Pending,
        // Refused by the payer.
        1006 | 1017 => Outcome::Cancelled,
        // Unknown order.
        42 => Outcome::Unknown,
        _ => Outcome::Failed,
    }
}

fn code_of(v: &Value) -> Option<i64> {
    match v.get("resultCode")? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn amount_of(v: &Value) -> Option<Money> {
    match v.get("amount")? {
        Value::Number(n) => n.as_u64().map(Money::vnd),
        Value::String(s)
            if !s.is_empty() && s.len() <= 15 && s.bytes().all(|b| b.is_ascii_digit()) =>
        {
            s.parse().ok().map(Money::vnd)
        }
        _ => None,
    }
}

fn report(v: &Value, code: i64) -> ProviderReport {
    let tx = text(v, "transId");
    let pay_type: String = text(v, "payType")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(32)
        .collect();
    ProviderReport {
        txn_ref: text(v, "orderId").chars().take(64).collect(),
        outcome: outcome_of(code),
        amount: amount_of(v),
        code: code.to_string(),
        provider_transaction: (!tx.is_empty() && tx != "0").then(|| tx.chars().take(32).collect()),
        payer_reference: (!pay_type.is_empty()).then(|| format!("MoMo {pay_type}")),
        at: match v.get("responseTime") {
            Some(Value::Number(n)) => n
                .as_i64()
                .and_then(|ms| Timestamp::from_millisecond(ms).ok()),
            _ => None,
        },
    }
}

/// Verifies an IPN body and reads it.
pub fn verify_ipn(
    body: &[u8],
    key: &hmac::Key,
    access_key: &str,
    partner_code: &str,
) -> Result<ProviderReport, CallbackError> {
    if body.len() > MAX_IPN_BYTES {
        return Err(CallbackError::Malformed);
    }
    let v: Value = serde_json::from_slice(body).map_err(|_| CallbackError::Malformed)?;
    if !v.is_object() {
        return Err(CallbackError::Malformed);
    }
    let signature = text(&v, "signature");
    if signature.is_empty() {
        return Err(CallbackError::Malformed);
    }
    let data = raw_data(&v, &IPN_FIELDS, access_key);
    if !sig::hmac_matches(key, data.as_bytes(), &signature) {
        return Err(CallbackError::BadSignature);
    }
    if text(&v, "partnerCode") != partner_code {
        return Err(CallbackError::Malformed);
    }
    let code = code_of(&v).ok_or(CallbackError::Malformed)?;
    let r = report(&v, code);
    if r.txn_ref.is_empty() || r.amount.is_none() {
        return Err(CallbackError::Malformed);
    }
    Ok(r)
}

/// MoMo behind the payment port.
pub struct Momo {
    cfg: MomoConfig,
    key: hmac::Key,
    http: reqwest::Client,
}

impl Momo {
    pub fn new(cfg: MomoConfig) -> Momo {
        let key = hmac::Key::new(HMAC_SHA256, &cfg.secret_key);
        Momo {
            cfg,
            key,
            http: crate::client(),
        }
    }

    fn signed(&self, mut body: Value, fields: &[&str]) -> Value {
        let s = sign(&self.cfg.secret_key, &body, fields, &self.cfg.access_key);
        body["signature"] = Value::String(s);
        body
    }

    async fn call(&self, path: &str, body: Value) -> Result<Value, ProviderError> {
        let url = format!("{}/{path}", self.cfg.api_url.trim_end_matches('/'));
        let resp = self
            .http
            .post(url)
            .json(&body)
            .send()
            .await
            .map_err(|e| ProviderError::Unavailable(crate::transport(&e)))?;
        if resp.status().is_server_error() {
            return Err(ProviderError::Unavailable(format!(
                "HTTP {}",
                resp.status()
            )));
        }
        resp.json::<Value>()
            .await
            .map_err(|_| ProviderError::Untrusted("not JSON".into()))
    }
}

#[async_trait]
impl PaymentProvider for Momo {
    fn provider(&self) -> Provider {
        Provider::Momo
    }

    async fn checkout(&self, r: &CheckoutRequest<'_>) -> Result<Checkout, ProviderError> {
        let p = r.payment;
        let body = self.signed(
            json!({
                "partnerCode": self.cfg.partner_code,
                "requestId": p.id.simple().to_string(),
                "amount": p.amount.as_vnd(),
                "orderId": p.txn_ref(),
                "orderInfo": p.order_info(),
                "redirectUrl": r.return_url,
                "ipnUrl": r.ipn_url,
                "requestType": self.cfg.request_type,
                "extraData": "",
                "lang": if p.locale == "en" { "en" } else { "vi" },
            }),
            &CREATE_FIELDS,
        );
        let v = self.call("create", body).await?;
        let code = code_of(&v).ok_or_else(|| ProviderError::Untrusted("no resultCode".into()))?;
        if code != 0 {
            return Err(ProviderError::Refused(code.to_string()));
        }
        let url = text(&v, "payUrl");
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(ProviderError::Untrusted("no payUrl".into()));
        }
        Ok(Checkout { redirect_url: url })
    }

    fn verify_callback(&self, r: &CallbackRequest<'_>) -> Result<ProviderReport, CallbackError> {
        verify_ipn(
            r.body,
            &self.key,
            &self.cfg.access_key,
            &self.cfg.partner_code,
        )
    }

    async fn query(&self, p: &Payment, _now: Timestamp) -> Result<ProviderReport, ProviderError> {
        let body = self.signed(
            json!({
                "partnerCode": self.cfg.partner_code,
                "requestId": uuid::Uuid::now_v7().simple().to_string(),
                "orderId": p.txn_ref(),
                "lang": "vi",
            }),
            &QUERY_FIELDS,
        );
        let v = self.call("query", body).await?;
        // The answer must be signed, over the IPN's fields (review finding: an unsigned
        // answer was trusted and settled a fee).
        let signature = text(&v, "signature");
        if signature.is_empty()
            || !sig::hmac_matches(
                &self.key,
                raw_data(&v, &IPN_FIELDS, &self.cfg.access_key).as_bytes(),
                &signature,
            )
        {
            return Err(ProviderError::Untrusted("query answer signature".into()));
        }
        let code = code_of(&v).ok_or_else(|| ProviderError::Untrusted("no resultCode".into()))?;
        if text(&v, "orderId") != p.txn_ref() && code != 42 {
            return Err(ProviderError::Untrusted(
                "query answer is about another order".into(),
            ));
        }
        let mut r = report(&v, code);
        r.txn_ref = p.txn_ref();
        Ok(r)
    }

    async fn refund(&self, r: &RefundRequest<'_>) -> Result<RefundAnswer, ProviderError> {
        let p = r.payment;
        let trans_id = p
            .receipt
            .as_ref()
            .and_then(|x| x.provider_transaction.clone())
            .and_then(|t| t.parse::<u64>().ok())
            .ok_or_else(|| ProviderError::Refused("no MoMo transaction id".into()))?;
        let body = self.signed(
            json!({
                "partnerCode": self.cfg.partner_code,
                "orderId": r.refund.id.simple().to_string(),
                "requestId": r.refund.id.simple().to_string(),
                "amount": r.refund.amount.as_vnd(),
                "transId": trans_id,
                "lang": "vi",
                "description": format!("Hoan phi {}", p.dossier_code.as_str()),
            }),
            &REFUND_FIELDS,
        );
        let v = self.call("refund", body).await?;
        let code = code_of(&v).ok_or_else(|| ProviderError::Untrusted("no resultCode".into()))?;
        let tx = text(&v, "transId");
        Ok(RefundAnswer {
            done: code == 0,
            code: code.to_string(),
            provider_reference: (!tx.is_empty()).then_some(tx),
        })
    }
}
