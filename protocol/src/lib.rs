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
use serde_json::{Map, Value};

/// The version of the signaling protocol this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// The path, on the app's own origin, where the signaling WebSocket lives.
/// The relay serves it there, and `trunk serve` proxies it there.
pub const WS_PATH: &str = "/ws";

/// The largest message, in bytes, that [`decode`] accepts by default.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// The sender id the relay uses for its own messages, and the recipient id
/// that addresses the relay. No peer may use it.
pub const RELAY_ID: &str = "relay";

/// The longest room or peer id, in characters, by default.
pub const MAX_ID_LEN: usize = 64;

/// The longest display name (in `join`, `present` and `welcome`), in
/// characters. The relay refuses a `join` with a longer one (`bad_name`),
/// so no `welcome` can outgrow [`MAX_MESSAGE_BYTES`].
pub const MAX_NAME_CHARS: usize = 64;

/// Whether `name` is a display name the relay accepts: at most
/// [`MAX_NAME_CHARS`] characters, none of them control characters.
/// [`clean_name`] always gives one.
pub fn is_valid_name(name: &str) -> bool {
    name.chars().count() <= MAX_NAME_CHARS && !name.chars().any(char::is_control)
}

/// A display name as it may be sent and shown: trimmed, without control
/// characters, at most [`MAX_NAME_CHARS`] characters; `None` if nothing is
/// left.
pub fn clean_name(name: &str) -> Option<String> {
    let clean: String = name
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME_CHARS)
        .collect();
    let clean = clean.trim_end();
    (!clean.is_empty()).then(|| clean.to_owned())
}

/// Whether `id` is a well-formed room or peer id: 1 to `max_len` characters,
/// each an ASCII letter, digit, `-` or `_` (the URL-safe base64 alphabet).
pub fn is_valid_id(id: &str, max_len: usize) -> bool {
    !id.is_empty()
        && id.len() <= max_len
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The stable `code`s of [`Body::Error`] messages.
pub mod codes {
    /// Not JSON, or not a valid message envelope; the message was dropped.
    pub const BAD_MESSAGE: &str = "bad_message";
    /// A binary WebSocket frame; signaling is text only.
    pub const BINARY_FRAME: &str = "binary_frame";
    /// Over the size limit; the message was dropped.
    pub const TOO_LARGE: &str = "too_large";
    /// Over the per-connection message rate; the message was dropped.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// The room has as many peers as allowed; the join was refused.
    pub const ROOM_FULL: &str = "room_full";
    /// The relay has as many rooms as allowed; the join was refused.
    pub const TOO_MANY_ROOMS: &str = "too_many_rooms";
    /// The room id is not 1..=64 URL-safe characters.
    pub const BAD_ROOM: &str = "bad_room";
    /// The peer id is malformed or reserved.
    pub const BAD_ID: &str = "bad_id";
    /// The display name is longer than `MAX_NAME_CHARS` characters, or has
    /// control characters in it.
    pub const BAD_NAME: &str = "bad_name";
    /// Another connection in the room already uses this peer id.
    pub const ID_TAKEN: &str = "id_taken";
    /// The message claims a sender id other than the one this connection
    /// joined with.
    pub const SPOOFED_ID: &str = "spoofed_id";
    /// The message names a room other than the one this connection joined.
    pub const WRONG_ROOM: &str = "wrong_room";
    /// A message other than `join` before joining a room.
    pub const NOT_JOINED: &str = "not_joined";
    /// The named recipient is not in the room (any more).
    pub const UNKNOWN_PEER: &str = "unknown_peer";
    /// An `sfu_*` message to a relay without an SFU, or for a room that is
    /// not on it.
    pub const SFU_UNAVAILABLE: &str = "sfu_unavailable";
    /// The relay's SFU failed the request (Janus unreachable or refused).
    pub const SFU_FAILED: &str = "sfu_failed";
}

/// A [`Body::Error`] code, typed. Codes from a newer version are kept as
/// [`ErrorCode::Other`], so they can still be shown and logged.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// [`codes::BAD_MESSAGE`]
    BadMessage,
    /// [`codes::BINARY_FRAME`]
    BinaryFrame,
    /// [`codes::TOO_LARGE`]
    TooLarge,
    /// [`codes::RATE_LIMITED`]
    RateLimited,
    /// [`codes::ROOM_FULL`]
    RoomFull,
    /// [`codes::TOO_MANY_ROOMS`]
    TooManyRooms,
    /// [`codes::BAD_ROOM`]
    BadRoom,
    /// [`codes::BAD_ID`]
    BadId,
    /// [`codes::BAD_NAME`]
    BadName,
    /// [`codes::ID_TAKEN`]
    IdTaken,
    /// [`codes::SPOOFED_ID`]
    SpoofedId,
    /// [`codes::WRONG_ROOM`]
    WrongRoom,
    /// [`codes::NOT_JOINED`]
    NotJoined,
    /// [`codes::UNKNOWN_PEER`]
    UnknownPeer,
    /// A code this version does not know.
    Other(String),
}

