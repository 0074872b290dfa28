//! Revoked token subjects on DynamoDB: one item per subject, removed by TTL once no token
//! of it can still be valid.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use jiff::Timestamp;
use motcua_ports::identity::RevokedSubjects;
use motcua_ports::{StoreError, StoreResult};

use crate::{DynamoStore, classify, get_n, n, s};

#[async_trait]
impl RevokedSubjects for DynamoStore {
    async fn revoke_subject(&self, subject: &str, until: Timestamp) -> StoreResult<()> {
        // Only ever lengthened: a later revocation with an earlier end changes nothing.
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("RSUB#{subject}")))
            .key("sk", s("RSUB"))
            .update_expression("SET #k = :k, until_s = :u, #ttl = :u")
            .condition_expression("attribute_not_exists(pk) OR until_s < :u")
            .expression_attribute_names("#k", "kind")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":k", s("revoked-subject"))
            .expression_attribute_values(":u", n(until.as_second()))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(()),
            Err(e) => Err(classify(e, StoreError::Conflict)),
        }
    }

    async fn subject_revoked(&self, subject: &str, now: Timestamp) -> StoreResult<bool> {
        match self.get_item(format!("RSUB#{subject}"), "RSUB").await? {
            Some(item) => Ok(get_n(&item, "until_s")? > now.as_second()),
            None => Ok(false),
        }
    }
}
