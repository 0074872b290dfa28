//! The function on AWS Lambda: its state from the environment, the SQS consumer of dossier
//! events and the scheduled dispatcher and digest.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use motcua_domain::EventEnvelope;
use motcua_http::SystemClock;
use motcua_http::settings::HttpSettings;
use motcua_ports::notifications::{LoggedDeadLetters, Sender};
use serde::Deserialize;

use crate::dispatch::dispatch_due;
use crate::plan::{Intake, intake};
use crate::{NotifyConfig, NotifyState, Senders, digest};

/// Sends at a time within one Lambda invocation.
pub const CONCURRENCY: usize = 8;

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.trim().is_empty())
}

/// What the deployed function runs: the event consumer and the dispatcher send; the HTTP
/// function only reads records and takes receipts (no senders, no accounts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Sending,
    Http,
}

/// The state of the deployed function: dossiers and deliveries on `MOTCUA_TABLE`; revoked
/// token subjects on `MOTCUA_IDENTITY_TABLE`, and (sending) accounts there, sealed under
/// `MOTCUA_KMS_KEY_ID`; the senders the environment names; secrets from Secrets Manager,
/// each part reading only its own.
pub async fn state_from_env(
    part: Part,
) -> Result<NotifyState, Box<dyn std::error::Error + Send + Sync>> {
    let conf = motcua_aws::sdk_config().await;
    let secrets_client = motcua_aws::aws_sdk_secretsmanager::Client::new(&conf);
    let names: &[&str] = match part {
        Part::Sending => &["MOTCUA_SMS_GATEWAY_KEY", "MOTCUA_ZALO_ACCESS_TOKEN"],
        Part::Http => &["MOTCUA_SMS_GATEWAY_RECEIPT_SECRET", "MOTCUA_JWT_SECRETS"],
    };
    let secrets = motcua_aws::secrets::resolve(&secrets_client, names, env).await?;
    let get = motcua_aws::secrets::lookup(secrets, env);
    // An empty secret is no secret.
    let get = move |k: &str| get(k).filter(|v| !v.trim().is_empty());
    let config = NotifyConfig::from_lookup(&get)?;
    let http = HttpSettings::from_lookup(&get)?;
    let table = env("MOTCUA_TABLE").ok_or("MOTCUA_TABLE is required")?;
    let store = motcua_aws::DynamoStore::from_env(table).await;
    let identity = match env("MOTCUA_IDENTITY_TABLE") {
        Some(t) => Some(motcua_aws::DynamoStore::from_env(t).await.identity_ports()),
        None => None,
    };
    let accounts = match (part, &identity, env("MOTCUA_KMS_KEY_ID")) {
        (Part::Sending, Some(ports), Some(key)) => {
            let vault = Arc::new(motcua_aws::kms::KmsKeyVault::new(
                motcua_aws::aws_sdk_kms::Client::new(&conf),
                key,
            ));
            Some(motcua_identity::sealed::sealed_ports(ports.clone(), vault).accounts)
        }
        (Part::Sending, _, _) => {
            tracing::warn!(
                "MOTCUA_IDENTITY_TABLE or MOTCUA_KMS_KEY_ID unset: messages go to the dossier's phone only"
            );
            None
        }
        (Part::Http, _, _) => None,
    };
    let mut senders = Senders::default();
    if part == Part::Sending {
        match env("MOTCUA_SMS_PROVIDER").as_deref() {
            Some("sns") => {
                senders = senders.with(Arc::new(motcua_aws::sms::SnsSms::new(
                    motcua_aws::aws_sdk_sns::Client::new(&conf),
                    env("MOTCUA_SMS_SENDER_ID"),
                )))
            }
            Some("gateway") => {
                senders = senders.with(Arc::new(motcua_senders::gateway::SmsGateway::new(
                    &env("MOTCUA_SMS_GATEWAY_URL").ok_or("MOTCUA_SMS_GATEWAY_URL is required")?,
                    &get("MOTCUA_SMS_GATEWAY_KEY").ok_or("MOTCUA_SMS_GATEWAY_KEY is required")?,
                    &env("MOTCUA_SMS_SENDER_ID").unwrap_or_else(|| "DVC".into()),
                    config.sms.unicode,
                )))
            }
            Some("none") => {}
            _ => return Err("MOTCUA_SMS_PROVIDER must be sns, gateway or none".into()),
        }
        if let Some(from) = env("MOTCUA_EMAIL_FROM") {
            senders = senders.with(Arc::new(motcua_aws::ses::SesEmail::new(
                motcua_aws::aws_sdk_ses::Client::new(&conf),
                from,
                env("MOTCUA_SES_CONFIGURATION_SET"),
            )));
        }
        if let Some(token) = get("MOTCUA_ZALO_ACCESS_TOKEN") {
            let url =
                env("MOTCUA_ZALO_URL").unwrap_or_else(|| motcua_senders::zalo::ZNS_URL.into());
            senders = senders.with(Arc::new(motcua_senders::zalo::ZaloZns::new(&url, &token)));
        }
    }
    let dead_letters: Arc<dyn motcua_ports::notifications::DeadLetters> =
        match env("MOTCUA_NOTIFY_DLQ_URL") {
            Some(url) => Arc::new(motcua_aws::dead_letters::SqsDeadLetters::new(
                motcua_aws::aws_sdk_sqs::Client::new(&conf),
                url,
            )),
            None => Arc::new(LoggedDeadLetters),
        };
    let submission = store.submission_ports();
    // Erased accounts' subjects are the identity function's items, in its table.
    let revoked = match &identity {
        Some(ports) => ports.revoked.clone(),
        None => submission.revoked.clone(),
    };
    let receipt_secret = get("MOTCUA_SMS_GATEWAY_RECEIPT_SECRET")
        .filter(|s| s.len() >= 16)
        .map(|s| Arc::from(s.into_bytes()));
    Ok(NotifyState {
        dossiers: submission.dossiers.clone(),
        catalogue: submission.catalogue.clone(),
        accounts,
        ports: store.notification_ports(),
        senders,
        dead_letters,
        auth: http.authenticator(revoked),
        clock: Arc::new(SystemClock::default()),
        config: Arc::new(config),
        receipt_secret,
    })
}

