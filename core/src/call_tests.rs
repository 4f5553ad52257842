//! The call's decisions, natively: every recovery path the browser tests
//! can only reach by breaking a network.

use super::*;
use crate::ice::ServerError;
use crate::room::Gone;
use peercall_protocol::{Candidate, ErrorCode};

const T0: u64 = 1_700_000_000_000;

fn core(me: &str) -> CallCore {
    let mut c = CallCore::new(me, "r", CallConfig::default(), None);
    c.start();
    drain(&mut c);
    c
}

fn relay_only_with_turn_credentials(me: &str) -> CallCore {
    let config = CallConfig {
        relay_only: true,
        ..CallConfig::default()
    };
    let url = "http://relay/ice-servers".to_owned();
    let mut c = CallCore::new(me, "r", config, Some(url.clone()));
    c.start();
    assert_eq!(drain(&mut c), [Output::FetchCredentials { url }]);
    c.credentials(
        Credentials::Fetched {
            expires_at: T0 / 1000 + 3600,
        },
        vec![turn()],
    );
    assert_eq!(drain(&mut c), [], "TURN is there: no warning");
    c
}

fn turn() -> IceServer {
    IceServer {
        urls: vec!["turn:127.0.0.1:3478".into()],
        username: Some("u".into()),
        credential: Some("p".into()),
    }
}

fn drain(c: &mut CallCore) -> Vec<Output> {
    std::iter::from_fn(|| c.poll_output()).collect()
}

fn joined(id: &str) -> RelayInput {
    RelayInput::Room(Event::Joined {
        id: id.into(),
        name: None,
    })
}

fn left(id: &str, why: Gone) -> RelayInput {
    RelayInput::Room(Event::Left { id: id.into(), why })
}

fn state(s: ConnectionState) -> PeerInput {
    PeerInput::State(s)
}

fn ui(outputs: &[Output]) -> Vec<&CallAction> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Ui(a) => Some(a),
            _ => None,
        })
        .collect()
}

fn restarts(outputs: &[Output]) -> usize {
    outputs
        .iter()
        .filter(|o| matches!(o, Output::RestartIce { .. }))
        .count()
}

fn connected(c: &mut CallCore, id: &str, now: u64) {
    c.relay(joined(id), now);
    c.peer(id, state(ConnectionState::Connected), now);
    drain(c);
}

#[test]
fn the_impolite_side_sends_at_once_the_polite_one_when_it_answers() {
    // "a" < "b": a is impolite towards b, and polite towards nobody here.
    let mut a = core("a");
    a.relay(joined("b"), T0);
    let out = drain(&mut a);
    assert_eq!(
        out[0],
        Output::Connect {
            id: "b".into(),
            send: true
        }
    );
    assert!(out.contains(&Output::LimitVideo {
        id: "b".into(),
        budget: crate::mesh::budget(2, false)
    }));
    assert!(matches!(ui(&out)[..], [CallAction::Joined { .. }]));

    let mut b = core("b");
    let offer = Signal::Offer {
        sdp: "v=0".into(),
        ice_restart: false,
    };
    b.relay(
        RelayInput::Room(Event::Signal {
            from: "a".into(),
            signal: offer.clone(),
        }),
        T0,
    );
    let out = drain(&mut b);
    assert_eq!(
        out,
        [
            Output::Connect {
                id: "a".into(),
                send: false
            },
            Output::Negotiate {
                id: "a".into(),
                signal: offer.clone(),
                send_when_answering: true
            }
        ],
        "no budget for a connection that does not send yet"
    );
    b.negotiated(
        "a",
        Negotiated {
            description: true,
            started_sending: true,
            state: ConnectionState::Connecting,
            error: None,
        },
    );
    let out = drain(&mut b);
    assert!(out.contains(&Output::LimitVideo {
        id: "a".into(),
        budget: crate::mesh::budget(2, false)
    }));
    // The next offer finds it sending already.
    b.relay(
        RelayInput::Room(Event::Signal {
            from: "a".into(),
            signal: offer.clone(),
        }),
        T0,
    );
    assert_eq!(
        drain(&mut b),
        [Output::Negotiate {
            id: "a".into(),
            signal: offer,
            send_when_answering: false
        }]
    );
}

