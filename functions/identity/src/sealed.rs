//! Accounts encrypted at rest: the personal fields (name, birth date, sex, phone, email) are
//! sealed with a per-account data key (AES-256-GCM), itself wrapped by the master key of a
//! [`KeyVault`]. The store sees only the sealed blob.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jiff::civil::Date;
use motcua_domain::ids::Sex;
use motcua_ports::identity::{
    Account, AccountKind, AccountStore, Challenge, ChallengeStore, DataKey, KeyVault,
};
use motcua_ports::{StoreError, StoreResult};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

fn crypto_err(what: &str) -> StoreError {
    StoreError::Backend(format!("account encryption: {what}"))
}

/// `nonce || ciphertext+tag` of `plain` under `key`, bound to `aad`.
fn seal(key: &[u8], aad: &[u8], plain: &[u8]) -> StoreResult<Vec<u8>> {
    let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).map_err(|_| crypto_err("key"))?);
    let mut nonce = [0u8; 12];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| crypto_err("rng"))?;
    let mut buf = plain.to_vec();
    k.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut buf,
    )
    .map_err(|_| crypto_err("seal"))?;
    let mut out = nonce.to_vec();
    out.extend(buf);
    Ok(out)
}

fn open(key: &[u8], aad: &[u8], sealed: &[u8]) -> StoreResult<Vec<u8>> {
    if sealed.len() < 12 + 16 {
        return Err(crypto_err("short"));
    }
    let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).map_err(|_| crypto_err("key"))?);
    let nonce = Nonce::try_assume_unique_for_key(&sealed[..12]).map_err(|_| crypto_err("nonce"))?;
    let mut buf = sealed[12..].to_vec();
    let plain = k
        .open_in_place(nonce, Aad::from(aad), &mut buf)
        .map_err(|_| crypto_err("tampered or wrong key"))?;
    Ok(plain.to_vec())
}

/// The master key in a local file (embedded backend, local runs).
pub struct LocalKeyVault {
    master: Vec<u8>,
}

impl LocalKeyVault {
    pub fn new(master: Vec<u8>) -> Result<LocalKeyVault, String> {
        if master.len() != 32 {
            return Err("the account master key must be 32 bytes".into());
        }
        Ok(LocalKeyVault { master })
    }
}

#[async_trait]
impl KeyVault for LocalKeyVault {
    async fn new_data_key(&self) -> StoreResult<DataKey> {
        let mut plain = vec![0u8; 32];
        SystemRandom::new()
            .fill(&mut plain)
            .map_err(|_| crypto_err("rng"))?;
        let wrapped = seal(&self.master, b"motcua-data-key", &plain)?;
        Ok(DataKey { plain, wrapped })
    }

    async fn unwrap_data_key(&self, wrapped: &[u8]) -> StoreResult<Vec<u8>> {
        open(&self.master, b"motcua-data-key", wrapped)
    }
}

/// `plain` sealed under a fresh data key of `vault`, bound to `aad`, as base64 of
/// `len(wrapped key) || wrapped key || nonce || ciphertext+tag`.
async fn seal_blob(vault: &dyn KeyVault, aad: &[u8], plain: &[u8]) -> StoreResult<String> {
    let key = vault.new_data_key().await?;
    let ct = seal(&key.plain, aad, plain)?;
    let wrapped_len = u16::try_from(key.wrapped.len()).map_err(|_| crypto_err("key size"))?;
    let mut blob = wrapped_len.to_be_bytes().to_vec();
    blob.extend(&key.wrapped);
    blob.extend(ct);
    Ok(STANDARD.encode(blob))
}

async fn open_blob(vault: &dyn KeyVault, aad: &[u8], sealed: &str) -> StoreResult<Vec<u8>> {
    let blob = STANDARD.decode(sealed).map_err(|_| crypto_err("blob"))?;
    if blob.len() < 2 {
        return Err(crypto_err("blob"));
    }
    let n = usize::from(u16::from_be_bytes([blob[0], blob[1]]));
    let (wrapped, ct) = blob[2..].split_at(n.min(blob.len() - 2));
    let key = vault.unwrap_data_key(wrapped).await?;
    open(&key, aad, ct)
}

