//! The page itself: the room in the URL hash, the remembered name, the
//! query string, `config.json`, and the clipboard.

use gloo_net::http::Request;
use wasm_bindgen::{JsCast, JsValue};

use crate::config::{new_room_id, room_from_hash, CallConfig};
use crate::signaling::same_origin_relay;
use crate::web::JsError;

const NAME_KEY: &str = "peercall.name";
const RELAY_ONLY_KEY: &str = "peercall.relayOnly";

/// The room named in the page's hash, if any.
/// Records a moment of the call's setup as `performance.mark("peercall:NAME")`
/// (start, media, relay-open, joined, negotiated, connected, first-frame):
/// the benchmark's breakdown reads them, and so does a browser's
/// performance panel.
pub fn mark(name: &str) {
    if let Some(p) = web_sys::window().and_then(|w| w.performance()) {
        let _ = p.mark(&format!("peercall:{name}"));
    }
}

/// The room id in the page's URL, if any.
pub fn current_room() -> Option<String> {
    let hash = web_sys::window()?.location().hash().ok()?;
    room_from_hash(&hash)
}

/// Puts `room` in the hash (`""` for none); `hashchange` follows.
pub fn set_room(room: &str) {
    if let Some(window) = web_sys::window() {
        let _ = window.location().set_hash(room);
    }
}

/// 128 bits from `crypto.getRandomValues`.
pub fn random_128_bits() -> Result<[u8; 16], JsError> {
    let crypto = web_sys::window()
        .ok_or_else(|| JsError::missing("no window"))?
        .crypto()
        .map_err(|e| JsError::new("window.crypto", &e))?;
    let mut bytes = [0u8; 16];
    crypto
        .get_random_values_with_u8_array(&mut bytes)
        .map_err(|e| JsError::new("crypto.getRandomValues", &e))?;
    Ok(bytes)
}

/// A new room id from `crypto.getRandomValues`.
pub fn random_room_id() -> Result<String, JsError> {
    random_128_bits().map(new_room_id)
}

/// The link to `room` on this page.
pub fn room_link(room: &str) -> String {
    let Some(location) = web_sys::window().map(|w| w.location()) else {
        return format!("#{room}");
    };
    format!(
        "{}{}{}#{room}",
        location.origin().unwrap_or_default(),
        location.pathname().unwrap_or_default(),
        location.search().unwrap_or_default()
    )
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

/// The display name given last time, if any.
pub fn load_name() -> String {
    storage()
        .and_then(|s| s.get_item(NAME_KEY).ok().flatten())
        .unwrap_or_default()
}

/// Remembers the display name on this device.
pub fn save_name(name: &str) {
    if let Some(s) = storage() {
        let _ = if name.trim().is_empty() {
            s.remove_item(NAME_KEY)
        } else {
            s.set_item(NAME_KEY, name.trim())
        };
    }
}

/// Whether this person chose to send media only through TURN.
pub fn load_relay_only() -> bool {
    storage()
        .and_then(|s| s.get_item(RELAY_ONLY_KEY).ok().flatten())
        .is_some_and(|v| v == "1")
}

/// Remembers that choice on this device.
pub fn save_relay_only(on: bool) {
    if let Some(s) = storage() {
        let _ = if on {
            s.set_item(RELAY_ONLY_KEY, "1")
        } else {
            s.remove_item(RELAY_ONLY_KEY)
        };
    }
}

/// Copies `text` to the clipboard.
pub async fn copy(text: &str) -> Result<(), JsError> {
    let clipboard = web_sys::window()
        .ok_or_else(|| JsError::missing("no window"))?
        .navigator()
        .clipboard();
    wasm_bindgen_futures::JsFuture::from(clipboard.write_text(text))
        .await
        .map(drop)
        .map_err(|e: JsValue| JsError::new("copying to the clipboard", &e))
}

/// The relay on the page's own origin (`/ws`).
pub fn page_relay_url() -> Option<String> {
    let location = web_sys::window()?.location();
    Some(same_origin_relay(
        &location.protocol().ok()?,
        &location.host().ok()?,
    ))
}

/// The call configuration: built in, then `config.json` beside the app
/// (absent is fine), then the query string; and the relay URLs to use
/// (the page's own origin when none is configured).
pub async fn load_config() -> Result<(CallConfig, Vec<String>), String> {
    let mut config = CallConfig::built_in();
    // The page's script has usually fetched it already (index.html).
    let fetched = early()
        .and_then(|e| take_field(&e, "config"))
        .and_then(|p| p.dyn_into::<js_sys::Promise>().ok());
    let text = match fetched {
        Some(promise) => wasm_bindgen_futures::JsFuture::from(promise)
            .await
            .ok()
            .and_then(|t| t.as_string()),
        None => fetch_config().await?,
    };
    // No config.json (404) or none reachable: the built-in defaults.
    if let Some(text) = text {
        config = config.with_file(&text)?;
    }
    let search = web_sys::window()
        .and_then(|w| w.location().search().ok())
        .unwrap_or_default();
    let params = web_sys::UrlSearchParams::new_with_str(&search)
        .map_err(|_| "cannot read the page's query string")?;
    let pairs: Vec<(&str, String)> = crate::config::QUERY_KEYS
        .iter()
        .filter_map(|key| Some((*key, params.get(key)?)))
        .collect();
    config = config.with_query(pairs.iter().map(|(k, v)| (*k, v.as_str())))?;
    let relays = match config.relays.as_slice() {
        [] => vec![page_relay_url().ok_or("cannot tell the page's address")?],
        urls => urls.to_vec(),
    };
    Ok((config, relays))
}

async fn fetch_config() -> Result<Option<String>, String> {
    match Request::get("config.json").send().await {
        Ok(res) if res.ok() => res
            .text()
            .await
            .map(Some)
            .map_err(|e| format!("config.json: {e}")),
        _ => Ok(None),
    }
}

/// What `index.html`'s script started before the wasm ran
/// (`window.peercallEarly`: `config`, `media` and `ask`, `socket` and
/// `kept`), each taken over by the part of the app that needs it.
pub fn early() -> Option<JsValue> {
    let window = web_sys::window()?;
    js_sys::Reflect::get(&window, &JsValue::from_str("peercallEarly"))
        .ok()
        .filter(|e| e.is_object())
}

/// `early[name]`, removed from it: each is taken over once.
pub fn take_field(early: &JsValue, name: &str) -> Option<JsValue> {
    let key = JsValue::from_str(name);
    let value = js_sys::Reflect::get(early, &key).ok()?;
    if value.is_undefined() || value.is_null() {
        return None;
    }
    let _ = js_sys::Reflect::delete_property(early.unchecked_ref::<js_sys::Object>(), &key);
    Some(value)
}

/// Whether the relay serving this page calls phones (its `/healthz`
/// says `"phone": true`); false for any other host, which the call
/// screen learns from the relay's `welcome` instead.
pub async fn relay_calls_phones() -> bool {
    let Ok(res) = Request::get("healthz").send().await else {
        return false;
    };
    if !res.ok() {
        return false;
    }
    let text = res.text().await.unwrap_or_default();
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("phone")?.as_bool())
        .unwrap_or(false)
}
