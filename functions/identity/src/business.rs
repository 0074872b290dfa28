//! Businesses: the one account of a business is opened, and signed in to, by a person
//! signed in at assurance level 2 whom the business registry names as the legal
//! representative, or to whom a representative granted access. A tax code and a company
//! name (both public) never give a token.
//!
//! The tax code is not stored (the account is keyed by its keyed hash), so every
//! representative's action names it and is checked against the registry at that moment:
//! a representative the registry no longer names loses the right at once.

use super::*;

/// `member_kid` of grants naming the member by owner reference.
const OWNER_KEY: &str = "owner";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BusinessLink {
    /// 10-digit tax code, or 13 with a branch (`0100233488-001`).
    #[schema(max_length = 14)]
    pub tax_code: String,
    /// Contact phone of the business for status messages (a new account only).
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    #[schema(max_length = 254)]
    pub email: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberGrant {
    #[schema(max_length = 14)]
    pub tax_code: String,
    /// Personal number of the person to let act for the business. Only its keyed hash is
    /// kept; the person need not have signed in yet.
    pub citizen_id: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BusinessQuery {
    pub tax_code: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GrantView {
    pub id: Uuid,
    pub business_id: Uuid,
    /// Account of the representative who granted it.
    pub granted_by: Uuid,
    #[schema(value_type = String, format = DateTime)]
    pub granted_at: Timestamp,
}

impl From<BusinessGrant> for GrantView {
    fn from(g: BusinessGrant) -> Self {
        GrantView {
            id: g.id,
            business_id: g.business_id,
            granted_by: g.granted_by,
            granted_at: g.granted_at,
        }
    }
}

fn not_representative() -> Problem {
    Problem::new(
        StatusCode::FORBIDDEN,
        "not-representative",
        "Đăng ký kinh doanh không ghi nhận bạn là người đại diện theo pháp luật của doanh nghiệp này",
        "The business registry does not name you as this business's legal representative",
    )
}

fn parse_tax_code(raw: &str) -> Result<TaxCode, Problem> {
    TaxCode::parse(raw).map_err(|e| {
        unprocessable(
            "invalid-tax-code",
            "Mã số thuế không hợp lệ",
            "Invalid tax code",
        )
        .detail(
            format!("Mã số thuế {}", e.message(Lang::Vi)),
            format!("The tax code {}", e.message(Lang::En)),
        )
    })
}

/// The caller's own citizen account, signed in at level 2.
async fn signed_in_person(
    s: &IdentityState,
    caller: &motcua_domain::Actor,
) -> Result<Account, Problem> {
    let person = my_account(s, caller).await?;
    if person.kind != AccountKind::Citizen || person.assurance < 2 || caller.assurance < 2 {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "assurance-too-low",
            "Cần đăng nhập bằng VNeID hoặc mã gửi tới số điện thoại đã đăng ký",
            "Sign in with VNeID or a code sent to your registered phone first",
        ));
    }
    Ok(person)
}

/// What the business registry says of `tax` and the caller.
struct RegistryAnswer {
    /// `None`: the registry does not know the business.
    record: Option<RegistryBusiness>,
    represents: bool,
    hash: String,
    /// The tax code's hashes under older keys.
    older: Vec<String>,
    /// The business's owner reference.
    owner: String,
    /// The attempt, counted: released by [`RegistryAnswer::settle`] unless it failed.
    held: motcua_http::Reservation,
}

impl RegistryAnswer {
    /// Takes the attempt back (it succeeded) or keeps it counted (it failed).
    async fn settle(self, s: &IdentityState, failed: bool) -> Self {
        let RegistryAnswer {
            record,
            represents,
            hash,
            older,
            owner,
            held,
        } = self;
        if failed {
            held.keep();
        } else {
            s.config
                .lockout()
                .release(s.ports.attempts.as_ref(), held)
                .await;
        }
        RegistryAnswer {
            record,
            represents,
            hash,
            older,
            owner,
            held: motcua_http::Reservation::default(),
        }
    }
}

/// Asks the business registry about `tax` for `person`; asks count per person (reserved
/// first; the caller settles whether it failed), outages do not; every ask is audited
/// under the person's account id.
async fn ask_registry(
    s: &IdentityState,
    person: &Account,
    tax: &TaxCode,
    purpose: &str,
    now: Timestamp,
) -> Result<RegistryAnswer, Problem> {
    let mut hashes = id_hashes(s, "business", tax.as_str())
        .into_iter()
        .map(|(_, h)| h);
    let hash = hashes.next().unwrap_or_default();
    let older: Vec<String> = hashes.collect();
    let actor = person.id.to_string();
    let lockout = s.config.lockout();
    let attempts = s.ports.attempts.as_ref();
    let held = lockout
        .reserve(
            attempts,
            &[&format!("business-link:{actor}")],
            now,
            ("Liên kết doanh nghiệp", "business links"),
        )
        .await?;
    let record = match s.business.business(tax).await {
        Ok(b) => Some(b),
        Err(RegistryError::NotFound) => None,
        Err(e) => {
            lockout.release(attempts, held).await;
            let _ = audit_entry(s, &actor, purpose, &hash, "unavailable", now).await;
            return Err(registry_problem(&e));
        }
    };
    let represents = record.as_ref().is_some_and(|b| {
        b.representatives.iter().any(|r| {
            CitizenId::parse(r).is_ok_and(|id| {
                // Under the key the person's own hash was made with.
                id_hash_under(s, person.id_hash_kid.as_deref(), "citizen", id.as_str())
                    .is_some_and(|h| h == person.id_hash)
            })
        })
    });
    let outcome = match (&record, represents) {
        (None, _) => "not-found",
        (Some(_), true) => "representative",
        (Some(_), false) => "not-representative",
    };
    audit_entry(s, &actor, purpose, &hash, outcome, now).await?;
    Ok(RegistryAnswer {
        record,
        represents,
        hash,
        older,
        owner: owner_of(s, AccountKind::Business, tax.as_str()),
        held,
    })
}

fn inactive() -> Problem {
    unprocessable(
        "business-inactive",
        "Doanh nghiệp không còn hoạt động",
        "The business is not active",
    )
}

/// The business's account, created now if it has none.
async fn business_account(
    s: &IdentityState,
    record: &RegistryBusiness,
    hash: &str,
    older: &[String],
    owner: &str,
    contacts: (Option<String>, Option<String>),
    now: Timestamp,
) -> Result<(Account, bool), Problem> {
    let account = Account {
        id: Uuid::now_v7(),
        kind: AccountKind::Business,
        id_hash: hash.to_owned(),
        id_hash_kid: Some(current_kid(s)),
        owner: Some(owner.to_owned()),
        assurance: 2,
        name: record.name.clone(),
        birth_date: None,
        sex: None,
        phone: contacts.0,
        email: contacts.1,
        preferences: ChannelPreferences::default(),
        created_at: now,
        updated_at: now,
        version: 1,
        sealed: None,
    };
    one_account(s, &account, older).await
}

/// The legal representative the business registry names, or a person a representative
/// granted access, signed in as themselves (VNeID or a code to the registry's phone, level
/// 2), opens or signs in to the business's account. The business must be active. The
/// answer carries the tokens of the business account.
#[utoipa::path(post, path = "/v1/identity/businesses/link", tag = "identity",
    security(("bearer" = [])),
    request_body = BusinessLink,
    responses((status = 200, body = VerifiedResponse),
        (status = 401, description = "No valid token"),
        (status = 403, description = "Not a citizen signed in at level 2, or neither a legal representative of the business nor granted access (one answer, also for an unknown business)"),
        (status = 404, description = "The caller's account no longer exists"),
        (status = 422, description = "Invalid tax code or contacts, or the business is not active"),
        (status = 429, description = "Too many failed attempts; Retry-After"),
        (status = 503, description = "Registry unavailable; Retry-After")))]
