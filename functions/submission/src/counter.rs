//! `POST /v1/counter/dossiers`: an officer of the procedure's agency registers a paper
//! dossier handed in at the one-stop desk (or received by post). The applicant's details
//! are typed from the paper form; their number is kept only as the owner reference its
//! keyed hash gives, so the person sees the dossier when they sign in. Documents are the
//! officer's scans (digitised at intake) or paper only. The dossier is received at once:
//! same codes, receipt and lifecycle as an online one, with its channel recorded.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use motcua_domain::catalogue::{FieldError, FieldProblem, SubmissionErrors, SubmittedDocument};
use motcua_domain::dossier::{Applicant, LookupKey};
use motcua_domain::intake::{CounterDossier, IntakeChannel};
use motcua_domain::{
    Actor, CitizenId, Dossier, DossierCode, EventEnvelope, Lang, PhoneNumber, Role, TaxCode,
};
use motcua_http::{
    Caller, Language, Problem, idempotency_key, idempotent, parse_json, require_json, store_problem,
};
use motcua_ports::StoreError;
use motcua_ports::identity::{AccountKind, owner_ref_of};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::views::SubmitResponse;
use crate::{
    AppState, cite, fingerprint, require_role, submission_id, submitted, unknown_procedure,
    validation_problem,
};

/// Who handed the dossier in, as the paper form says.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CounterApplicant {
    /// `citizen` (a 12-digit personal identification number) or `business` (a tax code).
    #[serde(default = "citizen")]
    #[schema(value_type = String, example = "citizen")]
    pub kind: String,
    /// The personal identification number or tax code, as printed; kept only as a keyed
    /// hash.
    #[schema(example = "037153000257")]
    pub id_number: String,
    /// For status SMS and the public lookup; `0xxxxxxxxx` or `+84…`.
    #[serde(default)]
    pub phone: Option<String>,
}

fn citizen() -> String {
    "citizen".into()
}

/// A paper dossier as the officer types it in.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CounterRequest {
    #[schema(min_length = 1)]
    pub procedure_code: String,
    /// `counter` (handed in at the desk, the default) or `postal`.
    #[serde(default)]
    pub channel: Option<IntakeChannel>,
    pub applicant: CounterApplicant,
    /// The procedure's form fields, typed from the paper form.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub form: BTreeMap<String, Value>,
    /// Each component: `upload` (the officer's scan: a verified upload of theirs for their
    /// agency) or `paper` (not scanned; `reference` may be empty).
    #[serde(default)]
    pub documents: Vec<SubmittedDocument>,
}

/// Register a paper dossier received at the one-stop desk or by post.
#[utoipa::path(post, path = "/v1/counter/dossiers", tag = "dossiers",
    request_body = CounterRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key: same key and body give the same answer")),
    security(("bearer" = [])),
    responses(
        (status = 201, body = SubmitResponse, description = "Registered and received: the receipt's code, lookup key and due date"),
        (status = 400, description = "Malformed JSON"),
        (status = 403, description = "Not an officer, or an officer of another agency than the procedure's"),
        (status = 409, description = "A scan was taken by another dossier meanwhile"),
        (status = 413, description = "Body too large"),
        (status = 422, description = "Unknown procedure, invalid number, form or documents, an online channel, or Idempotency-Key reused with another body"),
        (status = 503, description = "Paper dossiers cannot be registered here: no ID-number hash key is configured")))]
pub(crate) async fn register(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Language(lang): Language,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    require_role(&caller, &[Role::Officer])?;
    require_json(&headers)?;
    let key = idempotency_key(&headers)?;
    let now = s.clock.now();
    let fp = fingerprint("POST", "/v1/counter/dossiers", None, &body);
    let store = s.ports.idempotency.clone();
    let scope = caller.subject.clone();
    let id = key
        .as_deref()
        .map(|k| submission_id(&format!("counter:{}", caller.subject), k, &fp));
    Ok(idempotent(
        store.as_ref(),
        &scope,
        key,
        &fp,
        now,
        s.config.idempotency_ttl_secs,
        || async move {
            register_paper(&s, &caller, lang, &body, id, now)
                .await
                .unwrap_or_else(|p| p.into_response())
        },
    )
    .await)
}

/// The owner reference of the number typed in, or the field's problem.
fn owner_of(s: &AppState, a: &CounterApplicant) -> Result<String, Result<FieldError, Problem>> {
    let Some(keys) = &s.config.id_hash_keys else {
        return Err(Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "counter-intake-unavailable",
            "Chưa cấu hình khóa băm số định danh: không thể tiếp nhận hồ sơ giấy",
            "No ID-number hash key is configured: paper dossiers cannot be registered",
        )));
    };
    let bad = |problem| {
        Err(Ok(FieldError {
            field: "applicant.id_number".into(),
            problem,
        }))
    };
    let (kind, value) = match a.kind.as_str() {
        "citizen" => match CitizenId::parse(a.id_number.trim()) {
            Ok(id) => (AccountKind::Citizen, id.as_str().to_owned()),
            Err(e) => {
                return bad(FieldProblem::BadCitizenId {
                    reason: e.to_string(),
                    error: Some(e),
                });
            }
        },
        "business" => match TaxCode::parse(a.id_number.trim()) {
            Ok(t) => (AccountKind::Business, t.as_str().to_owned()),
            Err(_) => {
                return bad(FieldProblem::WrongType {
                    expected: "tax code".into(),
                });
            }
        },
        _ => {
            return Err(Ok(FieldError {
                field: "applicant.kind".into(),
                problem: FieldProblem::NotAnOption {
                    options: vec!["citizen".into(), "business".into()],
                },
            }));
        }
    };
    let (_, key) = keys.owner();
    Ok(owner_ref_of(
        kind,
        &motcua_http::id_hash::id_hash(key, kind.as_str(), &value),
    ))
}

