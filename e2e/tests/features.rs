//! In-call features and recovery, end to end: two browser processes with
//! fake camera and microphone, through the relay binary serving the
//! release build.
//!
//! Every check reads what really happened: `getStats()` counters on both
//! sides, the other side's UI, and files read back from the download link
//! and hashed in the page.

use std::path::Path;
use std::time::Duration;

use peercall_e2e::call::{
    assert_receiving, exists, gone, inbound, send_chat, start_call, wait, wait_connected, LIMIT,
};
use peercall_e2e::{Browser, Kind, Relay};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// `?ice=none`: loopback needs no STUN, and this machine has no internet.
const QUERY: &str = "?ice=none";

/// Two people in a call, media flowing both ways: `a` ("Ada") started it.
async fn pair(relay: &Relay, first: Kind, second: Kind) -> (Browser, Browser) {
    let a = Browser::launch(first).await.unwrap();
    let link = start_call(&a, &format!("{}{QUERY}", relay.url), "Ada").await;
    let b = Browser::launch(second).await.unwrap();
    b.goto(&link).await.unwrap();
    for side in [&a, &b] {
        assert_receiving(side).await;
        wait_connected(side).await;
    }
    (a, b)
}

/// What this page sends: audio packets and video frames, over every
/// connection, and the video sender's track.
const OUTBOUND: &str = r#"
    (async () => {
        let audio = 0, video = 0, track = null;
        for (const pc of window.peercall.peers.values()) {
            (await pc.getStats()).forEach(r => {
                if (r.type === 'outbound-rtp' && r.kind === 'audio') audio += r.packetsSent || 0;
                if (r.type === 'outbound-rtp' && r.kind === 'video') video += r.framesSent || 0;
            });
            const s = pc.getSenders().find(s => s.track && s.track.kind === 'video');
            if (s) {
                const st = s.track.getSettings();
                track = {id: s.track.id, device: st.deviceId || null, surface: st.displaySurface || null};
            }
        }
        return {audio, video, track};
    })()
"#;

async fn outbound(b: &Browser) -> Value {
    b.js(&format!("return {}", OUTBOUND.trim())).await.unwrap()
}

/// Counter `key` of [`OUTBOUND`] over `secs`: how much it grew.
async fn outbound_growth(b: &Browser, key: &str, secs: u64) -> u64 {
    let before = outbound(b).await;
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let after = outbound(b).await;
    println!("outbound {key} over {secs} s: {before} -> {after}");
    after[key].as_u64().unwrap_or(0) - before[key].as_u64().unwrap_or(0)
}

