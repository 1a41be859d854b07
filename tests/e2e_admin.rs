//! Operators through a real Prosody and the real binary (issue 10): disco#items on
//! the bare JID and in the server's own listing, and the XEP-0050 admin commands
//! for `[admin] jids` during a live stream — list, drop a peer, server info, set
//! the log level, end the stream — and `forbidden` for everyone else.

mod common;

use std::time::Duration;

use common::blocks::{expect_closed, expect_message};
use common::c2s::STEP;
use common::scenario::{create_and_invite, iq_error, Peer, Rig, DOMAIN};
use dsps::client::session::DspsEvent;
use dsps::proto::query::{CreateRequest, Role};
use dsps::proto::xml::NS_DSPS;
use minidom::Element;
use tokio::io::AsyncWriteExt;

const SECRET: &str = "admin-test-secret";
const NS_COMMANDS: &str = "http://jabber.org/protocol/commands";
const NS_ITEMS: &str = "http://jabber.org/protocol/disco#items";
const NS_INFO: &str = "http://jabber.org/protocol/disco#info";
const NS_FORMS: &str = "jabber:x:data";
const COMMANDS: [&str; 5] = [
    "list-streams",
    "drop-peer",
    "drop-stream",
    "server-info",
    "set-log-level",
];

fn admin_config() -> &'static str {
    "[admin]\njids = [\"ops@localhost\"]\n"
}

fn xml(s: &str) -> Element {
    s.parse().expect("test XML is well-formed")
}

fn submit(fields: &[(&str, &str)]) -> String {
    let fields: String = fields
        .iter()
        .map(|(k, v)| format!("<field var='{k}'><value>{v}</value></field>"))
        .collect();
    format!("<x xmlns='{NS_FORMS}' type='submit'>{fields}</x>")
}

/// Sends `<command node attrs>body</command>` and returns the raw answer.
async fn command(p: &Peer, node: &str, attrs: &str, body: &str) -> Element {
    let payload = xml(&format!(
        "<command xmlns='{NS_COMMANDS}' node='{node}' {attrs}>{body}</command>"
    ));
    p.ask("set", DOMAIN, payload).await
}

/// The `<command/>` of a result from the bare JID.
fn cmd(reply: &Element) -> &Element {
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
    assert_eq!(reply.attr("from"), Some(DOMAIN));
    reply
        .get_child("command", NS_COMMANDS)
        .unwrap_or_else(|| panic!("no command in {reply:?}"))
}

fn form(c: &Element) -> &Element {
    c.get_child("x", NS_FORMS)
        .unwrap_or_else(|| panic!("no form in {c:?}"))
}

fn notes(c: &Element) -> Vec<String> {
    c.children()
        .filter(|n| n.is("note", NS_COMMANDS))
        .map(|n| format!("{}: {}", n.attr("type").unwrap_or("info"), n.text()))
        .collect()
}

/// The values of field `var` among `parent`'s fields.
fn values(parent: &Element, var: &str) -> Vec<String> {
    parent
        .children()
        .find(|f| f.name() == "field" && f.attr("var") == Some(var))
        .unwrap_or_else(|| panic!("no field {var} in {parent:?}"))
        .children()
        .filter(|v| v.name() == "value")
        .map(|v| v.text())
        .collect()
}

fn value(parent: &Element, var: &str) -> String {
    values(parent, var).pop().unwrap_or_default()
}

/// "List streams": its rows.
async fn rows(ops: &Peer) -> Vec<Element> {
    let reply = command(ops, "list-streams", "", "").await;
    let c = cmd(&reply);
    assert_eq!(c.attr("status"), Some("completed"));
    form(c)
        .children()
        .filter(|i| i.name() == "item")
        .cloned()
        .collect()
}

/// "Server info": its form.
async fn server_info(ops: &Peer) -> Element {
    let reply = command(ops, "server-info", "", "").await;
    form(cmd(&reply)).clone()
}

