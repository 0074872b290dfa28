//! The local runner's library: wiring of every function on the embedded backend, the
//! development signing key, and development tokens.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use motcua_aws::DynamoStore;
use motcua_aws::events::EventBridgePublisher;
use motcua_domain::catalogue::demo_catalogue;
use motcua_domain::{AgencyCode, CitizenId, Role, WorkingCalendar};
use motcua_embedded::EmbeddedStore;
use motcua_http::Authenticator;
use motcua_identity::{IdentityConfig, IdentityState};
use motcua_ports::SubmissionPorts;
use motcua_relay::InProcessBus;
use motcua_submission::{AppState, SubmissionConfig, SystemClock};
use sha2::{Digest, Sha256};

pub mod dashboard;
pub mod messages;
pub mod notify;
pub mod payments;
pub mod portal;
pub mod reports;
pub mod seed;
pub mod uploads;
pub use messages::DevMessages;

/// Issuer of the tokens the runner mints and accepts.
pub const LOCAL_ISSUER: &str = "motcua-local";
const KEY_FILE: &str = "dev-jwt.key";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Aws,
}

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub port: u16,
    pub data_dir: PathBuf,
    pub backend: Backend,
}

#[derive(Debug, Clone)]
pub struct TokenOptions {
    pub role: String,
    pub sub: Option<String>,
    pub agency: Option<String>,
    pub citizen_id: Option<String>,
    pub ttl_secs: i64,
    pub data_dir: PathBuf,
}

/// The development signing secret in `data_dir/dev-jwt.key`, created on first use.
/// `MOTCUA_JWT_SECRETS` overrides it.
pub fn dev_secret(data_dir: &Path) -> anyhow::Result<String> {
    secret_file(data_dir, KEY_FILE, "MOTCUA_JWT_SECRETS")
}

/// A random 32-byte base64 secret kept in `data_dir/file` (mode 0600), created on first
/// use; the environment variable `env` overrides it.
pub(crate) fn secret_file(data_dir: &Path, file: &str, env: &str) -> anyhow::Result<String> {
    if let Ok(s) = std::env::var(env) {
        return Ok(s);
    }
    // Named as a Secrets Manager secret (`<VAR>_SECRET`), as the functions read it on AWS.
    if let Ok(id) = std::env::var(format!("{env}_SECRET"))
        && !id.trim().is_empty()
    {
        let found = std::thread::scope(|s| {
            s.spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(anyhow::Error::from)?
                    .block_on(async {
                        let conf = aws_config().await;
                        motcua_aws::secrets::resolve(
                            &aws_sdk_secretsmanager::Client::new(&conf),
                            &[env],
                            |k| std::env::var(k).ok(),
                        )
                        .await
                        .map_err(anyhow::Error::msg)
                    })
            })
            .join()
            .map_err(|_| anyhow::anyhow!("reading {env}_SECRET"))?
        })?;
        if let Some(v) = found.get(env) {
            return Ok(v.clone());
        }
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let path = data_dir.join(file);
    if let Ok(s) = std::fs::read_to_string(&path) {
        return Ok(s.trim().to_owned());
    }
    let key = STANDARD.encode(rand::random::<[u8; 32]>());
    let tmp = data_dir.join(format!("{file}.{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        f.write_all(key.as_bytes())?;
    }
    // Two processes racing here: the first rename wins, both then read the same file.
    if std::fs::hard_link(&tmp, &path).is_err() && !path.exists() {
        std::fs::rename(&tmp, &path)?;
    }
    let _ = std::fs::remove_file(&tmp);
    Ok(std::fs::read_to_string(&path)?.trim().to_owned())
}

