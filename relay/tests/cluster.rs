//! Several relay processes on one Redis behave as one relay
//! (docs/PROTOCOL.md 5.9): the real `peercall-relay` binary, started two or
//! three times with `--redis`, and Debian's `redis-server` started here on
//! a free loopback port with a generated config (`PEERCALL_REDIS_SERVER_BIN`,
//! which scripts/test.sh sets).

#[path = "common/client.rs"]
mod client;
mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use client::{assert_silent, expect_error, next_json, next_text, relayed, send, Client};
use common::msg;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A redis-server of our own: loopback, no persistence, no service.
struct Redis {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Redis {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_at(free_port(), dir).await
    }

    async fn start_at(port: u16, dir: tempfile::TempDir) -> Self {
        let bin = std::env::var_os("PEERCALL_REDIS_SERVER_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| "redis-server".into());
        let config = dir.path().join("redis.conf");
        std::fs::write(
            &config,
            format!(
                "port {port}\nbind 127.0.0.1\nprotected-mode yes\nsave \"\"\nappendonly no\n\
                 daemonize no\ndir {}\nlogfile {}\n",
                dir.path().display(),
                dir.path().join("redis.log").display()
            ),
        )
        .unwrap();
        let child = Command::new(&bin)
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}): run the tests through scripts/test.sh",
                    bin.display()
                )
            });
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self { child, port, dir }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// SIGKILL, keeping the folder (and port) for [`Redis::start_at`].
    async fn kill(mut self) -> (u16, tempfile::TempDir) {
        self.child.kill().await.unwrap();
        (self.port, self.dir)
    }
}

/// One relay process on the cluster.
struct Relay {
    child: Child,
    addr: SocketAddr,
    _log: tempfile::NamedTempFile,
}

