//! What an operator reads in the log, from the real binary: the JSON format (every
//! line an object carrying the event's fields, with the lifecycle lines of a real
//! transfer: stream created, peer joined, peer dropped with its reason, stream
//! ended with its bytes and duration; the filter an admin sets at run time
//! applies to it), `ip_addresses = false` (no address of a
//! session that handshakes appears anywhere in the log), and the start-up warning
//! about an advertised relay host in loopback or private space.

mod common;

use std::time::Duration;

use common::blocks::read_payload;
use common::c2s::{within, STEP};
use common::dsps::{Component, Dsps};
use common::scenario::{alice_streams_to_bob, Peer, Rig, DOMAIN};
use dsps::proto::query::CreateRequest;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

const SECRET: &str = "ops-logging-secret";
/// What alice sends.
const LEN: usize = 1024 * 1024;

/// Every log line as JSON; panics naming a line that is not an object.
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            assert!(v.is_object(), "not an object: {l}");
            v
        })
        .collect()
}

/// The lines whose message is `message`.
fn with_message<'a>(lines: &'a [Value], message: &str) -> Vec<&'a Value> {
    lines.iter().filter(|v| v["message"] == message).collect()
}

/// Alice creates a stream and invites bob; both connect, alice sends [`LEN`]
/// bytes and leaves, bob reads them all; returns once the log says the stream
/// ended.
async fn transfer(rig: &Rig) {
    let (mut alice, bob, seat, b_seat) = alice_streams_to_bob(rig).await;
    let (_ar, mut aw) = alice.connect(&seat).await;
    let (br, _bw) = bob.connect(&b_seat).await;
    // Data sent before bob is on the data path would not be his.
    alice.wait_for_presence("connect", &bob.jid).await;
    let reader = tokio::spawn(read_payload(br, LEN));
    within(aw.write_all(&vec![7u8; LEN])).await.expect("send");
    drop(aw);
    alice.leave(&seat).await;
    let got = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("bob read everything in time")
        .expect("reader");
    assert_eq!(got.bytes, LEN);
    rig.dsps.wait_for_log_async("stream ended", STEP).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_parse_and_carry_the_lifecycle_fields() {
    let rig = Rig::start(SECRET, &["alice", "bob"], "[log]\nformat = \"json\"\n");
    transfer(&rig).await;
    let lines = json_lines(&rig.dsps.log());
    for v in &lines {
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{v}");
    }

    let created = with_message(&lines, "stream created");
    assert_eq!(created.len(), 1, "{created:?}");
    let stream = created[0]["stream"].as_u64().expect("stream id");
    assert_eq!(created[0]["creator"], "alice@localhost/test");
    assert_eq!(created[0]["level"], "INFO");

    let joined = with_message(&lines, "peer joined");
    let mut who: Vec<(&str, &str)> = joined
        .iter()
        .map(|v| {
            assert_eq!(v["stream"].as_u64(), Some(stream), "{v}");
            (v["peer"].as_str().unwrap(), v["role"].as_str().unwrap())
        })
        .collect();
    who.sort();
    assert_eq!(
        who,
        [
            ("alice@localhost/test", "master"),
            ("bob@localhost/test", "slave")
        ]
    );

    let dropped = with_message(&lines, "peer dropped");
    let mut why: Vec<(&str, &str)> = dropped
        .iter()
        .map(|v| (v["peer"].as_str().unwrap(), v["why"].as_str().unwrap()))
        .collect();
    why.sort();
    assert_eq!(
        why,
        [
            ("alice@localhost/test", "it dropped itself"),
            ("bob@localhost/test", "the stream ended: no master left"),
        ]
    );

    let ended = with_message(&lines, "stream ended");
    assert_eq!(ended.len(), 1, "{ended:?}");
    let e = ended[0];
    assert_eq!(e["stream"].as_u64(), Some(stream));
    assert_eq!(
        e["bytes_in"].as_u64(),
        Some(LEN as u64),
        "alice's bytes: {e}"
    );
    // What bob got: every data byte plus the block framing.
    let out = e["bytes_out"].as_u64().expect("bytes_out");
    assert!(
        out > LEN as u64 && out < LEN as u64 + LEN as u64 / 100,
        "{e}"
    );
    assert_eq!(e["connections"].as_u64(), Some(2));
    assert!(e["duration_ms"].as_u64().is_some(), "{e}");
    assert_eq!(e["cut"], false);

    // The relay connection's span rides along with its events.
    let attached = with_message(&lines, "relay peer attached");
    assert_eq!(attached.len(), 2);
    assert!(attached[0]["span"]["conn"].is_number(), "{}", attached[0]);
    assert!(
        attached[0]["span"]["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1:")),
        "{}",
        attached[0]
    );
}

