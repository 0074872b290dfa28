//! The HTTP senders against the simulator: a real server on loopback speaking their wire
//! format, error answers included.

use std::collections::BTreeMap;

use motcua_domain::templates::Content;
use motcua_ports::notifications::{Lookup, Outgoing, SendFailure, Sender};
use motcua_senders::gateway::SmsGateway;
use motcua_senders::simulator::{MessagingSimulator, SimOptions};
use motcua_senders::zalo::ZaloZns;
use uuid::Uuid;

async fn sim() -> MessagingSimulator {
    MessagingSimulator::start(
        0,
        SimOptions {
            key: "gw-key".into(),
            token: "zns-token".into(),
            receipts: None,
        },
    )
    .await
    .unwrap()
}

fn sms(text: &str) -> Content {
    Content::Sms { text: text.into() }
}

#[tokio::test]
async fn the_gateway_sends_with_our_reference_and_sorts_its_errors() {
    let sim = sim().await;
    let gw = SmsGateway::new(&sim.sms_url(), "gw-key", "DVCTINH", false);
    let content = sms("DVC: Ho so G22.91-260317-0042 da duoc tiep nhan.");
    let reference = Uuid::now_v7();
    let m = Outgoing {
        reference,
        to: "+84912345678",
        content: &content,
    };
    let accepted = gw.send(&m).await.unwrap();
    let sent = sim.messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, "84912345678");
    assert_eq!(
        sent[0].text,
        "DVC: Ho so G22.91-260317-0042 da duoc tiep nhan."
    );
    assert_eq!(sent[0].reference, reference.to_string());
    assert_eq!(
        accepted.provider_id.as_deref(),
        Some(sent[0].message_id.as_str())
    );
    assert_eq!(
        gw.lookup(reference).await.unwrap(),
        Lookup::Accepted(accepted)
    );
    assert_eq!(gw.lookup(Uuid::now_v7()).await.unwrap(), Lookup::Unknown);

    sim.script_sms(&[
        "code:invalid_phone",
        "code:quota_exceeded",
        "http_503",
        "lost",
    ]);
    let next = || Outgoing {
        reference: Uuid::now_v7(),
        to: "+84912345678",
        content: &content,
    };
    assert!(
        matches!(gw.send(&next()).await, Err(SendFailure::Permanent(e)) if e == "gateway: invalid_phone")
    );
    assert!(matches!(
        gw.send(&next()).await,
        Err(SendFailure::Transient(_))
    ));
    assert!(
        matches!(gw.send(&next()).await, Err(SendFailure::Transient(e)) if e == "gateway: HTTP 503")
    );
    // Taken, but the answer was lost: the lookup finds it.
    let lost = next();
    assert!(matches!(
        gw.send(&lost).await,
        Err(SendFailure::Transient(_))
    ));
    assert!(matches!(
        gw.lookup(lost.reference).await.unwrap(),
        Lookup::Accepted(_)
    ));
    assert_eq!(sim.messages().len(), 2);

    // A wrong key is the operator's to fix, not the recipient's fault: transient.
    let wrong = SmsGateway::new(&sim.sms_url(), "old-key", "DVCTINH", false);
    assert!(
        matches!(wrong.send(&next()).await, Err(SendFailure::Transient(e)) if e == "gateway: HTTP 401")
    );
    // Nothing listening: transient, and the error names no number.
    let down = SmsGateway::new("http://127.0.0.1:9/sms", "k", "DVCTINH", false);
    match down.send(&next()).await {
        Err(SendFailure::Transient(e)) => assert!(!e.contains("912345678"), "{e}"),
        other => panic!("{other:?}"),
    }
    // Email content is not an SMS.
    let email = Content::Email {
        subject: "s".into(),
        text: "t".into(),
        html: "h".into(),
    };
    let m = Outgoing {
        reference: Uuid::now_v7(),
        to: "+84912345678",
        content: &email,
    };
    assert!(matches!(gw.send(&m).await, Err(SendFailure::Permanent(_))));
}

#[tokio::test]
async fn zalo_sends_the_template_and_its_parameters() {
    let sim = sim().await;
    let zns = ZaloZns::new(&sim.zns_url(), "zns-token");
    let mut params = BTreeMap::new();
    params.insert("ma_ho_so".to_owned(), "G22.91-260317-0042".to_owned());
    let content = Content::Zalo {
        template_id: "231245".into(),
        params,
    };
    let m = Outgoing {
        reference: Uuid::now_v7(),
        to: "+84912345678",
        content: &content,
    };
    let accepted = zns.send(&m).await.unwrap();
    let sent = sim.messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].channel.as_str(), sent[0].to.as_str()),
        ("zalo", "84912345678")
    );
    assert_eq!(sent[0].text, "231245");
    assert_eq!(sent[0].params["ma_ho_so"], "G22.91-260317-0042");
    assert_eq!(
        accepted.provider_id.as_deref(),
        Some(sent[0].message_id.as_str())
    );

    sim.script_zalo(&["error:-118", "error:-32", "http_502"]);
    assert!(
        matches!(zns.send(&m).await, Err(SendFailure::Permanent(e)) if e == "zalo: error -118")
    );
    assert!(matches!(zns.send(&m).await, Err(SendFailure::Transient(_))));
    assert!(matches!(zns.send(&m).await, Err(SendFailure::Transient(_))));
    let wrong = ZaloZns::new(&sim.zns_url(), "expired");
    assert!(
        matches!(wrong.send(&m).await, Err(SendFailure::Transient(e)) if e == "zalo: error -124")
    );
    assert_eq!(sim.messages().len(), 1);
}

#[test]
fn receipt_signatures_are_checked() {
    let body = br#"{"message_id":"gw-1","status":"delivered"}"#;
    let sig = motcua_senders::receipt_signature(b"secret", body);
    assert_eq!(sig.len(), 64);
    assert!(motcua_senders::receipt_signed(b"secret", body, &sig));
    assert!(!motcua_senders::receipt_signed(b"other", body, &sig));
    assert!(!motcua_senders::receipt_signed(b"secret", b"{}", &sig));
    assert!(!motcua_senders::receipt_signed(b"secret", body, "zz"));
    assert!(!motcua_senders::receipt_signed(b"secret", body, ""));
}
