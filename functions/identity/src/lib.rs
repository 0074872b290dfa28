//! The identity function: a person or business proves who they are against the national
//! registries and gets the one account every other function trusts.
//!
//! Routes: `POST /v1/identity/citizens/verify`, `POST /v1/identity/citizens/register`,
//! `POST /v1/identity/businesses/verify`,
//! `GET|PATCH|DELETE /v1/me`, `GET /v1/admin/audit`, `POST /v1/identity/token/refresh`,
//! `POST /v1/identity/token/revoke`, `POST /v1/identity/sso/exchange`,
//! `GET /.well-known/jwks.json`, `GET /.well-known/openid-configuration`,
//! `GET /v1/identity/openapi.json`.

pub mod config;
pub mod keys;
pub mod sealed;

use std::sync::Arc;

use axum::extract::{FromRef, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use jiff::Timestamp;
use jiff::civil::Date;
use motcua_domain::identity::{FieldMatch, PersonComparison, RegistryPerson, names_match};
use motcua_domain::ids::{ClaimMismatch, Sex};
use motcua_domain::{CitizenId, Lang, Localized, PhoneNumber, Role, TaxCode};
use motcua_http::{Authenticator, Caller, Clock, JsonBody, Problem, client_key, store_problem};
use motcua_ports::identity::{
    Account, AccountKind, AuditEntry, BusinessRegistry, ChannelPreferences, IdentityPorts,
    PopulationRegistry, RefreshRecord, RefreshUse, RegistryError,
};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub use config::IdentityConfig;

/// What every identity handler gets.
#[derive(Clone)]
pub struct IdentityState {
    pub ports: IdentityPorts,
    pub population: Arc<dyn PopulationRegistry>,
    pub business: Arc<dyn BusinessRegistry>,
    pub auth: Arc<Authenticator>,
    pub clock: Arc<dyn Clock>,
    pub config: Arc<IdentityConfig>,
    /// The province SSO whose officers' and admins' tokens are exchanged for motcua tokens;
    /// `None`: no SSO configured (the exchange answers 404).
    pub sso: Option<Arc<motcua_http::SsoTrust>>,
}

impl FromRef<IdentityState> for Arc<Authenticator> {
    fn from_ref(s: &IdentityState) -> Self {
        s.auth.clone()
    }
}

#[derive(OpenApi)]
#[openapi(info(
    title = "motcua identity API",
    description = "Verify a person or business against the national registries; the one account.",
    version = "1.0.0"
))]
struct ApiDoc;

/// Routes and their OpenAPI document.
pub fn api() -> (Router<IdentityState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(verify_citizen))
        .routes(routes!(register_citizen))
        .routes(routes!(verify_business))
        .routes(routes!(get_me, patch_me, delete_me))
        .routes(routes!(audit))
        .routes(routes!(jwks))
        .routes(routes!(openid_configuration))
        .routes(routes!(sso_exchange))
        .routes(routes!(refresh))
        .routes(routes!(revoke))
        .split_for_parts()
}

/// Every (method, path) this function serves.
pub fn route_table() -> std::collections::BTreeSet<(String, String)> {
    let mut out = std::collections::BTreeSet::new();
    for (path, item) in api().1.paths.paths {
        for (m, present) in [
            ("GET", item.get.is_some()),
            ("POST", item.post.is_some()),
            ("PATCH", item.patch.is_some()),
            ("DELETE", item.delete.is_some()),
        ] {
            if present {
                out.insert((m.to_owned(), path.clone()));
            }
        }
    }
    out.insert(("GET".into(), "/v1/identity/openapi.json".into()));
    out
}

