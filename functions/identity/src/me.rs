//! `/v1/me`: the caller's own account — read, change contacts, erase.

use super::*;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountView {
    pub id: Uuid,
    pub kind: String,
    pub assurance: u8,
    pub name: String,
    #[schema(value_type = Option<String>, format = Date)]
    pub birth_date: Option<Date>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub preferences: PreferencesView,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub struct PreferencesView {
    pub sms: bool,
    pub email: bool,
    pub zalo: bool,
    /// The language of status messages: `vi` (default) or `en`.
    #[serde(default)]
    #[schema(value_type = String, example = "vi")]
    pub language: motcua_domain::Lang,
}

impl From<ChannelPreferences> for PreferencesView {
    fn from(p: ChannelPreferences) -> Self {
        PreferencesView {
            sms: p.sms,
            email: p.email,
            zalo: p.zalo,
            language: p.language,
        }
    }
}

impl AccountView {
    fn of(a: Account) -> AccountView {
        AccountView {
            id: a.id,
            kind: a.kind.as_str().into(),
            assurance: a.assurance,
            name: a.name,
            birth_date: a.birth_date,
            phone: a.phone,
            email: a.email,
            preferences: a.preferences.into(),
        }
    }
}

pub(crate) async fn my_account(
    s: &IdentityState,
    caller: &motcua_domain::Actor,
) -> Result<Account, Problem> {
    if caller.role != Role::Citizen {
        return Err(Problem::forbidden(
            "Chức năng dành cho người dân và doanh nghiệp",
            "This is for citizens and businesses",
        ));
    }
    let id = Uuid::parse_str(&caller.subject).map_err(|_| {
        Problem::not_found().detail("Chưa có tài khoản định danh", "No verified account")
    })?;
    s.ports
        .accounts
        .get(id)
        .await
        .map_err(store_problem)?
        .ok_or_else(|| {
            Problem::not_found().detail("Chưa có tài khoản định danh", "No verified account")
        })
}

/// The caller's account: verified name, birth date, contacts, channel preferences.
#[utoipa::path(get, path = "/v1/me", tag = "identity",
    security(("bearer" = [])),
    responses((status = 200, body = AccountView),
        (status = 403, description = "Officers and admins have no account here"),
        (status = 404, description = "No account (erased, or a token of another kind)")))]
pub(crate) async fn get_me(
    State(s): State<IdentityState>,
    Caller(caller): Caller,
) -> Result<Response, Problem> {
    let a = my_account(&s, &caller).await?;
    let mut r = Json(AccountView::of(a)).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(r)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MePatch {
    /// Empty string removes it.
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub preferences: Option<PreferencesView>,
}

/// Change contacts and channel preferences (the verified name and birth date stay).
#[utoipa::path(patch, path = "/v1/me", tag = "identity",
    security(("bearer" = [])), request_body = MePatch,
    responses((status = 200, body = AccountView),
        (status = 403, description = "Officers and admins have no account here"),
        (status = 404, description = "No account (erased, or a token of another kind)"),
        (status = 409, description = "The account changed meanwhile; read it again"),
        (status = 422, description = "Invalid phone or email")))]
pub(crate) async fn patch_me(
    State(s): State<IdentityState>,
    Caller(caller): Caller,
    JsonBody(patch): JsonBody<MePatch>,
) -> Result<Response, Problem> {
    let mut a = my_account(&s, &caller).await?;
    let (phone, email) = parse_contacts(patch.phone.as_deref(), patch.email.as_deref())?;
    if patch.phone.is_some() {
        a.phone = phone;
    }
    if patch.email.is_some() {
        a.email = email;
    }
    if let Some(p) = patch.preferences {
        a.preferences = ChannelPreferences {
            sms: p.sms,
            email: p.email,
            zalo: p.zalo,
            language: p.language,
        };
    }
    a.version += 1;
    a.updated_at = s.clock.now();
    s.ports.accounts.update(&a).await.map_err(store_problem)?;
    Ok(Json(AccountView::of(a)).into_response())
}

/// Data-subject request (Decree 13/2023): answers with an export of the account, then
/// erases it and the cached registry answer. Dossiers stay, as the law requires, filed
/// under the person's owner reference: signing in again creates a new account that finds
/// them.
#[utoipa::path(delete, path = "/v1/me", tag = "identity",
    security(("bearer" = [])),
    responses((status = 200, description = "Export of the erased account"),
        (status = 403, description = "Officers and admins have no account here"),
        (status = 404, description = "No account (erased, or a token of another kind)")))]
pub(crate) async fn delete_me(
    State(s): State<IdentityState>,
    Caller(caller): Caller,
) -> Result<Response, Problem> {
    let a = my_account(&s, &caller).await?;
    if a.kind == AccountKind::Business {
        // A business is not a data subject, and whoever holds its tokens may not be the
        // person entitled to close it.
        return Err(Problem::forbidden(
            "Tài khoản doanh nghiệp không xóa được theo yêu cầu xóa dữ liệu cá nhân",
            "A business account is not erased by a personal-data erasure request",
        ));
    }
    let now = s.clock.now();
    let export = serde_json::json!({
        "exported_at": now,
        "account": AccountView::of(a.clone()),
        "kept": {
            "vi": "Hồ sơ thủ tục hành chính đã nộp được lưu theo quy định của pháp luật và gắn với số định danh của bạn (dạng băm có khóa); khi đăng nhập lại, bạn vẫn thấy các hồ sơ này.",
            "en": "Dossiers already submitted are kept as the law requires, linked to your personal number (as a keyed hash); when you sign in again you will see them."
        }
    });
    // Its tokens stop now, everywhere, rather than at their expiry.
    let tokens_end = Timestamp::from_second(now.as_second() + s.config.access_token_ttl_secs + 60)
        .unwrap_or(now);
    s.ports
        .revoked
        .revoke_subject(&caller.subject, tokens_end)
        .await
        .map_err(store_problem)?;
    s.ports.accounts.erase(&a).await.map_err(store_problem)?;
    audit_entry_under(
        &s,
        a.id_hash_kid
            .as_deref()
            .unwrap_or(config::IdHashKeys::SINGLE),
        &caller.subject,
        "data-subject-erasure",
        &a.id_hash,
        "erased",
        now,
    )
    .await?;
    tracing::info!(account = %a.id, "account erased at the holder's request");
    let mut r = no_store(Json(export).into_response());
    r.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"motcua-account.json\""),
    );
    Ok(r)
}
