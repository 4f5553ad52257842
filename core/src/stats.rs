//! The stats panel's numbers from `RTCPeerConnection.getStats()`, pure.
//!
//! The glue hands over the report as JSON (an array of the stats
//! dictionaries); [`Snapshot::parse`] keeps what the panel shows, and
//! [`view`] turns two snapshots a second apart into rates. Chromium and
//! Firefox name the selected candidate pair differently (the transport's
//! `selectedCandidatePairId`, or `selected: true` on the pair); both are read.

use serde_json::{Map, Value};

/// One stats dictionary; every field the panel might use, all optional (a
/// field of an unexpected kind counts as absent). Read by hand from a
/// `serde_json::Value`: a derived deserializer for these 27 fields was
/// 10 KB of the app's wasm.
#[derive(Debug, Default)]
struct Raw {
    id: String,
    type_: String,
    timestamp: f64,
    kind: Option<String>,
    // transport
    selected_candidate_pair_id: Option<String>,
    // candidate-pair
    local_candidate_id: Option<String>,
    remote_candidate_id: Option<String>,
    selected: Option<bool>,
    nominated: Option<bool>,
    state: Option<String>,
    current_round_trip_time: Option<f64>,
    // local-candidate, remote-candidate
    candidate_type: Option<String>,
    protocol: Option<String>,
    relay_protocol: Option<String>,
    address: Option<String>,
    port: Option<u32>,
    // inbound-rtp, outbound-rtp
    bytes_received: Option<f64>,
    bytes_sent: Option<f64>,
    packets_received: Option<f64>,
    packets_lost: Option<f64>,
    frames_per_second: Option<f64>,
    frame_width: Option<u32>,
    frame_height: Option<u32>,
    codec_id: Option<String>,
    mid: Option<String>,
    // inbound-rtp audio
    total_audio_energy: Option<f64>,
    total_samples_duration: Option<f64>,
    // remote-inbound-rtp
    round_trip_time: Option<f64>,
    // codec
    mime_type: Option<String>,
}

/// One end of the selected candidate pair.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Endpoint {
    /// host, srflx, prflx or relay.
    pub candidate_type: String,
    /// udp or tcp (to the other side, or to the TURN server's relay).
    pub protocol: String,
    /// For a local relay candidate: how we reach the TURN server (udp,
    /// tcp, tls).
    pub relay_protocol: Option<String>,
    /// Address and port, when the browser tells.
    pub address: Option<String>,
}

/// The parts of one `getStats()` report the panel uses.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// When, in ms (the report's newest timestamp).
    pub at_ms: f64,
    /// The selected pair's ends: (local, remote).
    pub pair: Option<(Endpoint, Endpoint)>,
    /// The pair's current round-trip time, ms.
    pub rtt_ms: Option<f64>,
    /// Bytes received over every inbound RTP stream.
    pub bytes_in: f64,
    /// Bytes sent over every outbound RTP stream.
    pub bytes_out: f64,
    /// Packets received and lost, inbound.
    pub packets_in: f64,
    /// Packets lost, inbound.
    pub lost_in: f64,
    /// The inbound video: frames per second, width, height.
    pub video: Option<(Option<f64>, u32, u32)>,
    /// Inbound codecs, e.g. `video/VP8`, `audio/opus`.
    pub codecs: Vec<String>,
    /// The inbound audio's running totals, for who is speaking
    /// ([`crate::mesh::Speakers`]): `totalAudioEnergy` and
    /// `totalSamplesDuration` (seconds).
    pub audio_energy: Option<(f64, f64)>,
    /// The same per inbound audio stream, by its m-line's mid (a
    /// connection that carries several people's audio: the SFU's).
    pub audio_by_mid: Vec<(String, (f64, f64))>,
}

