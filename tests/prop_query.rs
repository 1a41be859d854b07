//! Properties of the stanza models: the `<iq/>` envelope (`proto::iq`) and the
//! `jabber:iq:dsps` queries (`proto::query`).
//!
//! - Arbitrary minidom Elements (bounded depth, names and attributes drawn from the
//!   ones the parsers look at, plus random ones) never panic any parser, alone or as
//!   the payload of an iq, and every value a parser accepts renders back to an Element
//!   that parses to the same value (the parsed form is canonical).
//! - Generated valid requests, results and iq envelopes round-trip through Element,
//!   and through the XML text the link carries.
//!
//! Depth is bounded here because the parsers clone and drop Elements recursively:
//! bounding the depth of what reaches them is the component link reader's job
//! (issue 6, deliverable 1), not theirs.

mod prop_support;

use dsps::proto::iq::{Iq, IqKind};
use dsps::proto::query::{
    auth, auth_key, AdminAction, AdminReport, AdminRequest, CreateRequest, CreateResult, Feature,
    Invitation, PresencePush, RelayTarget, Request, Role, StatsResult, WhoPeer, WhoResult,
};
use dsps::proto::xml::{with_ns, NS_CLIENT, NS_COMPONENT, NS_DSPS};
use minidom::rxml::NcName;
use minidom::Element;
use proptest::prelude::*;

const NAMES: [&str; 10] = [
    "iq", "query", "peer", "comment", "feature", "error", "text", "message", "x", "a",
];
const NAMESPACES: [&str; 6] = [
    NS_DSPS,
    NS_CLIENT,
    NS_COMPONENT,
    "urn:ietf:params:xml:ns:xmpp-stanzas",
    "urn:x",
    "",
];
const ATTRS: [&str; 18] = [
    "type",
    "id",
    "from",
    "to",
    "status",
    "expire",
    "wait",
    "maxpublic",
    "minthroughput",
    "port",
    "host",
    "acknowledge",
    "throughput",
    "protocol",
    "init",
    "code",
    "version",
    "mastercount",
];
const VALUES: [&str; 22] = [
    "get",
    "set",
    "result",
    "error",
    "create",
    "admin",
    "auth",
    "acknowledge",
    "who",
    "stats",
    "presence",
    "master",
    "slave",
    "relay",
    "drop",
    "connect",
    "0",
    "-1",
    "65536",
    "18446744073709551616",
    "1.5KB",
    " 20 ",
];

fn ncname() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(&NAMES[..]).prop_map(str::to_string),
        1 => "[a-z_][a-z0-9._-]{0,8}",
    ]
}

fn attr_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(&ATTRS[..]).prop_map(str::to_string),
        1 => "[a-z_][a-z0-9._-]{0,8}",
    ]
}

/// Text an XML document can carry (no control characters but tab and newline).
fn xml_text() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => proptest::sample::select(&VALUES[..]).prop_map(str::to_string),
        2 => "[ -~]{0,24}",
        1 => "[ -~\t\néü中\u{1F600}]{0,12}",
        1 => (0usize..3000).prop_map(|n| "v".repeat(n)),
    ]
}

fn attrs() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::vec((attr_name(), xml_text()), 0..5)
}

#[derive(Debug, Clone)]
enum Child {
    Element(Element),
    Text(String),
}

fn build(name: &str, ns: &str, attrs: &[(String, String)], children: Vec<Child>) -> Element {
    let mut b = Element::builder(name, ns);
    for (k, v) in attrs {
        b = b.attr(
            NcName::try_from(k.as_str()).expect("generated names are NCNames"),
            v.as_str(),
        );
    }
    for c in children {
        b = match c {
            Child::Element(e) => b.append(e),
            Child::Text(t) => b.append(t),
        };
    }
    b.build()
}

/// Any element, at most 5 levels deep.
fn element() -> impl Strategy<Value = Element> {
    let leaf = (ncname(), proptest::sample::select(&NAMESPACES[..]), attrs())
        .prop_map(|(n, ns, a)| build(&n, ns, &a, vec![]));
    leaf.prop_recursive(5, 64, 6, |inner| {
        (
            ncname(),
            proptest::sample::select(&NAMESPACES[..]),
            attrs(),
            proptest::collection::vec(
                prop_oneof![
                    3 => inner.prop_map(Child::Element),
                    1 => xml_text().prop_map(Child::Text),
                ],
                0..6,
            ),
        )
            .prop_map(|(n, ns, a, c)| build(&n, ns, &a, c))
    })
}