/// The function's router (without the problem/CORS layers, which the host adds).
pub fn routes(state: IdentityState) -> Router {
    let (routes, doc) = api();
    let doc = Arc::new(doc);
    routes
        .route(
            "/v1/identity/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .with_state(state)
}

/// The function's complete router for Lambda.
pub fn router(state: IdentityState) -> Router {
    routes(state)
        .layer(axum::extract::DefaultBodyLimit::max(
            motcua_http::DEFAULT_BODY_LIMIT,
        ))
        .layer(axum::middleware::from_fn(motcua_http::localize))
}

/// Keyed hash of an ID number or tax code: how identities are stored and looked up.
pub fn id_hash(key: &[u8], kind: &str, value: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(kind.as_bytes());
    mac.update(b":");
    mac.update(value.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Who is calling, for per-client attempt limits: the first `X-Forwarded-For` address
/// (set by API Gateway / the load balancer), else `local`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CitizenClaim {
    /// 12-digit personal identification number.
    pub citizen_id: String,
    pub full_name: String,
    #[schema(value_type = String, format = Date)]
    pub birth_date: Date,
    pub sex: Sex,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BusinessClaim {
    pub tax_code: String,
    pub name: String,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VerifiedResponse {
    pub account_id: Uuid,
    /// The account was created by this verification.
    pub created: bool,
    /// 1: self-declared; 2: matched against the registry.
    pub assurance: u8,
    #[serde(flatten)]
    pub tokens: TokenResponse,
}

/// An access token and the refresh token that gets the next one.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    /// Seconds.
    pub expires_in: i64,
    /// Single use: each refresh returns a new one; reusing a spent one revokes them all.
    pub refresh_token: String,
    pub refresh_expires_in: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountView {
    pub id: Uuid,
    pub kind: String,
    pub assurance: u8,
    pub name: String,
    #[schema(value_type = Option<String>, format = Date)]
    pub birth_date: Option<Date>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub preferences: PreferencesView,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub struct PreferencesView {
    pub sms: bool,
    pub email: bool,
    pub zalo: bool,
}

impl From<ChannelPreferences> for PreferencesView {
    fn from(p: ChannelPreferences) -> Self {
        PreferencesView {
            sms: p.sms,
            email: p.email,
            zalo: p.zalo,
        }
    }
}

impl AccountView {
    fn of(a: Account) -> AccountView {
        AccountView {
            id: a.id,
            kind: a.kind.as_str().into(),
            assurance: a.assurance,
            name: a.name,
            birth_date: a.birth_date,
            phone: a.phone,
            email: a.email,
            preferences: a.preferences.into(),
        }
    }
}

fn unprocessable(kind: &'static str, vi: &str, en: &str) -> Problem {
    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, kind, vi, en)
}

fn parse_contacts(
    phone: Option<&str>,
    email: Option<&str>,
) -> Result<(Option<String>, Option<String>), Problem> {
    let phone = match phone.map(str::trim).filter(|s| !s.is_empty()) {
        Some(p) => Some(
            PhoneNumber::parse(p)
                .map_err(|e| {
                    unprocessable(
                        "invalid-contact",
                        "Số điện thoại không hợp lệ",
                        "Invalid phone",
                    )
                    .detail_from(&e)
                })?
                .as_str()
                .to_owned(),
        ),
        None => None,
    };
    let email = match email.map(str::trim).filter(|s| !s.is_empty()) {
        Some(e) => {
            let ok = e.len() <= 254
                && e.split_once('@').is_some_and(|(local, domain)| {
                    !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
                })
                && !e.contains(char::is_whitespace);
            if !ok {
                return Err(unprocessable(
                    "invalid-contact",
                    "Địa chỉ email không hợp lệ",
                    "Invalid email address",
                ));
            }
            Some(e.to_lowercase())
        }
        None => None,
    };
    Ok((phone, email))
}

/// Refuses (429) when `key` failed too often within the window.
async fn check_lock(s: &IdentityState, key: &str, now: Timestamp) -> Result<(), Problem> {
    s.config
        .lockout()
        .check(
            s.ports.attempts.as_ref(),
            key,
            now,
            ("Đã xác thực", "verifications"),
        )
        .await
}

async fn record_failure(s: &IdentityState, keys: &[&str], now: Timestamp) -> Result<(), Problem> {
    s.config
        .lockout()
        .record(s.ports.attempts.as_ref(), keys, now)
        .await
}

async fn audit_entry(
    s: &IdentityState,
    actor: &str,
    purpose: &str,
    hash: &str,
    outcome: &str,
    now: Timestamp,
) -> Result<(), Problem> {
    s.ports
        .audit
        .append(&AuditEntry {
            id: Uuid::now_v7(),
            at: now,
            actor: actor.to_owned(),
            purpose: purpose.to_owned(),
            id_hash: hash.to_owned(),
            outcome: outcome.to_owned(),
        })
        .await
        .map_err(store_problem)
}

fn registry_problem(e: &RegistryError) -> Problem {
    match e {
        RegistryError::Unavailable { retry_after_secs } => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "registry-unavailable",
            "Cơ sở dữ liệu quốc gia tạm thời không phản hồi",
            "The national registry is not answering",
        )
        .detail(
            "Không kết nối được cơ sở dữ liệu quốc gia; vui lòng thử lại sau ít phút",
            "The national registry cannot be reached; please try again in a few minutes",
        )
        .retry_after(*retry_after_secs),
        RegistryError::NotFound => unprocessable(
            "not-in-registry",
            "Không tìm thấy trong cơ sở dữ liệu quốc gia",
            "Not found in the national registry",
        ),
        RegistryError::Refused(why) => {
            tracing::error!(error = %why, "registry refused our request");
            Problem::internal()
        }
    }
}

fn mismatch_problem(cmp: &PersonComparison) -> Problem {
    let fields = serde_json::to_value(cmp).unwrap_or_default();
    let wrong: Vec<&str> = [
        ("full_name", cmp.full_name),
        ("birth_date", cmp.birth_date),
        ("sex", cmp.sex),
    ]
    .iter()
    .filter(|(_, m)| *m == FieldMatch::Mismatch)
    .map(|(n, _)| *n)
    .collect();
    unprocessable(
        "registry-mismatch",
        "Thông tin không khớp với cơ sở dữ liệu quốc gia",
        "The details do not match the national registry",
    )
    .detail(
        format!("Các trường không khớp: {}", wrong.join(", ")),
        format!("Fields that do not match: {}", wrong.join(", ")),
    )
    .extra("fields", fields)
}

/// A citizen's claim that passed the offline checks.
struct CheckedClaim {
    id: CitizenId,
    client: String,
    hash: String,
    id_key: String,
    phone: Option<String>,
    email: Option<String>,
}

/// Lock-outs, then the offline checks of a claim (number rules, birth year and sex digits,
/// contacts); a claim inconsistent with its number counts as a failed attempt.
async fn check_citizen_claim(
    s: &IdentityState,
    headers: &HeaderMap,
    claim: &CitizenClaim,
    now: Timestamp,
) -> Result<CheckedClaim, Problem> {
    let client = client_key(headers, s.config.trusted_proxy_hops);
    check_lock(s, &client, now).await?;
    let id = CitizenId::parse(&claim.citizen_id).map_err(|e| {
        unprocessable(
            "invalid-citizen-id",
            "Số định danh cá nhân không hợp lệ",
            "Invalid personal identification number",
        )
        .detail(
            format!("Số định danh cá nhân {}", e.message(Lang::Vi)),
            format!("The personal identification number {}", e.message(Lang::En)),
        )
    })?;
    let hash = id_hash(&s.config.id_hash_key, "citizen", id.as_str());
    let id_key = format!("id:{hash}");
    check_lock(s, &id_key, now).await?;
    let (phone, email) = parse_contacts(claim.phone.as_deref(), claim.email.as_deref())?;
    if let Err(mismatches) = id.check_claim(claim.birth_date, claim.sex) {
        record_failure(s, &[&client, &id_key], now).await?;
        let what: Vec<(&str, &str)> = mismatches
            .iter()
            .map(|m| match m {
                ClaimMismatch::BirthYear => ("năm sinh", "birth year"),
                ClaimMismatch::Sex => ("giới tính", "sex"),
            })
            .collect();
        return Err(unprocessable(
            "claim-inconsistent",
            "Số định danh không khớp với thông tin khai báo",
            "The number does not fit the details given",
        )
        .detail(
            format!(
                "Số định danh cá nhân không khớp với {} đã khai",
                what.iter().map(|w| w.0).collect::<Vec<_>>().join(", ")
            ),
            format!(
                "The personal number does not fit the declared {}",
                what.iter().map(|w| w.1).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    Ok(CheckedClaim {
        id,
        client,
        hash,
        id_key,
        phone,
        email,
    })
}

/// Self-declared registration (assurance level 1), for when the registry cannot be asked
/// (an outage) or the person will verify later: only the offline checks are made. It
/// creates a new account only — a number that already has one answers 409 (sign in by
/// verifying) — and every registration counts against a per-client limit (four times the
/// verification lock-out), so numbers cannot be claimed in bulk. Level-1 accounts can follow and prepare, not submit dossiers;
/// verifying against the registry later replaces the account with a level-2 one.
#[utoipa::path(post, path = "/v1/identity/citizens/register", tag = "identity",
    request_body = CitizenClaim,
    responses((status = 201, body = VerifiedResponse),
        (status = 409, description = "This number already has an account: verify to sign in"),
        (status = 422, description = "Number inconsistent with the claim"),
        (status = 429, description = "Too many attempts; Retry-After")))]
async fn register_citizen(
    State(s): State<IdentityState>,
    headers: HeaderMap,
    JsonBody(claim): JsonBody<CitizenClaim>,
) -> Result<Response, Problem> {
    let now = s.clock.now();
    let checked = check_citizen_claim(&s, &headers, &claim, now).await?;
    // Every registration counts for the client: a person registers once, but one address
    // may serve a whole one-stop shop or commune office, so the limit is four times that
    // of failed verifications, counted apart from them.
    let register_key = format!("register:{}", checked.client);
    let limits = motcua_http::Lockout {
        failures: s.config.lockout_failures.saturating_mul(4),
        ..s.config.lockout()
    };
    let attempts = s.ports.attempts.as_ref();
    limits
        .check(attempts, &register_key, now, ("Đăng ký", "registrations"))
        .await?;
    limits.record(attempts, &[&register_key], now).await?;
    let name = claim
        .full_name
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if name.is_empty() || name.chars().count() > 100 {
        return Err(unprocessable(
            "invalid-name",
            "Họ và tên không hợp lệ",
            "Invalid full name",
        ));
    }
    let account = Account {
        id: Uuid::now_v7(),
        kind: AccountKind::Citizen,
        id_hash: checked.hash.clone(),
        assurance: 1,
        name,
        birth_date: Some(claim.birth_date),
        sex: Some(claim.sex),
        phone: checked.phone,
        email: checked.email,
        preferences: ChannelPreferences::default(),
        created_at: now,
        updated_at: now,
        version: 1,
        sealed: None,
    };
    let (stored, created) = s
        .ports
        .accounts
        .create_if_absent(&account)
        .await
        .map_err(store_problem)?;
    audit_entry(
        &s,
        &checked.client,
        "citizen-self-declared",
        &checked.hash,
        if created { "self-declared" } else { "exists" },
        now,
    )
    .await?;
    if !created {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "account-exists",
            "Số định danh này đã có tài khoản",
            "This number already has an account",
        )
        .detail(
            "Hãy đăng nhập bằng cách xác thực với Cơ sở dữ liệu quốc gia về dân cư",
            "Sign in by verifying against the national population database",
        ));
    }
    tracing::info!(account = %stored.id, "self-declared account created");
    let mut r = signed_in(&s, &stored, created, now).await?;
    *r.status_mut() = StatusCode::CREATED;
    Ok(r)
}

/// Verify a person: offline checks of the personal number, then the population registry.
/// On a match the one account is created (or found) and an access token issued.
#[utoipa::path(post, path = "/v1/identity/citizens/verify", tag = "identity",
    request_body = CitizenClaim,
    responses((status = 200, body = VerifiedResponse),
        (status = 422, description = "Number inconsistent with the claim, not in the registry, or fields mismatch (listed)"),
        (status = 429, description = "Too many failed attempts; Retry-After"),
        (status = 503, description = "Registry unavailable; Retry-After")))]
async fn verify_citizen(
    State(s): State<IdentityState>,
    headers: HeaderMap,
    JsonBody(claim): JsonBody<CitizenClaim>,
) -> Result<Response, Problem> {
    let now = s.clock.now();
    let CheckedClaim {
        client,
        hash,
        id_key,
        phone,
        email,
        id,
    } = check_citizen_claim(&s, &headers, &claim, now).await?;
    let claimed = RegistryPerson {
        full_name: claim.full_name.clone(),
        birth_date: claim.birth_date,
        sex: claim.sex,
    };
    let purpose = "citizen-verification";
    let record = match s.ports.cache.get(&hash, now).await.map_err(store_problem)? {
        Some(p) => {
            audit_entry(&s, &client, purpose, &hash, "cache-hit", now).await?;
            p
        }
        None => match s.population.person(&id).await {
            Ok(p) => {
                let expires =
                    Timestamp::from_second(now.as_second() + s.config.cache_secs).unwrap_or(now);
                s.ports
                    .cache
                    .put(&hash, &p, expires)
                    .await
                    .map_err(store_problem)?;
                audit_entry(&s, &client, purpose, &hash, "found", now).await?;
                p
            }
            Err(e) => {
                let outcome = match e {
                    RegistryError::NotFound => "not-found",
                    RegistryError::Unavailable { .. } => "unavailable",
                    RegistryError::Refused(_) => "refused",
                };
                audit_entry(&s, &client, purpose, &hash, outcome, now).await?;
                if e == RegistryError::NotFound {
                    record_failure(&s, &[&client, &id_key], now).await?;
                }
                return Err(registry_problem(&e));
            }
        },
    };
    let cmp = PersonComparison::compare(&claimed, &record);
    if !cmp.all_match() {
        record_failure(&s, &[&client, &id_key], now).await?;
        audit_entry(&s, &client, purpose, &hash, "mismatch", now).await?;
        return Err(mismatch_problem(&cmp));
    }
    s.ports
        .attempts
        .clear(&id_key)
        .await
        .map_err(store_problem)?;
    let account = Account {
        id: Uuid::now_v7(),
        kind: AccountKind::Citizen,
        id_hash: hash,
        assurance: 2,
        name: record.full_name,
        birth_date: Some(record.birth_date),
        sex: Some(record.sex),
        phone,
        email,
        preferences: ChannelPreferences::default(),
        created_at: now,
        updated_at: now,
        version: 1,
        sealed: None,
    };
    issue(&s, account, now).await
}

/// Verify a business by tax code and name against the business registry.
#[utoipa::path(post, path = "/v1/identity/businesses/verify", tag = "identity",
    request_body = BusinessClaim,
    responses((status = 200, body = VerifiedResponse),
        (status = 422, description = "Invalid tax code, not in the registry, name mismatch or not active"),
        (status = 429, description = "Too many failed attempts; Retry-After"),
        (status = 503, description = "Registry unavailable; Retry-After")))]
