//! Relay capacity: a load generator over real WebSockets, run against the
//! peercall relay and the Node reference relay (`bench/node-relay`), each a
//! fresh process per measurement.
//!
//! - **Idle**: connections that joined a room (rooms of 2) and then do
//!   nothing, held at 1k, 5k and 10k; the relay's resident memory (VmRSS
//!   from /proc) before and at each step.
//! - **Fan-out**: rooms of 2 or 6, every member sending room-wide messages
//!   (a 200-byte `ping` envelope, which the relay forwards to every other
//!   member) at a total rate that rises step by step until the relay
//!   saturates. Each message carries its send time; receivers record the
//!   latency. Sender and receivers share one clock (this process).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::stats::percentile_sorted;

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Result<T, E = String> = std::result::Result<T, E>;

/// Which relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Which {
    Peercall,
    Node,
}

impl Which {
    pub fn name(self) -> &'static str {
        match self {
            Which::Peercall => "peercall",
            Which::Node => "node",
        }
    }
}

/// Where the relays are.
pub struct Programs {
    /// The peercall relay binary (server profile).
    pub peercall: std::path::PathBuf,
    /// `bench/node-relay/relay.js` (with its node_modules installed).
    pub node_script: std::path::PathBuf,
}

/// A relay process on a free loopback port.
pub struct Server {
    child: Child,
    pid: u32,
    /// e.g. `ws://127.0.0.1:41234/ws`; a room is appended as `/ROOM`.
    pub ws: String,
}

impl Server {
    pub async fn start(which: Which, programs: &Programs) -> Result<Self> {
        Self::start_with(which, programs, &[]).await
    }

