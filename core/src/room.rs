//! Room membership and message filtering, the pure part of signaling.
//!
//! [`Room`] is a state machine with no I/O and no clock of its own: the
//! browser glue (`web::signaling`) feeds it every text frame the relay
//! delivers and a tick now and then, with the time in milliseconds, and
//! sends the messages it returns. Everything it decides is here, so it is
//! tested natively, down to a simulated broadcast relay that echoes,
//! duplicates and reorders.
//!
//! It works over any relay that forwards text to the other clients:
//! - it drops its own echoes, messages for other rooms and messages
//!   addressed to other peers;
//! - it drops duplicates and stale messages using the sender's `seq`;
//! - presence needs no relay help: a `join` is answered with `present`, a
//!   peer heard from for the first time is greeted with `present` too, a
//!   `leave` removes a peer, and a peer silent for longer than
//!   [`Timing::peer_timeout_ms`] is dropped. Everyone sends a heartbeat
//!   `ping` to the room every [`Timing::heartbeat_ms`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use peercall_protocol::{
    decode, encode, Body, Candidate, DecodeError, Decoded, Envelope, ErrorCode, LeaveReason,
    MAX_MESSAGE_BYTES, PROTOCOL_VERSION, RELAY_ID,
};

/// How often to announce ourselves and how long to wait for others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// A heartbeat `ping` goes to the room when nothing was broadcast for
    /// this long.
    pub heartbeat_ms: u64,
    /// A peer not heard from for this long is taken to have left.
    pub peer_timeout_ms: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            heartbeat_ms: 10_000,
            peer_timeout_ms: 35_000,
        }
    }
}

/// A peer id made of 128 random bits (from `crypto.getRandomValues`), as
/// 32 lowercase hex digits.
pub fn peer_id(random: [u8; 16]) -> String {
    random.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the call layer needs from another peer.
#[derive(Clone, Debug, PartialEq)]
pub enum Signal {
    /// An SDP offer.
    Offer {
        /// The description.
        sdp: String,
        /// Whether it restarts ICE.
        ice_restart: bool,
    },
    /// An SDP answer.
    Answer {
        /// The description.
        sdp: String,
    },
    /// A trickled ICE candidate.
    Candidate(Candidate),
    /// No more candidates for now.
    EndOfCandidates,
}

impl Signal {
    fn into_body(self) -> Body {
        match self {
            Signal::Offer { sdp, ice_restart } => Body::Offer { sdp, ice_restart },
            Signal::Answer { sdp } => Body::Answer { sdp },
            Signal::Candidate(candidate) => Body::Candidate { candidate },
            Signal::EndOfCandidates => Body::EndOfCandidates,
        }
    }
}

/// Why a peer is no longer in the room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gone {
    /// It hung up.
    HungUp,
    /// Its relay connection dropped (the relay said so); it may come back.
    Disconnected,
    /// Nothing heard from it for [`Timing::peer_timeout_ms`].
    TimedOut,
    /// It found the room full on joining and went away.
    RoomFull,
}

/// Why a received frame changed nothing. For the log, and for tests.
#[derive(Clone, Debug, PartialEq)]
pub enum Ignored {
    /// Our own message, echoed back by the relay.
    Echo,
    /// For another room on the same relay.
    OtherRoom,
    /// Addressed to another peer (or to the relay).
    NotForUs,
    /// Already seen (same sender and `seq`).
    Duplicate,
    /// Older than something newer from the same sender that already counted
    /// (a description it replaced, or its leave).
    Stale,
    /// A `"type"` this version does not know.
    UnknownType(String),
    /// A leave from a peer that was not in the room.
    UnknownPeer,
    /// Not a message: malformed or oversized.
    Malformed(DecodeError),
}

