//! A small XMPP client-to-server (c2s) session for applications that talk to a DSPS, and
//! for our integration tests.
//!
//! It finds the server (SRV, or an explicit address), starts TLS (STARTTLS, unless the
//! caller asked for a plaintext session on a trusted network), logs in (SASL
//! SCRAM-SHA-256, SCRAM-SHA-1, or PLAIN inside TLS), binds a resource and then offers three
//! things: send a stanza, send an iq and wait for its answer, and receive everything else
//! through [`Incoming`]. It does not send presence: Prosody delivers iqs and messages to a
//! bound full JID without it. It does not reconnect; after [`C2sError::Closed`] build a
//! new client.
//!
//! Shape: one background task (`driver`) owns the XML stream. [`XmppClient`] handles talk
//! to it over a bounded channel, so cloning a handle is cheap and any task can use one.

mod auth;
mod driver;
mod login;
pub mod resolve;
pub mod socket;
mod stanza;

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use minidom::Element;
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;
use xmpp_parsers::jid::FullJid;

use self::driver::{Command, Driver};
use self::stanza::{IdGen, NS_CLIENT};

/// Upper bound for TCP connect, stream setup, SASL and resource binding together.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Upper bound for the polite close: our `</stream:stream>` and the server's.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// After this much silence the driver pings the server (well inside Prosody's own
/// c2s idle limits).
pub(crate) const KEEPALIVE_AFTER: Duration = Duration::from_secs(60);
/// If nothing arrives this long after the ping, the link counts as dead.
pub(crate) const DEAD_AFTER: Duration = Duration::from_secs(20);

/// Stanzas queued by handles but not yet written. Small: the writer is fast, and a full
/// queue should push back on the senders rather than buffer without limit.
const COMMAND_QUEUE: usize = 64;

/// Unsolicited stanzas waiting for [`Incoming::next`]. When it is full, further iq
/// get/set pushes are refused with `resource-constraint`, so a slow reader costs the
/// sender a retry instead of stalling our own request/response traffic.
const INCOMING_QUEUE: usize = 256;

/// Why a c2s operation failed.
#[derive(Debug)]
pub enum C2sError {
    /// The TCP connection or the stream setup failed at the I/O level.
    Connect(io::Error),
    /// No server for the domain could be reached (lookup or connect).
    Unreachable(String),
    /// TLS could not be set up: no STARTTLS offered, an untrusted certificate, a
    /// failed handshake.
    Tls(String),
    /// SASL failed: wrong credentials, no common mechanism, or an unverifiable server.
    Auth(String),
    /// The server did not bind the requested resource.
    Bind,
    /// The operation did not finish within its time limit.
    Timeout,
    /// The session has ended; build a new client.
    Closed,
    /// The server or the caller broke the protocol (stream error, invalid JID, ...).
    Protocol(String),
}

impl fmt::Display for C2sError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            C2sError::Connect(e) => write!(f, "c2s connection failed: {e}"),
            C2sError::Unreachable(why) => write!(f, "server unreachable: {why}"),
            C2sError::Tls(why) => write!(f, "TLS: {why}"),
            C2sError::Auth(reason) => write!(f, "c2s authentication failed: {reason}"),
            C2sError::Bind => write!(f, "c2s resource binding failed"),
            C2sError::Timeout => write!(f, "c2s operation timed out"),
            C2sError::Closed => write!(f, "c2s session closed"),
            C2sError::Protocol(what) => write!(f, "c2s protocol error: {what}"),
        }
    }
}

impl std::error::Error for C2sError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            C2sError::Connect(e) => Some(e),
            _ => None,
        }
    }
}

/// A handle on a logged-in c2s session. Cheap to clone; the session closes when
/// [`close`](XmppClient::close) is called or the last handle is dropped.
#[derive(Clone)]
pub struct XmppClient {
    inner: Arc<Shared>,
}

/// What all handles of one session share.
struct Shared {
    jid: String,
    commands: mpsc::Sender<Command>,
    ids: Arc<IdGen>,
}

/// The receiving end for stanzas that are not answers to our own requests.
pub struct Incoming {
    rx: mpsc::Receiver<Element>,
}

/// How the link to the server is secured.
#[derive(Clone)]
pub enum Security {
    /// STARTTLS is required, and the server's certificate is checked with this
    /// config (see `client::tls` for the system roots, a private CA, or no check).
    Tls(Arc<rustls::ClientConfig>),
    /// No TLS at all: for a server on loopback or a trusted network. SASL PLAIN is
    /// then refused, so the password still never crosses the link.
    Plaintext,
}

impl fmt::Debug for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Security::Tls(_) => "Tls",
            Security::Plaintext => "Plaintext",
        })
    }
}

/// Where and how [`XmppClient::connect_with`] logs in.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `host:port` to connect to; `None`: the domain's `_xmpp-client._tcp` SRV
    /// records, or the domain on 5222 (RFC 6120 §3.2).
    pub server: Option<String>,
    /// TLS or not.
    pub security: Security,
}

