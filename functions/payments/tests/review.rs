//! Findings of the security review of the payments function, each with the test that
//! failed before its fix.

mod common;

use common::world;
use jiff::SignedDuration;
use motcua_domain::payment::Provider;
use serde_json::Value;

/// An open payment past its validity could be expired at once and replaced, while the
/// provider's page still took the money: the payer paid twice. Now it stays until the
/// grace period ends (409 with Retry-After), then the provider is asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_past_its_validity_is_not_replaced_before_the_grace_ends() {
    let w = world().await;
    let d = w.owing().await;
    let (s, first) = w.start(&d, Provider::Momo, &w.citizen(), None).await;
    assert_eq!(s, 201);
    w.clock.advance(SignedDuration::from_mins(16));
    let (s, p) = w.start(&d, Provider::Vnpay, &w.citizen(), None).await;
    assert_eq!(s, 409, "{p}");
    assert_eq!(p["type"], "urn:motcua:problem:payment-being-confirmed");
    // Meanwhile the payer completes the first one: it pays the fee.
    w.pay(&first, "success").await;
    assert_eq!(w.dossier(d.id).await.fees.len(), 1);
    let (s, _) = w.start(&d, Provider::Vnpay, &w.citizen(), None).await;
    assert_eq!(s, 409, "nothing is due any more");
    // Another dossier's abandoned payment, after the grace: expired, a new one starts.
    let d2 = w.owing().await;
    let (_, _) = w.start(&d2, Provider::Vnpay, &w.citizen(), None).await;
    w.clock.advance(SignedDuration::from_mins(31));
    let (s, p) = w.start(&d2, Provider::Momo, &w.citizen(), None).await;
    assert_eq!(s, 201, "{p}");
    let (_, list) = w.payments(&d2, &w.citizen()).await;
    assert_eq!(list[0]["status"], "expired");
}

/// Concurrent starts answered a payment still being created, with no page to send the
/// payer to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_concurrent_start_gets_the_page_to_go_to() {
    let w = world().await;
    let d = w.owing().await;
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let (base, http, token, id) = (w.base.clone(), w.http.clone(), w.citizen(), d.id);
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(format!("{base}/v1/dossiers/{id}/payments"))
                .bearer_auth(token)
                .json(&serde_json::json!({"provider": "momo"}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }));
    }
    for t in tasks {
        let (s, v) = t.await.unwrap();
        assert!(s == 200 || s == 201, "{s} {v}");
        assert!(v["redirect_url"].is_string(), "{v}");
        assert_eq!(v["status"], "pending");
    }
}

/// A refund whose answer was lost, sent again and answered "duplicate request", was
/// recorded refused and made refundable again: refunded twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_sent_again_is_never_taken_for_refused() {
    let w = world().await;
    let d = w.owing().await;
    let (_, p) = w.start(&d, Provider::Vnpay, &w.citizen(), None).await;
    w.pay(&p, "success").await;
    let id = p["id"].as_str().unwrap();
    for switch in ["lose-next-refund", "refuse-duplicate-refunds"] {
        let r = w
            .http
            .post(format!("{}/_sim/{switch}", w.sim.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }
    let officer = w.officer(&w.dossier(d.id).await);
    let url = format!("{}/v1/payments/{id}/refunds", w.base);
    let half =
        serde_json::json!({"amount": 100_000, "expected_refundable": 200_000, "reason": "r"});
    let r = w
        .http
        .post(&url)
        .bearer_auth(&officer)
        .json(&half)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    // Sent again at once: the first send's lease holds.
    let r = w
        .http
        .post(&url)
        .bearer_auth(&officer)
        .json(&half)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    w.clock.advance(SignedDuration::from_secs(61));
    let r = w
        .http
        .post(&url)
        .bearer_auth(&officer)
        .json(&half)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "urn:motcua:problem:refund-outcome-unknown");
    let (_, list) = w.payments(&d, &officer).await;
    assert_eq!(list[0]["refunds"][0]["status"], "requested", "{list}");
    assert_eq!(list[0]["refunds"][0]["attempts"], 2);
    assert_eq!(list[0]["refundable"], 100_000, "the amount stays reserved");
    // No second refund of what may have been refunded.
    let rest =
        serde_json::json!({"amount": 200_000, "expected_refundable": 200_000, "reason": "r"});
    let r = w
        .http
        .post(&url)
        .bearer_auth(&officer)
        .json(&rest)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let txn = id.replace('-', "");
    let at_vnpay = w
        .sim
        .transactions()
        .into_iter()
        .find(|t| t.txn_ref == txn)
        .unwrap();
    assert_eq!(at_vnpay.refunded, 100_000);
    // The day's report shows it for an officer to check.
    let day = *w.payment_days(&[d.id]).await.first().unwrap();
    let r = motcua_payments::reconcile::daily_report(&w.state, day)
        .await
        .unwrap();
    assert!(
        r.mismatches.iter().any(|m| m.kind == "refund_unconfirmed"),
        "{r:?}"
    );
}
