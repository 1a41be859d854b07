use super::*;

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' \
     xmlns:stream='http://etherx.jabber.org/streams' id='abc123' from='dsps.localhost'>";

fn read_all(limits: ReaderLimits, chunks: &[&[u8]]) -> Result<Vec<Inbound>, ReadFailure> {
    let mut r = StanzaReader::new(limits);
    let mut out = Vec::new();
    for c in chunks {
        r.feed(c, &mut out)?;
    }
    Ok(out)
}

fn stanzas(items: &[Inbound]) -> Vec<&Element> {
    items
        .iter()
        .filter_map(|i| match i {
            Inbound::Stanza(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn nested(depth: usize) -> String {
    format!(
        "<message to='dsps.localhost' from='eve@localhost/x' id='m1'><x xmlns='urn:x'>{}{}</x></message>",
        "<a>".repeat(depth),
        "</a>".repeat(depth)
    )
}

#[test]
fn header_and_stanza_are_read() {
    let doc = format!(
        "{HEADER}<iq type='get' id='q1' from='a@b/c' to='dsps.localhost' xml:lang='en'>\
         <query xmlns='jabber:iq:dsps' type='stats'>hi <b>there</b></query></iq> "
    );
    let items = read_all(ReaderLimits::default(), &[doc.as_bytes()]).unwrap();
    assert!(matches!(&items[0], Inbound::Header { id: Some(id) } if id == "abc123"));
    let s = stanzas(&items);
    assert_eq!(s.len(), 1);
    let iq = s[0];
    assert!(iq.is("iq", "jabber:component:accept"));
    assert_eq!(iq.attr("id"), Some("q1"));
    assert_eq!(iq.attr("from"), Some("a@b/c"));
    let q = iq.children().next().unwrap();
    assert!(q.is("query", "jabber:iq:dsps"));
    assert_eq!(q.attr("type"), Some("stats"));
    assert_eq!(q.text(), "hi ");
    assert_eq!(q.children().next().unwrap().text(), "there");
}

#[test]
fn byte_by_byte_reads_the_same_as_all_at_once() {
    let doc = format!(
        "{HEADER}<message to='x' id='1'><body>a &amp; b</body></message><presence/>\
         <iq type='set' id='2'><q xmlns='urn:q' a='&apos;'/></iq>"
    );
    let whole = read_all(ReaderLimits::default(), &[doc.as_bytes()]).unwrap();
    let bytes: Vec<&[u8]> = doc.as_bytes().chunks(1).collect();
    let split = read_all(ReaderLimits::default(), &bytes).unwrap();
    let a: Vec<String> = stanzas(&whole).iter().map(|e| String::from(*e)).collect();
    let b: Vec<String> = stanzas(&split).iter().map(|e| String::from(*e)).collect();
    assert_eq!(a.len(), 3);
    assert_eq!(a, b);
}

#[test]
fn deep_nesting_is_rejected_without_building_and_the_stream_goes_on() {
    let doc = format!(
        "{HEADER}{}<iq type='get' id='after' to='dsps.localhost'/>",
        nested(5000)
    );
    let items = read_all(ReaderLimits::default(), &[doc.as_bytes()]).unwrap();
    let rejected: Vec<_> = items
        .iter()
        .filter_map(|i| match i {
            Inbound::Rejected { head, bound } => Some((head, bound)),
            _ => None,
        })
        .collect();
    assert_eq!(rejected.len(), 1);
    let (head, bound) = rejected[0];
    assert_eq!(head.name, "message");
    assert_eq!(head.id.as_deref(), Some("m1"));
    assert_eq!(head.from.as_deref(), Some("eve@localhost/x"));
    assert_eq!(*bound, Bound::Depth(64));
    let s = stanzas(&items);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].attr("id"), Some("after"));
}

#[test]
fn two_hundred_thousand_levels_are_skipped_without_recursion() {
    // Far past anything a server forwards; proves the skip path does not recurse.
    let limits = ReaderLimits {
        max_stanza_bytes: 16 << 20,
        ..ReaderLimits::default()
    };
    let doc = format!("{HEADER}{}", nested(200_000));
    let items = read_all(limits, &[doc.as_bytes()]).unwrap();
    assert!(matches!(items.last(), Some(Inbound::Rejected { .. })));
}

#[test]
fn depth_limit_is_exact() {
    let limits = ReaderLimits {
        max_depth: 4,
        ..ReaderLimits::default()
    };
    // message(1) x(2) a(3) a(4): at the limit.
    let ok = format!("{HEADER}{}", nested(2));
    let items = read_all(limits, &[ok.as_bytes()]).unwrap();
    assert_eq!(stanzas(&items).len(), 1);
    let over = format!("{HEADER}{}", nested(3));
    let items = read_all(limits, &[over.as_bytes()]).unwrap();
    assert!(matches!(
        items.last(),
        Some(Inbound::Rejected {
            bound: Bound::Depth(4),
            ..
        })
    ));
}

#[test]
fn long_attributes_and_names_up_to_the_stanza_limit_pass() {
    let value = "v".repeat(100_000);
    let name = "n".repeat(16_000);
    let doc = format!(
        "{HEADER}<iq type='get' id='big' to='dsps.localhost'><{name} xmlns='urn:x' \
         {name}='{value}'/></iq>"
    );
    let items = read_all(ReaderLimits::default(), &[doc.as_bytes()]).unwrap();
    let s = stanzas(&items);
    assert_eq!(s.len(), 1);
    let child = s[0].children().next().unwrap();
    assert_eq!(child.name(), name);
    assert_eq!(child.attr(name.as_str()).map(str::len), Some(100_000));
}

#[test]
fn too_many_bytes_is_rejected_and_the_stream_goes_on() {
    let limits = ReaderLimits {
        max_stanza_bytes: 1000,
        ..ReaderLimits::default()
    };
    let doc = format!(
        "{HEADER}<iq type='set' id='fat' from='e@l/r' to='dsps.localhost'><x xmlns='urn:x'>{}</x></iq>\
         <presence id='next'/>",
        "<b>text</b>".repeat(200)
    );
    let items = read_all(limits, &[doc.as_bytes()]).unwrap();
    assert!(items.iter().any(|i| matches!(i,
        Inbound::Rejected { head, bound: Bound::Bytes(1000) }
            if head.name == "iq" && head.id.as_deref() == Some("fat") && head.kind.as_deref() == Some("set"))));
    assert_eq!(stanzas(&items)[0].attr("id"), Some("next"));
}

#[test]
fn too_many_elements_is_rejected() {
    let limits = ReaderLimits {
        max_elements: 10,
        ..ReaderLimits::default()
    };
    let doc = format!("{HEADER}<message id='m'>{}</message>", "<a/>".repeat(11));
    let items = read_all(limits, &[doc.as_bytes()]).unwrap();
    assert!(matches!(
        items.last(),
        Some(Inbound::Rejected {
            bound: Bound::Elements(10),
            ..
        })
    ));
}

#[test]
fn a_token_longer_than_a_stanza_may_be_fails_the_stream() {
    let limits = ReaderLimits {
        max_stanza_bytes: 1000,
        ..ReaderLimits::default()
    };
    let doc = format!("{HEADER}<message a='{}'/>", "v".repeat(5000));
    assert!(read_all(limits, &[doc.as_bytes()]).is_err());
}

#[test]
fn stream_error_and_footer_are_reported() {
    let doc = format!(
        "{HEADER}<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>"
    );
    let items = read_all(ReaderLimits::default(), &[doc.as_bytes()]).unwrap();
    assert!(
        matches!(&items[1], Inbound::StreamError(e) if e.children().next().unwrap().name() == "conflict")
    );
    assert!(matches!(&items[2], Inbound::Footer));
}

#[test]
fn not_well_formed_input_fails() {
    for bad in [
        "<message></presence>",
        "<message a='1' a='2'/>",
        "<p:x/>",
        "\u{1}",
    ] {
        let doc = format!("{HEADER}{bad}");
        assert!(
            read_all(ReaderLimits::default(), &[doc.as_bytes()]).is_err(),
            "{bad:?} was accepted"
        );
    }
}

#[test]
fn a_wrong_root_fails() {
    let doc = "<html xmlns='x'>";
    assert!(read_all(ReaderLimits::default(), &[doc.as_bytes()]).is_err());
}
