//! Keys published by an issuer at a JWKS URL, and trust in the province's single sign-on.
//!
//! A verifying service (the submission function) fetches the identity function's JWKS; the
//! identity function fetches the province SSO's JWKS to exchange officers' SSO tokens for
//! motcua tokens. Keys are fetched at start, and again when a token names a `kid` not seen
//! yet (rotation), at most once per [`RemoteJwks::MIN_REFRESH`]: a flood of tokens with
//! made-up `kid`s cannot turn into a flood of requests to the issuer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use motcua_domain::{AgencyCode, Role};

use crate::config::ConfigError;
use crate::problem::Problem;

/// kid → algorithm, key, and the JWK as published (to tell a changed key from the same).
type KeyMap = HashMap<String, (Algorithm, DecodingKey, String)>;

/// The public keys at a JWKS URL, cached.
pub struct RemoteJwks {
    url: String,
    client: reqwest::Client,
    keys: std::sync::RwLock<Arc<KeyMap>>,
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    min_refresh: Duration,
    /// How many times the key set was replaced (tokens checked before are checked again).
    generation: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("url", &self.url)
            .finish()
    }
}

impl RemoteJwks {
    /// The shortest time between two fetches triggered by unknown `kid`s.
    pub const MIN_REFRESH: Duration = Duration::from_secs(10);

    pub fn new(url: &str) -> RemoteJwks {
        RemoteJwks {
            url: url.to_owned(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()
                .expect("a TLS client can be built"),
            keys: std::sync::RwLock::new(Arc::new(HashMap::new())),
            last_fetch: tokio::sync::Mutex::new(None),
            min_refresh: Self::MIN_REFRESH,
            generation: Default::default(),
        }
    }

    /// The same, refetching on an unknown `kid` at most every `min` instead of every
    /// [`RemoteJwks::MIN_REFRESH`]: for tokens no stranger can present (an ID token from a
    /// token endpoint we called), where a flood of made-up kids cannot happen.
    pub fn with_min_refresh(mut self, min: Duration) -> RemoteJwks {
        self.min_refresh = min;
        self
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// How many times the key set was replaced.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Fetches the key set now; answers how many usable keys it holds. Keys of other
    /// types (or algorithms than RS256/ES256) are skipped, not fatal.
    pub async fn refresh(&self) -> Result<usize, String> {
        let mut last = self.last_fetch.lock().await;
        self.fetch_locked(&mut last).await
    }

    async fn fetch_locked(&self, last: &mut Option<Instant>) -> Result<usize, String> {
        *last = Some(Instant::now());
        let resp = self
            .client
            .get(&self.url)
            .send()
            .await
            .map_err(|e| format!("JWKS fetch failed: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("JWKS fetch answered {}", resp.status()));
        }
        let doc: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| format!("JWKS is not JSON: {e}"))?;
        let map = Arc::new(parse_jwks(&doc));
        let n = map.len();
        let old = std::mem::replace(
            &mut *self.keys.write().unwrap_or_else(|e| e.into_inner()),
            map.clone(),
        );
        // Only a key withdrawn or changed ends the tokens checked before: a fetch that
        // finds the same keys (anyone can cause one with a made-up kid) or only adds one
        // keeps them.
        let withdrawn = old
            .iter()
            .any(|(kid, (_, _, jwk))| map.get(kid).is_none_or(|(_, _, now)| now != jwk));
        if withdrawn {
            self.generation
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(n)
    }

    fn get(&self, kid: &str, alg: Algorithm) -> Option<DecodingKey> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner()).clone();
        keys.get(kid)
            .filter(|(a, _, _)| *a == alg)
            .map(|(_, k, _)| k.clone())
    }

    /// The key `kid` for `alg`, fetching the set again if it is unknown and the last fetch
    /// is older than [`RemoteJwks::MIN_REFRESH`].
    pub async fn find(&self, kid: &str, alg: Algorithm) -> Option<DecodingKey> {
        if let Some(k) = self.get(kid, alg) {
            return Some(k);
        }
        let mut last = self.last_fetch.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(k) = self.get(kid, alg) {
            return Some(k);
        }
        // Until a first fetch succeeded (the issuer was down at start), try again sooner.
        let empty = self
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty();
        let wait = if empty {
            Duration::from_secs(1).min(self.min_refresh)
        } else {
            self.min_refresh
        };
        if last.is_some_and(|t| t.elapsed() < wait) {
            return None;
        }
        if let Err(e) = self.fetch_locked(&mut last).await {
            tracing::warn!(url = %self.url, error = %e, "JWKS refresh failed");
            return None;
        }
        self.get(kid, alg)
    }
}

/// The RS256 and ES256 (P-256) keys of a JWK set, by `kid`.
fn parse_jwks(doc: &serde_json::Value) -> KeyMap {
    let mut map = HashMap::new();
    for raw in doc["keys"].as_array().into_iter().flatten() {
        let Ok(jwk) = serde_json::from_value::<Jwk>(raw.clone()) else {
            continue;
        };
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        let alg = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                Algorithm::ES256
            }
            _ => continue,
        };
        // A key that declares another algorithm (RS512, say) is not used for this one.
        if raw["alg"]
            .as_str()
            .is_some_and(|declared| declared != format!("{alg:?}"))
        {
            continue;
        }
        if let Ok(key) = DecodingKey::from_jwk(&jwk) {
            map.insert(kid, (alg, key, raw.to_string()));
        }
    }
    map
}

