use web_sys::HtmlInputElement;
use yew::prelude::*;

/// Props of [`Landing`].
#[derive(Properties, PartialEq)]
pub struct LandingProps {
    /// The name remembered from last time.
    pub name: String,
    /// Media only through TURN, as chosen last time.
    pub relay_only: bool,
    /// "Start a call", with the name typed and the relay-only choice.
    pub on_start: Callback<(String, bool)>,
    /// The relay serving this page calls phones: offer it.
    #[prop_or_default]
    pub phone: bool,
    /// "Call a phone": a call of one's own, with the dialler open.
    #[prop_or_default]
    pub on_phone: Callback<(String, bool)>,
}

/// The front page: a name (optional) and a button that makes a room.
#[component]
pub fn Landing(props: &LandingProps) -> Html {
    let input = use_node_ref();
    // Held here, so a re-render (the configuration arriving) keeps what
    // the person ticked.
    let relay_only = use_state(|| props.relay_only);
    let on_relay_only = {
        let relay_only = relay_only.clone();
        Callback::from(move |e: Event| {
            if let Some(box_) = e.target_dyn_into::<HtmlInputElement>() {
                relay_only.set(box_.checked());
            }
        })
    };
    let typed = {
        let (input, relay_only) = (input.clone(), relay_only.clone());
        move || {
            let name = input
                .cast::<HtmlInputElement>()
                .map(|i| i.value())
                .unwrap_or_default();
            (name, *relay_only)
        }
    };
    let onsubmit = {
        let (typed, on_start) = (typed.clone(), props.on_start.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            on_start.emit(typed());
        })
    };
    let on_phone = {
        let on_phone = props.on_phone.clone();
        Callback::from(move |_: MouseEvent| on_phone.emit(typed()))
    };
    html! {
        <section class="landing notice">
            <h2>{ "Video calls, straight between browsers" }</h2>
            <p>{ "Start a call, send the link, and talk. Audio and video go peer to peer; \
                  the server only introduces you." }</p>
            <form {onsubmit}>
                <label for="name">{ "Your name (optional)" }</label>
                <input id="name" ref={input} type="text" maxlength="40" autocomplete="nickname"
                       value={props.name.clone()} data-testid="name" />
                <label class="check">
                    <input type="checkbox" checked={*relay_only} onchange={on_relay_only}
                           data-testid="relay-only" />
                    { "Relay media through the TURN server only (hides your network address \
                       from the other person; needs TURN)" }
                </label>
                <div class="row">
                    <button type="submit" data-testid="start">{ "Start a call" }</button>
                    if props.phone {
                        <button type="button" class="secondary" data-testid="start-phone"
                                onclick={on_phone}>{ "Call a phone" }</button>
                    }
                </div>
            </form>
        </section>
    }
}
