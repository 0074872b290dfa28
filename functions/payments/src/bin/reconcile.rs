//! The payments reconciliation on AWS Lambda, run by scheduled EventBridge rules: every
//! five minutes (`{"task": "reconcile"}`) it asks the providers about pending payments;
//! each night (`{"task": "report"}`) it compares the day before with their records.

use lambda_runtime::{LambdaEvent, service_fn};
use motcua_payments::lambda::{ScheduleInput, handle_schedule};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    motcua_aws::init_lambda_tracing();
    let state = motcua_payments::lambda::state_from_env().await?;
    let state = &state;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let input: ScheduleInput = serde_json::from_value(event.payload).unwrap_or_default();
            Ok::<_, lambda_runtime::Error>(handle_schedule(state, &input).await?)
        },
    ))
    .await
}
