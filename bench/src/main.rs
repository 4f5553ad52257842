//! `peercall-bench`: call setup against a plain-JavaScript page, the release
//! build's shipped bytes, file transfer speed and memory, each
//! participant's CPU and upload in group calls of 2, 3 and 4, and the
//! relay's capacity against a Node relay, and relays sharing rooms through
//! Redis against one relay alone, measured side by side in one run. Writes BENCHMARKS.md and
//! bench/results.json. Run it through `scripts/bench.sh`, which installs
//! what it needs and builds what it measures.
//!
//! ```text
//! peercall-bench [--quick] [--only setup|size|transfer|mesh|large|relay|soak|cluster]...
//! ```
//! `--quick` runs every part with fewer repetitions (a smoke run, not
//! numbers to publish). Environment (set by scripts/bench.sh):
//! `PEERCALL_RELAY_BIN`, `PEERCALL_DIST`, `CHROME_BIN`, `CHROMEDRIVER_BIN`,
//! `PEERCALL_WASM_NAMED` (the app's wasm with function names, for twiggy),
//! `TWIGGY_BIN`, `PEERCALL_REPO`, `PEERCALL_REDIS_SERVER_BIN`.

mod churn;
mod cluster;
mod large;
mod mesh;
mod relay;
mod report;
mod setup;
mod size;
mod soak;
mod stats;
mod transfer;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use relay::{Programs, Which};

/// Everything one run measured; written to bench/results.json.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Results {
    pub machine: Machine,
    pub command: String,
    pub quick: bool,
    pub setup: Option<setup::SetupResults>,
    pub size: Option<size::SizeResults>,
    pub transfer: Option<transfer::TransferResults>,
    pub mesh: Option<mesh::MeshResults>,
    #[serde(default)]
    pub large: Option<large::LargeResults>,
    pub relay: Option<RelayResults>,
    #[serde(default)]
    pub soak: Option<soak::SoakResults>,
    #[serde(default)]
    pub cluster: Option<cluster::ClusterResults>,
    /// Parts not measured in this run (`--only`), kept from bench/results.json
    /// as an earlier run wrote them: part name -> that run's machine facts.
    #[serde(default)]
    pub earlier: std::collections::BTreeMap<String, Machine>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    pub date: String,
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub commit: String,
    pub chromium: String,
    pub node: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RelayResults {
    pub idle: Vec<relay::IdleRun>,
    pub fanout: Vec<relay::FanoutRun>,
}

fn env_path(var: &str) -> Result<PathBuf, String> {
    std::env::var_os(var)
        .map(PathBuf::from)
        .ok_or_else(|| format!("{var} is not set: run the benchmarks through scripts/bench.sh"))
}

