//! The KPI dashboard (`dashboard/` at the repository's root: static files, no build step)
//! served by the runner at `/dashboard/`, as a province would serve it from S3 behind the
//! portal's CDN. It calls the report API on the same origin with the token given in its
//! URL fragment (`/dashboard/#token=…`).

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};

const INDEX: &str = include_str!("../../../dashboard/index.html");
const SCRIPT: &str = include_str!("../../../dashboard/dashboard.js");
const STYLE: &str = include_str!("../../../dashboard/dashboard.css");

/// What the page may load: its own files and the API on the same origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub fn routes() -> Router {
    use axum::routing::get;
    Router::new()
        .route(
            "/dashboard",
            get(|| async { Redirect::permanent("/dashboard/") }),
        )
        .route(
            "/dashboard/",
            get(|| async { file("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/dashboard/dashboard.js",
            get(|| async { file("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/dashboard/dashboard.css",
            get(|| async { file("text/css; charset=utf-8", STYLE) }),
        )
}
