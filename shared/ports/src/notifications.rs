//! Ports of the notifications capability: the delivery records, the senders, the send
//! rate.
//!
//! A delivery is one message on one channel to one party about one event. Its key
//! (`event/channel/recipient`) is unique, so a redelivered event plans nothing twice; it
//! keeps the rendered message and a masked address, never the address itself (that is
//! read from the dossier and the account when the message goes, so a changed number, an
//! opt-out or an erased account is honoured, and no record outlives the person's data).

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use motcua_domain::notify::{Channel, DeliveryStatus, Topic};
use motcua_domain::templates::Content;
use motcua_domain::{AgencyCode, Lang};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::StoreResult;

/// Who a message is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Recipient {
    /// The applicant of the delivery's dossier.
    Applicant,
    /// An agency's officers, at the mailbox configured for the agency.
    Agency { agency: AgencyCode },
}

impl Recipient {
    /// As it appears in a delivery key.
    pub fn key_part(&self) -> String {
        match self {
            Recipient::Applicant => "applicant".into(),
            Recipient::Agency { agency } => format!("agency:{agency}"),
        }
    }
}

/// One message on one channel to one party.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: Uuid,
    /// Unique: `<event id>/<channel>/<recipient>` (a digest: `digest:<agency>:<date>/…`).
    pub key: String,
    /// The event it tells of (none for a digest).
    pub event_id: Option<Uuid>,
    /// The dossier it is about (none for a digest).
    pub dossier_id: Option<Uuid>,
    pub topic: Topic,
    pub channel: Channel,
    pub recipient: Recipient,
    /// The address as a person may see it (`+84*****5678`), filled when first sent.
    pub masked_to: Option<String>,
    pub lang: Lang,
    pub content: Content,
    /// Decree 61 requires it: sent even where the person opted out, if no other channel
    /// reaches them.
    pub mandatory: bool,
    pub status: DeliveryStatus,
    /// Why it failed or expired, in words an operator reads (no personal data).
    pub reason: Option<String>,
    /// Attempts started.
    pub attempts: u32,
    /// The sender that accepted it (`sns`, `ses`, `gateway`, `zalo`, `dev`).
    pub provider: Option<String>,
    /// The provider's message id, for its delivery receipts.
    pub provider_id: Option<String>,
    pub created_at: Timestamp,
    /// When the dispatcher next looks at it: send time, retry time, the end of the quiet
    /// hours, or the end of an attempt's lease.
    pub due_at: Timestamp,
    /// Not sent by then: dropped.
    pub expires_at: Timestamp,
    pub updated_at: Timestamp,
    /// Optimistic concurrency: each update adds one.
    pub version: u64,
}

impl Delivery {
    pub fn key_of(event: &str, channel: Channel, recipient: &Recipient) -> String {
        format!("{event}/{}/{}", channel.as_str(), recipient.key_part())
    }
}

/// Delivery records.
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Stores each delivery unless one with its key exists; returns what is stored under
    /// each key and whether it was stored now.
    async fn plan(&self, deliveries: &[Delivery]) -> StoreResult<Vec<(Delivery, bool)>>;
    async fn get(&self, id: Uuid) -> StoreResult<Option<Delivery>>;
    /// Replaces the delivery if its stored version is `d.version - 1` (`Conflict`
    /// otherwise): of two dispatchers only one claims an attempt.
    async fn update(&self, d: &Delivery) -> StoreResult<()>;
    /// Unsettled deliveries (queued, deferred, sending) due at or before `now`, earliest
    /// first, at most `limit`.
    async fn due(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<Delivery>>;
    /// A dossier's deliveries, oldest first (at most [`PER_DOSSIER`]).
    async fn of_dossier(&self, dossier: Uuid) -> StoreResult<Vec<Delivery>>;
    /// The delivery a provider's receipt names.
    async fn by_provider_id(
        &self,
        provider: &str,
        provider_id: &str,
    ) -> StoreResult<Option<Delivery>>;
}

/// The most deliveries one dossier's list shows.
pub const PER_DOSSIER: u32 = 500;

/// A message as a sender gets it.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// The delivery id: the reference providers that take one are given, so a message
    /// sent again after a lost answer is recognised.
    pub reference: Uuid,
    /// E.164 phone (SMS, Zalo) or email address.
    pub to: &'a str,
    pub content: &'a Content,
}

/// A provider took the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub provider_id: Option<String>,
}

/// Why a provider did not take it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendFailure {
    /// Down, throttling, timing out: try again later.
    #[error("transient: {0}")]
    Transient(String),
    /// This message or address will never go (invalid number, opted out, unverified
    /// sender): do not retry.
    #[error("permanent: {0}")]
    Permanent(String),
}

/// What a provider that keeps our reference knows of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Accepted(Accepted),
    Unknown,
    /// The provider cannot be asked.
    Unsupported,
}

