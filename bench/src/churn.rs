//! Whole calls at scale, checked message by message: `clients` WebSocket
//! clients in rooms of 6 (each client from an address of its own,
//! 127.2.x.y, so the per-address limits see people, not one attacker) go
//! through calls again and again for `seconds`: join and wait for the
//! others, send every other member an offer, an answer, four candidates,
//! an end of candidates and a ping, and the room a ping; wait for everything addressed to
//! them; leave; reconnect; rejoin.
//!
//! Every message carries its sender's serial number and the time it was
//! sent. Receivers check it: lost (expected, never came within 5 s of the
//! room finishing), duplicated (the same sender and serial twice), or
//! delivered to the wrong peer (`to` not the receiver, or another room).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<TcpStream>;
type Result<T, E = String> = std::result::Result<T, E>;

const ROOM: usize = 6;
/// Per other member and round: offer, answer, four candidates, end of
/// candidates, a ping.
const TO_EACH: usize = 8;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ChurnResults {
    pub clients: usize,
    pub seconds: f64,
    /// Whole calls (a room joined, everything exchanged, left), all rooms.
    pub rounds: u64,
    /// Messages sent by clients (joins and leaves included).
    pub sent: u64,
    /// Messages each receiver should have had from another peer.
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub misdelivered: u64,
    /// `error` messages from the relay (none expected).
    pub errors: u64,
    /// Send to receipt, peer to peer messages.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Relay resident memory before, at its peak, and 10 s after every
    /// client left.
    pub rss_before: u64,
    pub rss_peak: u64,
    pub rss_after: u64,
}

#[derive(Default)]
struct Tally {
    rounds: u64,
    sent: u64,
    expected: u64,
    delivered: u64,
    lost: u64,
    duplicated: u64,
    misdelivered: u64,
    errors: u64,
    latencies_us: Vec<u32>,
}

fn address(k: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 2, (k / 250) as u8, (k % 250 + 1) as u8))
}

async fn connect(ip: IpAddr, to: SocketAddr) -> Result<Ws> {
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::new(ip, 0))
        .map_err(|e| e.to_string())?;
    let tcp = socket.connect(to).await.map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let req = format!("ws://{to}/ws")
        .into_client_request()
        .map_err(|e| e.to_string())?;
    tokio_tungstenite::client_async(req, tcp)
        .await
        .map(|(ws, _)| ws)
        .map_err(|e| e.to_string())
}

fn micros_since(epoch: Instant) -> u64 {
    epoch.elapsed().as_micros() as u64
}

