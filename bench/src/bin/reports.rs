//! motcua-bench-reports: how fast the KPI consumer counts events (embedded backend), and
//! how long a province-year report takes over the counters of a seeded year.
//!
//! ```text
//! cargo build --profile runner -p motcua-local -p motcua-bench --bins
//! target/runner/motcua-local seed --dossiers 1000000 --data-dir /tmp/kpi-1m
//! target/runner/motcua-bench-reports [--events 20000] [--concurrency 64] [--data-dir /tmp/kpi-1m]
//! ```
//!
//! 1. Ingest: `--events` dossiers are written with their events to a fresh SQLite store
//!    (outside the timing), then their events are applied by the consumer, `--concurrency`
//!    at a time: each reads the dossier and its applied contribution, then replaces it and
//!    the counters in one write. Then the same events again (duplicates: nothing written).
//! 2. Report: over the seeded `--data-dir` (none: only the ingest is measured),
//!    `GET /v1/reports/kpi` for the province's year and for one agency, through the
//!    function's router in process (auth, counters, indicators, JSON), 200 times each.

use std::sync::Arc;
use std::time::Instant;

use motcua_domain::{EventEnvelope, Role};
use motcua_embedded::EmbeddedStore;
use motcua_reports::{ReportConfig, ReportState};
use tower::ServiceExt;

struct Options {
    events: usize,
    concurrency: usize,
    data_dir: Option<std::path::PathBuf>,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        events: 20_000,
        concurrency: 64,
        data_dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "--events" => o.events = value.parse()?,
            "--concurrency" => o.concurrency = value.parse()?,
            "--data-dir" => o.data_dir = Some(value.into()),
            other => anyhow::bail!("unknown option {other}"),
        }
    }
    Ok(o)
}

fn state(store: &EmbeddedStore) -> anyhow::Result<ReportState> {
    let ports = store.submission_ports();
    let secret = vec![7u8; 32];
    Ok(ReportState {
        dossiers: ports.dossiers.clone(),
        catalogue: ports.catalogue.clone(),
        kpi: Arc::new(store.clone()),
        auth: Arc::new(motcua_http::Authenticator::new(
            "motcua",
            "motcua",
            &[secret],
        )?),
        clock: Arc::new(motcua_http::SystemClock::default()),
        config: Arc::new(ReportConfig::default()),
    })
}

async fn apply_all(s: &ReportState, events: &[EventEnvelope], concurrency: usize) -> f64 {
    let started = Instant::now();
    let chunk = events.len().div_ceil(concurrency.max(1));
    let mut tasks = tokio::task::JoinSet::new();
    for part in events.chunks(chunk.max(1)) {
        let (s, part) = (s.clone(), part.to_vec());
        tasks.spawn(async move {
            for e in &part {
                motcua_reports::consume::apply_event(&s, e)
                    .await
                    .expect("counted");
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("a task");
    }
    events.len() as f64 / started.elapsed().as_secs_f64()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn time_report(s: &ReportState, path: &str) -> anyhow::Result<(f64, f64, usize)> {
    let now = jiff::Timestamp::now().as_second();
    let token = s.auth.mint("leader-bench", Role::Leader, None, now, 3600);
    let app = motcua_reports::routes(s.clone());
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..200 {
        let req = http::Request::get(path)
            .header("authorization", format!("Bearer {token}"))
            .body(axum::body::Body::empty())?;
        let t = Instant::now();
        let resp = app.clone().oneshot(req).await?;
        anyhow::ensure!(resp.status() == 200, "{path}: {}", resp.status());
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        size = body.len();
    }
    times.sort_by(f64::total_cmp);
    Ok((percentile(&times, 0.5), percentile(&times, 0.99), size))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let o = options()?;
    // 1. Ingest.
    let dir = std::env::temp_dir().join(format!("motcua-bench-kpi-{}", uuid::Uuid::now_v7()));
    let store = EmbeddedStore::open(&dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let s = state(&store)?;
    let ports = store.submission_ports();
    let mut events = Vec::with_capacity(o.events);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..o.events {
        let (d, h, e) = motcua_ports::contract::sample(
            &format!("citizen-{}", i % 5000),
            i as u32 + 1,
            jiff::Timestamp::now(),
        );
        events.push(e.clone());
        let dossiers = ports.dossiers.clone();
        tasks.spawn(async move { dossiers.create(&d, &h, &e).await });
        if tasks.len() >= 256 {
            while let Some(r) = tasks.join_next().await {
                r??;
            }
        }
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let rate = apply_all(&s, &events, o.concurrency).await;
    println!(
        "ingest: {} events applied, {} at a time: {rate:.0} events/s (read dossier + applied, one write of applied + counters)",
        o.events, o.concurrency
    );
    let again = apply_all(&s, &events, o.concurrency).await;
    println!("ingest: the same events again (duplicates, nothing written): {again:.0} events/s");
    let _ = std::fs::remove_dir_all(&dir);

    // 2. Reports over a seeded year.
    if let Some(dir) = &o.data_dir {
        let store = EmbeddedStore::open(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
        let s = state(&store)?;
        let filed = s
            .kpi
            .rows(
                &store
                    .submission_ports()
                    .catalogue
                    .procedures()
                    .await?
                    .into_iter()
                    .map(|p| p.agency)
                    .collect::<Vec<_>>(),
                motcua_domain::kpi::Month::parse("2000-01").unwrap(),
                motcua_domain::kpi::Month::parse("2100-12").unwrap(),
            )
            .await?;
        let rows = filed.len();
        let dossiers = motcua_ports::reports::total(&filed).get("filed");
        let year = jiff::Zoned::now().year();
        for (label, path) in [
            (
                "province, 12 months",
                format!("/v1/reports/kpi?from={year}-01&to={year}-12"),
            ),
            (
                "one agency, 12 months",
                format!("/v1/reports/kpi?agency=000.01.41.H42&from={year}-01&to={year}-12"),
            ),
        ] {
            let (p50, p99, size) = time_report(&s, &path).await?;
            println!(
                "report ({label}) over {dossiers} dossiers ({rows} agency-month rows): p50 {p50:.2} ms, p99 {p99:.2} ms, {size} bytes"
            );
        }
    }
    Ok(())
}
