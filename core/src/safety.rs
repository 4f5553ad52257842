//! The safety code of a connection (PROTOCOL.md 11): a short number both
//! ends compute from the two DTLS certificate fingerprints in its SDPs.
//! The media is encrypted to exactly those certificates, so if nobody
//! replaced a fingerprint on the way (the relay, say, to sit in the
//! middle), both people see the same code; read aloud, it shows that.

use sha2::{Digest, Sha256};

/// What the code is computed over, first: the version of this scheme.
const DOMAIN: &[u8] = b"peercall safety code v1";

/// A certificate fingerprint from an SDP (`a=fingerprint:`): the hash
/// function's name (lowercase) and the digest.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fingerprint {
    /// `sha-256`, as the SDP names it.
    pub algorithm: String,
    /// The digest's bytes.
    pub digest: Vec<u8>,
}

/// The first `a=fingerprint:` of `sdp` (session or media level; a
/// browser gives every m-line the same), if it is readable.
pub fn fingerprint(sdp: &str) -> Option<Fingerprint> {
    let value = sdp
        .lines()
        .find_map(|l| l.trim_end().strip_prefix("a=fingerprint:"))?;
    let (algorithm, hex) = value.split_once(' ')?;
    let digest = hex
        .trim()
        .split(':')
        .map(hex_byte)
        .collect::<Option<Vec<u8>>>()?;
    (!digest.is_empty()).then(|| Fingerprint {
        algorithm: algorithm.to_ascii_lowercase(),
        digest,
    })
}

/// The safety code of a connection between the certificates `a` and `b`
/// (in either order: both ends get the same): four groups of five digits,
/// "12345 67890 12345 67890", about 66 bits.
pub fn safety_code(a: &Fingerprint, b: &Fingerprint) -> String {
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    let mut hash = Sha256::new();
    hash.update(DOMAIN);
    for f in [first, second] {
        hash.update([0]);
        hash.update(f.algorithm.as_bytes());
        hash.update([0]);
        hash.update(&f.digest);
    }
    let digest = hash.finalize();
    // Digits by hand: the app has no other use for padded formatting.
    let mut code = String::with_capacity(23);
    for chunk in digest.chunks(5).take(4) {
        if !code.is_empty() {
            code.push(' ');
        }
        let mut n = chunk.iter().fold(0u64, |n, b| n << 8 | u64::from(*b)) % 100_000;
        let mut group = [b'0'; 5];
        for d in group.iter_mut().rev() {
            *d = b'0' + (n % 10) as u8;
            n /= 10;
        }
        code.extend(group.iter().map(|&d| char::from(d)));
    }
    code
}

/// Two hex digits as a byte.
fn hex_byte(pair: &str) -> Option<u8> {
    let digit = |c: u8| (c as char).to_digit(16);
    match pair.as_bytes() {
        &[hi, lo] => Some((digit(hi)? * 16 + digit(lo)?) as u8),
        _ => None,
    }
}

/// The safety code of a connection from its two SDPs (ours and theirs).
pub fn code_of(local_sdp: &str, remote_sdp: &str) -> Option<String> {
    Some(safety_code(
        &fingerprint(local_sdp)?,
        &fingerprint(remote_sdp)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=fingerprint:sha-256 5A:1F:00:9C:2B:7E:41:D3:88:10:AF:6C:E2:93:0B:57:C4:19:6D:F0:3A:82:BE:11:74:05:9D:E8:26:CB:40:F1\r\na=setup:actpass\r\n";
    const B: &str = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=fingerprint:SHA-256 0B:57:C4:19:6D:F0:3A:82:BE:11:74:05:9D:E8:26:CB:40:F1:5A:1F:00:9C:2B:7E:41:D3:88:10:AF:6C:E2:93\r\n";

    #[test]
    fn fingerprints_are_read_from_an_sdp() {
        let a = fingerprint(A).unwrap();
        assert_eq!(a.algorithm, "sha-256");
        assert_eq!(a.digest.len(), 32);
        assert_eq!(&a.digest[..3], &[0x5a, 0x1f, 0x00]);
        assert_eq!(fingerprint(B).unwrap().algorithm, "sha-256");
        for bad in [
            "v=0\r\n",
            "a=fingerprint:sha-256\r\n",
            "a=fingerprint:sha-256 5A:1\r\n",
            "a=fingerprint:sha-256 ZZ:00\r\n",
        ] {
            assert_eq!(fingerprint(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn both_ends_get_the_same_code_and_a_replaced_fingerprint_another() {
        // The fixed vector: the code of these two certificates, as
        // Python's hashlib computes it from PROTOCOL.md 11.
        let code = code_of(A, B).unwrap();
        assert_eq!(code, code_of(B, A).unwrap());
        assert_eq!(code.len(), 23);
        assert!(code
            .split(' ')
            .all(|g| g.len() == 5 && g.bytes().all(|b| b.is_ascii_digit())));
        assert_eq!(code, "80585 63807 82631 22574");
        // Anyone in the middle shows each end a certificate of its own.
        let mitm = A.replace("5A:1F", "5A:1E");
        assert_ne!(code_of(&mitm, B).unwrap(), code);
        assert_eq!(code_of("v=0\r\n", B), None);
    }
}
