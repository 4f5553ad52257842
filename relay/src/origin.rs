//! Which web pages may use the relay: the `Origin` of a WebSocket upgrade
//! and of a request for `/ice-servers` (docs/PROTOCOL.md 5.10).
//!
//! - `--allowed-origin` (repeatable) names origins, `scheme://host[:port]`,
//!   or `*` for any.
//! - Serving the app, the relay also allows its own origin: one whose host
//!   and port are the request's `Host` (the scheme is not compared, so a
//!   TLS proxy in front that keeps `Host` changes nothing).
//! - Not serving the app and given no list, it allows any origin: the app
//!   is hosted elsewhere, and a deployment that wants the check names it.
//! - A request without `Origin` is allowed: browsers always send it with a
//!   WebSocket upgrade and with a cross-origin fetch, and a program that is
//!   not a browser can send whatever it likes anyway. What the check stops
//!   is another site's page using a visitor's browser against the relay.

use axum::http::header::{HOST, ORIGIN};
use axum::http::{HeaderMap, Uri};

/// The origins a relay allows, decided once at start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origins {
    any: bool,
    own: bool,
    /// Normalized: lowercase, no default port, no trailing slash.
    listed: Vec<String>,
}

/// What [`Origins::check`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict<'a> {
    /// No `Origin` header: not a browser's cross-site request.
    NoOrigin,
    /// Allowed; the origin as sent, for `Access-Control-Allow-Origin`.
    Allowed(&'a str),
    /// Refused; the origin as sent, for the log.
    Refused(&'a str),
}

impl Origins {
    /// The policy for `--allowed-origin` values `listed` on a relay that
    /// does (`serves_app`) or does not serve the app.
    pub fn new(listed: &[String], serves_app: bool) -> Result<Self, String> {
        let mut origins = Origins {
            own: serves_app,
            any: listed.is_empty() && !serves_app,
            listed: Vec::new(),
        };
        for origin in listed {
            if origin.trim() == "*" {
                origins.any = true;
                continue;
            }
            let normal = normalize(origin).ok_or_else(|| {
                format!(
                    "--allowed-origin {origin:?} is not an origin: give scheme://host[:port], \
                     e.g. https://call.example.com (no path), or *"
                )
            })?;
            origins.listed.push(normal);
        }
        Ok(origins)
    }

    /// Whether every origin is allowed (`Access-Control-Allow-Origin: *`).
    pub(crate) fn any(&self) -> bool {
        self.any
    }

    /// Judges a request's `Origin` against this policy.
    pub(crate) fn check<'a>(&self, headers: &'a HeaderMap) -> Verdict<'a> {
        let Some(sent) = headers.get(ORIGIN) else {
            return Verdict::NoOrigin;
        };
        let Ok(sent) = sent.to_str() else {
            return Verdict::Refused("(not ASCII)");
        };
        if self.any {
            return Verdict::Allowed(sent);
        }
        let Some(normal) = normalize(sent) else {
            // "null" (a sandboxed frame, a file: page) and anything else
            // that names no host.
            return Verdict::Refused(sent);
        };
        if self.listed.contains(&normal) {
            return Verdict::Allowed(sent);
        }
        if self.own {
            let host = headers.get(HOST).and_then(|h| h.to_str().ok());
            if host.is_some_and(|host| same_host(&normal, host)) {
                return Verdict::Allowed(sent);
            }
        }
        Verdict::Refused(sent)
    }
}

