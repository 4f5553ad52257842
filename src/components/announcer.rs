use yew::prelude::*;

use crate::state::News;

/// Props of [`Announcer`].
#[derive(Properties, PartialEq)]
pub struct AnnouncerProps {
    /// The call's latest news, oldest first.
    pub news: Vec<News>,
}

/// The call's live regions, shown to screen readers only: a polite log of
/// joins, leaves, mute and camera changes and chat messages, and an alert
/// for errors. Both are there from the start of the call (a region added
/// with its text in it is not always read); each item is added once, under
/// its own key, so it is read once.
#[component]
pub fn Announcer(props: &AnnouncerProps) -> Html {
    let items = |urgent: bool| -> Html {
        props
            .news
            .iter()
            .filter(|n| n.urgent == urgent)
            .map(|n| html! { <p key={n.seq}>{ &n.text }</p> })
            .collect()
    };
    html! {
        <div class="visually-hidden">
            <div role="log" aria-live="polite" aria-label="Call events"
                 data-testid="announcements">{ items(false) }</div>
            <div role="alert" data-testid="alerts">{ items(true) }</div>
        </div>
    }
}
