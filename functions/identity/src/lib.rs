//! The identity function: a person or business proves who they are, by possession (the
//! national e-ID, or the registry match plus a code sent to the phone the registry holds),
//! and gets the one account every other function trusts.
//!
//! Routes: `POST /v1/identity/citizens/verify` (+ `/confirm`),
//! `POST /v1/identity/businesses/link`,
//! `GET|PATCH|DELETE /v1/me`, `POST /v1/admin/audit/search`, `POST /v1/identity/token/refresh`,
//! `POST /v1/identity/token/revoke`, `POST /v1/identity/sso/exchange`,
//! `GET /.well-known/jwks.json`, `GET /.well-known/openid-configuration`,
//! and, as every function, `GET /v1/openapi.json` (the one API document; the template routes
//! it to the submission function).

pub mod config;
pub mod keys;
pub mod sealed;

mod audit;
mod business;
mod discovery;
mod eid;
mod me;
mod signin;
mod sso;
mod tokens;

use audit::*;
use business::*;
use discovery::*;
use eid::*;
use me::*;
use signin::*;
use sso::*;
use tokens::*;

pub use audit::{AuditQuery, AuditView};
pub use business::{BusinessLink, BusinessQuery, GrantView, MemberGrant};
pub use eid::{CallbackQuery, EidRelyingParty, LoginExchange, LoginQuery, client_key_from_json};
pub use me::{AccountView, MePatch, PreferencesView};
pub use signin::{CitizenClaim, CodeConfirmation, CodeSent, mask_phone};
pub use sso::{SsoExchangeRequest, SsoExchangeResponse};
pub use tokens::{RefreshRequest, TokenResponse, VerifiedResponse};

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use jiff::Timestamp;
use jiff::civil::Date;
use motcua_domain::identity::{PersonComparison, RegistryPerson};
use motcua_domain::ids::{ClaimMismatch, Sex};
use motcua_domain::{CitizenId, Lang, Localized, PhoneNumber, Role, TaxCode};
use motcua_http::QueryParams;
use motcua_http::{Authenticator, Caller, Clock, JsonBody, Problem, client_key_of, store_problem};
use motcua_ports::identity::{
    Account, AccountKind, AuditEntry, BusinessGrant, BusinessRegistry, Challenge,
    ChannelPreferences, CodeSender, IdentityPorts, PopulationRegistry, RefreshRecord, RefreshUse,
    RegistryBusiness, RegistryError,
};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub use config::{ConfigError, IdentityConfig};

/// Attempts counted under several limits at once (each reserved before the work it
/// limits); released together when the attempt did not fail, kept when it did.
#[must_use = "release the attempts unless they failed"]
pub(crate) struct Holds(Vec<(motcua_http::Lockout, motcua_http::Reservation)>);

impl Holds {
    /// Reserves one attempt under each `(limit, key)`; if any is over its limit, releases
    /// those already reserved and answers that limit's 429.
    pub(crate) async fn reserve(
        s: &IdentityState,
        limits: &[(motcua_http::Lockout, &str)],
        now: Timestamp,
        what: (&str, &str),
    ) -> Result<Holds, Problem> {
        let attempts = s.ports.attempts.as_ref();
        let mut held = Holds(Vec::new());
        for (limit, key) in limits {
            match limit.reserve(attempts, &[key], now, what).await {
                Ok(r) => held.0.push((*limit, r)),
                Err(p) => {
                    held.release(s).await;
                    return Err(p);
                }
            }
        }
        Ok(held)
    }

    /// The attempt failed: every count stays.
    pub(crate) fn keep(self) {
        for (_, r) in self.0 {
            r.keep();
        }
    }

    pub(crate) async fn release(self, s: &IdentityState) {
        for (limit, r) in self.0 {
            limit.release(s.ports.attempts.as_ref(), r).await;
        }
    }
}

/// Equality of two secrets in time that does not depend on where they differ.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

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
    /// Where sign-in codes go by SMS (SNS on AWS; the runner keeps them readable).
    pub codes: Arc<dyn CodeSender>,
    /// The national e-ID (OpenID Connect); `None`: not configured (its routes answer 404).
    pub eid: Option<Arc<EidRelyingParty>>,
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
pub(crate) struct ApiDoc;

/// Routes and their OpenAPI document.
pub fn api() -> (Router<IdentityState>, utoipa::openapi::OpenApi) {
    let (routes, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(verify_citizen))
        .routes(routes!(confirm_citizen))
        .routes(routes!(link_business))
        .routes(routes!(grant_member, list_members))
        .routes(routes!(revoke_member))
        .routes(routes!(login))
        .routes(routes!(callback))
        .routes(routes!(login_exchange))
        .routes(routes!(get_me, patch_me, delete_me))
        .routes(routes!(audit))
        .routes(routes!(jwks))
        .routes(routes!(openid_configuration))
        .routes(routes!(sso_exchange))
        .routes(routes!(refresh))
        .routes(routes!(revoke))
        .split_for_parts();
    motcua_http::openapi::document_common_answers(&mut doc);
    (routes, doc)
}

