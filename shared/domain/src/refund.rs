//! Refunds of a payment: the amount is reserved before the provider is asked, and a
//! refund names the refundable amount it expects, so two officers at once cannot give
//! back more than was paid.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::money::Money;
use crate::payment::{Payment, PaymentStatus};

/// One refund of a payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Refund {
    pub id: Uuid,
    #[schema(value_type = u64)]
    pub amount: Money,
    pub status: RefundStatus,
    /// The officer or admin who asked (a verified subject).
    pub by: String,
    pub reason: String,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_reference: Option<String>,
    /// When it was last sent to the provider, and how often (a request whose answer was
    /// lost is sent again with the same id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub sent_at: Option<Timestamp>,
    #[serde(default)]
    pub attempts: u32,
}

/// A refund sent this recently may still be on its way: it is not sent again yet.
pub const REFUND_LEASE_SECS: i64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    /// Counted against the refundable amount; the provider is being asked.
    Requested,
    Done,
    /// The provider refused: the amount is refundable again.
    Refused,
}

/// Why a refund was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RefundError {
    #[error("the payment took no money")]
    NotPaid,
    #[error("the refundable amount is {actual}, not the {expected} expected")]
    Changed { expected: Money, actual: Money },
    #[error("a refund must be between 1 and {refundable}")]
    BadAmount { refundable: Money },
    #[error("a refund of this payment is still in progress")]
    InProgress,
}

impl Payment {
    /// What is left to refund.
    pub fn refundable(&self) -> Money {
        if !self.status.is_paid() {
            return Money::ZERO;
        }
        Money::vnd(self.amount.as_vnd().saturating_sub(self.refunded.as_vnd()))
    }

    /// Reserves a refund of `amount`, if `expected` is still what is refundable.
    pub fn begin_refund(
        &self,
        id: Uuid,
        amount: Money,
        expected: Money,
        by: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<Payment, RefundError> {
        if !self.status.is_paid() {
            return Err(RefundError::NotPaid);
        }
        if self
            .refunds
            .iter()
            .any(|r| r.status == RefundStatus::Requested)
        {
            return Err(RefundError::InProgress);
        }
        let refundable = self.refundable();
        if expected != refundable {
            return Err(RefundError::Changed {
                expected,
                actual: refundable,
            });
        }
        if amount.is_zero() || amount > refundable {
            return Err(RefundError::BadAmount { refundable });
        }
        let mut p = self.next(now);
        p.refunded = Money::vnd(self.refunded.as_vnd() + amount.as_vnd());
        p.refunds.push(Refund {
            id,
            amount,
            status: RefundStatus::Requested,
            by: by.to_owned(),
            reason: reason.to_owned(),
            at: now,
            provider_reference: None,
            sent_at: Some(now),
            attempts: 1,
        });
        Ok(p)
    }

    /// Sends the requested refund `id` again: its lease taken (another sender in the last
    /// [`REFUND_LEASE_SECS`] keeps it), the attempt counted. `None` if it is not requested or
    /// its lease is held.
    pub fn resend_refund(&self, id: Uuid, now: Timestamp) -> Option<Payment> {
        let i = self
            .refunds
            .iter()
            .position(|r| r.id == id && r.status == RefundStatus::Requested)?;
        let held = self.refunds[i]
            .sent_at
            .is_some_and(|t| now.duration_since(t).as_secs() < REFUND_LEASE_SECS);
        if held {
            return None;
        }
        let mut p = self.next(now);
        p.refunds[i].sent_at = Some(now);
        p.refunds[i].attempts += 1;
        Some(p)
    }

    /// The provider's answer to refund `id`: done (the payment is refunded, fully or in
    /// part) or refused (the amount is refundable again).
    pub fn finish_refund(
        &self,
        id: Uuid,
        done: bool,
        provider_reference: Option<String>,
        now: Timestamp,
    ) -> Option<Payment> {
        let i = self
            .refunds
            .iter()
            .position(|r| r.id == id && r.status == RefundStatus::Requested)?;
        let mut p = self.next(now);
        let r = &mut p.refunds[i];
        r.provider_reference = provider_reference;
        if done {
            r.status = RefundStatus::Done;
            p.status = PaymentStatus::Refunded;
            if p.refunded >= p.amount {
                p.refund_due = false;
            }
        } else {
            r.status = RefundStatus::Refused;
            p.refunded = Money::vnd(p.refunded.as_vnd().saturating_sub(r.amount.as_vnd()));
        }
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payment::Outcome;
    use crate::payment::tests::{payment, report};

    #[test]
    fn refunds_never_exceed_what_was_paid_and_name_what_they_expect() {
        let now = Timestamp::now();
        let p = payment(PaymentStatus::Pending);
        assert_eq!(
            p.begin_refund(Uuid::now_v7(), Money::vnd(1), Money::ZERO, "o", "r", now),
            Err(RefundError::NotPaid)
        );
        let paid = p.succeed(&report(Outcome::Paid, 200_000), "BL-1".into(), true, now);
        assert_eq!(paid.refundable(), Money::vnd(200_000));
        assert_eq!(
            paid.begin_refund(
                Uuid::now_v7(),
                Money::vnd(200_001),
                Money::vnd(200_000),
                "o",
                "r",
                now
            ),
            Err(RefundError::BadAmount {
                refundable: Money::vnd(200_000)
            })
        );
        let first = Uuid::now_v7();
        let part = paid
            .begin_refund(
                first,
                Money::vnd(50_000),
                Money::vnd(200_000),
                "o",
                "r",
                now,
            )
            .unwrap();
        assert_eq!(part.refundable(), Money::vnd(150_000));
        assert_eq!(
            part.begin_refund(
                Uuid::now_v7(),
                Money::vnd(1),
                Money::vnd(150_000),
                "o",
                "r",
                now
            ),
            Err(RefundError::InProgress)
        );
        let refused = part.finish_refund(first, false, None, now).unwrap();
        assert_eq!(refused.refundable(), Money::vnd(200_000));
        assert_eq!(refused.status, PaymentStatus::Succeeded);
        let again = Uuid::now_v7();
        let part = refused
            .begin_refund(
                again,
                Money::vnd(50_000),
                Money::vnd(200_000),
                "o",
                "r",
                now,
            )
            .unwrap();
        let done = part
            .finish_refund(again, true, Some("R1".into()), now)
            .unwrap();
        assert_eq!(done.status, PaymentStatus::Refunded);
        assert!(done.refund_due, "a partial refund leaves the rest due");
        assert_eq!(
            done.begin_refund(
                Uuid::now_v7(),
                Money::vnd(1),
                Money::vnd(200_000),
                "o",
                "r",
                now
            ),
            Err(RefundError::Changed {
                expected: Money::vnd(200_000),
                actual: Money::vnd(150_000)
            })
        );
        assert_eq!(done.finish_refund(again, true, None, now), None);
        let rest = Uuid::now_v7();
        let full = done
            .begin_refund(
                rest,
                Money::vnd(150_000),
                Money::vnd(150_000),
                "o",
                "r",
                now,
            )
            .unwrap()
            .finish_refund(rest, true, None, now)
            .unwrap();
        assert_eq!(full.refundable(), Money::ZERO);
        assert!(!full.refund_due);
        assert_eq!(full.version, paid.version + 6);
    }
}
