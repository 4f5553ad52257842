//! The browser glue: the only modules that import `web_sys`. Each wraps one
//! browser API thinly and converts its `JsValue` errors into typed errors once,
//! here, so the rest of the app never sees a raw `JsValue` failure.

pub mod call;
pub mod media;
pub mod page;
pub mod peer;
pub mod signaling;
pub mod stats;
