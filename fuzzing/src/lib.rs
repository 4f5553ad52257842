//! The fuzz targets' bodies: each takes any bytes, must not panic, and
//! checks a property of what it reads. `fuzz/fuzz_targets/*.rs` run them
//! under libFuzzer (`scripts/fuzz.sh`); `tests/replay.rs` runs every kept
//! input in `fuzz/seeds/` and `fuzz/regressions/` as a regression test.

use peercall_core::{channel, config::CallConfig, stats};

/// The names of the targets, as `fuzz/fuzz_targets/` and the input folders
/// call them.
pub const TARGETS: [&str; 5] = ["protocol", "channel", "stats", "config", "relay"];

/// Runs target `name` on `data`.
pub fn run(name: &str, data: &[u8]) {
    match name {
        "protocol" => protocol(data),
        "channel" => channel(data),
        "stats" => stats(data),
        "config" => config(data),
        "relay" => relay(data),
        _ => panic!("no fuzz target {name}"),
    }
}

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// The signaling decoder: what it accepts encodes back to the same message.
pub fn protocol(data: &[u8]) {
    let Some(text) = text(data) else { return };
    if let Ok(peercall_protocol::Decoded::Message(envelope)) =
        peercall_protocol::decode(text, peercall_protocol::MAX_MESSAGE_BYTES)
    {
        let again = peercall_protocol::encode(&envelope);
        match peercall_protocol::decode(&again, usize::MAX) {
            Ok(peercall_protocol::Decoded::Message(back)) => {
                assert_eq!(back, envelope, "{text} -> {again}")
            }
            other => panic!("{text} encoded as {again}, which decodes as {other:?}"),
        }
    }
}

/// The data-channel message parser: the same round trip.
pub fn channel(data: &[u8]) {
    let Some(text) = text(data) else { return };
    if let Ok(message) = channel::parse(text) {
        let again = channel::encode(&message);
        assert_eq!(
            channel::parse(&again).as_ref(),
            Ok(&message),
            "{text} -> {again}"
        );
    }
    let _ = channel::chat_text(text);
    let name = channel::safe_file_name(text);
    assert!(!name.contains('/') && !name.contains('\0'), "{name:?}");
    let _ = channel::file_label_id(text);
}

/// The stats reader, and the panel's view of one snapshot and of two.
pub fn stats(data: &[u8]) {
    let Some(text) = text(data) else { return };
    if let Ok(snapshot) = stats::Snapshot::parse(text) {
        let _ = stats::view(None, &snapshot);
        let _ = stats::view(Some(&snapshot), &snapshot);
        let _ = stats::view(Some(&stats::Snapshot::default()), &snapshot);
    }
}

/// config.json, then a page query (`a=b&c=d`, already decoded) over it,
/// then the room in the fragment; and the ICE readers.
pub fn config(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let (file, query) = text.split_once('\n').unwrap_or((text, ""));
    let base = CallConfig::built_in();
    let config = base.clone().with_file(file).unwrap_or(base);
    let params = query
        .split('&')
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")));
    if let Ok(config) = config.with_query(params) {
        for relay in &config.relays {
            let _ = config.credentials_url_for(relay);
        }
    }
    let _ = peercall_core::config::room_from_hash(query);
    let _ = peercall_core::ice::parse_ice_servers(file);
    let _ = peercall_core::ice::parse_grant(file);
    let _ = peercall_core::signaling::check_relay_url(query);
}

/// The relay, several connections at once. Each step is a byte saying what
/// happens, and to which of four connections:
/// - `c % 8 == 0`: it connects (again), `1`: it closes cleanly, `2`: it
///   drops;
/// - `3`: it joins room `r{n}` as `p{m}` (two more bytes);
/// - `4`: it sends an offer to `p{m}` in room `r{n}` (two more bytes);
/// - otherwise: it sends a text frame, the next byte its length, then that
///   many bytes (as UTF-8, lossily: frames with invalid UTF-8 close the
///   socket before the relay reads them).
pub fn relay(data: &[u8]) {
    relay_steps(data);
}

/// [`relay`], giving how many messages went from one peer to another.
pub fn relay_steps(data: &[u8]) -> usize {
    let mut relay = peercall_relay::fuzzing::Harness::new();
    let mut bytes = data.iter().copied();
    while let Some(op) = bytes.next() {
        let conn = usize::from(op >> 3) % 4;
        let mut next = || bytes.next().unwrap_or(0);
        match op % 8 {
            0 => relay.connect(conn, (op & 0x80 != 0).then_some("r0")),
            1 => relay.disconnect(conn, true),
            2 => relay.disconnect(conn, false),
            3 => {
                let (room, id) = (next() % 6, next() % 6);
                relay.send(
                    conn,
                    &format!(
                        r#"{{"v":1,"type":"join","room":"r{room}","from":"p{id}","name":"P"}}"#
                    ),
                );
            }
            4 => {
                let (room, to) = (next() % 6, next() % 6);
                let from = conn;
                relay.send(
                    conn,
                    &format!(
                        r#"{{"v":1,"type":"offer","room":"r{room}","from":"p{from}","to":"p{to}","sdp":"v=0"}}"#
                    ),
                );
            }
            _ => {
                let len = usize::from(next());
                let frame: Vec<u8> = (0..len).map(|_| next()).collect();
                relay.send(conn, &String::from_utf8_lossy(&frame));
            }
        }
    }
    relay.relayed()
}
