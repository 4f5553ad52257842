//! What the call screen shows, as a pure reducer: the relay's status, the
//! people in the room and how our connection to each is doing, the last
//! thing worth telling the person, and the news a screen reader announces
//! (joins, leaves, mute and camera changes, chat messages, errors). Media
//! handles stay out (they live in the component), so this is `PartialEq`
//! and tested natively.

use std::collections::BTreeMap;

use peercall_protocol::ErrorCode;

use crate::room::Gone;

/// The connection to one peer, as the person sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerStatus {
    /// Negotiating, ICE checking.
    Connecting,
    /// Media flows.
    Connected,
    /// The path was lost; ICE is trying to get it back.
    Reconnecting,
    /// ICE gave up.
    Failed,
}

impl PeerStatus {
    /// A word for the UI.
    pub fn label(self) -> &'static str {
        match self {
            PeerStatus::Connecting => "connecting",
            PeerStatus::Connected => "connected",
            PeerStatus::Reconnecting => "reconnecting",
            PeerStatus::Failed => "failed",
        }
    }
}

/// One other person in the room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerView {
    /// Their name, or a stand-in made from their id.
    pub name: String,
    /// Our connection to them.
    pub status: PeerStatus,
    /// What they said they send (their `media` message).
    pub media: RemoteMedia,
}

/// What another person sends, as they told us over the data channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteMedia {
    /// Their microphone is on.
    pub audio: bool,
    /// Their video is on.
    pub video: bool,
    /// Their video is a shared screen.
    pub screen: bool,
}

impl Default for RemoteMedia {
    /// Until they say otherwise: both on, as they are when a call starts.
    fn default() -> Self {
        Self {
            audio: true,
            video: true,
            screen: false,
        }
    }
}

/// One chat message, ours or someone else's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatLine {
    /// The message id (random, per sender).
    pub id: String,
    /// Who wrote it: a peer id, or `None` for us.
    pub from: Option<String>,
    /// Their name when it arrived.
    pub name: String,
    /// The text.
    pub text: String,
    /// When it was sent (ms since the epoch, the sender's clock).
    pub sent_at: u64,
    /// A private message: the name of the other person (whom we wrote
    /// to, or who wrote to us alone); `None` for a message to everyone.
    pub private_with: Option<String>,
}

/// The most chat messages kept; older ones scroll away.
pub const CHAT_KEPT: usize = 500;

/// The most news items kept (the live region shows these; a screen reader
/// announces each as it is added).
pub const NEWS_KEPT: usize = 8;

/// Chat text longer than this is cut short when announced (the panel has
/// it all).
pub const NEWS_CHAT_CHARS: usize = 200;

/// One thing to announce to a screen reader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct News {
    /// One more than the item before: a key that never repeats in a call.
    pub seq: u64,
    /// What to say.
    pub text: String,
    /// An error the person should hear at once (an assertive live region);
    /// the rest wait their turn (a polite one).
    pub urgent: bool,
}

/// The signaling connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayStatus {
    /// Not yet connected.
    Connecting,
    /// Connected and announced.
    Connected,
    /// Lost; retrying.
    Lost {
        /// Why.
        reason: String,
        /// When the next try is.
        retry_in_ms: u64,
    },
}

/// The call screen's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallState {
    /// The relay.
    pub relay: RelayStatus,
    /// Everyone else, by peer id.
    pub peers: BTreeMap<String, PeerView>,
    /// The latest news for the person ("Ada left the call").
    pub notice: Option<String>,
    /// A refusal that stops the call (the room is full).
    pub blocked: Option<String>,
    /// The chat, oldest first (kept while the panel is closed).
    pub chat: Vec<ChatLine>,
    /// Messages from others that arrived while the chat was closed.
    pub unread: u32,
    /// The chat panel is open.
    pub chat_open: bool,
    /// File transfers, oldest first.
    pub transfers: Vec<crate::transfer::TransferView>,
    /// Who is speaking (peer id), to highlight their tile.
    pub speaking: Option<String>,
    /// The latest news, oldest first (at most [`NEWS_KEPT`]).
    pub news: Vec<News>,
    /// The relay can call phones.
    pub phone_offered: bool,
    /// The phone call, if there is or was one.
    pub phone: Option<crate::phone::PhoneView>,
    /// Everyone else, in the order they came.
    pub arrived: Vec<String>,
    /// Those who spoke, the last to start speaking last, for who gets one
    /// of the [`MAX_TILES`].
    pub spoke: Vec<String>,
}

