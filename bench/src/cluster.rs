//! Several relays sharing rooms through Redis (`--redis`), against one
//! relay alone, in one run:
//!
//! - **Fan-out**: the relay part's fan-out in rooms of 6 (20 rooms, 120
//!   clients), with one relay alone, one relay on Redis, and the same
//!   clients spread over two and three relays on one Redis (each room's
//!   members go round the relays, so most deliveries cross the bus). Each
//!   relay's CPU and Redis's are read from /proc.
//! - **Idle**: the relay part's idle connections (rooms of 2), with and
//!   without Redis: the memory a connection costs in a cluster.
//!
//! Redis is Debian's `redis-server` (`PEERCALL_REDIS_SERVER_BIN`), a fresh
//! one per measurement on a free loopback port, keeping nothing on disk
//! (the e2e harness's [`Redis`]).

use std::time::Duration;

use peercall_e2e::Redis;
use serde::{Deserialize, Serialize};

use crate::relay::{self, FanoutRun, IdleRun, Programs, Server, Which, RATES};

type Result<T, E = String> = std::result::Result<T, E>;

/// A fresh Redis when `on` (the harness's: loopback, nothing on disk),
/// and the relay arguments that use it.
async fn redis_if(on: bool) -> Result<(Option<Redis>, Vec<String>)> {
    if !on {
        return Ok((None, Vec::new()));
    }
    let redis = Redis::start().await?;
    let args = vec!["--redis".to_owned(), redis.url()];
    Ok((Some(redis), args))
}