#[derive(Serialize, Deserialize)]
struct Personal {
    name: String,
    birth_date: Option<Date>,
    sex: Option<Sex>,
    phone: Option<String>,
    email: Option<String>,
}

/// Marks blobs bound to the account's id, kind, keyed number and level.
const SEAL_V2: &str = "v2.";

/// An [`AccountStore`] that seals personal fields before they reach `inner`.
pub struct SealedAccounts {
    inner: Arc<dyn AccountStore>,
    vault: Arc<dyn KeyVault>,
}

impl SealedAccounts {
    pub fn new(inner: Arc<dyn AccountStore>, vault: Arc<dyn KeyVault>) -> SealedAccounts {
        SealedAccounts { inner, vault }
    }

    /// What a sealed blob is bound to: the account's id, kind, keyed number and assurance
    /// level, so a blob moved to another account, or an account whose level someone with
    /// write access to the store raised, does not open.
    fn aad(a: &Account) -> Vec<u8> {
        format!(
            "account:v2:{}:{}:{}:{}",
            a.id,
            a.kind.as_str(),
            a.id_hash,
            a.assurance
        )
        .into_bytes()
    }

    async fn seal(&self, a: &Account) -> StoreResult<Account> {
        let personal = Personal {
            name: a.name.clone(),
            birth_date: a.birth_date,
            sex: a.sex,
            phone: a.phone.clone(),
            email: a.email.clone(),
        };
        let plain = serde_json::to_vec(&personal).map_err(|e| crypto_err(&e.to_string()))?;
        let blob = format!(
            "{SEAL_V2}{}",
            seal_blob(self.vault.as_ref(), &Self::aad(a), &plain).await?
        );
        Ok(Account {
            name: String::new(),
            birth_date: None,
            sex: None,
            phone: None,
            email: None,
            sealed: Some(blob),
            ..a.clone()
        })
    }

    async fn open(&self, a: Account) -> StoreResult<Account> {
        let Some(sealed) = &a.sealed else {
            return Ok(a);
        };
        let plain = match sealed.strip_prefix(SEAL_V2) {
            Some(blob) => open_blob(self.vault.as_ref(), &Self::aad(&a), blob).await?,
            // Sealed by an older version, bound to the id only: sealed anew, with the
            // fields bound, at the account's next update.
            None => open_blob(self.vault.as_ref(), a.id.as_bytes(), sealed).await?,
        };
        let p: Personal = serde_json::from_slice(&plain).map_err(|e| crypto_err(&e.to_string()))?;
        Ok(Account {
            name: p.name,
            birth_date: p.birth_date,
            sex: p.sex,
            phone: p.phone,
            email: p.email,
            sealed: None,
            ..a
        })
    }
}

#[async_trait]
impl AccountStore for SealedAccounts {
    async fn create_if_absent(&self, a: &Account) -> StoreResult<(Account, bool)> {
        let (stored, created) = self.inner.create_if_absent(&self.seal(a).await?).await?;
        Ok((self.open(stored).await?, created))
    }

    async fn get(&self, id: Uuid) -> StoreResult<Option<Account>> {
        match self.inner.get(id).await? {
            Some(a) => Ok(Some(self.open(a).await?)),
            None => Ok(None),
        }
    }

    async fn get_by_id_hash(
        &self,
        kind: AccountKind,
        id_hash: &str,
    ) -> StoreResult<Option<Account>> {
        match self.inner.get_by_id_hash(kind, id_hash).await? {
            Some(a) => Ok(Some(self.open(a).await?)),
            None => Ok(None),
        }
    }

    async fn update(&self, a: &Account) -> StoreResult<()> {
        self.inner.update(&self.seal(a).await?).await
    }

    async fn erase(&self, a: &Account) -> StoreResult<()> {
        self.inner.erase(a).await
    }
}

