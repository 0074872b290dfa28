//! The account-token signing keys in AWS Secrets Manager, and their rotation.
//!
//! The secret holds `{"keys": [{"kid", "pkcs8", "active_from"}, …]}`, newest first. Secrets
//! Manager rotates it on a schedule by calling [`rotate`] with its four steps; a rotation
//! adds a new key that is published at once and signs only a day later
//! ([`PUBLISH_SECS`]), so every verifier and the gateway's cached JWKS know it before its
//! first token, and drops keys no live token can need. The identity function re-reads the
//! secret every [`RELOAD_SECS`].

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use motcua_http::{Authenticator, SigningKey, rotate_signing_keys, signing_keys_from_json};
use serde::Deserialize;

/// How long a new key is published before it signs.
pub const PUBLISH_SECS: i64 = 86_400;
/// How often a running identity function re-reads the secret.
pub const RELOAD_SECS: u64 = 300;

const CURRENT: &str = "AWSCURRENT";
const PENDING: &str = "AWSPENDING";

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("secrets manager: {0}")]
    Aws(String),
    #[error("the signing-keys secret is not a key document: {0}")]
    BadDocument(String),
    #[error("rotation refused: {0}")]
    Refused(String),
}

/// The error's code only: the debug form of an answer that could not be read holds its
/// body, and the body of `GetSecretValue` is the secret (review finding).
fn aws_err<E: ProvideErrorMetadata>(e: &E) -> KeysError {
    KeysError::Aws(
        e.code()
            .unwrap_or("unreachable or unreadable answer")
            .to_owned(),
    )
}

/// The keys in the secret's current version.
pub async fn load(client: &Client, secret_id: &str) -> Result<Vec<SigningKey>, KeysError> {
    let out = client
        .get_secret_value()
        .secret_id(secret_id)
        .version_stage(CURRENT)
        .send()
        .await
        .map_err(|e| aws_err(&e))?;
    parse(out.secret_string().unwrap_or("{}"))
}

fn parse(doc: &str) -> Result<Vec<SigningKey>, KeysError> {
    signing_keys_from_json(doc).map_err(|e| KeysError::BadDocument(e.to_string()))
}

fn document(keys: &[SigningKey]) -> String {
    let list: serde_json::Value =
        serde_json::from_str(&motcua_http::signing_keys_to_json(keys)).expect("valid JSON");
    serde_json::json!({ "keys": list }).to_string()
}

/// Loads the keys into `auth` now, then every [`RELOAD_SECS`] in the background (a failed
/// reload keeps the keys it has).
pub async fn load_and_follow(
    client: Client,
    secret_id: String,
    auth: Arc<Authenticator>,
) -> Result<(), KeysError> {
    auth.set_signing_keys(&load(&client, &secret_id).await?);
    follow(client, secret_id, auth);
    Ok(())
}

/// Reloads the key set of `secret_id` into `auth` every few minutes, in the background
/// (the keys were loaded once already).
pub fn follow(client: Client, secret_id: String, auth: Arc<Authenticator>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(RELOAD_SECS)).await;
            match load(&client, &secret_id).await {
                Ok(keys) => auth.set_signing_keys(&keys),
                Err(e) => tracing::warn!(error = %e, "reloading the signing keys failed"),
            }
        }
    });
}

/// What Secrets Manager sends a rotation function.
#[derive(Debug, Clone, Deserialize)]
pub struct RotationEvent {
    #[serde(rename = "SecretId")]
    pub secret_id: String,
    #[serde(rename = "ClientRequestToken")]
    pub token: String,
    #[serde(rename = "Step")]
    pub step: String,
}

/// One step of a rotation (createSecret, setSecret, testSecret, finishSecret). Every step
/// may be retried by Secrets Manager and does nothing the second time.
pub async fn rotate(
    client: &Client,
    event: &RotationEvent,
    now_secs: i64,
) -> Result<(), KeysError> {
    let meta = client
        .describe_secret()
        .secret_id(&event.secret_id)
        .send()
        .await
        .map_err(|e| aws_err(&e))?;
    let versions = meta.version_ids_to_stages().cloned().unwrap_or_default();
    match versions.get(&event.token) {
        // Already finished (a retried step).
        Some(stages) if stages.iter().any(|s| s == CURRENT) => return Ok(()),
        Some(stages) if stages.iter().any(|s| s == PENDING) => {}
        // createSecret writes the pending version (Secrets Manager may have reserved it).
        None if event.step == "createSecret" => {}
        _ => {
            return Err(KeysError::Refused(
                "the version of this rotation is not pending".into(),
            ));
        }
    }
    match event.step.as_str() {
        "createSecret" => create(client, event, now_secs).await,
        // Nothing outside the secret holds the keys.
        "setSecret" => Ok(()),
        "testSecret" => {
            let keys = pending(client, event)
                .await?
                .ok_or_else(|| KeysError::Refused("no pending key document".into()))?;
            let probe = Authenticator::new("rotation-test", "rotation-test", &[])
                .map_err(|e| KeysError::BadDocument(e.to_string()))?
                .with_signing_keys(&keys);
            // Some key signs now (the current one, or the first one ever).
            let token = probe
                .mint_signed("probe", motcua_domain::Role::Citizen, None, now_secs, 60)
                .ok_or_else(|| KeysError::Refused("no key of the new document can sign".into()))?;
            probe.verify(&token).map_err(|_| {
                KeysError::Refused("a token of the new document does not verify".into())
            })?;
            Ok(())
        }
        "finishSecret" => {
            let current = versions
                .iter()
                .find(|(_, s)| s.iter().any(|s| s == CURRENT))
                .map(|(v, _)| v.clone());
            let mut req = client
                .update_secret_version_stage()
                .secret_id(&event.secret_id)
                .version_stage(CURRENT)
                .move_to_version_id(&event.token);
            if let Some(c) = current {
                req = req.remove_from_version_id(c);
            }
            req.send().await.map_err(|e| aws_err(&e))?;
            tracing::info!("signing keys rotated");
            Ok(())
        }
        other => Err(KeysError::Refused(format!("unknown step {other}"))),
    }
}

/// The key document of this rotation's pending version, if written yet.
async fn pending(
    client: &Client,
    event: &RotationEvent,
) -> Result<Option<Vec<SigningKey>>, KeysError> {
    match client
        .get_secret_value()
        .secret_id(&event.secret_id)
        .version_id(&event.token)
        .version_stage(PENDING)
        .send()
        .await
    {
        Ok(out) => match out.secret_string() {
            Some(s) => parse(s).map(Some),
            None => Ok(None),
        },
        Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(None),
        Err(e) => Err(aws_err(&e)),
    }
}

async fn create(client: &Client, event: &RotationEvent, now_secs: i64) -> Result<(), KeysError> {
    if pending(client, event).await?.is_some() {
        return Ok(());
    }
    let current = load(client, &event.secret_id).await?;
    // The kid names the rotation: distinct, and traceable to the secret's version.
    let kid = format!(
        "k{}-{}",
        jiff::Timestamp::from_second(now_secs)
            .map(|t| t.strftime("%Y%m%d").to_string())
            .unwrap_or_default(),
        &event
            .token
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(8)
            .collect::<String>()
    );
    let keys = rotate_signing_keys(&current, SigningKey::generate(&kid), now_secs, PUBLISH_SECS);
    client
        .put_secret_value()
        .secret_id(&event.secret_id)
        .client_request_token(&event.token)
        .secret_string(document(&keys))
        .version_stages(PENDING)
        .send()
        .await
        .map_err(|e| aws_err(&e))?;
    Ok(())
}
