//! File transfer, the pure part: sizes, the integrity check, the transfer
//! rate and what the UI shows of a transfer. The browser side
//! (`web::transfer`) reads the file in slices, sends it in chunks with
//! backpressure, and writes what arrives to disk as it comes
//! (`web::spool`), so neither side holds the whole file in memory.
//!
//! On a file channel (see [`crate::channel`]): the sender's
//! `file-offer`, then the bytes as binary frames of at most
//! [`CHUNK_BYTES`], then `file-end` with the SHA-256; the receiver checks
//! size and hash ([`Incoming::finish`]) before it offers the file for
//! download, and answers `file-received`.

use std::collections::VecDeque;
use std::fmt;

use sha2::{Digest, Sha256};

/// One binary frame: well under every browser's SCTP message limit
/// (Chromium 256 KiB).
pub const CHUNK_BYTES: usize = 64 * 1024;
/// How much of the file is read from disk at a time.
pub const READ_BYTES: u64 = 1024 * 1024;
/// Stop sending while this much is queued in the channel...
pub const HIGH_WATER_BYTES: u32 = 4 * 1024 * 1024;
/// ...and go on when it drains to this (`bufferedamountlow`).
pub const LOW_WATER_BYTES: u32 = 1024 * 1024;
/// Where there is no disk to write to, the receiver folds chunks into a
/// `Blob` every this many bytes (the browser may keep blobs on disk).
pub const BLOB_PART_BYTES: usize = 16 * 1024 * 1024;
/// The largest file offered or accepted.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// Why a transfer failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferError {
    /// More bytes came than were offered.
    TooLong {
        /// Offered.
        expected: u64,
    },
    /// The end came before all the bytes.
    Short {
        /// Arrived.
        got: u64,
        /// Offered.
        expected: u64,
    },
    /// Every byte came but they are not the sender's.
    HashMismatch,
    /// The offer is over [`MAX_FILE_BYTES`].
    TooBig(u64),
}

impl fmt::Display for TransferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransferError::TooLong { expected } => {
                write!(f, "more data arrived than the {expected} bytes offered")
            }
            TransferError::Short { got, expected } => {
                write!(f, "only {got} of {expected} bytes arrived")
            }
            TransferError::HashMismatch => write!(f, "the file arrived damaged (SHA-256 differs)"),
            TransferError::TooBig(size) => write!(
                f,
                "{} is over the {} limit",
                format_bytes(*size),
                format_bytes(MAX_FILE_BYTES)
            ),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The sender's side: hashes what it sends.
#[derive(Clone, Default)]
pub struct Outgoing {
    hasher: Sha256,
    sent: u64,
}

impl Outgoing {
    /// Bytes about to go out.
    pub fn push(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.sent += bytes.len() as u64;
    }

    /// Bytes pushed so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// The SHA-256 of everything pushed, lowercase hex.
    pub fn finish(self) -> String {
        hex(&self.hasher.finalize())
    }
}

/// The receiver's side: counts and hashes what arrives against the offer.
#[derive(Clone)]
pub struct Incoming {
    expected: u64,
    got: u64,
    hasher: Sha256,
}

impl Incoming {
    /// Expecting `size` bytes.
    pub fn new(size: u64) -> Result<Self, TransferError> {
        if size > MAX_FILE_BYTES {
            return Err(TransferError::TooBig(size));
        }
        Ok(Self {
            expected: size,
            got: 0,
            hasher: Sha256::new(),
        })
    }

    /// A binary frame arrived.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), TransferError> {
        let got = self.got + bytes.len() as u64;
        if got > self.expected {
            return Err(TransferError::TooLong {
                expected: self.expected,
            });
        }
        self.got = got;
        self.hasher.update(bytes);
        Ok(())
    }

    /// Bytes so far.
    pub fn received(&self) -> u64 {
        self.got
    }

    /// The sender says it is done and the hash is `sha256`: the hash, if
    /// size and hash match.
    pub fn finish(self, sha256: &str) -> Result<String, TransferError> {
        if self.got != self.expected {
            return Err(TransferError::Short {
                got: self.got,
                expected: self.expected,
            });
        }
        let ours = hex(&self.hasher.finalize());
        if ours.eq_ignore_ascii_case(sha256) {
            Ok(ours)
        } else {
            Err(TransferError::HashMismatch)
        }
    }
}

