//! File transfer: the time to send a file over the data channel in a
//! running call, and the memory it costs each side, for a small and a big
//! file side by side. If a side kept the whole file in memory, its extra
//! memory would grow with the file; it should not.
//!
//! Two headless Chromium processes are in a call (video both ways, as in
//! real use); the sender picks a file in the chat panel, and the run ends
//! when the receiver shows it received and checked (size and SHA-256).
//! Memory is the resident size of every process of each browser, sampled
//! every 250 ms; "extra" is the peak during the transfer minus the value
//! just before it. The files are sparse (zeros on disk): the app reads,
//! hashes and sends every byte all the same.

use std::time::{Duration, Instant};

use peercall_e2e::call::call_of_two;
use peercall_e2e::{Browser, Relay};
use serde::{Deserialize, Serialize};

/// One transfer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TransferRun {
    pub bytes: u64,
    pub seconds: f64,
    pub mb_per_s: f64,
    pub sender_rss_before: u64,
    pub sender_rss_peak: u64,
    pub receiver_rss_before: u64,
    pub receiver_rss_peak: u64,
}

impl TransferRun {
    pub fn sender_extra(&self) -> u64 {
        self.sender_rss_peak.saturating_sub(self.sender_rss_before)
    }
    pub fn receiver_extra(&self) -> u64 {
        self.receiver_rss_peak
            .saturating_sub(self.receiver_rss_before)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct TransferResults {
    pub sizes: Vec<u64>,
    pub runs: Vec<TransferRun>,
}

const STATE: &str = "const t = [...document.querySelectorAll('[data-testid=transfer]')].pop();
    return t ? [t.dataset.state, Number(t.dataset.done)] : null";

pub async fn measure(sizes: &[u64], reps: usize) -> Result<TransferResults, String> {
    let relay = Relay::start(&[]).await?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut out = TransferResults {
        sizes: sizes.to_vec(),
        runs: Vec::new(),
    };
    for rep in 1..=reps {
        let (a, b) = call_of_two(&relay.url).await?;
        a.click("[data-testid=toggle-chat]").await?;
        b.click("[data-testid=toggle-chat]").await?;
        for (i, &bytes) in sizes.iter().enumerate() {
            let path = dir.path().join(format!("file-{rep}-{i}.bin"));
            std::fs::File::create(&path)
                .and_then(|f| f.set_len(bytes))
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let run = one(&a, &b, &path, bytes, i + 1).await?;
            eprintln!(
                "    run {rep}/{reps}, {} MiB: {:.1} s, {:.1} MB/s; extra memory: sender {:.0} MB, receiver {:.0} MB",
                bytes >> 20,
                run.seconds,
                run.mb_per_s,
                run.sender_extra() as f64 / 1e6,
                run.receiver_extra() as f64 / 1e6
            );
            out.runs.push(run);
            let _ = std::fs::remove_file(&path);
        }
        a.close().await;
        b.close().await;
    }
    Ok(out)
}

/// Sends `path` from `a` to `b`; `nth` is how many transfers `b` has seen.
async fn one(
    a: &Browser,
    b: &Browser,
    path: &std::path::Path,
    bytes: u64,
    nth: usize,
) -> Result<TransferRun, String> {
    // Let the memory settle after the previous transfer.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (sender_before, receiver_before) = (a.rss_bytes(), b.rss_bytes());
    let (mut sender_peak, mut receiver_peak) = (sender_before, receiver_before);
    let started = Instant::now();
    a.upload("[data-testid=file-input]", path).await?;
    let limit = Duration::from_secs(60 + bytes / 1_000_000);
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        sender_peak = sender_peak.max(a.rss_bytes());
        receiver_peak = receiver_peak.max(b.rss_bytes());
        let count = b
            .js("return document.querySelectorAll('[data-testid=transfer]').length")
            .await?;
        if count.as_u64() != Some(nth as u64) {
            continue;
        }
        let state = b.js(STATE).await?;
        match state[0].as_str() {
            Some("done") => break,
            Some("failed" | "cancelled") => return Err(format!("transfer ended: {state}")),
            _ => {}
        }
        if started.elapsed() > limit {
            return Err(format!("transfer too slow: {state} after {limit:?}"));
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(TransferRun {
        bytes,
        seconds,
        mb_per_s: bytes as f64 / 1e6 / seconds,
        sender_rss_before: sender_before,
        sender_rss_peak: sender_peak,
        receiver_rss_before: receiver_before,
        receiver_rss_peak: receiver_peak,
    })
}
