use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use wasm_bindgen::JsCast;
use web_sys::{MediaStream, RtcPeerConnection};
use yew::prelude::*;

use crate::components::{
    ChatPanel, Connection, DevicePicker, LocalPreview, MediaErrorView, RemoteVideo, StatsPanel,
};
use crate::config::CallConfig;
use crate::controls::{shortcut, Key, Sending, Shortcut};
use crate::hooks::{use_active_speaker, use_local_media, LocalMedia};
use crate::media::MediaRequest;
use crate::media::{Device, DeviceKind};
use crate::state::{CallAction, CallState, RelayStatus};
use crate::transfer::TransferStatus;
use crate::web::call::{Call, CallUpdate};
use crate::web::media::{
    can_choose_speaker, device_of, get_display_media, list_devices, on_device_change, open_device,
    swap_track,
};

/// Changes to what we send; a reducer, so the keyboard and the browser's
/// own "stop sharing" see the current state.
enum SendingAction {
    ToggleMic,
    ToggleCamera,
    Screen(bool),
}

#[derive(Clone, Copy, Default, PartialEq)]
struct SendingState(Sending);

impl Reducible for SendingState {
    type Action = SendingAction;
    fn reduce(self: Rc<Self>, action: SendingAction) -> Rc<Self> {
        let mut s = self.0;
        match action {
            SendingAction::ToggleMic => s.mic = !s.mic,
            SendingAction::ToggleCamera => s.camera = !s.camera,
            SendingAction::Screen(on) => s.screen = on,
        }
        Rc::new(SendingState(s))
    }
}

/// The shared screen, and the listener for the browser ending it.
struct Screen {
    stream: MediaStream,
    _ended: gloo_events::EventListener,
}

impl Drop for Screen {
    fn drop(&mut self) {
        crate::web::media::stop_all(&self.stream);
    }
}

/// What the keyboard shortcuts do, refreshed on every render.
#[derive(Clone)]
struct Actions {
    mic: Callback<()>,
    camera: Callback<()>,
    screen: Callback<()>,
    chat: Callback<()>,
    hang_up: Callback<()>,
}

/// Props of [`InCall`].
#[derive(Properties, PartialEq)]
pub struct InCallProps {
    /// The room id.
    pub room: String,
    /// Our display name.
    #[prop_or_default]
    pub name: Option<String>,
    /// ICE servers and such.
    pub config: CallConfig,
    /// The relay's WebSocket URL.
    pub relay_url: String,
    /// The person hung up (the call is already closed and the camera off
    /// once this component unmounts).
    pub on_hang_up: Callback<()>,
    /// We were turned away (the call is full), with why; the call is over
    /// and this component should go (which turns the camera off).
    pub on_blocked: Callback<String>,
}

/// Remote streams and peer connections by peer id. Kept out of
/// [`CallState`] so that stays pure.
#[derive(Default, PartialEq)]
struct Streams {
    media: BTreeMap<String, MediaStream>,
    connections: BTreeMap<String, RtcPeerConnection>,
}

enum StreamAction {
    Set(String, MediaStream),
    Connection(String, RtcPeerConnection),
    Remove(String),
}

impl Reducible for Streams {
    type Action = StreamAction;
    fn reduce(self: Rc<Self>, action: StreamAction) -> Rc<Self> {
        let (mut media, mut connections) = (self.media.clone(), self.connections.clone());
        match action {
            StreamAction::Set(id, stream) => {
                media.insert(id, stream);
            }
            StreamAction::Connection(id, pc) => {
                connections.insert(id, pc);
            }
            StreamAction::Remove(id) => {
                media.remove(&id);
                connections.remove(&id);
            }
        }
        Rc::new(Streams { media, connections })
    }
}

