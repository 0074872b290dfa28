//! Helpers for cross-function tests: start the real `motcua-local` binary on a free port
//! with its own data directory, mint tokens with it, and talk to it over HTTP.

pub mod clamd;
pub mod lambda;
pub mod uploads;
pub mod webdriver;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The workspace's target directory.
pub fn target_dir() -> PathBuf {
    if let Ok(t) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(t);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// Path of the `motcua-local` binary of this build (built first if missing).
pub fn runner_binary() -> anyhow::Result<PathBuf> {
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let bin = target_dir().join(profile).join("motcua-local");
    if !bin.exists() {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "-q", "-p", "motcua-local"]);
        if profile == "release" {
            cmd.arg("--release");
        }
        let status = cmd.status().context("building motcua-local")?;
        if !status.success() {
            bail!("cargo build -p motcua-local failed");
        }
    }
    Ok(bin)
}

/// A fresh, empty data directory under the system temp dir.
pub fn fresh_data_dir(label: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    std::env::temp_dir().join(format!(
        "motcua-{label}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Which backend a runner serves from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file in the data directory.
    Embedded,
    /// DynamoDB and EventBridge on LocalStack (started by the project's script if needed),
    /// with a table of its own.
    Aws,
}

/// A running `motcua-local serve`, stopped when dropped.
pub struct Runner {
    child: Child,
    pub base: String,
    pub data_dir: PathBuf,
    pub backend: Backend,
    /// Environment that selects the backend's resources (kept across restarts).
    backend_env: Vec<(String, String)>,
}

impl Runner {
    /// Starts a runner on a free port with a fresh data directory (embedded backend).
    pub fn start(label: &str) -> anyhow::Result<Runner> {
        Self::start_on(label, Backend::Embedded)
    }

    /// Starts a runner on a free port with a fresh data directory and, for AWS, a fresh table.
    pub fn start_on(label: &str, backend: Backend) -> anyhow::Result<Runner> {
        Self::start_on_with(label, backend, &[])
    }

    /// As [`Runner::start_on`], with extra environment variables.
    pub fn start_on_with(
        label: &str,
        backend: Backend,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Runner> {
        let dir = fresh_data_dir(label);
        let env = match backend {
            Backend::Embedded => Vec::new(),
            Backend::Aws => {
                motcua_aws::localstack::ensure_running().map_err(anyhow::Error::msg)?;
                let table = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().replace(['.', '_'], "-"))
                    .unwrap_or_default();
                vec![
                    (
                        "AWS_ENDPOINT_URL".into(),
                        motcua_aws::localstack::endpoint(),
                    ),
                    ("MOTCUA_TABLE".into(), table),
                    ("MOTCUA_EVENT_BUS".into(), "motcua-test".into()),
                ]
            }
        };
        Self::launch(&dir, backend, env, extra)
    }

    /// Starts a runner on `data_dir` with extra environment variables (embedded backend).
    pub fn start_with(data_dir: &Path, env: &[(&str, &str)]) -> anyhow::Result<Runner> {
        Self::launch(data_dir, Backend::Embedded, Vec::new(), env)
    }

    /// Starts a runner on the AWS backend with the given resources (`MOTCUA_TABLE`, …).
    pub fn launch_aws(data_dir: &Path, env: &[(&str, &str)]) -> anyhow::Result<Runner> {
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self::launch(data_dir, Backend::Aws, env, &[])
    }

    /// Stops this runner and starts another on the same data (directory, table) with extra
    /// environment variables.
    pub fn restart(self, env: &[(&str, &str)]) -> anyhow::Result<Runner> {
        let (dir, backend, backend_env) = (
            self.data_dir.clone(),
            self.backend,
            self.backend_env.clone(),
        );
        self.stop();
        Self::launch(&dir, backend, backend_env, env)
    }

    fn launch(
        data_dir: &Path,
        backend: Backend,
        backend_env: Vec<(String, String)>,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Runner> {
        let mut cmd = Command::new(runner_binary()?);
        cmd.args(["serve", "--port", "0", "--backend"])
            .arg(match backend {
                Backend::Embedded => "embedded",
                Backend::Aws => "aws",
            })
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .env_remove("MOTCUA_JWT_SECRETS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open({
                        std::fs::create_dir_all(data_dir)?;
                        data_dir.join("runner.log")
                    })?,
            ));
        for (k, v) in &backend_env {
            cmd.env(k, v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().context("starting motcua-local")?;
        let stdout = child.stdout.take().context("runner stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = lines
            .next()
            .context("runner exited before printing its address")??;
        let base = first
            .rsplit(' ')
            .next()
            .filter(|u| u.starts_with("http://"))
            .with_context(|| format!("unexpected first line: {first}"))?
            .to_owned();
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let runner = Runner {
            child,
            base,
            data_dir: data_dir.to_owned(),
            backend,
            backend_env,
        };
        runner.wait_healthy()?;
        Ok(runner)
    }

    fn wait_healthy(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = self.base.trim_start_matches("http://").to_owned();
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(&addr).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("runner at {} did not accept connections", self.base)
    }

    /// Everything the runner's store holds, as text to search: the SQLite file and its
    /// write-ahead log byte for byte (embedded), or every item of its table (AWS).
    pub async fn stored_text(&self) -> String {
        match self.backend {
            Backend::Embedded => ["motcua.db", "motcua.db-wal"]
                .iter()
                .filter_map(|f| std::fs::read(self.data_dir.join(f)).ok())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .collect(),
            Backend::Aws => {
                let table = self
                    .backend_env
                    .iter()
                    .find(|(k, _)| k == "MOTCUA_TABLE")
                    .map(|(_, v)| v.clone())
                    .expect("the runner's table");
                let conf = motcua_aws::localstack::config().await;
                let ddb = motcua_aws::aws_sdk_dynamodb::Client::new(&conf);
                let mut out = String::new();
                // Both of the runner's tables: dossiers and identity.
                for table in [table.clone(), format!("{table}-identity")] {
                    let mut start = None;
                    loop {
                        let page = ddb
                            .scan()
                            .table_name(&table)
                            .set_exclusive_start_key(start.take())
                            .send()
                            .await
                            .expect("scan");
                        for item in page.items() {
                            for (k, v) in item {
                                let text = match v {
                                    motcua_aws::aws_sdk_dynamodb::types::AttributeValue::S(s) => {
                                        s.clone()
                                    }
                                    motcua_aws::aws_sdk_dynamodb::types::AttributeValue::B(b) => {
                                        String::from_utf8_lossy(b.as_ref()).into_owned()
                                    }
                                    other => format!("{other:?}"),
                                };
                                out.push_str(&format!("{k}={text}\n"));
                            }
                        }
                        match page.last_evaluated_key() {
                            Some(k) if !k.is_empty() => start = Some(k.clone()),
                            _ => break,
                        }
                    }
                }
                out
            }
        }
    }

    /// What the runner has logged so far (its stderr, kept in `<data dir>/runner.log`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("runner.log")).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A development token from `motcua-local token` on this runner's data directory.
    pub fn token(&self, role: &str, sub: &str, agency: Option<&str>) -> String {
        let mut cmd = Command::new(runner_binary().expect("runner binary"));
        cmd.args(["token", "--role", role, "--sub", sub, "--data-dir"])
            .arg(&self.data_dir)
            .env_remove("MOTCUA_JWT_SECRETS");
        if let Some(a) = agency {
            cmd.args(["--agency", a]);
        }
        let out = cmd.output().expect("motcua-local token");
        assert!(
            out.status.success(),
            "token failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_owned()
    }

    /// Stops the runner (SIGKILL; the embedded store is crash-safe) and waits for it.
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Generates, for each named `async fn(Backend)` of the calling test file, one
/// `#[tokio::test]` per backend, in modules `embedded` and `aws`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::Backend::Embedded).await
                }
            )*
        }
        mod aws {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::Backend::Aws).await
                }
            )*
        }
    };
}

