//! The HTTP routes of the uploads function and their views.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use motcua_domain::upload::{
    ScanOutcome, SlotProblem, SlotRequest, StoredDocument, Upload, UploadStatus,
};
use motcua_domain::{Actor, Lang, Localized, Role};
use motcua_http::{
    Caller, Language, Lockout, Problem, QueryParams, idempotency_key, idempotent, parse_json,
    require_json, store_problem,
};
use motcua_ports::PageRequest;
use motcua_ports::uploads::{Download, PutConditions};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::UploadsState;

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

fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut r = (status, bytes).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(_) => Problem::internal().into_response(),
    }
}

/// Who owns what `caller` uploads: a citizen's owner reference, an officer's subject.
fn owner_of(caller: &Actor) -> &str {
    match caller.role {
        Role::Citizen => caller.owner(),
        _ => &caller.subject,
    }
}

fn no_such_upload() -> Problem {
    Problem::not_found().detail("Không có tệp này", "No such upload")
}

/// Slots per owner and hour, counted before a slot is made.
fn slot_limit(s: &UploadsState) -> Lockout {
    Lockout {
        failures: s.config.slots_per_hour,
        window_secs: 3600,
    }
}

fn slot_problem(problems: &[(&str, SlotProblem)]) -> Problem {
    let list = |lang: Lang| -> Value {
        Value::Array(
            problems
                .iter()
                .map(|(field, p)| {
                    let mut v = serde_json::to_value(p).unwrap_or(Value::Null);
                    v["field"] = Value::String((*field).to_owned());
                    v["message"] = Value::String(p.message(lang));
                    v
                })
                .collect(),
        )
    };
    let msgs = |lang: Lang| {
        problems
            .iter()
            .map(|(f, p)| format!("{f}: {}", p.message(lang)))
            .collect::<Vec<_>>()
            .join("; ")
    };
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "upload-refused",
        "Tệp không được chấp nhận",
        "The file is not accepted",
    )
    .detail(msgs(Lang::Vi), msgs(Lang::En))
    .extra_localized("errors", list(Lang::Vi), list(Lang::En))
}

/// Open an upload slot (citizen, or officer for a result file). Honours `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/uploads", tag = "uploads",
    request_body = SlotRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key: same key and body give the same answer")),
    security(("bearer" = [])),
    responses(
        (status = 201, body = SlotResponse, description = "The slot, and the PUT that sends the file"),
        (status = 403, description = "Not a citizen or officer, or a self-declared (level 1) account"),
        (status = 422, description = "A type, size, name or checksum the rules refuse; an unknown procedure or document"),
        (status = 429, description = "Too many slots this hour; Retry-After")))]
pub(crate) async fn create_slot(
    State(s): State<UploadsState>,
    Caller(caller): Caller,
    Language(lang): Language,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    match caller.role {
        Role::Citizen if caller.assurance >= Actor::REGISTRY_MATCHED => {}
        Role::Officer => {}
        _ => {
            return Err(Problem::forbidden(
                "Chỉ công dân đã xác thực hoặc cán bộ được tải tệp lên",
                "Only verified citizens and officers may upload files",
            ));
        }
    }
    require_json(&headers)?;
    let key = idempotency_key(&headers)?;
    let now = s.clock.now();
    let mut fp = b"POST /v1/uploads\n".to_vec();
    fp.extend_from_slice(&body);
    let store = s.ports.idempotency.clone();
    let scope = format!("uploads:{}", caller.subject);
    Ok(idempotent(
        store.as_ref(),
        &scope,
        key,
        &fp,
        now,
        86_400,
        || async move {
            slot(&s, &caller, lang, &body, now)
                .await
                .unwrap_or_else(|p| p.into_response())
        },
    )
    .await)
}