/// A command with a form: execute, check the form, submit it in the session.
async fn two_stage(ops: &Peer, node: &str, fields: &[(&str, &str)]) -> Element {
    let first = command(ops, node, "action='execute'", "").await;
    let c = cmd(&first);
    assert_eq!(c.attr("status"), Some("executing"), "{node}");
    assert_eq!(form(c).attr("type"), Some("form"), "{node}");
    let session = c.attr("sessionid").expect("a session").to_string();
    let done = command(
        ops,
        node,
        &format!("sessionid='{session}'"),
        &submit(fields),
    )
    .await;
    assert_eq!(cmd(&done).attr("status"), Some("completed"), "{node}");
    assert_eq!(cmd(&done).attr("sessionid"), Some(session.as_str()));
    done
}

/// disco#items of `to` (optionally a node): (jid, node, name) of each item.
async fn items(
    p: &Peer,
    to: &str,
    node: Option<&str>,
) -> Vec<(String, Option<String>, Option<String>)> {
    let node = node.map_or(String::new(), |n| format!(" node='{n}'"));
    let reply = p
        .ask(
            "get",
            to,
            xml(&format!("<query xmlns='{NS_ITEMS}'{node}/>")),
        )
        .await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
    reply
        .get_child("query", NS_ITEMS)
        .expect("an items query")
        .children()
        .map(|i| {
            (
                i.attr("jid").unwrap_or("").to_string(),
                i.attr("node").map(str::to_string),
                i.attr("name").map(str::to_string),
            )
        })
        .collect()
}

/// The next drop notice `p` gets (other pushes skipped): the seat it names and
/// its comments' texts.
async fn drop_reason(p: &mut Peer) -> (String, Vec<String>) {
    loop {
        if let DspsEvent::Dropped { peer_jid, comments } = p.event().await {
            return (peer_jid, comments.iter().map(|c| c.text()).collect());
        }
    }
}

