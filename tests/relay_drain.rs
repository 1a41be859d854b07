//! Graceful drain on shutdown, in-process (no XMPP server): a master sending fast
//! to two slaves is stopped mid-transfer. Each slave gets a prefix of the payload
//! made of whole blocks, both get the same blocks (everything the relay had read
//! from the master), then each peer gets its drop notice; during the drain a
//! `create` gets 503 and the relay port takes no new connection; a peer that does
//! not read is cut at the drain's deadline and still gets its notice; a master that
//! dropped itself and is still forwarding stops at the signal and its slave's drain
//! (held back for it) then completes.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::inproc::{drop_notice_for, step, InProc, DOMAIN};
use common::pattern::{self, Received};
use dsps::proto::iq::IqKind;
use dsps::proto::query::{CreateRequest, Role};
use tokio::io::AsyncReadExt;

const ALICE: &str = "alice@localhost/a";
const BOB: &str = "bob@localhost/b";
const CAROL: &str = "carol@localhost/c";
const DAVE: &str = "dave@localhost/d";
const BLOCK: u64 = 4096;
/// More than can pass before the signal; the transfer is always cut short.
const PAYLOAD: u64 = 1 << 40;

/// Waits (bounded, yielding) until `counter` reaches `at_least`.
async fn progress(what: &str, counter: &AtomicU64, at_least: u64) {
    step(what, async {
        while counter.load(Ordering::Relaxed) < at_least {
            tokio::task::yield_now().await;
        }
    })
    .await
}

/// Waits (bounded) until `counter` has not moved for a whole second: the sender is
/// held by back-pressure because every buffer between it and a reader that does not
/// read is full. That state cannot be observed directly (most of those buffers are
/// the kernel's); if this fires early the drain ends at once and the test fails on
/// its timing, so a misfire cannot make it pass.
async fn stalled(what: &str, counter: &AtomicU64) {
    const QUIET: Duration = Duration::from_secs(1);
    step(what, async {
        let mut last = (counter.load(Ordering::Relaxed), Instant::now());
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = counter.load(Ordering::Relaxed);
            if now != last.0 {
                last = (now, Instant::now());
            } else if last.1.elapsed() >= QUIET {
                return;
            }
        }
    })
    .await
}

