//! The root component: which screen, from the URL hash.
//!
//! No room in the hash: the landing page. A room: the call screen for it,
//! or, after hanging up, a screen to rejoin or start anew. The
//! configuration (ICE servers, relay) is loaded once, before the first call.

use gloo_events::EventListener;
use yew::prelude::*;

use crate::components::{InCall, Landing};
use crate::config::CallConfig;
use crate::hooks::use_focus_on_mount;
use crate::media::MediaRequest;
use crate::web::media::{adopt_page_request, drop_early, media_devices, request_early};
use crate::web::page;

#[derive(Clone, PartialEq)]
enum Config {
    Loading,
    Ready(CallConfig, Vec<String>),
    Broken(String),
}

/// The whole app.
#[component]
pub fn App() -> Html {
    let room = use_state(page::current_room);
    let hung_up = use_state(|| false);
    // Turned away (the call is full): why, shown instead of the call.
    let blocked = use_state(|| None::<String>);
    let name = use_state(page::load_name);
    let relay_only = use_state(page::load_relay_only);
    let config = use_state(|| Config::Loading);
    // The relay serving the page calls phones (its /healthz says so).
    let phone_here = use_state(|| false);
    // "Call a phone" on the start page: the call opens with the dialler.
    let phone_intent = use_state(|| false);

    {
        let (room, hung_up) = (room.clone(), hung_up.clone());
        use_effect_with((), move |()| {
            let listener = web_sys::window().map(|w| {
                EventListener::new(&w, "hashchange", move |_| {
                    hung_up.set(false);
                    room.set(page::current_room());
                })
            });
            move || drop(listener)
        });
    }
    {
        let (config, phone_here) = (config.clone(), phone_here.clone());
        let in_a_room = room.is_some();
        use_effect_with((), move |()| {
            // Opening a room link: start the camera now, while the
            // configuration loads; the call screen takes it over.
            // (index.html has usually started it already: take that over.)
            if in_a_room {
                if let Some(window) = web_sys::window() {
                    if let Ok(devices) = media_devices(&window) {
                        let request = MediaRequest::default();
                        if !adopt_page_request(&devices, request) {
                            request_early(&devices, request);
                        }
                    }
                }
            }
            if !in_a_room {
                let phone_here = phone_here.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    phone_here.set(page::relay_calls_phones().await);
                });
            }
            wasm_bindgen_futures::spawn_local(async move {
                let loaded = page::load_config().await;
                page::mark("config");
                config.set(match loaded {
                    Ok((c, relay)) => Config::Ready(c, relay),
                    Err(e) => {
                        // No call screen will come to take the camera
                        // or the socket.
                        drop_early();
                        crate::web::signaling::drop_page_socket();
                        Config::Broken(e)
                    }
                });
            });
        });
    }

    let start = |phone: bool| {
        let (name, relay_only, hung_up) = (name.clone(), relay_only.clone(), hung_up.clone());
        let phone_intent = phone_intent.clone();
        Callback::from(move |(typed, only_turn): (String, bool)| {
            phone_intent.set(phone);
            page::save_name(&typed);
            page::save_relay_only(only_turn);
            name.set(typed.trim().to_owned());
            relay_only.set(only_turn);
            hung_up.set(false);
            match page::random_room_id() {
                Ok(id) => page::set_room(&id),
                Err(e) => web_sys::console::error_1(&e.into()),
            }
        })
    };

    let body = match (&*room, &*config) {
        (None, _) => html! {
            <Landing name={(*name).clone()} relay_only={*relay_only} on_start={start(false)}
                     phone={*phone_here} on_phone={start(true)} />
        },
        (Some(_), Config::Loading) => html! {
            <p class="notice" role="status">{ "Loading…" }</p>
        },
        (Some(_), Config::Broken(e)) => html! {
            <p class="notice error" role="alert" data-testid="config-error">
                { format!("This deployment is misconfigured: {e}") }
            </p>
        },
        (Some(room), Config::Ready(..)) if *hung_up => {
            let rejoin = {
                let hung_up = hung_up.clone();
                Callback::from(move |_: MouseEvent| hung_up.set(false))
            };
            let home = Callback::from(|_: MouseEvent| page::set_room(""));
            html! {
                <section class="notice" data-testid="left">
                    <ScreenHeading text="You left the call" />
                    <p>{ "Your camera and microphone are off." }</p>
                    <div class="row">
                        <button type="button" data-testid="rejoin" onclick={rejoin}>{ "Rejoin" }</button>
                        <button type="button" class="secondary" onclick={home}>{ "New call" }</button>
                    </div>
                    <p class="small">{ format!("Room {room}") }</p>
                </section>
            }
        }
        (Some(_), Config::Ready(..)) if blocked.is_some() => {
            let retry = {
                let blocked = blocked.clone();
                Callback::from(move |_: MouseEvent| blocked.set(None))
            };
            let home = {
                let blocked = blocked.clone();
                Callback::from(move |_: MouseEvent| {
                    blocked.set(None);
                    page::set_room("")
                })
            };
            html! {
                <section class="notice full-screen" role="alert" data-testid="call-full">
                    <ScreenHeading text="This call is full" />
                    <p data-testid="call-blocked">{ (*blocked).clone().unwrap_or_default() }</p>
                    <p class="small">{ "Your camera and microphone are off." }</p>
                    <div class="row">
                        <button type="button" data-testid="retry-join" onclick={retry}>{ "Try again" }</button>
                        <button type="button" class="secondary" onclick={home}>{ "New call" }</button>
                    </div>
                </section>
            }
        }
        (Some(room), Config::Ready(call_config, relays)) => {
            let on_blocked = {
                let blocked = blocked.clone();
                Callback::from(move |why: String| blocked.set(Some(why)))
            };
            let on_hang_up = {
                let hung_up = hung_up.clone();
                Callback::from(move |()| hung_up.set(true))
            };
            let name = Some((*name).clone()).filter(|n| !n.is_empty());
            // The deployment or the address may ask for relay-only; the
            // person's own choice can only add to that.
            let mut call_config = call_config.clone();
            call_config.relay_only |= *relay_only;
            html! {
                <InCall key={room.clone()} room={room.clone()} {name} config={call_config}
                        relays={relays.clone()} {on_hang_up} {on_blocked}
                        open_phone={*phone_intent} />
            }
        }
    };
    html! {
        <>
            <header class="bar">
                <h1 class="brand">{ "peercall" }</h1>
                if let Some(room) = &*room {
                    <CopyLink room={room.clone()} />
                }
            </header>
            <main class="stage">{ body }</main>
        </>
    }
}

