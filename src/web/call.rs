//! The call: one signaling client and one [`Peer`] per other person in the
//! room, driven by one task so that every negotiation step runs in order.
//!
//! The call starts while the camera is still starting: joining the room,
//! the TURN credentials, the offer/answer and ICE all run meanwhile, so the
//! other person's video can show before our own camera is on. Peers are
//! created when the room says someone is there. The impolite side (the
//! smaller id) adds its tracks at once (or, with no camera yet, gets ready
//! to send audio and video with no tracks yet), so its `negotiationneeded`
//! makes the first offer; the polite side does the same when that offer
//! arrives, just before answering. Both joining at once therefore needs no
//! rollback (which left Chromium's ICE gathering stuck in the e2e tests);
//! later collisions, from renegotiation, are resolved by [`Negotiation`].
//! Tracks that come later go onto the senders with `replaceTrack`: no
//! renegotiation, so the other side's picture, already arriving, is never
//! disturbed. What the UI needs comes out as [`CallUpdate`]s.
//!
//! Before the first peer connection the task asks the relay for TURN
//! credentials (in parallel with the WebSocket connecting) and adds them to
//! the configured ICE servers; stale ones are fetched again before a new
//! connection or an ICE restart. Each connection's gathered candidates and
//! server errors are kept so a failure can be explained ([`crate::ice`]).

use std::collections::HashMap;

use futures::channel::mpsc;
use futures::StreamExt;
use web_sys::MediaStream;

use crate::config::{CallConfig, IceServer};
use crate::ice::{self, Credentials, Gathering, Grant, IceSetup};
use crate::negotiation::{Negotiation, OnCandidate, OnDescription};
use crate::room::{Event, Gone, Signal, Timing};
use crate::state::{CallAction, PeerStatus};
use crate::web::page;
use crate::web::peer::{debug_register, debug_unregister, ConnectionState, Peer, PeerEvent};
use crate::web::signaling::{random_peer_id, Options, SignalingClient, Update};

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

/// A running call; dropping it (or [`Call::hang_up`]) leaves the room and
/// closes every peer connection.
pub struct Call {
    hang_up: Option<futures::channel::oneshot::Sender<()>>,
    media: mpsc::UnboundedSender<MediaStream>,
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
            room,
            me: me.clone(),
            name,
            timing: Timing::default(),
        });
        let (hang_up, hung_up) = futures::channel::oneshot::channel();
        let (media, media_rx) = mpsc::unbounded();
        wasm_bindgen_futures::spawn_local(run(
            Session {
                me,
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
                signaling,
                peers: HashMap::new(),
                on_update: Box::new(on_update),
            },
            updates,
            media_rx,
            hung_up,
        ));
        Ok(Self {
            hang_up: Some(hang_up),
            media,
        })
    }

    /// Our camera and microphone are on: send them to everyone.
    pub fn set_local(&self, stream: MediaStream) {
        let _ = self.media.unbounded_send(stream);
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
    config: CallConfig,
    /// The configured ICE servers plus the relay's TURN credentials.
    servers: Vec<IceServer>,
    setup: IceSetup,
    credentials_url: Option<String>,
    /// Our camera and microphone, once they are on.
    local: Option<MediaStream>,
    /// What the other side sees our media as (the msid) when a connection
    /// is ready to send before the camera is on.
    outgoing: MediaStream,
    signaling: SignalingClient,
    peers: HashMap<String, PeerSession>,
    on_update: Box<dyn Fn(CallUpdate)>,
}

async fn run(
    mut s: Session,
    mut updates: mpsc::UnboundedReceiver<Update>,
    mut media: mpsc::UnboundedReceiver<MediaStream>,
    hung_up: futures::channel::oneshot::Receiver<()>,
) {
    let (peer_tx, mut peer_events) = mpsc::unbounded::<(String, PeerEvent)>();
    let mut hung_up = futures::FutureExt::fuse(hung_up);
    // The socket connects meanwhile; its updates wait in the channel.
    s.fetch_credentials().await;
    if let Some(warning) = s.setup.warning() {
        s.emit(CallAction::Warning(warning));
    }
    loop {
        futures::select! {
            update = updates.next() => match update {
                Some(update) => s.on_signaling(update, &peer_tx).await,
                None => break,
            },
            event = peer_events.next() => {
                if let Some((id, event)) = event {
                    s.on_peer_event(&id, event).await;
                }
            }
            stream = media.next() => {
                if let Some(stream) = stream {
                    s.on_local_media(stream);
                }
            }
            _ = hung_up => break,
        }
    }
    s.signaling.leave();
    for (id, _) in s.peers.drain() {
        debug_unregister(&id);
    }
}

/// Unix time in seconds.
fn now_s() -> u64 {
    (js_sys::Date::now() / 1000.0) as u64
}

