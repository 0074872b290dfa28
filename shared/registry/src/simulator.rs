//! A registry simulator: a real HTTP server on loopback serving a fixture of fictional
//! citizens and businesses, with injectable latency, 5xx answers and hangs.
//!
//! ```text
//! POST /population/v1/citizens/lookup   {"id_number": "…"}  → 200 {full_name, birth_date, sex, phone?} | 404
//! POST /business/v1/enterprises/lookup  {"tax_code": "…"}   → 200 {name, active, representatives} | 404
//! POST /_sim/faults  {"latency_ms": 0, "fail_next": 0, "hang_next": 0}
//! ```
//! Every lookup needs the `x-api-key` header.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use motcua_domain::identity::RegistryPerson;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Clone, Deserialize)]
pub struct Fixture {
    pub citizens: Vec<FixtureCitizen>,
    pub businesses: Vec<FixtureBusiness>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FixtureCitizen {
    pub id_number: String,
    #[serde(flatten)]
    pub person: RegistryPerson,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FixtureBusiness {
    pub tax_code: String,
    pub name: String,
    pub active: bool,
    /// Personal ID numbers of the legal representatives.
    #[serde(default)]
    pub representatives: Vec<String>,
}

impl Fixture {
    /// The shipped fixture (`data/fixture.json`).
    pub fn demo() -> Fixture {
        serde_json::from_str(include_str!("../data/fixture.json")).expect("fixture parses")
    }
}

/// Faults to inject, shared with the running server.
#[derive(Debug, Default)]
pub struct Faults {
    pub latency_ms: AtomicU64,
    /// The next N lookups answer 503.
    pub fail_next: AtomicU32,
    /// The next N lookups never answer (the client must time out).
    pub hang_next: AtomicU32,
    /// Lookups received (including failed ones).
    pub calls: AtomicU64,
}

impl Faults {
    fn take(counter: &AtomicU32) -> bool {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

struct Sim {
    citizens: HashMap<String, RegistryPerson>,
    businesses: HashMap<String, FixtureBusiness>,
    api_key: String,
    faults: Arc<Faults>,
}

/// A running simulator; stops when dropped.
pub struct Simulator {
    pub addr: SocketAddr,
    pub faults: Arc<Faults>,
    task: tokio::task::JoinHandle<()>,
}

impl Simulator {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a simulator on `127.0.0.1:port` (0 = any free port).
pub async fn start(fixture: Fixture, api_key: &str, port: u16) -> std::io::Result<Simulator> {
    let faults = Arc::new(Faults::default());
    let sim = Arc::new(Sim {
        citizens: fixture
            .citizens
            .into_iter()
            .map(|c| (c.id_number, c.person))
            .collect(),
        businesses: fixture
            .businesses
            .into_iter()
            .map(|b| (b.tax_code.clone(), b))
            .collect(),
        api_key: api_key.to_owned(),
        faults: faults.clone(),
    });
    let app = Router::new()
        .route("/population/v1/citizens/lookup", post(citizen))
        .route("/business/v1/enterprises/lookup", post(business))
        .route("/_sim/faults", post(set_faults))
        .with_state(sim);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Simulator { addr, faults, task })
}

/// Applies the injected faults; `Some` is the answer to give instead of the real one.
async fn faulted(sim: &Sim, headers: &HeaderMap) -> Option<Response> {
    sim.faults.calls.fetch_add(1, Ordering::SeqCst);
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(sim.api_key.as_str()) {
        return Some(
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": "bad api key"})),
            )
                .into_response(),
        );
    }
    let latency = sim.faults.latency_ms.load(Ordering::SeqCst);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    if Faults::take(&sim.faults.hang_next) {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    if Faults::take(&sim.faults.fail_next) {
        return Some(
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": "injected outage"})),
            )
                .into_response(),
        );
    }
    None
}

#[derive(Deserialize)]
struct CitizenQuery {
    id_number: String,
}

async fn citizen(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Json(q): Json<CitizenQuery>,
) -> Response {
    if let Some(r) = faulted(&sim, &headers).await {
        return r;
    }
    match sim.citizens.get(&q.id_number) {
        Some(p) => Json(p).into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({"error": "not found"}))).into_response(),
    }
}

#[derive(Deserialize)]
struct BusinessQuery {
    tax_code: String,
}

async fn business(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Json(q): Json<BusinessQuery>,
) -> Response {
    if let Some(r) = faulted(&sim, &headers).await {
        return r;
    }
    match sim.businesses.get(&q.tax_code) {
        Some(b) => {
            Json(json!({"name": b.name, "active": b.active, "representatives": b.representatives}))
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, Json(json!({"error": "not found"}))).into_response(),
    }
}

#[derive(Deserialize)]
struct FaultRequest {
    #[serde(default)]
    latency_ms: u64,
    #[serde(default)]
    fail_next: u32,
    #[serde(default)]
    hang_next: u32,
}

async fn set_faults(State(sim): State<Arc<Sim>>, Json(f): Json<FaultRequest>) -> StatusCode {
    sim.faults.latency_ms.store(f.latency_ms, Ordering::SeqCst);
    sim.faults.fail_next.store(f.fail_next, Ordering::SeqCst);
    sim.faults.hang_next.store(f.hang_next, Ordering::SeqCst);
    StatusCode::NO_CONTENT
}
