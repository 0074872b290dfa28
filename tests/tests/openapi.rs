//! The one API document, `docs/openapi.json`: generated from the functions' annotations,
//! served by the runner (and by every function: `lambda_runtime.rs`), and true. Portal
//! teams generate clients from it, so every operation's declared answers are provoked
//! through the runner, every answer seen must be one the document declares, and the
//! parameters' declared bounds are the ones the API enforces.

use std::collections::{BTreeMap, BTreeSet};

#[path = "openapi_walk/payments.rs"]
mod payments;
#[path = "openapi_walk/reports.rs"]
mod reports;

use motcua_registry::simulator::{self, Fixture, Simulator};
use motcua_tests::{Runner, criminal_record};
use reqwest::header::HeaderMap;
use reqwest::{Client, Method, RequestBuilder};
use serde_json::{Value, json};

const AGENCY: &str = "000.00.04.H42";
const OTHER_AGENCY: &str = "000.01.41.H42";
/// The SMS gateway's receipt secret of the walk's runner.
const RECEIPT_SECRET: &str = "walk-receipt-secret";

/// The merged document of every HTTP function, as `docs/openapi.json` must hold it.
fn generated() -> Value {
    let mut doc = motcua_submission::openapi();
    doc.merge(motcua_identity::api().1);
    doc.merge(motcua_uploads::api().1);
    doc.merge(motcua_notifications::api().1);
    doc.merge(motcua_payments::api().1);
    doc.merge(motcua_reports::api().1);
    doc.info.title = "motcua API".into();
    doc.info.description = Some(
        "Every HTTP function of motcua: procedures, dossiers and their national status \
lifecycle (codes 1-10), the officers' actions, the public lookup, and identity (sign-in by \
the national e-ID or a code to the registry's phone, business accounts, tokens, /v1/me). \
Errors are application/problem+json in Vietnamese or English by Accept-Language."
            .into(),
    );
    serde_json::to_value(&doc).expect("JSON")
}

#[test]
fn the_committed_document_is_what_the_functions_declare() {
    let want = generated();
    if std::env::var_os("MOTCUA_BLESS").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
        let text = serde_json::to_string_pretty(&want).expect("JSON") + "\n";
        std::fs::write(path, text).expect("docs/openapi.json written");
        return;
    }
    let have: Value = serde_json::from_str(motcua_http::openapi::DOCUMENT).expect("JSON");
    assert!(
        have == want,
        "docs/openapi.json differs from the functions' annotations; regenerate it: \
MOTCUA_BLESS=1 cargo nextest run -p motcua-tests --test openapi"
    );
}

type Op = (String, String);

