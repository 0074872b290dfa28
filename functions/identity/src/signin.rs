//! Citizens' sign-in without the e-ID app: the registry match, then a one-time code sent
//! to the phone number the population registry holds. Knowing the facts printed on an ID
//! card is never enough: the code proves possession of the registered phone.

use super::*;

/// What a citizen gives to be sent a sign-in code. The facts must match the population
/// registry; the code goes to the registry's phone, never to a number given here.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CitizenClaim {
    /// 12-digit personal identification number.
    pub citizen_id: String,
    #[schema(min_length = 1, max_length = 100)]
    pub full_name: String,
    #[schema(value_type = String, format = Date)]
    pub birth_date: Date,
    pub sex: Sex,
    /// Contact email for status messages, kept on the account once signed in.
    #[serde(default)]
    #[schema(max_length = 254)]
    pub email: Option<String>,
}

/// A code is on its way to the registry's phone.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CodeSent {
    /// What `verify/confirm` needs with the code.
    pub challenge_id: String,
    /// The registry's number with all but its last three digits hidden, e.g. `*******678`.
    pub masked_phone: String,
    /// Seconds the code stays valid.
    pub expires_in: i64,
    /// Wrong codes allowed before the challenge is dead.
    pub tries: u32,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeConfirmation {
    #[schema(max_length = 64)]
    pub challenge_id: String,
    /// The 6 digits of the SMS.
    #[schema(pattern = "^[0-9]{6}$")]
    pub code: String,
}

/// What a confirmed sign-in code yields, kept with its challenge for a few minutes.
#[derive(Debug, Serialize, Deserialize)]
struct PendingSignIn {
    id_hash: String,
    /// The number's hashes under older keys (an account made before a key rotation).
    #[serde(default)]
    older: Vec<String>,
    /// The person's owner reference.
    #[serde(default)]
    owner: Option<String>,
    person: RegistryPerson,
    #[serde(default)]
    email: Option<String>,
}

const SMS_CODE: &str = "sms-code";

/// The one answer for "not in the registry" and "does not match": an unauthenticated
/// caller learns nothing about which part was wrong.
fn verification_failed() -> Problem {
    unprocessable(
        "verification-failed",
        "Thông tin không khớp với một công dân trong cơ sở dữ liệu quốc gia",
        "The details do not match a person in the national registry",
    )
    .detail(
        "Kiểm tra lại số định danh, họ tên, ngày sinh và giới tính như trên căn cước",
        "Check the number, full name, birth date and sex as printed on the ID card",
    )
}

fn invalid_code() -> Problem {
    unprocessable(
        "invalid-code",
        "Mã xác thực không đúng hoặc đã hết hạn",
        "The code is wrong or has expired",
    )
    .detail(
        "Nhập đúng mã 6 chữ số trong tin nhắn, hoặc yêu cầu mã mới",
        "Enter the 6 digits of the message, or ask for a new code",
    )
}

/// `+84912345678` → `*******678` (the national form's length, last three digits shown).
pub fn mask_phone(e164: &str) -> String {
    let national = match e164.strip_prefix("+84") {
        Some(rest) => format!("0{rest}"),
        None => e164.trim_start_matches('+').to_owned(),
    };
    let digits: Vec<char> = national.chars().collect();
    let shown = digits.len().saturating_sub(3);
    digits
        .iter()
        .enumerate()
        .map(|(i, c)| if i < shown { '*' } else { *c })
        .collect()
}

/// Six random digits, uniformly drawn.
fn random_code() -> Result<String, Problem> {
    use ring::rand::SecureRandom;
    let rng = ring::rand::SystemRandom::new();
    loop {
        let mut b = [0u8; 4];
        rng.fill(&mut b).map_err(|_| Problem::internal())?;
        let v = u32::from_be_bytes(b);
        // Reject the top sliver so every code is equally likely.
        if v < u32::MAX - (u32::MAX % 1_000_000) {
            return Ok(format!("{:06}", v % 1_000_000));
        }
    }
}

/// A random, URL-safe challenge id (256 bits).
pub(crate) fn random_id() -> Result<String, Problem> {
    use base64::Engine;
    use ring::rand::SecureRandom;
    let mut raw = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut raw)
        .map_err(|_| Problem::internal())?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
}

/// Keyed hash of a code, bound to its challenge.
fn code_mac(key: &[u8], challenge_id: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(SMS_CODE.as_bytes());
    mac.update(b":");
    mac.update(challenge_id.as_bytes());
    mac.update(b":");
    mac
}

