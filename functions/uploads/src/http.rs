//! The HTTP routes of the uploads function and their views.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use motcua_domain::upload::{SlotProblem, SlotRequest, Upload, UploadStatus};
use motcua_domain::{Actor, Lang, Localized, Role};
use motcua_http::{
    Caller, Language, Lockout, Problem, QueryParams, idempotency_key, idempotent, parse_json,
    require_json, store_problem,
};
use motcua_ports::PageRequest;
use motcua_ports::uploads::{Download, PutConditions};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::UploadsState;
use crate::views::*;

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

/// Who owns what `caller` uploads: a citizen's owner reference; `officer:<subject>` for
/// an officer (kept apart: no citizen is ever the owner of an officer's file).
fn owner_of(caller: &Actor) -> String {
    match caller.role {
        Role::Citizen => caller.owner().to_owned(),
        _ => motcua_domain::upload::officer_owner(&caller.subject),
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
        // A replay answers the same URL: no longer than the URL is good for.
        s.config.url_secs.max(1),
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
    let owner = owner_of(caller);
    slot_limit(s)
        .reserve(
            s.ports.attempts.as_ref(),
            &[&format!("upload-slots:{owner}")],
            now,
            ("Số lượt tải tệp lên trong giờ", "upload slots this hour"),
        )
        .await
        .map_err(|p| {
            p.detail(
                format!(
                    "Đã mở quá {} lượt tải tệp lên trong một giờ; hãy thử lại sau (Retry-After)",
                    s.config.slots_per_hour
                ),
                format!(
                    "More than {} upload slots this hour; try again later (Retry-After)",
                    s.config.slots_per_hour
                ),
            )
        })?
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
        Role::Citizen if u.agency.is_none() && caller.owns(&u.owner) => true,
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
        // Their own result file, while they act for the agency they made it for.
        Role::Officer
            if u.owner == owner_of(caller) && u.agency.is_some() && u.agency == caller.agency =>
        {
            true
        }
        // A file a dossier of their agency cites, or reuses from its applicant's store.
        Role::Officer => {
            let mut dossiers: Vec<Uuid> = u.cited_by.into_iter().collect();
            dossiers.extend(
                s.ports
                    .uploads
                    .reused_by(u.id)
                    .await
                    .map_err(store_problem)?,
            );
            let mut any = false;
            for d in dossiers {
                if s.ports
                    .dossiers
                    .get(d)
                    .await
                    .map_err(store_problem)?
                    .is_some_and(|d| d.visible_to(caller))
                {
                    any = true;
                    break;
                }
            }
            any
        }
        Role::Admin | Role::System | Role::Leader => false,
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
