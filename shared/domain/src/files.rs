//! What a file is, whatever its slot says: its real type by magic numbers, a name fit to
//! show and offer on download, its SHA-256 as S3 carries it.

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use utoipa::ToSchema;

/// The kinds of file a dossier may carry: PDF, JPEG and PNG always; office formats only
/// where the deployment allows them (`MOTCUA_UPLOAD_OFFICE_TYPES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileType {
    Pdf,
    Jpeg,
    Png,
    /// Word 2007+ (`.docx`).
    Docx,
    /// Excel 2007+ (`.xlsx`).
    Xlsx,
    /// OpenDocument text (`.odt`).
    Odt,
    /// OpenDocument spreadsheet (`.ods`).
    Ods,
}

impl FileType {
    /// Always allowed.
    pub const BASE: [FileType; 3] = [FileType::Pdf, FileType::Jpeg, FileType::Png];
    /// Allowed where configured.
    pub const OFFICE: [FileType; 4] =
        [FileType::Docx, FileType::Xlsx, FileType::Odt, FileType::Ods];

    pub fn mime(self) -> &'static str {
        match self {
            FileType::Pdf => "application/pdf",
            FileType::Jpeg => "image/jpeg",
            FileType::Png => "image/png",
            FileType::Docx => {
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            }
            FileType::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            FileType::Odt => "application/vnd.oasis.opendocument.text",
            FileType::Ods => "application/vnd.oasis.opendocument.spreadsheet",
        }
    }

    /// The type of a `Content-Type` value (parameters and case ignored).
    pub fn from_mime(mime: &str) -> Option<FileType> {
        let bare = mime.split(';').next().unwrap_or("").trim();
        Self::BASE
            .into_iter()
            .chain(Self::OFFICE)
            .find(|t| t.mime().eq_ignore_ascii_case(bare))
    }

    /// File name extensions of this type, lower case, without the dot.
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            FileType::Pdf => &["pdf"],
            FileType::Jpeg => &["jpg", "jpeg"],
            FileType::Png => &["png"],
            FileType::Docx => &["docx"],
            FileType::Xlsx => &["xlsx"],
            FileType::Odt => &["odt"],
            FileType::Ods => &["ods"],
        }
    }

    /// The name used in settings (`docx`, `xlsx`, …).
    pub fn as_str(self) -> &'static str {
        self.extensions()[0]
    }

    pub fn parse_name(s: &str) -> Option<FileType> {
        Self::BASE.into_iter().chain(Self::OFFICE).find(|t| {
            t.extensions()
                .contains(&s.trim().to_ascii_lowercase().as_str())
        })
    }
}

/// The real type of a file, from its first bytes (magic numbers), whatever its name or
/// declared type says. `None`: none of the kinds a dossier may carry.
pub fn sniff(bytes: &[u8]) -> Option<FileType> {
    let found = infer::get(bytes)?;
    FileType::from_mime(found.mime_type())
}

/// Longest file name kept, in characters.
pub const MAX_FILE_NAME_CHARS: usize = 200;

/// A file name as shown to people and offered on download: NFC, no path, no control or
/// direction-changing characters, an extension of its declared type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct FileName(String);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileNameProblem {
    Empty,
    TooLong,
    /// `/`, `\`, `..` or a leading dot: a path, not a name.
    Path,
    /// Control, format (e.g. right-to-left override) or reserved characters.
    Characters,
    /// The extension is not one of the declared type's.
    Extension,
}

impl FileName {
    pub fn parse(raw: &str, kind: FileType) -> Result<FileName, FileNameProblem> {
        let name: String = raw.trim().nfc().collect();
        if name.is_empty() {
            return Err(FileNameProblem::Empty);
        }
        if name.chars().count() > MAX_FILE_NAME_CHARS {
            return Err(FileNameProblem::TooLong);
        }
        if name.contains('/') || name.contains('\\') || name.starts_with('.') {
            return Err(FileNameProblem::Path);
        }
        let bad = |c: char| {
            c.is_control() || matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*') || invisible(c)
        };
        if name.chars().any(bad) {
            return Err(FileNameProblem::Characters);
        }
        let ext = name
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default();
        if !kind.extensions().contains(&ext.as_str()) {
            return Err(FileNameProblem::Extension);
        }
        Ok(FileName(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Characters that show nothing, or change how the rest shows: format characters
/// (direction marks and overrides, zero-width, soft hyphen, BOM, interlinear annotation,
/// tags), line and paragraph separators, fillers that render blank, private use. They make
/// `invoice<U+202E>fdp.exe` look like `invoiceexe.pdf`, or two names look alike.
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}'
        | '\u{200B}'..='\u{200F}'
        | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}'
        | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{FFF0}'..='\u{FFFB}'
        | '\u{E000}'..='\u{F8FF}'
        | '\u{E0000}'..='\u{E0FFF}'
        | '\u{F0000}'..='\u{10FFFF}')
}

