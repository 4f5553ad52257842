//! One `RTCPeerConnection`
//! (<https://developer.mozilla.org/en-US/docs/Web/API/RTCPeerConnection>),
//! thinly: built from the configured ICE servers, ready to send before
//! our media exists, its control data channel, its events turned into [`PeerEvent`]s through owned listeners
//! (removed on drop), and its promise methods as `async fn`s with string
//! errors. The decisions are in [`crate::negotiation`]; `web::call` drives it.

use gloo_events::EventListener;
use peercall_protocol::Candidate;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    MediaStream, RtcConfiguration, RtcIceCandidateInit, RtcIceServer, RtcIceTransportPolicy,
    RtcPeerConnection, RtcPeerConnectionIceEvent, RtcPeerConnectionState, RtcSdpType,
    RtcSessionDescriptionInit, RtcSignalingState, RtcTrackEvent,
};

use crate::channel::{file_label_id, Message};
use crate::ice::IceServer;
use crate::ice::ServerError;
use crate::media::MediaKind;
use crate::negotiation::SignalingState;
use crate::web::channel::{Channel, ChannelEvent, Queue};
use crate::web::JsError;

#[wasm_bindgen]
extern "C" {
    /// The two `RTCPeerConnection` methods web-sys lacks.
    type PcExt;

    /// `setLocalDescription()` without an argument: the browser creates the
    /// right offer or answer itself (perfect negotiation needs this form).
    #[wasm_bindgen(method, js_name = setLocalDescription)]
    fn set_local_description_implicit(this: &PcExt) -> js_sys::Promise;

    /// `restartIce()`: the next offer gathers new ICE credentials.
    #[wasm_bindgen(method, js_name = restartIce)]
    fn restart_ice(this: &PcExt);

    /// `RTCDTMFSender`, with the exception `insertDTMF` throws caught
    /// (web-sys declares none) and `canInsertDTMF` (Firefox has none).
    type DtmfExt;

    #[wasm_bindgen(method, getter, js_name = canInsertDTMF)]
    fn can_insert_dtmf(this: &DtmfExt) -> Option<bool>;

    #[wasm_bindgen(method, catch, js_name = insertDTMF)]
    fn insert_dtmf(this: &DtmfExt, tones: &str, duration_ms: u32) -> Result<(), JsValue>;
}

pub use crate::call::ConnectionState;

/// What a peer connection reports.
#[derive(Debug)]
pub enum PeerEvent {
    /// `negotiationneeded`: make an offer.
    NegotiationNeeded,
    /// `icecandidate`: a local candidate to send, or `None` at the end.
    Candidate(Option<Candidate>),
    /// `track`: remote media, as the stream it belongs to, with the
    /// track and its transceiver's mid.
    Track {
        /// The stream it belongs to.
        stream: MediaStream,
        /// The track.
        track: web_sys::MediaStreamTrack,
        /// Its m-line's mid.
        mid: Option<String>,
    },
    /// A remote track of this connection's got media (`unmute`); `key`
    /// is what the listener was made with ([`Peer::on_unmute`]).
    Unmuted(String),
    /// `connectionstatechange`.
    State(ConnectionState),
    /// `icecandidateerror`: a STUN/TURN server failed us (401 for refused
    /// credentials, 701 for no answer).
    ServerError(ServerError),
    /// Something on the control channel ([`Peer::open_control`]).
    Control(ChannelEvent),
    /// The other side opened a file channel for transfer `id`; its events
    /// are already being queued.
    FileChannel {
        /// The transfer id from its label.
        id: String,
        /// The channel.
        channel: Channel,
        /// Its events.
        events: Queue,
    },
}

fn connection_state(pc: &RtcPeerConnection) -> ConnectionState {
    match pc.connection_state() {
        RtcPeerConnectionState::Connected => ConnectionState::Connected,
        RtcPeerConnectionState::Disconnected => ConnectionState::Disconnected,
        RtcPeerConnectionState::Failed => ConnectionState::Failed,
        RtcPeerConnectionState::Closed => ConnectionState::Closed,
        _ => ConnectionState::Connecting,
    }
}

/// A peer connection and its event listeners.
pub struct Peer {
    pc: RtcPeerConnection,
    on_event: std::rc::Rc<dyn Fn(PeerEvent)>,
    control: Option<Channel>,
    _listeners: [EventListener; 6],
}

