//! Refunds: an officer of the dossier's agency (or an admin) gives money back, naming the
//! refundable amount they expect; the amount is reserved before the provider is asked, so
//! two officers at once cannot refund more than was paid.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use motcua_domain::payment::{Payment, RefundError, RefundStatus};
use motcua_domain::{Money, Role};
use motcua_http::{
    Caller, Problem, idempotency_key, idempotent, parse_json, require_json, store_problem,
};
use motcua_ports::StoreError;
use motcua_ports::payments::{ProviderError, RefundRequest};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::pay::PaymentView;
use crate::{PayState, no_such_payment};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    /// In đồng, at least 1.
    #[schema(minimum = 1, maximum = 1_000_000_000_000u64)]
    pub amount: u64,
    /// What the officer saw as refundable: refused if that no longer holds.
    #[schema(maximum = 1_000_000_000_000u64)]
    pub expected_refundable: u64,
    /// Why (kept with the refund), 1–500 characters.
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

fn refused(e: RefundError) -> Problem {
    match e {
        RefundError::BadAmount { refundable } => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad-refund-amount",
            "Số tiền hoàn không hợp lệ",
            "Bad refund amount",
        )
        .detail(
            format!("Số tiền hoàn phải từ 1 đến {refundable}"),
            format!("The amount must be between 1 and {refundable}"),
        ),
        RefundError::Changed { actual, .. } => Problem::new(
            StatusCode::CONFLICT,
            "refundable-changed",
            "Số tiền có thể hoàn đã thay đổi",
            "The refundable amount changed",
        )
        .detail(
            format!("Hiện có thể hoàn {actual}; hãy tải lại"),
            format!("{actual} is refundable now; reload"),
        ),
        RefundError::NotPaid => Problem::new(
            StatusCode::CONFLICT,
            "not-paid",
            "Giao dịch chưa thu tiền",
            "The payment took no money",
        ),
        RefundError::InProgress => Problem::new(
            StatusCode::CONFLICT,
            "refund-in-progress",
            "Đang hoàn một khoản khác",
            "Another refund is in progress",
        ),
    }
}

/// Refunds part or all of a payment through its provider.
#[utoipa::path(post, path = "/v1/payments/{id}/refunds", tag = "payments",
    params(("id" = String, Path, description = "Payment id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = RefundBody,
    security(("bearer" = [])),
    responses((status = 200, body = PaymentView, description = "Refunded (or refused by the provider: see the refund's status)"),
        (status = 400, description = "Malformed JSON or Idempotency-Key"),
        (status = 403, description = "Not an officer or admin"),
        (status = 404, description = "No such payment (or another agency's)"),
        (status = 409, description = "Not paid, another refund in progress, or the refundable amount changed"),
        (status = 415, description = "Not JSON"),
        (status = 422, description = "Amount out of range, reason missing or too long"),
        (status = 503, description = "The provider did not answer: the refund stays requested; send the same request again")))]
pub(crate) async fn refund(
    State(s): State<PayState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    if !matches!(caller.role, Role::Officer | Role::Admin) {
        return Err(Problem::forbidden(
            "Chỉ cán bộ của cơ quan hoặc quản trị viên được hoàn tiền",
            "Only the agency's officers or admins refund",
        ));
    }
    require_json(&headers)?;
    let key = idempotency_key(&headers)?;
    let req: RefundBody = parse_json(&body)?;
    let reason = req.reason.trim().to_owned();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad-reason",
            "Lý do hoàn tiền là bắt buộc (tối đa 500 ký tự)",
            "A reason is required (at most 500 characters)",
        ));
    }
    let id = Uuid::parse_str(&id).map_err(|_| no_such_payment())?;
    let p = s
        .ports
        .payments
        .get(id)
        .await
        .map_err(store_problem)?
        .filter(|p| caller.role == Role::Admin || caller.agency.as_ref() == Some(&p.agency))
        .ok_or_else(no_such_payment)?;
    let ip = crate::client_ip(&headers, &s.config.proxies);
    let scope = format!("refunds:{}:{}", caller.subject, p.id);
    let fingerprint = format!("{}|{}|{}", req.amount, req.expected_refundable, reason);
    let now = s.clock.now();
    let by = caller.subject.clone();
    let store = s.idempotency.clone();
    Ok(idempotent(
        store.as_ref(),
        &scope,
        key,
        fingerprint.as_bytes(),
        now,
        86_400,
        || async move {
            match run(
                &s,
                p,
                &by,
                Money::vnd(req.amount),
                Money::vnd(req.expected_refundable),
                &reason,
                &ip,
            )
            .await
            {
                Ok(done) => {
                    (StatusCode::OK, axum::Json(PaymentView::of(&done, false))).into_response()
                }
                Err(problem) => problem.into_response(),
            }
        },
    )
    .await)
}