#[test]
fn a_failed_connection_restarts_ice_once_then_explains() {
    let mut a = core("a");
    connected(&mut a, "b", T0);
    a.peer("b", state(ConnectionState::Failed), T0);
    let out = drain(&mut a);
    assert_eq!(restarts(&out), 1);
    assert!(ui(&out).contains(&&CallAction::Status {
        id: "b".into(),
        status: PeerStatus::Reconnecting
    }));
    // Failing again before the restart's offer went out: explained.
    a.peer("b", state(ConnectionState::Failed), T0 + 10);
    let out = drain(&mut a);
    assert_eq!(restarts(&out), 0);
    assert!(matches!(
        ui(&out)[..],
        [CallAction::IceFailed {
            why: crate::ice::IceFailure::NoTurn,
            ..
        }]
    ));
    // Once only.
    a.peer("b", state(ConnectionState::Failed), T0 + 20);
    assert!(ui(&drain(&mut a)).is_empty());
}

#[test]
fn the_restart_offer_says_so_and_only_that_one() {
    let mut a = core("a");
    connected(&mut a, "b", T0);
    a.peer("b", state(ConnectionState::Failed), T0);
    drain(&mut a);
    a.peer("b", PeerInput::NegotiationNeeded, T0);
    assert_eq!(
        drain(&mut a),
        [Output::Offer {
            id: "b".into(),
            ice_restart: true
        }]
    );
    a.peer("b", PeerInput::NegotiationNeeded, T0);
    assert_eq!(
        drain(&mut a),
        [Output::Offer {
            id: "b".into(),
            ice_restart: false
        }]
    );
}

