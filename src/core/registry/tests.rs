//! Rule-by-rule tests of the registry: literal stanzas and relay events in, actions
//! out, on a made-up clock (STYLE §6). Each test names the rule it checks; the
//! [`Harness`] keeps the scenarios short (create, invite, accept, handshake).

use super::*;
use crate::core::ids;
use crate::proto::handshake::parse_hello;
use crate::proto::iq::{bare, resource};
use crate::proto::query::{
    self, AdminReport, CreateResult, Invitation, PresencePush, StatsResult, WhoPeer, WhoResult,
};
use crate::proto::xml::{get_attr, NS_STANZAS};

mod limits;
mod operator;
mod relay;

const DOMAIN: &str = "dsps.localhost";
const WAIT_DEFAULT: u64 = 10_000;
const EXPIRE_DEFAULT: u64 = 20_000;
const UNIX0: u64 = 1_700_000_000;

const ALICE: &str = "alice@localhost/a";
const BOB: &str = "bob@localhost/b";
const CAROL: &str = "carol@localhost/c";
const DAVE: &str = "dave@localhost/d";
const ERIN: &str = "erin@localhost/e";
const MALLORY: &str = "mallory@localhost/m";

fn settings() -> Settings {
    Settings {
        domain: DOMAIN.into(),
        host: "relay.localhost".into(),
        port: 5290,
        wait_default_ms: WAIT_DEFAULT,
        expire_default_ms: EXPIRE_DEFAULT,
        features: vec![Feature {
            kind: "http".into(),
            version: "1.0".into(),
        }],
        show_os: false,
        limits: crate::config::Limits::default(),
        max_stanza_size: crate::config::DEFAULT_MAX_STANZA_SIZE,
        relay_policy: crate::core::relay_policy::RelayPolicy::default(),
        admins: Vec::new(),
        started: Now {
            mono: Instant::now(),
            unix: UNIX0,
        },
        log_filter: None,
    }
}

/// A `jabber:iq:dsps` query as XML text.
fn dsps(kind: &str, attrs: &str, body: &str) -> String {
    format!("<query xmlns='jabber:iq:dsps' type='{kind}' {attrs}>{body}</query>")
}

fn ack(status: &str) -> String {
    dsps("acknowledge", &format!("status='{status}'"), "")
}

/// One peer as a client sees it: its full JID, its seat's DSPS full JID (peer
/// resource) and its relay connection once attached.
#[derive(Debug, Clone)]
struct Peer {
    jid: String,
    dsps: String,
    conn: Option<ConnId>,
}

impl Peer {
    fn conn(&self) -> ConnId {
        self.conn.expect("peer is connected")
    }
}

struct Harness {
    reg: Registry,
    base: Instant,
    elapsed: Duration,
    next_conn: ConnId,
    next_id: u64,
}

impl Harness {
    fn new() -> Harness {
        Harness::with(settings())
    }

    fn with(settings: Settings) -> Harness {
        Harness {
            reg: Registry::new(settings),
            base: Instant::now(),
            elapsed: Duration::ZERO,
            next_conn: 100,
            next_id: 0,
        }
    }

    fn now(&self) -> Now {
        Now {
            mono: self.base + self.elapsed,
            unix: UNIX0 + self.elapsed.as_secs(),
        }
    }

    fn feed(&mut self, input: Input) -> Vec<Action> {
        let now = self.now();
        self.reg.handle(input, now)
    }

    fn xml(&mut self, xml: &str) -> Vec<Action> {
        let e: Element = xml.parse().expect("test stanza is well-formed");
        self.feed(Input::Stanza(e))
    }

    /// An iq with a given id.
    fn iq_id(&mut self, kind: &str, id: &str, from: &str, to: &str, payload: &str) -> Vec<Action> {
        self.xml(&format!(
            "<iq xmlns='jabber:component:accept' type='{kind}' id='{id}' from='{from}' to='{to}'>{payload}</iq>"
        ))
    }

    /// An iq with a fresh id.
    fn iq(&mut self, kind: &str, from: &str, to: &str, payload: &str) -> Vec<Action> {
        self.next_id += 1;
        let id = format!("c{}", self.next_id);
        self.iq_id(kind, &id, from, to, payload)
    }

    /// A request that must get exactly one answer and cause nothing else.
    fn ask(&mut self, kind: &str, from: &str, to: &str, payload: &str) -> Iq {
        one_iq(&self.iq(kind, from, to, payload))
    }

    /// A peer's request to its own peer resource (who, stats, …).
    fn ask_own(&mut self, p: &Peer, kind: &str, qtype: &str) -> Iq {
        self.ask(kind, &p.jid.clone(), &p.dsps.clone(), &dsps(qtype, "", ""))
    }

    fn tick(&mut self) -> Vec<Action> {
        self.feed(Input::Tick)
    }

    fn advance(&mut self, ms: u64) -> Vec<Action> {
        self.elapsed += Duration::from_millis(ms);
        self.tick()
    }

    fn create(&mut self, jid: &str) -> Peer {
        self.create_with(jid, "", "").0
    }

    /// `create` to the bare DSPS JID; returns the creator and the result.
    fn create_with(&mut self, jid: &str, attrs: &str, body: &str) -> (Peer, Iq) {
        let r = self.ask("get", jid, DOMAIN, &dsps("create", attrs, body));
        assert_eq!(r.kind, IqKind::Result, "create failed: {r:?}");
        let peer = Peer {
            jid: jid.into(),
            dsps: r.from.clone(),
            conn: None,
        };
        (peer, r)
    }

    /// An `admin` set from `by` to its peer resource.
    fn admin(&mut self, by: &Peer, attrs: &str, body: &str) -> Vec<Action> {
        self.iq(
            "set",
            &by.jid.clone(),
            &by.dsps.clone(),
            &dsps("admin", attrs, body),
        )
    }

    /// Invites `who` and returns the `acknowledge` get sent to it.
    fn invite(&mut self, by: &Peer, role: &str, who: &str) -> Iq {
        let out = self.admin(by, "", &format!("<peer type='{role}'>{who}</peer>"));
        let iqs = iqs(&out);
        assert_eq!(iqs.len(), 2, "admin result and one invitation: {iqs:?}");
        assert_eq!(iqs[0].kind, IqKind::Result);
        assert_eq!(iqs[1].to, who);
        iqs[1].clone()
    }

    /// Answers an invitation the XEP way: a result carrying `acknowledge status`.
    fn answer(&mut self, inv: &Iq, from: &str, status: &str) -> Vec<Action> {
        let (id, to) = (inv.id.clone(), inv.from.clone());
        self.iq_id("result", &id, from, &to, &ack(status))
    }

    /// Accepts an invitation from `from` and returns the new seat.
    fn accept(&mut self, inv: &Iq, from: &str) -> Peer {
        let push = one_iq(&self.answer(inv, from, "connect"));
        assert_eq!((push.kind, push.to.as_str()), (IqKind::Set, from));
        assert_eq!(push.dsps_type(), Some("create"));
        Peer {
            jid: from.into(),
            dsps: push.from,
            conn: None,
        }
    }

    /// Invites and accepts.
    fn join(&mut self, by: &Peer, role: &str, jid: &str) -> Peer {
        let inv = self.invite(by, role, jid);
        self.accept(&inv, jid)
    }

    fn new_conn(&mut self) -> ConnId {
        self.next_conn += 1;
        self.next_conn
    }

    fn hello(&mut self, conn: ConnId, client: &str, dsps: &str) -> Vec<Action> {
        let hello = parse_hello(&format!("{client} {dsps}")).expect("test hello parses");
        self.feed(Input::RelayHello { conn, hello })
    }

    /// Hello on a new connection; returns it and KEY1 (without the newline).
    fn key1(&mut self, p: &Peer) -> (ConnId, String) {
        let conn = self.new_conn();
        let out = self.hello(conn, &p.jid.clone(), &p.dsps.clone());
        let [Action::RelayWrite { conn: c, line }] = out.as_slice() else {
            panic!("expected KEY1, got {out:?}");
        };
        assert_eq!(*c, conn);
        let key = line.strip_suffix('\n').expect("KEY1 line ends in \\n");
        (conn, key.to_string())
    }

    /// The auth iq with `key`; returns the answer.
    fn auth(&mut self, p: &Peer, key: &str) -> Vec<Action> {
        self.iq(
            "get",
            &p.jid.clone(),
            &p.dsps.clone(),
            &dsps("auth", "", key),
        )
    }

    /// Hello and auth; returns the connection and KEY2.
    fn key2(&mut self, p: &Peer) -> (ConnId, String) {
        let (conn, key1) = self.key1(p);
        let r = one_iq(&self.auth(p, &key1));
        assert_eq!(r.kind, IqKind::Result, "auth failed: {r:?}");
        let key2 = query::auth_key(r.payload.as_ref().expect("auth result has a key"))
            .expect("auth result carries an auth query");
        (conn, key2)
    }

    /// The whole default handshake; returns the actions of the final key line
    /// (the attach and the presence pushes).
    fn handshake(&mut self, p: &mut Peer) -> Vec<Action> {
        let (conn, key2) = self.key2(p);
        let out = self.feed(Input::RelayKey { conn, key: key2 });
        assert_eq!(attaches(&out).len(), 1, "expected an attach: {out:?}");
        p.conn = Some(conn);
        out
    }

    fn close(&mut self, conn: ConnId) -> Vec<Action> {
        self.feed(Input::RelayClosed { conn })
    }

    fn who(&mut self, p: &Peer) -> Vec<WhoPeer> {
        let r = self.ask_own(p, "get", "who");
        assert_eq!(r.kind, IqKind::Result, "who failed: {r:?}");
        WhoResult::try_from(r.payload.as_ref().expect("who has a payload"))
            .expect("who result parses")
            .peers
    }
}

// ---- reading actions --------------------------------------------------------------

/// Every stanza the actions send: at once, or (drop notices) after a drain.
fn iqs(out: &[Action]) -> Vec<Iq> {
    out.iter()
        .filter_map(|a| match a {
            Action::Send(e)
            | Action::RelayDrain {
                notice: Some(e), ..
            } => Some(Iq::parse(e).expect("registry sends iqs")),
            _ => None,
        })
        .collect()
}

