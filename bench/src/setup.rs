//! Call setup: the time from the second person's navigation to the room
//! link until their page shows the first remote video frame, for peercall
//! and for the plain-JavaScript reference page (`bench/reference`), through
//! the same relay binary serving both, in two separate headless Chromium
//! processes per run with fake camera and microphone.
//!
//! Each run launches two fresh browsers (empty caches: a **first visit**,
//! what opening a link someone sent looks like), then the second person
//! leaves and opens the link again (a **repeat visit**: the app is in the
//! browser's cache). Runs alternate which page goes first.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use peercall_e2e::call::now_ms;
use peercall_e2e::{Browser, Kind, Relay};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::stats::Summary;

/// The moments both pages mark, each reported as milliseconds since the
/// navigation (the harness's clock just before it asked the browser to open
/// the link). Not a sequence: peercall joins and negotiates while the
/// camera starts, the reference page one step after the other.
pub const PHASES: &[(&str, &str)] = &[
    ("start", "page loaded, script/wasm running"),
    ("media", "camera and microphone on (getUserMedia)"),
    ("joined", "joined the room (relay's welcome)"),
    ("negotiated", "offer/answer applied"),
    ("connected", "connected (ICE + DTLS)"),
    ("first-frame", "first remote frame shown"),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Page {
    Peercall,
    /// peercall without index.html's early start (its inline script that
    /// starts config.json, the camera and the WebSocket before the wasm
    /// runs): the app then starts them itself, as it did before. Measured
    /// beside the others so the early start's gain is a number of this run.
    Late,
    Reference,
}

impl Page {
    pub fn name(self) -> &'static str {
        match self {
            Page::Peercall => "peercall",
            Page::Late => "peercall, no early start",
            Page::Reference => "reference",
        }
    }

    fn url(self, base: &str, room: &str) -> String {
        match self {
            // No STUN: loopback needs none and this machine has no internet
            // (the reference page uses none either).
            Page::Peercall => format!("{base}?ice=none#{room}"),
            Page::Late => format!("{base}late.html?ice=none#{room}"),
            Page::Reference => format!("{base}reference.html#{room}"),
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Page::Peercall | Page::Late => "peercall:",
            Page::Reference => "ref:",
        }
    }
}

