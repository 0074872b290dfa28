//! The identity function on AWS Lambda, behind the HTTP API.
//!
//! It starts reading its secrets, signing keys and e-ID client key (each a round trip to
//! Secrets Manager, all at once) and fetching the SSO's JWKS, and asks Lambda for its first
//! event without waiting for them: the reads overlap the wait for the first event, and the
//! first event waits only for what is still missing (and tries a failed start once more).
//! A setting or secret it cannot have ends the process before any event is answered:
//! Lambda reports the failed invocation (`Runtime.ExitError`) and starts a new environment
//! for the next one.

use std::sync::{Arc, Mutex};

use motcua_http::SystemClock;
use motcua_identity::{IdentityConfig, IdentityState, router};
use motcua_registry::HttpRegistry;
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;
use tower::ServiceExt;

type Started = JoinHandle<Result<axum::Router, lambda_http::Error>>;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    motcua_aws::init_lambda_tracing();
    let starting: Arc<Mutex<Option<Started>>> = Arc::new(Mutex::new(Some(tokio::spawn(build()))));
    let router: Arc<OnceCell<axum::Router>> = Arc::new(OnceCell::new());
    lambda_http::run(lambda_http::service_fn(move |req: lambda_http::Request| {
        let (starting, router) = (starting.clone(), router.clone());
        async move {
            let app = router.get_or_init(|| started(starting)).await;
            Ok::<_, lambda_http::Error>(app.clone().oneshot(req).await?)
        }
    }))
    .await
}

/// The router the start task built. A start that failed is tried once more, here: Lambda
/// may freeze an environment that asked for work while its reads were in flight (a
/// pre-warmed one, say), and on thaw they time out though the answers are there. A second
/// failure ends the process (no event is answered by a function without its keys).
async fn started(starting: Arc<Mutex<Option<Started>>>) -> axum::Router {
    let task = starting.lock().unwrap_or_else(|e| e.into_inner()).take();
    let first = match task {
        Some(task) => task.await.map_err(|e| e.to_string()),
        None => Err("the start task was already taken".into()),
    };
    let why = match first {
        Ok(Ok(router)) => return router,
        Ok(Err(e)) => e.to_string(),
        Err(e) => e,
    };
    tracing::warn!(error = %why, "the identity function's start failed; trying once more");
    match build().await {
        Ok(router) => router,
        Err(e) => stop(&e.to_string()),
    }
}

fn stop(why: &str) -> ! {
    tracing::error!(error = %why, "the identity function could not start");
    eprintln!("identity: {why}");
    std::process::exit(1)
}

/// A setting: unset and empty (or blank) are the same.
fn env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.trim().is_empty())
}

