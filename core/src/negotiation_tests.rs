//! Native tests of [`Negotiation`], down to glare between two model peer
//! connections under every interleaving a random scheduler finds.

use super::*;

fn candidate(n: u32) -> Candidate {
    Candidate {
        candidate: format!("candidate:{n} 1 udp 1 127.0.0.1 {n} typ host"),
        sdp_mid: Some("0".into()),
        sdp_m_line_index: Some(0),
        username_fragment: None,
    }
}

#[test]
fn the_larger_id_is_polite_and_both_sides_agree() {
    let (a, b) = ("0f1e", "a0b1");
    assert!(!Negotiation::new(a, b).is_polite());
    assert!(Negotiation::new(b, a).is_polite());
}

#[test]
fn an_offer_in_stable_is_applied_and_answered() {
    let mut n = Negotiation::new("a", "b");
    assert_eq!(
        n.on_description(true, SignalingState::Stable),
        OnDescription::Apply { answer: true }
    );
}

#[test]
fn glare_impolite_ignores_polite_yields() {
    let mut impolite = Negotiation::new("a", "b");
    impolite.offer_started();
    assert_eq!(
        impolite.on_description(true, SignalingState::Stable),
        OnDescription::Ignore,
        "still making its own offer"
    );
    impolite.offer_finished();
    assert_eq!(
        impolite.on_description(true, SignalingState::HaveLocalOffer),
        OnDescription::Ignore
    );
    assert!(!impolite.candidate_error_matters());

    let mut polite = Negotiation::new("b", "a");
    polite.offer_started();
    polite.offer_finished();
    assert_eq!(
        polite.on_description(true, SignalingState::HaveLocalOffer),
        OnDescription::Apply { answer: true }
    );
    assert!(polite.candidate_error_matters());
}

#[test]
fn an_answer_is_applied_without_answering() {
    let mut n = Negotiation::new("a", "b");
    n.offer_started();
    n.offer_finished();
    assert_eq!(
        n.on_description(false, SignalingState::HaveLocalOffer),
        OnDescription::Apply { answer: false }
    );
    // While that answer is being applied, a new offer is not a collision.
    assert_eq!(
        n.on_description(true, SignalingState::HaveLocalOffer),
        OnDescription::Apply { answer: true }
    );
}

#[test]
fn candidates_wait_for_the_remote_description() {
    let mut n = Negotiation::new("a", "b");
    assert_eq!(n.on_candidate(candidate(1)), OnCandidate::Queued);
    assert_eq!(n.on_candidate(candidate(2)), OnCandidate::Queued);
    n.on_description(true, SignalingState::Stable);
    assert_eq!(n.remote_applied(), vec![candidate(1), candidate(2)]);
    assert_eq!(n.on_candidate(candidate(3)), OnCandidate::Add(candidate(3)));
    assert_eq!(n.remote_applied(), vec![], "queue handed over once");
}

// --- two model peer connections ----------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum Desc {
    Offer(u32),
    Answer(u32),
}

/// The signaling-state machine of an RTCPeerConnection, as far as offers
/// and answers go, including the implicit rollback of
/// `setRemoteDescription(offer)` in have-local-offer.
struct ModelPc {
    state: SignalingState,
    next_offer: u32,
    local: Option<Desc>,
    remote: Option<Desc>,
}

impl ModelPc {
    fn new(side: u32) -> Self {
        Self {
            state: SignalingState::Stable,
            next_offer: side * 1000,
            local: None,
            remote: None,
        }
    }

    /// `setLocalDescription()` with no argument.
    fn set_local(&mut self) -> Desc {
        let d = match (self.state, &self.remote) {
            (SignalingState::HaveRemoteOffer, Some(Desc::Offer(id))) => {
                self.state = SignalingState::Stable;
                Desc::Answer(*id)
            }
            _ => {
                self.next_offer += 1;
                self.state = SignalingState::HaveLocalOffer;
                Desc::Offer(self.next_offer)
            }
        };
        self.local = Some(d.clone());
        d
    }

