//! The SDK's HTTP client (`motcua_aws::http1`) over TLS, as on AWS: LocalStack behind a
//! TLS-terminating proxy on loopback whose certificate is signed by a test CA
//! (`tests/tls/`, made for these tests only). The client must reach DynamoDB through it
//! when the CA is trusted (`SSL_CERT_FILE`), and refuse a server whose certificate is not.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
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
    (format!("https://localhost:{port}"), accepted)
}

async fn client(endpoint: &str) -> motcua_aws::aws_sdk_dynamodb::Client {
    let conf = motcua_aws::loader()
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

#[tokio::test]
async fn the_sdk_speaks_tls_to_a_trusted_server_and_refuses_another() {
    motcua_aws::localstack::ensure_running().expect("LocalStack");
    // This test runs in a process of its own (nextest): the trusted roots are read once,
    // at the first request, from here.
    // SAFETY: set before any thread of this test reads the environment.
    unsafe { std::env::set_var("SSL_CERT_FILE", tls("ca.pem")) };
    let upstream = motcua_aws::localstack::endpoint()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
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
