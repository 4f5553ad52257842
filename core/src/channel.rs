//! What peers say to each other directly, over `RTCDataChannel`s, once
//! their connection is up: the pure part (message types, limits, parsing).
//!
//! Two kinds of channel:
//! - **control**: one per connection, created by both sides as a
//!   *negotiated* channel with id [`CONTROL_ID`] (so neither waits for the
//!   other's `datachannel` event); it carries JSON text: our media state
//!   ([`Message::Media`]) and chat ([`Message::Chat`]);
//! - **file**: one per file transfer, opened by the sender with the label
//!   `file:<transfer id>`; JSON text frames ([`Message::FileOffer`] first,
//!   [`Message::FileEnd`] last, [`Message::FileReceived`] back from the
//!   receiver, [`Message::FileCancel`] from either side) around binary
//!   frames that are the file's bytes in order (see [`crate::transfer`]).
//!
//! Every message is one JSON object with a `"type"`; docs/PROTOCOL.md
//! ("Between peers") lists them. Anything unknown or malformed is reported
//! and dropped, never acted on.

use serde_json::{json, Map, Value};

/// The control channel's label.
pub const CONTROL_LABEL: &str = "peercall";
/// The control channel's SCTP stream id (both sides create it negotiated).
pub const CONTROL_ID: u16 = 0;
/// A file channel's label starts with this, then the transfer id.
pub const FILE_LABEL_PREFIX: &str = "file:";
/// The largest text message accepted on any channel.
pub const MAX_TEXT_BYTES: usize = 16 * 1024;
/// The longest chat message, in characters.
pub const MAX_CHAT_CHARS: usize = 4_000;
/// The longest file name kept, in characters.
pub const MAX_FILE_NAME_CHARS: usize = 255;

/// One message between peers. Read and written by hand through
/// `serde_json::Value` rather than with serde's derive (an internally
/// tagged enum costs the wasm about as much as all the rest of chat).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// What we send (on connect and on every change), so the other side
    /// can show a muted icon or a placeholder instead of a frozen frame.
    Media {
        /// The microphone is on.
        audio: bool,
        /// Video is on (camera or screen).
        video: bool,
        /// The video is our screen.
        screen: bool,
    },
    /// A chat message.
    Chat {
        /// Unique per sender (random), to tell messages apart.
        id: String,
        /// The text, at most [`MAX_CHAT_CHARS`].
        text: String,
        /// When it was sent, milliseconds since the Unix epoch (sender's clock).
        sent_at: u64,
        /// Sent to the receiver alone, not to everyone in the call.
        private: bool,
    },
    /// First on a file channel: what is coming.
    FileOffer {
        /// The transfer id (also in the label).
        id: String,
        /// The file's name (a name only, no path).
        name: String,
        /// Its size in bytes.
        size: u64,
        /// Its media type, if known.
        mime: String,
    },
    /// Last on a file channel: every byte was sent; this is their SHA-256.
    FileEnd {
        /// Lowercase hex SHA-256 of the whole file.
        sha256: String,
    },
    /// From the receiver: the file arrived and checked out (or not).
    FileReceived {
        /// Size and hash matched.
        ok: bool,
    },
    /// Either side gives up on the transfer.
    FileCancel {
        /// Why, for the other person.
        reason: String,
    },
}

/// Why a text frame was not a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BadMessage {
    /// Longer than [`MAX_TEXT_BYTES`].
    TooLarge(usize),
    /// Not JSON, or not a known message (the parser's words).
    Malformed(String),
    /// A field out of bounds.
    Invalid(&'static str),
}

impl std::fmt::Display for BadMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadMessage::TooLarge(n) => write!(f, "message of {n} bytes is over {MAX_TEXT_BYTES}"),
            BadMessage::Malformed(e) => write!(f, "malformed message: {e}"),
            BadMessage::Invalid(what) => write!(f, "invalid message: {what}"),
        }
    }
}