/// Who an SSO token says its bearer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoIdentity {
    pub subject: String,
    pub role: Role,
    pub agency: Option<AgencyCode>,
    /// When the SSO token expires (Unix seconds): a token exchanged for it lives no longer.
    pub expires: i64,
}

/// Trust in the province's SSO: its issuer, the audience its tokens carry for motcua, its
/// JWKS URL, and where its tokens put the role and the agency code.
#[derive(Debug)]
pub struct SsoTrust {
    pub issuer: String,
    pub audience: String,
    /// Dotted path of the role claim: a string or a list (`realm_access.roles`).
    pub role_claim: String,
    /// Dotted path of the agency-code claim.
    pub agency_claim: String,
    /// What motcua's role names start with (`motcua-officer`, `motcua-admin`): a realm
    /// role that merely happens to be called `admin` grants nothing here. Empty only where
    /// the role claim is one client's own roles (`resource_access.<client>.roles`).
    pub role_prefix: String,
    pub jwks: RemoteJwks,
}

/// A JWKS (or issuer) URL we may fetch keys from: https, or plain http on the loopback
/// host exactly (`http://127.0.0.1.evil.example/` is not loopback).
pub fn trusted_key_url(url: &str) -> bool {
    let Ok(u) = reqwest::Url::parse(url.trim()) else {
        return false;
    };
    match u.scheme() {
        "https" => u.host_str().is_some(),
        "http" => match u.host_str() {
            Some("localhost" | "[::1]") => true,
            Some(h) => h
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback()),
            None => false,
        },
        _ => false,
    }
}

