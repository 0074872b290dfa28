//! The outbox sweeper on AWS Lambda, run on a schedule: publishes outbox events older than
//! `MOTCUA_SWEEP_AFTER_SECS` that the stream relay could not (a bus outage longer than the
//! stream's retries). Ends in an error while refused events remain, so the function's
//! error alarm says the backlog is stuck.

use lambda_runtime::{LambdaEvent, service_fn};
use motcua_aws::events::EventBridgePublisher;
use motcua_relay::sweep_outbox;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    motcua_aws::init_lambda_tracing();
    let bus = std::env::var("MOTCUA_EVENT_BUS").map_err(|_| "MOTCUA_EVENT_BUS is required")?;
    let table = std::env::var("MOTCUA_TABLE").map_err(|_| "MOTCUA_TABLE is required")?;
    let after: i64 = match std::env::var("MOTCUA_SWEEP_AFTER_SECS") {
        Ok(v) => v
            .parse()
            .ok()
            .filter(|s| (60..=86_400).contains(s))
            .ok_or("MOTCUA_SWEEP_AFTER_SECS must be a number of seconds from 60 to 86400")?,
        Err(_) => 300,
    };
    let conf = motcua_aws::sdk_config().await;
    let publisher = EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(&conf), bus);
    let store =
        motcua_aws::DynamoStore::new(motcua_aws::aws_sdk_dynamodb::Client::new(&conf), table);
    let (publisher, store) = (&publisher, &store);
    lambda_runtime::run(service_fn(
        move |_: LambdaEvent<serde_json::Value>| async move {
            let now = jiff::Timestamp::now();
            let cutoff = jiff::Timestamp::from_second(now.as_second() - after)?;
            let out = sweep_outbox(store, publisher, cutoff, now).await?;
            tracing::info!(
                published = out.published,
                failed = out.failed,
                oldest_left_secs = out.oldest_left_secs,
                "outbox swept"
            );
            if out.failed > 0 {
                return Err(format!(
                    "{} outbox events could not be published; the oldest is {} s old",
                    out.failed,
                    out.oldest_left_secs.unwrap_or_default()
                )
                .into());
            }
            Ok::<_, lambda_runtime::Error>(serde_json::json!({
                "published": out.published,
                "failed": out.failed
            }))
        },
    ))
    .await
}
