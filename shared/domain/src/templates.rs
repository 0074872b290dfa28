//! The words of each status message, per channel and language.
//!
//! SMS are short and, unless the deployment sends Unicode, unaccented (a third of the
//! cost: [`crate::sms`]); they are cut to the configured number of parts, at a word,
//! never left to the network. Emails have a subject, a plain-text and an HTML body (every
//! value escaped), the dossier code and a link to the portal. Zalo ZNS sends a template
//! the provider approved beforehand: here only its parameters.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::Lang;
use crate::money::Money;
use crate::notify::Topic;
use crate::sms;

/// What a message may say about a dossier. No contact data: a message names the dossier,
/// not the person.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub dossier_code: String,
    pub procedure_name: String,
    pub agency_name: String,
    pub due_date: Option<Date>,
    /// The officer's reason (refusal, stop, extension).
    pub reason: Option<String>,
    pub missing_items: Vec<String>,
    pub amount: Option<Money>,
    /// The portal's page for the dossier.
    pub link: String,
}

/// How SMS are written here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmsStyle {
    /// Send accented Vietnamese (UCS-2, 70 characters a part).
    pub unicode: bool,
    /// Parts one message may take.
    pub max_segments: usize,
}

impl Default for SmsStyle {
    fn default() -> Self {
        SmsStyle {
            unicode: false,
            max_segments: 2,
        }
    }
}

/// A rendered message, as stored with its delivery and handed to a sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "channel", rename_all = "lowercase")]
pub enum Content {
    Sms {
        text: String,
    },
    Email {
        subject: String,
        text: String,
        html: String,
    },
    Zalo {
        template_id: String,
        params: BTreeMap<String, String>,
    },
}

fn date(d: Option<Date>) -> String {
    d.map(|d| format!("{:02}/{:02}/{}", d.day(), d.month(), d.year()))
        .unwrap_or_else(|| "-".into())
}

fn amount(m: Option<Money>, lang: Lang) -> String {
    let Some(m) = m else { return "-".into() };
    let shown = m.to_string();
    let digits = shown.trim_end_matches(" ₫");
    match lang {
        Lang::Vi => format!("{digits} đồng"),
        Lang::En => format!("VND {}", digits.replace('.', ",")),
    }
}

/// The one sentence a message on `topic` says, in `lang`.
fn sentence(topic: Topic, lang: Lang, f: &Facts) -> String {
    let code = &f.dossier_code;
    let due = date(f.due_date);
    let reason = f.reason.as_deref().unwrap_or("-");
    let items = if f.missing_items.is_empty() {
        "-".to_owned()
    } else {
        f.missing_items.join("; ")
    };
    let money = amount(f.amount, lang);
    match (topic, lang) {
        (Topic::Submitted, Lang::Vi) => {
            format!("Hồ sơ {code} đã được nộp trực tuyến, đang chờ tiếp nhận.")
        }
        (Topic::Submitted, Lang::En) => {
            format!("Dossier {code} was submitted online and awaits intake.")
        }
        (Topic::Received, Lang::Vi) => {
            format!("Hồ sơ {code} đã được tiếp nhận. Ngày hẹn trả: {due}.")
        }
        (Topic::Received, Lang::En) => {
            format!("Dossier {code} was received. Result due on {due}.")
        }
        (Topic::Refused, Lang::Vi) => {
            format!("Hồ sơ {code} không được tiếp nhận. Lý do: {reason}")
        }
        (Topic::Refused, Lang::En) => format!("Dossier {code} was not accepted. Reason: {reason}"),
        (Topic::SupplementRequested, Lang::Vi) => {
            format!("Hồ sơ {code} cần bổ sung giấy tờ: {items}")
        }
        (Topic::SupplementRequested, Lang::En) => {
            format!("Dossier {code} needs more documents: {items}")
        }
        (Topic::PaymentRequested, Lang::Vi) => {
            format!("Hồ sơ {code} cần nộp phí, lệ phí: {money}.")
        }
        (Topic::PaymentRequested, Lang::En) => {
            format!("Dossier {code} has a fee to pay: {money}.")
        }
        (Topic::PaymentReceived, Lang::Vi) => {
            format!("Đã nhận phí, lệ phí của hồ sơ {code}.")
        }
        (Topic::PaymentReceived, Lang::En) => format!("The fee of dossier {code} was paid."),
        (Topic::Extended, Lang::Vi) => format!(
            "Hồ sơ {code} được gia hạn, ngày hẹn trả mới: {due}. Xin lỗi ông/bà vì sự chậm trễ."
        ),
        (Topic::Extended, Lang::En) => {
            format!("Dossier {code} has a new due date: {due}. We apologise for the delay.")
        }
        (Topic::Stopped, Lang::Vi) => format!("Hồ sơ {code} đã dừng xử lý. Lý do: {reason}"),
        (Topic::Stopped, Lang::En) => {
            format!("Processing of dossier {code} stopped. Reason: {reason}")
        }
        (Topic::Completed, Lang::Vi) => format!("Hồ sơ {code} đã có kết quả giải quyết."),
        (Topic::Completed, Lang::En) => format!("The result of dossier {code} is ready."),
        (Topic::ResultReturned, Lang::Vi) => format!("Kết quả hồ sơ {code} đã được trả."),
        (Topic::ResultReturned, Lang::En) => {
            format!("The result of dossier {code} was handed over.")
        }
        (Topic::Withdrawn, Lang::Vi) => format!("Hồ sơ {code} đã được rút theo yêu cầu."),
        (Topic::Withdrawn, Lang::En) => format!("Dossier {code} was withdrawn as requested."),
        (Topic::Digest, Lang::Vi) => "Hồ sơ sắp đến hạn và quá hạn.".into(),
        (Topic::Digest, Lang::En) => "Dossiers due soon and overdue.".into(),
    }
}

