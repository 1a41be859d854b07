//! Operators (issue 10): the registry's operator operations, disco#items on the
//! bare JID and the XEP-0050 admin commands, stanza in, actions out.

use super::*;
use crate::core::link_status::{LinkState, LinkStatus};
use crate::proto::adhoc::NS_COMMANDS;
use crate::proto::forms::NS_DATA_FORMS;
use crate::proto::xml::NS_DSPS;

const OPS: &str = "ops@localhost/gajim";
const NS_ITEMS: &str = "http://jabber.org/protocol/disco#items";

fn with_admins() -> Harness {
    Harness::with(Settings {
        admins: vec!["ops@localhost".into()],
        log_filter: Some("info".into()),
        ..settings()
    })
}

/// `<command/>` XML for `node` with extra attributes and body.
fn command(node: &str, attrs: &str, body: &str) -> String {
    format!("<command xmlns='{NS_COMMANDS}' node='{node}' {attrs}>{body}</command>")
}

fn submit(fields: &[(&str, &str)]) -> String {
    let fields: String = fields
        .iter()
        .map(|(k, v)| format!("<field var='{k}'><value>{v}</value></field>"))
        .collect();
    format!("<x xmlns='jabber:x:data' type='submit'>{fields}</x>")
}

/// Runs a command as `from`; returns the reply and every other action.
fn run(h: &mut Harness, from: &str, node: &str, attrs: &str, body: &str) -> (Iq, Vec<Action>) {
    let mut out = h.iq("set", from, DOMAIN, &command(node, attrs, body));
    assert!(!out.is_empty(), "a command is always answered");
    let Action::Send(first) = out.remove(0) else {
        panic!("the reply comes first: {out:?}");
    };
    (Iq::parse(&first).unwrap(), out)
}

/// The `<command/>` of a result.
fn cmd(iq: &Iq) -> &Element {
    assert_eq!(iq.kind, IqKind::Result, "expected a result: {iq:?}");
    let c = iq.payload.as_ref().unwrap();
    assert!(c.is("command", NS_COMMANDS), "{c:?}");
    c
}

/// The stanza condition and the XEP-0050 condition of an error.
fn conditions(iq: &Iq) -> (String, Option<String>, Option<String>) {
    assert_eq!(iq.kind, IqKind::Error, "expected an error: {iq:?}");
    let e = iq.error.as_ref().unwrap();
    let stanza = e
        .children()
        .find(|c| c.ns() == NS_STANZAS && c.name() != "text")
        .map(|c| c.name().to_string())
        .unwrap();
    let specific = e
        .children()
        .find(|c| c.ns() == NS_COMMANDS)
        .map(|c| c.name().to_string());
    (stanza, specific, get_attr(e, "type").map(str::to_string))
}

fn notes(c: &Element) -> Vec<(String, String)> {
    c.children()
        .filter(|n| n.is("note", NS_COMMANDS))
        .map(|n| (get_attr(n, "type").unwrap_or("info").to_string(), n.text()))
        .collect()
}

/// A result form's fields as (var, values).
fn fields(x: &Element) -> Vec<(String, Vec<String>)> {
    x.children()
        .filter(|f| f.name() == "field")
        .map(|f| {
            (
                get_attr(f, "var").unwrap_or("").to_string(),
                f.children()
                    .filter(|v| v.name() == "value")
                    .map(|v| v.text())
                    .collect(),
            )
        })
        .collect()
}

fn field<'a>(fs: &'a [(String, Vec<String>)], var: &str) -> &'a str {
    fs.iter()
        .find(|(v, _)| v == var)
        .and_then(|(_, vals)| vals.first())
        .map(String::as_str)
        .unwrap_or_else(|| panic!("no field {var} in {fs:?}"))
}