/// Answers the document declares that this walk does not provoke, each with where it is
/// tested. Every operation may also answer 500 and 503, tested by the outage tests
/// (`functions/relay/tests/outage.rs`, `shared/aws` and `shared/embedded` unavailability,
/// the registry circuit in `tests/tests/identity.rs`).
const ELSEWHERE: &[(&str, &str, u16, &str)] = &[
    (
        "GET",
        "/v1/dossiers",
        403,
        "no route mints the system token this refuses",
    ),
    (
        "POST",
        "/v1/dossiers",
        409,
        "api.rs: a keyed request still in progress",
    ),
    (
        "POST",
        "/v1/dossiers/{id}/withdraw",
        409,
        "covered below; also in progress",
    ),
    (
        "POST",
        "/v1/counter/dossiers",
        409,
        "a scan another dossier took meanwhile: the same claim as submission's citation_lost (uploads.rs); a keyed request in progress (api.rs)",
    ),
    (
        "POST",
        "/v1/uploads",
        409,
        "api.rs: a keyed request still in progress (the same idempotency helper)",
    ),
    (
        "POST",
        "/v1/uploads",
        429,
        "uploads.rs: slots_are_limited_per_owner_and_hour",
    ),
    (
        "PATCH",
        "/v1/me",
        409,
        "identity.rs: a phone another account holds",
    ),
    (
        "POST",
        "/v1/identity/citizens/verify",
        429,
        "identity.rs: codes_sent_are_limited…",
    ),
    (
        "POST",
        "/v1/identity/citizens/verify/confirm",
        429,
        "identity.rs: wrong_codes_are_capped…",
    ),
    (
        "POST",
        "/v1/identity/businesses/link",
        429,
        "identity.rs: failed attempts per account",
    ),
    (
        "POST",
        "/v1/identity/businesses/members",
        429,
        "identity.rs: failed attempts per account",
    ),
    (
        "GET",
        "/v1/identity/businesses/members",
        429,
        "identity.rs: failed attempts per account",
    ),
    (
        "DELETE",
        "/v1/identity/businesses/members/{grant_id}",
        429,
        "identity.rs: failed attempts",
    ),
    (
        "GET",
        "/v1/identity/login",
        429,
        "eid.rs: sign-ins started per address",
    ),
    (
        "GET",
        "/v1/identity/callback",
        302,
        "eid.rs: the portal's return_to redirect",
    ),
    (
        "GET",
        "/v1/identity/callback",
        401,
        "eid.rs: a forged or replayed e-ID answer",
    ),
    (
        "GET",
        "/v1/identity/callback",
        403,
        "eid.rs: an e-ID holder the registry does not match",
    ),
    (
        "GET",
        "/v1/identity/callback",
        404,
        "eid.rs: e-ID sign-in not configured",
    ),
    (
        "GET",
        "/v1/identity/callback",
        422,
        "eid.rs: an e-ID error answer",
    ),
    (
        "GET",
        "/v1/identity/login",
        404,
        "eid.rs: e-ID sign-in not configured",
    ),
    (
        "POST",
        "/v1/identity/sso/exchange",
        200,
        "sso.rs: an officer's SSO token",
    ),
    (
        "POST",
        "/v1/identity/sso/exchange",
        403,
        "sso.rs: an SSO role that is not ours",
    ),
    (
        "POST",
        "/v1/identity/sso/exchange",
        404,
        "sso.rs: SSO not configured",
    ),
    (
        "GET",
        "/.well-known/openid-configuration",
        200,
        "lambda_runtime.rs: an issuer URL",
    ),
    (
        "POST",
        "/v1/dossiers/{id}/payments",
        502,
        "functions/payments/tests/flows.rs: a_provider_refusing_the_payment_is_a_502_and_frees_the_fee",
    ),
    (
        "POST",
        "/v1/payments/paygov/confirm",
        404,
        "functions/payments/tests/flows.rs: the_platform_not_offered_answers_404_to_its_callbacks",
    ),
    (
        "GET",
        "/v1/payments/reconciliation/{day}",
        200,
        "functions/payments/tests/flows.rs: who_may_see_start_cancel_and_refund (a report made by the job)",
    ),
    (
        "POST",
        "/v1/notifications/receipts/gateway",
        204,
        "functions/notifications/tests/recipients.rs: a sent message's receipt (the walk's runner sends no gateway SMS)",
    ),
];

struct Walk {
    runner: Runner,
    _sim: Simulator,
    http: Client,
    declared: BTreeMap<Op, BTreeSet<u16>>,
    seen: BTreeSet<(Op, u16)>,
    ip: u32,
}

struct Answer {
    headers: HeaderMap,
    body: Value,
}

impl Walk {
    async fn start() -> Walk {
        let sim = simulator::start(Fixture::demo(), "test-key", 0)
            .await
            .unwrap();
        let url = sim.base_url();
        let runner = Runner::start_on_with(
            "openapi",
            motcua_tests::Backend::Embedded,
            &[
                ("MOTCUA_REGISTRY_URL", url.as_str()),
                ("MOTCUA_REGISTRY_API_KEY", "test-key"),
                ("MOTCUA_SMS_GATEWAY_RECEIPT_SECRET", RECEIPT_SECRET),
                ("MOTCUA_PAYMENT_SIM_SECRET", payments::SIM_SECRET),
            ],
        )
        .unwrap();
        Walk {
            runner,
            _sim: sim,
            http: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            declared: BTreeMap::new(),
            seen: BTreeSet::new(),
            ip: 0,
        }
    }

    fn request(&mut self, method: &str, path: &str, token: Option<&str>) -> RequestBuilder {
        // Each request from its own address, so per-address limits stay out of the way.
        self.ip += 1;
        let mut req = self
            .http
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                self.runner.url(path),
            )
            .header("accept-language", "en")
            .header(
                "x-forwarded-for",
                format!("10.77.{}.{}", self.ip / 250, self.ip % 250 + 1),
            );
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req
    }

    /// Records that `template` answered `status`: the document must declare it.
    fn saw(&mut self, method: &str, template: &str, status: u16) {
        let op = (method.to_owned(), template.to_owned());
        let declared = self
            .declared
            .get(&op)
            .unwrap_or_else(|| panic!("{method} {template} is not in the document"));
        assert!(
            declared.contains(&status),
            "{method} {template} answered {status}, which the document does not declare \
({declared:?})"
        );
        self.seen.insert((op, status));
    }

    /// Sends `req` for the operation `method template`: the answer is `want`, declared, and
    /// a problem document when it is an error.
    async fn expect(
        &mut self,
        method: &str,
        template: &str,
        req: RequestBuilder,
        want: u16,
    ) -> Answer {
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert_eq!(status, want, "{method} {template}: {text}");
        if status >= 400 {
            assert_eq!(
                headers["content-type"], "application/problem+json",
                "{method} {template} {status}"
            );
        }
        self.saw(method, template, status);
        Answer { headers, body }
    }
}

