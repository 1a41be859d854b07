//! End to end through a real Prosody and the real binary: alice creates a stream,
//! invites bob and carol as slaves, all three connect, alice streams a file and both
//! receive it byte for byte (checked by sha256).

mod common;

use std::time::Duration;

use common::blocks::read_payload;
use common::scenario::Rig;
use dsps::client::session::{invite_slaves, DspsEvent};
use dsps::proto::query::CreateRequest;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

const SECRET: &str = "fanout-test-secret";
const PAYLOAD_LEN: usize = 8 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn master_data_reaches_both_slaves_byte_for_byte() {
    let rig = Rig::start(SECRET, &["alice", "bob", "carol"], "");
    let [mut alice, mut bob, mut carol] = rig.peers(["alice", "bob", "carol"]).await;

    let seat = alice.create(&CreateRequest::default()).await;
    assert_eq!(seat.info.protocol, "0.5");
    assert!(seat.peer_jid.starts_with("dsps.localhost/"));
    let report = alice
        .admin(
            &seat,
            &invite_slaves([bob.jid.as_str(), carol.jid.as_str()]),
        )
        .await;
    assert!(report.is_empty());
    let (bob_seat, carol_seat) = tokio::join!(bob.accept_next(), carol.accept_next());
    assert_ne!(bob_seat.peer_jid, carol_seat.peer_jid);

    let (_ar, mut aw) = alice.connect(&seat).await;
    let (br, _bw) = bob.connect(&bob_seat).await;
    let (cr, _cw) = carol.connect(&carol_seat).await;
    // The connect pushes are sent once a peer is on the data path: only then is
    // it sure to receive alice's first block.
    let mut connected = Vec::new();
    while connected.len() < 2 {
        match alice.event().await {
            DspsEvent::Presence { push, .. } => {
                for (status, jid) in push.peers {
                    assert_eq!(status, "connect");
                    connected.push(jid);
                }
            }
            other => panic!("alice expected presence pushes, got {other:?}"),
        }
    }
    connected.sort();
    let mut want_peers = vec![bob.jid.clone(), carol.jid.clone()];
    want_peers.sort();
    assert_eq!(connected, want_peers);

    let mut payload = vec![0u8; PAYLOAD_LEN];
    rand::thread_rng().fill_bytes(&mut payload);
    let want = Sha256::digest(&payload).to_vec();
    let bob_rx = tokio::spawn(read_payload(br, PAYLOAD_LEN));
    let carol_rx = tokio::spawn(read_payload(cr, PAYLOAD_LEN));
    tokio::time::timeout(Duration::from_secs(60), aw.write_all(&payload))
        .await
        .expect("send within 60 s")
        .expect("send");
    let bob_got = tokio::time::timeout(Duration::from_secs(60), bob_rx)
        .await
        .unwrap()
        .unwrap();
    let carol_got = tokio::time::timeout(Duration::from_secs(60), carol_rx)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bob_got.sha256, want, "bob's bytes differ");
    assert_eq!(carol_got.sha256, want, "carol's bytes differ");
    // Every block names alice, the stream's first peer (id 0).
    assert_eq!(bob_got.ids, vec!["0".to_string()]);
    assert_eq!(carol_got.ids, vec!["0".to_string()]);
    let _ = aw.shutdown().await;
}
