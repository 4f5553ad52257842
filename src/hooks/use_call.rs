use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use web_sys::{MediaStream, MediaStreamTrack, RtcPeerConnection};
use yew::prelude::*;

use crate::config::CallConfig;
use crate::controls::Sending;
use crate::state::{CallAction, CallState};
use crate::web::call::{Call, CallUpdate};

/// Everything the call screen shows, in one reducer: the pure
/// [`CallState`], what we send, and the media handles that cannot be in a
/// pure state (kept in step with it here: a peer that leaves takes its
/// stream and connection along).
#[derive(Clone, Default, PartialEq)]
pub struct Screen {
    /// The people, the chat, the notices.
    pub state: CallState,
    /// Mute, camera, screen.
    pub sending: Sending,
    /// Remote streams by peer id.
    pub streams: BTreeMap<String, MediaStream>,
    /// Peer connections by peer id (for the stats and the active speaker).
    pub connections: BTreeMap<String, RtcPeerConnection>,
    /// What the phone call receives.
    pub phone_stream: Option<MediaStream>,
    /// The SFU connection we receive on, and whose audio each mid is.
    pub sfu: Option<(RtcPeerConnection, Vec<(String, String)>)>,
    /// One more for every change: how the screen's parts tell a new
    /// screen from the one they drew, without comparing it all.
    generation: u64,
}

/// What changes the call screen.
pub enum ScreenAction {
    /// From the call.
    Call(CallAction),
    /// A peer's media arrived.
    Stream(String, MediaStream),
    /// A connection exists.
    Connection(String, RtcPeerConnection),
    /// The phone call's media arrived, or went.
    PhoneStream(Option<MediaStream>),
    /// The SFU's receiving connection, or none.
    Sfu(Option<(RtcPeerConnection, Vec<(String, String)>)>),
    /// The microphone on or off.
    ToggleMic,
    /// The camera on or off.
    ToggleCamera,
    /// Sharing a screen or not.
    Sharing(bool),
}

impl Reducible for Screen {
    type Action = ScreenAction;

    fn reduce(self: Rc<Self>, action: ScreenAction) -> Rc<Self> {
        let mut s = (*self).clone();
        s.generation += 1;
        match action {
            ScreenAction::Call(action) => {
                if let CallAction::Left { id, .. } = &action {
                    s.streams.remove(id);
                    s.connections.remove(id);
                }
                s.state = s.state.apply(action);
            }
            ScreenAction::Stream(id, stream) => {
                s.streams.insert(id, stream);
            }
            ScreenAction::Connection(id, pc) => {
                s.connections.insert(id, pc);
            }
            ScreenAction::PhoneStream(stream) => s.phone_stream = stream,
            ScreenAction::Sfu(sfu) => s.sfu = sfu,
            ScreenAction::ToggleMic => s.sending.mic = !s.sending.mic,
            ScreenAction::ToggleCamera => s.sending.camera = !s.sending.camera,
            ScreenAction::Sharing(on) => s.sending.screen = on,
        }
        for said in Sending::news(self.sending, s.sending) {
            s.state = std::mem::take(&mut s.state).apply(CallAction::Announce(said.to_owned()));
        }
        Rc::new(s)
    }
}

/// The running call and its screen, shared with the call screen's
/// components through a context ([`use_call_context`]).
#[derive(Clone)]
pub struct CallHandle {
    screen: UseReducerHandle<Screen>,
    /// The screen's generation when this handle was made (its render).
    generation: u64,
    call: Rc<RefCell<Option<Call>>>,
}

impl PartialEq for CallHandle {
    /// The same screen (by the generation it was made at: cheap, for the
    /// context's every render; the handle itself always reads the latest
    /// screen) of the same call.
    fn eq(&self, other: &Self) -> bool {
        self.generation == other.generation && Rc::ptr_eq(&self.call, &other.call)
    }
}

impl std::ops::Deref for CallHandle {
    type Target = Screen;
    fn deref(&self) -> &Screen {
        &self.screen
    }
}

impl CallHandle {
    /// Changes the screen.
    pub fn dispatch(&self, action: ScreenAction) {
        self.screen.dispatch(action);
    }

    /// Tells the person something about the whole call.
    pub fn warn(&self, message: String) {
        self.dispatch(ScreenAction::Call(CallAction::Warning(message)));
    }

