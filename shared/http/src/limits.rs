//! Limits on failed attempts (verifications, public lookups): so many failures of a key
//! within a window, then 429 with `Retry-After` until the oldest counted failure ages out.

use axum::http::{HeaderMap, StatusCode};
use jiff::Timestamp;
use motcua_ports::identity::AttemptLimiter;

use crate::problem::Problem;
use crate::store_problem;

/// The header our own proxy (the CDN in front of the API) adds, holding the shared
/// secret that tells its requests from a caller's who reached the API directly.
pub const PROXY_SECRET_HEADER: &str = "x-motcua-proxy-secret";

/// Which `X-Forwarded-For` entries the per-client limits may trust: `hops` proxies we run
/// in front of the API, believed only for requests that carry their `secret` in
/// [`PROXY_SECRET_HEADER`]. A caller reaching API Gateway directly cannot show the secret,
/// so for them only the entry API Gateway itself appended counts: they cannot choose the
/// address the limits see.
#[derive(Clone, Default)]
pub struct ProxyTrust {
    hops: usize,
    secret: Vec<u8>,
}

impl std::fmt::Debug for ProxyTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyTrust")
            .field("hops", &self.hops)
            .finish_non_exhaustive()
    }
}

impl ProxyTrust {
    /// No proxy: clients reach API Gateway (or the runner) directly.
    pub fn none() -> ProxyTrust {
        ProxyTrust::default()
    }

    /// `hops` proxies of ours, whose requests carry `secret` (at least 16 characters).
    pub fn new(hops: usize, secret: Option<&str>) -> Result<ProxyTrust, String> {
        match (hops, secret.map(str::trim).filter(|s| !s.is_empty())) {
            (0, _) => Ok(ProxyTrust::none()),
            (_, Some(s)) if s.len() >= 16 => Ok(ProxyTrust {
                hops,
                secret: s.as_bytes().to_vec(),
            }),
            _ => Err(
                "MOTCUA_TRUSTED_PROXY_HOPS needs MOTCUA_PROXY_SECRET (16+ characters), the value \
                 the proxy sends in X-Motcua-Proxy-Secret"
                    .into(),
            ),
        }
    }

    /// The hops to skip for this request: ours only if it shows the secret.
    fn hops_for(&self, headers: &HeaderMap) -> usize {
        if self.hops == 0 {
            return 0;
        }
        let shown = headers
            .get(PROXY_SECRET_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        let same = shown.len() == self.secret.len()
            && shown
                .iter()
                .zip(&self.secret)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if same { self.hops } else { 0 }
    }
}

/// The key of the calling client: an address of `X-Forwarded-For`, counted from the end.
/// Each proxy appends the address it received the request from, and a client can put
/// anything in front, so only the entries added by proxies we run can be trusted: with
/// `trusted_hops` proxies in front of the API (0 when clients reach API Gateway directly,
/// 1 behind a CDN) the client is the entry `trusted_hops` places before the last.
/// `local` without the header (the runner, called directly).
pub fn client_key_of(headers: &HeaderMap, proxies: &ProxyTrust) -> String {
    client_key(headers, proxies.hops_for(headers))
}

/// [`client_key_of`] with a hop count already decided.
pub fn client_key(headers: &HeaderMap, trusted_hops: usize) -> String {
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let ip = entries
        .len()
        .checked_sub(1 + trusted_hops)
        .map(|i| entries[i])
        .or_else(|| entries.first().copied())
        .unwrap_or("local");
    format!("client:{ip}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_client_is_counted_from_the_end() {
        assert_eq!(client_key(&HeaderMap::new(), 0), "client:local");
        assert_eq!(client_key(&xff(&["203.0.113.7"]), 0), "client:203.0.113.7");
        // A forged address in front does not change who the client is.
        let forged = xff(&["10.9.9.9, 203.0.113.7"]);
        assert_eq!(client_key(&forged, 0), "client:203.0.113.7");
        // Behind a CDN (one trusted hop) the CDN's own entry is skipped.
        let cdn = xff(&["10.9.9.9, 203.0.113.7, 198.51.100.1"]);
        assert_eq!(client_key(&cdn, 1), "client:203.0.113.7");
        // Fewer entries than hops: the first there is.
        assert_eq!(client_key(&xff(&["203.0.113.7"]), 2), "client:203.0.113.7");
        // Repeated headers count as one list.
        assert_eq!(
            client_key(&xff(&["10.9.9.9", "203.0.113.7"]), 0),
            "client:203.0.113.7"
        );
    }

    #[test]
    fn proxy_hops_are_believed_only_for_requests_of_our_proxy() {
        let trust = ProxyTrust::new(1, Some("cdn-secret-0123456789")).unwrap();
        // Through the CDN: it shows the secret, its own entry is skipped.
        let mut via_cdn = xff(&["10.9.9.9, 203.0.113.7, 198.51.100.1"]);
        via_cdn.insert(
            PROXY_SECRET_HEADER,
            "cdn-secret-0123456789".parse().unwrap(),
        );
        assert_eq!(client_key_of(&via_cdn, &trust), "client:203.0.113.7");
        // Straight to API Gateway with a forged list: the address API Gateway saw counts,
        // whatever the caller wrote in front of it.
        let direct = xff(&["10.9.9.9, 198.51.100.77"]);
        assert_eq!(client_key_of(&direct, &trust), "client:198.51.100.77");
        let mut wrong = direct.clone();
        wrong.insert(
            PROXY_SECRET_HEADER,
            "cdn-secret-0123456780".parse().unwrap(),
        );
        assert_eq!(client_key_of(&wrong, &trust), "client:198.51.100.77");
        // Hops need a secret.
        assert!(ProxyTrust::new(1, None).is_err());
        assert!(ProxyTrust::new(1, Some("short")).is_err());
        assert_eq!(
            client_key_of(&direct, &ProxyTrust::new(0, None).unwrap()),
            "client:198.51.100.77"
        );
    }
}

/// `failures` within `window_secs` lock a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    pub failures: u32,
    pub window_secs: i64,
}

