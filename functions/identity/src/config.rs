//! Configuration from environment variables, checked once at start-up.

use std::time::Duration;

pub use motcua_http::config::ConfigError;
use motcua_http::config::number;

pub use motcua_http::id_hash::IdHashKeys;

/// Settings of the identity function.
#[derive(Clone)]
pub struct IdentityConfig {
    /// `MOTCUA_ID_HASH_KEY`: base64 key (≥ 32 bytes) of the keyed hash of ID numbers.
    pub id_hash_key: Vec<u8>,
    /// `MOTCUA_ID_HASH_KEY` as a key set: every key that may have hashed a stored record.
    pub id_hash_keys: IdHashKeys,
    /// `MOTCUA_REGISTRY_URL`: base URL of the population and business registries.
    pub registry_url: String,
    /// `MOTCUA_REGISTRY_API_KEY` (optional).
    pub registry_api_key: Option<String>,
    /// `MOTCUA_REGISTRY_TIMEOUT_MS` (default 3000) per attempt.
    pub registry_timeout: Duration,
    /// `MOTCUA_LOCKOUT_FAILURES` (default 5) failures within
    /// `MOTCUA_LOCKOUT_WINDOW_SECS` (default 1800) lock the ID / client for the window.
    pub lockout_failures: u32,
    pub lockout_window_secs: i64,
    /// `MOTCUA_TRUSTED_PROXY_HOPS` (default 0): proxies we run in front of the API (a CDN);
    /// for requests showing `MOTCUA_PROXY_SECRET` in `X-Motcua-Proxy-Secret` (required
    /// with hops) the client address is read that many entries before the end of
    /// `X-Forwarded-For`; for any other request, the last entry (what API Gateway saw).
    pub proxies: motcua_http::ProxyTrust,
    /// `MOTCUA_ACCESS_TOKEN_TTL_SECS` (default 900).
    pub access_token_ttl_secs: i64,
    /// `MOTCUA_REFRESH_TOKEN_TTL_SECS` (default 30 days).
    pub refresh_token_ttl_secs: i64,
    /// `MOTCUA_REFRESH_GRACE_SECS` (default 10, at most 60): a refresh token presented
    /// again this soon after its first use is a retry (the same successor is answered),
    /// not a replay that revokes the sign-in.
    pub refresh_grace_secs: i64,
    /// `MOTCUA_CODE_TTL_SECS` (default 300): how long a sign-in code is valid.
    pub code_ttl_secs: i64,
    /// `MOTCUA_CODE_TRIES` (default 5): wrong codes before a code is dead.
    pub code_tries: u32,
    /// `MOTCUA_CODE_SENDS` (default 3) codes per number within
    /// `MOTCUA_CODE_SEND_WINDOW_SECS` (default 900).
    pub code_sends: u32,
    pub code_send_window_secs: i64,
    /// `MOTCUA_CODE_SENDS_PER_CLIENT` (default 20) codes per client address within the
    /// same window (a one-stop shop signs many people in from one address).
    pub code_sends_per_client: u32,
    /// `MOTCUA_LOGINS_PER_CLIENT` (default 1000): e-ID sign-ins started per client address
    /// within `MOTCUA_CODE_SEND_WINDOW_SECS` (each keeps a state for 10 minutes): bounds
    /// storage, high enough that nobody on a shared address can close the e-ID path.
    pub logins_per_client: u32,
    /// `MOTCUA_CODE_FAILURES_PER_DAY` (default 20): wrong codes per number per day, over
    /// all its codes, before its code path closes for the day (the e-ID stays open).
    pub code_failures_per_day: u32,
}

impl std::fmt::Debug for IdentityConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityConfig")
            .field("registry_url", &self.registry_url)
            .field("lockout_failures", &self.lockout_failures)
            .finish_non_exhaustive()
    }
}

impl IdentityConfig {
    /// The lock-out of failed verifications.
    pub fn lockout(&self) -> motcua_http::Lockout {
        motcua_http::Lockout {
            failures: self.lockout_failures,
            window_secs: self.lockout_window_secs,
        }
    }

    /// Failed verifications per client address: four times the per-number lock-out, as a
    /// one-stop shop or a carrier's shared address serves many people.
    pub fn lockout_per_client(&self) -> motcua_http::Lockout {
        motcua_http::Lockout {
            failures: self.lockout_failures.saturating_mul(4),
            window_secs: self.lockout_window_secs,
        }
    }

    /// Wrong sign-in codes per number per day, over all its codes.
    pub fn code_failures_per_day(&self) -> motcua_http::Lockout {
        motcua_http::Lockout {
            failures: self.code_failures_per_day,
            window_secs: 86_400,
        }
    }

