//! Who gets what: courtesy limits and the account's own contacts, signed receipts, the
//! officers' digest.

mod common;

use std::sync::Arc;

use common::{World, received, world};
use jiff::SignedDuration;
use motcua_domain::notify::{Channel, DeliveryStatus, Topic};
use motcua_domain::{EventEnvelope, WorkingCalendar};
use motcua_notifications::dispatch::dispatch_due;
use motcua_notifications::plan::{Intake, intake};
use uuid::Uuid;

/// Review finding: anyone could have a stranger's phone messaged by submitting and
/// withdrawing with the stranger's number as the contact. Courtesy messages now go to the
/// account's own contacts only, a limited number a day; an erased account's wishes (none)
/// hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn courtesy_messages_go_to_the_accounts_own_contacts_a_few_a_day() {
    use motcua_ports::identity::{Account, AccountKind, ChannelPreferences};
    let mut w = world(&[("MOTCUA_NOTIFY_COURTESY_PER_DAY", "2")], 0).await;
    let identity = w.store.identity_ports();
    w.state.accounts = Some(identity.accounts.clone());
    let now = w.clock.at();
    let account = Account {
        id: Uuid::now_v7(),
        kind: AccountKind::Citizen,
        id_hash: format!("h-{}", Uuid::now_v7()),
        id_hash_kid: None,
        owner: None,
        assurance: 2,
        name: "Nguyễn Thị Lan".into(),
        birth_date: None,
        sex: None,
        phone: Some("+84987654321".into()),
        email: None,
        preferences: ChannelPreferences::default(),
        created_at: now,
        updated_at: now,
        version: 1,
        sealed: None,
    };
    identity.accounts.create_if_absent(&account).await.unwrap();
    let submitted = |seq: u32, with_account: bool| {
        let (mut d, h, _) = motcua_ports::contract::sample(&account.id.to_string(), seq, now);
        // The typed contact number: a stranger's.
        d.applicant.phone = Some("+84935000333".into());
        d.applicant.account = with_account.then_some(account.id);
        let e = EventEnvelope::dossier(&d, &h);
        (d, h, e)
    };
    // Without an account, the typed number gets no courtesy message.
    let (d, h, e) = submitted(50, false);
    w.submission.dossiers.create(&d, &h, &e).await.unwrap();
    assert!(matches!(
        intake(&w.state, &e).await.unwrap(),
        Intake::Ignored(_)
    ));
    // With the account: to the account's phone, two a day.
    for seq in 51..54 {
        let (d, h, e) = submitted(seq, true);
        w.submission.dossiers.create(&d, &h, &e).await.unwrap();
        let r = intake(&w.state, &e).await.unwrap();
        if seq < 53 {
            assert_eq!(
                r,
                Intake::Planned {
                    new: 1,
                    existing: 0
                }
            );
        } else {
            assert_eq!(r, Intake::Ignored("daily limit of courtesy messages"));
        }
    }
    dispatch_due(&w.state, w.clock.at(), 8).await.unwrap();
    let sent = w.sim.messages();
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|m| m.to == "84987654321"), "{sent:?}");
    // The account erased: its (default) wishes are gone with it; nothing courtesy goes.
    identity.accounts.erase(&account).await.unwrap();
    w.clock.advance(SignedDuration::from_hours(24));
    let (d, h, e) = submitted(60, true);
    w.submission.dossiers.create(&d, &h, &e).await.unwrap();
    assert!(matches!(
        intake(&w.state, &e).await.unwrap(),
        Intake::Ignored(_)
    ));
}

/// A signed receipt turns a sent message delivered, once; unsigned, late or contrary ones
/// change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_receipts_mark_messages_delivered() {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;
    let mut w = world(&[], 0).await;
    w.state.receipt_secret = Some(Arc::from(b"receipt-secret-of-the-gateway".to_vec()));
    let (d, e) = received(&w, 70).await;
    intake(&w.state, &e).await.unwrap();
    dispatch_due(&w.state, w.clock.at(), 8).await.unwrap();
    let id = w.sim.messages()[0].message_id.clone();
    let app = motcua_notifications::routes(w.state.clone());
    let post = |body: String, key: &[u8]| {
        let sig = motcua_senders::receipt_signature(key, body.as_bytes());
        Request::post("/v1/notifications/receipts/gateway")
            .header("content-type", "application/json")
            .header("x-signature", sig)
            .body(Body::from(body))
            .unwrap()
    };
    let status = |w: &World| {
        let deliveries = w.state.ports.deliveries.clone();
        async move { deliveries.of_dossier(d.id).await.unwrap()[0].status }
    };
    let delivered = format!(r#"{{"message_id":"{id}","status":"delivered"}}"#);
    let failed = format!(r#"{{"message_id":"{id}","status":"failed","error":"84912345678 gone"}}"#);
    // Signed with another key: refused, nothing changes.
    let r = app
        .clone()
        .oneshot(post(delivered.clone(), b"guess"))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(status(&w).await, DeliveryStatus::Sent);
    let r = app
        .clone()
        .oneshot(post(delivered.clone(), b"receipt-secret-of-the-gateway"))
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(status(&w).await, DeliveryStatus::Delivered);
    // A late "failed" after "delivered", and a replay: nothing more.
    for body in [failed, delivered] {
        let r = app
            .clone()
            .oneshot(post(body, b"receipt-secret-of-the-gateway"))
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        assert_eq!(status(&w).await, DeliveryStatus::Delivered);
    }
}

/// The officers' morning digest: due and overdue dossiers of the agency, one email a day.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_digest_lists_due_and_overdue_dossiers_once_a_day() {
    let w = world(
        &[(
            "MOTCUA_DIGEST_MAILBOXES",
            r#"{"000.00.04.H42": "motcua@stp.example.gov.vn"}"#,
        )],
        0,
    )
    .await;
    let (d, _) = received(&w, 80).await;
    let due = d.due_date.unwrap();
    // Nothing due yet on the day of receipt: no digest.
    assert_eq!(
        motcua_notifications::digest::plan_digests(&w.state, w.clock.at())
            .await
            .unwrap(),
        0
    );
    // The morning of the due date, 08:00 Vietnam time: due; two days later: overdue.
    let morning_of = |day: jiff::civil::Date| {
        day.to_datetime(jiff::civil::time(8, 0, 0, 0))
            .to_zoned(motcua_domain::calendar::vietnam_tz())
            .unwrap()
            .timestamp()
    };
    let (due_lines, overdue) =
        motcua_notifications::digest::lines(&w.state, &d.agency, morning_of(due))
            .await
            .unwrap();
    assert_eq!((due_lines.len(), overdue.len()), (1, 0));
    assert_eq!(due_lines[0].code, d.code.as_str());
    let later = WorkingCalendar::vietnam().add_working_days(due, 2);
    let n = motcua_notifications::digest::plan_digests(&w.state, morning_of(later))
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(
        motcua_notifications::digest::plan_digests(&w.state, morning_of(later))
            .await
            .unwrap(),
        0,
        "once a day"
    );
    let planned = w
        .state
        .ports
        .deliveries
        .due(morning_of(later), 10)
        .await
        .unwrap();
    let digest = planned.iter().find(|x| x.topic == Topic::Digest).unwrap();
    assert_eq!(digest.channel, Channel::Email);
    let motcua_domain::templates::Content::Email { subject, text, .. } = &digest.content else {
        panic!()
    };
    assert!(
        subject.contains("1 hồ sơ quá hạn, 0 hồ sơ đến hạn"),
        "{subject}"
    );
    assert!(text.contains(d.code.as_str()), "{text}");
}
