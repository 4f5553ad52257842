use std::cell::RefCell;
use std::rc::Rc;

use yew::prelude::*;

use crate::hooks::{CallHandle, ScreenAction};
use crate::web::media::{share_screen, SharedScreen};

/// Sharing a screen in the call: the returned callback starts sharing (the
/// browser's picker) or stops it; the browser's own "Stop sharing" stops
/// it too. The screen is let go when the component goes.
#[hook]
pub fn use_screen_share(call: &CallHandle) -> Callback<()> {
    let shared: Rc<RefCell<Option<SharedScreen>>> = use_mut_ref(|| None);
    let stop = {
        let (call, shared) = (call.clone(), shared.clone());
        Callback::from(move |()| {
            shared.borrow_mut().take();
            call.set_screen(None);
            call.dispatch(ScreenAction::Sharing(false));
        })
    };
    {
        let shared = shared.clone();
        use_effect_with((), move |()| move || drop(shared.borrow_mut().take()));
    }
    let call = call.clone();
    Callback::from(move |()| {
        if shared.borrow().is_some() {
            stop.emit(());
            return;
        }
        let (call, shared, stop) = (call.clone(), shared.clone(), stop.clone());
        wasm_bindgen_futures::spawn_local(async move {
            match share_screen(move || stop.emit(())).await {
                Ok(Some(screen)) => {
                    call.set_screen(Some(Clone::clone(&screen.track)));
                    *shared.borrow_mut() = Some(screen);
                    call.dispatch(ScreenAction::Sharing(true));
                }
                // The person closed the picker: nothing to say.
                Ok(None) => {}
                Err(e) => call.warn(format!("Could not share the screen: {}", e.title())),
            }
        });
    })
}