/// A chat or transfer id: the protocol's id rule, 1-64 of
/// `A-Z a-z 0-9 - _` (it names a file on disk, so nothing else).
pub fn valid_id(id: &str) -> bool {
    peercall_protocol::is_valid_id(id, peercall_protocol::MAX_ID_LEN)
}

/// Reads one text frame.
pub fn parse(text: &str) -> Result<Message, BadMessage> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(BadMessage::TooLarge(text.len()));
    }
    let value: Value =
        serde_json::from_str(text).map_err(|e| BadMessage::Malformed(e.to_string()))?;
    let fields = value
        .as_object()
        .ok_or_else(|| BadMessage::Malformed("not a JSON object".into()))?;
    let kind = fields
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| BadMessage::Malformed("no \"type\"".into()))?;
    let f = Fields { kind, fields };
    let message = match kind {
        "media" => Message::Media {
            audio: f.bool("audio")?,
            video: f.bool("video")?,
            screen: f.opt_bool("screen")?,
        },
        "chat" => Message::Chat {
            id: f.string("id")?,
            text: f.string("text")?,
            sent_at: f.u64("sent_at")?,
            private: f.opt_bool("private")?,
        },
        "file-offer" => Message::FileOffer {
            id: f.string("id")?,
            name: f.string("name")?,
            size: f.u64("size")?,
            mime: f.opt_string("mime")?,
        },
        "file-end" => Message::FileEnd {
            sha256: f.string("sha256")?,
        },
        "file-received" => Message::FileReceived { ok: f.bool("ok")? },
        "file-cancel" => Message::FileCancel {
            reason: f.opt_string("reason")?,
        },
        other => return Err(BadMessage::Malformed(format!("unknown type {other:?}"))),
    };
    match &message {
        Message::Chat { id, text, .. } => {
            if !valid_id(id) {
                return Err(BadMessage::Invalid("chat id"));
            }
            if text.trim().is_empty() || text.chars().count() > MAX_CHAT_CHARS {
                return Err(BadMessage::Invalid("chat text"));
            }
        }
        Message::FileOffer { id, name, .. } => {
            if !valid_id(id) {
                return Err(BadMessage::Invalid("transfer id"));
            }
            if name.is_empty() {
                return Err(BadMessage::Invalid("file name"));
            }
        }
        Message::FileEnd { sha256 }
            if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            return Err(BadMessage::Invalid("sha256"));
        }
        _ => {}
    }
    Ok(message)
}

/// The fields of one message, read with errors that name the field.
struct Fields<'a> {
    kind: &'a str,
    fields: &'a Map<String, Value>,
}

impl Fields<'_> {
    fn wrong(&self, key: &str, what: &str) -> BadMessage {
        BadMessage::Malformed(format!("{}: \"{key}\" must be {what}", self.kind))
    }

    fn string(&self, key: &str) -> Result<String, BadMessage> {
        match self.fields.get(key) {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(self.wrong(key, "a string")),
        }
    }

    fn opt_string(&self, key: &str) -> Result<String, BadMessage> {
        match self.fields.get(key) {
            None | Some(Value::Null) => Ok(String::new()),
            _ => self.string(key),
        }
    }

    fn bool(&self, key: &str) -> Result<bool, BadMessage> {
        self.fields
            .get(key)
            .and_then(Value::as_bool)
            .ok_or_else(|| self.wrong(key, "true or false"))
    }

    fn opt_bool(&self, key: &str) -> Result<bool, BadMessage> {
        match self.fields.get(key) {
            None | Some(Value::Null) => Ok(false),
            _ => self.bool(key),
        }
    }

    fn u64(&self, key: &str) -> Result<u64, BadMessage> {
        self.fields
            .get(key)
            .and_then(Value::as_u64)
            .ok_or_else(|| self.wrong(key, "a whole number from 0"))
    }
}

