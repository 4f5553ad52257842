use super::*;

fn turn(url: &str) -> IceServer {
    IceServer {
        urls: vec![url.into()],
        username: Some("1700000000:a".into()),
        credential: Some("c".into()),
    }
}

fn stun(url: &str) -> IceServer {
    IceServer {
        urls: vec![url.into()],
        ..IceServer::default()
    }
}

#[test]
fn the_credentials_url_sits_beside_the_relay() {
    for (ws, http) in [
        (
            "ws://127.0.0.1:8080/ws",
            "http://127.0.0.1:8080/ice-servers",
        ),
        ("wss://call.example/ws", "https://call.example/ice-servers"),
        ("wss://call.example/ws/", "https://call.example/ice-servers"),
        (
            "wss://call.example/signal/ws?x=1",
            "https://call.example/signal/ice-servers",
        ),
        ("wss://call.example", "https://call.example/ice-servers"),
        (
            "wss://call.example/news",
            "https://call.example/ice-servers",
        ),
        (
            "wss://call.example/other/path",
            "https://call.example/ice-servers",
        ),
    ] {
        assert_eq!(ice_servers_url(ws).as_deref(), Some(http), "{ws}");
    }
    for bad in ["http://x/ws", "ws://", "nonsense"] {
        assert_eq!(ice_servers_url(bad), None, "{bad}");
    }
}

#[test]
fn the_relays_answer_is_read_and_checked() {
    let g = parse_grant(
        r#"{"iceServers":[{"urls":["stun:t:3478"]},{"urls":["turn:t:3478?transport=udp"],"username":"1700000600:a","credential":"x+y="}],"ttl":600,"expiresAt":1700000600}"#,
    )
    .unwrap();
    assert_eq!(g.expires_at, 1_700_000_600);
    assert_eq!(g.servers[1].username.as_deref(), Some("1700000600:a"));
    for bad in [
        "",
        "{}",
        r#"{"iceServers":[],"ttl":1}"#,
        r#"{"iceServers":[{"urls":"turn:t"}],"expiresAt":1}"#,
    ] {
        assert!(parse_grant(bad).is_err(), "{bad}");
    }
    for bad in [
        r#"{"iceServers":[{"urls":"stun:t"}],"expiresAt":-1}"#,
        r#"{"iceServers":[{"urls":"stun:t"}],"expiresAt":"soon"}"#,
        r#"{"iceServers":{"urls":"stun:t"},"expiresAt":1}"#,
        r#"{"iceServers":[{"urls":[1]}],"expiresAt":1}"#,
        r#"{"iceServers":[{"urls":"stun:t","username":5}],"expiresAt":1}"#,
        "[]",
    ] {
        let e = parse_grant(bad).unwrap_err();
        assert!(
            e.0.starts_with("the relay's TURN credentials"),
            "{bad}: {e}"
        );
    }
    // Fields a browser knows and this does not are left alone; nulls are
    // absent.
    let g = parse_grant(
        r#"{"iceServers":[{"urls":"stun:t","username":null,"credentialType":"password"}],"expiresAt":5}"#,
    )
    .unwrap();
    assert_eq!(g.servers[0].urls, ["stun:t"]);
    assert_eq!(g.servers[0].username, None);
    assert!(!needs_refresh(1000, 900));
    assert!(needs_refresh(1000, 940));
    assert!(needs_refresh(1000, 2000));
}

#[test]
fn candidate_lines_are_typed() {
    let line = |typ: &str| {
        format!("candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ {typ} raddr 0.0.0.0 rport 0 generation 0")
    };
    assert_eq!(candidate_type(&line("host")), Some(CandidateType::Host));
    assert_eq!(
        candidate_type(&line("srflx")),
        Some(CandidateType::ServerReflexive)
    );
    assert_eq!(candidate_type(&line("relay")), Some(CandidateType::Relay));
    assert_eq!(
        candidate_type(&line("prflx")),
        Some(CandidateType::PeerReflexive)
    );
    assert_eq!(candidate_type("candidate:1 1 udp 1 1.2.3.4 5"), None);
    assert_eq!(candidate_type(""), None);
    let mut g = Gathering::default();
    for t in ["host", "host", "srflx", "relay", "bogus"] {
        g.add(&line(t));
    }
    assert_eq!((g.host, g.srflx, g.relay), (2, 1, 1));
    for t in ["host", "srflx", "prflx", "relay"] {
        assert_eq!(CandidateType::from_name(t).unwrap().name(), t);
    }
}

