//! A simulator of the national electronic identity (VNeID level 2) as an OpenID Connect
//! provider: a real HTTP server on loopback with discovery, an authorization page listing
//! the fixture's people, a token endpoint that checks PKCE (S256) and `private_key_jwt`
//! client authentication, and a JWK set that rotates. Faults can be injected: the person
//! declines (`access_denied`), a slow token endpoint, a wrong `nonce`, a bad signature, an
//! expired ID token. Its ES256 keys are made at start and protect nothing.
//!
//! ```text
//! GET  /.well-known/openid-configuration
//! GET  /authorize?response_type=code&client_id&redirect_uri&scope=openid&state&nonce
//!                 &code_challenge&code_challenge_method=S256[&login_hint=<personal number>]
//! GET  /authorize/approve?…the same…&person=<personal number>   (the page's buttons)
//! POST /token   (form: grant_type, code, redirect_uri, code_verifier,
//!                client_assertion_type, client_assertion)
//! GET  /jwks
//! POST /_sim/faults {"access_denied_next", "token_delay_ms", "wrong_nonce_next",
//!                    "bad_signature_next", "expired_next"}
//! POST /_sim/rotate
//! ```
//! The ID token carries the personal number in `citizen_id`, with `name`, `birthdate`.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use motcua_http::SigningKey;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::simulator::{Fixture, FixtureCitizen};

/// A relying party the provider knows: where it may send people back, and the public key
/// its `private_key_jwt` assertions are checked with.
#[derive(Debug, Clone)]
pub struct EidClient {
    pub client_id: String,
    pub redirect_uris: Vec<String>,
    /// Public ES256 JWK of the client.
    pub jwk: Value,
}

/// Faults to inject, each for the next N uses.
#[derive(Debug, Default)]
pub struct EidFaults {
    pub access_denied_next: AtomicU32,
    pub token_delay_ms: AtomicU64,
    pub wrong_nonce_next: AtomicU32,
    pub bad_signature_next: AtomicU32,
    pub expired_next: AtomicU32,
    /// Token requests received.
    pub token_calls: AtomicU64,
}

fn take(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

struct IssuedCode {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
    person: FixtureCitizen,
    expires: Instant,
}

struct Eid {
    issuer: String,
    people: Vec<FixtureCitizen>,
    /// Newest first; the first signs, all are published.
    keys: Mutex<Vec<SigningKey>>,
    clients: Mutex<HashMap<String, EidClient>>,
    codes: Mutex<HashMap<String, IssuedCode>>,
    used_assertions: Mutex<HashSet<String>>,
    faults: Arc<EidFaults>,
}

/// A running e-ID simulator; stops when dropped.
pub struct EidSimulator {
    pub addr: SocketAddr,
    pub faults: Arc<EidFaults>,
    eid: Arc<Eid>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EidSimulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EidSimulator {
    /// The issuer: its base URL.
    pub fn issuer(&self) -> &str {
        &self.eid.issuer
    }

    /// Lets a relying party use the provider.
    pub fn register(&self, client: EidClient) {
        lock(&self.eid.clients).insert(client.client_id.clone(), client);
    }

    /// A new signing key; the old one stays published.
    pub fn rotate(&self) {
        self.eid.rotate();
    }

    /// The `kid` that signs now.
    pub fn signing_kid(&self) -> String {
        lock(&self.eid.keys)[0].kid.clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Eid {
    fn rotate(&self) {
        let mut keys = lock(&self.keys);
        let kid = format!("eid-sim-{}", keys.len() + 1);
        keys.insert(0, SigningKey::generate(&kid));
        keys.truncate(3);
    }

    fn sign(&self, claims: &Value) -> String {
        let keys = lock(&self.keys);
        let key = &keys[0];
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key.kid.clone());
        let encoding = EncodingKey::from_ec_der(key.pkcs8().expect("the simulator holds its keys"));
        jsonwebtoken::encode(&header, claims, &encoding).expect("ES256 signing works")
    }
}

/// Starts the simulator on `127.0.0.1:port` (0 = any free port) with the fixture's people.
pub async fn start(fixture: Fixture, port: u16) -> std::io::Result<EidSimulator> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let faults = Arc::new(EidFaults::default());
    let eid = Arc::new(Eid {
        issuer: format!("http://{addr}"),
        people: fixture.citizens,
        keys: Mutex::new(vec![SigningKey::generate("eid-sim-1")]),
        clients: Mutex::new(HashMap::new()),
        codes: Mutex::new(HashMap::new()),
        used_assertions: Mutex::new(HashSet::new()),
        faults: faults.clone(),
    });
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(configuration))
        .route("/authorize", get(authorize))
        .route("/authorize/approve", get(approve))
        .route("/token", post(token))
        .route("/jwks", get(jwks))
        .route("/_sim/faults", post(set_faults))
        .route("/_sim/rotate", post(rotate))
        .with_state(eid.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(EidSimulator {
        addr,
        faults,
        eid,
        task,
    })
}

async fn configuration(State(eid): State<Arc<Eid>>) -> Json<Value> {
    let i = &eid.issuer;
    Json(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "jwks_uri": format!("{i}/jwks"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid"],
        "claims_supported": ["sub", "citizen_id", "name", "birthdate"],
    }))
}

async fn jwks(State(eid): State<Arc<Eid>>) -> Json<Value> {
    let keys: Vec<Value> = lock(&eid.keys).iter().map(SigningKey::jwk).collect();
    Json(json!({ "keys": keys }))
}

#[derive(Debug, Deserialize, Clone)]
struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    login_hint: Option<String>,
    person: Option<String>,
}

