//! Ports of the identity capability: registries, the one account, audit, attempt limits.

use async_trait::async_trait;
use jiff::Timestamp;
use jiff::civil::Date;
use motcua_domain::identity::RegistryPerson;
use motcua_domain::ids::Sex;
use motcua_domain::{CitizenId, TaxCode};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::StoreResult;

/// Why a registry could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The registry has no such person / business.
    #[error("not found in the registry")]
    NotFound,
    /// Outage, timeout or open circuit: try again later.
    #[error("registry unavailable")]
    Unavailable { retry_after_secs: u64 },
    /// The registry refused our request (bad credentials, bad request): a configuration bug.
    #[error("registry refused the request: {0}")]
    Refused(String),
}

/// A business as the business registry knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryBusiness {
    pub name: String,
    /// Still operating (not dissolved / suspended).
    pub active: bool,
    /// Personal ID numbers of the legal representatives the registry names.
    #[serde(default)]
    pub representatives: Vec<String>,
}

/// The national population database (CSDLQG về dân cư).
#[async_trait]
pub trait PopulationRegistry: Send + Sync {
    async fn person(&self, id: &CitizenId) -> Result<RegistryPerson, RegistryError>;
}

/// The national business registration database.
#[async_trait]
pub trait BusinessRegistry: Send + Sync {
    async fn business(&self, tax_code: &TaxCode) -> Result<RegistryBusiness, RegistryError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    Citizen,
    Business,
}

impl AccountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::Citizen => "citizen",
            AccountKind::Business => "business",
        }
    }
}

/// Channels the account holder wants status messages on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelPreferences {
    pub sms: bool,
    pub email: bool,
    /// Zalo needs an explicit opt-in.
    pub zalo: bool,
    /// The language of status messages (Vietnamese unless asked otherwise).
    #[serde(default)]
    pub language: motcua_domain::Lang,
}

impl Default for ChannelPreferences {
    fn default() -> Self {
        ChannelPreferences {
            sms: true,
            email: true,
            zalo: false,
            language: motcua_domain::Lang::Vi,
        }
    }
}

/// The one account of a person or business. Keyed by a keyed hash of the ID number or tax
/// code; the number itself is not stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: Uuid,
    pub kind: AccountKind,
    /// Keyed hash (HMAC-SHA256) of the personal number or tax code.
    pub id_hash: String,
    /// Id of the key `id_hash` was made with (none: `k0`, the single key of earlier
    /// versions), so the key can rotate: records stay findable under their own key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_hash_kid: Option<String>,
    /// The owner reference, fixed when the account is made (see [`owner_ref_of`]); none in
    /// accounts of earlier versions, whose reference follows from `id_hash`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// 1: self-declared; 2: matched against the registry.
    pub assurance: u8,
    /// Verified name (person or business).
    pub name: String,
    pub birth_date: Option<Date>,
    pub sex: Option<Sex>,
    /// E.164.
    pub phone: Option<String>,
    pub email: Option<String>,
    pub preferences: ChannelPreferences,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: u64,
    /// Where stored encrypted: the personal fields above, sealed (envelope encryption);
    /// they are then empty in storage. `None` in memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
}

impl Account {
    /// Whose dossiers this account opens: for a registry-matched account, a reference
    /// derived from the keyed hash of the person's number (or the business's tax code), so
    /// that after an erasure the person's next account finds the same dossiers; `None`
    /// below level 2 (a self-declared number proves nothing about whose dossiers they are).
    pub fn owner_ref(&self) -> Option<String> {
        if self.assurance < 2 {
            return None;
        }
        // Accounts of earlier versions were all hashed with the owner key (`k0`).
        Some(
            self.owner
                .clone()
                .unwrap_or_else(|| owner_ref_of(self.kind, &self.id_hash)),
        )
    }
}

/// The owner reference of the person or business whose number hashes to `owner_hash`
/// under the owner key (the key set's key that never leaves it): stable across rotations
/// of the lookup key and across erasures of the account.
pub fn owner_ref_of(kind: AccountKind, owner_hash: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"motcua-owner\0");
    h.update(kind.as_str().as_bytes());
    h.update(b"\0");
    h.update(owner_hash.as_bytes());
    format!("{}:{}", kind.as_str(), hex::encode(&h.finalize()[..16]))
}

/// Token subjects whose access tokens no longer open anything (an erased account): every
/// function that checks tokens asks before it trusts a citizen's token, so an erased
/// account's tokens stop at once instead of at their expiry.
#[async_trait]
pub trait RevokedSubjects: Send + Sync {
    /// Revokes every token of `subject` until `until` (the longest a token lives).
    async fn revoke_subject(&self, subject: &str, until: Timestamp) -> StoreResult<()>;
    async fn subject_revoked(&self, subject: &str, now: Timestamp) -> StoreResult<bool>;
}

