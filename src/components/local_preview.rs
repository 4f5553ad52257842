use web_sys::{HtmlVideoElement, MediaStream};
use yew::prelude::*;

/// Props of [`LocalPreview`].
#[derive(Properties, PartialEq)]
pub struct LocalPreviewProps {
    /// The local camera stream.
    pub stream: MediaStream,
}

/// The person's own camera: muted (no echo of one's own voice) and mirrored,
/// as people expect to see themselves.
#[component]
pub fn LocalPreview(props: &LocalPreviewProps) -> Html {
    let video = use_node_ref();
    {
        let video = video.clone();
        // `Clone::clone`, not `.clone()`: web-sys gives MediaStream an inherent
        // `clone()` that is JS `MediaStream.clone()` and makes new tracks.
        use_effect_with(Clone::clone(&props.stream), move |stream| {
            if let Some(el) = video.cast::<HtmlVideoElement>() {
                // The `muted` attribute is not reliably reflected to the
                // property, so set the property itself.
                el.set_muted(true);
                el.set_src_object(Some(stream));
            }
            move || {
                if let Some(el) = video.cast::<HtmlVideoElement>() {
                    el.set_src_object(None);
                }
            }
        });
    }
    html! {
        <video
            ref={video}
            class="video local mirrored"
            data-testid="local-preview"
            aria-label="Your camera"
            // No controls, nothing to do with a key: out of the tab order
            // (Firefox would stop on it otherwise).
            tabindex="-1"
            autoplay=true
            playsinline=true
        />
    }
}
