//! `getUserMedia`, thinly wrapped
//! (<https://developer.mozilla.org/en-US/docs/Web/API/MediaDevices/getUserMedia>).

use std::cell::RefCell;

use js_sys::{Object, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{MediaDevices, MediaStream, MediaStreamConstraints, MediaStreamTrack, Window};

use crate::media::{Device, DeviceKind, MediaError, MediaRequest};

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

/// Takes over the camera request `index.html` started before the wasm ran
/// (`peercallEarly.media`, and `.ask`, what it asked for), as if
/// [`request_early`] had made it: returns whether there was one. One that
/// asked for other media than `request` is stopped and `request` is asked
/// for instead, so the page's script can never make a call start with the
/// wrong camera settings, only later.
pub fn adopt_page_request(devices: &MediaDevices, request: MediaRequest) -> bool {
    let Some(early) = crate::web::page::early() else {
        return false;
    };
    let Some(media) = crate::web::page::take_field(&early, "media") else {
        return false;
    };
    let asked =
        crate::web::page::take_field(&early, "ask").and_then(|a| js_sys::JSON::stringify(&a).ok());
    let ours = js_sys::JSON::stringify(&constraints(request)).ok();
    match media.dyn_into::<Promise>() {
        Ok(promise) if asked.is_some() && asked == ours => {
            EARLY.with(|e| *e.borrow_mut() = Some((request, promise)));
        }
        other => {
            web_sys::console::warn_1(
                &"peercall: the page asked for other media than the call; asking again".into(),
            );
            if let Ok(promise) = other {
                stop_when_resolved(promise);
            }
            request_early(devices, request);
        }
    }
    true
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

/// `getDisplayMedia({video: true})`: a screen, window or tab the person
/// picks; `Ok(None)` when they cancel the picker.
pub async fn get_display_media() -> Result<Option<MediaStream>, MediaError> {
    let window = web_sys::window().ok_or(MediaError::Unsupported)?;
    let devices = media_devices(&window)?;
    if !crate::web::has_method(&devices, "getDisplayMedia") {
        return Err(MediaError::Unsupported);
    }
    let constraints = web_sys::DisplayMediaStreamConstraints::new();
    constraints.set_video(&JsValue::TRUE);
    constraints.set_audio(&JsValue::FALSE);
    let promise = devices
        .get_display_media_with_constraints(&constraints)
        .map_err(media_error)?;
    match JsFuture::from(promise).await {
        Ok(stream) => Ok(stream.dyn_into::<MediaStream>().ok()),
        Err(e) => match crate::media::screen_share_error(media_error(e)) {
            None => Ok(None),
            Some(e) => Err(e),
        },
    }
}

/// A shared screen: its stream (stopped when this is dropped), its video
/// track, and the listener for the browser's own "Stop sharing".
pub struct SharedScreen {
    stream: MediaStream,
    /// The video track to send.
    pub track: MediaStreamTrack,
    _ended: gloo_events::EventListener,
}

impl Drop for SharedScreen {
    fn drop(&mut self) {
        stop_all(&self.stream);
    }
}

/// Asks the person for a screen to share ([`get_display_media`]), marked
/// for text (`contentHint = "detail"`: sharp rather than smooth);
/// `on_ended` runs when the browser ends it. `Ok(None)`: they cancelled.
pub async fn share_screen(
    on_ended: impl FnOnce() + 'static,
) -> Result<Option<SharedScreen>, MediaError> {
    let Some(stream) = get_display_media().await? else {
        return Ok(None);
    };
    let Some(track) = stream
        .get_video_tracks()
        .get(0)
        .dyn_into::<MediaStreamTrack>()
        .ok()
    else {
        stop_all(&stream);
        return Ok(None);
    };
    // web-sys has no `contentHint` setter.
    let _ = js_sys::Reflect::set(&track, &"contentHint".into(), &"detail".into());
    let ended = gloo_events::EventListener::once(&track, "ended", move |_| on_ended());
    Ok(Some(SharedScreen {
        stream,
        track,
        _ended: ended,
    }))
}

/// `enumerateDevices()`.
pub async fn list_devices() -> Result<Vec<Device>, MediaError> {
    let window = web_sys::window().ok_or(MediaError::Unsupported)?;
    let devices = media_devices(&window)?;
    let list = JsFuture::from(devices.enumerate_devices().map_err(media_error)?)
        .await
        .map_err(media_error)?;
    let list: js_sys::Array = list.dyn_into().unwrap_or_default();
    Ok(list
        .iter()
        .filter_map(|d| d.dyn_into::<web_sys::MediaDeviceInfo>().ok())
        .filter_map(|d| {
            let kind = match d.kind() {
                web_sys::MediaDeviceKind::Videoinput => DeviceKind::Camera,
                web_sys::MediaDeviceKind::Audioinput => DeviceKind::Microphone,
                web_sys::MediaDeviceKind::Audiooutput => DeviceKind::Speaker,
                _ => return None,
            };
            Some(Device {
                id: d.device_id(),
                kind,
                label: d.label(),
            })
        })
        .collect())
}

/// Calls `f` on `devicechange` (a device plugged in or out) until dropped.
pub fn on_device_change(f: impl Fn() + 'static) -> Option<gloo_events::EventListener> {
    let devices = media_devices(&web_sys::window()?).ok()?;
    Some(gloo_events::EventListener::new(
        &devices,
        "devicechange",
        move |_| f(),
    ))
}

/// Opens camera or microphone `id` (`deviceId: {exact: id}`), at the
/// call's size for a camera: its one track.
pub async fn open_device(kind: DeviceKind, id: &str) -> Result<MediaStreamTrack, MediaError> {
    let window = web_sys::window().ok_or(MediaError::Unsupported)?;
    let devices = media_devices(&window)?;
    let wanted = Object::new();
    let exact = Object::new();
    set(&exact, "exact", &JsValue::from_str(id));
    set(&wanted, "deviceId", &exact.into());
    let constraints = MediaStreamConstraints::new();
    match kind {
        DeviceKind::Camera => {
            if let Some((width, height)) = MediaRequest::default().video {
                set(&wanted, "width", &ideal(width));
                set(&wanted, "height", &ideal(height));
            }
            constraints.set_video(&wanted.into());
        }
        DeviceKind::Microphone => constraints.set_audio(&wanted.into()),
        DeviceKind::Speaker => return Err(MediaError::Unsupported),
    }
    let promise = devices
        .get_user_media_with_constraints(&constraints)
        .map_err(media_error)?;
    let stream: MediaStream = JsFuture::from(promise)
        .await
        .map_err(media_error)?
        .dyn_into()
        .map_err(|_| MediaError::Unsupported)?;
    stream
        .get_tracks()
        .get(0)
        .dyn_into::<MediaStreamTrack>()
        .map_err(|_| MediaError::NotFound)
}

/// Puts `track` into `stream` in place of the one of its kind; gives the
/// tracks it replaced, still running: stop them once nothing sends them
/// (a sender whose track was stopped under it sends nothing more, even
/// after `replaceTrack`, in Chromium).
pub fn swap_track(stream: &MediaStream, track: &MediaStreamTrack) -> Vec<MediaStreamTrack> {
    let mut replaced = Vec::new();
    for old in stream.get_tracks().iter() {
        if let Ok(old) = old.dyn_into::<MediaStreamTrack>() {
            if old.kind() == track.kind() && old.id() != track.id() {
                stream.remove_track(&old);
                replaced.push(old);
            }
        }
    }
    stream.add_track(track);
    replaced
}

/// The `deviceId` `stream`'s track of `kind` comes from.
pub fn device_of(stream: &MediaStream, kind: DeviceKind) -> Option<String> {
    let tracks = match kind {
        DeviceKind::Camera => stream.get_video_tracks(),
        DeviceKind::Microphone => stream.get_audio_tracks(),
        DeviceKind::Speaker => return None,
    };
    let track = tracks.get(0).dyn_into::<MediaStreamTrack>().ok()?;
    let settings = track.get_settings();
    Reflect::get(&settings, &JsValue::from_str("deviceId"))
        .ok()?
        .as_string()
}

/// Whether media elements can choose their speaker (`setSinkId`).
pub fn can_choose_speaker() -> bool {
    web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.create_element("video").ok())
        .is_some_and(|v| crate::web::has_method(&v, "setSinkId"))
}

/// `element.setSinkId(id)` where the browser has it.
pub fn set_speaker(element: &web_sys::HtmlMediaElement, id: &str) {
    crate::web::call_if_present(element, "setSinkId", &JsValue::from_str(id));
}
