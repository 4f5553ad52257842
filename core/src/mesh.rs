//! Group calls, the pure part: how much video each of us may send as the
//! room grows ([`budget`]), and who is speaking ([`Speakers`]).
//!
//! In a full mesh everyone encodes and uploads their video once per other
//! person, so six people means five streams going up from each browser.
//! An ordinary home uplink has a few Mbit/s; [`budget`] shares
//! [`UPLINK_VIDEO_BPS`] between the streams and lowers the resolution and
//! frame rate to what that bitrate can carry. The glue applies it to each
//! video sender with `RTCRtpSender.setParameters` (`maxBitrate`,
//! `scaleResolutionDownBy`, `maxFramerate`); no renegotiation.

use std::collections::BTreeMap;

/// What all our video streams together may use, bits per second. Audio
/// (Opus, about 40 kbit/s a stream) comes on top.
pub const UPLINK_VIDEO_BPS: u32 = 2_000_000;

/// The most one stream may use, however few people there are.
pub const MAX_STREAM_BPS: u32 = 1_500_000;

/// The limits for each of our video senders.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Budget {
    /// `maxBitrate`, bits per second.
    pub max_bitrate_bps: u32,
    /// The tallest picture to send, in pixels; `None` sends the source's
    /// full size (a shared screen, whose text must stay legible).
    pub max_height: Option<u32>,
    /// `maxFramerate`.
    pub max_framerate: f64,
}

/// The limits for each video sender in a call of `people` (us included),
/// for the camera or (`screen`) a shared screen.
///
/// | people | per stream | camera |
/// |---|---|---|
/// | 2 | 1.5 Mbit/s | 720p, 30 fps |
/// | 3 | 1 Mbit/s | 540p, 30 fps |
/// | 4 | 666 kbit/s | 360p, 30 fps |
/// | 5 | 500 kbit/s | 360p, 30 fps |
/// | 6 | 400 kbit/s | 270p, 24 fps |
///
/// A screen keeps its size and gets the same bitrate, at 15 fps when
/// shared with more than one person (the encoder then spends the bits on
/// sharpness).
pub fn budget(people: usize, screen: bool) -> Budget {
    let streams = people.saturating_sub(1).max(1) as u32;
    let bps = (UPLINK_VIDEO_BPS / streams).min(MAX_STREAM_BPS);
    if screen {
        return Budget {
            max_bitrate_bps: bps,
            max_height: None,
            max_framerate: if streams == 1 { 30.0 } else { 15.0 },
        };
    }
    let height = match bps {
        1_200_000.. => 720,
        700_000.. => 540,
        450_000.. => 360,
        _ => 270,
    };
    Budget {
        max_bitrate_bps: bps,
        max_height: Some(height),
        max_framerate: if bps >= 450_000 { 30.0 } else { 24.0 },
    }
}

/// The simulcast encodings we publish to the SFU: (rid, how much smaller
/// than the camera, `maxBitrate`), smallest first: layers 0, 1 and 2.
pub const SIMULCAST: [(&str, f64, u32); 3] = [
    ("q", 4.0, 150_000),
    ("h", 2.0, 500_000),
    ("f", 1.0, 1_200_000),
];

/// The simulcast layer to receive for a tile `height` device pixels tall:
/// the smallest whose picture (180, 360 or 720 lines from a 720p camera)
/// is at least that tall.
pub fn layer_for(height: u32) -> u8 {
    match height {
        0..=180 => 0,
        181..=360 => 1,
        _ => 2,
    }
}

/// `scaleResolutionDownBy` for a source `height` pixels tall, so that what
/// is sent is at most `max_height` (1: as it is). An unknown height (0)
/// is left alone.
pub fn scale_down_by(height: u32, max_height: Option<u32>) -> f64 {
    match max_height {
        Some(max) if max > 0 && height > max => f64::from(height) / f64::from(max),
        _ => 1.0,
    }
}

/// Audio louder than this (RMS, 0 to 1, about -40 dBFS) over a poll counts
/// as speaking.
pub const SPEAKING_LEVEL: f64 = 0.01;

