//! The DSPS client API: create or join a stream over XMPP, then get the data
//! connection after the relay handshake.
//!
//! ```text
//! let (xmpp, incoming) = XmppClient::connect(server, "alice@example.org/app", pw).await?;
//! let dsps = DspsClient::new(xmpp, "dsps.example.org");
//! let seat = dsps.create(&CreateRequest::default()).await?;      // alice is master
//! dsps.admin(&seat, &invite_slaves(["bob@example.org/app"])).await?;
//! let conn = dsps.connect(&seat, None).await?;                     // handshake done
//! ```
//! An invitee reads [`DspsEvents`] for a [`DspsEvent::Invitation`], calls
//! [`DspsClient::accept`], and gets its [`Seat`] from the create push.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::time::Duration;

use bytes::BytesMut;
use minidom::Element;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::c2s::{C2sError, Incoming, XmppClient};
use crate::proto::block::{Block, BlockDecoder};
use crate::proto::error::DspsError;
use crate::proto::iq::{Iq, IqKind};
use crate::proto::query::{
    self, AdminAction, AdminReport, AdminRequest, CreateRequest, CreateResult, Invitation,
    PresencePush, Role, StatsResult, WhoResult,
};
use crate::proto::xml::{get_attr, NS_DSPS};

/// Bound on each request to the DSPS and on each handshake step.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest block a client accepts by default (16 MiB).
pub const DEFAULT_MAX_BLOCK: u64 = 16 * 1024 * 1024;

/// Why a DSPS client operation failed.
#[derive(Debug)]
pub enum ClientError {
    /// The XMPP connection failed.
    Xmpp(C2sError),
    /// The DSPS answered with an error.
    Dsps(Option<DspsError>, String),
    /// The answer made no sense.
    Protocol(String),
    /// The relay connection failed.
    Io(std::io::Error),
    /// A step took too long.
    Timeout(&'static str),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Xmpp(e) => write!(f, "XMPP: {e}"),
            ClientError::Dsps(Some(e), text) if text.is_empty() => write!(f, "DSPS error {e}"),
            ClientError::Dsps(Some(e), text) => write!(f, "DSPS error {e}: {text}"),
            ClientError::Dsps(None, text) if text.is_empty() => {
                f.write_str("an error with no code or text (is this a DSPS?)")
            }
            ClientError::Dsps(None, text) => write!(f, "DSPS error: {text}"),
            ClientError::Protocol(why) => write!(f, "unexpected answer: {why}"),
            ClientError::Io(e) => write!(f, "relay connection: {e}"),
            ClientError::Timeout(step) => write!(f, "timed out: {step}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<C2sError> for ClientError {
    fn from(e: C2sError) -> Self {
        ClientError::Xmpp(e)
    }
}

impl From<std::io::Error> for ClientError {
    fn from(e: std::io::Error) -> Self {
        ClientError::Io(e)
    }
}

/// A place in a stream: the peer resource to talk to and how to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seat {
    /// The peer resource (`dsps.example.org/<resource>`).
    pub peer_jid: String,
    /// The "Connection waiting" parameters.
    pub info: CreateResult,
}

/// An invitation as received.
#[derive(Debug, Clone)]
pub struct InvitationRequest {
    /// The acknowledge get itself (answered by accept/reject).
    pub iq: Element,
    /// The invitation resource that sent it.
    pub from: String,
    /// What it offers.
    pub invitation: Invitation,
}

/// Something the DSPS told this client.
#[derive(Debug, Clone)]
pub enum DspsEvent {
    /// An invitation to a stream.
    Invitation(InvitationRequest),
    /// "Connection waiting": a seat is ready to connect (after an accept or join).
    Waiting(Seat),
    /// Peers of the stream at `peer_jid` changed status.
    Presence {
        /// Our peer resource in that stream.
        peer_jid: String,
        /// The changes.
        push: PresencePush,
    },
    /// We were dropped from the stream at `peer_jid`.
    Dropped {
        /// Our former peer resource.
        peer_jid: String,
        /// Comments of the drop.
        comments: Vec<Element>,
    },
    /// A later admin report (expire, reject, timeout of our invitees).
    AdminReport {
        /// Our peer resource.
        peer_jid: String,
        /// The report.
        report: AdminReport,
    },
    /// A DSPS we asked to relay us holds the far DSPS's KEY1 and wants KEY2 for it
    /// (XEP "DSPS relay setup"); answer with [`DspsClient::relay_key_exchange`].
    RelayKey(RelayKeyRequest),
    /// Any other stanza.
    Other(Element),
}

/// A relay key request as received.
#[derive(Debug, Clone)]
pub struct RelayKeyRequest {
    /// The `create` get itself (answered with KEY2).
    pub iq: Element,
    /// Our peer resource on the relaying DSPS that sent it.
    pub from: String,
    /// The far DSPS's KEY1.
    pub key1: String,
}

/// DSPS events from an XMPP client's incoming stanzas. Pushes are acknowledged
/// with an empty result (PROFILE 9) before they are handed out.
pub struct DspsEvents {
    xmpp: XmppClient,
    incoming: Incoming,
    backlog: VecDeque<DspsEvent>,
}

impl DspsEvents {
    /// Wraps an XMPP client's incoming stanzas.
    pub fn new(xmpp: XmppClient, incoming: Incoming) -> Self {
        DspsEvents {
            xmpp,
            incoming,
            backlog: VecDeque::new(),
        }
    }