/// A stream of ALICE (master, connected) with BOB (slave, connected), CAROL (slave,
/// accepted, waiting) and DAVE (invited); returns the peers.
fn busy_stream(h: &mut Harness) -> (Peer, Peer, Peer) {
    let mut a = h.create(ALICE);
    let mut b = h.join(&a, "slave", BOB);
    let c = h.join(&a, "slave", CAROL);
    let _dave_invitation = h.invite(&a, "slave", DAVE);
    h.handshake(&mut a);
    let out = h.handshake(&mut b);
    let (_, at) = attaches(&out).pop().unwrap();
    let mut t = at.traffic.lock().unwrap();
    t.rx.record(300, h.base);
    t.tx.record(7000, h.base);
    drop(t);
    (a, b, c)
}

// ---- operations --------------------------------------------------------------------

#[test]
fn a_summary_shows_every_seat_with_role_status_and_bytes() {
    let mut h = with_admins();
    let (_a, _b, carol) = busy_stream(&mut h);
    h.elapsed = Duration::from_secs(90);
    let ids = h.reg.stream_ids();
    assert_eq!(ids.len(), 1);
    let s = h.reg.stream_summary(ids[0], h.now()).unwrap();
    assert_eq!((s.creator.as_str(), s.age_secs), (ALICE, 90));
    assert_eq!(s.public_jid, None);
    let seen: Vec<(&str, Role, &str, u64, u64)> = s
        .peers
        .iter()
        .map(|p| (p.jid.as_str(), p.role, p.status, p.bytes_in, p.bytes_out))
        .collect();
    assert_eq!(
        seen,
        [
            (ALICE, Role::Master, "connect", 0, 0),
            (BOB, Role::Slave, "connect", 300, 7000),
            (CAROL, Role::Slave, "wait", 0, 0),
            (DAVE, Role::Slave, "expire", 0, 0),
        ]
    );
    let c = h.reg.counts();
    assert_eq!(
        (c.streams, c.seats, c.connected, c.waiting, c.invited),
        (1, 4, 2, 1, 1)
    );
    assert_eq!(
        (c.relay_links_in, c.relay_links_out, c.handshakes),
        (0, 0, 0)
    );
    h.key1(&carol);
    assert_eq!(h.reg.counts().handshakes, 1, "carol is in her handshake");
}

#[test]
fn an_operator_drop_closes_the_peer_tells_it_why_and_tells_the_others() {
    let mut h = with_admins();
    let (a, b, _c) = busy_stream(&mut h);
    let sid = h.reg.stream_ids()[0];
    let reason = Element::builder("comment", NS_DSPS).append("abuse").build();
    let now = h.now();
    let (n, out) = h.reg.operator_drop_peer(sid, BOB, &[reason], now).unwrap();
    assert_eq!(n, 1);
    assert_eq!(closes(&out), [b.conn()]);
    let notice = of_type(&out, "acknowledge").pop().expect("a drop notice");
    assert_eq!(
        (notice.to.as_str(), notice.from.as_str()),
        (BOB, b.dsps.as_str())
    );
    let text = String::from(notice.payload.as_ref().unwrap());
    assert!(
        text.contains("status='drop'") && text.contains(">abuse</comment>"),
        "{text}"
    );
    assert_eq!(presences(&out), [presence(&a, &a, "drop", BOB)]);
    assert_eq!(h.who(&a).len(), 3);
    // Errors name what was not found and change nothing.
    let now = h.now();
    assert_eq!(
        h.reg.operator_drop_peer(sid, BOB, &[], now).unwrap_err(),
        OperatorError::NoSuchPeer(sid, BOB.into())
    );
    assert_eq!(
        h.reg
            .operator_drop_peer(99, BOB, &[], now)
            .unwrap_err()
            .to_string(),
        "no stream 99"
    );
    // The last master's drop ends the stream, as any drop of it does.
    let (_, out) = h
        .reg
        .operator_drop_peer(sid, "alice@localhost", &[], now)
        .unwrap();
    assert_eq!(gone(&out), [sid]);
    assert_eq!(h.reg.held(), (0, 0, 0, 0));
}

