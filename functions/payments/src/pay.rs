//! The applicant's side: start a payment, list a dossier's payments, cancel one, and the
//! page the provider sends the browser back to (it shows our record, never changes it).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use motcua_domain::payment::{FeeDue, Outcome, Payment, PaymentStatus, Provider, Receipt, Refund};
use motcua_domain::{Actor, Dossier, Role};
use motcua_http::limits::client_key_of;
use motcua_http::{
    Caller, Language, Problem, idempotency_key, idempotent, parse_json, require_json, store_problem,
};
use motcua_ports::StoreError;
use motcua_ports::payments::{CheckoutRequest, ProviderError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::PayState;
use crate::settle::{self, Applied};

/// A payment as its applicant and the agency see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PaymentView {
    pub id: Uuid,
    pub dossier_id: Uuid,
    pub dossier_code: String,
    pub provider: Provider,
    pub status: PaymentStatus,
    #[schema(value_type = u64)]
    pub amount: u64,
    /// Where to send the payer (while the payment is open; the applicant only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_url: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: jiff::Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: jiff::Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: jiff::Timestamp,
    /// The electronic receipt, once paid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
    /// Money taken for a fee no longer owed: an officer refunds it.
    pub refund_due: bool,
    #[schema(value_type = u64)]
    pub refunded: u64,
    /// What is left to refund.
    #[schema(value_type = u64)]
    pub refundable: u64,
    pub refunds: Vec<Refund>,
}

impl PaymentView {
    pub fn of(p: &Payment, for_applicant: bool) -> PaymentView {
        PaymentView {
            id: p.id,
            dossier_id: p.dossier_id,
            dossier_code: p.dossier_code.as_str().to_owned(),
            provider: p.provider,
            status: p.status,
            amount: p.amount.as_vnd(),
            redirect_url: p
                .redirect_url
                .clone()
                .filter(|_| for_applicant && p.status.is_open()),
            created_at: p.created_at,
            expires_at: p.expires_at,
            updated_at: p.updated_at,
            receipt: p.receipt.clone(),
            refund_due: p.refund_due,
            refunded: p.refunded.as_vnd(),
            refundable: p.refundable().as_vnd(),
            // Who refunded is the agency's business.
            refunds: p
                .refunds
                .iter()
                .map(|r| Refund {
                    by: if for_applicant {
                        String::new()
                    } else {
                        r.by.clone()
                    },
                    ..r.clone()
                })
                .collect(),
        }
    }
}

/// What the applicant asks for.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartPayment {
    pub provider: Provider,
    /// The payment page's language: `vi` (default) or `en`.
    #[serde(default)]
    #[schema(pattern = "^(vi|en)$")]
    pub locale: Option<String>,
}

fn no_such_dossier() -> Problem {
    Problem::not_found().detail("Không có hồ sơ này", "No such dossier")
}

fn no_such_payment() -> Problem {
    Problem::not_found().detail("Không có giao dịch thanh toán này", "No such payment")
}

/// The dossier, if `caller` is its applicant.
async fn own_dossier(s: &PayState, caller: &Actor, id: &str) -> Result<Dossier, Problem> {
    let id = Uuid::parse_str(id).map_err(|_| no_such_dossier())?;
    s.dossiers
        .get(id)
        .await
        .map_err(store_problem)?
        .filter(|d| caller.role == Role::Citizen && caller.owns(&d.applicant.subject))
        .ok_or_else(no_such_dossier)
}

fn json<T: Serialize>(status: StatusCode, v: &T) -> Response {
    let mut r = (status, Json(v)).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    r
}

/// Pays the dossier's fee due now: the procedure's fee at submission, or the amount the
/// officer asked for. Answers the payment with the provider's page to send the payer to;
/// while one is open for the fee, that one (200) instead of a second (201).
#[utoipa::path(post, path = "/v1/dossiers/{id}/payments", tag = "payments",
    params(("id" = String, Path, description = "Dossier id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = StartPayment,
    security(("bearer" = [])),
    responses((status = 201, body = PaymentView, description = "Started: send the payer to redirect_url"),
        (status = 200, body = PaymentView, description = "The fee's open payment"),
        (status = 400, description = "Malformed JSON or Idempotency-Key"),
        (status = 404, description = "No such dossier (or not yours)"),
        (status = 409, description = "No fee is due"),
        (status = 415, description = "Not JSON"),
        (status = 422, description = "Unknown or unconfigured provider, bad locale"),
        (status = 502, description = "The provider refused the payment"),
        (status = 503, description = "The provider or the store is unavailable")))]