impl ErrorCode {
    /// The code for `code` as it appears on the wire.
    pub fn parse(code: &str) -> Self {
        match code {
            codes::BAD_MESSAGE => ErrorCode::BadMessage,
            codes::BINARY_FRAME => ErrorCode::BinaryFrame,
            codes::TOO_LARGE => ErrorCode::TooLarge,
            codes::RATE_LIMITED => ErrorCode::RateLimited,
            codes::ROOM_FULL => ErrorCode::RoomFull,
            codes::TOO_MANY_ROOMS => ErrorCode::TooManyRooms,
            codes::BAD_ROOM => ErrorCode::BadRoom,
            codes::BAD_ID => ErrorCode::BadId,
            codes::BAD_NAME => ErrorCode::BadName,
            codes::ID_TAKEN => ErrorCode::IdTaken,
            codes::SPOOFED_ID => ErrorCode::SpoofedId,
            codes::WRONG_ROOM => ErrorCode::WrongRoom,
            codes::NOT_JOINED => ErrorCode::NotJoined,
            codes::UNKNOWN_PEER => ErrorCode::UnknownPeer,
            other => ErrorCode::Other(other.to_owned()),
        }
    }

    /// Its wire form.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::BadMessage => codes::BAD_MESSAGE,
            ErrorCode::BinaryFrame => codes::BINARY_FRAME,
            ErrorCode::TooLarge => codes::TOO_LARGE,
            ErrorCode::RateLimited => codes::RATE_LIMITED,
            ErrorCode::RoomFull => codes::ROOM_FULL,
            ErrorCode::TooManyRooms => codes::TOO_MANY_ROOMS,
            ErrorCode::BadRoom => codes::BAD_ROOM,
            ErrorCode::BadId => codes::BAD_ID,
            ErrorCode::BadName => codes::BAD_NAME,
            ErrorCode::IdTaken => codes::ID_TAKEN,
            ErrorCode::SpoofedId => codes::SPOOFED_ID,
            ErrorCode::WrongRoom => codes::WRONG_ROOM,
            ErrorCode::NotJoined => codes::NOT_JOINED,
            ErrorCode::UnknownPeer => codes::UNKNOWN_PEER,
            ErrorCode::Other(code) => code,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The most people in one call, by default and at most: the app counts a
/// room up to this, and the relay lets this many into a room unless told
/// otherwise. A full mesh sends everyone's media to everyone, so past this
/// the upload of an ordinary connection runs out.
pub const MAX_PEOPLE: usize = 6;

/// One signaling message with its addressing. Encoded with serde; decoded
/// by [`decode`], by hand.
#[derive(Clone, Debug, PartialEq, Serialize)]
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
    /// The sender's message counter: 1 for its first message, one more for
    /// each after. Receivers use it to drop duplicates and stale messages a
    /// relay may deliver twice or out of order. The relay's own messages
    /// have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
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

impl Candidate {
    /// The candidate in `json`, as `RTCIceCandidate.toJSON()` writes it.
    pub fn from_json(json: &str) -> Result<Self, String> {
        match serde_json::from_str(json) {
            Ok(Value::Object(c)) => Self::from_object(&c),
            Ok(_) => Err("a candidate must be a JSON object".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn from_object(c: &Map<String, Value>) -> Result<Self, String> {
        Ok(Candidate {
            candidate: string(c, "candidate")?,
            sdp_mid: opt_string(c, "sdpMid")?,
            sdp_m_line_index: match c.get("sdpMLineIndex") {
                None | Some(Value::Null) => None,
                Some(n) => Some(
                    n.as_u64()
                        .and_then(|n| u16::try_from(n).ok())
                        .ok_or("\"sdpMLineIndex\" must be an integer from 0 to 65535")?,
                ),
            },
            username_fragment: opt_string(c, "usernameFragment")?,
        })
    }
}

/// A peer in the room, as the relay lists it in [`Body::Welcome`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PeerInfo {
    /// Its peer id.
    pub id: String,
    /// Its display name, if it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Why a peer left.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// The person hung up (the default when absent).
    #[default]
    Hangup,
    /// Its signaling connection ended without a goodbye (sent by the relay
    /// on the peer's behalf). Its media may still be flowing and it may
    /// come back with a new `join`.
    Disconnected,
    /// It found the room already full on joining (over a relay that keeps
    /// no limit, newcomers count the room themselves) and went away
    /// without a call.
    Full,
    /// A reason from a newer version.
    Other,
}

impl LeaveReason {
    fn is_hangup(&self) -> bool {
        *self == LeaveReason::Hangup
    }
}

/// The relay's [`Body::Welcome`] `features` entry for phone calls
/// ([`Body::PhoneCall`]).
pub const FEATURE_PHONE: &str = "phone";

/// The relay's [`Body::Welcome`] `features` entry for large calls: the room
/// moves its media to an SFU past a few people ([`Body::Route`]).
pub const FEATURE_SFU: &str = "sfu";

/// Which way a room's media goes ([`Body::Route`], [`Body::Receiving`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// Peer to peer: a connection to everyone else (the default).
    #[default]
    Mesh,
    /// Through the relay's SFU: one connection that publishes, one that
    /// receives everyone.
    Sfu,
    /// A route from a newer version.
    Other,
}

impl Route {
    fn is_mesh(&self) -> bool {
        *self == Route::Mesh
    }

