//! The upload verifier on AWS Lambda: S3 `ObjectCreated` notifications of the quarantine
//! area, through SQS (partial batch failures: a message whose scan could not run is
//! retried, then lands in the dead-letter queue).

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, service_fn};
use motcua_ports::uploads::{Scanner, UploadPorts};
use motcua_uploads::{ScannerSetting, UploadsConfig};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    motcua_aws::init_lambda_tracing();
    let config = UploadsConfig::from_lookup(|k| std::env::var(k).ok())?;
    let table = std::env::var("MOTCUA_TABLE").map_err(|_| "MOTCUA_TABLE is required")?;
    let bucket = std::env::var("MOTCUA_BUCKET").map_err(|_| "MOTCUA_BUCKET is required")?;
    let conf = motcua_aws::sdk_config().await;
    let store = motcua_aws::DynamoStore::from_env(table).await;
    let scanner: Arc<dyn Scanner> = match &config.scanner {
        ScannerSetting::Clamd(addr) => Arc::new(motcua_uploads::clamd::Clamd::new(
            addr.clone(),
            Duration::from_secs(config.scanner_timeout_secs),
        )),
        ScannerSetting::None => {
            tracing::warn!("MOTCUA_SCANNER=none: files are verified without a malware scan");
            Arc::new(motcua_ports::uploads::NoScanner)
        }
    };
    let ports = UploadPorts {
        uploads: Arc::new(store.clone()),
        objects: Arc::new(motcua_aws::s3::S3Objects::new(&conf, bucket)?),
        scanner,
        documents: Arc::new(store),
    };
    let ports = &ports;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let batch: Vec<(String, String)> = event
            .payload
            .records
            .into_iter()
            .filter_map(|r| Some((r.message_id?, r.body?)))
            .collect();
        let failed =
            motcua_uploads::verify::handle_batch(ports, &batch, jiff::Timestamp::now()).await;
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
