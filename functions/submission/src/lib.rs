//! The submission function: procedure catalogue, dossier submission and reading, the
//! applicant's withdraw / supplement, officer actions, and the public status lookup.
//!
//! [`router`] builds the axum `Router`; on Lambda `main.rs` runs it under `lambda_http`,
//! locally `motcua-local` merges it with the other functions' routers.

mod cite;
pub mod config;
mod counter;
pub mod views;

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRef, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use jiff::Timestamp;
use motcua_domain::calendar::local_date;
use motcua_domain::catalogue::{DocumentProblem, Procedure, SubmissionErrors};
use motcua_domain::dossier::{Applicant, LookupKey, NewDossier, TransitionErrorKind};
use motcua_domain::{
    Actor, AgencyCode, Command, Dossier, DossierCode, EventEnvelope, Lang, Localized, PhoneNumber,
    Role, Status, WorkingCalendar,
};
use motcua_http::QueryParams;
use motcua_http::{
    Authenticator, Caller, Language, Problem, idempotency_key, idempotent, parse_json,
    require_json, store_problem,
};
use motcua_ports::{PageRequest, StoreError, SubmissionPorts};
use serde_json::{Value, json};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub use config::SubmissionConfig;
use views::*;

pub use motcua_http::{Clock, SystemClock};

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    pub ports: SubmissionPorts,
    pub auth: Arc<Authenticator>,
    pub clock: Arc<dyn Clock>,
    pub calendar: &'static WorkingCalendar,
    pub config: Arc<SubmissionConfig>,
}

impl FromRef<AppState> for Arc<Authenticator> {
    fn from_ref(s: &AppState) -> Self {
        s.auth.clone()
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "motcua submission API",
        description = "Procedures, dossiers and their national status lifecycle (codes 1-10). \
Errors are application/problem+json in Vietnamese or English by Accept-Language.",
        version = "1.0.0"
    ),
    modifiers(&BearerAuth),
    tags((name = "procedures"), (name = "dossiers"), (name = "officer"), (name = "public"))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Routes and their OpenAPI document, registered together so they cannot drift.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (routes, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(list_procedures))
        .routes(routes!(get_procedure))
        .routes(routes!(submit_dossier, list_dossiers))
        .routes(routes!(counter::register))
        .routes(routes!(get_dossier))
        .routes(routes!(withdraw))
        .routes(routes!(supplement))
        .routes(routes!(officer_action))
        .routes(routes!(lookup))
        .split_for_parts();
    motcua_http::openapi::document_common_answers(&mut doc);
    (routes, doc)
}

/// The OpenAPI 3.1 document of this function (its part of `docs/openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    officer_commands_only(api().1)
}

/// The officers' route takes only the officers' commands: its body is `OfficerCommand`,
/// the variants of `Command` named in [`OFFICER_ACTIONS`] (the applicant's `withdraw` and
/// `supplement` have routes of their own and are refused there).
fn officer_commands_only(doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let mut v = serde_json::to_value(&doc).expect("the document is JSON");
    let variants: Vec<Value> = v["components"]["schemas"]["Command"]["oneOf"]
        .as_array()
        .expect("Command is a oneOf")
        .iter()
        .filter(|variant| {
            let action = variant["properties"]["action"]["enum"][0]
                .as_str()
                .unwrap_or_default();
            OFFICER_ACTIONS.contains(&action)
        })
        .cloned()
        .collect();
    assert_eq!(
        variants.len(),
        OFFICER_ACTIONS.len(),
        "every officer action is a Command"
    );
    let mut officer = v["components"]["schemas"]["Command"].clone();
    officer["oneOf"] = Value::Array(variants);
    officer["description"] = json!("An officer's action on a dossier of their agency.");
    let schemas = &mut v["components"]["schemas"];
    schemas["OfficerCommand"] = officer;
    if let Some(map) = schemas.as_object_mut() {
        map.remove("Command");
    }
    v["paths"]["/v1/dossiers/{id}/actions"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"] = json!({"$ref": "#/components/schemas/OfficerCommand"});
    let text = v.to_string();
    assert!(
        !text.contains("#/components/schemas/Command\""),
        "nothing else refers to Command"
    );
    serde_json::from_value(v).expect("still an OpenAPI document")
}

/// The function's routes, `/v1/openapi.json` (the one document of every function) and
/// `/health`, without the HTTP layers (the local runner merges several functions' routes
/// under one set of layers).
///
/// The same handlers as [`api`], routed without building the OpenAPI document at start-up;
/// `tests/tests/openapi.rs` checks every documented operation is routed here and answers
/// as documented.
pub fn routes(state: AppState) -> Router {
    use axum::routing::{get, post};
    Router::new()
        .route("/v1/procedures", get(list_procedures))
        .route("/v1/procedures/{code}", get(get_procedure))
        .route("/v1/dossiers", post(submit_dossier).get(list_dossiers))
        .route("/v1/counter/dossiers", post(counter::register))
        .route("/v1/dossiers/{id}", get(get_dossier))
        .route("/v1/dossiers/{id}/withdraw", post(withdraw))
        .route("/v1/dossiers/{id}/supplement", post(supplement))
        .route("/v1/dossiers/{id}/actions", post(officer_action))
        .route("/v1/lookup", get(lookup))
        .route("/v1/openapi.json", motcua_http::openapi::document_route())
        .route(
            "/health",
            axum::routing::get(|| async { Json(json!({"status": "ok"})) }),
        )
        .with_state(state)
}

/// The HTTP layers every function's router runs under: body limit, localized problems, CORS.
pub fn with_layers(router: Router, config: &SubmissionConfig) -> Router {
    router
        .layer(axum::extract::DefaultBodyLimit::max(config.max_body_bytes))
        .layer(axum::middleware::from_fn(motcua_http::localize))
        .layer(config.cors_layer())
}

/// The function's complete router: routes, `/v1/openapi.json`, body limit, localized
/// problems, CORS.
pub fn router(state: AppState) -> Router {
    let config = state.config.clone();
    with_layers(routes(state), &config)
}

fn json_response<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut r = (status, bytes).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        Err(_) => Problem::internal().into_response(),
    }
}

fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("ascii")
}

/// List the procedures citizens can file online.
#[utoipa::path(get, path = "/v1/procedures", tag = "procedures",
    responses((status = 200, body = Vec<Procedure>)))]
async fn list_procedures(State(s): State<AppState>) -> Result<Response, Problem> {
    let procs = s
        .ports
        .catalogue
        .procedures()
        .await
        .map_err(store_problem)?;
    let mut r = json_response(StatusCode::OK, &procs);
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    Ok(r)
}

fn unknown_procedure(code: &str) -> Problem {
    let code = motcua_domain::bounds::shorten(code, 64);
    Problem::not_found().detail(
        format!("Không có thủ tục mã '{code}'"),
        format!("No procedure with code '{code}'"),
    )
}

/// One procedure: form fields, documents, time and fee.
#[utoipa::path(get, path = "/v1/procedures/{code}", tag = "procedures",
    params(("code" = String, Path, description = "Procedure code")),
    responses((status = 200, body = Procedure), (status = 404, description = "Unknown procedure")))]
async fn get_procedure(
    State(s): State<AppState>,
    Path(code): Path<String>,
) -> Result<Response, Problem> {
    match s
        .ports
        .catalogue
        .procedure(&code)
        .await
        .map_err(store_problem)?
    {
        Some(p) => Ok(json_response(StatusCode::OK, &p)),
        None => Err(unknown_procedure(&code)),
    }
}

fn require_role(caller: &Actor, roles: &[Role]) -> Result<(), Problem> {
    if roles.contains(&caller.role) {
        Ok(())
    } else {
        let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        Err(Problem::forbidden(
            &format!("Chức năng này dành cho vai trò: {}", names.join(", ")),
            &format!("This is for the role(s): {}", names.join(", ")),
        ))
    }
}

/// What identifies a request for `Idempotency-Key`: method, path, the `If-Match` it was
/// made under (the same command against another version is another request) and body.
fn fingerprint(method: &str, path: &str, if_match: Option<u64>, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(method.len() + path.len() + body.len() + 24);
    v.extend_from_slice(method.as_bytes());
    v.push(b' ');
    v.extend_from_slice(path.as_bytes());
    if let Some(version) = if_match {
        v.extend_from_slice(format!(" if-match={version}").as_bytes());
    }
    v.push(b'\n');
    v.extend_from_slice(body);
    v
}