    fn parse(s: &str) -> Self {
        match s {
            "mesh" => Route::Mesh,
            "sfu" => Route::Sfu,
            _ => Route::Other,
        }
    }
}

/// One stream of an SFU subscription ([`Body::SfuSubscription`]): the
/// m-line `mid` carries `peer`'s `kind` (`audio` or `video`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SfuStream {
    /// The m-line's mid in the subscription's SDP.
    pub mid: String,
    /// Whose media it is.
    pub peer: String,
    /// `audio` or `video`.
    pub kind: String,
}

/// Where a phone call is ([`Body::PhoneState`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PhoneStatus {
    /// The gateway is placing the call.
    Calling,
    /// The far end rings (SIP 180, or 183 with early media).
    Ringing,
    /// The far end picked up; media flows once the connection is up.
    Answered,
    /// The call is over (see `cause`).
    Ended,
    /// A state from a newer version.
    Other,
}

/// The `cause`s of a [`Body::PhoneState`] with state `ended`.
pub mod phone_causes {
    /// You hung up (`phone_hangup`), or your connection to the relay went.
    pub const HANGUP: &str = "hangup";
    /// The far end hung up after answering.
    pub const REMOTE_HANGUP: &str = "remote_hangup";
    /// The call failed with a SIP final response: see `code`.
    pub const REFUSED: &str = "refused";
    /// The relay could not reach its gateway, or the gateway failed.
    pub const GATEWAY: &str = "gateway";
    /// The address is not one the relay can call.
    pub const BAD_ADDRESS: &str = "bad_address";
    /// The media connection to the gateway failed.
    pub const MEDIA: &str = "media";
    /// This relay does not offer phone calls, or one is already going.
    pub const UNAVAILABLE: &str = "unavailable";
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The messages, tagged by `"type"` in snake case.
#[derive(Clone, Debug, PartialEq, Serialize)]
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
    /// From the relay to a peer whose `join` it accepted: who else is in
    /// the room. Only relays that keep rooms send it; over a broadcast relay
    /// the `present` replies say the same.
    Welcome {
        /// Everyone else in the room.
        peers: Vec<PeerInfo>,
        /// What this relay offers beyond signaling, e.g. [`FEATURE_PHONE`];
        /// absent means nothing.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        features: Vec<String>,
        /// Where the room's media goes now; absent means [`Route::Mesh`].
        #[serde(default, skip_serializing_if = "Route::is_mesh")]
        route: Route,
    },
    /// From the relay (with [`FEATURE_SFU`]): the room's media moves to
    /// `route`. The old connections stay until the new ones carry media
    /// (PROTOCOL.md 5.14).
    Route {
        /// Where it goes now.
        route: Route,
    },
    /// To the relay: publish our media through its SFU. `sdp` is a
    /// complete send-only offer (every candidate gathered: no trickle).
    SfuPublish {
        /// The offer.
        sdp: String,
        /// An ICE restart of the publishing connection we have (new
        /// credentials, same media): the SFU renegotiates it rather than
        /// taking a new publisher.
        #[serde(default, skip_serializing_if = "is_false")]
        ice_restart: bool,
    },
    /// From the relay: the SFU's answer to our [`Body::SfuPublish`].
    SfuPublished {
        /// The answer, with the SFU's candidates.
        sdp: String,
    },
    /// From the relay: the SFU offers (or updates) the connection we
    /// receive everyone on; answer with [`Body::SfuAnswer`].
    SfuSubscription {
        /// The offer, with the SFU's candidates.
        sdp: String,
        /// Whose media each m-line carries.
        streams: Vec<SfuStream>,
    },
    /// To the relay: our complete answer to a [`Body::SfuSubscription`].
    SfuAnswer {
        /// The answer.
        sdp: String,
    },
    /// To the relay: receive `peer`'s video from the SFU as simulcast
    /// layer `layer` (0 the smallest, 2 the largest), the one that fits
    /// the size its tile is shown at; `null`: none of it (no tile shows
    /// them; their audio still comes).
    SfuLayer {
        /// Whose video.
        peer: String,
        /// The layer, 0 to 2, or none.
        layer: Option<u8>,
    },
    /// To the relay: restart ICE on the connection we receive on: the SFU
    /// sends a [`Body::SfuSubscription`] with new ICE credentials.
    SfuRestart,
    /// To the relay: we closed our SFU connections (the room went back to
    /// peer to peer and everyone reaches us directly).
    SfuLeave,
    /// To a peer: we now receive its media along `via` (so it may close
    /// the other path to us).
    Receiving {
        /// The path its media reaches us on.
        via: Route,
    },
    /// To a peer, through the relay: what the peer-to-peer control channel
    /// would carry (`media` state, `chat`), for when there is none (the
    /// room is on the SFU). `data` is that channel's JSON text.
    Control {
        /// The control-channel message.
        data: String,
    },
    /// "I am leaving": hang-up. The sender's peer connections are closed.
    /// The relay sends one on behalf of a peer whose connection drops.
    Leave {
        /// Why; absent means [`LeaveReason::Hangup`].
        #[serde(default, skip_serializing_if = "LeaveReason::is_hangup")]
        reason: LeaveReason,
    },
    /// An SDP offer for the peer connection with the recipient.
    Offer {
        /// The session description.
        sdp: String,
        /// Whether this offer restarts ICE (new credentials, new
        /// candidates). Informational: the SDP says so too.
        #[serde(default, skip_serializing_if = "is_false")]
        ice_restart: bool,
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
    /// Keep-alive. Sent to the room it is a heartbeat that keeps the
    /// sender's presence fresh and gets no reply; sent `to` a peer or to
    /// the relay ([`RELAY_ID`]) it is answered with [`Body::Pong`].
    Ping,
    /// The answer to a [`Body::Ping`].
    Pong,
    /// To the relay: call a phone through its SIP gateway (offered when
    /// the relay's `welcome` lists [`FEATURE_PHONE`]). `sdp` is a complete
    /// offer, every candidate gathered (the gateway takes no trickle).
    /// Answered with [`Body::PhoneState`] messages.
    PhoneCall {
        /// A SIP address (`sip:alice@example.com`, `alice@example.com`) or
        /// a telephone number (`+49 30 1234567`), which the relay completes
        /// with its SIP domain.
        address: String,
        /// The offer.
        sdp: String,
    },
    /// To the relay: end the phone call (cancel it while it rings).
    PhoneHangup,
    /// From the relay: the phone call moved on.
    PhoneState {
        /// Where the call is now.
        state: PhoneStatus,
        /// The answer to the offer (with `ringing`, for early media, or
        /// with `answered`); it comes once.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdp: Option<String>,
        /// With `ended`: the SIP status code that ended it, if SIP did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<u16>,
        /// With `ended`: why, one of [`phone_causes`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cause: Option<String>,
        /// With `ended`: the SIP reason phrase or the gateway's words, for
        /// the log.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The relay (or a peer) refused something.
    Error {
        /// A stable, machine-readable code, e.g. `room_full`.
        code: String,
        /// What went wrong, for people.
        message: String,
    },
}

/// The message types, listed once: each [`Body`] variant and its
/// `"type"` string (serde's snake-case name of the variant, which a test
/// checks). This makes [`MessageType`], [`KNOWN_TYPES`] and
/// [`Body::message_type`].
macro_rules! message_types {
    ($($variant:ident => $name:literal,)*) => {
        /// The `"type"` of a message, without its fields.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum MessageType {
            $(
                #[doc = concat!("`\"", $name, "\"`: see [`Body::", stringify!($variant), "`].")]
                $variant,
            )*
        }

        /// Every `"type"` this version knows.
        pub const KNOWN_TYPES: &[&str] = &[$($name),*];

        impl MessageType {
            /// The type named `name`, if this version knows it.
            pub fn parse(name: &str) -> Option<Self> {
                match name {
                    $($name => Some(MessageType::$variant),)*
                    _ => None,
                }
            }

            /// Its `"type"` string.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(MessageType::$variant => $name,)*
                }
            }
        }

