//! How a dossier reached the agency (channel 1 in person, 2 online, 3 postal) and the
//! registration of paper dossiers at the one-stop desk.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::calendar::WorkingCalendar;
use crate::catalogue::{Procedure, SubmittedDocument};
use crate::dossier::{Actor, Applicant, Dossier, HistoryEntry, LookupKey, NewDossier, Role};
use crate::dossier::{Status, TransitionError};
use crate::ids::DossierCode;

/// The channel a dossier came by.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum IntakeChannel {
    /// Submitted on the portal (national code 2).
    #[default]
    Online,
    /// Handed in at the one-stop desk (national code 1).
    Counter,
    /// Sent by post (national code 3).
    Postal,
}

impl IntakeChannel {
    pub const ALL: [IntakeChannel; 3] = [
        IntakeChannel::Online,
        IntakeChannel::Counter,
        IntakeChannel::Postal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IntakeChannel::Online => "online",
            IntakeChannel::Counter => "counter",
            IntakeChannel::Postal => "postal",
        }
    }

    /// The national portal's code.
    pub fn code(self) -> u8 {
        match self {
            IntakeChannel::Counter => 1,
            IntakeChannel::Online => 2,
            IntakeChannel::Postal => 3,
        }
    }
}

/// A paper dossier as the officer typed it in, already validated against its procedure.
pub struct CounterDossier {
    pub id: Uuid,
    pub code: DossierCode,
    pub lookup_key: LookupKey,
    /// Filed under the person's owner reference (from the keyed hash of their number), so
    /// they see it when they sign in; the phone the applicant gave on the form.
    pub applicant: Applicant,
    pub form: BTreeMap<String, Value>,
    /// Scans (uploads, digitised at intake) and paper-only components.
    pub documents: Vec<SubmittedDocument>,
    pub channel: IntakeChannel,
}

impl Dossier {
    /// A paper dossier registered by an officer of the procedure's agency: received at
    /// once (status 2, receipt with its due date), one history entry `receive` by the
    /// officer. Paper dossiers handed in or posted after 17:00 (15:00 for post forwarded
    /// from elsewhere is the agency's own practice) start counting on the next working day,
    /// as [`WorkingCalendar::clock_start`] says.
    pub fn register_at_counter(
        procedure: &Procedure,
        officer: &Actor,
        new: CounterDossier,
        now: Timestamp,
        cal: &WorkingCalendar,
    ) -> Result<(Dossier, HistoryEntry), TransitionError> {
        if officer.role != Role::Officer {
            return Err(TransitionError::WrongRole {
                action: "register",
                role: officer.role,
            });
        }
        if officer.agency.as_ref() != Some(&procedure.agency) {
            return Err(TransitionError::OtherAgency);
        }
        let (mut d, _) = Dossier::submit(
            procedure,
            NewDossier {
                id: new.id,
                code: new.code,
                lookup_key: new.lookup_key,
                applicant: new.applicant,
                form: new.form,
                documents: new.documents,
                submitted_at: now,
            },
        );
        d.channel = new.channel;
        d.status = Status::Received;
        d.received_at = Some(now);
        let start = cal.clock_start(now);
        d.clock_started_on = Some(start);
        d.due_date = Some(cal.add_working_days(start, d.processing_days));
        let h = HistoryEntry {
            seq: 1,
            at: now,
            actor_role: Role::Officer,
            actor: officer.subject.clone(),
            action: "receive".into(),
            from: None,
            to: Status::Received,
            note: Some(format!("channel {}", d.channel.as_str())),
        };
        Ok((d, h))
    }
}
