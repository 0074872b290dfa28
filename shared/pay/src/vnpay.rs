//! VNPay, API 2.1.0: the signed payment URL, the IPN, `querydr` and `refund`.
//!
//! - Payment URL and IPN: every `vnp_*` parameter but `vnp_SecureHash(Type)`, empty values
//!   skipped, sorted by key, key and value form-encoded, joined `k=v&…`, HMAC-SHA512, hex.
//! - `querydr` and `refund`: JSON; HMAC-SHA512 over the raw values joined with `|` in the
//!   documented order, and the answer signed the same way over its own order.

use std::borrow::Cow;

use async_trait::async_trait;
use jiff::Timestamp;
use motcua_domain::Money;
use motcua_domain::calendar::vietnam_tz;
use motcua_domain::payment::{Outcome, Payment, Provider, ProviderReport};
use motcua_ports::payments::{
    CallbackError, CallbackRequest, Checkout, CheckoutRequest, PaymentProvider, ProviderError,
    RefundAnswer, RefundRequest,
};
use ring::hmac;
use serde_json::{Value, json};

use crate::sig::{self, Encoding, HMAC_SHA512, OTHER_ENCODINGS, Pairs};

pub const VERSION: &str = "2.1.0";

/// Longest IPN we read (a real one is ~600 bytes), and most parameters.
pub const MAX_IPN_BYTES: usize = 4096;
const MAX_PARAMS: usize = 40;

#[derive(Clone)]
pub struct VnpayConfig {
    /// The merchant's terminal code (`vnp_TmnCode`).
    pub tmn_code: String,
    pub hash_secret: Vec<u8>,
    /// The payment page, `…/paymentv2/vpcpay.html`.
    pub pay_url: String,
    /// The merchant web API, `…/merchant_webapi/api/transaction`.
    pub api_url: String,
    /// Our server's address, sent with `querydr` and `refund`.
    pub server_ip: String,
}

/// `yyyyMMddHHmmss` in Vietnam time, as VNPay writes dates.
pub fn vn_time(t: Timestamp) -> String {
    t.to_zoned(vietnam_tz())
        .strftime("%Y%m%d%H%M%S")
        .to_string()
}

/// Reads a VNPay date (`yyyyMMddHHmmss`, Vietnam time).
pub fn parse_vn_time(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() != 14 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = |i: usize, len: usize| {
        b[i..i + len]
            .iter()
            .fold(0i32, |acc, d| acc * 10 + i32::from(d - b'0'))
    };
    let dt = jiff::civil::DateTime::new(
        n(0, 4) as i16,
        n(4, 2) as i8,
        n(6, 2) as i8,
        n(8, 2) as i8,
        n(10, 2) as i8,
        n(12, 2) as i8,
        0,
    )
    .ok()?;
    vietnam_tz().to_timestamp(dt).ok()
}

/// The data the payment URL and the IPN sign: `pairs` without the hash fields and empty
/// values, sorted by key, form-encoded with `enc`.
pub fn signed_data<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)], enc: Encoding) -> String {
    let mut out = Vec::with_capacity(512);
    signed_bytes(pairs, enc, &mut out);
    // Form encoding yields ASCII only.
    String::from_utf8(out).unwrap_or_default()
}

/// [`signed_data`] appended to `out`, as bytes.
pub fn signed_bytes<K: AsRef<str>, V: AsRef<str>>(
    pairs: &[(K, V)],
    enc: Encoding,
    out: &mut Vec<u8>,
) {
    let mut kept: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .filter(|(k, v)| !v.is_empty() && k.starts_with("vnp_") && !k.starts_with("vnp_SecureHash"))
        .collect();
    // Already in order when they come from `verify`.
    if !kept.is_sorted_by(|a, b| a.0 <= b.0) {
        kept.sort_unstable_by(|a, b| a.0.cmp(b.0));
    }
    for (i, (k, v)) in kept.iter().enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        sig::form_encode_bytes(out, k.as_bytes(), enc);
        out.push(b'=');
        sig::form_encode_bytes(out, v.as_bytes(), enc);
    }
}

/// The hex HMAC-SHA512 of `pairs`' signed data.
pub fn sign<K: AsRef<str>, V: AsRef<str>>(secret: &[u8], pairs: &[(K, V)]) -> String {
    sig::hmac_hex(
        HMAC_SHA512,
        secret,
        signed_data(pairs, Encoding::Php).as_bytes(),
    )
}

