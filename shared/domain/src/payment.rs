//! Paying a dossier's fee online: the payment and its states, the fee it pays, what a
//! provider reports about it, the electronic receipt and refunds. The providers' wire
//! formats and signatures live in `motcua-pay`; this is what their messages mean.
//!
//! States: `created → pending → succeeded | failed | expired | cancelled`, and
//! `succeeded → refunded` (partial or full). A payment is *open* while created or pending;
//! a dossier's fee has at most one open payment at a time.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ids::{AgencyCode, DossierCode};
use crate::money::Money;
pub use crate::refund::{Refund, RefundError, RefundStatus};

/// Who collects the money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// VNPay, API 2.1.0.
    Vnpay,
    /// MoMo, all-in-one gateway v2.
    Momo,
    /// The national payment platform of the National Public Service Portal.
    Paygov,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::Vnpay, Provider::Momo, Provider::Paygov];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Vnpay => "vnpay",
            Provider::Momo => "momo",
            Provider::Paygov => "paygov",
        }
    }

    pub fn parse(s: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Recorded; the provider has not answered yet.
    Created,
    /// The payer was sent to the provider's page.
    Pending,
    Succeeded,
    Failed,
    /// Not paid within its validity, as the provider confirmed.
    Expired,
    /// Given up by the payer (at the provider or on the portal).
    Cancelled,
    /// Money went back to the payer (`refunded` says how much).
    Refunded,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Created => "created",
            PaymentStatus::Pending => "pending",
            PaymentStatus::Succeeded => "succeeded",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Expired => "expired",
            PaymentStatus::Cancelled => "cancelled",
            PaymentStatus::Refunded => "refunded",
        }
    }

    /// Waiting for the provider's word.
    pub fn is_open(self) -> bool {
        matches!(self, PaymentStatus::Created | PaymentStatus::Pending)
    }

    /// Money was taken.
    pub fn is_paid(self) -> bool {
        matches!(self, PaymentStatus::Succeeded | PaymentStatus::Refunded)
    }
}

/// How a fee was paid: what the KPI reports count apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FeeChannel {
    Online,
    Counter,
}

/// A fee the dossier owes now: the procedure's fee at submission (key 0) or the amount of
/// an officer's payment request (key: the dossier version the request produced).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeDue {
    pub key: u64,
    pub amount: Money,
}

/// A fee paid, as the dossier records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FeePaid {
    /// The [`FeeDue::key`] it paid.
    pub key: u64,
    #[schema(value_type = u64)]
    pub amount: Money,
    pub channel: FeeChannel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<Uuid>,
    /// The electronic receipt's number (biên lai điện tử).
    pub receipt: String,
    /// The officer's reference of a counter payment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
}

/// The receipt number of the `n`th fee (1-based) a dossier paid: `BL-<dossier code>-<n>`.
pub fn receipt_number(code: &DossierCode, n: usize) -> String {
    format!("BL-{}-{n}", code.as_str())
}

/// The electronic receipt of an online payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Receipt {
    pub number: String,
    #[schema(value_type = u64)]
    pub amount: Money,
    /// The payer's side of the transaction as the provider names it (bank and its
    /// transaction number, or the wallet's payment type); never an account or card number.
    pub payer_reference: Option<String>,
    /// The provider's transaction id.
    pub provider_transaction: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub paid_at: Timestamp,
}

/// What a provider says happened to a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Paid,
    Failed,
    Cancelled,
    /// Still on the payment page, or not final yet.
    Pending,
    /// The provider does not know the transaction (the payer never reached its page).
    Unknown,
}

/// A provider's verified word on one transaction: from a signed callback or a signed
/// status answer. Holds no personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderReport {
    pub txn_ref: String,
    pub outcome: Outcome,
    /// The amount the provider handled; `None` when it reports none (unknown transaction).
    pub amount: Option<Money>,
    /// The provider's result code, as sent (`00`, `24`, `0`, `1006`…).
    pub code: String,
    pub provider_transaction: Option<String>,
    pub payer_reference: Option<String>,
    pub at: Option<Timestamp>,
}

