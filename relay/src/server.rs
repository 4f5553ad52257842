//! The accept loop: every TCP connection is counted from the moment it is
//! accepted, given a deadline for its request headers, and waited for on
//! shutdown.
//!
//! - At most `max_http_connections` connections that are not WebSockets,
//!   and `per_addr.http_connections` from one address; past those a new
//!   connection is closed at once, before it can hold anything.
//! - hyper's HTTP/1 server with a timer: headers must arrive within
//!   `header_timeout` (which also ends idle kept-alive connections), and
//!   may take at most `max_header_bytes`.
//! - On shutdown the listener closes, WebSockets are sent 1001, HTTP
//!   connections finish their request, and all of it is waited for up to
//!   `shutdown_timeout`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::limits::{AddrKey, Kind};
use crate::{router, State};

/// At most one log line per this long for refusals at accept, which come in
/// floods.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Logs a flood once per [`LOG_EVERY`], with how many it stands for.
struct Throttled {
    what: &'static str,
    last: Option<Instant>,
    count: u64,
}

impl Throttled {
    fn new(what: &'static str) -> Self {
        Self {
            what,
            last: None,
            count: 0,
        }
    }

    fn hit(&mut self, addr: SocketAddr, limit: usize) {
        self.count += 1;
        let now = Instant::now();
        if self.last.is_none_or(|t| now.duration_since(t) >= LOG_EVERY) {
            tracing::warn!(
                %addr,
                limit,
                closed = self.count,
                "refused at accept: {} (closed at once; one line per {} s)",
                self.what,
                LOG_EVERY.as_secs()
            );
            self.last = Some(now);
            self.count = 0;
        }
    }
}

pub(crate) async fn run(
    listener: TcpListener,
    state: Arc<State>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let config = &state.config;
    let app = router(state.clone());
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .max_buf_size(config.max_header_bytes)
        .keep_alive(true);

    let sweeper = {
        let addrs = state.addrs.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(crate::limits::Addresses::SWEEP_EVERY);
            loop {
                every.tick().await;
                addrs.sweep();
            }
        })
    };

    let mut over_global = Throttled::new("too many HTTP connections");
    let mut over_addr = Throttled::new("too many HTTP connections from one address");
    let mut accept_errors = Throttled::new("accept failed");
    tokio::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and the like: the connection stays in the
                    // backlog; wait a little rather than spin.
                    tracing::debug!(error = %e, "accept");
                    accept_errors.hit(listener.local_addr()?, 0);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(held) = state.http.take(config.max_http_connections) else {
            over_global.hit(remote, config.max_http_connections);
            continue;
        };
        let per_addr = if config.trusted_proxies.contains(&remote.ip()) {
            None
        } else {
            match state.addrs.take(AddrKey::of(remote.ip()), Kind::Http) {
                Ok(slot) => Some(slot),
                Err(limit) => {
                    over_addr.hit(remote, limit);
                    continue;
                }
            }
        };
        // Signaling is small messages that should leave at once: without
        // TCP_NODELAY, Nagle's algorithm holds a message back until the
        // previous one is acknowledged (up to the peer's delayed-ACK timer,
        // ~40 ms).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY: {e}");
        }
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(remote));
            app.clone().oneshot(req)
        });
        let conn = http
            .serve_connection(TokioIo::new(tcp), service)
            .with_upgrades();
        let mut down = state.shutdown.subscribe();
        state.spawn(async move {
            let _places = (held, per_addr);
            tokio::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                () = async { let _ = down.wait_for(|&down| down).await; } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(addr = %remote, error = %e, "HTTP connection ended");
            }
        });
    }

    drop(listener);
    sweeper.abort();
    state.shut_down();
    state.tasks.close();
    let open = state.tasks.len();
    if open > 0 {
        tracing::info!(open, "closing connections");
    }
    if tokio::time::timeout(config.shutdown_timeout, state.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = state.tasks.len(),
            "connections still open after {} s; dropping them",
            config.shutdown_timeout.as_secs_f64()
        );
        state.kill();
        state.tasks.wait().await;
    }
    Ok(())
}
