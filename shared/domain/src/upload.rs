//! Uploaded files: what a client may declare for an upload slot, how a file that arrived is
//! judged against its slot, and the states of an upload. No I/O: the caller reads the
//! object, hashes it and asks the scanner; this module decides.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::i18n::{Lang, Localized};
use crate::ids::AgencyCode;

pub use crate::files::{
    FileName, FileNameProblem, FileType, MAX_FILE_NAME_CHARS, Sha256Digest, content_disposition,
    sniff,
};

/// What the deployment allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRules {
    pub types: Vec<FileType>,
    /// Largest file, in bytes.
    pub max_file_bytes: u64,
    /// Largest total of the files one dossier cites, in bytes.
    pub max_dossier_bytes: u64,
}

impl Default for UploadRules {
    fn default() -> Self {
        UploadRules {
            types: FileType::BASE.to_vec(),
            max_file_bytes: 20 * 1024 * 1024,
            max_dossier_bytes: 100 * 1024 * 1024,
        }
    }
}

/// What a client declares for an upload slot.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SlotRequest {
    /// Shown to officers and offered on download; no path; at most 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub file_name: String,
    /// `application/pdf`, `image/jpeg`, `image/png`, or an allowed office type.
    pub content_type: String,
    /// Exact size in bytes (at least 1; at most the deployment's per-file limit).
    #[schema(minimum = 1)]
    pub size: u64,
    /// SHA-256 of the file, standard base64 (as `x-amz-checksum-sha256`).
    pub sha256: String,
    /// The procedure the file is for, if known.
    #[serde(default)]
    pub procedure_code: Option<String>,
    /// The procedure's document component the file is for (needs `procedure_code`).
    #[serde(default)]
    pub document_code: Option<String>,
}

/// Why a slot was refused: each a field and a reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case", tag = "problem")]
pub enum SlotProblem {
    FileName {
        reason: FileNameProblem,
    },
    ContentType,
    Empty,
    TooLarge {
        max: u64,
    },
    Checksum,
    /// `document_code` without `procedure_code`, or one the procedure does not have.
    Document,
    Procedure,
}

impl Localized for SlotProblem {
    fn message(&self, lang: Lang) -> String {
        use FileNameProblem as N;
        use SlotProblem as P;
        let vi = lang == Lang::Vi;
        match self {
            P::FileName { reason } => match (reason, vi) {
                (N::Empty, true) => "Tên tệp trống".into(),
                (N::Empty, false) => "The file name is empty".into(),
                (N::TooLong, true) => format!("Tên tệp dài quá {MAX_FILE_NAME_CHARS} ký tự"),
                (N::TooLong, false) => {
                    format!("The file name is longer than {MAX_FILE_NAME_CHARS} characters")
                }
                (N::Path, true) => "Tên tệp không được chứa đường dẫn (/, \\, ..)".into(),
                (N::Path, false) => "The file name must not be a path (/, \\, ..)".into(),
                (N::Characters, true) => "Tên tệp chứa ký tự không được phép".into(),
                (N::Characters, false) => {
                    "The file name has characters that are not allowed".into()
                }
                (N::Extension, true) => "Đuôi tên tệp không khớp với loại tệp khai báo".into(),
                (N::Extension, false) => {
                    "The file name's extension does not match the declared type".into()
                }
            },
            P::ContentType if vi => "Loại tệp không được chấp nhận".into(),
            P::ContentType => "This file type is not accepted".into(),
            P::Empty if vi => "Tệp rỗng (0 byte)".into(),
            P::Empty => "The file is empty (0 bytes)".into(),
            P::TooLarge { max } if vi => format!("Tệp lớn hơn giới hạn {max} byte"),
            P::TooLarge { max } => format!("The file is larger than the {max}-byte limit"),
            P::Checksum if vi => "sha256 phải là SHA-256 của tệp, mã hoá base64".into(),
            P::Checksum => "sha256 must be the file's SHA-256, base64-encoded".into(),
            P::Document if vi => "Thủ tục không có thành phần hồ sơ này".into(),
            P::Document => "The procedure has no such document".into(),
            P::Procedure if vi => "Không có thủ tục này".into(),
            P::Procedure => "No such procedure".into(),
        }
    }
}

