//! The runner's SMS channel: sign-in codes are kept in memory, not sent, and readable at
//! `GET /dev/messages` — a route only the runner has, for trying sign-in by hand and for
//! tests. (On AWS the identity function sends them through SNS.)

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use motcua_ports::identity::{CodeSender, SendError};
use serde::{Deserialize, Serialize};

/// The last messages "sent" (at most [`DevMessages::KEEP`]).
#[derive(Clone, Default)]
pub struct DevMessages {
    sent: Arc<Mutex<VecDeque<DevMessage>>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevMessage {
    /// E.164.
    pub to: String,
    pub text: String,
    pub at: jiff::Timestamp,
}

impl DevMessages {
    pub const KEEP: usize = 1000;

    /// Newest first; only those to `to` when given (with or without its `+`, which a
    /// query string turns into a space unless encoded).
    pub fn list(&self, to: Option<&str>) -> Vec<DevMessage> {
        let digits = |n: &str| n.trim().trim_start_matches('+').to_owned();
        let to = to.map(digits);
        let sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        sent.iter()
            .rev()
            .filter(|m| to.as_ref().is_none_or(|t| digits(&m.to) == *t))
            .cloned()
            .collect()
    }

    /// `GET /dev/messages[?to=+84…]`.
    pub fn routes(&self) -> Router {
        Router::new()
            .route("/dev/messages", axum::routing::get(list))
            .with_state(self.clone())
    }
}

#[async_trait]
impl CodeSender for DevMessages {
    async fn send_code(&self, phone: &str, text: &str) -> Result<(), SendError> {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        if sent.len() == Self::KEEP {
            sent.pop_front();
        }
        sent.push_back(DevMessage {
            to: phone.to_owned(),
            text: text.to_owned(),
            at: jiff::Timestamp::now(),
        });
        Ok(())
    }
}

#[derive(Deserialize)]
struct ListQuery {
    to: Option<String>,
}

async fn list(State(m): State<DevMessages>, Query(q): Query<ListQuery>) -> Response {
    let mut r = Json(m.list(q.to.as_deref())).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
