//! The component link: connect (TCP_NODELAY), XEP-0114 handshake, read loop,
//! keepalive, and reconnection with backoff, forever until shutdown.
//!
//! We own the stream instead of using tokio-xmpp's `XmlStream`, because its
//! reader's limits cannot be set (see [`super::reader`]): one long attribute or
//! one deeply nested stanza from any user would cut the link or crash the
//! process. It runs on [`XmlConn`], which reads through the bounded
//! [`super::reader::StanzaReader`]; writing is minidom's
//! serialiser over elements that are either ours or came through the reader, so
//! every tree we touch is shallow.
//!
//! What arrives goes to the service over `inbound`; what the service sends comes
//! over `outbound`; every change of the link's state goes out on a `watch` of
//! [`LinkStatus`]. While the link is down, outbound stanzas wait in that bounded
//! channel. A stanza past a reader bound is answered here (an iq get/set gets a
//! 400 naming the bound) or dropped with one log line; the link stays up.

use std::time::Duration;

use minidom::Element;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};
use xmpp_parsers::component::Handshake;

use super::reader::{Bound, Inbound, ReaderLimits, StanzaHead};
use super::stream::{header, StreamDown, XmlConn};
use crate::core::link_status::{LinkState, LinkStatus};
use crate::logging::redact;
use crate::proto::error::DspsError;
use crate::proto::iq::{Iq, IqKind};
use crate::proto::xml::NS_COMPONENT;

/// Bound on connecting plus the component handshake.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);
/// First retry delay after a failed or lost link; doubles up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_millis(250);
/// Longest delay between reconnection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Silence after which we send a keepalive ping (Prosody only pings after 840 s).
pub const KEEPALIVE_AFTER: Duration = Duration::from_secs(60);
/// Bound on our footer and the server's answer to it when we close.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Silence after the keepalive after which the link is considered dead.
pub const DEAD_AFTER: Duration = Duration::from_secs(30);
/// Outbound stanzas written in one go when several are queued (one syscall
/// instead of one per stanza under load).
const WRITE_BATCH: usize = 64;

/// Where and how to log in.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// The server's component port, "host:port" (resolved on every attempt).
    pub server: String,
    /// Our component domain.
    pub domain: String,
    /// The shared secret.
    pub secret: String,
    /// What one inbound stanza may be.
    pub limits: ReaderLimits,
}

/// One open component stream.
pub type Link = XmlConn<TcpStream>;

/// Why one login attempt failed.
#[derive(Debug)]
pub enum LoginError {
    /// The server's name did not resolve, or none of its addresses accepted.
    Dial(super::dial::DialError),
    /// TCP or stream setup failed.
    Io(std::io::Error),
    /// The server refused our handshake (wrong secret or unknown domain).
    Refused(String),
    /// No answer within [`LOGIN_TIMEOUT`].
    Timeout,
}

impl std::fmt::Display for LoginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoginError::Dial(e) => write!(f, "{e}"),
            LoginError::Io(e) => write!(f, "{e}"),
            LoginError::Refused(why) => write!(f, "handshake refused: {why}"),
            LoginError::Timeout => write!(f, "no answer within {LOGIN_TIMEOUT:?}"),
        }
    }
}

