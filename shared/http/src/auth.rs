//! Bearer JWT authentication. Tokens are checked against the configured keys (on AWS the
//! HTTP API's JWT authorizer checks them first; the function checks again).

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use motcua_domain::{Actor, AgencyCode, Role};
use serde::{Deserialize, Serialize};

use crate::problem::Problem;

/// Claims motcua reads from a token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agency: Option<String>,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    /// Identity assurance of a citizen account (1 self-declared, 2 registry-matched).
    /// Absent in officers' and development tokens, which count as 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lvl: Option<u8>,
    /// A registry-matched citizen's or business's owner reference: whose dossiers the
    /// token opens (stable across the account's erasure; see `Actor::owner`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub own: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthConfigError {
    #[error("the signing secret must be at least 32 bytes")]
    WeakSecret,
    #[error("not a valid P-256 (ES256) key")]
    BadKey,
}

/// An ECDSA P-256 (ES256) signing key with its `kid`; the private part is absent where a
/// service only verifies. ES256 rather than EdDSA: API Gateway's JWT authorizers accept
/// RS256/384/512 and ES256/384/512 only.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    /// Unix seconds from which the key signs; before that it is only published, so that
    /// verifiers (and the gateway's cached JWKS) know it before its first token.
    pub active_from: i64,
    pkcs8: Option<Vec<u8>>,
    public: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SigningKey({}, private: {})",
            self.kid,
            self.pkcs8.is_some()
        )
    }
}

impl SigningKey {
    /// A fresh key pair.
    pub fn generate(kid: &str) -> SigningKey {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .expect("the system RNG works")
        .as_ref()
        .to_vec();
        SigningKey::from_pkcs8(kid, &pkcs8).expect("a generated key parses")
    }

    /// From a PKCS#8 document (as `generate` makes).
    pub fn from_pkcs8(kid: &str, pkcs8: &[u8]) -> Result<SigningKey, AuthConfigError> {
        use ring::signature::KeyPair;
        let pair = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8,
            &ring::rand::SystemRandom::new(),
        )
        .map_err(|_| AuthConfigError::BadKey)?;
        Ok(SigningKey {
            kid: kid.to_owned(),
            active_from: 0,
            pkcs8: Some(pkcs8.to_vec()),
            public: pair.public_key().as_ref().to_vec(),
        })
    }

    /// A verification-only key from a JWK's `x` and `y` (base64url coordinates).
    pub fn from_jwk_xy(kid: &str, x: &str, y: &str) -> Result<SigningKey, AuthConfigError> {
        use base64::Engine;
        let d = |v: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(v)
                .map_err(|_| AuthConfigError::BadKey)
        };
        let (x, y) = (d(x)?, d(y)?);
        if x.len() != 32 || y.len() != 32 {
            return Err(AuthConfigError::BadKey);
        }
        let mut public = vec![0x04];
        public.extend(x);
        public.extend(y);
        Ok(SigningKey {
            kid: kid.to_owned(),
            active_from: 0,
            pkcs8: None,
            public,
        })
    }

    /// The same key, signing only from `secs` (Unix seconds).
    pub fn active_from(mut self, secs: i64) -> SigningKey {
        self.active_from = secs;
        self
    }

    pub fn pkcs8(&self) -> Option<&[u8]> {
        self.pkcs8.as_deref()
    }

    /// The public JWK (RFC 7518 §6.2).
    pub fn jwk(&self) -> serde_json::Value {
        use base64::Engine;
        let b = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "alg": "ES256",
            "use": "sig",
            "kid": self.kid,
            "x": b(&self.public[1..33]),
            "y": b(&self.public[33..65]),
        })
    }
}

