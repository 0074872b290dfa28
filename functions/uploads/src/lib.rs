//! The uploads function: upload slots (a presigned PUT that binds length, type and
//! SHA-256), the verification of each arrived file ([`verify`]), its status and download
//! links, the sweeper of slots that never got a file ([`sweep`]), and the applicant's
//! personal document store (`GET /v1/me/documents`).
//!
//! [`routes`] serves the HTTP part; on Lambda `main.rs` runs it under `lambda_http` and
//! `bin/uploads-events.rs` runs [`verify::handle_batch`] and [`sweep::sweep`]; locally
//! `motcua-local` merges the routes with the other functions' and verifies in process.

pub mod clamd;
pub mod config;
mod http;
pub mod lambda;
pub mod sweep;
pub mod verify;
mod views;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use motcua_http::{Authenticator, Clock};
use motcua_ports::SubmissionPorts;
use motcua_ports::uploads::{ObjectStore, Scanner, UploadPorts};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use config::{ScannerSetting, UploadsConfig};
pub use views::{DocumentPage, DownloadLink, SlotResponse, UploadView};

/// What every handler gets.
#[derive(Clone)]
pub struct UploadsState {
    /// The catalogue, dossiers (who may read a cited file), upload records, documents,
    /// idempotency records and attempt counts.
    pub ports: SubmissionPorts,
    pub objects: Arc<dyn ObjectStore>,
    pub scanner: Arc<dyn Scanner>,
    pub auth: Arc<Authenticator>,
    pub clock: Arc<dyn Clock>,
    pub config: Arc<UploadsConfig>,
}

impl UploadsState {
    /// The ports the verifier and the sweeper use.
    pub fn upload_ports(&self) -> UploadPorts {
        UploadPorts {
            uploads: self.ports.uploads.clone(),
            objects: self.objects.clone(),
            scanner: self.scanner.clone(),
            documents: self.ports.documents.clone(),
        }
    }
}

impl FromRef<UploadsState> for Arc<Authenticator> {
    fn from_ref(s: &UploadsState) -> Self {
        s.auth.clone()
    }
}

#[derive(OpenApi)]
#[openapi(tags((name = "uploads"), (name = "documents")))]
struct ApiDoc;

/// Routes and their OpenAPI document, registered together so they cannot drift.
pub fn api() -> (Router<UploadsState>, utoipa::openapi::OpenApi) {
    let (routes, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(http::create_slot))
        .routes(routes!(http::get_upload))
        .routes(routes!(http::get_content))
        .routes(routes!(http::my_documents))
        .split_for_parts();
    motcua_http::openapi::document_common_answers(&mut doc);
    (routes, doc)
}

/// The function's routes without the HTTP layers (the runner merges several functions'
/// routes under one set); the same handlers as [`api`].
pub fn routes(state: UploadsState) -> Router {
    use axum::routing::{get, post};
    Router::new()
        .route("/v1/uploads", post(http::create_slot))
        .route("/v1/uploads/{id}", get(http::get_upload))
        .route("/v1/uploads/{id}/content", get(http::get_content))
        .route("/v1/me/documents", get(http::my_documents))
        .with_state(state)
}

/// Every (method, path) this function routes: its documented operations.
pub fn route_table() -> std::collections::BTreeSet<(String, String)> {
    motcua_http::openapi::route_table(&api().1)
}
