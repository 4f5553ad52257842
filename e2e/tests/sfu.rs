//! Large calls (issue 19): a room past `--mesh-max` people moves its media
//! to a real Janus's VideoRoom (the SFU) and back, make before break.
//!
//! Five browser processes (three Chromium, two Firefox) and
//! `--mesh-max 2`: the first two talk peer to peer (their selected
//! candidate pair joins the two browsers), the third joins and everyone
//! moves to the SFU (the pairs end at Janus, the direct connections
//! close), two more join and everyone decodes and hears everyone, chat
//! and mute state go through the relay; three leave and the last two are
//! peer to peer again. Every page samples `framesDecoded` for every other person
//! (direct and through the SFU together) every 100 ms: the longest gap
//! during both moves must stay under a second.

use std::time::{Duration, Instant};

use peercall_e2e::call::{exists, send_chat, start_call, wait, FRAME_SAMPLER as SAMPLER};
use peercall_e2e::phone::{tail, Janus};
use peercall_e2e::{free_port, Browser, Kind, Redis, Relay};
use serde_json::Value;

/// Three browsers and Janus on two cores.
const LIMIT: Duration = Duration::from_secs(60);

/// Janus's media ports (deploy/janus/janus.jcfg, `rtp_port_range`).
const JANUS_PORTS: std::ops::RangeInclusive<u64> = 20000..=20999;

/// What a page's media paths look like now: per remote tile whether it
/// decodes; the direct connections; the SFU subscriber's state and the
/// remote port of its selected candidate pair; per direct connection the
/// same.
const PATHS: &str = r#"
    const pairOf = async pc => {
        let out = null;
        const stats = await pc.getStats();
        stats.forEach(r => {
            if (r.type === 'transport' && r.selectedCandidatePairId) {
                const p = stats.get(r.selectedCandidatePairId);
                const local = p && stats.get(p.localCandidateId);
                const remote = p && stats.get(p.remoteCandidateId);
                out = {local: local && local.port, remote: remote && remote.port};
            }
        });
        if (!out) stats.forEach(r => {
            if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') {
                const local = stats.get(r.localCandidateId), remote = stats.get(r.remoteCandidateId);
                out = {local: local && local.port, remote: remote && remote.port};
            }
        });
        return out;
    };
    const pc = window.peercall || {};
    const direct = {};
    for (const [id, conn] of (pc.peers || new Map()))
        direct[id] = {state: conn.connectionState, pair: await pairOf(conn)};
    const sub = pc.sfuSubscriber;
    const tiles = [...document.querySelectorAll('[data-testid=remote-tile]')].map(t => {
        const v = t.querySelector('video');
        return {peer: t.dataset.peer, decoding: !!v && v.videoWidth > 0 && v.readyState >= 2,
                muted: !!t.querySelector('[data-testid=remote-muted]'),
                video: v ? {width: v.videoWidth, ready: v.readyState, paused: v.paused,
                            tracks: v.srcObject ? v.srcObject.getTracks().map(t =>
                                t.kind + ':' + t.readyState + (t.muted ? ':muted' : '')) : null} : null};
    });
    return {tiles, direct,
            sfu: sub ? {state: sub.connectionState, pair: await pairOf(sub)} : null,
            gaps: window.__frames ? window.__frames.gap : null,
            fresh: window.__frames ? Object.fromEntries(Object.entries(window.__frames.seen)
                .map(([p, at]) => [p, performance.now() - at])) : null,
            audio: window.__frames ? window.__frames.audio : null,
            renewed: !!window.__oldSub && !!sub && sub !== window.__oldSub};
"#;

async fn paths(b: &Browser) -> Value {
    b.js(&format!("return (async () => {{ {PATHS} }})()"))
        .await
        .unwrap()
}

