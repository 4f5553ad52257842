//! The call's browser loop: one signaling client and one [`Peer`] per other
//! person in the room, driven by one task so that every negotiation step
//! runs in order.
//!
//! Every decision is [`CallCore`]'s (`peercall_core::call`): this loop
//! turns what the relay, the peer connections, the timer and the UI report
//! into its inputs, and carries out its [`Output`]s on the browser
//! objects: the connections, the signaling client, the TURN request. What
//! the UI needs comes out as [`CallUpdate`]s; what it asks for goes in
//! through [`Call`]'s methods.
//!
//! Everything that changes what we send (the camera arriving, mute, camera
//! off, a shared screen, another device) goes onto the senders with
//! `replaceTrack`: no renegotiation, so the other side's picture is never
//! disturbed. Files go over channels of their own
//! ([`crate::web::transfer`]).

use std::rc::Rc;

use futures::channel::mpsc;
use futures::StreamExt;
use wasm_bindgen::JsCast;
use web_sys::{MediaStream, MediaStreamTrack};

use crate::call::{
    ById, CallCore, ConnectionState, Level, Negotiated, Output, PeerInput, RelayInput, SfuLeg,
    SfuOutput,
};
use crate::config::CallConfig;
use crate::controls::{Sending, VideoSource};
use crate::ice::{self, Credentials, Grant};
use crate::media::MediaKind;
use crate::negotiation::{Negotiation, OnCandidate, OnDescription};
use crate::phone::PhoneOutput;
use crate::room::{Signal, Timing};
use crate::state::CallAction;
use crate::web::channel::{Channel, ChannelEvent, Queue};
use crate::web::page;
use crate::web::peer::{debug_register, debug_unregister, Peer, PeerEvent};
use crate::web::signaling::{now_ms, random_peer_id, Options, SignalingClient, Update};
use crate::web::{transfer, JsError};
use peercall_protocol::{Body, Route, SfuStream, RELAY_ID};

/// The event keys of the two SFU connections (not valid peer ids).
const SFU_PUBLISHER: &str = "relay/publish";
const SFU_SUBSCRIBER: &str = "relay/subscribe";

/// What the call tells the UI: changes to the call screen's pure state,
/// and the media handles that stay out of it.
#[derive(Clone, Debug, PartialEq)]
pub enum CallUpdate {
    /// A change for [`CallState`](crate::state::CallState).
    State(CallAction),
    /// A connection to a peer exists (for the stats panel).
    Connection {
        /// Peer id.
        id: String,
        /// The connection.
        pc: web_sys::RtcPeerConnection,
    },
    /// A peer's media arrived.
    RemoteStream {
        /// Peer id.
        id: String,
        /// Its stream.
        stream: MediaStream,
    },
    /// The phone call's media arrived (`Some`) or its connection closed.
    PhoneStream(Option<MediaStream>),
    /// The SFU connection we receive on, and whose audio each of its
    /// m-lines carries (mid, peer id), for the active speaker; `None`
    /// once it is closed.
    SfuReceiving(Option<(web_sys::RtcPeerConnection, Vec<(String, String)>)>),
}

/// What the UI asks of a running call.
enum Command {
    Local(MediaStream, Vec<MediaStreamTrack>),
    Sending(Sending),
    Screen(Option<MediaStreamTrack>),
    Chat(String, Option<String>),
    SendFile(web_sys::File, Option<String>),
    CancelTransfer {
        id: String,
        peer: String,
    },
    RestartIce(String),
    PhoneDial(String),
    PhoneHangUp,
    PhoneDismiss,
    PhoneDigits(String),
    /// Time to look at the tiles' sizes (for the SFU's simulcast layers).
    MeasureTiles,
}

/// A running call; dropping it (or [`Call::hang_up`]) leaves the room and
/// closes every peer connection.
pub struct Call {
    hang_up: Option<futures::channel::oneshot::Sender<()>>,
    commands: mpsc::UnboundedSender<Command>,
}

impl Call {
    /// Joins `room`; our media follows with [`Call::set_local`].
    pub fn start(
        config: CallConfig,
        relays: Vec<String>,
        room: String,
        name: Option<String>,
        on_update: impl Fn(CallUpdate) + 'static,
    ) -> Result<Self, JsError> {
        crate::web::page::mark("call");
        let me = random_peer_id()?;
        let outgoing = MediaStream::new().map_err(|e| JsError::new("new MediaStream()", &e))?;
        // Credentials come from the relay in use (Update::Connected); the
        // first one listed until then.
        let credentials_url = config.credentials_url_for(relays.first().map_or("", String::as_str));
        let (signaling, updates) = SignalingClient::start(Options {
            urls: relays,
            room: room.clone(),
            me: me.clone(),
            name,
            timing: Timing::default(),
            capacity: config.max_people,
        });
        let (hang_up, hung_up) = futures::channel::oneshot::channel();
        let (commands, command_rx) = mpsc::unbounded();
        let (peer_tx, peer_events) = mpsc::unbounded();
        // `peercall.restartIce(id)`: the ICE restart path on demand, for
        // the console and the end-to-end tests (`"sfu"`: both SFU
        // connections).
        let restart_hook = {
            let commands = commands.clone();
            wasm_bindgen::closure::Closure::<dyn Fn(String)>::new(move |id: String| {
                let _ = commands.unbounded_send(Command::RestartIce(id));
            })
        };
        crate::web::peer::debug_set("restartIce", restart_hook.as_ref());
        let core = CallCore::new(&me, &room, config, credentials_url);
        // The tiles' sizes, for the SFU's simulcast layers.
        let measure = {
            let commands = commands.clone();
            gloo_timers::callback::Interval::new(1_000, move || {
                let _ = commands.unbounded_send(Command::MeasureTiles);
            })
        };
        wasm_bindgen_futures::spawn_local(run(
            Shell {
                core,
                local: None,
                outgoing,
                screen: None,
                signaling,
                peers: ById::default(),
                transfers: Vec::new(),
                peer_tx,
                on_update: Rc::new(on_update),
                swaps: Vec::new(),
                phone: None,
                sfu: Sfu::default(),
                _measure: measure,
                _restart_hook: restart_hook,
            },
            updates,
            peer_events,
            command_rx,
            hung_up,
        ));
        Ok(Self {
            hang_up: Some(hang_up),
            commands,
        })
    }

