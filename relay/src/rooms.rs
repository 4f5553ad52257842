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

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use peercall_protocol::{
    codes, decode, encode, is_valid_id, is_valid_name, phone_causes, Body, Decoded, Envelope,
    LeaveReason, PeerInfo, Route, FEATURE_PHONE, FEATURE_SFU, MAX_NAME_CHARS, PROTOCOL_VERSION,
    RELAY_ID,
};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::cluster::{relays_of, Admission, Kind as WireKind, Remote, Wire};
use crate::limits::{AddrKey, Kind, Slot};
use crate::outbox::{Conn, Outbox};
use crate::phone::{self, PhoneCall};
use crate::sfu::{self, SfuRoom};
use crate::table::{Member, Refusal, RoomTable};
use crate::{lock, Config, State};

/// How a member is reached, and the address it joined from.
#[derive(Clone, Debug)]
struct Reach {
    outbox: Outbox,
    key: AddrKey,
}

/// Every room with at least one peer here ([`RoomTable`]), and in a
/// cluster the members those rooms have on other relays; one lock for
/// both, so every delivery happens in one order.
#[derive(Debug)]
pub(crate) struct Rooms {
    inner: Mutex<Inner>,
    /// The Janus servers rooms on the SFU are placed on.
    janus: Arc<sfu::JanusPool>,
}

#[derive(Debug)]
struct Inner {
    table: RoomTable<Reach, Slot>,
    /// By room (only rooms with members here), the members elsewhere.
    remote: HashMap<String, BTreeMap<String, Remote>>,
    /// Rooms that have been on the SFU (PROTOCOL.md 5.14) and are still
    /// here: their route now and their SFU task.
    sfu: HashMap<String, SfuState>,
}

/// A room's media path, once it has needed the SFU.
#[derive(Debug)]
struct SfuState {
    route: Route,
    task: SfuRoom,
}

/// Whether rooms here may move to the SFU: with a Janus (in a cluster,
/// every relay is given the same ones, and they agree in Redis on which
/// one each room is on).
fn sfu_enabled(state: &State) -> bool {
    state.config.phone.enabled()
}

/// Moves `room` to the SFU when it has grown past `--mesh-max` people
/// (here and on other relays together) and back when it has shrunk to
/// that, starting its SFU task the first time; gives the `route` messages
/// its members here (but `skip`) are owed. A move to the SFU is said
/// before the join that causes it, a move back after the leave.
fn reroute(state: &State, inner: &mut Inner, room: &str, skip: Option<&str>) -> RouteTexts {
    if !sfu_enabled(state) || !inner.table.has_room(room) {
        return Vec::new();
    }
    let count = inner.table.members(room).count() + inner.remote.get(room).map_or(0, BTreeMap::len);
    let mesh_max = state.config.mesh_max;
    let to = if count > mesh_max {
        let sfu = inner
            .sfu
            .entry(room.to_owned())
            .or_insert_with(|| SfuState {
                route: Route::Mesh,
                task: SfuRoom::start(
                    state.rooms.janus.clone(),
                    state.cluster.clone(),
                    room.to_owned(),
                    state.config.max_peers_per_room,
                ),
            });
        if sfu.route == Route::Sfu {
            return Vec::new();
        }
        sfu.route = Route::Sfu;
        tracing::info!(room, peers = count, "room moves to the SFU");
        Route::Sfu
    } else {
        match inner.sfu.get_mut(room) {
            Some(sfu) if sfu.route == Route::Sfu => sfu.route = Route::Mesh,
            _ => return Vec::new(),
        }
        tracing::info!(room, peers = count, "room moves back to peer to peer");
        Route::Mesh
    };
    inner
        .table
        .members(room)
        .filter(|(id, _)| Some(*id) != skip)
        .map(|(id, m)| (m.to.outbox.clone(), sfu::route_text(room, id, to)))
        .collect()
}

