//! The versioned event envelope recorded in the outbox with every change.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::dossier::{Dossier, HistoryEntry};

/// `{id, type, occurred_at, subject, data}`; consumers dedupe on `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEnvelope {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u32,
    pub occurred_at: Timestamp,
    /// The dossier id the event is about.
    pub subject: String,
    pub data: Value,
}

impl EventEnvelope {
    /// The event of one dossier change. It carries codes and dates, never contact data:
    /// a consumer that needs the phone number reads it from the dossier.
    pub fn dossier(d: &Dossier, h: &HistoryEntry) -> EventEnvelope {
        EventEnvelope {
            id: Uuid::now_v7(),
            kind: format!("dossier.{}", h.action),
            version: 1,
            occurred_at: h.at,
            subject: d.id.to_string(),
            data: json!({
                "dossier_code": d.code,
                "procedure_code": d.procedure_code,
                "agency": d.agency,
                "from_status": h.from.map(|s| s.code()),
                "to_status": h.to.code(),
                "due_date": d.due_date,
                "version": d.version,
                "actor_role": h.actor_role,
            }),
        }
    }
}
