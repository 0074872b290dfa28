//! The dispatcher: sends the deliveries that are due.
//!
//! For each due delivery, in this order:
//! 1. expired (not sent within its validity) → `expired`, with the reason;
//! 2. no longer true (a supplement already given, a fee already paid) or no longer wanted
//!    on this channel → `expired`, with the reason;
//! 3. the channel's send rate is taken, **before** the attempt (a full second stops the
//!    channel for this round: the rest waits, nothing fails);
//! 4. the attempt is claimed: `sending`, one more attempt, leased until now + lease, a
//!    conditional write that only one dispatcher wins;
//! 5. after an earlier attempt whose answer was lost, a provider that keeps our reference
//!    is asked first, so a message it took is not sent twice;
//! 6. sent → `sent` with the provider's id; a permanent refusal → `failed`; a transient
//!    one → `queued` again after an exponential, jittered delay, or `failed` and a dead
//!    letter after the last attempt.
//!
//! A delivery left `sending` past its lease (a crash between the provider's answer and our
//! record) is reconciled: the provider is asked; one that cannot tell is not sent again
//! (`failed`, "outcome unknown"): a duplicate status message is the worse error.

use std::collections::HashSet;

use jiff::{SignedDuration, Timestamp};
use motcua_domain::Status;
use motcua_domain::notify::{Channel, DeliveryStatus, Topic, mask};
use motcua_ports::StoreError;
use motcua_ports::notifications::{Delivery, Lookup, Outgoing, Recipient, SendFailure, Sender};
use tokio::task::JoinSet;

use crate::{NotifyState, reach};

/// What became of one delivery in a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Sent,
    /// Tried again later.
    Retrying,
    Failed,
    Expired,
    /// Still in the quiet hours.
    Deferred,
    /// The channel's rate is used up for this second.
    Throttled(Channel, SignedDuration),
    /// Another dispatcher has it.
    Skipped,
}

/// A round's tally.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Round {
    /// Deliveries the round looked at.
    pub due: usize,
    pub sent: usize,
    pub retrying: usize,
    pub failed: usize,
    pub expired: usize,
    pub deferred: usize,
    pub skipped: usize,
    /// The longest wait a throttled channel asked for.
    pub throttled: Option<SignedDuration>,
}

/// Sends what is due at `now`: one batch, `concurrency` at a time. Returns the tally.
pub async fn dispatch_due(
    s: &NotifyState,
    now: Timestamp,
    concurrency: usize,
) -> Result<Round, StoreError> {
    let due = s.ports.deliveries.due(now, s.config.batch).await?;
    let mut round = Round {
        due: due.len(),
        ..Round::default()
    };
    let mut throttled: HashSet<Channel> = HashSet::new();
    let mut tasks: JoinSet<Result<Step, StoreError>> = JoinSet::new();
    let mut first_error = None;
    let mut tally = |round: &mut Round,
                     r: Result<Step, StoreError>,
                     throttled: &mut HashSet<Channel>| match r {
        Ok(Step::Sent) => round.sent += 1,
        Ok(Step::Retrying) => round.retrying += 1,
        Ok(Step::Failed) => round.failed += 1,
        Ok(Step::Expired) => round.expired += 1,
        Ok(Step::Deferred) => round.deferred += 1,
        Ok(Step::Skipped) => round.skipped += 1,
        Ok(Step::Throttled(c, wait)) => {
            throttled.insert(c);
            round.throttled = Some(round.throttled.map_or(wait, |w| w.max(wait)));
        }
        Err(e) => {
            round.skipped += 1;
            if first_error.is_none() {
                first_error = Some(e);
            }
        }
    };
    for d in due {
        if throttled.contains(&d.channel) {
            continue;
        }
        while tasks.len() >= concurrency.max(1) {
            if let Some(r) = tasks.join_next().await {
                tally(&mut round, r.unwrap_or(Ok(Step::Skipped)), &mut throttled);
            }
        }
        let s = s.clone();
        tasks.spawn(async move { deliver(&s, d, now).await });
    }
    while let Some(r) = tasks.join_next().await {
        tally(&mut round, r.unwrap_or(Ok(Step::Skipped)), &mut throttled);
    }
    match first_error {
        Some(e) if round.sent == 0 && round.due > 0 => Err(e),
        Some(e) => {
            tracing::warn!(error = %e, "some deliveries could not be handled this round");
            Ok(round)
        }
        None => Ok(round),
    }
}

