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

/// `MOTCUA_JWT_SECRETS` (its value `raw`): comma-separated base64 HS256 secrets of at least
/// 32 bytes, the first signs, all verify. Unset or empty: none (HS256 off).
pub fn jwt_secrets(raw: Option<String>) -> Result<Vec<Vec<u8>>, ConfigError> {
    use base64::Engine;
    let raw = raw.unwrap_or_default();
    raw.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|part| {
            let key = base64::engine::general_purpose::STANDARD
                .decode(part)
                .map_err(|_| ConfigError::Invalid {
                    name: "MOTCUA_JWT_SECRETS",
                    why: "not base64".into(),
                })?;
            if key.len() < 32 {
                return Err(ConfigError::Invalid {
                    name: "MOTCUA_JWT_SECRETS",
                    why: "each secret needs at least 32 bytes".into(),
                });
            }
            Ok(key)
        })
        .collect()
}