fn local_config(data_dir: &Path) -> anyhow::Result<SubmissionConfig> {
    let secret = dev_secret(data_dir)?;
    // The identity function's key: paper dossiers are filed under the applicant's owner
    // reference.
    let hash_key = secret_file(data_dir, "id-hash.key", "MOTCUA_ID_HASH_KEY")?;
    let cors = std::env::var("MOTCUA_CORS_ORIGINS").unwrap_or_else(|_| "*".into());
    SubmissionConfig::from_lookup(|k| match k {
        "MOTCUA_JWT_SECRETS" => Some(secret.clone()),
        "MOTCUA_JWT_ISSUER" => Some(LOCAL_ISSUER.into()),
        "MOTCUA_CORS_ORIGINS" => Some(cors.clone()),
        "MOTCUA_ID_HASH_KEY" => Some(hash_key.clone()),
        other => std::env::var(other).ok(),
    })
    .map_err(|e| anyhow::anyhow!("{e}"))
}

/// The ES256 (P-256) signing keys of account tokens, in `data_dir/signing-keys.json` (created on
/// first use); `MOTCUA_SIGNING_KEYS` overrides them.
pub fn signing_keys(data_dir: &Path) -> anyhow::Result<Vec<motcua_http::SigningKey>> {
    let json = match std::env::var("MOTCUA_SIGNING_KEYS") {
        Ok(j) => j,
        Err(_) => {
            let path = data_dir.join("signing-keys.json");
            if !path.exists() {
                std::fs::create_dir_all(data_dir)?;
                let kid = format!("local-{}", jiff::Timestamp::now().as_second());
                let json =
                    motcua_http::signing_keys_to_json(&[motcua_http::SigningKey::generate(&kid)]);
                let tmp = data_dir.join(format!("signing-keys.json.{}", std::process::id()));
                std::fs::write(&tmp, json)?;
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
                }
                if std::fs::hard_link(&tmp, &path).is_err() && !path.exists() {
                    std::fs::rename(&tmp, &path)?;
                }
                let _ = std::fs::remove_file(&tmp);
            }
            std::fs::read_to_string(&path)?
        }
    };
    motcua_http::signing_keys_from_json(&json).map_err(|e| anyhow::anyhow!("signing keys: {e}"))
}

/// Mints a development token that a runner on the same data directory accepts.
pub fn token(o: &TokenOptions) -> anyhow::Result<String> {
    let role = match o.role.as_str() {
        "citizen" => Role::Citizen,
        "officer" => Role::Officer,
        "admin" => Role::Admin,
        "leader" => Role::Leader,
        other => {
            anyhow::bail!("--role must be citizen, officer, leader or admin, not '{other}'")
        }
    };
    let agency = o
        .agency
        .as_deref()
        .map(|a| AgencyCode::parse(a).map_err(|e| anyhow::anyhow!("--agency {e}")))
        .transpose()?;
    if role == Role::Officer && agency.is_none() {
        anyhow::bail!("an officer token needs --agency (e.g. --agency 000.00.04.H42)");
    }
    let cfg = local_config(&o.data_dir)?;
    let sub = match (&o.sub, &o.citizen_id) {
        (Some(s), _) => s.clone(),
        (None, Some(id)) => {
            // The subject is a keyed hash of the number: stable per person, and the number
            // itself never travels in the token.
            let id = CitizenId::parse(id).map_err(|e| anyhow::anyhow!("--citizen-id {e}"))?;
            let mut h = Sha256::new();
            h.update(&cfg.jwt_secrets[0]);
            h.update(id.as_str().as_bytes());
            format!("cid-{}", &hex::encode(h.finalize())[..24])
        }
        (None, None) => format!("dev-{}", role.as_str()),
    };
    let now = jiff::Timestamp::now().as_second();
    Ok(cfg
        .authenticator()
        .mint(&sub, role, agency.as_ref(), now, o.ttl_secs))
}

/// Seeds the demo catalogue into an empty catalogue.
async fn seed_catalogue(ports: &SubmissionPorts) -> anyhow::Result<()> {
    let err = |e: motcua_ports::StoreError| anyhow::anyhow!("{e}");
    if ports.catalogue.procedures().await.map_err(err)?.is_empty() {
        for p in demo_catalogue() {
            ports.catalogue.put_procedure(&p).await.map_err(err)?;
        }
    }
    Ok(())
}

