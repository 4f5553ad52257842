//! Group calls end to end: separate browser processes in one room, each
//! holding a peer connection to every other (a full mesh), through the
//! relay binary serving the release build.
//!
//! Every check reads real media: each remote `<video>` has decoded frames
//! and every connection's `framesDecoded` keeps growing. Four people run
//! at once on two cores, so each sends its camera scaled down by the
//! upload budget (360p for four), which the test also checks.

use std::time::Duration;

use peercall_e2e::call::{exists, send_chat, start_call, wait, LIMIT};
use peercall_e2e::{Browser, Kind, Relay};
use serde_json::Value;

/// `?ice=none`: loopback needs no STUN, and this machine has no internet.
const QUERY: &str = "?ice=none";

/// More time than a 1:1 call: four browsers start at once on two cores.
const MESH_LIMIT: Duration = Duration::from_secs(60);

/// The remote tiles: name, peer id, speaking, and whether the video shows
/// decoded frames.
const TILES: &str = r#"
    return [...document.querySelectorAll('[data-testid=remote-tile]')].map(t => {
        const v = t.querySelector('video');
        return {name: t.querySelector('[data-testid=remote-name]').textContent,
                peer: t.dataset.peer, speaking: t.dataset.speaking === 'true',
                status: t.querySelector('[data-testid=remote-status]').textContent,
                decoding: !!v && v.videoWidth > 0 && v.readyState >= 2};
    });
"#;

/// Per connection: video frames decoded, and what the video sender is
/// told and sends (the upload budget).
const CONNECTIONS: &str = r#"
    (async () => {
        const out = {};
        for (const [id, pc] of window.peercall.peers) {
            let frames = 0, height = 0;
            (await pc.getStats()).forEach(r => {
                if (r.type === 'inbound-rtp' && r.kind === 'video') frames += r.framesDecoded || 0;
                if (r.type === 'outbound-rtp' && r.kind === 'video') height = Math.max(height, r.frameHeight || 0);
            });
            const s = pc.getTransceivers().find(t => t.receiver.track.kind === 'video').sender;
            const e = s.getParameters().encodings[0] || {};
            out[id] = {frames, height, maxBitrate: e.maxBitrate || null,
                       scale: e.scaleResolutionDownBy || null, state: pc.connectionState,
                       source: s.track ? s.track.getSettings().height : 0};
        }
        return out;
    })()
"#;

async fn tiles(b: &Browser) -> Vec<Value> {
    match b.js(TILES).await.unwrap() {
        Value::Array(t) => t,
        other => panic!("tiles: {other}"),
    }
}

async fn connections(b: &Browser) -> serde_json::Map<String, Value> {
    match b
        .js(&format!("return {}", CONNECTIONS.trim()))
        .await
        .unwrap()
    {
        Value::Object(m) => m,
        other => panic!("connections: {other}"),
    }
}

/// Opens the room as `name` (remembered the way the landing page does).
async fn join(b: &Browser, relay: &Relay, query: &str, room: &str, name: &str) {
    b.goto(&format!("{}{query}&name-setup=1", relay.url))
        .await
        .unwrap();
    b.js(&format!("localStorage.setItem('peercall.name', {name:?})"))
        .await
        .unwrap();
    b.goto(&format!("{}{query}#{room}", relay.url))
        .await
        .unwrap();
}

