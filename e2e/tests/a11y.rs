//! Accessibility, end to end: axe-core on every screen of the release
//! build, in a phone-sized and a desktop-sized window, in the dark and the
//! light theme (with `PEERCALL_SCREENSHOT_DIR` set, a screenshot of each);
//! reduced motion; and a whole call made with the keyboard alone.

use peercall_e2e::a11y::Key;
use peercall_e2e::call::{
    assert_receiving, count_is, exists, gone, send_chat, start_call, wait, wait_connected, LIMIT,
};
use peercall_e2e::{Browser, Kind, Relay};
use serde_json::Value;

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
            // A frame for the layout and the styles to follow, and any
            // fade or slide run to its end (axe reads the colours as they
            // are drawn); then the page's background says which theme it
            // shows.
            let background = b
                .js("return new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))
                         .then(() => Promise.all(document.getAnimations().map(a => a.finished.catch(() => {}))))
                         .then(() => getComputedStyle(document.documentElement).backgroundColor)")
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
            if let Some(dir) = std::env::var_os("PEERCALL_SCREENSHOT_DIR") {
                let file = format!("{screen}-{size}-{scheme}.png").replace(' ', "-");
                b.screenshot(&std::path::PathBuf::from(dir).join(file))
                    .await
                    .unwrap();
            }
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
    send_chat(&b, "are you there?").await;
    wait(&a, "the unread count", &exists("unread")).await;
    audit(&a, "an unread message", &mut failures).await;

    // Chat open, with a message each way.
    a.click("[data-testid=toggle-chat]").await.unwrap();
    for (side, text) in [(&a, "hello from Ada"), (&b, "hello from the other side")] {
        wait(side, "the chat", &exists("chat-input")).await;
        send_chat(side, text).await;
    }
    wait(
        &a,
        "the three messages",
        &count_is("[data-testid=chat-message]", 3),
    )
    .await;
    audit(&a, "chat open", &mut failures).await;
    // Motion: the panel slides in and the speaker's outline fades, unless
    // the person asks for less motion.
    for (motion, animation, transition) in [("", "slide-in", "0.2s"), ("reduce", "none", "0s")] {
        a.emulate("dark", motion).await.unwrap();
        let seen = a
            .js("return [getComputedStyle(document.querySelector('[data-testid=chat-panel]')).animationName,
                         getComputedStyle(document.querySelector('[data-testid=remote-tile]')).transitionDuration]")
            .await
            .unwrap();
        assert_eq!(
            seen,
            serde_json::json!([animation, transition]),
            "prefers-reduced-motion: {motion:?}"
        );
    }
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
        &count_is("[data-testid=remote-tile].connected", 2),
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
        &count_is("[data-testid=remote-tile]", 1),
    )
    .await;
    c.goto(&full).await.unwrap();
    wait(&c, "the full-room screen", &exists("call-full")).await;
    audit(&c, "the call is full", &mut failures).await;

    // The relay out of reach, and a misconfigured address.
    let open = |query: &'static str, room: &'static str, shows: &'static str| {
        let (c, url) = (&c, format!("{}{QUERY}{query}#{room}", relay.url));
        async move {
            c.goto(&url).await.unwrap();
            wait(c, shows, &exists(shows)).await;
        }
    };
    open(
        "&relay=ws://127.0.0.1:9",
        "unreachable-room-000000",
        "relay-lost",
    )
    .await;
    wait_said(
        &c,
        "Can't reach the call server (the relay is unreachable). The call goes on; trying again.",
    )
    .await;
    let urgent = c
        .js("return document.querySelector('[data-testid=alerts]').textContent")
        .await
        .unwrap();
    assert!(
        urgent.as_str().unwrap().starts_with("Can't reach"),
        "an error is an alert: {urgent}"
    );
    audit(&c, "relay unreachable", &mut failures).await;
    open("&max_people=99", "misconfigured-room-0000", "config-error").await;
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

/// axe-core finds nothing on what `b` shows now, as it is (Firefox: its own
/// theme and window; the full matrix runs in Chromium).
async fn assert_axe_clean(b: &Browser, screen: &str) {
    let found = b.axe().await.unwrap();
    assert!(
        found.is_empty(),
        "{}, {screen}: {} axe-core violations:\n{}",
        b.kind().name(),
        found.len(),
        found.join("\n")
    );
}

