//! motcua-bench: drives a real `motcua-local` over HTTP and prints throughput and latency.
//!
//! ```text
//! cargo build --profile runner -p motcua-local -p motcua-bench --bins
//! target/runner/motcua-bench [--connections 64] [--seconds 10] [--client-threads 1]
//!                             [--backend embedded|aws]
//! ```
//! `--backend aws` needs LocalStack running (`infra/localstack/start.sh`);
//! `--tokens-only` measures only the in-process token validations.
//! Starts the release runner on a free port with a fresh data directory (embedded backend),
//! then runs phases at N concurrent keep-alive connections: submissions
//! (`POST /v1/dossiers`), dossier reads (`GET /v1/dossiers/{id}`), registry matches that
//! send a sign-in code (`POST /v1/identity/citizens/verify`, 202); then whole sign-ins by
//! code (verify, the SMS the runner keeps, confirm), one connection per fixture person;
//! then whole sign-ins with the national e-ID simulator (login, authorize, callback,
//! exchange), 16 at a time.

mod limits;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

struct Options {
    connections: usize,
    seconds: u64,
    client_threads: usize,
    /// `embedded` (default) or `aws` (LocalStack at AWS_ENDPOINT_URL, default 127.0.0.1:4566).
    backend: String,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        connections: 64,
        seconds: 10,
        client_threads: 1,
        backend: "embedded".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().context("flag needs a value")?;
        match flag.as_str() {
            "--connections" => o.connections = v.parse()?,
            "--seconds" => o.seconds = v.parse()?,
            "--client-threads" => o.client_threads = v.parse()?,
            "--backend" if v == "embedded" || v == "aws" => o.backend = v,
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(o)
}

fn runner_path() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.with_file_name("motcua-local")
}

struct Phase {
    name: &'static str,
    ok: usize,
    errors: usize,
    elapsed: Duration,
    latencies_us: Vec<u32>,
}

impl Phase {
    fn pct(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        f64::from(self.latencies_us[i]) / 1000.0
    }
    fn print(&self) {
        println!(
            "{:<12} {:>10.0} req/s  ok {:>8}  errors {:>5}  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms",
            self.name,
            self.ok as f64 / self.elapsed.as_secs_f64(),
            self.ok,
            self.errors,
            self.pct(0.50),
            self.pct(0.99),
            self.pct(1.0),
        );
    }
}

type Maker = Arc<dyn Fn(usize, u64) -> Request<Full<Bytes>> + Send + Sync>;

async fn worker(
    addr: String,
    make: Maker,
    worker_id: usize,
    stop: Arc<AtomicBool>,
    expect: u16,
) -> anyhow::Result<(usize, usize, Vec<u32>, Vec<Bytes>)> {
    let mut sender = connect(&addr).await?;
    let (mut ok, mut errors) = (0, 0);
    let mut lat = Vec::with_capacity(1 << 16);
    let mut bodies = Vec::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        sender.ready().await?;
        let req = make(worker_id, n);
        n += 1;
        let t = Instant::now();
        let resp = sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        let us = t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        if status == expect {
            ok += 1;
            lat.push(us);
            if bodies.len() < 64 {
                bodies.push(body);
            }
        } else {
            errors += 1;
            if errors <= 3 {
                eprintln!("unexpected {status}: {}", String::from_utf8_lossy(&body));
            }
        }
    }
    Ok((ok, errors, lat, bodies))
}

