//! The function on AWS Lambda: its state from the environment, the SQS consumer of
//! dossier and payment events, and the rebuild task.

use std::sync::Arc;

use motcua_domain::EventEnvelope;
use motcua_http::SystemClock;
use motcua_http::settings::HttpSettings;
use serde::Deserialize;

use crate::consume::{Outcome, apply_event};
use crate::{ReportConfig, ReportState};

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.trim().is_empty())
}

/// The state of the deployed function: dossiers, catalogue and counters on
/// `MOTCUA_TABLE`; revoked token subjects on `MOTCUA_IDENTITY_TABLE`; the token keys
/// from Secrets Manager.
pub async fn state_from_env() -> Result<ReportState, Box<dyn std::error::Error + Send + Sync>> {
    let conf = motcua_aws::sdk_config().await;
    let secrets_client = motcua_aws::aws_sdk_secretsmanager::Client::new(&conf);
    let secrets =
        motcua_aws::secrets::resolve(&secrets_client, &["MOTCUA_JWT_SECRETS"], env).await?;
    let get = motcua_aws::secrets::lookup(secrets, env);
    let get = move |k: &str| get(k).filter(|v| !v.trim().is_empty());
    let config = ReportConfig::from_lookup(&get)?;
    let http = HttpSettings::from_lookup(&get)?;
    let table = env("MOTCUA_TABLE").ok_or("MOTCUA_TABLE is required")?;
    let store = motcua_aws::DynamoStore::from_env(table).await;
    let submission = store.submission_ports();
    let revoked = match env("MOTCUA_IDENTITY_TABLE") {
        Some(t) => {
            motcua_aws::DynamoStore::from_env(t)
                .await
                .identity_ports()
                .revoked
        }
        None => submission.revoked.clone(),
    };
    Ok(ReportState {
        dossiers: submission.dossiers.clone(),
        catalogue: submission.catalogue.clone(),
        kpi: Arc::new(store),
        auth: http.authenticator(revoked),
        clock: Arc::new(SystemClock::default()),
        config: Arc::new(config),
    })
}

/// An EventBridge event as an SQS message body carries it.
#[derive(Deserialize)]
struct BusEvent {
    detail: EventEnvelope,
}

/// Applies a batch of SQS messages (EventBridge events); returns the ids of the messages
/// to retry (a store that did not answer). A body that is no event of ours is dropped,
/// logged.
pub async fn handle_events(s: &ReportState, messages: &[(String, String)]) -> Vec<String> {
    let mut failed = Vec::new();
    for (id, body) in messages {
        let event = match serde_json::from_str::<BusEvent>(body) {
            Ok(e) => e.detail,
            Err(_) => {
                tracing::error!(message = %id, "not a motcua event: dropped");
                continue;
            }
        };
        match apply_event(s, &event).await {
            Ok(Outcome::Applied) => tracing::debug!(event = %event.id, "counted"),
            Ok(Outcome::Unchanged) => tracing::debug!(event = %event.id, "already counted"),
            Ok(Outcome::Ignored(why)) => tracing::debug!(event = %event.id, why, "not counted"),
            Err(e) => {
                tracing::warn!(message = %id, error = %e, "counting failed; retried");
                failed.push(id.clone());
            }
        }
    }
    failed
}

/// What a direct invocation asks: `{"task": "rebuild"}`.
#[derive(Debug, Default, Deserialize)]
pub struct TaskInput {
    #[serde(default)]
    pub task: Option<String>,
}
