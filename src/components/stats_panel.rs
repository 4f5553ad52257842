use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use gloo_timers::callback::Interval;
use web_sys::RtcPeerConnection;
use yew::prelude::*;

use crate::components::Dialog;
use crate::stats::{view, Snapshot, StatsView};
use crate::web::stats::snapshot;

/// One connection for the panel.
#[derive(Clone, PartialEq)]
pub struct Connection {
    /// Peer id.
    pub id: String,
    /// Their name.
    pub name: String,
    /// The connection.
    pub pc: RtcPeerConnection,
}

/// Props of [`StatsPanel`].
#[derive(Properties, PartialEq)]
pub struct StatsPanelProps {
    /// Every connection of the call.
    pub connections: Vec<Connection>,
    /// Close the panel.
    pub on_close: Callback<()>,
}

/// Connection details from `getStats()`, refreshed every second while it
/// is shown (it is unmounted, and polls nothing, when hidden). A
/// [`Dialog`].
#[component]
pub fn StatsPanel(props: &StatsPanelProps) -> Html {
    let views = use_state(HashMap::<String, Result<StatsView, String>>::new);
    let last: Rc<RefCell<HashMap<String, Snapshot>>> = use_mut_ref(HashMap::new);
    {
        let views = views.clone();
        use_effect_with(props.connections.clone(), move |connections| {
            let connections = connections.clone();
            let poll = move || {
                let (views, last, connections) = (views.clone(), last.clone(), connections.clone());
                wasm_bindgen_futures::spawn_local(async move {
                    let mut next = HashMap::new();
                    for c in &connections {
                        let shown = match snapshot(&c.pc).await {
                            Ok(now) => {
                                let v = view(last.borrow().get(&c.id), &now);
                                last.borrow_mut().insert(c.id.clone(), now);
                                Ok(v)
                            }
                            Err(e) => Err(e),
                        };
                        next.insert(c.id.clone(), shown);
                    }
                    views.set(next);
                });
            };
            poll();
            let interval = Interval::new(1_000, poll);
            move || drop(interval)
        });
    }
    let rows: Html = props
        .connections
        .iter()
        .map(|c| {
            let body = match views.get(&c.id) {
                None => html! { <p>{ "Measuring…" }</p> },
                Some(Err(e)) => html! { <p class="error">{ e }</p> },
                Some(Ok(v)) => {
                    let kbps = |k: Option<f64>| k.map_or("–".to_owned(), |k| format!("{k:.0} kbit/s"));
                    html! {
                        <dl>
                            <dt>{ "Path" }</dt>
                            <dd data-testid="stats-path" data-via-turn={v.via_turn.to_string()}>
                                { v.path.clone().unwrap_or_else(|| "not connected yet".into()) }
                            </dd>
                            <dt>{ "Round trip" }</dt>
                            <dd>{ v.rtt_ms.map_or("–".to_owned(), |ms| format!("{ms:.0} ms")) }</dd>
                            <dt>{ "Receiving" }</dt>
                            <dd data-testid="stats-in">{ kbps(v.in_kbps) }</dd>
                            <dt>{ "Sending" }</dt>
                            <dd>{ kbps(v.out_kbps) }</dd>
                            <dt>{ "Packet loss" }</dt>
                            <dd>{ v.loss_pct.map_or("–".to_owned(), |p| format!("{p:.1} %")) }</dd>
                            <dt>{ "Video" }</dt>
                            <dd>{ v.video.clone().unwrap_or_else(|| "–".into()) }</dd>
                            <dt>{ "Codecs" }</dt>
                            <dd>{ if v.codecs.is_empty() { "–".to_owned() } else { v.codecs.clone() } }</dd>
                        </dl>
                    }
                }
            };
            html! {
                <section key={c.id.clone()}>
                    <h3>{ &c.name }</h3>
                    { body }
                </section>
            }
        })
        .collect();
    html! {
        <Dialog class="stats" testid="stats" title="Connection statistics"
                close_label="Close the statistics" on_close={props.on_close.clone()}>
            if props.connections.is_empty() {
                <p>{ "No connections yet." }</p>
            }
            { rows }
        </Dialog>
    }
}
