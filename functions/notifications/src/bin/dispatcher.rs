//! The notifications dispatcher on AWS Lambda, run by scheduled EventBridge rules: every
//! minute (`{"task": "dispatch"}`) it sends what is due (deferred, retried, throttled
//! messages); each working morning (`{"task": "digest"}`) it also plans the officers'
//! digests.

use std::time::Duration;

use lambda_runtime::{LambdaEvent, service_fn};
use motcua_notifications::lambda::{ScheduleInput, handle_schedule};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    motcua_aws::init_lambda_tracing();
    let state =
        motcua_notifications::lambda::state_from_env(motcua_notifications::lambda::Part::Sending)
            .await?;
    let state = &state;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let input: ScheduleInput = serde_json::from_value(event.payload).unwrap_or_default();
            // Leave the invocation (timeout 60 s) room to record the last round.
            let budget = Duration::from_millis(
                (event
                    .context
                    .deadline
                    .saturating_sub(jiff::Timestamp::now().as_millisecond().max(0) as u64))
                .saturating_sub(10_000)
                .min(50_000),
            );
            let round = handle_schedule(state, &input, budget).await?;
            tracing::info!(?round, "dispatched");
            Ok::<_, lambda_runtime::Error>(serde_json::json!({
                "due": round.due, "sent": round.sent, "retrying": round.retrying,
                "failed": round.failed, "expired": round.expired, "deferred": round.deferred,
            }))
        },
    ))
    .await
}
