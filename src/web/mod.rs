//! The browser glue: the only modules that import `web_sys`. Each wraps one
//! browser API thinly and converts its `JsValue` errors into typed errors once,
//! here, so the rest of the app never sees a raw `JsValue` failure.

use wasm_bindgen::{JsCast, JsValue};

pub mod call;
pub mod channel;
pub mod media;
pub mod page;
pub mod peer;
pub mod signaling;
pub mod spool;
pub mod stats;
pub mod transfer;

/// Calls `target.method(arg)` where the browser has that method (newer
/// APIs web-sys lacks or gates); `false` where it has not, or it threw.
pub(crate) fn call_if_present(target: &JsValue, method: &str, arg: &JsValue) -> bool {
    js_sys::Reflect::get(target, &JsValue::from_str(method))
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
        .is_some_and(|f| f.call1(target, arg).is_ok())
}

/// Whether `target` has `method` (see [`call_if_present`]).
pub(crate) fn has_method(target: &JsValue, method: &str) -> bool {
    js_sys::Reflect::get(target, &JsValue::from_str(method)).is_ok_and(|f| f.is_function())
}