#[test]
fn disconnected_for_four_seconds_restarts_ice_and_coming_back_does_not() {
    let mut a = core("a");
    connected(&mut a, "b", T0);
    connected(&mut a, "c", T0);
    assert_eq!(a.poll_timeout(), None);
    a.peer("b", state(ConnectionState::Disconnected), T0 + 1_000);
    a.peer("c", state(ConnectionState::Disconnected), T0 + 2_000);
    let out = drain(&mut a);
    assert!(ui(&out).contains(&&CallAction::Status {
        id: "b".into(),
        status: PeerStatus::Reconnecting
    }));
    assert_eq!(a.poll_timeout(), Some(T0 + 1_000 + DISCONNECTED_RESTART_MS));
    // c finds its path again by itself.
    a.peer("c", state(ConnectionState::Connected), T0 + 3_000);
    drain(&mut a);
    a.handle_timeout(T0 + 4_999);
    assert_eq!(restarts(&drain(&mut a)), 0, "not yet");
    a.handle_timeout(T0 + 5_000);
    let out = drain(&mut a);
    assert_eq!(
        out.iter()
            .filter_map(|o| match o {
                Output::RestartIce { id, .. } => Some(id.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>(),
        ["b"]
    );
    assert_eq!(a.poll_timeout(), None, "restarting: no second timer");
    a.handle_timeout(T0 + 20_000);
    assert_eq!(restarts(&drain(&mut a)), 0);
}

#[test]
fn stale_credentials_are_fetched_again_before_a_restart_or_a_new_connection() {
    let mut a = relay_only_with_turn_credentials("a");
    connected(&mut a, "b", T0);
    // Within a minute of their end.
    let late = T0 + 3_550_000;
    a.peer("b", state(ConnectionState::Failed), late);
    let out = drain(&mut a);
    assert_eq!(
        out[..2],
        [
            Output::FetchCredentials {
                url: "http://relay/ice-servers".into()
            },
            Output::RestartIce {
                id: "b".into(),
                new_servers: true
            }
        ]
    );
    a.credentials(
        Credentials::Fetched {
            expires_at: late / 1000 + 3600,
        },
        vec![turn()],
    );
    assert_eq!(
        a.ice_servers().len(),
        CallConfig::default().ice_servers.len() + 1,
        "the configured servers and the fresh TURN"
    );
    a.relay(joined("c"), late);
    assert!(
        matches!(drain(&mut a)[..], [Output::Connect { .. }, ..]),
        "fresh ones now: no fetch"
    );
    a.relay(joined("d"), late + 3_600_000);
    assert!(matches!(
        drain(&mut a)[..],
        [Output::FetchCredentials { .. }, Output::Connect { .. }, ..]
    ));
}

#[test]
fn gathering_nothing_usable_in_relay_only_mode_is_explained_at_once() {
    let mut a = relay_only_with_turn_credentials("a");
    a.relay(joined("b"), T0);
    drain(&mut a);
    a.peer(
        "b",
        PeerInput::ServerError(ServerError {
            url: "turn:127.0.0.1:3478".into(),
            code: 401,
            text: "Unauthorized".into(),
        }),
        T0,
    );
    assert!(matches!(drain(&mut a)[..], [Output::Log(Level::Warn, _)]));
    a.peer("b", PeerInput::EndOfCandidates, T0);
    let out = drain(&mut a);
    assert_eq!(
        out[0],
        Output::Signal {
            to: "b".into(),
            signal: Signal::EndOfCandidates
        }
    );
    assert!(matches!(
        ui(&out)[..],
        [CallAction::IceFailed {
            why: crate::ice::IceFailure::CredentialsRejected { .. },
            ..
        }]
    ));
    // With stale credentials it tries fresh ones instead.
    let mut a = relay_only_with_turn_credentials("a");
    a.relay(joined("b"), T0);
    drain(&mut a);
    a.peer("b", PeerInput::EndOfCandidates, T0 + 3_590_000);
    let out = drain(&mut a);
    assert_eq!(restarts(&out), 1);
    assert!(ui(&out).is_empty());
}

#[test]
fn candidates_are_counted_and_sent() {
    let mut a = core("a");
    a.relay(joined("b"), T0);
    drain(&mut a);
    let c = Candidate {
        candidate: "candidate:1 1 udp 2122260223 127.0.0.1 5000 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_m_line_index: Some(0),
        username_fragment: None,
    };
    a.peer("b", PeerInput::Candidate(c.clone()), T0);
    assert_eq!(
        drain(&mut a),
        [Output::Signal {
            to: "b".into(),
            signal: Signal::Candidate(c)
        }]
    );
    // Relay-only is off: gathering no relay candidate is no failure.
    a.peer("b", PeerInput::EndOfCandidates, T0);
    assert!(ui(&drain(&mut a)).is_empty());
}

#[test]
fn a_peer_the_relay_lost_is_kept_while_its_media_flows_then_dropped() {
    let mut a = core("a");
    connected(&mut a, "b", T0);
    a.relay(left("b", Gone::Disconnected), T0);
    assert_eq!(drain(&mut a), [], "kept: the call goes on");
    assert!(a.has_peer("b"));
    // It comes back through the relay: nothing lost.
    a.relay(joined("b"), T0);
    drain(&mut a);
    a.relay(left("b", Gone::TimedOut), T0);
    assert_eq!(drain(&mut a), []);
    // Now the media fails too: gone, as disconnected.
    a.peer("b", state(ConnectionState::Failed), T0);
    let out = drain(&mut a);
    assert_eq!(out[0], Output::Disconnect { id: "b".into() });
    assert_eq!(
        ui(&out),
        [&CallAction::Left {
            id: "b".into(),
            why: Gone::Disconnected
        }]
    );
    assert_eq!(restarts(&out), 0, "no restart for someone who left");
    assert!(!a.has_peer("b"));
}

#[test]
fn a_hang_up_or_a_lost_peer_not_connected_is_dropped_at_once() {
    let mut a = core("a");
    connected(&mut a, "b", T0);
    a.relay(joined("c"), T0);
    a.relay(joined("d"), T0);
    drain(&mut a);
    a.relay(left("b", Gone::HungUp), T0);
    let out = drain(&mut a);
    assert_eq!(out[0], Output::Disconnect { id: "b".into() });
    // The room shrank: the others get a bigger budget.
    assert!(out.contains(&Output::LimitVideo {
        id: "c".into(),
        budget: crate::mesh::budget(3, false)
    }));
    a.relay(left("c", Gone::Disconnected), T0);
    let out = drain(&mut a);
    assert_eq!(out[0], Output::Disconnect { id: "c".into() });
    assert_eq!(
        ui(&out),
        [&CallAction::Left {
            id: "c".into(),
            why: Gone::Disconnected
        }]
    );
}

#[test]
fn a_full_room_or_a_refused_join_ends_the_call_with_the_limit() {
    let mut a = core("a");
    a.relay(
        RelayInput::Room(Event::Full {
            people: 3,
            capacity: 2,
        }),
        T0,
    );
    assert!(a.ended());
    assert_eq!(
        ui(&drain(&mut a)),
        [&CallAction::RoomFull {
            people: 3,
            capacity: 2
        }]
    );
    for (code, ends) in [
        (ErrorCode::RoomFull, true),
        (ErrorCode::TooManyRooms, true),
        (ErrorCode::RateLimited, false),
        (ErrorCode::Other("new".into()), false),
    ] {
        let mut a = core("a");
        a.relay(
            RelayInput::Room(Event::RelayError {
                code: code.clone(),
                message: "m".into(),
            }),
            T0,
        );
        assert_eq!(a.ended(), ends, "{code}");
    }
}

#[test]
fn chat_waits_for_the_control_channel_and_goes_only_where_it_should() {
    let mut a = core("a");
    a.relay(joined("b"), T0);
    a.relay(joined("c"), T0);
    drain(&mut a);
    a.peer("c", PeerInput::ControlOpen, T0);
    drain(&mut a);
    a.chat("  hello  ", None, "m1".into(), T0);
    let out = drain(&mut a);
    let sent: Vec<&str> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send { id, .. } => Some(id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(sent, ["c"], "b's channel is not open yet");
    assert!(matches!(
        ui(&out)[..],
        [CallAction::Chat { from: None, text, .. }] if text == "hello"
    ));
    // b's channel opens: our media state first, then the held message.
    a.peer("b", PeerInput::ControlOpen, T0);
    let out = drain(&mut a);
    assert_eq!(
        out,
        [
            Output::Send {
                id: "b".into(),
                message: Sending::default().message()
            },
            Output::Send {
                id: "b".into(),
                message: Message::Chat {
                    id: "m1".into(),
                    text: "hello".into(),
                    sent_at: T0,
                    private: false
                }
            }
        ]
    );
    // Private, to someone who left, or empty: a warning, nothing sent.
    a.chat("psst", Some("c".into()), "m2".into(), T0);
    let out = drain(&mut a);
    assert!(
        matches!(&out[0], Output::Send { id, message: Message::Chat { private: true, .. } } if id == "c")
    );
    a.chat("psst", Some("z".into()), "m3".into(), T0);
    assert!(matches!(ui(&drain(&mut a))[..], [CallAction::Warning(w)] if w.contains("has left")));
    a.chat("   ", None, "m4".into(), T0);
    assert!(matches!(ui(&drain(&mut a))[..], [CallAction::Warning(_)]));
}

#[test]
fn what_arrives_on_the_control_channel_becomes_screen_actions() {
    let mut a = core("a");
    a.relay(joined("b"), T0);
    drain(&mut a);
    a.peer(
        "b",
        PeerInput::ControlText(r#"{"type":"media","audio":false,"video":true}"#.into()),
        T0,
    );
    assert_eq!(
        ui(&drain(&mut a)),
        [&CallAction::RemoteMedia {
            id: "b".into(),
            media: RemoteMedia {
                audio: false,
                video: true,
                screen: false
            }
        }]
    );
    a.peer(
        "b",
        PeerInput::ControlText(
            r#"{"type":"chat","id":"x1","text":"hi","sent_at":5,"private":true}"#.into(),
        ),
        T0,
    );
    assert!(matches!(
        ui(&drain(&mut a))[..],
        [CallAction::Chat { from: Some(f), private_with: Some(p), .. }] if f == "b" && p == "b"
    ));
    for bad in [PeerInput::ControlText("{".into()), PeerInput::ControlBinary] {
        a.peer("b", bad, T0);
        assert!(matches!(drain(&mut a)[..], [Output::Log(Level::Warn, _)]));
    }
}

#[test]
fn muting_or_sharing_goes_on_every_sending_connection_with_its_budget() {
    let mut a = core("a");
    a.relay(joined("b"), T0);
    drain(&mut a);
    let screen = Sending {
        screen: true,
        ..Sending::default()
    };
    a.set_sending(screen);
    let out = drain(&mut a);
    assert_eq!(
        out,
        [
            Output::SetTracks { id: "b".into() },
            Output::Send {
                id: "b".into(),
                message: screen.message()
            },
            Output::LimitVideo {
                id: "b".into(),
                budget: crate::mesh::budget(2, true)
            }
        ]
    );
    assert_eq!(a.sending(), screen);
}

#[test]
fn files_go_to_open_channels_and_nobody_is_news() {
    let mut a = core("a");
    assert!(a.file_recipients(None).is_empty());
    assert!(matches!(ui(&drain(&mut a))[..], [CallAction::Warning(_)]));
    a.relay(joined("b"), T0);
    a.relay(joined("c"), T0);
    a.peer("b", PeerInput::ControlOpen, T0);
    drain(&mut a);
    assert_eq!(a.file_recipients(None), ["b"]);
    assert!(a.file_recipients(Some("c")).is_empty());
}

#[test]
fn a_connection_that_cannot_be_made_is_told_and_forgotten() {
    let mut a = core("a");
    a.relay(joined("b"), T0);
    drain(&mut a);
    a.connection_failed("b", "no RTCPeerConnection".into());
    assert!(!a.has_peer("b"));
    assert!(matches!(
        ui(&drain(&mut a))[..],
        [CallAction::PeerError { .. }]
    ));
}

#[test]
fn an_ice_restart_on_demand_shows_reconnecting_first() {
    let mut a = core("a");
    a.restart_ice("nobody", T0);
    assert_eq!(drain(&mut a), []);
    connected(&mut a, "b", T0);
    a.restart_ice("b", T0);
    let out = drain(&mut a);
    assert!(matches!(
        &out[..],
        [
            Output::Ui(CallAction::Status {
                status: PeerStatus::Reconnecting,
                ..
            }),
            Output::RestartIce {
                new_servers: false,
                ..
            }
        ]
    ));
}

#[test]
fn relay_only_without_turn_warns_before_anyone_joins() {
    let config = CallConfig {
        relay_only: true,
        ice_servers: Vec::new(),
        ..CallConfig::default()
    };
    let mut c = CallCore::new("a", "r", config.clone(), None);
    c.start();
    assert!(matches!(ui(&drain(&mut c))[..], [CallAction::Warning(w)] if w.contains("Relay-only")));
    // With a credentials URL the warning waits for its answer.
    let mut c = CallCore::new("a", "r", config, Some("http://x/ice-servers".into()));
    c.start();
    assert!(matches!(
        drain(&mut c)[..],
        [Output::FetchCredentials { .. }]
    ));
    c.credentials(Credentials::Unavailable("HTTP 500".into()), Vec::new());
    assert!(matches!(ui(&drain(&mut c))[..], [CallAction::Warning(w)] if w.contains("HTTP 500")));
}

#[test]
fn credentials_come_from_the_relay_in_use() {
    let mut a = relay_only_with_turn_credentials("a");
    connected(&mut a, "b", T0);
    // The app moved to another relay of the cluster: the next fetch (stale
    // credentials before a restart) goes to that relay's /ice-servers.
    a.using_relay("wss://relay2.example/ws");
    a.peer("b", state(ConnectionState::Failed), T0 + 3_550_000);
    assert_eq!(
        drain(&mut a)[0],
        Output::FetchCredentials {
            url: "https://relay2.example/ice-servers".into()
        }
    );
}

// --- the move between mesh and SFU (PROTOCOL.md 5.14) ---

fn welcomed(route: Route) -> RelayInput {
    RelayInput::Room(Event::Welcomed {
        features: vec![peercall_protocol::FEATURE_SFU.into()],
        route,
    })
}

fn routed(route: Route) -> RelayInput {
    RelayInput::Room(Event::Route(route))
}

fn receiving(from: &str, via: Route) -> RelayInput {
    RelayInput::Room(Event::Receiving {
        from: from.into(),
        via,
    })
}

fn subscription(peers: &[&str]) -> RelayInput {
    let streams = peers
        .iter()
        .enumerate()
        .map(|(i, p)| SfuStream {
            mid: i.to_string(),
            peer: (*p).into(),
            kind: "video".into(),
        })
        .collect();
    RelayInput::Room(Event::SfuSubscription {
        sdp: "v=0".into(),
        streams,
    })
}

fn shows(out: &[Output]) -> Vec<(String, Route)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Show { id, via } => Some((id.clone(), *via)),
            _ => None,
        })
        .collect()
}

fn tells(out: &[Output]) -> Vec<(String, Body)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Tell { to, body } => Some((to.clone(), body.clone())),
            _ => None,
        })
        .collect()
}

