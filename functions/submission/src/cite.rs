//! What a dossier's documents cite: a verified upload of the applicant's that no other
//! dossier cites, a document of their personal store, or a result of one of their
//! dossiers. Checked before the dossier is written, with every problem named; the uploads
//! are then claimed in the dossier's own transaction, so two dossiers racing for one file
//! cannot both have it.

use motcua_domain::catalogue::{DocumentError, DocumentProblem, SubmittedDocument};
use motcua_domain::dossier::DossierResult;
use motcua_domain::upload::UploadStatus;
use motcua_domain::{Actor, DocumentSource, DossierCode, Status};
use motcua_http::{Problem, store_problem};
use motcua_ports::Citation;
use uuid::Uuid;

use crate::AppState;

/// The uploads to claim for `dossier`, or the documents whose references do not hold.
/// `Err(Ok(..))` lists the problems; `Err(Err(..))` is a store failure.
pub(crate) async fn check(
    s: &AppState,
    caller: &Actor,
    dossier: Uuid,
    procedure_code: &str,
    docs: &[SubmittedDocument],
) -> Result<Vec<Citation>, Result<Vec<DocumentError>, Problem>> {
    check_as(s, caller, dossier, procedure_code, docs, false).await
}

/// [`check`] for a paper dossier an officer registers at the counter: its files are the
/// officer's scans (uploads of theirs for their agency) and components may be paper
/// only; nothing is reused from an applicant's store.
pub(crate) async fn check_counter(
    s: &AppState,
    officer: &Actor,
    dossier: Uuid,
    procedure_code: &str,
    docs: &[SubmittedDocument],
) -> Result<Vec<Citation>, Result<Vec<DocumentError>, Problem>> {
    check_as(s, officer, dossier, procedure_code, docs, true).await
}