fn code_hash(key: &[u8], challenge_id: &str, code: &str) -> String {
    let mut mac = code_mac(key, challenge_id);
    mac.update(code.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Constant-time check of a code against its stored hash.
fn code_matches(key: &[u8], challenge_id: &str, code: &str, stored: &str) -> bool {
    let Ok(stored) = hex::decode(stored) else {
        return false;
    };
    let mut mac = code_mac(key, challenge_id);
    mac.update(code.as_bytes());
    mac.verify_slice(&stored).is_ok()
}

pub(crate) fn parse_citizen_id(raw: &str) -> Result<CitizenId, Problem> {
    CitizenId::parse(raw).map_err(|e| {
        unprocessable(
            "invalid-citizen-id",
            "Số định danh cá nhân không hợp lệ",
            "Invalid personal identification number",
        )
        .detail(
            format!("Số định danh cá nhân {}", e.message(Lang::Vi)),
            format!("The personal identification number {}", e.message(Lang::En)),
        )
    })
}

fn claim_inconsistent(mismatches: &[ClaimMismatch]) -> Problem {
    let what: Vec<(&str, &str)> = mismatches
        .iter()
        .map(|m| match m {
            ClaimMismatch::BirthYear => ("năm sinh", "birth year"),
            ClaimMismatch::Sex => ("giới tính", "sex"),
        })
        .collect();
    unprocessable(
        "claim-inconsistent",
        "Số định danh không khớp với thông tin khai báo",
        "The number does not fit the details given",
    )
    .detail(
        format!(
            "Số định danh cá nhân không khớp với {} đã khai",
            what.iter().map(|w| w.0).collect::<Vec<_>>().join(", ")
        ),
        format!(
            "The personal number does not fit the declared {}",
            what.iter().map(|w| w.1).collect::<Vec<_>>().join(", ")
        ),
    )
}

/// The population registry's record of a person, asked now (never a cached answer: a
/// code goes to the phone the registry holds today, not to a number it held yesterday),
/// with the lookup audited once under its final `outcome` — so an unknown number and a
/// mismatch cost the same writes and take the same time.
pub(crate) async fn registry_person(
    s: &IdentityState,
    id: &CitizenId,
) -> Result<RegistryPerson, RegistryError> {
    s.population.person(id).await
}

/// Audits a lookup of `hash` for a sign-in by code. Nobody is signed in yet: the actor
/// is "anonymous", never something a request header says.
async fn audit_lookup(
    s: &IdentityState,
    hash: &str,
    outcome: &str,
    now: Timestamp,
) -> Result<(), Problem> {
    audit_entry(s, ANONYMOUS, "citizen-verification", hash, outcome, now).await
}

/// Step 1 of a sign-in without the e-ID app: the details are checked against the
/// population registry, and on a match a 6-digit code is sent by SMS to the phone number
/// the registry holds (never to one given here). Unknown and mismatching details get one
/// and the same answer. Failed attempts are counted per number and per client *before*
/// the registry is asked; codes sent are limited per number and per client.
#[utoipa::path(post, path = "/v1/identity/citizens/verify", tag = "identity",
    request_body = CitizenClaim,
    responses((status = 202, body = CodeSent, description = "A code was sent to the registry's phone"),
        (status = 400, description = "Malformed JSON"),
        (status = 413, description = "Body too large"),
        (status = 415, description = "Not JSON"),
        (status = 422, description = "The body does not have the expected shape (a phone is refused), invalid number, number inconsistent with the birth year or sex, details not matching a person in the registry (one answer), or no phone in the registry (sign in with VNeID)"),
        (status = 429, description = "Too many attempts or codes; Retry-After"),
        (status = 503, description = "Registry or SMS channel unavailable; Retry-After")))]
