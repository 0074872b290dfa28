//! Tokens of a sign-in: access and refresh tokens, refresh, revoke.

use super::*;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VerifiedResponse {
    pub account_id: Uuid,
    /// The account was created by this verification.
    pub created: bool,
    /// 1: self-declared; 2: matched against the registry.
    pub assurance: u8,
    #[serde(flatten)]
    pub tokens: TokenResponse,
}

/// An access token and the refresh token that gets the next one.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    /// Seconds.
    pub expires_in: i64,
    /// Single use: each refresh returns a new one; reusing a spent one revokes them all.
    pub refresh_token: String,
    pub refresh_expires_in: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

pub(crate) fn token_hash(token: &str) -> String {
    use sha2::Digest;
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new access token and a new refresh token in `family`.
pub(crate) async fn tokens(
    s: &IdentityState,
    account: &Account,
    family: Uuid,
    now: Timestamp,
) -> Result<TokenResponse, Problem> {
    tokens_with(s, account, None, family, random_id()?, now).await
}

/// The token subject of a member's session of a business account: neither the business
/// account's id (a member does not hold the account: no `/v1/me`, no erasure) nor shared
/// between members, so revoking one grant ends that member's tokens at once.
pub(crate) fn member_subject(business: Uuid, grant: Uuid) -> String {
    format!("member-{grant}-of-{business}")
}

/// The refresh token that succeeds `spent`: derived from it with a server key, so a
/// client retrying a refresh whose answer it lost gets the same successor again.
fn successor(s: &IdentityState, spent: &str) -> String {
    use base64::Engine;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(&s.config.id_hash_key).expect("HMAC takes any key length");
    mac.update(b"refresh-successor:");
    mac.update(spent.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// [`tokens`] with the refresh token given. Recording it again (a retry's successor) is
/// not an error.
pub(crate) async fn tokens_with(
    s: &IdentityState,
    account: &Account,
    grant: Option<Uuid>,
    family: Uuid,
    refresh_token: String,
    now: Timestamp,
) -> Result<TokenResponse, Problem> {
    let ttl = s.config.access_token_ttl_secs;
    let account_id = account.id;
    let sub = match grant {
        Some(g) => member_subject(account_id, g),
        None => account_id.to_string(),
    };
    let owner = account.owner_ref();
    let access_token = s
        .auth
        .mint_citizen(
            &sub,
            account.assurance,
            owner.as_deref(),
            now.as_second(),
            ttl,
        )
        .ok_or_else(no_signing_key)?;
    let refresh_ttl = s.config.refresh_token_ttl_secs;
    match s
        .ports
        .refresh
        .put(&RefreshRecord {
            token_hash: token_hash(&refresh_token),
            account_id,
            family,
            expires: Timestamp::from_second(now.as_second() + refresh_ttl).unwrap_or(now),
            grant,
            // Business sessions say whose they are: a member's rests on a grant; any
            // other is a representative's (the registry named them at the link).
            representative: account.kind == AccountKind::Business && grant.is_none(),
        })
        .await
    {
        Ok(()) | Err(motcua_ports::StoreError::Duplicate) => {}
        Err(e) => return Err(store_problem(e)),
    }
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer".into(),
        expires_in: ttl,
        refresh_token,
        refresh_expires_in: refresh_ttl,
    })
}

/// No ES256 key can sign yet (a signing-keys secret before its first rotation).
pub(crate) fn no_signing_key() -> Problem {
    tracing::error!("no active ES256 signing key: account tokens cannot be issued");
    Problem::unavailable().retry_after(30)
}

pub(crate) fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The person's or business's one account, created from `account` if it has none.
/// An account of a lower assurance level on the number — a self-declared (level-1)
/// account of earlier versions — is replaced by a new one (new id): whoever declared it is
/// not known to be this person, so their tokens and sessions open nothing of the
/// person's.
/// `older` are the number's hashes under keys other than the current one: an account made
/// before the key rotated is found under its own key and stays the person's account.
pub(crate) async fn one_account(
    s: &IdentityState,
    account: &Account,
    older: &[String],
) -> Result<(Account, bool), Problem> {
    let under_older = if older.is_empty()
        || s.ports
            .accounts
            .get_by_id_hash(account.kind, &account.id_hash)
            .await
            .map_err(store_problem)?
            .is_some()
    {
        None
    } else {
        let mut found = None;
        for h in older {
            if let Some(a) = s
                .ports
                .accounts
                .get_by_id_hash(account.kind, h)
                .await
                .map_err(store_problem)?
            {
                found = Some(a);
                break;
            }
        }
        found
    };
    let (stored, created) = match under_older {
        Some(a) => (a, false),
        None => s
            .ports
            .accounts
            .create_if_absent(account)
            .await
            .map_err(store_problem)?,
    };
    if stored.assurance >= account.assurance {
        return Ok((stored, created));
    }
    s.ports
        .accounts
        .erase(&stored)
        .await
        .map_err(store_problem)?;
    let replaced = s
        .ports
        .accounts
        .create_if_absent(account)
        .await
        .map_err(store_problem)?;
    tracing::info!(old = %stored.id, account = %replaced.0.id, "a lower-level account was replaced");
    Ok(replaced)
}

/// Signs the person or business in to its one account (created now if it has none):
/// the tokens of a new sign-in.
pub(crate) async fn issue(
    s: &IdentityState,
    account: Account,
    older: &[String],
    now: Timestamp,
) -> Result<Response, Problem> {
    let (stored, created) = one_account(s, &account, older).await?;
    tracing::info!(account = %stored.id, created, "signed in");
    signed_in(s, &stored, created, now).await
}

/// The answer of a sign-in: the account and the tokens of a new sign-in (refresh family).
pub(crate) async fn signed_in(
    s: &IdentityState,
    account: &Account,
    created: bool,
    now: Timestamp,
) -> Result<Response, Problem> {
    let body = VerifiedResponse {
        account_id: account.id,
        created,
        assurance: account.assurance,
        tokens: tokens(s, account, Uuid::now_v7(), now).await?,
    };
    Ok(no_store(Json(body).into_response()))
}

/// The answer of a member's sign-in to a business account: tokens of the business, under
/// the member's own subject, resting on `grant`.
pub(crate) async fn signed_in_member(
    s: &IdentityState,
    business: &Account,
    grant: Uuid,
    now: Timestamp,
) -> Result<Response, Problem> {
    let body = VerifiedResponse {
        account_id: business.id,
        created: false,
        assurance: business.assurance,
        tokens: tokens_with(s, business, Some(grant), Uuid::now_v7(), random_id()?, now).await?,
    };
    Ok(no_store(Json(body).into_response()))
}

pub(crate) fn bad_refresh(vi: &str, en: &str) -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "invalid-refresh-token",
        "Phiên đăng nhập không còn hiệu lực",
        "The session is no longer valid",
    )
    .detail(vi, en)
}

