//! The call: one signaling client and one [`Peer`] per other person in the
//! room, driven by one task so that every negotiation step runs in order.
//!
//! The call starts while the camera is still starting: joining the room,
//! the TURN credentials, the offer/answer and ICE all run meanwhile, so the
//! other person's video can show before our own camera is on. Peers are
//! created when the room says someone is there. The impolite side (the
//! smaller id) gets ready to send at once (`sendrecv` audio and video, with
//! our tracks or none yet, and the control data channel), so its
//! `negotiationneeded` makes the first offer; the polite side does the same
//! when that offer arrives, just before answering. Both joining at once
//! therefore needs no rollback (which left Chromium's ICE gathering stuck
//! in the e2e tests); later collisions, from renegotiation, are resolved by
//! [`Negotiation`]. Everything that changes what we send later (the camera
//! arriving, mute, camera off, a shared screen, another device) goes onto
//! the senders with `replaceTrack`: no renegotiation, so the other side's
//! picture is never disturbed; the control channel tells the other side
//! (`media`), and carries chat. Files go over channels of their own
//! ([`crate::web::transfer`]). What the UI needs comes out as
//! [`CallUpdate`]s; what it asks for goes in through [`Call`]'s methods.
//!
//! Before the first peer connection the task asks the relay for TURN
//! credentials (in parallel with the WebSocket connecting) and adds them to
//! the configured ICE servers; stale ones are fetched again before a new
//! connection or an ICE restart. Each connection's gathered candidates and
//! server errors are kept so a failure can be explained ([`crate::ice`]).
//! ICE restarts on `failed`, and after [`DISCONNECTED_RESTART_MS`] of
//! `disconnected`. While the relay is away the connections carry on; a peer
//! the relay reports gone (or that went silent) is kept while its media
//! still flows.

use std::collections::HashMap;

use std::rc::Rc;

use futures::channel::mpsc;
use futures::StreamExt;
use wasm_bindgen::JsCast;
use web_sys::{MediaStream, MediaStreamTrack};

use crate::channel::Message;
use crate::config::{CallConfig, IceServer};
use crate::controls::{Sending, VideoSource};
use crate::ice::{self, Credentials, Gathering, Grant, IceSetup};
use crate::negotiation::{Negotiation, OnCandidate, OnDescription};
use crate::room::{Event, Gone, Signal, Timing};
use crate::state::{CallAction, PeerStatus, RemoteMedia};
use crate::web::channel::{Channel, ChannelEvent, Queue};
use crate::web::page;
use crate::web::peer::{debug_register, debug_unregister, ConnectionState, Peer, PeerEvent};
use crate::web::signaling::{random_peer_id, Options, SignalingClient, Update};
use crate::web::transfer;

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
}

