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
    pub dossiers: u64,
}

pub async fn rebuild(s: &ReportState) -> Result<Rebuilt, StoreError> {
    s.kpi.reset().await?;
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
    };
    for agency in &agencies {
        let mut page = PageRequest::first(PageRequest::MAX_LIMIT);
        loop {
            let got = s.dossiers.agency_queue(agency, None, &page).await?;
            for d in &got.items {
                // A conflict: an event applied a newer version meanwhile; it stands.
                match sync(s, d).await {
                    Ok(Outcome::Applied | Outcome::Unchanged | Outcome::Ignored(_))
                    | Err(StoreError::Conflict) => done.dossiers += 1,
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
