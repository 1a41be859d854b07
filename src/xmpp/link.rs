//! The component link: connect (TCP_NODELAY), XEP-0114 handshake, read loop,
//! keepalive, and reconnection with backoff, forever until shutdown.
//!
//! Stanzas are read and written as raw `minidom::Element`s (notes §3): the typed
//! route turns any unparseable stanza into a silent `None`. What arrives goes to the
//! service over `inbound`; what the service sends comes over `outbound`. While the
//! link is down, outbound stanzas wait in that bounded channel.

use std::borrow::Cow;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use minidom::Element;
use tokio::io::BufStream;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_xmpp::xmlstream::{initiate_stream, ReadError, StreamHeader, Timeouts, XmlStream};
use tracing::{debug, info, warn};
use xmpp_parsers::component::Handshake;

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
/// Silence after the keepalive after which the link is considered dead.
pub const DEAD_AFTER: Duration = Duration::from_secs(30);

/// Where and how to log in.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// The server's component port, "ip:port".
    pub server: String,
    /// Our component domain.
    pub domain: String,
    /// The shared secret.
    pub secret: String,
}

type Link = XmlStream<BufStream<TcpStream>, Element>;

/// Why one login attempt failed.
#[derive(Debug)]
pub enum LoginError {
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

async fn login_inner(cfg: &LinkConfig) -> Result<Link, LoginError> {
    let tcp = TcpStream::connect(&cfg.server)
        .await
        .map_err(LoginError::Io)?;
    // Without NODELAY a reply and a push sent back to back stall ~40 ms (notes §2).
    tcp.set_nodelay(true).map_err(LoginError::Io)?;
    let timeouts = Timeouts {
        read_timeout: KEEPALIVE_AFTER,
        response_timeout: DEAD_AFTER,
    };
    let header = StreamHeader {
        to: Some(Cow::Owned(cfg.domain.clone())),
        from: None,
        id: None,
    };
    let mut pending = initiate_stream(BufStream::new(tcp), NS_COMPONENT, header, timeouts)
        .await
        .map_err(LoginError::Io)?;
    let stream_id = pending
        .take_header()
        .id
        .map(|c| c.into_owned())
        .ok_or_else(|| LoginError::Refused("server sent no stream id".into()))?;
    let mut link: Link = pending.skip_features::<Element>();
    let handshake = Handshake::from_stream_id_and_password(stream_id, &cfg.secret);
    link.send(&handshake).await.map_err(LoginError::Io)?;
    match link.next().await {
        Some(Ok(e)) if e.name() == "handshake" => Ok(link),
        Some(Ok(e)) => Err(LoginError::Refused(String::from(&e))),
        Some(Err(e)) => Err(LoginError::Refused(e.to_string())),
        None => Err(LoginError::Refused("connection closed".into())),
    }
}

/// Keeps the link up until `shutdown` turns true: logs in, forwards stanzas both
/// ways, and reconnects with exponential backoff, logging every attempt.
pub async fn run(
    cfg: LinkConfig,
    inbound: mpsc::Sender<Element>,
    mut outbound: mpsc::Receiver<Element>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = MIN_BACKOFF;
    let mut attempt: u64 = 0;
    loop {
        attempt += 1;
        info!(server = %cfg.server, domain = %cfg.domain, attempt, "connecting to XMPP server");
        match login(&cfg).await {
            Ok(mut link) => {
                info!(server = %cfg.server, domain = %cfg.domain, "component online");
                backoff = MIN_BACKOFF;
                attempt = 0;
                let done = serve(&cfg, &mut link, &inbound, &mut outbound, &mut shutdown).await;
                if done {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(2),
                        SinkExt::<&Element>::close(&mut link),
                    )
                    .await;
                    info!("component link closed");
                    return;
                }
                warn!(server = %cfg.server, "component link lost; reconnecting");
            }
            Err(e) => {
                warn!(server = %cfg.server, attempt, retry_in = ?backoff, "component login failed: {e}")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = crate::service::stopped(&mut shutdown) => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Serves one live link. Returns true on shutdown, false when the link died.
async fn serve(
    cfg: &LinkConfig,
    link: &mut Link,
    inbound: &mpsc::Sender<Element>,
    outbound: &mut mpsc::Receiver<Element>,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let mut pings: u64 = 0;
    loop {
        tokio::select! {
            item = link.next() => match item {
                Some(Ok(e)) => {
                    if e.name() == "error" {
                        warn!(error = %String::from(&e), "stream error from server");
                        return false;
                    }
                    if inbound.send(e).await.is_err() {
                        return true;
                    }
                }
                Some(Err(ReadError::SoftTimeout)) => {
                    // A ping to our own domain comes back to us through the server,
                    // so traffic flows both ways and neither side times out.
                    pings += 1;
                    let ping = Element::builder("ping", "urn:xmpp:ping").build();
                    let iq = Iq::request(IqKind::Get, &format!("keepalive{pings}"), &cfg.domain, &cfg.domain, ping);
                    if link.send(&iq.to_element(NS_COMPONENT)).await.is_err() {
                        return false;
                    }
                }
                Some(Err(ReadError::ParseError(e))) => debug!("unparseable stanza ignored: {e}"),
                Some(Err(e)) => {
                    warn!("component link read failed: {e}");
                    return false;
                }
                None => return false,
            },
            out = outbound.recv() => match out {
                Some(e) => {
                    if let Err(e) = link.send(&e).await {
                        // The stanza is lost with the link; the registry's timers
                        // cover every request we are waiting on.
                        warn!("component link write failed: {e}");
                        return false;
                    }
                }
                None => return true,
            },
            _ = crate::service::stopped(shutdown) => return true,
        }
    }
}
