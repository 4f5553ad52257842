//! The page's own events and elements, for the call screen: keyboard
//! shortcuts, a track's content hint, the object URLs of received files.

use gloo_events::EventListener;
use wasm_bindgen::JsCast;

use crate::controls::{shortcut, Key, Shortcut};

/// Calls `on_shortcut` for each call shortcut pressed anywhere on the page
/// (not while typing in a field), for as long as the listener lives.
pub fn on_shortcut(on_shortcut: impl Fn(Shortcut) + 'static) -> Option<EventListener> {
    let window = web_sys::window()?;
    Some(EventListener::new(&window, "keydown", move |e| {
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
    }))
}
