//! The DSPS state machine: streams, seats, invitations, handshakes and timers.
//!
//! [`Registry::handle`] takes one [`Input`] (a stanza from the component link, a
//! relay connection's hello/key line/close, or "timers are due") and returns the
//! [`Action`]s to carry out. It never awaits and owns no socket, so every rule of
//! XEP-0037 here is unit-tested without a runtime. One task owns the registry; the
//! data path (blocks) never passes through it — it only tells the relay who joined
//! and who left (`RelayAttach`, `RelayClose`, `RelayDrain`).
//!
//! Vocabulary: a *seat* is one peer's place in one stream, from invitation to drop.
//! Its states are `Invited` (who: `expire`), `Waiting` (who: `wait`) and `Connected`
//! (who: `connect`). A seat gets its *peer resource* when it is accepted.
//!
//! Where the rest lives, one job per file:
//! - `dispatch`: routes each stanza by its `to` and query type, and answers what no
//!   handler takes.
//! - `seat`: the private records (streams, seats, resource addresses, handshake stages).
//! - `create`: new streams and seats, and the "Connection waiting" reply.
//! - `admin`: "Stream administration": invitations, their answers, drops asked for,
//!   failure reports, and joins of public streams.
//! - `listing`: "Stream information": `who` and `stats`.
//! - `handshake`: "Connecting to DSPS via default method", presence pushes and
//!   "Disconnection handling".
//! - `lifecycle`: dropping a peer, "Stream shutdown", and the `expire`/`wait` timers.
//! - `outbound`: relay chains this DSPS dials ("Stream Creation/Relay", "DSPS relay
//!   setup"): the dial, the key exchange through the creator's client, reconnects.
//! - `discovery`: XEP-0030 disco#items (the public streams, the command list) and
//!   disco#info on the command nodes.
//! - `operator`: what operators may ask of the registry: stream summaries, counts,
//!   dropping a peer or a stream.
//! - `commands` (with the forms in `command_forms`): the XEP-0050 admin commands,
//!   the thin adapter from the wire to `operator`.
//! - `census`: what the metrics endpoint reads at a scrape (streams, seats by role
//!   and status, seats ended by their deadlines).

mod admin;
mod census;
mod command_forms;
mod commands;
mod create;
mod discovery;
mod dispatch;
mod handshake;
mod lifecycle;
mod listing;
mod operator;
mod outbound;
mod seat;

pub use census::{Census, DeadlineTally, ROLES, STATUSES};
pub use operator::{Counts, OperatorError, PeerSummary, StreamSummary};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use minidom::Element;

use self::seat::{Addr, ConnState, DspsStream, Seat};
use super::command_sessions::Sessions;
use super::link_status::LinkStatus;
use super::throughput::{ThroughputMeter, ThroughputSnapshot};
use super::timers::Timers;
use crate::core::relay_policy::{DialPlan, RelayPolicy};
use crate::core::sparse::ShrinkWhenSparse;
use crate::proto::handshake::Hello;
use crate::proto::iq::{Iq, IqKind};
use crate::proto::query::{Feature, Role};
use crate::proto::xml::NS_COMPONENT;

/// A relay connection, numbered by the relay adapter.
pub type ConnId = u64;
/// A stream, numbered by the registry.
pub type StreamId = u64;

/// A seat's throughput meters, one per direction: the peer's connection keeps its own
/// meters and copies them here at most every 250 ms and whenever it catches up (so
/// the data path takes no lock per block); `who` computes the averages at the moment
/// it is asked, so a transfer that has since gone quiet still shows.
#[derive(Debug, Clone, Default)]
pub struct Traffic {
    /// Received from the peer.
    pub rx: ThroughputMeter,
    /// Sent to the peer.
    pub tx: ThroughputMeter,
}

impl Traffic {
    /// Bytes received from and sent to the peer since the last call, as
    /// (received, sent); the meters count from 0 again, their averages stay.
    pub fn take_totals(&mut self) -> (u64, u64) {
        (self.rx.take_total(), self.tx.take_total())
    }

    /// Both directions added up at `now`, as `who` reports them.
    pub fn combined(&self, now: Instant) -> ThroughputSnapshot {
        let (rx, tx) = (self.rx.averages(now), self.tx.averages(now));
        let mut averages = [0.0; 5];
        for (i, a) in averages.iter_mut().enumerate() {
            *a = rx[i] + tx[i];
        }
        ThroughputSnapshot {
            averages,
            transfer_secs: self.rx.transfer_secs(now).max(self.tx.transfer_secs(now)),
        }
    }
}

/// Where a connection records its [`Traffic`].
pub type TrafficSlot = Arc<Mutex<Traffic>>;

