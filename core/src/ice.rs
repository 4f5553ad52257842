//! NAT traversal decisions, pure: where the relay hands out TURN
//! credentials, reading its answer, what kind a local candidate is, and
//! why a connection failed, in words a person can act on.
//!
//! The browser glue (`web::call`, `web::peer`) gathers the facts (the
//! credentials it got, the candidates each connection gathered, the
//! `icecandidateerror`s) and asks [`explain`].

use crate::error::ConfigError;
pub(crate) use peercall_protocol::opt_string;
use serde_json::Value;

/// One `RTCIceServer`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IceServer {
    /// `stun:`, `turn:` or `turns:` URLs.
    pub urls: Vec<String>,
    /// TURN user name.
    pub username: Option<String>,
    /// TURN password.
    pub credential: Option<String>,
}

// The JSON here is read as `serde_json::Value`s by hand, as the protocol
// crate reads its messages: the app parses values anyway, and serde's
// derived visitors are some of the biggest code in its wasm.

/// The first ICE user fragment (`a=ice-ufrag:`) of an SDP: a new one in
/// an offer means it restarts ICE.
pub fn ice_ufrag(sdp: &str) -> Option<&str> {
    sdp.lines()
        .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
}

/// `RTCIceServer`s from a JSON array of objects. `urls` is one URL or an
/// array of them; fields browsers know and this does not are ignored.
pub(crate) fn ice_servers_from(value: &Value) -> Result<Vec<IceServer>, String> {
    let Value::Array(list) = value else {
        return Err("the ICE servers must be an array".into());
    };
    let mut servers = Vec::with_capacity(list.len());
    for server in list {
        let Value::Object(o) = server else {
            return Err("each ICE server must be an object".into());
        };
        let mut urls = Vec::new();
        match o.get("urls") {
            Some(Value::String(url)) => urls.push(url.clone()),
            Some(Value::Array(list)) => {
                for url in list {
                    let Value::String(url) = url else {
                        return Err("each of an ICE server's \"urls\" must be a string".into());
                    };
                    urls.push(url.clone());
                }
            }
            Some(_) => {
                return Err("an ICE server's \"urls\" must be a URL or an array of URLs".into())
            }
            None => return Err("an ICE server has no \"urls\"".into()),
        }
        servers.push(IceServer {
            urls,
            username: opt_string(o, "username")?,
            credential: opt_string(o, "credential")?,
        });
    }
    Ok(servers)
}

/// Parses a JSON array of `RTCIceServer`s.
pub fn parse_ice_servers(json: &str) -> Result<Vec<IceServer>, ConfigError> {
    let servers = serde_json::from_str(json)
        .map_err(|e| e.to_string())
        .and_then(|v| ice_servers_from(&v))
        .map_err(|e| format!("ICE servers: {e}"))?;
    check_ice_servers(&servers)?;
    Ok(servers)
}

pub(crate) fn check_ice_servers(servers: &[IceServer]) -> Result<(), ConfigError> {
    for server in servers {
        if server.urls.is_empty() {
            return Err("an ICE server has no URLs".into());
        }
        for url in &server.urls {
            let scheme = url.split(':').next().unwrap_or_default();
            if !matches!(scheme, "stun" | "stuns" | "turn" | "turns") || !url.contains(':') {
                return Err(format!(
                    "ICE server URL {url:?} must start with stun:, stuns:, turn: or turns:"
                )
                .into());
            }
            if scheme.starts_with("turn")
                && (server.username.is_none() || server.credential.is_none())
            {
                return Err(
                    format!("TURN server {url:?} needs a username and a credential").into(),
                );
            }
        }
    }
    Ok(())
}

/// The relay's TURN credential endpoint for a relay WebSocket URL:
/// `wss://host/ws` → `https://host/ice-servers` (a path ending in `/ws`
/// has that segment replaced; otherwise the host's root is used).
pub fn ice_servers_url(relay_ws: &str) -> Option<String> {
    let (scheme, rest) = relay_ws.split_once("://")?;
    let scheme = match scheme {
        "ws" => "http",
        "wss" => "https",
        _ => return None,
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    if host.is_empty() {
        return None;
    }
    let base = path
        .trim_end_matches('/')
        .strip_suffix("ws")
        .filter(|p| p.is_empty() || p.ends_with('/'))
        .unwrap_or("");
    let base = base.trim_end_matches('/');
    let sep = if base.is_empty() { "" } else { "/" };
    Some(format!("{scheme}://{host}/{base}{sep}ice-servers"))
}

/// TURN credentials handed out by the relay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// ICE servers to add to the configured ones.
    pub servers: Vec<IceServer>,
    /// When the credentials stop working, in unix seconds.
    pub expires_at: u64,
}

