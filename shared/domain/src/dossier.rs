//! The dossier (hồ sơ) and its lifecycle with the national status codes 1–10
//! (Decree 61/2018/NĐ-CP, Circular 01/2018/TT-VPCP).

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::calendar::{WorkingCalendar, local_date};
use crate::catalogue::{Procedure, SubmittedDocument};
use crate::i18n::{Lang, Localized};
use crate::ids::{AgencyCode, DossierCode};
use crate::money::Money;

/// Working days after intake within which a supplement may still be requested.
pub const SUPPLEMENT_WINDOW_DAYS: u32 = 3;

/// National dossier status codes, shared with the National Public Service Portal.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// 1 Mới đăng ký: submitted online, awaiting intake.
    Submitted,
    /// 2 Được tiếp nhận: received, receipt with due date issued.
    Received,
    /// 3 Không được tiếp nhận: refused at intake.
    NotReceived,
    /// 4 Đang xử lý.
    Processing,
    /// 5 Yêu cầu bổ sung giấy tờ.
    SupplementRequested,
    /// 6 Yêu cầu thực hiện nghĩa vụ tài chính.
    PaymentRequested,
    /// 7 Công dân yêu cầu rút hồ sơ.
    Withdrawn,
    /// 8 Dừng xử lý.
    Stopped,
    /// 9 Đã xử lý xong.
    Completed,
    /// 10 Đã trả kết quả.
    Returned,
}

impl Status {
    pub const ALL: [Status; 10] = [
        Status::Submitted,
        Status::Received,
        Status::NotReceived,
        Status::Processing,
        Status::SupplementRequested,
        Status::PaymentRequested,
        Status::Withdrawn,
        Status::Stopped,
        Status::Completed,
        Status::Returned,
    ];

    pub fn code(self) -> u8 {
        match self {
            Status::Submitted => 1,
            Status::Received => 2,
            Status::NotReceived => 3,
            Status::Processing => 4,
            Status::SupplementRequested => 5,
            Status::PaymentRequested => 6,
            Status::Withdrawn => 7,
            Status::Stopped => 8,
            Status::Completed => 9,
            Status::Returned => 10,
        }
    }

    pub fn from_code(code: u8) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.code() == code)
    }

    pub fn name_vi(self) -> &'static str {
        match self {
            Status::Submitted => "Mới đăng ký",
            Status::Received => "Được tiếp nhận",
            Status::NotReceived => "Không được tiếp nhận",
            Status::Processing => "Đang xử lý",
            Status::SupplementRequested => "Yêu cầu bổ sung giấy tờ",
            Status::PaymentRequested => "Yêu cầu thực hiện nghĩa vụ tài chính",
            Status::Withdrawn => "Công dân yêu cầu rút hồ sơ",
            Status::Stopped => "Dừng xử lý",
            Status::Completed => "Đã xử lý xong",
            Status::Returned => "Đã trả kết quả",
        }
    }

    pub fn name_en(self) -> &'static str {
        match self {
            Status::Submitted => "Submitted",
            Status::Received => "Received",
            Status::NotReceived => "Not received",
            Status::Processing => "Processing",
            Status::SupplementRequested => "Supplement requested",
            Status::PaymentRequested => "Payment requested",
            Status::Withdrawn => "Withdrawn",
            Status::Stopped => "Stopped",
            Status::Completed => "Completed",
            Status::Returned => "Result returned",
        }
    }

    pub fn name(self, lang: Lang) -> &'static str {
        lang.pick(self.name_vi(), self.name_en())
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Submitted => "submitted",
            Status::Received => "received",
            Status::NotReceived => "not_received",
            Status::Processing => "processing",
            Status::SupplementRequested => "supplement_requested",
            Status::PaymentRequested => "payment_requested",
            Status::Withdrawn => "withdrawn",
            Status::Stopped => "stopped",
            Status::Completed => "completed",
            Status::Returned => "returned",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        if let Ok(code) = s.parse::<u8>() {
            return Status::from_code(code);
        }
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// No action leads out of a final status.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::NotReceived | Status::Withdrawn | Status::Returned
        )
    }

    /// The agency is waiting for the applicant, not working: the deadline is suspended.
    pub fn waits_for_applicant(self) -> bool {
        matches!(self, Status::SupplementRequested)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Citizen,
    Officer,
    Admin,
    System,
    /// A leader of the province (or, with an agency, of one agency): reads the KPI
    /// reports, nothing else.
    Leader,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Citizen => "citizen",
            Role::Officer => "officer",
            Role::Admin => "admin",
            Role::System => "system",
            Role::Leader => "leader",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [
            Role::Citizen,
            Role::Officer,
            Role::Admin,
            Role::System,
            Role::Leader,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// Who asks for a transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub role: Role,
    /// Subject of the token (account id); never an ID number.
    pub subject: String,
    /// Whose dossiers a citizen's token opens: the person's (or business's) stable owner
    /// reference (`own` claim, derived from the keyed ID hash by the identity function),
    /// which survives the account's erasure and a later sign-in with a new account id.
    /// `None` (officers, development and level-1 tokens): the subject.
    pub owner: Option<String>,
    /// Officers act for one agency.
    pub agency: Option<AgencyCode>,
    /// Identity assurance of a citizen's account: 1 self-declared, 2 matched against the
    /// national registry (officers, admins and development tokens: 2).
    pub assurance: u8,
}

impl Actor {
    /// Matched against the national population or business registry.
    pub const REGISTRY_MATCHED: u8 = 2;

    /// The owner reference a citizen's dossiers are filed under.
    pub fn owner(&self) -> &str {
        self.owner.as_deref().unwrap_or(&self.subject)
    }

    /// Whether a dossier filed under `applicant` is this citizen's: under their owner
    /// reference, or under their account id (how earlier versions filed dossiers; account
    /// ids are UUIDs, which no owner reference or development subject is mistaken for).
    pub fn owns(&self, applicant: &str) -> bool {
        self.owner() == applicant
            || (self.subject == applicant && Uuid::parse_str(&self.subject).is_ok())
    }
}

/// The outcome recorded when processing completes (status 9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum DossierResult {
    Approved {
        /// Reference of the result document (e.g. the certificate number).
        #[serde(default)]
        document: Option<String>,
        #[serde(default)]
        note: Option<String>,
        /// The result file: a verified upload of the officer's (`POST /v1/uploads`). It
        /// enters the applicant's document store, readable by them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file: Option<Uuid>,
    },
    Rejected {
        reason: String,
    },
}