/// Something the call layer or the UI should know about.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A peer is in the room (newly known to us).
    Joined {
        /// Its id.
        id: String,
        /// Its display name, if any.
        name: Option<String>,
    },
    /// A peer is no longer in the room.
    Left {
        /// Its id.
        id: String,
        /// Why.
        why: Gone,
    },
    /// A negotiation message from a peer in the room.
    Signal {
        /// The sender.
        from: String,
        /// What it said.
        signal: Signal,
    },
    /// The relay keeps rooms and accepted our join; it offers `features`
    /// (e.g. [`peercall_protocol::FEATURE_PHONE`]).
    Welcomed {
        /// What it offers beyond signaling.
        features: Vec<String>,
        /// Where the room's media goes now (PROTOCOL.md 5.14).
        route: peercall_protocol::Route,
    },
    /// The relay moves the room's media (PROTOCOL.md 5.14).
    Route(peercall_protocol::Route),
    /// The relay's SFU answered our publish offer.
    SfuPublished {
        /// The answer.
        sdp: String,
    },
    /// The relay's SFU offers (or updates) the connection we receive on.
    SfuSubscription {
        /// The offer.
        sdp: String,
        /// Whose media each m-line carries.
        streams: Vec<peercall_protocol::SfuStream>,
    },
    /// A peer receives our media along `via` now.
    Receiving {
        /// The peer.
        from: String,
        /// The path.
        via: peercall_protocol::Route,
    },
    /// A control-channel message a peer sent through the relay.
    Control {
        /// The peer.
        from: String,
        /// The channel message's text.
        data: String,
    },
    /// The relay says where our phone call is (PROTOCOL.md 5.13).
    Phone {
        /// Where.
        state: peercall_protocol::PhoneStatus,
        /// The gateway's answer, once.
        sdp: Option<String>,
        /// The SIP status that ended it.
        code: Option<u16>,
        /// Why it ended.
        cause: Option<String>,
        /// The SIP reason phrase or the relay's words.
        reason: Option<String>,
    },
    /// We just joined and the room already has [`Room::capacity`] people
    /// without us: we said goodbye (`leave` with reason `full`) and the
    /// room ignores everything from now on.
    Full {
        /// How many people we found, us included.
        people: usize,
        /// The most this call may have ([`Room::capacity`]).
        capacity: usize,
    },
    /// The relay refused something we sent.
    RelayError {
        /// The stable code.
        code: ErrorCode,
        /// What it said.
        message: String,
    },
    /// A peer reported an error to us.
    PeerError {
        /// The sender.
        from: String,
        /// Its code.
        code: ErrorCode,
        /// Its words.
        message: String,
    },
    /// A frame that changed nothing, and why.
    Ignored(Ignored),
}

/// What one step of the room produced: events to act on and messages (JSON
/// text) to send to the relay, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Output {
    /// Events, in the order they happened.
    pub events: Vec<Event>,
    /// Text frames to send.
    pub send: Vec<String>,
}

/// A peer we know to be in the room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Display name, if it gave one.
    pub name: Option<String>,
    last_heard_ms: u64,
}

/// What we remember of a sender, to spot duplicates and stale messages.
#[derive(Debug, Default)]
struct History {
    /// Every seq up to and including this one has been seen.
    floor: u64,
    /// Seen seqs above the floor.
    above: BTreeSet<u64>,
    /// The highest seq seen.
    highest: u64,
    /// The seq of the last description (offer or answer) passed on.
    description: u64,
    /// The seq at which it left; older messages are stale.
    left_at: Option<u64>,
}

/// Seqs remembered above the floor before the oldest are given up on.
const HISTORY_WINDOW: usize = 1024;

impl History {
    /// Records `seq`; false if it was already seen.
    fn first_time(&mut self, seq: u64) -> bool {
        if seq <= self.floor || !self.above.insert(seq) {
            return false;
        }
        self.highest = self.highest.max(seq);
        while self.above.first() == Some(&(self.floor + 1)) {
            self.above.pop_first();
            self.floor += 1;
        }
        while self.above.len() > HISTORY_WINDOW {
            if let Some(oldest) = self.above.pop_first() {
                self.floor = oldest;
            }
        }
        true
    }
}

