//! Limits on failed attempts (verifications, public lookups): so many failures of a key
//! within a window, then 429 with `Retry-After` until the oldest counted failure ages out.

use axum::http::{HeaderMap, StatusCode};
use jiff::Timestamp;
use motcua_ports::identity::AttemptLimiter;

use crate::problem::Problem;
use crate::store_problem;

/// The key of the calling client: the first address of `X-Forwarded-For` (API Gateway and
/// the runner set it), `local` without one.
pub fn client_key(headers: &HeaderMap) -> String {
    let ip = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("local");
    format!("client:{ip}")
}

/// `failures` within `window_secs` lock a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    pub failures: u32,
    pub window_secs: i64,
}

impl Lockout {
    /// Refuses (429 `too-many-attempts`, `Retry-After`) when `key` failed too often within
    /// the window; `what` names the attempts in the detail (Vietnamese, English).
    pub async fn check(
        &self,
        limiter: &dyn AttemptLimiter,
        key: &str,
        now: Timestamp,
        what: (&str, &str),
    ) -> Result<(), Problem> {
        let since = Timestamp::from_second(now.as_second() - self.window_secs).unwrap_or(now);
        let failures = limiter
            .failures_since(key, since)
            .await
            .map_err(store_problem)?;
        let limit = self.failures.max(1) as usize;
        if failures.len() < limit {
            return Ok(());
        }
        let oldest = failures[failures.len() - limit];
        let retry = (oldest.as_second() + self.window_secs - now.as_second()).max(1) as u64;
        Err(Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-attempts",
            "Quá nhiều lần thử",
            "Too many attempts",
        )
        .detail(
            format!(
                "{} sai quá nhiều lần; vui lòng thử lại sau {} phút",
                what.0,
                retry.div_ceil(60)
            ),
            format!(
                "Too many failed {}; try again in {} minute(s)",
                what.1,
                retry.div_ceil(60)
            ),
        )
        .retry_after(retry))
    }

    /// Counts a failure against every key.
    pub async fn record(
        &self,
        limiter: &dyn AttemptLimiter,
        keys: &[&str],
        now: Timestamp,
    ) -> Result<(), Problem> {
        for k in keys {
            limiter
                .record_failure(k, now)
                .await
                .map_err(store_problem)?;
        }
        Ok(())
    }
}
