//! What the erasure of an account (`DELETE /v1/me`) does to the person's dossiers and
//! tokens, through the runner on both backends: the account's tokens stop at once; the
//! dossiers stay, as the law requires, and the person finds them again at their next
//! sign-in.

use motcua_tests::{Backend, Runner, criminal_record};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

const AGENCY: &str = "000.00.04.H42"; // Sở Tư pháp: criminal-record certificate

fn lan() -> Value {
    json!({"citizen_id": "037153000257", "full_name": "Nguyễn Thị Lan",
        "birth_date": "1953-04-02", "sex": "female"})
}
const LAN_PHONE: &str = "+84912345678";
/// Lan signs in many times here: more codes than the default limit per number.
const RUNNER_ENV: &[(&str, &str)] = &[("MOTCUA_CODE_SENDS", "50")];

struct Env {
    runner: Runner,
    http: Client,
    ip: String,
}

impl Env {
    fn start(label: &str, backend: Backend) -> Env {
        Env {
            runner: Runner::start_on_with(label, backend, RUNNER_ENV).unwrap(),
            http: Client::new(),
            ip: format!("10.9.{}.{}", label.len(), std::process::id() % 250),
        }
    }

    async fn sign_in(&self) -> Value {
        self.runner
            .sign_in_with_code(&self.http, &lan(), LAN_PHONE, &self.ip)
            .await
    }

