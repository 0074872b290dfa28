//! The reports function's HTTP part on AWS Lambda: the KPI report as JSON or CSV.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    motcua_aws::init_lambda_tracing();
    let state = motcua_reports::lambda::state_from_env().await?;
    let http = motcua_http::settings::HttpSettings::from_env()?;
    let app = http.with_layers(motcua_reports::routes(state));
    lambda_http::run(app).await
}
