//! What the notifications tests share: the embedded store, the gateway simulator (real
//! HTTP on loopback) behind the SMS sender, and a clock the test moves.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use motcua_domain::notify::DeliveryStatus;
use motcua_domain::{Command, EventEnvelope, WorkingCalendar};
use motcua_embedded::EmbeddedStore;
use motcua_notifications::{NotifyConfig, NotifyState, Senders};
use motcua_ports::notifications::{Delivery, DeliveryStore, LoggedDeadLetters, NotificationPorts};
use motcua_ports::{StoreError, StoreResult, SubmissionPorts};
use motcua_senders::gateway::SmsGateway;
use motcua_senders::simulator::{MessagingSimulator, SimOptions};
use uuid::Uuid;

#[derive(Clone)]
pub struct TestClock(pub Arc<Mutex<Timestamp>>);

impl TestClock {
    pub fn at(&self) -> Timestamp {
        *self.0.lock().unwrap()
    }

    pub fn set(&self, t: &str) {
        *self.0.lock().unwrap() = t.parse().unwrap();
    }

    pub fn advance(&self, d: SignedDuration) {
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

pub struct World {
    pub state: NotifyState,
    pub clock: TestClock,
    pub sim: MessagingSimulator,
    pub submission: SubmissionPorts,
    pub store: EmbeddedStore,
}

/// 2026-03-17 10:00 in Vietnam: working hours, not quiet.
pub fn morning() -> Timestamp {
    "2026-03-17T03:00:00Z".parse().unwrap()
}

pub async fn world(vars: &[(&str, &str)], crash_after_send: u32) -> World {
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
pub async fn received(w: &World, seq: u32) -> (motcua_domain::Dossier, EventEnvelope) {
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
