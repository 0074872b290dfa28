//! What an SMS costs: its encoding and its exact number of parts.
//!
//! A message made only of GSM 03.38 characters is sent in GSM-7: 160 septets in one part,
//! 153 per part when concatenated (the user-data header takes 7); the extension characters
//! (`^ { } \ [ ] ~ | €` and form feed) take two septets, an escape and the character, and
//! the pair is never split across parts. One character outside GSM-7 (any accented
//! Vietnamese letter: `ạ`, `ư`, `đ`…) makes the whole message UCS-2: 70 UTF-16 units in
//! one part, 67 per part, a surrogate pair never split. So status messages are sent
//! unaccented by default ([`unaccent`]): "Ho so … da duoc tiep nhan" costs a third of
//! "Hồ sơ … đã được tiếp nhận".

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmsEncoding {
    Gsm7,
    Ucs2,
}

/// The cost of one SMS text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsCost {
    pub encoding: SmsEncoding,
    /// Septets (GSM-7) or UTF-16 units (UCS-2).
    pub units: usize,
    /// Parts the network bills; 0 for an empty text.
    pub segments: usize,
}

/// The GSM 03.38 default alphabet (one septet each).
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\u{1b}ÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// The extension table (an escape septet plus one: two each).
const GSM7_EXTENSION: &str = "^{}\\[~]|€\u{c}";

