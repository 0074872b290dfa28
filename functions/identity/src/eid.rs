//! Sign-in with the national electronic identity (VNeID level 2) over OpenID Connect: the
//! authorization code flow with PKCE (S256), `state` and `nonce` kept server-side, one
//! use each, and client authentication by `private_key_jwt` — the shape of Singpass and
//! GOV.UK One Login.
//!
//! `GET /v1/identity/login` → the provider; `GET /v1/identity/callback` → code exchange,
//! ID token checked (signature by the provider's JWKS with rotation, `iss`, `aud`, `exp`,
//! `iat`, `nonce`), the one account found or created by the keyed hash of the personal
//! number, and the portal sent back a one-time code (`POST /v1/identity/login/exchange`
//! turns it into tokens). Tokens never travel in a URL.
//!
//! Why a one-time code and not a cookie: the portal is a front end on its own origin that
//! calls the API with `Authorization: Bearer` (what the gateway's JWT authorizer checks);
//! a session cookie would need cross-site cookies and CSRF defences on every route. The
//! code is useless after 60 s or one use. A cookie is used for one thing: it binds the
//! callback to the browser that started the sign-in (login CSRF).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, Validation};
use motcua_http::{RemoteJwks, SigningKey};
use tokio::sync::OnceCell;

use super::*;

const EID_LOGIN: &str = "eid-login";
const PORTAL_CODE: &str = "portal-code";
const BINDING_COOKIE: &str = "motcua_eid";

/// The provider's endpoints, from its discovery document.
#[derive(Debug, Clone, Deserialize)]
struct Endpoints {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

/// motcua as a relying party of the national e-ID.
pub struct EidRelyingParty {
    /// `MOTCUA_EID_ISSUER`: the provider's issuer (discovery at
    /// `{issuer}/.well-known/openid-configuration`).
    pub issuer: String,
    /// `MOTCUA_EID_CLIENT_ID`.
    pub client_id: String,
    /// `MOTCUA_EID_REDIRECT_URI`: this function's public `/v1/identity/callback` URL.
    pub redirect_uri: String,
    /// `MOTCUA_EID_ID_CLAIM` (default `citizen_id`): the claim holding the personal number.
    pub id_claim: String,
    /// `MOTCUA_PORTAL_ORIGINS`: origins (`https://host[:port]`) `return_to` may point at.
    pub portal_origins: Vec<String>,
    /// `MOTCUA_EID_LOGIN_HINT=pass`: `login_hint` (a personal number, in URLs) is passed on
    /// to the provider — for simulators and tests; refused otherwise.
    pub pass_login_hint: bool,
    /// The key of `private_key_jwt` (its public JWK is registered with the provider).
    client_key: SigningKey,
    http: reqwest::Client,
    endpoints: OnceCell<(Endpoints, RemoteJwks)>,
}

impl std::fmt::Debug for EidRelyingParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EidRelyingParty")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl EidRelyingParty {
    /// From `MOTCUA_EID_*` (none set: `Ok(None)`, no e-ID sign-in) and the client key.
    pub fn from_vars(
        get: impl Fn(&str) -> Option<String>,
        client_key: Option<SigningKey>,
    ) -> Result<Option<EidRelyingParty>, ConfigError> {
        let Some(issuer) = get("MOTCUA_EID_ISSUER").filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let need = |name: &'static str| {
            get(name)
                .filter(|s| !s.is_empty())
                .ok_or(ConfigError::Missing(name))
        };
        let client_key = client_key
            .filter(|k| k.pkcs8().is_some())
            .ok_or(ConfigError::Missing(
                "MOTCUA_EID_CLIENT_KEY_SECRET or MOTCUA_EID_CLIENT_KEY",
            ))?;
        let timeout: u64 = motcua_http::config::number(
            "MOTCUA_EID_TIMEOUT_MS",
            get("MOTCUA_EID_TIMEOUT_MS"),
            5000,
        )?;
        let portal_origins = get("MOTCUA_PORTAL_ORIGINS")
            .unwrap_or_default()
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        Ok(Some(EidRelyingParty {
            issuer: issuer.trim_end_matches('/').to_owned(),
            client_id: need("MOTCUA_EID_CLIENT_ID")?,
            redirect_uri: need("MOTCUA_EID_REDIRECT_URI")?,
            id_claim: get("MOTCUA_EID_ID_CLAIM").unwrap_or_else(|| "citizen_id".into()),
            portal_origins,
            pass_login_hint: get("MOTCUA_EID_LOGIN_HINT").as_deref() == Some("pass"),
            client_key,
            http: reqwest::Client::builder()
                .timeout(Duration::from_millis(timeout))
                .build()
                .map_err(|e| ConfigError::Invalid {
                    name: "MOTCUA_EID_TIMEOUT_MS",
                    why: e.to_string(),
                })?,
            endpoints: OnceCell::new(),
        }))
    }

    /// The provider's endpoints and keys, discovered once.
    async fn provider(&self) -> Result<&(Endpoints, RemoteJwks), Problem> {
        self.endpoints
            .get_or_try_init(|| async {
                let url = format!("{}/.well-known/openid-configuration", self.issuer);
                let doc: Endpoints = async {
                    self.http
                        .get(&url)
                        .send()
                        .await?
                        .error_for_status()?
                        .json()
                        .await
                }
                .await
                .map_err(|e: reqwest::Error| {
                    tracing::warn!(error = %e, "e-ID discovery failed");
                    eid_unavailable()
                })?;
                if doc.issuer.trim_end_matches('/') != self.issuer {
                    tracing::error!("the e-ID discovery document names another issuer");
                    return Err(eid_unavailable());
                }
                // ID tokens come from the token endpoint we call, not from strangers: a
                // key the provider rotated in is looked up within a second.
                let jwks = RemoteJwks::new(&doc.jwks_uri).with_min_refresh(Duration::from_secs(1));
                if let Err(e) = jwks.refresh().await {
                    tracing::warn!(error = %e, "the e-ID JWKS could not be fetched");
                }
                Ok((doc, jwks))
            })
            .await
    }

    /// The `private_key_jwt` assertion for one token request (RFC 7523).
    fn client_assertion(&self, audience: &str, now: i64) -> Result<String, Problem> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.client_key.kid.clone());
        let claims = serde_json::json!({
            "iss": self.client_id, "sub": self.client_id, "aud": audience,
            "jti": random_id()?, "iat": now, "exp": now + 60,
        });
        let key = EncodingKey::from_ec_der(self.client_key.pkcs8().ok_or_else(Problem::internal)?);
        jsonwebtoken::encode(&header, &claims, &key).map_err(|_| Problem::internal())
    }

    /// Whether `return_to` is an absolute URL on one of the portal origins.
    fn allowed_return(&self, return_to: &str) -> bool {
        if return_to.len() > 2048 || return_to.chars().any(|c| c.is_control() || c == '\\') {
            return false;
        }
        self.portal_origins.iter().any(|origin| {
            return_to == origin
                || return_to
                    .strip_prefix(origin.as_str())
                    .is_some_and(|rest| rest.starts_with('/') || rest.starts_with('?'))
        })
    }
}

