//! The page the provider sends the payer's browser back to: it shows our record, never
//! changes it.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use motcua_domain::payment::{Payment, PaymentStatus, Provider};
use motcua_http::{Language, Problem, store_problem};
use uuid::Uuid;

use crate::{PayState, no_such_payment};

fn txn_ref_in(provider: Provider, query: &str, s: &PayState) -> Option<Uuid> {
    let name = match provider {
        Provider::Vnpay => "vnp_TxnRef".to_owned(),
        Provider::Momo => "orderId".to_owned(),
        Provider::Paygov => s.config.paygov.as_ref()?.fields.txn_ref.clone(),
    };
    motcua_pay::sig::form_pairs(query, 64)?
        .into_iter()
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| Payment::id_of_txn_ref(&v))
}

/// Where the provider sends the payer's browser back. Shows the status of our record (the
/// callback and the reconciliation job change it; this page never does) and links to the
/// portal. JSON with `Accept: application/json`.
#[utoipa::path(get, path = "/v1/payments/{provider}/return", tag = "payments",
    params(("provider" = String, Path, description = "vnpay, momo or paygov")),
    responses((status = 200, description = "The payment's status as we hold it (HTML or JSON)"),
        (status = 404, description = "Not one of our payments")))]
pub(crate) async fn return_page(
    State(s): State<PayState>,
    Language(lang): Language,
    Path(provider): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let provider = Provider::parse(&provider).ok_or_else(no_such_payment)?;
    let id =
        txn_ref_in(provider, query.as_deref().unwrap_or(""), &s).ok_or_else(no_such_payment)?;
    let p = s
        .ports
        .payments
        .get(id)
        .await
        .map_err(store_problem)?
        .filter(|p| p.provider == provider)
        .ok_or_else(no_such_payment)?;
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if wants_json {
        let mut r =
            axum::Json(serde_json::json!({"status": p.status, "dossier_code": p.dossier_code}))
                .into_response();
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return Ok(r);
    }
    let vi = lang == motcua_domain::Lang::Vi;
    let (title, text) = match (p.status, vi) {
        (PaymentStatus::Succeeded | PaymentStatus::Refunded, true) => (
            "Thanh toán thành công",
            "Lệ phí của hồ sơ đã được ghi nhận.",
        ),
        (PaymentStatus::Succeeded | PaymentStatus::Refunded, false) => {
            ("Payment received", "The dossier's fee is recorded.")
        }
        (s, true) if s.is_open() => (
            "Đang chờ xác nhận",
            "Chúng tôi đang chờ cổng thanh toán xác nhận; trạng thái sẽ được cập nhật trên cổng dịch vụ công.",
        ),
        (s, false) if s.is_open() => (
            "Waiting for confirmation",
            "We are waiting for the provider's confirmation; the portal will show the result.",
        ),
        (_, true) => (
            "Chưa thanh toán",
            "Giao dịch không thành công hoặc đã bị hủy.",
        ),
        (_, false) => (
            "Not paid",
            "The payment did not go through or was cancelled.",
        ),
    };
    let link = format!(
        "{}/ho-so/{}",
        s.config.portal_url,
        motcua_pay::sig::form_encode(p.dossier_code.as_str(), motcua_pay::sig::Encoding::Php)
    );
    let back = if vi {
        "Về cổng dịch vụ công"
    } else {
        "Back to the portal"
    };
    let html = format!(
        "<!doctype html><html lang=\"{l}\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
<body><h1>{title}</h1><p>{text}</p><p>{code}</p><p><a href=\"{link}\">{back}</a></p></body></html>",
        l = if vi { "vi" } else { "en" },
        code = p.dossier_code.as_str(),
    );
    let mut r = Html(html).into_response();
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Ok(r)
}
