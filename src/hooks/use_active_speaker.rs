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
                    let mut by_peer = BTreeMap::new();
                    for (id, pc) in &connections {
                        if let Ok(Some((energy, duration))) =
                            snapshot(pc).await.map(|s| s.audio_energy)
                        {
                            by_peer.insert(id.clone(), (energy, duration));
                        }
                    }
                    // Through the SFU, per m-line (over a direct connection
                    // that is still there).
                    if let Some((pc, mids)) = &sfu {
                        if let Ok(s) = snapshot(pc).await {
                            for (mid, totals) in s.audio_by_mid {
                                if let Some((_, peer)) = mids.iter().find(|(m, _)| *m == mid) {
                                    by_peer.insert(peer.clone(), totals);
                                }
                            }
                        }
                    }
                    let totals: Vec<(String, f64, f64)> = by_peer
                        .into_iter()
                        .map(|(id, (energy, duration))| (id, energy, duration))
                        .collect();
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