/// `scheme://host[:port]` in lowercase without the scheme's default port;
/// `None` for anything else (a path, a query, user info, no host).
fn normalize(origin: &str) -> Option<String> {
    let origin = origin.trim().trim_end_matches('/');
    let uri: Uri = origin.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let authority = uri.authority()?;
    if authority.as_str().contains('@') || uri.query().is_some() {
        return None;
    }
    if !matches!(uri.path(), "" | "/") {
        return None;
    }
    let host = authority.host().to_ascii_lowercase();
    if host.is_empty() {
        return None;
    }
    let default = match scheme.as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    };
    Some(match authority.port_u16() {
        Some(port) if Some(port) != default => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// Whether the normalized origin's host and port are `Host`'s; the port of
/// an origin without one is its scheme's default, and so is `Host`'s.
fn same_host(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let default = if scheme == "https" { 443 } else { 80 };
    let split = |a: &str| -> Option<(String, u16)> {
        let uri: Uri = format!("http://{a}").parse().ok()?;
        let auth = uri.authority()?;
        Some((
            auth.host().to_ascii_lowercase(),
            auth.port_u16().unwrap_or(0),
        ))
    };
    let (Some((oh, op)), Some((hh, hp))) = (split(authority), split(host.trim())) else {
        return false;
    };
    let op = if op == 0 { default } else { op };
    // Without a port in Host, the client used the scheme's default; the
    // relay cannot tell which scheme the page used behind a proxy, so
    // either default matches an origin with no port.
    let hp_ok = if hp == 0 { op == default } else { hp == op };
    oh == hh && hp_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(o) = origin {
            h.insert(ORIGIN, o.parse().unwrap());
        }
        h.insert(HOST, host.parse().unwrap());
        h
    }

    fn allowed(o: &Origins, origin: &str, host: &str) -> bool {
        matches!(o.check(&headers(Some(origin), host)), Verdict::Allowed(_))
    }

    #[test]
    fn origins_are_normalized_and_bad_ones_refused_at_start() {
        assert_eq!(
            normalize("HTTPS://Call.Example.com:443/").as_deref(),
            Some("https://call.example.com")
        );
        assert_eq!(
            normalize("http://127.0.0.1:8080").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(
            normalize("http://[::1]:80").as_deref(),
            Some("http://[::1]")
        );
        for bad in [
            "call.example.com",
            "https://a.example/path",
            "https://u@a.example",
            "null",
            "",
            "https://",
        ] {
            assert!(normalize(bad).is_none(), "{bad:?}");
            assert!(Origins::new(&[bad.to_owned()], true).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn serving_the_app_allows_its_own_origin_and_the_listed_ones() {
        let o = Origins::new(&["https://app.example.com".into()], true).unwrap();
        assert!(allowed(&o, "http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(allowed(
            &o,
            "https://relay.example.com",
            "relay.example.com"
        ));
        assert!(allowed(
            &o,
            "https://relay.example.com",
            "relay.example.com:443"
        ));
        assert!(allowed(&o, "https://app.example.com", "relay.example.com"));
        assert!(!allowed(&o, "https://evil.example", "relay.example.com"));
        assert!(!allowed(&o, "http://127.0.0.1:9999", "127.0.0.1:8080"));
        assert!(!allowed(
            &o,
            "https://relay.example.com:8443",
            "relay.example.com"
        ));
        assert!(!allowed(&o, "null", "relay.example.com"));
        assert_eq!(o.check(&headers(None, "x")), Verdict::NoOrigin);
        assert!(!o.any());
    }

    #[test]
    fn without_the_app_any_origin_unless_some_are_named() {
        let any = Origins::new(&[], false).unwrap();
        assert!(any.any());
        assert!(allowed(
            &any,
            "https://anywhere.example",
            "relay.example.com"
        ));
        let named = Origins::new(&["https://app.example.com".into()], false).unwrap();
        assert!(allowed(
            &named,
            "https://app.example.com",
            "relay.example.com"
        ));
        // Its own origin is not the app's: it does not serve one.
        assert!(!allowed(
            &named,
            "https://relay.example.com",
            "relay.example.com"
        ));
        let star = Origins::new(&["*".into()], true).unwrap();
        assert!(allowed(
            &star,
            "https://anywhere.example",
            "relay.example.com"
        ));
    }
}
