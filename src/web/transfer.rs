//! Sending and receiving one file over its own data channel (the protocol
//! is in [`crate::channel`], the checks in [`crate::transfer`]).
//!
//! The sender reads the `File` a slice ([`READ_BYTES`]) at a time and
//! sends it in [`CHUNK_BYTES`] frames, pausing while more than
//! [`HIGH_WATER_BYTES`] wait in the channel until `bufferedamountlow`; the
//! receiver hashes each frame as it comes and writes it to disk
//! ([`Spool`]: the origin private file system, or `Blob`s where there is
//! none). Neither side holds the whole file in memory. Either side can cancel; the
//! other is told, and the partial data is dropped.

use std::rc::Rc;

use futures::channel::mpsc;
use futures::StreamExt;
use wasm_bindgen_futures::JsFuture;
use web_sys::{File, RtcDataChannel};

use crate::channel::{parse, Message};
use crate::transfer::{
    Incoming, Outgoing, Rate, TransferStatus, TransferView, CHUNK_BYTES, HIGH_WATER_BYTES,
    LOW_WATER_BYTES, MAX_FILE_BYTES, READ_BYTES,
};
use crate::web::channel::{Channel, ChannelEvent};
use crate::web::spool::Spool;

/// How often progress goes to the UI.
const PROGRESS_MS: f64 = 200.0;

/// Where a transfer's views go.
pub type OnView = Rc<dyn Fn(TransferView)>;

struct Reporter {
    view: TransferView,
    rate: Rate,
    last_ms: f64,
    on_view: OnView,
}

impl Reporter {
    fn new(view: TransferView, on_view: OnView) -> Self {
        on_view(view.clone());
        Self {
            view,
            rate: Rate::default(),
            last_ms: 0.0,
            on_view,
        }
    }

    /// `done` bytes so far: told to the UI now and then, and at once when
    /// the first bytes are through (a fast transfer still shows it moving).
    fn progress(&mut self, done: u64) {
        let now = js_sys::Date::now();
        self.rate.record(now, done);
        let first = self.view.done == 0 && done > 0;
        self.view.done = done;
        if first || now - self.last_ms >= PROGRESS_MS {
            self.last_ms = now;
            self.view.rate = self.rate.bytes_per_s() as u64;
            (self.on_view)(self.view.clone());
        }
    }

    fn status(&mut self, status: TransferStatus) {
        self.view.status = status;
        (self.on_view)(self.view.clone());
    }
}

fn js_message(e: wasm_bindgen::JsValue) -> String {
    crate::web::describe(&e)
}

/// How a sender's wait ended.
enum Wait {
    Go,
    Stop(TransferStatus),
}

/// Handles what arrives while sending; `Stop` when the transfer is over.
fn on_sender_event(event: ChannelEvent) -> Option<Wait> {
    match event {
        ChannelEvent::Text(text) => match parse(&text) {
            Ok(Message::FileCancel { .. }) => {
                Some(Wait::Stop(TransferStatus::Cancelled { by_us: false }))
            }
            Ok(Message::FileReceived { ok: true }) => {
                Some(Wait::Stop(TransferStatus::Done { url: None }))
            }
            Ok(Message::FileReceived { ok: false }) => Some(Wait::Stop(TransferStatus::Failed(
                "the other side received it damaged".into(),
            ))),
            _ => None,
        },
        ChannelEvent::Closed => Some(Wait::Stop(TransferStatus::Failed(
            "the connection closed".into(),
        ))),
        ChannelEvent::LocalCancel => Some(Wait::Stop(TransferStatus::Cancelled { by_us: true })),
        ChannelEvent::BufferedLow => Some(Wait::Go),
        ChannelEvent::Open | ChannelEvent::Binary(_) => None,
    }
}

