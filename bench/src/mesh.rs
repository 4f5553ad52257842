//! Group calls: what each participant's browser spends as the mesh grows.
//! For 2, 3 and 4 people (interleaved, repeated), that many headless
//! Chromium processes join one room with fake 720p cameras; once every
//! one shows every other's video decoding and the senders have settled,
//! each browser's CPU time (all its processes, from /proc) and outbound
//! bytes (`outbound-rtp` `bytesSent`, audio and video, over all its
//! connections) are read over the same window. The upload budget
//! (`mesh::budget`: bitrate and resolution per stream by room size) is
//! what keeps the outbound total flat while the streams multiply.
//!
//! All the browsers share this machine's cores, so with four people the
//! CPU figures are also limited by the machine; compare ratios within
//! the run.

use std::time::{Duration, Instant};

use peercall_e2e::call::start_call;
use peercall_e2e::{Browser, Kind, Relay};
use serde::{Deserialize, Serialize};

/// One participant over the window.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Participant {
    /// CPU time over wall time: 1.0 is one core kept busy.
    pub cpu_cores: f64,
    /// Everything sent to the others, kbit/s.
    pub out_kbps: f64,
    /// Of which video, kbit/s.
    pub out_video_kbps: f64,
    /// The tallest video sent (`frameHeight` of the outbound streams).
    pub sent_height: u64,
}

/// One call of `people`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MeshRun {
    pub people: usize,
    pub window_s: f64,
    pub participants: Vec<Participant>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct MeshResults {
    pub sizes: Vec<usize>,
    pub runs: Vec<MeshRun>,
}

/// What a page sends (bytes over every connection: the mesh's, or the
/// SFU publisher's), the tallest video it sends, how many remote videos
/// decode, its direct connections, and whether its SFU connection is up.
pub const OUTBOUND: &str = r#"
    (async () => {
        const pc = window.peercall;
        let all = 0, video = 0, height = 0, decoding = 0;
        const conns = [...pc.peers.values()];
        if (pc.sfuPublisher) conns.push(pc.sfuPublisher);
        for (const c of conns) {
            (await c.getStats()).forEach(r => {
                if (r.type === 'outbound-rtp') {
                    all += r.bytesSent || 0;
                    if (r.kind === 'video') {
                        video += r.bytesSent || 0;
                        height = Math.max(height, r.frameHeight || 0);
                    }
                }
            });
        }
        for (const v of document.querySelectorAll('video[data-testid=remote-video]')) {
            if (v.videoWidth > 0 && v.readyState >= 2) decoding += 1;
        }
        return {all, video, height, decoding, peers: pc.peers.size,
                sfu: !!pc.sfuSubscriber && pc.sfuSubscriber.connectionState === 'connected'};
    })()
"#;

pub async fn outbound(b: &Browser) -> Result<serde_json::Value, String> {
    b.js(&format!("return {}", OUTBOUND.trim())).await
}

/// Once the encoders settled: each browser's CPU and what `script` (a
/// promise of `{all, video, height}`: bytes sent, tallest frame) counts,
/// over the same `window_s` seconds.
pub async fn window(
    browsers: &[Browser],
    window_s: u64,
    script: &str,
) -> Result<Vec<Participant>, String> {
    let script = format!("return {}", script.trim());
    tokio::time::sleep(Duration::from_secs(SETTLE_S)).await;
    let mut before = Vec::new();
    for b in browsers {
        before.push((b.cpu_seconds(), b.js(&script).await?));
    }
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(window_s)).await;
    let mut participants = Vec::new();
    for (b, (cpu0, o0)) in browsers.iter().zip(&before) {
        let cpu1 = b.cpu_seconds();
        let o1 = b.js(&script).await?;
        let secs = t0.elapsed().as_secs_f64();
        let kbps = |k: &str| {
            (o1[k].as_f64().unwrap_or(0.0) - o0[k].as_f64().unwrap_or(0.0)) * 8.0 / 1000.0 / secs
        };
        participants.push(Participant {
            cpu_cores: (cpu1 - cpu0) / secs,
            out_kbps: kbps("all"),
            out_video_kbps: kbps("video"),
            sent_height: o1["height"].as_u64().unwrap_or(0),
        });
    }
    Ok(participants)
}

/// Seconds to let the encoders and bandwidth estimates settle once
/// everyone decodes everyone.
const SETTLE_S: u64 = 8;

pub async fn measure(sizes: &[usize], reps: usize, window_s: u64) -> Result<MeshResults, String> {
    let mut out = MeshResults {
        sizes: sizes.to_vec(),
        runs: Vec::new(),
    };
    for rep in 1..=reps {
        for &people in sizes {
            let run = one(people, window_s).await?;
            let mean = |f: fn(&Participant) -> f64| {
                run.participants.iter().map(f).sum::<f64>() / run.participants.len() as f64
            };
            eprintln!(
                "    run {rep}/{reps}, {people} people: per participant cpu {:.2} cores, out {:.0} kbit/s (video {:.0}), sent {}p",
                mean(|p| p.cpu_cores),
                mean(|p| p.out_kbps),
                mean(|p| p.out_video_kbps),
                run.participants.iter().map(|p| p.sent_height).max().unwrap_or(0)
            );
            out.runs.push(run);
        }
    }
    Ok(out)
}

async fn one(people: usize, window_s: u64) -> Result<MeshRun, String> {
    let relay = Relay::start(&[]).await?;
    let first = Browser::launch(Kind::Chromium).await?;
    let link = start_call(&first, &format!("{}?ice=none", relay.url), "P1").await;
    let mut browsers = vec![first];
    for _ in 1..people {
        let b = Browser::launch(Kind::Chromium).await?;
        b.goto(&link).await?;
        browsers.push(b);
    }
    // Everyone decodes everyone.
    let start = Instant::now();
    'wait: loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut all = true;
        for b in &browsers {
            let o = outbound(b).await?;
            all &= o["decoding"].as_u64() == Some(people as u64 - 1)
                && o["peers"].as_u64() == Some(people as u64 - 1);
        }
        if all {
            break 'wait;
        }
        if start.elapsed() > Duration::from_secs(90) {
            return Err(format!("{people} people: not everyone decodes everyone"));
        }
    }
    let participants = window(&browsers, window_s, OUTBOUND).await?;
    for b in browsers {
        b.close().await;
    }
    Ok(MeshRun {
        people,
        window_s: window_s as f64,
        participants,
    })
}
