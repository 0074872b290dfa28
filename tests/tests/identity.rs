//! Identity verification through the real runner, against a registry simulator started
//! by the test (so it can inject outages).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use motcua_registry::simulator::{self, Fixture, Simulator};
use motcua_tests::{Backend, Runner};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

struct Env {
    runner: Runner,
    sim: Simulator,
    http: Client,
    /// Distinct per test, so per-client limits of one test do not touch another.
    client_ip: String,
}

async fn start(label: &str, backend: Backend) -> Env {
    start_with_log_level(label, backend, "warn").await
}

/// With every log line the runner writes (debug and up).
async fn start_logged(label: &str, backend: Backend) -> Env {
    start_with_log_level(
        label,
        backend,
        "debug,h2=warn,hyper=warn,aws=warn,rustls=warn",
    )
    .await
}

async fn start_with_log_level(label: &str, backend: Backend, level: &str) -> Env {
    let sim = simulator::start(Fixture::demo(), "test-key", 0)
        .await
        .unwrap();
    let url = sim.base_url();
    let runner = Runner::start_on_with(
        label,
        backend,
        &[
            ("MOTCUA_REGISTRY_URL", url.as_str()),
            ("MOTCUA_REGISTRY_API_KEY", "test-key"),
            ("MOTCUA_REGISTRY_TIMEOUT_MS", "500"),
            ("RUST_LOG", level),
        ],
    )
    .unwrap();
    Env {
        runner,
        sim,
        http: Client::new(),
        client_ip: format!("10.0.{}.{}", label.len(), std::process::id() % 250),
    }
}

fn lan(name: &str, birth: &str, sex: &str) -> Value {
    json!({"citizen_id": "037153000257", "full_name": name, "birth_date": birth, "sex": sex, "phone": "0912345678"})
}

