//! Relay chains (issue 7, PROFILE 23): the near side (a create with `<peer/>`s, the
//! dial, the key exchange through the creator, reconnects) and the far side (a
//! hello from another DSPS makes the seat a relay).

use super::*;
use crate::core::relay_policy::{Pin, RelayPolicy, TargetRule};

const FAR_A: &str = "dsps-a.example/far1";
const FAR_B: &str = "dsps-b.example/far2";

/// A harness whose relays may dial the two far domains.
fn relaying() -> Harness {
    let policy = RelayPolicy::new(
        vec![TargetRule::parse("dsps-a.example").unwrap()],
        [(
            "dsps-b.example".to_string(),
            Pin::parse("127.0.0.1:6002").unwrap(),
        )]
        .into(),
    );
    Harness::with(Settings {
        relay_policy: policy,
        ..settings()
    })
}

fn peer_block(jid: &str, attrs: &str) -> String {
    format!("<peer {attrs}>{jid}</peer>")
}

/// The one `RelayDial` of `out`.
fn dial(out: &[Action]) -> (ConnId, String, Vec<crate::core::relay_policy::DialPlan>) {
    let dials: Vec<_> = out
        .iter()
        .filter_map(|a| match a {
            Action::RelayDial {
                conn,
                client,
                targets,
            } => Some((*conn, client.clone(), targets.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(dials.len(), 1, "expected one dial: {out:?}");
    dials.into_iter().next().unwrap()
}

/// The near side of a chain up to the attach: alice creates a stream relayed to
/// FAR_A then FAR_B, FAR_B answers. Returns alice's seat, the link's connection
/// and the actions of the attach.
fn chain(h: &mut Harness) -> (Peer, ConnId, Vec<Action>) {
    let body = format!(
        "{}{}",
        peer_block(FAR_A, "port='7000'"),
        peer_block(FAR_B, "")
    );
    let out = h.iq("get", ALICE, DOMAIN, &dsps("create", "", &body));
    assert!(
        iqs(&out).is_empty(),
        "the create waits for the dial: {out:?}"
    );
    let (conn, client, targets) = dial(&out);
    assert!(conn >= OUTBOUND_CONN_BASE);
    assert!(client.starts_with(&format!("{DOMAIN}/")));
    assert_eq!(resource_of(&client).len(), crate::core::ids::RESOURCE_LEN);
    let plans: Vec<_> = targets
        .iter()
        .map(|t| (t.far_jid.as_str(), t.authority(), t.pinned))
        .collect();
    assert_eq!(
        plans,
        vec![
            (FAR_A, "dsps-a.example:7000".to_string(), false),
            (FAR_B, "127.0.0.1:6002".to_string(), true)
        ]
    );
    // The second target answered: the create is answered, then KEY1 goes to alice.
    let out = h.feed(Input::RelayDialed {
        conn,
        target: 1,
        key1: "KEY1far".into(),
    });
    let sent = iqs(&out);
    assert_eq!(sent.len(), 2, "create result and key get: {sent:?}");
    assert_eq!((sent[0].kind, sent[0].to.as_str()), (IqKind::Result, ALICE));
    let result = CreateResult::try_from(sent[0].payload.as_ref().unwrap()).unwrap();
    assert_eq!(result.protocol, "0.5");
    let alice = Peer {
        jid: ALICE.into(),
        dsps: sent[0].from.clone(),
        conn: None,
    };
    let get = &sent[1];
    assert_eq!(
        (get.kind, get.from.as_str(), get.to.as_str()),
        (IqKind::Get, alice.dsps.as_str(), ALICE)
    );
    assert_eq!(
        query::relay_key_of(get.payload.as_ref().unwrap()).as_deref(),
        Some("KEY1far")
    );
    // Alice's client traded KEY1 for KEY2 with the far DSPS and answers.
    let out = h.iq_id(
        "result",
        &get.id.clone(),
        ALICE,
        &alice.dsps.clone(),
        &dsps("create", "", "KEY2far"),
    );
    assert!(out.iter().any(|a| matches!(a,
        Action::RelayWrite { conn: c, line } if *c == conn && line == "KEY2far\n")));
    let att = attaches(&out);
    assert_eq!(att.len(), 1);
    assert_eq!(att[0].0, conn);
    assert!(att[0].1.outbound);
    assert_eq!(
        att[0].1.role,
        Role::Master,
        "routed like a master on our side"
    );
    (alice, conn, out)
}

#[test]
fn without_allowed_targets_a_relay_create_is_405() {
    let mut h = Harness::new();
    let r = h.ask(
        "get",
        ALICE,
        DOMAIN,
        &dsps("create", "", &peer_block(FAR_A, "")),
    );
    assert_eq!(code(&r), Some(405));
    assert_eq!(h.reg.stream_count(), 0);
}

#[test]
fn a_relay_create_whose_targets_are_all_refused_is_403_and_leaves_nothing() {
    let mut h = relaying();
    let body = format!(
        "{}{}",
        peer_block("elsewhere.example/x", ""),
        peer_block("other.example/y", "host='10.0.0.1'")
    );
    let r = h.ask("get", ALICE, DOMAIN, &dsps("create", "", &body));
    assert_eq!(code(&r), Some(403));
    let text = r
        .error
        .as_ref()
        .unwrap()
        .children()
        .find(|c| c.name() == "text")
        .unwrap()
        .text();
    assert!(text.contains("allow_targets"), "{text}");
    assert_eq!(h.reg.stream_count(), 0);
    assert_eq!(h.reg.held(), (0, 0, 0, 0));
}

#[test]
fn a_malformed_relay_destination_is_400() {
    let mut h = relaying();
    for bad in [
        peer_block("dsps-a.example", ""),
        peer_block("user@dsps-a.example/x", ""),
        peer_block("", ""),
        peer_block(FAR_A, "host='a b'"),
        peer_block(FAR_A, "port='abc'"),
        peer_block(FAR_A, "port='0'"),
        peer_block(FAR_A, "port='70000'"),
    ] {
        let r = h.ask("get", ALICE, DOMAIN, &dsps("create", "", &bad));
        assert_eq!(code(&r), Some(400), "{bad}");
    }
    assert_eq!(h.reg.stream_count(), 0);
}

#[test]
fn too_many_relay_targets_are_refused() {
    let mut h = relaying();
    let body = (0..=outbound::MAX_RELAY_TARGETS)
        .map(|i| peer_block(&format!("dsps-a.example/r{i}"), ""))
        .collect::<String>();
    let r = h.ask("get", ALICE, DOMAIN, &dsps("create", "", &body));
    assert_eq!(code(&r), Some(400));
}

#[test]
fn a_chain_connects_through_the_creators_key_exchange() {
    let mut h = relaying();
    let (alice, _conn, out) = chain(&mut h);
    // Alice hears that the relay (shown by the far domain) connected.
    assert_eq!(
        presences(&out),
        vec![presence(&alice, &alice, "connect", "dsps-b.example")]
    );
    let who = h.who(&alice);
    let relay = who
        .iter()
        .find(|p| p.role == Role::Relay)
        .expect("the relay is listed");
    assert_eq!(
        (relay.jid.as_str(), relay.status.as_str()),
        ("dsps-b.example", "connect")
    );
    let stats =
        StatsResult::try_from(h.ask_own(&alice, "get", "stats").payload.as_ref().unwrap()).unwrap();
    assert_eq!((stats.mastercount, stats.relaycount), (1, 1));
}

#[test]
fn an_unreachable_chain_is_504_and_forgotten() {
    let mut h = relaying();
    let out = h.iq(
        "get",
        ALICE,
        DOMAIN,
        &dsps("create", "", &peer_block(FAR_A, "")),
    );
    let (conn, _, _) = dial(&out);
    let out = h.feed(Input::RelayUnreachable {
        conn,
        why: "dsps-a.example:5290: connection refused".into(),
    });
    let r = one_iq(&out[..1]);
    assert_eq!(code(&r), Some(504));
    assert_eq!(gone(&out).len(), 1);
    assert_eq!(h.reg.stream_count(), 0);
    assert_eq!(h.reg.held(), (0, 0, 0, 0));
    // The link task's Closed that follows changes nothing.
    assert!(h.close(conn).is_empty());
}

#[test]
fn the_key_answer_counts_only_from_the_creator_and_a_refusal_closes_the_link() {
    let mut h = relaying();
    let out = h.iq(
        "get",
        ALICE,
        DOMAIN,
        &dsps("create", "", &peer_block(FAR_A, "")),
    );
    let (conn, _, _) = dial(&out);
    let sent = iqs(&h.feed(Input::RelayDialed {
        conn,
        target: 0,
        key1: "K1".into(),
    }));
    let (res, get) = (sent[0].from.clone(), sent[1].clone());
    let forged = h.iq_id("result", &get.id, MALLORY, &res, &dsps("create", "", "K2"));
    assert!(forged.is_empty(), "{forged:?}");
    let out = h.iq_id("error", &get.id, ALICE, &res, "");
    assert_eq!(closes(&out), vec![conn]);
    assert!(attaches(&out).is_empty());
    // The link waits for a reconnect; its wait runs out like any seat's.
    h.advance(WAIT_DEFAULT + 1);
    assert_eq!(h.reg.held().2, 0, "no key request is left pending");
}

#[test]
fn a_create_to_the_creators_resource_reconnects_the_link() {
    let mut h = relaying();
    let (alice, conn, _) = chain(&mut h);
    let busy = h.ask("get", ALICE, &alice.dsps.clone(), &dsps("create", "", ""));
    assert_eq!(code(&busy), Some(405), "the relay is still connected");
    let out = h.close(conn);
    assert_eq!(
        presences(&out),
        vec![presence(&alice, &alice, "waiting", "dsps-b.example")]
    );
    let with_peer = h.ask(
        "get",
        ALICE,
        &alice.dsps.clone(),
        &dsps("create", "", &peer_block(FAR_A, "")),
    );
    assert_eq!(code(&with_peer), Some(405));
    let out = h.iq("get", ALICE, &alice.dsps.clone(), &dsps("create", "", ""));
    let (conn2, _, targets) = dial(&out);
    assert_ne!(conn2, conn);
    assert_eq!(
        targets.len(),
        1,
        "only the target that worked is remembered"
    );
    assert_eq!(targets[0].far_jid, FAR_B);
    let sent = iqs(&h.feed(Input::RelayDialed {
        conn: conn2,
        target: 0,
        key1: "K1b".into(),
    }));
    assert_eq!(sent[0].kind, IqKind::Result, "the reconnect is answered");
    let get = sent[1].clone();
    let out = h.iq_id(
        "result",
        &get.id,
        ALICE,
        &alice.dsps.clone(),
        &dsps("create", "", "K2b"),
    );
    assert_eq!(attaches(&out).len(), 1);
}

#[test]
fn a_seat_without_a_link_cannot_reconnect_one() {
    let mut h = relaying();
    let alice = h.create(ALICE);
    let r = h.ask("get", ALICE, &alice.dsps.clone(), &dsps("create", "", ""));
    assert_eq!(code(&r), Some(405));
}

#[test]
fn dropping_the_link_closes_it_and_tells_only_our_peers() {
    let mut h = relaying();
    let (alice, conn, _) = chain(&mut h);
    let out = h.admin(&alice, "", "<peer type='drop'>dsps-b.example</peer>");
    assert_eq!(closes(&out), vec![conn]);
    let sent = iqs(&out);
    assert!(
        sent.iter().all(|i| i.to == ALICE),
        "nothing goes to the far JID: {sent:?}"
    );
    assert_eq!(
        presences(&out),
        vec![presence(&alice, &alice, "drop", "dsps-b.example")]
    );
}

#[test]
fn a_stopping_dsps_drains_the_link_without_a_notice() {
    let mut h = relaying();
    let (_alice, conn, _) = chain(&mut h);
    let out = h.feed(Input::Shutdown);
    assert!(out.iter().any(|a| matches!(a,
        Action::RelayDrain { conn: c, notice: None } if *c == conn)));
}

#[test]
fn a_hello_from_another_dsps_makes_the_seat_a_relay() {
    let mut h = Harness::new();
    let alice = h.create(ALICE);
    let bob = h.join(&alice, "slave", BOB);
    // Bob's own DSPS names itself in the hello; bob proves the attempt.
    let conn = h.new_conn();
    let out = h.hello(conn, "dsps-b.example/link7", &bob.dsps.clone());
    let [Action::RelayWrite { line, .. }] = out.as_slice() else {
        panic!("expected KEY1: {out:?}");
    };
    let key1 = line.trim().to_string();
    let r = one_iq(&h.auth(&bob, &key1));
    let key2 = query::auth_key(r.payload.as_ref().unwrap()).unwrap();
    let out = h.feed(Input::RelayKey { conn, key: key2 });
    let att = attaches(&out);
    assert_eq!(att[0].1.role, Role::Relay, "slave rights on the far stream");
    assert!(!att[0].1.outbound);
    assert_eq!(
        presences(&out),
        vec![presence(&alice, &alice, "connect", "dsps-b.example")]
    );
    let who = h.who(&alice);
    let shown: Vec<_> = who.iter().map(|p| (p.role, p.jid.as_str())).collect();
    assert_eq!(
        shown,
        vec![(Role::Master, ALICE), (Role::Relay, "dsps-b.example")]
    );
    let stats =
        StatsResult::try_from(h.ask_own(&alice, "get", "stats").payload.as_ref().unwrap()).unwrap();
    assert_eq!((stats.slavecount, stats.relaycount), (0, 1));
    // Droppable by the domain it is shown as.
    let out = h.admin(&alice, "", "<peer type='drop'>dsps-b.example</peer>");
    assert_eq!(closes(&out), vec![conn]);
}

#[test]
fn hellos_from_other_users_or_our_own_domain_are_still_refused() {
    let mut h = Harness::new();
    let alice = h.create(ALICE);
    let bob = h.join(&alice, "slave", BOB);
    for client in [MALLORY, &format!("{DOMAIN}/x")] {
        let conn = h.new_conn();
        let out = h.hello(conn, client, &bob.dsps.clone());
        assert_eq!(closes(&out), vec![conn], "{client}");
    }
}