    fn command(&self, command: Command) {
        let _ = self.commands.unbounded_send(command);
    }

    /// Our camera and microphone are on (or one of them was switched to
    /// another device): send them to everyone.
    pub fn set_local(&self, stream: MediaStream) {
        self.command(Command::Local(stream, Vec::new()));
    }

    /// A device was switched: `stream` has the new track, and `replaced`
    /// are the old ones, stopped once every sender has let go of them.
    pub fn switch_local(&self, stream: MediaStream, replaced: Vec<MediaStreamTrack>) {
        self.command(Command::Local(stream, replaced));
    }

    /// Mute, camera off, screen sharing: what to send.
    pub fn set_sending(&self, sending: Sending) {
        self.command(Command::Sending(sending));
    }

    /// The shared screen's track (with [`Sending::screen`]), or `None`.
    pub fn set_screen(&self, track: Option<MediaStreamTrack>) {
        self.command(Command::Screen(track));
    }

    /// Sends a chat message to everyone, or only to peer `to`.
    pub fn chat(&self, text: String, to: Option<String>) {
        self.command(Command::Chat(text, to));
    }

    /// Sends a file to everyone connected, or only to peer `to`.
    pub fn send_file(&self, file: web_sys::File, to: Option<String>) {
        self.command(Command::SendFile(file, to));
    }

    /// Cancels transfer `id` with `peer`.
    pub fn cancel_transfer(&self, id: String, peer: String) {
        self.command(Command::CancelTransfer { id, peer });
    }

    /// Says goodbye and closes every peer connection.
    /// Calls a phone (a number or a SIP address) through the relay.
    pub fn phone_dial(&self, address: String) {
        self.command(Command::PhoneDial(address));
    }

    /// Hangs the phone call up.
    pub fn phone_hang_up(&self) {
        self.command(Command::PhoneHangUp);
    }

    /// Closes the phone call's screen (hanging up if it still runs).
    pub fn phone_dismiss(&self) {
        self.command(Command::PhoneDismiss);
    }

    /// Sends keypad `digits` as telephone events.
    pub fn phone_digits(&self, digits: String) {
        self.command(Command::PhoneDigits(digits));
    }

    pub fn hang_up(&mut self) {
        if let Some(tx) = self.hang_up.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.hang_up();
    }
}

/// The browser side of one connection: the `RTCPeerConnection` and the
/// perfect-negotiation state that drives it.
struct PeerSession {
    peer: Peer,
    negotiation: Negotiation,
    /// Its remote media, once it arrived.
    stream: Option<MediaStream>,
    /// Waits for its video to get media.
    unmute: Option<gloo_events::EventListener>,
}

/// The two SFU connections (PROTOCOL.md 5.14) and what their media is.
#[derive(Default)]
struct Sfu {
    publisher: Option<Peer>,
    subscriber: Option<Peer>,
    /// Whose media each m-line of the latest subscription carries.
    streams: Vec<SfuStream>,
    /// Per peer, the stream its media from the SFU is in.
    media: ById<MediaStream>,
    /// The publish offer waits for ICE gathering to complete.
    offer_pending: bool,
    /// The subscription answer waits for ICE gathering to complete.
    answer_pending: bool,
    /// An ICE restart of the publisher / subscriber: its offer / answer
    /// waits for the new gathering's end (the old one's `complete` may
    /// still show).
    offer_restarting: bool,
    answer_restarting: bool,
    /// Wait for video tracks to get media.
    unmutes: Vec<gloo_events::EventListener>,
}

/// The loop's state: the call's decisions ([`CallCore`]) and the browser
/// objects they are carried out on.
struct Shell {
    core: CallCore,
    /// Our camera and microphone, once they are on.
    local: Option<MediaStream>,
    /// What the other side sees our media as (the msid).
    outgoing: MediaStream,
    /// The shared screen.
    screen: Option<MediaStreamTrack>,
    signaling: SignalingClient,
    peers: ById<PeerSession>,
    /// Running transfers by (transfer id, peer id): where to send a cancel.
    transfers: Vec<(String, String, mpsc::UnboundedSender<ChannelEvent>)>,
    peer_tx: mpsc::UnboundedSender<(String, PeerEvent)>,
    on_update: Rc<dyn Fn(CallUpdate)>,
    /// The `replaceTrack`s of the outputs carried out last.
    swaps: Vec<wasm_bindgen_futures::JsFuture>,
    /// The phone call's own connection (to the relay's gateway), whose
    /// events come keyed [`RELAY_ID`].
    phone: Option<Peer>,
    /// The SFU connections, whose events come keyed [`SFU_PUBLISHER`] and
    /// [`SFU_SUBSCRIBER`].
    sfu: Sfu,
    _measure: gloo_timers::callback::Interval,
    _restart_hook: wasm_bindgen::closure::Closure<dyn Fn(String)>,
}

