//! What one client address may hold and do: open HTTP connections, open
//! WebSockets, rooms it created, joins and TURN credential requests per
//! second. Without these, one machine can take every connection slot or
//! every room of the relay.
//!
//! An address is an IPv4 address or an IPv6 /64 (one subscriber's network:
//! an attacker with IPv6 has billions of addresses in it). Behind a proxy
//! named with `--trusted-proxy`, the limits apply to the client address the
//! proxy puts last in `X-Forwarded-For`.
//!
//! Counts are released by dropping the [`Slot`] that took them, so no path
//! (an error, a panic in a connection task) can leak one. Entries that hold
//! nothing are swept once their rate buckets would be full again.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::lock;

/// The unit the per-address limits count by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddrKey(IpAddr);

impl AddrKey {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let bits = u128::from(v6) & !((1u128 << 64) - 1);
                    Self(IpAddr::V6(Ipv6Addr::from(bits)))
                }
            },
        }
    }
}

impl std::fmt::Display for AddrKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// The per-address limits (see `Config`).
#[derive(Clone, Copy, Debug)]
pub struct PerAddr {
    pub http_connections: usize,
    pub websockets: usize,
    pub rooms: usize,
    pub joins_per_sec: f64,
    pub joins_burst: f64,
    pub ice_per_sec: f64,
    pub ice_burst: f64,
}

/// What is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Http,
    WebSocket,
    Room,
}

#[derive(Debug)]
struct Entry {
    http: usize,
    websockets: usize,
    rooms: usize,
    joins: Bucket,
    ice: Bucket,
    /// Connections it may still have closed for abuse before it is shut
    /// out ([`ABUSE_BURST`], refilled at [`ABUSE_PER_SEC`]).
    abuse: Bucket,
    /// Shut out until then: its new connections are closed at accept.
    shut_out_until: Option<Instant>,
}

/// How many of an address's connections may be closed for abuse (a flood
/// past the rate limit, invalid UTF-8, a WebSocket protocol error, a frame
/// over the hard size limit, a message not finished in time) in a burst,
/// and how fast that allowance comes back. No client of the protocol
/// causes any of these; a program that does it in a loop reconnects as
/// fast as it is closed, and each round costs the relay an HTTP request
/// and a WebSocket handshake.
pub(crate) const ABUSE_BURST: f64 = 20.0;
pub(crate) const ABUSE_PER_SEC: f64 = 1.0;
/// An address past its abuse allowance is shut out this long: its new
/// TCP connections are closed as they are accepted (and its upgrades
/// through a trusted proxy answered 429).
pub(crate) const SHUT_OUT_FOR: Duration = Duration::from_secs(30);

impl PerAddr {
    fn limit(&self, kind: Kind) -> usize {
        match kind {
            Kind::Http => self.http_connections,
            Kind::WebSocket => self.websockets,
            Kind::Room => self.rooms,
        }
    }
}

impl Entry {
    /// How much longer it is shut out, if it is.
    fn shut_out_left(&self, now: Instant) -> Option<Duration> {
        self.shut_out_until
            .and_then(|t| t.checked_duration_since(now))
            .filter(|left| !left.is_zero())
    }

    fn count(&mut self, kind: Kind) -> &mut usize {
        match kind {
            Kind::Http => &mut self.http,
            Kind::WebSocket => &mut self.websockets,
            Kind::Room => &mut self.rooms,
        }
    }
}

