//! `peercall-relay`: serve the signaling WebSocket (and the built app).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use std::time::Duration;

use peercall_relay::tls::Tls;
use peercall_relay::{serve, Config, Mode, PerAddr, PhoneConfig, TurnConfig, WS_PATH};

/// Peers in one room by default when the media can go through Janus.
const SFU_MAX_PEERS: usize = 25;
use tracing_subscriber::EnvFilter;

/// glibc's allocator keeps memory freed after a flood of connections in
/// its arenas (the hostile probe saw 187 MB after every client had gone);
/// `malloc_trim` gives their free pages back. A background thread does it
/// every few seconds: a walk over the arenas, cheap next to the memory it
/// returns (tests/hostile.rs memory_taken_by_a_flood_is_given_back fails
/// without it). Other C libraries (musl) return memory by themselves.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn give_memory_back_now_and_then() {
    let spawned = std::thread::Builder::new()
        .name("malloc-trim".into())
        .spawn(|| loop {
            std::thread::sleep(Duration::from_secs(5));
            // SAFETY: malloc_trim has no preconditions; it only hands free
            // pages of the heap back to the kernel.
            unsafe {
                libc::malloc_trim(0);
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the memory trimming thread: {e}");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn give_memory_back_now_and_then() {}

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
    /// Peers in one room; the next one is told "room full". Default 6, or
    /// 25 with --janus (past --mesh-max people the media goes through it).
    #[arg(long)]
    max_peers: Option<usize>,
    /// With --janus: a room with more people than this moves its media to
    /// Janus's VideoRoom (an SFU), and back when it shrinks again.
    #[arg(long, default_value_t = Config::default().mesh_max, requires = "janus")]
    mesh_max: usize,
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
    /// TURN server URL to hand out short-lived credentials for at
    /// /ice-servers (repeat, or separate with commas), e.g.
    /// turn:turn.example.com:3478?transport=udp. Needs a secret.
    #[arg(long = "turn-url", env = "PEERCALL_TURN_URLS", value_delimiter = ',')]
    turn_urls: Vec<String>,
    /// The secret shared with coturn (its static-auth-secret, with
    /// use-auth-secret). Prefer the environment variable or
    /// --turn-secret-file: command lines are visible to other users.
    #[arg(long, env = "PEERCALL_TURN_SECRET", hide_env_values = true)]
    turn_secret: Option<String>,
    /// File whose first line is the TURN secret.
    #[arg(
        long,
        env = "PEERCALL_TURN_SECRET_FILE",
        conflicts_with = "turn_secret"
    )]
    turn_secret_file: Option<PathBuf>,
    /// Seconds a TURN credential stays valid.
    #[arg(long, default_value_t = 86400.0, value_parser = seconds)]
    turn_ttl: f64,
    /// STUN URL to list next to the TURN servers at /ice-servers (repeat,
    /// or separate with commas).
    #[arg(long = "stun-url", env = "PEERCALL_STUN_URLS", value_delimiter = ',')]
    stun_urls: Vec<String>,

    // --- under attack (docs/PROTOCOL.md 5.5) ---
    /// Seconds a client has to send a request's headers after connecting
    /// (or after the previous response); then the connection is closed.
    #[arg(long, default_value_t = Config::default().header_timeout.as_secs_f64(), value_parser = seconds)]
    header_timeout: f64,
    /// TCP connections at once that are not WebSockets (reading a request,
    /// being served a file, idle between requests); more are closed at once.
    #[arg(long, default_value_t = Config::default().max_http_connections)]
    max_http_connections: usize,
    /// Largest request line and headers, in bytes (more get HTTP 431).
    #[arg(long, default_value_t = Config::default().max_header_bytes)]
    max_header_bytes: usize,
    /// Of those, from one client address (an IPv4 address or IPv6 /64).
    #[arg(long, default_value_t = Config::default().per_addr.http_connections)]
    max_http_connections_per_ip: usize,
    /// WebSocket connections at once from one client address (more get
    /// HTTP 429).
    #[arg(long, default_value_t = Config::default().per_addr.websockets)]
    max_connections_per_ip: usize,
    /// Rooms at once created from one client address (the next new room is
    /// refused with too_many_rooms; joining existing rooms still works).
    #[arg(long, default_value_t = Config::default().per_addr.rooms)]
    max_rooms_per_ip: usize,
    /// Joins per second from one client address, sustained.
    #[arg(long, default_value_t = Config::default().per_addr.joins_per_sec)]
    join_rate_per_ip: f64,
    /// Joins from one client address in a burst.
    #[arg(long, default_value_t = Config::default().per_addr.joins_burst)]
    join_burst_per_ip: f64,
    /// /ice-servers requests per second from one client address, sustained
    /// (more get HTTP 429).
    #[arg(long, default_value_t = Config::default().per_addr.ice_per_sec)]
    ice_rate_per_ip: f64,
    /// /ice-servers requests from one client address in a burst.
    #[arg(long, default_value_t = Config::default().per_addr.ice_burst)]
    ice_burst_per_ip: f64,
    /// Seconds a write to a client may take (a client that stopped reading
    /// fills its TCP window); then it is closed with 1013.
    #[arg(long, default_value_t = Config::default().write_timeout.as_secs_f64(), value_parser = seconds)]
    write_timeout: f64,
    /// Bytes queued for one client before it is closed as too slow (1013).
    #[arg(long, default_value_t = Config::default().max_queue_bytes)]
    max_queue_bytes: usize,
    /// Seconds a client has to finish a message it started (all fragments
    /// of it); then it is closed with 1008. Pings do not extend it.
    #[arg(long, default_value_t = Config::default().message_timeout.as_secs_f64(), value_parser = seconds)]
    message_timeout: f64,
    /// Bytes held, over all connections, for messages still arriving (past
    /// the first 16 KiB of each); a frame that would take it over closes
    /// its connection with 1013.
    #[arg(long, default_value_t = Config::default().max_arriving_bytes)]
    max_arriving_bytes: usize,
    /// Seconds to wait on shutdown for clients to take their close frame.
    #[arg(long, default_value_t = Config::default().shutdown_timeout.as_secs_f64(), value_parser = seconds)]
    shutdown_timeout: f64,
    /// A reverse proxy in front of the relay (repeat): connections from it
    /// are counted under the client address it gives last in
    /// X-Forwarded-For, and it is exempt from the per-address HTTP limit.
    #[arg(
        long = "trusted-proxy",
        env = "PEERCALL_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    trusted_proxies: Vec<IpAddr>,
    /// An origin (scheme://host[:port]) whose pages may open the WebSocket
    /// and read /ice-servers (repeat, or separate with commas; * for any).
    /// Serving the app, the relay allows its own origin besides these; not
    /// serving it and given none, it allows any.
    #[arg(
        long = "allowed-origin",
        env = "PEERCALL_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    allowed_origins: Vec<String>,
    /// A source the served app may connect to besides its own origin and
    /// what its config.json names (repeat, or separate with commas), e.g.
    /// wss://relay2.example.com for a relay the app is pointed at with
    /// ?relay=. Goes into the page's Content-Security-Policy.
    #[arg(
        long = "connect-src",
        env = "PEERCALL_CONNECT_SRC",
        value_delimiter = ','
    )]
    connect_src: Vec<String>,

    // --- HTTPS (docs/PROTOCOL.md 5.12) ---
    /// Serve HTTPS with this certificate chain (PEM, leaf first; certbot's
    /// fullchain.pem). Reloaded when the file changes: renewals need no
    /// restart.
    #[arg(long, env = "PEERCALL_TLS_CERT", requires = "tls_key", group = "tls")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM; certbot's privkey.pem).
    #[arg(long, env = "PEERCALL_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve HTTPS with a certificate for this name from an ACME CA (repeat
    /// for more names), got and renewed by the relay itself. The CA checks
    /// the name by TLS-ALPN-01: the relay must be reachable as port 443 of
    /// each name (--port 443, or a port forward). Using it agrees to the
    /// CA's terms of service.
    #[arg(
        long = "acme",
        env = "PEERCALL_ACME",
        value_delimiter = ',',
        group = "tls"
    )]
    acme: Vec<String>,
    /// The ACME CA's directory URL.
    #[arg(long, default_value = peercall_relay::tls::LETS_ENCRYPT, requires = "acme")]
    acme_directory: String,
    /// A contact for the ACME account, e.g. mailto:ops@example.com (repeat).
    #[arg(long, requires = "acme")]
    acme_contact: Vec<String>,
    /// PEM of the CA behind the ACME directory's own HTTPS certificate, when
    /// it is not a public one (a test CA).
    #[arg(long, requires = "acme")]
    acme_directory_ca: Option<PathBuf>,
    /// Serve HTTPS with a certificate made here for this machine's names and
    /// addresses, from a local CA kept in --tls-dir: for a trial on a LAN.
    /// Prints how to make browsers trust it.
    #[arg(long, group = "tls")]
    tls_self_signed: bool,
    /// Where --acme and --tls-self-signed keep their account, certificates
    /// and CA (default: $STATE_DIRECTORY, else
    /// $XDG_STATE_HOME/peercall-relay, else ~/.local/state/peercall-relay).
    #[arg(long, env = "PEERCALL_TLS_DIR")]
    tls_dir: Option<PathBuf>,
    /// With HTTPS, also listen for plain HTTP on this port and redirect
    /// every request to HTTPS (e.g. 80).
    #[arg(long)]
    http_port: Option<u16>,
    /// Seconds a client has to finish its TLS handshake.
    #[arg(long, default_value_t = Config::default().tls_handshake_timeout.as_secs_f64(), value_parser = seconds)]
    tls_handshake_timeout: f64,
    /// TLS handshakes in progress at once; more connections are closed at
    /// once.
    #[arg(long, default_value_t = Config::default().max_tls_handshakes)]
    max_tls_handshakes: usize,

    // --- several relays as one (docs/PROTOCOL.md 5.9) ---
    /// Share rooms with every other relay on this Redis:
    /// redis://HOST:PORT[/DB] (redis://:PASSWORD@HOST:PORT with a
    /// password; prefer the environment variable then). Without it this
    /// relay is on its own.
    #[arg(long, env = "PEERCALL_REDIS", hide_env_values = true)]
    redis: Option<String>,
    /// This relay's id in the cluster (letters, digits, - _ .); by default
    /// host-pid-random, new at each start.
    #[arg(long, env = "PEERCALL_RELAY_ID", requires = "redis")]
    relay_id: Option<String>,
    /// Seconds a relay that stopped beating (killed, cut off) still counts
    /// as alive; its peers are announced gone within this plus a second.
    #[arg(long, default_value_t = Config::default().cluster_ttl.as_secs_f64(), value_parser = seconds)]
    cluster_ttl: f64,

    // --- phone calls through Janus (docs/PROTOCOL.md 5.13) ---
    /// A Janus gateway's WebSocket API, ws://HOST:PORT (default port
    /// 8188), with its SIP plugin: the app then offers phone calls. May be
    /// given several times (or comma-separated): a call takes the first
    /// that answers.
    #[arg(long = "janus", env = "PEERCALL_JANUS", value_delimiter = ',')]
    janus: Vec<String>,
    /// Janus's api_secret, if its janus.jcfg sets one.
    #[arg(long, env = "PEERCALL_JANUS_SECRET", hide_env_values = true)]
    janus_secret: Option<String>,
    /// Completes plain numbers as sip:NUMBER@DOMAIN (your SIP provider's
    /// or PBX's domain). Without it only SIP addresses (user@host) can be
    /// called.
    #[arg(long, env = "PEERCALL_SIP_DOMAIN", requires = "janus")]
    sip_domain: Option<String>,
    /// Send every call (and the registration) through this SIP proxy,
    /// e.g. sip:pbx.example.com:5060.
    #[arg(long, env = "PEERCALL_SIP_PROXY", requires = "janus")]
    sip_proxy: Option<String>,
    /// The SIP account calls come from, e.g. sip:peercall@provider.example;
    /// with --sip-password the gateway registers it (at --sip-proxy).
    #[arg(long, env = "PEERCALL_SIP_USER", requires = "janus")]
    sip_user: Option<String>,
    /// The SIP account's password (prefer the environment variable).
    #[arg(
        long,
        env = "PEERCALL_SIP_PASSWORD",
        hide_env_values = true,
        requires = "sip_user"
    )]
    sip_password: Option<String>,
}