        impl Body {
            /// The type of this message.
            pub fn message_type(&self) -> MessageType {
                match self {
                    $(Body::$variant { .. } => MessageType::$variant,)*
                }
            }
        }
    };
}

message_types! {
    Join => "join",
    Present => "present",
    Welcome => "welcome",
    Leave => "leave",
    Offer => "offer",
    Answer => "answer",
    Candidate => "candidate",
    EndOfCandidates => "end_of_candidates",
    Ping => "ping",
    Pong => "pong",
    PhoneCall => "phone_call",
    PhoneHangup => "phone_hangup",
    PhoneState => "phone_state",
    Route => "route",
    SfuPublish => "sfu_publish",
    SfuPublished => "sfu_published",
    SfuSubscription => "sfu_subscription",
    SfuAnswer => "sfu_answer",
    SfuLayer => "sfu_layer",
    SfuRestart => "sfu_restart",
    SfuLeave => "sfu_leave",
    Receiving => "receiving",
    Control => "control",
    Error => "error",
}

impl Body {
    /// The `"type"` string of this message.
    pub fn type_name(&self) -> &'static str {
        self.message_type().as_str()
    }
}

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
        /// Its recipient, if it names one.
        to: Option<String>,
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
    let to = match object.get("to") {
        None | Some(Value::Null) => None,
        Some(Value::String(to)) => Some(to.clone()),
        Some(_) => return Err(DecodeError::BadEnvelope("\"to\" must be a string".into())),
    };
    if object
        .get("seq")
        .is_some_and(|seq| !(seq.is_u64() || seq.is_null()))
    {
        return Err(DecodeError::BadEnvelope(
            "\"seq\" must be a non-negative integer".into(),
        ));
    }
    let Some(kind) = MessageType::parse(&type_name) else {
        return Ok(Decoded::Unknown {
            type_name,
            from,
            room,
            to,
        });
    };
    let Ok(v) = u32::try_from(object.get("v").and_then(Value::as_u64).unwrap_or(0)) else {
        return Err(DecodeError::BadEnvelope(
            "\"v\" is not a protocol version this side knows".into(),
        ));
    };
    let body = body(object, kind).map_err(|reason| DecodeError::BadBody {
        type_name: type_name.clone(),
        reason,
    })?;
    Ok(Decoded::Message(Envelope {
        v,
        room,
        from,
        to,
        seq: object.get("seq").and_then(Value::as_u64),
        body,
    }))
}