/// The id of a dossier submitted with an `Idempotency-Key`: derived from the caller, the
/// key and the request, so a retry after a crash between the dossier's write and the
/// recorded answer finds the first dossier instead of filing a second one (new code,
/// second fee). A key reused for another request after its record expired derives
/// another id.
fn submission_id(subject: &str, key: &str, fingerprint: &[u8]) -> Uuid {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [
        b"motcua-dossier-id".as_slice(),
        subject.as_bytes(),
        key.as_bytes(),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.update(fingerprint);
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// How many of a submission's problems an answer lists: a body with a thousand unknown
/// fields gets the first ones and a count, not a megabyte of echoes.
const PROBLEMS_SHOWN: usize = 20;

pub(crate) fn validation_problem(errors: &SubmissionErrors) -> Problem {
    let list = |lang: Lang| -> Value {
        let fields = errors.fields.iter().map(|e| {
            let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
            v["message"] = Value::String(e.message(lang));
            v
        });
        let docs = errors.documents.iter().map(|e| {
            let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
            v["message"] = Value::String(e.message(lang));
            v
        });
        Value::Array(fields.chain(docs).take(PROBLEMS_SHOWN).collect())
    };
    let n = errors.fields.len() + errors.documents.len();
    let shown = |lang: Lang| {
        let mut m = errors.messages(lang);
        if m.len() > PROBLEMS_SHOWN {
            let more = m.len() - PROBLEMS_SHOWN;
            m.truncate(PROBLEMS_SHOWN);
            m.push(match lang {
                Lang::Vi => format!("và {more} lỗi khác"),
                Lang::En => format!("and {more} more"),
            });
        }
        m.join("; ")
    };
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation",
        "Hồ sơ chưa hợp lệ",
        "The dossier is not valid",
    )
    .detail(
        format!("Có {n} lỗi cần sửa: {}", shown(Lang::Vi)),
        format!("{n} problem(s) to fix: {}", shown(Lang::En)),
    )
    .extra_localized("errors", list(Lang::Vi), list(Lang::En))
}

/// Submit a dossier (citizen). Honours `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/dossiers", tag = "dossiers",
    request_body = SubmitRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key: same key and body give the same answer")),
    security(("bearer" = [])),
    responses(
        (status = 201, body = SubmitResponse),
        (status = 400, description = "Malformed JSON"),
        (status = 401, description = "No or bad token"),
        (status = 403, description = "Not a citizen, or a self-declared (level 1) account"),
        (status = 413, description = "Body too large"),
        (status = 422, description = "Unknown procedure, invalid form or documents, or Idempotency-Key reused with another body")))]
async fn submit_dossier(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Language(lang): Language,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    require_role(&caller, &[Role::Citizen])?;
    if caller.assurance < Actor::REGISTRY_MATCHED {
        // Filing a dossier is a legal act in the applicant's name: the account must be
        // matched against the national registry (level 2), not self-declared.
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "assurance-too-low",
            "Tài khoản chưa được xác thực đủ mức để nộp hồ sơ",
            "This account is not signed in at the level needed to submit dossiers",
        )
        .detail(
            "Hãy đăng nhập bằng VNeID hoặc mã gửi tới số điện thoại đã đăng ký (POST /v1/identity/citizens/verify) rồi nộp lại",
            "Sign in with VNeID or a code sent to your registered phone (POST /v1/identity/citizens/verify), then submit again",
        ));
    }
    require_json(&headers)?;
    let key = idempotency_key(&headers)?;
    let now = s.clock.now();
    let fp = fingerprint("POST", "/v1/dossiers", None, &body);
    let store = s.ports.idempotency.clone();
    let scope = caller.subject.clone();
    let id = key
        .as_deref()
        .map(|k| submission_id(&caller.subject, k, &fp));
    Ok(idempotent(
        store.as_ref(),
        &scope,
        key,
        &fp,
        now,
        s.config.idempotency_ttl_secs,
        || async move {
            submit(&s, &caller, lang, &body, id, now)
                .await
                .unwrap_or_else(|p| p.into_response())
        },
    )
    .await)
}

/// The dossier a keyed submission already filed, if a retry finds one.
async fn already_submitted(
    s: &AppState,
    caller: &Actor,
    id: Option<Uuid>,
) -> Result<Option<Dossier>, Problem> {
    let Some(id) = id else { return Ok(None) };
    let found = s.ports.dossiers.get(id).await.map_err(store_problem)?;
    Ok(found.filter(|d| d.applicant.subject == caller.owner()))
}

/// The answer to a submission: 201 with the dossier's code, lookup key and fee.
fn submitted(dossier: &Dossier, lang: Lang) -> Response {
    let resp = SubmitResponse {
        id: dossier.id,
        code: dossier.code.as_str().to_owned(),
        lookup_key: dossier.lookup_key.as_str().to_owned(),
        status: StatusView::of(dossier.status, lang),
        fee: dossier.fee.as_vnd(),
        version: dossier.version,
    };
    let mut r = json_response(StatusCode::CREATED, &resp);
    if let Ok(loc) = HeaderValue::from_str(&format!("/v1/dossiers/{}", dossier.id)) {
        r.headers_mut().insert(header::LOCATION, loc);
    }
    r.headers_mut().insert(header::ETAG, etag(dossier.version));
    r
}

