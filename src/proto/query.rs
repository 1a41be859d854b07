//! The `jabber:iq:dsps` payload model: every `<query type='…'/>` of XEP-0037 as a
//! Rust value, parsed from and rendered to `minidom::Element`.
//!
//! Requests a client sends (create, auth, admin, acknowledge, who, stats) parse into
//! [`Request`]; everything the server sends (create results, invitations, presence
//! pushes, who/stats results, admin reports) has its own struct that renders to an
//! Element and parses back, so the server and the client library share one model.
//!
//! Readings of the XEP (see PROFILE.md): times are milliseconds, `0` = no limit; a
//! `<comment/>` is kept as the whole element; unknown attributes and children are
//! ignored (XEP "Any XML data not explicitly defined … will be ignored").
//! [`Request::parse_within`] also checks the `[limits]` on what a request may carry
//! (`limits`), so an over-limit request never gets past parsing.

use minidom::Element;

use super::limits::{Limit, OverLimit, QueryLimits};
use super::xml::{attr, get_attr, NS_DSPS};

/// The DSPS protocol version we implement.
pub const PROTOCOL_VERSION: &str = "0.5";

/// A peer's rights in a stream (XEP "Stream administration").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Full control; its data goes to every other peer.
    Master,
    /// May only drop itself; its data goes to the masters.
    Slave,
    /// Another DSPS; treated as a slave, reported by bare JID.
    Relay,
}

impl Role {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Slave => "slave",
            Role::Relay => "relay",
        }
    }

    /// Parses the attribute value.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "master" => Some(Role::Master),
            "slave" => Some(Role::Slave),
            "relay" => Some(Role::Relay),
            _ => None,
        }
    }
}

/// Why a payload is not a DSPS request we can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// Not `<query xmlns='jabber:iq:dsps'/>`.
    NotDsps,
    /// A DSPS query whose `type` we do not know (answered 400).
    UnknownType(String),
    /// A known query with an unusable value, e.g. an admin `<peer/>` without a JID.
    Invalid(&'static str),
    /// A request carrying more than a `[limits]` bound allows (answered 400).
    OverLimit(OverLimit),
}

impl From<OverLimit> for QueryError {
    fn from(e: OverLimit) -> QueryError {
        QueryError::OverLimit(e)
    }
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryError::NotDsps => write!(f, "not a jabber:iq:dsps query"),
            QueryError::UnknownType(t) => write!(f, "unknown query type '{t}'"),
            QueryError::Invalid(why) => write!(f, "{why}"),
            QueryError::OverLimit(e) => write!(f, "{e}"),
        }
    }
}

fn query(kind: &str) -> minidom::ElementBuilder {
    attr(Element::builder("query", NS_DSPS), "type", kind)
}

fn child(name: &str) -> minidom::ElementBuilder {
    Element::builder(name, NS_DSPS)
}

fn comments_of(e: &Element) -> Vec<Element> {
    e.children()
        .filter(|c| c.name() == "comment")
        .cloned()
        .collect()
}

fn peers_of(e: &Element) -> impl Iterator<Item = &Element> {
    e.children().filter(|c| c.name() == "peer")
}

/// A time attribute in milliseconds; unparseable or negative reads as absent
/// (XEP: "If value unparseable or not present, default is used").
pub fn parse_ms(v: Option<&str>) -> Option<u64> {
    v.and_then(|s| s.trim().parse::<u64>().ok())
}

/// The effective time limit: min(requested, default) with 0 meaning no limit
/// (PROFILE 13). Returns milliseconds, 0 = no limit.
pub fn effective_ms(requested: Option<u64>, default: u64) -> u64 {
    match (requested, default) {
        (None, d) => d,
        (Some(0), d) => d,
        (Some(r), 0) => r,
        (Some(r), d) => r.min(d),
    }
}

/// A relay destination named in `create` (PROFILE 23).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayTarget {
    /// The far stream's full JID.
    pub jid: String,
    /// The far DSPS's port, if given.
    pub port: Option<u16>,
    /// An address to dial instead of the JID's domain.
    pub host: Option<String>,
}

/// `create`: make a new stream (to the bare JID) or reconnect a relay (to a resource).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CreateRequest {
    /// `minthroughput` as written (`1.5KB`), if any.
    pub minthroughput: Option<String>,
    /// `maxpublic`; negative or absent reads as 0.
    pub maxpublic: u32,
    /// Relay destinations, tried in order.
    pub relays: Vec<RelayTarget>,
    /// `<comment/>` blocks, reported by `stats`.
    pub comments: Vec<Element>,
}

