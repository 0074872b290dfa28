//! A payment as its applicant, the agency and admins see it.

use motcua_domain::payment::{Payment, PaymentStatus, Provider, Receipt, Refund};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A payment as its applicant and the agency see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PaymentView {
    pub id: Uuid,
    pub dossier_id: Uuid,
    pub dossier_code: String,
    pub provider: Provider,
    pub status: PaymentStatus,
    #[schema(value_type = u64)]
    pub amount: u64,
    /// Where to send the payer (while the payment is open; the applicant only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_url: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: jiff::Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: jiff::Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: jiff::Timestamp,
    /// The electronic receipt, once paid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
    /// Money taken for a fee no longer owed: an officer refunds it.
    pub refund_due: bool,
    #[schema(value_type = u64)]
    pub refunded: u64,
    /// What is left to refund.
    #[schema(value_type = u64)]
    pub refundable: u64,
    pub refunds: Vec<Refund>,
}

impl PaymentView {
    pub fn of(p: &Payment, for_applicant: bool) -> PaymentView {
        PaymentView {
            id: p.id,
            dossier_id: p.dossier_id,
            dossier_code: p.dossier_code.as_str().to_owned(),
            provider: p.provider,
            status: p.status,
            amount: p.amount.as_vnd(),
            redirect_url: p
                .redirect_url
                .clone()
                .filter(|_| for_applicant && p.status.is_open()),
            created_at: p.created_at,
            expires_at: p.expires_at,
            updated_at: p.updated_at,
            receipt: p.receipt.clone(),
            refund_due: p.refund_due,
            refunded: p.refunded.as_vnd(),
            refundable: p.refundable().as_vnd(),
            // Who refunded is the agency's business.
            refunds: p
                .refunds
                .iter()
                .map(|r| Refund {
                    by: if for_applicant {
                        String::new()
                    } else {
                        r.by.clone()
                    },
                    ..r.clone()
                })
                .collect(),
        }
    }
}