/// A fee payment through a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub id: Uuid,
    pub dossier_id: Uuid,
    pub dossier_code: DossierCode,
    pub agency: AgencyCode,
    /// The dossier's applicant owner reference (who may see and cancel it).
    pub applicant: String,
    pub fee_key: u64,
    pub amount: Money,
    pub provider: Provider,
    pub status: PaymentStatus,
    /// Where the payer is sent to pay (a signed URL); kept so a second request returns it.
    pub redirect_url: Option<String>,
    /// The payer's page language, `vi` or `en`.
    pub locale: String,
    pub created_at: Timestamp,
    /// After this the provider no longer takes the payment.
    pub expires_at: Timestamp,
    pub updated_at: Timestamp,
    /// The provider's last result code.
    pub provider_code: Option<String>,
    pub receipt: Option<Receipt>,
    /// Money was taken for a fee no longer due (paid after expiry or cancellation, or
    /// another payment paid it first): an officer must refund it.
    pub refund_due: bool,
    pub refunded: Money,
    pub refunds: Vec<Refund>,
    pub version: u64,
}

/// What a provider's report means for a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// Money was taken and the payment was open: pay the fee (or flag a refund if the fee
    /// is no longer due).
    Paid,
    /// Money was taken after the payment was closed (expired, cancelled, failed): record
    /// it and flag it for refund.
    PaidLate,
    /// Closed without money: failed or cancelled.
    Closed(PaymentStatus),
    /// The payment already ended this way or better: acknowledged, nothing changes.
    AlreadyFinal,
    /// The amount differs from ours: nothing changes.
    WrongAmount,
    /// Nothing final yet.
    Nothing,
}

/// Longest transaction reference a provider takes (MoMo's `orderId`, 50).
pub const TXN_REF_MAX: usize = 50;

impl Payment {
    /// The reference the provider knows the payment by: the id's 32 hex digits, unique,
    /// free of characters any encoding treats differently.
    pub fn txn_ref(&self) -> String {
        self.id.simple().to_string()
    }

    /// The payment id a provider's reference names, if it is one of ours.
    pub fn id_of_txn_ref(txn_ref: &str) -> Option<Uuid> {
        if txn_ref.len() != 32 || !txn_ref.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Uuid::try_parse(txn_ref).ok()
    }