/// The call screen: the call starts at once, the camera joins it when on.
/// Controls: microphone, camera, screen, chat (with files), devices,
/// statistics and hang up, each with a keyboard shortcut in its tooltip.
#[component]
pub fn InCall(props: &InCallProps) -> Html {
    let media = use_local_media(MediaRequest::default());
    let state = use_reducer(CallState::default);
    let streams = use_reducer(Streams::default);
    let call: Rc<RefCell<Option<Call>>> = use_mut_ref(|| None);
    let show_stats = use_state(|| false);
    let show_devices = use_state(|| false);
    let sending = use_reducer(SendingState::default);
    let screen: Rc<RefCell<Option<Screen>>> = use_mut_ref(|| None);
    let devices = use_state(Vec::<Device>::new);
    let speaker = use_state(|| None::<String>);
    let actions: Rc<RefCell<Option<Actions>>> = use_mut_ref(|| None);
    let downloads: Rc<RefCell<Vec<String>>> = use_mut_ref(Vec::new);

    let live = match &media.state {
        LocalMedia::Live(stream) => Some(Clone::clone(stream)),
        _ => None,
    };
    {
        let (state, streams, call) = (state.dispatcher(), streams.dispatcher(), call.clone());
        let (room, name, config, relay_url) = (
            props.room.clone(),
            props.name.clone(),
            props.config.clone(),
            props.relay_url.clone(),
        );
        // The call starts at once, while the camera is still starting (it
        // joins, negotiates and connects meanwhile); our media follows.
        use_effect_with((), move |()| {
            let on_update = move |update: CallUpdate| match update {
                CallUpdate::RemoteStream { id, stream } => {
                    streams.dispatch(StreamAction::Set(id, stream))
                }
                CallUpdate::Connection { id, pc } => {
                    streams.dispatch(StreamAction::Connection(id, pc))
                }
                CallUpdate::State(action) => {
                    if let CallAction::Left { id, .. } = &action {
                        streams.dispatch(StreamAction::Remove(id.clone()));
                    }
                    state.dispatch(action);
                }
            };
            match Call::start(config, relay_url, room, name, on_update) {
                Ok(c) => *call.borrow_mut() = Some(c),
                Err(message) => web_sys::console::error_1(&message.into()),
            }
            move || {
                // Dropping the call sends the goodbye and closes every
                // peer connection; the media hook stops the camera.
                call.borrow_mut().take();
            }
        });
    }
    {
        let call = call.clone();
        use_effect_with(live.clone(), move |live| {
            if let (Some(local), Some(call)) = (live, call.borrow().as_ref()) {
                call.set_local(Clone::clone(local));
            }
        });
    }
    {
        let call = call.clone();
        use_effect_with(sending.0, move |sending| {
            if let Some(call) = call.borrow().as_ref() {
                call.set_sending(*sending);
            }
        });
    }
    {
        // The device lists: once the camera is granted (labels are empty
        // before), and again whenever a device comes or goes.
        let devices = devices.clone();
        use_effect_with(live.is_some(), move |granted| {
            let refresh = move || {
                let devices = devices.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    if let Ok(list) = list_devices().await {
                        devices.set(list);
                    }
                });
            };
            if *granted {
                refresh();
            }
            let listener = granted.then(|| on_device_change(refresh)).flatten();
            move || drop(listener)
        });
    }
    {
        // Keyboard shortcuts, while the call screen is up.
        let actions = actions.clone();
        use_effect_with((), move |()| {
            let listener = web_sys::window().map(|w| {
                gloo_events::EventListener::new(&w, "keydown", move |e| {
                    let Some(e) = e.dyn_ref::<web_sys::KeyboardEvent>() else {
                        return;
                    };
                    let typing = e
                        .target()
                        .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
                        .is_some_and(|el| {
                            matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT")
                                || el.has_attribute("contenteditable")
                        });
                    let key = e.key();
                    let Some(action) = shortcut(Key {
                        key: &key,
                        shift: e.shift_key(),
                        other_modifier: e.ctrl_key() || e.alt_key() || e.meta_key(),
                        typing,
                        repeat: e.repeat(),
                    }) else {
                        return;
                    };
                    if let Some(a) = actions.borrow().as_ref() {
                        e.prevent_default();
                        match action {
                            Shortcut::Mic => a.mic.emit(()),
                            Shortcut::Camera => a.camera.emit(()),
                            Shortcut::Screen => a.screen.emit(()),
                            Shortcut::Chat => a.chat.emit(()),
                            Shortcut::HangUp => a.hang_up.emit(()),
                        }
                    }
                })
            });
            move || drop(listener)
        });
    }

    {
        let on_blocked = props.on_blocked.clone();
        use_effect_with(state.blocked.clone(), move |blocked| {
            if let Some(why) = blocked {
                on_blocked.emit(why.clone());
            }
        });
    }
    {
        let state = state.dispatcher();
        use_active_speaker(
            &streams.connections,
            Callback::from(move |who| state.dispatch(CallAction::Speaking(who))),
        );
    }
    let hang_up = {
        let (call, on_hang_up, screen) = (call.clone(), props.on_hang_up.clone(), screen.clone());
        Callback::from(move |()| {
            screen.borrow_mut().take();
            if let Some(mut c) = call.borrow_mut().take() {
                c.hang_up();
            }
            on_hang_up.emit(());
        })
    };
    let toggle_mic = {
        let sending = sending.dispatcher();
        Callback::from(move |()| sending.dispatch(SendingAction::ToggleMic))
    };
    let toggle_camera = {
        let sending = sending.dispatcher();
        Callback::from(move |()| sending.dispatch(SendingAction::ToggleCamera))
    };
    let stop_screen = {
        let (call, screen, sending) = (call.clone(), screen.clone(), sending.dispatcher());
        Callback::from(move |()| {
            screen.borrow_mut().take();
            if let Some(call) = call.borrow().as_ref() {
                call.set_screen(None);
            }
            sending.dispatch(SendingAction::Screen(false));
        })
    };
    let toggle_screen = {
        let (call, screen, sending, state) = (
            call.clone(),
            screen.clone(),
            sending.dispatcher(),
            state.dispatcher(),
        );
        let stop_screen = stop_screen.clone();
        Callback::from(move |()| {
            if screen.borrow().is_some() {
                stop_screen.emit(());
                return;
            }
            let (call, screen, sending, state, stop_screen) = (
                call.clone(),
                screen.clone(),
                sending.clone(),
                state.clone(),
                stop_screen.clone(),
            );
            wasm_bindgen_futures::spawn_local(async move {
                match get_display_media().await {
                    Ok(Some(stream)) => {
                        let Some(track) = stream
                            .get_video_tracks()
                            .get(0)
                            .dyn_into::<web_sys::MediaStreamTrack>()
                            .ok()
                        else {
                            crate::web::media::stop_all(&stream);
                            return;
                        };
                        // Text stays sharp rather than motion smooth.
                        let _ =
                            js_sys::Reflect::set(&track, &"contentHint".into(), &"detail".into());
                        // The browser's own "Stop sharing" ends the track.
                        let ended = gloo_events::EventListener::once(&track, "ended", move |_| {
                            stop_screen.emit(())
                        });
                        *screen.borrow_mut() = Some(Screen {
                            stream,
                            _ended: ended,
                        });
                        if let Some(call) = call.borrow().as_ref() {
                            call.set_screen(Some(track));
                        }
                        sending.dispatch(SendingAction::Screen(true));
                    }
                    // The person closed the picker: nothing to say.
                    Ok(None) => {}
                    Err(e) => state.dispatch(CallAction::Warning(format!(
                        "Could not share the screen: {}",
                        e.title()
                    ))),
                }
            });
        })
    };
    let toggle_chat = {
        let (state, open) = (state.dispatcher(), state.chat_open);
        Callback::from(move |()| state.dispatch(CallAction::ChatOpen(!open)))
    };
    {
        // Received files stay downloadable for the whole call; their
        // memory (or disk) is let go when the call screen goes.
        *downloads.borrow_mut() = state
            .transfers
            .iter()
            .filter_map(|t| match &t.status {
                TransferStatus::Done { url: Some(url) } => Some(url.clone()),
                _ => None,
            })
            .collect();
        use_effect_with((), move |()| {
            move || {
                for url in downloads.borrow().iter() {
                    let _ = web_sys::Url::revoke_object_url(url);
                }
            }
        });
    }
    *actions.borrow_mut() = Some(Actions {
        mic: toggle_mic.clone(),
        camera: toggle_camera.clone(),
        screen: toggle_screen.clone(),
        chat: toggle_chat.clone(),
        hang_up: hang_up.clone(),
    });

    let on_pick = {
        let (live, call, speaker, state) = (
            live.clone(),
            call.clone(),
            speaker.clone(),
            state.dispatcher(),
        );
        Callback::from(move |(kind, id): (DeviceKind, String)| {
            if kind == DeviceKind::Speaker {
                speaker.set(Some(id));
                return;
            }
            let Some(local) = live.clone() else {
                return;
            };
            let (call, state) = (call.clone(), state.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match open_device(kind, &id).await {
                    Ok(track) => {
                        let replaced = swap_track(&local, &track);
                        match call.borrow().as_ref() {
                            Some(call) => call.switch_local(local, replaced),
                            None => replaced.iter().for_each(|t| t.stop()),
                        }
                    }
                    Err(e) => state.dispatch(CallAction::Warning(format!(
                        "Could not switch: {}",
                        e.title()
                    ))),
                }
            });
        })
    };
    let on_send = {
        let call = call.clone();
        Callback::from(move |(text, to): (String, Option<String>)| {
            if let Some(call) = call.borrow().as_ref() {
                call.chat(text, to);
            }
        })
    };
    let on_files = {
        let call = call.clone();
        Callback::from(move |(files, to): (Vec<web_sys::File>, Option<String>)| {
            if let Some(call) = call.borrow().as_ref() {
                for file in files {
                    call.send_file(file, to.clone());
                }
            }
        })
    };
    let on_cancel = {
        let call = call.clone();
        Callback::from(move |(id, peer): (String, String)| {
            if let Some(call) = call.borrow().as_ref() {
                call.cancel_transfer(id, peer);
            }
        })
    };

    let current = sending.0;
    let local = match &media.state {
        LocalMedia::Requesting => html! {
            <p class="notice" role="status" data-testid="media-requesting">
                { "Waiting for camera and microphone…" }
            </p>
        },
        LocalMedia::Live(stream) => html! {
            <>
                <LocalPreview stream={Clone::clone(stream)} />
                if !current.camera {
                    <div class="placeholder" data-testid="local-video-off">{ "Camera off" }</div>
                }
                if current.screen {
                    <span class="badge" data-testid="local-sharing">{ "You are sharing your screen" }</span>
                }
            </>
        },
        LocalMedia::Failed(error) => html! {
            <MediaErrorView error={error.clone()} on_retry={media.retry.clone()} />
        },
    };
    let relay = match &state.relay {
        RelayStatus::Connecting => html! {},
        RelayStatus::Connected => html! {},
        RelayStatus::Lost {
            reason,
            retry_in_ms,
        } => html! {
            <p class="notice error" role="alert" data-testid="relay-lost">
                { format!(
                    "Can't reach the call server ({reason}). Trying again in {} s… \
                     The call itself goes on.",
                    retry_in_ms.div_ceil(1000)
                ) }
            </p>
        },
    };
    let remotes: Html = state
        .peers
        .iter()
        .map(|(id, peer)| {
            html! {
                <RemoteVideo
                    key={id.clone()}
                    name={peer.name.clone()}
                    status={peer.status}
                    media={peer.media}
                    id={id.clone()}
                    speaking={state.speaking.as_deref() == Some(id.as_str())}
                    speaker={(*speaker).clone()}
                    stream={streams.media.get(id).cloned()}
                />
            }
        })
        .collect();
    let toggle_stats = {
        let show_stats = show_stats.clone();
        Callback::from(move |_: MouseEvent| show_stats.set(!*show_stats))
    };
    let toggle_devices = {
        let show_devices = show_devices.clone();
        Callback::from(move |_: MouseEvent| show_devices.set(!*show_devices))
    };
    let connections: Vec<Connection> = streams
        .connections
        .iter()
        .filter_map(|(id, pc)| {
            state.peers.get(id).map(|p| Connection {
                id: id.clone(),
                name: p.name.clone(),
                pc: pc.clone(),
            })
        })
        .collect();
    let waiting =
        state.alone() && state.blocked.is_none() && matches!(media.state, LocalMedia::Live(_));
    let has_media = live.is_some();
    let (camera_id, mic_id) = match &live {
        Some(s) => (
            device_of(s, DeviceKind::Camera),
            device_of(s, DeviceKind::Microphone),
        ),
        None => (None, None),
    };
    let click = |cb: &Callback<()>| cb.reform(|_: MouseEvent| ());
    let mic_label = if current.mic { "Mute" } else { "Unmute" };
    let camera_label = if current.camera {
        "Turn camera off"
    } else {
        "Turn camera on"
    };
    let screen_label = if current.screen {
        "Stop sharing"
    } else {
        "Share screen"
    };
    html! {
        <section class={classes!("call", state.chat_open.then_some("with-chat"))} aria-label="Call">
            { relay }
            <div class={classes!("tiles", (state.peers.len() > 1).then_some("many"),
                                 format!("n{}", state.peers.len().min(5)))}
                 data-testid="tiles" data-count={state.peers.len().to_string()}>
                { remotes }
                if waiting {
                    <p class="notice waiting" role="status" data-testid="waiting">
                        { "Waiting for someone to join. Share the link to invite them." }
                    </p>
                }
            </div>
            <div class="self">{ local }</div>
            if let Some(notice) = &state.notice {
                <p class="toast" role="status" aria-live="polite" data-testid="notice">{ notice }</p>
            }
            if *show_stats {
                <StatsPanel {connections} />
            }
            if *show_devices {
                <DevicePicker devices={(*devices).clone()} camera={camera_id} microphone={mic_id}
                              speaker={(*speaker).clone()} speakers_supported={can_choose_speaker()}
                              {on_pick} />
            }
            if state.chat_open {
                <ChatPanel lines={state.chat.clone()} transfers={state.transfers.clone()}
                           people={state.peers.iter().map(|(id, p)| (id.clone(), p.name.clone())).collect::<Vec<_>>()}
                           {on_send} {on_files} {on_cancel}
                           on_close={toggle_chat.clone()} />
            }
            <div class="controls" role="toolbar" aria-label="Call controls">
                <button type="button" class={classes!("secondary", (!current.mic).then_some("off"))}
                        aria-pressed={(!current.mic).to_string()} aria-label={mic_label}
                        title={Shortcut::Mic.tooltip(mic_label)} data-testid="toggle-mic"
                        disabled={!has_media} onclick={click(&toggle_mic)}>
                    { if current.mic { "Mic" } else { "Mic off" } }
                </button>
                <button type="button" class={classes!("secondary", (!current.camera).then_some("off"))}
                        aria-pressed={(!current.camera).to_string()} aria-label={camera_label}
                        title={Shortcut::Camera.tooltip(camera_label)} data-testid="toggle-camera"
                        disabled={!has_media} onclick={click(&toggle_camera)}>
                    { if current.camera { "Camera" } else { "Camera off" } }
                </button>
                <button type="button" class="secondary" aria-pressed={current.screen.to_string()}
                        aria-label={screen_label} title={Shortcut::Screen.tooltip(screen_label)}
                        data-testid="toggle-screen" onclick={click(&toggle_screen)}>
                    { if current.screen { "Stop sharing" } else { "Share" } }
                </button>
                <button type="button" class="secondary" aria-pressed={state.chat_open.to_string()}
                        aria-label="Chat" title={Shortcut::Chat.tooltip("Chat")}
                        data-testid="toggle-chat" onclick={click(&toggle_chat)}>
                    { "Chat" }
                    if state.unread > 0 {
                        <span class="unread" data-testid="unread"
                              aria-label={format!("{} unread", state.unread)}>{ state.unread }</span>
                    }
                </button>
                <button type="button" class="secondary" aria-pressed={show_devices.to_string()}
                        aria-label="Devices" title="Camera, microphone and speaker"
                        data-testid="devices-toggle" onclick={toggle_devices}>
                    { "Devices" }
                </button>
                <button type="button" class="secondary" aria-pressed={show_stats.to_string()}
                        aria-label="Connection statistics" data-testid="stats-toggle"
                        onclick={toggle_stats}>
                    { "Stats" }
                </button>
                <button type="button" class="hang-up" aria-label="Hang up"
                        title={Shortcut::HangUp.tooltip("Hang up")} data-testid="hang-up"
                        onclick={click(&hang_up)}>
                    { "Hang up" }
                </button>
            </div>
        </section>
    }
}