/// Presses Tab (Shift+Tab if `back`) until `testid` has the focus, at most
/// 20 times; every control on the way shows a focus ring. Gives what had
/// the focus, in order.
async fn tab_to(b: &Browser, testid: &str, back: bool) -> Vec<String> {
    let mut visited = Vec::new();
    for _ in 0..20 {
        b.press(Key::Tab, back).await.unwrap();
        let now = b.focused("none").await.unwrap();
        let what = now["what"].as_str().unwrap_or("?").to_owned();
        assert_eq!(
            now["ring"],
            true,
            "{}: {what} has the focus but shows no focus ring: {now}",
            b.kind().name()
        );
        visited.push(what.clone());
        if what == testid {
            return visited;
        }
    }
    panic!(
        "{}: Tab never reached {testid}; it went {visited:?}",
        b.kind().name()
    );
}

/// Waits until what has the focus is `what`.
async fn wait_focus(b: &Browser, what: &str) {
    b.wait_until(
        &format!("the focus on {what}"),
        &format!(
            "const el = document.activeElement;
             return !!el && (el.dataset.testid === {what:?} || el.id === {what:?})"
        ),
        LIMIT,
    )
    .await
    .unwrap();
}

/// Waits until the page's live region (polite or urgent) has said `text`.
async fn wait_said(b: &Browser, text: &str) {
    b.wait_until(
        &format!("the announcement {text:?}"),
        &format!(
            "return [...document.querySelectorAll('[data-testid=announcements] p, [data-testid=alerts] p')]
                 .some(p => p.textContent === {text:?})"
        ),
        LIMIT,
    )
    .await
    .unwrap();
}