/// A slot request that passed the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    pub file_name: FileName,
    pub kind: FileType,
    pub size: u64,
    pub sha256: Sha256Digest,
}

impl UploadRules {
    /// Checks a slot request (the procedure's documents are checked by the caller, who
    /// reads the catalogue). Every problem at once, as (field, problem).
    pub fn check(&self, req: &SlotRequest) -> Result<Declared, Vec<(&'static str, SlotProblem)>> {
        let mut problems = Vec::new();
        let kind = FileType::from_mime(&req.content_type).filter(|t| self.types.contains(t));
        if kind.is_none() {
            problems.push(("content_type", SlotProblem::ContentType));
        }
        let name = kind.map(|k| FileName::parse(&req.file_name, k));
        if let Some(Err(reason)) = &name {
            problems.push((
                "file_name",
                SlotProblem::FileName {
                    reason: reason.clone(),
                },
            ));
        }
        if req.size == 0 {
            problems.push(("size", SlotProblem::Empty));
        } else if req.size > self.max_file_bytes {
            problems.push((
                "size",
                SlotProblem::TooLarge {
                    max: self.max_file_bytes,
                },
            ));
        }
        let sha256 = Sha256Digest::parse_base64(&req.sha256);
        if sha256.is_none() {
            problems.push(("sha256", SlotProblem::Checksum));
        }
        if req.document_code.is_some() && req.procedure_code.is_none() {
            problems.push(("document_code", SlotProblem::Document));
        }
        match (kind, name, sha256) {
            (Some(kind), Some(Ok(file_name)), Some(sha256)) if problems.is_empty() => {
                Ok(Declared {
                    file_name,
                    kind,
                    size: req.size,
                    sha256,
                })
            }
            _ => Err(problems),
        }
    }
}

/// Where an upload stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UploadStatus {
    /// Slot issued, no file checked yet.
    AwaitingFile,
    /// The file matched its slot and the scanner found nothing: it may be cited.
    Verified,
    /// The file was refused and deleted; `reason` says why.
    Rejected,
    /// No file arrived before the slot expired.
    Expired,
}

/// What the malware scan said of a verified file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScanOutcome {
    Clean,
    /// No scanner is configured (`MOTCUA_SCANNER=none`): the file was not scanned.
    Skipped,
}

/// Why a file that arrived was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum RejectReason {
    SizeMismatch {
        declared: u64,
        actual: u64,
    },
    ChecksumMismatch,
    TypeMismatch {
        declared: FileType,
        /// What the bytes are, if one of the accepted kinds.
        found: Option<FileType>,
    },
    /// The scanner found malware.
    Infected,
}

impl Localized for RejectReason {
    fn message(&self, lang: Lang) -> String {
        let vi = lang == Lang::Vi;
        match self {
            RejectReason::SizeMismatch { declared, actual } if vi => {
                format!("Kích thước tệp ({actual} byte) khác kích thước đã khai ({declared} byte)")
            }
            RejectReason::SizeMismatch { declared, actual } => {
                format!("The file has {actual} bytes, not the {declared} declared")
            }
            RejectReason::ChecksumMismatch if vi => "Mã SHA-256 của tệp khác mã đã khai".into(),
            RejectReason::ChecksumMismatch => "The file's SHA-256 is not the one declared".into(),
            RejectReason::TypeMismatch { declared, found } => {
                let found = found.map_or("?", |f| f.as_str());
                if vi {
                    format!(
                        "Nội dung tệp là '{found}', không phải '{}' như đã khai",
                        declared.as_str()
                    )
                } else {
                    format!(
                        "The file's content is '{found}', not the declared '{}'",
                        declared.as_str()
                    )
                }
            }
            RejectReason::Infected if vi => "Tệp chứa mã độc và đã bị xoá".into(),
            RejectReason::Infected => "The file contains malware and was deleted".into(),
        }
    }
}