/// Bytes the relay has counted for the one stream, once they reach the wanted
/// (the relay publishes its counts when a connection catches up, at most 250 ms
/// after the bytes moved); bounded by [`STEP`].
async fn bytes_when_counted(ops: &Peer, want_in: u64, want_out: u64) -> (u64, u64) {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let row = rows(ops).await.pop().expect("one stream");
        let counted = |var| value(&row, var).parse::<u64>().unwrap();
        let got = (counted("bytes_in"), counted("bytes_out"));
        if got.0 >= want_in && got.1 >= want_out {
            return got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay counted {got:?}, not ({want_in}, {want_out})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_lists_drops_inspects_and_tunes_a_live_service() {
    let rig = Rig::start(
        SECRET,
        &["ops", "alice", "bob", "carol", "mallory"],
        admin_config(),
    );
    let [ops, mut alice, mut bob, mut carol, mallory] =
        rig.peers(["ops", "alice", "bob", "carol", "mallory"]).await;

    // The commands are advertised and listed for the admin.
    let info = ops
        .ask("get", DOMAIN, xml(&format!("<query xmlns='{NS_INFO}'/>")))
        .await;
    let features: Vec<&str> = info
        .get_child("query", NS_INFO)
        .unwrap()
        .children()
        .filter_map(|f| f.attr("var"))
        .collect();
    assert!(
        features.contains(&NS_COMMANDS) && features.contains(&NS_ITEMS),
        "{features:?}"
    );
    let listed: Vec<String> = items(&ops, DOMAIN, Some(NS_COMMANDS))
        .await
        .into_iter()
        .map(|(jid, node, _)| {
            assert_eq!(jid, DOMAIN);
            node.unwrap()
        })
        .collect();
    assert_eq!(listed, COMMANDS);

    // A live public stream: alice masters, bob and carol are connected slaves.
    let comment = Element::builder("comment", NS_DSPS)
        .append("e2e radio")
        .build();
    let req = CreateRequest {
        maxpublic: 2,
        comments: vec![comment],
        ..CreateRequest::default()
    };
    let (a_seat, seats) = create_and_invite(
        &alice,
        &req,
        &mut [(&mut bob, Role::Slave), (&mut carol, Role::Slave)],
    )
    .await;
    let (_ar, mut aw) = alice.connect(&a_seat).await;
    let (mut br, _bw) = bob.connect(&seats[0]).await;
    let (mut cr, _cw) = carol.connect(&seats[1]).await;
    let a_id = alice.id_of(&a_seat, &alice.jid).await;
    let data = vec![7u8; 50_000];
    aw.write_all(&data).await.unwrap();
    expect_message(&mut br, &a_id, &data, "bob gets alice's data").await;
    expect_message(&mut cr, &a_id, &data, "carol gets alice's data").await;

    // disco#items: the public stream by its comment, and the component in the
    // server's own listing (Prosody lists subdomain components by itself).
    let public = items(&mallory, DOMAIN, None).await;
    assert_eq!(public.len(), 1, "{public:?}");
    assert!(public[0].0.starts_with(&format!("{DOMAIN}/")));
    assert_eq!(public[0].2.as_deref(), Some("e2e radio"));
    let server = items(&mallory, "localhost", None).await;
    assert!(server.iter().any(|(jid, _, _)| jid == DOMAIN), "{server:?}");

    // List streams during the stream.
    let row = rows(&ops).await.pop().expect("one stream");
    let sid = value(&row, "stream");
    assert_eq!(value(&row, "creator"), alice.jid);
    assert_eq!(
        value(&row, "seats"),
        "1 master: 1 connect; 2 slaves: 2 connect"
    );
    assert_eq!(value(&row, "public"), public[0].0);
    let peers = values(&row, "peers");
    assert!(
        peers
            .iter()
            .any(|p| p.starts_with(&format!("{} slave connect", bob.jid))),
        "{peers:?}"
    );
    // In: alice's bytes. Out: two copies, each framed in blocks of 16 KiB at most
    // (a header of under 16 bytes per block).
    let (bytes_in, bytes_out) = bytes_when_counted(&ops, 50_000, 100_000).await;
    assert_eq!(bytes_in, 50_000);
    assert!(
        (100_000..=100_000 + 2 * 4 * 16).contains(&bytes_out),
        "{bytes_out}"
    );

    // Drop bob: his connection closes, he gets the notice with the reason, alice hears.
    let done = two_stage(
        &ops,
        "drop-peer",
        &[("stream", &sid), ("jid", &bob.jid), ("reason", "policy")],
    )
    .await;
    assert_eq!(
        notes(cmd(&done)),
        [format!(
            "info: dropped 1 seat of {} from stream {sid}",
            bob.jid
        )]
    );
    expect_closed(&mut br).await;
    assert_eq!(
        drop_reason(&mut bob).await,
        (seats[0].peer_jid.clone(), vec!["policy".to_string()])
    );
    alice.wait_for_presence("drop", &bob.jid).await;
    assert_eq!(
        value(&rows(&ops).await[0], "seats"),
        "1 master: 1 connect; 1 slave: 1 connect"
    );

    // Server info.
    let info = server_info(&ops).await;
    assert_eq!(
        value(&info, "version"),
        format!("dsps {}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        (
            value(&info, "streams"),
            value(&info, "peers"),
            value(&info, "connected")
        ),
        ("1".into(), "2".into(), "2".into())
    );
    assert!(
        value(&info, "link").starts_with("online since "),
        "{info:?}"
    );
    assert_eq!(value(&info, "reconnects"), "0");
    let initial_filter = value(&info, "log_filter");
    assert!(initial_filter.contains("dsps=trace"), "{initial_filter}");

    // The log level: at warn, a new stream is not logged; back at info it is.
    two_stage(&ops, "set-log-level", &[("filter", "warn")]).await;
    mallory.create(&CreateRequest::default()).await;
    two_stage(&ops, "set-log-level", &[("filter", "dsps=debug,info")]).await;
    assert_eq!(
        value(&server_info(&ops).await, "log_filter"),
        "dsps=debug,info"
    );
    mallory.create(&CreateRequest::default()).await;
    let logged = |log: &str| {
        log.lines()
            .filter(|l| l.contains("stream created") && l.contains(&mallory.jid))
            .count()
    };
    rig.dsps
        .wait_for_log_async(&format!("creator={}", mallory.jid), STEP)
        .await;
    assert_eq!(
        logged(&rig.dsps.log()),
        1,
        "only the create after the switch back is logged"
    );
    let bad = command(&ops, "set-log-level", "", &submit(&[("filter", "chatty")])).await;
    assert_eq!(iq_error(&bad).condition.as_deref(), Some("bad-request"));

    // End the stream: carol's connection closes and she and alice get the notice
    // with the reason; only mallory's streams are left.
    let more = b"last words".to_vec();
    aw.write_all(&more).await.unwrap();
    expect_message(&mut cr, &a_id, &more, "carol still gets alice's data").await;
    let done = command(
        &ops,
        "drop-stream",
        "action='complete'",
        &submit(&[("stream", &sid), ("reason", "maintenance")]),
    )
    .await;
    assert_eq!(notes(cmd(&done)), [format!("info: stream {sid} ended")]);
    expect_closed(&mut cr).await;
    assert_eq!(
        drop_reason(&mut carol).await,
        (seats[1].peer_jid.clone(), vec!["maintenance".to_string()])
    );
    assert_eq!(
        drop_reason(&mut alice).await,
        (a_seat.peer_jid.clone(), vec!["maintenance".to_string()])
    );
    let left: Vec<String> = rows(&ops)
        .await
        .iter()
        .map(|r| value(r, "creator"))
        .collect();
    assert_eq!(
        left,
        [mallory.jid.clone(), mallory.jid.clone()],
        "only mallory's streams are left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everyone_else_is_forbidden_and_sees_no_commands() {
    let rig = Rig::start(SECRET, &["ops", "mallory"], admin_config());
    let [ops, mallory] = rig.peers(["ops", "mallory"]).await;
    let seat = mallory.create(&CreateRequest::default()).await;
    assert!(items(&mallory, DOMAIN, Some(NS_COMMANDS)).await.is_empty());
    for node in COMMANDS.iter().chain(&["no-such-command"]) {
        for (attrs, body) in [
            ("action='execute'", String::new()),
            (
                "",
                submit(&[("stream", "1"), ("jid", &mallory.jid), ("filter", "trace")]),
            ),
        ] {
            let reply = command(&mallory, node, attrs, &body).await;
            let e = iq_error(&reply);
            assert_eq!(
                (e.condition.as_deref(), e.kind.as_deref(), e.code.as_deref()),
                (Some("forbidden"), Some("auth"), Some("403")),
                "{node}"
            );
        }
        let info = mallory
            .ask(
                "get",
                DOMAIN,
                xml(&format!("<query xmlns='{NS_INFO}' node='{node}'/>")),
            )
            .await;
        let want = if *node == "no-such-command" {
            "item-not-found"
        } else {
            "forbidden"
        };
        assert_eq!(iq_error(&info).condition.as_deref(), Some(want), "{node}");
    }
    // Nothing happened to mallory's stream, and the admin still sees it.
    assert_eq!(mallory.who(&seat).await.peers.len(), 1);
    assert_eq!(rows(&ops).await.len(), 1);
    // An admin's unknown node is item-not-found; a malformed action bad-request.
    let e = iq_error(&command(&ops, "no-such-command", "", "").await);
    assert_eq!(e.condition.as_deref(), Some("item-not-found"));
    let reply = command(&ops, "list-streams", "action='launch'", "").await;
    let error = reply
        .children()
        .find(|c| c.name() == "error")
        .expect("an error");
    assert!(
        error.has_child("malformed-action", NS_COMMANDS),
        "{reply:?}"
    );
}
