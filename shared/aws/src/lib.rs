//! The AWS backend: every submission port on one DynamoDB table, and the EventBridge
//! publisher of the outbox relay.
//!
//! Single-table layout (all keys are strings):
//!
//! | item | pk | sk | index keys |
//! |---|---|---|---|
//! | procedure | `CATALOGUE` | `<code>` | |
//! | daily sequence | `SEQ#<agency>#<day>` | `SEQ` | |
//! | dossier | `D#<id>` | `D` | gsi1 `APP#<subject>` / `<submitted µs>#<id>`; gsi2 `AG#<agency>` / `<queue key>#<id>`; gsi3 `AGS#<agency>#<status>` / same |
//! | dossier code (uniqueness) | `CODE#<code>` | `CODE` | |
//! | history entry | `D#<id>` | `H#<seq, 10 digits>` | |
//! | outbox event | `EV#<event id>` | `EV` | gsi4 `OUTBOX` / `<occurred µs>#<id>` while unpublished (sparse) |
//! | idempotency record | `IDEM#<scoped key>` | `IDEM` | TTL attribute `ttl` |
//!
//! A dossier change is one `TransactWriteItems`: the dossier (conditioned on its version),
//! its history entry and its outbox event. The table's stream carries the events to the
//! relay.

pub mod dead_letters;
pub mod events;
pub mod http1;
pub mod identity;
pub mod kms;
mod notifications;
mod payments;

mod reports;
mod revoked;
#[cfg(feature = "s3")]
pub mod s3;
pub mod secrets;
pub mod ses;
pub mod sms;
mod uploads;

pub use aws_sdk_eventbridge;
pub use aws_sdk_kms;
pub use aws_sdk_secretsmanager;
pub use aws_sdk_ses;
pub use aws_sdk_sns;
pub use aws_sdk_sqs;

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, Put, ReturnValue, ScalarAttributeType,
    StreamSpecification, StreamViewType, TimeToLiveSpecification, TransactWriteItem, Update,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use jiff::civil::Date;
use motcua_domain::calendar::local_date;
use motcua_domain::{
    AgencyCode, Dossier, DossierCode, EventEnvelope, HistoryEntry, Procedure, Status,
};
use motcua_ports::{
    Catalogue, Citation, DossierStore, IdempotencyBegin, IdempotencyStore, Outbox, Page,
    PageRequest, Sequences, StoreError, StoreResult, StoredResponse, SubmissionPorts,
};
use uuid::Uuid;

pub use aws_sdk_dynamodb;

/// A request still marked in progress after this long is presumed crashed and may be redone.
const IN_PROGRESS_LEASE_SECS: i64 = 60;
/// The longest caller-given part of a key we send to DynamoDB (keys hold 1,024 bytes at
/// most for a sort key and 2,048 for a partition key, prefixes included).
const MAX_KEY_PART_BYTES: usize = 512;
/// Outbox events are kept this long after their publication (then DynamoDB's TTL removes them).
const EVENT_RETENTION_SECS: i64 = 14 * 86_400;

type Item = HashMap<String, AttributeValue>;

/// Loads the SDK configuration from the standard environment (`AWS_REGION`,
/// `AWS_ENDPOINT_URL`, credentials chain), with the SDK's standard retry mode.
/// Logging of a Lambda function: JSON lines without timestamps (CloudWatch adds them),
/// filtered by `RUST_LOG` (`info`, `warn,motcua_aws=debug`: a level, or targets with
/// levels; `info` when unset or unreadable). The filter is `tracing_subscriber`'s
/// `Targets`, not `EnvFilter`, whose regular expressions would add ~250 KB to every
/// function for span-field matching nobody uses on Lambda.
pub fn init_lambda_tracing() {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = lambda_log_filter(std::env::var("RUST_LOG").ok().as_deref());
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .without_time()
                .with_filter(filter),
        )
        .init();
}

fn lambda_log_filter(raw: Option<&str>) -> tracing_subscriber::filter::Targets {
    raw.and_then(|r| r.parse().ok())
        .unwrap_or_else(|| "info".parse().expect("a level"))
}

/// The SDK's configuration loader every client here starts from: the latest behaviour
/// version and an HTTPS client on rustls with ring, the one crypto library the functions
/// link (the SDK's default client would bring aws-lc as a second one).
pub fn loader() -> aws_config::ConfigLoader {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https_client())
}

/// The HTTPS client of every SDK client here ([`http1::Http1Client`]): HTTP/1.1 over
/// rustls on ring; its TLS configuration is built at the first request, once per process.
fn https_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    aws_smithy_runtime_api::client::http::SharedHttpClient::new(http1::Http1Client::default())
}

/// The SDK configuration of a function on Lambda, from what Lambda gives every function:
/// the region (`AWS_REGION`) and the execution role's credentials in the environment;
/// `AWS_ENDPOINT_URL` when set (LocalStack); four attempts. Not the default provider
/// chain (profile files, SSO, IMDS, ECS, STS web identity): a function never uses them,
/// resolving them cost start-up time, and their code was a tenth of each package.
/// Built once per process: every client shares one HTTPS client (one connection pool,
/// one certificate store).
pub async fn sdk_config() -> aws_config::SdkConfig {
    static CONFIG: std::sync::OnceLock<aws_config::SdkConfig> = std::sync::OnceLock::new();
    CONFIG.get_or_init(lambda_config_from_env).clone()
}

