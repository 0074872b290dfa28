//! The SDK's HTTP client (`motcua_aws::http1`) over TLS, as on AWS: LocalStack behind a
//! TLS-terminating proxy on loopback whose certificate is signed by a test CA
//! (`tests/tls/`, made for these tests only). The client must reach DynamoDB through it
//! when the CA is trusted (`SSL_CERT_FILE`), and refuse a server whose certificate is not.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

fn tls(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/tls")
        .join(name)
}

/// A TLS proxy to `upstream` presenting `cert`/`key`: its `https://localhost:port` URL and
/// how many connections it accepted.
async fn tls_proxy(cert: &str, key: &str, upstream: String) -> (String, Arc<AtomicUsize>) {
    let (url, accepted) = tls_proxy_on("127.0.0.1", cert, key, upstream).await;
    (url.replace("127.0.0.1", "localhost"), accepted)
}

/// The same, listening on `ip`; its `https://ip:port` URL.
async fn tls_proxy_on(
    ip: &str,
    cert: &str,
    key: &str,
    upstream: String,
) -> (String, Arc<AtomicUsize>) {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(tls(cert))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(tls(key)).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
            tokio::spawn(async move {
                let Ok(mut inbound) = acceptor.accept(inbound).await else {
                    return;
                };
                if let Ok(mut out) = tokio::net::TcpStream::connect(&upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                }
            });
        }
    });
    (format!("https://{ip}:{port}"), accepted)
}

async fn client(endpoint: &str) -> motcua_aws::aws_sdk_dynamodb::Client {
    client_with(endpoint, motcua_aws::loader()).await
}

async fn client_with(
    endpoint: &str,
    loader: aws_config::ConfigLoader,
) -> motcua_aws::aws_sdk_dynamodb::Client {
    let conf = loader
        .endpoint_url(endpoint)
        .region(motcua_aws::aws_sdk_dynamodb::config::Region::new(
            "us-east-1",
        ))
        .credentials_provider(motcua_aws::aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .load()
        .await;
    motcua_aws::aws_sdk_dynamodb::Client::new(&conf)
}

/// Makes the test CA the only trusted root and LocalStack answer; LocalStack's `host:port`.
/// Each test runs in a process of its own (nextest): the roots are read once, at the first
/// request, which comes after this.
fn trust_the_test_ca() -> String {
    motcua_aws::localstack::ensure_running().expect("LocalStack");
    // SAFETY: set before any thread of this test reads the environment.
    unsafe { std::env::set_var("SSL_CERT_FILE", tls("ca.pem")) };
    motcua_aws::localstack::address()
}

#[tokio::test]
async fn the_sdk_speaks_tls_to_a_trusted_server_and_refuses_another() {
    let upstream = trust_the_test_ca();
    let (trusted, connections) = tls_proxy("server.pem", "server.key", upstream.clone()).await;
    let ddb = client(&trusted).await;
    let tables = ddb.list_tables().send().await;
    assert!(tables.is_ok(), "{tables:?}");
    // Later calls reuse the connection.
    for _ in 0..3 {
        ddb.list_tables().send().await.unwrap();
    }
    assert_eq!(connections.load(Ordering::SeqCst), 1);
    // A server whose certificate no trusted CA signed is refused, as a connection error.
    let (rogue, attempts) = tls_proxy("rogue.pem", "rogue.key", upstream).await;
    let err = client(&rogue)
        .await
        .list_tables()
        .send()
        .await
        .expect_err("an untrusted certificate");
    let text = format!("{:?}", err);
    assert!(
        text.contains("Certificate") || text.contains("certificate"),
        "{text}"
    );
    // Not retried: another attempt would meet the same certificate.
    assert_eq!(attempts.load(Ordering::SeqCst), 1, "{text}");
}

/// A server that presents the trusted certificate but for another name (the certificate
/// names `localhost` and `127.0.0.1`; this is `127.0.0.2`) is refused too, once.
#[tokio::test]
async fn a_certificate_for_another_name_is_refused() {
    let upstream = trust_the_test_ca();
    let (url, attempts) = tls_proxy_on("127.0.0.2", "server.pem", "server.key", upstream).await;
    let err = client(&url)
        .await
        .list_tables()
        .send()
        .await
        .expect_err("a certificate for another name");
    let text = format!("{err:?}");
    assert!(text.contains("NotValidForName"), "{text}");
    assert_eq!(attempts.load(Ordering::SeqCst), 1, "{text}");
}

/// A server that accepts the connection and never answers the TLS handshake: the connect
/// timeout covers the handshake, so the call ends (it hung for ever where only the TCP
/// connect was limited and no attempt timeout was set; review finding).
#[tokio::test]
async fn a_handshake_that_never_comes_ends_at_the_connect_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            keep.lock().unwrap().push(s);
        }
    });
    let loader = motcua_aws::loader()
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2))
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_millis(300))
                .build(),
        );
    let ddb = client_with(&format!("https://localhost:{port}"), loader).await;
    let outcome = tokio::time::timeout(Duration::from_secs(20), ddb.list_tables().send()).await;
    let err = outcome
        .expect("the call ended")
        .expect_err("no handshake, no answer");
    assert!(format!("{err:?}").contains("Timeout"), "{err:?}");
    assert_eq!(
        held.lock().unwrap().len(),
        2,
        "a timed-out connect is retried"
    );
}

/// After a transient error (a 500) the SDK closes that connection: the retry goes out on
/// a new one (before, the connection was not handed to the SDK, which logged an error and
/// reused it; review finding).
#[tokio::test]
async fn a_connection_that_answered_a_server_error_is_not_reused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (connections, requests) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (c, r) = (connections.clone(), requests.clone());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            let r = r.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // One request: its head, then Content-Length bytes of body.
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + length {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..head_end + length);
                    let (status, body) = if r.fetch_add(1, Ordering::SeqCst) == 0 {
                        (
                            "500 Internal Server Error",
                            r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"try again"}"#,
                        )
                    } else {
                        ("200 OK", r#"{"TableNames":[]}"#)
                    };
                    let answer = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if s.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let ddb = client(&format!("http://127.0.0.1:{port}")).await;
    let tables = ddb.list_tables().send().await;
    assert!(tables.is_ok(), "{tables:?}");
    assert_eq!(requests.load(Ordering::SeqCst), 2);
    assert_eq!(
        connections.load(Ordering::SeqCst),
        2,
        "the retry had a new connection"
    );
}
