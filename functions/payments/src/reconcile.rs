//! Reconciliation: payments left pending are asked about (MoMo may call back only once;
//! a callback may be lost) and settled by the provider's signed answer, or expired once
//! the provider no longer takes them; each day's payments are compared with the
//! providers' records and the differences reported.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jiff::civil::Date;
use motcua_domain::Role;
use motcua_domain::payment::{Outcome, Payment, PaymentStatus};
use motcua_http::{Caller, Problem, store_problem};
use motcua_ports::StoreError;
use motcua_ports::payments::{Mismatch, ReconciliationReport};
use serde::Serialize;

use crate::PayState;
use crate::settle::{self, Applied};

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Round {
    pub asked: usize,
    pub paid: usize,
    pub closed: usize,
    pub expired: usize,
    pub unreachable: usize,
}

/// Asks the providers about open payments older than the configured delay.
pub async fn reconcile(s: &PayState) -> Result<Round, StoreError> {
    let now = s.clock.now();
    let due = s
        .ports
        .payments
        .open_before(now - s.config.reconcile_after, s.config.batch)
        .await?;
    let mut round = Round::default();
    for p in due {
        let Some(provider) = s.ports.providers.get(p.provider) else {
            continue;
        };
        round.asked += 1;
        let report = match provider.query(&p, now).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(payment = %p.id, provider = p.provider.as_str(), error = %e, "not reconciled");
                round.unreachable += 1;
                continue;
            }
        };
        match settle::apply(s, p.provider, &report).await? {
            Applied::Paid { .. } | Applied::Flagged => round.paid += 1,
            Applied::Closed(_) => round.closed += 1,
            _ if matches!(report.outcome, Outcome::Pending | Outcome::Unknown)
                && now > p.expires_at + s.config.grace =>
            {
                let expired = p.close(PaymentStatus::Expired, Some(&report.code), now);
                match s.ports.payments.update(&expired).await {
                    Ok(()) => round.expired += 1,
                    Err(StoreError::Conflict) => {}
                    Err(e) => return Err(e),
                }
            }
            _ => {}
        }
    }
    Ok(round)
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Paid => "paid",
        Outcome::Failed => "failed",
        Outcome::Cancelled => "cancelled",
        Outcome::Pending => "pending",
        Outcome::Unknown => "unknown",
    }
}

fn mismatch(p: &Payment, theirs: &str, their_amount: Option<u64>, kind: &str) -> Mismatch {
    Mismatch {
        payment: p.id,
        dossier_code: p.dossier_code.as_str().to_owned(),
        provider: p.provider,
        ours: p.status.as_str().to_owned(),
        theirs: theirs.to_owned(),
        amount: p.amount.as_vnd(),
        their_amount,
        kind: kind.to_owned(),
    }
}

/// Compares every payment created on `day` with its provider's record and stores the
/// report. A payment the provider says was paid and we had not recorded is settled now
/// (and listed).
pub async fn daily_report(s: &PayState, day: Date) -> Result<ReconciliationReport, StoreError> {
    let mut report = ReconciliationReport {
        day,
        made_at: s.clock.now(),
        compared: BTreeMap::new(),
        mismatches: Vec::new(),
        unchecked: Vec::new(),
    };
    let mut after = None;
    loop {
        let page = s.ports.payments.created_on(day, after, 100).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for p in page {
            let Some(provider) = s.ports.providers.get(p.provider) else {
                report.unchecked.push(p.id);
                continue;
            };
            let theirs = match provider.query(&p, s.clock.now()).await {
                Ok(r) => r,
                Err(_) => {
                    report.unchecked.push(p.id);
                    continue;
                }
            };
            *report
                .compared
                .entry(p.provider.as_str().to_owned())
                .or_default() += 1;
            let name = outcome_name(theirs.outcome);
            let their_amount = theirs.amount.map(|a| a.as_vnd());
            if theirs.outcome == Outcome::Paid && their_amount != Some(p.amount.as_vnd()) {
                report
                    .mismatches
                    .push(mismatch(&p, name, their_amount, "amount_differs"));
            } else if theirs.outcome == Outcome::Paid && !p.status.is_paid() {
                report
                    .mismatches
                    .push(mismatch(&p, name, None, "paid_not_recorded"));
                settle::apply(s, p.provider, &theirs).await?;
            } else if theirs.outcome != Outcome::Paid && p.status.is_paid() {
                report
                    .mismatches
                    .push(mismatch(&p, name, None, "recorded_not_paid"));
            }
            let now = s.ports.payments.get(p.id).await?;
            if now.as_ref().is_some_and(|x| x.refund_due) {
                report
                    .mismatches
                    .push(mismatch(&p, name, None, "refund_due"));
            }
            // A refund sent and never confirmed: an officer checks it with the provider.
            let unconfirmed = now.as_ref().is_some_and(|x| {
                x.refunds
                    .iter()
                    .any(|r| r.status == motcua_domain::payment::RefundStatus::Requested)
            });
            if unconfirmed {
                report
                    .mismatches
                    .push(mismatch(&p, name, None, "refund_unconfirmed"));
            }
        }
    }
    s.ports.payments.put_report(&report).await?;
    Ok(report)
}

/// The reconciliation report of a day (Vietnam time): admins only.
#[utoipa::path(get, path = "/v1/payments/reconciliation/{day}", tag = "payments",
    params(("day" = String, Path, description = "YYYY-MM-DD")),
    security(("bearer" = [])),
    responses((status = 200, body = ReconciliationReport),
        (status = 400, description = "Not a date"),
        (status = 403, description = "Not an admin"),
        (status = 404, description = "No report for this day yet")))]
pub(crate) async fn report_route(
    State(s): State<PayState>,
    Caller(caller): Caller,
    Path(day): Path<String>,
) -> Result<Response, Problem> {
    if caller.role != Role::Admin {
        return Err(Problem::forbidden(
            "Chỉ quản trị viên xem báo cáo đối soát",
            "Only admins read reconciliation reports",
        ));
    }
    let day: Date = day
        .parse()
        .ok()
        .filter(|d: &Date| d.year() >= 2000 && d.year() <= 2100)
        .ok_or_else(|| {
            Problem::bad_request("Ngày phải có dạng YYYY-MM-DD", "The day must be YYYY-MM-DD")
        })?;
    let report = s
        .ports
        .payments
        .report(day)
        .await
        .map_err(store_problem)?
        .ok_or_else(|| {
            Problem::not_found()
                .detail("Chưa có báo cáo cho ngày này", "No report for this day yet")
        })?;
    Ok((StatusCode::OK, axum::Json(report)).into_response())
}
