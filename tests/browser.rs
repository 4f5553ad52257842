//! Browser tests: run by wasm-bindgen-test in headless Chromium and Firefox
//! with fake camera and microphone (see webdriver.json and scripts/test.sh).
#![cfg(target_arch = "wasm32")]

use std::time::Duration;

use gloo_timers::future::sleep;
use peercall::app::App;
use peercall::components::{InCall, InCallProps, MediaErrorView, MediaErrorViewProps};
use peercall::config::CallConfig;
use peercall::media::{MediaError, MediaRequest};
use peercall::web::media::{adopt_page_request, get_user_media, media_devices, stop_all};
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;
use web_sys::{Element, HtmlIFrameElement, HtmlVideoElement, MediaStream, MediaStreamTrack};
use web_sys::{MediaDevices, MediaStreamTrackState};
use yew::Callback;

mod page_script;

wasm_bindgen_test_configure!(run_in_browser);

fn document() -> web_sys::Document {
    web_sys::window().unwrap().document().unwrap()
}

/// A fresh element in <body> to mount a component into.
fn mount_point() -> Element {
    let el = document().create_element("div").unwrap();
    document().body().unwrap().append_child(&el).unwrap();
    el
}

/// Polls `check` every 20 ms until it holds or `limit` passes.
async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let step = Duration::from_millis(20);
    let mut waited = Duration::ZERO;
    while waited < limit {
        if check() {
            return true;
        }
        sleep(step).await;
        waited += step;
    }
    check()
}

fn tracks(stream: &MediaStream) -> Vec<MediaStreamTrack> {
    stream
        .get_tracks()
        .iter()
        .map(|t| t.unchecked_into::<MediaStreamTrack>())
        .collect()
}

#[wasm_bindgen_test]
async fn get_user_media_gives_live_audio_and_video_tracks() {
    let devices = media_devices(&web_sys::window().unwrap()).expect("mediaDevices");
    let request = MediaRequest {
        audio: true,
        video: Some((320, 240)),
    };
    let stream = get_user_media(&devices, request).await.expect("fake media");
    let all = tracks(&stream);
    let kinds: Vec<String> = all.iter().map(|t| t.kind()).collect();
    assert!(kinds.contains(&"video".to_string()), "{kinds:?}");
    assert!(kinds.contains(&"audio".to_string()), "{kinds:?}");
    for t in &all {
        assert_eq!(t.ready_state(), MediaStreamTrackState::Live, "{}", t.kind());
    }
    stop_all(&stream);
    for t in &all {
        assert_eq!(
            t.ready_state(),
            MediaStreamTrackState::Ended,
            "{}",
            t.kind()
        );
    }
}

/// A frame whose permissions policy forbids camera and microphone: the
/// browser refuses getUserMedia there exactly as when a person clicks "Block".
async fn forbidden_frame_devices() -> MediaDevices {
    let frame: HtmlIFrameElement = document()
        .create_element("iframe")
        .unwrap()
        .unchecked_into();
    frame
        .set_attribute("allow", "camera 'none'; microphone 'none'")
        .unwrap();
    document().body().unwrap().append_child(&frame).unwrap();
    // Let the frame's initial about:blank document settle.
    sleep(Duration::from_millis(50)).await;
    let window = frame.content_window().expect("frame window");
    let navigator = window.navigator();
    js_sys::Reflect::get(&navigator, &"mediaDevices".into())
        .unwrap()
        .unchecked_into()
}

#[wasm_bindgen_test]
async fn denied_request_is_not_allowed_error() {
    let devices = forbidden_frame_devices().await;
    let err = get_user_media(&devices, MediaRequest::default())
        .await
        .expect_err("the policy forbids the camera");
    assert_eq!(err, MediaError::NotAllowed);
}

#[wasm_bindgen_test]
async fn denied_message_is_shown_with_a_retry_button() {
    let root = mount_point();
    let props = MediaErrorViewProps {
        error: MediaError::NotAllowed,
        on_retry: Callback::noop(),
    };
    let handle = yew::Renderer::<MediaErrorView>::with_root_and_props(root.clone(), props).render();
    assert!(
        eventually(Duration::from_secs(2), || root
            .query_selector("[role=alert]")
            .unwrap()
            .is_some())
        .await
    );
    let text = root.text_content().unwrap_or_default();
    assert!(text.contains(MediaError::NotAllowed.title()), "{text}");
    assert!(text.contains("Allow camera and microphone"), "{text}");
    assert!(root.query_selector("button").unwrap().is_some());
    handle.destroy();
}

#[wasm_bindgen_test]
async fn app_without_a_room_shows_the_landing_page() {
    let root = mount_point();
    let handle = yew::Renderer::<App>::with_root(root.clone()).render();
    assert!(
        eventually(Duration::from_secs(5), || root
            .query_selector("[data-testid=start]")
            .unwrap()
            .is_some())
        .await,
        "no start button; page says: {:?}",
        root.text_content()
    );
    assert!(
        root.query_selector("video").unwrap().is_none(),
        "no camera before a call"
    );
    handle.destroy();
}

