//! Soak: every hostile load of the probe in issue 24, at full size, against
//! the relay binary with its default flags, while a real call between two
//! headless Chromium processes runs through it. For each load: how many of
//! the attacker's connections the relay still held after 15 s, the relay's
//! peak and after-load memory, whether the call kept decoding video,
//! whether `/healthz` answered and whether a new call (two WebSocket
//! clients joining a new room, one's offer reaching the other) worked while
//! the load ran. Last, SIGTERM with 2,000 WebSockets open: how many were
//! sent their 1001.
//!
//! Attackers connect from 127.1.x.y, many addresses where the probe's load
//! came from many clients, one where it came from one; the browsers use
//! 127.0.0.1 and the new call 127.0.0.250. Everything stays on loopback.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use peercall_e2e::call::{call_of_two, inbound};
use peercall_e2e::{Browser, Relay};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Result<T, E = String> = std::result::Result<T, E>;
type Ws = WebSocketStream<TcpStream>;

/// One load.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SoakStep {
    pub name: String,
    /// What was done, in words.
    pub load: String,
    /// Attacker connections opened (or attempts made).
    pub opened: usize,
    /// Of those, still open (as the attacker sees it) 15 s after the load
    /// began.
    pub held_at_15s: usize,
    /// What the relay answered, in words (refusals, closes, errors).
    pub outcome: String,
    pub relay_rss_before: u64,
    pub relay_rss_peak: u64,
    /// 5 s after the attacker let go.
    pub relay_rss_after: u64,
    /// Video frames the call decoded during the load (the lower of the two
    /// sides).
    pub call_frames: u64,
    pub call_seconds: f64,
    /// `/healthz` answered within 5 s, in the middle of the load.
    pub health_ok: bool,
    /// What it said then: the relay's own count of HTTP connections and
    /// WebSockets (the attacker's view above includes connections still
    /// in the kernel's accept queue, or closed and not yet noticed).
    #[serde(default)]
    pub relay_http_connections: Option<u64>,
    #[serde(default)]
    pub relay_websockets: Option<u64>,
    /// A new call worked in the middle of the load (ms, or None).
    pub new_call_ms: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShutdownRun {
    pub clients: usize,
    pub got_1001: usize,
    pub exit_ms: f64,
    pub exit_ok: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SoakResults {
    pub baseline_rss: u64,
    pub steps: Vec<SoakStep>,
    pub shutdown: Option<ShutdownRun>,
}

/// The k-th attacker address: 127.1.x.y.
fn attacker(k: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 1, (k / 250) as u8, (k % 250 + 1) as u8))
}

async fn tcp_from(ip: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(ip, 0))?;
    socket.connect(to).await
}

async fn ws_from(ip: IpAddr, to: SocketAddr) -> Result<Ws> {
    let tcp = tcp_from(ip, to).await.map_err(|e| e.to_string())?;
    let req = format!("ws://{to}/ws")
        .into_client_request()
        .map_err(|e| e.to_string())?;
    tokio_tungstenite::client_async(req, tcp)
        .await
        .map(|(ws, _)| ws)
        .map_err(|e| e.to_string())
}

fn envelope(room: &str, from: &str, to: Option<&str>, body: serde_json::Value) -> String {
    let mut m = json!({"v": 1, "room": room, "from": from});
    if let Some(to) = to {
        m["to"] = json!(to);
    }
    for (k, v) in body.as_object().expect("an object") {
        m[k] = v.clone();
    }
    m.to_string()
}

async fn next_json(ws: &mut Ws, within: Duration) -> Option<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(&t).ok(),
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

/// The relay's resident memory (0 once it is gone).
fn rss(pid: u32) -> u64 {
    crate::relay::rss_of(pid).unwrap_or(0)
}

