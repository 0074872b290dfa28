//! A folder playing S3: objects are files under `<data dir>/objects/`, and presigned URLs
//! point at the local runner, signed with an HMAC over the same conditions S3 signs
//! (method, key, expiry, and for a PUT the content type, length and SHA-256). The runner
//! hands a PUT or GET on such a URL to [`LocalObjects::accept_put`] / [`LocalObjects::open_get`].

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use jiff::Timestamp;
use motcua_ports::uploads::{ObjectBody, ObjectStore, PresignedRequest, PutConditions};
use motcua_ports::{StoreError, StoreResult};
use sha2::{Digest, Sha256};

/// Path of presigned object URLs on the runner.
pub const OBJECTS_PATH: &str = "/_local/objects/";

/// Objects in a local folder, with presigned URLs served by the runner at `base_url`.
#[derive(Clone)]
pub struct LocalObjects {
    root: PathBuf,
    base_url: String,
    secret: Vec<u8>,
}

/// Why the runner refused a PUT or GET on a presigned URL, as S3 would.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PutRefusal {
    /// 403 `SignatureDoesNotMatch`: another key, method, type, length or checksum.
    #[error("the signature does not match the request")]
    SignatureDoesNotMatch,
    /// 403 `AccessDenied`: the URL's time is over.
    #[error("the request has expired")]
    Expired,
    /// 400 `BadDigest`: the body's SHA-256 is not the signed one.
    #[error("the body's SHA-256 is not the one declared")]
    BadDigest,
    /// 400 `IncompleteBody`: the body's length is not the signed one.
    #[error("the body's length is not the one declared")]
    IncompleteBody,
    /// 412 `PreconditionFailed`: the object exists (`If-None-Match: *`).
    #[error("an object is already there")]
    PreconditionFailed,
    /// 404 `NoSuchKey`.
    #[error("no such object")]
    NoSuchKey,
    /// 500: the disk failed.
    #[error("storage error: {0}")]
    Storage(String),
}

impl PutRefusal {
    /// HTTP status and S3 error code.
    pub fn status_and_code(&self) -> (u16, &'static str) {
        match self {
            PutRefusal::SignatureDoesNotMatch => (403, "SignatureDoesNotMatch"),
            PutRefusal::Expired => (403, "AccessDenied"),
            PutRefusal::BadDigest => (400, "BadDigest"),
            PutRefusal::IncompleteBody => (400, "IncompleteBody"),
            PutRefusal::PreconditionFailed => (412, "PreconditionFailed"),
            PutRefusal::NoSuchKey => (404, "NoSuchKey"),
            PutRefusal::Storage(_) => (500, "InternalError"),
        }
    }
}

/// The headers of a PUT that the signature covers, as the client sent them.
#[derive(Debug, Clone, Default)]
pub struct PutHeaders<'a> {
    pub content_type: Option<&'a str>,
    pub content_length: Option<u64>,
    pub checksum_sha256: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
}

/// A GET the runner should answer: the file and the headers it was signed with.
pub struct GetGrant {
    pub path: PathBuf,
    pub content_type: String,
    pub content_disposition: String,
}

type HmacSha256 = Hmac<Sha256>;

fn storage(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("local objects: {e}"))
}

/// Our keys only (nothing to encode in a URL or a path).
use motcua_domain::upload::is_object_key as valid_key;