/// Parses `[{"kid": …, "pkcs8": "<base64>", "active_from": secs?} | {"kid": …, "x": …,
/// "y": …}, …]`, newest first (the form of `MOTCUA_SIGNING_KEYS`, of the runner's key file
/// and of the signing-keys secret). `{"keys": [...]}` is read too; a document without
/// keys (a secret before its first rotation) is an empty list.
pub fn signing_keys_from_json(json: &str) -> Result<Vec<SigningKey>, AuthConfigError> {
    use base64::Engine;
    let doc: serde_json::Value = serde_json::from_str(json).map_err(|_| AuthConfigError::BadKey)?;
    let list = match &doc {
        serde_json::Value::Array(v) => v.clone(),
        serde_json::Value::Object(o) => match o.get("keys") {
            Some(serde_json::Value::Array(v)) => v.clone(),
            None => Vec::new(),
            Some(_) => return Err(AuthConfigError::BadKey),
        },
        _ => return Err(AuthConfigError::BadKey),
    };
    list.iter()
        .map(|k| {
            let kid = k["kid"].as_str().ok_or(AuthConfigError::BadKey)?;
            let key = match (k["pkcs8"].as_str(), k["x"].as_str(), k["y"].as_str()) {
                (Some(p), _, _) => {
                    let der = base64::engine::general_purpose::STANDARD
                        .decode(p)
                        .map_err(|_| AuthConfigError::BadKey)?;
                    SigningKey::from_pkcs8(kid, &der)
                }
                (None, Some(x), Some(y)) => SigningKey::from_jwk_xy(kid, x, y),
                _ => Err(AuthConfigError::BadKey),
            }?;
            Ok(key.active_from(k["active_from"].as_i64().unwrap_or(0)))
        })
        .collect()
}

/// Key rotation: a new key joins the list first, published but signing only from
/// `now + publish_secs`; the list keeps the keys that still sign or verify live tokens:
/// every key not yet active, the active one and the one before it (its tokens live at most
/// one token lifetime, far shorter than a rotation period). Newest first.
pub fn rotate_signing_keys(
    current: &[SigningKey],
    new_key: SigningKey,
    now_secs: i64,
    publish_secs: i64,
) -> Vec<SigningKey> {
    // With no key at all nothing could sign: the first key is active at once.
    let has_active = current
        .iter()
        .any(|k| k.pkcs8.is_some() && k.active_from <= now_secs);
    let starts = if has_active {
        now_secs + publish_secs
    } else {
        now_secs
    };
    let mut out = vec![new_key.active_from(starts)];
    let mut active_seen = 0;
    for k in current {
        if k.active_from > now_secs {
            out.push(k.clone());
        } else if active_seen < 2 {
            active_seen += 1;
            out.push(k.clone());
        }
    }
    out
}

/// The JSON form [`signing_keys_from_json`] reads, private parts included.
pub fn signing_keys_to_json(keys: &[SigningKey]) -> String {
    use base64::Engine;
    let v: Vec<serde_json::Value> = keys
        .iter()
        .map(|k| match k.pkcs8() {
            Some(p) => serde_json::json!({"kid": k.kid, "pkcs8": base64::engine::general_purpose::STANDARD.encode(p), "active_from": k.active_from}),
            None => serde_json::json!({"kid": k.kid, "x": k.jwk()["x"], "y": k.jwk()["y"]}),
        })
        .collect();
    serde_json::Value::Array(v).to_string()
}

#[derive(Clone)]
struct EdKey {
    kid: String,
    active_from: i64,
    encoding: Option<EncodingKey>,
    decoding: DecodingKey,
    jwk: serde_json::Value,
}

/// Verifies and mints tokens for one issuer and audience: ES256 (P-256, `kid` header) for
/// account tokens, HS256 for development and service tokens. Several keys of each kind
/// may be configured: the first signs, all verify (rotation keeps the previous key valid
/// until its tokens expire).
pub struct Authenticator {
    issuer: String,
    audience: String,
    keys: Vec<(EncodingKey, DecodingKey)>,
    validation: Validation,
    /// Replaced whole when the key document is re-read (rotation), never edited.
    ed_keys: std::sync::RwLock<Arc<Vec<EdKey>>>,
    ed_validation: Validation,
    /// Where a verifying service fetches the issuer's public keys (the identity
    /// function's JWKS): consulted for a `kid` it does not know yet.
    remote: Option<crate::jwks::RemoteJwks>,
    /// Subjects whose tokens no longer count (erased accounts), asked for every citizen
    /// token once set.
    revoked: std::sync::OnceLock<Arc<dyn motcua_ports::identity::RevokedSubjects>>,
    /// Tokens already checked (`crate::verified`), and the number of times the ES256 keys
    /// were replaced, which ends every entry checked before.
    verified: crate::verified::Verified,
    generation: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("issuer", &self.issuer)
            .field("hs256_keys", &self.keys.len())
            .field("es256_keys", &self.ed().len())
            .finish()
    }
}

