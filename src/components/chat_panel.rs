use web_sys::{HtmlInputElement, HtmlTextAreaElement};
use yew::prelude::*;

use crate::components::Dialog;
use crate::state::ChatLine;
use crate::transfer::{TransferStatus, TransferView};

/// Props of [`ChatPanel`].
#[derive(Properties, PartialEq)]
pub struct ChatPanelProps {
    /// The chat, oldest first.
    pub lines: Vec<ChatLine>,
    /// File transfers, oldest first.
    pub transfers: Vec<TransferView>,
    /// Everyone else in the call: (peer id, name), to write to one of them.
    pub people: Vec<(String, String)>,
    /// Send a message, to everyone or (`Some(peer id)`) to one person.
    pub on_send: Callback<(String, Option<String>)>,
    /// Send files, to everyone or to one person.
    pub on_files: Callback<(Vec<web_sys::File>, Option<String>)>,
    /// Cancel transfer (id, peer).
    pub on_cancel: Callback<(String, String)>,
    /// Close the panel.
    pub on_close: Callback<()>,
}

/// "14:05", in the person's own time zone.
fn time_of(ms: u64) -> String {
    let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64));
    format!("{:02}:{:02}", d.get_hours(), d.get_minutes())
}

/// The chat and file transfers: messages with names and times, a box to
/// write in (Enter sends, Shift+Enter is a new line), a file button, and
/// each transfer with its progress, rate, cancel and download. A
/// [`Dialog`]; the message box takes the focus when it opens.
#[component]
pub fn ChatPanel(props: &ChatPanelProps) -> Html {
    let text = use_node_ref();
    let list = use_node_ref();
    // Whom to write to: everyone (`None`) or one person, by peer id. A
    // person who left falls back to everyone.
    let to = use_state(|| None::<String>);
    let recipient = (*to)
        .clone()
        .filter(|id| props.people.iter().any(|(p, _)| p == id));
    let name_of = |id: &str| {
        props
            .people
            .iter()
            .find(|(p, _)| p == id)
            .map(|(_, n)| n.clone())
    };
    {
        // Keep the newest message in view.
        let list = list.clone();
        use_effect_with((props.lines.len(), props.transfers.len()), move |_| {
            if let Some(el) = list.cast::<web_sys::Element>() {
                el.set_scroll_top(el.scroll_height());
            }
        });
    }
    let send = {
        let (text, on_send, recipient) = (text.clone(), props.on_send.clone(), recipient.clone());
        move || {
            if let Some(el) = text.cast::<HtmlTextAreaElement>() {
                if !el.value().trim().is_empty() {
                    on_send.emit((el.value(), recipient.clone()));
                    el.set_value("");
                }
            }
        }
    };
    let pick = {
        let to = to.clone();
        Callback::from(move |e: Event| {
            if let Some(select) = e.target_dyn_into::<web_sys::HtmlSelectElement>() {
                let v = select.value();
                to.set((!v.is_empty()).then_some(v));
            }
        })
    };
    let onsubmit = {
        let send = send.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            send();
        })
    };
    let onkeydown = Callback::from(move |e: KeyboardEvent| {
        if e.key() == "Enter" && !e.shift_key() && !e.is_composing() {
            e.prevent_default();
            send();
        }
    });
    let onchange = {
        let (on_files, recipient) = (props.on_files.clone(), recipient.clone());
        Callback::from(move |e: Event| {
            if let Some(input) = e.target_dyn_into::<HtmlInputElement>() {
                if let Some(list) = input.files() {
                    let files: Vec<web_sys::File> =
                        (0..list.length()).filter_map(|i| list.get(i)).collect();
                    on_files.emit((files, recipient.clone()));
                }
                input.set_value("");
            }
        })
    };
    let lines: Html = props
        .lines
        .iter()
        .map(|line| {
            html! {
                <li class={classes!("message", line.from.is_none().then_some("mine"),
                                    line.private_with.is_some().then_some("private"))}
                    data-testid="chat-message" data-private={line.private_with.is_some().to_string()}>
                    <span class="who" data-testid="chat-name">{ &line.name }</span>
                    if let Some(with) = &line.private_with {
                        <span class="small private-with" data-testid="chat-private">
                            { if line.from.is_none() { format!("to {with} only") } else { "to you only".to_owned() } }
                        </span>
                    }
                    <time class="when">{ time_of(line.sent_at) }</time>
                    <p class="text" data-testid="chat-text">{ &line.text }</p>
                </li>
            }
        })
        .collect();
    let transfers: Html = props
        .transfers
        .iter()
        .map(|t| {
            let cancel = {
                let (on_cancel, key) = (props.on_cancel.clone(), (t.id.clone(), t.peer.clone()));
                Callback::from(move |_: MouseEvent| on_cancel.emit(key.clone()))
            };
            let state = match &t.status {
                TransferStatus::Active => "active",
                TransferStatus::Verifying => "verifying",
                TransferStatus::Done { .. } => "done",
                TransferStatus::Cancelled { .. } => "cancelled",
                TransferStatus::Failed(_) => "failed",
            };
            html! {
                <li class={classes!("transfer", state)} data-testid="transfer"
                    data-state={state} data-outgoing={t.outgoing.to_string()}
                    data-size={t.size.to_string()} data-done={t.done.to_string()}>
                    <span class="file-name">{ if t.outgoing { "↑ " } else { "↓ " } }{ &t.name }</span>
                    if let Some(who) = name_of(&t.peer).filter(|_| props.people.len() > 1) {
                        <span class="small" data-testid="transfer-peer">
                            { if t.outgoing { format!("to {who}") } else { format!("from {who}") } }
                        </span>
                    }
                    <progress max="100" value={t.percent().to_string()}
                              aria-label={format!("{} progress", t.name)} />
                    <span class="small" data-testid="transfer-summary">{ t.summary() }</span>
                    if !t.status.is_over() {
                        <button type="button" class="secondary" data-testid="transfer-cancel"
                                onclick={cancel}>{ "Cancel" }</button>
                    }
                    if let TransferStatus::Done { url: Some(url) } = &t.status {
                        <a class="button" href={url.clone()} download={t.name.clone()}
                           data-testid="transfer-download">{ "Save" }</a>
                    }
                </li>
            }
        })
        .collect();
    html! {
        <Dialog class="chat" testid="chat-panel" title="Chat" close_label="Close the chat"
                on_close={props.on_close.clone()}>
            // Not a live region: the call's announcer reads new messages,
            // open or closed.
            <ol class="messages" ref={list} aria-label="Messages">
                { lines }
                { transfers }
            </ol>
            <form class="compose" {onsubmit}>
                if props.people.len() > 1 {
                    <label class="row small">
                        { "To " }
                        <select data-testid="chat-to" aria-label="Send to" onchange={pick}>
                            <option value="" selected={recipient.is_none()}>{ "Everyone" }</option>
                            { for props.people.iter().map(|(id, name)| html! {
                                <option value={id.clone()} selected={recipient.as_deref() == Some(id)}>
                                    { name }
                                </option>
                            }) }
                        </select>
                    </label>
                }
                <textarea ref={text} rows="2" maxlength="4000"
                          placeholder={match recipient.as_deref().and_then(name_of) {
                              Some(name) => format!("Message {name} only"),
                              None => "Message everyone".to_owned(),
                          }}
                          aria-label="Message" data-testid="chat-input" data-autofocus="true"
                          {onkeydown} />
                <div class="row">
                    <label class="button secondary" title="Send a file">
                        { "File…" }
                        <input type="file" multiple=true class="visually-hidden"
                               data-testid="file-input" {onchange} />
                    </label>
                    <button type="submit" data-testid="chat-send">{ "Send" }</button>
                </div>
            </form>
        </Dialog>
    }
}
