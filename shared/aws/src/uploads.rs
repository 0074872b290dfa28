//! Upload records, their download audit and the personal document store on the table.
//!
//! | item | pk | sk | index keys |
//! |---|---|---|---|
//! | upload | `UP#<id>` | `UP` | gsi4 `UPLOADS-AWAITING` / `<expires s, 12 digits>#<id>` while awaiting its file (sparse) |
//! | download (audit) | `UP#<id>` | `DL#<µs, 20 digits>#<random>` | TTL none: kept with the upload |
//! | reuse by a dossier | `UP#<id>` | `RU#<dossier id>` | |
//! | stored document | `DOC#<id>` | `DOC` | gsi1 `DOCS#<owner>` / `<added µs>#<id>` |
//!
//! A dossier's citation of an upload is an update of the upload item in the dossier's own
//! transaction ([`claim`]).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use jiff::Timestamp;
use motcua_domain::Role;
use motcua_domain::upload::{StoredDocument, Upload, UploadStatus};
use motcua_ports::uploads::{DocumentStore, Download, UploadStore};
use motcua_ports::{Citation, Page, PageRequest, StoreError, StoreResult};
use uuid::Uuid;

use crate::{DynamoStore, IndexQuery, Item, body_of, build, classify, get_s, n, s, to_json};

const AWAITING: &str = "UPLOADS-AWAITING";

fn status_name(st: UploadStatus) -> &'static str {
    match st {
        UploadStatus::AwaitingFile => "awaiting_file",
        UploadStatus::Verified => "verified",
        UploadStatus::Rejected => "rejected",
        UploadStatus::Expired => "expired",
    }
}

fn upload_pk(id: Uuid) -> String {
    format!("UP#{id}")
}

/// The update that claims a cited upload for `dossier` (or, for a reused document, the
/// item that lets the dossier's officers read it), to add to the dossier's transaction.
pub(crate) fn claim(table: &str, dossier: Uuid, cite: &Citation) -> StoreResult<TransactWriteItem> {
    if cite.shared {
        let mut item = Item::new();
        item.insert("pk".into(), s(upload_pk(cite.upload)));
        item.insert("sk".into(), s(format!("RU#{dossier}")));
        item.insert("kind".into(), s("reuse"));
        let put = build(
            aws_sdk_dynamodb::types::Put::builder()
                .table_name(table)
                .set_item(Some(item))
                .build(),
        )?;
        return Ok(TransactWriteItem::builder().put(put).build());
    }
    let update = build(
        Update::builder()
            .table_name(table)
            .key("pk", s(upload_pk(cite.upload)))
            .key("sk", s("UP"))
            .update_expression("SET cited_by = :d")
            .condition_expression(
                "attribute_exists(pk) AND #owner = :o AND #status = :v \
                 AND (attribute_not_exists(cited_by) OR cited_by = :d)",
            )
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":d", s(dossier.to_string()))
            .expression_attribute_values(":o", s(cite.owner.clone()))
            .expression_attribute_values(":v", s("verified"))
            .build(),
    )?;
    Ok(TransactWriteItem::builder().update(update).build())
}

fn upload_of(item: &Item) -> StoreResult<Upload> {
    let mut u: Upload = body_of(item)?;
    u.cited_by = match item.get("cited_by") {
        Some(AttributeValue::S(d)) => Uuid::parse_str(d).ok(),
        _ => None,
    };
    Ok(u)
}

#[async_trait]
impl UploadStore for DynamoStore {
    async fn create_upload(&self, u: &Upload) -> StoreResult<()> {
        let mut item = Item::new();
        item.insert("pk".into(), s(upload_pk(u.id)));
        item.insert("sk".into(), s("UP"));
        item.insert("kind".into(), s("upload"));
        item.insert("owner".into(), s(u.owner.clone()));
        item.insert("status".into(), s(status_name(u.status)));
        item.insert("body".into(), s(to_json(u)?));
        if u.status == UploadStatus::AwaitingFile {
            item.insert("gsi4pk".into(), s(AWAITING));
            item.insert(
                "gsi4sk".into(),
                s(format!("{:012}#{}", u.expires_at.as_second().max(0), u.id)),
            );
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| classify(e, StoreError::Duplicate))?;
        Ok(())
    }

    async fn upload(&self, id: Uuid) -> StoreResult<Option<Upload>> {
        self.get_item(upload_pk(id), "UP")
            .await?
            .map(|item| upload_of(&item))
            .transpose()
    }

