//! Facing the internet: which origins may use the relay, the headers the
//! app is served with, and TLS (docs/PROTOCOL.md 5.10, 5.11).

#[path = "common/client.rs"]
mod client;
mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use common::Relay;
use peercall_relay::tls::{Tls, RELOAD_EVERY};
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

#[test]
fn a_room_on_the_sfu_is_held_to_what_one_subscription_message_carries() {
    let mut config = Config {
        phone: std::sync::Arc::new(peercall_relay::PhoneConfig {
            janus: vec!["ws://127.0.0.1:8188".into()],
            ..Default::default()
        }),
        max_peers_per_room: peercall_relay::MAX_SFU_PEERS,
        ..Config::default()
    };
    config.validate().unwrap();
    config.max_peers_per_room += 1;
    let e = config.validate().unwrap_err();
    assert!(e.contains("--max-peers 31 with --janus"), "{e}");
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

// --- headers for the app ------------------------------------------------------

async fn get(config: &Config, path: &str) -> axum::response::Response {
    app(config.clone())
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap()
}

fn header<'a>(res: &'a axum::response::Response, name: &str) -> &'a str {
    res.headers().get(name).map_or("", |v| v.to_str().unwrap())
}

#[tokio::test]
async fn pages_carry_a_policy_naming_their_inline_scripts_and_relays() {
    let dir = tempfile::tempdir().unwrap();
    let script = "import init from '/peercall-1a2b3c4d5e6f7a8b.js'; await init();";
    std::fs::write(
        dir.path().join("index.html"),
        format!("<!doctype html><title>peercall</title><script type=\"module\">{script}</script>"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"relay": ["wss://r1.example.com/ws", "wss://r2.example.com/ws"]}"#,
    )
    .unwrap();
    let config = Config {
        static_dir: Some(dir.path().to_owned()),
        connect_src: vec!["wss://extra.example.com".into()],
        ..Config::default()
    };
    // sha256 of the script, as a browser computes it over the text between
    // the tags: printf '%s' "$script" | openssl dgst -sha256 -binary | base64
    let hash = {
        use base64::Engine;
        use sha2::Digest;
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(script))
    };
    for path in ["/", "/index.html", "/some/route"] {
        let res = get(&config, path).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let csp = header(&res, "content-security-policy").to_owned();
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(
            csp.contains(&format!(
                "script-src 'self' 'wasm-unsafe-eval' 'sha256-{hash}'"
            )),
            "{csp}"
        );
        assert!(
            csp.contains(
                "connect-src 'self' blob: wss://r1.example.com wss://r2.example.com wss://extra.example.com;"
            ),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(
            header(&res, "permissions-policy"),
            "camera=(self), microphone=(self), display-capture=(self), fullscreen=(self)"
        );
        assert_eq!(header(&res, "x-content-type-options"), "nosniff");
        assert_eq!(header(&res, "referrer-policy"), "no-referrer");
        // The page itself is served whole.
        let body = http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert!(String::from_utf8_lossy(&body).contains(script));
    }
    // Not a page: no policy, but the headers every response has.
    let res = get(&config, "/config.json").await;
    assert_eq!(header(&res, "content-security-policy"), "");
    assert_eq!(header(&res, "x-content-type-options"), "nosniff");
    let res = get(&config, "/healthz").await;
    assert_eq!(header(&res, "referrer-policy"), "no-referrer");

    // A changed config.json is in the next page's policy.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"relay": "wss://r3.example.com/ws"}"#,
    )
    .unwrap();
    let res = get(&config, "/").await;
    let csp = header(&res, "content-security-policy");
    assert!(
        csp.contains("connect-src 'self' blob: wss://r3.example.com wss://extra.example.com;"),
        "{csp}"
    );
}

#[tokio::test]
async fn csp_reports_are_counted_and_junk_is_refused() {
    let dir = dist();
    let relay = Relay::start(Config {
        static_dir: Some(dir.path().to_owned()),
        ..Config::default()
    })
    .await;
    let report = r#"{"csp-report":{"document-uri":"http://x/","violated-directive":"connect-src","blocked-uri":"https://evil.example"}}"#;
    assert_eq!(post_status(relay.addr, "/csp-report", report).await, 204);
    assert_eq!(
        post_status(relay.addr, "/csp-report", "not json").await,
        400
    );
    assert_eq!(
        post_status(relay.addr, "/csp-report", &"x".repeat(100_000)).await,
        413
    );
    assert_eq!(relay.health().await["csp_reports"], 1);
}

