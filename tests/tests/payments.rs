//! Paying a fee through the real runner and the providers' simulator it starts, on both
//! backends: the dossier shows the fee paid once, the applicant is told, nothing personal
//! is logged.

use std::time::{Duration, Instant};

use motcua_tests::{Backend, Runner};
use reqwest::Client;
use serde_json::{Value, json};

const LAN_PHONE: &str = "+84912345678";

fn lan() -> Value {
    json!({"citizen_id": "037153000257", "full_name": "Nguyễn Thị Lan", "birth_date": "1953-04-02", "sex": "female"})
}

async fn pay_a_fee(label: &str, backend: Backend) {
    let runner = Runner::start_on_with(
        label,
        backend,
        &[("MOTCUA_QUIET_HOURS", "00:00-00:00"), ("RUST_LOG", "info")],
    )
    .unwrap();
    let http = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let ip = format!("10.8.{}.{}", label.len(), std::process::id() % 250);
    let tokens = runner
        .sign_in_with_code(&http, &lan(), LAN_PHONE, &ip)
        .await;
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let body = runner.criminal_record_for(&http, &token).await;
    let d: Value = http
        .post(runner.url("/v1/dossiers"))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (id, code) = (d["id"].as_str().unwrap(), d["code"].as_str().unwrap());
    let seen: Value = http
        .get(runner.url(&format!("/v1/dossiers/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["fee_due"], 200_000, "{seen}");
    let p: Value = http
        .post(runner.url(&format!("/v1/dossiers/{id}/payments")))
        .bearer_auth(&token)
        .json(&json!({"provider": "vnpay", "locale": "vi"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The payer on VNPay's (simulated) page, then paying: twice the callback.
    let url = p["redirect_url"].as_str().unwrap();
    let page = http.get(url).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("200000"), "{page}");
    let sim = url.split("/vnpay/").next().unwrap();
    let txn = p["id"].as_str().unwrap().replace('-', "");
    let r = http
        .post(format!("{sim}/_sim/pay/vnpay/{txn}"))
        .body("as=duplicate")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let back = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        back.starts_with(&runner.url("/v1/payments/vnpay/return?")),
        "{back}"
    );
    let page = http.get(&back).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Thanh toán thành công"), "{page}");
    let d: Value = http
        .get(runner.url(&format!("/v1/dossiers/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["fee_due"], Value::Null, "{d}");
    let fees = d["fees_paid"].as_array().unwrap();
    assert_eq!(fees.len(), 1, "{d}");
    assert_eq!(fees[0]["channel"], "online");
    assert_eq!(fees[0]["receipt"], format!("BL-{code}-1"));
    let history = d["history"].as_array().unwrap();
    assert_eq!(
        history
            .iter()
            .filter(|h| h["action"] == "pay_online")
            .count(),
        1
    );
    // The applicant is told, once.
    let started = Instant::now();
    let told = loop {
        let kept: Vec<Value> = http
            .get(runner.url("/dev/messages"))
            .query(&[("channel", "sms")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let found: Vec<Value> = kept
            .into_iter()
            .filter(|m| {
                let t = m["text"].as_str().unwrap_or("");
                t.contains(code) && t.to_lowercase().contains("phi") && !t.contains("can nop")
            })
            .collect();
        if !found.is_empty() || started.elapsed() > Duration::from_secs(15) {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(told.len(), 1, "{told:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Nothing personal in the log: no phone, no ID number, no payer bank reference.
    let log = runner.log();
    for secret in [LAN_PHONE, "0912345678", "037153000257", "VNP14"] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
}

#[tokio::test]
async fn a_fee_is_paid_once_and_told_on_the_embedded_backend() {
    pay_a_fee("pay-embedded", Backend::Embedded).await;
}

#[tokio::test]
async fn a_fee_is_paid_once_and_told_on_localstack() {
    pay_a_fee("pay-aws", Backend::Aws).await;
}
