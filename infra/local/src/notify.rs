//! The notifications function in the runner: fed by the in-process bus (embedded) or by an
//! SQS queue the bus's rule fills (`--backend aws`), a dispatcher on a timer, the morning
//! digest on a timer; messages kept by [`DevMessages`] unless real senders are named.
//!
//! Environment (besides the function's own, `docs/functions/notifications.md`):
//! `MOTCUA_SMS_PROVIDER` = `dev` (default) | `sns` | `gateway` (with
//! `MOTCUA_SMS_GATEWAY_URL`, `MOTCUA_SMS_GATEWAY_KEY`); `MOTCUA_EMAIL_FROM` sends email by
//! SES (`--backend aws`); `MOTCUA_ZALO_URL` + `MOTCUA_ZALO_ACCESS_TOKEN` sends Zalo.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use motcua_domain::EventEnvelope;
use motcua_domain::notify::Channel;
use motcua_notifications::plan::{Intake, intake};
use motcua_notifications::{NotifyConfig, NotifyState, Senders};
use motcua_ports::notifications::{LoggedDeadLetters, NotificationPorts, Sender};
use motcua_ports::{EventPublisher, StoreResult};
use motcua_submission::AppState;

use crate::DevMessages;

/// The senders the environment names; the runner's own kept messages otherwise.
pub async fn senders(
    messages: &DevMessages,
    aws: Option<&aws_config::SdkConfig>,
) -> anyhow::Result<Senders> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let sms: Arc<dyn Sender> = match env("MOTCUA_SMS_PROVIDER").as_deref() {
        None | Some("dev") => Arc::new(messages.sender(Channel::Sms)),
        Some("sns") => Arc::new(motcua_aws::sms::SnsSms::new(
            motcua_aws::aws_sdk_sns::Client::new(
                aws.context("MOTCUA_SMS_PROVIDER=sns needs --backend aws")?,
            ),
            env("MOTCUA_SMS_SENDER_ID"),
        )),
        Some("gateway") => Arc::new(motcua_senders::gateway::SmsGateway::new(
            &env("MOTCUA_SMS_GATEWAY_URL").context("MOTCUA_SMS_GATEWAY_URL is required")?,
            &env("MOTCUA_SMS_GATEWAY_KEY").context("MOTCUA_SMS_GATEWAY_KEY is required")?,
            &env("MOTCUA_SMS_SENDER_ID").unwrap_or_else(|| "DVC".into()),
            env("MOTCUA_SMS_UNICODE").as_deref() == Some("true"),
        )),
        Some(other) => anyhow::bail!("MOTCUA_SMS_PROVIDER: '{other}' is not dev, sns or gateway"),
    };
    let email: Arc<dyn Sender> = match (env("MOTCUA_EMAIL_FROM"), aws) {
        (Some(from), Some(conf)) => {
            let ses = motcua_aws::ses::SesEmail::new(
                motcua_aws::aws_sdk_ses::Client::new(conf),
                from,
                env("MOTCUA_SES_CONFIGURATION_SET"),
            );
            // A development identity: verified by address (LocalStack records the mail).
            ses.verify_sender().await.map_err(anyhow::Error::msg)?;
            Arc::new(ses)
        }
        _ => Arc::new(messages.sender(Channel::Email)),
    };
    let zalo: Arc<dyn Sender> = match (env("MOTCUA_ZALO_URL"), env("MOTCUA_ZALO_ACCESS_TOKEN")) {
        (Some(url), Some(token)) => Arc::new(motcua_senders::zalo::ZaloZns::new(&url, &token)),
        _ => Arc::new(messages.sender(Channel::Zalo)),
    };
    Ok(Senders::default().with(sms).with(email).with(zalo))
}

