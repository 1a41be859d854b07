//! Bad input through a real Prosody and the real binary: wrong requests get the right
//! error (PROFILE 8, 10, 11), and the relay port closes broken, hostile or silent
//! handshakes (PROFILE 2) — each closure bounded in time and logged — without
//! disturbing anyone else.
//!
//! Relay-side closures are told apart from the handshake timeout by time (closed well
//! before it) and by the log line that names the client's address and the reason.

mod common;

use std::time::{Duration, Instant};

use common::blocks::read_message;
use common::c2s::{within, STEP};
use common::dsps::Dsps;
use common::scenario::{alice_streams_to_bob, create_and_invite, iq_error, Rig, DOMAIN};
use dsps::client::session::{ClientError, Seat};
use dsps::proto::error::DspsError;
use dsps::proto::query::{self, CreateRequest, Role};
use dsps::proto::xml::{attr, NS_DSPS};
use minidom::Element;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const SECRET: &str = "bad-input-test-secret";
/// A closure the server decides on at once must happen well within this (the
/// default handshake timeout is 10 s, so this is not the timeout closing it).
const PROMPT_CLOSE: Duration = Duration::from_secs(3);

fn dsps_query(kind: &str) -> Element {
    attr(Element::builder("query", NS_DSPS), "type", kind).build()
}

/// Asserts the reply is an error with this code, condition and type (the type RFC
/// 6120 §8.3.3 recommends for the condition, as seen by the client through Prosody).
fn expect_error(reply: &Element, code: &str, condition: &str, kind: &str) {
    let e = iq_error(reply);
    assert_eq!(
        (e.code, e.condition, e.kind),
        (
            Some(code.to_string()),
            Some(condition.to_string()),
            Some(kind.to_string())
        ),
        "{reply:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_requests_get_coded_errors() {
    let rig = Rig::start(SECRET, &["alice", "bob"], "");
    let (alice, bob, a_seat, b_seat) = alice_streams_to_bob(&rig).await;

    // Unknown DSPS query type: 400, on the bare JID and on a peer resource.
    let r = alice.ask("get", DOMAIN, dsps_query("teleport")).await;
    expect_error(&r, "400", "bad-request", "modify");
    let r = alice
        .ask("get", &a_seat.peer_jid, dsps_query("teleport"))
        .await;
    expect_error(&r, "400", "bad-request", "modify");
    // An iq we do not speak at all: 503.
    let unknown = Element::builder("query", "urn:example:no-such-protocol").build();
    let r = alice.ask("get", DOMAIN, unknown).await;
    expect_error(&r, "503", "service-unavailable", "cancel");
    // bob asks who through alice's peer resource: 404, as if it did not exist.
    let r = bob.ask("get", &a_seat.peer_jid, query::empty("who")).await;
    expect_error(&r, "404", "item-not-found", "cancel");
    // A resource that never existed: 404.
    let nowhere = format!("{DOMAIN}/no-such-resource");
    let r = alice.ask("get", &nowhere, query::empty("who")).await;
    expect_error(&r, "404", "item-not-found", "cancel");
    // bob (slave) tries to drop alice through his own seat: 403, type auth.
    let drop = attr(Element::builder("peer", NS_DSPS), "type", "drop").append(alice.jid.as_str());
    let admin = attr(Element::builder("query", NS_DSPS), "type", "admin")
        .append(drop)
        .build();
    let r = bob.ask("set", &b_seat.peer_jid, admin).await;
    expect_error(&r, "403", "forbidden", "auth");
    // The stream still works for its owner afterwards.
    alice.who(&a_seat).await;
}

/// Connects to the relay port; returns the socket and its local port (which the
/// server's log names).
async fn dial(seat: &Seat) -> (TcpStream, u16) {
    let tcp = within(TcpStream::connect(("127.0.0.1", seat.info.port)))
        .await
        .expect("connect to the relay port");
    let port = tcp.local_addr().unwrap().port();
    (tcp, port)
}

/// Like [`dial`], from another loopback address (all of 127/8 is loopback on Linux).
async fn dial_from(seat: &Seat, ip: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::new(ip.parse().unwrap(), 0))
        .expect("bind a loopback client address");
    within(socket.connect(([127, 0, 0, 1], seat.info.port).into()))
        .await
        .expect("connect to the relay port")
}

/// Waits until the server closes `tcp` (EOF or reset), discarding anything it
/// sends; returns how long that took. Panics after `bound`.
async fn closed_within(tcp: &mut TcpStream, bound: Duration) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(bound.saturating_sub(start.elapsed()), tcp.read(&mut buf)).await
        {
            Err(_) => panic!("the server did not close the connection within {bound:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => continue,
        }
    }
}