#[test]
fn failures_are_explained_by_what_was_configured_and_gathered() {
    let now = 1_700_000_000;
    let fetched = Credentials::Fetched {
        expires_at: now + 600,
    };
    let setup = |servers: &[IceServer], relay_only, credentials| {
        IceSetup::new(servers, relay_only, credentials)
    };
    let none = Gathering {
        complete: true,
        host: 2,
        ..Gathering::default()
    };

    // No TURN at all.
    let s = setup(&[stun("stun:s:1")], false, Credentials::NotOffered);
    assert!(!s.has_turn);
    assert_eq!(explain(&s, &none, now), IceFailure::NoTurn);
    assert_eq!(s.warning(), None);
    // Relay-only without TURN is hopeless from the start.
    let s = setup(&[stun("stun:s:1")], true, Credentials::NotOffered);
    assert!(s
        .warning()
        .unwrap()
        .contains("Relay-only mode needs a TURN server"));
    assert!(hopeless(&s, &none));
    let s = setup(&[], true, Credentials::Unavailable("HTTP 500".into()));
    assert!(s.warning().unwrap().contains("HTTP 500"));
    assert_eq!(
        explain(&s, &none, now),
        IceFailure::CredentialsUnavailable("HTTP 500".into())
    );

    // TURN configured, credentials refused by the server (Chromium says 401).
    let s = setup(&[turn("turn:t:3478")], true, fetched.clone());
    assert!(s.has_turn);
    let rejected = Gathering {
        complete: true,
        errors: vec![ServerError {
            url: "turn:t:3478?transport=udp".into(),
            code: 401,
            text: "Unauthorized".into(),
        }],
        ..Gathering::default()
    };
    assert!(hopeless(&s, &rejected));
    let why = explain(&s, &rejected, now);
    assert_eq!(
        why,
        IceFailure::CredentialsRejected {
            url: "turn:t:3478?transport=udp".into()
        }
    );
    assert!(why.message("Ada").contains("rejected the credentials"));
    assert!(why.message("Ada").starts_with("Could not connect to Ada."));

    // Unreachable (701), or a STUN error only.
    let mut unreachable = rejected.clone();
    unreachable.errors[0].code = 701;
    assert!(matches!(
        explain(&s, &unreachable, now),
        IceFailure::TurnUnreachable { url: Some(_) }
    ));
    // Firefox tells nothing: no relay candidate is all we know.
    let silent = Gathering {
        complete: true,
        ..Gathering::default()
    };
    assert_eq!(explain(&s, &silent, now), IceFailure::TurnUnusable);
    // With a relay candidate, the problem is on the other side.
    let relayed = Gathering {
        relay: 1,
        complete: true,
        ..Gathering::default()
    };
    assert!(!hopeless(&s, &relayed));
    assert_eq!(explain(&s, &relayed, now), IceFailure::Elsewhere);
    // Expired credentials say so first.
    assert_eq!(
        explain(&s, &relayed, now + 601),
        IceFailure::CredentialsExpired
    );
    // Not relay-only: never hopeless early, host candidates may work.
    let s = setup(&[turn("turn:t:3478")], false, fetched);
    assert!(!hopeless(&s, &rejected));
    for failure in [
        IceFailure::NoTurn,
        IceFailure::CredentialsExpired,
        IceFailure::TurnUnusable,
        IceFailure::TurnUnreachable { url: None },
        IceFailure::Elsewhere,
    ] {
        assert!(failure.message("Bo").len() > 40);
    }
}

#[test]
fn an_sdp_s_ice_user_fragment_is_read() {
    let sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:Ab3x\r\na=ice-pwd:p\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=ice-ufrag:Zz9\r\n";
    assert_eq!(crate::ice::ice_ufrag(sdp), Some("Ab3x"));
    assert_eq!(crate::ice::ice_ufrag("v=0\n"), None);
}