/// POSTs `body` to `path` over a fresh connection; the response's status.
async fn post_status(addr: std::net::SocketAddr, path: &str, body: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/csp-report\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    // The relay may answer 413 and close before taking all of a big body.
    let _ = tcp.write_all(body.as_bytes()).await;
    let mut raw = Vec::new();
    let _ = tcp.read_to_end(&mut raw).await;
    let raw = String::from_utf8_lossy(&raw);
    raw.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

// --- TLS ---------------------------------------------------------------------

mod tls {
    use std::net::SocketAddr;
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio_rustls::client::TlsStream;

    /// A test CA, and certificates from it for localhost and 127.0.0.1.
    pub struct Ca {
        cert: rcgen::Certificate,
        key: rcgen::KeyPair,
    }

    impl Ca {
        pub fn new() -> Self {
            let mut params = rcgen::CertificateParams::default();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "peercall test CA");
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = params.self_signed(&key).unwrap();
            Self { cert, key }
        }

        pub fn pem(&self) -> String {
            self.cert.pem()
        }

        /// Writes a leaf's chain and key to `cert` and `key`; its DER.
        pub fn issue(&self, cert: &Path, key: &Path) -> Vec<u8> {
            let params =
                rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                    .unwrap();
            let leaf_key = rcgen::KeyPair::generate().unwrap();
            let leaf = params.signed_by(&leaf_key, &self.cert, &self.key).unwrap();
            // Written next to the target, then renamed: as certbot does.
            let tmp = cert.with_extension("new");
            std::fs::write(&tmp, leaf.pem() + &self.cert.pem()).unwrap();
            std::fs::rename(&tmp, cert).unwrap();
            std::fs::write(&tmp, leaf_key.serialize_pem()).unwrap();
            std::fs::rename(&tmp, key).unwrap();
            leaf.der().to_vec()
        }
    }

    pub fn client(ca_pem: &str) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    pub async fn connect(
        connector: &tokio_rustls::TlsConnector,
        addr: SocketAddr,
        name: &str,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(addr).await?;
        connector
            .connect(ServerName::try_from(name.to_owned()).unwrap(), tcp)
            .await
    }

    /// The leaf certificate the server showed.
    pub fn shown(stream: &TlsStream<TcpStream>) -> Vec<u8> {
        stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    }

    /// A GET on a kept-alive connection; the response head and body.
    pub async fn get(stream: &mut TlsStream<TcpStream>, path: &str) -> String {
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        // healthz is small: read until the JSON closes.
        while !String::from_utf8_lossy(&raw).trim_end().ends_with('}') {
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
                .await
                .expect("a response")
                .unwrap();
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&raw));
            raw.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&raw).into_owned()
    }
}

#[tokio::test]
async fn a_certificate_replaced_on_disk_goes_to_new_connections_only() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (
        dir.path().join("fullchain.pem"),
        dir.path().join("privkey.pem"),
    );
    let ca = tls::Ca::new();
    let first = ca.issue(&cert, &key);
    let relay = Relay::start(Config {
        tls: Some(Tls::Files {
            cert: cert.clone(),
            key: key.clone(),
        }),
        ..Config::default()
    })
    .await;
    let client = tls::client(&ca.pem());
    let mut old = tls::connect(&client, relay.addr, "localhost")
        .await
        .unwrap();
    assert_eq!(tls::shown(&old), first);
    let res = tls::get(&mut old, "/healthz").await;
    assert!(res.contains("\"status\":\"ok\""), "{res}");
    assert!(
        res.to_ascii_lowercase()
            .contains("strict-transport-security: max-age=31536000"),
        "{res}"
    );
    // By IP address too.
    let by_ip = tls::connect(&client, relay.addr, "127.0.0.1")
        .await
        .unwrap();
    assert_eq!(tls::shown(&by_ip), first);

    // A half-written pair (a key that is not the certificate's) is not
    // taken: the old certificate stays.
    std::fs::write(&key, rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap();
    tokio::time::sleep(RELOAD_EVERY * 2).await;
    let during = tls::connect(&client, relay.addr, "localhost")
        .await
        .unwrap();
    assert_eq!(tls::shown(&during), first);

    let second = ca.issue(&cert, &key);
    assert_ne!(first, second);
    let start = std::time::Instant::now();
    loop {
        let new = tls::connect(&client, relay.addr, "localhost")
            .await
            .unwrap();
        if tls::shown(&new) == second {
            break;
        }
        assert!(
            start.elapsed() < RELOAD_EVERY * 3,
            "the new certificate was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The connection opened before goes on, with its certificate.
    assert_eq!(tls::shown(&old), first);
    let res = tls::get(&mut old, "/healthz").await;
    assert!(res.contains("\"status\":\"ok\""), "{res}");
}

#[tokio::test]
async fn a_stalled_handshake_is_dropped_at_the_deadline_and_handshakes_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let ca = tls::Ca::new();
    ca.issue(&cert, &key);
    let relay = Relay::start(Config {
        tls: Some(Tls::Files { cert, key }),
        tls_handshake_timeout: Duration::from_secs(1),
        max_tls_handshakes: 2,
        ..Config::default()
    })
    .await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Two clients that start a handshake and stall: half a ClientHello.
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut tcp = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
        tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
            .await
            .unwrap();
        stalled.push(tcp);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A third is closed at once: two handshakes are in progress.
    let mut third = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf))
        .await
        .expect("closed at once")
        .unwrap_or(0);
    assert_eq!(n, 0);
    // The stalled ones are dropped at the deadline (1 s), not before.
    let start = std::time::Instant::now();
    for tcp in &mut stalled {
        let n = tokio::time::timeout(Duration::from_secs(3), tcp.read(&mut buf))
            .await
            .expect("dropped at the deadline")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
    let waited = start.elapsed() + Duration::from_millis(200);
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    // Then a real client gets in.
    let client = tls::client(&ca.pem());
    let mut ok = tls::connect(&client, relay.addr, "localhost")
        .await
        .unwrap();
    assert!(tls::get(&mut ok, "/healthz")
        .await
        .contains("\"status\":\"ok\""));
}

