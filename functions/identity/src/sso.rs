//! Officers and admins: the province SSO token exchanged for a motcua token.

use super::*;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SsoExchangeRequest {
    /// The access token the province SSO issued to the officer or admin.
    pub subject_token: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SsoExchangeResponse {
    pub access_token: String,
    pub token_type: String,
    /// Seconds; never beyond the SSO token's own expiry.
    pub expires_in: i64,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agency: Option<String>,
}

/// Officers and admins sign in at the province SSO, then exchange its token here for a
/// motcua access token (ES256, the same issuer as citizens' tokens, so one JWT authorizer
/// and one JWKS serve everyone). The SSO token is checked against the SSO's JWKS, issuer
/// and audience; its role claim must say officer or admin, and an officer's must name an
/// agency. No refresh token: when it expires, exchange a fresh SSO token.
#[utoipa::path(post, path = "/v1/identity/sso/exchange", tag = "identity",
    request_body = SsoExchangeRequest,
    responses((status = 200, body = SsoExchangeResponse),
        (status = 401, description = "Not a valid token of the SSO"),
        (status = 403, description = "The SSO account is neither officer nor admin"),
        (status = 404, description = "No SSO configured")))]
pub(crate) async fn sso_exchange(
    State(s): State<IdentityState>,
    JsonBody(req): JsonBody<SsoExchangeRequest>,
) -> Result<Response, Problem> {
    let Some(sso) = &s.sso else {
        return Err(Problem::not_found().detail(
            "Chưa cấu hình đăng nhập một lần (SSO) của tỉnh",
            "No province single sign-on is configured",
        ));
    };
    let who = sso.verify(req.subject_token.trim()).await?;
    let now = s.clock.now().as_second();
    let ttl = s.config.access_token_ttl_secs.min(who.expires - now);
    if ttl <= 0 {
        return Err(Problem::unauthorized(
            "Phiên đăng nhập đã hết hạn, vui lòng đăng nhập lại",
            "The token has expired; sign in again",
        ));
    }
    let access_token = s
        .auth
        .mint_signed(&who.subject, who.role, who.agency.as_ref(), now, ttl)
        .ok_or_else(no_signing_key)?;
    tracing::info!(role = who.role.as_str(), "SSO token exchanged");
    Ok(no_store(
        Json(SsoExchangeResponse {
            access_token,
            token_type: "Bearer".into(),
            expires_in: ttl,
            role: who.role.as_str().into(),
            agency: who.agency.map(|a| a.as_str().to_owned()),
        })
        .into_response(),
    ))
}
