//! View components: data and callbacks in, HTML out. `InCall` is the one
//! stateful screen: it owns the camera (through `use_local_media`) and the
//! call (`use_call`) for as long as it is mounted, and shares the call with
//! its parts (`Tiles`, `SelfView`, `CallControls`) through a context.

mod announcer;
mod call_controls;
mod chat_panel;
mod device_picker;
mod dialog;
mod in_call;
mod landing;
mod local_preview;
mod media_error;
mod phone_panel;
mod remote_video;
mod stats_panel;
mod tiles;

pub use announcer::{Announcer, AnnouncerProps};
pub use call_controls::{CallControls, CallControlsProps};
pub use chat_panel::{ChatPanel, ChatPanelProps};
pub use device_picker::{DevicePicker, DevicePickerProps};
pub use dialog::{Dialog, DialogProps};
pub use in_call::{InCall, InCallProps};
pub use landing::{Landing, LandingProps};
pub use local_preview::{LocalPreview, LocalPreviewProps};
pub use media_error::{MediaErrorView, MediaErrorViewProps};
pub use phone_panel::{PhonePanel, PhonePanelProps};
pub use remote_video::{RemoteVideo, RemoteVideoProps};
pub use stats_panel::{Connection, StatsPanel, StatsPanelProps};
pub use tiles::{SelfView, SelfViewProps, Tiles, TilesProps};
