use yew::prelude::*;

use crate::components::{LocalPreview, MediaErrorView, RemoteVideo};
use crate::hooks::{use_call_context, LocalMedia, LocalMediaHandle};

/// Props of [`Tiles`].
#[derive(Properties, PartialEq)]
pub struct TilesProps {
    /// The chosen speaker (`setSinkId`), if any.
    pub speaker: Option<String>,
    /// Nobody else is here yet: say how to invite them.
    pub waiting: bool,
}

/// Everyone else in the call, a tile each (the speaker highlighted), up
/// to [`crate::state::MAX_TILES`]; the rest listed by name.
#[component]
pub fn Tiles(props: &TilesProps) -> Html {
    let call = use_call_context();
    let state = &call.state;
    let shown = state.on_screen();
    let remotes: Html = shown
        .iter()
        .filter_map(|id| Some((*id, state.peers.get(*id)?)))
        .map(|(id, peer)| {
            let id = id.to_owned();
            html! {
                <RemoteVideo
                    key={id.clone()}
                    name={peer.name.clone()}
                    status={peer.status}
                    media={peer.media}
                    id={id.clone()}
                    speaking={state.speaking.as_deref() == Some(id.as_str())}
                    speaker={props.speaker.clone()}
                    stream={call.streams.get(&id).cloned()}
                />
            }
        })
        .collect();
    // Past MAX_TILES: the others by name, with their microphone's state.
    let others = state.off_screen();
    let offstage = (!others.is_empty()).then(|| {
        let names: Html = others
            .iter()
            .filter_map(|id| Some((*id, state.peers.get(*id)?)))
            .map(|(id, peer)| {
                html! {
                    <li key={id.to_owned()} data-testid="offstage-person" data-peer={id.to_owned()}>
                        { peer.name.clone() }
                        if !peer.media.audio {
                            <span class="muted" data-testid="offstage-muted" aria-label="microphone off">{ " (muted)" }</span>
                        }
                    </li>
                }
            })
            .collect();
        html! {
            <section class="offstage" aria-label="Also in the call" data-testid="offstage">
                <ul>{ names }</ul>
            </section>
        }
    });
    html! {
        <div class={classes!("tiles", (shown.len() > 1).then_some("many"),
                             format!("n{}", shown.len().min(5)))}
             data-testid="tiles" data-count={state.peers.len().to_string()}>
            { remotes }
            { for offstage }
            if props.waiting {
                <p class="notice waiting" role="status" data-testid="waiting">
                    { "Waiting for someone to join. Share the link to invite them." }
                </p>
            }
        </div>
    }
}

/// Props of [`SelfView`].
#[derive(Properties, PartialEq)]
pub struct SelfViewProps {
    /// Our camera and microphone.
    pub media: LocalMediaHandle,
}

/// Our own picture: waiting for the camera, the preview (with what we do
/// not send), or why there is none.
#[component]
pub fn SelfView(props: &SelfViewProps) -> Html {
    let call = use_call_context();
    let sending = call.sending;
    let view = match &props.media.state {
        LocalMedia::Requesting => html! {
            <p class="notice" role="status" data-testid="media-requesting">
                { "Waiting for camera and microphone…" }
            </p>
        },
        LocalMedia::Live(stream) => html! {
            <>
                <LocalPreview stream={Clone::clone(stream)} />
                if !sending.camera {
                    <div class="placeholder" data-testid="local-video-off">{ "Camera off" }</div>
                }
                if sending.screen {
                    <span class="badge" data-testid="local-sharing">{ "You are sharing your screen" }</span>
                }
            </>
        },
        LocalMedia::Failed(error) => html! {
            <MediaErrorView error={error.clone()} on_retry={props.media.retry.clone()} />
        },
    };
    html! { <div class="self">{ view }</div> }
}
