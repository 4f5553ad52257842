//! The relay driven from outside: HTTP in-process, WebSockets over real
//! loopback sockets on port 0.

mod common;
use common::{msg, Relay};

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use peercall_relay::{app, turn_credential, Config, Mode, PerAddr, TurnConfig};
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tower::ServiceExt;

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a message may take to arrive on loopback before the test fails;
/// also how long we wait to be sure one does not arrive.
const WAIT: Duration = Duration::from_millis(500);

impl Relay {
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

async fn send(client: &mut Client, text: String) {
    client.send(Message::text(text)).await.unwrap();
}

async fn next_json(client: &mut Client) -> serde_json::Value {
    serde_json::from_str(&next_text(client).await).unwrap()
}

/// Reads the next message and checks it is a relay error with `code`.
async fn expect_error(client: &mut Client, code: &str) -> serde_json::Value {
    let m = next_json(client).await;
    assert_eq!(m["type"], "error", "{m}");
    assert_eq!(m["from"], "relay", "{m}");
    assert_eq!(m["code"], code, "{m}");
    assert!(m["message"].as_str().is_some_and(|s| s.len() > 10), "{m}");
    m
}

/// Sends `text` from `sender` and checks the relay refuses it with `code`.
async fn refused(sender: &mut Client, text: String, code: &str) -> serde_json::Value {
    send(sender, text).await;
    expect_error(sender, code).await
}

/// Sends `text` from `sender` and checks `receiver` gets it unchanged.
async fn relayed(sender: &mut Client, text: String, receiver: &mut Client) {
    send(sender, text.clone()).await;
    assert_eq!(next_text(receiver).await, text);
}

impl Relay {
    /// Alice and Bob in room "r"; Bob's join already read by Alice.
    async fn alice_and_bob(&self) -> (Client, Client) {
        let mut a = self.joined("r", "alice").await;
        let b = self.joined("r", "bob").await;
        next_text(&mut a).await;
        (a, b)
    }

    /// Connects and joins `room` as `id`; returns the client and the
    /// welcome's peer list.
    async fn join(&self, room: &str, id: &str) -> (Client, serde_json::Value) {
        let mut c = self.client().await;
        send(
            &mut c,
            msg(room, id, None, json!({"type": "join", "name": id})),
        )
        .await;
        let welcome = next_json(&mut c).await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        assert_eq!(welcome["to"], id);
        (c, welcome["peers"].clone())
    }

