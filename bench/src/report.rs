//! BENCHMARKS.md from one run's [`Results`].

use std::fmt::Write;

use crate::relay::{FanoutRun, Which, RATES, SATURATED_P99_MS};
use crate::setup::{Page, PHASES};
use crate::stats::Summary;
use crate::Results;

/// The targets.
pub const SETUP_RATIO: f64 = 1.10;
pub const SETUP_MS: f64 = 500.0;
pub const IDLE_10K_BYTES: f64 = 200e6;
pub const P99_MS_AT_5K: f64 = 5.0;
pub const THROUGHPUT_RATIO: f64 = 2.0;
pub const CLUSTER_P99_MS_AT_5K: f64 = 10.0;
pub const CLUSTER_IDLE_RATIO: f64 = 1.5;
pub const SOAK_P99_MS: f64 = 50.0;

fn yes(met: bool) -> &'static str {
    if met {
        "**met**"
    } else {
        "**not met**"
    }
}

fn median(values: &[f64]) -> f64 {
    Summary::of(values).map_or(f64::NAN, |s| s.median)
}

fn kb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1000.0)
}

pub fn markdown(r: &Results) -> String {
    let mut md = String::new();
    let m = &r.machine;
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Written by `{}` (the `bench` command; see README) on {}, commit {}. \
         Machine: {} ({} cores), {} GiB, {}; {}; Node {}.{}\n",
        r.command,
        m.date,
        m.commit,
        m.cpu,
        m.cores,
        m.memory_gib,
        m.kernel,
        m.chromium,
        m.node,
        if r.quick {
            " **Quick run (`--quick`): too few repetitions to publish.**"
        } else {
            ""
        }
    );
    let _ = writeln!(
        md,
        "These machines are shared and noisy: every measurement is repeated, A and B are \
         interleaved, and comparisons are ratios of medians from this one run. The raw numbers \
         of every run are in `bench/results.json`. Nothing here is a pass/fail test.\n"
    );

    if !r.earlier.is_empty() {
        let _ = writeln!(
            md,
            "This run measured only some parts; these are kept from the earlier runs that \
             measured them:\n"
        );
        for (part, m) in &r.earlier {
            let _ = writeln!(md, "- {part}: commit {}, {}", m.commit, m.date);
        }
        let _ = writeln!(md);
    }
    targets(&mut md, r);
    if let Some(s) = &r.setup {
        setup(&mut md, s);
    }
    if let Some(s) = &r.size {
        size(&mut md, s);
    }
    if let Some(t) = &r.transfer {
        transfer(&mut md, t);
    }
    if let Some(m) = &r.mesh {
        mesh(&mut md, m);
    }
    if let Some(l) = &r.large {
        large(&mut md, l);
    }
    if let Some(rel) = &r.relay {
        relay(&mut md, rel);
    }
    if let Some(s) = &r.soak {
        soak(&mut md, s);
    }
    if let Some(c) = &r.cluster {
        cluster(&mut md, c);
    }
    md
}

/// The fan-out runs of one cluster layout.
fn layout_runs(c: &crate::cluster::ClusterResults, relays: usize, redis: bool) -> Vec<FanoutRun> {
    c.fanout
        .iter()
        .filter(|f| f.relays == relays && f.redis == redis)
        .map(|f| f.run.clone())
        .collect()
}

fn layout_name(relays: usize, redis: bool) -> String {
    match (relays, redis) {
        (1, false) => "1 relay, no Redis".into(),
        (1, true) => "1 relay on Redis".into(),
        (n, _) => format!("{n} relays on Redis"),
    }
}

/// Median bytes per idle connection at the largest step, with or without Redis.
fn cluster_idle_per_conn(c: &crate::cluster::ClusterResults, redis: bool) -> (usize, f64) {
    let runs: Vec<_> = c.idle.iter().filter(|i| i.redis == redis).collect();
    let top = runs
        .iter()
        .filter_map(|i| i.run.points.last().map(|p| p.conns))
        .max()
        .unwrap_or(0);
    let v: Vec<f64> = runs
        .iter()
        .filter_map(|i| i.run.points.iter().find(|p| p.conns == top))
        .map(|p| p.bytes_per_conn)
        .collect();
    (top, median(&v))
}

fn cluster_targets(md: &mut String, c: &crate::cluster::ClusterResults) {
    for relays in [2, 3] {
        let p99 = step_median(
            &layout_runs(c, relays, true),
            Which::Peercall,
            6,
            5000.0,
            |s| s.cross_p99_ms.unwrap_or(f64::NAN),
        );
        let _ = writeln!(
            md,
            "| cluster: cross-relay p99 under {CLUSTER_P99_MS_AT_5K} ms at 5k msg/s, rooms of 6, {relays} relays | {p99:.2} ms | {} |",
            yes(p99 < CLUSTER_P99_MS_AT_5K)
        );
    }
    let (conns, alone) = cluster_idle_per_conn(c, false);
    let (_, on_redis) = cluster_idle_per_conn(c, true);
    let ratio = on_redis / alone;
    let _ = writeln!(
        md,
        "| cluster: idle memory per connection on Redis within {CLUSTER_IDLE_RATIO}x of alone ({conns} conns) | {:.1} vs {:.1} KB: {ratio:.2}x | {} |",
        on_redis / 1e3,
        alone / 1e3,
        yes((ratio * 100.0).round() / 100.0 <= CLUSTER_IDLE_RATIO)
    );
}