/// Attempts counted before the work they limit; released when the attempt turns out not
/// to be a failure (a success, an outage), kept otherwise.
#[must_use = "release the reservation unless the attempt failed"]
#[derive(Debug, Default)]
pub struct Reservation {
    held: Vec<(String, String)>,
}

impl Reservation {
    /// The attempt failed: it stays counted.
    pub fn keep(self) {}
}

impl Lockout {
    fn too_many(
        &self,
        failures: &[Timestamp],
        limit: usize,
        now: Timestamp,
        what: (&str, &str),
    ) -> Problem {
        let oldest = failures[failures.len().saturating_sub(limit)];
        let retry = (oldest.as_second() + self.window_secs - now.as_second()).max(1) as u64;
        Problem::new(
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
        .retry_after(retry)
    }

    fn since(&self, now: Timestamp) -> Timestamp {
        Timestamp::from_second(now.as_second() - self.window_secs).unwrap_or(now)
    }

    /// Refuses (429 `too-many-attempts`, `Retry-After`) when `key` failed too often within
    /// the window; `what` names the attempts in the detail (Vietnamese, English).
    pub async fn check(
        &self,
        limiter: &dyn AttemptLimiter,
        key: &str,
        now: Timestamp,
        what: (&str, &str),
    ) -> Result<(), Problem> {
        let limit = self.failures.max(1) as usize;
        let failures = limiter
            .failures_since(key, self.since(now), limit)
            .await
            .map_err(store_problem)?;
        if failures.len() < limit {
            return Ok(());
        }
        Err(self.too_many(&failures, limit, now, what))
    }

    /// Counts an attempt against every key *before* the attempt is made, then refuses
    /// (429, and takes the count back) if any key is over the limit. Each attempt is
    /// recorded before it is counted, so of any number of concurrent attempts at most
    /// `failures` per window are let through: the n-th recorded sees at least n entries.
    pub async fn reserve(
        &self,
        limiter: &dyn AttemptLimiter,
        keys: &[&str],
        now: Timestamp,
        what: (&str, &str),
    ) -> Result<Reservation, Problem> {
        let limit = self.failures.max(1) as usize;
        let mut r = Reservation::default();
        for k in keys {
            match limiter.reserve(k, now).await {
                Ok(h) => r.held.push(((*k).to_owned(), h)),
                Err(e) => {
                    self.release(limiter, r).await;
                    return Err(store_problem(e));
                }
            }
        }
        for k in keys {
            let failures = match limiter
                .failures_since(k, self.since(now), limit.saturating_add(1))
                .await
            {
                Ok(f) => f,
                Err(e) => {
                    self.release(limiter, r).await;
                    return Err(store_problem(e));
                }
            };
            if failures.len() > limit {
                self.release(limiter, r).await;
                return Err(self.too_many(&failures[..failures.len() - 1], limit, now, what));
            }
        }
        Ok(r)
    }

    /// Takes the attempts of `r` back (the attempt did not fail). Best effort: a release
    /// that cannot be stored leaves a count that ages out with the window.
    pub async fn release(&self, limiter: &dyn AttemptLimiter, r: Reservation) {
        for (k, h) in r.held {
            if let Err(e) = limiter.release(&k, &h).await {
                tracing::warn!(error = %e, "an attempt could not be released");
            }
        }
    }
}
