//! motcua-bench-payments: what verifying a provider's callback costs, and how many
//! callbacks the runner applies per second.
//!
//! ```text
//! cargo build --profile runner -p motcua-local -p motcua-bench --bins
//! target/runner/motcua-bench-payments [--payments 2000] [--concurrency 64]
//! ```
//!
//! 1. In process, one thread: VNPay's IPN (a typical one, 11 signed fields) verified and
//!    read as the callback route does (parse, sort, encode, HMAC-SHA512, constant-time
//!    compare), against the bare HMAC-SHA512 of its signed data; MoMo's and the platform's
//!    callbacks the same way.
//! 2. Through the runner (a child process, embedded backend): `--payments` dossiers owing
//!    their fee are written to its data directory first; then over HTTP each payment is
//!    started (VNPay), its signed IPN sent (`--concurrency` at a time), and sent again (the
//!    duplicates a provider's retries make).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use motcua_domain::payment::Provider;
use motcua_pay::momo::{self, IPN_FIELDS};
use motcua_pay::paygov::{Paygov, PaygovConfig, PaygovProfile};
use motcua_pay::sig::{Encoding, HMAC_SHA512, form_encode};
use motcua_pay::vnpay::{self, Vnpay, VnpayConfig};
use motcua_ports::payments::{CallbackRequest, PaymentProvider};
use serde_json::{Value, json};

