//! peercall's call logic, with no browser in it.
//!
//! Everything here is plain Rust over plain data, built and unit-tested
//! natively (`cargo test -p peercall-core`); the crate cannot reach
//! web-sys because it does not depend on it. The web app (`src/`) feeds
//! these modules what the browser reports and carries out what they
//! decide; the benchmark uses them without the app.
//!
//! - [`room`]: who is in the room, over any relay (sans I/O).
//! - [`negotiation`]: perfect negotiation for one connection.
//! - [`call`]: the call itself: per-peer policy (when to connect, send,
//!   restart ICE, explain a failure, keep or drop a peer) as a state
//!   machine fed inputs with the time, giving outputs.
//! - [`state`]: what the call screen shows, as a reducer.
//! - [`ice`], [`config`], [`signaling`]: ICE servers and credentials,
//!   the app's configuration, the relay address.
//! - [`channel`], [`transfer`]: data-channel messages and file transfer.
//! - [`media`], [`controls`], [`mesh`], [`stats`]: devices, shortcuts,
//!   the upload budget and speaker detection, connection statistics.
//! - [`error`]: the typed errors and codes shared by all of these.

pub mod call;
pub mod channel;
pub mod config;
pub mod controls;
pub mod error;
pub mod ice;
pub mod media;
pub mod mesh;
pub mod negotiation;
pub mod phone;
pub mod room;
pub mod safety;
pub mod signaling;
pub mod state;
pub mod stats;
pub mod transfer;