/// The most remote videos the call screen shows at once; the others are
/// listed by name (and not received, in a call through the SFU).
pub const MAX_TILES: usize = 9;

impl CallState {
    /// Who has a video tile: everyone, up to [`MAX_TILES`]; past that
    /// those who spoke last (the others in the order they came), shown in
    /// the order they came.
    pub fn on_screen(&self) -> Vec<&str> {
        let mut here: Vec<(usize, &str)> = self
            .arrived
            .iter()
            .filter(|id| self.peers.contains_key(*id))
            .map(String::as_str)
            .enumerate()
            .collect();
        if here.len() > MAX_TILES {
            // Better: spoke later, then came earlier. Kept in arrival order.
            let key = |(i, id): &(usize, &str)| {
                (
                    std::cmp::Reverse(self.spoke.iter().position(|s| s == id)),
                    *i,
                )
            };
            let keys: Vec<_> = here.iter().map(key).collect();
            here = here
                .iter()
                .zip(&keys)
                .filter(|(_, k)| keys.iter().filter(|other| other < k).count() < MAX_TILES)
                .map(|(h, _)| *h)
                .collect();
        }
        here.into_iter().map(|(_, id)| id).collect()
    }

    /// Who is in the call without a tile ([`CallState::on_screen`]), in
    /// the order they came.
    pub fn off_screen(&self) -> Vec<&str> {
        let shown = self.on_screen();
        self.arrived
            .iter()
            .map(String::as_str)
            .filter(|id| self.peers.contains_key(*id) && !shown.contains(id))
            .collect()
    }
}

impl Default for CallState {
    fn default() -> Self {
        Self {
            relay: RelayStatus::Connecting,
            peers: BTreeMap::new(),
            notice: None,
            blocked: None,
            chat: Vec::new(),
            unread: 0,
            chat_open: false,
            transfers: Vec::new(),
            speaking: None,
            news: Vec::new(),
            phone_offered: false,
            phone: None,
            arrived: Vec::new(),
            spoke: Vec::new(),
        }
    }
}

/// What happens to the call screen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallAction {
    /// The relay is up.
    RelayConnected,
    /// The relay is down.
    RelayLost {
        /// Why.
        reason: String,
        /// Next try.
        retry_in_ms: u64,
    },
    /// We found the room full on joining (over a relay that keeps no
    /// limit) and left.
    RoomFull {
        /// How many people we found, us included.
        people: usize,
        /// The most this call may have (`max_people`).
        capacity: usize,
    },
    /// Who is speaking now.
    Speaking(Option<String>),
    /// The relay refused something.
    Refused {
        /// Its code.
        code: ErrorCode,
        /// Its words.
        message: String,
    },
    /// Someone is here.
    Joined {
        /// Peer id.
        id: String,
        /// Their name.
        name: Option<String>,
    },
    /// Someone left.
    Left {
        /// Peer id.
        id: String,
        /// Why.
        why: Gone,
    },
    /// Our connection to someone changed.
    Status {
        /// Peer id.
        id: String,
        /// Now.
        status: PeerStatus,
    },
    /// Our connection to someone failed for good; `message` says why.
    IceFailed {
        /// Peer id.
        id: String,
        /// Why.
        why: crate::ice::IceFailure,
    },
    /// Something the person should know about the whole call.
    Warning(String),
    /// Someone told us what they send.
    RemoteMedia {
        /// Peer id.
        id: String,
        /// What.
        media: RemoteMedia,
    },
    /// A chat message: ours (`from: None`) or someone's.
    Chat {
        /// Who wrote it (`None`: us).
        from: Option<String>,
        /// Message id.
        id: String,
        /// The text.
        text: String,
        /// When it was sent.
        sent_at: u64,
        /// A private message: the other person's peer id (whom we wrote
        /// to, or who wrote to us alone).
        private_with: Option<String>,
    },
    /// The chat panel opened (everything is read) or closed.
    ChatOpen(bool),
    /// A file transfer started or moved on.
    Transfer(crate::transfer::TransferView),
    /// Negotiation with someone failed.
    PeerError {
        /// Peer id.
        id: String,
        /// What failed.
        message: String,
    },
    /// Something to announce that only the screen knows (what we send:
    /// [`crate::controls::Sending::news`]).
    Announce(String),
    /// Whether the relay calls phones (its `welcome`).
    PhoneOffered(bool),
    /// The phone call changed (`None`: its screen was closed).
    Phone(Option<crate::phone::PhoneView>),
}

