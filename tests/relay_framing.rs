//! Framing and routing on the relay port (PROFILE 4-6), in-process: what a peer
//! writes raw reaches the others as `0<size>\n<id>\n<data>` blocks of at most
//! `block_size` data bytes; a master's data goes to every other peer, a slave's to
//! the masters only, and nobody gets its own data back.

mod common;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use common::inproc::{step, InProc};
use common::pattern;
use dsps::proto::query::Role;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ALICE: &str = "alice@localhost/a";
const BOB: &str = "bob@localhost/b";
const CAROL: &str = "carol@localhost/c";

/// Reads as many bytes as `want` has and compares them.
async fn expect_bytes(tcp: &mut TcpStream, want: &[u8], why: &str) {
    let mut buf = vec![0u8; want.len()];
    step("reading a block", tcp.read_exact(&mut buf))
        .await
        .expect("read");
    assert_eq!(
        String::from_utf8_lossy(&buf),
        String::from_utf8_lossy(want),
        "{why}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_masters_bytes_reach_every_other_peer_in_blocks_with_its_id() {
    const BLOCK: u64 = 1000;
    const LEN: u64 = 3 << 20;
    let mut d = InProc::start(&format!("block_size = {BLOCK}"), "").await;
    let alice = d.create(ALICE).await;
    let bob = d.invite(&alice, Role::Slave, BOB).await;
    let carol = d.invite(&alice, Role::Master, CAROL).await;
    let mut a = d.connect(&alice, None).await;
    let b = d.connect(&bob, None).await;
    let c = d.connect(&carol, None).await;

    // The spec's example block, byte for byte: SIZE counts "id\ndata".
    a.write_all(b"this is the data in ASCII form")
        .await
        .unwrap();
    let mut b = b;
    expect_bytes(&mut b, b"0320\n0\nthis is the data in ASCII form", "").await;
    let mut c = c;
    expect_bytes(&mut c, b"0320\n0\nthis is the data in ASCII form", "").await;

    // Then 3 MiB: the same bytes to both, cut into blocks of at most 1000.
    let sent = Arc::new(AtomicU64::new(0));
    let rx = |s| {
        tokio::spawn(pattern::receive(
            s,
            "0",
            BLOCK + 8,
            LEN,
            Arc::new(AtomicU64::new(0)),
        ))
    };
    let (rb, rc) = (rx(b), rx(c));
    let (mut a_rd, a_wr) = a.into_split();
    assert_eq!(pattern::send(a_wr, LEN, sent).await, LEN);
    let (rb, rc) = (
        step("bob", rb).await.unwrap(),
        step("carol", rc).await.unwrap(),
    );
    for (who, r) in [("bob", &rb), ("carol", &rc)] {
        assert_eq!(
            (r.bytes, r.first_wrong, r.leftover, r.error.as_deref()),
            (LEN, None, 0, None),
            "{who}"
        );
        assert!(r.blocks >= LEN / BLOCK, "{who}: {} blocks", r.blocks);
    }
    assert_eq!(rb.sha256, rc.sha256);
    // alice's write half is closed now, so the relay ends her connection: what she
    // received until then is all she will get, and it must be nothing.
    let mut back = Vec::new();
    step("alice's connection ends", a_rd.read_to_end(&mut back))
        .await
        .expect("read");
    assert!(
        back.is_empty(),
        "alice received {} bytes of her own",
        back.len()
    );
}

#[tokio::test]
async fn a_slaves_bytes_reach_the_masters_only() {
    let mut d = InProc::start("", "").await;
    let alice = d.create(ALICE).await;
    let bob = d.invite(&alice, Role::Slave, BOB).await;
    let carol = d.invite(&alice, Role::Slave, CAROL).await;
    let mut a = d.connect(&alice, None).await;
    let mut b = d.connect(&bob, None).await;
    let mut c = d.connect(&carol, None).await;

    b.write_all(b"from bob").await.unwrap();
    expect_bytes(&mut a, b"0100\n1\nfrom bob", "").await;
    // A second block from bob proves the first one's fan-out is over (one reader
    // per connection hands out its blocks in order).
    b.write_all(b"again").await.unwrap();
    expect_bytes(&mut a, b"070\n1\nagain", "").await;
    a.write_all(b"x").await.unwrap();
    expect_bytes(
        &mut c,
        b"030\n0\nx",
        "carol's first bytes are alice's: bob's never reached her",
    )
    .await;
    expect_bytes(&mut b, b"030\n0\nx", "").await;
}

#[tokio::test]
async fn bytes_sent_right_after_the_key_line_are_not_lost() {
    let mut d = InProc::start("", "").await;
    let alice = d.create(ALICE).await;
    let bob = d.invite(&alice, Role::Slave, BOB).await;
    let mut b = d.connect(&bob, None).await;
    // No wait for the attach: the bytes follow KEY2 at once.
    let mut a = d.handshake(&alice, None, None).await;
    a.write_all(b"early").await.unwrap();
    expect_bytes(&mut b, b"070\n0\nearly", "").await;
}