    /// The order description sent to the provider: unaccented, letters, digits, spaces,
    /// dots and dashes only (VNPay asks for that, and no encoding differs on them).
    pub fn order_info(&self) -> String {
        format!("Le phi ho so {}", self.dossier_code.as_str())
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '-'))
            .collect()
    }

    /// Reads a provider's report.
    pub fn observe(&self, r: &ProviderReport) -> Observation {
        use PaymentStatus as S;
        match r.outcome {
            Outcome::Paid => {
                if r.amount != Some(self.amount) {
                    return Observation::WrongAmount;
                }
                match self.status {
                    S::Created | S::Pending => Observation::Paid,
                    S::Expired | S::Cancelled | S::Failed => Observation::PaidLate,
                    S::Succeeded | S::Refunded => Observation::AlreadyFinal,
                }
            }
            Outcome::Failed | Outcome::Cancelled => {
                if r.amount.is_some_and(|a| a != self.amount) {
                    return Observation::WrongAmount;
                }
                if !self.status.is_open() {
                    return Observation::AlreadyFinal;
                }
                Observation::Closed(if r.outcome == Outcome::Cancelled {
                    S::Cancelled
                } else {
                    S::Failed
                })
            }
            Outcome::Pending | Outcome::Unknown => Observation::Nothing,
        }
    }

    pub(crate) fn next(&self, now: Timestamp) -> Payment {
        let mut p = self.clone();
        p.version += 1;
        p.updated_at = now;
        p
    }

    /// Money taken: succeeded with its receipt; `refund_due` when the fee it was for is no
    /// longer owed.
    pub fn succeed(
        &self,
        r: &ProviderReport,
        receipt_number: String,
        refund_due: bool,
        now: Timestamp,
    ) -> Payment {
        let mut p = self.next(now);
        p.status = PaymentStatus::Succeeded;
        p.provider_code = Some(r.code.clone());
        p.refund_due = refund_due;
        p.receipt = Some(Receipt {
            number: receipt_number,
            amount: self.amount,
            payer_reference: r.payer_reference.clone(),
            provider_transaction: r.provider_transaction.clone(),
            paid_at: r.at.unwrap_or(now),
        });
        p
    }

    /// Closed without money (failed, cancelled, expired).
    pub fn close(&self, status: PaymentStatus, code: Option<&str>, now: Timestamp) -> Payment {
        let mut p = self.next(now);
        p.status = status;
        if let Some(c) = code {
            p.provider_code = Some(c.to_owned());
        }
        p
    }

    /// The provider took the payment request: the payer goes to `redirect_url`.
    pub fn pending(&self, redirect_url: String, now: Timestamp) -> Payment {
        let mut p = self.next(now);
        p.status = PaymentStatus::Pending;
        p.redirect_url = Some(redirect_url);
        p
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn payment(status: PaymentStatus) -> Payment {
        let at: Timestamp = "2026-12-01T03:00:00Z".parse().unwrap();
        Payment {
            id: Uuid::now_v7(),
            dossier_id: Uuid::now_v7(),
            dossier_code: DossierCode::parse("000.00.04.H42-261201-0001").unwrap(),
            agency: AgencyCode::parse("000.00.04.H42").unwrap(),
            applicant: "owner".into(),
            fee_key: 0,
            amount: Money::vnd(200_000),
            provider: Provider::Vnpay,
            status,
            redirect_url: None,
            locale: "vi".into(),
            created_at: at,
            expires_at: at,
            updated_at: at,
            provider_code: None,
            receipt: None,
            refund_due: false,
            refunded: Money::ZERO,
            refunds: vec![],
            version: 1,
        }
    }

    pub(crate) fn report(outcome: Outcome, amount: u64) -> ProviderReport {
        ProviderReport {
            txn_ref: "x".into(),
            outcome,
            amount: Some(Money::vnd(amount)),
            code: "00".into(),
            provider_transaction: Some("14000001".into()),
            payer_reference: Some("NCB".into()),
            at: None,
        }
    }

    #[test]
    fn txn_refs_round_trip_and_strangers_are_not_ours() {
        let p = payment(PaymentStatus::Pending);
        assert_eq!(Payment::id_of_txn_ref(&p.txn_ref()), Some(p.id));
        assert_eq!(p.txn_ref().len(), 32);
        for bad in [
            "",
            "12345",
            &"g".repeat(32),
            &format!("{}-", &p.txn_ref()[1..]),
        ] {
            assert_eq!(Payment::id_of_txn_ref(bad), None, "{bad}");
        }
        assert_eq!(p.order_info(), "Le phi ho so 000.00.04.H42-261201-0001");
    }

    #[test]
    fn what_a_report_means_in_each_state() {
        use Observation as O;
        use PaymentStatus as S;
        let paid = report(Outcome::Paid, 200_000);
        assert_eq!(payment(S::Pending).observe(&paid), O::Paid);
        assert_eq!(payment(S::Created).observe(&paid), O::Paid);
        for s in [S::Expired, S::Cancelled, S::Failed] {
            assert_eq!(payment(s).observe(&paid), O::PaidLate, "{s:?}");
        }
        for s in [S::Succeeded, S::Refunded] {
            assert_eq!(payment(s).observe(&paid), O::AlreadyFinal);
        }
        assert_eq!(
            payment(S::Pending).observe(&report(Outcome::Paid, 2_000)),
            O::WrongAmount
        );
        let mut no_amount = paid.clone();
        no_amount.amount = None;
        assert_eq!(payment(S::Pending).observe(&no_amount), O::WrongAmount);
        assert_eq!(
            payment(S::Pending).observe(&report(Outcome::Cancelled, 200_000)),
            O::Closed(S::Cancelled)
        );
        assert_eq!(
            payment(S::Succeeded).observe(&report(Outcome::Failed, 200_000)),
            O::AlreadyFinal
        );
        assert_eq!(
            payment(S::Pending).observe(&report(Outcome::Pending, 200_000)),
            O::Nothing
        );
    }
}