/// Septets `c` takes in GSM-7, or `None` if GSM-7 cannot carry it.
pub fn gsm7_septets(c: char) -> Option<usize> {
    if c == '\u{1b}' {
        // The escape itself is not a character a text may carry.
        None
    } else if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Whether the whole text fits GSM-7.
pub fn is_gsm7(text: &str) -> bool {
    text.chars().all(|c| gsm7_septets(c).is_some())
}

/// Fills parts of `per_part` units with items of 1 or 2 units that may not be split.
fn parts(sizes: impl Iterator<Item = usize>, per_part: usize) -> usize {
    let (mut parts, mut used) = (1, 0);
    for s in sizes {
        if used + s > per_part {
            parts += 1;
            used = 0;
        }
        used += s;
    }
    parts
}

/// Encoding, units and parts of `text`, as a network counts them.
pub fn cost(text: &str) -> SmsCost {
    if text.is_empty() {
        return SmsCost {
            encoding: SmsEncoding::Gsm7,
            units: 0,
            segments: 0,
        };
    }
    if is_gsm7(text) {
        let sizes = || text.chars().map(|c| gsm7_septets(c).unwrap_or(1));
        let units: usize = sizes().sum();
        let segments = if units <= 160 { 1 } else { parts(sizes(), 153) };
        SmsCost {
            encoding: SmsEncoding::Gsm7,
            units,
            segments,
        }
    } else {
        let sizes = || text.chars().map(char::len_utf16);
        let units: usize = sizes().sum();
        let segments = if units <= 70 { 1 } else { parts(sizes(), 67) };
        SmsCost {
            encoding: SmsEncoding::Ucs2,
            units,
            segments,
        }
    }
}

/// Vietnamese without its marks, as brandname templates are written: `Hồ sơ đã được tiếp
/// nhận` → `Ho so da duoc tiep nhan`. Typographic punctuation becomes its ASCII
/// look-alike; anything else GSM-7 cannot carry becomes `?`, so the result is always
/// GSM-7.
pub fn unaccent(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.nfd() {
        // Combining marks (tones, circumflex, breve, horn) go.
        if ('\u{300}'..='\u{36f}').contains(&c) {
            continue;
        }
        let c = match c {
            'đ' => 'd',
            'Đ' => 'D',
            '\u{2018}' | '\u{2019}' | '\u{201a}' | '\u{2032}' => '\'',
            '\u{201c}' | '\u{201d}' | '\u{201e}' | '\u{2033}' => '"',
            '\u{2010}'..='\u{2015}' | '\u{2212}' => '-',
            '\u{a0}' | '\u{2000}'..='\u{200a}' | '\u{202f}' => ' ',
            '\u{2026}' => {
                out.push_str("...");
                continue;
            }
            '\t' => ' ',
            c => c,
        };
        // NFD left some letters whole (É, é, Ç… are GSM-7 in their composed form only).
        out.push(if gsm7_septets(c).is_some() { c } else { '?' });
    }
    out
}

/// Cuts `text` to at most `max_segments` parts in its own encoding, at a word boundary
/// where one is near, marking the cut with `...`. `None` if even the marker does not fit
/// (`max_segments` 0).
pub fn fit(text: &str, max_segments: usize) -> Option<String> {
    if cost(text).segments <= max_segments {
        return Some(text.to_owned());
    }
    if max_segments == 0 {
        return None;
    }
    // Binary search on the number of characters kept.
    let chars: Vec<char> = text.chars().collect();
    let with_marker = |n: usize| -> String {
        let kept: String = chars[..n].iter().collect();
        let kept = kept.trim_end();
        // Prefer a word boundary within the last 15 characters.
        let cut = kept
            .char_indices()
            .rev()
            .take(15)
            .find(|(_, c)| c.is_whitespace())
            .map(|(i, _)| kept[..i].trim_end())
            .filter(|k| !k.is_empty())
            .unwrap_or(kept);
        format!("{cut}...")
    };
    let (mut lo, mut hi) = (0, chars.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if cost(&with_marker(mid)).segments <= max_segments {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let out = with_marker(lo);
    (cost(&out).segments <= max_segments).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alphabet_has_its_128_characters() {
        assert_eq!(GSM7_BASIC.chars().count(), 128);
        assert_eq!(GSM7_EXTENSION.chars().count(), 10);
    }

    #[test]
    fn gsm7_fills_160_then_153_per_part() {
        let c = cost(&"a".repeat(160));
        assert_eq!(
            (c.encoding, c.units, c.segments),
            (SmsEncoding::Gsm7, 160, 1)
        );
        assert_eq!(cost(&"a".repeat(161)).segments, 2);
        assert_eq!(cost(&"a".repeat(306)).segments, 2);
        assert_eq!(cost(&"a".repeat(307)).segments, 3);
        assert_eq!(cost("").segments, 0);
    }

    #[test]
    fn extension_characters_take_two_and_are_not_split() {
        // 159 + 2 = 161 septets: two parts.
        let c = cost(&format!("{}€", "a".repeat(159)));
        assert_eq!((c.units, c.segments), (161, 2));
        assert_eq!(cost(&format!("{}[", "a".repeat(158))).segments, 1);
        // 152 septets then an escape pair: the pair moves to part 2 whole, and the 152
        // + 2 + 152 = 306 septets that would fit two parts unsplit need three.
        let text = format!("{}{{{}", "a".repeat(152), "a".repeat(152));
        let c = cost(&text);
        assert_eq!((c.units, c.segments), (306, 3));
    }

    #[test]
    fn one_accented_letter_makes_the_whole_message_ucs2() {
        let c = cost(&format!("{}ạ", "a".repeat(69)));
        assert_eq!(
            (c.encoding, c.units, c.segments),
            (SmsEncoding::Ucs2, 70, 1)
        );
        assert_eq!(cost(&format!("{}ạ", "a".repeat(70))).segments, 2);
        assert_eq!(cost(&"ư".repeat(134)).segments, 2);
        assert_eq!(cost(&"ư".repeat(135)).segments, 3);
        // An emoji is a surrogate pair: two units, never split.
        let c = cost(&format!("{}😀", "ư".repeat(66)));
        assert_eq!((c.units, c.segments), (68, 1));
        let c = cost(&format!("{}😀{}", "ư".repeat(66), "ư".repeat(66)));
        assert_eq!((c.units, c.segments), (134, 3));
    }

    #[test]
    fn vietnamese_loses_its_marks_and_stays_gsm7() {
        let text = "Hồ sơ G22.91-260317-0042 đã được tiếp nhận. Ngày hẹn trả: 31/03/2026";
        let plain = unaccent(text);
        assert_eq!(
            plain,
            "Ho so G22.91-260317-0042 da duoc tiep nhan. Ngay hen tra: 31/03/2026"
        );
        assert!(is_gsm7(&plain));
        assert_eq!(cost(text).encoding, SmsEncoding::Ucs2);
        assert_eq!(cost(&plain).segments, 1);
        assert_eq!(
            unaccent("ĐƯỜNG “Lê Lợi” – số 5…"),
            "DUONG \"Le Loi\" - so 5..."
        );
        assert_eq!(unaccent("中文 😀"), "?? ?");
        // Upper-case and every tone of every vowel.
        let all = "àáảãạăằắẳẵặâầấẩẫậèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵ";
        assert!(unaccent(all).chars().all(|c| "aeiouy".contains(c)));
        assert!(is_gsm7(&unaccent(&all.to_uppercase())));
    }

    #[test]
    fn fit_cuts_at_a_word_and_keeps_the_budget() {
        let long = "Ho so G22.91-260317-0042 can bo sung: ".to_owned()
            + &"ban sao giay khai sinh, ".repeat(20);
        let cut = fit(&long, 1).unwrap();
        assert!(cost(&cut).segments <= 1, "{cut}");
        assert!(cut.ends_with("..."));
        assert!(cut.len() > 140, "kept most of the part: {}", cut.len());
        assert!(!cut.contains(" ..."));
        assert_eq!(fit("ngan", 1).unwrap(), "ngan");
        assert_eq!(fit(&long, 0), None);
        let two = fit(&long, 2).unwrap();
        assert_eq!(cost(&two).segments, 2);
    }
}
