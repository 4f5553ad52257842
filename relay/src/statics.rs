//! The built web app as static files, with cache headers that suit trunk's
//! output: fingerprinted assets (`peercall-<hash>_bg.wasm`) never change and
//! are cached for a year; everything else (index.html, config) is revalidated
//! on every load so a new deployment is picked up at once.
//!
//! The fingerprinted assets (the wasm, its JS glue, the CSS) are compressed
//! once, in the background at startup, with brotli at its best setting and
//! gzip -9, and served from memory: a first visit then gets the smallest
//! download without waiting for compression (on-the-fly brotli of the wasm
//! took ~40 ms per request, and gives a bigger file). Until that is done,
//! and for every other file, responses are compressed as they go out.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{
    HeaderValue, ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE,
    VARY,
};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::compression::CompressionLayer;

use crate::compress::{brotli_best, gzip_best};
use crate::headers::ConnectSources;
use tower_http::services::{ServeDir, ServeFile};

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

/// Serves `dir`, with `index.html` for `/` and for unknown paths (the app
/// routes on the client), gzip or brotli as the client accepts, and cache
/// headers.
pub(crate) fn service(dir: &Path, connect_src: &[String]) -> Router {
    let files = ServeDir::new(dir)
        .append_index_html_on_directories(true)
        .fallback(ServeFile::new(dir.join("index.html")));
    let cache = Precompressed::default();
    cache.fill_in_background(dir);
    Router::new()
        .fallback_service(files)
        .layer(middleware::from_fn_with_state(cache, precompressed))
        .layer(middleware::from_fn(cache_headers))
        .layer(middleware::from_fn_with_state(
            Arc::new(ConnectSources::new(dir, connect_src)),
            crate::headers::pages,
        ))
        .layer(CompressionLayer::new())
}

/// One asset, compressed both ways.
#[derive(Debug)]
struct Packed {
    content_type: &'static str,
    br: Bytes,
    gzip: Bytes,
}

/// URL path (`/peercall-<hash>_bg.wasm`) -> its compressed forms.
#[derive(Clone, Debug, Default)]
struct Precompressed(Arc<RwLock<HashMap<String, Arc<Packed>>>>);

impl Precompressed {
    /// Compresses the fingerprinted wasm, JS and CSS in `dir` on a thread
    /// of its own, adding each to the cache when it is ready.
    fn fill_in_background(&self, dir: &Path) {
        let cache = self.clone();
        let dir = dir.to_owned();
        let spawned = std::thread::Builder::new()
            .name("precompress".into())
            .spawn(move || {
                let start = Instant::now();
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    return;
                };
                let mut count = 0;
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let path = format!("/{name}");
                    let Some(content_type) = content_type(&name) else {
                        continue;
                    };
                    if !is_fingerprinted(&path) {
                        continue;
                    }
                    let Ok(data) = std::fs::read(entry.path()) else {
                        continue;
                    };
                    let packed = Packed {
                        content_type,
                        br: brotli_best(&data).into(),
                        gzip: gzip_best(&data).into(),
                    };
                    cache
                        .0
                        .write()
                        .expect("not poisoned")
                        .insert(path, Arc::new(packed));
                    count += 1;
                }
                tracing::info!(
                    files = count,
                    ms = start.elapsed().as_millis() as u64,
                    "static assets precompressed (brotli 11, gzip 9)"
                );
            });
        if let Err(e) = spawned {
            tracing::warn!("no precompression thread: {e}");
        }
    }

    fn get(&self, path: &str) -> Option<Arc<Packed>> {
        self.0.read().expect("not poisoned").get(path).cloned()
    }
}

fn content_type(name: &str) -> Option<&'static str> {
    match name.rsplit('.').next()? {
        "wasm" => Some("application/wasm"),
        "js" => Some("text/javascript"),
        "css" => Some("text/css"),
        _ => None,
    }
}

