//! The browser glue: the only modules that import `web_sys`. Each wraps one
//! browser API thinly and converts its `JsValue` errors into a [`JsError`]
//! once, here, so the rest of the app never sees a raw `JsValue` failure.

use std::fmt;

use wasm_bindgen::{JsCast, JsValue};

pub mod call;
pub mod channel;
pub mod dom;
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

/// A browser call that failed: what was attempted, and the browser's words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsError {
    /// What we tried ("setRemoteDescription").
    pub what: &'static str,
    /// What the browser said ("InvalidStateError: ..."), if anything.
    pub detail: String,
}

impl JsError {
    /// `what` failed with the thrown value `e`.
    pub fn new(what: &'static str, e: &JsValue) -> Self {
        Self {
            what,
            detail: describe(e),
        }
    }

    /// `what` is not possible here, with no thrown value to tell.
    pub fn missing(what: &'static str) -> Self {
        Self {
            what,
            detail: String::new(),
        }
    }
}

impl fmt::Display for JsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.detail.is_empty() {
            write!(f, "{}", self.what)
        } else {
            write!(f, "{} failed: {}", self.what, self.detail)
        }
    }
}

impl std::error::Error for JsError {}

impl From<JsError> for JsValue {
    fn from(e: JsError) -> Self {
        JsValue::from_str(&e.to_string())
    }
}

impl From<JsError> for String {
    fn from(e: JsError) -> Self {
        e.to_string()
    }
}

/// A thrown value in words: an `Error`'s name and message, a string as it
/// is, anything else as the console would show it.
pub fn describe(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| format!("{}: {}", e.name(), e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}
