//! Follows a client's WebSocket frames as their bytes are read, to know how
//! long a data message has been in progress.
//!
//! tungstenite assembles fragmented messages (and large frames) inside its
//! own buffers and shows nothing until a message is complete, while the
//! ping frames a client may interleave keep the connection looking alive.
//! [`Watched`] sits between the socket and tungstenite, parses only the
//! frame headers (RFC 6455 5.2) of the bytes going by, and records when the
//! message now being received began, so the connection can close one that
//! is not finished within its deadline and free what it holds.
//!
//! It also charges what a message still arriving makes tungstenite hold
//! (the declared lengths of its data frames, past the first
//! [`FREE_BYTES`]) to [`Arriving`], one budget for the whole relay: a
//! frame that would take the budget over is not read, and the connection
//! is closed (1013). Without it, many connections each starting a large
//! message at once cost the relay the reading, copying and holding of all
//! of them.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::conn::RateLimit;

/// The frame-header parser: pure, fed any chunks of the byte stream.
#[derive(Debug, Default)]
pub(crate) struct FrameParser {
    /// Header bytes of the current frame seen so far.
    head: [u8; 14],
    have: usize,
    /// Payload bytes of the current frame still to come, once its header is
    /// complete.
    payload: Option<u64>,
    /// Whether a data message (text, binary, or its continuations) has
    /// started and its final frame has not ended yet.
    in_message: bool,
    /// The declared payload lengths of the message in progress's data
    /// frames so far (what tungstenite reserves for it as each header
    /// comes in); 0 when no message is in progress.
    message_bytes: u64,
    /// Continuation frames whose header came in since the last
    /// [`FrameParser::take_continuations`].
    continuations: u32,
}

/// What a chunk of bytes did to the message in progress.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// Nothing to record.
    None,
    /// The data message now in progress began in this chunk.
    Started,
    /// The message that was in progress ended, and none is now.
    Ended,
}

impl FrameParser {
    /// Follows `bytes`, the next ones read from the client.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> Change {
        let was = self.in_message;
        // Whether the message in progress now began within these bytes.
        let mut began = false;
        while !bytes.is_empty() {
            match self.payload {
                Some(left) => {
                    let take = left.min(bytes.len() as u64);
                    bytes = &bytes[take as usize..];
                    self.finish_payload(left - take);
                }
                None => {
                    if self.have == 0 && !self.in_message && is_data(bytes[0] & 0x0f) {
                        self.in_message = true;
                        began = true;
                    }
                    self.head[self.have] = bytes[0];
                    self.have += 1;
                    bytes = &bytes[1..];
                    if let Some(len) = self.header_complete() {
                        self.have = 0;
                        if is_data(self.head[0] & 0x0f) && self.in_message {
                            self.message_bytes = self.message_bytes.saturating_add(len);
                        }
                        if self.head[0] & 0x0f == 0 {
                            self.continuations = self.continuations.saturating_add(1);
                        }
                        self.finish_payload(len);
                    }
                }
            }
            began &= self.in_message;
        }
        match (self.in_message, began) {
            (true, true) => Change::Started,
            (false, _) if was => Change::Ended,
            _ => Change::None,
        }
    }

    /// Records `left` payload bytes still to come; at zero the frame is
    /// done, and a final data frame ends its message.
    fn finish_payload(&mut self, left: u64) {
        if left > 0 {
            self.payload = Some(left);
            return;
        }
        self.payload = None;
        let (fin, opcode) = (self.head[0] & 0x80 != 0, self.head[0] & 0x0f);
        if fin && is_data(opcode) && self.in_message {
            self.in_message = false;
            self.message_bytes = 0;
        }
    }

    /// The continuation frames seen since the last call. tungstenite joins
    /// them into their message without showing them, so the rate limit
    /// would not see a flood of them.
    pub(crate) fn take_continuations(&mut self) -> u32 {
        std::mem::take(&mut self.continuations)
    }

    /// The bytes the message in progress has declared so far.
    pub(crate) fn message_bytes(&self) -> u64 {
        self.message_bytes
    }

    /// The payload length once the whole header is in.
    fn header_complete(&self) -> Option<u64> {
        if self.have < 2 {
            return None;
        }
        let masked = self.head[1] & 0x80 != 0;
        let len7 = self.head[1] & 0x7f;
        let ext = match len7 {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let need = 2 + ext + if masked { 4 } else { 0 };
        if self.have < need {
            return None;
        }
        Some(match len7 {
            126 => u64::from(u16::from_be_bytes([self.head[2], self.head[3]])),
            127 => u64::from_be_bytes(self.head[2..10].try_into().expect("8 bytes")),
            n => u64::from(n),
        })
    }
}

