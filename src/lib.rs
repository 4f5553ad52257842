//! peercall: browser video calls, peer to peer over WebRTC.
//!
//! This crate is the browser shell around [`peercall_core`], which holds
//! every decision and is tested natively. [`web`] is the only place that
//! talks to the browser through web-sys (tested in real browsers, in
//! `tests/`); [`hooks`] and [`components`] are the Yew screen.

pub mod app;
pub mod components;
pub mod hooks;
pub mod web;

pub use peercall_core::{
    call, channel, config, controls, error, ice, media, mesh, negotiation, phone, room, signaling,
    state, stats, transfer,
};
