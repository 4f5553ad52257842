//! The page's own events and elements, for the call screen: keyboard
//! shortcuts, focus kept inside an open panel, a track's content hint, the
//! object URLs of received files.

use gloo_events::EventListener;
use wasm_bindgen::JsCast;

use crate::controls::{shortcut, Key, Shortcut};

/// Calls `on_shortcut` for each call shortcut pressed anywhere on the page
/// (not while typing in a field), for as long as the listener lives.
pub fn on_shortcut(on_shortcut: impl Fn(Shortcut) + 'static) -> Option<EventListener> {
    let window = web_sys::window()?;
    let options = gloo_events::EventListenerOptions::enable_prevent_default();
    Some(EventListener::new_with_options(
        &window,
        "keydown",
        options,
        move |e| {
            let Some(e) = e.dyn_ref::<web_sys::KeyboardEvent>() else {
                return;
            };
            let typing = e
                .target()
                .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
                .is_some_and(|el| {
                    matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT")
                        || el.has_attribute("contenteditable")
                });
            let key = e.key();
            let Some(action) = shortcut(Key {
                key: &key,
                shift: e.shift_key(),
                other_modifier: e.ctrl_key() || e.alt_key() || e.meta_key(),
                typing,
                repeat: e.repeat(),
            }) else {
                return;
            };
            e.prevent_default();
            on_shortcut(action);
        },
    ))
}

/// What can take the focus (by Tab) inside a panel; none of ours has a
/// positive `tabindex`, so document order is tab order.
const FOCUSABLE: &str = "a[href], button:not([disabled]), input:not([disabled]), \
    select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex='-1'])";

/// The element that has the focus now, if it is an HTML element.
pub fn focused() -> Option<web_sys::HtmlElement> {
    web_sys::window()?
        .document()?
        .active_element()?
        .dyn_into::<web_sys::HtmlElement>()
        .ok()
}

/// The focusable elements inside `root` that are shown, in tab order.
fn focusable_in(root: &web_sys::Element) -> Vec<web_sys::HtmlElement> {
    let Ok(list) = root.query_selector_all(FOCUSABLE) else {
        return Vec::new();
    };
    (0..list.length())
        .filter_map(|i| list.item(i)?.dyn_into::<web_sys::HtmlElement>().ok())
        .filter(|el| el.offset_width() > 0 || el.offset_height() > 0)
        .collect()
}

/// Keeps Tab inside `root` and calls `on_escape` for Escape, while the
/// listener lives; first moves the focus into it (to its
/// `[data-autofocus]` element, else its first focusable one).
pub fn trap_focus(root: &web_sys::Element, on_escape: impl Fn() + 'static) -> EventListener {
    let first = root
        .query_selector("[data-autofocus]")
        .ok()
        .flatten()
        .and_then(|el| el.dyn_into::<web_sys::HtmlElement>().ok())
        .or_else(|| focusable_in(root).into_iter().next());
    if let Some(el) = first {
        let _ = el.focus();
    }
    let inside = root.clone();
    // Not passive: the Tab it moves itself must not move the focus again.
    let options = gloo_events::EventListenerOptions::enable_prevent_default();
    EventListener::new_with_options(root, "keydown", options, move |e| {
        let Some(e) = e.dyn_ref::<web_sys::KeyboardEvent>() else {
            return;
        };
        match e.key().as_str() {
            "Escape" => {
                e.prevent_default();
                e.stop_propagation();
                on_escape();
            }
            "Tab" => {
                let all = focusable_in(&inside);
                let now = focused();
                let current = all.iter().position(|el| Some(el) == now.as_ref());
                match crate::controls::trapped_tab(all.len(), current, e.shift_key()) {
                    Some(i) => {
                        e.prevent_default();
                        let _ = all[i].focus();
                    }
                    None if all.is_empty() => e.prevent_default(),
                    None => {}
                }
            }
            _ => {}
        }
    })
}

/// Each remote tile's video height in device pixels, by peer id
/// (`data-peer`): what the SFU's simulcast layer is picked for.
pub fn tile_heights() -> Vec<(String, u32)> {
    let Some(window) = web_sys::window() else {
        return Vec::new();
    };
    let ratio = window.device_pixel_ratio();
    let Some(tiles) = window
        .document()
        .and_then(|d| d.query_selector_all("[data-testid=remote-tile]").ok())
    else {
        return Vec::new();
    };
    (0..tiles.length())
        .filter_map(|i| {
            let tile = tiles.item(i)?.dyn_into::<web_sys::Element>().ok()?;
            let peer = tile.get_attribute("data-peer")?;
            let video = tile.query_selector("video").ok()??;
            let height = f64::from(video.client_height()) * ratio;
            Some((peer, height.round() as u32))
        })
        .collect()
}
