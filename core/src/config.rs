//! Where calls go: room ids and links, ICE servers, the relay URL. Pure.
//!
//! The ICE servers come from three layers, each replacing the one before:
//! 1. built in at build time: `PEERCALL_ICE_SERVERS` (a JSON array of
//!    `RTCIceServer`s) when `trunk build` ran, else [`DEFAULT_ICE_SERVERS`];
//! 2. `config.json` next to the app: `{"iceServers": [...], "relay": "wss://..."}`
//!    (`relay` may be a list of relays sharing rooms, tried in random order)
//!    (either key may be left out), so a static deployment can point at its
//!    own STUN/TURN servers and relay without a rebuild;
//! 3. the page's query: `?ice=stun:a:3478,turn:b:3478` (or `ice=none`) with
//!    `ice_username` and `ice_credential` for TURN, and `?relay=<ws(s) URL>[,<ws(s) URL>...]`.
//!
//! On top of those, each call asks the relay for short-lived TURN
//! credentials (`/ice-servers` beside its WebSocket, see [`crate::ice`])
//! and adds what it gets; `iceServersUrl` / `?ice_servers_url=` point
//! elsewhere or (`none`) turn that off.
//! `iceTransportPolicy` / `?ice_policy=relay` send media only through TURN.
//! `maxPeople` / `?max_people=` lowers the most people in one call (2 to
//! [`MAX_PEOPLE`], the default); a room counted fuller than that turns
//! newcomers away.

use crate::error::ConfigError;
use serde_json::Value;

use crate::ice::{check_ice_servers, ice_servers_from, opt_string, parse_ice_servers, IceServer};
use crate::room::MAX_PEOPLE;
use crate::signaling::check_relay_urls;

/// Used when the build sets no `PEERCALL_ICE_SERVERS`.
pub const DEFAULT_ICE_SERVERS: &str = r#"[{"urls":"stun:stun.l.google.com:19302"}]"#;

/// Where to ask for TURN credentials.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CredentialsUrl {
    /// `/ice-servers` beside the relay's WebSocket.
    #[default]
    FromRelay,
    /// This URL.
    At(String),
    /// Nowhere: only the configured servers.
    Off,
}

impl CredentialsUrl {
    fn parse(value: &str, source: &str) -> Result<Self, ConfigError> {
        let value = value.trim();
        if value == "none" || value.is_empty() {
            Ok(CredentialsUrl::Off)
        } else if value.starts_with("https://") || value.starts_with("http://") {
            Ok(CredentialsUrl::At(value.to_owned()))
        } else {
            Err(
                format!("{source}: the ICE servers URL {value:?} must be http(s):// or none")
                    .into(),
            )
        }
    }
}

/// What a call needs to know before it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallConfig {
    /// ICE servers for every peer connection.
    pub ice_servers: Vec<IceServer>,
    /// The relays' WebSocket URLs (several relays of one cluster, any of
    /// which will do); empty means the page's own origin.
    pub relays: Vec<String>,
    /// Media only through TURN (`iceTransportPolicy: "relay"`): hides
    /// addresses from the other side; for strict networks and tests.
    pub relay_only: bool,
    /// Where TURN credentials come from.
    pub credentials_url: CredentialsUrl,
    /// The most people in one call, us included.
    pub max_people: usize,
}

impl Default for CallConfig {
    fn default() -> Self {
        Self {
            ice_servers: Vec::new(),
            relays: Vec::new(),
            relay_only: false,
            credentials_url: CredentialsUrl::default(),
            max_people: MAX_PEOPLE,
        }
    }
}

fn max_people(value: &str, source: &str) -> Result<usize, ConfigError> {
    match value.trim().parse::<usize>() {
        Ok(n) if (2..=MAX_PEOPLE).contains(&n) => Ok(n),
        _ => Err(
            format!("{source}: max_people {value:?} must be a number from 2 to {MAX_PEOPLE}")
                .into(),
        ),
    }
}

