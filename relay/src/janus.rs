//! A client for Janus's WebSocket API (the `janus-protocol` subprotocol):
//! one session per [`Session`], plugin handles on it, requests matched to
//! their replies by transaction, everything else (plugin events, `webrtcup`,
//! `hangup`, `media`) handed out in order by [`Session::next_event`], and a
//! keepalive well within Janus's `session_timeout` (60 s by default).
//!
//! The relay is the only thing that talks to Janus; browsers never see
//! this API (`phone` turns it into peercall's protocol).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use crate::lock;

/// How long a request may wait for its reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the session is kept alive.
const KEEPALIVE: Duration = Duration::from_secs(25);

/// What went wrong talking to Janus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JanusError {
    /// No WebSocket to it (refused, unreachable, not Janus).
    Connection(String),
    /// It answered with an error (`403` wrong API secret, `458` no such
    /// session, ...).
    Refused {
        /// Janus's error code.
        code: i64,
        /// Its words.
        reason: String,
    },
    /// No reply in time.
    Timeout,
    /// The connection closed.
    Closed,
    /// A reply without what it should hold.
    Malformed(String),
}

impl std::fmt::Display for JanusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JanusError::Connection(e) => write!(f, "cannot connect to Janus: {e}"),
            JanusError::Refused { code, reason } => write!(f, "Janus refused ({code}): {reason}"),
            JanusError::Timeout => f.write_str("Janus did not answer in time"),
            JanusError::Closed => f.write_str("the connection to Janus closed"),
            JanusError::Malformed(e) => write!(f, "unexpected reply from Janus: {e}"),
        }
    }
}

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>;