    /// The next event, or `None` when the XMPP connection ended.
    pub async fn next(&mut self) -> Option<DspsEvent> {
        if let Some(e) = self.backlog.pop_front() {
            return Some(e);
        }
        let stanza = self.incoming.next().await?;
        Some(self.classify(stanza).await)
    }

    /// Waits (bounded) for the "Connection waiting" push, keeping other events.
    pub async fn wait_for_seat(&mut self, timeout: Duration) -> Result<Seat, ClientError> {
        self.wait_for(timeout, "waiting for the create message", |e| match e {
            DspsEvent::Waiting(seat) => ControlFlow::Break(seat),
            other => ControlFlow::Continue(other),
        })
        .await
    }

    /// Waits (bounded) for the relay key request from `near` (our peer resource on
    /// the relaying DSPS), keeping other events.
    pub async fn wait_for_relay_key(
        &mut self,
        near: &str,
        timeout: Duration,
    ) -> Result<RelayKeyRequest, ClientError> {
        self.wait_for(timeout, "waiting for the relay key request", |e| match e {
            DspsEvent::RelayKey(k) if k.from == near => ControlFlow::Break(k),
            other => ControlFlow::Continue(other),
        })
        .await
    }

    /// Waits (bounded) for the next invitation, keeping other events.
    pub async fn wait_for_invitation(
        &mut self,
        timeout: Duration,
    ) -> Result<InvitationRequest, ClientError> {
        self.wait_for(timeout, "waiting for an invitation", |e| match e {
            DspsEvent::Invitation(inv) => ControlFlow::Break(inv),
            other => ControlFlow::Continue(other),
        })
        .await
    }

    /// Waits (bounded) for the first event `pick` takes (`Break`); the events it
    /// hands back (`Continue`) stay queued, in order, for later calls.
    pub async fn wait_for<T>(
        &mut self,
        timeout: Duration,
        what: &'static str,
        mut pick: impl FnMut(DspsEvent) -> ControlFlow<T, DspsEvent>,
    ) -> Result<T, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut kept = Vec::new();
        let found = loop {
            match tokio::time::timeout_at(deadline, self.next()).await {
                Ok(Some(e)) => match pick(e) {
                    ControlFlow::Break(t) => break Ok(t),
                    ControlFlow::Continue(other) => kept.push(other),
                },
                Ok(None) => break Err(ClientError::Xmpp(C2sError::Closed)),
                Err(_) => break Err(ClientError::Timeout(what)),
            }
        };
        for e in kept.into_iter().rev() {
            self.backlog.push_front(e);
        }
        found
    }

