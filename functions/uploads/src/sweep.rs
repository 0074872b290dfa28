//! The sweeper: slots that never received a file expire, and quarantine objects nobody
//! will verify are removed. Run on a schedule on AWS, on a timer by the runner.

use jiff::{SignedDuration, Timestamp};
use motcua_domain::upload::{QUARANTINE_PREFIX, UploadStatus, upload_of_key};
use motcua_ports::StoreError;
use motcua_ports::uploads::UploadPorts;

use crate::verify::Retry;

/// How long after its URL expired a slot may still receive its event (a PUT that started
/// in time and an event that arrives late).
pub const GRACE: SignedDuration = SignedDuration::from_hours(1);
/// A quarantine object older than this is no longer waiting for its event.
pub const QUARANTINE_MAX_AGE: SignedDuration = SignedDuration::from_hours(24);

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Slots marked expired.
    pub expired: usize,
    /// Quarantine objects removed.
    pub removed: usize,
}

/// One pass, at most `batch` slots and `batch` objects.
pub async fn sweep(ports: &UploadPorts, now: Timestamp, batch: u32) -> Result<Swept, Retry> {
    let mut out = Swept::default();
    for mut u in ports.uploads.stale_uploads(now - GRACE, batch).await? {
        u.status = UploadStatus::Expired;
        u.settled_at = Some(now);
        match ports.uploads.settle_upload(&u).await {
            Ok(()) => out.expired += 1,
            // Verified or rejected meanwhile: that stands.
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
        ports.objects.delete(&u.quarantine_key()).await?;
    }
    let old = ports
        .objects
        .older_than(QUARANTINE_PREFIX, now - QUARANTINE_MAX_AGE, batch)
        .await?;
    for key in old {
        let awaiting = match upload_of_key(&key) {
            Some(id) => ports
                .uploads
                .upload(id)
                .await?
                .is_some_and(|u| u.status == UploadStatus::AwaitingFile),
            None => false,
        };
        if !awaiting {
            ports.objects.delete(&key).await?;
            out.removed += 1;
        }
    }
    if out != Swept::default() {
        tracing::info!(
            expired = out.expired,
            removed = out.removed,
            "uploads swept"
        );
    }
    Ok(out)
}
