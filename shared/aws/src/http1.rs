//! The SDK's HTTP client: HTTP/1.1 on hyper, TLS by rustls on ring, and nothing else.
//!
//! The SDK's own default client also speaks HTTP/2 (it compiles `h2` in whatever one asks
//! of it) and keeps a connection pool of its own beside hyper's; none of the AWS APIs the
//! functions call need HTTP/2, and the two were ~0.3 MB of every package. Here:
//! - one hyper client per connection setting, built at the first request (the system's
//!   root certificates are read and parsed then, once per process, not before the function
//!   can ask for its first event);
//! - the connect timeout on the TCP connector, the read timeout around the answer's head;
//! - errors told apart as the SDK's retry strategy needs them: failing to connect, a
//!   connection that broke or timed out (transient: retried); a certificate or handshake
//!   refused, a request that could not be sent as built (not retried).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::rt::TokioExecutor;

type Https = hyper_rustls::HttpsConnector<TcpConnector>;

/// Timeouts a connector was built for: (connect, read).
type Setting = (Option<Duration>, Option<Duration>);

/// An [`HttpClient`] for the SDK: one [`Connector`] per timeout setting.
#[derive(Debug, Default)]
pub struct Http1Client {
    connectors: Mutex<HashMap<Setting, SharedHttpConnector>>,
}

impl HttpClient for Http1Client {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let setting = (settings.connect_timeout(), settings.read_timeout());
        let mut connectors = self.connectors.lock().unwrap_or_else(|e| e.into_inner());
        connectors
            .entry(setting)
            .or_insert_with(|| {
                SharedHttpConnector::new(Connector {
                    client: OnceLock::new(),
                    connect_timeout: setting.0,
                    read_timeout: setting.1,
                })
            })
            .clone()
    }
}

#[derive(Debug)]
struct Connector {
    client: OnceLock<Client<Https, SdkBody>>,
    connect_timeout: Option<Duration>,
    read_timeout: Option<Duration>,
}

/// The system's root certificates (`SSL_CERT_FILE` / `SSL_CERT_DIR` honoured), read once.
fn roots() -> Arc<rustls::RootCertStore> {
    static ROOTS: OnceLock<Arc<rustls::RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut store = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!(error = %e, "a root certificate could not be read");
            }
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                tracing::error!("no root certificate found: HTTPS calls will fail");
            }
            Arc::new(store)
        })
        .clone()
}

fn build(connect_timeout: Option<Duration>) -> Client<Https, SdkBody> {
    let mut tcp = TcpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(connect_timeout);
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default TLS versions")
    .with_root_certificates(roots())
    .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp);
    Client::builder(TokioExecutor::new()).build(https)
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self
            .client
            .get_or_init(|| build(self.connect_timeout))
            .clone();
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let request = request
                .try_into_http1x()
                .map_err(|e| ConnectorError::user(e.into()))?;
            let answer = client.request(request);
            let response = match read_timeout {
                Some(t) => tokio::time::timeout(t, answer)
                    .await
                    .map_err(|e| ConnectorError::timeout(e.into()))?,
                None => answer.await,
            }
            .map_err(classify)?;
            HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// What the SDK's retry strategy must know of a failed exchange.
fn classify(e: hyper_util::client::legacy::Error) -> ConnectorError {
    // A certificate or handshake the client refuses: another attempt would meet the same.
    if refused_by_tls(std::error::Error::source(&e)) {
        return ConnectorError::other(e.into(), None);
    }
    if e.is_connect() {
        return ConnectorError::io(e.into());
    }
    let user = std::error::Error::source(&e)
        .and_then(|s| s.downcast_ref::<hyper::Error>())
        .is_some_and(|h| h.is_user());
    if user {
        ConnectorError::user(e.into())
    } else {
        ConnectorError::io(e.into())
    }
}

/// Whether a rustls error is in the chain. It travels inside (nested) io::Errors, whose
/// `source` skips the error they wrap: those are opened with `get_ref`.
fn refused_by_tls(mut e: Option<&(dyn std::error::Error + 'static)>) -> bool {
    while let Some(x) = e {
        if x.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        e = match x.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|i| i as &(dyn std::error::Error + 'static)),
            None => x.source(),
        };
    }
    false
}
