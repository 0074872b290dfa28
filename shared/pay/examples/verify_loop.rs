//! A VNPay IPN verified and read in a loop, for a profiler:
//! `cargo build --profile bench -p motcua-pay --example verify_loop && perf record target/bench/examples/verify_loop`.

use motcua_pay::sig::{Encoding, form_encode};
use motcua_pay::vnpay::{self, Vnpay, VnpayConfig};
use motcua_ports::payments::{CallbackRequest, PaymentProvider};

fn main() {
    let secret = b"bench-vnpay-secret".to_vec();
    let fields: Vec<(&str, String)> = vec![
        ("vnp_Amount", "20000000".into()),
        ("vnp_BankCode", "NCB".into()),
        ("vnp_BankTranNo", "VNP14226112".into()),
        ("vnp_CardType", "ATM".into()),
        (
            "vnp_OrderInfo",
            "Le phi ho so 000.00.04.H42-261201-0042".into(),
        ),
        ("vnp_PayDate", "20261201103512".into()),
        ("vnp_ResponseCode", "00".into()),
        ("vnp_TmnCode", "MOTCUA01".into()),
        ("vnp_TransactionNo", "14226112".into()),
        ("vnp_TransactionStatus", "00".into()),
        ("vnp_TxnRef", "0190d5f1c2a87b3e9c1d2e3f4a5b6c7d".into()),
    ];
    let hash = vnpay::sign(&secret, &fields);
    let mut q: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{k}={}", form_encode(v, Encoding::Php)))
        .collect();
    q.push(format!("vnp_SecureHash={hash}"));
    let query = q.join("&");
    let adapter = Vnpay::new(VnpayConfig {
        tmn_code: "MOTCUA01".into(),
        hash_secret: secret,
        pay_url: "http://127.0.0.1:1/pay".into(),
        api_url: "http://127.0.0.1:1/api".into(),
        server_ip: "127.0.0.1".into(),
    });
    let n = 2_000_000;
    let started = std::time::Instant::now();
    let mut ok = 0;
    for _ in 0..n {
        ok += usize::from(
            adapter
                .verify_callback(&CallbackRequest {
                    query: std::hint::black_box(&query),
                    body: b"",
                })
                .is_ok(),
        );
    }
    assert_eq!(ok, n);
    println!("{:.0}/s", n as f64 / started.elapsed().as_secs_f64());
}