/// An `RTCConfiguration` with these ICE servers and, if `relay_only`,
/// `iceTransportPolicy: "relay"`.
fn configuration(ice_servers: &[IceServer], relay_only: bool) -> RtcConfiguration {
    let servers = js_sys::Array::new();
    for s in ice_servers {
        let server = RtcIceServer::new();
        let urls: js_sys::Array = s.urls.iter().map(|u| JsValue::from_str(u)).collect();
        server.set_urls(&urls);
        if let Some(u) = &s.username {
            server.set_username(u);
        }
        if let Some(c) = &s.credential {
            server.set_credential(c);
        }
        servers.push(&server);
    }
    let config = RtcConfiguration::new();
    config.set_ice_servers(&servers);
    if relay_only {
        config.set_ice_transport_policy(RtcIceTransportPolicy::Relay);
    }
    config
}

fn js_error(what: &'static str, e: JsValue) -> JsError {
    JsError::new(what, &e)
}

impl Peer {
    /// A connection using `ice_servers` (and only TURN if `relay_only`),
    /// with no tracks yet ([`Peer::prepare_send`] and [`Peer::set_tracks`] add them); `on_event` gets its
    /// events.
    pub fn new(
        ice_servers: &[IceServer],
        relay_only: bool,
        on_event: impl Fn(PeerEvent) + 'static,
    ) -> Result<Self, JsError> {
        let config = configuration(ice_servers, relay_only);
        let pc = RtcPeerConnection::new_with_configuration(&config)
            .map_err(|e| js_error("creating the peer connection", e))?;

        let on_event: std::rc::Rc<dyn Fn(PeerEvent)> = std::rc::Rc::new(on_event);
        let listen = |name: &'static str, f: Box<dyn Fn(&web_sys::Event)>| {
            EventListener::new(&pc, name, move |e| f(e))
        };
        let (h1, h2, h3, h4, h5, h6) = (
            on_event.clone(),
            on_event.clone(),
            on_event.clone(),
            on_event.clone(),
            on_event.clone(),
            on_event.clone(),
        );
        let pc_for_state = pc.clone();
        let listeners = [
            listen(
                "negotiationneeded",
                Box::new(move |_| h1(PeerEvent::NegotiationNeeded)),
            ),
            listen(
                "icecandidate",
                Box::new(move |e| {
                    let Some(e) = e.dyn_ref::<RtcPeerConnectionIceEvent>() else {
                        return;
                    };
                    let candidate = e.candidate().and_then(|c| {
                        let json = js_sys::JSON::stringify(&c.to_json()).ok()?;
                        Candidate::from_json(&String::from(json)).ok()
                    });
                    // An empty candidate string is the end marker too.
                    h2(PeerEvent::Candidate(
                        candidate.filter(|c| !c.candidate.is_empty()),
                    ));
                }),
            ),
            listen(
                "track",
                Box::new(move |e| {
                    let Some(e) = e.dyn_ref::<RtcTrackEvent>() else {
                        return;
                    };
                    let stream = match e.streams().get(0).dyn_into::<MediaStream>() {
                        Ok(stream) => stream,
                        // A track sent without a stream: give it one.
                        Err(_) => match MediaStream::new() {
                            Ok(s) => {
                                s.add_track(&e.track());
                                s
                            }
                            Err(_) => return,
                        },
                    };
                    h3(PeerEvent::Track {
                        stream,
                        track: e.track(),
                        mid: e.transceiver().mid(),
                    });
                }),
            ),
            listen(
                "connectionstatechange",
                Box::new(move |_| h4(PeerEvent::State(connection_state(&pc_for_state)))),
            ),
            listen(
                "icecandidateerror",
                Box::new(move |e| {
                    // RTCPeerConnectionIceErrorEvent, read by name (web-sys
                    // gates it behind an unstable feature).
                    let get = |key: &str| js_sys::Reflect::get(e, &key.into()).ok();
                    let url = get("url").and_then(|v| v.as_string()).unwrap_or_default();
                    let code = get("errorCode").and_then(|v| v.as_f64()).unwrap_or(0.0) as u16;
                    let text = get("errorText")
                        .and_then(|v| v.as_string())
                        .unwrap_or_default();
                    h5(PeerEvent::ServerError(ServerError { url, code, text }));
                }),
            ),
            listen(
                "datachannel",
                Box::new(move |e| {
                    let Some(e) = e.dyn_ref::<web_sys::RtcDataChannelEvent>() else {
                        return;
                    };
                    let dc = e.channel();
                    match file_label_id(&dc.label()) {
                        Some(id) => {
                            // Listen now: frames may follow at once.
                            let id = id.to_owned();
                            let (channel, events) = Channel::queued(dc);
                            h6(PeerEvent::FileChannel {
                                id,
                                channel,
                                events,
                            });
                        }
                        None => {
                            web_sys::console::warn_1(
                                &format!("peercall: closing unknown data channel {:?}", dc.label())
                                    .into(),
                            );
                            dc.close();
                        }
                    }
                }),
            ),
        ];
        Ok(Self {
            pc,
            on_event,
            control: None,
            _listeners: listeners,
        })
    }

    /// Creates the control channel (negotiated, so both sides call this:
    /// the side that offers first before its offer, the other when it
    /// answers); its events come as [`PeerEvent::Control`].
    pub fn open_control(&mut self) {
        if self.control.is_none() {
            let on_event = self.on_event.clone();
            self.control = Some(Channel::control(&self.pc, move |e| {
                on_event(PeerEvent::Control(e))
            }));
        }
    }

    /// Sends `message` on the control channel; false if it is not open.
    pub fn send_message(&self, message: &Message) -> bool {
        self.control.as_ref().is_some_and(|c| c.send(message))
    }

    /// Whether the control channel is open.
    pub fn control_open(&self) -> bool {
        self.control.as_ref().is_some_and(Channel::is_open)
    }

    /// Makes this connection send audio and video before there is anything
    /// to send (our camera is still starting): `sendrecv` transceivers whose
    /// tracks come later through [`Peer::replace_tracks`], which needs no
    /// renegotiation. Between a remote offer and our answer it turns the
    /// offer's transceivers to `sendrecv`; otherwise it adds two, which
    /// makes `negotiationneeded` fire. `stream` names our media in the SDP
    /// (msid), so the other side gets audio and video as one stream.
    pub fn prepare_send(&self, stream: &MediaStream) {
        let mut have = Vec::new();
        for t in self.pc.get_transceivers().iter() {
            let Ok(t) = t.dyn_into::<web_sys::RtcRtpTransceiver>() else {
                continue;
            };
            let Some(kind) = MediaKind::parse(&t.receiver().track().kind()) else {
                continue;
            };
            if t.stopped() || have.contains(&kind) {
                continue;
            }
            t.set_direction(web_sys::RtcRtpTransceiverDirection::Sendrecv);
            // web-sys does not have `setStreams`.
            crate::web::call_if_present(&t.sender(), "setStreams", stream);
            have.push(kind);
        }
        for kind in MediaKind::ALL {
            if have.contains(&kind) {
                continue;
            }
            let init = web_sys::RtcRtpTransceiverInit::new();
            init.set_direction(web_sys::RtcRtpTransceiverDirection::Sendrecv);
            init.set_streams(&js_sys::Array::of1(stream));
            self.pc
                .add_transceiver_with_str_and_init(kind.as_str(), &init);
        }
    }

    /// Makes this a publishing connection to the SFU: a send-only audio
    /// transceiver and a send-only video one with the simulcast encodings
    /// of [`crate::mesh::SIMULCAST`] (a browser that cannot simulcast
    /// sends the first it can); `stream` names our media (msid).
    pub fn prepare_publish(&self, stream: &MediaStream) {
        let streams = js_sys::Array::of1(stream);
        let audio = web_sys::RtcRtpTransceiverInit::new();
        audio.set_direction(web_sys::RtcRtpTransceiverDirection::Sendonly);
        audio.set_streams(&streams);
        self.pc
            .add_transceiver_with_str_and_init(MediaKind::Audio.as_str(), &audio);
        let video = web_sys::RtcRtpTransceiverInit::new();
        video.set_direction(web_sys::RtcRtpTransceiverDirection::Sendonly);
        video.set_streams(&streams);
        let encodings = js_sys::Array::new();
        for (rid, scale, bps) in crate::mesh::SIMULCAST {
            let e = js_sys::Object::new();
            let _ = js_sys::Reflect::set(&e, &"rid".into(), &rid.into());
            let _ = js_sys::Reflect::set(&e, &"scaleResolutionDownBy".into(), &scale.into());
            let _ = js_sys::Reflect::set(&e, &"maxBitrate".into(), &f64::from(bps).into());
            encodings.push(&e);
        }
        let _ = js_sys::Reflect::set(&video, &"sendEncodings".into(), &encodings);
        self.pc
            .add_transceiver_with_str_and_init(MediaKind::Video.as_str(), &video);
    }

    /// Puts `audio` and `video` on the senders (`replaceTrack`: no
    /// renegotiation), after [`Peer::prepare_send`]; `None` sends nothing
    /// at all on that sender (muted, camera off). Gives the `replaceTrack`
    /// promises (they only fail for a closed connection).
    pub fn set_tracks(
        &self,
        audio: Option<&web_sys::MediaStreamTrack>,
        video: Option<&web_sys::MediaStreamTrack>,
    ) -> Vec<JsFuture> {
        let mut swaps = Vec::new();
        for (kind, t) in self.transceivers() {
            let track = match kind {
                MediaKind::Audio => audio,
                MediaKind::Video => video,
            };
            let sender = t.sender();
            let same = match (sender.track(), track) {
                (Some(a), Some(b)) => a.id() == b.id(),
                (None, None) => true,
                _ => false,
            };
            if !same {
                swaps.push(JsFuture::from(sender.replace_track(track)));
            }
        }
        swaps
    }

    /// Plays `tones` (`0-9 * #`) as RFC 4733 telephone events on the audio
    /// sender (`RTCRtpSender.dtmf`); false where it cannot (no audio
    /// sender, or the far end took no telephone-event).
    pub fn send_dtmf(&self, tones: &str) -> bool {
        let dtmf = self
            .transceivers()
            .into_iter()
            .find(|(kind, _)| *kind == MediaKind::Audio)
            .and_then(|(_, t)| t.sender().dtmf());
        let Some(dtmf) = dtmf else {
            return false;
        };
        let dtmf = dtmf.unchecked_ref::<DtmfExt>();
        dtmf.can_insert_dtmf() != Some(false) && dtmf.insert_dtmf(tones, 160).is_ok()
    }

    /// The transceivers not stopped, with their media kind.
    fn transceivers(&self) -> Vec<(MediaKind, web_sys::RtcRtpTransceiver)> {
        self.pc
            .get_transceivers()
            .iter()
            .filter_map(|t| t.dyn_into::<web_sys::RtcRtpTransceiver>().ok())
            .filter(|t| !t.stopped())
            .filter_map(|t| Some((MediaKind::parse(&t.receiver().track().kind())?, t)))
            .collect()
    }

    /// Caps what the video sender sends ([`crate::mesh::budget`]):
    /// `maxBitrate`, `maxFramerate` and `scaleResolutionDownBy` (for a
    /// source `height` pixels tall) on every encoding, with
    /// `setParameters` (no renegotiation). Skipped while the sender has no
    /// encodings yet (before the first negotiation in some browsers); the
    /// call applies it again after each negotiation.
    pub fn limit_video(&self, budget: &crate::mesh::Budget, height: u32) {
        let scale = crate::mesh::scale_down_by(height, budget.max_height);
        for (kind, t) in self.transceivers() {
            if kind != MediaKind::Video {
                continue;
            }
            let sender = t.sender();
            let params = sender.get_parameters();
            let encodings = js_sys::Reflect::get(&params, &"encodings".into())
                .ok()
                .and_then(|e| e.dyn_into::<js_sys::Array>().ok());
            let Some(encodings) = encodings.filter(|e| e.length() > 0) else {
                continue;
            };
            for e in encodings.iter() {
                let set = |k: &str, v: f64| js_sys::Reflect::set(&e, &k.into(), &v.into());
                let _ = set("maxBitrate", f64::from(budget.max_bitrate_bps));
                let _ = set("maxFramerate", budget.max_framerate);
                let _ = set("scaleResolutionDownBy", scale);
            }
            let done = JsFuture::from(sender.set_parameters_with_parameters(&params));
            wasm_bindgen_futures::spawn_local(async move {
                if let Err(e) = done.await {
                    // Another change overtook this one; the next applies.
                    web_sys::console::debug_1(&format!("peercall: setParameters: {e:?}").into());
                }
            });
        }
    }

    /// Reports [`PeerEvent::Unmuted`] with `key` when `track` first gets
    /// media (at once if it has some already); the listener lives as
    /// long as the returned value.
    pub fn on_unmute(
        &self,
        track: &web_sys::MediaStreamTrack,
        key: String,
    ) -> Option<EventListener> {
        if !track.muted() {
            (self.on_event)(PeerEvent::Unmuted(key));
            return None;
        }
        let on_event = self.on_event.clone();
        Some(EventListener::once(track, "unmute", move |_| {
            on_event(PeerEvent::Unmuted(key))
        }))
    }

    /// `iceGatheringState` is `complete`.
    pub fn gathered(&self) -> bool {
        self.pc.ice_gathering_state() == web_sys::RtcIceGatheringState::Complete
    }

    /// The JavaScript object, for the debugging registry.
    pub fn raw(&self) -> &RtcPeerConnection {
        &self.pc
    }

    /// `connectionState`, now.
    pub fn connection_state(&self) -> ConnectionState {
        connection_state(&self.pc)
    }

    /// `signalingState`.
    pub fn signaling_state(&self) -> SignalingState {
        match self.pc.signaling_state() {
            RtcSignalingState::Stable => SignalingState::Stable,
            RtcSignalingState::HaveLocalOffer => SignalingState::HaveLocalOffer,
            RtcSignalingState::HaveRemoteOffer => SignalingState::HaveRemoteOffer,
            RtcSignalingState::HaveLocalPranswer => SignalingState::HaveLocalPranswer,
            RtcSignalingState::HaveRemotePranswer => SignalingState::HaveRemotePranswer,
            _ => SignalingState::Closed,
        }
    }

    /// `setLocalDescription()`; gives back what was set: (is it an offer,
    /// its SDP).
    pub async fn set_local(&self) -> Result<(bool, String), JsError> {
        JsFuture::from(
            self.pc
                .unchecked_ref::<PcExt>()
                .set_local_description_implicit(),
        )
        .await
        .map_err(|e| js_error("setLocalDescription", e))?;
        let desc = self
            .pc
            .local_description()
            .ok_or_else(|| JsError::missing("setLocalDescription left no local description"))?;
        Ok((desc.type_() == RtcSdpType::Offer, desc.sdp()))
    }

    /// `setRemoteDescription({type, sdp})`.
    pub async fn set_remote(&self, is_offer: bool, sdp: &str) -> Result<(), JsError> {
        let init = RtcSessionDescriptionInit::new(if is_offer {
            RtcSdpType::Offer
        } else {
            RtcSdpType::Answer
        });
        init.set_sdp(sdp);
        JsFuture::from(self.pc.set_remote_description(&init))
            .await
            .map(drop)
            .map_err(|e| js_error("setRemoteDescription", e))
    }

    /// `addIceCandidate(candidate)`.
    pub async fn add_candidate(&self, candidate: &Candidate) -> Result<(), JsError> {
        let json = serde_json::to_string(candidate).map_err(|e| JsError {
            what: "writing the candidate",
            detail: e.to_string(),
        })?;
        let init: RtcIceCandidateInit = js_sys::JSON::parse(&json)
            .map_err(|e| js_error("reading the candidate", e))?
            .unchecked_into();
        JsFuture::from(
            self.pc
                .add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&init)),
        )
        .await
        .map(drop)
        .map_err(|e| js_error("addIceCandidate", e))
    }

    /// `setConfiguration(...)`: new ICE servers (fresh TURN credentials)
    /// for the next gathering, i.e. the next ICE restart.
    pub fn set_ice_servers(&self, ice_servers: &[IceServer], relay_only: bool) {
        if let Err(e) = self
            .pc
            .set_configuration_with_configuration(&configuration(ice_servers, relay_only))
        {
            web_sys::console::warn_1(&js_error("setConfiguration", e).into());
        }
    }

    /// `restartIce()`.
    pub fn restart_ice(&self) {
        self.pc.unchecked_ref::<PcExt>().restart_ice();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.pc.close();
    }
}