/// Presses `key` the way the shortcut handler hears it.
async fn press(b: &Browser, key: &str, shift: bool) {
    b.js(&format!(
        "document.body.dispatchEvent(new KeyboardEvent('keydown', \
         {{key: {key:?}, shiftKey: {shift}, bubbles: true}}))"
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn mute_camera_off_and_device_switch_reach_the_other_side() {
    let relay = Relay::start(&[]).await.unwrap();
    let (a, b) = pair(&relay, Kind::Chromium, Kind::Chromium).await;
    assert!(
        outbound_growth(&a, "audio", 1).await > 0,
        "audio flows first"
    );

    // Mute (the button): the other side shows it, and no audio goes out.
    a.click("[data-testid=toggle-mic]").await.unwrap();
    wait(&b, "the muted icon", &exists("remote-muted")).await;
    let pressed = a
        .js("return document.querySelector('[data-testid=toggle-mic]').getAttribute('aria-pressed')")
        .await
        .unwrap();
    assert_eq!(pressed, "true", "the Mute button says it is on");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        outbound_growth(&a, "audio", 2).await,
        0,
        "muted sends no audio"
    );

    // Camera off (the shortcut): a placeholder there, no frames sent.
    press(&a, "v", false).await;
    wait(
        &b,
        "the camera-off placeholder",
        &exists("remote-video-off"),
    )
    .await;
    wait(
        &a,
        "our own camera-off placeholder",
        &exists("local-video-off"),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        outbound_growth(&a, "video", 2).await,
        0,
        "camera off sends no video"
    );

    // Both back on: the other side decodes again.
    press(&a, "m", false).await;
    a.click("[data-testid=toggle-camera]").await.unwrap();
    wait(&b, "the muted icon to go", &gone("remote-muted")).await;
    wait(&b, "the placeholder to go", &gone("remote-video-off")).await;
    assert!(
        outbound_growth(&a, "video", 1).await > 0,
        "video goes out again"
    );
    assert_receiving(&b).await;

    // Switch cameras: no renegotiation, the far side keeps decoding, and
    // it is the new camera's track that goes out. Chromium's third fake
    // camera (MJPEG), not its second: that one is a depth camera (Y16),
    // whose frames never reach an encoder.
    let before = outbound(&a).await["track"].clone();
    a.click("[data-testid=devices-toggle]").await.unwrap();
    wait(
        &a,
        "three cameras to choose from",
        "const s = document.querySelector('[data-testid=pick-camera]'); return !!s && s.options.length >= 3",
    )
    .await;
    let picked = a
        .js(
            "const s = document.querySelector('[data-testid=pick-camera]');
             const other = [...s.options].find(o => o.textContent === 'fake_device_2');
             s.value = other.value;
             s.dispatchEvent(new Event('change', {bubbles: true}));
             return other.value;",
        )
        .await
        .unwrap();
    wait(
        &a,
        "the picked camera on the sender",
        &format!(
            "return {}.then(o => !!o.track && o.track.device === {picked})",
            OUTBOUND.trim()
        ),
    )
    .await;
    let after = outbound(&a).await["track"].clone();
    assert_ne!(
        before["id"], after["id"],
        "a new track: {before} -> {after}"
    );
    let (f0, _) = inbound(&b).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (f1, _) = inbound(&b).await;
    assert!(
        f1 > f0,
        "frames keep decoding after the switch: {f0} -> {f1}"
    );
    assert_receiving(&b).await;
    relay.assert_nothing_blocked().await;
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn screen_share_reaches_the_far_side_and_reverts() {
    let relay = Relay::start(&[]).await.unwrap();
    let (a, b) = pair(&relay, Kind::Chromium, Kind::Chromium).await;
    let camera = outbound(&a).await["track"].clone();
    assert!(camera["surface"].is_null(), "the camera first: {camera}");

    a.click("[data-testid=toggle-screen]").await.unwrap();
    wait(&b, "the sharing badge", &exists("remote-sharing")).await;
    wait(&a, "our sharing badge", &exists("local-sharing")).await;
    let shared = outbound(&a).await["track"].clone();
    assert!(
        shared["surface"].is_string(),
        "the screen goes out: {shared}"
    );
    let (f0, _) = inbound(&b).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (f1, _) = inbound(&b).await;
    assert!(f1 > f0, "the screen decodes on the far side: {f0} -> {f1}");

    // The browser's own "Stop sharing" ends the track: back to the camera.
    a.js(
        "const s = [...window.peercall.peers.values()][0].getSenders()
              .find(s => s.track && s.track.kind === 'video');
          s.track.dispatchEvent(new Event('ended'));",
    )
    .await
    .unwrap();
    wait(&b, "the sharing badge to go", &gone("remote-sharing")).await;
    let back = outbound(&a).await["track"].clone();
    assert_eq!(back["id"], camera["id"], "the camera again: {back}");
    assert_receiving(&b).await;
    relay.assert_nothing_blocked().await;
    a.close().await;
    b.close().await;
}

/// A file of `len` pseudo-random bytes.
fn random_file(dir: &Path, name: &str, len: usize) -> (std::path::PathBuf, String) {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ len as u64;
    let mut data = Vec::with_capacity(len);
    while data.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(len);
    let path = dir.join(name);
    std::fs::write(&path, &data).unwrap();
    let sha = Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (path, sha)
}

/// The transfer rows on `b`, as `[state, outgoing, done, size]`.
const TRANSFERS: &str = "return [...document.querySelectorAll('[data-testid=transfer]')]
    .map(t => [t.dataset.state, t.dataset.outgoing, Number(t.dataset.done), Number(t.dataset.size)])";

/// Reads the received file named `name` back through its download link
/// and hashes it in the page.
async fn downloaded(b: &Browser, name: &str) -> Value {
    b.js(&format!(
        "return (async () => {{
            const link = [...document.querySelectorAll('[data-testid=transfer-download]')]
                .find(l => l.download === {name:?});
            if (!link) return null;
            const buf = await (await fetch(link.href)).arrayBuffer();
            const h = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
            return {{size: buf.byteLength, sha: [...h].map(x => x.toString(16).padStart(2, '0')).join('')}};
        }})()"
    ))
    .await
    .unwrap()
}