/// The signed payment URL for `pairs`.
pub fn signed_url(base: &str, secret: &[u8], pairs: &[(&str, String)]) -> String {
    let data = signed_data(pairs, Encoding::Php);
    let hash = sig::hmac_hex(HMAC_SHA512, secret, data.as_bytes());
    format!("{base}?{data}&vnp_SecureHash={hash}")
}

thread_local! {
    /// The signed data of the callback being verified, reused: no allocation per callback.
    static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(1024));
}

/// Verifies the signature of VNPay parameters (an IPN or a return URL) over exactly the
/// signed fields. Decoded pairs on success.
pub fn verify<'a>(raw: &'a str, key: &hmac::Key) -> Result<Pairs<'a>, CallbackError> {
    if raw.len() > MAX_IPN_BYTES {
        return Err(CallbackError::Malformed);
    }
    let mut pairs = sig::form_pairs(raw, MAX_PARAMS).ok_or(CallbackError::Malformed)?;
    pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    // A key twice is ambiguous: which one did the signer mean?
    if pairs.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(CallbackError::Malformed);
    }
    let hash = pairs
        .iter()
        .find(|(k, _)| k == "vnp_SecureHash")
        .map(|(_, v)| v.clone())
        .ok_or(CallbackError::Malformed)?;
    let matches = BUF.with(|b| {
        let mut b = b.borrow_mut();
        b.clear();
        signed_bytes(&pairs, Encoding::Php, &mut b);
        sig::hmac_matches(key, &b, &hash)
    });
    if matches {
        return Ok(pairs);
    }
    if pairs.iter().any(|(_, v)| sig::ambiguous(v)) {
        for enc in OTHER_ENCODINGS {
            if sig::hmac_matches(key, signed_data(&pairs, enc).as_bytes(), &hash) {
                return Ok(pairs);
            }
        }
    }
    Err(CallbackError::BadSignature)
}

fn field<'p>(pairs: &'p [(Cow<'_, str>, Cow<'_, str>)], name: &str) -> Option<&'p str> {
    pairs
        .binary_search_by(|(k, _)| k.as_ref().cmp(name))
        .ok()
        .map(|i| pairs[i].1.as_ref())
}

/// `vnp_Amount` (VND × 100) as đồng.
pub fn amount_of(raw: &str) -> Option<Money> {
    if raw.is_empty() || raw.len() > 18 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let x: u64 = raw.parse().ok()?;
    x.is_multiple_of(100).then(|| Money::vnd(x / 100))
}

fn payer(bank: Option<&str>, bank_txn: Option<&str>) -> Option<String> {
    let parts: Vec<&str> = [bank, bank_txn]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then(|| {
        parts
            .join(" ")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == ' ')
            .take(64)
            .collect()
    })
}

/// What a verified IPN (sorted pairs from [`verify`]) says, for terminal `tmn_code`.
pub fn report_of(
    pairs: &[(Cow<'_, str>, Cow<'_, str>)],
    tmn_code: &str,
) -> Result<ProviderReport, CallbackError> {
    let get = |k| field(pairs, k);
    let bad = CallbackError::Malformed;
    if get("vnp_TmnCode") != Some(tmn_code) {
        return Err(bad);
    }
    let txn_ref = get("vnp_TxnRef").filter(|t| !t.is_empty()).ok_or(bad)?;
    let amount = amount_of(get("vnp_Amount").ok_or(bad)?).ok_or(bad)?;
    // A result, not a request: a signed payment URL carries the same signature scheme
    // (review finding: its query, with an empty, unsigned vnp_ResponseCode added, was
    // read as a failure). Result fields must be present and signed (empty values are not
    // signed); request fields must be absent.
    if ["vnp_Command", "vnp_ReturnUrl", "vnp_CreateDate"]
        .iter()
        .any(|k| get(k).is_some())
    {
        return Err(bad);
    }
    let signed = |k| get(k).filter(|v: &&str| !v.is_empty()).ok_or(bad);
    let response = signed("vnp_ResponseCode")?;
    let status = signed("vnp_TransactionStatus")?;
    signed("vnp_TransactionNo")?;
    let outcome = match (response, status) {
        ("00", "00") => Outcome::Paid,
        ("24", _) => Outcome::Cancelled,
        (_, "01") => Outcome::Pending,
        _ => Outcome::Failed,
    };
    Ok(ProviderReport {
        txn_ref: txn_ref.chars().take(100).collect(),
        outcome,
        amount: Some(amount),
        code: response.chars().take(8).collect(),
        provider_transaction: get("vnp_TransactionNo")
            .filter(|t| !t.is_empty())
            .map(|t| t.chars().take(64).collect()),
        payer_reference: payer(get("vnp_BankCode"), get("vnp_BankTranNo")),
        at: get("vnp_PayDate").and_then(parse_vn_time),
    })
}

