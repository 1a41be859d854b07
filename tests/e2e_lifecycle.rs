//! A stream's whole life through a real Prosody and the real binary, with short
//! timers: expire, reject, timeout, drop, missing, 403, waiting + reconnect, wait
//! expiry, shutdown drain, public streams and minthroughput. Each test asserts the
//! stanzas and statuses every party sees, in order.

mod common;

use std::time::{Duration, Instant};

use common::c2s::{login, within};
use common::dsps::{Component, Dsps};
use common::prosody::Prosody;
use dsps::client::session::{
    drop_peer, invite_slaves, BlockReader, ClientError, DspsClient, DspsEvent, DspsEvents, Seat,
};
use dsps::proto::error::DspsError;
use dsps::proto::query::{self, AdminAction, AdminRequest, CreateRequest, Role, StatsResult};
use dsps::proto::xml::NS_DSPS;
use minidom::Element;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

const SECRET: &str = "lifecycle-test-secret";
const DOMAIN: &str = "dsps.localhost";
/// Bound on waiting for one event.
const EVENT: Duration = Duration::from_secs(10);

struct World {
    prosody: Prosody,
    _dsps: Dsps,
}

fn world(users: &[&str], extra: &str) -> World {
    let accounts: Vec<(&str, &str)> = users.iter().map(|u| (*u, "pw")).collect();
    let prosody = Prosody::start(&[(DOMAIN, SECRET)], &accounts);
    let dsps = Dsps::start(&prosody, &Component::new(DOMAIN, SECRET).extra(extra));
    World {
        prosody,
        _dsps: dsps,
    }
}

struct User {
    jid: String,
    dsps: DspsClient,
    events: DspsEvents,
}

async fn user(w: &World, name: &str) -> User {
    let (x, inc) = login(&w.prosody, name, "pw").await;
    User {
        jid: x.jid().to_string(),
        dsps: DspsClient::new(x.clone(), DOMAIN),
        events: DspsEvents::new(x, inc),
    }
}

impl User {
    async fn event(&mut self) -> DspsEvent {
        self.event_within(EVENT).await
    }

    async fn event_within(&mut self, bound: Duration) -> DspsEvent {
        tokio::time::timeout(bound, self.events.next())
            .await
            .unwrap_or_else(|_| panic!("{}: no event within {bound:?}", self.jid))
            .expect("XMPP connection ended")
    }

    async fn presence(&mut self) -> (String, String) {
        self.presence_within(EVENT).await
    }

    async fn presence_within(&mut self, bound: Duration) -> (String, String) {
        match self.event_within(bound).await {
            DspsEvent::Presence { push, .. } => {
                assert_eq!(push.peers.len(), 1, "one change per push");
                push.peers[0].clone()
            }
            other => panic!("{}: expected a presence push, got {other:?}", self.jid),
        }
    }

    async fn report(&mut self) -> Vec<(String, String)> {
        match self.event().await {
            DspsEvent::AdminReport { report, .. } => report.peers,
            other => panic!("{}: expected an admin report, got {other:?}", self.jid),
        }
    }

    /// Nothing arrives for `d` (used only to check absence, never to synchronise).
    async fn quiet_for(&mut self, d: Duration) {
        if let Ok(Some(e)) = tokio::time::timeout(d, self.events.next()).await {
            panic!("{}: expected no event, got {e:?}", self.jid);
        }
    }

    /// Creates a stream (we are its master).
    async fn create(&self, req: &CreateRequest) -> Seat {
        within(self.dsps.create(req)).await.expect("create")
    }

    /// An admin request that must succeed; returns its immediate report.
    async fn admin(&self, seat: &Seat, req: &AdminRequest) -> Vec<(String, String)> {
        within(self.dsps.admin(seat, req))
            .await
            .expect("admin")
            .peers
    }

    async fn join(&mut self) -> Seat {
        let inv = within(self.events.wait_for_invitation(EVENT))
            .await
            .expect("invitation");
        within(self.dsps.accept(&inv, &mut self.events))
            .await
            .expect("accept")
    }

