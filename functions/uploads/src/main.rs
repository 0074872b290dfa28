//! The uploads function on AWS Lambda, behind the HTTP API: upload slots, status,
//! download links, the personal document store.

use std::sync::Arc;

use motcua_uploads::{UploadsConfig, UploadsState, routes};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    motcua_aws::init_lambda_tracing();
    let env = |k: &str| std::env::var(k).ok();
    let config = UploadsConfig::from_lookup(env)?;
    let http = motcua_uploads::lambda::HttpSettings::from_env()?;
    let table = std::env::var("MOTCUA_TABLE").map_err(|_| "MOTCUA_TABLE is required")?;
    let bucket = std::env::var("MOTCUA_BUCKET").map_err(|_| "MOTCUA_BUCKET is required")?;
    let conf = motcua_aws::sdk_config().await;
    let mut ports = motcua_aws::DynamoStore::from_env(table)
        .await
        .submission_ports();
    if let Ok(table) = std::env::var("MOTCUA_IDENTITY_TABLE") {
        ports.revoked = Arc::new(motcua_aws::DynamoStore::from_env(table).await);
    }
    let objects = motcua_aws::s3::S3Objects::new(&conf, bucket)?;
    let auth = http.authenticator(ports.revoked.clone());
    let state = UploadsState {
        ports,
        objects: Arc::new(objects),
        // Scans happen in the verifier; slots and downloads need none.
        scanner: Arc::new(motcua_ports::uploads::NoScanner),
        auth,
        clock: Arc::new(motcua_http::SystemClock::default()),
        config: Arc::new(config),
    };
    let router = http.with_layers(routes(state));
    lambda_http::run(router).await
}
