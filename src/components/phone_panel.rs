use web_sys::{HtmlInputElement, HtmlMediaElement};
use yew::prelude::*;

use crate::components::Dialog;
use crate::hooks::use_call_context;
use crate::phone::Stage;

/// The keypad, in rows.
const KEYS: [[char; 3]; 4] = [
    ['1', '2', '3'],
    ['4', '5', '6'],
    ['7', '8', '9'],
    ['*', '0', '#'],
];

/// Props of [`PhonePanel`].
#[derive(Properties, PartialEq)]
pub struct PhonePanelProps {
    /// Our microphone is on.
    pub mic_on: bool,
    /// Turn the microphone on or off (the call's own mute).
    pub on_mic: Callback<()>,
    /// The panel closes (the dialler, or the call's screen after the call).
    pub on_close: Callback<()>,
}

/// A call to a phone: the dialler (a number or a SIP address), then the
/// call (dialling, ringing, in call with its duration, ended and why),
/// with mute, a keypad that sends DTMF, and hang up. The far end's sound
/// (and video, where it sends any) plays here.
#[component]
pub fn PhonePanel(props: &PhonePanelProps) -> Html {
    let call = use_call_context();
    let input = use_node_ref();
    let media = use_node_ref();
    let now = use_state(js_sys::Date::now);
    let view = call.state.phone.clone();
    let stream = call.phone_stream.clone();
    {
        let media = media.clone();
        use_effect_with(stream.clone(), move |stream| {
            if let Some(el) = media.cast::<HtmlMediaElement>() {
                el.set_src_object(stream.as_ref());
            }
        });
    }
    {
        // The duration, once a second while in call.
        let now = now.clone();
        let in_call = view.as_ref().is_some_and(|v| v.stage == Stage::InCall);
        use_effect_with(in_call, move |in_call| {
            let interval = in_call.then(|| {
                gloo_timers::callback::Interval::new(1_000, move || now.set(js_sys::Date::now()))
            });
            move || drop(interval)
        });
    }
    let Some(view) = view else {
        let onsubmit = {
            let (call, input) = (call.clone(), input.clone());
            Callback::from(move |e: SubmitEvent| {
                e.prevent_default();
                if let Some(i) = input.cast::<HtmlInputElement>() {
                    call.phone_dial(i.value());
                }
            })
        };
        return html! {
            <Dialog class="phone-panel" testid="phone-dialler" title="Call a phone"
                    close_label="Close the dialler" on_close={props.on_close.clone()}>
                <form {onsubmit}>
                    <label for="phone-address">{ "Number or SIP address" }</label>
                    <input id="phone-address" ref={input} type="text" inputmode="tel"
                           autocomplete="tel" placeholder="+49 30 1234567 or alice@example.com"
                           data-autofocus="" data-testid="phone-address" maxlength="256" />
                    <button type="submit" data-testid="phone-dial">{ "Call" }</button>
                </form>
            </Dialog>
        };
    };
    let over = view.is_over();
    let status = match (view.stage, view.answered_at) {
        (Stage::InCall, Some(at)) => {
            let secs = ((*now - at as f64) / 1000.0).max(0.0) as u64;
            format!("In call {}:{:02}", secs / 60, secs % 60)
        }
        _ => view.status(),
    };
    let dismiss = {
        let (call, on_close) = (call.clone(), props.on_close.clone());
        Callback::from(move |()| {
            call.phone_dismiss();
            on_close.emit(());
        })
    };
    let hang_up = {
        let call = call.clone();
        Callback::from(move |_: MouseEvent| call.phone_hang_up())
    };
    let keypad: Html = KEYS
        .iter()
        .map(|row| {
            row.iter()
                .map(|&key| {
                    let call = call.clone();
                    let onclick =
                        Callback::from(move |_: MouseEvent| call.phone_digits(key.to_string()));
                    html! {
                        <button type="button" class="secondary key" {onclick}
                                disabled={view.stage != Stage::InCall}
                                aria-label={format!("Key {key}")}
                                data-testid={format!("key-{}", key_name(key))}>{ key }</button>
                    }
                })
                .collect::<Html>()
        })
        .collect();
    let has_video = stream
        .as_ref()
        .is_some_and(|s| s.get_video_tracks().length() > 0);
    let on_mic = props.on_mic.reform(|_: MouseEvent| ());
    html! {
        <Dialog class="phone-panel" testid="phone-call" title="Phone call"
                close_label={if over { "Close" } else { "Hang up and close" }}
                on_close={dismiss.clone()}>
            <p class="phone-address" data-testid="phone-number">{ &view.address }</p>
            <p class={classes!("phone-status", over.then_some("ended"))} data-testid="phone-status"
               data-stage={format!("{:?}", view.stage).to_lowercase()}>{ status }</p>
            <video ref={media} autoplay=true playsinline=true data-testid="phone-media"
                   class={classes!("phone-video", (!has_video).then_some("audio-only"))}
                   aria-label={format!("{} (phone)", view.address)} />
            if !over {
                <div class="keypad" role="group" aria-label="Keypad">{ keypad }</div>
                <div class="row">
                    <button type="button" class="secondary" aria-pressed={(!props.mic_on).to_string()}
                            data-testid="phone-mute" onclick={on_mic}>
                        { if props.mic_on { "Mute" } else { "Unmute" } }
                    </button>
                    <button type="button" class="hang-up" data-testid="phone-hang-up"
                            onclick={hang_up}>{ "Hang up" }</button>
                </div>
            } else {
                <div class="row">
                    <button type="button" data-testid="phone-close" data-autofocus=""
                            onclick={dismiss.reform(|_: MouseEvent| ())}>{ "Close" }</button>
                </div>
            }
        </Dialog>
    }
}

/// A key's name for its test id (`*` and `#` are not nice in selectors).
fn key_name(key: char) -> String {
    match key {
        '*' => "star".into(),
        '#' => "hash".into(),
        k => k.to_string(),
    }
}