/// "a" in a direct call with "b" over a relay with an SFU, b's video
/// playing, both told.
fn direct_with_b() -> CallCore {
    let mut a = core("a");
    a.relay(welcomed(Route::Mesh), T0);
    connected(&mut a, "b", T0);
    a.media_arrived("b", Route::Mesh, T0);
    a.media_flowing("b", Route::Mesh, T0);
    let out = drain(&mut a);
    assert_eq!(shows(&out), [("b".into(), Route::Mesh)]);
    assert_eq!(
        tells(&out),
        [("b".into(), Body::Receiving { via: Route::Mesh })]
    );
    a.relay(receiving("b", Route::Mesh), T0);
    assert_eq!(drain(&mut a), []);
    a
}

#[test]
fn moving_to_the_sfu_closes_a_direct_connection_only_once_both_sides_receive_through_it() {
    let mut a = direct_with_b();
    a.relay(routed(Route::Sfu), T0 + 10);
    let out = drain(&mut a);
    assert!(out.contains(&Output::Sfu(SfuOutput::Publish)));
    assert!(!out.iter().any(|o| matches!(o, Output::Disconnect { .. })));
    // A newcomer on the SFU gets no direct connection; it hears our media
    // state through the relay.
    a.relay(joined("c"), T0 + 20);
    let out = drain(&mut a);
    assert!(!out.iter().any(|o| matches!(o, Output::Connect { .. })));
    assert!(matches!(&tells(&out)[..], [(to, Body::Control { .. })] if to == "c"));

    a.relay(subscription(&["b", "c"]), T0 + 30);
    assert!(matches!(
        &drain(&mut a)[..],
        [Output::Sfu(SfuOutput::Subscription { .. })]
    ));
    a.sfu_connection(SfuLeg::Subscriber, ConnectionState::Connected, T0 + 40);
    a.media_arrived("b", Route::Sfu, T0 + 50);
    a.media_arrived("c", Route::Sfu, T0 + 50);
    // c had nothing showing: at once. b keeps its direct picture until
    // the SFU's plays.
    assert_eq!(shows(&drain(&mut a)), [("c".into(), Route::Sfu)]);
    a.media_flowing("b", Route::Sfu, T0 + 60);
    let out = drain(&mut a);
    assert_eq!(shows(&out), [("b".into(), Route::Sfu)]);
    assert_eq!(
        tells(&out),
        [("b".into(), Body::Receiving { via: Route::Sfu })]
    );
    assert!(!out.iter().any(|o| matches!(o, Output::Disconnect { .. })));
    // b receives us through the SFU too: the direct connection goes.
    a.relay(receiving("b", Route::Sfu), T0 + 70);
    let out = drain(&mut a);
    assert!(out.contains(&Output::Disconnect { id: "b".into() }));
    assert!(!a.has_peer("b"));
    assert!(!ui(&out)
        .iter()
        .any(|u| matches!(u, CallAction::Left { .. })));
}