/// The phone settings from the flags, checked.
fn phone_config(args: &Args) -> Result<PhoneConfig, String> {
    for url in &args.janus {
        if !url.starts_with("ws://") || url.len() <= "ws://".len() {
            return Err(format!("--janus {url:?} must be ws://HOST:PORT"));
        }
    }
    for (flag, value) in [
        ("--sip-proxy", &args.sip_proxy),
        ("--sip-user", &args.sip_user),
    ] {
        if let Some(v) = value {
            if !(v.starts_with("sip:") || v.starts_with("sips:")) {
                return Err(format!("{flag} {v:?} must be a SIP URI (sip:...)"));
            }
        }
    }
    Ok(PhoneConfig {
        janus: args.janus.clone(),
        janus_secret: args.janus_secret.clone(),
        domain: args.sip_domain.clone(),
        proxy: args.sip_proxy.clone(),
        user: args.sip_user.clone(),
        password: args.sip_password.clone(),
    })
}

/// The HTTPS settings from the flags (clap has already refused two ways
/// at once).
fn tls_config(args: &Args) -> Option<Tls> {
    let dir = || {
        args.tls_dir.clone().unwrap_or_else(|| {
            let env = |k: &str| {
                std::env::var_os(k)
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            };
            env("STATE_DIRECTORY")
                .or_else(|| env("XDG_STATE_HOME").map(|d| d.join("peercall-relay")))
                .or_else(|| env("HOME").map(|h| h.join(".local/state/peercall-relay")))
                .unwrap_or_else(|| PathBuf::from("peercall-relay-state"))
        })
    };
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        Some(Tls::Files {
            cert: cert.clone(),
            key: key.clone(),
        })
    } else if !args.acme.is_empty() {
        Some(Tls::Acme {
            domains: args.acme.clone(),
            directory: args.acme_directory.clone(),
            contact: args.acme_contact.clone(),
            directory_ca: args.acme_directory_ca.clone(),
            dir: dir(),
        })
    } else if args.tls_self_signed {
        Some(Tls::SelfSigned { dir: dir() })
    } else {
        None
    }
}

