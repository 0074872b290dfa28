//! The walk's counter-intake and reports part: every declared answer of
//! `POST /v1/counter/dossiers` and the KPI report routes, provoked through the runner.

use serde_json::json;

use super::Walk;

pub async fn walk(w: &mut Walk, citizen: &str, officer: &str, other_officer: &str, admin: &str) {
    let t = "/v1/counter/dossiers";
    let paper = json!({
        "procedure_code": "2.000505",
        "applicant": {"id_number": "037153000257", "phone": "0912345678"},
        "form": motcua_tests::criminal_record()["form"],
        "documents": [{"code": "to-khai", "source": "paper", "reference": ""}],
    });
    let req = w.request("POST", t, Some(officer)).json(&paper);
    w.expect("POST", t, req, 201).await;
    let req = w.request("POST", t, Some(other_officer)).json(&paper);
    w.expect("POST", t, req, 403).await;
    let req = w.request("POST", t, Some(citizen)).json(&paper);
    w.expect("POST", t, req, 403).await;
    let mut bad = paper.clone();
    bad["documents"][0]["source"] = json!("store");
    let req = w.request("POST", t, Some(officer)).json(&bad);
    w.expect("POST", t, req, 422).await;

    for t in ["/v1/reports/kpi", "/v1/reports/kpi.csv"] {
        let req = w.request("GET", &format!("{t}?from=2026-01&to=2026-12"), Some(admin));
        let got = w.expect("GET", t, req, 200).await;
        if t.ends_with(".csv") {
            let ct = got.headers["content-type"].to_str().unwrap();
            assert!(ct.starts_with("text/csv"), "{ct}");
        }
        let req = w.request("GET", &format!("{t}?from=2026-13"), Some(admin));
        w.expect("GET", t, req, 400).await;
        let req = w.request("GET", t, Some(citizen));
        w.expect("GET", t, req, 403).await;
    }
    let t = "/v1/reports/kpi/trend.svg";
    let req = w.request("GET", &format!("{t}?indicator=online_filing"), Some(admin));
    let got = w.expect("GET", t, req, 200).await;
    let ct = got.headers["content-type"].to_str().unwrap();
    assert!(ct.starts_with("image/svg+xml"), "{ct}");
    let req = w.request("GET", &format!("{t}?indicator=speed"), Some(admin));
    w.expect("GET", t, req, 400).await;
    let req = w.request("GET", &format!("{t}?indicator=on_time"), Some(citizen));
    w.expect("GET", t, req, 403).await;
}
