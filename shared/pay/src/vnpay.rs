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

/// Bytes PHP's `urlencode` keeps as they are.
const KEPT: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.';
        b += 1;
    }
    t
};

/// Upper-case hex digits.
const UPPER_HEX: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_digit() || (c >= b'A' && c <= b'F');
        b += 1;
    }
    t
};

/// Whether `s` reads the same encoded as decoded-then-encoded (PHP style): only kept
/// bytes, `+`, and `%XX` (upper-case hex) of bytes that are not kept.
fn canonical(s: &[u8]) -> bool {
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if KEPT[b as usize] || b == b'+' {
            i += 1;
        } else if b == b'%' {
            let (Some(&h), Some(&l)) = (s.get(i + 1), s.get(i + 2)) else {
                return false;
            };
            if !UPPER_HEX[h as usize] || !UPPER_HEX[l as usize] {
                return false;
            }
            let v = |c: u8| if c > b'9' { c - b'A' + 10 } else { c - b'0' };
            if KEPT[(v(h) << 4 | v(l)) as usize] {
                return false;
            }
            i += 3;
        } else {
            return false;
        }
    }
    true
}

thread_local! {
    /// The signed data of the callback being checked: one buffer per thread, reused.
    static SIGNED: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(MAX_IPN_BYTES));
}

/// A callback's `k=v` pieces, raw, in key order.
struct Raw<'a> {
    kv: [(&'a str, &'a str); MAX_PARAMS],
    n: usize,
}

impl<'a> Raw<'a> {
    fn pieces(&self) -> &[(&'a str, &'a str)] {
        &self.kv[..self.n]
    }
}

/// The pieces of `raw` in key order, if every key is letters, digits and `_` and every
/// `vnp_` value is in the canonical encoding (as VNPay sends them): then the signed data
/// is the raw pieces themselves. `None` when that does not hold (the caller decodes).
fn scan(raw: &str) -> Option<Result<Raw<'_>, CallbackError>> {
    let mut r = Raw {
        kv: [("", ""); MAX_PARAMS],
        n: 0,
    };
    let bytes = raw.as_bytes();
    let mut start = 0;
    // One pass over the bytes: pieces end at '&', keys at the first '='.
    while start < bytes.len() {
        let end = bytes[start..]
            .iter()
            .position(|b| *b == b'&')
            .map_or(bytes.len(), |i| start + i);
        if end > start {
            if r.n == MAX_PARAMS {
                return Some(Err(CallbackError::Malformed));
            }
            let part = &bytes[start..end];
            let mut eq = part.len();
            for (i, b) in part.iter().enumerate() {
                if *b == b'=' {
                    eq = i;
                    break;
                }
                if !KEY[*b as usize] {
                    return None;
                }
            }
            // Piece boundaries are ASCII bytes, so these are str boundaries too.
            let k = &raw[start..start + eq];
            let v = if eq < part.len() {
                &raw[start + eq + 1..end]
            } else {
                ""
            };
            if k.as_bytes().starts_with(b"vnp_") && !canonical(v.as_bytes()) {
                return None;
            }
            // Insertion into key order: VNPay's own order is already sorted, so this is
            // one comparison per key.
            let mut j = r.n;
            while j > 0 && key_after(r.kv[j - 1].0, k) {
                r.kv[j] = r.kv[j - 1];
                j -= 1;
            }
            r.kv[j] = (k, v);
            r.n += 1;
        }
        start = end + 1;
    }
    // A key twice is ambiguous: which one did the signer mean?
    if r.pieces().windows(2).any(|w| w[0].0 == w[1].0) {
        return Some(Err(CallbackError::Malformed));
    }
    Some(Ok(r))
}

/// Bytes a key may hold: letters, digits, `_`.
const KEY: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'_';
        b += 1;
    }
    t
};

/// Whether key `a` sorts after `b` (byte order; keys are short: no call out).
fn key_after(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x > y;
        }
    }
    a.len() > b.len()
}