impl From<&CreateRequest> for Element {
    fn from(c: &CreateRequest) -> Element {
        let mut b = query("create");
        if let Some(m) = &c.minthroughput {
            b = attr(b, "minthroughput", m.as_str());
        }
        if c.maxpublic > 0 {
            b = attr(b, "maxpublic", c.maxpublic.to_string());
        }
        for r in &c.relays {
            let mut p = child("peer");
            if let Some(port) = r.port {
                p = attr(p, "port", port.to_string());
            }
            if let Some(h) = &r.host {
                p = attr(p, "host", h.as_str());
            }
            b = b.append(p.append(r.jid.as_str()).build());
        }
        b.append_all(c.comments.iter().cloned()).build()
    }
}

/// One `<peer type='…'>JID</peer>` action of an `admin` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminAction {
    /// Invite with master rights.
    Invite(Role, String),
    /// Drop the peer with this JID.
    Drop(String),
}

/// `admin`: invite and drop peers. Its `expire`/`wait` apply to this block alone.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AdminRequest {
    /// Requested invitation expiry (ms), if parseable.
    pub expire: Option<u64>,
    /// Requested connection wait (ms), if parseable.
    pub wait: Option<u64>,
    /// Comments passed to every invitee / dropped peer.
    pub comments: Vec<Element>,
    /// The actions, in document order.
    pub actions: Vec<AdminAction>,
}

impl From<&AdminRequest> for Element {
    fn from(a: &AdminRequest) -> Element {
        let mut b = query("admin");
        if let Some(e) = a.expire {
            b = attr(b, "expire", e.to_string());
        }
        if let Some(w) = a.wait {
            b = attr(b, "wait", w.to_string());
        }
        b = b.append_all(a.comments.iter().cloned());
        for act in &a.actions {
            let (t, jid) = match act {
                AdminAction::Invite(r, j) => (r.as_str(), j),
                AdminAction::Drop(j) => ("drop", j),
            };
            b = b.append(attr(child("peer"), "type", t).append(jid.as_str()).build());
        }
        b.build()
    }
}

/// A request a client sends to the DSPS.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// New stream or relay reconnect.
    Create(CreateRequest),
    /// Handshake key exchange: the client's KEY1.
    Auth(String),
    /// Invite/drop.
    Admin(AdminRequest),
    /// Accept (`connect`) or reject an invitation, or join a public stream.
    Acknowledge(String),
    /// List peers.
    Who,
    /// Stream statistics (or public streams on the bare JID).
    Stats,
}

impl Request {
    /// Parses an iq payload without bounds (see [`Request::parse_within`]).
    pub fn parse(e: &Element) -> Result<Request, QueryError> {
        Request::parse_within(e, &QueryLimits::NONE)
    }

