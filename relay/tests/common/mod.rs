//! What both relay test files need: the relay in-process on a free
//! loopback port, and signaling messages built from JSON.
#![allow(dead_code)]

use std::net::SocketAddr;

use peercall_relay::{serve, Config, PerAddr};
use serde_json::json;
use tokio::sync::oneshot;

/// The relay, served in-process on 127.0.0.1 and a free port.
pub struct Relay {
    pub addr: SocketAddr,
    pub stop: Option<oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Relay {
    pub async fn start(config: Config) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, config, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task,
        }
    }
}

/// A message as a client sends it: the envelope plus `body`'s fields.
pub fn msg(room: &str, from: &str, to: Option<&str>, body: serde_json::Value) -> String {
    let mut v = json!({"v": 1, "room": room, "from": from});
    if let Some(to) = to {
        v["to"] = json!(to);
    }
    for (k, val) in body.as_object().unwrap() {
        v[k] = val.clone();
    }
    v.to_string()
}

/// Per-address limits high enough not to matter: for tests of other limits,
/// and for loads that all come from 127.0.0.1.
pub fn open_per_addr() -> PerAddr {
    PerAddr {
        http_connections: 10_000,
        websockets: 10_000,
        rooms: 10_000,
        joins_per_sec: 1e6,
        joins_burst: 1e6,
        ice_per_sec: 1e6,
        ice_burst: 1e6,
    }
}