fn eid_unavailable() -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "eid-unavailable",
        "Hệ thống định danh điện tử tạm thời không phản hồi",
        "The national e-ID is not answering",
    )
    .detail(
        "Vui lòng thử lại sau ít phút",
        "Please try again in a few minutes",
    )
    .retry_after(30)
}

fn invalid_state() -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid-state",
        "Phiên đăng nhập không hợp lệ hoặc đã hết hạn",
        "The sign-in is unknown, used or expired",
    )
    .detail(
        "Hãy bắt đầu đăng nhập lại từ cổng dịch vụ công",
        "Start signing in again from the portal",
    )
}

fn token_invalid(why: &str) -> Problem {
    tracing::warn!(why, "an e-ID ID token was refused");
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "eid-token-invalid",
        "Kết quả đăng nhập từ VNeID không hợp lệ",
        "The answer of the national e-ID is not valid",
    )
}

fn eid_not_configured() -> Problem {
    Problem::not_found().detail(
        "Chưa cấu hình đăng nhập bằng định danh điện tử",
        "No national e-ID sign-in is configured",
    )
}

fn s256(verifier: &str) -> String {
    use sha2::Digest;
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn binding_hash(key: &[u8], binding: &str) -> String {
    id_hash(key, EID_LOGIN, binding)
}

/// The sign-in kept server-side between `login` and `callback`.
#[derive(Debug, Serialize, Deserialize)]
struct LoginState {
    nonce: String,
    verifier: String,
    #[serde(default)]
    return_to: Option<String>,
    #[serde(default)]
    portal_challenge: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LoginQuery {
    /// Where to send the person back (an URL on a configured portal origin).
    pub return_to: Option<String>,
    /// Passed on to the provider (the personal number, to skip its chooser) where
    /// `MOTCUA_EID_LOGIN_HINT` allows it (simulators, tests); refused otherwise.
    pub login_hint: Option<String>,
    /// Required: BASE64URL(SHA-256(verifier)) of a random verifier the client (the portal
    /// in the browser) keeps and sends with the one-time code, so a code only works where
    /// the sign-in started: a code planted in someone else's portal (login CSRF) opens
    /// nothing.
    pub portal_challenge: Option<String>,
}

/// Starts a sign-in with the national e-ID: a redirect (302) to the provider's
/// authorization endpoint with PKCE (S256), `state` and `nonce`; the state is kept
/// server-side for 10 minutes and bound to this browser by an HttpOnly cookie.
#[utoipa::path(get, path = "/v1/identity/login", tag = "identity", params(LoginQuery),
    responses((status = 302, description = "To the national e-ID"),
        (status = 400, description = "return_to is not on a portal origin, no or a malformed portal_challenge, or a login_hint not accepted"),
        (status = 404, description = "No e-ID configured"),
        (status = 429, description = "Too many sign-ins started from this address; Retry-After"),
        (status = 503, description = "The e-ID cannot be reached; Retry-After")))]
