//! The national payment platform of the National Public Service Portal (PayGov): an
//! adapter whose field names, signed field orders, hash scheme and codes are
//! configuration ([`PaygovProfile`]), because its specification is not public. The
//! [`PaygovProfile::example`] is what a provincial implementation is known to use (SHA-256
//! over `|`-joined fields ending with the secret, `MaLoi == "00"`, a `QUERY` command) and
//! what the simulator speaks; a deployment sets the real one in `MOTCUA_PAYGOV_PROFILE`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use jiff::Timestamp;
use motcua_domain::Money;
use motcua_domain::calendar::vietnam_tz;
use motcua_domain::payment::{Outcome, Payment, Provider, ProviderReport};
use motcua_ports::payments::{
    CallbackError, CallbackRequest, Checkout, CheckoutRequest, PaymentProvider, ProviderError,
    RefundAnswer, RefundRequest,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::sig::{self, Encoding, HMAC_SHA256, HMAC_SHA512};
use crate::vnpay::text;

pub const MAX_CALLBACK_BYTES: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HashScheme {
    /// SHA-256 (not HMAC) of the values joined by the separator, the secret last.
    Sha256SecretLast,
    HmacSha256,
    HmacSha512,
}

/// Our names for the fields the adapter reads and writes; the profile maps each to the
/// platform's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldNames {
    pub merchant: String,
    pub txn_ref: String,
    pub amount: String,
    pub order_info: String,
    pub return_url: String,
    pub notify_url: String,
    pub time: String,
    pub result: String,
    pub transaction: String,
    pub command: String,
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaygovProfile {
    pub hash: HashScheme,
    pub separator: String,
    /// `strftime` format of times, Vietnam time.
    pub time_format: String,
    pub fields: FieldNames,
    /// The platform's field names signed, in order, in each message.
    pub pay_signed: Vec<String>,
    pub callback_signed: Vec<String>,
    pub query_signed: Vec<String>,
    pub query_answer_signed: Vec<String>,
    /// `command` of a status query.
    pub query_command: String,
    /// Result codes: paid, still pending, unknown transaction, cancelled by the payer.
    pub paid: String,
    pub pending: Vec<String>,
    pub unknown: Vec<String>,
    pub cancelled: Vec<String>,
    /// Codes of a failed payment. A code in none of the lists is not read as anything: a
    /// message with it changes nothing.
    #[serde(default)]
    pub failed: Vec<String>,
    /// Our answer's result code to a callback: accepted (and duplicates), bad signature,
    /// unknown transaction, wrong amount, anything else.
    pub answers: BTreeMap<String, String>,
}

impl PaygovProfile {
    /// The example profile (see the module's documentation).
    pub fn example() -> PaygovProfile {
        let f = |s: &str| s.to_owned();
        PaygovProfile {
            hash: HashScheme::Sha256SecretLast,
            separator: f("|"),
            time_format: f("%Y%m%d%H%M%S"),
            fields: FieldNames {
                merchant: f("MaDoiTac"),
                txn_ref: f("MaThamChieu"),
                amount: f("SoTien"),
                order_info: f("NoiDung"),
                return_url: f("UrlTraVe"),
                notify_url: f("UrlThongBao"),
                time: f("ThoiGian"),
                result: f("MaLoi"),
                transaction: f("MaGiaoDich"),
                command: f("LenhGiaoDich"),
                hash: f("MaXacThuc"),
            },
            pay_signed: [
                "MaDoiTac",
                "MaThamChieu",
                "SoTien",
                "NoiDung",
                "UrlTraVe",
                "ThoiGian",
            ]
            .map(f)
            .to_vec(),
            callback_signed: [
                "MaDoiTac",
                "MaThamChieu",
                "SoTien",
                "MaLoi",
                "MaGiaoDich",
                "ThoiGian",
            ]
            .map(f)
            .to_vec(),
            query_signed: ["LenhGiaoDich", "MaDoiTac", "MaThamChieu", "ThoiGian"]
                .map(f)
                .to_vec(),
            query_answer_signed: [
                "MaDoiTac",
                "MaThamChieu",
                "SoTien",
                "MaLoi",
                "MaGiaoDich",
                "ThoiGian",
            ]
            .map(f)
            .to_vec(),
            query_command: f("QUERY"),
            paid: f("00"),
            pending: vec![f("01")],
            unknown: vec![f("02")],
            cancelled: vec![f("24")],
            failed: vec![f("51"), f("99")],
            answers: [
                ("accepted", "00"),
                ("bad_signature", "97"),
                ("not_found", "01"),
                ("wrong_amount", "04"),
                ("error", "99"),
            ]
            .into_iter()
            .map(|(k, v)| (f(k), f(v)))
            .collect(),
        }
    }

    /// Reads a profile from JSON, checking that it names what the adapter needs.
    pub fn from_json(raw: &str) -> Result<PaygovProfile, String> {
        let p: PaygovProfile = serde_json::from_str(raw).map_err(|e| e.to_string())?;
        for (what, list) in [
            ("pay_signed", &p.pay_signed),
            ("callback_signed", &p.callback_signed),
            ("query_signed", &p.query_signed),
            ("query_answer_signed", &p.query_answer_signed),
        ] {
            if list.is_empty() {
                return Err(format!("{what} names no field"));
            }
        }
        // A callback must sign its result, reference and amount, or a signed message of
        // another kind could be read as one (review finding).
        for (what, name) in [
            ("result", &p.fields.result),
            ("txn_ref", &p.fields.txn_ref),
            ("amount", &p.fields.amount),
        ] {
            for (list, fields) in [
                ("callback_signed", &p.callback_signed),
                ("query_answer_signed", &p.query_answer_signed),
            ] {
                if !fields.contains(name) {
                    return Err(format!("{list} does not sign the {what} field {name}"));
                }
            }
        }
        if p.separator.is_empty() {
            return Err("separator is empty".into());
        }
        for k in [
            "accepted",
            "bad_signature",
            "not_found",
            "wrong_amount",
            "error",
        ] {
            if !p.answers.contains_key(k) {
                return Err(format!("answers.{k} is missing"));
            }
        }
        jiff::fmt::strtime::format(
            &p.time_format,
            &Timestamp::UNIX_EPOCH.to_zoned(vietnam_tz()),
        )
        .map_err(|e| format!("time_format: {e}"))?;
        Ok(p)
    }

    /// The signature of `fields` (in order) from `v`.
    pub fn sign(&self, secret: &[u8], v: &Value, fields: &[String]) -> String {
        let values: Vec<String> = fields.iter().map(|f| text(v, f)).collect();
        let data = values.join(&self.separator);
        match self.hash {
            HashScheme::Sha256SecretLast => {
                let mut d = data.into_bytes();
                d.extend_from_slice(self.separator.as_bytes());
                d.extend_from_slice(secret);
                sig::sha256_hex(&d)
            }
            HashScheme::HmacSha256 => sig::hmac_hex(HMAC_SHA256, secret, data.as_bytes()),
            HashScheme::HmacSha512 => sig::hmac_hex(HMAC_SHA512, secret, data.as_bytes()),
        }
    }

    /// Whether `v` carries the right signature over `fields`, compared in constant time. A
    /// signed value holding the separator is refused: the boundaries between values would
    /// be ambiguous.
    pub fn signed(&self, secret: &[u8], v: &Value, fields: &[String]) -> bool {
        if fields
            .iter()
            .any(|f| text(v, f).contains(self.separator.as_str()))
        {
            return false;
        }
        let expected = self.sign(secret, v, fields);
        let got = text(v, &self.fields.hash).to_ascii_lowercase();
        sig::ct_eq(expected.as_bytes(), got.as_bytes())
    }

    pub fn time(&self, t: Timestamp) -> String {
        t.to_zoned(vietnam_tz())
            .strftime(&self.time_format)
            .to_string()
    }

    /// What a result code means; `None` for a code the profile does not list.
    fn outcome(&self, code: &str) -> Option<Outcome> {
        let listed = |l: &[String]| l.iter().any(|c| c == code);
        if code == self.paid {
            Some(Outcome::Paid)
        } else if listed(&self.pending) {
            Some(Outcome::Pending)
        } else if listed(&self.unknown) {
            Some(Outcome::Unknown)
        } else if listed(&self.cancelled) {
            Some(Outcome::Cancelled)
        } else if listed(&self.failed) {
            Some(Outcome::Failed)
        } else {
            None
        }
    }

    /// What a verified message says; `None` when its result code is not one the profile
    /// lists.
    pub fn report_of(&self, v: &Value) -> Option<ProviderReport> {
        let f = &self.fields;
        let code = text(v, &f.result);
        let outcome = self.outcome(&code)?;
        let amount = text(v, &f.amount);
        let tx = text(v, &f.transaction);
        Some(ProviderReport {
            txn_ref: text(v, &f.txn_ref).chars().take(64).collect(),
            outcome,
            amount: (!amount.is_empty()
                && amount.len() <= 15
                && amount.bytes().all(|b| b.is_ascii_digit()))
            .then(|| amount.parse().ok().map(Money::vnd))
            .flatten(),
            code: code.chars().take(8).collect(),
            provider_transaction: (!tx.is_empty()).then(|| tx.chars().take(64).collect()),
            payer_reference: None,
            at: jiff::civil::DateTime::strptime(&self.time_format, text(v, &f.time))
                .ok()
                .and_then(|dt| dt.to_zoned(vietnam_tz()).ok())
                .map(|z| z.timestamp()),
        })
    }

    /// The body of our answer to a callback.
    pub fn answer(&self, what: &str) -> Value {
        let code = self
            .answers
            .get(what)
            .or_else(|| self.answers.get("error"))
            .cloned()
            .unwrap_or_default();
        let mut m = Map::new();
        m.insert(self.fields.result.clone(), Value::String(code));
        Value::Object(m)
    }
}

#[derive(Clone)]
pub struct PaygovConfig {
    pub merchant: String,
    pub secret: Vec<u8>,
    /// The payment page.
    pub pay_url: String,
    /// The status query endpoint.
    pub query_url: String,
    pub profile: PaygovProfile,
}

/// Reads a callback body: JSON, or a form.
pub fn parse_callback(body: &[u8]) -> Result<Value, CallbackError> {
    if body.len() > MAX_CALLBACK_BYTES {
        return Err(CallbackError::Malformed);
    }
    let raw = std::str::from_utf8(body).map_err(|_| CallbackError::Malformed)?;
    if raw.trim_start().starts_with('{') {
        let v: Value = serde_json::from_str(raw).map_err(|_| CallbackError::Malformed)?;
        return v.is_object().then_some(v).ok_or(CallbackError::Malformed);
    }
    let pairs = sig::form_pairs(raw, 40).ok_or(CallbackError::Malformed)?;
    let mut m = Map::new();
    for (k, v) in pairs {
        if m.insert(k.into_owned(), Value::String(v.into_owned()))
            .is_some()
        {
            return Err(CallbackError::Malformed);
        }
    }
    Ok(Value::Object(m))
}

pub struct Paygov {
    cfg: PaygovConfig,
    http: reqwest::Client,
}

impl Paygov {
    pub fn new(cfg: PaygovConfig) -> Paygov {
        Paygov {
            cfg,
            http: crate::client(),
        }
    }

    pub fn profile(&self) -> &PaygovProfile {
        &self.cfg.profile
    }
}

#[async_trait]
impl PaymentProvider for Paygov {
    fn provider(&self) -> Provider {
        Provider::Paygov
    }

    async fn checkout(&self, r: &CheckoutRequest<'_>) -> Result<Checkout, ProviderError> {
        let (p, prof) = (r.payment, &self.cfg.profile);
        let f = &prof.fields;
        let mut m = Map::new();
        for (k, v) in [
            (&f.merchant, self.cfg.merchant.clone()),
            (&f.txn_ref, p.txn_ref()),
            (&f.amount, p.amount.as_vnd().to_string()),
            (&f.order_info, p.order_info()),
            (&f.return_url, r.return_url.to_owned()),
            (&f.notify_url, r.ipn_url.to_owned()),
            (&f.time, prof.time(p.created_at)),
        ] {
            m.insert(k.clone(), Value::String(v));
        }
        let mut v = Value::Object(m);
        let hash = prof.sign(&self.cfg.secret, &v, &prof.pay_signed);
        v[&f.hash] = Value::String(hash);
        let mut url = self.cfg.pay_url.clone();
        url.push('?');
        for (i, (k, val)) in v.as_object().into_iter().flatten().enumerate() {
            if i > 0 {
                url.push('&');
            }
            sig::form_encode_into(&mut url, k, Encoding::Php);
            url.push('=');
            sig::form_encode_into(&mut url, val.as_str().unwrap_or_default(), Encoding::Php);
        }
        Ok(Checkout { redirect_url: url })
    }

    fn verify_callback(&self, r: &CallbackRequest<'_>) -> Result<ProviderReport, CallbackError> {
        let prof = &self.cfg.profile;
        let v = parse_callback(r.body)?;
        if text(&v, &prof.fields.hash).is_empty() {
            return Err(CallbackError::Malformed);
        }
        if !prof.signed(&self.cfg.secret, &v, &prof.callback_signed) {
            return Err(CallbackError::BadSignature);
        }
        if text(&v, &prof.fields.merchant) != self.cfg.merchant {
            return Err(CallbackError::Malformed);
        }
        let r = prof.report_of(&v).ok_or(CallbackError::Malformed)?;
        if r.txn_ref.is_empty() {
            return Err(CallbackError::Malformed);
        }
        Ok(r)
    }

    async fn query(&self, p: &Payment, now: Timestamp) -> Result<ProviderReport, ProviderError> {
        let prof = &self.cfg.profile;
        let f = &prof.fields;
        let mut m = Map::new();
        for (k, v) in [
            (&f.command, prof.query_command.clone()),
            (&f.merchant, self.cfg.merchant.clone()),
            (&f.txn_ref, p.txn_ref()),
            (&f.time, prof.time(now)),
        ] {
            m.insert(k.clone(), Value::String(v));
        }
        let mut body = Value::Object(m);
        body[&f.hash] = Value::String(prof.sign(&self.cfg.secret, &body, &prof.query_signed));
        let resp = self
            .http
            .post(&self.cfg.query_url)
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
        let v: Value = resp
            .json()
            .await
            .map_err(|_| ProviderError::Untrusted("not JSON".into()))?;
        if !prof.signed(&self.cfg.secret, &v, &prof.query_answer_signed) {
            return Err(ProviderError::Untrusted("query answer signature".into()));
        }
        let mut r = prof
            .report_of(&v)
            .ok_or_else(|| ProviderError::Untrusted("an unknown result code".into()))?;
        if r.outcome != Outcome::Unknown && r.txn_ref != p.txn_ref() {
            return Err(ProviderError::Untrusted(
                "query answer is about another order".into(),
            ));
        }
        r.txn_ref = p.txn_ref();
        Ok(r)
    }

    async fn refund(&self, _r: &RefundRequest<'_>) -> Result<RefundAnswer, ProviderError> {
        // No refund message is known for the platform: officers refund through its portal
        // and the payment stays flagged until then.
        Err(ProviderError::Refused(
            "refunds are made on the platform's portal".into(),
        ))
    }
}