/// `config.json`.
#[derive(Debug, Default)]
struct ConfigFile {
    ice_servers: Option<Vec<IceServer>>,
    relay: Option<Vec<String>>,
    ice_transport_policy: Option<String>,
    ice_servers_url: Option<String>,
    max_people: Option<usize>,
}

/// The keys `config.json` may have.
const FILE_KEYS: [&str; 5] = [
    "iceServers",
    "relay",
    "iceTransportPolicy",
    "iceServersUrl",
    "maxPeople",
];

impl ConfigFile {
    /// Reads the file: a JSON object of [`FILE_KEYS`] (any other key is a
    /// mistake worth saying), each optional (`null` too).
    fn parse(json: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let Value::Object(o) = &value else {
            return Err("must be a JSON object".into());
        };
        if let Some(key) = o.keys().find(|k| !FILE_KEYS.contains(&k.as_str())) {
            return Err(format!(
                "unknown key {key:?}; the keys are iceServers, relay, iceTransportPolicy, \
                 iceServersUrl and maxPeople"
            ));
        }
        Ok(Self {
            ice_servers: match o.get("iceServers") {
                None | Some(Value::Null) => None,
                Some(v) => Some(ice_servers_from(v)?),
            },
            relay: match o.get("relay") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(vec![s.clone()]),
                Some(Value::Array(list)) => Some(
                    list.iter()
                        .map(|v| v.as_str().map(str::to_owned))
                        .collect::<Option<Vec<_>>>()
                        .ok_or("\"relay\" must be a URL or a list of URLs")?,
                ),
                Some(_) => return Err("\"relay\" must be a URL or a list of URLs".into()),
            },
            ice_transport_policy: opt_string(o, "iceTransportPolicy")?,
            ice_servers_url: opt_string(o, "iceServersUrl")?,
            max_people: match o.get("maxPeople") {
                None | Some(Value::Null) => None,
                Some(n) => Some(
                    n.as_u64()
                        .and_then(|n| usize::try_from(n).ok())
                        .ok_or("\"maxPeople\" must be a whole number")?,
                ),
            },
        })
    }
}

fn relay_only(policy: &str, source: &str) -> Result<bool, ConfigError> {
    match policy.trim() {
        "relay" => Ok(true),
        "all" => Ok(false),
        other => Err(format!(
            "{source}: ICE transport policy {other:?} must be \"all\" or \"relay\""
        )
        .into()),
    }
}

/// The page-address keys [`CallConfig::with_query`] reads; the app passes
/// these (a test checks each one counts).
pub const QUERY_KEYS: &[&str] = &[
    "relay",
    "ice",
    "ice_username",
    "ice_credential",
    "ice_policy",
    "ice_servers_url",
    "max_people",
];

impl CallConfig {
    /// The configuration built into the app.
    pub fn built_in() -> Self {
        let json = option_env!("PEERCALL_ICE_SERVERS").unwrap_or(DEFAULT_ICE_SERVERS);
        Self {
            // A bad build-time value is caught by the test of this function.
            ice_servers: parse_ice_servers(json).unwrap_or_default(),
            ..Self::default()
        }
    }

    /// Layers `config.json` (its text) over this.
    pub fn with_file(mut self, json: &str) -> Result<Self, ConfigError> {
        let file = ConfigFile::parse(json).map_err(|e| format!("config.json: {e}"))?;
        if let Some(servers) = file.ice_servers {
            check_ice_servers(&servers)?;
            self.ice_servers = servers;
        }
        if let Some(relays) = file.relay {
            self.relays = check_relay_urls(relays.iter().map(String::as_str))
                .map_err(|e| format!("config.json: {e}"))?;
        }
        if let Some(policy) = file.ice_transport_policy {
            self.relay_only = relay_only(&policy, "config.json")?;
        }
        if let Some(url) = file.ice_servers_url {
            self.credentials_url = CredentialsUrl::parse(&url, "config.json")?;
        }
        if let Some(n) = file.max_people {
            self.max_people = max_people(&n.to_string(), "config.json")?;
        }
        Ok(self)
    }

