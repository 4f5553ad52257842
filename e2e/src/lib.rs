//! End-to-end harness: starts the real relay binary serving the built app,
//! and real headless browsers (Chromium through chromedriver, Firefox through
//! geckodriver) with fake camera and microphone, and drives them over
//! WebDriver.
//!
//! Paths come from the environment that `scripts/test.sh` sets:
//! `PEERCALL_RELAY_BIN`, `PEERCALL_DIST`, `CHROME_BIN`, `CHROMEDRIVER_BIN`,
//! `FIREFOX_BIN`, `GECKODRIVER_BIN`, and `PEERCALL_TURNSERVER_BIN` (coturn's
//! `turnserver`, for [`Turn`]). Each browser gets a fresh profile and
//! its own driver process, so two browsers in one test are two separate
//! browser processes, as two people would be.
#![forbid(unsafe_code)]

pub mod a11y;
pub mod call;
pub mod phone;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A failure in the harness or in what it checks, as a readable message.
pub type Result<T, E = String> = std::result::Result<T, E>;

pub(crate) fn env_path(var: &str, fallback: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(fallback))
}

pub(crate) fn required_env(var: &str) -> Result<PathBuf> {
    std::env::var_os(var).map(PathBuf::from).ok_or_else(|| {
        format!("{var} is not set: run the end-to-end tests through scripts/test.sh")
    })
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The relay binary, serving the built app on a free loopback port.
pub struct Relay {
    child: Child,
    /// Where the app is, e.g. `http://127.0.0.1:41234/`.
    pub url: String,
}

impl Relay {
    /// Starts `$PEERCALL_RELAY_BIN --port 0 --static-dir $PEERCALL_DIST`
    /// plus `extra` arguments, and waits for it to print its URL.
    pub async fn start(extra: &[&str]) -> Result<Self> {
        Self::start_at(0, extra).await
    }

    /// [`Relay::start`] on `port` (0: any free one), so a test can stop
    /// the relay and start another at the same address.
    pub async fn start_at(port: u16, extra: &[&str]) -> Result<Self> {
        let bin = required_env("PEERCALL_RELAY_BIN")?;
        let dist = required_env("PEERCALL_DIST")?;
        let port = port.to_string();
        let mut child = Command::new(&bin)
            .args(["--addr", "127.0.0.1", "--port", &port, "--static-dir"])
            .arg(&dist)
            .args(extra)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            // Its own process group, so the browser it starts can be ended
            // with it even when a test panics (see Drop).
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let url = tokio::time::timeout(Duration::from_secs(20), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.split("open ").nth(1) {
                    return Some(url.trim().to_owned());
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .ok_or("the relay did not print the URL to open")?;
        // Keep draining stdout so the relay never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { child, url })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse().ok())
            .expect("the relay URL has a port")
    }

    /// Kills it (SIGKILL: no goodbye to anyone) and waits until it is gone.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }

    /// The relay's process id (for its memory, from /proc).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Stops it with SIGTERM (a graceful shutdown) and waits for it to exit.
    pub async fn terminate(mut self) -> Result<std::process::ExitStatus> {
        let pid = self.pid().ok_or("the relay has exited already")?;
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .map_err(|e| format!("kill -TERM {pid}: {e}"))?;
        self.child.wait().await.map_err(|e| e.to_string())
    }
}

impl Relay {
    /// Its `/healthz`, as JSON.
    pub async fn health(&self) -> Result<Value> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port()))
            .await
            .map_err(|e| format!("/healthz: {e}"))?;
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .map_err(|e| format!("/healthz: {e}"))?;
        let mut raw = String::new();
        tcp.read_to_string(&mut raw)
            .await
            .map_err(|e| format!("/healthz: {e}"))?;
        let body = raw.split("\r\n\r\n").nth(1).ok_or("/healthz: no body")?;
        serde_json::from_str(body).map_err(|e| format!("/healthz: {e}: {body}"))
    }

    /// How many Content-Security-Policy violations browsers reported to it
    /// (`/csp-report`; the relay's log, on stderr, says what was blocked).
    pub async fn csp_reports(&self) -> Result<u64> {
        self.health().await?["csp_reports"]
            .as_u64()
            .ok_or_else(|| "/healthz has no csp_reports".to_owned())
    }

    /// Panics if any page of the app it served had something blocked by
    /// its Content-Security-Policy. Reports leave the browser as the
    /// violation happens; a moment is allowed for them to arrive.
    pub async fn assert_nothing_blocked(&self) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let n = self.csp_reports().await.unwrap();
        assert_eq!(
            n, 0,
            "the app's Content-Security-Policy blocked something {n} time(s): see the relay's log line above"
        );
    }

    /// Its signaling WebSocket URL.
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port())
    }

    /// Waits until it says it is connected to Redis (`--redis`).
    pub async fn until_in_cluster(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let h = self.health().await?;
            if h["cluster"]["redis"] == "connected" {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("the relay never connected to Redis: {h}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A real Redis (Debian's `redis-server`, `PEERCALL_REDIS_SERVER_BIN`) on
/// a free loopback port, with a generated config and nothing kept on
/// disk, for relays that share rooms (`--redis`). Stopped on drop.
pub struct Redis {
    child: Child,
    /// Its port.
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    /// Starts it and waits until it accepts connections.
    pub async fn start() -> Result<Self> {
        let bin = env_path("PEERCALL_REDIS_SERVER_BIN", "redis-server");
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = free_port();
        let config = dir.path().join("redis.conf");
        std::fs::write(
            &config,
            format!(
                "port {port}\nbind 127.0.0.1\nsave \"\"\nappendonly no\ndaemonize no\ndir {}\nlogfile {}\n",
                dir.path().display(),
                dir.path().join("redis.log").display()
            ),
        )
        .map_err(|e| e.to_string())?;
        let child = Command::new(&bin)
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start {} (scripts/test.sh installs redis-server): {e}",
                    bin.display()
                )
            })?;
        wait_for_port(port, Duration::from_secs(20))
            .await
            .map_err(|_| format!("redis-server did not listen on 127.0.0.1:{port}"))?;
        Ok(Self {
            child,
            port,
            _dir: dir,
        })
    }

    /// `redis://127.0.0.1:PORT/`, for `--redis`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Its process id (for its CPU time, from /proc).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// A real TURN server: coturn's `turnserver` on a free loopback port,
/// with the REST-API shared secret (`use-auth-secret`), as a deployment
/// would run it, and loopback peers allowed (everything here is on
/// 127.0.0.1). Stopped on drop.
pub struct Turn {
    child: Child,
    /// Its port (UDP and TCP).
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Turn {
    /// Starts coturn with `secret` and waits until it accepts TCP.
    pub async fn start(secret: &str) -> Result<Self> {
        let bin = env_path("PEERCALL_TURNSERVER_BIN", "turnserver");
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = free_port();
        let path = |name: &str| dir.path().join(name).display().to_string();
        let child = Command::new(&bin)
            .args([
                "-n", // no config file: only these flags
                "--listening-ip=127.0.0.1",
                "--relay-ip=127.0.0.1",
                &format!("--listening-port={port}"),
                "--use-auth-secret",
                &format!("--static-auth-secret={secret}"),
                "--realm=peercall.test",
                "--no-tls",
                "--no-dtls",
                "--no-cli",
                "--fingerprint",
                "--allow-loopback-peers",
                "--simple-log",
                &format!("--log-file={}", path("turn.log")),
                &format!("--userdb={}", path("turndb")),
                &format!("--pidfile={}", path("turn.pid")),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start {} (coturn; scripts/test.sh installs it): {e}",
                    bin.display()
                )
            })?;
        wait_for_port(port, Duration::from_secs(20))
            .await
            .map_err(|_| format!("coturn did not listen on 127.0.0.1:{port}"))?;
        // TCP can be up before UDP; a browser whose first UDP request meets
        // a closed port retries for ~40 s. Wait for a STUN answer on UDP.
        stun_binding(port, Duration::from_secs(20))
            .await
            .map_err(|e| format!("coturn on UDP 127.0.0.1:{port}: {e}"))?;
        Ok(Self { child, port, dir })
    }

    /// `turn:` URLs for UDP and TCP.
    pub fn urls(&self) -> String {
        let p = self.port;
        format!("turn:127.0.0.1:{p}?transport=udp,turn:127.0.0.1:{p}?transport=tcp")
    }

    /// coturn's log so far (for failure messages).
    pub fn log(&self) -> String {
        // --simple-log: the file is named exactly as given.
        std::fs::read_to_string(self.dir.path().join("turn.log")).unwrap_or_default()
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Which browser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Debian's Chromium through chromedriver.
    Chromium,
    /// Firefox ESR through geckodriver.
    Firefox,
}

impl Kind {
    /// A lowercase name for file names and messages.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Chromium => "chromium",
            Kind::Firefox => "firefox",
        }
    }
}