/// An upload slot and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    /// Random; also the object's key (no file name, no personal data in keys).
    pub id: Uuid,
    /// Whose file: the citizen's owner reference, or the officer's subject.
    pub owner: String,
    /// For an officer's result file: the officer's agency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agency: Option<AgencyCode>,
    pub file_name: FileName,
    pub kind: FileType,
    pub size: u64,
    /// Standard base64.
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub procedure_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_code: Option<String>,
    pub status: UploadStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RejectReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<ScanOutcome>,
    pub created_at: Timestamp,
    /// After this, no file is accepted for the slot.
    pub expires_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled_at: Option<Timestamp>,
    /// The dossier that cites the file (one at most).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cited_by: Option<Uuid>,
}

impl Upload {
    /// Key of the object while it waits for verification.
    pub fn quarantine_key(&self) -> String {
        quarantine_key(self.id)
    }
    /// Key of the object once verified.
    pub fn clean_key(&self) -> String {
        format!("{CLEAN_PREFIX}{}", self.id)
    }
}

/// The owner of an officer's upload: kept apart from citizens' owner references.
pub fn officer_owner(subject: &str) -> String {
    format!("officer:{subject}")
}

/// Whether `key` is an object key of ours (`quarantine/<uuid>`, `clean/<uuid>`, their
/// prefixes): lower-case letters, digits and `-` in non-empty parts joined by `/`, at
/// most 128 bytes. Anything else names no object, in either object store.
pub fn is_object_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 128
        && key.split('/').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

pub const QUARANTINE_PREFIX: &str = "quarantine/";
pub const CLEAN_PREFIX: &str = "clean/";

pub fn quarantine_key(id: Uuid) -> String {
    format!("{QUARANTINE_PREFIX}{id}")
}

/// The upload id of a quarantine object key, if it is one.
pub fn upload_of_key(key: &str) -> Option<Uuid> {
    let id = key.strip_prefix(QUARANTINE_PREFIX)?;
    // Only the hyphenated form this module writes.
    (id.len() == 36).then(|| Uuid::parse_str(id).ok()).flatten()
}

/// A document in its owner's personal electronic store: a verified upload, or a
/// dossier's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StoredDocument {
    /// The store item's id: what `{"source": "store", "reference": ...}` names.
    pub id: Uuid,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    #[schema(ignore)]
    pub owner: String,
    /// Document type: the procedure's component code (e.g. `to-khai`) or `ket-qua` for a
    /// dossier's result.
    pub kind: String,
    pub title: String,
    /// The agency that issued it (a result), or none (the owner's own upload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Date)]
    pub valid_from: Option<jiff::civil::Date>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Date)]
    pub valid_until: Option<jiff::civil::Date>,
    /// The dossier it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dossier: Option<Uuid>,
    /// The file.
    pub upload: Uuid,
    pub file_type: FileType,
    pub size: u64,
    #[schema(value_type = String, format = DateTime)]
    pub added_at: Timestamp,
}

impl StoredDocument {
    /// The store entry of a verified upload: the upload's id, its document code as type.
    pub fn of_upload(u: &Upload, at: Timestamp) -> StoredDocument {
        StoredDocument {
            id: u.id,
            owner: u.owner.clone(),
            kind: u.document_code.clone().unwrap_or_default(),
            title: u.file_name.as_str().to_owned(),
            issuer: None,
            valid_from: None,
            valid_until: None,
            dossier: None,
            upload: u.id,
            file_type: u.kind,
            size: u.size,
            added_at: at,
        }
    }
}

/// What was measured of an arrived file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrived {
    pub size: u64,
    pub sha256: [u8; 32],
    pub sniffed: Option<FileType>,
}