/// A `<query xmlns='jabber:iq:dsps' type='…'>` with arbitrary attributes and children,
/// so every branch of the DSPS parsers is reached.
fn dsps_query_like() -> impl Strategy<Value = Element> {
    (
        proptest::sample::select(&VALUES[..]),
        attrs(),
        proptest::collection::vec(
            prop_oneof![
                3 => element().prop_map(Child::Element),
                1 => xml_text().prop_map(Child::Text),
            ],
            0..8,
        ),
    )
        .prop_map(|(kind, mut a, c)| {
            a.retain(|(k, _)| k != "type");
            a.push(("type".into(), kind.to_string()));
            build("query", NS_DSPS, &a, c)
        })
}

fn iq_around(payload: Element, kind: &str) -> Element {
    Element::builder("iq", NS_COMPONENT)
        .attr(NcName::try_from("type").unwrap(), kind)
        .attr(NcName::try_from("id").unwrap(), "p1")
        .attr(NcName::try_from("from").unwrap(), "eve@localhost/x")
        .attr(NcName::try_from("to").unwrap(), "dsps.localhost")
        .append(payload)
        .build()
}

/// Runs every parser over `e`; each value one accepts must survive a render and a
/// second parse unchanged.
fn check_all_parsers(e: &Element) -> Result<(), TestCaseError> {
    if let Ok(iq) = Iq::parse(e) {
        for ns in [NS_COMPONENT, NS_CLIENT] {
            prop_assert_eq!(Iq::parse(&iq.to_element(ns)), Ok(iq.clone()));
        }
        let _ = (iq.dsps_type(), iq.error_code());
    }
    match Request::parse(e) {
        Ok(Request::Create(c)) => {
            prop_assert_eq!(Request::parse(&Element::from(&c)), Ok(Request::Create(c)))
        }
        Ok(Request::Admin(a)) => {
            prop_assert_eq!(Request::parse(&Element::from(&a)), Ok(Request::Admin(a)))
        }
        Ok(Request::Auth(key)) => {
            prop_assert_eq!(Request::parse(&auth(&key)), Ok(Request::Auth(key)))
        }
        Ok(_) => prop_assert!(e.is("query", NS_DSPS)),
        Err(_) => {}
    }
    if let Some(key) = auth_key(e) {
        prop_assert_eq!(auth_key(&auth(&key)), Some(key));
    }
    macro_rules! canonical {
        ($($t:ty),*) => {$(
            if let Ok(v) = <$t>::try_from(e) {
                prop_assert_eq!(<$t>::try_from(&Element::from(&v)), Ok(v));
            }
        )*};
    }
    canonical!(
        CreateResult,
        Invitation,
        PresencePush,
        WhoResult,
        StatsResult,
        AdminReport
    );
    // Comments are re-emitted in another namespace: the copy keeps the shape.
    let moved = with_ns(e, NS_DSPS, NS_COMPONENT);
    prop_assert_eq!(moved.name(), e.name());
    prop_assert_eq!(moved.children().count(), e.children().count());
    Ok(())
}

// ---- valid values ----------------------------------------------------------------------

/// Element text that survives the parsers' trimming: no surrounding whitespace.
fn trimmed() -> impl Strategy<Value = String> {
    "[!-~]([ -~]{0,30}[!-~])?"
}

fn jid() -> impl Strategy<Value = String> {
    "[a-z]{1,8}@[a-z]{1,8}\\.[a-z]{2,4}(/[A-Za-z0-9]{1,12})?"
}

fn comment() -> impl Strategy<Value = Element> {
    (trimmed(), proptest::option::of("[a-z0-9 ]{1,16}")).prop_map(|(text, note)| {
        let mut b = Element::builder("comment", NS_DSPS);
        if let Some(n) = note {
            b = b.attr(NcName::try_from("note").unwrap(), n);
        }
        b.append(text).build()
    })
}

