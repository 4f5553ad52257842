//! The relay's WebSocket side, driven over real loopback sockets on port 0:
//! rooms, addressing, refusals, transport limits, broadcast mode, shutdown.

#[path = "common/client.rs"]
mod client;
mod common;
use client::*;
use common::{msg, Relay};

use std::time::Duration;

use axum::http::StatusCode;
use futures_util::{SinkExt, StreamExt};
use peercall_relay::{Config, Mode};
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::MaybeTlsStream;

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

#[tokio::test]
async fn phone_calls_are_refused_in_words_without_a_gateway() {
    let call = |from: &str, address: &str| {
        msg(
            "r",
            from,
            Some("relay"),
            json!({"type": "phone_call", "address": address, "sdp": "v=0\r\n"}),
        )
    };
    // A relay without --janus: no "phone" feature, and a call says why.
    let relay = Relay::start(Config::default()).await;
    let mut early = relay.client().await;
    send(&mut early, call("early", "alice@example.com")).await;
    expect_error(&mut early, "not_joined").await;
    let mut a = relay.client().await;
    send(&mut a, msg("r", "alice", None, json!({"type": "join"}))).await;
    let welcome = next_json(&mut a).await;
    assert!(
        !welcome["features"]
            .as_array()
            .is_some_and(|f| f.contains(&json!("phone"))),
        "{welcome}"
    );
    send(&mut a, call("alice", "alice@example.com")).await;
    let ended = next_json(&mut a).await;
    assert_eq!(
        (
            &ended["from"],
            &ended["type"],
            &ended["state"],
            &ended["cause"]
        ),
        (
            &json!("relay"),
            &json!("phone_state"),
            &json!("ended"),
            &json!("unavailable")
        ),
        "{ended}"
    );
    // Only the relay sends phone_state.
    refused(
        &mut a,
        msg(
            "r",
            "alice",
            None,
            json!({"type": "phone_state", "state": "answered"}),
        ),
        "bad_message",
    )
    .await;

    // A relay whose Janus is not there: "phone" offered, and a call ends
    // with cause gateway and the reason, not silence; a bad address is
    // refused before any gateway is tried.
    let relay = Relay::start(Config {
        phone: std::sync::Arc::new(peercall_relay::PhoneConfig {
            janus: vec!["ws://127.0.0.1:9".into()],
            ..Default::default()
        }),
        ..Config::default()
    })
    .await;
    let mut a = relay.client().await;
    send(&mut a, msg("r", "alice", None, json!({"type": "join"}))).await;
    let welcome = next_json(&mut a).await;
    assert_eq!(welcome["features"], json!(["phone", "sfu"]), "{welcome}");
    send(&mut a, call("alice", "call me")).await;
    let ended = next_json(&mut a).await;
    assert_eq!(
        (&ended["state"], &ended["cause"]),
        (&json!("ended"), &json!("bad_address")),
        "{ended}"
    );
    send(&mut a, call("alice", "alice@example.com")).await;
    let ended = tokio::time::timeout(Duration::from_secs(10), next_json(&mut a))
        .await
        .expect("a call to a missing gateway ends within 10 s");
    assert_eq!(
        (&ended["state"], &ended["cause"]),
        (&json!("ended"), &json!("gateway")),
        "{ended}"
    );
    assert!(
        ended["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{ended}"
    );
    // The connection goes on working.
    send(
        &mut a,
        msg("r", "alice", Some("relay"), json!({"type": "ping"})),
    )
    .await;
    assert_eq!(next_json(&mut a).await["type"], "pong");
}

#[tokio::test]
async fn a_room_past_mesh_max_is_routed_to_the_sfu_and_back() {
    let sfu = |from: &str, body: serde_json::Value| msg("r", from, Some("relay"), body);
    // Without --janus: no "sfu", and its messages are refused in words.
    let relay = Relay::start(Config::default()).await;
    let (mut a, _) = relay.join("r", "alice").await;
    refused(
        &mut a,
        sfu("alice", json!({"type": "sfu_publish", "sdp": "v=0\r\n"})),
        "sfu_unavailable",
    )
    .await;

    // With a Janus (not there) and --mesh-max 2.
    let relay = Relay::start(Config {
        phone: std::sync::Arc::new(peercall_relay::PhoneConfig {
            janus: vec!["ws://127.0.0.1:9".into()],
            ..Default::default()
        }),
        mesh_max: 2,
        ..Config::default()
    })
    .await;
    let mut early = relay.client().await;
    refused(
        &mut early,
        sfu("early", json!({"type": "sfu_leave"})),
        "not_joined",
    )
    .await;
    let mut a = relay.client().await;
    send(&mut a, msg("r", "alice", None, json!({"type": "join"}))).await;
    let welcome = next_json(&mut a).await;
    assert_eq!(welcome["features"], json!(["phone", "sfu"]), "{welcome}");
    assert!(welcome.get("route").is_none(), "peer to peer: {welcome}");
    let (mut b, _) = relay.join("r", "bob").await;
    assert_eq!(next_json(&mut a).await["type"], "join");
    // The third: the others hear the route before the join, the newcomer
    // reads it in its welcome.
    let mut c = relay.client().await;
    send(&mut c, msg("r", "carol", None, json!({"type": "join"}))).await;
    let welcome = next_json(&mut c).await;
    assert_eq!(welcome["route"], "sfu", "{welcome}");
    for other in [&mut a, &mut b] {
        let route = next_json(other).await;
        assert_eq!(
            (&route["type"], &route["route"], &route["from"]),
            (&json!("route"), &json!("sfu"), &json!("relay")),
            "{route}"
        );
        assert_eq!(next_json(other).await["type"], "join");
    }
    // Only the relay says these.
    for body in [
        json!({"type": "route", "route": "mesh"}),
        json!({"type": "sfu_published", "sdp": "v=0\r\n"}),
        json!({"type": "sfu_subscription", "sdp": "v=0\r\n", "streams": []}),
    ] {
        refused(&mut a, msg("r", "alice", None, body), "bad_message").await;
    }
    refused(
        &mut a,
        sfu(
            "alice",
            json!({"type": "sfu_layer", "peer": "bob", "layer": 7}),
        ),
        "bad_message",
    )
    .await;
    // A Janus that is not there: said, not silence.
    send(
        &mut a,
        sfu("alice", json!({"type": "sfu_publish", "sdp": "v=0\r\n"})),
    )
    .await;
    let failed = tokio::time::timeout(Duration::from_secs(10), expect_error(&mut a, "sfu_failed"))
        .await
        .expect("the failure is said within 10 s");
    assert!(
        failed["message"].as_str().unwrap().contains("Janus"),
        "{failed}"
    );
    // Carol goes: the last two hear her leave, then the way back.
    send(&mut c, msg("r", "carol", None, json!({"type": "leave"}))).await;
    for other in [&mut a, &mut b] {
        assert_eq!(next_json(other).await["type"], "leave");
        let route = next_json(other).await;
        assert_eq!(
            (&route["type"], &route["route"]),
            (&json!("route"), &json!("mesh")),
            "{route}"
        );
    }
}