async fn register_paper(
    s: &AppState,
    officer: &Actor,
    lang: Lang,
    body: &[u8],
    id: Option<Uuid>,
    now: Timestamp,
) -> Result<Response, Problem> {
    let req: CounterRequest = parse_json(body)?;
    // A keyed retry finds the dossier the first attempt registered.
    if let Some(id) = id
        && let Some(first) = s.ports.dossiers.get(id).await.map_err(store_problem)?
        && officer.agency.as_ref() == Some(&first.agency)
    {
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
    if officer.agency.as_ref() != Some(&procedure.agency) {
        return Err(Problem::forbidden(
            "Thủ tục thuộc cơ quan khác: chỉ cán bộ của cơ quan đó tiếp nhận",
            "The procedure is another agency's: only its officers register it",
        ));
    }
    let channel = req.channel.unwrap_or(IntakeChannel::Counter);
    let mut errors = SubmissionErrors::default();
    if channel == IntakeChannel::Online {
        errors.fields.push(FieldError {
            field: "channel".into(),
            problem: FieldProblem::NotAnOption {
                options: vec!["counter".into(), "postal".into()],
            },
        });
    }
    let owner = match owner_of(s, &req.applicant) {
        Ok(o) => Some(o),
        Err(Ok(e)) => {
            errors.fields.push(e);
            None
        }
        Err(Err(p)) => return Err(p),
    };
    let phone = match req
        .applicant
        .phone
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        None => None,
        Some(raw) => match PhoneNumber::parse(raw) {
            Ok(p) => Some(p.as_str().to_owned()),
            Err(_) => {
                errors.fields.push(FieldError {
                    field: "applicant.phone".into(),
                    problem: FieldProblem::BadPhone,
                });
                None
            }
        },
    };
    let form = match procedure.validate_form(&req.form) {
        Ok(f) => f,
        Err(e) => {
            errors.fields.extend(e);
            Default::default()
        }
    };
    // A person's number must be one of the form's ID numbers: ID numbers have no check
    // digit, and one typed wrong would give the dossier to a stranger.
    if owner.is_some() && req.applicant.kind == "citizen" {
        let on_form: Vec<String> = procedure
            .fields
            .iter()
            .filter(|f| matches!(f.kind, motcua_domain::catalogue::FieldKind::CitizenId))
            .filter_map(|f| {
                form.get(&f.name)
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            })
            .collect();
        let typed = CitizenId::parse(req.applicant.id_number.trim())
            .map(|c| c.as_str().to_owned())
            .unwrap_or_default();
        let has_id_fields = procedure
            .fields
            .iter()
            .any(|f| matches!(f.kind, motcua_domain::catalogue::FieldKind::CitizenId));
        if has_id_fields && !form.is_empty() && !on_form.contains(&typed) {
            errors.fields.push(FieldError {
                field: "applicant.id_number".into(),
                problem: FieldProblem::NotOnForm,
            });
        }
    }
    errors.documents = procedure.validate_documents(&req.documents);
    let dossier_id = id.unwrap_or_else(Uuid::now_v7);
    let mut cites = Vec::new();
    if errors.documents.is_empty() {
        match cite::check_counter(s, officer, dossier_id, &procedure.code, &req.documents).await {
            Ok(c) => cites = c,
            Err(Ok(doc_errors)) => errors.documents = doc_errors,
            Err(Err(p)) => return Err(p),
        }
    }
    let Some(owner) = owner.filter(|_| errors.is_empty()) else {
        return Err(validation_problem(&errors));
    };
    let day = motcua_domain::calendar::local_date(now);
    let seq = s
        .ports
        .sequences
        .next(&procedure.agency, day)
        .await
        .map_err(store_problem)?;
    let (dossier, history) = Dossier::register_at_counter(
        &procedure,
        officer,
        CounterDossier {
            id: dossier_id,
            code: DossierCode::new(&procedure.agency, day, seq),
            lookup_key: LookupKey::from_random(rand::random::<u64>()),
            applicant: Applicant {
                subject: owner,
                phone,
                account: None,
            },
            form,
            documents: req.documents,
            channel,
        },
        now,
        s.calendar,
    )
    .map_err(|e| crate::transition_problem(&e))?;
    let event = EventEnvelope::dossier(&dossier, &history);
    match s
        .ports
        .dossiers
        .create_citing(&dossier, &history, &event, &cites)
        .await
    {
        Ok(()) => {}
        Err(StoreError::Conflict) => {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "conflict",
                "Tệp quét vừa được hồ sơ khác sử dụng",
                "A scan was taken by another dossier meanwhile",
            ));
        }
        Err(StoreError::Duplicate) if id.is_some() => {
            if let Some(first) = s
                .ports
                .dossiers
                .get(dossier_id)
                .await
                .map_err(store_problem)?
            {
                return Ok(submitted(&first, lang));
            }
            return Err(store_problem(StoreError::Duplicate));
        }
        Err(e) => return Err(store_problem(e)),
    }
    tracing::info!(dossier = %dossier.id, code = %dossier.code, procedure = %dossier.procedure_code, channel = dossier.channel.as_str(), "paper dossier registered");
    Ok(submitted(&dossier, lang))
}
