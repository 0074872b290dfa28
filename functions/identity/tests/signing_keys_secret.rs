//! The signing-keys secret on LocalStack's Secrets Manager: the four rotation steps as
//! Secrets Manager calls them, retries, and the identity function loading the result.

use aws_sdk_secretsmanager::Client;
use motcua_domain::Role;
use motcua_http::Authenticator;
use motcua_identity::keys::{PUBLISH_SECS, RotationEvent, load, rotate};

async fn client() -> Client {
    motcua_aws::localstack::ensure_running().expect("LocalStack");
    Client::new(&motcua_aws::localstack::config().await)
}

async fn rotation(c: &Client, secret: &str, now: i64) -> String {
    let token = uuid::Uuid::now_v7().to_string();
    for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        let event = RotationEvent {
            secret_id: secret.into(),
            token: token.clone(),
            step: step.into(),
        };
        rotate(c, &event, now).await.unwrap();
        // Secrets Manager retries steps: a second call changes nothing.
        rotate(c, &event, now).await.unwrap();
    }
    token
}

fn signer_kid(auth: &Authenticator, at: i64) -> String {
    let t = auth
        .mint_signed("acct", Role::Citizen, None, at, 60)
        .unwrap();
    let header = t.split('.').next().unwrap();
    use base64::Engine;
    let h: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    h["kid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn rotations_publish_a_key_a_day_before_it_signs() {
    let c = client().await;
    let name = format!("motcua-test/signing-keys-{}", uuid::Uuid::now_v7());
    // As the template creates it: no key yet.
    c.create_secret()
        .name(&name)
        .secret_string(r#"{"keys":[]}"#)
        .send()
        .await
        .unwrap();
    assert!(load(&c, &name).await.unwrap().is_empty());
    let auth = Authenticator::new("motcua", "motcua", &[]).unwrap();
    assert!(!auth.can_sign(0), "nothing signs before the first rotation");

    // The first rotation (on deploy): one key, signing at once.
    // Real time: testSecret verifies a token minted "now", against the real clock.
    let t0 = jiff::Timestamp::now().as_second();
    rotation(&c, &name, t0).await;
    let keys = load(&c, &name).await.unwrap();
    assert_eq!(keys.len(), 1);
    auth.set_signing_keys(&keys);
    let k1 = signer_kid(&auth, t0);

    // A month later: a second key is published, and signs a day later.
    let t1 = t0 + 30 * 86_400;
    rotation(&c, &name, t1).await;
    let keys = load(&c, &name).await.unwrap();
    assert_eq!(keys.len(), 2);
    auth.set_signing_keys(&keys);
    assert_eq!(auth.jwks()["keys"].as_array().unwrap().len(), 2);
    assert_eq!(signer_kid(&auth, t1), k1);
    let k2 = signer_kid(&auth, t1 + PUBLISH_SECS);
    assert_ne!(k2, k1);

    // Two more rotations: the first key is gone, three remain.
    rotation(&c, &name, t1 + 30 * 86_400).await;
    rotation(&c, &name, t1 + 60 * 86_400).await;
    let keys = load(&c, &name).await.unwrap();
    let kids: Vec<&str> = keys.iter().map(|k| k.kid.as_str()).collect();
    assert_eq!(kids.len(), 3);
    assert!(!kids.contains(&k1.as_str()), "{kids:?}");
    assert!(kids.contains(&k2.as_str()), "{kids:?}");

    // A step for a version that is not this secret's pending one is refused.
    let stray = RotationEvent {
        secret_id: name.clone(),
        token: uuid::Uuid::now_v7().to_string(),
        step: "finishSecret".into(),
    };
    assert!(rotate(&c, &stray, t1).await.is_err());
    c.delete_secret()
        .secret_id(&name)
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
}