/// Accounts, one per keyed ID hash.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Stores `account` unless one with the same kind and `id_hash` exists; returns the
    /// stored account and whether it was created now. Two simultaneous first verifications
    /// of the same number create one account.
    async fn create_if_absent(&self, account: &Account) -> StoreResult<(Account, bool)>;
    async fn get(&self, id: Uuid) -> StoreResult<Option<Account>>;
    async fn get_by_id_hash(
        &self,
        kind: AccountKind,
        id_hash: &str,
    ) -> StoreResult<Option<Account>>;
    /// Replaces the account if its stored version is `account.version - 1` (`Conflict`
    /// otherwise).
    async fn update(&self, account: &Account) -> StoreResult<()>;
    /// Erases the account and its ID-hash key (a data-subject request, or a lower-level
    /// account being replaced); the key only while it still leads to this account, so a
    /// late erase never orphans a replacement. Unknown ids are ignored.
    async fn erase(&self, account: &Account) -> StoreResult<()>;
}

/// A data key for envelope encryption: used in plain, stored wrapped by the master key.
pub struct DataKey {
    pub plain: Vec<u8>,
    pub wrapped: Vec<u8>,
}

/// Master-key operations (KMS on AWS, a local key file in the embedded backend).
#[async_trait]
pub trait KeyVault: Send + Sync {
    async fn new_data_key(&self) -> StoreResult<DataKey>;
    async fn unwrap_data_key(&self, wrapped: &[u8]) -> StoreResult<Vec<u8>>;
}

/// One registry lookup, as the audit trail keeps it (append-only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: Uuid,
    pub at: Timestamp,
    /// Who asked: account subject, or the client for anonymous first verifications.
    pub actor: String,
    /// Why, e.g. `citizen-verification`.
    pub purpose: String,
    /// Keyed hash of the number looked up.
    pub id_hash: String,
    /// Id of the key of `id_hash`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// `match`, `mismatch`, `not-found`, `unavailable`, `cached-match`, …
    pub outcome: String,
}

#[async_trait]
pub trait AuditLog: Send + Sync {
    async fn append(&self, entry: &AuditEntry) -> StoreResult<()>;
    /// Newest first.
    async fn by_id_hash(&self, id_hash: &str, limit: u32) -> StoreResult<Vec<AuditEntry>>;
}

/// Failed attempts per key (an ID hash, a client), for lock-outs.
#[async_trait]
pub trait AttemptLimiter: Send + Sync {
    /// Counts an attempt of `key` at `at` before it is made; the handle lets a caller take
    /// it back ([`AttemptLimiter::release`]) when the attempt did not fail after all.
    async fn reserve(&self, key: &str, at: Timestamp) -> StoreResult<String>;
    /// Takes back the attempt `handle` of `key` (unknown handles are ignored).
    async fn release(&self, key: &str, handle: &str) -> StoreResult<()>;
    async fn record_failure(&self, key: &str, at: Timestamp) -> StoreResult<()> {
        self.reserve(key, at).await.map(|_| ())
    }
    /// The newest `max` failure times of `key` since `since`, oldest first (a limit of
    /// N needs no more than N + 1 of them, however many there are).
    async fn failures_since(
        &self,
        key: &str,
        since: Timestamp,
        max: usize,
    ) -> StoreResult<Vec<Timestamp>>;
    async fn clear(&self, key: &str) -> StoreResult<()>;
}

/// A refresh token as stored: by hash, in a family that rotation keeps together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshRecord {
    /// SHA-256 of the token; the token itself is never stored.
    pub token_hash: String,
    pub account_id: Uuid,
    /// All tokens descending from one sign-in; revoked together.
    pub family: Uuid,
    pub expires: Timestamp,
    /// A member's session of a business account: the grant it rests on (checked at every
    /// refresh; revoking the grant ends the session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<Uuid>,
    /// A legal representative's session of a business account. A business session that is
    /// neither (made before sessions said whose they were) is not renewed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub representative: bool,
}

/// What presenting a refresh token came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshUse {
    /// First use: the token is now spent; issue its successor.
    Fresh(RefreshRecord),
    /// Already spent, at `spent_at`: a client retrying a refresh whose answer it lost
    /// (within seconds), or someone replaying it (theft?) — then its family is revoked.
    Reused {
        record: RefreshRecord,
        spent_at: Timestamp,
    },
    NotFound,
}

