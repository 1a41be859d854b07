//! Properties of the component link's reader (`xmpp::reader`, issue 6 deliverable 1):
//! bytes from the XMPP server in, whole stanzas out, with bounds no stanza gets past.
//!
//! - Arbitrary bytes after a stream header, fed in arbitrary pieces and under small
//!   random limits, never panic the reader (it may fail the stream, never crash).
//! - Generated stanzas come back as they were written, whole or split anywhere,
//!   between the header and the footer.
//! - A stanza nested deeper than `max_depth`, or with more than `max_elements`
//!   elements or `max_stanza_bytes` bytes, is rejected with its head kept, exactly at
//!   the bound, and the stanza after it is still read; nesting of up to 10 000 levels,
//!   fed in arbitrary pieces, is skipped without recursion.

mod prop_support;

use dsps::xmpp::reader::{Bound, Inbound, ReaderLimits, StanzaReader};
use minidom::rxml::NcName;
use minidom::{Element, Node};
use proptest::prelude::*;

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' \
     xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='dsps.localhost'>";
const FOOTER: &str = "</stream:stream>";
const NS: &str = "jabber:component:accept";

/// Feeds `bytes` in pieces ending at `cuts`; returns the items read before the first
/// failure, and whether the stream failed.
fn read(limits: ReaderLimits, bytes: &[u8], cuts: &[usize]) -> (Vec<Inbound>, bool) {
    let mut points: Vec<usize> = cuts.iter().map(|&c| c.min(bytes.len())).collect();
    points.push(bytes.len());
    points.sort_unstable();
    points.dedup();
    let mut reader = StanzaReader::new(limits);
    let mut out = Vec::new();
    let mut from = 0;
    for to in points {
        if reader.feed(&bytes[from..to], &mut out).is_err() {
            return (out, true);
        }
        from = to;
    }
    (out, false)
}

/// Element content as the parser keeps it: adjacent texts merged, empty ones gone.
fn nodes(e: &Element) -> Vec<Node> {
    let mut out: Vec<Node> = Vec::new();
    for n in e.nodes() {
        match n {
            Node::Text(t) if t.is_empty() => {}
            Node::Text(t) => match out.last_mut() {
                Some(Node::Text(prev)) => prev.push_str(t),
                _ => out.push(Node::Text(t.clone())),
            },
            Node::Element(c) => out.push(Node::Element(c.clone())),
        }
    }
    out
}

/// Whether two elements mean the same: names, namespaces, attributes and content
/// (prefix declarations aside).
fn same(a: &Element, b: &Element) -> bool {
    let attrs = |e: &Element| {
        let mut v: Vec<(String, String)> = e
            .attrs()
            .iter()
            .map(|((ns, k), v)| (format!("{ns:?}{k}"), v.to_string()))
            .collect();
        v.sort();
        v
    };
    let (na, nb) = (nodes(a), nodes(b));
    a.name() == b.name()
        && a.ns() == b.ns()
        && attrs(a) == attrs(b)
        && na.len() == nb.len()
        && na.iter().zip(&nb).all(|pair| match pair {
            (Node::Text(x), Node::Text(y)) => x == y,
            (Node::Element(x), Node::Element(y)) => same(x, y),
            _ => false,
        })
}

fn ncname() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(&["iq", "message", "presence", "query", "x", "a", "peer"][..])
            .prop_map(str::to_string),
        1 => "[a-z_][a-z0-9._-]{0,8}",
    ]
}

/// Attribute values and texts XML carries unchanged (no CR, no tabs or newlines in
/// attributes, which a parser normalises).
fn value() -> impl Strategy<Value = String> {
    prop_oneof!["[ -~]{0,20}", "[ -~éü中\u{1F600}<>&'\"]{0,8}"]
}

fn attrs() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::vec(
        (
            prop_oneof![
                proptest::sample::select(&["type", "id", "from", "to", "a"][..])
                    .prop_map(str::to_string),
                "[a-z][a-z0-9]{0,6}",
            ],
            value(),
        ),
        0..4,
    )
    .prop_map(|mut v| {
        // One value per name (a duplicate attribute is not well-formed).
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.dedup_by(|a, b| a.0 == b.0);
        v
    })
}

fn build(name: &str, ns: &str, attrs: &[(String, String)], children: Vec<Node>) -> Element {
    let mut b = Element::builder(name, ns);
    for (k, v) in attrs {
        b = b.attr(NcName::try_from(k.as_str()).unwrap(), v.as_str());
    }
    for c in children {
        b = b.append(c);
    }
    b.build()
}

