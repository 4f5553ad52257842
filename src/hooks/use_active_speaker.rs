use std::collections::BTreeMap;

use gloo_timers::callback::Interval;
use web_sys::RtcPeerConnection;
use yew::prelude::*;

use crate::mesh::Speakers;
use crate::web::stats::snapshot;

/// How often incoming audio levels are read.
const POLL_MS: u32 = 500;

/// The SFU's receiving connection and whose audio each mid carries.
pub type SfuAudio = Option<(RtcPeerConnection, Vec<(String, String)>)>;

/// Tells `on_change` who is speaking (peer id) whenever that changes,
/// from the incoming audio's energy in `getStats()` on each connection,
/// and per person on the SFU's ([`Speakers`] decides). Polls only in a
/// group call (two or more others): with one other person there is
/// nobody to single out.
#[hook]
pub fn use_active_speaker(
    connections: &BTreeMap<String, RtcPeerConnection>,
    sfu: &SfuAudio,
    on_change: Callback<Option<String>>,
) {
    let tracker = use_mut_ref(Speakers::default);
    let current = use_mut_ref(|| None::<String>);
    use_effect_with(
        (connections.clone(), sfu.clone()),
        move |(connections, sfu)| {
            let on_sfu = sfu.as_ref().map_or(0, |(_, mids)| mids.len());
            let group = connections.len().max(on_sfu) >= 2;
            let (connections, sfu) = (connections.clone(), sfu.clone());
            let poll = move || {
                let (connections, sfu, tracker, current, on_change) = (
                    connections.clone(),
                    sfu.clone(),
                    tracker.clone(),
                    current.clone(),
                    on_change.clone(),
                );
                wasm_bindgen_futures::spawn_local(async move {
                    let mut totals: Vec<(String, f64, f64)> = Vec::new();
                    // Through the SFU per m-line, then each direct
                    // connection (unless the SFU counted that person).
                    let sources = sfu
                        .iter()
                        .map(|(pc, mids)| (pc, Some(mids), None))
                        .chain(connections.iter().map(|(id, pc)| (pc, None, Some(id))));
                    for (pc, mids, id) in sources {
                        if id.is_some_and(|id| totals.iter().any(|(t, _, _)| t == id)) {
                            continue;
                        }
                        let Ok(s) = snapshot(pc).await else {
                            continue;
                        };
                        match (mids, id) {
                            (Some(mids), _) => {
                                for (mid, (energy, duration)) in s.audio_by_mid {
                                    if let Some((_, peer)) = mids.iter().find(|(m, _)| *m == mid) {
                                        totals.push((peer.clone(), energy, duration));
                                    }
                                }
                            }
                            (None, Some(id)) => {
                                if let Some((energy, duration)) = s.audio_energy {
                                    totals.push((id.clone(), energy, duration));
                                }
                            }
                            (None, None) => {}
                        }
                    }
                    let who = tracker
                        .borrow_mut()
                        .update(js_sys::Date::now() as u64, &totals);
                    if *current.borrow() != who {
                        *current.borrow_mut() = who.clone();
                        on_change.emit(who);
                    }
                });
            };
            let interval = group.then(|| Interval::new(POLL_MS, poll));
            move || drop(interval)
        },
    );
}
