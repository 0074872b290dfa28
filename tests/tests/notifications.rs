//! Status messages through the real runner: a citizen signed in by a code, a dossier
//! submitted and received; what their phone and mailbox get, once each, in their language,
//! with their opt-outs; who may read the delivery records. On LocalStack the messages land
//! in SES's and SNS's own stores.

use std::time::{Duration, Instant};

use motcua_tests::{Backend, Runner};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

const LAN_PHONE: &str = "+84912345678";
const AGENCY: &str = "000.00.04.H42";

fn lan() -> Value {
    json!({"citizen_id": "037153000257", "full_name": "Nguyễn Thị Lan", "birth_date": "1953-04-02", "sex": "female"})
}

struct Env {
    runner: Runner,
    http: Client,
    token: String,
    officer: String,
}

async fn start(label: &str, backend: Backend, extra: &[(&str, &str)]) -> Env {
    let mut env = vec![("MOTCUA_QUIET_HOURS", "00:00-00:00"), ("RUST_LOG", "info")];
    env.extend_from_slice(extra);
    let runner = Runner::start_on_with(label, backend, &env).unwrap();
    let http = Client::new();
    let ip = format!("10.9.{}.{}", label.len(), std::process::id() % 250);
    let tokens = runner
        .sign_in_with_code(&http, &lan(), LAN_PHONE, &ip)
        .await;
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let officer = runner.token("officer", "officer-1", Some(AGENCY));
    Env {
        runner,
        http,
        token,
        officer,
    }
}

impl Env {
    async fn me(&self, patch: Value) {
        let r = self
            .http
            .patch(self.runner.url("/v1/me"))
            .bearer_auth(&self.token)
            .json(&patch)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    }

    /// Submits the sample dossier; its id and code.
    async fn submit(&self) -> (String, String) {
        let body = self
            .runner
            .criminal_record_for(&self.http, &self.token)
            .await;
        let r = self
            .http
            .post(self.runner.url("/v1/dossiers"))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let d: Value = r.json().await.unwrap();
        (
            d["id"].as_str().unwrap().to_owned(),
            d["code"].as_str().unwrap().to_owned(),
        )
    }

    async fn act(&self, id: &str, body: Value) {
        let r = self
            .http
            .post(self.runner.url(&format!("/v1/dossiers/{id}/actions")))
            .bearer_auth(&self.officer)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }

    async fn kept(&self, channel: &str) -> Vec<Value> {
        self.http
            .get(self.runner.url("/dev/messages"))
            .query(&[("channel", channel)])
            .send()
            .await
            .unwrap()
            .json::<Vec<Value>>()
            .await
            .unwrap()
    }

    /// The kept messages of `channel` mentioning `needle`, once at least `n` are there (10 s).
    async fn wait_kept(&self, channel: &str, needle: &str, n: usize) -> Vec<Value> {
        self.wait_kept_for(channel, needle, n, Duration::from_secs(10))
            .await
    }