/// A speaker stays highlighted this long after they were last heard, so
/// the highlight does not flicker between words.
pub const HOLD_MS: u64 = 1_500;

/// Polls in a row someone must be the loudest to take the highlight from
/// someone still talking.
const TAKEOVER_POLLS: u32 = 2;

/// Who is speaking, from each person's incoming audio: feed it the
/// running totals from `getStats()` (`inbound-rtp` audio
/// `totalAudioEnergy` and `totalSamplesDuration`) every few hundred ms.
/// The level over each interval is `sqrt(Δenergy / Δduration)`, so it
/// measures the whole interval, not one instant.
#[derive(Debug, Default)]
pub struct Speakers {
    last: BTreeMap<String, (f64, f64)>,
    active: Option<String>,
    heard_ms: u64,
    challenger: Option<(String, u32)>,
}

impl Speakers {
    /// Takes the totals of everyone there now (`id`, energy, duration) at
    /// `now_ms`; gives who is speaking, if anyone.
    pub fn update(&mut self, now_ms: u64, totals: &[(String, f64, f64)]) -> Option<String> {
        let mut loudest: Option<(&str, f64)> = None;
        for (id, energy, duration) in totals {
            let level = match self.last.get(id) {
                Some((e0, d0)) if duration > d0 => {
                    ((energy - e0) / (duration - d0)).max(0.0).sqrt()
                }
                _ => 0.0,
            };
            if level >= SPEAKING_LEVEL && loudest.is_none_or(|(_, l)| level > l) {
                loudest = Some((id, level));
            }
        }
        self.last = totals
            .iter()
            .map(|(id, e, d)| (id.clone(), (*e, *d)))
            .collect();
        if self
            .active
            .as_ref()
            .is_some_and(|a| !self.last.contains_key(a))
        {
            self.active = None;
        }
        match loudest {
            Some((id, _)) if self.active.as_deref() == Some(id) => {
                self.heard_ms = now_ms;
                self.challenger = None;
            }
            Some((id, _)) => {
                let polls = match &self.challenger {
                    Some((c, n)) if c == id => n + 1,
                    _ => 1,
                };
                let quiet = now_ms.saturating_sub(self.heard_ms) > HOLD_MS;
                if self.active.is_none() || quiet || polls >= TAKEOVER_POLLS {
                    self.active = Some(id.to_owned());
                    self.heard_ms = now_ms;
                    self.challenger = None;
                } else {
                    self.challenger = Some((id.to_owned(), polls));
                }
            }
            None => {
                self.challenger = None;
                if now_ms.saturating_sub(self.heard_ms) > HOLD_MS {
                    self.active = None;
                }
            }
        }
        self.active.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_fits_the_uplink_and_shrinks_as_the_room_grows() {
        let mut last = budget(1, false);
        assert_eq!(last, budget(2, false), "alone counts as two");
        assert_eq!(
            budget(2, false),
            Budget {
                max_bitrate_bps: 1_500_000,
                max_height: Some(720),
                max_framerate: 30.0
            }
        );
        for people in 2..=crate::room::MAX_PEOPLE {
            let b = budget(people, false);
            let streams = (people - 1) as u32;
            assert!(
                b.max_bitrate_bps * streams <= UPLINK_VIDEO_BPS,
                "{people} people: {b:?}"
            );
            assert!(b.max_bitrate_bps <= last.max_bitrate_bps);
            assert!(b.max_height <= last.max_height);
            assert!(b.max_framerate <= last.max_framerate);
            last = b;
        }
        assert_eq!(budget(3, false).max_height, Some(540));
        assert_eq!(budget(4, false).max_height, Some(360));
        assert_eq!(budget(4, false).max_bitrate_bps, 666_666);
        let six = budget(6, false);
        assert_eq!((six.max_bitrate_bps, six.max_height), (400_000, Some(270)));
        assert_eq!(six.max_framerate, 24.0);
    }

    #[test]
    fn a_screen_keeps_its_size_and_trades_frames_for_sharpness() {
        let two = budget(2, true);
        assert_eq!((two.max_height, two.max_framerate), (None, 30.0));
        let four = budget(4, true);
        assert_eq!(four.max_bitrate_bps, budget(4, false).max_bitrate_bps);
        assert_eq!((four.max_height, four.max_framerate), (None, 15.0));
        assert_eq!(scale_down_by(1080, four.max_height), 1.0);
    }

    #[test]
    fn scaling_only_ever_shrinks() {
        assert_eq!(scale_down_by(720, Some(360)), 2.0);
        assert_eq!(scale_down_by(480, Some(360)), 480.0 / 360.0);
        assert_eq!(scale_down_by(240, Some(360)), 1.0);
        assert_eq!(scale_down_by(0, Some(360)), 1.0);
        assert_eq!(scale_down_by(720, Some(0)), 1.0);
    }

    fn poll(s: &mut Speakers, at: u64, levels: &[(&str, f64)]) -> Option<String> {
        // Totals as if each had spoken at `level` (RMS) for 0.5 s per poll.
        let totals: Vec<_> = levels
            .iter()
            .map(|(id, total)| (id.to_string(), *total, at as f64 / 1000.0))
            .collect();
        s.update(at, &totals)
    }

    /// Energy totals for a run of polls, 0.5 s apart, at these RMS levels.
    struct Run {
        s: Speakers,
        at: u64,
        energy: BTreeMap<&'static str, f64>,
    }

    impl Run {
        fn new() -> Self {
            let mut r = Run {
                s: Speakers::default(),
                at: 0,
                energy: BTreeMap::new(),
            };
            r.step(&[("a", 0.0), ("b", 0.0), ("c", 0.0)]);
            r
        }
        fn step(&mut self, levels: &[(&'static str, f64)]) -> Option<String> {
            self.at += 500;
            for (id, level) in levels {
                *self.energy.entry(id).or_default() += level * level * 0.5;
            }
            let totals: Vec<(&str, f64)> = levels
                .iter()
                .map(|(id, _)| (*id, self.energy[id]))
                .collect();
            poll(&mut self.s, self.at, &totals)
        }
    }

    #[test]
    fn the_loudest_speaker_is_found_and_held_between_words() {
        let mut r = Run::new();
        let quiet = [("a", 0.0), ("b", 0.001), ("c", 0.0)];
        assert_eq!(r.step(&quiet), None, "background noise is nobody");
        assert_eq!(
            r.step(&[("a", 0.0), ("b", 0.2), ("c", 0.05)]).as_deref(),
            Some("b"),
            "the loudest wins at once when nobody is speaking"
        );
        // A pause between words keeps the highlight.
        assert_eq!(r.step(&quiet).as_deref(), Some("b"));
        assert_eq!(r.step(&quiet).as_deref(), Some("b"));
        // c speaks over b: one poll is not enough, two are.
        let both = [("a", 0.0), ("b", 0.1), ("c", 0.3)];
        assert_eq!(r.step(&both).as_deref(), Some("b"));
        assert_eq!(r.step(&both).as_deref(), Some("c"));
        // Silence for longer than the hold: nobody.
        for _ in 0..3 {
            r.step(&quiet);
        }
        assert_eq!(r.step(&quiet), None);
        // Someone speaking after the previous speaker went quiet takes
        // over at once.
        assert_eq!(
            r.step(&[("a", 0.2), ("b", 0.0), ("c", 0.0)]).as_deref(),
            Some("a")
        );
    }

    #[test]
    fn a_speaker_who_leaves_is_forgotten_and_bad_totals_do_no_harm() {
        let mut s = Speakers::default();
        let t = |id: &str, e: f64, d: f64| (id.to_string(), e, d);
        s.update(0, &[t("a", 0.0, 0.0)]);
        assert_eq!(s.update(500, &[t("a", 0.05, 0.5)]).as_deref(), Some("a"));
        assert_eq!(s.update(1000, &[t("b", 1.0, 1.0)]), None, "a left");
        // Totals that go backwards (a new stream) or stand still count as
        // silence, never as NaN.
        assert_eq!(s.update(1500, &[t("b", 0.5, 0.5)]), None);
        assert_eq!(s.update(2000, &[t("b", 0.5, 0.5)]), None);
        assert_eq!(s.update(2500, &[t("b", 0.4, 1.0)]), None);
    }
}
