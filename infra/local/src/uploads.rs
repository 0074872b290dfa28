//! The uploads function in the runner: its state on the embedded backend (files in
//! `<data dir>/objects`, presigned URLs served here), the PUT/GET routes those URLs point
//! at, verification in process after each PUT (as S3 → SQS → function does on AWS), and
//! the sweeper on a timer.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path as UrlPath, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use motcua_embedded::{LocalObjects, OBJECTS_PATH, PutHeaders, PutRefusal};
use motcua_ports::uploads::{ObjectStore, Scanner, UploadPorts};
use motcua_submission::AppState;
use motcua_uploads::{ScannerSetting, UploadsConfig, UploadsState};

/// The uploads settings: the environment's, with `MOTCUA_SCANNER=none` when unset (the
/// runner says so at start; the upload records say `scan: skipped`).
pub fn config() -> anyhow::Result<UploadsConfig> {
    UploadsConfig::from_lookup(|k| match (k, std::env::var(k)) {
        ("MOTCUA_SCANNER", Err(_)) => Some("none".into()),
        (_, v) => v.ok(),
    })
    .map_err(|e| anyhow::anyhow!("{e}"))
}

pub fn scanner(config: &UploadsConfig) -> Arc<dyn Scanner> {
    match &config.scanner {
        ScannerSetting::Clamd(addr) => Arc::new(motcua_uploads::clamd::Clamd::new(
            addr.clone(),
            Duration::from_secs(config.scanner_timeout_secs),
        )),
        ScannerSetting::None => Arc::new(motcua_ports::uploads::NoScanner),
    }
}

/// The uploads state on `submission`'s ports, with files in `data_dir/objects` and URLs
/// on `base_url`, signed with the key in `data_dir/objects.key`.
pub fn state(
    data_dir: &Path,
    submission: &AppState,
    base_url: &str,
) -> anyhow::Result<(UploadsState, Arc<LocalObjects>)> {
    let config = config()?;
    let secret = crate::secret_file(data_dir, "objects.key", "MOTCUA_LOCAL_OBJECTS_KEY")?;
    let objects = Arc::new(
        LocalObjects::new(data_dir, base_url, secret.as_bytes())
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("the objects folder")?,
    );
    let state = UploadsState {
        ports: submission.ports.clone(),
        objects: objects.clone() as Arc<dyn ObjectStore>,
        scanner: scanner(&config),
        auth: submission.auth.clone(),
        clock: submission.clock.clone(),
        config: Arc::new(config),
    };
    Ok((state, objects))
}

/// Sweeps stale slots and quarantine objects every minute.
pub fn sweep_every_minute(state: &UploadsState) {
    let (ports, clock) = (state.upload_ports(), state.clock.clone());
    tokio::spawn(async move {
        loop {
            if let Err(e) = motcua_uploads::sweep::sweep(&ports, clock.now(), 500).await {
                tracing::warn!(error = %e, "sweeping uploads failed");
            }
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
    });
}

#[derive(Clone)]
struct Served {
    objects: Arc<LocalObjects>,
    ports: UploadPorts,
    clock: Arc<dyn motcua_http::Clock>,
}

/// `PUT` and `GET` on presigned local object URLs.
pub fn routes(state: &UploadsState, objects: Arc<LocalObjects>) -> Router {
    let served = Served {
        objects,
        ports: state.upload_ports(),
        clock: state.clock.clone(),
    };
    // Room for the largest file the rules allow, and a little more so that a file one
    // byte too large is refused by its signed length, not cut off.
    let limit = usize::try_from(state.config.rules.max_file_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(1024);
    Router::new()
        .route(
            &format!("{OBJECTS_PATH}{{*key}}"),
            axum::routing::put(put_object).get(get_object),
        )
        .layer(DefaultBodyLimit::max(limit))
        .with_state(served)
}

/// An S3-style XML error, as a browser would get from S3 itself.
fn s3_error(e: &PutRefusal) -> Response {
    let (status, code) = e.status_and_code();
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{e}</Message></Error>"
    );
    let mut r = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body,
    )
        .into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    // S3's own error format, which a browser's upload code expects: not a problem.
    r.extensions_mut().insert(motcua_http::NotAProblem);
    r
}

async fn put_object(
    State(s): State<Served>,
    UrlPath(key): UrlPath<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let (content_type, length) = (text("content-type"), text("content-length"));
    let (checksum, if_none_match) = (text("x-amz-checksum-sha256"), text("if-none-match"));
    let objects = s.objects.clone();
    let (k, q, now) = (key.clone(), query.unwrap_or_default(), s.clock.now());
    let stored = tokio::task::spawn_blocking(move || {
        let h = PutHeaders {
            content_type: content_type.as_deref(),
            content_length: length.and_then(|v| v.parse().ok()),
            checksum_sha256: checksum.as_deref(),
            if_none_match: if_none_match.as_deref(),
        };
        objects.accept_put(&k, &q, &h, &body, now)
    })
    .await;
    match stored {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return s3_error(&e),
        Err(_) => return s3_error(&PutRefusal::Storage("the write task failed".into())),
    }
    // What S3's notification does on AWS: the verifier looks at the new object.
    let (ports, clock) = (s.ports.clone(), s.clock.clone());
    // Retried with backoff while the scanner or the store is unavailable, as SQS
    // redelivers on AWS; a slot still unverified when it expires is swept.
    tokio::spawn(async move {
        let mut wait = Duration::from_secs(1);
        for attempt in 1..=8 {
            match motcua_uploads::verify::verify_object(&ports, &key, clock.now()).await {
                Ok(outcome) => {
                    tracing::debug!(?outcome, "verified in process");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "verification failed; retried");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(60));
                }
            }
        }
    });
    StatusCode::OK.into_response()
}

async fn get_object(
    State(s): State<Served>,
    UrlPath(key): UrlPath<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let grant = match s
        .objects
        .open_get(&key, &query.unwrap_or_default(), s.clock.now())
    {
        Ok(g) => g,
        Err(e) => return s3_error(&e),
    };
    let bytes = match tokio::fs::read(&grant.path).await {
        Ok(b) => b,
        Err(_) => return s3_error(&PutRefusal::NoSuchKey),
    };
    let mut r = Response::new(Body::from(bytes));
    for (name, value) in [
        (header::CONTENT_TYPE, grant.content_type),
        (header::CONTENT_DISPOSITION, grant.content_disposition),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            r.headers_mut().insert(name, v);
        }
    }
    r.headers_mut().insert(
        header::HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    r
}
