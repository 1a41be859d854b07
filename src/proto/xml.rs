//! Small helpers over minidom for building and reading stanzas.
//!
//! minidom 0.19 wants attribute names as `rxml::NcName`; every name we write is a
//! literal from the specs, so the conversion lives here once instead of at each call.

use minidom::{Element, ElementBuilder, IntoAttributeValue};

/// Namespace of stanzas on the XEP-0114 component stream.
pub const NS_COMPONENT: &str = "jabber:component:accept";
/// Namespace of stanzas on a client (c2s) stream.
pub const NS_CLIENT: &str = "jabber:client";
/// The DSPS payload namespace.
pub const NS_DSPS: &str = "jabber:iq:dsps";
/// RFC 6120 stanza error conditions.
pub const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

/// Adds attribute `name` (a literal NCName from the specs) to a builder.
pub fn attr(b: ElementBuilder, name: &str, value: impl IntoAttributeValue) -> ElementBuilder {
    let name = minidom::rxml::NcName::try_from(name)
        .expect("attribute names in this crate are literal NCNames");
    b.attr(name, value)
}

/// Sets attribute `name` (a literal NCName from the specs) on an element.
pub fn set_attr(e: &mut Element, name: &str, value: impl IntoAttributeValue) {
    let name = minidom::rxml::NcName::try_from(name)
        .expect("attribute names in this crate are literal NCNames");
    e.set_attr(minidom::rxml::Namespace::NONE, name, value);
}

/// Reads an attribute by its plain name.
pub fn get_attr<'a>(e: &'a Element, name: &'a str) -> Option<&'a str> {
    e.attr(name)
}

/// `e` serialised on its own, or `None` if minidom cannot write it (`String::from`
/// would panic instead).
pub fn to_xml(e: &Element) -> Option<String> {
    let mut out = Vec::new();
    e.write_to(&mut out).ok()?;
    String::from_utf8(out).ok()
}

/// The first child element, if any (iq payloads have exactly one).
pub fn first_child(e: &Element) -> Option<&Element> {
    e.children().next()
}

/// A copy of `e` with its namespace (and that of its children that shared it) moved
/// from `from_ns` to `to_ns`. Used for `<comment>` blocks, which we keep as the client
/// sent them but must re-emit inside our own `<query>`.
pub fn with_ns(e: &Element, from_ns: &str, to_ns: &str) -> Element {
    let ns = if e.ns() == from_ns {
        to_ns.to_string()
    } else {
        e.ns()
    };
    let mut b = Element::builder(e.name(), ns);
    for ((attr_ns, name), value) in e.attrs().iter() {
        if *attr_ns == minidom::rxml::Namespace::NONE {
            b = b.attr(name.clone(), value.clone());
        }
    }
    for node in e.nodes() {
        match node {
            minidom::Node::Element(child) => b = b.append(with_ns(child, from_ns, to_ns)),
            minidom::Node::Text(t) => b = b.append(t.clone()),
        }
    }
    b.build()
}
