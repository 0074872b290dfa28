//! A simulator of the province's single sign-on for officers and admins: a real HTTP server
//! on loopback publishing an OpenID configuration and a JWK set (RS256, as most SSO
//! products sign), and minting tokens in process for tests and the local runner. Its keys
//! (`data/sso-keys.json`) were made for this simulator only and protect nothing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const KEYS: &str = include_str!("../data/sso-keys.json");

struct SimKey {
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
}

struct Sso {
    issuer: String,
    keys: Vec<SimKey>,
    /// After `rotate`, the second key signs and both are published.
    rotated: AtomicBool,
    jwks_fetches: AtomicUsize,
}

/// A running SSO simulator; stops when dropped.
pub struct SsoSimulator {
    pub addr: SocketAddr,
    sso: Arc<Sso>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SsoSimulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SsoSimulator {
    /// The issuer (`iss`) of its tokens: its base URL.
    pub fn issuer(&self) -> &str {
        &self.sso.issuer
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/protocol/openid-connect/certs", self.sso.issuer)
    }

    /// How often the JWK set was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.sso.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Switches signing to a new key, published from now on next to the old one.
    pub fn rotate(&self) {
        self.sso.rotated.store(true, Ordering::SeqCst);
    }

    /// A token as the SSO would issue it: `roles` in `realm_access.roles` (Keycloak's
    /// shape) and in `role`, the agency code in `agency`.
    pub fn mint(
        &self,
        sub: &str,
        roles: &[&str],
        agency: Option<&str>,
        audience: &str,
        ttl_secs: i64,
    ) -> String {
        self.sso.mint(sub, roles, agency, audience, ttl_secs)
    }

    /// Signs arbitrary claims with the current key.
    pub fn mint_claims(&self, claims: &Value) -> String {
        self.sso.mint_claims(claims)
    }
}

impl Sso {
    fn mint(
        &self,
        sub: &str,
        roles: &[&str],
        agency: Option<&str>,
        audience: &str,
        ttl_secs: i64,
    ) -> String {
        let now = jiff::Timestamp::now().as_second();
        let mut claims = json!({
            "iss": self.issuer, "sub": sub, "aud": audience,
            "iat": now, "exp": now + ttl_secs,
            "realm_access": {"roles": roles}, "role": roles.join(" "),
            "preferred_username": sub,
        });
        if let Some(a) = agency {
            claims["agency"] = json!(a);
        }
        self.mint_claims(&claims)
    }

    fn mint_claims(&self, claims: &Value) -> String {
        let key = self.signing();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding).expect("RS256 signing works")
    }

    fn signing(&self) -> &SimKey {
        &self.keys[usize::from(self.rotated.load(Ordering::SeqCst))]
    }

    fn published(&self) -> Vec<Value> {
        let n = if self.rotated.load(Ordering::SeqCst) {
            2
        } else {
            1
        };
        self.keys[..n].iter().map(|k| k.jwk.clone()).collect()
    }
}

/// Starts the simulator on `127.0.0.1:port` (0 = any free port).
pub async fn start(port: u16) -> std::io::Result<SsoSimulator> {
    use base64::Engine;
    let doc: Value = serde_json::from_str(KEYS).expect("the SSO key file is JSON");
    let keys = doc["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| {
            let der = base64::engine::general_purpose::STANDARD
                .decode(k["pkcs1"].as_str().expect("pkcs1"))
                .expect("base64");
            SimKey {
                kid: k["kid"].as_str().expect("kid").to_owned(),
                encoding: EncodingKey::from_rsa_der(&der),
                jwk: json!({"kty": "RSA", "use": "sig", "alg": "RS256",
                    "kid": k["kid"], "n": k["n"], "e": k["e"]}),
            }
        })
        .collect();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let sso = Arc::new(Sso {
        issuer: format!("http://{addr}/realms/province"),
        keys,
        rotated: AtomicBool::new(false),
        jwks_fetches: AtomicUsize::new(0),
    });
    let app = Router::new()
        .route(
            "/realms/province/.well-known/openid-configuration",
            get(configuration),
        )
        .route("/realms/province/protocol/openid-connect/certs", get(jwks))
        .route("/realms/province/_sim/token", post(token))
        .with_state(sso.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(SsoSimulator { addr, sso, task })
}

/// For trying the runner by hand: `{"sub", "roles": [...], "agency"?, "audience"?}` →
/// `{"access_token"}`, as if the person had signed in at the SSO.
async fn token(
    State(sso): State<Arc<Sso>>,
    Json(req): Json<Value>,
) -> Result<Json<Value>, axum::http::StatusCode> {
    let sub = req["sub"]
        .as_str()
        .ok_or(axum::http::StatusCode::BAD_REQUEST)?;
    let roles: Vec<&str> = req["roles"]
        .as_array()
        .ok_or(axum::http::StatusCode::BAD_REQUEST)?
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    let t = sso.mint(
        sub,
        &roles,
        req["agency"].as_str(),
        req["audience"].as_str().unwrap_or("motcua"),
        3600,
    );
    Ok(Json(
        json!({"access_token": t, "token_type": "Bearer", "expires_in": 3600}),
    ))
}

async fn configuration(State(sso): State<Arc<Sso>>) -> Json<Value> {
    Json(json!({
        "issuer": sso.issuer,
        "jwks_uri": format!("{}/protocol/openid-connect/certs", sso.issuer),
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
}

async fn jwks(State(sso): State<Arc<Sso>>) -> Json<Value> {
    sso.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    Json(json!({"keys": sso.published()}))
}
