//! peercall's relay: the signaling WebSocket and, optionally, the built web
//! app as static files, from one process.
//!
//! [`app`] builds the whole HTTP service from a [`Config`] and is kept apart
//! from `main` so tests can drive it in-process or bind it to port 0.
//!
//! Modules: `server` accepts TCP connections and serves HTTP on them
//! (deadlines, connection caps, tracked shutdown); `upgrade` turns a request
//! into a WebSocket; `conn` runs one WebSocket (reading, writing,
//! keep-alive, rate limit, deadlines, shutdown); `frames` follows its frames
//! to time unfinished messages; `limits` counts what each client address
//! holds; `rooms` decides what each message means in the default
//! [`Mode::Rooms`]; `cluster` shares rooms with other relays through Redis
//! (`--redis`); `dumb` is [`Mode::Broadcast`]; `statics` serves `dist/`;
//! `turn` hands out short-lived TURN credentials; `phone` calls phones
//! through Janus's SIP plugin, with `janus` as its client.
#![forbid(unsafe_code)]

mod cluster;
pub mod compress;
mod conn;
mod dumb;
mod frames;
#[doc(hidden)]
pub mod fuzzing;
mod headers;
pub mod janus;
mod limits;
mod origin;
mod outbox;
pub mod phone;
pub mod redirect;
mod rooms;
mod server;
mod sfu;
mod statics;
mod table;
pub mod tls;
mod turn;
mod upgrade;

pub use limits::{AddrKey, PerAddr};
pub use origin::Origins;
pub use phone::PhoneConfig;
pub use turn::{credential as turn_credential, TurnConfig};

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::extract::{Path, Request, State as AxumState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;
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
    /// Peers in one room: by default [`peercall_protocol::MAX_PEOPLE`],
    /// the most the app lets into one full-mesh call.
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
    /// A client must send a request's headers within this long of opening
    /// the connection (or of the previous response, on a kept-alive one);
    /// otherwise the connection is closed.
    pub header_timeout: Duration,
    /// TCP connections at once that are not WebSockets (yet): reading a
    /// request, being served a file, or idle between requests. More are
    /// closed as soon as they are accepted.
    pub max_http_connections: usize,
    /// The most a request's line and headers may take, in bytes (more: 431).
    pub max_header_bytes: usize,
    /// What one client address may hold and do.
    pub per_addr: PerAddr,
    /// A write to a client that takes longer (its TCP window stays full: it
    /// stopped reading) closes the connection with 1013.
    pub write_timeout: Duration,
    /// Bytes queued for one client before it counts as too slow (closed
    /// with 1013, and the queue freed).
    pub max_queue_bytes: usize,
    /// A data message (fragmented, or one large frame) must be complete
    /// within this long of its first byte; otherwise the connection is
    /// closed with 1008 and what it held freed. Pings in between do not
    /// extend it.
    pub message_timeout: Duration,
    /// Bytes the relay holds, over all connections, for messages still
    /// arriving (past the first 16 KiB of each): a frame that would take it
    /// over is not read and its connection is closed with 1013, so many
    /// large messages started at once cost a bounded amount of memory and
    /// reading. At least the hard frame limit (4 x `max_message_bytes`).
    /// The default, 8 MiB, is some 170 messages at the message limit
    /// arriving at the same moment; the app's messages are never charged.
    pub max_arriving_bytes: usize,
    /// On shutdown, how long to wait for clients to take their close frame
    /// and for HTTP requests to finish.
    pub shutdown_timeout: Duration,
    /// Reverse proxies whose `X-Forwarded-For` is believed: behind them the
    /// per-address limits count the client's address, not the proxy's.
    pub trusted_proxies: Vec<IpAddr>,
    /// Redis to share rooms with other relays through (`redis://HOST:PORT[/DB]`);
    /// `None`: this relay alone. Used by [`serve`].
    pub redis: Option<String>,
    /// This relay's id in the cluster; `None` makes one up (host, process
    /// id and a random part).
    pub relay_id: Option<String>,
    /// How long a relay that stops beating counts as alive: its members
    /// are announced gone within this plus a second.
    pub cluster_ttl: Duration,
    /// Origins (`scheme://host[:port]`, or `*`) whose pages may open the
    /// WebSocket and read `/ice-servers`, besides the relay's own when it
    /// serves the app; with no app and none named, any (see [`Origins`]).
    pub allowed_origins: Vec<String>,
    /// More sources for the served app's CSP `connect-src` (relays and
    /// credential URLs that `config.json` does not name), e.g.
    /// `wss://relay2.example.com`.
    pub connect_src: Vec<String>,
    /// HTTPS: where the certificate comes from; `None` serves plain HTTP.
    /// Used by [`serve`].
    pub tls: Option<tls::Tls>,
    /// A TLS handshake not finished within this long is dropped.
    pub tls_handshake_timeout: Duration,
    /// TLS handshakes in progress at once; a connection past them is
    /// closed at once (handshakes cost CPU: a flood of them must not
    /// starve the calls).
    pub max_tls_handshakes: usize,
    /// Phone calls through Janus's SIP plugin (`--janus`, `--sip-*`);
    /// none without a Janus. The same Janus is the SFU for large calls.
    pub phone: Arc<PhoneConfig>,
    /// With a Janus: a room with more people than this moves its media to
    /// the SFU (`--mesh-max`, PROTOCOL.md 5.14).
    pub mesh_max: usize,
}