/// Exchange a refresh token for a new access token and a new refresh token. A refresh
/// token works once; presenting a spent one revokes every token of its sign-in.
#[utoipa::path(post, path = "/v1/identity/token/refresh", tag = "identity",
    request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, description = "Unknown, expired, spent or revoked refresh token")))]
pub(crate) async fn refresh(
    State(s): State<IdentityState>,
    JsonBody(req): JsonBody<RefreshRequest>,
) -> Result<Response, Problem> {
    let now = s.clock.now();
    let record = match s
        .ports
        .refresh
        .spend(&token_hash(&req.refresh_token), now)
        .await
        .map_err(store_problem)?
    {
        RefreshUse::Fresh(r) => r,
        // A retry of a refresh whose answer was lost: the same successor again, within
        // seconds (a replay later than that is treated as theft).
        RefreshUse::Reused { record, spent_at }
            if now.as_second() - spent_at.as_second() <= s.config.refresh_grace_secs
                && retry_allowed(&s, &req.refresh_token).await? =>
        {
            tracing::info!(account = %record.account_id, "refresh retried within the grace period");
            record
        }
        RefreshUse::Reused { record: r, .. } => {
            s.ports
                .refresh
                .revoke_family(r.family)
                .await
                .map_err(store_problem)?;
            tracing::warn!(account = %r.account_id, "spent refresh token presented again: family revoked");
            return Err(bad_refresh(
                "Mã làm mới đã được dùng; vì an toàn, mọi phiên của lần đăng nhập này đã bị hủy",
                "This refresh token was already used; for safety every token of this sign-in is revoked",
            ));
        }
        RefreshUse::NotFound => {
            return Err(bad_refresh(
                "Mã làm mới không hợp lệ",
                "Unknown refresh token",
            ));
        }
    };
    if record.expires <= now {
        return Err(bad_refresh(
            "Mã làm mới đã hết hạn",
            "The refresh token has expired",
        ));
    }
    if s.ports
        .refresh
        .family_revoked(record.family)
        .await
        .map_err(store_problem)?
    {
        return Err(bad_refresh(
            "Phiên đăng nhập đã bị thu hồi",
            "The session was revoked",
        ));
    }
    let Some(account) = s
        .ports
        .accounts
        .get(record.account_id)
        .await
        .map_err(store_problem)?
    else {
        return Err(bad_refresh(
            "Tài khoản không còn tồn tại",
            "The account no longer exists",
        ));
    };
    // A business session of earlier versions does not say whose it is (a member's looked
    // like a representative's): it is not renewed; signing in to the business again is.
    if account.kind == AccountKind::Business && record.grant.is_none() && !record.representative {
        return Err(bad_refresh(
            "Phiên đăng nhập doanh nghiệp cũ; hãy đăng nhập lại tài khoản doanh nghiệp",
            "A business session of an earlier version; sign in to the business again",
        ));
    }
    // A member's session lasts as long as the grant it rests on.
    if let Some(grant) = record.grant {
        let still = s
            .ports
            .grants
            .list(account.id)
            .await
            .map_err(store_problem)?
            .iter()
            .any(|g| g.id == grant);
        if !still {
            return Err(bad_refresh(
                "Quyền truy cập tài khoản doanh nghiệp đã bị thu hồi",
                "Access to the business account was withdrawn",
            ));
        }
    }
    let next = successor(&s, &req.refresh_token);
    let body = tokens_with(&s, &account, record.grant, record.family, next, now).await?;
    Ok(no_store(Json(body).into_response()))
}

