//! End-to-end flows over HTTP through the real local runner (embedded backend).

use jiff::Timestamp;
use motcua_domain::WorkingCalendar;
use motcua_domain::calendar::local_date;
use motcua_tests::{Backend, Runner, criminal_record};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

const AGENCY: &str = "000.00.04.H42"; // Sở Tư pháp: criminal-record certificate
const OTHER_AGENCY: &str = "000.01.41.H42";

struct Api {
    runner: Runner,
    http: Client,
    citizen: String,
    other_citizen: String,
    officer: String,
    other_officer: String,
}

impl Api {
    fn start(label: &str, backend: Backend) -> Api {
        let runner = Runner::start_on(label, backend).expect("runner starts");
        Api::with(runner)
    }

    fn with(runner: Runner) -> Api {
        Api {
            citizen: runner.token("citizen", "citizen-lan", None),
            other_citizen: runner.token("citizen", "citizen-minh", None),
            officer: runner.token("officer", "officer-ha", Some(AGENCY)),
            other_officer: runner.token("officer", "officer-tuan", Some(OTHER_AGENCY)),
            http: Client::new(),
            runner,
        }
    }

    async fn get(&self, token: &str, path: &str) -> Response {
        self.http
            .get(self.runner.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> Response {
        self.http
            .post(self.runner.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    async fn submit(&self, token: &str) -> Value {
        let body = self.runner.criminal_record_for(&self.http, token).await;
        let r = self.post(token, "/v1/dossiers", body).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json().await.unwrap()
    }

    async fn act(&self, id: &str, body: Value) -> Response {
        self.post(&self.officer, &format!("/v1/dossiers/{id}/actions"), body)
            .await
    }

    async fn act_ok(&self, id: &str, body: Value) -> Value {
        let r = self.act(id, body.clone()).await;
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body} → {v}");
        v
    }

    async fn detail(&self, token: &str, id: &str) -> Value {
        let r = self.get(token, &format!("/v1/dossiers/{id}")).await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }
}

async fn problem(r: Response, status: StatusCode) -> Value {
    assert_eq!(r.status(), status);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], status.as_u16());
    assert!(
        v["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:motcua:problem:")
    );
    assert!(!v["title"].as_str().unwrap().is_empty());
    v
}

fn expected_due(received_at: &str, days: u32) -> String {
    let at: Timestamp = received_at.parse().unwrap();
    WorkingCalendar::vietnam().due_date(at, days).to_string()
}

async fn happy_path_to_returned_result(backend: Backend) {
    let api = Api::start("happy", backend);
    let yymmdd = || {
        let d = local_date(Timestamp::now());
        format!("{:02}{:02}{:02}", d.year() % 100, d.month(), d.day())
    };
    let before = yymmdd();
    let created = api.submit(&api.citizen).await;
    let after = yymmdd();
    let id = created["id"].as_str().unwrap();
    let code = created["code"].as_str().unwrap();
    let key = created["lookup_key"].as_str().unwrap().to_owned();
    assert_eq!(key.len(), 11, "XXXXX-XXXXX on the receipt");
    assert_eq!(created["status"]["code"], 1);
    assert_eq!(created["fee"], 200_000);
    // <agency>-<YYMMDD in Vietnam>-<NNNN>, the first of the day for this fresh agency.
    assert!(
        code == format!("{AGENCY}-{before}-0001") || code == format!("{AGENCY}-{after}-0001"),
        "{code}"
    );

    // The officer finds it in the intake queue.
    let q: Value = api
        .get(&api.officer, "/v1/dossiers?status=1")
        .await
        .json()
        .await
        .unwrap();
    assert!(q["items"].as_array().unwrap().iter().any(|d| d["id"] == id));

    let received = api.act_ok(id, json!({"action": "receive"})).await;
    assert_eq!(received["status"]["code"], 2);
    let due = expected_due(received["received_at"].as_str().unwrap(), 10);
    assert_eq!(received["due_date"], due.as_str());
    assert_eq!(received["overdue"], false);

    api.act_ok(id, json!({"action": "process"})).await;
    let pay = api.act_ok(id, json!({"action": "request_payment"})).await;
    assert_eq!(pay["status"]["code"], 6);
    assert_eq!(pay["amount_due"], 200_000);
    api.act_ok(
        id,
        json!({"action": "confirm_payment", "reference": "VNP-1"}),
    )
    .await;
    let done = api
        .act_ok(
            id,
            json!({"action": "complete", "result": {"decision": "approved", "document": "LLTP-2026-1"}}),
        )
        .await;
    assert_eq!(done["status"]["code"], 9);
    api.act_ok(id, json!({"action": "return_result"})).await;

    let d = api.detail(&api.citizen, id).await;
    assert_eq!(d["status"]["code"], 10);
    assert_eq!(d["status"]["name"], "Đã trả kết quả");
    let steps: Vec<_> = d["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        steps,
        [
            "submit",
            "receive",
            "process",
            "request_payment",
            "confirm_payment",
            "complete",
            "return_result"
        ]
    );
    assert_eq!(d["version"], 7);

    // Public lookup by the receipt's code and key shows the status and nothing personal.
    let typed = key.to_lowercase().replace('-', " ");
    let r = api
        .http
        .get(api.runner.url("/v1/lookup"))
        .query(&[("code", code), ("key", typed.as_str())])
        .header("accept-language", "en")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    let l: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(l["status"]["code"], 10);
    assert_eq!(l["status"]["name"], "Result returned");
    for secret in [
        "037153000257",
        "Nguyễn",
        "0912345678",
        "912345678",
        "citizen-lan",
    ] {
        assert!(!text.contains(secret), "lookup leaked {secret}: {text}");
    }
    let wrong = api
        .http
        .get(api.runner.url("/v1/lookup"))
        .query(&[("code", code), ("key", "00000-00000")])
        .send()
        .await
        .unwrap();
    problem(wrong, StatusCode::NOT_FOUND).await;
    // The phone no longer opens anything.
    let by_phone = api
        .http
        .get(api.runner.url("/v1/lookup"))
        .query(&[("code", code), ("phone", "0912345678")])
        .send()
        .await
        .unwrap();
    problem(by_phone, StatusCode::BAD_REQUEST).await;
}

async fn supplement_loop_restarts_the_clock(backend: Backend) {
    let api = Api::start("supplement", backend);
    let id = api.submit(&api.citizen).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.act_ok(&id, json!({"action": "receive"})).await;
    let blank = api
        .act(&id, json!({"action": "request_supplement", "items": []}))
        .await;
    problem(blank, StatusCode::UNPROCESSABLE_ENTITY).await;
    let req = api
        .act_ok(
            &id,
            json!({"action": "request_supplement", "items": ["Bản sao CCCD", "Văn bản ủy quyền"]}),
        )
        .await;
    assert_eq!(req["status"]["code"], 5);
    let seen = api.detail(&api.citizen, &id).await;
    assert_eq!(
        seen["missing_items"],
        json!(["Bản sao CCCD", "Văn bản ủy quyền"])
    );

    // A document the procedure does not know is refused and changes nothing.
    let bad = api
        .post(
            &api.citizen,
            &format!("/v1/dossiers/{id}/supplement"),
            json!({"documents": [{"code": "nope", "source": "upload", "reference": "u"}]}),
        )
        .await;
    problem(bad, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(api.detail(&api.citizen, &id).await["version"], 3);

    let file = api
        .runner
        .verified_pdf(&api.http, &api.citizen, "2.000505", "giay-uy-quyen")
        .await;
    let sent = api
        .post(
            &api.citizen,
            &format!("/v1/dossiers/{id}/supplement"),
            json!({"documents": [{"code": "giay-uy-quyen", "source": "upload", "reference": file}], "note": "Đã bổ sung"}),
        )
        .await;
    assert_eq!(sent.status(), StatusCode::OK);
    let d: Value = sent.json().await.unwrap();
    assert_eq!(d["status"]["code"], 2);
    assert_eq!(d["missing_items"], json!([]));
    let restarted = d["history"].as_array().unwrap().last().unwrap()["at"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(d["due_date"], expected_due(&restarted, 10).as_str());
    // Only once.
    let again = api
        .act(&id, json!({"action": "request_supplement", "items": ["x"]}))
        .await;
    let p = problem(again, StatusCode::CONFLICT).await;
    assert!(p["detail"].as_str().unwrap().contains("một lần"));
}

async fn refusal_and_withdrawal(backend: Backend) {
    let api = Api::start("refusal", backend);
    let a = api.submit(&api.citizen).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let no_reason = api
        .act(&a, json!({"action": "refuse", "reason": "  "}))
        .await;
    problem(no_reason, StatusCode::UNPROCESSABLE_ENTITY).await;
    let refused = api
        .act_ok(
            &a,
            json!({"action": "refuse", "reason": "Không thuộc thẩm quyền"}),
        )
        .await;
    assert_eq!(refused["status"]["code"], 3);
    let late = api.act(&a, json!({"action": "receive"})).await;
    problem(late, StatusCode::CONFLICT).await;

    let b = api.submit(&api.citizen).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.act_ok(&b, json!({"action": "receive"})).await;
    // Someone else cannot withdraw it.
    let stranger = api
        .post(
            &api.other_citizen,
            &format!("/v1/dossiers/{b}/withdraw"),
            json!({}),
        )
        .await;
    problem(stranger, StatusCode::FORBIDDEN).await;
    let w = api
        .http
        .post(api.runner.url(&format!("/v1/dossiers/{b}/withdraw")))
        .bearer_auth(&api.citizen)
        .send()
        .await
        .unwrap();
    assert_eq!(w.status(), StatusCode::OK);
    let w: Value = w.json().await.unwrap();
    assert_eq!(w["status"]["code"], 7);
    let after = api.act(&b, json!({"action": "process"})).await;
    problem(after, StatusCode::CONFLICT).await;
}

async fn extension_once_and_overdue_after_restart(backend: Backend) {
    let api = Api::start("deadline", backend);
    let a = api.submit(&api.citizen).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = api.act_ok(&a, json!({"action": "receive"})).await;
    let due: jiff::civil::Date = r["due_date"].as_str().unwrap().parse().unwrap();
    let cal = WorkingCalendar::vietnam();
    let new_due = cal.add_working_days(due, 5);
    let saturday = {
        let mut d = new_due;
        while d.weekday() != jiff::civil::Weekday::Saturday {
            d = d.tomorrow().unwrap();
        }
        d
    };
    let bad = api
        .act(
            &a,
            json!({"action": "extend", "new_due_date": saturday.to_string(), "reason": "Cần xác minh"}),
        )
        .await;
    problem(bad, StatusCode::UNPROCESSABLE_ENTITY).await;
    let ext = api
        .act_ok(
            &a,
            json!({"action": "extend", "new_due_date": new_due.to_string(), "reason": "Cần xác minh thêm"}),
        )
        .await;
    assert_eq!(ext["due_date"], new_due.to_string().as_str());
    assert_eq!(ext["extended"], true);
    let twice = api
        .act(
            &a,
            json!({"action": "extend", "new_due_date": cal.add_working_days(new_due, 1).to_string(), "reason": "x"}),
        )
        .await;
    problem(twice, StatusCode::CONFLICT).await;

    // A second dossier received without extension.
    let b = api.submit(&api.citizen).await;
    let b_id = b["id"].as_str().unwrap().to_owned();
    let b_code = b["code"].as_str().unwrap().to_owned();
    let b_key = b["lookup_key"].as_str().unwrap().to_owned();
    api.act_ok(&b_id, json!({"action": "receive"})).await;

    // Restart on the same data, 40 days later: data survived, b is overdue, computed.
    let Api {
        runner,
        citizen,
        officer,
        ..
    } = api;
    let later = runner
        .restart(&[("MOTCUA_CLOCK_OFFSET_SECS", "3456000")])
        .unwrap();
    let http = Client::new();
    let d: Value = http
        .get(later.url(&format!("/v1/dossiers/{b_id}")))
        .bearer_auth(&citizen)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["status"]["code"], 2);
    assert_eq!(d["overdue"], true);
    let l: Value = http
        .get(later.url("/v1/lookup"))
        .query(&[("code", b_code.as_str()), ("key", b_key.as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(l["overdue"], true);
    // Extending now is too late.
    let late = http
        .post(later.url(&format!("/v1/dossiers/{b_id}/actions")))
        .bearer_auth(&officer)
        .json(&json!({"action": "extend", "new_due_date": "2099-01-05", "reason": "x"}))
        .send()
        .await
        .unwrap();
    problem(late, StatusCode::CONFLICT).await;
}

async fn bounds_keep_every_field_in_check(backend: Backend) {
    let api = Api::start("bounds", backend);
    let d = api.submit(&api.citizen).await;
    let id = d["id"].as_str().unwrap().to_owned();
    // Free text past its cap: 422 naming the cap, and nothing changes.
    let long = api
        .act(&id, json!({"action": "refuse", "reason": "x".repeat(2001)}))
        .await;
    let p = problem(long, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(p["detail"].as_str().unwrap().contains("2000"), "{p}");
    assert!(
        p.to_string().len() < 2000,
        "the answer does not echo the text"
    );
    let many = api
        .act(
            &id,
            json!({"action": "request_supplement", "items": vec!["Bản sao"; 31]}),
        )
        .await;
    problem(many, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(api.detail(&api.citizen, &id).await["version"], 1);

    let r = api.act_ok(&id, json!({"action": "receive"})).await;
    // An extension to the end of time: the latest allowed date is the processing time
    // again after the current due date.
    let due: jiff::civil::Date = r["due_date"].as_str().unwrap().parse().unwrap();
    // 2.000505 takes 10 working days.
    let latest = WorkingCalendar::vietnam().add_working_days(due, 10);
    let forever = api
        .act(
            &id,
            json!({"action": "extend", "new_due_date": "9999-12-31", "reason": "Cần xác minh"}),
        )
        .await;
    let p = problem(forever, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        p["detail"].as_str().unwrap().contains(&latest.to_string()),
        "{p}"
    );
    // A payment above the procedure's fee.
    let fee = d["fee"].as_u64().unwrap();
    assert!(fee > 0);
    let over = api
        .act(&id, json!({"action": "request_payment", "amount": fee + 1}))
        .await;
    problem(over, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(api.detail(&api.citizen, &id).await["version"], 2);

    // A document reference past its cap, an endless document code.
    let mut sub = criminal_record();
    sub["documents"][0]["reference"] = json!("r".repeat(257));
    let r = api.post(&api.citizen, "/v1/dossiers", sub).await;
    problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    let mut sub = criminal_record();
    sub["documents"][0]["code"] = json!("c".repeat(60_000));
    let r = api.post(&api.citizen, "/v1/dossiers", sub).await;
    let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        p.to_string().len() < 4000,
        "not echoed whole: {}",
        p.to_string().len()
    );

    // A procedure code longer than any key: 404 on both backends, not a store error.
    let r = api
        .http
        .get(
            api.runner
                .url(&format!("/v1/procedures/{}", "1".repeat(2000))),
        )
        .send()
        .await
        .unwrap();
    let p = problem(r, StatusCode::NOT_FOUND).await;
    assert!(p.to_string().len() < 1000);
}

async fn access_is_denied_where_it_should_be(backend: Backend) {
    let api = Api::start("access", backend);
    let id = api.submit(&api.citizen).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/dossiers/{id}");
    problem(
        api.get(&api.other_citizen, &path).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    problem(
        api.get(&api.other_officer, &path).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(api.get(&api.officer, &path).await.status(), StatusCode::OK);
    // Citizens cannot use officer actions; officers of another agency cannot either.
    let r = api
        .post(
            &api.citizen,
            &format!("{path}/actions"),
            json!({"action": "receive"}),
        )
        .await;
    problem(r, StatusCode::FORBIDDEN).await;
    let r = api
        .post(
            &api.other_officer,
            &format!("{path}/actions"),
            json!({"action": "receive"}),
        )
        .await;
    problem(r, StatusCode::FORBIDDEN).await;
    // Officers cannot submit.
    let r = api
        .post(&api.officer, "/v1/dossiers", criminal_record())
        .await;
    problem(r, StatusCode::FORBIDDEN).await;
    // No token, a tampered token, a token from another data dir.
    let r = api.http.get(api.runner.url(&path)).send().await.unwrap();
    let p = problem(r, StatusCode::UNAUTHORIZED).await;
    assert!(p["detail"].as_str().unwrap().contains("Authorization"));
    let mut tampered = api.citizen.clone();
    tampered.pop();
    tampered.push(if api.citizen.ends_with('A') { 'B' } else { 'A' });
    problem(api.get(&tampered, &path).await, StatusCode::UNAUTHORIZED).await;
    let stranger_runner = Runner::start("access-other").unwrap();
    let foreign = stranger_runner.token("citizen", "citizen-lan", None);
    problem(api.get(&foreign, &path).await, StatusCode::UNAUTHORIZED).await;
    // Each citizen lists only their own.
    let mine: Value = api
        .get(&api.citizen, "/v1/dossiers")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    let theirs: Value = api
        .get(&api.other_citizen, "/v1/dossiers")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["items"].as_array().unwrap().len(), 0);
    let other_queue: Value = api
        .get(&api.other_officer, "/v1/dossiers")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(other_queue["items"].as_array().unwrap().len(), 0);
}

async fn idempotent_retry_gives_the_same_answer(backend: Backend) {
    let api = Api::start("idem", backend);
    let send = |key: &str, body: Value| {
        api.http
            .post(api.runner.url("/v1/dossiers"))
            .bearer_auth(&api.citizen)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let sample = api
        .runner
        .criminal_record_for(&api.http, &api.citizen)
        .await;
    let first = send("retry-1", sample.clone()).await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let (location, etag) = (
        first.headers()["location"].clone(),
        first.headers()["etag"].clone(),
    );
    let first: Value = first.json().await.unwrap();
    let again = send("retry-1", sample.clone()).await.unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    // The replay is the first answer, headers included.
    assert_eq!(again.headers().get("location"), Some(&location));
    assert_eq!(again.headers().get("etag"), Some(&etag));
    let again: Value = again.json().await.unwrap();
    assert_eq!(again, first);
    let mut other = sample.clone();
    other["form"]["copies"] = json!(2);
    let mismatch = send("retry-1", other).await.unwrap();
    let p = problem(mismatch, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(p["type"], "urn:motcua:problem:idempotency-key-reused");
    // The same key from another citizen is a different request.
    let theirs = api
        .http
        .post(api.runner.url("/v1/dossiers"))
        .bearer_auth(&api.other_citizen)
        .header("Idempotency-Key", "retry-1")
        .json(
            &api.runner
                .criminal_record_for(&api.http, &api.other_citizen)
                .await,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), StatusCode::CREATED);
    let mine: Value = api
        .get(&api.citizen, "/v1/dossiers")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);

    // Officer actions too: a retried "receive" does not fail as a second receive.
    let id = first["id"].as_str().unwrap();
    let act = || {
        api.http
            .post(api.runner.url(&format!("/v1/dossiers/{id}/actions")))
            .bearer_auth(&api.officer)
            .header("Idempotency-Key", "recv-1")
            .json(&json!({"action": "receive"}))
            .send()
    };
    let a1 = act().await.unwrap();
    assert_eq!(a1.status(), StatusCode::OK);
    let a2 = act().await.unwrap();
    assert_eq!(a2.status(), StatusCode::OK);
    assert_eq!(a2.headers()["etag"], "\"2\"", "the replay keeps the ETag");
    // What is kept for replays holds no personal data: the form is in the dossier only.
    let replayed: Value = a2.json().await.unwrap();
    assert_eq!(replayed["status"]["code"], 2);
    for personal in ["037153000257", "Nguyễn Thị Lan", "912345678"] {
        assert!(
            !replayed.to_string().contains(personal),
            "{personal} in a kept answer: {replayed}"
        );
    }
    assert_eq!(api.detail(&api.citizen, id).await["version"], 2);

    // If-Match is part of the request: the same key and body under another version is
    // another request (refused as a reused key), not a replay of the first answer.
    let under = |version: &'static str| {
        api.http
            .post(api.runner.url(&format!("/v1/dossiers/{id}/actions")))
            .bearer_auth(&api.officer)
            .header("Idempotency-Key", "extend-1")
            .header("If-Match", version)
            .json(&json!({"action": "request_supplement", "items": ["Bản sao CCCD"]}))
            .send()
    };
    let ok = under("\"2\"").await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let stale = under("\"1\"").await.unwrap();
    let p = problem(stale, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(p["type"], "urn:motcua:problem:idempotency-key-reused");
}

async fn concurrent_conflicting_officer_actions_one_wins(backend: Backend) {
    let api = Api::start("race", backend);
    let id = api.submit(&api.citizen).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut tasks = Vec::new();
    for i in 0..12 {
        let http = api.http.clone();
        let url = api.runner.url(&format!("/v1/dossiers/{id}/actions"));
        let token = api.officer.clone();
        let body = if i % 2 == 0 {
            json!({"action": "receive"})
        } else {
            json!({"action": "refuse", "reason": format!("lý do {i}")})
        };
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .bearer_auth(token)
                .header("If-Match", "\"1\"")
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let s = t.await.unwrap();
        match s {
            StatusCode::OK => ok += 1,
            StatusCode::CONFLICT | StatusCode::PRECONDITION_FAILED => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 1);
    let d = api.detail(&api.officer, &id).await;
    assert_eq!(d["history"].as_array().unwrap().len(), 2);
    assert_eq!(d["version"], 2);
}

async fn bad_input_is_refused_clearly_and_changes_nothing(backend: Backend) {
    let api = Api::start("bad", backend);
    let post_raw = |body: &'static str, ct: &'static str, lang: &'static str| {
        api.http
            .post(api.runner.url("/v1/dossiers"))
            .bearer_auth(&api.citizen)
            .header("content-type", ct)
            .header("accept-language", lang)
            .body(body)
            .send()
    };
    let p = problem(
        post_raw("{\"procedure_code\": ", "application/json", "vi")
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(p["title"], "JSON không hợp lệ");
    let p = problem(
        post_raw(
            "{\"procedure_code\": ",
            "application/json",
            "en-GB,en;q=0.9",
        )
        .await
        .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(p["title"], "Malformed JSON");
    problem(
        post_raw(
            "procedure_code=1",
            "application/x-www-form-urlencoded",
            "vi",
        )
        .await
        .unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
    problem(
        post_raw("[1,2,3]", "application/json", "vi").await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let big = format!(
        "{{\"procedure_code\":\"2.000505\",\"form\":{{\"purpose\":\"{}\"}}}}",
        "x".repeat(400 * 1024)
    );
    let r = api
        .http
        .post(api.runner.url("/v1/dossiers"))
        .bearer_auth(&api.citizen)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::PAYLOAD_TOO_LARGE).await;
    let mut unknown = criminal_record();
    unknown["procedure_code"] = json!("9.999999");
    let p = problem(
        api.post(&api.citizen, "/v1/dossiers", unknown).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(p["type"], "urn:motcua:problem:unknown-procedure");
    let mut bad_field = api
        .runner
        .criminal_record_for(&api.http, &api.citizen)
        .await;
    bad_field["form"]["citizen_id"] = json!("12345");
    bad_field["form"]["copies"] = json!(99);
    bad_field["form"]["favourite_colour"] = json!("blue");
    let p = problem(
        api.post(&api.citizen, "/v1/dossiers", bad_field).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let fields: Vec<_> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fields.len(), 3, "{p}");
    for f in ["citizen_id", "copies", "favourite_colour"] {
        assert!(fields.contains(&f.to_owned()), "{f} in {fields:?}");
    }
    let mut extra = api
        .runner
        .criminal_record_for(&api.http, &api.citizen)
        .await;
    extra["surprise"] = json!(1);
    problem(
        api.post(&api.citizen, "/v1/dossiers", extra).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    // Nothing was created by any of these.
    let mine: Value = api
        .get(&api.citizen, "/v1/dossiers")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["items"].as_array().unwrap().len(), 0);

    // Stale If-Match, unknown action, bad cursor, bad status, bad id, unknown route.
    let id = api.submit(&api.citizen).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let stale = api
        .http
        .post(api.runner.url(&format!("/v1/dossiers/{id}/actions")))
        .bearer_auth(&api.officer)
        .header("If-Match", "\"7\"")
        .json(&json!({"action": "receive"}))
        .send()
        .await
        .unwrap();
    problem(stale, StatusCode::PRECONDITION_FAILED).await;
    let p = problem(
        api.act(&id, json!({"action": "teleport"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("receive"));
    let p = problem(
        api.act(
            &id,
            json!({"action": "extend", "new_due_date": "someday", "reason": "x"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    // Which field, what it should be, in the caller's language; no parser internals.
    assert_eq!(
        p["detail"], "Trường 'new_due_date' phải là một ngày dạng YYYY-MM-DD",
        "{p}"
    );
    let p = problem(
        api.act(&id, json!({"action": "request_payment", "amount": -5}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(
        p["detail"], "Trường 'amount' phải là một số nguyên không âm",
        "{p}"
    );
    let p = problem(
        api.post(
            &api.citizen,
            &format!("/v1/dossiers/{id}/withdraw"),
            json!([1]),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(p["detail"], "Nội dung phải là một đối tượng JSON", "{p}");
    for p in [&p] {
        for internal in ["expected", "u64", "struct", "four digit"] {
            assert!(!p["detail"].to_string().contains(internal), "{p}");
        }
    }
    assert_eq!(api.detail(&api.citizen, &id).await["version"], 1);
    let p = problem(
        api.get(&api.officer, "/v1/dossiers?limit=abc").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(
        p["detail"], "Trường 'limit' phải là một số nguyên không âm",
        "{p}"
    );
    // An endless path is not echoed back.
    let r = api
        .get(&api.citizen, &format!("/v1/{}", "a".repeat(60_000)))
        .await;
    let p = problem(r, StatusCode::NOT_FOUND).await;
    assert!(p.to_string().len() < 500);
    problem(
        api.get(&api.officer, "/v1/dossiers?cursor=garbage").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    problem(
        api.get(&api.officer, "/v1/dossiers?status=42").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    problem(
        api.get(&api.citizen, "/v1/dossiers/not-a-uuid").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        api.get(&api.citizen, "/v1/nowhere").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let r = api
        .http
        .get(api.runner.url("/v1/lookup"))
        .query(&[
            ("code", "000.00.04.H42-261301-0001"),
            ("key", "00000-00000"),
        ])
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::BAD_REQUEST).await;
}

async fn listings_page_with_cursors(backend: Backend) {
    let api = Api::start("pages", backend);
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(
            api.submit(&api.citizen).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    for (token, reversed) in [(&api.citizen, true), (&api.officer, false)] {
        let mut seen = Vec::new();
        let mut path = "/v1/dossiers?limit=2".to_owned();
        loop {
            let page: Value = api.get(token, &path).await.json().await.unwrap();
            let items = page["items"].as_array().unwrap();
            assert!(items.len() <= 2);
            seen.extend(items.iter().map(|d| d["id"].as_str().unwrap().to_owned()));
            match page["next_cursor"].as_str() {
                Some(c) => path = format!("/v1/dossiers?limit=2&cursor={c}"),
                None => break,
            }
        }
        let mut want = ids.clone();
        if reversed {
            want.reverse();
        }
        assert_eq!(seen, want);
    }
}

async fn catalogue_and_openapi(backend: Backend) {
    let api = Api::start("catalogue", backend);
    let procs: Value = api
        .http
        .get(api.runner.url("/v1/procedures"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(procs.as_array().unwrap().len() >= 8);
    let one: Value = api
        .http
        .get(api.runner.url("/v1/procedures/1.001193"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["name"], "Đăng ký khai sinh");
    problem(
        api.http
            .get(api.runner.url("/v1/procedures/0.000000"))
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    let doc: Value = api
        .http
        .get(api.runner.url("/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    // What the review saw answered but undocumented: a keyed request still in progress,
    // and a dossier that does not exist.
    assert!(doc["paths"]["/v1/dossiers"]["post"]["responses"]["409"].is_object());
    for verb in ["withdraw", "supplement", "actions"] {
        let op = &doc["paths"][format!("/v1/dossiers/{{id}}/{verb}")]["post"];
        assert!(op["responses"]["404"].is_object(), "{verb}");
        assert!(op["responses"]["409"].is_object(), "{verb}");
    }
    for (method, path) in [
        ("get", "/v1/procedures"),
        ("get", "/v1/procedures/{code}"),
        ("post", "/v1/dossiers"),
        ("get", "/v1/dossiers"),
        ("get", "/v1/dossiers/{id}"),
        ("post", "/v1/dossiers/{id}/withdraw"),
        ("post", "/v1/dossiers/{id}/supplement"),
        ("post", "/v1/dossiers/{id}/actions"),
        ("get", "/v1/lookup"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    assert!(doc["components"]["schemas"]["DossierView"].is_object());
    // The officers' route takes officers' commands only: not the applicant's withdraw.
    let officer = &doc["components"]["schemas"]["OfficerCommand"]["oneOf"];
    let actions: Vec<&str> = officer
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["properties"]["action"]["enum"][0].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"receive") && actions.contains(&"extend"),
        "{actions:?}"
    );
    assert!(!actions.contains(&"withdraw") && !actions.contains(&"supplement"));
}

// Every flow above, once per backend.
/// The lookup asks for nothing personal and has nothing to lock: wrong keys from one
/// client or from many never keep the receipt's holder out.
async fn public_lookup_needs_the_receipt_key_and_no_lock(backend: Backend) {
    let api = Api::start("lookup-key", backend);
    let created = api.submit(&api.citizen).await;
    let code = created["code"].as_str().unwrap().to_owned();
    let key = created["lookup_key"].as_str().unwrap().to_owned();
    let lookup = |from: String, key: String| {
        let (http, url, code) = (api.http.clone(), api.runner.url("/v1/lookup"), code.clone());
        async move {
            http.get(url)
                .query(&[("code", code.as_str()), ("key", key.as_str())])
                .header("x-forwarded-for", from)
                .header("accept-language", "en")
                .send()
                .await
                .unwrap()
        }
    };
    for i in 0..40 {
        let r = lookup(format!("192.0.2.{}", i % 3), format!("{i:05}-00000")).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    let r = lookup("192.0.2.1".into(), key.clone()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let l: Value = r.json().await.unwrap();
    assert_eq!(l["code"], code.as_str());
    // The key of one dossier opens no other.
    let other = api.submit(&api.other_citizen).await;
    let r = api
        .http
        .get(api.runner.url("/v1/lookup"))
        .query(&[
            ("code", other["code"].as_str().unwrap()),
            ("key", key.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // The owner sees the key on the dossier, to print the receipt again.
    let d = api
        .get(
            &api.citizen,
            &format!("/v1/dossiers/{}", created["id"].as_str().unwrap()),
        )
        .await;
    let d: Value = d.json().await.unwrap();
    assert_eq!(d["lookup_key"], key.as_str());
}

motcua_tests::on_both_backends!(
    public_lookup_needs_the_receipt_key_and_no_lock,
    happy_path_to_returned_result,
    supplement_loop_restarts_the_clock,
    refusal_and_withdrawal,
    extension_once_and_overdue_after_restart,
    access_is_denied_where_it_should_be,
    bounds_keep_every_field_in_check,
    idempotent_retry_gives_the_same_answer,
    concurrent_conflicting_officer_actions_one_wins,
    bad_input_is_refused_clearly_and_changes_nothing,
    listings_page_with_cursors,
    catalogue_and_openapi,
);