fn comments() -> impl Strategy<Value = Vec<Element>> {
    proptest::collection::vec(comment(), 0..3)
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Master), Just(Role::Slave), Just(Role::Relay)]
}

fn attr_value() -> impl Strategy<Value = String> {
    "[ -~]{0,20}"
}

fn request() -> impl Strategy<Value = Request> {
    let create = (
        proptest::option::of(attr_value()),
        any::<u32>(),
        proptest::collection::vec(
            (
                jid(),
                proptest::option::of(any::<u16>()),
                proptest::option::of(attr_value()),
            )
                .prop_map(|(jid, port, host)| RelayTarget { jid, port, host }),
            0..3,
        ),
        comments(),
    )
        .prop_map(|(minthroughput, maxpublic, relays, comments)| {
            Request::Create(CreateRequest {
                minthroughput,
                maxpublic,
                relays,
                comments,
            })
        });
    let action = prop_oneof![
        jid().prop_map(AdminAction::Drop),
        (prop_oneof![Just(Role::Master), Just(Role::Slave)], jid())
            .prop_map(|(r, j)| AdminAction::Invite(r, j)),
    ];
    let admin = (
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<u64>()),
        comments(),
        proptest::collection::vec(action, 0..5),
    )
        .prop_map(|(expire, wait, comments, actions)| {
            Request::Admin(AdminRequest {
                expire,
                wait,
                comments,
                actions,
            })
        });
    prop_oneof![
        create,
        admin,
        "[A-Za-z0-9]{0,40}".prop_map(Request::Auth),
        attr_value().prop_map(Request::Acknowledge),
        Just(Request::Who),
        Just(Request::Stats),
    ]
}

fn request_element(r: &Request) -> Element {
    match r {
        Request::Create(c) => Element::from(c),
        Request::Admin(a) => Element::from(a),
        Request::Auth(k) => auth(k),
        Request::Acknowledge(s) => dsps::proto::query::acknowledge(s),
        Request::Who => dsps::proto::query::empty("who"),
        Request::Stats => dsps::proto::query::empty("stats"),
    }
}

fn features() -> impl Strategy<Value = Vec<Feature>> {
    proptest::collection::vec(
        (attr_value(), attr_value()).prop_map(|(kind, version)| Feature { kind, version }),
        0..3,
    )
}

/// Parses the XML text of `e`, as the far end of the link would.
fn through_text(e: &Element) -> Element {
    String::from(e)
        .parse()
        .unwrap_or_else(|err| panic!("{} did not parse back: {err}", String::from(e)))
}

