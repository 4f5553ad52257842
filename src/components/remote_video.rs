use web_sys::{HtmlVideoElement, MediaStream};
use yew::prelude::*;

use crate::state::PeerStatus;
use crate::web::media::{has_frame_callback, on_next_frame};
use crate::web::page;

fn stamp_first_frame(el: &HtmlVideoElement) {
    if !el.has_attribute("data-first-frame") {
        let _ = el.set_attribute("data-first-frame", &js_sys::Date::now().to_string());
        page::mark("first-frame");
    }
}

/// Props of [`RemoteVideo`].
#[derive(Properties, PartialEq)]
pub struct RemoteVideoProps {
    /// Their name.
    pub name: String,
    /// Our connection to them.
    pub status: PeerStatus,
    /// Their media, once it arrives.
    #[prop_or_default]
    pub stream: Option<MediaStream>,
}

/// One other person: their video (with sound), name and connection state.
/// The element records when its first frame was shown (`data-first-frame`,
/// milliseconds since the epoch, from `requestVideoFrameCallback`, or
/// `loadeddata` where that is missing) for the end-to-end timing and the
/// benchmark, with `performance.mark("peercall:first-frame")`.
#[component]
pub fn RemoteVideo(props: &RemoteVideoProps) -> Html {
    let video = use_node_ref();
    {
        let video = video.clone();
        // Option::clone uses the Clone trait (a handle copy, not JS clone()).
        use_effect_with(props.stream.clone(), move |stream| {
            if let Some(el) = video.cast::<HtmlVideoElement>() {
                el.set_src_object(stream.as_ref());
                if stream.is_some() {
                    let shown = el.clone();
                    on_next_frame(&el, move || stamp_first_frame(&shown));
                }
            }
            move || {
                if let Some(el) = video.cast::<HtmlVideoElement>() {
                    el.set_src_object(None);
                }
            }
        });
    }
    let on_first_frame = Callback::from(|e: Event| {
        if let Some(el) = e.target_dyn_into::<HtmlVideoElement>() {
            if !has_frame_callback(&el) {
                stamp_first_frame(&el);
            }
        }
    });
    let status = props.status.label();
    html! {
        <figure class={classes!("tile", "remote", status)} data-testid="remote-tile">
            <video
                ref={video}
                class="video remote"
                data-testid="remote-video"
                aria-label={format!("{}'s video", props.name)}
                autoplay=true
                playsinline=true
                onloadeddata={on_first_frame}
            />
            <figcaption>
                <span class="name" data-testid="remote-name">{ &props.name }</span>
                <span class="status" role="status" data-testid="remote-status">{ status }</span>
            </figcaption>
        </figure>
    }
}
