//! The uploads function in the runner: its state on the embedded backend (files in
//! `<data dir>/objects`, presigned URLs served here), the PUT/GET routes those URLs point
//! at, verification in process after each PUT (as S3 → SQS → function does on AWS), and
//! the sweeper on a timer.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::Body;
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

/// The uploads state on S3 (LocalStack or AWS): the bucket `MOTCUA_BUCKET` (default
/// `<table>-files`), created if missing, whose `quarantine/` notifications go to the SQS
/// queue `MOTCUA_UPLOADS_QUEUE` (default `<bucket>-events`), which this runner polls and
/// verifies from, as the verifier function does on AWS.
pub async fn aws_state(
    conf: &aws_config::SdkConfig,
    submission: &AppState,
    table: &str,
) -> anyhow::Result<UploadsState> {
    let config = config()?;
    let named = std::env::var("MOTCUA_BUCKET").ok();
    let bucket = named.clone().unwrap_or_else(|| format!("{table}-files"));
    let queue =
        std::env::var("MOTCUA_UPLOADS_QUEUE").unwrap_or_else(|_| format!("{bucket}-events"));
    let objects =
        motcua_aws::s3::S3Objects::new(conf, &bucket).map_err(|e| anyhow::anyhow!("{e}"))?;
    let sqs = aws_sdk_sqs::Client::new(conf);
    let state = UploadsState {
        ports: submission.ports.clone(),
        objects: Arc::new(objects.clone()),
        scanner: scanner(&config),
        auth: submission.auth.clone(),
        clock: submission.clock.clone(),
        config: Arc::new(config),
    };
    if named.is_some() {
        // A deployed bucket (the template's): its notification to its queue is the
        // template's own, and is what gets tested.
        let queue_url = sqs
            .get_queue_url()
            .queue_name(&queue)
            .send()
            .await
            .with_context(|| format!("queue {queue}"))?
            .queue_url
            .context("the queue has no URL")?;
        poll(sqs, queue_url, &state);
        return Ok(state);
    }
    objects
        .ensure_bucket()
        .await
        .map_err(|e| anyhow::anyhow!("bucket {bucket}: {e}"))?;
    let queue_url = sqs
        .create_queue()
        .queue_name(&queue)
        .send()
        .await
        .with_context(|| format!("queue {queue}"))?
        .queue_url
        .context("the queue has no URL")?;
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .context("the queue's ARN")?
        .attributes
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .context("the queue has no ARN")?;
    use motcua_aws::s3::aws_sdk_s3::types as s3t;
    let rule = s3t::FilterRule::builder()
        .name(s3t::FilterRuleName::Prefix)
        .value(motcua_domain::upload::QUARANTINE_PREFIX)
        .build();
    objects
        .client()
        .put_bucket_notification_configuration()
        .bucket(&bucket)
        .notification_configuration(
            s3t::NotificationConfiguration::builder()
                .queue_configurations(
                    s3t::QueueConfiguration::builder()
                        .queue_arn(arn)
                        .events(s3t::Event::from("s3:ObjectCreated:*"))
                        .filter(
                            s3t::NotificationConfigurationFilter::builder()
                                .key(s3t::S3KeyFilter::builder().filter_rules(rule).build())
                                .build(),
                        )
                        .build()
                        .context("the queue configuration")?,
                )
                .build(),
        )
        .send()
        .await
        .context("the bucket's notification to the queue")?;
    poll(sqs, queue_url, &state);
    Ok(state)
}

/// Verifies what the queue says arrived, as the verifier function does on AWS.
fn poll(sqs: aws_sdk_sqs::Client, queue_url: String, state: &UploadsState) {
    let (ports, clock) = (state.upload_ports(), state.clock.clone());
    tokio::spawn(async move {
        loop {
            match sqs
                .receive_message()
                .queue_url(&queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
            {
                Ok(out) => {
                    let messages: Vec<(String, String, String)> = out
                        .messages()
                        .iter()
                        .filter_map(|m| {
                            Some((
                                m.message_id()?.to_owned(),
                                m.body()?.to_owned(),
                                m.receipt_handle()?.to_owned(),
                            ))
                        })
                        .collect();
                    let batch: Vec<(String, String)> = messages
                        .iter()
                        .map(|(id, body, _)| (id.clone(), body.clone()))
                        .collect();
                    let failed =
                        motcua_uploads::verify::handle_batch(&ports, &batch, clock.now()).await;
                    for (id, _, handle) in &messages {
                        if !failed.contains(id) {
                            let _ = sqs
                                .delete_message()
                                .queue_url(&queue_url)
                                .receipt_handle(handle)
                                .send()
                                .await;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "polling the uploads queue failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
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
    /// Who verifies what arrives (none: only stored, as in the object-store contract).
    ports: Option<UploadPorts>,
    clock: Arc<dyn motcua_http::Clock>,
}

/// `PUT` and `GET` on presigned local object URLs, each PUT verified in process.
pub fn routes(state: &UploadsState, objects: Arc<LocalObjects>) -> Router {
    // Room for the largest file the rules allow, and a little more so that a file one
    // byte too large is refused by its signed length, not cut off.
    let limit = usize::try_from(state.config.rules.max_file_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(1024);
    object_routes(
        objects,
        state.clock.clone(),
        Some(state.upload_ports()),
        limit,
    )
}

/// The object URLs alone: what S3 does for a presigned URL, and, with `verify`, what
/// its notification starts.
pub fn object_routes(
    objects: Arc<LocalObjects>,
    clock: Arc<dyn motcua_http::Clock>,
    verify: Option<UploadPorts>,
    limit: usize,
) -> Router {
    let served = Served {
        objects,
        ports: verify,
        clock,
    };
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
    body: Body,
) -> Response {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let (content_type, length) = (text("content-type"), text("content-length"));
    let (checksum, if_none_match) = (text("x-amz-checksum-sha256"), text("if-none-match"));
    let h = PutHeaders {
        content_type: content_type.as_deref(),
        content_length: length.as_deref().and_then(|v| v.parse().ok()),
        checksum_sha256: checksum.as_deref(),
        if_none_match: if_none_match.as_deref(),
    };
    let query = query.unwrap_or_default();
    // The signature first: an unsigned PUT is refused before its body is read.
    if let Err(e) = s.objects.check_put(&key, &query, &h, s.clock.now()) {
        return s3_error(&e);
    }
    // At most the signed length (and the route's limit): more is refused, not buffered.
    let signed = h.content_length.unwrap_or(0);
    let limit = usize::try_from(signed)
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    let body = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => return s3_error(&PutRefusal::IncompleteBody),
    };
    let objects = s.objects.clone();
    let k = key.clone();
    let stored = tokio::task::spawn_blocking(move || {
        let h = PutHeaders {
            content_type: content_type.as_deref(),
            content_length: length.and_then(|v| v.parse().ok()),
            checksum_sha256: checksum.as_deref(),
            if_none_match: if_none_match.as_deref(),
        };
        objects.store_put(&k, &h, &body)
    })
    .await;
    match stored {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return s3_error(&e),
        Err(_) => return s3_error(&PutRefusal::Storage("the write task failed".into())),
    }
    // What S3's notification does on AWS: the verifier looks at the new object.
    let Some(ports) = s.ports.clone() else {
        return StatusCode::OK.into_response();
    };
    let clock = s.clock.clone();
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