/// Every (method, path) this function serves.
pub fn route_table() -> std::collections::BTreeSet<(String, String)> {
    motcua_http::openapi::route_table(&api().1)
}

/// The function's routes (without the problem/CORS layers, which the host adds, nor the
/// API document, which the local runner serves once for all functions). The same
/// handlers as [`api`], routed without building the OpenAPI document at start-up (that
/// was a fifth of the function's own start); `tests/tests/openapi.rs` checks every
/// documented operation is routed here and answers as documented.
pub fn routes(state: IdentityState) -> Router {
    use axum::routing::{get, post};
    Router::new()
        .route("/v1/identity/citizens/verify", post(verify_citizen))
        .route(
            "/v1/identity/citizens/verify/confirm",
            post(confirm_citizen),
        )
        .route("/v1/identity/businesses/link", post(link_business))
        .route(
            "/v1/identity/businesses/members",
            post(grant_member).get(list_members),
        )
        .route(
            "/v1/identity/businesses/members/{grant_id}",
            axum::routing::delete(revoke_member),
        )
        .route("/v1/identity/login", get(login))
        .route("/v1/identity/callback", get(callback))
        .route("/v1/identity/login/exchange", post(login_exchange))
        .route("/v1/me", get(get_me).patch(patch_me).delete(delete_me))
        .route("/v1/admin/audit/search", post(audit))
        .route("/.well-known/jwks.json", get(jwks))
        .route(
            "/.well-known/openid-configuration",
            get(openid_configuration),
        )
        .route("/v1/identity/sso/exchange", post(sso_exchange))
        .route("/v1/identity/token/refresh", post(refresh))
        .route("/v1/identity/token/revoke", post(revoke))
        .with_state(state)
}

/// The function's complete router for Lambda: its routes and `GET /v1/openapi.json`.
pub fn router(state: IdentityState) -> Router {
    routes(state)
        .route("/v1/openapi.json", motcua_http::openapi::document_route())
        .layer(axum::extract::DefaultBodyLimit::max(
            motcua_http::DEFAULT_BODY_LIMIT,
        ))
        .layer(axum::middleware::from_fn(motcua_http::localize))
}

pub use motcua_http::id_hash::id_hash;

pub(crate) fn unprocessable(kind: &'static str, vi: &str, en: &str) -> Problem {
    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, kind, vi, en)
}

pub(crate) fn parse_contacts(
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

/// The audit's actor of a sign-in by code: nobody is signed in yet.
pub(crate) const ANONYMOUS: &str = "anonymous";
/// The audit's actor of an e-ID sign-in: the holder of the e-ID the provider vouched for.
pub(crate) const EID_HOLDER: &str = "eid-holder";

/// The keyed hashes of `value` under every key, current first, as (key id, hash): what a
/// record of this number may be stored under.
pub(crate) fn id_hashes(s: &IdentityState, kind: &str, value: &str) -> Vec<(String, String)> {
    s.config
        .id_hash_keys
        .all()
        .map(|(kid, key)| (kid.to_owned(), id_hash(key, kind, value)))
        .collect()
}

/// The hash of `value` under the key `kid` names (`k0` where a record names none), if
/// that key is still configured.
pub(crate) fn id_hash_under(
    s: &IdentityState,
    kid: Option<&str>,
    kind: &str,
    value: &str,
) -> Option<String> {
    let kid = kid.unwrap_or(config::IdHashKeys::SINGLE);
    s.config
        .id_hash_keys
        .all()
        .find(|(id, _)| *id == kid)
        .map(|(_, key)| id_hash(key, kind, value))
}

/// The owner reference of a number (see `motcua_ports::identity::owner_ref_of`): made with
/// the owner key, so the same across key rotations and account erasures.
pub(crate) fn owner_of(s: &IdentityState, kind: AccountKind, value: &str) -> String {
    let (_, key) = s.config.id_hash_keys.owner();
    motcua_ports::identity::owner_ref_of(kind, &id_hash(key, kind.as_str(), value))
}

/// Id of the key new hashes are made with.
pub(crate) fn current_kid(s: &IdentityState) -> String {
    s.config.id_hash_keys.current().0.to_owned()
}

/// Audits a lookup of `hash` (made with the current key).
pub(crate) async fn audit_entry(
    s: &IdentityState,
    actor: &str,
    purpose: &str,
    hash: &str,
    outcome: &str,
    now: Timestamp,
) -> Result<(), Problem> {
    audit_entry_under(s, &current_kid(s), actor, purpose, hash, outcome, now).await
}

/// Audits a lookup of `hash`, made with the key `kid`.
pub(crate) async fn audit_entry_under(
    s: &IdentityState,
    kid: &str,
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
            kid: Some(kid.to_owned()),
            outcome: outcome.to_owned(),
        })
        .await
        .map_err(store_problem)
}

pub(crate) fn registry_problem(e: &RegistryError) -> Problem {
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