/// An answer instead of going on (boxed: a `Response` is large).
type Refusal = Box<Response>;

fn bad(why: &str) -> Refusal {
    Box::new((StatusCode::BAD_REQUEST, format!("invalid request: {why}")).into_response())
}

/// Checks what the provider must before it may redirect anywhere: a known client and one
/// of its registered redirect URIs. Then the rest, whose errors go back to the client.
fn check(eid: &Eid, q: &AuthorizeQuery) -> Result<(String, String), Refusal> {
    let client_id = q.client_id.clone().ok_or_else(|| bad("client_id"))?;
    let redirect = q.redirect_uri.clone().ok_or_else(|| bad("redirect_uri"))?;
    let clients = lock(&eid.clients);
    let client = clients
        .get(&client_id)
        .ok_or_else(|| bad("unknown client"))?;
    if !client.redirect_uris.contains(&redirect) {
        return Err(bad("redirect_uri not registered"));
    }
    let back_err = |e: &str| {
        Box::new(redirect_to(
            &redirect,
            &[("error", e), ("state", q.state.as_deref().unwrap_or(""))],
        ))
    };
    if q.response_type.as_deref() != Some("code") {
        return Err(back_err("unsupported_response_type"));
    }
    if !q
        .scope
        .as_deref()
        .unwrap_or("")
        .split(' ')
        .any(|s| s == "openid")
    {
        return Err(back_err("invalid_scope"));
    }
    if q.code_challenge_method.as_deref() != Some("S256")
        || q.code_challenge.as_deref().is_none_or(|c| c.len() != 43)
    {
        return Err(back_err("invalid_request"));
    }
    Ok((client_id, redirect))
}