struct Options {
    payments: usize,
    concurrency: usize,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        payments: 2000,
        concurrency: 64,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().context("flag needs a value")?;
        match flag.as_str() {
            "--payments" => o.payments = v.parse()?,
            "--concurrency" => o.concurrency = v.parse()?,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    Ok(o)
}

/// The signed query of a successful VNPay IPN for `txn_ref`.
fn vnpay_ipn(secret: &[u8], txn_ref: &str, amount: u64) -> String {
    let fields: Vec<(&str, String)> = vec![
        ("vnp_Amount", (amount * 100).to_string()),
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
        ("vnp_TxnRef", txn_ref.into()),
    ];
    let hash = vnpay::sign(secret, &fields);
    let mut q: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{k}={}", form_encode(v, Encoding::Php)))
        .collect();
    q.push(format!("vnp_SecureHash={hash}"));
    q.join("&")
}

fn per_second(n: usize, f: impl Fn() -> bool) -> f64 {
    let started = Instant::now();
    let mut ok = 0usize;
    for _ in 0..n {
        ok += usize::from(std::hint::black_box(f()));
    }
    assert_eq!(ok, n, "every callback verifies");
    n as f64 / started.elapsed().as_secs_f64()
}

fn in_process() {
    let secret = b"bench-vnpay-secret".to_vec();
    let adapter = Vnpay::new(VnpayConfig {
        tmn_code: "MOTCUA01".into(),
        hash_secret: secret.clone(),
        pay_url: "http://127.0.0.1:1/pay".into(),
        api_url: "http://127.0.0.1:1/api".into(),
        server_ip: "127.0.0.1".into(),
    });
    let query = vnpay_ipn(&secret, "0190d5f1c2a87b3e9c1d2e3f4a5b6c7d", 200_000);
    let n = 1_000_000;
    let vn = per_second(n, || {
        adapter
            .verify_callback(&CallbackRequest {
                query: &query,
                body: b"",
            })
            .is_ok()
    });
    let pairs = vnpay::verify(&query, &ring::hmac::Key::new(HMAC_SHA512, &secret)).unwrap();
    let data = vnpay::signed_data(&pairs, Encoding::Php);
    let key = ring::hmac::Key::new(HMAC_SHA512, &secret);
    let bare = per_second(n, || {
        !ring::hmac::sign(&key, data.as_bytes()).as_ref().is_empty()
    });
    println!(
        "VNPay IPN verified and read, one thread:   {vn:>10.0}/s ({} bytes)",
        query.len()
    );
    if std::env::var_os("MOTCUA_BENCH_STEPS").is_some() {
        let vkey = ring::hmac::Key::new(HMAC_SHA512, &secret);
        let a = per_second(n, || vnpay::verify(&query, &vkey).is_ok());
        let b = per_second(n, || motcua_pay::sig::form_pairs(&query, 40).is_some());
        let pairs = vnpay::verify(&query, &vkey).unwrap();
        let c = per_second(n, || vnpay::report_of(&pairs, "MOTCUA01").is_ok());
        let d = per_second(n, || vnpay::parse_vn_time("20261201103512").is_some());
        println!(
            "  steps: verify {a:.0}/s, form_pairs {b:.0}/s, report_of {c:.0}/s, parse_vn_time {d:.0}/s"
        );
    }
    println!(
        "bare HMAC-SHA512 of its signed data:        {bare:>10.0}/s ({} bytes)",
        data.len()
    );
    // MoMo.
    let momo_secret = b"bench-momo-secret";
    let mut ipn = json!({
        "partnerCode": "MOMO", "orderId": "0190d5f1c2a87b3e9c1d2e3f4a5b6c7d",
        "requestId": "0190d5f1c2a87b3e9c1d2e3f4a5b6c7d", "amount": 200000,
        "orderInfo": "Le phi ho so 000.00.04.H42-261201-0042", "orderType": "momo_wallet",
        "transId": 4088878653u64, "resultCode": 0, "message": "Thành công.", "payType": "qr",
        "responseTime": 1764559512000u64, "extraData": "",
    });
    ipn["signature"] = Value::String(momo::sign(momo_secret, &ipn, &IPN_FIELDS, "access"));
    let body = serde_json::to_vec(&ipn).unwrap();
    let mkey = ring::hmac::Key::new(motcua_pay::sig::HMAC_SHA256, momo_secret);
    let mo = per_second(n / 2, || {
        momo::verify_ipn(&body, &mkey, "access", "MOMO").is_ok()
    });
    println!(
        "MoMo IPN verified and read, one thread:     {mo:>10.0}/s ({} bytes)",
        body.len()
    );
    // The platform, example profile (SHA-256, secret last).
    let profile = PaygovProfile::example();
    let pg_secret = b"bench-paygov-secret".to_vec();
    let mut cb = json!({
        "MaDoiTac": "M", "MaThamChieu": "0190d5f1c2a87b3e9c1d2e3f4a5b6c7d", "SoTien": "200000",
        "MaLoi": "00", "MaGiaoDich": "PG1", "ThoiGian": "20261201103512",
    });
    cb["MaXacThuc"] = Value::String(profile.sign(&pg_secret, &cb, &profile.callback_signed));
    let pg_body = serde_json::to_vec(&cb).unwrap();
    let pg = Paygov::new(PaygovConfig {
        merchant: "M".into(),
        secret: pg_secret,
        pay_url: "http://127.0.0.1:1/pay".into(),
        query_url: "http://127.0.0.1:1/query".into(),
        profile,
    });
    let p = per_second(n / 2, || {
        pg.verify_callback(&CallbackRequest {
            query: "",
            body: &pg_body,
        })
        .is_ok()
    });
    println!(
        "platform callback verified and read:        {p:>10.0}/s ({} bytes)",
        pg_body.len()
    );
}

struct RunnerProcess {
    child: Child,
    url: String,
}

impl Drop for RunnerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_runner(dir: &std::path::Path, sim_secret: &str) -> anyhow::Result<RunnerProcess> {
    let bin = std::env::current_exe()?.with_file_name("motcua-local");
    let mut child = Command::new(&bin)
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(dir)
        .env("MOTCUA_PAYMENT_SIM_SECRET", sim_secret)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let out = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(out).lines();
    let url = loop {
        let line = lines.next().context("the runner stopped")??;
        if let Some(rest) = line.strip_prefix("motcua-local listening on ") {
            break rest.trim().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Ok(RunnerProcess { child, url })
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn fire(
    http: &reqwest::Client,
    urls: Vec<String>,
    concurrency: usize,
    want: &str,
) -> anyhow::Result<(f64, Vec<Duration>)> {
    let started = Instant::now();
    let chunks: Vec<Vec<String>> = urls
        .chunks(urls.len().div_ceil(concurrency).max(1))
        .map(|c| c.to_vec())
        .collect();
    let mut tasks = Vec::new();
    for chunk in chunks {
        let (http, want) = (http.clone(), want.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(chunk.len());
            for url in chunk {
                let t = Instant::now();
                let v: Value = http.get(&url).send().await?.json().await?;
                lat.push(t.elapsed());
                anyhow::ensure!(v["RspCode"] == want.as_str(), "{v}");
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    all.sort();
    Ok((rate, all))
}

async fn through_the_runner(o: &Options) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("motcua-bench-pay-{}", uuid::Uuid::now_v7()));
    let sim_secret = "bench-payment-sim-secret";
    // The dossiers, written to the runner's data directory before it starts.
    let mut dossiers = Vec::with_capacity(o.payments);
    {
        let store = motcua_embedded::EmbeddedStore::open(&dir)?;
        let ports = store.submission_ports();
        let now = jiff::Timestamp::now();
        for i in 0..o.payments {
            let (d, h, e) = motcua_ports::contract::sample("bench-payer", 10_000 + i as u32, now);
            ports.dossiers.create(&d, &h, &e).await?;
            dossiers.push(d.id);
        }
    }
    let runner = start_runner(&dir, sim_secret)?;
    let bin = std::env::current_exe()?.with_file_name("motcua-local");
    let token = String::from_utf8(
        Command::new(&bin)
            .args([
                "token",
                "--role",
                "citizen",
                "--sub",
                "bench-payer",
                "--data-dir",
            ])
            .arg(&dir)
            .output()?
            .stdout,
    )?
    .trim()
    .to_owned();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(o.concurrency)
        .build()?;
    // Start every payment.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for chunk in dossiers.chunks(dossiers.len().div_ceil(o.concurrency).max(1)) {
        let (http, token, url, chunk) = (
            http.clone(),
            token.clone(),
            runner.url.clone(),
            chunk.to_vec(),
        );
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for d in chunk {
                let r = http
                    .post(format!("{url}/v1/dossiers/{d}/payments"))
                    .bearer_auth(&token)
                    .json(&json!({"provider": Provider::Vnpay}))
                    .send()
                    .await?;
                anyhow::ensure!(r.status() == 201, "start: {}", r.status());
                let v: Value = r.json().await?;
                ids.push(v["id"].as_str().context("id")?.replace('-', ""));
            }
            Ok::<_, anyhow::Error>(ids)
        }));
    }
    let mut refs = Vec::new();
    for t in tasks {
        refs.extend(t.await??);
    }
    let start_rate = refs.len() as f64 / started.elapsed().as_secs_f64();
    println!(
        "payments started through the runner:       {start_rate:>10.0}/s ({} payments, {} at a time)",
        refs.len(),
        o.concurrency
    );
    let secret = format!("vnpay-{sim_secret}");
    let urls: Vec<String> = refs
        .iter()
        .map(|r| {
            format!(
                "{}/v1/payments/vnpay/ipn?{}",
                runner.url,
                vnpay_ipn(secret.as_bytes(), r, 200_000)
            )
        })
        .collect();
    let (rate, lat) = fire(&http, urls.clone(), o.concurrency, "00").await?;
    println!(
        "IPNs applied through the runner:            {rate:>10.0}/s (p50 {:.1} ms, p99 {:.1} ms; each: verify, payment + dossier + history + event in one write)",
        pct(&lat, 0.5),
        pct(&lat, 0.99)
    );
    let (rate, lat) = fire(&http, urls, o.concurrency, "02").await?;
    println!(
        "the same IPNs again (duplicates):           {rate:>10.0}/s (p50 {:.1} ms, p99 {:.1} ms; RspCode 02, nothing written)",
        pct(&lat, 0.5),
        pct(&lat, 0.99)
    );
    // Every fee paid once.
    let store = motcua_embedded::EmbeddedStore::open(&dir)?;
    let ports = store.submission_ports();
    for d in &dossiers {
        let stored = ports.dossiers.get(*d).await?.context("dossier")?;
        anyhow::ensure!(
            stored.fees.len() == 1,
            "dossier {d} paid {} times",
            stored.fees.len()
        );
    }
    println!(
        "checked: each of the {} dossiers paid exactly once",
        dossiers.len()
    );
    drop(runner);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let o = options()?;
    in_process();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(through_the_runner(&o))
}