impl Raw {
    fn read(o: &Map<String, Value>) -> Self {
        let s = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_owned);
        let f = |k: &str| o.get(k).and_then(Value::as_f64);
        let b = |k: &str| o.get(k).and_then(Value::as_bool);
        let u = |k: &str| {
            o.get(k)
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
        };
        Raw {
            id: s("id").unwrap_or_default(),
            type_: s("type").unwrap_or_default(),
            timestamp: f("timestamp").unwrap_or_default(),
            kind: s("kind"),
            selected_candidate_pair_id: s("selectedCandidatePairId"),
            local_candidate_id: s("localCandidateId"),
            remote_candidate_id: s("remoteCandidateId"),
            selected: b("selected"),
            nominated: b("nominated"),
            state: s("state"),
            current_round_trip_time: f("currentRoundTripTime"),
            candidate_type: s("candidateType"),
            protocol: s("protocol"),
            relay_protocol: s("relayProtocol"),
            address: s("address"),
            port: u("port"),
            bytes_received: f("bytesReceived"),
            bytes_sent: f("bytesSent"),
            packets_received: f("packetsReceived"),
            packets_lost: f("packetsLost"),
            frames_per_second: f("framesPerSecond"),
            frame_width: u("frameWidth"),
            frame_height: u("frameHeight"),
            codec_id: s("codecId"),
            mid: s("mid"),
            total_audio_energy: f("totalAudioEnergy"),
            total_samples_duration: f("totalSamplesDuration"),
            round_trip_time: f("roundTripTime"),
            mime_type: s("mimeType"),
        }
    }
}

impl Snapshot {
    /// Reads a report given as a JSON array of stats dictionaries.
    pub fn parse(json: &str) -> Result<Self, String> {
        let value: Value =
            serde_json::from_str(json).map_err(|e| format!("unreadable stats: {e}"))?;
        let Value::Array(items) = value else {
            return Err("unreadable stats: not an array".into());
        };
        let raws: Vec<Raw> = items
            .iter()
            .filter_map(Value::as_object)
            .map(Raw::read)
            .collect();
        let by_id =
            |id: &Option<String>| id.as_ref().and_then(|id| raws.iter().find(|r| &r.id == id));
        let mut s = Snapshot {
            at_ms: raws.iter().map(|r| r.timestamp).fold(0.0, f64::max),
            ..Snapshot::default()
        };
        let pair = raws
            .iter()
            .filter(|r| r.type_ == "transport")
            .find_map(|t| by_id(&t.selected_candidate_pair_id))
            .or_else(|| {
                raws.iter()
                    .find(|r| r.type_ == "candidate-pair" && r.selected == Some(true))
            })
            .or_else(|| {
                raws.iter().find(|r| {
                    r.type_ == "candidate-pair"
                        && r.nominated == Some(true)
                        && r.state.as_deref() == Some("succeeded")
                })
            });
        if let Some(pair) = pair {
            let end = |r: &Raw| Endpoint {
                candidate_type: r.candidate_type.clone().unwrap_or_default(),
                protocol: r.protocol.clone().unwrap_or_default(),
                relay_protocol: r.relay_protocol.clone(),
                address: r
                    .address
                    .as_ref()
                    .map(|a| format!("{a}:{}", r.port.unwrap_or(0))),
            };
            if let (Some(l), Some(r)) = (
                by_id(&pair.local_candidate_id),
                by_id(&pair.remote_candidate_id),
            ) {
                s.pair = Some((end(l), end(r)));
            }
            s.rtt_ms = pair.current_round_trip_time.map(|t| t * 1000.0);
        }
        for r in &raws {
            match r.type_.as_str() {
                "inbound-rtp" => {
                    s.bytes_in += r.bytes_received.unwrap_or(0.0);
                    s.packets_in += r.packets_received.unwrap_or(0.0);
                    s.lost_in += r.packets_lost.unwrap_or(0.0).max(0.0);
                    if r.kind.as_deref() == Some("video") {
                        if let (Some(w), Some(h)) = (r.frame_width, r.frame_height) {
                            s.video = Some((r.frames_per_second, w, h));
                        }
                    }
                    if r.kind.as_deref() == Some("audio") {
                        if let (Some(e), Some(d)) = (r.total_audio_energy, r.total_samples_duration)
                        {
                            s.audio_energy = Some((e, d));
                            if let Some(mid) = &r.mid {
                                s.audio_by_mid.push((mid.clone(), (e, d)));
                            }
                        }
                    }
                    if let Some(codec) = by_id(&r.codec_id).and_then(|c| c.mime_type.clone()) {
                        s.codecs.push(codec);
                    }
                }
                "outbound-rtp" => s.bytes_out += r.bytes_sent.unwrap_or(0.0),
                "remote-inbound-rtp" if s.rtt_ms.is_none() => {
                    s.rtt_ms = r.round_trip_time.map(|t| t * 1000.0)
                }
                _ => {}
            }
        }
        s.codecs.sort();
        s.codecs.dedup();
        Ok(s)
    }

