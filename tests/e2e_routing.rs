//! Routing through a real Prosody and the real binary (PROFILE 5 and 6): a slave's data
//! reaches the masters only, a master's data reaches every other peer, and no sender
//! ever gets its own data back.
//!
//! "Did not arrive" is proven with sentinels: after the data that must not reach a
//! peer, a peer that may reach it sends a marker, and the first thing the first peer
//! reads must be that marker. Every peer is known to be attached to the data path
//! before anyone sends: every peer has seen the `connect` presence pushes of the
//! others it may hear from, which the service sends only after that peer joined the
//! data plane.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::blocks::{expect_message, read_message, Reader};
use common::scenario::{create_and_invite, Rig};
use dsps::proto::query::{CreateRequest, Role};
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;

const SECRET: &str = "routing-test-secret";

async fn send(w: &mut OwnedWriteHalf, data: &[u8]) {
    common::c2s::within(w.write_all(data))
        .await
        .expect("write to the relay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slave_data_reaches_only_the_master_and_never_its_sender() {
    let rig = Rig::start(SECRET, &["alice", "bob", "carol"], "");
    let [mut alice, mut bob, mut carol] = rig.peers(["alice", "bob", "carol"]).await;
    let (a_seat, seats) = create_and_invite(
        &alice,
        &CreateRequest::default(),
        &mut [(&mut bob, Role::Slave), (&mut carol, Role::Slave)],
    )
    .await;
    let (mut ar, mut aw) = alice.connect(&a_seat).await;
    let (mut br, mut bw) = bob.connect(&seats[0]).await;
    let (mut cr, mut cw) = carol.connect(&seats[1]).await;
    alice.wait_for_presence("connect", &bob.jid).await;
    alice.wait_for_presence("connect", &carol.jid).await;
    bob.wait_for_presence("connect", &alice.jid).await;
    carol.wait_for_presence("connect", &alice.jid).await;
    let alice_id = alice.id_of(&a_seat, &alice.jid).await;
    let bob_id = alice.id_of(&a_seat, &bob.jid).await;
    let carol_id = alice.id_of(&a_seat, &carol.jid).await;
    assert_eq!(
        [&alice_id, &bob_id, &carol_id],
        ["0", "1", "2"],
        "ids follow registration order"
    );

    // bob (slave) → alice (master), tagged with bob's id.
    let bob_data = b"slave data from bob, for the masters only";
    send(&mut bw, bob_data).await;
    let (id, got) = read_message(&mut ar, bob_data.len()).await;
    assert_eq!(id, bob_id, "the block must name bob");
    assert_eq!(got, bob_data);

    // Sentinel: carol's and bob's first block must be alice's marker. Had bob's data
    // been routed to carol, or echoed to bob, it would have been queued before the
    // marker (alice sends it only after she has bob's data).
    let marker = b"MARKER #1 from the master";
    send(&mut aw, marker).await;
    expect_message(
        &mut cr,
        &alice_id,
        marker,
        "carol (slave) received something other than the master's marker first",
    )
    .await;
    expect_message(
        &mut br,
        &alice_id,
        marker,
        "bob received something other than the master's marker first (his own data?)",
    )
    .await;

    // carol (slave) → alice; alice must not have had her marker back, and bob must not
    // see carol's data: his next block is the second marker.
    let carol_data = b"carol speaks to the masters";
    send(&mut cw, carol_data).await;
    expect_message(
        &mut ar,
        &carol_id,
        carol_data,
        "alice's next block must be carol's data (not her own marker echoed)",
    )
    .await;
    let marker2 = b"MARKER #2";
    send(&mut aw, marker2).await;
    expect_message(
        &mut br,
        &alice_id,
        marker2,
        "bob (slave) must not receive carol's (slave) data",
    )
    .await;
    expect_message(
        &mut cr,
        &alice_id,
        marker2,
        "carol must not receive her own data back",
    )
    .await;
}

/// Reads until `want` bytes arrived in total; returns the sha256 of each sender's
/// bytes, by id.
async fn hash_by_sender(mut r: Reader, want: usize) -> HashMap<String, (usize, Vec<u8>)> {
    let mut hashers: HashMap<String, (usize, Sha256)> = HashMap::new();
    let mut got = 0;
    while got < want {
        let b = r
            .next_block()
            .await
            .expect("block")
            .expect("stream ended early");
        got += b.data.len();
        let e = hashers.entry(b.id).or_default();
        e.0 += b.data.len();
        e.1.update(&b.data);
    }
    hashers
        .into_iter()
        .map(|(id, (n, h))| (id, (n, h.finalize().to_vec())))
        .collect()
}

fn random(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut v);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_masters_get_each_others_data_and_a_slave_gets_both() {
    let rig = Rig::start(SECRET, &["alice", "bob", "carol"], "");
    let [mut alice, mut bob, mut carol] = rig.peers(["alice", "bob", "carol"]).await;
    let (a_seat, seats) = create_and_invite(
        &alice,
        &CreateRequest::default(),
        &mut [(&mut bob, Role::Master), (&mut carol, Role::Slave)],
    )
    .await;
    let (mut ar, mut aw) = alice.connect(&a_seat).await;
    let (mut br, mut bw) = bob.connect(&seats[0]).await;
    let (mut cr, _cw) = carol.connect(&seats[1]).await;
    alice.wait_for_presence("connect", &bob.jid).await;
    alice.wait_for_presence("connect", &carol.jid).await;
    bob.wait_for_presence("connect", &alice.jid).await;
    carol.wait_for_presence("connect", &alice.jid).await;
    carol.wait_for_presence("connect", &bob.jid).await;
    let alice_id = alice.id_of(&a_seat, &alice.jid).await;
    let bob_id = alice.id_of(&a_seat, &bob.jid).await;
    assert_eq!(
        bob.id_of(&seats[0], &alice.jid).await,
        alice_id,
        "ids are per stream, the same whoever asks"
    );

    let a1 = b"A1: alice to everyone";
    send(&mut aw, a1).await;
    let (id, got) = read_message(&mut br, a1.len()).await;
    assert_eq!((id.as_str(), got.as_slice()), (alice_id.as_str(), &a1[..]));

    let b1 = b"B1: bob (master) to everyone";
    send(&mut bw, b1).await;
    expect_message(
        &mut ar,
        &bob_id,
        b1,
        "alice's first block must be bob's, not her own A1",
    )
    .await;

    let a2 = b"A2";
    send(&mut aw, a2).await;
    expect_message(
        &mut br,
        &alice_id,
        a2,
        "bob's next block must be A2, not his own B1",
    )
    .await;

    // The slave got all three, in the order they were sent.
    for (want_id, want) in [
        (&alice_id, &a1[..]),
        (&bob_id, &b1[..]),
        (&alice_id, &a2[..]),
    ] {
        let (id, got) = read_message(&mut cr, want.len()).await;
        assert_eq!((&id, got.as_slice()), (want_id, want));
    }

    // Both masters stream at once while reading each other: nobody deadlocks, and
    // each side gets exactly the other's bytes; the slave gets both.
    const LEN: usize = 4 * 1024 * 1024;
    let (pa, pb) = (random(LEN), random(LEN));
    let (ha, hb) = (Sha256::digest(&pa).to_vec(), Sha256::digest(&pb).to_vec());
    let alice_rx = tokio::spawn(hash_by_sender(ar, LEN));
    let bob_rx = tokio::spawn(hash_by_sender(br, LEN));
    let carol_rx = tokio::spawn(hash_by_sender(cr, 2 * LEN));
    let alice_tx = tokio::spawn(async move { aw.write_all(&pa).await.map(|_| aw) });
    let bob_tx = tokio::spawn(async move { bw.write_all(&pb).await.map(|_| bw) });
    let bound = Duration::from_secs(30);
    let all = async {
        let _aw = alice_tx.await.unwrap().expect("alice sends");
        let _bw = bob_tx.await.unwrap().expect("bob sends");
        (
            alice_rx.await.unwrap(),
            bob_rx.await.unwrap(),
            carol_rx.await.unwrap(),
        )
    };
    let (at_alice, at_bob, at_carol) = tokio::time::timeout(bound, all)
        .await
        .expect("two masters streaming at once stalled (deadlock?)");
    assert_eq!(
        at_alice,
        HashMap::from([(bob_id.clone(), (LEN, hb.clone()))]),
        "alice must get bob's bytes and only those"
    );
    assert_eq!(
        at_bob,
        HashMap::from([(alice_id.clone(), (LEN, ha.clone()))]),
        "bob must get alice's bytes and only those"
    );
    assert_eq!(
        at_carol,
        HashMap::from([(alice_id, (LEN, ha)), (bob_id, (LEN, hb))]),
        "carol must get both masters' bytes"
    );
}
