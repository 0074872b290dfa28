//! The payments binaries as Lambda runs them, on LocalStack: the HTTP function starts a
//! payment and takes VNPay's IPN once (its key read from Secrets Manager); the
//! reconciliation function runs its two schedules.

use std::time::Duration;

use motcua_pay::paygov::PaygovProfile;
use motcua_pay::simulator::{PaymentSimulator, SimOptions};
use motcua_ports::Outbox;
use motcua_tests::lambda::{LambdaHarness, answer, aws_table, body, event, function_binary};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

fn http_event(
    method: &str,
    route: &str,
    path: &str,
    query: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Value {
    let mut req = event("apigw/get-procedures.json");
    req["routeKey"] = json!(format!("{method} {route}"));
    req["rawPath"] = json!(path);
    req["rawQueryString"] = json!(query);
    req["requestContext"]["http"]["path"] = json!(path);
    req["requestContext"]["http"]["method"] = json!(method);
    req["queryStringParameters"] = json!({});
    if let Some(t) = token {
        req["headers"]["authorization"] = json!(format!("Bearer {t}"));
    }
    if let Some(b) = body {
        req["headers"]["content-type"] = json!("application/json");
        req["body"] = json!(b.to_string());
        req["isBase64Encoded"] = json!(false);
    }
    req
}

#[tokio::test]
async fn the_payments_binaries_take_a_payment_once_and_reconcile() {
    let (table, aws_env) = aws_table("lambda-pay").await;
    let conf = motcua_aws::localstack::config().await;
    let store = motcua_aws::DynamoStore::new(
        motcua_aws::aws_sdk_dynamodb::Client::new(&conf),
        table.as_str(),
    );
    let (d, h, e) = motcua_ports::contract::sample("citizen-pay", 1, jiff::Timestamp::now());
    store
        .submission_ports()
        .dossiers
        .create(&d, &h, &e)
        .await
        .unwrap();
    let sim = PaymentSimulator::start(
        0,
        SimOptions {
            vnpay_tmn_code: "MOTCUA01".into(),
            vnpay_secret: b"lambda-vnpay-secret".to_vec(),
            vnpay_ipn_url: "http://127.0.0.1:9/unused".into(),
            momo_partner_code: "MOMO".into(),
            momo_access_key: "a".into(),
            momo_secret: b"lambda-momo-secret".to_vec(),
            paygov_merchant: "M".into(),
            paygov_secret: b"lambda-paygov-secret".to_vec(),
            paygov_profile: PaygovProfile::example(),
        },
    )
    .await
    .unwrap();
    // VNPay's key in Secrets Manager, as the template keeps it.
    let secrets = motcua_aws::aws_sdk_secretsmanager::Client::new(&conf);
    let arn = secrets
        .create_secret()
        .name(format!("motcua-vnpay-{}", uuid::Uuid::now_v7().simple()))
        .secret_string("lambda-vnpay-secret")
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let secret = "bW90Y3VhLXRlc3Qtc2VjcmV0LW9mLTMyLWJ5dGVzISE=";
    let (pay_url, api_url) = (sim.vnpay_pay_url(), sim.vnpay_api_url());
    let mut env = vec![
        ("MOTCUA_TABLE", table.as_str()),
        ("MOTCUA_JWT_SECRETS", secret),
        ("MOTCUA_PUBLIC_API_URL", "https://api.example.gov.vn"),
        ("MOTCUA_VNPAY_TMN_CODE", "MOTCUA01"),
        ("MOTCUA_VNPAY_HASH_SECRET_SECRET", arn.as_str()),
        ("MOTCUA_VNPAY_PAY_URL", pay_url.as_str()),
        ("MOTCUA_VNPAY_API_URL", api_url.as_str()),
    ];
    env.extend(aws_env.iter().map(|(k, v)| (*k, v.as_str())));
    let http = LambdaHarness::start(&function_binary("payments").unwrap(), &env)
        .await
        .unwrap();
    let auth = motcua_http::Authenticator::new(
        "motcua",
        "motcua",
        &motcua_http::config::jwt_secrets(Some(secret.into())).unwrap(),
    )
    .unwrap();
    let token = auth.mint(
        "citizen-pay",
        motcua_domain::Role::Citizen,
        None,
        jiff::Timestamp::now().as_second(),
        600,
    );
    let path = format!("/v1/dossiers/{}/payments", d.id);
    let a = answer(
        http.invoke(
            http_event(
                "POST",
                "/v1/dossiers/{id}/payments",
                &path,
                "",
                Some(&token),
                Some(json!({"provider": "vnpay"})),
            ),
            WAIT,
        )
        .await
        .unwrap(),
    );
    assert_eq!(a["statusCode"], 201, "{a}");
    let p = body(&a);
    let url = p["redirect_url"].as_str().unwrap();
    assert!(
        url.contains(
            "vnp_ReturnUrl=https%3A%2F%2Fapi.example.gov.vn%2Fv1%2Fpayments%2Fvnpay%2Freturn"
        ),
        "{url}"
    );
    // The payer pays; VNPay's IPN (its signed fields, as the return URL carries them too)
    // reaches the function twice: applied once.
    let http_client = reqwest::Client::new();
    assert_eq!(http_client.get(url).send().await.unwrap().status(), 200);
    let txn = p["id"].as_str().unwrap().replace('-', "");
    let back: Value = http_client
        .post(format!("{}/_sim/pay/vnpay/{txn}", sim.base_url()))
        .header("accept", "application/json")
        .body("as=never")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let query = back["return_url"]
        .as_str()
        .unwrap()
        .split_once('?')
        .unwrap()
        .1
        .to_owned();
    for want in ["00", "02"] {
        let a = answer(
            http.invoke(
                http_event(
                    "GET",
                    "/v1/payments/vnpay/ipn",
                    "/v1/payments/vnpay/ipn",
                    &query,
                    None,
                    None,
                ),
                WAIT,
            )
            .await
            .unwrap(),
        );
        assert_eq!(a["statusCode"], 200, "{a}");
        assert_eq!(body(&a)["RspCode"], want, "{a}");
    }
    let stored = store
        .submission_ports()
        .dossiers
        .get(d.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.fees.len(), 1);
    let events: Vec<_> = store
        .pending(1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "payment.succeeded" && e.subject == d.id.to_string())
        .collect();
    assert_eq!(events.len(), 1);
    // Reconciliation: nothing pending; the day's report agrees with VNPay.
    let reconcile = LambdaHarness::start(&function_binary("payments-reconcile").unwrap(), &env)
        .await
        .unwrap();
    let a = answer(
        reconcile
            .invoke(json!({"task": "reconcile"}), WAIT)
            .await
            .unwrap(),
    );
    assert_eq!(a["asked"], 0, "{a}");
    let today = motcua_domain::calendar::local_date(jiff::Timestamp::now());
    let a = answer(
        reconcile
            .invoke(json!({"task": "report", "day": today}), WAIT)
            .await
            .unwrap(),
    );
    assert_eq!(a, json!({"day": today, "mismatches": 0, "unchecked": 0}));
    store.delete_table().await.unwrap();
}
