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

/// Checks a list of relay URLs (of one cluster): at least one, each a
/// relay URL, none twice.
pub fn check_relay_urls<'a>(
    urls: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<String>, ConfigError> {
    let mut list: Vec<String> = Vec::new();
    for url in urls {
        let url = check_relay_url(url)?;
        if !list.contains(&url) {
            list.push(url);
        }
    }
    if list.is_empty() {
        return Err("no relay URL given".to_owned().into());
    }
    Ok(list)
}

/// The relays a call may use, in the order it tries them: shuffled, so
/// that the people of a deployment spread over its relays. When the one in
/// use fails the next is tried; the backoff of
/// [`reconnect_delay_ms`] grows only with each round of the whole list
/// that failed (one relay: the same as ever).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayList {
    urls: Vec<String>,
    at: usize,
    failures: u32,
}

impl RelayList {
    /// `urls` (not empty) in an order drawn with `random` (values in [0, 1)).
    pub fn new(mut urls: Vec<String>, mut random: impl FnMut() -> f64) -> Self {
        for i in (1..urls.len()).rev() {
            let j = ((random().clamp(0.0, 1.0) * (i + 1) as f64) as usize).min(i);
            urls.swap(i, j);
        }
        Self {
            urls,
            at: 0,
            failures: 0,
        }
    }

    /// The relay to connect to now.
    pub fn current(&self) -> &str {
        self.urls.get(self.at).map_or("", String::as_str)
    }

    /// Every relay, in the order they are tried.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The connection to [`current`](Self::current) ended (`opened`: it had
    /// been open): moves on to the next relay and gives how long to wait
    /// before connecting to it.
    pub fn failed(&mut self, opened: bool, jitter: f64) -> u64 {
        if opened {
            self.failures = 0;
        }
        let len = self.urls.len().max(1) as u32;
        let rounds = self.failures / len;
        self.failures = self.failures.saturating_add(1);
        self.at = (self.at + 1) % self.urls.len().max(1);
        reconnect_delay_ms(rounds, jitter)
    }
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
    fn relay_lists_are_checked() {
        assert_eq!(
            check_relay_urls(["ws://a/ws", " wss://b/ws ", "ws://a/ws"]).unwrap(),
            ["ws://a/ws", "wss://b/ws"]
        );
        assert!(check_relay_urls([]).is_err());
        assert!(check_relay_urls(["ws://a/ws", "http://b"]).is_err());
        assert!(check_relay_urls(["ws://a/ws", ""]).is_err());
    }

    #[test]
    fn a_relay_list_is_shuffled_and_fails_over_in_turn() {
        let urls: Vec<String> = ["ws://a", "ws://b", "ws://c"].map(String::from).to_vec();
        // Every order comes out of some random draws.
        let mut orders = std::collections::BTreeSet::new();
        for x in 0..10 {
            for y in 0..10 {
                let mut draws = [x as f64 / 10.0, y as f64 / 10.0].into_iter();
                orders.insert(
                    RelayList::new(urls.clone(), || draws.next().unwrap())
                        .urls()
                        .to_vec(),
                );
            }
        }
        assert_eq!(orders.len(), 6);
        let mut list = RelayList::new(urls.clone(), || 0.99);
        let first = list.current().to_owned();
        // A relay that was open and closed: the next one, after the first
        // (short) delay; then the third; a whole round failed backs off.
        assert_eq!(list.failed(true, 1.0), 500);
        let second = list.current().to_owned();
        assert_eq!(list.failed(false, 1.0), 500);
        let third = list.current().to_owned();
        assert_eq!(list.failed(false, 1.0), 500);
        assert_eq!(list.current(), first);
        assert_eq!(list.failed(false, 1.0), 1_000);
        let mut seen = [first, second, third];
        seen.sort();
        assert_eq!(seen.to_vec(), urls);
        // One relay: as before (500 ms doubling, reset after it was open).
        let mut one = RelayList::new(vec!["ws://a".into()], || 0.5);
        assert_eq!(
            [
                one.failed(false, 1.0),
                one.failed(false, 1.0),
                one.failed(true, 1.0)
            ],
            [500, 1_000, 500]
        );
        assert_eq!(one.current(), "ws://a");
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
