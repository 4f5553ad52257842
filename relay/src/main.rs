//! `peercall-relay`: serve the signaling WebSocket (and the built app).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use peercall_relay::{serve, Config, WS_PATH};
use tracing_subscriber::EnvFilter;

/// peercall's signaling relay. Serves the WebSocket at /ws, a health check at
/// /healthz and, with --static-dir, the built web app at /.
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
    /// Largest signaling message accepted, in bytes.
    #[arg(long, default_value_t = Config::default().max_message_bytes)]
    max_message_bytes: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
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
    println!("signaling WebSocket: ws://{local}{WS_PATH}");

    let config = Config {
        static_dir: args.static_dir,
        max_message_bytes: args.max_message_bytes,
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