/// One channel's provider.
#[async_trait]
pub trait Sender: Send + Sync {
    fn channel(&self) -> Channel;
    /// Short, stable: `sns`, `ses`, `gateway`, `zalo`, `dev`.
    fn provider(&self) -> &'static str;
    async fn send(&self, m: &Outgoing<'_>) -> Result<Accepted, SendFailure>;
    /// Whether the message with `reference` was taken, after an attempt whose answer was
    /// lost.
    async fn lookup(&self, reference: Uuid) -> Result<Lookup, SendFailure> {
        let _ = reference;
        Ok(Lookup::Unsupported)
    }
}

/// How many messages a channel's sender may take.
#[async_trait]
pub trait SendRate: Send + Sync {
    /// Takes one send of `bucket` if its current window ([`rate_window`]) has quota left;
    /// otherwise `Err(wait)` until the next window. Counted before the send.
    async fn take(
        &self,
        bucket: &str,
        per_second: u32,
        now: Timestamp,
    ) -> StoreResult<Result<(), SignedDuration>>;

    /// Takes one of the `limit` of `bucket` in the period numbered `period` (a day, …);
    /// false when none is left. Counted before the work it limits.
    async fn take_in(&self, bucket: &str, period: i64, limit: u32) -> StoreResult<bool>;
}

/// What the notifications capability stores.
#[derive(Clone)]
pub struct NotificationPorts {
    pub deliveries: std::sync::Arc<dyn DeliveryStore>,
    pub rate: std::sync::Arc<dyn SendRate>,
}

/// One-time sign-in codes over an SMS [`Sender`], at once.
pub struct CodesBySms(pub std::sync::Arc<dyn Sender>);

#[async_trait]
impl crate::identity::CodeSender for CodesBySms {
    async fn send_code(&self, phone: &str, text: &str) -> Result<(), crate::identity::SendError> {
        let content = Content::Sms {
            text: text.to_owned(),
        };
        let m = Outgoing {
            reference: Uuid::now_v7(),
            to: phone,
            content: &content,
        };
        match self.0.send(&m).await {
            Ok(_) => Ok(()),
            Err(SendFailure::Transient(e)) => Err(crate::identity::SendError::Unavailable(e)),
            Err(SendFailure::Permanent(e)) => Err(crate::identity::SendError::Refused(e)),
        }
    }
}

/// Where a message that was given up goes for the operators (a dead-letter queue on AWS,
/// with its alarm).
#[async_trait]
pub trait DeadLetters: Send + Sync {
    async fn dead_letter(&self, d: &Delivery) -> StoreResult<()>;
}

/// Dead letters only logged (the delivery record says failed, with the reason): the
/// runner's.
pub struct LoggedDeadLetters;

#[async_trait]
impl DeadLetters for LoggedDeadLetters {
    async fn dead_letter(&self, d: &Delivery) -> StoreResult<()> {
        tracing::error!(
            delivery = %d.id,
            topic = d.topic.as_str(),
            channel = d.channel.as_str(),
            reason = d.reason.as_deref().unwrap_or(""),
            "a notification was given up"
        );
        Ok(())
    }
}

/// The send-rate window `now` falls in, for a rate of `per_second`: each second is cut
/// into `min(per_second, 10)` windows sharing the second's quota, so a channel sends
/// steadily (at most about a tenth over the rate in any sliding second) rather than its
/// whole second's worth at the top of each second. Returns the window's number (unique
/// across seconds), its quota, and when the next window starts.
pub fn rate_window(per_second: u32, now: Timestamp) -> (i64, u32, Timestamp) {
    let slots = i64::from(per_second.clamp(1, 10));
    let ms = now.as_millisecond();
    let (second, rem) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let i = rem * slots / 1000;
    let quota = per_second / slots as u32 + u32::from((i as u32) < per_second % slots as u32);
    // Window i of a second starts at ceil(i * 1000 / slots) ms.
    let next_ms = if i + 1 == slots {
        (second + 1) * 1000
    } else {
        second * 1000 + ((i + 1) * 1000 + slots - 1) / slots
    };
    let next = Timestamp::from_millisecond(next_ms).unwrap_or(now);
    (second * slots + i, quota, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seconds_quota_is_spread_over_its_windows() {
        let at = |ms: i64| Timestamp::from_millisecond(1_773_712_800_000 + ms).unwrap();
        for per_second in [1, 3, 7, 10, 30, 50, 1000] {
            let mut seen = std::collections::BTreeMap::new();
            for ms in 0..1000 {
                let (w, quota, next) = rate_window(per_second, at(ms));
                assert!(next > at(ms) && next <= at(1000), "{per_second} {ms}");
                seen.insert(w, quota);
                // The next window is another one.
                assert_ne!(rate_window(per_second, next).0, w);
            }
            assert_eq!(seen.len() as u32, per_second.clamp(1, 10));
            assert_eq!(seen.values().sum::<u32>(), per_second);
        }
        assert_eq!(rate_window(50, at(250)).1, 5);
        assert_eq!(rate_window(3, at(334)).0, rate_window(3, at(666)).0);
        assert_ne!(rate_window(3, at(333)).0, rate_window(3, at(334)).0);
    }
}
