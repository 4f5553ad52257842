//! The relay under hostile traffic: one test per finding of the probe in
//! issue 24, each at a small scale with its limit set low. Clients come from
//! different loopback addresses (127.0.0.2, 127.0.0.3, ...) so per-address
//! limits can be told from global ones; the relay listens on 127.0.0.1.
//! The full-size versions, with a real call running, are in the benchmark's
//! soak part (`scripts/bench.sh --only soak`).

mod common;
use common::{msg, open_per_addr, Relay};

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use peercall_relay::{Config, PerAddr, TurnConfig};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

type Client = WebSocketStream<TcpStream>;

const WAIT: Duration = Duration::from_millis(1500);

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

impl Relay {
    /// A TCP connection to the relay from 127.0.0.`from`.
    async fn tcp(&self, from: u8) -> TcpStream {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(ip(from), 0)).unwrap();
        socket.connect(self.addr).await.unwrap()
    }

    /// A WebSocket to /ws from 127.0.0.`from`, with extra headers.
    async fn ws_with(&self, from: u8, headers: &[(&str, &str)]) -> Result<Client, WsError> {
        let mut req = format!("ws://{}/ws", self.addr)
            .into_client_request()
            .unwrap();
        for (k, v) in headers {
            let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes())
                .expect("header name");
            req.headers_mut()
                .insert(name, v.parse().expect("header value"));
        }
        let tcp = self.tcp(from).await;
        tokio_tungstenite::client_async(req, tcp)
            .await
            .map(|(ws, _)| ws)
    }

    async fn ws(&self, from: u8) -> Client {
        self.ws_with(from, &[]).await.unwrap()
    }

    /// Connects from 127.0.0.`from` and joins `room` as `id`.
    async fn joined(&self, from: u8, room: &str, id: &str) -> Client {
        let mut c = self.ws(from).await;
        send(&mut c, join(room, id, id)).await;
        let welcome = next_json(&mut c).await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        c
    }

    /// GET `path` from 127.0.0.`from`: status, headers and body.
    async fn get(&self, from: u8, path: &str) -> (u16, String, String) {
        let mut tcp = self.tcp(from).await;
        tcp.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut raw = String::new();
        tokio::time::timeout(WAIT, tcp.read_to_string(&mut raw))
            .await
            .expect("no answer")
            .unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let status = head[9..12].parse().unwrap();
        (status, head.to_owned(), body.to_owned())
    }

    async fn health(&self) -> serde_json::Value {
        let (status, _, body) = self.get(1, "/healthz").await;
        assert_eq!(status, 200);
        serde_json::from_str(&body).unwrap()
    }

    /// Waits for `/healthz` field `key` to become `want` (it counts the
    /// health request's own connection among the HTTP ones).
    async fn health_reaches(&self, key: &str, want: u64, within: Duration) {
        let start = Instant::now();
        loop {
            let now = self.health().await[key].as_u64().unwrap();
            if now == want {
                return;
            }
            assert!(
                start.elapsed() < within,
                "{key} is {now}, not {want}, after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the relay; gives how long `serve` took to return.
    async fn stop(mut self, within: Duration) -> Duration {
        let start = Instant::now();
        self.stop.take().unwrap().send(()).unwrap();
        tokio::time::timeout(within, self.task)
            .await
            .expect("the relay did not stop in time")
            .unwrap()
            .unwrap();
        start.elapsed()
    }
}

fn join(room: &str, from: &str, name: &str) -> String {
    msg(room, from, None, json!({"type": "join", "name": name}))
}

async fn send(c: &mut Client, text: String) {
    c.send(Message::text(text)).await.unwrap();
}

async fn next_json(c: &mut Client) -> serde_json::Value {
    loop {
        match tokio::time::timeout(WAIT, c.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(&t).unwrap(),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

/// The close frame the relay sends, within `within`.
async fn close_code(c: &mut Client, within: Duration) -> Option<CloseCode> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, c.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| f.code),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => panic!("the connection broke without a close frame: {e}"),
            Ok(None) => panic!("the connection ended without a close frame"),
            Err(_) => panic!("no close frame within {within:?}"),
        }
    }
}

/// Whether the relay closed `tcp` (EOF or reset) within `within`.
async fn closed_within(tcp: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// A normal call still works: two people join a new room and one's offer
/// reaches the other.
async fn a_normal_call_works(relay: &Relay, from: u8, room: &str) {
    let mut a = relay.joined(from, room, "ada").await;
    let mut b = relay.joined(from, room, "bo").await;
    assert_eq!(next_json(&mut a).await["type"], "join");
    let offer = msg(
        room,
        "ada",
        Some("bo"),
        json!({"type": "offer", "sdp": "v=0"}),
    );
    send(&mut a, offer.clone()).await;
    let got = next_json(&mut b).await;
    assert_eq!(got["type"], "offer", "{got}");
}

// --- 1. header deadline, connections that never finish their request -------

#[tokio::test]
async fn silent_and_trickling_connections_are_closed_by_the_header_deadline() {
    let relay = Relay::start(Config {
        header_timeout: Duration::from_secs(1),
        ..Config::default()
    })
    .await;
    let mut silent = Vec::new();
    for _ in 0..10 {
        silent.push(relay.tcp(2).await);
    }
    let mut trickling = Vec::new();
    for _ in 0..10 {
        trickling.push(relay.tcp(3).await);
    }
    // They are counted (with the health request's own connection).
    relay.health_reaches("http_connections", 21, WAIT).await;
    let start = Instant::now();
    let request = b"GET / HTTP/1.1\r\nHost: example\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    let trickle = async {
        for &byte in request {
            for t in &mut trickling {
                if t.write_all(&[byte]).await.is_err() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(4), trickle)
        .await
        .ok();
    for t in silent.iter_mut().chain(trickling.iter_mut()) {
        assert!(closed_within(t, Duration::from_secs(3)).await, "still open");
    }
    // One second of grace, whether bytes trickle in or not.
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    relay.health_reaches("http_connections", 1, WAIT).await;
    a_normal_call_works(&relay, 4, "after").await;
}

#[tokio::test]
async fn http_connections_are_capped_per_address_and_idle_ones_make_room() {
    let relay = Relay::start(Config {
        max_http_connections: 12,
        per_addr: PerAddr {
            http_connections: 5,
            ..Config::default().per_addr
        },
        ..Config::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(relay.tcp(2).await);
    }
    // The sixth from the same address is closed at once.
    let mut sixth = relay.tcp(2).await;
    assert!(closed_within(&mut sixth, Duration::from_millis(500)).await);
    for h in &mut held {
        assert!(!closed_within(h, Duration::from_millis(20)).await);
    }
    // Two more addresses fill the relay's own cap: 5 + 5 + 2 = 12.
    for from in [3, 3, 3, 3, 3, 4, 4] {
        held.push(relay.tcp(from).await);
    }
    relay.health_reaches("http_connections", 12, WAIT).await;
    // Full of connections that do nothing: a newcomer still gets in, and
    // the one idle longest (the first) makes room.
    a_normal_call_works(&relay, 5, "full").await;
    assert!(closed_within(&mut held[0], WAIT).await);
    assert!(!closed_within(&mut held[11], Duration::from_millis(20)).await);
    // Going away frees the places.
    drop(held);
    relay.health_reaches("http_connections", 1, WAIT).await;
}

#[tokio::test]
async fn a_request_over_the_header_size_limit_gets_431() {
    let relay = Relay::start(Config {
        max_header_bytes: 8192,
        ..Config::default()
    })
    .await;
    let mut tcp = relay.tcp(2).await;
    let big = "a".repeat(20_000);
    let req = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    let _ = tcp.write_all(req.as_bytes()).await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut raw)).await;
    let head = String::from_utf8_lossy(&raw);
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");
}

#[tokio::test]
async fn a_half_sent_request_does_not_hold_up_shutdown() {
    let relay = Relay::start(Config {
        header_timeout: Duration::from_secs(60),
        shutdown_timeout: Duration::from_secs(2),
        ..Config::default()
    })
    .await;
    let mut half = relay.tcp(2).await;
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut ws = relay.ws(3).await;
    let took = relay.stop(Duration::from_secs(4)).await;
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(close_code(&mut ws, WAIT).await, Some(CloseCode::Away));
    assert!(closed_within(&mut half, WAIT).await);
}

// --- 2. the descriptor limit ----------------------------------------------------

/// Runs the relay binary with an open-file limit of `nofile`.
fn relay_binary(nofile: u32, args: &str) -> std::process::Child {
    let bin = env!("CARGO_BIN_EXE_peercall-relay");
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {nofile} && exec {bin} --port 0 {args}"))
        .env("PEERCALL_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn max_connections_is_reached_before_the_descriptor_limit() {
    use std::io::BufRead;
    let mut child = relay_binary(
        200,
        "--max-connections 1000 --max-connections-per-ip 1000 --max-http-connections-per-ip 1000",
    );
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut addr = None;
    for line in stdout.lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("signaling WebSocket: ws://") {
            addr = Some(
                rest.split('/')
                    .next()
                    .unwrap()
                    .parse::<SocketAddr>()
                    .unwrap(),
            );
            break;
        }
    }
    let addr = addr.expect("the relay printed no address");
    let mut stderr = child.stderr.take().unwrap();
    let relay = Relay {
        addr,
        stop: None,
        task: tokio::spawn(async { Ok(()) }),
    };
    // 200 descriptors: 136 after the spare ones, 17 for HTTP connections
    // (and their files), so 102 WebSockets.
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..130 {
        match relay.ws_with(2, &[]).await {
            Ok(ws) => open.push(ws),
            Err(WsError::Http(res)) => {
                assert_eq!(res.status(), 503);
                refused += 1;
            }
            Err(e) => panic!("expected 101 or 503, got {e}"),
        }
    }
    assert_eq!((open.len(), refused), (102, 28));
    // The relay still answers.
    assert_eq!(relay.health().await["connections"], 102);
    child.kill().unwrap();
    child.wait().unwrap();
    let mut log = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut log).unwrap();
    assert!(
        log.contains("--max-connections lowered from 1000 to 102"),
        "{log}"
    );
}

// --- 3. readers that stop --------------------------------------------------

/// Alice floods Bob, who stops reading: the relay must close Bob (its
/// queue freed) and tell Alice he left, while Alice carries on.
async fn flood_a_reader_that_stopped(config: Config) -> Duration {
    let relay = Relay::start(Config {
        rate_per_sec: 1e6,
        rate_burst: 1e6,
        ..config
    })
    .await;
    let mut alice = relay.joined(2, "r", "alice").await;
    let bob = relay.joined(3, "r", "bob").await;
    assert_eq!(next_json(&mut alice).await["type"], "join");
    let start = Instant::now();
    let big = "x".repeat(60_000);
    let offer = msg(
        "r",
        "alice",
        Some("bob"),
        json!({"type": "offer", "sdp": big}),
    );
    let mut left = None;
    // 60 KB at a time, up to 60 MB: more than any socket buffers hold.
    for _ in 0..1000 {
        alice.send(Message::text(offer.clone())).await.unwrap();
        if let Ok(Some(Ok(Message::Text(t)))) =
            tokio::time::timeout(Duration::from_millis(5), alice.next()).await
        {
            let m: serde_json::Value = serde_json::from_str(&t).unwrap();
            if m["type"] == "leave" {
                left = Some(m);
                break;
            }
            if m["code"] == "unknown_peer" {
                break;
            }
        }
    }
    let left = match left {
        Some(m) => m,
        None => next_json(&mut alice).await,
    };
    let took = start.elapsed();
    assert_eq!(
        (
            left["type"].clone(),
            left["from"].clone(),
            left["reason"].clone()
        ),
        (json!("leave"), json!("bob"), json!("disconnected")),
        "{left}"
    );
    relay
        .health_reaches("connections", 1, Duration::from_secs(5))
        .await;
    drop(bob);
    a_normal_call_works(&relay, 4, "after").await;
    took
}

#[tokio::test]
async fn a_reader_whose_queue_fills_is_closed() {
    let took = flood_a_reader_that_stopped(Config::default()).await;
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[tokio::test]
async fn a_reader_that_stops_is_closed_within_the_write_deadline() {
    // A queue too big to fill: only the write deadline can catch it.
    let took = flood_a_reader_that_stopped(Config {
        write_timeout: Duration::from_secs(1),
        max_queue_bytes: 1 << 30,
        ..Config::default()
    })
    .await;
    assert!(took < Duration::from_secs(10), "{took:?}");
}

// --- 4. per-address limits --------------------------------------------------

#[tokio::test]
async fn one_address_cannot_take_every_connection_or_room() {
    let relay = Relay::start(Config {
        per_addr: PerAddr {
            websockets: 4,
            rooms: 2,
            joins_per_sec: 0.01,
            joins_burst: 3.0,
            ..Config::default().per_addr
        },
        ..Config::default()
    })
    .await;
    let mut mine = Vec::new();
    for _ in 0..4 {
        mine.push(relay.ws(2).await);
    }
    match relay.ws_with(2, &[]).await {
        Err(WsError::Http(res)) => assert_eq!(res.status(), 429),
        other => panic!("expected 429, got {other:?}"),
    }
    // Two rooms of its own, then no more.
    send(&mut mine[0], join("a1", "m0", "m")).await;
    assert_eq!(next_json(&mut mine[0]).await["type"], "welcome");
    send(&mut mine[1], join("a2", "m1", "m")).await;
    assert_eq!(next_json(&mut mine[1]).await["type"], "welcome");
    send(&mut mine[2], join("a3", "m2", "m")).await;
    let e = next_json(&mut mine[2]).await;
    assert_eq!(e["code"], "too_many_rooms", "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("your address"),
        "{e}"
    );
    // Its fourth join is over its join burst.
    send(&mut mine[3], join("a1", "m3", "m")).await;
    assert_eq!(next_json(&mut mine[3]).await["code"], "rate_limited");
    // Everyone else is unaffected.
    a_normal_call_works(&relay, 3, "other").await;
    // Its rooms go when their members do.
    relay.health_reaches("rooms", 2, WAIT).await;
    drop(mine);
    relay.health_reaches("rooms", 0, WAIT).await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_address_is_counted() {
    let relay = Relay::start(Config {
        per_addr: PerAddr {
            websockets: 1,
            ..Config::default().per_addr
        },
        trusted_proxies: vec![ip(2)],
        ..Config::default()
    })
    .await;
    let _a = relay
        .ws_with(2, &[("x-forwarded-for", "10.0.0.1")])
        .await
        .unwrap();
    let _b = relay
        .ws_with(2, &[("x-forwarded-for", "192.0.2.7, 10.0.0.2")])
        .await
        .unwrap();
    match relay.ws_with(2, &[("x-forwarded-for", "10.0.0.1")]).await {
        Err(WsError::Http(res)) => assert_eq!(res.status(), 429),
        other => panic!("expected 429, got {other:?}"),
    }
    // From an address that is not a trusted proxy, the header is ignored.
    let _c = relay
        .ws_with(3, &[("x-forwarded-for", "10.0.0.9")])
        .await
        .unwrap();
    assert!(relay
        .ws_with(3, &[("x-forwarded-for", "10.0.0.8")])
        .await
        .is_err());
}

// --- 5. unfinished messages ---------------------------------------------

#[tokio::test]
async fn an_unfinished_fragmented_message_is_closed_despite_pings() {
    let relay = Relay::start(Config {
        message_timeout: Duration::from_secs(1),
        ..Config::default()
    })
    .await;
    let mut alice = relay.joined(2, "r", "alice").await;
    let mut mallory = relay.joined(3, "r", "mallory").await;
    assert_eq!(next_json(&mut alice).await["type"], "join");
    let first = Frame::message(vec![b'{'; 200_000], OpCode::Data(Data::Text), false);
    mallory.send(Message::Frame(first)).await.unwrap();
    let start = Instant::now();
    let mut code = None;
    while start.elapsed() < Duration::from_secs(4) {
        if mallory
            .send(Message::Ping(Default::default()))
            .await
            .is_err()
        {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(200), mallory.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => {
                code = frame.map(|f| f.code);
                break;
            }
            Ok(None) | Ok(Some(Err(_))) => break,
            _ => {}
        }
    }
    assert_eq!(code, Some(CloseCode::Policy));
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    let left = next_json(&mut alice).await;
    assert_eq!(
        (left["type"].clone(), left["from"].clone()),
        (json!("leave"), json!("mallory"))
    );
}

#[tokio::test]
async fn a_slow_but_steady_message_within_the_deadline_is_fine() {
    let relay = Relay::start(Config {
        message_timeout: Duration::from_secs(3),
        ..Config::default()
    })
    .await;
    let mut alice = relay.joined(2, "r", "alice").await;
    let mut bob = relay.joined(3, "r", "bob").await;
    assert_eq!(next_json(&mut alice).await["type"], "join");
    // An offer in three fragments over one second.
    let text = msg("r", "bob", None, json!({"type": "offer", "sdp": "v=0"}));
    let (a, rest) = text.split_at(10);
    let (b, c) = rest.split_at(10);
    bob.send(Message::Frame(Frame::message(
        a.as_bytes().to_vec(),
        OpCode::Data(Data::Text),
        false,
    )))
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    bob.send(Message::Frame(Frame::message(
        b.as_bytes().to_vec(),
        OpCode::Data(Data::Continue),
        false,
    )))
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    bob.send(Message::Frame(Frame::message(
        c.as_bytes().to_vec(),
        OpCode::Data(Data::Continue),
        true,
    )))
    .await
    .unwrap();
    assert_eq!(next_json(&mut alice).await["type"], "offer");
    // And nothing closes Bob afterwards.
    tokio::time::sleep(Duration::from_secs(4)).await;
    send(
        &mut bob,
        msg("r", "bob", Some("relay"), json!({"type": "ping"})),
    )
    .await;
    assert_eq!(next_json(&mut bob).await["type"], "pong");
}

#[tokio::test]
async fn large_messages_started_at_once_share_one_budget_and_signaling_goes_on() {
    // Room for four unfinished 245 KiB messages (each charged past its
    // first 16 KiB), not for eight.
    let relay = Relay::start(Config {
        max_arriving_bytes: 1024 * 1024,
        message_timeout: Duration::from_secs(2),
        ..Config::default()
    })
    .await;
    let mut alice = relay.joined(2, "r", "alice").await;
    let mut bob = relay.joined(2, "r", "bob").await;
    assert_eq!(next_json(&mut alice).await["type"], "join");
    let mut held = Vec::new();
    for k in 0..8 {
        let mut c = relay.ws(10 + k).await;
        let first = Frame::message(vec![b'{'; 245 * 1024], OpCode::Data(Data::Text), false);
        tokio::time::timeout(WAIT, c.send(Message::Frame(first)))
            .await
            .expect("the frame is taken by TCP")
            .unwrap();
        held.push(c);
        // One at a time, so which are over the budget is known.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The last four are closed at once with 1013, the first four are not.
    let mut codes = Vec::new();
    for c in &mut held[4..] {
        codes.push(close_code(c, Duration::from_secs(1)).await);
    }
    assert_eq!(codes, vec![Some(CloseCode::Again); 4]);
    // Ordinary signaling is not charged: offers go through meanwhile.
    let offer = msg(
        "r",
        "alice",
        Some("bob"),
        json!({"type": "offer", "sdp": "v=0"}),
    );
    send(&mut alice, offer).await;
    assert_eq!(next_json(&mut bob).await["type"], "offer");
    // The first four are closed by the message deadline (1008); once they
    // are gone, what they held is given back: a large message is read
    // again (and refused in words, as it is over the message limit).
    for c in &mut held[..4] {
        assert_eq!(
            close_code(c, Duration::from_secs(4)).await,
            Some(CloseCode::Policy)
        );
    }
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    send(&mut alice, "x".repeat(200 * 1024)).await;
    assert_eq!(next_json(&mut alice).await["code"], "too_large");
}

// --- 6. names -----------------------------------------------------------

#[tokio::test]
async fn names_are_limited_so_every_welcome_fits_the_size_limit() {
    let relay = Relay::start(Config::default()).await;
    let mut c = relay.ws(2).await;
    send(&mut c, join("r", "long", &"n".repeat(65))).await;
    assert_eq!(next_json(&mut c).await["code"], "bad_name");
    send(&mut c, join("r", "ctl", "a\u{7}b")).await;
    assert_eq!(next_json(&mut c).await["code"], "bad_name");
    // Six people with the longest names there can be (64 four-byte
    // characters each): the last one's welcome is well inside 64 KiB.
    let name = "\u{1F600}".repeat(64);
    let mut members = Vec::new();
    for i in 0..5 {
        let mut m = relay.ws(2).await;
        send(&mut m, join("r", &format!("p{i}"), &name)).await;
        assert_eq!(next_json(&mut m).await["type"], "welcome");
        members.push(m);
    }
    let mut last = relay.ws(3).await;
    send(&mut last, join("r", "p5", &name)).await;
    let raw = match tokio::time::timeout(WAIT, last.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => t.to_string(),
        other => panic!("{other:?}"),
    };
    let welcome: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(welcome["peers"].as_array().unwrap().len(), 5);
    assert!(raw.len() < 65_536, "{}", raw.len());
    // A room size whose welcome could outgrow the limit is refused at start.
    let err = Config {
        max_peers_per_room: 500,
        ..Config::default()
    }
    .validate()
    .unwrap_err();
    assert!(err.contains("--max-peers 500"), "{err}");
}

// --- 7. shutdown ---------------------------------------------------------

#[tokio::test]
async fn shutdown_sends_every_client_its_close_and_waits_for_them() {
    let relay = Relay::start(Config {
        per_addr: open_per_addr(),
        ..Config::default()
    })
    .await;
    let mut clients = Vec::new();
    for i in 0..60 {
        clients.push(
            relay
                .joined(2, &format!("room{}", i / 6), &format!("p{i}"))
                .await,
        );
    }
    // Everyone reads (as a browser does), so the close handshakes complete.
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                loop {
                    match c.next().await {
                        Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
                        Some(Ok(_)) => continue,
                        _ => return None,
                    }
                }
            })
        })
        .collect();
    let took = relay.stop(Duration::from_secs(6)).await;
    for r in readers {
        assert_eq!(r.await.unwrap(), Some(CloseCode::Away));
    }
    assert!(took < Duration::from_secs(3), "{took:?}");
}