/// Text, binary and continuation frames carry messages; 0x8-0xF are
/// control frames (close, ping, pong, reserved).
fn is_data(opcode: u8) -> bool {
    opcode < 0x8
}

/// When the message in progress began, shared between the socket wrapper
/// and the connection's task. Stored as milliseconds since [`epoch`] plus
/// one; 0 means no message in progress.
#[derive(Debug, Default)]
pub(crate) struct MessageClock(AtomicU64);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl MessageClock {
    fn set(&self, since: Option<Instant>) {
        let value = since.map_or(0, |t| t.duration_since(epoch()).as_millis() as u64 + 1);
        self.0.store(value, Ordering::Relaxed);
    }

    /// How long the message now in progress has been coming in, if any.
    pub(crate) fn in_progress_for(&self, now: Instant) -> Option<Duration> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(now.saturating_duration_since(epoch() + Duration::from_millis(ms - 1))),
        }
    }
}

/// Each message still arriving may hold this much without charge: every
/// signaling message our clients send (offers included) is well under it,
/// so an attack on the budget cannot hold up ordinary signaling.
pub(crate) const FREE_BYTES: u64 = 16 * 1024;

/// The relay's budget for messages still arriving, over all connections:
/// bytes past the first [`FREE_BYTES`] of each.
#[derive(Debug)]
pub(crate) struct Arriving {
    held: AtomicUsize,
    max: usize,
}

impl Arriving {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            held: AtomicUsize::new(0),
            max,
        }
    }

    /// Takes `bytes` more, if the budget has them.
    fn take(&self, bytes: usize) -> bool {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|&n| n <= self.max)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        self.held.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// The bytes now charged, over all connections.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }
}

/// Why [`Watched`] stopped reading a connection: the read error it gives
/// from then on, so the connection closes it (nothing more is read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The message in progress would take [`Arriving`] over its budget:
    /// the frame is not read, nor anything after.
    OverBudget,
    /// Continuation frames far over the message rate
    /// ([`crate::conn::FLOOD_CLOSE_AFTER`] past it within a second).
    Flooding,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::OverBudget => "the relay's budget for messages still arriving is spent",
            Refusal::Flooding => "continuation frames far over the rate limit",
        })
    }
}

impl std::error::Error for Refusal {}

/// The [`Refusal`] a read error is, if it is one.
pub(crate) fn refusal(e: &io::Error) -> Option<Refusal> {
    e.get_ref()?.downcast_ref::<Refusal>().copied()
}

/// An I/O stream whose reads are followed by a [`FrameParser`].
pub(crate) struct Watched<T> {
    inner: T,
    parser: FrameParser,
    clock: Arc<MessageClock>,
    arriving: Arc<Arriving>,
    /// What this connection's message in progress has taken of `arriving`.
    charged: usize,
    /// Continuation frames count against a rate of their own (the
    /// connection's message rate), as they never reach the connection.
    continuations: RateLimit,
    /// Set once it stopped reading, and why.
    refused: Option<Refusal>,
}

impl<T> Watched<T> {
    pub(crate) fn new(
        inner: T,
        clock: Arc<MessageClock>,
        arriving: Arc<Arriving>,
        continuations: RateLimit,
    ) -> Self {
        Self {
            inner,
            parser: FrameParser::default(),
            clock,
            arriving,
            charged: 0,
            continuations,
            refused: None,
        }
    }

    /// Charges the continuation frames just seen to their rate; false once
    /// they are a flood.
    fn count_continuations(&mut self) -> bool {
        let n = self.parser.take_continuations();
        if n == 0 {
            return true;
        }
        let now = tokio::time::Instant::now();
        for _ in 0..n {
            self.continuations.allow(now);
        }
        !self.continuations.flooding()
    }

    /// Brings the charge to what the message in progress now holds; false
    /// when the budget cannot take it.
    fn charge(&mut self) -> bool {
        let want = usize::try_from(self.parser.message_bytes().saturating_sub(FREE_BYTES))
            .unwrap_or(usize::MAX);
        // Most reads change nothing (no message over the free part): the
        // shared counter is left alone then.
        match want.cmp(&self.charged) {
            std::cmp::Ordering::Equal => return true,
            std::cmp::Ordering::Greater => {
                if !self.arriving.take(want - self.charged) {
                    return false;
                }
            }
            std::cmp::Ordering::Less => self.arriving.give_back(self.charged - want),
        }
        self.charged = want;
        true
    }
}

