//! One WebSocket connection: reads frames, applies the transport limits
//! (size, rate, binary), hands text to the mode's handler, writes what the
//! handler queues for it, pings, times out the idle, and closes cleanly.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use peercall_protocol::codes;
use tokio::sync::{mpsc, Notify};
use tokio::time::{Instant, MissedTickBehavior};

use crate::{Mode, State};

/// Close code: the relay is shutting down, or the client went idle.
const GOING_AWAY: u16 = 1001;
/// Close code: a frame over the hard size limit.
const TOO_BIG: u16 = 1009;
/// Close code: the client reads too slowly; reconnect later.
const TRY_AGAIN_LATER: u16 = 1013;
/// Why a connection ended when the client sent a close frame: it left on
/// purpose (its page went away), which the room is told as a plain leave.
const CLOSED_BY_CLIENT: &str = "closed by client";
/// Messages queued for one client before it counts as too slow.
const QUEUE: usize = 512;
/// At most this many queued messages are written before one flush.
const WRITE_BATCH: usize = 64;

/// Frames over this many bytes end the connection; frames between the
/// configured limit and this get a `too_large` error and are dropped.
pub(crate) fn hard_limit(max_message_bytes: usize) -> usize {
    max_message_bytes.saturating_mul(4)
}

/// Where to put messages for one connection. Cloned into the room
/// registry so other connections' tasks can deliver to it.
#[derive(Clone, Debug)]
pub(crate) struct Outbox {
    pub(crate) conn: u64,
    tx: mpsc::Sender<Utf8Bytes>,
    too_slow: Arc<Notify>,
}

impl Outbox {
    /// Queues `text` without waiting. A client whose queue is full is cut
    /// off (it reconnects and rejoins) rather than silently missing a
    /// message in the middle of a negotiation.
    pub(crate) fn deliver(&self, text: Utf8Bytes) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(text) {
            self.too_slow.notify_one();
        }
    }
}

/// A token bucket: `burst` messages at once, refilled at `per_sec`.
#[derive(Debug)]
pub(crate) struct RateLimit {
    per_sec: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    last_complaint: Option<Instant>,
}

impl RateLimit {
    pub(crate) fn new(per_sec: f64, burst: f64) -> Self {
        Self {
            per_sec,
            burst: burst.max(1.0),
            tokens: burst.max(1.0),
            last: Instant::now(),
            last_complaint: None,
        }
    }

    /// Takes a token if there is one.
    pub(crate) fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether to tell the client it is being limited: once a second at
    /// most, so the errors cannot become a flood of their own.
    pub(crate) fn should_complain(&mut self, now: Instant) -> bool {
        let due = self
            .last_complaint
            .is_none_or(|at| now.duration_since(at).as_secs_f64() >= 1.0);
        if due {
            self.last_complaint = Some(now);
        }
        due
    }
}

/// What the mode handlers see of a connection.
pub(crate) struct Conn {
    pub(crate) id: u64,
    pub(crate) addr: SocketAddr,
    pub(crate) outbox: Outbox,
}

