//! `RTCDataChannel`
//! (<https://developer.mozilla.org/en-US/docs/Web/API/RTCDataChannel>),
//! thinly: its events as [`ChannelEvent`]s through listeners attached at
//! once (so no message is missed between the `datachannel` event and the
//! code that handles it), and JSON messages of [`crate::channel`] out.

use futures::channel::mpsc;
use gloo_events::EventListener;
use wasm_bindgen::JsCast;
use web_sys::{MessageEvent, RtcDataChannel, RtcDataChannelInit, RtcDataChannelType};

use crate::channel::{encode, Message, CONTROL_ID, CONTROL_LABEL, FILE_LABEL_PREFIX};

/// What a data channel reports (plus [`ChannelEvent::LocalCancel`], which
/// the call sends a transfer to wake it).
#[derive(Debug)]
pub enum ChannelEvent {
    /// `open`.
    Open,
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(js_sys::ArrayBuffer),
    /// `bufferedamountlow`: the send queue drained below the threshold.
    BufferedLow,
    /// `close` (or `error`, which closes it).
    Closed,
    /// The person cancelled the transfer on this channel.
    LocalCancel,
}

/// A channel's events, queued; `tx` lets others add to them
/// ([`ChannelEvent::LocalCancel`]).
#[derive(Debug)]
pub struct Queue {
    /// Adds an event.
    pub tx: mpsc::UnboundedSender<ChannelEvent>,
    /// The events.
    pub rx: mpsc::UnboundedReceiver<ChannelEvent>,
}

/// A data channel and its listeners (removed on drop; the channel stays
/// open until [`Channel::close`] or its connection closes).
pub struct Channel {
    dc: RtcDataChannel,
    _listeners: [EventListener; 5],
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Channel({:?})", self.dc.label())
    }
}

impl Channel {
    /// The control channel of `pc`: negotiated, id [`CONTROL_ID`], so both
    /// sides make it the same way and it is in the first offer.
    pub fn control(pc: &web_sys::RtcPeerConnection, on: impl Fn(ChannelEvent) + 'static) -> Self {
        let init = RtcDataChannelInit::new();
        init.set_negotiated(true);
        init.set_id(CONTROL_ID);
        Self::wrap(
            pc.create_data_channel_with_data_channel_dict(CONTROL_LABEL, &init),
            on,
        )
    }

    /// A new channel for sending file `id` (reliable, ordered); the other
    /// side sees it in a `datachannel` event.
    pub fn file(pc: &web_sys::RtcPeerConnection, id: &str) -> (Self, Queue) {
        let dc = pc.create_data_channel(&format!("{FILE_LABEL_PREFIX}{id}"));
        Self::queued(dc)
    }

    /// Listens to `dc`, its events queued.
    pub fn queued(dc: RtcDataChannel) -> (Self, Queue) {
        let (tx, rx) = mpsc::unbounded();
        let sender = tx.clone();
        let channel = Self::wrap(dc, move |e| {
            let _ = sender.unbounded_send(e);
        });
        (channel, Queue { tx, rx })
    }

    /// Listens to `dc`: `on` gets its events.
    pub fn wrap(dc: RtcDataChannel, on: impl Fn(ChannelEvent) + 'static) -> Self {
        dc.set_binary_type(RtcDataChannelType::Arraybuffer);
        let on = std::rc::Rc::new(on);
        let listen = |name: &'static str, f: Box<dyn Fn(&web_sys::Event)>| {
            EventListener::new(&dc, name, move |e| f(e))
        };
        let (a, b, c, d, e) = (on.clone(), on.clone(), on.clone(), on.clone(), on);
        let listeners = [
            listen("open", Box::new(move |_| a(ChannelEvent::Open))),
            listen(
                "message",
                Box::new(move |e| {
                    let Some(e) = e.dyn_ref::<MessageEvent>() else {
                        return;
                    };
                    let data = e.data();
                    if let Some(text) = data.as_string() {
                        b(ChannelEvent::Text(text));
                    } else if let Ok(buf) = data.dyn_into::<js_sys::ArrayBuffer>() {
                        b(ChannelEvent::Binary(buf));
                    }
                }),
            ),
            listen(
                "bufferedamountlow",
                Box::new(move |_| c(ChannelEvent::BufferedLow)),
            ),
            listen("close", Box::new(move |_| d(ChannelEvent::Closed))),
            listen("error", Box::new(move |_| e(ChannelEvent::Closed))),
        ];
        Self {
            dc,
            _listeners: listeners,
        }
    }

    /// The channel.
    pub fn raw(&self) -> &RtcDataChannel {
        &self.dc
    }

    /// Whether it is open.
    pub fn is_open(&self) -> bool {
        self.dc.ready_state() == web_sys::RtcDataChannelState::Open
    }

    /// Sends `message` if the channel is open; says whether it went.
    pub fn send(&self, message: &Message) -> bool {
        self.is_open() && self.dc.send_with_str(&encode(message)).is_ok()
    }

    /// Closes it.
    pub fn close(&self) {
        self.dc.close();
    }
}
