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

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use minidom::Element;
use tracing::{debug, info};

use super::ids;
use super::throughput::{ThroughputMeter, ThroughputSnapshot};
use super::timers::{TimerId, TimerKey, Timers};
use crate::proto::error::DspsError;
use crate::proto::handshake::Hello;
use crate::proto::iq::{bare, resource, Iq, IqKind};
use crate::proto::query::{
    self, effective_ms, AdminAction, AdminReport, CreateRequest, CreateResult, Feature, Invitation,
    PresencePush, QueryError, Request, Role, StatsResult, WhoPeer, WhoResult, PROTOCOL_VERSION,
};
use crate::proto::xml::{attr, NS_COMPONENT, NS_DSPS};

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
    /// Bounds on streams and seats.
    pub limits: crate::config::Limits,
}

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
    /// Deadlines may be due.
    Tick,
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
        /// The stanza to send once the peer has everything.
        notice: Element,
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
    },
}

#[derive(Debug)]
enum SeatState {
    Invited {
        resource: String,
        iq_ids: Vec<String>,
        wait_ms: u64,
        timer: Option<TimerId>,
        /// When the invitation expires (None = never), for re-sent invitations.
        expires: Option<Instant>,
    },
    Waiting {
        handshake: Option<ConnId>,
        timer: Option<TimerId>,
    },
    Connected {
        conn: ConnId,
    },
}

#[derive(Debug)]
struct Seat {
    id: u32,
    jid: String,
    /// The JID the seat was made for (the invitation's `<peer/>`); `jid` becomes the
    /// accepting full JID, but `timeout` reports name this one (XEP "Stream administration").
    invited: String,
    role: Role,
    public: bool,
    resource: Option<String>,
    wait_ms: u64,
    ever_connected: bool,
    inviters: Vec<String>,
    state: SeatState,
    traffic: TrafficSlot,
}

impl Seat {
    fn who_status(&self) -> &'static str {
        match self.state {
            SeatState::Invited { .. } => "expire",
            SeatState::Waiting { .. } => "wait",
            SeatState::Connected { .. } => "connect",
        }
    }

    /// The seat's relay connection, if any, and whether it is attached (as opposed
    /// to still in its handshake).
    fn state_conn(&self) -> Option<(ConnId, bool)> {
        match self.state {
            SeatState::Connected { conn } => Some((conn, true)),
            SeatState::Waiting {
                handshake: Some(conn),
                ..
            } => Some((conn, false)),
            _ => None,
        }
    }

    /// The JID others see: bare for relays (XEP "Stream peer listing").
    fn shown_jid(&self) -> &str {
        if self.role == Role::Relay {
            bare(&self.jid)
        } else {
            &self.jid
        }
    }

    fn peer_jid(&self, domain: &str) -> Option<String> {
        self.resource.as_ref().map(|r| format!("{domain}/{r}"))
    }
}

#[derive(Debug)]
struct DspsStream {
    creator: String,
    init: u64,
    minthroughput: String,
    min_rate: u64,
    maxpublic: u32,
    public_resource: Option<String>,
    comments: Vec<Element>,
    seats: BTreeMap<u32, Seat>,
    next_id: u32,
}

impl DspsStream {
    fn masters(&self) -> usize {
        self.seats
            .values()
            .filter(|s| s.role == Role::Master)
            .count()
    }
    fn count(&self, role: Role) -> u32 {
        self.seats.values().filter(|s| s.role == role).count() as u32
    }
    fn public_count(&self) -> u32 {
        self.seats.values().filter(|s| s.public).count() as u32
    }
}

/// What a resource of our domain names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Addr {
    Peer(StreamId, u32),
    Invite(StreamId, u32),
    Public(StreamId),
}

#[derive(Debug)]
enum Stage {
    AwaitAuth(String),
    AwaitKey2(String),
    Attached,
}

#[derive(Debug)]
struct ConnState {
    stream: StreamId,
    seat: u32,
    stage: Stage,
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
    timers: Timers,
    next_stream: StreamId,
    next_iq: u64,
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
            settings,
            streams: HashMap::new(),
            resources: HashMap::new(),
            conns: HashMap::new(),
            pending: HashMap::new(),
            timers: Timers::default(),
            next_stream: 1,
            next_iq: 1,
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