    /// Whether media goes through a TURN server (either end is a relay
    /// candidate).
    pub fn via_turn(&self) -> bool {
        self.pair
            .as_ref()
            .is_some_and(|(l, r)| l.candidate_type == "relay" || r.candidate_type == "relay")
    }
}

/// What the panel shows for one connection.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatsView {
    /// "relay ⇄ relay, TURN over udp" and the like; `None` before a pair
    /// is selected.
    pub path: Option<String>,
    /// Media goes through TURN.
    pub via_turn: bool,
    /// Round trip, ms.
    pub rtt_ms: Option<f64>,
    /// Receiving, kbit/s (needs two snapshots).
    pub in_kbps: Option<f64>,
    /// Sending, kbit/s (needs two snapshots).
    pub out_kbps: Option<f64>,
    /// Inbound packet loss over the interval, percent.
    pub loss_pct: Option<f64>,
    /// "640×480 at 30 fps".
    pub video: Option<String>,
    /// "VP8, opus".
    pub codecs: String,
}

/// The panel's view of `now`, with rates since `prev` when there is one.
pub fn view(prev: Option<&Snapshot>, now: &Snapshot) -> StatsView {
    let path = now.pair.as_ref().map(|(l, r)| {
        let mut path = format!(
            "{} ⇄ {} over {}",
            l.candidate_type, r.candidate_type, l.protocol
        );
        if now.via_turn() {
            let how = l.relay_protocol.as_deref().unwrap_or(&l.protocol);
            path.push_str(&format!(", through TURN ({how})"));
        } else if l.candidate_type == "host" && r.candidate_type == "host" {
            path.push_str(", direct");
        }
        path
    });
    let mut v = StatsView {
        path,
        via_turn: now.via_turn(),
        rtt_ms: now.rtt_ms,
        video: now.video.map(|(fps, w, h)| match fps {
            Some(fps) => format!("{w}×{h} at {fps:.0} fps"),
            None => format!("{w}×{h}"),
        }),
        codecs: now
            .codecs
            .iter()
            .map(|c| c.split('/').nth(1).unwrap_or(c))
            .collect::<Vec<_>>()
            .join(", "),
        ..StatsView::default()
    };
    if let Some(prev) = prev {
        let secs = (now.at_ms - prev.at_ms) / 1000.0;
        if secs > 0.0 {
            let rate = |a: f64, b: f64| Some(((b - a).max(0.0) * 8.0 / 1000.0) / secs);
            v.in_kbps = rate(prev.bytes_in, now.bytes_in);
            v.out_kbps = rate(prev.bytes_out, now.bytes_out);
        }
        let received = (now.packets_in - prev.packets_in).max(0.0);
        let lost = (now.lost_in - prev.lost_in).max(0.0);
        if received + lost > 0.0 {
            v.loss_pct = Some(lost * 100.0 / (received + lost));
        }
    }
    v
}

#[cfg(test)]
#[path = "stats_tests.rs"]
mod tests;
