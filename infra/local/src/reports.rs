//! The reports function in the runner: fed by the in-process bus (embedded) or by an SQS
//! queue the bus's rule fills (`--backend aws`); at start it brings every dossier's
//! counters up to date in the background (a data directory from before the reports, or
//! events lost while the runner was down).
//!
//! Environment: the function's own (`docs/functions/reports.md`).

use std::sync::Arc;

use async_trait::async_trait;
use motcua_domain::EventEnvelope;
use motcua_ports::reports::KpiStore;
use motcua_ports::{EventPublisher, StoreResult};
use motcua_reports::consume::apply_event;
use motcua_reports::{ReportConfig, ReportState};
use motcua_submission::AppState;

/// The function's state in the runner.
pub fn state(submission: &AppState, kpi: Arc<dyn KpiStore>) -> anyhow::Result<ReportState> {
    let config = ReportConfig::from_env().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(ReportState {
        dossiers: submission.ports.dossiers.clone(),
        catalogue: submission.ports.catalogue.clone(),
        kpi,
        auth: submission.auth.clone(),
        clock: submission.clock.clone(),
        config: Arc::new(config),
    })
}

/// Feeds the in-process bus's events to the counters; an event that could not be counted
/// stays in the outbox and comes again.
pub struct Consumer(pub ReportState);

#[async_trait]
impl EventPublisher for Consumer {
    async fn publish(&self, events: &[EventEnvelope]) -> StoreResult<Vec<uuid::Uuid>> {
        let mut failed = Vec::new();
        for e in events {
            if let Err(err) = apply_event(&self.0, e).await {
                tracing::warn!(event = %e.id, error = %err, "counting failed; retried");
                failed.push(e.id);
            }
        }
        Ok(failed)
    }
}

/// Brings every dossier's counters up to date, in the background.
pub fn catch_up(state: &ReportState) {
    let s = state.clone();
    tokio::spawn(async move {
        match motcua_reports::rebuild::catch_up(&s).await {
            Ok(done) if done.applied > 0 => {
                tracing::info!(
                    dossiers = done.dossiers,
                    applied = done.applied,
                    "KPI counters caught up"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "catching up the KPI counters failed"),
        }
    });
}

/// `--backend aws`: the queue a bus rule fills, polled as the Lambda event source would.
pub async fn poll_aws(
    conf: &aws_config::SdkConfig,
    bus: &str,
    state: &ReportState,
) -> anyhow::Result<()> {
    let queue = crate::notify::bus_queue(conf, bus, "reports", "MOTCUA_REPORTS_QUEUE").await?;
    let s = state.clone();
    crate::notify::poll_with(conf, queue, "reports", move |batch| {
        let s = s.clone();
        Box::pin(async move { motcua_reports::lambda::handle_events(&s, &batch).await })
    });
    Ok(())
}
