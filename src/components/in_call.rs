use yew::prelude::*;

use crate::components::{
    Announcer, CallControls, ChatPanel, Connection, DevicePicker, PhonePanel, SelfView, StatsPanel,
    Tiles,
};
use crate::config::CallConfig;
use crate::controls::Shortcut;
use crate::hooks::{
    use_active_speaker, use_call, use_devices, use_focus_on_mount, use_local_media,
    use_screen_share, use_shortcuts, CallHandle, LocalMedia, ScreenAction,
};
use crate::media::MediaRequest;
use crate::state::{CallAction, RelayStatus};

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
    /// The relays' WebSocket URLs (several when they share the rooms).
    pub relays: Vec<String>,
    /// The person hung up (the call is already closed and the camera off
    /// once this component unmounts).
    pub on_hang_up: Callback<()>,
    /// We were turned away (the call is full), with why; the call is over
    /// and this component should go (which turns the camera off).
    pub on_blocked: Callback<String>,
    /// Open the phone dialler as soon as the relay offers phone calls
    /// ("Call a phone" on the start page).
    #[prop_or_default]
    pub open_phone: bool,
}

/// The call screen: the call starts at once, the camera joins it when on.
/// It owns the camera ([`use_local_media`]) and the call ([`use_call`]),
/// shared with its parts through a context; the parts are the tiles, our
/// own view, the panels and the controls, each with a keyboard shortcut
/// in its tooltip.
#[component]
pub fn InCall(props: &InCallProps) -> Html {
    let media = use_local_media(MediaRequest::default());
    let call = use_call(
        &props.room,
        props.name.clone(),
        &props.config,
        &props.relays,
    );
    let heading = use_node_ref();
    use_focus_on_mount(heading.clone());
    let show_stats = use_state(|| false);
    let show_devices = use_state(|| false);
    let show_phone = use_state(|| props.open_phone);
    let live = match &media.state {
        LocalMedia::Live(stream) => Some(Clone::clone(stream)),
        _ => None,
    };
    let devices = use_devices(&call, live.clone());
    let toggle_screen = use_screen_share(&call);
    {
        // Our media joins the call when it is on.
        let call = call.clone();
        use_effect_with(live.clone(), move |live| {
            if let Some(local) = live {
                call.set_local(Clone::clone(local));
            }
        });
    }
    {
        let on_blocked = props.on_blocked.clone();
        use_effect_with(call.state.blocked.clone(), move |blocked| {
            if let Some(why) = blocked {
                on_blocked.emit(why.clone());
            }
        });
    }
    {
        let call = call.clone();
        use_active_speaker(
            &call.connections.clone(),
            &call.sfu.clone(),
            Callback::from(move |who| call.dispatch(ScreenAction::Call(CallAction::Speaking(who)))),
        );
    }
    let dispatch = |action: fn() -> ScreenAction| {
        let call = call.clone();
        Callback::from(move |()| call.dispatch(action()))
    };
    let toggle_mic = dispatch(|| ScreenAction::ToggleMic);
    let toggle_camera = dispatch(|| ScreenAction::ToggleCamera);
    let toggle_chat = {
        let (call, open) = (call.clone(), call.state.chat_open);
        Callback::from(move |()| call.dispatch(ScreenAction::Call(CallAction::ChatOpen(!open))))
    };
    let hang_up = {
        let (call, on_hang_up) = (call.clone(), props.on_hang_up.clone());
        Callback::from(move |()| {
            call.hang_up();
            on_hang_up.emit(());
        })
    };
    {
        let (mic, camera, screen, chat, hang_up) = (
            toggle_mic.clone(),
            toggle_camera.clone(),
            toggle_screen.clone(),
            toggle_chat.clone(),
            hang_up.clone(),
        );
        use_shortcuts(Callback::from(move |s| match s {
            Shortcut::Mic => mic.emit(()),
            Shortcut::Camera => camera.emit(()),
            Shortcut::Screen => screen.emit(()),
            Shortcut::Chat => chat.emit(()),
            Shortcut::HangUp => hang_up.emit(()),
        }));
    }
    let toggle = |flag: &UseStateHandle<bool>| {
        let flag = flag.clone();
        Callback::from(move |()| flag.set(!*flag))
    };

    let state = &call.state;
    let waiting =
        state.alone() && state.blocked.is_none() && matches!(media.state, LocalMedia::Live(_));
    // The direct connections still open, and the SFU's (everyone on it
    // comes over the one receiving connection).
    let connections: Vec<Connection> = call
        .connections
        .iter()
        .filter(|(_, pc)| pc.connection_state() != web_sys::RtcPeerConnectionState::Closed)
        .filter_map(|(id, pc)| {
            state.peers.get(id).map(|p| Connection {
                id: id.clone(),
                name: p.name.clone(),
                pc: pc.clone(),
            })
        })
        .chain(call.sfu.iter().map(|(pc, _)| Connection {
            id: "relay/sfu".into(),
            name: "Everyone else, through the server (SFU)".into(),
            pc: pc.clone(),
        }))
        .collect();
    html! {
        <ContextProvider<CallHandle> context={call.clone()}>
            <section class={classes!("call", state.chat_open.then_some("with-chat"))}
                     aria-labelledby="call-title">
                <h2 id="call-title" class="visually-hidden" tabindex="-1" ref={heading}>
                    { if waiting { "Call: waiting for someone to join" } else { "Call" } }
                </h2>
                <Announcer news={state.news.clone()} />
                { relay_banner(&state.relay) }
                <Tiles speaker={devices.speaker.clone()} {waiting} />
                if state.phone_offered && state.alone() && state.phone.is_none() && !*show_phone {
                    <button type="button" class="secondary call-phone" data-testid="call-phone"
                            onclick={let show = show_phone.clone(); Callback::from(move |_: MouseEvent| show.set(true))}>
                        { "Call a phone" }
                    </button>
                }
                if state.phone_offered && (*show_phone || state.phone.is_some()) {
                    <PhonePanel mic_on={call.sending.mic}
                                on_mic={dispatch(|| ScreenAction::ToggleMic)}
                                on_close={let show = show_phone.clone(); Callback::from(move |()| show.set(false))} />
                }
                <SelfView media={media.clone()} />
                if let Some(notice) = &state.notice {
                    // Seen here; heard through the announcer.
                    <p class="toast" data-testid="notice">{ notice }</p>
                }
                if *show_stats {
                    <StatsPanel {connections} on_close={toggle(&show_stats)} />
                }
                if *show_devices {
                    <DevicePicker devices={devices.list.clone()} camera={devices.camera.clone()}
                                  microphone={devices.microphone.clone()}
                                  speaker={devices.speaker.clone()}
                                  speakers_supported={devices.speakers_supported}
                                  on_pick={devices.pick.clone()}
                                  on_close={toggle(&show_devices)} />
                }
                if state.chat_open {
                    <ChatPanel lines={state.chat.clone()} transfers={state.transfers.clone()}
                               people={state.peers.iter().map(|(id, p)| (id.clone(), p.name.clone())).collect::<Vec<_>>()}
                               on_send={let call = call.clone(); Callback::from(move |(text, to)| call.chat(text, to))}
                               on_files={let call = call.clone(); Callback::from(move |(files, to)| call.send_files(files, to))}
                               on_cancel={let call = call.clone(); Callback::from(move |(id, peer)| call.cancel_transfer(id, peer))}
                               on_close={toggle_chat.clone()} />
                }
                <CallControls has_media={live.is_some()} show_stats={*show_stats}
                              show_devices={*show_devices}
                              on_mic={toggle_mic} on_camera={toggle_camera} on_screen={toggle_screen}
                              on_chat={toggle_chat} on_devices={toggle(&show_devices)}
                              on_stats={toggle(&show_stats)} on_hang_up={hang_up} />
            </section>
        </ContextProvider<CallHandle>>
    }
}

/// Says so while the call server is out of reach (the call goes on). Not
/// a live region: its countdown changes every second, and the announcer
/// says it once.
fn relay_banner(status: &RelayStatus) -> Html {
    match status {
        RelayStatus::Connecting | RelayStatus::Connected => html! {},
        RelayStatus::Lost {
            reason,
            retry_in_ms,
        } => html! {
            <p class="notice error" data-testid="relay-lost">
                { format!(
                    "Can't reach the call server ({reason}). Trying again in {} s… \
                     The call itself goes on.",
                    retry_in_ms.div_ceil(1000)
                ) }
            </p>
        },
    }
}
