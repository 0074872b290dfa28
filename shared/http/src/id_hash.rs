//! The keyed hash of ID numbers and tax codes (how identities are stored and looked up)
//! and the owner references dossiers are filed under. Shared by the identity function,
//! which makes accounts, and the submission function, which files paper dossiers under
//! the person's owner reference so they find them when they sign in.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The keys of the keyed hash of numbers, each with its id: the current one hashes new
/// records (and keys the short-lived MACs of codes and bindings), the older ones still find
/// records hashed under them, so the key can rotate. Every stored hash carries its key id.
#[derive(Clone)]
pub struct IdHashKeys {
    /// (key id, key), the current first.
    keys: Vec<(String, Vec<u8>)>,
    /// Id of the owner key: owner references of dossiers are made with it, so it stays in
    /// the set for good (`k0`, the single key of earlier versions, unless named).
    owner: String,
}

impl std::fmt::Debug for IdHashKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("IdHashKeys").field("ids", &ids).finish()
    }
}

impl IdHashKeys {
    /// The id of a key given alone (base64), as earlier versions stored hashes.
    pub const SINGLE: &'static str = "k0";

    /// A base64 key (32+ bytes; id `k0`), or a key set
    /// `{"current": "<id>", "keys": {"<id>": "<base64>", ...}}`.
    pub fn parse(raw: &str) -> Result<IdHashKeys, String> {
        let decode = |id: &str, b64: &str| -> Result<(String, Vec<u8>), String> {
            let key = STANDARD
                .decode(b64.trim())
                .map_err(|_| format!("key {id} is not base64"))?;
            if key.len() < 32 {
                return Err(format!("key {id} needs at least 32 bytes"));
            }
            Ok((id.to_owned(), key))
        };
        let raw = raw.trim();
        if !raw.starts_with('{') {
            return Ok(IdHashKeys {
                keys: vec![decode(Self::SINGLE, raw)?],
                owner: Self::SINGLE.into(),
            });
        }
        let v: serde_json::Value =
            serde_json::from_str(raw).map_err(|_| "not a key set (JSON)".to_string())?;
        let current = v["current"]
            .as_str()
            .ok_or("the key set names no current key")?;
        let keys = v["keys"].as_object().ok_or("the key set has no keys")?;
        let mut out = vec![decode(
            current,
            keys.get(current)
                .and_then(|k| k.as_str())
                .ok_or("the current key is not in the set")?,
        )?];
        for (id, k) in keys {
            if id != current {
                out.push(decode(id, k.as_str().ok_or("keys are base64 strings")?)?);
            }
        }
        let owner = v["owner"].as_str().unwrap_or(Self::SINGLE).to_owned();
        if !out.iter().any(|(id, _)| *id == owner) {
            return Err(format!(
                "the owner key {owner} is not in the set: dossiers are owned under it, it \
                 stays for good (name it with \"owner\")"
            ));
        }
        Ok(IdHashKeys { keys: out, owner })
    }

    /// (key id, key) of the owner key.
    pub fn owner(&self) -> (&str, &[u8]) {
        self.all()
            .find(|(id, _)| *id == self.owner)
            .unwrap_or_else(|| self.current())
    }

    /// (key id, key) of the current key.
    pub fn current(&self) -> (&str, &[u8]) {
        let (id, key) = &self.keys[0];
        (id, key)
    }

    /// Every (key id, key), the current first.
    pub fn all(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.keys.iter().map(|(id, k)| (id.as_str(), k.as_slice()))
    }
}

/// Keyed hash of an ID number or tax code: how identities are stored and looked up.
pub fn id_hash(key: &[u8], kind: &str, value: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(kind.as_bytes());
    mac.update(b":");
    mac.update(value.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}
