//! [`Mode::Rooms`](crate::Mode::Rooms): what each message means.
//!
//! A connection joins one room with a `join` message (or names it in the
//! URL, `/ws/{room}`, and then must join that one). Its first accepted peer
//! id is bound to it for good; later messages must carry the same `from` and
//! `room`. A message with `to` goes to that peer only, one without goes to
//! everyone else in the room. When a joined connection ends without a
//! `leave`, the relay sends one for it: plain if the client closed the
//! socket (its page went away), with reason `disconnected` if it dropped.
//!
//! The relay forwards the client's text unchanged (fields a newer version
//! adds survive) and answers refusals with an `error` to the sender only.

use std::sync::Mutex;

use peercall_protocol::{
    codes, decode, encode, is_valid_id, is_valid_name, Body, Decoded, Envelope, LeaveReason,
    PeerInfo, MAX_NAME_CHARS, PROTOCOL_VERSION, RELAY_ID,
};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::limits::{AddrKey, Kind, Slot};
use crate::outbox::{Conn, Outbox};
use crate::table::{Member, Refusal, RoomTable};
use crate::{lock, Config, State};

/// How a member is reached, and the address it joined from.
#[derive(Clone, Debug)]
struct Reach {
    outbox: Outbox,
    key: AddrKey,
}

/// Every room with at least one peer ([`RoomTable`], behind a lock).
#[derive(Debug)]
pub(crate) struct Rooms {
    table: Mutex<RoomTable<Reach, Slot>>,
}

impl Rooms {
    pub(crate) fn new(config: &Config) -> Self {
        Self {
            table: Mutex::new(RoomTable::new(config.max_rooms, config.max_peers_per_room)),
        }
    }

    /// (rooms, peers) now.
    pub(crate) fn counts(&self) -> (usize, usize) {
        lock(&self.table).counts()
    }

    /// Whether peer `id` is in `room` now, joined from address `key`.
    pub(crate) fn is_member(&self, room: &str, id: &str, key: AddrKey) -> bool {
        lock(&self.table)
            .member(room, id)
            .is_some_and(|m| m.to.key == key)
    }
}

/// One connection's standing in the room registry.
#[derive(Debug)]
pub(crate) struct Session {
    /// The room named in the URL, if any.
    path_room: Option<String>,
    /// (room, peer id) of the first accepted join; kept for the whole
    /// connection, even after a `leave`.
    bound: Option<(String, String)>,
    /// In the room now.
    joined: bool,
}

impl Session {
    pub(crate) fn new(path_room: Option<String>) -> Self {
        Self {
            path_room,
            bound: None,
            joined: false,
        }
    }

    /// The room this connection is in or for, if known.
    pub(crate) fn room(&self) -> Option<&str> {
        self.bound
            .as_ref()
            .map(|(room, _)| room.as_str())
            .or(self.path_room.as_deref())
    }

    pub(crate) fn peer(&self) -> Option<&str> {
        self.bound.as_ref().map(|(_, id)| id.as_str())
    }

    pub(crate) fn on_text(&mut self, state: &State, conn: &Conn, text: Utf8Bytes) {
        if let Err(Refusal(code, message)) = self.handle(state, conn, text) {
            tracing::warn!(
                conn = conn.id,
                addr = %conn.addr,
                room = self.room(),
                peer = self.peer(),
                code,
                message,
                "refused"
            );
            conn.error_to(self.room(), self.peer(), code, &message);
        }
    }