async fn phase(
    name: &'static str,
    addr: &str,
    o: &Options,
    make: Maker,
    expect: u16,
) -> anyhow::Result<(Phase, Vec<Bytes>)> {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..o.connections {
        tasks.push(tokio::spawn(worker(
            addr.to_owned(),
            make.clone(),
            w,
            stop.clone(),
            expect,
        )));
    }
    tokio::time::sleep(Duration::from_secs(o.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut p = Phase {
        name,
        ok: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
    };
    let mut bodies = Vec::new();
    for t in tasks {
        let (ok, errors, lat, b) = t.await??;
        p.ok += ok;
        p.errors += errors;
        p.latencies_us.extend(lat);
        bodies.extend(b);
    }
    p.elapsed = start.elapsed();
    p.latencies_us.sort_unstable();
    Ok((p, bodies))
}

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--tokens-only") {
        token_validations();
        return Ok(());
    }
    let o = options()?;
    let runner = runner_path();
    if !runner.exists() {
        bail!(
            "{} not found: cargo build --profile runner -p motcua-local -p motcua-bench --bins",
            runner.display()
        );
    }
    let dir = std::env::temp_dir().join(format!("motcua-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cmd = Command::new(&runner);
    cmd.args([
        "serve",
        "--port",
        "0",
        "--backend",
        &o.backend,
        "--data-dir",
    ])
    .arg(&dir)
    .env("RUST_LOG", "warn")
    // The bench signs the same few people in over and over from one address.
    .env("MOTCUA_CODE_SENDS", "1000000000")
    .env("MOTCUA_CODE_SENDS_PER_CLIENT", "1000000000")
    .env("MOTCUA_LOGINS_PER_CLIENT", "1000000000")
    // Attempts are reserved while in flight: 64 concurrent sign-ins of five people from
    // one address would otherwise be refused as a burst (which is what limits are for).
    .env("MOTCUA_LOCKOUT_FAILURES", "1000000000")
    .stdout(Stdio::piped());
    if o.backend == "aws" {
        let endpoint =
            std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:4566".into());
        cmd.env("AWS_ENDPOINT_URL", endpoint)
            .env(
                "MOTCUA_TABLE",
                format!("motcua-bench-{}", std::process::id()),
            )
            .env("MOTCUA_EVENT_BUS", "motcua-bench");
    }
    let mut child = cmd.spawn()?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let first = lines.next().context("runner printed nothing")??;
    std::thread::spawn(move || for _ in lines {});
    let base = first.rsplit(' ').next().unwrap_or_default().to_owned();
    let addr = base.trim_start_matches("http://").to_owned();
    let token = |args: &[&str]| -> anyhow::Result<String> {
        let out = Command::new(&runner)
            .arg("token")
            .args(args)
            .arg("--data-dir")
            .arg(&dir)
            .output()?;
        Ok(String::from_utf8(out.stdout)?.trim().to_owned())
    };
    let citizen = token(&["--role", "citizen", "--sub", "bench-citizen"])?;
    std::thread::sleep(Duration::from_millis(200));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(o.client_threads)
        .enable_all()
        .build()?;
    println!(
        "motcua-bench: {} backend, {} connections, {} s per phase, {} client thread(s), runner {}",
        o.backend, o.connections, o.seconds, o.client_threads, base
    );
    let result = rt.block_on(async {
        let body = Bytes::from_static(include_bytes!(
            "../../events/api/submit-criminal-record.json"
        ));
        let auth = format!("Bearer {citizen}");
        let host = addr.clone();
        let a2 = auth.clone();
        let submit: Maker = Arc::new(move |_, _| {
            Request::builder()
                .method(Method::POST)
                .uri("/v1/dossiers")
                .header("host", &host)
                .header("authorization", &a2)
                .header("content-type", "application/json")
                .body(Full::new(body.clone()))
                .expect("request")
        });
        let (sub, bodies) = phase("submissions", &addr, &o, submit, 201).await?;
        sub.print();
        // The stored dossier holds the submitted form: rows the size of the request body.
        let row_bytes = include_bytes!("../../events/api/submit-criminal-record.json").len();
        let ids: Vec<String> = bodies
            .iter()
            .filter_map(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
            .filter_map(|v| v["id"].as_str().map(String::from))
            .collect();
        if ids.is_empty() {
            bail!("no dossier was created");
        }
        let ids = Arc::new(ids);
        let host = addr.clone();
        let read: Maker = Arc::new(move |w, n| {
            let id = &ids[(w + n as usize) % ids.len()];
            Request::builder()
                .method(Method::GET)
                .uri(format!("/v1/dossiers/{id}"))
                .header("host", &host)
                .header("authorization", &auth)
                .body(Full::new(Bytes::new()))
                .expect("request")
        });
        let (reads, _) = phase("reads", &addr, &o, read, 200).await?;
        reads.print();
        // The limits, in the same run: an HTTP route that does nothing, and SQLite taking
        // the submissions' rows with nothing else to do.
        let (mut hello_child, hello_addr) = limits::start_hello_axum()?;
        let host = hello_addr.clone();
        let hello: Maker = Arc::new(move |_, _| {
            Request::builder()
                .method(Method::GET)
                .uri("/hello")
                .header("host", &host)
                .body(Full::new(Bytes::new()))
                .expect("request")
        });
        let hello_phase = phase("hello-axum", &hello_addr, &o, hello, 200).await;
        let _ = hello_child.kill();
        let _ = hello_child.wait();
        let (hello_phase, _) = hello_phase?;
        hello_phase.print();
        let (seconds, group) = (o.seconds, o.connections);
        let sqlite = tokio::task::spawn_blocking(move || {
            limits::sqlite_group_commit(3, row_bytes, group, seconds)
        })
        .await??;
        println!(
            "{:<12} {:>10.0} subm./s  bare SQLite: {group} submissions per commit, 3 rows of {row_bytes} B each, WAL, synchronous=FULL",
            "sqlite-limit", sqlite
        );
        let rate = |p: &Phase| p.ok as f64 / p.elapsed.as_secs_f64();
        println!(
            "submissions at {:.0}% of the SQLite limit; reads at {:.0}% of the axum hello-world",
            100.0 * rate(&sub) / sqlite,
            100.0 * rate(&reads) / rate(&hello_phase)
        );
        // Identity: the registry match that sends a code (registry simulator, 0 ms), then
        // whole sign-ins by code (verify, read the SMS the runner keeps, confirm).
        let people: Vec<(Bytes, &'static str)> = [
            ("037153000257", "Nguyễn Thị Lan", "1953-04-02", "female", "%2B84912345678"),
            ("079205001234", "Trần Văn Minh", "2005-09-14", "male", "%2B84987000111"),
            ("001190012345", "Lê Thị Hoa", "1990-01-23", "female", "%2B84903000222"),
            ("048088004321", "Phạm Đức Anh", "1988-12-01", "male", "%2B84935000333"),
            ("092301000777", "Võ Ngọc Trâm", "2001-06-30", "female", "%2B84977000444"),
        ]
        .iter()
        .map(|(id, name, birth, sex, phone)| {
            (
                Bytes::from(
                    serde_json::json!({"citizen_id": id, "full_name": name, "birth_date": birth, "sex": sex})
                        .to_string(),
                ),
                *phone,
            )
        })
        .collect();
        let people = Arc::new(people);
        let host = addr.clone();
        let p2 = people.clone();
        let verify: Maker = Arc::new(move |w, n| {
            Request::builder()
                .method(Method::POST)
                .uri("/v1/identity/citizens/verify")
                .header("host", &host)
                .header("content-type", "application/json")
                .body(Full::new(p2[(w + n as usize) % p2.len()].0.clone()))
                .expect("request")
        });
        let (verifications, _) = phase("verifications", &addr, &o, verify, 202).await?;
        verifications.print();
        let sign_ins = code_sign_ins(&addr, people, o.seconds).await?;
        sign_ins.print();
        let eid = eid_sign_ins(&addr, o.seconds, 16).await?;
        eid.print();
        Ok::<_, anyhow::Error>(())
    });
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    token_validations();
    Ok(())
}

async fn request(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> anyhow::Result<(u16, Bytes)> {
    sender.ready().await?;
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    Ok((status, resp.into_body().collect().await?.to_bytes()))
}

type FlowTask = tokio::task::JoinHandle<anyhow::Result<(usize, usize, Vec<u32>)>>;

/// Lets the flows run for `seconds`, stops them and adds up what each counted (successes,
/// errors, latencies of whole flows).
async fn gather(
    name: &'static str,
    tasks: Vec<FlowTask>,
    stop: Arc<AtomicBool>,
    start: Instant,
    seconds: u64,
) -> anyhow::Result<Phase> {
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut p = Phase {
        name,
        ok: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
    };
    for t in tasks {
        let (ok, errors, lat) = t.await??;
        p.ok += ok;
        p.errors += errors;
        p.latencies_us.extend(lat);
    }
    p.elapsed = start.elapsed();
    p.latencies_us.sort_unstable();
    Ok(p)
}

/// Whole sign-ins by SMS code, one connection per person (a person's newest SMS is then
/// the code of their own challenge): verify (202), `GET /dev/messages`, confirm (200).
async fn code_sign_ins(
    addr: &str,
    people: Arc<Vec<(Bytes, &'static str)>>,
    seconds: u64,
) -> anyhow::Result<Phase> {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..people.len() {
        let (addr, people, stop) = (addr.to_owned(), people.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(&addr).await?;
            let (claim, phone) = &people[i];
            let (mut ok, mut errors, mut lat) = (0usize, 0usize, Vec::new());
            let post = |uri: &str, body: Bytes| {
                Request::builder()
                    .method(Method::POST)
                    .uri(uri)
                    .header("host", &addr)
                    .header("content-type", "application/json")
                    .body(Full::new(body))
                    .expect("request")
            };
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let (status, body) = request(
                    &mut sender,
                    post("/v1/identity/citizens/verify", claim.clone()),
                )
                .await?;
                let challenge: serde_json::Value = serde_json::from_slice(&body)?;
                if status != 202 {
                    errors += 1;
                    continue;
                }
                let get = Request::builder()
                    .uri(format!("/dev/messages?to={phone}"))
                    .header("host", &addr)
                    .body(Full::new(Bytes::new()))?;
                let (_, body) = request(&mut sender, get).await?;
                let sent: serde_json::Value = serde_json::from_slice(&body)?;
                let code: String = sent[0]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .split(|c: char| !c.is_ascii_digit())
                    .find(|w| w.len() == 6)
                    .unwrap_or_default()
                    .to_owned();
                let confirm =
                    serde_json::json!({"challenge_id": challenge["challenge_id"], "code": code});
                let (status, _) = request(
                    &mut sender,
                    post(
                        "/v1/identity/citizens/verify/confirm",
                        Bytes::from(confirm.to_string()),
                    ),
                )
                .await?;
                if status == 200 {
                    ok += 1;
                    lat.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                } else {
                    errors += 1;
                }
            }
            Ok::<_, anyhow::Error>((ok, errors, lat))
        }));
    }
    gather("code sign-ins", tasks, stop, start, seconds).await
}

async fn connect(
    addr: &str,
) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// `http://host:port/path?query` → (`host:port`, `/path?query`).
fn split_url(url: &str) -> (String, String) {
    let rest = url.trim_start_matches("http://");
    match rest.find('/') {
        Some(i) => (rest[..i].to_owned(), rest[i..].to_owned()),
        None => (rest.to_owned(), "/".to_owned()),
    }
}

async fn get(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: &str,
    path: &str,
    cookie: Option<&str>,
) -> anyhow::Result<hyper::Response<hyper::body::Incoming>> {
    let mut req = Request::builder().uri(path).header("host", host);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    sender.ready().await?;
    Ok(sender
        .send_request(req.body(Full::new(Bytes::new()))?)
        .await?)
}

/// The portal's verifier of the bench's e-ID sign-ins and its S256 challenge.
const PORTAL_VERIFIER: &str = "motcua-bench-portal-verifier-0123456789abcdefghij";
const PORTAL_CHALLENGE: &str = "49PtdH_QQ_A6o-kThq0asz4c776ed0uZaAFewcrhRgc";

/// Whole sign-ins with the national e-ID (its simulator, no browser): `login` (302 and the
/// binding cookie), the provider's authorize with `login_hint` (302 with a code), the
/// callback (code exchange with PKCE and private_key_jwt, ID token checks, account), the
/// portal's code exchange for tokens.
async fn eid_sign_ins(addr: &str, seconds: u64, workers: usize) -> anyhow::Result<Phase> {
    const PEOPLE: [&str; 6] = [
        "037153000257",
        "079205001234",
        "001190012345",
        "048088004321",
        "092301000777",
        "038075000123",
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (addr, stop) = (addr.to_owned(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut api = connect(&addr).await?;
            let mut provider: Option<(
                String,
                hyper::client::conn::http1::SendRequest<Full<Bytes>>,
            )> = None;
            let (mut ok, mut errors, mut lat) = (0usize, 0usize, Vec::new());
            let mut n = w;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let t = Instant::now();
                let hint = PEOPLE[n % PEOPLE.len()];
                let r = get(
                    &mut api,
                    &addr,
                    &format!(
                        "/v1/identity/login?login_hint={hint}&portal_challenge={PORTAL_CHALLENGE}"
                    ),
                    None,
                )
                .await?;
                let to = r
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let cookie = r
                    .headers()
                    .get("set-cookie")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|c| c.split(';').next())
                    .unwrap_or_default()
                    .to_owned();
                r.into_body().collect().await?;
                let (host, path) = split_url(&to);
                if provider.as_ref().is_none_or(|(h, _)| *h != host) {
                    provider = Some((host.clone(), connect(&host).await?));
                }
                let (_, sim) = provider.as_mut().expect("connected");
                let r = get(sim, &host, &path, None).await?;
                let back = r
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                r.into_body().collect().await?;
                let (_, path) = split_url(&back);
                let r = get(&mut api, &addr, &path, Some(&cookie)).await?;
                let status = r.status().as_u16();
                let body = r.into_body().collect().await?.to_bytes();
                if status != 200 {
                    errors += 1;
                    continue;
                }
                let code: serde_json::Value = serde_json::from_slice(&body)?;
                let exchange =
                    serde_json::json!({"code": code["code"], "verifier": PORTAL_VERIFIER})
                        .to_string();
                let req = Request::builder()
                    .method(Method::POST)
                    .uri("/v1/identity/login/exchange")
                    .header("host", &addr)
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(exchange)))?;
                let (status, _) = request(&mut api, req).await?;
                if status == 200 {
                    ok += 1;
                    lat.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                } else {
                    errors += 1;
                }
            }
            Ok::<_, anyhow::Error>((ok, errors, lat))
        }));
    }
    gather("e-ID sign-ins", tasks, stop, start, seconds).await
}

/// Token validations per second in-process, one core: ES256 account tokens and HS256
/// development tokens.
fn token_validations() {
    use motcua_domain::Role;
    use motcua_http::{Authenticator, SigningKey};
    let auth = Authenticator::new("motcua-bench", "motcua", &[vec![7u8; 32]])
        .expect("authenticator")
        .with_signing_keys(&[SigningKey::generate("bench")]);
    let now = jiff::Timestamp::now().as_second();
    let ed = auth
        .mint_signed("account-1", Role::Citizen, None, now, 600)
        .expect("signing key");
    let hs = auth.mint("account-1", Role::Citizen, None, now, 600);
    for (name, token) in [("ES256", &ed), ("HS256", &hs)] {
        let n = 50_000;
        let t = Instant::now();
        for _ in 0..n {
            assert!(auth.verify(token).is_ok());
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "token validations ({name}, in-process, 1 thread): {:.0}/s ({:.1} µs each)",
            n as f64 / secs,
            secs * 1e6 / n as f64
        );
    }
}