/// A stanza at most 6 levels deep, in the stream's namespace, with children in a few
/// others.
fn stanza() -> impl Strategy<Value = Element> {
    let namespaces = &[NS, "jabber:iq:dsps", "urn:x", "urn:y:z"][..];
    let leaf = (ncname(), proptest::sample::select(namespaces), attrs())
        .prop_map(|(n, ns, a)| build(&n, ns, &a, vec![]));
    let tree = leaf.prop_recursive(5, 48, 5, move |inner| {
        (
            ncname(),
            proptest::sample::select(namespaces),
            attrs(),
            proptest::collection::vec(
                prop_oneof![
                    3 => inner.prop_map(Node::Element),
                    1 => prop_oneof![value(), "[a-z\n ]{1,10}"].prop_map(Node::Text),
                ],
                0..5,
            ),
        )
            .prop_map(|(n, ns, a, c)| build(&n, ns, &a, c))
    });
    (
        proptest::sample::select(&["iq", "message", "presence"][..]),
        attrs(),
        proptest::collection::vec(tree, 0..3),
    )
        .prop_map(|(name, a, children)| {
            build(
                name,
                NS,
                &a,
                children.into_iter().map(Node::Element).collect(),
            )
        })
}

/// Limits far below the config's ranges (`max_depth` 8.., `max_inbound_stanza_size`
/// 16 KiB..) to reach the skipping paths often; the byte limit stays above the stream
/// header's longest token, which no limit may cut (a token past it fails the stream).
fn small_limits() -> impl Strategy<Value = ReaderLimits> {
    (1usize..10, 64usize..4096, 1usize..40).prop_map(
        |(max_depth, max_stanza_bytes, max_elements)| ReaderLimits {
            max_depth,
            max_stanza_bytes,
            max_elements,
        },
    )
}

fn nested(levels: usize) -> String {
    format!(
        "<message to='dsps.localhost' id='deep'>{}{}</message>",
        "<a>".repeat(levels),
        "</a>".repeat(levels)
    )
}

const AFTER: &str = "<presence id='after'/>";

/// The stanza read after a rejected one, to show the stream went on.
fn after_is_read(items: &[Inbound]) -> bool {
    matches!(items.last(), Some(Inbound::Stanza(e)) if e.attr("id") == Some("after"))
}

