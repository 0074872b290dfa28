//! The identity ports on the same DynamoDB table.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | account | `ACCT#<id>` | `ACCT` |
//! | account by keyed ID hash (uniqueness) | `IDH#<kind>#<hash>` | `IDH` |
//! | audit entry | `AUDIT#<hash>` | `<at µs, 20 digits>#<id>` |
//! | failed attempt | `ATT#<key>` | `<at µs>#<random>` (TTL one day) |
//! | revoked token subject (erased account) | `RSUB#<subject>` | `RSUB` (TTL) |
//! | refresh token | `RT#<token hash>` | `RT` (TTL) |
//! | sign-in challenge | `CH#<id>` | `CH` (TTL) |
//! | business grant | `BIZ#<business id>` | `MEMBER#<member hash>` |
//! | revoked token family | `RF#<family>` | `RF` (TTL) |

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use jiff::Timestamp;
use motcua_ports::identity::{
    Account, AccountKind, AccountStore, AttemptLimiter, AuditEntry, AuditLog, BusinessGrant,
    BusinessGrants, Challenge, ChallengeStore, IdentityPorts, RefreshRecord, RefreshTokenStore,
    RefreshUse,
};
use motcua_ports::{StoreError, StoreResult};
use uuid::Uuid;

use crate::{DynamoStore, Item, body_of, build, classify, get_n, get_s, n, s, to_json};

impl DynamoStore {
    /// The identity ports, all served by this table.
    pub fn identity_ports(&self) -> IdentityPorts {
        IdentityPorts {
            accounts: Arc::new(self.clone()),
            revoked: Arc::new(self.clone()),
            audit: Arc::new(self.clone()),
            attempts: Arc::new(self.clone()),
            refresh: Arc::new(self.clone()),
            challenges: Arc::new(self.clone()),
            grants: Arc::new(self.clone()),
        }
    }