/// `ops` switches the log filter with the admin command "Set log level" (the
/// filled form in the first request); the result comes after the filter applies.
async fn set_filter(ops: &Peer, filter: &str) {
    let payload: minidom::Element = format!(
        "<command xmlns='http://jabber.org/protocol/commands' node='set-log-level' \
         action='complete'><x xmlns='jabber:x:data' type='submit'><field var='filter'>\
         <value>{filter}</value></field></x></command>"
    )
    .parse()
    .expect("test XML is well-formed");
    let reply = ops.ask("set", DOMAIN, payload).await;
    let status = reply
        .get_child("command", "http://jabber.org/protocol/commands")
        .and_then(|c| c.attr("status"));
    assert_eq!(status, Some("completed"), "{reply:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_follow_the_filter_an_admin_sets() {
    let rig = Rig::start(
        SECRET,
        &["ops", "alice"],
        "[log]\nformat = \"json\"\n[admin]\njids = [\"ops@localhost\"]\n",
    );
    let [ops, alice] = rig.peers(["ops", "alice"]).await;
    set_filter(&ops, "warn").await;
    alice.create(&CreateRequest::default()).await;
    set_filter(&ops, "info").await;
    alice.create(&CreateRequest::default()).await;
    rig.dsps
        .wait_for_log_async("\"message\":\"stream created\"", STEP)
        .await;
    let lines = json_lines(&rig.dsps.log());
    assert_eq!(
        with_message(&lines, "stream created").len(),
        1,
        "only the create after the switch back to info is logged"
    );
    // Each change is logged before it applies: the one to warn passes, the one
    // back to info is filtered out by warn.
    let changes = with_message(&lines, "admin command: log filter changed");
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["to"], "warn");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_ip_addresses_off_no_address_reaches_the_log() {
    let env = [("RUST_LOG", "dsps=debug,info")];
    let rig = Rig::with(
        &["alice", "bob"],
        &[Component::new(DOMAIN, SECRET)
            .extra("[log]\nip_addresses = false\n")
            .env(&env)],
    );
    transfer(&rig).await;
    let log = rig.dsps.log();
    // The lines that name an address are there, with a token instead.
    for message in [
        "relay port listening",
        "connecting to XMPP server",
        "relay peer attached",
    ] {
        let line = log
            .lines()
            .find(|l| l.contains(message))
            .unwrap_or_else(|| panic!("no {message:?} line:\n{log}"));
        assert!(line.contains("=ip-"), "{line}");
    }
    assert!(
        !log.contains("127.0.0.1"),
        "an address in the log:\n{}",
        log.lines()
            .filter(|l| l.contains("127.0.0.1"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Starts dsps (its component link never comes up) advertising `host`; returns
/// its log once the relay port is listening, which is after the host check.
fn startup_log(host: &str) -> String {
    let d = Dsps::spawn(
        "127.0.0.1:9",
        &Component::new(DOMAIN, SECRET).relay("127.0.0.1:0", host),
    );
    d.wait_for_log("relay port listening", STEP);
    d.log()
}

const WARNING: &str = "peers outside this network cannot reach it";

#[test]
fn a_loopback_or_private_relay_host_is_warned_about_at_start() {
    for host in ["127.0.0.1", "192.168.1.10", "localhost"] {
        let log = startup_log(host);
        let line = log
            .lines()
            .find(|l| l.contains(WARNING))
            .unwrap_or_else(|| panic!("no warning for {host}:\n{log}"));
        assert!(
            line.contains("WARN") && line.contains("relay.host"),
            "{line}"
        );
    }
    // A public address literal (never dialled: it is only advertised).
    let log = startup_log("203.0.114.1");
    assert!(!log.contains(WARNING), "{log}");
}
