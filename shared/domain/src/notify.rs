//! Status messages to applicants: which events are told, on which channels, when they may
//! be sent, how a delivery goes, and how often it is tried again.
//!
//! Decree 61/2018 requires telling the applicant when a dossier is received, refused,
//! needs a supplement, gets a new due date or has its result: those messages are
//! *mandatory* and go out even on channels the applicant opted out of when no other
//! channel is left. The rest are *courtesy* messages, sent only where the applicant wants
//! them. No status message is *urgent*: in the quiet hours they wait for the morning.

use jiff::civil::Time;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::calendar::vietnam_tz;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Sms,
    Email,
    Zalo,
}

impl Channel {
    pub const ALL: [Channel; 3] = [Channel::Sms, Channel::Email, Channel::Zalo];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Email => "email",
            Channel::Zalo => "zalo",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// What a message tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    /// Submitted online, waiting for intake (status 1).
    Submitted,
    /// Received, with its due date (status 2).
    Received,
    /// Refused at intake, with the reason (status 3).
    Refused,
    /// Documents missing (status 5).
    SupplementRequested,
    /// A fee to pay (status 6).
    PaymentRequested,
    /// The fee was paid.
    PaymentReceived,
    /// A new due date (the apology letter, Mẫu 04).
    Extended,
    /// Processing stopped (status 8).
    Stopped,
    /// The result is ready (status 9).
    Completed,
    /// The result was handed over (status 10).
    ResultReturned,
    /// Withdrawn at the applicant's request (status 7).
    Withdrawn,
    /// Officers: the agency's dossiers due within a working day, and the overdue ones.
    Digest,
}

impl Topic {
    pub const ALL: [Topic; 12] = [
        Topic::Submitted,
        Topic::Received,
        Topic::Refused,
        Topic::SupplementRequested,
        Topic::PaymentRequested,
        Topic::PaymentReceived,
        Topic::Extended,
        Topic::Stopped,
        Topic::Completed,
        Topic::ResultReturned,
        Topic::Withdrawn,
        Topic::Digest,
    ];

    /// The topic of an event type (`dossier.receive`, `payment.succeeded`…); `None` for
    /// events nobody is told about (an officer starting work, a resume).
    pub fn of_event(kind: &str) -> Option<Topic> {
        Some(match kind {
            "dossier.submit" => Topic::Submitted,
            "dossier.receive" => Topic::Received,
            "dossier.refuse" => Topic::Refused,
            "dossier.request_supplement" => Topic::SupplementRequested,
            "dossier.request_payment" => Topic::PaymentRequested,
            "dossier.confirm_payment" | "payment.succeeded" => Topic::PaymentReceived,
            "dossier.extend" => Topic::Extended,
            "dossier.stop" => Topic::Stopped,
            "dossier.complete" => Topic::Completed,
            "dossier.return_result" => Topic::ResultReturned,
            "dossier.withdraw" => Topic::Withdrawn,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Topic::Submitted => "submitted",
            Topic::Received => "received",
            Topic::Refused => "refused",
            Topic::SupplementRequested => "supplement_requested",
            Topic::PaymentRequested => "payment_requested",
            Topic::PaymentReceived => "payment_received",
            Topic::Extended => "extended",
            Topic::Stopped => "stopped",
            Topic::Completed => "completed",
            Topic::ResultReturned => "result_returned",
            Topic::Withdrawn => "withdrawn",
            Topic::Digest => "digest",
        }
    }

    pub fn parse(s: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Decree 61/2018 says the applicant must be told.
    pub fn mandatory(self) -> bool {
        matches!(
            self,
            Topic::Received
                | Topic::Refused
                | Topic::SupplementRequested
                | Topic::Extended
                | Topic::Completed
        )
    }

    /// Sent at once even in the quiet hours. No status message is (a one-time sign-in code
    /// is, and never goes through here).
    pub fn urgent(self) -> bool {
        false
    }
}

/// Where the applicant can be reached and what they want, as the function resolves it
/// from the dossier and the account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reach {
    pub phone: Option<String>,
    pub email: Option<String>,
    /// Channels the account holder opted into (none known: SMS and email, as accounts
    /// start).
    pub wants: Vec<Channel>,
    /// Channels this deployment can send on.
    pub available: Vec<Channel>,
}

impl Reach {
    fn address(&self, c: Channel) -> Option<&str> {
        match c {
            Channel::Sms | Channel::Zalo => self.phone.as_deref(),
            Channel::Email => self.email.as_deref(),
        }
    }

