//! Request and response bodies of the submission API (the OpenAPI schemas).

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::civil::Date;
use motcua_domain::catalogue::SubmittedDocument;
use motcua_domain::dossier::{DossierResult, HistoryEntry};
use motcua_domain::{Dossier, Lang, Status};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// A new dossier.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    /// Procedure code from `GET /v1/procedures`.
    #[schema(min_length = 1)]
    pub procedure_code: String,
    /// Values of the procedure's form fields, by field name.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub form: BTreeMap<String, Value>,
    /// The document components, uploaded or reused.
    #[serde(default)]
    pub documents: Vec<SubmittedDocument>,
    /// Phone for status SMS and the public lookup; defaults to the form's `contact_phone`.
    #[serde(default)]
    pub contact_phone: Option<String>,
}

/// The answer to a submission.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SubmitResponse {
    pub id: Uuid,
    /// Dossier code printed on the receipt: `<agency>-<YYMMDD>-<NNNN>`.
    #[schema(example = "000.00.04.H42-260317-0042")]
    pub code: String,
    /// Printed on the receipt with the code: what the public lookup needs.
    #[schema(example = "7KQ2M-XW4TD")]
    pub lookup_key: String,
    pub status: StatusView,
    /// Fee in VND.
    pub fee: u64,
    pub version: u64,
}

/// A status with its national code and names.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StatusView {
    /// National status code 1–10.
    pub code: u8,
    pub key: Status,
    /// Name in the caller's language.
    pub name: String,
}

impl StatusView {
    pub fn of(s: Status, lang: Lang) -> StatusView {
        StatusView {
            code: s.code(),
            key: s,
            name: s.name(lang).to_owned(),
        }
    }
}

/// A dossier as its applicant or an officer sees it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DossierView {
    pub id: Uuid,
    pub code: String,
    /// The receipt's key for the public lookup (shown to the applicant and officers).
    pub lookup_key: String,
    pub procedure_code: String,
    pub procedure_name: String,
    pub agency: String,
    pub status: StatusView,
    /// Fee in VND.
    pub fee: u64,
    /// Amount the applicant must pay now (status 6), VND.
    pub amount_due: Option<u64>,
    /// The fee owed now, online (`POST /v1/dossiers/{id}/payments`) or at the counter:
    /// the procedure's fee at submission where the catalogue asks it then, or the
    /// officer's payment request. VND.
    pub fee_due: Option<u64>,
    /// Fees paid, each with its channel (`online`, `counter`) and receipt number.
    pub fees_paid: Vec<motcua_domain::payment::FeePaid>,
    #[schema(value_type = String, format = DateTime)]
    pub submitted_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub received_at: Option<Timestamp>,
    /// Ngày hẹn trả, set on receipt.
    #[schema(value_type = Option<String>, format = Date)]
    pub due_date: Option<Date>,
    /// Computed now: finished after the due date, or still open past it.
    pub overdue: bool,
    pub extended: bool,
    /// What the applicant must still provide (status 5).
    pub missing_items: Vec<String>,
    pub result: Option<DossierResult>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
    /// The applicant's form. Absent from the answers to actions (`/actions`, `withdraw`,
    /// `supplement`): those answers are kept for `Idempotency-Key` replays, and a kept
    /// copy of personal data is one too many. `GET /v1/dossiers/{id}` has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub form: Option<BTreeMap<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documents: Option<Vec<DocumentView>>,
    /// E.164 contact phone (absent where the form is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_phone: Option<String>,
    /// Optimistic-concurrency version; send it back in `If-Match: "<version>"`.
    pub version: u64,
    /// Present on the detail view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryEntry>>,
}

/// A document of a dossier, with its digitisation state (Decision 766: 1 digitised at
/// intake, 2 reused from the personal store, 3 reused from another dossier's result).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DocumentView {
    pub code: String,
    pub source: motcua_domain::DocumentSource,
    /// Upload id, store document id or dossier code, by `source`.
    pub reference: String,
    /// 0–3 (0: paper only, at the counter).
    pub digitisation_state: u8,
}

impl DocumentView {
    pub fn of(d: &SubmittedDocument) -> DocumentView {
        DocumentView {
            code: d.code.clone(),
            source: d.source,
            reference: d.reference.clone(),
            digitisation_state: d.source.digitisation_state(),
        }
    }
}

impl DossierView {
    pub fn of(d: Dossier, now: Timestamp, lang: Lang, history: Option<Vec<HistoryEntry>>) -> Self {
        let fee_due = d.fee_due().map(|f| f.amount.as_vnd());
        DossierView {
            id: d.id,
            overdue: d.is_overdue(now),
            code: d.code.as_str().to_owned(),
            lookup_key: d.lookup_key.as_str().to_owned(),
            procedure_code: d.procedure_code,
            procedure_name: d.procedure_name,
            agency: d.agency.as_str().to_owned(),
            status: StatusView::of(d.status, lang),
            fee: d.fee.as_vnd(),
            amount_due: d.amount_due.map(|m| m.as_vnd()),
            fee_due,
            fees_paid: d.fees.clone(),
            submitted_at: d.submitted_at,
            received_at: d.received_at,
            due_date: d.due_date,
            extended: d.extended,
            missing_items: d.missing_items,
            result: d.result,
            finished_at: d.finished_at,
            form: Some(d.form),
            documents: Some(d.documents.iter().map(DocumentView::of).collect()),
            contact_phone: d.applicant.phone,
            version: d.version,
            history,
        }
    }

    /// The view of an action's answer: everything but the applicant's personal data.
    pub fn after_action(
        d: Dossier,
        now: Timestamp,
        lang: Lang,
        history: Option<Vec<HistoryEntry>>,
    ) -> Self {
        DossierView {
            form: None,
            documents: None,
            contact_phone: None,
            ..DossierView::of(d, now, lang, history)
        }
    }
}

/// One page of dossiers.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DossierPage {
    pub items: Vec<DossierView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// What the public lookup reveals: no name, no ID, no form.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LookupView {
    pub code: String,
    pub procedure_name: String,
    pub status: StatusView,
    #[schema(value_type = Option<String>, format = Date)]
    pub due_date: Option<Date>,
    pub overdue: bool,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// `POST /v1/dossiers/{id}/withdraw`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithdrawRequest {
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /v1/dossiers/{id}/supplement`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SupplementRequest {
    pub documents: Vec<SubmittedDocument>,
    #[serde(default)]
    pub note: Option<String>,
}

/// Query of `GET /v1/dossiers`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Officers: only this status (code 1–10 or key such as `received`).
    pub status: Option<String>,
    /// Admins: the agency whose queue to list.
    pub agency: Option<String>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// From the previous page's `next_cursor` (empty: the first page).
    pub cursor: Option<String>,
}

/// Query of `GET /v1/lookup`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LookupQuery {
    /// Dossier code from the receipt.
    #[param(required = true)]
    pub code: Option<String>,
    /// The lookup key printed on the receipt (`XXXXX-XXXXX`; any case, dash optional).
    #[param(required = true)]
    pub key: Option<String>,
}
