//! Browser tests of the signaling client against a real peercall relay.
//!
//! `scripts/test.sh` starts the relay binary on a free loopback port and
//! passes its URL in `PEERCALL_TEST_RELAY` when it builds these tests.
#![cfg(target_arch = "wasm32")]

use futures::channel::mpsc::UnboundedReceiver;
use futures::{FutureExt, StreamExt};
use gloo_timers::future::TimeoutFuture;
use peercall::room::{Event, Gone, Signal, Timing};
use peercall::web::signaling::{random_peer_id, Options, SignalingClient, Update};
use peercall_protocol::{Candidate, ErrorCode};
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

mod page_script;

wasm_bindgen_test_configure!(run_in_browser);

fn relay_url() -> String {
    match option_env!("PEERCALL_TEST_RELAY") {
        Some(url) => url.to_owned(),
        None => panic!(
            "PEERCALL_TEST_RELAY is not set: run scripts/test.sh, or start \
             peercall-relay and set it to ws://127.0.0.1:PORT/ws when building the tests"
        ),
    }
}

fn start(
    url: &str,
    room: &str,
    name: &str,
) -> (String, SignalingClient, UnboundedReceiver<Update>) {
    let me = random_peer_id().unwrap();
    let (client, updates) = SignalingClient::start(Options {
        urls: vec![url.to_owned()],
        room: room.to_owned(),
        me: me.clone(),
        name: Some(name.to_owned()),
        timing: Timing::default(),
        capacity: peercall::room::MAX_PEOPLE,
    });
    (me, client, updates)
}

/// Waits up to 5 s for an update that `want` accepts, skipping others.
async fn wait_for(
    updates: &mut UnboundedReceiver<Update>,
    what: &str,
    want: impl Fn(&Update) -> bool,
) -> Update {
    let mut timeout = TimeoutFuture::new(5_000).fuse();
    let mut seen = Vec::new();
    loop {
        futures::select! {
            update = updates.next() => match update {
                Some(u) if want(&u) => return u,
                Some(u) => seen.push(u),
                None => panic!("updates ended while waiting for {what}; saw {seen:?}"),
            },
            () = timeout => panic!("no {what} within 5 s; saw {seen:?}"),
        }
    }
}

#[wasm_bindgen_test]
async fn random_peer_ids_are_128_bits_and_differ() {
    let (a, b) = (random_peer_id().unwrap(), random_peer_id().unwrap());
    assert_eq!(a.len(), 32);
    assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(a, b);
}

#[wasm_bindgen_test]
async fn two_clients_meet_signal_and_part_through_the_real_relay() {
    let url = relay_url();
    let room = random_peer_id().unwrap();
    let (alice, a, mut a_updates) = start(&url, &room, "Alice");
    wait_for(
        &mut a_updates,
        "alice connected",
        |u| matches!(u, Update::Connected { url: connected } if *connected == url),
    )
    .await;
    wait_for(&mut a_updates, "alice welcomed", |u| {
        matches!(u, Update::Room(Event::Welcomed { .. }))
    })
    .await;

    let (bob, b, mut b_updates) = start(&url, &room, "Bob");
    // Bob learns of Alice from the relay's welcome; Alice from Bob's join.
    wait_for(&mut b_updates, "bob sees alice", |u| {
        matches!(u, Update::Room(Event::Joined { id, name }) if *id == alice && name.as_deref() == Some("Alice"))
    })
    .await;
    wait_for(&mut a_updates, "alice sees bob", |u| {
        matches!(u, Update::Room(Event::Joined { id, name }) if *id == bob && name.as_deref() == Some("Bob"))
    })
    .await;

    // An offer one way, a candidate the other, each to its one recipient.
    a.signal(
        &bob,
        Signal::Offer {
            sdp: "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n".into(),
            ice_restart: false,
        },
    );
    let got = wait_for(&mut b_updates, "the offer", |u| {
        matches!(u, Update::Room(Event::Signal { .. }))
    })
    .await;
    assert_eq!(
        got,
        Update::Room(Event::Signal {
            from: alice.clone(),
            signal: Signal::Offer {
                sdp: "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n".into(),
                ice_restart: false
            }
        })
    );
    let candidate = Candidate {
        candidate: "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_m_line_index: Some(0),
        username_fragment: None,
    };
    b.signal(&alice, Signal::Candidate(candidate.clone()));
    let got = wait_for(&mut a_updates, "the candidate", |u| {
        matches!(u, Update::Room(Event::Signal { .. }))
    })
    .await;
    assert_eq!(
        got,
        Update::Room(Event::Signal {
            from: bob.clone(),
            signal: Signal::Candidate(candidate)
        })
    );

    // Bob hangs up: his client closes, Alice sees him go.
    b.leave();
    wait_for(&mut b_updates, "bob closed", |u| *u == Update::Closed).await;
    wait_for(&mut a_updates, "alice sees bob leave", |u| {
        *u == Update::Room(Event::Left {
            id: bob.clone(),
            why: Gone::HungUp,
        })
    })
    .await;
    drop(a);
    wait_for(&mut a_updates, "alice closed", |u| *u == Update::Closed).await;
}

