//! motcua-bench-notifications: what rendering and planning status messages costs, and how
//! long the embedded backend takes to drain a burst of them.
//!
//! ```text
//! cargo build --profile runner -p motcua-local -p motcua-bench --bins
//! target/runner/motcua-bench-notifications [--burst 10000] [--limited 1000] [--rate 50]
//! ```
//!
//! 1. In process, one thread: the SMS (unaccented, part budget) and the email (subject,
//!    text, escaped HTML) of a receipt, per message.
//! 2. In process on the SQLite store: planning (`intake`: dossier and history read,
//!    rendering, the delivery recorded once per key) of `--burst` receipt events, 64 at
//!    a time.
//! 3. The runner's dispatcher (the same rounds, 64 sends at a time) draining them through
//!    the runner's kept-message sender, with no send rate.
//! 4. The same for `--limited` events with a send rate of `--rate` per second: the
//!    messages sent in each second, and that none failed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use motcua_domain::notify::{Channel, Topic};
use motcua_domain::templates::{self, Facts, SmsStyle};
use motcua_domain::{Command, EventEnvelope, Lang, WorkingCalendar};
use motcua_embedded::EmbeddedStore;
use motcua_notifications::dispatch::dispatch_due;
use motcua_notifications::plan::intake;
use motcua_notifications::{NotifyConfig, NotifyState, Senders};
use motcua_ports::notifications::LoggedDeadLetters;

