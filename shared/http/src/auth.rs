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
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthConfigError {
    #[error("the signing secret must be at least 32 bytes")]
    WeakSecret,
}

/// Verifies (and, for development, mints) HS256 tokens for one issuer and audience.
/// Several secrets may be configured: the first signs, all verify (key rotation).
pub struct Authenticator {
    issuer: String,
    audience: String,
    keys: Vec<(EncodingKey, DecodingKey)>,
    validation: Validation,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("issuer", &self.issuer)
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Authenticator {
    pub fn new(
        issuer: &str,
        audience: &str,
        secrets: &[Vec<u8>],
    ) -> Result<Authenticator, AuthConfigError> {
        if secrets.is_empty() || secrets.iter().any(|s| s.len() < 32) {
            return Err(AuthConfigError::WeakSecret);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        Ok(Authenticator {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            keys: secrets
                .iter()
                .map(|s| (EncodingKey::from_secret(s), DecodingKey::from_secret(s)))
                .collect(),
            validation,
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Signs a token for `sub` with `role`, valid `ttl_secs` from `now_secs`.
    pub fn mint(
        &self,
        sub: &str,
        role: Role,
        agency: Option<&AgencyCode>,
        now_secs: i64,
        ttl_secs: i64,
    ) -> String {
        let claims = Claims {
            sub: sub.to_owned(),
            role,
            agency: agency.map(|a| a.as_str().to_owned()),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now_secs,
            exp: now_secs + ttl_secs,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.keys[0].0)
            .expect("HS256 signing cannot fail")
    }

    /// Checks signature, issuer, audience and expiry; returns the caller.
    pub fn verify(&self, token: &str) -> Result<Actor, Problem> {
        let mut last_err = None;
        for (_, key) in &self.keys {
            match jsonwebtoken::decode::<Claims>(token, key, &self.validation) {
                Ok(data) => return actor_of(data.claims),
                Err(e) => last_err = Some(e),
            }
        }
        use jsonwebtoken::errors::ErrorKind;
        Err(match last_err.map(|e| e.into_kind()) {
            Some(ErrorKind::ExpiredSignature) => Problem::unauthorized(
                "Phiên đăng nhập đã hết hạn, vui lòng đăng nhập lại",
                "The token has expired; sign in again",
            ),
            _ => Problem::unauthorized("Mã xác thực không hợp lệ", "The bearer token is not valid"),
        })
    }
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
    Ok(Actor {
        role: c.role,
        subject: c.sub,
        agency,
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
        auth.verify(token.trim()).map(Caller)
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
    fn weak_secret_refused() {
        assert!(Authenticator::new("i", "a", &[vec![1u8; 8]]).is_err());
        assert!(Authenticator::new("i", "a", &[]).is_err());
    }

    #[test]
    fn officer_needs_agency() {
        let a = auth(&[7u8; 32]);
        let now = jiff::Timestamp::now().as_second();
        let t = a.mint("o", Role::Officer, None, now, 600);
        assert!(a.verify(&t).is_err());
    }
}