impl<T> Drop for Watched<T> {
    fn drop(&mut self) {
        if self.charged > 0 {
            self.arriving.give_back(self.charged);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let refuse = |why: Refusal| Poll::Ready(Err(io::Error::other(why)));
        if let Some(why) = this.refused {
            return refuse(why);
        }
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &poll {
            match this.parser.feed(&buf.filled()[before..]) {
                Change::None => {}
                Change::Started => this.clock.set(Some(Instant::now())),
                Change::Ended => this.clock.set(None),
            }
            let why = if !this.charge() {
                Refusal::OverBudget
            } else if !this.count_continuations() {
                Refusal::Flooding
            } else {
                return poll;
            };
            // tungstenite never sees these bytes: what it would have
            // reserved for them is not reserved.
            this.refused = Some(why);
            buf.set_filled(before);
            return refuse(why);
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![(u8::from(fin) << 7) | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&[1, 2, 3, 4]);
        out.extend_from_slice(payload);
        out
    }

    /// Feeds `bytes` in chunks of `size`, returning whether a message is in
    /// progress after each chunk as the clock would see it.
    fn in_progress(bytes: &[u8], size: usize) -> Vec<bool> {
        let mut p = FrameParser::default();
        let mut on = false;
        bytes
            .chunks(size)
            .map(|c| {
                match p.feed(c) {
                    Change::Started => on = true,
                    Change::Ended => on = false,
                    Change::None => {}
                }
                assert_eq!(on, p.in_message);
                on
            })
            .collect()
    }

    #[test]
    fn whole_messages_leave_nothing_in_progress_in_any_chunking() {
        let mut stream = frame(true, 1, b"hello");
        stream.extend(frame(true, 9, b"ping"));
        stream.extend(frame(true, 1, &vec![b'x'; 300]));
        stream.extend(frame(true, 2, &vec![7; 70_000]));
        stream.extend(frame(true, 10, b""));
        for size in [1, 2, 3, 7, 100, 4096, stream.len()] {
            let seen = in_progress(&stream, size);
            assert!(!seen.last().unwrap(), "chunks of {size}");
        }
    }

    #[test]
    fn an_unfinished_fragmented_message_stays_in_progress_through_pings() {
        let mut stream = frame(false, 1, &vec![b'a'; 1000]);
        stream.extend(frame(false, 0, &vec![b'b'; 1000]));
        let started_at = stream.len();
        for _ in 0..5 {
            stream.extend(frame(true, 9, b""));
        }
        for size in [1, 5, 64, 4096] {
            let seen = in_progress(&stream, size);
            assert!(seen.last().unwrap(), "chunks of {size}");
        }
        // The final continuation ends it.
        stream.extend(frame(true, 0, b"end"));
        assert!(!in_progress(&stream, 3).last().unwrap());
        assert!(started_at > 0);
    }

    #[test]
    fn a_large_frame_arriving_slowly_is_in_progress_until_its_last_byte() {
        let stream = frame(true, 1, &vec![b'z'; 200_000]);
        let seen = in_progress(&stream, 1000);
        assert!(seen[..seen.len() - 1].iter().all(|&on| on));
        assert!(!seen.last().unwrap());
    }

    #[test]
    fn a_message_counts_its_data_frames_declared_lengths_until_it_ends() {
        let mut p = FrameParser::default();
        let first = frame(false, 1, &vec![b'a'; 1000]);
        // Only the header of the first frame: its whole length is declared.
        p.feed(&first[..8]);
        assert_eq!(p.message_bytes(), 1000);
        p.feed(&first[8..]);
        p.feed(&frame(true, 9, b"ping"));
        assert_eq!(
            p.message_bytes(),
            1000,
            "control frames are not the message"
        );
        p.feed(&frame(false, 0, &vec![b'b'; 70_000]));
        assert_eq!(p.message_bytes(), 71_000);
        p.feed(&frame(true, 0, b"end"));
        assert_eq!(p.message_bytes(), 0);
        p.feed(&frame(true, 1, b"whole"));
        assert_eq!(p.message_bytes(), 0);
    }

    fn rate() -> RateLimit {
        RateLimit::new(50.0, 200.0)
    }

    #[tokio::test]
    async fn a_flood_of_continuation_frames_is_stopped_and_a_fragmented_message_is_not() {
        // A message in 100 fragments: within the burst.
        let mut ok = frame(false, 1, b"[");
        for _ in 0..98 {
            ok.extend(frame(false, 0, b"1,"));
        }
        ok.extend(frame(true, 0, b"1]"));
        let arriving = Arc::new(Arriving::new(1 << 20));
        let mut w = Watched::new(&ok[..], Arc::default(), arriving.clone(), rate());
        assert_eq!(read_all(&mut w).await.unwrap(), ok.len());
        // 1-byte continuations, as fast as they go: the burst (200) and 200
        // more, then it is a flood.
        let mut flood = frame(false, 1, b"[");
        for _ in 0..1000 {
            flood.extend(frame(false, 0, b"1"));
        }
        let mut w = Watched::new(&flood[..], Arc::default(), arriving, rate());
        let e = read_all(&mut w).await.unwrap_err();
        assert_eq!(refusal(&e), Some(Refusal::Flooding), "{e}");
    }

    /// Reads `bytes` through a [`Watched`] in chunks of 4 KiB until they are
    /// all read or the budget refuses.
    async fn read_all(w: &mut Watched<&[u8]>) -> io::Result<usize> {
        use tokio::io::AsyncReadExt;
        let mut buf = [0; 4096];
        let mut total = 0;
        loop {
            match w.read(&mut buf).await? {
                0 => return Ok(total),
                n => total += n,
            }
        }
    }

    #[tokio::test]
    async fn messages_still_arriving_share_one_budget_and_give_it_back() {
        let arriving = Arc::new(Arriving::new(300_000));
        let clock = || Arc::new(MessageClock::default());
        // Alice's unfinished message takes 200 KB past the free part.
        let alice_bytes = frame(false, 1, &vec![b'a'; 200_000 + FREE_BYTES as usize]);
        let mut alice = Watched::new(&alice_bytes[..], clock(), arriving.clone(), rate());
        assert_eq!(read_all(&mut alice).await.unwrap(), alice_bytes.len());
        assert_eq!(arriving.held(), 200_000);
        // Mallory's would take the budget over: refused at its header,
        // before tungstenite is handed (and reserves for) any of it.
        let mallory_bytes = frame(false, 1, &vec![b'm'; 150_000]);
        let mut mallory = Watched::new(&mallory_bytes[..], clock(), arriving.clone(), rate());
        let e = read_all(&mut mallory).await.unwrap_err();
        assert_eq!(refusal(&e), Some(Refusal::OverBudget), "{e}");
        assert_eq!(arriving.held(), 200_000);
        // And stays refused.
        assert!(read_all(&mut mallory).await.is_err());
        // Small messages are free, however many: Bob's offers go through.
        let mut offers = Vec::new();
        for _ in 0..100 {
            offers.extend(frame(true, 1, &vec![b'o'; 6000]));
        }
        offers.extend(frame(false, 1, &vec![b'o'; 9000]));
        let mut bob = Watched::new(&offers[..], clock(), arriving.clone(), rate());
        assert_eq!(read_all(&mut bob).await.unwrap(), offers.len());
        assert_eq!(arriving.held(), 200_000);
        // A connection that goes gives back what its message held.
        drop(alice);
        assert_eq!(arriving.held(), 0);
        drop((mallory, bob));
        assert_eq!(arriving.held(), 0);
    }

    #[tokio::test]
    async fn a_message_that_ends_gives_its_charge_back_at_once() {
        let arriving = Arc::new(Arriving::new(300_000));
        let mut bytes = frame(false, 1, &vec![b'a'; 250_000]);
        let half = bytes.len();
        bytes.extend(frame(true, 0, b"]"));
        let mut w = Watched::new(&bytes[..half], Arc::default(), arriving.clone(), rate());
        read_all(&mut w).await.unwrap();
        assert_eq!(arriving.held(), 250_000 - FREE_BYTES as usize);
        // The rest of the stream: the final continuation.
        w.inner = &bytes[half..];
        read_all(&mut w).await.unwrap();
        assert_eq!(arriving.held(), 0);
    }

    #[test]
    fn the_clock_reports_how_long_a_message_has_been_coming() {
        let clock = MessageClock::default();
        let now = Instant::now();
        assert_eq!(clock.in_progress_for(now), None);
        clock.set(Some(now));
        let later = now + Duration::from_secs(3);
        let d = clock.in_progress_for(later).unwrap();
        // The clock keeps whole milliseconds: it may read up to one over.
        assert!(
            d >= Duration::from_millis(2990) && d <= Duration::from_millis(3001),
            "{d:?}"
        );
        clock.set(None);
        assert_eq!(clock.in_progress_for(later), None);
    }
}
