//! The Lambda wiring: an HTTP API (payload 2.0) event, converted by lambda_http as on AWS,
//! answered by the same router the runner serves. The template's HTTP API uses the
//! `$default` stage: with a named stage lambda_http puts `/<stage>` in front of every path
//! and no route would match.

use std::sync::Arc;

use axum::body::Body;
use motcua_domain::WorkingCalendar;
use motcua_submission::{AppState, SubmissionConfig, SystemClock, router};
use tower::ServiceExt;

async fn app() -> axum::Router {
    let dir = std::env::temp_dir().join(format!("motcua-apigw-{}", uuid::Uuid::now_v7()));
    let store = motcua_embedded::EmbeddedStore::open(&dir).unwrap();
    let ports = store.submission_ports();
    for p in motcua_domain::catalogue::demo_catalogue() {
        ports.catalogue.put_procedure(&p).await.unwrap();
    }
    let config = SubmissionConfig::from_lookup(|_| None).unwrap();
    router(AppState {
        ports,
        auth: Arc::new(config.authenticator()),
        clock: Arc::new(SystemClock::default()),
        calendar: WorkingCalendar::vietnam(),
        config: Arc::new(config),
    })
}

async fn answer(event: &str) -> (u16, serde_json::Value) {
    let req = lambda_http::request::from_str(event).expect("an API Gateway event");
    let (parts, body) = req.into_parts();
    let req = axum::http::Request::from_parts(parts, Body::from(body.to_vec()));
    let resp = app().await.oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn an_http_api_event_on_the_default_stage_reaches_the_route() {
    let (status, body) = answer(include_str!("../../../events/apigw/get-procedures.json")).await;
    assert_eq!(status, 200, "{body}");
    // The demo catalogue, in Vietnamese as the event asked.
    let list = body.as_array().expect("a list of procedures");
    assert!(list.iter().any(|p| p["code"] == "2.000505"), "{body}");
}

#[tokio::test]
async fn a_named_stage_would_hide_every_route() {
    let (status, body) = answer(include_str!(
        "../../../events/apigw/get-procedures-named-stage.json"
    ))
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["type"], "urn:motcua:problem:not-found");
}
