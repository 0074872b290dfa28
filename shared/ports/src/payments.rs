//! Payments: the records ([`PaymentStore`]) and the providers ([`PaymentProvider`]).
//!
//! A payment's success is written with the dossier's fee state, its history entry and its
//! outbox event in one transaction ([`PaymentStore::settle`]), so the money and the dossier
//! never disagree and the event is never lost or doubled.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;
use jiff::civil::Date;
use motcua_domain::payment::{Payment, Provider, ProviderReport, Refund};
use motcua_domain::{Dossier, EventEnvelope, HistoryEntry};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::StoreResult;

/// At most this many payments are listed for one dossier.
pub const PER_DOSSIER: u32 = 100;

#[async_trait]
pub trait PaymentStore: Send + Sync {
    /// Records a new open payment. `Duplicate` when the fee already has an open payment
    /// (find it with [`PaymentStore::open_for`]) or the id is taken.
    async fn open(&self, p: &Payment) -> StoreResult<()>;

    /// The open payment of a dossier's fee, if any.
    async fn open_for(&self, dossier: Uuid, fee_key: u64) -> StoreResult<Option<Payment>>;

    async fn get(&self, id: Uuid) -> StoreResult<Option<Payment>>;

    /// A dossier's payments, oldest first, at most [`PER_DOSSIER`].
    async fn for_dossier(&self, dossier: Uuid) -> StoreResult<Vec<Payment>>;

    /// Replaces the payment if its stored version is `p.version - 1` (`Conflict`
    /// otherwise); a payment no longer open frees its fee for another.
    async fn update(&self, p: &Payment) -> StoreResult<()>;

    /// [`PaymentStore::update`], with the dossier's change (conditioned on its version)
    /// and an outbox event, atomically. `dossier` is `None` when only the payment changes.
    async fn settle(
        &self,
        p: &Payment,
        dossier: Option<(&Dossier, &HistoryEntry)>,
        event: &EventEnvelope,
    ) -> StoreResult<()>;

    /// Open payments created before `before`, oldest first, at most `limit`: what the
    /// reconciliation job asks the providers about.
    async fn open_before(&self, before: Timestamp, limit: u32) -> StoreResult<Vec<Payment>>;

    /// Payments created on `day` (Vietnam time) after `after` (an id from a previous call),
    /// at most `limit`, in creation order: the daily report's input.
    async fn created_on(
        &self,
        day: Date,
        after: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<Payment>>;

    /// Stores the reconciliation report of a day, replacing an earlier one.
    async fn put_report(&self, report: &ReconciliationReport) -> StoreResult<()>;

    async fn report(&self, day: Date) -> StoreResult<Option<ReconciliationReport>>;
}

/// A day's comparison of our records with the providers'.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReconciliationReport {
    #[schema(value_type = String, format = Date)]
    pub day: Date,
    #[schema(value_type = String, format = DateTime)]
    pub made_at: Timestamp,
    /// Payments compared, per provider.
    pub compared: BTreeMap<String, u32>,
    pub mismatches: Vec<Mismatch>,
    /// Payments the providers could not be asked about (unreachable): compare again.
    pub unchecked: Vec<Uuid>,
}

/// One payment on which we and the provider disagree, or that needs an officer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Mismatch {
    pub payment: Uuid,
    pub dossier_code: String,
    pub provider: Provider,
    /// Our status.
    pub ours: String,
    /// The provider's outcome (`paid`, `failed`, `cancelled`, `pending`, `unknown`).
    pub theirs: String,
    #[schema(value_type = u64)]
    pub amount: u64,
    /// The provider's amount where it differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub their_amount: Option<u64>,
    /// What it is: `paid_not_recorded`, `recorded_not_paid`, `amount_differs`,
    /// `refund_due`, `refund_unconfirmed`.
    pub kind: String,
}

/// What the provider needs to start a payment.
pub struct CheckoutRequest<'a> {
    pub payment: &'a Payment,
    /// The payer's address as our own proxies saw it.
    pub client_ip: &'a str,
    /// Where the provider sends the payer's browser back (it only shows the status).
    pub return_url: &'a str,
    /// Where the provider calls us (VNPay's is set at VNPay; MoMo's is sent).
    pub ipn_url: &'a str,
    pub now: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    pub redirect_url: String,
}

/// A refund to ask of the provider.
pub struct RefundRequest<'a> {
    pub payment: &'a Payment,
    pub refund: &'a Refund,
    pub client_ip: &'a str,
    pub now: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundAnswer {
    pub done: bool,
    pub code: String,
    pub provider_reference: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The provider said no (its code): asking again will not help.
    #[error("refused by the provider: {0}")]
    Refused(String),
    /// Unreachable, timed out, 5xx: ask again later.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// An answer that is not signed as the provider signs, or not understood: not trusted.
    #[error("untrusted answer: {0}")]
    Untrusted(String),
}

/// A callback as it arrived.
pub struct CallbackRequest<'a> {
    /// The raw query string (VNPay's GET IPN).
    pub query: &'a str,
    /// The raw body (VNPay's POST IPN as a form, MoMo's JSON).
    pub body: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// Not the provider's format, missing fields, too big.
    #[error("malformed callback")]
    Malformed,
    /// The signature does not match the signed fields.
    #[error("bad signature")]
    BadSignature,
}

/// One payment provider.
#[async_trait]
pub trait PaymentProvider: Send + Sync {
    fn provider(&self) -> Provider;

    /// Starts the payment: where to send the payer.
    async fn checkout(&self, r: &CheckoutRequest<'_>) -> Result<Checkout, ProviderError>;

    /// Verifies a callback's signature over exactly the fields the provider signs and
    /// reads it. Pure and fast: no I/O.
    fn verify_callback(&self, r: &CallbackRequest<'_>) -> Result<ProviderReport, CallbackError>;

    /// Asks the provider about a payment; the answer's own signature is verified.
    async fn query(&self, p: &Payment, now: Timestamp) -> Result<ProviderReport, ProviderError>;

    async fn refund(&self, r: &RefundRequest<'_>) -> Result<RefundAnswer, ProviderError>;
}

/// The configured providers, by name.
#[derive(Clone, Default)]
pub struct Providers(BTreeMap<&'static str, Arc<dyn PaymentProvider>>);

impl Providers {
    pub fn with(mut self, p: Arc<dyn PaymentProvider>) -> Providers {
        self.0.insert(p.provider().as_str(), p);
        self
    }

    pub fn get(&self, p: Provider) -> Option<&Arc<dyn PaymentProvider>> {
        self.0.get(p.as_str())
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0.keys().copied()
    }
}

/// Everything the payments function needs.
#[derive(Clone)]
pub struct PaymentPorts {
    pub payments: Arc<dyn PaymentStore>,
    pub providers: Providers,
}
