//! What the uploads routes answer and take.

use std::collections::BTreeMap;

use jiff::Timestamp;
use motcua_domain::upload::{ScanOutcome, StoredDocument, Upload, UploadStatus};
use motcua_domain::{Lang, Localized};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// An upload as its owner and the officers of the dossier citing it see it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UploadView {
    pub id: Uuid,
    pub file_name: String,
    /// The declared (and, once verified, the sniffed) type.
    pub content_type: String,
    pub size: u64,
    /// SHA-256, standard base64.
    pub sha256: String,
    pub status: UploadStatus,
    /// Why the file was refused (`rejected` only), localized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<ReasonView>,
    /// `clean`, or `skipped` where no scanner is configured (`verified` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<ScanOutcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub procedure_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_code: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// No file is accepted after this.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub settled_at: Option<Timestamp>,
    /// The dossier that cites the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cited_by: Option<Uuid>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReasonView {
    /// `size_mismatch`, `checksum_mismatch`, `type_mismatch` or `infected`.
    pub code: String,
    pub message: String,
}

impl UploadView {
    pub fn of(u: &Upload, lang: Lang) -> UploadView {
        UploadView {
            id: u.id,
            file_name: u.file_name.as_str().to_owned(),
            content_type: u.kind.mime().to_owned(),
            size: u.size,
            sha256: u.sha256.clone(),
            status: u.status,
            reason: u.reason.as_ref().map(|r| ReasonView {
                code: serde_json::to_value(r)
                    .ok()
                    .and_then(|v| v["reason"].as_str().map(String::from))
                    .unwrap_or_default(),
                message: r.message(lang),
            }),
            scan: u.scan,
            procedure_code: u.procedure_code.clone(),
            document_code: u.document_code.clone(),
            created_at: u.created_at,
            expires_at: u.expires_at,
            settled_at: u.settled_at,
            cited_by: u.cited_by,
        }
    }
}

/// The request the client makes to send the file: exactly this method, URL and headers.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UploadRequest {
    /// `PUT`.
    pub method: String,
    pub url: String,
    /// Send each as given (the signature covers them): `Content-Type`, `Content-Length`,
    /// `x-amz-checksum-sha256`, `If-None-Match`.
    pub headers: BTreeMap<String, String>,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SlotResponse {
    #[serde(flatten)]
    pub upload: UploadView,
    /// How to send the file.
    pub upload_request: UploadRequest,
}

/// A short-lived link to the file.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DownloadLink {
    pub url: String,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
    pub file_name: String,
    pub content_type: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DocumentPage {
    pub items: Vec<StoredDocument>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// From the previous page's `next_cursor` (empty: the first page).
    pub cursor: Option<String>,
}