/// Service-wide settings the registry needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The component domain (bare DSPS JID).
    pub domain: String,
    /// Advertised relay host.
    pub host: String,
    /// Advertised relay port.
    pub port: u16,
    /// `waitdefault` in ms (0 = no limit).
    pub wait_default_ms: u64,
    /// `expiredefault` in ms (0 = no limit).
    pub expire_default_ms: u64,
    /// Enabled connection options (http, ssl).
    pub features: Vec<Feature>,
    /// Whether XEP-0092 answers reveal the OS.
    pub show_os: bool,
    /// Bounds on streams, seats and what a request may carry.
    pub limits: crate::config::Limits,
    /// Most bytes of a stanza we send (`[component] max_stanza_size`): the public
    /// `stats` listing is cut to it and an `admin` whose invitation would pass it is
    /// refused.
    pub max_stanza_size: usize,
    /// Where relay chains may dial (`[relay] allow_targets`, `[relay.targets]`).
    pub relay_policy: RelayPolicy,
    /// `[admin] jids`: bare JIDs, lower case, that may run the admin commands.
    pub admins: Vec<String>,
    /// When the service started, for uptime.
    pub started: Now,
    /// The log filter in force at start, when the binary can change it at run
    /// time (`None`: the "Set log level" command is not offered).
    pub log_filter: Option<String>,
}

/// Relay connections this DSPS dials are numbered from here up, so they never
/// share a number with the ones the listener accepts.
pub const OUTBOUND_CONN_BASE: ConnId = 1 << 62;

/// Something that happened.
#[derive(Debug)]
pub enum Input {
    /// A stanza from the XMPP server.
    Stanza(Element),
    /// A relay connection sent its hello line.
    RelayHello {
        /// The connection.
        conn: ConnId,
        /// What it said.
        hello: Hello,
    },
    /// A relay connection sent its KEY2 line.
    RelayKey {
        /// The connection.
        conn: ConnId,
        /// The line.
        key: String,
    },
    /// A relay connection ended (EOF, error, or closed by us).
    RelayClosed {
        /// The connection.
        conn: ConnId,
    },
    /// Our outbound relay reached a target and read its KEY1 line.
    RelayDialed {
        /// The connection.
        conn: ConnId,
        /// Which of the dial's targets answered.
        target: usize,
        /// The far DSPS's KEY1.
        key1: String,
    },
    /// Our outbound relay reached none of its targets (it is closed).
    RelayUnreachable {
        /// The connection.
        conn: ConnId,
        /// What went wrong with the last target tried.
        why: String,
    },
    /// Deadlines may be due.
    Tick,
    /// The component link's state changed (for the operators' "Server info").
    Link(LinkStatus),
    /// The service is stopping (SIGTERM/SIGINT): end every stream as "Stream
    /// shutdown" does, and refuse new streams and handshakes from now on.
    Shutdown,
}

/// What the handshake gives the data path when a peer connects.
#[derive(Debug, Clone)]
pub struct Attach {
    /// The stream to join.
    pub stream: StreamId,
    /// The id written in front of this peer's blocks.
    pub peer_id: String,
    /// Its rights (decides where its data goes).
    pub role: Role,
    /// Where it records its throughput.
    pub traffic: TrafficSlot,
    /// The stream's `minthroughput` in bytes/s (0 = none): a peer slower than this
    /// over 16 s of the relay waiting on its socket is disconnected, seat kept
    /// (PROFILE 16; see `core::throughput::BusyRate`).
    pub min_rate: u64,
    /// This is our own relay link to another DSPS: what it reads is that DSPS's
    /// framed blocks (unwrapped, then framed with `peer_id`), and what it writes is
    /// raw data (our framing stripped) (PROFILE 23).
    pub outbound: bool,
}

/// Something to do.
#[derive(Debug)]
pub enum Action {
    /// Send this stanza on the component link.
    Send(Element),
    /// Write a handshake line on a relay connection.
    RelayWrite {
        /// The connection.
        conn: ConnId,
        /// The line, with its `\n`.
        line: String,
    },
    /// Dial a relay link: try `targets` in order, say hello as `client`, and report
    /// the first KEY1 (`Input::RelayDialed`) or that none answered
    /// (`Input::RelayUnreachable`). The connection is then commanded like any other.
    RelayDial {
        /// The connection's number (from [`OUTBOUND_CONN_BASE`] up).
        conn: ConnId,
        /// Our JID in the hello line.
        client: String,
        /// Where to dial, in order.
        targets: Vec<DialPlan>,
    },
    /// Close a relay connection now.
    RelayClose {
        /// The connection.
        conn: ConnId,
        /// Logged reason.
        reason: &'static str,
    },
    /// The handshake succeeded: join the data path.
    RelayAttach {
        /// The connection.
        conn: ConnId,
        /// Its place in the stream.
        attach: Attach,
    },
    /// Deliver what is queued for this peer, then close, then send it `notice`
    /// (its drop notice), so the notice never overtakes the data (XEP "Stream
    /// shutdown"). The data path holds the drain back while a peer of the same
    /// stream is still finishing (see `RelayFinish`).
    RelayDrain {
        /// The connection.
        conn: ConnId,
        /// The stanza to send once the peer has everything (none for our own relay
        /// links, which have no XMPP address).
        notice: Option<Element>,
    },
    /// The peer dropped itself: stop sending to it, but read and forward what it
    /// already sent until it closes its side (bounded), then close. This is the
    /// XEP's file-transfer recipe: "dumps the contents of file on the stream,
    /// closes the stream and drops itself".
    RelayFinish {
        /// The connection.
        conn: ConnId,
    },
    /// The stream is forgotten; release its data-path state.
    StreamGone {
        /// The stream.
        stream: StreamId,
        /// When it was created, for the "stream ended" log line.
        started: Instant,
    },
    /// An operator changed the log filter to this (already checked by
    /// `core::log_filter::check`): the binary applies it.
    SetLogFilter(String),
}

