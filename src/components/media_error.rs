use yew::prelude::*;

use crate::media::MediaError;

/// Props of [`MediaErrorView`].
#[derive(Properties, PartialEq)]
pub struct MediaErrorViewProps {
    /// What went wrong.
    pub error: MediaError,
    /// Asks for the camera again.
    pub on_retry: Callback<()>,
}

/// Explains why the camera or microphone could not be opened, and offers to
/// try again.
#[component]
pub fn MediaErrorView(props: &MediaErrorViewProps) -> Html {
    let on_click = props.on_retry.reform(|_: MouseEvent| ());
    html! {
        <section class="notice error" role="alert" data-testid="media-error">
            <h2>{ props.error.title() }</h2>
            <p>{ props.error.hint() }</p>
            <button type="button" onclick={on_click}>{ "Try again" }</button>
        </section>
    }
}
