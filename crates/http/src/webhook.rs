//! The engine's webhook sender: a POST over HTTP/1.1 on hyper's own client connection, one
//! connection per attempt, so that a receiver's slowness or failure stays with that attempt.

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;

/// Sends completion webhooks (`Engine::deliver_webhooks`); `http://` only, since holtd has no
/// TLS client yet.
#[derive(Debug, Default, Clone, Copy)]
pub struct WebhookClient;

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
        if uri.scheme_str() != Some("http") {
            return Err("only http:// urls are supported".into());
        }
        let authority = uri.authority().ok_or("the url names no host")?;
        if authority.as_str().contains('@') {
            return Err("urls with user information are not supported".into());
        }
        let address = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        );
        let stream = tokio::net::TcpStream::connect(&address)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake failed: {e}"))?;
        tokio::spawn(connection);
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(hyper::header::HOST, authority.as_str());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        Ok(response.status().as_u16())
    }
}
