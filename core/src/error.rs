//! The errors and codes the call deals in, typed.
//!
//! - [`ErrorCode`]: a relay's (or a peer's) refusal, from the protocol;
//!   unknown codes stay readable as [`ErrorCode::Other`].
//! - [`ConfigError`]: a configuration value, relay address or server
//!   answer that cannot be used, with where it came from.
//!
//! Browser failures are `JsError` in the app's `web` module, the one
//! place that sees a `JsValue`.

use std::fmt;

pub use peercall_protocol::ErrorCode;

/// A setting or answer that cannot be used; the text says which and why
/// ("the page address: max_people \"9\" must be a number from 2 to 6").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl From<String> for ConfigError {
    fn from(message: String) -> Self {
        ConfigError(message)
    }
}

impl From<&str> for ConfigError {
    fn from(message: &str) -> Self {
        ConfigError(message.to_owned())
    }
}

impl From<ConfigError> for String {
    fn from(e: ConfigError) -> Self {
        e.0
    }
}