#[test]
fn an_operator_ends_a_stream_as_stream_shutdown_does_with_the_reason() {
    let mut h = with_admins();
    let (a, b, _c) = busy_stream(&mut h);
    let sid = h.reg.stream_ids()[0];
    let reason = Element::builder("comment", NS_DSPS)
        .append("maintenance")
        .build();
    let now = h.now();
    let out = h.reg.operator_end_stream(sid, &[reason], now).unwrap();
    let mut drained = drains(&out);
    drained.sort_unstable();
    assert_eq!(drained, [a.conn(), b.conn()]);
    let notices = of_type(&out, "acknowledge");
    assert_eq!(notices.len(), 3, "alice, bob and carol have peer resources");
    assert!(notices
        .iter()
        .all(|n| String::from(n.payload.as_ref().unwrap()).contains(">maintenance</comment>")));
    assert_eq!(gone(&out), [sid]);
    assert_eq!(h.reg.held(), (0, 0, 0, 0));
    assert_eq!(
        h.reg.operator_end_stream(sid, &[], now).unwrap_err(),
        OperatorError::NoSuchStream(sid)
    );
}

// ---- service discovery -------------------------------------------------------------

#[test]
fn disco_info_advertises_items_and_commands_only_when_someone_may_run_them() {
    let info = "<query xmlns='http://jabber.org/protocol/disco#info'/>";
    let vars = |h: &mut Harness| -> Vec<String> {
        let r = h.ask("get", MALLORY, DOMAIN, info);
        r.payload
            .unwrap()
            .children()
            .filter_map(|f| get_attr(f, "var").map(str::to_string))
            .collect()
    };
    let plain = vars(&mut Harness::new());
    assert!(plain.iter().any(|v| v == NS_ITEMS), "{plain:?}");
    assert!(!plain.iter().any(|v| v == NS_COMMANDS), "{plain:?}");
    let admin = vars(&mut with_admins());
    assert!(admin.iter().any(|v| v == NS_COMMANDS), "{admin:?}");
}

#[test]
fn disco_items_lists_public_streams_named_by_their_comment() {
    let mut h = with_admins();
    let _private = h.create(BOB);
    h.create_with(
        ALICE,
        "maxpublic='5'",
        "<comment>  Radio   one\n live </comment>",
    );
    let long = "x".repeat(300);
    h.create_with(
        CAROL,
        "maxpublic='1'",
        &format!("<comment>{long}</comment>"),
    );
    h.create_with(DAVE, "maxpublic='1'", "");
    let r = h.ask(
        "get",
        MALLORY,
        DOMAIN,
        &format!("<query xmlns='{NS_ITEMS}'/>"),
    );
    assert_eq!(r.kind, IqKind::Result);
    let items: Vec<(String, Option<String>)> = r
        .payload
        .as_ref()
        .unwrap()
        .children()
        .map(|i| {
            (
                get_attr(i, "jid").unwrap().to_string(),
                get_attr(i, "name").map(str::to_string),
            )
        })
        .collect();
    assert_eq!(items.len(), 3, "the public ones: {items:?}");
    assert!(items.iter().all(|(j, _)| is_fresh_resource(j)));
    assert_eq!(items[0].1.as_deref(), Some("Radio one live"));
    let cut = items[1].1.as_deref().unwrap();
    assert_eq!(cut.chars().count(), super::super::discovery::NAME_CHARS);
    assert!(cut.ends_with('…'));
    assert_eq!(items[2].1, None, "no comment, no name");
    // The JIDs are the ones the public stats listing gives.
    let (_, listed) = public_listing(&mut h);
    let stats_jids: Vec<String> = listed.iter().map(|s| s.peers[0].clone()).collect();
    let item_jids: Vec<String> = items.into_iter().map(|(j, _)| j).collect();
    assert_eq!(item_jids, stats_jids);
}

