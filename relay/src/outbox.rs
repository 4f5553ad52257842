//! What the message handlers see of a connection: where its messages go
//! ([`Outbox`]), and who it is ([`Conn`]). `conn` runs the socket behind
//! them; `rooms` and `dumb` only queue.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::limits::AddrKey;

/// Where to put messages for one connection. Cloned into the room
/// registry so other connections' tasks can deliver to it.
#[derive(Clone, Debug)]
pub(crate) struct Outbox {
    pub(crate) conn: u64,
    pub(crate) tx: mpsc::Sender<Utf8Bytes>,
    pub(crate) queued: Arc<AtomicUsize>,
    pub(crate) max_bytes: usize,
    pub(crate) too_slow: Arc<Notify>,
}

impl Outbox {
    /// Queues `text` without waiting. A client whose queue is full (in
    /// messages or bytes) is cut off (it reconnects and rejoins) rather
    /// than silently missing a message in the middle of a negotiation.
    pub(crate) fn deliver(&self, text: Utf8Bytes) {
        let len = text.len();
        let before = self.queued.fetch_add(len, Ordering::AcqRel);
        if before + len > self.max_bytes {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            self.too_slow.notify_one();
            return;
        }
        if self.tx.try_send(text).is_err() {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            self.too_slow.notify_one();
        }
    }
}

/// What the mode handlers see of a connection.
pub(crate) struct Conn {
    pub(crate) id: u64,
    pub(crate) addr: SocketAddr,
    /// The address the per-address limits count it under.
    pub(crate) key: AddrKey,
    pub(crate) outbox: Outbox,
}

impl Conn {
    /// Queues an `error` message from the relay for this connection, as
    /// peer `to` in `room` where known (PROTOCOL.md 5.4).
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