/// Which precompressed form `accept` (an Accept-Encoding value) takes:
/// brotli before gzip; an encoding with `q=0` is refused.
fn pick(accept: &str) -> Option<&'static str> {
    let takes = |wanted: &str| {
        accept.split(',').any(|part| {
            let mut bits = part.split(';').map(str::trim);
            bits.next()
                .is_some_and(|name| name.eq_ignore_ascii_case(wanted))
                && !bits.any(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                        .is_some_and(|q| q == 0.0)
                })
        })
    };
    if takes("br") {
        Some("br")
    } else if takes("gzip") {
        Some("gzip")
    } else {
        None
    }
}

async fn precompressed(
    State(cache): State<Precompressed>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    if method == Method::GET || method == Method::HEAD {
        let accept = request
            .headers()
            .get(ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if let (Some(encoding), Some(packed)) = (pick(accept), cache.get(request.uri().path())) {
            let body = if encoding == "br" {
                &packed.br
            } else {
                &packed.gzip
            };
            let length = body.len();
            let body = if method == Method::HEAD {
                Body::empty()
            } else {
                Body::from(body.clone())
            };
            return (
                [
                    (CONTENT_TYPE, HeaderValue::from_static(packed.content_type)),
                    (CONTENT_ENCODING, HeaderValue::from_static(encoding)),
                    (VARY, HeaderValue::from_static("accept-encoding")),
                    (CONTENT_LENGTH, HeaderValue::from(length)),
                ],
                body,
            )
                .into_response();
        }
    }
    next.run(request).await
}

async fn cache_headers(request: Request, next: Next) -> Response {
    let immutable = is_fingerprinted(request.uri().path());
    let mut response = next.run(request).await;
    if response.status().is_success() {
        let value = if immutable { IMMUTABLE } else { REVALIDATE };
        response
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static(value));
    }
    response
}

/// Whether the file name in `path` carries a content hash, so its content
/// can never change under that name. trunk writes a 64-bit hash in hex
/// without leading zeros: 16 digits, or fewer (15 one time in 16); fewer
/// than 10 (odds of 1 in 16^6) is not taken for a hash.
pub(crate) fn is_fingerprinted(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or_default();
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .any(|part| (10..=16).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::{is_fingerprinted, pick};

    #[test]
    fn picks_brotli_then_gzip_and_honours_q0() {
        assert_eq!(pick("gzip, deflate, br, zstd"), Some("br"));
        assert_eq!(pick("gzip, deflate"), Some("gzip"));
        assert_eq!(pick("br;q=0, gzip;q=0.5"), Some("gzip"));
        assert_eq!(pick("identity"), None);
        assert_eq!(pick(""), None);
        assert_eq!(pick("gzip;q=0"), None);
    }

    #[test]
    fn trunk_hashed_names_are_fingerprinted() {
        assert!(is_fingerprinted("/peercall-1a2b3c4d5e6f7a8b_bg.wasm"));
        assert!(is_fingerprinted("/peercall-1a2b3c4d5e6f7a8b.js"));
        assert!(is_fingerprinted("/main-0123456789abcdef.css"));
        // A hash with a leading zero is one digit shorter (seen in a build).
        assert!(is_fingerprinted("/peercall-4ab0c6a379db216_bg.wasm"));
    }

    #[test]
    fn plain_names_are_not() {
        assert!(!is_fingerprinted("/"));
        assert!(!is_fingerprinted("/index.html"));
        assert!(!is_fingerprinted("/config.json"));
        // A hash in a folder name does not make the file immutable.
        assert!(!is_fingerprinted("/1a2b3c4d5e6f7a8b/index.html"));
        // 17 digits, or under 10, is not trunk's hash.
        assert!(!is_fingerprinted("/x-1a2b3c4d5e6f7a8b9.js"));
        assert!(!is_fingerprinted("/x-1a2b3c4.js"));
        assert!(!is_fingerprinted("/peercall.js"));
    }
}