    async fn joined(&self, room: &str, id: &str) -> Client {
        self.join(room, id).await.0
    }
}

async fn closed(
    client: &mut Client,
) -> Option<tokio_tungstenite::tungstenite::protocol::CloseFrame> {
    loop {
        match tokio::time::timeout(Duration::from_secs(3), client.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => return frame,
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn join_gets_a_welcome_and_others_see_the_join() {
    let relay = Relay::start(Config::default()).await;
    let (mut a, peers) = relay.join("room1", "alice").await;
    assert_eq!(peers, json!([]));
    let (mut b, peers) = relay.join("room1", "bob").await;
    assert_eq!(peers, json!([{"id": "alice", "name": "alice"}]));
    // Alice gets Bob's join exactly as he sent it.
    assert_eq!(
        next_text(&mut a).await,
        msg("room1", "bob", None, json!({"type": "join", "name": "bob"}))
    );
    // Alice answers Bob alone; he learns she was there.
    relayed(
        &mut a,
        msg(
            "room1",
            "alice",
            Some("bob"),
            json!({"type": "present", "name": "alice"}),
        ),
        &mut b,
    )
    .await;
    assert_silent(&mut a).await;
}

#[tokio::test]
async fn broadcast_stays_in_the_room_and_skips_the_sender() {
    let relay = Relay::start(Config::default()).await;
    let mut a = relay.joined("room1", "alice").await;
    let mut b = relay.joined("room1", "bob").await;
    let mut c = relay.joined("room2", "carol").await;
    next_text(&mut a).await; // bob's join
    relayed(
        &mut a,
        msg("room1", "alice", None, json!({"type": "ping"})),
        &mut b,
    )
    .await;
    assert_silent(&mut a).await;
    assert_silent(&mut c).await;
}

#[tokio::test]
async fn unicast_reaches_only_the_recipient() {
    let relay = Relay::start(Config::default()).await;
    let mut a = relay.joined("r", "alice").await;
    let mut b = relay.joined("r", "bob").await;
    let mut c = relay.joined("r", "carol").await;
    next_text(&mut a).await; // bob's join
    next_text(&mut a).await; // carol's join
    next_text(&mut b).await; // carol's join
    relayed(
        &mut a,
        msg(
            "r",
            "alice",
            Some("bob"),
            json!({"type": "offer", "sdp": "v=0"}),
        ),
        &mut b,
    )
    .await;
    assert_silent(&mut c).await;

    // Someone not in the room: a clear error, to the sender only.
    send(
        &mut a,
        msg(
            "r",
            "alice",
            Some("dave"),
            json!({"type": "offer", "sdp": "v=0"}),
        ),
    )
    .await;
    let e = expect_error(&mut a, "unknown_peer").await;
    assert_eq!(e["to"], "alice");
    assert_eq!(e["room"], "r");
    assert_silent(&mut b).await;
}

#[tokio::test]
async fn unknown_types_from_newer_clients_are_forwarded_untouched() {
    let relay = Relay::start(Config::default()).await;
    let (mut a, mut b) = relay.alice_and_bob().await;
    let text = r#"{"v":2,"room":"r","from":"alice","seq":9,"type":"reaction","emoji":"👍"}"#;
    send(&mut a, text.into()).await;
    assert_eq!(next_text(&mut b).await, text);
}

#[tokio::test]
async fn abrupt_disconnect_is_announced_as_a_leave() {
    let relay = Relay::start(Config::default()).await;
    let mut a = relay.joined("r", "alice").await;
    let gone = relay.joined("r", "bob").await;
    next_text(&mut a).await; // bob's join
                             // Drop the TCP connection with no close handshake and no leave.
    drop(gone);
    let leave = next_json(&mut a).await;
    assert_eq!(
        leave,
        json!({"v": 1, "room": "r", "from": "bob", "type": "leave", "reason": "disconnected"})
    );
    // The room carries on: a newcomer is welcomed with alice only.
    let (_c, peers) = relay.join("r", "carol").await;
    assert_eq!(peers, json!([{"id": "alice", "name": "alice"}]));
}

#[tokio::test]
async fn a_clean_close_without_leave_is_announced_as_a_hang_up() {
    let relay = Relay::start(Config::default()).await;
    let (mut a, mut b) = relay.alice_and_bob().await;
    // A page that is closed sends a close frame but no leave.
    b.close(None).await.unwrap();
    assert_eq!(
        next_json(&mut a).await,
        json!({"v": 1, "room": "r", "from": "bob", "type": "leave"})
    );
}

#[tokio::test]
async fn a_leave_is_forwarded_once_and_the_peer_is_gone() {
    let relay = Relay::start(Config::default()).await;
    let (mut a, mut b) = relay.alice_and_bob().await;
    relayed(
        &mut b,
        msg("r", "bob", None, json!({"type": "leave"})),
        &mut a,
    )
    .await;
    // After leaving, bob is no longer addressable, and his close adds no
    // second leave.
    refused(
        &mut a,
        msg("r", "alice", Some("bob"), json!({"type": "ping"})),
        "unknown_peer",
    )
    .await;
    refused(
        &mut b,
        msg("r", "bob", None, json!({"type": "ping"})),
        "not_joined",
    )
    .await;
    b.close(None).await.unwrap();
    assert_silent(&mut a).await;
    // He may come back on a new connection with the same id.
    let (_b2, peers) = relay.join("r", "bob").await;
    assert_eq!(peers, json!([{"id": "alice", "name": "alice"}]));
}

#[tokio::test]
async fn the_first_id_is_bound_and_others_are_refused() {
    let relay = Relay::start(Config::default()).await;
    let (mut a, mut b) = relay.alice_and_bob().await;

    // Speaking as someone else.
    send(&mut a, msg("r", "bob", None, json!({"type": "leave"}))).await;
    let e = expect_error(&mut a, "spoofed_id").await;
    assert!(e["message"].as_str().unwrap().contains("alice"), "{e}");
    let join = || json!({"type": "join"});
    for (room, from, to, body, code) in [
        (
            "r",
            "mallory",
            Some("bob"),
            json!({"type": "offer", "sdp": "x"}),
            "spoofed_id",
        ),
        // Re-joining under another id.
        ("r", "mallory", None, join(), "spoofed_id"),
        // Another room on the same connection.
        ("elsewhere", "alice", None, join(), "wrong_room"),
        (
            "elsewhere",
            "alice",
            None,
            json!({"type": "ping"}),
            "wrong_room",
        ),
        // Nor may a client send a welcome of its own.
        (
            "r",
            "alice",
            Some("bob"),
            json!({"type": "welcome", "peers": []}),
            "bad_message",
        ),
    ] {
        refused(&mut a, msg(room, from, to, body), code).await;
    }
    // None of it reached bob, who still hears alice as herself.
    assert_silent(&mut b).await;
    relayed(
        &mut a,
        msg("r", "alice", None, json!({"type": "ping"})),
        &mut b,
    )
    .await;

    // A second connection cannot take a live id, nor claim to be the relay.
    let mut copy = relay.client().await;
    for (id, code) in [("alice", "id_taken"), ("relay", "bad_id")] {
        refused(&mut copy, msg("r", id, None, join()), code).await;
    }
    assert_silent(&mut b).await;
}

#[tokio::test]
async fn messages_before_join_are_refused() {
    let relay = Relay::start(Config::default()).await;
    let mut a = relay.client().await;
    send(
        &mut a,
        msg("r", "alice", None, json!({"type": "offer", "sdp": "v=0"})),
    )
    .await;
    let e = expect_error(&mut a, "not_joined").await;
    assert!(e.get("to").is_none(), "{e}");
    // Then joining works.
    send(&mut a, msg("r", "alice", None, json!({"type": "join"}))).await;
    assert_eq!(next_json(&mut a).await["type"], "welcome");
}

#[tokio::test]
async fn room_and_peer_ids_must_be_short_and_url_safe() {
    let relay = Relay::start(Config {
        max_id_len: 8,
        ..Config::default()
    })
    .await;
    let mut a = relay.client().await;
    for room in ["", "a b", "../etc", "ninechars"] {
        refused(
            &mut a,
            msg(room, "alice", None, json!({"type": "join"})),
            "bad_room",
        )
        .await;
    }
    for id in ["", "al ice", "ninechars"] {
        refused(
            &mut a,
            msg("r", id, None, json!({"type": "join"})),
            "bad_id",
        )
        .await;
    }
    send(&mut a, msg("r", "alice", None, json!({"type": "join"}))).await;
    assert_eq!(next_json(&mut a).await["type"], "welcome");
    assert_eq!(relay.health().await["rooms"], 1);
}

#[tokio::test]
async fn a_room_in_the_url_binds_the_connection_to_it() {
    let relay = Relay::start(Config::default()).await;
    let url = format!("ws://{}/ws/room-7", relay.addr);
    let mut a = tokio_tungstenite::connect_async(url).await.unwrap().0;
    refused(
        &mut a,
        msg("room-8", "alice", None, json!({"type": "join"})),
        "wrong_room",
    )
    .await;
    send(
        &mut a,
        msg("room-7", "alice", None, json!({"type": "join"})),
    )
    .await;
    assert_eq!(next_json(&mut a).await["type"], "welcome");

    // A malformed room in the URL is refused before the upgrade.
    let bad = format!("ws://{}/ws/bad%20room", relay.addr);
    match tokio_tungstenite::connect_async(bad).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        }
        other => panic!("expected HTTP 400, got {other:?}"),
    }
}

#[tokio::test]
async fn room_full_refuses_the_newcomer_until_someone_leaves() {
    let relay = Relay::start(Config {
        max_peers_per_room: 2,
        ..Config::default()
    })
    .await;
    let (mut a, mut b) = relay.alice_and_bob().await;
    let mut c = relay.client().await;
    send(&mut c, msg("r", "carol", None, json!({"type": "join"}))).await;
    let e = expect_error(&mut c, "room_full").await;
    assert!(e["message"].as_str().unwrap().contains('2'), "{e}");
    assert_silent(&mut a).await;
    assert_silent(&mut b).await;
    // Another room is fine.
    let _d = relay.joined("other", "dave").await;
    // Bob leaves; carol's retry on the same connection is welcomed.
    send(&mut b, msg("r", "bob", None, json!({"type": "leave"}))).await;
    next_text(&mut a).await;
    send(&mut c, msg("r", "carol", None, json!({"type": "join"}))).await;
    let welcome = next_json(&mut c).await;
    assert_eq!(welcome["peers"], json!([{"id": "alice", "name": "alice"}]));
}

#[tokio::test]
async fn max_rooms_refuses_new_rooms_not_existing_ones() {
    let relay = Relay::start(Config {
        max_rooms: 1,
        ..Config::default()
    })
    .await;
    let _a = relay.joined("r", "alice").await;
    let mut b = relay.client().await;
    refused(
        &mut b,
        msg("second", "bob", None, json!({"type": "join"})),
        "too_many_rooms",
    )
    .await;
    // Joining the existing room still works.
    let _c = relay.joined("r", "carol").await;
    let health = relay.health().await;
    assert_eq!(
        (health["rooms"].clone(), health["peers"].clone()),
        (json!(1), json!(2))
    );
}

#[tokio::test]
async fn max_connections_answers_503() {
    let relay = Relay::start(Config {
        max_connections: 2,
        ..Config::default()
    })
    .await;
    let mut a = relay.joined("r", "alice").await;
    let _b = relay.joined("r", "bob").await;
    next_text(&mut a).await;
    match tokio_tungstenite::connect_async(format!("ws://{}/ws", relay.addr)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        }
        other => panic!("expected HTTP 503, got {other:?}"),
    }
}

#[tokio::test]
async fn rate_limit_drops_the_excess_with_one_error() {
    let relay = Relay::start(Config {
        rate_per_sec: 0.5,
        rate_burst: 5.0,
        ..Config::default()
    })
    .await;
    let mut a = relay.joined("r", "alice").await; // the join took a token
    let mut b = relay.joined("r", "bob").await;
    next_text(&mut a).await;
    for i in 0..20 {
        send(
            &mut a,
            msg("r", "alice", None, json!({"type": "ping", "n": i})),
        )
        .await;
    }
    // Four go through (burst of five, less the join), then one error.
    for i in 0..4 {
        assert_eq!(next_json(&mut b).await["n"], i);
    }
    expect_error(&mut a, "rate_limited").await;
    assert_silent(&mut b).await;
    assert_silent(&mut a).await; // one complaint, not sixteen
                                 // Tokens come back with time.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    send(
        &mut a,
        msg("r", "alice", None, json!({"type": "ping", "n": 99})),
    )
    .await;
    assert_eq!(next_json(&mut b).await["n"], 99);
}