/// Connections told to finish (their peer dropped itself).
fn finishes(out: &[Action]) -> Vec<ConnId> {
    out.iter()
        .filter_map(|a| match a {
            Action::RelayFinish { conn } => Some(*conn),
            _ => None,
        })
        .collect()
}

fn one_iq(out: &[Action]) -> Iq {
    assert_eq!(out.len(), 1, "expected exactly one stanza: {out:?}");
    iqs(out).pop().expect("the one action is a stanza")
}

fn closes(out: &[Action]) -> Vec<ConnId> {
    out.iter()
        .filter_map(|a| match a {
            Action::RelayClose { conn, .. } => Some(*conn),
            _ => None,
        })
        .collect()
}

fn close_reasons(out: &[Action]) -> Vec<&'static str> {
    out.iter()
        .filter_map(|a| match a {
            Action::RelayClose { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

fn drains(out: &[Action]) -> Vec<ConnId> {
    out.iter()
        .filter_map(|a| match a {
            Action::RelayDrain { conn, .. } => Some(*conn),
            _ => None,
        })
        .collect()
}

fn attaches(out: &[Action]) -> Vec<(ConnId, Attach)> {
    out.iter()
        .filter_map(|a| match a {
            Action::RelayAttach { conn, attach } => Some((*conn, attach.clone())),
            _ => None,
        })
        .collect()
}

fn gone(out: &[Action]) -> Vec<StreamId> {
    out.iter()
        .filter_map(|a| match a {
            Action::StreamGone { stream, .. } => Some(*stream),
            _ => None,
        })
        .collect()
}

/// Presence pushes as (from, to, status, subject JID), sorted by recipient.
fn presences(out: &[Action]) -> Vec<(String, String, String, String)> {
    let mut v: Vec<_> = iqs(out)
        .into_iter()
        .filter(|i| i.dsps_type() == Some("presence"))
        .map(|i| {
            assert_eq!(i.kind, IqKind::Set);
            let p = PresencePush::try_from(i.payload.as_ref().unwrap()).unwrap();
            assert_eq!(p.peers.len(), 1);
            let (status, jid) = p.peers[0].clone();
            (i.from, i.to, status, jid)
        })
        .collect();
    v.sort_by(|a, b| a.1.cmp(&b.1));
    v
}

/// Stanzas of one dsps query type, in order.
fn of_type(out: &[Action], kind: &str) -> Vec<Iq> {
    iqs(out)
        .into_iter()
        .filter(|i| i.dsps_type() == Some(kind))
        .collect()
}

/// One admin stanza as (from, to, [(acknowledge, JID)]).
type Report = (String, String, Vec<(String, String)>);

/// Admin reports (pushes and results).
fn reports(out: &[Action]) -> Vec<Report> {
    of_type(out, "admin")
        .into_iter()
        .map(|i| {
            let r = AdminReport::try_from(i.payload.as_ref().unwrap()).unwrap();
            (i.from, i.to, r.peers)
        })
        .collect()
}

fn code(iq: &Iq) -> Option<u16> {
    assert_eq!(iq.kind, IqKind::Error, "expected an error: {iq:?}");
    iq.error_code()
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

fn presence(from: &Peer, to: &Peer, status: &str, about: &str) -> (String, String, String, String) {
    (
        from.dsps.clone(),
        to.jid.clone(),
        status.to_string(),
        about.to_string(),
    )
}

fn resource_of(jid: &str) -> &str {
    resource(jid).expect("a full JID")
}

fn is_fresh_resource(jid: &str) -> bool {
    bare(jid) == DOMAIN
        && resource_of(jid).len() == ids::RESOURCE_LEN
        && resource_of(jid).chars().all(|c| c.is_ascii_hexdigit())
}

// ---- create and the bare JID ------------------------------------------------------

#[test]
fn create_result_comes_from_a_new_peer_resource_with_connection_details() {
    let mut h = Harness::new();
    let r = h.ask(
        "get",
        ALICE,
        DOMAIN,
        &dsps("create", "minthroughput='1.5KB'", ""),
    );
    assert_eq!(r.kind, IqKind::Result);
    assert_eq!((r.id.as_str(), r.to.as_str()), ("c1", ALICE));
    assert!(is_fresh_resource(&r.from), "{}", r.from);
    let q = r.payload.as_ref().unwrap();
    assert_eq!(r.dsps_type(), Some("create"));
    for (k, v) in [
        ("wait", "10000"),
        ("host", "relay.localhost"),
        ("port", "5290"),
        ("minthroughput", "1.5KB"),
        ("protocol", "0.5"),
    ] {
        assert_eq!(get_attr(q, k), Some(v), "attribute {k}");
    }
    let features: Vec<_> = q.children().filter(|c| c.name() == "feature").collect();
    assert_eq!(features.len(), 1);
    assert_eq!(get_attr(features[0], "type"), Some("http"));
    assert_eq!(get_attr(features[0], "version"), Some("1.0"));
}

#[test]
fn creator_is_master_with_id_zero_waiting_for_its_connection() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    let who = h.who(&a);
    assert_eq!(
        who,
        vec![WhoPeer {
            role: Role::Master,
            id: "0".into(),
            status: "wait".into(),
            throughput: "0B/0B/0B/0B/0B".into(),
            jid: ALICE.into(),
        }]
    );
}

#[test]
fn create_as_set_is_accepted_too() {
    let mut h = Harness::new();
    let r = h.ask("set", ALICE, DOMAIN, &dsps("create", "", ""));
    assert_eq!(r.kind, IqKind::Result);
    assert!(is_fresh_resource(&r.from));
}

#[test]
fn every_create_makes_a_new_stream_with_its_own_resource() {
    let mut h = Harness::new();
    let a1 = h.create(ALICE);
    let a2 = h.create(ALICE);
    assert_ne!(a1.dsps, a2.dsps);
    assert_eq!(h.reg.stream_count(), 2);
}

#[test]
fn create_without_minthroughput_or_with_a_negative_one_reports_zero() {
    let mut h = Harness::new();
    let (_, r) = h.create_with(ALICE, "", "");
    assert_eq!(
        get_attr(r.payload.as_ref().unwrap(), "minthroughput"),
        Some("0")
    );
    let (_, r) = h.create_with(ALICE, "minthroughput='-5KB'", "");
    assert_eq!(
        get_attr(r.payload.as_ref().unwrap(), "minthroughput"),
        Some("0")
    );
}

#[test]
fn create_with_an_unreadable_minthroughput_is_bad_request() {
    let mut h = Harness::new();
    let r = h.ask(
        "get",
        ALICE,
        DOMAIN,
        &dsps("create", "minthroughput='fast'", ""),
    );
    assert_eq!(code(&r), Some(400));
    assert_eq!(h.reg.stream_count(), 0);
}

#[test]
fn create_from_a_bare_jid_is_bad_request() {
    let mut h = Harness::new();
    let r = h.ask("get", "alice@localhost", DOMAIN, &dsps("create", "", ""));
    assert_eq!(code(&r), Some(400));
    assert_eq!(h.reg.stream_count(), 0);
}

#[test]
fn create_naming_a_relay_peer_is_not_allowed() {
    let mut h = Harness::new();
    let r = h.ask(
        "get",
        ALICE,
        DOMAIN,
        &dsps(
            "create",
            "",
            "<peer port='5290'>dsps.myjabber.net/0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33</peer>",
        ),
    );
    assert_eq!(code(&r), Some(405));
    assert_eq!(h.reg.held(), (0, 0, 0, 0));
}

#[test]
fn unknown_query_type_is_bad_request_on_bare_jid_and_on_peer_resource() {
    let mut h = Harness::new();
    let r = h.ask("get", ALICE, DOMAIN, &dsps("teleport", "", ""));
    assert_eq!(code(&r), Some(400));
    let a = h.create(ALICE);
    let r = h.ask("get", ALICE, &a.dsps, &dsps("teleport", "", ""));
    assert_eq!(code(&r), Some(400));
    assert_eq!((r.from.as_str(), r.to.as_str()), (a.dsps.as_str(), ALICE));
}

#[test]
fn stream_queries_on_the_bare_jid_are_bad_request() {
    let mut h = Harness::new();
    let r = h.ask("get", ALICE, DOMAIN, &dsps("who", "", ""));
    assert_eq!(code(&r), Some(400));
}

#[test]
fn unknown_non_dsps_iq_to_bare_jid_is_service_unavailable() {
    let mut h = Harness::new();
    let r = h.ask("get", ALICE, DOMAIN, "<query xmlns='jabber:iq:roster'/>");
    assert_eq!(code(&r), Some(503));
    assert_eq!((r.from.as_str(), r.to.as_str()), (DOMAIN, ALICE));
    let err = r.error.as_ref().unwrap();
    assert_eq!(get_attr(err, "type"), Some("cancel"));
    assert!(err.has_child("service-unavailable", NS_STANZAS));
}

#[test]
fn empty_iq_request_is_bad_request() {
    let mut h = Harness::new();
    let r = h.ask("get", ALICE, DOMAIN, "");
    assert_eq!(code(&r), Some(400));
}

#[test]
fn disco_info_on_bare_jid_names_a_generic_component_with_the_dsps_feature() {
    let mut h = Harness::new();
    let r = h.ask(
        "get",
        ALICE,
        DOMAIN,
        "<query xmlns='http://jabber.org/protocol/disco#info'/>",
    );
    assert_eq!(r.kind, IqKind::Result);
    assert_eq!(r.from, DOMAIN);
    let q = r.payload.as_ref().unwrap();
    let ns = crate::core::info::NS_DISCO_INFO;
    let id = q.get_child("identity", ns).expect("an identity");
    assert_eq!(get_attr(id, "category"), Some("component"));
    assert_eq!(get_attr(id, "type"), Some("generic"));
    assert_eq!(get_attr(id, "name"), Some("Data Stream Proxy Service"));
    let vars: Vec<_> = q
        .children()
        .filter(|c| c.name() == "feature")
        .filter_map(|f| get_attr(f, "var"))
        .collect();
    for v in ["jabber:iq:dsps", "urn:xmpp:ping", "jabber:iq:version"] {
        assert!(vars.contains(&v), "{v} missing from {vars:?}");
    }
}

#[test]
fn ping_and_version_are_answered_on_bare_jid_without_the_os() {
    let mut h = Harness::new();
    let r = h.ask("get", ALICE, DOMAIN, "<ping xmlns='urn:xmpp:ping'/>");
    assert_eq!((r.kind, r.payload.is_none()), (IqKind::Result, true));
    let r = h.ask("get", ALICE, DOMAIN, "<query xmlns='jabber:iq:version'/>");
    assert_eq!(r.kind, IqKind::Result);
    let q = r.payload.as_ref().unwrap();
    assert_eq!(
        q.get_child("name", "jabber:iq:version").map(|n| n.text()),
        Some("dsps".to_string())
    );
    assert!(q.get_child("os", "jabber:iq:version").is_none());
}

#[test]
fn iq_to_a_peer_resource_from_a_jid_that_does_not_own_it_is_not_found() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    for kind in ["who", "stats"] {
        let r = h.ask("get", MALLORY, &a.dsps, &dsps(kind, "", ""));
        assert_eq!(code(&r), Some(404));
    }
    // Another resource of the owner's own account is a different JID too.
    let r = h.ask(
        "get",
        "alice@localhost/other",
        &a.dsps,
        &dsps("who", "", ""),
    );
    assert_eq!(code(&r), Some(404));
    let r = h.ask(
        "set",
        MALLORY,
        &a.dsps,
        &dsps("admin", "", &format!("<peer type='drop'>{ALICE}</peer>")),
    );
    assert_eq!(code(&r), Some(404));
    assert_eq!(h.who(&a).len(), 1);
}

#[test]
fn iq_to_an_unknown_resource_or_foreign_domain_is_not_found() {
    let mut h = Harness::new();
    let r = h.ask(
        "get",
        ALICE,
        &format!("{DOMAIN}/0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33"),
        &dsps("who", "", ""),
    );
    assert_eq!(code(&r), Some(404));
    let r = h.ask("get", ALICE, "elsewhere.localhost", &dsps("create", "", ""));
    assert_eq!(code(&r), Some(404));
}

#[test]
fn non_iq_stanzas_and_unsolicited_answers_are_ignored() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    assert!(h
        .xml("<message xmlns='jabber:component:accept' from='alice@localhost/a' to='dsps.localhost'><body>hi</body></message>")
        .is_empty());
    assert!(h.iq("result", ALICE, DOMAIN, "").is_empty());
    assert!(h.iq("result", ALICE, &a.dsps.clone(), "").is_empty());
    assert!(h.iq("error", ALICE, &a.dsps.clone(), "").is_empty());
}

// ---- invitations ------------------------------------------------------------------

#[test]
fn admin_invite_sends_acknowledge_get_from_a_fresh_invitation_resource() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    let out = h.admin(
        &a,
        "expire='5000'",
        "<comment>welcome to the stream</comment><peer type='master'>bob@localhost</peer>",
    );
    let iqs = iqs(&out);
    assert_eq!(iqs.len(), 2);
    // The admin request is answered at once, from the admin's peer resource.
    assert_eq!(iqs[0].kind, IqKind::Result);
    assert_eq!(
        (iqs[0].from.as_str(), iqs[0].to.as_str()),
        (a.dsps.as_str(), ALICE)
    );
    assert_eq!(
        reports(&out[..1]),
        vec![(a.dsps.clone(), ALICE.into(), vec![])]
    );
    let inv = &iqs[1];
    assert_eq!(inv.kind, IqKind::Get);
    assert_eq!(inv.to, "bob@localhost");
    assert!(is_fresh_resource(&inv.from));
    assert_ne!(inv.from, a.dsps);
    let i = Invitation::try_from(inv.payload.as_ref().unwrap()).unwrap();
    assert_eq!(i.role, Role::Master);
    assert_eq!(i.expire, 5000);
    assert_eq!(i.inviters, vec![ALICE.to_string()]);
    assert_eq!(i.comments.len(), 1);
    assert_eq!(i.comments[0].text(), "welcome to the stream");
    assert_eq!(
        get_attr(inv.payload.as_ref().unwrap(), "status"),
        Some("master")
    );
}

