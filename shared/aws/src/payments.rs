//! Payment records on the table.
//!
//! | item | pk | sk | index keys |
//! |---|---|---|---|
//! | payment | `PAY#<id>` | `PAY` | gsi1 `DPAY#<dossier>` / `<created µs>#<id>`; gsi2 `PAYDAY#<day>` / same; gsi4 `PAY-OPEN#<shard>` / same while open (sparse, [`SHARDS`] partitions) |
//! | open payment of a fee (uniqueness) | `PAYOPEN#<dossier>#<fee key>` | `PAYOPEN` | |
//! | reconciliation report | `PAYREPORT#<day>` | `PAYREPORT` | |
//!
//! A payment and its fee's marker are written together, each only if absent; the marker
//! goes in the same transaction as the update that closes the payment. A settlement adds
//! the dossier (conditioned on its version), its history entry and the outbox event.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use jiff::Timestamp;
use jiff::civil::Date;
use motcua_domain::calendar::local_date;
use motcua_domain::payment::Payment;
use motcua_domain::{Dossier, EventEnvelope, HistoryEntry};
use motcua_ports::payments::{PER_DOSSIER, PaymentStore, ReconciliationReport};
use motcua_ports::{StoreError, StoreResult};
use uuid::Uuid;

use crate::{
    DynamoStore, Item, body_of, build, classify, event_item, get_n, history_item, n, s, to_json,
};

/// Partitions of the open-payments index.
pub const SHARDS: u32 = 4;

fn sort_key(p: &Payment) -> String {
    format!("{:020}#{}", p.created_at.as_microsecond().max(0), p.id)
}

fn marker_pk(p: &Payment) -> String {
    format!("PAYOPEN#{}#{}", p.dossier_id, p.fee_key)
}

fn item_of(p: &Payment) -> StoreResult<Item> {
    let mut item = Item::new();
    item.insert("pk".into(), s(format!("PAY#{}", p.id)));
    item.insert("sk".into(), s("PAY"));
    item.insert("kind".into(), s("payment"));
    item.insert("version".into(), n(p.version));
    item.insert("open".into(), AttributeValue::Bool(p.status.is_open()));
    item.insert("body".into(), s(to_json(p)?));
    item.insert("gsi1pk".into(), s(format!("DPAY#{}", p.dossier_id)));
    item.insert("gsi1sk".into(), s(sort_key(p)));
    item.insert(
        "gsi2pk".into(),
        s(format!("PAYDAY#{}", local_date(p.created_at))),
    );
    item.insert("gsi2sk".into(), s(sort_key(p)));
    if p.status.is_open() {
        let shard = (p.id.as_u128() % u128::from(SHARDS)) as u32;
        item.insert("gsi4pk".into(), s(format!("PAY-OPEN#{shard}")));
        item.insert("gsi4sk".into(), s(sort_key(p)));
    }
    Ok(item)
}

