//! Calls through a real TURN server (coturn on loopback, shared-secret
//! auth), with short-lived credentials the relay hands out at
//! `/ice-servers`, in relay-only mode so media can only go through TURN.

use std::time::Duration;

use peercall_e2e::call::{
    assert_receiving, now_ms, open_landing, setup_ms, start_from_landing, wait_connected, LIMIT,
    PEER_STATES,
};
use peercall_e2e::{Browser, Kind, Relay, Turn};
use serde_json::{json, Value};

/// The selected candidate pair of every peer connection on the page: its
/// local and remote candidate types and the local relay protocol (Chromium
/// names the pair from the transport; Firefox marks it `selected`).
const SELECTED_PAIRS: &str = r#"
    return (async () => {
        const out = [];
        for (const pc of window.peercall.peers.values()) {
            const stats = await pc.getStats();
            const byId = new Map();
            stats.forEach(r => byId.set(r.id, r));
            let pair = null;
            stats.forEach(r => {
                if (r.type === 'transport' && r.selectedCandidatePairId) pair = byId.get(r.selectedCandidatePairId);
            });
            if (!pair) stats.forEach(r => { if (r.type === 'candidate-pair' && r.selected) pair = r; });
            if (!pair) { out.push(null); continue; }
            const local = byId.get(pair.localCandidateId) || {};
            const remote = byId.get(pair.remoteCandidateId) || {};
            out.push({local: local.candidateType, remote: remote.candidateType,
                      relayProtocol: local.relayProtocol || null, state: pair.state});
        }
        return out;
    })()
"#;

/// A secret for one test run.
fn secret(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{tag}-{}-{nanos}", std::process::id())
}

/// The types of the local candidates every connection of the page
/// gathered (from `getStats()`, which lists them all, unlike the SDP
/// snapshot in `localDescription`).
async fn local_candidate_types(b: &Browser) -> Value {
    b.js("return (async () => {
              const types = new Set();
              for (const pc of window.peercall.peers.values())
                  (await pc.getStats()).forEach(r => {
                      if (r.type === 'local-candidate') types.add(r.candidateType);
                  });
              return [...types].sort();
          })()")
        .await
        .unwrap()
}

/// The notice the page shows.
async fn notice(b: &Browser) -> String {
    let text = b
        .js("const n = document.querySelector('[data-testid=notice]'); return n ? n.textContent : ''")
        .await
        .unwrap();
    text.as_str().unwrap_or_default().to_owned()
}

/// Opens the landing page with `query`, ticks "relay only", starts a call.
async fn start_relay_only_call(b: &Browser, relay: &Relay, query: &str) -> String {
    open_landing(b, &format!("{}{query}", relay.url)).await;
    // Clicked as a person would (a change event), after the page settled.
    b.js("document.querySelector('[data-testid=relay-only]').click()")
        .await
        .unwrap();
    b.wait_until(
        "the relay-only box to stay ticked",
        "return document.querySelector('[data-testid=relay-only]').checked",
        LIMIT,
    )
    .await
    .unwrap();
    start_from_landing(b, "Ada").await
}

/// `link` with `extra` added to its query.
fn with_query(link: &str, extra: &str) -> String {
    let (page, room) = link.split_once('#').unwrap();
    let sep = if page.contains('?') { '&' } else { '?' };
    format!("{page}{sep}{extra}#{room}")
}

/// Two people in relay-only mode: Chromium ticks "relay only" on the
/// landing page and starts a call; `second` opens the link with
/// `?ice_policy=relay`. `ice=none`: no server but the relay's. Gives both
/// and when the second navigated (ms).
async fn relay_only_pair(relay: &Relay, second: Kind) -> (Browser, Browser, f64) {
    let a = Browser::launch(Kind::Chromium).await.unwrap();
    let link = start_relay_only_call(&a, relay, "?ice=none").await;
    let b = Browser::launch(second).await.unwrap();
    let opened_at = now_ms();
    b.goto(&with_query(&link, "ice_policy=relay"))
        .await
        .unwrap();
    (a, b, opened_at)
}

