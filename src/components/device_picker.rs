use web_sys::HtmlSelectElement;
use yew::prelude::*;

use crate::components::Dialog;
use crate::media::{devices_of, Device, DeviceKind};

/// Props of [`DevicePicker`].
#[derive(Properties, PartialEq)]
pub struct DevicePickerProps {
    /// Every device the browser lists.
    pub devices: Vec<Device>,
    /// The camera in use.
    #[prop_or_default]
    pub camera: Option<String>,
    /// The microphone in use.
    #[prop_or_default]
    pub microphone: Option<String>,
    /// The chosen speaker.
    #[prop_or_default]
    pub speaker: Option<String>,
    /// The browser can choose speakers (`setSinkId`).
    pub speakers_supported: bool,
    /// The person picked a device.
    pub on_pick: Callback<(DeviceKind, String)>,
    /// Close the panel.
    pub on_close: Callback<()>,
}

/// Choosers for camera, microphone and, where the browser allows it,
/// speaker. The list is the browser's (`enumerateDevices`), refreshed on
/// `devicechange` by the caller. A [`Dialog`]; the camera's chooser takes
/// the focus when it opens.
#[component]
pub fn DevicePicker(props: &DevicePickerProps) -> Html {
    let select = |kind: DeviceKind, label: &str, testid: &str, current: &Option<String>| {
        let options = devices_of(&props.devices, kind);
        let on_pick = props.on_pick.clone();
        let onchange = Callback::from(move |e: Event| {
            if let Some(el) = e.target_dyn_into::<HtmlSelectElement>() {
                on_pick.emit((kind, el.value()));
            }
        });
        html! {
            <label>
                <span>{ label }</span>
                <select data-testid={testid.to_owned()} {onchange} disabled={options.is_empty()}
                        data-autofocus={(kind == DeviceKind::Camera).then_some("true")}>
                    { for options.into_iter().map(|(id, name)| {
                        let selected = current.as_deref() == Some(id.as_str());
                        html! { <option value={id} {selected}>{ name }</option> }
                    }) }
                </select>
            </label>
        }
    };
    html! {
        <Dialog class="devices" testid="device-picker" title="Devices"
                close_label="Close the devices" on_close={props.on_close.clone()}>
            { select(DeviceKind::Camera, "Camera", "pick-camera", &props.camera) }
            { select(DeviceKind::Microphone, "Microphone", "pick-microphone", &props.microphone) }
            if props.speakers_supported {
                { select(DeviceKind::Speaker, "Speaker", "pick-speaker", &props.speaker) }
            }
        </Dialog>
    }
}