    /// Codes sent per number.
    pub fn code_sends(&self) -> motcua_http::Lockout {
        motcua_http::Lockout {
            failures: self.code_sends,
            window_secs: self.code_send_window_secs,
        }
    }

    /// Codes sent per client address.
    pub fn code_sends_per_client(&self) -> motcua_http::Lockout {
        motcua_http::Lockout {
            failures: self.code_sends_per_client,
            window_secs: self.code_send_window_secs,
        }
    }

    /// e-ID sign-ins started per client address.
    pub fn logins_per_client(&self) -> motcua_http::Lockout {
        motcua_http::Lockout {
            failures: self.logins_per_client,
            window_secs: self.code_send_window_secs,
        }
    }

    /// Wrong codes per challenge, over the code's life.
    pub fn code_tries(&self) -> motcua_http::Lockout {
        motcua_http::Lockout {
            failures: self.code_tries,
            window_secs: self.code_ttl_secs,
        }
    }

    /// Wrong codes per client address (four times the verification lock-out).
    pub fn code_tries_per_client(&self) -> motcua_http::Lockout {
        motcua_http::Lockout {
            failures: self.lockout_failures.saturating_mul(4),
            window_secs: self.lockout_window_secs,
        }
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let key_raw =
            get("MOTCUA_ID_HASH_KEY").ok_or(ConfigError::Missing("MOTCUA_ID_HASH_KEY"))?;
        let id_hash_keys = IdHashKeys::parse(&key_raw).map_err(|why| ConfigError::Invalid {
            name: "MOTCUA_ID_HASH_KEY",
            why,
        })?;
        IdentityConfig {
            id_hash_key: id_hash_keys.current().1.to_vec(),
            id_hash_keys,
            registry_url: get("MOTCUA_REGISTRY_URL")
                .ok_or(ConfigError::Missing("MOTCUA_REGISTRY_URL"))?,
            registry_api_key: get("MOTCUA_REGISTRY_API_KEY"),
            registry_timeout: Duration::from_millis(number(
                "MOTCUA_REGISTRY_TIMEOUT_MS",
                get("MOTCUA_REGISTRY_TIMEOUT_MS"),
                3000,
            )?),
            lockout_failures: number("MOTCUA_LOCKOUT_FAILURES", get("MOTCUA_LOCKOUT_FAILURES"), 5)?,
            lockout_window_secs: number(
                "MOTCUA_LOCKOUT_WINDOW_SECS",
                get("MOTCUA_LOCKOUT_WINDOW_SECS"),
                1800,
            )?,
            proxies: motcua_http::ProxyTrust::new(
                number(
                    "MOTCUA_TRUSTED_PROXY_HOPS",
                    get("MOTCUA_TRUSTED_PROXY_HOPS"),
                    0,
                )?,
                get("MOTCUA_PROXY_SECRET").as_deref(),
            )
            .map_err(|why| ConfigError::Invalid {
                name: "MOTCUA_TRUSTED_PROXY_HOPS",
                why,
            })?,
            access_token_ttl_secs: number(
                "MOTCUA_ACCESS_TOKEN_TTL_SECS",
                get("MOTCUA_ACCESS_TOKEN_TTL_SECS"),
                900,
            )?,
            refresh_token_ttl_secs: number(
                "MOTCUA_REFRESH_TOKEN_TTL_SECS",
                get("MOTCUA_REFRESH_TOKEN_TTL_SECS"),
                30 * 86_400,
            )?,
            refresh_grace_secs: match number(
                "MOTCUA_REFRESH_GRACE_SECS",
                get("MOTCUA_REFRESH_GRACE_SECS"),
                10,
            )? {
                g @ 0..=60 => g,
                _ => {
                    return Err(ConfigError::Invalid {
                        name: "MOTCUA_REFRESH_GRACE_SECS",
                        why: "at most 60 seconds".into(),
                    });
                }
            },
            code_ttl_secs: number("MOTCUA_CODE_TTL_SECS", get("MOTCUA_CODE_TTL_SECS"), 300)?,
            code_tries: number("MOTCUA_CODE_TRIES", get("MOTCUA_CODE_TRIES"), 5)?,
            code_sends: number("MOTCUA_CODE_SENDS", get("MOTCUA_CODE_SENDS"), 3)?,
            code_send_window_secs: number(
                "MOTCUA_CODE_SEND_WINDOW_SECS",
                get("MOTCUA_CODE_SEND_WINDOW_SECS"),
                900,
            )?,
            code_sends_per_client: number(
                "MOTCUA_CODE_SENDS_PER_CLIENT",
                get("MOTCUA_CODE_SENDS_PER_CLIENT"),
                20,
            )?,
            logins_per_client: number(
                "MOTCUA_LOGINS_PER_CLIENT",
                get("MOTCUA_LOGINS_PER_CLIENT"),
                1000,
            )?,
            code_failures_per_day: number(
                "MOTCUA_CODE_FAILURES_PER_DAY",
                get("MOTCUA_CODE_FAILURES_PER_DAY"),
                20,
            )?,
        }
        .check_windows()
    }