pub(crate) async fn start(
    State(s): State<PayState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    require_json(&headers)?;
    let key = idempotency_key(&headers)?;
    let req: StartPayment = parse_json(&body)?;
    let locale = match req.locale.as_deref() {
        None | Some("vi") => "vi",
        Some("en") => "en",
        Some(_) => {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad-locale",
                "Ngôn ngữ không hợp lệ",
                "Bad locale",
            )
            .detail("locale là vi hoặc en", "locale is vi or en"));
        }
    };
    if s.ports.providers.get(req.provider).is_none() {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "provider-not-offered",
            "Không hỗ trợ kênh thanh toán này",
            "Payment provider not offered",
        )
        .detail(
            format!(
                "Các kênh: {}",
                s.ports.providers.names().collect::<Vec<_>>().join(", ")
            ),
            format!(
                "Offered: {}",
                s.ports.providers.names().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let dossier = own_dossier(&s, &caller, &id).await?;
    let client = client_key_of(&headers, &s.config.proxies);
    let client_ip = client
        .strip_prefix("client:")
        .unwrap_or("127.0.0.1")
        .to_owned();
    let scope = format!("payments:{}:{}", caller.subject, dossier.id);
    let fingerprint = format!("{}|{locale}", req.provider.as_str());
    let now = s.clock.now();
    let store = s.idempotency.clone();
    Ok(idempotent(
        store.as_ref(),
        &scope,
        key,
        fingerprint.as_bytes(),
        now,
        86_400,
        || async move {
            match open_payment(&s, &dossier, req.provider, locale, &client_ip).await {
                Ok((p, created)) => {
                    let status = if created {
                        StatusCode::CREATED
                    } else {
                        StatusCode::OK
                    };
                    let mut r = json(status, &PaymentView::of(&p, true));
                    if let Ok(loc) = HeaderValue::from_str(&format!(
                        "/v1/dossiers/{}/payments/{}",
                        p.dossier_id, p.id
                    )) {
                        r.headers_mut().insert(header::LOCATION, loc);
                    }
                    r
                }
                Err(problem) => problem.into_response(),
            }
        },
    )
    .await)
}

/// The fee's open payment, or a new one. `true` when new.
async fn open_payment(
    s: &PayState,
    dossier: &Dossier,
    provider: Provider,
    locale: &str,
    client_ip: &str,
) -> Result<(Payment, bool), Problem> {
    for _ in 0..3 {
        let Some(due) = dossier_due(s, dossier.id).await? else {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "no-fee-due",
                "Hồ sơ không có khoản phí cần nộp",
                "No fee is due",
            )
            .detail(
                "Hồ sơ chưa có yêu cầu nộp phí, hoặc phí đã được nộp",
                "The dossier has no payment request, or the fee was paid",
            ));
        };
        if let Some(open) = s
            .ports
            .payments
            .open_for(dossier.id, due.key)
            .await
            .map_err(store_problem)?
        {
            if open.expires_at > s.clock.now() {
                return Ok((open, false));
            }
            // Past its validity: ask the provider before letting another start.
            settle_stale(s, &open).await?;
            continue;
        }
        let now = s.clock.now();
        let fresh = dossier.new_payment(
            Uuid::now_v7(),
            due,
            provider,
            locale,
            now,
            now + s.config.validity,
        );
        match s.ports.payments.open(&fresh).await {
            Ok(()) => return checkout(s, fresh, client_ip).await.map(|p| (p, true)),
            Err(StoreError::Duplicate) => continue,
            Err(e) => return Err(store_problem(e)),
        }
    }
    Err(Problem::unavailable())
}

/// The fee the dossier owes now (read again: a payment may just have settled it).
async fn dossier_due(s: &PayState, id: Uuid) -> Result<Option<FeeDue>, Problem> {
    Ok(s.dossiers
        .get(id)
        .await
        .map_err(store_problem)?
        .and_then(|d| d.fee_due()))
}

/// An open payment past its validity: settled by what its provider says, or expired.
async fn settle_stale(s: &PayState, p: &Payment) -> Result<(), Problem> {
    let provider = s
        .ports
        .providers
        .get(p.provider)
        .ok_or_else(Problem::unavailable)?;
    let report = match provider.query(p, s.clock.now()).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, payment = %p.id, "provider not asked about a stale payment");
            return Err(Problem::unavailable().retry_after(30));
        }
    };
    match settle::apply(s, p.provider, &report)
        .await
        .map_err(store_problem)?
    {
        Applied::Nothing | Applied::WrongAmount
            if matches!(report.outcome, Outcome::Pending | Outcome::Unknown) =>
        {
            let expired = p.close(PaymentStatus::Expired, Some(&report.code), s.clock.now());
            match s.ports.payments.update(&expired).await {
                Ok(()) | Err(StoreError::Conflict) => Ok(()),
                Err(e) => Err(store_problem(e)),
            }
        }
        _ => Ok(()),
    }
}