async fn submit(
    s: &AppState,
    caller: &Actor,
    lang: Lang,
    body: &[u8],
    id: Option<Uuid>,
    now: Timestamp,
) -> Result<Response, Problem> {
    let req: SubmitRequest = parse_json(body)?;
    if let Some(first) = already_submitted(s, caller, id).await? {
        tracing::info!(dossier = %first.id, "keyed submission retried: the first dossier answers");
        return Ok(submitted(&first, lang));
    }
    let procedure = s
        .ports
        .catalogue
        .procedure(&req.procedure_code)
        .await
        .map_err(store_problem)?
        .ok_or_else(|| {
            unknown_procedure(&req.procedure_code)
                .with_status(StatusCode::UNPROCESSABLE_ENTITY, "unknown-procedure")
        })?;
    let mut errors = SubmissionErrors::default();
    let form = match procedure.validate_form(&req.form) {
        Ok(f) => f,
        Err(e) => {
            errors.fields = e;
            Default::default()
        }
    };
    errors.documents = procedure.validate_documents(&req.documents);
    let phone_raw = req.contact_phone.clone().or_else(|| {
        form.get("contact_phone")
            .and_then(|v| v.as_str())
            .map(String::from)
    });
    let phone = match phone_raw.as_deref().map(PhoneNumber::parse) {
        Some(Ok(p)) => Some(p),
        Some(Err(_)) => {
            errors.fields.push(motcua_domain::catalogue::FieldError {
                field: "contact_phone".into(),
                problem: motcua_domain::catalogue::FieldProblem::BadPhone,
            });
            None
        }
        None => None,
    };
    let dossier_id = id.unwrap_or_else(Uuid::now_v7);
    let mut cites = Vec::new();
    if errors.documents.is_empty() {
        match cite::check(s, caller, dossier_id, &procedure.code, &req.documents).await {
            Ok(c) => cites = c,
            Err(Ok(doc_errors)) => errors.documents = doc_errors,
            Err(Err(p)) => return Err(p),
        }
    }
    if !errors.is_empty() {
        return Err(validation_problem(&errors));
    }
    let day = local_date(now);
    let seq = s
        .ports
        .sequences
        .next(&procedure.agency, day)
        .await
        .map_err(store_problem)?;
    let (dossier, history) = Dossier::submit(
        &procedure,
        NewDossier {
            lookup_key: LookupKey::from_random(rand::random::<u64>()),
            id: dossier_id,
            code: DossierCode::new(&procedure.agency, day, seq),
            applicant: Applicant {
                subject: caller.owner().to_owned(),
                phone: phone.map(|p| p.as_str().to_owned()),
                account: Uuid::parse_str(&caller.subject).ok(),
            },
            form,
            documents: req.documents,
            submitted_at: now,
        },
    );
    let event = EventEnvelope::dossier(&dossier, &history);
    match s
        .ports
        .dossiers
        .create_citing(&dossier, &history, &event, &cites)
        .await
    {
        Ok(()) => {}
        // A cited file changed between the check and the write (another dossier took it).
        Err(StoreError::Conflict) => {
            return Err(citation_lost(s, caller, &dossier).await);
        }
        // A retry that raced the first write past its lease: the first dossier answers.
        Err(StoreError::Duplicate) if id.is_some() => {
            if let Some(first) = already_submitted(s, caller, id).await? {
                return Ok(submitted(&first, lang));
            }
            return Err(store_problem(StoreError::Duplicate));
        }
        Err(e) => return Err(store_problem(e)),
    }
    tracing::info!(dossier = %dossier.id, code = %dossier.code, procedure = %dossier.procedure_code, "dossier submitted");
    Ok(submitted(&dossier, lang))
}

/// The answer when claiming the cited files failed: the documents that no longer hold,
/// or, if they all hold again, a conflict to retry.
async fn citation_lost(s: &AppState, caller: &Actor, d: &Dossier) -> Problem {
    match cite::check(s, caller, d.id, &d.procedure_code, &d.documents).await {
        Err(Ok(documents)) => validation_problem(&SubmissionErrors {
            fields: vec![],
            documents,
        }),
        Err(Err(p)) => p,
        Ok(_) => Problem::new(
            StatusCode::CONFLICT,
            "conflict",
            "Tệp đính kèm vừa thay đổi",
            "An attached file changed meanwhile",
        )
        .detail("Hãy gửi lại yêu cầu", "Send the request again"),
    }
}

/// Earlier versions filed a citizen's dossiers under the account id; a token that names
/// the person's owner reference moves them there (at most 1,000 at a time), so they are
/// listed, and stay the person's after an erasure of the account.
async fn refile_under_owner(s: &AppState, caller: &Actor) -> Result<(), Problem> {
    let Some(owner) = caller.owner.as_deref() else {
        return Ok(());
    };
    if owner == caller.subject || Uuid::parse_str(&caller.subject).is_err() {
        return Ok(());
    }
    for _ in 0..10 {
        let legacy = s
            .ports
            .dossiers
            .list_by_applicant(&caller.subject, &PageRequest::first(100))
            .await
            .map_err(store_problem)?;
        if legacy.items.is_empty() {
            return Ok(());
        }
        for mut d in legacy.items {
            d.applicant.subject = owner.to_owned();
            match s.ports.dossiers.refile(&d).await {
                // Changed meanwhile: the next listing moves it.
                Ok(()) | Err(StoreError::Conflict) => {}
                Err(e) => return Err(store_problem(e)),
            }
        }
    }
    Ok(())
}

/// List dossiers: a citizen's own (newest first), or an officer's agency queue by due date.
#[utoipa::path(get, path = "/v1/dossiers", tag = "dossiers",
    params(ListQuery),
    security(("bearer" = [])),
    responses((status = 200, body = DossierPage), (status = 400, description = "Bad status, agency, limit or cursor"),
        (status = 403, description = "A system token: it has no dossiers to list")))]
