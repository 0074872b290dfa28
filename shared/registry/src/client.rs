//! The HTTP adapter of the registry ports: JSON over HTTPS with an API key or mutual TLS,
//! a timeout per attempt, retries with exponential backoff on 5xx and timeouts only, and a
//! circuit breaker so that an outage of a national service answers quickly instead of
//! making every citizen wait for timeouts.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use motcua_domain::identity::RegistryPerson;
use motcua_domain::{CitizenId, TaxCode};
use motcua_ports::identity::{
    BusinessRegistry, PopulationRegistry, RegistryBusiness, RegistryError,
};
use serde::de::DeserializeOwned;
use serde_json::json;

#[derive(Debug, Clone)]
pub struct RegistryClientConfig {
    /// e.g. `https://registry.example.gov.vn` (the simulator's URL locally).
    pub base_url: String,
    /// Sent as `x-api-key`.
    pub api_key: Option<String>,
    /// PEM with the client certificate and its private key, for mutual TLS.
    pub client_identity_pem: Option<Vec<u8>>,
    /// Per attempt.
    pub timeout: Duration,
    /// Extra attempts after a 5xx or a timeout.
    pub retries: u32,
    /// First backoff; doubles each retry.
    pub backoff: Duration,
    /// Consecutive failed calls that open the circuit.
    pub breaker_threshold: u32,
    /// How long the circuit stays open before one trial call.
    pub breaker_open_for: Duration,
}

impl RegistryClientConfig {
    pub fn new(base_url: impl Into<String>) -> Self {
        RegistryClientConfig {
            base_url: base_url.into(),
            api_key: None,
            client_identity_pem: None,
            timeout: Duration::from_secs(3),
            retries: 2,
            backoff: Duration::from_millis(100),
            breaker_threshold: 5,
            breaker_open_for: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Default)]
struct BreakerState {
    consecutive_failures: u32,
    open_until: Option<Instant>,
    trial_in_flight: bool,
}

/// Closed → (threshold failures) → open → (after `open_for`) → one trial → closed or open.
#[derive(Debug)]
struct CircuitBreaker {
    state: Mutex<BreakerState>,
    threshold: u32,
    open_for: Duration,
}

impl CircuitBreaker {
    /// A permit for one call: refused while the circuit is open or its one trial is in
    /// flight. The permit settles the call's outcome; dropped unsettled (the caller's
    /// future was cancelled), it frees the trial for the next caller.
    fn allow(&self) -> Result<Permit<'_>, RegistryError> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let trial = match s.open_until {
            Some(until) if Instant::now() < until => {
                return Err(RegistryError::Unavailable {
                    retry_after_secs: (until - Instant::now()).as_secs().max(1),
                });
            }
            Some(_) if s.trial_in_flight => {
                return Err(RegistryError::Unavailable {
                    retry_after_secs: 1,
                });
            }
            Some(_) => {
                s.trial_in_flight = true;
                true
            }
            None => false,
        };
        Ok(Permit {
            breaker: self,
            trial,
            settled: false,
        })
    }

    fn success(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *s = BreakerState::default();
    }

    fn failure(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.consecutive_failures += 1;
        if s.trial_in_flight || s.consecutive_failures >= self.threshold {
            if s.open_until.is_none() || s.trial_in_flight {
                tracing::warn!(failures = s.consecutive_failures, "registry circuit opened");
            }
            s.open_until = Some(Instant::now() + self.open_for);
            s.trial_in_flight = false;
        }
    }
}

/// One call through the breaker; every way it ends settles it.
struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    trial: bool,
    settled: bool,
}

impl Permit<'_> {
    /// The registry answered (a record, "not found", or a refusal of our request): it is
    /// up, the circuit closes.
    fn answered(mut self) {
        self.settled = true;
        self.breaker.success();
    }

    /// The registry did not answer (5xx, 429, timeouts after the retries).
    fn failed(mut self) {
        self.settled = true;
        self.breaker.failure();
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.trial && !self.settled {
            let mut s = self.breaker.state.lock().unwrap_or_else(|p| p.into_inner());
            s.trial_in_flight = false;
        }
    }
}

/// The population and business registries over HTTP.
#[derive(Debug)]
pub struct HttpRegistry {
    http: reqwest::Client,
    config: RegistryClientConfig,
    breaker: CircuitBreaker,
}

enum Attempt<T> {
    Done(Result<T, RegistryError>),
    Retry,
}

impl HttpRegistry {
    pub fn new(config: RegistryClientConfig) -> Result<HttpRegistry, String> {
        let mut b = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent("motcua-identity");
        if let Some(pem) = &config.client_identity_pem {
            let id =
                reqwest::Identity::from_pem(pem).map_err(|e| format!("client identity: {e}"))?;
            b = b.identity(id);
        }
        Ok(HttpRegistry {
            http: b.build().map_err(|e| e.to_string())?,
            breaker: CircuitBreaker {
                state: Mutex::new(BreakerState::default()),
                threshold: config.breaker_threshold.max(1),
                open_for: config.breaker_open_for,
            },
            config,
        })
    }

