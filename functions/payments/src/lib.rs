//! The payments function: paying a dossier's fee online through VNPay, MoMo or the
//! national payment platform, trusting only the providers' signed callbacks and status
//! answers.
//!
//! - [`pay`]: the applicant starts a payment (`POST /v1/dossiers/{id}/payments`), lists
//!   and cancels them; the browser's return page only shows our record.
//! - [`callbacks`]: the providers' server-to-server callbacks, verified over exactly the
//!   signed fields and applied once ([`settle`]), answered in each provider's format.
//! - [`refunds`]: officers refund, naming the refundable amount they expect.
//! - [`reconcile`]: a scheduled job asks the providers about payments left pending and
//!   settles them; a daily report lists where we and the providers disagree.

pub mod callbacks;
pub mod config;
pub mod lambda;
pub mod pay;
pub mod providers;
pub mod reconcile;
pub mod refunds;
mod return_page;
pub mod settle;
pub mod view;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use motcua_http::{Authenticator, Clock};
use motcua_ports::payments::PaymentPorts;
use motcua_ports::{DossierStore, IdempotencyStore};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use config::PayConfig;

/// The answer for a payment that is not there, or not the caller's.
pub(crate) fn no_such_payment() -> motcua_http::Problem {
    motcua_http::Problem::not_found().detail("Không có giao dịch thanh toán này", "No such payment")
}

/// The payer's address as our own proxies saw it (sent to VNPay), `127.0.0.1` when the
/// runner is called directly.
pub(crate) fn client_ip(
    headers: &axum::http::HeaderMap,
    proxies: &motcua_http::limits::ProxyTrust,
) -> String {
    let client = motcua_http::limits::client_key_of(headers, proxies);
    client
        .strip_prefix("client:")
        .unwrap_or("127.0.0.1")
        .to_owned()
}

/// What every handler gets.
#[derive(Clone)]
pub struct PayState {
    pub dossiers: Arc<dyn DossierStore>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub ports: PaymentPorts,
    pub auth: Arc<Authenticator>,
    pub clock: Arc<dyn Clock>,
    pub config: Arc<PayConfig>,
}

impl FromRef<PayState> for Arc<Authenticator> {
    fn from_ref(s: &PayState) -> Self {
        s.auth.clone()
    }
}

#[derive(OpenApi)]
#[openapi(tags((name = "payments"), (name = "provider callbacks")))]
struct ApiDoc;

/// Routes and their OpenAPI document, registered together so they cannot drift.
pub fn api() -> (Router<PayState>, utoipa::openapi::OpenApi) {
    let (routes, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(pay::start, pay::list))
        .routes(routes!(pay::cancel))
        .routes(routes!(return_page::return_page))
        .routes(routes!(refunds::refund))
        .routes(routes!(callbacks::vnpay_ipn_get, callbacks::vnpay_ipn_post))
        .routes(routes!(callbacks::momo_ipn))
        .routes(routes!(callbacks::paygov_confirm))
        .routes(routes!(reconcile::report_route))
        .split_for_parts();
    motcua_http::openapi::document_common_answers(&mut doc);
    // VNPay's and the platform's callbacks are answered in their own format (HTTP 200),
    // whatever the body: only a body over the limit is refused before.
    for (path, method) in [
        ("/v1/payments/vnpay/ipn", "post"),
        ("/v1/payments/paygov/confirm", "post"),
    ] {
        if let Some(item) = doc.paths.paths.get_mut(path) {
            let op = match method {
                "post" => item.post.as_mut(),
                _ => item.get.as_mut(),
            };
            if let Some(op) = op {
                for code in ["400", "415", "422"] {
                    op.responses.responses.remove(code);
                }
            }
        }
    }
    (routes, doc)
}

/// The OpenAPI 3.1 document of this function (its part of `docs/openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().1
}

/// The function's routes without the HTTP layers (the runner merges several functions'
/// routes under one set).
pub fn routes(state: PayState) -> Router {
    api().0.with_state(state)
}

/// Every (method, path) this function routes: its documented operations.
pub fn route_table() -> std::collections::BTreeSet<(String, String)> {
    motcua_http::openapi::route_table(&api().1)
}
