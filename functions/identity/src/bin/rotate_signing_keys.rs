//! Secrets Manager's rotation function for the account-token signing keys: each call is
//! one step (createSecret, setSecret, testSecret, finishSecret) of a rotation.

use lambda_runtime::{LambdaEvent, service_fn};
use motcua_identity::keys::{RotationEvent, rotate};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    motcua_aws::init_lambda_tracing();
    let conf = motcua_aws::sdk_config().await;
    let client = aws_sdk_secretsmanager::Client::new(&conf);
    let client = &client;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<RotationEvent>| async move {
            let now = jiff::Timestamp::now().as_second();
            tracing::info!(step = %event.payload.step, "rotation step");
            rotate(client, &event.payload, now).await?;
            Ok::<_, lambda_runtime::Error>(())
        },
    ))
    .await
}