    async fn settle_upload(&self, u: &Upload) -> StoreResult<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(upload_pk(u.id)))
            .key("sk", s("UP"))
            .update_expression("SET #status = :st, body = :b REMOVE gsi4pk, gsi4sk")
            .condition_expression("#status = :awaiting")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":st", s(status_name(u.status)))
            .expression_attribute_values(":b", s(to_json(u)?))
            .expression_attribute_values(":awaiting", s("awaiting_file"))
            .send()
            .await
            .map_err(|e| classify(e, StoreError::Conflict))?;
        Ok(())
    }

    async fn stale_uploads(&self, before: Timestamp, limit: u32) -> StoreResult<Vec<Upload>> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("gsi4")
            .key_condition_expression("gsi4pk = :p AND gsi4sk < :before")
            .expression_attribute_values(":p", s(AWAITING))
            .expression_attribute_values(
                ":before",
                s(format!("{:012}#", before.as_second().max(0))),
            )
            .limit(limit.clamp(1, 1000) as i32)
            .send()
            .await
            .map_err(|e| classify(e, StoreError::Conflict))?;
        let mut found = Vec::new();
        // The index is eventually consistent: read each item to get its current state.
        for item in out.items() {
            let id = get_s(item, "pk")?
                .strip_prefix("UP#")
                .and_then(|i| Uuid::parse_str(i).ok());
            if let Some(u) = match id {
                Some(id) => self.upload(id).await?,
                None => None,
            } && u.status == UploadStatus::AwaitingFile
            {
                found.push(u);
            }
        }
        Ok(found)
    }

    async fn record_download(&self, d: &Download) -> StoreResult<()> {
        let mut item = Item::new();
        item.insert("pk".into(), s(upload_pk(d.upload)));
        item.insert(
            "sk".into(),
            s(format!(
                "DL#{:020}#{}",
                d.at.as_microsecond().max(0),
                Uuid::new_v4().simple()
            )),
        );
        item.insert("kind".into(), s("download"));
        item.insert("actor".into(), s(d.actor.clone()));
        item.insert("role".into(), s(d.role.as_str()));
        item.insert("at_us".into(), n(d.at.as_microsecond()));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| classify(e, StoreError::Conflict))?;
        Ok(())
    }

    async fn downloads(&self, upload: Uuid) -> StoreResult<Vec<Download>> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :dl)")
            .expression_attribute_values(":pk", s(upload_pk(upload)))
            .expression_attribute_values(":dl", s("DL#"))
            .consistent_read(true)
            .limit(1000)
            .send()
            .await
            .map_err(|e| classify(e, StoreError::Conflict))?;
        out.items()
            .iter()
            .map(|item| {
                let at = crate::get_n(item, "at_us")?;
                Ok(Download {
                    upload,
                    at: Timestamp::from_microsecond(at)
                        .map_err(|e| StoreError::Backend(e.to_string()))?,
                    actor: get_s(item, "actor")?.to_owned(),
                    role: Role::parse(get_s(item, "role")?)
                        .ok_or_else(|| StoreError::Backend("unknown role".into()))?,
                })
            })
            .collect()
    }

    async fn reused_by(&self, upload: Uuid) -> StoreResult<Vec<Uuid>> {
        self.reuses(upload).await
    }
}

impl DynamoStore {
    async fn reuses(&self, upload: Uuid) -> StoreResult<Vec<Uuid>> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :ru)")
            .expression_attribute_values(":pk", s(upload_pk(upload)))
            .expression_attribute_values(":ru", s("RU#"))
            .consistent_read(true)
            .limit(1000)
            .send()
            .await
            .map_err(|e| classify(e, StoreError::Conflict))?;
        Ok(out
            .items()
            .iter()
            .filter_map(|i| get_s(i, "sk").ok()?.strip_prefix("RU#").map(String::from))
            .filter_map(|d| Uuid::parse_str(&d).ok())
            .collect())
    }
}

#[async_trait]
impl DocumentStore for DynamoStore {
    async fn add_document(&self, d: &StoredDocument) -> StoreResult<()> {
        let mut item: HashMap<String, AttributeValue> = Item::new();
        item.insert("pk".into(), s(format!("DOC#{}", d.id)));
        item.insert("sk".into(), s("DOC"));
        item.insert("kind".into(), s("document"));
        item.insert("body".into(), s(to_json(d)?));
        item.insert("gsi1pk".into(), s(format!("DOCS#{}", d.owner)));
        item.insert(
            "gsi1sk".into(),
            s(format!(
                "{:020}#{}",
                d.added_at.as_microsecond().max(0),
                d.id
            )),
        );
        match self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| classify(e, StoreError::Duplicate))
        {
            // Added before: the first stands.
            Ok(_) | Err(StoreError::Duplicate) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn document(&self, id: Uuid) -> StoreResult<Option<StoredDocument>> {
        self.get_item(format!("DOC#{id}"), "DOC")
            .await?
            .map(|item| body_of(&item))
            .transpose()
    }

    async fn documents(
        &self,
        owner: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<StoredDocument>> {
        self.query_page(
            IndexQuery {
                index: "gsi1",
                pk_name: "gsi1pk",
                sk_name: "gsi1sk",
                pk_value: format!("DOCS#{owner}"),
                forward: false,
                extra_filter: None,
            },
            page,
        )
        .await
    }
}