fn query_value(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn encode(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

impl LocalObjects {
    /// Objects under `data_dir/objects`, URLs on `base_url` (the runner's address),
    /// signed with `secret`.
    pub fn new(data_dir: &Path, base_url: &str, secret: &[u8]) -> StoreResult<LocalObjects> {
        let root = data_dir.join("objects");
        std::fs::create_dir_all(root.join("tmp")).map_err(storage)?;
        Ok(LocalObjects {
            root,
            base_url: base_url.trim_end_matches('/').to_owned(),
            secret: secret.to_vec(),
        })
    }

    /// The folder the objects live in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> StoreResult<PathBuf> {
        if !valid_key(key) {
            return Err(StoreError::Backend(format!("not an object key: {key:?}")));
        }
        Ok(self.root.join(key))
    }

    fn sign(&self, parts: &[&str]) -> String {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("any key length");
        for p in parts {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p.as_bytes());
        }
        hex::encode(mac.finalize().into_bytes())
    }

    fn check(&self, parts: &[&str], given: &str) -> bool {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("any key length");
        for p in parts {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p.as_bytes());
        }
        match hex::decode(given) {
            Ok(sig) => mac.verify_slice(&sig).is_ok(),
            Err(_) => false,
        }
    }

    fn expiry(query: &str, now: Timestamp) -> Result<String, PutRefusal> {
        let expires =
            query_value(query, "X-Motcua-Expires").ok_or(PutRefusal::SignatureDoesNotMatch)?;
        let at: i64 = expires
            .parse()
            .map_err(|_| PutRefusal::SignatureDoesNotMatch)?;
        if now.as_second() > at {
            return Err(PutRefusal::Expired);
        }
        Ok(expires)
    }

    /// Checks a PUT on a presigned URL and stores its body: the signature must cover
    /// exactly this key, type, length and checksum; the body must have that length and
    /// SHA-256; and nothing may be there yet. Nothing is kept otherwise.
    pub fn accept_put(
        &self,
        key: &str,
        query: &str,
        h: &PutHeaders<'_>,
        body: &[u8],
        now: Timestamp,
    ) -> Result<(), PutRefusal> {
        self.check_put(key, query, h, now)?;
        self.store_put(key, h, body)
    }

    /// The signature and expiry of a PUT, from its key, query and headers alone: checked
    /// before its body is read, so an unsigned PUT costs no memory.
    pub fn check_put(
        &self,
        key: &str,
        query: &str,
        h: &PutHeaders<'_>,
        now: Timestamp,
    ) -> Result<(), PutRefusal> {
        if !valid_key(key) {
            return Err(PutRefusal::SignatureDoesNotMatch);
        }
        // Expiry is signed too: check the signature first, so a changed expiry is a
        // signature mismatch, not "expired".
        let expires = query_value(query, "X-Motcua-Expires").unwrap_or_default();
        let sig = query_value(query, "X-Motcua-Signature").unwrap_or_default();
        let length = h.content_length.map(|n| n.to_string()).unwrap_or_default();
        let parts = [
            "PUT",
            key,
            &expires,
            h.content_type.unwrap_or(""),
            &length,
            h.checksum_sha256.unwrap_or(""),
            h.if_none_match.unwrap_or(""),
        ];
        if !self.check(&parts, &sig) {
            return Err(PutRefusal::SignatureDoesNotMatch);
        }
        Self::expiry(query, now)?;
        Ok(())
    }

    /// Stores the body of a PUT whose signature [`LocalObjects::check_put`] accepted: it
    /// must have the signed length and SHA-256, and nothing may be there yet.
    pub fn store_put(&self, key: &str, h: &PutHeaders<'_>, body: &[u8]) -> Result<(), PutRefusal> {
        if !valid_key(key) {
            return Err(PutRefusal::SignatureDoesNotMatch);
        }
        if h.content_length != Some(body.len() as u64) {
            return Err(PutRefusal::IncompleteBody);
        }
        let digest = motcua_domain::upload::Sha256Digest(Sha256::digest(body).into()).to_base64();
        if Some(digest.as_str()) != h.checksum_sha256 {
            return Err(PutRefusal::BadDigest);
        }
        let path = self.root.join(key);
        let tmp =
            self.root
                .join("tmp")
                .join(format!("{}-{}", std::process::id(), uuid::Uuid::new_v4()));
        let stored = (|| -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(body)?;
            f.sync_all()?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            // A hard link fails if the name exists: `If-None-Match: *`, atomically.
            std::fs::hard_link(&tmp, &path)
        })();
        let _ = std::fs::remove_file(&tmp);
        match stored {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(PutRefusal::PreconditionFailed)
            }
            Err(e) => Err(PutRefusal::Storage(e.to_string())),
        }
    }

    /// Checks a GET on a presigned URL: the file to send and its signed headers.
    pub fn open_get(&self, key: &str, query: &str, now: Timestamp) -> Result<GetGrant, PutRefusal> {
        if !valid_key(key) {
            return Err(PutRefusal::SignatureDoesNotMatch);
        }
        let expires = query_value(query, "X-Motcua-Expires").unwrap_or_default();
        let sig = query_value(query, "X-Motcua-Signature").unwrap_or_default();
        let disposition = query_value(query, "response-content-disposition").unwrap_or_default();
        let content_type = query_value(query, "response-content-type").unwrap_or_default();
        if !self.check(&["GET", key, &expires, &disposition, &content_type], &sig) {
            return Err(PutRefusal::SignatureDoesNotMatch);
        }
        Self::expiry(query, now)?;
        let path = self.root.join(key);
        if !path.is_file() {
            return Err(PutRefusal::NoSuchKey);
        }
        Ok(GetGrant {
            path,
            content_type,
            content_disposition: disposition,
        })
    }
}

