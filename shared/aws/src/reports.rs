//! KPI counters on the table.
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | applied contribution | `KPIA#<dossier>` | `KPIA` | `version`, `body` |
//! | counters | `KPI#<agency>` | `<YYYY-MM>#<shard>` | one number per counter, `c:<name>` |
//!
//! Many consumers add to one agency's month at once: its counters are spread over
//! [`SHARDS`] items, a dossier always adding to the same one (its id decides), and a report
//! sums them. A replacement is one transaction: the applied item (conditioned on the
//! version it replaces) and one `ADD` to the counters item.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, Put, TransactWriteItem, Update, WriteRequest,
};
use motcua_domain::AgencyCode;
use motcua_domain::kpi::{Counts, Month, RowKey, valid_name};
use motcua_ports::reports::{Applied, KpiStore};
use motcua_ports::{StoreError, StoreResult};
use uuid::Uuid;

use crate::{DynamoStore, Item, body_of, build, classify, n, s, to_json};

/// Items each agency × month's counters are spread over.
pub const SHARDS: u32 = 8;

/// Counter attributes carry this prefix (no clash with the table's own attributes).
const COUNTER: &str = "c:";

fn shard(dossier: Uuid) -> u32 {
    // The random bits of a v7 id (its low bits), not its time.
    (dossier.as_u128() % u128::from(SHARDS)) as u32
}

fn counter_key(row: &RowKey, shard: u32) -> (String, String) {
    (
        format!("KPI#{}", row.agency.as_str()),
        format!("{}#{shard}", row.month),
    )
}

impl DynamoStore {
    fn counters_update(&self, row: &RowKey, shard: u32, diff: &Counts) -> StoreResult<Update> {
        let (pk, sk) = counter_key(row, shard);
        let mut parts = Vec::with_capacity(diff.0.len());
        let mut u = Update::builder()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk));
        for (i, (name, v)) in diff.0.iter().enumerate() {
            if !valid_name(name) {
                return Err(StoreError::Backend(format!("counter name {name:?}")));
            }
            parts.push(format!("#a{i} :v{i}"));
            u = u
                .expression_attribute_names(format!("#a{i}"), format!("{COUNTER}{name}"))
                .expression_attribute_values(format!(":v{i}"), n(*v));
        }
        build(
            u.update_expression(format!("ADD {}", parts.join(", ")))
                .build(),
        )
    }
}

#[async_trait]
impl KpiStore for DynamoStore {
    async fn applied(&self, dossier: Uuid) -> StoreResult<Option<Applied>> {
        match self.get_item(format!("KPIA#{dossier}"), "KPIA").await? {
            Some(item) => Ok(Some(body_of(&item)?)),
            None => Ok(None),
        }
    }

    async fn replace(
        &self,
        dossier: Uuid,
        previous: Option<&Applied>,
        next: &Applied,
    ) -> StoreResult<()> {
        let mut item = Item::new();
        item.insert("pk".into(), s(format!("KPIA#{dossier}")));
        item.insert("sk".into(), s("KPIA"));
        item.insert("kind".into(), s("kpi-applied"));
        item.insert("version".into(), n(next.version));
        item.insert("body".into(), s(to_json(next)?));
        let mut put = Put::builder().table_name(&self.table).set_item(Some(item));
        put = match previous {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(p) => put
                .condition_expression("version = :prev")
                .expression_attribute_values(":prev", n(p.version)),
        };
        let put = build(put.build())?;
        // What each row gains (a dossier keeps its row; two only if it ever moved).
        let mut diffs: BTreeMap<&RowKey, Counts> = BTreeMap::new();
        diffs
            .entry(&next.contribution.row)
            .or_default()
            .add_all(&next.contribution.counts);
        if let Some(p) = previous {
            let d = diffs.entry(&p.contribution.row).or_default();
            for (k, v) in &p.contribution.counts.0 {
                d.add(k, -v);
            }
        }
        diffs.retain(|_, d| !d.is_empty());
        if diffs.is_empty() {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(put.item))
                .set_condition_expression(put.condition_expression)
                .set_expression_attribute_values(put.expression_attribute_values)
                .send()
                .await
                .map_err(|e| classify(e, StoreError::Conflict))?;
            return Ok(());
        }
        let mut items = vec![TransactWriteItem::builder().put(put).build()];
        for (row, diff) in diffs {
            let update = self.counters_update(row, shard(dossier), &diff)?;
            items.push(TransactWriteItem::builder().update(update).build());
        }
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(|e| classify(e, StoreError::Conflict))?;
        Ok(())
    }

    async fn rows(
        &self,
        agencies: &[AgencyCode],
        from: Month,
        to: Month,
    ) -> StoreResult<Vec<(RowKey, Counts)>> {
        let mut agencies: Vec<&AgencyCode> = agencies.iter().collect();
        agencies.sort();
        agencies.dedup();
        let mut out = Vec::new();
        for agency in agencies {
            let mut months: BTreeMap<Month, Counts> = BTreeMap::new();
            let mut start: Option<Item> = None;
            loop {
                let res = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                    .expression_attribute_values(":pk", s(format!("KPI#{}", agency.as_str())))
                    .expression_attribute_values(":from", s(format!("{from}#")))
                    .expression_attribute_values(":to", s(format!("{to}#~")))
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| classify(e, StoreError::Conflict))?;
                for item in res.items() {
                    let sk = item.get("sk").and_then(|v| v.as_s().ok());
                    let Some(month) = sk.and_then(|k| k.split('#').next()).and_then(Month::parse)
                    else {
                        continue;
                    };
                    let c = months.entry(month).or_default();
                    for (k, v) in item {
                        if let (Some(name), AttributeValue::N(x)) = (k.strip_prefix(COUNTER), v) {
                            c.add(
                                name,
                                x.parse::<i64>()
                                    .map_err(|e| StoreError::Backend(e.to_string()))?,
                            );
                        }
                    }
                }
                match res.last_evaluated_key {
                    Some(k) if !k.is_empty() => start = Some(k),
                    _ => break,
                }
            }
            out.extend(
                months
                    .into_iter()
                    .filter(|(_, c)| !c.is_empty())
                    .map(|(month, c)| {
                        (
                            RowKey {
                                agency: agency.clone(),
                                month,
                            },
                            c,
                        )
                    }),
            );
        }
        Ok(out)
    }

    async fn reset(&self) -> StoreResult<()> {
        let mut start: Option<Item> = None;
        loop {
            let res = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(pk, :kpi)")
                .expression_attribute_values(":kpi", s("KPI"))
                .projection_expression("pk, sk")
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify(e, StoreError::Conflict))?;
            let keys: Vec<Item> = res
                .items()
                .iter()
                .map(|i| {
                    i.iter()
                        .filter(|(k, _)| *k == "pk" || *k == "sk")
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .collect();
            for chunk in keys.chunks(25) {
                let mut pending: Vec<WriteRequest> = chunk
                    .iter()
                    .map(|k| {
                        build(DeleteRequest::builder().set_key(Some(k.clone())).build())
                            .map(|d| WriteRequest::builder().delete_request(d).build())
                    })
                    .collect::<StoreResult<_>>()?;
                while !pending.is_empty() {
                    let out = self
                        .client
                        .batch_write_item()
                        .request_items(&self.table, pending)
                        .send()
                        .await
                        .map_err(|e| classify(e, StoreError::Conflict))?;
                    pending = out
                        .unprocessed_items
                        .and_then(|mut m| m.remove(&self.table))
                        .unwrap_or_default();
                }
            }
            match res.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(())
    }
}
