//! peercall's relay: the signaling WebSocket and, optionally, the built web
//! app as static files, from one process.
//!
//! [`app`] builds the whole HTTP service from a [`Config`] and is kept apart
//! from `main` so tests can drive it in-process or bind it to port 0.
#![forbid(unsafe_code)]

mod relay;
mod statics;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

pub use peercall_protocol::WS_PATH;

/// What the relay is told at start.
#[derive(Clone, Debug)]
pub struct Config {
    /// Folder with the built web app (`dist/`), served at `/`. `None` serves
    /// only the WebSocket and the health endpoint.
    pub static_dir: Option<PathBuf>,
    /// The largest text message a client may send, in bytes.
    pub max_message_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            static_dir: None,
            max_message_bytes: 64 * 1024,
        }
    }
}

/// Shared state of one relay process.
#[derive(Debug)]
pub struct State {
    config: Config,
    hub: relay::Hub,
}

/// The relay's HTTP service: `/ws` (signaling), `/healthz`, and the static
/// app when [`Config::static_dir`] is set.
pub fn app(config: Config) -> Router {
    router(Arc::new(State {
        hub: relay::Hub::new(),
        config,
    }))
}

fn router(state: Arc<State>) -> Router {
    let mut router = Router::new()
        .route(WS_PATH, get(relay::upgrade))
        .route("/healthz", get(health))
        .with_state(state.clone());
    if let Some(dir) = &state.config.static_dir {
        router = router.fallback_service(statics::service(dir));
    }
    router.layer(TraceLayer::new_for_http())
}

async fn health(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
) -> Json<serde_json::Value> {
    Json(json!({
        "status": "ok",
        "protocol": peercall_protocol::PROTOCOL_VERSION,
        "connections": state.hub.connections(),
    }))
}

/// Serves [`app`] on `listener` until `shutdown` resolves; then every
/// WebSocket is closed with code 1001 ("going away", so clients know to
/// reconnect) and open HTTP requests may finish.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = Arc::new(State {
        hub: relay::Hub::new(),
        config,
    });
    let service = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(async move {
            shutdown.await;
            state.hub.shut_down();
        })
        .await
}
