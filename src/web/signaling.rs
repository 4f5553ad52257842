//! The signaling client in the browser: one WebSocket to the relay
//! (gloo-net) feeding a [`Room`], heartbeats from a timer, and reconnection
//! with backoff when the relay goes away, to the next relay when several
//! share the rooms ([`RelayList`]). Every decision is made in
//! [`crate::room`] and [`crate::signaling`]; this module only moves frames.
//!
//! [`SignalingClient::start`] spawns the connection task and returns a
//! handle (to send negotiation messages and to leave) and a stream of
//! [`Update`]s. Dropping the handle leaves the room.

use std::collections::VecDeque;

use futures::channel::mpsc;
use futures::{future, FutureExt, SinkExt, StreamExt};
use gloo_net::websocket::futures::WebSocket;
use gloo_net::websocket::{Message, State, WebSocketError};
use gloo_timers::future::{IntervalStream, TimeoutFuture};
use wasm_bindgen::JsCast;

use crate::room::{Event, Ignored, Room, Signal, Timing};
use crate::signaling::RelayList;

/// Messages kept for sending while the relay is unreachable.
const OUTBOX_LIMIT: usize = 256;
/// How often the room's clock ticks (heartbeats, timeouts).
const TICK_MS: u32 = 1_000;

/// What the client is told to do.
#[derive(Debug)]
enum Command {
    Signal {
        to: String,
        signal: Signal,
    },
    /// For one peer, not negotiation (`receiving`, `control`).
    ToPeer {
        to: String,
        body: peercall_protocol::Body,
    },
    /// For the relay itself; dropped while disconnected (the relay ends a
    /// phone call whose connection drops).
    ToRelay(peercall_protocol::Body),
    Leave,
}

/// What happens on the signaling connection.
#[derive(Clone, Debug, PartialEq)]
pub enum Update {
    /// The WebSocket to the relay at `url` is open and our `join` is sent
    /// (again, after a reconnect: peers keep their calls).
    Connected {
        /// The relay's WebSocket URL (one of [`Options::urls`]).
        url: String,
    },
    /// Something happened in the room (never [`Event::Ignored`]: those
    /// only go to the console).
    Room(Event),
    /// The relay cannot be reached or went away; the client tries again in
    /// `retry_in_ms`. Negotiation messages sent meanwhile are kept.
    Disconnected {
        /// What went wrong, for the log and the UI.
        reason: String,
        /// When the next attempt starts.
        retry_in_ms: u64,
    },
    /// We left (or the handle was dropped); nothing more will come.
    Closed,
}

/// Where to connect, as whom.
#[derive(Clone, Debug)]
pub struct Options {
    /// The relays' WebSocket URLs (one, or several sharing the rooms):
    /// tried in a random order, the next when one fails.
    pub urls: Vec<String>,
    /// The room id.
    pub room: String,
    /// Our peer id ([`random_peer_id`]).
    pub me: String,
    /// Our display name, if any.
    pub name: Option<String>,
    /// Heartbeat and timeout.
    pub timing: Timing,
    /// The most people in the room, us included (see [`Room::with_capacity`]).
    pub capacity: usize,
}

/// The handle of a running signaling connection.
#[derive(Debug)]
pub struct SignalingClient {
    commands: mpsc::UnboundedSender<Command>,
}

impl SignalingClient {
    /// Connects (in the background) and joins the room.
    pub fn start(options: Options) -> (Self, mpsc::UnboundedReceiver<Update>) {
        let (commands, command_rx) = mpsc::unbounded();
        let (updates, update_rx) = mpsc::unbounded();
        wasm_bindgen_futures::spawn_local(run(options, command_rx, updates));
        (Self { commands }, update_rx)
    }

    /// Sends a negotiation message to one peer.
    pub fn signal(&self, to: &str, signal: Signal) {
        let _ = self.commands.unbounded_send(Command::Signal {
            to: to.to_owned(),
            signal,
        });
    }

    /// Sends a message other than negotiation to one peer.
    pub fn to_peer(&self, to: &str, body: peercall_protocol::Body) {
        let _ = self.commands.unbounded_send(Command::ToPeer {
            to: to.to_owned(),
            body,
        });
    }

    /// Sends a request to the relay itself (`phone_call`, `phone_hangup`).
    pub fn to_relay(&self, body: peercall_protocol::Body) {
        let _ = self.commands.unbounded_send(Command::ToRelay(body));
    }