/// A token bucket: up to `burst` tokens, refilled at `per_sec`. The rates
/// are passed in rather than kept, so one per address stays small; the
/// per-connection message limit (`conn::RateLimit`) keeps its own.
#[derive(Debug)]
pub(crate) struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub(crate) fn full(burst: f64, now: Instant) -> Self {
        Self {
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, per_sec: f64, burst: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_sec).min(burst);
        self.last = now;
    }

    pub(crate) fn take(&mut self, per_sec: f64, burst: f64, now: Instant) -> bool {
        self.refill(per_sec, burst, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Seconds until a token is there.
    fn wait(&self, per_sec: f64) -> f64 {
        if per_sec <= 0.0 {
            return f64::INFINITY;
        }
        ((1.0 - self.tokens) / per_sec).max(0.0)
    }
}

/// Every address that holds something or was heard from recently.
#[derive(Debug)]
pub(crate) struct Addresses {
    limits: PerAddr,
    map: Mutex<HashMap<AddrKey, Entry>>,
}

/// One counted thing, released when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    owner: Arc<Addresses>,
    key: AddrKey,
    kind: Kind,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = lock(&self.owner.map);
        if let Some(e) = map.get_mut(&self.key) {
            let n = e.count(self.kind);
            *n = n.saturating_sub(1);
        }
    }
}

impl Addresses {
    pub(crate) fn new(limits: PerAddr) -> Arc<Self> {
        Arc::new(Self {
            limits,
            map: Mutex::new(HashMap::new()),
        })
    }