fn operations(doc: &Value) -> BTreeMap<Op, Value> {
    let mut out = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                out.insert((method.to_uppercase(), path.clone()), op.clone());
            }
        }
    }
    out
}

#[tokio::test]
async fn every_declared_answer_is_what_the_api_does() {
    let mut w = Walk::start().await;
    // The runner serves the committed document.
    let served: Value = w
        .http
        .get(w.runner.url("/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let doc: Value = serde_json::from_str(motcua_http::openapi::DOCUMENT).unwrap();
    assert!(
        served == doc,
        "the runner serves another document than docs/openapi.json"
    );
    let ops = operations(&doc);
    for (op, body) in &ops {
        let statuses = body["responses"]
            .as_object()
            .expect("responses")
            .keys()
            .map(|s| s.parse::<u16>().expect("a status"))
            .collect();
        w.declared.insert(op.clone(), statuses);
    }
    // Every route the runner's functions serve is in the document.
    let routed: BTreeSet<Op> = motcua_submission::route_table()
        .into_iter()
        .chain(motcua_identity::route_table())
        .chain(motcua_uploads::route_table())
        .chain(motcua_notifications::route_table())
        .chain(motcua_payments::route_table())
        .chain(motcua_reports::route_table())
        .filter(|(_, path)| path != "/health" && path != "/v1/openapi.json")
        .collect();
    let documented: BTreeSet<Op> = ops.keys().cloned().collect();
    assert_eq!(routed, documented);

    let citizen = w.runner.token("citizen", "citizen-openapi", None);
    let other_citizen = w.runner.token("citizen", "citizen-other", None);
    let officer = w.runner.token("officer", "officer-openapi", Some(AGENCY));
    let other_officer = w
        .runner
        .token("officer", "officer-other", Some(OTHER_AGENCY));
    let admin = w.runner.token("admin", "admin-openapi", None);

    // Submission: the happy answers first, keeping what later requests need.
    for (m, t) in [
        ("GET", "/v1/procedures"),
        ("GET", "/v1/procedures/1.001193"),
    ] {
        let req = w.request(m, t, None);
        let template = if t.ends_with("1.001193") {
            "/v1/procedures/{code}"
        } else {
            t
        };
        w.expect(m, template, req, 200).await;
    }
    let req = w.request("GET", "/v1/procedures/0.000000", None);
    w.expect("GET", "/v1/procedures/{code}", req, 404).await;
    let sample = w.runner.criminal_record_for(&w.http, &citizen).await;
    let submit =
        |w: &mut Walk, token: &str| w.request("POST", "/v1/dossiers", Some(token)).json(&sample);
    let req = submit(&mut w, &citizen);
    let created = w.expect("POST", "/v1/dossiers", req, 201).await.body;
    let id = created["id"].as_str().unwrap().to_owned();
    let req = submit(&mut w, &officer);
    w.expect("POST", "/v1/dossiers", req, 403).await;
    let mut unknown = criminal_record();
    unknown["procedure_code"] = json!("0.000000");
    let req = w
        .request("POST", "/v1/dossiers", Some(&citizen))
        .json(&unknown);
    w.expect("POST", "/v1/dossiers", req, 422).await;
    // Fifty unknown form fields: the answer lists the first twenty and counts the rest
    // (review finding: every one was echoed back, a megabyte for a big body).
    let mut noisy = w.runner.criminal_record_for(&w.http, &citizen).await;
    for i in 0..50 {
        noisy["form"][format!("unknown_{i}_{}", "x".repeat(5000))] = json!("x");
    }
    let req = w
        .request("POST", "/v1/dossiers", Some(&citizen))
        .json(&noisy);
    let a = w.expect("POST", "/v1/dossiers", req, 422).await;
    assert_eq!(
        a.body["errors"].as_array().map(Vec::len),
        Some(20),
        "{}",
        a.body
    );
    let detail = a.body["detail"].as_str().unwrap_or_default();
    // Names are the caller's: each shown shortened (review finding: echoed whole).
    assert!(
        a.body.to_string().len() < 20_000,
        "{}",
        a.body.to_string().len()
    );
    assert!(
        detail.starts_with("50 problem(s)") && detail.ends_with("and 30 more"),
        "{detail}"
    );
    let req = w.request("GET", "/v1/dossiers", Some(&citizen));
    w.expect("GET", "/v1/dossiers", req, 200).await;
    let req = w.request("GET", "/v1/dossiers?status=bogus", Some(&citizen));
    w.expect("GET", "/v1/dossiers", req, 400).await;
    // An empty cursor is the first page, as the document allows.
    let req = w.request("GET", "/v1/dossiers?cursor=", Some(&citizen));
    let first = w.expect("GET", "/v1/dossiers", req, 200).await.body;
    assert_eq!(first["items"][0]["id"], id.as_str());
    let dossier = format!("/v1/dossiers/{id}");
    let req = w.request("GET", &dossier, Some(&citizen));
    let seen = w.expect("GET", "/v1/dossiers/{id}", req, 200).await;
    assert_eq!(seen.headers["etag"], "\"1\"");
    let req = w.request("GET", &dossier, Some(&other_citizen));
    w.expect("GET", "/v1/dossiers/{id}", req, 403).await;
    let code = created["code"].as_str().unwrap().to_owned();
    let key = created["lookup_key"].as_str().unwrap().to_owned();
    let req = w.request("GET", &format!("/v1/lookup?code={code}&key={key}"), None);
    w.expect("GET", "/v1/lookup", req, 200).await;
    let req = w.request(
        "GET",
        &format!("/v1/lookup?code={code}&key=AAAAA-AAAAA"),
        None,
    );
    w.expect("GET", "/v1/lookup", req, 404).await;

    // Officers' actions.
    let actions = format!("{dossier}/actions");
    let t = "/v1/dossiers/{id}/actions";
    let req = w
        .request("POST", &actions, Some(&other_officer))
        .json(&json!({"action": "receive"}));
    w.expect("POST", t, req, 403).await;
    // The applicant's commands are not officers' actions.
    let req = w
        .request("POST", &actions, Some(&officer))
        .json(&json!({"action": "withdraw"}));
    w.expect("POST", t, req, 422).await;
    let req = w
        .request("POST", &actions, Some(&officer))
        .header("if-match", "not-a-version")
        .json(&json!({"action": "receive"}));
    w.expect("POST", t, req, 400).await;
    let req = w
        .request("POST", &actions, Some(&officer))
        .header("if-match", "\"7\"")
        .json(&json!({"action": "receive"}));
    w.expect("POST", t, req, 412).await;
    let req = w
        .request("POST", &actions, Some(&officer))
        .json(&json!({"action": "receive"}));
    w.expect("POST", t, req, 200).await;
    let req = w
        .request("POST", &actions, Some(&officer))
        .json(&json!({"action": "receive"}));
    w.expect("POST", t, req, 409).await;

    // The applicant's supplement and withdrawal.
    let supplement = format!("{dossier}/supplement");
    let t = "/v1/dossiers/{id}/supplement";
    let file = w
        .runner
        .verified_pdf(&w.http, &citizen, "2.000505", "giay-uy-quyen")
        .await;
    let sent =
        json!({"documents": [{"code": "giay-uy-quyen", "source": "upload", "reference": file}]});
    let req = w.request("POST", &supplement, Some(&citizen)).json(&sent);
    w.expect("POST", t, req, 409).await;
    let req = w.request("POST", &supplement, Some(&officer)).json(&sent);
    w.expect("POST", t, req, 403).await;
    let req = w
        .request("POST", &actions, Some(&officer))
        .json(&json!({"action": "request_supplement", "items": ["Văn bản ủy quyền"]}));
    w.expect("POST", "/v1/dossiers/{id}/actions", req, 200)
        .await;
    let req = w
        .request("POST", &supplement, Some(&citizen))
        .header("if-match", "\"1\"")
        .json(&sent);
    w.expect("POST", t, req, 412).await;
    let req = w.request("POST", &supplement, Some(&citizen)).json(&sent);
    w.expect("POST", t, req, 200).await;
    let withdraw = format!("{dossier}/withdraw");
    let t = "/v1/dossiers/{id}/withdraw";
    let req = w.request("POST", &withdraw, Some(&officer));
    w.expect("POST", t, req, 403).await;
    let req = w
        .request("POST", &withdraw, Some(&citizen))
        .header("if-match", "\"1\"");
    w.expect("POST", t, req, 412).await;
    let req = w
        .request("POST", &withdraw, Some(&citizen))
        .json(&json!({"reason": "Nộp nhầm"}));
    w.expect("POST", t, req, 200).await;
    let req = w.request("POST", &withdraw, Some(&citizen));
    w.expect("POST", t, req, 409).await;

    // Identity: a sign-in by a code to the registry's phone.
    let lan = json!({"citizen_id": "037153000257", "full_name": "Nguyễn Thị Lan", "birth_date": "1953-04-02", "sex": "female"});
    let req = w
        .request("POST", "/v1/identity/citizens/verify", None)
        .json(&lan);
    let challenge = w
        .expect("POST", "/v1/identity/citizens/verify", req, 202)
        .await
        .body;
    let sms = w.runner.code_sent_to(&w.http, "+84912345678").await;
    let t = "/v1/identity/citizens/verify/confirm";
    let wrong = if sms == "000000" { "111111" } else { "000000" };
    let req = w
        .request("POST", t, None)
        .json(&json!({"challenge_id": challenge["challenge_id"], "code": wrong}));
    w.expect("POST", t, req, 422).await;
    let req = w
        .request("POST", t, None)
        .json(&json!({"challenge_id": challenge["challenge_id"], "code": sms}));
    let signed = w.expect("POST", t, req, 200).await.body;
    let lan_token = signed["access_token"].as_str().unwrap().to_owned();
    let refresh = signed["refresh_token"].as_str().unwrap().to_owned();
    let req = w.request("GET", "/v1/me", Some(&lan_token));
    w.expect("GET", "/v1/me", req, 200).await;
    let req = w.request("GET", "/v1/me", Some(&citizen));
    w.expect("GET", "/v1/me", req, 404).await;
    let req = w
        .request("PATCH", "/v1/me", Some(&lan_token))
        .json(&json!({"email": "lan@example.vn"}));
    w.expect("PATCH", "/v1/me", req, 200).await;
    let req = w
        .request("PATCH", "/v1/me", Some(&citizen))
        .json(&json!({"email": "x@example.vn"}));
    w.expect("PATCH", "/v1/me", req, 404).await;
    let t = "/v1/identity/token/refresh";
    let req = w
        .request("POST", t, None)
        .json(&json!({"refresh_token": refresh}));
    let renewed = w.expect("POST", t, req, 200).await.body;
    let req = w
        .request("POST", t, None)
        .json(&json!({"refresh_token": "forged"}));
    w.expect("POST", t, req, 401).await;
    let req = w
        .request("POST", "/v1/identity/token/revoke", None)
        .json(&json!({"refresh_token": renewed["refresh_token"]}));
    w.expect("POST", "/v1/identity/token/revoke", req, 204)
        .await;

    // Businesses: the registry's representative links and grants; the grant is revoked.
    let anh = json!({"citizen_id": "048088004321", "full_name": "Phạm Đức Anh", "birth_date": "1988-12-01", "sex": "male"});
    let anh = w
        .runner
        .sign_in_with_code(&w.http, &anh, "+84935000333", "10.78.0.1")
        .await;
    let anh = anh["access_token"].as_str().unwrap().to_owned();
    let t = "/v1/identity/businesses/link";
    let req = w
        .request("POST", t, Some(&anh))
        .json(&json!({"tax_code": "0100233488"}));
    w.expect("POST", t, req, 200).await;
    let req = w
        .request("POST", t, Some(&lan_token))
        .json(&json!({"tax_code": "0100233488"}));
    w.expect("POST", t, req, 403).await;
    let req = w
        .request("POST", t, Some(&citizen))
        .json(&json!({"tax_code": "0100233488"}));
    w.expect("POST", t, req, 404).await;
    let t = "/v1/identity/businesses/members";
    let grant_lan = json!({"tax_code": "0100233488", "citizen_id": "037153000257"});
    let req = w.request("POST", t, Some(&anh)).json(&grant_lan);
    let grant = w.expect("POST", t, req, 201).await.body;
    let req = w.request("POST", t, Some(&anh)).json(&grant_lan);
    w.expect("POST", t, req, 200).await;
    let req = w.request("POST", t, Some(&lan_token)).json(&grant_lan);
    w.expect("POST", t, req, 403).await;
    let req = w.request("GET", &format!("{t}?tax_code=0100233488"), Some(&anh));
    w.expect("GET", t, req, 200).await;
    let req = w.request("GET", &format!("{t}?tax_code=0100233488"), Some(&lan_token));
    w.expect("GET", t, req, 403).await;
    let req = w.request("GET", &format!("{t}?tax_code=0100233489"), Some(&anh));
    w.expect("GET", t, req, 422).await;
    // A token whose account is gone, or never was (review finding: undeclared 404).
    let req = w.request("GET", &format!("{t}?tax_code=0100233488"), Some(&citizen));
    w.expect("GET", t, req, 404).await;
    let req = w.request("POST", t, Some(&citizen)).json(&grant_lan);
    w.expect("POST", t, req, 404).await;
    let revoke = format!("{t}/{}?tax_code=0100233488", grant["id"].as_str().unwrap());
    let t = "/v1/identity/businesses/members/{grant_id}";
    let req = w.request("DELETE", &revoke, Some(&lan_token));
    w.expect("DELETE", t, req, 403).await;
    let req = w.request("DELETE", &revoke, Some(&anh));
    w.expect("DELETE", t, req, 204).await;
    let req = w.request("DELETE", &revoke, Some(&anh));
    w.expect("DELETE", t, req, 404).await;
    let req = w.request(
        "DELETE",
        &revoke.replace("0100233488", "0100233489"),
        Some(&anh),
    );
    w.expect("DELETE", t, req, 422).await;
    // Not an id is no such grant (review finding: a bare 400).
    let req = w.request(
        "DELETE",
        "/v1/identity/businesses/members/not-an-id?tax_code=0100233488",
        Some(&anh),
    );
    w.expect("DELETE", t, req, 404).await;

    // Admins' audit search; keys and discovery.
    let t = "/v1/admin/audit/search";
    let req = w
        .request("POST", t, Some(&admin))
        .json(&json!({"citizen_id": "037153000257"}));
    w.expect("POST", t, req, 200).await;
    let req = w
        .request("POST", t, Some(&citizen))
        .json(&json!({"citizen_id": "037153000257"}));
    w.expect("POST", t, req, 403).await;
    let req = w
        .request("POST", t, Some(&admin))
        .json(&json!({"citizen_id": "037153000257", "tax_code": "0100233488"}));
    w.expect("POST", t, req, 400).await;
    // A limit outside its bounds in a body is a body of another shape, and says the bounds.
    for limit in [0, 1001] {
        let req = w
            .request("POST", t, Some(&admin))
            .json(&json!({"citizen_id": "037153000257", "limit": limit}));
        let a = w.expect("POST", t, req, 422).await;
        let detail = a.body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("between 1 and 1000"), "{detail}");
    }
    let req = w.request("GET", "/.well-known/jwks.json", None);
    w.expect("GET", "/.well-known/jwks.json", req, 200).await;
    let req = w.request("GET", "/.well-known/openid-configuration", None);
    // The runner's issuer is not a URL: no discovery document.
    w.expect("GET", "/.well-known/openid-configuration", req, 404)
        .await;
    let req = w
        .request("POST", "/v1/identity/sso/exchange", None)
        .json(&json!({"subject_token": "forged"}));
    w.expect("POST", "/v1/identity/sso/exchange", req, 401)
        .await;

    // The e-ID sign-in: login, the simulator's authorisation, callback, exchange.
    let req = w.request("GET", "/v1/identity/login?portal_challenge=short", None);
    w.expect("GET", "/v1/identity/login", req, 400).await;
    let req = w.request("GET", "/v1/identity/callback", None);
    w.expect("GET", "/v1/identity/callback", req, 400).await;
    let eid = w.runner.sign_in_with_eid("037153000257").await;
    assert!(eid["access_token"].is_string());
    w.saw("GET", "/v1/identity/login", 302);
    w.saw("GET", "/v1/identity/callback", 200);
    w.saw("POST", "/v1/identity/login/exchange", 200);

    // Officers and admins have no account here.
    let req = w.request("GET", "/v1/me", Some(&officer));
    w.expect("GET", "/v1/me", req, 403).await;
    let req = w
        .request("PATCH", "/v1/me", Some(&officer))
        .json(&json!({"email": "o@example.vn"}));
    w.expect("PATCH", "/v1/me", req, 403).await;
    let req = w.request("DELETE", "/v1/me", Some(&admin));
    w.expect("DELETE", "/v1/me", req, 403).await;

    // Uploads: a slot, its file, its status and download link; the document store.
    let pdf = motcua_tests::SAMPLE_PDF;
    let slot = json!({"file_name": "scan.pdf", "content_type": "application/pdf",
        "size": pdf.len(), "sha256": motcua_tests::sha256_b64(pdf)});
    let req = w.request("POST", "/v1/uploads", Some(&citizen)).json(&slot);
    let waiting = w.expect("POST", "/v1/uploads", req, 201).await.body;
    let waiting_id = waiting["id"].as_str().unwrap().to_owned();
    let req = w.request("POST", "/v1/uploads", Some(&admin)).json(&slot);
    w.expect("POST", "/v1/uploads", req, 403).await;
    let mut exe = slot.clone();
    exe["content_type"] = json!("application/x-msdownload");
    let req = w.request("POST", "/v1/uploads", Some(&citizen)).json(&exe);
    w.expect("POST", "/v1/uploads", req, 422).await;
    let t = "/v1/uploads/{id}";
    let req = w.request("GET", &format!("/v1/uploads/{waiting_id}"), Some(&citizen));
    w.expect("GET", t, req, 200).await;
    let req = w.request(
        "GET",
        &format!("/v1/uploads/{waiting_id}"),
        Some(&other_citizen),
    );
    w.expect("GET", t, req, 404).await;
    let t = "/v1/uploads/{id}/content";
    let req = w.request(
        "GET",
        &format!("/v1/uploads/{waiting_id}/content"),
        Some(&citizen),
    );
    w.expect("GET", t, req, 409).await;
    let req = w.request(
        "GET",
        &format!("/v1/uploads/{file}/content"),
        Some(&citizen),
    );
    let link = w.expect("GET", t, req, 200).await.body;
    assert!(
        link["url"]
            .as_str()
            .is_some_and(|u| u.contains("/_local/objects/clean/")),
        "{link}"
    );
    let req = w.request("GET", "/v1/me/documents", Some(&citizen));
    let docs = w.expect("GET", "/v1/me/documents", req, 200).await.body;
    assert!(!docs["items"].as_array().unwrap().is_empty(), "{docs}");
    let req = w.request("GET", "/v1/me/documents", Some(&officer));
    w.expect("GET", "/v1/me/documents", req, 403).await;

    // A dossier's messages: for its applicant; a stranger gets the unknown dossier's answer.
    let t = "/v1/dossiers/{id}/notifications";
    let req = w.request(
        "GET",
        &format!("/v1/dossiers/{id}/notifications"),
        Some(&citizen),
    );
    let list = w.expect("GET", t, req, 200).await.body;
    assert!(list.is_array(), "{list}");
    let req = w.request(
        "GET",
        &format!("/v1/dossiers/{id}/notifications"),
        Some(&other_citizen),
    );
    w.expect("GET", t, req, 404).await;
    // The gateway's receipts: signed, or refused.
    let t = "/v1/notifications/receipts/gateway";
    let body = br#"{"message_id":"gw-unknown","status":"delivered"}"#;
    let req = w
        .request("POST", t, None)
        .header("content-type", "application/json")
        .header(
            "x-signature",
            motcua_senders::receipt_signature(RECEIPT_SECRET.as_bytes(), body),
        )
        .body(body.to_vec());
    let early = w.expect("POST", t, req, 409).await;
    assert_eq!(early.headers["retry-after"], "30");
    let req = w
        .request("POST", t, None)
        .header("content-type", "application/json")
        .header("x-signature", "00")
        .body(body.to_vec());
    w.expect("POST", t, req, 401).await;

    // Payments: starting, paying through the simulator, callbacks, refunds, reports.
    payments::walk(
        &mut w,
        &citizen,
        &other_citizen,
        &officer,
        &other_officer,
        &admin,
    )
    .await;

    // Counter intake and the KPI reports.
    reports::walk(&mut w, &citizen, &officer, &other_officer, &admin).await;

    // Erasure, last: Lan's account goes.
    let req = w.request("DELETE", "/v1/me", Some(&lan_token));
    w.expect("DELETE", "/v1/me", req, 200).await;
    let req = w.request("DELETE", "/v1/me", Some(&citizen));
    w.expect("DELETE", "/v1/me", req, 404).await;

    // What every operation answers to the common mistakes, from what the document says of it.
    for ((method, template), op) in &ops {
        let token = token_for(method, template, &citizen, &officer, &admin, &anh);
        let path = concrete(template, &id);
        let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
        if secured {
            let req = w.request(method, &path, None);
            w.expect(method, template, req, 401).await;
        }
        if op["requestBody"].is_object() {
            let cases: [(&str, Vec<u8>, u16); 4] = [
                ("application/json", b"{".to_vec(), 400),
                // Just over the limit: the server answers before reading it all, and a
                // body much larger than the socket's buffers would break the pipe first.
                (
                    "application/json",
                    vec![b' '; motcua_http::DEFAULT_BODY_LIMIT + 1024],
                    413,
                ),
                ("text/plain", b"{}".to_vec(), 415),
                ("application/json", b"[]".to_vec(), 422),
            ];
            for (content_type, body, want) in cases {
                let mut req = w
                    .request(method, &path, token.as_deref())
                    .header("content-type", content_type);
                // A provider's callback is read only once signed: these are signed.
                if template == "/v1/notifications/receipts/gateway" {
                    req = req.header(
                        "x-signature",
                        motcua_senders::receipt_signature(RECEIPT_SECRET.as_bytes(), &body),
                    );
                }
                // VNPay's and the platform's callbacks answer in their own format (HTTP
                // 200) whatever the body; only what the document declares is a refusal.
                let provider_format = template == "/v1/payments/vnpay/ipn"
                    || template == "/v1/payments/paygov/confirm";
                let declared = op["responses"].get(want.to_string()).is_some();
                let want = if provider_format && !declared {
                    200
                } else {
                    want
                };
                let req = req.body(body);
                w.expect(method, template, req, want).await;
            }
        }
        // The path answers no method the document does not give it (the functions route
        // by hand beside their annotations).
        let documented: Vec<&str> = ops
            .keys()
            .filter(|(_, p)| p == template)
            .map(|(m, _)| m.as_str())
            .collect();
        for other in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            if !documented.contains(&other) {
                let r = w
                    .request(other, &path, token.as_deref())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 405, "{other} {template}");
            }
        }
        if template.contains("{id}") {
            let missing = concrete(template, &uuid::Uuid::now_v7().to_string());
            let mut req = w.request(method, &missing, token.as_deref());
            if template.ends_with("/actions") {
                req = req.json(&json!({"action": "receive"}));
            } else if template.ends_with("/payments") && method == "POST" {
                req = req.json(&json!({"provider": "vnpay"}));
            } else if template.ends_with("/refunds") {
                req = req.json(&json!({"amount": 1, "expected_refundable": 1, "reason": "r"}));
            } else if template.ends_with("/supplement") {
                req = req.json(&sent);
            }
            w.expect(method, template, req, 404).await;
        }
        // Query parameters: bounds and required ones as declared.
        for p in op["parameters"].as_array().into_iter().flatten() {
            if p["in"] != "query" {
                continue;
            }
            let name = p["name"].as_str().unwrap();
            let base = base_query(template);
            if p["required"] == true {
                let others: Vec<String> = base
                    .iter()
                    .filter(|(k, _)| *k != name)
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let url = format!("{path}?{}", others.join("&"));
                let req = w.request(method, &url, token.as_deref());
                w.expect(method, template, req, 400).await;
            }
            let schema = &p["schema"];
            if let (Some(min), Some(max)) = (schema["minimum"].as_i64(), schema["maximum"].as_i64())
            {
                for (value, ok) in [
                    (min - 1, false),
                    (min, true),
                    (max, true),
                    (max + 1, false),
                    (2_147_483_648, false),
                ] {
                    let mut q: Vec<String> = base.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    q.push(format!("{name}={value}"));
                    let req =
                        w.request(method, &format!("{path}?{}", q.join("&")), token.as_deref());
                    let answer = w
                        .expect(method, template, req, if ok { 200 } else { 400 })
                        .await;
                    let detail = answer.body["detail"].as_str().unwrap_or_default();
                    if !ok {
                        assert!(detail.contains(name), "{detail}");
                    }
                    // Within the type, the answer says the bounds (review finding).
                    if !ok && value <= max + 1 {
                        let bounds = format!("between {min} and {max}");
                        assert!(detail.contains(&bounds), "{detail}");
                    }
                }
            } else {
                assert!(
                    !schema["type"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("integer")
                        && schema["type"] != json!(["integer", "null"]),
                    "{method} {template}: integer parameter {name} without declared bounds"
                );
            }
        }
    }

    // Every declared answer was seen or is tested elsewhere, and nothing listed as tested
    // elsewhere is undeclared.
    let elsewhere: BTreeSet<(Op, u16)> = ELSEWHERE
        .iter()
        .map(|(m, p, s, _)| (((*m).to_owned(), (*p).to_owned()), *s))
        .collect();
    for entry in &elsewhere {
        assert!(
            w.declared
                .get(&entry.0)
                .is_some_and(|d| d.contains(&entry.1)),
            "ELSEWHERE lists {entry:?}, which the document does not declare"
        );
    }
    let mut missing = Vec::new();
    for (op, statuses) in &w.declared {
        for status in statuses {
            let key = (op.clone(), *status);
            if *status != 500
                && *status != 503
                && !w.seen.contains(&key)
                && !elsewhere.contains(&key)
            {
                missing.push(format!("{} {} {status}", op.0, op.1));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "declared but never provoked: {missing:#?}"
    );
}

/// The token an operation is called with in the common-mistake cases.
fn token_for(
    method: &str,
    template: &str,
    citizen: &str,
    officer: &str,
    admin: &str,
    account: &str,
) -> Option<String> {
    let t = match (method, template) {
        (_, "/v1/dossiers/{id}/actions") => officer,
        (_, "/v1/payments/{id}/refunds") => officer,
        (_, "/v1/payments/{id}/cancel") => citizen,
        (_, "/v1/payments/reconciliation/{day}") => admin,
        (_, "/v1/counter/dossiers") => officer,
        (_, p) if p.starts_with("/v1/reports") => admin,
        (_, p) if p.starts_with("/v1/dossiers") => citizen,
        (_, "/v1/admin/audit/search") => admin,
        (_, p) if p.starts_with("/v1/uploads") || p == "/v1/me/documents" => citizen,
        (_, p) if p.starts_with("/v1/me") || p.starts_with("/v1/identity/businesses") => account,
        _ => return None,
    };
    Some(t.to_owned())
}

fn concrete(template: &str, id: &str) -> String {
    template
        .replace("{id}", id)
        .replace("{code}", "1.001193")
        .replace("{grant_id}", &uuid::Uuid::now_v7().to_string())
        .replace("{provider}", "vnpay")
        .replace("{day}", "2001-01-01")
}

/// The query every request to the operation carries besides the parameter under test.
fn base_query(template: &str) -> Vec<(&'static str, String)> {
    match template {
        "/v1/lookup" => vec![
            ("code", "G22.99-261130-0001".into()),
            ("key", "AAAAA-AAAAA".into()),
        ],
        p if p.starts_with("/v1/identity/businesses/members") => {
            vec![("tax_code", "0100233488".into())]
        }
        _ => vec![],
    }
}
