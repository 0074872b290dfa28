//! Settings of the uploads function, from environment variables, checked once at start.

use motcua_domain::upload::{FileType, UploadRules};
pub use motcua_http::config::ConfigError;
use motcua_http::config::number;

/// Which malware scanner checks arrived files (`MOTCUA_SCANNER`, required).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScannerSetting {
    /// `clamd:HOST:PORT`: ClamAV's daemon over TCP (`INSTREAM`).
    Clamd(String),
    /// `none`: files are not scanned; their records say `scan: skipped`.
    None,
}

#[derive(Debug, Clone)]
pub struct UploadsConfig {
    /// PDF, JPEG, PNG, and the office types in `MOTCUA_UPLOAD_OFFICE_TYPES` (comma-separated
    /// `docx`, `xlsx`, `odt`, `ods`; default none). `MOTCUA_UPLOAD_MAX_FILE_BYTES` (default
    /// 20 MiB) and `MOTCUA_UPLOAD_MAX_DOSSIER_BYTES` (default 100 MiB).
    pub rules: UploadRules,
    /// `MOTCUA_UPLOAD_URL_SECS` (default 300): how long an upload URL is valid.
    pub url_secs: u64,
    /// `MOTCUA_DOWNLOAD_URL_SECS` (default 60): how long a download URL is valid.
    pub download_secs: u64,
    /// `MOTCUA_UPLOAD_SLOTS_PER_HOUR` (default 100): slots one owner may open per hour.
    pub slots_per_hour: u32,
    /// `MOTCUA_SCANNER` (required): `clamd:HOST:PORT` or `none`.
    pub scanner: ScannerSetting,
    /// `MOTCUA_SCANNER_TIMEOUT_SECS` (default 30).
    pub scanner_timeout_secs: u64,
}

impl UploadsConfig {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let bad = |name: &'static str, why: String| ConfigError::Invalid { name, why };
        let mut types = FileType::BASE.to_vec();
        if let Some(list) = get("MOTCUA_UPLOAD_OFFICE_TYPES") {
            for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                match FileType::parse_name(name).filter(|t| FileType::OFFICE.contains(t)) {
                    Some(t) if !types.contains(&t) => types.push(t),
                    Some(_) => {}
                    None => {
                        return Err(bad(
                            "MOTCUA_UPLOAD_OFFICE_TYPES",
                            format!("'{name}' is not one of docx, xlsx, odt, ods"),
                        ));
                    }
                }
            }
        }
        let scanner = match get("MOTCUA_SCANNER").as_deref().map(str::trim) {
            Some("none") => ScannerSetting::None,
            Some(s) if s.starts_with("clamd:") && s.len() > "clamd:".len() => {
                ScannerSetting::Clamd(s["clamd:".len()..].to_owned())
            }
            Some(other) => {
                return Err(bad(
                    "MOTCUA_SCANNER",
                    format!("'{other}' is neither clamd:HOST:PORT nor none"),
                ));
            }
            None => return Err(ConfigError::Missing("MOTCUA_SCANNER")),
        };
        let max_file_bytes = number(
            "MOTCUA_UPLOAD_MAX_FILE_BYTES",
            get("MOTCUA_UPLOAD_MAX_FILE_BYTES"),
            20 * 1024 * 1024,
        )?;
        let max_dossier_bytes = number(
            "MOTCUA_UPLOAD_MAX_DOSSIER_BYTES",
            get("MOTCUA_UPLOAD_MAX_DOSSIER_BYTES"),
            100 * 1024 * 1024,
        )?;
        if max_file_bytes == 0 || max_dossier_bytes < max_file_bytes {
            return Err(bad(
                "MOTCUA_UPLOAD_MAX_DOSSIER_BYTES",
                "must be at least MOTCUA_UPLOAD_MAX_FILE_BYTES, which must not be 0".into(),
            ));
        }
        Ok(UploadsConfig {
            rules: UploadRules {
                types,
                max_file_bytes,
                max_dossier_bytes,
            },
            url_secs: number("MOTCUA_UPLOAD_URL_SECS", get("MOTCUA_UPLOAD_URL_SECS"), 300)?,
            download_secs: number(
                "MOTCUA_DOWNLOAD_URL_SECS",
                get("MOTCUA_DOWNLOAD_URL_SECS"),
                60,
            )?,
            slots_per_hour: number(
                "MOTCUA_UPLOAD_SLOTS_PER_HOUR",
                get("MOTCUA_UPLOAD_SLOTS_PER_HOUR"),
                100,
            )?,
            scanner,
            scanner_timeout_secs: number(
                "MOTCUA_SCANNER_TIMEOUT_SECS",
                get("MOTCUA_SCANNER_TIMEOUT_SECS"),
                30,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<UploadsConfig, ConfigError> {
        UploadsConfig::from_lookup(|k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn the_scanner_must_be_named_and_a_no_op_one_chosen_explicitly() {
        let missing = cfg(&[]).unwrap_err().to_string();
        assert!(missing.contains("MOTCUA_SCANNER"), "{missing}");
        assert!(cfg(&[("MOTCUA_SCANNER", "clamav")]).is_err());
        assert!(cfg(&[("MOTCUA_SCANNER", "clamd:")]).is_err());
        assert_eq!(
            cfg(&[("MOTCUA_SCANNER", "none")]).unwrap().scanner,
            ScannerSetting::None
        );
        let c = cfg(&[("MOTCUA_SCANNER", "clamd:127.0.0.1:3310")]).unwrap();
        assert_eq!(c.scanner, ScannerSetting::Clamd("127.0.0.1:3310".into()));
        assert_eq!(c.rules.types, FileType::BASE.to_vec());
    }

    #[test]
    fn office_types_and_limits_are_checked() {
        let c = cfg(&[
            ("MOTCUA_SCANNER", "none"),
            ("MOTCUA_UPLOAD_OFFICE_TYPES", "docx, xlsx"),
        ])
        .unwrap();
        assert!(c.rules.types.contains(&FileType::Docx));
        let e = cfg(&[
            ("MOTCUA_SCANNER", "none"),
            ("MOTCUA_UPLOAD_OFFICE_TYPES", "exe"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("MOTCUA_UPLOAD_OFFICE_TYPES"));
        let e = cfg(&[
            ("MOTCUA_SCANNER", "none"),
            ("MOTCUA_UPLOAD_MAX_FILE_BYTES", "2000"),
            ("MOTCUA_UPLOAD_MAX_DOSSIER_BYTES", "1000"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("MOTCUA_UPLOAD_MAX_DOSSIER_BYTES"));
    }
}