    /// Parses an iq payload, refusing one that carries more than `lim` allows: more
    /// comments or `<peer/>`s, longer comments, or a longer value of an attribute or
    /// JID that is kept or repeated. Attributes we ignore are not checked.
    pub fn parse_within(e: &Element, lim: &QueryLimits) -> Result<Request, QueryError> {
        if !e.is("query", NS_DSPS) {
            return Err(QueryError::NotDsps);
        }
        let kind = get_attr(e, "type").unwrap_or("");
        // An unknown type is repeated in the error text.
        lim.attribute("type", Some(kind))?;
        match kind {
            "create" => {
                lim.attribute("minthroughput", get_attr(e, "minthroughput"))?;
                lim.attribute("maxpublic", get_attr(e, "maxpublic"))?;
                let maxpublic = get_attr(e, "maxpublic")
                    .and_then(|v| v.trim().parse::<i64>().ok())
                    .map_or(0, |v| v.clamp(0, u32::MAX as i64) as u32);
                let mut relays = Vec::new();
                for p in peers_of(e) {
                    let jid = p.text().trim().to_string();
                    lim.attribute("peer JID", Some(&jid))?;
                    lim.attribute("host", get_attr(p, "host"))?;
                    // A mistyped port must not quietly become the default one.
                    let port = match get_attr(p, "port").map(str::trim) {
                        None => None,
                        Some(v) => match v.parse::<u16>() {
                            Ok(n) if n > 0 => Some(n),
                            _ => {
                                return Err(QueryError::Invalid(
                                    "a <peer/> port must be a number from 1 to 65535",
                                ))
                            }
                        },
                    };
                    relays.push(RelayTarget {
                        jid,
                        port,
                        host: get_attr(p, "host").map(str::to_string),
                    });
                }
                Ok(Request::Create(CreateRequest {
                    minthroughput: get_attr(e, "minthroughput").map(str::to_string),
                    maxpublic,
                    relays,
                    comments: lim.comments(e, true)?,
                }))
            }
            "auth" => Ok(Request::Auth(e.text().trim().to_string())),
            "admin" => {
                lim.attribute("expire", get_attr(e, "expire"))?;
                lim.attribute("wait", get_attr(e, "wait"))?;
                if peers_of(e).count() > lim.peers_per_admin {
                    return Err(OverLimit {
                        limit: Limit::PeersPerAdmin,
                        max: lim.peers_per_admin,
                    }
                    .into());
                }
                let mut actions = Vec::new();
                for p in peers_of(e) {
                    let jid = p.text().trim().to_string();
                    lim.attribute("peer JID", Some(&jid))?;
                    if jid.is_empty() {
                        return Err(QueryError::Invalid("admin <peer/> without a JID"));
                    }
                    let act = match get_attr(p, "type") {
                        Some("drop") => AdminAction::Drop(jid),
                        Some("master") => AdminAction::Invite(Role::Master, jid),
                        Some("slave") => AdminAction::Invite(Role::Slave, jid),
                        Some("relay") => {
                            return Err(QueryError::Invalid("relay peers cannot be invited"))
                        }
                        _ => {
                            return Err(QueryError::Invalid(
                                "admin <peer/> type must be master, slave or drop",
                            ))
                        }
                    };
                    actions.push(act);
                }
                Ok(Request::Admin(AdminRequest {
                    expire: parse_ms(get_attr(e, "expire")),
                    wait: parse_ms(get_attr(e, "wait")),
                    comments: lim.comments(e, false)?,
                    actions,
                }))
            }
            "acknowledge" => {
                lim.attribute("status", get_attr(e, "status"))?;
                Ok(Request::Acknowledge(
                    get_attr(e, "status").unwrap_or("").to_string(),
                ))
            }
            "who" => Ok(Request::Who),
            "stats" => Ok(Request::Stats),
            other => Err(QueryError::UnknownType(other.to_string())),
        }
    }
}

/// Renders an `auth` query carrying a key (both directions of the key exchange).
pub fn auth(key: &str) -> Element {
    query("auth").append(key).build()
}

/// Reads the key out of an `auth` query.
pub fn auth_key(e: &Element) -> Option<String> {
    (e.is("query", NS_DSPS) && get_attr(e, "type") == Some("auth"))
        .then(|| e.text().trim().to_string())
}

/// The relay key exchange (XEP "DSPS relay setup"): a `create` query whose body is
/// a key, in the DSPS's get (the far DSPS's KEY1) and the client's result (KEY2).
pub fn relay_key(key: &str) -> Element {
    query("create").append(key).build()
}

/// Reads the key out of a relay key exchange's `create` query.
pub fn relay_key_of(e: &Element) -> Option<String> {
    (e.is("query", NS_DSPS) && get_attr(e, "type") == Some("create"))
        .then(|| e.text().trim().to_string())
        .filter(|k| !k.is_empty())
}

/// Renders an empty query of `kind` (who, stats).
pub fn empty(kind: &str) -> Element {
    query(kind).build()
}

/// Renders an `acknowledge` reply with `status` (connect, drop, …).
pub fn acknowledge(status: &str) -> Element {
    attr(query("acknowledge"), "status", status).build()
}

/// An enabled option advertised in create results and stats (PROFILE 12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feature {
    /// `http` or `ssl`.
    pub kind: String,
    /// The version of it.
    pub version: String,
}

fn features_of(e: &Element) -> Vec<Feature> {
    e.children()
        .filter(|c| c.name() == "feature")
        .map(|f| Feature {
            kind: get_attr(f, "type").unwrap_or("").to_string(),
            version: get_attr(f, "version").unwrap_or("").to_string(),
        })
        .collect()
}

fn feature_elements(fs: &[Feature]) -> impl Iterator<Item = Element> + '_ {
    fs.iter().map(|f| {
        attr(
            attr(child("feature"), "type", f.kind.as_str()),
            "version",
            f.version.as_str(),
        )
        .build()
    })
}

/// The "Connection waiting" message: result of `create`, and the push after an
/// accepted invitation (PROFILE 9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateResult {
    /// How long (ms) the DSPS waits for the handshake; 0 = no limit.
    pub wait: u64,
    /// Host to connect to.
    pub host: String,
    /// Port to connect to.
    pub port: u16,
    /// The stream's minthroughput as written.
    pub minthroughput: String,
    /// Protocol version.
    pub protocol: String,
    /// Enabled connection options.
    pub features: Vec<Feature>,
    /// The stream's public JID, in the creator's result of a create with
    /// `maxpublic` (our extension, ignored by other clients: the XEP names it only
    /// in the bare-JID `stats` listing, where a creator cannot tell its stream from
    /// others).
    pub public: Option<String>,
}