async fn list_dossiers(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Language(lang): Language,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Response, Problem> {
    let page = PageRequest {
        limit: motcua_http::decode::page_limit(
            q.limit,
            20,
            PageRequest::MAX_LIMIT,
            StatusCode::BAD_REQUEST,
        )?,
        cursor: q.cursor.clone().filter(|c| !c.is_empty()),
    };
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(raw) => Some(Status::parse(raw).ok_or_else(|| {
            Problem::bad_request(
                "Trạng thái phải là mã 1–10 hoặc tên như 'received'",
                "status must be a code 1-10 or a key such as 'received'",
            )
        })?),
    };
    let result = match caller.role {
        Role::Citizen => {
            if page.cursor.is_none() {
                refile_under_owner(&s, &caller).await?;
            }
            let mut p = s
                .ports
                .dossiers
                .list_by_applicant(caller.owner(), &page)
                .await
                .map_err(store_problem)?;
            if let Some(st) = status {
                p.items.retain(|d| d.status == st);
            }
            p
        }
        Role::Officer | Role::Admin => {
            let agency = match (&caller.agency, caller.role, q.agency.as_deref()) {
                (Some(a), Role::Officer, _) => a.clone(),
                (_, _, Some(raw)) => AgencyCode::parse(raw).map_err(|e| {
                    Problem::bad_request(
                        &format!("Tham số agency {}", e.message(Lang::Vi)),
                        &format!("agency {}", e.message(Lang::En)),
                    )
                })?,
                _ => {
                    return Err(Problem::bad_request(
                        "Quản trị viên cần chỉ rõ tham số agency",
                        "Admins must give the agency parameter",
                    ));
                }
            };
            s.ports
                .dossiers
                .agency_queue(&agency, status, &page)
                .await
                .map_err(store_problem)?
        }
        Role::System | Role::Leader => return Err(require_role(&caller, &[]).unwrap_err()),
    };
    let now = s.clock.now();
    let body = DossierPage {
        items: result
            .items
            .into_iter()
            .map(|d| DossierView::of(d, now, lang, None))
            .collect(),
        next_cursor: result.next_cursor,
    };
    Ok(json_response(StatusCode::OK, &body))
}

fn parse_id(raw: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(raw).map_err(|_| {
        Problem::not_found().detail("Mã định danh hồ sơ không hợp lệ", "Not a dossier id")
    })
}

async fn load_visible(s: &AppState, caller: &Actor, id: Uuid) -> Result<Dossier, Problem> {
    let d = s
        .ports
        .dossiers
        .get(id)
        .await
        .map_err(store_problem)?
        .ok_or_else(|| Problem::not_found().detail("Không tìm thấy hồ sơ", "No such dossier"))?;
    if !d.visible_to(caller) {
        return Err(Problem::forbidden(
            "Bạn không có quyền truy cập hồ sơ này",
            "You may not access this dossier",
        ));
    }
    // Filed under the account id by an earlier version: moved to the owner reference on
    // the owner's first read, so it stays theirs after an erasure of the account.
    if let Some(owner) = caller.owner.as_deref()
        && caller.role == Role::Citizen
        && d.applicant.subject == caller.subject
        && owner != caller.subject
    {
        let mut moved = d.clone();
        moved.applicant.subject = owner.to_owned();
        match s.ports.dossiers.refile(&moved).await {
            Ok(()) => return Ok(moved),
            Err(StoreError::Conflict) => {}
            Err(e) => return Err(store_problem(e)),
        }
    }
    Ok(d)
}

/// One dossier with its history, due date and overdue flag.
#[utoipa::path(get, path = "/v1/dossiers/{id}", tag = "dossiers",
    params(("id" = String, Path, description = "Dossier id")),
    security(("bearer" = [])),
    responses((status = 200, body = DossierView, headers(("ETag" = String, description = "Quoted version"))),
        (status = 403, description = "Not yours / not your agency's"), (status = 404, description = "No such dossier")))]
async fn get_dossier(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Language(lang): Language,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let id = parse_id(&id)?;
    let d = load_visible(&s, &caller, id).await?;
    let history = s.ports.dossiers.history(id).await.map_err(store_problem)?;
    let version = d.version;
    let mut r = json_response(
        StatusCode::OK,
        &DossierView::of(d, s.clock.now(), lang, Some(history)),
    );
    r.headers_mut().insert(header::ETAG, etag(version));
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    Ok(r)
}

fn if_match(headers: &HeaderMap) -> Result<Option<u64>, Problem> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let s = v.to_str().unwrap_or("").trim();
    let s = s.strip_prefix("W/").unwrap_or(s).trim_matches('"');
    s.parse::<u64>().map(Some).map_err(|_| {
        Problem::bad_request(
            "If-Match phải là phiên bản hồ sơ, ví dụ \"3\"",
            "If-Match must be the dossier version, e.g. \"3\"",
        )
    })
}

