//! Security headers (docs/PROTOCOL.md 5.11).
//!
//! On every response: `X-Content-Type-Options: nosniff` and
//! `Referrer-Policy: no-referrer` (a room link in the URL never leaks to
//! another site). On every page of the app (a `text/html` response):
//!
//! - a Content-Security-Policy allowing exactly what the app needs: its own
//!   scripts and the inline loader trunk writes into index.html (by the
//!   SHA-256 of each inline `<script>`, read from the page as it is
//!   served, so a rebuild needs nothing), `'wasm-unsafe-eval'` to compile
//!   the wasm, connections to its own origin (the relay's WebSocket is
//!   `'self'`) and its own `blob:` URLs (received files), to the relays and `iceServersUrl` that `config.json` names,
//!   and to what `--connect-src` adds; nothing else, no framing. Violations
//!   are reported to `/csp-report` and counted in `/healthz`.
//! - a Permissions-Policy giving camera, microphone, display capture and
//!   fullscreen to the app's own origin only;
//! - `Cross-Origin-Opener-Policy: same-origin`.
//!
//! WebRTC itself (STUN and TURN) is not under CSP: the ICE servers need no
//! entry.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State as AxumState};
use axum::http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::{lock, State};

/// The largest page whose inline scripts are hashed; a bigger `text/html`
/// response is served with a policy allowing no inline script.
const MAX_PAGE: usize = 1024 * 1024;
/// The largest violation report read.
pub(crate) const MAX_REPORT: usize = 16 * 1024;

pub(crate) const REPORT_PATH: &str = "/csp-report";

const PERMISSIONS: &str =
    "camera=(self), microphone=(self), display-capture=(self), fullscreen=(self)";