    async fn attempt<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Attempt<T> {
        let mut req = self
            .http
            .post(format!(
                "{}{path}",
                self.config.base_url.trim_end_matches('/')
            ))
            .json(body);
        if let Some(k) = &self.config.api_key {
            req = req.header("x-api-key", k);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() || e.is_connect() || e.is_request() => return Attempt::Retry,
            Err(e) => return Attempt::Done(Err(RegistryError::Refused(e.to_string()))),
        };
        let status = resp.status();
        if status.is_server_error() || status.as_u16() == 429 {
            return Attempt::Retry;
        }
        if status.as_u16() == 404 {
            return Attempt::Done(Err(RegistryError::NotFound));
        }
        if !status.is_success() {
            return Attempt::Done(Err(RegistryError::Refused(format!("HTTP {status}"))));
        }
        match resp.json::<T>().await {
            Ok(v) => Attempt::Done(Ok(v)),
            Err(e) if e.is_timeout() => Attempt::Retry,
            Err(e) => Attempt::Done(Err(RegistryError::Refused(format!("bad answer: {e}")))),
        }
    }

    /// One call: the breaker, then attempts with backoff. 404, other 4xx and a bad body
    /// are answers, not failures of the service: they close the circuit (a half-open
    /// trial ending in one no longer leaves it open for good).
    async fn call<T: DeserializeOwned>(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> Result<T, RegistryError> {
        let permit = self.breaker.allow()?;
        let mut backoff = self.config.backoff;
        for attempt in 0..=self.config.retries {
            match self.attempt(path, &body).await {
                Attempt::Done(r) => {
                    permit.answered();
                    return r;
                }
                Attempt::Retry if attempt < self.config.retries => {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                Attempt::Retry => {}
            }
        }
        permit.failed();
        Err(RegistryError::Unavailable {
            retry_after_secs: self.config.breaker_open_for.as_secs().clamp(1, 60),
        })
    }
}

#[async_trait]
impl PopulationRegistry for HttpRegistry {
    async fn person(&self, id: &CitizenId) -> Result<RegistryPerson, RegistryError> {
        let mut p: RegistryPerson = self
            .call(
                "/population/v1/citizens/lookup",
                json!({"id_number": id.as_str()}),
            )
            .await?;
        // The registry may keep the national form (0…): E.164, or none if it is not a
        // phone number at all.
        p.phone = p
            .phone
            .as_deref()
            .and_then(|n| motcua_domain::PhoneNumber::parse(n).ok())
            .map(|n| n.as_str().to_owned());
        Ok(p)
    }
}

#[async_trait]
impl BusinessRegistry for HttpRegistry {
    async fn business(&self, tax_code: &TaxCode) -> Result<RegistryBusiness, RegistryError> {
        self.call(
            "/business/v1/enterprises/lookup",
            json!({"tax_code": tax_code.as_str()}),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::{self, Fixture};
    use std::sync::atomic::Ordering;

    async fn setup(threshold: u32, open_for_ms: u64) -> (simulator::Simulator, HttpRegistry) {
        let sim = simulator::start(Fixture::demo(), "secret", 0)
            .await
            .unwrap();
        let mut cfg = RegistryClientConfig::new(sim.base_url());
        cfg.api_key = Some("secret".into());
        cfg.timeout = Duration::from_millis(300);
        cfg.backoff = Duration::from_millis(10);
        cfg.breaker_threshold = threshold;
        cfg.breaker_open_for = Duration::from_millis(open_for_ms);
        (sim, HttpRegistry::new(cfg).unwrap())
    }

    fn lan() -> CitizenId {
        CitizenId::parse("037153000257").unwrap()
    }

    #[tokio::test]
    async fn finds_and_misses() {
        let (_sim, reg) = setup(3, 1000).await;
        let p = reg.person(&lan()).await.unwrap();
        assert_eq!(p.full_name, "Nguyễn Thị Lan");
        assert_eq!(
            reg.person(&CitizenId::parse("001099000001").unwrap()).await,
            Err(RegistryError::NotFound)
        );
        let b = reg
            .business(&TaxCode::parse("0100233488").unwrap())
            .await
            .unwrap();
        assert!(b.active);
    }

    #[tokio::test]
    async fn retries_a_5xx_then_succeeds() {
        let (sim, reg) = setup(3, 1000).await;
        sim.faults.fail_next.store(1, Ordering::SeqCst);
        assert!(reg.person(&lan()).await.is_ok());
        assert_eq!(sim.faults.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn times_out_and_retries() {
        let (sim, reg) = setup(3, 1000).await;
        sim.faults.hang_next.store(1, Ordering::SeqCst);
        let t = Instant::now();
        assert!(reg.person(&lan()).await.is_ok());
        assert!(t.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn an_outage_opens_the_circuit_then_it_closes() {
        let (sim, reg) = setup(2, 400).await;
        sim.faults.fail_next.store(1_000, Ordering::SeqCst);
        for _ in 0..2 {
            assert!(matches!(
                reg.person(&lan()).await,
                Err(RegistryError::Unavailable { .. })
            ));
        }
        // Open: answers at once without calling the registry.
        let calls = sim.faults.calls.load(Ordering::SeqCst);
        let t = Instant::now();
        assert!(matches!(
            reg.person(&lan()).await,
            Err(RegistryError::Unavailable { .. })
        ));
        assert!(t.elapsed() < Duration::from_millis(50));
        assert_eq!(sim.faults.calls.load(Ordering::SeqCst), calls);
        // The registry recovers; after the open period one trial closes the circuit.
        sim.faults.fail_next.store(0, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert!(reg.person(&lan()).await.is_ok());
        assert!(reg.person(&lan()).await.is_ok());
    }

    #[tokio::test]
    async fn a_wrong_key_is_refused_not_retried() {
        let (sim, _) = setup(3, 1000).await;
        let mut cfg = RegistryClientConfig::new(sim.base_url());
        cfg.api_key = Some("wrong".into());
        let reg = HttpRegistry::new(cfg).unwrap();
        assert!(matches!(
            reg.person(&lan()).await,
            Err(RegistryError::Refused(_))
        ));
        assert_eq!(sim.faults.calls.load(Ordering::SeqCst), 1);
    }

    /// A registry whose answer the test chooses: 0 → 503, 1 → 400, 2 → a person, 3 → no
    /// answer for a minute.
    async fn scripted() -> (
        std::sync::Arc<std::sync::atomic::AtomicU32>,
        std::sync::Arc<std::sync::atomic::AtomicU32>,
        HttpRegistry,
    ) {
        use axum::http::StatusCode;
        use axum::response::IntoResponse;
        use std::sync::Arc;
        use std::sync::atomic::AtomicU32;
        let (mode, calls) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        let (m, c) = (mode.clone(), calls.clone());
        let app = axum::Router::new().route(
            "/population/v1/citizens/lookup",
            axum::routing::post(move || {
                let (m, c) = (m.clone(), c.clone());
                async move {
                    c.fetch_add(1, Ordering::SeqCst);
                    match m.load(Ordering::SeqCst) {
                        0 => StatusCode::SERVICE_UNAVAILABLE.into_response(),
                        1 => StatusCode::BAD_REQUEST.into_response(),
                        3 => {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                            StatusCode::OK.into_response()
                        }
                        _ => axum::Json(serde_json::json!({"full_name": "Nguyễn Thị Lan",
                            "birth_date": "1953-04-02", "sex": "female"}))
                        .into_response(),
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let mut cfg = RegistryClientConfig::new(url);
        cfg.timeout = Duration::from_secs(5);
        cfg.backoff = Duration::from_millis(5);
        cfg.retries = 0;
        cfg.breaker_threshold = 1;
        cfg.breaker_open_for = Duration::from_millis(100);
        (mode, calls, HttpRegistry::new(cfg).unwrap())
    }

    /// Review finding (issue 9, item 3): a half-open trial that ends in a refusal left the
    /// circuit open for good.
    #[tokio::test]
    async fn a_trial_that_ends_in_a_refusal_settles_the_circuit() {
        let (mode, calls, reg) = scripted().await;
        assert!(matches!(
            reg.person(&lan()).await,
            Err(RegistryError::Unavailable { .. })
        ));
        tokio::time::sleep(Duration::from_millis(150)).await;
        mode.store(1, Ordering::SeqCst);
        assert!(matches!(
            reg.person(&lan()).await,
            Err(RegistryError::Refused(_))
        ));
        mode.store(2, Ordering::SeqCst);
        let before = calls.load(Ordering::SeqCst);
        assert!(reg.person(&lan()).await.is_ok(), "the circuit is closed");
        assert_eq!(calls.load(Ordering::SeqCst), before + 1);
    }

    /// Review finding (issue 9, item 3): a trial whose caller went away left the circuit
    /// open for good.
    #[tokio::test]
    async fn a_trial_whose_caller_went_away_frees_the_next_trial() {
        let (mode, calls, reg) = scripted().await;
        assert!(reg.person(&lan()).await.is_err());
        tokio::time::sleep(Duration::from_millis(150)).await;
        mode.store(3, Ordering::SeqCst);
        // The trial hangs; its caller gives up (the request's future is dropped).
        assert!(
            tokio::time::timeout(Duration::from_millis(100), reg.person(&lan()))
                .await
                .is_err()
        );
        mode.store(2, Ordering::SeqCst);
        let before = calls.load(Ordering::SeqCst);
        assert!(
            reg.person(&lan()).await.is_ok(),
            "the next call is the trial"
        );
        assert_eq!(calls.load(Ordering::SeqCst), before + 1);
    }
}