/// Writes `d` as its next version.
async fn save(s: &NotifyState, d: &mut Delivery, now: Timestamp) -> Result<(), StoreError> {
    d.version += 1;
    d.updated_at = now;
    s.ports.deliveries.update(d).await
}

async fn settle(
    s: &NotifyState,
    mut d: Delivery,
    status: DeliveryStatus,
    reason: Option<String>,
    now: Timestamp,
) -> Result<Step, StoreError> {
    d.status = status;
    d.reason = reason;
    match save(s, &mut d, now).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => return Ok(Step::Skipped),
        Err(e) => return Err(e),
    }
    Ok(match status {
        DeliveryStatus::Failed => {
            if let Err(e) = s.dead_letters.dead_letter(&d).await {
                tracing::error!(delivery = %d.id, error = %e, "the dead letter could not be written");
            }
            Step::Failed
        }
        DeliveryStatus::Expired => Step::Expired,
        DeliveryStatus::Sent | DeliveryStatus::Delivered => Step::Sent,
        DeliveryStatus::Deferred => Step::Deferred,
        _ => Step::Retrying,
    })
}

/// Whether the message no longer tells the truth.
fn superseded(topic: Topic, status: Status) -> bool {
    match topic {
        Topic::SupplementRequested => status != Status::SupplementRequested,
        Topic::PaymentRequested => status != Status::PaymentRequested,
        _ => false,
    }
}

/// Where `d` goes now, or why it goes nowhere.
async fn destination(s: &NotifyState, d: &Delivery) -> Result<Result<String, String>, StoreError> {
    match &d.recipient {
        Recipient::Agency { agency } => Ok(s
            .config
            .digest_mailboxes
            .get(agency)
            .cloned()
            .ok_or_else(|| "no mailbox is configured for the agency".to_owned())),
        Recipient::Applicant => {
            let found = match d.dossier_id {
                Some(id) => s.dossiers.get(id).await?,
                None => None,
            };
            let Some(dossier) = found else {
                return Ok(Err("the dossier is gone".into()));
            };
            if superseded(d.topic, dossier.status) {
                return Ok(Err("no longer true: the dossier moved on".into()));
            }
            let (reach, _) = reach::applicant(s, &dossier, d.topic).await?;
            // What the law requires may go on any channel that reaches the person (a
            // fallback after another failed); the rest only where wanted.
            let allowed = if d.mandatory {
                reach.available.contains(&d.channel)
            } else {
                reach.channels(d.topic).contains(&d.channel)
            };
            if !allowed {
                return Ok(Err(
                    "the applicant no longer wants or has this channel".into()
                ));
            }
            Ok(reach::address(&reach, d.channel)
                .map(str::to_owned)
                .ok_or_else(|| "no address".to_owned()))
        }
    }
}

fn jitter() -> f64 {
    rand::random::<f64>()
}

/// A provider's words as a record may keep them: short, plain, and without anything that
/// may be a number or an address (a gateway may echo the phone it refused).
pub fn clean_reason(text: &str) -> String {
    let words: Vec<String> = text
        .split_whitespace()
        .filter(|w| !w.contains('@'))
        .map(|w| {
            let digits = w.chars().filter(char::is_ascii_digit).count();
            if digits >= 5 {
                "#".to_owned()
            } else {
                w.chars()
                    .filter(|c| c.is_ascii_alphanumeric() || "-_.:/()".contains(*c))
                    .collect()
            }
        })
        .filter(|w| !w.is_empty())
        .collect();
    let mut out = words.join(" ");
    if out.len() > 80 {
        out.truncate(80);
    }
    if out.is_empty() {
        "unspecified".into()
    } else {
        out
    }
}

