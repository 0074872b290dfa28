//! Zalo Notification Service: a template Zalo approved beforehand, with its parameters, to
//! the Zalo account of a phone number.
//!
//! ```text
//! POST <url>   access_token: <token>
//!   {"phone": "84912345678", "template_id": "…", "template_data": {…}, "tracking_id": "<ref>"}
//!   200 {"error": 0, "message": "Success", "data": {"msg_id": "…"}}
//!   200 {"error": <negative>, "message": "…"}
//! ```
//! Errors that concern the recipient (no Zalo account, an invalid number, a person who
//! refused messages, a template not approved) are permanent; the rest (quota, an expired
//! access token being renewed, outages) transient.

use async_trait::async_trait;
use motcua_domain::notify::Channel;
use motcua_domain::templates::Content;
use motcua_ports::notifications::{Accepted, Outgoing, SendFailure, Sender};
use serde::Deserialize;
use serde_json::json;

/// The production endpoint of ZNS template messages.
pub const ZNS_URL: &str = "https://business.openapi.zalo.me/message/template";

/// Recipient and template errors: sending again changes nothing.
const PERMANENT: [i64; 5] = [-108, -118, -119, -131, -139];

#[derive(Clone)]
pub struct ZaloZns {
    http: reqwest::Client,
    url: String,
    access_token: String,
}

impl std::fmt::Debug for ZaloZns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZaloZns")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl ZaloZns {
    pub fn new(url: &str, access_token: &str) -> ZaloZns {
        ZaloZns {
            http: crate::client(),
            url: url.to_owned(),
            access_token: access_token.to_owned(),
        }
    }
}

#[derive(Deserialize)]
struct Answer {
    error: i64,
    #[serde(default)]
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    msg_id: String,
}

#[async_trait]
impl Sender for ZaloZns {
    fn channel(&self) -> Channel {
        Channel::Zalo
    }

    fn provider(&self) -> &'static str {
        "zalo"
    }

    async fn send(&self, m: &Outgoing<'_>) -> Result<Accepted, SendFailure> {
        let Content::Zalo {
            template_id,
            params,
        } = m.content
        else {
            return Err(SendFailure::Permanent(
                "zalo sends ZNS templates only".into(),
            ));
        };
        let r = self
            .http
            .post(&self.url)
            .header("access_token", &self.access_token)
            .json(&json!({
                "phone": m.to.trim_start_matches('+'),
                "template_id": template_id,
                "template_data": params,
                "tracking_id": m.reference.to_string(),
            }))
            .send()
            .await
            .map_err(|e| SendFailure::Transient(format!("zalo: {}", e.without_url())))?;
        if !r.status().is_success() {
            return Err(SendFailure::Transient(format!(
                "zalo: HTTP {}",
                r.status().as_u16()
            )));
        }
        let answer: Answer = r
            .json()
            .await
            .map_err(|_| SendFailure::Transient("zalo: unreadable answer".into()))?;
        match (answer.error, answer.data) {
            (0, Some(data)) => Ok(Accepted {
                provider_id: Some(data.msg_id),
            }),
            (0, None) => Err(SendFailure::Transient("zalo: no message id".into())),
            (code, _) if PERMANENT.contains(&code) => {
                Err(SendFailure::Permanent(format!("zalo: error {code}")))
            }
            (code, _) => Err(SendFailure::Transient(format!("zalo: error {code}"))),
        }
    }
}