/// Runs `openssl` with `args`; its standard output.
pub fn openssl(args: &[&str], input: Option<&[u8]>) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut child = std::process::Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run openssl (scripts/test.sh installs it): {e}"))?;
    if let Some(input) = input {
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(input)
            .map_err(|e| e.to_string())?;
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out.stdout)
}

/// A real test ACME CA (Debian's `pebble`, `PEERCALL_PEBBLE_BIN`) on free
/// loopback ports with a generated config: validation switched off
/// (`PEBBLE_VA_ALWAYS_VALID=1`), no random sleeps or refused nonces, and
/// certificates that live `validity` seconds. Stopped on drop.
pub struct Pebble {
    child: Child,
    port: u16,
    management: u16,
    dir: tempfile::TempDir,
}

impl Pebble {
    /// Starts it and waits until its directory answers.
    pub async fn start(validity: u64) -> Result<Self> {
        let bin = env_path("PEERCALL_PEBBLE_BIN", "pebble");
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let d = |f: &str| dir.path().join(f).display().to_string();
        // Its own HTTPS certificate: a CA, and a leaf for 127.0.0.1 from it.
        // (Temporary folders have no spaces in their paths.)
        let ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
        std::fs::write(
            dir.path().join("ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .map_err(|e| e.to_string())?;
        for line in [
            format!(
                "req -x509 {ec} -keyout {} -out {} -days 2 -subj /CN=pebble-https-CA",
                d("ca.key"),
                d("ca.pem")
            ),
            format!(
                "req {ec} -keyout {} -out {} -subj /CN=localhost",
                d("key.pem"),
                d("leaf.csr")
            ),
            format!(
                "x509 -req -in {} -CA {} -CAkey {} -CAcreateserial -out {} -days 2 -extfile {}",
                d("leaf.csr"),
                d("ca.pem"),
                d("ca.key"),
                d("cert.pem"),
                d("ext")
            ),
        ] {
            openssl(&line.split_whitespace().collect::<Vec<_>>(), None)?;
        }
        let (port, management) = (free_port(), free_port());
        let config = json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{port}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": d("cert.pem"),
            "privateKey": d("key.pem"),
            "httpPort": free_port(),
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "certificateValidityPeriod": validity,
        }});
        std::fs::write(dir.path().join("pebble.json"), config.to_string())
            .map_err(|e| e.to_string())?;
        let log =
            std::fs::File::create(dir.path().join("pebble.log")).map_err(|e| e.to_string())?;
        let child = Command::new(&bin)
            .arg("-config")
            .arg(dir.path().join("pebble.json"))
            .env("PEBBLE_VA_ALWAYS_VALID", "1")
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start {} (scripts/test.sh installs pebble): {e}",
                    bin.display()
                )
            })?;
        for p in [port, management] {
            wait_for_port(p, Duration::from_secs(20))
                .await
                .map_err(|_| format!("pebble did not listen on 127.0.0.1:{p}"))?;
        }
        Ok(Self {
            child,
            port,
            management,
            dir,
        })
    }

    /// The ACME directory URL, for `--acme-directory`.
    pub fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.port)
    }

    /// The CA of the directory's HTTPS certificate, for `--acme-directory-ca`.
    pub fn https_ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The root and intermediate that sign what it issues (PEM), from its
    /// management interface: what a browser must trust.
    pub fn issuers(&self) -> Result<(String, String)> {
        let get = |path: &str| -> Result<String> {
            let out = std::process::Command::new("curl")
                .args(["-fsS", "--max-time", "10", "--cacert"])
                .arg(self.https_ca())
                .arg(format!("https://127.0.0.1:{}{path}", self.management))
                .output()
                .map_err(|e| format!("curl: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "pebble {path}: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        };
        Ok((get("/roots/0")?, get("/intermediates/0")?))
    }

    /// Its process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// base64(SHA-256(SubjectPublicKeyInfo)) of a PEM certificate: what
/// Chromium's `--ignore-certificate-errors-spki-list` takes.
pub fn spki_hash(pem: &str) -> Result<String> {
    let key = openssl(&["x509", "-pubkey", "-noout"], Some(pem.as_bytes()))?;
    let der = openssl(&["pkey", "-pubin", "-outform", "der"], Some(&key))?;
    let digest = openssl(&["dgst", "-sha256", "-binary"], Some(&der))?;
    let b64 = openssl(&["base64", "-A"], Some(&digest))?;
    Ok(String::from_utf8_lossy(&b64).trim().to_owned())
}

/// One headless browser process with its own WebDriver server and profile.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    /// Which browser this is.
    pub kind: Kind,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts a browser with a fake camera and microphone that are granted
    /// without a prompt, and a 1280x800 window.
    pub async fn launch(kind: Kind) -> Result<Self> {
        Self::launch_with(kind, &[]).await
    }

    /// [`Browser::launch`] with more command-line arguments (Chromium's
    /// `--host-resolver-rules`, say).
    pub async fn launch_with(kind: Kind, extra: &[String]) -> Result<Self> {
        let profile = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = free_port();
        // The fake-media flags and prefs are the ones the wasm-bindgen
        // browser tests use (webdriver.json); each session adds its own
        // binary, headless mode, window size and profile.
        let mut caps: Value =
            serde_json::from_str(include_str!("../../webdriver.json")).expect("webdriver.json");
        let (driver_bin, driver_args) = match kind {
            Kind::Chromium => {
                let options = &mut caps["goog:chromeOptions"];
                options["binary"] = json!(env_path("CHROME_BIN", "chromium"));
                let args = options["args"].as_array_mut().expect("chrome args");
                args.extend([
                    json!("--headless=new"),
                    json!("--window-size=1280,800"),
                    json!(format!("--user-data-dir={}", profile.path().display())),
                ]);
                // A browser that says no to the camera, as a person can:
                // no fake prompt that grants it.
                if extra.iter().any(|a| a == "--deny-permission-prompts") {
                    args.retain(|a| a != "--use-fake-ui-for-media-stream");
                }
                args.extend(extra.iter().map(|a| json!(a)));
                caps["browserName"] = json!("chrome");
                caps.as_object_mut().unwrap().remove("moz:firefoxOptions");
                (
                    env_path("CHROMEDRIVER_BIN", "chromedriver"),
                    vec![format!("--port={port}")],
                )
            }
            Kind::Firefox => {
                let options = &mut caps["moz:firefoxOptions"];
                options["binary"] = json!(env_path("FIREFOX_BIN", "firefox-esr"));
                options["args"] = json!([
                    "-headless",
                    "-width",
                    "1280",
                    "-height",
                    "800",
                    "-profile",
                    profile.path(),
                ]);
                options["args"]
                    .as_array_mut()
                    .expect("firefox args")
                    .extend(extra.iter().map(|a| json!(a)));
                caps["browserName"] = json!("firefox");
                caps.as_object_mut().unwrap().remove("goog:chromeOptions");
                (
                    env_path("GECKODRIVER_BIN", "geckodriver"),
                    vec!["--port".into(), port.to_string()],
                )
            }
        };
        let driver = Command::new(&driver_bin)
            .args(&driver_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            // Its own process group, so the browser it starts can be ended
            // with it even when a test panics (see Drop).
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", driver_bin.display()))?;
        wait_for_port(port, Duration::from_secs(20))
            .await
            .map_err(|e| format!("{}: no WebDriver server: {e}", kind.name()))?;

        let Value::Object(caps) = caps else {
            unreachable!("capabilities are an object")
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .map_err(|e| format!("{} session: {e}", kind.name()))?;
        Ok(Self {
            client,
            kind,
            driver,
            _profile: profile,
        })
    }

    /// Which browser this is.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Resizes the browser window (CSS pixels, roughly: the viewport is a
    /// little smaller in a windowed browser, the same in a headless one).
    pub async fn set_window_size(&self, width: u32, height: u32) -> Result<()> {
        self.client
            .set_window_size(width, height)
            .await
            .map_err(|e| format!("{}: set_window_size: {e}", self.kind.name()))
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.client
            .goto(url)
            .await
            .map_err(|e| format!("{}: goto {url}: {e}", self.kind.name()))
    }

    /// Runs `script` (a function body; `return` gives the value) in the page.
    pub async fn js(&self, script: &str) -> Result<Value> {
        self.client
            .execute(script, vec![])
            .await
            .map_err(|e| format!("{}: script failed: {e}\n{script}", self.kind.name()))
    }

    /// Polls `script` until it returns `true`, for at most `limit`; on
    /// timeout, the error shows the page's text to say what it shows instead.
    pub async fn wait_until(&self, what: &str, script: &str, limit: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            if self.js(script).await? == Value::Bool(true) {
                return Ok(());
            }
            if start.elapsed() > limit {
                let text = self
                    .js("return document.body ? document.body.innerText : ''")
                    .await
                    .unwrap_or_default();
                return Err(format!(
                    "{}: timed out after {limit:?} waiting for {what}; the page says: {text}",
                    self.kind.name()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks the element `css` selects through WebDriver: a real click,
    /// which counts as the person's gesture (`getDisplayMedia` needs one).
    pub async fn click(&self, css: &str) -> Result<()> {
        let el = self
            .client
            .find(fantoccini::Locator::Css(css))
            .await
            .map_err(|e| format!("{}: find {css}: {e}", self.kind.name()))?;
        el.click()
            .await
            .map_err(|e| format!("{}: click {css}: {e}", self.kind.name()))
    }

    /// Chooses `path` in the file input `css` selects, as a person would.
    pub async fn upload(&self, css: &str, path: &Path) -> Result<()> {
        let el = self
            .client
            .find(fantoccini::Locator::Css(css))
            .await
            .map_err(|e| format!("{}: find {css}: {e}", self.kind.name()))?;
        el.send_keys(&path.display().to_string())
            .await
            .map_err(|e| format!("{}: upload to {css}: {e}", self.kind.name()))
    }

    /// Saves a PNG of the viewport to `path`.
    pub async fn screenshot(&self, path: &Path) -> Result<()> {
        let png = self
            .client
            .screenshot()
            .await
            .map_err(|e| format!("{}: screenshot: {e}", self.kind.name()))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        std::fs::write(path, png).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Every process in the driver's process group (the driver is small;
    /// the browser's processes are the rest): its /proc folder and the
    /// fields of its `stat` after the command name.
    fn processes(&self) -> Vec<(PathBuf, Vec<String>)> {
        let Some(group) = self.driver.id() else {
            return Vec::new();
        };
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for entry in dir.flatten() {
            let path = entry.path();
            let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
                continue;
            };
            // pid (comm) state ppid pgrp ...: comm may hold spaces.
            let Some(after) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
                continue;
            };
            let fields: Vec<String> = after.split_whitespace().map(str::to_owned).collect();
            if fields.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(group) {
                out.push((path, fields));
            }
        }
        out
    }

    /// Resident memory of the browser, in bytes: every process of it, read
    /// from /proc.
    pub fn rss_bytes(&self) -> u64 {
        let page = 4096;
        self.processes()
            .iter()
            .filter_map(|(path, _)| {
                std::fs::read_to_string(path.join("statm"))
                    .ok()
                    .and_then(|m| m.split_whitespace().nth(1)?.parse::<u64>().ok())
            })
            .map(|pages| pages * page)
            .sum()
    }

    /// CPU time the browser's processes alive now have used, in seconds
    /// (user and system, from /proc; Linux counts it in 1/100 s). The
    /// difference over a window is how many cores it kept busy.
    pub fn cpu_seconds(&self) -> f64 {
        let ticks: u64 = self
            .processes()
            .iter()
            .map(|(_, f)| {
                // utime and stime: fields 14 and 15 of stat, 11 and 12 here.
                let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                n(11) + n(12)
            })
            .sum();
        ticks as f64 / 100.0
    }

    /// Ends the session and the browser.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
        // Drop ends the driver and whatever browser processes remain.
    }
}

impl Drop for Browser {
    /// Kills the driver's whole process group: the driver and the browser
    /// processes it started. Without this, a failed test leaves headless
    /// browsers running, and on a 2-core machine they slow every later
    /// test (ICE gathering took 20 s with a few dozen left behind).
    fn drop(&mut self) {
        if let Some(pid) = self.driver.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Sends STUN Binding requests (RFC 5389; no auth needed) to
/// 127.0.0.1:`port` over UDP until one is answered.
async fn stun_binding(port: u16, limit: Duration) -> Result<()> {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    socket
        .connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    // Type 0x0001 (Binding request), length 0, magic cookie, transaction id.
    let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
    request.extend_from_slice(b"peercall-e2e");
    let start = Instant::now();
    let mut answer = [0u8; 512];
    while start.elapsed() < limit {
        // A closed port may make send or recv fail (ICMP); just try again.
        let _ = socket.send(&request).await;
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(200), socket.recv(&mut answer)).await
        {
            // 0x0101: Binding success response, same transaction.
            if n >= 20 && answer[..2] == [0x01, 0x01] && answer[8..20] == request[8..20] {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("no answer to a STUN Binding request".into())
}

pub(crate) async fn wait_for_port(port: u16, limit: Duration) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("nothing came up on port {port}"))
}
