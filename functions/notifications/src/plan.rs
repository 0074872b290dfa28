//! From a dossier event to its deliveries: which channels, which words, when.
//!
//! Idempotent on the event: each delivery's key is `<event id>/<channel>/applicant`, so a
//! redelivered event plans nothing new (and what was planned stays as it is).

use jiff::Timestamp;
use motcua_domain::notify::{Channel, DeliveryStatus, Topic};
use motcua_domain::templates::{self, Content, Facts};
use motcua_domain::{Dossier, EventEnvelope, Lang};
use motcua_ports::StoreError;
use motcua_ports::notifications::{Delivery, Recipient};
use uuid::Uuid;

use crate::{NotifyState, reach};

/// What became of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intake {
    /// Deliveries planned now (those planned by an earlier delivery of the event are not
    /// counted).
    Planned { new: usize, existing: usize },
    /// Nothing to tell: an event nobody is told about, an unknown dossier, nobody to reach.
    Ignored(&'static str),
}

/// Worth retrying: a store did not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Retry(pub String);

impl From<StoreError> for Retry {
    fn from(e: StoreError) -> Self {
        Retry(e.to_string())
    }
}

/// What a message says about `d`, as of the event.
pub(crate) async fn facts(
    s: &NotifyState,
    d: &Dossier,
    e: Option<&EventEnvelope>,
) -> Result<Facts, StoreError> {
    let version = e
        .and_then(|e| e.data.get("version"))
        .and_then(|v| v.as_u64());
    // The officer's reason is the note of the history entry the event recorded.
    let reason = match version {
        Some(v) => s
            .dossiers
            .history(d.id)
            .await?
            .into_iter()
            .find(|h| h.seq == v)
            .and_then(|h| h.note),
        None => None,
    };
    let due_date = e
        .and_then(|e| e.data.get("due_date"))
        .and_then(|v| v.as_str())
        .and_then(|s| s.parse().ok())
        .or(d.due_date);
    let agency_name = s
        .catalogue
        .procedure(&d.procedure_code)
        .await?
        .map(|p| p.agency_name)
        .unwrap_or_default();
    Ok(Facts {
        dossier_code: d.code.as_str().to_owned(),
        procedure_name: d.procedure_name.clone(),
        agency_name,
        due_date,
        reason,
        missing_items: d.missing_items.clone(),
        amount: d.amount_due.or(Some(d.fee)).filter(|m| !m.is_zero()),
        link: s.config.dossier_link(d.code.as_str()),
    })
}

/// The message of `topic` on `channel`; `None` if this channel has nothing to send it
/// with (no approved Zalo template, an SMS budget of no parts).
pub(crate) fn render(
    s: &NotifyState,
    topic: Topic,
    channel: Channel,
    lang: Lang,
    f: &Facts,
) -> Option<Content> {
    match channel {
        Channel::Sms => {
            templates::sms(topic, lang, f, s.config.sms).map(|text| Content::Sms { text })
        }
        Channel::Email => Some(templates::email(topic, lang, f)),
        Channel::Zalo => s
            .config
            .zalo_templates
            .get(&topic)
            .map(|id| templates::zalo(topic, f, id)),
    }
}

/// A new delivery made at `now`, queued, or deferred to the end of the quiet hours, or
/// already expired when the event came too late.
#[allow(clippy::too_many_arguments)]
pub(crate) fn new_delivery(
    s: &NotifyState,
    key: String,
    event_id: Option<Uuid>,
    dossier_id: Option<Uuid>,
    topic: Topic,
    channel: Channel,
    recipient: Recipient,
    lang: Lang,
    content: Content,
    made_at: Timestamp,
    now: Timestamp,
) -> Delivery {
    let expires_at = made_at
        .checked_add(s.config.retry.validity)
        .unwrap_or(made_at);
    let release = if topic.urgent() {
        now
    } else {
        s.config.quiet.release(now)
    };
    let (status, reason) = if now >= expires_at {
        (
            DeliveryStatus::Expired,
            Some("the event came after the message's validity".to_owned()),
        )
    } else if release > now {
        (DeliveryStatus::Deferred, None)
    } else {
        (DeliveryStatus::Queued, None)
    };
    Delivery {
        id: Uuid::now_v7(),
        key,
        event_id,
        dossier_id,
        topic,
        channel,
        recipient,
        masked_to: None,
        lang,
        content,
        mandatory: topic.mandatory(),
        status,
        reason,
        attempts: 0,
        provider: None,
        provider_id: None,
        created_at: now,
        due_at: release,
        expires_at,
        updated_at: now,
        version: 1,
    }
}

/// Plans the messages of one event.
pub async fn intake(s: &NotifyState, e: &EventEnvelope) -> Result<Intake, Retry> {
    let Some(topic) = Topic::of_event(&e.kind) else {
        return Ok(Intake::Ignored("no message for this event"));
    };
    let Ok(dossier_id) = Uuid::parse_str(&e.subject) else {
        return Ok(Intake::Ignored("the event names no dossier"));
    };
    let Some(d) = s.dossiers.get(dossier_id).await? else {
        tracing::warn!(event = %e.id, "an event of an unknown dossier: dropped");
        return Ok(Intake::Ignored("unknown dossier"));
    };
    let (reach, lang) = reach::applicant(s, &d, topic).await?;
    let channels = reach.channels(topic);
    if channels.is_empty() {
        return Ok(Intake::Ignored("nobody to reach"));
    }
    let now = s.clock.now();
    // Courtesy messages are capped per applicant and day, counted before they are made.
    if !topic.mandatory() {
        let day = motcua_domain::calendar::local_date(now);
        let period = i64::from(day.year()) * 1000 + i64::from(day.day_of_year());
        let bucket = format!("courtesy:{}", d.applicant.subject);
        if !s
            .ports
            .rate
            .take_in(&bucket, period, s.config.courtesy_per_day)
            .await?
        {
            tracing::warn!(event = %e.id, "the applicant's courtesy messages for today are used up");
            return Ok(Intake::Ignored("daily limit of courtesy messages"));
        }
    }
    let f = facts(s, &d, Some(e)).await?;
    let event = e.id.to_string();
    let deliveries: Vec<Delivery> = channels
        .into_iter()
        .filter_map(|c| {
            let content = render(s, topic, c, lang, &f)?;
            Some(new_delivery(
                s,
                Delivery::key_of(&event, c, &Recipient::Applicant),
                Some(e.id),
                Some(d.id),
                topic,
                c,
                Recipient::Applicant,
                lang,
                content,
                e.occurred_at,
                now,
            ))
        })
        .collect();
    let planned = s.ports.deliveries.plan(&deliveries).await?;
    let new = planned.iter().filter(|(_, n)| *n).count();
    Ok(Intake::Planned {
        new,
        existing: planned.len() - new,
    })
}