#[test]
fn disco_items_is_cut_to_max_stanza_size() {
    let mut h = Harness::with(Settings {
        max_stanza_size: 4096,
        limits: crate::config::Limits {
            stream_comment_bytes: 1024,
            attribute_bytes: 512,
            ..crate::config::Limits::default()
        },
        ..settings()
    });
    for i in 0..60 {
        h.create_with(
            &format!("u{i}@localhost/r"),
            "maxpublic='1'",
            "<comment>a public stream</comment>",
        );
    }
    let out = h.iq(
        "get",
        MALLORY,
        DOMAIN,
        &format!("<query xmlns='{NS_ITEMS}'/>"),
    );
    let [Action::Send(e)] = out.as_slice() else {
        panic!("{out:?}")
    };
    let size = crate::proto::limits::size_within(e, usize::MAX).unwrap();
    let listed = e.children().next().unwrap().children().count();
    assert!(size <= 4096, "{size}");
    assert!((20..60).contains(&listed), "{listed} of 60 fit in 4 KiB");
}

#[test]
fn only_admins_see_the_command_list() {
    let mut h = with_admins();
    let list = format!("<query xmlns='{NS_ITEMS}' node='{NS_COMMANDS}'/>");
    let nodes = |r: Iq| -> Vec<String> {
        r.payload
            .unwrap()
            .children()
            .map(|i| get_attr(i, "node").unwrap().to_string())
            .collect()
    };
    assert_eq!(
        nodes(h.ask("get", OPS, DOMAIN, &list)),
        [
            "list-streams",
            "drop-peer",
            "drop-stream",
            "server-info",
            "set-log-level"
        ]
    );
    // Another resource of the admin account is the admin too; case does not matter.
    assert_eq!(
        nodes(h.ask("get", "OPS@LocalHost/phone", DOMAIN, &list)).len(),
        5
    );
    assert!(nodes(h.ask("get", MALLORY, DOMAIN, &list)).is_empty());
    // Without a log handle there is no log command.
    let mut plain = Harness::with(Settings {
        admins: vec!["ops@localhost".into()],
        ..settings()
    });
    assert_eq!(nodes(plain.ask("get", OPS, DOMAIN, &list)).len(), 4);
    let r = h.ask(
        "get",
        OPS,
        DOMAIN,
        &format!("<query xmlns='{NS_ITEMS}' node='nope'/>"),
    );
    assert_eq!(code(&r), Some(404));
}

#[test]
fn disco_info_on_a_command_node_is_for_admins_only() {
    let mut h = with_admins();
    let q = "<query xmlns='http://jabber.org/protocol/disco#info' node='drop-peer'/>";
    let r = h.ask("get", OPS, DOMAIN, q);
    let p = r.payload.as_ref().unwrap();
    assert_eq!(get_attr(p, "node"), Some("drop-peer"));
    let id = p.children().find(|c| c.name() == "identity").unwrap();
    assert_eq!(get_attr(id, "type"), Some("command-node"));
    let r = h.ask("get", MALLORY, DOMAIN, q);
    assert_eq!(conditions(&r).0, "forbidden");
    let r = h.ask(
        "get",
        OPS,
        DOMAIN,
        "<query xmlns='http://jabber.org/protocol/disco#info' node='nope'/>",
    );
    assert_eq!(code(&r), Some(404));
}

// ---- commands ----------------------------------------------------------------------