async fn relay_only_call(second: Kind, turn_urls: impl Fn(&Turn) -> String, protocol: &str) {
    let secret = secret("good");
    let turn = Turn::start(&secret).await.unwrap();
    let urls = turn_urls(&turn);
    let relay = Relay::start(&[
        "--turn-url",
        &urls,
        "--turn-secret",
        &secret,
        "--turn-ttl",
        "600",
    ])
    .await
    .unwrap();

    let (a, b, opened_at) = relay_only_pair(&relay, second).await;

    for side in [&a, &b] {
        assert_receiving(side).await;
        wait_connected(side).await;
    }
    println!(
        "setup_ms relay-only chromium -> {} ({protocol}): {:.0}",
        second.name(),
        setup_ms(&b, opened_at).await
    );
    for side in [&a, &b] {
        let pairs = side.js(SELECTED_PAIRS).await.unwrap();
        let pair = &pairs[0];
        assert_eq!(
            (&pair["local"], &pair["remote"]),
            (&json!("relay"), &json!("relay")),
            "{}: the selected pair goes through TURN: {pairs}\ncoturn: {}",
            side.kind().name(),
            turn.log()
        );
        // Only relay candidates were offered at all.
        assert_eq!(local_candidate_types(side).await, json!(["relay"]));
    }
    // The stats panel says so too, on both sides.
    for side in [&a, &b] {
        side.js("document.querySelector('[data-testid=stats-toggle]').click()")
            .await
            .unwrap();
        side.wait_until(
            "the stats panel to show the call going through TURN",
            "const p = document.querySelector('[data-testid=stats-path]');
             const r = document.querySelector('[data-testid=stats-in]');
             return !!p && p.dataset.viaTurn === 'true' && p.textContent.startsWith('relay ⇄ relay')
                 && p.textContent.includes('through TURN') && !!r && r.textContent.endsWith(' kbit/s')",
            LIMIT,
        )
        .await
        .unwrap();
    }
    // Chromium says which transport reached the TURN server.
    let pair = &a.js(SELECTED_PAIRS).await.unwrap()[0];
    assert_eq!(pair["relayProtocol"], protocol, "{pair}");
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn relay_only_call_through_coturn_with_credentials_from_the_relay() {
    relay_only_call(Kind::Firefox, Turn::urls, "udp").await;
}

#[tokio::test]
async fn relay_only_call_through_coturn_over_tcp() {
    relay_only_call(
        Kind::Chromium,
        |t| format!("turn:127.0.0.1:{}?transport=tcp", t.port),
        "tcp",
    )
    .await;
}

#[tokio::test]
async fn a_wrong_turn_secret_fails_quickly_with_an_explanation() {
    // coturn and the relay disagree on the secret: every credential the
    // relay hands out is refused.
    let turn = Turn::start(&secret("coturn")).await.unwrap();
    let relay = Relay::start(&[
        "--turn-url",
        &turn.urls(),
        "--turn-secret",
        "not-the-secret",
    ])
    .await
    .unwrap();
    let (a, b, _) = relay_only_pair(&relay, Kind::Firefox).await;

    let failed = "const n = document.querySelector('[data-testid=notice]');
                  const s = document.querySelector('[data-testid=remote-status]');
                  return !!n && n.textContent.startsWith('Could not connect')
                      && !!s && s.textContent === 'failed'";
    let started = std::time::Instant::now();
    for side in [&a, &b] {
        if let Err(e) = side.wait_until("the failure and why", failed, LIMIT).await {
            let states = (a.js(PEER_STATES).await, b.js(PEER_STATES).await);
            panic!("{e}\nchromium: {:?}\nfirefox: {:?}", states.0, states.1);
        }
    }
    // Both browsers report the TURN server's 401 (icecandidateerror).
    let (na, nb) = (notice(&a).await, notice(&b).await);
    println!(
        "chromium: {na}\nfirefox: {nb}\nshown after {:?}",
        started.elapsed()
    );
    assert!(na.contains("rejected the credentials"), "{na}");
    assert!(nb.contains("rejected the credentials"), "{nb}");
    assert!(started.elapsed() < Duration::from_secs(25));
    // Nothing was gathered that could leak an address.
    for side in [&a, &b] {
        assert_eq!(local_candidate_types(side).await, json!([]));
    }
    a.close().await;
    b.close().await;
}
