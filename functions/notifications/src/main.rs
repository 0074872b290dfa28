//! The notifications function's HTTP part on AWS Lambda: a dossier's delivery records and
//! the SMS gateway's receipts.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    motcua_aws::init_lambda_tracing();
    let state =
        motcua_notifications::lambda::state_from_env(motcua_notifications::lambda::Part::Http)
            .await?;
    let http = motcua_http::settings::HttpSettings::from_env()?;
    let app = http.with_layers(motcua_notifications::routes(state));
    lambda_http::run(app).await
}