    /// The channels a message on `topic` goes to: those wanted, available and with an
    /// address. A mandatory message that would reach nobody that way goes by SMS (else
    /// email) even to someone who opted out: the law wants them told.
    pub fn channels(&self, topic: Topic) -> Vec<Channel> {
        let usable = |c: &Channel| self.available.contains(c) && self.address(*c).is_some();
        let mut out: Vec<Channel> = Channel::ALL
            .into_iter()
            .filter(|c| self.wants.contains(c))
            .filter(usable)
            .collect();
        if out.is_empty() && topic.mandatory() {
            out.extend(
                [Channel::Sms, Channel::Email]
                    .into_iter()
                    .filter(usable)
                    .take(1),
            );
        }
        out
    }
}

/// The hours in which non-urgent messages wait, in Vietnam's time (UTC+7): by default
/// 21:00 to 07:00.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: Time,
    pub end: Time,
}

impl Default for QuietHours {
    fn default() -> Self {
        QuietHours {
            start: Time::constant(21, 0, 0, 0),
            end: Time::constant(7, 0, 0, 0),
        }
    }
}

impl QuietHours {
    /// `HH:MM-HH:MM`; equal ends mean no quiet hours.
    pub fn parse(s: &str) -> Option<QuietHours> {
        let (a, b) = s.trim().split_once('-')?;
        let time = |t: &str| -> Option<Time> {
            let (h, m) = t.trim().split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            Time::new(h.parse().ok()?, m.parse().ok()?, 0, 0).ok()
        };
        Some(QuietHours {
            start: time(a)?,
            end: time(b)?,
        })
    }

    fn quiet(&self, t: Time) -> bool {
        if self.start == self.end {
            false
        } else if self.start < self.end {
            t >= self.start && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }

    /// When a message made at `now` may go: `now` outside the quiet hours, else the end
    /// of this quiet window.
    pub fn release(&self, now: Timestamp) -> Timestamp {
        let local = now.to_zoned(vietnam_tz());
        if !self.quiet(local.time()) {
            return now;
        }
        let mut end = local.date().to_datetime(self.end);
        if local.time() >= self.end {
            end = end
                .checked_add(SignedDuration::from_hours(24))
                .unwrap_or(end);
        }
        end.to_zoned(vietnam_tz())
            .map(|z| z.timestamp())
            .unwrap_or(now)
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its turn (or for its next attempt).
    Queued,
    /// Waiting for the quiet hours to end.
    Deferred,
    /// Handed to a sender that has not answered yet.
    Sending,
    /// Accepted by the provider.
    Sent,
    /// The provider's receipt says it reached the handset or mailbox.
    Delivered,
    /// Given up, with the reason.
    Failed,
    /// Not delivered within its validity, or no longer true: dropped, with the reason.
    Expired,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Queued => "queued",
            DeliveryStatus::Deferred => "deferred",
            DeliveryStatus::Sending => "sending",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        [
            DeliveryStatus::Queued,
            DeliveryStatus::Deferred,
            DeliveryStatus::Sending,
            DeliveryStatus::Sent,
            DeliveryStatus::Delivered,
            DeliveryStatus::Failed,
            DeliveryStatus::Expired,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }

    /// Nothing more will be sent (a receipt may still turn `sent` into `delivered` or
    /// `failed`).
    pub fn settled(self) -> bool {
        matches!(
            self,
            DeliveryStatus::Sent
                | DeliveryStatus::Delivered
                | DeliveryStatus::Failed
                | DeliveryStatus::Expired
        )
    }
}

/// How often and how late a message is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Delay before the second attempt; doubled for each next one.
    pub first_delay: SignedDuration,
    pub max_delay: SignedDuration,
    /// A message not sent within this after it was made is dropped.
    pub validity: SignedDuration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            first_delay: SignedDuration::from_secs(30),
            max_delay: SignedDuration::from_mins(30),
            validity: SignedDuration::from_hours(24),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1-based): exponential, capped, with
    /// "equal jitter" (half fixed, half drawn from `jitter` in [0, 1)) so that a burst of
    /// failures does not come back as one burst.
    pub fn delay(&self, attempt: u32, jitter: f64) -> SignedDuration {
        let exp = attempt.saturating_sub(1).min(20);
        let full = self
            .first_delay
            .checked_mul(1i32 << exp)
            .unwrap_or(self.max_delay)
            .min(self.max_delay);
        let half = full / 2;
        let jitter = jitter.clamp(0.0, 1.0);
        half + SignedDuration::from_secs_f64(half.as_secs_f64() * jitter)
    }
}

