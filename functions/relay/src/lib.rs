//! The outbox relay: dossier events recorded in the table (outbox items) are published to
//! the event bus. On AWS this runs as a Lambda on the table's DynamoDB stream; locally the
//! runner polls the same stream through the Streams API ([`poll_stream`]) or, on the
//! embedded backend, drains the outbox table ([`drain_outbox`]).
//!
//! At least once: a record is reported failed (and redelivered) unless its event was
//! accepted by the bus, so a relay that crashes mid-batch republishes. Consumers dedupe on
//! the event id.

use std::collections::HashMap;
#[cfg(feature = "stream-poller")]
use std::time::Duration;

#[cfg(feature = "stream-poller")]
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use motcua_domain::EventEnvelope;
use motcua_ports::{EventPublisher, Outbox, StoreResult};

pub mod sweep;
pub use sweep::{SweepOutcome, sweep_outbox};

/// What the relay needs of one stream record, whichever way it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRecord {
    /// Identifies the record in batch item failures.
    pub sequence_number: String,
    /// `INSERT`, `MODIFY` or `REMOVE`.
    pub event_name: String,
    /// The item's partition key.
    pub pk: Option<String>,
    /// The new image's `body` attribute.
    pub body: Option<String>,
}

impl StreamRecord {
    /// Is this the insertion of an outbox event?
    pub fn is_outbox_insert(&self) -> bool {
        self.event_name == "INSERT" && self.pk.as_deref().is_some_and(|pk| pk.starts_with("EV#"))
    }
}

/// Converts a record of the Lambda DynamoDB stream event.
pub fn from_lambda(r: &aws_lambda_events::event::dynamodb::EventRecord) -> StreamRecord {
    let s = |item: &serde_dynamo::Item, name: &str| match item.get(name) {
        Some(serde_dynamo::AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    };
    StreamRecord {
        sequence_number: r.change.sequence_number.clone().unwrap_or_default(),
        event_name: r.event_name.clone(),
        pk: s(&r.change.keys, "pk"),
        body: s(&r.change.new_image, "body"),
    }
}

/// What a batch came to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RelayOutcome {
    pub published: usize,
    pub skipped: usize,
    /// Sequence numbers to report as batch item failures (to be redelivered).
    pub failed: Vec<String>,
}

/// Publishes the outbox events among `records`; other records are skipped. Events the
/// bus did not accept are reported failed; a record whose body does not parse is reported
/// failed too (it then reaches the on-failure destination instead of vanishing).
pub async fn relay(
    records: &[StreamRecord],
    publisher: &dyn EventPublisher,
    outbox: Option<&dyn Outbox>,
) -> RelayOutcome {
    let mut out = RelayOutcome::default();
    let mut events = Vec::new();
    let mut seq_of = HashMap::new();
    for r in records {
        if !r.is_outbox_insert() {
            out.skipped += 1;
            continue;
        }
        match r.body.as_deref().map(serde_json::from_str::<EventEnvelope>) {
            Some(Ok(e)) => {
                seq_of.insert(e.id, r.sequence_number.clone());
                events.push(e);
            }
            _ => {
                tracing::error!(sequence = %r.sequence_number, "outbox record without a readable event");
                out.failed.push(r.sequence_number.clone());
            }
        }
    }
    if events.is_empty() {
        return out;
    }
    let failed_ids = match publisher.publish(&events).await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "publishing failed; the batch will be retried");
            events.iter().map(|e| e.id).collect()
        }
    };
    let mut done = Vec::new();
    for e in &events {
        if failed_ids.contains(&e.id) {
            if let Some(seq) = seq_of.get(&e.id) {
                out.failed.push(seq.clone());
            }
        } else {
            out.published += 1;
            done.push(e.id);
        }
    }
    if let Some(outbox) = outbox
        && !done.is_empty()
        && let Err(e) = outbox.mark_published(&done).await
    {
        // Harmless: the events are on the bus; the outbox index keeps them a while longer.
        tracing::warn!(error = %e, "could not mark events published");
    }
    out
}