/// Asks `url` for TURN credentials for peer `me`, giving up after 5 s.
async fn fetch_grant(url: &str, me: &str) -> (Credentials, Option<Grant>) {
    use futures::FutureExt;
    let sep = if url.contains('?') { '&' } else { '?' };
    let full = format!("{url}{sep}id={me}");
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
        let (credentials, grant) = fetch_grant(url, &self.me).await;
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

    /// Our media is on (or came back after a retry): every connection
    /// that is sending gets its tracks, with no renegotiation. A polite side
    /// that has not had an offer yet adds them when it answers.
    fn on_local_media(&mut self, stream: MediaStream) {
        for p in self.peers.values().filter(|p| p.sending) {
            p.peer.replace_tracks(&stream);
        }
        self.local = Some(stream);
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
    async fn ensure_peer(
        &mut self,
        id: &str,
        peer_tx: &mpsc::UnboundedSender<(String, PeerEvent)>,
    ) {
        if self.peers.contains_key(id) {
            return;
        }
        self.refresh_stale_credentials().await;
        let tx = peer_tx.clone();
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
                let sending = !negotiation.is_polite();
                if sending {
                    match &self.local {
                        Some(local) => peer.send(local),
                        None => peer.prepare_send(&self.outgoing),
                    }
                }
                self.peers.insert(
                    id.to_owned(),
                    PeerSession {
                        peer,
                        negotiation,
                        sending,
                        restarted: false,
                        gathering: Gathering::default(),
                        failure_told: false,
                        signaling_lost: false,
                    },
                );
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
        }
    }

    async fn on_signaling(
        &mut self,
        update: Update,
        peer_tx: &mpsc::UnboundedSender<(String, PeerEvent)>,
    ) {
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
                    self.ensure_peer(&id, peer_tx).await;
                    self.emit(CallAction::Joined { id, name });
                }
                Event::Left { id, why } => {
                    // A peer whose relay connection dropped may still be
                    // connected to us; keep that call.
                    let still_connected = why == Gone::Disconnected
                        && self.peers.get_mut(&id).is_some_and(|p| {
                            p.signaling_lost = true;
                            p.peer.raw().connection_state()
                                == web_sys::RtcPeerConnectionState::Connected
                        });
                    if !still_connected {
                        self.drop_peer(&id);
                        self.emit(CallAction::Left { id, why });
                    }
                }
                Event::Signal { from, signal } => {
                    self.ensure_peer(&from, peer_tx).await;
                    self.on_signal(&from, signal).await;
                }
                Event::RelayError { code, message } => {
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
        let Some(p) = self.peers.get_mut(from) else {
            return;
        };
        let media = (self.local.as_ref(), &self.outgoing);
        let result = match signal {
            Signal::Offer { sdp, .. } => Self::on_description(p, media, true, &sdp).await,
            Signal::Answer { sdp } => Self::on_description(p, media, false, &sdp).await,
            Signal::Candidate(candidate) => match p.negotiation.on_candidate(candidate) {
                OnCandidate::Add(c) => match p.peer.add_candidate(&c).await {
                    Err(e) if p.negotiation.candidate_error_matters() => Err(e),
                    _ => Ok(None),
                },
                OnCandidate::Queued => Ok(None),
            },
            Signal::EndOfCandidates => Ok(None),
        };
        match result {
            Ok(Some(answer)) => self.signaling.signal(from, answer),
            Ok(None) => {}
            Err(message) => self.emit(CallAction::PeerError {
                id: from.to_owned(),
                message,
            }),
        }
    }

    /// Applies a remote description as perfect negotiation says; gives the
    /// answer to send, if one is due.
    async fn on_description(
        p: &mut PeerSession,
        (local, outgoing): (Option<&MediaStream>, &MediaStream),
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
                    p.sending = true;
                    match local {
                        Some(local) => p.peer.send(local),
                        None => p.peer.prepare_send(outgoing),
                    }
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
        match event {
            PeerEvent::NegotiationNeeded => {
                p.negotiation.offer_started();
                let made = p.peer.set_local().await;
                p.negotiation.offer_finished();
                let ice_restart = std::mem::take(&mut p.restarted);
                match made {
                    Ok((true, sdp)) => self
                        .signaling
                        .signal(id, Signal::Offer { sdp, ice_restart }),
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
                let status = match state {
                    ConnectionState::Connecting => PeerStatus::Connecting,
                    ConnectionState::Connected => PeerStatus::Connected,
                    ConnectionState::Disconnected => PeerStatus::Reconnecting,
                    ConnectionState::Failed => PeerStatus::Failed,
                    ConnectionState::Closed => return,
                };
                self.emit(CallAction::Status {
                    id: id.to_owned(),
                    status,
                });
            }
        }
    }
}
