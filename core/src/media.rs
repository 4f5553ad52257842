//! Local media, the pure part: what can go wrong when asking for the camera and
//! microphone, and what to tell the person about it.
//!
//! The browser reports failures of `getUserMedia` as a `DOMException` whose
//! `name` says what happened
//! (<https://developer.mozilla.org/en-US/docs/Web/API/MediaDevices/getUserMedia#exceptions>).
//! [`MediaError::from_dom`] turns that name into a typed error once, at the
//! boundary, so the UI can explain it and tests can match on it.

use std::fmt;

/// The kind of a track or transceiver (`MediaStreamTrack.kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// `"audio"`.
    Audio,
    /// `"video"`.
    Video,
}

impl MediaKind {
    /// Both, in the order connections add them.
    pub const ALL: [MediaKind; 2] = [MediaKind::Audio, MediaKind::Video];

    /// The browser's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        }
    }

    /// The kind the browser calls `kind`, if it is one of these.
    pub fn parse(kind: &str) -> Option<Self> {
        match kind {
            "audio" => Some(MediaKind::Audio),
            "video" => Some(MediaKind::Video),
            _ => None,
        }
    }
}

/// Why local media could not be had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaError {
    /// The page is not a secure context (HTTPS or localhost), so the browser
    /// hides `navigator.mediaDevices` altogether.
    InsecureContext,
    /// The browser has no `navigator.mediaDevices.getUserMedia` at all.
    Unsupported,
    /// `NotAllowedError`: the person, the browser or a permissions policy said no.
    NotAllowed,
    /// `NotFoundError`: no camera or microphone is connected.
    NotFound,
    /// `NotReadableError`: the device exists but could not be opened, usually
    /// because another program is using it.
    NotReadable,
    /// `OverconstrainedError`: no device can satisfy the constraints.
    Overconstrained {
        /// The constraint that could not be met, when the browser says.
        constraint: String,
    },
    /// `AbortError`: the request was cut short by something else.
    Aborted,
    /// Any other failure, with the browser's own words kept.
    Other {
        /// The `DOMException` name (or the JS error's name).
        name: String,
        /// The browser's message.
        message: String,
    },
}

impl MediaError {
    /// Classifies a failure of `getUserMedia` from the exception's `name`,
    /// keeping `message` for the cases that have no name of their own.
    /// `constraint` is the `constraint` field of an `OverconstrainedError`.
    pub fn from_dom(name: &str, message: &str, constraint: Option<&str>) -> Self {
        match name {
            // Firefox and older Chrome used other names for the same cases.
            "NotAllowedError" | "PermissionDeniedError" | "SecurityError" => Self::NotAllowed,
            "NotFoundError" | "DevicesNotFoundError" => Self::NotFound,
            "NotReadableError" | "TrackStartError" => Self::NotReadable,
            "OverconstrainedError" | "ConstraintNotSatisfiedError" => Self::Overconstrained {
                constraint: constraint.unwrap_or_default().to_owned(),
            },
            "AbortError" => Self::Aborted,
            _ => Self::Other {
                name: name.to_owned(),
                message: message.to_owned(),
            },
        }
    }

    /// A short headline for the person in front of the screen.
    pub fn title(&self) -> &'static str {
        match self {
            Self::InsecureContext => "This page is not secure",
            Self::Unsupported => "This browser cannot make calls",
            Self::NotAllowed => "Camera and microphone are blocked",
            Self::NotFound => "No camera or microphone found",
            Self::NotReadable => "Camera or microphone is busy",
            Self::Overconstrained { .. } => "No camera fits the requested settings",
            Self::Aborted => "The camera request was interrupted",
            Self::Other { .. } => "Could not start camera or microphone",
        }
    }

    /// What the person can do about it.
    pub fn hint(&self) -> String {
        match self {
            Self::InsecureContext => {
                "Browsers only share the camera with pages opened over https:// or from \
                 localhost. Open this page through an https:// address."
                    .into()
            }
            Self::Unsupported => "Use a current version of Chrome, Firefox, Edge or Safari.".into(),
            Self::NotAllowed => {
                "Allow camera and microphone for this site (the camera icon in the address \
                 bar), then try again."
                    .into()
            }
            Self::NotFound => {
                "Connect a camera or microphone, or check that the system has not disabled \
                 them, then try again."
                    .into()
            }
            Self::NotReadable => {
                "Another application or tab may be using the camera. Close it, then try again."
                    .into()
            }
            Self::Overconstrained { constraint } if !constraint.is_empty() => {
                format!("No device supports the requested {constraint}. Try another device.")
            }
            Self::Overconstrained { .. } => "Try another device.".into(),
            Self::Aborted => "Try again.".into(),
            Self::Other { name, message } => format!("{name}: {message}"),
        }
    }
}

impl fmt::Display for MediaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}. {}", self.title(), self.hint())
    }
}

impl std::error::Error for MediaError {}

/// What the app asks `getUserMedia` for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaRequest {
    /// Ask for a microphone.
    pub audio: bool,
    /// Ask for a camera, ideally of this size (width, height).
    pub video: Option<(u32, u32)>,
}