/// Whether the raw pieces carry VNPay's signature over them (`None`: no hash at all).
fn raw_signed(r: &Raw<'_>, key: &hmac::Key) -> Option<bool> {
    let hash = r
        .pieces()
        .iter()
        .find(|(k, _)| *k == "vnp_SecureHash")
        .map(|(_, v)| *v)?;
    // The signed data in one reused buffer, hashed at once (many small updates cost more
    // than the hash itself).
    let tag = SIGNED.with(|buf| {
        let mut buf = buf.borrow_mut();
        buf.clear();
        for (k, v) in r.pieces() {
            if v.is_empty() || !k.starts_with("vnp_") || k.starts_with("vnp_SecureHash") {
                continue;
            }
            if !buf.is_empty() {
                buf.push(b'&');
            }
            buf.extend_from_slice(k.as_bytes());
            buf.push(b'=');
            buf.extend_from_slice(v.as_bytes());
        }
        hmac::sign(key, &buf)
    });
    Some(sig::tag_matches(tag.as_ref(), hash))
}

/// The fast path of a callback: verified and read without decoding what is not read.
/// `None` when it does not apply or the signature does not match it (the slow path then
/// decides, trying the other samples' encodings).
fn read_raw(
    raw: &str,
    key: &hmac::Key,
    tmn_code: &str,
) -> Option<Result<ProviderReport, CallbackError>> {
    let r = match scan(raw)? {
        Ok(r) => r,
        Err(e) => return Some(Err(e)),
    };
    match raw_signed(&r, key) {
        None => Some(Err(CallbackError::Malformed)),
        Some(false) => None,
        Some(true) => Some(report_from(r.pieces().iter().copied(), true, tmn_code)),
    }
}

/// Verifies the signature of VNPay parameters (an IPN or a return URL) over exactly the
/// signed fields. Decoded pairs, in key order, on success.
pub fn verify<'a>(raw: &'a str, key: &hmac::Key) -> Result<Pairs<'a>, CallbackError> {
    if raw.len() > MAX_IPN_BYTES {
        return Err(CallbackError::Malformed);
    }
    if let Some(scanned) = scan(raw) {
        let r = scanned?;
        match raw_signed(&r, key) {
            None => return Err(CallbackError::Malformed),
            Some(true) => {
                let mut pairs = Vec::with_capacity(r.n);
                for (k, v) in r.pieces() {
                    pairs.push((
                        Cow::Borrowed(*k),
                        sig::form_decode(v).ok_or(CallbackError::Malformed)?,
                    ));
                }
                return Ok(pairs);
            }
            Some(false) => {}
        }
    }
    let mut pairs = sig::form_pairs(raw, MAX_PARAMS).ok_or(CallbackError::Malformed)?;
    pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    if pairs.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(CallbackError::Malformed);
    }
    let hash = pairs
        .iter()
        .find(|(k, _)| k == "vnp_SecureHash")
        .map(|(_, v)| v.clone())
        .ok_or(CallbackError::Malformed)?;
    if sig::hmac_matches(key, &signed_bytes_of(&pairs, Encoding::Php), &hash) {
        return Ok(pairs);
    }
    if pairs.iter().any(|(_, v)| sig::ambiguous(v)) {
        for enc in OTHER_ENCODINGS {
            if sig::hmac_matches(key, &signed_bytes_of(&pairs, enc), &hash) {
                return Ok(pairs);
            }
        }
    }
    Err(CallbackError::BadSignature)
}

fn signed_bytes_of(pairs: &Pairs<'_>, enc: Encoding) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    signed_bytes(pairs, enc, &mut out);
    out
}

/// `vnp_Amount` (VND × 100) as đồng.
pub fn amount_of(raw: &str) -> Option<Money> {
    if raw.is_empty() || raw.len() > 18 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let x: u64 = raw.parse().ok()?;
    x.is_multiple_of(100).then(|| Money::vnd(x / 100))
}

/// At most `max` characters of `s`.
fn bounded(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_owned(),
        None => s.to_owned(),
    }
}