/// Headers on every response (and HSTS with TLS).
pub(crate) async fn everywhere(
    AxumState(state): AxumState<Arc<State>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    if state.tls.as_ref().is_some_and(|t| t.hsts) {
        h.insert(
            HeaderName::from_static("strict-transport-security"),
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    h.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// What goes into `connect-src` besides `'self'`: `config.json`'s relays
/// and `iceServersUrl`, read again when the file changes, and
/// `--connect-src`.
#[derive(Debug)]
pub(crate) struct ConnectSources {
    config_json: PathBuf,
    extra: Vec<String>,
    cached: Mutex<Option<(Option<SystemTime>, String)>>,
}

impl ConnectSources {
    pub(crate) fn new(static_dir: &Path, extra: &[String]) -> Self {
        Self {
            config_json: static_dir.join("config.json"),
            extra: extra.to_vec(),
            cached: Mutex::new(None),
        }
    }

    fn get(&self) -> String {
        let modified = std::fs::metadata(&self.config_json)
            .and_then(|m| m.modified())
            .ok();
        let mut cached = lock(&self.cached);
        if let Some((when, sources)) = &*cached {
            if *when == modified {
                return sources.clone();
            }
        }
        let text = std::fs::read_to_string(&self.config_json).unwrap_or_default();
        // blob: is the app's own received files (URL.createObjectURL).
        let mut sources = vec!["'self'".to_owned(), "blob:".to_owned()];
        for s in config_sources(&text).into_iter().chain(self.extra.clone()) {
            if !sources.contains(&s) {
                sources.push(s);
            }
        }
        let sources = sources.join(" ");
        *cached = Some((modified, sources.clone()));
        sources
    }
}

/// The origins of the relays (`relay`: a URL or a list) and of
/// `iceServersUrl` in a `config.json`; anything unreadable is left out.
pub(crate) fn config_sources(text: &str) -> Vec<String> {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return Vec::new();
    };
    let mut urls = Vec::new();
    match &value["relay"] {
        serde_json::Value::String(s) => urls.push(s.as_str()),
        serde_json::Value::Array(list) => urls.extend(list.iter().filter_map(|v| v.as_str())),
        _ => {}
    }
    if let Some(s) = value["iceServersUrl"].as_str() {
        urls.push(s);
    }
    urls.into_iter().filter_map(source_of).collect()
}

/// `scheme://host[:port]` of a ws, wss, http or https URL.
fn source_of(url: &str) -> Option<String> {
    let uri: axum::http::Uri = url.trim().parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "ws" | "wss" | "http" | "https") {
        return None;
    }
    let authority = uri.authority()?;
    if authority.as_str().contains('@') || authority.host().is_empty() {
        return None;
    }
    Some(format!(
        "{scheme}://{}",
        authority.as_str().to_ascii_lowercase()
    ))
}

/// The SHA-256 sources (`'sha256-…'`) of each inline `<script>` in `html`.
pub(crate) fn inline_script_hashes(html: &str) -> Vec<String> {
    let mut hashes = Vec::new();
    let lower = html.to_ascii_lowercase();
    let mut at = 0;
    while let Some(start) = lower[at..].find("<script") {
        let open = at + start;
        let Some(tag_end) = lower[open..].find('>') else {
            break;
        };
        let tag = &lower[open..open + tag_end];
        let body_start = open + tag_end + 1;
        let Some(close) = lower[body_start..].find("</script") else {
            break;
        };
        let body = &html[body_start..body_start + close];
        // A script with src= runs the file, not its body.
        let has_src = tag
            .split(|c: char| c.is_ascii_whitespace())
            .any(|attr| attr.starts_with("src="));
        if !has_src && !body.trim().is_empty() {
            let digest = Sha256::digest(body.as_bytes());
            hashes.push(format!(
                "'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(digest)
            ));
        }
        at = body_start + close;
    }
    hashes
}

/// The policy for a page with these inline-script hashes.
pub(crate) fn policy(hashes: &[String], connect: &str) -> String {
    let mut script = String::from("'self' 'wasm-unsafe-eval'");
    for h in hashes {
        script.push(' ');
        script.push_str(h);
    }
    format!(
        "default-src 'none'; script-src {script}; style-src 'self'; img-src 'self' blob: data:; \
         media-src 'self' blob:; connect-src {connect}; manifest-src 'self'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'; report-uri {REPORT_PATH}"
    )
}

/// Adds the page headers to `text/html` responses of the static app.
pub(crate) async fn pages(
    AxumState(connect): AxumState<Arc<ConnectSources>>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    let is_html = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/html"));
    if !is_html {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let (body, hashes) = match axum::body::to_bytes(body, MAX_PAGE).await {
        Ok(bytes) => {
            let hashes = inline_script_hashes(&String::from_utf8_lossy(&bytes));
            (Body::from(bytes), hashes)
        }
        // Too big to read (or failed): served empty-handed rather than
        // with a policy that would not match it.
        Err(_) => (Body::from(Bytes::new()), Vec::new()),
    };
    let h = &mut parts.headers;
    if let Ok(csp) = HeaderValue::from_str(&policy(&hashes, &connect.get())) {
        h.insert(HeaderName::from_static("content-security-policy"), csp);
    }
    h.insert(
        HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static(PERMISSIONS),
    );
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    h.remove(CONTENT_LENGTH);
    Response::from_parts(parts, body)
}

/// `POST /csp-report`: a browser saying the policy blocked something.
/// Logged (one line per 5 s) and counted in `/healthz` (`csp_reports`).
pub(crate) async fn report(AxumState(state): AxumState<Arc<State>>, body: Bytes) -> Response {
    let report: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    // report-uri's form: {"csp-report": {...}}; Reporting API's: [{"body": {...}}].
    let r = if report["csp-report"].is_object() {
        &report["csp-report"]
    } else {
        &report[0]["body"]
    };
    if !r.is_object() {
        return (StatusCode::BAD_REQUEST, "not a CSP violation report").into_response();
    }
    state.csp_reports.fetch_add(1, Ordering::Relaxed);
    let field = |a: &str, b: &str| {
        r[a].as_str()
            .or_else(|| r[b].as_str())
            .unwrap_or("?")
            .chars()
            .take(200)
            .collect::<String>()
    };
    if let Some(n) = state.csp_hush.due() {
        tracing::warn!(
            directive = field("violated-directive", "effectiveDirective"),
            blocked = field("blocked-uri", "blockedURL"),
            page = field("document-uri", "documentURL"),
            reports = n,
            "the Content-Security-Policy blocked something in the app (one line per 5 s)"
        );
    }
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_scripts_are_hashed_and_external_ones_not() {
        let html = r#"<html><script type="module">import init from '/a.js';</script>
            <SCRIPT src="/b.js"></SCRIPT><script>  </script><script>x()</script>"#;
        let hashes = inline_script_hashes(html);
        // printf "import init from '/a.js';" | openssl dgst -sha256 -binary | base64
        let expect = |s: &str| {
            format!(
                "'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(Sha256::digest(s))
            )
        };
        assert_eq!(hashes, [expect("import init from '/a.js';"), expect("x()")]);
        assert!(inline_script_hashes("<script>unclosed").is_empty());
    }

    #[test]
    fn connect_sources_come_from_config_json() {
        assert_eq!(
            config_sources(
                r#"{"relay": ["wss://r1.example.com/ws", "wss://R2.example.com:8443/ws"],
                    "iceServersUrl": "https://turn.example.com/creds?x=1"}"#
            ),
            [
                "wss://r1.example.com",
                "wss://r2.example.com:8443",
                "https://turn.example.com"
            ]
        );
        assert_eq!(
            config_sources(r#"{"relay": "ws://127.0.0.1:9/ws"}"#),
            ["ws://127.0.0.1:9"]
        );
        assert!(config_sources("{}").is_empty());
        assert!(config_sources("not json").is_empty());
        assert!(config_sources(r#"{"relay": "javascript:alert(1)"}"#).is_empty());
    }
}
