use web_sys::HtmlInputElement;
use yew::prelude::*;

/// Props of [`Landing`].
#[derive(Properties, PartialEq)]
pub struct LandingProps {
    /// The name remembered from last time.
    pub name: String,
    /// "Start a call", with the name typed.
    pub on_start: Callback<String>,
}

/// The front page: a name (optional) and a button that makes a room.
#[component]
pub fn Landing(props: &LandingProps) -> Html {
    let input = use_node_ref();
    let onsubmit = {
        let (input, on_start) = (input.clone(), props.on_start.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let name = input
                .cast::<HtmlInputElement>()
                .map(|i| i.value())
                .unwrap_or_default();
            on_start.emit(name);
        })
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
                <button type="submit" data-testid="start">{ "Start a call" }</button>
            </form>
        </section>
    }
}