/// An EventBridge event as an SQS message body carries it.
#[derive(Deserialize)]
struct BusEvent {
    detail: EventEnvelope,
}

/// Plans the messages of a batch of SQS messages (EventBridge events), then sends what is
/// due at once. Returns the ids of messages to retry (a store that did not answer); a body
/// that is no event of ours is dropped, logged.
pub async fn handle_events(s: &NotifyState, messages: &[(String, String)]) -> Vec<String> {
    let mut failed = Vec::new();
    for (id, body) in messages {
        let event = match serde_json::from_str::<BusEvent>(body) {
            Ok(e) => e.detail,
            Err(_) => {
                tracing::error!(message = %id, "not a motcua event: dropped");
                continue;
            }
        };
        match intake(s, &event).await {
            Ok(Intake::Planned { new, existing }) => {
                tracing::info!(event = %event.id, kind = %event.kind, new, existing, "planned")
            }
            Ok(Intake::Ignored(why)) => tracing::debug!(event = %event.id, why, "nothing to send"),
            Err(e) => {
                tracing::warn!(message = %id, error = %e, "planning failed; retried");
                failed.push(id.clone());
            }
        }
    }
    // What is due now goes now; the scheduled dispatcher takes what is left.
    if let Err(e) = dispatch_due(s, s.clock.now(), CONCURRENCY).await {
        tracing::warn!(error = %e, "dispatching after intake failed; the schedule retries");
    }
    failed
}

/// What a scheduled rule asks for (the rule's constant input).
#[derive(Debug, Default, Deserialize)]
pub struct ScheduleInput {
    /// `dispatch` (every minute) or `digest` (each morning).
    #[serde(default)]
    pub task: Option<String>,
}

/// The scheduled work: the digest when asked, then dispatch rounds until nothing is due
/// or `budget` is spent (a Lambda invocation has minutes, not forever).
pub async fn handle_schedule(
    s: &NotifyState,
    input: &ScheduleInput,
    budget: Duration,
) -> Result<crate::dispatch::Round, String> {
    let started = std::time::Instant::now();
    if input.task.as_deref() == Some("digest") {
        let n = digest::plan_digests(s, s.clock.now())
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(digests = n, "digests planned");
    }
    let mut total = crate::dispatch::Round::default();
    loop {
        let now: Timestamp = s.clock.now();
        let r = dispatch_due(s, now, CONCURRENCY)
            .await
            .map_err(|e| e.to_string())?;
        total.due += r.due;
        total.sent += r.sent;
        total.retrying += r.retrying;
        total.failed += r.failed;
        total.expired += r.expired;
        total.deferred += r.deferred;
        total.skipped += r.skipped;
        let progressed = r.sent + r.failed + r.expired + r.retrying > 0;
        if started.elapsed() >= budget || (!progressed && r.throttled.is_none()) {
            break;
        }
        if let Some(wait) = r.throttled {
            tokio::time::sleep(Duration::from_millis(
                wait.as_millis().clamp(10, 1000) as u64
            ))
            .await;
        }
    }
    Ok(total)
}

/// A sender never used on Lambda but kept in the type: the list of channels configured.
pub fn describe(s: &NotifyState) -> String {
    s.senders
        .channels()
        .iter()
        .filter_map(|c| {
            s.senders
                .get(*c)
                .map(|x: &Arc<dyn Sender>| format!("{}={}", c.as_str(), x.provider()))
        })
        .collect::<Vec<_>>()
        .join(", ")
}
