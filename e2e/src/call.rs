//! What the call tests share: waiting for real media on a page, and
//! starting a call from the landing page. Panics (these are for tests) with
//! what both sides were doing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::Browser;

/// Generous: two browsers and a build on two shared cores.
pub const LIMIT: Duration = Duration::from_secs(30);

pub const REMOTE_DECODING: &str = r#"
    const v = document.querySelector('video[data-testid=remote-video]');
    return !!v && v.videoWidth > 0 && v.readyState >= 2;
"#;

/// Sums inbound-rtp counters over every peer connection of the page.
pub const INBOUND: &str = r#"
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

/// A script that starts sampling (once per page), every 100 ms, each other person's decoded video
/// frames on both paths (`peercall.peers` for direct connections,
/// `peercall.sfuSubscriber` with `peercall.sfuStreams` for the SFU), and
/// keeps per person (`window.__frames`) the longest time without a new
/// frame since their first one (`gap`), when the last came (`seen`) and
/// the audio packets received on both paths together (`audio`).
pub const FRAME_SAMPLER: &str = r#"
    if (window.__frames) return true;
    const f = window.__frames = {last: {}, seen: {}, gap: {}, audio: {}, audioLast: {}, running: true};
    const tick = async () => {
        const now = performance.now();
        const counts = {}, audio = {};
        const add = (peer, source, n) => { (counts[peer] = counts[peer] || {})[source] = n; };
        const heard = (peer, source, n) => { (audio[peer] = audio[peer] || {})[source] = n; };
        const pc = window.peercall || {};
        for (const [id, conn] of (pc.peers || new Map())) {
            (await conn.getStats()).forEach(r => {
                if (r.type === 'inbound-rtp' && r.kind === 'video') add(id, 'mesh:' + r.ssrc, r.framesDecoded || 0);
                if (r.type === 'inbound-rtp' && r.kind === 'audio') heard(id, 'mesh:' + r.ssrc, r.packetsReceived || 0);
            });
        }
        if (pc.sfuSubscriber && pc.sfuStreams) {
            const byMid = {};
            for (const s of pc.sfuStreams) byMid[s.mid] = s.peer;
            (await pc.sfuSubscriber.getStats()).forEach(r => {
                if (r.type === 'inbound-rtp' && r.kind === 'video' && byMid[r.mid])
                    add(byMid[r.mid], 'sfu:' + r.ssrc, r.framesDecoded || 0);
                if (r.type === 'inbound-rtp' && r.kind === 'audio' && byMid[r.mid])
                    heard(byMid[r.mid], 'sfu:' + r.ssrc, r.packetsReceived || 0);
            });
        }
        for (const [peer, sources] of Object.entries(counts)) {
            const old = f.last[peer] || {};
            let grew = false;
            for (const [s, n] of Object.entries(sources)) if (n > (old[s] || 0)) grew = true;
            f.last[peer] = Object.assign({}, old, sources);
            if (grew) {
                if (f.seen[peer] !== undefined)
                    f.gap[peer] = Math.max(f.gap[peer] || 0, now - f.seen[peer]);
                f.seen[peer] = now;
            }
        }
        // Audio packets per person, both paths together (a path's count
        // stays once it closes).
        for (const [peer, sources] of Object.entries(audio)) {
            f.audioLast[peer] = Object.assign({}, f.audioLast[peer] || {}, sources);
            f.audio[peer] = Object.values(f.audioLast[peer]).reduce((a, b) => a + b, 0);
        }
        if (f.running) setTimeout(tick, 100);
    };
    tick();
    return true;
"#;

/// Waits (up to [`LIMIT`]) until `script` returns `true` on `b`; panics
/// with what the page shows otherwise.
pub async fn wait(b: &Browser, what: &str, script: &str) {
    b.wait_until(what, script, LIMIT).await.unwrap();
}

/// A script for [`wait`]: the element with `data-testid` is there.
pub fn exists(testid: &str) -> String {
    format!("return !!document.querySelector('[data-testid={testid}]')")
}

/// A script for [`wait`]: the element with `data-testid` is gone.
pub fn gone(testid: &str) -> String {
    format!("return !document.querySelector('[data-testid={testid}]')")
}

/// A script for [`wait`]: exactly `n` elements match `css`.
pub fn count_is(css: &str, n: usize) -> String {
    format!("return document.querySelectorAll({css:?}).length === {n}")
}

/// Writes `text` in `b`'s open chat and sends it.
pub async fn send_chat(b: &Browser, text: &str) {
    b.js(&format!(
        "document.querySelector('[data-testid=chat-input]').value = {text:?};
         document.querySelector('[data-testid=chat-send]').click();"
    ))
    .await
    .unwrap();
}

/// The wall clock in milliseconds, comparable with the page's `Date.now()`.
pub fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

/// Video frames decoded and audio bytes received, over all peer connections.
pub async fn inbound(b: &Browser) -> (u64, u64) {
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
pub const PEER_STATES: &str = r#"
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
pub async fn wait_remote_frame(b: &Browser, other: Option<&Browser>) {
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
pub async fn assert_receiving(b: &Browser) {
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

/// Two headless Chromium processes in a call on the app at `app_url` (no
/// STUN or TURN: loopback), both receiving and shown as connected.
pub async fn call_of_two(app_url: &str) -> crate::Result<(Browser, Browser)> {
    let a = Browser::launch(crate::Kind::Chromium).await?;
    let link = start_call(&a, &format!("{app_url}?ice=none"), "Ada").await;
    let b = Browser::launch(crate::Kind::Chromium).await?;
    b.goto(&link).await?;
    for side in [&a, &b] {
        assert_receiving(side).await;
        wait_connected(side).await;
    }
    Ok((a, b))
}

/// Opens `page` (the app's address, with any query), types a name, starts
/// a call; gives the room link.
pub async fn start_call(b: &Browser, page: &str, name: &str) -> String {
    open_landing(b, page).await;
    start_from_landing(b, name).await
}

/// Opens `page` and waits for the landing page.
pub async fn open_landing(b: &Browser, page: &str) {
    b.goto(page).await.unwrap();
    wait(b, "the landing page", &exists("start")).await;
}

/// On the landing page: types a name and starts a call; gives the link.
pub async fn start_from_landing(b: &Browser, name: &str) -> String {
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
pub async fn remote_name(b: &Browser) -> Value {
    b.js("const n = document.querySelector('[data-testid=remote-name]'); return n && n.textContent")
        .await
        .unwrap()
}

/// Waits for the remote tile to say "connected".
pub async fn wait_connected(b: &Browser) {
    b.wait_until(
        "the peer to show as connected",
        "const s = document.querySelector('[data-testid=remote-status]'); return !!s && s.textContent === 'connected'",
        LIMIT,
    )
    .await
    .unwrap();
}

/// Milliseconds from `opened_at` to the first remote frame on `b`.
pub async fn setup_ms(b: &Browser, opened_at: f64) -> f64 {
    // The stamp comes with the first presented frame
    // (requestVideoFrameCallback), which may follow `readyState` by a
    // moment.
    b.wait_until(
        "the first frame's time stamp",
        "const v = document.querySelector('video[data-testid=remote-video]');
         return !!v && !!v.dataset.firstFrame",
        LIMIT,
    )
    .await
    .unwrap();
    let first = b
        .js("return Number(document.querySelector('video[data-testid=remote-video]').dataset.firstFrame)")
        .await
        .unwrap();
    first.as_f64().unwrap() - opened_at
}