/// Reads the relay's `/ice-servers` answer (PROTOCOL.md 8).
pub fn parse_grant(json: &str) -> Result<Grant, ConfigError> {
    let read = |json: &str| -> Result<Grant, String> {
        let value: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let Value::Object(o) = &value else {
            return Err("not a JSON object".into());
        };
        let servers = ice_servers_from(o.get("iceServers").ok_or("no \"iceServers\"")?)?;
        let expires_at = o
            .get("expiresAt")
            .and_then(Value::as_u64)
            .ok_or("\"expiresAt\" must be a time in unix seconds")?;
        Ok(Grant {
            servers,
            expires_at,
        })
    };
    let grant =
        read(json).map_err(|e| format!("the relay's TURN credentials are malformed: {e}"))?;
    check_ice_servers(&grant.servers)?;
    Ok(grant)
}

/// Whether credentials expiring at `expires_at` are too close to their end
/// to start a new connection or an ICE restart with (a minute of margin).
pub fn needs_refresh(expires_at: u64, now_s: u64) -> bool {
    now_s + 60 >= expires_at
}

/// What became of asking the relay for TURN credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// Not asked (turned off), or this relay hands out none (404, or a
    /// relay that speaks no HTTP at all).
    NotOffered,
    /// Got them; they expire then (unix seconds).
    Fetched {
        /// Expiry, unix seconds.
        expires_at: u64,
    },
    /// The relay offers them but asking failed.
    Unavailable(String),
}

/// An ICE candidate's type (`typ` in its SDP line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CandidateType {
    /// An address of this machine.
    Host,
    /// Our public address as a STUN server saw it.
    ServerReflexive,
    /// Learned from a peer's check.
    PeerReflexive,
    /// An address on a TURN server, which relays for us.
    Relay,
}

impl CandidateType {
    /// The name `getStats()` and the SDP use.
    pub fn name(self) -> &'static str {
        match self {
            CandidateType::Host => "host",
            CandidateType::ServerReflexive => "srflx",
            CandidateType::PeerReflexive => "prflx",
            CandidateType::Relay => "relay",
        }
    }

    /// From that name.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "host" => CandidateType::Host,
            "srflx" => CandidateType::ServerReflexive,
            "prflx" => CandidateType::PeerReflexive,
            "relay" => CandidateType::Relay,
            _ => return None,
        })
    }
}

/// The type of a candidate line (`candidate:1 1 udp 2122 1.2.3.4 5 typ host ...`).
pub fn candidate_type(candidate: &str) -> Option<CandidateType> {
    let mut words = candidate.split_ascii_whitespace();
    words.find(|w| *w == "typ")?;
    CandidateType::from_name(words.next()?)
}

/// An `icecandidateerror`: a STUN or TURN server that did not answer as
/// hoped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerError {
    /// The server's URL.
    pub url: String,
    /// STUN error code: 401 unauthorized, 701 unreachable, ...
    pub code: u16,
    /// The browser's words.
    pub text: String,
}

/// What one connection gathered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Gathering {
    /// Local candidates by type: host, srflx, relay.
    pub host: usize,
    /// Server reflexive.
    pub srflx: usize,
    /// Relay (TURN).
    pub relay: usize,
    /// The browser said it has no more.
    pub complete: bool,
    /// Errors from STUN/TURN servers.
    pub errors: Vec<ServerError>,
}

impl Gathering {
    /// Counts a local candidate line.
    pub fn add(&mut self, candidate: &str) {
        match candidate_type(candidate) {
            Some(CandidateType::Host) => self.host += 1,
            Some(CandidateType::ServerReflexive) => self.srflx += 1,
            Some(CandidateType::Relay) => self.relay += 1,
            Some(CandidateType::PeerReflexive) | None => {}
        }
    }
}

/// How calls are set up, for explaining their failures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IceSetup {
    /// Media may only go through TURN (`iceTransportPolicy: relay`).
    pub relay_only: bool,
    /// Some `turn:`/`turns:` server is configured or was handed out.
    pub has_turn: bool,
    /// What the relay said about credentials.
    pub credentials: Credentials,
}

impl IceSetup {
    /// The setup for these servers.
    pub fn new(servers: &[IceServer], relay_only: bool, credentials: Credentials) -> Self {
        let has_turn = servers
            .iter()
            .flat_map(|s| &s.urls)
            .any(|u| u.starts_with("turn:") || u.starts_with("turns:"));
        Self {
            relay_only,
            has_turn,
            credentials,
        }
    }