pub use motcua_domain::upload::content_disposition;

#[async_trait]
impl ObjectStore for LocalObjects {
    async fn presign_put(&self, key: &str, c: &PutConditions) -> StoreResult<PresignedRequest> {
        self.path(key)?;
        let expires_at = Timestamp::now() + c.expires_in;
        let expires = expires_at.as_second().to_string();
        let length = c.size.to_string();
        let sig = self.sign(&[
            "PUT",
            key,
            &expires,
            &c.content_type,
            &length,
            &c.sha256,
            "*",
        ]);
        Ok(PresignedRequest {
            method: "PUT",
            url: format!(
                "{}{OBJECTS_PATH}{key}?X-Motcua-Expires={expires}&X-Motcua-Signature={sig}",
                self.base_url
            ),
            headers: c.headers(),
            expires_at,
        })
    }

    async fn presign_get(
        &self,
        key: &str,
        file_name: &str,
        content_type: &str,
        expires_in: Duration,
    ) -> StoreResult<PresignedRequest> {
        self.path(key)?;
        let expires_at = Timestamp::now() + expires_in;
        let expires = expires_at.as_second().to_string();
        let disposition = content_disposition(file_name);
        let sig = self.sign(&["GET", key, &expires, &disposition, content_type]);
        Ok(PresignedRequest {
            method: "GET",
            url: format!(
                "{}{OBJECTS_PATH}{key}?X-Motcua-Expires={expires}&response-content-disposition={}&response-content-type={}&X-Motcua-Signature={sig}",
                self.base_url,
                encode(&disposition),
                encode(content_type)
            ),
            headers: vec![],
            expires_at,
        })
    }

    async fn read(&self, key: &str, limit: u64) -> StoreResult<Option<ObjectBody>> {
        let path = self.path(key)?;
        let f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(storage(e)),
        };
        let size = f.metadata().map_err(storage)?.len();
        let mut bytes = Vec::with_capacity(size.min(limit) as usize);
        f.take(limit).read_to_end(&mut bytes).map_err(storage)?;
        Ok(Some(ObjectBody { bytes, size }))
    }

    async fn rename(&self, from: &str, to: &str, _content_type: &str) -> StoreResult<()> {
        // A file has no headers here: downloads are served with their signed type.
        let (src, dst) = (self.path(from)?, self.path(to)?);
        if let Some(dir) = dst.parent() {
            std::fs::create_dir_all(dir).map_err(storage)?;
        }
        match std::fs::rename(&src, &dst) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && dst.is_file() => Ok(()),
            Err(e) => Err(storage(e)),
        }
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        match std::fs::remove_file(self.path(key)?) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(storage(e)),
        }
    }

    async fn older_than(
        &self,
        prefix: &str,
        before: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<String>> {
        let dir = prefix.trim_end_matches('/');
        if !valid_key(dir) {
            return Err(storage(format!("not a prefix: {prefix:?}")));
        }
        let entries = match std::fs::read_dir(self.root.join(dir)) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(storage(e)),
        };
        let cutoff = std::time::UNIX_EPOCH
            + Duration::from_secs(u64::try_from(before.as_second()).unwrap_or(0));
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(storage)?;
            let modified = entry
                .metadata()
                .and_then(|m| m.modified())
                .map_err(storage)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if modified < cutoff && valid_key(&name) {
                out.push(format!("{dir}/{name}"));
                if out.len() >= limit as usize {
                    break;
                }
            }
        }
        Ok(out)
    }
}
