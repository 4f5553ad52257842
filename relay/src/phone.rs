//! Phone calls (PROTOCOL.md 5.13): a client's `phone_call` becomes a call
//! through the SIP plugin of a Janus gateway (`--janus`), and what the
//! plugin reports becomes `phone_state` messages for the client.
//!
//! One call is one task with its own Janus session ([`crate::janus`]): it
//! registers (as a guest, or with the operator's account), sends the
//! INVITE with the browser's offer, relays the answer, and hangs up when
//! the client says so or goes away ([`PhoneCall`] dropped). The SIP
//! plugin forwards RTP between the browser's DTLS-SRTP and the far end's
//! plain RTP without transcoding, telephone events (RFC 4733) included.

use std::sync::Arc;
use std::time::Duration;

use peercall_protocol::{phone_causes, Body, PhoneStatus};
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::janus::{JanusError, Session};

/// The SIP plugin's name in Janus.
const SIP_PLUGIN: &str = "janus.plugin.sip";
/// How long connecting to one Janus may take.
const CONNECT_LIMIT: Duration = Duration::from_secs(5);
/// How long a call may ring before we give up, as phones do.
pub(crate) const RING_LIMIT: Duration = Duration::from_secs(90);
/// How long our hang-up waits for the plugin to confirm it.
const HANGUP_LIMIT: Duration = Duration::from_secs(5);
/// How long a lost media path waits for the client's own hang-up, which
/// may be on its way, before it is reported as the cause.
const MEDIA_GRACE: Duration = Duration::from_millis(500);

/// The operator's settings (`--janus`, `--janus-secret`, `--sip-*`).
#[derive(Clone, Debug, Default)]
pub struct PhoneConfig {
    /// Janus WebSocket URLs, tried in order.
    pub janus: Vec<String>,
    /// Janus's API secret, if it has one.
    pub janus_secret: Option<String>,
    /// Completes bare numbers: `sip:NUMBER@DOMAIN`.
    pub domain: Option<String>,
    /// Every INVITE (and REGISTER) goes through this SIP proxy.
    pub proxy: Option<String>,
    /// The SIP account calls are made from (`sip:user@provider`); without
    /// `password`, only the From address (no REGISTER).
    pub user: Option<String>,
    /// The account's password: the gateway registers with it.
    pub password: Option<String>,
}

impl PhoneConfig {
    /// Whether phone calls are offered at all.
    pub fn enabled(&self) -> bool {
        !self.janus.is_empty()
    }
}

/// The SIP URI to call for what the person typed.
pub fn sip_uri(address: &str, domain: Option<&str>) -> Result<String, String> {
    let address = address.trim();
    if address.is_empty() || address.len() > 256 {
        return Err("an address is 1 to 256 characters".into());
    }
    if address.chars().any(|c| c.is_control() || c.is_whitespace())
        && (address.starts_with("sip:") || address.starts_with("sips:") || address.contains('@'))
    {
        return Err("a SIP address has no spaces or control characters".into());
    }
    let lower = address.to_ascii_lowercase();
    if lower.starts_with("sip:") || lower.starts_with("sips:") {
        let rest = &address[address.find(':').map_or(0, |i| i + 1)..];
        return match rest.split_once('@') {
            Some((user, host)) if !user.is_empty() && !host.is_empty() => Ok(address.to_owned()),
            None if !rest.is_empty() => Ok(address.to_owned()),
            _ => Err(format!("{address:?} is not a SIP address")),
        };
    }
    if let Some((user, host)) = address.split_once('@') {
        if user.is_empty() || host.is_empty() || host.contains('@') {
            return Err(format!("{address:?} is not a SIP address"));
        }
        return Ok(format!("sip:{address}"));
    }
    let number: String = address
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let plus = number.strip_prefix('+').unwrap_or(&number);
    if plus.is_empty()
        || !plus
            .chars()
            .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
    {
        return Err(format!(
            "{address:?} is neither a phone number nor a SIP address (user@host)"
        ));
    }
    match domain {
        Some(domain) => Ok(format!("sip:{number}@{domain}")),
        None => Err(
            "this server calls SIP addresses only (user@host): it has no SIP domain \
             for plain numbers"
                .into(),
        ),
    }
}