#[wasm_bindgen_test]
async fn relay_refusals_reach_the_app_as_errors() {
    let url = relay_url();
    let room = random_peer_id().unwrap();
    let (_me, a, mut updates) = start(&url, &room, "Ada");
    wait_for(&mut updates, "welcome", |u| {
        matches!(u, Update::Room(Event::Welcomed { .. }))
    })
    .await;
    a.signal(
        "0123456789abcdef0123456789abcdef",
        Signal::Answer { sdp: "v=0".into() },
    );
    wait_for(&mut updates, "unknown_peer", |u| {
        matches!(
            u,
            Update::Room(Event::RelayError {
                code: ErrorCode::UnknownPeer,
                ..
            })
        )
    })
    .await;
    let (_other, _b, mut b_updates) = start(&url, &room, "Bo");
    let Update::Room(Event::Joined { id: other, .. }) = wait_for(&mut updates, "bo", |u| {
        matches!(u, Update::Room(Event::Joined { .. }))
    })
    .await
    else {
        unreachable!()
    };
    wait_for(&mut b_updates, "bo welcomed", |u| {
        matches!(u, Update::Room(Event::Welcomed { .. }))
    })
    .await;
    a.signal(
        &other,
        Signal::Offer {
            sdp: "x".repeat(70 * 1024),
            ice_restart: false,
        },
    );
    let err = wait_for(&mut updates, "too_large", |u| {
        matches!(u, Update::Room(Event::RelayError { .. }))
    })
    .await;
    let Update::Room(Event::RelayError { code, message }) = err else {
        unreachable!()
    };
    assert_eq!(code, ErrorCode::TooLarge);
    assert!(message.contains("65536"), "{message}");
    // The connection is still up: a small offer gets through.
    a.signal(
        &other,
        Signal::Offer {
            sdp: "v=0".into(),
            ice_restart: false,
        },
    );
    wait_for(&mut b_updates, "the small offer", |u| {
        matches!(u, Update::Room(Event::Signal { signal: Signal::Offer { sdp, .. }, .. }) if sdp == "v=0")
    })
    .await;
}

#[wasm_bindgen_test]
async fn an_unreachable_relay_is_reported_and_retried() {
    // Port 9 (discard) has no listener on loopback here.
    let (_me, client, mut updates) = start("ws://127.0.0.1:9/ws", "room1", "Ada");
    let first = wait_for(&mut updates, "a disconnect", |u| {
        matches!(u, Update::Disconnected { .. })
    })
    .await;
    let Update::Disconnected {
        reason,
        retry_in_ms,
    } = first
    else {
        unreachable!()
    };
    assert!(reason.contains("unreachable"), "{reason}");
    assert!((250..=500).contains(&retry_in_ms), "{retry_in_ms}");
    let second = wait_for(&mut updates, "a second attempt", |u| {
        matches!(u, Update::Disconnected { .. })
    })
    .await;
    let Update::Disconnected { retry_in_ms, .. } = second else {
        unreachable!()
    };
    assert!(
        (500..=1_000).contains(&retry_in_ms),
        "backs off: {retry_in_ms}"
    );
    client.leave();
    wait_for(&mut updates, "closed", |u| *u == Update::Closed).await;
}

/// The WebSocket index.html opens for a room link is the one the call
/// uses: taken over (its handler gone), open while the call is, and what
/// the relay said before the app was there is read, not lost.
#[wasm_bindgen_test]
async fn the_page_scripts_socket_is_taken_over_with_what_came_first() {
    let url = relay_url();
    let host = url
        .strip_prefix("ws://")
        .and_then(|rest| rest.strip_suffix("/ws"))
        .expect("ws://HOST/ws");
    let early = page_script::run("", host);
    let field = |name: &str| js_sys::Reflect::get(&early, &name.into()).unwrap();
    // It opens once config.json (absent here) has said no other relay.
    let mut socket = wasm_bindgen::JsValue::UNDEFINED;
    for _ in 0..250 {
        socket = field("socket");
        if !socket.is_undefined() {
            break;
        }
        TimeoutFuture::new(20).await;
    }
    let socket: web_sys::WebSocket = socket.dyn_into().expect("the page opened a socket");
    assert_eq!(socket.url(), url);
    // Someone in the room spoke before the app started: kept by the page.
    let room = random_peer_id().unwrap();
    let someone = random_peer_id().unwrap();
    let said = format!(
        r#"{{"v":1,"room":"{room}","from":"{someone}","seq":1,"type":"join","name":"Early"}}"#
    );
    field("kept")
        .unchecked_into::<js_sys::Array>()
        .push(&said.into());

    let (_, client, mut updates) = start(&url, &room, "Late");
    wait_for(&mut updates, "connected", |u| {
        matches!(u, Update::Connected { .. })
    })
    .await;
    assert!(field("socket").is_undefined(), "taken from the page");
    assert!(socket.onmessage().is_none(), "the page's handler is gone");
    assert_eq!(socket.ready_state(), web_sys::WebSocket::OPEN);
    wait_for(&mut updates, "the kept join", |u| {
        matches!(u, Update::Room(Event::Joined { id, name }) if *id == someone && name.as_deref() == Some("Early"))
    })
    .await;
    client.leave();
    wait_for(&mut updates, "closed", |u| matches!(u, Update::Closed)).await;
    let mut closed = false;
    for _ in 0..100 {
        if socket.ready_state() >= web_sys::WebSocket::CLOSING {
            closed = true;
            break;
        }
        TimeoutFuture::new(20).await;
    }
    assert!(
        closed,
        "leaving closes the page's socket: it was the call's"
    );
}