    /// The same after at most `patience`: what came meanwhile.
    async fn wait_kept_for(
        &self,
        channel: &str,
        needle: &str,
        n: usize,
        patience: Duration,
    ) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let found: Vec<Value> = self
                .kept(channel)
                .await
                .into_iter()
                .filter(|m| {
                    m["text"].as_str().unwrap_or("").contains(needle)
                        || m["subject"].as_str().unwrap_or("").contains(needle)
                })
                .collect();
            if found.len() >= n || started.elapsed() > patience {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn records(&self, token: Option<&str>, id: &str) -> (StatusCode, Value) {
        let mut req = self
            .http
            .get(self.runner.url(&format!("/v1/dossiers/{id}/notifications")));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn a_received_dossier_is_told_once_by_sms_and_email_in_vietnamese() {
    let env = start("notify-main", Backend::Embedded, &[]).await;
    env.me(json!({"email": "lan@example.vn"})).await;
    let (id, code) = env.submit().await;
    // The courtesy message of the submission.
    let submitted = env.wait_kept("sms", "dang cho tiep nhan", 1).await;
    assert_eq!(submitted.len(), 1, "{submitted:?}");
    env.act(&id, json!({"action": "receive"})).await;
    let sms = env.wait_kept("sms", "da duoc tiep nhan", 1).await;
    assert_eq!(sms.len(), 1, "{sms:?}");
    assert_eq!(sms[0]["to"], LAN_PHONE);
    let text = sms[0]["text"].as_str().unwrap();
    assert!(
        text.starts_with(&format!(
            "DVC: Ho so {code} da duoc tiep nhan. Ngay hen tra: "
        )),
        "{text}"
    );
    assert_eq!(sms[0]["segments"], 1);
    assert_eq!(sms[0]["encoding"], "gsm7");
    let mail = env.wait_kept("email", "đã được tiếp nhận", 1).await;
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert_eq!(mail[0]["to"], "lan@example.vn");
    assert!(
        mail[0]["subject"]
            .as_str()
            .unwrap()
            .starts_with(&format!("[{code}] Hồ sơ {code} đã được tiếp nhận"))
    );
    assert!(
        mail[0]["text"]
            .as_str()
            .unwrap()
            .contains("Kính gửi ông/bà")
    );
    assert!(
        mail[0]["html"]
            .as_str()
            .unwrap()
            .contains(&format!("/ho-so/{code}"))
    );
    // Nothing more comes (a second relay pass, the dispatcher's next rounds).
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(env.wait_kept("sms", "da duoc tiep nhan", 2).await.len(), 1);
    assert_eq!(
        env.wait_kept("email", "đã được tiếp nhận", 2).await.len(),
        1
    );

    // The records: for the applicant and the agency's officers; the address masked.
    let (status, list) = env.records(Some(&env.token), &id).await;
    assert_eq!(status, StatusCode::OK);
    let list = list.as_array().unwrap();
    let received: Vec<&Value> = list.iter().filter(|d| d["topic"] == "received").collect();
    assert_eq!(received.len(), 2, "{list:?}");
    for d in &received {
        assert_eq!(d["status"], "sent");
        assert_eq!(d["attempts"], 1);
        assert_eq!(d["mandatory"], true);
    }
    let sms_record = received.iter().find(|d| d["channel"] == "sms").unwrap();
    assert_eq!(sms_record["to"], "+84*****5678");
    assert_eq!(sms_record["segments"], 1);
    let mail_record = received.iter().find(|d| d["channel"] == "email").unwrap();
    assert_eq!(mail_record["to"], "l***@example.vn");
    let (status, _) = env.records(Some(&env.officer), &id).await;
    assert_eq!(status, StatusCode::OK);
    // Everyone else: the answer for an unknown dossier.
    let stranger = env.runner.token("citizen", "someone-else", None);
    let other_agency = env
        .runner
        .token("officer", "officer-9", Some("000.00.05.H42"));
    let admin = env.runner.token("admin", "admin-1", None);
    for t in [&stranger, &other_agency, &admin] {
        let (status, body) = env.records(Some(t), &id).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    }
    let (unknown, body) = env
        .records(Some(&env.token), "0193d8a2-0000-7000-8000-000000000000")
        .await;
    assert_eq!(unknown, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = env.records(None, &id).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = env.records(Some("not-a-token"), &id).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = env.records(Some(&env.token), "not-a-uuid").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The inbox page shows them, escaped, with the SMS parts.
    let page = env
        .http
        .get(env.runner.url("/dev/inbox"))
        .send()
        .await
        .unwrap();
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    let page = page.text().await.unwrap();
    assert!(page.contains(&format!("Ho so {code} da duoc tiep nhan")));
    assert!(page.contains("1 phần SMS (GSM-7)"));

    // No contact data in the logs.
    let log = env.runner.log();
    for personal in ["912345678", "lan@example.vn", "037153000257"] {
        assert!(!log.contains(personal), "{personal} logged");
    }
}

#[tokio::test]
async fn opt_outs_hold_for_courtesy_messages_and_english_is_honoured() {
    let env = start("notify-prefs", Backend::Embedded, &[]).await;
    env.me(json!({"email": "lan@example.vn", "preferences": {"sms": false, "email": false, "zalo": false, "language": "en"}})).await;
    let (id, code) = env.submit().await;
    env.act(&id, json!({"action": "receive"})).await;
    // The receipt is mandatory: with every channel off it still goes, by SMS, in English.
    let sms = env
        .wait_kept("sms", &format!("Dossier {code} was received"), 1)
        .await;
    assert_eq!(sms.len(), 1, "{sms:?}");
    assert!(
        sms[0]["text"]
            .as_str()
            .unwrap()
            .starts_with("Public services: ")
    );
    // The submission's courtesy message went nowhere.
    let patience = Duration::from_millis(1500);
    assert!(
        env.wait_kept_for("sms", "awaits intake", 1, patience)
            .await
            .is_empty()
    );
    assert!(env.kept("email").await.is_empty());

    // Email and Zalo wanted, SMS not: the next messages go there, not by SMS.
    env.me(json!({"preferences": {"sms": false, "email": true, "zalo": true, "language": "vi"}}))
        .await;
    env.act(&id, json!({"action": "process"})).await;
    env.act(&id, json!({"action": "complete", "result": {"decision": "approved", "document": "LLTP-2026-1"}})).await;
    let mail = env.wait_kept("email", "đã có kết quả", 1).await;
    assert_eq!(mail.len(), 1);
    let zalo = env.wait_kept("zalo", code.as_str(), 1).await;
    assert_eq!(zalo.len(), 1, "{zalo:?}");
    assert_eq!(zalo[0]["template_id"], "100004");
    assert!(
        env.wait_kept_for("sms", "ket qua", 1, patience)
            .await
            .is_empty()
    );
}

/// What LocalStack's SNS recorded as SMS to `phone`.
async fn sns_sms_to(http: &Client, phone: &str) -> Vec<Value> {
    // LocalStack has answered an empty body now and then: asked again.
    for _ in 0..5 {
        let text = http
            .get(format!(
                "{}/_aws/sns/sms-messages",
                motcua_aws::localstack::endpoint()
            ))
            .query(&[("phoneNumber", phone)])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if let Ok(v) = serde_json::from_str::<Value>(&text) {
            return v["sms_messages"][phone]
                .as_array()
                .cloned()
                .unwrap_or_default();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("LocalStack's SNS store did not answer JSON");
}

/// What LocalStack's SES recorded as sent to `to`.
async fn ses_mail_to(http: &Client, to: &str) -> Vec<Value> {
    let v: Value = http
        .get(format!("{}/_aws/ses", motcua_aws::localstack::endpoint()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m["Destination"]["ToAddresses"][0] == to)
        .collect()
}

#[tokio::test]
async fn on_localstack_a_status_change_lands_in_ses_and_sns_exactly_once() {
    let env = start(
        "notify-aws",
        Backend::Aws,
        &[
            ("MOTCUA_SMS_PROVIDER", "sns"),
            (
                "MOTCUA_EMAIL_FROM",
                "Cổng DVC <no-reply@dichvucong.example.gov.vn>",
            ),
        ],
    )
    .await;
    let email = format!("lan+{}@example.vn", uuid::Uuid::now_v7().simple());
    env.me(json!({"email": email})).await;
    let (id, code) = env.submit().await;
    let with_code = |list: Vec<Value>, needle: &str| -> Vec<Value> {
        list.into_iter()
            .filter(|m| m["Message"].as_str().unwrap_or("").contains(needle))
            .collect()
    };
    let received = format!("Ho so {code} da duoc tiep nhan");
    let before = with_code(sns_sms_to(&env.http, LAN_PHONE).await, &received).len();
    env.act(&id, json!({"action": "receive"})).await;
    let started = Instant::now();
    let (mut sms, mut mail) = (Vec::new(), Vec::new());
    while started.elapsed() < Duration::from_secs(30) {
        sms = with_code(sns_sms_to(&env.http, LAN_PHONE).await, &received);
        mail = ses_mail_to(&env.http, &email)
            .await
            .into_iter()
            .filter(|m| {
                m["Subject"]
                    .as_str()
                    .unwrap_or("")
                    .contains("đã được tiếp nhận")
            })
            .collect();
        if sms.len() > before && !mail.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // A little longer: nothing comes twice.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sms_after = with_code(sns_sms_to(&env.http, LAN_PHONE).await, &received);
    assert_eq!(sms_after.len(), before + 1, "{sms:?}");
    let text = sms_after.last().unwrap()["Message"].as_str().unwrap();
    assert!(
        text.starts_with(&format!("DVC: {received}. Ngay hen tra: ")),
        "{text}"
    );
    assert!(
        sms_after.last().unwrap()["MessageAttributes"]
            .to_string()
            .contains("Transactional")
    );
    let mail_after: Vec<Value> = ses_mail_to(&env.http, &email)
        .await
        .into_iter()
        .filter(|m| {
            m["Subject"]
                .as_str()
                .unwrap_or("")
                .contains("đã được tiếp nhận")
        })
        .collect();
    assert_eq!(mail_after.len(), 1, "{mail:?}");
    assert_eq!(
        mail_after[0]["Subject"],
        format!(
            "[{code}] Hồ sơ {code} đã được tiếp nhận. Ngày hẹn trả: {}",
            {
                let t = text.rsplit(' ').next().unwrap().trim_end_matches('.');
                t.to_owned()
            }
        ) + "."
    );
    assert!(
        mail_after[0]["Body"]["html_part"]
            .as_str()
            .unwrap()
            .contains(&format!("/ho-so/{code}"))
    );
    // The records say sent, with SES's and SNS's message ids behind them.
    let (status, list) = env.records(Some(&env.token), &id).await;
    assert_eq!(status, StatusCode::OK);
    let received: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["topic"] == "received")
        .collect();
    assert_eq!(received.len(), 2);
    assert!(
        received.iter().all(|d| d["status"] == "sent"),
        "{received:?}"
    );
}

/// Review finding: an empty receipt secret was a valid HMAC key, so anyone could sign
/// receipts. A secret too short to be one now refuses every receipt.
#[tokio::test]
async fn an_empty_receipt_secret_signs_nothing() {
    let runner = Runner::start_on_with(
        "notify-empty-secret",
        Backend::Embedded,
        &[("MOTCUA_SMS_GATEWAY_RECEIPT_SECRET", "")],
    )
    .unwrap();
    let body = br#"{"message_id":"gw-1","status":"delivered"}"#;
    let r = Client::new()
        .post(runner.url("/v1/notifications/receipts/gateway"))
        .header("content-type", "application/json")
        .header("x-signature", motcua_senders::receipt_signature(b"", body))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}
