//! motcua-cold-start: the cold start of every function binary as Lambda runs it, beside a
//! bare `lambda_runtime` hello-world (the floor) and a Python 3.11 boto3 function (the
//! reference any Lambda user knows), in the same run.
//!
//! ```text
//! cargo build --release -p motcua-local -p motcua-submission -p motcua-identity \
//!     -p motcua-relay -p motcua-bench --bins
//! target/release/motcua-cold-start [--runs 20]
//! ```
//! Needs LocalStack (started if it is not running: `infra/localstack/start.sh`). Each run
//! starts the binary with `AWS_LAMBDA_RUNTIME_API` pointing at a Runtime API on loopback,
//! with the function's real configuration (SDK clients, keys and secrets read from
//! Secrets Manager on LocalStack), and measures wall time from exec to its first
//! `GET /runtime/invocation/next` (init) and to its first answer (first invocation), and
//! its resident memory once the answer is posted. Medians over the runs are printed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use motcua_tests::lambda::{LambdaHarness, Outcome, function_binary};
use serde_json::{Value, json};

struct Subject {
    name: &'static str,
    program: PathBuf,
    env: Vec<(&'static str, String)>,
    event: Value,
}

#[derive(Default)]
struct Figures {
    init_ms: Vec<f64>,
    first_ms: Vec<f64>,
    rss_mb: Vec<f64>,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn event(path: &str) -> anyhow::Result<Value> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(path);
    Ok(serde_json::from_str(
        &std::fs::read_to_string(&file).with_context(|| file.display().to_string())?,
    )?)
}

fn http_get(path: &str) -> anyhow::Result<Value> {
    let mut e = event("apigw/get-procedures.json")?;
    e["rawPath"] = json!(path);
    e["requestContext"]["http"]["path"] = json!(path);
    e["routeKey"] = json!(format!("GET {path}"));
    Ok(e)
}

async fn measure(s: &Subject, runs: usize) -> anyhow::Result<Figures> {
    let mut f = Figures::default();
    let env: Vec<(&str, &str)> = s.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for _ in 0..runs {
        let h = LambdaHarness::start(&s.program, &env).await?;
        let outcome = h
            .invoke(s.event.clone(), Duration::from_secs(60))
            .await
            .with_context(|| s.name)?;
        let answered = Instant::now();
        match &outcome {
            Outcome::Response(v) if v["statusCode"].as_u64().is_none_or(|c| c < 400) => {}
            other => bail!("{}: {other:?}", s.name),
        }
        let spawned = h.spawned_at();
        let init = h.first_poll_at().context("never polled")? - spawned;
        f.init_ms.push(init.as_secs_f64() * 1e3);
        f.first_ms.push((answered - spawned).as_secs_f64() * 1e3);
        // Idle after its first invocation, as Lambda keeps it until the next.
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Some(rss) = h.rss_bytes() {
            f.rss_mb.push(rss as f64 / 1e6);
        }
    }
    Ok(f)
}

/// A new secret on LocalStack: its ARN and the version holding `value`.
async fn secret(
    client: &aws_sdk_secretsmanager::Client,
    name: &str,
    value: &str,
) -> anyhow::Result<(String, String)> {
    let out = client
        .create_secret()
        .name(format!(
            "motcua-bench/{name}-{}",
            uuid::Uuid::now_v7().simple()
        ))
        .secret_string(value)
        .send()
        .await?;
    Ok((
        out.arn.context("no ARN")?,
        out.version_id.context("no version")?,
    ))
}

/// What a run created on LocalStack, removed at the end.
#[derive(Default)]
struct Created {
    table: String,
    bus: String,
    secrets: Vec<String>,
    kms_key: String,
    wrapper: PathBuf,
}

async fn clean_up(c: &Created) {
    let conf = motcua_aws::localstack::config().await;
    let _ = motcua_aws::aws_sdk_dynamodb::Client::new(&conf)
        .delete_table()
        .table_name(&c.table)
        .send()
        .await;
    let _ = motcua_aws::aws_sdk_eventbridge::Client::new(&conf)
        .delete_event_bus()
        .name(&c.bus)
        .send()
        .await;
    let secrets = aws_sdk_secretsmanager::Client::new(&conf);
    for arn in &c.secrets {
        let _ = secrets
            .delete_secret()
            .secret_id(arn)
            .force_delete_without_recovery(true)
            .send()
            .await;
    }
    let _ = motcua_aws::aws_sdk_kms::Client::new(&conf)
        .schedule_key_deletion()
        .key_id(&c.kms_key)
        .pending_window_in_days(7)
        .send()
        .await;
    let _ = std::fs::remove_file(&c.wrapper);
}

async fn subjects() -> anyhow::Result<(Vec<Subject>, Created)> {
    use base64::Engine;
    motcua_aws::localstack::ensure_running().map_err(anyhow::Error::msg)?;
    let conf = motcua_aws::localstack::config().await;
    let suffix = uuid::Uuid::now_v7().simple().to_string();
    let table = format!("motcua-bench-{suffix}");
    let store = motcua_aws::DynamoStore::new(
        motcua_aws::aws_sdk_dynamodb::Client::new(&conf),
        table.as_str(),
    );
    store.ensure_table().await?;
    for p in motcua_domain::catalogue::demo_catalogue() {
        motcua_ports::Catalogue::put_procedure(&store, &p)
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    let bus = format!("motcua-bench-{suffix}");
    motcua_aws::events::EventBridgePublisher::new(
        motcua_aws::aws_sdk_eventbridge::Client::new(&conf),
        bus.as_str(),
    )
    .ensure_bus()
    .await?;
    let secrets = aws_sdk_secretsmanager::Client::new(&conf);
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let key = motcua_http::SigningKey::generate("k-bench");
    let keys_json = motcua_http::signing_keys_to_json(std::slice::from_ref(&key));
    let (signing, signing_version) = secret(&secrets, "signing", &keys_json).await?;
    let (id_hash, _) = secret(&secrets, "id-hash", &b64(&[3u8; 32])).await?;
    let (registry_key, _) = secret(&secrets, "registry", "bench-key").await?;
    let kms = motcua_aws::aws_sdk_kms::Client::new(&conf)
        .create_key()
        .send()
        .await?
        .key_metadata
        .context("no key")?
        .key_id;
    let aws = vec![
        ("AWS_ENDPOINT_URL", motcua_aws::localstack::endpoint()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("AWS_SESSION_TOKEN", "bench".to_owned()),
    ]
    .into_iter()
    .chain(
        std::env::var("MOTCUA_BENCH_SSL_CERT_FILE")
            .ok()
            .map(|f| ("SSL_CERT_FILE", f)),
    )
    .collect::<Vec<_>>();
    let with = |extra: Vec<(&'static str, String)>| {
        let mut v = aws.clone();
        v.extend(extra);
        v
    };
    let tables = [
        ("MOTCUA_BACKEND", "aws".to_owned()),
        ("MOTCUA_TABLE", table.clone()),
        ("MOTCUA_IDENTITY_TABLE", table.clone()),
    ];
    let verify_keys = motcua_http::signing_keys_to_json(std::slice::from_ref(&key));
    let python = python_wrapper()?;
    let mut out = vec![
        Subject {
            name: "hello-world (floor)",
            program: function_binary("hello-lambda")?,
            env: vec![],
            event: event("apigw/get-procedures.json")?,
        },
        Subject {
            name: "python 3.11 + boto3",
            program: python.clone(),
            env: with(vec![("MOTCUA_TABLE", table.clone())]),
            event: event("apigw/get-procedures.json")?,
        },
        Subject {
            name: "submission",
            program: function_binary("submission")?,
            env: with(
                tables
                    .iter()
                    .cloned()
                    .chain([("MOTCUA_VERIFY_KEYS", verify_keys.clone())])
                    .collect(),
            ),
            event: event("apigw/get-procedures.json")?,
        },
        Subject {
            name: "identity",
            program: function_binary("identity")?,
            env: with(
                tables
                    .iter()
                    .cloned()
                    .chain([
                        ("MOTCUA_ID_HASH_KEY_SECRET", id_hash.clone()),
                        ("MOTCUA_REGISTRY_API_KEY_SECRET", registry_key.clone()),
                        ("MOTCUA_SIGNING_KEYS_SECRET", signing.clone()),
                        ("MOTCUA_KMS_KEY_ID", kms.clone()),
                        ("MOTCUA_REGISTRY_URL", "http://127.0.0.1:9".to_owned()),
                        ("MOTCUA_JWT_ISSUER", "https://id.example.test".to_owned()),
                    ])
                    .collect(),
            ),
            event: http_get("/.well-known/jwks.json")?,
        },
        Subject {
            name: "relay",
            program: function_binary("relay")?,
            env: with(vec![
                ("MOTCUA_TABLE", table.clone()),
                ("MOTCUA_EVENT_BUS", bus.clone()),
            ]),
            event: event("dynamodb/outbox-insert.json")?,
        },
        Subject {
            name: "outbox-sweeper",
            program: function_binary("outbox-sweeper")?,
            env: with(vec![
                ("MOTCUA_TABLE", table.clone()),
                ("MOTCUA_EVENT_BUS", bus.clone()),
            ]),
            event: json!({"version": "0", "id": "89d1a02d-5ec7-412e-82f5-13505f849b41",
                "detail-type": "Scheduled Event", "source": "aws.events", "account": "123456789012",
                "time": "2026-11-30T12:00:00Z", "region": "us-east-1", "resources": [], "detail": {}}),
        },
        Subject {
            name: "rotate-signing-keys",
            program: function_binary("rotate-signing-keys")?,
            env: aws.clone(),
            // A retried finishSecret of the version already current: describes the
            // secret and is done (every run may repeat it).
            event: json!({"SecretId": signing.clone(), "ClientRequestToken": signing_version, "Step": "finishSecret"}),
        },
    ];
    out.retain(|s| s.program.exists());
    let created = Created {
        table,
        bus,
        secrets: vec![signing, id_hash, registry_key],
        kms_key: kms,
        wrapper: python,
    };
    Ok((out, created))
}

/// The Python function as an executable: the LocalStack venv's Python 3.11 (boto3 is
/// there) running `bench/python/boto3_bootstrap.py`, through a one-line `sh` wrapper.
fn python_wrapper() -> anyhow::Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()?;
    let python = root.join(".localstack/venv/bin/python3");
    if !python.exists() {
        bail!(
            "{} is missing: run infra/localstack/install.sh",
            python.display()
        );
    }
    let script = root.join("bench/python/boto3_bootstrap.py");
    let wrapper = std::env::temp_dir().join(format!("motcua-boto3-{}.sh", std::process::id()));
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec '{}' '{}'\n",
            python.display(),
            script.display()
        ),
    )?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))?;
    Ok(wrapper)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let runs = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(20usize);
    let (subjects, created) = subjects().await?;
    let result = run(&subjects, runs).await;
    clean_up(&created).await;
    result
}