/// The `|`-joined signature of a merchant-API request or answer.
pub fn pipe_sign(secret: &[u8], values: &[&str]) -> String {
    sig::hmac_hex(HMAC_SHA512, secret, values.join("|").as_bytes())
}

/// The fields of a `querydr` answer's signature, in order.
pub const QUERYDR_ANSWER: [&str; 15] = [
    "vnp_ResponseId",
    "vnp_Command",
    "vnp_ResponseCode",
    "vnp_Message",
    "vnp_TmnCode",
    "vnp_TxnRef",
    "vnp_Amount",
    "vnp_BankCode",
    "vnp_PayDate",
    "vnp_TransactionNo",
    "vnp_TransactionType",
    "vnp_TransactionStatus",
    "vnp_OrderInfo",
    "vnp_PromotionCode",
    "vnp_PromotionAmount",
];

/// A field of a JSON answer as text (numbers as written), `""` when absent.
pub fn text(v: &Value, name: &str) -> String {
    match v.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// Verifies a merchant-API answer's signature over `fields` (the first `n` of
/// [`QUERYDR_ANSWER`]).
pub fn answer_signed(key: &hmac::Key, v: &Value, fields: &[&str]) -> bool {
    let values: Vec<String> = fields.iter().map(|f| text(v, f)).collect();
    let data = values.join("|");
    sig::hmac_matches(key, data.as_bytes(), &text(v, "vnp_SecureHash"))
}

/// VNPay behind the payment port.
pub struct Vnpay {
    cfg: VnpayConfig,
    key: hmac::Key,
    http: reqwest::Client,
}

impl Vnpay {
    pub fn new(cfg: VnpayConfig) -> Vnpay {
        let key = hmac::Key::new(HMAC_SHA512, &cfg.hash_secret);
        Vnpay {
            cfg,
            key,
            http: crate::client(),
        }
    }

    /// The signed payment URL of `p`.
    pub fn pay_url(&self, r: &CheckoutRequest<'_>) -> String {
        let p = r.payment;
        let pairs = [
            ("vnp_Version", VERSION.to_owned()),
            ("vnp_Command", "pay".to_owned()),
            ("vnp_TmnCode", self.cfg.tmn_code.clone()),
            ("vnp_Amount", (p.amount.as_vnd() * 100).to_string()),
            ("vnp_CreateDate", vn_time(p.created_at)),
            ("vnp_ExpireDate", vn_time(p.expires_at)),
            ("vnp_CurrCode", "VND".to_owned()),
            ("vnp_IpAddr", r.client_ip.to_owned()),
            (
                "vnp_Locale",
                if p.locale == "en" { "en" } else { "vn" }.to_owned(),
            ),
            ("vnp_OrderInfo", p.order_info()),
            ("vnp_OrderType", "other".to_owned()),
            ("vnp_ReturnUrl", r.return_url.to_owned()),
            ("vnp_TxnRef", p.txn_ref()),
        ];
        signed_url(&self.cfg.pay_url, &self.cfg.hash_secret, &pairs)
    }

    async fn call(&self, body: Value) -> Result<Value, ProviderError> {
        let resp = self
            .http
            .post(&self.cfg.api_url)
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
impl PaymentProvider for Vnpay {
    fn provider(&self) -> Provider {
        Provider::Vnpay
    }

    async fn checkout(&self, r: &CheckoutRequest<'_>) -> Result<Checkout, ProviderError> {
        Ok(Checkout {
            redirect_url: self.pay_url(r),
        })
    }

    fn verify_callback(&self, r: &CallbackRequest<'_>) -> Result<ProviderReport, CallbackError> {
        // GET carries the fields in the query; POST in a form body.
        let raw = if r.query.contains("vnp_") {
            r.query
        } else {
            std::str::from_utf8(r.body).map_err(|_| CallbackError::Malformed)?
        };
        let pairs = verify(raw, &self.key)?;
        report_of(&pairs, &self.cfg.tmn_code)
    }

    async fn query(&self, p: &Payment, now: Timestamp) -> Result<ProviderReport, ProviderError> {
        let request_id = uuid::Uuid::now_v7().simple().to_string();
        let (txn_ref, order_info) = (p.txn_ref(), p.order_info());
        let (txn_date, create_date) = (vn_time(p.created_at), vn_time(now));
        let values = [
            request_id.as_str(),
            VERSION,
            "querydr",
            &self.cfg.tmn_code,
            &txn_ref,
            &txn_date,
            &create_date,
            &self.cfg.server_ip,
            &order_info,
        ];
        let body = json!({
            "vnp_RequestId": request_id,
            "vnp_Version": VERSION,
            "vnp_Command": "querydr",
            "vnp_TmnCode": self.cfg.tmn_code,
            "vnp_TxnRef": txn_ref,
            "vnp_OrderInfo": order_info,
            "vnp_TransactionDate": txn_date,
            "vnp_CreateDate": create_date,
            "vnp_IpAddr": self.cfg.server_ip,
            "vnp_SecureHash": pipe_sign(&self.cfg.hash_secret, &values),
        });
        let v = self.call(body).await?;
        if !answer_signed(&self.key, &v, &QUERYDR_ANSWER) {
            return Err(ProviderError::Untrusted("querydr answer signature".into()));
        }
        let code = text(&v, "vnp_ResponseCode");
        if code == "91" {
            return Ok(ProviderReport {
                txn_ref,
                outcome: Outcome::Unknown,
                amount: None,
                code,
                provider_transaction: None,
                payer_reference: None,
                at: None,
            });
        }
        if code != "00" {
            return Err(ProviderError::Refused(code));
        }
        if text(&v, "vnp_TxnRef") != txn_ref || text(&v, "vnp_TmnCode") != self.cfg.tmn_code {
            return Err(ProviderError::Untrusted(
                "querydr answer is about another order".into(),
            ));
        }
        let status = text(&v, "vnp_TransactionStatus");
        let outcome = match status.as_str() {
            // Paid; 05, 06 and 09 are refund states of a paid transaction.
            "00" | "05" | "06" | "09" => Outcome::Paid,
            // Not finished, or held as suspicious: ask again later.
            "01" | "07" => Outcome::Pending,
            _ => Outcome::Failed,
        };
        let tx = text(&v, "vnp_TransactionNo");
        Ok(ProviderReport {
            txn_ref,
            outcome,
            amount: amount_of(&text(&v, "vnp_Amount")),
            code: status,
            provider_transaction: (!tx.is_empty()).then_some(tx),
            payer_reference: payer(Some(&text(&v, "vnp_BankCode")), None),
            at: parse_vn_time(&text(&v, "vnp_PayDate")),
        })
    }

    async fn refund(&self, r: &RefundRequest<'_>) -> Result<RefundAnswer, ProviderError> {
        let p = r.payment;
        let request_id = r.refund.id.simple().to_string();
        let kind = if r.refund.amount == p.amount {
            "02"
        } else {
            "03"
        };
        let amount = (r.refund.amount.as_vnd() * 100).to_string();
        let tx = p
            .receipt
            .as_ref()
            .and_then(|x| x.provider_transaction.clone())
            .unwrap_or_else(|| "0".into());
        let (txn_ref, order_info) = (p.txn_ref(), p.order_info());
        let (txn_date, create_date) = (vn_time(p.created_at), vn_time(r.now));
        let by: String = r
            .refund
            .by
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .take(64)
            .collect();
        let values = [
            request_id.as_str(),
            VERSION,
            "refund",
            &self.cfg.tmn_code,
            kind,
            &txn_ref,
            &amount,
            &tx,
            &txn_date,
            &by,
            &create_date,
            &self.cfg.server_ip,
            &order_info,
        ];
        let body = json!({
            "vnp_RequestId": request_id,
            "vnp_Version": VERSION,
            "vnp_Command": "refund",
            "vnp_TmnCode": self.cfg.tmn_code,
            "vnp_TransactionType": kind,
            "vnp_TxnRef": txn_ref,
            "vnp_Amount": amount,
            "vnp_OrderInfo": order_info,
            "vnp_TransactionNo": tx,
            "vnp_TransactionDate": txn_date,
            "vnp_CreateBy": by,
            "vnp_CreateDate": create_date,
            "vnp_IpAddr": self.cfg.server_ip,
            "vnp_SecureHash": pipe_sign(&self.cfg.hash_secret, &values),
        });
        let v = self.call(body).await?;
        if !answer_signed(&self.key, &v, &QUERYDR_ANSWER[..13]) {
            return Err(ProviderError::Untrusted("refund answer signature".into()));
        }
        let code = text(&v, "vnp_ResponseCode");
        let no = text(&v, "vnp_TransactionNo");
        Ok(RefundAnswer {
            done: code == "00",
            code,
            provider_reference: (!no.is_empty()).then_some(no),
        })
    }
}
