//! One WebSocket connection: reads frames, applies the transport limits
//! (size, rate, binary, UTF-8, time to finish a message), hands text to the
//! mode's handler, writes what the handler queues for it (within a write
//! deadline), pings, times out the idle, and closes cleanly.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use peercall_protocol::codes;
use tokio::sync::{mpsc, Notify};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use crate::frames::{refusal, MessageClock, Refusal, Watched};
use crate::limits::{AddrKey, Bucket, Slot};
use crate::outbox::{Conn, Outbox};
use crate::{Held, Mode, State};

/// The socket as the relay reads it.
pub(crate) type Socket = WebSocketStream<Watched<TokioIo<hyper::upgrade::Upgraded>>>;
type Sink = futures_util::stream::SplitSink<Socket, Message>;

/// Why a connection ended when the client sent a close frame: it left on
/// purpose (its page went away), which the room is told as a plain leave.
const CLOSED_BY_CLIENT: &str = "closed by client";
/// Messages queued for one client before it counts as too slow (besides
/// the byte limit).
const QUEUE: usize = 512;
/// At most this many queued messages are written before one flush.
const WRITE_BATCH: usize = 64;
/// How often the connection checks its deadlines (at most; sooner when a
/// deadline is shorter).
const TICK: Duration = Duration::from_secs(1);
/// After sending a close frame, how long to wait for the client's.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Frames over this many bytes end the connection; frames between the
/// configured limit and this get a `too_large` error and are dropped.
pub(crate) fn hard_limit(max_message_bytes: usize) -> usize {
    max_message_bytes.saturating_mul(4)
}

/// The places a connection holds under the limits, given back when it
/// ends.
#[derive(Debug)]
pub(crate) struct Places {
    pub(crate) _websocket: Held,
    pub(crate) _per_addr: Slot,
}

/// A token bucket: `burst` messages at once, refilled at `per_sec`.
#[derive(Debug)]
pub(crate) struct RateLimit {
    per_sec: f64,
    burst: f64,
    bucket: Bucket,
    last_complaint: Option<Instant>,
    /// Frames refused for want of a token in the current second (its
    /// start, the count).
    refused: (Option<Instant>, u32),
    /// Whether the last frame was refused.
    over: bool,
}

/// One log line a second at most for one connection's refusals, so a
/// flood of them is not a flood of log lines (each costs the relay more
/// than the refusal).
#[derive(Debug, Default)]
struct LogHush {
    last: Option<Instant>,
    skipped: u32,
}

impl LogHush {
    /// Some(lines skipped since the last one) when a line is due.
    fn due(&mut self, now: Instant) -> Option<u32> {
        if self
            .last
            .is_some_and(|at| now.duration_since(at) < Duration::from_secs(1))
        {
            self.skipped = self.skipped.saturating_add(1);
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.skipped))
    }
}

/// A connection that sends this many frames past its rate limit within
/// one second (as many again as the burst a client may send) is not a
/// client that slipped: it is closed (1008), so a
/// flood does not keep costing the relay the reading of it.
pub(crate) const FLOOD_CLOSE_AFTER: u32 = 200;

impl RateLimit {
    pub(crate) fn new(per_sec: f64, burst: f64) -> Self {
        let burst = burst.max(1.0);
        Self {
            per_sec,
            burst,
            bucket: Bucket::full(burst, std::time::Instant::now()),
            last_complaint: None,
            refused: (None, 0),
            over: false,
        }
    }

    /// Takes a token if there is one.
    pub(crate) fn allow(&mut self, now: Instant) -> bool {
        let ok = self.bucket.take(self.per_sec, self.burst, now.into_std());
        self.over = !ok;
        if !ok {
            match &mut self.refused {
                (Some(start), n) if now.duration_since(*start) < Duration::from_secs(1) => {
                    *n = n.saturating_add(1)
                }
                window => *window = (Some(now), 1),
            }
        }
        ok
    }

    /// Whether the last frame was over the limit.
    pub(crate) fn over(&self) -> bool {
        self.over
    }