impl From<&CreateResult> for Element {
    fn from(c: &CreateResult) -> Element {
        let mut b = query("create");
        b = attr(b, "wait", c.wait.to_string());
        b = attr(b, "host", c.host.as_str());
        b = attr(b, "port", c.port.to_string());
        b = attr(b, "minthroughput", c.minthroughput.as_str());
        b = attr(b, "protocol", c.protocol.as_str());
        if let Some(p) = &c.public {
            b = attr(b, "public", p.as_str());
        }
        b.append_all(feature_elements(&c.features)).build()
    }
}

impl TryFrom<&Element> for CreateResult {
    type Error = QueryError;
    fn try_from(e: &Element) -> Result<Self, QueryError> {
        if !e.is("query", NS_DSPS) || get_attr(e, "type") != Some("create") {
            return Err(QueryError::NotDsps);
        }
        Ok(CreateResult {
            wait: parse_ms(get_attr(e, "wait")).unwrap_or(0),
            host: get_attr(e, "host").unwrap_or("").to_string(),
            port: get_attr(e, "port")
                .and_then(|p| p.parse().ok())
                .ok_or(QueryError::Invalid("create result without a port"))?,
            minthroughput: get_attr(e, "minthroughput").unwrap_or("0").to_string(),
            protocol: get_attr(e, "protocol").unwrap_or("").to_string(),
            features: features_of(e),
            public: get_attr(e, "public").map(str::to_string),
        })
    }
}

/// An invitation: the `acknowledge` get sent to an invitee.
#[derive(Debug, Clone, PartialEq)]
pub struct Invitation {
    /// Rights offered.
    pub role: Role,
    /// Time (ms) the DSPS waits for the answer; 0 = no limit.
    pub expire: u64,
    /// The inviting peers' JIDs.
    pub inviters: Vec<String>,
    /// The admin request's comments.
    pub comments: Vec<Element>,
}

impl From<&Invitation> for Element {
    fn from(i: &Invitation) -> Element {
        let mut b = attr(query("acknowledge"), "status", i.role.as_str());
        b = attr(b, "expire", i.expire.to_string());
        for p in &i.inviters {
            b = b.append(child("peer").append(p.as_str()).build());
        }
        b.append_all(i.comments.iter().cloned()).build()
    }
}

impl TryFrom<&Element> for Invitation {
    type Error = QueryError;
    fn try_from(e: &Element) -> Result<Self, QueryError> {
        if !e.is("query", NS_DSPS) || get_attr(e, "type") != Some("acknowledge") {
            return Err(QueryError::NotDsps);
        }
        Ok(Invitation {
            role: get_attr(e, "status")
                .and_then(Role::parse)
                .ok_or(QueryError::Invalid("invitation without a role"))?,
            expire: parse_ms(get_attr(e, "expire")).unwrap_or(0),
            inviters: peers_of(e).map(|p| p.text().trim().to_string()).collect(),
            comments: comments_of(e),
        })
    }
}

/// The drop notice sent to a dropped peer (`acknowledge status='drop'`).
pub fn drop_notice(comments: &[Element]) -> Element {
    attr(query("acknowledge"), "status", "drop")
        .append_all(comments.iter().cloned())
        .build()
}

/// A `presence` push: peers whose status changed, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PresencePush {
    /// (status, JID) pairs: status is connect, waiting or drop.
    pub peers: Vec<(String, String)>,
}

impl From<&PresencePush> for Element {
    fn from(p: &PresencePush) -> Element {
        query("presence")
            .append_all(p.peers.iter().map(|(s, j)| {
                attr(child("peer"), "status", s.as_str())
                    .append(j.as_str())
                    .build()
            }))
            .build()
    }
}

impl TryFrom<&Element> for PresencePush {
    type Error = QueryError;
    fn try_from(e: &Element) -> Result<Self, QueryError> {
        if !e.is("query", NS_DSPS) || get_attr(e, "type") != Some("presence") {
            return Err(QueryError::NotDsps);
        }
        Ok(PresencePush {
            peers: peers_of(e)
                .map(|p| {
                    (
                        get_attr(p, "status").unwrap_or("").to_string(),
                        p.text().trim().to_string(),
                    )
                })
                .collect(),
        })
    }
}

