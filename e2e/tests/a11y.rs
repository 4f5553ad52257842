//! Accessibility, end to end: axe-core on every screen of the release
//! build, in a phone-sized and a desktop-sized window, in the dark and the
//! light theme; and a whole call made with the keyboard alone.

use peercall_e2e::call::{assert_receiving, start_call, wait_connected, LIMIT};
use peercall_e2e::{Browser, Kind, Relay};

/// `?ice=none`: loopback needs no STUN, and this machine has no internet.
const QUERY: &str = "?ice=none";

/// The window sizes every screen is checked in: a desktop and a phone.
const SIZES: [(&str, u32, u32); 2] = [("desktop", 1280, 800), ("phone", 390, 844)];

/// Every screen is checked in both themes.
const SCHEMES: [&str; 2] = ["dark", "light"];

/// Runs axe-core on what `b` shows now, in every size and theme; adds what
/// it finds to `failures`, named by `screen`.
async fn audit(b: &Browser, screen: &str, failures: &mut Vec<String>) {
    for (size, w, h) in SIZES {
        b.set_window_size(w, h).await.unwrap();
        for scheme in SCHEMES {
            b.emulate(scheme, "").await.unwrap();
            // A frame for the layout and the styles to follow; then the
            // page's background says which theme it shows.
            let background = b
                .js("return new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() =>
                         r(getComputedStyle(document.documentElement).backgroundColor))))")
                .await
                .unwrap();
            let light = background
                .as_str()
                .and_then(|c| c.strip_prefix("rgb("))
                .and_then(|c| c.split(',').next())
                .and_then(|r| r.trim().parse::<u32>().ok())
                .is_some_and(|red| red > 200);
            assert_eq!(
                light,
                scheme == "light",
                "{screen}: the {scheme} theme shows a {background} background"
            );
            let found = b.axe().await.unwrap();
            println!("{screen}, {size}, {scheme}: {} violations", found.len());
            for v in &found {
                println!("  {v}");
            }
            failures.extend(
                found
                    .into_iter()
                    .map(|v| format!("{screen} ({size}, {scheme}): {v}")),
            );
        }
    }
    b.set_window_size(1280, 800).await.unwrap();
}

async fn wait(b: &Browser, what: &str, script: &str) {
    b.wait_until(what, script, LIMIT).await.unwrap();
}

fn exists(testid: &str) -> String {
    format!("return !!document.querySelector('[data-testid={testid}]')")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_screen_passes_axe_in_both_sizes_and_themes() {
    let relay = Relay::start(&[]).await.unwrap();
    let mut failures = Vec::new();
    let a = Browser::launch(Kind::Chromium).await.unwrap();

    a.goto(&format!("{}{QUERY}", relay.url)).await.unwrap();
    wait(&a, "the start page", &exists("start")).await;
    audit(&a, "start", &mut failures).await;

    let link = start_call(&a, &format!("{}{QUERY}", relay.url), "Ada").await;
    wait(&a, "waiting alone", &exists("waiting")).await;
    wait(&a, "the local preview", &exists("local-preview")).await;
    audit(&a, "waiting alone", &mut failures).await;

    let b = Browser::launch(Kind::Chromium).await.unwrap();
    b.goto(&link).await.unwrap();
    for side in [&a, &b] {
        assert_receiving(side).await;
        wait_connected(side).await;
    }
    audit(&a, "a call of two", &mut failures).await;

    // A message while the chat is closed: the unread count on its button.
    b.click("[data-testid=toggle-chat]").await.unwrap();
    wait(&b, "the chat", &exists("chat-input")).await;
    b.js(
        "document.querySelector('[data-testid=chat-input]').value = 'are you there?';
          document.querySelector('[data-testid=chat-send]').click();",
    )
    .await
    .unwrap();
    wait(&a, "the unread count", &exists("unread")).await;
    audit(&a, "an unread message", &mut failures).await;

    // Chat open, with a message each way.
    a.click("[data-testid=toggle-chat]").await.unwrap();
    for (side, text) in [(&a, "hello from Ada"), (&b, "hello from the other side")] {
        wait(side, "the chat", &exists("chat-input")).await;
        side.js(&format!(
            "const t = document.querySelector('[data-testid=chat-input]'); t.value = {text:?};
             document.querySelector('[data-testid=chat-send]').click();"
        ))
        .await
        .unwrap();
    }
    wait(
        &a,
        "both messages",
        "return document.querySelectorAll('[data-testid=chat-message]').length === 3",
    )
    .await;
    audit(&a, "chat open", &mut failures).await;
    a.click("[data-testid=toggle-chat]").await.unwrap();

    a.click("[data-testid=stats-toggle]").await.unwrap();
    wait(&a, "the statistics", &exists("stats-path")).await;
    audit(&a, "stats open", &mut failures).await;
    a.click("[data-testid=stats-toggle]").await.unwrap();

    a.click("[data-testid=devices-toggle]").await.unwrap();
    wait(&a, "the device picker", &exists("pick-camera")).await;
    audit(&a, "devices open", &mut failures).await;
    a.click("[data-testid=devices-toggle]").await.unwrap();

    // A third person: the group grid.
    let c = Browser::launch(Kind::Chromium).await.unwrap();
    c.goto(&link).await.unwrap();
    wait(
        &a,
        "two remote tiles",
        "return document.querySelectorAll('[data-testid=remote-tile].connected').length === 2",
    )
    .await;
    audit(&a, "a group of three", &mut failures).await;

    // The third leaves and comes back to a room that now holds two at most.
    let full = link.replacen(QUERY, &format!("{QUERY}&max_people=2"), 1);
    assert_ne!(full, link, "the link keeps the page's query: {link}");
    c.goto("about:blank").await.unwrap();
    wait(
        &a,
        "one remote tile",
        "return document.querySelectorAll('[data-testid=remote-tile]').length === 1",
    )
    .await;
    c.goto(&full).await.unwrap();
    wait(&c, "the full-room screen", &exists("call-full")).await;
    audit(&c, "the call is full", &mut failures).await;

    // The relay out of reach, and a misconfigured address.
    c.goto(&format!(
        "{}{QUERY}&relay=ws://127.0.0.1:9#unreachable-room-000000",
        relay.url
    ))
    .await
    .unwrap();
    wait(&c, "the relay error", &exists("relay-lost")).await;
    audit(&c, "relay unreachable", &mut failures).await;
    c.goto(&format!(
        "{}{QUERY}&max_people=99#misconfigured-room-0000",
        relay.url
    ))
    .await
    .unwrap();
    wait(&c, "the configuration error", &exists("config-error")).await;
    audit(&c, "misconfigured", &mut failures).await;
    c.close().await;

    // Someone who says no to the camera.
    let d = Browser::launch_with(Kind::Chromium, &["--deny-permission-prompts".into()])
        .await
        .unwrap();
    d.goto(&link).await.unwrap();
    wait(&d, "the camera error", &exists("media-error")).await;
    audit(&d, "camera denied", &mut failures).await;
    d.close().await;

    a.click("[data-testid=hang-up]").await.unwrap();
    wait(&a, "the left-the-call screen", &exists("left")).await;
    audit(&a, "left the call", &mut failures).await;

    for browser in [a, b] {
        browser.close().await;
    }
    assert!(
        failures.is_empty(),
        "{} axe-core violations:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
