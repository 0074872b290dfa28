//! Delivery records and the shared send rate on the table.
//!
//! | item | pk | sk | index keys |
//! |---|---|---|---|
//! | delivery | `NT#<id>` | `NT` | gsi1 `DNT#<dossier>` / `<created µs>#<id>`; gsi2 `NTP#<provider>#<provider id>` / `NT` once sent; gsi4 `NOTIFY-DUE#<shard>` / `<due µs>#<id>` while unsettled (sparse, [`SHARDS`] partitions) |
//! | delivery key (uniqueness) | `NTK#<key>` | `NTK` | |
//! | send-rate window | `RATE#<bucket>#<window>` ([`rate_window`]) | `RATE` | TTL attribute `ttl` |
//!
//! A delivery and its key are written in one transaction, each only if absent. An update
//! replaces the item if its `version` is the one before. The due index is read without a
//! second look at each item: a stale entry loses at the claim's version check.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use jiff::{SignedDuration, Timestamp};
use motcua_ports::notifications::{Delivery, DeliveryStore, PER_DOSSIER, SendRate, rate_window};
use motcua_ports::{StoreError, StoreResult};
use uuid::Uuid;

use crate::{DynamoStore, Item, body_of, build, classify, get_s, n, s, to_json};

/// Partitions of the due index: a burst of thousands of messages spreads over them.
pub const SHARDS: u32 = 8;

fn shard(id: Uuid) -> u32 {
    (id.as_u128() % u128::from(SHARDS)) as u32
}

fn item_of(d: &Delivery) -> StoreResult<Item> {
    let mut item = Item::new();
    item.insert("pk".into(), s(format!("NT#{}", d.id)));
    item.insert("sk".into(), s("NT"));
    item.insert("kind".into(), s("delivery"));
    item.insert("version".into(), n(d.version));
    item.insert("body".into(), s(to_json(d)?));
    if let Some(dossier) = d.dossier_id {
        item.insert("gsi1pk".into(), s(format!("DNT#{dossier}")));
        item.insert(
            "gsi1sk".into(),
            s(format!(
                "{:020}#{}",
                d.created_at.as_microsecond().max(0),
                d.id
            )),
        );
    }
    if let (Some(p), Some(id)) = (&d.provider, &d.provider_id) {
        item.insert("gsi2pk".into(), s(format!("NTP#{p}#{id}")));
        item.insert("gsi2sk".into(), s("NT"));
    }
    if !d.status.settled() {
        item.insert("gsi4pk".into(), s(format!("NOTIFY-DUE#{}", shard(d.id))));
        item.insert(
            "gsi4sk".into(),
            s(format!("{:020}#{}", d.due_at.as_microsecond().max(0), d.id)),
        );
    }
    Ok(item)
}

fn put(table: &str, item: Item, condition: &str) -> StoreResult<TransactWriteItem> {
    let p = build(
        Put::builder()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression(condition)
            .build(),
    )?;
    Ok(TransactWriteItem::builder().put(p).build())
}

impl DynamoStore {
    async fn plan_one(&self, d: &Delivery) -> StoreResult<(Delivery, bool)> {
        let mut key = Item::new();
        key.insert("pk".into(), s(format!("NTK#{}", d.key)));
        key.insert("sk".into(), s("NTK"));
        key.insert("kind".into(), s("delivery-key"));
        key.insert("id".into(), s(d.id.to_string()));
        let written = self
            .client
            .transact_write_items()
            .transact_items(put(&self.table, key, "attribute_not_exists(pk)")?)
            .transact_items(put(&self.table, item_of(d)?, "attribute_not_exists(pk)")?)
            .send()
            .await
            .map_err(|e| classify(e, StoreError::Duplicate));
        match written {
            Ok(_) => Ok((d.clone(), true)),
            Err(StoreError::Duplicate) => {
                let key = self
                    .get_item(format!("NTK#{}", d.key), "NTK")
                    .await?
                    .ok_or(StoreError::Conflict)?;
                let id = Uuid::parse_str(get_s(&key, "id")?)
                    .map_err(|e| StoreError::Backend(e.to_string()))?;
                let stored = self.get(id).await?.ok_or(StoreError::Conflict)?;
                Ok((stored, false))
            }
            Err(e) => Err(e),
        }
    }