async fn verify_business(
    State(s): State<IdentityState>,
    headers: HeaderMap,
    JsonBody(claim): JsonBody<BusinessClaim>,
) -> Result<Response, Problem> {
    let now = s.clock.now();
    let client = client_key(&headers, s.config.trusted_proxy_hops);
    check_lock(&s, &client, now).await?;
    let tax = TaxCode::parse(&claim.tax_code).map_err(|e| {
        unprocessable(
            "invalid-tax-code",
            "Mã số thuế không hợp lệ",
            "Invalid tax code",
        )
        .detail(
            format!("Mã số thuế {}", e.message(Lang::Vi)),
            format!("The tax code {}", e.message(Lang::En)),
        )
    })?;
    let hash = id_hash(&s.config.id_hash_key, "business", tax.as_str());
    let id_key = format!("id:{hash}");
    check_lock(&s, &id_key, now).await?;
    let (phone, email) = parse_contacts(claim.phone.as_deref(), claim.email.as_deref())?;
    let purpose = "business-verification";
    let record = match s.business.business(&tax).await {
        Ok(b) => b,
        Err(e) => {
            let outcome = if e == RegistryError::NotFound {
                "not-found"
            } else {
                "unavailable"
            };
            audit_entry(&s, &client, purpose, &hash, outcome, now).await?;
            if e == RegistryError::NotFound {
                record_failure(&s, &[&client, &id_key], now).await?;
            }
            return Err(registry_problem(&e));
        }
    };
    if !names_match(&claim.name, &record.name) {
        record_failure(&s, &[&client, &id_key], now).await?;
        audit_entry(&s, &client, purpose, &hash, "mismatch", now).await?;
        return Err(unprocessable(
            "registry-mismatch",
            "Tên không khớp với cơ sở dữ liệu đăng ký doanh nghiệp",
            "The name does not match the business registry",
        )
        .extra("fields", serde_json::json!({"name": "mismatch"})));
    }
    audit_entry(&s, &client, purpose, &hash, "match", now).await?;
    if !record.active {
        return Err(unprocessable(
            "business-inactive",
            "Doanh nghiệp không còn hoạt động",
            "The business is not active",
        ));
    }
    s.ports
        .attempts
        .clear(&id_key)
        .await
        .map_err(store_problem)?;
    let account = Account {
        id: Uuid::now_v7(),
        kind: AccountKind::Business,
        id_hash: hash,
        assurance: 2,
        name: record.name,
        birth_date: None,
        sex: None,
        phone,
        email,
        preferences: ChannelPreferences::default(),
        created_at: now,
        updated_at: now,
        version: 1,
        sealed: None,
    };
    issue(&s, account, now).await
}