#[test]
fn invitation_expire_is_the_minimum_of_requested_and_default() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    for (attrs, want) in [
        ("expire='5000'", 5000),
        ("expire='50000'", EXPIRE_DEFAULT),
        ("expire='0'", EXPIRE_DEFAULT),
        ("expire='soon'", EXPIRE_DEFAULT),
        ("", EXPIRE_DEFAULT),
    ] {
        h.next_id += 1;
        let who = format!("guest{}@localhost", h.next_id);
        let out = h.admin(&a, attrs, &format!("<peer type='slave'>{who}</peer>"));
        let inv = of_type(&out, "acknowledge").pop().unwrap();
        let i = Invitation::try_from(inv.payload.as_ref().unwrap()).unwrap();
        assert_eq!((i.role, i.expire), (Role::Slave, want), "{attrs}");
    }
}

#[test]
fn accepting_pushes_create_set_to_the_accepting_full_jid_from_a_new_peer_resource() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    let inv = h.invite(&a, "slave", "bob@localhost");
    let out = h.answer(&inv, BOB, "connect");
    let push = one_iq(&out);
    assert_eq!(push.kind, IqKind::Set);
    assert_eq!(push.to, BOB);
    assert!(is_fresh_resource(&push.from));
    assert_ne!(
        push.from, inv.from,
        "peer resource is not the invitation resource"
    );
    assert_ne!(push.from, a.dsps);
    let c = CreateResult::try_from(push.payload.as_ref().unwrap()).unwrap();
    assert_eq!(c.wait, WAIT_DEFAULT);
    assert_eq!((c.host.as_str(), c.port), ("relay.localhost", 5290));
    assert_eq!(
        (c.minthroughput.as_str(), c.protocol.as_str()),
        ("0", "0.5")
    );
    // The accepting full JID now owns the new seat.
    let b = Peer {
        jid: BOB.into(),
        dsps: push.from.clone(),
        conn: None,
    };
    let who = h.who(&b);
    assert_eq!(who.len(), 1, "a slave sees the masters only");
    assert_eq!(who[0].jid, ALICE);
    let who = h.who(&a);
    assert_eq!((who[1].jid.as_str(), who[1].role), (BOB, Role::Slave));
    assert_eq!((who[1].id.as_str(), who[1].status.as_str()), ("1", "wait"));
}

#[test]
fn accepting_by_a_set_to_the_invitation_resource_is_answered_and_accepted() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    let inv = h.invite(&a, "master", "bob@localhost");
    let out = h.iq("set", BOB, &inv.from.clone(), &ack("connect"));
    let iqs = iqs(&out);
    assert_eq!(iqs.len(), 2);
    assert_eq!(iqs[0].kind, IqKind::Result);
    assert_eq!(
        (iqs[0].from.as_str(), iqs[0].to.as_str()),
        (inv.from.as_str(), BOB)
    );
    assert_eq!((iqs[1].kind, iqs[1].to.as_str()), (IqKind::Set, BOB));
    assert_eq!(iqs[1].dsps_type(), Some("create"));
}

#[test]
fn rejecting_with_drop_reports_reject_to_the_inviter() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    let inv = h.invite(&a, "slave", "bob@localhost");
    let out = h.answer(&inv, BOB, "drop");
    let push = one_iq(&out);
    assert_eq!(push.kind, IqKind::Set);
    assert_eq!(
        reports(&out),
        vec![(a.dsps.clone(), ALICE.into(), vec![pair("reject", BOB)])]
    );
    // The invitation is forgotten.
    assert_eq!(h.who(&a).len(), 1);
    let r = h.ask("set", BOB, &inv.from, &ack("connect"));
    assert_eq!(code(&r), Some(404));
}

#[test]
fn any_other_acknowledge_status_rejects() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    let inv = h.invite(&a, "slave", "bob@localhost");
    let out = h.answer(&inv, BOB, "maybe-later");
    assert_eq!(
        reports(&out),
        vec![(a.dsps.clone(), ALICE.into(), vec![pair("reject", BOB)])]
    );
}

#[test]
fn an_error_or_empty_answer_to_an_invitation_rejects() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    let inv = h.invite(&a, "slave", "bob@localhost");
    let out = h.iq_id(
        "error",
        &inv.id.clone(),
        BOB,
        &inv.from.clone(),
        "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>",
    );
    assert_eq!(
        reports(&out),
        vec![(a.dsps.clone(), ALICE.into(), vec![pair("reject", BOB)])]
    );
    let inv = h.invite(&a, "slave", "carol@localhost");
    let out = h.iq_id("result", &inv.id.clone(), CAROL, &inv.from.clone(), "");
    assert_eq!(reports(&out)[0].2, vec![pair("reject", CAROL)]);
}

#[test]
fn only_the_first_acknowledge_counts() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    let inv = h.invite(&a, "slave", "bob@localhost");
    let b = h.accept(&inv, BOB);
    assert!(h.answer(&inv, BOB, "drop").is_empty());
    assert!(h.answer(&inv, BOB, "connect").is_empty());
    let who = h.who(&a);
    assert_eq!(who.len(), 2);
    assert_eq!(who[1].jid, b.jid);

    let inv = h.invite(&a, "slave", "carol@localhost");
    let out = h.answer(&inv, CAROL, "drop");
    assert_eq!(reports(&out).len(), 1);
    assert!(h.answer(&inv, CAROL, "connect").is_empty());
    assert_eq!(h.who(&a).len(), 2);
}

#[test]
fn an_acknowledge_from_another_account_is_not_accepted() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    let inv = h.invite(&a, "slave", "bob@localhost");
    assert!(h.answer(&inv, MALLORY, "connect").is_empty());
    let r = h.ask("set", MALLORY, &inv.from, &ack("connect"));
    assert_eq!(code(&r), Some(404));
    // The invitation still stands for its invitee, from any resource of the account.
    let b = h.accept(&inv, "bob@localhost/laptop");
    assert_eq!(h.who(&a)[1].jid, b.jid);
}