    async fn send(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, self.runner.url(path))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

fn access(signed_in: &Value) -> String {
    signed_in["access_token"].as_str().unwrap().to_owned()
}

async fn dossiers_survive_the_erasure_of_the_account(backend: Backend) {
    let env = Env::start("erase-own", backend);
    let first = env.sign_in().await;
    let token = access(&first);
    let owner = motcua_tests::jwt_part(&token, 1)["own"].clone();
    assert!(
        owner.as_str().is_some_and(|o| o.starts_with("citizen:")),
        "the token names the person's owner reference: {owner}"
    );
    let (status, created) = env
        .send(
            reqwest::Method::POST,
            &token,
            "/v1/dossiers",
            Some(env.runner.criminal_record_for(&env.http, &token).await),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    // The officer asks for a supplement: the dossier waits for its applicant.
    let officer = env.runner.token("officer", "officer-1", Some(AGENCY));
    for action in [
        json!({"action": "receive"}),
        json!({"action": "request_supplement", "items": ["Bản sao CCCD"]}),
    ] {
        let (status, body) = env
            .send(
                reqwest::Method::POST,
                &officer,
                &format!("/v1/dossiers/{id}/actions"),
                Some(action),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    // The person erases the account, then signs in again: a new account.
    let (status, export) = env
        .send(reqwest::Method::DELETE, &token, "/v1/me", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{export}");
    // The erased account's tokens stop at once, not at their expiry.
    for (method, path, body) in [
        (reqwest::Method::GET, "/v1/dossiers".to_string(), None),
        (reqwest::Method::GET, format!("/v1/dossiers/{id}"), None),
        (
            reqwest::Method::POST,
            "/v1/dossiers".to_string(),
            Some(criminal_record()),
        ),
        (reqwest::Method::GET, "/v1/me".to_string(), None),
    ] {
        let (status, p) = env.send(method, &token, &path, body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {p}");
        assert_eq!(p["type"], "urn:motcua:problem:token-revoked", "{path}");
    }
    let again = env.sign_in().await;
    assert_eq!(again["created"], true);
    assert_ne!(again["account_id"], first["account_id"]);
    let token = access(&again);
    assert_eq!(
        motcua_tests::jwt_part(&token, 1)["own"],
        owner,
        "stable per person"
    );

    // Their dossier is theirs still: listed, readable, and the supplement goes through.
    let (status, mine) = env
        .send(reqwest::Method::GET, &token, "/v1/dossiers", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<_> = mine["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, vec![id.clone()]);
    let (status, d) = env
        .send(
            reqwest::Method::GET,
            &token,
            &format!("/v1/dossiers/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{d}");
    let file = env
        .runner
        .verified_pdf(&env.http, &token, "2.000505", "giay-uy-quyen")
        .await;
    let (status, d) = env
        .send(
            reqwest::Method::POST,
            &token,
            &format!("/v1/dossiers/{id}/supplement"),
            Some(
                json!({"documents": [{"code": "giay-uy-quyen", "source": "upload",
                "reference": file}], "note": "Đã bổ sung"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(d["status"]["code"], 2);

    // Someone else's account does not see it.
    let other = env.runner.token("citizen", "someone-else", None);
    let (status, _) = env
        .send(
            reqwest::Method::GET,
            &other,
            &format!("/v1/dossiers/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

motcua_tests::on_both_backends!(dossiers_survive_the_erasure_of_the_account,);

/// Dossiers earlier versions filed under the account id (not yet under the person's owner
/// reference) are the person's still: listed, readable, and moved to the owner reference,
/// so an erasure of the account no longer takes them away. (Review finding: they had
/// become invisible to their owners.)
#[tokio::test]
async fn dossiers_filed_under_the_account_id_are_found_and_moved() {
    let env = Env::start("erase-legacy", Backend::Embedded);
    let first = env.sign_in().await;
    let account_id = first["account_id"].as_str().unwrap().to_owned();
    let dir = env.runner.data_dir.clone();
    let Env { runner, http, ip } = env;
    runner.stop();
    // A dossier as an earlier version filed it.
    let (d, h, e) = motcua_ports::contract::sample(&account_id, 1, jiff::Timestamp::now());
    {
        let store = motcua_embedded::EmbeddedStore::open(&dir).unwrap();
        motcua_ports::DossierStore::create(&store, &d, &h, &e)
            .await
            .unwrap();
    }
    let env = Env {
        runner: Runner::start_with(&dir, RUNNER_ENV).unwrap(),
        http,
        ip,
    };
    let token = access(&env.sign_in().await);
    let (status, _) = env
        .send(
            reqwest::Method::GET,
            &token,
            &format!("/v1/dossiers/{}", d.id),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "readable under the account id");
    // Moved to the owner reference at that first read (no listing needed): after an
    // erasure the person still has it (review finding: only a listing moved it).
    let (status, _) = env
        .send(reqwest::Method::DELETE, &token, "/v1/me", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let token = access(&env.sign_in().await);
    let (_, mine) = env
        .send(reqwest::Method::GET, &token, "/v1/dossiers", None)
        .await;
    assert_eq!(mine["items"][0]["id"], d.id.to_string(), "{mine}");
    // And one never read: moved at the first listing.
    let (d2, h2, e2) =
        motcua_ports::contract::sample(&access_subject(&token), 2, jiff::Timestamp::now());
    let dir = env.runner.data_dir.clone();
    let Env { runner, http, ip } = env;
    runner.stop();
    {
        let store = motcua_embedded::EmbeddedStore::open(&dir).unwrap();
        motcua_ports::DossierStore::create(&store, &d2, &h2, &e2)
            .await
            .unwrap();
    }
    let env = Env {
        runner: Runner::start_with(&dir, RUNNER_ENV).unwrap(),
        http,
        ip,
    };
    let token = access(&env.sign_in().await);
    let (_, mine) = env
        .send(reqwest::Method::GET, &token, "/v1/dossiers", None)
        .await;
    let ids: Vec<_> = mine["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(ids.contains(&d2.id.to_string()), "{mine}");
    let (status, _) = env
        .send(reqwest::Method::DELETE, &token, "/v1/me", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let token = access(&env.sign_in().await);
    let (_, mine) = env
        .send(reqwest::Method::GET, &token, "/v1/dossiers", None)
        .await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 2, "{mine}");
}

fn access_subject(token: &str) -> String {
    motcua_tests::jwt_part(token, 1)["sub"]
        .as_str()
        .unwrap()
        .to_owned()
}
