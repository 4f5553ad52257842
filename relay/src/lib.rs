//! peercall's relay: the signaling WebSocket and, optionally, the built web
//! app as static files, from one process.
//!
//! [`app`] builds the whole HTTP service from a [`Config`] and is kept apart
//! from `main` so tests can drive it in-process or bind it to port 0.
//!
//! Modules: `conn` runs one WebSocket (reading, writing, keep-alive, rate
//! limit, shutdown); `rooms` decides what each message means in the default
//! [`Mode::Rooms`]; `dumb` is [`Mode::Broadcast`]; `statics` serves `dist/`;
//! `turn` hands out short-lived TURN credentials.
#![forbid(unsafe_code)]

pub mod compress;
mod conn;
mod dumb;
mod rooms;
mod statics;
mod turn;

pub use turn::{credential as turn_credential, TurnConfig};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Path, State as AxumState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::trace::TraceLayer;

pub use peercall_protocol::WS_PATH;

/// How the relay routes messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Rooms, presence, targeted delivery, id binding and limits.
    #[default]
    Rooms,
    /// Forward every text message to every connected client, the sender
    /// included, knowing nothing of rooms or ids: the plainest relay the
    /// app must work over.
    Broadcast,
}

impl Mode {
    /// Its name, as `--mode` takes it and `/healthz` reports it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Rooms => "rooms",
            Mode::Broadcast => "broadcast",
        }
    }
}

/// Locks a mutex, carrying on if a panicking thread poisoned it: every
/// critical section in the relay leaves its maps consistent at each step.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What the relay is told at start. Every limit is configurable; the
/// defaults are what `peercall-relay --help` shows.
#[derive(Clone, Debug)]
pub struct Config {
    /// Folder with the built web app (`dist/`), served at `/`. `None` serves
    /// only the WebSocket and the health endpoint.
    pub static_dir: Option<PathBuf>,
    /// Routing mode.
    pub mode: Mode,
    /// The largest text message a client may send, in bytes. Larger ones
    /// are refused with a `too_large` error; frames over four times this
    /// end the connection (close code 1009).
    pub max_message_bytes: usize,
    /// Messages a connection may send per second, sustained.
    pub rate_per_sec: f64,
    /// Messages a connection may send in a burst above the sustained rate.
    pub rate_burst: f64,
    /// Peers in one room: by default 6, the most the app lets into one
    /// full-mesh call.
    pub max_peers_per_room: usize,
    /// Rooms in the relay at once.
    pub max_rooms: usize,
    /// WebSocket connections at once; more get HTTP 503.
    pub max_connections: usize,
    /// Longest room id and peer id, in characters.
    pub max_id_len: usize,
    /// How often the relay pings each client (WebSocket ping frames, which
    /// browsers answer by themselves).
    pub ping_interval: Duration,
    /// A connection that sends nothing (not even a pong) for this long is
    /// closed.
    pub idle_timeout: Duration,
    /// TURN servers to hand short-lived credentials out for at
    /// `/ice-servers`; `None` answers that endpoint with 404.
    pub turn: Option<TurnConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            static_dir: None,
            mode: Mode::Rooms,
            max_message_bytes: peercall_protocol::MAX_MESSAGE_BYTES,
            rate_per_sec: 50.0,
            rate_burst: 200.0,
            max_peers_per_room: 6,
            max_rooms: 10_000,
            max_connections: 20_000,
            max_id_len: peercall_protocol::MAX_ID_LEN,
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            turn: None,
        }
    }
}

/// Shared state of one relay process.
#[derive(Debug)]
pub struct State {
    config: Config,
    rooms: rooms::Rooms,
    dumb: dumb::Everyone,
    shutdown: watch::Sender<bool>,
    next_conn: AtomicU64,
    connections: AtomicUsize,
}