/// The application state of every function on the given ports.
pub fn state(ports: SubmissionPorts, data_dir: &Path) -> anyhow::Result<AppState> {
    let config = local_config(data_dir)?;
    let offset_secs = match std::env::var("MOTCUA_CLOCK_OFFSET_SECS") {
        Ok(s) => s
            .parse::<i64>()
            .context("MOTCUA_CLOCK_OFFSET_SECS must be a whole number of seconds")?,
        Err(_) => 0,
    };
    if offset_secs != 0 {
        tracing::warn!(offset_secs, "clock shifted for testing deadlines");
    }
    let auth: Authenticator = config
        .authenticator()
        .with_signing_keys(&signing_keys(data_dir)?);
    // An erased account's tokens are refused at once, by every function.
    auth.check_revocations(ports.revoked.clone());
    Ok(AppState {
        ports,
        auth: Arc::new(auth),
        clock: Arc::new(SystemClock { offset_secs }),
        calendar: WorkingCalendar::vietnam(),
        config: Arc::new(config),
    })
}

/// The embedded backend in `data_dir`: ports, and the in-process bus its outbox is relayed
/// to ([`relay_outbox`]).
pub async fn embedded(
    data_dir: &Path,
) -> anyhow::Result<(AppState, Arc<InProcessBus>, EmbeddedStore)> {
    let store = EmbeddedStore::open(data_dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let ports = store.submission_ports();
    seed_catalogue(&ports).await?;
    let bus = Arc::new(InProcessBus::default());
    Ok((state(ports, data_dir)?, bus, store))
}

/// Relays the outbox to the in-process bus (and its subscribers) every 200 ms. Started
/// after the subscribers are in, so an event left from an earlier run reaches them too.
pub fn relay_outbox(outbox: Arc<dyn motcua_ports::Outbox>, bus: Arc<InProcessBus>) {
    tokio::spawn(async move {
        loop {
            if let Err(e) = motcua_relay::drain_outbox(outbox.as_ref(), bus.as_ref()).await {
                tracing::warn!(error = %e, "relaying the outbox failed");
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    });
}

/// Names of the AWS resources the runner uses with `--backend aws`.
#[derive(Debug, Clone)]
pub struct AwsNames {
    /// `MOTCUA_TABLE` (default `motcua-local`): dossiers, catalogue, outbox.
    pub table: String,
    /// `MOTCUA_IDENTITY_TABLE` (default `<table>-identity`): accounts, sign-ins, audit, as
    /// on AWS, where each function may touch only its own table.
    pub identity_table: String,
    /// `MOTCUA_EVENT_BUS` (default `motcua-local`).
    pub bus: String,
}

impl AwsNames {
    pub fn from_env() -> AwsNames {
        let table = std::env::var("MOTCUA_TABLE").unwrap_or_else(|_| "motcua-local".into());
        AwsNames {
            identity_table: std::env::var("MOTCUA_IDENTITY_TABLE")
                .unwrap_or_else(|_| format!("{table}-identity")),
            table,
            bus: std::env::var("MOTCUA_EVENT_BUS").unwrap_or_else(|_| "motcua-local".into()),
        }
    }
}

/// The SDK configuration: the standard chain, or LocalStack's dummy credentials when an
/// `AWS_ENDPOINT_URL` is set and no credentials are.
async fn aws_config() -> aws_config::SdkConfig {
    if std::env::var("AWS_ENDPOINT_URL").is_ok() && std::env::var("AWS_ACCESS_KEY_ID").is_err() {
        motcua_aws::localstack::config().await
    } else {
        motcua_aws::default_chain_config().await
    }
}

/// The AWS backend (DynamoDB, EventBridge; LocalStack when `AWS_ENDPOINT_URL` points at
/// it): provisions the table and bus if missing, seeds the catalogue, and follows the
/// table's stream to relay events to the bus, as the relay function does on AWS. Returns
/// the submission state and the identity table's store.
pub async fn aws(data_dir: &Path, names: &AwsNames) -> anyhow::Result<(AppState, DynamoStore)> {
    let conf = aws_config().await;
    let store = DynamoStore::new(
        motcua_aws::aws_sdk_dynamodb::Client::new(&conf),
        names.table.clone(),
    );
    store
        .ensure_table()
        .await
        .map_err(|e| anyhow::anyhow!("table {}: {e}", names.table))?;
    let identity_store = DynamoStore::new(
        motcua_aws::aws_sdk_dynamodb::Client::new(&conf),
        names.identity_table.clone(),
    );
    identity_store
        .ensure_table()
        .await
        .map_err(|e| anyhow::anyhow!("table {}: {e}", names.identity_table))?;
    let publisher = EventBridgePublisher::new(
        motcua_aws::aws_sdk_eventbridge::Client::new(&conf),
        names.bus.clone(),
    );
    publisher
        .ensure_bus()
        .await
        .map_err(|e| anyhow::anyhow!("bus {}: {e}", names.bus))?;
    let mut ports = store.submission_ports();
    // Revoked subjects are the identity function's items: read from its table.
    ports.revoked = Arc::new(identity_store.clone());
    seed_catalogue(&ports).await?;
    let stream_arn = store
        .client()
        .describe_table()
        .table_name(&names.table)
        .send()
        .await
        .context("describing the table")?
        .table()
        .and_then(|t| t.latest_stream_arn())
        .map(String::from)
        .context("the table has no stream")?;
    let streams = aws_sdk_dynamodbstreams::Client::new(&conf);
    let outbox = ports.outbox.clone();
    tokio::spawn(async move {
        if let Err(e) = motcua_relay::poll_stream(
            streams,
            stream_arn,
            Arc::new(publisher),
            outbox,
            std::time::Duration::from_millis(200),
        )
        .await
        {
            tracing::error!(error = %e, "the stream relay stopped");
        }
    });
    let state = state(ports, data_dir)?;
    // Signing keys from a Secrets Manager secret (the template's SigningKeysSecret), as the
    // identity function on AWS reads them, instead of the data directory's key file.
    if let Ok(secret) = std::env::var("MOTCUA_SIGNING_KEYS_SECRET") {
        motcua_identity::keys::load_and_follow(
            aws_sdk_secretsmanager::Client::new(&conf),
            secret,
            state.auth.clone(),
        )
        .await
        .context("loading the signing keys from MOTCUA_SIGNING_KEYS_SECRET")?;
    }
    Ok((state, identity_store))
}

/// The simulators a runner started (they stop when dropped), and the SMS it keeps.
#[derive(Default)]
pub struct Simulators {
    pub registry: Option<motcua_registry::simulator::Simulator>,
    pub sso: Option<motcua_registry::sso::SsoSimulator>,
    /// The national e-ID (OpenID Connect provider) simulator.
    pub eid: Option<motcua_registry::eid::EidSimulator>,
    /// Sign-in codes "sent" by SMS, readable at `GET /dev/messages`.
    pub messages: DevMessages,
}

/// The identity function's state on the given ports, with the registry at
/// `MOTCUA_REGISTRY_URL`, or else a registry simulator started here; and the province SSO
/// at `MOTCUA_SSO_ISSUER` / `MOTCUA_SSO_JWKS_URL`, or else an SSO simulator started here
/// (on `sso_sim_port` if free, any port otherwise).
pub async fn identity(
    data_dir: &Path,
    submission: &AppState,
    ports: motcua_ports::identity::IdentityPorts,
    addr: std::net::SocketAddr,
    sso_sim_port: u16,
) -> anyhow::Result<(IdentityState, Simulators)> {
    let hash_key = secret_file(data_dir, "id-hash.key", "MOTCUA_ID_HASH_KEY")?;
    let (url, api_key, sim) = match std::env::var("MOTCUA_REGISTRY_URL") {
        Ok(url) => (url, std::env::var("MOTCUA_REGISTRY_API_KEY").ok(), None),
        Err(_) => {
            let sim = motcua_registry::simulator::start(
                motcua_registry::simulator::Fixture::demo(),
                "local-simulator",
                0,
            )
            .await?;
            (
                sim.base_url(),
                Some("local-simulator".to_owned()),
                Some(sim),
            )
        }
    };
    let config = IdentityConfig::from_lookup(|k| match k {
        "MOTCUA_ID_HASH_KEY" => Some(hash_key.clone()),
        "MOTCUA_REGISTRY_URL" => Some(url.clone()),
        "MOTCUA_REGISTRY_API_KEY" => api_key.clone(),
        other => std::env::var(other).ok(),
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let registry = Arc::new(
        motcua_registry::HttpRegistry::new(config.registry_client()).map_err(anyhow::Error::msg)?,
    );
    // The account master key: in KMS where MOTCUA_KMS_KEY_ID names one (the template's
    // AccountMasterKey, on LocalStack or AWS), else a key file in the data directory.
    let vault: Arc<dyn motcua_ports::identity::KeyVault> = match std::env::var("MOTCUA_KMS_KEY_ID")
    {
        Ok(key_id) => Arc::new(motcua_aws::kms::KmsKeyVault::new(
            motcua_aws::aws_sdk_kms::Client::new(&aws_config().await),
            key_id,
        )),
        Err(_) => {
            let master = secret_file(data_dir, "account.key", "MOTCUA_ACCOUNT_KEY")?;
            Arc::new(
                motcua_identity::sealed::LocalKeyVault::new(
                    base64::engine::general_purpose::STANDARD
                        .decode(master.trim())
                        .context("MOTCUA_ACCOUNT_KEY must be base64")?,
                )
                .map_err(anyhow::Error::msg)?,
            )
        }
    };
    let ports = motcua_identity::sealed::sealed_ports(ports, vault);
    let (sso, sso_sim) = match motcua_http::SsoTrust::from_vars(|k| std::env::var(k).ok())
        .map_err(anyhow::Error::msg)?
    {
        Some(trust) => (trust, None),
        None => {
            let sim = match motcua_registry::sso::start(sso_sim_port).await {
                Ok(sim) => sim,
                Err(_) => motcua_registry::sso::start(0).await?,
            };
            let trust = motcua_http::SsoTrust::from_vars(|k| match k {
                "MOTCUA_SSO_ISSUER" => Some(sim.issuer().to_owned()),
                "MOTCUA_SSO_JWKS_URL" => Some(sim.jwks_url()),
                other => std::env::var(other).ok(),
            })
            .map_err(anyhow::Error::msg)?
            .expect("issuer and JWKS URL are set");
            (trust, Some(sim))
        }
    };
    if let Err(e) = sso.jwks.refresh().await {
        tracing::warn!(error = %e, "the SSO's JWKS could not be fetched at start; retried on first use");
    }
    let messages = DevMessages::default();
    let (eid, eid_sim) = eid(data_dir, addr, sso_sim_port).await?;
    Ok((
        IdentityState {
            ports,
            population: registry.clone(),
            business: registry,
            auth: submission.auth.clone(),
            clock: submission.clock.clone(),
            config: Arc::new(config),
            sso: Some(Arc::new(sso)),
            codes: Arc::new(motcua_ports::notifications::CodesBySms(Arc::new(
                messages.sender(motcua_domain::notify::Channel::Sms),
            ))),
            eid: eid.map(Arc::new),
        },
        Simulators {
            registry: sim,
            sso: sso_sim,
            eid: eid_sim,
            messages,
        },
    ))
}

/// The national e-ID: the provider at `MOTCUA_EID_ISSUER` (with `MOTCUA_EID_CLIENT_ID`, the
/// client key in `MOTCUA_EID_CLIENT_KEY`, …), or else an e-ID simulator started here (on
/// the port after the SSO simulator's if free) with this runner registered as its client:
/// its key in `<data dir>/eid-client-key.json`, its callback on `addr`, and `addr` itself
/// (plus `MOTCUA_PORTAL_ORIGINS`) as a portal origin.
async fn eid(
    data_dir: &Path,
    addr: std::net::SocketAddr,
    sso_sim_port: u16,
) -> anyhow::Result<(
    Option<motcua_identity::EidRelyingParty>,
    Option<motcua_registry::eid::EidSimulator>,
)> {
    if std::env::var("MOTCUA_EID_ISSUER").is_ok() {
        let key = std::env::var("MOTCUA_EID_CLIENT_KEY")
            .ok()
            .map(|json| motcua_identity::client_key_from_json(&json))
            .transpose()
            .map_err(anyhow::Error::msg)?;
        let rp = motcua_identity::EidRelyingParty::from_vars(|k| std::env::var(k).ok(), key)
            .map_err(anyhow::Error::msg)?;
        return Ok((rp, None));
    }
    let fixture = motcua_registry::simulator::Fixture::demo();
    let port = if sso_sim_port == 0 {
        0
    } else {
        sso_sim_port.saturating_add(1)
    };
    let sim = match motcua_registry::eid::start(fixture.clone(), port).await {
        Ok(sim) => sim,
        Err(_) => motcua_registry::eid::start(fixture, 0).await?,
    };
    let key_file = data_dir.join("eid-client-key.json");
    if !key_file.exists() {
        let json = motcua_http::signing_keys_to_json(&[motcua_http::SigningKey::generate(
            "motcua-local-client",
        )]);
        let tmp = data_dir.join(format!("eid-client-key.json.{}", std::process::id()));
        std::fs::write(&tmp, json)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        }
        if std::fs::hard_link(&tmp, &key_file).is_err() && !key_file.exists() {
            std::fs::rename(&tmp, &key_file)?;
        }
        let _ = std::fs::remove_file(&tmp);
    }
    let key = motcua_identity::client_key_from_json(&std::fs::read_to_string(&key_file)?)
        .map_err(anyhow::Error::msg)?;
    let redirect = format!("http://{addr}/v1/identity/callback");
    sim.register(motcua_registry::eid::EidClient {
        client_id: "motcua-local".into(),
        redirect_uris: vec![redirect.clone()],
        jwk: key.jwk(),
    });
    let mut origins = format!("http://{addr}");
    if let Ok(more) = std::env::var("MOTCUA_PORTAL_ORIGINS") {
        origins = format!("{origins},{more}");
    }
    let issuer = sim.issuer().to_owned();
    let rp = motcua_identity::EidRelyingParty::from_vars(
        |k| match k {
            "MOTCUA_EID_ISSUER" => Some(issuer.clone()),
            "MOTCUA_EID_CLIENT_ID" => Some("motcua-local".into()),
            "MOTCUA_EID_REDIRECT_URI" => Some(redirect.clone()),
            "MOTCUA_PORTAL_ORIGINS" => Some(origins.clone()),
            // The simulator knows its fixture people by number: tests and curl skip its page.
            "MOTCUA_EID_LOGIN_HINT" => Some("pass".into()),
            other => std::env::var(other).ok(),
        },
        Some(key),
    )
    .map_err(anyhow::Error::msg)?;
    Ok((rp, Some(sim)))
}

/// One router serving every function, under the shared HTTP layers, and the runner's own
/// `GET /dev/messages` and `GET /dev/portal`.
pub fn app(
    state: AppState,
    identity: IdentityState,
    uploads: (
        motcua_uploads::UploadsState,
        Option<Arc<motcua_embedded::LocalObjects>>,
    ),
    messages: &DevMessages,
    notifications: motcua_notifications::NotifyState,
    payments: motcua_payments::PayState,
    reports: motcua_reports::ReportState,
) -> axum::Router {
    let config = state.config.clone();
    // The presigned URLs of a local objects folder are served here (S3 serves its own).
    let objects = match uploads.1 {
        Some(local) => uploads::routes(&uploads.0, local),
        None => axum::Router::new(),
    };
    // Submission's routes include /v1/openapi.json: the one document of every function.
    let routes = motcua_submission::routes(state)
        .merge(motcua_identity::routes(identity))
        .merge(objects)
        .merge(motcua_uploads::routes(uploads.0))
        .merge(motcua_notifications::routes(notifications))
        .merge(motcua_payments::routes(payments))
        .merge(motcua_reports::routes(reports))
        .merge(messages.routes())
        .merge(dashboard::routes())
        .merge(portal::routes());
    motcua_submission::with_layers(routes, &config)
}

/// Serves every function until Ctrl-C / SIGTERM.
pub fn serve(o: ServeOptions) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let (state, backend, identity_ports, s3_table, notify_ports, payment_store, kpi_store, bus) = match o.backend {
            Backend::Embedded => {
                let (state, bus, store) = embedded(&o.data_dir).await?;
                (
                    state,
                    format!("embedded (SQLite in {})", o.data_dir.display()),
                    store.identity_ports(),
                    None,
                    store.notification_ports(),
                    store.payment_ports(Default::default()).payments,
                    Arc::new(store.clone()) as Arc<dyn motcua_ports::reports::KpiStore>,
                    Some(bus),
                )
            }
            Backend::Aws => {
                let names = AwsNames::from_env();
                let endpoint = std::env::var("AWS_ENDPOINT_URL")
                    .unwrap_or_else(|_| "the AWS default endpoints".into());
                let (state, store) = aws(&o.data_dir, &names).await?;
                let table = DynamoStore::new(
                    motcua_aws::aws_sdk_dynamodb::Client::new(&aws_config().await),
                    names.table.clone(),
                );
                (
                    state,
                    format!(
                        "aws (tables {} and {}, bus {}, {endpoint})",
                        names.table, names.identity_table, names.bus
                    ),
                    store.identity_ports(),
                    Some(names.table.clone()),
                    table.notification_ports(),
                    table.payment_ports(Default::default()).payments,
                    Arc::new(table.clone()) as Arc<dyn motcua_ports::reports::KpiStore>,
                    None,
                )
            }
        };
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", o.port))
            .await
            .with_context(|| format!("binding 127.0.0.1:{}", o.port))?;
        let addr = listener.local_addr()?;
        let sso_port = if o.port == 0 { 0 } else { o.port.saturating_add(1) };
        let (identity_state, simulators) =
            identity(&o.data_dir, &state, identity_ports, addr, sso_port).await?;
        let (uploads_state, objects) = match &s3_table {
            None => {
                let (st, local) = uploads::state(&o.data_dir, &state, &format!("http://{addr}"))?;
                (st, Some(local))
            }
            Some(table) => (uploads::aws_state(&aws_config().await, &state, table).await?, None),
        };
        uploads::sweep_every_minute(&uploads_state);
        let aws_conf = match &bus {
            None => Some(aws_config().await),
            Some(_) => None,
        };
        let senders = notify::senders(&simulators.messages, aws_conf.as_ref()).await?;
        let notify_state = notify::state(
            &state,
            identity_state.ports.accounts.clone(),
            notify_ports,
            senders,
            addr,
        )?;
        let report_state = reports::state(&state, kpi_store)?;
        match (&bus, &aws_conf) {
            (Some(bus), _) => {
                bus.subscribe(Arc::new(reports::Consumer(report_state.clone())));
                bus.subscribe(Arc::new(notify::Consumer(notify_state.clone())));
                relay_outbox(state.ports.outbox.clone(), bus.clone());
            }
            (None, Some(conf)) => {
                let queue = notify::aws_queue(conf, &AwsNames::from_env().bus).await?;
                notify::poll_queue(conf, queue, &notify_state);
                reports::poll_aws(conf, &AwsNames::from_env().bus, &report_state).await?;
            }
            (None, None) => unreachable!("one backend or the other"),
        }
        notify::dispatch_continuously(&notify_state, std::time::Duration::from_millis(200), 64);
        notify::digest_every_morning(&notify_state);
        let (pay_state, pay_sim) = payments::state(&o.data_dir, &state, payment_store, addr).await?;
        payments::reconcile_continuously(&pay_state, std::time::Duration::from_secs(60));
        reports::catch_up(&report_state);
        println!("motcua-local listening on http://{addr}");
        println!("  backend: {backend}");
        match &simulators.registry {
            Some(sim) => println!("  registry: simulator at {} (fictional people in shared/registry/data/fixture.json)", sim.base_url()),
            None => println!("  registry: {}", identity_state.config.registry_url),
        }
        match &simulators.sso {
            Some(sim) => println!(
                "  province SSO: simulator at {} (officer sign-in: curl -s -X POST {}/_sim/token -d '{{\"sub\":\"officer-1\",\"roles\":[\"motcua-officer\"],\"agency\":\"000.00.04.H42\"}}' -H 'Content-Type: application/json', then POST the token as subject_token to /v1/identity/sso/exchange)",
                sim.issuer(),
                sim.issuer()
            ),
            None => println!(
                "  province SSO: {}",
                identity_state.sso.as_ref().map(|s| s.issuer.as_str()).unwrap_or("none")
            ),
        }
        match &simulators.eid {
            Some(sim) => println!(
                "  national e-ID: simulator at {} (sign in: open http://{addr}/dev/portal in a browser)",
                sim.issuer()
            ),
            None => println!(
                "  national e-ID: {}",
                identity_state.eid.as_ref().map(|e| e.issuer.as_str()).unwrap_or("none")
            ),
        }
        match &uploads_state.config.scanner {
            motcua_uploads::ScannerSetting::Clamd(a) => println!("  uploads: scanned by clamd at {a}"),
            motcua_uploads::ScannerSetting::None => println!("  uploads: NOT scanned for malware (MOTCUA_SCANNER=none; records say scan: skipped; set MOTCUA_SCANNER=clamd:HOST:PORT)"),
        }
        match &pay_sim {
            Some(sim) => println!(
                "  payments: VNPay, MoMo and the national platform simulated at {} (pay in a browser at the redirect_url POST /v1/dossiers/<id>/payments answers; what they sent: {}/_sim/callbacks)",
                sim.base_url(),
                sim.base_url()
            ),
            None => println!("  payments: the providers named in the environment"),
        }
        println!("  API document: http://{addr}/v1/openapi.json");
        println!(
            "  KPI dashboard: http://{addr}/dashboard/#token=$(cargo run -q -p motcua-local -- token --role leader --sub demo-leader --data-dir {}) (fill a year first: motcua-local seed --dossiers 50000)",
            o.data_dir.display()
        );
        println!(
            "  get a citizen token:  TOKEN=$(cargo run -q -p motcua-local -- token --role citizen --sub demo-citizen --data-dir {})",
            o.data_dir.display()
        );
        println!(
            "  submit a dossier:     curl -s -X POST http://{addr}/v1/dossiers -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d @events/api/submit-criminal-record.json"
        );
        std::io::stdout().flush()?;
        println!(
            "  messages: {} (kept ones at http://{addr}/dev/inbox and /dev/messages); quiet hours {}",
            motcua_notifications::lambda::describe(&notify_state),
            std::env::var("MOTCUA_QUIET_HOURS").unwrap_or_else(|_| "21:00-07:00".into())
        );
        axum::serve(
            listener,
            app(
                state,
                identity_state,
                (uploads_state, objects),
                &simulators.messages,
                notify_state,
                pay_state,
                report_state,
            ),
        )
            .with_graceful_shutdown(shutdown())
            .await?;
        Ok(())
    })
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let term = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