fn token_hash(token: &str) -> String {
    use sha2::Digest;
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new access token and a new refresh token in `family`.
async fn tokens(
    s: &IdentityState,
    account_id: Uuid,
    assurance: u8,
    family: Uuid,
    now: Timestamp,
) -> Result<TokenResponse, Problem> {
    use base64::Engine;
    use ring::rand::SecureRandom;
    let ttl = s.config.access_token_ttl_secs;
    let sub = account_id.to_string();
    let access_token = s
        .auth
        .mint_citizen(&sub, assurance, now.as_second(), ttl)
        .ok_or_else(no_signing_key)?;
    let mut raw = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut raw)
        .map_err(|_| Problem::internal())?;
    let refresh_token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let refresh_ttl = s.config.refresh_token_ttl_secs;
    s.ports
        .refresh
        .put(&RefreshRecord {
            token_hash: token_hash(&refresh_token),
            account_id,
            family,
            expires: Timestamp::from_second(now.as_second() + refresh_ttl).unwrap_or(now),
        })
        .await
        .map_err(store_problem)?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer".into(),
        expires_in: ttl,
        refresh_token,
        refresh_expires_in: refresh_ttl,
    })
}

/// No ES256 key can sign yet (a signing-keys secret before its first rotation).
fn no_signing_key() -> Problem {
    tracing::error!("no active ES256 signing key: account tokens cannot be issued");
    Problem::unavailable().retry_after(30)
}

fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Creates the account unless it exists, and issues tokens for it (a new token family).
async fn issue(s: &IdentityState, account: Account, now: Timestamp) -> Result<Response, Problem> {
    let (mut stored, mut created) = s
        .ports
        .accounts
        .create_if_absent(&account)
        .await
        .map_err(store_problem)?;
    if stored.assurance < account.assurance {
        // A self-declared account on this number, now matched against the registry. Whoever
        // declared it is not known to be this person: the account is replaced by a new one
        // (new id), so the declarer's tokens and sessions open nothing of the person's.
        s.ports
            .accounts
            .erase(&stored)
            .await
            .map_err(store_problem)?;
        (stored, created) = s
            .ports
            .accounts
            .create_if_absent(&account)
            .await
            .map_err(store_problem)?;
        tracing::info!(account = %stored.id, "self-declared account replaced by a registry-matched one");
    }
    tracing::info!(account = %stored.id, created, "identity verified");
    signed_in(s, &stored, created, now).await
}

/// The answer of a sign-in: the account and the tokens of a new sign-in (refresh family).
async fn signed_in(
    s: &IdentityState,
    account: &Account,
    created: bool,
    now: Timestamp,
) -> Result<Response, Problem> {
    let body = VerifiedResponse {
        account_id: account.id,
        created,
        assurance: account.assurance,
        tokens: tokens(s, account.id, account.assurance, Uuid::now_v7(), now).await?,
    };
    Ok(no_store(Json(body).into_response()))
}