/// One measured visit.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Visit {
    pub page: Page,
    pub repeat: bool,
    pub total_ms: f64,
    /// Moment -> milliseconds since the navigation.
    pub phases: BTreeMap<String, f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PageSummary {
    pub page: Page,
    pub repeat: bool,
    pub total_ms: Summary,
    /// Median of each phase.
    pub phases_median_ms: BTreeMap<String, f64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SetupResults {
    pub runs: usize,
    pub visits: Vec<Visit>,
    pub summaries: Vec<PageSummary>,
    /// peercall median / reference median, first visit and repeat visit.
    pub ratio_first_visit: f64,
    pub ratio_repeat_visit: f64,
    /// peercall median / its median without the early start (absent in
    /// runs before it was measured).
    #[serde(default)]
    pub early_first_visit: Option<f64>,
    #[serde(default)]
    pub early_repeat_visit: Option<f64>,
}

const LIMIT: Duration = Duration::from_secs(30);

/// Every page measured, in the order of the first run (later runs rotate it).
const PAGES: [Page; 3] = [Page::Peercall, Page::Late, Page::Reference];

pub async fn measure(repo: &Path, runs: usize) -> Result<SetupResults, String> {
    // The relay serves the release build plus the reference page, so both
    // come from the same origin and server.
    let dist = std::env::var_os("PEERCALL_DIST").ok_or("PEERCALL_DIST is not set")?;
    let served = tempfile::tempdir().map_err(|e| e.to_string())?;
    for entry in std::fs::read_dir(&dist)
        .map_err(|e| e.to_string())?
        .flatten()
    {
        if entry.path().is_file() {
            std::fs::copy(entry.path(), served.path().join(entry.file_name()))
                .map_err(|e| e.to_string())?;
        }
    }
    std::fs::copy(
        repo.join("bench/reference/reference.html"),
        served.path().join("reference.html"),
    )
    .map_err(|e| format!("reference.html: {e}"))?;
    let index = std::fs::read_to_string(served.path().join("index.html"))
        .map_err(|e| format!("index.html: {e}"))?;
    std::fs::write(
        served.path().join("late.html"),
        without_early_start(&index)?,
    )
    .map_err(|e| format!("late.html: {e}"))?;
    // The parts after this one serve the real dist/ again: the copy is
    // gone when this returns.
    struct Restore(std::ffi::OsString);
    impl Drop for Restore {
        fn drop(&mut self) {
            std::env::set_var("PEERCALL_DIST", &self.0);
        }
    }
    let _restore = Restore(dist.clone());
    std::env::set_var("PEERCALL_DIST", served.path());
    std::env::set_var("PEERCALL_LOG", "warn");
    let relay = Relay::start(&[]).await?;

    let mut visits = Vec::new();
    for run in 0..runs {
        let mut order = PAGES;
        order.rotate_left(run % 3);
        for page in order {
            let room = format!("bench{}x{run}{:?}", std::process::id(), page);
            let (first, repeat) = one_run(&relay.url, page, &room).await?;
            eprintln!(
                "    run {}/{runs} {:<9}: first visit {:>6.0} ms, repeat visit {:>6.0} ms",
                run + 1,
                page.name(),
                first.total_ms,
                repeat.total_ms
            );
            visits.push(first);
            visits.push(repeat);
        }
    }

    let mut summaries = Vec::new();
    for page in PAGES {
        for repeat in [false, true] {
            let these: Vec<&Visit> = visits
                .iter()
                .filter(|v| v.page == page && v.repeat == repeat)
                .collect();
            let totals: Vec<f64> = these.iter().map(|v| v.total_ms).collect();
            let mut phases_median_ms = BTreeMap::new();
            for (phase, _) in PHASES {
                let values: Vec<f64> = these
                    .iter()
                    .filter_map(|v| v.phases.get(*phase).copied())
                    .collect();
                if let Some(s) = Summary::of(&values) {
                    phases_median_ms.insert((*phase).to_owned(), s.median);
                }
            }
            summaries.push(PageSummary {
                page,
                repeat,
                total_ms: Summary::of(&totals).ok_or("no runs")?,
                phases_median_ms,
            });
        }
    }
    let median = |page: Page, repeat: bool| {
        summaries
            .iter()
            .find(|s| s.page == page && s.repeat == repeat)
            .map_or(f64::NAN, |s| s.total_ms.median)
    };
    Ok(SetupResults {
        runs,
        ratio_first_visit: median(Page::Peercall, false) / median(Page::Reference, false),
        ratio_repeat_visit: median(Page::Peercall, true) / median(Page::Reference, true),
        early_first_visit: Some(median(Page::Peercall, false) / median(Page::Late, false)),
        early_repeat_visit: Some(median(Page::Peercall, true) / median(Page::Late, true)),
        visits,
        summaries,
    })
}

/// The page without its early-start script (the inline `<script>` that
/// sets `peercallEarly`).
pub fn without_early_start(html: &str) -> Result<String, String> {
    let mut at = 0;
    while let Some(start) = html[at..].find("<script>").map(|i| at + i) {
        let end = html[start..]
            .find("</script>")
            .map(|i| start + i + "</script>".len())
            .ok_or("index.html: an unclosed <script>")?;
        if html[start..end].contains("peercallEarly") {
            return Ok(format!("{}{}", &html[..start], &html[end..]));
        }
        at = end;
    }
    Err("index.html has no early-start script (peercallEarly)".into())
}

/// Two fresh browsers: A opens the room and waits; B opens it (first
/// visit), then leaves and opens it again (repeat visit).
async fn one_run(base: &str, page: Page, room: &str) -> Result<(Visit, Visit), String> {
    let url = page.url(base, room);
    let a = Browser::launch(Kind::Chromium).await?;
    let b = Browser::launch(Kind::Chromium).await?;
    a.goto(&url).await?;
    a.wait_until(
        "the first person to join the room",
        &format!(
            "return performance.getEntriesByName('{}joined').length > 0",
            page.prefix()
        ),
        LIMIT,
    )
    .await?;
    let first = visit(&b, page, &url, false).await?;
    b.goto("about:blank").await?;
    // Let A see B leave before B comes back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let repeat = visit(&b, page, &url, true).await?;
    a.close().await;
    b.close().await;
    Ok((first, repeat))
}

async fn visit(b: &Browser, page: Page, url: &str, repeat: bool) -> Result<Visit, String> {
    let opened_at = now_ms();
    b.goto(url).await?;
    b.wait_until(
        "the first remote frame",
        "const v = document.querySelector('video[data-testid=remote-video]'); return !!v && !!v.dataset.firstFrame",
        LIMIT,
    )
    .await?;
    let first_frame = b
        .js("return Number(document.querySelector('video[data-testid=remote-video]').dataset.firstFrame)")
        .await?
        .as_f64()
        .ok_or("no first-frame time")?;
    // peercall can show the other person before its own camera is on:
    // wait for the moments still to come (the total is already measured).
    let names: Vec<String> = PHASES
        .iter()
        .map(|(p, _)| format!("'{}{p}'", page.prefix()))
        .collect();
    b.wait_until(
        "every setup mark",
        &format!(
            "return [{}].every(n => performance.getEntriesByName(n).length > 0)",
            names.join(",")
        ),
        LIMIT,
    )
    .await?;
    // Each mark's first occurrence, as epoch milliseconds.
    let marks = b
        .js(&format!(
            "const out = {{}};
             for (const m of performance.getEntriesByType('mark')) {{
               if (!m.name.startsWith('{p}')) continue;
               const k = m.name.slice({n});
               if (!(k in out)) out[k] = performance.timeOrigin + m.startTime;
             }}
             return out;",
            p = page.prefix(),
            n = page.prefix().len()
        ))
        .await?;
    let mut phases = BTreeMap::new();
    for (phase, _) in PHASES {
        let Some(at) = marks.get(*phase).and_then(Value::as_f64) else {
            return Err(format!(
                "{}: no '{phase}' mark; marks: {marks}",
                page.name()
            ));
        };
        phases.insert((*phase).to_owned(), at - opened_at);
    }
    Ok(Visit {
        page,
        repeat,
        total_ms: first_frame - opened_at,
        phases,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_late_page_is_index_html_without_its_early_start() {
        let html = include_str!("../../index.html");
        let late = without_early_start(html).unwrap();
        assert!(html.contains("peercallEarly") && !late.contains("peercallEarly"));
        assert!(late.contains(r#"data-trunk rel="rust""#));
        assert!(late.contains(r#"rel="preload" href="config.json""#));
        assert!(without_early_start(&late).is_err());
    }
}