impl Inner {
    /// The relays other members of `room` are on.
    fn relays(&self, room: &str) -> Vec<Arc<str>> {
        self.remote.get(room).map(relays_of).unwrap_or_default()
    }

    /// Delivers `text` to the members here, `to` alone or all but `from`.
    fn deliver_local(&self, room: &str, from: &str, to: Option<&str>, text: &Utf8Bytes) {
        for reach in self.table.recipients(room, from, to).unwrap_or_default() {
            reach.outbox.deliver(text.clone());
        }
    }
}

impl Rooms {
    pub(crate) fn new(config: &Config) -> Self {
        Self {
            inner: Mutex::new(Inner {
                table: RoomTable::new(config.max_rooms, config.max_peers_per_room),
                remote: HashMap::new(),
                sfu: HashMap::new(),
            }),
            janus: Arc::new(sfu::JanusPool::new(&config.phone)),
        }
    }

    /// Rooms on the SFU per Janus server, for `/healthz`.
    pub(crate) fn sfu_load(&self) -> Vec<(String, usize)> {
        self.janus.load()
    }

    /// (rooms, peers) here now.
    pub(crate) fn counts(&self) -> (usize, usize) {
        lock(&self.inner).table.counts()
    }

    /// Whether peer `id` is in `room` now, joined from address `key`.
    pub(crate) fn is_member(&self, room: &str, id: &str, key: AddrKey) -> bool {
        lock(&self.inner)
            .table
            .member(room, id)
            .is_some_and(|m| m.to.key == key)
    }

    /// Every member here: (room, id, connection, name).
    pub(crate) fn locals(&self) -> Vec<(String, String, u64, Option<String>)> {
        lock(&self.inner)
            .table
            .each()
            .map(|(room, id, m)| (room.to_owned(), id.to_owned(), m.conn, m.name.clone()))
            .collect()
    }

    /// A message from another relay, for members here.
    pub(crate) fn on_bus(&self, state: &State, wire: Wire) {
        let mut inner = lock(&self.inner);
        if !inner.table.has_room(&wire.room) {
            return;
        }
        if state.cluster.as_ref().is_some_and(|c| c.id == wire.relay) {
            // Our own member, said by a relay that reaped it wrongly (we
            // were cut off): it is still here.
            if inner.table.member(&wire.room, &wire.from).is_some() {
                return;
            }
        }
        let mut after = Vec::new();
        match wire.kind {
            WireKind::Join => {
                inner.remote.entry(wire.room.clone()).or_default().insert(
                    wire.from.clone(),
                    Remote {
                        relay: wire.relay.clone(),
                        name: wire.name.clone(),
                    },
                );
                for (outbox, text) in reroute(state, &mut inner, &wire.room, None) {
                    outbox.deliver(text);
                }
            }
            WireKind::Leave => {
                if let Some(members) = inner.remote.get_mut(&wire.room) {
                    if members
                        .get(&wire.from)
                        .is_some_and(|m| m.relay == wire.relay)
                    {
                        members.remove(&wire.from);
                    }
                }
                after = reroute(state, &mut inner, &wire.room, None);
            }
            WireKind::Message => {}
        }
        inner.deliver_local(&wire.room, &wire.from, wire.to.as_deref(), &wire.text);
        for (outbox, text) in after {
            outbox.deliver(text);
        }
    }