// --- 8. the smaller ones ---------------------------------------------------

#[tokio::test]
async fn invalid_utf8_in_a_text_frame_closes_with_1007() {
    let relay = Relay::start(Config::default()).await;
    let mut alice = relay.joined(2, "r", "alice").await;
    let mut bad = relay.joined(3, "r", "bad").await;
    assert_eq!(next_json(&mut alice).await["type"], "join");
    let frame = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    bad.send(Message::Frame(frame)).await.unwrap();
    assert_eq!(close_code(&mut bad, WAIT).await, Some(CloseCode::Invalid));
    assert_eq!(next_json(&mut alice).await["type"], "leave");
}

#[tokio::test]
async fn every_error_names_the_room_and_the_peer() {
    let relay = Relay::start(Config {
        rate_per_sec: 0.1,
        rate_burst: 2.0,
        ..Config::default()
    })
    .await;
    let mut a = relay.joined(2, "r", "alice").await;
    for _ in 0..3 {
        send(&mut a, msg("r", "alice", None, json!({"type": "bye-bye"}))).await;
    }
    let e = next_json(&mut a).await;
    assert_eq!(
        (e["code"].clone(), e["room"].clone(), e["to"].clone()),
        (json!("rate_limited"), json!("r"), json!("alice")),
        "{e}"
    );
}