/// Publishes every pending outbox event (embedded backend, and the backlog at start).
pub async fn drain_outbox(
    outbox: &dyn Outbox,
    publisher: &dyn EventPublisher,
) -> StoreResult<usize> {
    let mut total = 0;
    loop {
        let pending = outbox.pending(100).await?;
        if pending.is_empty() {
            return Ok(total);
        }
        let failed = publisher.publish(&pending).await?;
        let ok: Vec<_> = pending
            .iter()
            .map(|e| e.id)
            .filter(|id| !failed.contains(id))
            .collect();
        outbox.mark_published(&ok).await?;
        total += ok.len();
        if !failed.is_empty() {
            return Ok(total);
        }
    }
}

#[cfg(feature = "stream-poller")]
/// Follows a table's DynamoDB stream through the Streams API, as the Lambda event source
/// mapping does on AWS: iterators are opened at the stream's tip, then the outbox backlog
/// is drained, so nothing written before or after start is missed (some events may be
/// published twice; consumers dedupe). Runs until the task is dropped.
pub async fn poll_stream(
    streams: aws_sdk_dynamodbstreams::Client,
    stream_arn: String,
    publisher: std::sync::Arc<dyn EventPublisher>,
    outbox: std::sync::Arc<dyn Outbox>,
    idle: Duration,
) -> anyhow::Result<()> {
    let mut iterators: HashMap<String, Option<String>> = HashMap::new();
    let mut known_shards_refresh = tokio::time::Instant::now();
    let mut refresh = true;
    loop {
        if refresh {
            let desc = streams
                .describe_stream()
                .stream_arn(&stream_arn)
                .send()
                .await?;
            for shard in desc
                .stream_description()
                .map(|d| d.shards())
                .unwrap_or_default()
            {
                let Some(id) = shard.shard_id() else { continue };
                if iterators.contains_key(id) {
                    continue;
                }
                let it = streams
                    .get_shard_iterator()
                    .stream_arn(&stream_arn)
                    .shard_id(id)
                    .shard_iterator_type(ShardIteratorType::Latest)
                    .send()
                    .await?;
                iterators.insert(id.to_owned(), it.shard_iterator().map(String::from));
            }
            if let Err(e) = drain_outbox(outbox.as_ref(), publisher.as_ref()).await {
                tracing::warn!(error = %e, "draining the outbox failed");
            }
            refresh = false;
            known_shards_refresh = tokio::time::Instant::now();
        }
        let mut got_any = false;
        for (shard, iterator) in iterators.iter_mut() {
            let Some(it) = iterator.clone() else { continue };
            let page = match streams.get_records().shard_iterator(it).send().await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(shard, error = %e, "reading the stream failed");
                    *iterator = None;
                    refresh = true;
                    continue;
                }
            };
            let records: Vec<StreamRecord> = page
                .records()
                .iter()
                .map(|r| {
                    let s = |m: Option<
                        &HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>,
                    >,
                             name: &str| {
                        m.and_then(|m| m.get(name))
                            .and_then(|v| v.as_s().ok())
                            .cloned()
                    };
                    let change = r.dynamodb();
                    StreamRecord {
                        sequence_number: change
                            .and_then(|c| c.sequence_number())
                            .unwrap_or_default()
                            .to_owned(),
                        event_name: r
                            .event_name()
                            .map(|n| n.as_str().to_owned())
                            .unwrap_or_default(),
                        pk: s(change.and_then(|c| c.keys()), "pk"),
                        body: s(change.and_then(|c| c.new_image()), "body"),
                    }
                })
                .collect();
            if !records.is_empty() {
                got_any = true;
                let outcome = relay(&records, publisher.as_ref(), Some(outbox.as_ref())).await;
                if !outcome.failed.is_empty() {
                    // Like a Lambda retry: the outbox still holds them; drain it again.
                    refresh = true;
                }
            }
            *iterator = page.next_shard_iterator().map(String::from);
        }
        if iterators.values().all(Option::is_none)
            || known_shards_refresh.elapsed() > Duration::from_secs(60)
        {
            refresh = true;
            iterators.retain(|_, v| v.is_some());
        }
        if !got_any {
            tokio::time::sleep(idle).await;
        }
    }
}

