//! Planning and dispatching on the embedded store, with SMS through the gateway adapter to
//! the simulator (real HTTP on loopback) and a clock the test moves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use motcua_domain::notify::{Channel, DeliveryStatus, Topic};
use motcua_domain::{Command, EventEnvelope, WorkingCalendar};
use motcua_embedded::EmbeddedStore;
use motcua_notifications::dispatch::dispatch_due;
use motcua_notifications::plan::{Intake, intake};
use motcua_notifications::{NotifyConfig, NotifyState, Senders};
use motcua_ports::notifications::{Delivery, DeliveryStore, LoggedDeadLetters, NotificationPorts};
use motcua_ports::{StoreError, StoreResult, SubmissionPorts};
use motcua_senders::gateway::SmsGateway;
use motcua_senders::simulator::{MessagingSimulator, SimOptions};
use uuid::Uuid;

#[derive(Clone)]
struct TestClock(Arc<Mutex<Timestamp>>);

impl TestClock {
    fn at(&self) -> Timestamp {
        *self.0.lock().unwrap()
    }

    fn set(&self, t: &str) {
        *self.0.lock().unwrap() = t.parse().unwrap();
    }

    fn advance(&self, d: SignedDuration) {
        let mut t = self.0.lock().unwrap();
        *t = t.checked_add(d).unwrap();
    }
}

impl motcua_http::Clock for TestClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap()
    }
}

/// A delivery store whose next `fail_after_send` updates to `sent` fail, as a crash
/// between the provider's answer and our record would leave it.
struct Crashing {
    inner: EmbeddedStore,
    fail_sent: Mutex<u32>,
}

#[async_trait]
impl DeliveryStore for Crashing {
    async fn plan(&self, d: &[Delivery]) -> StoreResult<Vec<(Delivery, bool)>> {
        self.inner.plan(d).await
    }
    async fn get(&self, id: Uuid) -> StoreResult<Option<Delivery>> {
        DeliveryStore::get(&self.inner, id).await
    }
    async fn update(&self, d: &Delivery) -> StoreResult<()> {
        if d.status == DeliveryStatus::Sent {
            let mut n = self.fail_sent.lock().unwrap();
            if *n > 0 {
                *n -= 1;
                return Err(StoreError::Unavailable("the process died".into()));
            }
        }
        self.inner.update(d).await
    }
    async fn due(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<Delivery>> {
        self.inner.due(now, limit).await
    }
    async fn of_dossier(&self, dossier: Uuid) -> StoreResult<Vec<Delivery>> {
        self.inner.of_dossier(dossier).await
    }
    async fn by_provider_id(&self, p: &str, id: &str) -> StoreResult<Option<Delivery>> {
        self.inner.by_provider_id(p, id).await
    }
}

struct World {
    state: NotifyState,
    clock: TestClock,
    sim: MessagingSimulator,
    submission: SubmissionPorts,
    store: EmbeddedStore,
}

/// 2026-03-17 10:00 in Vietnam: working hours, not quiet.
fn morning() -> Timestamp {
    "2026-03-17T03:00:00Z".parse().unwrap()
}

async fn world(vars: &[(&str, &str)], crash_after_send: u32) -> World {
    let dir = std::env::temp_dir().join(format!("motcua-notify-fn-{}", Uuid::now_v7()));
    let store = EmbeddedStore::open(&dir).unwrap();
    let submission = store.submission_ports();
    for p in motcua_domain::catalogue::demo_catalogue() {
        submission.catalogue.put_procedure(&p).await.unwrap();
    }
    let sim = MessagingSimulator::start(
        0,
        SimOptions {
            key: "k".into(),
            token: "t".into(),
            receipts: None,
        },
    )
    .await
    .unwrap();
    let mut env: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.entry("MOTCUA_PORTAL_URL".into())
        .or_insert("https://dichvucong.example.gov.vn".into());
    env.entry("MOTCUA_NOTIFY_RETRY_SECS".into())
        .or_insert("10".into());
    let config = NotifyConfig::from_lookup(|k| env.get(k).cloned()).unwrap();
    let clock = TestClock(Arc::new(Mutex::new(morning())));
    let mut ports: NotificationPorts = store.notification_ports();
    if crash_after_send > 0 {
        ports.deliveries = Arc::new(Crashing {
            inner: store.clone(),
            fail_sent: Mutex::new(crash_after_send),
        });
    }
    let state = NotifyState {
        dossiers: submission.dossiers.clone(),
        catalogue: submission.catalogue.clone(),
        accounts: None,
        ports,
        senders: Senders::default().with(Arc::new(SmsGateway::new(
            &sim.sms_url(),
            "k",
            "DVCTINH",
            false,
        ))),
        dead_letters: Arc::new(LoggedDeadLetters),
        auth: Arc::new(motcua_http::Authenticator::new("motcua", "motcua", &[]).unwrap()),
        clock: Arc::new(clock.clone()),
        config: Arc::new(config),
        receipt_secret: None,
    };
    World {
        state,
        clock,
        sim,
        submission,
        store,
    }
}

/// A dossier received now; the event of its receipt.
async fn received(w: &World, seq: u32) -> (motcua_domain::Dossier, EventEnvelope) {
    let (d, h, e) = motcua_ports::contract::sample("citizen-1", seq, w.clock.at());
    w.submission.dossiers.create(&d, &h, &e).await.unwrap();
    let officer = motcua_ports::contract::officer(&d.agency);
    let (next, h) = d
        .apply(
            &officer,
            &Command::Receive,
            w.clock.at(),
            WorkingCalendar::vietnam(),
        )
        .unwrap();
    let e = EventEnvelope::dossier(&next, &h);
    w.submission
        .dossiers
        .transition(&next, &h, &e)
        .await
        .unwrap();
    (next, e)
}

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
