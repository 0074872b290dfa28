//! Admin: the audit trail of registry lookups. The number searched for travels in a POST
//! body, never in a URL (URLs end up in access logs, browser history and proxies), and
//! every search is itself audited under the admin who made it.

use super::*;

/// A search of the audit trail: exactly one of `citizen_id` and `tax_code`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// The personal number whose lookups to list (never stored: hashed).
    pub citizen_id: Option<String>,
    pub tax_code: Option<String>,
    /// 1–1000, default 100.
    #[schema(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditView {
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    pub actor: String,
    pub purpose: String,
    pub outcome: String,
}

/// Admin: every registry lookup of one number (who, when, why, outcome), newest first;
/// the search itself is audited (`audit-query`, actor `admin:<subject>`).
#[utoipa::path(post, path = "/v1/admin/audit/search", tag = "identity",
    security(("bearer" = [])), request_body = AuditQuery,
    responses((status = 200, body = Vec<AuditView>), (status = 400, description = "Not exactly one valid number"),
        (status = 403, description = "Admins only")))]
pub(crate) async fn audit(
    State(s): State<IdentityState>,
    Caller(caller): Caller,
    JsonBody(q): JsonBody<AuditQuery>,
) -> Result<Response, Problem> {
    if caller.role != Role::Admin {
        return Err(Problem::forbidden(
            "Chỉ dành cho quản trị viên",
            "Admins only",
        ));
    }
    let hashes = match (q.citizen_id.as_deref(), q.tax_code.as_deref()) {
        (Some(c), None) => {
            let id = CitizenId::parse(c).map_err(|e| {
                Problem::bad_request(
                    &format!("citizen_id {}", e.message(Lang::Vi)),
                    &format!("citizen_id {}", e.message(Lang::En)),
                )
            })?;
            id_hashes(&s, "citizen", id.as_str())
        }
        (None, Some(t)) => {
            let tax = TaxCode::parse(t).map_err(|e| {
                Problem::bad_request(
                    &format!("tax_code {}", e.message(Lang::Vi)),
                    &format!("tax_code {}", e.message(Lang::En)),
                )
            })?;
            id_hashes(&s, "business", tax.as_str())
        }
        _ => {
            return Err(Problem::bad_request(
                "Cần đúng một trong citizen_id hoặc tax_code",
                "Give exactly one of citizen_id or tax_code",
            ));
        }
    };
    // The trail of the number under every key it was hashed with (the key can rotate).
    let limit =
        motcua_http::decode::page_limit(q.limit, 100, 1000, StatusCode::UNPROCESSABLE_ENTITY)?;
    let mut entries = Vec::new();
    for (_, h) in &hashes {
        entries.extend(
            s.ports
                .audit
                .by_id_hash(h, limit)
                .await
                .map_err(store_problem)?,
        );
    }
    entries.sort_by(|a, b| b.at.cmp(&a.at).then(b.id.cmp(&a.id)));
    entries.truncate(limit as usize);
    let hash = hashes[0].1.clone();
    // Who looked, at whom, is part of the trail; the actor is the verified token's.
    audit_entry(
        &s,
        &format!("admin:{}", caller.subject),
        "audit-query",
        &hash,
        "listed",
        s.clock.now(),
    )
    .await?;
    let view: Vec<AuditView> = entries
        .into_iter()
        .map(|e| AuditView {
            at: e.at,
            actor: e.actor,
            purpose: e.purpose,
            outcome: e.outcome,
        })
        .collect();
    Ok(Json(view).into_response())
}
