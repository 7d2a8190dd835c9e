//! Webhooks over https against a real TLS receiver in the test (tokio-rustls and hyper), with a
//! CA and a certificate for 127.0.0.1 made by the `openssl` command: holtd trusting the CA
//! through `--webhook-ca-file` delivers the signed webhook exactly once; holtd without it
//! refuses the receiver's certificate, never sends it the body, and logs why without secrets.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use holt_tests::Holtd;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::wait_for;

const KEY: &str = "tls-webhook-signing-key-91c2";

/// What the receiver saw: each request's path, signature header and body, and how many TLS
/// handshakes failed.
#[derive(Debug, Default)]
struct Seen {
    requests: Vec<(String, Option<String>, String)>,
    failed_handshakes: usize,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("/usr/bin/openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes `ca.pem` (a CA) and `server.pem`/`server.key` (a certificate for 127.0.0.1 that the
/// CA signed) in `dir`.
fn make_certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req", "-x509", "-days", "2", "-keyout", "ca.key", "-out", "ca.pem",
    ];
    ca.extend(ec);
    ca.extend([
        "-subj",
        "/CN=Holt test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca);
    let mut csr = vec!["req", "-keyout", "server.key", "-out", "server.csr"];
    csr.extend(ec);
    csr.extend(["-subj", "/CN=127.0.0.1"]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    );
}

/// Serves https on `listener` with the certificate in `dir`, answering 200 to every request.
async fn receiver(listener: TcpListener, dir: &Path, seen: Arc<Mutex<Seen>>) {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let tls = match acceptor.accept(stream).await {
            Ok(tls) => tls,
            Err(_) => {
                seen.lock().unwrap().failed_handshakes += 1;
                continue;
            }
        };
        let seen = seen.clone();
        let service =
            hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let seen = seen.clone();
                async move {
                    let path = request.uri().to_string();
                    let signature = request
                        .headers()
                        .get("x-holt-signature")
                        .map(|v| v.to_str().unwrap().to_owned());
                    let body = request.into_body().collect().await?.to_bytes();
                    let body = String::from_utf8(body.to_vec()).unwrap();
                    seen.lock().unwrap().requests.push((path, signature, body));
                    Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::new())))
                }
            });
        tokio::spawn(
            hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service),
        );
    }
}

fn template(port: u16) -> String {
    format!(
        r#"
allow_api = true
plan = 'Log-Information "hi";'
[[notify]]
url = "https://127.0.0.1:{port}/hook?token=query-secret"
secret_env = "HOLT_TEST_WEBHOOK_KEY"
"#
    )
}

fn signature(body: &str) -> String {
    let mut mac = Hmac::<sha2_hmac::Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_webhook_to_a_receiver_the_ca_file_trusts_is_delivered_once_signed() {
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let serving = tokio::spawn({
        let (dir, seen) = (certs.path().to_owned(), seen.clone());
        async move { receiver(listener, &dir, seen).await }
    });
    let ca = certs.path().join("ca.pem");
    let mut holtd = Holtd::start(
        &[("hook", &template(port))],
        &["--webhook-ca-file", ca.to_str().unwrap()],
    )
    .await;
    holtd.terminate();
    holtd
        .restart_with_env(&[("HOLT_TEST_WEBHOOK_KEY", KEY)])
        .await;
    let token = holtd.trigger("template=hook").await;
    assert_eq!(holtd.wait_terminal(&token, "").await, "Succeeded");
    wait_for("the delivery recorded", Duration::from_secs(20), || {
        holtd.server_log().contains("webhook delivered")
    })
    .await;
    // Nothing more comes: the delivered webhook has left the outbox.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    serving.abort();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.failed_handshakes, 0, "{seen:?}");
    assert_eq!(seen.requests.len(), 1, "{seen:?}");
    let (path, sig, body) = &seen.requests[0];
    assert_eq!(path, "/hook?token=query-secret");
    assert_eq!(sig.as_deref(), Some(signature(body).as_str()));
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["token"], token.as_str());
    assert_eq!(body["status"], "Succeeded");
    let server_log = holtd.server_log();
    assert!(
        !server_log.contains("webhook attempt failed"),
        "{server_log}"
    );
    for secret in [KEY, "query-secret"] {
        assert!(!server_log.contains(secret), "holtd logged {secret:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_receiver_with_an_untrusted_certificate_gets_nothing() {
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let serving = tokio::spawn({
        let (dir, seen) = (certs.path().to_owned(), seen.clone());
        async move { receiver(listener, &dir, seen).await }
    });
    // No --webhook-ca-file: the test CA is not among the web PKI roots.
    let mut holtd = Holtd::start(&[("hook", &template(port))], &[]).await;
    holtd.terminate();
    holtd
        .restart_with_env(&[("HOLT_TEST_WEBHOOK_KEY", KEY)])
        .await;
    let token = holtd.trigger("template=hook").await;
    assert_eq!(holtd.wait_terminal(&token, "").await, "Succeeded");
    wait_for("a failed attempt", Duration::from_secs(20), || {
        holtd.server_log().contains("webhook attempt failed")
    })
    .await;
    serving.abort();
    {
        let seen = seen.lock().unwrap();
        assert!(seen.requests.is_empty(), "{seen:?}");
        assert!(seen.failed_handshakes >= 1, "{seen:?}");
    }
    let server_log = holtd.server_log();
    let failed = server_log
        .lines()
        .find(|l| l.contains("webhook attempt failed"))
        .unwrap();
    assert!(
        failed.contains("invalid peer certificate: UnknownIssuer"),
        "{failed}"
    );
    assert!(!server_log.contains("webhook delivered"), "{server_log}");
    for secret in [KEY, "query-secret"] {
        assert!(!server_log.contains(secret), "holtd logged {secret:?}");
    }
    // The job is untouched by its webhook's failure.
    assert_eq!(holtd.wait_terminal(&token, "").await, "Succeeded");
}

#[tokio::test]
async fn an_empty_or_missing_ca_file_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let missing = dir.path().join("missing.pem");
    for (file, reason) in [
        (&empty, "holds no certificate"),
        (&missing, "cannot read the CA file"),
    ] {
        let out = Command::new(holt_tests::holtd_binary())
            .args(["--listen", "127.0.0.1:0", "--webhook-ca-file"])
            .arg(file)
            .arg("--db")
            .arg(dir.path().join("holt.db"))
            .arg("--templates")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(reason), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}