/// A bus in the process (embedded backend): keeps what was published, for subscribers
/// in the same process and for tests.
#[derive(Default)]
pub struct InProcessBus {
    events: std::sync::Mutex<Recent>,
    /// Consumers in the process (the runner's notifications), fed before an event counts
    /// as published: an event a subscriber could not take stays in the outbox.
    subscribers: std::sync::RwLock<Vec<std::sync::Arc<dyn EventPublisher>>>,
}

impl std::fmt::Debug for InProcessBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessBus").finish_non_exhaustive()
    }
}

/// The most recent [`Recent::KEEP`] events, oldest first, and their ids: publishing costs
/// the size of the batch, not of what is kept (a set rebuilt and a vector shifted per
/// batch cost each submission ~10,000 steps on the runner).
#[derive(Debug, Default)]
struct Recent {
    order: std::collections::VecDeque<EventEnvelope>,
    ids: std::collections::HashSet<uuid::Uuid>,
}

impl Recent {
    const KEEP: usize = 10_000;
}

impl InProcessBus {
    /// Feeds every event published from now on to `consumer` as well.
    pub fn subscribe(&self, consumer: std::sync::Arc<dyn EventPublisher>) {
        if let Ok(mut subs) = self.subscribers.write() {
            subs.push(consumer);
        }
    }

