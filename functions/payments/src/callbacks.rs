//! The providers' callbacks: public routes whose only credential is the provider's
//! signature over exactly the fields it signs. Verified, looked up, checked against our
//! amount, applied once ([`crate::settle`]), and answered in the provider's own format.
//! A forged callback changes nothing and is logged without the payer's data.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use motcua_domain::payment::{Provider, ProviderReport};
use motcua_http::Problem;
use motcua_ports::StoreError;
use motcua_ports::payments::{CallbackError, CallbackRequest};
use serde_json::{Value, json};

use crate::PayState;
use crate::settle::{self, Applied};

/// What became of a callback, before the provider's wording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Applied(Applied),
    Refused(CallbackError),
    /// Our store failed: the provider should call again.
    Retry,
    /// The provider is not configured here.
    NotOffered,
}

/// Verifies and applies one callback.
pub async fn take(s: &PayState, provider: Provider, query: &str, body: &[u8]) -> Verdict {
    let Some(adapter) = s.ports.providers.get(provider) else {
        return Verdict::NotOffered;
    };
    let report: ProviderReport = match adapter.verify_callback(&CallbackRequest { query, body }) {
        Ok(r) => r,
        Err(e) => {
            // Logged without the fields: they carry the payer's bank references.
            tracing::warn!(
                provider = provider.as_str(),
                problem = %e,
                bytes = query.len() + body.len(),
                "callback refused"
            );
            return Verdict::Refused(e);
        }
    };
    match settle::apply(s, provider, &report).await {
        Ok(a) => {
            if a == Applied::NotFound {
                tracing::warn!(
                    provider = provider.as_str(),
                    "signed callback for an unknown payment"
                );
            }
            Verdict::Applied(a)
        }
        Err(e) => {
            let level_error = matches!(e, StoreError::Backend(_));
            if level_error {
                tracing::error!(provider = provider.as_str(), error = %e, "callback not applied");
            } else {
                tracing::warn!(provider = provider.as_str(), error = %e, "callback not applied");
            }
            Verdict::Retry
        }
    }
}

/// VNPay's answer: `{"RspCode": …, "Message": …}`, always HTTP 200.
fn vnpay_answer(v: Verdict) -> Response {
    let (code, message) = match v {
        Verdict::Applied(Applied::AlreadyFinal) => ("02", "Order already confirmed"),
        Verdict::Applied(Applied::NotFound) => ("01", "Order not found"),
        Verdict::Applied(Applied::WrongAmount) => ("04", "Invalid amount"),
        Verdict::Applied(_) => ("00", "Confirm Success"),
        Verdict::Refused(CallbackError::BadSignature) => ("97", "Invalid signature"),
        Verdict::Refused(CallbackError::Malformed) => ("99", "Invalid request"),
        Verdict::Retry | Verdict::NotOffered => ("99", "Unknown error"),
    };
    Json(json!({"RspCode": code, "Message": message})).into_response()
}

/// VNPay's IPN, as a GET with the fields in the query.
/// The query holds every `vnp_*` field VNPay signs, and `vnp_SecureHash`.
#[utoipa::path(get, path = "/v1/payments/vnpay/ipn", tag = "provider callbacks",
    responses((status = 200, description = "VNPay's answer format: RspCode 00 confirmed, 01 order not found, 02 already confirmed, 04 invalid amount, 97 invalid signature, 99 other")))]
pub(crate) async fn vnpay_ipn_get(State(s): State<PayState>, RawQuery(q): RawQuery) -> Response {
    vnpay_answer(take(&s, Provider::Vnpay, q.as_deref().unwrap_or(""), b"").await)
}

/// VNPay's IPN, as a POST with the fields in a form body.
#[utoipa::path(post, path = "/v1/payments/vnpay/ipn", tag = "provider callbacks",
    request_body(content = String, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "VNPay's answer format (as for GET)")))]
pub(crate) async fn vnpay_ipn_post(
    State(s): State<PayState>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    vnpay_answer(take(&s, Provider::Vnpay, q.as_deref().unwrap_or(""), &body).await)
}

/// MoMo's IPN: JSON, HMAC-SHA256 signed. Answered 204 when taken (applied, or already
/// final), as MoMo expects.
#[utoipa::path(post, path = "/v1/payments/momo/ipn", tag = "provider callbacks",
    request_body(content = Object, content_type = "application/json"),
    responses((status = 204, description = "Taken"),
        (status = 400, description = "Not JSON"),
        (status = 401, description = "Not signed by MoMo"),
        (status = 404, description = "Not one of our payments"),
        (status = 422, description = "Not MoMo's notification, or the amount is not ours"),
        (status = 503, description = "Not applied now: call again")))]
pub(crate) async fn momo_ipn(
    State(s): State<PayState>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(p) = motcua_http::require_json(&headers) {
        return p.into_response();
    }
    if serde_json::from_slice::<Value>(&body).is_err() {
        return Problem::bad_request("Nội dung không phải JSON", "The body is not JSON")
            .into_response();
    }
    match take(&s, Provider::Momo, "", &body).await {
        Verdict::Applied(Applied::NotFound) | Verdict::NotOffered => Problem::not_found()
            .detail("Không có giao dịch này", "No such payment")
            .into_response(),
        Verdict::Applied(Applied::WrongAmount) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong-amount",
            "Số tiền không khớp",
            "The amount does not match",
        )
        .into_response(),
        Verdict::Applied(_) => StatusCode::NO_CONTENT.into_response(),
        Verdict::Refused(CallbackError::BadSignature) => {
            Problem::unauthorized("Sai chữ ký", "The signature does not match").into_response()
        }
        Verdict::Refused(CallbackError::Malformed) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "malformed-notification",
            "Thông báo không đúng định dạng của MoMo",
            "Not a MoMo notification",
        )
        .into_response(),
        Verdict::Retry => Problem::unavailable().retry_after(5).into_response(),
    }
}

/// The national platform's confirmation: JSON or a form, signed as its profile says;
/// answered with the profile's result field and codes.
#[utoipa::path(post, path = "/v1/payments/paygov/confirm", tag = "provider callbacks",
    request_body(content = Object, content_type = "application/json"),
    responses((status = 200, description = "The platform's answer format: its result field with the configured code (accepted, bad signature, not found, wrong amount, error)"),
        (status = 404, description = "The platform is not offered here")))]
pub(crate) async fn paygov_confirm(State(s): State<PayState>, body: Bytes) -> Response {
    let Some(profile) = s.config.paygov.clone() else {
        return Problem::not_found().into_response();
    };
    let what = match take(&s, Provider::Paygov, "", &body).await {
        Verdict::Applied(Applied::NotFound) => "not_found",
        Verdict::Applied(Applied::WrongAmount) => "wrong_amount",
        Verdict::Applied(_) => "accepted",
        Verdict::Refused(CallbackError::BadSignature) => "bad_signature",
        Verdict::Refused(CallbackError::Malformed) | Verdict::Retry | Verdict::NotOffered => {
            "error"
        }
    };
    let v: Value = profile.answer(what);
    Json(v).into_response()
}
