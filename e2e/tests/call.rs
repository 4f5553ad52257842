//! 1:1 calls end to end: two separate browser processes with fake camera
//! and microphone, through the relay binary serving the release build.
//!
//! Each check reads the real media: the remote `<video>` has decoded frames
//! (videoWidth > 0, `framesDecoded` growing in `getStats()`), and inbound
//! audio bytes grow. The peer connections are read through
//! `window.peercall.peers`, the app's debugging registry.
//!
//! With `PEERCALL_SCREENSHOT_DIR` set, the Chromium-Firefox test saves
//! screenshots of both sides there (scripts/screenshots.sh).

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use peercall_e2e::{Browser, Kind, Relay};
use serde_json::Value;

/// Generous: two browsers and a build on two shared cores.
const LIMIT: Duration = Duration::from_secs(30);
/// `?ice=none`: loopback needs no STUN, and this machine has no internet.
const QUERY: &str = "?ice=none";

const REMOTE_DECODING: &str = r#"
    const v = document.querySelector('video[data-testid=remote-video]');
    return !!v && v.videoWidth > 0 && v.readyState >= 2;
"#;

/// Sums inbound-rtp counters over every peer connection of the page.
const INBOUND: &str = r#"
    const peers = window.peercall ? [...window.peercall.peers.values()] : [];
    let frames = 0, audio = 0;
    for (const pc of peers) {
        const stats = await pc.getStats();
        stats.forEach(r => {
            if (r.type === 'inbound-rtp' && r.kind === 'video') frames += r.framesDecoded || 0;
            if (r.type === 'inbound-rtp' && r.kind === 'audio') audio += r.bytesReceived || 0;
        });
    }
    return {frames, audio};
"#;

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

async fn inbound(b: &Browser) -> (u64, u64) {
    let v = b
        .js(&format!("return (async () => {{ {INBOUND} }})()"))
        .await
        .unwrap();
    (
        v["frames"].as_u64().unwrap_or(0),
        v["audio"].as_u64().unwrap_or(0),
    )
}

/// What each peer connection of the page is doing, for failure messages.
const PEER_STATES: &str = r#"
    const out = [];
    for (const [id, pc] of (window.peercall ? window.peercall.peers : new Map())) {
        out.push({id: id.slice(0, 6), signaling: pc.signalingState, ice: pc.iceConnectionState,
                  connection: pc.connectionState, gathering: pc.iceGatheringState,
                  local: pc.localDescription && pc.localDescription.type,
                  remote: pc.remoteDescription && pc.remoteDescription.type,
                  transceivers: pc.getTransceivers().map(t => `${t.mid}:${t.currentDirection}`),
                  localCandidates: (pc.localDescription ? pc.localDescription.sdp : '').split('\r\n')
                      .filter(l => l.startsWith('a=candidate')).map(l => l.slice(12, 90)),
                  remoteCandidates: (pc.remoteDescription ? pc.remoteDescription.sdp : '').split('\r\n')
                      .filter(l => l.startsWith('a=candidate')).map(l => l.slice(12, 90))});
    }
    return out;
"#;

/// Waits for a decoded remote frame on `b`; on failure, says what the peer
/// connections on both sides were doing.
async fn wait_remote_frame(b: &Browser, other: Option<&Browser>) {
    if let Err(e) = b
        .wait_until("a decoded remote frame", REMOTE_DECODING, LIMIT)
        .await
    {
        let mine = b.js(PEER_STATES).await.unwrap_or_default();
        let theirs = match other {
            Some(o) => o.js(PEER_STATES).await.unwrap_or_default(),
            None => Value::Null,
        };
        panic!("{e}\nthis side: {mine}\nother side: {theirs}");
    }
}

/// The remote video decodes and keeps decoding, and audio keeps arriving.
async fn assert_receiving(b: &Browser) {
    wait_remote_frame(b, None).await;
    let (f0, a0) = inbound(b).await;
    let mut last = (f0, a0);
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        last = inbound(b).await;
        if last.0 > f0 && last.1 > a0 {
            return;
        }
    }
    panic!(
        "{}: media is not flowing: frames {f0} -> {}, audio bytes {a0} -> {}",
        b.kind().name(),
        last.0,
        last.1
    );
}

/// Opens the landing page, types a name, starts a call; gives the link.
async fn start_call(b: &Browser, relay: &Relay, name: &str) -> String {
    b.goto(&format!("{}{QUERY}", relay.url)).await.unwrap();
    b.wait_until(
        "the landing page",
        "return !!document.querySelector('[data-testid=start]')",
        LIMIT,
    )
    .await
    .unwrap();
    b.js(&format!(
        "document.querySelector('[data-testid=name]').value = {name:?};
         document.querySelector('[data-testid=start]').click();"
    ))
    .await
    .unwrap();
    b.wait_until(
        "the room link",
        "const l = document.querySelector('[data-testid=room-link]'); return !!l && l.value.includes('#')",
        LIMIT,
    )
    .await
    .unwrap();
    let link = b
        .js("return document.querySelector('[data-testid=room-link]').value")
        .await
        .unwrap();
    let link = link.as_str().unwrap().to_owned();
    let room = link.split('#').nth(1).unwrap();
    assert_eq!(room.len(), 22, "128-bit room id in the hash: {link}");
    link
}

/// The other person's name as this side shows it.
async fn remote_name(b: &Browser) -> Value {
    b.js("const n = document.querySelector('[data-testid=remote-name]'); return n && n.textContent")
        .await
        .unwrap()
}

async fn wait_connected(b: &Browser) {
    b.wait_until(
        "the peer to show as connected",
        "const s = document.querySelector('[data-testid=remote-status]'); return !!s && s.textContent === 'connected'",
        LIMIT,
    )
    .await
    .unwrap();
}

