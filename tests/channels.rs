//! Browser tests of the data-channel glue: two real peer connections in
//! one page (headless Chromium and Firefox), connected to each other
//! directly, exchanging control messages and files through
//! `web::channel` and `web::transfer`.
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::rc::Rc;

use futures::channel::mpsc;
use futures::{FutureExt, StreamExt};
use gloo_timers::future::TimeoutFuture;
use peercall::channel::Message;
use peercall::transfer::{TransferStatus, TransferView};
use peercall::web::channel::ChannelEvent;
use peercall::web::peer::{Peer, PeerEvent};
use peercall::web::transfer;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

type Events = mpsc::UnboundedReceiver<PeerEvent>;

fn peer() -> (Peer, Events) {
    let (tx, rx) = mpsc::unbounded();
    let peer = Peer::new(&[], false, move |e| {
        let _ = tx.unbounded_send(e);
    })
    .expect("a peer connection");
    (peer, rx)
}

/// Two connected peers with their control channels, and their events
/// (ICE candidates already handled).
async fn connected_pair() -> (Rc<Peer>, Rc<Peer>, Events, Events) {
    let (mut a, a_events) = peer();
    let (mut b, b_events) = peer();
    a.open_control();
    let (_, offer) = a.set_local().await.expect("offer");
    b.set_remote(true, &offer).await.expect("remote offer");
    b.open_control();
    let (_, answer) = b.set_local().await.expect("answer");
    a.set_remote(false, &answer).await.expect("remote answer");
    let (a, b) = (Rc::new(a), Rc::new(b));
    // Candidates go across; everything else comes out.
    let a_rest = pump(a_events, b.clone());
    let b_rest = pump(b_events, a.clone());
    (a, b, a_rest, b_rest)
}

fn pump(mut events: Events, other: Rc<Peer>) -> Events {
    let (tx, rx) = mpsc::unbounded();
    wasm_bindgen_futures::spawn_local(async move {
        while let Some(event) = events.next().await {
            match event {
                PeerEvent::Candidate(Some(c)) => {
                    let _ = other.add_candidate(&c).await;
                }
                PeerEvent::Candidate(None) | PeerEvent::NegotiationNeeded => {}
                other => {
                    let _ = tx.unbounded_send(other);
                }
            }
        }
    });
    rx
}

/// The next event `want` accepts, within 10 s.
async fn next<T>(events: &mut Events, what: &str, want: impl Fn(PeerEvent) -> Option<T>) -> T {
    let mut timeout = TimeoutFuture::new(10_000).fuse();
    loop {
        futures::select! {
            e = events.next() => match e.and_then(&want) {
                Some(t) => return t,
                None => continue,
            },
            _ = timeout => panic!("timed out waiting for {what}"),
        }
    }
}

async fn control_open(events: &mut Events) {
    next(events, "the control channel to open", |e| {
        matches!(e, PeerEvent::Control(ChannelEvent::Open)).then_some(())
    })
    .await
}