/// The DynamoDB client of [`sdk_config`], built once per process: creating a client
/// builds its TLS configuration from the system's root certificates, which is a good
/// part of a function's start.
pub async fn dynamodb_client() -> Client {
    static CLIENT: tokio::sync::OnceCell<Client> = tokio::sync::OnceCell::const_new();
    CLIENT
        .get_or_init(|| async { Client::new(&sdk_config().await) })
        .await
        .clone()
}

fn lambda_config_from_env() -> aws_config::SdkConfig {
    use aws_sdk_dynamodb::config::{Region, SharedCredentialsProvider};
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut b = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .http_client(https_client())
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(4))
        // A call that hangs (a connection that died while the sandbox was frozen) ends as
        // a 503 instead of running into the function's own timeout (10 s for the HTTP
        // functions): 3 s per attempt, 8 s for a call with its retries; 1 s to connect
        // (DNS, TCP and TLS), so a connect that stalls is retried within the attempt.
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_secs(1))
                .operation_attempt_timeout(std::time::Duration::from_secs(3))
                .operation_timeout(std::time::Duration::from_secs(8))
                .build(),
        )
        .credentials_provider(SharedCredentialsProvider::new(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        ));
    if let Some(region) = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")) {
        b = b.region(Region::new(region));
    }
    if let Some(url) = var("AWS_ENDPOINT_URL") {
        b = b.endpoint_url(url);
    }
    b.build()
}

/// The SDK configuration of a program on a workstation (the local runner against real
/// AWS): the default provider chain (environment, profiles, SSO, instance roles).
pub async fn default_chain_config() -> aws_config::SdkConfig {
    loader()
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(4))
        .load()
        .await
}

/// All submission ports on one DynamoDB table.
#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn get_s<'a>(item: &'a Item, name: &str) -> StoreResult<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(StoreError::Backend(format!(
            "item lacks string attribute {name}"
        ))),
    }
}

fn get_n(item: &Item, name: &str) -> StoreResult<i64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| StoreError::Backend(format!("attribute {name} is not an integer"))),
        _ => Err(StoreError::Backend(format!(
            "item lacks number attribute {name}"
        ))),
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> StoreResult<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Backend(e.to_string()))
}

fn body_of<T: serde::de::DeserializeOwned>(item: &Item) -> StoreResult<T> {
    from_json(get_s(item, "body")?)
}

/// Error codes DynamoDB uses for temporary trouble.
fn is_transient(code: &str) -> bool {
    matches!(
        code,
        "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "InternalServerError"
            | "ServiceUnavailable"
            | "LimitExceededException"
    )
}

/// Classifies an SDK error: conditional failures become `on_condition`, throttling and
/// transport trouble `Unavailable` (after the SDK's own retries), anything else a bug.
fn classify<E, R>(err: SdkError<E, R>, on_condition: StoreError) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable(format!("dynamodb: {err}"))
        }
        _ => {
            let code = err.code().unwrap_or("");
            if code == "ConditionalCheckFailedException" {
                on_condition
            } else if code == "TransactionCanceledException" {
                // The message lists the reasons; a conditional failure or a conflicting
                // transaction means someone else got there first.
                let msg = err.message().unwrap_or("");
                if msg.contains("ConditionalCheckFailed") {
                    on_condition
                } else if msg.contains("TransactionConflict") {
                    StoreError::Conflict
                } else if msg.contains("Throttling") || msg.contains("ProvisionedThroughput") {
                    StoreError::Unavailable("dynamodb: throttled".into())
                } else {
                    StoreError::Backend(format!("dynamodb transaction cancelled: {msg}"))
                }
            } else if is_transient(code) {
                StoreError::Unavailable(format!("dynamodb: {code}"))
            } else {
                StoreError::Backend(format!(
                    "dynamodb {code}: {}",
                    err.message().unwrap_or("no message")
                ))
            }
        }
    }
}

fn build<T, E: std::fmt::Display>(r: Result<T, E>) -> StoreResult<T> {
    r.map_err(|e| StoreError::Backend(format!("building request: {e}")))
}

fn queue_key(d: &Dossier) -> String {
    let day = d.due_date.unwrap_or_else(|| local_date(d.submitted_at));
    format!("{day}|{:020}#{}", d.submitted_at.as_microsecond(), d.id)
}