/// One `<peer/>` of a `who` result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhoPeer {
    /// Its rights.
    pub role: Role,
    /// The id prepended to its data.
    pub id: String,
    /// connect, wait or expire.
    pub status: String,
    /// Five-field throughput string.
    pub throughput: String,
    /// Its JID (bare for relays).
    pub jid: String,
}

/// The `who` result.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WhoResult {
    /// Visible peers.
    pub peers: Vec<WhoPeer>,
}

impl From<&WhoResult> for Element {
    fn from(w: &WhoResult) -> Element {
        query("who")
            .append_all(w.peers.iter().map(|p| {
                let mut b = attr(child("peer"), "type", p.role.as_str());
                b = attr(b, "id", p.id.as_str());
                b = attr(b, "status", p.status.as_str());
                b = attr(b, "throughput", p.throughput.as_str());
                b.append(p.jid.as_str()).build()
            }))
            .build()
    }
}

impl TryFrom<&Element> for WhoResult {
    type Error = QueryError;
    fn try_from(e: &Element) -> Result<Self, QueryError> {
        if !e.is("query", NS_DSPS) || get_attr(e, "type") != Some("who") {
            return Err(QueryError::NotDsps);
        }
        let mut peers = Vec::new();
        for p in peers_of(e) {
            peers.push(WhoPeer {
                role: get_attr(p, "type")
                    .and_then(Role::parse)
                    .ok_or(QueryError::Invalid("who peer without a type"))?,
                id: get_attr(p, "id").unwrap_or("").to_string(),
                status: get_attr(p, "status").unwrap_or("").to_string(),
                throughput: get_attr(p, "throughput").unwrap_or("").to_string(),
                jid: p.text().trim().to_string(),
            });
        }
        Ok(WhoResult { peers })
    }
}

/// A `stats` result for one stream (or one group of public streams).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StatsResult {
    /// UNIX time the stream was created.
    pub init: u64,
    /// Protocol version.
    pub protocol: String,
    /// Default relay port.
    pub port: u16,
    /// The stream's minthroughput as written.
    pub minthroughput: String,
    /// Default invitation expiry (ms).
    pub expiredefault: u64,
    /// Default connection wait (ms).
    pub waitdefault: u64,
    /// This peer's reconnect wait (ms).
    pub wait: u64,
    /// Slaves that joined without invitation.
    pub public: u32,
    /// Maximum public slaves.
    pub maxpublic: u32,
    /// Registered masters.
    pub mastercount: u32,
    /// Registered slaves.
    pub slavecount: u32,
    /// Registered relays.
    pub relaycount: u32,
    /// Enabled options.
    pub features: Vec<Feature>,
    /// Public JIDs (only on the bare-JID listing).
    pub peers: Vec<String>,
    /// The create request's comments.
    pub comments: Vec<Element>,
}

impl From<&StatsResult> for Element {
    fn from(s: &StatsResult) -> Element {
        let mut b = query("stats");
        for (k, v) in [
            ("init", s.init.to_string()),
            ("protocol", s.protocol.clone()),
            ("port", s.port.to_string()),
            ("minthroughput", s.minthroughput.clone()),
            ("expiredefault", s.expiredefault.to_string()),
            ("waitdefault", s.waitdefault.to_string()),
            ("wait", s.wait.to_string()),
            ("public", s.public.to_string()),
            ("maxpublic", s.maxpublic.to_string()),
            ("mastercount", s.mastercount.to_string()),
            ("slavecount", s.slavecount.to_string()),
            ("relaycount", s.relaycount.to_string()),
        ] {
            b = attr(b, k, v);
        }
        b = b.append_all(feature_elements(&s.features));
        b = b.append_all(
            s.peers
                .iter()
                .map(|p| child("peer").append(p.as_str()).build()),
        );
        b.append_all(s.comments.iter().cloned()).build()
    }
}

impl TryFrom<&Element> for StatsResult {
    type Error = QueryError;
    fn try_from(e: &Element) -> Result<Self, QueryError> {
        if !e.is("query", NS_DSPS) || get_attr(e, "type") != Some("stats") {
            return Err(QueryError::NotDsps);
        }
        let n = |k: &str| {
            get_attr(e, k)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // A number too large for its field is unparseable, so it reads as 0 like any
        // other; an `as` cast would wrap it around (port 70000 read as 4464).
        let n16 = |k: &str| u16::try_from(n(k)).unwrap_or(0);
        let n32 = |k: &str| u32::try_from(n(k)).unwrap_or(0);
        Ok(StatsResult {
            init: n("init"),
            protocol: get_attr(e, "protocol").unwrap_or("").to_string(),
            port: n16("port"),
            minthroughput: get_attr(e, "minthroughput").unwrap_or("").to_string(),
            expiredefault: n("expiredefault"),
            waitdefault: n("waitdefault"),
            wait: n("wait"),
            public: n32("public"),
            maxpublic: n32("maxpublic"),
            mastercount: n32("mastercount"),
            slavecount: n32("slavecount"),
            relaycount: n32("relaycount"),
            features: features_of(e),
            peers: peers_of(e).map(|p| p.text().trim().to_string()).collect(),
            comments: comments_of(e),
        })
    }
}

/// The `admin` result or later report: peers the request could not act on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AdminReport {
    /// (acknowledge reason: expire, reject, timeout or missing; JID).
    pub peers: Vec<(String, String)>,
}

