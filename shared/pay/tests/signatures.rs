//! Our signatures against values computed independently with Python's `hmac`, `hashlib`
//! and `urllib.parse.quote_plus` (`tests/vectors/make_vectors.py` → `vectors.json`).

use motcua_domain::Money;
use motcua_domain::payment::Outcome;
use motcua_pay::momo::{self, CREATE_FIELDS, IPN_FIELDS, QUERY_FIELDS, REFUND_FIELDS};
use motcua_pay::paygov::{Paygov, PaygovConfig, PaygovProfile};
use motcua_pay::sig::{Encoding, HMAC_SHA256, HMAC_SHA512};
use motcua_pay::vnpay;
use motcua_ports::payments::{CallbackError, CallbackRequest, PaymentProvider};
use serde_json::Value;

fn vectors() -> Value {
    serde_json::from_str(include_str!("vectors/vectors.json")).unwrap()
}

fn secret(v: &Value, name: &str) -> Vec<u8> {
    v["secrets"][name].as_str().unwrap().as_bytes().to_vec()
}

fn pairs(params: &Value) -> Vec<(String, String)> {
    params
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect()
}

/// A query string of `pairs` in their given order, PHP-encoded, signed with `hash`.
fn query_of(pairs: &[(String, String)], hash: &str) -> String {
    let mut q: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                motcua_pay::sig::form_encode(k, Encoding::Php),
                motcua_pay::sig::form_encode(v, Encoding::Php)
            )
        })
        .collect();
    q.push(format!("vnp_SecureHash={hash}"));
    q.join("&")
}

#[test]
fn vnpay_payment_urls_sign_as_python_computes_them() {
    let v = vectors();
    let key = ring::hmac::Key::new(HMAC_SHA512, &secret(&v, "vnpay"));
    for case in v["vnpay_urls"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let p = pairs(&case["params"]);
        for (enc, which) in [
            (Encoding::Php, "php"),
            (Encoding::Java, "java"),
            (Encoding::Python, "python"),
        ] {
            assert_eq!(
                vnpay::signed_data(&p, enc),
                case[which]["data"].as_str().unwrap(),
                "{name} {which}"
            );
        }
        assert_eq!(
            vnpay::sign(&secret(&v, "vnpay"), &p),
            case["php"]["hash"].as_str().unwrap(),
            "{name}"
        );
        // What VNPay sends back verifies whichever of its samples' encodings signed it.
        for which in ["php", "java", "python"] {
            let q = query_of(&p, case[which]["hash"].as_str().unwrap());
            assert!(vnpay::verify(&q, &key).is_ok(), "{name} signed as {which}");
        }
    }
}

#[test]
fn a_vnpay_ipn_verifies_and_reads_as_paid() {
    let v = vectors();
    let key = ring::hmac::Key::new(HMAC_SHA512, &secret(&v, "vnpay"));
    let ipn = &v["vnpay_ipn"];
    let q = ipn["query"].as_str().unwrap();
    let pairs = vnpay::verify(q, &key).unwrap();
    assert_eq!(
        vnpay::signed_data(&pairs, Encoding::Php),
        ipn["data"].as_str().unwrap()
    );
    let r = vnpay::report_of(&pairs, "MOTCUA01").unwrap();
    assert_eq!(r.outcome, Outcome::Paid);
    assert_eq!(r.amount, Some(Money::vnd(200_000)));
    assert_eq!(r.txn_ref, "0190d5f1c2a87b3e9c1d2e3f4a5b6c7d");
    assert_eq!(r.provider_transaction.as_deref(), Some("14226112"));
    assert_eq!(r.payer_reference.as_deref(), Some("NCB VNP14226112"));
    assert_eq!(
        r.at.unwrap().to_string(),
        "2026-12-01T03:35:12Z",
        "20261201103512 is Vietnam time"
    );
    // Another terminal's IPN is not ours.
    assert_eq!(
        vnpay::report_of(&pairs, "OTHER001"),
        Err(CallbackError::Malformed)
    );
    // One changed value, a changed hash, a repeated key, no hash.
    let tampered = q.replace("vnp_Amount=20000000", "vnp_Amount=20000100");
    assert_eq!(
        vnpay::verify(&tampered, &key).err(),
        Some(CallbackError::BadSignature)
    );
    let h = ipn["hash"].as_str().unwrap();
    let flipped = q.replace(h, &format!("{}0", &h[..h.len() - 1]));
    assert_eq!(
        vnpay::verify(&flipped, &key).err(),
        Some(CallbackError::BadSignature)
    );
    assert_eq!(
        vnpay::verify(&format!("{q}&vnp_Amount=1"), &key).err(),
        Some(CallbackError::Malformed)
    );
    let (no_hash, _) = q.split_once("&vnp_SecureHash=").unwrap();
    assert_eq!(
        vnpay::verify(no_hash, &key).err(),
        Some(CallbackError::Malformed)
    );
    // An added unsigned non-vnp parameter changes nothing; an added vnp one breaks it.
    assert!(vnpay::verify(&format!("{q}&utm=1"), &key).is_ok());
    assert_eq!(
        vnpay::verify(&format!("{q}&vnp_Extra=1"), &key).err(),
        Some(CallbackError::BadSignature)
    );
    // Upper-case hex is the same signature; a huge query is refused before any work.
    assert!(vnpay::verify(&q.replace(h, &h.to_uppercase()), &key).is_ok());
    let huge = format!("{q}&x={}", "a".repeat(vnpay::MAX_IPN_BYTES));
    assert_eq!(
        vnpay::verify(&huge, &key).err(),
        Some(CallbackError::Malformed)
    );
}