#[tokio::test]
async fn malformed_json_is_an_error_and_the_socket_keeps_working() {
    let relay = Relay::start(Config::default()).await;
    let (mut a, mut b) = relay.alice_and_bob().await;
    for bad in [
        "not json",
        "[1,2,3]",
        r#"{"v":1,"room":"r","type":"ping"}"#,
        r#"{"v":1,"room":"r","from":"alice","type":"offer"}"#,
        r#"{"v":"one","room":"r","from":"alice","type":"ping"}"#,
    ] {
        send(&mut a, bad.into()).await;
        let e = expect_error(&mut a, "bad_message").await;
        assert_eq!(e["to"], "alice");
    }
    assert_silent(&mut b).await;
    relayed(
        &mut a,
        msg("r", "alice", None, json!({"type": "ping"})),
        &mut b,
    )
    .await;
}

#[tokio::test]
async fn binary_frames_are_refused_and_the_socket_keeps_working() {
    let relay = Relay::start(Config::default()).await;
    let (mut a, mut b) = relay.alice_and_bob().await;
    a.send(Message::binary(vec![0u8, 1, 2])).await.unwrap();
    expect_error(&mut a, "binary_frame").await;
    assert_silent(&mut b).await;
    relayed(
        &mut a,
        msg("r", "alice", None, json!({"type": "ping"})),
        &mut b,
    )
    .await;
}

