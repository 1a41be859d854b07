//! Pace (PROFILE 7) through a real Prosody and the real binary: a stream runs at the
//! speed of its slowest recipient, and the server's memory stays bounded while it
//! does (a bounded window per recipient and TCP back-pressure on the sender, instead
//! of buffering what the slow reader has not taken yet).
//!
//! alice (master) sends 32 MiB; bob reads as fast as he can, carol reads at about
//! 4 MiB/s. Both must get identical bytes; alice's send must take at least half the
//! time carol needs (kernel socket buffers on loopback let the sender run ahead by
//! several MiB even with carol's receive buffer kept small, hence the margin); and
//! the server's RSS, sampled every 50 ms during the transfer, must stay below its
//! start value plus 16 MiB. The default window is
//! 64 blocks of 16 KiB per recipient (1 MiB) and the server grew by about 3 MiB when
//! this was written; a server that buffered what the slow reader has not taken yet
//! would hold over 20 MiB (the payload less what sits in kernel buffers), so the
//! bound is set well below that rather than at a figure no 32 MiB transfer can reach.

mod common;

use std::time::{Duration, Instant};

use common::blocks::{read_paced, read_payload};
use common::scenario::{create_and_invite, Rig};
use dsps::proto::query::{CreateRequest, Role};
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

const SECRET: &str = "pace-test-secret";
const PAYLOAD_LEN: usize = 32 * 1024 * 1024;
/// carol's reading speed, bytes per second.
const SLOW_RATE: f64 = 4.0 * 1024.0 * 1024.0;
/// carol's socket receive buffer, bytes.
const SLOW_RECV_BUFFER: u32 = 64 * 1024;
/// Allowed growth of the server's RSS during the transfer (see the module doc).
const RSS_HEADROOM_KIB: u64 = 16 * 1024;
/// Bound on the whole transfer (the slow reader alone needs ~8 s).
const TRANSFER_BOUND: Duration = Duration::from_secs(25);
const RSS_SAMPLE_EVERY: Duration = Duration::from_millis(50);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_runs_at_the_slowest_readers_pace_with_bounded_memory() {
    let rig = Rig::start(SECRET, &["alice", "bob", "carol"], "");
    let [mut alice, mut bob, mut carol] = rig.peers(["alice", "bob", "carol"]).await;
    let (a_seat, seats) = create_and_invite(
        &alice,
        &CreateRequest::default(),
        &mut [(&mut bob, Role::Slave), (&mut carol, Role::Slave)],
    )
    .await;
    let (_ar, mut aw) = alice.connect(&a_seat).await;
    let (br, _bw) = bob.connect(&seats[0]).await;
    // A small receive buffer on the slow side keeps the kernel from hiding the pace.
    let (cr, _cw) = carol.connect_buffered(&seats[1], SLOW_RECV_BUFFER).await;
    // Both are on the data path before the first byte (the push follows the join).
    alice.wait_for_presence("connect", &bob.jid).await;
    alice.wait_for_presence("connect", &carol.jid).await;

    let mut payload = vec![0u8; PAYLOAD_LEN];
    rand::thread_rng().fill_bytes(&mut payload);
    let want = Sha256::digest(&payload).to_vec();

    let start_rss = rig.dsps.rss_kib();
    assert!(start_rss > 0, "cannot read the dsps RSS from /proc");
    let mut peak = start_rss;

    let t0 = Instant::now();
    let fast = tokio::spawn(read_payload(br, PAYLOAD_LEN));
    let slow = tokio::spawn(read_paced(cr, PAYLOAD_LEN, Some(SLOW_RATE)));
    let transfer = async {
        aw.write_all(&payload).await.expect("alice sends");
        let sent = t0.elapsed();
        let fast = fast.await.unwrap();
        let slow = slow.await.unwrap();
        (sent, fast.sha256, fast.done, slow.sha256, slow.done)
    };
    let sample = async {
        loop {
            peak = peak.max(rig.dsps.rss_kib());
            tokio::time::sleep(RSS_SAMPLE_EVERY).await;
        }
    };
    let (sent, fast_sum, fast_end, slow_sum, slow_end) = tokio::select! {
        r = tokio::time::timeout(TRANSFER_BOUND, transfer) => {
            r.expect("transfer did not finish in time")
        }
        () = sample => unreachable!("the sampler never ends"),
    };
    peak = peak.max(rig.dsps.rss_kib());
    eprintln!(
        "send {:?}, fast reader done {:?}, slow reader done {:?}, rss {} KiB -> peak {} KiB",
        sent,
        fast_end - t0,
        slow_end - t0,
        start_rss,
        peak
    );

    assert_eq!(fast_sum, want, "the fast reader's bytes differ");
    assert_eq!(slow_sum, want, "the slow reader's bytes differ");
    let slow_time = PAYLOAD_LEN as f64 / SLOW_RATE;
    assert!(
        sent.as_secs_f64() >= slow_time * 0.5,
        "alice's send took {sent:?}, less than half of the slow reader's {slow_time} s: \
         the server did not pace the stream to its slowest reader"
    );
    assert!(
        peak < start_rss + RSS_HEADROOM_KIB,
        "dsps RSS grew from {start_rss} KiB to {peak} KiB during the transfer"
    );
}
