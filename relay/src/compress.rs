//! Compression at the best settings: how the relay precompresses the app's
//! assets (`statics`), and how the benchmarks measure shipped bytes, so
//! both count the same bytes.

use std::io::Write;

/// Brotli at quality 11 with a 4 MiB window.
pub fn brotli_best(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 3);
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        lgwin: 22,
        ..Default::default()
    };
    // Reading a slice and writing a Vec cannot fail.
    let _ = brotli::BrotliCompress(&mut &data[..], &mut out, &params);
    out
}

/// gzip at level 9.
pub fn gzip_best(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_is_real() {
        let data = vec![b'a'; 100_000];
        assert!(gzip_best(&data).len() < 1000);
        assert!(brotli_best(&data).len() < 1000);
    }
}
