//! Given-up notifications, sent to a dead-letter queue (whose depth has an alarm) with
//! what an operator needs to find the record: ids, topic, channel, reason. No address, no
//! text.

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::ProvideErrorMetadata;
use motcua_ports::notifications::{DeadLetters, Delivery};
use motcua_ports::{StoreError, StoreResult};

pub struct SqsDeadLetters {
    client: Client,
    queue_url: String,
}

impl SqsDeadLetters {
    pub fn new(client: Client, queue_url: String) -> Self {
        SqsDeadLetters { client, queue_url }
    }
}

/// The dead letter of `d`: nothing personal.
pub fn letter(d: &Delivery) -> serde_json::Value {
    serde_json::json!({
        "delivery": d.id,
        "dossier": d.dossier_id,
        "event": d.event_id,
        "topic": d.topic.as_str(),
        "channel": d.channel.as_str(),
        "attempts": d.attempts,
        "reason": d.reason,
    })
}

#[async_trait]
impl DeadLetters for SqsDeadLetters {
    async fn dead_letter(&self, d: &Delivery) -> StoreResult<()> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(letter(d).to_string())
            .send()
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!("sqs: {}", e.code().unwrap_or("error")))
            })?;
        Ok(())
    }
}
