//! The outbox sweeper: publishes events the stream relay did not (a bus outage longer than
//! the stream's retries, records dropped to the dead-letter queue). On AWS a scheduled
//! function runs [`sweep_outbox`] every few minutes; an event leaves the outbox's pending
//! index, and gets its retention TTL, only once the bus has accepted it.

use jiff::Timestamp;
use motcua_ports::{EventPublisher, Outbox, StoreResult};

/// How many pending events one round reads (oldest first).
const PAGE: u32 = 500;

/// What a sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepOutcome {
    /// Events the bus accepted (now marked published).
    pub published: usize,
    /// Events the bus refused; still pending, tried again by the next sweep.
    pub failed: usize,
    /// Age in seconds of the oldest event left pending older than the cutoff, if any.
    pub oldest_left_secs: Option<i64>,
}

/// Most rounds of one sweep (so at most `PAGE` × `MAX_ROUNDS` events a run).
const MAX_ROUNDS: usize = 20;

/// Publishes every pending event that occurred at or before `cutoff` (newer ones are the
/// stream relay's, still within its retries). Pages on past refused events, so a backlog
/// of events the bus refuses does not hold up the ones behind it; stops at the first round
/// the bus does not answer at all (an outage costs one round, not a loop).
pub async fn sweep_outbox(
    outbox: &dyn Outbox,
    publisher: &dyn EventPublisher,
    cutoff: Timestamp,
    now: Timestamp,
) -> StoreResult<SweepOutcome> {
    let mut out = SweepOutcome::default();
    let mut after: Option<motcua_domain::EventEnvelope> = None;
    for _ in 0..MAX_ROUNDS {
        let page = match &after {
            None => outbox.pending(PAGE).await?,
            Some(e) => outbox.pending_after(PAGE, e).await?,
        };
        let due: Vec<_> = page
            .iter()
            .filter(|e| e.occurred_at <= cutoff)
            .cloned()
            .collect();
        if due.is_empty() {
            break;
        }
        let (refused, down) = match publisher.publish(&due).await {
            Ok(refused) => (refused, false),
            Err(e) => {
                tracing::warn!(error = %e, pending = due.len(), "the bus is unavailable; the backlog waits for the next sweep");
                (due.iter().map(|e| e.id).collect(), true)
            }
        };
        let accepted: Vec<_> = due
            .iter()
            .map(|e| e.id)
            .filter(|id| !refused.contains(id))
            .collect();
        outbox.mark_published(&accepted).await?;
        out.published += accepted.len();
        if !refused.is_empty() {
            out.failed += refused.len();
            let oldest = due
                .iter()
                .filter(|e| refused.contains(&e.id))
                .map(|e| now.as_second() - e.occurred_at.as_second())
                .max();
            out.oldest_left_secs = out.oldest_left_secs.max(oldest);
        }
        // Done: the bus is down, newer events follow the due ones, or the backlog ended.
        if down || due.len() < page.len() || page.len() < PAGE as usize {
            break;
        }
        after = page.last().cloned();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InProcessBus;
    use motcua_domain::EventEnvelope;
    use motcua_embedded::EmbeddedStore;
    use motcua_ports::StoreError;
    use motcua_ports::contract::sample;
    use std::sync::atomic::{AtomicBool, Ordering};
    use uuid::Uuid;

    /// A bus that is down until told otherwise.
    #[derive(Default)]
    struct Outage {
        restored: AtomicBool,
        inner: InProcessBus,
    }

    #[async_trait::async_trait]
    impl EventPublisher for Outage {
        async fn publish(&self, events: &[EventEnvelope]) -> StoreResult<Vec<Uuid>> {
            if !self.restored.load(Ordering::SeqCst) {
                return Err(StoreError::Unavailable("bus down".into()));
            }
            self.inner.publish(events).await
        }
    }

    /// A bus that refuses some events for good (say, too large), accepting the others.
    struct Refusing {
        refuse: std::collections::HashSet<Uuid>,
        inner: InProcessBus,
    }

    #[async_trait::async_trait]
    impl EventPublisher for Refusing {
        async fn publish(&self, events: &[EventEnvelope]) -> StoreResult<Vec<Uuid>> {
            let (bad, good): (Vec<_>, Vec<_>) = events
                .iter()
                .cloned()
                .partition(|e| self.refuse.contains(&e.id));
            self.inner.publish(&good).await?;
            Ok(bad.iter().map(|e| e.id).collect())
        }
    }

    #[tokio::test]
    async fn refused_events_do_not_hold_up_the_ones_behind_them() {
        // More refused events than one page: a sweep pages past them (review finding: the
        // same oldest page came back every round and later events were never swept).
        let dir = std::env::temp_dir().join(format!("motcua-sweep-{}", Uuid::now_v7()));
        let store = EmbeddedStore::open(&dir).unwrap();
        let mut events = Vec::new();
        for i in 0..(PAGE + 60) {
            let (d, h, e) = sample("alice", i + 1, at(i64::from(i)));
            motcua_ports::DossierStore::create(&store, &d, &h, &e)
                .await
                .unwrap();
            events.push(e);
        }
        let refused = PAGE as usize + 10;
        let bus = Refusing {
            refuse: events[..refused].iter().map(|e| e.id).collect(),
            inner: InProcessBus::default(),
        };
        let now = at(100_000);
        let out = sweep_outbox(&store, &bus, now, now).await.unwrap();
        assert_eq!(out.published, events.len() - refused);
        assert_eq!(out.failed, refused);
        assert_eq!(bus.inner.published().len(), events.len() - refused);
        assert_eq!(store.pending(1000).await.unwrap().len(), refused);
        let _ = std::fs::remove_dir_all(dir);
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    #[tokio::test]
    async fn the_backlog_of_an_outage_is_published_once_the_bus_is_back() {
        let dir = std::env::temp_dir().join(format!("motcua-sweep-{}", Uuid::now_v7()));
        let store = EmbeddedStore::open(&dir).unwrap();
        let mut events = Vec::new();
        for i in 0..7 {
            let (d, h, e) = sample("alice", i + 1, at(i64::from(i) * 60));
            motcua_ports::DossierStore::create(&store, &d, &h, &e)
                .await
                .unwrap();
            events.push(e);
        }
        let bus = Outage::default();
        // Down: nothing is lost, everything stays pending.
        let now = at(3600);
        let out = sweep_outbox(&store, &bus, at(300), now).await.unwrap();
        assert_eq!(out.published, 0);
        assert_eq!(out.failed, 6, "events up to the cutoff were tried");
        assert_eq!(out.oldest_left_secs, Some(3600));
        assert_eq!(store.pending(100).await.unwrap().len(), 7);
        // Back: the events older than the cutoff go out; the newest waits for the relay.
        bus.restored.store(true, Ordering::SeqCst);
        let out = sweep_outbox(&store, &bus, at(300), now).await.unwrap();
        assert_eq!(out.published, 6);
        assert_eq!(out.failed, 0);
        let published: Vec<_> = bus.inner.published().iter().map(|e| e.id).collect();
        assert_eq!(
            published,
            events[..6].iter().map(|e| e.id).collect::<Vec<_>>()
        );
        let left: Vec<_> = store.pending(100).await.unwrap();
        assert_eq!(left, events[6..].to_vec());
        // Nothing left to do: a second sweep publishes nothing twice.
        let out = sweep_outbox(&store, &bus, at(300), now).await.unwrap();
        assert_eq!(out, SweepOutcome::default());
        let _ = std::fs::remove_dir_all(dir);
    }
}
