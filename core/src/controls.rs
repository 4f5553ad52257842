//! The in-call controls, the pure part: what we send (microphone, camera,
//! screen) and what goes on each sender, and the keyboard shortcuts.

use crate::channel::Message;

/// What the person chose to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sending {
    /// The microphone is on (not muted).
    pub mic: bool,
    /// The camera is on.
    pub camera: bool,
    /// A screen is shared (it takes the camera's place while it lasts).
    pub screen: bool,
}

impl Default for Sending {
    fn default() -> Self {
        Self {
            mic: true,
            camera: true,
            screen: false,
        }
    }
}

/// What goes on the video sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VideoSource {
    /// The camera's track.
    Camera,
    /// The shared screen's track.
    Screen,
    /// Nothing (`replaceTrack(null)`: no frames at all, not black ones).
    Off,
}

impl Sending {
    /// The video sender's track.
    pub fn video(&self) -> VideoSource {
        if self.screen {
            VideoSource::Screen
        } else if self.camera {
            VideoSource::Camera
        } else {
            VideoSource::Off
        }
    }

    /// What changed from `before`, in words, for a screen reader (the
    /// buttons' `aria-pressed` says it only where the focus is; a
    /// shortcut changes it from anywhere).
    pub fn news(before: Sending, after: Sending) -> Vec<&'static str> {
        let mut out = Vec::new();
        if before.mic != after.mic {
            out.push(if after.mic {
                "Your microphone is on."
            } else {
                "Your microphone is muted."
            });
        }
        if before.camera != after.camera {
            out.push(if after.camera {
                "Your camera is on."
            } else {
                "Your camera is off."
            });
        }
        if before.screen != after.screen {
            out.push(if after.screen {
                "You are sharing your screen."
            } else {
                "You stopped sharing your screen."
            });
        }
        out
    }

    /// What the other side is told.
    pub fn message(&self) -> Message {
        Message::Media {
            audio: self.mic,
            video: self.video() != VideoSource::Off,
            screen: self.screen,
        }
    }
}

/// A keyboard shortcut's action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shortcut {
    /// Mute or unmute.
    Mic,
    /// Camera off or on.
    Camera,
    /// Start or stop sharing the screen.
    Screen,
    /// Open or close the chat.
    Chat,
    /// Leave the call.
    HangUp,
}

impl Shortcut {
    /// The keys, as shown in tooltips, and in the form `aria-keyshortcuts`
    /// takes (what a screen reader announces with the button).
    pub fn keys(self) -> &'static str {
        match self {
            Shortcut::Mic => "M",
            Shortcut::Camera => "V",
            Shortcut::Screen => "S",
            Shortcut::Chat => "C",
            Shortcut::HangUp => "Shift+H",
        }
    }

    /// "Mute (M)": a tooltip.
    pub fn tooltip(self, what: &str) -> String {
        format!("{what} ({})", self.keys())
    }
}

/// A `keydown` as the shortcut handler sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Key<'a> {
    /// `KeyboardEvent.key`.
    pub key: &'a str,
    /// Shift held.
    pub shift: bool,
    /// Ctrl, Alt or Meta held (those are the browser's and the system's).
    pub other_modifier: bool,
    /// Focus is in a text field: the key is typing, not a command.
    pub typing: bool,
    /// Auto-repeat.
    pub repeat: bool,
}

/// The shortcut `key` triggers, if any.
pub fn shortcut(key: Key<'_>) -> Option<Shortcut> {
    if key.typing || key.other_modifier || key.repeat {
        return None;
    }
    match (key.key.to_ascii_lowercase().as_str(), key.shift) {
        ("m", false) => Some(Shortcut::Mic),
        ("v", false) => Some(Shortcut::Camera),
        ("s", false) => Some(Shortcut::Screen),
        ("c", false) => Some(Shortcut::Chat),
        ("h", true) => Some(Shortcut::HangUp),
        _ => None,
    }
}

/// Where Tab (or Shift+Tab, `back`) moves the focus among `len` elements
/// of a panel that keeps it (a focus trap): from the last to the first and
/// back, and in from outside; `None`: the browser's own move stays inside.
pub fn trapped_tab(len: usize, current: Option<usize>, back: bool) -> Option<usize> {
    let last = len.checked_sub(1)?;
    match (current, back) {
        (None, false) => Some(0),
        (None, true) => Some(last),
        (Some(i), false) if i >= last => Some(0),
        (Some(0), true) => Some(last),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_video_sender_follows_the_choices() {
        let mut s = Sending::default();
        assert_eq!(s.video(), VideoSource::Camera);
        s.screen = true;
        assert_eq!(s.video(), VideoSource::Screen);
        s.camera = false;
        // Sharing goes on with the camera off.
        assert_eq!(s.video(), VideoSource::Screen);
        s.screen = false;
        assert_eq!(s.video(), VideoSource::Off);
        s.mic = false;
        assert_eq!(
            s.message(),
            Message::Media {
                audio: false,
                video: false,
                screen: false
            }
        );
    }

    #[test]
    fn shortcuts_fire_only_when_not_typing() {
        let k = |key, shift| Key {
            key,
            shift,
            ..Key::default()
        };
        assert_eq!(shortcut(k("m", false)), Some(Shortcut::Mic));
        assert_eq!(shortcut(k("M", false)), Some(Shortcut::Mic));
        assert_eq!(shortcut(k("v", false)), Some(Shortcut::Camera));
        assert_eq!(shortcut(k("s", false)), Some(Shortcut::Screen));
        assert_eq!(shortcut(k("c", false)), Some(Shortcut::Chat));
        assert_eq!(shortcut(k("H", true)), Some(Shortcut::HangUp));
        // A plain h never hangs up.
        assert_eq!(shortcut(k("h", false)), None);
        assert_eq!(shortcut(k("M", true)), None);
        assert_eq!(
            shortcut(Key {
                typing: true,
                ..k("m", false)
            }),
            None
        );
        assert_eq!(
            shortcut(Key {
                other_modifier: true,
                ..k("c", false)
            }),
            None
        );
        assert_eq!(
            shortcut(Key {
                repeat: true,
                ..k("m", false)
            }),
            None
        );
        assert_eq!(Shortcut::HangUp.tooltip("Hang up"), "Hang up (Shift+H)");
    }

    #[test]
    fn tab_goes_round_inside_a_panel() {
        assert_eq!(trapped_tab(0, None, false), None, "nothing to focus");
        assert_eq!(trapped_tab(3, None, false), Some(0), "in from outside");
        assert_eq!(trapped_tab(3, None, true), Some(2));
        assert_eq!(trapped_tab(3, Some(0), false), None, "the browser moves on");
        assert_eq!(
            trapped_tab(3, Some(2), false),
            Some(0),
            "round from the last"
        );
        assert_eq!(
            trapped_tab(3, Some(0), true),
            Some(2),
            "round from the first"
        );
        assert_eq!(trapped_tab(3, Some(1), true), None);
        assert_eq!(trapped_tab(1, Some(0), false), Some(0));
    }

    #[test]
    fn what_we_send_changing_is_said_in_words() {
        let on = Sending::default();
        assert!(Sending::news(on, on).is_empty());
        let muted = Sending { mic: false, ..on };
        assert_eq!(Sending::news(on, muted), ["Your microphone is muted."]);
        assert_eq!(Sending::news(muted, on), ["Your microphone is on."]);
        let sharing = Sending {
            camera: false,
            screen: true,
            ..on
        };
        assert_eq!(
            Sending::news(on, sharing),
            ["Your camera is off.", "You are sharing your screen."]
        );
    }
}