#[test]
fn two_inviters_of_the_same_invitee_are_merged_and_both_get_the_report() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    let b = h.join(&a, "master", BOB);
    let first = h.invite(&a, "slave", "carol@localhost");
    h.advance(5_000);
    let second = h.invite(&b, "slave", "carol@localhost");
    assert_eq!(
        second.from, first.from,
        "one invitation resource per invitee"
    );
    assert_ne!(second.id, first.id);
    let i = Invitation::try_from(second.payload.as_ref().unwrap()).unwrap();
    assert_eq!(i.inviters, vec![ALICE.to_string(), BOB.to_string()]);
    assert_eq!(
        i.expire,
        EXPIRE_DEFAULT - 5_000,
        "the re-sent invitation advertises what is left of the first deadline"
    );
    assert_eq!(h.who(&a).len(), 3, "still one seat for carol");

    let out = h.answer(&first, CAROL, "drop");
    let mut got = reports(&out);
    got.sort();
    let mut want = vec![
        (
            a.dsps.clone(),
            ALICE.to_string(),
            vec![pair("reject", CAROL)],
        ),
        (b.dsps.clone(), BOB.to_string(), vec![pair("reject", CAROL)]),
    ];
    want.sort();
    assert_eq!(got, want);
    // Answering the other copy changes nothing.
    assert!(h.answer(&second, CAROL, "connect").is_empty());
}

#[test]
fn inviting_an_existing_member_is_answered_and_ignored() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    let _b = h.join(&a, "slave", BOB);
    let out = h.admin(&a, "", &format!("<peer type='master'>{BOB}</peer>"));
    let r = one_iq(&out);
    assert_eq!(r.kind, IqKind::Result);
    assert_eq!(h.who(&a)[1].role, Role::Slave);
}

#[test]
fn admin_with_an_invalid_jid_or_peer_type_is_bad_request() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    let out = h.admin(&a, "", "<peer type='slave'>@@bad/</peer>");
    assert_eq!(code(&one_iq(&out)), Some(400));
    let out = h.admin(&a, "", "<peer type='boss'>bob@localhost</peer>");
    assert_eq!(code(&one_iq(&out)), Some(400));
    assert_eq!(h.who(&a).len(), 1);
}

#[test]
fn admin_as_get_is_bad_request() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    let r = h.ask(
        "get",
        ALICE,
        &a.dsps,
        &dsps("admin", "", "<peer type='slave'>bob@localhost</peer>"),
    );
    assert_eq!(code(&r), Some(400));
    assert_eq!(h.who(&a).len(), 1);
}

// ---- handshake --------------------------------------------------------------------

#[test]
fn hello_for_an_unknown_pair_is_closed() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    for dsps in [
        format!("{DOMAIN}/0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33"),
        format!("other.localhost/{}", resource_of(&a.dsps)),
    ] {
        let out = h.hello(7, ALICE, &dsps);
        assert_eq!(closes(&out), vec![7]);
        assert_eq!(out.len(), 1);
    }
    assert_eq!(h.reg.held().1, 0);
}

#[test]
fn hello_with_the_wrong_client_jid_is_closed() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    for client in [MALLORY, "alice@localhost/other"] {
        let out = h.hello(7, client, &a.dsps);
        assert_eq!(closes(&out), vec![7]);
        assert_eq!(out.len(), 1);
    }
    assert_eq!(h.reg.held().1, 0);
}

#[test]
fn hello_for_an_invitation_resource_is_closed() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    let inv = h.invite(&a, "slave", BOB);
    let out = h.hello(7, BOB, &inv.from);
    assert_eq!(closes(&out), vec![7]);
}

#[test]
fn correct_hello_gets_a_key1_line_of_at_least_32_alphanumerics() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    let out = h.hello(7, ALICE, &a.dsps);
    let [Action::RelayWrite { conn: 7, line }] = out.as_slice() else {
        panic!("{out:?}")
    };
    let key = line.strip_suffix('\n').expect("ends in newline");
    assert!(key.len() >= 32, "{key}");
    assert!(key.chars().all(|c| c.is_ascii_alphanumeric()), "{key}");
    // Keys are not reused across seats.
    let b = h.create(BOB);
    let (_, other) = h.key1(&b);
    assert_ne!(other, key);
}

#[test]
fn auth_with_the_right_key_returns_key2_from_the_peer_resource() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    let (_, key1) = h.key1(&a);
    let r = one_iq(&h.auth(&a, &key1));
    assert_eq!(r.kind, IqKind::Result);
    assert_eq!((r.from.as_str(), r.to.as_str()), (a.dsps.as_str(), ALICE));
    let key2 = query::auth_key(r.payload.as_ref().unwrap()).unwrap();
    assert!(key2.len() >= 32 && key2.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_ne!(key2, key1);
}

#[test]
fn auth_with_a_wrong_key_is_401_closes_and_the_seat_resumes_waiting() {
    let mut h = Harness::new();
    let mut a = h.create(ALICE);
    let (conn, key1) = h.key1(&a);
    let out = h.auth(&a, "uGhhb74d21");
    assert_eq!(closes(&out), vec![conn]);
    let errs = iqs(&out);
    assert_eq!(errs.len(), 1);
    assert_eq!(code(&errs[0]), Some(401));
    assert_eq!(errs[0].from, a.dsps);
    // The old key is dead with its connection.
    assert_eq!(code(&one_iq(&h.auth(&a, &key1))), Some(401));
    assert_eq!(h.who(&a)[0].status, "wait");
    // A new hello works.
    h.handshake(&mut a);
    assert_eq!(h.who(&a)[0].status, "connect");
}

#[test]
fn auth_without_a_pending_hello_is_401() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    assert_eq!(code(&one_iq(&h.auth(&a, "uGhhb74d21"))), Some(401));
}

#[test]
fn auth_as_set_is_bad_request() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    let (_, key1) = h.key1(&a);
    let r = h.ask("set", ALICE, &a.dsps, &dsps("auth", "", &key1));
    assert_eq!(code(&r), Some(400));
}

#[test]
fn a_wrong_key2_line_closes_and_the_seat_resumes_waiting() {
    let mut h = Harness::new();
    let mut a = h.create(ALICE);
    let (conn, key2) = h.key2(&a);
    let out = h.feed(Input::RelayKey {
        conn,
        key: "qgqB42Ij784".into(),
    });
    assert_eq!(closes(&out), vec![conn]);
    assert_eq!(out.len(), 1);
    // KEY2 was single-use: the right key on the dead connection is refused too.
    let out = h.feed(Input::RelayKey { conn, key: key2 });
    assert_eq!(closes(&out), vec![conn]);
    assert_eq!(h.who(&a)[0].status, "wait");
    h.handshake(&mut a);
    assert_eq!(h.who(&a)[0].status, "connect");
}

#[test]
fn a_key_line_before_auth_closes_the_connection() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    let (conn, key1) = h.key1(&a);
    let out = h.feed(Input::RelayKey { conn, key: key1 });
    assert_eq!(closes(&out), vec![conn]);
    assert_eq!(h.reg.held().1, 0);
}

#[test]
fn the_right_key2_attaches_with_peer_id_and_role() {
    let mut h = Harness::new();
    let mut a = h.create(ALICE);
    let mut b = h.join(&a, "slave", BOB);
    let out = h.handshake(&mut a);
    let [(conn, at)] = attaches(&out).try_into().unwrap();
    assert_eq!(conn, a.conn());
    assert_eq!((at.peer_id.as_str(), at.role), ("0", Role::Master));
    let out = h.handshake(&mut b);
    let [(conn, bt)] = attaches(&out).try_into().unwrap();
    assert_eq!(conn, b.conn());
    assert_eq!((bt.peer_id.as_str(), bt.role), ("1", Role::Slave));
    assert_eq!(at.stream, bt.stream);
}

#[test]
fn a_second_hello_while_connected_is_closed() {
    let mut h = Harness::new();
    let mut a = h.create(ALICE);
    h.handshake(&mut a);
    let out = h.hello(999, ALICE, &a.dsps.clone());
    assert_eq!(closes(&out), vec![999]);
    assert_eq!(close_reasons(&out), vec!["pair already connected"]);
    // The connected one is untouched.
    assert_eq!(h.who(&a)[0].status, "connect");
    assert_eq!(h.reg.held().1, 1);
}

#[test]
fn a_newer_hello_replaces_a_pending_handshake() {
    let mut h = Harness::new();
    let mut a = h.create(ALICE);
    let (old, old_key) = h.key1(&a);
    let new = h.new_conn();
    let out = h.hello(new, ALICE, &a.dsps.clone());
    assert_eq!(closes(&out), vec![old]);
    assert!(matches!(out[1], Action::RelayWrite { conn, .. } if conn == new));
    // An auth iq cannot say which socket it is for: a stale key fails the pending
    // attempt like any wrong key, and the seat waits for a fresh one.
    let out = h.auth(&a, &old_key);
    assert_eq!(closes(&out), vec![new]);
    assert_eq!(code(&iqs(&out)[0]), Some(401));
    h.handshake(&mut a);
    assert_eq!(h.reg.held().1, 1);
}

#[test]
fn a_connection_closed_mid_handshake_leaves_the_seat_waiting() {
    let mut h = Harness::new();
    let mut a = h.create(ALICE);
    let (conn, key1) = h.key1(&a);
    assert!(h.close(conn).is_empty());
    assert_eq!(code(&one_iq(&h.auth(&a, &key1))), Some(401));
    h.handshake(&mut a);
    assert_eq!(h.who(&a)[0].status, "connect");
}

// ---- presence ---------------------------------------------------------------------

#[test]
fn a_master_connecting_notifies_every_other_accepted_member_from_their_own_resource() {
    let mut h = Harness::new();
    let mut a = h.create(ALICE);
    let b = h.join(&a, "master", BOB);
    let c = h.join(&a, "slave", CAROL);
    let _invited = h.invite(&a, "slave", DAVE);
    let out = h.handshake(&mut a);
    assert_eq!(
        presences(&out),
        vec![
            presence(&b, &b, "connect", ALICE),
            presence(&c, &c, "connect", ALICE),
        ]
    );
    assert_eq!(out.len(), 3, "attach and two pushes: {out:?}");
}

