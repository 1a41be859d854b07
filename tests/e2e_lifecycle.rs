//! A stream's whole life through a real Prosody and the real binary, with short
//! timers: expire, reject, timeout, drop, missing, 403, waiting + reconnect, wait
//! expiry, shutdown drain, public streams and minthroughput. Each test asserts the
//! stanzas and statuses every party sees, in order.

mod common;

use std::time::{Duration, Instant};

use common::blocks::{expect_closed, next_block, read_until_closed};
use common::c2s::{within, STEP};
use common::scenario::{dsps_error, Peer, Rig, DOMAIN};
use dsps::client::session::{drop_peer, invite_slaves, DspsEvent, Seat};
use dsps::proto::error::DspsError;
use dsps::proto::query::{self, AdminAction, AdminRequest, CreateRequest, Role, StatsResult};
use dsps::proto::xml::NS_DSPS;
use minidom::Element;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

const SECRET: &str = "lifecycle-test-secret";

fn admin(expire: Option<u64>, wait: Option<u64>, actions: Vec<AdminAction>) -> AdminRequest {
    AdminRequest {
        expire,
        wait,
        actions,
        comments: vec![],
    }
}

fn slave(jid: &str) -> AdminAction {
    AdminAction::Invite(Role::Slave, jid.to_string())
}

/// alice creates; bob (slave) accepts; neither is connected yet.
async fn alice_and_bob(rig: &Rig) -> (Peer, Seat, Peer, Seat) {
    alice_and_bob_waiting(rig, None).await
}

