//! Recomputes every counter from the dossiers: the counters and applied contributions are
//! forgotten, then each dossier of each agency of the catalogue is applied as an event
//! would apply it. Applying is conditioned on what is applied, so events that come during
//! the rebuild are not counted twice; on DynamoDB, where forgetting is not one write,
//! pause the event source while forgetting (see `docs/functions/reports.md`).

use motcua_ports::{PageRequest, StoreError};
use serde::Serialize;

use crate::ReportState;
use crate::consume::{Outcome, sync};

/// What a rebuild did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Rebuilt {
    pub agencies: usize,
    /// Dossiers read.
    pub dossiers: u64,
    /// Dossiers whose contribution was (re)applied.
    pub applied: u64,
}

/// Forgets every counter, then applies every dossier.
pub async fn rebuild(s: &ReportState) -> Result<Rebuilt, StoreError> {
    s.kpi.reset().await?;
    catch_up(s).await
}

/// Applies every dossier whose applied contribution is missing or older than the dossier
/// (nothing else is written): what a runner does at start, and what repairs counters
/// after events were lost.
pub async fn catch_up(s: &ReportState) -> Result<Rebuilt, StoreError> {
    let mut agencies: Vec<_> = s
        .catalogue
        .procedures()
        .await?
        .into_iter()
        .map(|p| p.agency)
        .collect();
    agencies.sort();
    agencies.dedup();
    let mut done = Rebuilt {
        agencies: agencies.len(),
        dossiers: 0,
        applied: 0,
    };
    for agency in &agencies {
        let mut page = PageRequest::first(PageRequest::MAX_LIMIT);
        loop {
            let got = s.dossiers.agency_queue(agency, None, &page).await?;
            // A page at a time, its dossiers together (one commit for many on SQLite).
            let mut page_work = tokio::task::JoinSet::new();
            for d in got.items {
                let s = s.clone();
                page_work.spawn(async move { sync(&s, &d).await });
            }
            while let Some(r) = page_work.join_next().await {
                done.dossiers += 1;
                // A conflict: an event applied a newer version meanwhile; it stands.
                match r.map_err(|e| StoreError::Backend(e.to_string()))? {
                    Ok(Outcome::Applied) => done.applied += 1,
                    Ok(Outcome::Unchanged | Outcome::Ignored(_)) | Err(StoreError::Conflict) => {}
                    Err(e) => return Err(e),
                }
            }
            match got.next_cursor {
                Some(c) => page.cursor = Some(c),
                None => break,
            }
        }
    }
    Ok(done)
}