#[test]
fn a_silent_person_counts_as_carried_after_a_while() {
    let mut a = core("a");
    a.relay(welcomed(Route::Sfu), T0);
    a.relay(joined("b"), T0);
    a.relay(subscription(&["b"]), T0 + 10);
    a.sfu_connection(SfuLeg::Subscriber, ConnectionState::Connected, T0 + 20);
    drain(&mut a);
    // b sends no video: nothing unmutes.
    assert_eq!(a.poll_timeout(), Some(T0 + 20 + SILENT_PATH_MS));
    a.handle_timeout(T0 + 20 + SILENT_PATH_MS - 1);
    assert_eq!(tells(&drain(&mut a)), []);
    a.media_arrived("b", Route::Sfu, T0 + 100);
    drain(&mut a);
    a.handle_timeout(T0 + 20 + SILENT_PATH_MS);
    assert_eq!(
        tells(&drain(&mut a)),
        [("b".into(), Body::Receiving { via: Route::Sfu })]
    );
}

#[test]
fn back_to_mesh_the_sfu_goes_once_everyone_is_direct_both_ways() {
    let mut a = core("a");
    a.relay(welcomed(Route::Sfu), T0);
    a.relay(joined("b"), T0);
    a.relay(subscription(&["b"]), T0);
    a.sfu_connection(SfuLeg::Subscriber, ConnectionState::Connected, T0);
    a.media_arrived("b", Route::Sfu, T0);
    a.media_flowing("b", Route::Sfu, T0);
    a.relay(receiving("b", Route::Sfu), T0);
    drain(&mut a);

    a.relay(routed(Route::Mesh), T0 + 100);
    let out = drain(&mut a);
    assert!(out.contains(&Output::Connect {
        id: "b".into(),
        send: true
    }));
    a.peer("b", state(ConnectionState::Connected), T0 + 200);
    a.media_arrived("b", Route::Mesh, T0 + 210);
    assert_eq!(shows(&drain(&mut a)), [], "the SFU's picture stays");
    a.media_flowing("b", Route::Mesh, T0 + 220);
    let out = drain(&mut a);
    assert_eq!(shows(&out), [("b".into(), Route::Mesh)]);
    assert!(!out
        .iter()
        .any(|o| matches!(o, Output::Sfu(SfuOutput::Close { .. }))));
    a.relay(receiving("b", Route::Mesh), T0 + 230);
    assert!(drain(&mut a).contains(&Output::Sfu(SfuOutput::Close { leave: true })));
}