fn bad_refresh(vi: &str, en: &str) -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "invalid-refresh-token",
        "Phiên đăng nhập không còn hiệu lực",
        "The session is no longer valid",
    )
    .detail(vi, en)
}

/// Exchange a refresh token for a new access token and a new refresh token. A refresh
/// token works once; presenting a spent one revokes every token of its sign-in.
#[utoipa::path(post, path = "/v1/identity/token/refresh", tag = "identity",
    request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, description = "Unknown, expired, spent or revoked refresh token")))]
async fn refresh(
    State(s): State<IdentityState>,
    JsonBody(req): JsonBody<RefreshRequest>,
) -> Result<Response, Problem> {
    let now = s.clock.now();
    let record = match s
        .ports
        .refresh
        .spend(&token_hash(&req.refresh_token))
        .await
        .map_err(store_problem)?
    {
        RefreshUse::Fresh(r) => r,
        RefreshUse::Reused(r) => {
            s.ports
                .refresh
                .revoke_family(r.family)
                .await
                .map_err(store_problem)?;
            tracing::warn!(account = %r.account_id, "spent refresh token presented again: family revoked");
            return Err(bad_refresh(
                "Mã làm mới đã được dùng; vì an toàn, mọi phiên của lần đăng nhập này đã bị hủy",
                "This refresh token was already used; for safety every token of this sign-in is revoked",
            ));
        }
        RefreshUse::NotFound => {
            return Err(bad_refresh(
                "Mã làm mới không hợp lệ",
                "Unknown refresh token",
            ));
        }
    };
    if record.expires <= now {
        return Err(bad_refresh(
            "Mã làm mới đã hết hạn",
            "The refresh token has expired",
        ));
    }
    if s.ports
        .refresh
        .family_revoked(record.family)
        .await
        .map_err(store_problem)?
    {
        return Err(bad_refresh(
            "Phiên đăng nhập đã bị thu hồi",
            "The session was revoked",
        ));
    }
    let Some(account) = s
        .ports
        .accounts
        .get(record.account_id)
        .await
        .map_err(store_problem)?
    else {
        return Err(bad_refresh(
            "Tài khoản không còn tồn tại",
            "The account no longer exists",
        ));
    };
    let body = tokens(&s, account.id, account.assurance, record.family, now).await?;
    Ok(no_store(Json(body).into_response()))
}

/// Sign out: revoke the refresh token and every token of its sign-in. Always 204.
#[utoipa::path(post, path = "/v1/identity/token/revoke", tag = "identity",
    request_body = RefreshRequest,
    responses((status = 204, description = "Revoked (or unknown)")))]
async fn revoke(
    State(s): State<IdentityState>,
    JsonBody(req): JsonBody<RefreshRequest>,
) -> Result<Response, Problem> {
    match s
        .ports
        .refresh
        .spend(&token_hash(&req.refresh_token))
        .await
        .map_err(store_problem)?
    {
        RefreshUse::Fresh(r) | RefreshUse::Reused(r) => s
            .ports
            .refresh
            .revoke_family(r.family)
            .await
            .map_err(store_problem)?,
        RefreshUse::NotFound => {}
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn my_account(s: &IdentityState, caller: &motcua_domain::Actor) -> Result<Account, Problem> {
    if caller.role != Role::Citizen {
        return Err(Problem::forbidden(
            "Chức năng dành cho người dân và doanh nghiệp",
            "This is for citizens and businesses",
        ));
    }
    let id = Uuid::parse_str(&caller.subject).map_err(|_| {
        Problem::not_found().detail("Chưa có tài khoản định danh", "No verified account")
    })?;
    s.ports
        .accounts
        .get(id)
        .await
        .map_err(store_problem)?
        .ok_or_else(|| {
            Problem::not_found().detail("Chưa có tài khoản định danh", "No verified account")
        })
}

/// The caller's account: verified name, birth date, contacts, channel preferences.
#[utoipa::path(get, path = "/v1/me", tag = "identity",
    responses((status = 200, body = AccountView), (status = 404, description = "No verified account")))]