    /// Layers the page's query parameters (already URL-decoded) over this.
    pub fn with_query<'a>(
        mut self,
        params: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ConfigError> {
        let (mut username, mut credential) = (None, None);
        let mut ice = None;
        let mut credentials_url = None;
        for (key, value) in params {
            match key {
                "relay" => self.relays = check_relay_urls(value.split(','))?,
                "ice_policy" => self.relay_only = relay_only(value, "the page address")?,
                "ice_servers_url" => {
                    credentials_url = Some(CredentialsUrl::parse(value, "the page address")?)
                }
                "ice" => ice = Some(value.to_owned()),
                "ice_username" => username = Some(value.to_owned()),
                "ice_credential" => credential = Some(value.to_owned()),
                "max_people" => self.max_people = max_people(value, "the page address")?,
                _ => {}
            }
        }
        if let Some(ice) = ice {
            let servers: Vec<IceServer> = if ice.trim() == "none" {
                Vec::new()
            } else {
                ice.split(',')
                    .map(str::trim)
                    .filter(|u| !u.is_empty())
                    .map(|url| IceServer {
                        urls: vec![url.to_owned()],
                        username: username.clone().filter(|_| url.starts_with("turn")),
                        credential: credential.clone().filter(|_| url.starts_with("turn")),
                    })
                    .collect()
            };
            check_ice_servers(&servers)?;
            self.ice_servers = servers;
        }
        if let Some(url) = credentials_url {
            self.credentials_url = url;
        }
        Ok(self)
    }

    /// Where to fetch TURN credentials for a relay at `relay_ws`, if anywhere.
    pub fn credentials_url_for(&self, relay_ws: &str) -> Option<String> {
        match &self.credentials_url {
            CredentialsUrl::FromRelay => crate::ice::ice_servers_url(relay_ws),
            CredentialsUrl::At(url) => Some(url.clone()),
            CredentialsUrl::Off => None,
        }
    }
}

/// A new room id: 128 random bits (from `crypto.getRandomValues`) as 22
/// characters of URL-safe base64, without padding.
pub fn new_room_id(random: [u8; 16]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits: u128 = u128::from_be_bytes(random);
    // 22 six-bit digits hold 132 bits; the top four are zero.
    let mut out = [0u8; 22];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(bits & 63) as usize];
        bits >>= 6;
    }
    out.iter().map(|&b| b as char).collect()
}

