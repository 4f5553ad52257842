//! The call, as a state machine with no I/O (the way [`crate::room`] and
//! str0m work): what happens goes in as a method call with the time, and
//! what to do about it comes out of [`CallCore::poll_output`], in order.
//! `src/web/call.rs` is the loop that feeds it what the relay, the peer
//! connections and the person do, and carries out its outputs; every
//! decision is here and tested natively (`cargo test -p peercall-core`).
//!
//! Per peer it decides:
//! - when to make the connection (someone is in the room or signals us),
//!   and who sends first: the impolite side (the smaller id) at once, the
//!   polite side when it answers the first offer, so joining together
//!   needs no rollback;
//! - the recovery: one ICE restart on `failed`, or after
//!   [`DISCONNECTED_RESTART_MS`] of `disconnected`; TURN credentials
//!   fetched again first when they are about to expire (also before a new
//!   connection); a failure explained once ([`crate::ice::explain`]), and
//!   early when gathering found nothing that could work;
//! - whether a peer the relay calls gone (its signaling dropped, or it
//!   went silent) is kept: yes while its media still flows, until that
//!   fails too;
//! - the control channel: our `media` state when it opens, chat held until
//!   then, what arrives on it turned into screen actions;
//! - the upload budget ([`crate::mesh::budget`]) whenever the room's size
//!   or what we send changes.
//!
//! The SDP work itself (perfect negotiation, [`crate::negotiation`]) is
//! carried out by the shell on [`Output::Negotiate`] and
//! [`Output::Offer`], which reports back with [`CallCore::negotiated`] and
//! [`CallCore::offered`].

use std::collections::VecDeque;

use crate::channel::{self, Message};
use crate::config::CallConfig;
use crate::controls::{Sending, VideoSource};
use crate::ice::IceServer;
use crate::ice::{self, Credentials, Gathering, IceSetup, ServerError};
use crate::mesh::Budget;
use crate::negotiation::Negotiation;
use crate::phone::{Phone, PhoneOutput};
use crate::room::{Event, Gone, Signal};
use crate::state::{CallAction, PeerStatus, RemoteMedia};
use peercall_protocol::{Body, Route, SfuStream};

/// How long a connection may stay `disconnected` before ICE restarts.
pub const DISCONNECTED_RESTART_MS: u64 = 4_000;

/// How long a connected path may carry someone without their media
/// showing (no track unmuted: they send nothing, or the browser does not
/// say) before it counts as carrying them, for the switch between mesh
/// and SFU (PROTOCOL.md 5.14).
pub const SILENT_PATH_MS: u64 = 3_000;

/// How long after the SFU failed we publish again; doubled after each
/// failure in a row, up to [`SFU_RETRY_MAX_MS`].
pub const SFU_RETRY_MS: u64 = 1_000;
/// The longest wait before publishing to the SFU again.
pub const SFU_RETRY_MAX_MS: u64 = 30_000;

/// What the shell does with the SFU connections (PROTOCOL.md 5.14).
#[derive(Clone, Debug, PartialEq)]
pub enum SfuOutput {
    /// Make the publishing connection with our tracks, and send its
    /// complete offer (`sfu_publish`) once gathering is done.
    Publish,
    /// Apply the SFU's answer to our publish offer.
    Published {
        /// The answer.
        sdp: String,
    },
    /// Apply the SFU's offer to the receiving connection (made on the
    /// first), and send the complete answer (`sfu_answer`).
    Subscription {
        /// The offer.
        sdp: String,
        /// Whose media each m-line carries.
        streams: Vec<SfuStream>,
    },
    /// Put what we send now on the publishing connection.
    SetTracks,
    /// Ask for simulcast layer `layer` of `peer`'s video, or (`None`) none
    /// of it (`sfu_layer`).
    Layer {
        /// Whose.
        peer: String,
        /// 0 to 2, or none.
        layer: Option<u8>,
    },
    /// Restart ICE on one SFU connection, keeping it and its media: the
    /// publisher with `restartIce()` and a complete offer sent as
    /// `sfu_publish` with `ice_restart`; the subscriber by `sfu_restart`
    /// (the SFU offers new credentials).
    RestartIce {
        /// Which connection.
        leg: SfuLeg,
    },
    /// Close both SFU connections and forget their streams; say
    /// `sfu_leave` when `leave`.
    Close {
        /// Tell the relay.
        leave: bool,
    },
}

/// One of the two SFU connections (PROTOCOL.md 5.14).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SfuLeg {
    /// The one that sends our media.
    Publisher,
    /// The one we receive everyone on.
    Subscriber,
}

/// What the call keeps of one SFU connection's ICE.
#[derive(Clone, Copy, Debug, Default)]
struct Leg {
    /// Since when it has been `disconnected` (ms), while it is.
    disconnected_at: Option<u64>,
    /// ICE was restarted and it has not connected since.
    restarted: bool,
}

/// `RTCPeerConnection.connectionState`, as the call needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionState {
    /// `new` or `connecting`.
    Connecting,
    /// `connected`.
    Connected,
    /// `disconnected`: ICE lost the path and is trying to get it back.
    Disconnected,
    /// `failed`: ICE gave up.
    Failed,
    /// `closed`.
    Closed,
}

impl ConnectionState {
    /// What the person sees of it (nothing once closed).
    pub fn status(self) -> Option<PeerStatus> {
        match self {
            ConnectionState::Connecting => Some(PeerStatus::Connecting),
            ConnectionState::Connected => Some(PeerStatus::Connected),
            ConnectionState::Disconnected => Some(PeerStatus::Reconnecting),
            ConnectionState::Failed => Some(PeerStatus::Failed),
            ConnectionState::Closed => None,
        }
    }
}

/// What the relay connection reports (the shell's signaling client).
#[derive(Clone, Debug, PartialEq)]
pub enum RelayInput {
    /// The socket is open.
    Connected,
    /// The socket dropped; the next try is in `retry_in_ms`.
    Disconnected {
        /// Why, for the person.
        reason: String,
        /// When the next try is.
        retry_in_ms: u64,
    },
    /// Something happened in the room.
    Room(Event),
}

