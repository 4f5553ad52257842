//! Phone calls (issue 20): Chromium, with a fake microphone playing a
//! 1000 Hz tone, calls a real baresip (the far phone, sending 440 Hz)
//! through the relay and a real Janus's SIP plugin, all on loopback.
//!
//! One browser, one Janus and one relay serve every call here, one after
//! another (each call is a new baresip): starting them is most of the
//! cost on two cores.

use std::time::{Duration, Instant};

use peercall_e2e::call::{exists, gone, wait};
use peercall_e2e::phone::{
    dominant_frequency, read_wav, silent_udp_port, tail, write_tone, Answer, Baresip, Janus,
    PhoneOptions,
};
use peercall_e2e::{Browser, Kind, Relay};
use serde_json::Value;

/// The browser's tone and the phone's.
const BROWSER_HZ: u32 = 1000;
const PHONE_HZ: u32 = 440;

/// Generous: a gateway, a phone and a browser on two shared cores.
const LIMIT: Duration = Duration::from_secs(30);

/// The phone call's inbound audio (energy, packets, codec) and outbound
/// packets, from the call's own peer connection (`peercall.phone`).
const PHONE_STATS: &str = r#"
    const pc = window.peercall && window.peercall.phone;
    if (!pc) return null;
    const stats = await pc.getStats();
    let out = {energy: 0, level: 0, received: 0, sent: 0, codec: null, video: 0};
    const codecs = new Map();
    stats.forEach(r => { if (r.type === 'codec') codecs.set(r.id, r.mimeType); });
    stats.forEach(r => {
        if (r.type === 'inbound-rtp' && r.kind === 'audio') {
            out.energy = r.totalAudioEnergy || 0;
            out.level = r.audioLevel || 0;
            out.received = r.packetsReceived || 0;
            out.codec = codecs.get(r.codecId) || null;
        }
        if (r.type === 'outbound-rtp' && r.kind === 'audio') out.sent = r.packetsSent || 0;
        if (r.type === 'inbound-rtp' && r.kind === 'video') out.video = r.framesDecoded || 0;
    });
    return out;
"#;

