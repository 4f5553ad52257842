//! A WebSocket client of the relay for the tests that speak the protocol:
//! connect, join, send, and read with a deadline.
#![allow(dead_code)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::common::{msg, Relay};

pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a message may take to arrive on loopback before the test fails;
/// also how long we wait to be sure one does not arrive.
pub const WAIT: Duration = Duration::from_millis(500);

impl Relay {
    pub async fn client(&self) -> Client {
        let url = format!("ws://{}/ws", self.addr);
        tokio_tungstenite::connect_async(url).await.unwrap().0
    }

    pub async fn health(&self) -> serde_json::Value {
        health_at(self.addr).await
    }
}

/// `/healthz` of the relay at `addr`, as JSON.
pub async fn health_at(addr: std::net::SocketAddr) -> serde_json::Value {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let body = raw.split("\r\n\r\n").nth(1).unwrap();
    serde_json::from_str(body).unwrap()
}

pub async fn next_text(client: &mut Client) -> String {
    loop {
        match tokio::time::timeout(WAIT, client.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return t.to_string(),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

pub async fn assert_silent(client: &mut Client) {
    if let Ok(msg) = tokio::time::timeout(WAIT, client.next()).await {
        panic!("expected nothing, got {msg:?}");
    }
}

pub async fn send(client: &mut Client, text: String) {
    client.send(Message::text(text)).await.unwrap();
}

pub async fn next_json(client: &mut Client) -> serde_json::Value {
    serde_json::from_str(&next_text(client).await).unwrap()
}

/// Reads the next message and checks it is a relay error with `code`.
pub async fn expect_error(client: &mut Client, code: &str) -> serde_json::Value {
    let m = next_json(client).await;
    assert_eq!(m["type"], "error", "{m}");
    assert_eq!(m["from"], "relay", "{m}");
    assert_eq!(m["code"], code, "{m}");
    assert!(m["message"].as_str().is_some_and(|s| s.len() > 10), "{m}");
    m
}

/// Sends `text` from `sender` and checks the relay refuses it with `code`.
pub async fn refused(sender: &mut Client, text: String, code: &str) -> serde_json::Value {
    send(sender, text).await;
    expect_error(sender, code).await
}

/// Sends `text` from `sender` and checks `receiver` gets it unchanged.
pub async fn relayed(sender: &mut Client, text: String, receiver: &mut Client) {
    send(sender, text.clone()).await;
    assert_eq!(next_text(receiver).await, text);
}

impl Relay {
    /// Alice and Bob in room "r"; Bob's join already read by Alice.
    pub async fn alice_and_bob(&self) -> (Client, Client) {
        let mut a = self.joined("r", "alice").await;
        let b = self.joined("r", "bob").await;
        next_text(&mut a).await;
        (a, b)
    }

    /// Connects and joins `room` as `id`; returns the client and the
    /// welcome's peer list.
    pub async fn join(&self, room: &str, id: &str) -> (Client, serde_json::Value) {
        let mut c = self.client().await;
        send(
            &mut c,
            msg(room, id, None, json!({"type": "join", "name": id})),
        )
        .await;
        let welcome = next_json(&mut c).await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        assert_eq!(welcome["to"], id);
        (c, welcome["peers"].clone())
    }

    pub async fn joined(&self, room: &str, id: &str) -> Client {
        self.join(room, id).await.0
    }
}

pub async fn closed(
    client: &mut Client,
) -> Option<tokio_tungstenite::tungstenite::protocol::CloseFrame> {
    loop {
        match tokio::time::timeout(Duration::from_secs(3), client.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => return frame,
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}
