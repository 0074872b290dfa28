//! The procedure catalogue (danh mục thủ tục hành chính) and form validation.

use std::collections::BTreeMap;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::i18n::{Lang, Localized};
use crate::ids::{AgencyCode, CitizenId, PhoneNumber};
use crate::money::Money;

/// Fully online (toàn trình) or partly online (một phần).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnlineLevel {
    Full,
    Partial,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RequiredDocument {
    /// Stable code of the component within the procedure, e.g. `to-khai`.
    pub code: String,
    pub name: String,
    pub mandatory: bool,
    /// May be reused from the applicant's electronic data store instead of uploading a copy.
    pub reusable: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FieldKind {
    Text {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_len: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_len: Option<u32>,
    },
    Number {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<f64>,
        #[serde(default)]
        integer: bool,
    },
    /// `YYYY-MM-DD`.
    Date {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<String>, format = Date)]
        min: Option<Date>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<String>, format = Date)]
        max: Option<Date>,
    },
    Select {
        options: Vec<String>,
    },
    CitizenId,
    Phone,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FormField {
    pub name: String,
    pub label: String,
    #[serde(flatten)]
    pub kind: FieldKind,
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Procedure {
    /// Code in the national procedure database, e.g. `1.001193`.
    pub code: String,
    pub name: String,
    #[schema(value_type = String, example = "000.00.04.H42")]
    pub agency: AgencyCode,
    pub agency_name: String,
    /// Processing time in working days, counted from receipt.
    pub processing_days: u32,
    /// Fee in VND.
    #[schema(value_type = u64)]
    pub fee: Money,
    /// The fee is paid when the dossier is submitted (online, before intake), not on an
    /// officer's payment request.
    #[serde(default)]
    pub fee_at_submission: bool,
    pub online_level: OnlineLevel,
    pub documents: Vec<RequiredDocument>,
    pub fields: Vec<FormField>,
}

/// Why one form field was refused.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case", tag = "problem")]
pub enum FieldProblem {
    Missing,
    Unknown,
    WrongType {
        expected: String,
    },
    TooShort {
        min: u32,
    },
    TooLong {
        max: u32,
    },
    BelowMin {
        min: f64,
    },
    AboveMax {
        max: f64,
    },
    NotInteger,
    BadDate,
    DateBefore {
        min: String,
    },
    DateAfter {
        max: String,
    },
    NotAnOption {
        options: Vec<String>,
    },
    BadCitizenId {
        /// Machine-readable reason, e.g. `unknown province code`.
        reason: String,
        #[serde(skip)]
        #[schema(ignore)]
        error: Option<crate::ids::IdError>,
    },
    BadPhone,
    /// The applicant's number is none of the form's ID numbers (a paper dossier typed in:
    /// a digit wrong would file it under a stranger).
    NotOnForm,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    #[serde(flatten)]
    pub problem: FieldProblem,
}

impl Localized for FieldError {
    fn message(&self, lang: Lang) -> String {
        let f = &self.field;
        use FieldProblem as P;
        match (&self.problem, lang) {
            (P::Missing, Lang::Vi) => format!("Trường '{f}' là bắt buộc"),
            (P::Missing, Lang::En) => format!("Field '{f}' is required"),
            (P::Unknown, Lang::Vi) => format!("Trường '{f}' không có trong biểu mẫu của thủ tục"),
            (P::Unknown, Lang::En) => format!("Field '{f}' is not part of this procedure's form"),
            (P::WrongType { expected }, Lang::Vi) => {
                format!("Trường '{f}' phải là {expected}")
            }
            (P::WrongType { expected }, Lang::En) => format!("Field '{f}' must be a {expected}"),
            (P::TooShort { min }, Lang::Vi) => format!("Trường '{f}' cần ít nhất {min} ký tự"),
            (P::TooShort { min }, Lang::En) => {
                format!("Field '{f}' needs at least {min} characters")
            }
            (P::TooLong { max }, Lang::Vi) => format!("Trường '{f}' tối đa {max} ký tự"),
            (P::TooLong { max }, Lang::En) => {
                format!("Field '{f}' allows at most {max} characters")
            }
            (P::BelowMin { min }, Lang::Vi) => format!("Trường '{f}' phải từ {min} trở lên"),
            (P::BelowMin { min }, Lang::En) => format!("Field '{f}' must be at least {min}"),
            (P::AboveMax { max }, Lang::Vi) => format!("Trường '{f}' không được vượt quá {max}"),
            (P::AboveMax { max }, Lang::En) => format!("Field '{f}' must be at most {max}"),
            (P::NotInteger, Lang::Vi) => format!("Trường '{f}' phải là số nguyên"),
            (P::NotInteger, Lang::En) => format!("Field '{f}' must be a whole number"),
            (P::BadDate, Lang::Vi) => format!("Trường '{f}' phải là ngày dạng YYYY-MM-DD"),
            (P::BadDate, Lang::En) => format!("Field '{f}' must be a date like YYYY-MM-DD"),
            (P::DateBefore { min }, Lang::Vi) => format!("Trường '{f}' không được trước {min}"),
            (P::DateBefore { min }, Lang::En) => format!("Field '{f}' cannot be before {min}"),
            (P::DateAfter { max }, Lang::Vi) => format!("Trường '{f}' không được sau {max}"),
            (P::DateAfter { max }, Lang::En) => format!("Field '{f}' cannot be after {max}"),
            (P::NotAnOption { options }, Lang::Vi) => {
                format!("Trường '{f}' phải là một trong: {}", options.join(", "))
            }
            (P::NotAnOption { options }, Lang::En) => {
                format!("Field '{f}' must be one of: {}", options.join(", "))
            }
            (P::BadCitizenId { reason, error }, Lang::Vi) => format!(
                "Trường '{f}': số định danh cá nhân {}",
                error
                    .as_ref()
                    .map_or(reason.clone(), |e| e.message(Lang::Vi))
            ),
            (P::BadCitizenId { reason, error }, Lang::En) => format!(
                "Field '{f}': the personal identification number {}",
                error
                    .as_ref()
                    .map_or(reason.clone(), |e| e.message(Lang::En))
            ),
            (P::BadPhone, Lang::Vi) => format!("Trường '{f}' không phải số điện thoại Việt Nam"),
            (P::BadPhone, Lang::En) => format!("Field '{f}' is not a Vietnamese phone number"),
            (P::NotOnForm, Lang::Vi) => {
                format!("Trường '{f}': số định danh không khớp với số nào trên tờ khai")
            }
            (P::NotOnForm, Lang::En) => {
                format!("Field '{f}': the number matches none of the form's ID numbers")
            }
        }
    }
}

/// Where a submitted document component comes from (digitisation state, DOMAIN.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DocumentSource {
    /// A file uploaded for this dossier (digitisation state 1).
    Upload,
    /// Reused from the applicant's electronic data store (state 2).
    Store,
    /// Reused from another dossier's result (state 3).
    Dossier,
    /// Handed in on paper and not scanned (state 0): paper dossiers at the counter only.
    Paper,
}