/// `+84*****5678` (as [`crate::PhoneNumber::masked`]) or `n***@example.vn`: enough for a
/// person to recognise their own address, not to learn someone else's.
pub fn mask(channel: Channel, address: &str) -> String {
    match channel {
        Channel::Sms | Channel::Zalo => {
            let digits: Vec<char> = address.chars().collect();
            let tail: String = digits[digits.len().saturating_sub(4)..].iter().collect();
            format!("+84*****{tail}")
        }
        Channel::Email => match address.split_once('@') {
            Some((local, domain)) => {
                let first: String = local.chars().take(1).collect();
                format!("{first}***@{domain}")
            }
            None => "***".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn events_map_to_topics_and_the_decree_list_is_mandatory() {
        assert_eq!(Topic::of_event("dossier.receive"), Some(Topic::Received));
        assert_eq!(
            Topic::of_event("payment.succeeded"),
            Some(Topic::PaymentReceived)
        );
        assert_eq!(Topic::of_event("dossier.process"), None);
        assert_eq!(Topic::of_event("dossier.resume"), None);
        let mandatory: Vec<Topic> = Topic::ALL.into_iter().filter(|t| t.mandatory()).collect();
        assert_eq!(
            mandatory,
            [
                Topic::Received,
                Topic::Refused,
                Topic::SupplementRequested,
                Topic::Extended,
                Topic::Completed
            ]
        );
        for t in Topic::ALL {
            assert_eq!(Topic::parse(t.as_str()), Some(t));
            assert!(!t.urgent());
        }
    }

    #[test]
    fn channels_follow_wishes_and_the_law() {
        let reach = Reach {
            phone: Some("+84912345678".into()),
            email: Some("a@b.vn".into()),
            wants: vec![Channel::Email],
            available: Channel::ALL.to_vec(),
        };
        assert_eq!(reach.channels(Topic::Submitted), [Channel::Email]);
        let opted_out = Reach {
            wants: vec![],
            ..reach.clone()
        };
        assert!(opted_out.channels(Topic::Submitted).is_empty());
        assert_eq!(opted_out.channels(Topic::Received), [Channel::Sms]);
        // Zalo wanted but not available here; no phone for SMS: the mandatory message
        // goes by email.
        let no_phone = Reach {
            phone: None,
            wants: vec![Channel::Zalo],
            available: vec![Channel::Sms, Channel::Email],
            ..reach.clone()
        };
        assert_eq!(no_phone.channels(Topic::Completed), [Channel::Email]);
        assert!(no_phone.channels(Topic::Stopped).is_empty());
        let nobody = Reach::default();
        assert!(nobody.channels(Topic::Received).is_empty());
    }

    #[test]
    fn quiet_hours_defer_to_the_morning_in_vietnam() {
        let q = QuietHours::default();
        // 14:00 UTC = 21:00 in Vietnam: quiet until 07:00 (00:00 UTC) the next day.
        assert_eq!(
            q.release(at("2026-03-17T14:00:00Z")),
            at("2026-03-18T00:00:00Z")
        );
        // 02:30 in Vietnam (19:30 UTC the day before): until 07:00 the same local day.
        assert_eq!(
            q.release(at("2026-03-16T19:30:00Z")),
            at("2026-03-17T00:00:00Z")
        );
        // 20:59 and 07:00 local are not quiet.
        assert_eq!(
            q.release(at("2026-03-17T13:59:00Z")),
            at("2026-03-17T13:59:00Z")
        );
        assert_eq!(
            q.release(at("2026-03-17T00:00:00Z")),
            at("2026-03-17T00:00:00Z")
        );
        let day = QuietHours::parse("12:00-13:30").unwrap();
        assert_eq!(
            day.release(at("2026-03-17T05:10:00Z")),
            at("2026-03-17T06:30:00Z")
        );
        let none = QuietHours::parse("00:00-00:00").unwrap();
        assert_eq!(
            none.release(at("2026-03-17T16:00:00Z")),
            at("2026-03-17T16:00:00Z")
        );
        for bad in ["", "21-07", "25:00-07:00", "21:00", "9:00-10:00"] {
            assert_eq!(QuietHours::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn retries_back_off_with_jitter_up_to_a_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1, 0.0), SignedDuration::from_secs(15));
        assert_eq!(p.delay(1, 1.0), SignedDuration::from_secs(30));
        assert_eq!(p.delay(3, 0.0), SignedDuration::from_secs(60));
        assert_eq!(p.delay(30, 1.0), SignedDuration::from_mins(30));
        let a = p.delay(4, 0.1);
        let b = p.delay(4, 0.9);
        assert!(a < b && b <= SignedDuration::from_secs(240));
    }

    #[test]
    fn masks_keep_what_the_owner_recognises() {
        assert_eq!(mask(Channel::Sms, "+84912345678"), "+84*****5678");
        assert_eq!(
            mask(Channel::Email, "nguyen.an@example.vn"),
            "n***@example.vn"
        );
        assert_eq!(mask(Channel::Email, "broken"), "***");
    }
}
