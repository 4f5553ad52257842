//! `peercall-relay`: serve the signaling WebSocket (and the built app).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use std::time::Duration;

use peercall_relay::{serve, Config, Mode, WS_PATH};
use tracing_subscriber::EnvFilter;

/// peercall's signaling relay. Serves the WebSocket at /ws (and /ws/ROOM), a
/// health check at /healthz and, with --static-dir, the built web app at /.
///
/// Every limit answers the client with an `error` message naming it and
/// writes a log line (PEERCALL_LOG=debug for more, e.g. PEERCALL_LOG=warn for
/// less).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "PEERCALL_ADDR", default_value = "127.0.0.1")]
    addr: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, short, env = "PEERCALL_PORT", default_value_t = 8080)]
    port: u16,
    /// Folder with the built web app (trunk's dist/) to serve at /.
    #[arg(long, env = "PEERCALL_STATIC_DIR")]
    static_dir: Option<PathBuf>,
    /// rooms: rooms, presence, targeted delivery, limits. broadcast: forward
    /// every message to every client (sender included) and nothing else.
    #[arg(long, value_enum, default_value_t = Mode::Rooms)]
    mode: Mode,
    /// Largest signaling message accepted, in bytes (frames over 4x this
    /// close the connection).
    #[arg(long, default_value_t = Config::default().max_message_bytes)]
    max_message_bytes: usize,
    /// Messages per second one connection may send, sustained.
    #[arg(long, default_value_t = Config::default().rate_per_sec)]
    rate: f64,
    /// Messages one connection may send in a burst.
    #[arg(long, default_value_t = Config::default().rate_burst)]
    burst: f64,
    /// Peers in one room; the next one is told "room full".
    #[arg(long, default_value_t = Config::default().max_peers_per_room)]
    max_peers: usize,
    /// Rooms at once.
    #[arg(long, default_value_t = Config::default().max_rooms)]
    max_rooms: usize,
    /// WebSocket connections at once (more get HTTP 503).
    #[arg(long, default_value_t = Config::default().max_connections)]
    max_connections: usize,
    /// Longest room id and peer id, in characters.
    #[arg(long, default_value_t = Config::default().max_id_len)]
    max_id_len: usize,
    /// Seconds between WebSocket pings to each client.
    #[arg(long, default_value_t = Config::default().ping_interval.as_secs_f64(), value_parser = seconds)]
    ping_interval: f64,
    /// Seconds of silence after which a client is disconnected.
    #[arg(long, default_value_t = Config::default().idle_timeout.as_secs_f64(), value_parser = seconds)]
    idle_timeout: f64,
}

fn seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() && v < 1e9 => Ok(v),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            EnvFilter::try_from_env("PEERCALL_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();

    if let Some(dir) = &args.static_dir {
        if !dir.join("index.html").is_file() {
            eprintln!(
                "error: {} has no index.html; build the app first (trunk build --release)",
                dir.display()
            );
            return ExitCode::FAILURE;
        }
    }
    let addr = SocketAddr::new(args.addr, args.port);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {addr}: {e} (is another relay running? try --port)");
            return ExitCode::FAILURE;
        }
    };
    let local = listener
        .local_addr()
        .expect("bound listener has an address");
    if args.static_dir.is_some() {
        println!("peercall is running: open http://{local}/");
    }
    println!(
        "signaling WebSocket: ws://{local}{WS_PATH} ({} mode)",
        args.mode.name()
    );

    let config = Config {
        static_dir: args.static_dir,
        mode: args.mode,
        max_message_bytes: args.max_message_bytes,
        rate_per_sec: args.rate,
        rate_burst: args.burst,
        max_peers_per_room: args.max_peers,
        max_rooms: args.max_rooms,
        max_connections: args.max_connections,
        max_id_len: args.max_id_len,
        ping_interval: Duration::from_secs_f64(args.ping_interval),
        idle_timeout: Duration::from_secs_f64(args.idle_timeout),
    };
    match serve(listener, config, shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