    /// Windows longer than a day would outlive the attempts the stores keep (a day).
    fn check_windows(self) -> Result<Self, ConfigError> {
        for (name, secs) in [
            ("MOTCUA_LOCKOUT_WINDOW_SECS", self.lockout_window_secs),
            ("MOTCUA_CODE_SEND_WINDOW_SECS", self.code_send_window_secs),
            ("MOTCUA_CODE_TTL_SECS", self.code_ttl_secs),
        ] {
            if !(1..=86_400).contains(&secs) {
                return Err(ConfigError::Invalid {
                    name,
                    why: "must be between 1 and 86400 seconds".into(),
                });
            }
        }
        Ok(self)
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// The registry client settings derived from this configuration.
    pub fn registry_client(&self) -> motcua_registry::RegistryClientConfig {
        let mut c = motcua_registry::RegistryClientConfig::new(self.registry_url.clone());
        c.api_key = self.registry_api_key.clone();
        c.timeout = self.registry_timeout;
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    #[test]
    fn names_what_is_missing_or_wrong() {
        assert_eq!(
            IdentityConfig::from_lookup(|_| None)
                .unwrap_err()
                .to_string(),
            "MOTCUA_ID_HASH_KEY is required"
        );
        let key = STANDARD.encode([3u8; 32]);
        let err = IdentityConfig::from_lookup(|k| (k == "MOTCUA_ID_HASH_KEY").then(|| key.clone()))
            .unwrap_err();
        assert_eq!(err.to_string(), "MOTCUA_REGISTRY_URL is required");
        let ok = IdentityConfig::from_lookup(|k| match k {
            "MOTCUA_ID_HASH_KEY" => Some(key.clone()),
            "MOTCUA_REGISTRY_URL" => Some("http://127.0.0.1:9".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(ok.lockout_failures, 5);
        // A window longer than the day the stores keep attempts is refused.
        let err = IdentityConfig::from_lookup(|k| match k {
            "MOTCUA_ID_HASH_KEY" => Some(key.clone()),
            "MOTCUA_REGISTRY_URL" => Some("http://127.0.0.1:9".into()),
            "MOTCUA_LOCKOUT_WINDOW_SECS" => Some("172800".into()),
            _ => None,
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("MOTCUA_LOCKOUT_WINDOW_SECS"),
            "{err}"
        );
        assert!(!format!("{ok:?}").contains(&key));
    }

    #[test]
    fn the_id_hash_key_is_one_key_or_a_set_with_ids() {
        let k1 = STANDARD.encode([1u8; 32]);
        let k2 = STANDARD.encode([2u8; 32]);
        let single = IdHashKeys::parse(&k1).unwrap();
        assert_eq!(single.current().0, IdHashKeys::SINGLE);
        let set = IdHashKeys::parse(
            &serde_json::json!({"current": "k2", "keys": {"k0": k1, "k2": k2}}).to_string(),
        )
        .unwrap();
        assert_eq!(set.current(), ("k2", [2u8; 32].as_slice()));
        let ids: Vec<&str> = set.all().map(|(id, _)| id).collect();
        assert_eq!(ids, ["k2", "k0"], "the current key first");
        // No key in the debug output.
        assert!(!format!("{set:?}").contains(&k2));
        assert_eq!(set.owner().0, "k0", "k0 owns unless named");
        let named = IdHashKeys::parse(
            &serde_json::json!({"current": "k2", "owner": "k1", "keys": {"k1": k1, "k2": k2}})
                .to_string(),
        )
        .unwrap();
        assert_eq!(named.owner(), ("k1", [1u8; 32].as_slice()));
        for bad in [
            // The owner key left the set.
            serde_json::json!({"current": "k2", "keys": {"k2": k2}}).to_string(),
            serde_json::json!({"current": "k9", "keys": {"k0": k1}}).to_string(),
            serde_json::json!({"keys": {"k0": k1}}).to_string(),
            serde_json::json!({"current": "k0", "keys": {"k0": "c2hvcnQ="}}).to_string(),
            "{not json".to_string(),
            "c2hvcnQ=".to_string(),
        ] {
            assert!(IdHashKeys::parse(&bad).is_err(), "{bad}");
        }
    }
}
