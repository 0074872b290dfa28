//! What an HTTP function needs on Lambda besides its own settings: account-token checking
//! as every function does it, and the HTTP layers (body limit, localized problems, CORS
//! for the portal origins).

use std::sync::Arc;

use crate::config::{ConfigError, number};
use crate::{Authenticator, DEFAULT_BODY_LIMIT};
use axum::Router;
use axum::http::{HeaderValue, Method, header};
use motcua_ports::identity::RevokedSubjects;
use tower_http::cors::{AllowOrigin, CorsLayer};

#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// `MOTCUA_JWT_ISSUER` (default `motcua`).
    pub jwt_issuer: String,
    /// `MOTCUA_JWT_AUDIENCE` (default `motcua`).
    pub jwt_audience: String,
    /// `MOTCUA_JWT_SECRETS` (optional; development HS256 tokens).
    pub jwt_secrets: Vec<Vec<u8>>,
    /// `MOTCUA_CORS_ORIGINS`: comma-separated portal origins, or `*` (default: none).
    pub cors_origins: Vec<String>,
    /// `MOTCUA_MAX_BODY_BYTES` (default 262144).
    pub max_body_bytes: usize,
    /// `MOTCUA_JWKS_URL`: the identity function's JWKS.
    pub jwks_url: Option<String>,
    /// `MOTCUA_VERIFY_KEYS`: a fixed list of public keys instead.
    pub verify_keys: Option<String>,
}

impl HttpSettings {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(HttpSettings {
            jwt_issuer: get("MOTCUA_JWT_ISSUER").unwrap_or_else(|| "motcua".into()),
            jwt_audience: get("MOTCUA_JWT_AUDIENCE").unwrap_or_else(|| "motcua".into()),
            jwt_secrets: crate::config::jwt_secrets(get("MOTCUA_JWT_SECRETS"))?,
            cors_origins: get("MOTCUA_CORS_ORIGINS")
                .map(|s| {
                    s.split(',')
                        .map(|o| o.trim().to_owned())
                        .filter(|o| !o.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            max_body_bytes: number(
                "MOTCUA_MAX_BODY_BYTES",
                get("MOTCUA_MAX_BODY_BYTES"),
                DEFAULT_BODY_LIMIT,
            )?,
            jwks_url: get("MOTCUA_JWKS_URL"),
            verify_keys: get("MOTCUA_VERIFY_KEYS"),
        })
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// The account-token checker: the JWKS fetched in the background at start, or the
    /// fixed keys; erased accounts refused through `revoked`.
    pub fn authenticator(&self, revoked: Arc<dyn RevokedSubjects>) -> Arc<Authenticator> {
        let mut auth = Authenticator::new(&self.jwt_issuer, &self.jwt_audience, &self.jwt_secrets)
            .expect("secrets were checked when the settings were read");
        if let Some(json) = &self.verify_keys {
            match crate::signing_keys_from_json(json) {
                Ok(keys) => auth = auth.with_signing_keys(&keys),
                Err(e) => tracing::error!(error = %e, "MOTCUA_VERIFY_KEYS is not a key list"),
            }
        }
        if let Some(url) = &self.jwks_url {
            auth = auth.with_remote_keys(crate::RemoteJwks::new(url));
        }
        auth.check_revocations(revoked);
        let auth = Arc::new(auth);
        if auth.remote_keys().is_some() {
            let auth = auth.clone();
            tokio::spawn(async move {
                if let Some(remote) = auth.remote_keys()
                    && let Err(e) = remote.refresh().await
                {
                    tracing::warn!(error = %e, "the JWKS could not be fetched at start; retried on first use");
                }
            });
        }
        auth
    }

    /// Body limit, localized problems, CORS.
    pub fn with_layers(&self, router: Router) -> Router {
        let origins = if self.cors_origins.iter().any(|o| o == "*") {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(
                self.cors_origins
                    .iter()
                    .filter_map(|o| HeaderValue::from_str(o).ok()),
            )
        };
        let cors = CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT_LANGUAGE,
                header::HeaderName::from_static("idempotency-key"),
            ])
            .expose_headers([header::LOCATION, header::RETRY_AFTER]);
        router
            .layer(axum::extract::DefaultBodyLimit::max(self.max_body_bytes))
            .layer(axum::middleware::from_fn(crate::localize))
            .layer(cors)
    }
}
