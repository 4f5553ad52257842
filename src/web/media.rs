//! `getUserMedia`, thinly wrapped
//! (<https://developer.mozilla.org/en-US/docs/Web/API/MediaDevices/getUserMedia>).

use std::cell::RefCell;

use js_sys::{Object, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{MediaDevices, MediaStream, MediaStreamConstraints, MediaStreamTrack, Window};

use crate::media::{MediaError, MediaRequest};

/// The window's `navigator.mediaDevices`, or why there is none.
///
/// Browsers hide `mediaDevices` outside a secure context (HTTPS or localhost),
/// so its absence there is reported as [`MediaError::InsecureContext`] rather
/// than as an unsupported browser.
pub fn media_devices(window: &Window) -> Result<MediaDevices, MediaError> {
    let devices = Reflect::get(&window.navigator(), &JsValue::from_str("mediaDevices"))
        .unwrap_or(JsValue::UNDEFINED);
    if devices.is_undefined() || devices.is_null() {
        return Err(if window.is_secure_context() {
            MediaError::Unsupported
        } else {
            MediaError::InsecureContext
        });
    }
    devices
        .dyn_into::<MediaDevices>()
        .map_err(|_| MediaError::Unsupported)
}

thread_local! {
    /// A request started before the call screen mounted ([`request_early`]).
    static EARLY: RefCell<Option<(MediaRequest, Promise)>> = const { RefCell::new(None) };
}

/// Starts `getUserMedia` for `request` now: the app does this as soon as
/// it sees a room in the URL, so the camera (and the permission prompt)
/// starts while the configuration loads, not after. The call screen's
/// first [`get_user_media`] takes the request over; [`drop_early`] lets it
/// go when no call screen comes.
pub fn request_early(devices: &MediaDevices, request: MediaRequest) {
    if let Ok(promise) = devices.get_user_media_with_constraints(&constraints(request)) {
        EARLY.with(|e| *e.borrow_mut() = Some((request, promise)));
    }
}

/// Stops the stream of an early request nobody took, when it comes.
pub fn drop_early() {
    if let Some((_, promise)) = EARLY.with(|e| e.borrow_mut().take()) {
        stop_when_resolved(promise);
    }
}

fn stop_when_resolved(promise: Promise) {
    wasm_bindgen_futures::spawn_local(async move {
        if let Ok(stream) = JsFuture::from(promise).await {
            if let Ok(stream) = stream.dyn_into::<MediaStream>() {
                stop_all(&stream);
            }
        }
    });
}

fn constraints(request: MediaRequest) -> MediaStreamConstraints {
    let constraints = MediaStreamConstraints::new();
    constraints.set_audio(&JsValue::from_bool(request.audio));
    constraints.set_video(&match request.video {
        Some((width, height)) => {
            let video = Object::new();
            set(&video, "width", &ideal(width));
            set(&video, "height", &ideal(height));
            video.into()
        }
        None => JsValue::FALSE,
    });
    constraints
}

/// Asks `devices` for a stream as described by `request` (or takes over the
/// early request for the same media, see [`request_early`]).
///
/// `devices` is a parameter (not looked up here) so a test can pass the
/// `mediaDevices` of a frame that a permissions policy forbids the camera.
pub async fn get_user_media(
    devices: &MediaDevices,
    request: MediaRequest,
) -> Result<MediaStream, MediaError> {
    let early = match EARLY.with(|e| e.borrow_mut().take()) {
        Some((asked, promise)) if asked == request => Some(promise),
        Some((_, other)) => {
            stop_when_resolved(other);
            None
        }
        None => None,
    };
    let promise = match early {
        Some(promise) => promise,
        None => devices
            .get_user_media_with_constraints(&constraints(request))
            .map_err(media_error)?,
    };
    let stream = JsFuture::from(promise).await.map_err(media_error)?;
    stream
        .dyn_into::<MediaStream>()
        .map_err(|v| MediaError::Other {
            name: "TypeError".into(),
            message: format!("getUserMedia resolved to a non-stream: {v:?}"),
        })
}

/// Stops every track of `stream`, which turns the camera light off and ends
/// the grant. Safe to call more than once.
pub fn stop_all(stream: &MediaStream) {
    for track in stream.get_tracks().iter() {
        if let Ok(track) = track.dyn_into::<MediaStreamTrack>() {
            track.stop();
        }
    }
}

/// Converts what a `getUserMedia` promise rejected with into a [`MediaError`],
/// keeping the exception's `name` (NotAllowedError, NotFoundError, ...).
pub fn media_error(err: JsValue) -> MediaError {
    let field = |key: &str| {
        Reflect::get(&err, &JsValue::from_str(key))
            .ok()
            .and_then(|v| v.as_string())
    };
    let name = field("name").unwrap_or_else(|| "Error".into());
    let message = field("message").unwrap_or_else(|| format!("{err:?}"));
    MediaError::from_dom(&name, &message, field("constraint").as_deref())
}

fn ideal(value: u32) -> JsValue {
    let o = Object::new();
    set(&o, "ideal", &JsValue::from(value));
    o.into()
}

fn set(target: &Object, key: &str, value: &JsValue) {
    // Setting a plain property on a fresh Object cannot fail.
    let _ = Reflect::set(target, &JsValue::from_str(key), value);
}

const FRAME_CALLBACK: &str = "requestVideoFrameCallback";

/// Calls `f` when `video` presents its next frame, through
/// `requestVideoFrameCallback` (the moment a frame is composited, not just
/// decoded); `false`, and `f` dropped, where the browser lacks it.
pub fn on_next_frame(video: &web_sys::HtmlVideoElement, f: impl FnOnce() + 'static) -> bool {
    let callback = wasm_bindgen::closure::Closure::once_into_js(f);
    crate::web::call_if_present(video, FRAME_CALLBACK, &callback)
}

/// Whether the browser has `requestVideoFrameCallback` ([`on_next_frame`]).
pub fn has_frame_callback(video: &web_sys::HtmlVideoElement) -> bool {
    crate::web::has_method(video, FRAME_CALLBACK)
}