fn transition_problem(e: &motcua_domain::dossier::TransitionError) -> Problem {
    let p = match e.kind() {
        TransitionErrorKind::Forbidden => Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Không có quyền",
            "Forbidden",
        ),
        TransitionErrorKind::Conflict => Problem::new(
            StatusCode::CONFLICT,
            "transition-not-allowed",
            "Không thể thực hiện thao tác",
            "Action not allowed",
        ),
        TransitionErrorKind::Invalid => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-action",
            "Thao tác không hợp lệ",
            "The action is not valid",
        ),
    };
    p.detail_from(e)
}

/// What a command endpoint received.
struct CommandRequest {
    caller: Actor,
    lang: Lang,
    headers: HeaderMap,
    id: String,
    body: Bytes,
}

/// Applies the command built from the body to the dossier, wrapped in the idempotency
/// check; `verb` is the last path segment.
async fn command_endpoint(
    s: AppState,
    req: CommandRequest,
    verb: &'static str,
    to_command: impl FnOnce(&[u8]) -> Result<Command, Problem> + Send,
) -> Result<Response, Problem> {
    let CommandRequest {
        caller,
        lang,
        headers,
        id,
        body,
    } = req;
    let path = format!("/v1/dossiers/{id}/{verb}");
    let id = parse_id(&id)?;
    if !body.is_empty() {
        require_json(&headers)?;
    }
    let key = idempotency_key(&headers)?;
    let expected = if_match(&headers)?;
    let now = s.clock.now();
    let fp = fingerprint("POST", &path, expected, &body);
    let store = s.ports.idempotency.clone();
    let scope = caller.subject.clone();
    Ok(idempotent(
        store.as_ref(),
        &scope,
        key,
        &fp,
        now,
        s.config.idempotency_ttl_secs,
        || async move {
            let run = async {
                let cmd = to_command(&body)?;
                apply_command(&s, &caller, lang, id, expected, cmd, now).await
            };
            run.await.unwrap_or_else(|p| p.into_response())
        },
    )
    .await)
}