impl DocumentSource {
    pub fn digitisation_state(self) -> u8 {
        match self {
            DocumentSource::Upload => 1,
            DocumentSource::Store => 2,
            DocumentSource::Dossier => 3,
            DocumentSource::Paper => 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SubmittedDocument {
    /// Component code from the procedure's `documents`.
    pub code: String,
    pub source: DocumentSource,
    /// Upload id, store item id or dossier code, depending on `source`.
    pub reference: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case", tag = "problem")]
pub enum DocumentProblem {
    Missing,
    Unknown,
    Duplicate,
    NotReusable,
    EmptyReference,
    /// Longer than [`crate::bounds::MAX_REFERENCE_CHARS`].
    ReferenceTooLong,
    /// No upload of the caller's has this id (unknown and someone else's look alike).
    UploadUnknown,
    /// The upload is not verified (yet, or ever).
    UploadNotVerified {
        status: crate::upload::UploadStatus,
    },
    /// Another dossier cites the upload already.
    UploadCited,
    /// The upload was declared for another procedure or document.
    UploadForAnotherDocument,
    /// No document of the caller's store has this id.
    StoredUnknown,
    /// A paper-only component: only a dossier registered at the counter has those.
    PaperAtCounterOnly,
    /// No dossier of the caller's with a result has this code.
    DossierUnknown,
    /// The files of one dossier exceed the total allowed.
    FilesTooLarge {
        max: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DocumentError {
    pub document: String,
    #[serde(flatten)]
    pub problem: DocumentProblem,
}

impl Localized for DocumentError {
    fn message(&self, lang: Lang) -> String {
        let d = &self.document;
        use DocumentProblem as P;
        match (&self.problem, lang) {
            (P::Missing, Lang::Vi) => format!("Thiếu thành phần hồ sơ bắt buộc '{d}'"),
            (P::Missing, Lang::En) => format!("Mandatory document '{d}' is missing"),
            (P::Unknown, Lang::Vi) => format!("Thủ tục không có thành phần hồ sơ '{d}'"),
            (P::Unknown, Lang::En) => format!("The procedure has no document '{d}'"),
            (P::Duplicate, Lang::Vi) => format!("Thành phần hồ sơ '{d}' được nộp hai lần"),
            (P::Duplicate, Lang::En) => format!("Document '{d}' is given twice"),
            (P::NotReusable, Lang::Vi) => {
                format!("Thành phần '{d}' phải nộp bản mới, không được dùng lại")
            }
            (P::NotReusable, Lang::En) => {
                format!("Document '{d}' must be uploaded, it cannot be reused")
            }
            (P::EmptyReference, Lang::Vi) => format!("Thành phần '{d}' thiếu tham chiếu tệp"),
            (P::EmptyReference, Lang::En) => format!("Document '{d}' has no file reference"),
            (P::ReferenceTooLong, Lang::Vi) => format!(
                "Tham chiếu tệp của thành phần '{d}' dài quá {} ký tự",
                crate::bounds::MAX_REFERENCE_CHARS
            ),
            (P::ReferenceTooLong, Lang::En) => format!(
                "The file reference of document '{d}' is longer than {} characters",
                crate::bounds::MAX_REFERENCE_CHARS
            ),
            (P::UploadUnknown, Lang::Vi) => {
                format!("Không tìm thấy tệp của bạn cho thành phần '{d}'")
            }
            (P::UploadUnknown, Lang::En) => format!("Document '{d}' names no upload of yours"),
            (P::UploadNotVerified { status }, Lang::Vi) => format!(
                "Tệp của thành phần '{d}' chưa được kiểm tra đạt yêu cầu (trạng thái: {})",
                upload_status(*status)
            ),
            (P::UploadNotVerified { status }, Lang::En) => format!(
                "The file of document '{d}' is not verified (status: {})",
                upload_status(*status)
            ),
            (P::UploadCited, Lang::Vi) => {
                format!("Tệp của thành phần '{d}' đã được dùng cho hồ sơ khác")
            }
            (P::UploadCited, Lang::En) => {
                format!("The file of document '{d}' is already part of another dossier")
            }
            (P::UploadForAnotherDocument, Lang::Vi) => {
                format!("Tệp của thành phần '{d}' được tải lên cho thủ tục hoặc thành phần khác")
            }
            (P::UploadForAnotherDocument, Lang::En) => {
                format!("The file of document '{d}' was uploaded for another procedure or document")
            }
            (P::StoredUnknown, Lang::Vi) => {
                format!("Kho dữ liệu của bạn không có giấy tờ cho thành phần '{d}'")
            }
            (P::StoredUnknown, Lang::En) => {
                format!("Document '{d}' names nothing in your document store")
            }
            (P::PaperAtCounterOnly, Lang::Vi) => format!(
                "Thành phần '{d}' phải là bản điện tử; bản giấy chỉ nộp tại bộ phận một cửa"
            ),
            (P::PaperAtCounterOnly, Lang::En) => format!(
                "Document '{d}' must be electronic; paper is handed in at the one-stop desk"
            ),
            (P::DossierUnknown, Lang::Vi) => {
                format!("Không có hồ sơ đã có kết quả của bạn cho thành phần '{d}'")
            }
            (P::DossierUnknown, Lang::En) => {
                format!("Document '{d}' names no dossier of yours with a result")
            }
            (P::FilesTooLarge { max }, Lang::Vi) => {
                format!("Tổng dung lượng tệp của hồ sơ vượt {max} byte (tại thành phần '{d}')")
            }
            (P::FilesTooLarge { max }, Lang::En) => {
                format!("The dossier's files exceed {max} bytes in total (at document '{d}')")
            }
        }
    }
}

fn upload_status(s: crate::upload::UploadStatus) -> &'static str {
    use crate::upload::UploadStatus as U;
    match s {
        U::AwaitingFile => "awaiting_file",
        U::Verified => "verified",
        U::Rejected => "rejected",
        U::Expired => "expired",
    }
}

/// Everything wrong with a submission, so the applicant can fix it all at once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct SubmissionErrors {
    pub fields: Vec<FieldError>,
    pub documents: Vec<DocumentError>,
}

impl SubmissionErrors {
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.documents.is_empty()
    }
    pub fn messages(&self, lang: Lang) -> Vec<String> {
        self.fields
            .iter()
            .map(|e| e.message(lang))
            .chain(self.documents.iter().map(|e| e.message(lang)))
            .collect()
    }
}

impl Procedure {
    /// Checks a form against this procedure and returns it normalised (phones in E.164,
    /// trimmed text), or every problem found.
    pub fn validate_form(
        &self,
        form: &BTreeMap<String, Value>,
    ) -> Result<BTreeMap<String, Value>, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut out = BTreeMap::new();
        for name in form.keys() {
            if !self.fields.iter().any(|f| &f.name == name) {
                // The name is the caller's: shortened, as every echo of input is.
                errors.push(FieldError {
                    field: crate::bounds::shorten(name, 64),
                    problem: FieldProblem::Unknown,
                });
            }
        }
        for field in &self.fields {
            let value = form.get(&field.name).filter(|v| !is_blank(v));
            let Some(value) = value else {
                if field.required {
                    errors.push(FieldError {
                        field: field.name.clone(),
                        problem: FieldProblem::Missing,
                    });
                }
                continue;
            };
            match check_field(&field.kind, value) {
                Ok(v) => {
                    out.insert(field.name.clone(), v);
                }
                Err(problem) => errors.push(FieldError {
                    field: field.name.clone(),
                    problem,
                }),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    /// Checks the submitted documents: every mandatory one present, no unknown or duplicate
    /// component, reuse only where the procedure allows it.
    pub fn validate_documents(&self, docs: &[SubmittedDocument]) -> Vec<DocumentError> {
        let mut errors = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for d in docs {
            // Echoed in messages: never more than a short prefix of what was sent.
            let err = |problem| DocumentError {
                document: crate::bounds::shorten(&d.code, 64),
                problem,
            };
            let Some(req) = self.documents.iter().find(|r| r.code == d.code) else {
                errors.push(err(DocumentProblem::Unknown));
                continue;
            };
            if !seen.insert(d.code.as_str()) {
                errors.push(err(DocumentProblem::Duplicate));
                continue;
            }
            if d.reference.trim().is_empty() && d.source != DocumentSource::Paper {
                errors.push(err(DocumentProblem::EmptyReference));
            } else if d.reference.chars().count() > crate::bounds::MAX_REFERENCE_CHARS {
                errors.push(err(DocumentProblem::ReferenceTooLong));
            }
            if matches!(d.source, DocumentSource::Store | DocumentSource::Dossier) && !req.reusable
            {
                errors.push(err(DocumentProblem::NotReusable));
            }
        }
        for req in self.documents.iter().filter(|r| r.mandatory) {
            if !seen.contains(req.code.as_str()) {
                errors.push(DocumentError {
                    document: req.code.clone(),
                    problem: DocumentProblem::Missing,
                });
            }
        }
        errors
    }
}

fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

fn check_field(kind: &FieldKind, value: &Value) -> Result<Value, FieldProblem> {
    let want = |expected: &str| FieldProblem::WrongType {
        expected: expected.to_owned(),
    };
    match kind {
        FieldKind::Text { min_len, max_len } => {
            let s = value.as_str().ok_or_else(|| want("string"))?.trim();
            let n = s.chars().count() as u32;
            if let Some(min) = min_len
                && n < *min
            {
                return Err(FieldProblem::TooShort { min: *min });
            }
            if n > max_len.unwrap_or(2000) {
                return Err(FieldProblem::TooLong {
                    max: max_len.unwrap_or(2000),
                });
            }
            Ok(Value::String(s.to_owned()))
        }
        FieldKind::Number { min, max, integer } => {
            let n = match value {
                Value::Number(n) => n.as_f64().ok_or_else(|| want("number"))?,
                Value::String(s) => s.trim().parse::<f64>().map_err(|_| want("number"))?,
                _ => return Err(want("number")),
            };
            if !n.is_finite() {
                return Err(want("number"));
            }
            if *integer && n.fract() != 0.0 {
                return Err(FieldProblem::NotInteger);
            }
            if let Some(min) = min
                && n < *min
            {
                return Err(FieldProblem::BelowMin { min: *min });
            }
            if let Some(max) = max
                && n > *max
            {
                return Err(FieldProblem::AboveMax { max: *max });
            }
            Ok(if *integer {
                Value::from(n as i64)
            } else {
                Value::from(n)
            })
        }
        FieldKind::Date { min, max } => {
            let s = value.as_str().ok_or(FieldProblem::BadDate)?.trim();
            let d: Date = s.parse().map_err(|_| FieldProblem::BadDate)?;
            if s.len() != 10 {
                return Err(FieldProblem::BadDate);
            }
            if let Some(min) = min
                && d < *min
            {
                return Err(FieldProblem::DateBefore {
                    min: min.to_string(),
                });
            }
            if let Some(max) = max
                && d > *max
            {
                return Err(FieldProblem::DateAfter {
                    max: max.to_string(),
                });
            }
            Ok(Value::String(d.to_string()))
        }
        FieldKind::Select { options } => {
            let s = value.as_str().ok_or_else(|| want("string"))?.trim();
            if options.iter().any(|o| o == s) {
                Ok(Value::String(s.to_owned()))
            } else {
                Err(FieldProblem::NotAnOption {
                    options: options.clone(),
                })
            }
        }
        FieldKind::CitizenId => {
            let s = value.as_str().ok_or_else(|| want("string"))?;
            let id = CitizenId::parse(s).map_err(|e| FieldProblem::BadCitizenId {
                reason: e.to_string(),
                error: Some(e),
            })?;
            Ok(Value::String(id.as_str().to_owned()))
        }
        FieldKind::Phone => {
            let s = value.as_str().ok_or_else(|| want("string"))?;
            let p = PhoneNumber::parse(s).map_err(|_| FieldProblem::BadPhone)?;
            Ok(Value::String(p.as_str().to_owned()))
        }
    }
}

/// The demo catalogue shipped with the local runner: real procedure types with plausible
/// processing times and fees.
pub fn demo_catalogue() -> Vec<Procedure> {
    serde_json::from_str(include_str!("../data/demo_catalogue.json"))
        .expect("the shipped demo catalogue parses")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn proc(code: &str) -> Procedure {
        demo_catalogue()
            .into_iter()
            .find(|p| p.code == code)
            .unwrap()
    }

    fn form(v: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn demo_catalogue_is_sound() {
        let cat = demo_catalogue();
        assert!(cat.len() >= 8);
        let mut codes: Vec<_> = cat.iter().map(|p| p.code.clone()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), cat.len(), "procedure codes are unique");
        for p in &cat {
            assert!(!p.fields.is_empty(), "{}", p.code);
            assert!(p.documents.iter().any(|d| d.mandatory), "{}", p.code);
        }
    }

    #[test]
    fn valid_form_is_normalised() {
        let p = proc("1.001193");
        let out = p
            .validate_form(&form(json!({
                "child_name": "  Nguyễn Văn An ",
                "child_birth_date": "2026-11-20",
                "child_sex": "male",
                "mother_id": "037153000257",
                "contact_phone": "091 234 5678"
            })))
            .unwrap();
        assert_eq!(out["child_name"], "Nguyễn Văn An");
        assert_eq!(out["contact_phone"], "+84912345678");
    }

    #[test]
    fn every_problem_is_reported() {
        let p = proc("1.001193");
        let errs = p
            .validate_form(&form(json!({
                "child_birth_date": "20/11/2026",
                "child_sex": "other",
                "mother_id": "12",
                "contact_phone": "12345",
                "favourite_colour": "blue"
            })))
            .unwrap_err();
        let problems: Vec<_> = errs
            .iter()
            .map(|e| (e.field.as_str(), &e.problem))
            .collect();
        assert!(problems.contains(&("favourite_colour", &FieldProblem::Unknown)));
        assert!(problems.contains(&("child_name", &FieldProblem::Missing)));
        assert!(problems.contains(&("child_birth_date", &FieldProblem::BadDate)));
        assert!(problems.contains(&("contact_phone", &FieldProblem::BadPhone)));
        assert!(
            problems
                .iter()
                .any(|(f, p)| *f == "child_sex" && matches!(p, FieldProblem::NotAnOption { .. }))
        );
        assert!(
            problems
                .iter()
                .any(|(f, p)| *f == "mother_id" && matches!(p, FieldProblem::BadCitizenId { .. }))
        );
        assert!(errs[0].message(Lang::Vi).contains("Trường"));
    }

    #[test]
    fn documents_rules() {
        let p = proc("1.001193");
        let errs = p.validate_documents(&[SubmittedDocument {
            code: "giay-chung-sinh".into(),
            source: DocumentSource::Store,
            reference: "x".into(),
        }]);
        assert!(
            errs.iter()
                .any(|e| e.problem == DocumentProblem::NotReusable)
        );
        assert!(errs.iter().any(|e| e.problem == DocumentProblem::Missing));
    }
}