#[test]
fn chat_reaches_people_on_the_sfu_through_the_relay() {
    let mut a = direct_with_b();
    a.peer("b", PeerInput::ControlOpen, T0);
    a.relay(routed(Route::Sfu), T0);
    a.relay(joined("c"), T0);
    drain(&mut a);
    a.chat("hi", None, "m1".into(), T0);
    let out = drain(&mut a);
    // b still has its data channel; c has none.
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Send { id, message: Message::Chat { .. } } if id == "b")));
    assert!(
        matches!(&tells(&out)[..], [(to, Body::Control { data })] if to == "c" && data.contains("\"hi\""))
    );
    // And from c, through the relay, it is chat.
    let data = channel::encode(&Message::Chat {
        id: "m2".into(),
        text: "hello".into(),
        sent_at: T0,
        private: false,
    });
    a.relay(
        RelayInput::Room(Event::Control {
            from: "c".into(),
            data,
        }),
        T0,
    );
    assert!(ui(&drain(&mut a)).iter().any(
        |u| matches!(u, CallAction::Chat { from: Some(f), text, .. } if f == "c" && text == "hello")
    ));
}

#[test]
fn without_the_sfu_feature_a_route_changes_nothing() {
    let mut a = core("a");
    a.relay(
        RelayInput::Room(Event::Welcomed {
            features: vec![],
            route: Route::Sfu,
        }),
        T0,
    );
    a.relay(routed(Route::Sfu), T0);
    a.relay(joined("b"), T0);
    let out = drain(&mut a);
    assert!(out.iter().any(|o| matches!(o, Output::Connect { .. })));
    assert!(!out
        .iter()
        .any(|o| matches!(o, Output::Sfu(_) | Output::Tell { .. })));
}