/// The function's router, with everything read from Secrets Manager and the stores.
async fn build() -> Result<axum::Router, lambda_http::Error> {
    // Keys and credentials from Secrets Manager (NAME_SECRET), read once at cold start;
    // the plain variables only where no secret is named (a laptop).
    let secrets_client = aws_sdk_secretsmanager::Client::new(&motcua_aws::sdk_config().await);
    let signing_secret = env("MOTCUA_SIGNING_KEYS_SECRET");
    let eid_on = env("MOTCUA_EID_ISSUER").is_some();
    let eid_secret = env("MOTCUA_EID_CLIENT_KEY_SECRET").filter(|_| eid_on);
    // Every secret read at start is read at once: each is a round trip to Secrets Manager,
    // and together they stand before the first request.
    let (secrets, signing_keys, eid_key_json) = tokio::join!(
        motcua_aws::secrets::resolve(
            &secrets_client,
            &[
                "MOTCUA_ID_HASH_KEY",
                "MOTCUA_REGISTRY_API_KEY",
                "MOTCUA_JWT_SECRETS",
                "MOTCUA_PROXY_SECRET",
                "MOTCUA_SMS_GATEWAY_KEY",
            ],
            env,
        ),
        async {
            match &signing_secret {
                Some(id) => Some(motcua_identity::keys::load(&secrets_client, id).await),
                None => None,
            }
        },
        async {
            match &eid_secret {
                Some(id) => Some(
                    motcua_aws::secrets::read(&secrets_client, "MOTCUA_EID_CLIENT_KEY_SECRET", id)
                        .await,
                ),
                None => None,
            }
        },
    );
    let get = motcua_aws::secrets::lookup(secrets?, env);
    let config = IdentityConfig::from_lookup(&get)?;
    // Account tokens are ES256 only on AWS (the gateway's JWT authorizer checks them);
    // HS256 development secrets are honoured only if configured.
    let auth = Arc::new(motcua_http::Authenticator::new(
        &std::env::var("MOTCUA_JWT_ISSUER").unwrap_or_else(|_| "motcua".into()),
        &std::env::var("MOTCUA_JWT_AUDIENCE").unwrap_or_else(|_| "motcua".into()),
        &motcua_http::config::jwt_secrets(get("MOTCUA_JWT_SECRETS"))?,
    )?);
    // Signing keys: the Secrets Manager secret (rotated by rotate-signing-keys, reloaded
    // every few minutes), or a fixed list in MOTCUA_SIGNING_KEYS where there is none.
    match (
        signing_keys,
        signing_secret.as_ref(),
        env("MOTCUA_SIGNING_KEYS"),
    ) {
        (Some(keys), Some(_), _) => auth.set_signing_keys(&keys?),
        (_, _, Some(json)) => auth.set_signing_keys(&motcua_http::signing_keys_from_json(&json)?),
        _ => return Err("MOTCUA_SIGNING_KEYS_SECRET or MOTCUA_SIGNING_KEYS is required".into()),
    }
    // The SSO's keys are fetched while the function waits for its first event; a token
    // checked meanwhile waits for that fetch rather than starting another.
    let sso = motcua_http::SsoTrust::from_vars(env)?.map(Arc::new);
    if let Some(sso) = sso.clone() {
        tokio::spawn(async move {
            if let Err(e) = sso.jwks.refresh().await {
                tracing::warn!(error = %e, "the SSO's JWKS could not be fetched at start");
            }
        });
    }
    let registry = Arc::new(HttpRegistry::new(config.registry_client())?);
    let ports = match env("MOTCUA_BACKEND").as_deref() {
        #[cfg(feature = "embedded")]
        Some("embedded") => {
            // For trying the function alone; data in the Lambda's /tmp is not durable.
            let dir = std::env::var("MOTCUA_DATA_DIR").unwrap_or_else(|_| "/tmp/motcua".into());
            motcua_embedded::EmbeddedStore::open(std::path::Path::new(&dir))?.identity_ports()
        }
        _ => {
            let table = env("MOTCUA_TABLE").ok_or("MOTCUA_TABLE is required")?;
            motcua_aws::DynamoStore::from_env(table)
                .await
                .identity_ports()
        }
    };
    // Personal fields of accounts are sealed with data keys wrapped by the master key: in
    // KMS (MOTCUA_KMS_KEY_ID), or a configured key (MOTCUA_ACCOUNT_KEY) where KMS is absent.
    let vault: Arc<dyn motcua_ports::identity::KeyVault> = match env("MOTCUA_KMS_KEY_ID") {
        Some(key_id) => {
            let conf = motcua_aws::sdk_config().await;
            Arc::new(motcua_aws::kms::KmsKeyVault::new(
                motcua_aws::aws_sdk_kms::Client::new(&conf),
                key_id,
            ))
        }
        None => {
            let master = env("MOTCUA_ACCOUNT_KEY")
                .ok_or("MOTCUA_KMS_KEY_ID or MOTCUA_ACCOUNT_KEY is required")?;
            Arc::new(motcua_identity::sealed::LocalKeyVault::new(
                {
                    use base64::Engine;
                    base64::engine::general_purpose::STANDARD.decode(master.trim())
                }
                .map_err(|_| "MOTCUA_ACCOUNT_KEY must be base64")?,
            )?)
        }
    };
    auth.check_revocations(ports.revoked.clone());
    let auth_for_keys = auth.clone();
    let ports = motcua_identity::sealed::sealed_ports(ports, vault);
    // Sign-in codes go at once through the SMS sender port: SNS (transactional, under
    // MOTCUA_SMS_SENDER_ID if set), or the brandname gateway with MOTCUA_SMS_PROVIDER=gateway.
    let sms: Arc<dyn motcua_ports::notifications::Sender> =
        match env("MOTCUA_SMS_PROVIDER").as_deref() {
            Some("gateway") => Arc::new(motcua_senders::gateway::SmsGateway::new(
                &env("MOTCUA_SMS_GATEWAY_URL").ok_or("MOTCUA_SMS_GATEWAY_URL is required")?,
                &get("MOTCUA_SMS_GATEWAY_KEY").ok_or("MOTCUA_SMS_GATEWAY_KEY is required")?,
                &env("MOTCUA_SMS_SENDER_ID").unwrap_or_else(|| "DVC".into()),
                false,
            )),
            _ => Arc::new(motcua_aws::sms::SnsSms::new(
                motcua_aws::aws_sdk_sns::Client::new(&motcua_aws::sdk_config().await),
                env("MOTCUA_SMS_SENDER_ID"),
            )),
        };
    let codes = Arc::new(motcua_ports::notifications::CodesBySms(sms));
    // The national e-ID (OpenID Connect), when MOTCUA_EID_ISSUER is set: the relying
    // party's private_key_jwt key from Secrets Manager (or MOTCUA_EID_CLIENT_KEY).
    let eid_key = match (eid_key_json, env("MOTCUA_EID_CLIENT_KEY")) {
        _ if !eid_on => None,
        (Some(json), _) => Some(motcua_identity::client_key_from_json(&json?)?),
        (None, Some(json)) => Some(motcua_identity::client_key_from_json(&json)?),
        _ => None,
    };
    let eid = motcua_identity::EidRelyingParty::from_vars(env, eid_key)?.map(Arc::new);
    let state = IdentityState {
        ports,
        population: registry.clone(),
        business: registry,
        auth,
        clock: Arc::new(SystemClock::default()),
        config: Arc::new(config),
        sso,
        codes,
        eid,
    };
    // Reloaded every few minutes once everything else has started: a start that fails
    // later leaves no reloader behind (it is tried once more).
    if let Some(secret) = signing_secret {
        motcua_identity::keys::follow(secrets_client, secret, auth_for_keys);
    }
    Ok(router(state))
}