async fn slot(
    s: &UploadsState,
    caller: &Actor,
    lang: Lang,
    body: &[u8],
    now: Timestamp,
) -> Result<Response, Problem> {
    let req: SlotRequest = parse_json(body)?;
    let declared = s.config.rules.check(&req).map_err(|p| slot_problem(&p))?;
    if let Some(code) = &req.procedure_code {
        let procedure = s
            .ports
            .catalogue
            .procedure(code)
            .await
            .map_err(store_problem)?;
        let problem = match (&procedure, &req.document_code) {
            (None, _) => Some(("procedure_code", SlotProblem::Procedure)),
            (Some(p), Some(doc)) if !p.documents.iter().any(|d| &d.code == doc) => {
                Some(("document_code", SlotProblem::Document))
            }
            _ => None,
        };
        if let Some(p) = problem {
            return Err(slot_problem(&[p]));
        }
    }
    let owner = owner_of(caller).to_owned();
    slot_limit(s)
        .reserve(
            s.ports.attempts.as_ref(),
            &[&format!("upload-slots:{owner}")],
            now,
            ("Số lượt tải tệp lên trong giờ", "upload slots this hour"),
        )
        .await?
        .keep();
    let ttl = Duration::from_secs(s.config.url_secs);
    let upload = Upload {
        id: Uuid::new_v4(),
        owner,
        agency: (caller.role == Role::Officer)
            .then(|| caller.agency.clone())
            .flatten(),
        file_name: declared.file_name,
        kind: declared.kind,
        size: declared.size,
        sha256: declared.sha256.to_base64(),
        procedure_code: req.procedure_code.clone(),
        document_code: req.document_code.clone(),
        status: UploadStatus::AwaitingFile,
        reason: None,
        scan: None,
        created_at: now,
        expires_at: now + ttl,
        settled_at: None,
        cited_by: None,
    };
    // The URL before the record: a slot is recorded only with a way to fill it.
    let put = s
        .objects
        .presign_put(
            &upload.quarantine_key(),
            &PutConditions {
                content_type: upload.kind.mime().to_owned(),
                size: upload.size,
                sha256: upload.sha256.clone(),
                expires_in: ttl,
            },
        )
        .await
        .map_err(store_problem)?;
    s.ports
        .uploads
        .create_upload(&upload)
        .await
        .map_err(store_problem)?;
    tracing::info!(upload = %upload.id, kind = upload.kind.as_str(), size = upload.size, "upload slot opened");
    let view = SlotResponse {
        upload: UploadView::of(&upload, lang),
        upload_request: UploadRequest {
            method: put.method.to_owned(),
            url: put.url,
            headers: put.headers.into_iter().collect(),
            expires_at: put.expires_at,
        },
    };
    let mut r = json(StatusCode::CREATED, &view);
    if let Ok(loc) = HeaderValue::from_str(&format!("/v1/uploads/{}", upload.id)) {
        r.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(r)
}

/// The upload if `caller` may see it: its owner, or an officer of the agency of the
/// dossier that cites it. Anyone else learns nothing (404, as for no upload).
async fn visible(s: &UploadsState, caller: &Actor, id: &str) -> Result<Upload, Problem> {
    let id = Uuid::parse_str(id).map_err(|_| no_such_upload())?;
    let u = s
        .ports
        .uploads
        .upload(id)
        .await
        .map_err(store_problem)?
        .ok_or_else(no_such_upload)?;
    let allowed = match caller.role {
        Role::Citizen if caller.owns(&u.owner) => true,
        // A dossier's result file (an officer's upload): its applicant reads it.
        Role::Citizen => match (u.agency.is_some(), u.cited_by) {
            (true, Some(d)) => s
                .ports
                .dossiers
                .get(d)
                .await
                .map_err(store_problem)?
                .is_some_and(|d| d.visible_to(caller)),
            _ => false,
        },
        Role::Officer if u.owner == caller.subject && u.agency.is_some() => true,
        Role::Officer => match u.cited_by {
            Some(d) => s
                .ports
                .dossiers
                .get(d)
                .await
                .map_err(store_problem)?
                .is_some_and(|d| d.visible_to(caller)),
            None => false,
        },
        Role::Admin | Role::System => false,
    };
    if allowed {
        Ok(u)
    } else {
        Err(no_such_upload())
    }
}

/// An upload's status: awaiting its file, verified, rejected (with the reason) or expired.
#[utoipa::path(get, path = "/v1/uploads/{id}", tag = "uploads",
    params(("id" = String, Path, description = "Upload id")),
    security(("bearer" = [])),
    responses((status = 200, body = UploadView)))]