#[tokio::test]
async fn oversized_messages_are_refused_and_huge_frames_close_only_their_sender() {
    let relay = Relay::start(Config {
        max_message_bytes: 1024,
        // A welcome for three fits 1024 bytes (Config::validate).
        max_peers_per_room: 3,
        ..Config::default()
    })
    .await;
    let (mut a, mut b) = relay.alice_and_bob().await;
    // Over the limit: refused with an error; the connection stays.
    let sdp = "x".repeat(2000);
    send(
        &mut a,
        msg("r", "alice", None, json!({"type": "offer", "sdp": sdp})),
    )
    .await;
    let e = expect_error(&mut a, "too_large").await;
    assert!(e["message"].as_str().unwrap().contains("1024"), "{e}");
    assert_silent(&mut b).await;
    // Exactly at the limit is fine.
    let base = msg("r", "alice", None, json!({"type": "offer", "sdp": ""}));
    let fits = msg(
        "r",
        "alice",
        None,
        json!({"type": "offer", "sdp": "y".repeat(1024 - base.len())}),
    );
    assert_eq!(fits.len(), 1024);
    send(&mut a, fits.clone()).await;
    assert_eq!(next_text(&mut b).await, fits);

    // Over four times the limit: the error, then close 1009.
    let (mut huge, _) = relay.join("r", "hugo").await;
    next_text(&mut a).await;
    next_text(&mut b).await;
    refused(&mut huge, "z".repeat(8192), "too_large").await;
    let frame = closed(&mut huge).await.expect("a close frame with a code");
    assert_eq!(frame.code, CloseCode::Size);
    // The others hear that hugo dropped out, and carry on.
    assert_eq!(next_json(&mut a).await["reason"], "disconnected");
    assert_eq!(next_json(&mut b).await["reason"], "disconnected");
    relayed(
        &mut a,
        msg("r", "alice", None, json!({"type": "ping"})),
        &mut b,
    )
    .await;
}