fn dossier_item(d: &Dossier) -> StoreResult<Item> {
    let id = d.id.to_string();
    let mut item = Item::new();
    item.insert("pk".into(), s(format!("D#{id}")));
    item.insert("sk".into(), s("D"));
    item.insert("kind".into(), s("dossier"));
    item.insert("code".into(), s(d.code.as_str()));
    item.insert("version".into(), n(d.version));
    item.insert("status".into(), n(d.status.code()));
    item.insert("body".into(), s(to_json(d)?));
    item.insert("gsi1pk".into(), s(format!("APP#{}", d.applicant.subject)));
    item.insert(
        "gsi1sk".into(),
        s(format!("{:020}#{id}", d.submitted_at.as_microsecond())),
    );
    item.insert("gsi2pk".into(), s(format!("AG#{}", d.agency.as_str())));
    item.insert("gsi2sk".into(), s(queue_key(d)));
    item.insert(
        "gsi3pk".into(),
        s(format!("AGS#{}#{}", d.agency.as_str(), d.status.code())),
    );
    item.insert("gsi3sk".into(), s(queue_key(d)));
    Ok(item)
}

fn history_item(d: &Dossier, h: &HistoryEntry) -> StoreResult<Item> {
    let mut item = Item::new();
    item.insert("pk".into(), s(format!("D#{}", d.id)));
    item.insert("sk".into(), s(format!("H#{:010}", h.seq)));
    item.insert("kind".into(), s("history"));
    item.insert("body".into(), s(to_json(h)?));
    Ok(item)
}

fn event_item(e: &EventEnvelope) -> StoreResult<Item> {
    let mut item = Item::new();
    item.insert("pk".into(), s(format!("EV#{}", e.id)));
    item.insert("sk".into(), s("EV"));
    item.insert("kind".into(), s("event"));
    item.insert("body".into(), s(to_json(e)?));
    item.insert("gsi4pk".into(), s("OUTBOX"));
    item.insert(
        "gsi4sk".into(),
        s(format!("{:020}#{}", e.occurred_at.as_microsecond(), e.id)),
    );
    // No TTL yet: an event unpublished for weeks (a long bus outage) must still be there
    // for the sweeper; `mark_published` sets the TTL.
    Ok(item)
}

fn put(table: &str, item: Item, condition: Option<&str>) -> StoreResult<TransactWriteItem> {
    let p = build(
        Put::builder()
            .table_name(table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(String::from))
            .build(),
    )?;
    Ok(TransactWriteItem::builder().put(p).build())
}

/// Which index a paged query reads, for cursor checks.
struct IndexQuery<'a> {
    index: &'a str,
    pk_name: &'a str,
    sk_name: &'a str,
    pk_value: String,
    forward: bool,
    extra_filter: Option<(&'a str, AttributeValue)>,
}

fn encode_cursor(key: &Item) -> Option<String> {
    let mut m = serde_json::Map::new();
    for (k, v) in key {
        if let AttributeValue::S(sv) = v {
            m.insert(k.clone(), serde_json::Value::String(sv.clone()));
        } else {
            return None;
        }
    }
    Some(URL_SAFE_NO_PAD.encode(serde_json::Value::Object(m).to_string()))
}

