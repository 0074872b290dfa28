//! Where the applicant of a dossier can be reached, read when a message is planned and
//! again when it goes (a changed number, an opt-out, an erased account are honoured).

use motcua_domain::notify::{Channel, Reach, Topic};
use motcua_domain::{Dossier, Lang};
use motcua_ports::StoreResult;

use crate::NotifyState;

/// The applicant's reach for a message on `topic`, and their language.
pub(crate) async fn applicant(
    s: &NotifyState,
    d: &Dossier,
    topic: Topic,
) -> StoreResult<(Reach, Lang)> {
    let account = match (&s.accounts, d.applicant.account) {
        (Some(accounts), Some(id)) => accounts.get(id).await?,
        _ => None,
    }
    // Only the account that filed under this owner: never someone else's by accident.
    .filter(|a| {
        a.owner_ref().as_deref() == Some(d.applicant.subject.as_str())
            || a.id.to_string() == d.applicant.subject
    });
    let (wants, lang, phone, email) = match &account {
        Some(a) => {
            let p = a.preferences;
            let wants = [
                (Channel::Sms, p.sms),
                (Channel::Email, p.email),
                (Channel::Zalo, p.zalo),
            ]
            .into_iter()
            .filter_map(|(c, on)| on.then_some(c))
            .collect();
            (wants, p.language, a.phone.clone(), a.email.clone())
        }
        // An account that filed the dossier and is gone (erased at its holder's request):
        // its wishes went with it, so only what the law requires, to the dossier's phone.
        None if d.applicant.account.is_some() && s.accounts.is_some() => {
            (Vec::new(), Lang::Vi, None, None)
        }
        // No account to ask (a paper dossier, a development token): the dossier's phone.
        None => (vec![Channel::Sms, Channel::Email], Lang::Vi, None, None),
    };
    // The dossier's contact number was typed, never proven: it gets what the law requires
    // (officers' decisions), never the courtesy messages a citizen's own clicks trigger,
    // which go to the account's own contacts only (no one can have a stranger's phone
    // messaged by submitting and withdrawing).
    let phone = if topic.mandatory() {
        d.applicant.phone.clone().or(phone)
    } else {
        phone
    };
    let available = s
        .senders
        .channels()
        .into_iter()
        .filter(|c| *c != Channel::Zalo || s.config.zalo_templates.contains_key(&topic))
        .collect();
    Ok((
        Reach {
            phone,
            email,
            wants,
            available,
        },
        lang,
    ))
}

/// The address of `channel` in `reach`.
pub(crate) fn address(reach: &Reach, channel: Channel) -> Option<&str> {
    match channel {
        Channel::Sms | Channel::Zalo => reach.phone.as_deref(),
        Channel::Email => reach.email.as_deref(),
    }
}
