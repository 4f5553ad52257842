use web_sys::MediaStream;
use yew::prelude::*;

use crate::hooks::CallHandle;
use crate::media::{Device, DeviceKind};
use crate::web::media::{
    can_choose_speaker, device_of, list_devices, on_device_change, open_device, swap_track,
};

/// The devices and what the call uses of them.
#[derive(Clone, PartialEq)]
pub struct Devices {
    /// Cameras, microphones and speakers.
    pub list: Vec<Device>,
    /// The camera in use.
    pub camera: Option<String>,
    /// The microphone in use.
    pub microphone: Option<String>,
    /// The chosen speaker (`setSinkId`), if any.
    pub speaker: Option<String>,
    /// The browser can choose a speaker.
    pub speakers_supported: bool,
    /// Use this device instead: the camera or microphone is swapped into
    /// the call (no renegotiation), a speaker is chosen for every tile.
    pub pick: Callback<(DeviceKind, String)>,
}

/// The cameras, microphones and speakers, listed once `live` media is on
/// (their labels are empty before) and again whenever one comes or goes;
/// picking one switches the call to it.
#[hook]
pub fn use_devices(call: &CallHandle, live: Option<MediaStream>) -> Devices {
    let list = use_state(Vec::<Device>::new);
    let speaker = use_state(|| None::<String>);
    {
        let list = list.clone();
        use_effect_with(live.is_some(), move |granted| {
            let refresh = move || {
                let list = list.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    if let Ok(devices) = list_devices().await {
                        list.set(devices);
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
    let (camera, microphone) = match &live {
        Some(s) => (
            device_of(s, DeviceKind::Camera),
            device_of(s, DeviceKind::Microphone),
        ),
        None => (None, None),
    };
    let pick = {
        let (call, speaker) = (call.clone(), speaker.clone());
        Callback::from(move |(kind, id): (DeviceKind, String)| {
            if kind == DeviceKind::Speaker {
                speaker.set(Some(id));
                return;
            }
            let Some(local) = live.clone() else {
                return;
            };
            let call = call.clone();
            wasm_bindgen_futures::spawn_local(async move {
                match open_device(kind, &id).await {
                    Ok(track) => {
                        let replaced = swap_track(&local, &track);
                        call.switch_local(local, replaced);
                    }
                    Err(e) => call.warn(format!("Could not switch: {}", e.title())),
                }
            });
        })
    };
    Devices {
        list: (*list).clone(),
        camera,
        microphone,
        speaker: (*speaker).clone(),
        speakers_supported: can_choose_speaker(),
        pick,
    }
}