proptest! {
    #![proptest_config(prop_support::config())]

    #[test]
    fn arbitrary_elements_never_panic_the_parsers(e in element()) {
        check_all_parsers(&e)?;
        for child in e.children() {
            check_all_parsers(child)?;
        }
        for kind in ["get", "set", "result", "error"] {
            check_all_parsers(&iq_around(e.clone(), kind))?;
        }
    }

    #[test]
    fn arbitrary_dsps_queries_never_panic_the_parsers(q in dsps_query_like(), kind in "get|set|result|error") {
        check_all_parsers(&q)?;
        let iq = iq_around(q.clone(), &kind);
        check_all_parsers(&iq)?;
        let parsed = Iq::parse(&iq).unwrap();
        prop_assert_eq!(parsed.dsps_type(), q.attr("type"));
    }

    #[test]
    fn valid_requests_round_trip(r in request()) {
        let e = request_element(&r);
        prop_assert_eq!(Request::parse(&e), Ok(r.clone()));
        prop_assert_eq!(Request::parse(&through_text(&e)), Ok(r));
    }

    #[test]
    fn valid_results_round_trip(
        wait in any::<u64>(), host in attr_value(), port in any::<u16>(),
        minthroughput in attr_value(), protocol in attr_value(), feats in features(),
        role in role(), inviters in proptest::collection::vec(trimmed(), 0..3),
        comments in comments(),
        statuses in proptest::collection::vec((attr_value(), trimmed()), 0..4),
        who in proptest::collection::vec(
            (role(), "[0-9]{0,6}", attr_value(), attr_value(), trimmed()), 0..4),
        counts in proptest::collection::vec(any::<u32>(), 5),
        init in any::<u64>(),
    ) {
        macro_rules! round_trip {
            ($t:ty, $v:expr) => {{
                let v: $t = $v;
                let e = Element::from(&v);
                prop_assert_eq!(<$t>::try_from(&e), Ok(v.clone()));
                prop_assert_eq!(<$t>::try_from(&through_text(&e)), Ok(v));
            }};
        }
        round_trip!(CreateResult, CreateResult {
            wait, host: host.clone(), port, minthroughput: minthroughput.clone(),
            protocol: protocol.clone(), features: feats.clone(),
            public: (port % 2 == 0).then(|| host.clone()),
        });
        round_trip!(Invitation, Invitation {
            role, expire: wait, inviters: inviters.clone(), comments: comments.clone(),
        });
        round_trip!(PresencePush, PresencePush { peers: statuses.clone() });
        round_trip!(AdminReport, AdminReport { peers: statuses });
        round_trip!(WhoResult, WhoResult {
            peers: who.into_iter().map(|(role, id, status, throughput, jid)| WhoPeer {
                role, id, status, throughput, jid,
            }).collect(),
        });
        round_trip!(StatsResult, StatsResult {
            init, protocol, port, minthroughput,
            expiredefault: wait, waitdefault: wait / 2, wait: wait / 3,
            public: counts[0], maxpublic: counts[1], mastercount: counts[2],
            slavecount: counts[3], relaycount: counts[4],
            features: feats, peers: inviters, comments,
        });
    }

    #[test]
    fn iq_envelopes_round_trip(
        kind in prop_oneof![Just(IqKind::Get), Just(IqKind::Set), Just(IqKind::Result), Just(IqKind::Error)],
        id in "[ -~]{0,16}", from in proptest::option::of(jid()), to in proptest::option::of(jid()),
        payload in proptest::option::of(request()),
        with_error in any::<bool>(),
    ) {
        let iq = Iq {
            kind,
            id,
            from: from.unwrap_or_default(),
            to: to.unwrap_or_default(),
            payload: payload.as_ref().map(request_element),
            error: with_error.then(|| {
                dsps::proto::error::DspsError::BadRequest.to_element(NS_COMPONENT, Some("why"))
            }),
        };
        for ns in [NS_COMPONENT, NS_CLIENT] {
            let e = iq.to_element(ns);
            prop_assert_eq!(Iq::parse(&e), Ok(iq.clone()));
            // Text drops empty text nodes (`auth("")`), so compare what they mean.
            let back = Iq::parse(&through_text(&e)).unwrap();
            prop_assert_eq!(
                (back.kind, &back.id, &back.from, &back.to, back.error_code()),
                (iq.kind, &iq.id, &iq.from, &iq.to, iq.error_code())
            );
            prop_assert_eq!(
                back.payload.as_ref().map(Request::parse),
                iq.payload.as_ref().map(Request::parse)
            );
        }
        if let Some(r) = payload {
            let parsed = Iq::parse(&iq.to_element(NS_COMPONENT)).unwrap();
            prop_assert_eq!(Request::parse(parsed.payload.as_ref().unwrap()), Ok(r));
        }
    }

    /// A number in a result is read as written, or, when it does not fit its field,
    /// as absent (XEP: "If value unparseable … default is used"); never wrapped
    /// around. `port='70000'` once read as port 4464.
    #[test]
    fn numbers_read_as_written_or_not_at_all(v in prop_oneof![0u64..70_000, any::<u64>()]) {
        let text = v.to_string();
        let mut e = Element::from(&StatsResult::default());
        for k in ["port", "public", "maxpublic", "mastercount", "slavecount", "relaycount", "init"] {
            dsps::proto::xml::set_attr(&mut e, k, text.as_str());
        }
        let s = StatsResult::try_from(&e).unwrap();
        let as16 = u16::try_from(v).unwrap_or(0);
        let as32 = u32::try_from(v).unwrap_or(0);
        prop_assert_eq!(s.port, as16);
        prop_assert_eq!(
            [s.public, s.maxpublic, s.mastercount, s.slavecount, s.relaycount],
            [as32; 5]
        );
        prop_assert_eq!(s.init, v);
    }
}