#[wasm_bindgen_test]
async fn control_messages_cross_both_ways() {
    let (a, b, mut a_events, mut b_events) = connected_pair().await;
    control_open(&mut a_events).await;
    control_open(&mut b_events).await;
    let chat = Message::Chat {
        id: "m1".into(),
        text: "hello".into(),
        sent_at: 1,
        private: true,
    };
    assert!(a.send_message(&chat));
    let text = next(&mut b_events, "a chat message", |e| match e {
        PeerEvent::Control(ChannelEvent::Text(t)) => Some(t),
        _ => None,
    })
    .await;
    assert_eq!(peercall::channel::parse(&text), Ok(chat));
    assert!(b.send_message(&Message::Media {
        audio: false,
        video: true,
        screen: false
    }));
    let text = next(&mut a_events, "a media message", |e| match e {
        PeerEvent::Control(ChannelEvent::Text(t)) => Some(t),
        _ => None,
    })
    .await;
    assert!(text.contains(r#""audio":false"#), "{text}");
}

/// A `File` of `len` bytes, byte i being i mod 251.
fn file(name: &str, len: usize) -> (web_sys::File, Vec<u8>) {
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let parts = js_sys::Array::of1(&js_sys::Uint8Array::from(&data[..]));
    let file = web_sys::File::new_with_u8_array_sequence(&parts, name).expect("a File");
    (file, data)
}

type Views = Rc<RefCell<Vec<TransferView>>>;

fn recorder() -> (Views, transfer::OnView) {
    let views: Views = Rc::default();
    let sink = views.clone();
    (views, Rc::new(move |v| sink.borrow_mut().push(v)))
}

async fn until(views: &Views, what: &str, done: impl Fn(&TransferView) -> bool) -> TransferView {
    for _ in 0..1500 {
        if let Some(v) = views.borrow().last().filter(|v| done(v)) {
            return v.clone();
        }
        TimeoutFuture::new(20).await;
    }
    panic!(
        "timed out waiting for {what}; views: {:?}",
        views.borrow().last()
    );
}

/// Starts sending `file` from `a`; gives the receiver's channel events.
async fn start_transfer(
    a: &Peer,
    b_events: &mut Events,
    file: web_sys::File,
    id: &str,
) -> (
    Views,
    Views,
    mpsc::UnboundedSender<ChannelEvent>,
    mpsc::UnboundedSender<ChannelEvent>,
) {
    let (channel, queue) = peercall::web::channel::Channel::file(a.raw(), id);
    let (sent, on_sent) = recorder();
    let sender_cancel = queue.tx.clone();
    wasm_bindgen_futures::spawn_local(transfer::send(
        channel,
        queue.rx,
        file,
        id.to_owned(),
        "b".into(),
        on_sent,
    ));
    let (got_id, channel, queue) = next(b_events, "the file channel", |e| match e {
        PeerEvent::FileChannel {
            id,
            channel,
            events,
        } => Some((id, channel, events)),
        _ => None,
    })
    .await;
    assert_eq!(got_id, id);
    let (received, on_received) = recorder();
    let receiver_cancel = queue.tx.clone();
    wasm_bindgen_futures::spawn_local(transfer::receive(
        channel,
        queue.rx,
        got_id,
        "a".into(),
        "channels-test".into(),
        on_received,
    ));
    (sent, received, sender_cancel, receiver_cancel)
}

#[wasm_bindgen_test]
async fn a_file_larger_than_the_send_buffer_arrives_intact() {
    let (a, _b, _a_events, mut b_events) = connected_pair().await;
    // Over the 4 MiB high-water mark, so the sender has to wait for
    // `bufferedamountlow`, and not a whole number of chunks.
    let len = 6 * 1024 * 1024 + 123;
    let (file, data) = file("six.bin", len);
    let (sent, received, _, _) = start_transfer(&a, &mut b_events, file, "t1").await;
    let got = until(&received, "the file to arrive", |v| v.status.is_over()).await;
    let TransferStatus::Done { url: Some(url) } = &got.status else {
        panic!("not received: {got:?}");
    };
    assert_eq!(
        (got.size, got.done, got.name.as_str()),
        (len as u64, len as u64, "six.bin")
    );
    let sender = until(&sent, "the sender to hear", |v| v.status.is_over()).await;
    assert_eq!(sender.status, TransferStatus::Done { url: None });
    // Progress was reported on the way, not only at the end.
    assert!(sent
        .borrow()
        .iter()
        .any(|v| v.done > 0 && v.done < len as u64));
    // The bytes behind the download link are the file's.
    assert!(fetched(url).await == data, "the bytes differ");
}

#[wasm_bindgen_test]
async fn a_cancel_on_either_side_stops_both() {
    let (a, _b, _a_events, mut b_events) = connected_pair().await;
    for (id, receiver_cancels) in [("c1", true), ("c2", false)] {
        // Zeros: no need to make 64 MiB of pattern in a debug build.
        let zeros = js_sys::Uint8Array::new_with_length(64 * 1024 * 1024);
        let file =
            web_sys::File::new_with_u8_array_sequence(&js_sys::Array::of1(&zeros), "big.bin")
                .expect("a File");
        let (sent, received, sender_cancel, receiver_cancel) =
            start_transfer(&a, &mut b_events, file, id).await;
        until(&received, "some bytes", |v| v.done > 0).await;
        let who = if receiver_cancels {
            receiver_cancel
        } else {
            sender_cancel
        };
        who.unbounded_send(ChannelEvent::LocalCancel).unwrap();
        let r = until(&received, "the receiver to stop", |v| v.status.is_over()).await;
        let s = until(&sent, "the sender to stop", |v| v.status.is_over()).await;
        assert_eq!(
            r.status,
            TransferStatus::Cancelled {
                by_us: receiver_cancels
            },
            "{id}"
        );
        assert_eq!(
            s.status,
            TransferStatus::Cancelled {
                by_us: !receiver_cancels
            },
            "{id}"
        );
        assert!(r.done < r.size, "{id}: stopped part way");
    }
}

/// The bytes at `url` (a Save link).
async fn fetched(url: &str) -> Vec<u8> {
    let window = web_sys::window().unwrap();
    let response: web_sys::Response = JsFuture::from(window.fetch_with_str(url))
        .await
        .unwrap()
        .unchecked_into();
    let buf = JsFuture::from(response.array_buffer().unwrap())
        .await
        .unwrap();
    js_sys::Uint8Array::new(&buf).to_vec()
}

/// `peercall-incoming/spool-test` in the origin private file system, if
/// it exists (looked up here, not through the code under test).
async fn test_dir() -> Option<web_sys::FileSystemDirectoryHandle> {
    let storage = web_sys::window().unwrap().navigator().storage();
    let root: web_sys::FileSystemDirectoryHandle = JsFuture::from(storage.get_directory())
        .await
        .unwrap()
        .unchecked_into();
    let parent: web_sys::FileSystemDirectoryHandle =
        JsFuture::from(root.get_directory_handle("peercall-incoming"))
            .await
            .ok()?
            .unchecked_into();
    Some(
        JsFuture::from(parent.get_directory_handle("spool-test"))
            .await
            .ok()?
            .unchecked_into(),
    )
}

#[wasm_bindgen_test]
async fn received_files_go_to_disk_and_are_removed_with_the_call() {
    use peercall::web::spool::{remove_call_dir, Spool};
    let mut spool = Spool::open("spool-test", "f1").await;
    assert!(
        spool.on_disk(),
        "this browser has an origin private file system"
    );
    let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 241) as u8).collect();
    for chunk in data.chunks(65_536) {
        spool
            .push(&js_sys::Uint8Array::from(chunk))
            .await
            .expect("written");
    }
    let url = spool.finish().await.expect("finished");
    assert!(fetched(&url).await == data, "the bytes differ");
    // It is a file in the call's folder, until the call ends.
    assert!(test_dir().await.is_some());
    remove_call_dir("spool-test").await;
    assert!(test_dir().await.is_none(), "removed with the call");
    // A discarded file leaves nothing behind either.
    let mut spool = Spool::open("spool-test", "f2").await;
    spool
        .push(&js_sys::Uint8Array::from(&data[..1000]))
        .await
        .unwrap();
    spool.discard().await;
    let dir = test_dir().await.expect("the call's folder");
    assert!(
        JsFuture::from(dir.get_file_handle("f2")).await.is_err(),
        "the discarded file is gone"
    );
    remove_call_dir("spool-test").await;
}
