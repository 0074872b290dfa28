//! Public key discovery: the JWKS and the OpenID configuration of the token issuer.

use super::*;

/// The public keys account tokens are signed with (JWK set, ES256 P-256): what the other
/// functions and the HTTP API's JWT authorizer verify against.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "identity",
    responses((status = 200, description = "JWK set")))]
pub(crate) async fn jwks(State(s): State<IdentityState>) -> Response {
    let mut r = Json(s.auth.jwks()).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

/// OpenID discovery for the issuer of account tokens: where its JWKS is. The HTTP API's
/// JWT authorizer reads this (`{issuer}/.well-known/openid-configuration`), so the issuer
/// (`MOTCUA_JWT_ISSUER`) must be the public https URL this function answers at.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "identity",
    responses((status = 200, description = "OpenID provider metadata"), (status = 404, description = "The issuer is not a URL")))]
pub(crate) async fn openid_configuration(
    State(s): State<IdentityState>,
) -> Result<Response, Problem> {
    let issuer = s.auth.issuer();
    if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
        return Err(Problem::not_found().detail(
            "Bên phát hành (MOTCUA_JWT_ISSUER) không phải là URL nên không có tài liệu khám phá",
            "The issuer (MOTCUA_JWT_ISSUER) is not a URL, so there is no discovery document",
        ));
    }
    let base = issuer.trim_end_matches('/');
    let mut r = Json(serde_json::json!({
        "issuer": issuer,
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "id_token_signing_alg_values_supported": ["ES256"],
        "subject_types_supported": ["public"],
        "response_types_supported": ["token"],
    }))
    .into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    Ok(r)
}