/// `window.peercall.peers`: a `Map` from peer id to its `RTCPeerConnection`,
/// for the console (`await peercall.peers.get(id).getStats()`) and for the
/// end-to-end tests, which read `getStats()` from it.
fn debug_peers() -> Option<js_sys::Map> {
    let window = web_sys::window()?;
    let key = JsValue::from_str("peercall");
    let root = js_sys::Reflect::get(&window, &key).ok()?;
    let root = if root.is_object() {
        root
    } else {
        let root = js_sys::Object::new();
        js_sys::Reflect::set(&root, &"peers".into(), &js_sys::Map::new()).ok()?;
        js_sys::Reflect::set(&window, &key, &root).ok()?;
        root.into()
    };
    js_sys::Reflect::get(&root, &"peers".into())
        .ok()?
        .dyn_into()
        .ok()
}

/// Lists `peer` in `window.peercall.peers` under `id`.
pub fn debug_register(id: &str, peer: &Peer) {
    if let Some(map) = debug_peers() {
        map.set(&id.into(), peer.raw());
    }
}

/// Sets `window.peercall[key]` (a test hook), or removes it with `undefined`.
pub fn debug_set(key: &str, value: &JsValue) {
    if debug_peers().is_some() {
        if let Some(window) = web_sys::window() {
            if let Ok(root) = js_sys::Reflect::get(&window, &"peercall".into()) {
                let _ = js_sys::Reflect::set(&root, &key.into(), value);
            }
        }
    }
}

/// Takes `id` out of `window.peercall.peers`.
pub fn debug_unregister(id: &str) {
    if let Some(map) = debug_peers() {
        map.delete(&id.into());
    }
}