impl From<&AdminReport> for Element {
    fn from(r: &AdminReport) -> Element {
        query("admin")
            .append_all(r.peers.iter().map(|(a, j)| {
                attr(child("peer"), "acknowledge", a.as_str())
                    .append(j.as_str())
                    .build()
            }))
            .build()
    }
}

impl TryFrom<&Element> for AdminReport {
    type Error = QueryError;
    fn try_from(e: &Element) -> Result<Self, QueryError> {
        if !e.is("query", NS_DSPS) || get_attr(e, "type") != Some("admin") {
            return Err(QueryError::NotDsps);
        }
        Ok(AdminReport {
            peers: peers_of(e)
                .map(|p| {
                    (
                        get_attr(p, "acknowledge").unwrap_or("").to_string(),
                        p.text().trim().to_string(),
                    )
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(s: &str) -> Element {
        s.parse().unwrap()
    }

    #[test]
    fn parses_spec_create_request() {
        let e = el("<query type='create' xmlns='jabber:iq:dsps' minthroughput='1.5KB' maxpublic='20'><peer port='5290'>dsps.myjabber.net/0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33</peer><comment>public comment</comment></query>");
        let Request::Create(c) = Request::parse(&e).unwrap() else {
            panic!()
        };
        assert_eq!(c.minthroughput.as_deref(), Some("1.5KB"));
        assert_eq!(c.maxpublic, 20);
        assert_eq!(
            c.relays[0].jid,
            "dsps.myjabber.net/0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33"
        );
        assert_eq!(c.relays[0].port, Some(5290));
        assert_eq!(c.comments[0].text(), "public comment");
        assert_eq!(
            Request::parse(&Element::from(&c)).unwrap(),
            Request::Create(c)
        );
    }

    #[test]
    fn negative_maxpublic_reads_as_zero() {
        let e = el("<query type='create' xmlns='jabber:iq:dsps' maxpublic='-3'/>");
        let Request::Create(c) = Request::parse(&e).unwrap() else {
            panic!()
        };
        assert_eq!(c.maxpublic, 0);
    }

    #[test]
    fn parses_spec_admin_request() {
        let e = el("<query type='admin' xmlns='jabber:iq:dsps' expire='20' wait='10'><comment>welcome to the stream</comment><peer type='master'>someone@somewhere.net</peer></query>");
        let Request::Admin(a) = Request::parse(&e).unwrap() else {
            panic!()
        };
        assert_eq!(a.expire, Some(20));
        assert_eq!(a.wait, Some(10));
        assert_eq!(
            a.actions,
            vec![AdminAction::Invite(
                Role::Master,
                "someone@somewhere.net".into()
            )]
        );
        assert_eq!(
            Request::parse(&Element::from(&a)).unwrap(),
            Request::Admin(a)
        );
    }

    #[test]
    fn admin_rejects_unknown_peer_type_and_relay_invites() {
        let e =
            el("<query type='admin' xmlns='jabber:iq:dsps'><peer type='boss'>a@b/c</peer></query>");
        assert!(matches!(Request::parse(&e), Err(QueryError::Invalid(_))));
        let e = el(
            "<query type='admin' xmlns='jabber:iq:dsps'><peer type='relay'>a@b/c</peer></query>",
        );
        assert!(matches!(Request::parse(&e), Err(QueryError::Invalid(_))));
    }

    #[test]
    fn unparseable_times_read_as_absent() {
        let e = el("<query type='admin' xmlns='jabber:iq:dsps' expire='soon' wait='-1'/>");
        let Request::Admin(a) = Request::parse(&e).unwrap() else {
            panic!()
        };
        assert_eq!((a.expire, a.wait), (None, None));
    }

    #[test]
    fn unknown_type_and_foreign_namespace() {
        let e = el("<query type='teleport' xmlns='jabber:iq:dsps'/>");
        assert_eq!(
            Request::parse(&e),
            Err(QueryError::UnknownType("teleport".into()))
        );
        let e = el("<query xmlns='jabber:iq:roster'/>");
        assert_eq!(Request::parse(&e), Err(QueryError::NotDsps));
    }

    #[test]
    fn spec_auth_and_who_and_stats() {
        let e = el("<query type='auth' xmlns='jabber:iq:dsps'>uGhhb74d21</query>");
        assert_eq!(
            Request::parse(&e).unwrap(),
            Request::Auth("uGhhb74d21".into())
        );
        assert_eq!(
            auth_key(&auth("qgqB42Ij784")).as_deref(),
            Some("qgqB42Ij784")
        );
        assert_eq!(Request::parse(&empty("who")).unwrap(), Request::Who);
        assert_eq!(Request::parse(&empty("stats")).unwrap(), Request::Stats);
    }

    #[test]
    fn spec_create_result_round_trip() {
        let e = el("<query type='create' xmlns='jabber:iq:dsps' wait='10' host='dsps.jabber.org' port='5290' minthroughput='1.5KB' protocol='0.5'><feature type='http' version='1.1'/><feature type='ssl' version='3.0'/></query>");
        let c = CreateResult::try_from(&e).unwrap();
        assert_eq!(
            (c.wait, c.port, c.host.as_str()),
            (10, 5290, "dsps.jabber.org")
        );
        assert_eq!(c.features.len(), 2);
        assert_eq!(CreateResult::try_from(&Element::from(&c)).unwrap(), c);
    }

    #[test]
    fn spec_invitation_round_trip() {
        let e = el("<query type='acknowledge' xmlns='jabber:iq:dsps' status='master' expire='20'><peer>rob@nauseum.org/dspsclient</peer><comment>some long comment block or structure</comment></query>");
        let i = Invitation::try_from(&e).unwrap();
        assert_eq!(i.role, Role::Master);
        assert_eq!(i.inviters, vec!["rob@nauseum.org/dspsclient".to_string()]);
        assert_eq!(Invitation::try_from(&Element::from(&i)).unwrap(), i);
    }

    #[test]
    fn spec_who_result_round_trip() {
        let e = el("<query type='who' xmlns='jabber:iq:dsps'><peer type='master' id='0' status='connect' throughput='1KB////4.8KB//3KB'>rob@nauseum.org/dspsclient</peer></query>");
        let w = WhoResult::try_from(&e).unwrap();
        assert_eq!(w.peers[0].throughput, "1KB////4.8KB//3KB");
        assert_eq!(WhoResult::try_from(&Element::from(&w)).unwrap(), w);
    }

    #[test]
    fn spec_stats_and_admin_report_and_presence_round_trip() {
        let e = el("<query type='stats' xmlns='jabber:iq:dsps' init='00000000000000' protocol='0.5' port='5290' minthroughput='1.5KB' expiredefault='150' waitdefault='100' wait='10' public='5' maxpublic='25' mastercount='20' slavecount='40' relaycount='0'><feature type='http' version='1.1'/><peer>mydsps@jabber.org/8xd67f56df4f546fdgsfdg65f6g58f</peer><comment>some server comment</comment></query>");
        let s = StatsResult::try_from(&e).unwrap();
        assert_eq!((s.maxpublic, s.slavecount, s.port), (25, 40, 5290));
        assert_eq!(StatsResult::try_from(&Element::from(&s)).unwrap(), s);
        let e = el("<query type='admin' xmlns='jabber:iq:dsps'><peer acknowledge='expire'>abc@company.com/net</peer><peer acknowledge='missing'>who@knows.org/winjab</peer></query>");
        let r = AdminReport::try_from(&e).unwrap();
        assert_eq!(
            r.peers[1],
            ("missing".into(), "who@knows.org/winjab".into())
        );
        let e = el("<query type='presence' xmlns='jabber:iq:dsps'><peer status='waiting'>JID</peer></query>");
        let p = PresencePush::try_from(&e).unwrap();
        assert_eq!(p.peers, vec![("waiting".into(), "JID".into())]);
        assert_eq!(PresencePush::try_from(&Element::from(&p)).unwrap(), p);
    }

    fn over(e: &Element, lim: &QueryLimits) -> Option<Limit> {
        match Request::parse_within(e, lim) {
            Err(QueryError::OverLimit(o)) => Some(o.limit),
            Ok(_) => None,
            Err(other) => panic!("not a limit error: {other:?}"),
        }
    }

    #[test]
    fn admin_peers_at_the_limit_pass_one_more_is_refused() {
        let lim = QueryLimits {
            peers_per_admin: 3,
            ..QueryLimits::NONE
        };
        let admin = |n: usize| {
            let peers = "<peer type='slave'>b@c/d</peer>".repeat(n);
            el(&format!(
                "<query type='admin' xmlns='jabber:iq:dsps'>{peers}</query>"
            ))
        };
        assert_eq!(over(&admin(3), &lim), None);
        assert_eq!(over(&admin(4), &lim), Some(Limit::PeersPerAdmin));
        let text = Request::parse_within(&admin(4), &lim)
            .unwrap_err()
            .to_string();
        assert_eq!(text, "more peers than limits.peers_per_admin (3)");
    }

    #[test]
    fn kept_or_repeated_attributes_are_bounded_ignored_ones_are_not() {
        let lim = QueryLimits {
            // "acknowledge", the longest query type, is 11 bytes.
            attribute_bytes: 12,
            ..QueryLimits::NONE
        };
        let q = |kind: &str, attrs: &str, body: &str| {
            el(&format!(
                "<query type='{kind}' xmlns='jabber:iq:dsps' {attrs}>{body}</query>"
            ))
        };
        let cases = [
            ("create", "minthroughput='{}'", "", "minthroughput"),
            ("create", "maxpublic='{}'", "", "maxpublic"),
            ("create", "", "<peer>{}</peer>", "peer JID"),
            ("create", "", "<peer host='{}'>a</peer>", "host"),
            ("admin", "expire='{}'", "", "expire"),
            ("admin", "wait='{}'", "", "wait"),
            ("admin", "", "<peer type='slave'>{}</peer>", "peer JID"),
            ("acknowledge", "status='{}'", "", "status"),
        ];
        for (kind, attrs, body, what) in cases {
            let (at, past) = ("1".repeat(12), "1".repeat(13));
            let past = q(
                kind,
                &attrs.replace("{}", &past),
                &body.replace("{}", &past),
            );
            let at = q(kind, &attrs.replace("{}", &at), &body.replace("{}", &at));
            assert_eq!(over(&at, &lim), None, "{kind} {what} at the limit");
            assert_eq!(
                over(&past, &lim),
                Some(Limit::AttributeBytes(what)),
                "{kind} {what} one byte over"
            );
        }
        // An unknown type is repeated in its error, so it is bounded too.
        assert_eq!(
            over(&q("teleportation", "", ""), &lim),
            Some(Limit::AttributeBytes("type"))
        );
        // Attributes nobody reads are ignored, however long.
        assert_eq!(
            over(&q("who", &format!("x='{}'", "y".repeat(99)), ""), &lim),
            None
        );
    }

    #[test]
    fn create_comments_count_against_the_stream_admin_comments_do_not() {
        let lim = QueryLimits {
            stream_comment_bytes: 100,
            ..QueryLimits::NONE
        };
        let comment = format!("<comment>{}</comment>", "z".repeat(40));
        let body = comment.repeat(2);
        let create = el(&format!(
            "<query type='create' xmlns='jabber:iq:dsps'>{body}</query>"
        ));
        let admin = el(&format!(
            "<query type='admin' xmlns='jabber:iq:dsps'>{body}</query>"
        ));
        // Two comments of 40 text bytes and 41 bytes of tags each: 162 bytes.
        assert_eq!(over(&create, &lim), Some(Limit::StreamCommentBytes));
        assert_eq!(over(&admin, &lim), None);
        let lim = QueryLimits {
            comment_bytes: 80,
            ..QueryLimits::NONE
        };
        assert_eq!(over(&admin, &lim), Some(Limit::CommentBytes));
        let lim = QueryLimits {
            comments_per_request: 1,
            ..QueryLimits::NONE
        };
        assert_eq!(over(&admin, &lim), Some(Limit::CommentsPerRequest));
    }

    #[test]
    fn stats_numbers_too_large_for_their_field_read_as_zero() {
        let e = el("<query type='stats' xmlns='jabber:iq:dsps' port='70000' public='4294967297' mastercount='7'/>");
        let s = StatsResult::try_from(&e).unwrap();
        assert_eq!((s.port, s.public, s.mastercount), (0, 0, 7));
    }

    #[test]
    fn effective_time_is_min_with_zero_as_infinite() {
        assert_eq!(effective_ms(None, 100), 100);
        assert_eq!(effective_ms(Some(10), 100), 10);
        assert_eq!(effective_ms(Some(500), 100), 100);
        assert_eq!(effective_ms(Some(0), 100), 100);
        assert_eq!(effective_ms(Some(50), 0), 50);
        assert_eq!(effective_ms(Some(0), 0), 0);
    }
}
