//! Settings of the reports function, from environment variables, checked once at start.

use motcua_domain::kpi::score::Scoring;
pub use motcua_http::config::ConfigError;

#[derive(Debug, Clone, Default)]
pub struct ReportConfig {
    /// `MOTCUA_KPI_SCORING`: a JSON object naming the indicators whose rule (points,
    /// threshold) or target differ from the defaults of DOMAIN.md, e.g.
    /// `{"online_filing": {"rule": {"threshold": {"at": 0.6, "points": 6, "below": 3}}, "target": 0.6}}`.
    pub scoring: Scoring,
}

impl ReportConfig {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let scoring = match get("MOTCUA_KPI_SCORING").filter(|v| !v.trim().is_empty()) {
            Some(json) => Scoring::with_overrides(&json).map_err(|why| ConfigError::Invalid {
                name: "MOTCUA_KPI_SCORING",
                why,
            })?,
            None => Scoring::default(),
        };
        Ok(ReportConfig { scoring })
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_variable_of_a_bad_scoring() {
        let e = ReportConfig::from_lookup(|k| {
            (k == "MOTCUA_KPI_SCORING").then(|| r#"{"speed": {}}"#.to_owned())
        })
        .unwrap_err();
        assert!(e.to_string().contains("MOTCUA_KPI_SCORING"), "{e}");
        assert!(ReportConfig::from_lookup(|_| None).is_ok());
    }
}