/// The fields of a message of type `kind` from its JSON object: by hand, not with
/// serde's derive (a flattened, internally tagged enum is the single
/// biggest function in the app's wasm, and the relay runs this on every
/// message). `null` counts as absent for optional fields, as with serde.
fn body(o: &Map<String, Value>, kind: MessageType) -> Result<Body, String> {
    Ok(match kind {
        MessageType::Join => Body::Join {
            name: opt_string(o, "name")?,
        },
        MessageType::Present => Body::Present {
            name: opt_string(o, "name")?,
        },
        MessageType::Welcome => Body::Welcome {
            peers: match o.get("peers") {
                Some(Value::Array(peers)) => peers
                    .iter()
                    .map(|p| match p {
                        Value::Object(p) => Ok(PeerInfo {
                            id: string(p, "id")?,
                            name: opt_string(p, "name")?,
                        }),
                        _ => Err("each of \"peers\" must be an object".to_owned()),
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err("\"peers\" must be an array".into()),
                None => return Err("missing field \"peers\"".into()),
            },
            features: match o.get("features") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(features)) => features
                    .iter()
                    .map(|f| match f {
                        Value::String(f) => Ok(f.clone()),
                        _ => Err("each of \"features\" must be a string".to_owned()),
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err("\"features\" must be an array".into()),
            },
            route: Route::parse(opt_string(o, "route")?.as_deref().unwrap_or("mesh")),
        },
        MessageType::Route => Body::Route {
            route: Route::parse(&string(o, "route")?),
        },
        MessageType::SfuPublish => Body::SfuPublish {
            sdp: string(o, "sdp")?,
            ice_restart: flag(o, "ice_restart")?,
        },
        MessageType::SfuPublished => Body::SfuPublished {
            sdp: string(o, "sdp")?,
        },
        MessageType::SfuSubscription => Body::SfuSubscription {
            sdp: string(o, "sdp")?,
            streams: match o.get("streams") {
                Some(Value::Array(streams)) => streams
                    .iter()
                    .map(|s| match s {
                        Value::Object(s) => Ok(SfuStream {
                            mid: string(s, "mid")?,
                            peer: string(s, "peer")?,
                            kind: string(s, "kind")?,
                        }),
                        _ => Err("each of \"streams\" must be an object".to_owned()),
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err("\"streams\" must be an array".into()),
                None => return Err("missing field \"streams\"".into()),
            },
        },
        MessageType::SfuAnswer => Body::SfuAnswer {
            sdp: string(o, "sdp")?,
        },
        MessageType::SfuLayer => Body::SfuLayer {
            peer: string(o, "peer")?,
            layer: match o.get("layer") {
                None | Some(Value::Null) => None,
                Some(layer) => match layer.as_u64() {
                    Some(layer @ 0..=2) => Some(layer as u8),
                    _ => return Err("\"layer\" must be 0, 1, 2 or null".into()),
                },
            },
        },
        MessageType::SfuRestart => Body::SfuRestart,
        MessageType::SfuLeave => Body::SfuLeave,
        MessageType::Receiving => Body::Receiving {
            via: Route::parse(&string(o, "via")?),
        },
        MessageType::Control => Body::Control {
            data: string(o, "data")?,
        },
        MessageType::Leave => Body::Leave {
            reason: match opt_string(o, "reason")?.as_deref() {
                None | Some("hangup") => LeaveReason::Hangup,
                Some("disconnected") => LeaveReason::Disconnected,
                Some("full") => LeaveReason::Full,
                Some(_) => LeaveReason::Other,
            },
        },
        MessageType::Offer => Body::Offer {
            sdp: string(o, "sdp")?,
            ice_restart: flag(o, "ice_restart")?,
        },
        MessageType::Answer => Body::Answer {
            sdp: string(o, "sdp")?,
        },
        MessageType::Candidate => Body::Candidate {
            candidate: match o.get("candidate") {
                Some(Value::Object(c)) => Candidate::from_object(c)?,
                Some(_) => return Err("\"candidate\" must be an object".into()),
                None => return Err("missing field \"candidate\"".into()),
            },
        },
        MessageType::EndOfCandidates => Body::EndOfCandidates,
        MessageType::Ping => Body::Ping,
        MessageType::Pong => Body::Pong,
        MessageType::PhoneCall => Body::PhoneCall {
            address: string(o, "address")?,
            sdp: string(o, "sdp")?,
        },
        MessageType::PhoneHangup => Body::PhoneHangup,
        MessageType::PhoneState => Body::PhoneState {
            state: match string(o, "state")?.as_str() {
                "calling" => PhoneStatus::Calling,
                "ringing" => PhoneStatus::Ringing,
                "answered" => PhoneStatus::Answered,
                "ended" => PhoneStatus::Ended,
                _ => PhoneStatus::Other,
            },
            sdp: opt_string(o, "sdp")?,
            code: match o.get("code") {
                None | Some(Value::Null) => None,
                Some(n) => Some(
                    n.as_u64()
                        .and_then(|n| u16::try_from(n).ok())
                        .ok_or("\"code\" must be a SIP status code")?,
                ),
            },
            cause: opt_string(o, "cause")?,
            reason: opt_string(o, "reason")?,
        },
        MessageType::Error => Body::Error {
            code: string(o, "code")?,
            message: string(o, "message")?,
        },
    })
}

/// An optional string field of a JSON object (`null` counts as absent):
/// the rule every hand-written reader here and in the app uses.
pub fn opt_string(o: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{key:?} must be a string")),
    }
}

fn string(o: &Map<String, Value>, key: &str) -> Result<String, String> {
    opt_string(o, key)?.ok_or_else(|| format!("missing field {key:?}"))
}

/// A true/false field that may be absent (false).
fn flag(o: &Map<String, Value>, key: &str) -> Result<bool, String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(format!("{key:?} must be true or false")),
    }
}

/// Serialises a message for sending.
pub fn encode(envelope: &Envelope) -> String {
    // A struct of strings, numbers and enums always serialises.
    serde_json::to_string(envelope).expect("envelopes serialise")
}

#[cfg(test)]
mod tests {

    #[test]
    fn names_are_cleaned_to_what_the_relay_accepts() {
        assert_eq!(clean_name("  Ada  "), Some("Ada".into()));
        assert_eq!(clean_name("A\u{7}d\na"), Some("Ada".into()));
        assert_eq!(clean_name(" \t "), None);
        let long = "\u{1F600}".repeat(100);
        let clean = clean_name(&long).unwrap();
        assert_eq!(clean.chars().count(), MAX_NAME_CHARS);
        assert!(is_valid_name(&clean) && is_valid_name("Ada Lovelace"));
        assert!(!is_valid_name(&"n".repeat(MAX_NAME_CHARS + 1)) && !is_valid_name("a\u{7}b"));
    }

    use super::*;

    fn envelope(to: Option<&str>, body: Body) -> Envelope {
        Envelope {
            v: PROTOCOL_VERSION,
            room: "r00m".into(),
            from: "alice".into(),
            to: to.map(Into::into),
            seq: Some(7),
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
            Body::Welcome {
                peers: vec![
                    PeerInfo {
                        id: "bob".into(),
                        name: Some("Bob".into()),
                    },
                    PeerInfo {
                        id: "carol".into(),
                        name: None,
                    },
                ],
                features: vec![],
                route: Route::Mesh,
            },
            Body::Welcome {
                peers: vec![],
                features: vec![],
                route: Route::Mesh,
            },
            Body::Welcome {
                peers: vec![],
                features: vec![FEATURE_PHONE.into(), FEATURE_SFU.into()],
                route: Route::Sfu,
            },
            Body::Route { route: Route::Sfu },
            Body::Route { route: Route::Mesh },
            Body::SfuPublish {
                sdp: "v=0\r\n".into(),
                ice_restart: false,
            },
            Body::SfuPublish {
                sdp: "v=0\r\n".into(),
                ice_restart: true,
            },
            Body::SfuRestart,
            Body::SfuPublished {
                sdp: "v=0\r\n".into(),
            },
            Body::SfuSubscription {
                sdp: "v=0\r\n".into(),
                streams: vec![
                    SfuStream {
                        mid: "0".into(),
                        peer: "bob".into(),
                        kind: "audio".into(),
                    },
                    SfuStream {
                        mid: "1".into(),
                        peer: "bob".into(),
                        kind: "video".into(),
                    },
                ],
            },
            Body::SfuSubscription {
                sdp: "v=0\r\n".into(),
                streams: vec![],
            },
            Body::SfuAnswer {
                sdp: "v=0\r\n".into(),
            },
            Body::SfuLayer {
                peer: "bob".into(),
                layer: Some(0),
            },
            Body::SfuLayer {
                peer: "bob".into(),
                layer: None,
            },
            Body::SfuLeave,
            Body::Receiving { via: Route::Sfu },
            Body::Receiving { via: Route::Mesh },
            Body::Control {
                data: r#"{"type":"media","audio":true,"video":true}"#.into(),
            },
            Body::PhoneCall {
                address: "sip:phone@127.0.0.1:5062".into(),
                sdp: "v=0\r\n".into(),
            },
            Body::PhoneHangup,
            Body::PhoneState {
                state: PhoneStatus::Ringing,
                sdp: None,
                code: None,
                cause: None,
                reason: None,
            },
            Body::PhoneState {
                state: PhoneStatus::Answered,
                sdp: Some("v=0\r\n".into()),
                code: None,
                cause: None,
                reason: None,
            },
            Body::PhoneState {
                state: PhoneStatus::Ended,
                sdp: None,
                code: Some(486),
                cause: Some(phone_causes::REFUSED.into()),
                reason: Some("Busy Here".into()),
            },
            Body::Leave {
                reason: LeaveReason::Hangup,
            },
            Body::Leave {
                reason: LeaveReason::Disconnected,
            },
            Body::Leave {
                reason: LeaveReason::Full,
            },
            Body::Offer {
                sdp: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n".into(),
                ice_restart: false,
            },
            Body::Offer {
                sdp: "v=0\r\n".into(),
                ice_restart: true,
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
    fn error_codes_round_trip_and_keep_unknown_ones() {
        let known = [
            codes::BAD_MESSAGE,
            codes::BINARY_FRAME,
            codes::TOO_LARGE,
            codes::RATE_LIMITED,
            codes::ROOM_FULL,
            codes::TOO_MANY_ROOMS,
            codes::BAD_ROOM,
            codes::BAD_ID,
            codes::BAD_NAME,
            codes::ID_TAKEN,
            codes::SPOOFED_ID,
            codes::WRONG_ROOM,
            codes::NOT_JOINED,
            codes::UNKNOWN_PEER,
        ];
        for text in known {
            let code = ErrorCode::parse(text);
            assert!(!matches!(code, ErrorCode::Other(_)), "{text}");
            assert_eq!(code.as_str(), text);
        }
        let newer = ErrorCode::parse("slow_down");
        assert_eq!(newer, ErrorCode::Other("slow_down".into()));
        assert_eq!(newer.to_string(), "slow_down");
    }

    #[test]
    fn a_candidate_reads_as_the_browser_writes_it() {
        let c = Candidate::from_json(
            r#"{"candidate":"candidate:1 1 udp 1 10.0.0.1 9 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":null}"#,
        )
        .unwrap();
        assert_eq!(c.sdp_mid.as_deref(), Some("0"));
        assert_eq!((c.sdp_m_line_index, c.username_fragment), (Some(0), None));
        for bad in [
            "",
            "[]",
            r#"{"sdpMid":"0"}"#,
            r#"{"candidate":"c","sdpMLineIndex":70000}"#,
        ] {
            assert!(Candidate::from_json(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn message_types_parse_back() {
        for name in KNOWN_TYPES {
            assert_eq!(
                MessageType::parse(name).map(MessageType::as_str),
                Some(*name)
            );
        }
        assert_eq!(MessageType::parse("hello"), None);
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
                "v": 1, "room": "r00m", "from": "alice", "to": "bob", "seq": 7, "type": "candidate",
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
                to: None,
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
                r#"{"v":1,"room":"r","from":"a","seq":-1,"type":"leave"}"#,
                |e| matches!(e, DecodeError::BadEnvelope(m) if m.contains("seq")),
            ),
            (
                r#"{"v":1,"room":"r","from":"a","to":5,"type":"leave"}"#,
                |e| matches!(e, DecodeError::BadEnvelope(m) if m.contains("to")),
            ),
            (
                r#"{"v":4294967296,"room":"r","from":"a","type":"ping"}"#,
                |e| matches!(e, DecodeError::BadEnvelope(_)),
            ),
            (
                r#"{"v":1,"room":"r","from":"a","type":"offer","sdp":"x","ice_restart":"yes"}"#,
                |e| matches!(e, DecodeError::BadBody { reason, .. } if reason.contains("ice_restart")),
            ),
            (
                r#"{"v":1,"room":"r","from":"a","type":"join","name":5}"#,
                |e| matches!(e, DecodeError::BadBody { reason, .. } if reason.contains("name")),
            ),
            (
                r#"{"v":1,"room":"r","from":"a","type":"welcome","peers":{}}"#,
                |e| matches!(e, DecodeError::BadBody { reason, .. } if reason.contains("peers")),
            ),
            (
                r#"{"v":1,"room":"r","from":"a","type":"welcome","peers":[{"name":"x"}]}"#,
                |e| matches!(e, DecodeError::BadBody { reason, .. } if reason.contains("id")),
            ),
            (
                r#"{"v":1,"room":"r","from":"a","type":"welcome","peers":[7]}"#,
                |e| matches!(e, DecodeError::BadBody { .. }),
            ),
            (
                r#"{"v":1,"room":"r","from":"a","type":"leave","reason":1}"#,
                |e| matches!(e, DecodeError::BadBody { reason, .. } if reason.contains("reason")),
            ),
            (
                r#"{"v":1,"room":"r","from":"a","type":"candidate","candidate":{"candidate":"c","sdpMLineIndex":70000}}"#,
                |e| matches!(e, DecodeError::BadBody { reason, .. } if reason.contains("sdpMLineIndex")),
            ),
            (
                r#"{"v":1,"room":"r","from":"a","type":"candidate","candidate":{"sdpMid":"0"}}"#,
                |e| matches!(e, DecodeError::BadBody { reason, .. } if reason.contains("candidate")),
            ),
            (
                r#"{"v":1,"room":"r","from":"a","type":"error","code":"x"}"#,
                |e| matches!(e, DecodeError::BadBody { reason, .. } if reason.contains("message")),
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

    #[test]
    fn optional_fields_have_their_defaults_on_the_wire() {
        let leave = r#"{"v":1,"room":"r","from":"a","type":"leave"}"#;
        let Ok(Decoded::Message(e)) = decode(leave, MAX_MESSAGE_BYTES) else {
            panic!("leave did not decode");
        };
        assert_eq!(e.seq, None);
        assert_eq!(e.to, None);
        assert_eq!(
            e.body,
            Body::Leave {
                reason: LeaveReason::Hangup
            }
        );
        assert_eq!(encode(&e), leave);

        let newer = r#"{"v":2,"room":"r","from":"relay","type":"leave","reason":"kicked"}"#;
        let Ok(Decoded::Message(e)) = decode(newer, MAX_MESSAGE_BYTES) else {
            panic!("leave with a newer reason did not decode");
        };
        assert_eq!(
            e.body,
            Body::Leave {
                reason: LeaveReason::Other
            }
        );

        let offer = r#"{"v":1,"room":"r","from":"a","to":"b","seq":3,"type":"offer","sdp":"v=0"}"#;
        let Ok(Decoded::Message(e)) = decode(offer, MAX_MESSAGE_BYTES) else {
            panic!("offer did not decode");
        };
        assert_eq!(
            e.body,
            Body::Offer {
                sdp: "v=0".into(),
                ice_restart: false
            }
        );
        assert_eq!(encode(&e), offer);
    }

    #[test]
    fn ids_are_short_and_url_safe() {
        for ok in ["a", "relay", "Xq3k-_09", &"z".repeat(MAX_ID_LEN)] {
            assert!(is_valid_id(ok, MAX_ID_LEN), "{ok}");
        }
        for bad in ["", "a b", "a/b", "é", "a.b", &"z".repeat(MAX_ID_LEN + 1)] {
            assert!(!is_valid_id(bad, MAX_ID_LEN), "{bad}");
        }
    }

    #[test]
    fn every_example_in_the_protocol_doc_decodes() {
        let doc = include_str!("../../docs/PROTOCOL.md");
        let mut in_json = false;
        let mut checked = Vec::new();
        // Section 9 is between peers, not signaling (src/channel.rs checks it).
        let signaling = doc.split("\n## 9.").next().unwrap_or(doc);
        for line in signaling.lines() {
            match line.trim() {
                "```json" => in_json = true,
                "```" => in_json = false,
                l if in_json && !l.is_empty() => match decode(l, MAX_MESSAGE_BYTES) {
                    Ok(Decoded::Message(e)) => checked.push(e.body.type_name()),
                    other => panic!("{l}: {other:?}"),
                },
                _ => {}
            }
        }
        for t in KNOWN_TYPES {
            assert!(checked.contains(t), "no example of {t:?} in PROTOCOL.md");
        }
    }
}