pub(crate) async fn login(
    State(s): State<IdentityState>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<LoginQuery>,
) -> Result<Response, Problem> {
    let Some(rp) = s.eid.as_deref() else {
        return Err(eid_not_configured());
    };
    if let Some(r) = &q.return_to
        && !rp.allowed_return(r)
    {
        return Err(Problem::bad_request(
            "Địa chỉ quay lại không thuộc cổng dịch vụ công đã cấu hình",
            "return_to is not on a configured portal origin",
        ));
    }
    if q.login_hint.is_some() && !rp.pass_login_hint {
        return Err(Problem::bad_request(
            "Không nhận login_hint",
            "login_hint is not accepted here",
        ));
    }
    if q.login_hint
        .as_deref()
        .is_some_and(|h| h.len() > 12 || !h.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(Problem::bad_request(
            "login_hint phải là số định danh cá nhân",
            "login_hint must be a personal number",
        ));
    }
    let challenge_ok = |c: &str| {
        c.len() == 43
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    match (&q.return_to, q.portal_challenge.as_deref()) {
        (_, Some(c)) if !challenge_ok(c) => {
            return Err(Problem::bad_request(
                "portal_challenge phải là BASE64URL(SHA-256) của một chuỗi ngẫu nhiên",
                "portal_challenge must be BASE64URL(SHA-256) of a random verifier",
            ));
        }
        (_, None) => {
            return Err(Problem::bad_request(
                "Cần portal_challenge: BASE64URL(SHA-256) của một chuỗi ngẫu nhiên giữ ở trình duyệt",
                "portal_challenge is required: BASE64URL(SHA-256) of a random verifier the client keeps",
            ));
        }
        _ => {}
    }
    let now = s.clock.now();
    // Each start stores a state: limited per client address, counted first.
    let client = client_key_of(&headers, &s.config.proxies);
    s.config
        .logins_per_client()
        .reserve(
            s.ports.attempts.as_ref(),
            &[&format!("logins:{client}")],
            now,
            ("Đăng nhập", "sign-ins"),
        )
        .await?
        .keep();
    let (endpoints, _) = rp.provider().await?;
    let (state, nonce, verifier, binding) =
        (random_id()?, random_id()?, random_id()?, random_id()?);
    let login = LoginState {
        nonce: nonce.clone(),
        verifier: verifier.clone(),
        return_to: q.return_to.clone(),
        portal_challenge: q.portal_challenge.clone(),
    };
    s.ports
        .challenges
        .put(&Challenge {
            id: state.clone(),
            purpose: EID_LOGIN.into(),
            secret_hash: binding_hash(&s.config.id_hash_key, &binding),
            payload: serde_json::to_value(&login).map_err(|_| Problem::internal())?,
            expires: Timestamp::from_second(now.as_second() + 600).unwrap_or(now),
        })
        .await
        .map_err(store_problem)?;
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", rp.client_id.as_str()),
        ("redirect_uri", rp.redirect_uri.as_str()),
        ("scope", "openid"),
        ("state", state.as_str()),
        ("nonce", nonce.as_str()),
        ("code_challenge", ""),
        ("code_challenge_method", "S256"),
    ];
    let challenge = s256(&verifier);
    params[6].1 = challenge.as_str();
    if let Some(h) = &q.login_hint {
        params.push(("login_hint", h.as_str()));
    }
    let location = format!(
        "{}?{}",
        endpoints.authorization_endpoint,
        serde_urlencoded::to_string(&params).map_err(|_| Problem::internal())?
    );
    let secure = if rp.redirect_uri.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{BINDING_COOKIE}={binding}; Path=/v1/identity/callback; HttpOnly; SameSite=Lax; Max-Age=600{secure}"
    );
    let mut r = StatusCode::FOUND.into_response();
    let h = r.headers_mut();
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(&location).map_err(|_| Problem::internal())?,
    );
    h.insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|_| Problem::internal())?,
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    /// Set by the provider when the person declined (`access_denied`) or it failed.
    pub error: Option<String>,
}

fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// What the portal's one-time code stands for.
#[derive(Debug, Serialize, Deserialize)]
struct PortalGrant {
    account_id: Uuid,
    created: bool,
    /// The portal's challenge: the exchange must show its verifier.
    #[serde(default)]
    portal_challenge: Option<String>,
}

/// The provider sends the person back here. The state must be known, unused, unexpired
/// and started in this browser; the code is exchanged (PKCE verifier, `private_key_jwt`);
/// the ID token is checked; the one account is found or created. With `return_to` the
/// person goes back to the portal with a one-time `code` (or an `error`); without it the
/// answer is `{code, expires_in}`.
#[utoipa::path(get, path = "/v1/identity/callback", tag = "identity", params(CallbackQuery),
    responses((status = 200, description = "{code, expires_in}: the one-time code to exchange"),
        (status = 302, description = "Back to the portal with ?code= or ?error="),
        (status = 400, description = "Unknown, replayed or expired state, or a browser that did not start this sign-in"),
        (status = 401, description = "The provider's answer is not valid (signature, issuer, audience, expiry, nonce)"),
        (status = 403, description = "The person declined at the provider"),
        (status = 404, description = "No e-ID configured"),
        (status = 422, description = "The population registry does not know the person"),
        (status = 503, description = "The e-ID or the registry cannot be reached; Retry-After")))]
pub(crate) async fn callback(
    State(s): State<IdentityState>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<CallbackQuery>,
) -> Result<Response, Problem> {
    let Some(rp) = s.eid.as_deref() else {
        return Err(eid_not_configured());
    };
    let now = s.clock.now();
    let state = q
        .state
        .as_deref()
        .filter(|st| !st.is_empty() && st.len() <= 64);
    let Some(state) = state else {
        return Err(invalid_state());
    };
    let challenge = s
        .ports
        .challenges
        .get(state, now)
        .await
        .map_err(store_problem)?
        .filter(|c| c.purpose == EID_LOGIN);
    let Some(challenge) = challenge else {
        return Err(invalid_state());
    };
    let bound = cookie_value(&headers, BINDING_COOKIE).is_some_and(|b| {
        let mine = binding_hash(&s.config.id_hash_key, b);
        ct_eq(mine.as_bytes(), challenge.secret_hash.as_bytes())
    });
    if !bound {
        return Err(invalid_state());
    }
    if !s
        .ports
        .challenges
        .consume(state, now)
        .await
        .map_err(store_problem)?
    {
        return Err(invalid_state());
    }
    let login: LoginState =
        serde_json::from_value(challenge.payload).map_err(|_| Problem::internal())?;
    let outcome = finish(&s, rp, &q, &login, now).await;
    let clear =
        format!("{BINDING_COOKIE}=; Path=/v1/identity/callback; HttpOnly; SameSite=Lax; Max-Age=0");
    let mut r = match (outcome, &login.return_to) {
        (Ok(grant), Some(back)) => redirect(back, &[("code", grant.as_str())])?,
        (Ok(grant), None) => no_store(
            Json(serde_json::json!({"code": grant, "expires_in": PORTAL_CODE_SECS}))
                .into_response(),
        ),
        (Err(p), Some(back)) => {
            let kind = p.kind;
            redirect(back, &[("error", kind)])?
        }
        (Err(p), None) => return Err(p),
    };
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&clear).map_err(|_| Problem::internal())?,
    );
    Ok(r)
}

const PORTAL_CODE_SECS: i64 = 60;

