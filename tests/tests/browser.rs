//! A person signs in with the national e-ID in a real browser: headless Chromium (Debian's
//! `chromium`, driven over WebDriver by Debian's `chromedriver`; the test script installs
//! both) opens the runner's demo portal, follows the link to the e-ID simulator, picks a
//! fixture person on its page, follows the redirects (the binding cookie rides along)
//! and ends on the portal signed in.

use motcua_tests::Runner;
use motcua_tests::webdriver::Driver;
use serde_json::{Value, json};

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