pub(crate) async fn verify_citizen(
    State(s): State<IdentityState>,
    headers: HeaderMap,
    JsonBody(claim): JsonBody<CitizenClaim>,
) -> Result<Response, Problem> {
    let now = s.clock.now();
    let client = client_key_of(&headers, &s.config.proxies);
    let id = parse_citizen_id(&claim.citizen_id)?;
    let name = claim
        .full_name
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if name.is_empty() || name.chars().count() > 100 {
        return Err(unprocessable(
            "invalid-name",
            "Họ và tên không hợp lệ",
            "Invalid full name",
        ));
    }
    let (_, email) = parse_contacts(None, claim.email.as_deref())?;
    let mut hashes = id_hashes(&s, "citizen", id.as_str())
        .into_iter()
        .map(|(_, h)| h);
    let hash = hashes.next().unwrap_or_default();
    let older: Vec<String> = hashes.collect();
    let id_key = format!("id:{hash}");
    let what = ("Xác thực", "verifications");
    let held = Holds::reserve(
        &s,
        &[
            (s.config.lockout_per_client(), client.as_str()),
            (s.config.lockout(), id_key.as_str()),
        ],
        now,
        what,
    )
    .await?;
    if let Err(mismatches) = id.check_claim(claim.birth_date, claim.sex) {
        held.keep();
        return Err(claim_inconsistent(&mismatches));
    }
    let record = match registry_person(&s, &id).await {
        Ok(p) => p,
        Err(RegistryError::NotFound) => {
            held.keep();
            audit_lookup(&s, &hash, "not-found", now).await?;
            return Err(verification_failed());
        }
        Err(e) => {
            // An outage is not the caller's failure.
            held.release(&s).await;
            let _ = audit_lookup(&s, &hash, "unavailable", now).await;
            return Err(registry_problem(&e));
        }
    };
    let claimed = RegistryPerson {
        full_name: name,
        birth_date: claim.birth_date,
        sex: claim.sex,
        phone: None,
    };
    if !PersonComparison::compare(&claimed, &record).all_match() {
        held.keep();
        audit_lookup(&s, &hash, "mismatch", now).await?;
        return Err(verification_failed());
    }
    held.release(&s).await;
    let Some(phone) = record.phone.clone() else {
        audit_lookup(&s, &hash, "no-phone", now).await?;
        return Err(unprocessable(
            "no-registry-phone",
            "Cơ sở dữ liệu quốc gia chưa có số điện thoại di động của bạn",
            "The national registry holds no mobile number for you",
        )
        .detail(
            "Hãy đăng nhập bằng ứng dụng VNeID",
            "Sign in with the VNeID app instead",
        ));
    };
    // Once the person's wrong codes for the day are spent no code could be checked: send
    // none (no SMS for nothing).
    if let Err(p) = s
        .config
        .code_failures_per_day()
        .check(
            s.ports.attempts.as_ref(),
            &format!("code-number:{hash}"),
            now,
            ("Mã xác thực", "codes"),
        )
        .await
    {
        audit_lookup(&s, &hash, "match-codes-locked", now).await?;
        return Err(p);
    }
    // Codes sent are limited per number (so nobody floods a person's phone) and per client
    // (so nobody sends SMS in bulk), counted before the message goes.
    let sends = Holds::reserve(
        &s,
        &[
            (s.config.code_sends(), format!("codes:{hash}").as_str()),
            (
                s.config.code_sends_per_client(),
                format!("codes:{client}").as_str(),
            ),
        ],
        now,
        ("Gửi mã", "code requests"),
    )
    .await;
    let sends = match sends {
        Ok(h) => h,
        Err(p) => {
            audit_lookup(&s, &hash, "match-codes-limited", now).await?;
            return Err(p);
        }
    };
    let challenge_id = random_id()?;
    let code = random_code()?;
    let pending = PendingSignIn {
        id_hash: hash.clone(),
        older,
        owner: Some(owner_of(&s, AccountKind::Citizen, id.as_str())),
        person: record,
        email,
    };
    let expires = Timestamp::from_second(now.as_second() + s.config.code_ttl_secs).unwrap_or(now);
    s.ports
        .challenges
        .put(&Challenge {
            id: challenge_id.clone(),
            purpose: SMS_CODE.into(),
            secret_hash: code_hash(&s.config.id_hash_key, &challenge_id, &code),
            payload: serde_json::to_value(&pending).map_err(|_| Problem::internal())?,
            expires,
        })
        .await
        .map_err(store_problem)?;
    let text = format!(
        "Ma dang nhap Dich vu cong cua ban la {code}. Ma co hieu luc {} phut. Khong cung cap ma nay cho bat ky ai.",
        (s.config.code_ttl_secs + 59) / 60
    );
    if let Err(e) = s.codes.send_code(&phone, &text).await {
        tracing::error!(error = %e, "the sign-in code could not be sent");
        let _ = s.ports.challenges.consume(&challenge_id, now).await;
        sends.release(&s).await;
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "sms-unavailable",
            "Không gửi được tin nhắn",
            "The message could not be sent",
        )
        .detail(
            "Vui lòng thử lại sau ít phút, hoặc đăng nhập bằng ứng dụng VNeID",
            "Please try again in a few minutes, or sign in with the VNeID app",
        )
        .retry_after(60));
    }
    sends.keep();
    audit_lookup(&s, &hash, "code-sent", now).await?;
    let mut r = no_store(
        Json(CodeSent {
            challenge_id,
            masked_phone: mask_phone(&phone),
            expires_in: s.config.code_ttl_secs,
            tries: s.config.code_tries,
        })
        .into_response(),
    );
    *r.status_mut() = StatusCode::ACCEPTED;
    Ok(r)
}