/// Descriptors kept free besides the connections: the listener, files the
/// app is served from, logs, and what the runtime itself opens.
const SPARE_DESCRIPTORS: usize = 64;

/// The most people a room on the SFU may hold (see [`Config::validate`]).
pub const MAX_SFU_PEERS: usize = 30;

impl Config {
    /// Refuses settings the relay cannot keep its promises with, in words.
    pub fn validate(&self) -> Result<(), String> {
        // The one relay message built from many peers' fields is `welcome`:
        // it must fit the size limit the app (and the relay) hold every
        // message to. Each listed peer costs at most its id, its name (no
        // control characters, so a character is at most 4 bytes in JSON)
        // and the syntax.
        let per_peer = self.max_id_len + 4 * peercall_protocol::MAX_NAME_CHARS + 24;
        let welcome =
            128 + self.max_id_len * 3 + self.max_peers_per_room.saturating_sub(1) * per_peer;
        if welcome > self.max_message_bytes {
            return Err(format!(
                "--max-peers {} could make a welcome of {welcome} bytes, over --max-message-bytes {}: \
                 raise that or lower --max-peers",
                self.max_peers_per_room, self.max_message_bytes
            ));
        }
        // Through the SFU one `sfu_subscription` carries everyone else's
        // audio and video m-lines: about 1.9 KB a person (Janus's offer for
        // 24 was 40.6 KB of SDP, e2e/tests/sfu.rs), and the app takes
        // messages of up to 64 KB.
        if self.phone.enabled() && self.max_peers_per_room > MAX_SFU_PEERS {
            return Err(format!(
                "--max-peers {} with --janus: a subscription to that many people's media would \
                 outgrow a message; at most {MAX_SFU_PEERS}",
                self.max_peers_per_room
            ));
        }
        for (name, value) in [
            ("--max-connections", self.max_connections),
            ("--max-http-connections", self.max_http_connections),
            ("--max-peers", self.max_peers_per_room),
            ("--max-rooms", self.max_rooms),
            (
                "--max-http-connections-per-ip",
                self.per_addr.http_connections,
            ),
            ("--max-connections-per-ip", self.per_addr.websockets),
            ("--max-rooms-per-ip", self.per_addr.rooms),
            ("--max-tls-handshakes", self.max_tls_handshakes),
        ] {
            if value == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        Origins::new(&self.allowed_origins, self.static_dir.is_some())?;
        for source in &self.connect_src {
            if source.is_empty()
                || source
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || ";,'\"".contains(c))
            {
                return Err(format!(
                    "--connect-src {source:?} is not a CSP source: give e.g. wss://relay.example.com"
                ));
            }
        }
        if self.max_header_bytes < 8192 {
            return Err("--max-header-bytes must be at least 8192".into());
        }
        if self.max_queue_bytes < self.max_message_bytes {
            return Err("--max-queue-bytes must be at least --max-message-bytes".into());
        }
        if self.max_arriving_bytes < conn::hard_limit(self.max_message_bytes) {
            return Err(format!(
                "--max-arriving-bytes must be at least 4 x --max-message-bytes ({}), the largest frame the relay reads",
                conn::hard_limit(self.max_message_bytes)
            ));
        }
        Ok(())
    }

