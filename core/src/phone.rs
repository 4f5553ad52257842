//! A call to a phone through the relay's SIP gateway (PROTOCOL.md 5.13),
//! as a state machine with no I/O: the shell ([`crate::call`]'s loop)
//! makes the offer, applies the answer and sends what comes out.
//!
//! It decides what the person sees (dialling, ringing, in call, ended and
//! why, in words from the SIP status code) and when the media connection
//! goes: on every end, whoever ends it.

use peercall_protocol::{phone_causes, PhoneStatus};

/// Where the call is, for the screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Making the offer (the microphone, ICE gathering).
    Dialling,
    /// The gateway is placing the call.
    Calling,
    /// The phone rings.
    Ringing,
    /// Talking.
    InCall,
    /// Over.
    Ended,
}

/// The phone call as the screen shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhoneView {
    /// What was dialled.
    pub address: String,
    /// Where it is.
    pub stage: Stage,
    /// With [`Stage::Ended`]: why, in words.
    pub ended: Option<String>,
    /// When it was answered (ms), for the call's duration.
    pub answered_at: Option<u64>,
}

impl PhoneView {
    /// The state in a few words, as the screen and screen readers say it.
    pub fn status(&self) -> String {
        match self.stage {
            Stage::Dialling => "Dialling…".into(),
            Stage::Calling => "Calling…".into(),
            Stage::Ringing => "Ringing…".into(),
            Stage::InCall => "In call".into(),
            Stage::Ended => self.ended.clone().unwrap_or_else(|| "Call ended".into()),
        }
    }

    /// Whether the call is over.
    pub fn is_over(&self) -> bool {
        self.stage == Stage::Ended
    }
}

/// What the shell should do for the phone call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PhoneOutput {
    /// Make the call's own connection (microphone, and camera if any)
    /// and its offer with every candidate gathered; report with
    /// [`Phone::offer_ready`] or [`Phone::offer_failed`].
    MakeOffer,
    /// Send `phone_call` to the relay.
    Dial {
        /// The address as typed.
        address: String,
        /// The complete offer.
        sdp: String,
    },
    /// Apply the gateway's answer.
    Answer(String),
    /// Send `phone_hangup` to the relay.
    HangUp,
    /// Close the call's connection.
    Close,
    /// Put what we send now (mute, camera) on the call's senders (from
    /// [`crate::call::CallCore`], whenever that changes).
    SetTracks,
    /// The screen changed.
    View(PhoneView),
}

/// The words for how a call ended: `cause` and `code` from the relay's
/// `ended` (PROTOCOL.md 5.13), `reason` its phrase or the relay's words.
pub fn explain(cause: Option<&str>, code: Option<u16>, reason: Option<&str>) -> String {
    let reason = reason.filter(|r| !r.is_empty());
    match cause.unwrap_or(phone_causes::REFUSED) {
        phone_causes::HANGUP => "You hung up.".into(),
        phone_causes::REMOTE_HANGUP => "The other side hung up.".into(),
        phone_causes::GATEWAY => match reason {
            Some(r) => format!("The phone gateway is unreachable ({r})."),
            None => "The phone gateway is unreachable.".into(),
        },
        phone_causes::BAD_ADDRESS => match reason {
            Some(r) => format!("That address cannot be called: {r}."),
            None => "That address cannot be called.".into(),
        },
        phone_causes::MEDIA => "The call's audio connection failed.".into(),
        phone_causes::UNAVAILABLE => match reason {
            Some(r) => format!("Phone calls are not available: {r}."),
            None => "Phone calls are not available here.".into(),
        },
        _ => match code {
            Some(486 | 600) => "Busy.".into(),
            Some(603 | 607) => "The call was declined.".into(),
            Some(404 | 484 | 604 | 410) => "No such number.".into(),
            Some(408 | 480) => "No answer.".into(),
            Some(487) => "The call was cancelled.".into(),
            Some(415 | 488 | 606) => {
                "No common codec: the phone and this browser share no audio format.".into()
            }
            Some(401 | 403 | 407) => "The phone provider refused the call (not authorised).".into(),
            Some(code @ 500..=599) => format!(
                "The phone network could not be reached ({code}{}).",
                reason.map(|r| format!(" {r}")).unwrap_or_default()
            ),
            Some(code) => format!(
                "The call failed ({code}{}).",
                reason.map(|r| format!(" {r}")).unwrap_or_default()
            ),
            None => match reason {
                Some(r) => format!("The call failed: {r}."),
                None => "The call failed.".into(),
            },
        },
    }
}