fn decode_cursor(c: &str, q: &IndexQuery<'_>) -> StoreResult<Item> {
    let raw = URL_SAFE_NO_PAD
        .decode(c)
        .map_err(|_| StoreError::BadCursor)?;
    let v: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&raw).map_err(|_| StoreError::BadCursor)?;
    let allowed = ["pk", "sk", q.pk_name, q.sk_name];
    let mut item = Item::new();
    for (k, val) in v {
        let sv = val.as_str().ok_or(StoreError::BadCursor)?;
        if !allowed.contains(&k.as_str()) {
            return Err(StoreError::BadCursor);
        }
        item.insert(k, s(sv));
    }
    // The cursor must belong to this very query, or DynamoDB would reject it (or worse).
    match item.get(q.pk_name) {
        Some(AttributeValue::S(pk)) if *pk == q.pk_value => {}
        _ => return Err(StoreError::BadCursor),
    }
    if item.len() != allowed.len() {
        return Err(StoreError::BadCursor);
    }
    Ok(item)
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> DynamoStore {
        DynamoStore {
            client,
            table: table.into(),
        }
    }

    /// From the environment's SDK configuration.
    /// The store of `table` with the process's one DynamoDB client ([`dynamodb_client`]).
    pub async fn from_env(table: impl Into<String>) -> DynamoStore {
        DynamoStore::new(dynamodb_client().await, table)
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The notifications ports: deliveries and the send rate, both on this table.
    pub fn notification_ports(&self) -> motcua_ports::notifications::NotificationPorts {
        motcua_ports::notifications::NotificationPorts {
            deliveries: std::sync::Arc::new(self.clone()),
            rate: std::sync::Arc::new(self.clone()),
        }
    }

    /// The payments ports: records on this table, and the given providers.
    pub fn payment_ports(
        &self,
        providers: motcua_ports::payments::Providers,
    ) -> motcua_ports::payments::PaymentPorts {
        motcua_ports::payments::PaymentPorts {
            payments: std::sync::Arc::new(self.clone()),
            providers,
        }
    }

    pub fn submission_ports(&self) -> SubmissionPorts {
        use std::sync::Arc;
        SubmissionPorts {
            catalogue: Arc::new(self.clone()),
            sequences: Arc::new(self.clone()),
            dossiers: Arc::new(self.clone()),
            outbox: Arc::new(self.clone()),
            idempotency: Arc::new(self.clone()),
            attempts: Arc::new(self.clone()),
            revoked: Arc::new(self.clone()),
            uploads: Arc::new(self.clone()),
            documents: Arc::new(self.clone()),
        }
    }

    /// Creates the table (keys, four GSIs, stream, TTL) unless it exists; waits until active.
    /// The SAM template declares the same table for AWS.
    pub async fn ensure_table(&self) -> StoreResult<()> {
        match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if e.code() == Some("ResourceNotFoundException") => {}
            Err(e) => return Err(classify(e, StoreError::Conflict)),
        }
        let attr = |name: &str| {
            build(
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(ScalarAttributeType::S)
                    .build(),
            )
        };
        let key = |name: &str, kt: KeyType| {
            build(
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(kt)
                    .build(),
            )
        };
        let mut req = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .stream_specification(build(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewImage)
                    .build(),
            )?);
        for name in [
            "pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "gsi3pk", "gsi3sk", "gsi4pk",
            "gsi4sk",
        ] {
            req = req.attribute_definitions(attr(name)?);
        }
        for i in 1..=4 {
            req = req.global_secondary_indexes(build(
                GlobalSecondaryIndex::builder()
                    .index_name(format!("gsi{i}"))
                    .key_schema(key(&format!("gsi{i}pk"), KeyType::Hash)?)
                    .key_schema(key(&format!("gsi{i}sk"), KeyType::Range)?)
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build(),
            )?);
        }
        match req.send().await {
            Ok(_) => {}
            Err(e) if e.code() == Some("ResourceInUseException") => {}
            Err(e) => return Err(classify(e, StoreError::Conflict)),
        }
        for _ in 0..120 {
            let d = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| classify(e, StoreError::Conflict))?;
            let active = d
                .table()
                .and_then(|t| t.table_status())
                .is_some_and(|s| s.as_str() == "ACTIVE");
            if active {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        let ttl = self
            .client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(build(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("ttl")
                    .build(),
            )?)
            .send()
            .await;
        if let Err(e) = ttl
            && e.code() != Some("ValidationException")
        {
            return Err(classify(e, StoreError::Conflict));
        }
        Ok(())
    }

    /// Deletes the table (tests).
    pub async fn delete_table(&self) -> StoreResult<()> {
        self.client
            .delete_table()
            .table_name(&self.table)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(e, StoreError::Conflict))
    }

    pub(crate) async fn get_item(&self, pk: String, sk: &str) -> StoreResult<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(e, StoreError::Conflict))?;
        Ok(out.item)
    }

    async fn query_page<T: serde::de::DeserializeOwned>(
        &self,
        q: IndexQuery<'_>,
        page: &PageRequest,
    ) -> StoreResult<Page<T>> {
        let limit = page.limit.clamp(1, PageRequest::MAX_LIMIT);
        let start = match &page.cursor {
            Some(c) => Some(decode_cursor(c, &q)?),
            None => None,
        };
        let mut req = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(q.index)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", q.pk_name)
            .expression_attribute_values(":pk", s(q.pk_value.clone()))
            .scan_index_forward(q.forward)
            .limit(limit as i32)
            .set_exclusive_start_key(start);
        if let Some((name, value)) = &q.extra_filter {
            req = req
                .filter_expression("#f = :f")
                .expression_attribute_names("#f", *name)
                .expression_attribute_values(":f", value.clone());
        }
        let out = req.send().await.map_err(|e| {
            // A cursor DynamoDB refuses is still the caller's mistake.
            if e.code() == Some("ValidationException") && page.cursor.is_some() {
                StoreError::BadCursor
            } else {
                classify(e, StoreError::Conflict)
            }
        })?;
        let items = out
            .items()
            .iter()
            .map(body_of::<T>)
            .collect::<StoreResult<Vec<_>>>()?;
        let next_cursor = out.last_evaluated_key().and_then(encode_cursor);
        Ok(Page { items, next_cursor })
    }
}

#[async_trait]
impl Catalogue for DynamoStore {
    async fn procedures(&self) -> StoreResult<Vec<Procedure>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s("CATALOGUE"))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify(e, StoreError::Conflict))?;
            for item in page.items() {
                out.push(body_of(item)?);
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn procedure(&self, code: &str) -> StoreResult<Option<Procedure>> {
        // A sort key holds at most 1,024 bytes: a longer code names no procedure (asking
        // DynamoDB would be a validation error, not "not found").
        if code.is_empty() || code.len() > MAX_KEY_PART_BYTES {
            return Ok(None);
        }
        match self.get_item("CATALOGUE".into(), code).await? {
            Some(item) => Ok(Some(body_of(&item)?)),
            None => Ok(None),
        }
    }

    async fn put_procedure(&self, p: &Procedure) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s("CATALOGUE"))
            .item("sk", s(p.code.clone()))
            .item("kind", s("procedure"))
            .item("body", s(to_json(p)?))
            .send()
            .await
            .map_err(|e| classify(e, StoreError::Conflict))?;
        Ok(())
    }
}

