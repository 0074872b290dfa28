//! Reading configuration from the environment: errors that name the variable.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("{name} is invalid: {why}")]
    Invalid { name: &'static str, why: String },
}

/// The number in variable `name` (its value `raw`), or `default` when unset.
pub fn number<T: std::str::FromStr>(
    name: &'static str,
    raw: Option<String>,
    default: T,
) -> Result<T, ConfigError> {
    match raw {
        None => Ok(default),
        Some(s) => s.trim().parse().map_err(|_| ConfigError::Invalid {
            name,
            why: "not a number".into(),
        }),
    }
}