/// Waits for the next event that matters.
async fn wait(events: &mut mpsc::UnboundedReceiver<ChannelEvent>) -> Wait {
    loop {
        let Some(event) = events.next().await else {
            return Wait::Stop(TransferStatus::Failed("the call ended".into()));
        };
        if let Some(w) = on_sender_event(event) {
            return w;
        }
    }
}

/// Sends `file` as transfer `id` to `peer` on `pc`; `events` also gets
/// [`ChannelEvent::LocalCancel`] from the call when the person cancels.
pub async fn send(
    channel: Channel,
    mut events: mpsc::UnboundedReceiver<ChannelEvent>,
    file: File,
    id: String,
    peer: String,
    on_view: OnView,
) {
    let size = file.size() as u64;
    let mut report = Reporter::new(
        TransferView::start(&id, &peer, &file.name(), size, true),
        on_view,
    );
    let end = send_all(&channel, &mut events, &file, &id, &mut report).await;
    if let TransferStatus::Cancelled { by_us: true } = end {
        channel.send(&Message::FileCancel {
            reason: "cancelled".into(),
        });
    }
    report.status(end);
    channel.close();
}

async fn send_all(
    channel: &Channel,
    events: &mut mpsc::UnboundedReceiver<ChannelEvent>,
    file: &File,
    id: &str,
    report: &mut Reporter,
) -> TransferStatus {
    let size = report.view.size;
    if size > MAX_FILE_BYTES {
        return TransferStatus::Failed(crate::transfer::TransferError::TooBig(size).to_string());
    }
    let dc: &RtcDataChannel = channel.raw();
    dc.set_buffered_amount_low_threshold(LOW_WATER_BYTES);
    while !channel.is_open() {
        match events.next().await {
            Some(ChannelEvent::Open) => break,
            Some(event) => {
                if let Some(Wait::Stop(end)) = on_sender_event(event) {
                    return end;
                }
            }
            None => return TransferStatus::Failed("the call ended".into()),
        }
    }
    channel.send(&Message::FileOffer {
        id: id.to_owned(),
        name: report.view.name.clone(),
        size,
        mime: file.type_(),
    });
    let mut hash = Outgoing::default();
    while hash.sent() < size {
        let start = hash.sent();
        let stop = (start + READ_BYTES).min(size);
        let slice = match file.slice_with_f64_and_f64(start as f64, stop as f64) {
            Ok(slice) => slice,
            Err(e) => return TransferStatus::Failed(js_message(e)),
        };
        let bytes = match JsFuture::from(slice.array_buffer()).await {
            Ok(buf) => js_sys::Uint8Array::new(&buf),
            Err(e) => {
                return TransferStatus::Failed(format!("cannot read the file: {}", js_message(e)))
            }
        };
        if bytes.length() as u64 != stop - start {
            return TransferStatus::Failed("the file changed while it was being sent".into());
        }
        hash.push(&bytes.to_vec());
        let mut at = 0;
        while at < bytes.length() {
            let next = (at + CHUNK_BYTES as u32).min(bytes.length());
            // What came in meanwhile (a cancel) first.
            while let Ok(event) = events.try_recv() {
                if let Some(Wait::Stop(end)) = on_sender_event(event) {
                    return end;
                }
            }
            if let Err(e) = dc.send_with_array_buffer_view(&bytes.subarray(at, next)) {
                return TransferStatus::Failed(format!("sending failed: {}", js_message(e)));
            }
            at = next;
            while dc.buffered_amount() > HIGH_WATER_BYTES {
                if let Wait::Stop(end) = wait(events).await {
                    return end;
                }
            }
            // Queued bytes include the offer's text: never below zero.
            report.progress((start + at as u64).saturating_sub(dc.buffered_amount() as u64));
        }
    }
    channel.send(&Message::FileEnd {
        sha256: hash.finish(),
    });
    // Everything is queued; the receiver's check ends it.
    report.view.done = size;
    report.status(TransferStatus::Verifying);
    loop {
        if let Wait::Stop(end) = wait(events).await {
            return end;
        }
    }
}