/// Waits (bounded) for a log line naming our local port and `reason`.
async fn expect_logged(dsps: &Dsps, port: u16, reason: &str) {
    let peer = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + STEP;
    loop {
        if dsps
            .log()
            .lines()
            .any(|l| l.contains(&peer) && l.contains(reason))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no log line names {peer} with {reason:?}; log:\n{}",
            dsps.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_hostile_handshakes_are_closed_and_logged() {
    let rig = Rig::start(SECRET, &["alice", "bob"], "");
    let (mut alice, bob, a_seat, b_seat) = alice_streams_to_bob(&rig).await;

    // A line longer than 4 KiB.
    let (mut tcp, port) = dial(&a_seat).await;
    let mut long = vec![b'a'; 8 * 1024];
    long.push(b'\n');
    // The server may reset the connection before it has read everything.
    let _ = within(tcp.write_all(&long)).await;
    let took = closed_within(&mut tcp, PROMPT_CLOSE).await;
    expect_logged(&rig.dsps, port, "longer than 4096 bytes").await;
    eprintln!("long line closed after {took:?}");

    // A line that is not UTF-8.
    let (mut tcp, port) = dial(&a_seat).await;
    within(tcp.write_all(b"\xff\xfe\xfd bob@localhost/x\n"))
        .await
        .unwrap();
    closed_within(&mut tcp, PROMPT_CLOSE).await;
    expect_logged(&rig.dsps, port, "not UTF-8").await;

    // A pair nobody created.
    let (mut tcp, port) = dial(&a_seat).await;
    let line = format!("eve@localhost/x {DOMAIN}/no-such-resource\n");
    within(tcp.write_all(line.as_bytes())).await.unwrap();
    closed_within(&mut tcp, PROMPT_CLOSE).await;
    expect_logged(&rig.dsps, port, "unknown pair").await;

    // A real seat claimed by the wrong client JID.
    let (mut tcp, port) = dial(&a_seat).await;
    let line = format!("eve@localhost/x {}\n", b_seat.peer_jid);
    within(tcp.write_all(line.as_bytes())).await.unwrap();
    closed_within(&mut tcp, PROMPT_CLOSE).await;
    expect_logged(&rig.dsps, port, "unknown pair").await;

    // A pair that is already connected: the intruder is closed, the original
    // connection keeps working.
    let (_ar, mut aw) = alice.connect(&a_seat).await;
    let (mut br, _bw) = bob.connect(&b_seat).await;
    alice.wait_for_presence("connect", &bob.jid).await;
    let (mut tcp, port) = dial(&a_seat).await;
    let line = format!("{} {}\n", bob.jid, b_seat.peer_jid);
    within(tcp.write_all(line.as_bytes())).await.unwrap();
    closed_within(&mut tcp, PROMPT_CLOSE).await;
    expect_logged(&rig.dsps, port, "already connected").await;
    let data = b"still flowing to the original connection";
    within(aw.write_all(data)).await.unwrap();
    let (id, got) = read_message(&mut br, data.len()).await;
    assert_eq!((id.as_str(), got.as_slice()), ("0", &data[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_is_closed_after_the_handshake_timeout() {
    let rig = Rig::start(SECRET, &["alice"], "[timeouts]\nhandshake = 1000\n");
    let alice = rig.peer("alice").await;
    let seat = alice.create(&CreateRequest::default()).await;

    let (mut tcp, port) = dial(&seat).await;
    let took = closed_within(&mut tcp, Duration::from_secs(5)).await;
    assert!(
        took >= Duration::from_millis(800),
        "closed after {took:?}, before the 1 s handshake timeout"
    );
    expect_logged(&rig.dsps, port, "handshake timed out").await;

    // Half a handshake (hello, then silence) is bounded the same way.
    let (mut tcp, port) = dial(&seat).await;
    let line = format!("{} {}\n", alice.jid, seat.peer_jid);
    within(tcp.write_all(line.as_bytes())).await.unwrap();
    let took = closed_within(&mut tcp, Duration::from_secs(5)).await;
    assert!(took >= Duration::from_millis(800), "closed after {took:?}");
    expect_logged(&rig.dsps, port, "handshake timed out").await;

    // The seat still waits for a proper handshake.
    let conn = within(alice.dsps.connect(&seat, None)).await;
    assert!(conn.is_ok(), "a fresh handshake failed: {conn:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key1_is_refused_and_a_fresh_handshake_succeeds() {
    let rig = Rig::start(SECRET, &["alice", "bob"], "");
    let (mut alice, bob, a_seat, b_seat) = alice_streams_to_bob(&rig).await;

    // bob starts a handshake by hand and answers KEY1 with the wrong key.
    let (tcp, port) = dial(&b_seat).await;
    let mut tcp = BufReader::new(tcp);
    let line = format!("{} {}\n", bob.jid, b_seat.peer_jid);
    within(tcp.get_mut().write_all(line.as_bytes()))
        .await
        .unwrap();
    let mut key1 = String::new();
    within(tcp.read_line(&mut key1)).await.expect("KEY1 line");
    let key1 = key1.trim_end();
    assert!(
        key1.len() >= 22 && key1.bytes().all(|b| b.is_ascii_alphanumeric()),
        "KEY1 {key1:?} is not >= 128 bits of alphanumerics"
    );
    let wrong = format!("{key1}x");
    let r = bob.ask("get", &b_seat.peer_jid, query::auth(&wrong)).await;
    expect_error(&r, "401", "not-authorized", "auth");
    let mut tcp = tcp.into_inner();
    closed_within(&mut tcp, PROMPT_CLOSE).await;
    expect_logged(&rig.dsps, port, "wrong key in auth").await;

    // The spent KEY1 is no good either (keys are single-use).
    let err = within(bob.dsps.request("get", &b_seat.peer_jid, query::auth(key1))).await;
    assert!(
        matches!(
            err,
            Err(ClientError::Dsps(Some(DspsError::NotAuthorized), _))
        ),
        "{err:?}"
    );

    // A second hello for the same pair replaces a pending attempt, which is closed
    // at once rather than left to the handshake timeout.
    let (mut first, port) = dial(&b_seat).await;
    within(first.write_all(line.as_bytes())).await.unwrap();
    let mut key = [0u8; 64];
    let n = within(first.read(&mut key))
        .await
        .expect("KEY1 of the first attempt");
    assert!(n > 0, "the first attempt got no KEY1");
    let (mut second, _) = dial(&b_seat).await;
    within(second.write_all(line.as_bytes())).await.unwrap();
    closed_within(&mut first, PROMPT_CLOSE).await;
    expect_logged(&rig.dsps, port, "replaced by a newer handshake").await;
    // Its KEY1 shows the server took the second hello before bob's real one below.
    let n = within(second.read(&mut key))
        .await
        .expect("KEY1 of the second attempt");
    assert!(n > 0, "the second attempt got no KEY1");
    drop(second);

    // A fresh, correct handshake works, and data flows.
    let (_ar, mut aw) = alice.connect(&a_seat).await;
    let (mut br, _bw) = bob.connect(&b_seat).await;
    alice.wait_for_presence("connect", &bob.jid).await;
    let data = b"after a failed attempt";
    within(aw.write_all(data)).await.unwrap();
    let (_, got) = read_message(&mut br, data.len()).await;
    assert_eq!(got, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_clients_never_stall_a_good_one() {
    let rig = Rig::start(SECRET, &["alice", "bob"], "");
    let [mut alice, mut bob] = rig.peers(["alice", "bob"]).await;
    // Learn the relay port from a throwaway stream.
    let probe = alice.create(&CreateRequest::default()).await;

    // 10 silent connections and 10 stuck in the middle of a garbage line, each
    // group from an address of its own: the relay admits at most 16 pending
    // connections per address and, past that, closes the oldest silent one of that
    // address to make room (tests/relay_limits.rs), so from the good clients'
    // address they would not all stay open.
    let mut silent = Vec::new();
    let mut garbage = Vec::new();
    for i in 0..10 {
        silent.push(dial_from(&probe, "127.0.0.2").await);
        let mut tcp = dial_from(&probe, "127.0.0.3").await;
        let junk: Vec<u8> = (0..1000u32).map(|b| (b * 7 + i) as u8 | 0x80).collect();
        within(tcp.write_all(&junk)).await.unwrap();
        garbage.push(tcp);
    }

    // A whole session meanwhile: create, invite, accept, connect, 1 MiB through.
    let started = Instant::now();
    let session = async {
        let (a_seat, seats) = create_and_invite(
            &alice,
            &CreateRequest::default(),
            &mut [(&mut bob, Role::Slave)],
        )
        .await;
        let (_ar, mut aw) = alice.connect(&a_seat).await;
        let (mut br, _bw) = bob.connect(&seats[0]).await;
        alice.wait_for_presence("connect", &bob.jid).await;
        let data = vec![0x5a; 1024 * 1024];
        let (sent, (_, got)) = tokio::join!(aw.write_all(&data), read_message(&mut br, data.len()));
        sent.expect("alice sends");
        assert_eq!(got, data);
    };
    tokio::time::timeout(Duration::from_secs(5), session)
        .await
        .expect("a full session took more than 5 s next to 20 bad connections");
    let took = started.elapsed();

    // The bad connections were open the whole time (the handshake timeout is 10 s).
    for tcp in silent.iter().chain(&garbage) {
        let mut b = [0u8; 1];
        match tcp.try_read(&mut b) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("a bad connection was closed early: {other:?}"),
        }
    }
    eprintln!("session next to 20 bad connections took {took:?}");
}
