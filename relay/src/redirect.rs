//! `--http-port`: plain HTTP beside HTTPS, answering every request with a
//! permanent redirect to the same path over HTTPS (308, so a method and
//! body are kept). It holds nothing: one request per connection, headers
//! within the deadline, a cap on connections.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::header::{HOST, LOCATION};
use axum::http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use crate::{Gauge, Hush};

/// Connections at once on the plain port.
const MAX_CONNECTIONS: usize = 1024;

/// Where a request for `host` (its `Host` header) and `path` goes on the
/// HTTPS port `https_port`.
pub fn location(host: &str, path: &str, https_port: u16) -> Option<String> {
    let uri: axum::http::Uri = format!("http://{host}").parse().ok()?;
    let name = uri.authority()?.host();
    if name.is_empty() {
        return None;
    }
    let path = if path.starts_with('/') { path } else { "/" };
    Some(if https_port == 443 {
        format!("https://{name}{path}")
    } else {
        format!("https://{name}:{https_port}{path}")
    })
}

/// Serves redirects on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    https_port: u16,
    header_timeout: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(false);
    let open = Arc::new(Gauge::default());
    let full = Hush::default();
    let tasks = TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(held) = open.take(MAX_CONNECTIONS) else {
            if let Some(n) = full.due() {
                tracing::warn!(
                    closed = n,
                    "HTTP redirect port: too many connections (one line per 5 s)"
                );
            }
            continue;
        };
        let service = hyper::service::service_fn(move |req: Request<Incoming>| async move {
            let host = req
                .headers()
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default();
            let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
            let response = match location(host, path, https_port) {
                Some(to) => Response::builder()
                    .status(StatusCode::PERMANENT_REDIRECT)
                    .header(LOCATION, to)
                    .body(Body::from("this relay is served over HTTPS\n")),
                None => Response::builder()
                    .status(StatusCode::BAD_REQUEST)
                    .body(Body::from("no Host header: ask for https:// instead\n")),
            };
            Ok::<_, Infallible>(response.unwrap_or_default())
        });
        let conn = http.serve_connection(TokioIo::new(tcp), service);
        tasks.spawn(async move {
            let _held = held;
            let _ = conn.await;
        });
    }
    tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(2), tasks.wait()).await;
}

#[cfg(test)]
mod tests {
    use super::location;

    #[test]
    fn redirects_keep_the_name_and_path_and_take_the_https_port() {
        assert_eq!(
            location("call.example.com", "/ws?x=1", 443).as_deref(),
            Some("https://call.example.com/ws?x=1")
        );
        assert_eq!(
            location("call.example.com:80", "/", 8443).as_deref(),
            Some("https://call.example.com:8443/")
        );
        assert_eq!(
            location("[::1]:8080", "/a", 8443).as_deref(),
            Some("https://[::1]:8443/a")
        );
        assert_eq!(location("", "/", 443), None);
        assert_eq!(location("a b", "/", 443), None);
    }
}