/// What one SIP plugin event (or a Janus core event) means for the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SipEvent {
    Registered,
    RegistrationFailed(String),
    Calling,
    Ringing,
    /// 183 with early media: the answer.
    Progress(Option<String>),
    Accepted(Option<String>),
    /// The call ended: SIP's status code and reason.
    Hangup {
        code: u16,
        reason: String,
    },
    /// The plugin refused a request (bad URI, wrong state, ...).
    PluginError {
        code: i64,
        error: String,
    },
    /// Janus's side of the media connection closed (ICE or DTLS failed).
    MediaDown(String),
    /// Nothing the call acts on (`webrtcup`, `media`, `slowlink`, ...).
    Other,
}

/// Reads one event from Janus.
pub(crate) fn classify(event: &Value) -> SipEvent {
    let sdp = || event["jsep"]["sdp"].as_str().map(str::to_owned);
    match event["janus"].as_str() {
        Some("event") => {}
        Some("hangup") => {
            return SipEvent::MediaDown(
                event["reason"]
                    .as_str()
                    .unwrap_or("the media connection closed")
                    .to_owned(),
            )
        }
        _ => return SipEvent::Other,
    }
    let data = &event["plugindata"]["data"];
    if let Some(code) = data["error_code"].as_i64() {
        return SipEvent::PluginError {
            code,
            error: data["error"].as_str().unwrap_or("unknown error").to_owned(),
        };
    }
    let result = &data["result"];
    match result["event"].as_str() {
        Some("registered") => SipEvent::Registered,
        Some("registration_failed") => SipEvent::RegistrationFailed(format!(
            "{} {}",
            result["code"].as_u64().unwrap_or(0),
            result["reason"].as_str().unwrap_or("")
        )),
        Some("calling") => SipEvent::Calling,
        Some("ringing") => SipEvent::Ringing,
        Some("progress") => SipEvent::Progress(sdp()),
        Some("accepted") => SipEvent::Accepted(sdp()),
        Some("hangup") => SipEvent::Hangup {
            code: result["code"]
                .as_u64()
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or(0),
            reason: result["reason"].as_str().unwrap_or("").to_owned(),
        },
        _ => SipEvent::Other,
    }
}

/// A `phone_state` message's body.
pub(crate) fn state(state: PhoneStatus, sdp: Option<String>) -> Body {
    Body::PhoneState {
        state,
        sdp,
        code: None,
        cause: None,
        reason: None,
    }
}

/// An `ended` `phone_state` body.
pub(crate) fn ended(cause: &str, code: Option<u16>, reason: impl Into<String>) -> Body {
    Body::PhoneState {
        state: PhoneStatus::Ended,
        sdp: None,
        code,
        cause: Some(cause.to_owned()),
        reason: Some(reason.into()),
    }
}

/// A running phone call. Dropping it hangs up.
#[derive(Debug)]
pub(crate) struct PhoneCall {
    hang_up: Option<oneshot::Sender<()>>,
}

impl PhoneCall {
    /// Asks the call to end; its `ended` comes through `report`.
    pub(crate) fn hang_up(&mut self) {
        if let Some(tx) = self.hang_up.take() {
            let _ = tx.send(());
        }
    }

    /// Whether the call is still going.
    pub(crate) fn running(&self) -> bool {
        self.hang_up.as_ref().is_some_and(|tx| !tx.is_closed())
    }
}

impl Drop for PhoneCall {
    fn drop(&mut self) {
        self.hang_up();
    }
}

/// Starts calling `address` with `offer`; `report` gets every
/// `phone_state` body, the last one `ended`.
pub(crate) fn start(
    config: Arc<PhoneConfig>,
    address: String,
    offer: String,
    report: impl Fn(Body) + Send + Sync + 'static,
    log_id: u64,
) -> PhoneCall {
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let last = run(&config, &address, offer, &report, rx, log_id).await;
        tracing::info!(conn = log_id, ?last, "phone call ended");
        report(last);
    });
    PhoneCall { hang_up: Some(tx) }
}

