//! The `[limits]` on what a request may carry and the `max_stanza_size` on what we
//! send (issue 6): each bound passes at its value, one more is refused with 400 naming
//! the limit, and nothing of a refused request is kept or sent.

use super::*;
use crate::config::Limits;
use crate::proto::limits::{comment_cost, NODE_CHARGE};

/// A harness with `limits` and `max_stanza_size` in place of the defaults.
fn bounded(limits: Limits, max_stanza_size: usize) -> Harness {
    Harness::with(Settings {
        limits,
        max_stanza_size,
        ..settings()
    })
}

/// Stanzas of at most 8 KiB, with room in the configuration for that.
fn small_stanzas() -> Harness {
    let limits = Limits {
        stream_comment_bytes: 1024,
        attribute_bytes: 1024,
        ..Limits::default()
    };
    bounded(limits, 8192)
}

/// The `<text/>` of an error reply.
fn error_text(iq: &Iq) -> String {
    iq.error
        .as_ref()
        .and_then(|e| e.get_child("text", NS_STANZAS))
        .map(|t| t.text())
        .unwrap_or_default()
}

fn expect_400(iq: &Iq, text: &str) {
    assert_eq!(code(iq), Some(400), "{iq:?}");
    assert_eq!(error_text(iq), text);
    let error = iq.error.as_ref().unwrap();
    assert_eq!(get_attr(error, "type"), Some("modify"));
    assert!(error.has_child("bad-request", NS_STANZAS));
}

/// A text `<comment>` that costs exactly `cost` against `comment_bytes`: its bytes
/// serialised on its own (in the dsps namespace, as a child of a dsps query) and the
/// charges for its two nodes (the element and its text).
fn comment(cost: usize) -> String {
    let tags = "<comment xmlns='jabber:iq:dsps'></comment>".len();
    let c = format!(
        "<comment>{}</comment>",
        "c".repeat(cost - tags - 2 * NODE_CHARGE)
    );
    let parsed: Element = dsps("create", "", &c).parse().unwrap();
    assert_eq!(
        comment_cost(parsed.children().next().unwrap(), usize::MAX),
        Some(cost),
        "fixture comment has the intended cost"
    );
    c
}

fn serialised_len(e: &Element) -> usize {
    String::from(e).len()
}

#[test]
fn a_create_comment_at_the_default_limit_is_kept_one_byte_more_is_refused() {
    let mut h = Harness::new();
    let r = h.ask("get", ALICE, DOMAIN, &dsps("create", "", &comment(4097)));
    expect_400(&r, "comment longer than limits.comment_bytes (4096)");
    assert_eq!(h.reg.stream_count(), 0, "nothing of it is kept");

    let (a, _) = h.create_with(ALICE, "", &comment(4096));
    let r = h.ask_own(&a, "get", "stats");
    let stats = StatsResult::try_from(r.payload.as_ref().unwrap()).unwrap();
    assert_eq!(comment_cost(&stats.comments[0], usize::MAX), Some(4096));
}

#[test]
fn comments_per_request_is_a_count_of_comment_elements() {
    let mut h = Harness::new();
    let r = h.ask(
        "get",
        ALICE,
        DOMAIN,
        &dsps("create", "", &comment(200).repeat(17)),
    );
    expect_400(&r, "more comments than limits.comments_per_request (16)");
    h.create_with(ALICE, "", &comment(200).repeat(16));
    let a = h.create(BOB);
    let r = one_iq(&h.admin(&a, "", &comment(200).repeat(17)));
    expect_400(&r, "more comments than limits.comments_per_request (16)");
}

#[test]
fn a_stream_keeps_at_most_stream_comment_bytes_in_all() {
    let mut h = Harness::new();
    // Four comments of 4096 bytes are the default 16384 exactly.
    h.create_with(ALICE, "", &comment(4096).repeat(4));
    let body = comment(4096).repeat(4) + &comment(200);
    let r = h.ask("get", BOB, DOMAIN, &dsps("create", "", &body));
    expect_400(
        &r,
        "comments longer in all than limits.stream_comment_bytes (16384)",
    );
    assert_eq!(h.reg.stream_count(), 1);
}

#[test]
fn an_admin_with_more_peers_than_its_limit_is_refused_whole() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    let peers = |n: usize| -> String {
        (0..n)
            .map(|i| format!("<peer type='slave'>u{i}@localhost/r</peer>"))
            .collect()
    };
    let out = h.admin(&a, "", &peers(65));
    expect_400(&one_iq(&out), "more peers than limits.peers_per_admin (64)");
    assert_eq!(h.who(&a).len(), 1, "no one was invited");
    let out = h.admin(&a, "", &peers(64));
    assert_eq!(of_type(&out, "acknowledge").len(), 64);
}