fn shell(cmd: &str) -> String {
    std::process::Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn machine(repo: &std::path::Path) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    Machine {
        date: shell("date -u +%Y-%m-%dT%H:%MZ"),
        cpu: cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_default(),
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory_gib: (mem_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        kernel: shell("uname -sr"),
        commit: shell(&format!(
            "git -C '{}' rev-parse --short HEAD 2>/dev/null; git -C '{}' status --porcelain 2>/dev/null | grep -q . && echo '(with uncommitted changes)'",
            repo.display(),
            repo.display()
        ))
        .replace('\n', " "),
        chromium: shell("\"${CHROME_BIN:-chromium}\" --version 2>/dev/null"),
        node: shell("node --version 2>/dev/null"),
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let mut quick = false;
    let mut only: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--render" => {
                // BENCHMARKS.md again from bench/results.json, measuring
                // nothing: for a change to how the report is written.
                let repo = env_path("PEERCALL_REPO")?;
                let json_path = repo.join("bench/results.json");
                let text = std::fs::read_to_string(&json_path)
                    .map_err(|e| format!("{}: {e}", json_path.display()))?;
                let results: Results = serde_json::from_str(&text)
                    .map_err(|e| format!("{}: {e}", json_path.display()))?;
                let md_path = write_markdown(&repo, &results)?;
                eprintln!("wrote {} from {}", md_path.display(), json_path.display());
                return Ok(());
            }
            "--check-size" => {
                // The test command's byte check (bench.sh --check-size):
                // measures, writes nothing, fails over the ceiling.
                let sizes = size::measure(&env_path("PEERCALL_DIST")?).await?;
                return size::check(&sizes);
            }
            "--only" => only.push(args.next().ok_or(
                "--only needs setup, size, transfer, mesh, large, relay, soak or cluster",
            )?),
            "-h" | "--help" => {
                println!(
                    "usage: peercall-bench [--quick] [--only setup|size|transfer|mesh|large|relay|soak|cluster]...\n       peercall-bench --render   (BENCHMARKS.md again from bench/results.json)\n       peercall-bench --check-size   (the first-visit bytes against the test's ceiling)"
                );
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    for o in &only {
        if !PARTS.contains(&o.as_str()) {
            return Err(format!(
                "--only {o}: not one of setup, size, transfer, mesh, large, relay, soak, cluster"
            ));
        }
    }
    let wants = |part: &str| only.is_empty() || only.iter().any(|o| o == part);
    let repo = env_path("PEERCALL_REPO")?;

    let mut results = Results {
        machine: machine(&repo),
        command: std::env::var("PEERCALL_BENCH_COMMAND")
            .unwrap_or_else(|_| "./scripts/bench.sh".into()),
        quick,
        ..Default::default()
    };

    if wants("size") {
        eprintln!("==> shipped bytes");
        results.size = Some(size::measure(&env_path("PEERCALL_DIST")?).await?);
    }
    // Before setup, which points PEERCALL_DIST at a copy it removes.
    if wants("transfer") {
        eprintln!("==> file transfer (two headless Chromium processes in a call)");
        let (sizes, reps): (&[u64], usize) = if quick {
            (&[16 << 20, 128 << 20], 1)
        } else {
            (&[100 << 20, 1 << 30], 2)
        };
        results.transfer = Some(transfer::measure(sizes, reps).await?);
    }
    if wants("mesh") {
        eprintln!("==> group calls (2, 3 and 4 headless Chromium processes in one room)");
        let (reps, window) = if quick { (1, 5) } else { (2, 15) };
        results.mesh = Some(mesh::measure(&[2, 3, 4], reps, window).await?);
    }
    if wants("large") {
        eprintln!(
            "==> large calls: peer to peer against the SFU (headless Chromium processes, a real Janus)"
        );
        let (reps, window) = if quick { (1, 5) } else { (2, 15) };
        let (mesh_sizes, sfu_sizes): (&[usize], &[usize]) = if quick {
            (&[2, 4], &[2, 3, 4])
        } else {
            (&[2, 4, 6], &[2, 3, 4, 6])
        };
        results.large = Some(large::measure(mesh_sizes, sfu_sizes, reps, window).await?);
    }
    if wants("setup") {
        eprintln!("==> call setup (two headless Chromium processes per run)");
        let runs = if quick { 2 } else { 10 };
        results.setup = Some(setup::measure(&repo, runs).await?);
    }
    if wants("relay") {
        results.relay = Some(relay_bench(&repo, quick).await?);
    }
    if wants("soak") {
        eprintln!(
            "==> soak: hostile loads on the relay during a call (two headless Chromium processes)"
        );
        results.soak = Some(soak::measure(quick).await?);
    }
    if wants("cluster") {
        results.cluster = Some(cluster::measure(&programs(&repo)?, quick).await?);
    }
    if soak::only_some().is_some() {
        eprintln!("PEERCALL_SOAK_LOADS is set: nothing written");
        return Ok(());
    }
    if !only.is_empty() {
        keep_earlier(&mut results, &repo.join("bench/results.json"));
    }

    let json = serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?;
    let json_path = repo.join("bench/results.json");
    std::fs::write(&json_path, json + "\n").map_err(|e| format!("{}: {e}", json_path.display()))?;
    let md_path = write_markdown(&repo, &results)?;
    eprintln!("wrote {} and {}", md_path.display(), json_path.display());
    Ok(())
}

/// Writes BENCHMARKS.md for `results`; gives back its path.
fn write_markdown(repo: &std::path::Path, results: &Results) -> Result<std::path::PathBuf, String> {
    let md_path = repo.join("BENCHMARKS.md");
    std::fs::write(&md_path, report::markdown(results))
        .map_err(|e| format!("{}: {e}", md_path.display()))?;
    Ok(md_path)
}

/// The parts of the benchmark, in the order a full run measures them.
const PARTS: [&str; 8] = [
    "size", "transfer", "mesh", "large", "setup", "relay", "soak", "cluster",
];

/// After a run of some parts, the others as the last run that measured them
/// left them in `path`, each marked with that run's machine and commit.
fn keep_earlier(results: &mut Results, path: &std::path::Path) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    let old = match serde_json::from_str::<Results>(&text) {
        Ok(old) => old,
        Err(e) => {
            eprintln!(
                "warning: {} cannot be read ({e}); the parts not run now are left out",
                path.display()
            );
            return;
        }
    };
    let from = |part: &str| {
        old.earlier
            .get(part)
            .cloned()
            .unwrap_or_else(|| old.machine.clone())
    };
    let mut keep = |part: &str, missing: bool| {
        if missing {
            results.earlier.insert(part.to_owned(), from(part));
        }
    };
    keep("setup", results.setup.is_none() && old.setup.is_some());
    keep("size", results.size.is_none() && old.size.is_some());
    keep(
        "transfer",
        results.transfer.is_none() && old.transfer.is_some(),
    );
    keep("mesh", results.mesh.is_none() && old.mesh.is_some());
    keep("large", results.large.is_none() && old.large.is_some());
    keep("relay", results.relay.is_none() && old.relay.is_some());
    keep("soak", results.soak.is_none() && old.soak.is_some());
    keep(
        "cluster",
        results.cluster.is_none() && old.cluster.is_some(),
    );
    results.setup = results.setup.take().or(old.setup);
    results.size = results.size.take().or(old.size);
    results.transfer = results.transfer.take().or(old.transfer);
    results.mesh = results.mesh.take().or(old.mesh);
    results.large = results.large.take().or(old.large);
    results.relay = results.relay.take().or(old.relay);
    results.soak = results.soak.take().or(old.soak);
    results.cluster = results.cluster.take().or(old.cluster);
}

/// The relays the relay and cluster parts start.
fn programs(repo: &std::path::Path) -> Result<Programs, String> {
    Ok(Programs {
        peercall: env_path("PEERCALL_RELAY_BIN")?,
        node_script: repo.join("bench/node-relay/relay.js"),
    })
}

async fn relay_bench(repo: &std::path::Path, quick: bool) -> Result<RelayResults, String> {
    let programs = programs(repo)?;
    let reps = if quick { 1 } else { 3 };
    let idle_steps = relay::idle_steps(quick);
    let mut out = RelayResults::default();
    // A, B, A, B...: both relays see the same machine conditions.
    for rep in 1..=reps {
        for which in [Which::Peercall, Which::Node] {
            eprintln!(
                "==> relay idle connections: {} (run {rep}/{reps})",
                which.name()
            );
            let run = relay::idle(which, &programs, idle_steps).await?;
            for p in &run.points {
                eprintln!(
                    "    {:>6} conns: rss {:.1} MB, {:.1} KB/conn",
                    p.conns,
                    p.rss_bytes as f64 / 1e6,
                    p.bytes_per_conn / 1e3
                );
            }
            out.idle.push(run);
        }
    }
    let window = Duration::from_secs(if quick { 1 } else { 2 });
    for rep in 1..=reps {
        for room_size in [2, 6] {
            for which in [Which::Peercall, Which::Node] {
                eprintln!(
                    "==> relay fan-out: {}, rooms of {room_size} (run {rep}/{reps})",
                    which.name()
                );
                let rooms = 120 / room_size;
                let run =
                    relay::fanout(which, &programs, room_size, rooms, relay::RATES, window).await?;
                for s in &run.steps {
                    eprintln!(
                        "    {:>6.0}/s offered: sent {:>7.0}/s, delivered {:>7.0}/s ({:.3}), p50 {:.2} ms, p99 {:.2} ms, relay cpu {:.2}{}",
                        s.offered_per_s,
                        s.sent_per_s,
                        s.delivered_per_s,
                        s.delivered_ratio,
                        s.p50_ms,
                        s.p99_ms,
                        s.relay_cpu,
                        if s.saturated { "  saturated" } else { "" }
                    );
                }
                out.fanout.push(run);
            }
        }
    }
    Ok(out)
}