#[async_trait]
impl Sequences for DynamoStore {
    async fn next(&self, agency: &AgencyCode, day: Date) -> StoreResult<u32> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("SEQ#{}#{day}", agency.as_str())))
            .key("sk", s("SEQ"))
            .update_expression("ADD #v :one SET #ttl = if_not_exists(#ttl, :ttl)")
            .expression_attribute_names("#v", "value")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":one", n(1))
            // Counters are needed for the day only; keep them a month.
            .expression_attribute_values(":ttl", n(Timestamp::now().as_second() + 31 * 86_400))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| classify(e, StoreError::Conflict))?;
        let attrs = out.attributes.unwrap_or_default();
        let v = get_n(&attrs, "value")?;
        u32::try_from(v).map_err(|e| StoreError::Backend(e.to_string()))
    }
}

impl DynamoStore {
    /// The dossier's replacement, conditioned on its stored version being the one before.
    pub(crate) fn dossier_update(&self, d: &Dossier) -> StoreResult<TransactWriteItem> {
        let item = dossier_item(d)?;
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        let mut sets = Vec::new();
        for (k, v) in item {
            if k == "pk" || k == "sk" {
                continue;
            }
            let placeholder = format!("#a{}", sets.len());
            let value = format!(":a{}", sets.len());
            sets.push(format!("{placeholder} = {value}"));
            names.insert(placeholder, k);
            values.insert(value, v);
        }
        names.insert("#version".into(), "version".into());
        values.insert(":prev".into(), n(d.version - 1));
        let update = build(
            Update::builder()
                .table_name(&self.table)
                .key("pk", s(format!("D#{}", d.id)))
                .key("sk", s("D"))
                .update_expression(format!("SET {}", sets.join(", ")))
                .condition_expression("attribute_exists(pk) AND #version = :prev")
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .build(),
        )?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

#[async_trait]
impl DossierStore for DynamoStore {
    async fn create_citing(
        &self,
        d: &Dossier,
        h: &HistoryEntry,
        e: &EventEnvelope,
        cites: &[Citation],
    ) -> StoreResult<()> {
        let mut code = Item::new();
        code.insert("pk".into(), s(format!("CODE#{}", d.code.as_str())));
        code.insert("sk".into(), s("CODE"));
        code.insert("kind".into(), s("code"));
        code.insert("dossier_id".into(), s(d.id.to_string()));
        let not_exists = Some("attribute_not_exists(pk)");
        let mut items = vec![
            put(&self.table, dossier_item(d)?, not_exists)?,
            put(&self.table, code, not_exists)?,
            put(&self.table, history_item(d, h)?, not_exists)?,
            put(&self.table, event_item(e)?, not_exists)?,
        ];
        for c in cites {
            items.push(uploads::claim(&self.table, d.id, c)?);
        }
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(|err| {
                // Items 0–3 are the dossier's own (a taken id or code: `Duplicate`); the
                // rest claim cited uploads (one not claimable: `Conflict`).
                let claim_failed = err
                    .as_service_error()
                    .and_then(|e| match e {
                        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c) => Some(c),
                        _ => None,
                    })
                    .is_some_and(|c| {
                        c.cancellation_reasons().iter().skip(4).any(|r| {
                            r.code() == Some("ConditionalCheckFailed")
                        }) && !c.cancellation_reasons().iter().take(4).any(|r| {
                            r.code() == Some("ConditionalCheckFailed")
                        })
                    });
                classify(
                    err,
                    if claim_failed {
                        StoreError::Conflict
                    } else {
                        StoreError::Duplicate
                    },
                )
            })?;
        Ok(())
    }

    async fn refile(&self, d: &Dossier) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(dossier_item(d)?))
            .condition_expression("version = :v")
            .expression_attribute_values(":v", n(d.version))
            .send()
            .await
            .map_err(|e| classify(e, StoreError::Conflict))?;
        Ok(())
    }

    async fn get(&self, id: Uuid) -> StoreResult<Option<Dossier>> {
        match self.get_item(format!("D#{id}"), "D").await? {
            Some(item) => Ok(Some(body_of(&item)?)),
            None => Ok(None),
        }
    }

    async fn get_by_code(&self, code: &DossierCode) -> StoreResult<Option<Dossier>> {
        let Some(item) = self
            .get_item(format!("CODE#{}", code.as_str()), "CODE")
            .await?
        else {
            return Ok(None);
        };
        let id = Uuid::parse_str(get_s(&item, "dossier_id")?)
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        self.get(id).await
    }

    async fn history(&self, id: Uuid) -> StoreResult<Vec<HistoryEntry>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :h)")
                .expression_attribute_values(":pk", s(format!("D#{id}")))
                .expression_attribute_values(":h", s("H#"))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify(e, StoreError::Conflict))?;
            for item in page.items() {
                out.push(body_of(item)?);
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn list_by_applicant(
        &self,
        subject: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<Dossier>> {
        self.query_page(
            IndexQuery {
                index: "gsi1",
                pk_name: "gsi1pk",
                sk_name: "gsi1sk",
                pk_value: format!("APP#{subject}"),
                forward: false,
                extra_filter: None,
            },
            page,
        )
        .await
    }

    async fn agency_queue(
        &self,
        agency: &AgencyCode,
        status: Option<Status>,
        page: &PageRequest,
    ) -> StoreResult<Page<Dossier>> {
        let q = match status {
            Some(st) => IndexQuery {
                index: "gsi3",
                pk_name: "gsi3pk",
                sk_name: "gsi3sk",
                pk_value: format!("AGS#{}#{}", agency.as_str(), st.code()),
                forward: true,
                extra_filter: None,
            },
            None => IndexQuery {
                index: "gsi2",
                pk_name: "gsi2pk",
                sk_name: "gsi2sk",
                pk_value: format!("AG#{}", agency.as_str()),
                forward: true,
                extra_filter: None,
            },
        };
        self.query_page(q, page).await
    }

    async fn transition_citing(
        &self,
        d: &Dossier,
        h: &HistoryEntry,
        e: &EventEnvelope,
        cites: &[Citation],
    ) -> StoreResult<()> {
        let update = self.dossier_update(d)?;
        let not_exists = Some("attribute_not_exists(pk)");
        let mut items = vec![
            update,
            put(&self.table, history_item(d, h)?, not_exists)?,
            put(&self.table, event_item(e)?, not_exists)?,
        ];
        for c in cites {
            items.push(uploads::claim(&self.table, d.id, c)?);
        }
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(|err| classify(err, StoreError::Conflict))?;
        Ok(())
    }
}

#[async_trait]
impl Outbox for DynamoStore {
    async fn pending(&self, limit: u32) -> StoreResult<Vec<EventEnvelope>> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("gsi4")
            .key_condition_expression("gsi4pk = :p")
            .expression_attribute_values(":p", s("OUTBOX"))
            .scan_index_forward(true)
            .limit(limit.max(1) as i32)
            .send()
            .await
            .map_err(|e| classify(e, StoreError::Conflict))?;
        out.items().iter().map(body_of).collect()
    }

    async fn pending_after(
        &self,
        limit: u32,
        after: &EventEnvelope,
    ) -> StoreResult<Vec<EventEnvelope>> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("gsi4")
            .key_condition_expression("gsi4pk = :p AND gsi4sk > :after")
            .expression_attribute_values(":p", s("OUTBOX"))
            .expression_attribute_values(
                ":after",
                s(format!(
                    "{:020}#{}",
                    after.occurred_at.as_microsecond(),
                    after.id
                )),
            )
            .scan_index_forward(true)
            .limit(limit.max(1) as i32)
            .send()
            .await
            .map_err(|e| classify(e, StoreError::Conflict))?;
        out.items().iter().map(body_of).collect()
    }

    async fn mark_published(&self, ids: &[Uuid]) -> StoreResult<()> {
        // Kept a while after publication, for replays and audits; then TTL removes it.
        let expires = Timestamp::now().as_second() + EVENT_RETENTION_SECS;
        for id in ids {
            let r = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(format!("EV#{id}")))
                .key("sk", s("EV"))
                .update_expression("REMOVE gsi4pk, gsi4sk SET published = :t, #ttl = :ttl")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":t", AttributeValue::Bool(true))
                .expression_attribute_values(":ttl", n(expires))
                .send()
                .await;
            match r {
                Ok(_) => {}
                Err(e) if e.code() == Some("ConditionalCheckFailedException") => {}
                Err(e) => return Err(classify(e, StoreError::Conflict)),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl IdempotencyStore for DynamoStore {
    async fn begin(
        &self,
        key: &str,
        fingerprint: &str,
        now: Timestamp,
        ttl_secs: u64,
    ) -> StoreResult<IdempotencyBegin> {
        let now_s = now.as_second();
        let pk = format!("IDEM#{key}");
        for _ in 0..3 {
            if let Some(item) = self.get_item(pk.clone(), "IDEM").await? {
                let expires = get_n(&item, "expires_at")?;
                if expires > now_s {
                    if get_s(&item, "fingerprint")? != fingerprint {
                        return Ok(IdempotencyBegin::Mismatch);
                    }
                    let done = matches!(item.get("done"), Some(AttributeValue::Bool(true)));
                    if done {
                        let body = match item.get("response") {
                            Some(AttributeValue::B(b)) => b.clone().into_inner(),
                            _ => Vec::new(),
                        };
                        return Ok(IdempotencyBegin::Replay(StoredResponse {
                            status: u16::try_from(get_n(&item, "status")?).unwrap_or(200),
                            content_type: get_s(&item, "content_type")?.to_owned(),
                            body,
                            headers: StoredResponse::parse_headers(
                                item.get("headers")
                                    .and_then(|v| v.as_s().ok())
                                    .map_or("", |v| v.as_str()),
                            ),
                        }));
                    }
                    if now_s - get_n(&item, "started_at")? < IN_PROGRESS_LEASE_SECS {
                        return Ok(IdempotencyBegin::InProgress);
                    }
                }
            }
            let r = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("pk", s(pk.clone()))
                .item("sk", s("IDEM"))
                .item("kind", s("idempotency"))
                .item("fingerprint", s(fingerprint))
                .item("done", AttributeValue::Bool(false))
                .item("started_at", n(now_s))
                .item("expires_at", n(now_s.saturating_add(ttl_secs as i64)))
                .item("ttl", n(now_s.saturating_add(ttl_secs as i64)))
                .condition_expression(
                    "attribute_not_exists(pk) OR expires_at <= :now OR (done = :f AND started_at < :lease)",
                )
                .expression_attribute_values(":now", n(now_s))
                .expression_attribute_values(":f", AttributeValue::Bool(false))
                .expression_attribute_values(":lease", n(now_s - IN_PROGRESS_LEASE_SECS))
                .send()
                .await;
            match r {
                Ok(_) => return Ok(IdempotencyBegin::Started),
                Err(e) if e.code() == Some("ConditionalCheckFailedException") => continue,
                Err(e) => return Err(classify(e, StoreError::Conflict)),
            }
        }
        Ok(IdempotencyBegin::InProgress)
    }

    async fn complete(&self, key: &str, r: &StoredResponse) -> StoreResult<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("IDEM#{key}")))
            .key("sk", s("IDEM"))
            .update_expression("SET done = :t, #s = :s, content_type = :ct, #r = :r, headers = :h")
            .expression_attribute_names("#s", "status")
            .expression_attribute_names("#r", "response")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .expression_attribute_values(":s", n(r.status))
            .expression_attribute_values(":ct", s(r.content_type.clone()))
            .expression_attribute_values(":h", s(r.headers_text()))
            .expression_attribute_values(
                ":r",
                AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(r.body.clone())),
            )
            .send()
            .await
            .map_err(|e| classify(e, StoreError::Conflict))?;
        Ok(())
    }

    async fn release(&self, key: &str) -> StoreResult<()> {
        let r = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("IDEM#{key}")))
            .key("sk", s("IDEM"))
            .condition_expression("done = :f")
            .expression_attribute_values(":f", AttributeValue::Bool(false))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(()),
            Err(e) => Err(classify(e, StoreError::Conflict)),
        }
    }
}