#[test]
fn everyone_else_is_forbidden_every_command_known_or_not() {
    let mut h = with_admins();
    let (a, _b, _c) = busy_stream(&mut h);
    for node in [
        "list-streams",
        "drop-peer",
        "drop-stream",
        "server-info",
        "set-log-level",
        "nope",
    ] {
        for body in [
            "".to_string(),
            submit(&[("stream", "1"), ("filter", "trace")]),
        ] {
            let (r, rest) = run(&mut h, MALLORY, node, "", &body);
            assert_eq!(
                conditions(&r),
                ("forbidden".into(), None, Some("auth".into())),
                "{node}"
            );
            assert!(rest.is_empty(), "{node}: {rest:?}");
        }
    }
    // Even a member of the stream, and even a malformed request.
    let (r, _) = run(&mut h, &a.jid, "drop-stream", "action='bogus'", "");
    assert_eq!(conditions(&r).0, "forbidden");
    assert_eq!(h.who(&a).len(), 4, "nothing changed");
}

#[test]
fn list_streams_completes_at_once_with_one_row_per_stream() {
    let mut h = with_admins();
    busy_stream(&mut h);
    h.create_with(ERIN, "maxpublic='3'", "");
    let (r, rest) = run(&mut h, OPS, "list-streams", "action='execute'", "");
    assert!(rest.is_empty());
    let c = cmd(&r);
    assert_eq!(get_attr(c, "status"), Some("completed"));
    assert!(get_attr(c, "sessionid").is_some_and(|s| !s.is_empty()));
    let x = c.get_child("x", NS_DATA_FORMS).unwrap();
    assert_eq!(get_attr(x, "type"), Some("result"));
    assert_eq!(
        x.get_child("instructions", NS_DATA_FORMS).unwrap().text(),
        "2 streams"
    );
    let rows: Vec<_> = x.children().filter(|i| i.name() == "item").collect();
    assert_eq!(rows.len(), 2);
    let first = fields(rows[0]);
    assert_eq!(field(&first, "creator"), ALICE);
    assert_eq!(
        field(&first, "seats"),
        "1 master: 1 connect; 3 slaves: 1 connect, 1 expire, 1 wait"
    );
    assert_eq!(
        (field(&first, "bytes_in"), field(&first, "bytes_out")),
        ("300", "7000")
    );
    let peers = &first.iter().find(|(v, _)| v == "peers").unwrap().1;
    assert_eq!(
        peers[1],
        format!("{BOB} slave connect 300 in 7000 out (id 1)")
    );
    let second = fields(rows[1]);
    assert!(is_fresh_resource(field(&second, "public")));
}

