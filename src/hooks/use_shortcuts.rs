use std::cell::RefCell;
use std::rc::Rc;

use yew::prelude::*;

use crate::controls::Shortcut;
use crate::web::dom::on_shortcut;

/// The call's keyboard shortcuts ([`crate::controls::shortcut`]) while
/// the component is mounted; `on` gets each one, and may change on every
/// render (the latest is used).
#[hook]
pub fn use_shortcuts(on: Callback<Shortcut>) {
    let latest: Rc<RefCell<Callback<Shortcut>>> = use_mut_ref(|| on.clone());
    *latest.borrow_mut() = on;
    use_effect_with((), move |()| {
        let listener = on_shortcut(move |s| latest.borrow().emit(s));
        move || drop(listener)
    });
}
