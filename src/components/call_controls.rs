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
    // Each button's name is its visible text and stays the same; whether
    // it is on is `aria-pressed` (the toggles) or `aria-expanded` (the
    // panels), and its shortcut is `aria-keyshortcuts` and the tooltip.
    html! {
        <div class="controls" role="toolbar" aria-label="Call controls">
            <button type="button" class={classes!("secondary", (!current.mic).then_some("off"))}
                    aria-pressed={(!current.mic).to_string()}
                    aria-keyshortcuts={Shortcut::Mic.keys()}
                    title={Shortcut::Mic.tooltip("Mute")} data-testid="toggle-mic"
                    disabled={!props.has_media} onclick={click(&props.on_mic)}>
                { "Mute" }
            </button>
            <button type="button" class={classes!("secondary", (!current.camera).then_some("off"))}
                    aria-pressed={(!current.camera).to_string()}
                    aria-keyshortcuts={Shortcut::Camera.keys()}
                    title={Shortcut::Camera.tooltip("Camera off")} data-testid="toggle-camera"
                    disabled={!props.has_media} onclick={click(&props.on_camera)}>
                { "Camera off" }
            </button>
            <button type="button" class={classes!("secondary", current.screen.then_some("on"))}
                    aria-pressed={current.screen.to_string()}
                    aria-keyshortcuts={Shortcut::Screen.keys()}
                    title={Shortcut::Screen.tooltip("Share screen")}
                    data-testid="toggle-screen" onclick={click(&props.on_screen)}>
                { "Share screen" }
            </button>
            <button type="button" class="secondary" aria-haspopup="dialog"
                    aria-expanded={state.chat_open.to_string()}
                    aria-keyshortcuts={Shortcut::Chat.keys()} title={Shortcut::Chat.tooltip("Chat")}
                    data-testid="toggle-chat" onclick={click(&props.on_chat)}>
                { "Chat" }
                if state.unread > 0 {
                    <span class="unread">
                        <span data-testid="unread">{ state.unread }</span>
                        <span class="visually-hidden">{ " unread" }</span>
                    </span>
                }
            </button>
            <button type="button" class="secondary" aria-haspopup="dialog"
                    aria-expanded={props.show_devices.to_string()}
                    title="Camera, microphone and speaker"
                    data-testid="devices-toggle" onclick={click(&props.on_devices)}>
                { "Devices" }
            </button>
            <button type="button" class="secondary" aria-haspopup="dialog"
                    aria-expanded={props.show_stats.to_string()} title="Connection statistics"
                    data-testid="stats-toggle" onclick={click(&props.on_stats)}>
                { "Stats" }
            </button>
            <button type="button" class="hang-up" aria-keyshortcuts={Shortcut::HangUp.keys()}
                    title={Shortcut::HangUp.tooltip("Hang up")} data-testid="hang-up"
                    onclick={click(&props.on_hang_up)}>
                { "Hang up" }
            </button>
        </div>
    }
}
