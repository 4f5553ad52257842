//! Relays that share rooms through Redis, end to end: three relay
//! processes on one real redis-server, people on different relays in one
//! call, and a relay killed (SIGKILL) under a live call.

use std::time::{Duration, Instant};

use peercall_e2e::call::{
    assert_receiving, gone, inbound, start_call, wait, wait_connected, LIMIT,
};
use peercall_e2e::{free_port, Browser, Kind, Redis, Relay};

/// Each remote tile: name, and whether its video decodes and it shows as
/// connected.
const TILES: &str = r#"
    return [...document.querySelectorAll('[data-testid=remote-tile]')].map(t => {
        const v = t.querySelector('video');
        return {name: t.querySelector('[data-testid=remote-name]').textContent,
                ok: !!v && v.videoWidth > 0 && v.readyState >= 2
                    && t.querySelector('[data-testid=remote-status]').textContent === 'connected'};
    });
"#;

/// `b` shows exactly `names` as remote tiles, every one decoding.
async fn sees(b: &Browser, who: &str, names: &[&str]) {
    let mut want: Vec<&str> = names.to_vec();
    want.sort();
    let start = Instant::now();
    loop {
        let tiles = b.js(TILES).await.unwrap();
        let tiles = tiles.as_array().cloned().unwrap_or_default();
        let mut got: Vec<&str> = tiles.iter().filter_map(|t| t["name"].as_str()).collect();
        got.sort();
        if got == want && tiles.iter().all(|t| t["ok"] == true) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{who}: wanted {want:?}, all decoding; tiles {tiles:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Local WebSocket connections on `relay`.
async fn connections(relay: &Relay) -> u64 {
    relay.health().await.unwrap()["connections"]
        .as_u64()
        .unwrap_or(0)
}

/// Opens `room` on the app at `app` through `relay` only, as `name`
/// (remembered the way the landing page does).
async fn join(b: &Browser, app: &str, relay: &str, room: &str, name: &str) {
    let page = format!("{app}?ice=none&relay={relay}");
    b.goto(&format!("{page}&name-setup=1")).await.unwrap();
    b.js(&format!("localStorage.setItem('peercall.name', {name:?})"))
        .await
        .unwrap();
    b.goto(&format!("{page}#{room}")).await.unwrap();
}

async fn notice(b: &Browser) -> String {
    let n = b
        .js("const n = document.querySelector('[data-testid=notice]'); return n && n.textContent")
        .await
        .unwrap();
    n.as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_call_across_relays_survives_one_being_killed() {
    let redis = Redis::start().await.unwrap();
    // Chromium's page comes from the first relay and may connect to the
    // second: a page of another origin, which each relay is told to allow
    // (docs/PROTOCOL.md 5.10), and a relay the page's Content-Security-
    // Policy must let it connect to (5.11; a deployment lists its relays in
    // config.json instead, which the policy takes in by itself).
    let first = free_port();
    let page = format!("http://127.0.0.1:{first}");
    let cluster = [
        "--redis",
        &redis.url(),
        "--allowed-origin",
        &page,
        "--connect-src",
        "ws://127.0.0.1:*",
    ];
    let mut relays = Vec::new();
    for port in [first, 0, 0] {
        let relay = Relay::start_at(port, &cluster).await.unwrap();
        relay.until_in_cluster().await.unwrap();
        relays.push(relay);
    }
    let c = relays.pop().unwrap();

    // Chromium gets two relays and picks one at random: that one is
    // "home", the other is Firefox's.
    let chromium = Browser::launch(Kind::Chromium).await.unwrap();
    let query = format!(
        "?ice=none&relay={},{}",
        relays[0].ws_url(),
        relays[1].ws_url()
    );
    let link = start_call(&chromium, &format!("{}{query}", relays[0].url), "Ada").await;
    let room = link.split('#').nth(1).unwrap().to_owned();
    let start = Instant::now();
    let home = loop {
        if connections(&relays[0]).await == 1 {
            break 0;
        }
        if connections(&relays[1]).await == 1 {
            break 1;
        }
        assert!(
            start.elapsed() < LIMIT,
            "chromium connected to neither relay"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let other = relays.remove(1 - home);
    let home = relays.pop().unwrap();

    let firefox = Browser::launch(Kind::Firefox).await.unwrap();
    join(&firefox, &other.url, &other.ws_url(), &room, "Fen").await;
    for side in [&chromium, &firefox] {
        assert_receiving(side).await;
        wait_connected(side).await;
    }
    assert_eq!(connections(&home).await, 1);
    assert_eq!(connections(&other).await, 1);

    // Chromium's relay dies without a word. It moves to the other relay by
    // itself (the second in its list), under the same id, while the video
    // keeps decoding on both sides.
    let before = (inbound(&chromium).await.0, inbound(&firefox).await.0);
    let killed = Instant::now();
    home.kill().await;
    let moved = loop {
        if connections(&other).await == 2 {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(20),
            "chromium did not move to the other relay"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let after = (inbound(&chromium).await.0, inbound(&firefox).await.0);
    assert!(
        after.0 > before.0 && after.1 > before.1,
        "video decoded on both sides through the failover: {before:?} -> {after:?}"
    );
    // Chromium is back in the room once its id is free (the dead relay's
    // hold on it expires within --cluster-ttl), and nobody was shown
    // leaving.
    let rejoined = loop {
        if other.health().await.unwrap()["peers"] == 2 {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(20),
            "chromium did not rejoin through the other relay: {}",
            other.health().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    wait(
        &chromium,
        "the relay-lost notice to go",
        &gone("relay-lost"),
    )
    .await;
    for side in [&chromium, &firefox] {
        let n = notice(side).await;
        assert!(
            !n.contains("left") && !n.contains("lost their connection"),
            "no leave shown: {n}"
        );
        wait_connected(side).await;
        assert_receiving(side).await;
    }
    eprintln!(
        "chromium was on the surviving relay {moved:?} after the SIGKILL, back in the room after {rejoined:?}"
    );

    // A third person through the third relay: everyone sees everyone, so
    // Chromium negotiated with it through the relay it moved to.
    let third = Browser::launch(Kind::Chromium).await.unwrap();
    join(&third, &c.url, &c.ws_url(), &room, "Cy").await;
    sees(&third, "third", &["Ada", "Fen"]).await;
    sees(&chromium, "chromium", &["Cy", "Fen"]).await;
    sees(&firefox, "firefox", &["Ada", "Cy"]).await;
    drop(redis);
    for b in [chromium, firefox, third] {
        b.close().await;
    }
}
