//! `application/problem+json` (RFC 9457) errors, in Vietnamese or English.
//!
//! Handlers return a [`Problem`] holding both languages; the [`localize`] middleware picks
//! the caller's language from `Accept-Language` and writes the body. It also turns any
//! other error answer (an axum rejection, 404 of an unknown route, 413 of the body limit)
//! into a problem, so a caller never sees a bare text error.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use motcua_domain::{Lang, Localized};
use serde_json::{Value, json};

trait PickValue {
    fn pick_value<'a>(self, vi: &'a Value, en: &'a Value) -> &'a Value;
}

impl PickValue for Lang {
    fn pick_value<'a>(self, vi: &'a Value, en: &'a Value) -> &'a Value {
        match self {
            Lang::Vi => vi,
            Lang::En => en,
        }
    }
}

pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem in both languages, rendered by [`localize`]. Boxed: it travels in `Err`.
#[derive(Debug, Clone)]
pub struct Problem(Box<ProblemBody>);

impl std::ops::Deref for Problem {
    type Target = ProblemBody;
    fn deref(&self) -> &ProblemBody {
        &self.0
    }
}

impl std::ops::DerefMut for Problem {
    fn deref_mut(&mut self) -> &mut ProblemBody {
        &mut self.0
    }
}

#[derive(Debug, Clone)]
pub struct ProblemBody {
    pub status: StatusCode,
    /// Stable machine-readable kind, the last part of the `type` URI.
    pub kind: &'static str,
    pub title_vi: String,
    pub title_en: String,
    pub detail_vi: Option<String>,
    pub detail_en: Option<String>,
    /// An extra member (e.g. the list of field errors), in Vietnamese and in English.
    pub extra: Option<(&'static str, Value, Value)>,
    pub retry_after_secs: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &'static str, vi: &str, en: &str) -> Problem {
        Problem(Box::new(ProblemBody {
            status,
            kind,
            title_vi: vi.to_owned(),
            title_en: en.to_owned(),
            detail_vi: None,
            detail_en: None,
            extra: None,
            retry_after_secs: None,
        }))
    }

    /// The same problem under another status and kind.
    pub fn with_status(mut self, status: StatusCode, kind: &'static str) -> Problem {
        self.status = status;
        self.kind = kind;
        self
    }

    pub fn detail(mut self, vi: impl Into<String>, en: impl Into<String>) -> Problem {
        self.detail_vi = Some(vi.into());
        self.detail_en = Some(en.into());
        self
    }

    pub fn detail_from(self, what: &impl Localized) -> Problem {
        let (vi, en) = (what.message(Lang::Vi), what.message(Lang::En));
        self.detail(vi, en)
    }

    pub fn extra(mut self, name: &'static str, value: Value) -> Problem {
        self.extra = Some((name, value.clone(), value));
        self
    }

    pub fn extra_localized(mut self, name: &'static str, vi: Value, en: Value) -> Problem {
        self.extra = Some((name, vi, en));
        self
    }

    pub fn retry_after(mut self, secs: u64) -> Problem {
        self.retry_after_secs = Some(secs);
        self
    }

    pub fn type_uri(&self) -> String {
        format!("urn:motcua:problem:{}", self.kind)
    }

    pub fn body(&self, lang: Lang) -> Value {
        let mut v = json!({
            "type": self.type_uri(),
            "title": lang.pick(&self.title_vi, &self.title_en),
            "status": self.status.as_u16(),
        });
        let detail = match lang {
            Lang::Vi => &self.detail_vi,
            Lang::En => &self.detail_en,
        };
        if let Some(d) = detail {
            v["detail"] = Value::String(d.clone());
        }
        if let Some((name, vi, en)) = &self.extra {
            v[*name] = lang.pick_value(vi, en).clone();
        }
        v
    }

    pub fn render(&self, lang: Lang) -> Response {
        let body = serde_json::to_vec(&self.body(lang)).unwrap_or_default();
        let mut r = Response::new(Body::from(body));
        *r.status_mut() = self.status;
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        h.insert(
            header::CONTENT_LANGUAGE,
            HeaderValue::from_static(lang.pick("vi", "en")),
        );
        if let Some(s) = self.retry_after_secs {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }

    // Common problems.

    pub fn not_found() -> Problem {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Không tìm thấy",
            "Not found",
        )
    }

    pub fn unauthorized(vi: &str, en: &str) -> Problem {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Chưa xác thực",
            "Not authenticated",
        )
        .detail(vi, en)
    }

    pub fn forbidden(vi: &str, en: &str) -> Problem {
        Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Không có quyền",
            "Forbidden",
        )
        .detail(vi, en)
    }

    pub fn bad_request(vi: &str, en: &str) -> Problem {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Yêu cầu không hợp lệ",
            "Bad request",
        )
        .detail(vi, en)
    }

    pub fn internal() -> Problem {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Lỗi hệ thống",
            "Internal error",
        )
        .detail(
            "Đã xảy ra lỗi, vui lòng thử lại sau",
            "Something went wrong; please try again later",
        )
    }

    pub fn unavailable() -> Problem {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Hệ thống đang bận",
            "Service busy",
        )
        .detail(
            "Hệ thống tạm thời quá tải, vui lòng thử lại sau ít phút",
            "The service is temporarily overloaded; please retry shortly",
        )
        .retry_after(2)
    }
}

impl IntoResponse for Problem {
    /// The body is written by [`localize`]; without it, Vietnamese.
    fn into_response(self) -> Response {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = self.status;
        r.extensions_mut().insert(self);
        r
    }
}

/// Middleware: renders [`Problem`]s in the caller's language and wraps every other error
/// answer as a problem too.
pub async fn localize(req: Request, next: Next) -> Response {
    let lang = Lang::from_accept_language(
        req.headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    let mut resp = next.run(req).await;
    if let Some(p) = resp.extensions_mut().remove::<Problem>() {
        return p.render(lang);
    }
    if resp.extensions_mut().remove::<NotAProblem>().is_some() {
        return resp;
    }
    let status = resp.status();
    let is_problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if (status.is_client_error() || status.is_server_error()) && !is_problem {
        return generic(status).render(lang);
    }
    resp
}

/// Marks an error answer that speaks another protocol's error format (the runner's
/// S3-style object URLs answer S3's XML errors): [`localize`] leaves it as it is.
#[derive(Debug, Clone, Copy)]
pub struct NotAProblem;

/// A problem for an error answer produced outside our handlers (framework rejections).
fn generic(status: StatusCode) -> Problem {
    match status {
        StatusCode::NOT_FOUND => Problem::not_found().detail(
            "Không có tài nguyên hoặc đường dẫn này",
            "No such resource or route",
        ),
        StatusCode::METHOD_NOT_ALLOWED => Problem::new(
            status,
            "method-not-allowed",
            "Phương thức không được hỗ trợ",
            "Method not allowed",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => Problem::new(
            status,
            "body-too-large",
            "Dữ liệu gửi lên quá lớn",
            "Request body too large",
        )
        .detail(
            "Nội dung yêu cầu vượt quá giới hạn cho phép; tệp đính kèm phải tải lên riêng",
            "The request body exceeds the limit; files are uploaded separately",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => Problem::new(
            status,
            "unsupported-media-type",
            "Định dạng dữ liệu không được hỗ trợ",
            "Unsupported media type",
        )
        .detail(
            "Gửi dữ liệu JSON với Content-Type: application/json",
            "Send JSON with Content-Type: application/json",
        ),
        s if s.is_server_error() => Problem::internal(),
        s => Problem::new(s, "bad-request", "Yêu cầu không hợp lệ", "Bad request"),
    }
}