/// The bounds this deployment sets on officers' commands beyond the domain's own.
fn configured_bounds(s: &AppState, d: &Dossier, cmd: &Command) -> Result<(), Problem> {
    let invalid = |vi: String, en: String| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-action",
            "Thao tác vượt giới hạn cho phép",
            "The action is out of bounds",
        )
        .detail(vi, en)
    };
    match cmd {
        Command::RequestPayment {
            amount: Some(amount),
        } if d.fee.is_zero() && amount.as_vnd() > s.config.payment_ceiling_vnd => {
            let max = motcua_domain::Money::vnd(s.config.payment_ceiling_vnd);
            Err(invalid(
                format!("Số tiền yêu cầu không được vượt {max}"),
                format!("The amount may not exceed {max}"),
            ))
        }
        Command::Extend { new_due_date, .. } => {
            if let (Some(days), Some(due)) = (s.config.max_extension_working_days, d.due_date) {
                let latest = s.calendar.add_working_days(due, days);
                if *new_due_date > latest {
                    return Err(invalid(
                        format!("Ngày hẹn trả mới muộn nhất là {latest}"),
                        format!("The latest new due date is {latest}"),
                    ));
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

async fn apply_command(
    s: &AppState,
    caller: &Actor,
    lang: Lang,
    id: Uuid,
    expected: Option<u64>,
    cmd: Command,
    now: Timestamp,
) -> Result<Response, Problem> {
    let d = load_visible(s, caller, id).await?;
    if let Some(v) = expected
        && v != d.version
    {
        return Err(Problem::new(
            StatusCode::PRECONDITION_FAILED,
            "stale-version",
            "Hồ sơ đã thay đổi",
            "The dossier has changed",
        )
        .detail(
            format!(
                "Bạn đang xem phiên bản {v}, hồ sơ hiện ở phiên bản {}; hãy tải lại",
                d.version
            ),
            format!(
                "You acted on version {v}; the dossier is now at version {}; reload it",
                d.version
            ),
        ));
    }
    configured_bounds(s, &d, &cmd)?;
    if let Command::Supplement { documents, .. } = &cmd {
        let procedure = s
            .ports
            .catalogue
            .procedure(&d.procedure_code)
            .await
            .map_err(store_problem)?;
        if let Some(p) = procedure {
            let errs: Vec<_> = p
                .validate_documents(documents)
                .into_iter()
                .filter(|e| e.problem != DocumentProblem::Missing)
                .collect();
            if !errs.is_empty() {
                return Err(validation_problem(&SubmissionErrors {
                    fields: vec![],
                    documents: errs,
                }));
            }
        }
    }
    let mut result_file = None;
    let cites = match &cmd {
        Command::Complete {
            result:
                motcua_domain::dossier::DossierResult::Approved {
                    file: Some(file), ..
                },
        } => {
            let (cite, upload) = cite::result_file(s, caller, d.id, *file).await?;
            result_file = Some(upload);
            vec![cite]
        }
        Command::Supplement { documents, .. } => {
            match cite::check(s, caller, d.id, &d.procedure_code, documents).await {
                Ok(c) => c,
                Err(Ok(documents)) => {
                    return Err(validation_problem(&SubmissionErrors {
                        fields: vec![],
                        documents,
                    }));
                }
                Err(Err(p)) => return Err(p),
            }
        }
        _ => Vec::new(),
    };
    let (next, h) = d
        .apply(caller, &cmd, now, s.calendar)
        .map_err(|e| transition_problem(&e))?;
    let event = EventEnvelope::dossier(&next, &h);
    match s
        .ports
        .dossiers
        .transition_citing(&next, &h, &event, &cites)
        .await
    {
        Ok(()) => {}
        Err(StoreError::Conflict) if !cites.is_empty() => {
            // The dossier moved on, or a cited file was taken: say which.
            if let Command::Supplement { documents, .. } = &cmd
                && let Err(Ok(documents)) =
                    cite::check(s, caller, d.id, &d.procedure_code, documents).await
            {
                return Err(validation_problem(&SubmissionErrors {
                    fields: vec![],
                    documents,
                }));
            }
            return Err(store_problem(StoreError::Conflict));
        }
        Err(e) => return Err(store_problem(e)),
    }
    tracing::info!(dossier = %next.id, action = %h.action, from = ?h.from.map(|s| s.code()), to = h.to.code(), "dossier transition");
    if let Some(file) = result_file {
        file_result(s, &next, &file, now).await;
    }
    let version = next.version;
    let history = s.ports.dossiers.history(id).await.map_err(store_problem)?;
    let mut r = json_response(
        StatusCode::OK,
        &DossierView::after_action(next, now, lang, Some(history)),
    );
    r.headers_mut().insert(header::ETAG, etag(version));
    Ok(r)
}

/// A dossier's result file enters its applicant's personal document store: issued by the
/// agency, valid from the day of the decision, with the dossier it came from. Best effort
/// after the dossier's change: a failure is logged (the store entry can be added again;
/// the dossier and its result stand).
async fn file_result(
    s: &AppState,
    d: &Dossier,
    file: &motcua_domain::upload::Upload,
    now: Timestamp,
) {
    let issuer = match s.ports.catalogue.procedure(&d.procedure_code).await {
        Ok(Some(p)) => p.agency_name,
        _ => d.agency.as_str().to_owned(),
    };
    let doc = motcua_domain::upload::StoredDocument {
        id: file.id,
        owner: d.applicant.subject.clone(),
        kind: "ket-qua".into(),
        title: d.procedure_name.clone(),
        issuer: Some(issuer),
        valid_from: Some(local_date(now)),
        valid_until: None,
        dossier: Some(d.id),
        upload: file.id,
        file_type: file.kind,
        size: file.size,
        added_at: now,
    };
    if let Err(e) = s.ports.documents.add_document(&doc).await {
        tracing::error!(dossier = %d.id, error = %e, "the result could not be filed in the applicant's store");
    }
}

/// Withdraw a dossier (its applicant). Honours `Idempotency-Key` and `If-Match`.
#[utoipa::path(post, path = "/v1/dossiers/{id}/withdraw", tag = "dossiers",
    params(("id" = String, Path, description = "Dossier id"),
        ("If-Match" = Option<String>, Header, description = "Expected version"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body(content = Option<WithdrawRequest>),
    security(("bearer" = [])),
    responses((status = 200, body = DossierView),
        (status = 400, description = "Malformed If-Match or JSON"),
        (status = 403, description = "Not the dossier's applicant (officers have their own route)"),
        (status = 409, description = "Not allowed in this status"),
        (status = 412, description = "Stale version")))]
async fn withdraw(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Language(lang): Language,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    require_role(&caller, &[Role::Citizen])?;
    let req = CommandRequest {
        caller,
        lang,
        headers,
        id,
        body,
    };
    command_endpoint(s, req, "withdraw", |b| {
        let req: WithdrawRequest = if b.is_empty() {
            WithdrawRequest::default()
        } else {
            parse_json(b)?
        };
        Ok(Command::Withdraw { reason: req.reason })
    })
    .await
}

/// Send the supplement an officer asked for (its applicant); the processing time restarts.
#[utoipa::path(post, path = "/v1/dossiers/{id}/supplement", tag = "dossiers",
    params(("id" = String, Path, description = "Dossier id"),
        ("If-Match" = Option<String>, Header, description = "Expected version"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = SupplementRequest,
    security(("bearer" = [])),
    responses((status = 200, body = DossierView),
        (status = 400, description = "Malformed If-Match or JSON"),
        (status = 403, description = "Not the dossier's applicant"),
        (status = 409, description = "No supplement was requested"),
        (status = 412, description = "Stale version"),
        (status = 422, description = "Bad documents")))]
async fn supplement(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Language(lang): Language,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    require_role(&caller, &[Role::Citizen])?;
    let req = CommandRequest {
        caller,
        lang,
        headers,
        id,
        body,
    };
    command_endpoint(s, req, "supplement", |b| {
        let req: SupplementRequest = parse_json(b)?;
        Ok(Command::Supplement {
            documents: req.documents,
            note: req.note,
        })
    })
    .await
}

const OFFICER_ACTIONS: [&str; 11] = [
    "receive",
    "refuse",
    "request_supplement",
    "request_payment",
    "confirm_payment",
    "process",
    "stop",
    "resume",
    "complete",
    "return_result",
    "extend",
];

/// An officer's action on a dossier of their agency: `{"action": "receive"}`,
/// `{"action": "refuse", "reason": …}`, `{"action": "request_supplement", "items": […]}`,
/// `{"action": "complete", "result": {"decision": "approved"}}`, `{"action": "extend",
/// "new_due_date": "YYYY-MM-DD", "reason": …}`, …
#[utoipa::path(post, path = "/v1/dossiers/{id}/actions", tag = "officer",
    params(("id" = String, Path, description = "Dossier id"),
        ("If-Match" = Option<String>, Header, description = "Expected version"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = Command,
    security(("bearer" = [])),
    responses((status = 200, body = DossierView),
        (status = 400, description = "Malformed If-Match or JSON"),
        (status = 403, description = "Not an officer of the dossier's agency"),
        (status = 409, description = "Not allowed in this status, or a concurrent change won"),
        (status = 412, description = "Stale version"),
        (status = 422, description = "Missing reason, items, result or a bad new due date")))]
async fn officer_action(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Language(lang): Language,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    require_role(&caller, &[Role::Officer])?;
    let req = CommandRequest {
        caller,
        lang,
        headers,
        id,
        body,
    };
    command_endpoint(s, req, "actions", |b| {
        let raw: Value = parse_json(b)?;
        let action = raw.get("action").and_then(|a| a.as_str()).unwrap_or("");
        if !OFFICER_ACTIONS.contains(&action) {
            let allowed = OFFICER_ACTIONS.join(", ");
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown-action",
                "Thao tác không hợp lệ",
                "Unknown action",
            )
            .detail(
                format!("Trường action phải là một trong: {allowed}"),
                format!("action must be one of: {allowed}"),
            ));
        }
        motcua_http::decode::from_value(&raw, b.len())
    })
    .await
}

/// Public status lookup by the two things printed on the receipt: the dossier code and its
/// lookup key. Asks for no personal data and reveals none; the key (50 random bits) cannot
/// be guessed, so there is no lock-out a stranger could trip. An unknown code and a wrong
/// key are the same 404.
#[utoipa::path(get, path = "/v1/lookup", tag = "public",
    params(LookupQuery),
    responses((status = 200, body = LookupView), (status = 400, description = "code and key are required; malformed code"),
        (status = 404, description = "No dossier with this code and key")))]