    async fn query_sk(
        &self,
        pk: String,
        from: Option<String>,
        forward: bool,
        limit: Option<i32>,
    ) -> StoreResult<Vec<Item>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .scan_index_forward(forward)
                .expression_attribute_values(":pk", s(pk.clone()))
                .set_limit(limit)
                .set_exclusive_start_key(start.take());
            q = match &from {
                Some(f) => q
                    .key_condition_expression("pk = :pk AND sk >= :from")
                    .expression_attribute_values(":from", s(f.clone())),
                None => q.key_condition_expression("pk = :pk"),
            };
            let page = q
                .send()
                .await
                .map_err(|e| classify(e, StoreError::Conflict))?;
            out.extend(page.items().iter().cloned());
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() && limit.is_none_or(|l| (out.len() as i32) < l) => {
                    start = Some(k.clone())
                }
                _ => break,
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl AccountStore for DynamoStore {
    async fn erase(&self, a: &Account) -> StoreResult<()> {
        // The number's key goes only while it still leads to this account: a concurrent
        // sign-in may already have pointed it at a replacement, which must not be orphaned.
        let r = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("IDH#{}#{}", a.kind.as_str(), a.id_hash)))
            .key("sk", s("IDH"))
            .condition_expression("account_id = :id")
            .expression_attribute_values(":id", s(a.id.to_string()))
            .send()
            .await;
        match r {
            Ok(_) => {}
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {}
            Err(e) => return Err(classify(e, StoreError::Conflict)),
        }
        self.delete_key(format!("ACCT#{}", a.id), "ACCT").await
    }

    async fn create_if_absent(&self, a: &Account) -> StoreResult<(Account, bool)> {
        let mut acct = Item::new();
        acct.insert("pk".into(), s(format!("ACCT#{}", a.id)));
        acct.insert("sk".into(), s("ACCT"));
        acct.insert("kind".into(), s("account"));
        acct.insert("version".into(), n(a.version));
        acct.insert("body".into(), s(to_json(a)?));
        let mut idh = Item::new();
        idh.insert(
            "pk".into(),
            s(format!("IDH#{}#{}", a.kind.as_str(), a.id_hash)),
        );
        idh.insert("sk".into(), s("IDH"));
        idh.insert("kind".into(), s("account-key"));
        idh.insert("account_id".into(), s(a.id.to_string()));
        let put = |item: Item| -> StoreResult<TransactWriteItem> {
            Ok(TransactWriteItem::builder()
                .put(build(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(item))
                        .condition_expression("attribute_not_exists(pk)")
                        .build(),
                )?)
                .build())
        };
        // A refusal means another account holds the number, or a concurrent transaction
        // (a replacement erasing the key) was in the way: read the holder, and when the
        // key was erased meanwhile, try again.
        for _ in 0..8 {
            let r = self
                .client
                .transact_write_items()
                .transact_items(put(idh.clone())?)
                .transact_items(put(acct.clone())?)
                .send()
                .await;
            match r {
                Ok(_) => return Ok((a.clone(), true)),
                Err(e) => match classify(e, StoreError::Duplicate) {
                    StoreError::Duplicate | StoreError::Conflict => {
                        if let Some(existing) = self.get_by_id_hash(a.kind, &a.id_hash).await? {
                            return Ok((existing, false));
                        }
                    }
                    other => return Err(other),
                },
            }
        }
        Err(StoreError::Conflict)
    }

    async fn get(&self, id: Uuid) -> StoreResult<Option<Account>> {
        match self.get_item(format!("ACCT#{id}"), "ACCT").await? {
            Some(item) => Ok(Some(body_of(&item)?)),
            None => Ok(None),
        }
    }

    async fn get_by_id_hash(
        &self,
        kind: AccountKind,
        id_hash: &str,
    ) -> StoreResult<Option<Account>> {
        let Some(item) = self
            .get_item(format!("IDH#{}#{id_hash}", kind.as_str()), "IDH")
            .await?
        else {
            return Ok(None);
        };
        let id = Uuid::parse_str(get_s(&item, "account_id")?)
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        AccountStore::get(self, id).await
    }

    async fn update(&self, a: &Account) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("ACCT#{}", a.id)))
            .item("sk", s("ACCT"))
            .item("kind", s("account"))
            .item("version", n(a.version))
            .item("body", s(to_json(a)?))
            .condition_expression("attribute_exists(pk) AND version = :prev")
            .expression_attribute_values(":prev", n(a.version - 1))
            .send()
            .await
            .map_err(|e| classify(e, StoreError::Conflict))?;
        Ok(())
    }
}

impl DynamoStore {
    async fn delete_key(&self, pk: String, sk: &str) -> StoreResult<()> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .send()
            .await
            .map_err(|e| classify(e, StoreError::Conflict))?;
        Ok(())
    }
}

#[async_trait]
impl AuditLog for DynamoStore {
    async fn append(&self, e: &AuditEntry) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("AUDIT#{}", e.id_hash)))
            .item("sk", s(format!("{:020}#{}", e.at.as_microsecond(), e.id)))
            .item("kind", s("audit"))
            .item("body", s(to_json(e)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|err| classify(err, StoreError::Duplicate))?;
        Ok(())
    }

    async fn by_id_hash(&self, id_hash: &str, limit: u32) -> StoreResult<Vec<AuditEntry>> {
        let items = self
            .query_sk(
                format!("AUDIT#{id_hash}"),
                None,
                false,
                Some(limit.max(1) as i32),
            )
            .await?;
        items.iter().take(limit as usize).map(body_of).collect()
    }
}