impl Relay {
    async fn start(redis: &str, extra: &[&str]) -> Self {
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_peercall-relay"))
            .args(["--port", "0", "--redis", redis])
            .args(extra)
            .env("PEERCALL_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log.reopen().unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = tokio::time::timeout(Duration::from_secs(10), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.strip_prefix("signaling WebSocket: ws://") {
                    return rest.split('/').next().unwrap().parse().unwrap();
                }
            }
            panic!("the relay exited before listening");
        })
        .await
        .expect("the relay did not start within 10 s");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let relay = Self {
            child,
            addr,
            _log: log,
        };
        relay.until_redis("connected").await;
        relay
    }

    async fn health(&self) -> Value {
        client::health_at(self.addr).await
    }

    /// Waits until `/healthz` says Redis is `state`; gives how long it took.
    async fn until_redis(&self, state: &str) -> Duration {
        let start = Instant::now();
        loop {
            let h = self.health().await;
            if h["cluster"]["redis"] == state {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "redis never {state}: {h}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn client(&self) -> Client {
        tokio_tungstenite::connect_async(format!("ws://{}/ws", self.addr))
            .await
            .unwrap()
            .0
    }

    /// Connects and sends a join; the answer is left to read.
    async fn send_join(&self, room: &str, id: &str) -> Client {
        let mut c = self.client().await;
        send(
            &mut c,
            msg(room, id, None, json!({"type": "join", "name": id})),
        )
        .await;
        c
    }

    /// Joins and gives the welcome's peer ids.
    async fn join(&self, room: &str, id: &str) -> (Client, Vec<String>) {
        let mut c = self.send_join(room, id).await;
        let welcome = next_json(&mut c).await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        let ids = welcome["peers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect();
        (c, ids)
    }

    async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }

    /// SIGTERM: a graceful stop.
    fn terminate(&self) {
        let pid = self.child.id().unwrap().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
    }

    /// Waits for the process to end well.
    async fn exited(mut self) {
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("the relay did not stop within 10 s of SIGTERM")
            .unwrap();
        assert!(status.success(), "{status}");
    }
}

async fn cluster(redis: &Redis, n: usize) -> Vec<Relay> {
    let mut relays = Vec::new();
    for _ in 0..n {
        relays.push(Relay::start(&redis.url(), &[]).await);
    }
    relays
}

/// The next message that is not a ping/pong from the relay, as JSON.
async fn next(c: &mut Client) -> Value {
    next_json(c).await
}

#[tokio::test]
async fn rooms_span_relays() {
    let redis = Redis::start().await;
    let relays = cluster(&redis, 2).await;
    let (a, b) = (&relays[0], &relays[1]);

    let (mut alice, peers) = a.join("r", "alice").await;
    assert!(peers.is_empty());
    // Bob on the other relay is welcomed with Alice (and her name), and
    // Alice gets his join byte for byte.
    let mut bob = b.client().await;
    let join = msg(
        "r",
        "bob",
        None,
        json!({"type": "join", "name": "Bob B", "x": 1}),
    );
    send(&mut bob, join.clone()).await;
    let welcome = next(&mut bob).await;
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["peers"], json!([{"id": "alice", "name": "alice"}]));
    assert_eq!(next_text(&mut alice).await, join);

    // A third on the first relay: listed with both, and both hear of it.
    let (mut carol, peers) = a.join("r", "carol").await;
    assert_eq!(peers, ["alice", "bob"]);
    assert_eq!(next(&mut alice).await["from"], "carol");
    assert_eq!(next(&mut bob).await["from"], "carol");

    // Unicast across relays, unchanged, to that peer only.
    let offer = json!({"type": "offer", "sdp": "v=0"});
    relayed(&mut bob, msg("r", "bob", Some("alice"), offer), &mut alice).await;
    let answer = json!({"type": "answer", "sdp": "v=0"});
    relayed(&mut alice, msg("r", "alice", Some("bob"), answer), &mut bob).await;
    assert_silent(&mut carol).await;

    // Room-wide from one relay reaches the other relay's members.
    let chat = msg("r", "carol", None, json!({"type": "ping"}));
    send(&mut carol, chat.clone()).await;
    assert_eq!(next_text(&mut alice).await, chat);
    assert_eq!(next_text(&mut bob).await, chat);

    // unknown_peer only for a peer that is nowhere.
    send(
        &mut bob,
        msg("r", "bob", Some("nobody"), json!({"type": "ping"})),
    )
    .await;
    expect_error(&mut bob, "unknown_peer").await;

    // One sender's messages keep their order across the bus.
    for i in 0..200 {
        send(
            &mut bob,
            msg(
                "r",
                "bob",
                None,
                json!({"type": "candidate", "candidate": {"candidate": i.to_string()}}),
            ),
        )
        .await;
    }
    for i in 0..200 {
        for c in [&mut alice, &mut carol] {
            let m = next(c).await;
            assert_eq!(m["candidate"]["candidate"], i.to_string(), "{m}");
        }
    }

    // A leave reaches the other relay; a dropped connection too.
    let leave = msg("r", "bob", None, json!({"type": "leave"}));
    send(&mut bob, leave.clone()).await;
    assert_eq!(next_text(&mut alice).await, leave);
    assert_eq!(next_text(&mut carol).await, leave);
    drop(carol);
    let m = next(&mut alice).await;
    assert_eq!(
        (&m["type"], &m["from"]),
        (&json!("leave"), &json!("carol")),
        "{m}"
    );
    // Bob is gone from the cluster's view: a message to him is refused.
    send(
        &mut alice,
        msg("r", "alice", Some("bob"), json!({"type": "ping"})),
    )
    .await;
    expect_error(&mut alice, "unknown_peer").await;

    // Health: this relay's id, Redis, local and cluster-wide connections.
    let h = a.health().await;
    assert_eq!(h["cluster"]["redis"], "connected", "{h}");
    assert!(
        h["cluster"]["relay"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{h}"
    );
    assert_ne!(h["cluster"]["relay"], b.health().await["cluster"]["relay"]);
    assert_eq!(h["cluster"]["connections"], 1, "{h}");
    let total = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let h = b.health().await;
            if h["cluster"]["cluster_connections"] == 2 {
                return h;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        total.is_ok(),
        "cluster connections never 2: {}",
        b.health().await
    );
}

#[tokio::test]
async fn ids_and_the_room_limit_hold_across_relays() {
    let redis = Redis::start().await;
    let relays = cluster(&redis, 3).await;

    let (_alice, _) = relays[0].join("r", "alice").await;
    let mut again = relays[1].send_join("r", "alice").await;
    expect_error(&mut again, "id_taken").await;

    // Nine people join one room at once through three relays: six get in,
    // three are told the room is full. Several rooms, to give the race
    // every chance.
    for round in 0..5 {
        let room = format!("full{round}");
        let mut clients = Vec::new();
        for i in 0..9 {
            clients.push(relays[i % 3].client().await);
        }
        let joins = clients.iter_mut().enumerate().map(|(i, c)| {
            let room = room.clone();
            async move {
                send(
                    c,
                    msg(&room, &format!("p{i}"), None, json!({"type": "join"})),
                )
                .await;
            }
        });
        futures_util::future::join_all(joins).await;
        let mut welcomed = 0;
        let mut full = 0;
        for c in &mut clients {
            let m = loop {
                let m = next(c).await;
                // Joins of the others may come first for those let in.
                if m["type"] == "welcome" || m["type"] == "error" {
                    break m;
                }
            };
            match m["type"].as_str() {
                Some("welcome") => welcomed += 1,
                _ => {
                    assert_eq!(m["code"], "room_full", "{m}");
                    full += 1;
                }
            }
        }
        assert_eq!((welcomed, full), (6, 3), "round {round}");
    }
}

#[tokio::test]
async fn a_killed_relay_s_peers_are_announced_gone() {
    let redis = Redis::start().await;
    let mut relays = cluster(&redis, 2).await;
    let b = relays.pop().unwrap();
    let a = relays.pop().unwrap();
    let (_alice, _) = a.join("r", "alice").await;
    let (mut bob, _) = b.join("r", "bob").await;
    // Fill the room to its limit with members on the relay that dies.
    let mut held = Vec::new();
    for i in 0..4 {
        held.push(a.join("r", &format!("p{i}")).await.0);
    }
    for _ in 0..4 {
        next(&mut bob).await;
    }
    let mut late = b.send_join("r", "late").await;
    expect_error(&mut late, "room_full").await;

    let killed = Instant::now();
    a.kill().await;
    let mut gone = std::collections::BTreeSet::new();
    while gone.len() < 5 {
        let m = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Ok(m) =
                    tokio::time::timeout(Duration::from_secs(1), next_text_any(&mut bob)).await
                {
                    return m;
                }
            }
        })
        .await
        .expect("the dead relay's peers were not announced gone within 10 s");
        assert_eq!(m["type"], "leave", "{m}");
        assert_eq!(m["reason"], "disconnected", "{m}");
        gone.insert(m["from"].as_str().unwrap().to_owned());
    }
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(10), "{took:?}");
    eprintln!("a SIGKILLed relay's 5 peers announced gone after {took:?}");
    // They no longer count: the room has places, and Alice may come back
    // under her id.
    let (_alice, peers) = b.join("r", "alice").await;
    assert_eq!(peers, ["bob"]);
    let (_late, _) = b.join("r", "late").await;
}