/// Firefox, driven by keys alone (Tab, Enter, Escape, the shortcuts and
/// typing), starts a call, mutes, chats, opens and closes every panel,
/// hangs up and rejoins; a Chromium on the other end sees and hears each
/// step through its own screen and live region. axe-core checks Firefox's
/// start page, the call with the chat open, and the left screen on the way.
#[tokio::test(flavor = "multi_thread")]
async fn a_whole_call_by_keyboard_alone() {
    let relay = Relay::start(&[]).await.unwrap();
    let a = Browser::launch(Kind::Firefox).await.unwrap();
    a.goto(&format!("{}{QUERY}", relay.url)).await.unwrap();
    wait(&a, "the start page", &exists("start")).await;

    assert_axe_clean(&a, "start").await;
    // The start page: name, the relay-only choice, start.
    let visited = tab_to(&a, "name", false).await;
    assert_eq!(visited, ["name"], "the name comes first");
    a.type_text("Kay").await.unwrap();
    assert_eq!(tab_to(&a, "start", false).await, ["relay-only", "start"]);
    a.press(Key::Enter, false).await.unwrap();
    // The call screen takes the focus to its heading.
    wait_focus(&a, "call-title").await;

    let link = a
        .js("return document.querySelector('[data-testid=room-link]').value")
        .await
        .unwrap();
    let b = Browser::launch(Kind::Chromium).await.unwrap();
    b.goto(link.as_str().unwrap()).await.unwrap();
    for side in [&a, &b] {
        assert_receiving(side).await;
        wait_connected(side).await;
    }
    wait_said(&b, "Kay joined the call.").await;
    // Their video is named by them; the buttons carry their shortcuts.
    let named = b
        .js("return document.querySelector('[data-testid=remote-video]').getAttribute('aria-label')")
        .await
        .unwrap();
    assert_eq!(named, "Kay's video");
    let keys = a
        .js("return [...document.querySelectorAll('.controls button')].map(b => b.getAttribute('aria-keyshortcuts'))")
        .await
        .unwrap();
    assert_eq!(
        keys,
        serde_json::json!(["M", "V", "S", "C", null, null, "Shift+H"]),
        "aria-keyshortcuts"
    );

    // The controls, in order, each with its focus ring.
    let order = tab_to(&a, "hang-up", false).await;
    let controls: Vec<&str> = order
        .iter()
        .map(String::as_str)
        .filter(|w| {
            [
                "toggle-mic",
                "toggle-camera",
                "toggle-screen",
                "toggle-chat",
                "devices-toggle",
                "stats-toggle",
                "hang-up",
            ]
            .contains(w)
        })
        .collect();
    assert_eq!(
        controls,
        [
            "toggle-mic",
            "toggle-camera",
            "toggle-screen",
            "toggle-chat",
            "devices-toggle",
            "stats-toggle",
            "hang-up"
        ],
        "the controls in their visible order: {order:?}"
    );

    // Mute with the shortcut: both sides hear of it.
    a.press('m', false).await.unwrap();
    wait(
        &a,
        "the Mute button pressed",
        "return document.querySelector('[data-testid=toggle-mic]').getAttribute('aria-pressed') === 'true'",
    )
    .await;
    wait_said(&a, "Your microphone is muted.").await;
    wait(&b, "the muted icon", &exists("remote-muted")).await;
    wait_said(&b, "Kay muted their microphone.").await;

    // The chat, from its button: the focus goes into it, stays in it,
    // Escape closes it and gives the focus back.
    tab_to(&a, "toggle-chat", true).await;
    a.press(Key::Enter, false).await.unwrap();
    wait_focus(&a, "chat-input").await;
    a.type_text("hello by keyboard").await.unwrap();
    a.press(Key::Enter, false).await.unwrap();
    // The other side's chat is closed: the message is counted and read out.
    wait_said(&b, "Kay: hello by keyboard").await;
    assert_axe_clean(&a, "chat open, in a call").await;
    wait(
        &b,
        "the unread count",
        "const u = document.querySelector('[data-testid=unread]'); return !!u && u.textContent === '1'",
    )
    .await;
    for _ in 0..8 {
        a.press(Key::Tab, false).await.unwrap();
        let now = a.focused("chat-panel").await.unwrap();
        assert_eq!(now["inside"], true, "Tab left the open chat: {now}");
    }
    a.press(Key::Escape, false).await.unwrap();
    wait(&a, "the chat closed", &gone("chat-panel")).await;
    wait_focus(&a, "toggle-chat").await;

    // The device picker and the statistics: the same.
    for (button, panel, first) in [
        ("devices-toggle", "device-picker", "pick-camera"),
        ("stats-toggle", "stats", "stats"),
    ] {
        tab_to(&a, button, false).await;
        a.press(Key::Enter, false).await.unwrap();
        wait(&a, panel, &exists(panel)).await;
        let now = a.focused(panel).await.unwrap();
        assert_eq!(now["inside"], true, "{panel} did not take the focus: {now}");
        if first != panel {
            assert_eq!(now["what"], first, "{now}");
        }
        for i in 0..6 {
            a.press(Key::Tab, true).await.unwrap();
            let now = a.focused(panel).await.unwrap();
            assert_eq!(now["inside"], true, "Shift+Tab {i} left {panel}: {now}");
        }
        a.press(Key::Escape, false).await.unwrap();
        wait(&a, &format!("{panel} closed"), &gone(panel)).await;
        wait_focus(&a, button).await;
    }

    // Hang up with the shortcut; the left screen takes the focus; Tab and
    // Enter rejoin.
    a.press('h', true).await.unwrap();
    wait(&a, "the left-the-call screen", &exists("left")).await;
    let heading = a.focused("left").await.unwrap();
    assert_eq!(heading["inside"], true, "{heading}");
    assert_eq!(heading["text"], "You left the call", "{heading}");
    wait_said(&b, "Kay left the call.").await;
    assert_axe_clean(&a, "left the call").await;
    tab_to(&a, "rejoin", false).await;
    a.press(Key::Enter, false).await.unwrap();
    wait_said(&b, "Kay joined the call.").await;
    for side in [&a, &b] {
        assert_receiving(side).await;
    }
    let said: Value = b
        .js("return [...document.querySelectorAll('[data-testid=announcements] p')].map(p => p.textContent)")
        .await
        .unwrap();
    println!("the other side heard: {said}");
    for browser in [a, b] {
        browser.close().await;
    }
}