/// A spent token's retry is a lost answer's only while the successor it was answered with
/// is still unspent, and once: a second retry, or one after the chain moved on, is a
/// replay (a stolen spent token minting access tokens), and revokes the sign-in.
async fn retry_allowed(s: &IdentityState, spent: &str) -> Result<bool, Problem> {
    let next = token_hash(&successor(s, spent));
    if s.ports
        .refresh
        .spent(&next)
        .await
        .map_err(store_problem)?
        // Not recorded yet: the first use is still answering (two tabs at once).
        .unwrap_or(false)
    {
        return Ok(false);
    }
    s.ports
        .refresh
        .claim_retry(&token_hash(spent))
        .await
        .map_err(store_problem)
}

/// Sign out: revoke the refresh token and every token of its sign-in. Always 204.
#[utoipa::path(post, path = "/v1/identity/token/revoke", tag = "identity",
    request_body = RefreshRequest,
    responses((status = 204, description = "Revoked (or unknown)")))]
pub(crate) async fn revoke(
    State(s): State<IdentityState>,
    JsonBody(req): JsonBody<RefreshRequest>,
) -> Result<Response, Problem> {
    match s
        .ports
        .refresh
        .spend(&token_hash(&req.refresh_token), s.clock.now())
        .await
        .map_err(store_problem)?
    {
        RefreshUse::Fresh(r) | RefreshUse::Reused { record: r, .. } => s
            .ports
            .refresh
            .revoke_family(r.family)
            .await
            .map_err(store_problem)?,
        RefreshUse::NotFound => {}
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