#[tokio::test]
async fn ping_to_the_relay_gets_a_pong() {
    let relay = Relay::start(Config::default()).await;
    let mut a = relay.client().await;
    // Before joining too: a client can test the relay first.
    send(
        &mut a,
        msg("r", "alice", Some("relay"), json!({"type": "ping"})),
    )
    .await;
    let pong = next_json(&mut a).await;
    assert_eq!(
        pong,
        json!({"v": 1, "room": "r", "from": "relay", "to": "alice", "type": "pong"})
    );
    refused(
        &mut a,
        msg(
            "r",
            "alice",
            Some("relay"),
            json!({"type": "offer", "sdp": "x"}),
        ),
        "bad_message",
    )
    .await;
}

#[tokio::test]
async fn idle_clients_are_closed_and_live_ones_kept() {
    let relay = Relay::start(Config {
        ping_interval: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(400),
        ..Config::default()
    })
    .await;
    let mut live = relay.joined("r", "alice").await;
    let mut idle = relay.joined("r", "bob").await;
    // Bob's client never reads, so it never answers the relay's pings.
    // Alice's reads all along (tungstenite answers pings as it reads).
    let mut saw_leave = None;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
    while tokio::time::Instant::now() < deadline {
        if let Ok(Some(Ok(Message::Text(t)))) =
            tokio::time::timeout(Duration::from_millis(50), live.next()).await
        {
            let m: serde_json::Value = serde_json::from_str(&t).unwrap();
            if m["type"] == "leave" {
                saw_leave = Some(m);
            }
        }
    }
    let leave = saw_leave.expect("bob's idle connection was not closed");
    assert_eq!(
        (leave["from"].clone(), leave["reason"].clone()),
        (json!("bob"), json!("disconnected"))
    );
    // Read what the relay sent bob straight off the socket (through
    // tungstenite, each ping would first be answered into a closed socket):
    // pings, then a close frame with 1001 "idle timeout", then the end.
    let MaybeTlsStream::Plain(tcp) = idle.get_mut() else {
        panic!("plain TCP expected");
    };
    let mut raw = Vec::new();
    use tokio::io::AsyncReadExt;
    tokio::time::timeout(Duration::from_secs(3), tcp.read_to_end(&mut raw))
        .await
        .expect("the relay did not end the idle connection")
        .ok();
    let mut close = vec![0x88, 2 + 12, 0x03, 0xE9];
    close.extend_from_slice(b"idle timeout");
    assert!(
        raw.windows(close.len()).any(|w| w == close.as_slice()),
        "no 1001 idle timeout close frame in {raw:?}"
    );
    // Alice, who answered the pings, is still connected and in the room.
    assert_eq!(relay.health().await["peers"], 1);
    send(
        &mut live,
        msg("r", "alice", Some("relay"), json!({"type": "ping"})),
    )
    .await;
    assert_eq!(next_json(&mut live).await["type"], "pong");
}

