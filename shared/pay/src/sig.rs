//! Signing pieces the providers share: form encoding as their sample code does it, HMAC in
//! hex, and comparisons in constant time.

use std::borrow::Cow;

pub use ring::hmac::{Algorithm, HMAC_SHA256, HMAC_SHA512};

/// How a form encoder treats the characters outside `A-Z a-z 0-9`: VNPay's own samples
/// disagree (PHP `urlencode`, Java `URLEncoder`, .NET `WebUtility.UrlEncode`, Node's
/// `encodeURIComponent`, Python's `quote_plus`). All turn a space into `+`, encode every
/// other byte as `%XX` (upper-case hex, UTF-8) and keep `-`, `_` and `.`; they differ only
/// on `! ' ( ) * ~`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// PHP `urlencode`: keeps `-_.` only. What we send, and what we check first.
    Php,
    /// Java `URLEncoder`: also keeps `*`.
    Java,
    /// .NET `WebUtility.UrlEncode`: also keeps `! ( ) *`.
    Dotnet,
    /// Node `encodeURIComponent` with `%20` → `+`: also keeps `! ' ( ) * ~`.
    Node,
    /// Python `urllib.parse.quote_plus`: also keeps `~`.
    Python,
}

/// The other encodings a signature may have been made with, tried only when a value holds
/// a character they treat differently.
pub const OTHER_ENCODINGS: [Encoding; 4] = [
    Encoding::Java,
    Encoding::Dotnet,
    Encoding::Node,
    Encoding::Python,
];

impl Encoding {
    fn keeps(self, b: u8) -> bool {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            return true;
        }
        match self {
            Encoding::Php => false,
            Encoding::Java => b == b'*',
            Encoding::Dotnet => matches!(b, b'!' | b'(' | b')' | b'*'),
            Encoding::Node => matches!(b, b'!' | b'\'' | b'(' | b')' | b'*' | b'~'),
            Encoding::Python => b == b'~',
        }
    }
}

/// Whether the encodings disagree on `s`.
pub fn ambiguous(s: &str) -> bool {
    s.bytes()
        .any(|b| matches!(b, b'!' | b'\'' | b'(' | b')' | b'*' | b'~'))
}

/// Decoded `key=value` pairs, borrowing what needed no decoding.
pub type Pairs<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Appends `s` form-encoded.
pub fn form_encode_into(out: &mut String, s: &str, enc: Encoding) {
    let mut bytes = std::mem::take(out).into_bytes();
    form_encode_bytes(&mut bytes, s.as_bytes(), enc);
    // Only ASCII was added to valid UTF-8.
    *out = String::from_utf8(bytes).unwrap_or_default();
}

/// Appends `s` form-encoded, copying runs of kept bytes at once: what a callback's
/// verification spends most of its time on besides the HMAC.
pub fn form_encode_bytes(out: &mut Vec<u8>, s: &[u8], enc: Encoding) {
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        if enc.keeps(b) {
            continue;
        }
        out.extend_from_slice(&s[start..i]);
        if b == b' ' {
            out.push(b'+');
        } else {
            out.extend_from_slice(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&s[start..]);
}

pub fn form_encode(s: &str, enc: Encoding) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    form_encode_into(&mut out, s, enc);
    out
}

fn unhex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes one form-encoded component (`+` is a space); `None` if a `%` is not followed
/// by two hex digits or the bytes are not UTF-8. Borrows when nothing is encoded.
pub fn form_decode(s: &str) -> Option<Cow<'_, str>> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Some(Cow::Borrowed(s));
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = unhex(*bytes.get(i + 1)?)?;
                let lo = unhex(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

/// The pairs of a query string or form body, decoded, in order; `None` if one does not
/// decode or there are more than `max` of them.
pub fn form_pairs(raw: &str, max: usize) -> Option<Pairs<'_>> {
    let mut out = Vec::with_capacity(24);
    for part in raw.split('&') {
        if part.is_empty() {
            continue;
        }
        if out.len() == max {
            return None;
        }
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        out.push((form_decode(k)?, form_decode(v)?));
    }
    Some(out)
}

pub fn hmac_hex(alg: Algorithm, key: &[u8], msg: &[u8]) -> String {
    let key = ring::hmac::Key::new(alg, key);
    hex::encode(ring::hmac::sign(&key, msg).as_ref())
}