impl Env {
    async fn register(&self, body: Value) -> Response {
        self.http
            .post(self.runner.url("/v1/identity/citizens/register"))
            .header("x-forwarded-for", &self.client_ip)
            .header("accept-language", "en")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn verify(&self, body: Value) -> Response {
        self.http
            .post(self.runner.url("/v1/identity/citizens/verify"))
            .header("x-forwarded-for", &self.client_ip)
            .header("accept-language", "en")
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

async fn problem(r: Response, status: StatusCode, kind: &str) -> Value {
    assert_eq!(r.status(), status);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], format!("urn:motcua:problem:{kind}"), "{v}");
    v
}

async fn a_match_creates_one_account_whose_token_works_everywhere(backend: Backend) {
    let env = start("id-match", backend).await;
    let r = env
        .verify(lan("  nguyễn thị   LAN ", "1953-04-02", "female"))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["created"], true);
    assert_eq!(v["assurance"], 2);
    let token = v["access_token"].as_str().unwrap().to_owned();
    let me: Value = env
        .http
        .get(env.runner.url("/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["name"], "Nguyễn Thị Lan");
    assert_eq!(me["phone"], "+84912345678");
    assert_eq!(me["id"], v["account_id"]);
    // Verifying again finds the same account; the registry is not asked again (cache).
    let calls = env.sim.faults.calls.load(Ordering::SeqCst);
    let again: Value = env
        .verify(lan("Nguyễn Thị Lan", "1953-04-02", "female"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["created"], false);
    assert_eq!(again["account_id"], v["account_id"]);
    assert_eq!(env.sim.faults.calls.load(Ordering::SeqCst), calls);
    // An ES256 token whose key the JWKS publishes.
    let jwks: Value = env
        .http
        .get(env.runner.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header_json = motcua_tests::jwt_part(&token, 0);
    assert_eq!(header_json["alg"], "ES256");
    assert_eq!(jwks["keys"][0]["kid"], header_json["kid"]);
    assert_eq!(jwks["keys"][0]["crv"], "P-256");
    assert!(
        jwks["keys"][0].get("d").is_none(),
        "no private part published"
    );
    // A tampered token is refused.
    let mut tampered: Vec<String> = token.split('.').map(String::from).collect();
    tampered[1] = tampered[1].replacen('e', "f", 1);
    let r = env
        .http
        .get(env.runner.url("/v1/me"))
        .bearer_auth(tampered.join("."))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    // The token submits dossiers.
    let r = env
        .http
        .post(env.runner.url("/v1/dossiers"))
        .bearer_auth(&token)
        .json(&motcua_tests::criminal_record())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    // Contacts and preferences can change; a bad email cannot.
    let patched: Value = env
        .http
        .patch(env.runner.url("/v1/me"))
        .bearer_auth(&token)
        .json(&json!({"email": "Lan@Example.vn", "preferences": {"sms": true, "email": false, "zalo": true}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(patched["email"], "lan@example.vn");
    assert_eq!(patched["preferences"]["zalo"], true);
    let bad = env
        .http
        .patch(env.runner.url("/v1/me"))
        .bearer_auth(&token)
        .json(&json!({"email": "not an email"}))
        .send()
        .await
        .unwrap();
    problem(bad, StatusCode::UNPROCESSABLE_ENTITY, "invalid-contact").await;
}

async fn mismatches_are_reported_field_by_field(backend: Backend) {
    let env = start("id-mismatch", backend).await;
    // Diacritics are significant.
    let p = problem(
        env.verify(lan("Nguyen Thi Lan", "1953-04-02", "female"))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "registry-mismatch",
    )
    .await;
    assert_eq!(
        p["fields"],
        json!({"full_name": "mismatch", "birth_date": "match", "sex": "match"})
    );
    // Same birth year, other day: only the registry can tell.
    let p = problem(
        env.verify(lan("Nguyễn Thị Lan", "1953-05-02", "female"))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "registry-mismatch",
    )
    .await;
    assert_eq!(p["fields"]["birth_date"], "mismatch");
    // Offline: the number says 1953 and female.
    let p = problem(
        env.verify(lan("Nguyễn Thị Lan", "1960-04-02", "male"))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "claim-inconsistent",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("birth year, sex"));
    let mut bad = lan("x", "1953-04-02", "female");
    bad["citizen_id"] = json!("003153000257");
    problem(
        env.verify(bad).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-citizen-id",
    )
    .await;
    let mut unknown = lan("Ai Đó", "1999-01-01", "male");
    unknown["citizen_id"] = json!("001099000001");
    problem(
        env.verify(unknown).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not-in-registry",
    )
    .await;
}

async fn concurrent_first_verifications_create_one_account(backend: Backend) {
    let env = start("id-race", backend).await;
    let mut tasks = Vec::new();
    for i in 0..10 {
        let http = env.http.clone();
        let url = env.runner.url("/v1/identity/citizens/verify");
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .header("x-forwarded-for", format!("10.9.9.{i}"))
                .json(&json!({"citizen_id": "079205001234", "full_name": "Trần Văn Minh", "birth_date": "2005-09-14", "sex": "male"}))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }));
    }
    let mut created = 0;
    let mut ids = std::collections::BTreeSet::new();
    for t in tasks {
        let v = t.await.unwrap();
        created += usize::from(v["created"] == true);
        ids.insert(v["account_id"].as_str().expect("verified").to_owned());
    }
    assert_eq!(created, 1);
    assert_eq!(ids.len(), 1);
}

async fn repeated_failures_lock_the_number_out(backend: Backend) {
    let env = start("id-lock", backend).await;
    for _ in 0..5 {
        problem(
            env.verify(lan("Sai Tên", "1953-04-02", "female")).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "registry-mismatch",
        )
        .await;
    }
    // Locked: even the right details wait, and the answer says how long.
    let r = env
        .verify(lan("Nguyễn Thị Lan", "1953-04-02", "female"))
        .await;
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=1800).contains(&retry));
    problem(r, StatusCode::TOO_MANY_REQUESTS, "too-many-attempts").await;
    // The number is locked from another client too.
    let r = env
        .http
        .post(env.runner.url("/v1/identity/citizens/verify"))
        .header("x-forwarded-for", "10.200.0.1")
        .json(&lan("Nguyễn Thị Lan", "1953-04-02", "female"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
}

async fn a_registry_outage_answers_503_fast_once_the_circuit_opens(backend: Backend) {
    let env = start("id-outage", backend).await;
    env.sim.faults.fail_next.store(1_000_000, Ordering::SeqCst);
    let body = json!({"citizen_id": "001190012345", "full_name": "Lê Thị Hoa", "birth_date": "1990-01-23", "sex": "female"});
    for _ in 0..5 {
        let r = env.verify(body.clone()).await;
        assert!(r.headers().contains_key("retry-after"));
        problem(r, StatusCode::SERVICE_UNAVAILABLE, "registry-unavailable").await;
    }
    let calls = env.sim.faults.calls.load(Ordering::SeqCst);
    let t = Instant::now();
    let r = env.verify(body.clone()).await;
    assert!(
        t.elapsed() < Duration::from_millis(200),
        "open circuit answers at once"
    );
    problem(r, StatusCode::SERVICE_UNAVAILABLE, "registry-unavailable").await;
    assert_eq!(
        env.sim.faults.calls.load(Ordering::SeqCst),
        calls,
        "the registry was spared"
    );
    // Outages are not the citizen's fault: no lock-out followed.
    env.sim.faults.fail_next.store(0, Ordering::SeqCst);
}

async fn every_lookup_is_audited_for_admins_only(backend: Backend) {
    let env = start("id-audit", backend).await;
    env.verify(lan("Sai Tên", "1953-04-02", "female")).await;
    env.verify(lan("Nguyễn Thị Lan", "1953-04-02", "female"))
        .await;
    let admin = env.runner.token("admin", "admin-1", None);
    let r = env
        .http
        .get(env.runner.url("/v1/admin/audit"))
        .query(&[("citizen_id", "037153000257")])
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(
        !text.contains("037153000257"),
        "the audit view shows no ID number"
    );
    let entries: Value = serde_json::from_str(&text).unwrap();
    let outcomes: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    // Newest first: the second call was served from the cache.
    assert_eq!(outcomes, ["cache-hit", "mismatch", "found"]);
    assert!(entries[0]["actor"].as_str().unwrap().starts_with("client:"));
    let citizen = env.runner.token("citizen", "c-1", None);
    let r = env
        .http
        .get(env.runner.url("/v1/admin/audit"))
        .query(&[("citizen_id", "037153000257")])
        .bearer_auth(&citizen)
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::FORBIDDEN, "forbidden").await;
}

async fn refresh_tokens_rotate_and_a_replay_revokes_the_sign_in(backend: Backend) {
    let env = start("id-refresh", backend).await;
    let v: Value = env
        .verify(lan("Nguyễn Thị Lan", "1953-04-02", "female"))
        .await
        .json()
        .await
        .unwrap();
    let r1 = v["refresh_token"].as_str().unwrap().to_owned();
    let refresh = |token: String| {
        env.http
            .post(env.runner.url("/v1/identity/token/refresh"))
            .json(&json!({"refresh_token": token}))
            .send()
    };
    let next = refresh(r1.clone()).await.unwrap();
    assert_eq!(next.status(), StatusCode::OK);
    let next: Value = next.json().await.unwrap();
    let r2 = next["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2);
    let me = env
        .http
        .get(env.runner.url("/v1/me"))
        .bearer_auth(next["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    // Replaying the spent token revokes the whole sign-in, successor included.
    problem(
        refresh(r1).await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "invalid-refresh-token",
    )
    .await;
    problem(
        refresh(r2).await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "invalid-refresh-token",
    )
    .await;
    // Sign-out revokes too; unknown tokens are refused.
    let v: Value = env
        .verify(lan("Nguyễn Thị Lan", "1953-04-02", "female"))
        .await
        .json()
        .await
        .unwrap();
    let r3 = v["refresh_token"].as_str().unwrap().to_owned();
    let out = env
        .http
        .post(env.runner.url("/v1/identity/token/revoke"))
        .json(&json!({"refresh_token": r3}))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    problem(
        refresh(r3).await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "invalid-refresh-token",
    )
    .await;
    problem(
        refresh("made-up".into()).await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "invalid-refresh-token",
    )
    .await;
}

async fn erasure_exports_then_forgets_the_account(backend: Backend) {
    let env = start("id-erase", backend).await;
    let v: Value = env
        .verify(lan("Nguyễn Thị Lan", "1953-04-02", "female"))
        .await
        .json()
        .await
        .unwrap();
    let token = v["access_token"].as_str().unwrap().to_owned();
    let r = env
        .http
        .delete(env.runner.url("/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let export: Value = r.json().await.unwrap();
    assert_eq!(export["account"]["name"], "Nguyễn Thị Lan");
    assert_eq!(export["account"]["id"], v["account_id"]);
    let gone = env
        .http
        .get(env.runner.url("/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    problem(gone, StatusCode::NOT_FOUND, "not-found").await;
    // The refresh token of the erased account no longer works.
    let r = env
        .http
        .post(env.runner.url("/v1/identity/token/refresh"))
        .json(&json!({"refresh_token": v["refresh_token"]}))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::UNAUTHORIZED, "invalid-refresh-token").await;
    // Verifying again makes a new account; the audit trail records the erasure.
    let again: Value = env
        .verify(lan("Nguyễn Thị Lan", "1953-04-02", "female"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["created"], true);
    assert_ne!(again["account_id"], v["account_id"]);
    let admin = env.runner.token("admin", "admin-1", None);
    let audit: Value = env
        .http
        .get(env.runner.url("/v1/admin/audit"))
        .query(&[("citizen_id", "037153000257")])
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["outcome"] == "erased")
    );
}

async fn logs_carry_no_personal_data(backend: Backend) {
    let env = start_logged("id-logs", backend).await;
    let v: Value = env
        .verify(lan("Nguyễn Thị Lan", "1953-04-02", "female"))
        .await
        .json()
        .await
        .unwrap();
    env.verify(lan("Sai Tên", "1953-04-02", "female")).await;
    let token = v["access_token"].as_str().unwrap();
    let r = env
        .http
        .post(env.runner.url("/v1/dossiers"))
        .bearer_auth(token)
        .json(&motcua_tests::criminal_record())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let log = env.runner.log();
    assert!(
        log.contains("identity verified"),
        "the log is being written: {log}"
    );
    assert!(log.contains("dossier submitted"));
    for secret in [
        "037153000257",
        "Nguyễn",
        "Sai Tên",
        "1953-04-02",
        "0912345678",
        "+84912345678",
    ] {
        assert!(
            !log.contains(secret),
            "log shows personal data ({secret}):\n{log}"
        );
    }
}

async fn self_declared_accounts_are_level_1_and_give_way_to_a_registry_match(backend: Backend) {
    let env = start("id-level1", backend).await;
    // The registry is down: the person can still open a self-declared account.
    env.sim.faults.fail_next.store(1_000, Ordering::SeqCst);
    let r = env
        .register(lan("Nguyễn Thị Lan", "1953-04-02", "female"))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["assurance"], 1);
    let level1 = v["account_id"].as_str().unwrap().to_owned();
    let token1 = v["access_token"].as_str().unwrap().to_owned();
    let refresh1 = v["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(motcua_tests::jwt_part(&token1, 1)["lvl"], 1);
    let me = |token: String| {
        let (http, url) = (env.http.clone(), env.runner.url("/v1/me"));
        async move { http.get(url).bearer_auth(token).send().await.unwrap() }
    };
    let m: Value = me(token1.clone()).await.json().await.unwrap();
    assert_eq!(m["assurance"], 1);
    // It cannot file a dossier.
    let submit = |token: String| {
        let (http, url) = (env.http.clone(), env.runner.url("/v1/dossiers"));
        async move {
            http.post(url)
                .bearer_auth(token)
                .header("accept-language", "en")
                .json(&motcua_tests::criminal_record())
                .send()
                .await
                .unwrap()
        }
    };
    problem(
        submit(token1.clone()).await,
        StatusCode::FORBIDDEN,
        "assurance-too-low",
    )
    .await;
    // The number has an account now: a second declaration gets no tokens.
    let p = problem(
        env.register(lan("Nguyễn Thị Lan", "1953-04-02", "female"))
            .await,
        StatusCode::CONFLICT,
        "account-exists",
    )
    .await;
    assert!(p.get("access_token").is_none());
    // Offline checks apply as for verification.
    problem(
        env.register(lan("Nguyễn Thị Lan", "1953-04-02", "male"))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "claim-inconsistent",
    )
    .await;

    // The registry is back: verifying replaces the self-declared account.
    env.sim.faults.fail_next.store(0, Ordering::SeqCst);
    let r = env
        .verify(lan("Nguyễn Thị Lan", "1953-04-02", "female"))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["assurance"], 2);
    assert_eq!(v["created"], true);
    assert_ne!(v["account_id"], level1.as_str());
    let token2 = v["access_token"].as_str().unwrap().to_owned();
    assert_eq!(motcua_tests::jwt_part(&token2, 1)["lvl"], 2);
    // Whoever declared the number holds nothing of the verified account.
    assert_eq!(me(token1).await.status(), StatusCode::NOT_FOUND);
    let r = env
        .http
        .post(env.runner.url("/v1/identity/token/refresh"))
        .json(&json!({"refresh_token": refresh1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // The verified person files a dossier.
    assert_eq!(submit(token2.clone()).await.status(), StatusCode::CREATED);
    let m: Value = me(token2).await.json().await.unwrap();
    assert_eq!(m["assurance"], 2);
    // And nobody can self-declare the number any more.
    problem(
        env.register(lan("Nguyễn Thị Lan", "1953-04-02", "female"))
            .await,
        StatusCode::CONFLICT,
        "account-exists",
    )
    .await;
}

async fn self_declared_registrations_are_limited_per_client(backend: Backend) {
    let env = start("id-register-limit", backend).await;
    let register = |ip: &'static str, serial: u32| {
        let (http, url) = (
            env.http.clone(),
            env.runner.url("/v1/identity/citizens/register"),
        );
        async move {
            http.post(url)
                .header("x-forwarded-for", ip)
                .json(&json!({"citizen_id": format!("001090{serial:06}"),
                    "full_name": "Trần Văn An", "birth_date": "1990-01-01", "sex": "male"}))
                .send()
                .await
                .unwrap()
        }
    };
    // Twenty people at one one-stop shop's address register...
    for serial in 0..20 {
        assert_eq!(
            register("198.51.100.20", serial).await.status(),
            StatusCode::CREATED
        );
    }
    // ...the twenty-first from there waits; another address does not.
    let r = register("198.51.100.20", 20).await;
    assert!(r.headers().contains_key("retry-after"));
    problem(r, StatusCode::TOO_MANY_REQUESTS, "too-many-attempts").await;
    assert_eq!(
        register("198.51.100.21", 21).await.status(),
        StatusCode::CREATED
    );
}

// Every flow above, once per backend.
motcua_tests::on_both_backends!(
    self_declared_registrations_are_limited_per_client,
    self_declared_accounts_are_level_1_and_give_way_to_a_registry_match,
    a_match_creates_one_account_whose_token_works_everywhere,
    mismatches_are_reported_field_by_field,
    concurrent_first_verifications_create_one_account,
    repeated_failures_lock_the_number_out,
    a_registry_outage_answers_503_fast_once_the_circuit_opens,
    every_lookup_is_audited_for_admins_only,
    refresh_tokens_rotate_and_a_replay_revokes_the_sign_in,
    erasure_exports_then_forgets_the_account,
    logs_carry_no_personal_data,
);