impl Authenticator {
    pub fn new(
        issuer: &str,
        audience: &str,
        secrets: &[Vec<u8>],
    ) -> Result<Authenticator, AuthConfigError> {
        // No secret at all: HS256 is off (production: only ES256 account tokens, which the
        // gateway's JWT authorizer can check too).
        if secrets.iter().any(|s| s.len() < 32) {
            return Err(AuthConfigError::WeakSecret);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        let mut ed_validation = validation.clone();
        ed_validation.algorithms = vec![Algorithm::ES256];
        Ok(Authenticator {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            keys: secrets
                .iter()
                .map(|s| (EncodingKey::from_secret(s), DecodingKey::from_secret(s)))
                .collect(),
            validation,
            ed_keys: std::sync::RwLock::new(Arc::new(Vec::new())),
            ed_validation,
            remote: None,
            revoked: std::sync::OnceLock::new(),
            verified: Default::default(),
            generation: Default::default(),
        })
    }

    /// From now on a citizen's token whose subject is in `revoked` is refused (401
    /// `token-revoked`): an erased account's tokens stop at once, not at their expiry.
    /// Set once; later calls are ignored.
    pub fn check_revocations(&self, revoked: Arc<dyn motcua_ports::identity::RevokedSubjects>) {
        let _ = self.revoked.set(revoked);
    }

    /// Adds ES256 keys, newest first: the first with a private part that is active signs.
    pub fn with_signing_keys(self, keys: &[SigningKey]) -> Authenticator {
        let existing = self.ed();
        self.replace(existing.iter().map(|k| k.kid.clone()).collect(), keys);
        self
    }

    /// Replaces the ES256 keys (the key document was re-read after a rotation).
    pub fn set_signing_keys(&self, keys: &[SigningKey]) {
        self.replace(Vec::new(), keys);
    }

    fn replace(&self, keep: Vec<String>, keys: &[SigningKey]) {
        let mut next: Vec<EdKey> = Vec::new();
        for k in keys {
            next.push(EdKey {
                kid: k.kid.clone(),
                active_from: k.active_from,
                encoding: k.pkcs8.as_deref().map(EncodingKey::from_ec_der),
                decoding: DecodingKey::from_ec_der(&k.public),
                jwk: k.jwk(),
            });
        }
        next.extend(self.ed().iter().filter(|k| keep.contains(&k.kid)).cloned());
        let next = Arc::new(next);
        let old = std::mem::replace(
            &mut *self.ed_keys.write().unwrap_or_else(|e| e.into_inner()),
            next.clone(),
        );
        // Only a key withdrawn or changed ends the tokens checked before (`verified`): the
        // periodic re-read of the same keys, or a rotation that adds one, keeps them.
        let withdrawn = old
            .iter()
            .any(|k| !next.iter().any(|n| n.kid == k.kid && n.jwk == k.jwk));
        if withdrawn {
            self.generation
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn ed(&self) -> Arc<Vec<EdKey>> {
        self.ed_keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Verifies account tokens also with keys fetched from `remote` (the issuer's JWKS
    /// URL), for a `kid` not configured locally.
    pub fn with_remote_keys(mut self, remote: crate::jwks::RemoteJwks) -> Authenticator {
        self.remote = Some(remote);
        self
    }

    /// The remote JWKS, if one is configured (to prefetch it at cold start).
    pub fn remote_keys(&self) -> Option<&crate::jwks::RemoteJwks> {
        self.remote.as_ref()
    }

    /// The public keys as a JWK set, for `/.well-known/jwks.json`: every configured key,
    /// those not yet signing included.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({"keys": self.ed().iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()})
    }

    /// Whether an ES256 key can sign at `now_secs`.
    pub fn can_sign(&self, now_secs: i64) -> bool {
        self.ed()
            .iter()
            .any(|k| k.encoding.is_some() && k.active_from <= now_secs)
    }

    /// Signs an ES256 account token with the newest active private key; `None` without one.
    pub fn mint_signed(
        &self,
        sub: &str,
        role: Role,
        agency: Option<&AgencyCode>,
        now_secs: i64,
        ttl_secs: i64,
    ) -> Option<String> {
        self.sign_es256(self.claims(sub, role, agency, now_secs, ttl_secs))
    }

    /// This issuer's claims for `sub`, valid `ttl_secs` from `now_secs`.
    fn claims(
        &self,
        sub: &str,
        role: Role,
        agency: Option<&AgencyCode>,
        now_secs: i64,
        ttl_secs: i64,
    ) -> Claims {
        Claims {
            sub: sub.to_owned(),
            role,
            agency: agency.map(|a| a.as_str().to_owned()),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now_secs,
            exp: now_secs + ttl_secs,
            // Development tokens of citizens stand for signed-in (level 2) people.
            lvl: (role == Role::Citizen).then_some(Actor::REGISTRY_MATCHED),
            own: None,
        }
    }

    /// Signs a citizen's account token carrying its assurance level and, for a
    /// registry-matched account, its owner reference; `None` without an active key.
    pub fn mint_citizen(
        &self,
        sub: &str,
        assurance: u8,
        owner: Option<&str>,
        now_secs: i64,
        ttl_secs: i64,
    ) -> Option<String> {
        self.sign_es256(Claims {
            lvl: Some(assurance),
            own: owner.map(str::to_owned),
            ..self.claims(sub, Role::Citizen, None, now_secs, ttl_secs)
        })
    }

    fn sign_es256(&self, claims: Claims) -> Option<String> {
        let keys = self.ed();
        let key = keys
            .iter()
            .find(|k| k.encoding.is_some() && k.active_from <= claims.iat)?;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, &claims, key.encoding.as_ref()?).ok()
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Signs an HS256 (development) token for `sub` with `role`, valid `ttl_secs` from
    /// `now_secs`. Panics where no HS256 secret is configured: only dev tooling mints these.
    pub fn mint(
        &self,
        sub: &str,
        role: Role,
        agency: Option<&AgencyCode>,
        now_secs: i64,
        ttl_secs: i64,
    ) -> String {
        let claims = self.claims(sub, role, agency, now_secs, ttl_secs);
        let key = &self.keys.first().expect("no HS256 secret configured").0;
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, key)
            .expect("HS256 signing cannot fail")
    }

    /// [`Authenticator::verify`], and for an ES256 `kid` not known locally, the remote
    /// JWKS (fetched again at most every few seconds): a key published after this
    /// instance started is found without a restart.
    ///
    /// A token whose signature was checked before, under the same keys, and that has not
    /// expired is not checked again (`crate::verified`); revocation is asked every time.
    pub async fn authenticate(&self, token: &str) -> Result<Actor, Problem> {
        let now = jsonwebtoken::get_current_timestamp() as i64;
        let keys = (
            self.generation.load(std::sync::atomic::Ordering::SeqCst),
            self.remote.as_ref().map_or(0, |r| r.generation()),
        );
        let actor = match self.verified.get(token, now, keys) {
            Some(actor) => actor,
            None => {
                let (actor, exp) = self.authenticate_signature(token).await?;
                let until = exp.saturating_add(self.ed_validation.leeway as i64);
                self.verified.put(token, &actor, until, now, keys);
                actor
            }
        };
        if let (Role::Citizen, Some(revoked)) = (actor.role, self.revoked.get()) {
            let gone = revoked
                .subject_revoked(&actor.subject, jiff::Timestamp::now())
                .await
                .map_err(|e| {
                    tracing::warn!(error = %e, "revoked subjects could not be read");
                    Problem::unavailable().retry_after(1)
                })?;
            if gone {
                return Err(Problem::new(
                    axum::http::StatusCode::UNAUTHORIZED,
                    "token-revoked",
                    "Mã xác thực đã bị thu hồi",
                    "The token was revoked",
                )
                .detail(
                    "Tài khoản của mã này đã bị xóa; hãy đăng nhập lại",
                    "The account of this token was erased; sign in again",
                ));
            }
        }
        Ok(actor)
    }

    /// The caller and the token's expiry, signature checked.
    async fn authenticate_signature(&self, token: &str) -> Result<(Actor, i64), Problem> {
        let first = self.check(token);
        let Some(remote) = &self.remote else {
            return first;
        };
        if first.is_ok() {
            return first;
        }
        let Ok(header) = jsonwebtoken::decode_header(token) else {
            return first;
        };
        let Some(kid) = header.kid.as_deref() else {
            return first;
        };
        if header.alg != Algorithm::ES256 || self.ed().iter().any(|k| k.kid == kid) {
            return first;
        }
        match remote.find(kid, Algorithm::ES256).await {
            Some(key) => match jsonwebtoken::decode::<Claims>(token, &key, &self.ed_validation) {
                Ok(data) => with_expiry(data.claims),
                Err(e) => Err(token_problem(Some(e))),
            },
            None => first,
        }
    }

    /// Checks signature, issuer, audience and expiry against the configured keys; returns
    /// the caller.
    pub fn verify(&self, token: &str) -> Result<Actor, Problem> {
        self.check(token).map(|(actor, _)| actor)
    }

    /// [`Authenticator::verify`], with the token's expiry.
    fn check(&self, token: &str) -> Result<(Actor, i64), Problem> {
        let invalid =
            || Problem::unauthorized("Mã xác thực không hợp lệ", "The bearer token is not valid");
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
        let mut last_err = None;
        match header.alg {
            Algorithm::HS256 => {
                for (_, key) in &self.keys {
                    match jsonwebtoken::decode::<Claims>(token, key, &self.validation) {
                        Ok(data) => return with_expiry(data.claims),
                        Err(e) => last_err = Some(e),
                    }
                }
            }
            Algorithm::ES256 => {
                let kid = header.kid.ok_or_else(invalid)?;
                let keys = self.ed();
                let key = keys.iter().find(|k| k.kid == kid).ok_or_else(invalid)?;
                match jsonwebtoken::decode::<Claims>(token, &key.decoding, &self.ed_validation) {
                    Ok(data) => return with_expiry(data.claims),
                    Err(e) => last_err = Some(e),
                }
            }
            _ => return Err(invalid()),
        }
        Err(token_problem(last_err))
    }
}

/// The 401 for a token that failed verification: expiry is told apart, nothing else.
pub(crate) fn token_problem(err: Option<jsonwebtoken::errors::Error>) -> Problem {
    use jsonwebtoken::errors::ErrorKind;
    match err.map(|e| e.into_kind()) {
        Some(ErrorKind::ExpiredSignature) => Problem::unauthorized(
            "Phiên đăng nhập đã hết hạn, vui lòng đăng nhập lại",
            "The token has expired; sign in again",
        ),
        _ => Problem::unauthorized("Mã xác thực không hợp lệ", "The bearer token is not valid"),
    }
}

fn with_expiry(c: Claims) -> Result<(Actor, i64), Problem> {
    let exp = c.exp;
    actor_of(c).map(|a| (a, exp))
}

fn actor_of(c: Claims) -> Result<Actor, Problem> {
    let agency = match (&c.role, c.agency.as_deref()) {
        (Role::Officer, None) => {
            return Err(Problem::unauthorized(
                "Mã xác thực của cán bộ thiếu mã cơ quan",
                "An officer token must name an agency",
            ));
        }
        (_, Some(a)) => Some(AgencyCode::parse(a).map_err(|_| {
            Problem::unauthorized(
                "Mã cơ quan trong mã xác thực không hợp lệ",
                "The agency in the token is not a valid agency code",
            )
        })?),
        (_, None) => None,
    };
    if c.role == Role::System {
        return Err(Problem::unauthorized(
            "Vai trò không được phép dùng qua API",
            "This role cannot call the API",
        ));
    }
    let assurance = match (c.role, c.lvl) {
        (Role::Citizen, Some(l @ 1..=2)) => l,
        // Fail closed: a citizen token that does not say its level has the lowest.
        (Role::Citizen, None) => 1,
        (Role::Citizen, Some(_)) => {
            return Err(Problem::unauthorized(
                "Mức độ bảo đảm trong mã xác thực không hợp lệ",
                "The assurance level in the token is not valid",
            ));
        }
        _ => Actor::REGISTRY_MATCHED,
    };
    // Only a registry-matched citizen's token names an owner; anywhere else it is ignored.
    let owner = c
        .own
        .filter(|_| c.role == Role::Citizen && assurance >= Actor::REGISTRY_MATCHED)
        .filter(|o| !o.is_empty() && o.len() <= 128);
    // Owner references (`citizen:…`, `business:…`) are a namespace of their own: a citizen
    // whose dossiers are filed under the subject may not have a subject that looks like one.
    if c.role == Role::Citizen && owner.is_none() && c.sub.contains(':') {
        return Err(Problem::unauthorized(
            "Mã xác thực không hợp lệ",
            "The token's subject is not valid",
        ));
    }
    Ok(Actor {
        role: c.role,
        subject: c.sub,
        agency,
        assurance,
        owner,
    })
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller(pub Actor);

impl<S> FromRequestParts<S> for Caller
where
    Arc<Authenticator>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let auth = Arc::<Authenticator>::from_ref(state);
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Problem::unauthorized(
                    "Cần đăng nhập: thiếu tiêu đề Authorization: Bearer",
                    "Sign-in required: missing Authorization: Bearer header",
                )
            })?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(|| {
                Problem::unauthorized(
                    "Tiêu đề Authorization phải có dạng Bearer <token>",
                    "The Authorization header must be Bearer <token>",
                )
            })?;
        auth.authenticate(token.trim()).await.map(Caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(secret: &[u8]) -> Authenticator {
        Authenticator::new("motcua-test", "motcua", &[secret.to_vec()]).unwrap()
    }

    #[test]
    fn round_trip_and_tamper() {
        let a = auth(&[7u8; 32]);
        let now = jiff::Timestamp::now().as_second();
        let agency = AgencyCode::parse("000.00.04.H42").unwrap();
        let t = a.mint("officer-1", Role::Officer, Some(&agency), now, 600);
        let actor = a.verify(&t).unwrap();
        assert_eq!(actor.role, Role::Officer);
        assert_eq!(actor.agency, Some(agency));
        // Another key does not verify it.
        assert!(auth(&[8u8; 32]).verify(&t).is_err());
        // A flipped payload byte breaks the signature.
        let mut parts: Vec<String> = t.split('.').map(String::from).collect();
        parts[1] = parts[1].replacen('e', "f", 1);
        assert!(a.verify(&parts.join(".")).is_err());
        // Expired.
        let old = a.mint("c", Role::Citizen, None, now - 7200, 600);
        let p = a.verify(&old).unwrap_err();
        assert!(p.detail_en.as_deref().unwrap().contains("expired"));
    }

    #[derive(Default)]
    struct Revoked(std::sync::Mutex<Vec<String>>);

    #[async_trait::async_trait]
    impl motcua_ports::identity::RevokedSubjects for Revoked {
        async fn revoke_subject(
            &self,
            subject: &str,
            _until: jiff::Timestamp,
        ) -> motcua_ports::StoreResult<()> {
            self.0.lock().unwrap().push(subject.into());
            Ok(())
        }
        async fn subject_revoked(
            &self,
            subject: &str,
            _now: jiff::Timestamp,
        ) -> motcua_ports::StoreResult<bool> {
            Ok(self.0.lock().unwrap().iter().any(|s| s == subject))
        }
    }

    #[tokio::test]
    async fn a_checked_token_is_remembered_until_its_keys_change_or_it_is_revoked() {
        let (k1, k2) = (SigningKey::generate("k-1"), SigningKey::generate("k-2"));
        let a = auth(&[7u8; 32]).with_signing_keys(std::slice::from_ref(&k1));
        let revoked = Arc::new(Revoked::default());
        a.check_revocations(revoked.clone());
        let now = jiff::Timestamp::now().as_second();
        let t = a
            .mint_signed("acct-1", Role::Citizen, None, now, 600)
            .unwrap();
        let other = a
            .mint_signed("acct-2", Role::Citizen, None, now, 600)
            .unwrap();
        assert_eq!(a.authenticate(&t).await.unwrap().subject, "acct-1");
        assert_eq!(a.authenticate(&t).await.unwrap().subject, "acct-1");
        assert_eq!(
            a.verified.len(),
            1,
            "the second call was answered from memory"
        );
        // A token that differs in one byte of its signature is checked, and refused.
        let mut forged = t.clone();
        let last = forged.pop().unwrap();
        forged.push(if last == 'A' { 'B' } else { 'A' });
        assert!(a.authenticate(&forged).await.is_err());
        // Revocation is asked every time, remembered or not.
        assert!(a.authenticate(&other).await.is_ok());
        motcua_ports::identity::RevokedSubjects::revoke_subject(
            revoked.as_ref(),
            "acct-2",
            jiff::Timestamp::now(),
        )
        .await
        .unwrap();
        let p = a.authenticate(&other).await.unwrap_err();
        assert_eq!(p.kind, "token-revoked");
        // The same keys read again, or a rotation that adds one, keep what was checked
        // (anyone can cause a re-read; it must not empty the memory of every session).
        let generation = || a.generation.load(std::sync::atomic::Ordering::SeqCst);
        let before = generation();
        a.set_signing_keys(std::slice::from_ref(&k1));
        a.set_signing_keys(&[k2.clone(), k1.clone()]);
        assert_eq!(generation(), before);
        assert!(a.authenticate(&t).await.is_ok());
        // The key that signed it is withdrawn: the remembered check no longer counts.
        a.set_signing_keys(&[k2]);
        assert_eq!(generation(), before + 1);
        assert!(a.authenticate(&t).await.is_err());
        // An expired token is refused as expired, not served from memory.
        let b = auth(&[7u8; 32]).with_signing_keys(std::slice::from_ref(&k1));
        let late = b
            .mint_signed("acct-3", Role::Citizen, None, now - 700, 675)
            .unwrap();
        assert!(
            b.authenticate(&late).await.is_ok(),
            "within the 30 s leeway"
        );
        let expired = b
            .mint_signed("acct-3", Role::Citizen, None, now - 700, 600)
            .unwrap();
        let keys = (b.generation.load(std::sync::atomic::Ordering::SeqCst), 0);
        let actor = b.verify(&late).unwrap();
        b.verified.put(&expired, &actor, now - 1, now - 100, keys);
        let p = b.authenticate(&expired).await.unwrap_err();
        assert!(p.detail_en.as_deref().unwrap().contains("expired"));
    }

    #[test]
    fn rotation_keeps_old_key_valid() {
        let old = auth(&[1u8; 32]);
        let rotated =
            Authenticator::new("motcua-test", "motcua", &[vec![2u8; 32], vec![1u8; 32]]).unwrap();
        let now = jiff::Timestamp::now().as_second();
        let t = old.mint("c", Role::Citizen, None, now, 600);
        assert!(rotated.verify(&t).is_ok());
    }

    #[test]
    fn es256_tokens_rotation_and_tampering() {
        let old = SigningKey::generate("k-2026-01");
        let new = SigningKey::generate("k-2026-02");
        let before = auth(&[7u8; 32]).with_signing_keys(std::slice::from_ref(&old));
        let after = auth(&[7u8; 32]).with_signing_keys(&[new.clone(), old.clone()]);
        let now = jiff::Timestamp::now().as_second();
        let t_old = before
            .mint_signed("acct-1", Role::Citizen, None, now, 600)
            .unwrap();
        let t_new = after
            .mint_signed("acct-1", Role::Citizen, None, now, 600)
            .unwrap();
        let header = jsonwebtoken::decode_header(&t_new).unwrap();
        assert_eq!(header.kid.as_deref(), Some("k-2026-02"));
        // After rotation both verify; the JWKS publishes both keys.
        assert_eq!(after.verify(&t_old).unwrap().subject, "acct-1");
        assert!(after.verify(&t_new).is_ok());
        assert_eq!(after.jwks()["keys"].as_array().unwrap().len(), 2);
        // A service holding only the public JWKS verifies too.
        let jwk = &after.jwks()["keys"][0];
        let public = SigningKey::from_jwk_xy(
            jwk["kid"].as_str().unwrap(),
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap(),
        )
        .unwrap();
        let verifier = auth(&[9u8; 32]).with_signing_keys(&[public]);
        assert!(verifier.verify(&t_new).is_ok());
        assert!(
            verifier
                .mint_signed("x", Role::Citizen, None, now, 60)
                .is_none()
        );
        // Before the new key was published, its tokens are unknown.
        assert!(before.verify(&t_new).is_err());
        // Tampered payload.
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut parts: Vec<String> = t_new.split('.').map(String::from).collect();
        let payload = String::from_utf8(b64.decode(&parts[1]).unwrap()).unwrap();
        assert!(payload.contains("acct-1"));
        parts[1] = b64.encode(payload.replace("acct-1", "acct-2"));
        assert!(after.verify(&parts.join(".")).is_err());
        // Expired.
        let expired = after
            .mint_signed("acct-1", Role::Citizen, None, now - 7200, 600)
            .unwrap();
        assert!(after.verify(&expired).is_err());
    }

    #[test]
    fn weak_secret_refused_and_no_secret_turns_hs256_off() {
        assert!(Authenticator::new("i", "a", &[vec![1u8; 8]]).is_err());
        let es_only = Authenticator::new("motcua-test", "motcua", &[])
            .unwrap()
            .with_signing_keys(&[SigningKey::generate("k1")]);
        let now = jiff::Timestamp::now().as_second();
        let hs = auth(&[7u8; 32]).mint("c", Role::Citizen, None, now, 600);
        assert!(es_only.verify(&hs).is_err());
        let es = es_only
            .mint_signed("c", Role::Citizen, None, now, 600)
            .unwrap();
        assert!(es_only.verify(&es).is_ok());
    }

    #[test]
    fn rotation_publishes_before_signing_and_drops_old_keys() {
        let now = 1_800_000_000;
        let day = 86_400;
        // First key: active at once.
        let keys = rotate_signing_keys(&[], SigningKey::generate("k1"), now, day);
        assert_eq!(keys[0].active_from, now);
        // Second: published now, signs a day later.
        let keys = rotate_signing_keys(&keys, SigningKey::generate("k2"), now + 30 * day, day);
        let a = auth(&[7u8; 32]).with_signing_keys(&keys);
        assert_eq!(a.jwks()["keys"].as_array().unwrap().len(), 2);
        let signed_by = |a: &Authenticator, at: i64| {
            let t = a.mint_signed("c", Role::Citizen, None, at, 600).unwrap();
            jsonwebtoken::decode_header(&t).unwrap().kid.unwrap()
        };
        assert_eq!(signed_by(&a, now + 30 * day), "k1");
        assert_eq!(signed_by(&a, now + 31 * day), "k2");
        // Round trip through the document form keeps activation times.
        let again = signing_keys_from_json(&signing_keys_to_json(&keys)).unwrap();
        assert_eq!(again[0].active_from, now + 31 * day);
        assert_eq!(signing_keys_from_json(r#"{"keys": []}"#).unwrap().len(), 0);
        // Third and fourth rotations: k1 (two generations old) leaves the set.
        let keys = rotate_signing_keys(&keys, SigningKey::generate("k3"), now + 60 * day, day);
        let keys = rotate_signing_keys(&keys, SigningKey::generate("k4"), now + 90 * day, day);
        let kids: Vec<&str> = keys.iter().map(|k| k.kid.as_str()).collect();
        assert_eq!(kids, ["k4", "k3", "k2"]);
    }

    #[test]
    fn officer_needs_agency() {
        let a = auth(&[7u8; 32]);
        let now = jiff::Timestamp::now().as_second();
        let t = a.mint("o", Role::Officer, None, now, 600);
        assert!(a.verify(&t).is_err());
    }

    #[test]
    fn a_citizen_token_without_a_level_has_the_lowest() {
        let a = auth(&[7u8; 32]);
        let now = jiff::Timestamp::now().as_second();
        let claims = Claims {
            lvl: None,
            ..a.claims("c", Role::Citizen, None, now, 600)
        };
        let t =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &a.keys[0].0).unwrap();
        assert_eq!(a.verify(&t).unwrap().assurance, 1);
        // Development tokens of citizens say level 2.
        let dev = a.mint("c", Role::Citizen, None, now, 600);
        assert_eq!(a.verify(&dev).unwrap().assurance, 2);
    }

    #[test]
    fn only_a_registry_matched_citizen_token_names_an_owner() {
        let a = auth(&[7u8; 32]);
        let now = jiff::Timestamp::now().as_second();
        let sign = |claims: Claims| {
            let t = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &a.keys[0].0)
                .unwrap();
            a.verify(&t).unwrap()
        };
        let own = Some("citizen:0123".to_string());
        let matched = sign(Claims {
            own: own.clone(),
            ..a.claims("acct-2", Role::Citizen, None, now, 600)
        });
        assert_eq!(matched.owner(), "citizen:0123");
        let declared = sign(Claims {
            own: own.clone(),
            lvl: Some(1),
            ..a.claims("acct-1", Role::Citizen, None, now, 600)
        });
        assert_eq!(
            declared.owner(),
            "acct-1",
            "level 1 owns by its subject only"
        );
        let agency = AgencyCode::parse("000.00.04.H42").unwrap();
        let officer = sign(Claims {
            own,
            ..a.claims("o", Role::Officer, Some(&agency), now, 600)
        });
        assert_eq!(officer.owner(), "o");
        let dev = a
            .verify(&a.mint("c", Role::Citizen, None, now, 600))
            .unwrap();
        assert_eq!(dev.owner(), "c");
        // A citizen subject that looks like an owner reference is refused (review finding:
        // a development token with sub citizen:<hex> read that person's dossiers).
        let posing = a.mint("citizen:0123", Role::Citizen, None, now, 600);
        assert!(a.verify(&posing).is_err());
        // Officers' subjects (from the SSO) may hold colons.
        let agency = AgencyCode::parse("000.00.04.H42").unwrap();
        let sso = a.mint("f:realm:o-1", Role::Officer, Some(&agency), now, 600);
        assert!(a.verify(&sso).is_ok());
    }
}