/// Rotating, revocable refresh tokens.
#[async_trait]
pub trait RefreshTokenStore: Send + Sync {
    async fn put(&self, record: &RefreshRecord) -> StoreResult<()>;
    /// Marks the token spent at `now`, atomically: of two simultaneous uses one is `Fresh`.
    async fn spend(&self, token_hash: &str, now: Timestamp) -> StoreResult<RefreshUse>;
    async fn revoke_family(&self, family: Uuid) -> StoreResult<()>;
    async fn family_revoked(&self, family: Uuid) -> StoreResult<bool>;
    /// Whether the token is spent (`None`: unknown).
    async fn spent(&self, token_hash: &str) -> StoreResult<Option<bool>>;
    /// Uses up the one retry a spent token allows, atomically: `true` for the first call
    /// on a spent token, `false` afterwards (and for an unspent or unknown token).
    async fn claim_retry(&self, token_hash: &str) -> StoreResult<bool>;
}

/// A short-lived, single-use secret of a sign-in in progress: a code sent to the
/// registry's phone, the state of an e-ID login, a code the portal exchanges for tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// Random and unguessable; what the client holds.
    pub id: String,
    /// What the challenge is for (`sms-code`, …): a challenge of one purpose never
    /// answers for another.
    pub purpose: String,
    /// Keyed hash of the secret the client must show (empty when the id is the secret).
    pub secret_hash: String,
    /// What succeeding yields (kept until then; short-lived).
    pub payload: serde_json::Value,
    pub expires: Timestamp,
}

/// Challenges of sign-ins in progress.
#[async_trait]
pub trait ChallengeStore: Send + Sync {
    /// Stores a new challenge (`Duplicate` if the id exists).
    async fn put(&self, challenge: &Challenge) -> StoreResult<()>;
    /// The challenge, unless unknown, expired or consumed.
    async fn get(&self, id: &str, now: Timestamp) -> StoreResult<Option<Challenge>>;
    /// Removes the challenge; true for the one caller that removed it, so of two
    /// simultaneous uses only one succeeds.
    async fn consume(&self, id: &str, now: Timestamp) -> StoreResult<bool>;
}

/// Why a message could not be handed to the SMS channel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The channel is down or throttling: try again later.
    #[error("message channel unavailable: {0}")]
    Unavailable(String),
    /// The channel refused this message or number.
    #[error("message refused: {0}")]
    Refused(String),
}

/// Sends a one-time code by SMS, at once (never deferred by quiet hours).
#[async_trait]
pub trait CodeSender: Send + Sync {
    /// `phone` is E.164; `text` is the whole message.
    async fn send_code(&self, phone: &str, text: &str) -> Result<(), SendError>;
}

/// Access to a business account given by its legal representative to a person, named by
/// the keyed hash of their personal number (so the grant holds before the person ever
/// signed in, survives their account's erasure, and reveals nobody's account).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusinessGrant {
    pub id: Uuid,
    pub business_id: Uuid,
    /// The member: their owner reference (`member_kid` = `owner`), or, in grants of earlier
    /// versions, the keyed hash of their personal number.
    pub member_hash: String,
    /// Id of the key of `member_hash` (`owner` for an owner reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_kid: Option<String>,
    /// Account id of the representative who granted it.
    pub granted_by: Uuid,
    pub granted_at: Timestamp,
}

/// Who may act for a business besides its legal representatives.
#[async_trait]
pub trait BusinessGrants: Send + Sync {
    /// Stores the grant unless the member already has one for this business; returns the
    /// stored grant and whether it is new.
    async fn grant(&self, grant: &BusinessGrant) -> StoreResult<(BusinessGrant, bool)>;
    async fn find(
        &self,
        business_id: Uuid,
        member_hash: &str,
    ) -> StoreResult<Option<BusinessGrant>>;
    /// Oldest first.
    async fn list(&self, business_id: Uuid) -> StoreResult<Vec<BusinessGrant>>;
    /// Removes the grant `id` of the business; false if there was none.
    async fn revoke(&self, business_id: Uuid, id: Uuid) -> StoreResult<bool>;
}

/// Everything the identity capability stores.
#[derive(Clone)]
pub struct IdentityPorts {
    pub accounts: std::sync::Arc<dyn AccountStore>,
    pub revoked: std::sync::Arc<dyn RevokedSubjects>,
    pub audit: std::sync::Arc<dyn AuditLog>,
    pub attempts: std::sync::Arc<dyn AttemptLimiter>,
    pub refresh: std::sync::Arc<dyn RefreshTokenStore>,
    pub challenges: std::sync::Arc<dyn ChallengeStore>,
    pub grants: std::sync::Arc<dyn BusinessGrants>,
}
