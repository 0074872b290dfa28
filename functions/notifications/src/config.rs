//! Settings of the notifications function, from environment variables, checked once at
//! start.

use std::collections::{BTreeMap, HashMap};

use jiff::SignedDuration;
use motcua_domain::AgencyCode;
use motcua_domain::notify::{Channel, QuietHours, RetryPolicy, Topic};
use motcua_domain::templates::SmsStyle;
pub use motcua_http::config::ConfigError;
use motcua_http::config::number;

#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// `MOTCUA_QUIET_HOURS` (default `21:00-07:00`, Vietnam time; equal ends: none).
    pub quiet: QuietHours,
    /// `MOTCUA_NOTIFY_MAX_ATTEMPTS` (default 6), `MOTCUA_NOTIFY_RETRY_SECS` (first delay,
    /// default 30, doubled each time up to 1,800), `MOTCUA_NOTIFY_VALIDITY_HOURS`
    /// (default 24).
    pub retry: RetryPolicy,
    /// `MOTCUA_SMS_UNICODE` (default false: unaccented), `MOTCUA_SMS_MAX_SEGMENTS`
    /// (default 2).
    pub sms: SmsStyle,
    /// `MOTCUA_PORTAL_URL`: the portal, for links to a dossier
    /// (`<portal>/ho-so/<code>`).
    pub portal_url: String,
    /// Sends per second per channel: `MOTCUA_RATE_SMS`, `MOTCUA_RATE_EMAIL`,
    /// `MOTCUA_RATE_ZALO` (default 30, 14, 30; 0: no limit).
    pub rates: HashMap<Channel, u32>,
    /// `MOTCUA_ZALO_TEMPLATES`: approved ZNS template ids per topic, as JSON
    /// (`{"received": "231245", …}`); a topic without one is not sent on Zalo.
    pub zalo_templates: HashMap<Topic, String>,
    /// `MOTCUA_DIGEST_MAILBOXES`: where each agency's daily digest goes, as JSON
    /// (`{"000.00.04.H42": "motcua@stp.example.gov.vn"}`).
    pub digest_mailboxes: BTreeMap<AgencyCode, String>,
    /// `MOTCUA_NOTIFY_LEASE_SECS` (default 120): how long an attempt may take before
    /// another dispatcher reconciles it.
    pub lease: SignedDuration,
    /// `MOTCUA_NOTIFY_BATCH` (default 100): deliveries one dispatch round takes.
    pub batch: u32,
    /// `MOTCUA_NOTIFY_COURTESY_PER_DAY` (default 20): courtesy messages (those a citizen's
    /// own clicks trigger: submitted, withdrawn…) one applicant gets per day, counted
    /// before they are planned; the law's messages are not capped.
    pub courtesy_per_day: u32,
}

