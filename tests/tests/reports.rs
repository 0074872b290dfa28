//! Counter intake and the KPI report through the real runner, on both backends: a paper
//! dossier registered at the desk is the applicant's when they sign in, and the report
//! counts it apart from the online one, in JSON and CSV, for whom may read it.

use std::time::{Duration, Instant};

use motcua_tests::{Backend, Runner, criminal_record};
use reqwest::Client;
use serde_json::{Value, json};

const AGENCY: &str = "000.00.04.H42";
const OTHER_AGENCY: &str = "000.01.41.H42";
const LAN_PHONE: &str = "+84912345678";

fn lan() -> Value {
    json!({"citizen_id": "037153000257", "full_name": "Nguyễn Thị Lan", "birth_date": "1953-04-02", "sex": "female"})
}

fn indicator<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["indicator"] == name)
        .unwrap()
}

async fn counter_and_report(label: &str, backend: Backend) {
    let runner = Runner::start_on_with(label, backend, &[("RUST_LOG", "info")]).unwrap();
    let http = Client::new();
    let ip = format!("10.9.{}.{}", label.len(), std::process::id() % 250);
    let tokens = runner
        .sign_in_with_code(&http, &lan(), LAN_PHONE, &ip)
        .await;
    let citizen = tokens["access_token"].as_str().unwrap().to_owned();
    let body = runner.criminal_record_for(&http, &citizen).await;
    let r = http
        .post(runner.url("/v1/dossiers"))
        .bearer_auth(&citizen)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // The same person hands in a paper dossier at the desk.
    let officer = runner.token("officer", "officer-desk", Some(AGENCY));
    let mut paper = json!({
        "procedure_code": "2.000505",
        "channel": "counter",
        "applicant": {"kind": "citizen", "id_number": "037153000257", "phone": "0912345678"},
        "form": criminal_record()["form"],
        "documents": [{"code": "to-khai", "source": "paper", "reference": ""}],
    });
    let register = |token: &str, body: &Value, key: &str| {
        http.post(runner.url("/v1/counter/dossiers"))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
    };
    let r = register(&officer, &paper, "desk-1").await.unwrap();
    assert_eq!(r.status(), 201);
    let first: Value = r.json().await.unwrap();
    // A retry with the key: the same dossier.
    let again: Value = register(&officer, &paper, "desk-1")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["id"], first["id"]);
    assert_eq!(first["status"]["code"], 2, "received at once: {first}");
    // Bad input changes nothing: another agency's officer, a number that is none, an
    // online channel, a citizen.
    let far = runner.token("officer", "officer-far", Some(OTHER_AGENCY));
    assert_eq!(register(&far, &paper, "far-1").await.unwrap().status(), 403);
    assert_eq!(
        register(&citizen, &paper, "cit-1").await.unwrap().status(),
        403
    );
    let mut bad = paper.clone();
    bad["applicant"]["id_number"] = json!("03715300025");
    let r = register(&officer, &bad, "bad-1").await.unwrap();
    assert_eq!(r.status(), 422);
    let problem: Value = r.json().await.unwrap();
    assert!(
        problem.to_string().contains("applicant.id_number"),
        "{problem}"
    );
    assert!(!problem.to_string().contains("03715300025"), "{problem}");
    // Review finding: a number typed wrong (another person's) is none of the form's ID
    // numbers: refused, not filed under a stranger.
    let mut typo = paper.clone();
    typo["applicant"]["id_number"] = json!("079205001234");
    let r = register(&officer, &typo, "typo-1").await.unwrap();
    assert_eq!(r.status(), 422);
    let problem: Value = r.json().await.unwrap();
    assert!(
        problem.to_string().contains("applicant.id_number"),
        "{problem}"
    );
    paper["channel"] = json!("online");
    assert_eq!(
        register(&officer, &paper, "bad-2").await.unwrap().status(),
        422
    );

    // Lan sees the paper dossier among hers.
    let mine: Value = http
        .get(runner.url("/v1/dossiers"))
        .bearer_auth(&citizen)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = mine["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&first["id"].as_str().unwrap()), "{mine}");
    assert_eq!(ids.len(), 2);

    // The report: one online, one at the counter; the paper one not digitised.
    let admin = runner.token("admin", "admin-kpi", None);
    let url = runner.url(&format!("/v1/reports/kpi?agency={AGENCY}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let report = loop {
        let r: Value = http
            .get(&url)
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if indicator(&r, "online_filing")["denominator"] == 2 || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let filing = indicator(&report, "online_filing");
    assert_eq!(
        (&filing["numerator"], &filing["denominator"]),
        (&json!(1), &json!(2)),
        "{report}"
    );
    assert_eq!(filing["value"], 0.5);
    assert_eq!(filing["score"], 6.0);
    let digitised = indicator(&report, "digitised_dossiers");
    assert_eq!(
        (&digitised["numerator"], &digitised["denominator"]),
        (&json!(1), &json!(2))
    );
    let on_time = indicator(&report, "on_time");
    assert_eq!(
        (&on_time["numerator"], &on_time["denominator"]),
        (&json!(1), &json!(1)),
        "only the paper one is received"
    );
    assert_eq!(report["agencies"].as_array().unwrap().len(), 1);

    // The CSV export: what the JSON says, in lines.
    let r = http
        .get(runner.url(&format!("/v1/reports/kpi.csv?agency={AGENCY}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = r.text().await.unwrap();
    let line = csv
        .lines()
        .find(|l| l.starts_with(&format!("{AGENCY},,")) && l.contains(",online_filing,"))
        .unwrap_or_else(|| panic!("{csv}"));
    assert!(line.contains(",1,2,0.5000,6.0000,"), "{line}");
    let json_answer = http.get(&url).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(
        json_answer.headers()["vary"],
        "Accept",
        "review finding: one URL, two bodies"
    );
    let accept_csv = http
        .get(&url)
        .bearer_auth(&admin)
        .header("Accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert!(
        accept_csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );

    // Who may read it.
    let leader = runner.token("leader", "leader-1", None);
    let own = format!("/v1/reports/kpi?agency={AGENCY}");
    let province = "/v1/reports/kpi".to_owned();
    for (token, path, want) in [
        (Some(&leader), &province, 200),
        (Some(&admin), &province, 200),
        (Some(&officer), &province, 200),
        (Some(&officer), &own, 200),
        (Some(&far), &own, 403),
        (Some(&citizen), &province, 403),
        (None, &province, 401),
    ] {
        let mut req = http.get(runner.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), want, "{path} as {token:?}");
    }
    // An officer's province report is their agency's.
    let r: Value = http
        .get(runner.url("/v1/reports/kpi"))
        .bearer_auth(&officer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["agency"], AGENCY);
    for bad in [
        "from=2026-13",
        "to=2026-1",
        "from=2020-01&to=2026-12",
        "agency=x",
    ] {
        let r = http
            .get(runner.url(&format!("/v1/reports/kpi?{bad}")))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
    // No ID number or phone in the log.
    let log = runner.log();
    assert!(!log.contains("037153000257") && !log.contains("912345678"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_counter_intake_and_the_kpi_report() {
    counter_and_report("kpi-embedded", Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_counter_intake_and_the_kpi_report() {
    counter_and_report("kpi-aws", Backend::Aws).await;
}
