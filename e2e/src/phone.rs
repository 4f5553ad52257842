//! The phone side of the phone-call tests: a real Janus (its SIP plugin is
//! the gateway; started from the config the project ships in
//! `deploy/janus/`), a real baresip playing the far phone, both on
//! loopback with generated configs, and the tones: a WAV file for the
//! browser's fake microphone and a check of which frequency a recording
//! holds.
//!
//! Paths come from `scripts/lib.sh` (`sip_gateway`): `PEERCALL_JANUS_BIN`,
//! `PEERCALL_JANUS_LIB` (the folder holding Janus's `plugins/` and
//! `transports/`) and `PEERCALL_BARESIP_BIN`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use crate::{env_path, free_port, wait_for_port, Result};

/// Collects a child's output lines, for waiting on them and for failure
/// messages.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<String>>);

impl Log {
    fn follow(&self, out: impl tokio::io::AsyncRead + Unpin + Send + 'static) {
        let log = self.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(out).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut text = log.0.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
    }

    fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }

    /// Waits until the output holds `needle` (`count` times).
    async fn wait(&self, who: &str, needle: &str, count: usize, limit: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            if self.text().matches(needle).count() >= count {
                return Ok(());
            }
            if start.elapsed() > limit {
                return Err(format!(
                    "{who} did not log {needle:?} (x{count}) within {limit:?}; its log ends:\n{}",
                    tail(&self.text(), 40)
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Janus with its SIP and VideoRoom plugins and WebSocket transport, from
/// `deploy/janus/` with its own port, API secret and folders. Stopped on
/// drop.
pub struct Janus {
    child: Child,
    /// Its WebSocket API port.
    pub port: u16,
    /// Its API secret (the relay's `--janus-secret`).
    pub secret: String,
    log: Log,
    _dir: tempfile::TempDir,
}

impl Janus {
    /// Starts it and waits until its WebSocket API accepts connections.
    pub async fn start() -> Result<Self> {
        Self::start_with_secret(&format!("e2e-{:016x}", rand_u64())).await
    }

    /// [`Janus::start`] with this API secret (several Janus servers behind
    /// one relay share its `--janus-secret`).
    pub async fn start_with_secret(secret: &str) -> Result<Self> {
        let bin = env_path("PEERCALL_JANUS_BIN", "janus");
        let lib = env_path("PEERCALL_JANUS_LIB", "/usr/lib/x86_64-linux-gnu/janus");
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/janus");
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = free_port();
        let secret = secret.to_owned();
        for name in [
            "janus.jcfg",
            "janus.transport.websockets.jcfg",
            "janus.plugin.sip.jcfg",
            "janus.plugin.videoroom.jcfg",
        ] {
            let text = std::fs::read_to_string(shipped.join(name))
                .map_err(|e| format!("{}: {e}", shipped.join(name).display()))?;
            let text = replace_once(
                &text,
                "configs_folder = \"/etc/janus\"",
                &format!("configs_folder = \"{}\"", dir.path().display()),
                name == "janus.jcfg",
            )?
            .replace(
                "/usr/lib/x86_64-linux-gnu/janus",
                &lib.display().to_string(),
            );
            let text = replace_once(
                &text,
                "api_secret = \"change-this-secret\"",
                &format!("api_secret = \"{secret}\""),
                name == "janus.jcfg",
            )?;
            let text = replace_once(
                &text,
                "ws_port = 8188",
                &format!("ws_port = {port}"),
                name == "janus.transport.websockets.jcfg",
            )?;
            std::fs::write(dir.path().join(name), text).map_err(|e| e.to_string())?;
        }
        let (child, log) = spawn_logged(
            Command::new(&bin)
                .arg("-F")
                .arg(dir.path())
                .arg("-C")
                .arg(dir.path().join("janus.jcfg")),
            &bin,
            "janus",
        )?;
        if wait_for_port(port, Duration::from_secs(30)).await.is_err() {
            return Err(format!(
                "Janus did not listen on 127.0.0.1:{port}; its log ends:\n{}",
                tail(&log.text(), 40)
            ));
        }
        for plugin in ["JANUS SIP plugin", "JANUS VideoRoom plugin"] {
            log.wait(
                "Janus",
                &format!("{plugin} initialized"),
                1,
                Duration::from_secs(10),
            )
            .await?;
        }
        Ok(Self {
            child,
            port,
            secret,
            log,
            _dir: dir,
        })
    }

    /// `ws://127.0.0.1:PORT`, for the relay's `--janus`.
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        self.log.text()
    }

    /// Kills it (SIGKILL: a Janus that crashed) and waits until it is gone.
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Waits until its log holds `needle`.
    pub async fn wait_log(&self, needle: &str, limit: Duration) -> Result<()> {
        self.log.wait("Janus", needle, 1, limit).await
    }
}

impl Drop for Janus {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn replace_once(text: &str, from: &str, to: &str, required: bool) -> Result<String> {
    match (text.matches(from).count(), required) {
        (1, _) => Ok(text.replacen(from, to, 1)),
        (0, false) => Ok(text.to_owned()),
        (n, _) => Err(format!(
            "deploy/janus: expected {from:?} once, found it {n} times"
        )),
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

/// How baresip answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// At once.
    Auto,
    /// It rings until told ([`Baresip::command`]).
    Manual,
}

/// What the far phone is like.
#[derive(Clone, Debug)]
pub struct PhoneOptions {
    /// Offer and accept G.711 µ-law (PCMU) only, as telephone-network
    /// gateways do; otherwise Opus and G.711.
    pub g711_only: bool,
    /// How it answers.
    pub answer: Answer,
    /// The tone it sends, in Hz: a generated WAV file as its microphone.
    pub tone_hz: u32,
    /// A video phone: VP8, a generated picture as its camera (320x240),
    /// and what it receives decoded (not shown).
    pub video: bool,
}

impl Default for PhoneOptions {
    fn default() -> Self {
        Self {
            g711_only: false,
            answer: Answer::Auto,
            tone_hz: 440,
            video: false,
        }
    }
}

/// baresip on loopback as the far phone: it sends a sine tone, records
/// what it hears (its `sndfile` module: `dump-*-dec.wav`), logs the DTMF
/// it receives, and takes commands over `ctrl_tcp`. Stopped on drop.
pub struct Baresip {
    child: Child,
    /// Its SIP port (UDP and TCP).
    pub port: u16,
    ctrl_port: u16,
    log: Log,
    dir: tempfile::TempDir,
}

impl Baresip {
    /// Starts it and waits until it is ready for calls.
    pub async fn start(options: &PhoneOptions) -> Result<Self> {
        let bin = env_path("PEERCALL_BARESIP_BIN", "baresip");
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        // baresip listens on PORT and, for TLS, PORT + 1.
        let port = free_port_pair();
        let ctrl_port = free_port();
        let (codecs, only) = if options.g711_only {
            ("module g711.so\n", ";audio_codecs=PCMU/8000/1")
        } else {
            ("module opus.so\nmodule g711.so\n", "")
        };
        let video = if options.video {
            "module vp8.so\n\
             module fakevideo.so\n\
             video_source fakevideo,nil\n\
             video_display fakevideo,nil\n\
             video_size 320x240\n\
             video_fps 15\n"
        } else {
            ""
        };
        // net_interface: the media address in baresip's SDP must be the
        // one its packets come from, as Janus connects its RTP sockets to
        // it. Its source plays a tone file, 48 kHz mono; the ausrc/auplay
        // settings have baresip resample to and from G.711's 8 kHz.
        // aufile reads the file once, without looping: 60 s outlasts a
        // test call.
        let tone = dir.path().join("tone.wav");
        write_tone(&tone, options.tone_hz, 60)?;
        let config = format!(
            "poll_method epoll\n\
             sip_listen 127.0.0.1:{port}\n\
             net_interface 127.0.0.1\n\
             module_path /usr/lib/baresip/modules\n\
             {codecs}\
             {video}\
             module aufile.so\n\
             module aubridge.so\n\
             module sndfile.so\n\
             module_app account.so\n\
             module_app menu.so\n\
             module_app ctrl_tcp.so\n\
             ctrl_tcp_listen 127.0.0.1:{ctrl_port}\n\
             audio_source aufile,{tone}\n\
             ausrc_srate 48000\n\
             ausrc_channels 1\n\
             auplay_srate 48000\n\
             auplay_channels 2\n\
             audio_player aubridge,nowhere\n\
             audio_alert aubridge,nowhere\n\
             snd_path {dir}\n\
             rtp_ports 22000-22999\n",
            tone = tone.display(),
            dir = dir.path().display(),
        );
        std::fs::write(dir.path().join("config"), config).map_err(|e| e.to_string())?;
        let answer = match options.answer {
            Answer::Auto => "auto",
            Answer::Manual => "manual",
        };
        std::fs::write(
            dir.path().join("accounts"),
            format!("<sip:phone@127.0.0.1:{port}>;regint=0;answermode={answer}{only}\n"),
        )
        .map_err(|e| e.to_string())?;
        // stdbuf: baresip writes its log through stdio, block-buffered
        // into a pipe; the test waits on lines as they happen.
        let (child, log) = spawn_logged(
            Command::new("stdbuf")
                .args(["-oL", "-eL"])
                .arg(&bin)
                .arg("-v")
                .arg("-f")
                .arg(dir.path()),
            &bin,
            "baresip-core",
        )?;
        log.wait("baresip", "baresip is ready.", 1, Duration::from_secs(20))
            .await?;
        wait_for_port(ctrl_port, Duration::from_secs(10)).await?;
        Ok(Self {
            child,
            port,
            ctrl_port,
            log,
            dir,
        })
    }

    /// Its address: `sip:phone@127.0.0.1:PORT`.
    pub fn uri(&self) -> String {
        format!("sip:phone@127.0.0.1:{}", self.port)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        self.log.text()
    }

    /// Waits until its log holds `needle` `count` times.
    pub async fn wait_log(&self, needle: &str, count: usize, limit: Duration) -> Result<()> {
        self.log.wait("baresip", needle, count, limit).await
    }

    /// Runs a `ctrl_tcp` command (`hangup`, `accept`, ...) and returns
    /// its response.
    pub async fn command(&self, command: &str, params: &str) -> Result<Value> {
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.ctrl_port))
            .await
            .map_err(|e| format!("baresip ctrl_tcp: {e}"))?;
        let body = json!({"command": command, "params": params, "token": "e2e"}).to_string();
        tcp.write_all(format!("{}:{body},", body.len()).as_bytes())
            .await
            .map_err(|e| format!("baresip ctrl_tcp: {e}"))?;
        // Netstrings come back: events and, among them, our response.
        let mut buf = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            while let Some((message, rest)) = netstring(&buf) {
                let value: Value = serde_json::from_slice(message)
                    .map_err(|e| format!("baresip ctrl_tcp: {e}"))?;
                buf = rest.to_vec();
                if value["response"] == true {
                    return Ok(value);
                }
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout_at(deadline.into(), tcp.read(&mut chunk))
                .await
                .map_err(|_| format!("baresip did not answer {command:?}"))?
                .map_err(|e| format!("baresip ctrl_tcp: {e}"))?;
            if n == 0 {
                return Err(format!(
                    "baresip closed ctrl_tcp before answering {command:?}"
                ));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The recordings of what it received (`dump-*-dec.wav`), complete
    /// once the call has ended.
    pub fn received(&self) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with("dump-") && n.ends_with("-dec.wav"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        found
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// One netstring (`LEN:DATA,`) off the front of `buf`, and the rest.
fn netstring(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = buf.iter().position(|&b| b == b':')?;
    let len: usize = std::str::from_utf8(&buf[..colon]).ok()?.parse().ok()?;
    let end = colon + 1 + len;
    (buf.len() > end).then(|| (&buf[colon + 1..end], &buf[end + 1..]))
}

/// Starts `command` (which runs `bin`, from Debian's `package`) with its
/// output followed into a [`Log`]; it is killed when dropped.
fn spawn_logged(command: &mut Command, bin: &Path, package: &str) -> Result<(Child, Log)> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            format!(
                "cannot start {} (scripts/test.sh installs {package}): {e}",
                bin.display()
            )
        })?;
    let log = Log::default();
    log.follow(child.stdout.take().expect("piped stdout"));
    log.follow(child.stderr.take().expect("piped stderr"));
    Ok((child, log))
}

/// A free port whose successor is free too.
fn free_port_pair() -> u16 {
    loop {
        let port = free_port();
        if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

/// A loopback UDP port nothing listens on (bound a moment, then let go):
/// a SIP request to it is refused at once.
pub fn silent_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free loopback UDP port")
}

/// Writes `seconds` of a `hz` sine (16-bit mono PCM at 48 kHz, half of
/// full scale) as a WAV file: the fake microphone Chromium plays in a loop
/// (`--use-file-for-fake-audio-capture`). A whole number of cycles, so
/// the loop has no click.
pub fn write_tone(path: &Path, hz: u32, seconds: u32) -> Result<()> {
    const RATE: u32 = 48_000;
    let n = RATE * seconds;
    let mut data = Vec::with_capacity(n as usize * 2);
    for i in 0..n {
        let t = f64::from(i) / f64::from(RATE);
        let s = (0.5 * (2.0 * std::f64::consts::PI * f64::from(hz) * t).sin() * 32767.0) as i16;
        data.extend_from_slice(&s.to_le_bytes());
    }
    let mut wav = Vec::with_capacity(44 + data.len());
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&RATE.to_le_bytes());
    wav.extend_from_slice(&(RATE * 2).to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
    wav.extend_from_slice(&data);
    std::fs::write(path, wav).map_err(|e| format!("{}: {e}", path.display()))
}

/// A 16-bit PCM WAV file: its sample rate and first channel, as floats.
/// Tolerates a header whose sizes were never filled in (a recording cut
/// short): the data runs to the end of the file.
pub fn read_wav(path: &Path) -> Result<(u32, Vec<f32>)> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bad = |why: &str| format!("{}: {why}", path.display());
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(bad("not a WAV file"));
    }
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
    let u32_at =
        |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let (mut at, mut format) = (12, None);
    while at + 8 <= bytes.len() {
        let (id, size) = (&bytes[at..at + 4], u32_at(at + 4) as usize);
        let body = at + 8;
        if id == b"fmt " && body + 16 <= bytes.len() {
            format = Some((
                u16_at(body),
                u16_at(body + 2),
                u32_at(body + 4),
                u16_at(body + 14),
            ));
        } else if id == b"data" {
            let (tag, channels, rate, bits) = format.ok_or_else(|| bad("data before fmt"))?;
            if tag != 1 || bits != 16 || channels == 0 {
                return Err(bad(&format!(
                    "format {tag}, {bits} bits, {channels} channels: 16-bit PCM expected"
                )));
            }
            let end = if size == 0 || body + size > bytes.len() {
                bytes.len()
            } else {
                body + size
            };
            let frame = 2 * channels as usize;
            let samples = bytes[body..end]
                .chunks_exact(frame)
                .map(|f| f32::from(i16::from_le_bytes([f[0], f[1]])) / 32768.0)
                .collect();
            return Ok((rate, samples));
        }
        at = body + size + (size & 1);
    }
    Err(bad("no data chunk"))
}

/// The frequency (10 Hz steps, 100 to 3400 Hz: the telephone band) with
/// the most power in `samples`, and the share of the signal's power it
/// holds (0 to 1; a clean tone is near 1, noise or silence near 0).
pub fn dominant_frequency(rate: u32, samples: &[f32]) -> (u32, f64) {
    let total: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();
    let mut best = (0, 0.0);
    for hz in (100..=3400).step_by(10) {
        let power = goertzel(rate, samples, f64::from(hz));
        if power > best.1 {
            best = (hz, power);
        }
    }
    // A tone of amplitude A over N samples: Goertzel power (A N / 2)^2,
    // total power N A^2 / 2; the ratio below is 1 for a pure tone.
    let n = samples.len().max(1) as f64;
    let share = if total > 0.0 {
        (2.0 * best.1 / (n * total)).min(1.0)
    } else {
        0.0
    };
    (best.0, share)
}

/// The power at `hz` in `samples` (the Goertzel algorithm).
fn goertzel(rate: u32, samples: &[f32], hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_tone_reads_back_as_its_frequency() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tone.wav");
        write_tone(&path, 1000, 1).unwrap();
        let (rate, samples) = read_wav(&path).unwrap();
        assert_eq!((rate, samples.len()), (48_000, 48_000));
        let (hz, share) = dominant_frequency(rate, &samples[..8000]);
        assert_eq!(hz, 1000);
        assert!(share > 0.9, "a pure tone holds nearly all power: {share}");
    }

    #[test]
    fn noise_has_no_dominant_tone() {
        let mut x = 1u32;
        let noise: Vec<f32> = (0..8000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x as f32 / u32::MAX as f32) - 0.5
            })
            .collect();
        let (_, share) = dominant_frequency(8000, &noise);
        assert!(share < 0.1, "white noise spreads its power: {share}");
    }

    #[test]
    fn netstrings_split() {
        let buf = b"3:abc,2:de,1:";
        let (first, rest) = netstring(buf).unwrap();
        assert_eq!(first, b"abc");
        let (second, rest) = netstring(rest).unwrap();
        assert_eq!(second, b"de");
        assert!(netstring(rest).is_none());
    }
}
