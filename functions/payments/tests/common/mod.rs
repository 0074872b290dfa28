//! What the payments tests share: the embedded store, the function served on loopback
//! (so the provider simulator's callbacks reach it over HTTP), the simulator of the three
//! providers, tokens, and a clock the test can move.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};
use motcua_domain::payment::Provider;
use motcua_domain::{Command, Dossier, EventEnvelope, Role, WorkingCalendar};
use motcua_embedded::EmbeddedStore;
use motcua_http::Authenticator;
use motcua_pay::paygov::PaygovProfile;
use motcua_pay::simulator::{PaymentSimulator, SimOptions};
use motcua_payments::{PayConfig, PayState, providers};
use motcua_ports::SubmissionPorts;
use serde_json::{Value, json};
use uuid::Uuid;

#[derive(Clone)]
pub struct TestClock(pub Arc<Mutex<SignedDuration>>);

impl TestClock {
    pub fn advance(&self, d: SignedDuration) {
        *self.0.lock().unwrap() += d;
    }
}

impl motcua_http::Clock for TestClock {
    /// The real time, moved on by what the test advanced.
    fn now(&self) -> Timestamp {
        Timestamp::now() + *self.0.lock().unwrap()
    }
}

pub const SECRET: &[u8] = b"payments-test-secret-0123456789abcdef";

pub struct World {
    pub state: PayState,
    pub clock: TestClock,
    pub sim: PaymentSimulator,
    pub submission: SubmissionPorts,
    pub store: EmbeddedStore,
    pub base: String,
    pub http: reqwest::Client,
    pub auth: Arc<Authenticator>,
}

pub async fn world() -> World {
    world_shifted(SignedDuration::ZERO).await
}

/// How far to move the clock so that it reads `before` ahead of the next
/// midnight in Vietnam: tests of daily things run across it.
pub fn to_before_midnight(before: SignedDuration) -> SignedDuration {
    let now = Timestamp::now();
    let today = motcua_domain::calendar::local_date(now);
    let midnight = today
        .tomorrow()
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(7)))
        .unwrap()
        .timestamp();
    now.duration_until(midnight) - before
}

