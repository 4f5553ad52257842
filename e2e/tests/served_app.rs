//! README command 1, checked: the relay serves the release build, and a real
//! browser with a fake camera opening it shows the live local preview.
//!
//! With `PEERCALL_SCREENSHOT_DIR` set, each browser also saves a screenshot
//! there (scripts/screenshots.sh uses this for docs/).

use std::path::PathBuf;
use std::time::Duration;

use peercall_e2e::{Browser, Kind, Relay};
use serde_json::Value;

const PREVIEW_DECODING: &str = r#"
    const v = document.querySelector('video[data-testid=local-preview]');
    return !!v && v.videoWidth > 0 && v.readyState >= 2;
"#;

/// Opens a room link (the call screen asks for the camera at once) and
/// waits for the local preview to show a decoded frame.
async fn open_room(browser: &Browser, relay: &Relay, room: &str) {
    browser
        .goto(&format!("{}?ice=none#{room}", relay.url))
        .await
        .unwrap();
    browser
        .wait_until(
            "a decoded local preview frame",
            PREVIEW_DECODING,
            Duration::from_secs(20),
        )
        .await
        .unwrap();
}

async fn local_preview_shows(kind: Kind) {
    let relay = Relay::start(&[]).await.unwrap();
    let browser = Browser::launch(kind).await.unwrap();
    open_room(&browser, &relay, "previewroom0000000000").await;
    // Frames keep arriving: the playback position advances.
    let t0 = browser
        .js("return document.querySelector('video[data-testid=local-preview]').currentTime")
        .await
        .unwrap();
    browser
        .wait_until(
            "the preview to play",
            &format!(
                "return document.querySelector('video[data-testid=local-preview]').currentTime > {t0}"
            ),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let facts = browser
        .js(r#"
            const v = document.querySelector('video[data-testid=local-preview]');
            return {
                muted: v.muted,
                transform: getComputedStyle(v).transform,
                tracks: v.srcObject.getTracks().map(t => t.kind + ':' + t.readyState).sort(),
                label: v.getAttribute('aria-label'),
                configFetches: performance.getEntriesByType('resource')
                    .filter(e => e.name.endsWith('/config.json')).length,
                wasm: performance.getEntriesByType('resource')
                    .filter(e => e.name.endsWith('.wasm'))
                    .map(e => [e.encodedBodySize, e.decodedBodySize]),
                marks: performance.getEntriesByType('mark').map(m => m.name),
            };
        "#)
        .await
        .unwrap();
    assert_eq!(facts["muted"], Value::Bool(true), "{facts}");
    // scaleX(-1) computes to matrix(-1, 0, 0, 1, 0, 0).
    assert!(
        facts["transform"]
            .as_str()
            .unwrap()
            .starts_with("matrix(-1"),
        "{facts}"
    );
    assert_eq!(
        facts["tracks"],
        serde_json::json!(["audio:live", "video:live"]),
        "{facts}"
    );
    assert_eq!(facts["label"], "Your camera");
    // index.html preloads config.json and the app's own fetch takes that
    // response: one request, started with the page, not after the wasm.
    assert_eq!(facts["configFetches"], 1, "{facts}");
    // The wasm arrives compressed (the relay's precompressed brotli).
    let wasm = &facts["wasm"][0];
    assert!(
        wasm[0].as_f64().unwrap() * 2.0 < wasm[1].as_f64().unwrap(),
        "wasm not compressed: {facts}"
    );
    // The setup moments the benchmark reads are marked.
    for mark in ["peercall:start", "peercall:media"] {
        assert!(
            facts["marks"]
                .as_array()
                .unwrap()
                .contains(&Value::from(mark)),
            "no {mark}: {facts}"
        );
    }

    // The page runs under the relay's Content-Security-Policy with nothing
    // blocked; what the policy forbids (a connection to another origin) is
    // blocked and reported.
    relay.assert_nothing_blocked().await;
    browser
        .js("fetch('http://127.0.0.1:9/not-allowed').catch(() => {}); return true")
        .await
        .unwrap();
    let start = std::time::Instant::now();
    while relay.csp_reports().await.unwrap() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{}: a fetch the policy forbids was not reported",
            kind.name()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    if let Some(dir) = std::env::var_os("PEERCALL_SCREENSHOT_DIR") {
        let path = PathBuf::from(dir).join(format!("local-preview-{}.png", kind.name()));
        browser.screenshot(&path).await.unwrap();
        println!("screenshot: {}", path.display());
    }
    browser.close().await;
}

#[tokio::test]
async fn chromium_shows_the_local_preview_of_the_served_app() {
    local_preview_shows(Kind::Chromium).await;
}

#[tokio::test]
async fn firefox_shows_the_local_preview_of_the_served_app() {
    local_preview_shows(Kind::Firefox).await;
}

#[tokio::test]
async fn the_served_app_has_its_health_endpoint_and_assets() {
    let relay = Relay::start(&[]).await.unwrap();
    let browser = Browser::launch(Kind::Chromium).await.unwrap();
    browser.goto(&relay.url).await.unwrap();
    // Fetch from the page itself: same origin, real HTTP.
    let health = browser
        .js("return fetch('/healthz').then(r => r.json())")
        .await
        .unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    let wasm = browser
        .js(r#"
            const src = [...document.querySelectorAll('link[rel=preload], script')]
                .map(e => e.href || e.src).find(u => u && u.endsWith('.wasm'));
            return fetch(src).then(r => ({
                type: r.headers.get('content-type'),
                cache: r.headers.get('cache-control'),
            }));
        "#)
        .await
        .unwrap();
    assert_eq!(wasm["type"], "application/wasm", "{wasm}");
    assert_eq!(
        wasm["cache"], "public, max-age=31536000, immutable",
        "{wasm}"
    );
    browser.close().await;
}

#[tokio::test]
async fn the_call_screen_fits_a_phone_held_upright() {
    let relay = Relay::start(&[]).await.unwrap();
    let browser = Browser::launch(Kind::Chromium).await.unwrap();
    browser.set_window_size(390, 844).await.unwrap();
    open_room(&browser, &relay, "phonephonephonephone0").await;
    let layout = browser
        .js(r#"
            const inView = sel => {
                const r = document.querySelector(sel).getBoundingClientRect();
                return r.width > 0 && r.left >= 0 && r.top >= 0
                    && r.right <= innerWidth && r.bottom <= innerHeight;
            };
            return {
                width: innerWidth,
                overflowX: document.documentElement.scrollWidth > innerWidth,
                hangUp: inView('[data-testid=hang-up]'),
                hangUpHeight: document.querySelector('[data-testid=hang-up]').getBoundingClientRect().height,
                preview: inView('video[data-testid=local-preview]'),
                copy: inView('[data-testid=copy-link]'),
                hangUpLabel: document.querySelector('[data-testid=hang-up]').textContent,
            };
        "#)
        .await
        .unwrap();
    assert!(layout["width"].as_u64().unwrap() <= 400, "{layout}");
    assert_eq!(layout["overflowX"], false, "{layout}");
    assert_eq!(layout["hangUp"], true, "{layout}");
    assert!(
        layout["hangUpHeight"].as_f64().unwrap() < 80.0,
        "a button, not a bar: {layout}"
    );
    assert_eq!(layout["preview"], true, "{layout}");
    assert_eq!(layout["copy"], true, "{layout}");
    assert_eq!(layout["hangUpLabel"], "Hang up", "{layout}");
    if let Some(dir) = std::env::var_os("PEERCALL_SCREENSHOT_DIR") {
        let path = PathBuf::from(dir).join("call-phone-chromium.png");
        browser.screenshot(&path).await.unwrap();
        println!("screenshot: {}", path.display());
    }
    browser.close().await;
}