/// One peer's view of one room.
#[derive(Debug)]
pub struct Room {
    room: String,
    me: String,
    name: Option<String>,
    timing: Timing,
    seq: u64,
    last_broadcast_ms: Option<u64>,
    peers: BTreeMap<String, Peer>,
    history: HashMap<String, History>,
    rejoin_at_ms: Option<u64>,
    /// Our last `join` has been answered with `welcome` (by a relay that
    /// sends them).
    welcomed: bool,
    capacity: usize,
    /// When we first joined: the room is counted until
    /// [`ADMISSION_MS`] after.
    joined_at_ms: Option<u64>,
    /// We found the room full and left.
    refused: bool,
    /// Peers that were in the room before us: they answered our `join`
    /// with `present`, or the relay's `welcome` listed them. Only they
    /// count against us; those who came after us do their own counting.
    before: BTreeSet<String>,
}

/// The most people in one call, us included. Everyone sends their video
/// to everyone else, so six people means five uplink streams each (see
/// [`crate::mesh::budget`]).
pub use peercall_protocol::MAX_PEOPLE;

/// How long after joining a newcomer counts the room. Everyone answers a
/// `join` at once, so the count is complete within a round trip or two;
/// after this, we are in, and newcomers do the counting.
pub const ADMISSION_MS: u64 = 3_000;

/// How long to wait before joining again when the relay says our id is
/// taken: after a reconnect, the relay may not yet have noticed that our
/// old connection is dead (it does within its idle timeout).
pub const REJOIN_DELAY_MS: u64 = 3_000;

impl Room {
    /// A room we are about to join as `me`.
    pub fn new(room: &str, me: &str, name: Option<String>, timing: Timing) -> Self {
        Self {
            room: room.to_owned(),
            me: me.to_owned(),
            // What the relay accepts (PROTOCOL.md 5.1); longer is cut.
            name: name.as_deref().and_then(peercall_protocol::clean_name),
            timing,
            seq: 0,
            last_broadcast_ms: None,
            peers: BTreeMap::new(),
            history: HashMap::new(),
            rejoin_at_ms: None,
            welcomed: false,
            capacity: MAX_PEOPLE,
            joined_at_ms: None,
            refused: false,
            before: BTreeSet::new(),
        }
    }

    /// The same room, holding at most `people` (us included; at least 2).
    pub fn with_capacity(mut self, people: usize) -> Self {
        self.capacity = people.max(2);
        self
    }

    /// The most people this room lets in, us included.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Our peer id.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// The room id.
    pub fn id(&self) -> &str {
        &self.room
    }

    /// Everyone else in the room, by id.
    pub fn peers(&self) -> &BTreeMap<String, Peer> {
        &self.peers
    }

    /// Announces us to the room: on joining, and again after the relay
    /// connection is re-established (same id, so peers keep their calls).
    pub fn join(&mut self, now_ms: u64) -> String {
        self.joined_at_ms.get_or_insert(now_ms);
        self.welcomed = false;
        self.broadcast(
            Body::Join {
                name: self.name.clone(),
            },
            now_ms,
        )
    }

    /// Says goodbye. The room forgets everyone; send the returned text
    /// before closing the connection. Nothing once we found the room full
    /// (that goodbye is already said).
    pub fn leave(&mut self, now_ms: u64) -> Option<String> {
        self.peers.clear();
        (!self.refused).then(|| {
            self.broadcast(
                Body::Leave {
                    reason: LeaveReason::Hangup,
                },
                now_ms,
            )
        })
    }

    /// A negotiation message for one peer. Nothing once we found the room
    /// full: a message after our goodbye would bring us back into the
    /// others' rooms (4.3).
    pub fn signal(&mut self, to: &str, signal: Signal) -> Option<String> {
        (!self.refused).then(|| self.envelope(Some(to), signal.into_body()))
    }

    /// A message for one peer other than negotiation (`receiving`,
    /// `control`), unless we were turned away.
    pub fn to_peer(&mut self, to: &str, body: Body) -> Option<String> {
        (!self.refused).then(|| self.envelope(Some(to), body))
    }

    /// A request for the relay itself (`phone_call`, `phone_hangup`),
    /// unless we were turned away.
    pub fn to_relay(&mut self, body: Body) -> Option<String> {
        (!self.refused).then(|| self.envelope(Some(RELAY_ID), body))
    }