/// Milliseconds from `opened_at` to the first remote frame on `b`.
async fn setup_ms(b: &Browser, opened_at: f64) -> f64 {
    let first = b
        .js("return Number(document.querySelector('video[data-testid=remote-video]').dataset.firstFrame)")
        .await
        .unwrap();
    first.as_f64().unwrap() - opened_at
}

/// Hangs up on `leaver`: it shows the left screen with every local track
/// ended; `stayer` shows that the peer left and waits for the next one.
async fn hang_up(leaver: &Browser, stayer: &Browser) {
    leaver
        .js("window.__tracks = document.querySelector('video[data-testid=local-preview]').srcObject.getTracks();
             document.querySelector('[data-testid=hang-up]').click();")
        .await
        .unwrap();
    leaver
        .wait_until(
            "the left screen",
            "return !!document.querySelector('[data-testid=left]')",
            LIMIT,
        )
        .await
        .unwrap();
    let tracks = leaver
        .js("return window.__tracks.map(t => t.kind + ':' + t.readyState).sort()")
        .await
        .unwrap();
    assert_eq!(tracks, serde_json::json!(["audio:ended", "video:ended"]));
    let peers = leaver
        .js("return window.peercall.peers.size")
        .await
        .unwrap();
    assert_eq!(peers, 0, "peer connections closed");
    stayer
        .wait_until(
            "the notice that the peer left",
            "const n = document.querySelector('[data-testid=notice]');
             return !!n && n.textContent.includes('left the call')
                 && !document.querySelector('[data-testid=remote-tile]')
                 && !!document.querySelector('[data-testid=waiting]')",
            LIMIT,
        )
        .await
        .unwrap();
}

async fn call_between(first: Kind, second: Kind, relay_args: &[&str], screenshots: bool) {
    let relay = Relay::start(relay_args).await.unwrap();
    let a = Browser::launch(first).await.unwrap();
    let link = start_call(&a, &relay, "Ada").await;
    let b = Browser::launch(second).await.unwrap();
    let opened_at = now_ms();
    b.goto(&link).await.unwrap();
    for side in [&a, &b] {
        assert_receiving(side).await;
        wait_connected(side).await;
    }
    println!(
        "setup_ms {} -> {}: {:.0}",
        first.name(),
        second.name(),
        setup_ms(&b, opened_at).await
    );
    assert_eq!(remote_name(&b).await, "Ada");
    assert!(remote_name(&a)
        .await
        .as_str()
        .unwrap()
        .starts_with("Guest "));

    if screenshots {
        if let Some(dir) = std::env::var_os("PEERCALL_SCREENSHOT_DIR") {
            for (side, who) in [(&a, first.name()), (&b, second.name())] {
                let path = PathBuf::from(&dir).join(format!("call-{who}.png"));
                side.screenshot(&path).await.unwrap();
                println!("screenshot: {}", path.display());
            }
        }
    }

    // Hang up, then rejoin from the left screen.
    hang_up(&b, &a).await;
    b.js("document.querySelector('[data-testid=rejoin]').click()")
        .await
        .unwrap();
    for side in [&a, &b] {
        assert_receiving(side).await;
    }
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn chromium_calls_chromium_hangs_up_and_rejoins() {
    call_between(Kind::Chromium, Kind::Chromium, &[], false).await;
}

#[tokio::test]
async fn chromium_and_firefox_call_each_other_in_both_join_orders() {
    call_between(Kind::Chromium, Kind::Firefox, &[], true).await;
    call_between(Kind::Firefox, Kind::Chromium, &[], false).await;
}

#[tokio::test]
async fn both_joining_at_the_same_instant_still_connects() {
    let relay = Relay::start(&[]).await.unwrap();
    let room_link = format!("{}{QUERY}#glareglareglareglare01", relay.url);
    let (a, b) = tokio::join!(
        Browser::launch(Kind::Chromium),
        Browser::launch(Kind::Firefox)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let (ra, rb) = tokio::join!(a.goto(&room_link), b.goto(&room_link));
    ra.unwrap();
    rb.unwrap();
    for side in [&a, &b] {
        assert_receiving(side).await;
        wait_connected(side).await;
    }
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn a_call_works_over_a_relay_that_only_broadcasts() {
    // --mode broadcast: every message to every client, echo included, no
    // rooms, ids, welcome or errors.
    call_between(
        Kind::Chromium,
        Kind::Firefox,
        &["--mode", "broadcast"],
        false,
    )
    .await;
}

#[tokio::test]
async fn time_from_opening_the_link_to_the_first_remote_frame() {
    const RUNS: usize = 5;
    let relay = Relay::start(&[]).await.unwrap();
    let a = Browser::launch(Kind::Chromium).await.unwrap();
    let link = start_call(&a, &relay, "Ada").await;
    let b = Browser::launch(Kind::Chromium).await.unwrap();
    let mut times = Vec::new();
    for _ in 0..RUNS {
        b.goto("about:blank").await.unwrap();
        a.wait_until(
            "the previous visit to be gone",
            "return !document.querySelector('[data-testid=remote-tile]')",
            LIMIT,
        )
        .await
        .unwrap();
        let opened_at = now_ms();
        b.goto(&link).await.unwrap();
        wait_remote_frame(&b, Some(&a)).await;
        times.push(setup_ms(&b, opened_at).await);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "setup_ms chromium -> chromium, {RUNS} runs: {:?}; median {:.0}",
        times.iter().map(|t| t.round()).collect::<Vec<_>>(),
        times[RUNS / 2]
    );
    assert!(times.iter().all(|t| *t > 0.0));
    a.close().await;
    b.close().await;
}