/// The SMS text of `topic`, within the style's part budget. `None` if the budget cannot
/// hold even the dossier code (a budget of 0 parts).
pub fn sms(topic: Topic, lang: Lang, f: &Facts, style: SmsStyle) -> Option<String> {
    let prefix = match lang {
        Lang::Vi => "DVC: ",
        Lang::En => "Public services: ",
    };
    let text = format!("{prefix}{}", sentence(topic, lang, f));
    let text = if style.unicode {
        text
    } else {
        sms::unaccent(&text)
    };
    sms::fit(&text, style.max_segments)
}

/// Minimal HTML escaping for text and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Subject, plain text and HTML of an email on `topic`.
pub fn email(topic: Topic, lang: Lang, f: &Facts) -> Content {
    let line = sentence(topic, lang, f);
    // One line, bounded: a reason may hold line breaks, and headers must not.
    let one_line: String = line
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(120)
        .collect();
    let subject = format!("[{}] {one_line}", f.dossier_code);
    let (l_proc, l_agency, l_due, l_link, greeting, footer) = match lang {
        Lang::Vi => (
            "Thủ tục",
            "Cơ quan giải quyết",
            "Ngày hẹn trả",
            "Xem hồ sơ",
            "Kính gửi ông/bà,",
            "Thư này được gửi tự động từ Cổng dịch vụ công; vui lòng không trả lời.",
        ),
        Lang::En => (
            "Procedure",
            "Agency",
            "Due date",
            "See the dossier",
            "Dear applicant,",
            "This message was sent automatically by the public-service portal; please do not reply.",
        ),
    };
    let mut rows: Vec<(&str, String)> = vec![(l_proc, f.procedure_name.clone())];
    if !f.agency_name.is_empty() {
        rows.push((l_agency, f.agency_name.clone()));
    }
    if f.due_date.is_some() {
        rows.push((l_due, date(f.due_date)));
    }
    let mut text = format!("{greeting}\n\n{line}\n\n");
    for (k, v) in &rows {
        let _ = writeln!(text, "{k}: {v}");
    }
    let _ = write!(text, "\n{l_link}: {}\n\n-- \n{footer}\n", f.link);
    let mut html = format!(
        "<!doctype html><html lang=\"{}\"><meta charset=\"utf-8\"><body><p>{}</p><p><strong>{}</strong></p><table>",
        match lang {
            Lang::Vi => "vi",
            Lang::En => "en",
        },
        escape_html(greeting),
        escape_html(&line)
    );
    for (k, v) in &rows {
        let _ = write!(
            html,
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
            escape_html(k),
            escape_html(v)
        );
    }
    let _ = write!(
        html,
        "</table><p><a href=\"{}\">{}</a></p><p><small>{}</small></p></body></html>",
        escape_html(&f.link),
        escape_html(l_link),
        escape_html(footer)
    );
    Content::Email {
        subject,
        text,
        html,
    }
}