/// Bytes per second over the last [`Rate::WINDOW_MS`].
#[derive(Clone, Debug, Default)]
pub struct Rate {
    samples: VecDeque<(f64, u64)>,
}

impl Rate {
    /// The averaging window.
    pub const WINDOW_MS: f64 = 2_000.0;

    /// `bytes` done in total at `now_ms`.
    pub fn record(&mut self, now_ms: f64, bytes: u64) {
        self.samples.push_back((now_ms, bytes));
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|(t, _)| now_ms - t >= Self::WINDOW_MS)
        {
            self.samples.pop_front();
        }
    }

    /// The rate, or 0 before two samples.
    pub fn bytes_per_s(&self) -> f64 {
        match (self.samples.front(), self.samples.back()) {
            (Some(&(t0, b0)), Some(&(t1, b1))) if t1 > t0 => {
                b1.saturating_sub(b0) as f64 * 1000.0 / (t1 - t0)
            }
            _ => 0.0,
        }
    }
}

/// "1.5 MB": decimal units, as file managers show them.
pub fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

/// Where a transfer stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferStatus {
    /// Bytes are moving.
    Active,
    /// All sent; waiting for the receiver's check.
    Verifying,
    /// Done and checked. For a received file, the object URL to download it.
    Done {
        /// `blob:` URL (receiver only).
        url: Option<String>,
    },
    /// One side cancelled.
    Cancelled {
        /// We did.
        by_us: bool,
    },
    /// Broke: the channel closed early, or the check failed.
    Failed(String),
}

impl TransferStatus {
    /// Finished one way or another.
    pub fn is_over(&self) -> bool {
        !matches!(self, TransferStatus::Active | TransferStatus::Verifying)
    }
}

/// A transfer as the UI shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferView {
    /// Transfer id (random).
    pub id: String,
    /// The other side.
    pub peer: String,
    /// The file's name.
    pub name: String,
    /// Its size.
    pub size: u64,
    /// We send it.
    pub outgoing: bool,
    /// Bytes sent (and acknowledged by the channel) or received.
    pub done: u64,
    /// Bytes per second, lately.
    pub rate: u64,
    /// Where it stands.
    pub status: TransferStatus,
}

impl TransferView {
    /// A transfer just starting: file `name` (made safe to show and save,
    /// [`crate::channel::safe_file_name`]) of `size` bytes, with `peer`.
    pub fn start(id: &str, peer: &str, name: &str, size: u64, outgoing: bool) -> Self {
        Self {
            id: id.to_owned(),
            peer: peer.to_owned(),
            name: crate::channel::safe_file_name(name),
            size,
            outgoing,
            done: 0,
            rate: 0,
            status: TransferStatus::Active,
        }
    }

    /// Percent done, 0 to 100.
    pub fn percent(&self) -> u32 {
        if self.size == 0 {
            return if self.status.is_over() { 100 } else { 0 };
        }
        ((self.done.min(self.size) as f64 / self.size as f64) * 100.0).floor() as u32
    }