    /// Says goodbye to the room and closes the connection.
    pub fn leave(&self) {
        let _ = self.commands.unbounded_send(Command::Leave);
    }
}

/// 128 random bits from `crypto.getRandomValues`, as a peer id.
pub fn random_peer_id() -> Result<String, crate::web::JsError> {
    crate::web::page::random_128_bits().map(crate::room::peer_id)
}

/// Wall-clock milliseconds: the room's and the call's timers, and the
/// credentials' expiry.
pub(crate) fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

/// How one connection ended.
enum Ended {
    /// We left the room.
    Left,
    /// It never opened (or failed before our join went out).
    Unreachable,
    /// It was open, then closed; the reason, when the relay gave one.
    Closed(Option<String>),
}

/// What to tell the person when a connection that was open closes.
const CLOSED: &str = "the relay closed the connection";

async fn run(
    options: Options,
    mut commands: mpsc::UnboundedReceiver<Command>,
    updates: mpsc::UnboundedSender<Update>,
) {
    let mut room = Room::new(&options.room, &options.me, options.name, options.timing)
        .with_capacity(options.capacity);
    let mut outbox = VecDeque::new();
    let mut relays = RelayList::new(options.urls, js_sys::Math::random);
    // The socket index.html opened, for the first attempt only.
    let mut early = take_page_socket(relays.current());
    loop {
        let url = relays.current().to_owned();
        let (ws, kept) = match early.take() {
            Some((ws, kept)) => (Ok(ws), kept),
            None => (WebSocket::open(&url), Vec::new()),
        };
        let (reason, opened) = match ws {
            Err(e) => (format!("cannot open {url}: {e}"), false),
            Ok(ws) => {
                let link = (&mut outbox, &mut commands, &updates);
                match connected(&mut room, ws, &url, kept, link).await {
                    Ended::Left => break,
                    Ended::Unreachable => ("the relay is unreachable".to_owned(), false),
                    // It was open: the backoff starts over.
                    Ended::Closed(reason) => (reason.unwrap_or_else(|| CLOSED.to_owned()), true),
                }
            }
        };
        let delay = relays.failed(opened, js_sys::Math::random());
        let _ = updates.unbounded_send(Update::Disconnected {
            reason,
            retry_in_ms: delay,
        });
        let mut wait = TimeoutFuture::new(delay.min(u32::MAX as u64) as u32).fuse();
        loop {
            futures::select! {
                () = wait => break,
                command = commands.next() => match command {
                    Some(Command::Signal { to, signal }) => {
                        if let Some(text) = room.signal(&to, signal) {
                            queue(&mut outbox, text);
                        }
                    }
                    Some(Command::ToPeer { to, body }) => {
                        if let Some(text) = room.to_peer(&to, body) {
                            queue(&mut outbox, text);
                        }
                    }
                    Some(Command::ToRelay(_)) => {}
                    Some(Command::Leave) | None => {
                        let _ = updates.unbounded_send(Update::Closed);
                        return;
                    }
                },
            }
        }
    }
    let _ = updates.unbounded_send(Update::Closed);
}

/// Passes events on; frames that changed nothing only go to the console.
fn report(updates: &mpsc::UnboundedSender<Update>, events: Vec<Event>) {
    for event in events {
        match event {
            Event::Ignored(Ignored::UnknownType(type_name)) => web_sys::console::info_1(
                &format!("peercall: ignoring a {type_name:?} message (from a newer version?)")
                    .into(),
            ),
            Event::Ignored(Ignored::Malformed(e)) => web_sys::console::warn_1(
                &format!("peercall: dropping a malformed signaling message: {e}").into(),
            ),
            Event::Ignored(why) => web_sys::console::debug_1(
                &format!("peercall: signaling message ignored: {why:?}").into(),
            ),
            event => {
                let _ = updates.unbounded_send(Update::Room(event));
            }
        }
    }
}

fn queue(outbox: &mut VecDeque<String>, text: String) {
    if outbox.len() == OUTBOX_LIMIT {
        outbox.pop_front();
    }
    outbox.push_back(text);
}