#[async_trait]
impl AttemptLimiter for DynamoStore {
    async fn reserve(&self, key: &str, at: Timestamp) -> StoreResult<String> {
        let sk = format!("{:020}#{}", at.as_microsecond(), Uuid::now_v7());
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("ATT#{key}")))
            .item("sk", s(sk.clone()))
            .item("kind", s("attempt"))
            .item("at_us", n(at.as_microsecond()))
            .item("ttl", n(at.as_second() + 86_400))
            .send()
            .await
            .map_err(|e| classify(e, StoreError::Conflict))?;
        Ok(sk)
    }

    async fn release(&self, key: &str, handle: &str) -> StoreResult<()> {
        self.delete_key(format!("ATT#{key}"), handle).await
    }

    async fn failures_since(
        &self,
        key: &str,
        since: Timestamp,
        max: usize,
    ) -> StoreResult<Vec<Timestamp>> {
        // Newest first, at most `max` items read.
        let items = self
            .query_sk(
                format!("ATT#{key}"),
                Some(format!("{:020}", since.as_microsecond())),
                false,
                Some(i32::try_from(max.max(1)).unwrap_or(i32::MAX)),
            )
            .await?;
        let mut out = items
            .iter()
            .take(max)
            .map(|i| {
                Timestamp::from_microsecond(get_n(i, "at_us")?)
                    .map_err(|e| StoreError::Backend(e.to_string()))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        out.reverse();
        Ok(out)
    }

    async fn clear(&self, key: &str) -> StoreResult<()> {
        for item in self
            .query_sk(format!("ATT#{key}"), None, true, None)
            .await?
        {
            let r = self
                .client
                .delete_item()
                .table_name(&self.table)
                .key(
                    "pk",
                    item.get("pk")
                        .cloned()
                        .unwrap_or(AttributeValue::Null(true)),
                )
                .key(
                    "sk",
                    item.get("sk")
                        .cloned()
                        .unwrap_or(AttributeValue::Null(true)),
                )
                .send()
                .await;
            if let Err(e) = r
                && e.code() != Some("ConditionalCheckFailedException")
            {
                return Err(classify(e, StoreError::Conflict));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl RefreshTokenStore for DynamoStore {
    async fn put(&self, r: &RefreshRecord) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("RT#{}", r.token_hash)))
            .item("sk", s("RT"))
            .item("kind", s("refresh-token"))
            .item("spent", AttributeValue::Bool(false))
            .item("ttl", n(r.expires.as_second()))
            .item("body", s(to_json(r)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| classify(e, StoreError::Duplicate))?;
        Ok(())
    }

    async fn spend(&self, token_hash: &str, now: Timestamp) -> StoreResult<RefreshUse> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("RT#{token_hash}")))
            .key("sk", s("RT"))
            .update_expression("SET spent = :t, spent_at = :now")
            .condition_expression("attribute_exists(pk) AND spent = :f")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .expression_attribute_values(":now", n(now.as_second()))
            .expression_attribute_values(":f", AttributeValue::Bool(false))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match r {
            Ok(out) => Ok(RefreshUse::Fresh(body_of(
                &out.attributes.unwrap_or_default(),
            )?)),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                match self.get_item(format!("RT#{token_hash}"), "RT").await? {
                    Some(item) => Ok(RefreshUse::Reused {
                        record: body_of(&item)?,
                        spent_at: Timestamp::from_second(get_n(&item, "spent_at").unwrap_or(0))
                            .unwrap_or(Timestamp::UNIX_EPOCH),
                    }),
                    None => Ok(RefreshUse::NotFound),
                }
            }
            Err(e) => Err(classify(e, StoreError::Conflict)),
        }
    }

    async fn spent(&self, token_hash: &str) -> StoreResult<Option<bool>> {
        Ok(self
            .get_item(format!("RT#{token_hash}"), "RT")
            .await?
            .map(|item| matches!(item.get("spent"), Some(AttributeValue::Bool(true)))))
    }

    async fn claim_retry(&self, token_hash: &str) -> StoreResult<bool> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("RT#{token_hash}")))
            .key("sk", s("RT"))
            .update_expression("SET retried = :t")
            .condition_expression("spent = :t AND attribute_not_exists(retried)")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(e) => Err(classify(e, StoreError::Conflict)),
        }
    }

    async fn revoke_family(&self, family: Uuid) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("RF#{family}")))
            .item("sk", s("RF"))
            .item("kind", s("revoked-family"))
            // Refresh tokens live 30 days at most; their revocation a little longer.
            .item("ttl", n(Timestamp::now().as_second() + 40 * 86_400))
            .send()
            .await
            .map_err(|e| classify(e, StoreError::Conflict))?;
        Ok(())
    }

    async fn family_revoked(&self, family: Uuid) -> StoreResult<bool> {
        Ok(self.get_item(format!("RF#{family}"), "RF").await?.is_some())
    }
}