/// A new call in a new room from 127.0.0.250: ms until the offer arrived.
async fn new_call(to: SocketAddr, n: usize) -> Option<f64> {
    let start = Instant::now();
    let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 250));
    let room = format!("soak-check-{n}");
    let attempt = async {
        let mut a = ws_from(ip, to).await.ok()?;
        let mut b = ws_from(ip, to).await.ok()?;
        a.send(Message::text(envelope(
            &room,
            "ada",
            None,
            json!({"type": "join"}),
        )))
        .await
        .ok()?;
        (next_json(&mut a, Duration::from_secs(5)).await?["type"] == "welcome").then_some(())?;
        b.send(Message::text(envelope(
            &room,
            "bo",
            None,
            json!({"type": "join"}),
        )))
        .await
        .ok()?;
        (next_json(&mut b, Duration::from_secs(5)).await?["type"] == "welcome").then_some(())?;
        let offer = envelope(
            &room,
            "ada",
            Some("bo"),
            json!({"type": "offer", "sdp": "v=0"}),
        );
        a.send(Message::text(offer)).await.ok()?;
        loop {
            let m = next_json(&mut b, Duration::from_secs(5)).await?;
            if m["type"] == "offer" {
                return Some(start.elapsed().as_secs_f64() * 1000.0);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), attempt)
        .await
        .ok()
        .flatten()
}

/// `/healthz`, if it answers "ok" within 5 s.
async fn health(to: SocketAddr) -> Option<serde_json::Value> {
    let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 251));
    let ask = async {
        let mut tcp = tcp_from(ip, to).await.ok()?;
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut raw = String::new();
        tcp.read_to_string(&mut raw).await.ok()?;
        let body: serde_json::Value = serde_json::from_str(raw.split("\r\n\r\n").nth(1)?).ok()?;
        (body["status"] == "ok").then_some(body)
    };
    tokio::time::timeout(Duration::from_secs(5), ask)
        .await
        .ok()
        .flatten()
}

/// Counts attacker connections that are still open.
#[derive(Clone, Default)]
struct Open(Arc<AtomicUsize>);

struct OpenGuard(Arc<AtomicUsize>);

impl Open {
    fn hold(&self) -> OpenGuard {
        self.0.fetch_add(1, Ordering::SeqCst);
        OpenGuard(self.0.clone())
    }
    fn now(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Reads until the relay closes `tcp` (or `until`).
async fn wait_closed(tcp: &mut TcpStream, until: tokio::time::Instant) {
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(until, tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
            Ok(Ok(_)) => {}
        }
    }
}

struct Ctx<'a> {
    relay_pid: u32,
    to: SocketAddr,
    a: &'a Browser,
    b: &'a Browser,
    checks: usize,
}