    fn with(&self, f: impl FnOnce(&Call)) {
        if let Some(call) = self.call.borrow().as_ref() {
            f(call);
        }
    }

    /// Our camera and microphone are on: send them.
    pub fn set_local(&self, stream: MediaStream) {
        self.with(|c| c.set_local(stream));
    }

    /// A device was switched: `stream` has the new track; `replaced` are
    /// stopped once nothing sends them (at once if the call is over).
    pub fn switch_local(&self, stream: MediaStream, replaced: Vec<MediaStreamTrack>) {
        match self.call.borrow().as_ref() {
            Some(call) => call.switch_local(stream, replaced),
            None => replaced.iter().for_each(MediaStreamTrack::stop),
        }
    }

    /// The shared screen's track, or `None`.
    pub fn set_screen(&self, track: Option<MediaStreamTrack>) {
        self.with(|c| c.set_screen(track));
    }

    /// Sends a chat message to everyone, or only to `to`.
    pub fn chat(&self, text: String, to: Option<String>) {
        self.with(|c| c.chat(text, to));
    }

    /// Sends files to everyone connected, or only to `to`.
    pub fn send_files(&self, files: Vec<web_sys::File>, to: Option<String>) {
        self.with(|c| {
            for file in files {
                c.send_file(file, to.clone());
            }
        });
    }

    /// Cancels transfer `id` with `peer`.
    pub fn cancel_transfer(&self, id: String, peer: String) {
        self.with(|c| c.cancel_transfer(id, peer));
    }

    /// Calls a phone through the relay.
    pub fn phone_dial(&self, address: String) {
        self.with(|c| c.phone_dial(address));
    }

    /// Hangs the phone call up.
    pub fn phone_hang_up(&self) {
        self.with(Call::phone_hang_up);
    }

    /// Closes the phone call's screen.
    pub fn phone_dismiss(&self) {
        self.with(Call::phone_dismiss);
    }

    /// Sends keypad digits.
    pub fn phone_digits(&self, digits: String) {
        self.with(|c| c.phone_digits(digits));
    }

    /// Says goodbye and closes every connection.
    pub fn hang_up(&self) {
        if let Some(mut call) = self.call.borrow_mut().take() {
            call.hang_up();
        }
    }
}

/// Starts the call in `room` at once (it joins, negotiates and connects
/// while the camera is still starting) and ends it when the component
/// goes; what we send follows the screen's [`Screen::sending`].
#[hook]
pub fn use_call(
    room: &str,
    name: Option<String>,
    config: &CallConfig,
    relays: &[String],
) -> CallHandle {
    let screen = use_reducer(Screen::default);
    let call: Rc<RefCell<Option<Call>>> = use_mut_ref(|| None);
    {
        let (dispatch, call) = (screen.dispatcher(), call.clone());
        let (room, config, relays) = (room.to_owned(), config.clone(), relays.to_vec());
        use_effect_with((), move |()| {
            let on_update = move |update: CallUpdate| {
                dispatch.dispatch(match update {
                    CallUpdate::RemoteStream { id, stream } => ScreenAction::Stream(id, stream),
                    CallUpdate::Connection { id, pc } => ScreenAction::Connection(id, pc),
                    CallUpdate::State(action) => ScreenAction::Call(action),
                    CallUpdate::PhoneStream(stream) => ScreenAction::PhoneStream(stream),
                    CallUpdate::SfuReceiving(sfu) => ScreenAction::Sfu(sfu),
                })
            };
            match Call::start(config, relays, room, name, on_update) {
                Ok(c) => *call.borrow_mut() = Some(c),
                Err(e) => web_sys::console::error_1(&e.to_string().into()),
            }
            // Dropping the call sends the goodbye and closes every
            // connection (and lets go of received files).
            move || drop(call.borrow_mut().take())
        });
    }
    {
        let call = call.clone();
        use_effect_with(screen.sending, move |sending| {
            if let Some(call) = call.borrow().as_ref() {
                call.set_sending(*sending);
            }
        });
    }
    let generation = screen.generation;
    CallHandle {
        screen,
        generation,
        call,
    }
}

/// The call of the call screen this component is in.
#[hook]
pub fn use_call_context() -> CallHandle {
    use_context::<CallHandle>().expect("inside the call screen's ContextProvider<CallHandle>")
}