    /// Time passes: a heartbeat when one is due, and peers that went silent
    /// are dropped.
    pub fn tick(&mut self, now_ms: u64) -> Output {
        let mut out = Output::default();
        if self.refused {
            return out;
        }
        let timeout = self.timing.peer_timeout_ms;
        let silent: Vec<String> = self
            .peers
            .iter()
            .filter(|(_, p)| now_ms.saturating_sub(p.last_heard_ms) > timeout)
            .map(|(id, _)| id.clone())
            .collect();
        for id in silent {
            self.peers.remove(&id);
            out.events.push(Event::Left {
                id,
                why: Gone::TimedOut,
            });
        }
        if self.rejoin_at_ms.is_some_and(|at| now_ms >= at) {
            self.rejoin_at_ms = None;
            out.send.push(self.join(now_ms));
        }
        let due = self
            .last_broadcast_ms
            .is_none_or(|at| now_ms.saturating_sub(at) >= self.timing.heartbeat_ms);
        if due {
            out.send.push(self.broadcast(Body::Ping, now_ms));
        }
        out
    }

    /// One text frame from the relay.
    pub fn receive(&mut self, text: &str, now_ms: u64) -> Output {
        let mut out = Output::default();
        if self.refused {
            return out;
        }
        self.receive_into(text, now_ms, &mut out);
        self.count(now_ms, &mut out);
        out
    }

    /// Whether we found the room full and left.
    pub fn refused(&self) -> bool {
        self.refused
    }

    /// While we are new to the room: if those who were there before us
    /// (they answered our `join` with `present`) fill it, we are the ones
    /// too many, so we leave. Those who came after us do not count: they
    /// count us. Two newcomers at once count each other (each answers
    /// the other's `join`): into a room of five,
    /// both find seven and leave, unless one's goodbye reaches the other
    /// before its hello, and then that one stays. Either way everyone
    /// agrees on who is in, and nobody already in is ever pushed out.
    fn count(&mut self, now_ms: u64, out: &mut Output) {
        let new = self
            .joined_at_ms
            .is_some_and(|at| now_ms.saturating_sub(at) <= ADMISSION_MS);
        if !new {
            return;
        }
        let people = self
            .peers
            .keys()
            .filter(|id| self.before.contains(*id))
            .count()
            + 1;
        if people <= self.capacity {
            return;
        }
        self.refused = true;
        self.peers.clear();
        out.events.push(Event::Full {
            people,
            capacity: self.capacity,
        });
        let leave = self.broadcast(
            Body::Leave {
                reason: LeaveReason::Full,
            },
            now_ms,
        );
        out.send.push(leave);
    }

    fn receive_into(&mut self, text: &str, now_ms: u64, out: &mut Output) {
        match decode(text, MAX_MESSAGE_BYTES) {
            Err(e) => out.events.push(Event::Ignored(Ignored::Malformed(e))),
            Ok(Decoded::Unknown {
                type_name,
                from,
                room,
                to,
            }) => {
                let why = self
                    .misaddressed(&from, &room, to.as_deref())
                    .unwrap_or(Ignored::UnknownType(type_name));
                if let Some(peer) = self.peers.get_mut(&from) {
                    peer.last_heard_ms = now_ms;
                }
                out.events.push(Event::Ignored(why));
            }
            Ok(Decoded::Message(envelope)) => self.on_message(envelope, now_ms, out),
        }
    }

    fn misaddressed(&self, from: &str, room: &str, to: Option<&str>) -> Option<Ignored> {
        if from == self.me {
            Some(Ignored::Echo)
        } else if to.is_some_and(|to| to != self.me) {
            Some(Ignored::NotForUs)
        } else if room != self.room {
            Some(Ignored::OtherRoom)
        } else {
            None
        }
    }