/// The dominant frequency of what the page plays from the phone (a
/// WebAudio analyser on the phone's stream), and its peak level in dB.
const PHONE_PITCH: &str = r#"
    const v = document.querySelector('video[data-testid=phone-media]');
    if (!v || !v.srcObject) return null;
    if (!window.__pitch || window.__pitch.stream !== v.srcObject) {
        if (window.__pitch) window.__pitch.ctx.close();
        const ctx = new AudioContext();
        const an = ctx.createAnalyser();
        an.fftSize = 8192;
        ctx.createMediaStreamSource(v.srcObject).connect(an);
        window.__pitch = {ctx, an, stream: v.srcObject};
        await new Promise(r => setTimeout(r, 500));
    }
    const {ctx, an} = window.__pitch;
    const bins = new Float32Array(an.frequencyBinCount);
    an.getFloatFrequencyData(bins);
    let best = 0;
    for (let i = 1; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
    return {hz: best * ctx.sampleRate / an.fftSize, db: bins[best], state: ctx.state};
"#;

async fn stats(b: &Browser) -> Value {
    b.js(&format!("return (async () => {{ {PHONE_STATS} }})()"))
        .await
        .unwrap()
}

/// A script: the call screen shows `want` (its `data-stage`).
fn stage_is(want: &str) -> String {
    format!(
        "const s = document.querySelector('[data-testid=phone-status]');
         return !!s && s.dataset.stage === {want:?};"
    )
}

/// Waits until the call screen shows `want` (`data-stage`).
async fn wait_stage(b: &Browser, want: &str, limit: Duration, janus: &Janus, phone: &Baresip) {
    let script = stage_is(want);
    if let Err(e) = b
        .wait_until(&format!("phone call {want}"), &script, limit)
        .await
    {
        panic!(
            "{e}\nthe page: {}\nJanus:\n{}\nbaresip:\n{}",
            status_text(b).await,
            tail(&janus.log(), 30),
            tail(&phone.log(), 30)
        );
    }
}

async fn status_text(b: &Browser) -> String {
    b.js(
        "const s = document.querySelector('[data-testid=phone-status]');
          return s ? s.dataset.stage + ': ' + s.textContent : '(no call screen)';",
    )
    .await
    .unwrap()
    .as_str()
    .unwrap_or_default()
    .to_owned()
}

/// From the dialler: types `address` and calls.
async fn dial(b: &Browser, address: &str) {
    wait(b, "the dialler", &exists("phone-address")).await;
    b.js(&format!(
        "const i = document.querySelector('[data-testid=phone-address]');
         i.value = {address:?};
         document.querySelector('[data-testid=phone-dial]').click();"
    ))
    .await
    .unwrap();
    wait(b, "the call screen", &exists("phone-status")).await;
}

/// After a call: closes its screen and opens the dialler again.
async fn next_call(b: &Browser) {
    b.click("[data-testid=phone-close]").await.unwrap();
    wait(b, "the call screen closed", &gone("phone-call")).await;
    wait(b, "Call a phone in the call", &exists("call-phone")).await;
    b.click("[data-testid=call-phone]").await.unwrap();
}

/// Checks that baresip's recording of the call holds the browser's tone.
fn assert_phone_heard_browser(phone: &Baresip) {
    let files = phone.received();
    assert!(
        !files.is_empty(),
        "baresip recorded nothing; its log:\n{}",
        tail(&phone.log(), 40)
    );
    let (rate, samples) = read_wav(&files[0]).unwrap();
    assert!(
        samples.len() > rate as usize * 3 / 2,
        "baresip recorded {} samples at {rate} Hz: under 1.5 s",
        samples.len()
    );
    // The last second before the hang-up: past any jitter-buffer start.
    let end = samples.len() - rate as usize / 4;
    let window = &samples[end - rate as usize..end];
    let (hz, share) = dominant_frequency(rate, window);
    assert!(
        hz.abs_diff(BROWSER_HZ) <= 20 && share > 0.5,
        "baresip heard {hz} Hz (holding {share:.2} of the power) from {}, not the browser's {BROWSER_HZ} Hz",
        files[0].display()
    );
    println!(
        "baresip heard {hz} Hz ({:.0} % of the power) at {rate} Hz",
        share * 100.0
    );
}

/// The longest stretch of `samples` (20 ms blocks) without sound (RMS
/// under 1 % of full scale) after the first sound: the silence before the
/// media starts does not count.
fn longest_quiet(rate: u32, samples: &[f32]) -> Duration {
    let block = rate as usize / 50;
    let (mut heard, mut run, mut best) = (false, 0, 0);
    for chunk in samples.chunks_exact(block) {
        let power = chunk.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / block as f64;
        if power.sqrt() >= 0.01 {
            heard = true;
            run = 0;
        } else if heard {
            run += 1;
            best = best.max(run);
        }
    }
    Duration::from_millis(best as u64 * 20)
}

/// Checks that the page receives and plays the phone's tone; returns the
/// inbound codec.
async fn assert_browser_hears_phone(b: &Browser, janus: &Janus, phone: &Baresip) -> String {
    let before = stats(b).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = stats(b).await;
    let energy = after["energy"].as_f64().unwrap_or(0.0) - before["energy"].as_f64().unwrap_or(0.0);
    let packets =
        after["received"].as_u64().unwrap_or(0) - before["received"].as_u64().unwrap_or(0);
    assert!(
        packets > 50 && energy > 0.01,
        "the page received {packets} audio packets with energy {energy} in 2 s: {after}\n\
         baresip's log:\n{}\nJanus's log:\n{}",
        tail(&phone.log(), 30),
        tail(&janus.log(), 40)
    );
    assert!(
        after["sent"].as_u64().unwrap_or(0) > 50,
        "the page sends no audio: {after}"
    );
    let pitch = b
        .js(&format!("return (async () => {{ {PHONE_PITCH} }})()"))
        .await
        .unwrap();
    let hz = pitch["hz"].as_f64().unwrap_or(0.0);
    assert!(
        (hz - f64::from(PHONE_HZ)).abs() < 15.0,
        "the page plays {hz} Hz from the phone, not its {PHONE_HZ} Hz: {pitch}"
    );
    println!(
        "the page hears {hz:.0} Hz ({} dB), {packets} packets in 2 s, energy +{energy:.3}",
        pitch["db"]
    );
    after["codec"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_calls_through_janus() {
    // Without --janus: no phone calls offered anywhere.
    let plain = Relay::start(&[]).await.unwrap();
    assert_eq!(plain.health().await.unwrap()["phone"], false);

    let janus = Janus::start().await.unwrap();
    let relay = Relay::start(&["--janus", &janus.url(), "--janus-secret", &janus.secret])
        .await
        .unwrap();
    assert_eq!(relay.health().await.unwrap()["phone"], true);

    let dir = tempfile::tempdir().unwrap();
    let tone = dir.path().join("tone.wav");
    write_tone(&tone, BROWSER_HZ, 2).unwrap();
    let b = Browser::launch_with(
        Kind::Chromium,
        &[format!(
            "--use-file-for-fake-audio-capture={}",
            tone.display()
        )],
    )
    .await
    .unwrap();

    b.goto(&plain.url).await.unwrap();
    wait(&b, "the start page", &exists("start")).await;
    // Give the health check its moment: it must not bring the button.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        b.js(&exists("start-phone")).await.unwrap(),
        false,
        "a relay without --janus offers phone calls"
    );
    drop(plain);

    // 1. Opus (baresip offers it first): tones both ways, DTMF, and the
    //    browser hangs up.
    let phone = Baresip::start(&PhoneOptions {
        video: true,
        ..PhoneOptions::default()
    })
    .await
    .unwrap();
    b.goto(&relay.url).await.unwrap();
    wait(&b, "Call a phone on the start page", &exists("start-phone")).await;
    b.click("[data-testid=start-phone]").await.unwrap();
    let dialled = Instant::now();
    dial(&b, &phone.uri()).await;
    wait_stage(&b, "incall", LIMIT, &janus, &phone).await;
    println!(
        "in call {} ms after dialling",
        dialled.elapsed().as_millis()
    );
    assert_eq!(
        b.js("return document.querySelector('[data-testid=phone-number]').textContent")
            .await
            .unwrap(),
        phone.uri()
    );
    let codec = assert_browser_hears_phone(&b, &janus, &phone).await;
    assert_eq!(
        codec, "audio/opus",
        "the call should use Opus when both have it"
    );
    // A video phone: video both ways too.
    wait(
        &b,
        "the phone's video decoding and shown",
        "const v = document.querySelector('video[data-testid=phone-media]');
         const pc = window.peercall && window.peercall.phone;
         if (!v || !pc || v.videoWidth === 0) return false;
         return (async () => {
             let frames = 0;
             (await pc.getStats()).forEach(r => {
                 if (r.type === 'inbound-rtp' && r.kind === 'video') frames = r.framesDecoded || 0;
             });
             return frames > 10;
         })();",
    )
    .await;
    phone
        .wait_log("video: receiving with resolution", 1, LIMIT)
        .await
        .unwrap();
    for key in ["1", "5", "hash"] {
        b.click(&format!("[data-testid=key-{key}]")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for (digit, n) in [('1', 1), ('5', 1), ('#', 1)] {
        phone
            .wait_log(&format!("received event: '{digit}' (end=1)"), n, LIMIT)
            .await
            .unwrap();
    }
    b.click("[data-testid=phone-hang-up]").await.unwrap();
    wait_stage(&b, "ended", LIMIT, &janus, &phone).await;
    assert!(status_text(&b).await.contains("You hung up"));
    phone.wait_log("terminated", 1, LIMIT).await.unwrap();
    assert_phone_heard_browser(&phone);
    drop(phone);

    // 2. G.711 only, as telephone networks do; the phone hangs up.
    let phone = Baresip::start(&PhoneOptions {
        g711_only: true,
        ..PhoneOptions::default()
    })
    .await
    .unwrap();
    next_call(&b).await;
    dial(&b, &phone.uri()).await;
    wait_stage(&b, "incall", LIMIT, &janus, &phone).await;
    let codec = assert_browser_hears_phone(&b, &janus, &phone).await;
    assert!(codec == "audio/PCMU", "a G.711-only phone gave {codec:?}");
    println!("a G.711-only phone: {codec}");
    // Mute: the phone hears silence (checked in its recording below),
    // and the keypad still works (telephone events need the audio stream
    // going). Unmute brings the tone back (the recording's last second).
    b.click("[data-testid=phone-mute]").await.unwrap();
    wait(
        &b,
        "the mute button pressed",
        "return document.querySelector('[data-testid=phone-mute]')
             .getAttribute('aria-pressed') === 'true'",
    )
    .await;
    b.click("[data-testid=key-9]").await.unwrap();
    phone
        .wait_log("received event: '9' (end=1)", 1, LIMIT)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    b.click("[data-testid=phone-mute]").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    phone.command("hangup", "").await.unwrap();
    wait_stage(&b, "ended", LIMIT, &janus, &phone).await;
    assert!(
        status_text(&b).await.contains("The other side hung up"),
        "{}",
        status_text(&b).await
    );
    assert_phone_heard_browser(&phone);
    let (rate, samples) = read_wav(&phone.received()[0]).unwrap();
    let quiet = longest_quiet(rate, &samples);
    assert!(
        quiet >= Duration::from_secs(1),
        "muted, the phone still heard sound: its longest quiet stretch is {quiet:?}"
    );
    println!("muted: the phone heard {quiet:?} of silence");
    drop(phone);

    // 3. A phone that rings and is rejected: busy (or declined), in words.
    let phone = Baresip::start(&PhoneOptions {
        answer: Answer::Manual,
        ..PhoneOptions::default()
    })
    .await
    .unwrap();
    next_call(&b).await;
    dial(&b, &phone.uri()).await;
    wait_stage(&b, "ringing", LIMIT, &janus, &phone).await;
    phone.command("hangup", "").await.unwrap();
    wait_stage(&b, "ended", LIMIT, &janus, &phone).await;
    let said = status_text(&b).await;
    assert!(
        said.contains("Busy") || said.contains("declined"),
        "a rejected call says {said:?}"
    );
    println!("a rejected call: {said}");
    drop(phone);

    // 4. Nobody at the address, and an address that swallows the call
    // without a word (a socket that reads and never answers): each ends
    // with an explanation within 35 s.
    let closed = silent_udp_port();
    let hole = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let black_hole = hole.local_addr().unwrap().port();
    for (what, port) in [("nobody", closed), ("a black hole", black_hole)] {
        next_call(&b).await;
        let dialled = Instant::now();
        dial(&b, &format!("sip:phone@127.0.0.1:{port}")).await;
        let limit = Duration::from_secs(35);
        if let Err(e) = b
            .wait_until(
                &format!("the call to {what} ends"),
                &stage_is("ended"),
                limit,
            )
            .await
        {
            panic!("{e}\nJanus:\n{}", tail(&janus.log(), 30));
        }
        let said = status_text(&b).await;
        println!(
            "calling {what} ended after {} ms: {said}",
            dialled.elapsed().as_millis()
        );
        assert!(
            !said.ends_with("Call ended") && said.len() > "ended: ".len() + 5,
            "the failure is not explained: {said:?}"
        );
    }
    drop(hole);
    relay.assert_nothing_blocked().await;
    b.close().await;
}