/// What a peer connection reports.
#[derive(Clone, Debug, PartialEq)]
pub enum PeerInput {
    /// `negotiationneeded`.
    NegotiationNeeded,
    /// A local candidate (its `candidate:` line and the JSON to send).
    Candidate(peercall_protocol::Candidate),
    /// Gathering is complete.
    EndOfCandidates,
    /// `icecandidateerror`.
    ServerError(ServerError),
    /// `connectionstatechange`.
    State(ConnectionState),
    /// The control channel opened.
    ControlOpen,
    /// The control channel closed.
    ControlClosed,
    /// A text message on the control channel.
    ControlText(String),
    /// A binary message on the control channel (never valid).
    ControlBinary,
}

/// How loud a log line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Worth knowing.
    Info,
    /// Something went wrong.
    Warn,
}

/// What the shell should do, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Fetch TURN credentials now and hand them to
    /// [`CallCore::credentials`] before carrying out the next output.
    FetchCredentials {
        /// Where.
        url: String,
    },
    /// Make the connection to `id` with [`CallCore::ice_servers`]; when
    /// `send`, it sends at once (our transceivers and the control
    /// channel, so `negotiationneeded` makes the first offer). Report a
    /// failure with [`CallCore::connection_failed`].
    Connect {
        /// Peer id.
        id: String,
        /// Start sending now.
        send: bool,
    },
    /// Close the connection to `id` and forget it (and its transfers).
    Disconnect {
        /// Peer id.
        id: String,
    },
    /// Apply `signal` from `id` as perfect negotiation says; if it is an
    /// offer and `send_when_answering`, start sending between applying it
    /// and answering. Report with [`CallCore::negotiated`].
    Negotiate {
        /// The sender.
        id: String,
        /// What it said.
        signal: Signal,
        /// Start sending before the answer.
        send_when_answering: bool,
    },
    /// Make and send an offer to `id` (`negotiationneeded`); report with
    /// [`CallCore::offered`].
    Offer {
        /// Peer id.
        id: String,
        /// It restarts ICE.
        ice_restart: bool,
    },
    /// Send a signal to `to` through the relay.
    Signal {
        /// Peer id.
        to: String,
        /// What.
        signal: Signal,
    },
    /// Restart ICE with `id`; when `new_servers` (the credentials were
    /// fetched again), set its ICE servers to [`CallCore::ice_servers`]
    /// first.
    RestartIce {
        /// Peer id.
        id: String,
        /// The connection's servers change first.
        new_servers: bool,
    },
    /// Put what we send now ([`CallCore::sending`]) on `id`'s senders.
    SetTracks {
        /// Peer id.
        id: String,
    },
    /// Cap `id`'s video sender.
    LimitVideo {
        /// Peer id.
        id: String,
        /// The caps.
        budget: Budget,
    },
    /// Send `message` on `id`'s control channel.
    Send {
        /// Peer id.
        id: String,
        /// What.
        message: Message,
    },
    /// A change for the call screen.
    Ui(CallAction),
    /// A performance mark (`performance.mark`) for the benchmark.
    Mark(&'static str),
    /// A line for the console.
    Log(Level, String),
    /// Something for the phone call ([`crate::phone`]); its views come
    /// as [`Output::Ui`].
    Phone(PhoneOutput),
    /// Something for the SFU connections.
    Sfu(SfuOutput),
    /// Show `id`'s media as it arrives along `via` (its tile's stream).
    Show {
        /// Peer id.
        id: String,
        /// The path.
        via: Route,
    },
    /// Send `body` to peer `to` through the relay (`receiving`,
    /// `control`).
    Tell {
        /// Peer id.
        to: String,
        /// What.
        body: Body,
    },
}

/// Someone in the room, whichever way their media comes.
#[derive(Clone, Debug, Default)]
struct Person {
    /// The path whose media their tile shows.
    shown: Option<Route>,
    /// Their media arrived and plays (a track unmuted) along each path.
    mesh_seen: bool,
    sfu_seen: bool,
    /// Since when (ms) our SFU subscription carries them.
    sfu_listed_at: Option<u64>,
    /// The path they last said our media reaches them on.
    they_receive: Option<Route>,
    /// The path we last told them theirs reaches us on.
    told: Option<Route>,
    /// The simulcast layer of theirs we asked the SFU for (`Some(None)`:
    /// none, they have no tile).
    layer: Option<Option<u8>>,
}

/// What the shell did with an [`Output::Negotiate`].
#[derive(Clone, Debug, PartialEq)]
pub struct Negotiated {
    /// The signal was a description (offer or answer) and it was applied.
    pub description: bool,
    /// Sending started before the answer.
    pub started_sending: bool,
    /// The connection's state now.
    pub state: ConnectionState,
    /// What failed, if anything.
    pub error: Option<String>,
}

/// One other person's connection, as the call sees it.
#[derive(Clone, Debug)]
struct PeerCall {
    state: ConnectionState,
    /// When it went `disconnected` (ms), while it still is.
    disconnected_at: Option<u64>,
    /// Our tracks are on this connection.
    sending: bool,
    /// ICE was restarted and the offer that carries it is not made yet:
    /// no second restart meanwhile, and a failure now is explained.
    restarted: bool,
    /// Local candidates and server errors since the last (re)start.
    gathering: Gathering,
    /// Told the person this connection failed.
    failure_told: bool,
    /// The relay said its signaling dropped while media still flowed; if
    /// the media fails too, the peer is gone.
    signaling_lost: bool,
    control_open: bool,
    /// Chat waiting for the control channel to open.
    outbox: Vec<Message>,
    /// When it connected (ms), while it is.
    connected_at: Option<u64>,
}

/// A map by peer id, in id order: a sorted `Vec`, as a call has a
/// handful of peers (and a hash map costs the app's wasm more than it
/// saves). The call's table here, and the browser side's in `web::call`.
#[derive(Debug)]
pub struct ById<V>(Vec<(String, V)>);

