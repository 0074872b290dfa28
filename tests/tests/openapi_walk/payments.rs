//! The walk's payments part: every declared answer of the payments routes, provoked
//! through the runner and the providers' simulator it started.

use motcua_pay::momo::{IPN_FIELDS, sign};
use serde_json::{Value, json};

use super::Walk;

/// The runner's simulator secret (`MOTCUA_PAYMENT_SIM_SECRET`), so the walk can sign as the
/// providers do.
pub const SIM_SECRET: &str = "walk-payment-secret";

/// A fresh dossier of the walk's citizen, owing the criminal record's fee at submission.
async fn owing(w: &mut Walk, citizen: &str) -> String {
    let body = w.runner.criminal_record_for(&w.http, citizen).await;
    let req = w.request("POST", "/v1/dossiers", Some(citizen)).json(&body);
    let created = w.expect("POST", "/v1/dossiers", req, 201).await.body;
    created["id"].as_str().unwrap().to_owned()
}

async fn start(w: &mut Walk, dossier: &str, token: &str, provider: &str, want: u16) -> Value {
    let t = "/v1/dossiers/{id}/payments";
    let req = w
        .request(
            "POST",
            &format!("/v1/dossiers/{dossier}/payments"),
            Some(token),
        )
        .json(&json!({ "provider": provider }));
    w.expect("POST", t, req, want).await.body
}

