//! The key of the keyed hash of ID numbers rotates: every stored hash carries its key id,
//! records made under an older key stay findable, new ones use the current key. Through
//! the runner on both backends.

use motcua_tests::{Backend, Runner};
use reqwest::Client;
use serde_json::{Value, json};

fn lan() -> Value {
    json!({"citizen_id": "037153000257", "full_name": "Nguyễn Thị Lan",
        "birth_date": "1953-04-02", "sex": "female"})
}

async fn audit(runner: &Runner, http: &Client, citizen_id: &str) -> Vec<Value> {
    let admin = runner.token("admin", "admin-1", None);
    http.post(runner.url("/v1/admin/audit/search"))
        .bearer_auth(admin)
        .json(&json!({"citizen_id": citizen_id}))
        .send()
        .await
        .unwrap()
        .json::<Vec<Value>>()
        .await
        .unwrap()
}

async fn records_hashed_under_an_older_key_are_found_after_a_rotation(backend: Backend) {
    let runner = Runner::start_on("idh-rotate", backend).unwrap();
    let http = Client::new();
    let first = runner
        .sign_in_with_code(&http, &lan(), "+84912345678", "10.6.0.1")
        .await;
    assert_eq!(first["created"], true);
    // The runner's key so far (a single base64 key: key id k0).
    let old_key = std::fs::read_to_string(runner.data_dir.join("id-hash.key"))
        .unwrap()
        .trim()
        .to_owned();
    let new_key = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode([7u8; 32])
    };
    let set = json!({"current": "k1", "keys": {"k0": old_key, "k1": new_key}}).to_string();
    let runner = runner
        .restart(&[("MOTCUA_ID_HASH_KEY", set.as_str())])
        .unwrap();

    // The same person after the rotation: the same account, by code and by e-ID.
    let again = runner
        .sign_in_with_code(&http, &lan(), "+84912345678", "10.6.0.2")
        .await;
    assert_eq!(again["created"], false, "{again}");
    assert_eq!(again["account_id"], first["account_id"]);
    let eid = runner.sign_in_with_eid("037153000257").await;
    assert_eq!(eid["account_id"], first["account_id"], "{eid}");
    // A new person gets an account under the current key; signing in again finds it.
    let minh = json!({"citizen_id": "079205001234", "full_name": "Trần Văn Minh",
        "birth_date": "2005-09-14", "sex": "male"});
    let m1 = runner
        .sign_in_with_code(&http, &minh, "+84987000111", "10.6.0.3")
        .await;
    assert_eq!(m1["created"], true);
    let m2 = runner.sign_in_with_eid("079205001234").await;
    assert_eq!(m2["account_id"], m1["account_id"]);
    // The audit trail of the number spans both keys.
    let trail = audit(&runner, &http, "037153000257").await;
    let confirmed = trail
        .iter()
        .filter(|e| e["outcome"] == "code-confirmed")
        .count();
    assert_eq!(confirmed, 2, "before and after the rotation: {trail:?}");

    // The old key dropped from the set: the old account is no longer found (a new one is
    // made), which is why a key stays in the set while records hashed with it exist.
    let only_new = json!({"current": "k1", "keys": {"k1": new_key}}).to_string();
    let runner = runner
        .restart(&[("MOTCUA_ID_HASH_KEY", only_new.as_str())])
        .unwrap();
    let after = runner
        .sign_in_with_code(&http, &lan(), "+84912345678", "10.6.0.4")
        .await;
    assert_ne!(after["account_id"], first["account_id"]);
    let m3 = runner
        .sign_in_with_code(&http, &minh, "+84987000111", "10.6.0.5")
        .await;
    assert_eq!(
        m3["account_id"], m1["account_id"],
        "made under the current key"
    );
}

motcua_tests::on_both_backends!(records_hashed_under_an_older_key_are_found_after_a_rotation,);