    /// [`Server::start`] with more arguments for the peercall relay (the
    /// cluster part's `--redis`).
    pub async fn start_with(which: Which, programs: &Programs, extra: &[&str]) -> Result<Self> {
        let mut cmd = match which {
            Which::Peercall => {
                let mut c = Command::new(&programs.peercall);
                // Limits raised so the benchmark measures the relay's work,
                // not its per-client rate limit (50/s by default) or caps;
                // every load-generator client comes from 127.0.0.1, so the
                // per-address limits go too (the soak part keeps them).
                c.args([
                    "--addr",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--rate",
                    "1000000000",
                    "--burst",
                    "1000000000",
                    "--max-connections",
                    "100000",
                    "--max-rooms",
                    "100000",
                    "--max-connections-per-ip",
                    "100000",
                    "--max-http-connections-per-ip",
                    "100000",
                    "--max-rooms-per-ip",
                    "100000",
                    "--join-rate-per-ip",
                    "1000000000",
                    "--join-burst-per-ip",
                    "1000000000",
                ])
                .args(extra)
                .env("PEERCALL_LOG", "warn");
                c
            }
            Which::Node => {
                let mut c = Command::new("node");
                c.arg(&programs.node_script).arg("0");
                c
            }
        };
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start the {} relay: {e}", which.name()))?;
        let pid = child.id().ok_or("the relay exited at once")?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let ws = tokio::time::timeout(Duration::from_secs(20), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.strip_prefix("signaling WebSocket: ") {
                    return rest.split_whitespace().next().map(str::to_owned);
                }
                if let Some(port) = line.strip_prefix("listening on ") {
                    return Some(format!("ws://127.0.0.1:{}/ws", port.trim()));
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .ok_or_else(|| format!("the {} relay did not say where it listens", which.name()))?;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { child, pid, ws })
    }

    /// Resident memory of the relay process, in bytes.
    pub fn rss(&self) -> Result<u64> {
        rss_of(self.pid)
    }

    /// CPU time the relay has used so far (user + system), in seconds.
    pub fn cpu_seconds(&self) -> Result<f64> {
        cpu_seconds_of(self.pid)
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// CPU time process `pid` has used so far (user + system), in seconds.
pub fn cpu_seconds_of(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    // Fields after the ")" closing the command name: utime is the 14th
    // field of the line, stime the 15th.
    let after = stat.rsplit_once(')').ok_or("bad stat")?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap_or(0.0) + f[12].parse::<f64>().unwrap_or(0.0);
    Ok(ticks / 100.0)
}

fn peer_id(n: usize) -> String {
    format!("{n:032x}")
}

fn room_id(n: usize) -> String {
    format!("bench{n:06}")
}

/// Connects one client to `room` as `id` and joins. With the peercall relay
/// waits for `welcome`; the Node relay has no join step (it forwards the
/// `join` to the room like any message).
pub(crate) async fn connect(server: &Server, which: Which, room: &str, id: &str) -> Result<Ws> {
    let url = format!("{}/{room}", server.ws);
    // Like a browser: small messages go out at once (no Nagle).
    let config = WebSocketConfig::default().read_buffer_size(8 * 1024);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(&url, Some(config), true)
        .await
        .map_err(|e| format!("connect {url}: {e}"))?;
    let join = format!(r#"{{"v":1,"room":"{room}","from":"{id}","seq":1,"type":"join"}}"#);
    ws.send(Message::text(join))
        .await
        .map_err(|e| format!("send join: {e}"))?;
    if which == Which::Peercall {
        loop {
            match tokio::time::timeout(Duration::from_secs(20), ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) if t.contains(r#""type":"welcome""#) => break,
                Ok(Some(Ok(Message::Text(t)))) if t.contains(r#""type":"error""#) => {
                    return Err(format!("join refused: {t}"))
                }
                Ok(Some(Ok(_))) => {}
                other => return Err(format!("no welcome: {other:?}")),
            }
        }
    }
    Ok(ws)
}

/// Opens `count` clients in rooms of `room_size`, numbered from `first`,
/// at most `parallel` handshakes at a time. With several servers (relays
/// of one cluster) each room's members go round them in turn.
async fn connect_many(
    servers: &[Server],
    which: Which,
    first: usize,
    count: usize,
    room_size: usize,
) -> Result<Vec<(usize, Ws)>> {
    let parallel = 128;
    let results: Vec<Result<(usize, Ws)>> =
        futures_util::stream::iter((first..first + count).map(|n| async move {
            let server = &servers[(n % room_size) % servers.len()];
            let ws = connect(server, which, &room_id(n / room_size), &peer_id(n)).await?;
            Ok((n, ws))
        }))
        .buffer_unordered(parallel)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Memory with `conns` idle connections open.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IdlePoint {
    pub conns: usize,
    pub rss_bytes: u64,
    /// (rss - rss before any connection) / conns.
    pub bytes_per_conn: f64,
}

/// One idle run: a fresh relay, connections added up to each of `steps`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IdleRun {
    pub relay: Which,
    pub baseline_rss_bytes: u64,
    pub points: Vec<IdlePoint>,
}

/// Resident memory of process `pid`, in bytes (VmRSS).
pub fn rss_of(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or("no VmRSS")?;
    Ok(kib * 1024)
}

/// The idle parts' connection counts.
pub fn idle_steps(quick: bool) -> &'static [usize] {
    if quick {
        &[1000]
    } else {
        &[1000, 5000, 10_000]
    }
}

pub async fn idle(which: Which, programs: &Programs, steps: &[usize]) -> Result<IdleRun> {
    idle_with(which, programs, steps, &[]).await
}

/// [`idle`] with more arguments for the relay.
pub async fn idle_with(
    which: Which,
    programs: &Programs,
    steps: &[usize],
    extra: &[&str],
) -> Result<IdleRun> {
    let server = Server::start_with(which, programs, extra).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = server.rss()?;
    let mut held: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    let mut points = Vec::new();
    for &target in steps {
        let have = held.len();
        if target > have {
            let servers = std::slice::from_ref(&server);
            for (_, ws) in connect_many(servers, which, have, target - have, 2).await? {
                // Keep reading (answers the relay's pings) and hold the socket.
                held.push(tokio::spawn(async move {
                    let (_sink, mut stream) = ws.split();
                    while let Some(Ok(_)) = stream.next().await {}
                    std::future::pending::<()>().await
                }));
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss = server.rss()?;
        points.push(IdlePoint {
            conns: target,
            rss_bytes: rss,
            bytes_per_conn: rss.saturating_sub(baseline) as f64 / target as f64,
        });
    }
    for h in held {
        h.abort();
    }
    server.stop().await;
    Ok(IdleRun {
        relay: which,
        baseline_rss_bytes: baseline,
        points,
    })
}

/// One offered rate in a fan-out run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FanoutStep {
    /// Messages per second the senders aimed for (all senders together).
    pub offered_per_s: f64,
    /// Messages per second actually sent.
    pub sent_per_s: f64,
    /// Deliveries per second (each message goes to room_size - 1 others).
    pub delivered_per_s: f64,
    /// delivered / (sent x (room_size - 1)) in the window.
    pub delivered_ratio: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Relay CPU use in the window (1.0 = one core busy), all relays.
    pub relay_cpu: f64,
    /// Each relay's CPU use, with several relays.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relay_cpus: Vec<f64>,
    /// Latency of the deliveries between clients on different relays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_p50_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_p99_ms: Option<f64>,
    /// Redis's CPU use, in a cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_cpu: Option<f64>,
    /// Error messages from the relay or closed connections in the window.
    pub errors: u64,
    pub saturated: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FanoutRun {
    pub relay: Which,
    pub room_size: usize,
    pub rooms: usize,
    pub steps: Vec<FanoutStep>,
    /// The most deliveries per second of a step that was not saturated:
    /// the throughput the relay sustains.
    pub sustained_delivered_per_s: f64,
    /// The offered rate of the first saturated step, if any was.
    pub saturated_at_per_s: Option<f64>,
}

struct Shared {
    base: std::time::Instant,
    /// Per-client pause between messages, in ns; 0 = not sending.
    interval_ns: AtomicU64,
    step: AtomicU32,
    /// The measurement window, in µs on `base`: messages sent in it count.
    window_start: AtomicU64,
    window_end: AtomicU64,
    stop: AtomicBool,
    sent: AtomicU64,
    received: AtomicU64,
    errors: AtomicU64,
    latencies: Vec<Mutex<Vec<u32>>>,
    /// The same, for deliveries between clients on different relays.
    cross: Vec<Mutex<Vec<u32>>>,
    /// How clients are spread: room size and relay count (relay of client
    /// n: n % room size % relays).
    room_size: usize,
    relays: usize,
}

impl Shared {
    fn relay_of(&self, n: usize) -> usize {
        (n % self.room_size) % self.relays
    }
}

impl Shared {
    fn now_us(&self) -> u64 {
        self.base.elapsed().as_micros() as u64
    }

    fn in_window(&self, t: u64) -> bool {
        t >= self.window_start.load(Ordering::Relaxed)
            && t < self.window_end.load(Ordering::Relaxed)
    }
}

const PAD: &str = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

async fn sender(shared: Arc<Shared>, mut sink: SplitSink<Ws, Message>, room: String, id: String) {
    let mut seq = 1u64;
    let mut next = Instant::now();
    while !shared.stop.load(Ordering::Relaxed) {
        let iv = shared.interval_ns.load(Ordering::Relaxed);
        if iv == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            next = Instant::now();
            continue;
        }
        next += Duration::from_nanos(iv);
        let now = Instant::now();
        if next > now {
            tokio::time::sleep_until(next).await;
        } else if now - next > Duration::from_millis(200) {
            // Far behind: this is saturation, not a backlog to replay.
            next = now;
        }
        seq += 1;
        let step = shared.step.load(Ordering::Relaxed);
        let t = shared.base.elapsed().as_micros() as u64;
        let text = format!(
            r#"{{"v":1,"room":"{room}","from":"{id}","seq":{seq},"type":"ping","step":{step},"t":{t},"pad":"{PAD}"}}"#
        );
        if sink.send(Message::text(text)).await.is_err() {
            shared.errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if shared.in_window(t) {
            shared.sent.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn field(text: &str, name: &str) -> Option<u64> {
    let at = text.find(name)? + name.len();
    let digits = text[at..].split(|c: char| !c.is_ascii_digit()).next()?;
    digits.parse().ok()
}

async fn receiver(shared: Arc<Shared>, mut stream: SplitStream<Ws>, slot: usize, me: usize) {
    while let Some(msg) = stream.next().await {
        let Ok(Message::Text(text)) = msg else {
            if msg.is_err() {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
            continue;
        };
        let now = shared.base.elapsed().as_micros() as u64;
        if text.contains(r#""type":"error""#) {
            shared.errors.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let (Some(step), Some(t)) = (field(&text, r#""step":"#), field(&text, r#""t":"#)) else {
            continue;
        };
        if step as u32 != shared.step.load(Ordering::Relaxed) || !shared.in_window(t) {
            continue;
        }
        shared.received.fetch_add(1, Ordering::Relaxed);
        let us = now.saturating_sub(t).min(u32::MAX as u64) as u32;
        shared.latencies[slot].lock().unwrap().push(us);
        let from = text
            .split(r#""from":""#)
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .and_then(|hex| usize::from_str_radix(hex, 16).ok());
        if from.is_some_and(|n| shared.relay_of(n) != shared.relay_of(me)) {
            shared.cross[slot].lock().unwrap().push(us);
        }
    }
}

/// Rising total send rates, in messages per second.
pub const RATES: &[f64] = &[
    1_000.0, 2_000.0, 5_000.0, 10_000.0, 20_000.0, 30_000.0, 40_000.0, 60_000.0, 80_000.0,
    120_000.0,
];

/// A step is saturated when the senders could not send at the offered rate
/// (the relay pushed back), messages went missing, the relay sent errors or
/// closed connections, or the 99th percentile latency passed this.
pub const SATURATED_P99_MS: f64 = 50.0;

pub async fn fanout(
    which: Which,
    programs: &Programs,
    room_size: usize,
    rooms: usize,
    rates: &[f64],
    window: Duration,
) -> Result<FanoutRun> {
    let server = Server::start(which, programs).await?;
    let run = fanout_over(
        which,
        std::slice::from_ref(&server),
        None,
        room_size,
        rooms,
        rates,
        window,
    )
    .await;
    server.stop().await;
    run
}

/// A fan-out run over `servers` (relays sharing rooms when more than one,
/// through the Redis with process id `redis`): each room's members go
/// round the relays, so most deliveries cross the bus.
pub async fn fanout_over(
    which: Which,
    servers: &[Server],
    redis: Option<u32>,
    room_size: usize,
    rooms: usize,
    rates: &[f64],
    window: Duration,
) -> Result<FanoutRun> {
    let clients = connect_many(servers, which, 0, rooms * room_size, room_size).await?;
    let shared = Arc::new(Shared {
        base: std::time::Instant::now(),
        interval_ns: AtomicU64::new(0),
        step: AtomicU32::new(0),
        window_start: AtomicU64::new(u64::MAX),
        window_end: AtomicU64::new(u64::MAX),
        stop: AtomicBool::new(false),
        sent: AtomicU64::new(0),
        received: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        latencies: (0..clients.len()).map(|_| Mutex::new(Vec::new())).collect(),
        cross: (0..clients.len()).map(|_| Mutex::new(Vec::new())).collect(),
        room_size,
        relays: servers.len(),
    });
    let n_clients = clients.len();
    let mut tasks = Vec::new();
    for (slot, (n, ws)) in clients.into_iter().enumerate() {
        let (sink, stream) = ws.split();
        tasks.push(tokio::spawn(sender(
            shared.clone(),
            sink,
            room_id(n / room_size),
            peer_id(n),
        )));
        tasks.push(tokio::spawn(receiver(shared.clone(), stream, slot, n)));
    }
    // Let the joins' own traffic settle.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut steps = Vec::new();
    for (i, &rate) in rates.iter().enumerate() {
        shared.step.store(i as u32 + 1, Ordering::Relaxed);
        let per_client_ns = (1e9 * n_clients as f64 / rate) as u64;
        shared
            .interval_ns
            .store(per_client_ns.max(1), Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(500)).await; // warm-up
        for l in shared.latencies.iter().chain(&shared.cross) {
            l.lock().unwrap().clear();
        }
        shared.sent.store(0, Ordering::Relaxed);
        shared.received.store(0, Ordering::Relaxed);
        shared.errors.store(0, Ordering::Relaxed);
        let cpu = || -> Vec<f64> {
            servers
                .iter()
                .map(|s| s.cpu_seconds().unwrap_or(0.0))
                .chain(redis.map(|pid| cpu_seconds_of(pid).unwrap_or(0.0)))
                .collect()
        };
        let cpu0 = cpu();
        let start = shared.now_us();
        shared.window_end.store(u64::MAX, Ordering::Relaxed);
        shared.window_start.store(start, Ordering::Relaxed);
        tokio::time::sleep(window).await;
        let end = shared.now_us();
        shared.window_end.store(end, Ordering::Relaxed);
        let secs = (end - start) as f64 / 1e6;
        let mut cpus: Vec<f64> = cpu()
            .iter()
            .zip(&cpu0)
            .map(|(after, before)| (after - before) / secs)
            .collect();
        let redis_cpu = redis.and_then(|_| cpus.pop());
        let cpu: f64 = cpus.iter().sum();
        // Stop sending and let messages sent in the window land: they
        // count however late they arrive (that is their latency).
        shared.interval_ns.store(0, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let sent = shared.sent.load(Ordering::Relaxed);
        let mut all: Vec<u32> = Vec::new();
        for l in &shared.latencies {
            all.append(&mut l.lock().unwrap());
        }
        all.sort_unstable();
        let mut cross: Vec<u32> = Vec::new();
        for l in &shared.cross {
            cross.append(&mut l.lock().unwrap());
        }
        cross.sort_unstable();
        let received = all.len() as u64;
        let errors = shared.errors.load(Ordering::Relaxed);
        let expected = sent * (room_size as u64 - 1);
        let ratio = if expected == 0 {
            0.0
        } else {
            received as f64 / expected as f64
        };
        let sent_per_s = sent as f64 / secs;
        let p99 = percentile_sorted(&all, 99.0) / 1000.0;
        let saturated =
            sent_per_s < 0.9 * rate || ratio < 0.95 || p99 > SATURATED_P99_MS || errors > 0;
        steps.push(FanoutStep {
            offered_per_s: rate,
            sent_per_s,
            delivered_per_s: received as f64 / secs,
            delivered_ratio: ratio,
            p50_ms: percentile_sorted(&all, 50.0) / 1000.0,
            p99_ms: p99,
            max_ms: all.last().map_or(f64::NAN, |&m| m as f64 / 1000.0),
            relay_cpu: cpu,
            relay_cpus: if servers.len() > 1 { cpus } else { Vec::new() },
            cross_p50_ms: (!cross.is_empty()).then(|| percentile_sorted(&cross, 50.0) / 1000.0),
            cross_p99_ms: (!cross.is_empty()).then(|| percentile_sorted(&cross, 99.0) / 1000.0),
            redis_cpu,
            errors,
            saturated,
        });
        // A moment for queues to drain before the next rate.
        tokio::time::sleep(Duration::from_millis(500)).await;
        if saturated {
            break;
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }
    let sustained_delivered_per_s = steps
        .iter()
        .filter(|s| !s.saturated)
        .map(|s| s.delivered_per_s)
        .fold(0.0, f64::max);
    let saturated_at_per_s = steps.iter().find(|s| s.saturated).map(|s| s.offered_per_s);
    Ok(FanoutRun {
        relay: which,
        room_size,
        rooms,
        steps,
        sustained_delivered_per_s,
        saturated_at_per_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_numeric_fields_without_parsing_json() {
        let t =
            r#"{"v":1,"room":"r","from":"a","seq":9,"type":"ping","step":3,"t":123456,"pad":"x"}"#;
        assert_eq!(field(t, r#""step":"#), Some(3));
        assert_eq!(field(t, r#""t":"#), Some(123456));
        assert_eq!(field(t, r#""nope":"#), None);
    }
}
