//! The floor of a Rust function's cold start: a bare `lambda_runtime` handler that answers
//! every event with a fixed HTTP API response. `motcua-cold-start` measures it beside the
//! functions.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| async {
        Ok::<_, Error>(json!({"statusCode": 200, "body": "hello"}))
    }))
    .await
}