#[async_trait]
impl ChallengeStore for DynamoStore {
    async fn put(&self, c: &Challenge) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("CH#{}", c.id)))
            .item("sk", s("CH"))
            .item("kind", s("challenge"))
            .item("expires_s", n(c.expires.as_second()))
            .item("ttl", n(c.expires.as_second()))
            .item("body", s(to_json(c)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| classify(e, StoreError::Duplicate))?;
        Ok(())
    }

    async fn get(&self, id: &str, now: Timestamp) -> StoreResult<Option<Challenge>> {
        let Some(item) = self.get_item(format!("CH#{id}"), "CH").await? else {
            return Ok(None);
        };
        // TTL deletion is lazy: the expiry is checked here.
        if get_n(&item, "expires_s")? <= now.as_second() {
            return Ok(None);
        }
        Ok(Some(body_of(&item)?))
    }

    async fn consume(&self, id: &str, now: Timestamp) -> StoreResult<bool> {
        let r = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("CH#{id}")))
            .key("sk", s("CH"))
            .condition_expression("attribute_exists(pk) AND expires_s > :now")
            .expression_attribute_values(":now", n(now.as_second()))
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(e) => Err(classify(e, StoreError::Conflict)),
        }
    }
}

#[async_trait]
impl BusinessGrants for DynamoStore {
    async fn grant(&self, g: &BusinessGrant) -> StoreResult<(BusinessGrant, bool)> {
        let r = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("BIZ#{}", g.business_id)))
            .item("sk", s(format!("MEMBER#{}", g.member_hash)))
            .item("kind", s("business-grant"))
            .item("grant_id", s(g.id.to_string()))
            .item("body", s(to_json(g)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match r {
            Ok(_) => Ok((g.clone(), true)),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                let stored = self
                    .find(g.business_id, &g.member_hash)
                    .await?
                    .ok_or_else(|| StoreError::Backend("grant vanished".into()))?;
                Ok((stored, false))
            }
            Err(e) => Err(classify(e, StoreError::Conflict)),
        }
    }

    async fn find(
        &self,
        business_id: Uuid,
        member_hash: &str,
    ) -> StoreResult<Option<BusinessGrant>> {
        match self
            .get_item(
                format!("BIZ#{business_id}"),
                &format!("MEMBER#{member_hash}"),
            )
            .await?
        {
            Some(item) => Ok(Some(body_of(&item)?)),
            None => Ok(None),
        }
    }

    async fn list(&self, business_id: Uuid) -> StoreResult<Vec<BusinessGrant>> {
        let items = self
            .query_sk(format!("BIZ#{business_id}"), None, true, None)
            .await?;
        let mut grants: Vec<BusinessGrant> = items.iter().map(body_of).collect::<Result<_, _>>()?;
        grants.sort_by_key(|g| (g.granted_at, g.id));
        Ok(grants)
    }

    async fn revoke(&self, business_id: Uuid, id: Uuid) -> StoreResult<bool> {
        let Some(g) = self
            .list(business_id)
            .await?
            .into_iter()
            .find(|g| g.id == id)
        else {
            return Ok(false);
        };
        let r = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("BIZ#{business_id}")))
            .key("sk", s(format!("MEMBER#{}", g.member_hash)))
            .condition_expression("grant_id = :id")
            .expression_attribute_values(":id", s(id.to_string()))
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(e) => Err(classify(e, StoreError::Conflict)),
        }
    }
}
