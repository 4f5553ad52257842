//! peercall: browser video calls, peer to peer over WebRTC.
//!
//! The modules outside [`web`] and [`hooks`] are pure Rust and are unit-tested
//! natively with `cargo test`; [`web`] is the only place that talks to the
//! browser through web-sys, and it is tested in real browsers (`tests/`).

pub mod app;
pub mod channel;
pub mod components;
pub mod config;
pub mod controls;
pub mod hooks;
pub mod ice;
pub mod media;
pub mod mesh;
pub mod negotiation;
pub mod room;
pub mod signaling;
pub mod state;
pub mod stats;
pub mod transfer;
pub mod web;
