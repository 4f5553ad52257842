//! Facing the internet: which origins may use the relay, the headers the
//! app is served with, and TLS (docs/PROTOCOL.md 5.10, 5.11).

#[path = "common/client.rs"]
mod client;
mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use common::Relay;
use peercall_relay::{app, Config, TurnConfig};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Error as WsError;
use tower::ServiceExt;

fn dist() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("index.html"),
        "<!doctype html><title>peercall</title>",
    )
    .unwrap();
    dir
}

/// Opens a WebSocket to `relay` as a page of `origin` would (`None`: as a
/// program that sends no Origin); the HTTP status it got.
async fn upgrade_status(relay: &Relay, host: &str, origin: Option<&str>) -> u16 {
    let mut req = format!("ws://{}/ws", relay.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert(header::HOST, host.parse().unwrap());
    if let Some(origin) = origin {
        req.headers_mut()
            .insert(header::ORIGIN, origin.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((_, res)) => res.status().as_u16(),
        Err(WsError::Http(res)) => res.status().as_u16(),
        Err(e) => panic!("upgrade failed otherwise: {e}"),
    }
}

#[tokio::test]
async fn a_relay_serving_the_app_takes_websockets_only_from_its_own_pages() {
    let dir = dist();
    let relay = Relay::start(Config {
        static_dir: Some(dir.path().to_owned()),
        allowed_origins: vec!["https://app.example.com".into()],
        ..Config::default()
    })
    .await;
    let host = relay.addr.to_string();
    let own = format!("http://{host}");
    assert_eq!(upgrade_status(&relay, &host, Some(&own)).await, 101);
    assert_eq!(
        upgrade_status(&relay, &host, Some("https://app.example.com")).await,
        101
    );
    assert_eq!(upgrade_status(&relay, &host, None).await, 101);
    for foreign in [
        "https://evil.example",
        "http://127.0.0.1:1",
        "null",
        "https://app.example.com.evil.example",
    ] {
        assert_eq!(
            upgrade_status(&relay, &host, Some(foreign)).await,
            403,
            "{foreign}"
        );
    }
    // Nothing refused holds a place.
    assert_eq!(relay.health().await["connections"], 0);
}

#[tokio::test]
async fn a_relay_without_the_app_takes_any_origin_unless_told_otherwise() {
    let open = Relay::start(Config::default()).await;
    let host = open.addr.to_string();
    assert_eq!(
        upgrade_status(&open, &host, Some("https://anywhere.example")).await,
        101
    );
    let strict = Relay::start(Config {
        allowed_origins: vec!["https://app.example.com".into()],
        ..Config::default()
    })
    .await;
    let host = strict.addr.to_string();
    assert_eq!(
        upgrade_status(&strict, &host, Some("https://app.example.com")).await,
        101
    );
    assert_eq!(
        upgrade_status(&strict, &host, Some("https://anywhere.example")).await,
        403
    );
}

#[test]
fn a_bad_allowed_origin_is_refused_at_start_in_words() {
    let config = Config {
        allowed_origins: vec!["app.example.com/path".into()],
        ..Config::default()
    };
    let e = config.validate().unwrap_err();
    assert!(
        e.contains("--allowed-origin") && e.contains("scheme://host"),
        "{e}"
    );
}

async fn ice(config: &Config, origin: Option<&str>) -> axum::response::Response {
    let mut req = Request::get("/ice-servers").header(header::HOST, "relay.example.com");
    if let Some(origin) = origin {
        req = req.header(header::ORIGIN, origin);
    }
    app(config.clone())
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

fn allow_origin(res: &axum::response::Response) -> Option<&str> {
    res.headers()
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn ice_servers_cors_follows_the_same_origins() {
    let dir = dist();
    let config = Config {
        static_dir: Some(dir.path().to_owned()),
        allowed_origins: vec!["https://app.example.com".into()],
        turn: Some(TurnConfig {
            secret: "s".into(),
            urls: vec!["turn:127.0.0.1:3478".into()],
            stun_urls: vec![],
            ttl: Duration::from_secs(60),
        }),
        ..Config::default()
    };
    let own = ice(&config, Some("https://relay.example.com")).await;
    assert_eq!(own.status(), StatusCode::OK);
    assert_eq!(allow_origin(&own), Some("https://relay.example.com"));
    assert_eq!(own.headers()[header::VARY], "Origin");
    let listed = ice(&config, Some("https://app.example.com")).await;
    assert_eq!(listed.status(), StatusCode::OK);
    assert_eq!(allow_origin(&listed), Some("https://app.example.com"));
    // Same-origin fetches send no Origin: served, nothing to allow.
    let same = ice(&config, None).await;
    assert_eq!(same.status(), StatusCode::OK);
    assert_eq!(allow_origin(&same), None);
    let foreign = ice(&config, Some("https://evil.example")).await;
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    assert_eq!(allow_origin(&foreign), None);
    let body = foreign.into_body();
    let body = http_body_util::BodyExt::collect(body)
        .await
        .unwrap()
        .to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"], "origin_not_allowed");

    // Not serving the app: any page may read it.
    let open = Config {
        static_dir: None,
        allowed_origins: vec![],
        ..config
    };
    let res = ice(&open, Some("https://anywhere.example")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(allow_origin(&res), Some("*"));
}
