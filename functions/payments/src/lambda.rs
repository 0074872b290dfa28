//! The function on AWS Lambda: its state from the environment, and the scheduled jobs.

use std::sync::Arc;

use jiff::civil::Date;
use motcua_http::SystemClock;
use motcua_http::settings::HttpSettings;
use serde::Deserialize;

use crate::reconcile::{Round, daily_report, reconcile};
use crate::{PayConfig, PayState, providers};

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.trim().is_empty())
}

/// The state of the deployed function: dossiers and payments on `MOTCUA_TABLE`, revoked
/// token subjects on `MOTCUA_IDENTITY_TABLE`, the providers the environment offers, their
/// secrets from Secrets Manager.
pub async fn state_from_env() -> Result<PayState, Box<dyn std::error::Error + Send + Sync>> {
    let conf = motcua_aws::sdk_config().await;
    let secrets_client = motcua_aws::aws_sdk_secretsmanager::Client::new(&conf);
    let mut names = providers::SECRETS.to_vec();
    names.push("MOTCUA_JWT_SECRETS");
    let secrets = motcua_aws::secrets::resolve(&secrets_client, &names, env).await?;
    let get = motcua_aws::secrets::lookup(secrets, env);
    let get = move |k: &str| get(k).filter(|v| !v.trim().is_empty());
    let mut config = PayConfig::from_lookup(&get)?;
    let (offered, profile) = providers::from_lookup(&get)?;
    config.paygov = profile;
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
    Ok(PayState {
        dossiers: submission.dossiers.clone(),
        idempotency: submission.idempotency.clone(),
        ports: store.payment_ports(offered),
        auth: http.authenticator(revoked),
        clock: Arc::new(SystemClock::default()),
        config: Arc::new(config),
    })
}

/// What a scheduled rule asks: `{"task": "reconcile"}` (every few minutes) or
/// `{"task": "report"}` (each night: yesterday's report; `"day"` for another).
#[derive(Debug, Default, Deserialize)]
pub struct ScheduleInput {
    #[serde(default)]
    pub task: Option<String>,
    #[serde(default)]
    pub day: Option<Date>,
}

/// Runs the task; its figures as JSON.
pub async fn handle_schedule(
    s: &PayState,
    input: &ScheduleInput,
) -> Result<serde_json::Value, motcua_ports::StoreError> {
    match input.task.as_deref() {
        Some("report") => {
            let yesterday = motcua_domain::calendar::local_date(s.clock.now())
                .yesterday()
                .map_err(|e| motcua_ports::StoreError::Backend(e.to_string()))?;
            let r = daily_report(s, input.day.unwrap_or(yesterday)).await?;
            tracing::info!(day = %r.day, mismatches = r.mismatches.len(), unchecked = r.unchecked.len(), "reconciliation report");
            Ok(serde_json::json!({
                "day": r.day, "mismatches": r.mismatches.len(), "unchecked": r.unchecked.len(),
            }))
        }
        _ => {
            let round: Round = reconcile(s).await?;
            tracing::info!(?round, "reconciled");
            Ok(serde_json::to_value(round).unwrap_or_default())
        }
    }
}