pub(crate) async fn run(
    socket: WebSocket,
    state: Arc<State>,
    addr: SocketAddr,
    path_room: Option<String>,
) {
    let config = &state.config;
    let id = state.next_conn.fetch_add(1, Ordering::Relaxed);
    let (tx, mut queue) = mpsc::channel(QUEUE);
    let too_slow = Arc::new(Notify::new());
    let conn = Conn {
        id,
        addr,
        outbox: Outbox {
            conn: id,
            tx,
            too_slow: too_slow.clone(),
        },
    };
    let mut shutdown = state.shutdown.subscribe();
    state.connections.fetch_add(1, Ordering::Relaxed);
    tracing::info!(conn = id, %addr, room = path_room.as_deref(), "connected");

    let mut session = match config.mode {
        Mode::Rooms => Handler::Rooms(crate::rooms::Session::new(path_room)),
        Mode::Broadcast => {
            state.dumb.add(&conn.outbox);
            Handler::Broadcast
        }
    };
    let mut rate = RateLimit::new(config.rate_per_sec, config.rate_burst);
    let mut ping = tokio::time::interval(config.ping_interval);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ping.tick().await;
    let mut last_heard = Instant::now();

    let (mut sink, mut stream) = socket.split();
    let close = |code: u16, reason: &'static str| {
        Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }))
    };
    let reason = loop {
        tokio::select! {
            incoming = stream.next() => {
                let now = Instant::now();
                last_heard = now;
                match incoming {
                    Some(Ok(Message::Text(text))) => {
                        if config.mode == Mode::Broadcast {
                            // The plain relay has no errors to give: it
                            // only forwards, as the simplest relays do.
                            if text.len() <= config.max_message_bytes {
                                state.dumb.broadcast(text);
                            } else {
                                tracing::warn!(conn = id, %addr, len = text.len(), "oversized message dropped");
                            }
                        } else if text.len() > config.max_message_bytes {
                            tracing::warn!(conn = id, %addr, len = text.len(), "oversized message refused");
                            if rate.allow(now) {
                                conn.error_to_self(
                                    session.room(),
                                    codes::TOO_LARGE,
                                    &format!(
                                        "a message of {} bytes is over the {}-byte limit; it was dropped",
                                        text.len(),
                                        config.max_message_bytes
                                    ),
                                );
                            }
                        } else if !rate.allow(now) {
                            if rate.should_complain(now) {
                                tracing::warn!(conn = id, %addr, "rate limit: messages dropped");
                                conn.error_to_self(
                                    None,
                                    codes::RATE_LIMITED,
                                    &format!(
                                        "too many messages: at most {} a second (bursts of {}); this one and others were dropped",
                                        config.rate_per_sec, config.rate_burst
                                    ),
                                );
                            }
                        } else if let Handler::Rooms(session) = &mut session {
                            session.on_text(&state, &conn, text);
                        }
                    }
                    Some(Ok(Message::Binary(bytes))) => {
                        tracing::warn!(conn = id, %addr, len = bytes.len(), "binary frame refused");
                        if config.mode == Mode::Rooms && rate.allow(now) {
                            conn.error_to_self(
                                session.room(),
                                codes::BINARY_FRAME,
                                "binary frames are not signaling: send JSON text frames",
                            );
                        }
                    }
                    // Pings are answered by the WebSocket layer itself.
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) => break CLOSED_BY_CLIENT,
                    None => break "connection lost",
                    Some(Err(e)) => {
                        if is_capacity(&e) {
                            tracing::warn!(conn = id, %addr, error = %e, "frame over the hard size limit");
                            conn.error_to_self(
                                session.room(),
                                codes::TOO_LARGE,
                                &format!(
                                    "a frame over {} bytes; the connection is closed",
                                    hard_limit(config.max_message_bytes)
                                ),
                            );
                            flush(&mut queue, &mut sink).await;
                            let _ = sink.send(close(TOO_BIG, "message too big")).await;
                            break "frame too big";
                        }
                        tracing::debug!(conn = id, error = %e, "read failed");
                        break "read error";
                    }
                }
            }
            Some(text) = queue.recv() => {
                // Everything queued goes out in one write: under load that
                // is one syscall for many messages, and none waits longer.
                let mut ok = sink.feed(Message::Text(text)).await.is_ok();
                let mut more = 0;
                while ok && more < WRITE_BATCH {
                    let Ok(text) = queue.try_recv() else { break };
                    ok = sink.feed(Message::Text(text)).await.is_ok();
                    more += 1;
                }
                if !ok || sink.flush().await.is_err() {
                    break "write error";
                }
            }
            () = too_slow.notified() => {
                tracing::warn!(conn = id, %addr, "client reads too slowly; disconnected");
                let _ = sink.send(close(TRY_AGAIN_LATER, "too slow: messages backed up")).await;
                break "too slow";
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > config.idle_timeout {
                    tracing::info!(conn = id, %addr, "idle timeout");
                    let _ = sink.send(close(GOING_AWAY, "idle timeout")).await;
                    break "idle timeout";
                }
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    break "write error";
                }
            }
            () = async { let _ = shutdown.wait_for(|&down| down).await; } => {
                let _ = sink.send(close(GOING_AWAY, "relay shutting down")).await;
                break "relay shutting down";
            }
        }
    };
    match &mut session {
        Handler::Rooms(session) => session.on_disconnect(&state, &conn, reason == CLOSED_BY_CLIENT),
        Handler::Broadcast => state.dumb.remove(id),
    }
    state.connections.fetch_sub(1, Ordering::Relaxed);
    tracing::info!(conn = id, %addr, reason, "disconnected");
}

enum Handler {
    Rooms(crate::rooms::Session),
    Broadcast,
}

impl Handler {
    fn room(&self) -> Option<&str> {
        match self {
            Handler::Rooms(s) => s.room(),
            Handler::Broadcast => None,
        }
    }
}

impl Conn {
    /// Queues an `error` message from the relay for this connection.
    pub(crate) fn error_to_self(&self, room: Option<&str>, code: &str, message: &str) {
        self.error_to(room, None, code, message);
    }

    pub(crate) fn error_to(&self, room: Option<&str>, to: Option<&str>, code: &str, message: &str) {
        let envelope = peercall_protocol::Envelope {
            v: peercall_protocol::PROTOCOL_VERSION,
            room: room.unwrap_or_default().to_owned(),
            from: peercall_protocol::RELAY_ID.to_owned(),
            to: to.map(str::to_owned),
            seq: None,
            body: peercall_protocol::Body::Error {
                code: code.to_owned(),
                message: message.to_owned(),
            },
        };
        self.outbox
            .deliver(peercall_protocol::encode(&envelope).into());
    }
}

/// Writes whatever is queued, so an error explaining a close goes first.
async fn flush(
    queue: &mut mpsc::Receiver<Utf8Bytes>,
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
) {
    while let Ok(text) = queue.try_recv() {
        if sink.send(Message::Text(text)).await.is_err() {
            return;
        }
    }
}

fn is_capacity(e: &axum::Error) -> bool {
    // axum wraps tungstenite's error; its text is the only stable handle.
    let text = e.to_string();
    text.contains("Space limit exceeded") || text.contains("Message too long")
}
