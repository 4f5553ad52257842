//! The signaling WebSocket, in its plainest mode: every text message a client
//! sends is forwarded to every other connected client. This is the "dumb
//! relay" that the app must work over; rooms, presence and limits build on it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{broadcast, watch};

/// Close code for "the relay is going away" (RFC 6455 section 7.4.1).
const GOING_AWAY: u16 = 1001;
/// Messages one slow client may fall behind before it misses some.
const BACKLOG: usize = 1024;

/// Every live connection, as subscribers of one broadcast channel.
#[derive(Debug)]
pub(crate) struct Hub {
    tx: broadcast::Sender<Frame>,
    shutdown: watch::Sender<bool>,
    next_id: AtomicU64,
    connections: AtomicUsize,
}

#[derive(Clone, Debug)]
struct Frame {
    from: u64,
    text: Utf8Bytes,
}

impl Hub {
    pub(crate) fn new() -> Self {
        Self {
            tx: broadcast::channel(BACKLOG).0,
            shutdown: watch::channel(false).0,
            next_id: AtomicU64::new(1),
            connections: AtomicUsize::new(0),
        }
    }

    /// How many WebSockets are open now.
    pub(crate) fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Closes every WebSocket with 1001 "going away".
    pub(crate) fn shut_down(&self) {
        self.shutdown.send_replace(true);
    }
}

pub(crate) async fn upgrade(
    ws: WebSocketUpgrade,
    State(state): State<Arc<crate::State>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
) -> Response {
    let limit = state.config.max_message_bytes;
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| connection(socket, state, addr))
}

async fn connection(socket: WebSocket, state: Arc<crate::State>, addr: SocketAddr) {
    let hub = &state.hub;
    let id = hub.next_id.fetch_add(1, Ordering::Relaxed);
    let mut feed = hub.tx.subscribe();
    let mut shutdown = hub.shutdown.subscribe();
    hub.connections.fetch_add(1, Ordering::Relaxed);
    tracing::info!(conn = id, %addr, "connected");

    let (mut sink, mut stream) = socket.split();
    let reason = loop {
        tokio::select! {
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    // No receivers is fine: nobody else is connected.
                    let _ = hub.tx.send(Frame { from: id, text });
                }
                Some(Ok(Message::Binary(_))) => {
                    tracing::warn!(conn = id, "binary frame ignored: signaling is text");
                }
                // Pings are answered by the WebSocket layer itself.
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | None => break "closed by client",
                Some(Err(e)) => {
                    tracing::warn!(conn = id, error = %e, "read failed");
                    break "read error";
                }
            },
            outgoing = feed.recv() => match outgoing {
                Ok(frame) if frame.from == id => {}
                Ok(frame) => {
                    if sink.send(Message::Text(frame.text)).await.is_err() {
                        break "write error";
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(conn = id, missed, "client too slow, messages dropped");
                }
                Err(broadcast::error::RecvError::Closed) => break "hub closed",
            },
            () = async { let _ = shutdown.wait_for(|&down| down).await; } => {
                let _ = sink
                    .send(Message::Close(Some(CloseFrame {
                        code: GOING_AWAY,
                        reason: "relay shutting down".into(),
                    })))
                    .await;
                break "relay shutting down";
            }
        }
    };
    hub.connections.fetch_sub(1, Ordering::Relaxed);
    tracing::info!(conn = id, reason, "disconnected");
}