    /// A problem worth telling before anyone joins: relay-only without a
    /// TURN server can never connect.
    pub fn warning(&self) -> Option<String> {
        (self.relay_only && !self.has_turn).then(|| match &self.credentials {
            Credentials::Unavailable(why) => format!(
                "Relay-only mode needs a TURN server, and the call server's TURN \
                 credentials could not be fetched ({why})."
            ),
            _ => "Relay-only mode needs a TURN server, and none is configured: calls \
                  cannot connect. Turn relay-only off, or configure TURN (see the README)."
                .into(),
        })
    }
}

/// Why a connection failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IceFailure {
    /// No TURN server, and no direct path.
    NoTurn,
    /// The relay offers TURN credentials but fetching them failed.
    CredentialsUnavailable(String),
    /// The credentials ran out.
    CredentialsExpired,
    /// The TURN server refused the credentials (STUN 401).
    CredentialsRejected {
        /// Which server.
        url: String,
    },
    /// The TURN server never answered.
    TurnUnreachable {
        /// Which server, when the browser said.
        url: Option<String>,
    },
    /// No relay candidate, and the browser gave no reason (no
    /// `icecandidateerror`: older browsers fire none).
    TurnUnusable,
    /// We had a relay candidate; the other side's network must be the
    /// problem.
    Elsewhere,
}

/// Why the connection with that gathering failed.
pub fn explain(setup: &IceSetup, gathering: &Gathering, now_s: u64) -> IceFailure {
    if let Credentials::Fetched { expires_at } = setup.credentials {
        if expires_at <= now_s {
            return IceFailure::CredentialsExpired;
        }
    }
    if !setup.has_turn {
        return match &setup.credentials {
            Credentials::Unavailable(why) => IceFailure::CredentialsUnavailable(why.clone()),
            _ => IceFailure::NoTurn,
        };
    }
    if gathering.relay > 0 {
        return IceFailure::Elsewhere;
    }
    let turn_errors = || {
        gathering
            .errors
            .iter()
            .filter(|e| e.url.starts_with("turn"))
    };
    if let Some(e) = turn_errors().find(|e| matches!(e.code, 401 | 403 | 437 | 441)) {
        return IceFailure::CredentialsRejected { url: e.url.clone() };
    }
    if let Some(e) = turn_errors().next() {
        return IceFailure::TurnUnreachable {
            url: Some(e.url.clone()),
        };
    }
    if gathering.complete {
        IceFailure::TurnUnusable
    } else {
        IceFailure::TurnUnreachable { url: None }
    }
}

/// Whether a connection can never succeed, without waiting for the
/// browser to give up: relay-only, gathering finished, and no relay
/// candidate (so there is nothing to check).
pub fn hopeless(setup: &IceSetup, gathering: &Gathering) -> bool {
    setup.relay_only && gathering.complete && gathering.relay == 0
}

impl IceFailure {
    /// What to tell the person about their connection to `name`.
    pub fn message(&self, name: &str) -> String {
        let lead = format!("Could not connect to {name}.");
        let why = match self {
            IceFailure::NoTurn => "A direct connection between you is blocked (a firewall or \
                 strict NAT), and no TURN server is configured to relay the call. Whoever \
                 runs this deployment can add one (see the README)."
                .to_owned(),
            IceFailure::CredentialsUnavailable(why) => format!(
                "A direct connection is blocked, and the TURN credentials could not be \
                 fetched from the call server ({why})."
            ),
            IceFailure::CredentialsExpired => "The TURN credentials expired. Rejoin the call \
                 to get new ones."
                .to_owned(),
            IceFailure::CredentialsRejected { url } => format!(
                "The TURN server ({url}) rejected the credentials: its shared secret and the \
                 call server's differ, or they expired."
            ),
            IceFailure::TurnUnreachable { url: Some(url) } => format!(
                "The TURN server ({url}) could not be reached: it may be down, or your \
                 network blocks it."
            ),
            IceFailure::TurnUnreachable { url: None } => "The TURN server could not be \
                 reached: it may be down, or your network blocks it."
                .to_owned(),
            IceFailure::TurnUnusable => "The TURN server gave no relay address: it may be \
                 unreachable, or it rejected the credentials."
                .to_owned(),
            IceFailure::Elsewhere => "Even through the TURN relay no path worked: the other \
                 person's network may block it."
                .to_owned(),
        };
        format!("{lead} {why}")
    }
}

#[cfg(test)]
#[path = "ice_tests.rs"]
mod tests;
