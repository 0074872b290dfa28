//! Payment providers behind [`motcua_ports::payments::PaymentProvider`]: [`vnpay`] (API
//! 2.1.0), [`momo`] (AIO v2) and [`paygov`] (the national platform, configured), their
//! signatures ([`sig`]), and a [`simulator`] of all three on loopback for the runner and
//! the tests.

pub mod momo;
pub mod paygov;
pub mod sig;
pub mod simulator;
pub mod vnpay;

use std::time::Duration;

/// One HTTP client for a provider: short timeouts (a payer waits on `checkout`; the
/// reconciliation job asks again next time).
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default()
}

/// A transport error in words without the URL (which may carry a key or an address).
pub(crate) fn transport(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        "transport error".into()
    }
}
