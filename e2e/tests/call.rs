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

use peercall_e2e::call::{
    assert_receiving, exists, gone, now_ms, remote_name, setup_ms, start_call, wait,
    wait_connected, wait_remote_frame, LIMIT,
};
use peercall_e2e::{Browser, Kind, Relay};

/// `?ice=none`: loopback needs no STUN, and this machine has no internet.
const QUERY: &str = "?ice=none";

/// Hangs up on `leaver`: it shows the left screen with every local track
/// ended; `stayer` shows that the peer left and waits for the next one.
async fn hang_up(leaver: &Browser, stayer: &Browser) {
    leaver
        .js("window.__tracks = document.querySelector('video[data-testid=local-preview]').srcObject.getTracks();
             document.querySelector('[data-testid=hang-up]').click();")
        .await
        .unwrap();
    wait(leaver, "the left screen", &exists("left")).await;
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
    let link = start_call(&a, &format!("{}{QUERY}", relay.url), "Ada").await;
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
    relay.assert_nothing_blocked().await;
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
    let link = start_call(&a, &format!("{}{QUERY}", relay.url), "Ada").await;
    let b = Browser::launch(Kind::Chromium).await.unwrap();
    let mut times = Vec::new();
    for _ in 0..RUNS {
        b.goto("about:blank").await.unwrap();
        wait(&a, "the previous visit to be gone", &gone("remote-tile")).await;
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