/// The parameters of the approved ZNS template `template_id` (names as registered with
/// Zalo: `ma_ho_so`, `ten_thu_tuc`, `trang_thai`, `ngay_hen_tra`).
pub fn zalo(topic: Topic, f: &Facts, template_id: &str) -> Content {
    let mut params = BTreeMap::new();
    params.insert("ma_ho_so".into(), f.dossier_code.clone());
    params.insert(
        "ten_thu_tuc".into(),
        f.procedure_name.chars().take(100).collect(),
    );
    // ZNS parameters are short fields of an approved template: bounded here.
    let status = sentence(topic, Lang::Vi, f);
    let status = match status.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &status[..i]),
        None => status,
    };
    params.insert("trang_thai".into(), status);
    params.insert("ngay_hen_tra".into(), date(f.due_date));
    Content::Zalo {
        template_id: template_id.to_owned(),
        params,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sms::{SmsEncoding, cost};

    fn facts() -> Facts {
        Facts {
            dossier_code: "G22.91-260317-0042".into(),
            procedure_name: "Cấp Phiếu lý lịch tư pháp".into(),
            agency_name: "Sở Tư pháp".into(),
            due_date: Some(Date::constant(2026, 3, 31)),
            reason: None,
            missing_items: vec![],
            amount: Some(Money::vnd(1_250_000)),
            link: "https://dichvucong.example.gov.vn/ho-so/G22.91-260317-0042".into(),
        }
    }

    #[test]
    fn the_received_sms_is_the_providers_unaccented_one_part() {
        let text = sms(Topic::Received, Lang::Vi, &facts(), SmsStyle::default()).unwrap();
        assert_eq!(
            text,
            "DVC: Ho so G22.91-260317-0042 da duoc tiep nhan. Ngay hen tra: 31/03/2026."
        );
        let c = cost(&text);
        assert_eq!((c.encoding, c.segments), (SmsEncoding::Gsm7, 1));
        let uni = SmsStyle {
            unicode: true,
            max_segments: 2,
        };
        let text = sms(Topic::Received, Lang::Vi, &facts(), uni).unwrap();
        assert!(text.contains("đã được tiếp nhận"));
        assert_eq!(cost(&text).encoding, SmsEncoding::Ucs2);
        assert_eq!(cost(&text).segments, 2);
    }

    #[test]
    fn every_topic_fits_the_budget_in_both_languages() {
        let mut f = facts();
        f.reason = Some("Thiếu chữ ký ".repeat(40));
        f.missing_items = vec!["Bản sao giấy khai sinh có chứng thực".into(); 12];
        // The digest goes to officers by email only.
        for topic in Topic::ALL.into_iter().filter(|t| *t != Topic::Digest) {
            for lang in [Lang::Vi, Lang::En] {
                for max in [1, 2, 3] {
                    for unicode in [false, true] {
                        let style = SmsStyle {
                            unicode,
                            max_segments: max,
                        };
                        let text = sms(topic, lang, &f, style).unwrap();
                        assert!(cost(&text).segments <= max, "{topic:?} {lang:?} {max}");
                        assert!(text.contains("G22.91-260317-0042"), "{text}");
                        if !unicode {
                            assert_eq!(cost(&text).encoding, SmsEncoding::Gsm7);
                        }
                    }
                }
            }
        }
        let long = sms(
            Topic::SupplementRequested,
            Lang::Vi,
            &f,
            SmsStyle::default(),
        )
        .unwrap();
        assert!(long.ends_with("..."), "{long}");
    }

    #[test]
    fn amounts_read_as_on_a_receipt() {
        let vi = sms(
            Topic::PaymentRequested,
            Lang::Vi,
            &facts(),
            SmsStyle::default(),
        )
        .unwrap();
        assert!(vi.contains("1.250.000 dong"), "{vi}");
        let en = sms(
            Topic::PaymentRequested,
            Lang::En,
            &facts(),
            SmsStyle::default(),
        )
        .unwrap();
        assert!(en.contains("VND 1,250,000"), "{en}");
    }

    #[test]
    fn emails_escape_every_value_and_link_the_dossier() {
        let mut f = facts();
        f.procedure_name = "<script>alert(1)</script> & \"x\"".into();
        f.reason = Some("<b>thiếu</b>".into());
        let Content::Email {
            subject,
            text,
            html,
        } = email(Topic::Refused, Lang::Vi, &f)
        else {
            panic!()
        };
        assert!(subject.starts_with("[G22.91-260317-0042] "), "{subject}");
        assert!(!subject.contains('\n'));
        assert!(text.contains("<script>"), "plain text stays as written");
        assert!(text.contains(&f.link));
        assert!(
            !html.contains("<script>") && !html.contains("<b>"),
            "{html}"
        );
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot;"));
        assert!(html.contains(&format!("href=\"{}\"", f.link)));
        assert!(html.contains("Lý do: &lt;b&gt;thiếu&lt;/b&gt;"));
        let Content::Email { text, .. } = email(Topic::Completed, Lang::En, &facts()) else {
            panic!()
        };
        assert!(text.starts_with("Dear applicant,"));
        assert!(text.contains("Due date: 31/03/2026"));
    }

    #[test]
    fn zalo_gets_its_template_parameters() {
        let Content::Zalo {
            template_id,
            params,
        } = zalo(Topic::Received, &facts(), "231245")
        else {
            panic!()
        };
        assert_eq!(template_id, "231245");
        assert_eq!(params["ma_ho_so"], "G22.91-260317-0042");
        assert_eq!(params["ngay_hen_tra"], "31/03/2026");
        assert!(params["trang_thai"].contains("đã được tiếp nhận"));
        // A long reason stays a short template field.
        let mut long = facts();
        long.reason = Some("Thiếu chữ ký ".repeat(200));
        let Content::Zalo { params, .. } = zalo(Topic::Refused, &long, "1") else {
            panic!()
        };
        assert!(params["trang_thai"].chars().count() <= 201);
    }
}