fn with_turn(config: Config) -> Config {
    Config {
        turn: Some(TurnConfig {
            secret: "s3cret".into(),
            urls: vec!["turn:127.0.0.1:3478".into()],
            stun_urls: vec![],
            ttl: Duration::from_secs(600),
        }),
        ..config
    }
}

fn turn_username(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["iceServers"][0]["username"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn turn_usernames_name_only_joined_peers_and_are_rate_limited() {
    let relay = Relay::start(with_turn(Config {
        per_addr: PerAddr {
            ice_per_sec: 0.01,
            ice_burst: 3.0,
            ..Config::default().per_addr
        },
        ..Config::default()
    }))
    .await;
    let _alice = relay.joined(2, "r", "alice").await;
    // Alice, from her own address: her id is in the username.
    let (status, _, body) = relay.get(2, "/ice-servers?id=alice&room=r").await;
    assert_eq!(status, 200);
    assert!(turn_username(&body).ends_with(":alice"), "{body}");
    // Someone else claiming to be her, or an id in no room: no id.
    let (_, _, body) = relay.get(3, "/ice-servers?id=alice&room=r").await;
    assert!(!turn_username(&body).contains(':'), "{body}");
    let (_, _, body) = relay.get(2, "/ice-servers?id=anything-at-all&room=r").await;
    assert!(!turn_username(&body).contains(':'), "{body}");
    // Alice's address has used two of its three; the fourth waits.
    assert_eq!(relay.get(2, "/ice-servers").await.0, 200);
    let (status, head, body) = relay.get(2, "/ice-servers").await;
    assert_eq!(status, 429, "{body}");
    assert!(head.to_ascii_lowercase().contains("retry-after:"), "{head}");
    assert!(body.contains("rate_limited"), "{body}");
    // Other addresses are not held back.
    assert_eq!(relay.get(4, "/ice-servers").await.0, 200);
}

// --- memory that comes back ---------------------------------------------

fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

#[tokio::test]
async fn memory_taken_by_a_flood_is_given_back() {
    use std::io::BufRead;
    rlimit::increase_nofile_limit(8192).unwrap();
    let mut child = relay_binary(4096, "--max-connections-per-ip 1000");
    let pid = child.id();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let addr: SocketAddr = stdout
        .lines()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("signaling WebSocket: ws://")
                .map(|r| r.split('/').next().unwrap().parse().unwrap())
        })
        .expect("the relay printed no address");
    let relay = Relay {
        addr,
        stop: None,
        task: tokio::spawn(async { Ok(()) }),
    };
    // A few ordinary connections first, so the baseline is a relay at work.
    let mut calls = Vec::new();
    for i in 0..4 {
        calls.push(relay.joined(2, "base", &format!("b{i}")).await);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let baseline = rss_of(pid);
    // A flood like the probe's, smaller: 1,000 connections in rooms of
    // two, and 40 more each holding an unfinished 245 KiB message.
    let mut flood = Vec::new();
    for k in 0..1000u32 {
        let mut ws = relay.ws(10 + (k % 200) as u8).await;
        send(
            &mut ws,
            join(&format!("flood{}", k / 2), &format!("f{k}"), "F"),
        )
        .await;
        flood.push(ws);
    }
    for k in 0..40u8 {
        let mut ws = relay.ws(10 + k).await;
        let first = Frame::message(vec![b'{'; 245 * 1024], OpCode::Data(Data::Text), false);
        ws.send(Message::Frame(first)).await.unwrap();
        flood.push(ws);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let peak = rss_of(pid);
    assert!(
        peak > baseline + 10_000_000,
        "the flood took only {} -> {peak}",
        baseline
    );
    drop(flood);
    let start = Instant::now();
    let mut now = rss_of(pid);
    while now > 2 * baseline && start.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        now = rss_of(pid);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        now <= 2 * baseline,
        "RSS {baseline} before, {peak} at the peak, still {now} 15 s after the flood"
    );
}

/// Sends 3000 of `frame()` on `c` as fast as they go (stopping if the
/// relay closes it), then gives it back.
async fn flood_with(mut c: Client, frame: fn() -> Message) -> Client {
    tokio::spawn(async move {
        for _ in 0..3000 {
            if c.feed(frame()).await.is_err() {
                break;
            }
        }
        let _ = c.flush().await;
        c
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_sender_far_past_the_rate_limit_is_closed_and_the_room_goes_on() {
    let relay = Relay::start(Config::default()).await;
    let mut alice = relay.joined(2, "r", "alice").await;
    let flood = relay.joined(3, "r", "flood").await;
    assert_eq!(next_json(&mut alice).await["type"], "join");
    // Binary frames as fast as they go: the first few get an error each
    // (within the rate), the rest are dropped, and past 200 dropped
    // within a second the connection is closed with 1008.
    let mut flood = flood_with(flood, || Message::binary(vec![7u8; 64])).await;
    assert_eq!(
        close_code(&mut flood, Duration::from_secs(5)).await,
        Some(CloseCode::Policy)
    );
    let leave = next_json(&mut alice).await;
    assert_eq!(leave["type"], "leave", "{leave}");
    assert_eq!(leave["from"], "flood");
    // A client within its limit is never closed: bursts it recovers from.
    let mut bob = relay.joined(4, "r", "bob").await;
    assert_eq!(next_json(&mut alice).await["type"], "join");
    for i in 0..50 {
        send(
            &mut bob,
            msg("r", "bob", None, json!({"type": "ping", "n": i})),
        )
        .await;
    }
    assert_eq!(next_json(&mut alice).await["n"], 0);
}

#[tokio::test]
async fn a_ping_flood_is_closed_like_any_other() {
    let relay = Relay::start(Config::default()).await;
    let mut alice = relay.joined(2, "r", "alice").await;
    let flood = relay.joined(3, "r", "flood").await;
    assert_eq!(next_json(&mut alice).await["type"], "join");
    // Each ping costs the relay a pong: they are counted like messages.
    let mut flood = flood_with(flood, || Message::Ping(Default::default())).await;
    assert_eq!(
        close_code(&mut flood, Duration::from_secs(5)).await,
        Some(CloseCode::Policy)
    );
    assert_eq!(next_json(&mut alice).await["type"], "leave");
}

#[tokio::test]
async fn a_flood_of_continuation_frames_is_closed_like_any_other() {
    let relay = Relay::start(Config::default()).await;
    let mut alice = relay.joined(2, "r", "alice").await;
    let mut flood = relay.joined(3, "r", "flood").await;
    assert_eq!(next_json(&mut alice).await["type"], "join");
    // tungstenite joins continuation frames into their message without
    // showing them: counted all the same, a flood of them is closed well
    // before the message deadline (10 s).
    flood
        .send(Message::Frame(Frame::message(
            b"[".to_vec(),
            OpCode::Data(Data::Text),
            false,
        )))
        .await
        .unwrap();
    let start = Instant::now();
    let mut flood = flood_with(flood, || {
        Message::Frame(Frame::message(
            b"1".to_vec(),
            OpCode::Data(Data::Continue),
            false,
        ))
    })
    .await;
    assert_eq!(
        close_code(&mut flood, Duration::from_secs(5)).await,
        Some(CloseCode::Policy)
    );
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(next_json(&mut alice).await["type"], "leave");
}

#[tokio::test]
async fn an_address_that_keeps_breaking_the_protocol_is_shut_out_and_no_other() {
    let relay = Relay::start(Config::default()).await;
    let bad = || Frame::message(vec![b'{', 0xff, b'}'], OpCode::Data(Data::Text), true);
    // Each of these is closed with 1007; the address may have 20 such
    // closes in a burst (then one a second).
    for _ in 0..21 {
        let mut c = relay.ws(5).await;
        c.send(Message::Frame(bad())).await.unwrap();
        assert_eq!(close_code(&mut c, WAIT).await, Some(CloseCode::Invalid));
    }
    // The 21st shut the address out: its connections are closed as they
    // are accepted, before the upgrade.
    let refused = tokio::time::timeout(WAIT, relay.ws_with(5, &[])).await;
    assert!(
        matches!(refused, Ok(Err(_))),
        "a shut-out address got a WebSocket"
    );
    let mut tcp = relay.tcp(5).await;
    assert!(closed_within(&mut tcp, WAIT).await, "not closed at accept");
    // Another address is not touched by it.
    a_normal_call_works(&relay, 6, "after").await;
}