fn assert_whole_blocks_of_the_payload(who: &str, r: &Received) {
    assert_eq!(r.error, None, "{who}: framing broke");
    assert_eq!(r.leftover, 0, "{who}: the data ends in a cut block");
    assert_eq!(r.first_wrong, None, "{who}: not a prefix of the payload");
    assert!(
        r.foreign_ids.is_empty(),
        "{who}: blocks from {:?}",
        r.foreign_ids
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_mid_transfer_delivers_whole_blocks_then_drop_notices() {
    let mut d = InProc::start(
        &format!("block_size = {BLOCK}\nwindow = 8"),
        "[timeouts]\ndrain = 8000\n",
    )
    .await;
    let alice = d.create(ALICE).await;
    let bob = d.invite(&alice, Role::Slave, BOB).await;
    let carol = d.invite(&alice, Role::Slave, CAROL).await;
    let a = d.connect(&alice, None).await;
    let b = d.connect(&bob, None).await;
    let c = d.connect(&carol, None).await;

    let (sent, got_b, got_c) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let (a_rd, a_wr) = a.into_split();
    let sender = tokio::spawn(pattern::send(a_wr, PAYLOAD, sent.clone()));
    let max = BLOCK + 64;
    let rb = tokio::spawn(pattern::receive(b, "0", max, u64::MAX, got_b.clone()));
    let rc = tokio::spawn(pattern::receive(c, "0", max, u64::MAX, got_c.clone()));
    // Mid-transfer: both slaves are receiving.
    progress("bob receiving", &got_b, 4 << 20).await;
    progress("carol receiving", &got_c, 4 << 20).await;

    let t0 = Instant::now();
    d.shutdown();
    let iqs = d.stopped(Duration::from_secs(10)).await;
    let took = t0.elapsed();
    let (rb, rc) = (rb.await.unwrap(), rc.await.unwrap());
    let written = sender.await.unwrap();

    println!(
        "alice wrote {written} bytes; bob and carol each got {} bytes in {} blocks; drain took {took:?}",
        rb.bytes, rb.blocks
    );
    assert_whole_blocks_of_the_payload("bob", &rb);
    assert_whole_blocks_of_the_payload("carol", &rc);
    // Every block the relay read from alice went to both: the same bytes.
    assert_eq!(
        (rb.bytes, &rb.sha256),
        (rc.bytes, &rc.sha256),
        "bob and carol differ"
    );
    assert!(
        rb.bytes <= written && rb.bytes < PAYLOAD,
        "a transfer cut short"
    );
    for p in [&alice, &bob, &carol] {
        assert!(
            drop_notice_for(&iqs, &p.jid).is_some(),
            "{} got no drop notice: {iqs:?}",
            p.jid
        );
    }
    assert!(took < Duration::from_secs(8), "the drain took {took:?}");
    // alice's own connection was closed too (nothing was queued for her).
    let mut rest = Vec::new();
    let mut a_rd = a_rd;
    let _ = step("alice's socket closes", a_rd.read_to_end(&mut rest)).await;
    assert!(rest.is_empty(), "alice received {} bytes", rest.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_the_drain_creates_get_503_and_a_stuck_reader_is_cut_at_the_deadline() {
    let mut d = InProc::start(
        &format!("block_size = {BLOCK}\nwindow = 4"),
        "[timeouts]\ndrain = 2000\n",
    )
    .await;
    let alice = d.create(ALICE).await;
    let bob = d.invite(&alice, Role::Slave, BOB).await;
    // dave accepts but never connects: his notice goes out as the drain starts.
    let dave = d.invite(&alice, Role::Slave, DAVE).await;
    let a = d.connect(&alice, None).await;
    let b = d.connect(&bob, None).await; // bob never reads
    let sent = Arc::new(AtomicU64::new(0));
    let (_a_rd, a_wr) = a.into_split();
    let sender = tokio::spawn(pattern::send(a_wr, PAYLOAD, sent.clone()));
    stalled("alice paced by bob, who does not read", &sent).await;

    let t0 = Instant::now();
    d.shutdown();
    let notice = d
        .wait_for("dave's drop notice", |q| {
            q.to == DAVE && q.dsps_type() == Some("acknowledge")
        })
        .await;
    assert_eq!(notice.from, dave.peer_jid);
    let r = d
        .ask(
            IqKind::Get,
            "erin@localhost/e",
            DOMAIN,
            (&CreateRequest::default()).into(),
        )
        .await;
    assert_eq!(r.error_code(), Some(503), "create while draining: {r:?}");
    // The relay port takes nobody new.
    match tokio::net::TcpStream::connect(d.relay).await {
        Err(_) => {}
        Ok(mut late) => {
            let mut buf = [0u8; 1];
            let n = step("late connection closed", late.read(&mut buf)).await;
            assert!(matches!(n, Ok(0) | Err(_)), "a late connection was served");
        }
    }
    let iqs = d.stopped(Duration::from_secs(5)).await;
    let took = t0.elapsed();
    // bob holds everything up until the deadline (the drain less the link's reserve).
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_millis(2500),
        "stopped after {took:?}"
    );
    assert!(
        drop_notice_for(&iqs, BOB).is_some(),
        "the cut peer is told too: {iqs:?}"
    );
    assert!(drop_notice_for(&iqs, ALICE).is_some(), "{iqs:?}");
    drop(b);
    sender.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_while_a_master_that_dropped_itself_is_still_forwarding() {
    let mut d = InProc::start(&format!("block_size = {BLOCK}\nwindow = 8"), "").await;
    let alice = d.create(ALICE).await;
    let bob = d.invite(&alice, Role::Slave, BOB).await;
    let a = d.connect(&alice, None).await;
    let b = d.connect(&bob, None).await;
    let (sent, got) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (_a_rd, a_wr) = a.into_split();
    let sender = tokio::spawn(pattern::send(a_wr, PAYLOAD, sent.clone()));
    let rb = tokio::spawn(pattern::receive(b, "0", BLOCK + 64, u64::MAX, got.clone()));
    progress("bob receiving", &got, 1 << 20).await;
    // alice leaves while still sending: the relay keeps forwarding what she sends
    // (she is "finishing"), and bob's end of the stream waits for that.
    let leave = dsps::client::session::drop_peer(ALICE);
    let r = d
        .ask(IqKind::Set, ALICE, &alice.peer_jid, (&leave).into())
        .await;
    assert_eq!(r.kind, IqKind::Result, "{r:?}");
    let before = got.load(Ordering::Relaxed);
    progress(
        "bob still receiving after alice left",
        &got,
        before + (1 << 20),
    )
    .await;

    let t0 = Instant::now();
    d.shutdown();
    let iqs = d.stopped(Duration::from_secs(10)).await;
    let took = t0.elapsed();
    let rb = rb.await.unwrap();
    sender.abort();
    assert_whole_blocks_of_the_payload("bob", &rb);
    assert!(drop_notice_for(&iqs, BOB).is_some(), "{iqs:?}");
    assert!(took < Duration::from_secs(5), "the drain took {took:?}");
}