impl State {
    fn new(config: Config) -> Self {
        Self {
            config,
            rooms: rooms::Rooms::default(),
            dumb: dumb::Everyone::default(),
            shutdown: watch::channel(false).0,
            next_conn: AtomicU64::new(1),
            connections: AtomicUsize::new(0),
        }
    }

    /// Closes every WebSocket with 1001 "going away".
    fn shut_down(&self) {
        self.shutdown.send_replace(true);
    }
}

/// The relay's HTTP service: `/ws` and `/ws/{room}` (signaling), `/healthz`,
/// `/ice-servers` (TURN credentials), and the static app when [`Config::static_dir`] is set.
pub fn app(config: Config) -> Router {
    router(Arc::new(State::new(config)))
}

fn router(state: Arc<State>) -> Router {
    let mut router = Router::new()
        .route(WS_PATH, get(upgrade))
        .route(&format!("{WS_PATH}/{{room}}"), get(upgrade_in_room))
        .route("/healthz", get(health))
        .route("/ice-servers", get(turn::ice_servers))
        .with_state(state.clone());
    if let Some(dir) = &state.config.static_dir {
        router = router.fallback_service(statics::service(dir));
    }
    router.layer(TraceLayer::new_for_http())
}

/// Bytes read from a WebSocket at a time (see `accept`).
const READ_BUFFER: usize = 4 * 1024;

async fn upgrade(
    ws: WebSocketUpgrade,
    AxumState(state): AxumState<Arc<State>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
) -> Response {
    accept(ws, state, addr, None)
}

async fn upgrade_in_room(
    ws: WebSocketUpgrade,
    AxumState(state): AxumState<Arc<State>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(room): Path<String>,
) -> Response {
    if !peercall_protocol::is_valid_id(&room, state.config.max_id_len) {
        tracing::warn!(%addr, room, "refused: bad room id in URL");
        return (
            StatusCode::BAD_REQUEST,
            format!(
                "room id must be 1 to {} characters of A-Z a-z 0-9 - _",
                state.config.max_id_len
            ),
        )
            .into_response();
    }
    accept(ws, state, addr, Some(room))
}

fn accept(
    ws: WebSocketUpgrade,
    state: Arc<State>,
    addr: SocketAddr,
    room: Option<String>,
) -> Response {
    let open = state.connections.load(Ordering::Relaxed);
    if open >= state.config.max_connections {
        tracing::warn!(%addr, open, "refused: connection limit reached");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the relay is at its connection limit; try again later",
        )
            .into_response();
    }
    let hard_limit = conn::hard_limit(state.config.max_message_bytes);
    ws.max_message_size(hard_limit)
        .max_frame_size(hard_limit)
        // tungstenite's default is a 128 KiB read buffer per connection,
        // allocated up front: 1.3 GB for 10k idle browsers. Signaling
        // messages are small; a bigger one is read in several chunks.
        .read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket| conn::run(socket, state, addr, room))
}

async fn health(AxumState(state): AxumState<Arc<State>>) -> Json<serde_json::Value> {
    let (rooms, peers) = state.rooms.counts();
    Json(json!({
        "status": "ok",
        "protocol": peercall_protocol::PROTOCOL_VERSION,
        "mode": state.config.mode.name(),
        "connections": state.connections.load(Ordering::Relaxed),
        "rooms": rooms,
        "peers": peers,
        "turn": state.config.turn.is_some(),
    }))
}

/// Serves [`app`] on `listener` until `shutdown` resolves; then every
/// WebSocket is closed with code 1001 ("going away", so clients know to
/// reconnect) and open HTTP requests may finish.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = Arc::new(State::new(config));
    let service = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    // Signaling is small messages that should leave at once: without
    // TCP_NODELAY, Nagle's algorithm holds a message back until the previous
    // one is acknowledged (up to the peer's delayed-ACK timer, ~40 ms).
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY: {e}");
        }
    });
    axum::serve(listener, service)
        .with_graceful_shutdown(async move {
            shutdown.await;
            state.shut_down();
        })
        .await
}
