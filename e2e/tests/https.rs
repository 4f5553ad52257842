//! HTTPS built into the relay, end to end: a certificate from a real ACME
//! CA (Debian's pebble), two headless Chromiums calling each other over
//! `https://` and `wss://` on a name that is not localhost, the
//! certificate renewed as it nears expiry, and kept across a restart.

use std::time::{Duration, Instant};

use peercall_e2e::call::{assert_receiving, start_call, wait_connected, LIMIT};
use peercall_e2e::{free_port, openssl, spki_hash, Browser, Kind, Pebble, Relay};

const NAME: &str = "relay.test";
/// Certificates live this long (seconds); rustls-acme renews at two thirds.
const VALIDITY: u64 = 30;

/// The serial of the certificate the relay on `port` shows for NAME, or
/// `None` while it has none (still ordering).
fn served_serial(port: u16) -> Option<String> {
    let out = std::process::Command::new("openssl")
        .args(["s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-servername", NAME])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let serial = openssl(&["x509", "-noout", "-serial"], Some(&out.stdout)).ok()?;
    Some(String::from_utf8_lossy(&serial).trim().to_owned())
}

/// `/healthz` over HTTPS, trusting only `root` (the certificate must
/// verify for NAME), as JSON.
fn health(port: u16, root: &std::path::Path) -> Result<serde_json::Value, String> {
    let out = std::process::Command::new("curl")
        .args(["-fsS", "--max-time", "10", "--cacert"])
        .arg(root)
        .arg("--resolve")
        .arg(format!("{NAME}:{port}:127.0.0.1"))
        .arg(format!("https://{NAME}:{port}/healthz"))
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

/// Waits until the relay shows a certificate whose serial is not `not`.
async fn until_serial_other_than(port: u16, not: Option<&str>, within: Duration) -> String {
    let start = Instant::now();
    loop {
        if let Some(serial) = served_serial(port) {
            if Some(serial.as_str()) != not {
                return serial;
            }
        }
        assert!(
            start.elapsed() < within,
            "no new certificate within {within:?} (still {not:?})"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_call_over_https_with_a_certificate_from_acme_that_renews() {
    let pebble = Pebble::start(VALIDITY).await.unwrap();
    let (root, intermediate) = pebble.issuers().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root_file = dir.path().join("root.pem");
    std::fs::write(&root_file, &root).unwrap();
    let state = dir.path().join("tls");
    let port = free_port();
    let https_ca = pebble.https_ca();
    let args = [
        "--acme",
        NAME,
        "--acme-directory",
        &pebble.directory(),
        "--acme-directory-ca",
        https_ca.to_str().unwrap(),
        "--tls-dir",
        state.to_str().unwrap(),
    ];
    let relay = Relay::start_at(port, &args).await.unwrap();
    assert_eq!(relay.url, format!("https://{NAME}:{port}/"));
    let first = until_serial_other_than(port, None, Duration::from_secs(30)).await;
    let h = health(port, &root_file).unwrap();
    assert_eq!(h["status"], "ok", "{h}");

    // Two Chromiums that resolve the name to 127.0.0.1 and trust the test
    // CA (by the keys of its root and intermediate).
    let trust = format!(
        "--ignore-certificate-errors-spki-list={},{}",
        spki_hash(&root).unwrap(),
        spki_hash(&intermediate).unwrap()
    );
    let flags = [format!("--host-resolver-rules=MAP {NAME} 127.0.0.1"), trust];
    let a = Browser::launch_with(Kind::Chromium, &flags).await.unwrap();
    let b = Browser::launch_with(Kind::Chromium, &flags).await.unwrap();
    let link = start_call(&a, &format!("{}?ice=none", relay.url), "Ada").await;
    assert!(
        link.starts_with(&format!("https://{NAME}:{port}/")),
        "{link}"
    );
    b.goto(&link).await.unwrap();
    for side in [&a, &b] {
        assert_receiving(side).await;
        wait_connected(side).await;
    }
    // A secure page: camera allowed, signaling over wss:// (a ws:// from
    // an https:// page would be blocked as mixed content).
    let secure = a
        .js("return [window.isSecureContext, location.protocol]")
        .await
        .unwrap();
    assert_eq!(secure, serde_json::json!([true, "https:"]));
    assert_eq!(health(port, &root_file).unwrap()["connections"], 2);

    // Renewed before it expires: a new certificate with a new serial,
    // while the call goes on.
    let renewed =
        until_serial_other_than(port, Some(&first), Duration::from_secs(VALIDITY + 10)).await;
    println!("renewed: {first} -> {renewed}");
    assert!(health(port, &root_file).is_ok());
    for side in [&a, &b] {
        assert_receiving(side).await;
    }
    // A page loaded now gets the new certificate and joins again.
    b.goto(&link).await.unwrap();
    for side in [&a, &b] {
        assert_receiving(side).await;
    }
    a.close().await;
    b.close().await;

    // Restarted with the same --tls-dir: the kept certificate is served at
    // once, without asking the CA again.
    let kept = served_serial(port).expect("a certificate before the restart");
    relay.terminate().await.unwrap();
    let again = Relay::start_at(port, &args).await.unwrap();
    let start = Instant::now();
    let served = loop {
        if let Some(s) = served_serial(port) {
            break s;
        }
        assert!(start.elapsed() < LIMIT, "no certificate after a restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        served, kept,
        "after a restart it did not serve the kept certificate"
    );
    drop(again);
    drop(pebble);
}