pub(crate) async fn link_business(
    State(s): State<IdentityState>,
    Caller(caller): Caller,
    JsonBody(req): JsonBody<BusinessLink>,
) -> Result<Response, Problem> {
    let now = s.clock.now();
    let person = signed_in_person(&s, &caller).await?;
    let tax = parse_tax_code(&req.tax_code)?;
    let contacts = parse_contacts(req.phone.as_deref(), req.email.as_deref())?;
    let answer = ask_registry(&s, &person, &tax, "business-link", now).await?;
    if answer.represents {
        let answer = answer.settle(&s, false).await;
        let Some(record) = answer.record else {
            return Err(not_representative());
        };
        if !record.active {
            return Err(inactive());
        }
        let (account, created) = business_account(
            &s,
            &record,
            &answer.hash,
            &answer.older,
            &answer.owner,
            contacts,
            now,
        )
        .await?;
        tracing::info!(account = %account.id, created, "business signed in by its representative");
        return signed_in(&s, &account, created, now).await;
    }
    // Not a representative: a member a representative granted access?
    let business = match &answer.record {
        Some(_) => {
            let mut found = None;
            for h in std::iter::once(&answer.hash).chain(&answer.older) {
                found = s
                    .ports
                    .accounts
                    .get_by_id_hash(AccountKind::Business, h)
                    .await
                    .map_err(store_problem)?;
                if found.is_some() {
                    break;
                }
            }
            found
        }
        None => None,
    };
    let grant = match (&business, person.owner_ref()) {
        (Some(b), Some(member)) => {
            match s
                .ports
                .grants
                .find(b.id, &member)
                .await
                .map_err(store_problem)?
            {
                Some(g) => Some(g),
                // Grants of earlier versions name the member's keyed hash.
                None => s
                    .ports
                    .grants
                    .find(b.id, &person.id_hash)
                    .await
                    .map_err(store_problem)?,
            }
        }
        _ => None,
    };
    let answer = answer.settle(&s, grant.is_none()).await;
    let (Some(business), Some(grant)) = (business, grant) else {
        return Err(not_representative());
    };
    if !answer.record.as_ref().is_some_and(|r| r.active) {
        return Err(inactive());
    }
    tracing::info!(account = %business.id, "business signed in by a member");
    signed_in_member(&s, &business, grant.id, now).await
}