/// The identity ports with every store of personal data sealed under `vault`: accounts
/// and the challenges of sign-ins in progress.
pub fn sealed_ports(
    mut ports: motcua_ports::identity::IdentityPorts,
    vault: Arc<dyn KeyVault>,
) -> motcua_ports::identity::IdentityPorts {
    ports.accounts = Arc::new(SealedAccounts::new(ports.accounts.clone(), vault.clone()));
    ports.challenges = Arc::new(SealedChallenges::new(ports.challenges.clone(), vault));
    ports
}

/// A [`ChallengeStore`] that seals the payloads carrying personal data — an SMS-code
/// sign-in's registry answer — before they reach `inner`, bound to the challenge id and its
/// purpose. Others (an e-ID login's state, a portal code's account id) hold none and are
/// kept as they are: sealing costs a KMS call, and `/v1/identity/login` is public.
pub struct SealedChallenges {
    inner: Arc<dyn ChallengeStore>,
    vault: Arc<dyn KeyVault>,
}

impl SealedChallenges {
    pub fn new(inner: Arc<dyn ChallengeStore>, vault: Arc<dyn KeyVault>) -> SealedChallenges {
        SealedChallenges { inner, vault }
    }

    fn aad(c: &Challenge) -> Vec<u8> {
        format!("challenge:{}:{}", c.purpose, c.id).into_bytes()
    }

    /// Purposes whose payloads hold personal data.
    fn personal(purpose: &str) -> bool {
        purpose == "sms-code"
    }
}

#[async_trait]
impl ChallengeStore for SealedChallenges {
    async fn put(&self, c: &Challenge) -> StoreResult<()> {
        if !Self::personal(&c.purpose) {
            return self.inner.put(c).await;
        }
        let plain = serde_json::to_vec(&c.payload).map_err(|e| crypto_err(&e.to_string()))?;
        let blob = seal_blob(self.vault.as_ref(), &Self::aad(c), &plain).await?;
        self.inner
            .put(&Challenge {
                payload: serde_json::json!({ "sealed": blob }),
                ..c.clone()
            })
            .await
    }

    async fn get(&self, id: &str, now: jiff::Timestamp) -> StoreResult<Option<Challenge>> {
        let Some(c) = self.inner.get(id, now).await? else {
            return Ok(None);
        };
        if !Self::personal(&c.purpose) {
            return Ok(Some(c));
        }
        let blob = c.payload["sealed"]
            .as_str()
            .ok_or_else(|| crypto_err("challenge not sealed"))?;
        let plain = open_blob(self.vault.as_ref(), &Self::aad(&c), blob).await?;
        let payload = serde_json::from_slice(&plain).map_err(|e| crypto_err(&e.to_string()))?;
        Ok(Some(Challenge { payload, ..c }))
    }

    async fn consume(&self, id: &str, now: jiff::Timestamp) -> StoreResult<bool> {
        self.inner.consume(id, now).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use motcua_embedded::EmbeddedStore;
    use motcua_ports::identity::IdentityPorts;

    fn vault() -> Arc<dyn KeyVault> {
        Arc::new(LocalKeyVault::new(vec![5u8; 32]).unwrap())
    }

    async fn fresh() -> IdentityPorts {
        let dir = std::env::temp_dir().join(format!("motcua-sealed-{}", Uuid::now_v7()));
        sealed_ports(EmbeddedStore::open(&dir).unwrap().identity_ports(), vault())
    }

    motcua_ports::identity_contract_tests!(fresh());

    #[tokio::test]
    async fn the_store_sees_no_personal_data() {
        let dir = std::env::temp_dir().join(format!("motcua-sealed-{}", Uuid::now_v7()));
        let raw = EmbeddedStore::open(&dir).unwrap().identity_ports();
        let sealed = SealedAccounts::new(raw.accounts.clone(), vault());
        let a = motcua_ports::identity_contract::account("h");
        sealed.create_if_absent(&a).await.unwrap();
        let stored = raw.accounts.get(a.id).await.unwrap().unwrap();
        assert_eq!(stored.name, "");
        assert_eq!(stored.phone, None);
        assert_eq!(stored.birth_date, None);
        assert!(stored.sealed.is_some());
        // Neither the database nor its write-ahead log holds the name or the phone.
        let mut bytes = std::fs::read(dir.join(motcua_embedded::DB_FILE)).unwrap();
        bytes.extend(
            std::fs::read(dir.join(format!("{}-wal", motcua_embedded::DB_FILE)))
                .unwrap_or_default(),
        );
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            text.contains("\"id_hash\":\"h\""),
            "the account is in the files read"
        );
        assert!(!text.contains("Nguyễn") && !text.contains("+84912345678"));
        assert_eq!(sealed.get(a.id).await.unwrap(), Some(a.clone()));
        // Another master key cannot open it.
        let other = SealedAccounts::new(
            raw.accounts.clone(),
            Arc::new(LocalKeyVault::new(vec![6u8; 32]).unwrap()),
        );
        assert!(other.get(a.id).await.is_err());
    }