    fn on_message(&mut self, e: Envelope, now_ms: u64, out: &mut Output) {
        if e.from == RELAY_ID {
            return self.on_relay_message(e, now_ms, out);
        }
        if let Some(why) = self.misaddressed(&e.from, &e.room, e.to.as_deref()) {
            return out.events.push(Event::Ignored(why));
        }
        let history = self.history.entry(e.from.clone()).or_default();
        if let Some(seq) = e.seq {
            if !history.first_time(seq) {
                return out.events.push(Event::Ignored(Ignored::Duplicate));
            }
            if history.left_at.is_some_and(|left| seq <= left) {
                return out.events.push(Event::Ignored(Ignored::Stale));
            }
        }
        match &e.body {
            // A leave without seq (the relay's, for a dropped connection)
            // comes after everything the peer sent before it.
            Body::Leave { .. } => history.left_at = Some(e.seq.unwrap_or(history.highest)),
            Body::Join { .. } => history.left_at = None,
            Body::Offer { .. } | Body::Answer { .. } => {
                let seq = e.seq.unwrap_or(u64::MAX);
                if seq < history.description {
                    return out.events.push(Event::Ignored(Ignored::Stale));
                }
                history.description = seq;
            }
            _ => {}
        }
        let from = e.from;
        match e.body {
            Body::Leave { reason } => match self.peers.remove(&from) {
                Some(_) => out.events.push(Event::Left {
                    id: from,
                    why: match reason {
                        LeaveReason::Disconnected => Gone::Disconnected,
                        LeaveReason::Full => Gone::RoomFull,
                        LeaveReason::Hangup | LeaveReason::Other => Gone::HungUp,
                    },
                }),
                None => out.events.push(Event::Ignored(Ignored::UnknownPeer)),
            },
            Body::Join { name } => {
                self.heard(&from, name, now_ms, out, false);
                // Always answer: it may be back after losing its state.
                let present = self.envelope(
                    Some(&from),
                    Body::Present {
                        name: self.name.clone(),
                    },
                );
                out.send.push(present);
            }
            Body::Present { name } => {
                if e.to.as_deref() == Some(self.me.as_str()) {
                    self.before.insert(from.clone());
                }
                self.heard(&from, name, now_ms, out, false)
            }
            Body::Ping => {
                self.heard(&from, None, now_ms, out, true);
                if e.to.is_some() {
                    let pong = self.envelope(Some(&from), Body::Pong);
                    out.send.push(pong);
                }
            }
            Body::Pong => self.heard(&from, None, now_ms, out, true),
            Body::Error { code, message } => {
                self.heard(&from, None, now_ms, out, true);
                out.events.push(Event::PeerError {
                    from,
                    code: ErrorCode::parse(&code),
                    message,
                });
            }
            Body::Receiving { via } => {
                self.heard(&from, None, now_ms, out, true);
                out.events.push(Event::Receiving { from, via });
            }
            Body::Control { data } => {
                self.heard(&from, None, now_ms, out, true);
                out.events.push(Event::Control { from, data });
            }
            // Only the relay sends these, or they are for it.
            Body::Welcome { .. }
            | Body::PhoneState { .. }
            | Body::PhoneCall { .. }
            | Body::PhoneHangup
            | Body::Route { .. }
            | Body::SfuPublish { .. }
            | Body::SfuPublished { .. }
            | Body::SfuSubscription { .. }
            | Body::SfuAnswer { .. }
            | Body::SfuLayer { .. }
            | Body::SfuRestart
            | Body::SfuLeave => out.events.push(Event::Ignored(Ignored::NotForUs)),
            body @ (Body::Offer { .. } | Body::Answer { .. }) => {
                self.heard(&from, None, now_ms, out, true);
                let signal = match body {
                    Body::Offer { sdp, ice_restart } => Signal::Offer { sdp, ice_restart },
                    Body::Answer { sdp } => Signal::Answer { sdp },
                    _ => unreachable!("matched above"),
                };
                out.events.push(Event::Signal { from, signal });
            }
            Body::Candidate { candidate } => {
                self.heard(&from, None, now_ms, out, true);
                out.events.push(Event::Signal {
                    from,
                    signal: Signal::Candidate(candidate),
                });
            }
            Body::EndOfCandidates => {
                self.heard(&from, None, now_ms, out, true);
                out.events.push(Event::Signal {
                    from,
                    signal: Signal::EndOfCandidates,
                });
            }
        }
    }