#[test]
fn attributes_that_are_kept_or_repeated_are_bounded() {
    let mut h = Harness::new();
    // The iq id is repeated in every reply.
    let r = one_iq(&h.iq_id(
        "get",
        &"i".repeat(3073),
        ALICE,
        DOMAIN,
        &dsps("create", "", ""),
    ));
    expect_400(&r, "id longer than limits.attribute_bytes (3072)");
    assert_eq!(h.reg.stream_count(), 0);
    let id = "i".repeat(3072);
    let r = one_iq(&h.iq_id("get", &id, ALICE, DOMAIN, &dsps("create", "", "")));
    assert_eq!((r.kind, r.id.len()), (IqKind::Result, 3072));

    // minthroughput is kept and reported by stats.
    let m = format!("{}1KB", " ".repeat(3070));
    let r = h.ask(
        "get",
        ALICE,
        DOMAIN,
        &dsps("create", &format!("minthroughput='{m}'"), ""),
    );
    expect_400(
        &r,
        "minthroughput longer than limits.attribute_bytes (3072)",
    );

    // An invited JID is kept as the seat's.
    let a = h.create(BOB);
    let long = format!("{}@localhost/r", "u".repeat(3061));
    assert_eq!(long.len(), 3073);
    let out = h.admin(&a, "", &format!("<peer type='slave'>{long}</peer>"));
    expect_400(
        &one_iq(&out),
        "peer JID longer than limits.attribute_bytes (3072)",
    );
}

#[test]
fn an_answer_past_the_limits_is_ignored() {
    let mut h = Harness::new();
    let a = h.create(ALICE);
    let inv = h.invite(&a, "slave", BOB);
    // An answer from another resource of bob's would make that JID the seat's.
    let long = format!("bob@localhost/{}", "r".repeat(3060));
    assert!(h.answer(&inv, &long, "connect").is_empty());
    // The invitation still stands for a proper answer.
    h.accept(&inv, BOB);
}

