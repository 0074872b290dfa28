//! motcua-bench-uploads: what issuing upload slots costs, and how many 1 MiB files the
//! embedded backend takes from slot to `verified` per second.
//!
//! ```text
//! cargo build --profile runner -p motcua-local -p motcua-bench --bins
//! target/runner/motcua-bench-uploads [--seconds 5] [--clients 16] [--scanner none|clamd:HOST:PORT]
//! ```
//!
//! 1. In process, on one thread: the slot rules and the presigned PUT (S3's SigV4, and
//!    the local folder's HMAC), per slot.
//! 2. In process, on one runtime thread: `POST /v1/uploads` through the function's router
//!    on the SQLite store (token check, idempotency, hourly limit, catalogue, record).
//! 3. End to end over HTTP against a `motcua-local` started here: slot, PUT of 1 MiB to
//!    the presigned URL, verification (magic bytes, SHA-256, scan), `verified` seen.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::body::Body;
use axum::http::Request;
use motcua_domain::upload::{SlotRequest, UploadRules};
use motcua_ports::uploads::{ObjectStore, PutConditions};
use tower::ServiceExt;

struct Options {
    seconds: u64,
    clients: usize,
    scanner: String,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        seconds: 5,
        clients: 16,
        scanner: "none".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().context("flag needs a value")?;
        match flag.as_str() {
            "--seconds" => o.seconds = v.parse()?,
            "--clients" => o.clients = v.parse()?,
            "--scanner" => o.scanner = v,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    Ok(o)
}

fn slot_request(i: u64) -> SlotRequest {
    SlotRequest {
        file_name: format!("Tờ khai {i}.pdf"),
        content_type: "application/pdf".into(),
        size: 1_048_576,
        sha256: "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".into(),
        procedure_code: None,
        document_code: None,
    }
}

async fn presign_rate(objects: &dyn ObjectStore, seconds: u64) -> f64 {
    let rules = UploadRules::default();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(seconds) {
        for _ in 0..256 {
            let req = slot_request(n);
            let d = rules.check(&req).expect("valid");
            let key = format!("quarantine/{}", uuid::Uuid::new_v4());
            let p = objects
                .presign_put(
                    &key,
                    &PutConditions {
                        content_type: d.kind.mime().into(),
                        size: d.size,
                        sha256: d.sha256.to_base64(),
                        expires_in: Duration::from_secs(300),
                    },
                )
                .await
                .expect("presigned");
            std::hint::black_box(p);
            n += 1;
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() -> anyhow::Result<()> {
    let o = options()?;
    // One thread: the per-core figure.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(in_process(&o))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(end_to_end(&o))
}

async fn in_process(o: &Options) -> anyhow::Result<()> {
    // S3's presign needs credentials and a region, no network.
    let conf = aws_config::SdkConfig::builder()
        .region(aws_config::Region::new("ap-southeast-1"))
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new(
                    "AKIDEXAMPLE",
                    "secret",
                    None,
                    None,
                    "bench",
                ),
            ),
        )
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    let s3 = motcua_aws::s3::S3Objects::new(&conf, "motcua-bench-files")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let dir = std::env::temp_dir().join(format!("motcua-bench-uploads-{}", uuid::Uuid::now_v7()));
    let local = motcua_embedded::LocalObjects::new(&dir, "http://127.0.0.1:3000", &[7; 32])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let r = presign_rate(&s3, o.seconds).await;
    println!("slot rules + S3 SigV4 presigned PUT      {r:>10.0} slots/s (1 thread)");
    let r = presign_rate(&local, o.seconds).await;
    println!("slot rules + local HMAC presigned PUT    {r:>10.0} slots/s (1 thread)");

    // The whole route on the SQLite store.
    let store = motcua_embedded::EmbeddedStore::open(&dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let ports = store.submission_ports();
    for p in motcua_domain::catalogue::demo_catalogue() {
        ports
            .catalogue
            .put_procedure(&p)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let secret = "bW90Y3VhLWJlbmNoLXNlY3JldC1vZi0zMi1ieXRlcyEh";
    let auth = motcua_http::Authenticator::new(
        "motcua",
        "motcua",
        &motcua_http::config::jwt_secrets(Some(secret.into()))
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let now = jiff::Timestamp::now().as_second();
    let tokens: Vec<String> = (0..64)
        .map(|i| {
            auth.mint(
                &format!("bench-{i}"),
                motcua_domain::Role::Citizen,
                None,
                now,
                3600,
            )
        })
        .collect();
    let config = motcua_uploads::UploadsConfig::from_lookup(|k| match k {
        "MOTCUA_SCANNER" => Some("none".into()),
        "MOTCUA_UPLOAD_SLOTS_PER_HOUR" => Some("1000000000".into()),
        _ => None,
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let state = motcua_uploads::UploadsState {
        ports,
        objects: Arc::new(s3),
        scanner: Arc::new(motcua_ports::uploads::NoScanner),
        auth: Arc::new(auth),
        clock: Arc::new(motcua_http::SystemClock::default()),
        config: Arc::new(config),
    };
    let router = motcua_uploads::routes(state);
    let body = serde_json::json!({"file_name": "scan.pdf", "content_type": "application/pdf",
        "size": 1_048_576, "sha256": "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        "procedure_code": "2.000505", "document_code": "to-khai"})
    .to_string();
    let start = Instant::now();
    let deadline = Duration::from_secs(o.seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for token in tokens {
        let (router, body) = (router.clone(), body.clone());
        tasks.spawn(async move {
            let mut n = 0u64;
            while start.elapsed() < deadline {
                let req = Request::post("/v1/uploads")
                    .header("authorization", format!("Bearer {token}"))
                    .header("content-type", "application/json")
                    .body(Body::from(body.clone()))
                    .expect("request");
                let resp = router.clone().oneshot(req).await.expect("answer");
                assert_eq!(resp.status(), 201);
                n += 1;
            }
            n
        });
    }
    let n: u64 = tasks.join_all().await.into_iter().sum();
    println!(
        "POST /v1/uploads, SQLite, 64 concurrent {:>10.0} slots/s (1 runtime thread + the SQLite writer)",
        n as f64 / start.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn end_to_end(o: &Options) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?.with_file_name("motcua-local");
    let dir = std::env::temp_dir().join(format!("motcua-bench-e2e-{}", uuid::Uuid::now_v7()));
    let mut child = std::process::Command::new(&exe)
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(&dir)
        .env("MOTCUA_SCANNER", &o.scanner)
        .env("MOTCUA_UPLOAD_SLOTS_PER_HOUR", "1000000000")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(
        child.stdout.take().context("stdout")?,
    ));
    let base = loop {
        let line = lines.next().context("the runner stopped")??;
        if let Some(url) = line.strip_prefix("motcua-local listening on ") {
            break url.trim().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let token = |sub: &str| -> anyhow::Result<String> {
        let out = std::process::Command::new(&exe)
            .args(["token", "--role", "citizen", "--sub", sub, "--data-dir"])
            .arg(&dir)
            .output()?;
        Ok(String::from_utf8(out.stdout)?.trim().to_owned())
    };
    let file: Arc<Vec<u8>> = Arc::new({
        let mut f = b"%PDF-1.7\n".to_vec();
        f.resize(1_048_576 - 6, b'x');
        f.extend_from_slice(b"\n%%EOF");
        f
    });
    let sha = motcua_tests::sha256_b64(&file);
    let http = reqwest::Client::new();
    let start = Instant::now();
    let deadline = Duration::from_secs(o.seconds);
    let mut tasks = tokio::task::JoinSet::new();
    let mut latencies = Vec::new();
    for c in 0..o.clients {
        let (http, base, file, sha) = (http.clone(), base.clone(), file.clone(), sha.clone());
        let token = token(&format!("bench-e2e-{c}"))?;
        tasks.spawn(async move {
            let mut done = Vec::new();
            while start.elapsed() < deadline {
                let t = Instant::now();
                let slot: serde_json::Value = http
                    .post(format!("{base}/v1/uploads"))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({"file_name": "scan.pdf",
                        "content_type": "application/pdf", "size": file.len(), "sha256": sha}))
                    .send()
                    .await?
                    .json()
                    .await?;
                let put = &slot["upload_request"];
                let mut req = http.put(put["url"].as_str().context("url")?);
                for (k, v) in put["headers"].as_object().context("headers")? {
                    req = req.header(k, v.as_str().unwrap_or_default());
                }
                let sent = req.body(file.as_ref().clone()).send().await?;
                anyhow::ensure!(sent.status().is_success(), "PUT {}", sent.status());
                let id = slot["id"].as_str().context("id")?.to_owned();
                loop {
                    let v: serde_json::Value = http
                        .get(format!("{base}/v1/uploads/{id}"))
                        .bearer_auth(&token)
                        .send()
                        .await?
                        .json()
                        .await?;
                    match v["status"].as_str() {
                        Some("verified") => break,
                        Some("awaiting_file") => tokio::time::sleep(Duration::from_millis(2)).await,
                        other => anyhow::bail!("upload ended {other:?}"),
                    }
                }
                done.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(done)
        });
    }
    for r in tasks.join_all().await {
        latencies.extend(r?);
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort();
    let pct =
        |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize].as_secs_f64() * 1000.0;
    println!(
        "1 MiB uploads verified end to end         {:>10.1} files/s ({:.1} MiB/s), {} clients, scanner {}: p50 {:.1} ms, p99 {:.1} ms",
        latencies.len() as f64 / elapsed,
        latencies.len() as f64 / elapsed,
        o.clients,
        o.scanner,
        pct(0.5),
        pct(0.99)
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