    fn on_relay_message(&mut self, e: Envelope, now_ms: u64, out: &mut Output) {
        if e.to.as_deref().is_some_and(|to| to != self.me) {
            return out.events.push(Event::Ignored(Ignored::NotForUs));
        }
        match e.body {
            Body::Welcome {
                peers,
                features,
                route,
            } => {
                self.rejoin_at_ms = None;
                self.welcomed = true;
                if features.iter().any(|f| f == peercall_protocol::FEATURE_SFU) {
                    // The relay admits people and carries big rooms
                    // through its SFU: its limit is the one that counts.
                    self.capacity = usize::MAX;
                }
                out.events.push(Event::Welcomed { features, route });
                // Those already here answer our join with `present` too;
                // whichever arrives first counts. Their heartbeats keep
                // them fresh from here on.
                for peer in peers.into_iter().filter(|p| p.id != self.me) {
                    self.before.insert(peer.id.clone());
                    if !self.peers.contains_key(&peer.id) {
                        let name = peer.name.as_deref().and_then(peercall_protocol::clean_name);
                        self.peers.insert(
                            peer.id.clone(),
                            Peer {
                                name: name.clone(),
                                last_heard_ms: now_ms,
                            },
                        );
                        out.events.push(Event::Joined { id: peer.id, name });
                    }
                }
            }
            Body::Error { code, message } => {
                // The relay still holds our old socket (after a reconnect),
                // or our address made too many joins at once: try again.
                let code = ErrorCode::parse(&code);
                let join_refused = code == ErrorCode::IdTaken
                    || (code == ErrorCode::RateLimited && !self.welcomed);
                if join_refused && self.rejoin_at_ms.is_none() {
                    self.rejoin_at_ms = Some(now_ms + REJOIN_DELAY_MS);
                }
                out.events.push(Event::RelayError { code, message });
            }
            Body::Pong => {}
            Body::Route { route } => out.events.push(Event::Route(route)),
            Body::SfuPublished { sdp } => out.events.push(Event::SfuPublished { sdp }),
            Body::SfuSubscription { sdp, streams } => {
                out.events.push(Event::SfuSubscription { sdp, streams })
            }
            Body::PhoneState {
                state,
                sdp,
                code,
                cause,
                reason,
            } => out.events.push(Event::Phone {
                state,
                sdp,
                code,
                cause,
                reason,
            }),
            other => out.events.push(Event::Ignored(Ignored::UnknownType(
                other.type_name().to_owned(),
            ))),
        }
    }

    /// Notes that `from` is alive. A peer heard from for the first time is
    /// announced; when `greet`, it is also told we are here (it may have
    /// missed our join).
    fn heard(
        &mut self,
        from: &str,
        name: Option<String>,
        now_ms: u64,
        out: &mut Output,
        greet: bool,
    ) {
        // Over a relay that checks nothing, a peer may send any name.
        let name = name.as_deref().and_then(peercall_protocol::clean_name);
        match self.peers.get_mut(from) {
            Some(peer) => {
                peer.last_heard_ms = now_ms;
                if name.is_some() {
                    peer.name = name;
                }
            }
            None => {
                self.peers.insert(
                    from.to_owned(),
                    Peer {
                        name: name.clone(),
                        last_heard_ms: now_ms,
                    },
                );
                out.events.push(Event::Joined {
                    id: from.to_owned(),
                    name,
                });
                if greet {
                    let present = self.envelope(
                        Some(from),
                        Body::Present {
                            name: self.name.clone(),
                        },
                    );
                    out.send.push(present);
                }
            }
        }
    }

    fn broadcast(&mut self, body: Body, now_ms: u64) -> String {
        self.last_broadcast_ms = Some(now_ms);
        self.envelope(None, body)
    }

    fn envelope(&mut self, to: Option<&str>, body: Body) -> String {
        self.seq += 1;
        encode(&Envelope {
            v: PROTOCOL_VERSION,
            room: self.room.clone(),
            from: self.me.clone(),
            to: to.map(str::to_owned),
            seq: Some(self.seq),
            body,
        })
    }
}

#[cfg(test)]
#[path = "room_tests.rs"]
mod tests;