/// Sends `path` from `from` to `to` and checks it arrives intact.
async fn send_file(from: &Browser, to: &Browser, path: &Path, sha: &str, len: usize) {
    let name = path.file_name().unwrap().to_str().unwrap();
    from.upload("[data-testid=file-input]", path).await.unwrap();
    let done = format!(
        "return [...document.querySelectorAll('[data-testid=transfer]')].some(t =>
             t.dataset.state === 'done' && t.textContent.includes({name:?}))"
    );
    to.wait_until("the file to arrive", &done, Duration::from_secs(90))
        .await
        .unwrap();
    from.wait_until("the sender to hear it arrived", &done, LIMIT)
        .await
        .unwrap();
    let got = downloaded(to, name).await;
    assert_eq!(got["size"], len, "{name}: {got}");
    assert_eq!(got["sha"], sha, "{name}: {got}");
}

#[tokio::test]
async fn chat_and_files_go_both_ways_and_a_cancel_cleans_up() {
    let relay = Relay::start(&[]).await.unwrap();
    let (a, b) = pair(&relay, Kind::Chromium, Kind::Firefox).await;

    // Chat: Ada writes while the other side's chat is closed.
    a.click("[data-testid=toggle-chat]").await.unwrap();
    send_chat(&a, "Hello from Ada").await;
    wait(
        &b,
        "the unread badge",
        "const u = document.querySelector('[data-testid=unread]'); return !!u && u.textContent === '1'",
    )
    .await;
    press(&b, "c", false).await;
    wait(&b, "the chat panel", &exists("chat-panel")).await;
    wait(&b, "the badge to clear", &gone("unread")).await;
    let line = b
        .js(
            "const m = document.querySelector('[data-testid=chat-message]');
             return [m.querySelector('[data-testid=chat-name]').textContent,
                     m.querySelector('[data-testid=chat-text]').textContent]",
        )
        .await
        .unwrap();
    assert_eq!(line, serde_json::json!(["Ada", "Hello from Ada"]));
    b.js(
        "const t = document.querySelector('[data-testid=chat-input]');
          t.value = 'Hi Ada';
          t.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', bubbles: true}));",
    )
    .await
    .unwrap();
    wait(
        &a,
        "the reply",
        "return [...document.querySelectorAll('[data-testid=chat-message]')].some(m =>
             m.querySelector('[data-testid=chat-text]').textContent === 'Hi Ada'
             && m.querySelector('[data-testid=chat-name]').textContent.startsWith('Guest '))",
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    // A cancelled transfer: big enough to be caught in flight.
    let big = dir.path().join("big.bin");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(512 << 20)
        .unwrap();
    a.upload("[data-testid=file-input]", &big).await.unwrap();
    wait(
        &b,
        "bytes of the big file",
        "const t = document.querySelector('[data-testid=transfer][data-outgoing=false]');
         return !!t && t.dataset.state === 'active' && Number(t.dataset.done) > 0",
    )
    .await;
    b.click("[data-testid=transfer][data-outgoing=false] [data-testid=transfer-cancel]")
        .await
        .unwrap();
    for (side, who) in [(&b, "receiver"), (&a, "sender")] {
        side.wait_until(
            &format!("the {who} to show the cancel"),
            "return [...document.querySelectorAll('[data-testid=transfer]')]
                 .every(t => t.dataset.state === 'cancelled')",
            LIMIT,
        )
        .await
        .unwrap();
    }
    let rows = a.js(TRANSFERS).await.unwrap();
    let done = rows[0][2].as_u64().unwrap();
    assert!(done < 512 << 20, "stopped part way: {rows}");
    assert_eq!(b.js(&gone("transfer-download")).await.unwrap(), true);
    let summary = a
        .js("return document.querySelector('[data-testid=transfer-summary]').textContent")
        .await
        .unwrap();
    assert_eq!(summary, "Cancelled by the other side");

    // 20 MB each way, intact.
    let len = 20 << 20;
    let (to_b, sha_b) = random_file(dir.path(), "from-ada.bin", len);
    send_file(&a, &b, &to_b, &sha_b, len).await;
    let (to_a, sha_a) = random_file(dir.path(), "to-ada.bin", len);
    send_file(&b, &a, &to_a, &sha_a, len).await;
    println!(
        "transfers on Ada's side: {}",
        a.js(TRANSFERS).await.unwrap()
    );
    assert_receiving(&a).await;
    relay.assert_nothing_blocked().await;
    a.close().await;
    b.close().await;
}