#[test]
fn an_admin_whose_invitation_would_not_fit_is_refused_before_any_result() {
    let mut h = small_stanzas();
    let a = h.create(ALICE);
    let out = h.admin(
        &a,
        "",
        &format!("{}<peer type='slave'>{BOB}</peer>", comment(3000).repeat(3)),
    );
    expect_400(
        &one_iq(&out),
        "invitation larger than component.max_stanza_size (8192)",
    );
    assert_eq!(h.who(&a).len(), 1, "bob was not invited");

    // What fits is sent, and is no larger than the bound.
    let out = h.admin(
        &a,
        "",
        &format!("{}<peer type='slave'>{BOB}</peer>", comment(3900).repeat(2)),
    );
    let sent: Vec<&Element> = out
        .iter()
        .filter_map(|a| match a {
            Action::Send(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(sent.len(), 2, "the result and the invitation: {out:?}");
    let inv = Iq::parse(sent[1]).unwrap();
    assert_eq!(
        (inv.dsps_type(), inv.to.as_str()),
        (Some("acknowledge"), BOB)
    );
    assert!(serialised_len(sent[1]) <= 8192);
}

#[test]
fn a_reinvitation_listing_every_inviter_must_fit_too() {
    let mut h = bounded(Limits::default(), 8192);
    let a = h.create(ALICE);
    // Masters with long (but valid) JIDs, each inviting carol in turn.
    let masters: Vec<Peer> = (0..3)
        .map(|i| {
            let jid = format!("m{i}@localhost/{}", "r".repeat(1020));
            h.join(&a, "master", &jid)
        })
        .collect();
    let invite = |who: &str, comments: usize| {
        format!(
            "{}<peer type='slave'>{who}</peer>",
            comment(2000).repeat(comments)
        )
    };
    for m in &masters[..2] {
        let out = h.admin(m, "", &invite(CAROL, 1));
        assert_eq!(of_type(&out, "acknowledge").len(), 1);
    }
    // Re-sent, carol's invitation would list three 1 KB inviters besides 6 KB of
    // comments: past 8 KiB. The same request for a new invitee lists one.
    let out = h.admin(&masters[2], "", &invite(CAROL, 3));
    expect_400(
        &one_iq(&out),
        "invitation larger than component.max_stanza_size (8192)",
    );
    let out = h.admin(&masters[2], "", &invite(DAVE, 3));
    assert_eq!(of_type(&out, "acknowledge").len(), 1);
}

#[test]
fn an_admin_whose_drop_notice_would_not_fit_is_refused() {
    let mut h = small_stanzas();
    let a = h.create(ALICE);
    h.join(&a, "slave", BOB);
    let out = h.admin(
        &a,
        "",
        &format!("{}<peer type='drop'>{BOB}</peer>", comment(3000).repeat(3)),
    );
    expect_400(
        &one_iq(&out),
        "drop notice larger than component.max_stanza_size (8192)",
    );
    assert_eq!(h.who(&a).len(), 2, "bob is still there");
}

#[test]
fn the_public_stats_listing_is_cut_to_max_stanza_size() {
    let limits = Limits {
        stream_comment_bytes: 8000,
        comment_bytes: 8000,
        ..Limits::default()
    };
    let mut h = bounded(limits, 20_000);
    for creator in [ALICE, BOB, CAROL] {
        h.create_with(creator, "maxpublic='5'", &comment(7000));
    }
    // A small public stream after the big ones still fits.
    let (d, _) = h.create_with(DAVE, "maxpublic='5'", "<comment>small</comment>");
    let out = h.iq("get", ERIN, DOMAIN, &dsps("stats", "", ""));
    let [Action::Send(e)] = out.as_slice() else {
        panic!("expected one stanza: {out:?}")
    };
    assert!(serialised_len(e) <= 20_000, "{} bytes", serialised_len(e));
    let listed: Vec<StatsResult> = e
        .children()
        .map(|s| StatsResult::try_from(s).unwrap())
        .collect();
    let texts: Vec<usize> = listed.iter().map(|s| s.comments[0].text().len()).collect();
    // The two oldest big ones, the third left out, the small one listed.
    assert_eq!(listed.len(), 3, "{texts:?}");
    assert_eq!(listed[2].comments[0].text(), "small");
    let r = h.ask_own(&d, "get", "stats");
    assert_eq!(r.kind, IqKind::Result, "a stream's own stats are not cut");
}

#[test]
fn a_listing_with_no_room_for_any_stream_is_one_empty_query() {
    // Below what `config` would accept (a stream's stats always fit there), to reach
    // the case where not even one listed stream fits.
    let limits = Limits {
        stream_comment_bytes: 2000,
        comment_bytes: 2000,
        ..Limits::default()
    };
    let mut h = bounded(limits, 2200);
    h.create_with(ALICE, "maxpublic='1'", &comment(2000));
    let out = h.iq("get", ERIN, DOMAIN, &dsps("stats", "", ""));
    let [Action::Send(e)] = out.as_slice() else {
        panic!("expected one stanza: {out:?}")
    };
    assert!(serialised_len(e) <= 2200);
    let only = e.children().collect::<Vec<_>>();
    assert_eq!(only.len(), 1);
    assert_eq!(StatsResult::try_from(only[0]).unwrap().peers.len(), 0);
    assert_eq!(only[0].children().count(), 0, "an empty query");
}

#[test]
fn kept_comments_come_back_from_stats_as_they_were_sent() {
    // Streams keep comments as text; what stats shows must be the same elements.
    let mut h = Harness::new();
    let body = "<comment><file xmlns='urn:example:f' name='a&amp;b'/><a/><a>t</a></comment>\
                <comment>plain</comment>";
    let (a, _) = h.create_with(ALICE, "maxpublic='1'", body);
    let sent: Element = dsps("create", "", body).parse().unwrap();
    let sent: Vec<&Element> = sent.children().collect();
    let r = h.ask_own(&a, "get", "stats");
    let own = StatsResult::try_from(r.payload.as_ref().unwrap()).unwrap();
    let (_, listed) = public_listing(&mut h);
    for comments in [&own.comments, &listed[0].comments] {
        assert_eq!(comments.len(), 2);
        assert_eq!(&comments[0], sent[0]);
        assert_eq!(&comments[1], sent[1]);
    }
}

#[test]
fn a_comment_of_many_tiny_elements_counts_its_nodes() {
    // 3641 bytes, under 4096, but a tree of 900 elements takes ~200 KiB in memory.
    let mut h = Harness::new();
    let body = format!("<comment>{}</comment>", "<a/>".repeat(900));
    let r = h.ask("get", ALICE, DOMAIN, &dsps("create", "", &body));
    expect_400(&r, "comment longer than limits.comment_bytes (4096)");
    let a = h.create(BOB);
    let out = h.admin(&a, "", &format!("{body}<peer type='slave'>{CAROL}</peer>"));
    expect_400(
        &one_iq(&out),
        "comment longer than limits.comment_bytes (4096)",
    );
    // A comment with some structure still fits.
    let file = "<comment><file xmlns='urn:example:f' name='big.bin' size='67108864'/></comment>";
    h.create_with(ALICE, "", file);
}