/// The payer opens the page and acts; the signed fields the provider sent back.
async fn pay(w: &mut Walk, payment: &Value, behaviour: &str) -> String {
    let url = payment["redirect_url"].as_str().unwrap();
    assert_eq!(w.http.get(url).send().await.unwrap().status(), 200);
    let sim = url
        .split("/vnpay/")
        .next()
        .unwrap()
        .split("/momo/")
        .next()
        .unwrap();
    let sim = sim.split("/paygov/").next().unwrap();
    let provider = payment["provider"].as_str().unwrap();
    let txn = payment["id"].as_str().unwrap().replace('-', "");
    let v: Value = w
        .http
        .post(format!("{sim}/_sim/pay/{provider}/{txn}"))
        .header("accept", "application/json")
        .body(format!("as={behaviour}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["return_url"].as_str().unwrap().to_owned()
}

fn momo_ipn(order: &str, amount: u64, result: i64) -> Value {
    let mut v = json!({
        "partnerCode": "MOMOMOTCUA", "orderId": order, "requestId": order, "amount": amount,
        "orderInfo": "Le phi", "orderType": "momo_wallet", "transId": 4_088_878_653u64,
        "resultCode": result, "message": "ok", "payType": "qr",
        "responseTime": 1_764_559_512_000u64, "extraData": "",
    });
    let secret = format!("momo-{SIM_SECRET}");
    v["signature"] = Value::String(sign(secret.as_bytes(), &v, &IPN_FIELDS, "motcua-access"));
    v
}

pub async fn walk(
    w: &mut Walk,
    citizen: &str,
    other_citizen: &str,
    officer: &str,
    other_officer: &str,
    admin: &str,
) {
    let t = "/v1/dossiers/{id}/payments";
    // Start: new, the open one again, a stranger, an unknown provider.
    let d1 = owing(w, citizen).await;
    let p1 = start(w, &d1, citizen, "vnpay", 201).await;
    let again = start(w, &d1, citizen, "momo", 200).await;
    assert_eq!(again["id"], p1["id"]);
    start(w, &d1, other_citizen, "vnpay", 404).await;
    start(w, &d1, citizen, "bitcoin", 422).await;
    let req = w.request("GET", &format!("/v1/dossiers/{d1}/payments"), Some(citizen));
    let list = w.expect("GET", t, req, 200).await.body;
    assert_eq!(list[0]["status"], "pending");
    let req = w.request(
        "GET",
        &format!("/v1/dossiers/{d1}/payments"),
        Some(other_citizen),
    );
    w.expect("GET", t, req, 404).await;
    // Paid at VNPay; its IPN came (from the simulator) and comes again (from us, as VNPay
    // retries do): 200 with RspCode 02, by GET and by POST.
    let back = pay(w, &p1, "success").await;
    let fields = back.split_once('?').unwrap().1.to_owned();
    let ipn = "/v1/payments/vnpay/ipn";
    let req = w.request("GET", &format!("{ipn}?{fields}"), None);
    let a = w.expect("GET", ipn, req, 200).await.body;
    assert_eq!(a["RspCode"], "02", "{a}");
    let req = w
        .request("POST", ipn, None)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(fields.clone());
    let a = w.expect("POST", ipn, req, 200).await.body;
    assert_eq!(a["RspCode"], "02", "{a}");
    let req = w.request(
        "GET",
        &format!("{ipn}?vnp_TxnRef=1&vnp_SecureHash=00"),
        None,
    );
    let a = w.expect("GET", ipn, req, 200).await.body;
    assert_eq!(a["RspCode"], "97", "{a}");
    // The fee is paid: nothing more is due.
    start(w, &d1, citizen, "vnpay", 409).await;
    // The browser's return page.
    let ret = "/v1/payments/{provider}/return";
    let path = back
        .split_once("/v1/")
        .map(|(_, p)| format!("/v1/{p}"))
        .unwrap();
    let req = w.request("GET", &path, None);
    w.expect("GET", ret, req, 200).await;
    let req = w.request("GET", "/v1/payments/vnpay/return?vnp_TxnRef=0", None);
    w.expect("GET", ret, req, 404).await;
    let req = w.request("GET", "/v1/payments/bitcoin/return", None);
    w.expect("GET", ret, req, 404).await;
    // Cancel: the open one, twice; a paid one is no longer open.
    let d2 = owing(w, citizen).await;
    let p2 = start(w, &d2, citizen, "momo", 201).await;
    let c = "/v1/payments/{id}/cancel";
    for _ in 0..2 {
        let req = w.request(
            "POST",
            &format!("/v1/payments/{}/cancel", p2["id"].as_str().unwrap()),
            Some(citizen),
        );
        let v = w.expect("POST", c, req, 200).await.body;
        assert_eq!(v["status"], "cancelled");
    }
    let req = w.request(
        "POST",
        &format!("/v1/payments/{}/cancel", p1["id"].as_str().unwrap()),
        Some(citizen),
    );
    w.expect("POST", c, req, 409).await;
    // MoMo's IPN, signed as MoMo signs: taken, unknown, wrong amount, forged.
    let p3 = start(w, &d2, citizen, "momo", 201).await;
    pay(w, &p3, "never").await;
    let order = p3["id"].as_str().unwrap().replace('-', "");
    let m = "/v1/payments/momo/ipn";
    let req = w
        .request("POST", m, None)
        .json(&momo_ipn(&order, 200_000, 0));
    w.expect("POST", m, req, 204).await;
    let req = w
        .request("POST", m, None)
        .json(&momo_ipn(&"0".repeat(32), 200_000, 0));
    w.expect("POST", m, req, 404).await;
    let p4 = {
        let d = owing(w, citizen).await;
        start(w, &d, citizen, "momo", 201).await
    };
    let order4 = p4["id"].as_str().unwrap().replace('-', "");
    let req = w
        .request("POST", m, None)
        .json(&momo_ipn(&order4, 1_000, 0));
    w.expect("POST", m, req, 422).await;
    let mut forged = momo_ipn(&order4, 200_000, 0);
    forged["signature"] = Value::String("00".repeat(32));
    let req = w.request("POST", m, None).json(&forged);
    w.expect("POST", m, req, 401).await;
    // The platform's confirmation, answered in its format.
    let p5 = {
        let d = owing(w, citizen).await;
        start(w, &d, citizen, "paygov", 201).await
    };
    let back = pay(w, &p5, "never").await;
    let q = back.split_once('?').unwrap().1;
    let body: serde_json::Map<String, Value> = motcua_pay::sig::form_pairs(q, 64)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    let pg = "/v1/payments/paygov/confirm";
    let req = w.request("POST", pg, None).json(&body);
    let a = w.expect("POST", pg, req, 200).await.body;
    assert_eq!(a["MaLoi"], "00", "{a}");
    // Refunds: the agency's officer; the amount named must still be refundable.
    let r = "/v1/payments/{id}/refunds";
    let refunds = format!("/v1/payments/{}/refunds", p1["id"].as_str().unwrap());
    let half = json!({"amount": 50_000, "expected_refundable": 200_000, "reason": "paid twice"});
    let req = w.request("POST", &refunds, Some(citizen)).json(&half);
    w.expect("POST", r, req, 403).await;
    let req = w.request("POST", &refunds, Some(other_officer)).json(&half);
    w.expect("POST", r, req, 404).await;
    let req = w.request("POST", &refunds, Some(officer)).json(&half);
    let v = w.expect("POST", r, req, 200).await.body;
    assert_eq!(v["refundable"], 150_000);
    let req = w.request("POST", &refunds, Some(officer)).json(&half);
    w.expect("POST", r, req, 409).await;
    let over = json!({"amount": 150_001, "expected_refundable": 150_000, "reason": "x"});
    let req = w.request("POST", &refunds, Some(officer)).json(&over);
    w.expect("POST", r, req, 422).await;
    // The reconciliation report: admins; a day, and one that has a report (tested with
    // one in functions/payments/tests/flows.rs).
    let rec = "/v1/payments/reconciliation/{day}";
    let req = w.request(
        "GET",
        "/v1/payments/reconciliation/2001-01-01",
        Some(officer),
    );
    w.expect("GET", rec, req, 403).await;
    let req = w.request("GET", "/v1/payments/reconciliation/2001-01-01", Some(admin));
    w.expect("GET", rec, req, 404).await;
    let req = w.request("GET", "/v1/payments/reconciliation/yesterday", Some(admin));
    w.expect("GET", rec, req, 400).await;
}