async fn check_as(
    s: &AppState,
    caller: &Actor,
    dossier: Uuid,
    procedure_code: &str,
    docs: &[SubmittedDocument],
    counter: bool,
) -> Result<Vec<Citation>, Result<Vec<DocumentError>, Problem>> {
    let mut cites: Vec<Citation> = Vec::new();
    let mut errors = Vec::new();
    let mut total: u64 = 0;
    let max = s.config.max_dossier_upload_bytes;
    for doc in docs {
        let err = |problem| DocumentError {
            document: motcua_domain::bounds::shorten(&doc.code, 64),
            problem,
        };
        let mut add = |errors: &mut Vec<DocumentError>, cite: Citation, size: u64| {
            // One file, one component: the same file twice in a dossier is a mistake.
            if cites.iter().any(|c| c.upload == cite.upload) {
                errors.push(err(DocumentProblem::UploadCited));
                return;
            }
            total = total.saturating_add(size);
            if total > max {
                errors.push(err(DocumentProblem::FilesTooLarge { max }));
            }
            cites.push(cite);
        };
        match doc.source {
            DocumentSource::Upload => {
                let found = match canonical(&doc.reference) {
                    Some(id) => s
                        .ports
                        .uploads
                        .upload(id)
                        .await
                        .map_err(|e| Err(store_problem(e)))?,
                    None => None,
                };
                let mine = |u: &motcua_domain::upload::Upload| {
                    if counter {
                        u.owner == motcua_domain::upload::officer_owner(&caller.subject)
                            && u.agency.is_some()
                            && u.agency == caller.agency
                    } else {
                        u.agency.is_none() && caller.owns(&u.owner)
                    }
                };
                let Some(u) = found.filter(mine) else {
                    errors.push(err(DocumentProblem::UploadUnknown));
                    continue;
                };
                if u.status != UploadStatus::Verified {
                    errors.push(err(DocumentProblem::UploadNotVerified { status: u.status }));
                } else if u.cited_by.is_some_and(|d| d != dossier) {
                    errors.push(err(DocumentProblem::UploadCited));
                } else if u
                    .procedure_code
                    .as_deref()
                    .is_some_and(|p| p != procedure_code)
                    || u.document_code.as_deref().is_some_and(|c| c != doc.code)
                {
                    errors.push(err(DocumentProblem::UploadForAnotherDocument));
                } else {
                    let cite = Citation {
                        upload: u.id,
                        owner: u.owner.clone(),
                        shared: false,
                    };
                    add(&mut errors, cite, u.size);
                }
            }
            DocumentSource::Paper if counter => {}
            DocumentSource::Paper => errors.push(err(DocumentProblem::PaperAtCounterOnly)),
            DocumentSource::Store | DocumentSource::Dossier if counter => {
                errors.push(err(DocumentProblem::StoredUnknown))
            }
            DocumentSource::Store => {
                let found = match canonical(&doc.reference) {
                    Some(id) => s
                        .ports
                        .documents
                        .document(id)
                        .await
                        .map_err(|e| Err(store_problem(e)))?,
                    None => None,
                };
                match found.filter(|d| caller.owns(&d.owner)) {
                    // Reused: the file stays the store's, and this dossier's officers may
                    // read it.
                    Some(d) => {
                        let cite = Citation {
                            upload: d.upload,
                            owner: d.owner.clone(),
                            shared: true,
                        };
                        add(&mut errors, cite, d.size);
                    }
                    None => errors.push(err(DocumentProblem::StoredUnknown)),
                }
            }
            DocumentSource::Dossier => {
                let found = match DossierCode::parse(doc.reference.trim()) {
                    Ok(code) => s
                        .ports
                        .dossiers
                        .get_by_code(&code)
                        .await
                        .map_err(|e| Err(store_problem(e)))?,
                    Err(_) => None,
                };
                let usable = found.filter(|d| {
                    caller.owns(&d.applicant.subject)
                        && matches!(d.status, Status::Completed | Status::Returned)
                        && d.result.is_some()
                });
                match usable.as_ref().and_then(|d| d.result.as_ref()) {
                    None => errors.push(err(DocumentProblem::DossierUnknown)),
                    // Its result file, if it has one, becomes readable by this dossier's
                    // officers.
                    Some(DossierResult::Approved {
                        file: Some(file), ..
                    }) => {
                        let cite = Citation {
                            upload: *file,
                            owner: String::new(),
                            shared: true,
                        };
                        add(&mut errors, cite, 0);
                    }
                    Some(_) => {}
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(cites)
    } else {
        Err(Ok(errors))
    }
}

/// The officer's result file of a `complete` command: a verified upload of theirs, made
/// for their agency, that no other dossier cites. Refused with 422 otherwise.
pub(crate) async fn result_file(
    s: &AppState,
    officer: &Actor,
    dossier: Uuid,
    file: Uuid,
) -> Result<(Citation, motcua_domain::upload::Upload), Problem> {
    let found = s
        .ports
        .uploads
        .upload(file)
        .await
        .map_err(store_problem)?
        .filter(|u| {
            u.owner == motcua_domain::upload::officer_owner(&officer.subject)
                && u.agency.is_some()
                && u.agency == officer.agency
        });
    let problem = match &found {
        None => Some(DocumentProblem::UploadUnknown),
        Some(u) if u.status != UploadStatus::Verified => {
            Some(DocumentProblem::UploadNotVerified { status: u.status })
        }
        Some(u) if u.cited_by.is_some_and(|d| d != dossier) => Some(DocumentProblem::UploadCited),
        Some(_) => None,
    };
    match (problem, found) {
        (None, Some(u)) => Ok((
            Citation {
                upload: u.id,
                owner: u.owner.clone(),
                shared: false,
            },
            u,
        )),
        (problem, _) => Err(crate::validation_problem(
            &motcua_domain::catalogue::SubmissionErrors {
                fields: vec![],
                documents: vec![DocumentError {
                    document: "result.file".into(),
                    problem: problem.unwrap_or(DocumentProblem::UploadUnknown),
                }],
            },
        )),
    }
}

/// An upload or store id as this system writes it (lower-case, hyphenated); any other
/// spelling names nothing, so one file has one reference.
fn canonical(reference: &str) -> Option<Uuid> {
    Uuid::parse_str(reference)
        .ok()
        .filter(|id| id.hyphenated().to_string() == reference)
}