    fn set_remote(&mut self, d: &Desc) -> Result<(), String> {
        match (d, self.state) {
            (Desc::Offer(_), SignalingState::Stable | SignalingState::HaveLocalOffer) => {
                self.state = SignalingState::HaveRemoteOffer;
            }
            (Desc::Answer(id), SignalingState::HaveLocalOffer)
                if self.local == Some(Desc::Offer(*id)) =>
            {
                self.state = SignalingState::Stable;
            }
            _ => return Err(format!("InvalidStateError: {d:?} in {:?}", self.state)),
        }
        self.remote = Some(d.clone());
        Ok(())
    }
}

struct Side {
    pc: ModelPc,
    n: Negotiation,
    /// negotiationneeded fired and the offer is being made (async).
    offering: bool,
}

enum Step {
    /// Side i finishes making its offer (the await of setLocalDescription).
    FinishOffer(usize),
    /// Deliver a description to side i.
    Deliver(usize, Desc),
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Runs the pattern for two sides until nothing is pending. Steps run in a
/// random order, except that each direction delivers in the order sent, as
/// a WebSocket through a relay does.
fn run(seed: u64, both_offer: bool) -> [Side; 2] {
    let mut rng = Rng(seed);
    let mut sides = [
        Side {
            pc: ModelPc::new(1),
            n: Negotiation::new("aaaa", "bbbb"),
            offering: false,
        },
        Side {
            pc: ModelPc::new(2),
            n: Negotiation::new("bbbb", "aaaa"),
            offering: false,
        },
    ];
    let mut offers = Vec::new();
    let mut wires: [std::collections::VecDeque<Desc>; 2] = Default::default();
    for (i, side) in sides.iter_mut().enumerate() {
        if both_offer || i == 0 {
            side.n.offer_started();
            side.offering = true;
            offers.push(Step::FinishOffer(i));
        }
    }
    let mut steps = 0;
    loop {
        let mut choices: Vec<usize> = (0..offers.len()).collect();
        for (i, wire) in wires.iter().enumerate() {
            if !wire.is_empty() {
                choices.push(100 + i);
            }
        }
        if choices.is_empty() {
            break;
        }
        steps += 1;
        assert!(steps < 100, "seed {seed}: negotiation never settles");
        let step = match choices[rng.below(choices.len())] {
            c if c >= 100 => {
                let to = c - 100;
                Step::Deliver(to, wires[to].pop_front().expect("non-empty"))
            }
            c => offers.remove(c),
        };
        match step {
            Step::FinishOffer(i) => {
                let d = sides[i].pc.set_local();
                sides[i].n.offer_finished();
                sides[i].offering = false;
                wires[1 - i].push_back(d);
            }
            Step::Deliver(i, d) => {
                let side = &mut sides[i];
                let is_offer = matches!(d, Desc::Offer(_));
                match side.n.on_description(is_offer, side.pc.state) {
                    OnDescription::Ignore => {}
                    OnDescription::Apply { answer } => {
                        side.pc
                            .set_remote(&d)
                            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
                        side.n.remote_applied();
                        if answer {
                            let a = side.pc.set_local();
                            wires[1 - i].push_back(a);
                        }
                    }
                }
            }
        }
    }
    sides
}

#[test]
fn glare_always_settles_on_one_offer_and_its_answer() {
    for seed in 1..=500 {
        for both_offer in [false, true] {
            let [a, b] = run(seed * 2_654_435_761, both_offer);
            assert_eq!(a.pc.state, SignalingState::Stable, "seed {seed}");
            assert_eq!(b.pc.state, SignalingState::Stable, "seed {seed}");
            // One side's offer and the other's answer to exactly it.
            let pair = |offerer: &Side, answerer: &Side| {
                matches!((&offerer.pc.local, &answerer.pc.local, &offerer.pc.remote, &answerer.pc.remote),
                    (Some(Desc::Offer(o)), Some(Desc::Answer(x)), Some(Desc::Answer(y)), Some(Desc::Offer(z)))
                    if o == x && x == y && y == z)
            };
            assert!(
                pair(&a, &b) || pair(&b, &a),
                "seed {seed}: a {:?}/{:?}, b {:?}/{:?}",
                a.pc.local,
                a.pc.remote,
                b.pc.local,
                b.pc.remote
            );
            assert!(!a.offering && !b.offering);
        }
    }
}
