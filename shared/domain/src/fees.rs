//! What a dossier owes and how an online payment settles it.

use jiff::Timestamp;

use crate::dossier::{Dossier, HistoryEntry, Role, Status};
use crate::money::Money;
use crate::payment::{
    FeeChannel, FeeDue, FeePaid, Payment, PaymentStatus, Provider, receipt_number,
};

/// The history's actor for changes made on a provider's verified word.
pub const PAYMENTS_ACTOR: &str = "payments";

impl Dossier {
    /// The fee owed now, if any: the officer's payment request (status 6), else the
    /// procedure's fee at submission while the dossier is open and it is unpaid.
    pub fn fee_due(&self) -> Option<FeeDue> {
        if self.status == Status::PaymentRequested {
            return self.amount_due.map(|amount| FeeDue {
                key: self.payment_request.unwrap_or(self.version),
                amount,
            });
        }
        let open = !matches!(
            self.status,
            Status::NotReceived
                | Status::Withdrawn
                | Status::Stopped
                | Status::Completed
                | Status::Returned
        );
        (self.fee_at_submission && open && !self.fee.is_zero() && self.paid(0).is_none()).then_some(
            FeeDue {
                key: 0,
                amount: self.fee,
            },
        )
    }

    /// A new payment of `due` through `provider`, open until `expires_at`.
    pub fn new_payment(
        &self,
        id: uuid::Uuid,
        due: FeeDue,
        provider: Provider,
        locale: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Payment {
        Payment {
            id,
            dossier_id: self.id,
            dossier_code: self.code.clone(),
            agency: self.agency.clone(),
            applicant: self.applicant.subject.clone(),
            fee_key: due.key,
            amount: due.amount,
            provider,
            status: PaymentStatus::Created,
            redirect_url: None,
            locale: locale.to_owned(),
            created_at: now,
            expires_at,
            updated_at: now,
            provider_code: None,
            receipt: None,
            refund_due: false,
            refunded: Money::ZERO,
            refunds: Vec::new(),
            version: 1,
        }
    }

    /// The payment of fee `key`, if made.
    pub fn paid(&self, key: u64) -> Option<&FeePaid> {
        self.fees.iter().find(|f| f.key == key)
    }

    /// The next receipt's number.
    pub fn next_receipt(&self) -> String {
        receipt_number(&self.code, self.fees.len() + 1)
    }

    /// Settles the fee `payment` was for, if the dossier still owes exactly it: the fee is
    /// recorded as paid online and a payment request (status 6) moves on to processing.
    /// `None` when the fee is no longer owed (paid at the counter, withdrawn, another
    /// request): the money must go back.
    pub fn pay_online(
        &self,
        payment: &Payment,
        receipt: &str,
        now: Timestamp,
    ) -> Option<(Dossier, HistoryEntry)> {
        let due = self.fee_due()?;
        if due.key != payment.fee_key || due.amount != payment.amount {
            return None;
        }
        let mut d = self.clone();
        d.fees.push(FeePaid {
            key: due.key,
            amount: due.amount,
            channel: FeeChannel::Online,
            provider: Some(payment.provider),
            payment: Some(payment.id),
            receipt: receipt.to_owned(),
            reference: None,
            at: now,
        });
        if self.status == Status::PaymentRequested {
            d.status = Status::Processing;
            d.amount_due = None;
            d.payment_request = None;
        }
        d.version = self.version + 1;
        d.updated_at = now;
        let h = HistoryEntry {
            seq: d.version,
            at: now,
            actor_role: Role::System,
            actor: PAYMENTS_ACTOR.into(),
            action: "pay_online".into(),
            from: Some(self.status),
            to: d.status,
            note: Some(format!("{} {receipt}", payment.provider.as_str())),
        };
        Some((d, h))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::calendar::local_date;
    use crate::catalogue::demo_catalogue;
    use crate::dossier::{Actor, Applicant, Command, LookupKey, NewDossier};
    use crate::ids::DossierCode;
    use crate::{Procedure, WorkingCalendar};
    use uuid::Uuid;

    fn procedure(code: &str) -> Procedure {
        demo_catalogue()
            .into_iter()
            .find(|p| p.code == code)
            .unwrap()
    }

    fn submit(code: &str, now: Timestamp) -> Dossier {
        let p = procedure(code);
        Dossier::submit(
            &p,
            NewDossier {
                lookup_key: LookupKey::from_random(7),
                id: Uuid::now_v7(),
                code: DossierCode::new(&p.agency, local_date(now), 1),
                applicant: Applicant {
                    subject: "citizen-1".into(),
                    phone: None,
                    account: None,
                },
                form: BTreeMap::new(),
                documents: vec![],
                submitted_at: now,
            },
        )
        .0
    }

    fn officer(d: &Dossier) -> Actor {
        Actor {
            role: Role::Officer,
            subject: "officer-1".into(),
            owner: None,
            agency: Some(d.agency.clone()),
            assurance: 2,
        }
    }

    fn payment_for(d: &Dossier) -> Payment {
        let due = d.fee_due().unwrap();
        d.new_payment(
            Uuid::now_v7(),
            due,
            Provider::Vnpay,
            "vi",
            d.updated_at,
            d.updated_at,
        )
    }

    #[test]
    fn a_fee_at_submission_is_owed_once_paid_online_and_keeps_the_status() {
        let now: Timestamp = "2026-12-01T03:00:00Z".parse().unwrap();
        let d = submit("2.000505", now);
        assert_eq!(
            d.fee_due(),
            Some(FeeDue {
                key: 0,
                amount: Money::vnd(200_000)
            })
        );
        let p = payment_for(&d);
        let receipt = d.next_receipt();
        let (paid, h) = d.pay_online(&p, &receipt, now).unwrap();
        assert_eq!(paid.status, Status::Submitted);
        assert_eq!(paid.fee_due(), None);
        assert_eq!(paid.fees.len(), 1);
        assert_eq!(paid.fees[0].channel, FeeChannel::Online);
        assert_eq!(paid.fees[0].receipt, format!("BL-{}-1", d.code.as_str()));
        assert_eq!((h.seq, h.action.as_str()), (2, "pay_online"));
        assert_eq!(paid.pay_online(&p, &receipt, now), None, "never twice");
        // A free procedure, or one paid on request, owes nothing at submission.
        assert_eq!(submit("1.001193", now).fee_due(), None);
        assert_eq!(submit("2.000720", now).fee_due(), None);
    }

    #[test]
    fn a_payment_request_is_settled_online_or_at_the_counter_but_not_both() {
        let cal = WorkingCalendar::vietnam();
        let now: Timestamp = "2026-12-01T03:00:00Z".parse().unwrap();
        let d = submit("2.000720", now);
        let o = officer(&d);
        let (d, _) = d.apply(&o, &Command::Receive, now, cal).unwrap();
        let (d, _) = d
            .apply(
                &o,
                &Command::RequestPayment {
                    amount: Some(Money::vnd(60_000)),
                },
                now,
                cal,
            )
            .unwrap();
        let due = d.fee_due().unwrap();
        assert_eq!((due.key, due.amount), (d.version, Money::vnd(60_000)));
        let online = payment_for(&d);
        let (paid, h) = d.pay_online(&online, &d.next_receipt(), now).unwrap();
        assert_eq!(
            (h.from, h.to),
            (Some(Status::PaymentRequested), Status::Processing)
        );
        assert_eq!(paid.amount_due, None);
        // The officer confirming the same request at the counter instead.
        let (counter, _) = d
            .apply(
                &o,
                &Command::ConfirmPayment {
                    reference: Some(" PT-0042 ".into()),
                },
                now,
                cal,
            )
            .unwrap();
        assert_eq!(counter.fees[0].channel, FeeChannel::Counter);
        assert_eq!(counter.fees[0].key, due.key);
        assert_eq!(counter.fees[0].reference.as_deref(), Some("PT-0042"));
        assert_eq!(counter.pay_online(&online, "BL-x", now), None);
        // A payment for another amount or another request settles nothing.
        let mut other = online.clone();
        other.amount = Money::vnd(59_000);
        assert_eq!(d.pay_online(&other, "BL-x", now), None);
        other.amount = online.amount;
        other.fee_key = 0;
        assert_eq!(d.pay_online(&other, "BL-x", now), None);
    }
}
