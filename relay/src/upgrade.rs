//! The WebSocket handshake (RFC 6455 4.2): checks the request, takes the
//! connection's places under the global and per-address limits, answers
//! 101, and runs the socket in a task the shutdown waits for.
//!
//! Done here rather than with axum's extractor so the upgraded stream can
//! be wrapped ([`frames::Watched`](crate::frames::Watched)) before
//! tungstenite reads it.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request};
use axum::http::header::{
    CONNECTION, RETRY_AFTER, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION,
    UPGRADE,
};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use crate::conn::{self, Places};
use crate::frames::{MessageClock, Watched};
use crate::limits::{AddrKey, Kind};
use crate::origin::Verdict;
use crate::State;

/// Bytes read from a WebSocket at a time: tungstenite's default is a
/// 128 KiB buffer per connection, allocated up front (1.3 GB for 10k idle
/// browsers). Signaling messages are small; a bigger one is read in several
/// chunks.
const READ_BUFFER: usize = 4 * 1024;

fn has_token(headers: &HeaderMap, name: axum::http::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Answers an upgrade request on `/ws` (or `/ws/{room}`).
pub(crate) fn accept(mut req: Request, state: Arc<State>, room: Option<String>) -> Response {
    let headers = req.headers();
    if req.method() != Method::GET
        || !has_token(headers, UPGRADE, "websocket")
        || !has_token(headers, CONNECTION, "upgrade")
    {
        return (
            StatusCode::UPGRADE_REQUIRED,
            [(UPGRADE, "websocket")],
            "this is a WebSocket endpoint: connect with a WebSocket client",
        )
            .into_response();
    }
    if headers.get(SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) != Some(b"13") {
        return (
            StatusCode::UPGRADE_REQUIRED,
            [(SEC_WEBSOCKET_VERSION, "13")],
            "only WebSocket version 13 is spoken here",
        )
            .into_response();
    }
    let Some(key) = headers.get(SEC_WEBSOCKET_KEY) else {
        return (StatusCode::BAD_REQUEST, "no Sec-WebSocket-Key").into_response();
    };
    if let Verdict::Refused(origin) = state.origins.check(headers) {
        if let Some(n) = state.foreign.due() {
            tracing::warn!(origin, refused = n, "refused a WebSocket from a page of another origin (--allowed-origin; one line per 5 s)");
        }
        return (
            StatusCode::FORBIDDEN,
            format!("pages from {origin} may not use this relay (its operator allows others with --allowed-origin)"),
        )
            .into_response();
    }
    let accept_key = derive_accept_key(key.as_bytes());
    let Some(&ConnectInfo(remote)) = req.extensions().get::<ConnectInfo<SocketAddr>>() else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "no peer address (serve the app with peercall_relay::serve)",
        )
            .into_response();
    };
    let ip = state.client_ip(remote.ip(), headers);
    let addr = SocketAddr::new(ip, remote.port());
    let key = AddrKey::of(ip);

    if let Some(left) = state.addrs.shut_out(key) {
        // Reached only through a trusted proxy: other addresses are closed
        // at accept.
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(RETRY_AFTER, left.as_secs().max(1).to_string())],
            "too many connections from your address were closed for breaking the protocol; try again later",
        )
            .into_response();
    }
    let config = &state.config;
    let Some(websocket) = state.websockets.take(config.max_connections) else {
        if let Some(n) = state.refused.due() {
            tracing::warn!(%addr, open = state.websockets.now(), refused = n, "refused: connection limit reached (one line per 5 s)");
        }
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(RETRY_AFTER, "10")],
            "the relay is at its connection limit; try again later",
        )
            .into_response();
    };
    let per_addr = match state.addrs.take(key, Kind::WebSocket) {
        Ok(slot) => slot,
        Err(limit) => {
            if let Some(n) = state.refused.due() {
                tracing::warn!(%addr, limit, refused = n, "refused: connections per address (one line per 5 s)");
            }
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(RETRY_AFTER, "10")],
                format!("{limit} connections from your address are open already; close one first"),
            )
                .into_response();
        }
    };
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "this connection cannot be upgraded",
        )
            .into_response();
    };

    let hard_limit = conn::hard_limit(config.max_message_bytes);
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(hard_limit))
        .max_frame_size(Some(hard_limit))
        .read_buffer_size(READ_BUFFER)
        // Writes go out as they are fed past this; a client that does not
        // read blocks the write (and the write deadline closes it) instead
        // of growing a buffer.
        .write_buffer_size(16 * 1024)
        .max_write_buffer_size(hard_limit + 64 * 1024);
    let places = Places {
        _websocket: websocket,
        _per_addr: per_addr,
    };
    let task_state = state.clone();
    state.spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!(%addr, error = %e, "upgrade failed");
                return;
            }
        };
        let clock = Arc::new(MessageClock::default());
        // Continuation frames get the connection's message rate too.
        let continuations =
            conn::RateLimit::new(task_state.config.rate_per_sec, task_state.config.rate_burst);
        let stream = Watched::new(
            TokioIo::new(upgraded),
            clock.clone(),
            task_state.arriving.clone(),
            continuations,
        );
        let socket = WebSocketStream::from_raw_socket(stream, Role::Server, Some(ws_config)).await;
        conn::run(socket, task_state, addr, key, room, clock, places).await;
    });

    (
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (UPGRADE, "websocket".to_owned()),
            (CONNECTION, "upgrade".to_owned()),
            (SEC_WEBSOCKET_ACCEPT, accept_key),
        ],
    )
        .into_response()
}