    async fn classify(&mut self, stanza: Element) -> DspsEvent {
        let Ok(iq) = Iq::parse(&stanza) else {
            return DspsEvent::Other(stanza);
        };
        let Some(payload) = iq.payload.as_ref().filter(|p| p.is("query", NS_DSPS)) else {
            return DspsEvent::Other(stanza);
        };
        let kind = get_attr(payload, "type").unwrap_or("");
        match (iq.kind, kind) {
            (IqKind::Get, "acknowledge") => match Invitation::try_from(payload) {
                Ok(invitation) => DspsEvent::Invitation(InvitationRequest {
                    from: iq.from.clone(),
                    iq: stanza.clone(),
                    invitation,
                }),
                Err(_) => DspsEvent::Other(stanza),
            },
            (IqKind::Get, "create") => match query::relay_key_of(payload) {
                Some(key1) => DspsEvent::RelayKey(RelayKeyRequest {
                    from: iq.from.clone(),
                    iq: stanza.clone(),
                    key1,
                }),
                None => DspsEvent::Other(stanza),
            },
            (IqKind::Set, _) => {
                // Pushes answer no request; acknowledge them (PROFILE 9).
                let _ = self.xmpp.reply_result(&stanza, None).await;
                match kind {
                    "create" => match CreateResult::try_from(payload) {
                        Ok(info) => DspsEvent::Waiting(Seat {
                            peer_jid: iq.from.clone(),
                            info,
                        }),
                        Err(_) => DspsEvent::Other(stanza),
                    },
                    "presence" => match PresencePush::try_from(payload) {
                        Ok(push) => DspsEvent::Presence {
                            peer_jid: iq.from.clone(),
                            push,
                        },
                        Err(_) => DspsEvent::Other(stanza),
                    },
                    "acknowledge" if get_attr(payload, "status") == Some("drop") => {
                        DspsEvent::Dropped {
                            peer_jid: iq.from.clone(),
                            comments: payload
                                .children()
                                .filter(|c| c.name() == "comment")
                                .cloned()
                                .collect(),
                        }
                    }
                    "admin" => match AdminReport::try_from(payload) {
                        Ok(report) => DspsEvent::AdminReport {
                            peer_jid: iq.from.clone(),
                            report,
                        },
                        Err(_) => DspsEvent::Other(stanza),
                    },
                    _ => DspsEvent::Other(stanza),
                }
            }
            _ => DspsEvent::Other(stanza),
        }
    }
}

/// An admin request that invites each JID as a slave.
pub fn invite_slaves<'a>(jids: impl IntoIterator<Item = &'a str>) -> AdminRequest {
    AdminRequest {
        actions: jids
            .into_iter()
            .map(|j| AdminAction::Invite(Role::Slave, j.to_string()))
            .collect(),
        ..AdminRequest::default()
    }
}

/// An admin request that drops `jid`.
pub fn drop_peer(jid: &str) -> AdminRequest {
    AdminRequest {
        actions: vec![AdminAction::Drop(jid.to_string())],
        ..AdminRequest::default()
    }
}

/// Talks `jabber:iq:dsps` to one DSPS over an XMPP client.
#[derive(Clone)]
pub struct DspsClient {
    xmpp: XmppClient,
    dsps: String,
}

pub(super) fn check(resp: Element) -> Result<Iq, ClientError> {
    let iq = Iq::parse(&resp).map_err(|e| ClientError::Protocol(format!("{e:?}")))?;
    if iq.kind == IqKind::Error {
        let code = iq.error_code();
        let text = iq
            .error
            .as_ref()
            .and_then(|e| e.children().find(|c| c.name() == "text"))
            .map(|t| t.text())
            .unwrap_or_default();
        return Err(ClientError::Dsps(code.and_then(DspsError::from_code), text));
    }
    Ok(iq)
}

pub(super) fn payload(iq: &Iq) -> Result<&Element, ClientError> {
    iq.payload
        .as_ref()
        .ok_or_else(|| ClientError::Protocol("result without a query".into()))
}

impl DspsClient {
    /// A client for the DSPS at component domain `dsps`.
    pub fn new(xmpp: XmppClient, dsps: &str) -> Self {
        DspsClient {
            xmpp,
            dsps: dsps.to_string(),
        }
    }

    /// The underlying XMPP client.
    pub fn xmpp(&self) -> &XmppClient {
        &self.xmpp
    }

    /// The DSPS component domain this client talks to.
    pub fn service(&self) -> &str {
        &self.dsps
    }

