//! What the service tells its clients, through a real Prosody and the real binary:
//! `who` (PROFILE 15, 16), `stats`, presence pushes, and disco#info, ping and version
//! on the bare JID (PROFILE 22).

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::blocks::next_block;
use common::c2s::{within, STEP};
use common::scenario::{alice_streams_to_bob, Peer, Rig, DOMAIN};
use dsps::client::session::Seat;
use dsps::proto::query::{AdminAction, AdminRequest, CreateRequest, PresencePush, Role, WhoPeer};
use dsps::proto::xml::NS_DSPS;
use minidom::Element;
use tokio::io::AsyncWriteExt;

const SECRET: &str = "info-test-secret";
const WAIT_DEFAULT_MS: u64 = 30_000;
const EXPIRE_DEFAULT_MS: u64 = 45_000;
/// The `wait` alice asks for her invitees (below the default, so it applies).
const INVITE_WAIT_MS: u64 = 20_000;
const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
const NS_PING: &str = "urn:xmpp:ping";
const NS_VERSION: &str = "jabber:iq:version";

fn extra() -> String {
    format!("[timeouts]\nwait = {WAIT_DEFAULT_MS}\nexpire = {EXPIRE_DEFAULT_MS}\n")
}

/// Checks PROFILE 16's shape: five fields, each a number with at most one decimal and
/// a unit in B KB MB GB TB. Returns the fields in bytes per second.
fn throughput_fields(s: &str) -> Vec<f64> {
    let fields: Vec<&str> = s.split('/').collect();
    assert_eq!(fields.len(), 5, "throughput {s:?} must have five fields");
    fields
        .iter()
        .map(|f| {
            let split = f
                .find(|c: char| c.is_ascii_alphabetic())
                .unwrap_or_else(|| panic!("field {f:?} of {s:?} has no unit"));
            let (num, unit) = f.split_at(split);
            let power = ["B", "KB", "MB", "GB", "TB"]
                .iter()
                .position(|u| *u == unit)
                .unwrap_or_else(|| panic!("field {f:?} of {s:?} has unit {unit:?}"));
            let (int, frac) = num.split_once('.').unwrap_or((num, ""));
            assert!(
                !int.is_empty()
                    && int.bytes().all(|b| b.is_ascii_digit())
                    && frac.len() <= 1
                    && frac.bytes().all(|b| b.is_ascii_digit())
                    && !num.ends_with('.'),
                "field {f:?} of {s:?} is not a number with at most one decimal"
            );
            num.parse::<f64>().unwrap() * 1024f64.powi(power as i32)
        })
        .collect()
}

fn who_entry<'a>(peers: &'a [WhoPeer], jid: &str) -> &'a WhoPeer {
    peers
        .iter()
        .find(|p| p.jid == jid)
        .unwrap_or_else(|| panic!("who has no {jid}: {peers:?}"))
}

