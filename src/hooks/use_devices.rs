use yew::prelude::*;

use crate::media::Device;
use crate::web::media::{list_devices, on_device_change};

/// The cameras, microphones and speakers: listed once access is `granted`
/// (their labels are empty before), and again whenever one comes or goes.
#[hook]
pub fn use_devices(granted: bool) -> Vec<Device> {
    let devices = use_state(Vec::<Device>::new);
    {
        let devices = devices.clone();
        use_effect_with(granted, move |granted| {
            let refresh = move || {
                let devices = devices.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    if let Ok(list) = list_devices().await {
                        devices.set(list);
                    }
                });
            };
            if *granted {
                refresh();
            }
            let listener = granted.then(|| on_device_change(refresh)).flatten();
            move || drop(listener)
        });
    }
    (*devices).clone()
}