/// Handles one due delivery.
pub async fn deliver(s: &NotifyState, mut d: Delivery, now: Timestamp) -> Result<Step, StoreError> {
    let Some(sender) = s.senders.get(d.channel).cloned() else {
        return settle(
            s,
            d,
            DeliveryStatus::Failed,
            Some("no sender for this channel".into()),
            now,
        )
        .await;
    };
    if d.status == DeliveryStatus::Sending {
        return reconcile(s, d, sender.as_ref(), now).await;
    }
    if now >= d.expires_at {
        let hours = s.config.retry.validity.as_hours();
        let mandatory = d.mandatory;
        let step = settle(
            s,
            d.clone(),
            DeliveryStatus::Expired,
            Some(format!("not sent within its validity ({hours} h)")),
            now,
        )
        .await?;
        // A message the law requires that nobody got: the operators hear of it.
        if mandatory && step == Step::Expired {
            let _ = s.dead_letters.dead_letter(&d).await;
        }
        return Ok(step);
    }
    // Still quiet (a deferred message looked at early): wait for the end.
    let release = if d.topic.urgent() {
        now
    } else {
        s.config.quiet.release(now)
    };
    if release > now {
        if d.due_at == release && d.status == DeliveryStatus::Deferred {
            return Ok(Step::Deferred);
        }
        d.status = DeliveryStatus::Deferred;
        d.due_at = release;
        return match save(s, &mut d, now).await {
            Ok(()) | Err(StoreError::Conflict) => Ok(Step::Deferred),
            Err(e) => Err(e),
        };
    }
    let to = match destination(s, &d).await? {
        Ok(to) => to,
        Err(why) => return settle(s, d, DeliveryStatus::Expired, Some(why), now).await,
    };
    // Counted before the attempt.
    let limit = s.config.rates.get(&d.channel).copied().unwrap_or(0);
    if limit > 0 {
        let bucket = format!("{}:{}", d.channel.as_str(), sender.provider());
        if let Err(wait) = s.ports.rate.take(&bucket, limit, now).await? {
            return Ok(Step::Throttled(d.channel, wait));
        }
    }
    let earlier_attempt = d.attempts > 0;
    d.status = DeliveryStatus::Sending;
    d.attempts += 1;
    d.due_at = now.checked_add(s.config.lease).unwrap_or(now);
    d.masked_to = Some(mask(d.channel, &to));
    match save(s, &mut d, now).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => return Ok(Step::Skipped),
        Err(e) => return Err(e),
    }
    if earlier_attempt {
        match sender.lookup(d.id).await {
            Ok(Lookup::Accepted(a)) => {
                d.provider = Some(sender.provider().into());
                d.provider_id = a.provider_id;
                return settle(s, d, DeliveryStatus::Sent, None, now).await;
            }
            Ok(Lookup::Unknown | Lookup::Unsupported) => {}
            // Not knowing whether the provider has it, sending again could duplicate it:
            // this attempt counts as a failed one.
            Err(e) => {
                return after_attempt(s, d, sender.provider(), Err(e), now).await;
            }
        }
    }
    let outcome = sender
        .send(&Outgoing {
            reference: d.id,
            to: &to,
            content: &d.content,
        })
        .await;
    after_attempt(s, d, sender.provider(), outcome, now).await
}

async fn after_attempt(
    s: &NotifyState,
    mut d: Delivery,
    provider: &'static str,
    outcome: Result<motcua_ports::notifications::Accepted, SendFailure>,
    now: Timestamp,
) -> Result<Step, StoreError> {
    match outcome {
        Ok(a) => {
            d.provider = Some(provider.into());
            d.provider_id = a.provider_id;
            settle(s, d, DeliveryStatus::Sent, None, now).await
        }
        Err(SendFailure::Permanent(why)) => {
            let why = clean_reason(&why);
            let step = settle(s, d.clone(), DeliveryStatus::Failed, Some(why), now).await?;
            fallback(s, &d, now).await;
            Ok(step)
        }
        Err(SendFailure::Transient(why)) if d.attempts >= s.config.retry.max_attempts => {
            let why = format!(
                "gave up after {} attempts: {}",
                d.attempts,
                clean_reason(&why)
            );
            let step = settle(s, d.clone(), DeliveryStatus::Failed, Some(why), now).await?;
            fallback(s, &d, now).await;
            Ok(step)
        }
        Err(SendFailure::Transient(why)) => {
            let why = clean_reason(&why);
            let wait = s.config.retry.delay(d.attempts, jitter());
            d.due_at = now.checked_add(wait).unwrap_or(now);
            tracing::info!(delivery = %d.id, attempt = d.attempts, error = %why, "sending failed; tried again later");
            settle(s, d, DeliveryStatus::Queued, Some(why), now).await
        }
    }
}