fn cluster(md: &mut String, c: &crate::cluster::ClusterResults) {
    use crate::cluster::{LAYOUTS, ROOM_SIZE};
    let _ = writeln!(
        md,
        "## Several relays (Redis)\n\n\
         The fan-out of section 3 in rooms of {ROOM_SIZE} (20 rooms, 120 clients), with one relay \
         alone, one relay on Redis, and the same clients spread over two and three relay \
         processes on one Redis (`--redis`): each room's members go round the relays, so with \
         two relays 3 of a message's 5 deliveries cross the bus, with three 4 of 5. Everything \
         (relays, Redis, the load generator) shares this machine's cores. Medians over {} runs \
         per layout, interleaved; CPU is per process (1.00 = one core).\n",
        c.fanout
            .iter()
            .filter(|f| f.relays == 1 && !f.redis)
            .count()
    );
    let _ = writeln!(
        md,
        "| layout | sustained deliveries/s | saturated at (msg/s offered) | p50 / p99 at 5k msg/s | across relays: p50 / p99 at 5k | relay CPU at 5k | Redis CPU at 5k |\n|---|---|---|---|---|---|---|"
    );
    for (relays, redis) in LAYOUTS {
        let runs = layout_runs(c, relays, redis);
        if runs.is_empty() {
            continue;
        }
        let sustained = median(
            &runs
                .iter()
                .map(|r| r.sustained_delivered_per_s)
                .collect::<Vec<_>>(),
        );
        let saturated: Vec<f64> = runs.iter().filter_map(|r| r.saturated_at_per_s).collect();
        let saturated = if saturated.len() == runs.len() {
            format!("{:.0}", median(&saturated))
        } else {
            "not within the rates tried".into()
        };
        let at = |f: &dyn Fn(&crate::relay::FanoutStep) -> f64| {
            step_median(&runs, Which::Peercall, ROOM_SIZE, 5000.0, f)
        };
        let cpus: Vec<String> = (0..relays)
            .map(|i| {
                format!(
                    "{:.2}",
                    at(&|s| if s.relay_cpus.is_empty() {
                        s.relay_cpu
                    } else {
                        s.relay_cpus.get(i).copied().unwrap_or(f64::NAN)
                    })
                )
            })
            .collect();
        let _ = writeln!(
            md,
            "| {} | {sustained:.0} | {saturated} | {:.2} / {:.2} ms | {} | {} | {} |",
            layout_name(relays, redis),
            at(&|s| s.p50_ms),
            at(&|s| s.p99_ms),
            if relays > 1 {
                format!(
                    "{:.2} / {:.2} ms",
                    at(&|s| s.cross_p50_ms.unwrap_or(f64::NAN)),
                    at(&|s| s.cross_p99_ms.unwrap_or(f64::NAN))
                )
            } else {
                "-".into()
            },
            cpus.join(" + "),
            if redis {
                format!("{:.2}", at(&|s| s.redis_cpu.unwrap_or(f64::NAN)))
            } else {
                "-".into()
            }
        );
    }
    if !c.one_at_a_time.is_empty() {
        let of = |across: bool, f: &dyn Fn(&crate::cluster::OneAtATime) -> f64| {
            let v: Vec<f64> = c
                .one_at_a_time
                .iter()
                .filter(|o| o.across_relays == across)
                .map(f)
                .collect();
            median(&v)
        };
        let _ = writeln!(
            md,
            "\nOne message at a time (a client sends to another, then waits for it to arrive; \
             {} messages, nothing else running), two relays on one Redis:\n\n\
             | path | p50 | p99 |\n|---|---|---|\n\
             | both clients on one relay | {:.3} ms | {:.3} ms |\n\
             | across the two relays, through Redis | {:.3} ms | {:.3} ms |",
            c.one_at_a_time[0].messages,
            of(false, &|o| o.p50_ms),
            of(false, &|o| o.p99_ms),
            of(true, &|o| o.p50_ms),
            of(true, &|o| o.p99_ms),
        );
    }
    let _ = writeln!(
        md,
        "\nEvery rate, median p99 in ms over all deliveries (deliveries/s in brackets); a dash \
         where the runs had saturated before:\n"
    );
    let mut header = String::from("| offered msg/s |");
    let mut rule = String::from("|---|");
    for (relays, redis) in LAYOUTS {
        let _ = write!(header, " {} |", layout_name(relays, redis));
        rule.push_str("---|");
    }
    let _ = writeln!(md, "{header}\n{rule}");
    for &rate in RATES {
        let mut row = format!("| {rate:.0} |");
        let mut any = false;
        for (relays, redis) in LAYOUTS {
            let runs = layout_runs(c, relays, redis);
            let p99 = step_median(&runs, Which::Peercall, ROOM_SIZE, rate, |s| s.p99_ms);
            let delivered = step_median(&runs, Which::Peercall, ROOM_SIZE, rate, |s| {
                s.delivered_per_s
            });
            if p99.is_nan() {
                row.push_str(" - |");
            } else {
                any = true;
                let _ = write!(row, " {p99:.2} ({delivered:.0}) |");
            }
        }
        if any {
            let _ = writeln!(md, "{row}");
        }
    }
    let _ = writeln!(
        md,
        "\n### Idle connections on Redis\n\nThe idle part of section 3 (rooms of 2) with one relay \
         alone and one on Redis (each join admitted by Redis, each member held in it):\n\n\
         | connections | RSS alone | RSS on Redis | per connection alone | per connection on Redis |\n|---|---|---|---|---|"
    );
    let steps: Vec<usize> = c
        .idle
        .first()
        .map(|i| i.run.points.iter().map(|p| p.conns).collect())
        .unwrap_or_default();
    for conns in steps {
        let of = |redis: bool, f: &dyn Fn(&crate::relay::IdlePoint) -> f64| {
            let v: Vec<f64> = c
                .idle
                .iter()
                .filter(|i| i.redis == redis)
                .filter_map(|i| i.run.points.iter().find(|p| p.conns == conns))
                .map(f)
                .collect();
            median(&v)
        };
        let _ = writeln!(
            md,
            "| {conns} | {:.1} MB | {:.1} MB | {:.1} KB | {:.1} KB |",
            of(false, &|p| p.rss_bytes as f64) / 1e6,
            of(true, &|p| p.rss_bytes as f64) / 1e6,
            of(false, &|p| p.bytes_per_conn) / 1e3,
            of(true, &|p| p.bytes_per_conn) / 1e3,
        );
    }
    let _ = writeln!(md);
}

