//! The runner's message channels: nothing leaves the machine. Every message (sign-in
//! codes, status SMS, emails, Zalo templates) is kept in memory and shown newest first at
//! `GET /dev/messages` (JSON) and `GET /dev/inbox` (a page), with each SMS's parts — routes
//! only the runner has, for trying things by hand and for tests. (On AWS the senders are
//! SNS, SES, a brandname gateway and Zalo.)

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::{Json, Router};
use motcua_domain::notify::Channel;
use motcua_domain::sms::{self, SmsEncoding};
use motcua_domain::templates::{Content, escape_html};
use motcua_ports::notifications::{Accepted, Lookup, Outgoing, SendFailure, Sender};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The last messages "sent" (at most [`DevMessages::KEEP`]).
#[derive(Clone, Default)]
pub struct DevMessages {
    sent: Arc<Mutex<VecDeque<DevMessage>>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevMessage {
    /// The sender's reference (the delivery id of a status message).
    pub id: Uuid,
    pub channel: Channel,
    /// E.164 phone or email address.
    pub to: String,
    /// The SMS text, the email's plain text, or the Zalo parameters as JSON.
    pub text: String,
    /// Email subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Email HTML body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// Zalo template id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_id: Option<String>,
    /// SMS only: parts and encoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<SmsEncoding>,
    pub at: jiff::Timestamp,
}

impl DevMessages {
    pub const KEEP: usize = 20_000;

    /// Newest first; only those to `to` when given (with or without its `+`, which a
    /// query string turns into a space unless encoded), and of `channel` when given.
    pub fn list(&self, to: Option<&str>, channel: Option<Channel>) -> Vec<DevMessage> {
        let digits = |n: &str| n.trim().trim_start_matches('+').to_lowercase();
        let to = to.map(digits);
        let sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        sent.iter()
            .rev()
            .filter(|m| to.as_ref().is_none_or(|t| digits(&m.to) == *t))
            .filter(|m| channel.is_none_or(|c| m.channel == c))
            .cloned()
            .collect()
    }

    /// How many messages are kept.
    pub fn len(&self) -> usize {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The sender of one channel, keeping its messages here.
    pub fn sender(&self, channel: Channel) -> DevSender {
        DevSender {
            messages: self.clone(),
            channel,
        }
    }

    /// `GET /dev/messages[?to=+84…&channel=sms]` and `GET /dev/inbox`.
    pub fn routes(&self) -> Router {
        Router::new()
            .route("/dev/messages", axum::routing::get(list))
            .route("/dev/inbox", axum::routing::get(inbox))
            .with_state(self.clone())
    }

    fn keep(&self, m: DevMessage) {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        if sent.len() == Self::KEEP {
            sent.pop_front();
        }
        sent.push_back(m);
    }
}

/// One channel of [`DevMessages`].
#[derive(Clone)]
pub struct DevSender {
    messages: DevMessages,
    channel: Channel,
}

#[async_trait]
impl Sender for DevSender {
    fn channel(&self) -> Channel {
        self.channel
    }

    fn provider(&self) -> &'static str {
        "dev"
    }

    async fn send(&self, m: &Outgoing<'_>) -> Result<Accepted, SendFailure> {
        let mut kept = DevMessage {
            id: m.reference,
            channel: self.channel,
            to: m.to.to_owned(),
            text: String::new(),
            subject: None,
            html: None,
            template_id: None,
            segments: None,
            encoding: None,
            at: jiff::Timestamp::now(),
        };
        match (self.channel, m.content) {
            (Channel::Sms, Content::Sms { text }) => {
                let cost = sms::cost(text);
                kept.text = text.clone();
                kept.segments = Some(cost.segments);
                kept.encoding = Some(cost.encoding);
            }
            (
                Channel::Email,
                Content::Email {
                    subject,
                    text,
                    html,
                },
            ) => {
                kept.text = text.clone();
                kept.subject = Some(subject.clone());
                kept.html = Some(html.clone());
            }
            (
                Channel::Zalo,
                Content::Zalo {
                    template_id,
                    params,
                },
            ) => {
                kept.text = serde_json::to_string(params).unwrap_or_default();
                kept.template_id = Some(template_id.clone());
            }
            _ => {
                return Err(SendFailure::Permanent(format!(
                    "the {} channel cannot send this content",
                    self.channel.as_str()
                )));
            }
        }
        self.messages.keep(kept);
        Ok(Accepted {
            provider_id: Some(m.reference.to_string()),
        })
    }

    async fn lookup(&self, reference: Uuid) -> Result<Lookup, SendFailure> {
        let sent = self.messages.sent.lock().unwrap_or_else(|p| p.into_inner());
        Ok(
            match sent
                .iter()
                .find(|m| m.id == reference && m.channel == self.channel)
            {
                Some(m) => Lookup::Accepted(Accepted {
                    provider_id: Some(m.id.to_string()),
                }),
                None => Lookup::Unknown,
            },
        )
    }
}

#[derive(Deserialize)]
struct ListQuery {
    to: Option<String>,
    channel: Option<String>,
}

fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn list(State(m): State<DevMessages>, Query(q): Query<ListQuery>) -> Response {
    let channel = q.channel.as_deref().and_then(Channel::parse);
    no_store(Json(m.list(q.to.as_deref(), channel)).into_response())
}

/// A page of the last 200 messages, newest first: what each citizen's phone and mailbox
/// would show.
async fn inbox(State(m): State<DevMessages>) -> Response {
    let mut page = String::from(
        "<!doctype html><html lang=\"vi\"><meta charset=\"utf-8\"><title>motcua: hộp thư thử</title>\
         <style>body{font-family:sans-serif;margin:2em;max-width:60em}article{border:1px solid #ccc;border-radius:6px;padding:.6em 1em;margin:.6em 0}\
         .ch{font-weight:bold;text-transform:uppercase;margin-right:1em}.meta{color:#555;font-size:.9em}pre{white-space:pre-wrap;margin:.4em 0}</style>\
         <h1>Tin nhắn đã gửi (thử nghiệm)</h1><p class=\"meta\">Không tin nhắn nào rời khỏi máy này. Mới nhất ở trên.</p>",
    );
    let all = m.list(None, None);
    if all.is_empty() {
        page.push_str("<p>Chưa có tin nhắn.</p>");
    }
    for msg in all.iter().take(200) {
        page.push_str("<article>");
        page.push_str(&format!(
            "<div class=\"meta\"><span class=\"ch\">{}</span>{} · {}",
            msg.channel.as_str(),
            escape_html(&msg.to),
            msg.at
        ));
        if let (Some(n), Some(enc)) = (msg.segments, msg.encoding) {
            let enc = match enc {
                SmsEncoding::Gsm7 => "GSM-7",
                SmsEncoding::Ucs2 => "UCS-2",
            };
            page.push_str(&format!(" · {n} phần SMS ({enc})"));
        }
        page.push_str("</div>");
        if let Some(subject) = &msg.subject {
            page.push_str(&format!("<h3>{}</h3>", escape_html(subject)));
        }
        if let Some(t) = &msg.template_id {
            page.push_str(&format!("<div>ZNS template {}</div>", escape_html(t)));
        }
        page.push_str(&format!("<pre>{}</pre></article>", escape_html(&msg.text)));
    }
    let mut r = no_store(Html(page).into_response());
    // The page runs nothing and loads nothing: message text is shown, never interpreted.
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    r
}
