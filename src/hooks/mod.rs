//! `use_*` hooks: the call and the browser effects tied to a component's
//! life, with cleanup. Browser calls themselves are in [`crate::web`].

mod use_active_speaker;
mod use_call;
mod use_devices;
mod use_focus;
mod use_local_media;
mod use_screen_share;
mod use_shortcuts;

pub use use_active_speaker::use_active_speaker;
pub use use_call::{use_call, use_call_context, CallHandle, Screen, ScreenAction};
pub use use_devices::{use_devices, Devices};
pub use use_focus::{use_focus_on_mount, use_focus_trap};
pub use use_local_media::{use_local_media, LocalMedia, LocalMediaHandle};
pub use use_screen_share::use_screen_share;
pub use use_shortcuts::use_shortcuts;