fn soak(md: &mut String, s: &crate::soak::SoakResults) {
    let mb = |b: u64| format!("{:.0}", b as f64 / 1e6);
    if let Some(c) = &s.churn {
        let _ = writeln!(
            md,
            "## Soak: whole calls, every message checked\n\n\
             {} WebSocket clients (each from an address of its own) in rooms of 6 go through \
             calls again and again for {:.0} s against the relay binary with its default flags: \
             join, wait for the others, send each other member an offer, an answer, four \
             candidates, an end of candidates and a ping, and the room a ping; wait for \
             everything addressed to them; leave; reconnect and rejoin (half a second later). \
             Each message carries its sender's serial number and send time, and receivers \
             check it.\n\n\
             | calls | messages sent | expected by receivers | delivered | lost | duplicated | to the wrong peer | relay errors | p50 / p99 / max | relay MB before / peak / 10 s after |\n\
             |---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n\
             | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} / {:.2} / {:.1} ms | {} / {} / {} |\n",
            c.clients, c.seconds, c.rounds, c.sent, c.expected, c.delivered, c.lost, c.duplicated,
            c.misdelivered, c.errors, c.p50_ms, c.p99_ms, c.max_ms, mb(c.rss_before),
            mb(c.rss_peak), mb(c.rss_after)
        );
        let ok = c.lost == 0 && c.duplicated == 0 && c.misdelivered == 0;
        let ratio = c.rss_after as f64 / c.rss_before.max(1) as f64;
        let _ = writeln!(
            md,
            "None lost, duplicated or misdelivered: {}. Relay memory after, {ratio:.2}x before: \
             {} (the target is within 1.5x).\n",
            if ok { "met" } else { "**not met**" },
            if ratio <= 1.5 { "met" } else { "**not met**" }
        );
    }
    let _ = writeln!(
        md,
        "## Soak: the relay under hostile loads
"
    );
    let _ = writeln!(
        md,
        "The relay binary with its default flags serves a call between two headless Chromium \
         processes (fake camera, video both ways) while each load of the hostile probe of \
         issue 24 (at full size), then the frame-level loads of issue 23, runs against it, \
         one after another, each from addresses of its own (127.N.x.y: many \
         addresses where the probe's load came from many clients). *Held at 15 s*: the \
         attacker's connections still open as the attacker saw them 15 s after the load \
         began (the header and message deadlines are 10 s; a flood still running counts \
         connections waiting in the kernel's accept queue too). *Relay holds*: the relay's \
         own count from `/healthz` 8 s in, HTTP connections (its cap is 1024) and \
         WebSockets. *Call*: video frames the call decoded \
         during the load (the lower side). *Health* and *new call* were checked 8 s in: \
         `/healthz` within 5 s, and two WebSocket clients from another address joining a \
         new room with one's offer reaching the other. Relay memory is its resident size \
         before, at its peak, and 5 s after the load ended; the baseline with the call \
         running was {} MB. *Relay CPU*: its use through the first 15 s of the load, in \
         cores (1.00 = one core busy; this machine has 2, shared with the attacker and the \
         browsers), and the load generator's own (attacker and probe) over the same time.\n",
        mb(s.baseline_rss)
    );
    let _ = writeln!(
        md,
        "*Signaling*: two more clients in a room of their own, one sending the other an offer \
         every 20 ms through the first 15 s of the load: how many arrived of how many were \
         sent, and the 99th percentile from send to receipt (the target is under {SOAK_P99_MS:.0} ms).\n"
    );
    let _ = writeln!(
        md,
        "| load | opened | held at 15 s | relay holds (HTTP, WS) | what the relay did | relay MB before / peak / after | CPU: relay, load generator | call frames (s) | health | new call | signaling: arrived, p99 |\n|---|---:|---:|---:|---|---:|---:|---:|---|---:|---:|"
    );
    for st in &s.steps {
        let _ = writeln!(
            md,
            "| {}: {} | {} | {} | {}, {} | {} | {} / {} / {} | {}, {} | {} ({:.0}) | {} | {} | {} |",
            st.name,
            st.load,
            st.opened,
            st.held_at_15s,
            st.relay_http_connections
                .map_or("-".into(), |n| n.to_string()),
            st.relay_websockets.map_or("-".into(), |n| n.to_string()),
            st.outcome,
            mb(st.relay_rss_before),
            mb(st.relay_rss_peak),
            mb(st.relay_rss_after),
            st.relay_cpu.map_or("-".into(), |c| format!("{c:.2}")),
            st.load_cpu.map_or("-".into(), |c| format!("{c:.2}")),
            st.call_frames,
            st.call_seconds,
            if st.health_ok { "ok" } else { "**failed**" },
            st.new_call_ms
                .map_or("**failed**".to_owned(), |ms| format!("{ms:.0} ms")),
            match st.probe_p99_ms {
                Some(p99) => format!(
                    "{} of {}, {p99:.1} ms{}",
                    st.probe_received,
                    st.probe_sent,
                    if p99 < SOAK_P99_MS { "" } else { " (**over the target**)" }
                ),
                None if st.probe_sent == 0 => "-".to_owned(),
                None => "**none arrived**".to_owned(),
            },
        );
    }
    if let Some((worst, _)) = worst_probe(s) {
        let _ = writeln!(
            md,
            "\nSignaling during the loads: the worst p99 was {worst:.1} ms ({}: under {SOAK_P99_MS:.0} ms).",
            if worst < SOAK_P99_MS { "met" } else { "**not met**" }
        );
    }
    if let Some(last) = s.steps.last() {
        let ratio = last.relay_rss_after as f64 / s.baseline_rss.max(1) as f64;
        let _ = writeln!(
            md,
            "\nAfter every load: the relay at {} MB, {ratio:.2}x its baseline (the target is \
             within 2x).",
            mb(last.relay_rss_after)
        );
    }
    if let Some(sd) = &s.shutdown {
        let _ = writeln!(
            md,
            "\n**Shutdown**: SIGTERM with {} WebSockets open (every client reading): {} got \
             close 1001, and the relay exited {} after {:.0} ms.\n",
            sd.clients,
            sd.got_1001,
            if sd.exit_ok {
                "cleanly"
            } else {
                "**with an error**"
            },
            sd.exit_ms
        );
    }
}

