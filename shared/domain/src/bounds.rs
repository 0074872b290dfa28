//! How much an actor may write into a dossier. Every free-text field and reference has a
//! cap, so a dossier never outgrows a store item (DynamoDB's is 400 KB) and no answer
//! echoes unbounded input.

use crate::dossier::{Command, DossierResult, TransitionError};

/// Reasons, notes and other free text, in characters.
pub const MAX_TEXT_CHARS: usize = 2000;
/// One item of a supplement request, in characters.
pub const MAX_ITEM_CHARS: usize = 500;
/// Items of one supplement request.
pub const MAX_ITEMS: usize = 30;
/// A document or payment reference, in characters.
pub const MAX_REFERENCE_CHARS: usize = 256;

/// `s`, cut to `max` characters with an ellipsis: for echoing input in a message.
pub fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max).collect();
        out.push('…');
        out
    }
}

fn text(field: &'static str, value: &str, max: usize) -> Result<(), TransitionError> {
    if value.chars().count() > max {
        return Err(TransitionError::TooLong { field, max });
    }
    Ok(())
}

fn opt(field: &'static str, value: &Option<String>, max: usize) -> Result<(), TransitionError> {
    value.as_deref().map_or(Ok(()), |v| text(field, v, max))
}

impl Command {
    /// The command's text within the caps: checked before anything else happens.
    pub fn check_bounds(&self) -> Result<(), TransitionError> {
        match self {
            Command::Refuse { reason } | Command::Stop { reason } => {
                text("reason", reason, MAX_TEXT_CHARS)
            }
            Command::Extend { reason, .. } => text("reason", reason, MAX_TEXT_CHARS),
            Command::Withdraw { reason } => opt("reason", reason, MAX_TEXT_CHARS),
            Command::RequestSupplement { items, note } => {
                if items.len() > MAX_ITEMS {
                    return Err(TransitionError::TooMany {
                        field: "items",
                        max: MAX_ITEMS,
                    });
                }
                for item in items {
                    text("items", item, MAX_ITEM_CHARS)?;
                }
                opt("note", note, MAX_TEXT_CHARS)
            }
            Command::ConfirmPayment { reference } => {
                opt("reference", reference, MAX_REFERENCE_CHARS)
            }
            Command::Complete { result } => match result {
                DossierResult::Approved { document, note, .. } => {
                    opt("document", document, MAX_REFERENCE_CHARS)?;
                    opt("note", note, MAX_TEXT_CHARS)
                }
                DossierResult::Rejected { reason } => text("reason", reason, MAX_TEXT_CHARS),
            },
            // Documents are checked against the procedure (references included).
            Command::Supplement { note, .. } => opt("note", note, MAX_TEXT_CHARS),
            Command::Receive
            | Command::RequestPayment { .. }
            | Command::Process
            | Command::Resume
            | Command::ReturnResult => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_refused_and_shortened_when_echoed() {
        let long = "x".repeat(MAX_TEXT_CHARS + 1);
        assert_eq!(
            Command::Refuse {
                reason: long.clone()
            }
            .check_bounds(),
            Err(TransitionError::TooLong {
                field: "reason",
                max: MAX_TEXT_CHARS
            })
        );
        // Characters, not bytes: 2000 Vietnamese letters are fine.
        assert!(
            Command::Stop {
                reason: "ệ".repeat(MAX_TEXT_CHARS)
            }
            .check_bounds()
            .is_ok()
        );
        let many = Command::RequestSupplement {
            items: vec!["Bản sao".into(); MAX_ITEMS + 1],
            note: None,
        };
        assert!(matches!(
            many.check_bounds(),
            Err(TransitionError::TooMany { field: "items", .. })
        ));
        assert_eq!(shorten("abcdef", 3), "abc…");
        assert_eq!(shorten("abc", 3), "abc");
    }
}
