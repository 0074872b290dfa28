//! The submission function on AWS Lambda, behind an HTTP API.

use std::sync::Arc;

use motcua_domain::WorkingCalendar;
use motcua_submission::{AppState, SubmissionConfig, SystemClock, router};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .without_time()
        .init();
    let config = SubmissionConfig::from_env()?;
    // The DynamoDB backend arrives with the AWS adapters; until then the function runs on
    // the embedded backend in the directory MOTCUA_DATA_DIR (default /tmp/motcua).
    let dir = std::env::var("MOTCUA_DATA_DIR").unwrap_or_else(|_| "/tmp/motcua".into());
    let store = motcua_embedded::EmbeddedStore::open(std::path::Path::new(&dir))?;
    let state = AppState {
        ports: store.submission_ports(),
        auth: Arc::new(config.authenticator()),
        clock: Arc::new(SystemClock::default()),
        calendar: WorkingCalendar::vietnam(),
        config: Arc::new(config),
    };
    lambda_http::run(router(state)).await
}