    fn handle(&mut self, state: &State, conn: &Conn, text: Utf8Bytes) -> Result<(), Refusal> {
        let decoded = decode(&text, state.config.max_message_bytes)
            .map_err(|e| Refusal(codes::BAD_MESSAGE, format!("message dropped: {e}")))?;
        let (from, room, to, body) = match decoded {
            Decoded::Message(e) => (e.from, e.room, e.to, Some(e.body)),
            Decoded::Unknown {
                type_name,
                from,
                room,
                to,
            } => {
                tracing::debug!(
                    conn = conn.id,
                    type_name,
                    "forwarding a message type this relay does not know"
                );
                (from, room, to, None)
            }
        };
        if to.as_deref() == Some(RELAY_ID) {
            return match body {
                Some(Body::Ping) => {
                    self.reply_pong(conn, &room, &from);
                    Ok(())
                }
                _ => Err(Refusal(
                    codes::BAD_MESSAGE,
                    "the relay answers only \"ping\"; other messages must be for peers".into(),
                )),
            };
        }
        match body {
            Some(Body::Join { name }) => self.join(state, conn, room, from, name, text),
            Some(Body::Welcome { .. }) => Err(Refusal(
                codes::BAD_MESSAGE,
                "only the relay sends \"welcome\"".into(),
            )),
            Some(Body::Leave { .. }) => {
                self.route(state, &room, &from, None, text)?;
                self.leave(state, conn);
                Ok(())
            }
            _ => self.route(state, &room, &from, to.as_deref(), text),
        }
    }

    fn join(
        &mut self,
        state: &State,
        conn: &Conn,
        room: String,
        from: String,
        name: Option<String>,
        text: Utf8Bytes,
    ) -> Result<(), Refusal> {
        let config = &state.config;
        if let Some(path_room) = &self.path_room {
            if room != *path_room {
                return Err(Refusal(
                    codes::WRONG_ROOM,
                    format!(
                        "this connection is for room {path_room:?} (from its URL), not {room:?}"
                    ),
                ));
            }
        }
        if let Some((bound_room, bound_id)) = &self.bound {
            if from != *bound_id {
                return Err(Refusal(
                    codes::SPOOFED_ID,
                    format!("this connection is peer {bound_id:?}; it cannot join as {from:?}"),
                ));
            }
            if room != *bound_room {
                return Err(Refusal(
                    codes::WRONG_ROOM,
                    format!("this connection is in room {bound_room:?}; open another connection for {room:?}"),
                ));
            }
        }
        if !is_valid_id(&room, config.max_id_len) {
            return Err(Refusal(
                codes::BAD_ROOM,
                format!(
                    "room id must be 1 to {} characters of A-Z a-z 0-9 - _",
                    config.max_id_len
                ),
            ));
        }
        if !is_valid_id(&from, config.max_id_len) || from == RELAY_ID {
            return Err(Refusal(
                codes::BAD_ID,
                format!(
                    "peer id must be 1 to {} characters of A-Z a-z 0-9 - _, and not {RELAY_ID:?}",
                    config.max_id_len
                ),
            ));
        }
        if name.as_deref().is_some_and(|n| !is_valid_name(n)) {
            return Err(Refusal(
                codes::BAD_NAME,
                format!("a name may have at most {MAX_NAME_CHARS} characters, none of them control characters"),
            ));
        }
        if let Err(wait) = state.addrs.join(conn.key) {
            return Err(Refusal(
                codes::RATE_LIMITED,
                format!(
                    "too many joins from your address (at most {} a second); try again in {:.0} s",
                    config.per_addr.joins_per_sec,
                    wait.ceil()
                ),
            ));
        }

        // The welcome goes out under the lock: no other join can reach the
        // newcomer before it.
        let mut table = lock(&state.rooms.table);
        let joined = table.join(
            &room,
            &from,
            Member {
                conn: conn.id,
                name: name.clone(),
                to: Reach {
                    outbox: conn.outbox.clone(),
                    key: conn.key,
                },
            },
            || {
                state.addrs.take(conn.key, Kind::Room).map_err(|limit| {
                    Refusal(
                        codes::TOO_MANY_ROOMS,
                        format!(
                            "{limit} rooms were opened from your address and are still in use; \
                             end one of those calls first"
                        ),
                    )
                })
            },
        );
        let others = joined?;
        let welcome = Envelope {
            v: PROTOCOL_VERSION,
            room: room.clone(),
            from: RELAY_ID.into(),
            to: Some(from.clone()),
            seq: None,
            body: Body::Welcome {
                peers: others
                    .iter()
                    .map(|(id, m)| PeerInfo {
                        id: id.clone(),
                        name: m.name.clone(),
                    })
                    .collect(),
            },
        };
        conn.outbox.deliver(encode(&welcome).into());
        for (_, member) in &others {
            member.to.outbox.deliver(text.clone());
        }
        drop(table);
        let peers = others.len() + 1;
        tracing::info!(conn = conn.id, room, peer = from, peers, "joined");
        self.bound = Some((room, from));
        self.joined = true;
        Ok(())
    }

