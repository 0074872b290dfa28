//! A brandname-SMS gateway over a JSON API (Viettel, VNPT, eSMS and SpeedSMS all offer one;
//! this adapter speaks the common shape, with URL, brandname and key configured):
//!
//! ```text
//! POST <url>            Authorization: Bearer <key>
//!   {"brandname": "DVCTINH", "phone": "84912345678", "message": "…", "request_id": "<ref>", "unicode": false}
//!   200 {"code": "00", "message_id": "…"}
//!   200 {"code": "<error>", "message": "…"}     invalid_phone, blacklisted, unsubscribed: permanent
//!   401/403, 429, 5xx, timeouts                  transient (a key being rotated, a gateway busy)
//! GET  <url>/<request_id>  → 200 {"message_id": "…", "status": "accepted"|"delivered"|"failed"} | 404
//! ```
//! The gateway keeps our `request_id`, so after an attempt whose answer was lost the
//! dispatcher asks before sending again ([`Sender::lookup`]). It reports delivery by
//! POSTing `{"message_id", "status", "error"?}` to our receipt route, signed with
//! HMAC-SHA256 of the body in `X-Signature` ([`crate::receipt_signed`]).

use async_trait::async_trait;
use motcua_domain::notify::Channel;
use motcua_domain::templates::Content;
use motcua_ports::notifications::{Accepted, Lookup, Outgoing, SendFailure, Sender};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

#[derive(Clone)]
pub struct SmsGateway {
    http: reqwest::Client,
    url: String,
    key: String,
    brandname: String,
    unicode: bool,
}

impl std::fmt::Debug for SmsGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsGateway")
            .field("url", &self.url)
            .field("brandname", &self.brandname)
            .finish_non_exhaustive()
    }
}

/// Error codes that mean this number will never get this message.
const PERMANENT: [&str; 4] = [
    "invalid_phone",
    "blacklisted",
    "unsubscribed",
    "invalid_message",
];

#[derive(Deserialize)]
struct Answer {
    code: String,
    #[serde(default)]
    message_id: Option<String>,
}

#[derive(Deserialize)]
struct Status {
    message_id: String,
}

impl SmsGateway {
    pub fn new(url: &str, key: &str, brandname: &str, unicode: bool) -> SmsGateway {
        SmsGateway {
            http: crate::client(),
            url: url.trim_end_matches('/').to_owned(),
            key: key.to_owned(),
            brandname: brandname.to_owned(),
            unicode,
        }
    }
}

fn transport(e: reqwest::Error) -> SendFailure {
    // The error's URL holds no personal data (the number travels in the body).
    SendFailure::Transient(format!("gateway: {}", e.without_url()))
}

#[async_trait]
impl Sender for SmsGateway {
    fn channel(&self) -> Channel {
        Channel::Sms
    }

    fn provider(&self) -> &'static str {
        "gateway"
    }

    async fn send(&self, m: &Outgoing<'_>) -> Result<Accepted, SendFailure> {
        let Content::Sms { text } = m.content else {
            return Err(SendFailure::Permanent("the gateway sends SMS only".into()));
        };
        let r = self
            .http
            .post(&self.url)
            .bearer_auth(&self.key)
            .json(&json!({
                "brandname": self.brandname,
                "phone": m.to.trim_start_matches('+'),
                "message": text,
                "request_id": m.reference.to_string(),
                "unicode": self.unicode,
            }))
            .send()
            .await
            .map_err(transport)?;
        let status = r.status();
        if !status.is_success() {
            return Err(SendFailure::Transient(format!(
                "gateway: HTTP {}",
                status.as_u16()
            )));
        }
        let answer: Answer = r
            .json()
            .await
            .map_err(|_| SendFailure::Transient("gateway: unreadable answer".into()))?;
        match answer.code.as_str() {
            "00" => Ok(Accepted {
                provider_id: answer.message_id,
            }),
            code if PERMANENT.contains(&code) => {
                Err(SendFailure::Permanent(format!("gateway: {code}")))
            }
            code => Err(SendFailure::Transient(format!(
                "gateway: {}",
                code.chars().take(40).collect::<String>()
            ))),
        }
    }

    async fn lookup(&self, reference: Uuid) -> Result<Lookup, SendFailure> {
        let r = self
            .http
            .get(format!("{}/{reference}", self.url))
            .bearer_auth(&self.key)
            .send()
            .await
            .map_err(transport)?;
        match r.status().as_u16() {
            200 => {
                let s: Status = r
                    .json()
                    .await
                    .map_err(|_| SendFailure::Transient("gateway: unreadable status".into()))?;
                Ok(Lookup::Accepted(Accepted {
                    provider_id: Some(s.message_id),
                }))
            }
            404 => Ok(Lookup::Unknown),
            code => Err(SendFailure::Transient(format!("gateway: HTTP {code}"))),
        }
    }
}
