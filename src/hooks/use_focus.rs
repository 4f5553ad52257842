use std::cell::RefCell;
use std::rc::Rc;

use yew::prelude::*;

use crate::web::dom::{focused, trap_focus};

/// A panel that holds the focus while it is mounted (a dialog): the focus
/// moves in when it opens, Tab goes round inside it, Escape calls
/// `on_escape` (which closes it), and the focus goes back to where it was
/// (the button that opened it) when it closes.
#[hook]
pub fn use_focus_trap(root: NodeRef, on_escape: Callback<()>) {
    let latest: Rc<RefCell<Callback<()>>> = use_mut_ref(|| on_escape.clone());
    *latest.borrow_mut() = on_escape;
    use_effect_with((), move |()| {
        let opener = focused();
        let listener = root
            .cast::<web_sys::Element>()
            .map(|el| trap_focus(&el, move || latest.borrow().emit(())));
        move || {
            drop(listener);
            if let Some(el) = opener.filter(|el| el.is_connected()) {
                let _ = el.focus();
            }
        }
    });
}

/// Moves the focus to `node` when the component mounts: a new screen's
/// heading (with `tabindex="-1"`), so a screen reader reads where the
/// person is now and Tab goes on from there.
#[hook]
pub fn use_focus_on_mount(node: NodeRef) {
    use_effect_with((), move |()| {
        if let Some(el) = node.cast::<web_sys::HtmlElement>() {
            let _ = el.focus();
        }
    });
}