/// A world whose clock reads the real time moved by `shift`.
pub async fn world_shifted(shift: SignedDuration) -> World {
    let dir = std::env::temp_dir().join(format!("motcua-pay-fn-{}", Uuid::now_v7()));
    let store = EmbeddedStore::open(&dir).unwrap();
    let submission = store.submission_ports();
    for p in motcua_domain::catalogue::demo_catalogue() {
        submission.catalogue.put_procedure(&p).await.unwrap();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let profile = PaygovProfile::example();
    let sim = PaymentSimulator::start(
        0,
        SimOptions {
            vnpay_tmn_code: "MOTCUA01".into(),
            vnpay_secret: b"vnpay-secret-1".to_vec(),
            vnpay_ipn_url: format!("{base}/v1/payments/vnpay/ipn"),
            momo_partner_code: "MOMO".into(),
            momo_access_key: "access".into(),
            momo_secret: b"momo-secret-1".to_vec(),
            paygov_merchant: "TINH-H42".into(),
            paygov_secret: b"paygov-secret-1".to_vec(),
            paygov_profile: profile.clone(),
        },
    )
    .await
    .unwrap();
    let env: HashMap<&str, String> = [
        ("MOTCUA_PUBLIC_API_URL", base.clone()),
        ("MOTCUA_VNPAY_TMN_CODE", "MOTCUA01".into()),
        ("MOTCUA_VNPAY_HASH_SECRET", "vnpay-secret-1".into()),
        ("MOTCUA_VNPAY_PAY_URL", sim.vnpay_pay_url()),
        ("MOTCUA_VNPAY_API_URL", sim.vnpay_api_url()),
        ("MOTCUA_MOMO_PARTNER_CODE", "MOMO".into()),
        ("MOTCUA_MOMO_ACCESS_KEY", "access".into()),
        ("MOTCUA_MOMO_SECRET_KEY", "momo-secret-1".into()),
        ("MOTCUA_MOMO_API_URL", sim.momo_api_url()),
        ("MOTCUA_PAYGOV_MERCHANT", "TINH-H42".into()),
        ("MOTCUA_PAYGOV_SECRET", "paygov-secret-1".into()),
        ("MOTCUA_PAYGOV_PAY_URL", sim.paygov_pay_url()),
        ("MOTCUA_PAYGOV_QUERY_URL", sim.paygov_query_url()),
        (
            "MOTCUA_PAYGOV_PROFILE",
            serde_json::to_string(&profile).unwrap(),
        ),
    ]
    .into_iter()
    .collect();
    let get = |k: &str| env.get(k).cloned();
    let mut config = PayConfig::from_lookup(get).unwrap();
    let (offered, paygov) = providers::from_lookup(get).unwrap();
    config.paygov = paygov;
    let clock = TestClock(Arc::new(Mutex::new(shift)));
    let auth = Arc::new(Authenticator::new("motcua", "motcua", &[SECRET.to_vec()]).unwrap());
    let state = PayState {
        dossiers: submission.dossiers.clone(),
        idempotency: submission.idempotency.clone(),
        ports: store.payment_ports(offered),
        auth: auth.clone(),
        clock: Arc::new(clock.clone()),
        config: Arc::new(config),
    };
    let http_settings = motcua_http::settings::HttpSettings::from_lookup(|_| None).unwrap();
    let app = http_settings.with_layers(motcua_payments::routes(state.clone()));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    World {
        state,
        clock,
        sim,
        submission,
        store,
        base,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        auth,
    }
}

impl World {
    pub fn token(
        &self,
        sub: &str,
        role: Role,
        agency: Option<&motcua_domain::AgencyCode>,
    ) -> String {
        self.auth
            .mint(sub, role, agency, Timestamp::now().as_second(), 3600)
    }

    pub fn citizen(&self) -> String {
        self.token("citizen-1", Role::Citizen, None)
    }

    pub fn officer(&self, d: &Dossier) -> String {
        self.token("officer-1", Role::Officer, Some(&d.agency))
    }

    /// A dossier of citizen-1 that owes its fee at submission (200.000 ₫).
    pub async fn owing(&self) -> Dossier {
        let seq = (Uuid::now_v7().as_u128() % 90_000_000) as u32 + 10_000;
        let (d, h, e) = motcua_ports::contract::sample("citizen-1", seq, Timestamp::now());
        self.submission.dossiers.create(&d, &h, &e).await.unwrap();
        d
    }

    /// A received dossier of procedure 2.000720 (paid on request) with a payment request
    /// of `amount`.
    pub async fn requested(&self, amount: u64) -> Dossier {
        let p = motcua_domain::catalogue::demo_catalogue()
            .into_iter()
            .find(|p| p.code == "2.000720")
            .unwrap();
        let seq = (Uuid::now_v7().as_u128() % 90_000_000) as u32 + 10_000;
        let now = Timestamp::now();
        let (d, h) = Dossier::submit(
            &p,
            motcua_domain::dossier::NewDossier {
                id: Uuid::now_v7(),
                code: motcua_domain::DossierCode::new(
                    &p.agency,
                    motcua_domain::calendar::local_date(now),
                    seq,
                ),
                lookup_key: motcua_domain::dossier::LookupKey::from_random(u64::from(seq)),
                applicant: motcua_domain::dossier::Applicant {
                    subject: "citizen-1".into(),
                    phone: None,
                    account: None,
                },
                form: Default::default(),
                documents: vec![],
                submitted_at: now,
            },
        );
        self.submission
            .dossiers
            .create(&d, &h, &EventEnvelope::dossier(&d, &h))
            .await
            .unwrap();
        let officer = motcua_ports::contract::officer(&d.agency);
        let mut d = d;
        for cmd in [
            Command::Receive,
            Command::RequestPayment {
                amount: Some(motcua_domain::Money::vnd(amount)),
            },
        ] {
            let (next, h) = d
                .apply(&officer, &cmd, now, WorkingCalendar::vietnam())
                .unwrap();
            self.submission
                .dossiers
                .transition(&next, &h, &EventEnvelope::dossier(&next, &h))
                .await
                .unwrap();
            d = next;
        }
        d
    }

    pub async fn dossier(&self, id: Uuid) -> Dossier {
        self.submission.dossiers.get(id).await.unwrap().unwrap()
    }

    /// The Vietnam days the dossiers' payments were created on (what a daily
    /// report is keyed by); a test that runs across midnight spans two.
    pub async fn payment_days(
        &self,
        dossiers: &[Uuid],
    ) -> std::collections::BTreeSet<jiff::civil::Date> {
        let mut days = std::collections::BTreeSet::new();
        for d in dossiers {
            for p in self.state.ports.payments.for_dossier(*d).await.unwrap() {
                days.insert(motcua_domain::calendar::local_date(p.created_at));
            }
        }
        days
    }

    /// POST /v1/dossiers/{id}/payments as `token`.
    pub async fn start(
        &self,
        d: &Dossier,
        provider: Provider,
        token: &str,
        key: Option<&str>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}/v1/dossiers/{}/payments", self.base, d.id))
            .bearer_auth(token)
            .json(&json!({"provider": provider}));
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Opens the payment page and pays as `behaviour`; the return URL.
    pub async fn pay(&self, payment: &Value, behaviour: &str) -> String {
        let url = payment["redirect_url"].as_str().unwrap();
        let page = self.http.get(url).send().await.unwrap();
        assert_eq!(page.status(), 200, "{url}");
        let provider = payment["provider"].as_str().unwrap();
        let txn = payment["id"].as_str().unwrap().replace('-', "");
        let v: Value = self
            .http
            .post(format!("{}/_sim/pay/{provider}/{txn}", self.sim.base_url()))
            .header("accept", "application/json")
            .body(format!("as={behaviour}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["return_url"].as_str().unwrap().to_owned()
    }

    pub async fn payments(&self, d: &Dossier, token: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}/v1/dossiers/{}/payments", self.base, d.id))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The outbox events of kind `kind` about dossier `d`.
    pub async fn events(&self, d: &Dossier, kind: &str) -> Vec<EventEnvelope> {
        use motcua_ports::Outbox;
        self.store
            .pending(10_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == kind && e.subject == d.id.to_string())
            .collect()
    }
}
