//! The applicant's side: start a payment, list a dossier's payments, cancel one, and the
//! page the provider sends the browser back to (it shows our record, never changes it).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use motcua_domain::payment::{FeeDue, Outcome, Payment, PaymentStatus, Provider};
use motcua_domain::{Actor, Dossier, Role};
use motcua_http::{
    Caller, Problem, idempotency_key, idempotent, parse_json, require_json, store_problem,
};
use motcua_ports::StoreError;
use motcua_ports::payments::{CheckoutRequest, ProviderError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::settle::{self, Applied};
pub use crate::view::PaymentView;
use crate::{PayState, no_such_payment};

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
    let client_ip = crate::client_ip(&headers, &s.config.proxies);
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
    let mut waited = 0;
    for _ in 0..40 {
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
            let now = s.clock.now();
            if open.status == PaymentStatus::Created {
                // Another request is asking the provider for its page: wait for it
                // (review finding: the payment was answered without a page to go to).
                if waited < 30 {
                    waited += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
                return Err(being_confirmed(1));
            }
            if open.expires_at > now {
                return Ok((open, false));
            }
            let settled_by = open.expires_at + s.config.grace;
            if settled_by > now {
                // Past its validity, a provider's page may still take the money (review
                // finding: expired at once, paid anyway, and the payer paid twice).
                let secs = settled_by.duration_since(now).as_secs().max(1) as u64;
                return Err(being_confirmed(secs));
            }
            // Past the grace too: ask the provider before letting another start.
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

/// The fee's open payment cannot be replaced yet: try again in `secs`.
fn being_confirmed(secs: u64) -> Problem {
    Problem::new(
        StatusCode::CONFLICT,
        "payment-being-confirmed",
        "Giao dịch trước đang chờ xác nhận",
        "The previous payment is being confirmed",
    )
    .detail(
        "Cổng thanh toán có thể vẫn nhận tiền cho giao dịch trước; hãy thử lại sau, hoặc hủy giao dịch đó",
        "The provider may still take the previous payment; try again later, or cancel it",
    )
    .retry_after(secs)
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