/// The caller, a legal representative the registry names now, and the business account.
async fn as_representative(
    s: &IdentityState,
    caller: &motcua_domain::Actor,
    tax_code: &str,
    purpose: &str,
    now: Timestamp,
) -> Result<(Account, Account), Problem> {
    let person = signed_in_person(s, caller).await?;
    let tax = parse_tax_code(tax_code)?;
    let answer = ask_registry(s, &person, &tax, purpose, now).await?;
    let failed = !answer.represents;
    let answer = answer.settle(s, failed).await;
    let Some(record) = answer.record.filter(|_| answer.represents) else {
        return Err(not_representative());
    };
    if !record.active {
        return Err(inactive());
    }
    let (business, _) = business_account(
        s,
        &record,
        &answer.hash,
        &answer.older,
        &answer.owner,
        (None, None),
        now,
    )
    .await?;
    Ok((person, business))
}

/// A legal representative lets another person act for the business: that person signs in
/// as themselves, then to the business by `businesses/link`. Granting twice keeps the
/// first grant (200); a new grant is 201. Nothing tells whether the person has an account.
#[utoipa::path(post, path = "/v1/identity/businesses/members", tag = "identity",
    security(("bearer" = [])),
    request_body = MemberGrant,
    responses((status = 201, body = GrantView, description = "Granted"),
        (status = 200, body = GrantView, description = "Already granted"),
        (status = 401, description = "No valid token"),
        (status = 403, description = "Not signed in at level 2, or not a legal representative"),
        (status = 404, description = "The caller's account no longer exists"),
        (status = 422, description = "Invalid tax code or personal number, or the business is not active"),
        (status = 429, description = "Too many failed attempts; Retry-After"),
        (status = 503, description = "Registry unavailable; Retry-After")))]