/// Waits for the remote tile to say "connected"; if it does not, shows
/// what the connection is doing.
async fn connected(b: &Browser) {
    if let Err(e) = b
        .wait_until(
            "the peer to show as connected",
            "const s = document.querySelector('[data-testid=remote-status]');
             return !!s && s.textContent === 'connected'",
            LIMIT,
        )
        .await
    {
        let states = b
            .js(peercall_e2e::call::PEER_STATES)
            .await
            .unwrap_or_default();
        panic!("{e}\npeer connections: {states}");
    }
}

/// The remote description's ICE username fragment on `b`.
async fn remote_ufrag(b: &Browser) -> Value {
    b.js("const pc = [...window.peercall.peers.values()][0];
          const m = pc.remoteDescription.sdp.match(/a=ice-ufrag:(\\S+)/);
          return m && m[1]")
        .await
        .unwrap()
}

#[tokio::test]
async fn the_call_survives_the_relay_restarting_and_an_ice_restart() {
    let relay = Relay::start(&[]).await.unwrap();
    let port = relay.port();
    let (a, b) = pair(&relay, Kind::Chromium, Kind::Chromium).await;

    // The relay dies: both sides say so, and the media goes on.
    relay.kill().await;
    for side in [&a, &b] {
        wait(side, "the relay-lost notice", &exists("relay-lost")).await;
    }
    let (f0, _) = inbound(&b).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (f1, _) = inbound(&b).await;
    assert!(f1 > f0, "media flows with the relay down: {f0} -> {f1}");
    assert_receiving(&a).await;

    // It comes back at the same address: both reconnect, and nobody saw
    // the other leave.
    let relay = Relay::start_at(port, &[]).await.unwrap();
    for side in [&a, &b] {
        side.wait_until(
            "the relay to be back",
            &gone("relay-lost"),
            Duration::from_secs(40),
        )
        .await
        .unwrap();
        let notice = side
            .js("const n = document.querySelector('[data-testid=notice]'); return n && n.textContent")
            .await
            .unwrap();
        let notice = notice.as_str().unwrap_or_default();
        assert!(
            !notice.contains("left") && !notice.contains("lost their connection"),
            "no leave was shown: {notice}"
        );
        connected(side).await;
    }

    // A renegotiation through the new relay: an ICE restart, as the app
    // does on its own after `failed` or a long `disconnected`.
    let before = remote_ufrag(&b).await;
    a.js("window.peercall.restartIce([...window.peercall.peers.keys()][0])")
        .await
        .unwrap();
    b.wait_until(
        "new ICE credentials from the other side",
        &format!(
            "const pc = [...window.peercall.peers.values()][0];
             const m = pc.remoteDescription.sdp.match(/a=ice-ufrag:(\\S+)/);
             return !!m && m[1] !== {before} && pc.signalingState === 'stable'"
        ),
        LIMIT,
    )
    .await
    .unwrap();
    for side in [&a, &b] {
        connected(side).await;
        assert_receiving(side).await;
    }
    relay.assert_nothing_blocked().await;
    drop(relay);
    a.close().await;
    b.close().await;
}