/// Waits until `check` holds for `b`'s paths; the failure shows them and
/// Janus's log.
async fn until(b: &Browser, who: &str, what: &str, janus: &Janus, check: impl Fn(&Value) -> bool) {
    let start = Instant::now();
    loop {
        let p = paths(b).await;
        if check(&p) {
            return;
        }
        if start.elapsed() > LIMIT {
            panic!(
                "{who}: {what} did not happen within {LIMIT:?}; its paths: {p}\nJanus:\n{}",
                tail(&janus.log(), 30)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `others` tiles, each decoding.
fn all_decoding(p: &Value, others: usize) -> bool {
    let tiles = p["tiles"].as_array().cloned().unwrap_or_default();
    tiles.len() == others && tiles.iter().all(|t| t["decoding"] == true)
}

/// On the SFU only: no direct connection, the subscriber connected with
/// its pair ending at Janus.
fn on_sfu(p: &Value) -> bool {
    p["direct"].as_object().is_some_and(|d| d.is_empty())
        && p["sfu"]["state"] == "connected"
        && p["sfu"]["pair"]["remote"]
            .as_u64()
            .is_some_and(|port| JANUS_PORTS.contains(&port))
}

/// Peer to peer only: no SFU connection, one connected direct connection
/// per other person.
fn on_mesh(p: &Value, others: usize) -> bool {
    p["sfu"].is_null()
        && p["direct"]
            .as_object()
            .is_some_and(|d| d.len() == others && d.values().all(|c| c["state"] == "connected"))
}

/// The longest frame gap `p` saw from anyone, in ms.
fn longest_gap(p: &Value) -> f64 {
    p["gaps"]
        .as_object()
        .map(|g| g.values().filter_map(Value::as_f64).fold(0.0, f64::max))
        .unwrap_or(0.0)
}

/// The direct pair between `a` and `b` (a call of two) joins the two
/// browsers: `a`'s remote port is `b`'s local one.
fn direct_between(a: &Value, b: &Value) -> bool {
    // Each one's only tile is the other.
    let (Some(b_id), Some(a_id)) = (
        a["tiles"][0]["peer"].as_str(),
        b["tiles"][0]["peer"].as_str(),
    ) else {
        return false;
    };
    let a_pair = &a["direct"][b_id]["pair"];
    let b_pair = &b["direct"][a_id]["pair"];
    a_pair["remote"].is_u64() && a_pair["remote"] == b_pair["local"]
}

/// A relay with the SFU on `janus` (one URL, or several comma-separated)
/// and `--mesh-max`, and the app's address on it.
async fn sfu_relay(janus: &str, secret: &str, mesh_max: &str) -> (Relay, String) {
    let relay = Relay::start(&[
        "--janus",
        janus,
        "--janus-secret",
        secret,
        "--mesh-max",
        mesh_max,
    ])
    .await
    .unwrap();
    let page = format!("{}?ice=none", relay.url);
    (relay, page)
}

/// Every other person's audio keeps arriving at `b` (packets grow).
async fn hears_everyone(b: &Browser, who: &str, others: usize, janus: &Janus) {
    let before = paths(b).await["audio"].clone();
    until(b, who, "audio from everyone, growing", janus, |p| {
        let now = p["audio"].as_object().cloned().unwrap_or_default();
        now.len() == others
            && now
                .iter()
                .all(|(id, n)| n.as_f64() > before[id].as_f64().or(Some(0.0)))
    })
    .await;
}

async fn open_chat(b: &Browser) {
    b.js("if (!document.querySelector('[data-testid=chat-panel]')) \
          document.querySelector('[data-testid=toggle-chat]').click();")
        .await
        .unwrap();
    wait(b, "the chat panel", &exists("chat-input")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_moves_to_the_sfu_past_mesh_max_and_back_without_a_gap() {
    let janus = Janus::start().await.unwrap();
    let (_relay, page) = sfu_relay(&janus.url(), &janus.secret, "2").await;

    let ada = Browser::launch(Kind::Chromium).await.unwrap();
    let link = start_call(&ada, &page, "Ada").await;
    let bob = Browser::launch(Kind::Chromium).await.unwrap();
    bob.goto(&link).await.unwrap();
    for (who, b) in [("Ada", &ada), ("Bob", &bob)] {
        until(b, who, "a direct call with the other", &janus, |p| {
            all_decoding(p, 1) && on_mesh(p, 1)
        })
        .await;
    }
    let (a, b) = (paths(&ada).await, paths(&bob).await);
    assert!(
        direct_between(&a, &b) && direct_between(&b, &a),
        "two people talk peer to peer: {a}\n{b}"
    );
    for b in [&ada, &bob] {
        b.js(SAMPLER).await.unwrap();
    }

    // A third: everyone moves to the SFU.
    let cleo = Browser::launch(Kind::Firefox).await.unwrap();
    cleo.goto(&link).await.unwrap();
    cleo.js(SAMPLER).await.unwrap();
    for (who, b) in [("Ada", &ada), ("Bob", &bob), ("Cleo", &cleo)] {
        until(
            b,
            who,
            "everyone decoding through the SFU alone",
            &janus,
            |p| all_decoding(p, 2) && on_sfu(p),
        )
        .await;
    }
    // Frames keep coming for a while on the SFU.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (who, b) in [("Ada", &ada), ("Bob", &bob)] {
        let p = paths(b).await;
        let gap = longest_gap(&p);
        println!("{who}: longest frame gap moving to the SFU: {gap:.0} ms");
        assert!(
            gap > 0.0 && gap < 1000.0,
            "{who}: a gap of {gap:.0} ms: {p}"
        );
    }

    // Two more, straight onto the SFU.
    let dan = Browser::launch(Kind::Chromium).await.unwrap();
    dan.goto(&link).await.unwrap();
    let eve = Browser::launch(Kind::Firefox).await.unwrap();
    eve.goto(&link).await.unwrap();
    let everyone = [
        ("Ada", &ada),
        ("Bob", &bob),
        ("Cleo", &cleo),
        ("Dan", &dan),
        ("Eve", &eve),
    ];
    for (who, b) in everyone {
        b.js(SAMPLER).await.unwrap();
        until(
            b,
            who,
            "four others decoding through the SFU",
            &janus,
            |p| all_decoding(p, 4) && on_sfu(p),
        )
        .await;
    }
    for (who, b) in everyone {
        hears_everyone(b, who, 4, &janus).await;
    }
    for (who, b) in [("Ada", &ada), ("Bob", &bob), ("Cleo", &cleo)] {
        let p = paths(b).await;
        let gap = longest_gap(&p);
        println!("{who}: longest frame gap with five on the SFU: {gap:.0} ms");
        // Not a switch: five browsers decoding four videos each on two
        // cores stall now and then (up to 1.1 s seen). The picture must
        // not stop, though.
        assert!(gap < 2000.0, "{who}: a gap of {gap:.0} ms: {p}");
    }

    // The stats panel shows the path through the SFU (and no closed
    // direct connections).
    ada.click("[data-testid=stats-toggle]").await.unwrap();
    ada.wait_until(
        "the stats panel to show the SFU's connection alone",
        "const s = [...document.querySelectorAll('[data-testid=stats] section')];
         const p = document.querySelector('[data-testid=stats-path]');
         const r = document.querySelector('[data-testid=stats-in]');
         return s.length === 1 && s[0].textContent.includes('through the server (SFU)')
             && !!p && p.textContent.includes('⇄') && !!r && r.textContent.endsWith(' kbit/s')",
        LIMIT,
    )
    .await
    .unwrap();
    ada.click("[data-testid=stats-toggle]").await.unwrap();

    // Chat and mute state go through the relay now.
    open_chat(&ada).await;
    send_chat(&ada, "hello through the SFU").await;
    for (who, b) in [("Bob", &bob), ("Cleo", &cleo), ("Eve", &eve)] {
        open_chat(b).await;
        b.wait_until(
            &format!("{who} reads Ada's message"),
            "return [...document.querySelectorAll('[data-testid=chat-message]')]
                .some(m => m.textContent.includes('hello through the SFU'))",
            LIMIT,
        )
        .await
        .unwrap();
    }
    ada.click("[data-testid=toggle-mic]").await.unwrap();
    for (who, b) in [("Bob", &bob), ("Cleo", &cleo), ("Dan", &dan)] {
        b.wait_until(
            &format!("{who} sees Ada muted"),
            "return !!document.querySelector('[data-testid=remote-muted]')",
            LIMIT,
        )
        .await
        .unwrap();
    }
    ada.click("[data-testid=toggle-mic]").await.unwrap();

    // A shared screen goes out on the one publishing connection.
    ada.click("[data-testid=toggle-screen]").await.unwrap();
    for (who, b) in [("Bob", &bob), ("Eve", &eve)] {
        b.wait_until(
            &format!("{who} sees Ada share her screen"),
            "return !!document.querySelector('[data-testid=remote-sharing]')",
            LIMIT,
        )
        .await
        .unwrap();
    }
    let surface = ada
        .js("const s = window.peercall.sfuPublisher.getSenders()
                 .find(s => s.track && s.track.kind === 'video');
             return s ? (s.track.getSettings().displaySurface || null) : null")
        .await
        .unwrap();
    assert!(surface.is_string(), "the screen goes to the SFU: {surface}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (who, b) in [("Bob", &bob), ("Eve", &eve)] {
        let p = paths(b).await;
        assert!(frames_flow(&p, 4), "{who}: frames keep coming: {p}");
    }
    // The browser's own "Stop sharing": back to the camera.
    ada.js("window.peercall.sfuPublisher.getSenders()
                .find(s => s.track && s.track.kind === 'video')
                .track.dispatchEvent(new Event('ended'));")
        .await
        .unwrap();
    bob.wait_until(
        "Bob sees the sharing stop",
        "return !document.querySelector('[data-testid=remote-sharing]')",
        LIMIT,
    )
    .await
    .unwrap();

    // Three leave: the last two are peer to peer again.
    for b in [&ada, &bob] {
        b.js("window.__frames.gap = {}").await.unwrap();
    }
    cleo.close().await;
    dan.close().await;
    eve.close().await;
    for (who, b) in [("Ada", &ada), ("Bob", &bob)] {
        until(b, who, "a direct call again, the SFU closed", &janus, |p| {
            all_decoding(p, 1) && on_mesh(p, 1)
        })
        .await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (a, b) = (paths(&ada).await, paths(&bob).await);
    assert!(
        direct_between(&a, &b) && direct_between(&b, &a),
        "back to peer to peer: {a}\n{b}"
    );
    for (who, p) in [("Ada", &a), ("Bob", &b)] {
        let gap = longest_gap(p);
        println!("{who}: longest frame gap moving back to peer to peer: {gap:.0} ms");
        assert!(
            gap > 0.0 && gap < 1000.0,
            "{who}: a gap of {gap:.0} ms: {p}"
        );
    }
    ada.close().await;
    bob.close().await;
}

/// Every tile of `p` got a new frame in the last half second.
fn frames_flow(p: &Value, others: usize) -> bool {
    let tiles = p["tiles"].as_array().cloned().unwrap_or_default();
    tiles.len() == others
        && tiles.iter().all(|t| {
            let peer = t["peer"].as_str().unwrap_or_default();
            p["fresh"][peer].as_f64().is_some_and(|ms| ms < 500.0)
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_spread_over_two_janus_servers_and_move_when_one_dies() {
    let mut first = Janus::start().await.unwrap();
    let second = Janus::start_with_secret(&first.secret).await.unwrap();
    let servers = format!("{},{}", first.url(), second.url());
    let (relay, page) = sfu_relay(&servers, &first.secret, "1").await;

    // Two rooms of two, each on the SFU (past --mesh-max 1).
    let mut people = Vec::new();
    for (host, guest) in [("Ada", "Bob"), ("Cleo", "Dan")] {
        let a = Browser::launch(Kind::Chromium).await.unwrap();
        let link = start_call(&a, &page, host).await;
        let b = Browser::launch(Kind::Chromium).await.unwrap();
        b.goto(&link).await.unwrap();
        people.push((host, a));
        people.push((guest, b));
    }
    for (who, b) in &people {
        b.js(SAMPLER).await.unwrap();
        until(b, who, "the other through the SFU", &first, |p| {
            all_decoding(p, 1) && on_sfu(p) && frames_flow(p, 1)
        })
        .await;
    }
    let health = relay.health().await.unwrap();
    let load = &health["sfu_rooms"];
    assert_eq!(
        (&load[first.url()], &load[second.url()]),
        (&Value::from(1), &Value::from(1)),
        "one room on each Janus: {health}"
    );

    // The first Janus dies: its room moves to the second by itself.
    first.kill().await;
    let killed = Instant::now();
    // Its room's frames stop at once; the check below needs new ones.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for (who, b) in &people {
        until(b, who, "the other through the SFU again", &second, |p| {
            on_sfu(p) && frames_flow(p, 1)
        })
        .await;
    }
    let back = killed.elapsed();
    println!("both rooms' people see each other {back:?} after a Janus died");
    assert!(back < Duration::from_secs(10), "{back:?}");
    let health = relay.health().await.unwrap();
    assert_eq!(
        health["sfu_rooms"][second.url()],
        2,
        "both rooms on the second Janus: {health}"
    );
    for (_, b) in people {
        b.close().await;
    }
}

/// Which Janus (by index in `servers`) carries the room per `relay`'s
/// `/healthz`, if exactly one does.
async fn sfu_of(relay: &Relay, servers: &[&Janus]) -> Option<usize> {
    let health = relay.health().await.unwrap();
    let load: Vec<u64> = servers
        .iter()
        .map(|j| health["sfu_rooms"][j.url()].as_u64().unwrap_or(0))
        .collect();
    match load.as_slice() {
        [1, 0] => Some(0),
        [0, 1] => Some(1),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_of_a_cluster_share_one_sfu_room_and_move_it_together() {
    let redis = Redis::start().await.unwrap();
    let first = Janus::start().await.unwrap();
    let second = Janus::start_with_secret(&first.secret).await.unwrap();
    let mut janus = [first, second];
    let servers = format!("{},{}", janus[0].url(), janus[1].url());
    // The pages come from the first relay and connect to either (as in
    // tests/cluster.rs: another origin, allowed, and a relay the page's
    // policy lets it reach).
    let home = free_port();
    let origin = format!("http://127.0.0.1:{home}");
    let args = [
        "--redis",
        &redis.url(),
        "--janus",
        &servers,
        "--janus-secret",
        &janus[0].secret,
        "--mesh-max",
        "1",
        "--allowed-origin",
        &origin,
        "--connect-src",
        "ws://127.0.0.1:*",
    ];
    let mut relays = Vec::new();
    for port in [home, 0] {
        let relay = Relay::start_at(port, &args).await.unwrap();
        relay.until_in_cluster().await.unwrap();
        relays.push(relay);
    }

    // Ada and Cleo on the first relay, Bob on the second: past
    // --mesh-max 1, all on the SFU.
    let through = |i: usize| format!("{origin}?ice=none&relay={}", relays[i].ws_url());
    let ada = Browser::launch(Kind::Chromium).await.unwrap();
    let link = start_call(&ada, &through(0), "Ada").await;
    let room = link.split('#').nth(1).unwrap().to_owned();
    let bob = Browser::launch(Kind::Chromium).await.unwrap();
    bob.goto(&format!("{}#{room}", through(1))).await.unwrap();
    let cleo = Browser::launch(Kind::Chromium).await.unwrap();
    cleo.goto(&format!("{}#{room}", through(0))).await.unwrap();
    let people = [("Ada", &ada), ("Bob", &bob), ("Cleo", &cleo)];
    for (who, b) in people {
        b.js(SAMPLER).await.unwrap();
        until(b, who, "the others through the SFU", &janus[0], |p| {
            all_decoding(p, 2) && on_sfu(p) && frames_flow(p, 2)
        })
        .await;
    }
    // Both relays' sessions are on one Janus, in one room.
    let refs = [&janus[0], &janus[1]];
    let on = sfu_of(&relays[0], &refs).await;
    assert!(on.is_some(), "{}", relays[0].health().await.unwrap());
    assert_eq!(
        sfu_of(&relays[1], &refs).await,
        on,
        "both relays on one Janus: {} / {}",
        relays[0].health().await.unwrap(),
        relays[1].health().await.unwrap()
    );
    let dead = on.unwrap();
    let other = 1 - dead;

    // That Janus dies: both relays move the room to the other one, and
    // everyone sees everyone again.
    janus[dead].kill().await;
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for (who, b) in people {
        until(
            b,
            who,
            "the others through the SFU again",
            &janus[other],
            |p| all_decoding(p, 2) && on_sfu(p) && frames_flow(p, 2),
        )
        .await;
    }
    let back = killed.elapsed();
    println!("a room across two relays is whole again {back:?} after its Janus died");
    assert!(back < Duration::from_secs(10), "{back:?}");
    for relay in &relays {
        let refs = [&janus[0], &janus[1]];
        assert_eq!(
            sfu_of(relay, &refs).await,
            Some(other),
            "{}",
            relay.health().await.unwrap()
        );
    }
    for b in [ada, bob, cleo] {
        b.close().await;
    }
}

/// `n` people who only publish (a small video and audio each, through
/// the relay's protocol, PROTOCOL.md 5.14), joined one after another into
/// `room` on `ws`, from one page; `window.__crowd` says how far it got.
const CROWD: &str = r#"
    const [wsUrl, room, n] = [__WS__, __ROOM__, __N__];
    const c = window.__crowd = {published: 0, errors: [], sockets: []};
    const media = await navigator.mediaDevices.getUserMedia(
        {audio: true, video: {width: 160, height: 120, frameRate: 10}});
    const hex = () => [...crypto.getRandomValues(new Uint8Array(16))]
        .map(b => b.toString(16).padStart(2, '0')).join('');
    const one = i => new Promise(resolve => {
        const id = hex(), ws = new WebSocket(wsUrl);
        c.sockets.push(ws);
        const send = body => ws.send(JSON.stringify(Object.assign({v: 1, room, from: id}, body)));
        let pc = null;
        const publish = async () => {
            if (pc) return;
            pc = new RTCPeerConnection();
            pc.addTransceiver(media.getAudioTracks()[0].clone(), {direction: 'sendonly'});
            pc.addTransceiver(media.getVideoTracks()[0].clone(),
                {direction: 'sendonly', sendEncodings: [{maxBitrate: 60000}]});
            await pc.setLocalDescription();
            while (pc.iceGatheringState !== 'complete')
                await new Promise(r => setTimeout(r, 20));
            send({to: 'relay', type: 'sfu_publish', sdp: pc.localDescription.sdp});
        };
        ws.onopen = () => send({type: 'join', name: 'Guest ' + (i + 1)});
        ws.onmessage = async e => {
            const m = JSON.parse(e.data);
            if (m.type === 'error') { c.errors.push(m.code); resolve(); }
            if ((m.type === 'welcome' || m.type === 'route') && m.route === 'sfu') publish();
            if (m.type === 'sfu_published') {
                await pc.setRemoteDescription({type: 'answer', sdp: m.sdp});
                c.published++;
                resolve();
            }
        };
    });
    for (let i = 0; i < n; i++) await one(i);
    return c.published;
"#;

/// Per person on `b`'s SFU subscription: frames decoded of their video and
/// audio packets received (`now`), which grew since `before` (`video`,
/// `audio`: peer ids), and who has a tile and who is listed by name.
const GROWING: &str = r#"
    const before = __BEFORE__ || {};
    const p = window.peercall, peerOf = {};
    for (const s of p.sfuStreams) peerOf[s.mid] = s.peer;
    const now = {}, video = [], audio = [];
    (await p.sfuSubscriber.getStats()).forEach(r => {
        const peer = peerOf[r.mid];
        if (r.type !== 'inbound-rtp' || !peer) return;
        const n = r.kind === 'video' ? (r.framesDecoded || 0) : (r.packetsReceived || 0);
        const key = r.kind + ':' + peer;
        now[key] = n;
        if (n > (before[key] || 0)) (r.kind === 'video' ? video : audio).push(peer);
    });
    const ids = sel => [...document.querySelectorAll(sel)].map(e => e.dataset.peer);
    return {now, video, audio, tiles: ids('[data-testid=remote-tile]'),
            offstage: ids('[data-testid=offstage-person]')};
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_of_25_on_the_sfu_shows_nine_and_receives_only_their_video() {
    let janus = Janus::start().await.unwrap();
    let (relay, page) = sfu_relay(&janus.url(), &janus.secret, "1").await;
    let ada = Browser::launch(Kind::Chromium).await.unwrap();
    let link = start_call(&ada, &page, "Ada").await;
    let room = link.split('#').nth(1).unwrap().to_owned();

    // 24 more, from another browser: the room is full (--max-peers is 25
    // with --janus).
    let crowd = Browser::launch(Kind::Chromium).await.unwrap();
    crowd.goto(&page).await.unwrap();
    let script = CROWD
        .replace("__WS__", &format!("{:?}", relay.ws_url()))
        .replace("__ROOM__", &format!("{room:?}"))
        .replace("__N__", "24");
    let started = Instant::now();
    let published = crowd
        .js(&format!("return (async () => {{ {script} }})()"))
        .await
        .unwrap();
    let errors = crowd.js("return window.__crowd.errors").await.unwrap();
    assert_eq!(published, 24, "errors: {errors}");
    println!(
        "24 people published through the SFU in {:?}",
        started.elapsed()
    );
    let late = CROWD
        .replace("__WS__", &format!("{:?}", relay.ws_url()))
        .replace("__ROOM__", &format!("{room:?}"))
        .replace("__N__", "1")
        .replace("window.__crowd =", "window.__late =");
    crowd
        .js(&format!("return (async () => {{ {late} }})()"))
        .await
        .unwrap();
    assert_eq!(
        crowd.js("return window.__late.errors").await.unwrap(),
        serde_json::json!(["room_full"]),
        "the 26th is turned away"
    );

    // Ada receives everyone's audio and video m-lines, shows nine tiles
    // (decoding) and lists the other 15 by name.
    let start = Instant::now();
    loop {
        let state = ada
            .js("const p = window.peercall; \
                 const tiles = [...document.querySelectorAll('[data-testid=remote-tile]')]; \
                 return {streams: (p.sfuStreams || []).length, \
                         state: p.sfuSubscriber && p.sfuSubscriber.connectionState, \
                         tiles: tiles.length, \
                         decoding: tiles.filter(t => { const v = t.querySelector('video'); \
                             return v && v.videoWidth > 0 && v.readyState >= 2; }).length, \
                         offstage: document.querySelectorAll('[data-testid=offstage-person]').length};")
            .await
            .unwrap();
        if state
            == serde_json::json!({"streams": 48, "state": "connected", "tiles": 9,
                                  "decoding": 9, "offstage": 15})
        {
            break;
        }
        assert!(
            start.elapsed() < LIMIT,
            "Ada: wanted 48 m-lines, 9 tiles decoding, 15 listed; {state}\nJanus:\n{}",
            tail(&janus.log(), 30)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let sizes = ada
        .js("const s = window.peercall.sfuSubscriber; \
             return [s.remoteDescription.sdp.length, s.localDescription.sdp.length];")
        .await
        .unwrap();
    println!(
        "Ada: 9 tiles, 15 listed, 48 m-lines after {:?}; the SFU's offer {} bytes, her answer {} \
         (a message may have {} bytes)",
        start.elapsed(),
        sizes[0],
        sizes[1],
        64 * 1024
    );

    // Over three seconds: frames of the nine on screen only, packets of
    // all 24 voices.
    let script = |before: &Value| {
        format!(
            "return (async () => {{ {} }})()",
            GROWING.replace("__BEFORE__", &before.to_string())
        )
    };
    // (A newcomer's video comes until the page next measures its tiles,
    // once a second, and asks for none: let that pass first.)
    tokio::time::sleep(Duration::from_secs(2)).await;
    let first = ada.js(&script(&Value::Null)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let then = ada.js(&script(&first["now"])).await.unwrap();
    let set = |v: &Value| -> std::collections::BTreeSet<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str().map(str::to_owned))
            .collect()
    };
    let (video, audio) = (set(&then["video"]), set(&then["audio"]));
    // Those listed by name all along get no video; those with a tile all
    // along get theirs.
    let off: Vec<String> = set(&first["offstage"])
        .intersection(&set(&then["offstage"]))
        .cloned()
        .collect();
    let on: Vec<String> = set(&first["tiles"])
        .intersection(&set(&then["tiles"]))
        .cloned()
        .collect();
    println!(
        "Ada, over 3 s: video from {} people, audio from {}; {} on screen and {} listed all along",
        video.len(),
        audio.len(),
        on.len(),
        off.len()
    );
    assert_eq!(audio.len(), 24, "everyone's audio comes: {then}");
    assert!(
        off.len() >= 10 && off.iter().all(|p| !video.contains(p)),
        "no video of those without a tile: {then}"
    );
    assert!(
        on.len() >= 5 && on.iter().all(|p| video.contains(p)),
        "the tiles' video comes: {then}"
    );
    assert!(video.len() <= 9 + 9 - on.len(), "{then}");
    crowd.close().await;
    ada.close().await;
}

/// The frame height `b` receives `peer`'s video at through the SFU.
async fn sfu_frame_height(b: &Browser, peer: &str) -> u64 {
    b.js(&format!(
        "return (async () => {{
            const pc = window.peercall;
            if (!pc.sfuSubscriber || !pc.sfuStreams) return 0;
            const mids = pc.sfuStreams.filter(s => s.peer === {peer:?} && s.kind === 'video').map(s => s.mid);
            let h = 0;
            (await pc.sfuSubscriber.getStats()).forEach(r => {{
                if (r.type === 'inbound-rtp' && r.kind === 'video' && mids.includes(r.mid)) h = r.frameHeight || 0;
            }});
            return h;
        }})()"
    ))
    .await
    .unwrap()
    .as_u64()
    .unwrap_or(0)
}

/// `peer`'s video frames decoded and audio packets received by `b`
/// through the SFU.
async fn sfu_counts(b: &Browser, peer: &str) -> (u64, u64) {
    let v = b
        .js(&format!(
            "return (async () => {{
                const pc = window.peercall;
                const mids = pc.sfuStreams.filter(s => s.peer === {peer:?}).map(s => s.mid);
                let frames = 0, audio = 0;
                (await pc.sfuSubscriber.getStats()).forEach(r => {{
                    if (r.type !== 'inbound-rtp' || !mids.includes(r.mid)) return;
                    if (r.kind === 'video') frames = r.framesDecoded || 0;
                    if (r.kind === 'audio') audio = r.packetsReceived || 0;
                }});
                return [frames, audio];
            }})()"
        ))
        .await
        .unwrap();
    (v[0].as_u64().unwrap_or(0), v[1].as_u64().unwrap_or(0))
}

/// The height of `peer`'s tile on `b`, in device pixels.
async fn tile_height(b: &Browser, peer: &str) -> f64 {
    b.js(&format!(
        "const v = document.querySelector('[data-testid=remote-tile][data-peer={peer:?}] video');
         return v ? v.clientHeight * devicePixelRatio : 0;"
    ))
    .await
    .unwrap()
    .as_f64()
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_tile_receives_a_smaller_simulcast_layer_than_a_large_one() {
    let janus = Janus::start().await.unwrap();
    let (_relay, page) = sfu_relay(&janus.url(), &janus.secret, "1").await;
    let ada = Browser::launch(Kind::Firefox).await.unwrap();
    let link = start_call(&ada, &page, "Ada").await;
    let big = Browser::launch(Kind::Chromium).await.unwrap();
    big.goto(&link).await.unwrap();
    let small = Browser::launch(Kind::Chromium).await.unwrap();
    small.set_window_size(360, 400).await.unwrap();
    small.goto(&link).await.unwrap();
    for (who, b) in [("Ada", &ada), ("big", &big), ("small", &small)] {
        until(b, who, "the others through the SFU", &janus, |p| {
            all_decoding(p, 2) && on_sfu(p)
        })
        .await;
    }
    let peers = |p: &Value| -> Vec<String> {
        p["tiles"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["peer"].as_str().map(str::to_owned))
            .collect()
    };
    let (on_ada, on_big, on_small) = (
        peers(&paths(&ada).await),
        peers(&paths(&big).await),
        peers(&paths(&small).await),
    );
    let ada_id = on_big
        .iter()
        .find(|id| on_small.contains(id))
        .expect("Ada is on both")
        .clone();
    let big_id = on_ada
        .iter()
        .find(|id| on_small.contains(id))
        .expect("the big window's person is on both")
        .clone();
    // The big window's person publishes from Chromium: seen in a large
    // tile (Ada's window, Firefox) and in the small window. The layers
    // settle: a layer switch waits for that layer's keyframe.
    for (who, id, large, tiny) in [("Bob (Chromium)", &big_id, &ada, &small)] {
        let start = Instant::now();
        loop {
            let (big_h, small_h) = (
                sfu_frame_height(large, id).await,
                sfu_frame_height(tiny, id).await,
            );
            let (big_tile, small_tile) =
                (tile_height(large, id).await, tile_height(tiny, id).await);
            if small_h > 0 && big_h > small_h {
                println!(
                    "{who}'s video: {big_h} lines in a tile {big_tile:.0} px tall, \
                     {small_h} lines in one {small_tile:.0} px tall"
                );
                break;
            }
            if start.elapsed() > LIMIT {
                panic!(
                    "{who}: the small tile ({small_tile:.0} px) gets {small_h} lines, \
                     the big one ({big_tile:.0} px) {big_h}\nJanus:\n{}",
                    tail(&janus.log(), 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    // Ada publishes from Firefox, whose layers Janus does not always
    // tell apart here (3 runs of 4 gave 180 lines to the small tile):
    // measured, not required.
    println!(
        "Ada (Firefox)'s video: {} lines in a large tile, {} in the small one",
        sfu_frame_height(&big, &ada_id).await,
        sfu_frame_height(&small, &ada_id).await
    );

    // No tile, no video: the small window's tile for Ada goes (as it does
    // for those past the grid's nine); the SFU stops sending her video
    // there, her audio still comes.
    let (f0, _) = sfu_counts(&small, &ada_id).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (f1, _) = sfu_counts(&small, &ada_id).await;
    assert!(
        f1 > f0,
        "the small window decodes Ada's video first: {f0} -> {f1}"
    );
    small
        .js(&format!(
            "document.querySelector('[data-testid=remote-tile][data-peer={ada_id:?}] video').remove()"
        ))
        .await
        .unwrap();
    let start = Instant::now();
    loop {
        let (f0, a0) = sfu_counts(&small, &ada_id).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (f1, a1) = sfu_counts(&small, &ada_id).await;
        if f1 == f0 && a1 > a0 {
            println!("no tile: Ada's video stopped at {f1} frames, her audio goes on ({a0} -> {a1} packets)");
            break;
        }
        if start.elapsed() > LIMIT {
            panic!(
                "Ada's video still comes without a tile: frames {f0} -> {f1}, audio {a0} -> {a1}"
            );
        }
    }
    let (f0, _) = sfu_counts(&big, &ada_id).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        sfu_counts(&big, &ada_id).await.0 > f0,
        "the big window still gets Ada's video"
    );
    for b in [ada, big, small] {
        b.close().await;
    }
}

/// A page's SFU connections' ICE user fragments: the publisher's own, the
/// subscriber's remote (Janus's) and own; whether they are the ones
/// marked before; their states.
const ICE: &str = r#"
    const u = d => d && (d.sdp.match(/a=ice-ufrag:(\S+)/) || [])[1];
    const p = window.peercall;
    return {pub: u(p.sfuPublisher.localDescription), sub: u(p.sfuSubscriber.remoteDescription),
            subLocal: u(p.sfuSubscriber.localDescription),
            same: p.sfuPublisher === window.__icePub && p.sfuSubscriber === window.__iceSub,
            states: [p.sfuPublisher.connectionState, p.sfuSubscriber.connectionState]};
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ice_restart_and_a_relay_restart_on_the_sfu_are_recovered_from() {
    let janus = Janus::start().await.unwrap();
    let args = [
        "--janus",
        &janus.url(),
        "--janus-secret",
        &janus.secret,
        "--mesh-max",
        "2",
    ];
    let relay = Relay::start(&args).await.unwrap();
    let port = relay.port();
    let page = format!("{}?ice=none", relay.url);
    let ada = Browser::launch(Kind::Chromium).await.unwrap();
    let link = start_call(&ada, &page, "Ada").await;
    let bob = Browser::launch(Kind::Chromium).await.unwrap();
    bob.goto(&link).await.unwrap();
    let cleo = Browser::launch(Kind::Chromium).await.unwrap();
    cleo.goto(&link).await.unwrap();
    let people = [("Ada", &ada), ("Bob", &bob), ("Cleo", &cleo)];
    for (who, b) in people {
        b.js(SAMPLER).await.unwrap();
        until(b, who, "the others through the SFU", &janus, |p| {
            all_decoding(p, 2) && on_sfu(p) && frames_flow(p, 2)
        })
        .await;
    }
    // Ada restarts ICE on both her SFU connections (as after a network
    // change): the same connections, with new ICE credentials on both
    // ends, and nobody's media stops for a second; nobody else's
    // subscription changes (her feed is the same).
    let streams_before = bob
        .js("return JSON.stringify(window.peercall.sfuStreams)")
        .await
        .unwrap();
    for (_, b) in people {
        b.js("window.__frames.gap = {}; window.__oldSub = window.peercall.sfuSubscriber")
            .await
            .unwrap();
    }
    let before = ada.js(ICE).await.unwrap();
    ada.js("window.__icePub = window.peercall.sfuPublisher; \
            window.__iceSub = window.peercall.sfuSubscriber; \
            window.peercall.restartIce('sfu')")
        .await
        .unwrap();
    let start = Instant::now();
    loop {
        let now = ada.js(ICE).await.unwrap();
        if now["same"] == true
            && now["pub"] != before["pub"]
            && now["sub"] != before["sub"]
            && now["subLocal"] != before["subLocal"]
            && now["states"] == serde_json::json!(["connected", "connected"])
        {
            break;
        }
        assert!(
            start.elapsed() < LIMIT,
            "Ada's SFU connections did not restart ICE: before {before}, now {now}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "Ada's SFU connections restarted ICE in {:?}",
        start.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for (who, b) in people {
        until(b, who, "the others, after Ada's ICE restart", &janus, |p| {
            p["renewed"] == false && all_decoding(p, 2) && on_sfu(p) && frames_flow(p, 2)
        })
        .await;
        let gap = longest_gap(&paths(b).await);
        println!("{who}: longest frame gap over Ada's ICE restart {gap:.0} ms");
        assert!(gap < 1000.0, "{who}: {gap} ms without frames");
    }
    assert_eq!(
        bob.js("return JSON.stringify(window.peercall.sfuStreams)")
            .await
            .unwrap(),
        streams_before,
        "Bob's subscription is as it was"
    );

    // The relay goes (and its Janus sessions) and comes back: everyone
    // publishes and subscribes afresh on the new one.
    for (_, b) in people {
        b.js("window.__oldSub = window.peercall.sfuSubscriber")
            .await
            .unwrap();
    }
    relay.kill().await;
    let down = Instant::now();
    let relay = Relay::start_at(port, &args).await.unwrap();
    for (who, b) in people {
        until(
            b,
            who,
            "the others through a new SFU connection",
            &janus,
            |p| p["renewed"] == true && all_decoding(p, 2) && on_sfu(p) && frames_flow(p, 2),
        )
        .await;
    }
    println!(
        "everyone sees everyone through the SFU {:?} after the relay died",
        down.elapsed()
    );
    drop(relay);
    for b in [ada, bob, cleo] {
        b.close().await;
    }
}