/// Receives the file on `channel` (opened by `peer`), keeps it (on disk
/// where the browser allows, see [`Spool`], under `call`), checks it, and
/// offers it for download; `events` also gets
/// [`ChannelEvent::LocalCancel`] when the person cancels.
pub async fn receive(
    channel: Channel,
    mut events: mpsc::UnboundedReceiver<ChannelEvent>,
    id: String,
    peer: String,
    call: String,
    on_view: OnView,
) {
    // The offer comes first.
    let offer = loop {
        match events.next().await {
            Some(ChannelEvent::Text(text)) => match parse(&text) {
                Ok(Message::FileOffer {
                    id: offered,
                    name,
                    size,
                    ..
                }) if offered == id => break Some((name, size)),
                Ok(Message::FileCancel { .. }) => break None,
                Ok(_) => {}
                Err(e) => web_sys::console::warn_1(&format!("peercall: file channel: {e}").into()),
            },
            Some(ChannelEvent::Closed | ChannelEvent::LocalCancel) | None => break None,
            Some(_) => {}
        }
    };
    let Some((name, size)) = offer else {
        channel.close();
        return;
    };
    let mut report = Reporter::new(TransferView::start(&id, &peer, &name, size, false), on_view);
    let end = match Incoming::new(size) {
        Ok(incoming) => {
            let spool = Spool::open(&call, &id).await;
            receive_all(&mut events, incoming, spool, &mut report).await
        }
        Err(e) => TransferStatus::Failed(e.to_string()),
    };
    match &end {
        TransferStatus::Cancelled { by_us: true } => {
            channel.send(&Message::FileCancel {
                reason: "cancelled".into(),
            });
        }
        TransferStatus::Done { .. } => {
            channel.send(&Message::FileReceived { ok: true });
        }
        TransferStatus::Failed(_) => {
            channel.send(&Message::FileReceived { ok: false });
        }
        _ => {}
    }
    report.status(end);
    // The sender closes once it has our answer; closing here too is
    // harmless and frees the channel if it went away.
    if !matches!(report.view.status, TransferStatus::Done { .. }) {
        channel.close();
    }
}

async fn receive_all(
    events: &mut mpsc::UnboundedReceiver<ChannelEvent>,
    mut incoming: Incoming,
    mut spool: Spool,
    report: &mut Reporter,
) -> TransferStatus {
    let end = loop {
        let Some(event) = events.next().await else {
            break TransferStatus::Failed("the call ended".into());
        };
        match event {
            ChannelEvent::Binary(buf) => {
                let bytes = js_sys::Uint8Array::new(&buf);
                if let Err(e) = incoming.push(&bytes.to_vec()) {
                    break TransferStatus::Failed(e.to_string());
                }
                if let Err(e) = spool.push(&bytes).await {
                    break TransferStatus::Failed(e);
                }
                report.progress(incoming.received());
            }
            ChannelEvent::Text(text) => match parse(&text) {
                Ok(Message::FileEnd { sha256 }) => {
                    report.progress(incoming.received());
                    report.status(TransferStatus::Verifying);
                    if let Err(e) = incoming.finish(&sha256) {
                        break TransferStatus::Failed(e.to_string());
                    }
                    return match spool.finish().await {
                        Ok(url) => TransferStatus::Done { url: Some(url) },
                        Err(e) => TransferStatus::Failed(e),
                    };
                }
                Ok(Message::FileCancel { .. }) => break TransferStatus::Cancelled { by_us: false },
                Ok(_) => {}
                Err(e) => web_sys::console::warn_1(&format!("peercall: file channel: {e}").into()),
            },
            ChannelEvent::Closed => break TransferStatus::Failed("the connection closed".into()),
            ChannelEvent::LocalCancel => break TransferStatus::Cancelled { by_us: true },
            ChannelEvent::Open | ChannelEvent::BufferedLow => {}
        }
    };
    // Whatever arrived is of no use now.
    spool.discard().await;
    end
}
