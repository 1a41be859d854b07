//! End to end through a real Prosody and the real binary: alice creates a stream,
//! invites bob and carol as slaves, all three connect, alice streams a file and both
//! receive it byte for byte (checked by sha256).

mod common;

use std::time::Duration;

use common::c2s::{login, within};
use common::dsps::{Component, Dsps};
use common::prosody::Prosody;
use dsps::client::session::{invite_slaves, DspsClient, DspsEvent, DspsEvents, Seat};
use dsps::proto::query::CreateRequest;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

const SECRET: &str = "fanout-test-secret";
const DOMAIN: &str = "dsps.localhost";
const PAYLOAD_LEN: usize = 8 * 1024 * 1024;

struct Peer {
    dsps: DspsClient,
    events: DspsEvents,
    jid: String,
}

async fn peer(prosody: &Prosody, user: &str) -> Peer {
    let (x, inc) = login(prosody, user, "pw").await;
    Peer {
        jid: x.jid().to_string(),
        dsps: DspsClient::new(x.clone(), DOMAIN),
        events: DspsEvents::new(x, inc),
    }
}

async fn join(p: &mut Peer) -> Seat {
    let inv = within(p.events.wait_for_invitation(Duration::from_secs(10)))
        .await
        .expect("invitation");
    within(p.dsps.accept(&inv, &mut p.events))
        .await
        .expect("accept")
}

/// Reads blocks until `len` data bytes arrived; returns (sha256, ids seen).
async fn receive(
    mut r: dsps::client::session::BlockReader<tokio::net::tcp::OwnedReadHalf>,
    len: usize,
) -> (Vec<u8>, Vec<String>) {
    let mut h = Sha256::new();
    let mut got = 0;
    let mut ids = Vec::new();
    while got < len {
        let b = r
            .next_block()
            .await
            .expect("block")
            .expect("stream ended early");
        if !ids.contains(&b.id) {
            ids.push(b.id.clone());
        }
        got += b.data.len();
        h.update(&b.data);
    }
    assert_eq!(got, len, "received more than was sent");
    (h.finalize().to_vec(), ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn master_data_reaches_both_slaves_byte_for_byte() {
    let prosody = Prosody::start(
        &[(DOMAIN, SECRET)],
        &[("alice", "pw"), ("bob", "pw"), ("carol", "pw")],
    );
    let _dsps = Dsps::start(&prosody, &Component::new(DOMAIN, SECRET));
    let mut alice = peer(&prosody, "alice").await;
    let mut bob = peer(&prosody, "bob").await;
    let mut carol = peer(&prosody, "carol").await;

    let seat = within(alice.dsps.create(&CreateRequest::default()))
        .await
        .expect("create");
    assert_eq!(seat.info.protocol, "0.5");
    assert!(seat.peer_jid.starts_with("dsps.localhost/"));
    let report = within(alice.dsps.admin(
        &seat,
        &invite_slaves([bob.jid.as_str(), carol.jid.as_str()]),
    ))
    .await
    .expect("admin");
    assert!(report.peers.is_empty());
    let (bob_seat, carol_seat) = tokio::join!(join(&mut bob), join(&mut carol));
    assert_ne!(bob_seat.peer_jid, carol_seat.peer_jid);

    let a = within(alice.dsps.connect(&seat, None))
        .await
        .expect("alice connects");
    let b = within(bob.dsps.connect(&bob_seat, None))
        .await
        .expect("bob connects");
    let c = within(carol.dsps.connect(&carol_seat, None))
        .await
        .expect("carol connects");
    // The connect pushes are sent once a peer is on the data path: only then is
    // it sure to receive alice's first block.
    let mut connected = Vec::new();
    while connected.len() < 2 {
        match within(alice.events.next())
            .await
            .expect("alice's XMPP link")
        {
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
    let (_ar, mut aw) = a.into_split();
    let (br, _bw) = b.into_split();
    let (cr, _cw) = c.into_split();

    let mut payload = vec![0u8; PAYLOAD_LEN];
    rand::thread_rng().fill_bytes(&mut payload);
    let want = Sha256::digest(&payload).to_vec();
    let bob_rx = tokio::spawn(receive(br, PAYLOAD_LEN));
    let carol_rx = tokio::spawn(receive(cr, PAYLOAD_LEN));
    tokio::time::timeout(Duration::from_secs(60), aw.write_all(&payload))
        .await
        .expect("send within 60 s")
        .expect("send");
    let (bob_sum, bob_ids) = tokio::time::timeout(Duration::from_secs(60), bob_rx)
        .await
        .unwrap()
        .unwrap();
    let (carol_sum, carol_ids) = tokio::time::timeout(Duration::from_secs(60), carol_rx)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bob_sum, want, "bob's bytes differ");
    assert_eq!(carol_sum, want, "carol's bytes differ");
    // Every block names alice, the stream's first peer (id 0).
    assert_eq!(bob_ids, vec!["0".to_string()]);
    assert_eq!(carol_ids, vec!["0".to_string()]);
    let _ = aw.shutdown().await;
}