/// What the UI asks of a running call.
enum Command {
    Local(MediaStream, Vec<MediaStreamTrack>),
    Sending(Sending),
    Screen(Option<MediaStreamTrack>),
    Chat(String, Option<String>),
    SendFile(web_sys::File, Option<String>),
    CancelTransfer { id: String, peer: String },
    RestartIce(String),
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
        relay_url: String,
        room: String,
        name: Option<String>,
        on_update: impl Fn(CallUpdate) + 'static,
    ) -> Result<Self, String> {
        let me = random_peer_id()?;
        let outgoing = MediaStream::new().map_err(|_| "cannot make a MediaStream".to_owned())?;
        let credentials_url = config.credentials_url_for(&relay_url);
        let (signaling, updates) = SignalingClient::start(Options {
            url: relay_url,
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
        // the console and the end-to-end tests.
        let restart_hook = {
            let commands = commands.clone();
            wasm_bindgen::closure::Closure::<dyn Fn(String)>::new(move |id: String| {
                let _ = commands.unbounded_send(Command::RestartIce(id));
            })
        };
        crate::web::peer::debug_set("restartIce", restart_hook.as_ref());
        wasm_bindgen_futures::spawn_local(run(
            Session {
                me,
                room,
                servers: config.ice_servers.clone(),
                setup: IceSetup::new(
                    &config.ice_servers,
                    config.relay_only,
                    Credentials::NotOffered,
                ),
                config,
                credentials_url,
                local: None,
                outgoing,
                sending: Sending::default(),
                screen: None,
                signaling,
                peers: HashMap::new(),
                transfers: HashMap::new(),
                peer_tx,
                on_update: Rc::new(on_update),
                ended: false,
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

struct PeerSession {
    peer: Peer,
    negotiation: Negotiation,
    /// Chat messages waiting for the control channel to open.
    outbox: Vec<Message>,
    /// Bumped on every connection state change, so a stale
    /// [`PeerEvent::CheckDisconnected`] is ignored.
    state_changes: u32,
    /// Our tracks are on this connection.
    sending: bool,
    restarted: bool,
    /// Local candidates and server errors since the last (re)start.
    gathering: Gathering,
    /// Told the person this connection failed.
    failure_told: bool,
    /// The relay said its signaling dropped while media still flowed; if
    /// the media fails too, the peer is gone.
    signaling_lost: bool,
}

struct Session {
    me: String,
    room: String,
    config: CallConfig,
    /// The configured ICE servers plus the relay's TURN credentials.
    servers: Vec<IceServer>,
    setup: IceSetup,
    credentials_url: Option<String>,
    /// Our camera and microphone, once they are on.
    local: Option<MediaStream>,
    /// What the other side sees our media as (the msid).
    outgoing: MediaStream,
    /// Mute, camera, screen.
    sending: Sending,
    /// The shared screen.
    screen: Option<MediaStreamTrack>,
    signaling: SignalingClient,
    peers: HashMap<String, PeerSession>,
    /// Running transfers by (transfer id, peer id): where to send a cancel.
    transfers: HashMap<(String, String), mpsc::UnboundedSender<ChannelEvent>>,
    peer_tx: mpsc::UnboundedSender<(String, PeerEvent)>,
    on_update: Rc<dyn Fn(CallUpdate)>,
    /// Turned away (the room is full): the call ends.
    ended: bool,
    _restart_hook: wasm_bindgen::closure::Closure<dyn Fn(String)>,
}

async fn run(
    mut s: Session,
    mut updates: mpsc::UnboundedReceiver<Update>,
    mut peer_events: mpsc::UnboundedReceiver<(String, PeerEvent)>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    hung_up: futures::channel::oneshot::Receiver<()>,
) {
    let mut hung_up = futures::FutureExt::fuse(hung_up);
    // The socket connects meanwhile; its updates wait in the channel.
    s.fetch_credentials().await;
    if let Some(warning) = s.setup.warning() {
        s.emit(CallAction::Warning(warning));
    }
    loop {
        futures::select! {
            update = updates.next() => match update {
                Some(update) => {
                    s.on_signaling(update).await;
                    if s.ended {
                        break;
                    }
                }
                None => break,
            },
            event = peer_events.next() => {
                if let Some((id, event)) = event {
                    s.on_peer_event(&id, event).await;
                }
            }
            command = commands.next() => {
                if let Some(command) = command {
                    s.on_command(command).await;
                }
            }
            _ = hung_up => break,
        }
    }
    s.signaling.leave();
    for (_, transfer) in s.transfers.drain() {
        let _ = transfer.unbounded_send(ChannelEvent::LocalCancel);
    }
    for (id, _) in s.peers.drain() {
        debug_unregister(&id);
    }
    crate::web::peer::debug_set("restartIce", &wasm_bindgen::JsValue::UNDEFINED);
    // Received files live as long as the call.
    crate::web::spool::remove_call_dir(&s.me).await;
}

/// What the person sees of a connection state (nothing once closed).
fn status_of(state: ConnectionState) -> Option<PeerStatus> {
    match state {
        ConnectionState::Connecting => Some(PeerStatus::Connecting),
        ConnectionState::Connected => Some(PeerStatus::Connected),
        ConnectionState::Disconnected => Some(PeerStatus::Reconnecting),
        ConnectionState::Failed => Some(PeerStatus::Failed),
        ConnectionState::Closed => None,
    }
}

/// A short random id for a chat message or a file transfer (64 bits, hex).
fn short_id() -> Result<String, String> {
    crate::web::page::random_128_bits().map(|bits| crate::room::peer_id(bits)[..16].to_owned())
}

/// How long a connection may stay `disconnected` before we restart ICE.
const DISCONNECTED_RESTART_MS: u32 = 4_000;

/// Unix time in seconds.
fn now_s() -> u64 {
    (js_sys::Date::now() / 1000.0) as u64
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
                Err(e) => (Credentials::Unavailable(e), None),
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

impl Session {
    fn emit(&self, action: CallAction) {
        (self.on_update)(CallUpdate::State(action));
    }

    /// Fetches TURN credentials (if a URL is configured) and makes the ICE
    /// servers the configured ones plus those.
    async fn fetch_credentials(&mut self) {
        let Some(url) = &self.credentials_url else {
            return;
        };
        let (credentials, grant) = fetch_grant(url, &self.me, &self.room).await;
        self.servers = self.config.ice_servers.clone();
        if let Some(grant) = grant {
            self.servers.extend(grant.servers);
        }
        self.setup = IceSetup::new(&self.servers, self.config.relay_only, credentials);
    }

    /// Fetches new credentials if the ones we have are about to expire;
    /// says whether it did.
    async fn refresh_stale_credentials(&mut self) -> bool {
        match self.setup.credentials {
            Credentials::Fetched { expires_at } if ice::needs_refresh(expires_at, now_s()) => {
                self.fetch_credentials().await;
                true
            }
            _ => false,
        }
    }

    /// Restarts ICE with `id`, with fresh credentials if ours went stale.
    async fn restart(&mut self, id: &str) {
        let refreshed = self.refresh_stale_credentials().await;
        let (servers, relay_only) = (&self.servers, self.config.relay_only);
        if let Some(p) = self.peers.get_mut(id) {
            if refreshed {
                p.peer.set_ice_servers(servers, relay_only);
            }
            p.restarted = true;
            p.gathering = Gathering::default();
            p.peer.restart_ice();
        }
    }

    /// The tracks to send now: the camera's or the screen's, unless muted
    /// or off.
    fn tracks(&self) -> (Option<MediaStreamTrack>, Option<MediaStreamTrack>) {
        let first = |kind: &str| {
            let local = self.local.as_ref()?;
            let tracks = if kind == "audio" {
                local.get_audio_tracks()
            } else {
                local.get_video_tracks()
            };
            tracks.get(0).dyn_into::<MediaStreamTrack>().ok()
        };
        let audio = first("audio");
        let camera = first("video");
        // Disabled tracks too, so the local side agrees (and a muted
        // microphone shows as muted in the browser's own indicators).
        if let Some(a) = &audio {
            a.set_enabled(self.sending.mic);
        }
        if let Some(v) = &camera {
            v.set_enabled(self.sending.camera);
        }
        let video = match self.sending.video() {
            VideoSource::Camera => camera,
            VideoSource::Screen => self.screen.clone(),
            VideoSource::Off => None,
        };
        (audio.filter(|_| self.sending.mic), video)
    }

    /// Puts what we send now on every connection that sends, with no
    /// renegotiation, and tells everyone; gives the `replaceTrack`s.
    fn apply_sending(&mut self) -> Vec<wasm_bindgen_futures::JsFuture> {
        let (audio, video) = self.tracks();
        let message = self.sending.message();
        let mut swaps = Vec::new();
        for p in self.peers.values().filter(|p| p.sending) {
            swaps.extend(p.peer.set_tracks(audio.as_ref(), video.as_ref()));
            p.peer.send_message(&message);
        }
        self.apply_budget();
        swaps
    }

    /// Caps every video sender for the room's size now
    /// ([`crate::mesh::budget`]): when the size or what we send changes.
    fn apply_budget(&self) {
        for p in self.peers.values() {
            self.apply_budget_to(p);
        }
    }

    /// Caps `p`'s video sender, if it sends: after its negotiation too
    /// (some browsers have no encodings before).
    fn apply_budget_to(&self, p: &PeerSession) {
        if !p.sending {
            return;
        }
        let screen = self.sending.video() == VideoSource::Screen;
        let budget = crate::mesh::budget(self.peers.len() + 1, screen);
        let height = self
            .tracks()
            .1
            .and_then(|t| t.get_settings().get_height())
            .map_or(0, |h| h.max(0) as u32);
        p.peer.limit_video(&budget, height);
    }

    /// Makes `p` send (audio and video transceivers, our tracks on them).
    fn start_sending(&self, p: &mut PeerSession) {
        p.sending = true;
        p.peer.prepare_send(&self.outgoing);
        p.peer.open_control();
        let (audio, video) = self.tracks();
        p.peer.set_tracks(audio.as_ref(), video.as_ref());
    }

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Local(stream, replaced) => {
                self.local = Some(stream);
                let swapped = self.apply_sending();
                wasm_bindgen_futures::spawn_local(async move {
                    futures::future::join_all(swapped).await;
                    for track in replaced {
                        track.stop();
                    }
                });
            }
            Command::Sending(sending) => {
                self.sending = sending;
                self.apply_sending();
            }
            Command::Screen(track) => {
                self.screen = track;
                self.apply_sending();
            }
            Command::Chat(text, to) => self.send_chat(text, to),
            Command::SendFile(file, to) => self.send_file(file, to),
            Command::CancelTransfer { id, peer } => {
                if let Some(t) = self.transfers.get(&(id, peer)) {
                    let _ = t.unbounded_send(ChannelEvent::LocalCancel);
                }
            }
            Command::RestartIce(id) => {
                if self.peers.contains_key(&id) {
                    self.emit(CallAction::Status {
                        id: id.clone(),
                        status: PeerStatus::Reconnecting,
                    });
                    self.restart(&id).await;
                }
            }
        }
    }

    fn send_chat(&mut self, text: String, to: Option<String>) {
        let text = match crate::channel::chat_text(&text) {
            Ok(text) => text,
            Err(why) => {
                self.emit(CallAction::Warning(format!("Message not sent: {why}.")));
                return;
            }
        };
        let id = match short_id() {
            Ok(id) => id,
            Err(e) => return self.emit(CallAction::Warning(e)),
        };
        let sent_at = js_sys::Date::now() as u64;
        let message = Message::Chat {
            id: id.clone(),
            text: text.clone(),
            sent_at,
            private: to.is_some(),
        };
        if to.as_ref().is_some_and(|to| !self.peers.contains_key(to)) {
            self.emit(CallAction::Warning(
                "Message not sent: that person has left the call.".into(),
            ));
            return;
        }
        if self.peers.is_empty() {
            self.emit(CallAction::Warning(
                "Nobody else is in the call yet: your message will not be seen.".into(),
            ));
        }
        let recipients = self
            .peers
            .iter_mut()
            .filter(|(id, _)| to.as_ref().is_none_or(|to| to == *id));
        for (_, p) in recipients {
            if !p.peer.send_message(&message) {
                // Before the channel opens: it goes when it does.
                p.outbox.push(message.clone());
            }
        }
        self.emit(CallAction::Chat {
            from: None,
            id,
            text,
            sent_at,
            private_with: to,
        });
    }

    fn send_file(&mut self, file: web_sys::File, to: Option<String>) {
        let targets: Vec<(String, web_sys::RtcPeerConnection)> = self
            .peers
            .iter()
            .filter(|(id, _)| to.as_ref().is_none_or(|to| to == *id))
            .filter(|(_, p)| p.peer.control_open())
            .map(|(id, p)| (id.clone(), p.peer.raw().clone()))
            .collect();
        if targets.is_empty() {
            self.emit(CallAction::Warning(
                "Nobody is connected to send the file to yet.".into(),
            ));
            return;
        }
        let id = match short_id() {
            Ok(id) => id,
            Err(e) => return self.emit(CallAction::Warning(e)),
        };
        for (peer, pc) in targets {
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
        self.transfers
            .insert((id.to_owned(), peer.to_owned()), events.tx.clone());
        let on_update = self.on_update.clone();
        Rc::new(move |view| on_update(CallUpdate::State(CallAction::Transfer(view))))
    }

    /// Shows the connection to `id` as it is: after a negotiation (an ICE
    /// restart that kept the connection up fires no state change).
    fn sync_status(&self, id: &str) {
        let Some(p) = self.peers.get(id) else {
            return;
        };
        if let Some(status) = status_of(p.peer.connection_state()) {
            self.emit(CallAction::Status {
                id: id.to_owned(),
                status,
            });
        }
    }

    /// The control channel of `id` opened, or said something.
    fn on_control(&mut self, id: &str, event: ChannelEvent) {
        let Some(p) = self.peers.get_mut(id) else {
            return;
        };
        match event {
            ChannelEvent::Open => {
                p.peer.send_message(&self.sending.message());
                for message in std::mem::take(&mut p.outbox) {
                    p.peer.send_message(&message);
                }
            }
            ChannelEvent::Text(text) => match crate::channel::parse(&text) {
                Ok(Message::Media {
                    audio,
                    video,
                    screen,
                }) => self.emit(CallAction::RemoteMedia {
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
                }) => self.emit(CallAction::Chat {
                    from: Some(id.to_owned()),
                    id: msg,
                    text,
                    sent_at,
                    private_with: private.then(|| id.to_owned()),
                }),
                Ok(other) => web_sys::console::warn_1(
                    &format!("peercall: unexpected on the control channel: {other:?}").into(),
                ),
                Err(e) => web_sys::console::warn_1(
                    &format!("peercall: from {id} on the control channel: {e}").into(),
                ),
            },
            ChannelEvent::Binary(_) => web_sys::console::warn_1(
                &format!("peercall: binary data from {id} on the control channel, dropped").into(),
            ),
            ChannelEvent::BufferedLow | ChannelEvent::Closed | ChannelEvent::LocalCancel => {}
        }
    }

    /// Tells the person the connection with `id` failed, and why.
    fn explain_failure(&mut self, id: &str) {
        let Some(p) = self.peers.get_mut(id) else {
            return;
        };
        if std::mem::replace(&mut p.failure_told, true) {
            return;
        }
        let why = ice::explain(&self.setup, &p.gathering, now_s());
        web_sys::console::warn_1(
            &format!(
                "peercall: ICE with {id} failed: {why:?}, gathered {:?}",
                p.gathering
            )
            .into(),
        );
        self.emit(CallAction::IceFailed {
            id: id.to_owned(),
            why,
        });
    }

    /// Creates the connection to `id` unless there is one, with fresh
    /// credentials if ours went stale.
    async fn ensure_peer(&mut self, id: &str) {
        if self.peers.contains_key(id) {
            return;
        }
        self.refresh_stale_credentials().await;
        let tx = self.peer_tx.clone();
        let key = id.to_owned();
        match Peer::new(&self.servers, self.config.relay_only, move |event| {
            let _ = tx.unbounded_send((key.clone(), event));
        }) {
            Ok(peer) => {
                debug_register(id, &peer);
                (self.on_update)(CallUpdate::Connection {
                    id: id.to_owned(),
                    pc: peer.raw().clone(),
                });
                let negotiation = Negotiation::new(&self.me, id);
                let polite = negotiation.is_polite();
                let mut p = PeerSession {
                    peer,
                    negotiation,
                    outbox: Vec::new(),
                    state_changes: 0,
                    sending: false,
                    restarted: false,
                    gathering: Gathering::default(),
                    failure_told: false,
                    signaling_lost: false,
                };
                if !polite {
                    self.start_sending(&mut p);
                }
                self.peers.insert(id.to_owned(), p);
                self.apply_budget();
            }
            Err(message) => self.emit(CallAction::PeerError {
                id: id.to_owned(),
                message,
            }),
        }
    }

    fn drop_peer(&mut self, id: &str) {
        if self.peers.remove(id).is_some() {
            debug_unregister(id);
            self.apply_budget();
        }
        // Its transfers end as their channels close with the connection.
        self.transfers.retain(|(_, peer), _| peer != id);
    }

    async fn on_signaling(&mut self, update: Update) {
        match update {
            Update::Connected => {
                page::mark("relay-open");
                self.emit(CallAction::RelayConnected)
            }
            Update::Disconnected {
                reason,
                retry_in_ms,
            } => self.emit(CallAction::RelayLost {
                reason,
                retry_in_ms,
            }),
            Update::Closed => {}
            Update::Room(event) => match event {
                Event::Joined { id, name } => {
                    if let Some(p) = self.peers.get_mut(&id) {
                        p.signaling_lost = false;
                    }
                    self.ensure_peer(&id).await;
                    self.emit(CallAction::Joined { id, name });
                }
                Event::Left { id, why } => {
                    // A peer whose relay connection dropped (or that went
                    // silent while the relay was away) may still be
                    // connected to us; keep that call.
                    let still_connected = matches!(why, Gone::Disconnected | Gone::TimedOut)
                        && self.peers.get_mut(&id).is_some_and(|p| {
                            p.signaling_lost = true;
                            p.peer.connection_state() == ConnectionState::Connected
                        });
                    if !still_connected {
                        self.drop_peer(&id);
                        self.emit(CallAction::Left { id, why });
                    }
                }
                Event::Signal { from, signal } => {
                    self.ensure_peer(&from).await;
                    self.on_signal(&from, signal).await;
                }
                Event::Full { people } => {
                    // The room said goodbye for us; no call to make (the
                    // connections close as the call ends).
                    self.ended = true;
                    self.emit(CallAction::RoomFull { people });
                }
                Event::RelayError { code, message } => {
                    // Refused at the door: nothing more to do here.
                    self.ended |= crate::state::ends_the_call(&code);
                    self.emit(CallAction::Refused { code, message })
                }
                Event::PeerError {
                    from,
                    code,
                    message,
                } => self.emit(CallAction::PeerError {
                    id: from,
                    message: format!("{code}: {message}"),
                }),
                Event::Welcomed => page::mark("joined"),
                Event::Ignored(_) => {}
            },
        }
    }

    async fn on_signal(&mut self, from: &str, signal: Signal) {
        let Some(mut p) = self.peers.remove(from) else {
            return;
        };
        let description = matches!(signal, Signal::Offer { .. } | Signal::Answer { .. });
        let result = self.on_signal_for(&mut p, signal).await;
        self.peers.insert(from.to_owned(), p);
        if description && result.is_ok() {
            self.sync_status(from);
            if let Some(p) = self.peers.get(from) {
                self.apply_budget_to(p);
            }
        }
        match result {
            Ok(Some(answer)) => self.signaling.signal(from, answer),
            Ok(None) => {}
            Err(message) => self.emit(CallAction::PeerError {
                id: from.to_owned(),
                message,
            }),
        }
    }

    async fn on_signal_for(
        &self,
        p: &mut PeerSession,
        signal: Signal,
    ) -> Result<Option<Signal>, String> {
        match signal {
            Signal::Offer { sdp, .. } => self.on_description(p, true, &sdp).await,
            Signal::Answer { sdp } => self.on_description(p, false, &sdp).await,
            Signal::Candidate(candidate) => match p.negotiation.on_candidate(candidate) {
                OnCandidate::Add(c) => match p.peer.add_candidate(&c).await {
                    Err(e) if p.negotiation.candidate_error_matters() => Err(e),
                    _ => Ok(None),
                },
                OnCandidate::Queued => Ok(None),
            },
            Signal::EndOfCandidates => Ok(None),
        }
    }

    /// Applies a remote description as perfect negotiation says; gives the
    /// answer to send, if one is due.
    async fn on_description(
        &self,
        p: &mut PeerSession,
        is_offer: bool,
        sdp: &str,
    ) -> Result<Option<Signal>, String> {
        let state = p.peer.signaling_state();
        match p.negotiation.on_description(is_offer, state) {
            OnDescription::Ignore => Ok(None),
            OnDescription::Apply { answer } => {
                if let Err(e) = p.peer.set_remote(is_offer, sdp).await {
                    p.negotiation.remote_failed();
                    return Err(e);
                }
                for candidate in p.negotiation.remote_applied() {
                    if let Err(e) = p.peer.add_candidate(&candidate).await {
                        web_sys::console::warn_1(&format!("peercall: {e}").into());
                    }
                }
                if !answer {
                    page::mark("negotiated");
                    return Ok(None);
                }
                if !p.sending {
                    self.start_sending(p);
                }
                let (_, sdp) = p.peer.set_local().await?;
                page::mark("negotiated");
                Ok(Some(Signal::Answer { sdp }))
            }
        }
    }

    async fn on_peer_event(&mut self, id: &str, event: PeerEvent) {
        let Some(p) = self.peers.get_mut(id) else {
            return;
        };
        if let PeerEvent::State(_) = &event {
            p.state_changes += 1;
        }
        match event {
            PeerEvent::NegotiationNeeded => {
                p.negotiation.offer_started();
                let made = p.peer.set_local().await;
                p.negotiation.offer_finished();
                let ice_restart = std::mem::take(&mut p.restarted);
                match made {
                    Ok((true, sdp)) => {
                        self.signaling
                            .signal(id, Signal::Offer { sdp, ice_restart });
                        if let Some(p) = self.peers.get(id) {
                            self.apply_budget_to(p);
                        }
                    }
                    // Not an offer: the state moved on meanwhile.
                    Ok((false, _)) => {}
                    Err(message) => self.emit(CallAction::PeerError {
                        id: id.to_owned(),
                        message,
                    }),
                }
            }
            PeerEvent::Candidate(Some(c)) => {
                p.gathering.add(&c.candidate);
                self.signaling.signal(id, Signal::Candidate(c));
            }
            PeerEvent::Candidate(None) => {
                p.gathering.complete = true;
                self.signaling.signal(id, Signal::EndOfCandidates);
                if ice::hopeless(&self.setup, &p.gathering) {
                    // Nothing to try: say why now rather than when the
                    // browser gives up (or never, with no candidates).
                    if !p.restarted && self.refresh_stale_credentials().await {
                        self.restart(id).await;
                    } else {
                        self.explain_failure(id);
                    }
                }
            }
            PeerEvent::ServerError(e) => {
                web_sys::console::warn_1(
                    &format!(
                        "peercall: ICE server {} answered {} {}",
                        e.url, e.code, e.text
                    )
                    .into(),
                );
                p.gathering.errors.push(e);
            }
            PeerEvent::Track(stream) => (self.on_update)(CallUpdate::RemoteStream {
                id: id.to_owned(),
                stream,
            }),
            PeerEvent::Control(event) => self.on_control(id, event),
            PeerEvent::FileChannel {
                id: transfer,
                channel,
                events,
            } => {
                let on_view = self.transfer_started(&transfer, id, &events);
                wasm_bindgen_futures::spawn_local(transfer::receive(
                    channel,
                    events.rx,
                    transfer,
                    id.to_owned(),
                    self.me.clone(),
                    on_view,
                ));
            }
            PeerEvent::CheckDisconnected(seen) => {
                // Nothing changed since it went `disconnected`.
                let still = p.peer.connection_state() == ConnectionState::Disconnected;
                if seen == p.state_changes && still && !p.restarted {
                    web_sys::console::info_1(
                        &format!("peercall: {id} still disconnected: restarting ICE").into(),
                    );
                    self.restart(id).await;
                }
            }
            PeerEvent::State(ConnectionState::Failed | ConnectionState::Closed)
                if p.signaling_lost =>
            {
                // Gone from the relay earlier, and now the media is gone too.
                self.drop_peer(id);
                self.emit(CallAction::Left {
                    id: id.to_owned(),
                    why: Gone::Disconnected,
                });
            }
            PeerEvent::State(ConnectionState::Failed) if !p.restarted => {
                // One ICE restart (its offer says so), with fresh
                // credentials if ours went stale.
                self.restart(id).await;
                self.emit(CallAction::Status {
                    id: id.to_owned(),
                    status: PeerStatus::Reconnecting,
                });
            }
            PeerEvent::State(ConnectionState::Failed) => self.explain_failure(id),
            PeerEvent::State(state) => {
                if state == ConnectionState::Connected {
                    p.failure_told = false;
                    page::mark("connected");
                }
                if state == ConnectionState::Disconnected {
                    // ICE may find the path again by itself; if it has not
                    // after a few seconds, restart it.
                    let (tx, key, seen) = (self.peer_tx.clone(), id.to_owned(), p.state_changes);
                    wasm_bindgen_futures::spawn_local(async move {
                        gloo_timers::future::TimeoutFuture::new(DISCONNECTED_RESTART_MS).await;
                        let _ = tx.unbounded_send((key, PeerEvent::CheckDisconnected(seen)));
                    });
                }
                if let Some(status) = status_of(state) {
                    self.emit(CallAction::Status {
                        id: id.to_owned(),
                        status,
                    });
                }
            }
        }
    }
}
