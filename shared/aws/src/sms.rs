//! One-time codes by SMS through Amazon SNS (`Publish` to a phone number, transactional).

use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::error::ProvideErrorMetadata;
use aws_sdk_sns::types::MessageAttributeValue;
use motcua_ports::identity::{CodeSender, SendError};

/// Sends each code as a transactional SMS (SNS delivers those at once, with priority over
/// promotional traffic), optionally under a sender id.
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

fn attribute(value: &str) -> Result<MessageAttributeValue, SendError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| SendError::Refused(e.to_string()))
}

#[async_trait]
impl CodeSender for SnsSms {
    async fn send_code(&self, phone: &str, text: &str) -> Result<(), SendError> {
        let mut req = self
            .client
            .publish()
            .phone_number(phone)
            .message(text)
            .message_attributes("AWS.SNS.SMS.SMSType", attribute("Transactional")?);
        if let Some(id) = &self.sender_id {
            req = req.message_attributes("AWS.SNS.SMS.SenderID", attribute(id)?);
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                // The code, not the number or the text: no personal data in the error.
                let code = e.code().unwrap_or("error").to_owned();
                Err(match code.as_str() {
                    "InvalidParameter" | "InvalidParameterValue" | "OptedOut" => {
                        SendError::Refused(format!("sns: {code}"))
                    }
                    _ => SendError::Unavailable(format!("sns: {code}")),
                })
            }
        }
    }
}
