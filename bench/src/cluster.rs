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
//! one per measurement on a free loopback port, keeping nothing on disk.

use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};

use crate::relay::{self, FanoutRun, IdleRun, Programs, Server, Which, RATES};

type Result<T, E = String> = std::result::Result<T, E>;

/// A redis-server of our own.
struct Redis {
    child: Child,
    pid: u32,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    async fn start() -> Result<Self> {
        let bin =
            std::env::var_os("PEERCALL_REDIS_SERVER_BIN").unwrap_or_else(|| "redis-server".into());
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let config = dir.path().join("redis.conf");
        std::fs::write(
            &config,
            format!(
                "port {port}\nbind 127.0.0.1\nsave \"\"\nappendonly no\ndaemonize no\ndir {}\n\
                 logfile {}\nmaxclients 1000\n",
                dir.path().display(),
                dir.path().join("redis.log").display()
            ),
        )
        .map_err(|e| e.to_string())?;
        let child = Command::new(&bin)
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                format!("cannot start redis-server (scripts/bench.sh installs it): {e}")
            })?;
        let pid = child.id().ok_or("redis-server exited at once")?;
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(Self {
                    child,
                    pid,
                    port,
                    _dir: dir,
                });
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Err("redis-server did not listen within 5 s".into())
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
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
}

/// The layouts measured: (relays, on Redis).
pub const LAYOUTS: [(usize, bool); 4] = [(1, false), (1, true), (2, true), (3, true)];
pub const ROOM_SIZE: usize = 6;

pub async fn measure(programs: &Programs, quick: bool) -> Result<ClusterResults> {
    let reps = if quick { 1 } else { 3 };
    let window = Duration::from_secs(if quick { 1 } else { 2 });
    let idle_steps: &[usize] = if quick {
        &[1000]
    } else {
        &[1000, 5000, 10_000]
    };
    let mut out = ClusterResults::default();
    for rep in 1..=reps {
        for (relays, on_redis) in LAYOUTS {
            eprintln!(
                "==> cluster fan-out: {relays} relay(s){}, rooms of {ROOM_SIZE} (run {rep}/{reps})",
                if on_redis { " on Redis" } else { " alone" }
            );
            let redis = if on_redis {
                Some(Redis::start().await?)
            } else {
                None
            };
            let url = redis.as_ref().map(Redis::url);
            let extra: Vec<&str> = match &url {
                Some(url) => vec!["--redis", url],
                None => Vec::new(),
            };
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
                redis.as_ref().map(|r| r.pid),
                ROOM_SIZE,
                120 / ROOM_SIZE,
                RATES,
                window,
            )
            .await;
            for s in servers {
                s.stop().await;
            }
            if let Some(r) = redis {
                r.stop().await;
            }
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
            let redis = if on_redis {
                Some(Redis::start().await?)
            } else {
                None
            };
            let url = redis.as_ref().map(Redis::url);
            let extra: Vec<&str> = match &url {
                Some(url) => vec!["--redis", url],
                None => Vec::new(),
            };
            let run = relay::idle_with(Which::Peercall, programs, idle_steps, &extra).await;
            if let Some(r) = redis {
                r.stop().await;
            }
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
