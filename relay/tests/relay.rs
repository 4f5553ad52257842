//! The relay driven from outside: HTTP in-process, WebSockets over real
//! loopback sockets on port 0.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use peercall_relay::{app, serve, Config};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tower::ServiceExt;

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a message may take to arrive on loopback before the test fails;
/// also how long we wait to be sure one does not arrive.
const WAIT: Duration = Duration::from_millis(500);

struct Relay {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Relay {
    async fn start(config: Config) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, config, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task,
        }
    }

    async fn client(&self) -> Client {
        let url = format!("ws://{}/ws", self.addr);
        tokio_tungstenite::connect_async(url).await.unwrap().0
    }

    async fn health(&self) -> serde_json::Value {
        let mut stream = TcpStream::connect(self.addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await.unwrap();
        let body = raw.split("\r\n\r\n").nth(1).unwrap();
        serde_json::from_str(body).unwrap()
    }
}

async fn next_text(client: &mut Client) -> String {
    loop {
        match tokio::time::timeout(WAIT, client.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return t.to_string(),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

async fn assert_silent(client: &mut Client) {
    if let Ok(msg) = tokio::time::timeout(WAIT, client.next()).await {
        panic!("expected nothing, got {msg:?}");
    }
}

#[tokio::test]
async fn text_reaches_every_other_client_but_not_the_sender() {
    let relay = Relay::start(Config::default()).await;
    let (mut a, mut b, mut c) = (
        relay.client().await,
        relay.client().await,
        relay.client().await,
    );
    a.send(Message::text(r#"{"hello":"from a"}"#))
        .await
        .unwrap();
    assert_eq!(next_text(&mut b).await, r#"{"hello":"from a"}"#);
    assert_eq!(next_text(&mut c).await, r#"{"hello":"from a"}"#);
    assert_silent(&mut a).await;
}

#[tokio::test]
async fn health_counts_connections() {
    let relay = Relay::start(Config::default()).await;
    assert_eq!(relay.health().await["status"], "ok");
    let mut a = relay.client().await;
    let _b = relay.client().await;
    // Round trip through the relay so both upgrades are surely done.
    a.send(Message::text("x")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(relay.health().await["connections"], 2);
    a.close(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(relay.health().await["connections"], 1);
}

#[tokio::test]
async fn binary_frames_are_ignored_and_the_socket_keeps_working() {
    let relay = Relay::start(Config::default()).await;
    let (mut a, mut b) = (relay.client().await, relay.client().await);
    a.send(Message::binary(vec![0u8, 1, 2])).await.unwrap();
    assert_silent(&mut b).await;
    a.send(Message::text("after binary")).await.unwrap();
    assert_eq!(next_text(&mut b).await, "after binary");
}

#[tokio::test]
async fn oversized_message_drops_only_its_sender() {
    let relay = Relay::start(Config {
        max_message_bytes: 1024,
        ..Config::default()
    })
    .await;
    let (mut big, mut a, mut b) = (
        relay.client().await,
        relay.client().await,
        relay.client().await,
    );
    big.send(Message::text("x".repeat(4096))).await.unwrap();
    // The sender is cut off; nobody receives the oversized message.
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match big.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "oversized sender was not disconnected");
    assert_silent(&mut b).await;
    // Everyone else carries on.
    a.send(Message::text("still here")).await.unwrap();
    assert_eq!(next_text(&mut b).await, "still here");
}

#[tokio::test]
async fn abrupt_disconnect_does_not_disturb_others() {
    let relay = Relay::start(Config::default()).await;
    let (gone, mut a, mut b) = (
        relay.client().await,
        relay.client().await,
        relay.client().await,
    );
    // Drop the TCP connection with no close handshake.
    drop(gone);
    a.send(Message::text("after drop")).await.unwrap();
    assert_eq!(next_text(&mut b).await, "after drop");
}

#[tokio::test]
async fn shutdown_closes_sockets_with_going_away() {
    let mut relay = Relay::start(Config::default()).await;
    let mut a = relay.client().await;
    relay.stop.take().unwrap().send(()).unwrap();
    let frame = loop {
        match tokio::time::timeout(WAIT, a.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => break frame,
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(frame.unwrap().code, CloseCode::Away);
    drop(a);
    let result = tokio::time::timeout(Duration::from_secs(5), relay.task)
        .await
        .expect("relay did not stop after shutdown");
    result.unwrap().unwrap();
}

// --- static files -----------------------------------------------------------

const WASM: &str = "peercall-1a2b3c4d5e6f7a8b_bg.wasm";

fn dist() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("index.html"),
        "<!doctype html><title>peercall</title>",
    )
    .unwrap();
    std::fs::write(dir.path().join(WASM), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(dir.path().join("config.json"), "{}").unwrap();
    dir
}

async fn get(
    config: &Config,
    path: &str,
    accept_encoding: Option<&str>,
) -> axum::response::Response {
    let mut req = Request::get(path);
    if let Some(enc) = accept_encoding {
        req = req.header(header::ACCEPT_ENCODING, enc);
    }
    app(config.clone())
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

fn header_of(res: &axum::response::Response, name: header::HeaderName) -> &str {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

#[tokio::test]
async fn serves_the_app_with_types_and_cache_headers() {
    let dir = dist();
    let config = Config {
        static_dir: Some(dir.path().to_owned()),
        ..Config::default()
    };

    let index = get(&config, "/", None).await;
    assert_eq!(index.status(), StatusCode::OK);
    assert!(header_of(&index, header::CONTENT_TYPE).starts_with("text/html"));
    assert_eq!(header_of(&index, header::CACHE_CONTROL), "no-cache");
    let body = index.into_body().collect().await.unwrap().to_bytes();
    assert!(body.starts_with(b"<!doctype html>"));

    let wasm = get(&config, &format!("/{WASM}"), None).await;
    assert_eq!(wasm.status(), StatusCode::OK);
    assert_eq!(header_of(&wasm, header::CONTENT_TYPE), "application/wasm");
    assert_eq!(
        header_of(&wasm, header::CACHE_CONTROL),
        "public, max-age=31536000, immutable"
    );

    let config_json = get(&config, "/config.json", None).await;
    assert_eq!(
        header_of(&config_json, header::CONTENT_TYPE),
        "application/json"
    );
    assert_eq!(header_of(&config_json, header::CACHE_CONTROL), "no-cache");

    // Unknown paths get the app (it routes on the client).
    let deep = get(&config, "/some/room", None).await;
    assert_eq!(deep.status(), StatusCode::OK);
    assert!(header_of(&deep, header::CONTENT_TYPE).starts_with("text/html"));

    // Compressed where the client accepts it.
    let big = "<p>peercall</p>".repeat(200);
    std::fs::write(dir.path().join("index.html"), &big).unwrap();
    let gz = get(&config, "/", Some("gzip")).await;
    assert_eq!(header_of(&gz, header::CONTENT_ENCODING), "gzip");
}

#[tokio::test]
async fn without_a_static_dir_only_the_api_is_served() {
    let res = get(&Config::default(), "/", None).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let health = get(&Config::default(), "/healthz", None).await;
    assert_eq!(health.status(), StatusCode::OK);
}
