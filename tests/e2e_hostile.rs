//! Hostile stanzas through a real Prosody, while a real transfer runs: nothing a
//! user sends may crash dsps, cut its component link or cost anyone a byte.
//! (Issue "Hostile input and faults", cases 1 and 2.)

mod common;

use common::blocks::read_payload;
use common::c2s::within;
use common::raw_c2s::RawC2s;
use common::scenario::{create_and_invite, Rig, DOMAIN, PASSWORD};
use dsps::proto::query::{CreateRequest, Role};
use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

const SECRET: &str = "hostile-test-secret";
const PAYLOAD_LEN: usize = 16 * 1024 * 1024;
const ROUNDS: usize = 4;

fn nested(depth: usize) -> String {
    format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth))
}

/// One round of hostile stanzas from `eve`; checks each iq is answered as it should be.
async fn hostile_round(eve: &mut RawC2s, round: usize) {
    let deep = nested(5000);
    // 1. Deep payloads in a message, a presence and a dsps create.
    eve.send(&format!(
        "<message to='{DOMAIN}' id='m{round}'><x xmlns='urn:x'>{deep}</x></message>"
    ))
    .await;
    eve.send(&format!(
        "<presence to='{DOMAIN}/x' id='p{round}'><x xmlns='urn:x'>{deep}</x></presence>"
    ))
    .await;
    let id = format!("deep{round}");
    eve.send(&format!(
        "<iq type='get' to='{DOMAIN}' id='{id}'><query xmlns='jabber:iq:dsps' type='create'>\
         <comment>{deep}</comment></query></iq>"
    ))
    .await;
    let reply = eve.reply_to(&id).await;
    assert!(reply.contains("type='error'"), "{reply}");
    assert!(reply.contains("code='400'"), "{reply}");
    assert!(reply.contains("component.max_depth (64)"), "{reply}");

    // 2. A 16 000-byte attribute value, element name and attribute name are read
    //    and the request answered normally.
    let long = "l".repeat(16_000);
    let id = format!("long{round}");
    eve.send(&format!(
        "<iq type='get' to='{DOMAIN}' id='{id}'><query xmlns='http://jabber.org/protocol/disco#info' \
         junk='{long}'><{long} {long}='{long}'/></query></iq>"
    ))
    .await;
    let reply = eve.reply_to(&id).await;
    assert!(reply.contains("type='result'"), "{reply}");
    assert!(reply.contains("jabber:iq:dsps"), "{reply}");

    // 3. A 100 KB minthroughput gets an answer (not a dead link).
    let id = format!("mt{round}");
    eve.send(&format!(
        "<iq type='get' to='{DOMAIN}' id='{id}'><query xmlns='jabber:iq:dsps' type='create' \
         minthroughput='{}KB'/></iq>",
        "9".repeat(100_000)
    ))
    .await;
    let reply = eve.reply_to(&id).await;
    assert!(reply.contains("<iq"), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_stanzas_neither_crash_dsps_nor_cut_its_link_during_a_transfer() {
    let mut rig = Rig::start(SECRET, &["alice", "bob", "carol", "eve"], "");
    let [alice, mut bob, mut carol] = rig.peers(["alice", "bob", "carol"]).await;
    let mut eve = RawC2s::login(&rig.prosody, "eve", PASSWORD).await;

    let (seat, seats) = create_and_invite(
        &alice,
        &CreateRequest::default(),
        &mut [(&mut bob, Role::Slave), (&mut carol, Role::Slave)],
    )
    .await;
    let (_ar, mut aw) = alice.connect(&seat).await;
    let (br, _bw) = bob.connect(&seats[0]).await;
    let (cr, _cw) = carol.connect(&seats[1]).await;

    let mut payload = vec![0u8; PAYLOAD_LEN];
    rand::rngs::StdRng::seed_from_u64(6).fill_bytes(&mut payload);
    let want = Sha256::digest(&payload).to_vec();
    let bob_rx = tokio::spawn(read_payload(br, PAYLOAD_LEN));
    let carol_rx = tokio::spawn(read_payload(cr, PAYLOAD_LEN));
    // Half the data, then the hostile rounds while the stream is live and the
    // slaves are still reading, then the rest.
    let (first, second) = payload.split_at(PAYLOAD_LEN / 2);
    aw.write_all(first).await.expect("alice writes");
    for round in 0..ROUNDS {
        hostile_round(&mut eve, round).await;
    }
    aw.write_all(second).await.expect("alice writes");

    let bob_got = within(bob_rx).await.expect("bob");
    let carol_got = within(carol_rx).await.expect("carol");
    assert_eq!(
        (bob_got.bytes, &bob_got.sha256),
        (PAYLOAD_LEN, &want),
        "bob's copy"
    );
    assert_eq!(
        (carol_got.bytes, &carol_got.sha256),
        (PAYLOAD_LEN, &want),
        "carol's copy"
    );

    let log = rig.dsps.log();
    assert!(rig.dsps.is_running(), "dsps died:\n{log}");
    assert_eq!(log.matches("component online").count(), 1, "{log}");
    assert!(!log.contains("component link lost"), "{log}");
    // One line per refused stanza: message, presence and iq in every round.
    assert_eq!(log.matches("stanza dropped").count(), 3 * ROUNDS, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_library_survives_hostile_stanzas_too() {
    let rig = Rig::start(SECRET, &["bob", "eve"], "");
    let bob = rig.peer("bob").await;
    let mut eve = RawC2s::login(&rig.prosody, "eve", PASSWORD).await;
    let deep = nested(5000);
    eve.send(&format!(
        "<message to='{}' id='m'><x xmlns='urn:x'>{deep}</x></message>",
        bob.jid
    ))
    .await;
    eve.send(&format!(
        "<iq type='get' to='{}' id='deep-to-bob'><x xmlns='urn:x'>{deep}</x></iq>",
        bob.jid
    ))
    .await;
    // RFC 6120: the refused iq get is still answered.
    let reply = eve.reply_to("deep-to-bob").await;
    assert!(reply.contains("type='error'"), "{reply}");
    // And bob's session still works.
    let seat = bob.create(&CreateRequest::default()).await;
    assert!(seat.peer_jid.starts_with("dsps.localhost/"));
}

/// A public stream with ~12 KB of comments, so that a bare-JID `stats` (112 bytes)
/// answers with about 12 KB.
fn public_with_comments(n: usize) -> String {
    let comments: String = (0..3)
        .map(|_| format!("<comment>{}</comment>", "c".repeat(3900)))
        .collect();
    format!(
        "<iq type='get' to='{DOMAIN}' id='pub{n}'><query xmlns='jabber:iq:dsps' type='create' \
         maxpublic='5'>{comments}</query></iq>"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stats_flood_is_metered_and_others_are_still_answered() {
    // 64 KiB/s per account (burst 512 KiB: two max_stanza_size replies) keeps the test short.
    let rig = Rig::start(
        SECRET,
        &["alice", "mallory"],
        "[limits]\nreply_bytes_per_second = 65536\n",
    );
    let alice = rig.peer("alice").await;
    let mut mallory = RawC2s::login(&rig.prosody, "mallory", PASSWORD).await;
    for n in 0..4 {
        mallory.send(&public_with_comments(n)).await;
        let reply = mallory.reply_to(&format!("pub{n}")).await;
        assert!(reply.contains("type='result'"), "{reply}");
    }
    // 300 listings of ~48 KB each asked in one write: ~14 MB if all were answered.
    const FLOOD: usize = 300;
    let flood: String = (0..FLOOD)
        .map(|i| {
            format!(
                "<iq type='get' to='{DOMAIN}' id='st{i}'><query xmlns='jabber:iq:dsps' type='stats'/></iq>"
            )
        })
        .collect();
    mallory.send(&flood).await;
    let (mut results, mut refused) = (0, 0);
    for i in 0..FLOOD {
        let reply = mallory.reply_to(&format!("st{i}")).await;
        if reply.contains("type='result'") {
            results += 1;
        } else {
            assert!(reply.contains("code='500'"), "{reply}");
            assert!(reply.contains("limits.reply_bytes_per_second"), "{reply}");
            refused += 1;
        }
    }
    // Every request answered once; the burst (512 KiB) holds about ten listings.
    assert_eq!(results + refused, FLOOD);
    assert!(
        (5..=40).contains(&results),
        "{results} listings sent in full"
    );
    // Another user is answered, and the link never dropped.
    alice.create(&CreateRequest::default()).await;
    let log = rig.dsps.log();
    assert!(!log.contains("component link lost"), "{log}");
    assert_eq!(
        log.matches("replies over their byte rate refused").count(),
        1,
        "{log}"
    );
}