#[tokio::test]
async fn self_signed_makes_a_local_ca_once_and_a_certificate_for_this_machine() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        tls: Some(Tls::SelfSigned {
            dir: dir.path().to_owned(),
        }),
        ..Config::default()
    };
    // As the binary does: checked (the CA made) before it listens.
    let name = peercall_relay::tls::check(config.tls.as_ref().unwrap()).unwrap();
    assert!(!name.is_empty());
    let relay = Relay::start(config.clone()).await;
    let ca = std::fs::read_to_string(dir.path().join("ca.pem")).unwrap();
    let client = tls::client(&ca);
    for name in ["localhost", "127.0.0.1"] {
        let mut s = tls::connect(&client, relay.addr, name).await.unwrap();
        let res = tls::get(&mut s, "/healthz").await;
        assert!(res.contains("\"status\":\"ok\""), "{res}");
        // A trial on a LAN: no HSTS to stick to the name.
        assert!(
            !res.to_ascii_lowercase().contains("strict-transport"),
            "{res}"
        );
    }
    // Started again: the same CA, so a browser that trusts it still does.
    let again = Relay::start(config).await;
    assert_eq!(
        std::fs::read_to_string(dir.path().join("ca.pem")).unwrap(),
        ca
    );
    let mut s = tls::connect(&client, again.addr, "localhost")
        .await
        .unwrap();
    assert!(tls::get(&mut s, "/healthz")
        .await
        .contains("\"status\":\"ok\""));
    // Its key is for the owner only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("ca-key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }
}

#[test]
fn tls_files_that_do_not_load_are_refused_at_start_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let missing = Tls::Files {
        cert: dir.path().join("none.pem"),
        key: dir.path().join("none-key.pem"),
    };
    let e = peercall_relay::tls::check(&missing).unwrap_err();
    assert!(e.contains("--tls-cert") && e.contains("none.pem"), "{e}");
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    tls::Ca::new().issue(&cert, &key);
    std::fs::write(&key, rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let e = peercall_relay::tls::check(&Tls::Files { cert, key }).unwrap_err();
    assert!(e.contains("do not go together"), "{e}");
}

#[tokio::test]
async fn plain_http_beside_https_redirects_every_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(peercall_relay::redirect::serve(
        listener,
        8443,
        Duration::from_secs(1),
        async {
            let _ = stopped.await;
        },
    ));
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /some/room?x=1 HTTP/1.1\r\nHost: call.example.com\r\n\r\n")
        .await
        .unwrap();
    let mut raw = String::new();
    tcp.read_to_string(&mut raw).await.unwrap();
    assert!(raw.starts_with("HTTP/1.1 308"), "{raw}");
    assert!(
        raw.to_ascii_lowercase()
            .contains("location: https://call.example.com:8443/some/room?x=1"),
        "{raw}"
    );
    // A client that sends nothing is closed at the header deadline.
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(3), idle.read(&mut buf))
        .await
        .expect("closed at the deadline")
        .unwrap_or(0);
    assert!(n == 0 || String::from_utf8_lossy(&buf[..n]).contains("408"));
    drop(stop);
    server.await.unwrap();
}
