//! The two languages every message exists in.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Vietnamese, the default for a Vietnamese public portal.
    #[default]
    Vi,
    En,
}

impl Lang {
    /// Picks the language from an `Accept-Language` header: the first of `vi` / `en` by
    /// quality, Vietnamese when neither is asked for.
    pub fn from_accept_language(header: Option<&str>) -> Lang {
        let Some(h) = header else { return Lang::Vi };
        let mut best: Option<(f32, Lang)> = None;
        for part in h.split(',') {
            let mut it = part.trim().split(';');
            let tag = it.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = it
                .find_map(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|v| v.parse::<f32>().ok())
                })
                .unwrap_or(1.0);
            let lang = if tag == "en" || tag.starts_with("en-") {
                Lang::En
            } else if tag == "vi" || tag.starts_with("vi-") {
                Lang::Vi
            } else {
                continue;
            };
            if best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
        best.map(|(_, l)| l).unwrap_or(Lang::Vi)
    }

    pub fn pick<'a>(self, vi: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Vi => vi,
            Lang::En => en,
        }
    }
}

/// Something that can explain itself to a citizen in either language.
pub trait Localized {
    fn message(&self, lang: Lang) -> String;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language() {
        assert_eq!(Lang::from_accept_language(None), Lang::Vi);
        assert_eq!(Lang::from_accept_language(Some("en-US,en;q=0.9")), Lang::En);
        assert_eq!(
            Lang::from_accept_language(Some("fr, en;q=0.5, vi;q=0.8")),
            Lang::Vi
        );
        assert_eq!(Lang::from_accept_language(Some("fr")), Lang::Vi);
        assert_eq!(
            Lang::from_accept_language(Some("vi-VN;q=0.2, en;q=0.3")),
            Lang::En
        );
    }
}
