//! Native tests of [`Room`]: scripted sequences first, then a simulated
//! broadcast relay that echoes, duplicates and reorders.

use super::*;
use serde_json::{json, Value};

const T: Timing = Timing {
    heartbeat_ms: 1_000,
    peer_timeout_ms: 3_500,
};

fn room(me: &str) -> Room {
    Room::new("r", me, Some(me.to_uppercase()), T)
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

/// A message as another client would send it.
fn from(sender: &str, seq: u64, to: Option<&str>, body: Value) -> String {
    let mut v = json!({"v": 1, "room": "r", "from": sender, "seq": seq});
    if let Some(to) = to {
        v["to"] = json!(to);
    }
    for (k, val) in body.as_object().unwrap() {
        v[k] = val.clone();
    }
    v.to_string()
}

fn joined(id: &str, name: Option<&str>) -> Event {
    Event::Joined {
        id: id.into(),
        name: name.map(Into::into),
    }
}

fn left(id: &str, why: Gone) -> Event {
    Event::Left { id: id.into(), why }
}

#[test]
fn peer_ids_are_128_bits_of_hex() {
    let id = peer_id([0xab; 16]);
    assert_eq!(id.len(), 32);
    assert_eq!(id, "ab".repeat(16));
    assert!(peercall_protocol::is_valid_id(
        &id,
        peercall_protocol::MAX_ID_LEN
    ));
}

#[test]
fn join_is_answered_with_present_and_both_know_each_other() {
    let (mut a, mut b) = (room("a"), room("b"));
    let join = b.join(0);
    assert_eq!(
        parse(&join),
        json!({"v": 1, "room": "r", "from": "b", "seq": 1, "type": "join", "name": "B"})
    );
    let out = a.receive(&join, 0);
    assert_eq!(out.events, vec![joined("b", Some("B"))]);
    assert_eq!(out.send.len(), 1);
    assert_eq!(
        parse(&out.send[0]),
        json!({"v": 1, "room": "r", "from": "a", "to": "b", "seq": 1, "type": "present", "name": "A"})
    );
    let out = b.receive(&out.send[0], 0);
    assert_eq!(out.events, vec![joined("a", Some("A"))]);
    assert!(out.send.is_empty(), "present gets no reply");
    assert_eq!(a.peers().keys().collect::<Vec<_>>(), ["b"]);
    assert_eq!(b.peers()["a"].name.as_deref(), Some("A"));
}

#[test]
fn names_are_cut_to_what_the_relay_accepts_both_ways() {
    // Ours, before it is sent: the relay refuses longer ones (bad_name).
    let mut a = Room::new("r", "a", Some(format!("  {}\u{7}  ", "n".repeat(100))), T);
    let sent = parse(&a.join(0));
    assert_eq!(sent["name"], "n".repeat(peercall_protocol::MAX_NAME_CHARS));
    // Theirs, as a relay that checks nothing may pass it on.
    let huge = "x".repeat(60_000);
    let out = a.receive(
        &from("b", 1, None, json!({"type": "join", "name": huge})),
        0,
    );
    let Some(Event::Joined {
        name: Some(name), ..
    }) = out.events.first()
    else {
        panic!("{:?}", out.events);
    };
    assert_eq!(name.chars().count(), peercall_protocol::MAX_NAME_CHARS);
    let out = a.receive(
        &from("c", 1, None, json!({"type": "join", "name": "\u{1b}[31m"})),
        0,
    );
    assert_eq!(out.events, vec![joined("c", Some("[31m"))]);
}

#[test]
fn echoes_other_rooms_and_other_recipients_are_ignored() {
    let mut a = room("a");
    let own = a.join(0);
    assert_eq!(a.receive(&own, 0).events, [Event::Ignored(Ignored::Echo)]);
    let elsewhere = from("b", 1, None, json!({"type": "join"})).replace("\"r\"", "\"q\"");
    assert_eq!(
        a.receive(&elsewhere, 0).events,
        [Event::Ignored(Ignored::OtherRoom)]
    );
    let for_c = from("b", 2, Some("c"), json!({"type": "offer", "sdp": "v=0"}));
    assert_eq!(
        a.receive(&for_c, 0).events,
        [Event::Ignored(Ignored::NotForUs)]
    );
    let for_relay = from("b", 3, Some("relay"), json!({"type": "ping"}));
    assert_eq!(
        a.receive(&for_relay, 0).events,
        [Event::Ignored(Ignored::NotForUs)]
    );
    assert!(a.peers().is_empty());
}

#[test]
fn duplicates_count_once() {
    let mut a = room("a");
    a.receive(&from("b", 1, None, json!({"type": "join"})), 0);
    let offer = from("b", 2, Some("a"), json!({"type": "offer", "sdp": "v=0"}));
    let first = a.receive(&offer, 0);
    assert_eq!(
        first.events,
        [Event::Signal {
            from: "b".into(),
            signal: Signal::Offer {
                sdp: "v=0".into(),
                ice_restart: false
            }
        }]
    );
    assert_eq!(
        a.receive(&offer, 0).events,
        [Event::Ignored(Ignored::Duplicate)]
    );
    let join_again = from("b", 1, None, json!({"type": "join"}));
    assert_eq!(
        a.receive(&join_again, 0).events,
        [Event::Ignored(Ignored::Duplicate)]
    );
}

#[test]
fn a_replaced_description_arriving_late_is_stale_but_candidates_are_not() {
    let mut a = room("a");
    a.receive(&from("b", 1, None, json!({"type": "join"})), 0);
    let cand = |seq| {
        from(
            "b",
            seq,
            Some("a"),
            json!({"type": "candidate", "candidate": {"candidate": format!("candidate:{seq}"), "sdpMid": "0"}}),
        )
    };
    // offer 2 (seq 3) overtakes offer 1 (seq 2); candidates come in any order.
    let out = a.receive(&cand(5), 0);
    assert!(
        matches!(&out.events[..], [Event::Signal { signal: Signal::Candidate(c), .. }] if c.candidate == "candidate:5")
    );
    let out = a.receive(
        &from(
            "b",
            3,
            Some("a"),
            json!({"type": "offer", "sdp": "second", "ice_restart": true}),
        ),
        0,
    );
    assert_eq!(
        out.events,
        [Event::Signal {
            from: "b".into(),
            signal: Signal::Offer {
                sdp: "second".into(),
                ice_restart: true
            }
        }]
    );
    let out = a.receive(
        &from("b", 2, Some("a"), json!({"type": "offer", "sdp": "first"})),
        0,
    );
    assert_eq!(out.events, [Event::Ignored(Ignored::Stale)]);
    let out = a.receive(&cand(4), 0);
    assert!(matches!(
        &out.events[..],
        [Event::Signal {
            signal: Signal::Candidate(_),
            ..
        }]
    ));
    let out = a.receive(
        &from("b", 6, Some("a"), json!({"type": "end_of_candidates"})),
        0,
    );
    assert!(matches!(
        &out.events[..],
        [Event::Signal {
            signal: Signal::EndOfCandidates,
            ..
        }]
    ));
}

#[test]
fn leave_overtaking_the_join_keeps_the_peer_out() {
    let mut a = room("a");
    let out = a.receive(&from("b", 2, None, json!({"type": "leave"})), 0);
    assert_eq!(out.events, [Event::Ignored(Ignored::UnknownPeer)]);
    let out = a.receive(&from("b", 1, None, json!({"type": "join"})), 0);
    assert_eq!(out.events, [Event::Ignored(Ignored::Stale)]);
    assert!(out.send.is_empty());
    assert!(a.peers().is_empty());
    // A later join (higher seq) is a real return.
    let out = a.receive(&from("b", 3, None, json!({"type": "join"})), 0);
    assert_eq!(out.events, [joined("b", None)]);
}

#[test]
fn hang_up_and_relay_reported_disconnects_are_told_apart() {
    let mut a = room("a");
    a.receive(&from("b", 1, None, json!({"type": "join"})), 0);
    a.receive(&from("c", 1, None, json!({"type": "join"})), 0);
    let out = a.receive(&from("b", 2, None, json!({"type": "leave"})), 0);
    assert_eq!(out.events, [left("b", Gone::HungUp)]);
    // The relay's leave for c has no seq; what c sent before it is stale,
    // what c sends after reconnecting is not.
    let relay_leave = r#"{"v":1,"room":"r","from":"c","type":"leave","reason":"disconnected"}"#;
    assert_eq!(
        a.receive(relay_leave, 0).events,
        [left("c", Gone::Disconnected)]
    );
    let out = a.receive(&from("c", 2, None, json!({"type": "join", "name": "C"})), 0);
    assert_eq!(out.events, [joined("c", Some("C"))]);
    assert_eq!(a.peers().keys().collect::<Vec<_>>(), ["c"]);
}

#[test]
fn a_peer_heard_before_its_join_is_greeted() {
    let mut a = room("a");
    // b joined before us and our join never reached it; its heartbeat does.
    let out = a.receive(&from("b", 7, None, json!({"type": "ping"})), 0);
    assert_eq!(out.events, [joined("b", None)]);
    assert_eq!(out.send.len(), 1, "no pong to a heartbeat, but a present");
    let present = parse(&out.send[0]);
    assert_eq!(
        (present["type"].clone(), present["to"].clone()),
        (json!("present"), json!("b"))
    );
    // A ping addressed to us is answered.
    let out = a.receive(&from("b", 8, Some("a"), json!({"type": "ping"})), 0);
    assert!(out.events.is_empty());
    assert_eq!(parse(&out.send[0])["type"], "pong");
}

#[test]
fn heartbeats_keep_peers_and_silence_drops_them() {
    let mut a = room("a");
    a.join(0);
    a.receive(&from("b", 1, None, json!({"type": "join"})), 0);
    a.receive(&from("c", 1, None, json!({"type": "join"})), 0);
    assert!(
        a.tick(500).send.is_empty(),
        "joined 500 ms ago: no heartbeat yet"
    );
    let beat = a.tick(1_000);
    assert_eq!(beat.send.len(), 1);
    assert_eq!(parse(&beat.send[0])["type"], "ping");
    assert!(parse(&beat.send[0]).get("to").is_none());
    // b keeps beating, c goes quiet.
    for (i, t) in [1_000, 2_000, 3_000, 4_000].into_iter().enumerate() {
        a.receive(&from("b", 2 + i as u64, None, json!({"type": "ping"})), t);
    }
    assert!(a.tick(3_500).events.is_empty());
    let out = a.tick(3_501);
    assert_eq!(out.events, [left("c", Gone::TimedOut)]);
    assert_eq!(a.peers().keys().collect::<Vec<_>>(), ["b"]);
    // A timed-out peer that speaks again is back.
    let out = a.receive(&from("c", 9, None, json!({"type": "ping"})), 5_000);
    assert_eq!(out.events, [joined("c", None)]);
}

#[test]
fn relay_welcome_and_errors() {
    let mut a = room("a");
    a.join(0);
    let welcome = r#"{"v":1,"room":"r","from":"relay","to":"a","type":"welcome","peers":[{"id":"b","name":"B"},{"id":"c"}]}"#;
    let out = a.receive(welcome, 0);
    assert_eq!(
        out.events,
        [
            Event::Welcomed {
                features: vec![],
                route: peercall_protocol::Route::Mesh,
            },
            joined("b", Some("B")),
            joined("c", None)
        ]
    );
    // Their present replies add nobody twice.
    let out = a.receive(
        &from("b", 4, Some("a"), json!({"type": "present", "name": "B"})),
        0,
    );
    assert!(out.events.is_empty());
    let err = r#"{"v":1,"room":"r","from":"relay","to":"a","type":"error","code":"room_full","message":"The room is full (8 people)."}"#;
    assert_eq!(
        a.receive(err, 0).events,
        [Event::RelayError {
            code: ErrorCode::RoomFull,
            message: "The room is full (8 people).".into()
        }]
    );
    let for_b =
        r#"{"v":1,"room":"r","from":"relay","to":"b","type":"error","code":"x","message":"y"}"#;
    assert_eq!(
        a.receive(for_b, 0).events,
        [Event::Ignored(Ignored::NotForUs)]
    );
}

#[test]
fn id_taken_after_a_reconnect_is_retried_until_welcomed() {
    let mut a = room("a");
    a.join(0);
    let taken = r#"{"v":1,"room":"r","from":"relay","to":"a","type":"error","code":"id_taken","message":"another connection in this room is peer \"a\""}"#;
    assert!(matches!(
        &a.receive(taken, 100).events[..],
        [Event::RelayError {
            code: ErrorCode::IdTaken,
            ..
        }]
    ));
    assert!(a
        .tick(100 + REJOIN_DELAY_MS - 1)
        .send
        .iter()
        .all(|m| parse(m)["type"] != "join"));
    let out = a.tick(100 + REJOIN_DELAY_MS);
    assert_eq!(parse(&out.send[0])["type"], "join");
    // Refused again: again later. Welcomed: no more joins.
    a.receive(taken, 5_000);
    a.receive(
        r#"{"v":1,"room":"r","from":"relay","to":"a","type":"welcome","peers":[]}"#,
        6_000,
    );
    assert!(a
        .tick(20_000)
        .send
        .iter()
        .all(|m| parse(m)["type"] != "join"));
}

#[test]
fn a_join_refused_for_its_address_rate_is_retried_but_later_rate_limits_are_not() {
    let mut a = room("a");
    a.join(0);
    let limited = r#"{"v":1,"room":"r","from":"relay","to":"a","type":"error","code":"rate_limited","message":"too many joins from your address"}"#;
    a.receive(limited, 100);
    let out = a.tick(100 + REJOIN_DELAY_MS);
    assert_eq!(parse(&out.send[0])["type"], "join");
    a.receive(
        r#"{"v":1,"room":"r","from":"relay","to":"a","type":"welcome","peers":[]}"#,
        4_000,
    );
    // In the room: a rate limit is about messages, not the join.
    a.receive(limited, 5_000);
    assert!(a
        .tick(20_000)
        .send
        .iter()
        .all(|m| parse(m)["type"] != "join"));
}

#[test]
fn malformed_and_unknown_messages_never_panic_and_change_nothing() {
    let mut a = room("a");
    a.receive(&from("b", 1, None, json!({"type": "join"})), 0);
    for bad in [
        "",
        "null",
        "{",
        "[]",
        r#"{"v":1}"#,
        &"x".repeat(MAX_MESSAGE_BYTES + 1),
    ] {
        let out = a.receive(bad, 0);
        assert!(
            matches!(&out.events[..], [Event::Ignored(Ignored::Malformed(_))]),
            "{bad:.20}"
        );
        assert!(out.send.is_empty());
    }
    // An unknown type from a newer peer is ignored but still proves it alive.
    let newer = from("b", 2, None, json!({"type": "reaction", "emoji": "x"}));
    assert_eq!(
        a.receive(&newer, 3_000).events,
        [Event::Ignored(Ignored::UnknownType("reaction".into()))]
    );
    assert!(a.tick(4_000).events.is_empty(), "b was heard at 3 s");
    assert_eq!(a.peers().len(), 1);
}

#[test]
fn leaving_says_goodbye_and_forgets_everyone() {
    let mut a = room("a");
    a.join(0);
    a.receive(&from("b", 1, None, json!({"type": "join"})), 0);
    let bye = parse(&a.leave(10).unwrap());
    assert_eq!((bye["type"].clone(), bye.get("to")), (json!("leave"), None));
    assert!(bye.get("reason").is_none(), "hang-up is the default reason");
    assert!(a.peers().is_empty());
    let signal = parse(&a.signal("b", Signal::Answer { sdp: "v=0".into() }).unwrap());
    assert_eq!(signal["seq"], 4, "seq counts every message sent");
}

// --- a broadcast relay, simulated -------------------------------------------

/// A small deterministic generator (xorshift64*), so failures replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

struct Client {
    room: Room,
    alive: bool,
    events: Vec<Event>,
}

/// Forwards every frame to every client, the sender included; delivers
/// them out of order (any of the oldest few) and sometimes twice.
struct DumbRelay {
    rng: Rng,
    in_flight: Vec<String>,
    clients: Vec<Client>,
    now: u64,
}

impl DumbRelay {
    fn new(seed: u64, ids: &[&str]) -> Self {
        Self {
            rng: Rng(seed),
            in_flight: Vec::new(),
            clients: ids
                .iter()
                .map(|id| Client {
                    room: room(id),
                    alive: true,
                    events: Vec::new(),
                })
                .collect(),
            now: 0,
        }
    }

    fn post(&mut self, text: String) {
        self.in_flight.push(text);
    }

    /// Delivers until nothing is in flight.
    fn settle(&mut self) {
        let mut steps = 0;
        while !self.in_flight.is_empty() {
            steps += 1;
            assert!(steps < 100_000, "messages never settle");
            let window = self.in_flight.len().min(4);
            let text = self.in_flight.remove(self.rng.below(window));
            if self.rng.chance(20) {
                let at = self.rng.below(self.in_flight.len() + 1);
                self.in_flight.insert(at, text.clone());
            }
            for i in 0..self.clients.len() {
                if !self.clients[i].alive {
                    continue;
                }
                let out = self.clients[i].room.receive(&text, self.now);
                self.clients[i].events.extend(out.events);
                self.in_flight.extend(out.send);
            }
        }
    }

    fn tick_all(&mut self, now: u64) {
        self.now = now;
        for i in 0..self.clients.len() {
            if self.clients[i].alive {
                let out = self.clients[i].room.tick(now);
                self.clients[i].events.extend(out.events);
                self.in_flight.extend(out.send);
            }
        }
        self.settle();
    }

    fn peers_of(&self, i: usize) -> Vec<String> {
        self.clients[i].room.peers().keys().cloned().collect()
    }
}

fn signals(events: &[Event]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Signal {
                from,
                signal: Signal::Offer { sdp, .. },
            } => Some((from.clone(), sdp.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn presence_and_signals_survive_a_broadcast_relay_that_echoes_duplicates_and_reorders() {
    let ids = ["a", "b", "c", "d"];
    for seed in 1..=40 {
        let mut relay = DumbRelay::new(seed * 7919, &ids);
        // Staggered joins: each newcomer is answered by those already in.
        for i in 0..ids.len() {
            let join = relay.clients[i].room.join(0);
            relay.post(join);
            relay.settle();
        }
        for i in 0..ids.len() {
            let others: Vec<_> = ids
                .iter()
                .filter(|id| **id != ids[i])
                .map(|s| s.to_string())
                .collect();
            assert_eq!(relay.peers_of(i), others, "seed {seed}: client {}", ids[i]);
        }

        // Every client offers to every other, all in flight at once.
        for i in 0..ids.len() {
            for to in ids {
                if to != ids[i] {
                    let offer = relay.clients[i].room.signal(
                        to,
                        Signal::Offer {
                            sdp: format!("{}->{to}", ids[i]),
                            ice_restart: false,
                        },
                    );
                    relay.post(offer.unwrap());
                }
            }
        }
        relay.settle();
        for (i, me) in ids.iter().enumerate() {
            let mut got = signals(&relay.clients[i].events);
            got.sort();
            let want: Vec<_> = ids
                .iter()
                .filter(|id| *id != me)
                .map(|from| (from.to_string(), format!("{from}->{me}")))
                .collect();
            assert_eq!(got, want, "seed {seed}: offers to {me}, each exactly once");
        }

        // c hangs up; d vanishes without a word (tab killed, network gone).
        let bye = relay.clients[2].room.leave(0).unwrap();
        relay.clients[2].alive = false;
        relay.clients[3].alive = false;
        relay.post(bye);
        relay.settle();
        for t in (500..=5_000).step_by(500) {
            relay.tick_all(t);
        }
        for i in 0..2 {
            let events = &relay.clients[i].events;
            assert!(events.contains(&left("c", Gone::HungUp)), "seed {seed}");
            assert!(events.contains(&left("d", Gone::TimedOut)), "seed {seed}");
            let lefts = events
                .iter()
                .filter(|e| matches!(e, Event::Left { .. }))
                .count();
            assert_eq!(
                lefts, 2,
                "seed {seed}: nobody leaves twice, a and b keep each other"
            );
        }
        assert_eq!(relay.peers_of(0), ["b"]);
        assert_eq!(relay.peers_of(1), ["a"]);
        // Never a second Joined for the same peer while it stayed.
        for (i, me) in ids.iter().enumerate().take(2) {
            for other in ids.iter().filter(|id| *id != me) {
                let joins = relay.clients[i]
                    .events
                    .iter()
                    .filter(|e| matches!(e, Event::Joined { id, .. } if id == other))
                    .count();
                assert_eq!(joins, 1, "seed {seed}: {me} saw {other} join {joins} times");
            }
        }
    }
}

/// A relay whose clients are all still away (they come with [`joins`]).
fn empty_relay(seed: u64, ids: &[&str]) -> DumbRelay {
    let mut relay = DumbRelay::new(seed, ids);
    for c in &mut relay.clients {
        c.alive = false;
    }
    relay
}

/// Clients `who` connect and join, one after another or all at once.
fn joins(relay: &mut DumbRelay, who: std::ops::Range<usize>, at_once: bool) {
    for i in who {
        relay.clients[i].alive = true;
        let join = relay.clients[i].room.join(relay.now);
        relay.post(join);
        if !at_once {
            relay.settle();
        }
    }
    relay.settle();
}

fn full(events: &[Event]) -> Option<usize> {
    events.iter().find_map(|e| match e {
        Event::Full { people, .. } => Some(*people),
        _ => None,
    })
}

#[test]
fn the_seventh_finds_the_room_full_and_leaves_over_a_broadcast_relay() {
    let ids = ["a", "b", "c", "d", "e", "f", "g"];
    for seed in 1..=20 {
        let mut relay = empty_relay(seed * 104_729, &ids);
        joins(&mut relay, 0..6, false);
        for i in 0..6 {
            assert_eq!(relay.peers_of(i).len(), 5, "seed {seed}: six in the room");
            assert_eq!(full(&relay.clients[i].events), None);
        }
        // Much later (members are long past counting), a seventh comes.
        relay.tick_all(10_000);
        joins(&mut relay, 6..7, false);
        assert_eq!(full(&relay.clients[6].events), Some(7), "seed {seed}");
        assert!(relay.clients[6].room.refused());
        assert!(relay.peers_of(6).is_empty());
        for (i, me) in ids.iter().enumerate().take(6) {
            let events = &relay.clients[i].events;
            assert!(
                events.contains(&left("g", Gone::RoomFull)),
                "seed {seed}: {me} hears why g went"
            );
            assert_eq!(relay.peers_of(i).len(), 5, "seed {seed}: the six stay");
            assert_eq!(full(events), None);
        }
        // The refused room says nothing more (an offer the call layer
        // started before the count was in, or another goodbye, would bring
        // g back into the others' rooms), and hears nothing.
        let late = Signal::Answer { sdp: "v=0".into() };
        assert_eq!(relay.clients[6].room.signal("a", late), None);
        assert_eq!(relay.clients[6].room.leave(20_000), None);
        let out = relay.clients[6].room.tick(20_000);
        assert_eq!(out, Output::default());
        let ping = relay.clients[0].room.tick(20_000).send;
        assert!(!ping.is_empty());
        assert_eq!(
            relay.clients[6].room.receive(&ping[0], 20_000),
            Output::default()
        );
    }
}

/// Those who stayed (not turned away) all know each other, and nobody
/// else; at most six of them.
fn agreed(relay: &DumbRelay, ids: &[&str], seed: u64) -> Vec<String> {
    let stayed: Vec<String> = (0..ids.len())
        .filter(|&i| relay.clients[i].alive && !relay.clients[i].room.refused())
        .map(|i| ids[i].to_string())
        .collect();
    assert!(stayed.len() <= MAX_PEOPLE, "seed {seed}: {stayed:?}");
    for (i, me) in ids.iter().enumerate() {
        if stayed.iter().any(|s| s == me) {
            let others: Vec<String> = stayed.iter().filter(|s| s != me).cloned().collect();
            assert_eq!(relay.peers_of(i), others, "seed {seed}: {me} agrees");
        }
    }
    stayed
}

#[test]
fn two_newcomers_at_once_agree_on_who_is_in() {
    let ids = ["a", "b", "c", "d", "e", "f", "g"];
    for seed in 1..=40 {
        // Into a room of four: both fit (six).
        let mut relay = empty_relay(seed * 15_485_863, &ids[..6]);
        joins(&mut relay, 0..4, false);
        relay.tick_all(10_000);
        joins(&mut relay, 4..6, true);
        assert_eq!(agreed(&relay, &ids[..6], seed).len(), 6, "seed {seed}");
        // Into a room of five: each newcomer counts the other, so at most
        // one stays (the other's goodbye may reach it before its hello),
        // and everyone agrees on who.
        let mut relay = empty_relay(seed * 15_485_863, &ids);
        joins(&mut relay, 0..5, false);
        relay.tick_all(10_000);
        joins(&mut relay, 5..7, true);
        let stayed = agreed(&relay, &ids, seed);
        assert!(
            stayed.len() == 5 || stayed.len() == 6,
            "seed {seed}: {stayed:?}"
        );
        for member in &ids[..5] {
            assert!(
                stayed.iter().any(|s| s == member),
                "seed {seed}: members stay"
            );
        }
    }
}

#[test]
fn a_relay_welcome_listing_a_full_room_is_full_too_and_capacity_is_settable() {
    let mut r = room("z").with_capacity(3);
    assert_eq!(r.capacity(), 3);
    r.join(0);
    let welcome = r#"{"v":1,"room":"r","from":"relay","to":"z","type":"welcome","peers":[{"id":"a"},{"id":"b"},{"id":"c"}]}"#;
    let out = r.receive(welcome, 10);
    assert_eq!(full(&out.events), Some(4));
    assert!(out.events.contains(&Event::Full {
        people: 4,
        capacity: 3
    }));
    assert_eq!(out.send.len(), 1);
    let leave = parse(&out.send[0]);
    assert_eq!(
        (&leave["type"], &leave["reason"]),
        (&json!("leave"), &json!("full"))
    );
    // Fewer than that is fine; and at least two always fit.
    let mut r = room("z").with_capacity(0);
    assert_eq!(r.capacity(), 2);
    r.join(0);
    let welcome =
        r#"{"v":1,"room":"r","from":"relay","to":"z","type":"welcome","peers":[{"id":"a"}]}"#;
    assert_eq!(full(&r.receive(welcome, 10).events), None);
    // Counting stops once we have been in the room for a while.
    let mut r = room("z").with_capacity(2);
    r.join(0);
    let present = |who: &str| from(who, 1, Some("z"), json!({"type": "present"}));
    r.receive(&present("b"), 0);
    let out = r.receive(&present("c"), ADMISSION_MS + 1);
    assert_eq!(full(&out.events), None);
    assert_eq!(r.peers().len(), 2);
}

#[test]
fn only_those_already_there_count_against_a_newcomer() {
    // Ada, then Bo, then Cy, quickly (each within the others' first
    // seconds), into a room for two: Cy is the one too many, not Ada.
    let ids = ["ada", "bo", "cy"];
    for seed in 1..=20 {
        let mut relay = empty_relay(seed * 7_919, &ids);
        for c in &mut relay.clients {
            c.room = Room::new("r", c.room.me(), None, T).with_capacity(2);
        }
        for i in 0..3 {
            relay.now = i as u64 * 500;
            joins(&mut relay, i..i + 1, false);
        }
        assert_eq!(full(&relay.clients[0].events), None, "seed {seed}");
        assert_eq!(full(&relay.clients[1].events), None, "seed {seed}");
        assert_eq!(full(&relay.clients[2].events), Some(3), "seed {seed}");
        assert_eq!(agreed(&relay, &ids, seed), ["ada", "bo"]);
    }
}

#[test]
fn presents_from_a_full_room_of_two_turn_the_third_away() {
    let mut r = room("z").with_capacity(2);
    r.join(1_000);
    let present = |who: &str| from(who, 1, Some("z"), json!({"type": "present", "name": who}));
    let out = r.receive(&present("a"), 1_005);
    assert_eq!(full(&out.events), None);
    let out = r.receive(&present("b"), 1_006);
    assert_eq!(full(&out.events), Some(3));
}
