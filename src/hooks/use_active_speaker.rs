use std::collections::BTreeMap;

use gloo_timers::callback::Interval;
use web_sys::RtcPeerConnection;
use yew::prelude::*;

use crate::mesh::Speakers;
use crate::web::stats::snapshot;

/// How often incoming audio levels are read.
const POLL_MS: u32 = 500;

/// Tells `on_change` who is speaking (peer id) whenever that changes,
/// from the incoming audio's energy in `getStats()` on each connection
/// ([`Speakers`] decides). Polls only in a group call (two or more
/// others): with one other person there is nobody to single out.
#[hook]
pub fn use_active_speaker(
    connections: &BTreeMap<String, RtcPeerConnection>,
    on_change: Callback<Option<String>>,
) {
    let tracker = use_mut_ref(Speakers::default);
    let current = use_mut_ref(|| None::<String>);
    use_effect_with(connections.clone(), move |connections| {
        let group = connections.len() >= 2;
        let connections = connections.clone();
        let poll = move || {
            let (connections, tracker, current, on_change) = (
                connections.clone(),
                tracker.clone(),
                current.clone(),
                on_change.clone(),
            );
            wasm_bindgen_futures::spawn_local(async move {
                let mut totals = Vec::new();
                for (id, pc) in &connections {
                    if let Ok(Some((energy, duration))) = snapshot(pc).await.map(|s| s.audio_energy)
                    {
                        totals.push((id.clone(), energy, duration));
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
    });
}
