//! Accounts encrypted at rest: the personal fields (name, birth date, sex, phone, email) are
//! sealed with a per-account data key (AES-256-GCM), itself wrapped by the master key of a
//! [`KeyVault`]. The store sees only the sealed blob.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jiff::civil::Date;
use motcua_domain::ids::Sex;
use motcua_ports::identity::{Account, AccountKind, AccountStore, DataKey, KeyVault};
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

#[derive(Serialize, Deserialize)]
struct Personal {
    name: String,
    birth_date: Option<Date>,
    sex: Option<Sex>,
    phone: Option<String>,
    email: Option<String>,
}

/// An [`AccountStore`] that seals personal fields before they reach `inner`.
pub struct SealedAccounts {
    inner: Arc<dyn AccountStore>,
    vault: Arc<dyn KeyVault>,
}

impl SealedAccounts {
    pub fn new(inner: Arc<dyn AccountStore>, vault: Arc<dyn KeyVault>) -> SealedAccounts {
        SealedAccounts { inner, vault }
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
        let key = self.vault.new_data_key().await?;
        // Bound to the account id: a blob moved to another account does not open.
        let ct = seal(&key.plain, a.id.as_bytes(), &plain)?;
        let wrapped_len = u16::try_from(key.wrapped.len()).map_err(|_| crypto_err("key size"))?;
        let mut blob = wrapped_len.to_be_bytes().to_vec();
        blob.extend(&key.wrapped);
        blob.extend(ct);
        Ok(Account {
            name: String::new(),
            birth_date: None,
            sex: None,
            phone: None,
            email: None,
            sealed: Some(STANDARD.encode(blob)),
            ..a.clone()
        })
    }

    async fn open(&self, a: Account) -> StoreResult<Account> {
        let Some(sealed) = &a.sealed else {
            return Ok(a);
        };
        let blob = STANDARD.decode(sealed).map_err(|_| crypto_err("blob"))?;
        if blob.len() < 2 {
            return Err(crypto_err("blob"));
        }
        let n = usize::from(u16::from_be_bytes([blob[0], blob[1]]));
        let (wrapped, ct) = blob[2..].split_at(n.min(blob.len() - 2));
        let key = self.vault.unwrap_data_key(wrapped).await?;
        let plain = open(&key, a.id.as_bytes(), ct)?;
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
        let mut ports = EmbeddedStore::open(&dir).unwrap().identity_ports();
        ports.accounts = Arc::new(SealedAccounts::new(ports.accounts.clone(), vault()));
        ports
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
}