    /// Makes the connection limits fit `descriptors` (the process's
    /// open-file limit), so a client past them gets HTTP 503 (or is closed at
    /// once) and the relay never runs out of descriptors (accept failing
    /// with EMFILE for everyone). Gives back what it changed, in words.
    pub fn fit_descriptors(&mut self, descriptors: u64) -> Option<String> {
        let descriptors = usize::try_from(descriptors).unwrap_or(usize::MAX);
        // Each HTTP connection may have a file open while it serves one.
        let need = self.max_connections + 2 * self.max_http_connections + SPARE_DESCRIPTORS;
        if need <= descriptors {
            return None;
        }
        let (was_ws, was_http) = (self.max_connections, self.max_http_connections);
        let spare = descriptors.saturating_sub(SPARE_DESCRIPTORS);
        self.max_http_connections = self.max_http_connections.min((spare / 8).max(1));
        self.max_connections = spare.saturating_sub(2 * self.max_http_connections).max(1);
        Some(format!(
            "the open-file limit is {descriptors}: --max-connections lowered from {was_ws} to {} \
             and --max-http-connections from {was_http} to {} (raise the hard limit, e.g. \
             LimitNOFILE= or ulimit -Hn, to keep them)",
            self.max_connections, self.max_http_connections
        ))
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            static_dir: None,
            mode: Mode::Rooms,
            max_message_bytes: peercall_protocol::MAX_MESSAGE_BYTES,
            rate_per_sec: 50.0,
            rate_burst: 200.0,
            max_peers_per_room: peercall_protocol::MAX_PEOPLE,
            max_rooms: 10_000,
            max_connections: 20_000,
            max_id_len: peercall_protocol::MAX_ID_LEN,
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            turn: None,
            header_timeout: Duration::from_secs(10),
            max_http_connections: 1024,
            max_header_bytes: 32 * 1024,
            // Room for a household or an office behind one NAT (a browser
            // opens up to six HTTP connections while it loads the app).
            per_addr: PerAddr {
                http_connections: 128,
                websockets: 64,
                rooms: 32,
                joins_per_sec: 4.0,
                joins_burst: 40.0,
                ice_per_sec: 1.0,
                ice_burst: 20.0,
            },
            write_timeout: Duration::from_secs(10),
            max_queue_bytes: 1024 * 1024,
            message_timeout: Duration::from_secs(10),
            max_arriving_bytes: 8 * 1024 * 1024,
            shutdown_timeout: Duration::from_secs(5),
            trusted_proxies: Vec::new(),
            redis: None,
            relay_id: None,
            cluster_ttl: Duration::from_secs(5),
            allowed_origins: Vec::new(),
            connect_src: Vec::new(),
            phone: Arc::default(),
            mesh_max: 4,
            tls: None,
            tls_handshake_timeout: Duration::from_secs(10),
            max_tls_handshakes: 256,
        }
    }
}

/// A count with a ceiling, taken by [`Gauge::take`] and given back when its
/// [`Held`] is dropped.
#[derive(Debug, Default)]
pub(crate) struct Gauge(AtomicUsize);

#[derive(Debug)]
pub(crate) struct Held(Arc<Gauge>);

