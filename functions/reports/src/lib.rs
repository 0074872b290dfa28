//! The reports function: what the province is judged on (Decision 766/QĐ-TTg).
//!
//! - [`consume`]: dossier and payment events keep the KPI counters of each agency and
//!   month. A dossier's contribution is recomputed from the dossier as it is and replaced,
//!   so duplicate, late and reordered events change nothing twice.
//! - [`rebuild`]: recomputes every counter from the dossiers.
//! - [`http`]: `GET /v1/reports/kpi` (JSON, or CSV with `Accept: text/csv`) and
//!   `GET /v1/reports/kpi.csv`: each indicator with its numerator, denominator, value,
//!   score and target, for the province or one agency, per month and per agency.
//!
//! On AWS: an EventBridge rule → SQS → [`lambda::handle_events`]; the HTTP routes under
//! `lambda_http`. Locally the runner feeds [`consume::apply_event`] from its in-process
//! bus.

pub mod config;
pub mod consume;
pub mod http;
pub mod lambda;
pub mod rebuild;
pub mod svg;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use motcua_http::{Authenticator, Clock};
use motcua_ports::reports::KpiStore;
use motcua_ports::{Catalogue, DossierStore};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use config::ReportConfig;

/// What every handler and the consumer get.
#[derive(Clone)]
pub struct ReportState {
    /// The dossiers events are about (read as they are now).
    pub dossiers: Arc<dyn DossierStore>,
    /// Agencies and their procedures (the catalogue's indicators).
    pub catalogue: Arc<dyn Catalogue>,
    pub kpi: Arc<dyn KpiStore>,
    pub auth: Arc<Authenticator>,
    pub clock: Arc<dyn Clock>,
    pub config: Arc<ReportConfig>,
}

impl FromRef<ReportState> for Arc<Authenticator> {
    fn from_ref(s: &ReportState) -> Self {
        s.auth.clone()
    }
}

#[derive(OpenApi)]
#[openapi(tags((name = "reports")))]
struct ApiDoc;

/// Routes and their OpenAPI document, registered together so they cannot drift.
pub fn api() -> (Router<ReportState>, utoipa::openapi::OpenApi) {
    let (routes, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(http::kpi))
        .routes(routes!(http::kpi_csv))
        .routes(routes!(svg::trend_svg))
        .split_for_parts();
    motcua_http::openapi::document_common_answers(&mut doc);
    (routes, doc)
}

/// The OpenAPI 3.1 document of this function (its part of `docs/openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().1
}

/// The function's routes without the HTTP layers.
pub fn routes(state: ReportState) -> Router {
    api().0.with_state(state)
}

/// Every (method, path) this function routes: its documented operations.
pub fn route_table() -> std::collections::BTreeSet<(String, String)> {
    motcua_http::openapi::route_table(&api().1)
}
