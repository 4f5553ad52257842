use web_sys::{HtmlVideoElement, MediaStream};
use yew::prelude::*;

use crate::state::{PeerStatus, RemoteMedia};
use crate::web::media::{has_frame_callback, on_next_frame};
use crate::web::page;

fn stamp_first_frame(el: &HtmlVideoElement) {
    if !el.has_attribute("data-first-frame") {
        let _ = el.set_attribute(
            "data-first-frame",
            &(js_sys::Date::now() as u64).to_string(),
        );
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
    /// What they say they send.
    #[prop_or_default]
    pub media: RemoteMedia,
    /// The speaker to play them on (`setSinkId`), if one was chosen.
    #[prop_or_default]
    pub speaker: Option<String>,
    /// They are the one speaking now (the tile is highlighted).
    #[prop_or_default]
    pub speaking: bool,
    /// Their peer id (`data-peer`, for tests and debugging).
    #[prop_or_default]
    pub id: String,
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
    {
        let video = video.clone();
        use_effect_with(props.speaker.clone(), move |speaker| {
            if let (Some(el), Some(id)) = (video.cast::<web_sys::HtmlMediaElement>(), speaker) {
                crate::web::media::set_speaker(&el, id);
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
    let media = props.media;
    html! {
        <figure class={classes!("tile", "remote", status, (!media.video).then_some("video-off"),
                                props.speaking.then_some("speaking"))}
                data-testid="remote-tile" data-peer={props.id.clone()}
                data-speaking={props.speaking.to_string()} data-audio={media.audio.to_string()}
                data-video={media.video.to_string()} data-screen={media.screen.to_string()}>
            // Kept mounted while their camera is off, so the stream (and
            // their sound) stays attached; the placeholder covers it.
            <video
                ref={video}
                class="video remote"
                data-testid="remote-video"
                aria-label={format!("{}'s video", props.name)}
            // No controls, nothing to do with a key: out of the tab order
            // (Firefox would stop on it otherwise).
            tabindex="-1"
                autoplay=true
                playsinline=true
                onloadeddata={on_first_frame}
            />
            if !media.video {
                <div class="placeholder" data-testid="remote-video-off" role="img"
                     aria-label={format!("{}'s camera is off", props.name)}>
                    <span class="initial">{ props.name.chars().next().unwrap_or('?') }</span>
                </div>
            }
            <figcaption>
                if !media.audio {
                    <span class="muted-icon" data-testid="remote-muted" role="img"
                          aria-label="Microphone muted" title="Microphone muted">{ "🔇" }</span>
                }
                <span class="name" data-testid="remote-name">{ &props.name }</span>
                if media.screen {
                    <span class="badge" data-testid="remote-sharing">{ "sharing screen" }</span>
                }
                // Changes are announced by the call's announcer, with the name.
                <span class="status" data-testid="remote-status">{ status }</span>
            </figcaption>
        </figure>
    }
}
