//! The root component: layout and the local preview.

use yew::prelude::*;

use crate::components::{LocalPreview, MediaErrorView};
use crate::hooks::{use_local_media, LocalMedia};
use crate::media::MediaRequest;

/// The whole app.
#[component]
pub fn App() -> Html {
    let media = use_local_media(MediaRequest::default());
    let stage = match &media.state {
        LocalMedia::Requesting => html! {
            <p class="notice" role="status" data-testid="media-requesting">
                { "Waiting for camera and microphone…" }
            </p>
        },
        LocalMedia::Live(stream) => html! { <LocalPreview stream={Clone::clone(stream)} /> },
        LocalMedia::Failed(error) => html! {
            <MediaErrorView error={error.clone()} on_retry={media.retry.clone()} />
        },
    };
    html! {
        <>
            <header class="bar">
                <h1 class="brand">{ "peercall" }</h1>
            </header>
            <main class="stage">{ stage }</main>
        </>
    }
}