    /// After Redis came back: `members` is everyone in `room` now. Members
    /// here hear of those who came and went meanwhile; the other relays
    /// hear of our members.
    pub(crate) fn resync(&self, state: &State, room: &str, members: BTreeMap<String, Remote>) {
        let Some(cluster) = &state.cluster else {
            return;
        };
        let mut inner = lock(&self.inner);
        if !inner.table.has_room(room) {
            return;
        }
        let now: BTreeMap<String, Remote> = members
            .into_iter()
            .filter(|(id, m)| m.relay != cluster.id && inner.table.member(room, id).is_none())
            .collect();
        let before = inner.remote.remove(room).unwrap_or_default();
        for (id, m) in &before {
            if now.get(id).is_none_or(|n| n.relay != m.relay) {
                inner.deliver_local(room, id, None, &leave_text(room, id, false));
            }
        }
        for (id, m) in &now {
            if before.get(id).is_none_or(|b| b.relay != m.relay) {
                inner.deliver_local(room, id, None, &join_text(room, id, m.name.as_deref()));
            }
        }
        let relays = relays_of(&now);
        let locals: Vec<(String, Option<String>)> = inner
            .table
            .members(room)
            .map(|(id, m)| (id.to_owned(), m.name.clone()))
            .collect();
        for (id, name) in locals {
            let wire = Wire {
                kind: WireKind::Join,
                room: room.to_owned(),
                text: join_text(room, &id, name.as_deref()),
                from: id,
                to: None,
                relay: cluster.id.clone(),
                name,
            };
            cluster.publish(&relays, &wire);
        }
        inner.remote.insert(room.to_owned(), now);
        for (outbox, text) in reroute(state, &mut inner, room, None) {
            outbox.deliver(text);
        }
    }
}

/// A `leave` the relay says for `peer`: plain if it hung up, else
/// `reason: disconnected` (it may be back).
pub(crate) fn leave_text(room: &str, peer: &str, clean: bool) -> Utf8Bytes {
    let reason = if clean {
        LeaveReason::Hangup
    } else {
        LeaveReason::Disconnected
    };
    said_for(room, peer, Body::Leave { reason })
}

/// A `join` the relay says for `peer`, on another relay, after Redis was
/// away: the members here answer it with `present`.
fn join_text(room: &str, peer: &str, name: Option<&str>) -> Utf8Bytes {
    let name = name.map(str::to_owned);
    said_for(room, peer, Body::Join { name })
}

/// A room-wide message the relay says on `peer`'s behalf.
fn said_for(room: &str, peer: &str, body: Body) -> Utf8Bytes {
    encode(&Envelope {
        v: PROTOCOL_VERSION,
        room: room.to_owned(),
        from: peer.to_owned(),
        to: None,
        seq: None,
        body,
    })
    .into()
}

/// A message from the relay to peer `to` in `room`.
pub(crate) fn said_to(room: &str, to: &str, body: Body) -> Utf8Bytes {
    encode(&Envelope {
        v: PROTOCOL_VERSION,
        room: room.to_owned(),
        from: RELAY_ID.into(),
        to: Some(to.to_owned()),
        seq: None,
        body,
    })
    .into()
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
    pub(crate) joined: bool,
    /// The phone call this connection makes, if any (dropped: hung up).
    phone: Option<PhoneCall>,
}