/// Whether the relay's refusal `code` ends the call: the join itself was
/// refused (the room is full, the relay is at its limit of rooms), so
/// there is nothing to retry.
pub fn ends_the_call(code: &ErrorCode) -> bool {
    matches!(code, ErrorCode::RoomFull | ErrorCode::TooManyRooms)
}

/// A name for someone who gave none: "Guest" and the start of their id.
pub fn display_name(id: &str, name: Option<&str>) -> String {
    match name.map(str::trim).filter(|n| !n.is_empty()) {
        Some(name) => name.chars().take(40).collect(),
        None => format!("Guest {}", id.get(..4).unwrap_or(id)),
    }
}

impl CallState {
    /// What `peer` is called here: their name, or a stand-in from their id
    /// once they are gone.
    fn name_of(&self, peer: &str) -> String {
        self.peers
            .get(peer)
            .map_or_else(|| display_name(peer, None), |p| p.name.clone())
    }

    /// Adds `text` to the news.
    fn tell(&mut self, text: String, urgent: bool) {
        let seq = self.news.last().map_or(0, |n| n.seq + 1);
        self.news.push(News { seq, text, urgent });
        if self.news.len() > NEWS_KEPT {
            self.news.remove(0);
        }
    }

    /// Shows `text` as the notice and announces it.
    fn notify(&mut self, text: String, urgent: bool) {
        self.tell(text.clone(), urgent);
        self.notice = Some(text);
    }