/// Part `i` of a JWT (0 header, 1 claims), decoded.
pub fn jwt_part(token: &str, i: usize) -> serde_json::Value {
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.split('.').nth(i).expect("a JWT part"))
        .expect("base64url");
    serde_json::from_slice(&raw).expect("JSON")
}

/// The sample submission of a criminal-record certificate (`events/api/`), as portals send it.
pub fn criminal_record() -> serde_json::Value {
    serde_json::from_str(include_str!("../../events/api/submit-criminal-record.json"))
        .expect("the sample submission is JSON")
}

/// A small valid PDF: what the sample submission's uploads carry.
pub const SAMPLE_PDF: &[u8] = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n";

/// SHA-256, standard base64: what `x-amz-checksum-sha256` carries.
pub fn sha256_b64(bytes: &[u8]) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(bytes))
}

impl Runner {
    /// Opens a slot for `bytes` as `token`, sends the file as a browser would, and waits
    /// until the runner has verified it; the upload's view (its `status` says how it ended).
    pub async fn upload(
        &self,
        http: &reqwest::Client,
        token: &str,
        slot: serde_json::Value,
        bytes: &[u8],
    ) -> serde_json::Value {
        let created = http
            .post(self.url("/v1/uploads"))
            .bearer_auth(token)
            .json(&slot)
            .send()
            .await
            .expect("slot request");
        assert_eq!(
            created.status(),
            reqwest::StatusCode::CREATED,
            "{}",
            created.text().await.unwrap_or_default()
        );
        let created: serde_json::Value = created.json().await.expect("JSON");
        let put = &created["upload_request"];
        let mut req = http.put(put["url"].as_str().expect("a URL"));
        for (name, value) in put["headers"].as_object().expect("headers") {
            if !name.eq_ignore_ascii_case("content-length") {
                req = req.header(name.as_str(), value.as_str().expect("text"));
            }
        }
        let sent = req.body(bytes.to_vec()).send().await.expect("PUT");
        assert!(sent.status().is_success(), "PUT answered {}", sent.status());
        let id = created["id"].as_str().expect("an id").to_owned();
        self.settled_upload(http, token, &id).await
    }