    pub fn published(&self) -> Vec<EventEnvelope> {
        self.events
            .lock()
            .map(|r| r.order.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl EventPublisher for InProcessBus {
    async fn publish(&self, events: &[EventEnvelope]) -> StoreResult<Vec<uuid::Uuid>> {
        let subscribers: Vec<_> = self
            .subscribers
            .read()
            .map(|s| s.clone())
            .unwrap_or_default();
        let mut failed = Vec::new();
        for sub in subscribers {
            for id in sub.publish(events).await? {
                if !failed.contains(&id) {
                    failed.push(id);
                }
            }
        }
        if let Ok(mut r) = self.events.lock() {
            for e in events {
                if r.ids.insert(e.id) {
                    r.order.push_back(e.clone());
                }
            }
            // Bounded: keep the most recent events only.
            while r.order.len() > Recent::KEEP {
                if let Some(old) = r.order.pop_front() {
                    r.ids.remove(&old.id);
                }
            }
        }
        Ok(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use motcua_embedded::EmbeddedStore;
    use motcua_ports::contract::sample;
    use std::sync::Mutex;
    use uuid::Uuid;

    /// A bus that refuses the events it is told to, like entries failing in PutEvents.
    #[derive(Default)]
    struct PickyBus {
        refuse: Mutex<Vec<Uuid>>,
        down: bool,
        got: Mutex<Vec<Uuid>>,
    }

    #[async_trait::async_trait]
    impl EventPublisher for PickyBus {
        async fn publish(&self, events: &[EventEnvelope]) -> StoreResult<Vec<Uuid>> {
            if self.down {
                return Err(motcua_ports::StoreError::Unavailable("bus down".into()));
            }
            let refuse = self.refuse.lock().unwrap().clone();
            let mut failed = Vec::new();
            for e in events {
                if refuse.contains(&e.id) {
                    failed.push(e.id);
                } else {
                    self.got.lock().unwrap().push(e.id);
                }
            }
            Ok(failed)
        }
    }

    fn record(seq: &str, e: &EventEnvelope) -> StreamRecord {
        StreamRecord {
            sequence_number: seq.into(),
            event_name: "INSERT".into(),
            pk: Some(format!("EV#{}", e.id)),
            body: Some(serde_json::to_string(e).unwrap()),
        }
    }

    async fn store_with_events(n: u32) -> (EmbeddedStore, Vec<EventEnvelope>) {
        let dir = std::env::temp_dir().join(format!("motcua-relay-{}", Uuid::now_v7()));
        let store = EmbeddedStore::open(&dir).unwrap();
        let mut events = Vec::new();
        for i in 0..n {
            let (d, h, e) = sample("alice", i + 1, jiff::Timestamp::now());
            motcua_ports::DossierStore::create(&store, &d, &h, &e)
                .await
                .unwrap();
            events.push(e);
        }
        (store, events)
    }

    #[tokio::test]
    async fn the_in_process_bus_keeps_the_newest_events_once_each() {
        let (_, _, template) = sample("alice", 1, jiff::Timestamp::now());
        let events: Vec<EventEnvelope> = (0..Recent::KEEP + 5)
            .map(|_| EventEnvelope {
                id: Uuid::now_v7(),
                ..template.clone()
            })
            .collect();
        let bus = InProcessBus::default();
        for chunk in events.chunks(7) {
            bus.publish(chunk).await.unwrap();
        }
        // A redelivered batch of kept events adds nothing.
        bus.publish(&events[100..110]).await.unwrap();
        let kept: Vec<Uuid> = bus.published().iter().map(|e| e.id).collect();
        assert_eq!(kept.len(), Recent::KEEP);
        assert_eq!(kept[0], events[5].id);
        assert_eq!(kept[Recent::KEEP - 1], events[Recent::KEEP + 4].id);
        // An evicted event is no longer known: published again, it is kept again, newest.
        bus.publish(&events[..1]).await.unwrap();
        let kept: Vec<Uuid> = bus.published().iter().map(|e| e.id).collect();
        assert_eq!(kept.len(), Recent::KEEP);
        assert_eq!(kept.last(), Some(&events[0].id));
        assert_eq!(kept[0], events[6].id);
    }

    #[tokio::test]
    async fn failed_entries_are_reported_and_stay_pending() {
        let (store, events) = store_with_events(3).await;
        let bus = PickyBus::default();
        bus.refuse.lock().unwrap().push(events[1].id);
        let mut records: Vec<_> = events
            .iter()
            .enumerate()
            .map(|(i, e)| record(&format!("{}", 100 + i), e))
            .collect();
        // A dossier update and a garbled outbox record.
        records.push(StreamRecord {
            sequence_number: "200".into(),
            event_name: "MODIFY".into(),
            pk: Some("D#x".into()),
            body: Some("{}".into()),
        });
        records.push(StreamRecord {
            sequence_number: "201".into(),
            event_name: "INSERT".into(),
            pk: Some("EV#y".into()),
            body: Some("not json".into()),
        });
        let out = relay(&records, &bus, Some(&store)).await;
        assert_eq!(out.published, 2);
        assert_eq!(out.skipped, 1);
        assert_eq!(out.failed, vec!["201".to_string(), "101".to_string()]);
        // Only the refused event is still pending in the outbox.
        let pending: Vec<_> = store
            .pending(10)
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(pending, vec![events[1].id]);
    }

    #[tokio::test]
    async fn a_bus_outage_fails_the_whole_batch() {
        let (store, events) = store_with_events(2).await;
        let bus = PickyBus {
            down: true,
            ..Default::default()
        };
        let records: Vec<_> = events.iter().map(|e| record("7", e)).collect();
        let out = relay(&records, &bus, Some(&store)).await;
        assert_eq!(out.published, 0);
        assert_eq!(out.failed.len(), 2);
        assert_eq!(store.pending(10).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn redelivery_after_a_crash_publishes_again_and_the_bus_dedupes() {
        let (store, events) = store_with_events(2).await;
        let bus = InProcessBus::default();
        let records: Vec<_> = events.iter().map(|e| record("1", e)).collect();
        // First delivery "crashed" before checkpointing: the same batch comes again.
        relay(&records, &bus, None).await;
        relay(&records, &bus, Some(&store)).await;
        let ids: Vec<_> = bus.published().iter().map(|e| e.id).collect();
        assert_eq!(ids, events.iter().map(|e| e.id).collect::<Vec<_>>());
        assert!(store.pending(10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn drain_outbox_publishes_everything_pending() {
        let (store, events) = store_with_events(5).await;
        let bus = InProcessBus::default();
        assert_eq!(drain_outbox(&store, &bus).await.unwrap(), 5);
        assert_eq!(bus.published().len(), events.len());
        assert_eq!(drain_outbox(&store, &bus).await.unwrap(), 0);
    }

    #[test]
    fn lambda_records_convert() {
        let raw = include_str!("../../../events/dynamodb/outbox-insert.json");
        let event: aws_lambda_events::event::dynamodb::Event = serde_json::from_str(raw).unwrap();
        let r = from_lambda(&event.records[0]);
        assert!(r.is_outbox_insert());
        assert_eq!(r.sequence_number, "111100000000000000000001");
        let e: EventEnvelope = serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
        assert_eq!(e.kind, "dossier.submit");
    }
}
