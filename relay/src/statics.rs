//! The built web app as static files, with cache headers that suit trunk's
//! output: fingerprinted assets (`peercall-<hash>_bg.wasm`) never change and
//! are cached for a year; everything else (index.html, config) is revalidated
//! on every load so a new deployment is picked up at once.

use std::path::Path;

use axum::extract::Request;
use axum::http::header::{HeaderValue, CACHE_CONTROL};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use tower_http::compression::CompressionLayer;
use tower_http::services::{ServeDir, ServeFile};

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

/// Serves `dir`, with `index.html` for `/` and for unknown paths (the app
/// routes on the client), gzip or brotli as the client accepts, and cache
/// headers.
pub(crate) fn service(dir: &Path) -> Router {
    let files = ServeDir::new(dir)
        .append_index_html_on_directories(true)
        .fallback(ServeFile::new(dir.join("index.html")));
    Router::new()
        .fallback_service(files)
        .layer(middleware::from_fn(cache_headers))
        .layer(CompressionLayer::new())
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
    use super::is_fingerprinted;

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