    /// Delivers a peer's message to one peer (`to`) or everyone else in its
    /// room, after checking that it speaks for itself.
    fn route(
        &self,
        state: &State,
        room: &str,
        from: &str,
        to: Option<&str>,
        text: Utf8Bytes,
    ) -> Result<(), Refusal> {
        let Some((bound_room, bound_id)) = self.bound.as_ref().filter(|_| self.joined) else {
            return Err(Refusal(
                codes::NOT_JOINED,
                "send \"join\" first: messages go to a room".into(),
            ));
        };
        if from != bound_id {
            return Err(Refusal(
                codes::SPOOFED_ID,
                format!("this connection is peer {bound_id:?}; it cannot send as {from:?}"),
            ));
        }
        if room != bound_room {
            return Err(Refusal(
                codes::WRONG_ROOM,
                format!("this connection is in room {bound_room:?}, not {room:?}"),
            ));
        }
        // Delivered under the lock, as joins are: one order for everyone.
        let table = lock(&state.rooms.table);
        for reach in table.recipients(room, from, to)? {
            reach.outbox.deliver(text.clone());
        }
        Ok(())
    }

    fn reply_pong(&self, conn: &Conn, room: &str, from: &str) {
        let pong = Envelope {
            v: PROTOCOL_VERSION,
            room: self.room().unwrap_or(room).to_owned(),
            from: RELAY_ID.into(),
            to: Some(self.peer().unwrap_or(from).to_owned()),
            seq: None,
            body: Body::Pong,
        };
        conn.outbox.deliver(encode(&pong).into());
    }

    /// Takes this connection out of its room (after a `leave`).
    fn leave(&mut self, state: &State, conn: &Conn) {
        if let Some((room, peer)) = &self.bound {
            remove(state, conn, room, peer);
            tracing::info!(conn = conn.id, room, peer, "left");
        }
        self.joined = false;
    }

    /// The connection ended: if it had not said goodbye, say it for it. A
    /// client that closed its socket cleanly (the page was closed or left)
    /// is gone for good: a plain `leave`. One that dropped (network, crash,
    /// timeout) may come back: `reason: disconnected`.
    pub(crate) fn on_disconnect(&mut self, state: &State, conn: &Conn, clean: bool) {
        if !self.joined {
            return;
        }
        self.joined = false;
        let Some((room, peer)) = &self.bound else {
            return;
        };
        let others = remove(state, conn, room, peer);
        let leave = Envelope {
            v: PROTOCOL_VERSION,
            room: room.clone(),
            from: peer.clone(),
            to: None,
            seq: None,
            body: Body::Leave {
                reason: if clean {
                    LeaveReason::Hangup
                } else {
                    LeaveReason::Disconnected
                },
            },
        };
        let text: Utf8Bytes = encode(&leave).into();
        for outbox in others {
            outbox.deliver(text.clone());
        }
        tracing::info!(conn = conn.id, room, peer, "dropped out (no leave)");
    }
}

/// Removes `peer` (if this connection is it) from `room`, dropping the room
/// when it empties; gives back who is still there.
fn remove(state: &State, conn: &Conn, room: &str, peer: &str) -> Vec<Outbox> {
    lock(&state.rooms.table)
        .remove(room, peer, conn.id)
        .into_iter()
        .map(|reach| reach.outbox)
        .collect()
}
