//! A demo portal page at `GET /dev/portal` (runner only): what a portal front end does to
//! sign a person in with the national e-ID — keep a random verifier in the tab, send the
//! browser to `/v1/identity/login` with its SHA-256 (`portal_challenge`), take the one-time
//! `code` the callback hands back, exchange it with the verifier for tokens
//! (`POST /v1/identity/login/exchange`) and call the API with them. A code that another
//! browser started (login CSRF) finds no verifier here and fails. The tokens stay in the
//! page's memory.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};

const PAGE: &str = r##"<!doctype html>
<html lang="vi"><head><meta charset="utf-8"><title>Cổng dịch vụ công (demo)</title></head>
<body>
<h1>Cổng dịch vụ công — demo</h1>
<p id="status">Chưa đăng nhập.</p>
<p><a id="login" href="#">Đăng nhập bằng VNeID</a></p>
<p>Signed in as: <span id="who"></span> <span id="level"></span></p>
<p id="error"></p>
<script>
(async () => {
  const here = location.origin + location.pathname;
  const b64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  // The portal's own proof that a returning code belongs to this browser: a random
  // verifier kept in this tab, its SHA-256 sent with the sign-in.
  document.getElementById("login").addEventListener("click", async (e) => {
    e.preventDefault();
    const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
    sessionStorage.setItem("motcua_portal_verifier", verifier);
    const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
    location.href = "/v1/identity/login?return_to=" + encodeURIComponent(here) +
      "&portal_challenge=" + challenge;
  });
  const q = new URLSearchParams(location.search);
  // A verifier serves one return from the e-ID, whatever it brings.
  const verifier = sessionStorage.getItem("motcua_portal_verifier");
  if (q.get("code") || q.get("error")) sessionStorage.removeItem("motcua_portal_verifier");
  if (q.get("error")) {
    document.getElementById("error").textContent = "error: " + q.get("error");
    return;
  }
  const code = q.get("code");
  if (!code) return;
  history.replaceState(null, "", here);
  // A code this tab did not ask for (someone else's sign-in, planted in a link): refuse it.
  if (!verifier) {
    document.getElementById("error").textContent = "error: not-started-here";
    return;
  }
  const r = await fetch("/v1/identity/login/exchange", {
    method: "POST", headers: {"content-type": "application/json"},
    body: JSON.stringify({code, verifier})
  });
  if (!r.ok) {
    document.getElementById("error").textContent = "exchange: " + r.status;
    return;
  }
  const tokens = await r.json();
  const me = await fetch("/v1/me", {headers: {authorization: "Bearer " + tokens.access_token}});
  const account = await me.json();
  document.getElementById("who").textContent = account.name;
  document.getElementById("level").textContent = "(level " + account.assurance + ")";
  document.getElementById("status").textContent = "Đã đăng nhập.";
})();
</script>
</body></html>
"##;

async fn page() -> Response {
    let mut r = Html(PAGE).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `GET /dev/portal`.
pub fn routes() -> Router {
    Router::new().route("/dev/portal", axum::routing::get(page))
}