    #[tokio::test]
    async fn a_level_raised_in_the_store_does_not_open() {
        let dir = std::env::temp_dir().join(format!("motcua-sealed-{}", Uuid::now_v7()));
        let raw = EmbeddedStore::open(&dir).unwrap().identity_ports();
        let sealed = SealedAccounts::new(raw.accounts.clone(), vault());
        let mut a = motcua_ports::identity_contract::account("h-level");
        a.assurance = 1;
        sealed.create_if_absent(&a).await.unwrap();
        assert_eq!(sealed.get(a.id).await.unwrap().unwrap().assurance, 1);
        // Someone with write access to the store raises the level (or changes the kind).
        let mut stored = raw.accounts.get(a.id).await.unwrap().unwrap();
        stored.assurance = 2;
        stored.version += 1;
        raw.accounts.update(&stored).await.unwrap();
        assert!(
            sealed.get(a.id).await.is_err(),
            "a tampered level must not pass for a registry-matched account"
        );
        let mut stored = raw.accounts.get(a.id).await.unwrap().unwrap();
        stored.assurance = 1;
        stored.kind = AccountKind::Business;
        stored.version += 1;
        raw.accounts.update(&stored).await.unwrap();
        assert!(sealed.get(a.id).await.is_err());
    }

    #[tokio::test]
    async fn challenge_payloads_are_sealed_and_bound_to_their_challenge() {
        let dir = std::env::temp_dir().join(format!("motcua-sealed-{}", Uuid::now_v7()));
        let raw = EmbeddedStore::open(&dir).unwrap().identity_ports();
        let sealed = SealedChallenges::new(raw.challenges.clone(), vault());
        let now = jiff::Timestamp::now();
        let c = Challenge {
            id: "ch-1".into(),
            purpose: "sms-code".into(),
            secret_hash: "h".into(),
            payload: serde_json::json!({"person": {"full_name": "Nguyễn Thị Lan", "phone": "+84912345678"}}),
            expires: jiff::Timestamp::from_second(now.as_second() + 300).unwrap(),
        };
        sealed.put(&c).await.unwrap();
        let stored = raw.challenges.get("ch-1", now).await.unwrap().unwrap();
        let text = stored.payload.to_string();
        assert!(
            !text.contains("Nguyễn") && !text.contains("+84912345678"),
            "{text}"
        );
        assert_eq!(sealed.get("ch-1", now).await.unwrap(), Some(c.clone()));
        // The sealed payload moved to another challenge does not open.
        let moved = Challenge {
            id: "ch-2".into(),
            ..stored
        };
        raw.challenges.put(&moved).await.unwrap();
        assert!(sealed.get("ch-2", now).await.is_err());
        assert!(sealed.consume("ch-1", now).await.unwrap());
        assert_eq!(sealed.get("ch-1", now).await.unwrap(), None);
        // A challenge without personal data is kept as it is (no KMS call per e-ID login).
        let login = Challenge {
            id: "login-1".into(),
            purpose: "eid-login".into(),
            payload: serde_json::json!({"nonce": "n"}),
            ..c.clone()
        };
        sealed.put(&login).await.unwrap();
        assert_eq!(
            raw.challenges.get("login-1", now).await.unwrap(),
            Some(login.clone())
        );
        assert_eq!(sealed.get("login-1", now).await.unwrap(), Some(login));
    }
}
