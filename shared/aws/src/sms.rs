//! SMS through Amazon SNS (`Publish` to a phone number, transactional): status messages
//! and, through [`motcua_ports::notifications::CodesBySms`], one-time sign-in codes.

use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::error::ProvideErrorMetadata;
use aws_sdk_sns::types::MessageAttributeValue;
use motcua_domain::notify::Channel;
use motcua_domain::templates::Content;
use motcua_ports::notifications::{Accepted, Outgoing, SendFailure, Sender};

/// Sends each message as a transactional SMS (SNS delivers those at once, with priority
/// over promotional traffic), optionally under a sender id.
#[derive(Clone)]
pub struct SnsSms {
    client: Client,
    sender_id: Option<String>,
}

impl SnsSms {
    pub fn new(client: Client, sender_id: Option<String>) -> Self {
        SnsSms { client, sender_id }
    }
}

fn attribute(value: &str) -> Result<MessageAttributeValue, SendFailure> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| SendFailure::Permanent(e.to_string()))
}

#[async_trait]
impl Sender for SnsSms {
    fn channel(&self) -> Channel {
        Channel::Sms
    }

    fn provider(&self) -> &'static str {
        "sns"
    }

    async fn send(&self, m: &Outgoing<'_>) -> Result<Accepted, SendFailure> {
        let Content::Sms { text } = m.content else {
            return Err(SendFailure::Permanent("sns sends SMS only".into()));
        };
        let mut req = self
            .client
            .publish()
            .phone_number(m.to)
            .message(text)
            .message_attributes("AWS.SNS.SMS.SMSType", attribute("Transactional")?);
        if let Some(id) = &self.sender_id {
            req = req.message_attributes("AWS.SNS.SMS.SenderID", attribute(id)?);
        }
        match req.send().await {
            Ok(out) => Ok(Accepted {
                provider_id: out.message_id,
            }),
            Err(e) => {
                // The code, not the number or the text: no personal data in the error.
                let code = e.code().unwrap_or("error").to_owned();
                Err(match code.as_str() {
                    "InvalidParameter"
                    | "InvalidParameterValue"
                    | "OptedOut"
                    | "AuthorizationError" => SendFailure::Permanent(format!("sns: {code}")),
                    _ => SendFailure::Transient(format!("sns: {code}")),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What LocalStack's SNS recorded as sent to `phone`.
    async fn sent_to(phone: &str, region: &str) -> Vec<serde_json::Value> {
        let url = format!("{}/_aws/sns/sms-messages", crate::localstack::endpoint());
        let v: serde_json::Value = reqwest::Client::new()
            .get(url)
            .query(&[("phoneNumber", phone), ("region", region)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["sms_messages"][phone]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn codes_are_published_as_transactional_sms_to_the_number() {
        crate::localstack::ensure_running().expect("LocalStack");
        let conf = crate::localstack::config().await;
        let region = conf.region().map(|r| r.to_string()).unwrap_or_default();
        let phone = format!("+8491{:07}", std::process::id() % 10_000_000);
        let sms = std::sync::Arc::new(SnsSms::new(Client::new(&conf), Some("DVCTINH".into())));
        use motcua_ports::identity::CodeSender;
        motcua_ports::notifications::CodesBySms(sms)
            .send_code(&phone, "Ma dang nhap la 123456")
            .await
            .unwrap();
        // LocalStack answers the publish before its publisher thread stores the SMS.
        let mut sent = Vec::new();
        for _ in 0..100 {
            sent = sent_to(&phone, &region).await;
            if !sent.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(sent[0]["Message"], "Ma dang nhap la 123456");
        let attrs = sent[0]["MessageAttributes"].to_string();
        assert!(attrs.contains("Transactional"), "{attrs}");
        assert!(attrs.contains("DVCTINH"), "{attrs}");
        // Nothing went to any other number.
        assert!(sent_to("+84900000000", &region).await.is_empty());
    }
}
