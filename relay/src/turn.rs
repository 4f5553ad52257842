//! Short-lived TURN credentials in coturn's "TURN REST API" scheme
//! (`use-auth-secret` + `static-auth-secret` in turnserver.conf):
//!
//! - username = `<expiry unix time>:<peer id>` (or just the expiry),
//! - credential = base64(HMAC-SHA1(secret, username)).
//!
//! coturn recomputes the credential from the shared secret and refuses a
//! username whose time has passed, so the relay can hand these out to
//! anyone who opens the app and no long-lived TURN password is ever in the
//! static files. `GET /ice-servers` answers with them (see PROTOCOL.md 8).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, Query, Request, State as AxumState};
use axum::http::header::{
    HeaderValue, ACCESS_CONTROL_ALLOW_ORIGIN, CACHE_CONTROL, RETRY_AFTER, VARY,
};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha1::Sha1;

use crate::limits::AddrKey;
use crate::origin::Verdict;
use crate::State;

/// The TURN servers the relay hands credentials out for.
#[derive(Clone)]
pub struct TurnConfig {
    /// coturn's `static-auth-secret`.
    pub secret: String,
    /// `turn:`/`turns:` URLs of the servers sharing that secret, e.g.
    /// `turn:turn.example.com:3478?transport=udp`.
    pub urls: Vec<String>,
    /// STUN URLs to list alongside (no credentials).
    pub stun_urls: Vec<String>,
    /// How long a credential is valid.
    pub ttl: Duration,
}

impl std::fmt::Debug for TurnConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnConfig")
            .field("secret", &"<hidden>")
            .field("urls", &self.urls)
            .field("stun_urls", &self.stun_urls)
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// A username and credential for coturn's REST scheme, valid until
/// `expires` (unix seconds).
pub fn credential(secret: &str, expires: u64, user: Option<&str>) -> (String, String) {
    let username = match user {
        Some(user) => format!("{expires}:{user}"),
        None => expires.to_string(),
    };
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(username.as_bytes());
    let credential = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, credential)
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct Params {
    /// The asking peer's id, put in the username so coturn's logs say whose
    /// allocation it is: only if that peer is in `room` now, joined from
    /// the same address, so nobody can put words of their choosing in
    /// coturn's logs or pass for another peer there.
    id: Option<String>,
    room: Option<String>,
}

/// `GET /ice-servers[?id=<peer id>&room=<room id>]`.
pub(crate) async fn ice_servers(
    AxumState(state): AxumState<Arc<State>>,
    Query(params): Query<Params>,
    req: Request,
) -> Response {
    // Readable by the pages of the origins allowed to use the relay
    // (origin.rs): `*` when that is any, else the page's own origin echoed.
    let allow = match state.origins.check(req.headers()) {
        Verdict::Refused(origin) => {
            if let Some(n) = state.foreign.due() {
                tracing::warn!(origin, refused = n, "refused TURN credentials to a page of another origin (--allowed-origin; one line per 5 s)");
            }
            return (
                StatusCode::FORBIDDEN,
                [(CACHE_CONTROL, "no-store")],
                Json(json!({
                    "error": "origin_not_allowed",
                    "message": format!("pages from {origin} may not use this relay"),
                })),
            )
                .into_response();
        }
        _ if state.origins.any() => Some(HeaderValue::from_static("*")),
        Verdict::Allowed(origin) => HeaderValue::from_str(origin).ok(),
        Verdict::NoOrigin => None,
    };
    let mut headers = HeaderMap::new();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(VARY, HeaderValue::from_static("Origin"));
    if let Some(allow) = allow {
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allow);
    }
    let Some(turn) = &state.config.turn else {
        return (
            StatusCode::NOT_FOUND,
            headers.clone(),
            Json(json!({
                "error": "no_turn",
                "message": "this relay hands out no TURN credentials (start it with --turn-secret and --turn-url)",
            })),
        )
            .into_response();
    };
    let remote = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(Ipv4Addr::UNSPECIFIED.into(), |c| c.0.ip());
    let key = AddrKey::of(state.client_ip(remote, req.headers()));
    if let Err(wait) = state.addrs.ice(key) {
        if let Some(n) = state.refused.due() {
            tracing::warn!(addr = %key, refused = n, "refused: TURN credentials asked too often (one line per 5 s)");
        }
        let wait = wait.ceil().max(1.0);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            headers.clone(),
            [(RETRY_AFTER, format!("{wait:.0}"))],
            Json(json!({
                "error": "rate_limited",
                "message": format!("TURN credentials asked for too often from your address; try again in {wait:.0} s"),
            })),
        )
            .into_response();
    }
    let id = match (params.id, params.room) {
        (Some(id), Some(room)) if state.rooms.is_member(&room, &id, key) => Some(id),
        _ => None,
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let ttl = turn.ttl.as_secs().max(1);
    let expires = now + ttl;
    let (username, credential) = credential(&turn.secret, expires, id.as_deref());
    let mut servers = Vec::new();
    if !turn.stun_urls.is_empty() {
        servers.push(json!({ "urls": turn.stun_urls }));
    }
    servers.push(json!({
        "urls": turn.urls,
        "username": username,
        "credential": credential,
    }));
    (
        StatusCode::OK,
        headers,
        Json(json!({ "iceServers": servers, "ttl": ttl, "expiresAt": expires })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_coturns_rest_scheme() {
        // Worked by hand: printf '1700000000:alice' |
        //   openssl dgst -sha1 -hmac s3cret -binary | base64
        let (user, cred) = credential("s3cret", 1_700_000_000, Some("alice"));
        assert_eq!(user, "1700000000:alice");
        assert_eq!(cred, "TtElzSjT0GdnTQ9xdcRNxx96yQs=");
        let (user, cred2) = credential("s3cret", 1_700_000_000, None);
        assert_eq!(user, "1700000000");
        assert_ne!(cred, cred2);
        assert_ne!(credential("other", 1_700_000_000, Some("alice")).1, cred);
    }
}
