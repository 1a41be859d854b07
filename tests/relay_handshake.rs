//! The relay handshake (XEP "Connecting to DSPS via default method", PROFILE 2)
//! against the service in-process: no XMPP server, raw sockets on 127.0.0.1.

mod common;

use std::time::Duration;

use common::inproc::{closed_by_peer, dial, InProc};
use dsps::proto::query::Role;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ALICE: &str = "alice@localhost/a";
const BOB: &str = "bob@localhost/b";

#[tokio::test]
async fn a_wrong_key2_closes_the_socket_and_the_seat_waits_for_a_correct_attempt() {
    let mut d = InProc::start("", "").await;
    let alice = d.create(ALICE).await;
    let mut bad = d.handshake(&alice, None, Some("not-the-key")).await;
    assert!(
        closed_by_peer(&mut bad).await,
        "a wrong KEY2 closes the socket"
    );
    // XEP: "resume waiting": a correct attempt still gets in.
    let mut good = d.connect(&alice, None).await;
    let bob = d.invite(&alice, Role::Slave, BOB).await;
    let mut b = d.connect(&bob, None).await;
    good.write_all(b"hi").await.unwrap();
    let mut got = [0u8; 8];
    b.read_exact(&mut got).await.unwrap();
    assert_eq!(
        &got, b"040\n0\nhi",
        "alice (id 0) reaches bob after the retry"
    );
}

#[tokio::test]
async fn a_hello_for_an_unknown_pair_or_garbage_is_closed_at_once() {
    let mut d = InProc::start("", "").await;
    let alice = d.create(ALICE).await;
    for line in [
        format!("mallory@localhost/m {}\n", alice.peer_jid),
        format!("{ALICE} dsps.localhost/no-such-seat\n"),
        "\u{0}\u{1}garbage without a space\n".to_string(),
    ] {
        let mut tcp = dial(d.relay, None).await;
        tcp.write_all(line.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        tcp.read_to_end(&mut buf).await.unwrap_or_default();
        assert!(buf.is_empty(), "no key line for {line:?}, got {buf:?}");
    }
}

#[tokio::test]
async fn a_silent_connection_is_closed_at_the_handshake_timeout() {
    tokio::time::pause();
    let mut d = InProc::start("", "[timeouts]\nhandshake = 3000\n").await;
    let _alice = d.create(ALICE).await;
    let start = tokio::time::Instant::now();
    let mut idle = dial(d.relay, None).await;
    assert!(closed_by_peer(&mut idle).await);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(3000) && waited < Duration::from_millis(4000),
        "closed after {waited:?} of (virtual) time, not at the 3 s handshake timeout"
    );
}