/// The TURN settings from the flags, or a sentence saying what is wrong.
fn turn_config(args: &Args) -> Result<Option<TurnConfig>, String> {
    let secret = match (&args.turn_secret, &args.turn_secret_file) {
        (Some(s), _) => Some(s.trim().to_owned()),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read --turn-secret-file {}: {e}", path.display()))?;
            Some(text.lines().next().unwrap_or_default().trim().to_owned())
        }
        (None, None) => None,
    };
    for url in &args.turn_urls {
        if !(url.starts_with("turn:") || url.starts_with("turns:")) {
            return Err(format!(
                "--turn-url {url:?} must start with turn: or turns:"
            ));
        }
    }
    for url in &args.stun_urls {
        if !(url.starts_with("stun:") || url.starts_with("stuns:")) {
            return Err(format!(
                "--stun-url {url:?} must start with stun: or stuns:"
            ));
        }
    }
    match secret {
        None if args.turn_urls.is_empty() => Ok(None),
        None => Err("--turn-url needs --turn-secret or --turn-secret-file".into()),
        Some(s) if s.is_empty() => Err("the TURN secret is empty".into()),
        Some(_) if args.turn_urls.is_empty() => {
            Err("a TURN secret needs at least one --turn-url".into())
        }
        Some(secret) => Ok(Some(TurnConfig {
            secret,
            urls: args.turn_urls.clone(),
            stun_urls: args.stun_urls.clone(),
            ttl: Duration::from_secs_f64(args.turn_ttl),
        })),
    }
}

