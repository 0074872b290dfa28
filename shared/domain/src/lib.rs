//! motcua's domain: pure rules and types, no I/O, no async, no AWS.
//!
//! Facts come from the team's DOMAIN.md: identifier formats, the national dossier statuses,
//! the working-day calendar, procedure catalogue and forms.

pub mod bounds;
pub mod calendar;
pub mod catalogue;
pub mod dossier;
pub mod events;
pub mod fees;
pub mod files;
pub mod i18n;
pub mod identity;
pub mod ids;
pub mod intake;
pub mod kpi;
pub mod lunar;
pub mod money;
pub mod notify;
pub mod payment;
pub mod refund;
pub mod sms;
pub mod templates;
pub mod upload;

pub use calendar::WorkingCalendar;
pub use catalogue::{DocumentSource, Procedure, SubmittedDocument};
pub use dossier::{Actor, Command, Dossier, HistoryEntry, Role, Status};
pub use events::EventEnvelope;
pub use i18n::{Lang, Localized};
pub use ids::{AgencyCode, CitizenId, DossierCode, PhoneNumber, TaxCode};
pub use money::Money;