/// Runs one load: `attack(open, stop_at)` runs in the background for
/// `seconds`; meanwhile the call, `/healthz` and a new call are checked.
async fn step<F, Fut>(
    ctx: &mut Ctx<'_>,
    name: &str,
    load: &str,
    seconds: u64,
    attack: F,
) -> Result<SoakStep>
where
    F: FnOnce(Open, tokio::time::Instant) -> Fut,
    Fut: std::future::Future<Output = (usize, String)> + Send + 'static,
{
    eprintln!("    {name}: {load}");
    let before = rss(ctx.relay_pid);
    let (frames_a, _) = inbound(ctx.a).await;
    let (frames_b, _) = inbound(ctx.b).await;
    let started = Instant::now();
    let open = Open::default();
    let stop_at = tokio::time::Instant::now() + Duration::from_secs(seconds);
    let attack = tokio::spawn(attack(open.clone(), stop_at));
    let peak = Arc::new(AtomicUsize::new(before as usize));
    let sampler = {
        let peak = peak.clone();
        let pid = ctx.relay_pid;
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss(pid) as usize, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(8)).await;
    let health = health(ctx.to).await;
    ctx.checks += 1;
    let call = new_call(ctx.to, ctx.checks).await;
    let at_15 = tokio::time::Instant::from_std(started + Duration::from_secs(15));
    tokio::time::sleep_until(at_15).await;
    let held = open.now();
    let (opened, outcome) = attack.await.map_err(|e| e.to_string())?;
    let (frames_a2, _) = inbound(ctx.a).await;
    let (frames_b2, _) = inbound(ctx.b).await;
    let call_seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(5)).await;
    sampler.abort();
    let after = rss(ctx.relay_pid);
    let s = SoakStep {
        name: name.into(),
        load: load.into(),
        opened,
        held_at_15s: held,
        outcome,
        relay_rss_before: before,
        relay_rss_peak: peak.load(Ordering::Relaxed) as u64,
        relay_rss_after: after,
        call_frames: (frames_a2 - frames_a).min(frames_b2 - frames_b),
        call_seconds,
        health_ok: health.is_some(),
        relay_http_connections: health.as_ref().and_then(|h| h["http_connections"].as_u64()),
        relay_websockets: health.as_ref().and_then(|h| h["connections"].as_u64()),
        new_call_ms: call,
    };
    eprintln!(
        "      opened {}, held at 15 s {}, {}; relay at 8 s: {} HTTP connections, {} WebSockets; relay {:.0} -> peak {:.0} -> {:.0} MB; call decoded {} frames in {:.0} s; health {}, new call {}",
        s.opened,
        s.held_at_15s,
        s.outcome,
        s.relay_http_connections.map_or("?".into(), |n| n.to_string()),
        s.relay_websockets.map_or("?".into(), |n| n.to_string()),
        before as f64 / 1e6,
        s.relay_rss_peak as f64 / 1e6,
        after as f64 / 1e6,
        s.call_frames,
        s.call_seconds,
        if s.health_ok { "ok" } else { "FAILED" },
        s.new_call_ms.map_or("FAILED".into(), |ms| format!("{ms:.0} ms")),
    );
    Ok(s)
}

/// Opens `n` TCP connections, `per_addr` from each attacker address, at
/// most `parallel` connecting at once; each then runs `then` with it.
async fn many<T, Fut>(
    to: SocketAddr,
    n: usize,
    per_addr: usize,
    parallel: usize,
    open: Open,
    then: T,
) -> (usize, usize)
where
    T: Fn(TcpStream, OpenGuard) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let gate = Arc::new(Semaphore::new(parallel));
    let then = Arc::new(then);
    let failed = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..n {
        let permit = gate.clone().acquire_owned().await.expect("semaphore");
        let (then, failed, open) = (then.clone(), failed.clone(), open.clone());
        tasks.spawn(async move {
            let tcp = match tcp_from(attacker(k / per_addr), to).await {
                Ok(tcp) => tcp,
                Err(_) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            drop(permit);
            let guard = open.hold();
            then(tcp, guard).await;
        });
    }
    while tasks.join_next().await.is_some() {}
    (n, failed.load(Ordering::Relaxed))
}

/// `n` TCP connections (`per_addr` from each address) that send nothing
/// and wait to be closed.
async fn silent(
    to: SocketAddr,
    n: usize,
    per_addr: usize,
    parallel: usize,
    open: Open,
    stop: tokio::time::Instant,
) -> (usize, String) {
    let (n, failed) = many(
        to,
        n,
        per_addr,
        parallel,
        open,
        move |mut tcp, guard| async move {
            wait_closed(&mut tcp, stop).await;
            drop(guard);
        },
    )
    .await;
    (n, format!("{failed} could not connect"))
}