/// A Redis URL without its password, for the log.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
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
    give_memory_back_now_and_then();
    let tls = tls_config(&args);
    if args.http_port.is_some() && tls.is_none() {
        eprintln!("error: --http-port redirects to HTTPS: give --tls-cert/--tls-key, --acme or --tls-self-signed too");
        return ExitCode::FAILURE;
    }
    let turn = match turn_config(&args) {
        Ok(turn) => turn,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };

    if let Some(dir) = &args.static_dir {
        if !dir.join("index.html").is_file() {
            eprintln!(
                "error: {} has no index.html; build the app first (trunk build --release)",
                dir.display()
            );
            return ExitCode::FAILURE;
        }
    }
    let phone = match phone_config(&args) {
        Ok(phone) => phone,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut config = Config {
        phone: Arc::new(phone),
        static_dir: args.static_dir.clone(),
        mode: args.mode,
        max_message_bytes: args.max_message_bytes,
        rate_per_sec: args.rate,
        rate_burst: args.burst,
        max_peers_per_room: args.max_peers.unwrap_or(if args.janus.is_empty() {
            Config::default().max_peers_per_room
        } else {
            SFU_MAX_PEERS
        }),
        mesh_max: args.mesh_max,
        max_rooms: args.max_rooms,
        max_connections: args.max_connections,
        max_id_len: args.max_id_len,
        ping_interval: Duration::from_secs_f64(args.ping_interval),
        idle_timeout: Duration::from_secs_f64(args.idle_timeout),
        turn: turn.clone(),
        header_timeout: Duration::from_secs_f64(args.header_timeout),
        max_http_connections: args.max_http_connections,
        max_header_bytes: args.max_header_bytes,
        per_addr: PerAddr {
            http_connections: args.max_http_connections_per_ip,
            websockets: args.max_connections_per_ip,
            rooms: args.max_rooms_per_ip,
            joins_per_sec: args.join_rate_per_ip,
            joins_burst: args.join_burst_per_ip,
            ice_per_sec: args.ice_rate_per_ip,
            ice_burst: args.ice_burst_per_ip,
        },
        write_timeout: Duration::from_secs_f64(args.write_timeout),
        max_queue_bytes: args.max_queue_bytes,
        message_timeout: Duration::from_secs_f64(args.message_timeout),
        max_arriving_bytes: args.max_arriving_bytes,
        shutdown_timeout: Duration::from_secs_f64(args.shutdown_timeout),
        trusted_proxies: args.trusted_proxies.clone(),
        redis: args.redis.clone(),
        relay_id: args.relay_id.clone(),
        cluster_ttl: Duration::from_secs_f64(args.cluster_ttl),
        allowed_origins: args.allowed_origins.clone(),
        connect_src: args.connect_src.clone(),
        tls: tls.clone(),
        tls_handshake_timeout: Duration::from_secs_f64(args.tls_handshake_timeout),
        max_tls_handshakes: args.max_tls_handshakes,
    };
    if let Err(e) = config.validate() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    // The soft open-file limit is often 1024 (or what a shell set): raise it
    // to the hard limit, then keep the connection limits inside it.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            if let Some(change) = config.fit_descriptors(limit) {
                tracing::warn!("{change}");
            }
        }
        Err(e) => tracing::warn!("cannot read or raise the open-file limit: {e}"),
    }

    let tls_name = match tls.as_ref().map(peercall_relay::tls::check).transpose() {
        Ok(name) => name.unwrap_or_default(),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
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
    let (http, ws, shown) = match &tls {
        None => ("http", "ws", local.to_string()),
        Some(_) => (
            "https",
            "wss",
            if local.port() == 443 {
                tls_name.clone()
            } else {
                format!("{tls_name}:{}", local.port())
            },
        ),
    };
    if args.static_dir.is_some() {
        println!("peercall is running: open {http}://{shown}/");
    }
    println!(
        "signaling WebSocket: {ws}://{shown}{WS_PATH} ({} mode)",
        args.mode.name()
    );
    if let Some(Tls::SelfSigned { dir }) = &tls {
        let ca = peercall_relay::tls::ca_file(dir);
        println!(
            "self-signed HTTPS: browsers warn until they trust {} (Chromium: Settings, Privacy \
             and security, Security, Manage certificates, Authorities, Import; Firefox: Settings, \
             Privacy & Security, View Certificates, Authorities, Import); it is kept, so trust it once",
            ca.display()
        );
    }
    let redirect = match args.http_port {
        None => None,
        Some(port) => {
            let plain = SocketAddr::new(args.addr, port);
            match tokio::net::TcpListener::bind(plain).await {
                Ok(l) => {
                    println!("plain HTTP on {plain} redirects to HTTPS");
                    Some(l)
                }
                Err(e) => {
                    eprintln!("error: cannot listen on {plain} (--http-port): {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    let (stop_redirect, redirect_stopped) = tokio::sync::oneshot::channel::<()>();
    if let Some(listener) = redirect {
        tokio::spawn(peercall_relay::redirect::serve(
            listener,
            local.port(),
            Duration::from_secs_f64(args.header_timeout),
            async {
                let _ = redirect_stopped.await;
            },
        ));
    }
    if let Some(redis) = &args.redis {
        println!("cluster: sharing rooms through {}", redacted(redis));
    }
    if !args.janus.is_empty() {
        println!("phone calls: through Janus at {}", args.janus.join(" "));
        println!(
            "large calls: past {} people through Janus's VideoRoom (rooms of up to {})",
            config.mesh_max, config.max_peers_per_room
        );
    }
    if let Some(turn) = &turn {
        println!(
            "TURN credentials: {http}://{shown}/ice-servers ({}, valid {} s)",
            turn.urls.join(" "),
            turn.ttl.as_secs()
        );
    }

    let served = serve(listener, config, shutdown_signal()).await;
    drop(stop_redirect);
    match served {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(args: &[&str]) -> Result<Option<TurnConfig>, String> {
        let args =
            Args::try_parse_from(std::iter::once("peercall-relay").chain(args.iter().copied()))
                .map_err(|e| e.to_string())?;
        turn_config(&args)
    }

    #[test]
    fn turn_flags_are_checked() {
        assert!(turn(&[]).unwrap().is_none());
        let t = turn(&[
            "--turn-url",
            "turn:a:3478,turns:a:5349",
            "--turn-secret",
            " s ",
            "--turn-ttl",
            "60",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(t.urls, ["turn:a:3478", "turns:a:5349"]);
        assert_eq!(t.secret, "s");
        assert_eq!(t.ttl, Duration::from_secs(60));
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "from-file\n").unwrap();
        let path = file.path().to_str().unwrap();
        let t = turn(&["--turn-url", "turn:a", "--turn-secret-file", path])
            .unwrap()
            .unwrap();
        assert_eq!(t.secret, "from-file");
        for bad in [
            &["--turn-url", "turn:a"][..],
            &["--turn-secret", "s"],
            &["--turn-secret", "", "--turn-url", "turn:a"],
            &["--turn-secret", "s", "--turn-url", "http://a"],
            &[
                "--turn-secret",
                "s",
                "--turn-url",
                "turn:a",
                "--stun-url",
                "turn:b",
            ],
            &["--turn-secret-file", "/nonexistent", "--turn-url", "turn:a"],
        ] {
            assert!(turn(bad).is_err(), "{bad:?}");
        }
    }
}
