//! The relay's message handling without sockets, for the fuzzer
//! (`fuzz/`, `fuzzing/`): several connections, each a [`Session`] and an
//! outbox, fed text frames in any order, with what the relay promises
//! checked after every step. Not part of the relay's API.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use tokio::sync::{mpsc, Notify};

use crate::limits::AddrKey;
use crate::outbox::{Conn, Outbox};
use crate::rooms::Session;
use crate::{Config, PerAddr, State};

struct Client {
    conn: Conn,
    session: Session,
    inbox: mpsc::Receiver<tokio_tungstenite::tungstenite::Utf8Bytes>,
}

/// One relay and the connections open to it.
pub struct Harness {
    state: Arc<State>,
    clients: Vec<Option<Client>>,
    /// Messages from one peer delivered to another, so far.
    relayed: usize,
    runtime: tokio::runtime::Runtime,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// A relay in rooms mode with small limits, so a short input reaches
    /// them: rooms of 3, 4 rooms, ids of up to 8 characters.
    pub fn new() -> Self {
        let config = Config {
            max_peers_per_room: 3,
            max_rooms: 4,
            max_id_len: 8,
            max_message_bytes: 4096,
            per_addr: PerAddr {
                http_connections: 1000,
                websockets: 1000,
                rooms: 3,
                joins_per_sec: 1000.0,
                joins_burst: 1000.0,
                ice_per_sec: 1000.0,
                ice_burst: 1000.0,
            },
            ..Config::default()
        };
        Self {
            state: Arc::new(State::new(config).expect("a relay without Redis starts")),
            clients: Vec::new(),
            relayed: 0,
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a runtime"),
        }
    }

    /// Opens connection number `i` (from one of two addresses), closing the
    /// one there was.
    pub fn connect(&mut self, i: usize, room_in_url: Option<&str>) {
        self.disconnect(i, true);
        if self.clients.len() <= i {
            self.clients.resize_with(i + 1, || None);
        }
        let ip: IpAddr = [127, 0, 0, 1 + (i % 2) as u8].into();
        let (tx, inbox) = mpsc::channel(1024);
        let id = 1 + i as u64;
        let path_room = room_in_url
            .filter(|r| peercall_protocol::is_valid_id(r, self.state.config.max_id_len))
            .map(str::to_owned);
        self.clients[i] = Some(Client {
            conn: Conn {
                id,
                addr: SocketAddr::new(ip, 40000 + i as u16),
                key: AddrKey::of(ip),
                outbox: Outbox {
                    conn: id,
                    tx,
                    queued: Arc::new(AtomicUsize::new(0)),
                    max_bytes: self.state.config.max_queue_bytes,
                    too_slow: Arc::new(Notify::new()),
                },
            },
            session: Session::new(path_room),
            inbox,
        });
    }

    /// Closes connection `i` (cleanly or not), if open.
    pub fn disconnect(&mut self, i: usize, clean: bool) {
        if let Some(Some(mut c)) = self.clients.get_mut(i).map(Option::take) {
            c.session.on_disconnect(&self.state, &c.conn, clean);
        }
        self.check();
    }

    /// Connection `i` sends `text` (opened first if it is not).
    pub fn send(&mut self, i: usize, text: &str) {
        if self.clients.get(i).is_none_or(Option::is_none) {
            self.connect(i, None);
        }
        let c = self.clients[i].as_mut().expect("connected above");
        self.runtime
            .block_on(c.session.on_text(&self.state, &c.conn, text.into()));
        self.check();
    }

    /// Messages from one peer delivered to another so far (checked).
    pub fn relayed(&self) -> usize {
        self.relayed
    }

    /// What the relay promises, checked over everything delivered since the
    /// last step: every message is JSON with a room and a sender; one from a
    /// peer reaches only members of its room other than that peer, and one
    /// addressed to a peer reaches only that peer; the relay's count of
    /// peers is the number of connections in a room.
    fn check(&mut self) {
        let mut in_rooms = 0;
        let relayed = &mut self.relayed;
        for c in self.clients.iter_mut().flatten() {
            let joined = c.session.joined;
            in_rooms += usize::from(joined);
            let (room, me) = (
                c.session.room().map(str::to_owned),
                c.session.peer().map(str::to_owned),
            );
            while let Ok(text) = c.inbox.try_recv() {
                let v: serde_json::Value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("the relay sent what is not JSON ({e}): {text}"));
                let from = v["from"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no from: {text}"));
                let msg_room = v["room"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no room: {text}"));
                if from == peercall_protocol::RELAY_ID {
                    continue;
                }
                *relayed += 1;
                assert!(
                    joined && room.as_deref() == Some(msg_room),
                    "delivered to a connection not in room {msg_room} (it is in {room:?}, joined {joined}): {text}"
                );
                assert_ne!(me.as_deref(), Some(from), "echoed to its sender: {text}");
                if let Some(to) = v["to"].as_str() {
                    assert_eq!(
                        me.as_deref(),
                        Some(to),
                        "delivered to the wrong peer: {text}"
                    );
                }
            }
        }
        let (_, peers) = self.state.rooms.counts();
        assert_eq!(
            peers, in_rooms,
            "the relay counts {peers} peers, {in_rooms} connections are in rooms"
        );
    }
}
