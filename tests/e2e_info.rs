//! What the service tells its clients, through a real Prosody and the real binary:
//! `who` (PROFILE 15, 16), `stats`, presence pushes, and disco#info, ping and version
//! on the bare JID (PROFILE 22).

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::c2s::{within, STEP};
use common::scenario::{next_block, Peer, Rig, DOMAIN};
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
    let mut alice = rig.peer("alice").await;
    let mut bob = rig.peer("bob").await;
    let mut carol = rig.peer("carol").await;
    let mut dave = rig.peer("dave").await;

    let comment = Element::builder("comment", NS_DSPS)
        .append("e2e info stream")
        .build();
    let a_seat = within(alice.dsps.create(&CreateRequest {
        minthroughput: Some("1.5KB".into()),
        comments: vec![comment],
        ..CreateRequest::default()
    }))
    .await
    .expect("create");
    let admin = AdminRequest {
        wait: Some(INVITE_WAIT_MS),
        actions: [&bob, &carol, &dave]
            .iter()
            .map(|p| AdminAction::Invite(Role::Slave, p.jid.clone()))
            .collect(),
        ..AdminRequest::default()
    };
    within(alice.dsps.admin(&a_seat, &admin))
        .await
        .expect("admin");
    let (b_seat, c_seat) = tokio::join!(bob.accept_next(), carol.accept_next());
    // dave gets his invitation and sits on it: his seat stays 'expire'.
    let dave_inv = within(dave.events.wait_for_invitation(STEP))
        .await
        .expect("dave's invitation");
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
    let who = within(alice.dsps.who(&a_seat)).await.expect("who");
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
    let who = within(bob.dsps.who(&b_seat)).await.expect("who from bob");
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
    let stats = within(alice.dsps.stats(&a_seat)).await.expect("stats");
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
    let bob_stats = within(bob.dsps.stats(&b_seat))
        .await
        .expect("stats from bob");
    assert_eq!(bob_stats.wait, INVITE_WAIT_MS, "bob's own wait");
    assert_eq!(bob_stats.comments, stats.comments);
    assert_eq!(bob_stats.slavecount, 3);

    // Traffic shows up in who, also after a burst that is over within a second: the
    // figures count completed seconds, so they may take up to a second to appear,
    // and then must stay (no more data moves to replace them).
    const BURST: usize = 1024 * 1024;
    within(aw.write_all(&vec![7u8; BURST]))
        .await
        .expect("alice sends");
    let mut got = 0;
    while got < BURST {
        got += next_block(&mut br).await.data.len();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    loop {
        let who = within(alice.dsps.who(&a_seat)).await.expect("who");
        let a = throughput_fields(&who_entry(&who.peers, &alice.jid).throughput);
        let b = throughput_fields(&who_entry(&who.peers, &bob.jid).throughput);
        let c = throughput_fields(&who_entry(&who.peers, &carol.jid).throughput);
        assert!(c.iter().all(|&f| f == 0.0), "carol moved no data: {c:?}");
        for f in a.iter().chain(&b) {
            assert!(
                *f <= BURST as f64 * 1.1,
                "more than the burst per second: alice {a:?}, bob {b:?}"
            );
        }
        if a.iter().chain(&b).all(|&f| f > 0.0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "who never showed the burst: alice {a:?}, bob {b:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

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

/// One iq to the bare component JID; returns the raw answer.
async fn ask(p: &Peer, payload: Element) -> Element {
    within(p.xmpp.request("get", DOMAIN, payload, STEP))
        .await
        .unwrap_or_else(|e| panic!("request failed: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disco_ping_and_version_on_the_bare_jid() {
    let rig = Rig::start(SECRET, &["alice"], "");
    let alice = rig.peer("alice").await;

    let reply = ask(&alice, Element::builder("query", NS_DISCO_INFO).build()).await;
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

    let reply = ask(&alice, Element::builder("ping", NS_PING).build()).await;
    assert_eq!(reply.attr("type"), Some("result"), "ping: {reply:?}");
    assert_eq!(reply.attr("from"), Some(DOMAIN));

    let reply = ask(&alice, Element::builder("query", NS_VERSION).build()).await;
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