    /// The state after `action`.
    pub fn apply(mut self, action: CallAction) -> Self {
        match action {
            CallAction::RelayConnected => {
                if matches!(self.relay, RelayStatus::Lost { .. }) {
                    self.tell("Connected to the call server again.".into(), false);
                }
                self.relay = RelayStatus::Connected;
            }
            CallAction::RelayLost {
                reason,
                retry_in_ms,
            } => {
                // Said once, not on every retry (the banner counts down).
                if !matches!(self.relay, RelayStatus::Lost { .. }) {
                    self.tell(
                        format!(
                            "Can't reach the call server ({reason}). The call goes on; \
                             trying again."
                        ),
                        true,
                    );
                }
                self.relay = RelayStatus::Lost {
                    reason,
                    retry_in_ms,
                }
            }
            CallAction::RoomFull { people, capacity } => {
                self.peers.clear();
                self.blocked = Some(format!(
                    "This call is full: {} people are in it already, the most this call \
                     can have is {capacity}. Try again later, or start a new call.",
                    people.saturating_sub(1),
                ))
            }
            CallAction::Speaking(id) => {
                if let Some(id) = &id {
                    self.spoke.retain(|s| s != id);
                    self.spoke.push(id.clone());
                }
                self.speaking = id;
            }
            CallAction::Refused { code, message } => match code {
                ErrorCode::RoomFull => {
                    self.peers.clear();
                    self.blocked = Some(format!(
                        "This call is full ({message}). Try again later, or start a new call."
                    ))
                }
                ErrorCode::TooManyRooms => {
                    self.blocked = Some(format!(
                        "The server cannot open another call right now ({message}). Try again \
                         in a minute."
                    ))
                }
                // After a reconnect, while the relay still holds the old
                // socket: the room joins again by itself.
                ErrorCode::IdTaken => {}
                _ => self.notify(format!("The server refused a message: {message}"), true),
            },
            CallAction::Joined { id, name } => {
                let name = display_name(&id, name.as_deref());
                let known = self.peers.contains_key(&id);
                let view = self.peers.entry(id.clone()).or_insert(PeerView {
                    name: name.clone(),
                    status: PeerStatus::Connecting,
                    media: RemoteMedia::default(),
                });
                view.name = name.clone();
                if !known {
                    self.arrived.retain(|a| *a != id);
                    self.arrived.push(id.clone());
                    self.notify(format!("{name} joined the call."), false);
                }
            }
            CallAction::Left { id, why } => {
                self.arrived.retain(|a| *a != id);
                self.spoke.retain(|s| *s != id);
                if let Some(peer) = self.peers.remove(&id) {
                    let text = match why {
                        Gone::HungUp => format!("{} left the call.", peer.name),
                        Gone::Disconnected => format!("{} lost their connection.", peer.name),
                        Gone::TimedOut => format!("{} stopped responding.", peer.name),
                        Gone::RoomFull => {
                            format!("{} tried to join, but the call is full.", peer.name)
                        }
                    };
                    self.notify(text, false);
                    if self.speaking.as_deref() == Some(id.as_str()) {
                        self.speaking = None;
                    }
                }
            }
            CallAction::Status { id, status } => {
                if let Some(peer) = self.peers.get_mut(&id) {
                    let (was, name) = (peer.status, peer.name.clone());
                    peer.status = status;
                    match (was, status) {
                        (PeerStatus::Failed, PeerStatus::Failed) => {}
                        (_, PeerStatus::Failed) => self.notify(
                            format!(
                                "Could not connect to {name}. Your networks may block direct \
                                 connections; a TURN server can relay the call (see the README)."
                            ),
                            true,
                        ),
                        (PeerStatus::Connected, PeerStatus::Reconnecting) => self.tell(
                            format!("The connection to {name} was lost; reconnecting."),
                            false,
                        ),
                        (PeerStatus::Reconnecting | PeerStatus::Failed, PeerStatus::Connected) => {
                            self.tell(format!("Connected to {name} again."), false)
                        }
                        _ => {}
                    }
                }
            }
            CallAction::IceFailed { id, why } => {
                if let Some(peer) = self.peers.get_mut(&id) {
                    peer.status = PeerStatus::Failed;
                    let text = why.message(&peer.name);
                    self.notify(text, true);
                }
            }
            CallAction::Warning(message) => self.notify(message, false),
            CallAction::PhoneOffered(offered) => self.phone_offered = offered,
            CallAction::Phone(view) => {
                if let Some(view) = &view {
                    let was = self.phone.as_ref().map(|p| p.stage);
                    if was != Some(view.stage) {
                        let urgent =
                            view.is_over() && view.ended.as_deref() != Some("You hung up.");
                        self.tell(format!("Phone call: {}", view.status()), urgent);
                    }
                }
                self.phone = view;
            }
            CallAction::Announce(text) => self.tell(text, false),
            CallAction::RemoteMedia { id, media } => {
                if let Some(peer) = self.peers.get_mut(&id) {
                    let (was, name) = (peer.media, peer.name.clone());
                    peer.media = media;
                    for text in media_news(&name, was, media) {
                        self.tell(text, false);
                    }
                }
            }
            CallAction::Chat {
                from,
                id,
                text,
                sent_at,
                private_with,
            } => {
                let name = match &from {
                    None => "You".to_owned(),
                    Some(peer) => self.name_of(peer),
                };
                let private_with = private_with.as_deref().map(|p| self.name_of(p));
                let duplicate = self
                    .chat
                    .iter()
                    .any(|line| line.from == from && line.id == id);
                if !duplicate {
                    if from.is_some() && !self.chat_open {
                        self.unread += 1;
                    }
                    if from.is_some() {
                        let mut said: String = text.chars().take(NEWS_CHAT_CHARS).collect();
                        if said.len() < text.len() {
                            said.push('…');
                        }
                        let to = if private_with.is_some() {
                            ", to you only"
                        } else {
                            ""
                        };
                        self.tell(format!("{name}{to}: {said}"), false);
                    }
                    self.chat.push(ChatLine {
                        id,
                        from,
                        name,
                        text,
                        sent_at,
                        private_with,
                    });
                    if self.chat.len() > CHAT_KEPT {
                        self.chat.remove(0);
                    }
                }
            }
            CallAction::ChatOpen(open) => {
                self.chat_open = open;
                if open {
                    self.unread = 0;
                }
            }
            CallAction::Transfer(view) => {
                match self
                    .transfers
                    .iter_mut()
                    .find(|t| t.id == view.id && t.peer == view.peer)
                {
                    Some(t) => *t = view,
                    None => {
                        // A file coming in while the chat is closed is news.
                        if !view.outgoing && !self.chat_open {
                            self.unread += 1;
                        }
                        if !view.outgoing {
                            let from = self.name_of(&view.peer);
                            self.tell(
                                format!("{from} is sending you a file: {}.", view.name),
                                false,
                            );
                        }
                        self.transfers.push(view)
                    }
                }
            }
            CallAction::PeerError { id, message } => {
                let name = self.name_of(&id);
                self.notify(format!("Problem with {name}: {message}"), true);
            }
        }
        self
    }

