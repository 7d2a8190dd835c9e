use std::sync::Arc;

use holt_domain::TemplateCatalog;
use holt_engine::{Engine, EngineConfig};
use holt_storage::{SqliteConfig, SqliteStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

fn panics_on_one_path(
    app: Arc<App>,
    req: Request<Incoming>,
) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> {
    Box::pin(async move {
        assert!(req.uri().path() != "/panic", "a handler bug");
        handle(app, req).await
    })
}

async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_gets_500_and_the_server_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&SqliteConfig::new(dir.path().join("holt.db"))).unwrap();
    let engine = Engine::start(
        Arc::new(store),
        TemplateCatalog::default(),
        EngineConfig::default(),
    )
    .await
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_with(
        listener,
        engine,
        HttpConfig::default(),
        async {
            let _ = stopped.await;
        },
        panics_on_one_path,
    ));
    for _ in 0..3 {
        let answer = get(addr, "/panic").await;
        assert!(answer.starts_with("HTTP/1.1 500"), "{answer}");
        assert!(
            answer.ends_with("internal error; see the server's log"),
            "{answer}"
        );
        let answer = get(addr, "/healthz").await;
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok"),
            "{answer}"
        );
    }
    stop.send(()).unwrap();
    server.await.unwrap();
}