#[tokio::test]
async fn a_relay_that_stops_says_so_at_once() {
    let redis = Redis::start().await;
    let mut relays = cluster(&redis, 2).await;
    let b = relays.pop().unwrap();
    let a = relays.pop().unwrap();
    let (_alice, _) = a.join("r", "alice").await;
    let (mut bob, _) = b.join("r", "bob").await;
    let stopped = Instant::now();
    a.terminate();
    // Alice's connection was closed (1001): she may be back on another
    // relay, so "disconnected", and at once, not after the TTL.
    let m = tokio::time::timeout(Duration::from_secs(2), next_text_any(&mut bob))
        .await
        .expect("no leave within 2 s of a graceful stop");
    assert_eq!(
        (&m["type"], &m["from"], &m["reason"]),
        (&json!("leave"), &json!("alice"), &json!("disconnected")),
        "{m}"
    );
    assert!(stopped.elapsed() < Duration::from_secs(2));
    a.exited().await;
    // Her id is free for her next connection, on the relay left.
    let (_alice, peers) = b.join("r", "alice").await;
    assert_eq!(peers, ["bob"]);
    let h = b.health().await;
    assert_eq!(h["cluster"]["redis"], "connected", "{h}");
}

/// The next text message, waiting as long as the caller allows.
async fn next_text_any(c: &mut Client) -> Value {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match c.next().await {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn redis_going_away_and_coming_back() {
    let redis = Redis::start().await;
    let relays = cluster(&redis, 2).await;
    let (a, b) = (&relays[0], &relays[1]);
    let (mut alice, _) = a.join("r", "alice").await;
    let (mut bob, _) = b.join("r", "bob").await;
    next(&mut alice).await;

    let (port, dir) = redis.kill().await;
    a.until_redis("disconnected").await;
    b.until_redis("disconnected").await;
    // Rooms whose members are all here keep working, new ones too.
    let (mut carol, _) = a.join("local", "carol").await;
    let (mut dave, peers) = a.join("local", "dave").await;
    assert_eq!(peers, ["carol"]);
    assert_eq!(next(&mut carol).await["from"], "dave");
    let hi = msg("local", "dave", Some("carol"), json!({"type": "ping"}));
    send(&mut dave, hi.clone()).await;
    assert_eq!(next_text(&mut carol).await, hi);

    // Redis is back (empty: it kept nothing): within 5 s Alice and Bob
    // reach each other again, each told of the other by a join.
    let back = Instant::now();
    let _redis = Redis::start_at(port, dir).await;
    let mut reached = false;
    let mut i = 0;
    while back.elapsed() < Duration::from_secs(5) {
        i += 1;
        send(
            &mut bob,
            msg("r", "bob", Some("alice"), json!({"type": "ping", "n": i})),
        )
        .await;
        if let Ok(m) =
            tokio::time::timeout(Duration::from_millis(100), next_text_any(&mut alice)).await
        {
            if m["from"] == "bob" && m["type"] == "ping" {
                reached = true;
                break;
            }
        }
    }
    let took = back.elapsed();
    assert!(
        reached,
        "bob could not reach alice within 5 s of Redis coming back"
    );
    eprintln!("cross-relay messages flowed again {took:?} after Redis restarted");
    assert_eq!(b.health().await["cluster"]["redis"], "connected");
    // A newcomer on either relay sees everyone.
    let (_erin, peers) = b.join("r", "erin").await;
    assert_eq!(peers, ["alice", "bob"]);
}

#[tokio::test]
async fn relays_agree_on_a_room_s_route_to_the_sfu_and_back() {
    let redis = Redis::start().await;
    // A Janus that is not there: routes are decided without it.
    let sfu = ["--janus", "ws://127.0.0.1:9", "--mesh-max", "2"];
    let a = Relay::start(&redis.url(), &sfu).await;
    let b = Relay::start(&redis.url(), &sfu).await;
    let (mut alice, _) = a.join("r", "alice").await;
    let (mut bob, _) = b.join("r", "bob").await;
    assert_eq!(next(&mut alice).await["type"], "join");

    // Carol, the third (past --mesh-max 2), on Alice's relay: both others
    // hear the route before her join, wherever they are; her welcome says
    // it.
    let mut carol = a.send_join("r", "carol").await;
    let welcome = next(&mut carol).await;
    assert_eq!(
        (&welcome["type"], &welcome["route"]),
        (&json!("welcome"), &json!("sfu")),
        "{welcome}"
    );
    assert_eq!(welcome["features"], json!(["phone", "sfu"]), "{welcome}");
    for (who, c) in [("alice", &mut alice), ("bob", &mut bob)] {
        let first = next(c).await;
        assert_eq!(
            (&first["type"], &first["route"]),
            (&json!("route"), &json!("sfu")),
            "{who}: {first}"
        );
        let then = next(c).await;
        assert_eq!(
            (&then["type"], &then["from"]),
            (&json!("join"), &json!("carol")),
            "{who}: {then}"
        );
    }
    // Dave on Bob's relay: welcomed onto the SFU; nobody is told again.
    let mut dave = b.send_join("r", "dave").await;
    let welcome = next(&mut dave).await;
    assert_eq!(welcome["route"], "sfu", "{welcome}");
    for c in [&mut alice, &mut bob, &mut carol] {
        assert_eq!(next(c).await["type"], "join");
    }

    // Two leave, one on each relay: at two people the room is peer to
    // peer again, said to each after the leave.
    send(
        &mut carol,
        msg("r", "carol", None, json!({"type": "leave"})),
    )
    .await;
    for c in [&mut alice, &mut bob, &mut dave] {
        let left = next(c).await;
        assert_eq!(
            (&left["type"], &left["from"]),
            (&json!("leave"), &json!("carol"))
        );
    }
    send(&mut dave, msg("r", "dave", None, json!({"type": "leave"}))).await;
    for (who, c) in [("alice", &mut alice), ("bob", &mut bob)] {
        let left = next(c).await;
        assert_eq!(
            (&left["type"], &left["from"]),
            (&json!("leave"), &json!("dave")),
            "{who}: {left}"
        );
        let route = next(c).await;
        assert_eq!(
            (&route["type"], &route["route"]),
            (&json!("route"), &json!("mesh")),
            "{who}: {route}"
        );
    }
    assert_silent(&mut alice).await;
    assert_silent(&mut bob).await;
}