/// Helpers for running against LocalStack (tests, the local runner).
pub mod localstack {
    use std::time::Duration;

    /// The LocalStack endpoint: `AWS_ENDPOINT_URL` or `http://127.0.0.1:4566`.
    pub fn endpoint() -> String {
        std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:4566".into())
    }

    /// SDK configuration for LocalStack: its endpoint, `AWS_REGION` or `us-east-1`, and the
    /// dummy credentials LocalStack accepts unless real ones are set.
    pub async fn config() -> aws_config::SdkConfig {
        let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
        let mut loader = crate::loader()
            .endpoint_url(endpoint())
            .region(aws_config::Region::new(region))
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(4));
        if std::env::var("AWS_ACCESS_KEY_ID").is_err() {
            loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "test",
                "test",
                None,
                None,
                "localstack",
            ));
        }
        loader.load().await
    }

    /// The `host:port` of an endpoint URL.
    fn host_port(endpoint: &str) -> &str {
        endpoint
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .trim_end_matches('/')
    }

    /// The LocalStack endpoint's `host:port`, for a proxy put in front of it.
    pub fn address() -> String {
        host_port(&endpoint()).to_owned()
    }

    fn answers(endpoint: &str) -> bool {
        let addr = host_port(endpoint);
        use std::net::ToSocketAddrs;
        addr.to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .is_some_and(|a| {
                std::net::TcpStream::connect_timeout(&a, Duration::from_millis(500)).is_ok()
            })
    }

    /// Makes sure LocalStack answers, starting it with the project's script
    /// (`infra/localstack/start.sh`, which installs it on first use) when it does not.
    pub fn ensure_running() -> Result<(), String> {
        let ep = endpoint();
        if answers(&ep) {
            return Ok(());
        }
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../infra/localstack/start.sh"
        );
        let status = std::process::Command::new("bash")
            .arg(script)
            .status()
            .map_err(|e| format!("running {script}: {e}"))?;
        if !status.success() || !answers(&ep) {
            return Err(format!(
                "LocalStack is not reachable at {ep} and {script} failed"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod log_filter_tests {
    use tracing::Level;

    #[test]
    fn the_lambda_configuration_bounds_every_call() {
        use std::time::Duration;
        let conf = super::lambda_config_from_env();
        let t = conf.timeout_config().expect("timeouts");
        assert_eq!(t.operation_attempt_timeout(), Some(Duration::from_secs(3)));
        assert_eq!(t.operation_timeout(), Some(Duration::from_secs(8)));
        assert_eq!(t.connect_timeout(), Some(Duration::from_secs(1)));
    }

    #[test]
    fn the_lambda_log_filter_reads_rust_log_and_defaults_to_info() {
        let f = super::lambda_log_filter(None);
        assert!(f.would_enable("motcua_aws", &Level::INFO));
        assert!(!f.would_enable("motcua_aws", &Level::DEBUG));
        let f = super::lambda_log_filter(Some("warn,motcua_aws=debug"));
        assert!(f.would_enable("motcua_aws", &Level::DEBUG));
        assert!(!f.would_enable("hyper", &Level::INFO));
        assert!(f.would_enable("hyper", &Level::WARN));
        let f = super::lambda_log_filter(Some("motcua_aws=loud"));
        assert!(f.would_enable("motcua_aws", &Level::INFO));
        assert!(!f.would_enable("motcua_aws", &Level::DEBUG));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn fresh() -> SubmissionPorts {
        localstack::ensure_running().expect("LocalStack");
        let conf = localstack::config().await;
        let store = DynamoStore::new(
            Client::new(&conf),
            format!("motcua-contract-{}", Uuid::now_v7().simple()),
        );
        store.ensure_table().await.expect("table created");
        store.submission_ports()
    }

    motcua_ports::contract_tests!(fresh());

    async fn fresh_identity() -> motcua_ports::identity::IdentityPorts {
        localstack::ensure_running().expect("LocalStack");
        let conf = localstack::config().await;
        let store = DynamoStore::new(
            Client::new(&conf),
            format!("motcua-identity-{}", Uuid::now_v7().simple()),
        );
        store.ensure_table().await.expect("table created");
        store.identity_ports()
    }

    motcua_ports::identity_contract_tests!(fresh_identity());

    async fn fresh_uploads() -> (SubmissionPorts, motcua_ports::uploads_contract::Records) {
        localstack::ensure_running().expect("LocalStack");
        let conf = localstack::config().await;
        let store = DynamoStore::new(
            Client::new(&conf),
            format!("motcua-uploads-{}", Uuid::now_v7().simple()),
        );
        store.ensure_table().await.expect("table created");
        let records = motcua_ports::uploads_contract::Records {
            uploads: std::sync::Arc::new(store.clone()),
            documents: std::sync::Arc::new(store.clone()),
        };
        (store.submission_ports(), records)
    }

    motcua_ports::uploads_contract_tests!(fresh_uploads());

    async fn fresh_notifications() -> motcua_ports::notifications::NotificationPorts {
        crate::localstack::ensure_running().expect("LocalStack");
        let conf = crate::localstack::config().await;
        let store = DynamoStore::new(
            Client::new(&conf),
            format!("motcua-notify-{}", Uuid::now_v7().simple()),
        );
        store.ensure_table().await.expect("table created");
        store.notification_ports()
    }

    motcua_ports::notifications_contract_tests!(fresh_notifications());

    async fn fresh_payments() -> (SubmissionPorts, motcua_ports::payments::PaymentPorts) {
        crate::localstack::ensure_running().expect("LocalStack");
        let conf = crate::localstack::config().await;
        let store = DynamoStore::new(
            Client::new(&conf),
            format!("motcua-pay-{}", Uuid::now_v7().simple()),
        );
        store.ensure_table().await.expect("table created");
        (
            store.submission_ports(),
            store.payment_ports(Default::default()),
        )
    }

    motcua_ports::payments_contract_tests!(fresh_payments());

    async fn fresh_kpi() -> std::sync::Arc<dyn motcua_ports::reports::KpiStore> {
        crate::localstack::ensure_running().expect("LocalStack");
        let conf = crate::localstack::config().await;
        let store = DynamoStore::new(
            Client::new(&conf),
            format!("motcua-kpi-{}", Uuid::now_v7().simple()),
        );
        store.ensure_table().await.expect("table created");
        std::sync::Arc::new(store)
    }

    motcua_ports::reports_contract_tests!(fresh_kpi());

    #[tokio::test]
    async fn an_unreachable_dynamodb_is_unavailable_not_a_bug() {
        // Nothing listens on port 9 of loopback: the SDK retries, then we answer 503.
        let conf = crate::loader()
            .endpoint_url("http://127.0.0.1:9")
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2))
            .load()
            .await;
        let store = DynamoStore::new(Client::new(&conf), "nowhere");
        assert!(matches!(
            store.get(Uuid::now_v7()).await,
            Err(StoreError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn a_missing_table_is_a_bug_not_a_conflict() {
        localstack::ensure_running().expect("LocalStack");
        let conf = localstack::config().await;
        let store = DynamoStore::new(Client::new(&conf), "motcua-no-such-table");
        assert!(matches!(
            store.get(Uuid::now_v7()).await,
            Err(StoreError::Backend(_))
        ));
    }

    #[tokio::test]
    async fn ensure_table_is_idempotent_and_cursors_are_checked() {
        localstack::ensure_running().expect("LocalStack");
        let conf = localstack::config().await;
        let store = DynamoStore::new(
            Client::new(&conf),
            format!("motcua-idem-{}", Uuid::now_v7().simple()),
        );
        store.ensure_table().await.unwrap();
        store.ensure_table().await.unwrap();
        // A cursor of another applicant's listing is refused, not followed.
        let other = encode_cursor(&HashMap::from([
            ("pk".to_string(), s("D#x")),
            ("sk".to_string(), s("D")),
            ("gsi1pk".to_string(), s("APP#mallory")),
            ("gsi1sk".to_string(), s("1#x")),
        ]))
        .unwrap();
        let req = PageRequest {
            limit: 5,
            cursor: Some(other),
        };
        assert_eq!(
            store.list_by_applicant("alice", &req).await,
            Err(StoreError::BadCursor)
        );
        store.delete_table().await.unwrap();
    }
}
