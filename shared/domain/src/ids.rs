//! Identifiers that cannot hold an invalid value (DOMAIN.md, "Identifiers").

use std::fmt;

use jiff::civil::Date;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::i18n::{Lang, Localized};

/// Why an identifier was refused. Messages never repeat the refused value: it may be personal data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("expected {expected} digits")]
    Length { expected: &'static str },
    #[error("only digits are allowed")]
    NotDigits,
    #[error("unknown province code")]
    UnknownProvince,
    #[error("century/sex digit out of range")]
    Century,
    #[error("check digit does not match")]
    CheckDigit,
    #[error("sequence digits cannot all be zero")]
    ZeroSequence,
    #[error("branch suffix must be 001-999")]
    Branch,
    #[error("malformed agency code")]
    Agency,
    #[error("malformed dossier code")]
    DossierCode,
    #[error("not a Vietnamese phone number")]
    Phone,
}

impl Localized for IdError {
    fn message(&self, lang: Lang) -> String {
        match (self, lang) {
            (IdError::Length { expected }, Lang::En) => format!("must have {expected} digits"),
            (IdError::Length { expected }, Lang::Vi) => format!("phải có {expected} chữ số"),
            (IdError::NotDigits, Lang::En) => "must contain only digits".into(),
            (IdError::NotDigits, Lang::Vi) => "chỉ được chứa chữ số".into(),
            (IdError::UnknownProvince, Lang::En) => "starts with an unknown province code".into(),
            (IdError::UnknownProvince, Lang::Vi) => "có mã tỉnh không hợp lệ".into(),
            (IdError::Century, Lang::En) => "has an invalid century/sex digit".into(),
            (IdError::Century, Lang::Vi) => "có chữ số thế kỷ/giới tính không hợp lệ".into(),
            (IdError::CheckDigit, Lang::En) => "has a wrong check digit".into(),
            (IdError::CheckDigit, Lang::Vi) => "có chữ số kiểm tra không đúng".into(),
            (IdError::ZeroSequence, Lang::En) => "has an all-zero sequence".into(),
            (IdError::ZeroSequence, Lang::Vi) => "có dãy số thứ tự toàn số 0".into(),
            (IdError::Branch, Lang::En) => "has a branch suffix outside 001-999".into(),
            (IdError::Branch, Lang::Vi) => "có mã chi nhánh ngoài khoảng 001-999".into(),
            (IdError::Agency, Lang::En) => "is not an agency code like 000.00.04.G18".into(),
            (IdError::Agency, Lang::Vi) => "không phải mã cơ quan dạng 000.00.04.G18".into(),
            (IdError::DossierCode, Lang::En) => {
                "is not a dossier code like 000.00.04.G18-260317-0042".into()
            }
            (IdError::DossierCode, Lang::Vi) => {
                "không phải mã hồ sơ dạng 000.00.04.G18-260317-0042".into()
            }
            (IdError::Phone, Lang::En) => {
                "is not a Vietnamese phone number (0xxxxxxxxx or +84xxxxxxxxx)".into()
            }
            (IdError::Phone, Lang::Vi) => {
                "không phải số điện thoại Việt Nam (0xxxxxxxxx hoặc +84xxxxxxxxx)".into()
            }
        }
    }
}

macro_rules! string_newtype_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                <$t>::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl std::str::FromStr for $t {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                <$t>::parse(s)
            }
        }
    };
}

/// Province codes of the 63 provinces before the 2025 merger; issued numbers keep them.
pub const PROVINCES: &[(u16, &str)] = &[
    (1, "Hà Nội"),
    (2, "Hà Giang"),
    (4, "Cao Bằng"),
    (6, "Bắc Kạn"),
    (8, "Tuyên Quang"),
    (10, "Lào Cai"),
    (11, "Điện Biên"),
    (12, "Lai Châu"),
    (14, "Sơn La"),
    (15, "Yên Bái"),
    (17, "Hòa Bình"),
    (19, "Thái Nguyên"),
    (20, "Lạng Sơn"),
    (22, "Quảng Ninh"),
    (24, "Bắc Giang"),
    (25, "Phú Thọ"),
    (26, "Vĩnh Phúc"),
    (27, "Bắc Ninh"),
    (30, "Hải Dương"),
    (31, "Hải Phòng"),
    (33, "Hưng Yên"),
    (34, "Thái Bình"),
    (35, "Hà Nam"),
    (36, "Nam Định"),
    (37, "Ninh Bình"),
    (38, "Thanh Hóa"),
    (40, "Nghệ An"),
    (42, "Hà Tĩnh"),
    (44, "Quảng Bình"),
    (45, "Quảng Trị"),
    (46, "Thừa Thiên Huế"),
    (48, "Đà Nẵng"),
    (49, "Quảng Nam"),
    (51, "Quảng Ngãi"),
    (52, "Bình Định"),
    (54, "Phú Yên"),
    (56, "Khánh Hòa"),
    (58, "Ninh Thuận"),
    (60, "Bình Thuận"),
    (62, "Kon Tum"),
    (64, "Gia Lai"),
    (66, "Đắk Lắk"),
    (67, "Đắk Nông"),
    (68, "Lâm Đồng"),
    (70, "Bình Phước"),
    (72, "Tây Ninh"),
    (74, "Bình Dương"),
    (75, "Đồng Nai"),
    (77, "Bà Rịa–Vũng Tàu"),
    (79, "TP. Hồ Chí Minh"),
    (80, "Long An"),
    (82, "Tiền Giang"),
    (83, "Bến Tre"),
    (84, "Trà Vinh"),
    (86, "Vĩnh Long"),
    (87, "Đồng Tháp"),
    (89, "An Giang"),
    (91, "Kiên Giang"),
    (92, "Cần Thơ"),
    (93, "Hậu Giang"),
    (94, "Sóc Trăng"),
    (95, "Bạc Liêu"),
    (96, "Cà Mau"),
];

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Sex {
    Male,
    Female,
}

