use std::cell::RefCell;
use std::rc::Rc;

use web_sys::MediaStream;
use yew::prelude::*;

use crate::media::{MediaError, MediaRequest};
use crate::web::media::{get_user_media, media_devices, stop_all};

/// Where the local camera and microphone stand.
#[derive(Clone, Debug, PartialEq)]
pub enum LocalMedia {
    /// Waiting for the browser (and the person, at the permission prompt).
    Requesting,
    /// A live stream.
    Live(MediaStream),
    /// The request failed; the error says why and what to do.
    Failed(MediaError),
}

/// What [`use_local_media`] returns.
#[derive(Clone, PartialEq)]
pub struct LocalMediaHandle {
    /// The current state.
    pub state: LocalMedia,
    /// Asks again (after the person fixed a permission, say).
    pub retry: Callback<()>,
}

/// Opens the camera and microphone while the calling component is mounted,
/// and stops every track when it unmounts or retries.
#[hook]
pub fn use_local_media(request: MediaRequest) -> LocalMediaHandle {
    let state = use_state(|| LocalMedia::Requesting);
    let attempt = use_state(|| 0u32);

    {
        let state = state.clone();
        use_effect_with((*attempt, request), move |&(_, request)| {
            // The stream arrives asynchronously; the cleanup may run before or
            // after it does, so both sides share this slot.
            let slot: Rc<RefCell<Slot>> = Rc::default();
            state.set(LocalMedia::Requesting);
            {
                let slot = slot.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    let result = match web_sys::window() {
                        Some(window) => match media_devices(&window) {
                            Ok(devices) => get_user_media(&devices, request).await,
                            Err(e) => Err(e),
                        },
                        None => Err(MediaError::Unsupported),
                    };
                    let mut slot = slot.borrow_mut();
                    match result {
                        // Cleaned up while the prompt was open: let go at once.
                        Ok(stream) if slot.cancelled => stop_all(&stream),
                        Ok(stream) => {
                            crate::web::page::mark("media");
                            // `Clone::clone`: `stream.clone()` would be JS
                            // `MediaStream.clone()`, with new tracks.
                            slot.stream = Some(Clone::clone(&stream));
                            state.set(LocalMedia::Live(stream));
                        }
                        Err(_) if slot.cancelled => {}
                        Err(e) => state.set(LocalMedia::Failed(e)),
                    }
                });
            }
            move || {
                let mut slot = slot.borrow_mut();
                slot.cancelled = true;
                if let Some(stream) = slot.stream.take() {
                    stop_all(&stream);
                }
            }
        });
    }

    let retry = {
        let attempt = attempt.clone();
        Callback::from(move |()| attempt.set(*attempt + 1))
    };
    LocalMediaHandle {
        state: (*state).clone(),
        retry,
    }
}

#[derive(Default)]
struct Slot {
    cancelled: bool,
    stream: Option<MediaStream>,
}
