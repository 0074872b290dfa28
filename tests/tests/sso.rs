//! Officers and admins from the province SSO: a simulator of the SSO (real HTTP server on
//! loopback, RS256 keys) started by the test, trusted by the runner through its issuer and
//! JWKS URL; its tokens are exchanged at the identity function for motcua tokens.

use std::time::Duration;

use motcua_registry::sso::{self, SsoSimulator};
use motcua_tests::Runner;
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

/// The agency of the criminal-record procedure in the demo catalogue.
const AGENCY: &str = "000.00.04.H42";

struct Env {
    runner: Runner,
    sso: SsoSimulator,
    http: Client,
}

async fn start(label: &str) -> Env {
    let sso = sso::start(0).await.unwrap();
    let jwks = sso.jwks_url();
    let runner = Runner::start_with(
        &motcua_tests::fresh_data_dir(label),
        &[
            ("MOTCUA_SSO_ISSUER", sso.issuer()),
            ("MOTCUA_SSO_JWKS_URL", jwks.as_str()),
            ("MOTCUA_SSO_AUDIENCE", "motcua-portal"),
            ("MOTCUA_SSO_ROLE_CLAIM", "realm_access.roles"),
        ],
    )
    .unwrap();
    // The runner fetched the SSO's keys at start (the simulator answers on this test's
    // runtime while the runner starts).
    assert_eq!(sso.jwks_fetches(), 1);
    Env {
        runner,
        sso,
        http: Client::new(),
    }
}

impl Env {
    async fn exchange(&self, subject_token: &str) -> Response {
        self.http
            .post(self.runner.url("/v1/identity/sso/exchange"))
            .header("accept-language", "en")
            .json(&json!({ "subject_token": subject_token }))
            .send()
            .await
            .unwrap()
    }

    fn officer_sso_token(&self, ttl: i64) -> String {
        self.sso.mint(
            "officer-ha",
            &["motcua-officer"],
            Some(AGENCY),
            "motcua-portal",
            ttl,
        )
    }
}

