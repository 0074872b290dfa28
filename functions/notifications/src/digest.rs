//! The officers' morning digest: per agency with a configured mailbox, the dossiers due
//! within one working day and the overdue ones, one email a day (the delivery key is the
//! agency and the day, so a second run that day plans nothing).

use std::fmt::Write as _;

use jiff::Timestamp;
use jiff::civil::Date;
use motcua_domain::calendar::local_date;
use motcua_domain::notify::{Channel, Topic};
use motcua_domain::templates::{Content, escape_html};
use motcua_domain::{AgencyCode, Dossier, Lang, Status, WorkingCalendar};
use motcua_ports::PageRequest;
use motcua_ports::notifications::{Delivery, Recipient};

use crate::NotifyState;
use crate::plan::{Retry, new_delivery};

/// Open statuses whose processing clock runs (a supplement request suspends it).
const RUNNING: [Status; 4] = [
    Status::Received,
    Status::Processing,
    Status::PaymentRequested,
    Status::Stopped,
];

/// Pages of one status the digest reads at most (100 dossiers each).
const MAX_PAGES: usize = 50;

/// One line of a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub code: String,
    pub procedure: String,
    pub due: Date,
    pub status: Status,
}

/// An agency's dossiers due by the next working day after `today`, and those overdue.
pub async fn lines(
    s: &NotifyState,
    agency: &AgencyCode,
    now: Timestamp,
) -> Result<(Vec<Line>, Vec<Line>), Retry> {
    let today = local_date(now);
    let horizon = WorkingCalendar::vietnam().next_working_day(today);
    let (mut due, mut overdue) = (Vec::new(), Vec::new());
    for status in RUNNING {
        let mut page = PageRequest::first(PageRequest::MAX_LIMIT);
        for _ in 0..MAX_PAGES {
            let p = s.dossiers.agency_queue(agency, Some(status), &page).await?;
            let mut past_horizon = false;
            for d in &p.items {
                let Some(due_date) = d.due_date else { continue };
                if due_date > horizon {
                    past_horizon = true;
                    break;
                }
                let line = line(d, due_date);
                if d.is_overdue(now) {
                    overdue.push(line);
                } else {
                    due.push(line);
                }
            }
            match p.next_cursor {
                Some(c) if !past_horizon => page.cursor = Some(c),
                _ => break,
            }
        }
    }
    due.sort_by(|a, b| (a.due, &a.code).cmp(&(b.due, &b.code)));
    overdue.sort_by(|a, b| (a.due, &a.code).cmp(&(b.due, &b.code)));
    Ok((due, overdue))
}

fn line(d: &Dossier, due: Date) -> Line {
    Line {
        code: d.code.as_str().to_owned(),
        procedure: d.procedure_name.clone(),
        due,
        status: d.status,
    }
}

fn date(d: Date) -> String {
    format!("{:02}/{:02}/{}", d.day(), d.month(), d.year())
}

/// The digest email.
pub fn email(
    agency: &AgencyCode,
    day: Date,
    due: &[Line],
    overdue: &[Line],
    portal: &str,
) -> Content {
    let subject = format!(
        "[{agency}] Ngày {}: {} hồ sơ quá hạn, {} hồ sơ đến hạn",
        date(day),
        overdue.len(),
        due.len()
    );
    let mut text = format!("Tổng hợp hồ sơ của đơn vị {agency}, ngày {}.\n", date(day));
    let mut html = format!(
        "<!doctype html><html lang=\"vi\"><meta charset=\"utf-8\"><body><p>Tổng hợp hồ sơ của đơn vị {}, ngày {}.</p>",
        escape_html(agency.as_str()),
        date(day)
    );
    for (title, lines) in [
        ("Hồ sơ quá hạn", overdue),
        ("Hồ sơ đến hạn trong một ngày làm việc", due),
    ] {
        let _ = write!(text, "\n{title} ({}):\n", lines.len());
        let _ = write!(
            html,
            "<h2>{} ({})</h2><table><tr><th>Mã hồ sơ</th><th>Thủ tục</th><th>Hạn</th><th>Trạng thái</th></tr>",
            escape_html(title),
            lines.len()
        );
        for l in lines {
            let _ = writeln!(
                text,
                "- {} | {} | hạn {} | trạng thái {}",
                l.code,
                l.procedure,
                date(l.due),
                l.status.code()
            );
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape_html(&l.code),
                escape_html(&l.procedure),
                date(l.due),
                l.status.code()
            );
        }
        html.push_str("</table>");
    }
    let _ = write!(text, "\nXem hàng đợi: {portal}\n");
    let _ = write!(
        html,
        "<p><a href=\"{}\">Xem hàng đợi</a></p></body></html>",
        escape_html(portal)
    );
    Content::Email {
        subject,
        text,
        html,
    }
}

/// Plans today's digest of every agency with a mailbox; returns how many were new.
pub async fn plan_digests(s: &NotifyState, now: Timestamp) -> Result<usize, Retry> {
    let day = local_date(now);
    let mut new = 0;
    for agency in s.config.digest_mailboxes.keys() {
        let (due, overdue) = lines(s, agency, now).await?;
        if due.is_empty() && overdue.is_empty() {
            continue;
        }
        let recipient = Recipient::Agency {
            agency: agency.clone(),
        };
        let key = Delivery::key_of(
            &format!("digest:{agency}:{day}"),
            Channel::Email,
            &recipient,
        );
        let content = email(agency, day, &due, &overdue, &s.config.portal_url);
        let d = new_delivery(
            s,
            key,
            None,
            None,
            Topic::Digest,
            Channel::Email,
            recipient,
            Lang::Vi,
            content,
            now,
            now,
        );
        let planned = s.ports.deliveries.plan(&[d]).await?;
        new += planned.iter().filter(|(_, n)| *n).count();
    }
    Ok(new)
}
