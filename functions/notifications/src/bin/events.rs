//! The notifications function's event consumer on AWS Lambda: dossier events from
//! EventBridge through SQS (partial batch failures: an event whose planning could not be
//! stored is retried, then lands in the dead-letter queue).

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    motcua_aws::init_lambda_tracing();
    let state =
        motcua_notifications::lambda::state_from_env(motcua_notifications::lambda::Part::Sending)
            .await?;
    tracing::info!(senders = %motcua_notifications::lambda::describe(&state), "started");
    let state = &state;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let batch: Vec<(String, String)> = event
            .payload
            .records
            .into_iter()
            .filter_map(|r| Some((r.message_id?, r.body?)))
            .collect();
        let failed = motcua_notifications::lambda::handle_events(state, &batch).await;
        let mut resp = SqsBatchResponse::default();
        resp.batch_item_failures = failed
            .into_iter()
            .map(|id| {
                let mut f = BatchItemFailure::default();
                f.item_identifier = id;
                f
            })
            .collect();
        Ok::<_, lambda_runtime::Error>(resp)
    }))
    .await
}