/// The phone call, if any: at most one at a time.
#[derive(Debug, Default)]
pub struct Phone {
    view: Option<PhoneView>,
    answer_applied: bool,
    /// `phone_call` went to the relay.
    dialled: bool,
}

impl Phone {
    /// The call now, if there is or was one.
    pub fn view(&self) -> Option<&PhoneView> {
        self.view.as_ref()
    }

    fn going(&self) -> bool {
        self.view.as_ref().is_some_and(|v| !v.is_over())
    }

    fn set(&mut self, stage: Stage, out: &mut Vec<PhoneOutput>) {
        if let Some(view) = &mut self.view {
            if view.stage != stage {
                view.stage = stage;
                out.push(PhoneOutput::View(view.clone()));
            }
        }
    }

    fn end(&mut self, why: String, out: &mut Vec<PhoneOutput>) {
        if let Some(view) = &mut self.view {
            view.stage = Stage::Ended;
            view.ended = Some(why);
            out.push(PhoneOutput::Close);
            out.push(PhoneOutput::View(view.clone()));
        }
    }

    /// The person dials `address`.
    pub fn dial(&mut self, address: &str) -> Result<Vec<PhoneOutput>, String> {
        let address = address.trim();
        if address.is_empty() {
            return Err("Type a number or a SIP address.".into());
        }
        if self.going() {
            return Err("A phone call is already going.".into());
        }
        let view = PhoneView {
            address: address.to_owned(),
            stage: Stage::Dialling,
            ended: None,
            answered_at: None,
        };
        self.view = Some(view.clone());
        self.answer_applied = false;
        self.dialled = false;
        Ok(vec![PhoneOutput::View(view), PhoneOutput::MakeOffer])
    }

    /// The offer is made, `sdp` with every candidate.
    pub fn offer_ready(&mut self, sdp: String) -> Vec<PhoneOutput> {
        match &self.view {
            Some(view) if view.stage == Stage::Dialling => {
                self.dialled = true;
                vec![PhoneOutput::Dial {
                    address: view.address.clone(),
                    sdp,
                }]
            }
            // Hung up while the offer was being made.
            _ => vec![PhoneOutput::Close],
        }
    }

    /// The offer could not be made.
    pub fn offer_failed(&mut self, error: &str) -> Vec<PhoneOutput> {
        let mut out = Vec::new();
        if self.going() {
            self.end(format!("The call could not start: {error}."), &mut out);
        }
        out
    }

    /// The relay said where the call is.
    pub fn relay_state(
        &mut self,
        state: PhoneStatus,
        sdp: Option<String>,
        code: Option<u16>,
        cause: Option<&str>,
        reason: Option<&str>,
        now_ms: u64,
    ) -> Vec<PhoneOutput> {
        let mut out = Vec::new();
        if !self.going() {
            return out;
        }
        if let Some(sdp) = sdp {
            if !self.answer_applied && state != PhoneStatus::Ended {
                self.answer_applied = true;
                out.push(PhoneOutput::Answer(sdp));
            }
        }
        match state {
            PhoneStatus::Calling => self.set(Stage::Calling, &mut out),
            PhoneStatus::Ringing => self.set(Stage::Ringing, &mut out),
            PhoneStatus::Answered => {
                if let Some(view) = &mut self.view {
                    view.answered_at.get_or_insert(now_ms);
                }
                self.set(Stage::InCall, &mut out);
            }
            PhoneStatus::Ended => self.end(explain(cause, code, reason), &mut out),
            PhoneStatus::Other => {}
        }
        out
    }

    /// The person hangs up.
    pub fn hang_up(&mut self) -> Vec<PhoneOutput> {
        let mut out = Vec::new();
        if self.going() {
            if self.dialled {
                out.push(PhoneOutput::HangUp);
            }
            self.end(explain(Some(phone_causes::HANGUP), None, None), &mut out);
        }
        out
    }

    /// The call's media connection failed for good.
    pub fn media_failed(&mut self) -> Vec<PhoneOutput> {
        let mut out = Vec::new();
        if self.going() {
            out.push(PhoneOutput::HangUp);
            self.end(explain(Some(phone_causes::MEDIA), None, None), &mut out);
        }
        out
    }

    /// The connection to the relay dropped: the relay ends the call.
    pub fn relay_lost(&mut self) -> Vec<PhoneOutput> {
        let mut out = Vec::new();
        if self.going() {
            self.end(
                "The connection to the server was lost, and the call with it.".into(),
                &mut out,
            );
        }
        out
    }