async fn get_me(
    State(s): State<IdentityState>,
    Caller(caller): Caller,
) -> Result<Response, Problem> {
    let a = my_account(&s, &caller).await?;
    let mut r = Json(AccountView::of(a)).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(r)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MePatch {
    /// Empty string removes it.
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub preferences: Option<PreferencesView>,
}

/// Change contacts and channel preferences (the verified name and birth date stay).
#[utoipa::path(patch, path = "/v1/me", tag = "identity", request_body = MePatch,
    responses((status = 200, body = AccountView), (status = 422, description = "Invalid phone or email")))]
async fn patch_me(
    State(s): State<IdentityState>,
    Caller(caller): Caller,
    JsonBody(patch): JsonBody<MePatch>,
) -> Result<Response, Problem> {
    let mut a = my_account(&s, &caller).await?;
    let (phone, email) = parse_contacts(patch.phone.as_deref(), patch.email.as_deref())?;
    if patch.phone.is_some() {
        a.phone = phone;
    }
    if patch.email.is_some() {
        a.email = email;
    }
    if let Some(p) = patch.preferences {
        a.preferences = ChannelPreferences {
            sms: p.sms,
            email: p.email,
            zalo: p.zalo,
        };
    }
    a.version += 1;
    a.updated_at = s.clock.now();
    s.ports.accounts.update(&a).await.map_err(store_problem)?;
    Ok(Json(AccountView::of(a)).into_response())
}

/// The public keys account tokens are signed with (JWK set, ES256 P-256): what the other
/// functions and the HTTP API's JWT authorizer verify against.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "identity",
    responses((status = 200, description = "JWK set")))]
async fn jwks(State(s): State<IdentityState>) -> Response {
    let mut r = Json(s.auth.jwks()).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

/// OpenID discovery for the issuer of account tokens: where its JWKS is. The HTTP API's
/// JWT authorizer reads this (`{issuer}/.well-known/openid-configuration`), so the issuer
/// (`MOTCUA_JWT_ISSUER`) must be the public https URL this function answers at.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "identity",
    responses((status = 200, description = "OpenID provider metadata"), (status = 404, description = "The issuer is not a URL")))]
async fn openid_configuration(State(s): State<IdentityState>) -> Result<Response, Problem> {
    let issuer = s.auth.issuer();
    if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
        return Err(Problem::not_found().detail(
            "Bên phát hành (MOTCUA_JWT_ISSUER) không phải là URL nên không có tài liệu khám phá",
            "The issuer (MOTCUA_JWT_ISSUER) is not a URL, so there is no discovery document",
        ));
    }
    let base = issuer.trim_end_matches('/');
    let mut r = Json(serde_json::json!({
        "issuer": issuer,
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "id_token_signing_alg_values_supported": ["ES256"],
        "subject_types_supported": ["public"],
        "response_types_supported": ["token"],
    }))
    .into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    Ok(r)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SsoExchangeRequest {
    /// The access token the province SSO issued to the officer or admin.
    pub subject_token: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SsoExchangeResponse {
    pub access_token: String,
    pub token_type: String,
    /// Seconds; never beyond the SSO token's own expiry.
    pub expires_in: i64,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agency: Option<String>,
}

/// Officers and admins sign in at the province SSO, then exchange its token here for a
/// motcua access token (ES256, the same issuer as citizens' tokens, so one JWT authorizer
/// and one JWKS serve everyone). The SSO token is checked against the SSO's JWKS, issuer
/// and audience; its role claim must say officer or admin, and an officer's must name an
/// agency. No refresh token: when it expires, exchange a fresh SSO token.
#[utoipa::path(post, path = "/v1/identity/sso/exchange", tag = "identity",
    request_body = SsoExchangeRequest,
    responses((status = 200, body = SsoExchangeResponse),
        (status = 401, description = "Not a valid token of the SSO"),
        (status = 403, description = "The SSO account is neither officer nor admin"),
        (status = 404, description = "No SSO configured")))]