pub async fn measure(quick: bool) -> Result<SoakResults> {
    // Scale: the probe's counts, or a tenth of them for --quick.
    let s = |n: usize| if quick { (n / 10).max(2) } else { n };
    let relay = Relay::start(&["--turn-url", "turn:127.0.0.1:9", "--turn-secret", "soak"]).await?;
    let relay_pid = relay.pid().ok_or("no relay pid")?;
    let to: SocketAddr = format!("127.0.0.1:{}", relay.port())
        .parse()
        .map_err(|e| format!("{e}"))?;

    let (a, b) = call_of_two(&relay.url).await?;
    // The relay compresses the app's files at start (brotli 11): let that
    // memory settle before taking the baseline.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let mut out = SoakResults {
        baseline_rss: rss(relay_pid),
        ..Default::default()
    };
    eprintln!(
        "    baseline: relay {:.1} MB with the call",
        out.baseline_rss as f64 / 1e6
    );
    let mut ctx = Ctx {
        relay_pid,
        to,
        a: &a,
        b: &b,
        checks: 0,
    };

    // 1. Headers one byte a second.
    let n = s(500);
    out.steps.push(
        step(&mut ctx, "slow headers", &format!("{n} clients (25 per address) send their request headers one byte a second"), 30, move |open, stop| async move {
            let (n, failed) = many(to, n, 25, 100, open, move |mut tcp, guard| async move {
                let text = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slowloris\r\nAccept: */*\r\nX-a: b\r\n".repeat(4);
                for byte in text {
                    if tokio::time::Instant::now() > stop || tcp.write_all(&[byte]).await.is_err() {
                        break;
                    }
                    let mut buf = [0u8; 64];
                    if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(Duration::from_secs(1), tcp.read(&mut buf)).await {
                        break;
                    }
                }
                drop(guard);
            }).await;
            (n, format!("{failed} could not connect"))
        }).await?,
    );

    // 2. Connections that send nothing.
    let n = s(2000);
    out.steps.push(
        step(
            &mut ctx,
            "silent connections",
            &format!("{n} TCP connections (20 per address) that send nothing"),
            20,
            move |open, stop| silent(to, n, 20, 200, open, stop),
        )
        .await?,
    );

    // 3. Big unfinished headers.
    let n = s(1000);
    out.steps.push(
        step(&mut ctx, "big unfinished headers", &format!("{n} clients (25 per address) each send 395 KB of headers that never end"), 20, move |open, stop| async move {
            let answered = Arc::new(AtomicUsize::new(0));
            let counted = answered.clone();
            let (n, failed) = many(to, n, 25, 100, open, move |mut tcp, guard| {
                let answered = counted.clone();
                async move {
                    let mut req = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
                    while req.len() < 395_000 {
                        req.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
                    }
                    let _ = tcp.write_all(&req).await;
                    let mut head = [0u8; 12];
                    if let Ok(Ok(_)) = tokio::time::timeout_at(stop, tcp.read_exact(&mut head)).await {
                        if &head[9..12] == b"431" {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    wait_closed(&mut tcp, stop).await;
                    drop(guard);
                }
            }).await;
            (n, format!("{} answered 431, {failed} could not connect", answered.load(Ordering::Relaxed)))
        }).await?,
    );

    // 4. Every descriptor: more silent connections than the relay can have.
    let n = s(18_000);
    out.steps.push(
        step(
            &mut ctx,
            "descriptor exhaustion",
            &format!(
                "{n} silent TCP connections (30 per address), as many as this process may open"
            ),
            25,
            move |open, stop| silent(to, n, 30, 500, open, stop),
        )
        .await?,
    );

    // 5. Readers that stop.
    let pairs = if quick { 2 } else { 10 };
    out.steps.push(
        step(&mut ctx, "slow readers", &format!("{pairs} pairs: one floods 60 KB messages at the other, which never reads"), 20, move |open, stop| async move {
            let mut tasks = tokio::task::JoinSet::new();
            for p in 0..pairs {
                let open = open.clone();
                tasks.spawn(async move {
                    let room = format!("slow-{p}");
                    let (Ok(mut sender), Ok(mut reader)) = (ws_from(attacker(2 * p), to).await, ws_from(attacker(2 * p + 1), to).await) else {
                        return None;
                    };
                    let _g = open.hold();
                    let _ = reader.send(Message::text(envelope(&room, "reader", None, json!({"type": "join"})))).await;
                    let _ = next_json(&mut reader, Duration::from_secs(5)).await;
                    let _ = sender.send(Message::text(envelope(&room, "sender", None, json!({"type": "join"})))).await;
                    let _ = next_json(&mut sender, Duration::from_secs(5)).await;
                    let big = envelope(&room, "sender", Some("reader"), json!({"type": "offer", "sdp": "x".repeat(60_000)}));
                    let start = Instant::now();
                    while tokio::time::Instant::now() < stop {
                        if sender.send(Message::text(big.clone())).await.is_err() {
                            return None;
                        }
                        if let Ok(Some(Ok(Message::Text(t)))) = tokio::time::timeout(Duration::from_millis(10), sender.next()).await {
                            if t.contains("\"leave\"") {
                                return Some(start.elapsed().as_secs_f64());
                            }
                        }
                    }
                    drop(reader);
                    None
                });
            }
            let mut times = Vec::new();
            while let Some(r) = tasks.join_next().await {
                if let Ok(Some(t)) = r {
                    times.push(t);
                }
            }
            times.sort_by(f64::total_cmp);
            (pairs * 2, format!("{} of {pairs} readers closed (their leave reached the sender), the slowest after {:.1} s", times.len(), times.last().copied().unwrap_or(f64::NAN)))
        }).await?,
    );

    // 6. One address opens connection after connection, each a new room.
    let n = s(10_000);
    out.steps.push(
        step(&mut ctx, "one address, many rooms", &format!("{n} WebSocket connections from one address, about 830 a second, each creating a room"), 20, move |open, stop| async move {
            let accepted = Arc::new(AtomicUsize::new(0));
            let rooms = Arc::new(AtomicUsize::new(0));
            let mut held = Vec::new();
            let gap = Duration::from_secs_f64(1.0 / 830.0);
            let start = tokio::time::Instant::now();
            for k in 0..n {
                tokio::time::sleep_until(start + gap * k as u32).await;
                if tokio::time::Instant::now() > stop {
                    break;
                }
                if let Ok(mut ws) = ws_from(attacker(5000), to).await {
                    accepted.fetch_add(1, Ordering::Relaxed);
                    let _ = ws.send(Message::text(envelope(&format!("flood{k}"), "f", None, json!({"type": "join"})))).await;
                    if let Some(m) = next_json(&mut ws, Duration::from_millis(500)).await {
                        if m["type"] == "welcome" {
                            rooms.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    held.push((ws, open.hold()));
                }
            }
            tokio::time::sleep_until(stop).await;
            drop(held);
            (n, format!("{} accepted, {} rooms created", accepted.load(Ordering::Relaxed), rooms.load(Ordering::Relaxed)))
        }).await?,
    );

    // 7. Unfinished fragmented messages, kept alive with pings.
    let n = s(400);
    out.steps.push(
        step(&mut ctx, "unfinished fragments", &format!("{n} connections (20 per address) each start a 245 KiB fragmented message and then only ping"), 20, move |open, stop| async move {
            let closed = Arc::new(AtomicUsize::new(0));
            let mut tasks = tokio::task::JoinSet::new();
            for k in 0..n {
                let (open, closed) = (open.clone(), closed.clone());
                tasks.spawn(async move {
                    let Ok(mut ws) = ws_from(attacker(k / 20), to).await else { return };
                    let _g = open.hold();
                    let first = Frame::message(vec![b'{'; 245 * 1024], OpCode::Data(Data::Text), false);
                    if ws.send(Message::Frame(first)).await.is_err() {
                        return;
                    }
                    while tokio::time::Instant::now() < stop {
                        if ws.send(Message::Ping(Default::default())).await.is_err() {
                            break;
                        }
                        match tokio::time::timeout(Duration::from_secs(1), ws.next()).await {
                            Ok(Some(Ok(Message::Close(f)))) => {
                                if f.is_some_and(|f| f.code == CloseCode::Policy) {
                                    closed.fetch_add(1, Ordering::Relaxed);
                                }
                                break;
                            }
                            Ok(None) | Ok(Some(Err(_))) => break,
                            _ => {}
                        }
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
            (n, format!("{} closed with 1008", closed.load(Ordering::Relaxed)))
        }).await?,
    );

    // 8. Huge names, then a newcomer to the same room.
    out.steps.push(
        step(&mut ctx, "huge names", "20 joins with 60 KB names into one room, then a third person joins it", 16, move |_open, _stop| async move {
            let mut refused = 0;
            let mut held = Vec::new();
            for k in 0..20 {
                if let Ok(mut ws) = ws_from(attacker(k), to).await {
                    let name = "N".repeat(60_000);
                    let _ = ws.send(Message::text(envelope("names", &format!("n{k}"), None, json!({"type": "join", "name": name})))).await;
                    if let Some(m) = next_json(&mut ws, Duration::from_secs(2)).await {
                        if m["code"] == "bad_name" {
                            refused += 1;
                        }
                    }
                    held.push(ws);
                }
            }
            let mut welcome_len = 0;
            if let Ok(mut ws) = ws_from(attacker(100), to).await {
                let _ = ws.send(Message::text(envelope("names", "third", None, json!({"type": "join", "name": "Cy"})))).await;
                if let Ok(Some(Ok(Message::Text(t)))) = tokio::time::timeout(Duration::from_secs(2), ws.next()).await {
                    welcome_len = t.len();
                }
            }
            (20, format!("{refused} refused with bad_name; the newcomer's welcome is {welcome_len} bytes"))
        }).await?,
    );

    // 9. TURN credentials, as fast as they come.
    let n = s(3000);
    out.steps.push(
        step(&mut ctx, "TURN credential flood", &format!("{n} requests for /ice-servers from one address, one after another"), 16, move |_open, _stop| async move {
            let (mut ok, mut limited, mut other) = (0, 0, 0);
            let start = Instant::now();
            for _ in 0..n {
                let Ok(mut tcp) = tcp_from(attacker(6000), to).await else {
                    other += 1;
                    continue;
                };
                let _ = tcp.write_all(b"GET /ice-servers?id=x&room=y HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
                let mut head = [0u8; 12];
                match tcp.read_exact(&mut head).await {
                    Ok(_) if &head[9..12] == b"200" => ok += 1,
                    Ok(_) if &head[9..12] == b"429" => limited += 1,
                    _ => other += 1,
                }
            }
            (n, format!("{ok} answered 200, {limited} 429, {other} other, in {:.2} s", start.elapsed().as_secs_f64()))
        }).await?,
    );

    // 10. SIGTERM with many WebSockets open.
    let n = s(2000);
    eprintln!(
        "    shutdown: SIGTERM with {n} WebSockets open (20 per address), every client reading"
    );
    let got = Arc::new(AtomicUsize::new(0));
    let mut readers = tokio::task::JoinSet::new();
    let mut opened = 0;
    for k in 0..n {
        let Ok(mut ws) = ws_from(attacker(k / 20), to).await else {
            continue;
        };
        let _ = ws
            .send(Message::text(envelope(
                &format!("bye{}", k / 2),
                &format!("p{k}"),
                None,
                json!({"type": "join"}),
            )))
            .await;
        opened += 1;
        let got = got.clone();
        readers.spawn(async move {
            while let Ok(Some(Ok(m))) =
                tokio::time::timeout(Duration::from_secs(30), ws.next()).await
            {
                if let Message::Close(Some(f)) = m {
                    if f.code == CloseCode::Away {
                        got.fetch_add(1, Ordering::Relaxed);
                    }
                    break;
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let start = Instant::now();
    let status = relay.terminate().await?;
    let exit_ms = start.elapsed().as_secs_f64() * 1000.0;
    while readers.join_next().await.is_some() {}
    let run = ShutdownRun {
        clients: opened,
        got_1001: got.load(Ordering::Relaxed),
        exit_ms,
        exit_ok: status.success(),
    };
    eprintln!(
        "      {} of {} got 1001; the relay exited ({}) after {:.0} ms",
        run.got_1001, run.clients, status, run.exit_ms
    );
    out.shutdown = Some(run);
    a.close().await;
    b.close().await;
    Ok(out)
}