fn redirect(base: &str, params: &[(&str, &str)]) -> Result<Response, Problem> {
    let sep = if base.contains('?') { '&' } else { '?' };
    let location = format!(
        "{base}{sep}{}",
        serde_urlencoded::to_string(params).map_err(|_| Problem::internal())?
    );
    let mut r = StatusCode::FOUND.into_response();
    r.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(&location).map_err(|_| Problem::internal())?,
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

#[derive(Deserialize)]
struct TokenAnswer {
    id_token: String,
}

/// The code exchange, the ID token's checks, the account: the portal's one-time code.
async fn finish(
    s: &IdentityState,
    rp: &EidRelyingParty,
    q: &CallbackQuery,
    login: &LoginState,
    now: Timestamp,
) -> Result<String, Problem> {
    if let Some(e) = &q.error {
        let why = if e == "access_denied" {
            "declined"
        } else {
            "provider error"
        };
        tracing::info!(why, "e-ID sign-in not completed");
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "eid-declined",
            "Đăng nhập bằng VNeID không hoàn tất",
            "The sign-in with the national e-ID was not completed",
        ));
    }
    let code = q
        .code
        .as_deref()
        .filter(|c| !c.is_empty() && c.len() <= 512)
        .ok_or_else(invalid_state)?;
    let (endpoints, jwks) = rp.provider().await?;
    let assertion = rp.client_assertion(&endpoints.token_endpoint, now.as_second())?;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", rp.redirect_uri.as_str()),
        ("code_verifier", login.verifier.as_str()),
        ("client_id", rp.client_id.as_str()),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion.as_str()),
    ];
    let body = serde_urlencoded::to_string(form).map_err(|_| Problem::internal())?;
    let answer = rp
        .http
        .post(&endpoints.token_endpoint)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "the e-ID token endpoint did not answer");
            eid_unavailable()
        })?;
    let status = answer.status();
    if status.is_server_error() {
        tracing::warn!(%status, "the e-ID token endpoint failed");
        return Err(eid_unavailable());
    }
    if !status.is_success() {
        tracing::warn!(%status, "the e-ID token endpoint refused the code");
        return Err(token_invalid("code refused"));
    }
    let tokens: TokenAnswer = answer
        .json()
        .await
        .map_err(|_| token_invalid("token answer"))?;
    let header =
        jsonwebtoken::decode_header(&tokens.id_token).map_err(|_| token_invalid("header"))?;
    if !matches!(header.alg, Algorithm::ES256 | Algorithm::RS256) {
        return Err(token_invalid("algorithm"));
    }
    let kid = header.kid.ok_or_else(|| token_invalid("kid"))?;
    let key = jwks
        .find(&kid, header.alg)
        .await
        .ok_or_else(|| token_invalid("unknown kid"))?;
    let mut v = Validation::new(header.alg);
    v.set_issuer(&[endpoints.issuer.as_str()]);
    v.set_audience(&[rp.client_id.as_str()]);
    v.set_required_spec_claims(&["exp", "iat", "iss", "aud"]);
    v.leeway = 60;
    let claims = jsonwebtoken::decode::<serde_json::Value>(&tokens.id_token, &key, &v)
        .map_err(|e| token_invalid(&format!("{:?}", e.kind())))?
        .claims;
    if claims["iat"]
        .as_i64()
        .is_none_or(|iat| iat > now.as_second() + 60)
    {
        return Err(token_invalid("iat"));
    }
    let nonce_ok = claims["nonce"]
        .as_str()
        .is_some_and(|n| ct_eq(n.as_bytes(), login.nonce.as_bytes()));
    if !nonce_ok {
        return Err(token_invalid("nonce"));
    }
    let id = claims[rp.id_claim.as_str()]
        .as_str()
        .and_then(|c| CitizenId::parse(c).ok())
        .ok_or_else(|| token_invalid("personal number claim"))?;
    let mut hashes = id_hashes(s, "citizen", id.as_str())
        .into_iter()
        .map(|(_, h)| h);
    let hash = hashes.next().unwrap_or_default();
    let older: Vec<String> = hashes.collect();
    let looked_up = registry_person(s, &id).await;
    let outcome = match &looked_up {
        Ok(_) => "found",
        Err(RegistryError::NotFound) => "not-found",
        Err(_) => "unavailable",
    };
    audit_entry(s, EID_HOLDER, "eid-sign-in", &hash, outcome, now).await?;
    let person = match looked_up {
        Ok(p) => p,
        Err(RegistryError::NotFound) => {
            return Err(unprocessable(
                "not-in-registry",
                "Cơ sở dữ liệu quốc gia về dân cư không có thông tin của bạn",
                "The national population database has no record of you",
            ));
        }
        Err(e) => return Err(registry_problem(&e)),
    };
    let account = Account {
        id: Uuid::now_v7(),
        kind: AccountKind::Citizen,
        id_hash: hash.clone(),
        id_hash_kid: Some(current_kid(s)),
        owner: Some(owner_of(s, AccountKind::Citizen, id.as_str())),
        assurance: 2,
        name: person.full_name,
        birth_date: Some(person.birth_date),
        sex: Some(person.sex),
        phone: person.phone,
        email: None,
        preferences: ChannelPreferences::default(),
        created_at: now,
        updated_at: now,
        version: 1,
        sealed: None,
    };
    let (stored, created) = one_account(s, &account, &older).await?;
    s.ports
        .attempts
        .clear(&format!("id:{hash}"))
        .await
        .map_err(store_problem)?;
    let _ = audit_entry(s, EID_HOLDER, "eid-sign-in", &hash, "signed-in", now).await;
    tracing::info!(account = %stored.id, created, "signed in with the e-ID");
    let grant = random_id()?;
    s.ports
        .challenges
        .put(&Challenge {
            id: grant.clone(),
            purpose: PORTAL_CODE.into(),
            secret_hash: String::new(),
            payload: serde_json::to_value(PortalGrant {
                account_id: stored.id,
                created,
                portal_challenge: login.portal_challenge.clone(),
            })
            .map_err(|_| Problem::internal())?,
            expires: Timestamp::from_second(now.as_second() + PORTAL_CODE_SECS).unwrap_or(now),
        })
        .await
        .map_err(store_problem)?;
    Ok(grant)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginExchange {
    /// The one-time code the callback gave the portal.
    #[schema(max_length = 64)]
    pub code: String,
    /// The verifier of the `portal_challenge` the sign-in started with.
    #[serde(default)]
    #[schema(max_length = 128)]
    pub verifier: Option<String>,
}