/// Participants' CPU, upload and video upload, summarised.
fn costs(these: &[&crate::mesh::Participant]) -> Option<(Summary, Summary, Summary)> {
    let of = |f: fn(&crate::mesh::Participant) -> f64| {
        Summary::of(&these.iter().map(|p| f(p)).collect::<Vec<_>>())
    };
    Some((
        of(|p| p.cpu_cores)?,
        of(|p| p.out_kbps)?,
        of(|p| p.out_video_kbps)?,
    ))
}

fn mesh(md: &mut String, m: &crate::mesh::MeshResults) {
    let _ = writeln!(md, "## Group calls\n");
    let _ = writeln!(
        md,
        "Each participant's cost in a full mesh of 2, 3 and 4 headless Chromium processes \
         (fake 720p camera and microphone, one room, every call repeated and the sizes \
         interleaved). Once everyone decodes everyone and the senders have settled, each \
         browser's CPU time (all its processes) and outbound bytes (`outbound-rtp`, audio \
         and video, all its connections) are read over the same window. CPU is cores kept \
         busy (1.00 = one core); all the browsers share this machine's {} cores, so where \
         the browsers together use about that many, the call is bounded by the machine and \
         the encoders adapt (lower resolution or frame rate). The budget column is the cap \
         the upload budget (`mesh::budget`) puts on each video stream for that room size; \
         the fake camera's picture is simple, so a stream may need less than its cap.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let _ = writeln!(
        md,
        "| people | runs | CPU per participant (median, min-max) | all browsers, cores | upload kbit/s per participant (median, min-max) | of which video | video per stream | video sent (tallest) | budget per stream |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let mut base: Option<(f64, f64)> = None;
    let mut ratios = Vec::new();
    for &people in &m.sizes {
        let these: Vec<&crate::mesh::Participant> = m
            .runs
            .iter()
            .filter(|r| r.people == people)
            .flat_map(|r| &r.participants)
            .collect();
        let Some((cpu, up, video)) = costs(&these) else {
            continue;
        };
        let runs = m.runs.iter().filter(|r| r.people == people).count();
        let height = these.iter().map(|p| p.sent_height).max().unwrap_or(0);
        let budget = peercall_core::mesh::budget(people, false);
        let _ = writeln!(
            md,
            "| {people} | {runs} | {:.2} ({:.2}-{:.2}) | {:.2} | {:.0} ({:.0}-{:.0}) | {:.0} | {:.0} | {height}p | {:.0} kbit/s, {}p |",
            cpu.median,
            cpu.min,
            cpu.max,
            cpu.median * people as f64,
            up.median,
            up.min,
            up.max,
            video.median,
            video.median / (people - 1) as f64,
            f64::from(budget.max_bitrate_bps) / 1000.0,
            budget.max_height.unwrap_or(0)
        );
        match base {
            None => base = Some((cpu.median, up.median)),
            Some((c, u)) => ratios.push(format!(
                "{people} people: CPU {:.2}x, upload {:.2}x",
                cpu.median / c,
                up.median / u
            )),
        }
    }
    if !ratios.is_empty() {
        let _ = writeln!(
            md,
            "\nPer participant, against a call of two (same run): {}.",
            ratios.join("; ")
        );
    }
    let _ = writeln!(md);
}

fn large(md: &mut String, l: &crate::large::LargeResults) {
    let _ = writeln!(md, "## Large calls: peer to peer against the SFU\n");
    let _ = writeln!(
        md,
        "Each participant's cost with the same number of headless Chromium processes (fake \
         720p camera and microphone) peer to peer (a relay without `--janus`) and through \
         the SFU (a real Janus VideoRoom, `--mesh-max 1`: every room on it), sizes and \
         routes interleaved, every call repeated. Read over the same window once everyone \
         decodes everyone: CPU (all the browser's processes; 1.00 = one core, all browsers \
         share this machine's {} cores) and upload (`outbound-rtp` bytes, audio and video: \
         every mesh connection, or the SFU publisher's three simulcast layers).\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let _ = writeln!(
        md,
        "| people | route | runs | CPU per participant (median, min-max) | upload kbit/s per participant (median, min-max) | of which video | video sent (tallest) |\n|---:|---|---:|---:|---:|---:|---:|"
    );
    let mut upload = std::collections::BTreeMap::new();
    let sizes: std::collections::BTreeSet<usize> =
        l.mesh_sizes.iter().chain(&l.sfu_sizes).copied().collect();
    for &people in &sizes {
        for sfu in [false, true] {
            let runs: Vec<&crate::large::LargeRun> = l
                .runs
                .iter()
                .filter(|r| r.people == people && r.sfu == sfu)
                .collect();
            let these: Vec<&crate::mesh::Participant> =
                runs.iter().flat_map(|r| &r.participants).collect();
            let Some((cpu, up, video)) = costs(&these) else {
                continue;
            };
            upload.insert((people, sfu), up.median);
            let height = these.iter().map(|p| p.sent_height).max().unwrap_or(0);
            let _ = writeln!(
                md,
                "| {people} | {} | {} | {:.2} ({:.2}-{:.2}) | {:.0} ({:.0}-{:.0}) | {:.0} | {height}p |",
                if sfu { "SFU" } else { "peer to peer" },
                runs.len(),
                cpu.median,
                cpu.min,
                cpu.max,
                up.median,
                up.min,
                up.max,
                video.median,
            );
        }
    }
    let sfu_sizes: Vec<usize> = upload
        .keys()
        .filter(|(_, sfu)| *sfu)
        .map(|(n, _)| *n)
        .collect();
    if let (Some(&from), Some(&to)) = (sfu_sizes.iter().find(|n| **n >= 3), sfu_sizes.iter().max())
    {
        if to > from {
            let growth = upload[&(to, true)] / upload[&(from, true)];
            let verdict = if growth > 1.2 {
                "not met"
            } else if growth < 0.8 {
                "met: it does not grow; it shrinks, as this many browsers keep the machine's \
                 cores busy and their encoders send less (compare the CPU column)"
            } else {
                "met"
            };
            let _ = writeln!(
                md,
                "\nThrough the SFU a participant's upload from {from} to {to} people: {growth:.2}x \
                 (target: it does not grow, within 20 %: {verdict})."
            );
        }
    }
    for (people, _) in upload.keys().filter(|(_, sfu)| !*sfu) {
        if let Some(s) = upload.get(&(*people, true)) {
            let _ = writeln!(
                md,
                "{people} people: the SFU's upload is {:.2}x peer to peer's.",
                s / upload[&(*people, false)]
            );
        }
    }
    if let Some(gaps) = Summary::of(&l.switch_gaps_ms) {
        let _ = writeln!(
            md,
            "\nThe switch (two peer to peer, a third joins, `--mesh-max 2`): the longest gap in \
             decoded frames the first two saw, {} runs: median {:.0} ms (min {:.0}, max {:.0}); \
             the e2e test's bound is 1000 ms.",
            l.switch_gaps_ms.len(),
            gaps.median,
            gaps.min,
            gaps.max
        );
    }
    let _ = writeln!(md);
}

fn transfer(md: &mut String, t: &crate::transfer::TransferResults) {
    let _ = writeln!(md, "## File transfer\n");
    let _ = writeln!(
        md,
        "A file sent over the data channel during a call between two headless Chromium \
         processes (video both ways), from picking the file to the receiver showing it checked \
         (size and SHA-256). Extra memory: the peak resident size of all of a browser's \
         processes during the transfer, minus its size just before. A side that kept the whole \
         file in memory would grow with the file.\n"
    );
    let _ = writeln!(
        md,
        "| size | runs | MB/s (median, min-max) | sender extra MB (median) | receiver extra MB (median) |\n|---:|---:|---:|---:|---:|"
    );
    let mut extra = Vec::new();
    for &size in &t.sizes {
        let these: Vec<_> = t.runs.iter().filter(|r| r.bytes == size).collect();
        let rate: Vec<f64> = these.iter().map(|r| r.mb_per_s).collect();
        let sender: Vec<f64> = these
            .iter()
            .map(|r| r.sender_extra() as f64 / 1e6)
            .collect();
        let receiver: Vec<f64> = these
            .iter()
            .map(|r| r.receiver_extra() as f64 / 1e6)
            .collect();
        let (Some(rate), Some(sender), Some(receiver)) = (
            crate::stats::Summary::of(&rate),
            crate::stats::Summary::of(&sender),
            crate::stats::Summary::of(&receiver),
        ) else {
            continue;
        };
        let _ = writeln!(
            md,
            "| {} MiB | {} | {:.1} ({:.1}-{:.1}) | {:.0} | {:.0} |",
            size >> 20,
            these.len(),
            rate.median,
            rate.min,
            rate.max,
            sender.median,
            receiver.median
        );
        extra.push((size, receiver.median));
    }
    if let (Some(&(small, a)), Some(&(big, b))) = (extra.first(), extra.last()) {
        if big > small && a > 0.0 {
            let _ = writeln!(
                md,
                "\nThe file grew {:.1}x; the receiver's extra memory grew {:.2}x.",
                big as f64 / small as f64,
                b / a
            );
        }
    }
    let _ = writeln!(md);
}

fn targets(md: &mut String, r: &Results) {
    let _ = writeln!(md, "## Targets\n");
    let _ = writeln!(md, "| target | measured | |\n|---|---|---|");
    if let Some(s) = &r.setup {
        let first = s
            .summaries
            .iter()
            .find(|x| x.page == Page::Peercall && !x.repeat)
            .map_or(f64::NAN, |x| x.total_ms.median);
        let _ = writeln!(
            md,
            "| call setup within {SETUP_RATIO:.2}x the plain-JS page (first visit) | {:.2}x | {} |",
            s.ratio_first_visit,
            yes((s.ratio_first_visit * 100.0).round() / 100.0 <= SETUP_RATIO)
        );
        let _ = writeln!(
            md,
            "| call setup within {SETUP_RATIO:.2}x the plain-JS page (repeat visit) | {:.2}x | {} |",
            s.ratio_repeat_visit,
            yes((s.ratio_repeat_visit * 100.0).round() / 100.0 <= SETUP_RATIO)
        );
        let _ = writeln!(
            md,
            "| call setup under {SETUP_MS:.0} ms (first visit, median) | {first:.0} ms | {} |",
            yes(first < SETUP_MS)
        );
        let repeat = s
            .summaries
            .iter()
            .find(|x| x.page == Page::Peercall && x.repeat)
            .map_or(f64::NAN, |x| x.total_ms.median);
        let _ = writeln!(
            md,
            "| call setup under {SETUP_MS:.0} ms (repeat visit, median) | {repeat:.0} ms | {} |",
            yes(repeat < SETUP_MS)
        );
    }
    if let Some(s) = &r.size {
        let _ = writeln!(
            md,
            "| shipped bytes under {} KB gzip | {} KB | {} |",
            kb(s.budget_gzip),
            kb(s.total_gzip),
            yes(s.total_gzip < s.budget_gzip)
        );
    }
    if let Some(rel) = &r.relay {
        let rss: Vec<f64> = rel
            .idle
            .iter()
            .filter(|i| i.relay == Which::Peercall)
            .filter_map(|i| i.points.iter().find(|p| p.conns == 10_000))
            .map(|p| p.rss_bytes as f64)
            .collect();
        if !rss.is_empty() {
            let m = median(&rss);
            let _ = writeln!(
                md,
                "| relay: 10k idle connections under {:.0} MB RSS | {:.1} MB | {} |",
                IDLE_10K_BYTES / 1e6,
                m / 1e6,
                yes(m < IDLE_10K_BYTES)
            );
        }
        for size in [2, 6] {
            let p99 = step_median(&rel.fanout, Which::Peercall, size, 5000.0, |s| s.p99_ms);
            let _ = writeln!(
                md,
                "| relay: p99 fan-out latency under {P99_MS_AT_5K} ms at 5k msg/s, rooms of {size} | {p99:.2} ms | {} |",
                yes(p99 < P99_MS_AT_5K)
            );
        }
        for size in [2, 6] {
            let (ratio, bound) = throughput_ratio(&rel.fanout, size);
            let _ = writeln!(
                md,
                "| relay: at least {THROUGHPUT_RATIO}x the Node relay's sustained fan-out, rooms of {size} | {}{ratio:.2}x | {} |",
                if bound { "≥ " } else { "" },
                yes(ratio >= THROUGHPUT_RATIO)
            );
        }
    }
    if let Some(c) = &r.cluster {
        cluster_targets(md, c);
    }
    if let Some(s) = &r.soak {
        soak_targets(md, s);
    }
    if let Some(l) = &r.large {
        let upload = |people: usize| {
            let all: Vec<f64> = l
                .runs
                .iter()
                .filter(|r| r.sfu && r.people == people)
                .flat_map(|r| r.participants.iter().map(|p| p.out_kbps))
                .collect();
            Summary::of(&all).map(|s| s.median)
        };
        if let (Some(three), Some(six)) = (upload(3), upload(6)) {
            let _ = writeln!(
                md,
                "| large calls: a participant's upload through the SFU does not grow from 3 to 6 people (within 20 %) | {three:.0} -> {six:.0} kbit/s: {:.2}x | {} |",
                six / three,
                yes(six / three <= 1.2)
            );
        }
        if let Some(gaps) = Summary::of(&l.switch_gaps_ms) {
            let _ = writeln!(
                md,
                "| large calls: the switch to the SFU leaves no gap over 1 s in anyone's picture | {:.0} ms at the most | {} |",
                gaps.max,
                yes(gaps.max < 1000.0)
            );
        }
    }
    let _ = writeln!(md);
}

fn soak_targets(md: &mut String, s: &crate::soak::SoakResults) {
    if let Some(c) = &s.churn {
        let _ = writeln!(
            md,
            "| soak: whole calls by {} clients, no message lost, duplicated or misdelivered | {} lost, {} duplicated, {} misdelivered of {} | {} |",
            c.clients,
            c.lost,
            c.duplicated,
            c.misdelivered,
            c.expected,
            yes(c.lost + c.duplicated + c.misdelivered == 0 && c.delivered == c.expected)
        );
    }
    if s.steps.is_empty() {
        return;
    }
    // A load whose probe measured nothing counts as over.
    let all_probed = s.steps.iter().all(|st| st.probe_p99_ms.is_some());
    let (worst, name) = worst_probe(s).unwrap_or((f64::INFINITY, "none measured"));
    let all_arrived = s.steps.iter().all(|st| st.probe_received == st.probe_sent);
    let _ = writeln!(
        md,
        "| soak: signaling p99 under {SOAK_P99_MS:.0} ms through every hostile load ({} loads), none lost | {worst:.1} ms at the most ({name}){}{} | {} |",
        s.steps.len(),
        if all_arrived { ", all arrived" } else { ", some lost" },
        if all_probed { "" } else { ", some loads not measured" },
        yes(worst < SOAK_P99_MS && all_arrived && all_probed)
    );
    let kept = s
        .steps
        .iter()
        .all(|st| st.call_frames > 0 && st.health_ok && st.new_call_ms.is_some());
    let fewest = s.steps.iter().map(|st| st.call_frames).min().unwrap_or(0);
    let _ = writeln!(
        md,
        "| soak: through every load the call keeps its video, `/healthz` answers and a new call works | {} (the call decoded {fewest} frames at the fewest) | {} |",
        if kept { "every load" } else { "not every load" },
        yes(kept)
    );
}

/// The highest signaling p99 among the loads whose probe measured one, and
/// its load.
fn worst_probe(s: &crate::soak::SoakResults) -> Option<(f64, &str)> {
    s.steps
        .iter()
        .filter_map(|st| Some((st.probe_p99_ms?, st.name.as_str())))
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

fn runs_of(fanout: &[FanoutRun], which: Which, size: usize) -> Vec<&FanoutRun> {
    fanout
        .iter()
        .filter(|f| f.relay == which && f.room_size == size)
        .collect()
}

/// Median over runs of `f` at the step offering `rate` (runs that got there).
fn step_median(
    fanout: &[FanoutRun],
    which: Which,
    size: usize,
    rate: f64,
    f: impl Fn(&crate::relay::FanoutStep) -> f64,
) -> f64 {
    let values: Vec<f64> = runs_of(fanout, which, size)
        .iter()
        .filter_map(|r| r.steps.iter().find(|s| s.offered_per_s == rate))
        .map(f)
        .collect();
    median(&values)
}

/// peercall / Node sustained deliveries per second (medians over runs);
/// `true` when peercall never saturated, so the ratio is a lower bound.
fn throughput_ratio(fanout: &[FanoutRun], size: usize) -> (f64, bool) {
    let sustained = |which| {
        let v: Vec<f64> = runs_of(fanout, which, size)
            .iter()
            .map(|r| r.sustained_delivered_per_s)
            .collect();
        median(&v)
    };
    let never = runs_of(fanout, Which::Peercall, size)
        .iter()
        .all(|r| r.saturated_at_per_s.is_none());
    // Compared as shown (two decimals), so "2.00x" never reads "not met".
    let ratio = sustained(Which::Peercall) / sustained(Which::Node);
    ((ratio * 100.0).round() / 100.0, never)
}

fn setup(md: &mut String, s: &crate::setup::SetupResults) {
    let _ = writeln!(md, "## 1. Call setup\n");
    let _ = writeln!(
        md,
        "From the second person's navigation to the room link (the harness's clock just before \
         WebDriver's `goto`) until their page shows the first remote video frame \
         (`requestVideoFrameCallback`). Two separate headless Chromium processes per run with \
         Chromium's fake camera and microphone, the release build and the reference page served \
         by the same relay binary on loopback, no STUN/TURN (loopback needs none). \
         **First visit**: fresh browser profiles (nothing cached: opening a link someone sent). \
         **Repeat visit**: the same person leaves and opens the link again (app in the cache). \
         {} runs, rotating which page goes first. The reference is \
         `bench/reference/reference.html`: the same call in 60 lines of plain JavaScript.\n",
        s.runs
    );
    let _ = writeln!(
        md,
        "| page | visit | median | min | max |\n|---|---|---:|---:|---:|"
    );
    for x in &s.summaries {
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} ms | {:.0} ms | {:.0} ms |",
            x.page.name(),
            if x.repeat { "repeat" } else { "first" },
            x.total_ms.median,
            x.total_ms.min,
            x.total_ms.max
        );
    }
    let _ = writeln!(
        md,
        "\nRatio peercall / reference (medians): first visit **{:.2}x**, repeat visit **{:.2}x**.\n",
        s.ratio_first_visit, s.ratio_repeat_visit
    );
    if let (Some(first), Some(repeat)) = (s.early_first_visit, s.early_repeat_visit) {
        let _ = writeln!(
            md,
            "The early start (index.html's script: config.json, the camera and the relay's \
             WebSocket begin before the wasm runs, and the app takes them over), measured against \
             the same build without it (\"peercall, no early start\"): peercall / without, \
             first visit **{first:.2}x**, repeat visit **{repeat:.2}x**.\n"
        );
    }
    let _ = writeln!(
        md,
        "Breakdown: when each moment came, in median milliseconds after the navigation (both \
         pages mark the same moments with `performance.mark`; peercall joins, negotiates and \
         connects while its camera starts, so its moments are not in this order):\n"
    );
    let _ = write!(md, "| moment |");
    for x in &s.summaries {
        let _ = write!(
            md,
            " {} {} |",
            x.page.name(),
            if x.repeat { "repeat" } else { "first" }
        );
    }
    let _ = write!(md, "\n|---|");
    for _ in &s.summaries {
        let _ = write!(md, "---:|");
    }
    let _ = writeln!(md);
    for (phase, label) in PHASES {
        let _ = write!(md, "| {label} |");
        for x in &s.summaries {
            let v = x.phases_median_ms.get(*phase).copied().unwrap_or(f64::NAN);
            let _ = write!(md, " {v:.0} |");
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(md);
}

fn size(md: &mut String, s: &crate::size::SizeResults) {
    let _ = writeln!(md, "## 2. Shipped bytes\n");
    let _ = writeln!(
        md,
        "What a first visit downloads from the release build (`trunk build --release`, \
         `dist/`), raw, gzip -9 and brotli -11 (quality 11, 4 MiB window). Budget: {} KB gzip \
         in total.\n",
        kb(s.budget_gzip)
    );
    let _ = writeln!(md, "| file | raw | gzip | brotli |\n|---|---:|---:|---:|");
    for f in &s.files {
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {} |",
            f.file, f.raw, f.gzip, f.brotli
        );
    }
    let _ = writeln!(
        md,
        "| **total** | **{}** | **{}** | **{}** |\n",
        s.total_raw, s.total_gzip, s.total_brotli
    );
    if let Some(note) = &s.twiggy_note {
        let _ = writeln!(md, "Contributors not measured: {note}\n");
        return;
    }
    let _ = writeln!(
        md,
        "Biggest contributors to the wasm, from `twiggy top` on cargo's output for the same \
         build before wasm-bindgen and wasm-opt (the last step that still has function names; \
         {} bytes of code and data, so sizes run larger than shipped and the shares are what \
         to compare), summed by crate:\n",
        s.named_wasm_bytes
    );
    let _ = writeln!(md, "| crate | bytes | share |\n|---|---:|---:|");
    for c in &s.by_crate {
        let _ = writeln!(md, "| `{}` | {} | {:.1} % |", c.name, c.bytes, c.percent);
    }
    let _ = writeln!(md, "\nThe 25 biggest single items:\n");
    let _ = writeln!(md, "| item | bytes | share |\n|---|---:|---:|");
    for c in &s.top_items {
        let _ = writeln!(
            md,
            "| `{}` | {} | {:.1} % |",
            c.name.replace('|', "\\|"),
            c.bytes,
            c.percent
        );
    }
    let _ = writeln!(md);
}

fn relay(md: &mut String, rel: &crate::RelayResults) {
    let _ = writeln!(md, "## 3. Relay capacity\n");
    let _ = writeln!(
        md,
        "`bench/src/relay.rs` (Rust, tokio, tokio-tungstenite) against the peercall relay \
         (`--profile server` build, rate limit raised out of the way, logs at warn) and the \
         reference `bench/node-relay/relay.js` (Node's `ws` package: forwards each text message \
         to the rest of the room, nothing else), each a fresh process per run, on loopback. \
         The load generator shares the machine's cores with the relay under test.\n"
    );
    let _ = writeln!(
        md,
        "### Idle connections\n\nClients connect to `/ws/ROOM` in rooms of 2 and send `join` \
         (the peercall relay answers `welcome`), then stay silent. Resident memory of the relay \
         process (VmRSS) with that many connections open; per connection = (RSS - RSS before \
         any connection) / connections. Median of {} runs (min-max).\n",
        rel.idle
            .iter()
            .filter(|i| i.relay == Which::Peercall)
            .count()
    );
    let _ = writeln!(
        md,
        "| connections | peercall RSS | peercall per conn | Node RSS | Node per conn |\n|---:|---:|---:|---:|---:|"
    );
    let conns: Vec<usize> = rel
        .idle
        .first()
        .map(|i| i.points.iter().map(|p| p.conns).collect())
        .unwrap_or_default();
    for n in conns {
        let _ = write!(md, "| {n} |");
        for which in [Which::Peercall, Which::Node] {
            let pts: Vec<_> = rel
                .idle
                .iter()
                .filter(|i| i.relay == which)
                .filter_map(|i| i.points.iter().find(|p| p.conns == n))
                .collect();
            let rss = Summary::of(
                &pts.iter()
                    .map(|p| p.rss_bytes as f64 / 1e6)
                    .collect::<Vec<_>>(),
            );
            let per = median(
                &pts.iter()
                    .map(|p| p.bytes_per_conn / 1e3)
                    .collect::<Vec<_>>(),
            );
            match rss {
                Some(s) => {
                    let _ = write!(
                        md,
                        " {:.1} MB ({:.1}-{:.1}) | {per:.1} KB |",
                        s.median, s.min, s.max
                    );
                }
                None => {
                    let _ = write!(md, " - | - |");
                }
            }
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(md);

    let _ = writeln!(
        md,
        "### Fan-out\n\n120 clients in rooms of 2 (60 rooms) or 6 (20 rooms); every client \
         sends room-wide `ping` envelopes (about 250 bytes, with its send time) that the relay \
         forwards to the other members. The total send rate rises step by step ({}); each step \
         is measured over a window after a warm-up, and latency is from send to receipt on the \
         same clock. A step is **saturated** when the senders could not keep the rate (the \
         relay pushed back), under 95 % of deliveries arrived, the relay sent errors, or p99 \
         passed {SATURATED_P99_MS} ms; the run stops there. Medians over runs that reached the \
         step (n = how many did).\n",
        RATES
            .iter()
            .map(|r| format!("{}k", r / 1000.0))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for size in [2, 6] {
        let _ = writeln!(
            md,
            "Rooms of {size} (each message delivered to {}):\n",
            size - 1
        );
        let _ = writeln!(
            md,
            "| sent/s | peercall delivered/s | p50 | p99 | relay CPU | n | Node delivered/s | p50 | p99 | relay CPU | n |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for &rate in RATES {
            let mut row = format!("| {:.0}k |", rate / 1000.0);
            let mut any = false;
            for which in [Which::Peercall, Which::Node] {
                let steps: Vec<_> = runs_of(&rel.fanout, which, size)
                    .iter()
                    .filter_map(|r| r.steps.iter().find(|s| s.offered_per_s == rate))
                    .collect();
                if steps.is_empty() {
                    row.push_str(" - | - | - | - | 0 |");
                    continue;
                }
                any = true;
                let sat = steps.iter().filter(|s| s.saturated).count();
                let col = |f: &dyn Fn(&crate::relay::FanoutStep) -> f64| {
                    median(&steps.iter().map(|s| f(s)).collect::<Vec<_>>())
                };
                let _ = write!(
                    row,
                    " {:.0}{} | {:.2} ms | {:.2} ms | {:.2} | {} |",
                    col(&|s| s.delivered_per_s),
                    if sat > 0 {
                        format!(" (saturated in {sat})")
                    } else {
                        String::new()
                    },
                    col(&|s| s.p50_ms),
                    col(&|s| s.p99_ms),
                    col(&|s| s.relay_cpu),
                    steps.len()
                );
            }
            if any {
                let _ = writeln!(md, "{row}");
            }
        }
        let (ratio, bound) = throughput_ratio(&rel.fanout, size);
        let sustained = |which| {
            median(
                &runs_of(&rel.fanout, which, size)
                    .iter()
                    .map(|r| r.sustained_delivered_per_s)
                    .collect::<Vec<_>>(),
            )
        };
        let _ = writeln!(
            md,
            "\nSustained (highest unsaturated step): peercall {:.0} deliveries/s, Node {:.0}/s: \
             **{}{ratio:.2}x**{}.\n",
            sustained(Which::Peercall),
            sustained(Which::Node),
            if bound { "≥ " } else { "" },
            if bound {
                " (peercall did not saturate before the last step, so this is a lower bound: \
                 the load generator, on the same cores, is the limit)"
            } else {
                ""
            }
        );
    }
}
