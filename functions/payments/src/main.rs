//! The payments function's HTTP part on AWS Lambda: paying, listing, cancelling and
//! refunding, the providers' callbacks and the return page.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    motcua_aws::init_lambda_tracing();
    let state = motcua_payments::lambda::state_from_env().await?;
    let http = motcua_http::settings::HttpSettings::from_env()?;
    let app = http.with_layers(motcua_payments::routes(state));
    lambda_http::run(app).await
}