    /// The upload `id` once it is no longer awaiting its file (polled for up to 10 s).
    pub async fn settled_upload(
        &self,
        http: &reqwest::Client,
        token: &str,
        id: &str,
    ) -> serde_json::Value {
        for _ in 0..200 {
            let v: serde_json::Value = http
                .get(self.url(&format!("/v1/uploads/{id}")))
                .bearer_auth(token)
                .send()
                .await
                .expect("status request")
                .json()
                .await
                .expect("JSON");
            if v["status"] != "awaiting_file" {
                return v;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("upload {id} was not verified within 10 s");
    }

    /// The sample submission with its declaration form uploaded and verified as `token`.
    pub async fn criminal_record_for(
        &self,
        http: &reqwest::Client,
        token: &str,
    ) -> serde_json::Value {
        let mut body = criminal_record();
        let code = body["procedure_code"].as_str().expect("a code").to_owned();
        body["documents"][0]["reference"] = self
            .verified_pdf(http, token, &code, "to-khai")
            .await
            .into();
        body
    }

    /// The id of a verified PDF of `token`'s, uploaded for `document` of `procedure`.
    pub async fn verified_pdf(
        &self,
        http: &reqwest::Client,
        token: &str,
        procedure: &str,
        document: &str,
    ) -> String {
        let up = self
            .upload(
                http,
                token,
                serde_json::json!({
                    "file_name": format!("{document}.pdf"),
                    "content_type": "application/pdf",
                    "size": SAMPLE_PDF.len(),
                    "sha256": sha256_b64(SAMPLE_PDF),
                    "procedure_code": procedure,
                    "document_code": document,
                }),
                SAMPLE_PDF,
            )
            .await;
        assert_eq!(up["status"], "verified", "{up}");
        up["id"].as_str().expect("an id").to_owned()
    }

    /// The newest sign-in code this runner "sent" by SMS to `phone` (`GET /dev/messages`).
    pub async fn code_sent_to(&self, http: &reqwest::Client, phone: &str) -> String {
        let sent: serde_json::Value = http
            .get(self.url("/dev/messages"))
            .query(&[("to", phone), ("channel", "sms")])
            .send()
            .await
            .expect("GET /dev/messages")
            .json()
            .await
            .expect("JSON");
        // Status messages go to the same phone: the newest sign-in code is wanted.
        let text = sent
            .as_array()
            .expect("a list")
            .iter()
            .filter_map(|m| m["text"].as_str())
            .find(|t| t.starts_with("Ma dang nhap"))
            .expect("a code was sent");
        text.split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() == 6)
            .expect("a 6-digit code")
            .to_owned()
    }

    /// A whole sign-in without the e-ID: the details (`claim`), the code sent to the
    /// registry's `phone`, its confirmation; the answer of the confirmation (tokens).
    pub async fn sign_in_with_code(
        &self,
        http: &reqwest::Client,
        claim: &serde_json::Value,
        phone: &str,
        client_ip: &str,
    ) -> serde_json::Value {
        let r = http
            .post(self.url("/v1/identity/citizens/verify"))
            .header("x-forwarded-for", client_ip)
            .json(claim)
            .send()
            .await
            .expect("verify");
        assert_eq!(r.status(), reqwest::StatusCode::ACCEPTED, "verify");
        let challenge: serde_json::Value = r.json().await.expect("JSON");
        let code = self.code_sent_to(http, phone).await;
        let r = http
            .post(self.url("/v1/identity/citizens/verify/confirm"))
            .header("x-forwarded-for", client_ip)
            .json(&serde_json::json!({"challenge_id": challenge["challenge_id"], "code": code}))
            .send()
            .await
            .expect("confirm");
        assert_eq!(r.status(), reqwest::StatusCode::OK, "confirm");
        assert_eq!(r.headers()["cache-control"], "no-store");
        r.json().await.expect("JSON")
    }
}

impl Runner {
    /// A whole sign-in with the runner's e-ID simulator (`login_hint` skips its page):
    /// login, authorize, callback with the binding cookie, exchange; the exchange's answer.
    pub async fn sign_in_with_eid(&self, citizen_id: &str) -> serde_json::Value {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let location = |r: &reqwest::Response| {
            r.headers()["location"]
                .to_str()
                .expect("a redirect")
                .to_owned()
        };
        let (verifier, challenge) = portal_pair();
        let r = http
            .get(self.url(&format!(
                "/v1/identity/login?login_hint={citizen_id}&portal_challenge={challenge}"
            )))
            .send()
            .await
            .expect("login");
        assert_eq!(r.status(), reqwest::StatusCode::FOUND, "login");
        let cookie = r.headers()["set-cookie"]
            .to_str()
            .expect("cookie")
            .split(';')
            .next()
            .unwrap_or_default()
            .to_owned();
        let r = http.get(location(&r)).send().await.expect("authorize");
        let r = http
            .get(location(&r))
            .header("cookie", cookie)
            .send()
            .await
            .expect("callback");
        assert_eq!(r.status(), reqwest::StatusCode::OK, "callback");
        let code: serde_json::Value = r.json().await.expect("JSON");
        let r = http
            .post(self.url("/v1/identity/login/exchange"))
            .json(&serde_json::json!({"code": code["code"], "verifier": verifier}))
            .send()
            .await
            .expect("exchange");
        assert_eq!(r.status(), reqwest::StatusCode::OK, "exchange");
        r.json().await.expect("JSON")
    }
}

/// A random verifier, as a portal keeps it, and its `portal_challenge`
/// (BASE64URL(SHA-256(verifier))).
pub fn portal_pair() -> (String, String) {
    use base64::Engine;
    use sha2::Digest;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let verifier = b64(&[
        uuid::Uuid::now_v7().into_bytes(),
        uuid::Uuid::now_v7().into_bytes(),
    ]
    .concat());
    let challenge = b64(&sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}
