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
    let own = |signed: &Value| {
        motcua_tests::jwt_part(signed["access_token"].as_str().unwrap(), 1)["own"].clone()
    };
    let owner = own(&first);
    assert!(owner.is_string());
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
    assert_eq!(own(&again), owner);
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

    // Erased and made again after the rotation, under the current key: the same owner
    // reference, so the person's dossiers stay theirs (review finding: they were lost).
    let r = http
        .delete(runner.url("/v1/me"))
        .bearer_auth(again["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let remade = runner
        .sign_in_with_code(&http, &lan(), "+84912345678", "10.6.0.4")
        .await;
    assert_eq!(remade["created"], true);
    assert_eq!(own(&remade), owner);

    // The owner key may not leave the set: the runner refuses to start without it.
    let without_owner = json!({"current": "k1", "keys": {"k1": new_key}}).to_string();
    assert!(
        runner
            .restart(&[("MOTCUA_ID_HASH_KEY", without_owner.as_str())])
            .is_err(),
        "a key set without its owner key is refused"
    );
}

motcua_tests::on_both_backends!(records_hashed_under_an_older_key_are_found_after_a_rotation,);
