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

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

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
        }
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

/// An I/O stream whose reads are followed by a [`FrameParser`].
pub(crate) struct Watched<T> {
    inner: T,
    parser: FrameParser,
    clock: Arc<MessageClock>,
}

impl<T> Watched<T> {
    pub(crate) fn new(inner: T, clock: Arc<MessageClock>) -> Self {
        Self {
            inner,
            parser: FrameParser::default(),
            clock,
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
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &poll {
            match this.parser.feed(&buf.filled()[before..]) {
                Change::None => {}
                Change::Started => this.clock.set(Some(Instant::now())),
                Change::Ended => this.clock.set(None),
            }
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
    fn the_clock_reports_how_long_a_message_has_been_coming() {
        let clock = MessageClock::default();
        let now = Instant::now();
        assert_eq!(clock.in_progress_for(now), None);
        clock.set(Some(now));
        let later = now + Duration::from_secs(3);
        let d = clock.in_progress_for(later).unwrap();
        assert!(
            d >= Duration::from_millis(2990) && d <= Duration::from_secs(3),
            "{d:?}"
        );
        clock.set(None);
        assert_eq!(clock.in_progress_for(later), None);
    }
}
