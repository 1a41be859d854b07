//! `[limits]` and `max_stanza_size` through a real Prosody and the real binary
//! (issue 6): an over-limit comment is refused with 400 naming the limit, and a
//! bare-JID `stats` listing of public streams whose comments add up to more than
//! Prosody's 512 KiB component limit is cut to `max_stanza_size`, so the link stays up.

mod common;

use common::dsps::Component;
use common::scenario::{iq_error, Rig, DOMAIN};
use dsps::config::DEFAULT_MAX_STANZA_SIZE;
use dsps::proto::query::{CreateRequest, StatsResult};
use dsps::proto::xml::{attr, NS_DSPS};
use minidom::Element;

const SECRET: &str = "limits-test-secret";
/// Comments this large are allowed here, so that four of them are more than Prosody
/// takes from a component in one stanza (512 KiB) but each is within what a client
/// may send it (256 KiB).
const COMMENT_BYTES: usize = 160_000;
const EXTRA: &str = "[limits]\ncomment_bytes = 160000\nstream_comment_bytes = 160000\n";

fn comment(text_bytes: usize) -> Element {
    Element::builder("comment", NS_DSPS)
        .append("c".repeat(text_bytes))
        .build()
}

/// Asserts `reply` is a 400 bad-request error with `text`.
fn expect_bad_request(reply: &Element, text: &str) {
    let e = iq_error(reply);
    assert_eq!(
        (e.code.as_deref(), e.condition.as_deref(), e.text.as_deref()),
        (Some("400"), Some("bad-request"), Some(text))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_comments_are_refused_and_big_listings_are_cut_without_losing_the_link() {
    let rig = Rig::start(SECRET, &["alice", "erin"], EXTRA);
    let [alice, erin] = rig.peers(["alice", "erin"]).await;

    // One byte of text too many (the tags count too): 400 naming the limit.
    let create = CreateRequest {
        maxpublic: 5,
        comments: vec![comment(COMMENT_BYTES)],
        ..CreateRequest::default()
    };
    let reply = alice.ask("get", DOMAIN, Element::from(&create)).await;
    expect_bad_request(
        &reply,
        &format!("comment longer than limits.comment_bytes ({COMMENT_BYTES})"),
    );

    // Four public streams with 150 KB comments: 600 KB if listed whole.
    let create = CreateRequest {
        maxpublic: 5,
        comments: vec![comment(150_000)],
        ..CreateRequest::default()
    };
    for _ in 0..4 {
        alice.create(&create).await;
    }
    let stats = attr(Element::builder("query", NS_DSPS), "type", "stats").build();
    let reply = erin.ask("get", DOMAIN, stats).await;
    assert_eq!(
        reply.attr("type"),
        Some("result"),
        "{:?}",
        reply.attr("type")
    );
    let size = String::from(&reply).len();
    assert!(
        size <= DEFAULT_MAX_STANZA_SIZE,
        "a {size}-byte listing is over max_stanza_size"
    );
    let listed: Vec<StatsResult> = reply
        .children()
        .map(|s| StatsResult::try_from(s).expect("a stats query"))
        .collect();
    // 256 KiB holds one 150 KB stream, not two.
    assert_eq!(listed.len(), 1, "listing of {size} bytes");
    eprintln!(
        "public listing cut to {} of 4 streams, {size} bytes",
        listed.len()
    );
    assert_eq!(listed[0].comments[0].text().len(), 150_000);
    assert_eq!(listed[0].peers.len(), 1, "with its public JID");

    // The link is still up: the component answers the next requests at once.
    let ping = Element::builder("ping", "urn:xmpp:ping").build();
    let reply = erin.ask("get", DOMAIN, ping).await;
    assert_eq!(reply.attr("type"), Some("result"), "ping: {reply:?}");
    let disco = Element::builder("query", "http://jabber.org/protocol/disco#info").build();
    let reply = erin.ask("get", DOMAIN, disco).await;
    assert_eq!(reply.attr("type"), Some("result"), "disco: {reply:?}");
    let log = rig.dsps.log();
    assert!(
        !log.contains("component link lost"),
        "the component link was lost:\n{log}"
    );
    assert_eq!(
        log.matches("component online").count(),
        1,
        "the component logged in more than once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_that_would_pass_max_stanza_size_is_refused_before_any_result() {
    // 8 KiB stanzas; the stream comment budget shrinks to fit the configuration check.
    let component = Component::new(DOMAIN, SECRET)
        .component_extra("max_stanza_size = 8192")
        .extra("[limits]\nstream_comment_bytes = 1024\nattribute_bytes = 1024\n");
    let rig = Rig::with(&["alice", "bob"], &[component]);
    let [alice, mut bob] = rig.peers(["alice", "bob"]).await;
    let seat = alice.create(&CreateRequest::default()).await;
    // Three 3 000-byte comments: each within comment_bytes, together too large to
    // forward to bob in one acknowledge.
    let mut query = attr(Element::builder("query", NS_DSPS), "type", "admin");
    for _ in 0..3 {
        query = query.append(comment(3000));
    }
    let peer = attr(Element::builder("peer", NS_DSPS), "type", "slave").append(bob.jid.as_str());
    let reply = alice
        .ask("set", &seat.peer_jid, query.append(peer).build())
        .await;
    expect_bad_request(
        &reply,
        "invitation larger than component.max_stanza_size (8192)",
    );
    // Bob hears nothing of it, and the link is still up.
    let nothing = bob
        .events
        .wait_for_invitation(std::time::Duration::from_millis(1500))
        .await;
    assert!(nothing.is_err(), "bob was invited: {nothing:?}");
    let log = rig.dsps.log();
    assert!(!log.contains("component link lost"), "{log}");
}