impl SsoTrust {
    /// From `MOTCUA_SSO_ISSUER` and `MOTCUA_SSO_JWKS_URL` (both, or neither: no SSO),
    /// `MOTCUA_SSO_AUDIENCE` (default `motcua`), `MOTCUA_SSO_ROLE_CLAIM` (default `role`),
    /// `MOTCUA_SSO_AGENCY_CLAIM` (default `agency`).
    pub fn from_vars(
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<SsoTrust>, ConfigError> {
        let issuer = var("MOTCUA_SSO_ISSUER").filter(|s| !s.trim().is_empty());
        let url = var("MOTCUA_SSO_JWKS_URL").filter(|s| !s.trim().is_empty());
        let (issuer, url) = match (issuer, url) {
            (None, None) => return Ok(None),
            (Some(_), None) => return Err(ConfigError::Missing("MOTCUA_SSO_JWKS_URL")),
            (None, Some(_)) => return Err(ConfigError::Missing("MOTCUA_SSO_ISSUER")),
            (Some(i), Some(u)) => (i, u),
        };
        if !trusted_key_url(&url) {
            return Err(ConfigError::Invalid {
                name: "MOTCUA_SSO_JWKS_URL",
                why: "must be an https URL (plain http only on loopback)".into(),
            });
        }
        let role_claim = var("MOTCUA_SSO_ROLE_CLAIM").unwrap_or_else(|| "role".into());
        let role_prefix = var("MOTCUA_SSO_ROLE_PREFIX").unwrap_or_else(|| "motcua-".into());
        if role_prefix.trim().is_empty() && !role_claim.starts_with("resource_access.") {
            return Err(ConfigError::Invalid {
                name: "MOTCUA_SSO_ROLE_PREFIX",
                why: "may be empty only when MOTCUA_SSO_ROLE_CLAIM names one client's roles \
                      (resource_access.<client>.roles)"
                    .into(),
            });
        }
        Ok(Some(SsoTrust {
            issuer: issuer.trim().to_owned(),
            audience: var("MOTCUA_SSO_AUDIENCE").unwrap_or_else(|| "motcua".into()),
            role_claim,
            agency_claim: var("MOTCUA_SSO_AGENCY_CLAIM").unwrap_or_else(|| "agency".into()),
            role_prefix: role_prefix.trim().to_owned(),
            jwks: RemoteJwks::new(url.trim()),
        }))
    }

    /// Checks an SSO token (RS256 or ES256, `kid`, issuer, audience, expiry) and reads the
    /// officer or admin it names. Citizens do not sign in through the SSO: a token without
    /// an officer or admin role is refused, and an officer needs a valid agency code.
    pub async fn verify(&self, token: &str) -> Result<SsoIdentity, Problem> {
        let invalid = || {
            Problem::unauthorized(
                "Mã đăng nhập một lần (SSO) không hợp lệ",
                "The single sign-on token is not valid",
            )
        };
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(invalid());
        }
        let kid = header.kid.ok_or_else(invalid)?;
        let key = self.jwks.find(&kid, header.alg).await.ok_or_else(invalid)?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 30;
        let claims = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
            .map_err(|e| crate::auth::token_problem(Some(e)))?
            .claims;
        let subject = claims["sub"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(invalid)?
            .to_owned();
        let roles: Vec<&str> = match claim(&claims, &self.role_claim) {
            Some(serde_json::Value::String(r)) => r.split_whitespace().collect(),
            Some(serde_json::Value::Array(v)) => v.iter().filter_map(|r| r.as_str()).collect(),
            _ => Vec::new(),
        };
        let ours = |name: &str| {
            let want = format!("{}{name}", self.role_prefix);
            roles.iter().any(|r| *r == want)
        };
        let role = if ours("admin") {
            Role::Admin
        } else if ours("officer") {
            Role::Officer
        } else if ours("leader") || ours("province-leader") {
            Role::Leader
        } else {
            return Err(Problem::forbidden(
                "Tài khoản SSO không có vai trò cán bộ, lãnh đạo hoặc quản trị",
                "The SSO account has no officer, leader or admin role",
            ));
        };
        // An agency claim that is there but not one string (a list, a number) is refused:
        // read as none it would widen what the token opens.
        let agency_claim = claim(&claims, &self.agency_claim).filter(|v| !v.is_null());
        if agency_claim.is_some_and(|v| !v.is_string()) {
            return Err(Problem::unauthorized(
                "Mã cơ quan trong mã SSO không hợp lệ",
                "The agency in the SSO token is not a valid agency code",
            ));
        }
        // A leader reads one agency's reports unless the SSO makes them the province's
        // leader explicitly: the absence of an agency never widens a token.
        if role == Role::Leader && !ours("province-leader") && agency_claim.is_none() {
            return Err(Problem::unauthorized(
                "Mã SSO của lãnh đạo cơ quan thiếu mã cơ quan",
                "An agency leader's SSO token must name the agency",
            ));
        }
        let province_leader = role == Role::Leader && ours("province-leader");
        let agency = match agency_claim
            .and_then(|v| v.as_str())
            .filter(|_| !province_leader)
        {
            Some(a) => Some(AgencyCode::parse(a).map_err(|_| {
                Problem::unauthorized(
                    "Mã cơ quan trong mã SSO không hợp lệ",
                    "The agency in the SSO token is not a valid agency code",
                )
            })?),
            None if role == Role::Officer => {
                return Err(Problem::unauthorized(
                    "Mã SSO của cán bộ thiếu mã cơ quan",
                    "An officer's SSO token must name an agency",
                ));
            }
            None => None,
        };
        Ok(SsoIdentity {
            subject,
            role,
            agency,
            expires: claims["exp"].as_i64().ok_or_else(invalid)?,
        })
    }
}

fn claim<'a>(claims: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    path.split('.')
        .try_fold(claims, |v, part| v.get(part))
        .filter(|v| !v.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_parsing_keeps_rs256_and_es256_only() {
        let es = crate::SigningKey::generate("es-1").jwk();
        let doc = serde_json::json!({"keys": [
            es,
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "EC", "crv": "P-384", "kid": "p384", "x": "AA", "y": "AA"},
            {"kty": "RSA", "kid": "rsa-512", "alg": "RS512", "n": "sXch", "e": "AQAB"},
            {"kty": "RSA", "kid": "rsa-1", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw", "e": "AQAB"}
        ]});
        let map = parse_jwks(&doc);
        let mut kids: Vec<&String> = map.keys().collect();
        kids.sort();
        assert_eq!(kids, ["es-1", "rsa-1"]);
        assert_eq!(map["es-1"].0, Algorithm::ES256);
        assert_eq!(map["rsa-1"].0, Algorithm::RS256);
    }

    #[test]
    fn key_urls_are_https_or_exactly_loopback() {
        for good in [
            "https://sso.example/jwks",
            "http://127.0.0.1:8080/jwks",
            "http://127.0.0.1/jwks",
            "http://localhost:9000/jwks",
            "http://[::1]:9000/jwks",
        ] {
            assert!(trusted_key_url(good), "{good}");
        }
        for bad in [
            "http://127.0.0.1.evil.example/jwks",
            "http://127.0.0.1@evil.example/jwks",
            "http://localhost.evil.example/jwks",
            "http://sso.example/jwks",
            "ftp://127.0.0.1/jwks",
            "not a url",
        ] {
            assert!(!trusted_key_url(bad), "{bad}");
        }
    }

    #[test]
    fn sso_config_needs_issuer_and_https_url_together() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(SsoTrust::from_vars(vars(&[])).unwrap().is_none());
        assert_eq!(
            SsoTrust::from_vars(vars(&[("MOTCUA_SSO_ISSUER", "https://sso.example")])).unwrap_err(),
            ConfigError::Missing("MOTCUA_SSO_JWKS_URL")
        );
        assert!(
            SsoTrust::from_vars(vars(&[
                ("MOTCUA_SSO_ISSUER", "https://sso.example"),
                ("MOTCUA_SSO_JWKS_URL", "http://sso.example/jwks"),
            ]))
            .is_err()
        );
        let t = SsoTrust::from_vars(vars(&[
            ("MOTCUA_SSO_ISSUER", "https://sso.example"),
            ("MOTCUA_SSO_JWKS_URL", "https://sso.example/jwks"),
            ("MOTCUA_SSO_ROLE_CLAIM", "realm_access.roles"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(t.role_claim, "realm_access.roles");
        assert_eq!(t.role_prefix, "motcua-");
        // Without a prefix the roles must be one client's own.
        assert!(
            SsoTrust::from_vars(vars(&[
                ("MOTCUA_SSO_ISSUER", "https://sso.example"),
                ("MOTCUA_SSO_JWKS_URL", "https://sso.example/jwks"),
                ("MOTCUA_SSO_ROLE_CLAIM", "realm_access.roles"),
                ("MOTCUA_SSO_ROLE_PREFIX", ""),
            ]))
            .is_err()
        );
        assert!(
            SsoTrust::from_vars(vars(&[
                ("MOTCUA_SSO_ISSUER", "https://sso.example"),
                ("MOTCUA_SSO_JWKS_URL", "https://sso.example/jwks"),
                ("MOTCUA_SSO_ROLE_CLAIM", "resource_access.motcua.roles"),
                ("MOTCUA_SSO_ROLE_PREFIX", ""),
            ]))
            .is_ok()
        );
        assert_eq!(t.audience, "motcua");
        let claims = serde_json::json!({"realm_access": {"roles": ["offline_access", "officer"]}});
        assert_eq!(
            claim(&claims, &t.role_claim).unwrap()[1].as_str(),
            Some("officer")
        );
    }
}
