//! The SDK's HTTP client: HTTP/1.1 on hyper, TLS by rustls on ring, and nothing else.
//!
//! The SDK's own default client also speaks HTTP/2 (it compiles `h2` in whatever one asks
//! of it) and keeps a connection pool of its own beside hyper's; none of the AWS APIs the
//! functions call need HTTP/2, and the two were ~0.3 MB of every package. Here:
//! - one hyper client per connection setting, built at the first request (the system's
//!   root certificates are read and parsed then, once per process, not before the function
//!   can ask for its first event);
//! - the connect timeout over the whole connect (DNS, TCP and the TLS handshake), the read
//!   timeout around the answer's head;
//! - each exchange's connection handed to the SDK, which closes it after a transient error
//!   (a 5xx, a reset) so the retry goes out on a new one;
//! - errors told apart as the SDK's retry strategy needs them: failing to connect, a
//!   connection that broke, a timeout (transient: retried); a certificate or handshake
//!   refused while connecting, a request that could not be sent as built (not retried).

use std::collections::HashMap;
use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use aws_smithy_runtime_api::client::connection::{CaptureSmithyConnection, ConnectionMetadata};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::client::legacy::connect::capture_connection;
use hyper_util::rt::{TokioExecutor, TokioIo};

type Https = hyper_rustls::HttpsConnector<TcpConnector>;
type BoxError = Box<dyn StdError + Send + Sync>;
type Stream = hyper_rustls::MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>;

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
    client: OnceLock<Client<Timed, SdkBody>>,
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

/// The HTTPS connector under one limit for the whole connect: DNS, TCP and the TLS
/// handshake (a TCP-only limit let a server that accepts and never answers the handshake
/// hold a call for ever where no attempt timeout is set).
#[derive(Clone, Debug)]
struct Timed {
    inner: Https,
    limit: Option<Duration>,
}

/// The connect did not finish within its limit.
#[derive(Debug)]
struct ConnectTimedOut(Duration);

impl std::fmt::Display for ConnectTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "connect (DNS, TCP, TLS) timed out after {:?}", self.0)
    }
}

impl StdError for ConnectTimedOut {}

impl tower_service::Service<hyper::Uri> for Timed {
    type Response = Stream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: hyper::Uri) -> Self::Future {
        let (connecting, limit) = (self.inner.call(uri), self.limit);
        Box::pin(async move {
            match limit {
                Some(t) => tokio::time::timeout(t, connecting)
                    .await
                    .map_err(|_| BoxError::from(ConnectTimedOut(t)))?,
                None => connecting.await,
            }
        })
    }
}

fn build(connect_timeout: Option<Duration>) -> Client<Timed, SdkBody> {
    let mut tcp = TcpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
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
    Client::builder(TokioExecutor::new()).build(Timed {
        inner: https,
        limit: connect_timeout,
    })
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self
            .client
            .get_or_init(|| build(self.connect_timeout))
            .clone();
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let mut request = request
                .try_into_http1x()
                .map_err(|e| ConnectorError::user(e.into()))?;
            // The SDK asks for the connection after a transient error, to close it.
            let captured = capture_connection(&mut request);
            if let Some(smithy) = request.extensions().get::<CaptureSmithyConnection>() {
                smithy.set_connection_retriever(move || {
                    captured.connection_metadata().as_ref()?;
                    let captured = captured.clone();
                    Some(
                        ConnectionMetadata::builder()
                            .proxied(false)
                            .poison_fn(move || {
                                if let Some(c) = captured.connection_metadata().as_ref() {
                                    c.poison();
                                }
                            })
                            .build(),
                    )
                });
            }
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
    let source = StdError::source(&e);
    if e.is_connect() {
        if in_chain::<ConnectTimedOut>(source) {
            return ConnectorError::timeout(e.into());
        }
        // A certificate or handshake refused: another attempt would meet the same.
        if in_chain::<rustls::Error>(source) {
            return ConnectorError::other(e.into(), None);
        }
        return ConnectorError::io(e.into());
    }
    match source.and_then(|s| s.downcast_ref::<hyper::Error>()) {
        Some(h) if h.is_user() => ConnectorError::user(e.into()),
        Some(_) => ConnectorError::io(e.into()),
        // The client refused the request as built (an unsupported version, say).
        None => ConnectorError::user(e.into()),
    }
}

/// Whether an error of type `T` is in the chain. Errors travel inside (nested)
/// io::Errors, whose `source` skips the error they wrap: those are opened with `get_ref`.
fn in_chain<T: StdError + 'static>(mut e: Option<&(dyn StdError + 'static)>) -> bool {
    while let Some(x) = e {
        if x.is::<T>() {
            return true;
        }
        e = match x.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|i| i as &(dyn StdError + 'static)),
            None => x.source(),
        };
    }
    false
}