fn redirect_to(base: &str, params: &[(&str, &str)]) -> Response {
    let query = serde_urlencoded::to_string(params).unwrap_or_default();
    let sep = if base.contains('?') { '&' } else { '?' };
    (
        StatusCode::FOUND,
        [(header::LOCATION, format!("{base}{sep}{query}"))],
    )
        .into_response()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The sign-in page: with `login_hint` naming a fixture person the person is signed in at
/// once (for tests); otherwise a page lists the fixture's people to pick from.
async fn authorize(State(eid): State<Arc<Eid>>, Query(q): Query<AuthorizeQuery>) -> Response {
    if let Err(r) = check(&eid, &q) {
        return *r;
    }
    if let Some(hint) = q.login_hint.clone() {
        return approve(
            State(eid),
            Query(AuthorizeQuery {
                person: Some(hint),
                ..q
            }),
        )
        .await;
    }
    let mut items = String::new();
    for p in &eid.people {
        let mut params: Vec<(&str, &str)> = vec![
            ("response_type", "code"),
            ("scope", q.scope.as_deref().unwrap_or("openid")),
            ("person", &p.id_number),
        ];
        for (k, v) in [
            ("client_id", &q.client_id),
            ("redirect_uri", &q.redirect_uri),
            ("state", &q.state),
            ("nonce", &q.nonce),
            ("code_challenge", &q.code_challenge),
            ("code_challenge_method", &q.code_challenge_method),
        ] {
            if let Some(v) = v {
                params.push((k, v));
            }
        }
        let href = format!(
            "/authorize/approve?{}",
            serde_urlencoded::to_string(&params).unwrap_or_default()
        );
        items.push_str(&format!(
            "<li><a class=\"person\" id=\"p-{id}\" href=\"{href}\">{name} ({birth})</a></li>\n",
            id = escape(&p.id_number),
            href = escape(&href),
            name = escape(&p.person.full_name),
            birth = p.person.birth_date,
        ));
    }
    Html(format!(
        "<!doctype html>\n<html lang=\"vi\"><head><meta charset=\"utf-8\"><title>VNeID (mô phỏng)</title></head>\n<body><h1>Đăng nhập bằng VNeID (mô phỏng)</h1>\n<p>Chọn người đăng nhập — fictional people for development only.</p>\n<ul>\n{items}</ul></body></html>\n"
    ))
    .into_response()
}

/// The person chose to sign in: a one-time code back to the client.
async fn approve(State(eid): State<Arc<Eid>>, Query(q): Query<AuthorizeQuery>) -> Response {
    let (client_id, redirect) = match check(&eid, &q) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let state = q.state.clone().unwrap_or_default();
    if take(&eid.faults.access_denied_next) {
        return redirect_to(&redirect, &[("error", "access_denied"), ("state", &state)]);
    }
    let Some(person) = eid
        .people
        .iter()
        .find(|p| Some(&p.id_number) == q.person.as_ref())
        .cloned()
    else {
        return redirect_to(&redirect, &[("error", "access_denied"), ("state", &state)]);
    };
    let code = URL_SAFE_NO_PAD.encode(rand_bytes());
    lock(&eid.codes).insert(
        code.clone(),
        IssuedCode {
            client_id,
            redirect_uri: redirect.clone(),
            challenge: q.code_challenge.clone().unwrap_or_default(),
            nonce: q.nonce.clone(),
            person,
            expires: Instant::now() + Duration::from_secs(60),
        },
    );
    redirect_to(&redirect, &[("code", &code), ("state", &state)])
}

fn rand_bytes() -> [u8; 32] {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .expect("the system RNG works");
    b
}

fn token_error(status: StatusCode, error: &str, why: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": why})),
    )
        .into_response()
}

/// Checks a `private_key_jwt` client assertion (RFC 7523): signed by the client's key,
/// `iss` = `sub` = client id, `aud` = the token endpoint or the issuer, unexpired, and
/// its `jti` never seen before.
fn client_authenticated(eid: &Eid, form: &HashMap<String, String>) -> Result<String, Refusal> {
    let unauthorized =
        |why: &str| Box::new(token_error(StatusCode::UNAUTHORIZED, "invalid_client", why));
    if form.get("client_assertion_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    {
        return Err(unauthorized("client_assertion_type"));
    }
    let assertion = form
        .get("client_assertion")
        .ok_or_else(|| unauthorized("client_assertion"))?;
    let claims: Value = {
        // The client is named by the assertion itself; read it before checking.
        let part = assertion.split('.').nth(1).unwrap_or("");
        let raw = URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| unauthorized("assertion"))?;
        serde_json::from_slice(&raw).map_err(|_| unauthorized("assertion"))?
    };
    let client_id = claims["iss"].as_str().unwrap_or_default().to_owned();
    let client = lock(&eid.clients)
        .get(&client_id)
        .cloned()
        .ok_or_else(|| unauthorized("unknown client"))?;
    let jwk: jsonwebtoken::jwk::Jwk =
        serde_json::from_value(client.jwk.clone()).map_err(|_| unauthorized("client key"))?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| unauthorized("client key"))?;
    let mut v = Validation::new(Algorithm::ES256);
    v.set_audience(&[format!("{}/token", eid.issuer), eid.issuer.clone()]);
    v.set_issuer(&[client_id.as_str()]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let data = jsonwebtoken::decode::<Value>(assertion, &key, &v)
        .map_err(|e| unauthorized(&format!("assertion: {e}")))?;
    if data.claims["sub"] != client_id.as_str() {
        return Err(unauthorized("sub"));
    }
    let jti = data.claims["jti"]
        .as_str()
        .ok_or_else(|| unauthorized("jti"))?
        .to_owned();
    if !lock(&eid.used_assertions).insert(jti) {
        return Err(unauthorized("assertion replayed"));
    }
    Ok(client_id)
}

