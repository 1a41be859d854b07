//! Graceful drain through a real Prosody and the real binary: SIGTERM while alice
//! (master) sends as fast as she can to bob and carol. Each slave's data must be a
//! prefix of what alice sent that ends on a block boundary (the blocks are parsed:
//! no partial block), both slaves get the same bytes, each of the three gets its
//! drop notice over XMPP, dsps logs the drain and exits 0 within `[timeouts] drain`.
//! A second signal during a drain exits at once with 128 + 15.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::c2s::within;
use common::pattern;
use common::scenario::{create_and_invite, Rig};
use dsps::proto::query::{CreateRequest, Role};
use tokio::io::AsyncReadExt;

const SECRET: &str = "drain-test-secret";
const DRAIN_MS: u64 = 5000;
const BLOCK: u64 = 16384;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_mid_transfer_delivers_whole_blocks_and_drop_notices_then_exits_zero() {
    let mut rig = Rig::start(
        SECRET,
        &["alice", "bob", "carol"],
        &format!("[timeouts]\ndrain = {DRAIN_MS}\n"),
    );
    let [mut alice, mut bob, mut carol] = rig.peers(["alice", "bob", "carol"]).await;
    let (a_seat, seats) = create_and_invite(
        &alice,
        &CreateRequest::default(),
        &mut [(&mut bob, Role::Slave), (&mut carol, Role::Slave)],
    )
    .await;
    let a = alice.data_conn(&a_seat, None).await;
    let b = bob.data_conn(&seats[0], None).await;
    let c = carol.data_conn(&seats[1], None).await;
    alice.wait_for_presence("connect", &bob.jid).await;
    alice.wait_for_presence("connect", &carol.jid).await;

    let (sent, got_b, got_c) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let (_a_rd, a_wr) = a.tcp.into_split();
    let sender = tokio::spawn(pattern::send(a_wr, 1 << 40, sent.clone()));
    let max = BLOCK + 64;
    let rb = tokio::spawn(pattern::receive(
        std::io::Cursor::new(b.buffered.to_vec()).chain(b.tcp),
        "0",
        max,
        u64::MAX,
        got_b.clone(),
    ));
    let rc = tokio::spawn(pattern::receive(
        std::io::Cursor::new(c.buffered.to_vec()).chain(c.tcp),
        "0",
        max,
        u64::MAX,
        got_c.clone(),
    ));
    // Mid-transfer: both are receiving.
    within(async {
        while got_b.load(Ordering::Relaxed) < 8 << 20 || got_c.load(Ordering::Relaxed) < 8 << 20 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    // Each client listens for its notice from now on and acknowledges every push at
    // once, as a real client does, so results arrive while dsps is still sending
    // the other notices.
    let notices: Vec<_> = [
        (alice, a_seat),
        (bob, seats[0].clone()),
        (carol, seats[1].clone()),
    ]
    .into_iter()
    .map(|(mut p, seat)| tokio::spawn(async move { p.wait_for_drop(&seat).await }))
    .collect();
    let t0 = Instant::now();
    let status =
        tokio::task::block_in_place(|| rig.dsps.terminate(Duration::from_millis(DRAIN_MS + 2000)))
            .expect("dsps exits within the drain bound");
    let took = t0.elapsed();
    assert!(
        status.success(),
        "exit status {status:?}\n{}",
        rig.dsps.log()
    );
    assert!(
        took < Duration::from_millis(DRAIN_MS),
        "exited after {took:?}, past the {DRAIN_MS} ms drain"
    );
    let (rb, rc) = (
        within(rb).await.expect("bob's reader"),
        within(rc).await.expect("carol's reader"),
    );
    sender.abort();
    let written = sent.load(Ordering::Relaxed);
    println!(
        "alice wrote {written} bytes; bob got {} bytes in {} blocks, carol {} in {}; exit after {took:?}",
        rb.bytes, rb.blocks, rc.bytes, rc.blocks
    );
    for (who, r) in [("bob", &rb), ("carol", &rc)] {
        assert_eq!(r.error, None, "{who}: framing broke");
        assert_eq!(r.leftover, 0, "{who}: ends inside a block");
        assert_eq!(
            r.first_wrong, None,
            "{who}: not a prefix of what alice sent"
        );
        assert!(
            r.foreign_ids.is_empty(),
            "{who}: blocks from {:?}",
            r.foreign_ids
        );
        assert!(
            r.bytes >= 8 << 20 && r.bytes <= written,
            "{who}: {} bytes",
            r.bytes
        );
    }
    assert_eq!(
        (rb.bytes, &rb.sha256),
        (rc.bytes, &rc.sha256),
        "bob and carol differ"
    );
    for n in notices {
        within(n).await.expect("a drop notice");
    }
    let log = rig.dsps.log();
    for line in [
        "stopping; a second signal exits at once",
        "shutting down: draining the relay",
        "drain complete",
        "component link closed",
    ] {
        assert!(log.contains(line), "dsps did not log {line:?}:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_at_once() {
    let mut rig = Rig::start(SECRET, &["alice"], "[timeouts]\ndrain = 60000\n");
    // With the XMPP server gone the drop notices cannot go out, so the drain waits
    // for the link up to its bound: a long drain to interrupt.
    rig.prosody.stop();
    let pid = rig.dsps.pid();
    let kill = || {
        std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .expect("kill")
    };
    kill();
    rig.dsps
        .wait_for_log_async("a second signal exits at once", Duration::from_secs(10))
        .await;
    assert!(rig.dsps.is_running(), "still draining");
    let t0 = Instant::now();
    kill();
    let status = tokio::task::block_in_place(|| rig.dsps.wait_exit(Duration::from_secs(5)))
        .expect("exits after the second signal");
    assert_eq!(status.code(), Some(128 + 15), "{}", rig.dsps.log());
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t0.elapsed()
    );
}
