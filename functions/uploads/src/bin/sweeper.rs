//! The uploads sweeper on AWS Lambda, on a schedule: slots that never received a file
//! expire; quarantine objects nobody will verify are removed (the bucket's lifecycle rule
//! removes any that remain after two days).

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use motcua_ports::uploads::UploadPorts;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    motcua_aws::init_lambda_tracing();
    let table = std::env::var("MOTCUA_TABLE").map_err(|_| "MOTCUA_TABLE is required")?;
    let bucket = std::env::var("MOTCUA_BUCKET").map_err(|_| "MOTCUA_BUCKET is required")?;
    let conf = motcua_aws::sdk_config().await;
    let store = motcua_aws::DynamoStore::from_env(table).await;
    let ports = UploadPorts {
        uploads: Arc::new(store.clone()),
        objects: Arc::new(motcua_aws::s3::S3Objects::new(&conf, bucket)?),
        // The sweeper never scans.
        scanner: Arc::new(motcua_ports::uploads::NoScanner),
        documents: Arc::new(store),
    };
    let ports = &ports;
    lambda_runtime::run(service_fn(
        move |_: LambdaEvent<serde_json::Value>| async move {
            let swept = motcua_uploads::sweep::sweep(ports, jiff::Timestamp::now(), 1000).await?;
            tracing::info!(
                expired = swept.expired,
                removed = swept.removed,
                "uploads swept"
            );
            Ok::<_, lambda_runtime::Error>(serde_json::json!({
                "expired": swept.expired,
                "removed": swept.removed,
            }))
        },
    ))
    .await
}