    /// "12 MB of 20 MB, 4.1 MB/s", or the outcome.
    pub fn summary(&self) -> String {
        match &self.status {
            TransferStatus::Active => format!(
                "{} of {}, {}/s",
                format_bytes(self.done),
                format_bytes(self.size),
                format_bytes(self.rate)
            ),
            TransferStatus::Verifying => "Checking…".to_owned(),
            TransferStatus::Done { .. } if self.outgoing => {
                format!("Sent {}, received intact", format_bytes(self.size))
            }
            TransferStatus::Done { .. } => {
                format!("Received {}, intact", format_bytes(self.size))
            }
            TransferStatus::Cancelled { by_us: true } => "You cancelled".to_owned(),
            TransferStatus::Cancelled { by_us: false } => "Cancelled by the other side".to_owned(),
            TransferStatus::Failed(why) => format!("Failed: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn chunks_hash_like_the_whole() {
        let mut out = Outgoing::default();
        out.push(b"a");
        out.push(b"bc");
        assert_eq!(out.sent(), 3);
        assert_eq!(out.finish(), ABC_SHA256);
        assert_eq!(Outgoing::default().finish(), EMPTY_SHA256);
    }

    #[test]
    fn a_complete_intact_file_checks_out() {
        let mut inc = Incoming::new(3).unwrap();
        inc.push(b"ab").unwrap();
        inc.push(b"c").unwrap();
        assert_eq!(inc.received(), 3);
        assert_eq!(inc.clone().finish(ABC_SHA256), Ok(ABC_SHA256.into()));
        assert_eq!(
            inc.finish(&ABC_SHA256.to_uppercase()),
            Ok(ABC_SHA256.into())
        );
        assert_eq!(
            Incoming::new(0).unwrap().finish(EMPTY_SHA256),
            Ok(EMPTY_SHA256.into())
        );
    }

    #[test]
    fn damage_is_caught() {
        let mut short = Incoming::new(4).unwrap();
        short.push(b"abc").unwrap();
        assert_eq!(
            short.finish(ABC_SHA256),
            Err(TransferError::Short {
                got: 3,
                expected: 4
            })
        );
        let mut long = Incoming::new(2).unwrap();
        assert_eq!(
            long.push(b"abc"),
            Err(TransferError::TooLong { expected: 2 })
        );
        let mut flipped = Incoming::new(3).unwrap();
        flipped.push(b"abd").unwrap();
        assert_eq!(flipped.finish(ABC_SHA256), Err(TransferError::HashMismatch));
        assert!(matches!(
            Incoming::new(MAX_FILE_BYTES + 1),
            Err(TransferError::TooBig(_))
        ));
        assert!(Incoming::new(MAX_FILE_BYTES).is_ok());
        assert!(TransferError::TooBig(5_000_000_000)
            .to_string()
            .contains("5.0 GB"));
    }

    #[test]
    fn rate_averages_over_the_window() {
        let mut r = Rate::default();
        assert_eq!(r.bytes_per_s(), 0.0);
        r.record(0.0, 0);
        r.record(500.0, 1_000_000);
        assert_eq!(r.bytes_per_s(), 2_000_000.0);
        for i in 2..=10 {
            r.record(i as f64 * 500.0, i * 1_000_000);
        }
        // Old samples fall out: the window stays about 2 s.
        let front = r.samples.front().unwrap().0;
        assert!((5000.0 - front) <= Rate::WINDOW_MS + 500.0, "{front}");
        assert_eq!(r.bytes_per_s(), 2_000_000.0);
        // A stall shows as a falling rate.
        r.record(7000.0, 10_000_000);
        assert!(r.bytes_per_s() < 1_000_000.0);
    }

    #[test]
    fn sizes_read_like_a_file_manager() {
        assert_eq!(format_bytes(0), "0 B");
        assert_eq!(format_bytes(999), "999 B");
        assert_eq!(format_bytes(1_500), "1.5 kB");
        assert_eq!(format_bytes(20_971_520), "21 MB");
        assert_eq!(format_bytes(1 << 30), "1.1 GB");
    }

    #[test]
    fn views_summarise() {
        let mut v = TransferView {
            done: 5_000_000,
            rate: 2_500_000,
            ..TransferView::start("t", "p", "../a.bin", 20_000_000, true)
        };
        assert_eq!(v.name, "a.bin");
        assert_eq!(v.percent(), 25);
        assert_eq!(v.summary(), "5.0 MB of 20 MB, 2.5 MB/s");
        v.status = TransferStatus::Cancelled { by_us: false };
        assert!(v.status.is_over());
        assert_eq!(v.summary(), "Cancelled by the other side");
        v.status = TransferStatus::Done { url: None };
        assert_eq!(v.summary(), "Sent 20 MB, received intact");
        v.size = 0;
        assert_eq!(v.percent(), 100);
    }
}