/// Everything an actor can ask of a dossier.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Command {
    /// Officer: accept at intake and issue the receipt with a due date (1 → 2).
    Receive,
    /// Officer: refuse at intake (1 → 3), reason required (Mẫu 03).
    Refuse { reason: String },
    /// Officer: list everything missing, once (Mẫu 02) (1, 2, 4 → 5).
    RequestSupplement {
        items: Vec<String>,
        #[serde(default)]
        note: Option<String>,
    },
    /// Officer: ask the applicant to pay the fee (2, 4 → 6).
    RequestPayment {
        #[serde(default)]
        #[schema(value_type = Option<u64>)]
        amount: Option<Money>,
    },
    /// Officer or system: payment confirmed (6 → 4).
    ConfirmPayment {
        #[serde(default)]
        reference: Option<String>,
    },
    /// Officer: start processing (2 → 4).
    Process,
    /// Officer: stop / pause processing (2, 4, 5, 6 → 8), reason required.
    Stop { reason: String },
    /// Officer: resume a stopped dossier (8 → 4).
    Resume,
    /// Officer: processing finished with a result (4 → 9).
    Complete { result: DossierResult },
    /// Officer: result handed over to the applicant (9 → 10).
    ReturnResult,
    /// Officer: one extension with an apology letter (Mẫu 04) and a new due date.
    Extend {
        #[schema(value_type = String, format = Date)]
        new_due_date: Date,
        reason: String,
    },
    /// Applicant: withdraw the dossier (1, 2, 4, 5, 6, 8 → 7).
    Withdraw {
        #[serde(default)]
        reason: Option<String>,
    },
    /// Applicant: send what was asked for (5 → the status before the request). The
    /// processing time restarts (Decree 61 Art. 19.4).
    Supplement {
        documents: Vec<SubmittedDocument>,
        #[serde(default)]
        note: Option<String>,
    },
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::Receive => "receive",
            Command::Refuse { .. } => "refuse",
            Command::RequestSupplement { .. } => "request_supplement",
            Command::RequestPayment { .. } => "request_payment",
            Command::ConfirmPayment { .. } => "confirm_payment",
            Command::Process => "process",
            Command::Stop { .. } => "stop",
            Command::Resume => "resume",
            Command::Complete { .. } => "complete",
            Command::ReturnResult => "return_result",
            Command::Extend { .. } => "extend",
            Command::Withdraw { .. } => "withdraw",
            Command::Supplement { .. } => "supplement",
        }
    }

    fn allowed_roles(&self) -> &'static [Role] {
        match self {
            Command::Withdraw { .. } | Command::Supplement { .. } => &[Role::Citizen],
            Command::ConfirmPayment { .. } => &[Role::Officer, Role::System],
            _ => &[Role::Officer],
        }
    }
}

/// The applicant as the dossier records them. Contact data is personal: never logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applicant {
    /// The owner: [`Actor::owner`] of the citizen who submitted (the person's stable
    /// reference, not the account id, so an erased and re-created account finds its
    /// dossiers again).
    pub subject: String,
    /// E.164, for SMS notifications and the public lookup.
    pub phone: Option<String>,
    /// The account that submitted (the token's subject), where status messages find the
    /// email address, the language and the channels the holder wants. `None` for
    /// development tokens and paper dossiers; an erased account is simply not found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dossier {
    pub id: Uuid,
    pub code: DossierCode,
    /// Printed on the receipt next to the code: with it, anyone holding the receipt can
    /// follow the status (`GET /v1/lookup`); without it, nobody can. Not personal data.
    #[serde(default)]
    pub lookup_key: LookupKey,
    pub procedure_code: String,
    pub procedure_name: String,
    pub agency: AgencyCode,
    /// How it reached the agency (dossiers of earlier versions were all online).
    #[serde(default)]
    pub channel: crate::intake::IntakeChannel,
    pub applicant: Applicant,
    pub form: BTreeMap<String, Value>,
    pub documents: Vec<SubmittedDocument>,
    pub status: Status,
    pub fee: Money,
    pub processing_days: u32,
    pub submitted_at: Timestamp,
    pub received_at: Option<Timestamp>,
    /// The working day the processing clock (re)started on.
    pub clock_started_on: Option<Date>,
    pub due_date: Option<Date>,
    pub extended: bool,
    pub supplement_requested: bool,
    /// What the applicant must still provide (while status 5).
    pub missing_items: Vec<String>,
    /// Status to go back to when the supplement arrives.
    pub resume_status: Option<Status>,
    pub amount_due: Option<Money>,
    /// The version of the dossier the current payment request (status 6) produced: the
    /// key of the fee it asks for ([`crate::payment::FeeDue`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_request: Option<u64>,
    /// The catalogue asks for the procedure's fee when the dossier is submitted.
    #[serde(default)]
    pub fee_at_submission: bool,
    /// Fees paid, online or at the counter, each with its receipt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fees: Vec<crate::payment::FeePaid>,
    pub result: Option<DossierResult>,
    pub finished_at: Option<Timestamp>,
    pub version: u64,
    pub updated_at: Timestamp,
}

