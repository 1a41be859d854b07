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

#[tokio::test]
async fn a_peer_that_disconnects_is_dropped_when_its_wait_runs_out() {
    let mut d = InProc::start("", "[timeouts]\nwait = 3000\n").await;
    let alice = d.create(ALICE).await;
    let bob = d.invite(&alice, Role::Slave, BOB).await;
    let _a = d.connect(&alice, None).await;
    let b = d.connect(&bob, None).await;
    // From here on time only moves when everything is idle, straight to the next
    // deadline: the wait is tested without waiting.
    tokio::time::pause();
    let start = tokio::time::Instant::now();
    drop(b);
    let presence = |status: &'static str| {
        move |q: &dsps::proto::iq::Iq| {
            q.to == ALICE
                && q.payload.as_ref().is_some_and(|p| {
                    dsps::proto::query::PresencePush::try_from(p)
                        .is_ok_and(|p| p.peers.iter().any(|(s, j)| s == status && j == BOB))
                })
        }
    };
    d.wait_for("alice hears bob is waiting", presence("waiting"))
        .await;
    let notice = d
        .wait_for("bob's drop notice", |q| {
            q.to == BOB && q.dsps_type() == Some("acknowledge")
        })
        .await;
    let waited = start.elapsed();
    assert_eq!(
        notice.payload.as_ref().and_then(|p| p.attr("status")),
        Some("drop")
    );
    assert!(
        waited >= Duration::from_millis(3000) && waited < Duration::from_millis(3500),
        "dropped after {waited:?} of (virtual) time, not at the 3 s wait"
    );
    d.wait_for("alice hears bob was dropped", presence("drop"))
        .await;
}