pub(crate) async fn grant_member(
    State(s): State<IdentityState>,
    Caller(caller): Caller,
    JsonBody(req): JsonBody<MemberGrant>,
) -> Result<Response, Problem> {
    let now = s.clock.now();
    let member = parse_citizen_id(&req.citizen_id)?;
    let (person, business) =
        as_representative(&s, &caller, &req.tax_code, "business-grant", now).await?;
    // The member is named by their owner reference: the same whichever key hashed their
    // account, before or after a rotation, and for an account they make later.
    let member_ref = owner_of(&s, AccountKind::Citizen, member.as_str());
    let member_hash = id_hash(&s.config.id_hash_key, "citizen", member.as_str());
    let (grant, new) = s
        .ports
        .grants
        .grant(&BusinessGrant {
            id: Uuid::now_v7(),
            business_id: business.id,
            member_hash: member_ref,
            member_kid: Some(OWNER_KEY.into()),
            granted_by: person.id,
            granted_at: now,
        })
        .await
        .map_err(store_problem)?;
    audit_entry(
        &s,
        &person.id.to_string(),
        "business-grant",
        &member_hash,
        if new { "granted" } else { "already-granted" },
        now,
    )
    .await?;
    let mut r = Json(GrantView::from(grant)).into_response();
    if new {
        *r.status_mut() = StatusCode::CREATED;
    }
    Ok(r)
}

/// A legal representative lists who may act for the business (grant ids, when and by
/// whom; no personal numbers, which are kept only as keyed hashes).
#[utoipa::path(get, path = "/v1/identity/businesses/members", tag = "identity",
    security(("bearer" = [])),
    params(BusinessQuery),
    responses((status = 200, body = Vec<GrantView>),
        (status = 401, description = "No valid token"),
        (status = 403, description = "Not signed in at level 2, or not a legal representative"),
        (status = 404, description = "The caller's account no longer exists"),
        (status = 422, description = "Invalid tax code, or the business is not active"),
        (status = 429, description = "Too many failed attempts; Retry-After"),
        (status = 503, description = "Registry unavailable; Retry-After")))]
pub(crate) async fn list_members(
    State(s): State<IdentityState>,
    Caller(caller): Caller,
    QueryParams(q): QueryParams<BusinessQuery>,
) -> Result<Response, Problem> {
    let now = s.clock.now();
    let (_, business) =
        as_representative(&s, &caller, &q.tax_code, "business-members", now).await?;
    let grants = s
        .ports
        .grants
        .list(business.id)
        .await
        .map_err(store_problem)?;
    let view: Vec<GrantView> = grants.into_iter().map(GrantView::from).collect();
    Ok(Json(view).into_response())
}

/// A legal representative takes a grant back: the person can no longer sign in to the
/// business (tokens already issued live out their 15 minutes).
#[utoipa::path(delete, path = "/v1/identity/businesses/members/{grant_id}", tag = "identity",
    security(("bearer" = [])),
    params(("grant_id" = Uuid, Path), BusinessQuery),
    responses((status = 204, description = "Revoked"),
        (status = 401, description = "No valid token"),
        (status = 403, description = "Not signed in at level 2, or not a legal representative"),
        (status = 404, description = "No such grant for this business"),
        (status = 422, description = "Invalid tax code, or the business is not active"),
        (status = 429, description = "Too many failed attempts; Retry-After"),
        (status = 503, description = "Registry unavailable; Retry-After")))]
pub(crate) async fn revoke_member(
    State(s): State<IdentityState>,
    Caller(caller): Caller,
    axum::extract::Path(grant_id): axum::extract::Path<String>,
    QueryParams(q): QueryParams<BusinessQuery>,
) -> Result<Response, Problem> {
    let now = s.clock.now();
    let (person, business) =
        as_representative(&s, &caller, &q.tax_code, "business-revoke", now).await?;
    let no_such_grant = || {
        Problem::not_found().detail(
            "Không có quyền này của doanh nghiệp",
            "No such grant for this business",
        )
    };
    // Not an id is no such grant, as for dossiers (review finding: axum's bare 400).
    let grant_id = Uuid::parse_str(&grant_id).map_err(|_| no_such_grant())?;
    if !s
        .ports
        .grants
        .revoke(business.id, grant_id)
        .await
        .map_err(store_problem)?
    {
        return Err(no_such_grant());
    }
    // The member's tokens stop now, not at their expiry; their refresh tokens check the
    // grant at every use.
    let until = Timestamp::from_second(now.as_second() + s.config.access_token_ttl_secs + 60)
        .unwrap_or(now);
    s.ports
        .revoked
        .revoke_subject(&member_subject(business.id, grant_id), until)
        .await
        .map_err(store_problem)?;
    tracing::info!(business = %business.id, by = %person.id, "business grant revoked");
    Ok(StatusCode::NO_CONTENT.into_response())
}
