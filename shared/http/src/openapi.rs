//! What every route can answer besides its own statuses, written into an OpenAPI
//! document so it tells the whole truth: the framework's answers to a bad body, a missing
//! token, an outage.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, OpenApi, RefOr};

/// The one API document of every HTTP function, `docs/openapi.json`: the OpenAPI parts of
/// the functions (their `utoipa` annotations) merged. Each function serves it at
/// `GET /v1/openapi.json`, as the local runner does. A test regenerates it and fails while
/// the committed file differs (`MOTCUA_BLESS=1 cargo nextest run -p motcua-tests --test
/// openapi` rewrites it).
pub const DOCUMENT: &str = include_str!("../../../docs/openapi.json");

/// `GET` answering [`DOCUMENT`].
pub fn document_route<S: Clone + Send + Sync + 'static>() -> axum::routing::MethodRouter<S> {
    axum::routing::get(|| async {
        (
            [
                (CONTENT_TYPE, "application/json"),
                (CACHE_CONTROL, "public, max-age=300"),
            ],
            DOCUMENT,
        )
    })
}

fn add(op: &mut Operation, status: &str, description: &str) {
    op.responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| RefOr::T(ResponseBuilder::new().description(description).build()));
}

/// Adds, where an operation does not say them already: for query or header parameters 400;
/// for path parameters 404;
/// for a JSON body 400 (malformed JSON), 413 (body too large), 415 (not JSON), 422 (another shape); for an operation that
/// needs a token (`security`) 401; for every operation 500 and 503 (with `Retry-After`).
/// Declares the `bearer` (JWT) security scheme the operations name.
pub fn document_common_answers(doc: &mut OpenApi) {
    for item in doc.paths.paths.values_mut() {
        let ops = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for op in ops.into_iter().flatten() {
            let params = op.parameters.clone().unwrap_or_default();
            // A path segment that is not an id is a 404 (no such resource), not a 400.
            if params
                .iter()
                .any(|p| !matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Path))
            {
                add(op, "400", "Missing or malformed parameters");
            }
            if params
                .iter()
                .any(|p| p.name.eq_ignore_ascii_case("idempotency-key"))
            {
                add(
                    op,
                    "409",
                    "idempotency-in-progress: a request with this Idempotency-Key is still being processed; Retry-After",
                );
            }
            if params
                .iter()
                .any(|p| matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Path))
            {
                add(op, "404", "No such resource");
            }
            if op.request_body.is_some() {
                add(op, "400", "Malformed JSON");
                add(op, "413", "Body too large");
                add(op, "415", "Content-Type is not application/json");
                add(op, "422", "The body does not have the expected shape");
            }
            if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                add(
                    op,
                    "401",
                    "No valid token (missing, expired, tampered, another issuer)",
                );
            }
            add(op, "500", "Unexpected error (logged; no detail given)");
            add(
                op,
                "503",
                "Storage or a dependency unavailable; Retry-After",
            );
        }
    }
    let components = doc
        .components
        .get_or_insert_with(|| ComponentsBuilder::new().build());
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
}

/// Every (method, path) a function's OpenAPI document declares: its routed operations.
pub fn route_table(doc: &OpenApi) -> std::collections::BTreeSet<(String, String)> {
    let mut out = std::collections::BTreeSet::new();
    for (path, item) in &doc.paths.paths {
        for (m, present) in [
            ("GET", item.get.is_some()),
            ("POST", item.post.is_some()),
            ("PUT", item.put.is_some()),
            ("PATCH", item.patch.is_some()),
            ("DELETE", item.delete.is_some()),
        ] {
            if present {
                out.insert((m.to_owned(), path.clone()));
            }
        }
    }
    out
}