/// One line of a dossier's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HistoryEntry {
    /// 1-based; equals the dossier version the entry produced.
    pub seq: u64,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    pub actor_role: Role,
    pub actor: String,
    pub action: String,
    pub from: Option<Status>,
    pub to: Status,
    pub note: Option<String>,
}

/// Why a transition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("role {role:?} may not {action}")]
    WrongRole { action: &'static str, role: Role },
    #[error("not the applicant of this dossier")]
    NotOwner,
    #[error("officer of another agency")]
    OtherAgency,
    #[error("cannot {action} a dossier in status {from:?}")]
    NotAllowed { action: &'static str, from: Status },
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("supplement already requested once")]
    SupplementAlreadyRequested,
    #[error("supplement window of {SUPPLEMENT_WINDOW_DAYS} working days after intake has passed")]
    SupplementWindowPassed,
    #[error("already extended once")]
    AlreadyExtended,
    #[error("extension must be requested at least one working day before the due date")]
    ExtensionTooLate,
    #[error("new due date must be a working day after the current one")]
    BadNewDueDate,
    #[error("supplement must include documents")]
    EmptySupplement,
    #[error("{field} is longer than {max} characters")]
    TooLong { field: &'static str, max: usize },
    #[error("{field} has more than {max} entries")]
    TooMany { field: &'static str, max: usize },
    #[error("the new due date may be at most {latest}")]
    ExtensionTooLong { latest: Date },
    #[error("the amount may be at most the procedure's fee of {fee}")]
    AmountOverFee { fee: Money },
}

impl TransitionError {
    /// Access problems (403) as opposed to lifecycle conflicts (409) and bad input (422).
    pub fn kind(&self) -> TransitionErrorKind {
        match self {
            TransitionError::WrongRole { .. }
            | TransitionError::NotOwner
            | TransitionError::OtherAgency => TransitionErrorKind::Forbidden,
            TransitionError::Missing(_)
            | TransitionError::BadNewDueDate
            | TransitionError::EmptySupplement
            | TransitionError::TooLong { .. }
            | TransitionError::TooMany { .. }
            | TransitionError::ExtensionTooLong { .. }
            | TransitionError::AmountOverFee { .. } => TransitionErrorKind::Invalid,
            _ => TransitionErrorKind::Conflict,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionErrorKind {
    Forbidden,
    Conflict,
    Invalid,
}

impl Localized for TransitionError {
    fn message(&self, lang: Lang) -> String {
        use TransitionError as E;
        match (self, lang) {
            (E::WrongRole { action, role }, Lang::Vi) => {
                format!(
                    "Vai trò '{}' không được thực hiện '{action}'",
                    role.as_str()
                )
            }
            (E::WrongRole { action, role }, Lang::En) => {
                format!("Role '{}' may not '{action}'", role.as_str())
            }
            (E::NotOwner, Lang::Vi) => "Bạn không phải người nộp hồ sơ này".into(),
            (E::NotOwner, Lang::En) => "You are not the applicant of this dossier".into(),
            (E::OtherAgency, Lang::Vi) => "Hồ sơ thuộc cơ quan khác".into(),
            (E::OtherAgency, Lang::En) => "The dossier belongs to another agency".into(),
            (E::NotAllowed { action, from }, Lang::Vi) => format!(
                "Không thể '{action}' hồ sơ đang ở trạng thái '{}' ({})",
                from.name_vi(),
                from.code()
            ),
            (E::NotAllowed { action, from }, Lang::En) => format!(
                "Cannot '{action}' a dossier in status '{}' ({})",
                from.name_en(),
                from.code()
            ),
            (E::Missing(what), Lang::Vi) => format!("Thiếu thông tin bắt buộc: {what}"),
            (E::Missing(what), Lang::En) => format!("Required: {what}"),
            (E::SupplementAlreadyRequested, Lang::Vi) => {
                "Chỉ được yêu cầu bổ sung một lần, phải nêu đầy đủ mọi thành phần còn thiếu".into()
            }
            (E::SupplementAlreadyRequested, Lang::En) => {
                "A supplement may be requested only once, listing everything missing".into()
            }
            (E::SupplementWindowPassed, Lang::Vi) => format!(
                "Đã quá {SUPPLEMENT_WINDOW_DAYS} ngày làm việc kể từ khi tiếp nhận, không thể yêu cầu bổ sung"
            ),
            (E::SupplementWindowPassed, Lang::En) => format!(
                "More than {SUPPLEMENT_WINDOW_DAYS} working days since intake: a supplement can no longer be requested"
            ),
            (E::AlreadyExtended, Lang::Vi) => "Hồ sơ đã được gia hạn một lần".into(),
            (E::AlreadyExtended, Lang::En) => "The dossier was already extended once".into(),
            (E::ExtensionTooLate, Lang::Vi) => {
                "Phải gia hạn chậm nhất một ngày làm việc trước ngày hẹn trả".into()
            }
            (E::ExtensionTooLate, Lang::En) => {
                "An extension must be made at least one working day before the due date".into()
            }
            (E::BadNewDueDate, Lang::Vi) => {
                "Ngày hẹn trả mới phải là ngày làm việc sau ngày hẹn hiện tại".into()
            }
            (E::BadNewDueDate, Lang::En) => {
                "The new due date must be a working day after the current one".into()
            }
            (E::EmptySupplement, Lang::Vi) => "Hồ sơ bổ sung phải có giấy tờ".into(),
            (E::EmptySupplement, Lang::En) => "A supplement must include documents".into(),
            (E::TooLong { field, max }, Lang::Vi) => {
                format!("Trường '{field}' dài quá {max} ký tự")
            }
            (E::TooLong { field, max }, Lang::En) => {
                format!("'{field}' is longer than {max} characters")
            }
            (E::TooMany { field, max }, Lang::Vi) => {
                format!("Trường '{field}' có quá {max} mục")
            }
            (E::TooMany { field, max }, Lang::En) => {
                format!("'{field}' has more than {max} entries")
            }
            (E::ExtensionTooLong { latest }, Lang::Vi) => format!(
                "Gia hạn không được quá thời hạn giải quyết của thủ tục thêm một lần: ngày hẹn trả mới muộn nhất là {latest}"
            ),
            (E::ExtensionTooLong { latest }, Lang::En) => format!(
                "An extension may add at most the procedure's processing time again: the latest new due date is {latest}"
            ),
            (E::AmountOverFee { fee }, Lang::Vi) => {
                format!("Số tiền không được vượt lệ phí của thủ tục ({fee})")
            }
            (E::AmountOverFee { fee }, Lang::En) => {
                format!("The amount may not exceed the procedure's fee ({fee})")
            }
        }
    }
}

/// The receipt's key for the public status lookup: 10 characters of Crockford's base32
/// (50 random bits), shown as `XXXXX-XXXXX`. Unguessable, so the lookup needs no lock-out
/// and asks for no personal data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LookupKey(String);

impl LookupKey {
    const ALPHABET: &'static [u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

    /// From 50 random bits (the low 50 of `random`).
    pub fn from_random(random: u64) -> LookupKey {
        let mut out = String::with_capacity(11);
        for i in 0..10 {
            if i == 5 {
                out.push('-');
            }
            let v = (random >> (5 * (9 - i))) & 31;
            out.push(Self::ALPHABET[v as usize] as char);
        }
        LookupKey(out)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `typed` is this key, as people type it: any case, with or without the dash
    /// or spaces, `O` for `0`, `I`/`L` for `1` (Crockford); compared in constant time.
    /// An empty key (dossiers from before keys existed) matches nothing.
    pub fn matches(&self, typed: &str) -> bool {
        let norm = |s: &str| -> Vec<u8> {
            s.chars()
                .filter(|c| !matches!(c, '-' | ' '))
                .map(|c| match c.to_ascii_uppercase() {
                    'O' => '0',
                    'I' | 'L' => '1',
                    c => c,
                })
                .map(|c| c as u32 as u8)
                .take(64)
                .collect()
        };
        let (a, b) = (norm(&self.0), norm(typed));
        !a.is_empty()
            && a.len() == b.len()
            && a.iter().zip(&b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// A new dossier as the applicant submits it, already validated against its procedure.
pub struct NewDossier {
    pub id: Uuid,
    pub code: DossierCode,
    /// The receipt's lookup key (random, made by the caller: the domain has no randomness).
    pub lookup_key: LookupKey,
    pub applicant: Applicant,
    pub form: BTreeMap<String, Value>,
    pub documents: Vec<SubmittedDocument>,
    pub submitted_at: Timestamp,
}

fn non_blank(s: &str) -> bool {
    !s.trim().is_empty()
}

impl Dossier {
    /// Creates the dossier in status 1 with its first history entry.
    pub fn submit(procedure: &Procedure, new: NewDossier) -> (Dossier, HistoryEntry) {
        let d = Dossier {
            id: new.id,
            code: new.code,
            lookup_key: new.lookup_key,
            procedure_code: procedure.code.clone(),
            procedure_name: procedure.name.clone(),
            agency: procedure.agency.clone(),
            channel: crate::intake::IntakeChannel::Online,
            applicant: new.applicant,
            form: new.form,
            documents: new.documents,
            status: Status::Submitted,
            fee: procedure.fee,
            processing_days: procedure.processing_days,
            submitted_at: new.submitted_at,
            received_at: None,
            clock_started_on: None,
            due_date: None,
            extended: false,
            supplement_requested: false,
            missing_items: Vec::new(),
            resume_status: None,
            amount_due: None,
            payment_request: None,
            fee_at_submission: procedure.fee_at_submission && !procedure.fee.is_zero(),
            fees: Vec::new(),
            result: None,
            finished_at: None,
            version: 1,
            updated_at: new.submitted_at,
        };
        let h = HistoryEntry {
            seq: 1,
            at: new.submitted_at,
            actor_role: Role::Citizen,
            actor: d.applicant.subject.clone(),
            action: "submit".into(),
            from: None,
            to: Status::Submitted,
            note: None,
        };
        (d, h)
    }

    /// May this actor see the dossier?
    pub fn visible_to(&self, actor: &Actor) -> bool {
        match actor.role {
            Role::Citizen => actor.owns(&self.applicant.subject),
            Role::Officer => actor.agency.as_ref() == Some(&self.agency),
            Role::Admin | Role::System => true,
            Role::Leader => false,
        }
    }

    /// Overdue is computed, never stored: finished after the due date, or still open past it.
    /// While the agency waits for a supplement the clock is suspended.
    pub fn is_overdue(&self, now: Timestamp) -> bool {
        let Some(due) = self.due_date else {
            return false;
        };
        match self.status {
            Status::Completed | Status::Returned => {
                self.finished_at.is_some_and(|f| local_date(f) > due)
            }
            Status::Received | Status::Processing | Status::PaymentRequested | Status::Stopped => {
                local_date(now) > due
            }
            _ => false,
        }
    }

    /// Applies a command: the updated dossier (version + 1) and its history entry, or why not.
    pub fn apply(
        &self,
        actor: &Actor,
        cmd: &Command,
        now: Timestamp,
        cal: &WorkingCalendar,
    ) -> Result<(Dossier, HistoryEntry), TransitionError> {
        let action = cmd.name();
        if !cmd.allowed_roles().contains(&actor.role) {
            return Err(TransitionError::WrongRole {
                action,
                role: actor.role,
            });
        }
        cmd.check_bounds()?;
        match actor.role {
            Role::Citizen if !actor.owns(&self.applicant.subject) => {
                return Err(TransitionError::NotOwner);
            }
            Role::Officer if actor.agency.as_ref() != Some(&self.agency) => {
                return Err(TransitionError::OtherAgency);
            }
            _ => {}
        }
        let from = self.status;
        let not_allowed = || TransitionError::NotAllowed { action, from };
        let mut d = self.clone();
        let mut note: Option<String> = None;
        use Status as S;
        match cmd {
            Command::Receive => {
                if from != S::Submitted {
                    return Err(not_allowed());
                }
                d.status = S::Received;
                d.received_at = Some(now);
                let start = cal.clock_start(now);
                d.clock_started_on = Some(start);
                d.due_date = Some(cal.add_working_days(start, d.processing_days));
            }
            Command::Refuse { reason } => {
                if from != S::Submitted {
                    return Err(not_allowed());
                }
                if !non_blank(reason) {
                    return Err(TransitionError::Missing("reason"));
                }
                d.status = S::NotReceived;
                d.finished_at = Some(now);
                note = Some(reason.trim().to_owned());
            }
            Command::RequestSupplement { items, note: n } => {
                if !matches!(from, S::Submitted | S::Received | S::Processing) {
                    return Err(not_allowed());
                }
                let items: Vec<String> = items
                    .iter()
                    .map(|i| i.trim().to_owned())
                    .filter(|i| !i.is_empty())
                    .collect();
                if items.is_empty() {
                    return Err(TransitionError::Missing("items"));
                }
                if self.supplement_requested {
                    return Err(TransitionError::SupplementAlreadyRequested);
                }
                if let Some(start) = self.clock_started_on
                    && cal.working_days_between(start, local_date(now)) > SUPPLEMENT_WINDOW_DAYS
                {
                    return Err(TransitionError::SupplementWindowPassed);
                }
                d.status = S::SupplementRequested;
                d.supplement_requested = true;
                d.resume_status = Some(from);
                note = Some(match n {
                    Some(n) if non_blank(n) => format!("{}: {}", n.trim(), items.join("; ")),
                    _ => items.join("; "),
                });
                d.missing_items = items;
            }
            Command::Supplement { documents, note: n } => {
                if from != S::SupplementRequested {
                    return Err(not_allowed());
                }
                if documents.is_empty() {
                    return Err(TransitionError::EmptySupplement);
                }
                for doc in documents {
                    d.documents.retain(|x| x.code != doc.code);
                    d.documents.push(doc.clone());
                }
                d.missing_items.clear();
                let back = self.resume_status.unwrap_or(S::Submitted);
                d.status = back;
                d.resume_status = None;
                if back != S::Submitted {
                    // Decree 61 Art. 19.4: the processing time restarts from the complete dossier.
                    let start = cal.clock_start(now);
                    d.clock_started_on = Some(start);
                    d.due_date = Some(cal.add_working_days(start, d.processing_days));
                }
                note = n.clone().filter(|s| non_blank(s));
            }
            Command::RequestPayment { amount } => {
                if !matches!(from, S::Received | S::Processing) {
                    return Err(not_allowed());
                }
                let amount = amount.unwrap_or(self.fee);
                if amount.is_zero() {
                    return Err(TransitionError::Missing("amount"));
                }
                // The fee schedule binds where the catalogue names a fee; a free
                // procedure's amounts are bounded by the function's configured ceiling.
                if !self.fee.is_zero() && amount > self.fee {
                    return Err(TransitionError::AmountOverFee { fee: self.fee });
                }
                d.status = S::PaymentRequested;
                d.amount_due = Some(amount);
                d.payment_request = Some(self.version + 1);
                note = Some(amount.to_string());
            }
            Command::ConfirmPayment { reference } => {
                if from != S::PaymentRequested {
                    return Err(not_allowed());
                }
                d.status = S::Processing;
                if let Some(amount) = self.amount_due {
                    // Paid at the one-stop desk: recorded as such, with its receipt.
                    d.fees.push(crate::payment::FeePaid {
                        key: self.payment_request.unwrap_or(self.version),
                        amount,
                        channel: crate::payment::FeeChannel::Counter,
                        provider: None,
                        payment: None,
                        receipt: crate::payment::receipt_number(&self.code, self.fees.len() + 1),
                        reference: reference.as_ref().map(|r| r.trim().to_owned()),
                        at: now,
                    });
                }
                d.amount_due = None;
                d.payment_request = None;
                note = reference.clone();
            }
            Command::Process => {
                if from != S::Received {
                    return Err(not_allowed());
                }
                d.status = S::Processing;
            }
            Command::Stop { reason } => {
                if !matches!(
                    from,
                    S::Received | S::Processing | S::SupplementRequested | S::PaymentRequested
                ) {
                    return Err(not_allowed());
                }
                if from == S::SupplementRequested && self.received_at.is_none() {
                    // Not received yet: there is no processing to stop; refuse it instead.
                    return Err(not_allowed());
                }
                if !non_blank(reason) {
                    return Err(TransitionError::Missing("reason"));
                }
                d.status = S::Stopped;
                d.resume_status = None;
                d.missing_items.clear();
                d.amount_due = None;
                d.payment_request = None;
                note = Some(reason.trim().to_owned());
            }
            Command::Resume => {
                if from != S::Stopped {
                    return Err(not_allowed());
                }
                d.status = S::Processing;
            }
            Command::Complete { result } => {
                if from != S::Processing {
                    return Err(not_allowed());
                }
                if let DossierResult::Rejected { reason } = result
                    && !non_blank(reason)
                {
                    return Err(TransitionError::Missing("reason"));
                }
                d.status = S::Completed;
                d.finished_at = Some(now);
                note = Some(match result {
                    DossierResult::Approved { note: n, .. } => {
                        n.clone().unwrap_or_else(|| "approved".into())
                    }
                    DossierResult::Rejected { reason } => reason.trim().to_owned(),
                });
                d.result = Some(result.clone());
            }
            Command::ReturnResult => {
                if from != S::Completed {
                    return Err(not_allowed());
                }
                d.status = S::Returned;
            }
            Command::Extend {
                new_due_date,
                reason,
            } => {
                if !matches!(
                    from,
                    S::Received | S::Processing | S::PaymentRequested | S::Stopped
                ) {
                    return Err(not_allowed());
                }
                if !non_blank(reason) {
                    return Err(TransitionError::Missing("reason"));
                }
                if self.extended {
                    return Err(TransitionError::AlreadyExtended);
                }
                let due = self.due_date.ok_or_else(not_allowed)?;
                let today = local_date(now);
                if cal.add_working_days(today, 1) > due {
                    return Err(TransitionError::ExtensionTooLate);
                }
                if *new_due_date <= due || !cal.is_working_day(*new_due_date) {
                    return Err(TransitionError::BadNewDueDate);
                }
                let latest = cal.add_working_days(due, self.processing_days.max(1));
                if *new_due_date > latest {
                    return Err(TransitionError::ExtensionTooLong { latest });
                }
                d.extended = true;
                d.due_date = Some(*new_due_date);
                note = Some(format!("{} → {}: {}", due, new_due_date, reason.trim()));
            }
            Command::Withdraw { reason } => {
                if !matches!(
                    from,
                    S::Submitted
                        | S::Received
                        | S::Processing
                        | S::SupplementRequested
                        | S::PaymentRequested
                        | S::Stopped
                ) {
                    return Err(not_allowed());
                }
                d.status = S::Withdrawn;
                d.finished_at = Some(now);
                d.resume_status = None;
                d.missing_items.clear();
                d.amount_due = None;
                d.payment_request = None;
                note = reason.clone().filter(|s| non_blank(s));
            }
        }
        d.version = self.version + 1;
        d.updated_at = now;
        let h = HistoryEntry {
            seq: d.version,
            at: now,
            actor_role: actor.role,
            actor: actor.subject.clone(),
            action: action.to_owned(),
            from: Some(from),
            to: d.status,
            note,
        };
        Ok((d, h))
    }
}

#[cfg(test)]
mod lookup_key_tests {
    use super::LookupKey;

    #[test]
    fn keys_read_as_people_type_them() {
        let k = LookupKey::from_random(0x2_3456_789A_BCDE);
        assert_eq!(k.as_str().len(), 11);
        assert_eq!(&k.as_str()[5..6], "-");
        assert!(k.matches(k.as_str()));
        assert!(k.matches(&k.as_str().to_lowercase().replace('-', " ")));
        let other = LookupKey::from_random(0x2_3456_789A_BCDF);
        assert_ne!(k, other);
        assert!(!k.matches(other.as_str()));
        assert!(!k.matches(""));
        assert!(!LookupKey::default().matches(""));
        // Crockford's look-alikes.
        let zero = LookupKey::from_random(0);
        assert_eq!(zero.as_str(), "00000-00000");
        assert!(zero.matches("OOOOO-ooooo"));
        let ones = LookupKey::from_random(0x2108_4210_8421);
        assert_eq!(ones.as_str(), "11111-11111");
        assert!(ones.matches("iiiiilllll"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::vietnam_tz;
    use crate::catalogue::{DocumentSource, demo_catalogue};
    use jiff::civil::date;
    use proptest::prelude::*;

    fn at(y: i16, m: i8, d: i8, h: i8) -> Timestamp {
        date(y, m, d)
            .at(h, 0, 0, 0)
            .to_zoned(vietnam_tz())
            .unwrap()
            .timestamp()
    }

    fn procedure() -> Procedure {
        demo_catalogue()
            .into_iter()
            .find(|p| p.code == "2.000505")
            .unwrap()
    }

    fn citizen() -> Actor {
        Actor {
            role: Role::Citizen,
            subject: "citizen-1".into(),
            agency: None,
            assurance: 2,
            owner: None,
        }
    }

    fn officer() -> Actor {
        Actor {
            role: Role::Officer,
            subject: "officer-1".into(),
            agency: Some(procedure().agency),
            assurance: 2,
            owner: None,
        }
    }

    fn new_dossier(now: Timestamp) -> Dossier {
        let p = procedure();
        Dossier::submit(
            &p,
            NewDossier {
                lookup_key: LookupKey::from_random(0x2_3456_789A_BCDE),
                id: Uuid::nil(),
                code: DossierCode::new(&p.agency, local_date(now), 1),
                applicant: Applicant {
                    subject: "citizen-1".into(),
                    phone: Some("+84912345678".into()),
                    account: None,
                },
                form: BTreeMap::new(),
                documents: vec![],
                submitted_at: now,
            },
        )
        .0
    }

    fn doc() -> SubmittedDocument {
        SubmittedDocument {
            code: "to-khai".into(),
            source: DocumentSource::Upload,
            reference: "u-2".into(),
        }
    }

    #[test]
    fn status_codes_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::from_code(s.code()), Some(s));
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::from_code(11), None);
    }

    #[test]
    fn happy_path_with_due_date() {
        let cal = WorkingCalendar::vietnam();
        let t0 = at(2026, 3, 17, 9);
        let d = new_dossier(t0);
        let (d, h) = d.apply(&officer(), &Command::Receive, t0, cal).unwrap();
        assert_eq!(d.status, Status::Received);
        assert_eq!(d.due_date, Some(date(2026, 3, 31)));
        assert_eq!(
            (h.seq, h.from, h.to),
            (2, Some(Status::Submitted), Status::Received)
        );
        let (d, _) = d.apply(&officer(), &Command::Process, t0, cal).unwrap();
        let (d, _) = d
            .apply(
                &officer(),
                &Command::RequestPayment { amount: None },
                t0,
                cal,
            )
            .unwrap();
        assert_eq!(d.amount_due, Some(Money::vnd(200_000)));
        let (d, _) = d
            .apply(
                &officer(),
                &Command::ConfirmPayment { reference: None },
                t0,
                cal,
            )
            .unwrap();
        let result = DossierResult::Approved {
            file: None,
            document: Some("LLTP-1".into()),
            note: None,
        };
        let (d, _) = d
            .apply(
                &officer(),
                &Command::Complete { result },
                at(2026, 3, 30, 9),
                cal,
            )
            .unwrap();
        let (d, h) = d
            .apply(&officer(), &Command::ReturnResult, at(2026, 3, 31, 9), cal)
            .unwrap();
        assert_eq!(d.status, Status::Returned);
        assert_eq!(d.version, 7);
        assert_eq!(h.seq, 7);
        assert!(!d.is_overdue(at(2027, 1, 1, 9)));
    }

    #[test]
    fn supplement_restarts_clock_once() {
        let cal = WorkingCalendar::vietnam();
        let t0 = at(2026, 3, 17, 9);
        let d = new_dossier(t0);
        let (d, _) = d.apply(&officer(), &Command::Receive, t0, cal).unwrap();
        let req = Command::RequestSupplement {
            items: vec!["Bản sao CCCD".into(), "  ".into()],
            note: None,
        };
        let (d, _) = d.apply(&officer(), &req, at(2026, 3, 18, 9), cal).unwrap();
        assert_eq!(d.missing_items, vec!["Bản sao CCCD".to_string()]);
        let sup = Command::Supplement {
            documents: vec![doc()],
            note: None,
        };
        let (d, _) = d.apply(&citizen(), &sup, at(2026, 3, 24, 9), cal).unwrap();
        assert_eq!(d.status, Status::Received);
        assert_eq!(d.clock_started_on, Some(date(2026, 3, 24)));
        assert_eq!(d.due_date, Some(date(2026, 4, 7)));
        assert_eq!(
            d.apply(&officer(), &req, at(2026, 3, 24, 10), cal)
                .unwrap_err(),
            TransitionError::SupplementAlreadyRequested
        );
    }

    #[test]
    fn supplement_window() {
        let cal = WorkingCalendar::vietnam();
        let t0 = at(2026, 3, 17, 9);
        let (d, _) = new_dossier(t0)
            .apply(&officer(), &Command::Receive, t0, cal)
            .unwrap();
        let req = Command::RequestSupplement {
            items: vec!["x".into()],
            note: None,
        };
        assert_eq!(
            d.apply(&officer(), &req, at(2026, 3, 23, 9), cal)
                .unwrap_err(),
            TransitionError::SupplementWindowPassed
        );
        assert!(d.apply(&officer(), &req, at(2026, 3, 20, 9), cal).is_ok());
    }

    #[test]
    fn who_may_act() {
        let cal = WorkingCalendar::vietnam();
        let t0 = at(2026, 3, 17, 9);
        let d = new_dossier(t0);
        assert!(matches!(
            d.apply(&citizen(), &Command::Receive, t0, cal),
            Err(TransitionError::WrongRole { .. })
        ));
        let other_officer = Actor {
            agency: Some(AgencyCode::parse("000.00.99.H42").unwrap()),
            ..officer()
        };
        assert_eq!(
            d.apply(&other_officer, &Command::Receive, t0, cal)
                .unwrap_err(),
            TransitionError::OtherAgency
        );
        let stranger = Actor {
            subject: "citizen-2".into(),
            ..citizen()
        };
        assert_eq!(
            d.apply(&stranger, &Command::Withdraw { reason: None }, t0, cal)
                .unwrap_err(),
            TransitionError::NotOwner
        );
        assert!(d.visible_to(&citizen()) && !d.visible_to(&stranger));
        assert!(d.visible_to(&officer()) && !d.visible_to(&other_officer));
    }

    #[test]
    fn refusal_needs_reason_and_is_final() {
        let cal = WorkingCalendar::vietnam();
        let t0 = at(2026, 3, 17, 9);
        let d = new_dossier(t0);
        let blank = Command::Refuse { reason: " ".into() };
        assert_eq!(
            d.apply(&officer(), &blank, t0, cal).unwrap_err(),
            TransitionError::Missing("reason")
        );
        let refuse = Command::Refuse {
            reason: "Không thuộc thẩm quyền".into(),
        };
        let (d, h) = d.apply(&officer(), &refuse, t0, cal).unwrap();
        assert_eq!(d.status, Status::NotReceived);
        assert_eq!(h.note.as_deref(), Some("Không thuộc thẩm quyền"));
        let err = d.apply(&officer(), &Command::Receive, t0, cal).unwrap_err();
        assert!(err.message(Lang::Vi).contains("Không được tiếp nhận"));
        assert!(err.message(Lang::En).contains("Not received"));
    }

    #[test]
    fn extension_rules_and_overdue() {
        let cal = WorkingCalendar::vietnam();
        let t0 = at(2026, 3, 17, 9);
        let (d, _) = new_dossier(t0)
            .apply(&officer(), &Command::Receive, t0, cal)
            .unwrap();
        assert_eq!(d.due_date, Some(date(2026, 3, 31)));
        assert!(!d.is_overdue(at(2026, 3, 31, 16)));
        assert!(d.is_overdue(at(2026, 4, 1, 8)));
        let ext = |day| Command::Extend {
            new_due_date: day,
            reason: "Cần xác minh thêm".into(),
        };
        // On the due date itself: too late.
        assert_eq!(
            d.apply(&officer(), &ext(date(2026, 4, 7)), at(2026, 3, 31, 9), cal)
                .unwrap_err(),
            TransitionError::ExtensionTooLate
        );
        // New date on a Saturday: refused.
        assert_eq!(
            d.apply(&officer(), &ext(date(2026, 4, 4)), at(2026, 3, 27, 9), cal)
                .unwrap_err(),
            TransitionError::BadNewDueDate
        );
        let (d2, _) = d
            .apply(&officer(), &ext(date(2026, 4, 7)), at(2026, 3, 30, 9), cal)
            .unwrap();
        assert_eq!(d2.due_date, Some(date(2026, 4, 7)));
        assert_eq!(
            d2.apply(&officer(), &ext(date(2026, 4, 8)), at(2026, 3, 30, 9), cal)
                .unwrap_err(),
            TransitionError::AlreadyExtended
        );
    }

    fn any_command() -> impl Strategy<Value = Command> {
        prop_oneof![
            Just(Command::Receive),
            Just(Command::Refuse { reason: "r".into() }),
            Just(Command::RequestSupplement {
                items: vec!["x".into()],
                note: None
            }),
            Just(Command::RequestPayment { amount: None }),
            Just(Command::ConfirmPayment { reference: None }),
            Just(Command::Process),
            Just(Command::Stop { reason: "r".into() }),
            Just(Command::Resume),
            Just(Command::Complete {
                result: DossierResult::Rejected { reason: "r".into() }
            }),
            Just(Command::Complete {
                result: DossierResult::Approved {
                    file: None,
                    document: None,
                    note: None
                }
            }),
            Just(Command::ReturnResult),
            (0i64..30).prop_map(|d| Command::Extend {
                new_due_date: date(2026, 4, 1) + jiff::Span::new().days(d),
                reason: "r".into()
            }),
            Just(Command::Withdraw { reason: None }),
            Just(Command::Supplement {
                documents: vec![SubmittedDocument {
                    code: "to-khai".into(),
                    source: DocumentSource::Upload,
                    reference: "u".into()
                }],
                note: None
            }),
        ]
    }

    fn any_actor() -> impl Strategy<Value = Actor> {
        prop_oneof![
            Just(citizen()),
            Just(officer()),
            Just(Actor {
                role: Role::System,
                subject: "system".into(),
                agency: None,
                assurance: 2,
                owner: None,
            }),
            Just(Actor {
                subject: "citizen-2".into(),
                ..citizen()
            }),
        ]
    }

    proptest! {
        /// No sequence of actions reaches an inconsistent dossier.
        #[test]
        fn no_sequence_breaks_invariants(
            steps in proptest::collection::vec((any_actor(), any_command(), 0i64..200_000), 1..40)
        ) {
            let cal = WorkingCalendar::vietnam();
            let mut now = at(2026, 3, 16, 8);
            let mut d = new_dossier(now);
            let mut extensions = 0;
            let mut supplements = 0;
            for (actor, cmd, dt) in steps {
                now = Timestamp::from_second(now.as_second() + dt).unwrap();
                let before = d.clone();
                match d.apply(&actor, &cmd, now, cal) {
                    Ok((next, h)) => {
                        prop_assert!(!before.status.is_final(), "left a final status");
                        prop_assert_eq!(next.version, before.version + 1);
                        prop_assert_eq!(h.seq, next.version);
                        prop_assert_eq!(h.from, Some(before.status));
                        prop_assert_eq!(h.to, next.status);
                        if matches!(cmd, Command::Extend { .. }) { extensions += 1; }
                        if matches!(cmd, Command::RequestSupplement { .. }) { supplements += 1; }
                        d = next;
                    }
                    Err(_) => prop_assert_eq!(&d, &before),
                }
                // Invariants of every reachable dossier.
                prop_assert!(extensions <= 1);
                prop_assert!(supplements <= 1);
                let received = !matches!(d.status, Status::Submitted | Status::NotReceived)
                    && d.received_at.is_some();
                if matches!(d.status, Status::Received | Status::Processing | Status::PaymentRequested | Status::Completed | Status::Returned) {
                    prop_assert!(received, "status {:?} without receipt", d.status);
                    let due = d.due_date.unwrap();
                    prop_assert!(cal.is_working_day(due));
                    prop_assert!(due >= d.clock_started_on.unwrap());
                }
                prop_assert_eq!(d.status == Status::SupplementRequested, d.resume_status.is_some());
                prop_assert_eq!(d.status == Status::SupplementRequested, !d.missing_items.is_empty());
                prop_assert_eq!(d.status == Status::PaymentRequested, d.amount_due.is_some());
                if matches!(d.status, Status::Completed | Status::Returned) {
                    prop_assert!(d.result.is_some() && d.finished_at.is_some());
                }
                if d.status.is_final() {
                    prop_assert!(d.finished_at.is_some());
                }
            }
        }
    }
}