/// A delivery left `sending` past its lease.
async fn reconcile(
    s: &NotifyState,
    d: Delivery,
    sender: &dyn Sender,
    now: Timestamp,
) -> Result<Step, StoreError> {
    match sender.lookup(d.id).await {
        Ok(Lookup::Accepted(a)) => after_attempt(s, d, sender.provider(), Ok(a), now).await,
        // The provider never got it: the attempt did not happen; the next one may.
        Ok(Lookup::Unknown) => {
            let mut d = d;
            d.due_at = now;
            settle(s, d, DeliveryStatus::Queued, Some("an attempt was interrupted before the provider got it".into()), now).await
        }
        Ok(Lookup::Unsupported) => {
            settle(
                s,
                d,
                DeliveryStatus::Failed,
                Some("outcome unknown: an attempt was interrupted and the provider cannot be asked; not sent again, to avoid a duplicate".into()),
                now,
            )
            .await
        }
        // Past its validity, the question is moot: given up, not sent again.
        Err(_) if now >= d.expires_at => {
            settle(
                s,
                d,
                DeliveryStatus::Failed,
                Some("outcome unknown: the provider could not be asked about an interrupted attempt".into()),
                now,
            )
            .await
        }
        // Ask again at the next round.
        Err(e) => {
            tracing::warn!(delivery = %d.id, error = %e, "the provider could not be asked about an interrupted attempt");
            let mut d = d;
            d.due_at = now.checked_add(s.config.lease).unwrap_or(now);
            match save(s, &mut d, now).await {
                Ok(()) | Err(StoreError::Conflict) => Ok(Step::Retrying),
                Err(e) => Err(e),
            }
        }
    }
}

/// After a message the law requires failed on its channel: the same message on the next
/// channel that reaches the applicant (SMS, then email, then Zalo), unless that channel
/// has (or had) it already. Best effort: a failure here is logged; the failed delivery
/// stays failed and was dead-lettered.
async fn fallback(s: &NotifyState, failed: &Delivery, now: Timestamp) {
    if !failed.mandatory || failed.recipient != Recipient::Applicant {
        return;
    }
    let (Some(event), Some(dossier_id)) = (failed.event_id, failed.dossier_id) else {
        return;
    };
    let planned = async {
        let Some(dossier) = s.dossiers.get(dossier_id).await? else {
            return Ok::<_, StoreError>(None);
        };
        if superseded(failed.topic, dossier.status) {
            return Ok(None);
        }
        let (reach, lang) = reach::applicant(s, &dossier, failed.topic).await?;
        let facts = crate::plan::facts(s, &dossier, None).await?;
        for channel in [Channel::Sms, Channel::Email, Channel::Zalo] {
            if channel == failed.channel
                || !reach.available.contains(&channel)
                || reach::address(&reach, channel).is_none()
            {
                continue;
            }
            let Some(content) = crate::plan::render(s, failed.topic, channel, lang, &facts) else {
                continue;
            };
            let mut d = crate::plan::new_delivery(
                s,
                Delivery::key_of(&event.to_string(), channel, &Recipient::Applicant),
                Some(event),
                Some(dossier_id),
                failed.topic,
                channel,
                Recipient::Applicant,
                lang,
                content,
                failed.created_at,
                now,
            );
            d.expires_at = failed.expires_at;
            let stored = s.ports.deliveries.plan(&[d]).await?;
            // Planned now, or there already (sent, or failing too): either way, done.
            return Ok(stored.into_iter().next().map(|(d, new)| (d.channel, new)));
        }
        Ok(None)
    }
    .await;
    match planned {
        Ok(Some((channel, true))) => tracing::info!(
            delivery = %failed.id,
            fallback = channel.as_str(),
            "a required message goes by another channel"
        ),
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(delivery = %failed.id, error = %e, "no fallback channel could be planned")
        }
    }
}
