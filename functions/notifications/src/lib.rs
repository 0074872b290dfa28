//! The notifications function: dossier events become status messages to the applicant by
//! SMS, email and Zalo ([`plan`]), sent by a dispatcher that honours quiet hours, send
//! rates, retries and expiry ([`dispatch`]), with a delivery record per message that the
//! applicant and the agency read (`GET /v1/dossiers/{id}/notifications`) and provider
//! receipts update; officers get a daily digest of their agency's due and overdue dossiers
//! ([`digest`]).
//!
//! On AWS: EventBridge rules → SQS → [`lambda::handle_events`] (plans, then sends what is
//! due at once); a rule every minute runs the dispatcher, one each morning the digest; the
//! HTTP routes run under `lambda_http`. Locally the runner feeds [`plan::intake`] from its
//! in-process bus and runs the dispatcher on a timer.

pub mod config;
pub mod digest;
pub mod dispatch;
mod http;
pub mod lambda;
pub mod plan;
mod reach;
pub mod senders;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use motcua_http::{Authenticator, Clock};
use motcua_ports::identity::AccountStore;
use motcua_ports::notifications::{DeadLetters, NotificationPorts};
use motcua_ports::{Catalogue, DossierStore};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use config::NotifyConfig;
pub use http::DeliveryView;
pub use senders::Senders;

/// What every handler gets.
#[derive(Clone)]
pub struct NotifyState {
    /// Dossiers (contacts, facts, who may read the records) and their history (reasons).
    pub dossiers: Arc<dyn DossierStore>,
    /// Agency names.
    pub catalogue: Arc<dyn Catalogue>,
    /// Email addresses, languages and channel wishes; `None` where the function cannot
    /// read accounts (messages then go to the dossier's phone only).
    pub accounts: Option<Arc<dyn AccountStore>>,
    pub ports: NotificationPorts,
    pub senders: Senders,
    pub dead_letters: Arc<dyn DeadLetters>,
    pub auth: Arc<Authenticator>,
    pub clock: Arc<dyn Clock>,
    pub config: Arc<NotifyConfig>,
    /// `MOTCUA_SMS_GATEWAY_RECEIPT_SECRET`: the key the gateway signs its receipts with
    /// (none: the receipt route refuses everything).
    pub receipt_secret: Option<Arc<[u8]>>,
}

impl FromRef<NotifyState> for Arc<Authenticator> {
    fn from_ref(s: &NotifyState) -> Self {
        s.auth.clone()
    }
}

#[derive(OpenApi)]
#[openapi(tags((name = "notifications")))]
struct ApiDoc;

/// Routes and their OpenAPI document, registered together so they cannot drift.
pub fn api() -> (Router<NotifyState>, utoipa::openapi::OpenApi) {
    let (routes, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(http::dossier_notifications))
        .routes(routes!(http::gateway_receipt))
        .split_for_parts();
    motcua_http::openapi::document_common_answers(&mut doc);
    (routes, doc)
}

/// The function's routes without the HTTP layers (the runner merges several functions'
/// routes under one set).
pub fn routes(state: NotifyState) -> Router {
    use axum::routing::{get, post};
    Router::new()
        .route(
            "/v1/dossiers/{id}/notifications",
            get(http::dossier_notifications),
        )
        .route(
            "/v1/notifications/receipts/gateway",
            post(http::gateway_receipt),
        )
        .with_state(state)
}

/// Every (method, path) this function routes: its documented operations.
pub fn route_table() -> std::collections::BTreeSet<(String, String)> {
    motcua_http::openapi::route_table(&api().1)
}