/// Where the birth behind a personal number was registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BirthPlace {
    Province {
        code: u16,
        name: &'static str,
    },
    /// A first digit other than 0 is a country code: birth registered abroad.
    Abroad {
        country: u16,
    },
}

/// Personal identification number (số định danh cá nhân): `PPP G YY RRRRRR`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CitizenId(String);

/// What disagrees between a personal number and a claimed birth date / sex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimMismatch {
    BirthYear,
    Sex,
}

impl CitizenId {
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let s = raw.trim();
        if !all_digits(s) {
            return Err(if s.len() == 12 {
                IdError::NotDigits
            } else {
                IdError::Length { expected: "12" }
            });
        }
        if s.len() != 12 {
            return Err(IdError::Length { expected: "12" });
        }
        let ppp: u16 = s[0..3].parse().map_err(|_| IdError::NotDigits)?;
        if s.as_bytes()[0] == b'0' && !PROVINCES.iter().any(|(c, _)| *c == ppp) {
            return Err(IdError::UnknownProvince);
        }
        // 0/1 → 1900s, 2/3 → 2000s. Later centuries are not born yet.
        let g = s.as_bytes()[3] - b'0';
        if g > 3 {
            return Err(IdError::Century);
        }
        Ok(CitizenId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn birth_place(&self) -> BirthPlace {
        let code: u16 = self.0[0..3].parse().unwrap_or_default();
        if self.0.as_bytes()[0] == b'0' {
            let name = PROVINCES
                .iter()
                .find(|(c, _)| *c == code)
                .map(|(_, n)| *n)
                .unwrap_or("");
            BirthPlace::Province { code, name }
        } else {
            BirthPlace::Abroad { country: code }
        }
    }

    pub fn sex(&self) -> Sex {
        if (self.0.as_bytes()[3] - b'0').is_multiple_of(2) {
            Sex::Male
        } else {
            Sex::Female
        }
    }

    pub fn birth_year(&self) -> i16 {
        let g = i16::from(self.0.as_bytes()[3] - b'0');
        let yy: i16 = self.0[4..6].parse().unwrap_or_default();
        1900 + 100 * (g / 2) + yy
    }

    /// Checks the number against a claimed birth date and sex; lists every disagreement.
    pub fn check_claim(&self, birth_date: Date, sex: Sex) -> Result<(), Vec<ClaimMismatch>> {
        let mut out = Vec::new();
        if birth_date.year() != self.birth_year() {
            out.push(ClaimMismatch::BirthYear);
        }
        if sex != self.sex() {
            out.push(ClaimMismatch::Sex);
        }
        if out.is_empty() { Ok(()) } else { Err(out) }
    }

    /// `037*******57`: enough for a person to recognise their own number, useless to anyone else.
    pub fn masked(&self) -> String {
        format!("{}*******{}", &self.0[0..3], &self.0[10..12])
    }
}

impl fmt::Debug for CitizenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CitizenId({})", self.masked())
    }
}
string_newtype_serde!(CitizenId);

/// Tax code / enterprise code (mã số thuế): 10 digits with a check digit, optionally a
/// `-NNN` branch (13 digits); individuals may use their 12-digit personal number.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TaxCode(String);

impl TaxCode {
    const WEIGHTS: [u32; 9] = [31, 29, 23, 19, 17, 13, 7, 5, 3];