/// The call from start to end; returns its `ended` body.
async fn run(
    config: &PhoneConfig,
    address: &str,
    offer: String,
    report: &impl Fn(Body),
    mut hang_up: oneshot::Receiver<()>,
    log_id: u64,
) -> Body {
    let uri = match sip_uri(address, config.domain.as_deref()) {
        Ok(uri) => uri,
        Err(e) => return ended(phone_causes::BAD_ADDRESS, None, e),
    };
    let mut session = None;
    let mut why = String::from("no gateway is configured");
    for url in &config.janus {
        match Session::open(url, config.janus_secret.as_deref(), CONNECT_LIMIT).await {
            Ok(s) => {
                session = Some(s);
                break;
            }
            Err(e) => {
                tracing::warn!(conn = log_id, janus = %url, error = %e, "Janus unreachable");
                why = e.to_string();
            }
        }
    }
    let Some(mut session) = session else {
        return ended(phone_causes::GATEWAY, None, why);
    };
    let outcome = call(
        &mut session,
        config,
        &uri,
        offer,
        report,
        &mut hang_up,
        log_id,
    )
    .await;
    session.destroy().await;
    match outcome {
        Ok(body) => body,
        Err(e) => ended(phone_causes::GATEWAY, None, e.to_string()),
    }
}

async fn call(
    session: &mut Session,
    config: &PhoneConfig,
    uri: &str,
    offer: String,
    report: &impl Fn(Body),
    hang_up: &mut oneshot::Receiver<()>,
    log_id: u64,
) -> Result<Body, JanusError> {
    let handle = session.attach(SIP_PLUGIN).await?;
    let mut register = json!({
        "request": "register",
        "username": config.user.as_deref().unwrap_or("sip:peercall@peercall.invalid"),
        "display_name": "peercall",
    });
    match &config.password {
        Some(password) => register["secret"] = json!(password),
        None => register["type"] = json!("guest"),
    }
    if let Some(proxy) = &config.proxy {
        register["proxy"] = json!(proxy);
        register["outbound_proxy"] = json!(proxy);
    }
    session.message(handle, register, None).await?;
    loop {
        let Some(event) = session.next_event().await else {
            return Err(JanusError::Closed);
        };
        match classify(&event) {
            SipEvent::Registered => break,
            SipEvent::RegistrationFailed(why) => {
                return Ok(ended(
                    phone_causes::GATEWAY,
                    None,
                    format!("the gateway could not register with the SIP provider: {why}"),
                ))
            }
            SipEvent::PluginError { code, error } => {
                return Ok(ended(
                    phone_causes::GATEWAY,
                    None,
                    format!("the gateway refused to register ({code}): {error}"),
                ))
            }
            _ => {}
        }
    }
    session
        .message(
            handle,
            json!({"request": "call", "uri": uri, "autoaccept_reinvites": true}),
            Some(json!({"type": "offer", "sdp": offer})),
        )
        .await?;
    tracing::info!(conn = log_id, uri, "phone call placed");
    let mut answered = false;
    let mut sent_answer = false;
    let ring_deadline = tokio::time::Instant::now() + RING_LIMIT;
    loop {
        let ringing = !answered;
        let event = tokio::select! {
            _ = &mut *hang_up => {
                return Ok(hang_up_now(session, handle, phone_causes::HANGUP, None, "you hung up").await);
            }
            () = tokio::time::sleep_until(ring_deadline), if ringing => {
                return Ok(hang_up_now(session, handle, phone_causes::REFUSED, Some(408), "No answer").await);
            }
            event = session.next_event() => match event {
                Some(event) => event,
                None => return Err(JanusError::Closed),
            },
        };
        match classify(&event) {
            SipEvent::Calling => report(state(PhoneStatus::Calling, None)),
            SipEvent::Ringing => report(state(PhoneStatus::Ringing, None)),
            SipEvent::Progress(sdp) => {
                sent_answer |= sdp.is_some();
                report(state(PhoneStatus::Ringing, sdp));
            }
            SipEvent::Accepted(sdp) => {
                answered = true;
                let sdp = if sent_answer { None } else { sdp };
                sent_answer |= sdp.is_some();
                report(state(PhoneStatus::Answered, sdp));
            }
            SipEvent::Hangup { code, reason } => {
                return Ok(if answered {
                    ended(phone_causes::REMOTE_HANGUP, Some(code), reason)
                } else {
                    ended(phone_causes::REFUSED, Some(code), reason)
                });
            }
            SipEvent::PluginError { code, error } => {
                let cause = if code == 446 || code == 447 {
                    phone_causes::BAD_ADDRESS
                } else {
                    phone_causes::GATEWAY
                };
                return Ok(ended(cause, None, format!("{error} ({code})")));
            }
            SipEvent::MediaDown(why) => {
                // A client that hangs up closes its connection too: Janus
                // may see the DTLS close before the relay sees the hang-up.
                let hung_up = tokio::time::timeout(MEDIA_GRACE, &mut *hang_up).await;
                let (cause, why) = if hung_up.is_ok_and(|r| r.is_ok()) {
                    (phone_causes::HANGUP, "you hung up".to_owned())
                } else {
                    (phone_causes::MEDIA, why)
                };
                return Ok(hang_up_now(session, handle, cause, None, why).await);
            }
            SipEvent::Registered | SipEvent::RegistrationFailed(_) | SipEvent::Other => {
                tracing::debug!(conn = log_id, %event, "Janus event");
            }
        }
    }
}