/// Takes over the WebSocket `index.html` opened to this origin's relay
/// before the wasm ran (`peercallEarly.socket`, and `.kept`, what the relay
/// said meanwhile), when it goes to `url` and is open or opening; closes it
/// otherwise. In one go, so no message is lost or seen twice: the page's
/// handler stops where gloo's starts.
pub fn take_page_socket(url: &str) -> Option<(WebSocket, Vec<String>)> {
    let early = crate::web::page::early()?;
    let raw: web_sys::WebSocket = crate::web::page::take_field(&early, "socket")?
        .dyn_into()
        .ok()?;
    let kept = crate::web::page::take_field(&early, "kept");
    let usable = raw.url() == url
        && matches!(
            raw.ready_state(),
            web_sys::WebSocket::CONNECTING | web_sys::WebSocket::OPEN
        );
    raw.set_onmessage(None);
    if !usable {
        close_page_socket(raw);
        return None;
    }
    let kept = kept
        .map(|k| {
            js_sys::Array::from(&k)
                .iter()
                .filter_map(|m| m.as_string())
                .collect()
        })
        .unwrap_or_default();
    let ws = WebSocket::try_from(raw).ok()?;
    Some((ws, kept))
}

/// Closes the page's early WebSocket when no call will take it.
pub fn drop_page_socket() {
    if let Some(raw) = crate::web::page::early()
        .and_then(|e| crate::web::page::take_field(&e, "socket"))
        .and_then(|s| s.dyn_into::<web_sys::WebSocket>().ok())
    {
        close_page_socket(raw);
    }
}

/// Lets the page's socket go: its handler off, then closed.
fn close_page_socket(raw: web_sys::WebSocket) {
    raw.set_onmessage(None);
    let _ = raw.close();
}

/// What a connection works with: the messages waiting to go, the
/// commands from the call, where updates go.
type Link<'a> = (
    &'a mut VecDeque<String>,
    &'a mut mpsc::UnboundedReceiver<Command>,
    &'a mpsc::UnboundedSender<Update>,
);

/// Runs one WebSocket until it ends; `kept` came on it before we had it
/// (the page's early socket).
async fn connected(
    room: &mut Room,
    mut ws: WebSocket,
    url: &str,
    kept: Vec<String>,
    (outbox, commands, updates): Link<'_>,
) -> Ended {
    // The sink is ready once the socket is open, or once it failed.
    if future::poll_fn(|cx| ws.poll_ready_unpin(cx)).await.is_err()
        || !matches!(ws.state(), State::Open)
    {
        return Ended::Unreachable;
    }
    let (mut sink, mut stream) = ws.split();
    let join = room.join(now_ms());
    if sink.send(Message::Text(join)).await.is_err() {
        return Ended::Unreachable;
    }
    let _ = updates.unbounded_send(Update::Connected {
        url: url.to_owned(),
    });
    while let Some(text) = outbox.pop_front() {
        if sink.send(Message::Text(text)).await.is_err() {
            return Ended::Closed(None);
        }
    }
    let mut ticks = IntervalStream::new(TICK_MS).fuse();
    // What the page kept comes first, through the same path as the rest.
    let kept = futures::stream::iter(kept.into_iter().map(|text| Ok(Message::Text(text))));
    let mut stream = kept.chain(&mut stream).fuse();
    loop {
        let send = futures::select! {
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let out = room.receive(&text, now_ms());
                    report(updates, out.events);
                    out.send
                }
                Some(Ok(Message::Bytes(_))) => Vec::new(),
                Some(Err(WebSocketError::ConnectionClose(close))) => {
                    return Ended::Closed((!close.reason.is_empty())
                        .then(|| format!("{CLOSED} ({} {})", close.code, close.reason)));
                }
                Some(Err(_)) => continue,
                None => return Ended::Closed(None),
            },
            _ = ticks.next() => {
                let out = room.tick(now_ms());
                report(updates, out.events);
                out.send
            }
            command = commands.next() => match command {
                Some(Command::Signal { to, signal }) => room.signal(&to, signal).into_iter().collect(),
                Some(Command::ToPeer { to, body }) => room.to_peer(&to, body).into_iter().collect(),
                Some(Command::ToRelay(body)) => room.to_relay(body).into_iter().collect(),
                Some(Command::Leave) | None => {
                    if let Some(bye) = room.leave(now_ms()) {
                        let _ = sink.send(Message::Text(bye)).await;
                    }
                    // Dropping both halves closes the socket.
                    return Ended::Left;
                }
            },
        };
        for text in send {
            if sink.send(Message::Text(text)).await.is_err() {
                return Ended::Closed(None);
            }
        }
    }
}
