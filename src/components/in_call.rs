use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use web_sys::{MediaStream, RtcPeerConnection};
use yew::prelude::*;

use crate::components::{Connection, LocalPreview, MediaErrorView, RemoteVideo, StatsPanel};
use crate::config::CallConfig;
use crate::hooks::{use_local_media, LocalMedia};
use crate::media::MediaRequest;
use crate::state::{CallAction, CallState, RelayStatus};
use crate::web::call::{Call, CallUpdate};

/// Props of [`InCall`].
#[derive(Properties, PartialEq)]
pub struct InCallProps {
    /// The room id.
    pub room: String,
    /// Our display name.
    #[prop_or_default]
    pub name: Option<String>,
    /// ICE servers and such.
    pub config: CallConfig,
    /// The relay's WebSocket URL.
    pub relay_url: String,
    /// The person hung up (the call is already closed and the camera off
    /// once this component unmounts).
    pub on_hang_up: Callback<()>,
}

/// Remote streams and peer connections by peer id. Kept out of
/// [`CallState`] so that stays pure.
#[derive(Default, PartialEq)]
struct Streams {
    media: BTreeMap<String, MediaStream>,
    connections: BTreeMap<String, RtcPeerConnection>,
}

enum StreamAction {
    Set(String, MediaStream),
    Connection(String, RtcPeerConnection),
    Remove(String),
}

impl Reducible for Streams {
    type Action = StreamAction;
    fn reduce(self: Rc<Self>, action: StreamAction) -> Rc<Self> {
        let (mut media, mut connections) = (self.media.clone(), self.connections.clone());
        match action {
            StreamAction::Set(id, stream) => {
                media.insert(id, stream);
            }
            StreamAction::Connection(id, pc) => {
                connections.insert(id, pc);
            }
            StreamAction::Remove(id) => {
                media.remove(&id);
                connections.remove(&id);
            }
        }
        Rc::new(Streams { media, connections })
    }
}

/// The call screen: the call starts at once, the camera joins it when on.
#[component]
pub fn InCall(props: &InCallProps) -> Html {
    let media = use_local_media(MediaRequest::default());
    let state = use_reducer(CallState::default);
    let streams = use_reducer(Streams::default);
    let call: Rc<RefCell<Option<Call>>> = use_mut_ref(|| None);
    let show_stats = use_state(|| false);

    let live = match &media.state {
        LocalMedia::Live(stream) => Some(Clone::clone(stream)),
        _ => None,
    };
    {
        let (state, streams, call) = (state.dispatcher(), streams.dispatcher(), call.clone());
        let (room, name, config, relay_url) = (
            props.room.clone(),
            props.name.clone(),
            props.config.clone(),
            props.relay_url.clone(),
        );
        // The call starts at once, while the camera is still starting (it
        // joins, negotiates and connects meanwhile); our media follows.
        use_effect_with((), move |()| {
            let on_update = move |update: CallUpdate| match update {
                CallUpdate::RemoteStream { id, stream } => {
                    streams.dispatch(StreamAction::Set(id, stream))
                }
                CallUpdate::Connection { id, pc } => {
                    streams.dispatch(StreamAction::Connection(id, pc))
                }
                CallUpdate::State(action) => {
                    if let CallAction::Left { id, .. } = &action {
                        streams.dispatch(StreamAction::Remove(id.clone()));
                    }
                    state.dispatch(action);
                }
            };
            match Call::start(config, relay_url, room, name, on_update) {
                Ok(c) => *call.borrow_mut() = Some(c),
                Err(message) => web_sys::console::error_1(&message.into()),
            }
            move || {
                // Dropping the call sends the goodbye and closes every
                // peer connection; the media hook stops the camera.
                call.borrow_mut().take();
            }
        });
    }
    {
        let call = call.clone();
        use_effect_with(live, move |live| {
            if let (Some(local), Some(call)) = (live, call.borrow().as_ref()) {
                call.set_local(Clone::clone(local));
            }
        });
    }

    let hang_up = {
        let (call, on_hang_up) = (call.clone(), props.on_hang_up.clone());
        Callback::from(move |_: MouseEvent| {
            if let Some(mut c) = call.borrow_mut().take() {
                c.hang_up();
            }
            on_hang_up.emit(());
        })
    };

    let local = match &media.state {
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
    let relay = match &state.relay {
        RelayStatus::Connecting => html! {},
        RelayStatus::Connected => html! {},
        RelayStatus::Lost {
            reason,
            retry_in_ms,
        } => html! {
            <p class="notice error" role="alert" data-testid="relay-lost">
                { format!(
                    "Can't reach the call server ({reason}). Trying again in {} s…",
                    retry_in_ms.div_ceil(1000)
                ) }
            </p>
        },
    };
    let remotes: Html = state
        .peers
        .iter()
        .map(|(id, peer)| {
            html! {
                <RemoteVideo
                    key={id.clone()}
                    name={peer.name.clone()}
                    status={peer.status}
                    stream={streams.media.get(id).cloned()}
                />
            }
        })
        .collect();
    let toggle_stats = {
        let show_stats = show_stats.clone();
        Callback::from(move |_: MouseEvent| show_stats.set(!*show_stats))
    };
    let connections: Vec<Connection> = streams
        .connections
        .iter()
        .filter_map(|(id, pc)| {
            state.peers.get(id).map(|p| Connection {
                id: id.clone(),
                name: p.name.clone(),
                pc: pc.clone(),
            })
        })
        .collect();
    let waiting =
        state.alone() && state.blocked.is_none() && matches!(media.state, LocalMedia::Live(_));
    html! {
        <section class="call" aria-label="Call">
            if let Some(blocked) = &state.blocked {
                <p class="notice error" role="alert" data-testid="call-blocked">{ blocked }</p>
            }
            { relay }
            <div class={classes!("tiles", (state.peers.len() > 1).then_some("many"))}>
                { remotes }
                if waiting {
                    <p class="notice waiting" role="status" data-testid="waiting">
                        { "Waiting for someone to join. Share the link to invite them." }
                    </p>
                }
            </div>
            <div class="self">{ local }</div>
            if let Some(notice) = &state.notice {
                <p class="toast" role="status" aria-live="polite" data-testid="notice">{ notice }</p>
            }
            if *show_stats {
                <StatsPanel {connections} />
            }
            <div class="controls">
                <button type="button" class="secondary" aria-pressed={show_stats.to_string()}
                        aria-label="Connection statistics" data-testid="stats-toggle"
                        onclick={toggle_stats}>
                    { "Stats" }
                </button>
                <button type="button" class="hang-up" aria-label="Hang up" data-testid="hang-up" onclick={hang_up}>
                    { "Hang up" }
                </button>
            </div>
        </section>
    }
}