async fn refused(r: Response, status: StatusCode, needle: &str) {
    assert_eq!(r.status(), status);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let v: Value = r.json().await.unwrap();
    assert!(
        v["detail"].as_str().unwrap_or_default().contains(needle),
        "expected '{needle}' in {v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_officer_from_the_sso_works_the_agency_queue() {
    let env = start("sso-officer").await;
    // A citizen files a dossier at the agency.
    let citizen = env.runner.token("citizen", "citizen-lan", None);
    let r = env
        .http
        .post(env.runner.url("/v1/dossiers"))
        .bearer_auth(&citizen)
        .json(&env.runner.criminal_record_for(&env.http, &citizen).await)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The officer signs in at the SSO (a two-minute token) and exchanges it.
    let r = env.exchange(&env.officer_sso_token(120)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["role"], "officer");
    assert_eq!(t["agency"], AGENCY);
    let ttl = t["expires_in"].as_i64().unwrap();
    assert!(
        (1..=120).contains(&ttl),
        "never outlives the SSO token: {ttl}"
    );
    let token = t["access_token"].as_str().unwrap();
    // A motcua ES256 token, signed with a key of motcua's JWKS.
    let jwks: Value = env
        .http
        .get(env.runner.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = motcua_tests::jwt_part(token, 0);
    assert_eq!(header["alg"], "ES256");
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == header["kid"])
    );

    // It works the queue: sees the dossier and receives it.
    let q: Value = env
        .http
        .get(env.runner.url("/v1/dossiers?status=1"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(q["items"].as_array().unwrap().iter().any(|d| d["id"] == id));
    let r = env
        .http
        .post(env.runner.url(&format!("/v1/dossiers/{id}/actions")))
        .bearer_auth(token)
        .json(&json!({"action": "receive"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let d: Value = r.json().await.unwrap();
    assert_eq!(d["status"]["code"], 2);

    // An admin role (Keycloak-style list) exchanges for an admin token.
    let admin = env.sso.mint(
        "admin-1",
        &["offline_access", "motcua-admin"],
        None,
        "motcua-portal",
        600,
    );
    let t: Value = env.exchange(&admin).await.json().await.unwrap();
    assert_eq!(t["role"], "admin");

    // The SSO token itself is not an API token: only motcua's issuer is trusted there.
    let r = env
        .http
        .get(env.runner.url("/v1/dossiers"))
        .bearer_auth(env.officer_sso_token(120))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_the_sso_did_not_issue_for_an_officer_are_refused() {
    let env = start("sso-refused").await;
    let s = &env.sso;
    // No officer or admin role.
    let none = s.mint(
        "clerk",
        &["offline_access"],
        Some(AGENCY),
        "motcua-portal",
        600,
    );
    refused(
        env.exchange(&none).await,
        StatusCode::FORBIDDEN,
        "no officer, leader or admin role",
    )
    .await;
    let citizen = s.mint("someone", &["citizen"], None, "motcua-portal", 600);
    refused(
        env.exchange(&citizen).await,
        StatusCode::FORBIDDEN,
        "no officer, leader or admin role",
    )
    .await;
    // An officer without an agency, or with a malformed one.
    let r = env
        .exchange(&s.mint("o", &["motcua-officer"], None, "motcua-portal", 600))
        .await;
    refused(r, StatusCode::UNAUTHORIZED, "must name an agency").await;
    let r = env
        .exchange(&s.mint("o", &["motcua-officer"], Some("H42"), "motcua-portal", 600))
        .await;
    refused(r, StatusCode::UNAUTHORIZED, "not a valid agency code").await;
    let now_s = jiff::Timestamp::now().as_second();
    // Review finding: leaders. An agency leader names the agency; an agency claim that is
    // not one string (a list) is refused, never read as "no agency" (which had opened the
    // province's reports); only the explicit province-leader role opens the province.
    let r = env
        .exchange(&s.mint("l", &["motcua-leader"], None, "motcua-portal", 600))
        .await;
    refused(r, StatusCode::UNAUTHORIZED, "must name the agency").await;
    let listed = s.mint_claims(
        &json!({"iss": s.issuer(), "sub": "l", "aud": "motcua-portal",
        "iat": now_s, "exp": now_s + 600, "realm_access": {"roles": ["motcua-leader"]},
        "agency": [AGENCY]}),
    );
    refused(
        env.exchange(&listed).await,
        StatusCode::UNAUTHORIZED,
        "not a valid agency code",
    )
    .await;
    let agency_leader: Value = env
        .exchange(&s.mint("l", &["motcua-leader"], Some(AGENCY), "motcua-portal", 600))
        .await
        .json()
        .await
        .unwrap();
    let token = agency_leader["access_token"].as_str().unwrap();
    let r: Value = env
        .http
        .get(env.runner.url("/v1/reports/kpi"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        r["agency"], AGENCY,
        "an agency leader's report is the agency's"
    );
    let province: Value = env
        .exchange(&s.mint("p", &["motcua-province-leader"], None, "motcua-portal", 600))
        .await
        .json()
        .await
        .unwrap();
    let r = env
        .http
        .get(env.runner.url("/v1/reports/kpi"))
        .bearer_auth(province["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["agency"], Value::Null);
    // Issued for another audience, or by another issuer.
    let r = env
        .exchange(&s.mint("o", &["motcua-officer"], Some(AGENCY), "other-app", 600))
        .await;
    refused(r, StatusCode::UNAUTHORIZED, "not valid").await;
    let now = jiff::Timestamp::now().as_second();
    let foreign = s.mint_claims(&json!({"iss": "https://sso.elsewhere.example", "sub": "o",
        "aud": "motcua-portal", "iat": now, "exp": now + 600,
        "realm_access": {"roles": ["motcua-officer"]}, "agency": AGENCY}));
    refused(
        env.exchange(&foreign).await,
        StatusCode::UNAUTHORIZED,
        "not valid",
    )
    .await;
    // Expired (beyond the 30 s leeway).
    let old = s.mint_claims(&json!({"iss": s.issuer(), "sub": "o", "aud": "motcua-portal",
        "iat": now - 7200, "exp": now - 3600, "realm_access": {"roles": ["motcua-officer"]}, "agency": AGENCY}));
    refused(
        env.exchange(&old).await,
        StatusCode::UNAUTHORIZED,
        "expired",
    )
    .await;
    // Not yet valid (nbf an hour ahead, beyond the leeway).
    let early = s.mint_claims(
        &json!({"iss": s.issuer(), "sub": "o", "aud": "motcua-portal",
        "iat": now, "nbf": now + 3600, "exp": now + 7200,
        "realm_access": {"roles": ["motcua-officer"]}, "agency": AGENCY}),
    );
    let r = env.exchange(&early).await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "a token before its nbf"
    );
    // A role that is merely called admin or officer (the realm's own, another app's) is
    // not motcua's.
    for roles in [
        json!(["admin"]),
        json!(["officer"]),
        json!(["realm-admin", "admin"]),
    ] {
        let theirs = s.mint_claims(
            &json!({"iss": s.issuer(), "sub": "o", "aud": "motcua-portal",
            "iat": now, "exp": now + 600, "realm_access": {"roles": roles}, "role": "admin",
            "agency": AGENCY}),
        );
        let r = env.exchange(&theirs).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "roles {roles}");
    }
    // Tampered: the role changed after signing.
    let good = env.officer_sso_token(600);
    let parts: Vec<&str> = good.split('.').collect();
    let mut claims = motcua_tests::jwt_part(&good, 1);
    claims["realm_access"]["roles"] = json!(["motcua-admin"]);
    let forged = format!("{}.{}.{}", parts[0], encode_part(&claims), parts[2]);
    refused(
        env.exchange(&forged).await,
        StatusCode::UNAUTHORIZED,
        "not valid",
    )
    .await;
    // motcua's own development token is not an SSO token; garbage neither.
    let dev = env.runner.token("officer", "o", Some(AGENCY));
    refused(
        env.exchange(&dev).await,
        StatusCode::UNAUTHORIZED,
        "not valid",
    )
    .await;
    refused(
        env.exchange("not.a.token").await,
        StatusCode::UNAUTHORIZED,
        "not valid",
    )
    .await;
    // A body that is not the request.
    let r = env
        .http
        .post(env.runner.url("/v1/identity/sso/exchange"))
        .json(&json!({"subject_token": good, "role": "admin"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    assert_eq!(r.headers()["content-type"], "application/problem+json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_sso_key_is_fetched_once_and_made_up_kids_fetch_nothing() {
    let env = start("sso-rotation").await;
    assert_eq!(
        env.exchange(&env.officer_sso_token(600)).await.status(),
        StatusCode::OK
    );
    let fetched = env.sso.jwks_fetches();
    assert!(fetched >= 1);
    // Unknown kids right after a fetch do not reach the SSO again.
    let now = jiff::Timestamp::now().as_second();
    for i in 0..20 {
        let claims = json!({"iss": env.sso.issuer(), "sub": "o", "aud": "motcua-portal",
            "iat": now, "exp": now + 600, "realm_access": {"roles": ["motcua-officer"]}, "agency": AGENCY});
        let t = env.sso.mint_claims(&claims);
        let mut header = motcua_tests::jwt_part(&t, 0);
        header["kid"] = json!(format!("made-up-{i}"));
        let parts: Vec<&str> = t.split('.').collect();
        let forged = format!("{}.{}.{}", encode_part(&header), parts[1], parts[2]);
        assert_eq!(
            env.exchange(&forged).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // At most one fetch (if the last one was more than MIN_REFRESH ago), not twenty.
    let after_flood = env.sso.jwks_fetches();
    assert!(
        after_flood <= fetched + 1,
        "made-up kids must not flood the SSO: {fetched} -> {after_flood}"
    );
    let fetched = after_flood;
    // The SSO rotates its key. Past the minimum refresh interval, the first token with the
    // new kid makes the runner fetch the JWKS once, and it is accepted.
    env.sso.rotate();
    tokio::time::sleep(motcua_http::RemoteJwks::MIN_REFRESH + Duration::from_millis(300)).await;
    let t = env.officer_sso_token(600);
    assert_eq!(motcua_tests::jwt_part(&t, 0)["kid"], "sso-sim-2");
    assert_eq!(env.exchange(&t).await.status(), StatusCode::OK);
    assert_eq!(env.sso.jwks_fetches(), fetched + 1);
    assert_eq!(
        env.exchange(&env.officer_sso_token(600)).await.status(),
        StatusCode::OK
    );
    assert_eq!(env.sso.jwks_fetches(), fetched + 1);
}

fn encode_part(v: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}