/// Writes one text frame.
pub fn encode(message: &Message) -> String {
    let value = match message {
        Message::Media {
            audio,
            video,
            screen,
        } => json!({"type": "media", "audio": audio, "video": video, "screen": screen}),
        Message::Chat {
            id,
            text,
            sent_at,
            private,
        } => {
            let mut v = json!({"type": "chat", "id": id, "text": text, "sent_at": sent_at});
            if *private {
                v["private"] = json!(true);
            }
            v
        }
        Message::FileOffer {
            id,
            name,
            size,
            mime,
        } => json!({"type": "file-offer", "id": id, "name": name, "size": size, "mime": mime}),
        Message::FileEnd { sha256 } => json!({"type": "file-end", "sha256": sha256}),
        Message::FileReceived { ok } => json!({"type": "file-received", "ok": ok}),
        Message::FileCancel { reason } => json!({"type": "file-cancel", "reason": reason}),
    };
    value.to_string()
}

/// A file name safe to show and to save as: the last path component, no
/// control characters, at most [`MAX_FILE_NAME_CHARS`], never empty.
pub fn safe_file_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let clean: String = last
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_FILE_NAME_CHARS)
        .collect();
    let clean = clean.trim().trim_start_matches('.').to_owned();
    if clean.is_empty() {
        "file".to_owned()
    } else {
        clean
    }
}

/// The transfer id in a file channel's label, if it is one.
pub fn file_label_id(label: &str) -> Option<&str> {
    label
        .strip_prefix(FILE_LABEL_PREFIX)
        .filter(|id| valid_id(id))
}