async fn run(
    mut s: Shell,
    mut updates: mpsc::UnboundedReceiver<Update>,
    mut peer_events: mpsc::UnboundedReceiver<(String, PeerEvent)>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    hung_up: futures::channel::oneshot::Receiver<()>,
) {
    use futures::FutureExt;
    let mut hung_up = hung_up.fuse();
    // The socket connects meanwhile; its updates wait in the channel.
    s.core.start();
    s.carry_out().await;
    loop {
        let deadline = s.core.poll_timeout();
        let timer = async move {
            match deadline {
                Some(at) => {
                    let wait = at.saturating_sub(now_ms()).min(u64::from(u32::MAX));
                    gloo_timers::future::TimeoutFuture::new(wait as u32).await
                }
                None => futures::future::pending::<()>().await,
            }
        }
        .fuse();
        futures::pin_mut!(timer);
        futures::select! {
            update = updates.next() => match update {
                Some(update) => s.on_signaling(update),
                None => break,
            },
            event = peer_events.next() => {
                if let Some((id, event)) = event {
                    s.on_peer_event(&id, event);
                }
            }
            command = commands.next() => {
                if let Some(command) = command {
                    s.on_command(command).await;
                }
            }
            () = timer => s.core.handle_timeout(now_ms()),
            _ = hung_up => break,
        }
        s.carry_out().await;
        if s.core.ended() {
            break;
        }
    }
    s.signaling.leave();
    for (_, _, transfer) in s.transfers.drain(..) {
        let _ = transfer.unbounded_send(ChannelEvent::LocalCancel);
    }
    for (id, _) in s.peers.drain() {
        debug_unregister(&id);
    }
    crate::web::peer::debug_set("restartIce", &wasm_bindgen::JsValue::UNDEFINED);
    // Received files live as long as the call.
    crate::web::spool::remove_call_dir(s.core.me()).await;
}

/// A short random id for a chat message or a file transfer (64 bits, hex).
fn short_id() -> Result<String, JsError> {
    crate::web::page::random_128_bits().map(|bits| crate::room::peer_id(bits)[..16].to_owned())
}

/// Asks `url` for TURN credentials for peer `me` in `room`, giving up
/// after 5 s. (The relay names us in the username only once we are in the
/// room: PROTOCOL.md 8.)
async fn fetch_grant(url: &str, me: &str, room: &str) -> (Credentials, Option<Grant>) {
    use futures::FutureExt;
    let sep = if url.contains('?') { '&' } else { '?' };
    let full = format!("{url}{sep}id={me}&room={room}");
    let ask = async {
        let res = gloo_net::http::Request::get(&full).send().await?;
        let status = res.status();
        let text = res.text().await?;
        Ok::<_, gloo_net::Error>((status, text))
    };
    let timeout = gloo_timers::future::TimeoutFuture::new(5_000);
    futures::select! {
        answer = ask.fuse() => match answer {
            Ok((200, text)) => match ice::parse_grant(&text) {
                Ok(grant) => (Credentials::Fetched { expires_at: grant.expires_at }, Some(grant)),
                Err(e) => (Credentials::Unavailable(e.to_string()), None),
            },
            // This relay hands out no credentials.
            Ok((404, _)) => (Credentials::NotOffered, None),
            Ok((status, _)) => (Credentials::Unavailable(format!("HTTP {status} from {url}")), None),
            // No HTTP there at all (a plain WebSocket relay, or CORS).
            Err(e) => {
                web_sys::console::info_1(&format!("peercall: no TURN credentials from {url}: {e}").into());
                (Credentials::NotOffered, None)
            }
        },
        () = timeout.fuse() => (
            Credentials::Unavailable(format!("{url} did not answer within 5 s")),
            None,
        ),
    }
}

impl Shell {
    fn emit(&self, action: CallAction) {
        (self.on_update)(CallUpdate::State(action));
    }