/// Whether `signature` (hex, either case) is the HMAC of `msg`, in constant time.
pub fn hmac_matches(key: &ring::hmac::Key, msg: &[u8], signature: &str) -> bool {
    let mut ctx = ring::hmac::Context::with_key(key);
    ctx.update(msg);
    tag_matches(ctx.sign().as_ref(), signature)
}

/// Whether `signature` (hex, either case) spells `tag`, compared in constant time.
pub fn tag_matches(tag: &[u8], signature: &str) -> bool {
    let sig = signature.as_bytes();
    if sig.len() != tag.len() * 2 {
        return false;
    }
    let (mut diff, mut bad) = (0u8, 0u8);
    for (i, pair) in sig.chunks_exact(2).enumerate() {
        let (h, l) = (HEX_VALUE[pair[0] as usize], HEX_VALUE[pair[1] as usize]);
        bad |= (h | l) & 0x80;
        diff |= ((h << 4) | (l & 15)) ^ tag[i];
    }
    bad == 0 && diff == 0
}

/// The value of a hex digit (either case); 0x80 for any other byte.
const HEX_VALUE: [u8; 256] = {
    let mut t = [0x80u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => 0x80,
        };
        b += 1;
    }
    t
};

pub fn sha256_hex(msg: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, msg).as_ref())
}

/// Equal, in time that depends only on the lengths.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_agree_but_on_six_characters() {
        let s = "Thanh toán 100% ~ a+b*c (x)!'";
        assert_eq!(
            form_encode(s, Encoding::Php),
            "Thanh+to%C3%A1n+100%25+%7E+a%2Bb%2Ac+%28x%29%21%27"
        );
        assert_eq!(
            form_encode(s, Encoding::Java),
            "Thanh+to%C3%A1n+100%25+%7E+a%2Bb*c+%28x%29%21%27"
        );
        assert_eq!(
            form_encode(s, Encoding::Node),
            "Thanh+to%C3%A1n+100%25+~+a%2Bb*c+(x)!'"
        );
        assert_eq!(
            form_encode(s, Encoding::Python),
            "Thanh+to%C3%A1n+100%25+~+a%2Bb%2Ac+%28x%29%21%27"
        );
        assert!(ambiguous(s));
        assert!(!ambiguous("Le phi ho so 000.00.04.H42-261201-0001"));
    }

    #[test]
    fn decoding_reverses_encoding_and_refuses_broken_escapes() {
        let s = "Lệ phí + 100% ~*";
        for enc in [Encoding::Php, Encoding::Java, Encoding::Node] {
            assert_eq!(form_decode(&form_encode(s, enc)).unwrap(), s);
        }
        assert!(matches!(form_decode("abc"), Some(Cow::Borrowed("abc"))));
        for bad in ["%", "%4", "%G0", "%C3", "a%zz"] {
            assert_eq!(form_decode(bad), None, "{bad}");
        }
        let pairs = form_pairs("a=1&b=x+y&&c&d=%7E", 10).unwrap();
        assert_eq!(pairs.len(), 4);
        assert_eq!((pairs[1].1.as_ref(), pairs[2].1.as_ref()), ("x y", ""));
        assert!(form_pairs("a=1&b=2&c=3", 2).is_none());
    }

    #[test]
    fn signatures_compare_as_bytes_in_either_case() {
        let key = ring::hmac::Key::new(HMAC_SHA256, b"k");
        let sig = hmac_hex(HMAC_SHA256, b"k", b"m");
        assert!(hmac_matches(&key, b"m", &sig));
        assert!(hmac_matches(&key, b"m", &sig.to_uppercase()));
        assert!(!hmac_matches(&key, b"n", &sig));
        assert!(!hmac_matches(&key, b"m", &sig[..62]));
        assert!(!hmac_matches(&key, b"m", &format!("{}0", sig)));
        assert!(!hmac_matches(&key, b"m", ""));
        assert!(!hmac_matches(&key, b"m", &"zz".repeat(32)));
        assert!(ct_eq(b"abc", b"abc") && !ct_eq(b"abc", b"abd") && !ct_eq(b"ab", b"abc"));
    }
}