async fn lookup(
    State(s): State<AppState>,
    Language(lang): Language,
    QueryParams(q): QueryParams<LookupQuery>,
) -> Result<Response, Problem> {
    let (Some(code), Some(key)) = (q.code.as_deref(), q.key.as_deref()) else {
        return Err(Problem::bad_request(
            "Cần cả mã hồ sơ (code) và mã tra cứu (key) in trên giấy tiếp nhận",
            "Both the dossier code (code) and the lookup key (key) from the receipt are required",
        ));
    };
    let code = DossierCode::parse(code).map_err(|e| {
        Problem::bad_request(
            &format!("Mã hồ sơ {}", e.message(Lang::Vi)),
            &format!("The dossier code {}", e.message(Lang::En)),
        )
    })?;
    let found = s
        .ports
        .dossiers
        .get_by_code(&code)
        .await
        .map_err(store_problem)?
        .filter(|d| d.lookup_key.matches(key));
    let Some(d) = found else {
        return Err(Problem::not_found().detail(
            "Không có hồ sơ với mã hồ sơ và mã tra cứu này",
            "No dossier with this code and lookup key",
        ));
    };
    let now = s.clock.now();
    let view = LookupView {
        overdue: d.is_overdue(now),
        code: d.code.as_str().to_owned(),
        procedure_name: d.procedure_name,
        status: StatusView::of(d.status, lang),
        due_date: d.due_date,
        updated_at: d.updated_at,
    };
    Ok(json_response(StatusCode::OK, &view))
}

/// Every (method, path) the router serves, from the OpenAPI document: what the SAM
/// template's routes are checked against.
pub fn route_table() -> BTreeSet<(String, String)> {
    let mut out = motcua_http::openapi::route_table(&openapi());
    out.insert(("GET".into(), "/v1/openapi.json".into()));
    out.insert(("GET".into(), "/health".into()));
    out
}