#[test]
fn a_slave_connecting_notifies_only_the_masters() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    let b = h.join(&a, "master", BOB);
    let mut c = h.join(&a, "slave", CAROL);
    let _d = h.join(&a, "slave", DAVE);
    let out = h.handshake(&mut c);
    assert_eq!(
        presences(&out),
        vec![
            presence(&a, &a, "connect", CAROL),
            presence(&b, &b, "connect", CAROL),
        ]
    );
}

// ---- who and stats ----------------------------------------------------------------

#[test]
fn who_from_a_master_lists_every_seat_with_its_status() {
    let mut h = Harness::new();
    let mut a = h.create(ALICE);
    let _b = h.join(&a, "master", BOB);
    let mut c = h.join(&a, "slave", CAROL);
    let _ = h.invite(&a, "slave", "dave@localhost");
    h.handshake(&mut a);
    h.handshake(&mut c);
    let r = h.ask_own(&a, "get", "who");
    assert_eq!((r.from.as_str(), r.to.as_str()), (a.dsps.as_str(), ALICE));
    let got: Vec<_> = WhoResult::try_from(r.payload.as_ref().unwrap())
        .unwrap()
        .peers
        .into_iter()
        .map(|p| (p.role, p.id, p.status, p.throughput, p.jid))
        .collect();
    let z = || "0B/0B/0B/0B/0B".to_string();
    assert_eq!(
        got,
        vec![
            (
                Role::Master,
                "0".into(),
                "connect".into(),
                z(),
                ALICE.into()
            ),
            (Role::Master, "1".into(), "wait".into(), z(), BOB.into()),
            (Role::Slave, "2".into(), "connect".into(), z(), CAROL.into()),
            (
                Role::Slave,
                "3".into(),
                "expire".into(),
                z(),
                "dave@localhost".into()
            ),
        ]
    );
}

#[test]
fn who_from_a_slave_lists_only_the_masters() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    let _b = h.join(&a, "master", BOB);
    let c = h.join(&a, "slave", CAROL);
    let _d = h.join(&a, "slave", DAVE);
    let jids: Vec<_> = h.who(&c).into_iter().map(|p| p.jid).collect();
    assert_eq!(jids, vec![ALICE.to_string(), BOB.to_string()]);
}

#[test]
fn who_throughput_has_five_fields_of_received_plus_sent() {
    let mut h = Harness::new();
    let mut a = h.create(ALICE);
    let out = h.handshake(&mut a);
    let (_, at) = attaches(&out).pop().unwrap();
    {
        // 16 seconds of 1 KiB received, then one second of 1 KiB received plus
        // 5 KiB sent: the newest second shows 6 KiB, older windows less.
        let mut t = at.traffic.lock().unwrap();
        let base = h.base;
        for sec in 0..16 {
            t.rx.record(1024, base + Duration::from_secs(sec));
        }
        t.rx.record(1024, base + Duration::from_secs(16));
        t.tx.record(5 * 1024, base + Duration::from_secs(16));
    }
    h.elapsed = Duration::from_secs(17);
    let who = h.who(&a);
    // tx has one second (5 KiB); rx has 1 KiB every second.
    assert_eq!(who[0].throughput, "6KB/6KB/6KB/6KB/6KB");
}

#[test]
fn stats_on_a_stream_resource_reports_every_attribute_and_the_create_comments() {
    let mut h = Harness::new();
    h.elapsed = Duration::from_secs(42);
    let (a, _) = h.create_with(
        ALICE,
        "minthroughput='1.5KB'",
        "<comment>some server comment</comment>",
    );
    let _b = h.join(&a, "slave", BOB);
    let r = h.ask_own(&a, "get", "stats");
    assert_eq!(r.kind, IqKind::Result);
    assert_eq!((r.from.as_str(), r.to.as_str()), (a.dsps.as_str(), ALICE));
    let q = r.payload.as_ref().unwrap();
    let init = (UNIX0 + 42).to_string();
    for (k, v) in [
        ("init", init.as_str()),
        ("protocol", "0.5"),
        ("port", "5290"),
        ("minthroughput", "1.5KB"),
        ("expiredefault", "20000"),
        ("waitdefault", "10000"),
        ("wait", "10000"),
        ("public", "0"),
        ("maxpublic", "0"),
        ("mastercount", "1"),
        ("slavecount", "1"),
        ("relaycount", "0"),
    ] {
        assert_eq!(get_attr(q, k), Some(v), "attribute {k}");
    }
    let s = StatsResult::try_from(q).unwrap();
    assert_eq!(s.features.len(), 1);
    assert!(s.peers.is_empty(), "no public JIDs on a stream resource");
    assert_eq!(s.comments.len(), 1);
    assert_eq!(s.comments[0].text(), "some server comment");
}

#[test]
fn stats_wait_is_the_asking_peers_own_wait() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    let out = h.admin(
        &a,
        "wait='3000'",
        &format!("<peer type='slave'>{BOB}</peer>"),
    );
    let inv = of_type(&out, "acknowledge").pop().unwrap();
    let b = h.accept(&inv, BOB);
    let s = h.ask_own(&b, "get", "stats");
    assert_eq!(get_attr(s.payload.as_ref().unwrap(), "wait"), Some("3000"));
    let s = h.ask_own(&a, "get", "stats");
    assert_eq!(get_attr(s.payload.as_ref().unwrap(), "wait"), Some("10000"));
}

// ---- admin rights and drops -------------------------------------------------------

#[test]
fn a_slave_admin_touching_anyone_but_itself_is_forbidden_and_changes_nothing() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    let b = h.join(&a, "slave", BOB);
    for body in [
        format!("<peer type='slave'>{CAROL}</peer>"),
        format!("<peer type='drop'>{ALICE}</peer>"),
        format!("<peer type='drop'>{BOB}</peer><peer type='drop'>{ALICE}</peer>"),
        format!("<peer type='drop'>{BOB}</peer><peer type='master'>{CAROL}</peer>"),
    ] {
        let out = h.admin(&b, "", &body);
        let r = one_iq(&out);
        assert_eq!(code(&r), Some(403), "{body}");
        assert_eq!(r.from, b.dsps);
    }
    assert_eq!(h.who(&a).len(), 2);
    assert_eq!(h.reg.held().2, 0, "no invitation was sent");
}

#[test]
fn a_slave_can_drop_itself() {
    let mut h = Harness::new();
    let mut a = h.create(ALICE);
    let mut b = h.join(&a, "slave", BOB);
    let c = h.join(&a, "slave", CAROL);
    h.handshake(&mut a);
    h.handshake(&mut b);
    let out = h.admin(&b, "", &format!("<peer type='drop'>{BOB}</peer>"));
    // Its own drop: what bob already sent is still forwarded, then his socket closes.
    assert!(closes(&out).is_empty());
    assert_eq!(finishes(&out), vec![b.conn()]);
    let r = &iqs(&out)[0];
    assert_eq!((r.kind, r.to.as_str()), (IqKind::Result, BOB));
    assert_eq!(presences(&out), vec![presence(&a, &a, "drop", BOB)]);
    let notice = of_type(&out, "acknowledge");
    assert_eq!(notice.len(), 1);
    assert_eq!(
        (notice[0].from.as_str(), notice[0].to.as_str()),
        (b.dsps.as_str(), BOB)
    );
    let jids: Vec<_> = h.who(&a).into_iter().map(|p| p.jid).collect();
    assert_eq!(jids, vec![ALICE.to_string(), c.jid]);
}

#[test]
fn dropping_a_connected_peer_closes_it_tells_it_and_the_others_and_forgets_it() {
    let mut h = Harness::new();
    let mut a = h.create(ALICE);
    let mut b = h.join(&a, "master", BOB);
    let mut c = h.join(&a, "slave", CAROL);
    let mut d = h.join(&a, "slave", DAVE);
    for p in [&mut a, &mut b, &mut c, &mut d] {
        h.handshake(p);
    }
    let out = h.admin(
        &a,
        "",
        &format!("<comment>bye</comment><peer type='drop'>{CAROL}</peer>"),
    );
    assert_eq!(closes(&out), vec![c.conn()]);
    assert_eq!(reports(&out), vec![(a.dsps.clone(), ALICE.into(), vec![])]);
    // Carol is told, from her own peer resource, with the admin comments.
    let notice = of_type(&out, "acknowledge");
    assert_eq!(notice.len(), 1);
    assert_eq!(notice[0].kind, IqKind::Set);
    assert_eq!(
        (notice[0].from.as_str(), notice[0].to.as_str()),
        (c.dsps.as_str(), CAROL)
    );
    let n = notice[0].payload.as_ref().unwrap();
    assert_eq!(get_attr(n, "status"), Some("drop"));
    let comments: Vec<_> = n.children().filter(|e| e.name() == "comment").collect();
    assert_eq!(comments.len(), 1);
    assert_eq!(comments[0].text(), "bye");
    // A slave's drop is seen by the masters only.
    assert_eq!(
        presences(&out),
        vec![
            presence(&a, &a, "drop", CAROL),
            presence(&b, &b, "drop", CAROL),
        ]
    );
    // The seat is forgotten: its resource is unknown and its close is a no-op.
    let r = h.ask("get", CAROL, &c.dsps, &dsps("who", "", ""));
    assert_eq!(code(&r), Some(404));
    assert!(h.close(c.conn()).is_empty());
    assert_eq!(h.who(&a).len(), 3);
}

#[test]
fn dropping_a_master_notifies_every_other_member() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    let b = h.join(&a, "master", BOB);
    let c = h.join(&a, "slave", CAROL);
    let out = h.admin(&a, "", &format!("<peer type='drop'>{BOB}</peer>"));
    assert_eq!(
        presences(&out),
        vec![presence(&a, &a, "drop", BOB), presence(&c, &c, "drop", BOB),]
    );
    assert!(closes(&out).is_empty(), "bob never connected");
    assert_eq!(of_type(&out, "acknowledge")[0].from, b.dsps);
}