impl XmppClient {
    /// Logs in without TLS to `server` ("ip:port" or "host:port") as `jid`
    /// ("user@domain/resource"; resource required), binds. Bounded by
    /// [`LOGIN_TIMEOUT`]. For loopback servers and tests; see
    /// [`XmppClient::connect_with`].
    pub async fn connect(
        server: &str,
        jid: &str,
        password: &str,
    ) -> Result<(XmppClient, Incoming), C2sError> {
        let opts = ConnectOptions {
            server: Some(server.to_string()),
            security: Security::Plaintext,
        };
        XmppClient::connect_with(jid, password, &opts).await
    }

    /// Finds the server, secures the link and logs in as `opts` says, as `jid`
    /// ("user@domain/resource"; resource required), binds. Bounded by
    /// [`LOGIN_TIMEOUT`].
    pub async fn connect_with(
        jid: &str,
        password: &str,
        opts: &ConnectOptions,
    ) -> Result<(XmppClient, Incoming), C2sError> {
        let requested = FullJid::new(jid)
            .map_err(|e| C2sError::Protocol(format!("{jid:?} is not a full JID: {e}")))?;
        let ids = Arc::new(IdGen::new());
        let login = login::login(opts, &requested, password, &ids);
        let (stream, bound) = timeout(LOGIN_TIMEOUT, login)
            .await
            .map_err(|_| C2sError::Timeout)??;

        let (command_tx, command_rx) = mpsc::channel(COMMAND_QUEUE);
        let (incoming_tx, incoming_rx) = mpsc::channel(INCOMING_QUEUE);
        let own_bare = bound.to_bare().to_string();
        let own_domain = bound.domain().to_string();
        let driver = Driver::new(
            stream,
            command_rx,
            incoming_tx,
            Arc::clone(&ids),
            own_bare,
            own_domain,
        );
        tokio::spawn(driver.run());

        let client = XmppClient {
            inner: Arc::new(Shared {
                jid: bound.to_string(),
                commands: command_tx,
                ids,
            }),
        };
        Ok((client, Incoming { rx: incoming_rx }))
    }

    /// The full JID the server bound.
    pub fn jid(&self) -> &str {
        &self.inner.jid
    }

    /// Sends an iq of `kind` ("get" or "set") with one payload child to `to`; waits
    /// (bounded by `timeout`) for the matching result or error iq, matched by id AND by
    /// `from == to` as RFC 6120 requires, and returns the whole response `<iq/>`.
    pub async fn request(
        &self,
        kind: &str,
        to: &str,
        payload: Element,
        timeout: Duration,
    ) -> Result<Element, C2sError> {
        if !matches!(kind, "get" | "set") {
            return Err(C2sError::Protocol(format!(
                "iq type {kind:?} is not a request"
            )));
        }
        let id = self.inner.ids.next_id();
        let (reply_tx, reply_rx) = oneshot::channel();
        let command = Command::Request {
            stanza: stanza::iq(kind, &id, Some(to), Some(payload)),
            id,
            expected_from: to.to_owned(),
            reply: reply_tx,
        };
        let exchange = async {
            self.inner
                .commands
                .send(command)
                .await
                .map_err(|_| C2sError::Closed)?;
            // The driver drops the sender when the session ends.
            reply_rx.await.map_err(|_| C2sError::Closed)
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| C2sError::Timeout)?
    }

    /// Sends a raw stanza Element (an `<iq>`, `<message>` or `<presence>` in namespace
    /// `jabber:client`). Returns once it is queued; answers to an iq sent this way are
    /// dropped, so use [`request`](XmppClient::request) when the answer matters.
    pub async fn send(&self, stanza: Element) -> Result<(), C2sError> {
        let is_stanza = ["iq", "message", "presence"]
            .iter()
            .any(|name| stanza.is(*name, NS_CLIENT));
        if !is_stanza {
            return Err(C2sError::Protocol(format!(
                "<{} xmlns='{}'/> is not a jabber:client stanza",
                stanza.name(),
                stanza.ns()
            )));
        }
        self.inner
            .commands
            .send(Command::Send(stanza))
            .await
            .map_err(|_| C2sError::Closed)
    }

    /// Replies to an incoming iq get/set with type result and an optional payload (to =
    /// its from, same id; the server fills in our `from`).
    pub async fn reply_result(
        &self,
        iq: &Element,
        payload: Option<Element>,
    ) -> Result<(), C2sError> {
        if !stanza::is_iq_request(iq) {
            return Err(C2sError::Protocol(
                "only an iq get/set can be answered".to_owned(),
            ));
        }
        self.send(stanza::result_for(iq, payload)).await
    }

    /// Closes the stream politely (`</stream:stream>`), bounded in time. Other handles
    /// see [`C2sError::Closed`] afterwards.
    pub async fn close(&self) {
        let (done_tx, done_rx) = oneshot::channel();
        let close = async {
            if self
                .inner
                .commands
                .send(Command::Close(done_tx))
                .await
                .is_ok()
            {
                let _ = done_rx.await;
            }
        };
        // Twice the driver's own bound: it may first finish a write already under way.
        let _ = timeout(CLOSE_TIMEOUT * 2, close).await;
    }
}

impl Incoming {
    /// Next stanza that is not a response to our own request (iq get/set pushes,
    /// messages, presences), or `None` when the connection ended.
    pub async fn next(&mut self) -> Option<Element> {
        self.rx.recv().await
    }
}
