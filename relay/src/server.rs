//! The accept loop: every TCP connection is counted from the moment it is
//! accepted, given a deadline for its request headers, and waited for on
//! shutdown.
//!
//! - At most `max_http_connections` connections that are not WebSockets,
//!   and `per_addr.http_connections` from one address. Past the first, the
//!   connection that has been idle longest (no request in progress: still
//!   waiting for its first headers, or kept alive after a response) is
//!   closed to make room, so connections that hold a place and do nothing
//!   cannot lock new clients out; only when every connection is busy is the
//!   new one closed at once. Past the per-address limit, the new one is
//!   closed at once.
//! - An address shut out for abuse (`limits::ABUSE_BURST`) has its
//!   connections closed as they are accepted, before a byte is read.
//! - hyper's HTTP/1 server with a timer: headers must arrive within
//!   `header_timeout` (which also ends idle kept-alive connections), and
//!   may take at most `max_header_bytes`.
//! - On shutdown the listener closes, WebSockets are sent 1001, HTTP
//!   connections finish their request, and all of it is waited for up to
//!   `shutdown_timeout`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::either::Either;
use tower::ServiceExt;

use crate::limits::{AddrKey, Kind};
use crate::{lock, router, Hush, State};

/// Connections let in over `max_http_connections` while the ones closed to
/// make room for them are still going (descriptors for them are in the
/// budget: `Config::fit_descriptors` counts two per HTTP connection).
const EVICTION_SLACK: usize = 64;

/// The HTTP connections and whether each has a request in progress, to
/// pick the one idle longest when a place is needed.
#[derive(Debug, Default)]
struct Pool {
    map: Mutex<HashMap<u64, Entry>>,
}

#[derive(Debug)]
struct Entry {
    /// `None` while a request is being answered.
    idle_since: Option<Instant>,
    evict: Arc<Notify>,
}

impl Pool {
    fn add(&self, id: u64) -> Arc<Notify> {
        let evict = Arc::new(Notify::new());
        lock(&self.map).insert(
            id,
            Entry {
                idle_since: Some(Instant::now()),
                evict: evict.clone(),
            },
        );
        evict
    }

    fn set_busy(&self, id: u64, busy: bool) {
        if let Some(e) = lock(&self.map).get_mut(&id) {
            e.idle_since = (!busy).then(Instant::now);
        }
    }

    fn remove(&self, id: u64) {
        lock(&self.map).remove(&id);
    }

    /// Tells the connection idle longest to close; false if none is idle.
    fn evict_oldest(&self) -> bool {
        let mut map = lock(&self.map);
        let oldest = map
            .iter()
            .filter_map(|(id, e)| e.idle_since.map(|t| (t, *id)))
            .min();
        match oldest.and_then(|(_, id)| map.remove(&id)) {
            Some(e) => {
                e.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

/// A connection as accepted, or after its TLS handshake.
type Io = Either<TcpStream, tokio_rustls::server::TlsStream<TcpStream>>;

/// With TLS, the handshake: within the deadline, and only while fewer
/// than `max_tls_handshakes` are in progress. `None`: the connection is
/// done (refused, failed, too slow, or an ACME validation).
async fn handshake(state: &State, tcp: TcpStream, remote: SocketAddr) -> Option<Io> {
    let Some(tls) = &state.tls else {
        return Some(Either::Left(tcp));
    };
    let config = &state.config;
    let Some(_handshaking) = state.handshakes.take(config.max_tls_handshakes) else {
        if let Some(n) = state.tls_hush.due() {
            tracing::warn!(%remote, limit = config.max_tls_handshakes, closed = n, "closed at once: too many TLS handshakes in progress (one line per 5 s)");
        }
        return None;
    };
    match tokio::time::timeout(config.tls_handshake_timeout, tls.acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => {
            if crate::tls::is_acme_challenge(stream.get_ref().1) {
                tracing::info!(%remote, "ACME: answered a TLS-ALPN-01 validation");
                return None;
            }
            Some(Either::Right(stream))
        }
        Ok(Err(e)) => {
            tracing::debug!(%remote, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            if let Some(n) = state.tls_hush.due() {
                tracing::info!(%remote, closed = n, "closed: TLS handshake not finished within {} s (one line per 5 s)", config.tls_handshake_timeout.as_secs_f64());
            }
            None
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

    let pool = Arc::new(Pool::default());
    let mut next_id = 0u64;
    // Floods: one log line per 5 s for each.
    let (over_global, evicted, over_addr, accept_errors, shut_out) = <[Hush; 5]>::default().into();
    tokio::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and the like: the connection stays in the
                    // backlog; wait a little rather than spin.
                    if let Some(n) = accept_errors.due() {
                        tracing::warn!(error = %e, failed = n, "accept failed (one line per 5 s)");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let proxied = config.trusted_proxies.contains(&remote.ip());
        let key = AddrKey::of(remote.ip());
        if !proxied {
            if let Some(left) = state.addrs.shut_out(key) {
                if let Some(n) = shut_out.due() {
                    tracing::info!(%remote, closed = n, left_s = left.as_secs(), "closed at accept: the address is shut out for abuse (one line per 5 s)");
                }
                continue;
            }
        }
        let max = config.max_http_connections;
        let held = state.http.take(max).or_else(|| {
            if !pool.evict_oldest() {
                return None;
            }
            if let Some(n) = evicted.due() {
                tracing::info!(%remote, limit = max, evicted = n, "HTTP connections full: closed the one idle longest to make room (one line per 5 s)");
            }
            state.http.take(max + EVICTION_SLACK)
        });
        let Some(held) = held else {
            if let Some(n) = over_global.due() {
                tracing::warn!(%remote, limit = max, closed = n, "refused at accept: too many HTTP connections, none of them idle (one line per 5 s)");
            }
            continue;
        };
        let per_addr = if proxied {
            None
        } else {
            match state.addrs.take(key, Kind::Http) {
                Ok(slot) => Some(slot),
                Err(limit) => {
                    if let Some(n) = over_addr.due() {
                        tracing::warn!(%remote, limit, closed = n, "refused at accept: too many HTTP connections from one address (one line per 5 s)");
                    }
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
        next_id += 1;
        let id = next_id;
        let evict = pool.add(id);
        let app = app.clone();
        let in_service = pool.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(remote));
            in_service.set_busy(id, true);
            let answer = app.clone().oneshot(req);
            let pool = in_service.clone();
            async move {
                let response = answer.await;
                pool.set_busy(id, false);
                response
            }
        });
        let http = http.clone();
        let mut down = state.shutdown.subscribe();
        let pool = pool.clone();
        let task_state = state.clone();
        state.spawn(async move {
            let _places = (held, per_addr);
            let result = tokio::select! {
                result = async {
                    let Some(io) = handshake(&task_state, tcp, remote).await else {
                        return Ok(());
                    };
                    let conn = http.serve_connection(TokioIo::new(io), service).with_upgrades();
                    tokio::pin!(conn);
                    tokio::select! {
                        result = conn.as_mut() => result,
                        () = async { let _ = down.wait_for(|&down| down).await; } => {
                            conn.as_mut().graceful_shutdown();
                            conn.await
                        }
                    }
                } => result,
                // It was idle (no request in progress, or still in its TLS
                // handshake) when picked: close it now, so its place is
                // free at once. (A browser retries a request that meets a
                // kept-alive connection closing.)
                () = evict.notified() => Ok(()),
            };
            pool.remove(id);
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