/// Waits until the relay at `ws` says it is connected to Redis.
async fn until_connected(server: &Server) -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = server
        .ws
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    for _ in 0..200 {
        let mut tcp = tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut raw = String::new();
        tcp.read_to_string(&mut raw)
            .await
            .map_err(|e| e.to_string())?;
        if raw.contains(r#""redis":"connected""#) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err(format!("the relay at {addr} did not connect to Redis"))
}

/// One message at a time between two clients, on one relay or on two
/// relays of one Redis: the cost of the hop through Redis with nothing
/// else running.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OneAtATime {
    pub across_relays: bool,
    pub messages: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Sends `n` messages from a client to another, each after the previous
/// arrived: on two relays of one Redis, or both on one of them.
async fn one_at_a_time(programs: &Programs, across: bool, n: usize) -> Result<OneAtATime> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (redis, args) = redis_if(true).await?;
    let extra: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut servers = Vec::new();
    for _ in 0..2 {
        let server = Server::start_with(Which::Peercall, programs, &extra).await?;
        until_connected(&server).await?;
        servers.push(server);
    }
    let mut a = relay::connect(&servers[0], Which::Peercall, "solo", "a").await?;
    let mut b = relay::connect(&servers[usize::from(across)], Which::Peercall, "solo", "b").await?;
    // As a client would: send to b once its join has arrived.
    loop {
        match tokio::time::timeout(Duration::from_secs(5), a.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.contains(r#""type":"join""#) => break,
            Ok(Some(Ok(_))) => continue,
            other => return Err(format!("b's join did not reach a: {other:?}")),
        }
    }
    let text = r#"{"v":1,"room":"solo","from":"a","to":"b","type":"ping"}"#;
    let mut took = Vec::with_capacity(n);
    let mut failed = None;
    'messages: for _ in 0..n {
        let start = std::time::Instant::now();
        if let Err(e) = a.send(Message::text(text)).await {
            failed = Some(e.to_string());
            break;
        }
        loop {
            match tokio::time::timeout(Duration::from_secs(5), b.next()).await {
                Ok(Some(Ok(Message::Text(t)))) if t.contains(r#""type":"ping""#) => break,
                Ok(Some(Ok(_))) => continue,
                other => {
                    failed = Some(format!("no message: {other:?}"));
                    break 'messages;
                }
            }
        }
        took.push(start.elapsed().as_micros() as u32);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for s in servers {
        s.stop().await;
    }
    drop(redis);
    if let Some(e) = failed {
        return Err(format!("one message at a time: {e}"));
    }
    took.sort_unstable();
    Ok(OneAtATime {
        across_relays: across,
        messages: n,
        p50_ms: crate::stats::percentile_sorted(&took, 50.0) / 1000.0,
        p99_ms: crate::stats::percentile_sorted(&took, 99.0) / 1000.0,
    })
}

/// A fan-out run with `relays` relays, on Redis or not.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterFanout {
    pub relays: usize,
    pub redis: bool,
    pub run: FanoutRun,
}

/// An idle run, on Redis or not.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterIdle {
    pub redis: bool,
    pub run: IdleRun,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ClusterResults {
    pub fanout: Vec<ClusterFanout>,
    pub idle: Vec<ClusterIdle>,
    #[serde(default)]
    pub one_at_a_time: Vec<OneAtATime>,
}

/// The layouts measured: (relays, on Redis).
pub const LAYOUTS: [(usize, bool); 4] = [(1, false), (1, true), (2, true), (3, true)];
pub const ROOM_SIZE: usize = 6;

pub async fn measure(programs: &Programs, quick: bool) -> Result<ClusterResults> {
    let reps = if quick { 1 } else { 3 };
    let window = Duration::from_secs(if quick { 1 } else { 2 });
    let idle_steps = relay::idle_steps(quick);
    let mut out = ClusterResults::default();
    for rep in 1..=reps {
        for across in [false, true] {
            eprintln!(
                "==> cluster: one message at a time, {} (run {rep}/{reps})",
                if across {
                    "across two relays"
                } else {
                    "on one relay"
                }
            );
            let r = one_at_a_time(programs, across, if quick { 300 } else { 2000 }).await?;
            eprintln!("    p50 {:.3} ms, p99 {:.3} ms", r.p50_ms, r.p99_ms);
            out.one_at_a_time.push(r);
        }
        for (relays, on_redis) in LAYOUTS {
            eprintln!(
                "==> cluster fan-out: {relays} relay(s){}, rooms of {ROOM_SIZE} (run {rep}/{reps})",
                if on_redis { " on Redis" } else { " alone" }
            );
            let (redis, args) = redis_if(on_redis).await?;
            let extra: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut servers = Vec::new();
            for _ in 0..relays {
                let server = Server::start_with(Which::Peercall, programs, &extra).await?;
                if on_redis {
                    until_connected(&server).await?;
                }
                servers.push(server);
            }
            let run = relay::fanout_over(
                Which::Peercall,
                &servers,
                redis.as_ref().and_then(Redis::pid),
                ROOM_SIZE,
                120 / ROOM_SIZE,
                RATES,
                window,
            )
            .await;
            for s in servers {
                s.stop().await;
            }
            drop(redis);
            let run = run?;
            for s in &run.steps {
                eprintln!(
                    "    {:>6.0}/s offered: delivered {:>7.0}/s ({:.3}), p50 {:.2} ms, p99 {:.2} ms, relays cpu {:?}, redis cpu {:.2}{}",
                    s.offered_per_s,
                    s.delivered_per_s,
                    s.delivered_ratio,
                    s.p50_ms,
                    s.p99_ms,
                    if s.relay_cpus.is_empty() { vec![s.relay_cpu] } else { s.relay_cpus.clone() },
                    s.redis_cpu.unwrap_or(0.0),
                    if s.saturated { "  saturated" } else { "" }
                );
            }
            out.fanout.push(ClusterFanout {
                relays,
                redis: on_redis,
                run,
            });
        }
        for on_redis in [false, true] {
            eprintln!(
                "==> cluster idle connections: {} (run {rep}/{reps})",
                if on_redis { "on Redis" } else { "alone" }
            );
            let (redis, args) = redis_if(on_redis).await?;
            let extra: Vec<&str> = args.iter().map(String::as_str).collect();
            let run = relay::idle_with(Which::Peercall, programs, idle_steps, &extra).await;
            drop(redis);
            let run = run?;
            for p in &run.points {
                eprintln!(
                    "    {:>6} conns: rss {:.1} MB, {:.1} KB/conn",
                    p.conns,
                    p.rss_bytes as f64 / 1e6,
                    p.bytes_per_conn / 1e3
                );
            }
            out.idle.push(ClusterIdle {
                redis: on_redis,
                run,
            });
        }
    }
    Ok(out)
}