/// The whole DSPS state.
#[derive(Debug)]
pub struct Registry {
    settings: Settings,
    streams: HashMap<StreamId, DspsStream>,
    resources: HashMap<String, Addr>,
    conns: HashMap<ConnId, ConnState>,
    /// Our own acknowledge gets awaiting an answer: iq id → invitation resource.
    pending: HashMap<String, String>,
    /// Our relay key gets awaiting the creator's answer: iq id → outbound connection.
    relay_keys: HashMap<String, ConnId>,
    next_out_conn: ConnId,
    timers: Timers,
    next_stream: StreamId,
    next_iq: u64,
    /// Set by [`Input::Shutdown`]: no new streams or handshakes.
    draining: bool,
    /// The component link as last reported.
    link: LinkStatus,
    /// The log filter in force, if it can be changed.
    log_filter: Option<String>,
    /// Admin command sessions waiting for their form.
    sessions: Sessions,
    /// Seats ended by their `expire` or `wait` so far (for metrics).
    deadlines: DeadlineTally,
}

/// The current time, monotonic for deadlines and wall-clock for `init`.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// For deadlines.
    pub mono: Instant,
    /// UNIX seconds, for `stats init`.
    pub unix: u64,
}

type Out = Vec<Action>;

fn ms(d: u64) -> Option<Duration> {
    (d > 0).then(|| Duration::from_millis(d))
}

impl Registry {
    /// An empty registry.
    pub fn new(settings: Settings) -> Registry {
        Registry {
            log_filter: settings.log_filter.clone(),
            link: LinkStatus::default(),
            sessions: Sessions::default(),
            settings,
            streams: HashMap::new(),
            resources: HashMap::new(),
            conns: HashMap::new(),
            pending: HashMap::new(),
            relay_keys: HashMap::new(),
            next_out_conn: OUTBOUND_CONN_BASE,
            timers: Timers::default(),
            next_stream: 1,
            next_iq: 1,
            draining: false,
            deadlines: DeadlineTally::default(),
        }
    }

    /// The earliest pending deadline; the owner calls `handle(Input::Tick)` then.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Number of live streams (for tests and metrics).
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// Number of resources, connections, pending iqs (ours: invitations and relay
    /// keys) and timers held: all zero when no stream is alive (used to check
    /// nothing leaks).
    pub fn held(&self) -> (usize, usize, usize, usize) {
        (
            self.resources.len(),
            self.conns.len(),
            self.pending.len() + self.relay_keys.len(),
            self.timers.len(),
        )
    }

    /// Processes one input.
    pub fn handle(&mut self, input: Input, now: Now) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Stanza(e) => self.on_stanza(&e, now, &mut out),
            Input::RelayHello { conn, hello } => self.on_hello(conn, hello, &mut out),
            Input::RelayKey { conn, key } => self.on_key2(conn, &key, &mut out),
            Input::RelayClosed { conn } => self.on_closed(conn, now, &mut out),
            Input::RelayDialed { conn, target, key1 } => {
                self.on_dialed(conn, target, &key1, now, &mut out)
            }
            Input::RelayUnreachable { conn, why } => self.on_unreachable(conn, &why, now, &mut out),
            Input::Tick => self.on_tick(now, &mut out),
            Input::Link(status) => self.link = status,
            Input::Shutdown => self.shutdown_all(now, &mut out),
        }
        self.shrink_when_sparse();
        out
    }

    /// Gives back the room of maps that streams and connections have left.
    fn shrink_when_sparse(&mut self) {
        self.streams.shrink_when_sparse();
        self.resources.shrink_when_sparse();
        self.conns.shrink_when_sparse();
        self.pending.shrink_when_sparse();
        self.relay_keys.shrink_when_sparse();
    }

    fn peer_jid(&self, res: &str) -> String {
        format!("{}/{}", self.settings.domain, res)
    }

    fn new_iq_id(&mut self, prefix: &str) -> String {
        self.next_iq += 1;
        format!("{prefix}{}", self.next_iq)
    }

    fn send(out: &mut Out, iq: Iq) {
        out.push(Action::Send(iq.to_element(NS_COMPONENT)));
    }

    fn push(&mut self, out: &mut Out, kind: IqKind, from: &str, to: &str, payload: Element) {
        let id = self.new_iq_id("dsps");
        Self::send(out, Iq::request(kind, &id, from, to, payload));
    }

    fn seat(&self, sid: StreamId, seat: u32) -> Option<&Seat> {
        self.streams.get(&sid)?.seats.get(&seat)
    }

    fn seat_mut(&mut self, sid: StreamId, seat: u32) -> Option<&mut Seat> {
        self.streams.get_mut(&sid)?.seats.get_mut(&seat)
    }
}

#[cfg(test)]
mod tests;
