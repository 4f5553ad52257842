//! The signaling protocol shared by the peercall app and relay.
//!
//! Every peer and relay that speaks it agrees on these constants; the message
//! types are specified in `docs/PROTOCOL.md`.
#![forbid(unsafe_code)]

/// The version of the signaling protocol this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// The path, on the app's own origin, where the signaling WebSocket lives.
/// The relay serves it there, and `trunk serve` proxies it there.
pub const WS_PATH: &str = "/ws";