#[tokio::test]
async fn health_counts_connections_rooms_and_peers() {
    let relay = Relay::start(Config::default()).await;
    let h = relay.health().await;
    assert_eq!(
        (
            h["status"].clone(),
            h["mode"].clone(),
            h["protocol"].clone()
        ),
        (json!("ok"), json!("rooms"), json!(1))
    );
    let mut a = relay.joined("r1", "alice").await;
    let _b = relay.joined("r2", "bob").await;
    let _c = relay.client().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let h = relay.health().await;
    assert_eq!(
        (
            h["connections"].clone(),
            h["rooms"].clone(),
            h["peers"].clone()
        ),
        (json!(3), json!(2), json!(2))
    );
    a.close(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let h = relay.health().await;
    assert_eq!(
        (
            h["connections"].clone(),
            h["rooms"].clone(),
            h["peers"].clone()
        ),
        (json!(2), json!(1), json!(1))
    );
}

// --- broadcast mode ---------------------------------------------------------

#[tokio::test]
async fn broadcast_mode_forwards_everything_to_everyone_including_the_sender() {
    let relay = Relay::start(Config {
        mode: Mode::Broadcast,
        ..Config::default()
    })
    .await;
    let (mut a, mut b) = (relay.client().await, relay.client().await);
    tokio::time::sleep(Duration::from_millis(50)).await;
    // No rooms, no ids, no checks: anything goes to all, echo included.
    for text in [
        msg(
            "r1",
            "alice",
            Some("zed"),
            json!({"type": "offer", "sdp": "v=0"}),
        ),
        "not even json".to_owned(),
    ] {
        send(&mut a, text.clone()).await;
        assert_eq!(next_text(&mut a).await, text);
        assert_eq!(next_text(&mut b).await, text);
    }
    assert_eq!(relay.health().await["mode"], "broadcast");
    a.send(Message::binary(vec![1u8])).await.unwrap();
    assert_silent(&mut b).await;
}

#[tokio::test]
async fn shutdown_closes_sockets_with_going_away() {
    let mut relay = Relay::start(Config::default()).await;
    let mut a = relay.client().await;
    relay.stop.take().unwrap().send(()).unwrap();
    let frame = closed(&mut a).await;
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

// --- TURN credentials ---------------------------------------------------------

async fn json_body(res: axum::response::Response) -> serde_json::Value {
    serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap()
}

#[tokio::test]
async fn ice_servers_hands_out_short_lived_turn_credentials() {
    let config = Config {
        turn: Some(TurnConfig {
            secret: "s3cret".into(),
            urls: vec![
                "turn:127.0.0.1:3478?transport=udp".into(),
                "turn:127.0.0.1:3478?transport=tcp".into(),
            ],
            stun_urls: vec!["stun:127.0.0.1:3478".into()],
            ttl: Duration::from_secs(600),
        }),
        ..Config::default()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let res = get(&config, "/ice-servers?id=alice-1", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header_of(&res, header::CACHE_CONTROL), "no-store");
    assert_eq!(header_of(&res, header::ACCESS_CONTROL_ALLOW_ORIGIN), "*");
    let body = json_body(res).await;
    assert_eq!(body["ttl"], 600);
    let expires = body["expiresAt"].as_u64().unwrap();
    assert!(
        (now + 599..=now + 601).contains(&expires),
        "{expires} vs {now}"
    );
    assert_eq!(
        body["iceServers"][0],
        json!({"urls": ["stun:127.0.0.1:3478"]})
    );
    let turn = &body["iceServers"][1];
    assert_eq!(turn["urls"][1], "turn:127.0.0.1:3478?transport=tcp");
    // alice-1 is in no room: her id is left out of the username (an id
    // goes in only for a peer joined from the same address: tests/hostile.rs).
    let username = turn["username"].as_str().unwrap();
    assert_eq!(username, expires.to_string());
    // The credential is what coturn computes from the shared secret.
    assert_eq!(
        turn["credential"],
        turn_credential("s3cret", expires, None).1
    );

    // A bad id is left out of the username rather than passed to coturn.
    let body = json_body(get(&config, "/ice-servers?id=a:b&room=r", None).await).await;
    let username = body["iceServers"][1]["username"].as_str().unwrap();
    assert!(!username.contains(':'), "{username}");
    let body = json_body(get(&config, "/ice-servers", None).await).await;
    assert!(body["iceServers"][1]["credential"].is_string());
}

#[tokio::test]
async fn ice_servers_without_turn_is_a_404_that_says_so() {
    let res = get(&Config::default(), "/ice-servers", None).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(header_of(&res, header::ACCESS_CONTROL_ALLOW_ORIGIN), "*");
    let body = json_body(res).await;
    assert_eq!(body["error"], "no_turn");
    assert!(body["message"].as_str().unwrap().contains("--turn-secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_sockets_in_hundreds_of_rooms() {
    // Two thousand clients and their two thousand server ends in one
    // process: raise the open-file limit where the soft one is lower.
    rlimit::increase_nofile_limit(8192).unwrap();
    const ROOMS: usize = 250;
    const PER_ROOM: usize = 8;
    let relay = Relay::start(Config {
        max_peers_per_room: PER_ROOM,
        // All from 127.0.0.1: the per-address limits would stop them.
        per_addr: PerAddr {
            http_connections: 10_000,
            websockets: 10_000,
            rooms: 10_000,
            joins_per_sec: 1e6,
            joins_burst: 1e6,
            ice_per_sec: 1e6,
            ice_burst: 1e6,
        },
        ..Config::default()
    })
    .await;
    let mut clients = Vec::with_capacity(ROOMS * PER_ROOM);
    for r in 0..ROOMS {
        for p in 0..PER_ROOM {
            let mut c = relay.client().await;
            send(
                &mut c,
                msg(
                    &format!("room{r}"),
                    &format!("p{p}"),
                    None,
                    json!({"type": "join"}),
                ),
            )
            .await;
            clients.push(c);
        }
    }
    // Each client's first message is its welcome: then all joins are done.
    for c in &mut clients {
        assert_eq!(next_json(c).await["type"], "welcome");
    }
    let h = relay.health().await;
    assert_eq!(
        (
            h["connections"].clone(),
            h["rooms"].clone(),
            h["peers"].clone()
        ),
        (json!(2000), json!(ROOMS), json!(2000))
    );
    // In every room the last to join speaks; the seven others hear it.
    for r in 0..ROOMS {
        let last = &mut clients[r * PER_ROOM + PER_ROOM - 1];
        send(
            last,
            msg(
                &format!("room{r}"),
                &format!("p{}", PER_ROOM - 1),
                None,
                json!({"type": "ping", "n": r}),
            ),
        )
        .await;
    }
    for r in 0..ROOMS {
        for p in 0..PER_ROOM - 1 {
            let c = &mut clients[r * PER_ROOM + p];
            // The joins of those after it, then the ping.
            let mut got = None;
            for _ in 0..PER_ROOM + 1 {
                let m = next_json(c).await;
                if m["type"] == "ping" {
                    got = Some(m);
                    break;
                }
            }
            let m = got.unwrap_or_else(|| panic!("room{r} p{p} heard no ping"));
            assert_eq!(
                (m["n"].clone(), m["room"].clone()),
                (json!(r), json!(format!("room{r}")))
            );
        }
    }
}

#[tokio::test]
async fn fingerprinted_assets_are_served_precompressed_from_memory() {
    let dir = dist();
    let js = "peercall-0123456789abcdef.js";
    let source: String = (0..4000)
        .map(|i| format!("export const v{i} = {i};\n"))
        .collect();
    std::fs::write(dir.path().join(js), &source).unwrap();
    let config = Config {
        static_dir: Some(dir.path().to_owned()),
        ..Config::default()
    };
    // One router, so its background compression fills the cache it serves.
    let router = app(config);
    let fetch = |enc: &'static str, method: &'static str| {
        let router = router.clone();
        async move {
            let req = Request::builder()
                .method(method)
                .uri(format!("/{js}"))
                .header(header::ACCEPT_ENCODING, enc)
                .body(Body::empty())
                .unwrap();
            router.oneshot(req).await.unwrap()
        }
    };
    // Compressed on the fly (no length known up front) until the
    // background pass is done; then from memory, with its length.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let br = loop {
        let res = fetch("gzip, deflate, br", "GET").await;
        assert_eq!(header_of(&res, header::CONTENT_ENCODING), "br");
        if res.headers().contains_key(header::CONTENT_LENGTH) {
            break res;
        }
        assert!(std::time::Instant::now() < deadline, "never precompressed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(header_of(&br, header::CONTENT_TYPE), "text/javascript");
    assert_eq!(header_of(&br, header::VARY), "accept-encoding");
    assert_eq!(
        header_of(&br, header::CACHE_CONTROL),
        "public, max-age=31536000, immutable"
    );
    let body = br.into_body().collect().await.unwrap().to_bytes();
    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut brotli::Decompressor::new(&body[..], 4096), &mut plain)
        .unwrap();
    assert_eq!(plain, source.as_bytes());
    assert!(
        body.len() * 5 < source.len(),
        "brotli 11 compresses this well"
    );

    let gz = fetch("gzip", "GET").await;
    assert_eq!(header_of(&gz, header::CONTENT_ENCODING), "gzip");
    let body = gz.into_body().collect().await.unwrap().to_bytes();
    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut plain).unwrap();
    assert_eq!(plain, source.as_bytes());

    let head = fetch("br", "HEAD").await;
    assert_eq!(head.status(), StatusCode::OK);
    assert!(
        header_of(&head, header::CONTENT_LENGTH)
            .parse::<usize>()
            .unwrap()
            > 0
    );
    assert!(head
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .is_empty());

    // A client that takes no compression gets the file as it is.
    let identity = fetch("identity", "GET").await;
    assert_eq!(header_of(&identity, header::CONTENT_ENCODING), "");
    let body = identity.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, source.as_bytes());
}