async fn sso_exchange(
    State(s): State<IdentityState>,
    JsonBody(req): JsonBody<SsoExchangeRequest>,
) -> Result<Response, Problem> {
    let Some(sso) = &s.sso else {
        return Err(Problem::not_found().detail(
            "Chưa cấu hình đăng nhập một lần (SSO) của tỉnh",
            "No province single sign-on is configured",
        ));
    };
    let who = sso.verify(req.subject_token.trim()).await?;
    let now = s.clock.now().as_second();
    let ttl = s.config.access_token_ttl_secs.min(who.expires - now);
    if ttl <= 0 {
        return Err(Problem::unauthorized(
            "Phiên đăng nhập đã hết hạn, vui lòng đăng nhập lại",
            "The token has expired; sign in again",
        ));
    }
    let access_token = s
        .auth
        .mint_signed(&who.subject, who.role, who.agency.as_ref(), now, ttl)
        .ok_or_else(no_signing_key)?;
    tracing::info!(role = who.role.as_str(), "SSO token exchanged");
    Ok(no_store(
        Json(SsoExchangeResponse {
            access_token,
            token_type: "Bearer".into(),
            expires_in: ttl,
            role: who.role.as_str().into(),
            agency: who.agency.map(|a| a.as_str().to_owned()),
        })
        .into_response(),
    ))
}

/// Data-subject request (Decree 13/2023): answers with an export of the account, then
/// erases it and the cached registry answer. Dossiers stay, as the law requires; they keep
/// the old account id. Verifying again creates a new account.
#[utoipa::path(delete, path = "/v1/me", tag = "identity",
    responses((status = 200, description = "Export of the erased account"), (status = 404, description = "No verified account")))]
async fn delete_me(
    State(s): State<IdentityState>,
    Caller(caller): Caller,
) -> Result<Response, Problem> {
    let a = my_account(&s, &caller).await?;
    let now = s.clock.now();
    let export = serde_json::json!({
        "exported_at": now,
        "account": AccountView::of(a.clone()),
        "kept": {
            "vi": "Hồ sơ thủ tục hành chính đã nộp được lưu theo quy định của pháp luật.",
            "en": "Dossiers already submitted are kept as the law requires."
        }
    });
    s.ports.accounts.erase(&a).await.map_err(store_problem)?;
    s.ports
        .cache
        .forget(&a.id_hash)
        .await
        .map_err(store_problem)?;
    audit_entry(
        &s,
        &caller.subject,
        "data-subject-erasure",
        &a.id_hash,
        "erased",
        now,
    )
    .await?;
    tracing::info!(account = %a.id, "account erased at the holder's request");
    let mut r = no_store(Json(export).into_response());
    r.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"motcua-account.json\""),
    );
    Ok(r)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// The personal number whose lookups to list (never stored: hashed).
    pub citizen_id: Option<String>,
    pub tax_code: Option<String>,
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditView {
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    pub actor: String,
    pub purpose: String,
    pub outcome: String,
}

/// Admin: every registry lookup of one number (who, when, why, outcome).
#[utoipa::path(get, path = "/v1/admin/audit", tag = "identity", params(AuditQuery),
    responses((status = 200, body = Vec<AuditView>), (status = 403, description = "Admins only")))]
async fn audit(
    State(s): State<IdentityState>,
    Caller(caller): Caller,
    Query(q): Query<AuditQuery>,
) -> Result<Response, Problem> {
    if caller.role != Role::Admin {
        return Err(Problem::forbidden(
            "Chỉ dành cho quản trị viên",
            "Admins only",
        ));
    }
    let hash = match (q.citizen_id.as_deref(), q.tax_code.as_deref()) {
        (Some(c), None) => {
            let id = CitizenId::parse(c).map_err(|e| {
                Problem::bad_request(
                    &format!("citizen_id {}", e.message(Lang::Vi)),
                    &format!("citizen_id {}", e.message(Lang::En)),
                )
            })?;
            id_hash(&s.config.id_hash_key, "citizen", id.as_str())
        }
        (None, Some(t)) => {
            let tax = TaxCode::parse(t).map_err(|e| {
                Problem::bad_request(
                    &format!("tax_code {}", e.message(Lang::Vi)),
                    &format!("tax_code {}", e.message(Lang::En)),
                )
            })?;
            id_hash(&s.config.id_hash_key, "business", tax.as_str())
        }
        _ => {
            return Err(Problem::bad_request(
                "Cần đúng một trong citizen_id hoặc tax_code",
                "Give exactly one of citizen_id or tax_code",
            ));
        }
    };
    let entries = s
        .ports
        .audit
        .by_id_hash(&hash, q.limit.unwrap_or(100).clamp(1, 1000))
        .await
        .map_err(store_problem)?;
    let view: Vec<AuditView> = entries
        .into_iter()
        .map(|e| AuditView {
            at: e.at,
            actor: e.actor,
            purpose: e.purpose,
            outcome: e.outcome,
        })
        .collect();
    Ok(Json(view).into_response())
}
