//! Planning and dispatching on the embedded store: redelivery, crashes, back-off, quiet
//! hours, expiry, the send rate, superseded messages, failed lookups, channel fallback.

mod common;

use std::sync::Arc;

use common::{morning, received, world};
use jiff::{SignedDuration, Timestamp};
use motcua_domain::notify::{Channel, DeliveryStatus, Topic};
use motcua_domain::{Command, EventEnvelope, WorkingCalendar};
use motcua_notifications::dispatch::dispatch_due;
use motcua_notifications::plan::{Intake, intake};
use motcua_ports::notifications::DeliveryStore;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_event_is_sent_once() {
    let w = world(&[], 0).await;
    let (d, e) = received(&w, 1).await;
    // The queue delivers the event three times, one of them concurrently.
    let first = intake(&w.state, &e).await.unwrap();
    assert_eq!(
        first,
        Intake::Planned {
            new: 1,
            existing: 0
        }
    );
    let (a, b) = tokio::join!(intake(&w.state, &e), intake(&w.state, &e));
    assert_eq!(
        a.unwrap(),
        Intake::Planned {
            new: 0,
            existing: 1
        }
    );
    assert_eq!(
        b.unwrap(),
        Intake::Planned {
            new: 0,
            existing: 1
        }
    );
    let round = dispatch_due(&w.state, w.clock.at(), 8).await.unwrap();
    assert_eq!(round.sent, 1);
    // And once more after it was sent: nothing new.
    assert_eq!(
        intake(&w.state, &e).await.unwrap(),
        Intake::Planned {
            new: 0,
            existing: 1
        }
    );
    dispatch_due(&w.state, w.clock.at(), 8).await.unwrap();
    let sent = w.sim.messages();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].to, "84912345678");
    assert_eq!(
        sent[0].text,
        format!(
            "DVC: Ho so {} da duoc tiep nhan. Ngay hen tra: {}.",
            d.code.as_str(),
            {
                let due = d.due_date.unwrap();
                format!("{:02}/{:02}/{}", due.day(), due.month(), due.year())
            }
        )
    );
    let records = w.state.ports.deliveries.of_dossier(d.id).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].status, DeliveryStatus::Sent);
    assert_eq!(records[0].masked_to.as_deref(), Some("+84*****5678"));
    assert_eq!(records[0].provider.as_deref(), Some("gateway"));
    assert_eq!(
        records[0].provider_id.as_deref(),
        Some(sent[0].message_id.as_str())
    );
    assert_eq!(records[0].attempts, 1);
    // Events nobody is told about plan nothing.
    let mut quiet = e.clone();
    quiet.id = Uuid::now_v7();
    quiet.kind = "dossier.process".into();
    assert!(matches!(
        intake(&w.state, &quiet).await.unwrap(),
        Intake::Ignored(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_provider_took_it_is_reconciled_not_resent() {
    let w = world(&[], 1).await;
    let (d, e) = received(&w, 2).await;
    intake(&w.state, &e).await.unwrap();
    // The gateway takes the message; recording it fails (the process dies).
    let now = w.clock.at();
    let _ = dispatch_due(&w.state, now, 8).await;
    assert_eq!(w.sim.messages().len(), 1);
    let stuck = &w.state.ports.deliveries.of_dossier(d.id).await.unwrap()[0];
    assert_eq!(stuck.status, DeliveryStatus::Sending);
    // Nothing happens while the attempt's lease runs.
    let round = dispatch_due(&w.state, now, 8).await.unwrap();
    assert_eq!(round.due, 0);
    // After the lease the gateway is asked, and says it has it: recorded, not resent.
    w.clock.advance(SignedDuration::from_secs(121));
    let round = dispatch_due(&w.state, w.clock.at(), 8).await.unwrap();
    assert_eq!(round.sent, 1, "{round:?}");
    assert_eq!(w.sim.messages().len(), 1);
    let done = &w.state.ports.deliveries.of_dossier(d.id).await.unwrap()[0];
    assert_eq!(done.status, DeliveryStatus::Sent);
    assert_eq!(
        done.provider_id.as_deref(),
        Some(w.sim.messages()[0].message_id.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_errors_back_off_and_permanent_ones_stop() {
    let w = world(&[("MOTCUA_NOTIFY_MAX_ATTEMPTS", "3")], 0).await;
    let (d1, e1) = received(&w, 3).await;
    intake(&w.state, &e1).await.unwrap();
    // Lost answer (the gateway took it), then an outage.
    w.sim.script_sms(&["lost"]);
    let now = w.clock.at();
    let round = dispatch_due(&w.state, now, 8).await.unwrap();
    assert_eq!(round.retrying, 1);
    let r = &w.state.ports.deliveries.of_dossier(d1.id).await.unwrap()[0];
    assert_eq!(r.status, DeliveryStatus::Queued);
    assert!(r.reason.as_deref().unwrap().contains("503"));
    // Backed off: 5-10 s for a first delay of 10 s.
    let wait = r.due_at.duration_since(now);
    assert!(
        wait >= SignedDuration::from_secs(5) && wait <= SignedDuration::from_secs(10),
        "{wait:?}"
    );
    assert_eq!(dispatch_due(&w.state, now, 8).await.unwrap().due, 0);
    // The next attempt asks the gateway first: it has the message, so no second copy.
    w.clock.advance(SignedDuration::from_secs(11));
    let round = dispatch_due(&w.state, w.clock.at(), 8).await.unwrap();
    assert_eq!(round.sent, 1);
    assert_eq!(w.sim.messages().len(), 1);

    // A number the gateway refuses: failed at once, with the reason, never retried.
    let (d2, e2) = received(&w, 4).await;
    intake(&w.state, &e2).await.unwrap();
    w.sim.script_sms(&["code:invalid_phone"]);
    let round = dispatch_due(&w.state, w.clock.at(), 8).await.unwrap();
    assert_eq!(round.failed, 1);
    let r = &w.state.ports.deliveries.of_dossier(d2.id).await.unwrap()[0];
    assert_eq!(
        (r.status, r.reason.as_deref()),
        (DeliveryStatus::Failed, Some("gateway: invalid_phone"))
    );
    assert_eq!(r.attempts, 1);

    // An outage that outlasts the attempts: failed after the last, with the reason.
    let (d3, e3) = received(&w, 5).await;
    intake(&w.state, &e3).await.unwrap();
    w.sim.script_sms(&["http_503", "http_503", "http_503"]);
    for _ in 0..3 {
        dispatch_due(&w.state, w.clock.at(), 8).await.unwrap();
        w.clock.advance(SignedDuration::from_secs(60));
    }
    let r = &w.state.ports.deliveries.of_dossier(d3.id).await.unwrap()[0];
    assert_eq!(r.status, DeliveryStatus::Failed);
    assert_eq!(r.attempts, 3);
    assert!(
        r.reason
            .as_deref()
            .unwrap()
            .starts_with("gave up after 3 attempts"),
        "{r:?}"
    );
    assert_eq!(w.sim.messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_hours_defer_and_validity_expires() {
    let w = world(&[], 0).await;
    // 22:00 in Vietnam.
    w.clock.set("2026-03-17T15:00:00Z");
    let (d, e) = received(&w, 6).await;
    intake(&w.state, &e).await.unwrap();
    let r = &w.state.ports.deliveries.of_dossier(d.id).await.unwrap()[0];
    assert_eq!(r.status, DeliveryStatus::Deferred);
    assert_eq!(
        r.due_at,
        "2026-03-18T00:00:00Z".parse::<Timestamp>().unwrap()
    );
    assert_eq!(
        dispatch_due(&w.state, w.clock.at(), 8).await.unwrap().due,
        0
    );
    // 07:00: sent.
    w.clock.set("2026-03-18T00:00:00Z");
    assert_eq!(
        dispatch_due(&w.state, w.clock.at(), 8).await.unwrap().sent,
        1
    );
    assert_eq!(w.sim.messages().len(), 1);

    // A message that could not go for a day (the gateway down all along): expired, not
    // sent late.
    *w.clock.0.lock().unwrap() = morning();
    let (d2, e2) = received(&w, 7).await;
    intake(&w.state, &e2).await.unwrap();
    w.clock.advance(SignedDuration::from_hours(25));
    let round = dispatch_due(&w.state, w.clock.at(), 8).await.unwrap();
    assert_eq!(round.expired, 1);
    let r = &w.state.ports.deliveries.of_dossier(d2.id).await.unwrap()[0];
    assert_eq!(r.status, DeliveryStatus::Expired);
    assert_eq!(
        r.reason.as_deref(),
        Some("not sent within its validity (24 h)")
    );
    // An event that comes a day late is recorded as expired at once.
    let mut late = e2.clone();
    late.id = Uuid::now_v7();
    intake(&w.state, &late).await.unwrap();
    let all = w.state.ports.deliveries.of_dossier(d2.id).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].status, DeliveryStatus::Expired);
    assert_eq!(w.sim.messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_send_rate_drains_a_burst_steadily() {
    let w = world(&[("MOTCUA_RATE_SMS", "3")], 0).await;
    for seq in 10..20 {
        let (_, e) = received(&w, seq).await;
        intake(&w.state, &e).await.unwrap();
    }
    // Three a second, one in each third of a second: ten take a little over three
    // seconds, none failed, none lost, never two in one window.
    let started = w.clock.at();
    let mut sent_at = Vec::new();
    while w.sim.messages().len() < 10 {
        let r = dispatch_due(&w.state, w.clock.at(), 8).await.unwrap();
        assert!(r.sent <= 1 && r.failed == 0 && r.expired == 0, "{r:?}");
        if r.sent == 1 {
            sent_at.push(w.clock.at().duration_since(started));
        }
        if r.sent == 0 || r.throttled.is_some() {
            w.clock.advance(SignedDuration::from_millis(50));
        }
        assert!(w.clock.at().duration_since(started) < SignedDuration::from_secs(10));
    }
    assert_eq!(sent_at.len(), 10);
    let last = *sent_at.last().unwrap();
    assert!(
        last >= SignedDuration::from_secs(3) && last < SignedDuration::from_millis(3400),
        "{sent_at:?}"
    );
    for pair in sent_at.windows(2) {
        assert!(
            pair[1] - pair[0] >= SignedDuration::from_millis(250),
            "{sent_at:?}"
        );
    }
    let _ = &w.store;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supplement_request_already_answered_is_not_sent() {
    let w = world(&[], 0).await;
    w.clock.set("2026-03-17T15:00:00Z");
    let (d, _) = received(&w, 30).await;
    let officer = motcua_ports::contract::officer(&d.agency);
    let now = w.clock.at();
    let (asked, h) = d
        .apply(
            &officer,
            &Command::RequestSupplement {
                items: vec!["Bản sao giấy khai sinh".into()],
                note: None,
            },
            now,
            WorkingCalendar::vietnam(),
        )
        .unwrap();
    let e = EventEnvelope::dossier(&asked, &h);
    w.submission
        .dossiers
        .transition(&asked, &h, &e)
        .await
        .unwrap();
    intake(&w.state, &e).await.unwrap();
    let r = &w.state.ports.deliveries.of_dossier(d.id).await.unwrap();
    let asked_msg = r
        .iter()
        .find(|x| x.topic == Topic::SupplementRequested)
        .unwrap();
    assert_eq!(asked_msg.channel, Channel::Sms);
    assert_eq!(asked_msg.status, DeliveryStatus::Deferred);
    // Overnight the dossier moved on (the officer withdrew the request by refusing…):
    // here, the applicant's supplement came through the counter.
    let mut moved = asked.clone();
    moved.status = motcua_domain::Status::Processing;
    moved.version += 1;
    let (_, h2) = (
        moved.clone(),
        motcua_domain::HistoryEntry {
            seq: moved.version,
            at: now,
            actor_role: motcua_domain::Role::Officer,
            actor: "officer-1".into(),
            action: "process".into(),
            from: Some(motcua_domain::Status::SupplementRequested),
            to: motcua_domain::Status::Processing,
            note: None,
        },
    );
    let e2 = EventEnvelope::dossier(&moved, &h2);
    w.submission
        .dossiers
        .transition(&moved, &h2, &e2)
        .await
        .unwrap();
    w.clock.set("2026-03-18T00:00:00Z");
    let round = dispatch_due(&w.state, w.clock.at(), 8).await.unwrap();
    assert_eq!(round.expired, 1, "{round:?}");
    let r = DeliveryStore::get(w.state.ports.deliveries.as_ref(), asked_msg.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, DeliveryStatus::Expired);
    assert_eq!(
        r.reason.as_deref(),
        Some("no longer true: the dossier moved on")
    );
    assert!(w.sim.messages().iter().all(|m| !m.text.contains("bo sung")));
}

#[test]
fn provider_words_keep_no_number_or_address() {
    use motcua_notifications::dispatch::clean_reason;
    assert_eq!(
        clean_reason("gateway: bad phone 84912345678 for lan@example.vn <script>"),
        "gateway: bad phone # for script"
    );
    assert_eq!(clean_reason("+84912345678"), "#");
    assert_eq!(clean_reason(""), "unspecified");
    assert!(clean_reason(&"x".repeat(500)).len() <= 80);
    assert_eq!(clean_reason("gateway: HTTP 503"), "gateway: HTTP 503");
}

/// Review finding: a lookup that failed on a retry let the message go again (a duplicate
/// when the provider had it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_lookup_sends_nothing_again() {
    let w = world(&[], 0).await;
    let (d, e) = received(&w, 40).await;
    intake(&w.state, &e).await.unwrap();
    w.sim.script_sms(&["lost"]);
    w.sim.script_lookups(&["http_503"]);
    dispatch_due(&w.state, w.clock.at(), 8).await.unwrap();
    w.clock.advance(SignedDuration::from_secs(11));
    let round = dispatch_due(&w.state, w.clock.at(), 8).await.unwrap();
    assert_eq!(round.retrying, 1, "{round:?}");
    assert_eq!(w.sim.messages().len(), 1);
    w.clock.advance(SignedDuration::from_secs(30));
    let round = dispatch_due(&w.state, w.clock.at(), 8).await.unwrap();
    assert_eq!(round.sent, 1, "{round:?}");
    assert_eq!(w.sim.messages().len(), 1);
    let r = &w.state.ports.deliveries.of_dossier(d.id).await.unwrap()[0];
    assert_eq!(r.status, DeliveryStatus::Sent);
}

/// Review finding: a required message that failed on its channel was lost; it now goes on
/// the next channel that reaches the applicant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_message_falls_back_to_another_channel() {
    let mut w = world(&[("MOTCUA_ZALO_TEMPLATES", r#"{"received": "231245"}"#)], 0).await;
    w.state.senders = w
        .state
        .senders
        .clone()
        .with(Arc::new(motcua_senders::zalo::ZaloZns::new(
            &w.sim.zns_url(),
            "t",
        )));
    let (d, e) = received(&w, 41).await;
    intake(&w.state, &e).await.unwrap();
    // No account wants Zalo: only SMS was planned.
    assert_eq!(
        w.state
            .ports
            .deliveries
            .of_dossier(d.id)
            .await
            .unwrap()
            .len(),
        1
    );
    w.sim.script_sms(&["code:blacklisted"]);
    dispatch_due(&w.state, w.clock.at(), 8).await.unwrap();
    dispatch_due(&w.state, w.clock.at(), 8).await.unwrap();
    let all = w.state.ports.deliveries.of_dossier(d.id).await.unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(
        (all[0].channel, all[0].status),
        (Channel::Sms, DeliveryStatus::Failed)
    );
    assert_eq!(
        (all[1].channel, all[1].status),
        (Channel::Zalo, DeliveryStatus::Sent)
    );
    let sent = w.sim.messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].channel.as_str(), sent[0].text.as_str()),
        ("zalo", "231245")
    );
}