/// A SHA-256 digest as S3's `x-amz-checksum-sha256` carries it: standard base64, padded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    pub fn parse_base64(s: &str) -> Option<Sha256Digest> {
        let bytes = base64_decode(s.trim())?;
        Some(Sha256Digest(bytes.try_into().ok()?))
    }

    pub fn to_base64(&self) -> String {
        base64_encode(&self.0)
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(B64[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Strict standard base64 with padding; `None` for anything else.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if s.is_empty() || !s.len().is_multiple_of(4) {
        return None;
    }
    let val = |c: u8| B64.iter().position(|&x| x == c).map(|p| p as u32);
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for (i, q) in s.chunks(4).enumerate() {
        let last = i == s.len() / 4 - 1;
        let pad = q.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &q[..4 - pad] {
            n = (n << 6) | val(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        // Non-canonical encodings (bits set in the padding) are refused.
        if (pad == 1 && bytes[2] != 0) || (pad == 2 && bytes[1] != 0) {
            return None;
        }
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

/// `attachment` with the name in RFC 6266 / 5987 form (UTF-8, percent-encoded), and an
/// ASCII fallback.
pub fn content_disposition(file_name: &str) -> String {
    let ascii: String = file_name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = percent_encode_rfc5987(file_name);
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

fn percent_encode_rfc5987(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PDF: &[u8] = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n";
    const PNG: &[u8] = &[
        0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, b'I', b'H', b'D', b'R',
    ];
    const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0, 16, b'J', b'F', b'I', b'F', 0];

    #[test]
    fn magic_bytes_decide_the_type() {
        assert_eq!(sniff(PDF), Some(FileType::Pdf));
        assert_eq!(sniff(PNG), Some(FileType::Png));
        assert_eq!(sniff(JPEG), Some(FileType::Jpeg));
        assert_eq!(sniff(b"MZ\x90\x00\x03\x00\x00\x00"), None, "an executable");
        assert_eq!(sniff(b"hello"), None);
    }

    #[test]
    fn file_names_are_names_not_paths_or_tricks() {
        use FileNameProblem as P;
        let ok = FileName::parse("  Giấy khai sinh.PDF ", FileType::Pdf).unwrap();
        assert_eq!(ok.as_str(), "Giấy khai sinh.PDF");
        // NFD input is stored NFC.
        let nfd = "Gia\u{0301}y.pdf";
        assert_eq!(
            FileName::parse(nfd, FileType::Pdf).unwrap().as_str(),
            "Giáy.pdf"
        );
        for (name, problem) in [
            ("", P::Empty),
            ("   ", P::Empty),
            ("../../etc/passwd.pdf", P::Path),
            ("a/b.pdf", P::Path),
            ("a\\b.pdf", P::Path),
            (".hidden.pdf", P::Path),
            ("a\nb.pdf", P::Characters),
            ("a\u{0}b.pdf", P::Characters),
            ("invoice\u{202E}fdp.exe", P::Characters),
            ("a:b.pdf", P::Characters),
            // Review finding: these passed.
            ("a\u{061C}b.pdf", P::Characters),
            ("a\u{00AD}b.pdf", P::Characters),
            ("a\u{180E}b.pdf", P::Characters),
            ("a\u{2028}b.pdf", P::Characters),
            ("a\u{FFF9}b.pdf", P::Characters),
            ("a\u{E0041}b.pdf", P::Characters),
            ("\u{3164}.pdf", P::Characters),
            ("a\u{E000}b.pdf", P::Characters),
            ("scan.jpg", P::Extension),
            ("scan", P::Extension),
        ] {
            assert_eq!(
                FileName::parse(name, FileType::Pdf),
                Err(problem),
                "{name:?}"
            );
        }
        let long = format!("{}.pdf", "a".repeat(MAX_FILE_NAME_CHARS));
        assert_eq!(FileName::parse(&long, FileType::Pdf), Err(P::TooLong));
        assert!(FileName::parse("scan.jpeg", FileType::Jpeg).is_ok());
    }

    #[test]
    fn checksums_are_strict_base64_of_32_bytes() {
        let d = Sha256Digest([0xAB; 32]);
        let b = d.to_base64();
        assert_eq!(b.len(), 44);
        assert_eq!(Sha256Digest::parse_base64(&b), Some(d));
        // The SHA-256 of the empty string, as S3 documents it.
        let empty =
            Sha256Digest::parse_base64("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=").unwrap();
        assert_eq!(empty.0[..4], [0xe3, 0xb0, 0xc4, 0x42]);
        for bad in [
            "",
            "abc",
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
            "47DEQpj8HBSa-_TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
            "AAAA",
            // 32 bytes need one '='; non-zero padding bits are not canonical.
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFV=",
        ] {
            assert_eq!(Sha256Digest::parse_base64(bad), None, "{bad:?}");
        }
        assert_eq!(base64_encode(b"ab"), "YWI=");
        assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
    }
}
