//! HTTP plumbing shared by every function: problem+json errors in two languages, bearer
//! JWT authentication, a JSON extractor with clear errors, and idempotent POSTs.

pub mod auth;
pub mod config;
pub mod decode;
pub mod id_hash;
pub mod settings;
pub use decode::{QueryParams, parse_json, parse_query};
pub mod jwks;
pub mod limits;
pub mod openapi;
pub mod problem;
mod verified;

use std::future::Future;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use motcua_domain::Lang;
use motcua_ports::{IdempotencyBegin, IdempotencyStore, StoreError, StoredResponse};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

pub use auth::{
    Authenticator, Caller, Claims, SigningKey, rotate_signing_keys, signing_keys_from_json,
    signing_keys_to_json,
};
pub use jwks::{RemoteJwks, SsoIdentity, SsoTrust};
pub use limits::{
    Lockout, PROXY_SECRET_HEADER, ProxyTrust, Reservation, client_key, client_key_of,
};
pub use problem::{NotAProblem, PROBLEM_JSON, Problem, ProblemBody, localize};

/// Where "now" comes from; the local runner can shift it to try deadlines.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The real clock, optionally shifted by a fixed number of seconds.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock {
    pub offset_secs: i64,
}

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let now = Timestamp::now();
        if self.offset_secs == 0 {
            now
        } else {
            Timestamp::from_second(now.as_second() + self.offset_secs).unwrap_or(now)
        }
    }
}

/// Requests larger than this are refused with 413 (files go through upload slots).
pub const DEFAULT_BODY_LIMIT: usize = 256 * 1024;

/// Maps a storage error to what the caller sees; never leaks the internal message.
pub fn store_problem(e: StoreError) -> Problem {
    match e {
        StoreError::Conflict => Problem::new(
            StatusCode::CONFLICT,
            "conflict",
            "Xung đột dữ liệu",
            "Conflict",
        )
        .detail(
            "Hồ sơ vừa được người khác cập nhật; hãy tải lại và thử lại",
            "The dossier was just changed by someone else; reload and retry",
        ),
        StoreError::Duplicate => Problem::new(
            StatusCode::CONFLICT,
            "duplicate",
            "Đã tồn tại",
            "Already exists",
        ),
        StoreError::BadCursor => Problem::bad_request(
            "Tham số cursor không hợp lệ",
            "The cursor parameter is not valid",
        ),
        StoreError::Unavailable(why) => {
            tracing::warn!(error = %why, "backend unavailable");
            Problem::unavailable()
        }
        StoreError::Backend(why) => {
            tracing::error!(error = %why, "backend error");
            Problem::internal()
        }
    }
}

/// A JSON body whose every failure is a clear problem: wrong content type (415), malformed
/// JSON (400) or a shape that does not fit (422), each with serde's explanation.
pub struct JsonBody<T>(pub T);

/// Refuses (415) a request whose `Content-Type` is not JSON.
pub fn require_json(headers: &HeaderMap) -> Result<(), Problem> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            let ct = ct.split(';').next().unwrap_or("").trim();
            ct == "application/json" || ct.ends_with("+json")
        });
    if is_json {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Định dạng dữ liệu không được hỗ trợ",
            "Unsupported media type",
        )
        .detail(
            "Gửi dữ liệu JSON với Content-Type: application/json",
            "Send JSON with Content-Type: application/json",
        ))
    }
}

/// The caller's language, from `Accept-Language` (Vietnamese by default).
#[derive(Debug, Clone, Copy)]
pub struct Language(pub Lang);

impl<S: Send + Sync> FromRequestParts<S> for Language {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Language(Lang::from_accept_language(
            parts
                .headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok()),
        )))
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        require_json(req.headers())?;
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body-too-large",
                    "Dữ liệu gửi lên quá lớn",
                    "Request body too large",
                )
            } else {
                Problem::bad_request("Không đọc được nội dung yêu cầu", "Could not read the body")
            }
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// The `Idempotency-Key` header, checked: 1–255 visible ASCII characters.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let s = v.to_str().unwrap_or("");
    if s.is_empty() || s.len() > 255 || !s.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(Problem::bad_request(
            "Idempotency-Key phải gồm 1–255 ký tự ASCII hiển thị",
            "Idempotency-Key must be 1-255 visible ASCII characters",
        ));
    }
    Ok(Some(s.to_owned()))
}

/// The headers of a first answer that its replays carry too.
const REPLAYED_HEADERS: &[header::HeaderName] = &[header::LOCATION, header::ETAG];

/// Runs `work` at most once per (`scope`, `key`): a retry with the same request gets the
/// first answer again; the same key with another request gets 422. Only successful answers
/// are kept: after an error the same key may be used again.
pub async fn idempotent<F, Fut>(
    store: &dyn IdempotencyStore,
    scope: &str,
    key: Option<String>,
    request_fingerprint: &[u8],
    now: Timestamp,
    ttl_secs: u64,
    work: F,
) -> Response
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Response>,
{
    let Some(key) = key else {
        return work().await;
    };
    let scoped = format!("{scope}:{key}");
    let fp = hex::encode(Sha256::digest(request_fingerprint));
    match store.begin(&scoped, &fp, now, ttl_secs).await {
        Err(e) => return store_problem(e).into_response(),
        Ok(IdempotencyBegin::Replay(r)) => {
            let mut resp = Response::new(Body::from(r.body));
            *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK);
            if let Ok(ct) = HeaderValue::from_str(&r.content_type) {
                resp.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            for (name, value) in &r.headers {
                if let (Ok(n), Ok(v)) = (
                    header::HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(value),
                ) {
                    resp.headers_mut().insert(n, v);
                }
            }
            resp.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            return resp;
        }
        Ok(IdempotencyBegin::InProgress) => {
            return Problem::new(
                StatusCode::CONFLICT,
                "idempotency-in-progress",
                "Yêu cầu đang được xử lý",
                "Request in progress",
            )
            .detail(
                "Một yêu cầu với cùng Idempotency-Key đang được xử lý; thử lại sau giây lát",
                "A request with this Idempotency-Key is still being processed; retry shortly",
            )
            .retry_after(1)
            .into_response();
        }
        Ok(IdempotencyBegin::Mismatch) => {
            return Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency-Key đã dùng cho yêu cầu khác",
                "Idempotency-Key reused",
            )
            .detail(
                "Khóa này đã được dùng với một nội dung yêu cầu khác; hãy dùng khóa mới",
                "This key was used with a different request body; use a new key",
            )
            .into_response();
        }
        Ok(IdempotencyBegin::Started) => {}
    }
    let resp = work().await;
    if !resp.status().is_success() {
        if let Err(e) = store.release(&scoped).await {
            tracing::warn!(error = %e, "could not release idempotency key");
        }
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(_) => return Problem::internal().into_response(),
    };
    let stored = StoredResponse {
        status: parts.status.as_u16(),
        content_type: parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_owned(),
        body: bytes.to_vec(),
        headers: REPLAYED_HEADERS
            .iter()
            .filter_map(|h| {
                let v = parts.headers.get(h)?.to_str().ok()?;
                Some((h.as_str().to_owned(), v.to_owned()))
            })
            .collect(),
    };
    if let Err(e) = store.complete(&scoped, &stored).await {
        // The work is done; a retry will see "in progress" until the lease ends, then redo
        // it, which the handlers' own checks keep harmless.
        tracing::warn!(error = %e, "could not record idempotent response");
    }
    Response::from_parts(parts, Body::from(bytes))
}