struct Options {
    burst: usize,
    limited: usize,
    rate: u32,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        burst: 10_000,
        limited: 1_000,
        rate: 50,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().context("flag needs a value")?;
        match flag.as_str() {
            "--burst" => o.burst = v.parse()?,
            "--limited" => o.limited = v.parse()?,
            "--rate" => o.rate = v.parse()?,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    Ok(o)
}

fn render_per_second() -> f64 {
    let f = Facts {
        dossier_code: "000.00.04.H42-260317-0042".into(),
        procedure_name: "Cấp Phiếu lý lịch tư pháp cho công dân Việt Nam".into(),
        agency_name: "Sở Tư pháp".into(),
        due_date: Some(jiff::civil::date(2026, 3, 31)),
        reason: None,
        missing_items: vec![],
        amount: None,
        link: "https://dichvucong.example.gov.vn/ho-so/000.00.04.H42-260317-0042".into(),
    };
    let n = 200_000;
    let started = Instant::now();
    let mut bytes = 0;
    for _ in 0..n {
        let sms = templates::sms(Topic::Received, Lang::Vi, &f, SmsStyle::default()).unwrap();
        let mail = templates::email(Topic::Received, Lang::Vi, &f);
        bytes += sms.len() + std::mem::size_of_val(&mail);
    }
    std::hint::black_box(bytes);
    n as f64 / started.elapsed().as_secs_f64()
}

/// A store with `n` received dossiers; their receipt events.
async fn dossiers(store: &EmbeddedStore, n: usize) -> anyhow::Result<Vec<EventEnvelope>> {
    let ports = store.submission_ports();
    for p in motcua_domain::catalogue::demo_catalogue() {
        ports.catalogue.put_procedure(&p).await?;
    }
    let now = jiff::Timestamp::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut events = Vec::with_capacity(n);
    for i in 0..n {
        let ports = ports.clone();
        tasks.spawn(async move {
            let (d, h, e) = motcua_ports::contract::sample("citizen-bench", i as u32 + 1, now);
            ports.dossiers.create(&d, &h, &e).await?;
            let officer = motcua_ports::contract::officer(&d.agency);
            let (d, h) = d
                .apply(&officer, &Command::Receive, now, WorkingCalendar::vietnam())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let e = EventEnvelope::dossier(&d, &h);
            ports.dossiers.transition(&d, &h, &e).await?;
            anyhow::Ok(e)
        });
        if tasks.len() >= 64
            && let Some(r) = tasks.join_next().await
        {
            events.push(r??);
        }
    }
    while let Some(r) = tasks.join_next().await {
        events.push(r??);
    }
    Ok(events)
}

fn state(
    store: &EmbeddedStore,
    sms_rate: u32,
    messages: &motcua_local::DevMessages,
) -> anyhow::Result<NotifyState> {
    let ports = store.submission_ports();
    let rate = sms_rate.to_string();
    let config = NotifyConfig::from_lookup(|k| match k {
        "MOTCUA_PORTAL_URL" => Some("https://dichvucong.example.gov.vn".into()),
        "MOTCUA_QUIET_HOURS" => Some("00:00-00:00".into()),
        "MOTCUA_RATE_SMS" => Some(rate.clone()),
        "MOTCUA_NOTIFY_BATCH" => Some("500".into()),
        _ => None,
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(NotifyState {
        dossiers: ports.dossiers.clone(),
        catalogue: ports.catalogue.clone(),
        accounts: None,
        ports: store.notification_ports(),
        senders: Senders::default().with(Arc::new(messages.sender(Channel::Sms))),
        dead_letters: Arc::new(LoggedDeadLetters),
        auth: Arc::new(motcua_http::Authenticator::new("motcua", "motcua", &[])?),
        clock: Arc::new(motcua_http::SystemClock::default()),
        config: Arc::new(config),
        receipt_secret: None,
    })
}

/// Plans every event, 64 at a time; the seconds it took.
async fn plan_all(s: &NotifyState, events: Vec<EventEnvelope>) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for e in events {
        let s = s.clone();
        tasks.spawn(async move { intake(&s, &e).await.map(|_| ()) });
        if tasks.len() >= 64
            && let Some(r) = tasks.join_next().await
        {
            r?.map_err(|e| anyhow::anyhow!("{e}"))?;
        }
    }
    while let Some(r) = tasks.join_next().await {
        r?.map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Runs dispatcher rounds until `n` messages are kept; the seconds it took, the messages
/// sent in each second, and the failures.
async fn drain(
    s: &NotifyState,
    messages: &motcua_local::DevMessages,
    n: usize,
) -> anyhow::Result<(f64, Vec<usize>, usize)> {
    let started = Instant::now();
    let mut per_second = vec![0usize];
    let mut failed = 0;
    let mut seen = messages.len();
    while messages.len() < n {
        let r = dispatch_due(s, jiff::Timestamp::now(), 64).await?;
        failed += r.failed + r.expired;
        let second = started.elapsed().as_secs() as usize;
        if per_second.len() <= second {
            per_second.resize(second + 1, 0);
        }
        per_second[second] += messages.len() - seen;
        seen = messages.len();
        if let Some(w) = r.throttled {
            tokio::time::sleep(Duration::from_millis(w.as_millis().clamp(1, 1000) as u64)).await;
        } else if r.due == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "not drained in 10 minutes"
        );
    }
    Ok((started.elapsed().as_secs_f64(), per_second, failed))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let o = options()?;
    println!(
        "render (SMS + email of a receipt), one thread: {:.0} messages/s",
        render_per_second()
    );

    let dir = std::env::temp_dir().join(format!("motcua-bench-notify-{}", uuid::Uuid::now_v7()));
    let store = EmbeddedStore::open(&dir)?;
    let messages = motcua_local::DevMessages::default();
    let s = state(&store, 0, &messages)?;
    let events = dossiers(&store, o.burst).await?;
    let planned = plan_all(&s, events).await?;
    println!(
        "plan {} receipt events (read dossier + history, render, record once): {:.2} s, {:.0} events/s",
        o.burst,
        planned,
        o.burst as f64 / planned
    );
    let (secs, _, failed) = drain(&s, &messages, o.burst).await?;
    println!(
        "drain {} SMS with no send rate: {:.2} s ({:.0}/s), failed or expired: {failed}; plan + drain {:.2} s",
        o.burst,
        secs,
        o.burst as f64 / secs,
        secs + planned
    );

    let dir = std::env::temp_dir().join(format!("motcua-bench-notify-{}", uuid::Uuid::now_v7()));
    let store = EmbeddedStore::open(&dir)?;
    let messages = motcua_local::DevMessages::default();
    let s = state(&store, o.rate, &messages)?;
    let events = dossiers(&store, o.limited).await?;
    plan_all(&s, events).await?;
    let (secs, per_second, failed) = drain(&s, &messages, o.limited).await?;
    let full: Vec<usize> = per_second[..per_second.len().saturating_sub(1)].to_vec();
    println!(
        "drain {} SMS at {}/s: {:.1} s, failed or expired: {failed}; per second min {} max {} (last partial second {})",
        o.limited,
        o.rate,
        secs,
        full.iter().min().copied().unwrap_or(0),
        full.iter().max().copied().unwrap_or(0),
        per_second.last().copied().unwrap_or(0)
    );
    Ok(())
}