impl NotifyConfig {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let bad = |name: &'static str, why: &str| ConfigError::Invalid {
            name,
            why: why.to_owned(),
        };
        let quiet = match get("MOTCUA_QUIET_HOURS") {
            None => QuietHours::default(),
            Some(s) => {
                QuietHours::parse(&s).ok_or_else(|| bad("MOTCUA_QUIET_HOURS", "not HH:MM-HH:MM"))?
            }
        };
        let max_attempts: u32 = number(
            "MOTCUA_NOTIFY_MAX_ATTEMPTS",
            get("MOTCUA_NOTIFY_MAX_ATTEMPTS"),
            6,
        )?;
        if !(1..=20).contains(&max_attempts) {
            return Err(bad("MOTCUA_NOTIFY_MAX_ATTEMPTS", "between 1 and 20"));
        }
        let first: u64 = number(
            "MOTCUA_NOTIFY_RETRY_SECS",
            get("MOTCUA_NOTIFY_RETRY_SECS"),
            30,
        )?;
        let validity: u64 = number(
            "MOTCUA_NOTIFY_VALIDITY_HOURS",
            get("MOTCUA_NOTIFY_VALIDITY_HOURS"),
            24,
        )?;
        if !(1..=24 * 7).contains(&validity) {
            return Err(bad("MOTCUA_NOTIFY_VALIDITY_HOURS", "between 1 and 168"));
        }
        let retry = RetryPolicy {
            max_attempts,
            first_delay: SignedDuration::from_secs(first.clamp(1, 3600) as i64),
            max_delay: SignedDuration::from_mins(30),
            validity: SignedDuration::from_hours(validity as i64),
        };
        let unicode = match get("MOTCUA_SMS_UNICODE").as_deref().map(str::trim) {
            None | Some("") | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(_) => return Err(bad("MOTCUA_SMS_UNICODE", "true or false")),
        };
        let max_segments: usize =
            number("MOTCUA_SMS_MAX_SEGMENTS", get("MOTCUA_SMS_MAX_SEGMENTS"), 2)?;
        if !(1..=6).contains(&max_segments) {
            return Err(bad("MOTCUA_SMS_MAX_SEGMENTS", "between 1 and 6"));
        }
        let portal_url = get("MOTCUA_PORTAL_URL")
            .map(|u| u.trim().trim_end_matches('/').to_owned())
            .filter(|u| !u.is_empty())
            .ok_or(ConfigError::Missing("MOTCUA_PORTAL_URL"))?;
        if !(portal_url.starts_with("https://") || portal_url.starts_with("http://")) {
            return Err(bad("MOTCUA_PORTAL_URL", "an http(s) URL"));
        }
        let mut rates = HashMap::new();
        for (channel, name, default) in [
            (Channel::Sms, "MOTCUA_RATE_SMS", 30),
            (Channel::Email, "MOTCUA_RATE_EMAIL", 14),
            (Channel::Zalo, "MOTCUA_RATE_ZALO", 30),
        ] {
            rates.insert(channel, number(name, get(name), default)?);
        }
        let zalo_templates = match get("MOTCUA_ZALO_TEMPLATES") {
            None => HashMap::new(),
            Some(json) => {
                let raw: HashMap<String, String> = serde_json::from_str(&json).map_err(|_| {
                    bad(
                        "MOTCUA_ZALO_TEMPLATES",
                        "a JSON object of topic to template id",
                    )
                })?;
                let mut out = HashMap::new();
                for (topic, id) in raw {
                    let t = Topic::parse(&topic).ok_or_else(|| {
                        bad(
                            "MOTCUA_ZALO_TEMPLATES",
                            &format!("'{topic}' is not a topic"),
                        )
                    })?;
                    if id.is_empty()
                        || id.len() > 64
                        || !id.chars().all(|c| c.is_ascii_alphanumeric())
                    {
                        return Err(bad(
                            "MOTCUA_ZALO_TEMPLATES",
                            "template ids are 1-64 letters or digits",
                        ));
                    }
                    out.insert(t, id);
                }
                out
            }
        };
        let digest_mailboxes = match get("MOTCUA_DIGEST_MAILBOXES") {
            None => BTreeMap::new(),
            Some(json) => {
                let raw: BTreeMap<String, String> = serde_json::from_str(&json).map_err(|_| {
                    bad(
                        "MOTCUA_DIGEST_MAILBOXES",
                        "a JSON object of agency code to address",
                    )
                })?;
                let mut out = BTreeMap::new();
                for (agency, mailbox) in raw {
                    let code = AgencyCode::parse(&agency).map_err(|_| {
                        bad(
                            "MOTCUA_DIGEST_MAILBOXES",
                            &format!("'{agency}' is not an agency code"),
                        )
                    })?;
                    if !mailbox.contains('@') || mailbox.len() > 254 {
                        return Err(bad("MOTCUA_DIGEST_MAILBOXES", "addresses must be emails"));
                    }
                    out.insert(code, mailbox);
                }
                out
            }
        };
        let lease: u64 = number(
            "MOTCUA_NOTIFY_LEASE_SECS",
            get("MOTCUA_NOTIFY_LEASE_SECS"),
            120,
        )?;
        let batch: u32 = number("MOTCUA_NOTIFY_BATCH", get("MOTCUA_NOTIFY_BATCH"), 100)?;
        let courtesy_per_day: u32 = number(
            "MOTCUA_NOTIFY_COURTESY_PER_DAY",
            get("MOTCUA_NOTIFY_COURTESY_PER_DAY"),
            20,
        )?;
        Ok(NotifyConfig {
            quiet,
            retry,
            sms: SmsStyle {
                unicode,
                max_segments,
            },
            portal_url,
            rates,
            zalo_templates,
            digest_mailboxes,
            lease: SignedDuration::from_secs(lease.clamp(10, 900) as i64),
            batch: batch.clamp(1, 1000),
            courtesy_per_day,
        })
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// The portal's page of a dossier.
    pub fn dossier_link(&self, code: &str) -> String {
        format!("{}/ho-so/{code}", self.portal_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(vars: &[(&str, &str)]) -> Result<NotifyConfig, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        NotifyConfig::from_lookup(|k| vars.get(k).cloned())
    }

    #[test]
    fn defaults_and_errors_name_the_variable() {
        assert_eq!(
            with(&[]).unwrap_err(),
            ConfigError::Missing("MOTCUA_PORTAL_URL")
        );
        let c = with(&[("MOTCUA_PORTAL_URL", "https://dvc.example.gov.vn/")]).unwrap();
        assert_eq!(c.quiet, QuietHours::default());
        assert_eq!(c.retry, RetryPolicy::default());
        assert_eq!(c.sms, SmsStyle::default());
        assert_eq!(c.dossier_link("G1"), "https://dvc.example.gov.vn/ho-so/G1");
        assert_eq!(c.rates[&Channel::Email], 14);
        for (name, value) in [
            ("MOTCUA_QUIET_HOURS", "late"),
            ("MOTCUA_NOTIFY_MAX_ATTEMPTS", "0"),
            ("MOTCUA_SMS_UNICODE", "yes please"),
            ("MOTCUA_SMS_MAX_SEGMENTS", "9"),
            ("MOTCUA_ZALO_TEMPLATES", "{\"nonsense\": \"1\"}"),
            ("MOTCUA_ZALO_TEMPLATES", "{\"received\": \"a b\"}"),
            ("MOTCUA_DIGEST_MAILBOXES", "{\"H42\": \"x@y.vn\"}"),
            ("MOTCUA_RATE_SMS", "many"),
        ] {
            let err = with(&[
                ("MOTCUA_PORTAL_URL", "https://dvc.example.gov.vn"),
                (name, value),
            ])
            .unwrap_err();
            assert!(err.to_string().starts_with(name), "{name}={value}: {err}");
        }
        let c = with(&[
            ("MOTCUA_PORTAL_URL", "https://dvc.example.gov.vn"),
            ("MOTCUA_ZALO_TEMPLATES", "{\"received\": \"231245\"}"),
            (
                "MOTCUA_DIGEST_MAILBOXES",
                "{\"000.00.04.H42\": \"motcua@stp.example.gov.vn\"}",
            ),
            ("MOTCUA_QUIET_HOURS", "22:00-06:30"),
        ])
        .unwrap();
        assert_eq!(c.zalo_templates[&Topic::Received], "231245");
        assert_eq!(c.digest_mailboxes.len(), 1);
        assert_eq!(c.quiet, QuietHours::parse("22:00-06:30").unwrap());
    }
}
