//! Shipped bytes: every file of the release build that a visitor downloads
//! (wasm, JS glue, CSS, HTML), raw, gzip -9 and brotli -11, against the
//! budget; and the wasm's biggest contributors from twiggy, by function and
//! by crate.

use std::path::Path;

use peercall_relay::compress::{brotli_best, gzip_best};
use serde::{Deserialize, Serialize};

/// Total gzip budget for what a first visit downloads (issue 8): 150 KB.
pub const BUDGET_GZIP: u64 = 150_000;

/// What the test command allows a first visit to download (gzip), until
/// the size is under [`BUDGET_GZIP`]: the size it measured when this check
/// came in (2026-12-03, 253.6 KB, then 253.2 KB) plus 0.9 KB, so nothing grows unnoticed.
/// Lower it whenever a change makes the app smaller, never raise it
/// without saying in the commit what the bytes bought. Raised once: the
/// SFU client (issue 19: publishing and receiving through Janus, the
/// switch, simulcast layers, the grid of nine) cost 13.7 KB, 266.9 KB
/// measured on 2026-12-04. Raised again, to just above what was measured
/// (268.0 KB): ICE restarts of the two SFU connections (issue 19) cost
/// 0.9 KB, of which nothing could be won back elsewhere in the stop.
pub const CEILING_GZIP: u64 = 268_100;