#[derive(Properties, PartialEq)]
struct CopyLinkProps {
    room: String,
}

/// The room's link and a button that copies it.
#[component]
fn CopyLink(props: &CopyLinkProps) -> Html {
    let copied = use_state(|| None::<bool>);
    let link = page::room_link(&props.room);
    let onclick = {
        let (copied, link) = (copied.clone(), link.clone());
        Callback::from(move |_: MouseEvent| {
            let (copied, link) = (copied.clone(), link.clone());
            wasm_bindgen_futures::spawn_local(async move {
                copied.set(Some(page::copy(&link).await.is_ok()));
            });
        })
    };
    let label = match *copied {
        None => "Copy link",
        Some(true) => "Copied",
        Some(false) => "Copy failed: select the link",
    };
    html! {
        <div class="share">
            <input class="link" readonly=true value={link} aria-label="Link to this call" data-testid="room-link" />
            <button type="button" title="Copy the link to this call" data-testid="copy-link" {onclick}>{ label }</button>
            <span class="visually-hidden" role="status">
                { if *copied == Some(true) { "The link is copied." } else { "" } }
            </span>
        </div>
    }
}

#[derive(Properties, PartialEq)]
struct ScreenHeadingProps {
    text: AttrValue,
}

/// A screen's heading, which takes the focus when the screen appears: a
/// screen reader says where the person is, and Tab goes on from there.
#[component]
fn ScreenHeading(props: &ScreenHeadingProps) -> Html {
    let node = use_node_ref();
    use_focus_on_mount(node.clone());
    html! { <h2 tabindex="-1" ref={node}>{ &props.text }</h2> }
}