impl Default for MediaRequest {
    /// A call: microphone and a 720p camera where the device has one.
    fn default() -> Self {
        Self {
            audio: true,
            video: Some((1280, 720)),
        }
    }
}

/// What kind of device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    /// `videoinput`.
    Camera,
    /// `audioinput`.
    Microphone,
    /// `audiooutput` (chosen with `setSinkId` where the browser has it).
    Speaker,
}

/// A camera, microphone or speaker, from `enumerateDevices()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// `deviceId`.
    pub id: String,
    /// What it is.
    pub kind: DeviceKind,
    /// `label` (empty before permission is granted).
    pub label: String,
}

/// The devices of `kind`, each with a name to show ("Camera 2" when the
/// browser gives no label), without duplicates of the same id.
pub fn devices_of(devices: &[Device], kind: DeviceKind) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for d in devices.iter().filter(|d| d.kind == kind) {
        if out.iter().any(|(id, _)| *id == d.id) {
            continue;
        }
        let name = if d.label.trim().is_empty() {
            let what = match kind {
                DeviceKind::Camera => "Camera",
                DeviceKind::Microphone => "Microphone",
                DeviceKind::Speaker => "Speaker",
            };
            format!("{what} {}", out.len() + 1)
        } else {
            d.label.clone()
        };
        out.push((d.id.clone(), name));
    }
    out
}

/// What a failed `getDisplayMedia` means: `None` when the person
/// cancelled the picker (not an error), else the error.
pub fn screen_share_error(error: MediaError) -> Option<MediaError> {
    match error {
        MediaError::NotAllowed | MediaError::Aborted => None,
        other => Some(other),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn devices_get_names_and_no_duplicates() {
        let d = |id: &str, kind, label: &str| Device {
            id: id.into(),
            kind,
            label: label.into(),
        };
        let all = [
            d("a", DeviceKind::Camera, "Front"),
            d("b", DeviceKind::Camera, ""),
            d("b", DeviceKind::Camera, ""),
            d("m", DeviceKind::Microphone, "Mic"),
        ];
        assert_eq!(
            devices_of(&all, DeviceKind::Camera),
            vec![
                ("a".into(), "Front".into()),
                ("b".into(), "Camera 2".into())
            ]
        );
        assert_eq!(devices_of(&all, DeviceKind::Speaker), vec![]);
    }

    #[test]
    fn cancelling_the_screen_picker_is_not_an_error() {
        assert_eq!(screen_share_error(MediaError::NotAllowed), None);
        assert_eq!(screen_share_error(MediaError::Aborted), None);
        assert_eq!(
            screen_share_error(MediaError::NotReadable),
            Some(MediaError::NotReadable)
        );
    }

    use super::*;

    #[test]
    fn media_kinds_are_the_browser_names() {
        for kind in MediaKind::ALL {
            assert_eq!(MediaKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(MediaKind::parse("text"), None);
    }

    #[test]
    fn dom_names_map_to_typed_errors() {
        let cases = [
            ("NotAllowedError", MediaError::NotAllowed),
            ("PermissionDeniedError", MediaError::NotAllowed),
            ("SecurityError", MediaError::NotAllowed),
            ("NotFoundError", MediaError::NotFound),
            ("DevicesNotFoundError", MediaError::NotFound),
            ("NotReadableError", MediaError::NotReadable),
            ("TrackStartError", MediaError::NotReadable),
            ("AbortError", MediaError::Aborted),
        ];
        for (name, expected) in cases {
            assert_eq!(MediaError::from_dom(name, "", None), expected, "{name}");
        }
        assert_eq!(
            MediaError::from_dom("OverconstrainedError", "", Some("width")),
            MediaError::Overconstrained {
                constraint: "width".into()
            }
        );
    }

    #[test]
    fn unknown_names_keep_the_browser_words() {
        let e = MediaError::from_dom("TypeError", "constraints are empty", None);
        assert_eq!(
            e,
            MediaError::Other {
                name: "TypeError".into(),
                message: "constraints are empty".into()
            }
        );
        assert!(e.hint().contains("constraints are empty"));
    }

    #[test]
    fn every_error_has_an_actionable_message() {
        let all = [
            MediaError::InsecureContext,
            MediaError::Unsupported,
            MediaError::NotAllowed,
            MediaError::NotFound,
            MediaError::NotReadable,
            MediaError::Overconstrained {
                constraint: String::new(),
            },
            MediaError::Overconstrained {
                constraint: "frameRate".into(),
            },
            MediaError::Aborted,
        ];
        for e in &all {
            assert!(!e.title().is_empty());
            assert!(e.hint().ends_with('.'), "{e:?}: {}", e.hint());
        }
        assert!(MediaError::InsecureContext.hint().contains("https://"));
        assert!(all[6].hint().contains("frameRate"));
        // Titles are distinct, so the person can tell the cases apart.
        let mut titles: Vec<_> = all.iter().map(MediaError::title).collect();
        titles.dedup();
        assert_eq!(titles.len(), all.len() - 1);
    }
}