#[test]
fn list_streams_is_cut_to_max_stanza_size_and_says_so() {
    let mut h = Harness::with(Settings {
        admins: vec!["ops@localhost".into()],
        max_stanza_size: 8192,
        limits: crate::config::Limits {
            stream_comment_bytes: 1024,
            attribute_bytes: 1024,
            ..crate::config::Limits::default()
        },
        ..settings()
    });
    for i in 0..80 {
        h.create(&format!("user{i}@localhost/r"));
    }
    let out = h.iq("set", OPS, DOMAIN, &command("list-streams", "", ""));
    let [Action::Send(e)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert!(crate::proto::limits::size_within(e, 8192).is_some());
    let r = Iq::parse(e).unwrap();
    let x = cmd(&r).get_child("x", NS_DATA_FORMS).unwrap();
    let shown = x.children().filter(|i| i.name() == "item").count();
    assert!((5..80).contains(&shown), "{shown}");
    assert_eq!(
        x.get_child("instructions", NS_DATA_FORMS).unwrap().text(),
        format!("{shown} of 80 streams shown, oldest first (the reply is limited to component.max_stanza_size)")
    );
}

#[test]
fn server_info_reports_version_uptime_counts_and_the_link() {
    let mut h = with_admins();
    busy_stream(&mut h);
    h.feed(Input::Link(LinkStatus {
        state: LinkState::Online,
        since_unix: UNIX0 + 5,
        logins: 2,
    }));
    h.elapsed = Duration::from_secs(3600);
    let (r, _) = run(&mut h, OPS, "server-info", "", "");
    let c = cmd(&r);
    assert_eq!(get_attr(c, "status"), Some("completed"));
    let f = fields(c.get_child("x", NS_DATA_FORMS).unwrap());
    assert_eq!(
        field(&f, "version"),
        format!("dsps {}", env!("CARGO_PKG_VERSION"))
    );
    assert!(field(&f, "uptime").parse::<u64>().unwrap() >= 3600);
    assert_eq!(field(&f, "streams"), "1");
    assert_eq!(
        (
            field(&f, "peers"),
            field(&f, "connected"),
            field(&f, "waiting"),
            field(&f, "invited")
        ),
        ("4", "2", "1", "1")
    );
    assert_eq!(
        (field(&f, "relay_links_out"), field(&f, "relay_links_in")),
        ("0", "0")
    );
    assert_eq!(
        field(&f, "link"),
        format!("online since {}, 2 logins", UNIX0 + 5)
    );
    assert_eq!(field(&f, "reconnects"), "1");
    assert_eq!(field(&f, "log_filter"), "info");
}

#[test]
fn drop_peer_is_a_form_then_a_drop_in_one_session() {
    let mut h = with_admins();
    let (a, b, _c) = busy_stream(&mut h);
    let sid = h.reg.stream_ids()[0].to_string();
    let (r, rest) = run(&mut h, OPS, "drop-peer", "", "");
    assert!(rest.is_empty(), "the form changes nothing");
    let c = cmd(&r);
    assert_eq!(get_attr(c, "status"), Some("executing"));
    let session = get_attr(c, "sessionid").unwrap().to_string();
    assert!(c
        .get_child("actions", NS_COMMANDS)
        .unwrap()
        .has_child("complete", NS_COMMANDS));
    let form = c.get_child("x", NS_DATA_FORMS).unwrap();
    assert_eq!(get_attr(form, "type"), Some("form"));
    let text = String::from(form);
    assert!(
        text.contains(&format!("<option label='{sid}: {ALICE}, 4 peers'>")),
        "{text}"
    );

    let body = submit(&[("stream", &sid), ("jid", BOB), ("reason", "bye now")]);
    let (r, out) = run(
        &mut h,
        OPS,
        "drop-peer",
        &format!("sessionid='{session}'"),
        &body,
    );
    let c = cmd(&r);
    assert_eq!(get_attr(c, "status"), Some("completed"));
    assert_eq!(
        notes(c),
        [(
            "info".to_string(),
            format!("dropped 1 seat of {BOB} from stream {sid}")
        )]
    );
    assert_eq!(closes(&out), [b.conn()]);
    let notice = of_type(&out, "acknowledge").pop().unwrap();
    assert!(String::from(notice.payload.as_ref().unwrap()).contains(">bye now</comment>"));
    assert_eq!(h.who(&a).len(), 3);

    // The session is over: submitting again is refused.
    let (r, out) = run(
        &mut h,
        OPS,
        "drop-peer",
        &format!("sessionid='{session}'"),
        &body,
    );
    assert_eq!(
        conditions(&r),
        (
            "not-allowed".into(),
            Some("session-expired".into()),
            Some("cancel".into())
        )
    );
    assert!(out.is_empty());
}

#[test]
fn a_submitted_form_without_a_session_is_acted_on_at_once() {
    let mut h = with_admins();
    busy_stream(&mut h);
    let sid = h.reg.stream_ids()[0].to_string();
    let (r, out) = run(
        &mut h,
        OPS,
        "drop-stream",
        "action='complete'",
        &submit(&[("stream", &sid)]),
    );
    assert_eq!(
        notes(cmd(&r)),
        [("info".to_string(), format!("stream {sid} ended"))]
    );
    assert_eq!(gone(&out).len(), 1);
    // Not found is a completed command with an error note, not a stanza error.
    let (r, out) = run(&mut h, OPS, "drop-stream", "", &submit(&[("stream", &sid)]));
    assert_eq!(get_attr(cmd(&r), "status"), Some("completed"));
    assert_eq!(
        notes(cmd(&r)),
        [("error".to_string(), format!("no stream {sid}"))]
    );
    assert!(out.is_empty());
    let (r, _) = run(
        &mut h,
        OPS,
        "drop-peer",
        "",
        &submit(&[("stream", "5"), ("jid", BOB)]),
    );
    assert_eq!(
        notes(cmd(&r)),
        [("error".to_string(), "no stream 5".to_string())]
    );
}

#[test]
fn malformed_commands_get_bad_request_with_the_xep_0050_condition() {
    let mut h = with_admins();
    busy_stream(&mut h);
    let bad = |h: &mut Harness, node: &str, attrs: &str, body: &str| {
        let (r, out) = run(h, OPS, node, attrs, body);
        assert!(out.is_empty(), "{out:?}");
        conditions(&r)
    };
    let br = |specific: Option<&str>| {
        (
            "bad-request".to_string(),
            specific.map(str::to_string),
            Some("modify".to_string()),
        )
    };
    assert_eq!(
        bad(&mut h, "list-streams", "action='launch'", ""),
        br(Some("malformed-action"))
    );
    assert_eq!(
        bad(&mut h, "drop-peer", "action='prev'", ""),
        br(Some("bad-action"))
    );
    assert_eq!(
        bad(&mut h, "drop-peer", "", &submit(&[("stream", "1")])),
        br(Some("bad-payload"))
    );
    assert_eq!(
        bad(
            &mut h,
            "drop-peer",
            "",
            &submit(&[("stream", "first"), ("jid", BOB)])
        ),
        br(Some("bad-payload"))
    );
    assert_eq!(
        bad(
            &mut h,
            "drop-peer",
            "",
            &submit(&[("stream", "1"), ("jid", "@@")])
        ),
        br(Some("bad-payload"))
    );
    let long = "r".repeat(2000);
    assert_eq!(
        bad(
            &mut h,
            "drop-stream",
            "",
            &submit(&[("stream", "1"), ("reason", &long)])
        ),
        br(Some("bad-payload"))
    );
    assert_eq!(
        bad(
            &mut h,
            "drop-stream",
            "",
            "<x xmlns='jabber:x:data' type='result'/>"
        ),
        br(Some("bad-payload"))
    );
    assert_eq!(
        bad(&mut h, "nope", "", ""),
        ("item-not-found".into(), None, Some("cancel".into()))
    );
    // A command needs a node, and is run with a set.
    let r = h.ask(
        "set",
        OPS,
        DOMAIN,
        &format!("<command xmlns='{NS_COMMANDS}'/>"),
    );
    assert_eq!(conditions(&r), br(None));
    let r = h.ask("get", OPS, DOMAIN, &command("server-info", "", ""));
    assert_eq!(conditions(&r), br(None));
    // A session that was never opened.
    assert_eq!(
        bad(
            &mut h,
            "drop-stream",
            "sessionid='drop-stream:99'",
            &submit(&[("stream", "1")])
        )
        .1,
        Some("session-expired".into())
    );
    assert_eq!(h.reg.stream_count(), 1, "nothing was dropped");
}

#[test]
fn cancel_ends_a_session() {
    let mut h = with_admins();
    let (r, _) = run(&mut h, OPS, "drop-stream", "", "");
    let session = get_attr(cmd(&r), "sessionid").unwrap().to_string();
    let (r, _) = run(
        &mut h,
        OPS,
        "drop-stream",
        &format!("sessionid='{session}' action='cancel'"),
        "",
    );
    assert_eq!(get_attr(cmd(&r), "status"), Some("canceled"));
    let (r, _) = run(
        &mut h,
        OPS,
        "drop-stream",
        &format!("sessionid='{session}'"),
        &submit(&[("stream", "1")]),
    );
    assert_eq!(conditions(&r).1.as_deref(), Some("session-expired"));
}

#[test]
fn set_log_level_checks_the_filter_and_asks_the_binary_to_apply_it() {
    let mut h = with_admins();
    let (r, _) = run(&mut h, OPS, "set-log-level", "", "");
    let form = cmd(&r).get_child("x", NS_DATA_FORMS).unwrap();
    assert_eq!(
        fields(form)[0],
        ("filter".to_string(), vec!["info".to_string()])
    );
    let session = get_attr(cmd(&r), "sessionid").unwrap().to_string();
    let (r, out) = run(
        &mut h,
        OPS,
        "set-log-level",
        &format!("sessionid='{session}'"),
        &submit(&[("filter", "dsps=debug,warn")]),
    );
    assert_eq!(
        notes(cmd(&r)),
        [(
            "info".to_string(),
            "log filter is now dsps=debug,warn (was info)".to_string()
        )]
    );
    assert!(matches!(out.as_slice(), [Action::SetLogFilter(f)] if f == "dsps=debug,warn"));
    // The next form and server info show the new one.
    let (r, _) = run(&mut h, OPS, "server-info", "", "");
    let f = fields(cmd(&r).get_child("x", NS_DATA_FORMS).unwrap());
    assert_eq!(field(&f, "log_filter"), "dsps=debug,warn");
    // A typo changes nothing, and may be corrected in the same session.
    let (r, _) = run(&mut h, OPS, "set-log-level", "", "");
    let session = get_attr(cmd(&r), "sessionid").unwrap().to_string();
    let in_session = format!("sessionid='{session}'");
    let (r, out) = run(
        &mut h,
        OPS,
        "set-log-level",
        &in_session,
        &submit(&[("filter", "loud")]),
    );
    assert_eq!(conditions(&r).1.as_deref(), Some("bad-payload"));
    assert!(out.is_empty());
    let (r, out) = run(
        &mut h,
        OPS,
        "set-log-level",
        &in_session,
        &submit(&[("filter", "trace")]),
    );
    assert_eq!(get_attr(cmd(&r), "status"), Some("completed"));
    assert!(matches!(out.as_slice(), [Action::SetLogFilter(f)] if f == "trace"));
    let (r, _) = run(
        &mut h,
        OPS,
        "set-log-level",
        &in_session,
        &submit(&[("filter", "info")]),
    );
    assert_eq!(
        conditions(&r).1.as_deref(),
        Some("session-expired"),
        "acted on: over"
    );
    // A process that cannot change its filter does not know the command.
    let mut plain = Harness::with(Settings {
        admins: vec!["ops@localhost".into()],
        ..settings()
    });
    let (r, _) = run(&mut plain, OPS, "set-log-level", "", "");
    assert_eq!(conditions(&r).0, "item-not-found");
}

// ---- census (the metrics endpoint) ---------------------------------------------------

#[test]
fn the_census_counts_seats_by_role_and_status_and_the_deadlines_that_ended_seats() {
    let mut h = with_admins();
    let (_a, _b, _c) = busy_stream(&mut h);
    let c = h.reg.census();
    assert_eq!(c.streams, 1);
    assert_eq!(c.peers_of(Role::Master, "connect"), 1);
    assert_eq!(c.peers_of(Role::Slave, "connect"), 1);
    assert_eq!(c.peers_of(Role::Slave, "wait"), 1);
    assert_eq!(c.peers_of(Role::Slave, "expire"), 1);
    let seats: usize = c.peers.iter().flatten().sum();
    assert_eq!(seats, 4);
    assert_eq!(c.deadlines, DeadlineTally::default());
    // CAROL's wait (10 s) runs out first, DAVE's invitation (20 s) later.
    h.advance(WAIT_DEFAULT);
    assert_eq!(h.reg.census().deadlines.wait, 1);
    h.advance(EXPIRE_DEFAULT);
    let c = h.reg.census();
    assert_eq!((c.deadlines.wait, c.deadlines.expire), (1, 1));
    assert_eq!(c.peers.iter().flatten().sum::<usize>(), 2);
}
