//! The signaling protocol shared by the peercall app and relay.
//!
//! Every message is one JSON object in one WebSocket text frame: an
//! [`Envelope`] that says which protocol version, room, sender and (optional)
//! recipient it is for, with the message itself flattened beside those
//! fields, tagged by `"type"`. The envelope carries everything a client needs
//! to filter for itself, so the protocol works over a relay that only
//! broadcasts (see `docs/PROTOCOL.md`).
//!
//! [`decode`] never panics: malformed input is a typed [`DecodeError`], and a
//! well-formed message of a type this version does not know is
//! [`Decoded::Unknown`], to be ignored with a log line.
#![forbid(unsafe_code)]

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The version of the signaling protocol this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// The path, on the app's own origin, where the signaling WebSocket lives.
/// The relay serves it there, and `trunk serve` proxies it there.
pub const WS_PATH: &str = "/ws";

/// The largest message, in bytes, that [`decode`] accepts by default.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// One signaling message with its addressing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Protocol version of the sender ([`PROTOCOL_VERSION`]).
    pub v: u32,
    /// The room this message belongs to.
    pub room: String,
    /// The sender's peer id.
    pub from: String,
    /// The one peer this is for; absent means everyone in the room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The message itself.
    #[serde(flatten)]
    pub body: Body,
}

/// An ICE candidate as `RTCIceCandidate.toJSON()` gives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    /// The candidate line (`candidate:...`).
    pub candidate: String,
    /// The media stream identification tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    /// The index of the m-line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_m_line_index: Option<u16>,
    /// The ICE username fragment of the generation it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_fragment: Option<String>,
}

/// The messages, tagged by `"type"` in snake case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Body {
    /// "I am here": sent to the room on joining (and again after a
    /// reconnect). Everyone present answers with [`Body::Present`].
    Join {
        /// Display name, if the person gave one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// "I was already here": the reply to a [`Body::Join`], sent to the
    /// newcomer only, so it learns who is in the room.
    Present {
        /// Display name, if the person gave one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// "I am leaving": hang-up. The sender's peer connections are closed.
    Leave,
    /// An SDP offer for the peer connection with the recipient.
    Offer {
        /// The session description.
        sdp: String,
    },
    /// An SDP answer to an [`Body::Offer`].
    Answer {
        /// The session description.
        sdp: String,
    },
    /// One trickled ICE candidate.
    Candidate {
        /// The candidate.
        candidate: Candidate,
    },
    /// The sender has gathered all its candidates (for this ICE generation).
    EndOfCandidates,
    /// Keep-alive; answered with [`Body::Pong`]. Also keeps presence fresh.
    Ping,
    /// The answer to a [`Body::Ping`].
    Pong,
    /// The relay (or a peer) refused something.
    Error {
        /// A stable, machine-readable code, e.g. `room_full`.
        code: String,
        /// What went wrong, for people.
        message: String,
    },
}

impl Body {
    /// The `"type"` string of this message.
    pub fn type_name(&self) -> &'static str {
        match self {
            Body::Join { .. } => "join",
            Body::Present { .. } => "present",
            Body::Leave => "leave",
            Body::Offer { .. } => "offer",
            Body::Answer { .. } => "answer",
            Body::Candidate { .. } => "candidate",
            Body::EndOfCandidates => "end_of_candidates",
            Body::Ping => "ping",
            Body::Pong => "pong",
            Body::Error { .. } => "error",
        }
    }
}

/// Every `"type"` this version knows.
pub const KNOWN_TYPES: &[&str] = &[
    "join",
    "present",
    "leave",
    "offer",
    "answer",
    "candidate",
    "end_of_candidates",
    "ping",
    "pong",
    "error",
];

/// What [`decode`] made of a text frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Decoded {
    /// A message this version understands.
    Message(Envelope),
    /// A well-formed envelope with a `"type"` this version does not know
    /// (from a newer peer): ignore it, but say so in the log.
    Unknown {
        /// The unknown type.
        type_name: String,
        /// Its sender.
        from: String,
        /// Its room.
        room: String,
    },
}