    fn check_ten(s: &str) -> Result<(), IdError> {
        let d: Vec<u32> = s.bytes().map(|b| u32::from(b - b'0')).collect();
        if d[2..9].iter().all(|x| *x == 0) {
            return Err(IdError::ZeroSequence);
        }
        let sum: u32 = d[..9].iter().zip(Self::WEIGHTS).map(|(a, w)| a * w).sum();
        let rem = sum % 11;
        if rem == 0 || 10 - rem != d[9] {
            return Err(IdError::CheckDigit);
        }
        Ok(())
    }

    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let s = raw.trim();
        let compact: String = s.chars().filter(|c| *c != '-').collect();
        if !all_digits(&compact) {
            return Err(IdError::NotDigits);
        }
        match compact.len() {
            10 => {
                Self::check_ten(&compact)?;
                Ok(TaxCode(compact))
            }
            13 => {
                Self::check_ten(&compact[..10])?;
                if &compact[10..] == "000" {
                    return Err(IdError::Branch);
                }
                Ok(TaxCode(format!("{}-{}", &compact[..10], &compact[10..])))
            }
            12 => CitizenId::parse(&compact).map(|c| TaxCode(c.0)),
            _ => Err(IdError::Length {
                expected: "10, 12 or 13",
            }),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_branch(&self) -> bool {
        self.0.contains('-')
    }
}
string_newtype_serde!(TaxCode);

/// Agency code (mã định danh cơ quan, TT 10/2016/TT-BTTTT), e.g. `000.00.04.G18`, `H15.50.05.13`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgencyCode(String);

impl AgencyCode {
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let s = raw.trim();
        let parts: Vec<&str> = s.split('.').collect();
        if !(2..=4).contains(&parts.len()) {
            return Err(IdError::Agency);
        }
        let ok_part = |p: &str, lens: &[usize]| {
            lens.contains(&p.len())
                && p.bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        };
        if !ok_part(parts[0], &[3]) || !parts[1..].iter().all(|p| ok_part(p, &[2, 3])) {
            return Err(IdError::Agency);
        }
        Ok(AgencyCode(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
string_newtype_serde!(AgencyCode);

/// Dossier code (mã số hồ sơ, TT 01/2018/TT-VPCP Art. 19): `<agency>-<YYMMDD>-<NNNN>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DossierCode(String);

impl DossierCode {
    /// Builds the code of the `seq`-th dossier (1-based) of `agency` on `day`: at least four
    /// digits, more once a day passes 9,999.
    pub fn new(agency: &AgencyCode, day: Date, seq: u32) -> Self {
        DossierCode(format!(
            "{}-{:02}{:02}{:02}-{:04}",
            agency.0,
            day.year() % 100,
            day.month(),
            day.day(),
            seq
        ))
    }

    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let s = raw.trim();
        let mut it = s.rsplitn(3, '-');
        let (Some(seq), Some(day), Some(agency)) = (it.next(), it.next(), it.next()) else {
            return Err(IdError::DossierCode);
        };
        AgencyCode::parse(agency).map_err(|_| IdError::DossierCode)?;
        if day.len() != 6 || !all_digits(day) || seq.len() < 4 || !all_digits(seq) {
            return Err(IdError::DossierCode);
        }
        let (yy, mm, dd): (i16, i8, i8) = (
            day[0..2].parse().unwrap_or(0),
            day[2..4].parse().unwrap_or(0),
            day[4..6].parse().unwrap_or(0),
        );
        if Date::new(2000 + yy, mm, dd).is_err() {
            return Err(IdError::DossierCode);
        }
        if seq.parse::<u64>().map_or(true, |n| n == 0) {
            return Err(IdError::DossierCode);
        }
        Ok(DossierCode(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn agency(&self) -> AgencyCode {
        let mut it = self.0.rsplitn(3, '-');
        it.next();
        it.next();
        AgencyCode(it.next().unwrap_or_default().to_owned())
    }
}
string_newtype_serde!(DossierCode);

/// A Vietnamese phone number, stored in E.164 (`+84…`); accepts local `0xxxxxxxxx` input.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let cleaned: String = raw
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '.' | '-' | '(' | ')'))
            .collect();
        let national = if let Some(rest) = cleaned.strip_prefix("+84") {
            rest.to_owned()
        } else if let Some(rest) = cleaned.strip_prefix("0084") {
            rest.to_owned()
        } else if let Some(rest) = cleaned.strip_prefix('0') {
            rest.to_owned()
        } else if cleaned.len() == 11 && cleaned.starts_with("84") {
            cleaned[2..].to_owned()
        } else {
            return Err(IdError::Phone);
        };
        if !all_digits(&national) {
            return Err(IdError::Phone);
        }
        let first = national.as_bytes()[0];
        let ok = match first {
            // mobile: 03x, 05x, 07x, 08x, 09x + 7 digits
            b'3' | b'5' | b'7' | b'8' | b'9' => national.len() == 9,
            // landline: 02xx + 7/8 digits
            b'2' => national.len() == 10,
            _ => false,
        };
        if !ok {
            return Err(IdError::Phone);
        }
        Ok(PhoneNumber(format!("+84{national}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number as a Vietnamese reader writes it: `0912345678`.
    pub fn national(&self) -> String {
        format!("0{}", &self.0[3..])
    }

    /// Last four digits only, for screens and logs.
    pub fn masked(&self) -> String {
        format!("+84*****{}", &self.0[self.0.len() - 4..])
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}
string_newtype_serde!(PhoneNumber);

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn citizen_id_worked_example() {
        let id = CitizenId::parse("037153000257").unwrap();
        assert_eq!(
            id.birth_place(),
            BirthPlace::Province {
                code: 37,
                name: "Ninh Bình"
            }
        );
        assert_eq!(id.sex(), Sex::Female);
        assert_eq!(id.birth_year(), 1953);
        assert!(id.check_claim(date(1953, 4, 2), Sex::Female).is_ok());
        assert_eq!(
            id.check_claim(date(1954, 4, 2), Sex::Male).unwrap_err(),
            vec![ClaimMismatch::BirthYear, ClaimMismatch::Sex]
        );
        assert_eq!(id.masked(), "037*******57");
        assert!(!format!("{id:?}").contains("153000"));
    }

    #[test]
    fn citizen_id_rejects() {
        assert_eq!(
            CitizenId::parse("03715300025"),
            Err(IdError::Length { expected: "12" })
        );
        assert_eq!(CitizenId::parse("03715300025x"), Err(IdError::NotDigits));
        assert_eq!(
            CitizenId::parse("003153000257"),
            Err(IdError::UnknownProvince)
        );
        assert_eq!(CitizenId::parse("001453000257"), Err(IdError::Century));
        // 2000s, male
        let id = CitizenId::parse("079205001234").unwrap();
        assert_eq!((id.birth_year(), id.sex()), (2005, Sex::Male));
        // abroad: first digit not 0
        assert!(matches!(
            CitizenId::parse("840190001234").unwrap().birth_place(),
            BirthPlace::Abroad { country: 840 }
        ));
    }

    #[test]
    fn tax_codes() {
        assert_eq!(TaxCode::parse("0100233488").unwrap().as_str(), "0100233488");
        assert_eq!(TaxCode::parse("0100233489"), Err(IdError::CheckDigit));
        assert_eq!(
            TaxCode::parse("0100233488-001").unwrap().as_str(),
            "0100233488-001"
        );
        assert_eq!(
            TaxCode::parse("0100233488001").unwrap().as_str(),
            "0100233488-001"
        );
        assert_eq!(TaxCode::parse("0100233488-000"), Err(IdError::Branch));
        assert_eq!(TaxCode::parse("0100000000"), Err(IdError::ZeroSequence));
        assert!(TaxCode::parse("037153000257").is_ok());
        assert!(TaxCode::parse("12345").is_err());
    }

    #[test]
    fn agency_and_dossier_codes() {
        let a = AgencyCode::parse("000.00.04.G18").unwrap();
        assert!(AgencyCode::parse("H15.50.05.13").is_ok());
        assert!(AgencyCode::parse("G22.91").is_ok());
        assert!(AgencyCode::parse("g22.91").is_err());
        assert!(AgencyCode::parse("G22-91").is_err());
        let c = DossierCode::new(&a, date(2026, 3, 17), 42);
        assert_eq!(c.as_str(), "000.00.04.G18-260317-0042");
        assert_eq!(DossierCode::parse(c.as_str()).unwrap(), c);
        assert_eq!(c.agency(), a);
        let wide = DossierCode::new(&a, date(2026, 3, 17), 12345);
        assert_eq!(wide.as_str(), "000.00.04.G18-260317-12345");
        assert!(DossierCode::parse(wide.as_str()).is_ok());
        assert!(DossierCode::parse("000.00.04.G18-261317-0042").is_err());
        assert!(DossierCode::parse("000.00.04.G18-260317-042").is_err());
        assert!(DossierCode::parse("000.00.04.G18-260317-0000").is_err());
        assert!(DossierCode::parse("nonsense").is_err());
    }

    #[test]
    fn phones() {
        for raw in [
            "0912345678",
            "+84912345678",
            "84912345678",
            "091 234 5678",
            "0912.345.678",
        ] {
            assert_eq!(
                PhoneNumber::parse(raw).unwrap().as_str(),
                "+84912345678",
                "{raw}"
            );
        }
        assert_eq!(
            PhoneNumber::parse("02439876543").unwrap().as_str(),
            "+842439876543"
        );
        assert_eq!(
            PhoneNumber::parse("0912345678").unwrap().national(),
            "0912345678"
        );
        for bad in ["012345678", "0112345678", "+1 555 0100", "091234567x", ""] {
            assert!(PhoneNumber::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            PhoneNumber::parse("0912345678").unwrap().masked(),
            "+84*****5678"
        );
    }
}
