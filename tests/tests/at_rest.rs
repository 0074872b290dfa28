//! Personal data at rest: after people sign in (by SMS code and by e-ID) and fill in their
//! profile, the store holds none of their personal data in the clear. Accounts and
//! challenges are sealed, registry answers are not kept, the number is a keyed hash.
//! Byte for byte through the SQLite file and its log, or item by item through the table.

use motcua_tests::{Backend, Runner};
use reqwest::Client;
use serde_json::json;

async fn nothing_personal_is_stored_in_the_clear(backend: Backend) {
    let runner = Runner::start_on("at-rest", backend).unwrap();
    let http = Client::new();
    let lan = json!({"citizen_id": "037153000257", "full_name": "Nguyễn Thị Lan",
        "birth_date": "1953-04-02", "sex": "female"});
    let signed_in = runner
        .sign_in_with_code(&http, &lan, "+84912345678", "10.7.0.1")
        .await;
    let token = signed_in["access_token"].as_str().unwrap();
    let r = http
        .patch(runner.url("/v1/me"))
        .bearer_auth(token)
        .json(&json!({"email": "lan.nguyen@example.vn"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    // A second person through the national e-ID.
    let eid = runner.sign_in_with_eid("079205001234").await;
    assert!(eid["access_token"].is_string(), "{eid}");

    let stored = runner.stored_text().await;
    if backend == Backend::Aws {
        assert!(stored.contains("ACCT#"), "the identity table was read");
    }
    assert!(
        stored.len() > 1000,
        "the store was read: {} bytes",
        stored.len()
    );
    for secret in [
        "Nguyễn Thị Lan",
        "1953-04-02",
        "912345678",
        "037153000257",
        "lan.nguyen@example.vn",
        "079205001234",
        "Trần Văn Minh",
        "2005-09-14",
        "987000111",
    ] {
        assert!(
            !stored.contains(secret),
            "{secret} is stored in the clear ({backend:?})"
        );
    }
}

motcua_tests::on_both_backends!(nothing_personal_is_stored_in_the_clear,);
