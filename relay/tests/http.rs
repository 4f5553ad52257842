//! The relay's HTTP side, in-process: the app's static files and the TURN
//! credentials.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use peercall_relay::{app, turn_credential, Config, TurnConfig};
use serde_json::json;
use tower::ServiceExt;

// --- static files -----------------------------------------------------------

const WASM: &str = "peercall-1a2b3c4d5e6f7a8b_bg.wasm";

fn dist() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("index.html"),
        "<!doctype html><title>peercall</title>",
    )
    .unwrap();
    std::fs::write(dir.path().join(WASM), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(dir.path().join("config.json"), "{}").unwrap();
    dir
}

async fn get(
    config: &Config,
    path: &str,
    accept_encoding: Option<&str>,
) -> axum::response::Response {
    let mut req = Request::get(path);
    if let Some(enc) = accept_encoding {
        req = req.header(header::ACCEPT_ENCODING, enc);
    }
    app(config.clone())
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

fn header_of(res: &axum::response::Response, name: header::HeaderName) -> &str {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

#[tokio::test]
async fn serves_the_app_with_types_and_cache_headers() {
    let dir = dist();
    let config = Config {
        static_dir: Some(dir.path().to_owned()),
        ..Config::default()
    };

    let index = get(&config, "/", None).await;
    assert_eq!(index.status(), StatusCode::OK);
    assert!(header_of(&index, header::CONTENT_TYPE).starts_with("text/html"));
    assert_eq!(header_of(&index, header::CACHE_CONTROL), "no-cache");
    let body = index.into_body().collect().await.unwrap().to_bytes();
    assert!(body.starts_with(b"<!doctype html>"));

    let wasm = get(&config, &format!("/{WASM}"), None).await;
    assert_eq!(wasm.status(), StatusCode::OK);
    assert_eq!(header_of(&wasm, header::CONTENT_TYPE), "application/wasm");
    assert_eq!(
        header_of(&wasm, header::CACHE_CONTROL),
        "public, max-age=31536000, immutable"
    );

    let config_json = get(&config, "/config.json", None).await;
    assert_eq!(
        header_of(&config_json, header::CONTENT_TYPE),
        "application/json"
    );
    assert_eq!(header_of(&config_json, header::CACHE_CONTROL), "no-cache");

    // Unknown paths get the app (it routes on the client).
    let deep = get(&config, "/some/room", None).await;
    assert_eq!(deep.status(), StatusCode::OK);
    assert!(header_of(&deep, header::CONTENT_TYPE).starts_with("text/html"));

    // Compressed where the client accepts it.
    let big = "<p>peercall</p>".repeat(200);
    std::fs::write(dir.path().join("index.html"), &big).unwrap();
    let gz = get(&config, "/", Some("gzip")).await;
    assert_eq!(header_of(&gz, header::CONTENT_ENCODING), "gzip");
}

#[tokio::test]
async fn without_a_static_dir_only_the_api_is_served() {
    let res = get(&Config::default(), "/", None).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let health = get(&Config::default(), "/healthz", None).await;
    assert_eq!(health.status(), StatusCode::OK);
}

// --- TURN credentials ---------------------------------------------------------

async fn json_body(res: axum::response::Response) -> serde_json::Value {
    serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap()
}

#[tokio::test]
async fn ice_servers_hands_out_short_lived_turn_credentials() {
    let config = Config {
        turn: Some(TurnConfig {
            secret: "s3cret".into(),
            urls: vec![
                "turn:127.0.0.1:3478?transport=udp".into(),
                "turn:127.0.0.1:3478?transport=tcp".into(),
            ],
            stun_urls: vec!["stun:127.0.0.1:3478".into()],
            ttl: Duration::from_secs(600),
        }),
        ..Config::default()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let res = get(&config, "/ice-servers?id=alice-1", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header_of(&res, header::CACHE_CONTROL), "no-store");
    assert_eq!(header_of(&res, header::ACCESS_CONTROL_ALLOW_ORIGIN), "*");
    let body = json_body(res).await;
    assert_eq!(body["ttl"], 600);
    let expires = body["expiresAt"].as_u64().unwrap();
    assert!(
        (now + 599..=now + 601).contains(&expires),
        "{expires} vs {now}"
    );
    assert_eq!(
        body["iceServers"][0],
        json!({"urls": ["stun:127.0.0.1:3478"]})
    );
    let turn = &body["iceServers"][1];
    assert_eq!(turn["urls"][1], "turn:127.0.0.1:3478?transport=tcp");
    // alice-1 is in no room: her id is left out of the username (an id
    // goes in only for a peer joined from the same address: tests/hostile.rs).
    let username = turn["username"].as_str().unwrap();
    assert_eq!(username, expires.to_string());
    // The credential is what coturn computes from the shared secret.
    assert_eq!(
        turn["credential"],
        turn_credential("s3cret", expires, None).1
    );

    // A bad id is left out of the username rather than passed to coturn.
    let body = json_body(get(&config, "/ice-servers?id=a:b&room=r", None).await).await;
    let username = body["iceServers"][1]["username"].as_str().unwrap();
    assert!(!username.contains(':'), "{username}");
    let body = json_body(get(&config, "/ice-servers", None).await).await;
    assert!(body["iceServers"][1]["credential"].is_string());
}

#[tokio::test]
async fn ice_servers_without_turn_is_a_404_that_says_so() {
    let res = get(&Config::default(), "/ice-servers", None).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(header_of(&res, header::ACCESS_CONTROL_ALLOW_ORIGIN), "*");
    let body = json_body(res).await;
    assert_eq!(body["error"], "no_turn");
    assert!(body["message"].as_str().unwrap().contains("--turn-secret"));
}

#[tokio::test]
async fn fingerprinted_assets_are_served_precompressed_from_memory() {
    let dir = dist();
    let js = "peercall-0123456789abcdef.js";
    let source: String = (0..4000)
        .map(|i| format!("export const v{i} = {i};\n"))
        .collect();
    std::fs::write(dir.path().join(js), &source).unwrap();
    let config = Config {
        static_dir: Some(dir.path().to_owned()),
        ..Config::default()
    };
    // One router, so its background compression fills the cache it serves.
    let router = app(config);
    let fetch = |enc: &'static str, method: &'static str| {
        let router = router.clone();
        async move {
            let req = Request::builder()
                .method(method)
                .uri(format!("/{js}"))
                .header(header::ACCEPT_ENCODING, enc)
                .body(Body::empty())
                .unwrap();
            router.oneshot(req).await.unwrap()
        }
    };
    // Compressed on the fly (no length known up front) until the
    // background pass is done; then from memory, with its length.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let br = loop {
        let res = fetch("gzip, deflate, br", "GET").await;
        assert_eq!(header_of(&res, header::CONTENT_ENCODING), "br");
        if res.headers().contains_key(header::CONTENT_LENGTH) {
            break res;
        }
        assert!(std::time::Instant::now() < deadline, "never precompressed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(header_of(&br, header::CONTENT_TYPE), "text/javascript");
    assert_eq!(header_of(&br, header::VARY), "accept-encoding");
    assert_eq!(
        header_of(&br, header::CACHE_CONTROL),
        "public, max-age=31536000, immutable"
    );
    let body = br.into_body().collect().await.unwrap().to_bytes();
    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut brotli::Decompressor::new(&body[..], 4096), &mut plain)
        .unwrap();
    assert_eq!(plain, source.as_bytes());
    assert!(
        body.len() * 5 < source.len(),
        "brotli 11 compresses this well"
    );

    let gz = fetch("gzip", "GET").await;
    assert_eq!(header_of(&gz, header::CONTENT_ENCODING), "gzip");
    let body = gz.into_body().collect().await.unwrap().to_bytes();
    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut plain).unwrap();
    assert_eq!(plain, source.as_bytes());

    let head = fetch("br", "HEAD").await;
    assert_eq!(head.status(), StatusCode::OK);
    assert!(
        header_of(&head, header::CONTENT_LENGTH)
            .parse::<usize>()
            .unwrap()
            > 0
    );
    assert!(head
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .is_empty());

    // A client that takes no compression gets the file as it is.
    let identity = fetch("identity", "GET").await;
    assert_eq!(header_of(&identity, header::CONTENT_ENCODING), "");
    let body = identity.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, source.as_bytes());
}