    /// Number of resources, connections, pending iqs and timers held: all zero when
    /// no stream is alive (used to check nothing leaks).
    pub fn held(&self) -> (usize, usize, usize, usize) {
        (
            self.resources.len(),
            self.conns.len(),
            self.pending.len(),
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
            Input::Tick => self.on_tick(now, &mut out),
        }
        out
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

    // ---- XMPP side -------------------------------------------------------------

    fn on_stanza(&mut self, e: &Element, now: Now, out: &mut Out) {
        let Ok(iq) = Iq::parse(e) else {
            // Messages and presences carry nothing for us; the XEP speaks only iq.
            debug!(name = e.name(), "ignoring non-iq stanza");
            return;
        };
        if !iq.kind.is_request() {
            self.on_answer(&iq, now, out);
            return;
        }
        let to_domain = bare(&iq.to).eq_ignore_ascii_case(&self.settings.domain);
        match resource(&iq.to).filter(|r| !r.is_empty()) {
            _ if !to_domain => Self::send(
                out,
                iq.error_reply(DspsError::ItemNotFound, None, NS_COMPONENT),
            ),
            None => self.on_bare_request(&iq, now, out),
            Some(res) => {
                let res = res.to_string();
                self.on_resource_request(&iq, &res, now, out)
            }
        }
    }

    fn reply_error(out: &mut Out, iq: &Iq, err: DspsError, text: Option<&str>) {
        Self::send(out, iq.error_reply(err, text, NS_COMPONENT));
    }

    /// A payload we cannot act on: another namespace is a service we do not offer
    /// (503); a DSPS query we cannot read is the client's mistake (400).
    fn reply_query_error(out: &mut Out, iq: &Iq, e: QueryError) {
        match e {
            QueryError::NotDsps => Self::reply_error(out, iq, DspsError::ServiceUnavailable, None),
            e => Self::reply_error(out, iq, DspsError::BadRequest, Some(&e.to_string())),
        }
    }

    fn on_bare_request(&mut self, iq: &Iq, now: Now, out: &mut Out) {
        let Some(payload) = iq.payload.as_ref() else {
            return Self::reply_error(out, iq, DspsError::BadRequest, Some("empty iq"));
        };
        if let Some(reply) = super::info::answer(iq, payload, &self.settings) {
            return Self::send(out, reply);
        }
        match Request::parse(payload) {
            Ok(Request::Create(c)) => self.create(iq, c, now, out),
            Ok(Request::Stats) if iq.kind == IqKind::Get => self.public_stats(iq, out),
            Ok(_) => Self::reply_error(
                out,
                iq,
                DspsError::BadRequest,
                Some("this query goes to a stream resource"),
            ),
            Err(e) => Self::reply_query_error(out, iq, e),
        }
    }

    fn on_resource_request(&mut self, iq: &Iq, res: &str, now: Now, out: &mut Out) {
        let Some(&addr) = self.resources.get(res) else {
            return Self::reply_error(out, iq, DspsError::ItemNotFound, None);
        };
        let Some(payload) = iq.payload.as_ref() else {
            return Self::reply_error(out, iq, DspsError::BadRequest, Some("empty iq"));
        };
        let request = Request::parse(payload);
        match addr {
            Addr::Peer(sid, seat) => {
                if self.seat(sid, seat).map(|s| s.jid.as_str()) != Some(iq.from.as_str()) {
                    // PROFILE 11: no hint that the stream exists.
                    return Self::reply_error(out, iq, DspsError::ItemNotFound, None);
                }
                match request {
                    Ok(Request::Auth(key)) => self.on_auth(iq, sid, seat, &key, out),
                    Ok(Request::Who) => self.who(iq, sid, seat, now, out),
                    Ok(Request::Stats) => self.stream_stats(iq, sid, seat, out),
                    Ok(Request::Admin(a)) => self.admin(iq, sid, seat, a, now, out),
                    Ok(Request::Create(_)) => Self::reply_error(
                        out,
                        iq,
                        DspsError::NotAllowed,
                        Some("no relay credentials for this resource"),
                    ),
                    Ok(Request::Acknowledge(_)) => Self::reply_error(
                        out,
                        iq,
                        DspsError::BadRequest,
                        Some("acknowledge goes to the invitation resource"),
                    ),
                    Err(e) => Self::reply_query_error(out, iq, e),
                }
            }
            Addr::Invite(sid, seat) => match request {
                Ok(Request::Acknowledge(status)) if iq.kind == IqKind::Set => {
                    if !self.invitee_matches(sid, seat, &iq.from) {
                        return Self::reply_error(out, iq, DspsError::ItemNotFound, None);
                    }
                    Self::send(out, iq.result(None));
                    self.on_acknowledge(sid, seat, &iq.from, &status, now, out);
                }
                _ => Self::reply_error(out, iq, DspsError::ItemNotFound, None),
            },
            Addr::Public(sid) => match request {
                Ok(Request::Acknowledge(status)) if iq.kind == IqKind::Set => {
                    self.public_join(Some(iq), sid, &iq.from, &status, now, out)
                }
                Ok(Request::Stats) if iq.kind == IqKind::Get => self.public_stats_one(iq, sid, out),
                Err(e) => Self::reply_query_error(out, iq, e),
                Ok(_) => Self::reply_error(
                    out,
                    iq,
                    DspsError::BadRequest,
                    Some("a public JID takes acknowledge (set) and stats (get)"),
                ),
            },
        }
    }

    /// Results and errors: answers to our invitations (the rest are acks of pushes).
    fn on_answer(&mut self, iq: &Iq, now: Now, out: &mut Out) {
        let Some(res) = resource(&iq.to) else { return };
        if let Some(Addr::Public(sid)) = self.resources.get(res).copied() {
            // XEP "Accepting an invite" shows the join as type='result'.
            if let Some(p) = iq.payload.as_ref() {
                if let Ok(Request::Acknowledge(status)) = Request::parse(p) {
                    self.public_join(None, sid, &iq.from, &status, now, out);
                }
            }
            return;
        }
        let Some(inv_res) = self.pending.get(&iq.id).cloned() else {
            return;
        };
        if inv_res != res {
            return;
        }
        let Some(&Addr::Invite(sid, seat)) = self.resources.get(res) else {
            self.pending.remove(&iq.id);
            return;
        };
        if !self.invitee_matches(sid, seat, &iq.from) {
            return;
        }
        let status = match (iq.kind, iq.payload.as_ref().map(Request::parse)) {
            (IqKind::Result, Some(Ok(Request::Acknowledge(s)))) => s,
            // An empty result or an error (the client does not speak DSPS) rejects.
            _ => "drop".to_string(),
        };
        self.on_acknowledge(sid, seat, &iq.from, &status, now, out);
    }

    fn invitee_matches(&self, sid: StreamId, seat: u32, from: &str) -> bool {
        // The invitee may answer from another resource of its account; that full
        // JID then owns the seat (XEP "Accepting an invite": "from" is associated).
        self.seat(sid, seat)
            .is_some_and(|s| bare(&s.jid).eq_ignore_ascii_case(bare(from)))
    }

    fn seat(&self, sid: StreamId, seat: u32) -> Option<&Seat> {
        self.streams.get(&sid)?.seats.get(&seat)
    }

    fn seat_mut(&mut self, sid: StreamId, seat: u32) -> Option<&mut Seat> {
        self.streams.get_mut(&sid)?.seats.get_mut(&seat)
    }

    // ---- create ------------------------------------------------------------------

    fn create(&mut self, iq: &Iq, c: CreateRequest, now: Now, out: &mut Out) {
        if !c.relays.is_empty() {
            return Self::reply_error(
                out,
                iq,
                DspsError::NotAllowed,
                Some("relay chains are not supported by this DSPS"),
            );
        }
        let limits = self.settings.limits;
        if self.streams.len() >= limits.streams {
            return Self::reply_error(
                out,
                iq,
                DspsError::ServiceUnavailable,
                Some("this DSPS holds as many streams as it may"),
            );
        }
        let mine = self
            .streams
            .values()
            .filter(|s| s.creator == iq.from)
            .count();
        if mine >= limits.streams_per_jid {
            return Self::reply_error(
                out,
                iq,
                DspsError::ServiceUnavailable,
                Some("you have created as many streams as you may"),
            );
        }
        if xmpp_parsers::jid::FullJid::new(&iq.from).is_err() {
            return Self::reply_error(
                out,
                iq,
                DspsError::BadRequest,
                Some("create needs a full JID"),
            );
        }
        // XEP: "If omitted or negative, 0 is assumed."
        let (minthroughput, min_rate) = match c.minthroughput.as_deref().map(str::trim) {
            None | Some("") => ("0".to_string(), 0),
            Some(m) if m.starts_with('-') => ("0".to_string(), 0),
            Some(m) => match crate::proto::units::parse_rate(m) {
                Ok(rate) => (m.to_string(), rate),
                Err(_) => {
                    return Self::reply_error(
                        out,
                        iq,
                        DspsError::BadRequest,
                        Some("minthroughput is not a rate like 1.5KB"),
                    )
                }
            },
        };
        let sid = self.next_stream;
        self.next_stream += 1;
        let mut stream = DspsStream {
            creator: iq.from.clone(),
            init: now.unix,
            minthroughput,
            min_rate,
            maxpublic: c.maxpublic,
            public_resource: None,
            comments: c.comments,
            seats: BTreeMap::new(),
            next_id: 0,
        };
        if stream.maxpublic > 0 {
            let r = ids::new_resource();
            self.resources.insert(r.clone(), Addr::Public(sid));
            stream.public_resource = Some(r);
        }
        self.streams.insert(sid, stream);
        let wait_ms = self.settings.wait_default_ms;
        let seat = self.add_seat(sid, &iq.from, Role::Master, false, Vec::new());
        info!(stream = sid, creator = %iq.from, "stream created");
        self.accept_seat(sid, seat, &iq.from, wait_ms, now, out, Some(iq));
    }

    fn add_seat(
        &mut self,
        sid: StreamId,
        jid: &str,
        role: Role,
        public: bool,
        inviters: Vec<String>,
    ) -> u32 {
        let stream = self
            .streams
            .get_mut(&sid)
            .expect("caller checked the stream");
        let id = stream.next_id;
        stream.next_id += 1;
        stream.seats.insert(
            id,
            Seat {
                id,
                jid: jid.to_string(),
                invited: jid.to_string(),
                role,
                public,
                resource: None,
                wait_ms: 0,
                ever_connected: false,
                inviters,
                state: SeatState::Waiting {
                    handshake: None,
                    timer: None,
                },
                traffic: TrafficSlot::default(),
            },
        );
        id
    }

    /// Gives a seat its peer resource and sends the "Connection waiting" create
    /// message: as the result of `request` (create) or as a set push (PROFILE 9).
    #[allow(clippy::too_many_arguments)]
    fn accept_seat(
        &mut self,
        sid: StreamId,
        seat: u32,
        jid: &str,
        wait_ms: u64,
        now: Now,
        out: &mut Out,
        request: Option<&Iq>,
    ) {
        let res = ids::new_resource();
        self.resources.insert(res.clone(), Addr::Peer(sid, seat));
        let timer = ms(wait_ms).map(|d| {
            self.timers
                .add(now.mono + d, TimerKey { stream: sid, seat })
        });
        let minthroughput = self.streams[&sid].minthroughput.clone();
        let s = self.seat_mut(sid, seat).expect("caller created the seat");
        s.jid = jid.to_string();
        s.resource = Some(res.clone());
        s.wait_ms = wait_ms;
        s.state = SeatState::Waiting {
            handshake: None,
            timer,
        };
        let result = CreateResult {
            wait: wait_ms,
            host: self.settings.host.clone(),
            port: self.settings.port,
            minthroughput,
            protocol: PROTOCOL_VERSION.to_string(),
            features: self.settings.features.clone(),
        };
        let from = self.peer_jid(&res);
        match request {
            Some(iq) => Self::send(out, iq.result_from(&from, Some(Element::from(&result)))),
            None => self.push(out, IqKind::Set, &from, jid, Element::from(&result)),
        }
    }

    // ---- admin -------------------------------------------------------------------

    fn admin(
        &mut self,
        iq: &Iq,
        sid: StreamId,
        seat: u32,
        a: query::AdminRequest,
        now: Now,
        out: &mut Out,
    ) {
        if iq.kind != IqKind::Set {
            return Self::reply_error(out, iq, DspsError::BadRequest, Some("admin is a set"));
        }
        let me = self
            .seat(sid, seat)
            .expect("resource index names a live seat");
        let (my_role, my_jid) = (me.role, me.jid.clone());
        if my_role != Role::Master {
            let only_self = a
                .actions
                .iter()
                .all(|act| matches!(act, AdminAction::Drop(j) if *j == my_jid));
            if !only_self {
                return Self::reply_error(out, iq, DspsError::Forbidden, None);
            }
        }
        for act in &a.actions {
            if let AdminAction::Invite(_, j) = act {
                if xmpp_parsers::jid::Jid::new(j).is_err() {
                    return Self::reply_error(
                        out,
                        iq,
                        DspsError::BadRequest,
                        Some("invalid JID in admin <peer/>"),
                    );
                }
            }
        }
        let stream = &self.streams[&sid];
        let mut newcomers: Vec<&str> = a
            .actions
            .iter()
            .filter_map(|act| match act {
                AdminAction::Invite(_, j) => Some(j.as_str()),
                AdminAction::Drop(_) => None,
            })
            .filter(|j| !stream.seats.values().any(|s| s.jid == *j))
            .collect();
        newcomers.sort_unstable();
        newcomers.dedup();
        if stream.seats.len() + newcomers.len() > self.settings.limits.seats_per_stream {
            return Self::reply_error(
                out,
                iq,
                DspsError::ServiceUnavailable,
                Some("the stream would have more peers than it may"),
            );
        }
        let mut report = AdminReport::default();
        let mut drops = Vec::new();
        for act in &a.actions {
            if let AdminAction::Drop(j) = act {
                let found = self.find_seats(sid, j);
                if found.is_empty() {
                    report.peers.push(("missing".into(), j.clone()));
                }
                drops.extend(found);
            }
        }
        let from = self.peer_jid(resource(&iq.to).unwrap_or_default());
        Self::send(out, iq.result_from(&from, Some(Element::from(&report))));
        let expire_ms = effective_ms(a.expire, self.settings.expire_default_ms);
        let wait_ms = effective_ms(a.wait, self.settings.wait_default_ms);
        for act in &a.actions {
            if let AdminAction::Invite(role, j) = act {
                self.invite(
                    sid,
                    &my_jid,
                    *role,
                    j,
                    expire_ms,
                    wait_ms,
                    &a.comments,
                    now,
                    out,
                );
            }
        }
        drops.dedup();
        for d in drops {
            let own = self.seat(sid, d).is_some_and(|s| s.jid == my_jid);
            self.drop_seat(sid, d, &a.comments, own, now, out);
        }
    }

    /// Seats named by a drop: the exact JID, or every seat of a bare JID.
    fn find_seats(&self, sid: StreamId, jid: &str) -> Vec<u32> {
        let Some(stream) = self.streams.get(&sid) else {
            return Vec::new();
        };
        let exact: Vec<u32> = stream
            .seats
            .values()
            .filter(|s| s.jid == jid)
            .map(|s| s.id)
            .collect();
        if !exact.is_empty() || resource(jid).is_some() {
            return exact;
        }
        stream
            .seats
            .values()
            .filter(|s| bare(&s.jid).eq_ignore_ascii_case(jid))
            .map(|s| s.id)
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn invite(
        &mut self,
        sid: StreamId,
        inviter: &str,
        role: Role,
        invitee: &str,
        expire_ms: u64,
        wait_ms: u64,
        comments: &[Element],
        now: Now,
        out: &mut Out,
    ) {
        let existing = self.streams[&sid]
            .seats
            .values()
            .find(|s| s.jid == invitee)
            .map(|s| s.id);
        if let Some(seat) = existing {
            // XEP "Invitation to stream": several inviters of one invitee share one
            // pending acknowledge, re-sent with every inviter listed.
            let s = self.seat_mut(sid, seat).expect("just found");
            let SeatState::Invited {
                resource, expires, ..
            } = &s.state
            else {
                debug!(
                    stream = sid,
                    invitee, "already a member; invitation ignored"
                );
                return;
            };
            // The first invitation's deadline stands; advertise what is left of it.
            let left_ms = expires.map_or(0, |at| {
                (at.saturating_duration_since(now.mono).as_millis() as u64).max(1)
            });
            let resource = resource.clone();
            if !s.inviters.iter().any(|i| i == inviter) {
                s.inviters.push(inviter.to_string());
            }
            self.send_invitation(sid, seat, &resource, left_ms, comments, out);
            return;
        }
        let seat = self.add_seat(sid, invitee, role, false, vec![inviter.to_string()]);
        let res = ids::new_resource();
        self.resources.insert(res.clone(), Addr::Invite(sid, seat));
        let timer = ms(expire_ms).map(|d| {
            self.timers
                .add(now.mono + d, TimerKey { stream: sid, seat })
        });
        let s = self.seat_mut(sid, seat).expect("just added");
        s.state = SeatState::Invited {
            resource: res.clone(),
            iq_ids: Vec::new(),
            wait_ms,
            timer,
            expires: ms(expire_ms).map(|d| now.mono + d),
        };
        info!(stream = sid, %invitee, role = role.as_str(), "invited");
        self.send_invitation(sid, seat, &res, expire_ms, comments, out);
    }

    fn send_invitation(
        &mut self,
        sid: StreamId,
        seat: u32,
        res: &str,
        expire_ms: u64,
        comments: &[Element],
        out: &mut Out,
    ) {
        let id = self.new_iq_id("inv");
        let s = self.seat_mut(sid, seat).expect("caller holds the seat");
        if let SeatState::Invited { iq_ids, .. } = &mut s.state {
            iq_ids.push(id.clone());
        }
        let invitation = Invitation {
            role: s.role,
            expire: expire_ms,
            inviters: s.inviters.clone(),
            comments: comments.to_vec(),
        };
        let to = s.jid.clone();
        self.pending.insert(id.clone(), res.to_string());
        let from = self.peer_jid(res);
        Self::send(
            out,
            Iq::request(IqKind::Get, &id, &from, &to, Element::from(&invitation)),
        );
    }

    fn on_acknowledge(
        &mut self,
        sid: StreamId,
        seat: u32,
        from: &str,
        status: &str,
        now: Now,
        out: &mut Out,
    ) {
        let Some(s) = self.seat_mut(sid, seat) else {
            return;
        };
        let SeatState::Invited {
            resource,
            iq_ids,
            wait_ms,
            timer,
            ..
        } = std::mem::replace(
            &mut s.state,
            SeatState::Waiting {
                handshake: None,
                timer: None,
            },
        )
        else {
            return;
        };
        // Only the first acknowledge counts: the invitation resource is gone now.
        self.resources.remove(&resource);
        for id in iq_ids {
            self.pending.remove(&id);
        }
        if let Some(t) = timer {
            self.timers.cancel(t);
        }
        if status == "connect" {
            info!(stream = sid, peer = from, "invitation accepted");
            self.accept_seat(sid, seat, from, wait_ms, now, out, None);
        } else {
            info!(stream = sid, peer = from, status, "invitation rejected");
            self.report_and_forget(sid, seat, "reject", from, now, out);
        }
    }

    /// Sends `<peer acknowledge=reason>` to every inviter still in the stream, then
    /// forgets the seat (XEP "Stream administration": failures after the fact). An
    /// invited or never-connected master may be the last one: then the stream ends.
    fn report_and_forget(
        &mut self,
        sid: StreamId,
        seat: u32,
        reason: &str,
        jid: &str,
        now: Now,
        out: &mut Out,
    ) {
        let Some(stream) = self.streams.get_mut(&sid) else {
            return;
        };
        let Some(s) = stream.seats.remove(&seat) else {
            return;
        };
        self.forget_seat_refs(&s);
        let report = AdminReport {
            peers: vec![(reason.to_string(), jid.to_string())],
        };
        for inviter in &s.inviters {
            let target = self.streams[&sid]
                .seats
                .values()
                .find(|m| &m.jid == inviter)
                .and_then(|m| m.peer_jid(&self.settings.domain));
            if let Some(from) = target {
                self.push(out, IqKind::Set, &from, inviter, Element::from(&report));
            }
        }
        if s.role == Role::Master && self.streams[&sid].masters() == 0 {
            self.shutdown_stream(sid, now, out);
        }
    }

    fn forget_seat_refs(&mut self, s: &Seat) {
        if let Some(r) = &s.resource {
            self.resources.remove(r);
        }
        match &s.state {
            SeatState::Invited {
                resource,
                iq_ids,
                timer,
                ..
            } => {
                self.resources.remove(resource);
                for id in iq_ids {
                    self.pending.remove(id);
                }
                if let Some(t) = timer {
                    self.timers.cancel(*t);
                }
            }
            SeatState::Waiting { handshake, timer } => {
                if let Some(c) = handshake {
                    self.conns.remove(c);
                }
                if let Some(t) = timer {
                    self.timers.cancel(*t);
                }
            }
            SeatState::Connected { conn } => {
                self.conns.remove(conn);
            }
        }
    }

    // ---- public streams ----------------------------------------------------------

    fn public_join(
        &mut self,
        iq: Option<&Iq>,
        sid: StreamId,
        from: &str,
        status: &str,
        now: Now,
        out: &mut Out,
    ) {
        let ok = |out: &mut Out| {
            if let Some(iq) = iq {
                Self::send(out, iq.result(None));
            }
        };
        if status != "connect" {
            // XEP: "Any rejection of a public connection will be ignored."
            return ok(out);
        }
        let stream = &self.streams[&sid];
        if stream.seats.values().any(|s| s.jid == from) {
            if let Some(iq) = iq {
                Self::reply_error(out, iq, DspsError::Conflict, Some("already in this stream"));
            }
            return;
        }
        if stream.public_count() >= stream.maxpublic
            || stream.seats.len() >= self.settings.limits.seats_per_stream
        {
            if let Some(iq) = iq {
                Self::reply_error(
                    out,
                    iq,
                    DspsError::ServiceUnavailable,
                    Some("stream is full"),
                );
            }
            return;
        }
        ok(out);
        let seat = self.add_seat(sid, from, Role::Slave, true, Vec::new());
        let wait_ms = self.settings.wait_default_ms;
        self.accept_seat(sid, seat, from, wait_ms, now, out, None);
    }

    // ---- information -------------------------------------------------------------

    fn who(&mut self, iq: &Iq, sid: StreamId, seat: u32, now: Now, out: &mut Out) {
        let stream = &self.streams[&sid];
        let me = &stream.seats[&seat];
        let peers = stream
            .seats
            .values()
            .filter(|s| me.role == Role::Master || s.role == Role::Master)
            .map(|s| WhoPeer {
                role: s.role,
                id: s.id.to_string(),
                status: s.who_status().to_string(),
                throughput: format_traffic(&s.traffic, now.mono),
                jid: s.shown_jid().to_string(),
            })
            .collect();
        Self::send(out, iq.result(Some(Element::from(&WhoResult { peers }))));
    }

    fn stats_of(&self, stream: &DspsStream, wait: u64) -> StatsResult {
        StatsResult {
            init: stream.init,
            protocol: PROTOCOL_VERSION.to_string(),
            port: self.settings.port,
            minthroughput: stream.minthroughput.clone(),
            expiredefault: self.settings.expire_default_ms,
            waitdefault: self.settings.wait_default_ms,
            wait,
            public: stream.public_count(),
            maxpublic: stream.maxpublic,
            mastercount: stream.count(Role::Master),
            slavecount: stream.count(Role::Slave),
            relaycount: stream.count(Role::Relay),
            features: self.settings.features.clone(),
            peers: Vec::new(),
            comments: stream.comments.clone(),
        }
    }

    fn stream_stats(&mut self, iq: &Iq, sid: StreamId, seat: u32, out: &mut Out) {
        let stream = &self.streams[&sid];
        let stats = self.stats_of(stream, stream.seats[&seat].wait_ms);
        Self::send(out, iq.result(Some(Element::from(&stats))));
    }

    fn public_stats_one(&mut self, iq: &Iq, sid: StreamId, out: &mut Out) {
        // XEP: <peer/> is "present only if 'to' … contained no resource".
        let stats = self.stats_of(&self.streams[&sid], self.settings.wait_default_ms);
        Self::send(out, iq.result(Some(Element::from(&stats))));
    }

    /// `stats` to the bare JID: one `<query type='stats'/>` per public stream, as
    /// siblings in the result (XEP "Stream statistics"; PROFILE 19), or one empty
    /// query when there is none.
    fn public_stats(&mut self, iq: &Iq, out: &mut Out) {
        let mut ids: Vec<_> = self
            .streams
            .iter()
            .filter(|(_, s)| s.maxpublic > 0)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        let mut result = iq.result(None).to_element(NS_COMPONENT);
        for sid in &ids {
            let stream = &self.streams[sid];
            let mut stats = self.stats_of(stream, self.settings.wait_default_ms);
            stats.peers = stream
                .public_resource
                .iter()
                .map(|r| self.peer_jid(r))
                .collect();
            result.append_child(Element::from(&stats));
        }
        if ids.is_empty() {
            result.append_child(attr(Element::builder("query", NS_DSPS), "type", "stats").build());
        }
        out.push(Action::Send(result));
    }

    // ---- handshake ---------------------------------------------------------------

    fn on_hello(&mut self, conn: ConnId, hello: Hello, out: &mut Out) {
        let target = bare(&hello.dsps)
            .eq_ignore_ascii_case(&self.settings.domain)
            .then(|| resource(&hello.dsps))
            .flatten()
            .and_then(|r| self.resources.get(r).copied());
        let Some(Addr::Peer(sid, seat)) = target else {
            return out.push(Action::RelayClose {
                conn,
                reason: "hello names an unknown pair",
            });
        };
        let s = self
            .seat_mut(sid, seat)
            .expect("resource index names a live seat");
        if s.jid != hello.client {
            return out.push(Action::RelayClose {
                conn,
                reason: "hello names an unknown pair",
            });
        }
        let old = match &mut s.state {
            SeatState::Waiting { handshake, .. } => handshake.replace(conn),
            SeatState::Connected { .. } => {
                return out.push(Action::RelayClose {
                    conn,
                    reason: "pair already connected",
                })
            }
            SeatState::Invited { .. } => {
                return out.push(Action::RelayClose {
                    conn,
                    reason: "hello for an unaccepted invitation",
                })
            }
        };
        if let Some(old) = old {
            // A client retrying after a broken attempt must not wait for the old
            // attempt's handshake timeout; the newest attempt wins.
            self.conns.remove(&old);
            out.push(Action::RelayClose {
                conn: old,
                reason: "replaced by a newer handshake for the same pair",
            });
        }
        let key1 = ids::new_key();
        self.conns.insert(
            conn,
            ConnState {
                stream: sid,
                seat,
                stage: Stage::AwaitAuth(key1.clone()),
            },
        );
        out.push(Action::RelayWrite {
            conn,
            line: format!("{key1}\n"),
        });
    }

    fn on_auth(&mut self, iq: &Iq, sid: StreamId, seat: u32, key: &str, out: &mut Out) {
        if iq.kind != IqKind::Get {
            return Self::reply_error(out, iq, DspsError::BadRequest, Some("auth is a get"));
        }
        let handshake = match self.seat(sid, seat).map(|s| &s.state) {
            Some(SeatState::Waiting {
                handshake: Some(c), ..
            }) => *c,
            _ => return Self::reply_error(out, iq, DspsError::NotAuthorized, None),
        };
        let Some(state) = self.conns.get_mut(&handshake) else {
            return Self::reply_error(out, iq, DspsError::NotAuthorized, None);
        };
        let Stage::AwaitAuth(key1) = &state.stage else {
            return Self::reply_error(out, iq, DspsError::NotAuthorized, None);
        };
        if !ids::keys_match(key1, key) {
            self.abort_handshake(sid, seat, handshake, "wrong key in auth", out);
            return Self::reply_error(out, iq, DspsError::NotAuthorized, None);
        }
        let key2 = ids::new_key();
        state.stage = Stage::AwaitKey2(key2.clone());
        Self::send(out, iq.result(Some(query::auth(&key2))));
    }

    /// Closes a failed handshake and resumes waiting (XEP: "resume waiting").
    fn abort_handshake(
        &mut self,
        sid: StreamId,
        seat: u32,
        conn: ConnId,
        why: &'static str,
        out: &mut Out,
    ) {
        self.conns.remove(&conn);
        if let Some(SeatState::Waiting { handshake, .. }) =
            self.seat_mut(sid, seat).map(|s| &mut s.state)
        {
            if *handshake == Some(conn) {
                *handshake = None;
            }
        }
        out.push(Action::RelayClose { conn, reason: why });
    }

    fn on_key2(&mut self, conn: ConnId, key: &str, out: &mut Out) {
        let Some(state) = self.conns.get(&conn) else {
            return out.push(Action::RelayClose {
                conn,
                reason: "key line from an unknown connection",
            });
        };
        let (sid, seat) = (state.stream, state.seat);
        let ok = matches!(&state.stage, Stage::AwaitKey2(k2) if ids::keys_match(k2, key));
        if !ok {
            return self.abort_handshake(sid, seat, conn, "wrong or early key line", out);
        }
        self.conns.get_mut(&conn).expect("checked above").stage = Stage::Attached;
        let s = self
            .seat_mut(sid, seat)
            .expect("conn belongs to a live seat");
        if let SeatState::Waiting { timer: Some(t), .. } = s.state {
            self.timers.cancel(t);
        }
        let min_rate = self.streams[&sid].min_rate;
        let s = self
            .seat_mut(sid, seat)
            .expect("conn belongs to a live seat");
        s.state = SeatState::Connected { conn };
        s.ever_connected = true;
        let attach = Attach {
            stream: sid,
            peer_id: s.id.to_string(),
            role: s.role,
            traffic: s.traffic.clone(),
            min_rate,
        };
        info!(stream = sid, peer = %s.jid, id = s.id, "connected");
        out.push(Action::RelayAttach { conn, attach });
        self.notify(sid, seat, "connect", out);
    }

    /// Presence push about `seat` to the members that may see it (PROFILE 15): a
    /// master's change goes to everyone, a slave's or relay's to the masters.
    fn notify(&mut self, sid: StreamId, seat: u32, status: &str, out: &mut Out) {
        let stream = &self.streams[&sid];
        let subject = &stream.seats[&seat];
        let push = Element::from(&PresencePush {
            peers: vec![(status.to_string(), subject.shown_jid().to_string())],
        });
        let targets: Vec<(String, String)> = stream
            .seats
            .values()
            .filter(|s| s.id != seat)
            .filter(|s| subject.role == Role::Master || s.role == Role::Master)
            .filter_map(|s| Some((s.peer_jid(&self.settings.domain)?, s.jid.clone())))
            .collect();
        for (from, to) in targets {
            self.push(out, IqKind::Set, &from, &to, push.clone());
        }
    }

    fn on_closed(&mut self, conn: ConnId, now: Now, out: &mut Out) {
        let Some(state) = self.conns.remove(&conn) else {
            return;
        };
        let (sid, seat) = (state.stream, state.seat);
        let Some(s) = self.seat_mut(sid, seat) else {
            return;
        };
        match (&state.stage, &mut s.state) {
            (Stage::Attached, SeatState::Connected { conn: c }) if *c == conn => {
                let wait_ms = s.wait_ms;
                let timer = ms(wait_ms).map(|d| {
                    self.timers
                        .add(now.mono + d, TimerKey { stream: sid, seat })
                });
                let s = self.seat_mut(sid, seat).expect("still here");
                s.state = SeatState::Waiting {
                    handshake: None,
                    timer,
                };
                info!(stream = sid, peer = %s.jid, "disconnected; waiting for reconnection");
                self.notify(sid, seat, "waiting", out);
            }
            (_, SeatState::Waiting { handshake, .. }) if *handshake == Some(conn) => {
                *handshake = None;
            }
            _ => {}
        }
    }

    // ---- drop and shutdown -------------------------------------------------------

    /// XEP "Dropping peer": close its socket, tell it, tell the others, forget it;
    /// the last master's departure ends the stream.
    /// `own`: the peer dropped itself, so what it already sent is still forwarded.
    fn drop_seat(
        &mut self,
        sid: StreamId,
        seat: u32,
        comments: &[Element],
        own: bool,
        now: Now,
        out: &mut Out,
    ) {
        let Some(s) = self.seat(sid, seat) else {
            return;
        };
        let (jid, peer, visible, was_master) = (
            s.jid.clone(),
            s.peer_jid(&self.settings.domain),
            s.resource.is_some(),
            s.role == Role::Master,
        );
        match s.state {
            SeatState::Connected { conn } if own => out.push(Action::RelayFinish { conn }),
            SeatState::Connected { conn } => out.push(Action::RelayClose {
                conn,
                reason: "peer dropped",
            }),
            SeatState::Waiting {
                handshake: Some(conn),
                ..
            } => out.push(Action::RelayClose {
                conn,
                reason: "peer dropped",
            }),
            _ => {}
        }
        if visible {
            self.notify(sid, seat, "drop", out);
        }
        if let Some(from) = peer {
            self.push(out, IqKind::Set, &from, &jid, query::drop_notice(comments));
        }
        let s = self
            .streams
            .get_mut(&sid)
            .and_then(|st| st.seats.remove(&seat))
            .expect("checked above");
        self.forget_seat_refs(&s);
        info!(stream = sid, peer = %jid, "dropped");
        if was_master && self.streams[&sid].masters() == 0 {
            self.shutdown_stream(sid, now, out);
        }
    }

    /// XEP "Stream shutdown": what masters sent is delivered to connected slaves
    /// (RelayDrain), then every remaining peer is dropped and the stream forgotten.
    fn shutdown_stream(&mut self, sid: StreamId, _now: Now, out: &mut Out) {
        let Some(stream) = self.streams.remove(&sid) else {
            return;
        };
        if let Some(r) = &stream.public_resource {
            self.resources.remove(r);
        }
        for s in stream.seats.values() {
            let notice = s.peer_jid(&self.settings.domain).map(|from| {
                let id = self.new_iq_id("dsps");
                Iq::request(IqKind::Set, &id, &from, &s.jid, query::drop_notice(&[]))
                    .to_element(NS_COMPONENT)
            });
            match (s.state_conn(), notice) {
                (Some((conn, true)), Some(notice)) => out.push(Action::RelayDrain { conn, notice }),
                (conn, notice) => {
                    if let Some((conn, _)) = conn {
                        out.push(Action::RelayClose {
                            conn,
                            reason: "stream ended",
                        });
                    }
                    out.extend(notice.map(Action::Send));
                }
            }
            self.forget_seat_refs(s);
        }
        info!(stream = sid, "stream ended");
        out.push(Action::StreamGone { stream: sid });
    }

    fn on_tick(&mut self, now: Now, out: &mut Out) {
        for (_, key) in self.timers.due(now.mono) {
            let Some(s) = self.seat(key.stream, key.seat) else {
                continue;
            };
            let jid = s.jid.clone();
            match &s.state {
                SeatState::Invited { .. } => {
                    info!(stream = key.stream, peer = %jid, "invitation expired");
                    // The fired timer is gone already; forget_seat_refs cancels nothing twice.
                    if let Some(SeatState::Invited { timer, .. }) =
                        self.seat_mut(key.stream, key.seat).map(|s| &mut s.state)
                    {
                        *timer = None;
                    }
                    self.report_and_forget(key.stream, key.seat, "expire", &jid, now, out);
                }
                SeatState::Waiting { handshake, .. } => {
                    let handshake = *handshake;
                    if let Some(SeatState::Waiting { timer, .. }) =
                        self.seat_mut(key.stream, key.seat).map(|s| &mut s.state)
                    {
                        *timer = None;
                    }
                    let s = self.seat(key.stream, key.seat).expect("still here");
                    if s.ever_connected {
                        info!(stream = key.stream, peer = %jid, "wait expired; dropping");
                        self.drop_seat(key.stream, key.seat, &[], false, now, out);
                    } else {
                        info!(stream = key.stream, peer = %jid, "never connected; timeout");
                        if let Some(c) = handshake {
                            out.push(Action::RelayClose {
                                conn: c,
                                reason: "wait expired",
                            });
                        }
                        let invited = s.invited.clone();
                        self.report_and_forget(key.stream, key.seat, "timeout", &invited, now, out);
                    }
                }
                SeatState::Connected { .. } => {}
            }
        }
    }
}

/// The five-field throughput string of a seat at `now`: received plus sent, per window.
fn format_traffic(slot: &TrafficSlot, now: Instant) -> String {
    slot.lock()
        .unwrap_or_else(|p| p.into_inner())
        .combined(now)
        .format()
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