impl DynamoStore {
    fn put_payment(&self, p: &Payment, condition: &str) -> StoreResult<TransactWriteItem> {
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item_of(p)?))
            .condition_expression(condition);
        if condition.contains(":prev") {
            put = put.expression_attribute_values(":prev", n(p.version.saturating_sub(1)));
        }
        Ok(TransactWriteItem::builder()
            .put(build(put.build())?)
            .build())
    }

    /// The writes that replace `p`: the payment, and the fee's marker if `p` closes it.
    async fn replacing(&self, p: &Payment) -> StoreResult<Vec<TransactWriteItem>> {
        let mut items = vec![self.put_payment(p, "version = :prev")?];
        if !p.status.is_open() {
            // Was it open? The stored item says; the version condition above makes the
            // answer hold for the write.
            let stored = self
                .get_item(format!("PAY#{}", p.id), "PAY")
                .await?
                .ok_or(StoreError::Conflict)?;
            let was_open = matches!(stored.get("open"), Some(AttributeValue::Bool(true)));
            if get_n(&stored, "version")? != p.version as i64 - 1 {
                return Err(StoreError::Conflict);
            }
            if was_open {
                let delete = Delete::builder()
                    .table_name(&self.table)
                    .key("pk", s(marker_pk(p)))
                    .key("sk", s("PAYOPEN"))
                    .condition_expression("id = :id")
                    .expression_attribute_values(":id", s(p.id.to_string()))
                    .build();
                items.push(TransactWriteItem::builder().delete(build(delete)?).build());
            }
        }
        Ok(items)
    }

    async fn write_all(
        &self,
        items: Vec<TransactWriteItem>,
        on_condition: StoreError,
    ) -> StoreResult<()> {
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(|e| classify(e, on_condition))?;
        Ok(())
    }

    async fn query_payments(
        &self,
        index: &str,
        pk: String,
        sk_condition: &str,
        sk_value: String,
        limit: u32,
    ) -> StoreResult<Vec<Payment>> {
        let mut found = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(index)
                .key_condition_expression(format!("#pk = :p AND #sk {sk_condition} :v"))
                .expression_attribute_names("#pk", format!("{index}pk"))
                .expression_attribute_names("#sk", format!("{index}sk"))
                .expression_attribute_values(":p", s(pk.clone()))
                .expression_attribute_values(":v", s(sk_value.clone()))
                .limit(limit.clamp(1, 1000) as i32)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify(e, StoreError::Conflict))?;
            for item in out.items() {
                found.push(body_of::<Payment>(item)?);
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
impl PaymentStore for DynamoStore {
    async fn open(&self, p: &Payment) -> StoreResult<()> {
        let mut marker = Item::new();
        marker.insert("pk".into(), s(marker_pk(p)));
        marker.insert("sk".into(), s("PAYOPEN"));
        marker.insert("kind".into(), s("payment-open"));
        marker.insert("id".into(), s(p.id.to_string()));
        let marker = build(
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(marker))
                .condition_expression("attribute_not_exists(pk)")
                .build(),
        )?;
        self.write_all(
            vec![
                TransactWriteItem::builder().put(marker).build(),
                self.put_payment(p, "attribute_not_exists(pk)")?,
            ],
            StoreError::Duplicate,
        )
        .await
    }

    async fn open_for(&self, dossier: Uuid, fee_key: u64) -> StoreResult<Option<Payment>> {
        let Some(marker) = self
            .get_item(format!("PAYOPEN#{dossier}#{fee_key}"), "PAYOPEN")
            .await?
        else {
            return Ok(None);
        };
        let id = Uuid::parse_str(crate::get_s(&marker, "id")?)
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        Ok(self.get(id).await?.filter(|p| p.status.is_open()))
    }

    async fn get(&self, id: Uuid) -> StoreResult<Option<Payment>> {
        self.get_item(format!("PAY#{id}"), "PAY")
            .await?
            .map(|item| body_of(&item))
            .transpose()
    }

    async fn for_dossier(&self, dossier: Uuid) -> StoreResult<Vec<Payment>> {
        self.query_payments(
            "gsi1",
            format!("DPAY#{dossier}"),
            ">",
            "!".into(),
            PER_DOSSIER,
        )
        .await
    }

    async fn update(&self, p: &Payment) -> StoreResult<()> {
        let items = self.replacing(p).await?;
        self.write_all(items, StoreError::Conflict).await
    }

    async fn settle(
        &self,
        p: &Payment,
        dossier: Option<(&Dossier, &HistoryEntry)>,
        event: &EventEnvelope,
    ) -> StoreResult<()> {
        let not_exists = Some("attribute_not_exists(pk)");
        let mut items = self.replacing(p).await?;
        if let Some((d, h)) = dossier {
            items.push(self.dossier_update(d)?);
            items.push(crate::put(&self.table, history_item(d, h)?, not_exists)?);
        }
        items.push(crate::put(&self.table, event_item(event)?, not_exists)?);
        self.write_all(items, StoreError::Conflict).await
    }

    async fn open_before(&self, before: Timestamp, limit: u32) -> StoreResult<Vec<Payment>> {
        let below = format!("{:020}#", before.as_microsecond().max(0));
        let mut all = Vec::new();
        for shard in 0..SHARDS {
            let part = self
                .query_payments(
                    "gsi4",
                    format!("PAY-OPEN#{shard}"),
                    "<",
                    below.clone(),
                    limit,
                )
                .await?;
            all.extend(part.into_iter().filter(|p| p.status.is_open()));
        }
        all.sort_by_key(|p| (p.created_at, p.id));
        all.truncate(limit as usize);
        Ok(all)
    }

    async fn created_on(
        &self,
        day: Date,
        after: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<Payment>> {
        let from = match after {
            // Below every sort key (they start with digits).
            None => "!".into(),
            Some(id) => sort_key(&self.get(id).await?.ok_or(StoreError::BadCursor)?),
        };
        self.query_payments("gsi2", format!("PAYDAY#{day}"), ">", from, limit)
            .await
    }

    async fn put_report(&self, r: &ReconciliationReport) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("PAYREPORT#{}", r.day)))
            .item("sk", s("PAYREPORT"))
            .item("kind", s("payment-report"))
            .item("body", s(to_json(r)?))
            .send()
            .await
            .map_err(|e| classify(e, StoreError::Conflict))?;
        Ok(())
    }

    async fn report(&self, day: Date) -> StoreResult<Option<ReconciliationReport>> {
        self.get_item(format!("PAYREPORT#{day}"), "PAYREPORT")
            .await?
            .map(|item| body_of(&item))
            .transpose()
    }
}