/// The payer's bank and its transaction number, letters and digits only, at most 64.
fn payer(bank: Option<&str>, bank_txn: Option<&str>) -> Option<String> {
    let mut out = String::with_capacity(32);
    for part in [bank, bank_txn].into_iter().flatten() {
        if part.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        if part.bytes().all(|b| b.is_ascii_alphanumeric()) {
            out.push_str(part);
        } else {
            out.extend(part.chars().filter(char::is_ascii_alphanumeric));
        }
    }
    out.truncate(64);
    (!out.is_empty()).then_some(out)
}

/// What a verified IPN (sorted pairs from [`verify`]) says, for terminal `tmn_code`.
pub fn report_of(
    pairs: &[(Cow<'_, str>, Cow<'_, str>)],
    tmn_code: &str,
) -> Result<ProviderReport, CallbackError> {
    report_from(
        pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())),
        false,
        tmn_code,
    )
}

/// [`report_of`] over `(key, value)` pieces, decoding the values it reads if `decode`.
fn report_from<'v>(
    fields: impl Iterator<Item = (&'v str, &'v str)>,
    decode: bool,
    tmn_code: &str,
) -> Result<ProviderReport, CallbackError> {
    let bad = CallbackError::Malformed;
    // One pass over the fields (a lookup each would compare keys many times over).
    let read = |v: &'v str| -> Result<Cow<'v, str>, CallbackError> {
        if decode {
            sig::form_decode(v).ok_or(bad)
        } else {
            Ok(Cow::Borrowed(v))
        }
    };
    let (mut tmn, mut txn_ref, mut amount, mut response, mut status) = (
        None,
        Cow::Borrowed(""),
        None,
        Cow::Borrowed(""),
        Cow::Borrowed(""),
    );
    let (mut tx, mut bank, mut bank_txn, mut pay_date) = (Cow::Borrowed(""), None, None, None);
    for (k, v) in fields {
        match k {
            "vnp_TmnCode" => tmn = Some(read(v)?),
            "vnp_TxnRef" => txn_ref = read(v)?,
            "vnp_Amount" => amount = Some(read(v)?),
            "vnp_ResponseCode" => response = read(v)?,
            "vnp_TransactionStatus" => status = read(v)?,
            "vnp_TransactionNo" => tx = read(v)?,
            "vnp_BankCode" => bank = Some(read(v)?),
            "vnp_BankTranNo" => bank_txn = Some(read(v)?),
            "vnp_PayDate" => pay_date = Some(read(v)?),
            // A result, not a request: a signed payment URL carries the same signature
            // scheme (review finding: its query, with an empty, unsigned
            // vnp_ResponseCode added, was read as a failure).
            "vnp_Command" | "vnp_ReturnUrl" | "vnp_CreateDate" => return Err(bad),
            _ => {}
        }
    }
    if tmn.as_deref() != Some(tmn_code) || txn_ref.is_empty() {
        return Err(bad);
    }
    let amount = amount_of(&amount.ok_or(bad)?).ok_or(bad)?;
    // Result fields must be present and signed (empty values are not signed).
    if response.is_empty() || status.is_empty() || tx.is_empty() {
        return Err(bad);
    }
    let outcome = match (response.as_ref(), status.as_ref()) {
        ("00", "00") => Outcome::Paid,
        ("24", _) => Outcome::Cancelled,
        (_, "01") => Outcome::Pending,
        _ => Outcome::Failed,
    };
    Ok(ProviderReport {
        txn_ref: bounded(&txn_ref, 100),
        outcome,
        amount: Some(amount),
        code: bounded(&response, 8),
        provider_transaction: Some(bounded(&tx, 64)),
        payer_reference: payer(bank.as_deref(), bank_txn.as_deref()),
        at: pay_date.as_deref().and_then(parse_vn_time),
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
        let raw = if r.body.is_empty() {
            r.query
        } else {
            std::str::from_utf8(r.body).map_err(|_| CallbackError::Malformed)?
        };
        if raw.len() > MAX_IPN_BYTES {
            return Err(CallbackError::Malformed);
        }
        if let Some(r) = read_raw(raw, &self.key, &self.cfg.tmn_code) {
            return r;
        }
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