#[test]
fn a_drop_naming_nobody_reports_missing() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    let out = h.admin(
        &a,
        "",
        "<peer type='drop'>who@knows.org/winjab</peer><peer type='drop'>nobody@localhost</peer>",
    );
    let r = one_iq(&out);
    assert_eq!(r.kind, IqKind::Result);
    assert_eq!(
        AdminReport::try_from(r.payload.as_ref().unwrap())
            .unwrap()
            .peers,
        vec![
            pair("missing", "who@knows.org/winjab"),
            pair("missing", "nobody@localhost")
        ]
    );
}

#[test]
fn a_drop_by_bare_jid_drops_every_seat_of_that_account() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    let _b1 = h.join(&a, "slave", BOB);
    let _b2 = h.join(&a, "slave", "bob@localhost/phone");
    let out = h.admin(&a, "", "<peer type='drop'>bob@localhost</peer>");
    assert_eq!(of_type(&out, "acknowledge").len(), 2);
    assert_eq!(h.who(&a).len(), 1);
}

#[test]
fn dropping_an_invited_peer_forgets_the_invitation_quietly() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    let inv = h.invite(&a, "slave", "bob@localhost");
    let out = h.admin(&a, "", "<peer type='drop'>bob@localhost</peer>");
    assert_eq!(one_iq(&out).kind, IqKind::Result);
    assert!(h.answer(&inv, BOB, "connect").is_empty());
    assert_eq!(h.who(&a).len(), 1);
    assert_eq!(
        h.reg.held(),
        (1, 0, 0, 1),
        "only alice's resource and wait timer"
    );
}

// ---- disconnection ----------------------------------------------------------------

#[test]
fn an_attached_peer_closing_goes_waiting_and_the_others_are_told() {
    let mut h = Harness::new();
    let mut a = h.create(ALICE);
    let b = h.join(&a, "master", BOB);
    let mut c = h.join(&a, "slave", CAROL);
    let d = h.join(&a, "slave", DAVE);
    h.handshake(&mut a);
    h.handshake(&mut c);
    let out = h.close(c.conn());
    assert_eq!(
        presences(&out),
        vec![
            presence(&a, &a, "waiting", CAROL),
            presence(&b, &b, "waiting", CAROL),
        ]
    );
    assert_eq!(h.who(&a)[2].status, "wait");
    let out = h.close(a.conn());
    assert_eq!(
        presences(&out),
        vec![
            presence(&b, &b, "waiting", ALICE),
            presence(&c, &c, "waiting", ALICE),
            presence(&d, &d, "waiting", ALICE),
        ]
    );
}

#[test]
fn a_disconnected_peer_reconnects_with_a_fresh_handshake_before_wait_ends() {
    let mut h = Harness::new();
    let mut a = h.create(ALICE);
    let mut b = h.join(&a, "master", BOB);
    h.handshake(&mut a);
    h.handshake(&mut b);
    let old = a.conn();
    assert_eq!(
        presences(&h.close(old)),
        vec![presence(&b, &b, "waiting", ALICE)]
    );
    assert!(h.advance(WAIT_DEFAULT - 1).is_empty());
    let out = h.handshake(&mut a);
    assert_ne!(a.conn(), old);
    assert_eq!(presences(&out), vec![presence(&b, &b, "connect", ALICE)]);
    // The reconnection cancelled the wait.
    assert!(h.advance(WAIT_DEFAULT * 10).is_empty());
    assert_eq!(h.who(&a)[0].status, "connect");
}

#[test]
fn wait_running_out_after_a_disconnection_drops_the_peer() {
    let mut h = Harness::new();
    let mut a = h.create(ALICE);
    let mut b = h.join(&a, "slave", BOB);
    h.handshake(&mut a);
    h.handshake(&mut b);
    h.advance(WAIT_DEFAULT * 3);
    h.close(b.conn());
    assert!(h.advance(WAIT_DEFAULT - 1).is_empty());
    let out = h.advance(1);
    assert_eq!(presences(&out), vec![presence(&a, &a, "drop", BOB)]);
    let notice = of_type(&out, "acknowledge");
    assert_eq!(
        (notice[0].from.as_str(), notice[0].to.as_str()),
        (b.dsps.as_str(), BOB)
    );
    assert!(reports(&out).is_empty(), "a drop, not a timeout report");
    assert_eq!(h.who(&a).len(), 1);
    let out = h.hello(5, BOB, &b.dsps);
    assert_eq!(closes(&out), vec![5]);
}

// ---- timers -----------------------------------------------------------------------

#[test]
fn an_expired_invitation_is_reported_to_the_inviter_and_forgotten() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    let out = h.admin(
        &a,
        "expire='5000'",
        "<peer type='slave'>bob@localhost</peer>",
    );
    let inv = of_type(&out, "acknowledge").pop().unwrap();
    assert!(h.advance(4999).is_empty());
    let out = h.advance(1);
    let r = one_iq(&out);
    assert_eq!(r.kind, IqKind::Set);
    assert_eq!(
        reports(&out),
        vec![(
            a.dsps.clone(),
            ALICE.into(),
            vec![pair("expire", "bob@localhost")]
        )]
    );
    assert!(h.answer(&inv, BOB, "connect").is_empty(), "too late");
    let r = h.ask("set", BOB, &inv.from, &ack("connect"));
    assert_eq!(code(&r), Some(404));
    assert_eq!(h.who(&a).len(), 1);
}

#[test]
fn an_accepted_seat_never_connected_within_wait_is_reported_as_timeout() {
    let mut h = Harness::new();
    let mut a = h.create(ALICE);
    h.handshake(&mut a);
    let out = h.admin(&a, "wait='3000'", "<peer type='slave'>bob@localhost</peer>");
    let inv = of_type(&out, "acknowledge").pop().unwrap();
    let b = h.accept(&inv, BOB);
    assert!(h.advance(2999).is_empty());
    let out = h.advance(1);
    // XEP: for "timeout" the JID is the one from the invite request.
    assert_eq!(
        reports(&out),
        vec![(
            a.dsps.clone(),
            ALICE.into(),
            vec![pair("timeout", "bob@localhost")]
        )]
    );
    assert_eq!(out.len(), 1, "no presence: nobody saw bob connect");
    assert_eq!(code(&h.ask_own(&b, "get", "who")), Some(404));
}

#[test]
fn a_pending_handshake_is_closed_when_wait_runs_out() {
    let mut h = Harness::new();
    let mut a = h.create(ALICE);
    h.handshake(&mut a);
    let b = h.join(&a, "slave", BOB);
    let (conn, _) = h.key1(&b);
    let out = h.advance(WAIT_DEFAULT);
    assert_eq!(closes(&out), vec![conn]);
    assert_eq!(reports(&out)[0].2, vec![pair("timeout", BOB)]);
}

#[test]
fn a_creator_never_connecting_within_wait_ends_the_stream() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    let _inv = h.invite(&a, "slave", "bob@localhost");
    let out = h.advance(WAIT_DEFAULT);
    assert_eq!(gone(&out).len(), 1);
    assert_eq!(h.reg.stream_count(), 0);
    assert_eq!(h.reg.held(), (0, 0, 0, 0));
}

#[test]
fn zero_defaults_mean_no_time_limit_and_no_timer() {
    let mut h = Harness::with(Settings {
        wait_default_ms: 0,
        expire_default_ms: 0,
        ..settings()
    });
    let (mut a, r) = h.create_with(ALICE, "", "");
    assert_eq!(get_attr(r.payload.as_ref().unwrap(), "wait"), Some("0"));
    let inv = h.invite(&a, "slave", "bob@localhost");
    let i = Invitation::try_from(inv.payload.as_ref().unwrap()).unwrap();
    assert_eq!(i.expire, 0);
    let _c = h.invite(&a, "slave", "carol@localhost");
    let push = one_iq(&h.answer(&inv, BOB, "connect"));
    assert_eq!(get_attr(push.payload.as_ref().unwrap(), "wait"), Some("0"));
    h.handshake(&mut a);
    h.close(a.conn());
    assert_eq!(h.reg.held().3, 0);
    assert_eq!(h.reg.next_deadline(), None);
    assert!(h.advance(365 * 24 * 3600 * 1000).is_empty());
    assert_eq!(h.who(&a).len(), 3);
}

#[test]
fn a_requested_time_applies_even_when_the_default_is_unlimited() {
    let mut h = Harness::with(Settings {
        wait_default_ms: 0,
        expire_default_ms: 0,
        ..settings()
    });
    let a = h.create(ALICE);
    let out = h.admin(
        &a,
        "expire='700'",
        "<peer type='slave'>bob@localhost</peer>",
    );
    let inv = of_type(&out, "acknowledge").pop().unwrap();
    assert_eq!(
        Invitation::try_from(inv.payload.as_ref().unwrap())
            .unwrap()
            .expire,
        700
    );
    assert_eq!(
        reports(&h.advance(700))[0].2,
        vec![pair("expire", "bob@localhost")]
    );
}

#[test]
fn admin_expire_and_wait_apply_to_that_block_only() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    let out = h.admin(
        &a,
        "expire='1000' wait='2000'",
        "<peer type='slave'>bob@localhost</peer><peer type='slave'>carol@localhost</peer>",
    );
    let invs = of_type(&out, "acknowledge");
    let later = h.invite(&a, "slave", "dave@localhost");
    let expire = |i: &Iq| {
        Invitation::try_from(i.payload.as_ref().unwrap())
            .unwrap()
            .expire
    };
    assert_eq!((expire(&invs[0]), expire(&invs[1])), (1000, 1000));
    assert_eq!(expire(&later), EXPIRE_DEFAULT);
    let wait = |h: &mut Harness, i: &Iq, jid: &str| {
        let push = one_iq(&h.answer(i, jid, "connect"));
        CreateResult::try_from(push.payload.as_ref().unwrap())
            .unwrap()
            .wait
    };
    assert_eq!(wait(&mut h, &invs[0], BOB), 2000);
    assert_eq!(wait(&mut h, &later, DAVE), WAIT_DEFAULT);
    // Carol's invitation ran on the block's expire.
    let out = h.advance(1000);
    assert_eq!(reports(&out)[0].2, vec![pair("expire", "carol@localhost")]);
}

