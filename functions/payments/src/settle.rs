//! Applying a provider's verified word to our records: once, whatever the order, however
//! often it comes. Callbacks and the reconciliation job both come through here.

use jiff::Timestamp;
use motcua_domain::payment::{Observation, Payment, PaymentStatus, Provider, ProviderReport};
use motcua_domain::{Dossier, EventEnvelope};
use motcua_ports::StoreError;
use serde_json::json;

use crate::PayState;

/// What a report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The fee was paid: the dossier records it with this receipt.
    Paid { receipt: String },
    /// Money was taken for a fee no longer owed: recorded and flagged for refund.
    Flagged,
    /// Closed without money.
    Closed(PaymentStatus),
    /// Already final: acknowledged, nothing changed.
    AlreadyFinal,
    /// The amount is not ours: nothing changed.
    WrongAmount,
    /// Not one of our payments (or not this provider's).
    NotFound,
    /// Nothing final yet.
    Nothing,
}

/// Optimistic writes that lose to a concurrent one are tried again this often.
const ATTEMPTS: usize = 5;

/// The event recorded with a payment's change.
pub fn payment_event(kind: &str, p: &Payment, d: Option<&Dossier>, at: Timestamp) -> EventEnvelope {
    EventEnvelope {
        id: uuid::Uuid::now_v7(),
        kind: kind.to_owned(),
        version: 1,
        occurred_at: at,
        subject: p.dossier_id.to_string(),
        data: json!({
            "payment": p.id,
            "provider": p.provider,
            "amount": p.amount.as_vnd(),
            "fee_key": p.fee_key,
            "status": p.status,
            "receipt": p.receipt.as_ref().map(|r| r.number.clone()),
            "refund_due": p.refund_due,
            "dossier_code": p.dossier_code,
            "agency": p.agency,
            "to_status": d.map(|d| d.status.code()),
            "version": d.map(|d| d.version),
        }),
    }
}

/// Applies `report` from `provider` once.
pub async fn apply(
    s: &PayState,
    provider: Provider,
    report: &ProviderReport,
) -> Result<Applied, StoreError> {
    let Some(id) = Payment::id_of_txn_ref(&report.txn_ref) else {
        return Ok(Applied::NotFound);
    };
    for _ in 0..ATTEMPTS {
        let now = s.clock.now();
        let Some(p) = s
            .ports
            .payments
            .get(id)
            .await?
            .filter(|p| p.provider == provider)
        else {
            return Ok(Applied::NotFound);
        };
        let outcome = match p.observe(report) {
            Observation::Paid => pay(s, &p, report, false, now).await,
            Observation::PaidLate => pay(s, &p, report, true, now).await,
            Observation::Closed(status) => {
                let closed = p.close(status, Some(&report.code), now);
                s.ports
                    .payments
                    .update(&closed)
                    .await
                    .map(|_| Applied::Closed(status))
            }
            Observation::AlreadyFinal => return Ok(Applied::AlreadyFinal),
            Observation::WrongAmount => {
                tracing::warn!(
                    provider = provider.as_str(),
                    payment = %p.id,
                    "a signed report names another amount: not applied"
                );
                return Ok(Applied::WrongAmount);
            }
            Observation::Nothing => return Ok(Applied::Nothing),
        };
        match outcome {
            Err(StoreError::Conflict) => continue,
            other => return other,
        }
    }
    Err(StoreError::Unavailable(
        "the payment kept changing under us".into(),
    ))
}

/// Money taken: settles the fee with the dossier if it still owes exactly this, else
/// records the payment flagged for refund.
async fn pay(
    s: &PayState,
    p: &Payment,
    report: &ProviderReport,
    late: bool,
    now: Timestamp,
) -> Result<Applied, StoreError> {
    let dossier = s.dossiers.get(p.dossier_id).await?;
    if !late && let Some(d) = &dossier {
        let receipt = d.next_receipt();
        if let Some((paid, h)) = d.pay_online(p, &receipt, now) {
            let done = p.succeed(report, receipt.clone(), false, now);
            let e = payment_event("payment.succeeded", &done, Some(&paid), now);
            s.ports
                .payments
                .settle(&done, Some((&paid, &h)), &e)
                .await?;
            tracing::info!(
                provider = p.provider.as_str(),
                payment = %p.id,
                dossier = %p.dossier_id,
                "fee paid online"
            );
            return Ok(Applied::Paid { receipt });
        }
    }
    let receipt = format!("BL-{}-{}", p.dossier_code.as_str(), &p.txn_ref()[..12]);
    let flagged = p.succeed(report, receipt, true, now);
    let e = payment_event("payment.refund_due", &flagged, None, now);
    s.ports.payments.settle(&flagged, None, &e).await?;
    tracing::warn!(
        provider = p.provider.as_str(),
        payment = %p.id,
        late,
        "money taken for a fee no longer owed: flagged for refund"
    );
    Ok(Applied::Flagged)
}
