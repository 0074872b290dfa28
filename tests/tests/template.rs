//! The SAM template, exercised: its wiring matches the runner's, and its non-function
//! resources, deployed to LocalStack with CloudFormation, carry the API and its events.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use motcua_aws::aws_sdk_eventbridge::types::Target;
use motcua_tests::Runner;
use serde_json::{Value, json};

fn template_script() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../infra/localstack/template.sh")
        .to_string_lossy()
        .into_owned()
}

fn template(args: &[&str]) -> Value {
    let out = Command::new("bash")
        .arg(template_script())
        .args(args)
        .output()
        .expect("template.sh runs");
    assert!(
        out.status.success(),
        "template.sh {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from template.sh")
}

/// Least privilege on the data: each function reaches its own table only; the submission
/// function may read nothing of the identity table but the revoked subjects.
#[test]
fn each_function_touches_only_its_own_table() {
    let grants = template(&["grants"]);
    let tables = |f: &str| -> BTreeSet<String> {
        grants[f]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["tables"].as_array().cloned().unwrap_or_default())
            .map(|t| t.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(tables("identity"), BTreeSet::from(["IdentityTable".into()]));
    for f in [
        "relay",
        "outbox-sweeper",
        "uploads-verifier",
        "uploads-sweeper",
    ] {
        assert_eq!(tables(f), BTreeSet::from(["DossierTable".into()]), "{f}");
    }
    assert!(tables("rotate-signing-keys").is_empty());
    for g in grants["submission"]
        .as_array()
        .unwrap()
        .iter()
        .chain(grants["uploads"].as_array().unwrap())
    {
        if g["tables"] == json!(["IdentityTable"]) {
            assert_eq!(g["actions"], json!(["dynamodb:GetItem"]), "{g}");
            assert_eq!(g["leading_keys"], json!(["RSUB#*"]), "{g}");
        } else {
            assert_eq!(g["tables"], json!(["DossierTable"]), "{g}");
        }
    }
    // The uploads functions reach only their own items of the shared table (review
    // finding: they could write anywhere in it).
    for f in ["uploads", "uploads-verifier", "uploads-sweeper"] {
        for g in grants[f].as_array().unwrap() {
            assert!(
                g["leading_keys"].as_array().is_some_and(|k| !k.is_empty()),
                "{f}: {g}"
            );
            let writes = g["actions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a != "dynamodb:GetItem" && a != "dynamodb:Query");
            if writes {
                for k in g["leading_keys"].as_array().unwrap() {
                    let k = k.as_str().unwrap();
                    assert!(
                        ["UP#*", "DOC#*", "IDEM#*", "ATT#*"].contains(&k),
                        "{f} may write {k}"
                    );
                }
            }
        }
    }
    // The notifications functions write only their delivery records, keys and send-rate
    // windows, and read of the identity table only accounts (sealed) and revoked subjects.
    for f in [
        "notifications",
        "notifications-events",
        "notifications-dispatcher",
    ] {
        for g in grants[f].as_array().unwrap() {
            let keys: Vec<&str> = g["leading_keys"]
                .as_array()
                .unwrap_or_else(|| panic!("{f}: {g}"))
                .iter()
                .map(|k| k.as_str().unwrap())
                .collect();
            assert!(!keys.is_empty(), "{f}: {g}");
            if g["tables"] == json!(["IdentityTable"]) {
                assert_eq!(g["actions"], json!(["dynamodb:GetItem"]), "{f}: {g}");
                // The HTTP part reads no account: revoked subjects only.
                let want: &[&str] = if f == "notifications" {
                    &["RSUB#*"]
                } else {
                    &["ACCT#*", "RSUB#*"]
                };
                assert_eq!(keys, want, "{f}: {g}");
                continue;
            }
            assert_eq!(g["tables"], json!(["DossierTable"]), "{f}: {g}");
            let writes = g["actions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a != "dynamodb:GetItem" && a != "dynamodb:Query");
            if writes {
                for k in keys {
                    assert!(
                        ["NT#*", "NTK#*", "RATE#*"].contains(&k),
                        "{f} may write {k}"
                    );
                }
            }
        }
    }
    // The payments functions write their own records and, settling, the dossier with its
    // history entry and outbox event; of the identity table, revoked subjects only.
    for f in ["payments", "payments-reconcile"] {
        for g in grants[f].as_array().unwrap() {
            let keys: Vec<&str> = g["leading_keys"]
                .as_array()
                .unwrap_or_else(|| panic!("{f}: {g}"))
                .iter()
                .map(|k| k.as_str().unwrap())
                .collect();
            assert!(!keys.is_empty(), "{f}: {g}");
            if g["tables"] == json!(["IdentityTable"]) {
                assert_eq!(g["actions"], json!(["dynamodb:GetItem"]), "{f}: {g}");
                assert_eq!(keys, ["RSUB#*"], "{f}: {g}");
                continue;
            }
            assert_eq!(g["tables"], json!(["DossierTable"]), "{f}: {g}");
            let writes = g["actions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a != "dynamodb:GetItem" && a != "dynamodb:Query");
            if writes {
                for k in keys {
                    assert!(
                        ["PAY#*", "PAYOPEN#*", "PAYREPORT#*", "D#*", "EV#*", "IDEM#*"].contains(&k),
                        "{f} may write {k}"
                    );
                }
            }
        }
    }
    // No managed policy grants a whole table on the side.
    for (f, gs) in grants.as_object().unwrap() {
        for g in gs.as_array().unwrap() {
            assert!(g.get("managed").is_none(), "{f}: {g}");
        }
    }
}

/// Keys and credentials reach no function as environment values: only the ARNs of the
/// secrets holding them (`<NAME>_SECRET`).
#[test]
fn no_secret_is_an_environment_value() {
    let env = template(&["environment"]);
    for (f, names) in env.as_object().unwrap() {
        for name in names.as_array().unwrap() {
            let name = name.as_str().unwrap();
            assert!(
                ![
                    "MOTCUA_ID_HASH_KEY",
                    "MOTCUA_REGISTRY_API_KEY",
                    "MOTCUA_JWT_SECRETS",
                    "MOTCUA_PROXY_SECRET",
                    "MOTCUA_ACCOUNT_KEY",
                    "MOTCUA_EID_CLIENT_KEY",
                    "MOTCUA_SIGNING_KEYS",
                    "MOTCUA_SMS_GATEWAY_KEY",
                    "MOTCUA_SMS_GATEWAY_RECEIPT_SECRET",
                    "MOTCUA_ZALO_ACCESS_TOKEN",
                    "MOTCUA_VNPAY_HASH_SECRET",
                    "MOTCUA_MOMO_SECRET_KEY",
                    "MOTCUA_PAYGOV_SECRET",
                ]
                .contains(&name),
                "{f} gets {name} as a value"
            );
        }
    }
    let identity: Vec<&str> = env["identity"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    for name in [
        "MOTCUA_ID_HASH_KEY_SECRET",
        "MOTCUA_REGISTRY_API_KEY_SECRET",
        "MOTCUA_PROXY_SECRET_SECRET",
    ] {
        assert!(identity.contains(&name), "identity reads {name}");
    }
}

#[test]
fn template_routes_match_the_runner() {
    let wiring = template(&["wiring"]);
    let declared: BTreeSet<(String, String)> = wiring["submission"]
        .as_array()
        .expect("the submission function is in the template")
        .iter()
        .filter(|e| e["type"] == "http")
        .map(|e| {
            (
                e["method"].as_str().unwrap().to_owned(),
                e["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(declared, motcua_submission::route_table());
    // The relay reads the dossier table's stream, reports partial failures, bisects and
    // has an on-failure destination.
    let relay = &wiring["relay"][0];
    assert_eq!(relay["type"], "dynamodb-stream");
    assert_eq!(relay["table"], "DossierTable");
    assert_eq!(relay["report_batch_item_failures"], true);
    assert_eq!(relay["bisect"], true);
    assert_eq!(relay["on_failure"], true);
    // Behind our CDN the API's default endpoint is off: nobody reaches it around the CDN
    // to choose the address the per-client limits see.
    assert_eq!(
        template(&["http-api", "TrustedProxyHops=1", "ProxySecret=s"])["disable_execute_api_endpoint"],
        true
    );
    assert_eq!(
        template(&["http-api"])["disable_execute_api_endpoint"],
        false
    );
    // The outbox sweeper runs on a schedule (what the stream relay gave up on).
    assert_eq!(wiring["outbox-sweeper"][0]["type"], "Schedule");
    let identity: BTreeSet<(String, String)> = wiring["identity"]
        .as_array()
        .expect("the identity function is in the template")
        .iter()
        .filter(|e| e["type"] == "http")
        .map(|e| {
            (
                e["method"].as_str().unwrap().to_owned(),
                e["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(identity, motcua_identity::route_table());
    let uploads: BTreeSet<(String, String)> = wiring["uploads"]
        .as_array()
        .expect("the uploads function is in the template")
        .iter()
        .filter(|e| e["type"] == "http")
        .map(|e| {
            (
                e["method"].as_str().unwrap().to_owned(),
                e["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(uploads, motcua_uploads::route_table());
    // The verifier reads the files bucket's queue and reports partial failures; the
    // sweeper runs on a schedule.
    assert_eq!(
        wiring["uploads-verifier"],
        json!([{"type": "sqs", "queue": "UploadsQueue", "report_batch_item_failures": true}])
    );
    assert_eq!(wiring["uploads-sweeper"][0]["type"], "Schedule");
    let notifications: BTreeSet<(String, String)> = wiring["notifications"]
        .as_array()
        .expect("the notifications function is in the template")
        .iter()
        .filter(|e| e["type"] == "http")
        .map(|e| {
            (
                e["method"].as_str().unwrap().to_owned(),
                e["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(notifications, motcua_notifications::route_table());
    // Events come from the bus rule's queue with partial failures; the dispatcher runs
    // every minute and each morning.
    assert_eq!(
        wiring["notifications-events"],
        json!([{"type": "sqs", "queue": "NotificationsQueue", "report_batch_item_failures": true}])
    );
    assert_eq!(
        wiring["notifications-dispatcher"],
        json!([{"type": "Schedule"}, {"type": "Schedule"}])
    );
    let payments: BTreeSet<(String, String)> = wiring["payments"]
        .as_array()
        .expect("the payments function is in the template")
        .iter()
        .filter(|e| e["type"] == "http")
        .map(|e| {
            (
                e["method"].as_str().unwrap().to_owned(),
                e["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(payments, motcua_payments::route_table());
    // Reconciliation every five minutes and each night.
    assert_eq!(
        wiring["payments-reconcile"],
        json!([{"type": "Schedule"}, {"type": "Schedule"}])
    );
    let reports: BTreeSet<(String, String)> = wiring["reports"]
        .as_array()
        .expect("the reports function is in the template")
        .iter()
        .filter(|e| e["type"] == "http")
        .map(|e| {
            (
                e["method"].as_str().unwrap().to_owned(),
                e["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(reports, motcua_reports::route_table());
    // Counted from the bus rule's queue with partial failures.
    assert_eq!(
        wiring["reports-consumer"],
        json!([{"type": "sqs", "queue": "ReportsQueue", "report_batch_item_failures": true}])
    );
    // Nothing else serves HTTP or events yet.
    let functions: BTreeSet<&str> = wiring
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        functions,
        BTreeSet::from([
            "identity",
            "notifications",
            "notifications-dispatcher",
            "notifications-events",
            "outbox-sweeper",
            "payments",
            "payments-reconcile",
            "relay",
            "reports",
            "reports-consumer",
            "rotate-signing-keys",
            "submission",
            "uploads",
            "uploads-sweeper",
            "uploads-verifier"
        ])
    );
    // The rotation function has no API route or event source: Secrets Manager calls it.
    assert_eq!(wiring["rotate-signing-keys"], json!([]));
    // The HTTP API serves on its $default stage: a named stage would prefix every path the
    // functions see (see functions/submission/tests/api_gateway_event.rs).
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml"),
    )
    .unwrap();
    assert!(
        !text.contains("StageName:"),
        "the HTTP API must use $default"
    );
}

#[tokio::test]
async fn deployed_template_serves_the_api_and_relays_events() {
    motcua_aws::localstack::ensure_running().expect("LocalStack");
    let prefix = format!(
        "t{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 10_000_000_000
    );
    let stack = format!("motcua-{prefix}");
    let outputs = template(&["deploy", &stack, &format!("ResourcePrefix={prefix}")]);
    let table = outputs["TableName"].as_str().unwrap().to_owned();
    let identity_table = outputs["IdentityTableName"].as_str().unwrap().to_owned();
    let id_hash_secret = outputs["IdHashKeySecretArn"].as_str().unwrap().to_owned();
    let bus = outputs["EventBusName"].as_str().unwrap().to_owned();
    assert_eq!(table, format!("{prefix}-dev"));
    assert!(outputs["TableStreamArn"].as_str().unwrap().contains(&table));
    let deployed: Vec<&str> = outputs["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    for r in [
        "DossierTable",
        "EventBus",
        "RelayDeadLetterQueue",
        "AccountMasterKey",
        "SigningKeysSecret",
        "FilesBucket",
        "FilesBucketPolicy",
        "UploadsQueue",
        "UploadsDeadLetterQueue",
        "UploadsQueuePolicy",
        "NotificationsQueue",
        "NotificationsDeadLetterQueue",
        "NotificationsRule",
        "NotificationsQueuePolicy",
    ] {
        assert!(deployed.contains(&r), "{r} deployed: {deployed:?}");
    }

    // A consumer of the bus: a rule sending every motcua event to a queue.
    let conf = motcua_aws::localstack::config().await;
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let events = motcua_aws::aws_sdk_eventbridge::Client::new(&conf);
    let queue_url = sqs
        .create_queue()
        .queue_name(format!("{prefix}-consumer"))
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
    events
        .put_rule()
        .name(format!("{prefix}-all"))
        .event_bus_name(&bus)
        .event_pattern(json!({"source": ["motcua"]}).to_string())
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule(format!("{prefix}-all"))
        .event_bus_name(&bus)
        .targets(
            Target::builder()
                .id("queue")
                .arn(&queue_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    // The signing-keys secret is created empty; its first rotation (which Secrets Manager
    // runs on deploy) adds a key.
    let secret = outputs["SigningKeysSecretArn"].as_str().unwrap().to_owned();
    let master_key = outputs["AccountMasterKeyArn"].as_str().unwrap().to_owned();
    let secrets = aws_sdk_secretsmanager::Client::new(&conf);
    let token = uuid::Uuid::now_v7().to_string();
    for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        let event = motcua_identity::keys::RotationEvent {
            secret_id: secret.clone(),
            token: token.clone(),
            step: step.into(),
        };
        motcua_identity::keys::rotate(&secrets, &event, jiff::Timestamp::now().as_second())
            .await
            .unwrap();
    }
    let kid = motcua_identity::keys::load(&secrets, &secret)
        .await
        .unwrap()[0]
        .kid
        .clone();

    // The runner on the deployed table, bus, master key and signing keys.
    let dir = motcua_tests::fresh_data_dir("deployed");
    let endpoint = motcua_aws::localstack::endpoint();
    let runner = Runner::launch_aws(
        &dir,
        &[
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("MOTCUA_TABLE", table.as_str()),
            ("MOTCUA_IDENTITY_TABLE", identity_table.as_str()),
            // The generated key, read from Secrets Manager as the function reads it.
            ("MOTCUA_ID_HASH_KEY_SECRET", id_hash_secret.as_str()),
            ("MOTCUA_EVENT_BUS", bus.as_str()),
            ("MOTCUA_KMS_KEY_ID", master_key.as_str()),
            ("MOTCUA_SIGNING_KEYS_SECRET", secret.as_str()),
            (
                "MOTCUA_BUCKET",
                outputs["FilesBucketName"].as_str().unwrap(),
            ),
            (
                "MOTCUA_UPLOADS_QUEUE",
                outputs["UploadsQueueName"].as_str().unwrap(),
            ),
            (
                "MOTCUA_NOTIFY_QUEUE",
                outputs["NotificationsQueueName"].as_str().unwrap(),
            ),
            ("MOTCUA_QUIET_HOURS", "00:00-00:00"),
        ],
    )
    .expect("runner on the deployed resources");
    assert!(
        !dir.join("id-hash.key").exists(),
        "the ID hash key came from the deployed secret, not a local file"
    );

    // A citizen signs in (code to the registry's phone): the account is sealed under the
    // deployed KMS key and the token is signed with the secret's key.
    let http = reqwest::Client::new();
    let verified = runner
        .sign_in_with_code(
            &http,
            &json!({"citizen_id": "037153000257", "full_name": "Nguyễn Thị Lan",
            "birth_date": "1953-04-02", "sex": "female"}),
            "+84912345678",
            "10.1.2.3",
        )
        .await;
    let access = verified["access_token"].as_str().unwrap();
    assert_eq!(motcua_tests::jwt_part(access, 0)["kid"], kid.as_str());
    let me: Value = http
        .get(runner.url("/v1/me"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["name"], "Nguyễn Thị Lan");
    assert_eq!(me["assurance"], 2);
    let citizen = runner.token("citizen", "citizen-deployed", None);
    let officer = runner.token("officer", "officer-deployed", Some("000.00.04.H42"));
    let created: Value = http
        .post(runner.url("/v1/dossiers"))
        .bearer_auth(&citizen)
        .json(&runner.criminal_record_for(&http, &citizen).await)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().expect("created").to_owned();
    let code = created["code"].as_str().unwrap().to_owned();
    let r = http
        .post(runner.url(&format!("/v1/dossiers/{id}/actions")))
        .bearer_auth(&officer)
        .json(&json!({"action": "receive"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The dossier is in the template's table.
    let ddb = motcua_aws::aws_sdk_dynamodb::Client::new(&conf);
    let item = ddb
        .get_item()
        .table_name(&table)
        .key(
            "pk",
            motcua_aws::aws_sdk_dynamodb::types::AttributeValue::S(format!("D#{id}")),
        )
        .key(
            "sk",
            motcua_aws::aws_sdk_dynamodb::types::AttributeValue::S("D".into()),
        )
        .send()
        .await
        .unwrap();
    assert!(item.item().is_some());

    // Both events reach the consumer through stream, relay and bus, with their envelope.
    let mut kinds = BTreeSet::new();
    let mut ids = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while kinds.len() < 2 && Instant::now() < deadline {
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
            assert_eq!(v["source"], "motcua");
            let detail = &v["detail"];
            assert_eq!(detail["subject"], id.as_str());
            assert_eq!(detail["data"]["dossier_code"], code.as_str());
            assert_eq!(v["detail-type"], detail["type"]);
            ids.insert(detail["id"].as_str().unwrap().to_owned());
            kinds.insert(detail["type"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(
        kinds,
        BTreeSet::from(["dossier.receive".to_string(), "dossier.submit".to_string()])
    );
    assert_eq!(ids.len(), 2);

    // The template's rule fed its notifications queue: the applicant's phone got the
    // receipt's SMS, once.
    let received = format!("Ho so {code} da duoc tiep nhan");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut sms: Vec<Value> = Vec::new();
    while Instant::now() < deadline {
        sms = http
            .get(runner.url("/dev/messages"))
            .query(&[("channel", "sms"), ("to", "+84912345678")])
            .send()
            .await
            .unwrap()
            .json::<Vec<Value>>()
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m["text"].as_str().unwrap_or("").contains(&received))
            .collect();
        if !sms.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(sms.len(), 1, "{sms:?}");
    runner.stop();
    template(&["delete", &stack]);
}
