//! The engine's webhook sender: a POST over HTTP/1.1, plain or over TLS (rustls on ring), one
//! connection per attempt (nothing is pooled), so that a receiver's slowness or failure stays
//! with that attempt.
//!
//! TLS certificates are always verified: against the public web PKI roots (webpki-roots), plus
//! the CA certificates of the operator's `--webhook-ca-file`. There is no way to skip it.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// The largest CA file read, in bytes: a bundle of a few hundred certificates fits.
const MAX_CA_FILE_BYTES: u64 = 4 << 20;

/// Sends completion webhooks (`Engine::deliver_webhooks`) to `http://` and `https://` URLs.
#[derive(Clone)]
pub struct WebhookClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    extra_roots: usize,
}

impl std::fmt::Debug for WebhookClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookClient")
            .field("extra_roots", &self.extra_roots)
            .finish_non_exhaustive()
    }
}

impl WebhookClient {
    /// A client trusting the web PKI roots only.
    pub fn new() -> Self {
        Self::with_roots(web_roots(), 0)
    }

    /// A client trusting the web PKI roots and every CA certificate in the PEM file at `path`.
    /// An unreadable file, one over 4 MiB, or one holding no certificate or a
    /// certificate that does not parse is refused with a one-line reason.
    pub fn with_ca_file(path: &Path) -> Result<Self, String> {
        let shown = path.display();
        let size = std::fs::metadata(path)
            .map_err(|e| format!("cannot read the CA file {shown}: {e}"))?
            .len();
        if size > MAX_CA_FILE_BYTES {
            return Err(format!(
                "the CA file {shown} is larger than {MAX_CA_FILE_BYTES} bytes"
            ));
        }
        let pem =
            std::fs::read(path).map_err(|e| format!("cannot read the CA file {shown}: {e}"))?;
        Self::with_ca_pem(&pem).map_err(|e| format!("the CA file {shown} {e}"))
    }

    /// A client trusting the web PKI roots and every CA certificate in `pem`; the error reads
    /// after the file's name ("holds no certificate").
    pub fn with_ca_pem(pem: &[u8]) -> Result<Self, String> {
        let mut roots = web_roots();
        let mut added = 0;
        for (n, cert) in CertificateDer::pem_slice_iter(pem).enumerate() {
            let cert = cert.map_err(|e| format!("is not PEM: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("certificate {} is not a usable CA: {e}", n + 1))?;
            added += 1;
        }
        if added == 0 {
            return Err("holds no certificate (expected -----BEGIN CERTIFICATE-----)".into());
        }
        Ok(Self::with_roots(roots, added))
    }

    fn with_roots(roots: RootCertStore, extra_roots: usize) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        Self {
            client,
            extra_roots,
        }
    }
}

impl Default for WebhookClient {
    fn default() -> Self {
        Self::new()
    }
}

fn web_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// An error and its causes on one line ("tcp connect error: Connection refused"); none of them
/// quotes the URL.
fn chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = e.source();
    }
    line
}

#[async_trait]
impl holt_engine::WebhookSender for WebhookClient {
    async fn post(
        &self,
        url: &str,
        headers: Vec<(&'static str, String)>,
        body: String,
    ) -> Result<u16, String> {
        // Errors never quote the URL: its query could hold a token.
        let uri: Uri = url
            .parse()
            .map_err(|_| "the url does not parse".to_owned())?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err("only http:// and https:// urls are supported".into());
        }
        let authority = uri.authority().ok_or("the url names no host")?;
        if authority.as_str().contains('@') {
            return Err("urls with user information are not supported".into());
        }
        let mut request = Request::builder().method(Method::POST).uri(uri);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let response = self.client.request(request).await.map_err(|e| {
            // The connector's errors (TCP, then TLS with the certificate's verification)
            // say why the receiver was not reached; the client's own wrapper adds nothing.
            let cause = std::error::Error::source(&e).map_or_else(|| e.to_string(), chain);
            if e.is_connect() {
                format!("cannot connect: {cause}")
            } else {
                format!("no answer: {cause}")
            }
        })?;
        Ok(response.status().as_u16())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_a_certificate_is_refused() {
        let err = WebhookClient::with_ca_pem(b"").unwrap_err();
        assert!(err.starts_with("holds no certificate"), "{err}");
        let err = WebhookClient::with_ca_pem(
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap_err();
        assert!(err.starts_with("holds no certificate"), "{err}");
        let err = WebhookClient::with_ca_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap_err();
        assert!(err.starts_with("is not PEM"), "{err}");
        let err = WebhookClient::with_ca_pem(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap_err();
        assert!(err.starts_with("certificate 1 is not a usable CA"), "{err}");
    }

    #[test]
    fn a_missing_ca_file_is_refused_with_its_name() {
        let err = WebhookClient::with_ca_file(Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert!(
            err.starts_with("cannot read the CA file /nonexistent/ca.pem: "),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
    }
}