    /// Whether the sender went [`FLOOD_CLOSE_AFTER`] frames past its limit
    /// within one second.
    pub(crate) fn flooding(&self) -> bool {
        self.refused.1 >= FLOOD_CLOSE_AFTER
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

fn close(code: CloseCode, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    socket: Socket,
    state: Arc<State>,
    addr: SocketAddr,
    key: AddrKey,
    path_room: Option<String>,
    clock: Arc<MessageClock>,
    places: Places,
) {
    let config = &state.config;
    let id = state.next_conn.fetch_add(1, Ordering::Relaxed);
    let (tx, mut queue) = mpsc::channel(QUEUE);
    let too_slow = Arc::new(Notify::new());
    let queued = Arc::new(AtomicUsize::new(0));
    let conn = Conn {
        id,
        addr,
        key,
        outbox: Outbox {
            conn: id,
            tx,
            queued: queued.clone(),
            max_bytes: config.max_queue_bytes,
            too_slow: too_slow.clone(),
        },
    };
    let mut shutdown = state.shutdown.subscribe();
    tracing::info!(conn = id, %addr, room = path_room.as_deref(), "connected");

    let mut session = match config.mode {
        Mode::Rooms => Handler::Rooms(crate::rooms::Session::new(path_room)),
        Mode::Broadcast => {
            state.dumb.add(&conn.outbox);
            Handler::Broadcast
        }
    };
    let mut rate = RateLimit::new(config.rate_per_sec, config.rate_burst);
    let mut logs = LogHush::default();
    let every = [
        TICK,
        config.ping_interval,
        config.idle_timeout / 2,
        config.message_timeout / 2,
    ]
    .into_iter()
    .min()
    .unwrap_or(TICK)
    .max(Duration::from_millis(10));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick.tick().await;
    let mut last_heard = Instant::now();
    let mut last_ping = Instant::now();

    let (mut sink, mut stream) = socket.split();
    let deadline = config.write_timeout;
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
                            // Logged once a second at most: a flood of them
                            // must not become a flood of log lines.
                            let allowed = rate.allow(now);
                            if let Some(skipped) = logs.due(now) {
                                tracing::warn!(conn = id, %addr, len = text.len(), skipped, "oversized message refused (skipped: lines not written in the second before)");
                            }
                            if allowed {
                                error_to_self(
                                    &conn,
                                    &session,
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
                                error_to_self(
                                    &conn,
                                    &session,
                                    codes::RATE_LIMITED,
                                    &format!(
                                        "too many messages: at most {} a second (bursts of {}); this one and others were dropped",
                                        config.rate_per_sec, config.rate_burst
                                    ),
                                );
                            }
                        } else if let Handler::Rooms(session) = &mut session {
                            session.on_text(&state, &conn, text).await;
                        }
                    }
                    Some(Ok(Message::Binary(bytes))) => {
                        let allowed = rate.allow(now);
                        if let Some(skipped) = logs.due(now) {
                            tracing::warn!(conn = id, %addr, len = bytes.len(), skipped, "binary frame refused (skipped: lines not written in the second before)");
                        }
                        if config.mode == Mode::Rooms && allowed {
                            error_to_self(
                                    &conn,
                                &session,
                                codes::BINARY_FRAME,
                                "binary frames are not signaling: send JSON text frames",
                            );
                        }
                    }
                    // Pings are answered by the WebSocket layer itself;
                    // they count against the rate (each costs a pong), so
                    // a ping flood is closed like any other.
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                        rate.allow(now);
                    }
                    Some(Ok(Message::Frame(_))) => {}
                    Some(Ok(Message::Close(_))) => {
                        // tungstenite has queued the answering close frame.
                        let _ = tokio::time::timeout(CLOSE_GRACE, sink.close()).await;
                        break (CLOSED_BY_CLIENT, None);
                    }
                    None => break ("connection lost", None),
                    Some(Err(WsError::Capacity(e))) => {
                        tracing::warn!(conn = id, %addr, error = %e, "frame over the hard size limit");
                        error_to_self(
                                    &conn,
                            &session,
                            codes::TOO_LARGE,
                            &format!(
                                "a frame over {} bytes; the connection is closed",
                                hard_limit(config.max_message_bytes)
                            ),
                        );
                        flush(&mut queue, &queued, &mut sink, deadline).await;
                        break ("frame too big", Some((CloseCode::Size, "message too big")));
                    }
                    Some(Err(WsError::Utf8(e))) => {
                        tracing::warn!(conn = id, %addr, error = %e, "text frame that is not UTF-8");
                        break ("invalid UTF-8", Some((CloseCode::Invalid, "text must be UTF-8")));
                    }
                    // A client that drops the TCP connection without a
                    // close frame is a lost connection, not a broken one.
                    Some(Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake))) => {
                        break ("connection lost", None);
                    }
                    Some(Err(WsError::Protocol(e))) => {
                        tracing::warn!(conn = id, %addr, error = %e, "WebSocket protocol error");
                        break ("protocol error", Some((CloseCode::Protocol, "protocol error")));
                    }
                    Some(Err(WsError::Io(e))) if refusal(&e) == Some(Refusal::OverBudget) => {
                        if let Some(n) = state.arriving_hush.due() {
                            tracing::warn!(conn = id, %addr, refused = n, "closed: the budget for messages still arriving is spent (one line per 5 s)");
                        }
                        break ("relay busy", Some((CloseCode::Again, "relay busy: too many large messages arriving; try again")));
                    }
                    Some(Err(WsError::Io(e))) if refusal(&e) == Some(Refusal::Flooding) => {
                        tracing::warn!(conn = id, %addr, frames = FLOOD_CLOSE_AFTER, "closed: that many continuation frames past the rate limit within a second");
                        break FLOODING;
                    }
                    Some(Err(e)) => {
                        tracing::debug!(conn = id, error = %e, "read failed");
                        break ("read error", None);
                    }
                }
                if rate.flooding() {
                    tracing::warn!(conn = id, %addr, frames = FLOOD_CLOSE_AFTER, "closed: that many frames past the rate limit within a second");
                    break FLOODING;
                }
                if rate.over() {
                    // A sender over its limit waits its turn after each
                    // frame, so a flood takes the relay's threads from
                    // the other connections a frame at a time, not a
                    // scheduling budget (128 frames) at a time.
                    tokio::task::yield_now().await;
                }
            }
            Some(text) = queue.recv() => {
                // Everything queued goes out in one write: under load that
                // is one syscall for many messages, and none waits longer.
                queued.fetch_sub(text.len(), Ordering::AcqRel);
                let write = async {
                    sink.feed(Message::Text(text)).await?;
                    let mut more = 0;
                    while more < WRITE_BATCH {
                        let Ok(text) = queue.try_recv() else { break };
                        queued.fetch_sub(text.len(), Ordering::AcqRel);
                        sink.feed(Message::Text(text)).await?;
                        more += 1;
                    }
                    sink.flush().await
                };
                let written = tokio::select! {
                    written = tokio::time::timeout(deadline, write) => written,
                    // Its queue filled while the write waited.
                    () = too_slow.notified() => {
                        tracing::warn!(conn = id, %addr, "client reads too slowly (queue full); disconnected");
                        break ("too slow", Some((CloseCode::Again, "too slow: messages backed up")));
                    }
                };
                match written {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break ("write error", None),
                    Err(_) => {
                        tracing::warn!(conn = id, %addr, "client stopped reading (write deadline); disconnected");
                        break ("too slow", Some((CloseCode::Again, "too slow: not reading")));
                    }
                }
            }
            () = too_slow.notified() => {
                tracing::warn!(conn = id, %addr, "client reads too slowly (queue full); disconnected");
                break ("too slow", Some((CloseCode::Again, "too slow: messages backed up")));
            }
            _ = tick.tick() => {
                let now = Instant::now();
                if now.duration_since(last_heard) > config.idle_timeout {
                    tracing::info!(conn = id, %addr, "idle timeout");
                    break ("idle timeout", Some((CloseCode::Away, "idle timeout")));
                }
                if clock.in_progress_for(now.into_std()).is_some_and(|d| d > config.message_timeout) {
                    tracing::warn!(conn = id, %addr, "a message not finished in time");
                    break ("message timeout", Some((CloseCode::Policy, "message not finished in time")));
                }
                if now.duration_since(last_ping) >= config.ping_interval {
                    last_ping = now;
                    match tokio::time::timeout(deadline, sink.send(Message::Ping(Default::default()))).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => break ("write error", None),
                        Err(_) => break ("too slow", Some((CloseCode::Again, "too slow: not reading"))),
                    }
                }
            }
            () = async { let _ = shutdown.wait_for(|&down| down).await; } => {
                flush(&mut queue, &queued, &mut sink, Duration::from_secs(1)).await;
                break ("relay shutting down", Some((CloseCode::Away, "relay shutting down")));
            }
        }
    };
    let (reason, farewell) = reason;
    // The room hears at once; the close handshake may take a while.
    match &mut session {
        Handler::Rooms(session) => session.on_disconnect(&state, &conn, reason == CLOSED_BY_CLIENT),
        Handler::Broadcast => state.dumb.remove(id),
    }
    drop(queue);
    let abuse = ABUSE.contains(&reason);
    if abuse && state.addrs.abused(key) {
        tracing::warn!(%addr, key = %key, for_s = crate::limits::SHUT_OUT_FOR.as_secs(), "address shut out: too many of its connections closed for abuse");
    }
    if let Some((code, words)) = farewell {
        // A client that went quiet will not answer the close either.
        let grace = if reason == "idle timeout" {
            Duration::ZERO
        } else {
            CLOSE_GRACE
        };
        goodbye(&mut sink, &mut stream, code, words, grace, abuse).await;
    }
    drop(places);
    tracing::info!(conn = id, %addr, reason, "disconnected");
}