    /// The ended call's screen is closed.
    pub fn dismiss(&mut self) -> Vec<PhoneOutput> {
        let mut out = self.hang_up();
        self.view = None;
        out.retain(|o| !matches!(o, PhoneOutput::View(_)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stages(out: &[PhoneOutput]) -> Vec<Stage> {
        out.iter()
            .filter_map(|o| match o {
                PhoneOutput::View(v) => Some(v.stage),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_call_goes_from_dialling_to_talking_to_ended() {
        let mut phone = Phone::default();
        assert!(phone.dial("  ").is_err());
        let out = phone.dial(" sip:phone@127.0.0.1 ").unwrap();
        assert_eq!(out.last(), Some(&PhoneOutput::MakeOffer));
        assert!(phone.dial("123").is_err(), "one call at a time");
        assert_eq!(
            phone.offer_ready("v=0".into()),
            vec![PhoneOutput::Dial {
                address: "sip:phone@127.0.0.1".into(),
                sdp: "v=0".into()
            }]
        );
        let out = phone.relay_state(PhoneStatus::Calling, None, None, None, None, 1);
        assert_eq!(stages(&out), [Stage::Calling]);
        let out = phone.relay_state(PhoneStatus::Ringing, None, None, None, None, 2);
        assert_eq!(stages(&out), [Stage::Ringing]);
        let out = phone.relay_state(
            PhoneStatus::Answered,
            Some("answer".into()),
            None,
            None,
            None,
            5,
        );
        assert_eq!(out[0], PhoneOutput::Answer("answer".into()));
        assert_eq!(stages(&out), [Stage::InCall]);
        assert_eq!(phone.view().unwrap().answered_at, Some(5));
        let out = phone.relay_state(
            PhoneStatus::Ended,
            None,
            Some(200),
            Some(phone_causes::REMOTE_HANGUP),
            Some("Session Terminated"),
            9,
        );
        assert_eq!(out[0], PhoneOutput::Close);
        assert_eq!(phone.view().unwrap().status(), "The other side hung up.");
        assert!(phone.hang_up().is_empty(), "nothing to hang up any more");
        assert!(phone.dial("123").is_ok(), "a new call after the end");
    }

    #[test]
    fn early_media_answers_once() {
        let mut phone = Phone::default();
        phone.dial("x@y").unwrap();
        phone.offer_ready("v=0".into());
        let out = phone.relay_state(
            PhoneStatus::Ringing,
            Some("early".into()),
            None,
            None,
            None,
            1,
        );
        assert_eq!(out[0], PhoneOutput::Answer("early".into()));
        let out = phone.relay_state(
            PhoneStatus::Answered,
            Some("again".into()),
            None,
            None,
            None,
            2,
        );
        assert!(!out.contains(&PhoneOutput::Answer("again".into())));
    }

    #[test]
    fn hanging_up_tells_the_relay_unless_nothing_was_sent() {
        let mut phone = Phone::default();
        phone.dial("x@y").unwrap();
        let out = phone.hang_up();
        assert!(
            !out.contains(&PhoneOutput::HangUp),
            "nothing was dialled yet"
        );
        assert_eq!(phone.offer_ready("v=0".into()), vec![PhoneOutput::Close]);
        phone.dial("x@y").unwrap();
        phone.offer_ready("v=0".into());
        let out = phone.hang_up();
        assert_eq!(out[..2], [PhoneOutput::HangUp, PhoneOutput::Close]);
        assert_eq!(phone.view().unwrap().status(), "You hung up.");
        phone.dial("x@y").unwrap();
        phone.offer_ready("v=0".into());
        assert!(phone.media_failed().contains(&PhoneOutput::HangUp));
        phone.dial("x@y").unwrap();
        assert!(phone.relay_lost().contains(&PhoneOutput::Close));
        assert!(phone.dismiss().is_empty() && phone.view().is_none());
    }

    #[test]
    fn sip_codes_are_explained_in_words() {
        let refused = |code| explain(Some(phone_causes::REFUSED), Some(code), Some("x"));
        assert_eq!(refused(486), "Busy.");
        assert_eq!(refused(603), "The call was declined.");
        assert_eq!(refused(404), "No such number.");
        assert_eq!(refused(480), "No answer.");
        assert_eq!(refused(408), "No answer.");
        assert!(refused(488).starts_with("No common codec"));
        assert!(refused(503).contains("could not be reached (503 x)"));
        assert!(refused(499).contains("499"));
        assert!(explain(Some(phone_causes::GATEWAY), None, Some("refused")).contains("unreachable"));
        assert_eq!(explain(None, None, None), "The call failed.");
    }
}
