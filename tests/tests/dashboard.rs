//! The KPI dashboard in a real browser: a year is seeded (`motcua-local seed`), the runner
//! serves it, headless Chromium opens `/dashboard/` with a leader's token, and the numbers
//! on screen are the report API's; a screenshot is kept for a person to look at.

use std::process::Command;

use motcua_tests::Runner;
use motcua_tests::webdriver::Driver;
use serde_json::Value;

#[tokio::test]
async fn the_dashboard_shows_what_the_report_api_says() {
    let dir = motcua_tests::fresh_data_dir("dashboard");
    let status = Command::new(motcua_tests::runner_binary().unwrap())
        .args(["seed", "--dossiers", "3000", "--data-dir"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success(), "seeding");
    let runner = Runner::start_with(&dir, &[]).unwrap();
    let leader = runner.token("leader", "leader-dashboard", None);
    let year = jiff::Zoned::now().year();
    let api: Value = reqwest::Client::new()
        .get(runner.url(&format!("/v1/reports/kpi?from={year}-01&to={year}-12")))
        .bearer_auth(&leader)
        .header("accept-language", "vi")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(api["indicators"][1]["indicator"], "online_filing");
    assert!(
        api["indicators"][1]["denominator"].as_i64().unwrap() > 0,
        "{api}"
    );

    let driver = Driver::start().await;
    driver.size(1280, 2400).await;
    driver
        .go(&runner.url(&format!(
            "/dashboard/?from={year}-01&to={year}-12#token={leader}"
        )))
        .await;
    let ready = driver.wait_for("return document.body.dataset.ready").await;
    assert_eq!(ready, "1", "the page loaded the report");
    // The token left the address bar.
    assert!(!driver.url().await.contains("token="));
    // Vietnamese by default.
    assert_eq!(
        driver.text("h1").await,
        "Chỉ số phục vụ người dân, doanh nghiệp"
    );
    // Every indicator's numbers are the API's.
    for i in api["indicators"].as_array().unwrap() {
        let name = i["indicator"].as_str().unwrap();
        let card = format!(r#"article[data-indicator="{name}"]"#);
        assert_eq!(
            driver.text(&format!("{card} h3")).await,
            i["name"].as_str().unwrap()
        );
        for f in ["numerator", "denominator"] {
            assert_eq!(
                driver.text(&format!(r#"{card} [data-field="{f}"]"#)).await,
                i[f].to_string(),
                "{name} {f}"
            );
        }
        let shown = driver
            .text(&format!(r#"{card} [data-field="value"]"#))
            .await
            .replace('\u{a0}', " ");
        match i["value"].as_f64() {
            Some(v) => {
                let pct = format!("{:.1}", v * 100.0).replace('.', ",");
                assert!(shown.contains(&pct), "{name}: {shown} vs {pct}");
                let raw = driver
                    .attribute(&format!(r#"{card} [data-field="value"]"#), "data-value")
                    .await
                    .unwrap();
                assert!((raw.parse::<f64>().unwrap() - v).abs() < 1e-4, "{name}");
            }
            None => assert_eq!(shown, "—"),
        }
        let met = driver.text(&format!(r#"{card} [data-field="met"]"#)).await;
        let want = match i["met"].as_bool() {
            Some(true) => "Đạt",
            Some(false) => "Chưa đạt",
            None => "Chưa có số liệu",
        };
        assert_eq!(met, want, "{name}");
    }
    // The month table: each month's online filing share.
    for m in api["months"].as_array().unwrap() {
        let month = m["month"].as_str().unwrap();
        let v = &m["indicators"][1];
        let cell =
            format!(r#"#by-month tr[data-row="{month}"] td[data-indicator="online_filing"]"#);
        let raw = driver
            .attribute(&cell, "data-value")
            .await
            .unwrap_or_default();
        match v["value"].as_f64() {
            Some(x) => assert!((raw.parse::<f64>().unwrap() - x).abs() < 1e-4, "{month}"),
            None => assert_eq!(raw, ""),
        }
    }
    // The trend charts: drawn by the API, one point per month with a value.
    let points = driver
        .wait_for(
            r#"return document.querySelectorAll('#trends svg[data-indicator="online_filing"] circle').length"#,
        )
        .await;
    let with_value = api["months"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["indicators"][1]["value"].is_number())
        .count();
    assert_eq!(points.as_u64().unwrap() as usize, with_value);
    // Review finding: what an SVG may bring into the page is filtered by an allow-list
    // (only a script/foreignObject check before: handlers and links got through).
    let cleaned = driver
        .wait_for(
            r#"return motcuaDashboardClean('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><image href="x" onerror="alert(2)"/><h:iframe xmlns:h="http://www.w3.org/1999/xhtml" srcdoc="x"/><circle r="1" onclick="alert(3)"/></svg>')"#,
        )
        .await;
    let cleaned = cleaned.as_str().unwrap();
    for bad in ["onload", "image", "onerror", "iframe", "srcdoc", "onclick"] {
        assert!(!cleaned.contains(bad), "{bad} in {cleaned}");
    }
    assert!(cleaned.contains("<circle"), "{cleaned}");
    // A picture of it.
    let png = driver.screenshot().await;
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{}",
        png.len()
    );
    let out = motcua_tests::target_dir().join("dashboard.png");
    std::fs::write(&out, &png).unwrap();
    eprintln!("screenshot: {}", out.display());
}