/// `b` shows exactly `names` (in any order) as remote tiles, every one
/// decoding and connected, and every connection's decoded frames grow.
async fn sees(b: &Browser, who: &str, names: &[&str]) {
    let mut want: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    want.sort();
    let start = std::time::Instant::now();
    loop {
        let t = tiles(b).await;
        let mut got: Vec<String> = t
            .iter()
            .map(|t| t["name"].as_str().unwrap_or("").to_owned())
            .collect();
        got.sort();
        let all_decoding = t
            .iter()
            .all(|t| t["decoding"] == true && t["status"] == "connected");
        if got == want && all_decoding {
            break;
        }
        if start.elapsed() > MESH_LIMIT {
            let c = connections(b).await;
            panic!("{who}: wanted {want:?} decoding; tiles {t:?}; connections {c:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let before = connections(b).await;
    assert_eq!(
        before.len(),
        names.len(),
        "{who}: one connection per person"
    );
    let start = std::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = connections(b).await;
        let grown = before
            .iter()
            .all(|(id, c)| after.get(id).and_then(|a| a["frames"].as_u64()) > c["frames"].as_u64());
        if grown {
            return;
        }
        if start.elapsed() > LIMIT {
            panic!("{who}: frames stopped: {before:?} -> {after:?}");
        }
    }
}

/// Each of `people` sees all the others, decoding ([`sees`]).
async fn everyone_sees_everyone(people: &[(&str, Browser)]) {
    let names: Vec<&str> = people.iter().map(|(n, _)| *n).collect();
    for (name, b) in people {
        let others: Vec<&str> = names.iter().copied().filter(|n| n != name).collect();
        sees(b, name, &others).await;
    }
}

/// Every video sender of `b` is capped at `bps`, is told to scale its
/// source down to `height` pixels tall (`scaleResolutionDownBy`), and,
/// once the encoder has settled, sends at most that (less when the
/// browser's own CPU adaptation steps in).
async fn budget_applied(b: &Browser, who: &str, bps: u64, height: u64) {
    let start = std::time::Instant::now();
    loop {
        let c = connections(b).await;
        let ok = c.values().all(|c| {
            let source = c["source"].as_f64().unwrap_or(0.0);
            let scale = (source / height as f64).max(1.0);
            c["maxBitrate"].as_u64() == Some(bps)
                && c["scale"]
                    .as_f64()
                    .is_some_and(|s| (s - scale).abs() < 1e-9)
                && c["height"].as_u64().is_some_and(|h| h > 0 && h <= height)
        });
        if ok {
            println!("{who}: budget {bps} bit/s, {height}p: {c:?}");
            return;
        }
        if start.elapsed() > LIMIT {
            panic!("{who}: wanted maxBitrate {bps} and at most {height}p: {c:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Opens `b`'s chat panel (messages are listed only while it is open).
async fn open_chat(b: &Browser) {
    b.js("if (!document.querySelector('[data-testid=chat-panel]')) \
          document.querySelector('[data-testid=toggle-chat]').click();")
        .await
        .unwrap();
    wait(b, "the chat panel", &exists("chat-to")).await;
}

/// Writes `text` in `b`'s chat to `to` (a name) or to everyone.
async fn chat(b: &Browser, to: Option<&str>, text: &str) {
    open_chat(b).await;
    let pick = match to {
        Some(name) => format!(
            "const s = document.querySelector('[data-testid=chat-to]');
             s.value = [...s.options].find(o => o.textContent.trim() === {name:?}).value;"
        ),
        None => "const s = document.querySelector('[data-testid=chat-to]'); s.value = '';".into(),
    };
    b.js(&format!(
        "{pick}
         s.dispatchEvent(new Event('change', {{bubbles: true}}));"
    ))
    .await
    .unwrap();
    // Yew re-renders the placeholder from the choice: wait for it.
    let placeholder = match to {
        Some(name) => format!("Message {name} only"),
        None => "Message everyone".into(),
    };
    wait(
        b,
        "the recipient to be chosen",
        &format!(
            "return document.querySelector('[data-testid=chat-input]').placeholder === {placeholder:?}"
        ),
    )
    .await;
    send_chat(b, text).await;
}

/// The chat lines `b` shows: (name, text, private).
async fn chat_lines(b: &Browser) -> Vec<(String, String, bool)> {
    let v = b
        .js(
            "return [...document.querySelectorAll('[data-testid=chat-message]')].map(m =>
                [m.querySelector('[data-testid=chat-name]').textContent,
                 m.querySelector('[data-testid=chat-text]').textContent,
                 m.dataset.private === 'true'])",
        )
        .await
        .unwrap();
    serde_json::from_value(v).unwrap()
}

/// Clicks `b`'s microphone button (mute or unmute).
async fn toggle_mic(b: &Browser) {
    b.js("document.querySelector('[data-testid=toggle-mic]').click()")
        .await
        .unwrap();
}

#[tokio::test]
async fn four_people_in_a_mesh_one_leaves_and_a_fifth_joins() {
    let relay = Relay::start(&[]).await.unwrap();
    let first = Browser::launch(Kind::Chromium).await.unwrap();
    let link = start_call(&first, &format!("{}{QUERY}", relay.url), "P1").await;
    let room = link.split('#').nth(1).unwrap().to_owned();
    let mut people = vec![("P1", first)];
    for (name, kind) in [
        ("P2", Kind::Chromium),
        ("P3", Kind::Chromium),
        ("P4", Kind::Firefox),
    ] {
        let b = Browser::launch(kind).await.unwrap();
        join(&b, &relay, QUERY, &room, name).await;
        people.push((name, b));
    }
    everyone_sees_everyone(&people).await;
    for (_, b) in &people {
        wait(
            b,
            "the four-person grid",
            "const t = document.querySelector('[data-testid=tiles]');
             return t.dataset.count === '3' && t.classList.contains('n3')",
        )
        .await;
    }
    // The upload budget for four: 666 kbit/s and 360p on each of the three
    // video senders, in both browsers.
    for (name, b) in &people {
        budget_applied(b, name, 666_666, 360).await;
    }

    // Active speaker: only P4 (Firefox's fake microphone: a steady tone)
    // keeps talking; P1, P2 and P3 mute. P1 and P2 highlight P4's tile.
    for (_, b) in &people[..3] {
        toggle_mic(b).await;
    }
    for (name, b) in &people[..2] {
        wait(
            b,
            "P4 highlighted as speaking, nobody else",
            "const t = [...document.querySelectorAll('[data-testid=remote-tile]')];
             const s = t.filter(t => t.dataset.speaking === 'true')
                        .map(t => t.querySelector('[data-testid=remote-name]').textContent);
             return s.length === 1 && s[0] === 'P4'",
        )
        .await;
        println!("{name} sees P4 speaking");
    }
    for (_, b) in &people[..3] {
        toggle_mic(b).await;
    }

    // Chat to one person, then to everyone.
    for (_, b) in &people[1..] {
        open_chat(b).await;
    }
    chat(&people[0].1, Some("P2"), "just for you").await;
    wait(
        &people[1].1,
        "the private message",
        "return [...document.querySelectorAll('[data-testid=chat-message]')]
             .some(m => m.dataset.private === 'true'
                        && m.querySelector('[data-testid=chat-text]').textContent === 'just for you')",
    )
    .await;
    chat(&people[0].1, None, "hello all").await;
    for (name, b) in &people[1..] {
        wait(
            b,
            "the message to everyone",
            "return [...document.querySelectorAll('[data-testid=chat-text]')]
                 .some(t => t.textContent === 'hello all')",
        )
        .await;
        let lines = chat_lines(b).await;
        let private = lines.iter().any(|(_, text, _)| text == "just for you");
        assert_eq!(private, *name == "P2", "{name}: {lines:?}");
        assert!(
            lines.contains(&("P1".into(), "hello all".into(), false)),
            "{name}: {lines:?}"
        );
    }
    let mine = chat_lines(&people[0].1).await;
    assert!(mine.contains(&("You".into(), "just for you".into(), true)));

    // A file to one person: only P3 receives it, intact.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("for-p3.bin");
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&path, &bytes).unwrap();
    chat(&people[0].1, Some("P3"), "a file follows").await;
    people[0]
        .1
        .upload("[data-testid=file-input]", &path)
        .await
        .unwrap();
    wait(
        &people[2].1,
        "the file, checked",
        "const t = document.querySelector('[data-testid=transfer]');
         return !!t && t.dataset.state === 'done' && t.dataset.size === '100000'",
    )
    .await;
    wait(
        &people[0].1,
        "the sender to see it received",
        "const t = [...document.querySelectorAll('[data-testid=transfer]')];
         return t.length === 1 && t[0].dataset.state === 'done'",
    )
    .await;
    for (name, b) in [&people[1], &people[3]] {
        let n = b
            .js("return document.querySelectorAll('[data-testid=transfer]').length")
            .await
            .unwrap();
        assert_eq!(n, 0, "{name} got a file meant for P3");
    }
    if let Some(dir) = std::env::var_os("PEERCALL_SCREENSHOT_DIR") {
        let path = std::path::PathBuf::from(dir).join("mesh-four.png");
        people[0].1.screenshot(&path).await.unwrap();
        println!("screenshot: {}", path.display());
    }

    // P3 hangs up: the others drop its tile and keep each other.
    let (_, p3) = people.remove(2);
    p3.js("document.querySelector('[data-testid=hang-up]').click()")
        .await
        .unwrap();
    wait(&p3, "the left screen", &exists("left")).await;
    p3.close().await;
    everyone_sees_everyone(&people).await;
    // Three people: the budget grows back to 1 Mbit/s and 540p (the
    // camera here gives 720p, so it is scaled, not capped by the source).
    budget_applied(&people[0].1, "P1", 1_000_000, 540).await;

    // P5 joins: everyone sees everyone again.
    let p5 = Browser::launch(Kind::Chromium).await.unwrap();
    join(&p5, &relay, QUERY, &room, "P5").await;
    people.push(("P5", p5));
    everyone_sees_everyone(&people).await;
    for (_, b) in people {
        b.close().await;
    }
}

/// A third person in a room for two is turned away: first by the relay's
/// own limit, then over a relay that only broadcasts (which knows no
/// rooms), by counting the room itself. Either way the two in the call
/// keep it, and the newcomer's camera is off.
#[tokio::test]
async fn a_full_room_turns_the_newcomer_away_over_either_relay() {
    let a = Browser::launch(Kind::Chromium).await.unwrap();
    let b = Browser::launch(Kind::Chromium).await.unwrap();
    let c = Browser::launch(Kind::Chromium).await.unwrap();
    for (relay_args, query) in [
        (&["--max-peers", "2"][..], QUERY.to_owned()),
        (
            &["--mode", "broadcast"][..],
            format!("{QUERY}&max_people=2"),
        ),
    ] {
        println!("room for two, relay {relay_args:?}");
        let relay = Relay::start(relay_args).await.unwrap();
        let link = start_call(&a, &format!("{}{query}", relay.url), "Ada").await;
        let room = link.split('#').nth(1).unwrap().to_owned();
        join(&b, &relay, &query, &room, "Bo").await;
        sees(&a, "Ada", &["Bo"]).await;
        sees(&b, "Bo", &["Ada"]).await;
        join(&c, &relay, &query, &room, "Cy").await;
        wait(
            &c,
            "the room-full screen",
            "const f = document.querySelector('[data-testid=call-full]');
             return !!f && f.textContent.includes('This call is full')",
        )
        .await;
        let camera = c
            .js("return !!document.querySelector('video[data-testid=local-preview]')")
            .await
            .unwrap();
        assert_eq!(
            camera, false,
            "{relay_args:?}: no camera behind the full screen"
        );
        let peers = c
            .js("return window.peercall ? window.peercall.peers.size : 0")
            .await
            .unwrap();
        assert_eq!(peers, 0, "{relay_args:?}: no connections");
        if relay_args[0] == "--mode" {
            // Counted by the newcomer itself: it says this call's own
            // limit (`?max_people=2`), not the most any call can have.
            let full = c
                .js("return document.querySelector('[data-testid=call-full]').textContent")
                .await
                .unwrap();
            let full = full.as_str().unwrap_or_default();
            assert!(
                full.contains("2 people are in it already, the most this call can have is 2."),
                "{full}"
            );
            // Over a broadcast relay the two heard Cy come and go.
            for side in [&a, &b] {
                wait(
                    side,
                    "the notice that Cy found the call full",
                    "const n = document.querySelector('[data-testid=notice]');
                     return !!n && n.textContent.includes('Cy tried to join, but the call is full')",
                )
                .await;
            }
        }
        // The two keep their call.
        tokio::time::sleep(Duration::from_secs(1)).await;
        sees(&a, "Ada", &["Bo"]).await;
        sees(&b, "Bo", &["Ada"]).await;
    }
    for x in [a, b, c] {
        x.close().await;
    }
}