#[test]
fn next_deadline_is_the_earliest_pending_one() {
    let mut h = Harness::new();
    assert_eq!(h.reg.next_deadline(), None);
    let a = h.create(ALICE);
    assert_eq!(
        h.reg.next_deadline(),
        Some(h.base + Duration::from_millis(WAIT_DEFAULT))
    );
    h.admin(
        &a,
        "expire='500'",
        "<peer type='slave'>bob@localhost</peer>",
    );
    assert_eq!(
        h.reg.next_deadline(),
        Some(h.base + Duration::from_millis(500))
    );
}

// ---- stream shutdown --------------------------------------------------------------

#[test]
fn the_last_master_leaving_drains_connected_slaves_drops_everyone_and_forgets_the_stream() {
    let mut h = Harness::new();
    let mut a = h.create(ALICE);
    let mut b = h.join(&a, "slave", BOB);
    let c = h.join(&a, "slave", CAROL);
    let mut d = h.join(&a, "slave", DAVE);
    let _invited = h.invite(&a, "slave", "erin@localhost");
    h.handshake(&mut a);
    h.handshake(&mut b);
    let (d_conn, _) = h.key1(&d);
    d.conn = Some(d_conn);
    let stream = h.reg.conns[&a.conn()].stream;

    let out = h.admin(&a, "", &format!("<peer type='drop'>{ALICE}</peer>"));
    assert_eq!(finishes(&out), vec![a.conn()]);
    assert_eq!(closes(&out), vec![d_conn]);
    assert_eq!(drains(&out), vec![b.conn()]);
    // The drained slave's drop notice travels with the drain, to follow the data.
    let drained_notice = out.iter().find_map(|a| match a {
        Action::RelayDrain {
            notice: Some(notice),
            ..
        } => Some(Iq::parse(notice).unwrap()),
        _ => None,
    });
    assert_eq!(drained_notice.map(|i| i.to), Some(b.jid.clone()));
    assert_eq!(gone(&out), vec![stream]);
    // The drain comes before the stream is released.
    let pos = |f: &dyn Fn(&Action) -> bool| out.iter().position(f).unwrap();
    assert!(
        pos(&|a| matches!(a, Action::RelayDrain { .. }))
            < pos(&|a| matches!(a, Action::StreamGone { .. }))
    );
    // Everyone with a seat hears of the master's drop, then gets its own drop notice.
    assert_eq!(
        presences(&out),
        vec![
            presence(&b, &b, "drop", ALICE),
            presence(&c, &c, "drop", ALICE),
            presence(&d, &d, "drop", ALICE),
        ]
    );
    let mut notices: Vec<_> = of_type(&out, "acknowledge")
        .into_iter()
        .map(|i| (i.from, i.to))
        .collect();
    notices.sort();
    let mut want: Vec<_> = [&a, &b, &c, &d]
        .iter()
        .map(|p| (p.dsps.clone(), p.jid.clone()))
        .collect();
    want.sort();
    assert_eq!(notices, want);
    assert_eq!(h.reg.stream_count(), 0);
    assert_eq!(h.reg.held(), (0, 0, 0, 0));
    // Late events about the stream find nothing.
    assert!(h.close(b.conn()).is_empty());
    assert!(h.advance(EXPIRE_DEFAULT * 2).is_empty());
}

#[test]
fn service_shutdown_drains_every_stream_and_refuses_new_streams_and_handshakes() {
    let mut h = Harness::new();
    let mut a = h.create(ALICE);
    let mut b = h.join(&a, "slave", BOB);
    let c = h.join(&a, "slave", CAROL);
    let d = h.join(&a, "slave", DAVE);
    let mut e = h.create(ERIN);
    h.handshake(&mut a);
    h.handshake(&mut b);
    h.handshake(&mut e);
    let (d_conn, _) = h.key1(&d);

    let out = h.feed(Input::Shutdown);
    let mut drained = drains(&out);
    drained.sort();
    let mut want = vec![a.conn(), b.conn(), e.conn()];
    want.sort();
    assert_eq!(
        drained, want,
        "every connected peer, masters too, is drained"
    );
    assert_eq!(closes(&out), vec![d_conn], "a handshake in progress is cut");
    assert_eq!(gone(&out).len(), 2);
    // Everyone with a peer resource gets a drop notice: the drained ones after their
    // data (carried by the drain), the others at once.
    let mut notified: Vec<_> = of_type(&out, "acknowledge")
        .into_iter()
        .map(|i| i.to)
        .collect();
    notified.sort();
    let mut want: Vec<_> = [&a, &b, &c, &d, &e].iter().map(|p| p.jid.clone()).collect();
    want.sort();
    assert_eq!(notified, want);
    assert_eq!(h.reg.stream_count(), 0);
    assert_eq!(h.reg.held(), (0, 0, 0, 0));

    let r = h.ask("get", MALLORY, DOMAIN, &dsps("create", "", ""));
    assert_eq!(code(&r), Some(503), "no new streams while draining");
    let conn = h.new_conn();
    let out = h.hello(conn, ALICE, &a.dsps);
    assert_eq!(closes(&out), vec![conn], "no new handshakes while draining");
}

#[test]
fn the_stream_lives_on_while_another_master_remains() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    let b = h.join(&a, "master", BOB);
    let out = h.admin(&a, "", &format!("<peer type='drop'>{ALICE}</peer>"));
    assert!(gone(&out).is_empty());
    assert_eq!(h.reg.stream_count(), 1);
    assert_eq!(h.who(&b).len(), 1);
}

/// Alice, a connected slave Carol, and Bob invited as master; Alice then leaves.
fn stream_left_to_an_invited_master(h: &mut Harness) -> (Peer, Iq) {
    let mut a = h.create(ALICE);
    let mut c = h.join(&a, "slave", CAROL);
    h.handshake(&mut a);
    h.handshake(&mut c);
    let inv = h.invite(&a, "master", "bob@localhost");
    let out = h.admin(&a, "", &format!("<peer type='drop'>{ALICE}</peer>"));
    assert!(gone(&out).is_empty(), "an invited master is registered");
    assert_eq!(presences(&out), vec![presence(&c, &c, "drop", ALICE)]);
    (c, inv)
}

#[test]
fn an_invited_master_who_accepts_takes_over_the_stream() {
    let mut h = Harness::new();
    let (c, inv) = stream_left_to_an_invited_master(&mut h);
    let mut b = h.accept(&inv, BOB);
    let out = h.handshake(&mut b);
    assert_eq!(presences(&out), vec![presence(&c, &c, "connect", BOB)]);
    assert_eq!(h.reg.stream_count(), 1);
}

#[test]
fn the_stream_ends_when_the_last_master_invitation_expires() {
    let mut h = Harness::new();
    let (c, _inv) = stream_left_to_an_invited_master(&mut h);
    let out = h.advance(EXPIRE_DEFAULT);
    assert_eq!(drains(&out), vec![c.conn()]);
    assert_eq!(gone(&out).len(), 1);
    assert_eq!(of_type(&out, "acknowledge")[0].to, CAROL);
    assert_eq!(h.reg.stream_count(), 0);
    assert_eq!(h.reg.held(), (0, 0, 0, 0));
}

#[test]
fn the_stream_ends_when_the_last_master_invitation_is_rejected() {
    let mut h = Harness::new();
    let (c, inv) = stream_left_to_an_invited_master(&mut h);
    let out = h.answer(&inv, BOB, "drop");
    assert_eq!(drains(&out), vec![c.conn()]);
    assert_eq!(gone(&out).len(), 1);
    assert_eq!(h.reg.held(), (0, 0, 0, 0));
}

#[test]
fn the_stream_ends_when_the_last_master_never_connects() {
    let mut h = Harness::new();
    let (c, inv) = stream_left_to_an_invited_master(&mut h);
    let _b = h.accept(&inv, BOB);
    let out = h.advance(WAIT_DEFAULT);
    assert_eq!(drains(&out), vec![c.conn()]);
    assert_eq!(gone(&out).len(), 1);
    assert_eq!(h.reg.held(), (0, 0, 0, 0));
}

#[test]
fn many_streams_coming_and_going_leak_nothing() {
    let mut h = Harness::new();
    for i in 0..24 {
        let (mut a, _) = h.create_with(ALICE, "maxpublic='2'", "");
        match i % 4 {
            0 => {
                // Everyone connects, the master drops itself.
                let mut b = h.join(&a, "slave", BOB);
                h.handshake(&mut a);
                h.handshake(&mut b);
                h.admin(&a, "", &format!("<peer type='drop'>{ALICE}</peer>"));
            }
            1 => {
                // Nobody answers or connects: invitation expires, then the creator times out.
                h.invite(&a, "slave", "bob@localhost");
                h.advance(EXPIRE_DEFAULT);
            }
            2 => {
                // A public slave in mid-handshake when the master's wait runs out.
                h.handshake(&mut a);
                let public = h
                    .reg
                    .streams
                    .values()
                    .find_map(|s| s.public_resource.clone());
                let public = format!("{DOMAIN}/{}", public.unwrap());
                let out = h.iq("set", CAROL, &public, &ack("connect"));
                let push = of_type(&out, "create").pop().unwrap();
                let c = Peer {
                    jid: CAROL.into(),
                    dsps: push.from,
                    conn: None,
                };
                let (conn, key1) = h.key1(&c);
                h.auth(&c, &key1);
                h.close(a.conn());
                let out = h.advance(WAIT_DEFAULT);
                assert!(closes(&out).contains(&conn));
                h.close(conn);
            }
            _ => {
                // Pending handshakes when the master drops itself by bare JID; the
                // invited master keeps the stream until its invitation expires.
                h.invite(&a, "master", "bob@localhost");
                let c = h.join(&a, "slave", CAROL);
                h.key1(&c);
                h.key1(&a);
                h.admin(&a, "", "<peer type='drop'>alice@localhost</peer>");
                assert_eq!(h.reg.stream_count(), 1);
                h.advance(EXPIRE_DEFAULT);
            }
        }
        assert_eq!(h.reg.stream_count(), 0, "round {i}");
        assert_eq!(h.reg.held(), (0, 0, 0, 0), "round {i}");
    }
}