proptest! {
    #![proptest_config(prop_support::config())]

    #[test]
    fn arbitrary_bytes_never_panic_the_reader(
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..400),
            proptest::collection::vec(
                proptest::sample::select(b"<>/a='\"x:= &;#\n!?[]-xmlns".to_vec()), 0..400),
            proptest::collection::vec(
                proptest::sample::select(vec![
                    "<a>", "</a>", "<b x='1'>", "</b>", "<c/>", "text", "&amp;", "<x:y>",
                    "</x:y>", " xmlns='urn:q'", "<iq type='get' id='i'>", "</iq>", "<!--",
                    "<![CDATA[", "]]>", "</stream:stream>", "<stream:error/>",
                ]),
                0..60,
            )
            .prop_map(|parts| parts.concat().into_bytes()),
        ],
        cuts in proptest::collection::vec(0usize..900, 0..8),
        limits in prop_oneof![Just(ReaderLimits::default()), small_limits()],
    ) {
        let mut bytes = HEADER.as_bytes().to_vec();
        bytes.extend_from_slice(&body);
        let (items, _failed) = read(limits, &bytes, &cuts);
        prop_assert!(matches!(items.first(), Some(Inbound::Header { id: Some(id) }) if id == "s1"), "no header first");
        for item in &items {
            if let Inbound::Rejected { head, .. } = item {
                prop_assert!(head.name.len() <= dsps::xmpp::reader::token_limit(limits));
            }
        }
    }

    #[test]
    fn generated_stanzas_come_back_whole_or_split(
        stanzas in proptest::collection::vec(stanza(), 0..6),
        cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..30),
    ) {
        let mut doc = HEADER.to_string();
        for s in &stanzas {
            doc.push_str(&String::from(s));
            doc.push(' ');
        }
        doc.push_str(FOOTER);
        let cuts: Vec<usize> = cuts.iter().map(|i| i.index(doc.len() + 1)).collect();
        let (items, failed) = read(ReaderLimits::default(), doc.as_bytes(), &cuts);
        prop_assert!(!failed, "the reader failed on {}", doc);
        prop_assert_eq!(items.len(), stanzas.len() + 2);
        prop_assert!(matches!(items[0], Inbound::Header { .. }), "no header first");
        prop_assert!(matches!(items[items.len() - 1], Inbound::Footer), "no footer last");
        for (item, want) in items[1..items.len() - 1].iter().zip(&stanzas) {
            match item {
                Inbound::Stanza(got) => prop_assert!(same(got, want), "{:?}\n!=\n{:?}", got, want),
                other => prop_assert!(false, "{:?} instead of {:?}", other, want),
            }
        }
    }

    /// `levels` nested elements under the stanza make it `levels + 1` deep.
    #[test]
    fn depth_bound_is_exact_and_the_stream_goes_on(
        levels in 0usize..120,
        max_depth in 1usize..100,
        cuts in proptest::collection::vec(0usize..2000, 0..6),
    ) {
        let limits = ReaderLimits { max_depth, ..ReaderLimits::default() };
        let doc = format!("{HEADER}{}{AFTER}", nested(levels));
        let (items, failed) = read(limits, doc.as_bytes(), &cuts);
        prop_assert!(!failed);
        prop_assert_eq!(items.len(), 3);
        match &items[1] {
            Inbound::Rejected { head, bound } => {
                prop_assert!(levels + 1 > max_depth, "{} levels rejected under {}", levels + 1, max_depth);
                prop_assert_eq!(*bound, Bound::Depth(max_depth));
                prop_assert_eq!((head.name.as_str(), head.id.as_deref()), ("message", Some("deep")));
            }
            Inbound::Stanza(_) => prop_assert!(levels < max_depth, "{} levels passed {}", levels + 1, max_depth),
            other => prop_assert!(false, "{:?}", other),
        }
        prop_assert!(after_is_read(&items));
    }

    /// A stanza with `children` empty children has `children + 1` elements.
    #[test]
    fn element_bound_is_exact_and_the_stream_goes_on(children in 0usize..100, max_elements in 1usize..80) {
        let limits = ReaderLimits { max_elements, ..ReaderLimits::default() };
        let doc = format!("{HEADER}<message id='many'>{}</message>{AFTER}", "<a/>".repeat(children));
        let (items, failed) = read(limits, doc.as_bytes(), &[]);
        prop_assert!(!failed);
        match &items[1] {
            Inbound::Rejected { bound, head } => {
                prop_assert!(children + 1 > max_elements);
                prop_assert_eq!(*bound, Bound::Elements(max_elements));
                prop_assert_eq!(head.id.as_deref(), Some("many"));
            }
            Inbound::Stanza(e) => {
                prop_assert!(children < max_elements);
                prop_assert_eq!(e.children().count(), children);
            }
            other => prop_assert!(false, "{:?}", other),
        }
        prop_assert!(after_is_read(&items));
    }

    /// A stanza no longer than `max_stanza_bytes` passes; one well over it is
    /// rejected (no single token is near the limit, so the stream goes on).
    #[test]
    fn byte_bound_and_the_stream_goes_on(pieces in 0usize..200, max in 64usize..3000) {
        let limits = ReaderLimits { max_stanza_bytes: max, ..ReaderLimits::default() };
        let stanza = format!("<message id='big'>{}</message>", "<b>0123456789</b>".repeat(pieces));
        let doc = format!("{HEADER}{stanza}{AFTER}");
        let (items, failed) = read(limits, doc.as_bytes(), &[]);
        prop_assert!(!failed);
        match &items[1] {
            Inbound::Stanza(_) => prop_assert!(stanza.len() <= max + 32, "{} bytes passed {}", stanza.len(), max),
            Inbound::Rejected { bound, .. } => {
                prop_assert!(stanza.len() > max, "{} bytes rejected under {}", stanza.len(), max);
                prop_assert_eq!(*bound, Bound::Bytes(max));
            }
            other => prop_assert!(false, "{:?}", other),
        }
        prop_assert!(after_is_read(&items));
    }
}

proptest! {
    // Each case parses up to 70 KB of nesting: an eighth of the usual cases.
    #![proptest_config(proptest::test_runner::Config {
        cases: (prop_support::config().cases / 8).max(1),
        ..prop_support::config()
    })]

    #[test]
    fn deep_nesting_is_skipped_without_recursion(
        levels in 65usize..10_000,
        cuts in proptest::collection::vec(0usize..100_000, 0..12),
    ) {
        let doc = format!("{HEADER}{}{AFTER}", nested(levels));
        let (items, failed) = read(ReaderLimits::default(), doc.as_bytes(), &cuts);
        prop_assert!(!failed);
        prop_assert!(
            matches!(&items[1], Inbound::Rejected { bound: Bound::Depth(64), .. }),
            "{:?}", items.get(1)
        );
        prop_assert!(after_is_read(&items));
    }
}