/// Why a text frame is not a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Longer than the limit.
    TooLarge {
        /// Its size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// Not JSON, or not a JSON object.
    NotJson(String),
    /// A required envelope field is missing or of the wrong kind.
    BadEnvelope(String),
    /// A known type whose fields are wrong.
    BadBody {
        /// The message type.
        type_name: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooLarge { size, limit } => {
                write!(f, "message of {size} bytes is over the {limit}-byte limit")
            }
            DecodeError::NotJson(e) => write!(f, "not a JSON object: {e}"),
            DecodeError::BadEnvelope(e) => write!(f, "bad envelope: {e}"),
            DecodeError::BadBody { type_name, reason } => {
                write!(f, "bad {type_name:?} message: {reason}")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Parses one text frame of at most `limit` bytes.
pub fn decode(text: &str, limit: usize) -> Result<Decoded, DecodeError> {
    if text.len() > limit {
        return Err(DecodeError::TooLarge {
            size: text.len(),
            limit,
        });
    }
    let value: Value =
        serde_json::from_str(text).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    let Value::Object(object) = &value else {
        return Err(DecodeError::NotJson("expected an object".into()));
    };
    let field = |key: &str| -> Result<String, DecodeError> {
        match object.get(key) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(DecodeError::BadEnvelope(format!(
                "{key:?} must be a string"
            ))),
            None => Err(DecodeError::BadEnvelope(format!("{key:?} is missing"))),
        }
    };
    let type_name = field("type")?;
    let room = field("room")?;
    let from = field("from")?;
    match object.get("v") {
        Some(v) if v.as_u64().is_some_and(|v| v >= 1) => {}
        _ => {
            return Err(DecodeError::BadEnvelope(
                "\"v\" must be a protocol version (a positive integer)".into(),
            ))
        }
    }
    if object
        .get("to")
        .is_some_and(|to| !(to.is_string() || to.is_null()))
    {
        return Err(DecodeError::BadEnvelope("\"to\" must be a string".into()));
    }
    if !KNOWN_TYPES.contains(&type_name.as_str()) {
        return Ok(Decoded::Unknown {
            type_name,
            from,
            room,
        });
    }
    serde_json::from_value::<Envelope>(value)
        .map(Decoded::Message)
        .map_err(|e| DecodeError::BadBody {
            type_name,
            reason: e.to_string(),
        })
}

/// Serialises a message for sending.
pub fn encode(envelope: &Envelope) -> String {
    // A struct of strings, numbers and enums always serialises.
    serde_json::to_string(envelope).expect("envelopes serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(to: Option<&str>, body: Body) -> Envelope {
        Envelope {
            v: PROTOCOL_VERSION,
            room: "r00m".into(),
            from: "alice".into(),
            to: to.map(Into::into),
            body,
        }
    }

    fn every_body() -> Vec<Body> {
        vec![
            Body::Join {
                name: Some("Ada".into()),
            },
            Body::Join { name: None },
            Body::Present {
                name: Some("Bob".into()),
            },
            Body::Leave,
            Body::Offer {
                sdp: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n".into(),
            },
            Body::Answer {
                sdp: "v=0\r\n".into(),
            },
            Body::Candidate {
                candidate: Candidate {
                    candidate: "candidate:1 1 udp 2122260223 127.0.0.1 54321 typ host".into(),
                    sdp_mid: Some("0".into()),
                    sdp_m_line_index: Some(0),
                    username_fragment: Some("abcd".into()),
                },
            },
            Body::EndOfCandidates,
            Body::Ping,
            Body::Pong,
            Body::Error {
                code: "room_full".into(),
                message: "The room is full (8 people).".into(),
            },
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for body in every_body() {
            for to in [None, Some("bob")] {
                let e = envelope(to, body.clone());
                let text = encode(&e);
                assert_eq!(
                    decode(&text, MAX_MESSAGE_BYTES),
                    Ok(Decoded::Message(e)),
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn type_names_match_the_wire_and_the_known_list() {
        let bodies = every_body();
        for body in &bodies {
            let text = encode(&envelope(None, body.clone()));
            let value: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(value["type"], body.type_name());
            assert!(KNOWN_TYPES.contains(&body.type_name()));
        }
        let mut names: Vec<_> = bodies.iter().map(Body::type_name).collect();
        names.dedup();
        assert_eq!(names.len(), KNOWN_TYPES.len());
    }

    #[test]
    fn wire_format_is_flat_and_camel_cased_for_candidates() {
        let e = envelope(
            Some("bob"),
            Body::Candidate {
                candidate: Candidate {
                    candidate: "candidate:x".into(),
                    sdp_mid: Some("0".into()),
                    sdp_m_line_index: Some(1),
                    username_fragment: None,
                },
            },
        );
        let value: Value = serde_json::from_str(&encode(&e)).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "v": 1, "room": "r00m", "from": "alice", "to": "bob", "type": "candidate",
                "candidate": {"candidate": "candidate:x", "sdpMid": "0", "sdpMLineIndex": 1}
            })
        );
    }

    #[test]
    fn unknown_types_are_reported_not_rejected() {
        let text = r#"{"v":2,"room":"r","from":"carol","type":"reaction","emoji":"👍"}"#;
        assert_eq!(
            decode(text, MAX_MESSAGE_BYTES),
            Ok(Decoded::Unknown {
                type_name: "reaction".into(),
                from: "carol".into(),
                room: "r".into(),
            })
        );
    }

    #[test]
    fn extra_fields_from_newer_versions_are_ignored() {
        let text = r#"{"v":2,"room":"r","from":"a","type":"offer","sdp":"v=0","simulcast":true}"#;
        assert!(matches!(
            decode(text, MAX_MESSAGE_BYTES),
            Ok(Decoded::Message(Envelope {
                body: Body::Offer { .. },
                ..
            }))
        ));
    }

    #[test]
    fn malformed_input_is_a_typed_error() {
        type Check = fn(&DecodeError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("", |e| matches!(e, DecodeError::NotJson(_))),
            ("not json", |e| matches!(e, DecodeError::NotJson(_))),
            ("[1,2]", |e| matches!(e, DecodeError::NotJson(_))),
            ("\"offer\"", |e| matches!(e, DecodeError::NotJson(_))),
            (
                r#"{"v":1,"room":"r","from":"a"}"#,
                |e| matches!(e, DecodeError::BadEnvelope(m) if m.contains("type")),
            ),
            (
                r#"{"v":1,"room":"r","type":"leave"}"#,
                |e| matches!(e, DecodeError::BadEnvelope(m) if m.contains("from")),
            ),
            (
                r#"{"v":1,"from":"a","type":"leave"}"#,
                |e| matches!(e, DecodeError::BadEnvelope(m) if m.contains("room")),
            ),
            (
                r#"{"room":"r","from":"a","type":"leave"}"#,
                |e| matches!(e, DecodeError::BadEnvelope(m) if m.contains("\"v\"")),
            ),
            (r#"{"v":"1","room":"r","from":"a","type":"leave"}"#, |e| {
                matches!(e, DecodeError::BadEnvelope(_))
            }),
            (r#"{"v":1,"room":7,"from":"a","type":"leave"}"#, |e| {
                matches!(e, DecodeError::BadEnvelope(_))
            }),
            (
                r#"{"v":1,"room":"r","from":"a","type":"offer"}"#,
                |e| matches!(e, DecodeError::BadBody { type_name, .. } if type_name == "offer"),
            ),
            (
                r#"{"v":1,"room":"r","from":"a","type":"candidate","candidate":"x"}"#,
                |e| matches!(e, DecodeError::BadBody { .. }),
            ),
            (
                r#"{"v":1,"room":"r","from":"a","to":5,"type":"leave"}"#,
                |e| matches!(e, DecodeError::BadEnvelope(m) if m.contains("to")),
            ),
        ];
        for (text, expected) in cases {
            let err = decode(text, MAX_MESSAGE_BYTES).expect_err(text);
            assert!(expected(&err), "{text}: {err:?}");
            assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn oversized_input_is_refused_before_parsing() {
        let text = format!(
            r#"{{"v":1,"room":"r","from":"a","type":"offer","sdp":"{}"}}"#,
            "x".repeat(100)
        );
        assert_eq!(
            decode(&text, 50),
            Err(DecodeError::TooLarge {
                size: text.len(),
                limit: 50
            })
        );
        assert!(decode(&text, text.len()).is_ok());
    }
}