#[test]
fn a_failed_sfu_is_published_to_again() {
    let mut a = core("a");
    a.relay(welcomed(Route::Sfu), T0);
    drain(&mut a);
    a.relay(
        RelayInput::Room(Event::RelayError {
            code: ErrorCode::parse(peercall_protocol::codes::SFU_FAILED),
            message: "the SFU went away".into(),
        }),
        T0,
    );
    assert!(drain(&mut a).contains(&Output::Sfu(SfuOutput::Close { leave: false })));
    assert_eq!(a.poll_timeout(), Some(T0 + SFU_RETRY_MS));
    a.handle_timeout(T0 + SFU_RETRY_MS);
    assert!(drain(&mut a).contains(&Output::Sfu(SfuOutput::Publish)));
    // Failing again and again: the waits grow, to 30 s.
    let mut now = T0 + SFU_RETRY_MS;
    let mut waits = Vec::new();
    for _ in 0..7 {
        a.sfu_error("the SFU's offer: refused", now);
        let at = a.poll_timeout().unwrap();
        waits.push(at - now);
        now = at;
        a.handle_timeout(now);
        drain(&mut a);
    }
    assert_eq!(waits, [2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]);
    // An answer from the SFU: the next failure waits a second again.
    a.relay(
        RelayInput::Room(Event::SfuPublished { sdp: "v=0".into() }),
        now,
    );
    a.sfu_error("the SFU's offer: refused", now);
    assert_eq!(a.poll_timeout(), Some(now + SFU_RETRY_MS));
}

fn sfu_restarts(out: &[Output]) -> Vec<SfuLeg> {
    out.iter()
        .filter_map(|o| match o {
            Output::Sfu(SfuOutput::RestartIce { leg }) => Some(*leg),
            _ => None,
        })
        .collect()
}

#[test]
fn an_sfu_connection_that_fails_restarts_ice_once_then_starts_over() {
    let mut a = core("a");
    a.relay(welcomed(Route::Sfu), T0);
    a.sfu_connection(SfuLeg::Publisher, ConnectionState::Connected, T0);
    a.sfu_connection(SfuLeg::Subscriber, ConnectionState::Connected, T0);
    drain(&mut a);
    // Failed: ICE restarts on that connection, nothing closes.
    a.sfu_connection(SfuLeg::Publisher, ConnectionState::Failed, T0 + 100);
    let out = drain(&mut a);
    assert_eq!(sfu_restarts(&out), [SfuLeg::Publisher]);
    assert!(!out
        .iter()
        .any(|o| matches!(o, Output::Sfu(SfuOutput::Close { .. }))));
    // It came back: a later failure restarts again.
    a.sfu_connection(SfuLeg::Publisher, ConnectionState::Connected, T0 + 900);
    a.sfu_connection(SfuLeg::Publisher, ConnectionState::Failed, T0 + 5_000);
    assert_eq!(sfu_restarts(&drain(&mut a)), [SfuLeg::Publisher]);
    // Failed again before it reconnected: both close, and we publish
    // afresh a second later.
    a.sfu_connection(SfuLeg::Publisher, ConnectionState::Failed, T0 + 6_000);
    let out = drain(&mut a);
    assert!(sfu_restarts(&out).is_empty());
    assert!(out.contains(&Output::Sfu(SfuOutput::Close { leave: false })));
    a.handle_timeout(T0 + 6_000 + SFU_RETRY_MS);
    assert!(drain(&mut a).contains(&Output::Sfu(SfuOutput::Publish)));
}

