//! Email through Amazon SES, v1 API (`SendEmail`; LocalStack has no v2), from one verified
//! sender identity.

use async_trait::async_trait;
use aws_sdk_ses::Client;
use aws_sdk_ses::error::ProvideErrorMetadata;
use aws_sdk_ses::types::{Body, Content as SesContent, Destination, Message};
use motcua_domain::notify::Channel;
use motcua_domain::templates::Content;
use motcua_ports::notifications::{Accepted, Outgoing, SendFailure, Sender};

#[derive(Clone)]
pub struct SesEmail {
    client: Client,
    /// The verified identity mail comes from, e.g. `Cổng DVC <no-reply@dichvucong.example.gov.vn>`.
    from: String,
    configuration_set: Option<String>,
}

impl SesEmail {
    pub fn new(client: Client, from: String, configuration_set: Option<String>) -> Self {
        SesEmail {
            client,
            from,
            configuration_set,
        }
    }

    /// Verifies the sender address (a development and LocalStack step: a production
    /// identity is a domain verified once, by DNS).
    pub async fn verify_sender(&self) -> Result<(), String> {
        let address = match (self.from.rfind('<'), self.from.rfind('>')) {
            (Some(a), Some(b)) if a < b => &self.from[a + 1..b],
            _ => self.from.as_str(),
        };
        self.client
            .verify_email_identity()
            .email_address(address)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("ses: {}", e.code().unwrap_or("error")))
    }
}

fn utf8(text: &str) -> Result<SesContent, SendFailure> {
    SesContent::builder()
        .data(text)
        .charset("UTF-8")
        .build()
        .map_err(|e| SendFailure::Permanent(e.to_string()))
}

#[async_trait]
impl Sender for SesEmail {
    fn channel(&self) -> Channel {
        Channel::Email
    }

    fn provider(&self) -> &'static str {
        "ses"
    }

    async fn send(&self, m: &Outgoing<'_>) -> Result<Accepted, SendFailure> {
        let Content::Email {
            subject,
            text,
            html,
        } = m.content
        else {
            return Err(SendFailure::Permanent("ses sends email only".into()));
        };
        let message = Message::builder()
            .subject(utf8(subject)?)
            .body(Body::builder().text(utf8(text)?).html(utf8(html)?).build())
            .build();
        let out = self
            .client
            .send_email()
            .source(&self.from)
            .destination(Destination::builder().to_addresses(m.to).build())
            .message(message)
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await;
        match out {
            Ok(out) => Ok(Accepted {
                provider_id: Some(out.message_id),
            }),
            Err(e) => {
                let code = e.code().unwrap_or("error").to_owned();
                Err(match code.as_str() {
                    "MessageRejected"
                    | "MailFromDomainNotVerifiedException"
                    | "ConfigurationSetDoesNotExistException"
                    | "AccountSendingPausedException"
                    | "InvalidParameterValue" => SendFailure::Permanent(format!("ses: {code}")),
                    _ => SendFailure::Transient(format!("ses: {code}")),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    /// What LocalStack's SES recorded as sent from `source`.
    async fn sent_from(source: &str) -> Vec<serde_json::Value> {
        let url = format!("{}/_aws/ses", crate::localstack::endpoint());
        let v: serde_json::Value = reqwest::Client::new()
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m["Source"] == source)
            .collect()
    }

    #[tokio::test]
    async fn mail_goes_from_the_verified_sender_with_both_bodies() {
        crate::localstack::ensure_running().expect("LocalStack");
        let conf = crate::localstack::config().await;
        let from = format!(
            "no-reply-{}@dichvucong.example.gov.vn",
            Uuid::now_v7().simple()
        );
        let ses = SesEmail::new(Client::new(&conf), from.clone(), None);
        let content = Content::Email {
            subject: "[G22.91-260317-0042] Hồ sơ đã được tiếp nhận".into(),
            text: "Kính gửi ông/bà,\n\nHồ sơ đã được tiếp nhận.".into(),
            html: "<p>Hồ sơ đã được tiếp nhận.</p>".into(),
        };
        let m = Outgoing {
            reference: Uuid::now_v7(),
            to: "lan@example.vn",
            content: &content,
        };
        // SES refuses an unverified sender, permanently.
        assert!(matches!(ses.send(&m).await, Err(SendFailure::Permanent(_))));
        ses.verify_sender().await.unwrap();
        let accepted = ses.send(&m).await.unwrap();
        let sent = sent_from(&from).await;
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(sent[0]["Id"].as_str(), accepted.provider_id.as_deref());
        assert_eq!(sent[0]["Destination"]["ToAddresses"][0], "lan@example.vn");
        assert_eq!(
            sent[0]["Subject"],
            "[G22.91-260317-0042] Hồ sơ đã được tiếp nhận"
        );
        assert_eq!(
            sent[0]["Body"]["text_part"],
            "Kính gửi ông/bà,\n\nHồ sơ đã được tiếp nhận."
        );
        assert_eq!(
            sent[0]["Body"]["html_part"],
            "<p>Hồ sơ đã được tiếp nhận.</p>"
        );
    }
}