async fn run(subjects: &[Subject], runs: usize) -> anyhow::Result<()> {
    // One unmeasured start each first: page cache and LocalStack warm, as on a busy
    // account. Then the subjects take turns, run by run, so a slow moment of the machine
    // does not land on one of them.
    for s in subjects {
        measure(s, 1).await?;
    }
    let mut figures: Vec<Figures> = subjects.iter().map(|_| Figures::default()).collect();
    for _ in 0..runs {
        for (s, f) in subjects.iter().zip(figures.iter_mut()) {
            let one = measure(s, 1).await?;
            f.init_ms.extend(one.init_ms);
            f.first_ms.extend(one.first_ms);
            f.rss_mb.extend(one.rss_mb);
        }
    }
    let rows: Vec<_> = subjects
        .iter()
        .zip(&figures)
        .map(|(s, f)| {
            let m = |v: &[f64]| median(v);
            (s.name, m(&f.init_ms), m(&f.first_ms), m(&f.rss_mb))
        })
        .collect();
    let floor = rows.iter().find(|r| r.0.starts_with("hello")).map(|r| r.1);
    let python = rows.iter().find(|r| r.0.starts_with("python")).map(|r| r.1);
    println!(
        "cold start, median of {runs} runs (release x86_64, Runtime API and LocalStack on loopback)"
    );
    println!(
        "{:<22} {:>10} {:>14} {:>10} {:>9} {:>11}",
        "function", "init ms", "1st answer ms", "idle RSS", "÷ floor", "boto3 ÷ it"
    );
    for (name, init, first, rss) in rows {
        println!(
            "{name:<22} {init:>10.2} {first:>14.2} {:>7.1} MB {:>9.2} {:>11.1}",
            rss,
            floor.map_or(f64::NAN, |f| init / f),
            python.map_or(f64::NAN, |p| p / init),
        );
    }
    Ok(())
}
