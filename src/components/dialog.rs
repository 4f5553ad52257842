use yew::prelude::*;

use crate::hooks::use_focus_trap;

/// Props of [`Dialog`].
#[derive(Properties, PartialEq)]
pub struct DialogProps {
    /// Its CSS class; its title's id is `{class}-title`.
    pub class: &'static str,
    /// Its `data-testid`.
    pub testid: &'static str,
    /// Its heading.
    pub title: AttrValue,
    /// What its close button says to a screen reader ("Close the chat").
    pub close_label: AttrValue,
    /// Close it (the close button and Escape).
    pub on_close: Callback<()>,
    /// What it holds.
    pub children: Html,
}

/// A panel over the call (the chat, the devices, the statistics): a
/// dialog named by its heading, with a close button. It takes the focus
/// when it opens (its `[data-autofocus]` element, else its first control),
/// keeps Tab inside, closes on Escape and gives the focus back. Not modal:
/// the call's live announcements go on being read while it is open.
#[component]
pub fn Dialog(props: &DialogProps) -> Html {
    let root = use_node_ref();
    use_focus_trap(root.clone(), props.on_close.clone());
    let title = format!("{}-title", props.class);
    html! {
        <div class={props.class} role="dialog" aria-labelledby={title.clone()}
             data-testid={props.testid} ref={root}>
            <header class="row">
                <h2 id={title}>{ &props.title }</h2>
                <button type="button" class="secondary close" aria-label={props.close_label.clone()}
                        onclick={props.on_close.reform(|_: MouseEvent| ())}>{ "×" }</button>
            </header>
            { props.children.clone() }
        </div>
    }
}