    /// Whether anyone else is here.
    pub fn alone(&self) -> bool {
        self.peers.is_empty()
    }
}

/// What changed in what `name` sends, in words.
fn media_news(name: &str, was: RemoteMedia, now: RemoteMedia) -> Vec<String> {
    let mut out = Vec::new();
    if was.audio != now.audio {
        out.push(if now.audio {
            format!("{name} unmuted their microphone.")
        } else {
            format!("{name} muted their microphone.")
        });
    }
    if was.screen != now.screen {
        out.push(if now.screen {
            format!("{name} is sharing their screen.")
        } else {
            format!("{name} stopped sharing their screen.")
        });
    } else if was.video != now.video {
        out.push(if now.video {
            format!("{name} turned their camera on.")
        } else {
            format!("{name} turned their camera off.")
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(id: &str, name: Option<&str>) -> CallAction {
        CallAction::Joined {
            id: id.into(),
            name: name.map(Into::into),
        }
    }

    #[test]
    fn past_nine_people_the_last_speakers_have_the_tiles() {
        let mut s = CallState::default();
        let ids: Vec<String> = (0..12).map(|i| format!("p{i:02}")).collect();
        for id in &ids {
            s = s.apply(joined(id, None));
        }
        assert_eq!(
            s.on_screen(),
            ids[..9].iter().map(String::as_str).collect::<Vec<_>>()
        );
        assert_eq!(s.off_screen(), ["p09", "p10", "p11"]);
        // p11 speaks: it takes a tile from the earliest arrival who has
        // not spoken, and the tiles stay in arrival order.
        s = s.apply(CallAction::Speaking(Some("p11".into())));
        assert_eq!(s.on_screen().len(), MAX_TILES);
        assert!(s.on_screen().contains(&"p11") && !s.on_screen().contains(&"p08"));
        assert_eq!(s.on_screen().last(), Some(&"p11"));
        assert_eq!(s.off_screen(), ["p08", "p09", "p10"]);
        s = s.apply(CallAction::Speaking(Some("p10".into())));
        assert_eq!(s.off_screen(), ["p07", "p08", "p09"]);
        // Someone on screen leaves: the next comes on.
        s = s.apply(CallAction::Left {
            id: "p00".into(),
            why: Gone::HungUp,
        });
        assert_eq!(s.off_screen(), ["p08", "p09"]);
        // Up to nine, everyone.
        let mut small = CallState::default();
        for id in &ids[..3] {
            small = small.apply(joined(id, None));
        }
        assert_eq!(small.on_screen(), ["p00", "p01", "p02"]);
        assert!(small.off_screen().is_empty());
    }

    #[test]
    fn a_peer_joins_connects_and_leaves() {
        let s = CallState::default()
            .apply(CallAction::RelayConnected)
            .apply(joined("9f86d081", Some("Ada")));
        assert_eq!(s.relay, RelayStatus::Connected);
        assert_eq!(s.peers["9f86d081"].status, PeerStatus::Connecting);
        assert_eq!(s.notice.as_deref(), Some("Ada joined the call."));
        let s = s.apply(CallAction::Status {
            id: "9f86d081".into(),
            status: PeerStatus::Connected,
        });
        assert_eq!(s.peers["9f86d081"].status.label(), "connected");
        let s = s.apply(CallAction::Left {
            id: "9f86d081".into(),
            why: Gone::HungUp,
        });
        assert!(s.alone());
        assert_eq!(s.notice.as_deref(), Some("Ada left the call."));
    }

    fn news(s: &CallState) -> Vec<(&str, bool)> {
        s.news.iter().map(|n| (n.text.as_str(), n.urgent)).collect()
    }

    #[test]
    fn joins_leaves_and_media_changes_are_announced() {
        let s = CallState::default()
            .apply(CallAction::RelayConnected)
            .apply(joined("a", Some("Ada")))
            .apply(CallAction::RemoteMedia {
                id: "a".into(),
                media: RemoteMedia {
                    audio: false,
                    ..RemoteMedia::default()
                },
            })
            .apply(CallAction::RemoteMedia {
                id: "a".into(),
                media: RemoteMedia {
                    audio: false,
                    video: false,
                    screen: false,
                },
            })
            .apply(CallAction::RemoteMedia {
                id: "a".into(),
                media: RemoteMedia {
                    audio: true,
                    video: true,
                    screen: true,
                },
            })
            .apply(CallAction::Left {
                id: "a".into(),
                why: Gone::Disconnected,
            });
        assert_eq!(
            news(&s),
            [
                ("Ada joined the call.", false),
                ("Ada muted their microphone.", false),
                ("Ada turned their camera off.", false),
                ("Ada unmuted their microphone.", false),
                ("Ada is sharing their screen.", false),
                ("Ada lost their connection.", false),
            ]
        );
        // Each item has its own key, in order.
        let seqs: Vec<u64> = s.news.iter().map(|n| n.seq).collect();
        assert_eq!(seqs, [0, 1, 2, 3, 4, 5]);
        // The same media again is no news.
        let before = s.news.len();
        let s = s.apply(joined("b", None)).apply(CallAction::RemoteMedia {
            id: "b".into(),
            media: RemoteMedia::default(),
        });
        assert_eq!(s.news.len(), before + 1, "{:?}", s.news);
    }

    #[test]
    fn chat_from_others_is_announced_cut_short_and_ours_is_not() {
        let chat = |from: Option<&str>, id: &str, text: &str, private: bool| CallAction::Chat {
            from: from.map(Into::into),
            id: id.into(),
            text: text.into(),
            sent_at: 0,
            private_with: private.then(|| "a".to_owned()),
        };
        let s = CallState::default()
            .apply(joined("a", Some("Ada")))
            .apply(chat(None, "1", "mine", false))
            .apply(chat(Some("a"), "2", "hello", false))
            .apply(chat(Some("a"), "3", "psst", true))
            .apply(chat(Some("a"), "4", &"x".repeat(500), false));
        let said = news(&s);
        assert_eq!(said[1], ("Ada: hello", false));
        assert_eq!(said[2], ("Ada, to you only: psst", false));
        assert_eq!(said[3].0, format!("Ada: {}…", "x".repeat(NEWS_CHAT_CHARS)));
        assert_eq!(said.len(), 4, "our own message is not read back: {said:?}");
    }

    #[test]
    fn errors_are_urgent_and_a_lost_relay_is_said_once() {
        let lost = |ms| CallAction::RelayLost {
            reason: "closed".into(),
            retry_in_ms: ms,
        };
        let s = CallState::default()
            .apply(CallAction::RelayConnected)
            .apply(lost(1000))
            .apply(lost(2000))
            .apply(lost(4000))
            .apply(CallAction::RelayConnected)
            .apply(joined("a", Some("Ada")))
            .apply(CallAction::Status {
                id: "a".into(),
                status: PeerStatus::Connected,
            })
            .apply(CallAction::Status {
                id: "a".into(),
                status: PeerStatus::Reconnecting,
            })
            .apply(CallAction::Status {
                id: "a".into(),
                status: PeerStatus::Failed,
            });
        let said = news(&s);
        assert_eq!(
            said[0],
            (
                "Can't reach the call server (closed). The call goes on; trying again.",
                true
            )
        );
        assert_eq!(said[1], ("Connected to the call server again.", false));
        assert_eq!(
            said[3],
            ("The connection to Ada was lost; reconnecting.", false)
        );
        assert!(
            said[4].0.starts_with("Could not connect to Ada."),
            "{said:?}"
        );
        assert!(said[4].1, "a failure is urgent");
        assert_eq!(said.len(), 5, "{said:?}");
    }

    #[test]
    fn only_the_latest_news_is_kept() {
        let mut s = CallState::default();
        for i in 0..20 {
            s = s.apply(CallAction::Announce(format!("item {i}")));
        }
        assert_eq!(s.news.len(), NEWS_KEPT);
        assert_eq!(s.news.last().unwrap().text, "item 19");
        assert_eq!(s.news.last().unwrap().seq, 19);
    }

    #[test]
    fn names_fall_back_to_the_id_and_are_kept_short() {
        assert_eq!(display_name("9f86d081", None), "Guest 9f86");
        assert_eq!(display_name("9f86d081", Some("  ")), "Guest 9f86");
        assert_eq!(display_name("ab", None), "Guest ab");
        assert_eq!(display_name("x", Some(&"A".repeat(100))).len(), 40);
    }

    #[test]
    fn a_rejoin_is_not_news_but_a_rename_is_kept() {
        let s = CallState::default()
            .apply(joined("b", Some("Bob")))
            .apply(CallAction::RelayConnected);
        let s = CallState { notice: None, ..s }.apply(joined("b", Some("Robert")));
        assert_eq!(s.notice, None);
        assert_eq!(s.peers["b"].name, "Robert");
    }

    #[test]
    fn failure_hints_at_turn_and_a_full_room_blocks() {
        let s = CallState::default()
            .apply(joined("b", None))
            .apply(CallAction::Status {
                id: "b".into(),
                status: PeerStatus::Failed,
            });
        assert!(s.notice.unwrap().contains("TURN"));
        let s = CallState::default()
            .apply(joined("b", Some("Bo")))
            .apply(CallAction::IceFailed {
                id: "b".into(),
                why: crate::ice::IceFailure::CredentialsRejected {
                    url: "turn:t:3478".into(),
                },
            });
        assert_eq!(s.peers["b"].status, PeerStatus::Failed);
        let notice = s.notice.unwrap();
        assert!(notice.starts_with("Could not connect to Bo."), "{notice}");
        assert!(notice.contains("rejected the credentials"), "{notice}");
        let s = CallState::default().apply(CallAction::Warning("Relay-only".into()));
        assert_eq!(s.notice.as_deref(), Some("Relay-only"));
        let s = CallState::default().apply(CallAction::Refused {
            code: ErrorCode::RoomFull,
            message: "the room is full (8 people)".into(),
        });
        assert!(s.blocked.unwrap().contains("full"));
        let s = CallState::default().apply(CallAction::Refused {
            code: ErrorCode::IdTaken,
            message: "another connection".into(),
        });
        assert_eq!((s.notice, s.blocked), (None, None), "retried silently");
        let s = CallState::default().apply(CallAction::RelayLost {
            reason: "the relay is unreachable".into(),
            retry_in_ms: 500,
        });
        assert!(matches!(
            s.relay,
            RelayStatus::Lost {
                retry_in_ms: 500,
                ..
            }
        ));
    }

    #[test]
    fn why_someone_left_is_told() {
        for (why, words) in [
            (Gone::HungUp, "left the call"),
            (Gone::Disconnected, "lost their connection"),
            (Gone::TimedOut, "stopped responding"),
        ] {
            let s = CallState::default()
                .apply(joined("b", Some("Bo")))
                .apply(CallAction::Left {
                    id: "b".into(),
                    why,
                });
            assert!(s.notice.unwrap().contains(words));
        }
        // Leaving twice, or someone unknown leaving, is no news.
        let s = CallState::default().apply(CallAction::Left {
            id: "z".into(),
            why: Gone::HungUp,
        });
        assert_eq!(s.notice, None);
    }

    fn chat(from: Option<&str>, id: &str, text: &str) -> CallAction {
        CallAction::Chat {
            from: from.map(Into::into),
            id: id.into(),
            text: text.into(),
            sent_at: 1,
            private_with: None,
        }
    }

    #[test]
    fn private_messages_name_the_other_person() {
        let private = |from: Option<&str>, with: &str| CallAction::Chat {
            from: from.map(Into::into),
            id: "p".into(),
            text: "psst".into(),
            sent_at: 1,
            private_with: Some(with.into()),
        };
        let s = CallState::default()
            .apply(joined("b", Some("Bo")))
            .apply(joined("c", Some("Cy")))
            .apply(private(None, "c"))
            .apply(private(Some("b"), "b"));
        assert_eq!(s.chat[0].name, "You");
        assert_eq!(s.chat[0].private_with.as_deref(), Some("Cy"));
        assert_eq!(s.chat[1].name, "Bo");
        assert_eq!(s.chat[1].private_with.as_deref(), Some("Bo"));
        assert_eq!(
            s.apply(chat(Some("b"), "q", "all")).chat[2].private_with,
            None
        );
    }

    #[test]
    fn a_full_room_blocks_the_newcomer_and_is_news_to_those_in_it() {
        let s = CallState::default()
            .apply(joined("b", Some("Bo")))
            .apply(CallAction::RoomFull {
                people: 7,
                capacity: 6,
            });
        let blocked = s.blocked.unwrap();
        assert!(blocked.contains("6 people are in it already"), "{blocked}");
        assert!(
            blocked.contains("the most this call can have is 6"),
            "{blocked}"
        );
        assert!(s.peers.is_empty(), "no tiles behind the full screen");
        // A call opened with `?max_people=2` says its own limit, not six.
        let s = CallState::default().apply(CallAction::RoomFull {
            people: 3,
            capacity: 2,
        });
        let blocked = s.blocked.unwrap();
        assert!(
            blocked.starts_with(
                "This call is full: 2 people are in it already, the most this call can have is 2."
            ),
            "{blocked}"
        );
        let s = CallState::default()
            .apply(joined("g", Some("Gil")))
            .apply(CallAction::Speaking(Some("g".into())));
        assert_eq!(s.speaking.as_deref(), Some("g"));
        let s = s.apply(CallAction::Left {
            id: "g".into(),
            why: Gone::RoomFull,
        });
        assert_eq!(
            s.notice.as_deref(),
            Some("Gil tried to join, but the call is full.")
        );
        assert_eq!(s.speaking, None, "nobody speaks from a tile that went");
    }

    #[test]
    fn chat_is_kept_while_closed_and_counts_unread() {
        let s = CallState::default()
            .apply(joined("b", Some("Bo")))
            .apply(chat(Some("b"), "1", "hi"))
            .apply(chat(None, "2", "hello"))
            .apply(chat(Some("b"), "3", "how are you"))
            // The same message twice (a resend) counts once.
            .apply(chat(Some("b"), "3", "how are you"));
        assert_eq!(s.chat.len(), 3);
        assert_eq!(s.unread, 2, "only others' messages are unread");
        assert_eq!(s.chat[0].name, "Bo");
        assert_eq!(s.chat[1].name, "You");
        let s = s.apply(CallAction::ChatOpen(true));
        assert_eq!(s.unread, 0);
        let s = s.apply(chat(Some("b"), "4", "ok"));
        assert_eq!(s.unread, 0, "read as it arrives while open");
        let s = s
            .apply(CallAction::ChatOpen(false))
            .apply(CallAction::Left {
                id: "b".into(),
                why: Gone::HungUp,
            });
        assert_eq!(s.chat.len(), 4, "kept after the panel closes and Bo leaves");
        // Someone unknown still gets a name.
        let s = s.apply(chat(Some("9f86d081"), "5", "?"));
        assert_eq!(s.chat[4].name, "Guest 9f86");
        let mut s = s;
        for i in 0..CHAT_KEPT {
            s = s.apply(chat(None, &format!("m{i}"), "x"));
        }
        assert_eq!(s.chat.len(), CHAT_KEPT);
        assert_eq!(s.chat[0].id, "m0");
    }

    #[test]
    fn remote_media_and_transfers_update_in_place() {
        let s = CallState::default().apply(joined("b", None));
        assert_eq!(s.peers["b"].media, RemoteMedia::default());
        let muted = RemoteMedia {
            audio: false,
            video: false,
            screen: false,
        };
        let s = s.apply(CallAction::RemoteMedia {
            id: "b".into(),
            media: muted,
        });
        assert_eq!(s.peers["b"].media, muted);
        let view = crate::transfer::TransferView {
            id: "t".into(),
            peer: "b".into(),
            name: "a".into(),
            size: 10,
            outgoing: false,
            done: 1,
            rate: 0,
            status: crate::transfer::TransferStatus::Active,
        };
        let s = s
            .apply(CallAction::Transfer(view.clone()))
            .apply(CallAction::Transfer(crate::transfer::TransferView {
                done: 10,
                ..view.clone()
            }))
            .apply(CallAction::Transfer(crate::transfer::TransferView {
                peer: "c".into(),
                ..view
            }));
        assert_eq!(s.transfers.len(), 2);
        assert_eq!(s.transfers[0].done, 10);
        assert_eq!(s.unread, 2, "each incoming file once, not each update");
    }
}