pub(crate) async fn get_upload(
    State(s): State<UploadsState>,
    Caller(caller): Caller,
    Language(lang): Language,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let u = visible(&s, &caller, &id).await?;
    Ok(json(StatusCode::OK, &UploadView::of(&u, lang)))
}

/// A short-lived download link of a verified file, for its owner and the officers of the
/// dossier citing it. Every link handed out is audited.
#[utoipa::path(get, path = "/v1/uploads/{id}/content", tag = "uploads",
    params(("id" = String, Path, description = "Upload id")),
    security(("bearer" = [])),
    responses((status = 200, body = DownloadLink),
        (status = 409, description = "The file is not verified (awaiting, rejected or expired)")))]
pub(crate) async fn get_content(
    State(s): State<UploadsState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let u = visible(&s, &caller, &id).await?;
    if u.status != UploadStatus::Verified {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "upload-not-verified",
            "Tệp chưa được kiểm tra xong",
            "The file is not verified",
        )
        .detail(
            "Chỉ tải về được tệp đã kiểm tra (status: verified)",
            "Only a verified file can be downloaded (status: verified)",
        ));
    }
    // Audited before the link exists: no link without its record.
    s.ports
        .uploads
        .record_download(&Download {
            upload: u.id,
            at: s.clock.now(),
            actor: caller.subject.clone(),
            role: caller.role,
        })
        .await
        .map_err(store_problem)?;
    let link = s
        .objects
        .presign_get(
            &u.clean_key(),
            u.file_name.as_str(),
            u.kind.mime(),
            Duration::from_secs(s.config.download_secs),
        )
        .await
        .map_err(store_problem)?;
    Ok(json(
        StatusCode::OK,
        &DownloadLink {
            url: link.url,
            expires_at: link.expires_at,
            file_name: u.file_name.as_str().to_owned(),
            content_type: u.kind.mime().to_owned(),
        },
    ))
}

/// The caller's personal document store, newest first: verified uploads and dossier
/// results, each citable as `{"source": "store", "reference": "<id>"}` where the
/// procedure marks the document reusable.
#[utoipa::path(get, path = "/v1/me/documents", tag = "documents",
    params(PageQuery),
    security(("bearer" = [])),
    responses((status = 200, body = DocumentPage),
        (status = 403, description = "Not a citizen")))]
pub(crate) async fn my_documents(
    State(s): State<UploadsState>,
    Caller(caller): Caller,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Response, Problem> {
    if caller.role != Role::Citizen {
        return Err(Problem::forbidden(
            "Kho dữ liệu cá nhân dành cho công dân",
            "The personal document store is for citizens",
        ));
    }
    let page = PageRequest {
        limit: motcua_http::decode::page_limit(
            q.limit,
            20,
            PageRequest::MAX_LIMIT,
            StatusCode::BAD_REQUEST,
        )?,
        cursor: q.cursor.filter(|c| !c.is_empty()),
    };
    let p = s
        .ports
        .documents
        .documents(caller.owner(), &page)
        .await
        .map_err(store_problem)?;
    let items = p
        .items
        .into_iter()
        .map(|mut d| {
            d.owner.clear();
            d
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &DocumentPage {
            items,
            next_cursor: p.next_cursor,
        },
    ))
}