/// A refund sent again that the provider did not confirm.
fn outcome_unknown() -> Problem {
    Problem::new(
        StatusCode::CONFLICT,
        "refund-outcome-unknown",
        "Chưa rõ kết quả hoàn tiền",
        "The refund's outcome is unknown",
    )
    .detail(
        "Cổng thanh toán không xác nhận yêu cầu hoàn đã gửi; khoản tiền vẫn được giữ lại. Hãy đối chiếu với cổng thanh toán",
        "The provider did not confirm the refund already sent; the amount stays reserved. Check with the provider",
    )
}

async fn run(
    s: &PayState,
    p: Payment,
    by: &str,
    amount: Money,
    expected: Money,
    reason: &str,
    ip: &str,
) -> Result<Payment, Problem> {
    let now = s.clock.now();
    // A refund left requested by a provider that did not answer is sent again, with its
    // own id (the provider's request id), when the same amount is asked for.
    let pending = p
        .refunds
        .iter()
        .find(|r| r.status == RefundStatus::Requested)
        .cloned();
    let resend = pending.is_some();
    let (reserved, refund) = match pending {
        Some(r) if r.amount == amount => {
            // Taken before it is sent: two officers resending at once send it once, and a
            // send still in flight is not doubled (review finding).
            let taken = p
                .resend_refund(r.id, now)
                .ok_or_else(|| refused(RefundError::InProgress))?;
            match s.ports.payments.update(&taken).await {
                Ok(()) => {}
                Err(StoreError::Conflict) => return Err(refused(RefundError::InProgress)),
                Err(e) => return Err(store_problem(e)),
            }
            (taken, r)
        }
        Some(_) => return Err(refused(RefundError::InProgress)),
        None => {
            let rid = Uuid::now_v7();
            let reserved = p
                .begin_refund(rid, amount, expected, by, reason, now)
                .map_err(refused)?;
            match s.ports.payments.update(&reserved).await {
                Ok(()) => {}
                Err(StoreError::Conflict) => {
                    return Err(Problem::new(
                        StatusCode::CONFLICT,
                        "refundable-changed",
                        "Giao dịch vừa thay đổi",
                        "The payment just changed",
                    )
                    .detail("Hãy tải lại và thử lại", "Reload and try again"));
                }
                Err(e) => return Err(store_problem(e)),
            }
            let r = reserved
                .refunds
                .iter()
                .find(|r| r.id == rid)
                .cloned()
                .ok_or_else(Problem::internal)?;
            (reserved, r)
        }
    };
    let provider = s
        .ports
        .providers
        .get(reserved.provider)
        .ok_or_else(Problem::unavailable)?;
    let answer = provider
        .refund(&RefundRequest {
            payment: &reserved,
            refund: &refund,
            client_ip: ip,
            now,
        })
        .await;
    let (done, reference) = match answer {
        // Sent again, only a "done" settles it: a refusal may be the provider's answer to
        // a request it already carried out ("duplicate request"), so the amount stays
        // reserved (review finding: it was made refundable again, and refunded twice).
        Ok(a) if resend && !a.done => {
            tracing::warn!(payment = %reserved.id, code = %a.code, "refund sent again, not confirmed");
            return Err(outcome_unknown());
        }
        Ok(a) => (a.done, a.provider_reference),
        Err(ProviderError::Refused(code)) if resend => {
            tracing::warn!(payment = %reserved.id, code = %code, "refund sent again, not confirmed");
            return Err(outcome_unknown());
        }
        Err(ProviderError::Refused(code)) => {
            tracing::warn!(payment = %reserved.id, code = %code, "refund refused by the provider");
            (false, None)
        }
        Err(e) => {
            tracing::warn!(payment = %reserved.id, error = %e, "refund outcome unknown");
            return Err(Problem::unavailable().retry_after(30).detail(
                "Cổng thanh toán chưa trả lời; khoản hoàn vẫn đang chờ, hãy gửi lại đúng yêu cầu này",
                "The provider did not answer; the refund stays requested: send the same request again",
            ));
        }
    };
    // Record the answer on the latest version.
    for _ in 0..5 {
        let current = s
            .ports
            .payments
            .get(reserved.id)
            .await
            .map_err(store_problem)?
            .ok_or_else(Problem::internal)?;
        let Some(finished) =
            current.finish_refund(refund.id, done, reference.clone(), s.clock.now())
        else {
            return Ok(current);
        };
        match s.ports.payments.update(&finished).await {
            Ok(()) => return Ok(finished),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(store_problem(e)),
        }
    }
    Err(Problem::unavailable())
}