    async fn connect(&self, seat: &Seat) -> (BlockReader<OwnedReadHalf>, OwnedWriteHalf) {
        within(self.dsps.connect(seat, None))
            .await
            .expect("relay handshake")
            .into_split()
    }
}

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

fn dsps_code(r: Result<impl std::fmt::Debug, ClientError>) -> Option<u16> {
    match r {
        Err(ClientError::Dsps(e, _)) => e.map(|e| e.code()),
        other => panic!("expected a DSPS error, got {other:?}"),
    }
}

async fn eof(r: &mut BlockReader<OwnedReadHalf>) {
    let end = tokio::time::timeout(EVENT, r.next_block())
        .await
        .expect("EOF in time");
    assert!(
        matches!(end, Ok(None) | Err(_)),
        "expected the socket closed, got {end:?}"
    );
}

/// alice creates; bob (slave) accepts; both connected. Presence pushes consumed.
async fn alice_and_bob(w: &World) -> (User, Seat, User, Seat) {
    alice_and_bob_waiting(w, None).await
}

/// [`alice_and_bob`] with the invitation's `wait` attribute set.
async fn alice_and_bob_waiting(w: &World, wait: Option<u64>) -> (User, Seat, User, Seat) {
    let alice = user(w, "alice").await;
    let mut bob = user(w, "bob").await;
    let a_seat = alice.create(&CreateRequest::default()).await;
    alice
        .admin(&a_seat, &admin(None, wait, vec![slave(&bob.jid)]))
        .await;
    let b_seat = bob.join().await;
    (alice, a_seat, bob, b_seat)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_invitation_expires_and_is_reported() {
    let w = world(&["alice", "bob"], "");
    let mut alice = user(&w, "alice").await;
    let mut bob = user(&w, "bob").await;
    let seat = alice.create(&CreateRequest::default()).await;
    let t0 = Instant::now();
    alice
        .admin(&seat, &admin(Some(300), None, vec![slave(&bob.jid)]))
        .await;
    let inv = within(bob.events.wait_for_invitation(EVENT)).await.unwrap();
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
        .dsps
        .request("set", &inv.from, query::acknowledge("connect"))
        .await;
    assert_eq!(dsps_code(late), Some(404));
    let who = within(alice.dsps.who(&seat)).await.unwrap();
    assert_eq!(who.peers.len(), 1, "only alice is left: {who:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_invitation_is_reported_and_only_the_first_answer_counts() {
    let w = world(&["alice", "bob"], "");
    let mut alice = user(&w, "alice").await;
    let mut bob = user(&w, "bob").await;
    let seat = alice.create(&CreateRequest::default()).await;
    alice.admin(&seat, &invite_slaves([bob.jid.as_str()])).await;
    let inv = within(bob.events.wait_for_invitation(EVENT)).await.unwrap();
    within(bob.dsps.answer(&inv, false)).await.unwrap();
    assert_eq!(
        alice.report().await,
        vec![("reject".into(), bob.jid.clone())]
    );
    // A second answer (now an accept) is too late.
    within(bob.dsps.answer(&inv, true)).await.unwrap();
    bob.quiet_for(Duration::from_millis(300)).await;
    let who = within(alice.dsps.who(&seat)).await.unwrap();
    assert_eq!(who.peers.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_but_never_connected_times_out() {
    let w = world(&["alice", "bob"], "");
    let (mut alice, _seat, bob, b_seat) = alice_and_bob_waiting(&w, Some(300)).await;
    assert_eq!(b_seat.info.wait, 300);
    assert_eq!(
        alice.report().await,
        vec![("timeout".into(), bob.jid.clone())]
    );
    // The seat is gone: its resource no longer answers bob.
    let r = bob
        .dsps
        .request("get", &b_seat.peer_jid, query::empty("who"))
        .await;
    assert_eq!(dsps_code(r), Some(404));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_drops_a_slave_with_comments_and_presence() {
    let w = world(&["alice", "bob", "carol"], "");
    let (mut alice, a_seat, mut bob, b_seat) = alice_and_bob(&w).await;
    let mut carol = user(&w, "carol").await;
    alice
        .admin(&a_seat, &invite_slaves([carol.jid.as_str()]))
        .await;
    let c_seat = carol.join().await;
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
    eof(&mut br).await;
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
    let who = within(alice.dsps.who(&a_seat)).await.unwrap();
    assert!(who.peers.iter().all(|p| p.jid != bob.jid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_nobody_reports_missing_and_slaves_may_only_drop_themselves() {
    let w = world(&["alice", "bob"], "");
    let (mut alice, a_seat, mut bob, b_seat) = alice_and_bob(&w).await;
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
    assert_eq!(dsps_code(r), Some(403));
    let r = bob.dsps.admin(&b_seat, &drop_peer(&alice.jid)).await;
    assert_eq!(dsps_code(r), Some(403));
    let who = within(alice.dsps.who(&a_seat)).await.unwrap();
    assert_eq!(who.peers.len(), 2, "the 403s changed nothing");
    // But bob may drop himself.
    bob.admin(&b_seat, &drop_peer(&bob.jid)).await;
    assert!(matches!(bob.event().await, DspsEvent::Dropped { .. }));
    assert_eq!(alice.presence().await, ("drop".into(), bob.jid.clone()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnected_peer_waits_and_reconnects_without_replay() {
    let w = world(&["alice", "bob"], "");
    let (mut alice, a_seat, mut bob, b_seat) = alice_and_bob(&w).await;
    let (_ar, mut aw) = alice.connect(&a_seat).await;
    assert_eq!(bob.presence().await, ("connect".into(), alice.jid.clone()));
    let (br, bw) = bob.connect(&b_seat).await;
    assert_eq!(alice.presence().await, ("connect".into(), bob.jid.clone()));
    drop((br, bw));
    assert_eq!(alice.presence().await, ("waiting".into(), bob.jid.clone()));
    let who = within(alice.dsps.who(&a_seat)).await.unwrap();
    let bob_row = who.peers.iter().find(|p| p.jid == bob.jid).unwrap();
    assert_eq!(bob_row.status, "wait");
    // Sent while bob is away: never replayed to him.
    aw.write_all(b"while-away").await.unwrap();
    let (mut br, _bw) = bob.connect(&b_seat).await;
    assert_eq!(alice.presence().await, ("connect".into(), bob.jid.clone()));
    aw.write_all(b"after-return").await.unwrap();
    let first = within(br.next_block()).await.unwrap().unwrap();
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
    let w = world(&["alice", "bob"], "");
    let (mut alice, a_seat, mut bob, b_seat) = alice_and_bob_waiting(&w, Some(400)).await;
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
    let w = world(&["alice", "bob"], "window = 1024");
    let (alice, a_seat, mut bob, b_seat) = alice_and_bob(&w).await;
    let (mut ar, mut aw) = alice.connect(&a_seat).await;
    // A tiny socket buffer keeps what bob has not read in the server's queue.
    let (mut br, _bw) = within(bob.dsps.connect_with(&b_seat, None, Some(4096)))
        .await
        .expect("bob connects")
        .into_split();
    let payload: Vec<u8> = (0..LEN).map(|i| (i * 7 % 251) as u8).collect();
    let want = Sha256::digest(&payload).to_vec();
    aw.write_all(&payload).await.unwrap();
    aw.shutdown().await.unwrap();
    // The server closes alice's socket once it has read (and queued) all she sent.
    within(async { while ar.next_block().await.map(|b| b.is_some()).unwrap_or(false) {} }).await;
    // alice leaves for good; only now does bob start reading.
    within(alice.dsps.leave(&a_seat)).await.unwrap();
    let reader = tokio::spawn(async move {
        let (mut h, mut got) = (Sha256::new(), 0usize);
        while let Some(b) = br.next_block().await.expect("well-formed blocks") {
            got += b.data.len();
            h.update(&b.data);
        }
        (got, h.finalize().to_vec())
    });
    let (got, sum) = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got, LEN,
        "every byte alice sent reached bob before he was dropped"
    );
    assert_eq!(sum, want);
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
        .dsps
        .request("get", &b_seat.peer_jid, query::empty("stats"))
        .await;
    assert_eq!(dsps_code(r), Some(404), "the stream is forgotten");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_stream_join_and_full() {
    let w = world(&["alice", "dave", "erin"], "");
    let alice = user(&w, "alice").await;
    let mut dave = user(&w, "dave").await;
    let erin = user(&w, "erin").await;
    let create = CreateRequest {
        maxpublic: 1,
        ..CreateRequest::default()
    };
    let a_seat = alice.create(&create).await;
    // stats on the bare JID lists the public stream with its public JID.
    let listing = within(
        dave.dsps
            .xmpp()
            .request("get", DOMAIN, query::empty("stats"), EVENT),
    )
    .await
    .unwrap();
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
    let d_seat = within(dave.events.wait_for_seat(EVENT)).await.unwrap();
    let s = within(dave.dsps.stats(&d_seat)).await.unwrap();
    assert_eq!((s.public, s.slavecount, s.mastercount), (1, 1, 1));
    // erin is one too many.
    let r = erin
        .dsps
        .request("set", &public, query::acknowledge("connect"))
        .await;
    assert_eq!(dsps_code(r), Some(503));
    let who = within(alice.dsps.who(&a_seat)).await.unwrap();
    assert_eq!(
        who.peers.iter().filter(|p| p.role == Role::Slave).count(),
        1
    );
    let _ = DspsError::ServiceUnavailable;
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
    let w = world(&["alice", "bob", "carol"], "");
    let mut alice = user(&w, "alice").await;
    let mut bob = user(&w, "bob").await;
    let mut carol = user(&w, "carol").await;
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
    let b_seat = bob.join().await;
    let c_seat = carol.join().await;
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
    let who = within(alice.dsps.who(&a_seat)).await.unwrap();
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
    let w = world(&["alice", "bob"], "");
    let mut alice = user(&w, "alice").await;
    let mut bob = user(&w, "bob").await;
    let mut gone = Vec::new();
    let mut rss_after_warmup = 0;
    for round in 0..40 {
        let a_seat = alice.create(&CreateRequest::default()).await;
        alice
            .admin(&a_seat, &invite_slaves([bob.jid.as_str()]))
            .await;
        let b_seat = bob.join().await;
        let (_ar, mut aw) = alice.connect(&a_seat).await;
        assert_eq!(bob.presence().await.0, "connect");
        let (mut br, _bw) = bob.connect(&b_seat).await;
        assert_eq!(alice.presence().await.0, "connect");
        aw.write_all(&[round as u8; 64 * 1024]).await.unwrap();
        let mut got = 0;
        while got < 64 * 1024 {
            got += within(br.next_block()).await.unwrap().unwrap().data.len();
        }
        // The XEP's recipe: close the stream, then drop yourself.
        aw.shutdown().await.unwrap();
        within(alice.dsps.leave(&a_seat)).await.unwrap();
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
        eof(&mut br).await;
        gone.push((a_seat, b_seat));
        if round == 9 {
            rss_after_warmup = w._dsps.rss_kib();
        }
    }
    let rss_end = w._dsps.rss_kib();
    assert!(
        rss_end < rss_after_warmup + 2048,
        "memory grew from {rss_after_warmup} KiB to {rss_end} KiB over 30 streams"
    );
    // Every resource of every finished stream is forgotten.
    for (a_seat, b_seat) in gone.iter().step_by(7) {
        let r = alice
            .dsps
            .request("get", &a_seat.peer_jid, query::empty("stats"))
            .await;
        assert_eq!(dsps_code(r), Some(404));
        let r = bob
            .dsps
            .request("get", &b_seat.peer_jid, query::empty("who"))
            .await;
        assert_eq!(dsps_code(r), Some(404));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_inviters_share_one_invitation_and_both_hear_the_rejection() {
    let w = world(&["alice", "dave", "carol"], "");
    let mut alice = user(&w, "alice").await;
    let mut dave = user(&w, "dave").await;
    let mut carol = user(&w, "carol").await;
    let a_seat = alice.create(&CreateRequest::default()).await;
    let invite_dave = admin(
        None,
        None,
        vec![AdminAction::Invite(Role::Master, dave.jid.clone())],
    );
    alice.admin(&a_seat, &invite_dave).await;
    let d_seat = dave.join().await;
    alice
        .admin(&a_seat, &admin(Some(5000), None, vec![slave(&carol.jid)]))
        .await;
    let first = within(carol.events.wait_for_invitation(EVENT))
        .await
        .unwrap();
    assert_eq!(first.invitation.inviters, vec![alice.jid.clone()]);
    // A later block without `expire` gets the default, but carol's invitation keeps
    // its own deadline: what the re-sent acknowledge advertises is what is left of it.
    dave.admin(&d_seat, &invite_slaves([carol.jid.as_str()]))
        .await;
    let second = within(carol.events.wait_for_invitation(EVENT))
        .await
        .unwrap();
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
    within(carol.dsps.answer(&second, false)).await.unwrap();
    assert_eq!(
        alice.report().await,
        vec![("reject".into(), carol.jid.clone())]
    );
    assert_eq!(
        dave.report().await,
        vec![("reject".into(), carol.jid.clone())]
    );
    let who = within(alice.dsps.who(&a_seat)).await.unwrap();
    assert!(who.peers.iter().all(|p| p.jid != carol.jid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejecting_a_public_stream_is_answered_and_ignored() {
    let w = world(&["alice", "erin"], "");
    let alice = user(&w, "alice").await;
    let mut erin = user(&w, "erin").await;
    let create = CreateRequest {
        maxpublic: 2,
        ..CreateRequest::default()
    };
    let a_seat = alice.create(&create).await;
    let listing = within(
        erin.dsps
            .xmpp()
            .request("get", DOMAIN, query::empty("stats"), EVENT),
    )
    .await
    .unwrap();
    let public = listing_queries(&listing)[0].peers[0].clone();
    within(
        erin.dsps
            .request("set", &public, query::acknowledge("drop")),
    )
    .await
    .expect("a rejection gets an empty result");
    erin.quiet_for(Duration::from_millis(300)).await;
    let s = within(alice.dsps.stats(&a_seat)).await.unwrap();
    assert_eq!((s.public, s.slavecount), (0, 0), "nothing changed");
}

/// The XEP's file-transfer recipe to the letter: the sender "dumps the contents of
/// file on the stream, closes the stream and drops itself" without waiting for
/// anything, and "DSPS will make sure the second party gets everything". The
/// slave's drop notice comes only after its data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_that_drops_itself_at_once_still_delivers_everything() {
    const LEN: usize = 8 * 1024 * 1024;
    let w = world(&["alice", "bob"], "window = 1024");
    let (mut alice, a_seat, mut bob, b_seat) = alice_and_bob(&w).await;
    let (_ar, mut aw) = alice.connect(&a_seat).await;
    assert_eq!(bob.presence().await.0, "connect");
    let (mut br, _bw) = within(bob.dsps.connect_with(&b_seat, None, Some(4096)))
        .await
        .expect("bob connects")
        .into_split();
    assert_eq!(alice.presence().await.0, "connect");
    let payload: Vec<u8> = (0..LEN).map(|i| (i * 13 % 241) as u8).collect();
    let want = Sha256::digest(&payload).to_vec();
    within(aw.write_all(&payload)).await.unwrap();
    aw.shutdown().await.unwrap();
    within(alice.dsps.leave(&a_seat)).await.unwrap();
    // bob hears that alice left; his own drop waits for his data.
    assert_eq!(bob.presence().await, ("drop".into(), alice.jid.clone()));
    bob.quiet_for(Duration::from_millis(300)).await;
    let (mut h, mut got) = (Sha256::new(), 0usize);
    while let Some(b) = within(br.next_block()).await.expect("well-formed blocks") {
        got += b.data.len();
        h.update(&b.data);
    }
    assert_eq!(got, LEN, "every byte alice wrote reached bob");
    assert_eq!(h.finalize().to_vec(), want);
    assert!(matches!(bob.event().await, DspsEvent::Dropped { .. }));
}
