//! The contract of the payment records; run with
//! [`payments_contract_tests!`](crate::payments_contract_tests).

use jiff::Timestamp;
use jiff::civil::date;
use motcua_domain::payment::{Outcome, Payment, PaymentStatus, Provider, ProviderReport};
use motcua_domain::{Dossier, EventEnvelope};
use uuid::Uuid;

use crate::payments::{Mismatch, PaymentPorts, ReconciliationReport};
use crate::{StoreError, SubmissionPorts};

/// One `#[tokio::test]` per case; `$make` is an async expression giving fresh
/// `(SubmissionPorts, PaymentPorts)` on one store.
#[macro_export]
macro_rules! payments_contract_tests {
    ($make:expr) => {
        $crate::payments_contract_tests!(@each $make;
            a_fee_has_one_open_payment_at_a_time,
            payment_updates_are_optimistic,
            settling_writes_payment_dossier_and_event_together,
            open_payments_are_listed_oldest_first,
            a_days_payments_page_in_creation_order,
            reports_are_kept_per_day
        );
    };
    (@each $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (s, p) = $make.await;
                $crate::payments_contract::$name(s, p).await;
            }
        )*
    };
}

/// 2026-03-17 09:00 in Vietnam, plus `secs`.
fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_773_712_800 + secs).expect("valid")
}

/// A stored dossier owing its fee at submission.
async fn dossier(s: &SubmissionPorts) -> Dossier {
    // Codes are unique per store: a random number of five to eight digits.
    let seq = (Uuid::now_v7().as_u128() % 90_000_000) as u32 + 10_000;
    let (d, h, e) = crate::contract::sample(&format!("payer-{}", Uuid::now_v7()), seq, t(0));
    s.dossiers.create(&d, &h, &e).await.expect("created");
    assert!(
        d.fee_due().is_some(),
        "the sample procedure asks its fee at submission"
    );
    d
}

fn payment(d: &Dossier, at: Timestamp) -> Payment {
    let due = d.fee_due().expect("a fee is due");
    let mut p = d.new_payment(Uuid::now_v7(), due, Provider::Vnpay, "vi", at, t(86_400));
    p.status = PaymentStatus::Pending;
    p
}

