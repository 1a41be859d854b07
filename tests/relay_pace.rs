//! Pace (PROFILE 7), in-process: a stream runs at the speed of its slowest reader.
//! While carol does not read, alice's writes stall (back-pressure, not buffering)
//! and bob, who reads at once, stalls with her; when carol reads again everything
//! flows and both get every byte.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::inproc::{step, InProc};
use common::pattern;
use dsps::proto::query::Role;

const ALICE: &str = "alice@localhost/a";
const BOB: &str = "bob@localhost/b";
const CAROL: &str = "carol@localhost/c";
const BLOCK: u64 = 16384;
/// Far more than the kernel's socket buffers on the way can hold.
const LEN: u64 = 48 << 20;

/// Waits (bounded) until `counter` has not moved for a whole second. The buffers
/// that fill up are mostly the kernel's, so "the sender is held" cannot be observed
/// directly; a misfire makes the later assertions fail, never pass.
async fn stalled(what: &str, counter: &AtomicU64) -> u64 {
    const QUIET: Duration = Duration::from_secs(1);
    step(what, async {
        let mut last = (counter.load(Ordering::Relaxed), Instant::now());
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = counter.load(Ordering::Relaxed);
            if now != last.0 {
                last = (now, Instant::now());
            } else if last.1.elapsed() >= QUIET {
                return now;
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_pauses_the_sender_and_the_others_and_nothing_is_lost() {
    let mut d = InProc::start(&format!("block_size = {BLOCK}\nwindow = 4"), "").await;
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
    let (_a_rd, a_wr) = a.into_split();
    let sender = tokio::spawn(pattern::send(a_wr, LEN, sent.clone()));
    let rb = tokio::spawn(pattern::receive(b, "0", BLOCK + 8, LEN, got_b.clone()));
    // carol reads nothing yet.
    let held_at = stalled("alice held back by carol", &sent).await;
    let bob_at = got_b.load(Ordering::Relaxed);
    println!("paused: alice wrote {held_at} bytes, bob got {bob_at}");
    assert!(
        held_at < LEN / 2,
        "alice wrote {held_at} of {LEN} bytes while carol read nothing"
    );
    assert!(bob_at < held_at, "bob ran ahead of what alice wrote");
    assert!(!sender.is_finished());

    let rc = tokio::spawn(pattern::receive(c, "0", BLOCK + 8, LEN, got_c.clone()));
    assert_eq!(step("alice finishes", sender).await.unwrap(), LEN);
    let (rb, rc) = (
        step("bob", rb).await.unwrap(),
        step("carol", rc).await.unwrap(),
    );
    for (who, r) in [("bob", &rb), ("carol", &rc)] {
        assert_eq!(
            (r.bytes, r.first_wrong, r.leftover, r.error.as_deref()),
            (LEN, None, 0, None),
            "{who}: every byte, in order"
        );
    }
    assert_eq!(rb.sha256, rc.sha256);
}