    async fn query_index(
        &self,
        index: &str,
        pk_name: &str,
        pk: String,
        sk_below: Option<String>,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>> {
        let mut found = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(index)
                .expression_attribute_names("#pk", pk_name)
                .expression_attribute_values(":p", s(pk.clone()))
                .limit(limit.clamp(1, 1000) as i32)
                .set_exclusive_start_key(start.take());
            q = match &sk_below {
                Some(below) => q
                    .key_condition_expression("#pk = :p AND gsi4sk <= :below")
                    .expression_attribute_values(":below", s(below.clone())),
                None => q.key_condition_expression("#pk = :p"),
            };
            let out = q
                .send()
                .await
                .map_err(|e| classify(e, StoreError::Conflict))?;
            for item in out.items() {
                found.push(body_of::<Delivery>(item)?);
            }
            match out.last_evaluated_key {
                Some(k) if (found.len() as u32) < limit => start = Some(k),
                _ => break,
            }
        }
        found.truncate(limit as usize);
        Ok(found)
    }
}

#[async_trait]
impl DeliveryStore for DynamoStore {
    async fn plan(&self, deliveries: &[Delivery]) -> StoreResult<Vec<(Delivery, bool)>> {
        let mut out = Vec::with_capacity(deliveries.len());
        for d in deliveries {
            out.push(self.plan_one(d).await?);
        }
        Ok(out)
    }

    async fn get(&self, id: Uuid) -> StoreResult<Option<Delivery>> {
        self.get_item(format!("NT#{id}"), "NT")
            .await?
            .map(|item| body_of(&item))
            .transpose()
    }

    async fn update(&self, d: &Delivery) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item_of(d)?))
            .condition_expression("version = :prev")
            .expression_attribute_values(":prev", n(d.version.saturating_sub(1)))
            .send()
            .await
            .map_err(|e| classify(e, StoreError::Conflict))?;
        Ok(())
    }

    async fn due(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<Delivery>> {
        let below = format!("{:020}#~", now.as_microsecond().max(0));
        let mut all = Vec::new();
        for shard in 0..SHARDS {
            let part = self
                .query_index(
                    "gsi4",
                    "gsi4pk",
                    format!("NOTIFY-DUE#{shard}"),
                    Some(below.clone()),
                    limit,
                )
                .await?;
            all.extend(part.into_iter().filter(|d| !d.status.settled()));
        }
        all.sort_by_key(|d| (d.due_at, d.id));
        all.truncate(limit as usize);
        Ok(all)
    }

    async fn of_dossier(&self, dossier: Uuid) -> StoreResult<Vec<Delivery>> {
        self.query_index(
            "gsi1",
            "gsi1pk",
            format!("DNT#{dossier}"),
            None,
            PER_DOSSIER,
        )
        .await
    }

    async fn by_provider_id(
        &self,
        provider: &str,
        provider_id: &str,
    ) -> StoreResult<Option<Delivery>> {
        let found = self
            .query_index(
                "gsi2",
                "gsi2pk",
                format!("NTP#{provider}#{provider_id}"),
                None,
                1,
            )
            .await?;
        match found.into_iter().next() {
            // The index may lag: the item itself says where the delivery stands.
            Some(d) => self.get(d.id).await,
            None => Ok(None),
        }
    }
}

#[async_trait]
impl SendRate for DynamoStore {
    async fn take(
        &self,
        bucket: &str,
        per_second: u32,
        now: Timestamp,
    ) -> StoreResult<Result<(), SignedDuration>> {
        let (window, quota, next) = rate_window(per_second, now);
        let added = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("RATE#{bucket}#{window}")))
            .key("sk", s("RATE"))
            .update_expression("ADD taken :one SET #ttl = :ttl")
            .condition_expression("attribute_not_exists(taken) OR taken < :quota")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":quota", n(quota))
            .expression_attribute_values(":ttl", n(now.as_second() + 300))
            .send()
            .await
            .map_err(|e| classify(e, StoreError::Duplicate));
        match added {
            Ok(_) => Ok(Ok(())),
            Err(StoreError::Duplicate) => Ok(Err(next.duration_since(now))),
            Err(e) => Err(e),
        }
    }

    async fn take_in(&self, bucket: &str, period: i64, limit: u32) -> StoreResult<bool> {
        let added = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("RATE#{bucket}#P{period}")))
            .key("sk", s("RATE"))
            .update_expression("ADD taken :one SET #ttl = :ttl")
            .condition_expression("attribute_not_exists(taken) OR taken < :limit")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":limit", n(limit))
            // Kept a week: long enough for any period this counts (days).
            .expression_attribute_values(":ttl", n(Timestamp::now().as_second() + 7 * 86_400))
            .send()
            .await
            .map_err(|e| classify(e, StoreError::Duplicate));
        match added {
            Ok(_) => Ok(true),
            Err(StoreError::Duplicate) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