/// Judges an arrived file against its slot: size, checksum, real type. The scan comes
/// after (it is the costly step).
pub fn judge(upload: &Upload, arrived: &Arrived) -> Result<(), RejectReason> {
    if arrived.size != upload.size {
        return Err(RejectReason::SizeMismatch {
            declared: upload.size,
            actual: arrived.size,
        });
    }
    let declared = Sha256Digest::parse_base64(&upload.sha256).map(|d| d.0);
    if declared.is_none_or(|d| !constant_eq(&d, &arrived.sha256)) {
        return Err(RejectReason::ChecksumMismatch);
    }
    if arrived.sniffed != Some(upload.kind) {
        return Err(RejectReason::TypeMismatch {
            declared: upload.kind,
            found: arrived.sniffed,
        });
    }
    Ok(())
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(name: &str, mime: &str, size: u64) -> SlotRequest {
        SlotRequest {
            file_name: name.into(),
            content_type: mime.into(),
            size,
            sha256: Sha256Digest([7; 32]).to_base64(),
            procedure_code: None,
            document_code: None,
        }
    }

    #[test]
    fn slot_rules_list_every_problem() {
        let rules = UploadRules::default();
        assert!(rules.check(&req("a.pdf", "application/pdf", 10)).is_ok());
        assert!(
            rules
                .check(&req("a.png", "image/png; charset=x", 10))
                .is_ok()
        );
        let docx = FileType::Docx.mime();
        assert!(
            rules.check(&req("a.docx", docx, 10)).is_err(),
            "office types are opt-in"
        );
        let office = UploadRules {
            types: FileType::BASE.into_iter().chain(FileType::OFFICE).collect(),
            ..UploadRules::default()
        };
        assert!(office.check(&req("a.docx", docx, 10)).is_ok());
        let mut bad = req("../a.pdf", "application/pdf", 0);
        bad.sha256 = "nope".into();
        bad.document_code = Some("to-khai".into());
        let fields: Vec<&str> = rules.check(&bad).unwrap_err().iter().map(|p| p.0).collect();
        assert_eq!(fields, ["file_name", "size", "sha256", "document_code"]);
        let big = rules.check(&req("a.pdf", "application/pdf", rules.max_file_bytes + 1));
        assert_eq!(
            big.unwrap_err()[0].1,
            SlotProblem::TooLarge {
                max: rules.max_file_bytes
            }
        );
        assert_eq!(
            rules
                .check(&req("a.exe", "application/x-msdownload", 1))
                .unwrap_err()[0]
                .0,
            "content_type"
        );
    }

    fn upload(kind: FileType, size: u64, sha: [u8; 32]) -> Upload {
        Upload {
            id: Uuid::nil(),
            owner: "o".into(),
            agency: None,
            file_name: FileName::parse(&format!("f.{}", kind.as_str()), kind).unwrap(),
            kind,
            size,
            sha256: Sha256Digest(sha).to_base64(),
            procedure_code: None,
            document_code: None,
            status: UploadStatus::AwaitingFile,
            reason: None,
            scan: None,
            created_at: Timestamp::UNIX_EPOCH,
            expires_at: Timestamp::UNIX_EPOCH,
            settled_at: None,
            cited_by: None,
        }
    }

    #[test]
    fn an_arrived_file_must_be_what_its_slot_declared() {
        let u = upload(FileType::Jpeg, 10, [1; 32]);
        let ok = Arrived {
            size: 10,
            sha256: [1; 32],
            sniffed: Some(FileType::Jpeg),
        };
        assert_eq!(judge(&u, &ok), Ok(()));
        assert_eq!(
            judge(&u, &Arrived { size: 11, ..ok }),
            Err(RejectReason::SizeMismatch {
                declared: 10,
                actual: 11
            })
        );
        assert_eq!(
            judge(
                &u,
                &Arrived {
                    sha256: [2; 32],
                    ..ok
                }
            ),
            Err(RejectReason::ChecksumMismatch)
        );
        // A PDF renamed .jpg.
        assert_eq!(
            judge(
                &u,
                &Arrived {
                    sniffed: Some(FileType::Pdf),
                    ..ok
                }
            ),
            Err(RejectReason::TypeMismatch {
                declared: FileType::Jpeg,
                found: Some(FileType::Pdf)
            })
        );
    }

    #[test]
    fn only_quarantine_keys_name_uploads() {
        let id = Uuid::now_v7();
        assert_eq!(upload_of_key(&quarantine_key(id)), Some(id));
        assert_eq!(upload_of_key(&format!("clean/{id}")), None);
        assert_eq!(upload_of_key("quarantine/../x"), None);
        assert_eq!(upload_of_key(&format!("quarantine/{}", id.simple())), None);
    }
}
