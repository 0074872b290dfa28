//! A person signs in with the national e-ID in a real browser: headless Chromium (Debian's
//! `chromium`, driven over WebDriver by Debian's `chromedriver`; the test script installs
//! both) opens the runner's demo portal, follows the link to the e-ID simulator, picks a
//! fixture person on its page, follows the redirects (the binding cookie rides along)
//! and ends on the portal signed in.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use motcua_tests::Runner;
use serde_json::{Value, json};

/// The key WebDriver names elements by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    child: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempdir::Dir,
}

mod tempdir {
    /// A directory removed when dropped.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Driver {
    async fn start() -> Driver {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; scripts/test.sh installs it)");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(format!("{base}/status")).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempdir::Dir(motcua_tests::fresh_data_dir("chromium-profile"));
        std::fs::create_dir_all(&profile.0).unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    format!("--user-data-dir={}", profile.0.display())]
            }
        }}});
        let v: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {v}"))
            .to_owned();
        Driver {
            child,
            base,
            session,
            http,
            _profile: profile,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method.clone(), url);
        if method != reqwest::Method::GET {
            req = req.json(&body);
        }
        req.send().await.unwrap().json::<Value>().await.unwrap()["value"].take()
    }

    async fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The element matching `css`, waiting for it to appear.
    async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let v = self
                .call(
                    reqwest::Method::POST,
                    "/element",
                    json!({"using": "css selector", "value": css}),
                )
                .await;
            if let Some(id) = v[ELEMENT].as_str() {
                return id.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "{css} never appeared on {}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            json!({}),
        )
        .await;
    }

    /// The text of `css` once it is not empty.
    async fn text(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let id = self.find(css).await;
            let t = self
                .call(
                    reqwest::Method::GET,
                    &format!("/element/{id}/text"),
                    Value::Null,
                )
                .await;
            if let Some(t) = t.as_str().filter(|t| !t.is_empty()) {
                return t.to_owned();
            }
            assert!(Instant::now() < deadline, "{css} stayed empty");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn a_person_signs_in_with_the_eid_in_a_real_browser() {
    let runner = Runner::start("browser").unwrap();
    let driver = Driver::start().await;
    driver.go(&runner.url("/dev/portal")).await;
    assert_eq!(driver.text("#status").await, "Chưa đăng nhập.");
    // To the e-ID: its page lists the fixture's people.
    driver.click("#login").await;
    driver.click("#p-037153000257").await;
    // Back on the portal, signed in; the one-time code is gone from the address bar and
    // no token was ever in it.
    assert_eq!(driver.text("#who").await, "Nguyễn Thị Lan");
    assert_eq!(driver.text("#level").await, "(level 2)");
    assert_eq!(driver.text("#status").await, "Đã đăng nhập.");
    let url = driver.url().await;
    assert_eq!(url, runner.url("/dev/portal"));
    // A declined sign-in comes back as an error on the portal.
    let issuer = {
        let r = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(runner.url(&format!(
                "/v1/identity/login?portal_challenge={}",
                motcua_tests::portal_pair().1
            )))
            .send()
            .await
            .unwrap();
        let to = r.headers()["location"].to_str().unwrap().to_owned();
        to.split("/authorize").next().unwrap().to_owned()
    };
    reqwest::Client::new()
        .post(format!("{issuer}/_sim/faults"))
        .json(&json!({"access_denied_next": 1}))
        .send()
        .await
        .unwrap();
    driver.go(&runner.url("/dev/portal")).await;
    driver.click("#login").await;
    driver.click("#p-079205001234").await;
    assert_eq!(driver.text("#error").await, "error: eid-declined");
    // Login CSRF: a one-time code of someone else's sign-in, planted in a link to the
    // portal, signs nobody in here (this tab holds no verifier for it, and the server
    // wants one).
    let planted = {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let (_, challenge) = motcua_tests::portal_pair();
        let r = http
            .get(runner.url(&format!(
                "/v1/identity/login?login_hint=048088004321&portal_challenge={challenge}"
            )))
            .send()
            .await
            .unwrap();
        let cookie = r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let to = r.headers()["location"].to_str().unwrap().to_owned();
        let r = http.get(to).send().await.unwrap();
        let back = r.headers()["location"].to_str().unwrap().to_owned();
        let r = http
            .get(back)
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        r.json::<Value>().await.unwrap()["code"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    driver
        .go(&format!("{}?code={planted}", runner.url("/dev/portal")))
        .await;
    assert_eq!(driver.text("#error").await, "error: not-started-here");
    assert_eq!(driver.text("#status").await, "Chưa đăng nhập.");
    driver.call(reqwest::Method::DELETE, "", Value::Null).await;
}