#[test]
fn vnpay_merchant_api_signatures_join_raw_values_with_pipes() {
    let v = vectors();
    let s = secret(&v, "vnpay");
    for (name, case) in v["vnpay_pipe"].as_object().unwrap() {
        let values: Vec<&str> = case["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap())
            .collect();
        assert_eq!(
            vnpay::pipe_sign(&s, &values),
            case["hash"].as_str().unwrap(),
            "{name}"
        );
    }
    // An answer as JSON verifies over its documented order.
    let case = &v["vnpay_pipe"]["querydr_answer"];
    let mut answer = serde_json::Map::new();
    for (field, value) in vnpay::QUERYDR_ANSWER
        .iter()
        .zip(case["values"].as_array().unwrap())
    {
        answer.insert(field.to_string(), value.clone());
    }
    answer.insert("vnp_SecureHash".into(), case["hash"].clone());
    let mut answer = Value::Object(answer);
    let key = ring::hmac::Key::new(HMAC_SHA512, &s);
    assert!(vnpay::answer_signed(&key, &answer, &vnpay::QUERYDR_ANSWER));
    answer["vnp_TransactionStatus"] = Value::String("02".into());
    assert!(!vnpay::answer_signed(&key, &answer, &vnpay::QUERYDR_ANSWER));
}

#[test]
fn momo_signatures_follow_the_documented_orders() {
    let v = vectors();
    let (s, access) = (
        secret(&v, "momo"),
        v["secrets"]["momo_access"].as_str().unwrap(),
    );
    let m = &v["momo"];
    assert_eq!(
        momo::raw_data(&m["ipn"]["body"], &IPN_FIELDS, access),
        m["ipn"]["raw"].as_str().unwrap()
    );
    for (name, fields) in [
        ("create", &CREATE_FIELDS[..]),
        ("query", &QUERY_FIELDS[..]),
        ("refund", &REFUND_FIELDS[..]),
    ] {
        assert_eq!(
            momo::raw_data(&m[name]["body"], fields, access),
            m[name]["raw"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            momo::sign(&s, &m[name]["body"], fields, access),
            m[name]["signature"].as_str().unwrap(),
            "{name}"
        );
    }
    let key = ring::hmac::Key::new(HMAC_SHA256, &s);
    let body = serde_json::to_vec(&m["ipn"]["body"]).unwrap();
    let r = momo::verify_ipn(&body, &key, access, "MOMO").unwrap();
    assert_eq!(r.outcome, Outcome::Paid);
    assert_eq!(r.amount, Some(Money::vnd(200_000)));
    assert_eq!(r.provider_transaction.as_deref(), Some("4088878653"));
    assert_eq!(r.payer_reference.as_deref(), Some("MoMo qr"));
    // Tampered, another partner, not JSON, unsigned.
    let mut t = m["ipn"]["body"].clone();
    t["amount"] = Value::from(2_000);
    assert_eq!(
        momo::verify_ipn(&serde_json::to_vec(&t).unwrap(), &key, access, "MOMO"),
        Err(CallbackError::BadSignature)
    );
    assert_eq!(
        momo::verify_ipn(&body, &key, access, "OTHER"),
        Err(CallbackError::Malformed)
    );
    assert_eq!(
        momo::verify_ipn(b"resultCode=0", &key, access, "MOMO"),
        Err(CallbackError::Malformed)
    );
    let mut unsigned = m["ipn"]["body"].clone();
    unsigned.as_object_mut().unwrap().remove("signature");
    assert_eq!(
        momo::verify_ipn(
            &serde_json::to_vec(&unsigned).unwrap(),
            &key,
            access,
            "MOMO"
        ),
        Err(CallbackError::Malformed)
    );
}

#[test]
fn the_example_paygov_profile_hashes_with_the_secret_last() {
    let v = vectors();
    let pg = &v["paygov"];
    let profile = PaygovProfile::example();
    let s = secret(&v, "paygov");
    let signed = profile.callback_signed.clone();
    assert_eq!(
        profile.sign(&s, &pg["callback"], &signed),
        pg["callback"]["MaXacThuc"].as_str().unwrap()
    );
    let adapter = Paygov::new(PaygovConfig {
        merchant: "TINH-H42".into(),
        secret: s,
        pay_url: "http://127.0.0.1:1/pay".into(),
        query_url: "http://127.0.0.1:1/query".into(),
        profile: profile.clone(),
    });
    let body = serde_json::to_vec(&pg["callback"]).unwrap();
    let r = adapter
        .verify_callback(&CallbackRequest {
            query: "",
            body: &body,
        })
        .unwrap();
    assert_eq!(
        (r.outcome, r.amount),
        (Outcome::Paid, Some(Money::vnd(200_000)))
    );
    // As a form, too; tampered, it is refused.
    let form: Vec<String> = pg["callback"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
        .collect();
    let form = form.join("&");
    assert!(
        adapter
            .verify_callback(&CallbackRequest {
                query: "",
                body: form.as_bytes()
            })
            .is_ok()
    );
    let tampered = form.replace("SoTien=200000", "SoTien=2000");
    assert_eq!(
        adapter
            .verify_callback(&CallbackRequest {
                query: "",
                body: tampered.as_bytes()
            })
            .err(),
        Some(CallbackError::BadSignature)
    );
    // A profile must name what it signs and answers.
    let mut broken = serde_json::to_value(&profile).unwrap();
    broken["callback_signed"] = Value::Array(vec![]);
    assert!(PaygovProfile::from_json(&broken.to_string()).is_err());
    let mut broken = serde_json::to_value(&profile).unwrap();
    broken["time_format"] = Value::String("%Y%".into());
    assert!(PaygovProfile::from_json(&broken.to_string()).is_err());
    assert_eq!(
        PaygovProfile::from_json(&serde_json::to_string(&profile).unwrap()).unwrap(),
        profile
    );
}

#[test]
fn a_callback_verifies_however_its_query_is_escaped() {
    let v = vectors();
    let key = ring::hmac::Key::new(HMAC_SHA512, &secret(&v, "vnpay"));
    let case = &v["vnpay_urls"][1];
    let hash = case["php"]["hash"].as_str().unwrap();
    let q = query_of(&pairs(&case["params"]), hash);
    assert!(vnpay::verify(&q, &key).is_ok());
    // The same fields escaped in lower-case hex, spaces as %20, and in another order.
    let lower = q
        .split('&')
        .rev()
        .map(|p| {
            let mut out = String::new();
            let mut chars = p.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '%' {
                    let h: String = chars.by_ref().take(2).collect();
                    out.push('%');
                    out.push_str(&h.to_lowercase());
                } else if c == '+' {
                    out.push_str("%20");
                } else {
                    out.push(c);
                }
            }
            out
        })
        .collect::<Vec<_>>()
        .join("&");
    assert_ne!(lower, q);
    assert!(vnpay::verify(&lower, &key).is_ok(), "{lower}");
    // And a tampered one fails both ways.
    let tampered = lower.replace("vnp_Amount=20000000", "vnp_Amount=20000100");
    assert_eq!(
        vnpay::verify(&tampered, &key).err(),
        Some(CallbackError::BadSignature)
    );
}