    fn entry<'a>(
        &self,
        map: &'a mut HashMap<AddrKey, Entry>,
        key: AddrKey,
        now: Instant,
    ) -> &'a mut Entry {
        let l = &self.limits;
        map.entry(key).or_insert_with(|| Entry {
            http: 0,
            websockets: 0,
            rooms: 0,
            joins: Bucket::full(l.joins_burst, now),
            ice: Bucket::full(l.ice_burst, now),
            abuse: Bucket::full(ABUSE_BURST, now),
            shut_out_until: None,
        })
    }

    /// Counts one of `key`'s connections closed for abuse. True when that
    /// was one too many: the address is shut out from now on, for
    /// [`SHUT_OUT_FOR`].
    pub(crate) fn abused(&self, key: AddrKey) -> bool {
        let now = Instant::now();
        let mut map = lock(&self.map);
        let e = self.entry(&mut map, key, now);
        if e.shut_out_left(now).is_some() {
            return false;
        }
        if e.abuse.take(ABUSE_PER_SEC, ABUSE_BURST, now) {
            return false;
        }
        e.shut_out_until = Some(now + SHUT_OUT_FOR);
        true
    }

    /// Whether `key` is shut out now, and if so for how much longer.
    pub(crate) fn shut_out(&self, key: AddrKey) -> Option<Duration> {
        let now = Instant::now();
        lock(&self.map).get(&key).and_then(|e| e.shut_out_left(now))
    }

    /// Takes one `kind` for `key`, or gives back the limit it is at.
    pub(crate) fn take(self: &Arc<Self>, key: AddrKey, kind: Kind) -> Result<Slot, usize> {
        let limit = self.limits.limit(kind);
        let mut map = lock(&self.map);
        let n = self.entry(&mut map, key, Instant::now()).count(kind);
        if *n >= limit {
            return Err(limit);
        }
        *n += 1;
        Ok(Slot {
            owner: self.clone(),
            key,
            kind,
        })
    }

    /// Takes a join token, or gives back the seconds until one is there.
    pub(crate) fn join(&self, key: AddrKey) -> Result<(), f64> {
        let l = self.limits;
        self.token(key, |e| &mut e.joins, l.joins_per_sec, l.joins_burst)
    }

    /// Takes a TURN credential token, or gives back the seconds to wait.
    pub(crate) fn ice(&self, key: AddrKey) -> Result<(), f64> {
        let l = self.limits;
        self.token(key, |e| &mut e.ice, l.ice_per_sec, l.ice_burst)
    }

    fn token(
        &self,
        key: AddrKey,
        bucket: fn(&mut Entry) -> &mut Bucket,
        per_sec: f64,
        burst: f64,
    ) -> Result<(), f64> {
        let now = Instant::now();
        let mut map = lock(&self.map);
        let b = bucket(self.entry(&mut map, key, now));
        if b.take(per_sec, burst, now) {
            Ok(())
        } else {
            Err(b.wait(per_sec))
        }
    }

    /// Forgets addresses that hold nothing and whose buckets are full again.
    pub(crate) fn sweep(&self) {
        let l = self.limits;
        let now = Instant::now();
        let mut map = lock(&self.map);
        map.retain(|_, e| {
            e.joins.refill(l.joins_per_sec, l.joins_burst, now);
            e.ice.refill(l.ice_per_sec, l.ice_burst, now);
            e.abuse.refill(ABUSE_PER_SEC, ABUSE_BURST, now);
            if e.shut_out_left(now).is_none() {
                e.shut_out_until = None;
            }
            e.http + e.websockets + e.rooms > 0
                || e.joins.tokens < l.joins_burst
                || e.ice.tokens < l.ice_burst
                || e.abuse.tokens < ABUSE_BURST
                || e.shut_out_until.is_some()
        });
        if map.capacity() > 64 && map.capacity() > 4 * map.len() {
            map.shrink_to_fit();
        }
    }

    /// Addresses remembered now.
    pub(crate) fn len(&self) -> usize {
        lock(&self.map).len()
    }

    /// How often [`sweep`](Self::sweep) should run.
    pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(10);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> PerAddr {
        PerAddr {
            http_connections: 2,
            websockets: 1,
            rooms: 1,
            joins_per_sec: 1.0,
            joins_burst: 2.0,
            ice_per_sec: 1000.0,
            ice_burst: 1.0,
        }
    }

    #[test]
    fn ipv6_counts_by_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(AddrKey::of(a), AddrKey::of(b));
        assert_ne!(AddrKey::of(a), AddrKey::of(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(AddrKey::of(mapped), AddrKey::of(v4));
        assert_eq!(AddrKey::of(a).to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn slots_are_limited_per_address_and_released_on_drop() {
        let addrs = Addresses::new(limits());
        let a = AddrKey::of("10.0.0.1".parse().unwrap());
        let b = AddrKey::of("10.0.0.2".parse().unwrap());
        let h1 = addrs.take(a, Kind::Http).unwrap();
        let _h2 = addrs.take(a, Kind::Http).unwrap();
        assert_eq!(addrs.take(a, Kind::Http).unwrap_err(), 2);
        let _other = addrs.take(b, Kind::Http).unwrap();
        let _ws = addrs.take(a, Kind::WebSocket).unwrap();
        assert!(addrs.take(a, Kind::WebSocket).is_err());
        drop(h1);
        let _h3 = addrs.take(a, Kind::Http).unwrap();
    }

    #[test]
    fn joins_are_rate_limited_and_idle_addresses_forgotten() {
        let addrs = Addresses::new(limits());
        let a = AddrKey::of("10.0.0.1".parse().unwrap());
        assert!(addrs.join(a).is_ok());
        assert!(addrs.join(a).is_ok());
        let wait = addrs.join(a).unwrap_err();
        assert!(wait > 0.0 && wait <= 1.0, "{wait}");
        assert!(addrs.ice(a).is_ok());
        // Holds nothing, but its join bucket is not full: remembered.
        addrs.sweep();
        assert_eq!(addrs.len(), 1);
        let slot = addrs.take(a, Kind::Room).unwrap();
        drop(slot);
        std::thread::sleep(Duration::from_millis(2100));
        addrs.sweep();
        assert_eq!(addrs.len(), 0);
    }

    #[test]
    fn an_address_past_its_abuse_allowance_is_shut_out_and_others_are_not() {
        let addrs = Addresses::new(limits());
        let a = AddrKey::of("10.0.0.1".parse().unwrap());
        let b = AddrKey::of("10.0.0.2".parse().unwrap());
        for _ in 0..ABUSE_BURST as usize {
            assert!(!addrs.abused(a));
        }
        assert_eq!(addrs.shut_out(a), None);
        assert!(addrs.abused(a), "one past the burst shuts it out");
        let left = addrs.shut_out(a).expect("shut out");
        assert!(left > SHUT_OUT_FOR - Duration::from_secs(1) && left <= SHUT_OUT_FOR);
        assert!(!addrs.abused(a), "shut out once, not again while it lasts");
        assert_eq!(addrs.shut_out(b), None);
        // Remembered while shut out, though it holds nothing.
        addrs.sweep();
        assert!(addrs.len() >= 1);
    }
}