/// The portal turns the callback's one-time code (60 s, single use) into the tokens of
/// the sign-in, with the verifier of the sign-in's `portal_challenge`. The code
/// is 256 random bits, so wrong codes need no per-address limit (one that a stranger on a
/// shared address could use to close the e-ID path for everyone there).
#[utoipa::path(post, path = "/v1/identity/login/exchange", tag = "identity",
    request_body = LoginExchange,
    responses((status = 200, body = VerifiedResponse),
        (status = 400, description = "Unknown, used or expired code, or a verifier that does not fit"),
        (status = 413, description = "Body too large"),
        (status = 415, description = "Not JSON"),
        (status = 422, description = "The body does not have the expected shape")))]
pub(crate) async fn login_exchange(
    State(s): State<IdentityState>,
    JsonBody(req): JsonBody<LoginExchange>,
) -> Result<Response, Problem> {
    let now = s.clock.now();
    let valid = !req.code.is_empty() && req.code.len() <= 64;
    let grant = if valid {
        s.ports
            .challenges
            .get(&req.code, now)
            .await
            .map_err(store_problem)?
    } else {
        None
    };
    let Some(grant) = grant.filter(|g| g.purpose == PORTAL_CODE) else {
        return Err(invalid_state());
    };
    let g: PortalGrant =
        serde_json::from_value(grant.payload.clone()).map_err(|_| Problem::internal())?;
    let shown = req
        .verifier
        .as_deref()
        .filter(|v| v.len() <= 128)
        .map(s256)
        .unwrap_or_default();
    let expected = g.portal_challenge.as_deref().unwrap_or_default();
    if expected.is_empty() || !ct_eq(shown.as_bytes(), expected.as_bytes()) {
        return Err(invalid_state());
    }
    if !s
        .ports
        .challenges
        .consume(&grant.id, now)
        .await
        .map_err(store_problem)?
    {
        return Err(invalid_state());
    }
    let account = s
        .ports
        .accounts
        .get(g.account_id)
        .await
        .map_err(store_problem)?
        .ok_or_else(invalid_state)?;
    signed_in(&s, &account, g.created, now).await
}

/// Reads the relying party's client key: `[{"kid", "pkcs8"}]` as the signing keys are.
pub fn client_key_from_json(json: &str) -> Result<SigningKey, ConfigError> {
    motcua_http::signing_keys_from_json(json)
        .ok()
        .and_then(|keys| keys.into_iter().next())
        .ok_or(ConfigError::Invalid {
            name: "MOTCUA_EID_CLIENT_KEY",
            why: "needs a JSON list with one ES256 key (kid, pkcs8)".into(),
        })
}