    /// Sends one request and returns the result iq, or the DSPS error.
    pub async fn request(&self, kind: &str, to: &str, q: Element) -> Result<Iq, ClientError> {
        check(self.xmpp.request(kind, to, q, REQUEST_TIMEOUT).await?)
    }

    /// Creates a stream; we are its master.
    pub async fn create(&self, req: &CreateRequest) -> Result<Seat, ClientError> {
        let iq = self.request("get", &self.dsps, Element::from(req)).await?;
        let info = CreateResult::try_from(payload(&iq)?)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok(Seat {
            peer_jid: iq.from,
            info,
        })
    }

    /// Invites and/or drops peers; returns the immediate report (drops that found
    /// no one).
    pub async fn admin(&self, seat: &Seat, req: &AdminRequest) -> Result<AdminReport, ClientError> {
        let iq = self
            .request("set", &seat.peer_jid, Element::from(req))
            .await?;
        match iq.payload.as_ref() {
            Some(p) => AdminReport::try_from(p).map_err(|e| ClientError::Protocol(e.to_string())),
            None => Ok(AdminReport::default()),
        }
    }

    /// Leaves the stream for good (drops our own seat; the XEP's preferred way out).
    /// If we were its last master, the stream ends once the slaves have their data.
    pub async fn leave(&self, seat: &Seat) -> Result<(), ClientError> {
        self.admin(seat, &drop_peer(self.xmpp.jid()))
            .await
            .map(|_| ())
    }

    /// Asks this DSPS to relay our seat `far` (on another DSPS): creates a stream
    /// here with `far` as its `<peer/>` (plus `more` fallbacks, tried in order),
    /// then carries the key exchange. Returns our master seat on the new stream,
    /// once the relay link is connected; its data is what the far stream sends us.
    pub async fn relay(
        &self,
        far: &Seat,
        more: &[query::RelayTarget],
        events: &mut DspsEvents,
    ) -> Result<Seat, ClientError> {
        let mut relays = vec![query::RelayTarget {
            jid: far.peer_jid.clone(),
            port: Some(far.info.port),
            host: Some(far.info.host.clone()),
        }];
        relays.extend(more.iter().cloned());
        let near = self
            .create(&CreateRequest {
                relays,
                ..CreateRequest::default()
            })
            .await?;
        let request = events
            .wait_for_relay_key(&near.peer_jid, REQUEST_TIMEOUT)
            .await?;
        self.relay_key_exchange(&request, far).await?;
        events
            .wait_for(
                REQUEST_TIMEOUT,
                "waiting for the relay to connect",
                |e| match e {
                    DspsEvent::Presence { peer_jid, push }
                        if peer_jid == near.peer_jid
                            && push.peers.iter().any(|(s, _)| s == "connect") =>
                    {
                        ControlFlow::Break(())
                    }
                    other => ControlFlow::Continue(other),
                },
            )
            .await?;
        Ok(near)
    }

    /// Reconnects the relay link of `near` (a seat [`DspsClient::relay`] returned)
    /// after it went down, with the remembered destination.
    pub async fn reconnect_relay(
        &self,
        near: &Seat,
        far: &Seat,
        events: &mut DspsEvents,
    ) -> Result<(), ClientError> {
        self.request(
            "get",
            &near.peer_jid,
            Element::from(&CreateRequest::default()),
        )
        .await?;
        let request = events
            .wait_for_relay_key(&near.peer_jid, REQUEST_TIMEOUT)
            .await?;
        self.relay_key_exchange(&request, far).await
    }

    /// Trades the relaying DSPS's KEY1 for KEY2 with the far DSPS (our seat `far`
    /// there) and hands KEY2 back (XEP "DSPS relay setup").
    pub async fn relay_key_exchange(
        &self,
        request: &RelayKeyRequest,
        far: &Seat,
    ) -> Result<(), ClientError> {
        let iq = self
            .request("get", &far.peer_jid, query::auth(&request.key1))
            .await?;
        let key2 = query::auth_key(payload(&iq)?)
            .ok_or_else(|| ClientError::Protocol("auth result without a key".into()))?;
        self.xmpp
            .reply_result(&request.iq, Some(query::relay_key(&key2)))
            .await?;
        Ok(())
    }

