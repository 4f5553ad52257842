//! View components: data and callbacks in, HTML out.

mod local_preview;
mod media_error;

pub use local_preview::{LocalPreview, LocalPreviewProps};
pub use media_error::{MediaErrorView, MediaErrorViewProps};