async fn expect_presence(p: &mut Peer, from: &Seat, status: &str, about: &str) {
    let got = p.next_presence(STEP).await;
    let want = (
        from.peer_jid.clone(),
        PresencePush {
            peers: vec![(status.to_string(), about.to_string())],
        },
    );
    assert_eq!(
        got,
        Some(want),
        "{}'s next presence push must be '{status}' for {about}, from its own peer resource",
        p.jid
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_stats_and_presence_pushes() {
    let rig = Rig::start(SECRET, &["alice", "bob", "carol", "dave"], &extra());
    let [mut alice, mut bob, mut carol, mut dave] =
        rig.peers(["alice", "bob", "carol", "dave"]).await;

    let comment = Element::builder("comment", NS_DSPS)
        .append("e2e info stream")
        .build();
    let a_seat = alice
        .create(&CreateRequest {
            minthroughput: Some("1.5KB".into()),
            comments: vec![comment],
            ..CreateRequest::default()
        })
        .await;
    let admin = AdminRequest {
        wait: Some(INVITE_WAIT_MS),
        actions: [&bob, &carol, &dave]
            .iter()
            .map(|p| AdminAction::Invite(Role::Slave, p.jid.clone()))
            .collect(),
        ..AdminRequest::default()
    };
    alice.admin(&a_seat, &admin).await;
    let (b_seat, c_seat) = tokio::join!(bob.accept_next(), carol.accept_next());
    // dave gets his invitation and sits on it: his seat stays 'expire'.
    let dave_inv = dave.invitation().await;
    assert_eq!(dave_inv.invitation.expire, EXPIRE_DEFAULT_MS);
    assert_eq!(b_seat.info.wait, INVITE_WAIT_MS, "admin wait applies");
    assert_eq!(
        a_seat.info.wait, WAIT_DEFAULT_MS,
        "creator gets waitdefault"
    );

    // bob (slave) connects: alice (master) hears it from her own peer resource.
    let (mut br, bw) = bob.connect(&b_seat).await;
    expect_presence(&mut alice, &a_seat, "connect", &bob.jid).await;
    // alice (master) connects: both slaves hear it. carol's first push is about
    // alice, so she heard nothing about bob (a slave's change goes to masters only).
    let (ar, mut aw) = alice.connect(&a_seat).await;
    expect_presence(&mut bob, &b_seat, "connect", &alice.jid).await;
    expect_presence(&mut carol, &c_seat, "connect", &alice.jid).await;

    // who from the master: everyone, with type, id, status and throughput.
    let who = alice.who(&a_seat).await;
    assert_eq!(who.peers.len(), 4, "{who:?}");
    for (jid, role, id, status) in [
        (&alice.jid, Role::Master, "0", "connect"),
        (&bob.jid, Role::Slave, "1", "connect"),
        (&carol.jid, Role::Slave, "2", "wait"),
        (&dave.jid, Role::Slave, "3", "expire"),
    ] {
        let p = who_entry(&who.peers, jid);
        assert_eq!(
            (p.role, p.id.as_str(), p.status.as_str()),
            (role, id, status),
            "who entry of {jid}"
        );
        throughput_fields(&p.throughput);
    }
    // who from a slave: the masters only.
    let who = bob.who(&b_seat).await;
    assert_eq!(who.peers.len(), 1, "a slave sees only masters: {who:?}");
    assert_eq!(
        (who.peers[0].jid.as_str(), who.peers[0].role),
        (alice.jid.as_str(), Role::Master)
    );

    // stats: every attribute, from the config and the stream.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let stats = alice.stats(&a_seat).await;
    assert!(
        stats.init <= now && stats.init + 60 >= now,
        "init {} is not about now ({now})",
        stats.init
    );
    assert_eq!(stats.protocol, "0.5");
    assert_eq!(
        stats.port, a_seat.info.port,
        "port = the advertised relay port"
    );
    assert_eq!(stats.minthroughput, "1.5KB");
    assert_eq!(stats.waitdefault, WAIT_DEFAULT_MS);
    assert_eq!(stats.expiredefault, EXPIRE_DEFAULT_MS);
    assert_eq!(stats.wait, WAIT_DEFAULT_MS, "alice's own wait");
    assert_eq!((stats.public, stats.maxpublic), (0, 0));
    // Registered = invited or accepted (the XEP's who lists invitees as 'expire').
    assert_eq!(
        (stats.mastercount, stats.slavecount, stats.relaycount),
        (1, 3, 0)
    );
    assert!(stats.features.is_empty(), "no options are configured");
    assert!(stats.peers.is_empty());
    assert_eq!(stats.comments.len(), 1);
    assert_eq!(stats.comments[0].text(), "e2e info stream");
    let bob_stats = bob.stats(&b_seat).await;
    assert_eq!(bob_stats.wait, INVITE_WAIT_MS, "bob's own wait");
    assert_eq!(bob_stats.comments, stats.comments);
    assert_eq!(bob_stats.slavecount, 3);

    // Traffic shows up in who once the receiver has it (the second in progress
    // counts) and stays after the burst is over (idle time is not transfer time).
    // A connection publishes its figures before it waits, so the wait here is for
    // that event, bounded; nothing depends on how the burst fell into seconds.
    const BURST: usize = 1024 * 1024;
    within(aw.write_all(&vec![7u8; BURST]))
        .await
        .expect("alice sends");
    let mut got = 0;
    while got < BURST {
        got += next_block(&mut br).await.data.len();
    }
    let check = |who: &[WhoPeer]| {
        let a = throughput_fields(&who_entry(who, &alice.jid).throughput);
        let b = throughput_fields(&who_entry(who, &bob.jid).throughput);
        let c = throughput_fields(&who_entry(who, &carol.jid).throughput);
        assert!(c.iter().all(|&f| f == 0.0), "carol moved no data: {c:?}");
        for f in a.iter().chain(&b) {
            // At most the burst (bob's side adds block headers) in one second.
            assert!(
                *f <= BURST as f64 * 1.1,
                "more than the burst per second: alice {a:?}, bob {b:?}"
            );
        }
        a.iter().chain(&b).all(|&f| f > 0.0)
    };
    who_until(
        &alice,
        &a_seat,
        "who shows the burst for alice and bob",
        |who| check(who),
    )
    .await;
    let who = alice.who(&a_seat).await;
    assert!(
        check(&who.peers),
        "the burst's figures must stay while nothing moves: {:?}",
        who.peers
    );

    // carol connects: alice's next push is about carol (none came about herself).
    let (_cr, _cw) = carol.connect(&c_seat).await;
    expect_presence(&mut alice, &a_seat, "connect", &carol.jid).await;
    // bob (slave) drops his data connection: alice (master) hears 'waiting'.
    drop((br, bw));
    expect_presence(&mut alice, &a_seat, "waiting", &bob.jid).await;
    // alice drops hers: each slave's next push is about her, so neither heard about
    // the other slave's connect or disconnect.
    drop((ar, aw));
    expect_presence(&mut carol, &c_seat, "waiting", &alice.jid).await;
    expect_presence(&mut bob, &b_seat, "waiting", &alice.jid).await;
}

/// How long a `who` figure may take to reflect what the test just saw happen: the
/// relay publishes before it waits, so this only bounds a slow machine.
const WHO_SETTLES: Duration = Duration::from_secs(5);
/// Pause between two `who` polls of a bounded wait.
const WHO_POLL: Duration = Duration::from_millis(100);

/// Asks `who` through `seat` until `done` holds (bounded by [`WHO_SETTLES`]);
/// returns that listing. `done` may assert on every listing it sees.
async fn who_until(
    asker: &Peer,
    seat: &Seat,
    what: &str,
    mut done: impl FnMut(&[WhoPeer]) -> bool,
) -> Vec<WhoPeer> {
    let deadline = tokio::time::Instant::now() + WHO_SETTLES;
    loop {
        let who = asker.who(seat).await;
        if done(&who.peers) {
            return who.peers;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {WHO_SETTLES:?}; last who {:?}",
            who.peers
        );
        tokio::time::sleep(WHO_POLL).await;
    }
}

/// One peer's five figures in bytes per second.
fn figures_of(who: &[WhoPeer], jid: &str) -> [f64; 5] {
    throughput_fields(&who_entry(who, jid).throughput)
        .try_into()
        .expect("five fields")
}

/// `[relay]` settings that make back-up quick: 4 blocks of 4 KiB per recipient.
const SMALL_WINDOW: &str = "window = 4\nblock_size = 4096\n";
/// bob's socket receive buffer when he is to stall (the kernel doubles it).
const STALL_RECV_BUFFER: u32 = 64 * 1024;
/// What alice sends while bob stalls: more than bob's receive buffer, the relay's
/// send buffer to him (at most 4 MiB by Linux's default tcp_wmem) and his queue
/// together, so the relay's write to him is left pending.
const BACKLOG: usize = 16 * 1024 * 1024;
/// Bound on the figures reaching 0 once bob stops reading: the 4-second average
/// needs a little over 4 s of stall, plus filling the buffers first.
const FALL_BOUND: Duration = Duration::from_secs(30);

/// PROFILE 16 while a transfer is held up: a slave that stops reading sees its `who`
/// figures fall towards 0 (the relay's pending write to it is transfer time in which
/// nothing moves), gradually rather than at once; so does its master, whose data
/// backs up behind it. When it reads again they recover. A burst shows as soon as
/// the receiver has it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_figures_fall_while_a_slave_stops_reading_and_recover() {
    let rig = Rig::start(SECRET, &["alice", "bob"], SMALL_WINDOW);
    let (mut alice, bob, a_seat, b_seat) = alice_streams_to_bob(&rig).await;
    let (_ar, mut aw) = alice.connect(&a_seat).await;
    let (mut br, _bw) = bob.connect_buffered(&b_seat, STALL_RECV_BUFFER).await;
    alice.wait_for_presence("connect", &bob.jid).await;

    // A burst: non-zero for both as soon as bob has it.
    const BURST: usize = 256 * 1024;
    within(aw.write_all(&vec![1u8; BURST]))
        .await
        .expect("alice sends the burst");
    let mut got = 0;
    while got < BURST {
        got += next_block(&mut br).await.data.len();
    }
    who_until(
        &alice,
        &a_seat,
        "the burst shows for alice and bob",
        |who| {
            let (a, b) = (figures_of(who, &alice.jid), figures_of(who, &bob.jid));
            a.iter().chain(&b).all(|&f| f > 0.0)
        },
    )
    .await;

    // bob stops reading; alice keeps sending until her socket backs up.
    let sender = tokio::spawn(async move {
        aw.write_all(&vec![2u8; BACKLOG])
            .await
            .expect("alice sends");
        aw
    });
    // bob's figures fall, oldest window last: his 1-s figure reaches 0 while his
    // 16-s one still counts what moved before the stall, and from then on no
    // figure rises until bob reads again.
    let deadline = tokio::time::Instant::now() + FALL_BOUND;
    let mut at_first_zero = None;
    let mut last: Option<[f64; 5]> = None;
    loop {
        let who = alice.who(&a_seat).await.peers;
        let (a, b) = (figures_of(&who, &alice.jid), figures_of(&who, &bob.jid));
        if let Some(prev) = last {
            for w in 0..5 {
                assert!(
                    b[w] <= prev[w],
                    "bob's figure {w} rose while he was not reading: {prev:?} -> {b:?}"
                );
            }
        }
        if at_first_zero.is_none() && b[0] == 0.0 {
            at_first_zero = Some(b);
        }
        if at_first_zero.is_some() {
            last = Some(b);
        }
        if b[..3].iter().all(|&f| f == 0.0) && a[0] == 0.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "figures did not fall within {FALL_BOUND:?} of bob's stall: alice {a:?}, bob {b:?}"
        );
        tokio::time::sleep(WHO_POLL).await;
    }
    let at_first_zero = at_first_zero.expect("the loop ends only after bob's 1-s figure is 0");
    assert!(
        at_first_zero[4] > 0.0,
        "the 16-s figure falls in proportion, not at once: {at_first_zero:?}"
    );

    // bob reads everything: the figures recover.
    let mut got = 0;
    while got < BACKLOG {
        got += next_block(&mut br).await.data.len();
    }
    assert_eq!(got, BACKLOG, "bob got more than alice sent");
    let _aw = within(sender).await.expect("alice's sender");
    who_until(
        &alice,
        &a_seat,
        "the figures recover after the stall",
        |who| {
            let (a, b) = (figures_of(who, &alice.jid), figures_of(who, &bob.jid));
            a[0] > 0.0 && b[0] > 0.0
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disco_ping_and_version_on_the_bare_jid() {
    let rig = Rig::start(SECRET, &["alice"], "");
    let alice = rig.peer("alice").await;
    // One iq to the bare component JID; the raw answer.
    let ask = |payload: Element| alice.ask("get", DOMAIN, payload);

    let reply = ask(Element::builder("query", NS_DISCO_INFO).build()).await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
    assert_eq!(reply.attr("from"), Some(DOMAIN));
    let q = reply
        .get_child("query", NS_DISCO_INFO)
        .expect("disco#info query in the result");
    let identities: Vec<_> = q
        .children()
        .filter(|c| c.is("identity", NS_DISCO_INFO))
        .map(|i| (i.attr("category"), i.attr("type"), i.attr("name")))
        .collect();
    assert_eq!(
        identities,
        vec![(
            Some("component"),
            Some("generic"),
            Some("Data Stream Proxy Service")
        )]
    );
    let features: Vec<&str> = q
        .children()
        .filter(|c| c.is("feature", NS_DISCO_INFO))
        .filter_map(|f| f.attr("var"))
        .collect();
    for f in [NS_DSPS, NS_PING, NS_VERSION] {
        assert!(features.contains(&f), "feature {f} missing: {features:?}");
    }

    let reply = ask(Element::builder("ping", NS_PING).build()).await;
    assert_eq!(reply.attr("type"), Some("result"), "ping: {reply:?}");
    assert_eq!(reply.attr("from"), Some(DOMAIN));

    let reply = ask(Element::builder("query", NS_VERSION).build()).await;
    assert_eq!(reply.attr("type"), Some("result"), "version: {reply:?}");
    let q = reply
        .get_child("query", NS_VERSION)
        .expect("version query in the result");
    let text = |name: &str| q.get_child(name, NS_VERSION).map(|e| e.text());
    assert_eq!(text("name").as_deref(), Some("dsps"));
    assert_eq!(
        text("version").as_deref(),
        Some(env!("CARGO_PKG_VERSION")),
        "version is the crate's"
    );
    assert_eq!(text("os"), None, "the OS is hidden unless configured");
}