/// Connects and performs the XEP-0114 handshake.
pub async fn login(cfg: &LinkConfig) -> Result<Link, LoginError> {
    tokio::time::timeout(LOGIN_TIMEOUT, login_inner(cfg))
        .await
        .map_err(|_| LoginError::Timeout)?
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn login_inner(cfg: &LinkConfig) -> Result<Link, LoginError> {
    let tcp = super::dial::connect(&cfg.server)
        .await
        .map_err(LoginError::Dial)?;
    // Without NODELAY a reply and a push sent back to back stall ~40 ms (notes §2).
    tcp.set_nodelay(true).map_err(LoginError::Io)?;
    let mut link = Link::new(tcp, cfg.limits);
    let refused = |e: StreamDown| LoginError::Refused(e.to_string());
    let stream_id = link
        .open(&header(NS_COMPONENT, &cfg.domain, false))
        .await
        .map_err(refused)?
        .ok_or_else(|| LoginError::Refused("server sent no stream id".into()))?;
    let digest = Handshake::from_stream_id_and_password(stream_id, &cfg.secret)
        .data
        .map(|d| hex(&d))
        .unwrap_or_default();
    let handshake = Element::builder("handshake", NS_COMPONENT)
        .append(digest)
        .build();
    link.send(&handshake).await.map_err(LoginError::Io)?;
    match link.next().await.map_err(refused)? {
        Inbound::Stanza(e) if e.name() == "handshake" => Ok(link),
        Inbound::Stanza(e) | Inbound::StreamError(e) => Err(LoginError::Refused(String::from(&e))),
        Inbound::Footer => Err(LoginError::Refused("stream closed".into())),
        other => Err(LoginError::Refused(format!("unexpected {other:?}"))),
    }
}

/// Sends our footer, then reads until the server's footer or its close of the
/// connection (RFC 6120 §4.4; Prosody just closes): it does either only after it
/// has read everything we sent before, so then the drop notices of a drain have
/// been taken. True if it did.
async fn close_politely(link: &mut Link) -> bool {
    if link.close().await.is_err() {
        return false;
    }
    loop {
        match link.next().await {
            Ok(Inbound::Footer) | Err(StreamDown::Eof) => return true,
            Ok(_) => {}
            Err(e) => {
                debug!("component link close: {e}");
                return false;
            }
        }
    }
}

/// Keeps the link up until `shutdown` turns true: logs in, forwards stanzas both
/// ways, and reconnects with exponential backoff, logging every attempt. Every
/// change is published on `status` ([`LinkStatus`]), ending with `Closed`.
pub async fn run(
    cfg: LinkConfig,
    inbound: mpsc::Sender<Element>,
    mut outbound: mpsc::Receiver<Element>,
    mut shutdown: watch::Receiver<bool>,
    status: watch::Sender<LinkStatus>,
) {
    let publish = |state: LinkState| status.send_modify(|s| s.enter(state, unix_now()));
    let mut backoff = MIN_BACKOFF;
    let mut attempt: u64 = 0;
    let server = redact::authority(&cfg.server);
    loop {
        attempt += 1;
        info!(%server, domain = %cfg.domain, attempt, "connecting to XMPP server");
        publish(LinkState::Connecting { attempt });
        let why = match login(&cfg).await {
            Ok(mut link) => {
                info!(%server, domain = %cfg.domain, "component online");
                publish(LinkState::Online);
                backoff = MIN_BACKOFF;
                attempt = 0;
                match serve(&cfg, &mut link, &inbound, &mut outbound, &mut shutdown).await {
                    Ok(()) => {
                        let closed =
                            tokio::time::timeout(CLOSE_TIMEOUT, close_politely(&mut link)).await;
                        match closed {
                            Ok(true) => info!("component link closed"),
                            _ => warn!("component link closed without the server's footer; stanzas still in flight may be lost"),
                        }
                        publish(LinkState::Closed);
                        return;
                    }
                    Err(why) => {
                        warn!(%server, "component link lost: {why}; reconnecting");
                        why
                    }
                }
            }
            Err(e) => {
                warn!(%server, attempt, retry_in = ?backoff, "component login failed: {e}");
                e.to_string()
            }
        };
        publish(LinkState::Down {
            attempt,
            why,
            retry_in: backoff,
        });
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = crate::service::stopped(&mut shutdown) => {
                publish(LinkState::Closed);
                return;
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The answer to a stanza the reader refused: an error for an iq request
/// (RFC 6120: every get/set gets one reply), nothing for anything else.
pub fn rejection_reply(head: &StanzaHead, bound: Bound, domain: &str) -> Option<Element> {
    if head.name != "iq" {
        return None;
    }
    let kind = head.kind.as_deref().and_then(IqKind::parse)?;
    if !kind.is_request() {
        return None;
    }
    let request = Iq {
        kind,
        id: head.id.clone().unwrap_or_default(),
        from: head.from.clone().unwrap_or_default(),
        // Prosody checks that what we send comes from our domain.
        to: head
            .to
            .clone()
            .filter(|t| crate::proto::iq::bare(t) == domain)
            .unwrap_or_else(|| domain.to_string()),
        payload: None,
        error: None,
    };
    if request.from.is_empty() {
        return None;
    }
    let text = bound.to_string();
    Some(
        request
            .error_reply(DspsError::BadRequest, Some(&text), NS_COMPONENT)
            .to_element(NS_COMPONENT),
    )
}

/// Serves one live link. `Ok` on shutdown, the reason when the link died.
async fn serve(
    cfg: &LinkConfig,
    link: &mut Link,
    inbound: &mpsc::Sender<Element>,
    outbound: &mut mpsc::Receiver<Element>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let mut pings: u64 = 0;
    let mut quiet_since = Instant::now();
    let mut pinged = false;
    loop {
        let idle_limit = if pinged { DEAD_AFTER } else { KEEPALIVE_AFTER };
        tokio::select! {
            item = link.next() => {
                quiet_since = Instant::now();
                pinged = false;
                match item {
                    Ok(Inbound::Stanza(e)) => {
                        if inbound.send(e).await.is_err() {
                            return Ok(());
                        }
                    }
                    Ok(Inbound::Rejected { head, bound }) => {
                        warn!(
                            stanza = %head.name, from = head.from.as_deref().unwrap_or(""),
                            id = head.id.as_deref().unwrap_or(""), "stanza dropped: {bound}"
                        );
                        if let Some(reply) = rejection_reply(&head, bound, &cfg.domain) {
                            if let Err(e) = link.send(&reply).await {
                                return Err(format!("write failed: {e}"));
                            }
                        }
                    }
                    Ok(Inbound::StreamError(e)) => {
                        return Err(format!("stream error from server: {}", String::from(&e)));
                    }
                    Ok(Inbound::Footer) => {
                        return Err("the server closed the component stream".into());
                    }
                    Ok(Inbound::Header { .. }) => debug!("second stream header ignored"),
                    Err(e) => return Err(format!("read failed: {e}")),
                }
            }
            _ = tokio::time::sleep_until(quiet_since + idle_limit) => {
                if pinged {
                    return Err(format!("no traffic from the server for {DEAD_AFTER:?} after a keepalive"));
                }
                // A ping to our own domain comes back to us through the server,
                // so traffic flows both ways and neither side times out.
                pings += 1;
                pinged = true;
                quiet_since = Instant::now();
                let ping = Element::builder("ping", "urn:xmpp:ping").build();
                let iq = Iq::request(IqKind::Get, &format!("keepalive{pings}"), &cfg.domain, &cfg.domain, ping);
                if let Err(e) = link.send(&iq.to_element(NS_COMPONENT)).await {
                    return Err(format!("write failed: {e}"));
                }
            }
            out = outbound.recv() => match out {
                Some(e) => {
                    link.queue(&e);
                    // Take what else is already waiting, up to a batch.
                    for _ in 1..WRITE_BATCH {
                        match outbound.try_recv() {
                            Ok(e) => link.queue(&e),
                            Err(_) => break,
                        }
                    }
                    if let Err(e) = link.flush().await {
                        // The stanzas are lost with the link; the registry's timers
                        // cover every request we are waiting on.
                        return Err(format!("write failed: {e}"));
                    }
                }
                None => return Ok(()),
            },
            _ = crate::service::stopped(shutdown) => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(name: &str, kind: &str) -> StanzaHead {
        StanzaHead {
            name: name.into(),
            kind: Some(kind.into()),
            id: Some("q1".into()),
            from: Some("eve@localhost/x".into()),
            to: Some("dsps.localhost/abc".into()),
        }
    }

    #[test]
    fn a_rejected_iq_request_gets_a_400_naming_the_bound() {
        let reply = rejection_reply(&head("iq", "get"), Bound::Depth(64), "dsps.localhost")
            .expect("an iq get is answered");
        let iq = Iq::parse(&reply).unwrap();
        assert_eq!(iq.kind, IqKind::Error);
        assert_eq!(iq.id, "q1");
        assert_eq!(iq.to, "eve@localhost/x");
        assert_eq!(iq.from, "dsps.localhost/abc");
        assert_eq!(iq.error_code(), Some(400));
        let text = String::from(&reply);
        assert!(text.contains("component.max_depth (64)"), "{text}");
    }

    #[test]
    fn rejected_results_messages_and_presences_get_no_reply() {
        for (name, kind) in [
            ("iq", "result"),
            ("iq", "error"),
            ("message", "chat"),
            ("presence", "unavailable"),
        ] {
            assert!(
                rejection_reply(&head(name, kind), Bound::Bytes(10), "dsps.localhost").is_none()
            );
        }
    }

    #[test]
    fn a_reply_never_claims_a_foreign_from() {
        let mut h = head("iq", "set");
        h.to = Some("localhost".into());
        let reply = rejection_reply(&h, Bound::Elements(1), "dsps.localhost").unwrap();
        assert_eq!(reply.attr("from"), Some("dsps.localhost"));
    }
}
