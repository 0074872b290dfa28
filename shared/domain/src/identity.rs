//! Identity rules: comparing what a person claims with what a registry holds.

use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use utoipa::ToSchema;

use crate::ids::Sex;

/// A name as compared: NFC-normalised (so composed and decomposed input agree), trimmed,
/// inner whitespace collapsed to one space, lower-cased. Diacritics stay significant:
/// "Nguyễn" and "Nguyen" are different names.
pub fn normalize_name(raw: &str) -> String {
    let nfc: String = raw.nfc().collect();
    nfc.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

pub fn names_match(a: &str, b: &str) -> bool {
    normalize_name(a) == normalize_name(b)
}

/// Whether one claimed field agrees with the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldMatch {
    Match,
    Mismatch,
}

impl FieldMatch {
    fn of(ok: bool) -> FieldMatch {
        if ok {
            FieldMatch::Match
        } else {
            FieldMatch::Mismatch
        }
    }
}

/// A person as the population registry knows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryPerson {
    pub full_name: String,
    pub birth_date: Date,
    pub sex: Sex,
    /// The mobile number the registry holds for the person (E.164), where one codes can
    /// be sent to: the only number a sign-in code ever goes to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

/// Field-by-field comparison of a claim with the registry's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PersonComparison {
    pub full_name: FieldMatch,
    pub birth_date: FieldMatch,
    pub sex: FieldMatch,
}

impl PersonComparison {
    pub fn compare(claim: &RegistryPerson, record: &RegistryPerson) -> PersonComparison {
        PersonComparison {
            full_name: FieldMatch::of(names_match(&claim.full_name, &record.full_name)),
            birth_date: FieldMatch::of(claim.birth_date == record.birth_date),
            sex: FieldMatch::of(claim.sex == record.sex),
        }
    }

    pub fn all_match(&self) -> bool {
        [self.full_name, self.birth_date, self.sex]
            .iter()
            .all(|m| *m == FieldMatch::Match)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(names_match("Nguyễn Thị Lan", "  nguyễn   THỊ lan "));
        // Decomposed input (e + combining marks) equals the composed form.
        let decomposed: String = "Nguyễn".nfd().collect();
        assert_ne!(decomposed, "Nguyễn");
        assert!(names_match(&decomposed, "NGUYỄN"));
        // Diacritics are significant.
        assert!(!names_match("Nguyễn", "Nguyen"));
        assert!(!names_match("Lê", "Lệ"));
        assert_eq!(normalize_name("ĐẶNG  văn\tĐức"), "đặng văn đức");
    }
}