/// The room named in a URL hash (`#<room id>`), if it names a valid one.
pub fn room_from_hash(hash: &str) -> Option<String> {
    let id = hash.strip_prefix('#').unwrap_or(hash).trim();
    peercall_protocol::is_valid_id(id, peercall_protocol::MAX_ID_LEN).then(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun(url: &str) -> IceServer {
        IceServer {
            urls: vec![url.into()],
            ..IceServer::default()
        }
    }

    #[test]
    fn built_in_servers_parse() {
        let config = CallConfig::built_in();
        assert!(!config.ice_servers.is_empty() || option_env!("PEERCALL_ICE_SERVERS").is_some());
        assert!(config.relays.is_empty());
        assert!(parse_ice_servers(DEFAULT_ICE_SERVERS).is_ok());
    }

    #[test]
    fn config_json_replaces_what_it_names() {
        let base = CallConfig {
            ice_servers: vec![stun("stun:base:3478")],
            ..CallConfig::default()
        };
        let c = base
            .clone()
            .with_file(
                r#"{"iceServers":[{"urls":["turn:t:3478","turns:t:5349"],"username":"u","credential":"p"}],"relay":"wss://r.example/ws"}"#,
            )
            .unwrap();
        assert_eq!(c.ice_servers[0].urls, ["turn:t:3478", "turns:t:5349"]);
        assert_eq!(c.ice_servers[0].username.as_deref(), Some("u"));
        assert_eq!(c.relays, ["wss://r.example/ws"]);
        // Several relays of one cluster.
        let c = base
            .clone()
            .with_file(r#"{"relay":["wss://a.example/ws","wss://b.example/ws"]}"#)
            .unwrap();
        assert_eq!(c.relays, ["wss://a.example/ws", "wss://b.example/ws"]);
        // An empty file changes nothing.
        assert_eq!(base.clone().with_file("{}").unwrap(), base);
        for bad in [
            "",
            "[]",
            r#"{"iceServers":[{"urls":"http://x"}]}"#,
            r#"{"iceServers":[{"urls":"turn:x:3478"}]}"#,
            r#"{"iceServers":[{"urls":[]}]}"#,
            r#"{"relay":"http://x/ws"}"#,
            r#"{"relay":[]}"#,
            r#"{"relay":["wss://a/ws","x"]}"#,
            r#"{"iceTransportPolicy":"relays"}"#,
            r#"{"iceServersUrl":"ftp://x"}"#,
            r#"{"iceServerz":[]}"#,
        ] {
            assert!(base.clone().with_file(bad).is_err(), "{bad}");
        }
        for bad in [
            "[]",
            r#"{"maxPeople":-3}"#,
            r#"{"maxPeople":2.5}"#,
            r#"{"relay":7}"#,
            r#"{"relay":["wss://a/ws",7]}"#,
            r#"{"iceServers":{"urls":"stun:s:1"}}"#,
            r#"{"iceServers":[{"urls":["stun:s:1", 2]}]}"#,
        ] {
            let e = base.clone().with_file(bad).unwrap_err();
            assert!(e.0.starts_with("config.json: "), "{bad}: {e}");
        }
        let unknown = base.clone().with_file(r#"{"iceServerz":[]}"#).unwrap_err();
        assert!(unknown.0.contains("\"iceServerz\""), "{unknown}");
        assert!(unknown.0.contains("iceServers, relay"), "{unknown}");
        // null is absent.
        let c = base
            .clone()
            .with_file(r#"{"relay":null,"iceServers":null,"maxPeople":null}"#)
            .unwrap();
        assert_eq!(c, base);
    }

    #[test]
    fn relay_only_and_the_credentials_url_come_from_file_and_query() {
        let base = CallConfig::built_in();
        assert!(!base.relay_only);
        assert_eq!(
            base.credentials_url_for("wss://call.example/ws").as_deref(),
            Some("https://call.example/ice-servers")
        );
        let c = base
            .clone()
            .with_file(
                r#"{"iceTransportPolicy":"relay","iceServersUrl":"https://t.example/creds"}"#,
            )
            .unwrap();
        assert!(c.relay_only);
        assert_eq!(
            c.credentials_url_for("ws://x/ws").as_deref(),
            Some("https://t.example/creds")
        );
        let c = c
            .with_query([("ice_policy", "all"), ("ice_servers_url", "none")])
            .unwrap();
        assert!(!c.relay_only);
        assert_eq!(c.credentials_url_for("ws://x/ws"), None);
        let c = base.clone().with_query([("ice_policy", "relay")]).unwrap();
        assert!(c.relay_only);
        assert!(base.clone().with_query([("ice_policy", "turn")]).is_err());
        // Naming the servers in the address keeps the relay's TURN.
        let c = base.clone().with_query([("ice", "stun:s:1")]).unwrap();
        assert_eq!(c.credentials_url, CredentialsUrl::FromRelay);
        let c = base
            .clone()
            .with_query([
                ("ice", "none"),
                ("ice_servers_url", "http://127.0.0.1:1/ice-servers"),
            ])
            .unwrap();
        assert_eq!(
            c.credentials_url,
            CredentialsUrl::At("http://127.0.0.1:1/ice-servers".into())
        );
    }

    #[test]
    fn every_query_key_counts_and_others_are_ignored() {
        let base = CallConfig::default();
        let cases: [&[(&str, &str)]; 6] = [
            &[("relay", "wss://r.example/ws")],
            &[("ice", "stun:s:1")],
            &[
                ("ice", "turn:t:1"),
                ("ice_username", "u"),
                ("ice_credential", "p"),
            ],
            &[("ice_policy", "relay")],
            &[("ice_servers_url", "none")],
            &[("max_people", "3")],
        ];
        let mut keys = Vec::new();
        for pairs in cases {
            let c = base.clone().with_query(pairs.iter().copied()).unwrap();
            assert_ne!(c, base, "{pairs:?}");
            keys.extend(pairs.iter().map(|(k, _)| *k));
        }
        keys.sort_unstable();
        keys.dedup();
        let mut known = QUERY_KEYS.to_vec();
        known.sort_unstable();
        assert_eq!(keys, known, "QUERY_KEYS is what with_query reads");
        let other = base
            .clone()
            .with_query([("room", "x"), ("utm_source", "y")]);
        assert_eq!(other.unwrap(), base);
    }

    #[test]
    fn query_parameters_override_everything() {
        let base = CallConfig::built_in();
        let c = base
            .clone()
            .with_query([
                ("ice", "stun:s:3478,turn:t:3478"),
                ("ice_username", "u"),
                ("ice_credential", "p"),
                ("relay", "ws://127.0.0.1:9000/ws"),
                ("other", "ignored"),
            ])
            .unwrap();
        assert_eq!(c.ice_servers[0], stun("stun:s:3478"));
        assert_eq!(c.ice_servers[1].username.as_deref(), Some("u"));
        assert_eq!(c.relays, ["ws://127.0.0.1:9000/ws"]);
        let c = base
            .clone()
            .with_query([("relay", "ws://127.0.0.1:9000/ws,ws://127.0.0.1:9001/ws")])
            .unwrap();
        assert_eq!(
            c.relays,
            ["ws://127.0.0.1:9000/ws", "ws://127.0.0.1:9001/ws"]
        );
        let none = base.clone().with_query([("ice", "none")]).unwrap();
        assert!(none.ice_servers.is_empty());
        assert!(base.clone().with_query([("relay", "nope")]).is_err());
        assert!(base
            .clone()
            .with_query([("relay", "ws://a/ws,nope")])
            .is_err());
        assert!(
            base.clone().with_query([("ice", "turn:t:1")]).is_err(),
            "TURN without credentials"
        );
        assert_eq!(base.clone().with_query([]).unwrap(), base);
    }

    #[test]
    fn the_most_people_in_a_call_can_be_lowered_but_not_raised() {
        let base = CallConfig::default();
        assert_eq!(base.max_people, MAX_PEOPLE);
        let c = base.clone().with_query([("max_people", "3")]).unwrap();
        assert_eq!(c.max_people, 3);
        let c = base.clone().with_file(r#"{"maxPeople": 2}"#).unwrap();
        assert_eq!(c.max_people, 2);
        for bad in ["1", "7", "x", ""] {
            let e = base.clone().with_query([("max_people", bad)]).unwrap_err();
            assert!(e.0.contains("from 2 to 6"), "{e}");
        }
        assert!(base.with_file(r#"{"maxPeople": 9}"#).is_err());
    }

    #[test]
    fn room_ids_are_128_bits_url_safe_and_round_trip_through_the_hash() {
        let a = new_room_id([0; 16]);
        assert_eq!(a, "A".repeat(22));
        let b = new_room_id([0xff; 16]);
        assert_eq!(b.len(), 22);
        assert_eq!(&b[..1], "D", "the top four bits are zero");
        assert!(b[1..].chars().all(|c| c == '_'));
        let c = new_room_id(*b"0123456789abcdef");
        assert_ne!(c, new_room_id(*b"0123456789abcdeg"));
        assert_eq!(room_from_hash(&format!("#{c}")), Some(c.clone()));
        assert_eq!(room_from_hash(&c), Some(c));
        for bad in ["", "#", "#a b", "#../x", "#é"] {
            assert_eq!(room_from_hash(bad), None, "{bad}");
        }
    }
}