#[test]
fn an_sfu_connection_disconnected_for_long_restarts_ice() {
    let mut a = core("a");
    a.relay(welcomed(Route::Sfu), T0);
    a.sfu_connection(SfuLeg::Subscriber, ConnectionState::Connected, T0);
    drain(&mut a);
    a.sfu_connection(
        SfuLeg::Subscriber,
        ConnectionState::Disconnected,
        T0 + 1_000,
    );
    assert_eq!(a.poll_timeout(), Some(T0 + 1_000 + DISCONNECTED_RESTART_MS));
    a.handle_timeout(T0 + 1_000 + DISCONNECTED_RESTART_MS - 1);
    assert!(sfu_restarts(&drain(&mut a)).is_empty());
    a.handle_timeout(T0 + 1_000 + DISCONNECTED_RESTART_MS);
    assert_eq!(sfu_restarts(&drain(&mut a)), [SfuLeg::Subscriber]);
    // Once, until it connects again.
    assert_eq!(a.poll_timeout(), None);
    // Asked for (the console, the tests): both connections.
    a.restart_sfu_ice();
    assert_eq!(
        sfu_restarts(&drain(&mut a)),
        [SfuLeg::Publisher, SfuLeg::Subscriber]
    );
}

#[test]
fn after_the_sfu_failed_the_new_subscription_shows_at_once() {
    let mut a = core("a");
    a.relay(welcomed(Route::Sfu), T0);
    a.relay(joined("b"), T0);
    a.relay(subscription(&["b"]), T0);
    a.media_arrived("b", Route::Sfu, T0);
    a.media_flowing("b", Route::Sfu, T0);
    drain(&mut a);
    // Failed, restarted, failed again: given up, published afresh.
    a.sfu_connection(SfuLeg::Subscriber, ConnectionState::Failed, T0 + 5);
    a.sfu_connection(SfuLeg::Subscriber, ConnectionState::Failed, T0 + 10);
    drain(&mut a);
    a.handle_timeout(T0 + 10 + SFU_RETRY_MS);
    drain(&mut a);
    a.relay(subscription(&["b"]), T0 + 4_000);
    a.media_arrived("b", Route::Sfu, T0 + 4_100);
    assert_eq!(shows(&drain(&mut a)), [("b".into(), Route::Sfu)]);
}

#[test]
fn each_tile_gets_the_simulcast_layer_that_fits_it_once() {
    let mut a = core("a");
    a.relay(welcomed(Route::Sfu), T0);
    a.relay(joined("b"), T0);
    a.relay(joined("c"), T0);
    a.relay(subscription(&["b", "c"]), T0);
    drain(&mut a);
    let layers = |out: &[Output]| -> Vec<(String, Option<u8>)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Sfu(SfuOutput::Layer { peer, layer }) => Some((peer.clone(), *layer)),
                _ => None,
            })
            .collect()
    };
    a.tile_heights(&[("b".into(), 150), ("c".into(), 700), ("x".into(), 100)]);
    assert_eq!(
        layers(&drain(&mut a)),
        [("b".into(), Some(0)), ("c".into(), Some(2))]
    );
    a.tile_heights(&[("b".into(), 170), ("c".into(), 700)]);
    assert_eq!(layers(&drain(&mut a)), [], "nothing changed");
    a.tile_heights(&[("b".into(), 300), ("c".into(), 0)]);
    assert_eq!(layers(&drain(&mut a)), [("b".into(), Some(1))]);
    // c's tile goes (the grid is full): none of c's video.
    a.tile_heights(&[("b".into(), 300)]);
    assert_eq!(layers(&drain(&mut a)), [("c".into(), None)]);
    // c leaves the subscription: asked again once back.
    a.relay(subscription(&["b"]), T0);
    a.relay(subscription(&["b", "c"]), T0);
    drain(&mut a);
    a.tile_heights(&[("b".into(), 300), ("c".into(), 700)]);
    assert_eq!(layers(&drain(&mut a)), [("c".into(), Some(2))]);
}