    /// Lists the stream's peers we may see.
    pub async fn who(&self, seat: &Seat) -> Result<WhoResult, ClientError> {
        let iq = self
            .request("get", &seat.peer_jid, query::empty("who"))
            .await?;
        WhoResult::try_from(payload(&iq)?).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// The stream's statistics.
    pub async fn stats(&self, seat: &Seat) -> Result<StatsResult, ClientError> {
        let iq = self
            .request("get", &seat.peer_jid, query::empty("stats"))
            .await?;
        StatsResult::try_from(payload(&iq)?).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Answers an invitation; on `accept` the seat arrives later as
    /// [`DspsEvent::Waiting`] (see [`DspsEvents::wait_for_seat`]).
    pub async fn answer(&self, inv: &InvitationRequest, accept: bool) -> Result<(), ClientError> {
        let status = if accept { "connect" } else { "drop" };
        self.xmpp
            .reply_result(&inv.iq, Some(query::acknowledge(status)))
            .await?;
        Ok(())
    }

    /// Accepts an invitation and waits for the seat.
    pub async fn accept(
        &self,
        inv: &InvitationRequest,
        events: &mut DspsEvents,
    ) -> Result<Seat, ClientError> {
        self.answer(inv, true).await?;
        events.wait_for_seat(REQUEST_TIMEOUT).await
    }

    /// Runs the relay handshake for `seat` (default method) and returns the data
    /// connection. `addr` overrides the advertised host:port (e.g. when the host
    /// name does not resolve from here). For the HTTP and SSL methods see
    /// [`DspsClient::connect_via`].
    pub async fn connect(&self, seat: &Seat, addr: Option<&str>) -> Result<DataConn, ClientError> {
        self.connect_with(seat, addr, None).await
    }

    /// [`DspsClient::connect`] with a socket receive buffer of `recv_buffer` bytes
    /// (a small one makes this peer feel back-pressure sooner).
    pub async fn connect_with(
        &self,
        seat: &Seat,
        addr: Option<&str>,
        recv_buffer: Option<u32>,
    ) -> Result<DataConn, ClientError> {
        let target = match addr {
            Some(a) => a.to_string(),
            None => super::transport::host_port(&seat.info.host, seat.info.port),
        };
        let mut tcp = super::transport::dial(&target, recv_buffer).await?;
        let buf = BytesMut::with_capacity(256);
        let buffered = super::transport::handshake(self, seat, &mut tcp, buf).await?;
        Ok(DataConn { tcp, buffered })
    }
}

/// A relay connection after a successful handshake.
#[derive(Debug)]
pub struct DataConn {
    /// The socket: write raw bytes to it, read framed blocks from it.
    pub tcp: TcpStream,
    /// Bytes already read past the handshake (normally none).
    pub buffered: BytesMut,
}

impl DataConn {
    /// Splits into a block reader and the raw write half.
    pub fn into_split(
        self,
    ) -> (
        BlockReader<tokio::net::tcp::OwnedReadHalf>,
        tokio::net::tcp::OwnedWriteHalf,
    ) {
        let (rd, wr) = self.tcp.into_split();
        (BlockReader::new(rd, self.buffered, DEFAULT_MAX_BLOCK), wr)
    }
}

/// Reads the DSPS block framing off a socket.
pub struct BlockReader<R> {
    rd: R,
    buf: BytesMut,
    decoder: BlockDecoder,
}

impl<R: tokio::io::AsyncRead + Unpin> BlockReader<R> {
    /// Reads blocks from `rd`, starting with `buffered` bytes.
    pub fn new(rd: R, buffered: BytesMut, max_block: u64) -> Self {
        BlockReader {
            rd,
            buf: buffered,
            decoder: BlockDecoder::new(max_block),
        }
    }

    /// The next block, or `None` at a clean end of stream.
    pub async fn next_block(&mut self) -> Result<Option<Block>, ClientError> {
        loop {
            if let Some(b) = self
                .decoder
                .decode(&mut self.buf)
                .map_err(|e| ClientError::Protocol(e.to_string()))?
            {
                return Ok(Some(b));
            }
            self.buf.reserve(64 * 1024);
            if self.rd.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(ClientError::Protocol("stream ended inside a block".into()))
                };
            }
        }
    }
}