/// Step 2: the code of the SMS, within its validity and tries, once. Signs the person in
/// to their one account (created at the first sign-in), at assurance level 2. Wrong codes
/// count per code (`MOTCUA_CODE_TRIES`), per client, and per number per day over all its
/// codes (`MOTCUA_CODE_FAILURES_PER_DAY`), each before the code is compared.
#[utoipa::path(post, path = "/v1/identity/citizens/verify/confirm", tag = "identity",
    request_body = CodeConfirmation,
    responses((status = 200, body = VerifiedResponse),
        (status = 400, description = "Malformed JSON"),
        (status = 413, description = "Body too large"),
        (status = 415, description = "Not JSON"),
        (status = 422, description = "Wrong, expired or already used code (one answer), or a body of another shape"),
        (status = 429, description = "Too many wrong codes; Retry-After"),
        (status = 503, description = "Storage unavailable; Retry-After")))]
pub(crate) async fn confirm_citizen(
    State(s): State<IdentityState>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<CodeConfirmation>,
) -> Result<Response, Problem> {
    let now = s.clock.now();
    let client = client_key_of(&headers, &s.config.proxies);
    let well_formed = req.code.len() == 6 && req.code.bytes().all(|b| b.is_ascii_digit());
    if !well_formed || req.challenge_id.is_empty() || req.challenge_id.len() > 64 {
        return Err(invalid_code());
    }
    let what = ("Mã xác thực", "codes");
    let held = Holds::reserve(
        &s,
        &[
            (
                s.config.code_tries(),
                format!("code:{}", req.challenge_id).as_str(),
            ),
            (
                s.config.code_tries_per_client(),
                format!("code-client:{client}").as_str(),
            ),
        ],
        now,
        what,
    )
    .await?;
    let challenge = s
        .ports
        .challenges
        .get(&req.challenge_id, now)
        .await
        .map_err(store_problem)?
        .filter(|c| c.purpose == SMS_CODE);
    let Some(challenge) = challenge else {
        held.keep();
        return Err(invalid_code());
    };
    let pending: PendingSignIn =
        serde_json::from_value(challenge.payload.clone()).map_err(|_| Problem::internal())?;
    let per_number = match Holds::reserve(
        &s,
        &[(
            s.config.code_failures_per_day(),
            format!("code-number:{}", pending.id_hash).as_str(),
        )],
        now,
        what,
    )
    .await
    {
        Ok(h) => h,
        Err(p) => {
            held.release(&s).await;
            return Err(p);
        }
    };
    let right = code_matches(
        &s.config.id_hash_key,
        &challenge.id,
        &req.code,
        &challenge.secret_hash,
    );
    // Single use: of two simultaneous confirmations one signs in.
    if !right
        || !s
            .ports
            .challenges
            .consume(&challenge.id, now)
            .await
            .map_err(store_problem)?
    {
        held.keep();
        per_number.keep();
        return Err(invalid_code());
    }
    held.release(&s).await;
    per_number.release(&s).await;
    s.ports
        .attempts
        .clear(&format!("id:{}", pending.id_hash))
        .await
        .map_err(store_problem)?;
    audit_lookup(&s, &pending.id_hash, "code-confirmed", now).await?;
    let person = pending.person;
    let account = Account {
        id: Uuid::now_v7(),
        kind: AccountKind::Citizen,
        id_hash: pending.id_hash,
        id_hash_kid: Some(current_kid(&s)),
        owner: pending.owner,
        assurance: 2,
        name: person.full_name,
        birth_date: Some(person.birth_date),
        sex: Some(person.sex),
        phone: person.phone,
        email: pending.email,
        preferences: ChannelPreferences::default(),
        created_at: now,
        updated_at: now,
        version: 1,
        sealed: None,
    };
    issue(&s, account, &pending.older, now).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_masked_to_their_last_three_digits() {
        assert_eq!(mask_phone("+84912345678"), "*******678");
        assert_eq!(mask_phone("+6591234567"), "*******567");
    }

    #[test]
    fn codes_are_six_digits_and_bound_to_their_challenge() {
        let key = [7u8; 32];
        for _ in 0..200 {
            let c = random_code().unwrap();
            assert_eq!(c.len(), 6);
            assert!(c.bytes().all(|b| b.is_ascii_digit()));
        }
        let h = code_hash(&key, "ch-1", "123456");
        assert!(code_matches(&key, "ch-1", "123456", &h));
        assert!(!code_matches(&key, "ch-1", "123457", &h));
        assert!(!code_matches(&key, "ch-2", "123456", &h));
        assert!(!code_matches(&[8u8; 32], "ch-1", "123456", &h));
        assert!(!code_matches(&key, "ch-1", "123456", "not hex"));
    }
}