/// The function's state in the runner at `addr` (links point at its portal page).
pub fn state(
    submission: &AppState,
    accounts: Arc<dyn motcua_ports::identity::AccountStore>,
    ports: NotificationPorts,
    senders: Senders,
    addr: std::net::SocketAddr,
) -> anyhow::Result<NotifyState> {
    let portal = format!("http://{addr}/dev/portal");
    let config = NotifyConfig::from_lookup(|k| match k {
        "MOTCUA_PORTAL_URL" => std::env::var(k).ok().or_else(|| Some(portal.clone())),
        // The runner's demo Zalo templates, so an opted-in account sees Zalo too.
        "MOTCUA_ZALO_TEMPLATES" => std::env::var(k).ok().or_else(|| {
            Some(r#"{"received":"100001","supplement_requested":"100002","extended":"100003","completed":"100004","refused":"100005"}"#.into())
        }),
        other => std::env::var(other).ok(),
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    // A secret too short to be one is none: the route then refuses every receipt.
    let receipt_secret = std::env::var("MOTCUA_SMS_GATEWAY_RECEIPT_SECRET")
        .ok()
        .filter(|s| s.trim().len() >= 16)
        .map(|s| Arc::from(s.into_bytes()));
    Ok(NotifyState {
        dossiers: submission.ports.dossiers.clone(),
        catalogue: submission.ports.catalogue.clone(),
        accounts: Some(accounts),
        ports,
        senders,
        dead_letters: Arc::new(LoggedDeadLetters),
        auth: submission.auth.clone(),
        clock: submission.clock.clone(),
        config: Arc::new(config),
        receipt_secret,
    })
}

/// Feeds the in-process bus's events to the function's planning; an event it could not
/// plan stays in the outbox and comes again.
pub struct Consumer(pub NotifyState);

#[async_trait]
impl EventPublisher for Consumer {
    async fn publish(&self, events: &[EventEnvelope]) -> StoreResult<Vec<uuid::Uuid>> {
        let mut failed = Vec::new();
        for e in events {
            match intake(&self.0, e).await {
                Ok(Intake::Planned { .. } | Intake::Ignored(_)) => {}
                Err(err) => {
                    tracing::warn!(event = %e.id, error = %err, "planning messages failed; retried");
                    failed.push(e.id);
                }
            }
        }
        Ok(failed)
    }
}

/// Runs the dispatcher: a round as soon as the last one filled its batch, else every
/// `idle`; a throttled channel waits for its next second.
pub fn dispatch_continuously(state: &NotifyState, idle: Duration, concurrency: usize) {
    let s = state.clone();
    tokio::spawn(async move {
        loop {
            let wait =
                match motcua_notifications::dispatch::dispatch_due(&s, s.clock.now(), concurrency)
                    .await
                {
                    Ok(r) if r.due >= s.config.batch as usize && r.throttled.is_none() => {
                        Duration::ZERO
                    }
                    Ok(r) => match r.throttled {
                        Some(w) => Duration::from_millis(w.as_millis().clamp(5, 1000) as u64),
                        None => idle,
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "dispatching notifications failed");
                        Duration::from_secs(1)
                    }
                };
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
    });
}

/// Plans the officers' digests every ten minutes from 07:00 (Vietnam time) on working
/// days; a digest is planned once a day whatever the number of runs.
pub fn digest_every_morning(state: &NotifyState) {
    let s = state.clone();
    tokio::spawn(async move {
        loop {
            let now = s.clock.now();
            let local = now.to_zoned(motcua_domain::calendar::vietnam_tz());
            let working = motcua_domain::WorkingCalendar::vietnam().is_working_day(local.date());
            if working
                && local.hour() >= 7
                && !s.config.digest_mailboxes.is_empty()
                && let Err(e) = motcua_notifications::digest::plan_digests(&s, now).await
            {
                tracing::warn!(error = %e, "planning the digests failed");
            }
            tokio::time::sleep(Duration::from_secs(600)).await;
        }
    });
}

/// `--backend aws`: the queue a bus rule fills with every motcua event, as the template's
/// `NotificationsQueue`, polled here as the Lambda event source would; or the deployed one
/// named by `MOTCUA_NOTIFY_QUEUE`.
pub async fn aws_queue(conf: &aws_config::SdkConfig, bus: &str) -> anyhow::Result<String> {
    bus_queue(conf, bus, "notifications", "MOTCUA_NOTIFY_QUEUE").await
}

/// `--backend aws`: a queue `<bus>-<function>` that a bus rule fills with every motcua
/// event, as the template's queue of that function, polled here as the Lambda event
/// source would; or the deployed one `env_var` names.
pub async fn bus_queue(
    conf: &aws_config::SdkConfig,
    bus: &str,
    function: &str,
    env_var: &str,
) -> anyhow::Result<String> {
    let sqs = aws_sdk_sqs::Client::new(conf);
    // A deployed stack's queue, which its own rule fills.
    if let Ok(name) = std::env::var(env_var) {
        return sqs
            .get_queue_url()
            .queue_name(&name)
            .send()
            .await
            .with_context(|| format!("the queue {name} ({env_var})"))?
            .queue_url
            .context("no queue URL");
    }
    let name = format!("{bus}-{function}");
    let url = sqs
        .create_queue()
        .queue_name(&name)
        .send()
        .await
        .with_context(|| format!("creating the {function} queue"))?
        .queue_url
        .context("no queue URL")?;
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .context("reading the queue's ARN")?
        .attributes
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .context("no queue ARN")?;
    let events = motcua_aws::aws_sdk_eventbridge::Client::new(conf);
    let rule = format!("{name}-rule");
    events
        .put_rule()
        .name(&rule)
        .event_bus_name(bus)
        .event_pattern(r#"{"source":["motcua"]}"#)
        .send()
        .await
        .with_context(|| format!("creating the {function} rule"))?;
    events
        .put_targets()
        .rule(&rule)
        .event_bus_name(bus)
        .targets(
            motcua_aws::aws_sdk_eventbridge::types::Target::builder()
                .id(function)
                .arn(arn)
                .build()
                .context("the rule's target")?,
        )
        .send()
        .await
        .context("pointing the rule at the queue")?;
    Ok(url)
}

/// Polls `queue_url` and hands each batch to the function's event handler, deleting what
/// it took.
pub fn poll_queue(conf: &aws_config::SdkConfig, queue_url: String, state: &NotifyState) {
    let s = state.clone();
    poll_with(conf, queue_url, "notifications", move |batch| {
        let s = s.clone();
        Box::pin(async move { motcua_notifications::lambda::handle_events(&s, &batch).await })
    });
}

/// Polls `queue_url` and hands each batch to `handle`, deleting what it took.
pub fn poll_with(
    conf: &aws_config::SdkConfig,
    queue_url: String,
    what: &'static str,
    handle: impl Fn(
        Vec<(String, String)>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<String>> + Send>>
    + Send
    + Sync
    + 'static,
) {
    let sqs = aws_sdk_sqs::Client::new(conf);
    tokio::spawn(async move {
        loop {
            let got = sqs
                .receive_message()
                .queue_url(&queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await;
            match got {
                Ok(out) => {
                    let messages: Vec<(String, String, String)> = out
                        .messages()
                        .iter()
                        .filter_map(|m| {
                            Some((
                                m.message_id()?.to_owned(),
                                m.body()?.to_owned(),
                                m.receipt_handle()?.to_owned(),
                            ))
                        })
                        .collect();
                    if messages.is_empty() {
                        continue;
                    }
                    let batch: Vec<(String, String)> = messages
                        .iter()
                        .map(|(i, b, _)| (i.clone(), b.clone()))
                        .collect();
                    let failed = handle(batch).await;
                    for (id, _, handle) in &messages {
                        if !failed.contains(id) {
                            let _ = sqs
                                .delete_message()
                                .queue_url(&queue_url)
                                .receipt_handle(handle)
                                .send()
                                .await;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, queue = what, "polling the queue failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
}
