//! Configuration from environment variables, checked once at start-up.

use axum::http::{HeaderValue, Method, header};
use motcua_http::{Authenticator, DEFAULT_BODY_LIMIT};
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use motcua_http::config::ConfigError;
use motcua_http::config::number;

/// Settings of the submission function.
#[derive(Debug, Clone)]
pub struct SubmissionConfig {
    /// `MOTCUA_JWT_ISSUER` (default `motcua`).
    pub jwt_issuer: String,
    /// `MOTCUA_JWT_AUDIENCE` (default `motcua`).
    pub jwt_audience: String,
    /// `MOTCUA_JWT_SECRETS`: comma-separated base64 HS256 secrets of at least 32 bytes; the
    /// first signs, all verify (rotation). Optional: without it only ES256 account tokens
    /// are accepted (production, where the gateway could not check HS256 tokens anyway).
    pub jwt_secrets: Vec<Vec<u8>>,
    /// `MOTCUA_MAX_BODY_BYTES` (default 262144).
    pub max_body_bytes: usize,
    /// `MOTCUA_IDEMPOTENCY_TTL_SECS` (default 86400).
    pub idempotency_ttl_secs: u64,
    /// `MOTCUA_CORS_ORIGINS`: comma-separated portal origins, or `*` (default: none).
    pub cors_origins: Vec<String>,
    /// `MOTCUA_PAYMENT_CEILING_VND` (default 50,000,000): the most an officer may ask of a
    /// dossier whose procedure has no fee in the catalogue (a fee in the catalogue bounds
    /// the amount itself).
    pub payment_ceiling_vnd: u64,
    /// `MOTCUA_MAX_EXTENSION_WORKING_DAYS` (optional): the most working days an extension
    /// may add; without it, and never more than, the procedure's processing time.
    pub max_extension_working_days: Option<u32>,
    /// `MOTCUA_UPLOAD_MAX_DOSSIER_BYTES` (default 100 MiB): the most the uploaded files one
    /// submission or supplement cites may hold together (the uploads function's setting).
    pub max_dossier_upload_bytes: u64,
    /// `MOTCUA_ID_HASH_KEY` (the identity function's key or key set): a paper dossier is
    /// filed under the owner reference of the applicant's number, so the person sees it
    /// when they sign in. Without it, officers cannot register paper dossiers.
    pub id_hash_keys: Option<motcua_http::id_hash::IdHashKeys>,
}

impl SubmissionConfig {
    /// Reads the settings through `get` (the process environment in production).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let jwt_secrets = motcua_http::config::jwt_secrets(get("MOTCUA_JWT_SECRETS"))?;
        Ok(SubmissionConfig {
            jwt_issuer: get("MOTCUA_JWT_ISSUER").unwrap_or_else(|| "motcua".into()),
            jwt_audience: get("MOTCUA_JWT_AUDIENCE").unwrap_or_else(|| "motcua".into()),
            jwt_secrets,
            max_body_bytes: number(
                "MOTCUA_MAX_BODY_BYTES",
                get("MOTCUA_MAX_BODY_BYTES"),
                DEFAULT_BODY_LIMIT,
            )?,
            idempotency_ttl_secs: number(
                "MOTCUA_IDEMPOTENCY_TTL_SECS",
                get("MOTCUA_IDEMPOTENCY_TTL_SECS"),
                86_400,
            )?,
            cors_origins: get("MOTCUA_CORS_ORIGINS")
                .map(|s| {
                    s.split(',')
                        .map(|o| o.trim().to_owned())
                        .filter(|o| !o.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            payment_ceiling_vnd: number(
                "MOTCUA_PAYMENT_CEILING_VND",
                get("MOTCUA_PAYMENT_CEILING_VND"),
                50_000_000,
            )?,
            max_dossier_upload_bytes: number(
                "MOTCUA_UPLOAD_MAX_DOSSIER_BYTES",
                get("MOTCUA_UPLOAD_MAX_DOSSIER_BYTES"),
                100 * 1024 * 1024,
            )?,
            id_hash_keys: match get("MOTCUA_ID_HASH_KEY").filter(|k| !k.trim().is_empty()) {
                Some(raw) => Some(motcua_http::id_hash::IdHashKeys::parse(&raw).map_err(
                    |why| ConfigError::Invalid {
                        name: "MOTCUA_ID_HASH_KEY",
                        why,
                    },
                )?),
                None => None,
            },
            max_extension_working_days: match get("MOTCUA_MAX_EXTENSION_WORKING_DAYS") {
                Some(v) => Some(number("MOTCUA_MAX_EXTENSION_WORKING_DAYS", Some(v), 0)?),
                None => None,
            },
        })
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn authenticator(&self) -> Authenticator {
        Authenticator::new(&self.jwt_issuer, &self.jwt_audience, &self.jwt_secrets)
            .expect("secrets were checked when the config was read")
    }

    /// CORS for the configured portal origins (none: no cross-origin access).
    pub fn cors_layer(&self) -> CorsLayer {
        let origins = if self.cors_origins.iter().any(|o| o == "*") {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(
                self.cors_origins
                    .iter()
                    .filter_map(|o| HeaderValue::from_str(o).ok()),
            )
        };
        CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([
                Method::GET,
                Method::POST,
                // The runner's presigned upload URLs (S3's own CORS rule on AWS).
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
                Method::OPTIONS,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT_LANGUAGE,
                header::IF_MATCH,
                header::HeaderName::from_static("idempotency-key"),
                header::IF_NONE_MATCH,
                header::HeaderName::from_static("x-amz-checksum-sha256"),
            ])
            .expose_headers([header::ETAG, header::LOCATION, header::RETRY_AFTER])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<SubmissionConfig, ConfigError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        SubmissionConfig::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn names_the_invalid_variable() {
        // No HS256 secret: allowed, HS256 is off.
        assert!(cfg(&[]).unwrap().jwt_secrets.is_empty());
        let short = STANDARD.encode([1u8; 8]);
        assert!(cfg(&[("MOTCUA_JWT_SECRETS", &short)]).is_err());
        let good = STANDARD.encode([1u8; 32]);
        let bad_num = cfg(&[
            ("MOTCUA_JWT_SECRETS", &good),
            ("MOTCUA_MAX_BODY_BYTES", "lots"),
        ]);
        assert!(
            bad_num
                .unwrap_err()
                .to_string()
                .contains("MOTCUA_MAX_BODY_BYTES")
        );
        let ok = cfg(&[("MOTCUA_JWT_SECRETS", &format!("{good},{good}"))]).unwrap();
        assert_eq!(ok.jwt_secrets.len(), 2);
        assert_eq!(ok.max_body_bytes, DEFAULT_BODY_LIMIT);
    }
}
