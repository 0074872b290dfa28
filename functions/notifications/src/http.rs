//! `GET /v1/dossiers/{id}/notifications` and the gateway's delivery receipts.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use motcua_domain::notify::{Channel, DeliveryStatus, Topic};
use motcua_domain::sms::{self, SmsEncoding};
use motcua_domain::templates::Content;
use motcua_http::{Caller, Problem, store_problem};
use motcua_ports::StoreError;
use motcua_ports::notifications::Delivery;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::NotifyState;

/// One message about a dossier, as the applicant and the agency see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryView {
    pub id: Uuid,
    pub topic: Topic,
    pub channel: Channel,
    /// The address, masked (`+84*****5678`, `n***@example.vn`); none until first tried.
    pub to: Option<String>,
    pub status: DeliveryStatus,
    /// Why it failed or expired.
    pub reason: Option<String>,
    pub attempts: u32,
    pub mandatory: bool,
    /// The SMS text, the email subject, or the Zalo template id.
    pub summary: String,
    /// SMS only: the parts it costs and its encoding.
    pub segments: Option<usize>,
    #[schema(value_type = Option<String>)]
    pub encoding: Option<SmsEncoding>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    /// When it is next tried (queued, deferred).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<Timestamp>,
}

impl DeliveryView {
    pub fn of(d: &Delivery) -> DeliveryView {
        let (summary, cost) = match &d.content {
            Content::Sms { text } => (text.clone(), Some(sms::cost(text))),
            Content::Email { subject, .. } => (subject.clone(), None),
            Content::Zalo { template_id, .. } => (format!("ZNS {template_id}"), None),
        };
        DeliveryView {
            id: d.id,
            topic: d.topic,
            channel: d.channel,
            to: d.masked_to.clone(),
            status: d.status,
            reason: d.reason.clone(),
            attempts: d.attempts,
            mandatory: d.mandatory,
            summary,
            segments: cost.map(|c| c.segments),
            encoding: cost.map(|c| c.encoding),
            created_at: d.created_at,
            updated_at: d.updated_at,
            next_attempt_at: matches!(d.status, DeliveryStatus::Queued | DeliveryStatus::Deferred)
                .then_some(d.due_at),
        }
    }
}

fn no_such_dossier() -> Problem {
    Problem::not_found().detail("Không có hồ sơ này", "No such dossier")
}

/// The messages sent (or still to send) about a dossier: for its applicant and the
/// officers of its agency. Anyone else gets the answer for an unknown dossier.
#[utoipa::path(get, path = "/v1/dossiers/{id}/notifications", tag = "notifications",
    params(("id" = String, Path, description = "Dossier id")),
    security(("bearer" = [])),
    responses((status = 200, body = [DeliveryView]),
        (status = 404, description = "No such dossier (or not yours)")))]
pub(crate) async fn dossier_notifications(
    State(s): State<NotifyState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let id = Uuid::parse_str(&id).map_err(|_| no_such_dossier())?;
    let dossier = s
        .dossiers
        .get(id)
        .await
        .map_err(store_problem)?
        .filter(|d| {
            d.visible_to(&caller)
                && matches!(
                    caller.role,
                    motcua_domain::Role::Citizen | motcua_domain::Role::Officer
                )
        })
        .ok_or_else(no_such_dossier)?;
    let list: Vec<DeliveryView> = s
        .ports
        .deliveries
        .of_dossier(dossier.id)
        .await
        .map_err(store_problem)?
        .iter()
        .map(DeliveryView::of)
        .collect();
    let mut r = Json(list).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(r)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct GatewayReceipt {
    /// The gateway's message id, as it answered our send.
    #[schema(min_length = 1, max_length = 128)]
    pub message_id: String,
    /// `delivered` or `failed`.
    #[schema(pattern = "^(delivered|failed)$")]
    pub status: String,
    /// The gateway's words when it failed (kept without numbers or addresses).
    #[serde(default)]
    #[schema(max_length = 500)]
    pub error: Option<String>,
}

/// A delivery receipt from the SMS gateway, signed with HMAC-SHA256 of the body
/// (`X-Signature`, hex). Unsigned or wrongly signed receipts change nothing; a receipt
/// repeated, late or about a message not sent changes nothing more.
#[utoipa::path(post, path = "/v1/notifications/receipts/gateway", tag = "notifications",
    request_body = GatewayReceipt,
    params(("X-Signature" = String, Header, description = "HMAC-SHA256 of the body under the receipt secret, hex")),
    responses((status = 204, description = "Recorded (or nothing to change: repeated, late or contrary)"),
        (status = 401, description = "No valid signature"),
        (status = 409, description = "No message with this id is recorded as sent (yet): come again after Retry-After"),
        (status = 422, description = "Not a receipt: status delivered | failed, message_id 1-128 characters")))]
pub(crate) async fn gateway_receipt(
    State(s): State<NotifyState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    motcua_http::require_json(&headers)?;
    let signature = headers
        .get("x-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let signed = s
        .receipt_secret
        .as_ref()
        .is_some_and(|secret| motcua_senders::receipt_signed(secret, &body, signature));
    if !signed {
        tracing::warn!("a gateway receipt without a valid signature: refused");
        return Err(Problem::unauthorized(
            "Chữ ký không hợp lệ",
            "Invalid signature",
        ));
    }
    // Read only once its signature holds: nothing unauthenticated is parsed.
    let receipt: GatewayReceipt = motcua_http::parse_json(&body)?;
    let status = match receipt.status.as_str() {
        "delivered" => DeliveryStatus::Delivered,
        "failed" => DeliveryStatus::Failed,
        _ => {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-receipt",
                "Biên nhận không hợp lệ",
                "Not a delivery receipt",
            )
            .detail("status: delivered | failed", "status: delivered | failed"));
        }
    };
    if receipt.message_id.is_empty()
        || receipt.message_id.len() > 128
        || receipt.error.as_ref().is_some_and(|e| e.len() > 500)
    {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-receipt",
            "Biên nhận không hợp lệ",
            "Not a delivery receipt",
        ));
    }
    for _ in 0..3 {
        let Some(mut d) = s
            .ports
            .deliveries
            .by_provider_id("gateway", &receipt.message_id)
            .await
            .map_err(store_problem)?
        else {
            // A receipt can come before our record of the send (a fast handset): the
            // gateway is asked to come again rather than told it was taken.
            tracing::info!("a receipt of a message not (yet) recorded as sent: come again");
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "receipt-early",
                "Chưa có bản ghi tin nhắn này",
                "No record of this message yet",
            )
            .retry_after(30));
        };
        // Only a sent message becomes delivered or failed; a receipt repeated, late or
        // out of order changes nothing more.
        if d.status != DeliveryStatus::Sent {
            break;
        }
        d.status = status;
        d.reason = (status == DeliveryStatus::Failed).then(|| {
            format!(
                "the gateway reports: {}",
                crate::dispatch::clean_reason(receipt.error.as_deref().unwrap_or("failed"))
            )
        });
        d.version += 1;
        d.updated_at = s.clock.now();
        match s.ports.deliveries.update(&d).await {
            Ok(()) => break,
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(store_problem(e)),
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
