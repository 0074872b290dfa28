//! Publishing dossier events to an EventBridge bus.

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::error::ProvideErrorMetadata;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use motcua_domain::EventEnvelope;
use motcua_ports::{EventPublisher, StoreError, StoreResult};
use uuid::Uuid;

/// `source` of every event motcua puts on the bus.
pub const EVENT_SOURCE: &str = "motcua";
/// PutEvents takes at most 10 entries.
const BATCH: usize = 10;

/// Publishes envelopes to one EventBridge bus: `source` = `motcua`, `detail-type` = the
/// event type (e.g. `dossier.receive`), `detail` = the whole envelope (consumers dedupe on
/// its `id`).
#[derive(Clone)]
pub struct EventBridgePublisher {
    client: Client,
    bus: String,
}

impl EventBridgePublisher {
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        EventBridgePublisher {
            client,
            bus: bus.into(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn bus(&self) -> &str {
        &self.bus
    }

    /// Creates the bus unless it exists (local runs; on AWS the template declares it).
    pub async fn ensure_bus(&self) -> StoreResult<()> {
        match self.client.create_event_bus().name(&self.bus).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ResourceAlreadyExistsException") => Ok(()),
            Err(e) => Err(StoreError::Unavailable(format!(
                "eventbridge: {}",
                e.code().unwrap_or("error")
            ))),
        }
    }
}

#[async_trait]
impl EventPublisher for EventBridgePublisher {
    async fn publish(&self, events: &[EventEnvelope]) -> StoreResult<Vec<Uuid>> {
        let mut failed = Vec::new();
        for chunk in events.chunks(BATCH) {
            let mut req = self.client.put_events();
            for e in chunk {
                let detail =
                    serde_json::to_string(e).map_err(|err| StoreError::Backend(err.to_string()))?;
                req = req.entries(
                    PutEventsRequestEntry::builder()
                        .event_bus_name(&self.bus)
                        .source(EVENT_SOURCE)
                        .detail_type(&e.kind)
                        .detail(detail)
                        .resources(format!("urn:motcua:dossier:{}", e.subject))
                        .build(),
                );
            }
            let out = req.send().await.map_err(|err| {
                StoreError::Unavailable(format!("eventbridge: {}", err.code().unwrap_or("error")))
            })?;
            if out.failed_entry_count() > 0 {
                // Entries answer in request order; a failed one carries an error code.
                for (entry, e) in out.entries().iter().zip(chunk) {
                    if entry.error_code().is_some() {
                        failed.push(e.id);
                    }
                }
                if out.entries().len() < chunk.len() {
                    failed.extend(chunk[out.entries().len()..].iter().map(|e| e.id));
                }
            }
        }
        Ok(failed)
    }
}