impl Session {
    pub(crate) fn new(path_room: Option<String>) -> Self {
        Self {
            path_room,
            bound: None,
            joined: false,
            phone: None,
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

    pub(crate) async fn on_text(&mut self, state: &State, conn: &Conn, text: Utf8Bytes) {
        if let Err(Refusal(code, message)) = self.handle(state, conn, text).await {
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

    async fn handle(&mut self, state: &State, conn: &Conn, text: Utf8Bytes) -> Result<(), Refusal> {
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
                Some(Body::PhoneCall { address, sdp }) => {
                    self.phone_call(state, conn, address, sdp);
                    Ok(())
                }
                Some(Body::PhoneHangup) => {
                    if let Some(call) = &mut self.phone {
                        call.hang_up();
                    }
                    Ok(())
                }
                Some(
                    body @ (Body::SfuPublish { .. }
                    | Body::SfuAnswer { .. }
                    | Body::SfuLayer { .. }
                    | Body::SfuRestart
                    | Body::SfuLeave),
                ) => self.sfu(state, conn, body),
                _ => Err(Refusal(
                    codes::BAD_MESSAGE,
                    "the relay answers only \"ping\", \"phone_call\", \"phone_hangup\" and \
                     \"sfu_*\"; other messages must be for peers"
                        .into(),
                )),
            };
        }
        match body {
            Some(Body::Join { name }) => self.join(state, conn, room, from, name, text).await,
            Some(Body::Welcome { .. }) => Err(Refusal(
                codes::BAD_MESSAGE,
                "only the relay sends \"welcome\"".into(),
            )),
            Some(
                body @ (Body::PhoneState { .. }
                | Body::Route { .. }
                | Body::SfuPublished { .. }
                | Body::SfuSubscription { .. }),
            ) => Err(Refusal(
                codes::BAD_MESSAGE,
                format!("only the relay sends {:?}", body.type_name()),
            )),
            Some(Body::Leave { .. }) => {
                self.route(state, &room, &from, None, text, WireKind::Leave)?;
                self.leave(state, conn);
                Ok(())
            }
            _ => self.route(state, &room, &from, to.as_deref(), text, WireKind::Message),
        }
    }

    async fn join(
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
        // In a cluster Redis decides first: the limit and the ids hold on
        // every relay.
        let admitted = match &state.cluster {
            None => None,
            Some(cluster) => match cluster
                .admit(
                    &room,
                    &from,
                    conn.id,
                    name.as_deref(),
                    config.max_peers_per_room,
                )
                .await
            {
                Admission::Admitted(members) => Some(members),
                Admission::Refused(code) if code == codes::ID_TAKEN => return Err(id_taken(&from)),
                Admission::Refused(_) => return Err(room_full(config.max_peers_per_room)),
                Admission::Alone => None,
            },
        };

        // The welcome goes out under the lock: no other join can reach the
        // newcomer before it.
        let mut inner = lock(&state.rooms.inner);
        let joined = inner.table.join(
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
        let others = match joined {
            Ok(others) => others,
            Err(refusal) => {
                if let (Some(cluster), Some(_)) = (&state.cluster, &admitted) {
                    cluster.gone(&room, &from, conn.id);
                }
                return Err(refusal);
            }
        };
        if let (Some(cluster), Some(members)) = (&state.cluster, admitted) {
            let remote = members
                .into_iter()
                .filter(|(id, m)| m.relay != cluster.id && *id != from)
                .collect();
            inner.remote.insert(room.clone(), remote);
        }
        let empty = BTreeMap::new();
        let remote = inner.remote.get(&room).unwrap_or(&empty);
        let mut peers: Vec<PeerInfo> = others
            .iter()
            .map(|(id, m)| PeerInfo {
                id: id.clone(),
                name: m.name.clone(),
            })
            .chain(remote.iter().map(|(id, m)| PeerInfo {
                id: id.clone(),
                name: m.name.clone(),
            }))
            .collect();
        peers.sort_by(|a, b| a.id.cmp(&b.id));
        let count = peers.len() + 1;
        let mut features = Vec::new();
        if config.phone.enabled() {
            features.push(FEATURE_PHONE.into());
        }
        let mut route = Route::Mesh;
        if sfu_enabled(state) {
            features.push(FEATURE_SFU.into());
            // Before the join: nobody connects to the newcomer peer to
            // peer.
            for (outbox, text) in reroute(state, &mut inner, &room, Some(&from)) {
                outbox.deliver(text);
            }
            route = inner.sfu.get(&room).map_or(Route::Mesh, |s| s.route);
        }
        conn.outbox.deliver(said_to(
            &room,
            &from,
            Body::Welcome {
                peers,
                features,
                route,
            },
        ));
        for (_, member) in &others {
            member.to.outbox.deliver(text.clone());
        }
        if let Some(cluster) = &state.cluster {
            let wire = Wire {
                kind: WireKind::Join,
                room: room.clone(),
                from: from.clone(),
                to: None,
                relay: cluster.id.clone(),
                name,
                text,
            };
            cluster.publish(&inner.relays(&room), &wire);
        }
        drop(inner);
        tracing::info!(conn = conn.id, room, peer = from, peers = count, "joined");
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
        kind: WireKind,
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
        let inner = lock(&state.rooms.inner);
        let relays = match to {
            Some(to) if to != from && inner.table.member(room, to).is_none() => {
                match inner.remote.get(room).and_then(|m| m.get(to)) {
                    Some(m) => vec![m.relay.clone()],
                    None => {
                        return Err(Refusal(
                            codes::UNKNOWN_PEER,
                            format!("peer {to:?} is not in this room (any more); message dropped"),
                        ))
                    }
                }
            }
            _ => {
                for reach in inner.table.recipients(room, from, to)? {
                    reach.outbox.deliver(text.clone());
                }
                if to.is_some() {
                    Vec::new()
                } else {
                    inner.relays(room)
                }
            }
        };
        if let (Some(cluster), false) = (&state.cluster, relays.is_empty()) {
            let wire = Wire {
                kind,
                room: room.to_owned(),
                from: from.to_owned(),
                to: to.map(str::to_owned),
                relay: cluster.id.clone(),
                name: None,
                text,
            };
            cluster.publish(&relays, &wire);
        }
        Ok(())
    }

    fn reply_pong(&self, conn: &Conn, room: &str, from: &str) {
        let (room, to) = (self.room().unwrap_or(room), self.peer().unwrap_or(from));
        conn.outbox.deliver(said_to(room, to, Body::Pong));
    }

    /// Starts the phone call a joined client asked for (PROTOCOL.md 5.13);
    /// whatever stands in its way is said as an `ended`.
    fn phone_call(&mut self, state: &State, conn: &Conn, address: String, sdp: String) {
        let (Some((room, peer)), true) = (self.bound.clone(), self.joined) else {
            return conn.error_to(
                self.room(),
                self.peer(),
                codes::NOT_JOINED,
                "join a room before calling a phone",
            );
        };
        let outbox = conn.outbox.clone();
        let report = move |body: Body| outbox.deliver(said_to(&room, &peer, body));
        let config = &state.config.phone;
        if !config.enabled() {
            return report(phone::ended(
                phone_causes::UNAVAILABLE,
                None,
                "this server does not make phone calls",
            ));
        }
        if self.phone.as_ref().is_some_and(PhoneCall::running) {
            return report(phone::ended(
                phone_causes::UNAVAILABLE,
                None,
                "a phone call is already going on this connection",
            ));
        }
        self.phone = Some(phone::start(config.clone(), address, sdp, report, conn.id));
    }

    /// Takes this connection out of its room (after a `leave`).
    fn leave(&mut self, state: &State, conn: &Conn) {
        self.phone = None;
        if let Some((room, peer)) = &self.bound {
            let (_, _, routes) = remove(state, conn, room, peer);
            for (outbox, text) in routes {
                outbox.deliver(text);
            }
            tracing::info!(conn = conn.id, room, peer, "left");
        }
        self.joined = false;
    }

    /// An `sfu_publish`, `sfu_answer` or `sfu_leave` (PROTOCOL.md 5.14):
    /// for the room's SFU task.
    fn sfu(&mut self, state: &State, conn: &Conn, body: Body) -> Result<(), Refusal> {
        let (Some((room, peer)), true) = (&self.bound, self.joined) else {
            return Err(Refusal(
                codes::NOT_JOINED,
                "join a room before using its SFU".into(),
            ));
        };
        if !sfu_enabled(state) {
            return Err(Refusal(
                codes::SFU_UNAVAILABLE,
                "this relay has no SFU (it was started without --janus)".into(),
            ));
        }
        let config = &state.config;
        let mut inner = lock(&state.rooms.inner);
        let peer = peer.clone();
        let command = match body {
            Body::SfuPublish { sdp, ice_restart } => sfu::Command::Publish {
                peer,
                outbox: conn.outbox.clone(),
                sdp,
                ice_restart,
            },
            Body::SfuAnswer { sdp } => sfu::Command::Answer { peer, sdp },
            Body::SfuRestart => sfu::Command::Restart { peer },
            Body::SfuLayer { peer: of, layer } => sfu::Command::Layer { peer, of, layer },
            _ => sfu::Command::Leave { peer },
        };
        let publish = matches!(command, sfu::Command::Publish { .. });
        match inner.sfu.get(room) {
            Some(sfu) => sfu.task.send(command),
            // A room that never needed the SFU: a publish starts its task
            // (the client may know better, e.g. a late route), the rest
            // has nothing to do.
            None if publish => {
                let task = SfuRoom::start(
                    state.rooms.janus.clone(),
                    state.cluster.clone(),
                    room.clone(),
                    config.max_peers_per_room,
                );
                task.send(command);
                inner.sfu.insert(
                    room.clone(),
                    SfuState {
                        route: Route::Mesh,
                        task,
                    },
                );
            }
            None => {}
        }
        Ok(())
    }

    /// The connection ended: if it had not said goodbye, say it for it. A
    /// client that closed its socket cleanly (the page was closed or left)
    /// is gone for good: a plain `leave`. One that dropped (network, crash,
    /// timeout) may come back: `reason: disconnected`.
    pub(crate) fn on_disconnect(&mut self, state: &State, conn: &Conn, clean: bool) {
        self.phone = None;
        if !self.joined {
            return;
        }
        self.joined = false;
        let Some((room, peer)) = &self.bound else {
            return;
        };
        let text = leave_text(room, peer, clean);
        let (others, relays, routes) = remove(state, conn, room, peer);
        for outbox in others {
            outbox.deliver(text.clone());
        }
        for (outbox, text) in routes {
            outbox.deliver(text);
        }
        if let Some(cluster) = &state.cluster {
            let wire = Wire {
                kind: WireKind::Leave,
                room: room.clone(),
                from: peer.clone(),
                to: None,
                relay: cluster.id.clone(),
                name: None,
                text,
            };
            cluster.publish(&relays, &wire);
        }
        tracing::info!(conn = conn.id, room, peer, "dropped out (no leave)");
    }
}

fn id_taken(id: &str) -> Refusal {
    Refusal(
        codes::ID_TAKEN,
        format!("another connection in this room is peer {id:?}; pick a new random id"),
    )
}

fn room_full(max: usize) -> Refusal {
    Refusal(codes::ROOM_FULL, format!("the room is full ({max} people)"))
}

/// The `route` messages for those still in a room, to deliver after the
/// `leave` that changed it.
type RouteTexts = Vec<(Outbox, Utf8Bytes)>;

/// Removes `peer` (if this connection is it) from `room`, dropping the room
/// when it empties here; gives back who is still here, the relays the
/// room's other members are on, and the `route` messages a room that
/// shrank back to peer to peer owes its members.
fn remove(
    state: &State,
    conn: &Conn,
    room: &str,
    peer: &str,
) -> (Vec<Outbox>, Vec<Arc<str>>, RouteTexts) {
    let mut inner = lock(&state.rooms.inner);
    let here: Vec<Outbox> = inner
        .table
        .remove(room, peer, conn.id)
        .into_iter()
        .map(|reach| reach.outbox)
        .collect();
    let relays = inner.relays(room);
    let mut routes = Vec::new();
    if here.is_empty() {
        inner.remote.remove(room);
        // Its SFU task ends (the Janus room goes with it).
        inner.sfu.remove(room);
    } else if let Some(sfu) = inner.sfu.get_mut(room) {
        sfu.task.send(sfu::Command::Leave {
            peer: peer.to_owned(),
        });
        routes = reroute(state, &mut inner, room, None);
    }
    drop(inner);
    if let Some(cluster) = &state.cluster {
        cluster.gone(room, peer, conn.id);
    }
    (here, relays, routes)
}