impl Gauge {
    pub(crate) fn take(self: &Arc<Self>, max: usize) -> Option<Held> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Held(self.clone()))
    }

    pub(crate) fn now(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One log line per 5 s for refusals that come in floods, saying how many
/// it stands for.
#[derive(Debug, Default)]
pub(crate) struct Hush(std::sync::Mutex<(Option<std::time::Instant>, u64)>);

impl Hush {
    const EVERY: Duration = Duration::from_secs(5);

    /// Some(refusals since the last line) when a line is due.
    pub(crate) fn due(&self) -> Option<u64> {
        let mut g = lock(&self.0);
        g.1 += 1;
        let now = std::time::Instant::now();
        if g.0.is_none_or(|t| now.duration_since(t) >= Self::EVERY) {
            let n = g.1;
            *g = (Some(now), 0);
            Some(n)
        } else {
            None
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
    /// Ends every connection task at once: after the shutdown timeout.
    killed: watch::Sender<bool>,
    next_conn: AtomicU64,
    /// Open WebSockets.
    websockets: Arc<Gauge>,
    /// Open TCP connections that are not WebSockets.
    http: Arc<Gauge>,
    addrs: Arc<limits::Addresses>,
    /// Every connection's task, waited for on shutdown.
    tasks: TaskTracker,
    /// Refused upgrades, logged once per 5 s.
    refused: Hush,
    /// Requests from origins not allowed, logged once per 5 s.
    foreign: Hush,
    /// The other relays, with `--redis`.
    cluster: Option<Arc<cluster::Cluster>>,
    /// Whose pages may use the relay.
    origins: Origins,
    /// CSP violation reports received (`/csp-report`).
    csp_reports: AtomicU64,
    csp_hush: Hush,
    /// HTTPS, when configured.
    tls: Option<tls::Server>,
    /// TLS handshakes in progress.
    handshakes: Arc<Gauge>,
    /// What messages still arriving hold, over all connections.
    arriving: Arc<frames::Arriving>,
    arriving_hush: Hush,
    tls_hush: Hush,
}

impl State {
    fn new(config: Config) -> Result<Self, String> {
        let cluster = match &config.redis {
            None => None,
            Some(url) => {
                let id = config.relay_id.clone().unwrap_or_else(make_relay_id);
                if !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                    || id.is_empty()
                {
                    return Err(format!(
                        "relay id {id:?} must be letters, digits, - _ and . only"
                    ));
                }
                Some(Arc::new(cluster::Cluster::new(
                    url,
                    &id,
                    config.cluster_ttl,
                )?))
            }
        };
        let origins = Origins::new(&config.allowed_origins, config.static_dir.is_some())?;
        let tls = config.tls.as_ref().map(tls::Server::new).transpose()?;
        Ok(Self {
            cluster,
            origins,
            addrs: limits::Addresses::new(config.per_addr),
            rooms: rooms::Rooms::new(&config),
            arriving: Arc::new(frames::Arriving::new(config.max_arriving_bytes)),
            config,
            dumb: dumb::Everyone::default(),
            shutdown: watch::channel(false).0,
            killed: watch::channel(false).0,
            next_conn: AtomicU64::new(1),
            websockets: Arc::default(),
            http: Arc::default(),
            tasks: TaskTracker::new(),
            refused: Hush::default(),
            foreign: Hush::default(),
            csp_reports: AtomicU64::new(0),
            csp_hush: Hush::default(),
            tls,
            handshakes: Arc::default(),
            arriving_hush: Hush::default(),
            tls_hush: Hush::default(),
        })
    }

    /// The address the per-address limits count `remote` as: the client
    /// address a trusted proxy forwarded, or `remote` itself.
    pub(crate) fn client_ip(&self, remote: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.config.trusted_proxies.contains(&remote) {
            return remote;
        }
        headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .last()
            .and_then(|last| last.trim().parse().ok())
            .unwrap_or(remote)
    }

    /// Closes every WebSocket with 1001 "going away".
    fn shut_down(&self) {
        self.shutdown.send_replace(true);
    }

    /// Runs a connection's task where shutdown waits for it, and where
    /// [`kill`](Self::kill) ends it.
    pub(crate) fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut killed = self.killed.subscribe();
        self.tasks.spawn(async move {
            tokio::select! {
                () = task => {}
                () = async { let _ = killed.wait_for(|&k| k).await; } => {}
            }
        });
    }

    /// Drops every connection still open.
    fn kill(&self) {
        self.killed.send_replace(true);
    }
}

/// The relay's HTTP service: `/ws` and `/ws/{room}` (signaling), `/healthz`,
/// `/ice-servers` (TURN credentials), and the static app when [`Config::static_dir`] is set.
///
/// Panics if `config` names an origin that is not one
/// ([`Config::validate`] says so in words).
pub fn app(config: Config) -> Router {
    let config = Config {
        redis: None,
        tls: None,
        ..config
    };
    let state = State::new(config).unwrap_or_else(|e| panic!("app(): {e}"));
    router(Arc::new(state))
}

/// `host-pid-random`: unique enough among a deployment's relays.
fn make_relay_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(32)
        .collect::<String>();
    let host = if host.is_empty() {
        "relay".to_owned()
    } else {
        host
    };
    format!(
        "{host}-{}-{:06x}",
        std::process::id(),
        random_u64() & 0xff_ffff
    )
}

/// 64 bits no other process or call will see: std's per-process random
/// hash keys over the time (ids, not secrets).
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut random = std::collections::hash_map::RandomState::new().build_hasher();
    random.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    random.finish()
}