async fn token(State(eid): State<Arc<Eid>>, body: Bytes) -> Response {
    eid.faults.token_calls.fetch_add(1, Ordering::SeqCst);
    let delay = eid.faults.token_delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let Ok(form) = serde_urlencoded::from_bytes::<HashMap<String, String>>(&body) else {
        return token_error(StatusCode::BAD_REQUEST, "invalid_request", "form");
    };
    let client_id = match client_authenticated(&eid, &form) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let grant = |why: &str| token_error(StatusCode::BAD_REQUEST, "invalid_grant", why);
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return token_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type",
        );
    }
    // A code works once, whatever happens next.
    let Some(issued) = form.get("code").and_then(|c| lock(&eid.codes).remove(c)) else {
        return grant("unknown or used code");
    };
    if issued.expires < Instant::now() {
        return grant("expired code");
    }
    if issued.client_id != client_id || form.get("redirect_uri") != Some(&issued.redirect_uri) {
        return grant("client or redirect_uri");
    }
    let verifier = form.get("code_verifier").map(String::as_str).unwrap_or("");
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    if !(43..=128).contains(&verifier.len()) || computed != issued.challenge {
        return grant("PKCE verification failed");
    }
    let now = jiff::Timestamp::now().as_second();
    let (iat, exp) = if take(&eid.faults.expired_next) {
        (now - 600, now - 300)
    } else {
        (now, now + 300)
    };
    let nonce = if take(&eid.faults.wrong_nonce_next) {
        Some("not-the-nonce".to_owned())
    } else {
        issued.nonce
    };
    let p = &issued.person;
    let mut claims = json!({
        "iss": eid.issuer,
        "aud": client_id,
        "sub": URL_SAFE_NO_PAD.encode(Sha256::digest(format!("{}:{}", client_id, p.id_number))),
        "iat": iat,
        "exp": exp,
        "auth_time": iat,
        "acr": "vneid-level-2",
        "citizen_id": p.id_number,
        "name": p.person.full_name,
        "birthdate": p.person.birth_date.to_string(),
    });
    if let Some(n) = nonce {
        claims["nonce"] = json!(n);
    }
    let mut id_token = eid.sign(&claims);
    if take(&eid.faults.bad_signature_next) {
        // Another token's signature on these claims.
        let other = eid.sign(&json!({"iss": eid.issuer, "sub": "someone-else"}));
        let sig = other.rsplit('.').next().unwrap_or_default().to_owned();
        let keep: Vec<&str> = id_token.split('.').take(2).collect();
        id_token = format!("{}.{}", keep.join("."), sig);
    }
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({
            "access_token": URL_SAFE_NO_PAD.encode(rand_bytes()),
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": id_token,
        })),
    )
        .into_response()
}

#[derive(Deserialize)]
struct FaultRequest {
    #[serde(default)]
    access_denied_next: u32,
    #[serde(default)]
    token_delay_ms: u64,
    #[serde(default)]
    wrong_nonce_next: u32,
    #[serde(default)]
    bad_signature_next: u32,
    #[serde(default)]
    expired_next: u32,
}

async fn set_faults(State(eid): State<Arc<Eid>>, Json(f): Json<FaultRequest>) -> StatusCode {
    let x = &eid.faults;
    x.access_denied_next
        .store(f.access_denied_next, Ordering::SeqCst);
    x.token_delay_ms.store(f.token_delay_ms, Ordering::SeqCst);
    x.wrong_nonce_next
        .store(f.wrong_nonce_next, Ordering::SeqCst);
    x.bad_signature_next
        .store(f.bad_signature_next, Ordering::SeqCst);
    x.expired_next.store(f.expired_next, Ordering::SeqCst);
    StatusCode::NO_CONTENT
}

async fn rotate(State(eid): State<Arc<Eid>>) -> StatusCode {
    eid.rotate();
    StatusCode::NO_CONTENT
}
