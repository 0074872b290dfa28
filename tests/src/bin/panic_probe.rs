//! A bare lambda_runtime function for the runtime-API tests: echoes its event, and panics
//! when the event says `{"panic": true}`, so the tests can see what a panic in a handler
//! does to the process and the next invocation under the workspace's profiles.

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(|e: LambdaEvent<Value>| async move {
        if e.payload["panic"] == true {
            panic!("the handler panicked on purpose");
        }
        Ok::<_, lambda_runtime::Error>(e.payload)
    }))
    .await
}
