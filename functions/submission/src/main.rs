//! The submission function on AWS Lambda, behind an HTTP API.

use std::sync::Arc;

use motcua_domain::WorkingCalendar;
use motcua_submission::{AppState, SubmissionConfig, SystemClock, router};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    motcua_aws::init_lambda_tracing();
    // Development HS256 secrets, if any, from Secrets Manager (MOTCUA_JWT_SECRETS_SECRET).
    let env = |k: &str| std::env::var(k).ok();
    // The ID-number hash key (paper dossiers are filed under the person's owner reference)
    // from Secrets Manager too (MOTCUA_ID_HASH_KEY_SECRET).
    let names = ["MOTCUA_JWT_SECRETS", "MOTCUA_ID_HASH_KEY"];
    let secrets = if names
        .iter()
        .any(|n| env(&format!("{n}_SECRET")).is_some_and(|v| !v.trim().is_empty()))
    {
        motcua_aws::secrets::resolve(
            &motcua_aws::aws_sdk_secretsmanager::Client::new(&motcua_aws::sdk_config().await),
            &names,
            env,
        )
        .await?
    } else {
        Default::default()
    };
    let config = SubmissionConfig::from_lookup(motcua_aws::secrets::lookup(secrets, env))?;
    let ports = match std::env::var("MOTCUA_BACKEND").as_deref() {
        #[cfg(feature = "embedded")]
        Ok("embedded") => {
            // For trying a function alone; data in the Lambda's /tmp is not durable.
            let dir = std::env::var("MOTCUA_DATA_DIR").unwrap_or_else(|_| "/tmp/motcua".into());
            motcua_embedded::EmbeddedStore::open(std::path::Path::new(&dir))?.submission_ports()
        }
        Ok("aws") | Err(_) => {
            let table = std::env::var("MOTCUA_TABLE").map_err(|_| "MOTCUA_TABLE is required")?;
            motcua_aws::DynamoStore::from_env(table)
                .await
                .submission_ports()
        }
        Ok(other) => {
            return Err(format!("MOTCUA_BACKEND must be aws or embedded, not {other}").into());
        }
    };
    // Public keys of account tokens: fetched from the identity function's JWKS
    // (MOTCUA_JWKS_URL) at cold start and again when a token names a new kid; or a fixed
    // list (MOTCUA_VERIFY_KEYS, [{"kid", "x", "y"}]).
    let mut auth = config.authenticator();
    if let Ok(json) = std::env::var("MOTCUA_VERIFY_KEYS") {
        auth = auth.with_signing_keys(&motcua_http::signing_keys_from_json(&json)?);
    }
    if let Ok(url) = std::env::var("MOTCUA_JWKS_URL") {
        auth = auth.with_remote_keys(motcua_http::RemoteJwks::new(&url));
    }
    // An erased account's tokens are refused at once: the identity function records the
    // subject in its own table, which this function may only read those items of.
    let mut ports = ports;
    if let Ok(table) = std::env::var("MOTCUA_IDENTITY_TABLE") {
        ports.revoked = Arc::new(motcua_aws::DynamoStore::from_env(table).await);
    }
    auth.check_revocations(ports.revoked.clone());
    let auth = Arc::new(auth);
    // The JWKS is fetched while the function waits for its first event; a token checked
    // meanwhile waits for that fetch rather than starting another.
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
    let state = AppState {
        ports,
        auth,
        clock: Arc::new(SystemClock::default()),
        calendar: WorkingCalendar::vietnam(),
        config: Arc::new(config),
    };
    lambda_http::run(router(state)).await
}
