//! Paying a fee end to end over HTTP: the function on loopback, the three providers'
//! simulator calling it back with signed callbacks.

mod common;

use common::{World, to_before_midnight, world, world_shifted};
use jiff::SignedDuration;
use motcua_domain::payment::{FeeChannel, Provider};
use motcua_domain::{Role, Status};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fee_at_submission_is_paid_once_through_each_provider() {
    let w = world().await;
    for provider in Provider::ALL {
        let d = w.owing().await;
        let (status, p) = w.start(&d, provider, &w.citizen(), None).await;
        assert_eq!(status, 201, "{provider:?} {p}");
        assert_eq!(p["status"], "pending");
        assert_eq!(p["amount"], 200_000);
        let back = w.pay(&p, "success").await;
        // Settled by the callback, before the browser comes back.
        let (_, list) = w.payments(&d, &w.citizen()).await;
        assert_eq!(list[0]["status"], "succeeded", "{provider:?} {list}");
        let receipt = list[0]["receipt"]["number"].as_str().unwrap().to_owned();
        assert_eq!(receipt, format!("BL-{}-1", d.code.as_str()));
        let stored = w.dossier(d.id).await;
        assert_eq!(stored.fees.len(), 1);
        assert_eq!(stored.fees[0].channel, FeeChannel::Online);
        assert_eq!(stored.fees[0].receipt, receipt);
        assert_eq!(stored.fee_due(), None);
        assert_eq!(stored.status, Status::Submitted);
        assert_eq!(w.events(&d, "payment.succeeded").await.len(), 1);
        // The provider heard the answer it expects.
        let cb = w.sim.callbacks();
        let last = cb.last().unwrap();
        match provider {
            Provider::Vnpay => assert!(last.answer.contains(r#""RspCode":"00""#), "{last:?}"),
            Provider::Momo => assert_eq!(last.status, 204, "{last:?}"),
            Provider::Paygov => assert!(last.answer.contains(r#""MaLoi":"00""#), "{last:?}"),
        }
        // The browser's return page shows it; asking twice changes nothing.
        for _ in 0..2 {
            let page = w.http.get(&back).send().await.unwrap();
            assert_eq!(page.status(), 200);
            assert!(page.text().await.unwrap().contains("Thanh toán thành công"));
        }
        assert_eq!(w.events(&d, "payment.succeeded").await.len(), 1);
        // A new payment for the paid fee: none is due.
        let (status, p) = w.start(&d, provider, &w.citizen(), None).await;
        assert_eq!(status, 409, "{p}");
        assert_eq!(p["type"], "urn:motcua:problem:no-fee-due");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_request_is_paid_and_the_dossier_moves_on() {
    let w = world().await;
    let d = w.requested(60_000).await;
    assert_eq!(d.status, Status::PaymentRequested);
    let (status, p) = w.start(&d, Provider::Momo, &w.citizen(), None).await;
    assert_eq!(status, 201, "{p}");
    assert_eq!(p["amount"], 60_000);
    w.pay(&p, "success").await;
    let stored = w.dossier(d.id).await;
    assert_eq!(stored.status, Status::Processing);
    assert_eq!(stored.amount_due, None);
    assert_eq!(stored.fees[0].amount.as_vnd(), 60_000);
    let events = w.events(&d, "payment.succeeded").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].data["to_status"], 4);
    let history = w.submission.dossiers.history(d.id).await.unwrap();
    assert_eq!(history.last().unwrap().action, "pay_online");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_forgeries_and_wrong_amounts_are_answered_and_change_nothing() {
    let w = world().await;
    // Duplicate: applied once, the second answered "already confirmed".
    let d = w.owing().await;
    let (_, p) = w.start(&d, Provider::Vnpay, &w.citizen(), None).await;
    w.pay(&p, "duplicate").await;
    let cb = w.sim.callbacks();
    let answers: Vec<&str> = cb[cb.len() - 2..]
        .iter()
        .map(|c| c.answer.as_str())
        .collect();
    assert!(answers[0].contains(r#""RspCode":"00""#), "{answers:?}");
    assert!(answers[1].contains(r#""RspCode":"02""#), "{answers:?}");
    assert_eq!(w.events(&d, "payment.succeeded").await.len(), 1);
    assert_eq!(w.dossier(d.id).await.fees.len(), 1);
    // Forged, then wrong amount: refused with 97 and 04; still pending.
    for (behaviour, code) in [("bad_signature", "97"), ("wrong_amount", "04")] {
        let d = w.owing().await;
        let (_, p) = w.start(&d, Provider::Vnpay, &w.citizen(), None).await;
        w.pay(&p, behaviour).await;
        let last = w.sim.callbacks().last().unwrap().clone();
        assert!(
            last.answer.contains(&format!(r#""RspCode":"{code}""#)),
            "{last:?}"
        );
        let (_, list) = w.payments(&d, &w.citizen()).await;
        assert_eq!(list[0]["status"], "pending");
        assert!(w.dossier(d.id).await.fees.is_empty());
    }
    // MoMo: a forged IPN is a 400, a duplicate 204 again.
    let d = w.owing().await;
    let (_, p) = w.start(&d, Provider::Momo, &w.citizen(), None).await;
    w.pay(&p, "bad_signature").await;
    assert_eq!(w.sim.callbacks().last().unwrap().status, 401);
    // A forged IPN typed by hand: 97, nothing changes.
    let r: Value = w
        .http
        .get(format!(
            "{}/v1/payments/vnpay/ipn?vnp_TxnRef={}&vnp_Amount=20000000&vnp_ResponseCode=00&vnp_TransactionStatus=00&vnp_TmnCode=MOTCUA01&vnp_SecureHash=00",
            w.base,
            p["id"].as_str().unwrap().replace('-', "")
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["RspCode"], "97");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_open_payment_per_fee_and_retries_get_the_first_answer() {
    let w = world().await;
    let d = w.owing().await;
    let token = w.citizen();
    // Five at once: one payment.
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let (w_base, http, token, id) = (w.base.clone(), w.http.clone(), token.clone(), d.id);
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(format!("{w_base}/v1/dossiers/{id}/payments"))
                .bearer_auth(token)
                .json(&serde_json::json!({"provider": "vnpay"}))
                .send()
                .await
                .unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap())
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    let mut created = 0;
    for t in tasks {
        let (s, v) = t.await.unwrap();
        assert!(s == 201 || s == 200, "{s} {v}");
        created += usize::from(s == 201);
        ids.insert(v["id"].as_str().unwrap().to_owned());
    }
    assert_eq!((created, ids.len()), (1, 1));
    // Another provider while it is open: the open one.
    let (s, v) = w.start(&d, Provider::Momo, &token, None).await;
    assert_eq!((s, v["provider"].as_str()), (200, Some("vnpay")));
    // Cancelled, a new one may start; with a key, the retry replays.
    let id = ids.into_iter().next().unwrap();
    let r = w
        .http
        .post(format!("{}/v1/payments/{id}/cancel", w.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (s1, a) = w.start(&d, Provider::Momo, &token, Some("k-1")).await;
    let (s2, b) = w.start(&d, Provider::Momo, &token, Some("k-1")).await;
    assert_eq!((s1, s2), (201, 201));
    assert_eq!(a["id"], b["id"]);
    let (_, list) = w.payments(&d, &token).await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    // Paying the cancelled one anyway: recorded, flagged for refund, fee still owed by
    // the open one.
    let cancelled = &list[0];
    assert_eq!(cancelled["status"], "cancelled");
    // The payer had the page open: it still takes the money.
    let stored = w
        .state
        .ports
        .payments
        .get(uuid::Uuid::parse_str(&id).unwrap())
        .await
        .unwrap()
        .unwrap();
    let page = w
        .http
        .get(stored.redirect_url.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let txn = id.replace('-', "");
    let v: Value = w
        .http
        .post(format!("{}/_sim/pay/vnpay/{txn}", w.sim.base_url()))
        .header("accept", "application/json")
        .body("as=success")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(v["return_url"].is_string());
    let (_, list) = w.payments(&d, &token).await;
    assert_eq!(list[0]["status"], "succeeded");
    assert_eq!(list[0]["refund_due"], true);
    assert!(w.dossier(d.id).await.fee_due().is_some());
    assert_eq!(w.events(&d, "payment.refund_due").await.len(), 1);
    assert!(w.events(&d, "payment.succeeded").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_settles_silent_payments_and_expires_abandoned_ones() {
    reconciliation_round_and_report(world().await).await;
}

/// The same 41 minutes starting 20 minutes before midnight: the day's report
/// is the day each payment was made (this failed when the test read one day).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_across_midnight_reports_each_payment_on_its_day() {
    let w = world_shifted(to_before_midnight(SignedDuration::from_mins(20))).await;
    reconciliation_round_and_report(w).await;
}

async fn reconciliation_round_and_report(w: World) {
    // Paid, never called back (MoMo may call once, and it can be lost).
    let silent = w.owing().await;
    let (_, p) = w.start(&silent, Provider::Momo, &w.citizen(), None).await;
    w.pay(&p, "never").await;
    // Abandoned on the page.
    let abandoned = w.owing().await;
    let (_, _) = w
        .start(&abandoned, Provider::Vnpay, &w.citizen(), None)
        .await;
    // Not yet due for asking.
    let round = motcua_payments::reconcile::reconcile(&w.state)
        .await
        .unwrap();
    assert_eq!(round.asked, 0);
    w.clock.advance(SignedDuration::from_mins(11));
    let round = motcua_payments::reconcile::reconcile(&w.state)
        .await
        .unwrap();
    assert_eq!(
        (round.asked, round.paid, round.expired),
        (2, 1, 0),
        "{round:?}"
    );
    assert_eq!(w.dossier(silent.id).await.fees.len(), 1);
    // Past validity and grace: the open one expires; a new payment may start.
    w.clock.advance(SignedDuration::from_mins(30));
    let round = motcua_payments::reconcile::reconcile(&w.state)
        .await
        .unwrap();
    assert_eq!((round.asked, round.expired), (1, 1), "{round:?}");
    let (_, list) = w.payments(&abandoned, &w.citizen()).await;
    assert_eq!(list[0]["status"], "expired");
    let (s, _) = w
        .start(&abandoned, Provider::Vnpay, &w.citizen(), None)
        .await;
    assert_eq!(s, 201);
    // The days' reports (the clock moved 41 minutes, maybe past midnight):
    // what the providers say agrees with us now.
    let mut compared = 0;
    for day in w.payment_days(&[silent.id, abandoned.id]).await {
        let r = motcua_payments::reconcile::daily_report(&w.state, day)
            .await
            .unwrap();
        compared += r.compared.values().sum::<u32>();
        assert!(r.unchecked.is_empty());
        assert!(r.mismatches.is_empty(), "{:?}", r.mismatches);
        assert_eq!(
            w.state.ports.payments.report(day).await.unwrap().unwrap(),
            r
        );
    }
    assert_eq!(compared, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_may_see_start_cancel_and_refund() {
    let w = world().await;
    let d = w.owing().await;
    let (_, p) = w.start(&d, Provider::Vnpay, &w.citizen(), None).await;
    let id = p["id"].as_str().unwrap().to_owned();
    let other_agency = motcua_domain::AgencyCode::parse("000.00.05.H42").unwrap();
    let stranger = w.token("citizen-2", Role::Citizen, None);
    let officer = w.officer(&d);
    let far_officer = w.token("officer-9", Role::Officer, Some(&other_agency));
    let admin = w.token("admin-1", Role::Admin, None);
    for (who, token, list, start) in [
        ("owner", w.citizen(), 200, 200),
        ("stranger", stranger.clone(), 404, 404),
        ("officer", officer.clone(), 200, 404),
        ("far officer", far_officer.clone(), 404, 404),
        ("admin", admin.clone(), 200, 404),
        ("garbage", "x.y.z".to_owned(), 401, 401),
    ] {
        let (s, v) = w.payments(&d, &token).await;
        assert_eq!(s, list, "{who} list {v}");
        if s == 200 {
            let shows_url = v[0].get("redirect_url").is_some();
            assert_eq!(shows_url, who == "owner", "{who}");
        }
        let (s, v) = w.start(&d, Provider::Vnpay, &token, None).await;
        assert_eq!(s, start, "{who} start {v}");
    }
    let r = w
        .http
        .get(format!("{}/v1/dossiers/{}/payments", w.base, d.id))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Cancel: the owner only.
    for token in [&stranger, &officer, &admin] {
        let r = w
            .http
            .post(format!("{}/v1/payments/{id}/cancel", w.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
    }
    // Refunds: the agency's officers and admins; citizens are refused.
    w.pay(&p, "success").await;
    let refund = |token: String, body: Value| {
        let (http, url) = (
            w.http.clone(),
            format!("{}/v1/payments/{id}/refunds", w.base),
        );
        async move {
            let r = http
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let body = serde_json::json!({"amount": 50_000, "expected_refundable": 200_000, "reason": "paid twice"});
    assert_eq!(refund(w.citizen(), body.clone()).await.0, 403);
    assert_eq!(refund(far_officer, body.clone()).await.0, 404);
    let (s, v) = refund(officer.clone(), body.clone()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["status"].as_str(), v["refundable"].as_u64()),
        (Some("refunded"), Some(150_000))
    );
    // The same request again: the refundable amount is no longer what it names.
    let (s, v) = refund(officer.clone(), body).await;
    assert_eq!(s, 409, "{v}");
    let over =
        serde_json::json!({"amount": 150_001, "expected_refundable": 150_000, "reason": "x"});
    assert_eq!(refund(admin.clone(), over).await.0, 422);
    let blank = serde_json::json!({"amount": 1, "expected_refundable": 150_000, "reason": " "});
    assert_eq!(refund(admin.clone(), blank).await.0, 422);
    let rest = serde_json::json!({"amount": 150_000, "expected_refundable": 150_000, "reason": "withdrawn"});
    let (s, v) = refund(admin, rest).await;
    assert_eq!((s, v["refundable"].as_u64()), (200, Some(0)), "{v}");
    // The reconciliation report is the admins'.
    let day = motcua_domain::calendar::local_date(jiff::Timestamp::now());
    motcua_payments::reconcile::daily_report(&w.state, day)
        .await
        .unwrap();
    let url = format!("{}/v1/payments/reconciliation/{day}", w.base);
    let r = w.http.get(&url).bearer_auth(&officer).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let admin = w.token("admin-1", Role::Admin, None);
    let r = w.http.get(&url).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_refusing_the_payment_is_a_502_and_frees_the_fee() {
    let w = world().await;
    // MoMo takes at least 1.000 ₫.
    let d = w.requested(500).await;
    let (s, p) = w.start(&d, Provider::Momo, &w.citizen(), None).await;
    assert_eq!(s, 502, "{p}");
    assert_eq!(p["type"], "urn:motcua:problem:provider-refused");
    // VNPay takes it.
    let (s, p) = w.start(&d, Provider::Vnpay, &w.citizen(), None).await;
    assert_eq!(s, 201, "{p}");
    let (_, list) = w.payments(&d, &w.citizen()).await;
    assert_eq!(list[0]["status"], "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_not_offered_answers_404_to_its_callbacks() {
    let w = world().await;
    let mut state = w.state.clone();
    let mut config = (*state.config).clone();
    config.paygov = None;
    state.config = std::sync::Arc::new(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = motcua_http::settings::HttpSettings::from_lookup(|_| None)
        .unwrap()
        .with_layers(motcua_payments::routes(state));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let r = w
        .http
        .post(format!("{base}/v1/payments/paygov/confirm"))
        .json(&serde_json::json!({"MaLoi": "00"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_whose_answer_was_lost_is_sent_again_and_made_once() {
    let w = world().await;
    let d = w.owing().await;
    let (_, p) = w.start(&d, Provider::Vnpay, &w.citizen(), None).await;
    w.pay(&p, "success").await;
    let id = p["id"].as_str().unwrap();
    let url = format!("{}/v1/payments/{id}/refunds", w.base);
    let body = serde_json::json!({"amount": 200_000, "expected_refundable": 200_000, "reason": "withdrawn"});
    let r = w
        .http
        .post(format!("{}/_sim/lose-next-refund", w.sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let officer = w.officer(&w.dossier(d.id).await);
    let r = w
        .http
        .post(&url)
        .bearer_auth(&officer)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let (_, list) = w.payments(&d, &officer).await;
    assert_eq!(list[0]["refunds"][0]["status"], "requested");
    assert_eq!(
        list[0]["refundable"], 0,
        "reserved while the outcome is unknown"
    );
    // Another amount meanwhile: refused, one refund at a time.
    let other = serde_json::json!({"amount": 1, "expected_refundable": 0, "reason": "x"});
    let r = w
        .http
        .post(&url)
        .bearer_auth(&officer)
        .json(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    // The same request again, after the first send's lease: sent with the same request
    // id, made once at VNPay.
    w.clock.advance(SignedDuration::from_secs(61));
    let r = w
        .http
        .post(&url)
        .bearer_auth(&officer)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["status"].as_str(), v["refunds"][0]["status"].as_str()),
        (Some("refunded"), Some("done"))
    );
    let txn = id.replace('-', "");
    let at_vnpay = w
        .sim
        .transactions()
        .into_iter()
        .find(|t| t.txn_ref == txn)
        .unwrap();
    assert_eq!(at_vnpay.refunded, 200_000);
}