impl<V> Default for ById<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<V> ById<V> {
    fn find(&self, id: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(id))
    }

    /// The entry for `id`.
    pub fn get(&self, id: &str) -> Option<&V> {
        self.find(id).ok().map(|i| &self.0[i].1)
    }

    /// The entry for `id`, to change.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut V> {
        self.find(id).ok().map(|i| &mut self.0[i].1)
    }

    /// Whether there is an entry for `id`.
    pub fn contains_key(&self, id: &str) -> bool {
        self.find(id).is_ok()
    }

    /// Sets the entry for `id`.
    pub fn insert(&mut self, id: String, value: V) {
        match self.find(&id) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (id, value)),
        }
    }

    /// Takes the entry for `id` out.
    pub fn remove(&mut self, id: &str) -> Option<V> {
        self.find(id).ok().map(|i| self.0.remove(i).1)
    }

    /// The ids, in order.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(k, _)| k)
    }

    /// The entries, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// The entries, in id order, to change.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&String, &mut V)> {
        self.0.iter_mut().map(|(k, v)| (&*k, v))
    }

    /// The values, in id order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.0.iter().map(|(_, v)| v)
    }

    /// Takes every entry out, in id order.
    pub fn drain(&mut self) -> impl Iterator<Item = (String, V)> + '_ {
        self.0.drain(..)
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The call: see the module documentation.
#[derive(Debug)]
pub struct CallCore {
    me: String,
    room: String,
    config: CallConfig,
    credentials_url: Option<String>,
    /// The configured ICE servers plus the relay's TURN credentials.
    servers: Vec<IceServer>,
    setup: IceSetup,
    sending: Sending,
    peers: ById<PeerCall>,
    ended: bool,
    /// The next fetched credentials are the first (their warning is due).
    first_credentials: bool,
    /// The phone call, if any.
    phone: Phone,
    /// Everyone else in the room, connected to or not.
    people: ById<Person>,
    /// The relay offers its SFU (`welcome` lists `sfu`).
    sfu_offered: bool,
    /// Where the relay says the room's media goes.
    route: Route,
    /// Our SFU connections are up or being made.
    sfu_active: bool,
    /// When the receiving SFU connection connected (ms), while it is.
    sfu_connected_at: Option<u64>,
    /// When to publish again after the SFU failed (ms).
    sfu_retry_at: Option<u64>,
    /// Failures in a row since the SFU last answered a publish.
    sfu_failures: u32,
    /// The publisher's and the subscriber's ICE.
    sfu_legs: [Leg; 2],
    out: VecDeque<Output>,
}

impl CallCore {
    /// A call for `me` in `room`, with credentials from `credentials_url`
    /// (the relay's `/ice-servers`), if any.
    pub fn new(me: &str, room: &str, config: CallConfig, credentials_url: Option<String>) -> Self {
        let setup = IceSetup::new(
            &config.ice_servers,
            config.relay_only,
            Credentials::NotOffered,
        );
        Self {
            me: me.to_owned(),
            room: room.to_owned(),
            servers: config.ice_servers.clone(),
            config,
            credentials_url,
            setup,
            sending: Sending::default(),
            peers: ById::default(),
            ended: false,
            first_credentials: true,
            phone: Phone::default(),
            people: ById::default(),
            sfu_offered: false,
            route: Route::Mesh,
            sfu_active: false,
            sfu_connected_at: None,
            sfu_retry_at: None,
            sfu_failures: 0,
            sfu_legs: [Leg::default(); 2],
            out: VecDeque::new(),
        }
    }

    /// The signaling connection now goes to the relay at `relay_ws` (one of
    /// a cluster's): TURN credentials come from there from now on.
    pub fn using_relay(&mut self, relay_ws: &str) {
        self.credentials_url = self.config.credentials_url_for(relay_ws);
    }

    /// The call begins: credentials first (the socket connects meanwhile),
    /// then any warning about the ICE setup.
    pub fn start(&mut self) {
        match &self.credentials_url {
            Some(url) => self.push(Output::FetchCredentials { url: url.clone() }),
            None => self.warn_setup(),
        }
    }