// ---- public streams ---------------------------------------------------------------

/// The stats queries of a bare-JID stats result: sibling children of the iq.
fn public_listing(h: &mut Harness) -> (Iq, Vec<StatsResult>) {
    let out = h.iq("get", ERIN, DOMAIN, &dsps("stats", "", ""));
    assert_eq!(out.len(), 1, "expected exactly one stanza: {out:?}");
    let Action::Send(e) = &out[0] else {
        panic!("expected a stanza: {out:?}")
    };
    let listed = e
        .children()
        .map(|s| StatsResult::try_from(s).unwrap())
        .filter(|s| !s.peers.is_empty())
        .collect();
    (Iq::parse(e).unwrap(), listed)
}

/// Creates a stream with `maxpublic` and returns the creator and its public JID.
fn public_stream(h: &mut Harness, maxpublic: u32) -> (Peer, String) {
    let (a, r) = h.create_with(ALICE, &format!("maxpublic='{maxpublic}'"), "");
    let (_, listed) = public_listing(h);
    let jid = listed.last().unwrap().peers[0].clone();
    // The creator's result names the same public JID (our extension).
    let result = CreateResult::try_from(r.payload.as_ref().unwrap()).unwrap();
    assert_eq!(result.public.as_deref(), Some(jid.as_str()));
    (a, jid)
}

#[test]
fn only_a_public_stream_s_creator_is_told_its_public_jid() {
    let mut h = Harness::new();
    let (a, r) = h.create_with(ALICE, "", "");
    assert_eq!(
        CreateResult::try_from(r.payload.as_ref().unwrap())
            .unwrap()
            .public,
        None
    );
    let inv = h.invite(&a, "slave", BOB);
    let push = one_iq(&h.answer(&inv, BOB, "connect"));
    assert_eq!(
        CreateResult::try_from(push.payload.as_ref().unwrap())
            .unwrap()
            .public,
        None
    );
}

#[test]
fn stats_on_the_bare_jid_lists_public_streams_with_their_public_jid() {
    let mut h = Harness::new();
    let _private = h.create(BOB);
    let (_a, _) = h.create_with(
        ALICE,
        "maxpublic='20' minthroughput='1KB'",
        "<comment>public comment</comment>",
    );
    let (r, listed) = public_listing(&mut h);
    assert_eq!((r.kind, r.from.as_str()), (IqKind::Result, DOMAIN));
    assert_eq!(r.dsps_type(), Some("stats"));
    assert_eq!(listed.len(), 1, "the private stream is not listed");
    let s = &listed[0];
    assert_eq!((s.maxpublic, s.public, s.mastercount), (20, 0, 1));
    assert_eq!(s.minthroughput, "1KB");
    assert_eq!(s.comments[0].text(), "public comment");
    assert_eq!(s.peers.len(), 1);
    assert!(is_fresh_resource(&s.peers[0]));
}

#[test]
fn stats_to_the_public_jid_describes_that_stream() {
    let mut h = Harness::new();
    let (_a, public) = public_stream(&mut h, 3);
    let r = h.ask("get", ERIN, &public, &dsps("stats", "", ""));
    let s = StatsResult::try_from(r.payload.as_ref().unwrap()).unwrap();
    // <peer/> only in the bare-JID listing (XEP "Stream status listing").
    assert_eq!((s.maxpublic, s.peers.clone()), (3, vec![]));
    // The public JID is a stats and join address only.
    let r = h.ask("get", ERIN, &public, &dsps("who", "", ""));
    assert_eq!(code(&r), Some(400));
}

#[test]
fn acknowledge_connect_to_a_public_jid_gives_a_slave_seat() {
    let mut h = Harness::new();
    let (a, public) = public_stream(&mut h, 2);
    let out = h.iq("set", DAVE, &public, &ack("connect"));
    let iqs = iqs(&out);
    assert_eq!(iqs.len(), 2);
    assert_eq!(
        (iqs[0].kind, iqs[0].from.as_str()),
        (IqKind::Result, public.as_str())
    );
    assert_eq!((iqs[1].kind, iqs[1].to.as_str()), (IqKind::Set, DAVE));
    assert_eq!(iqs[1].dsps_type(), Some("create"));
    assert!(is_fresh_resource(&iqs[1].from));
    assert_ne!(iqs[1].from, public);
    let mut d = Peer {
        jid: DAVE.into(),
        dsps: iqs[1].from.clone(),
        conn: None,
    };
    let out = h.handshake(&mut d);
    assert_eq!(attaches(&out)[0].1.role, Role::Slave);
    let who = h.who(&a);
    assert_eq!((who[1].jid.as_str(), who[1].role), (DAVE, Role::Slave));
    let s = h.ask_own(&a, "get", "stats");
    let s = StatsResult::try_from(s.payload.as_ref().unwrap()).unwrap();
    assert_eq!((s.public, s.slavecount), (1, 1));
}

#[test]
fn joining_a_public_stream_as_result_like_the_xep_also_works() {
    let mut h = Harness::new();
    let (_a, public) = public_stream(&mut h, 2);
    let out = h.iq("result", DAVE, &public, &ack("connect"));
    let push = one_iq(&out);
    assert_eq!((push.kind, push.to.as_str()), (IqKind::Set, DAVE));
    assert_eq!(push.dsps_type(), Some("create"));
}

#[test]
fn joining_past_maxpublic_is_service_unavailable() {
    let mut h = Harness::new();
    let (a, public) = public_stream(&mut h, 1);
    h.iq("set", DAVE, &public, &ack("connect"));
    let r = h.ask("set", ERIN, &public, &ack("connect"));
    assert_eq!(code(&r), Some(503));
    assert!(h.iq("result", CAROL, &public, &ack("connect")).is_empty());
    assert_eq!(h.who(&a).len(), 2);
    // An invited slave does not use a public place.
    let _b = h.join(&a, "slave", BOB);
    assert_eq!(
        code(&h.ask("set", ERIN, &public, &ack("connect"))),
        Some(503)
    );
}

#[test]
fn joining_a_public_stream_twice_is_a_conflict() {
    let mut h = Harness::new();
    let (_a, public) = public_stream(&mut h, 5);
    h.iq("set", DAVE, &public, &ack("connect"));
    let r = h.ask("set", DAVE, &public, &ack("connect"));
    assert_eq!(code(&r), Some(409));
}

#[test]
fn a_rejection_to_a_public_jid_is_answered_but_ignored() {
    let mut h = Harness::new();
    let (a, public) = public_stream(&mut h, 2);
    let r = h.ask("set", DAVE, &public, &ack("drop"));
    assert_eq!((r.kind, r.payload.is_none()), (IqKind::Result, true));
    assert!(h.iq("result", DAVE, &public, &ack("drop")).is_empty());
    assert_eq!(h.who(&a).len(), 1);
}

#[test]
fn the_public_jid_is_gone_with_its_stream() {
    let mut h = Harness::new();
    let (a, public) = public_stream(&mut h, 2);
    h.admin(&a, "", &format!("<peer type='drop'>{ALICE}</peer>"));
    let r = h.ask("set", DAVE, &public, &ack("connect"));
    assert_eq!(code(&r), Some(404));
    let r = h.ask("get", ERIN, DOMAIN, &dsps("stats", "", ""));
    assert_eq!(r.payload.as_ref().unwrap().children().count(), 0);
}

// ---- limits -------------------------------------------------------------------------

fn limited(streams: usize, per_jid: usize, seats: usize) -> Harness {
    Harness::with(Settings {
        limits: crate::config::Limits {
            streams,
            streams_per_jid: per_jid,
            seats_per_stream: seats,
            ..crate::config::Limits::default()
        },
        ..settings()
    })
}

#[test]
fn one_jid_cannot_create_more_streams_than_its_limit() {
    let mut h = limited(100, 2, 10);
    h.create(ALICE);
    h.create(ALICE);
    let r = h.ask("get", ALICE, DOMAIN, &dsps("create", "", ""));
    assert_eq!((r.kind, r.error_code()), (IqKind::Error, Some(503)));
    // Someone else still can.
    h.create(BOB);
    assert_eq!(h.reg.stream_count(), 3);
}

#[test]
fn one_account_cannot_pass_its_limit_with_more_resources() {
    let mut h = Harness::with(Settings {
        limits: crate::config::Limits {
            streams_per_jid: 2,
            streams_per_account: 3,
            ..crate::config::Limits::default()
        },
        ..settings()
    });
    let bare = crate::proto::iq::bare(ALICE);
    let (one, two) = (format!("{bare}/one"), format!("{bare}/two"));
    h.create(&one);
    h.create(&one);
    h.create(&two);
    let r = h.ask("get", &two, DOMAIN, &dsps("create", "", ""));
    assert_eq!((r.kind, r.error_code()), (IqKind::Error, Some(503)));
    assert!(String::from(&r.to_element(crate::proto::xml::NS_COMPONENT)).contains("your account"));
    // Another account still can.
    h.create(BOB);
    assert_eq!(h.reg.stream_count(), 4);
}

#[test]
fn the_service_holds_at_most_its_stream_limit() {
    let mut h = limited(2, 10, 10);
    h.create(ALICE);
    h.create(BOB);
    let r = h.ask("get", CAROL, DOMAIN, &dsps("create", "", ""));
    assert_eq!(r.error_code(), Some(503));
}

#[test]
fn invitations_past_the_seat_limit_are_refused_whole() {
    let mut h = limited(10, 10, 3);
    let a = h.create(ALICE);
    h.invite(&a, "slave", BOB);
    let out = h.admin(
        &a,
        "",
        &format!("<peer type='slave'>{CAROL}</peer><peer type='slave'>{DAVE}</peer>"),
    );
    let r = one_iq(&out);
    assert_eq!(r.error_code(), Some(503), "4 seats > 3: nothing is sent");
    assert_eq!(h.who(&a).len(), 2);
    // Re-inviting a member takes no new seat.
    let out = h.admin(&a, "", &format!("<peer type='slave'>{BOB}</peer>"));
    assert_eq!(iqs(&out)[0].kind, IqKind::Result);
}
