use yew::prelude::*;

use crate::controls::Shortcut;
use crate::hooks::use_call_context;

/// Props of [`CallControls`].
#[derive(Properties, PartialEq)]
pub struct CallControlsProps {
    /// The camera and microphone are on (mute and camera need them).
    pub has_media: bool,
    /// The statistics panel is open.
    pub show_stats: bool,
    /// The device picker is open.
    pub show_devices: bool,
    /// Mute or unmute.
    pub on_mic: Callback<()>,
    /// Camera off or on.
    pub on_camera: Callback<()>,
    /// Share the screen or stop.
    pub on_screen: Callback<()>,
    /// Open or close the chat.
    pub on_chat: Callback<()>,
    /// Open or close the device picker.
    pub on_devices: Callback<()>,
    /// Open or close the statistics.
    pub on_stats: Callback<()>,
    /// Hang up.
    pub on_hang_up: Callback<()>,
}

/// The call's toolbar: microphone, camera, screen, chat (with its unread
/// count), devices, statistics and hang up.
#[component]
pub fn CallControls(props: &CallControlsProps) -> Html {
    let call = use_call_context();
    let (current, state) = (call.sending, &call.state);
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
        <div class="controls" role="toolbar" aria-label="Call controls">
            <button type="button" class={classes!("secondary", (!current.mic).then_some("off"))}
                    aria-pressed={(!current.mic).to_string()} aria-label={mic_label}
                    title={Shortcut::Mic.tooltip(mic_label)} data-testid="toggle-mic"
                    disabled={!props.has_media} onclick={click(&props.on_mic)}>
                { if current.mic { "Mic" } else { "Mic off" } }
            </button>
            <button type="button" class={classes!("secondary", (!current.camera).then_some("off"))}
                    aria-pressed={(!current.camera).to_string()} aria-label={camera_label}
                    title={Shortcut::Camera.tooltip(camera_label)} data-testid="toggle-camera"
                    disabled={!props.has_media} onclick={click(&props.on_camera)}>
                { if current.camera { "Camera" } else { "Camera off" } }
            </button>
            <button type="button" class="secondary" aria-pressed={current.screen.to_string()}
                    aria-label={screen_label} title={Shortcut::Screen.tooltip(screen_label)}
                    data-testid="toggle-screen" onclick={click(&props.on_screen)}>
                { if current.screen { "Stop sharing" } else { "Share" } }
            </button>
            <button type="button" class="secondary" aria-pressed={state.chat_open.to_string()}
                    aria-label="Chat" title={Shortcut::Chat.tooltip("Chat")}
                    data-testid="toggle-chat" onclick={click(&props.on_chat)}>
                { "Chat" }
                if state.unread > 0 {
                    <span class="unread" data-testid="unread"
                          aria-label={format!("{} unread", state.unread)}>{ state.unread }</span>
                }
            </button>
            <button type="button" class="secondary" aria-pressed={props.show_devices.to_string()}
                    aria-label="Devices" title="Camera, microphone and speaker"
                    data-testid="devices-toggle" onclick={click(&props.on_devices)}>
                { "Devices" }
            </button>
            <button type="button" class="secondary" aria-pressed={props.show_stats.to_string()}
                    aria-label="Connection statistics" data-testid="stats-toggle"
                    onclick={click(&props.on_stats)}>
                { "Stats" }
            </button>
            <button type="button" class="hang-up" aria-label="Hang up"
                    title={Shortcut::HangUp.tooltip("Hang up")} data-testid="hang-up"
                    onclick={click(&props.on_hang_up)}>
                { "Hang up" }
            </button>
        </div>
    }
}