/// A chat message ready to send, or why not: trimmed, not empty, not too long.
pub fn chat_text(text: &str) -> Result<String, &'static str> {
    let text = text.trim();
    if text.is_empty() {
        Err("empty")
    } else if text.chars().count() > MAX_CHAT_CHARS {
        Err("longer than 4000 characters")
    } else {
        Ok(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_round_trips() {
        let all = [
            Message::Media {
                audio: false,
                video: true,
                screen: true,
            },
            Message::Chat {
                id: "a1".into(),
                text: "hello \"there\"\n".into(),
                sent_at: 1_700_000_000_000,
                private: false,
            },
            Message::Chat {
                id: "a2".into(),
                text: "just you".into(),
                sent_at: 1,
                private: true,
            },
            Message::FileOffer {
                id: "t1".into(),
                name: "report.pdf".into(),
                size: 1 << 30,
                mime: "application/pdf".into(),
            },
            Message::FileEnd {
                sha256: "ab".repeat(32),
            },
            Message::FileReceived { ok: true },
            Message::FileCancel {
                reason: "cancelled".into(),
            },
        ];
        for m in all {
            assert_eq!(parse(&encode(&m)), Ok(m));
        }
    }

    #[test]
    fn wire_format_is_as_documented() {
        let encoded: Value = serde_json::from_str(&encode(&Message::Media {
            audio: true,
            video: false,
            screen: false,
        }))
        .unwrap();
        assert_eq!(
            encoded,
            json!({"type": "media", "audio": true, "video": false, "screen": false})
        );
        assert_eq!(
            parse(r#"{"type":"file-offer","id":"x","name":"a.txt","size":3}"#),
            Ok(Message::FileOffer {
                id: "x".into(),
                name: "a.txt".into(),
                size: 3,
                mime: String::new()
            })
        );
        assert_eq!(
            parse(r#"{"type":"media","audio":true,"video":true}"#),
            Ok(Message::Media {
                audio: true,
                video: true,
                screen: false
            })
        );
    }

    #[test]
    fn bad_input_is_refused_with_a_reason() {
        assert!(matches!(parse("not json"), Err(BadMessage::Malformed(_))));
        assert_eq!(
            parse(r#"{"type":"dance"}"#),
            Err(BadMessage::Malformed("unknown type \"dance\"".into()))
        );
        assert!(matches!(parse("[1]"), Err(BadMessage::Malformed(_))));
        assert!(matches!(
            parse(r#"{"audio":true}"#),
            Err(BadMessage::Malformed(_))
        ));
        assert!(matches!(
            parse(r#"{"type":"chat","id":"a"}"#),
            Err(BadMessage::Malformed(_))
        ));
        assert_eq!(
            parse(r#"{"type":"media","audio":"yes","video":true}"#),
            Err(BadMessage::Malformed(
                "media: \"audio\" must be true or false".into()
            ))
        );
        assert_eq!(
            parse(&format!(
                r#"{{"type":"chat","id":"a","text":"{}","sent_at":1}}"#,
                "x".repeat(MAX_TEXT_BYTES)
            )),
            Err(BadMessage::TooLarge(MAX_TEXT_BYTES + 46))
        );
        assert_eq!(
            parse(r#"{"type":"chat","id":"a","text":"   ","sent_at":1}"#),
            Err(BadMessage::Invalid("chat text"))
        );
        assert_eq!(
            parse(r#"{"type":"chat","id":"","text":"hi","sent_at":1}"#),
            Err(BadMessage::Invalid("chat id"))
        );
        assert_eq!(
            parse(r#"{"type":"file-end","sha256":"zz"}"#),
            Err(BadMessage::Invalid("sha256"))
        );
        assert_eq!(
            parse(r#"{"type":"file-offer","id":"t","name":"","size":1}"#),
            Err(BadMessage::Invalid("file name"))
        );
        assert!(matches!(
            parse(r#"{"type":"file-offer","id":"t","name":"a","size":-1}"#),
            Err(BadMessage::Malformed(_))
        ));
        assert!(BadMessage::TooLarge(1).to_string().contains("16384"));
    }

    #[test]
    fn file_names_lose_paths_and_control_characters() {
        assert_eq!(safe_file_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_file_name("C:\\Users\\a\\b.txt"), "b.txt");
        assert_eq!(safe_file_name("a\u{0}b\nc.txt"), "abc.txt");
        assert_eq!(safe_file_name(".bashrc"), "bashrc");
        assert_eq!(safe_file_name(""), "file");
        assert_eq!(safe_file_name("dir/"), "file");
        assert_eq!(safe_file_name(&"é".repeat(300)).chars().count(), 255);
    }

    #[test]
    fn every_example_in_the_protocol_doc_parses() {
        let doc = include_str!("../../docs/PROTOCOL.md");
        let section = doc.split("\n## 9.").nth(1).expect("section 9");
        let mut in_json = false;
        let mut seen = Vec::new();
        for line in section.lines() {
            match line.trim() {
                "```json" => in_json = true,
                "```" => in_json = false,
                l if in_json && !l.is_empty() => match parse(l) {
                    Ok(m) => seen.push(std::mem::discriminant(&m)),
                    Err(e) => panic!("{l}: {e}"),
                },
                _ => {}
            }
        }
        let all = [
            Message::Media {
                audio: true,
                video: true,
                screen: false,
            },
            Message::Chat {
                id: String::new(),
                text: String::new(),
                sent_at: 0,
                private: false,
            },
            Message::FileOffer {
                id: String::new(),
                name: String::new(),
                size: 0,
                mime: String::new(),
            },
            Message::FileEnd {
                sha256: String::new(),
            },
            Message::FileReceived { ok: true },
            Message::FileCancel {
                reason: String::new(),
            },
        ];
        for m in &all {
            assert!(
                seen.contains(&std::mem::discriminant(m)),
                "no example of {m:?} in PROTOCOL.md section 9"
            );
        }
    }

    #[test]
    fn labels_and_chat_text() {
        assert_eq!(file_label_id("file:abc"), Some("abc"));
        assert_eq!(file_label_id("file:"), None);
        assert_eq!(file_label_id("file:../x"), None);
        assert_eq!(file_label_id(&format!("file:{}", "a".repeat(65))), None);
        assert!(valid_id("a-Z_9"));
        assert!(!valid_id("a b"));
        assert_eq!(file_label_id("peercall"), None);
        assert_eq!(chat_text("  hi  "), Ok("hi".into()));
        assert_eq!(chat_text(" \n "), Err("empty"));
        assert!(chat_text(&"x".repeat(MAX_CHAT_CHARS + 1)).is_err());
        assert!(chat_text(&"x".repeat(MAX_CHAT_CHARS)).is_ok());
    }
}
