//! A bus outage longer than the stream's retries loses nothing: on DynamoDB (LocalStack)
//! the outbox keeps every unpublished event without a TTL, and once the bus is back the
//! sweeper publishes the backlog to the real EventBridge bus, where a rule delivers it to
//! a consumer's queue.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use motcua_aws::aws_sdk_dynamodb::types::AttributeValue;
use motcua_aws::aws_sdk_eventbridge::types::Target;
use motcua_aws::events::EventBridgePublisher;
use motcua_aws::{DynamoStore, localstack};
use motcua_ports::Outbox;
use motcua_relay::{StreamRecord, relay, sweep_outbox};
use serde_json::{Value, json};
use uuid::Uuid;

async fn outbox_item(
    ddb: &motcua_aws::aws_sdk_dynamodb::Client,
    table: &str,
    id: Uuid,
) -> std::collections::HashMap<String, AttributeValue> {
    ddb.get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(format!("EV#{id}")))
        .key("sk", AttributeValue::S("EV".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item()
        .cloned()
        .expect("the outbox item is there")
}

#[tokio::test]
async fn events_written_during_a_bus_outage_all_arrive_after_it() {
    localstack::ensure_running().expect("LocalStack");
    let conf = localstack::config().await;
    let suffix = Uuid::now_v7().simple().to_string();
    let table = format!("motcua-outage-{suffix}");
    let ddb = motcua_aws::aws_sdk_dynamodb::Client::new(&conf);
    let store = DynamoStore::new(ddb.clone(), &table);
    store.ensure_table().await.unwrap();
    // The bus cannot be reached (nothing listens where its endpoint points): every
    // publication fails, as in an outage.
    let bus_name = format!("motcua-outage-{suffix}");
    let unreachable = conf
        .to_builder()
        .endpoint_url("http://127.0.0.1:9")
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
        .build();
    let down = EventBridgePublisher::new(
        motcua_aws::aws_sdk_eventbridge::Client::new(&unreachable),
        &bus_name,
    );
    let events_client = motcua_aws::aws_sdk_eventbridge::Client::new(&conf);
    let publisher = EventBridgePublisher::new(events_client.clone(), &bus_name);

    let mut events = Vec::new();
    for i in 0..5 {
        let (d, h, e) = motcua_ports::contract::sample("alice", i + 1, jiff::Timestamp::now());
        motcua_ports::DossierStore::create(&store, &d, &h, &e)
            .await
            .unwrap();
        events.push(e);
    }
    // The stream relay tries (and, after its retries, gives the records up).
    let records: Vec<_> = events
        .iter()
        .enumerate()
        .map(|(i, e)| StreamRecord {
            sequence_number: i.to_string(),
            event_name: "INSERT".into(),
            pk: Some(format!("EV#{}", e.id)),
            body: Some(serde_json::to_string(e).unwrap()),
        })
        .collect();
    let out = relay(&records, &down, Some(&store)).await;
    assert_eq!(out.published, 0);
    assert_eq!(out.failed.len(), 5);
    for e in &events {
        let item = outbox_item(&ddb, &table, e.id).await;
        assert!(
            !item.contains_key("ttl"),
            "an unpublished event has no TTL that could remove it: {item:?}"
        );
    }
    let now = jiff::Timestamp::now();
    let during = sweep_outbox(&store, &down, now, now).await.unwrap();
    assert_eq!(during.published, 0);
    assert_eq!(during.failed, 5);

    // The bus is back, with a consumer.
    publisher.ensure_bus().await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let queue_url = sqs
        .create_queue()
        .queue_name(format!("motcua-outage-{suffix}"))
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    events_client
        .put_rule()
        .name("all")
        .event_bus_name(&bus_name)
        .event_pattern(json!({"source": ["motcua"]}).to_string())
        .send()
        .await
        .unwrap();
    events_client
        .put_targets()
        .rule("all")
        .event_bus_name(&bus_name)
        .targets(Target::builder().id("q").arn(&queue_arn).build().unwrap())
        .send()
        .await
        .unwrap();

    let now = jiff::Timestamp::now();
    let after = sweep_outbox(&store, &publisher, now, now).await.unwrap();
    assert_eq!(after.published, 5);
    assert_eq!(after.failed, 0);
    assert!(store.pending(10).await.unwrap().is_empty());
    for e in &events {
        let item = outbox_item(&ddb, &table, e.id).await;
        let AttributeValue::N(ttl) = &item["ttl"] else {
            panic!("a TTL once published: {item:?}")
        };
        let ttl: i64 = ttl.parse().unwrap();
        assert!(
            ttl > now.as_second() + 13 * 86_400,
            "kept two weeks after publication"
        );
    }

    // Every event reaches the consumer.
    let want: BTreeSet<String> = events.iter().map(|e| e.id.to_string()).collect();
    let mut got = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got != want && Instant::now() < deadline {
        let msgs = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for m in msgs.messages() {
            let v: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            got.insert(v["detail"]["id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(got, want, "every event of the outage arrived");
    store.delete_table().await.unwrap();
}
