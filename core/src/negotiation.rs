//! Perfect negotiation, the pure part: the decisions of the W3C pattern
//! (<https://w3c.github.io/webrtc-pc/#perfect-negotiation-example>) for one
//! peer connection, without the connection itself.
//!
//! Either side may offer at any time (`negotiationneeded` drives offers), so
//! it never matters who joins first. When both offer at once (glare) the
//! *polite* side rolls its own offer back and answers; the *impolite* side
//! ignores the offer it receives and waits for the answer to its own. Who is
//! polite follows from the two peer ids, so both sides agree without a
//! message: the larger id is polite.
//!
//! Candidates that arrive before a remote description is set are queued and
//! handed back once it is.

use peercall_protocol::Candidate;

/// `RTCPeerConnection.signalingState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignalingState {
    /// No offer/answer exchange in progress.
    Stable,
    /// We sent an offer and await the answer.
    HaveLocalOffer,
    /// We received an offer and owe an answer.
    HaveRemoteOffer,
    /// Provisional answers (not used by peercall).
    HaveLocalPranswer,
    /// Provisional answers (not used by peercall).
    HaveRemotePranswer,
    /// The connection is closed.
    Closed,
}

/// What to do with a received description.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnDescription {
    /// Drop it: it is an offer colliding with ours and we are impolite.
    Ignore,
    /// `setRemoteDescription` it (a polite side in glare rolls back
    /// implicitly), then, when `answer` is true, `setLocalDescription()`
    /// and send the answer.
    Apply {
        /// Whether an answer must follow.
        answer: bool,
    },
}

/// What to do with a received candidate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OnCandidate {
    /// `addIceCandidate` it now.
    Add(Candidate),
    /// Kept until the remote description is set ([`Negotiation::remote_applied`]).
    Queued,
}

/// The negotiation state of one peer connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiation {
    polite: bool,
    making_offer: bool,
    ignore_offer: bool,
    setting_remote_answer: bool,
    has_remote_description: bool,
    queued: Vec<Candidate>,
}

impl Negotiation {
    /// Negotiation between us (`me`) and `peer`: the larger id is polite.
    pub fn new(me: &str, peer: &str) -> Self {
        Self {
            polite: me > peer,
            making_offer: false,
            ignore_offer: false,
            setting_remote_answer: false,
            has_remote_description: false,
            queued: Vec::new(),
        }
    }

    /// Whether we yield in glare.
    pub fn is_polite(&self) -> bool {
        self.polite
    }

    /// `negotiationneeded` fired: we are about to `setLocalDescription()`.
    pub fn offer_started(&mut self) {
        self.making_offer = true;
    }

    /// Our offer is set and sent (or failed).
    pub fn offer_finished(&mut self) {
        self.making_offer = false;
    }

    /// An offer or answer arrived while the connection is in `state`.
    pub fn on_description(&mut self, is_offer: bool, state: SignalingState) -> OnDescription {
        let ready_for_offer =
            !self.making_offer && (state == SignalingState::Stable || self.setting_remote_answer);
        let collision = is_offer && !ready_for_offer;
        self.ignore_offer = !self.polite && collision;
        if self.ignore_offer {
            return OnDescription::Ignore;
        }
        self.setting_remote_answer = !is_offer;
        OnDescription::Apply { answer: is_offer }
    }

    /// `setRemoteDescription` succeeded: the queued candidates to add now.
    pub fn remote_applied(&mut self) -> Vec<Candidate> {
        self.setting_remote_answer = false;
        self.has_remote_description = true;
        std::mem::take(&mut self.queued)
    }

    /// `setRemoteDescription` failed.
    pub fn remote_failed(&mut self) {
        self.setting_remote_answer = false;
    }

    /// A candidate arrived.
    pub fn on_candidate(&mut self, candidate: Candidate) -> OnCandidate {
        if self.has_remote_description {
            OnCandidate::Add(candidate)
        } else {
            self.queued.push(candidate);
            OnCandidate::Queued
        }
    }

    /// Whether a failed `addIceCandidate` is worth reporting: not when it
    /// belonged to an offer we chose to ignore.
    pub fn candidate_error_matters(&self) -> bool {
        !self.ignore_offer
    }
}

#[cfg(test)]
#[path = "negotiation_tests.rs"]
mod tests;
