//! `use_*` hooks: browser effects tied to a component's life, with cleanup.

mod use_active_speaker;
mod use_local_media;

pub use use_active_speaker::use_active_speaker;
pub use use_local_media::{use_local_media, LocalMedia, LocalMediaHandle};