/// [`alice_and_bob`] with the invitation's `wait` attribute set.
async fn alice_and_bob_waiting(rig: &Rig, wait: Option<u64>) -> (Peer, Seat, Peer, Seat) {
    let [alice, mut bob] = rig.peers(["alice", "bob"]).await;
    let a_seat = alice.create(&CreateRequest::default()).await;
    alice
        .admin(&a_seat, &admin(None, wait, vec![slave(&bob.jid)]))
        .await;
    let b_seat = bob.accept_next().await;
    (alice, a_seat, bob, b_seat)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_invitation_expires_and_is_reported() {
    let rig = Rig::start(SECRET, &["alice", "bob"], "");
    let [mut alice, mut bob] = rig.peers(["alice", "bob"]).await;
    let seat = alice.create(&CreateRequest::default()).await;
    let t0 = Instant::now();
    alice
        .admin(&seat, &admin(Some(300), None, vec![slave(&bob.jid)]))
        .await;
    let inv = bob.invitation().await;
    assert_eq!(inv.invitation.expire, 300, "min(requested, default)");
    assert_eq!(
        alice.report().await,
        vec![("expire".into(), bob.jid.clone())]
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(250),
        "expired too early"
    );
    // The invitation is forgotten: a late accept goes nowhere.
    let late = bob
        .request_error("set", &inv.from, query::acknowledge("connect"))
        .await;
    assert_eq!(late.0, Some(DspsError::ItemNotFound));
    let who = alice.who(&seat).await;
    assert_eq!(who.peers.len(), 1, "only alice is left: {who:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_invitation_is_reported_and_only_the_first_answer_counts() {
    let rig = Rig::start(SECRET, &["alice", "bob"], "");
    let [mut alice, mut bob] = rig.peers(["alice", "bob"]).await;
    let seat = alice.create(&CreateRequest::default()).await;
    alice.admin(&seat, &invite_slaves([bob.jid.as_str()])).await;
    let inv = bob.invitation().await;
    bob.answer(&inv, false).await;
    assert_eq!(
        alice.report().await,
        vec![("reject".into(), bob.jid.clone())]
    );
    // A second answer (now an accept) is too late.
    bob.answer(&inv, true).await;
    bob.quiet_for(Duration::from_millis(300)).await;
    let who = alice.who(&seat).await;
    assert_eq!(who.peers.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_but_never_connected_times_out() {
    let rig = Rig::start(SECRET, &["alice", "bob"], "");
    let (mut alice, _seat, bob, b_seat) = alice_and_bob_waiting(&rig, Some(300)).await;
    assert_eq!(b_seat.info.wait, 300);
    assert_eq!(
        alice.report().await,
        vec![("timeout".into(), bob.jid.clone())]
    );
    // The seat is gone: its resource no longer answers bob.
    let r = bob
        .request_error("get", &b_seat.peer_jid, query::empty("who"))
        .await;
    assert_eq!(r.0, Some(DspsError::ItemNotFound));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_drops_a_slave_with_comments_and_presence() {
    let rig = Rig::start(SECRET, &["alice", "bob", "carol"], "");
    let (mut alice, a_seat, mut bob, b_seat) = alice_and_bob(&rig).await;
    let mut carol = rig.peer("carol").await;
    alice
        .admin(&a_seat, &invite_slaves([carol.jid.as_str()]))
        .await;
    let c_seat = carol.accept_next().await;
    let (_ar, _aw) = alice.connect(&a_seat).await;
    assert_eq!(bob.presence().await, ("connect".into(), alice.jid.clone()));
    assert_eq!(
        carol.presence().await,
        ("connect".into(), alice.jid.clone())
    );
    let (mut br, _bw) = bob.connect(&b_seat).await;
    assert_eq!(alice.presence().await, ("connect".into(), bob.jid.clone()));
    let (_cr, _cw) = carol.connect(&c_seat).await;
    assert_eq!(
        alice.presence().await,
        ("connect".into(), carol.jid.clone())
    );

    let mut req = drop_peer(&bob.jid);
    req.comments = vec![Element::builder("comment", NS_DSPS)
        .append("bye bob")
        .build()];
    let report = alice.admin(&a_seat, &req).await;
    assert!(report.is_empty());
    expect_closed(&mut br).await;
    match bob.event().await {
        DspsEvent::Dropped { peer_jid, comments } => {
            assert_eq!(peer_jid, b_seat.peer_jid);
            assert_eq!(comments[0].text(), "bye bob");
        }
        other => panic!("bob expected a drop notice, got {other:?}"),
    }
    assert_eq!(alice.presence().await, ("drop".into(), bob.jid.clone()));
    // A slave's change is not shown to other slaves.
    carol.quiet_for(Duration::from_millis(300)).await;
    let who = alice.who(&a_seat).await;
    assert!(who.peers.iter().all(|p| p.jid != bob.jid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_nobody_reports_missing_and_slaves_may_only_drop_themselves() {
    let rig = Rig::start(SECRET, &["alice", "bob"], "");
    let (mut alice, a_seat, mut bob, b_seat) = alice_and_bob(&rig).await;
    let report = alice.admin(&a_seat, &drop_peer("nobody@localhost/x")).await;
    assert_eq!(
        report,
        vec![("missing".into(), "nobody@localhost/x".into())]
    );
    // bob (slave) may not invite, nor drop alice; the whole request is refused.
    let r = bob
        .dsps
        .admin(
            &b_seat,
            &admin(
                None,
                None,
                vec![AdminAction::Drop(bob.jid.clone()), slave("x@localhost/y")],
            ),
        )
        .await;
    assert_eq!(dsps_error(r).0, Some(DspsError::Forbidden));
    let r = bob.dsps.admin(&b_seat, &drop_peer(&alice.jid)).await;
    assert_eq!(dsps_error(r).0, Some(DspsError::Forbidden));
    let who = alice.who(&a_seat).await;
    assert_eq!(who.peers.len(), 2, "the 403s changed nothing");
    // But bob may drop himself.
    bob.admin(&b_seat, &drop_peer(&bob.jid)).await;
    assert!(matches!(bob.event().await, DspsEvent::Dropped { .. }));
    assert_eq!(alice.presence().await, ("drop".into(), bob.jid.clone()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnected_peer_waits_and_reconnects_without_replay() {
    let rig = Rig::start(SECRET, &["alice", "bob"], "");
    let (mut alice, a_seat, mut bob, b_seat) = alice_and_bob(&rig).await;
    let (_ar, mut aw) = alice.connect(&a_seat).await;
    assert_eq!(bob.presence().await, ("connect".into(), alice.jid.clone()));
    let (br, bw) = bob.connect(&b_seat).await;
    assert_eq!(alice.presence().await, ("connect".into(), bob.jid.clone()));
    drop((br, bw));
    assert_eq!(alice.presence().await, ("waiting".into(), bob.jid.clone()));
    let who = alice.who(&a_seat).await;
    let bob_row = who.peers.iter().find(|p| p.jid == bob.jid).unwrap();
    assert_eq!(bob_row.status, "wait");
    // Sent while bob is away: never replayed to him.
    aw.write_all(b"while-away").await.unwrap();
    let (mut br, _bw) = bob.connect(&b_seat).await;
    assert_eq!(alice.presence().await, ("connect".into(), bob.jid.clone()));
    aw.write_all(b"after-return").await.unwrap();
    let first = next_block(&mut br).await;
    assert_eq!(
        &first.data[..],
        b"after-return",
        "first block after reconnect is whole and new"
    );
    // And again: the wait is not cumulative, a second disconnection works the same.
    drop((br, _bw));
    assert_eq!(alice.presence().await, ("waiting".into(), bob.jid.clone()));
    let (_br, _bw) = bob.connect(&b_seat).await;
    assert_eq!(alice.presence().await, ("connect".into(), bob.jid.clone()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_expiry_after_disconnection_drops_the_peer() {
    let rig = Rig::start(SECRET, &["alice", "bob"], "");
    let (mut alice, a_seat, mut bob, b_seat) = alice_and_bob_waiting(&rig, Some(400)).await;
    let (_ar, _aw) = alice.connect(&a_seat).await;
    assert_eq!(bob.presence().await, ("connect".into(), alice.jid.clone()));
    let (br, bw) = bob.connect(&b_seat).await;
    assert_eq!(alice.presence().await, ("connect".into(), bob.jid.clone()));
    let t0 = Instant::now();
    drop((br, bw));
    assert_eq!(alice.presence().await, ("waiting".into(), bob.jid.clone()));
    assert!(matches!(bob.event().await, DspsEvent::Dropped { .. }));
    assert_eq!(alice.presence().await, ("drop".into(), bob.jid.clone()));
    assert!(
        t0.elapsed() >= Duration::from_millis(350),
        "dropped before wait ran out"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_master_leaving_drains_everything_to_slaves_then_drops_them() {
    // More than the kernel's socket buffers hold (≤ 4 MiB here), less than bob's
    // queue (a 1024-block window, 16 MiB): when alice is gone, megabytes are still
    // queued in the relay for bob, and only the drain can deliver them.
    const LEN: usize = 8 * 1024 * 1024;
    let rig = Rig::start(SECRET, &["alice", "bob"], "window = 1024");
    let (alice, a_seat, mut bob, b_seat) = alice_and_bob(&rig).await;
    let (mut ar, mut aw) = alice.connect(&a_seat).await;
    // A tiny socket buffer keeps what bob has not read in the server's queue.
    let (br, _bw) = bob.connect_buffered(&b_seat, 4096).await;
    let payload: Vec<u8> = (0..LEN).map(|i| (i * 7 % 251) as u8).collect();
    let want = Sha256::digest(&payload).to_vec();
    aw.write_all(&payload).await.unwrap();
    aw.shutdown().await.unwrap();
    // The server closes alice's socket once it has read (and queued) all she sent.
    within(async { while ar.next_block().await.map(|b| b.is_some()).unwrap_or(false) {} }).await;
    // alice leaves for good; only now does bob start reading.
    alice.leave(&a_seat).await;
    let reader = tokio::spawn(read_until_closed(br));
    let got = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got.bytes, LEN,
        "every byte alice sent reached bob before he was dropped"
    );
    assert_eq!(got.sha256, want);
    // bob sees alice go, then his own drop; the stream is forgotten.
    let mut saw_drop = false;
    for _ in 0..4 {
        match bob.event().await {
            DspsEvent::Presence { push, .. } => {
                assert!(push.peers.iter().all(|(_, j)| *j == alice.jid))
            }
            DspsEvent::Dropped { .. } => {
                saw_drop = true;
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(saw_drop, "bob was dropped at shutdown");
    let r = bob
        .request_error("get", &b_seat.peer_jid, query::empty("stats"))
        .await;
    assert_eq!(
        r.0,
        Some(DspsError::ItemNotFound),
        "the stream is forgotten"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_stream_join_and_full() {
    let rig = Rig::start(SECRET, &["alice", "dave", "erin"], "");
    let [alice, mut dave, erin] = rig.peers(["alice", "dave", "erin"]).await;
    let create = CreateRequest {
        maxpublic: 1,
        ..CreateRequest::default()
    };
    let a_seat = alice.create(&create).await;
    // stats on the bare JID lists the public stream with its public JID.
    let listing = dave.ask("get", DOMAIN, query::empty("stats")).await;
    let stats: Vec<StatsResult> = listing_queries(&listing);
    assert_eq!(stats.len(), 1, "one public stream: {stats:?}");
    assert_eq!(stats[0].maxpublic, 1);
    assert_eq!(stats[0].peers.len(), 1);
    let public = stats[0].peers[0].clone();
    assert!(public.starts_with("dsps.localhost/"));
    // dave joins: slave rights and a seat.
    within(
        dave.dsps
            .request("set", &public, query::acknowledge("connect")),
    )
    .await
    .unwrap();
    let d_seat = within(dave.events.wait_for_seat(STEP)).await.unwrap();
    let s = dave.stats(&d_seat).await;
    assert_eq!((s.public, s.slavecount, s.mastercount), (1, 1, 1));
    // erin is one too many.
    let r = erin
        .request_error("set", &public, query::acknowledge("connect"))
        .await;
    assert_eq!(r.0, Some(DspsError::ServiceUnavailable));
    let who = alice.who(&a_seat).await;
    assert_eq!(
        who.peers.iter().filter(|p| p.role == Role::Slave).count(),
        1
    );
}

/// Every `<query type='stats'/>` naming a public stream in a bare-JID stats result.
fn listing_queries(iq: &Element) -> Vec<StatsResult> {
    iq.children()
        .filter_map(|q| StatsResult::try_from(q).ok())
        .filter(|s| !s.peers.is_empty())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_below_minthroughput_is_disconnected_not_dropped() {
    let rig = Rig::start(SECRET, &["alice", "bob", "carol"], "");
    let [mut alice, mut bob, mut carol] = rig.peers(["alice", "bob", "carol"]).await;
    let create = CreateRequest {
        minthroughput: Some("10KB".into()),
        ..CreateRequest::default()
    };
    let a_seat = alice.create(&create).await;
    assert_eq!(a_seat.info.minthroughput, "10KB");
    alice
        .admin(
            &a_seat,
            &invite_slaves([bob.jid.as_str(), carol.jid.as_str()]),
        )
        .await;
    let b_seat = bob.accept_next().await;
    let c_seat = carol.accept_next().await;
    let (_ar, mut aw) = alice.connect(&a_seat).await;
    let (_br, _bw) = bob.connect(&b_seat).await;
    let (mut cr, _cw) = carol.connect(&c_seat).await;
    for _ in 0..2 {
        assert_eq!(alice.presence().await.0, "connect");
    }
    // alice streams as fast as she can; carol reads everything, bob reads nothing.
    let t0 = Instant::now();
    let sender = tokio::spawn(async move {
        let chunk = vec![b'x'; 64 * 1024];
        while aw.write_all(&chunk).await.is_ok() {}
    });
    let carol_reads = tokio::spawn(async move {
        let mut n = 0u64;
        while let Ok(Some(b)) = cr.next_block().await {
            n += b.data.len() as u64;
        }
        n
    });
    // bob stalls the stream; after 16 s of the relay waiting on his socket he is
    // disconnected (status 'waiting', seat kept) and the stream moves on.
    let (status, who) = alice.presence_within(Duration::from_secs(40)).await;
    assert_eq!(
        (status.as_str(), who.as_str()),
        ("waiting", bob.jid.as_str())
    );
    assert!(
        t0.elapsed() >= Duration::from_secs(15),
        "checked before 16 s of waiting"
    );
    let who = alice.who(&a_seat).await;
    assert_eq!(who.peers.len(), 3, "disconnected, not dropped: {who:?}");
    let bob_row = who.peers.iter().find(|p| p.jid == bob.jid).unwrap();
    assert_eq!(bob_row.status, "wait");
    // carol, who kept up, is still connected and receiving.
    let carol_row = who.peers.iter().find(|p| p.jid == carol.jid).unwrap();
    assert_eq!(carol_row.status, "connect");
    sender.abort();
    carol_reads.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_that_come_and_go_release_everything() {
    let rig = Rig::start(SECRET, &["alice", "bob"], "");
    let [mut alice, mut bob] = rig.peers(["alice", "bob"]).await;
    let mut gone = Vec::new();
    let mut rss_after_warmup = 0;
    for round in 0..40 {
        let a_seat = alice.create(&CreateRequest::default()).await;
        alice
            .admin(&a_seat, &invite_slaves([bob.jid.as_str()]))
            .await;
        let b_seat = bob.accept_next().await;
        let (_ar, mut aw) = alice.connect(&a_seat).await;
        assert_eq!(bob.presence().await.0, "connect");
        let (mut br, _bw) = bob.connect(&b_seat).await;
        assert_eq!(alice.presence().await.0, "connect");
        aw.write_all(&[round as u8; 64 * 1024]).await.unwrap();
        let mut got = 0;
        while got < 64 * 1024 {
            got += next_block(&mut br).await.data.len();
        }
        // The XEP's recipe: close the stream, then drop yourself.
        aw.shutdown().await.unwrap();
        alice.leave(&a_seat).await;
        assert!(matches!(alice.event().await, DspsEvent::Dropped { .. }));
        // bob hears alice go (her close may show as 'waiting' first), then is
        // dropped with the stream, after his socket closed.
        let mut statuses = Vec::new();
        loop {
            match bob.event().await {
                DspsEvent::Presence { push, .. } => {
                    statuses.extend(push.peers.into_iter().map(|(s, _)| s))
                }
                DspsEvent::Dropped { .. } => break,
                other => panic!("bob: unexpected {other:?}"),
            }
        }
        assert_eq!(
            statuses.last().map(String::as_str),
            Some("drop"),
            "{statuses:?}"
        );
        expect_closed(&mut br).await;
        gone.push((a_seat, b_seat));
        if round == 9 {
            rss_after_warmup = rig.dsps.rss_kib();
        }
    }
    let rss_end = rig.dsps.rss_kib();
    assert!(
        rss_end < rss_after_warmup + 2048,
        "memory grew from {rss_after_warmup} KiB to {rss_end} KiB over 30 streams"
    );
    // Every resource of every finished stream is forgotten.
    for (a_seat, b_seat) in gone.iter().step_by(7) {
        let r = alice
            .request_error("get", &a_seat.peer_jid, query::empty("stats"))
            .await;
        assert_eq!(r.0, Some(DspsError::ItemNotFound));
        let r = bob
            .request_error("get", &b_seat.peer_jid, query::empty("who"))
            .await;
        assert_eq!(r.0, Some(DspsError::ItemNotFound));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_inviters_share_one_invitation_and_both_hear_the_rejection() {
    let rig = Rig::start(SECRET, &["alice", "dave", "carol"], "");
    let [mut alice, mut dave, mut carol] = rig.peers(["alice", "dave", "carol"]).await;
    let a_seat = alice.create(&CreateRequest::default()).await;
    let invite_dave = admin(
        None,
        None,
        vec![AdminAction::Invite(Role::Master, dave.jid.clone())],
    );
    alice.admin(&a_seat, &invite_dave).await;
    let d_seat = dave.accept_next().await;
    alice
        .admin(&a_seat, &admin(Some(5000), None, vec![slave(&carol.jid)]))
        .await;
    let first = carol.invitation().await;
    assert_eq!(first.invitation.inviters, vec![alice.jid.clone()]);
    // A later block without `expire` gets the default, but carol's invitation keeps
    // its own deadline: what the re-sent acknowledge advertises is what is left of it.
    dave.admin(&d_seat, &invite_slaves([carol.jid.as_str()]))
        .await;
    let second = carol.invitation().await;
    assert_eq!(second.from, first.from, "one pending invitation for carol");
    assert_eq!(
        second.invitation.inviters,
        vec![alice.jid.clone(), dave.jid.clone()]
    );
    assert!(
        second.invitation.expire <= 5000,
        "{}",
        second.invitation.expire
    );
    carol.answer(&second, false).await;
    assert_eq!(
        alice.report().await,
        vec![("reject".into(), carol.jid.clone())]
    );
    assert_eq!(
        dave.report().await,
        vec![("reject".into(), carol.jid.clone())]
    );
    let who = alice.who(&a_seat).await;
    assert!(who.peers.iter().all(|p| p.jid != carol.jid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejecting_a_public_stream_is_answered_and_ignored() {
    let rig = Rig::start(SECRET, &["alice", "erin"], "");
    let [alice, mut erin] = rig.peers(["alice", "erin"]).await;
    let create = CreateRequest {
        maxpublic: 2,
        ..CreateRequest::default()
    };
    let a_seat = alice.create(&create).await;
    let listing = erin.ask("get", DOMAIN, query::empty("stats")).await;
    let public = listing_queries(&listing)[0].peers[0].clone();
    within(
        erin.dsps
            .request("set", &public, query::acknowledge("drop")),
    )
    .await
    .expect("a rejection gets an empty result");
    erin.quiet_for(Duration::from_millis(300)).await;
    let s = alice.stats(&a_seat).await;
    assert_eq!((s.public, s.slavecount), (0, 0), "nothing changed");
}

/// The XEP's file-transfer recipe to the letter: the sender "dumps the contents of
/// file on the stream, closes the stream and drops itself" without waiting for
/// anything, and "DSPS will make sure the second party gets everything". The
/// slave's drop notice comes only after its data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_that_drops_itself_at_once_still_delivers_everything() {
    const LEN: usize = 8 * 1024 * 1024;
    let rig = Rig::start(SECRET, &["alice", "bob"], "window = 1024");
    let (mut alice, a_seat, mut bob, b_seat) = alice_and_bob(&rig).await;
    let (_ar, mut aw) = alice.connect(&a_seat).await;
    assert_eq!(bob.presence().await.0, "connect");
    let (br, _bw) = bob.connect_buffered(&b_seat, 4096).await;
    assert_eq!(alice.presence().await.0, "connect");
    let payload: Vec<u8> = (0..LEN).map(|i| (i * 13 % 241) as u8).collect();
    let want = Sha256::digest(&payload).to_vec();
    within(aw.write_all(&payload)).await.unwrap();
    aw.shutdown().await.unwrap();
    alice.leave(&a_seat).await;
    // bob hears that alice left; his own drop waits for his data. Her socket's end
    // may reach the relay before her drop does (then she shows as waiting first).
    let mut heard = bob.presence().await;
    if heard == ("waiting".into(), alice.jid.clone()) {
        heard = bob.presence().await;
    }
    assert_eq!(heard, ("drop".into(), alice.jid.clone()));
    bob.quiet_for(Duration::from_millis(300)).await;
    let got = read_until_closed(br).await;
    assert_eq!(got.bytes, LEN, "every byte alice wrote reached bob");
    assert_eq!(got.sha256, want);
    assert!(matches!(bob.event().await, DspsEvent::Dropped { .. }));
}
