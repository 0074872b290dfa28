//! A verifying service (the submission function) trusting the identity function's JWKS
//! URL: a real HTTP server on loopback publishes the keys; rotation is followed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::routing::get;
use motcua_domain::Role;
use motcua_http::{Authenticator, RemoteJwks, SigningKey, rotate_signing_keys};

/// Serves `issuer`'s JWKS; counts fetches.
async fn publish(issuer: Arc<Authenticator>) -> (String, Arc<AtomicUsize>) {
    let fetches = Arc::new(AtomicUsize::new(0));
    let f = fetches.clone();
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        get(move || {
            let (issuer, f) = (issuer.clone(), f.clone());
            async move {
                f.fetch_add(1, Ordering::SeqCst);
                Json(issuer.jwks())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, fetches)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifier_follows_the_issuers_jwks_through_a_rotation() {
    let now = jiff::Timestamp::now().as_second();
    let first = rotate_signing_keys(&[], SigningKey::generate("k1"), now, 86_400);
    let issuer = Arc::new(
        Authenticator::new("motcua", "motcua", &[])
            .unwrap()
            .with_signing_keys(&first),
    );
    let (url, fetches) = publish(issuer.clone()).await;
    // The verifier holds no key and no secret: everything comes from the URL.
    let verifier = Authenticator::new("motcua", "motcua", &[])
        .unwrap()
        .with_remote_keys(RemoteJwks::new(&url));

    let t1 = issuer
        .mint_signed("acct-1", Role::Citizen, None, now, 600)
        .unwrap();
    assert!(verifier.verify(&t1).is_err(), "not known before the fetch");
    let actor = verifier.authenticate(&t1).await.unwrap();
    assert_eq!(actor.subject, "acct-1");
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    // Known now: no more fetches.
    for _ in 0..10 {
        verifier.authenticate(&t1).await.unwrap();
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);

    // The issuer rotates; the new key signs at once in this test (publish delay 0).
    let rotated = rotate_signing_keys(&first, SigningKey::generate("k2"), now, 0);
    issuer.set_signing_keys(&rotated);
    let t2 = issuer
        .mint_signed("acct-2", Role::Citizen, None, now, 600)
        .unwrap();
    // Within the minimum refresh interval the new kid is not fetched for...
    assert!(verifier.authenticate(&t2).await.is_err());
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    // ...after it, once; then both the old and the new key's tokens verify.
    let generation = || verifier.remote_keys().unwrap().generation();
    let before = generation();
    tokio::time::sleep(RemoteJwks::MIN_REFRESH + Duration::from_millis(200)).await;
    assert_eq!(verifier.authenticate(&t2).await.unwrap().subject, "acct-2");
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    assert!(verifier.authenticate(&t1).await.is_ok());
    // A fetch that only added a key keeps the tokens checked before (anyone can cause a
    // fetch with a made-up kid: it must not make every session's token checked again).
    assert_eq!(generation(), before);
    // The issuer withdraws the first key: once the verifier reads that, t1 is refused,
    // though its check was remembered.
    issuer.set_signing_keys(&rotated[..1]);
    verifier.remote_keys().unwrap().refresh().await.unwrap();
    assert_eq!(generation(), before + 1);
    assert!(verifier.authenticate(&t1).await.is_err());
    assert!(verifier.authenticate(&t2).await.is_ok());

    // A token signed by a key the issuer never published stays refused.
    let rogue = Authenticator::new("motcua", "motcua", &[])
        .unwrap()
        .with_signing_keys(&[SigningKey::generate("k2")]);
    let forged = rogue
        .mint_signed("acct-2", Role::Citizen, None, now, 600)
        .unwrap();
    assert!(verifier.authenticate(&forged).await.is_err());
}