#[wasm_bindgen_test]
async fn call_screen_shows_a_muted_mirrored_live_preview_and_stops_tracks_on_unmount() {
    let root = mount_point();
    // Nothing listens on port 9: the screen must say the relay is
    // unreachable, and the camera must work regardless.
    let props = InCallProps {
        room: "browsertest0000000000".into(),
        name: Some("Ada".into()),
        config: CallConfig::default(),
        relays: vec!["ws://127.0.0.1:9/ws".into()],
        on_hang_up: Callback::noop(),
        open_phone: false,
        on_blocked: Callback::noop(),
    };
    let handle = yew::Renderer::<InCall>::with_root_and_props(root.clone(), props).render();

    let video = || -> Option<HtmlVideoElement> {
        root.query_selector("video[data-testid=local-preview]")
            .unwrap()
            .map(|e| e.unchecked_into())
    };
    assert!(
        eventually(Duration::from_secs(10), || video()
            .is_some_and(|v| v.video_width() > 0))
        .await,
        "the preview never showed a decoded frame; page says: {:?}",
        root.text_content()
    );
    let v = video().unwrap();
    assert!(v.muted(), "the local preview must be muted");
    assert!(v.class_list().contains("mirrored"));
    let stream: MediaStream = v.src_object().expect("srcObject").unchecked_into();
    let all = tracks(&stream);
    assert!(!all.is_empty());

    // Frames keep coming: the current time advances.
    let t0 = v.current_time();
    assert!(eventually(Duration::from_secs(5), || v.current_time() > t0).await);
    assert!(
        eventually(Duration::from_secs(5), || root
            .query_selector("[data-testid=relay-lost]")
            .unwrap()
            .is_some_and(|e| e
                .text_content()
                .unwrap_or_default()
                .contains("Can't reach")))
        .await,
        "no relay message; page says: {:?}",
        root.text_content()
    );

    handle.destroy();
    assert!(
        eventually(Duration::from_secs(2), || all
            .iter()
            .all(|t| t.ready_state() == MediaStreamTrackState::Ended))
        .await,
        "unmounting must stop the camera and microphone: {:?}",
        all.iter()
            .map(|t| (t.kind(), t.ready_state()))
            .collect::<Vec<_>>()
    );
}

/// The early-start script in index.html, run as the page runs it when its
/// address is a room link (and names another relay, so it opens no
/// socket); returns the `getUserMedia` promise it started.
fn run_page_script() -> js_sys::Promise {
    let early = page_script::run("?relay=wss://elsewhere.example/ws", "127.0.0.1:1");
    js_sys::Reflect::get(&early, &"media".into())
        .unwrap()
        .dyn_into()
        .expect("the script started getUserMedia")
}

#[wasm_bindgen_test]
async fn the_page_scripts_camera_request_is_the_calls_and_is_taken_over() {
    let window = web_sys::window().unwrap();
    let devices = media_devices(&window).expect("mediaDevices");
    let promise = run_page_script();
    assert!(adopt_page_request(&devices, MediaRequest::default()));
    let early: MediaStream = wasm_bindgen_futures::JsFuture::from(promise)
        .await
        .expect("fake media")
        .dyn_into()
        .unwrap();
    // The call's own first request gets that very stream: no second one.
    let stream = get_user_media(&devices, MediaRequest::default())
        .await
        .expect("media");
    assert_eq!(stream.id(), early.id());
    assert!(tracks(&stream)
        .iter()
        .all(|t| t.ready_state() == MediaStreamTrackState::Live));
    // Taken once: nothing left on the window for a second adoption.
    assert!(!adopt_page_request(&devices, MediaRequest::default()));
    stop_all(&stream);
}

#[wasm_bindgen_test]
async fn a_page_request_for_other_media_is_stopped_and_asked_again() {
    let window = web_sys::window().unwrap();
    let devices = media_devices(&window).expect("mediaDevices");
    let promise = run_page_script();
    let other = MediaRequest {
        audio: true,
        video: Some((320, 240)),
    };
    assert!(adopt_page_request(&devices, other));
    let early: MediaStream = wasm_bindgen_futures::JsFuture::from(promise)
        .await
        .expect("fake media")
        .dyn_into()
        .unwrap();
    let stream = get_user_media(&devices, other).await.expect("media");
    assert_ne!(stream.id(), early.id());
    assert!(
        eventually(Duration::from_secs(2), || tracks(&early)
            .iter()
            .all(|t| t.ready_state() == MediaStreamTrackState::Ended))
        .await,
        "the page's stream is stopped"
    );
    stop_all(&stream);
}