/// Hangs the call up at the gateway (CANCEL or BYE) and gives the
/// `ended` to report.
async fn hang_up_now(
    session: &mut Session,
    handle: u64,
    cause: &str,
    code: Option<u16>,
    reason: impl Into<String>,
) -> Body {
    if session
        .message(handle, json!({"request": "hangup"}), None)
        .await
        .is_ok()
    {
        // Wait for the plugin's own hangup event, so the far end has been
        // told before the session goes.
        let _ = tokio::time::timeout(HANGUP_LIMIT, async {
            while let Some(event) = session.next_event().await {
                if matches!(classify(&event), SipEvent::Hangup { .. }) {
                    break;
                }
            }
        })
        .await;
    }
    ended(cause, code, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_become_sip_uris() {
        let d = Some("pbx.example");
        assert_eq!(
            sip_uri("sip:alice@example.com", d).unwrap(),
            "sip:alice@example.com"
        );
        assert_eq!(
            sip_uri(" sips:bob@example.com:5061 ", None).unwrap(),
            "sips:bob@example.com:5061"
        );
        assert_eq!(
            sip_uri("alice@127.0.0.1:5062", None).unwrap(),
            "sip:alice@127.0.0.1:5062"
        );
        assert_eq!(
            sip_uri("+49 (30) 123-45.67", d).unwrap(),
            "sip:+49301234567@pbx.example"
        );
        assert_eq!(sip_uri("*86#", d).unwrap(), "sip:*86#@pbx.example");
        assert!(sip_uri("+49 30 1234567", None)
            .unwrap_err()
            .contains("SIP domain"));
        for bad in [
            "",
            "   ",
            "sip:",
            "@host",
            "alice@",
            "a@b@c",
            "call me",
            "sip:a b@c",
            "12a4",
        ] {
            assert!(sip_uri(bad, d).is_err(), "{bad:?}");
        }
        assert!(sip_uri(&"1".repeat(300), d).is_err());
    }

    #[test]
    fn janus_events_are_read() {
        let sip = |result: Value| {
            json!({"janus": "event", "plugindata": {"plugin": SIP_PLUGIN,
                "data": {"sip": "event", "result": result}}})
        };
        assert_eq!(
            classify(&sip(json!({"event": "registered"}))),
            SipEvent::Registered
        );
        assert_eq!(
            classify(&sip(json!({"event": "ringing"}))),
            SipEvent::Ringing
        );
        let mut accepted = sip(json!({"event": "accepted"}));
        accepted["jsep"] = json!({"type": "answer", "sdp": "v=0"});
        assert_eq!(classify(&accepted), SipEvent::Accepted(Some("v=0".into())));
        assert_eq!(
            classify(&sip(
                json!({"event": "hangup", "code": 486, "reason": "Busy Here"})
            )),
            SipEvent::Hangup {
                code: 486,
                reason: "Busy Here".into()
            }
        );
        let error = json!({"janus": "event", "plugindata": {"plugin": SIP_PLUGIN,
            "data": {"sip": "event", "error_code": 446, "error": "Invalid user address"}}});
        assert_eq!(
            classify(&error),
            SipEvent::PluginError {
                code: 446,
                error: "Invalid user address".into()
            }
        );
        assert_eq!(
            classify(&json!({"janus": "hangup", "reason": "ICE failed"})),
            SipEvent::MediaDown("ICE failed".into())
        );
        assert_eq!(classify(&json!({"janus": "webrtcup"})), SipEvent::Other);
        assert_eq!(classify(&json!(null)), SipEvent::Other);
    }
}