/// One room of six going through calls until `until`.
async fn room(
    index: usize,
    to: SocketAddr,
    epoch: Instant,
    until: Instant,
    tally: Arc<Mutex<Tally>>,
) -> Result<()> {
    let room = format!("churn{index}");
    let mut round = 0u64;
    while Instant::now() < until {
        round += 1;
        let ids: Vec<String> = (0..ROOM).map(|m| format!("p{index}x{m}r{round}")).collect();
        let mut sockets = Vec::new();
        for m in 0..ROOM {
            sockets.push(connect(address(index * ROOM + m), to).await?);
        }
        let mut local = Tally::default();
        // Join one after another; each waits for its welcome.
        for (m, ws) in sockets.iter_mut().enumerate() {
            let join = json!({"v": 1, "type": "join", "room": room, "from": ids[m], "name": format!("P{m}")});
            ws.send(Message::text(join.to_string()))
                .await
                .map_err(|e| e.to_string())?;
            local.sent += 1;
        }
        // Each socket: a reader task that records what arrives, and the
        // sends. Receivers know the room is complete when they have seen
        // the welcome and the joins of everyone after them.
        let (sinks, streams): (Vec<_>, Vec<_>) = sockets.into_iter().map(|ws| ws.split()).unzip();
        let mut readers = Vec::new();
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<usize>(ROOM);
        let expect_from_others = ((ROOM - 1) * TO_EACH + (ROOM - 1)) as u64;
        for (m, mut stream) in streams.into_iter().enumerate() {
            let me = ids[m].clone();
            let room = room.clone();
            let ready_tx = ready_tx.clone();
            readers.push(tokio::spawn(async move {
                let mut seen: HashSet<(String, u64)> = HashSet::new();
                let (mut dup, mut wrong, mut errors, mut got) = (0u64, 0u64, 0u64, 0u64);
                let mut lat = Vec::new();
                let mut present: HashSet<String> = HashSet::new();
                let mut told_ready = false;
                let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
                while got < expect_from_others {
                    let next = tokio::time::timeout_at(deadline, stream.next()).await;
                    let Ok(Some(Ok(Message::Text(text)))) = next else {
                        if matches!(next, Ok(Some(Ok(_)))) {
                            continue;
                        }
                        break;
                    };
                    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
                        wrong += 1;
                        continue;
                    };
                    let t = v["type"].as_str().unwrap_or_default();
                    if v["room"] != room.as_str() {
                        wrong += 1;
                        continue;
                    }
                    match t {
                        "welcome" => {
                            for p in v["peers"].as_array().into_iter().flatten() {
                                present.insert(p["id"].as_str().unwrap_or_default().to_owned());
                            }
                        }
                        "join" => {
                            present.insert(v["from"].as_str().unwrap_or_default().to_owned());
                        }
                        "error" => errors += 1,
                        "leave" => {}
                        _ => {
                            if let Some(to) = v["to"].as_str() {
                                if to != me {
                                    wrong += 1;
                                    continue;
                                }
                            }
                            let from = v["from"].as_str().unwrap_or_default().to_owned();
                            let n = v["n"].as_u64().unwrap_or(u64::MAX);
                            if from == me {
                                wrong += 1;
                                continue;
                            }
                            if !seen.insert((from, n)) {
                                dup += 1;
                                continue;
                            }
                            got += 1;
                            if let Some(at) = v["at"].as_u64() {
                                let now = micros_since(epoch);
                                lat.push(now.saturating_sub(at).min(u32::MAX as u64) as u32);
                            }
                        }
                    }
                    if !told_ready && present.len() == ROOM - 1 {
                        told_ready = true;
                        let _ = ready_tx.send(m).await;
                    }
                }
                if !told_ready {
                    let _ = ready_tx.send(m).await;
                }
                ((got, dup, wrong, errors, lat), stream)
            }));
        }
        drop(ready_tx);
        // Everyone has seen everyone: the room is complete.
        for _ in 0..ROOM {
            if ready_rx.recv().await.is_none() {
                break;
            }
        }
        let mut sinks = sinks;
        for (m, sink) in sinks.iter_mut().enumerate() {
            let mut n = 0u64;
            let mut out = Vec::new();
            for (o, other) in ids.iter().enumerate() {
                if o == m {
                    continue;
                }
                let kinds: [(&str, serde_json::Value); TO_EACH] = [
                    ("offer", json!({"sdp": "v=0"})),
                    ("answer", json!({"sdp": "v=0"})),
                    (
                        "candidate",
                        json!({"candidate": {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0}}),
                    ),
                    (
                        "candidate",
                        json!({"candidate": {"candidate": "candidate:2 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0}}),
                    ),
                    (
                        "candidate",
                        json!({"candidate": {"candidate": "candidate:3 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0}}),
                    ),
                    (
                        "candidate",
                        json!({"candidate": {"candidate": "candidate:4 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0}}),
                    ),
                    ("end_of_candidates", json!({})),
                    ("ping", json!({})),
                ];
                for (kind, extra) in kinds {
                    n += 1;
                    let mut msg = json!({"v": 1, "type": kind, "room": room, "from": ids[m], "to": other, "n": n});
                    for (k, v) in extra.as_object().expect("object") {
                        msg[k] = v.clone();
                    }
                    out.push(msg);
                }
            }
            n += 1;
            // And one to the whole room.
            out.push(json!({"v": 1, "type": "ping", "room": room, "from": ids[m], "n": n}));
            for mut msg in out {
                msg["at"] = json!(micros_since(epoch));
                sink.feed(Message::text(msg.to_string()))
                    .await
                    .map_err(|e| e.to_string())?;
                local.sent += 1;
            }
            sink.flush().await.map_err(|e| e.to_string())?;
        }
        let mut streams = Vec::new();
        for r in readers {
            let ((got, dup, wrong, errors, lat), stream) = r.await.map_err(|e| e.to_string())?;
            local.expected += expect_from_others;
            local.delivered += got;
            local.lost += expect_from_others.saturating_sub(got);
            local.duplicated += dup;
            local.misdelivered += wrong;
            local.errors += errors;
            local.latencies_us.extend(lat);
            streams.push(stream);
        }
        // Leave, and close.
        for (m, sink) in sinks.iter_mut().enumerate() {
            let leave = json!({"v": 1, "type": "leave", "room": room, "from": ids[m]});
            let _ = sink.send(Message::text(leave.to_string())).await;
            local.sent += 1;
        }
        for (sink, stream) in sinks.into_iter().zip(streams) {
            if let Ok(mut ws) = sink.reunite(stream) {
                let _ = ws.close(None).await;
            }
        }
        local.rounds = 1;
        {
            let mut t = tally.lock().expect("not poisoned");
            t.rounds += local.rounds;
            t.sent += local.sent;
            t.expected += local.expected;
            t.delivered += local.delivered;
            t.lost += local.lost;
            t.duplicated += local.duplicated;
            t.misdelivered += local.misdelivered;
            t.errors += local.errors;
            t.latencies_us.extend(local.latencies_us);
        }
        // A pause between calls, as people take: keeps each client under
        // the relay's per-connection rate (50 messages a second).
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

fn quantile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// Runs `clients` (rounded down to rooms of 6) against the relay at `to`
/// (process `pid`) for `seconds`.
pub async fn measure(
    to: SocketAddr,
    pid: u32,
    clients: usize,
    seconds: u64,
) -> Result<ChurnResults> {
    let rooms = (clients / ROOM).max(1);
    let rss = |pid| crate::relay::rss_of(pid).unwrap_or(0);
    let before = rss(pid);
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(before));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss(pid), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let tally = Arc::new(Mutex::new(Tally::default()));
    let epoch = Instant::now();
    let until = epoch + Duration::from_secs(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for r in 0..rooms {
        let tally = tally.clone();
        tasks.spawn(async move {
            // Rooms start spread over the first second.
            tokio::time::sleep(Duration::from_micros((r as u64 * 1_000_000) / rooms as u64)).await;
            room(r, to, epoch, until, tally).await
        });
    }
    let mut failures = HashMap::<String, usize>::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => *failures.entry(e).or_default() += 1,
            Err(e) => *failures.entry(e.to_string()).or_default() += 1,
        }
    }
    let elapsed = epoch.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(10)).await;
    sampler.abort();
    let after = rss(pid);
    if !failures.is_empty() {
        return Err(format!("rooms failed: {failures:?}"));
    }
    let mut t = std::mem::take(&mut *tally.lock().expect("not poisoned"));
    t.latencies_us.sort_unstable();
    Ok(ChurnResults {
        clients: rooms * ROOM,
        seconds: elapsed,
        rounds: t.rounds,
        sent: t.sent,
        expected: t.expected,
        delivered: t.delivered,
        lost: t.lost,
        duplicated: t.duplicated,
        misdelivered: t.misdelivered,
        errors: t.errors,
        p50_ms: quantile(&t.latencies_us, 0.5),
        p99_ms: quantile(&t.latencies_us, 0.99),
        max_ms: t
            .latencies_us
            .last()
            .map_or(f64::NAN, |&u| u as f64 / 1000.0),
        rss_before: before,
        rss_peak: peak.load(std::sync::atomic::Ordering::Relaxed),
        rss_after: after,
    })
}