/// The test command's check: the release build's first-visit bytes
/// against [`CEILING_GZIP`]. Over it: an error with the total, each file
/// and the biggest contributors, so the change that grew it is found.
pub fn check(r: &SizeResults) -> Result<(), String> {
    let kb = |b: u64| format!("{:.1} KB", b as f64 / 1000.0);
    eprintln!(
        "    first visit: {} gzip; the test allows {}, the target is {}",
        kb(r.total_gzip),
        kb(CEILING_GZIP),
        kb(BUDGET_GZIP)
    );
    if r.total_gzip <= CEILING_GZIP {
        return Ok(());
    }
    let mut why = format!(
        "a first visit downloads {} gzip, over the {} this test allows (bench/src/size.rs \
         CEILING_GZIP; the target is {}):",
        kb(r.total_gzip),
        kb(CEILING_GZIP),
        kb(BUDGET_GZIP)
    );
    for f in &r.files {
        why.push_str(&format!("\n  {:<44} {:>10} gzip", f.file, kb(f.gzip)));
    }
    if let Some(note) = &r.twiggy_note {
        why.push_str(&format!("\n  (no contributors: {note})"));
    }
    if !r.by_crate.is_empty() {
        why.push_str("\n  biggest in the wasm (before wasm-opt), by crate:");
        for c in r.by_crate.iter().take(10) {
            why.push_str(&format!(
                "\n    {:>8} {:>5.1} %  {}",
                c.bytes, c.percent, c.name
            ));
        }
        why.push_str("\n  and by item:");
        for c in r.top_items.iter().take(10) {
            why.push_str(&format!(
                "\n    {:>8} {:>5.1} %  {}",
                c.bytes, c.percent, c.name
            ));
        }
    }
    Err(why)
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FileSize {
    pub file: String,
    pub kind: String,
    pub raw: u64,
    pub gzip: u64,
    pub brotli: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Contributor {
    pub name: String,
    pub bytes: u64,
    pub percent: f64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SizeResults {
    pub files: Vec<FileSize>,
    pub total_raw: u64,
    pub total_gzip: u64,
    pub total_brotli: u64,
    pub budget_gzip: u64,
    /// Biggest functions and data in the wasm (twiggy top), before
    /// compression, from a build that kept function names.
    pub top_items: Vec<Contributor>,
    /// The same, summed by crate (first path segment of the name).
    pub by_crate: Vec<Contributor>,
    /// Size of the named wasm twiggy read (code and data, without names).
    pub named_wasm_bytes: u64,
    pub twiggy_note: Option<String>,
}

fn gzip(data: &[u8]) -> u64 {
    gzip_best(data).len() as u64
}

fn brotli(data: &[u8]) -> u64 {
    brotli_best(data).len() as u64
}

pub async fn measure(dist: &Path) -> Result<SizeResults, String> {
    let mut files = Vec::new();
    let entries = std::fs::read_dir(dist).map_err(|e| format!("{}: {e}", dist.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = match name.rsplit('.').next() {
            Some("wasm") => "wasm",
            Some("js") => "js",
            Some("css") => "css",
            Some("html") => "html",
            _ => continue,
        };
        let data = std::fs::read(entry.path()).map_err(|e| format!("{name}: {e}"))?;
        files.push(FileSize {
            file: name,
            kind: kind.into(),
            raw: data.len() as u64,
            gzip: gzip(&data),
            brotli: brotli(&data),
        });
    }
    if !files.iter().any(|f| f.kind == "wasm") {
        return Err(format!(
            "no .wasm in {}: build the release first",
            dist.display()
        ));
    }
    files.sort_by_key(|f| std::cmp::Reverse(f.raw));
    let mut r = SizeResults {
        total_raw: files.iter().map(|f| f.raw).sum(),
        total_gzip: files.iter().map(|f| f.gzip).sum(),
        total_brotli: files.iter().map(|f| f.brotli).sum(),
        budget_gzip: BUDGET_GZIP,
        files,
        ..Default::default()
    };
    match twiggy() {
        Ok((named, top, by_crate)) => {
            r.named_wasm_bytes = named;
            r.top_items = top;
            r.by_crate = by_crate;
        }
        Err(e) => r.twiggy_note = Some(e),
    }
    for f in &r.files {
        eprintln!(
            "    {:<40} {:>8} raw {:>8} gz {:>8} br",
            f.file, f.raw, f.gzip, f.brotli
        );
    }
    eprintln!(
        "    total {} raw, {} gzip, {} brotli (budget {} gzip)",
        r.total_raw, r.total_gzip, r.total_brotli, r.budget_gzip
    );
    Ok(r)
}

/// `serde_json[16099d6de2d9f558]::de` -> `serde_json::de`: rustc's crate
/// disambiguators make names long and unreadable.
pub fn strip_hashes(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('[') {
        let tail = &rest[at + 1..];
        let hex = tail.chars().take_while(char::is_ascii_hexdigit).count();
        out.push_str(&rest[..at]);
        if hex == 16 && tail[hex..].starts_with(']') {
            rest = &tail[hex + 1..];
        } else {
            out.push('[');
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

/// The crate an item belongs to, from its demangled name: `yew::...` ->
/// `yew`, `<serde_json::... as ...>` -> `serde_json`, `core::fmt` kept
/// apart from the rest of `core`. Data and tables get their own buckets.
pub fn crate_of(name: &str) -> String {
    let n = name
        .trim_start_matches(['<', '&', '*', ' '])
        .trim_start_matches("mut ");
    let n = n.trim_start_matches("dyn ");
    if n.starts_with("data[") {
        return "(data segments)".into();
    }
    if n.starts_with("elem[") || n.starts_with("table[") {
        return "(tables)".into();
    }
    if n.starts_with("type[") || n.starts_with("import ") || n.starts_with("export ") {
        return "(types, imports, exports)".into();
    }
    if n.starts_with("custom section") || n.starts_with("\"") {
        return "(custom sections)".into();
    }
    let first = n.split("::").next().unwrap_or(n);
    let first = first.split(['<', ' ', '(', '[']).next().unwrap_or(first);
    if first == "core" && (n.starts_with("core::fmt") || n.contains("as core::fmt::")) {
        return "core::fmt".into();
    }
    if first.is_empty() || !n.contains("::") {
        return "(unnamed)".into();
    }
    first.into()
}

fn twiggy() -> Result<(u64, Vec<Contributor>, Vec<Contributor>), String> {
    let bin = std::env::var("TWIGGY_BIN").map_err(|_| "TWIGGY_BIN not set: no contributors")?;
    let wasm = std::env::var("PEERCALL_WASM_NAMED")
        .map_err(|_| "PEERCALL_WASM_NAMED not set: no contributors")?;
    let out = std::process::Command::new(&bin)
        .args(["top", "--format", "json", "-n", "100000"])
        .arg(&wasm)
        .output()
        .map_err(|e| format!("{bin}: {e}"))?;
    if !out.status.success() {
        return Err(format!("twiggy: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let items: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("twiggy json: {e}"))?;
    // Not shipped: custom sections (names, wasm-bindgen's description of the
    // JS glue), the `__wbindgen_describe_*` functions and the export entries
    // that keep them (wasm-bindgen runs and deletes them), import entries
    // (renamed by wasm-bindgen).
    let mut all: Vec<(String, u64)> = items
        .iter()
        .filter_map(|i| {
            Some((
                strip_hashes(i["name"].as_str()?),
                i["shallow_size"].as_u64()?,
            ))
        })
        .filter(|(name, _)| {
            !(name.starts_with("custom section")
                || name.ends_with("subsection")
                || name.starts_with("export ")
                || name.starts_with("import ")
                || name.starts_with("__wbindgen_describe"))
        })
        .collect();
    let total: u64 = all.iter().map(|(_, b)| b).sum();
    let pct = |b: u64| (b as f64 * 1000.0 / total as f64).round() / 10.0;
    all.sort_by_key(|i| std::cmp::Reverse(i.1));
    let top = all
        .iter()
        .take(25)
        .map(|(name, b)| Contributor {
            name: name.chars().take(110).collect(),
            bytes: *b,
            percent: pct(*b),
        })
        .collect();
    let mut crates: std::collections::BTreeMap<String, u64> = Default::default();
    for (name, b) in &all {
        *crates.entry(crate_of(name)).or_default() += b;
    }
    let mut by_crate: Vec<Contributor> = crates
        .into_iter()
        .map(|(name, b)| Contributor {
            name,
            bytes: b,
            percent: pct(b),
        })
        .collect();
    by_crate.sort_by_key(|c| std::cmp::Reverse(c.bytes));
    by_crate.truncate(20);
    Ok((total, top, by_crate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crates_from_demangled_names() {
        assert_eq!(crate_of("yew::html::component::Foo::bar::h1234"), "yew");
        assert_eq!(
            crate_of("<serde_json::de::Deserializer<R> as serde::Deserializer>::deserialize_any"),
            "serde_json"
        );
        assert_eq!(crate_of("core::fmt::write::h99"), "core::fmt");
        assert_eq!(crate_of("core::ptr::drop_in_place<x>"), "core");
        assert_eq!(crate_of("data[3]"), "(data segments)");
        assert_eq!(
            crate_of("dlmalloc::dlmalloc::Dlmalloc<A>::malloc"),
            "dlmalloc"
        );
        assert_eq!(crate_of("code[123]"), "(unnamed)");
        assert_eq!(
            strip_hashes("<peercall_protocol[81b2578552df1e1b]::Body as serde_core[31644c251148c681]::de::Deserialize>"),
            "<peercall_protocol::Body as serde_core::de::Deserialize>"
        );
        assert_eq!(strip_hashes("data[0]"), "data[0]");
    }
}