    /// The next thing to do, or `None` until the next input.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`CallCore::handle_timeout`] is next due (ms), if ever.
    pub fn poll_timeout(&self) -> Option<u64> {
        let restarts = self
            .peers
            .values()
            .filter(|p| !p.restarted)
            .filter_map(|p| p.disconnected_at)
            .map(|at| at + DISCONNECTED_RESTART_MS);
        // Only the move between mesh and SFU waits for silent paths.
        let silent = self
            .people
            .iter()
            .filter(|_| self.sfu_offered)
            .flat_map(|(id, person)| {
                let mesh = (!person.mesh_seen)
                    .then(|| self.peers.get(id).and_then(|p| p.connected_at))
                    .flatten();
                let sfu = (!person.sfu_seen)
                    .then(|| Some(person.sfu_listed_at?.max(self.sfu_connected_at?)))
                    .flatten();
                [mesh, sfu]
                    .into_iter()
                    .flatten()
                    .map(|at| at + SILENT_PATH_MS)
            });
        let mut next = restarts.chain(silent).chain(self.sfu_retry_at).min();
        for l in &self.sfu_legs {
            if let (true, false, Some(at)) = (self.sfu_active, l.restarted, l.disconnected_at) {
                let at = at + DISCONNECTED_RESTART_MS;
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        next
    }

    /// The time is `now_ms`: restarts ICE with whoever stayed
    /// `disconnected` too long.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        let due: Vec<String> = self
            .peers
            .iter()
            .filter(|(_, p)| !p.restarted && p.state == ConnectionState::Disconnected)
            .filter(|(_, p)| {
                p.disconnected_at
                    .is_some_and(|at| at + DISCONNECTED_RESTART_MS <= now_ms)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            self.push(Output::Log(
                Level::Info,
                format!("peercall: {id} still disconnected: restarting ICE"),
            ));
            self.restart(&id, now_ms);
        }
        for leg in [SfuLeg::Publisher, SfuLeg::Subscriber] {
            let l = self.sfu_legs[leg as usize];
            if self.sfu_active
                && !l.restarted
                && l.disconnected_at
                    .is_some_and(|at| at + DISCONNECTED_RESTART_MS <= now_ms)
            {
                self.sfu_restart(leg);
            }
        }
        if self.sfu_retry_at.is_some_and(|at| at <= now_ms) {
            self.sfu_retry_at = None;
            if self.route == Route::Sfu && !self.sfu_active {
                self.sfu_publish();
            }
        }
        self.advance(now_ms);
    }

    /// The relay turned us away (the room is full): the loop should stop.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Our id.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// The room id.
    pub fn room(&self) -> &str {
        &self.room
    }

    /// The ICE servers for a new connection now.
    pub fn ice_servers(&self) -> &[IceServer] {
        &self.servers
    }

    /// Whether connections use TURN only.
    pub fn relay_only(&self) -> bool {
        self.config.relay_only
    }

    /// What we send now.
    pub fn sending(&self) -> Sending {
        self.sending
    }

    /// The ids of everyone we have a connection to.
    pub fn peer_ids(&self) -> impl Iterator<Item = &str> {
        self.peers.keys().map(String::as_str)
    }

    /// Whether we have a connection to `id`.
    pub fn has_peer(&self, id: &str) -> bool {
        self.peers.contains_key(id)
    }

    /// TURN credentials came back from [`Output::FetchCredentials`]:
    /// `servers` are the ones they name.
    pub fn credentials(&mut self, credentials: Credentials, servers: Vec<IceServer>) {
        self.servers = self.config.ice_servers.clone();
        self.servers.extend(servers);
        self.setup = IceSetup::new(&self.servers, self.config.relay_only, credentials);
        if std::mem::take(&mut self.first_credentials) {
            self.warn_setup();
        }
    }

    /// The relay connection reported something.
    pub fn relay(&mut self, input: RelayInput, now_ms: u64) {
        match input {
            RelayInput::Connected => {
                self.push(Output::Mark("relay-open"));
                self.ui(CallAction::RelayConnected);
            }
            RelayInput::Disconnected {
                reason,
                retry_in_ms,
            } => {
                let out = self.phone.relay_lost();
                self.phone_out(out);
                self.ui(CallAction::RelayLost {
                    reason,
                    retry_in_ms,
                })
            }
            RelayInput::Room(event) => self.room_event(event, now_ms),
        }
    }

    fn room_event(&mut self, event: Event, now_ms: u64) {
        match event {
            Event::Joined { id, name } => {
                if let Some(p) = self.peers.get_mut(&id) {
                    p.signaling_lost = false;
                }
                if !self.people.contains_key(&id) {
                    self.people.insert(id.clone(), Person::default());
                }
                if self.route == Route::Sfu {
                    // No direct connection in a room on the SFU: our
                    // media state goes through the relay.
                    let media = self.sending.message();
                    self.send_control(&id, media);
                } else {
                    self.ensure_peer(&id, now_ms);
                }
                self.ui(CallAction::Joined { id, name });
            }
            Event::Left { id, why } => {
                // A peer whose relay connection dropped (or that went
                // silent while the relay was away) may still be connected
                // to us; keep that call.
                let still_connected = matches!(why, Gone::Disconnected | Gone::TimedOut)
                    && self.peers.get_mut(&id).is_some_and(|p| {
                        p.signaling_lost = true;
                        p.state == ConnectionState::Connected
                    });
                if !still_connected {
                    self.people.remove(&id);
                    self.drop_peer(&id);
                    self.ui(CallAction::Left { id, why });
                    self.advance(now_ms);
                }
            }
            Event::Signal { from, signal } => {
                if self.route == Route::Sfu && !self.peers.contains_key(&from) {
                    // Late negotiation for a connection the SFU replaced.
                    return;
                }
                self.ensure_peer(&from, now_ms);
                if let Some(p) = self.peers.get(&from) {
                    let send_when_answering = !p.sending;
                    self.push(Output::Negotiate {
                        id: from,
                        signal,
                        send_when_answering,
                    });
                }
            }
            Event::Full { people, capacity } => {
                // The room said goodbye for us; no call to make.
                self.ended = true;
                self.ui(CallAction::RoomFull { people, capacity });
            }
            Event::RelayError { code, .. }
                if code.as_str() == peercall_protocol::codes::SFU_FAILED && self.sfu_active =>
            {
                // The SFU lost us: start over there in a moment (the direct
                // connections, if any, carry on meanwhile).
                self.push(Output::Log(
                    Level::Warn,
                    "peercall: the relay's SFU failed; publishing again".into(),
                ));
                self.sfu_close(false);
                self.sfu_retry(now_ms);
            }
            Event::RelayError { code, message } => {
                // Refused at the door: nothing more to do here.
                self.ended |= crate::state::ends_the_call(&code);
                self.ui(CallAction::Refused { code, message });
            }
            Event::PeerError {
                from,
                code,
                message,
            } => self.ui(CallAction::PeerError {
                id: from,
                message: format!("{code}: {message}"),
            }),
            Event::Welcomed { features, route } => {
                self.push(Output::Mark("joined"));
                let phone = features
                    .iter()
                    .any(|f| f == peercall_protocol::FEATURE_PHONE);
                self.ui(CallAction::PhoneOffered(phone));
                self.sfu_offered = features.iter().any(|f| f == peercall_protocol::FEATURE_SFU);
                if self.sfu_active {
                    // Welcomed again (we reconnected): the relay dropped
                    // our SFU part with the old connection.
                    self.sfu_close(false);
                }
                self.set_route(route, now_ms);
            }
            Event::Route(route) => self.set_route(route, now_ms),
            Event::SfuPublished { sdp } => {
                if self.sfu_active {
                    self.sfu_failures = 0;
                    self.push(Output::Sfu(SfuOutput::Published { sdp }));
                }
            }
            Event::SfuSubscription { sdp, streams } => {
                if !self.sfu_active {
                    return;
                }
                for (id, person) in self.people.iter_mut() {
                    if streams.iter().any(|s| s.peer == *id) {
                        person.sfu_listed_at.get_or_insert(now_ms);
                    } else {
                        person.sfu_listed_at = None;
                        person.sfu_seen = false;
                        person.layer = None;
                    }
                }
                self.push(Output::Sfu(SfuOutput::Subscription { sdp, streams }));
            }
            Event::Receiving { from, via } => {
                if let Some(person) = self.people.get_mut(&from) {
                    person.they_receive = Some(via);
                }
                self.advance(now_ms);
            }
            Event::Control { from, data } => self.control_text(&from, &data),
            Event::Phone {
                state,
                sdp,
                code,
                cause,
                reason,
            } => {
                let out = self.phone.relay_state(
                    state,
                    sdp,
                    code,
                    cause.as_deref(),
                    reason.as_deref(),
                    now_ms,
                );
                self.phone_out(out);
            }
            Event::Ignored(_) => {}
        }
    }

    /// A connection reported something.
    pub fn peer(&mut self, id: &str, input: PeerInput, now_ms: u64) {
        let Some(p) = self.peers.get_mut(id) else {
            return;
        };
        match input {
            PeerInput::NegotiationNeeded => {
                let ice_restart = std::mem::take(&mut p.restarted);
                self.push(Output::Offer {
                    id: id.to_owned(),
                    ice_restart,
                });
            }
            PeerInput::Candidate(c) => {
                p.gathering.add(&c.candidate);
                self.signal(id, Signal::Candidate(c));
            }
            PeerInput::EndOfCandidates => {
                p.gathering.complete = true;
                let hopeless = ice::hopeless(&self.setup, &p.gathering);
                let restarted = p.restarted;
                self.signal(id, Signal::EndOfCandidates);
                if hopeless {
                    // Nothing to try: say why now rather than when the
                    // browser gives up (or never, with no candidates).
                    if !restarted && self.credentials_stale(now_ms) {
                        self.restart(id, now_ms);
                    } else {
                        self.explain_failure(id, now_ms);
                    }
                }
            }
            PeerInput::ServerError(e) => {
                let line = format!(
                    "peercall: ICE server {} answered {} {}",
                    e.url, e.code, e.text
                );
                p.gathering.errors.push(e);
                self.push(Output::Log(Level::Warn, line));
            }
            PeerInput::State(state) => self.state_changed(id, state, now_ms),
            PeerInput::ControlOpen => {
                p.control_open = true;
                let outbox = std::mem::take(&mut p.outbox);
                let media = self.sending.message();
                self.push(Output::Send {
                    id: id.to_owned(),
                    message: media,
                });
                for message in outbox {
                    self.push(Output::Send {
                        id: id.to_owned(),
                        message,
                    });
                }
            }
            PeerInput::ControlClosed => p.control_open = false,
            PeerInput::ControlText(text) => self.control_text(id, &text),
            PeerInput::ControlBinary => self.push(Output::Log(
                Level::Warn,
                format!("peercall: binary data from {id} on the control channel, dropped"),
            )),
        }
    }

    fn state_changed(&mut self, id: &str, state: ConnectionState, now_ms: u64) {
        let Some(p) = self.peers.get_mut(id) else {
            return;
        };
        p.state = state;
        p.disconnected_at = (state == ConnectionState::Disconnected).then_some(now_ms);
        p.connected_at = match state {
            ConnectionState::Connected => p.connected_at.or(Some(now_ms)),
            _ => None,
        };
        match state {
            ConnectionState::Failed | ConnectionState::Closed if p.signaling_lost => {
                // Gone from the relay earlier, and now the media is gone too.
                self.people.remove(id);
                self.drop_peer(id);
                self.ui(CallAction::Left {
                    id: id.to_owned(),
                    why: Gone::Disconnected,
                });
            }
            ConnectionState::Failed if !p.restarted => {
                // One ICE restart (its offer says so), with fresh
                // credentials if ours went stale.
                self.restart(id, now_ms);
                self.status(id, PeerStatus::Reconnecting);
            }
            ConnectionState::Failed => self.explain_failure(id, now_ms),
            _ => {
                if state == ConnectionState::Connected {
                    p.failure_told = false;
                    self.push(Output::Mark("connected"));
                }
                if let Some(status) = state.status() {
                    self.status(id, status);
                }
            }
        }
        self.advance(now_ms);
    }

    /// The shell carried out [`Output::Negotiate`] for `id`.
    pub fn negotiated(&mut self, id: &str, result: Negotiated) {
        let Some(p) = self.peers.get_mut(id) else {
            return;
        };
        p.sending |= result.started_sending;
        if let Some(message) = result.error {
            return self.ui(CallAction::PeerError {
                id: id.to_owned(),
                message,
            });
        }
        if result.description {
            // An ICE restart that kept the connection up fires no state
            // change: show it as it is.
            if let Some(status) = result.state.status() {
                self.status(id, status);
            }
            self.limit_video(id);
        }
    }

    /// The shell carried out [`Output::Offer`] for `id`: `Ok(true)` if it
    /// sent one (`Ok(false)`: the state moved on meanwhile).
    pub fn offered(&mut self, id: &str, result: Result<bool, String>) {
        match result {
            Ok(true) => self.limit_video(id),
            Ok(false) => {}
            Err(message) => self.ui(CallAction::PeerError {
                id: id.to_owned(),
                message,
            }),
        }
    }

    /// [`Output::Connect`] failed: there is no connection to `id`.
    pub fn connection_failed(&mut self, id: &str, message: String) {
        if self.peers.remove(id).is_some() {
            self.ui(CallAction::PeerError {
                id: id.to_owned(),
                message,
            });
            self.limit_all();
        }
    }

    /// Our media changed (the camera came on, a device was switched, a
    /// screen shared or unshared): put it on every connection that sends.
    pub fn media_changed(&mut self) {
        self.put_tracks();
    }

    /// Mute, camera off, screen sharing: what to send.
    pub fn set_sending(&mut self, sending: Sending) {
        self.sending = sending;
        self.put_tracks();
    }

    fn put_tracks(&mut self) {
        let message = self.sending.message();
        let sending: Vec<String> = self
            .peers
            .iter()
            .filter(|(_, p)| p.sending)
            .map(|(id, _)| id.clone())
            .collect();
        if self.phone.view().is_some_and(|v| !v.is_over()) {
            self.push(Output::Phone(PhoneOutput::SetTracks));
        }
        if self.sfu_active {
            self.push(Output::Sfu(SfuOutput::SetTracks));
        }
        for id in &sending {
            self.push(Output::SetTracks { id: id.clone() });
            self.push(Output::Send {
                id: id.clone(),
                message: message.clone(),
            });
        }
        // Those we have no open channel with hear of it through the relay,
        // when it carries that (the room is on the SFU).
        if self.sfu_offered {
            let others: Vec<String> = self
                .people
                .keys()
                .filter(|id| !self.peers.get(id.as_str()).is_some_and(|p| p.control_open))
                .cloned()
                .collect();
            for id in others {
                self.send_control(&id, message.clone());
            }
        }
        self.limit_all();
    }

    /// The person sends chat `text` to everyone, or only to `to`; `id` is
    /// a fresh random message id and `now_ms` the wall clock.
    pub fn chat(&mut self, text: &str, to: Option<String>, id: String, now_ms: u64) {
        let text = match channel::chat_text(text) {
            Ok(text) => text,
            Err(why) => return self.warn(format!("Message not sent: {why}.")),
        };
        if to.as_ref().is_some_and(|to| !self.people.contains_key(to)) {
            return self.warn("Message not sent: that person has left the call.".into());
        }
        if self.people.is_empty() {
            self.warn("Nobody else is in the call yet: your message will not be seen.".into());
        }
        let message = Message::Chat {
            id: id.clone(),
            text: text.clone(),
            sent_at: now_ms,
            private: to.is_some(),
        };
        let recipients: Vec<String> = self
            .people
            .keys()
            .filter(|peer| to.as_ref().is_none_or(|to| to == *peer))
            .cloned()
            .collect();
        for peer in recipients {
            self.send_control(&peer, message.clone());
        }
        self.ui(CallAction::Chat {
            from: None,
            id,
            text,
            sent_at: now_ms,
            private_with: to,
        });
    }

    /// Who a file for everyone (or only `to`) goes to now: those whose
    /// control channel is open. Nobody is news for the person.
    pub fn file_recipients(&mut self, to: Option<&str>) -> Vec<String> {
        let recipients: Vec<String> = self
            .peers
            .iter()
            .filter(|(id, p)| p.control_open && to.is_none_or(|to| to == *id))
            .map(|(id, _)| id.clone())
            .collect();
        if recipients.is_empty() && self.route == Route::Sfu {
            self.warn(
                "Files go directly between people, and this call is too big for that: \
                 its media goes through the server. Share a link in the chat instead."
                    .into(),
            );
        } else if recipients.is_empty() {
            self.warn("Nobody is connected to send the file to yet.".into());
        }
        recipients
    }

    /// The person (or a test, through `peercall.restartIce`) asks for an
    /// ICE restart with `id`.
    pub fn restart_ice(&mut self, id: &str, now_ms: u64) {
        if self.peers.contains_key(id) {
            self.status(id, PeerStatus::Reconnecting);
            self.restart(id, now_ms);
        }
    }

    /// The person calls `address` (a number or a SIP address).
    pub fn phone_dial(&mut self, address: &str) -> Result<(), String> {
        let out = self.phone.dial(address)?;
        self.phone_out(out);
        Ok(())
    }

    /// The phone call's offer is ready (every candidate in it), or could
    /// not be made.
    pub fn phone_offer(&mut self, offer: Result<String, String>) {
        let out = match offer {
            Ok(sdp) => self.phone.offer_ready(sdp),
            Err(e) => self.phone.offer_failed(&e),
        };
        self.phone_out(out);
    }

    /// The person hangs the phone call up.
    pub fn phone_hang_up(&mut self) {
        let out = self.phone.hang_up();
        self.phone_out(out);
    }

    /// The person closes the phone call's screen (hanging up if needed).
    pub fn phone_dismiss(&mut self) {
        let out = self.phone.dismiss();
        self.phone_out(out);
        self.ui(CallAction::Phone(None));
    }

    /// The phone call's media connection changed.
    pub fn phone_connection(&mut self, state: ConnectionState) {
        if state == ConnectionState::Failed {
            let out = self.phone.media_failed();
            self.phone_out(out);
        }
    }

    fn phone_out(&mut self, outputs: Vec<PhoneOutput>) {
        for output in outputs {
            match output {
                PhoneOutput::View(view) => self.ui(CallAction::Phone(Some(view))),
                other => self.push(Output::Phone(other)),
            }
        }
    }

    /// A track of `id`'s arrived along `via`: shown at once if nothing
    /// of theirs is yet, or that path's is (its stream may be a new one).
    pub fn media_arrived(&mut self, id: &str, via: Route, now_ms: u64) {
        let Some(person) = self.people.get_mut(id) else {
            return;
        };
        if person.shown.is_none() || person.shown == Some(via) {
            person.shown = Some(via);
            self.push(Output::Show {
                id: id.to_owned(),
                via,
            });
            if via == Route::Sfu {
                self.status(id, PeerStatus::Connected);
            }
        }
        self.advance(now_ms);
    }

    /// `id`'s media plays along `via` (a track of theirs unmuted).
    pub fn media_flowing(&mut self, id: &str, via: Route, now_ms: u64) {
        let Some(person) = self.people.get_mut(id) else {
            return;
        };
        match via {
            Route::Sfu => person.sfu_seen = true,
            _ => person.mesh_seen = true,
        }
        self.advance(now_ms);
    }

    /// An SFU connection's state changed. One that fails, or stays
    /// `disconnected` for [`DISCONNECTED_RESTART_MS`], restarts ICE; one
    /// that fails again before it reconnects is given up: both close, and
    /// we publish afresh.
    pub fn sfu_connection(&mut self, leg: SfuLeg, state: ConnectionState, now_ms: u64) {
        if leg == SfuLeg::Subscriber {
            self.sfu_connected_at = match state {
                ConnectionState::Connected => self.sfu_connected_at.or(Some(now_ms)),
                _ => None,
            };
        }
        let l = &mut self.sfu_legs[leg as usize];
        l.disconnected_at = (state == ConnectionState::Disconnected).then_some(now_ms);
        if state == ConnectionState::Connected {
            l.restarted = false;
        }
        if state == ConnectionState::Failed && self.sfu_active {
            if l.restarted {
                self.sfu_error("the connection to the SFU failed again", now_ms);
            } else {
                self.sfu_restart(leg);
            }
        }
        self.advance(now_ms);
    }

    /// Something on our side of the SFU went wrong (an SDP refused, a
    /// connection that could not be made): both close, and we publish
    /// afresh in a moment.
    pub fn sfu_error(&mut self, why: &str, now_ms: u64) {
        if !self.sfu_active {
            return;
        }
        self.push(Output::Log(
            Level::Warn,
            format!("peercall: SFU: {why}; publishing again"),
        ));
        self.sfu_close(false);
        self.sfu_retry(now_ms);
        self.advance(now_ms);
    }

    /// The person (or a test, through `peercall.restartSfuIce`) asks for
    /// an ICE restart of both SFU connections.
    pub fn restart_sfu_ice(&mut self) {
        if self.sfu_active {
            self.sfu_restart(SfuLeg::Publisher);
            self.sfu_restart(SfuLeg::Subscriber);
        }
    }

    /// Restarts ICE on `leg` (it failed, or stayed disconnected).
    fn sfu_restart(&mut self, leg: SfuLeg) {
        let l = &mut self.sfu_legs[leg as usize];
        l.restarted = true;
        l.disconnected_at = None;
        self.push(Output::Log(
            Level::Info,
            "peercall: restarting ICE with the SFU".into(),
        ));
        self.push(Output::Sfu(SfuOutput::RestartIce { leg }));
    }

    /// The tiles are `heights` device pixels tall now (peer id, height;
    /// those not listed have no tile): each person received through the
    /// SFU gets the simulcast layer that fits theirs, or no video at all
    /// without one.
    pub fn tile_heights(&mut self, heights: &[(String, u32)]) {
        if !self.sfu_active {
            return;
        }
        let mut asks = Vec::new();
        for (id, person) in self.people.iter_mut() {
            if person.sfu_listed_at.is_none() {
                continue;
            }
            let layer = match heights.iter().find(|(h, _)| h == id) {
                // Laid out yet (hidden for a moment): leave it.
                Some((_, 0)) => continue,
                Some((_, height)) => Some(crate::mesh::layer_for(*height)),
                None => None,
            };
            if person.layer != Some(layer) {
                person.layer = Some(layer);
                asks.push((id.clone(), layer));
            }
        }
        for (peer, layer) in asks {
            self.push(Output::Sfu(SfuOutput::Layer { peer, layer }));
        }
    }

    /// Where the room's media goes now (PROTOCOL.md 5.14).
    pub fn route(&self) -> Route {
        self.route
    }

    fn set_route(&mut self, route: Route, now_ms: u64) {
        let route = if route == Route::Sfu && self.sfu_offered {
            Route::Sfu
        } else {
            Route::Mesh
        };
        self.route = route;
        if route == Route::Sfu {
            if !self.sfu_active {
                self.sfu_publish();
            }
        } else {
            // Everyone directly again (the SFU carries on until then).
            let everyone: Vec<String> = self.people.keys().cloned().collect();
            for id in everyone {
                self.ensure_peer(&id, now_ms);
            }
        }
        self.advance(now_ms);
    }

    /// Publishes again after a wait that grows with each failure in a row
    /// (a Janus without the VideoRoom plugin, say, is not hammered).
    fn sfu_retry(&mut self, now_ms: u64) {
        let wait = (SFU_RETRY_MS << self.sfu_failures.min(5)).min(SFU_RETRY_MAX_MS);
        self.sfu_failures += 1;
        self.sfu_retry_at = Some(now_ms + wait);
    }

    fn sfu_publish(&mut self) {
        self.sfu_active = true;
        self.sfu_legs = [Leg::default(); 2];
        self.push(Output::Sfu(SfuOutput::Publish));
    }

    fn sfu_close(&mut self, leave: bool) {
        self.sfu_active = false;
        self.sfu_connected_at = None;
        for (_, person) in self.people.iter_mut() {
            person.sfu_seen = false;
            person.sfu_listed_at = None;
            person.layer = None;
            if person.shown == Some(Route::Sfu) {
                // That stream ends: the next one to arrive shows at once.
                person.shown = None;
            }
        }
        self.push(Output::Sfu(SfuOutput::Close { leave }));
    }

    /// Whether `id`'s media counts as arriving along `via`.
    fn carried(&self, id: &str, via: Route, now_ms: u64) -> bool {
        let Some(person) = self.people.get(id) else {
            return false;
        };
        let silent_since = match via {
            Route::Sfu if self.sfu_active => {
                if person.sfu_seen {
                    return true;
                }
                person
                    .sfu_listed_at
                    .zip(self.sfu_connected_at)
                    .map(|(a, b)| a.max(b))
            }
            Route::Mesh => {
                if person.mesh_seen && self.peers.contains_key(id) {
                    return true;
                }
                self.peers.get(id).and_then(|p| p.connected_at)
            }
            _ => None,
        };
        silent_since.is_some_and(|at| at + SILENT_PATH_MS <= now_ms)
    }

    /// The move between mesh and SFU, make before break: each tile
    /// switches to the route's path once that carries the person, they
    /// are told, and the old path closes once both sides have moved.
    fn advance(&mut self, now_ms: u64) {
        if !self.sfu_offered {
            return;
        }
        let ids: Vec<String> = self.people.keys().cloned().collect();
        for id in &ids {
            let want = self.route;
            let other = if want == Route::Sfu {
                Route::Mesh
            } else {
                Route::Sfu
            };
            let shown = self.people.get(id).and_then(|p| p.shown);
            // The tile moves to the route's path once it carries them
            // (or to the other one, if that is all there is).
            let target = if self.carried(id, want, now_ms) {
                Some(want)
            } else if shown.is_none() && self.carried(id, other, now_ms) {
                Some(other)
            } else {
                None
            };
            if let Some(target) = target.filter(|t| shown != Some(*t)) {
                if let Some(person) = self.people.get_mut(id) {
                    person.shown = Some(target);
                }
                self.push(Output::Show {
                    id: id.clone(),
                    via: target,
                });
                self.status(id, PeerStatus::Connected);
            }
            let Some(person) = self.people.get(id) else {
                continue;
            };
            if let Some(shown) = person.shown {
                if person.told != Some(shown) && self.carried(id, shown, now_ms) {
                    if let Some(person) = self.people.get_mut(id) {
                        person.told = Some(shown);
                    }
                    self.push(Output::Tell {
                        to: id.clone(),
                        body: Body::Receiving { via: shown },
                    });
                }
            }
            // Both sides on the SFU: the direct connection goes.
            let person = self.people.get(id).cloned().unwrap_or_default();
            if want == Route::Sfu
                && person.shown == Some(Route::Sfu)
                && person.told == Some(Route::Sfu)
                && person.they_receive == Some(Route::Sfu)
                && self.peers.remove(id).is_some()
            {
                if let Some(person) = self.people.get_mut(id) {
                    person.mesh_seen = false;
                }
                self.push(Output::Log(
                    Level::Info,
                    format!(
                        "peercall: {id} reaches us through the SFU: closing the direct connection"
                    ),
                ));
                self.push(Output::Disconnect { id: id.clone() });
                self.limit_all();
            }
        }
        // Everyone directly, both ways: the SFU connections go.
        let all_direct = self.people.values().all(|p| {
            p.shown == Some(Route::Mesh)
                && p.told == Some(Route::Mesh)
                && p.they_receive == Some(Route::Mesh)
        });
        if self.route == Route::Mesh && self.sfu_active && all_direct {
            self.push(Output::Log(
                Level::Info,
                "peercall: everyone reaches us directly again: leaving the SFU".into(),
            ));
            self.sfu_close(true);
        }
    }

    /// Sends a control-channel message to `id`: on the channel when it is
    /// open, through the relay when the relay carries it and there is
    /// none (the room is on the SFU), else when the channel opens.
    fn send_control(&mut self, id: &str, message: Message) {
        match self.peers.get_mut(id) {
            Some(p) if p.control_open => self.push(Output::Send {
                id: id.to_owned(),
                message,
            }),
            _ if self.sfu_offered => self.push(Output::Tell {
                to: id.to_owned(),
                body: Body::Control {
                    data: channel::encode(&message),
                },
            }),
            Some(p) => p.outbox.push(message),
            None => {}
        }
    }

    fn push(&mut self, output: Output) {
        self.out.push_back(output);
    }

    fn ui(&mut self, action: CallAction) {
        self.push(Output::Ui(action));
    }

    fn warn(&mut self, message: String) {
        self.ui(CallAction::Warning(message));
    }

    fn status(&mut self, id: &str, status: PeerStatus) {
        self.ui(CallAction::Status {
            id: id.to_owned(),
            status,
        });
    }

    fn signal(&mut self, to: &str, signal: Signal) {
        self.push(Output::Signal {
            to: to.to_owned(),
            signal,
        });
    }

    fn warn_setup(&mut self) {
        if let Some(warning) = self.setup.warning() {
            self.warn(warning);
        }
    }

    fn credentials_stale(&self, now_ms: u64) -> bool {
        matches!(self.setup.credentials,
            Credentials::Fetched { expires_at } if ice::needs_refresh(expires_at, now_ms / 1000))
    }

    /// Fetches credentials again if ours are about to expire; says whether.
    fn refresh_stale_credentials(&mut self, now_ms: u64) -> bool {
        let stale = self.credentials_stale(now_ms);
        if let (true, Some(url)) = (stale, self.credentials_url.clone()) {
            self.push(Output::FetchCredentials { url });
        }
        stale
    }

    /// Makes the connection to `id` unless there is one, with fresh
    /// credentials if ours went stale.
    fn ensure_peer(&mut self, id: &str, now_ms: u64) {
        if self.peers.contains_key(id) {
            return;
        }
        self.refresh_stale_credentials(now_ms);
        let polite = Negotiation::new(&self.me, id).is_polite();
        self.peers.insert(
            id.to_owned(),
            PeerCall {
                state: ConnectionState::Connecting,
                disconnected_at: None,
                sending: !polite,
                restarted: false,
                gathering: Gathering::default(),
                failure_told: false,
                signaling_lost: false,
                control_open: false,
                outbox: Vec::new(),
                connected_at: None,
            },
        );
        self.push(Output::Connect {
            id: id.to_owned(),
            send: !polite,
        });
        self.limit_all();
    }

    fn drop_peer(&mut self, id: &str) {
        if self.peers.remove(id).is_some() {
            self.push(Output::Disconnect { id: id.to_owned() });
            self.limit_all();
        }
    }

    /// Restarts ICE with `id`, with fresh credentials if ours went stale.
    fn restart(&mut self, id: &str, now_ms: u64) {
        if !self.peers.contains_key(id) {
            return;
        }
        let refreshed = self.refresh_stale_credentials(now_ms);
        if let Some(p) = self.peers.get_mut(id) {
            p.restarted = true;
            p.gathering = Gathering::default();
        }
        // The servers are read when this is carried out, after the fetch.
        self.push(Output::RestartIce {
            id: id.to_owned(),
            new_servers: refreshed,
        });
    }

    /// Tells the person the connection with `id` failed, and why (once).
    fn explain_failure(&mut self, id: &str, now_ms: u64) {
        let Some(p) = self.peers.get_mut(id) else {
            return;
        };
        if std::mem::replace(&mut p.failure_told, true) {
            return;
        }
        let why = ice::explain(&self.setup, &p.gathering, now_ms / 1000);
        let g = &p.gathering;
        let line = format!(
            "peercall: ICE with {id} failed: {why:?}; gathered {} host, {} srflx, {} relay \
             candidates (complete: {}), {} ICE server errors{}",
            g.host,
            g.srflx,
            g.relay,
            g.complete,
            g.errors.len(),
            g.errors
                .first()
                .map(|e| format!(", first {} {} {}", e.url, e.code, e.text))
                .unwrap_or_default(),
        );
        self.push(Output::Log(Level::Warn, line));
        self.ui(CallAction::IceFailed {
            id: id.to_owned(),
            why,
        });
    }

    /// The upload budget for the room's size now.
    fn budget(&self) -> Budget {
        let screen = self.sending.video() == VideoSource::Screen;
        crate::mesh::budget(self.peers.len() + 1, screen)
    }

    fn limit_video(&mut self, id: &str) {
        if self.peers.get(id).is_some_and(|p| p.sending) {
            let budget = self.budget();
            self.push(Output::LimitVideo {
                id: id.to_owned(),
                budget,
            });
        }
    }

    fn limit_all(&mut self) {
        let ids: Vec<String> = self.peers.keys().cloned().collect();
        for id in ids {
            self.limit_video(&id);
        }
    }

    fn control_text(&mut self, id: &str, text: &str) {
        match channel::parse(text) {
            Ok(Message::Media {
                audio,
                video,
                screen,
            }) => self.ui(CallAction::RemoteMedia {
                id: id.to_owned(),
                media: RemoteMedia {
                    audio,
                    video,
                    screen,
                },
            }),
            Ok(Message::Chat {
                id: msg,
                text,
                sent_at,
                private,
            }) => self.ui(CallAction::Chat {
                from: Some(id.to_owned()),
                id: msg,
                text,
                sent_at,
                private_with: private.then(|| id.to_owned()),
            }),
            Ok(other) => self.push(Output::Log(
                Level::Warn,
                format!(
                    "peercall: unexpected on the control channel: {}",
                    channel::encode(&other)
                ),
            )),
            Err(e) => self.push(Output::Log(
                Level::Warn,
                format!("peercall: from {id} on the control channel: {e}"),
            )),
        }
    }
}

#[cfg(test)]
#[path = "call_tests.rs"]
mod tests;
