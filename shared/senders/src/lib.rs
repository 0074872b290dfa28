//! Senders that speak HTTP: a brandname-SMS gateway ([`gateway`]) and Zalo ZNS
//! ([`zalo`]), each behind the [`motcua_ports::notifications::Sender`] port, and a
//! [`simulator`] that plays both on loopback (error answers, lost answers and delivery
//! receipts included) for the runner and the tests.

pub mod gateway;
pub mod simulator;
pub mod zalo;

use std::time::Duration;

/// One HTTP client for a provider: short timeouts (a status message can wait for the next
/// attempt; a Lambda invocation cannot wait for a hung provider).
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default()
}

/// HMAC-SHA256 of `body` under `secret`, hex: how the gateway signs its receipts.
pub fn receipt_signature(secret: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    hex::encode(ring::hmac::sign(&key, body).as_ref())
}

/// Whether `signature` (hex) is the receipt signature of `body`, compared in constant time.
pub fn receipt_signed(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let Ok(tag) = hex::decode(signature.trim()) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    ring::hmac::verify(&key, body, &tag).is_ok()
}
