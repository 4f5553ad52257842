use super::*;

/// A trimmed Chromium report: the transport names the selected pair.
fn chromium(at: f64, bytes_in: f64, bytes_out: f64, received: f64, lost: f64) -> String {
    format!(
        r#"[
  {{"id":"T01","type":"transport","timestamp":{at},"selectedCandidatePairId":"CPa"}},
  {{"id":"CPa","type":"candidate-pair","timestamp":{at},"localCandidateId":"Il","remoteCandidateId":"Ir","nominated":true,"state":"succeeded","currentRoundTripTime":0.012}},
  {{"id":"CPb","type":"candidate-pair","timestamp":{at},"localCandidateId":"Ix","remoteCandidateId":"Ir","state":"failed"}},
  {{"id":"Il","type":"local-candidate","timestamp":{at},"candidateType":"relay","protocol":"udp","relayProtocol":"tcp","address":"127.0.0.1","port":50000}},
  {{"id":"Ix","type":"local-candidate","timestamp":{at},"candidateType":"host","protocol":"udp"}},
  {{"id":"Ir","type":"remote-candidate","timestamp":{at},"candidateType":"relay","protocol":"udp","address":"127.0.0.1","port":50002}},
  {{"id":"IT1","type":"inbound-rtp","timestamp":{at},"kind":"video","bytesReceived":{bytes_in},"packetsReceived":{received},"packetsLost":{lost},"framesPerSecond":30,"frameWidth":640,"frameHeight":480,"codecId":"C1"}},
  {{"id":"IT2","type":"inbound-rtp","timestamp":{at},"kind":"audio","bytesReceived":1000,"packetsReceived":50,"packetsLost":0,"codecId":"C2","totalAudioEnergy":0.25,"totalSamplesDuration":{at}}},
  {{"id":"OT1","type":"outbound-rtp","timestamp":{at},"kind":"video","bytesSent":{bytes_out}}},
  {{"id":"C1","type":"codec","timestamp":{at},"mimeType":"video/VP8"}},
  {{"id":"C2","type":"codec","timestamp":{at},"mimeType":"audio/opus"}}
]"#
    )
}

#[test]
fn chromium_reports_give_the_selected_pair_and_rates() {
    let a = Snapshot::parse(&chromium(1000.0, 10_000.0, 20_000.0, 100.0, 0.0)).unwrap();
    let b = Snapshot::parse(&chromium(2000.0, 135_000.0, 120_000.0, 190.0, 10.0)).unwrap();
    assert!(b.via_turn());
    let (local, remote) = b.pair.clone().unwrap();
    assert_eq!(local.candidate_type, "relay");
    assert_eq!(local.address.as_deref(), Some("127.0.0.1:50000"));
    assert_eq!(remote.candidate_type, "relay");
    let v = view(Some(&a), &b);
    assert_eq!(
        v.path.as_deref(),
        Some("relay ⇄ relay over udp, through TURN (tcp)")
    );
    assert!(v.via_turn);
    assert_eq!(v.rtt_ms, Some(12.0));
    // (135000 + 1000 - 10000 - 1000) bytes in 1 s = 1000 kbit/s.
    assert_eq!(v.in_kbps, Some(1000.0));
    assert_eq!(v.out_kbps, Some(800.0));
    // 90 + 0 received, 10 lost.
    assert_eq!(v.loss_pct, Some(10.0));
    assert_eq!(v.video.as_deref(), Some("640×480 at 30 fps"));
    assert_eq!(v.codecs, "opus, VP8");
    assert_eq!(b.audio_energy, Some((0.25, 2000.0)));
    // One snapshot: no rates yet.
    let first = view(None, &a);
    assert_eq!((first.in_kbps, first.loss_pct), (None, None));
}

#[test]
fn firefox_marks_the_selected_pair_itself() {
    let report = r#"[
      {"id":"p1","type":"candidate-pair","timestamp":5,"localCandidateId":"l1","remoteCandidateId":"r1","selected":false,"nominated":true,"state":"succeeded"},
      {"id":"p2","type":"candidate-pair","timestamp":5,"localCandidateId":"l2","remoteCandidateId":"r2","selected":true,"nominated":true,"state":"succeeded"},
      {"id":"l1","type":"local-candidate","timestamp":5,"candidateType":"relay","protocol":"udp"},
      {"id":"l2","type":"local-candidate","timestamp":5,"candidateType":"host","protocol":"udp"},
      {"id":"r1","type":"remote-candidate","timestamp":5,"candidateType":"relay","protocol":"udp"},
      {"id":"r2","type":"remote-candidate","timestamp":5,"candidateType":"host","protocol":"udp"},
      {"id":"ri","type":"remote-inbound-rtp","timestamp":5,"roundTripTime":0.004},
      {"id":"x","type":"something-new","timestamp":5,"weird":[1,2]}
    ]"#;
    let s = Snapshot::parse(report).unwrap();
    assert!(!s.via_turn());
    let v = view(None, &s);
    assert_eq!(v.path.as_deref(), Some("host ⇄ host over udp, direct"));
    assert_eq!(v.rtt_ms, Some(4.0));
    assert_eq!(v.video, None);
}

#[test]
fn no_pair_yet_and_bad_input() {
    let s = Snapshot::parse("[]").unwrap();
    assert_eq!(view(None, &s).path, None);
    assert!(Snapshot::parse("{}").is_err());
    assert!(Snapshot::parse("nope").is_err());
    // A pair whose candidates are missing is no path.
    let s = Snapshot::parse(
        r#"[{"id":"p","type":"candidate-pair","timestamp":1,"selected":true,"localCandidateId":"gone","remoteCandidateId":"gone"}]"#,
    )
    .unwrap();
    assert_eq!(s.pair, None);
}