/// How a connection far over its rate (messages, or continuation frames)
/// ends.
const FLOODING: (&str, Option<(CloseCode, &str)>) = (
    "flooding",
    Some((CloseCode::Policy, "far over the rate limit")),
);

/// Why a connection may end that no client of the protocol causes: its
/// address is charged for each (`limits::ABUSE_BURST`).
const ABUSE: [&str; 5] = [
    "flooding",
    "invalid UTF-8",
    "frame too big",
    "protocol error",
    "message timeout",
];
/// Closing for abuse, the relay reads at most this many more frames while
/// it waits for the client's close: a flood goes on until the sender
/// notices, and reading it all through the grace would cost as much as
/// the flood itself.
const GOODBYE_FRAMES: usize = 16;

/// Sends a close frame and waits (briefly) for the client's answer, so the
/// close is not lost to a TCP reset from unread data. After `abuse`, only
/// [`GOODBYE_FRAMES`] are read: then the rest of the grace is waited out
/// without reading (the client's sends stall in TCP, which costs nothing)
/// so it can still read the close before the connection goes. The same
/// once [`Watched`] stopped reading (a [`Refusal`]).
async fn goodbye(
    sink: &mut Sink,
    stream: &mut futures_util::stream::SplitStream<Socket>,
    code: CloseCode,
    reason: &'static str,
    grace: Duration,
    abuse: bool,
) {
    let sent = tokio::time::timeout(Duration::from_secs(1), sink.send(close(code, reason))).await;
    if !matches!(sent, Ok(Ok(()))) || grace.is_zero() {
        return;
    }
    let budget = if abuse { GOODBYE_FRAMES } else { usize::MAX };
    let until = Instant::now() + grace;
    let answered = tokio::time::timeout_at(until, async {
        let mut read = 0;
        loop {
            match stream.next().await {
                Some(Ok(msg)) if msg.is_close() => return true,
                Some(Ok(_)) => {
                    read += 1;
                    if read >= budget {
                        return false;
                    }
                }
                // Watched reads nothing more (the budget for messages still
                // arriving, or a continuation flood): wait, so the client
                // can still read the close.
                Some(Err(WsError::Io(e))) if refusal(&e).is_some() => return false,
                _ => return true,
            }
        }
    })
    .await;
    if matches!(answered, Ok(false)) {
        tokio::time::sleep_until(until).await;
    }
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

    fn peer(&self) -> Option<&str> {
        match self {
            Handler::Rooms(s) => s.peer(),
            Handler::Broadcast => None,
        }
    }
}

/// Queues an `error` message from the relay for this connection, with the
/// room and peer id it is in, where known (PROTOCOL.md 5.4).
fn error_to_self(conn: &Conn, session: &Handler, code: &str, message: &str) {
    conn.error_to(session.room(), session.peer(), code, message);
}

/// Writes whatever is queued, so an error explaining a close goes first.
async fn flush(
    queue: &mut mpsc::Receiver<Utf8Bytes>,
    queued: &AtomicUsize,
    sink: &mut Sink,
    deadline: Duration,
) {
    let _ = tokio::time::timeout(deadline, async {
        while let Ok(text) = queue.try_recv() {
            queued.fetch_sub(text.len(), Ordering::AcqRel);
            if sink.send(Message::Text(text)).await.is_err() {
                return;
            }
        }
    })
    .await;
}
