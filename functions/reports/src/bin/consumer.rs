//! The reports function's event consumer on AWS Lambda: dossier and payment events from
//! EventBridge through SQS (partial batch failures: an event whose counters could not be
//! written is retried, then lands in the dead-letter queue). Invoked directly with
//! `{"task": "rebuild"}` it recomputes every counter from the dossiers.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, service_fn};
use motcua_reports::lambda::TaskInput;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    motcua_aws::init_lambda_tracing();
    let state = motcua_reports::lambda::state_from_env().await?;
    let state = &state;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            if event.payload.get("Records").is_none() {
                let task: TaskInput = serde_json::from_value(event.payload).unwrap_or_default();
                if task.task.as_deref() != Some("rebuild") {
                    return Err("the task is rebuild, or an SQS batch".into());
                }
                let done = motcua_reports::rebuild::rebuild(state).await?;
                tracing::info!(?done, "counters rebuilt");
                return Ok::<_, lambda_runtime::Error>(serde_json::to_value(done)?);
            }
            let sqs: SqsEvent = serde_json::from_value(event.payload)?;
            let batch: Vec<(String, String)> = sqs
                .records
                .into_iter()
                .filter_map(|r| Some((r.message_id?, r.body?)))
                .collect();
            let failed = motcua_reports::lambda::handle_events(state, &batch).await;
            let mut resp = SqsBatchResponse::default();
            resp.batch_item_failures = failed
                .into_iter()
                .map(|id| {
                    let mut f = BatchItemFailure::default();
                    f.item_identifier = id;
                    f
                })
                .collect();
            Ok(serde_json::to_value(resp)?)
        },
    ))
    .await
}