/// One Janus session over its own WebSocket. Dropping it closes both
/// (Janus then frees the session and its handles).
pub struct Session {
    id: u64,
    secret: Option<String>,
    out: mpsc::UnboundedSender<Message>,
    pending: Pending,
    events: mpsc::UnboundedReceiver<Value>,
    next: AtomicU64,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Session {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Session {
    /// Connects to `url` (`ws://host:port`) and creates a session, with
    /// `secret` as the API secret if Janus has one, within `limit`.
    pub async fn open(
        url: &str,
        secret: Option<&str>,
        limit: Duration,
    ) -> Result<Self, JanusError> {
        let mut request = url
            .into_client_request()
            .map_err(|e| JanusError::Connection(e.to_string()))?;
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("janus-protocol"),
        );
        let (ws, _) = tokio::time::timeout(limit, tokio_tungstenite::connect_async(request))
            .await
            .map_err(|_| JanusError::Connection(format!("no answer from {url} in {limit:?}")))?
            .map_err(|e| JanusError::Connection(format!("{url}: {e}")))?;
        let (mut sink, mut stream) = ws.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let (events_tx, events) = mpsc::unbounded_channel();
        let pending: Pending = Arc::default();
        let writer = tokio::spawn(async move {
            while let Some(message) = out_rx.recv().await {
                if sink.send(message).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let reader = {
            let pending = pending.clone();
            tokio::spawn(async move {
                while let Some(Ok(message)) = stream.next().await {
                    let Message::Text(text) = message else {
                        continue;
                    };
                    let Ok(value) = serde_json::from_str::<Value>(&text) else {
                        tracing::warn!(text = %text, "Janus sent something that is not JSON");
                        continue;
                    };
                    if let Some(reply) = take_pending(&pending, &value) {
                        let _ = reply.send(value);
                    } else if events_tx.send(value).is_err() {
                        break;
                    }
                }
                // Dropping events_tx ends next_event(); dropping the
                // pending replies fails their requests.
                lock(&pending).clear();
            })
        };
        let mut session = Self {
            id: 0,
            secret: secret.map(str::to_owned),
            out,
            pending,
            events,
            next: AtomicU64::new(1),
            tasks: vec![writer, reader],
        };
        let created = session.request(json!({"janus": "create"})).await?;
        session.id = created["data"]["id"]
            .as_u64()
            .ok_or_else(|| JanusError::Malformed(format!("create gave {created}")))?;
        let keepalive = {
            let out = session.out.clone();
            let (id, secret) = (session.id, session.secret.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                loop {
                    tokio::time::sleep(KEEPALIVE).await;
                    n += 1;
                    let mut message = json!({"janus": "keepalive", "session_id": id,
                        "transaction": format!("keepalive-{n}")});
                    if let Some(secret) = &secret {
                        message["apisecret"] = json!(secret);
                    }
                    if out.send(Message::text(message.to_string())).is_err() {
                        break;
                    }
                }
            })
        };
        session.tasks.push(keepalive);
        Ok(session)
    }

    /// Attaches a handle to `plugin` (e.g. `janus.plugin.sip`).
    pub async fn attach(&self, plugin: &str) -> Result<u64, JanusError> {
        let reply = self
            .request(json!({"janus": "attach", "plugin": plugin, "session_id": self.id}))
            .await?;
        reply["data"]["id"]
            .as_u64()
            .ok_or_else(|| JanusError::Malformed(format!("attach gave {reply}")))
    }

    /// Sends `body` (and `jsep`, if any) to the plugin on `handle`. The
    /// plugin's answer comes later as an event; this waits for Janus's ack.
    pub async fn message(
        &self,
        handle: u64,
        body: Value,
        jsep: Option<Value>,
    ) -> Result<(), JanusError> {
        let mut message = json!({"janus": "message", "session_id": self.id,
            "handle_id": handle, "body": body});
        if let Some(jsep) = jsep {
            message["jsep"] = jsep;
        }
        self.request(message).await.map(drop)
    }

    /// Sends a synchronous plugin request (`create`, `destroy`, ...) on
    /// `handle` and gives the plugin's reply (`plugindata.data`); an
    /// `error_code` in it is a [`JanusError::Refused`].
    pub async fn call(&self, handle: u64, body: Value) -> Result<Value, JanusError> {
        let reply = self
            .request(json!({"janus": "message", "session_id": self.id,
                "handle_id": handle, "body": body}))
            .await?;
        let data = reply["plugindata"]["data"].clone();
        match data["error_code"].as_i64() {
            Some(code) => Err(JanusError::Refused {
                code,
                reason: data["error"]
                    .as_str()
                    .unwrap_or("no reason given")
                    .to_owned(),
            }),
            None => Ok(data),
        }
    }

    /// Detaches `handle` (its PeerConnection closes).
    pub async fn detach(&self, handle: u64) -> Result<(), JanusError> {
        self.request(json!({"janus": "detach", "session_id": self.id, "handle_id": handle}))
            .await
            .map(drop)
    }

    /// The next event for this session, in order; `None` once the
    /// connection to Janus is gone.
    pub async fn next_event(&mut self) -> Option<Value> {
        self.events.recv().await
    }

    /// Ends the session (its handles go with it).
    pub async fn destroy(&self) {
        let _ = self
            .request(json!({"janus": "destroy", "session_id": self.id}))
            .await;
    }

    /// Sends `message` with a new transaction and waits for the reply
    /// (`success`, `ack` or `error`).
    async fn request(&self, mut message: Value) -> Result<Value, JanusError> {
        let transaction = format!("t{}", self.next.fetch_add(1, Ordering::Relaxed));
        message["transaction"] = json!(transaction);
        if let Some(secret) = &self.secret {
            message["apisecret"] = json!(secret);
        }
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(transaction.clone(), tx);
        if self.out.send(Message::text(message.to_string())).is_err() {
            return Err(JanusError::Closed);
        }
        let reply = match tokio::time::timeout(REPLY_TIMEOUT, rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => return Err(JanusError::Closed),
            Err(_) => {
                lock(&self.pending).remove(&transaction);
                return Err(JanusError::Timeout);
            }
        };
        match reply["janus"].as_str() {
            Some("success" | "ack") => Ok(reply),
            Some("error") => Err(JanusError::Refused {
                code: reply["error"]["code"].as_i64().unwrap_or(0),
                reason: reply["error"]["reason"]
                    .as_str()
                    .unwrap_or("no reason given")
                    .to_owned(),
            }),
            _ => Err(JanusError::Malformed(reply.to_string())),
        }
    }
}

/// The waiting request a reply from Janus answers, if it is one: a
/// `success`, `ack` or `error` with the transaction of a request still
/// waiting. (A plugin's later `event` carries the same transaction but
/// goes to the events, as its request was acked already.)
fn take_pending(pending: &Pending, value: &Value) -> Option<oneshot::Sender<Value>> {
    let kind = value["janus"].as_str()?;
    if !matches!(kind, "success" | "ack" | "error") {
        return None;
    }
    let transaction = value["transaction"].as_str()?;
    lock(pending).remove(transaction)
}
