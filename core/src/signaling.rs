//! Signaling connection decisions, the pure part: where the relay is and
//! how long to wait before reconnecting. The WebSocket itself lives in
//! `web::signaling`; room membership in [`crate::room`].

use crate::error::ConfigError;
use peercall_protocol::WS_PATH;

/// The relay's WebSocket URL for a page at `protocol//host` (as in
/// `window.location`): the same origin, `ws:` for `http:` and `wss:` for
/// `https:`, at [`WS_PATH`].
pub fn same_origin_relay(protocol: &str, host: &str) -> String {
    let scheme = if protocol == "https:" { "wss" } else { "ws" };
    format!("{scheme}://{host}{WS_PATH}")
}

/// Checks a relay URL given by a person or a config file.
pub fn check_relay_url(url: &str) -> Result<String, ConfigError> {
    let url = url.trim();
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"))
        .ok_or_else(|| format!("relay URL {url:?} must start with ws:// or wss://"))?;
    if rest.is_empty() || rest.starts_with('/') || rest.chars().any(char::is_whitespace) {
        return Err(format!("relay URL {url:?} has no host").into());
    }
    Ok(url.to_owned())
}

/// Milliseconds to wait before reconnection attempt `attempt` (0 for the
/// first retry): 500 ms doubling up to 15 s, spread by `jitter` in [0, 1)
/// over 50-100 % so that everyone a relay restart dropped does not come
/// back in the same instant.
pub fn reconnect_delay_ms(attempt: u32, jitter: f64) -> u64 {
    let base = 500u64.saturating_mul(1 << attempt.min(5)).min(15_000);
    let spread = 0.5 + 0.5 * jitter.clamp(0.0, 1.0);
    (base as f64 * spread) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_is_on_the_same_origin_by_default() {
        assert_eq!(
            same_origin_relay("http:", "127.0.0.1:8080"),
            "ws://127.0.0.1:8080/ws"
        );
        assert_eq!(
            same_origin_relay("https:", "call.example.org"),
            "wss://call.example.org/ws"
        );
    }

    #[test]
    fn relay_urls_are_checked() {
        assert_eq!(
            check_relay_url(" wss://relay.example.org/ws "),
            Ok("wss://relay.example.org/ws".into())
        );
        assert!(check_relay_url("ws://127.0.0.1:9000").is_ok());
        for bad in [
            "http://x/ws",
            "relay.example.org",
            "ws://",
            "ws:///ws",
            "ws://a b",
        ] {
            let err = check_relay_url(bad).expect_err(bad);
            assert!(err.0.contains("relay URL"), "{err}");
        }
    }

    #[test]
    fn reconnect_backs_off_with_jitter_and_a_ceiling() {
        assert_eq!(reconnect_delay_ms(0, 1.0), 500);
        assert_eq!(reconnect_delay_ms(0, 0.0), 250);
        assert_eq!(reconnect_delay_ms(1, 1.0), 1_000);
        assert_eq!(reconnect_delay_ms(4, 1.0), 8_000);
        assert_eq!(reconnect_delay_ms(5, 1.0), 15_000);
        assert_eq!(reconnect_delay_ms(60, 1.0), 15_000);
        assert_eq!(reconnect_delay_ms(u32::MAX, 0.5), 11_250);
    }
}