pub async fn a_fee_has_one_open_payment_at_a_time(s: SubmissionPorts, p: PaymentPorts) {
    let d = dossier(&s).await;
    // Five at once: one is recorded.
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let (store, pay) = (p.payments.clone(), payment(&d, t(1)));
        tasks.push(tokio::spawn(
            async move { store.open(&pay).await.map(|_| pay) },
        ));
    }
    let mut opened = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(pay) => opened.push(pay),
            Err(e) => assert_eq!(e, StoreError::Duplicate),
        }
    }
    assert_eq!(opened.len(), 1);
    let first = opened.remove(0);
    let due = d.fee_due().unwrap();
    assert_eq!(
        p.payments.open_for(d.id, due.key).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(p.payments.open_for(d.id, due.key + 1).await.unwrap(), None);
    assert_eq!(p.payments.get(first.id).await.unwrap(), Some(first.clone()));
    // Closed, it frees the fee for another.
    let failed = first.close(PaymentStatus::Failed, Some("24"), t(2));
    p.payments.update(&failed).await.unwrap();
    assert_eq!(p.payments.open_for(d.id, due.key).await.unwrap(), None);
    let second = payment(&d, t(3));
    p.payments.open(&second).await.unwrap();
    assert_eq!(
        p.payments.open_for(d.id, due.key).await.unwrap(),
        Some(second.clone())
    );
    // The same id twice is refused too.
    let mut again = second.clone();
    again.fee_key += 7;
    assert_eq!(p.payments.open(&again).await, Err(StoreError::Duplicate));
    let listed = p.payments.for_dossier(d.id).await.unwrap();
    assert_eq!(listed, vec![failed, second]);
    assert!(
        p.payments
            .for_dossier(Uuid::now_v7())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(p.payments.get(Uuid::now_v7()).await.unwrap(), None);
}

pub async fn payment_updates_are_optimistic(s: SubmissionPorts, p: PaymentPorts) {
    let d = dossier(&s).await;
    let pay = payment(&d, t(1));
    p.payments.open(&pay).await.unwrap();
    let a = pay.close(PaymentStatus::Cancelled, None, t(2));
    let b = pay.close(PaymentStatus::Expired, None, t(2));
    p.payments.update(&a).await.unwrap();
    assert_eq!(p.payments.update(&b).await, Err(StoreError::Conflict));
    assert_eq!(p.payments.update(&a).await, Err(StoreError::Conflict));
    assert_eq!(p.payments.get(pay.id).await.unwrap(), Some(a));
    // A payment never opened cannot be updated into existence.
    let ghost = payment(&d, t(1)).close(PaymentStatus::Failed, None, t(2));
    assert_eq!(p.payments.update(&ghost).await, Err(StoreError::Conflict));
}

fn paid_report(pay: &Payment) -> ProviderReport {
    ProviderReport {
        txn_ref: pay.txn_ref(),
        outcome: Outcome::Paid,
        amount: Some(pay.amount),
        code: "00".into(),
        provider_transaction: Some("14226112".into()),
        payer_reference: Some("NCB VNP14226112".into()),
        at: Some(t(60)),
    }
}

pub async fn settling_writes_payment_dossier_and_event_together(
    s: SubmissionPorts,
    p: PaymentPorts,
) {
    let d = dossier(&s).await;
    let pay = payment(&d, t(1));
    p.payments.open(&pay).await.unwrap();
    let receipt = d.next_receipt();
    let done = pay.succeed(&paid_report(&pay), receipt.clone(), false, t(60));
    let (paid, h) = d.pay_online(&done, &receipt, t(60)).unwrap();
    let e = EventEnvelope::dossier(&paid, &h);
    // A stale dossier fails the whole write: the payment stays pending.
    let mut stale = paid.clone();
    stale.version += 1;
    let mut stale_h = h.clone();
    stale_h.seq += 1;
    let stale_e = EventEnvelope::dossier(&stale, &stale_h);
    assert_eq!(
        p.payments
            .settle(&done, Some((&stale, &stale_h)), &stale_e)
            .await,
        Err(StoreError::Conflict)
    );
    assert_eq!(p.payments.get(pay.id).await.unwrap(), Some(pay.clone()));
    let pending = s.outbox.pending(1000).await.unwrap();
    assert!(!pending.iter().any(|x| x.id == stale_e.id));
    // Together: payment, dossier, history and event.
    p.payments
        .settle(&done, Some((&paid, &h)), &e)
        .await
        .unwrap();
    assert_eq!(p.payments.get(pay.id).await.unwrap(), Some(done.clone()));
    assert_eq!(s.dossiers.get(d.id).await.unwrap(), Some(paid.clone()));
    assert_eq!(s.dossiers.history(d.id).await.unwrap().last(), Some(&h));
    assert!(
        s.outbox
            .pending(1000)
            .await
            .unwrap()
            .iter()
            .any(|x| x.id == e.id)
    );
    // The same settlement again (a duplicate callback racing the first): refused whole.
    let e2 = EventEnvelope::dossier(&paid, &h);
    assert_eq!(
        p.payments.settle(&done, Some((&paid, &h)), &e2).await,
        Err(StoreError::Conflict)
    );
    assert!(
        !s.outbox
            .pending(1000)
            .await
            .unwrap()
            .iter()
            .any(|x| x.id == e2.id)
    );
    // A payment-only change with its event (a refund flagged, say).
    let flagged = {
        let mut f = done.clone();
        f.version += 1;
        f.refund_due = true;
        f
    };
    let e3 = EventEnvelope {
        id: Uuid::now_v7(),
        kind: "payment.refund_due".into(),
        version: 1,
        occurred_at: t(61),
        subject: d.id.to_string(),
        data: serde_json::json!({"payment": flagged.id}),
    };
    p.payments.settle(&flagged, None, &e3).await.unwrap();
    assert_eq!(p.payments.get(pay.id).await.unwrap(), Some(flagged));
    assert!(
        s.outbox
            .pending(1000)
            .await
            .unwrap()
            .iter()
            .any(|x| x.id == e3.id)
    );
    assert_eq!(p.payments.open_for(d.id, 0).await.unwrap(), None);
}

pub async fn open_payments_are_listed_oldest_first(s: SubmissionPorts, p: PaymentPorts) {
    // Far in the past so that other cases' payments (at t(1)…) come after these.
    let base =
        Timestamp::from_second(1_000_000_000 + (Uuid::now_v7().as_u128() % 1000) as i64).unwrap();
    let mut ours = Vec::new();
    for i in 0..3 {
        let d = dossier(&s).await;
        let pay = payment(&d, base + jiff::SignedDuration::from_secs(i));
        p.payments.open(&pay).await.unwrap();
        ours.push(pay);
    }
    let closed = ours[1].close(PaymentStatus::Failed, None, base);
    p.payments.update(&closed).await.unwrap();
    let listed = p
        .payments
        .open_before(base + jiff::SignedDuration::from_secs(10), 1000)
        .await
        .unwrap();
    let ids: Vec<Uuid> = listed
        .iter()
        .filter(|x| ours.iter().any(|o| o.id == x.id))
        .map(|x| x.id)
        .collect();
    assert_eq!(ids, vec![ours[0].id, ours[2].id]);
    assert!(
        listed
            .windows(2)
            .all(|w| w[0].created_at <= w[1].created_at)
    );
    assert!(listed.iter().all(|x| x.status.is_open()));
    let first = p
        .payments
        .open_before(base + jiff::SignedDuration::from_secs(1), 1000)
        .await
        .unwrap();
    assert!(first.iter().any(|x| x.id == ours[0].id));
    assert!(!first.iter().any(|x| x.id == ours[2].id));
    assert!(
        p.payments
            .open_before(base, 1000)
            .await
            .unwrap()
            .iter()
            .all(|x| x.created_at < base)
    );
}

pub async fn a_days_payments_page_in_creation_order(s: SubmissionPorts, p: PaymentPorts) {
    // A day of its own: 2001-01-0N, Vietnam time (UTC+7); one payment just before
    // midnight belongs to the day before.
    let n = (Uuid::now_v7().as_u128() % 28) as i8 + 1;
    let day = date(2001, 1, n);
    let midnight = day
        .at(0, 0, 0, 0)
        .to_zoned(motcua_domain::calendar::vietnam_tz())
        .unwrap()
        .timestamp();
    let d = dossier(&s).await;
    let before = payment(&d, midnight - jiff::SignedDuration::from_secs(1));
    p.payments.open(&before).await.unwrap();
    let mut ours = Vec::new();
    for i in 0..5 {
        let d = dossier(&s).await;
        let pay = payment(&d, midnight + jiff::SignedDuration::from_secs(60 * i));
        p.payments.open(&pay).await.unwrap();
        ours.push(pay.id);
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = p.payments.created_on(day, after, 2).await.unwrap();
        assert!(page.len() <= 2);
        if page.is_empty() {
            break;
        }
        after = page.last().map(|x| x.id);
        seen.extend(page.iter().map(|x| x.id));
    }
    let mine: Vec<Uuid> = seen.iter().copied().filter(|x| ours.contains(x)).collect();
    assert_eq!(mine, ours);
    assert!(!seen.contains(&before.id));
}

pub async fn reports_are_kept_per_day(_s: SubmissionPorts, p: PaymentPorts) {
    let day = date(2001, 2, 3);
    assert_eq!(p.payments.report(day).await.unwrap(), None);
    let mut r = ReconciliationReport {
        day,
        made_at: t(0),
        compared: [("vnpay".to_string(), 3u32)].into_iter().collect(),
        mismatches: vec![Mismatch {
            payment: Uuid::now_v7(),
            dossier_code: "000.00.04.H42-260317-0001".into(),
            provider: Provider::Vnpay,
            ours: "pending".into(),
            theirs: "paid".into(),
            amount: 200_000,
            their_amount: None,
            kind: "paid_not_recorded".into(),
        }],
        unchecked: vec![],
    };
    p.payments.put_report(&r).await.unwrap();
    assert_eq!(p.payments.report(day).await.unwrap(), Some(r.clone()));
    r.mismatches.clear();
    r.made_at = t(5);
    p.payments.put_report(&r).await.unwrap();
    assert_eq!(p.payments.report(day).await.unwrap(), Some(r));
}