/// Asks the provider for the payment page; a refusal closes the payment.
async fn checkout(s: &PayState, p: Payment, client_ip: &str) -> Result<Payment, Problem> {
    let provider = s
        .ports
        .providers
        .get(p.provider)
        .ok_or_else(Problem::unavailable)?;
    let (ipn, back) = (
        s.config.ipn_url(p.provider.as_str()),
        s.config.return_url(p.provider.as_str()),
    );
    let answer = provider
        .checkout(&CheckoutRequest {
            payment: &p,
            client_ip,
            return_url: &back,
            ipn_url: &ipn,
            now: s.clock.now(),
        })
        .await;
    let now = s.clock.now();
    match answer {
        Ok(c) => {
            let pending = p.pending(c.redirect_url, now);
            s.ports
                .payments
                .update(&pending)
                .await
                .map_err(store_problem)?;
            Ok(pending)
        }
        Err(e) => {
            tracing::warn!(provider = p.provider.as_str(), error = %e, "checkout refused");
            let failed = p.close(PaymentStatus::Failed, None, now);
            let _ = s.ports.payments.update(&failed).await;
            Err(match e {
                ProviderError::Unavailable(_) => Problem::unavailable().retry_after(30),
                _ => Problem::new(
                    StatusCode::BAD_GATEWAY,
                    "provider-refused",
                    "Cổng thanh toán từ chối giao dịch",
                    "The payment provider refused",
                )
                .detail(
                    "Hãy thử lại hoặc chọn kênh thanh toán khác",
                    "Try again or choose another provider",
                ),
            })
        }
    }
}

/// A dossier's payments, oldest first: for its applicant, the officers of its agency and
/// admins. Anyone else gets the answer for an unknown dossier.
#[utoipa::path(get, path = "/v1/dossiers/{id}/payments", tag = "payments",
    params(("id" = String, Path, description = "Dossier id")),
    security(("bearer" = [])),
    responses((status = 200, body = [PaymentView]),
        (status = 404, description = "No such dossier (or not yours)")))]
pub(crate) async fn list(
    State(s): State<PayState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let id = Uuid::parse_str(&id).map_err(|_| no_such_dossier())?;
    let dossier = s
        .dossiers
        .get(id)
        .await
        .map_err(store_problem)?
        .filter(|d| d.visible_to(&caller) && caller.role != Role::System)
        .ok_or_else(no_such_dossier)?;
    let applicant = caller.role == Role::Citizen;
    let list: Vec<PaymentView> = s
        .ports
        .payments
        .for_dossier(dossier.id)
        .await
        .map_err(store_problem)?
        .iter()
        .map(|p| PaymentView::of(p, applicant))
        .collect();
    Ok(json(StatusCode::OK, &list))
}

/// The applicant gives up an open payment (to pay another way). If the payer completes it
/// at the provider anyway, the money is recorded and flagged for refund.
#[utoipa::path(post, path = "/v1/payments/{id}/cancel", tag = "payments",
    params(("id" = String, Path, description = "Payment id")),
    security(("bearer" = [])),
    responses((status = 200, body = PaymentView),
        (status = 404, description = "No such payment (or not yours)"),
        (status = 409, description = "The payment is no longer open")))]
pub(crate) async fn cancel(
    State(s): State<PayState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let id = Uuid::parse_str(&id).map_err(|_| no_such_payment())?;
    for _ in 0..3 {
        let p = s
            .ports
            .payments
            .get(id)
            .await
            .map_err(store_problem)?
            .filter(|p| caller.role == Role::Citizen && caller.owns(&p.applicant))
            .ok_or_else(no_such_payment)?;
        if p.status == PaymentStatus::Cancelled {
            return Ok(json(StatusCode::OK, &PaymentView::of(&p, true)));
        }
        if !p.status.is_open() {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "payment-not-open",
                "Giao dịch đã kết thúc",
                "The payment is no longer open",
            ));
        }
        let cancelled = p.close(PaymentStatus::Cancelled, None, s.clock.now());
        match s.ports.payments.update(&cancelled).await {
            Ok(()) => return Ok(json(StatusCode::OK, &PaymentView::of(&cancelled, true))),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(store_problem(e)),
        }
    }
    Err(Problem::unavailable())
}

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
        return Ok(json(
            StatusCode::OK,
            &serde_json::json!({"status": p.status, "dossier_code": p.dossier_code}),
        ));
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
