//! Large calls: what each participant spends peer to peer against through
//! the SFU (a real Janus VideoRoom), and the gap in the picture when a
//! room switches.
//!
//! For each size and route (interleaved, repeated), that many headless
//! Chromium processes join one room with fake 720p cameras: peer to peer
//! through a relay without `--janus`, through the SFU with `--janus` and
//! `--mesh-max 1` (every room of two or more is on it). Once every one
//! decodes every other and the senders have settled, each browser's CPU
//! time (all its processes) and outbound bytes (`outbound-rtp`, every
//! connection: the mesh's, or the SFU publisher's three simulcast layers)
//! are read over the same window.
//!
//! The switch: two people peer to peer with `--mesh-max 2`, a third joins,
//! and the first two's longest gap in decoded frames (both paths summed,
//! sampled every 100 ms: `peercall_e2e::call::FRAME_SAMPLER`) is read.

use std::time::{Duration, Instant};

use peercall_e2e::call::{start_call, FRAME_SAMPLER};
use peercall_e2e::phone::Janus;
use peercall_e2e::{Browser, Kind, Relay};
use serde::{Deserialize, Serialize};

use crate::mesh::{outbound, Participant, OUTBOUND};

/// One call.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LargeRun {
    pub people: usize,
    /// Through the SFU (else peer to peer).
    pub sfu: bool,
    pub window_s: f64,
    pub participants: Vec<Participant>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct LargeResults {
    pub mesh_sizes: Vec<usize>,
    pub sfu_sizes: Vec<usize>,
    pub runs: Vec<LargeRun>,
    /// Per switch run, the longest frame gap (ms) the first two saw.
    pub switch_gaps_ms: Vec<f64>,
}

pub async fn measure(
    mesh_sizes: &[usize],
    sfu_sizes: &[usize],
    reps: usize,
    window_s: u64,
) -> Result<LargeResults, String> {
    let janus = Janus::start().await?;
    let mut out = LargeResults {
        mesh_sizes: mesh_sizes.to_vec(),
        sfu_sizes: sfu_sizes.to_vec(),
        ..LargeResults::default()
    };
    for rep in 1..=reps {
        let calls = mesh_sizes
            .iter()
            .map(|&n| (n, false))
            .chain(sfu_sizes.iter().map(|&n| (n, true)));
        for (people, sfu) in calls {
            let run = one(people, sfu.then_some(&janus), window_s).await?;
            let mean = |f: fn(&Participant) -> f64| {
                run.participants.iter().map(f).sum::<f64>() / run.participants.len() as f64
            };
            eprintln!(
                "    run {rep}/{reps}, {people} people {}: per participant cpu {:.2} cores, out {:.0} kbit/s (video {:.0})",
                if sfu { "through the SFU" } else { "peer to peer" },
                mean(|p| p.cpu_cores),
                mean(|p| p.out_kbps),
                mean(|p| p.out_video_kbps),
            );
            out.runs.push(run);
        }
        let gap = switch(&janus).await?;
        eprintln!("    run {rep}/{reps}, switch to the SFU: longest frame gap {gap:.0} ms");
        out.switch_gaps_ms.push(gap);
    }
    Ok(out)
}

async fn relay_for(janus: Option<&Janus>, mesh_max: &str) -> Result<Relay, String> {
    match janus {
        None => Relay::start(&[]).await,
        Some(j) => {
            Relay::start(&[
                "--janus",
                &j.url(),
                "--janus-secret",
                &j.secret,
                "--mesh-max",
                mesh_max,
            ])
            .await
        }
    }
}

async fn one(people: usize, janus: Option<&Janus>, window_s: u64) -> Result<LargeRun, String> {
    let relay = relay_for(janus, "1").await?;
    let first = Browser::launch(Kind::Chromium).await?;
    let link = start_call(&first, &format!("{}?ice=none", relay.url), "P1").await;
    let mut browsers = vec![first];
    for _ in 1..people {
        let b = Browser::launch(Kind::Chromium).await?;
        b.goto(&link).await?;
        browsers.push(b);
    }
    let sfu = janus.is_some();
    let start = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut all = true;
        for b in &browsers {
            let o = outbound(b).await?;
            let linked = if sfu {
                o["sfu"] == true && o["peers"] == 0
            } else {
                o["peers"].as_u64() == Some(people as u64 - 1)
            };
            all &= linked && o["decoding"].as_u64() == Some(people as u64 - 1);
        }
        if all {
            break;
        }
        if start.elapsed() > Duration::from_secs(90) {
            return Err(format!(
                "{people} people (sfu: {sfu}): not everyone decodes everyone"
            ));
        }
    }
    let participants = crate::mesh::window(&browsers, window_s, OUTBOUND).await?;
    for b in browsers {
        b.close().await;
    }
    Ok(LargeRun {
        people,
        sfu,
        window_s: window_s as f64,
        participants,
    })
}

/// Two people peer to peer, a third joins (`--mesh-max 2`): the longest
/// frame gap the first two see while the room moves to the SFU.
async fn switch(janus: &Janus) -> Result<f64, String> {
    let relay = relay_for(Some(janus), "2").await?;
    let first = Browser::launch(Kind::Chromium).await?;
    let link = start_call(&first, &format!("{}?ice=none", relay.url), "P1").await;
    let second = Browser::launch(Kind::Chromium).await?;
    second.goto(&link).await?;
    for b in [&first, &second] {
        b.wait_until(
            "a direct call",
            "return window.peercall && window.peercall.peers.size === 1
                && [...document.querySelectorAll('video[data-testid=remote-video]')]
                   .some(v => v.videoWidth > 0)",
            Duration::from_secs(60),
        )
        .await?;
        b.js(FRAME_SAMPLER).await?;
    }
    let third = Browser::launch(Kind::Chromium).await?;
    third.goto(&link).await?;
    for b in [&first, &second] {
        b.wait_until(
            "everyone through the SFU alone",
            "const pc = window.peercall;
             return pc.peers.size === 0 && !!pc.sfuSubscriber
                 && [...document.querySelectorAll('video[data-testid=remote-video]')]
                    .filter(v => v.videoWidth > 0).length === 2",
            Duration::from_secs(60),
        )
        .await?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut gap: f64 = 0.0;
    for b in [&first, &second] {
        let g = b
            .js("return Math.max(0, ...Object.values(window.__frames.gap))")
            .await?;
        gap = gap.max(g.as_f64().unwrap_or(0.0));
    }
    for b in [first, second, third] {
        b.close().await;
    }
    Ok(gap)
}
