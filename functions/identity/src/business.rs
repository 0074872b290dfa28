//! Businesses: the one account of a business is opened, and signed in to, by a person
//! signed in at assurance level 2 whom the business registry names as the legal
//! representative. A tax code and a company name (both public) never give a token.

use super::*;

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

fn not_representative() -> Problem {
    Problem::new(
        StatusCode::FORBIDDEN,
        "not-representative",
        "Đăng ký kinh doanh không ghi nhận bạn là người đại diện theo pháp luật của doanh nghiệp này",
        "The business registry does not name you as this business's legal representative",
    )
}

/// The legal representative, signed in as themselves (VNeID or a code to the registry's
/// phone, level 2), opens or signs in to the business's account. The business registry
/// must name the caller's personal number among the representatives and the business
/// must be active. The answer carries the tokens of the business account.
#[utoipa::path(post, path = "/v1/identity/businesses/link", tag = "identity",
    request_body = BusinessLink,
    responses((status = 200, body = VerifiedResponse),
        (status = 401, description = "No valid token"),
        (status = 403, description = "Not a citizen signed in at level 2, or not a legal representative of the business"),
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
    let person = my_account(&s, &caller).await?;
    if person.kind != AccountKind::Citizen || person.assurance < 2 || caller.assurance < 2 {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "assurance-too-low",
            "Cần đăng nhập bằng VNeID hoặc mã gửi tới số điện thoại đã đăng ký",
            "Sign in with VNeID or a code sent to your registered phone first",
        ));
    }
    let tax = TaxCode::parse(&req.tax_code).map_err(|e| {
        unprocessable(
            "invalid-tax-code",
            "Mã số thuế không hợp lệ",
            "Invalid tax code",
        )
        .detail(
            format!("Mã số thuế {}", e.message(Lang::Vi)),
            format!("The tax code {}", e.message(Lang::En)),
        )
    })?;
    let (phone, email) = parse_contacts(req.phone.as_deref(), req.email.as_deref())?;
    let hash = id_hash(&s.config.id_hash_key, "business", tax.as_str());
    let actor = person.id.to_string();
    let lockout = s.config.lockout();
    let attempts = s.ports.attempts.as_ref();
    let key = format!("business-link:{actor}");
    let held = lockout
        .reserve(
            attempts,
            &[&key],
            now,
            ("Liên kết doanh nghiệp", "business links"),
        )
        .await?;
    let purpose = "business-link";
    let record = match s.business.business(&tax).await {
        Ok(b) => b,
        Err(RegistryError::NotFound) => {
            held.keep();
            let _ = audit_entry(&s, &actor, purpose, &hash, "not-found", now).await;
            return Err(not_representative());
        }
        Err(e) => {
            lockout.release(attempts, held).await;
            let _ = audit_entry(&s, &actor, purpose, &hash, "unavailable", now).await;
            return Err(registry_problem(&e));
        }
    };
    let represents = record.representatives.iter().any(|r| {
        CitizenId::parse(r).is_ok_and(|id| {
            id_hash(&s.config.id_hash_key, "citizen", id.as_str()) == person.id_hash
        })
    });
    if !represents {
        held.keep();
        audit_entry(&s, &actor, purpose, &hash, "not-representative", now).await?;
        return Err(not_representative());
    }
    lockout.release(attempts, held).await;
    audit_entry(&s, &actor, purpose, &hash, "representative", now).await?;
    if !record.active {
        return Err(unprocessable(
            "business-inactive",
            "Doanh nghiệp không còn hoạt động",
            "The business is not active",
        ));
    }
    let account = Account {
        id: Uuid::now_v7(),
        kind: AccountKind::Business,
        id_hash: hash,
        assurance: 2,
        name: record.name,
        birth_date: None,
        sex: None,
        phone,
        email,
        preferences: ChannelPreferences::default(),
        created_at: now,
        updated_at: now,
        version: 1,
        sealed: None,
    };
    issue(&s, account, now).await
}