    /// Carries out what the call decided, in order, until it has nothing
    /// more to say.
    async fn carry_out(&mut self) {
        self.swaps.clear();
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::FetchCredentials { url } => {
                    let (credentials, grant) =
                        fetch_grant(&url, self.core.me(), self.core.room()).await;
                    let servers = grant.map(|g| g.servers).unwrap_or_default();
                    self.core.credentials(credentials, servers);
                }
                Output::Negotiate {
                    id,
                    signal,
                    send_when_answering,
                } => self.negotiate_step(id, signal, send_when_answering).await,
                Output::Offer { id, ice_restart } => self.offer(id, ice_restart).await,
                Output::Phone(output) => self.phone_output(output).await,
                Output::Sfu(output) => self.sfu_output(output).await,
                other => self.carry_out_now(other),
            }
        }
    }

    /// Applies `signal` from `id`, sends the answer if one is due, and
    /// tells the core how it went.
    async fn negotiate_step(&mut self, id: String, signal: Signal, send_when_answering: bool) {
        let Some(mut p) = self.peers.remove(&id) else {
            return;
        };
        let result = self.negotiate(&mut p, signal, send_when_answering).await;
        let state = p.peer.connection_state();
        self.peers.insert(id.clone(), p);
        let negotiated = match result {
            Ok(step) => {
                if let Some(answer) = step.answer {
                    self.signaling.signal(&id, answer);
                }
                Negotiated {
                    description: step.description,
                    started_sending: step.started_sending,
                    state,
                    error: None,
                }
            }
            Err((started_sending, e)) => Negotiated {
                description: false,
                started_sending,
                state,
                error: Some(e.to_string()),
            },
        };
        self.core.negotiated(&id, negotiated);
    }

    /// Makes and sends an offer to `id`, and tells the core how it went.
    async fn offer(&mut self, id: String, ice_restart: bool) {
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        p.negotiation.offer_started();
        let made = p.peer.set_local().await;
        p.negotiation.offer_finished();
        let result = match made {
            Ok((true, sdp)) => {
                self.signaling
                    .signal(&id, Signal::Offer { sdp, ice_restart });
                Ok(true)
            }
            // Not an offer: the state moved on meanwhile.
            Ok((false, _)) => Ok(false),
            Err(e) => Err(e.to_string()),
        };
        self.core.offered(&id, result);
    }

    /// Carries out what the phone call needs.
    async fn phone_output(&mut self, output: PhoneOutput) {
        match output {
            PhoneOutput::MakeOffer => {
                let tx = self.peer_tx.clone();
                let made = Peer::new(self.core.ice_servers(), self.core.relay_only(), move |e| {
                    let _ = tx.unbounded_send((RELAY_ID.to_owned(), e));
                });
                let peer = match made {
                    Ok(peer) => peer,
                    Err(e) => return self.core.phone_offer(Err(e.to_string())),
                };
                peer.prepare_send(&self.outgoing);
                let (audio, video) = self.phone_tracks();
                drop(peer.set_tracks(audio.as_ref(), video.as_ref()));
                // `peercall.phone`: its getStats() for the console and tests.
                crate::web::peer::debug_set("phone", peer.raw());
                // The offer goes once gathering is complete
                // (`PeerEvent::Candidate(None)`): the gateway takes no trickle.
                let made = peer.set_local().await;
                self.phone = Some(peer);
                if let Err(e) = made {
                    self.core.phone_offer(Err(e.to_string()));
                }
            }
            PhoneOutput::Dial { address, sdp } => {
                self.signaling.to_relay(Body::PhoneCall { address, sdp });
            }
            PhoneOutput::Answer(sdp) => {
                let Some(peer) = &self.phone else {
                    return;
                };
                if let Err(e) = peer.set_remote(false, &sdp).await {
                    web_sys::console::warn_1(&format!("peercall: phone answer: {e}").into());
                    self.core.phone_connection(ConnectionState::Failed);
                }
            }
            PhoneOutput::HangUp => self.signaling.to_relay(Body::PhoneHangup),
            PhoneOutput::Close => {
                if self.phone.take().is_some() {
                    (self.on_update)(CallUpdate::PhoneStream(None));
                }
            }
            PhoneOutput::SetTracks => {
                let (audio, video) = self.phone_tracks();
                if let Some(peer) = &self.phone {
                    self.swaps
                        .extend(peer.set_tracks(audio.as_ref(), video.as_ref()));
                }
            }
            PhoneOutput::View(_) => {}
        }
    }

    /// Makes one of the SFU connections, its events keyed `key`.
    fn sfu_peer(&self, key: &'static str) -> Result<Peer, JsError> {
        let tx = self.peer_tx.clone();
        Peer::new(self.core.ice_servers(), self.core.relay_only(), move |e| {
            let _ = tx.unbounded_send((key.to_owned(), e));
        })
    }

    /// Carries out what the SFU connections need.
    async fn sfu_output(&mut self, output: SfuOutput) {
        match output {
            SfuOutput::Publish
            | SfuOutput::RestartIce {
                leg: SfuLeg::Publisher,
            } => {
                let restart = output != SfuOutput::Publish;
                if restart {
                    // The same connection, new ICE credentials.
                    let Some(peer) = &self.sfu.publisher else {
                        return;
                    };
                    peer.restart_ice();
                } else {
                    let peer = match self.sfu_peer(SFU_PUBLISHER) {
                        Ok(peer) => peer,
                        Err(e) => return self.sfu_failed(&e.to_string()),
                    };
                    peer.prepare_publish(&self.outgoing);
                    let (audio, video) = self.tracks();
                    drop(peer.set_tracks(audio.as_ref(), video.as_ref()));
                    crate::web::peer::debug_set("sfuPublisher", peer.raw());
                    self.sfu.publisher = Some(peer);
                }
                // The offer goes once gathering is complete: Janus takes
                // no trickle from us.
                let Some(peer) = &self.sfu.publisher else {
                    return;
                };
                let made = peer.set_local().await;
                self.sfu.offer_pending = true;
                self.sfu.offer_restarting = restart;
                if let Err(e) = made {
                    return self.sfu_failed(&e.to_string());
                }
                self.sfu_send_offer(false);
            }
            SfuOutput::Published { sdp } => {
                if let Some(peer) = &self.sfu.publisher {
                    if let Err(e) = peer.set_remote(false, &sdp).await {
                        self.sfu_failed(&format!("the SFU's answer: {e}"));
                    }
                }
            }
            SfuOutput::Subscription { sdp, streams } => {
                if self.sfu.subscriber.is_none() {
                    match self.sfu_peer(SFU_SUBSCRIBER) {
                        Ok(peer) => {
                            crate::web::peer::debug_set("sfuSubscriber", peer.raw());
                            self.sfu.subscriber = Some(peer);
                        }
                        Err(e) => return self.sfu_failed(&e.to_string()),
                    }
                }
                // Known before the tracks arrive (they come from the
                // remote description).
                self.sfu.streams = streams;
                // Those no longer in it are gone from the SFU.
                let gone: Vec<String> = self
                    .sfu
                    .media
                    .keys()
                    .filter(|id| !self.sfu.streams.iter().any(|s| s.peer == **id))
                    .cloned()
                    .collect();
                for id in gone {
                    self.sfu.media.remove(&id);
                }
                self.sfu_debug_streams();
                if let Some(peer) = &self.sfu.subscriber {
                    let audio = self
                        .sfu
                        .streams
                        .iter()
                        .filter(|s| s.kind == "audio")
                        .map(|s| (s.mid.clone(), s.peer.clone()))
                        .collect();
                    (self.on_update)(CallUpdate::SfuReceiving(Some((peer.raw().clone(), audio))));
                }
                let Some(peer) = &self.sfu.subscriber else {
                    return;
                };
                // New ICE credentials (our `sfu_restart`): the answer waits
                // for the new gathering.
                let before = peer.raw().remote_description().map(|d| d.sdp());
                self.sfu.answer_restarting = before
                    .as_deref()
                    .and_then(ice::ice_ufrag)
                    .is_some_and(|old| Some(old) != ice::ice_ufrag(&sdp));
                let applied = match peer.set_remote(true, &sdp).await {
                    Ok(()) => peer.set_local().await.map(drop),
                    Err(e) => Err(e),
                };
                if let Err(e) = applied {
                    return self.sfu_failed(&format!("the SFU's offer: {e}"));
                }
                self.sfu.answer_pending = true;
                self.sfu_send_answer(false);
            }
            SfuOutput::RestartIce {
                leg: SfuLeg::Subscriber,
            } => {
                if self.sfu.subscriber.is_some() {
                    self.signaling.to_relay(Body::SfuRestart);
                }
            }
            SfuOutput::Layer { peer, layer } => {
                self.signaling.to_relay(Body::SfuLayer { peer, layer });
            }
            SfuOutput::SetTracks => {
                let (audio, video) = self.tracks();
                if let Some(peer) = &self.sfu.publisher {
                    self.swaps
                        .extend(peer.set_tracks(audio.as_ref(), video.as_ref()));
                }
            }
            SfuOutput::Close { leave } => {
                if self.sfu.subscriber.is_some() {
                    (self.on_update)(CallUpdate::SfuReceiving(None));
                }
                self.sfu = Sfu::default();
                crate::web::peer::debug_set("sfuPublisher", &wasm_bindgen::JsValue::UNDEFINED);
                crate::web::peer::debug_set("sfuSubscriber", &wasm_bindgen::JsValue::UNDEFINED);
                self.sfu_debug_streams();
                if leave {
                    self.signaling.to_relay(Body::SfuLeave);
                }
            }
        }
    }

    /// `peercall.sfuStreams`: the subscription's mids, for the tests.
    fn sfu_debug_streams(&self) {
        let list = js_sys::Array::new();
        for s in &self.sfu.streams {
            let entry = js_sys::Object::new();
            for (key, value) in [("mid", &s.mid), ("peer", &s.peer), ("kind", &s.kind)] {
                let _ = js_sys::Reflect::set(&entry, &key.into(), &value.into());
            }
            list.push(&entry);
        }
        crate::web::peer::debug_set("sfuStreams", &list);
    }

    fn sfu_failed(&mut self, why: &str) {
        self.core.sfu_error(why, now_ms());
    }

    /// Sends the publish offer if it waits and gathering is done (`ended`:
    /// the end of candidates was just told).
    fn sfu_send_offer(&mut self, ended: bool) {
        let Some(peer) = &self.sfu.publisher else {
            return;
        };
        if !self.sfu.offer_pending || !peer.gathered() || (self.sfu.offer_restarting && !ended) {
            return;
        }
        self.sfu.offer_pending = false;
        let ice_restart = std::mem::take(&mut self.sfu.offer_restarting);
        match peer.raw().local_description() {
            Some(d) => self.signaling.to_relay(Body::SfuPublish {
                sdp: d.sdp(),
                ice_restart,
            }),
            None => self.sfu_failed("no local description to publish"),
        }
    }

    /// Sends the subscription answer if it waits and gathering is done.
    fn sfu_send_answer(&mut self, ended: bool) {
        let Some(peer) = &self.sfu.subscriber else {
            return;
        };
        if !self.sfu.answer_pending || !peer.gathered() || (self.sfu.answer_restarting && !ended) {
            return;
        }
        self.sfu.answer_pending = false;
        self.sfu.answer_restarting = false;
        match peer.raw().local_description() {
            Some(d) => self.signaling.to_relay(Body::SfuAnswer { sdp: d.sdp() }),
            None => self.sfu_failed("no local description to answer with"),
        }
    }

    /// What the SFU connections report.
    fn on_sfu_event(&mut self, publisher: bool, event: PeerEvent) {
        match event {
            PeerEvent::Candidate(None) if publisher => self.sfu_send_offer(true),
            PeerEvent::Candidate(None) => self.sfu_send_answer(true),
            PeerEvent::State(state) => {
                let leg = if publisher {
                    SfuLeg::Publisher
                } else {
                    SfuLeg::Subscriber
                };
                self.core.sfu_connection(leg, state, now_ms());
            }
            PeerEvent::Track { stream, track, mid } if !publisher => {
                let Some(peer) = mid
                    .as_ref()
                    .and_then(|mid| self.sfu.streams.iter().find(|s| s.mid == *mid))
                    .map(|s| s.peer.clone())
                else {
                    return;
                };
                // The subscription names each feed's stream (`use_msid`):
                // the browser keeps its audio and video together in it.
                self.sfu.media.insert(peer.clone(), stream);
                if track.kind() == "video" {
                    let listener = self
                        .sfu
                        .subscriber
                        .as_ref()
                        .and_then(|sub| sub.on_unmute(&track, mid.unwrap_or_default()));
                    self.sfu.unmutes.extend(listener);
                }
                self.core.media_arrived(&peer, Route::Sfu, now_ms());
            }
            PeerEvent::Unmuted(mid) if !publisher => {
                let peer = self
                    .sfu
                    .streams
                    .iter()
                    .find(|s| s.mid == mid)
                    .map(|s| s.peer.clone());
                if let Some(peer) = peer {
                    self.core.media_flowing(&peer, Route::Sfu, now_ms());
                }
            }
            _ => {}
        }
    }

    /// What the phone call's connection reports.
    fn on_phone_event(&mut self, event: PeerEvent) {
        let Some(peer) = &self.phone else {
            return;
        };
        match event {
            PeerEvent::Candidate(None) => {
                let sdp = peer.raw().local_description().map(|d| d.sdp());
                self.core
                    .phone_offer(sdp.ok_or_else(|| "no local description".to_owned()));
            }
            PeerEvent::Track { stream, .. } => {
                (self.on_update)(CallUpdate::PhoneStream(Some(stream)))
            }
            PeerEvent::State(state) => self.core.phone_connection(state),
            _ => {}
        }
    }

    /// Carries out an output that needs no waiting.
    #[inline(never)]
    fn carry_out_now(&mut self, output: Output) {
        match output {
            // Carried out by `carry_out`, which waits for them.
            Output::FetchCredentials { .. }
            | Output::Negotiate { .. }
            | Output::Offer { .. }
            | Output::Phone(_)
            | Output::Sfu(_) => {}
            Output::Show { id, via } => {
                let stream = match via {
                    Route::Sfu => self.sfu.media.get(&id).cloned(),
                    _ => self.peers.get(&id).and_then(|p| p.stream.clone()),
                };
                if let Some(stream) = stream {
                    (self.on_update)(CallUpdate::RemoteStream { id, stream });
                }
            }
            Output::Tell { to, body } => self.signaling.to_peer(&to, body),
            Output::Connect { id, send } => self.connect(&id, send),
            Output::Disconnect { id } => {
                if self.peers.remove(&id).is_some() {
                    debug_unregister(&id);
                }
                // Its transfers end as their channels close with the connection.
                self.transfers.retain(|(_, peer, _)| *peer != id);
            }
            Output::Signal { to, signal } => self.signaling.signal(&to, signal),
            Output::RestartIce { id, new_servers } => {
                if let Some(p) = self.peers.get(&id) {
                    if new_servers {
                        p.peer
                            .set_ice_servers(self.core.ice_servers(), self.core.relay_only());
                    }
                    p.peer.restart_ice();
                }
            }
            Output::SetTracks { id } => {
                let (audio, video) = self.tracks();
                if let Some(p) = self.peers.get(&id) {
                    self.swaps
                        .extend(p.peer.set_tracks(audio.as_ref(), video.as_ref()));
                }
            }
            Output::LimitVideo { id, budget } => {
                let height = self
                    .tracks()
                    .1
                    .and_then(|t| t.get_settings().get_height())
                    .map_or(0, |h| h.max(0) as u32);
                if let Some(p) = self.peers.get(&id) {
                    p.peer.limit_video(&budget, height);
                }
            }
            Output::Send { id, message } => {
                if let Some(p) = self.peers.get(&id) {
                    p.peer.send_message(&message);
                }
            }
            Output::Ui(action) => self.emit(action),
            Output::Mark(name) => page::mark(name),
            Output::Log(Level::Info, line) => web_sys::console::info_1(&line.into()),
            Output::Log(Level::Warn, line) => web_sys::console::warn_1(&line.into()),
        }
    }

    /// Makes the connection to `id`; when `send`, it sends at once.
    fn connect(&mut self, id: &str, send: bool) {
        let tx = self.peer_tx.clone();
        let key = id.to_owned();
        let made = Peer::new(
            self.core.ice_servers(),
            self.core.relay_only(),
            move |event| {
                let _ = tx.unbounded_send((key.clone(), event));
            },
        );
        match made {
            Ok(peer) => {
                debug_register(id, &peer);
                (self.on_update)(CallUpdate::Connection {
                    id: id.to_owned(),
                    pc: peer.raw().clone(),
                });
                let mut p = PeerSession {
                    peer,
                    negotiation: Negotiation::new(self.core.me(), id),
                    stream: None,
                    unmute: None,
                };
                if send {
                    self.start_sending(&mut p);
                }
                self.peers.insert(id.to_owned(), p);
            }
            Err(e) => self.core.connection_failed(id, e.to_string()),
        }
    }

    /// Applies `signal` to `p` as perfect negotiation says.
    async fn negotiate(
        &self,
        p: &mut PeerSession,
        signal: Signal,
        send_when_answering: bool,
    ) -> Result<Step, (bool, JsError)> {
        match signal {
            Signal::Offer { sdp, .. } => {
                self.on_description(p, true, &sdp, send_when_answering)
                    .await
            }
            Signal::Answer { sdp } => self.on_description(p, false, &sdp, false).await,
            Signal::Candidate(candidate) => match p.negotiation.on_candidate(candidate) {
                OnCandidate::Add(c) => match p.peer.add_candidate(&c).await {
                    Err(e) if p.negotiation.candidate_error_matters() => Err((false, e)),
                    _ => Ok(Step::default()),
                },
                OnCandidate::Queued => Ok(Step::default()),
            },
            Signal::EndOfCandidates => Ok(Step::default()),
        }
    }

    /// Applies a remote description; gives the answer to send, if one is
    /// due, having started sending first when `send_when_answering`.
    async fn on_description(
        &self,
        p: &mut PeerSession,
        is_offer: bool,
        sdp: &str,
        send_when_answering: bool,
    ) -> Result<Step, (bool, JsError)> {
        let state = p.peer.signaling_state();
        match p.negotiation.on_description(is_offer, state) {
            OnDescription::Ignore => Ok(Step::default()),
            OnDescription::Apply { answer } => {
                if let Err(e) = p.peer.set_remote(is_offer, sdp).await {
                    p.negotiation.remote_failed();
                    return Err((false, e));
                }
                for candidate in p.negotiation.remote_applied() {
                    if let Err(e) = p.peer.add_candidate(&candidate).await {
                        web_sys::console::warn_1(&format!("peercall: {e}").into());
                    }
                }
                if !answer {
                    page::mark("negotiated");
                    return Ok(Step {
                        description: true,
                        ..Step::default()
                    });
                }
                if send_when_answering {
                    self.start_sending(p);
                }
                let (_, sdp) = p
                    .peer
                    .set_local()
                    .await
                    .map_err(|e| (send_when_answering, e))?;
                page::mark("negotiated");
                Ok(Step {
                    description: true,
                    started_sending: send_when_answering,
                    answer: Some(Signal::Answer { sdp }),
                })
            }
        }
    }

    /// The tracks to send now: the camera's or the screen's, unless muted
    /// or off.
    fn tracks(&self) -> (Option<MediaStreamTrack>, Option<MediaStreamTrack>) {
        let sending = self.core.sending();
        let first = |kind: MediaKind| {
            let local = self.local.as_ref()?;
            let tracks = match kind {
                MediaKind::Audio => local.get_audio_tracks(),
                MediaKind::Video => local.get_video_tracks(),
            };
            tracks.get(0).dyn_into::<MediaStreamTrack>().ok()
        };
        let audio = first(MediaKind::Audio);
        let camera = first(MediaKind::Video);
        // Disabled tracks too, so the local side agrees (and a muted
        // microphone shows as muted in the browser's own indicators).
        if let Some(a) = &audio {
            a.set_enabled(sending.mic);
        }
        if let Some(v) = &camera {
            v.set_enabled(sending.camera);
        }
        let video = match sending.video() {
            VideoSource::Camera => camera,
            VideoSource::Screen => self.screen.clone(),
            VideoSource::Off => None,
        };
        (audio.filter(|_| sending.mic), video)
    }

    /// The phone call's tracks: as [`Self::tracks`], except that a muted
    /// microphone stays on the sender, disabled, so it sends silence:
    /// the keypad's telephone events ride on the audio stream and need it
    /// flowing.
    fn phone_tracks(&self) -> (Option<MediaStreamTrack>, Option<MediaStreamTrack>) {
        let (audio, video) = self.tracks();
        let audio = audio.or_else(|| {
            let local = self.local.as_ref()?;
            local.get_audio_tracks().get(0).dyn_into().ok()
        });
        (audio, video)
    }

    /// Makes `p` send (audio and video transceivers, our tracks on them).
    fn start_sending(&self, p: &mut PeerSession) {
        p.peer.prepare_send(&self.outgoing);
        p.peer.open_control();
        let (audio, video) = self.tracks();
        p.peer.set_tracks(audio.as_ref(), video.as_ref());
    }

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Local(stream, replaced) => {
                self.local = Some(stream);
                self.core.media_changed();
                self.carry_out().await;
                let swapped = std::mem::take(&mut self.swaps);
                wasm_bindgen_futures::spawn_local(async move {
                    futures::future::join_all(swapped).await;
                    for track in replaced {
                        track.stop();
                    }
                });
            }
            Command::Sending(sending) => self.core.set_sending(sending),
            Command::Screen(track) => {
                self.screen = track;
                self.core.media_changed();
            }
            Command::Chat(text, to) => match short_id() {
                Ok(id) => self.core.chat(&text, to, id, now_ms()),
                Err(e) => self.emit(CallAction::Warning(format!("Message not sent: {e}."))),
            },
            Command::SendFile(file, to) => self.send_file(file, to),
            Command::CancelTransfer { id, peer } => {
                let running = self
                    .transfers
                    .iter()
                    .find(|(i, p, _)| *i == id && *p == peer);
                if let Some((_, _, t)) = running {
                    let _ = t.unbounded_send(ChannelEvent::LocalCancel);
                }
            }
            Command::RestartIce(id) if id == "sfu" => self.core.restart_sfu_ice(),
            Command::RestartIce(id) => self.core.restart_ice(&id, now_ms()),
            Command::MeasureTiles => {
                if self.sfu.subscriber.is_some() {
                    self.core.tile_heights(&crate::web::dom::tile_heights());
                }
            }
            Command::PhoneDial(address) => {
                if let Err(e) = self.core.phone_dial(&address) {
                    self.emit(CallAction::Warning(e));
                }
            }
            Command::PhoneHangUp => self.core.phone_hang_up(),
            Command::PhoneDismiss => self.core.phone_dismiss(),
            Command::PhoneDigits(digits) => {
                let sent = self.phone.as_ref().is_some_and(|p| p.send_dtmf(&digits));
                if !sent {
                    self.emit(CallAction::Warning(
                        "The keypad does not work in this call (no telephone events).".into(),
                    ));
                }
            }
        }
    }

    fn send_file(&mut self, file: web_sys::File, to: Option<String>) {
        let recipients = self.core.file_recipients(to.as_deref());
        if recipients.is_empty() {
            return;
        }
        let id = match short_id() {
            Ok(id) => id,
            Err(e) => return self.emit(CallAction::Warning(format!("File not sent: {e}."))),
        };
        for peer in recipients {
            let Some(pc) = self.peers.get(&peer).map(|p| p.peer.raw().clone()) else {
                continue;
            };
            let (channel, events) = Channel::file(&pc, &id);
            let on_view = self.transfer_started(&id, &peer, &events);
            wasm_bindgen_futures::spawn_local(transfer::send(
                channel,
                events.rx,
                file.clone(),
                id.clone(),
                peer,
                on_view,
            ));
        }
    }

    /// Keeps where to send a cancel for transfer `id` with `peer`; gives
    /// where its views go.
    fn transfer_started(&mut self, id: &str, peer: &str, events: &Queue) -> transfer::OnView {
        self.transfers.retain(|(i, p, _)| !(i == id && p == peer));
        self.transfers
            .push((id.to_owned(), peer.to_owned(), events.tx.clone()));
        let on_update = self.on_update.clone();
        Rc::new(move |view| on_update(CallUpdate::State(CallAction::Transfer(view))))
    }

    fn on_signaling(&mut self, update: Update) {
        let input = match update {
            Update::Connected { url } => {
                self.core.using_relay(&url);
                RelayInput::Connected
            }
            Update::Disconnected {
                reason,
                retry_in_ms,
            } => RelayInput::Disconnected {
                reason,
                retry_in_ms,
            },
            Update::Closed => return,
            Update::Room(event) => RelayInput::Room(event),
        };
        self.core.relay(input, now_ms());
    }

    fn on_peer_event(&mut self, id: &str, event: PeerEvent) {
        if id == RELAY_ID {
            return self.on_phone_event(event);
        }
        if id == SFU_PUBLISHER || id == SFU_SUBSCRIBER {
            return self.on_sfu_event(id == SFU_PUBLISHER, event);
        }
        let input = match event {
            PeerEvent::NegotiationNeeded => PeerInput::NegotiationNeeded,
            PeerEvent::Candidate(Some(c)) => PeerInput::Candidate(c),
            PeerEvent::Candidate(None) => PeerInput::EndOfCandidates,
            PeerEvent::ServerError(e) => PeerInput::ServerError(e),
            PeerEvent::State(state) => PeerInput::State(state),
            PeerEvent::Control(ChannelEvent::Open) => PeerInput::ControlOpen,
            PeerEvent::Control(ChannelEvent::Closed) => PeerInput::ControlClosed,
            PeerEvent::Control(ChannelEvent::Text(text)) => PeerInput::ControlText(text),
            PeerEvent::Control(ChannelEvent::Binary(_)) => PeerInput::ControlBinary,
            PeerEvent::Control(ChannelEvent::BufferedLow | ChannelEvent::LocalCancel) => return,
            PeerEvent::Track { stream, track, .. } => {
                if let Some(p) = self.peers.get_mut(id) {
                    if track.kind() == "video" {
                        p.unmute = p.peer.on_unmute(&track, id.to_owned());
                    }
                    p.stream = Some(stream);
                    self.core.media_arrived(id, Route::Mesh, now_ms());
                }
                return;
            }
            PeerEvent::Unmuted(_) => {
                if self.peers.contains_key(id) {
                    self.core.media_flowing(id, Route::Mesh, now_ms());
                }
                return;
            }
            PeerEvent::FileChannel {
                id: transfer,
                channel,
                events,
            } => {
                if self.core.has_peer(id) {
                    let on_view = self.transfer_started(&transfer, id, &events);
                    wasm_bindgen_futures::spawn_local(transfer::receive(
                        channel,
                        events.rx,
                        transfer,
                        id.to_owned(),
                        self.core.me().to_owned(),
                        on_view,
                    ));
                }
                return;
            }
        };
        self.core.peer(id, input, now_ms());
    }
}

/// What one negotiation step did.
#[derive(Default)]
struct Step {
    /// A description was applied.
    description: bool,
    /// Sending started before the answer.
    started_sending: bool,
    /// The answer to send.
    answer: Option<Signal>,
}
