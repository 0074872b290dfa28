//! The relay function on AWS Lambda, triggered by the table's DynamoDB stream.

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use lambda_runtime::{LambdaEvent, service_fn};
use motcua_aws::events::EventBridgePublisher;
use motcua_relay::{from_lambda, relay};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    motcua_aws::init_lambda_tracing();
    let bus = std::env::var("MOTCUA_EVENT_BUS").map_err(|_| "MOTCUA_EVENT_BUS is required")?;
    let table = std::env::var("MOTCUA_TABLE").map_err(|_| "MOTCUA_TABLE is required")?;
    let conf = motcua_aws::sdk_config().await;
    let publisher = EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(&conf), bus);
    let store =
        motcua_aws::DynamoStore::new(motcua_aws::aws_sdk_dynamodb::Client::new(&conf), table);
    let publisher = &publisher;
    let store = &store;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| async move {
        let records: Vec<_> = event.payload.records.iter().map(from_lambda).collect();
        let outcome = relay(&records, publisher, Some(store)).await;
        tracing::info!(
            published = outcome.published,
            skipped = outcome.skipped,
            failed = outcome.failed.len(),
            "relayed"
        );
        let mut resp = DynamoDbEventResponse::default();
        resp.batch_item_failures = outcome
            .failed
            .into_iter()
            .map(|seq| {
                let mut f = DynamoDbBatchItemFailure::default();
                f.item_identifier = Some(seq);
                f
            })
            .collect();
        Ok::<_, lambda_runtime::Error>(resp)
    }))
    .await
}