fn router(state: Arc<State>) -> Router {
    let mut router = Router::new()
        .route(WS_PATH, get(upgrade))
        .route(&format!("{WS_PATH}/{{room}}"), get(upgrade_in_room))
        .route("/healthz", get(health))
        .route("/ice-servers", get(turn::ice_servers))
        .route(
            headers::REPORT_PATH,
            post(headers::report).layer(DefaultBodyLimit::max(headers::MAX_REPORT)),
        )
        .with_state(state.clone());
    if let Some(dir) = &state.config.static_dir {
        router = router.fallback_service(statics::service(dir, &state.config.connect_src));
    }
    router
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            headers::everywhere,
        ))
        .layer(TraceLayer::new_for_http())
}

async fn upgrade(AxumState(state): AxumState<Arc<State>>, req: Request) -> Response {
    upgrade::accept(req, state, None)
}

async fn upgrade_in_room(
    AxumState(state): AxumState<Arc<State>>,
    Path(room): Path<String>,
    req: Request,
) -> Response {
    if !peercall_protocol::is_valid_id(&room, state.config.max_id_len) {
        tracing::warn!(room, "refused: bad room id in URL");
        return (
            StatusCode::BAD_REQUEST,
            format!(
                "room id must be 1 to {} characters of A-Z a-z 0-9 - _",
                state.config.max_id_len
            ),
        )
            .into_response();
    }
    upgrade::accept(req, state, Some(room))
}

async fn health(AxumState(state): AxumState<Arc<State>>) -> Json<serde_json::Value> {
    let (rooms, peers) = state.rooms.counts();
    let cluster = state.cluster.as_ref().map(|c| {
        json!({
            "relay": &*c.id,
            "redis": if c.connected() { "connected" } else { "disconnected" },
            "connections": state.websockets.now(),
            "cluster_connections": c.everywhere(),
        })
    });
    Json(json!({
        "cluster": cluster,
        "status": "ok",
        "protocol": peercall_protocol::PROTOCOL_VERSION,
        "mode": state.config.mode.name(),
        "connections": state.websockets.now(),
        "http_connections": state.http.now(),
        "addresses": state.addrs.len(),
        "rooms": rooms,
        "peers": peers,
        "turn": state.config.turn.is_some(),
        "phone": state.config.phone.enabled(),
        "sfu": state.config.phone.enabled() && state.cluster.is_none(),
        "sfu_rooms": state.rooms.sfu_load().into_iter().map(|(url, n)| (url, json!(n))).collect::<serde_json::Map<_, _>>(),
        "csp_reports": state.csp_reports.load(Ordering::Relaxed),
    }))
}

/// Serves [`app`] on `listener` until `shutdown` resolves; then every
/// WebSocket is closed with code 1001 ("going away", so clients know to
/// reconnect) and open HTTP requests may finish, for at most
/// [`Config::shutdown_timeout`].
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let invalid = |e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    config.validate().map_err(invalid)?;
    let state = Arc::new(State::new(config).map_err(invalid)?);
    if let Some(cluster) = &state.cluster {
        tracing::info!(relay = %cluster.id, "cluster: this relay's id");
    }
    let bus = tokio::spawn(cluster::run(state.clone()));
    let keeper = state
        .tls
        .as_ref()
        .and_then(|t| lock(&t.background).take())
        .map(tokio::spawn);
    let served = server::run(listener, state.clone(), shutdown).await;
    if let Some(cluster) = &state.cluster {
        cluster.bye().await;
    }
    bus.abort();
    if let Some(keeper) = keeper {
        keeper.abort();
    }
    served
}
