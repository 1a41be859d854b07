//! Pure stanza helpers for the c2s client: namespaces, id generation, iq builders and
//! the RFC 6120 rule that decides whether an incoming iq answers one of ours.
//!
//! Nothing here does I/O, so it is unit-tested without a server.

use std::sync::atomic::{AtomicU64, Ordering};

use minidom::rxml::xml_ncname;
use minidom::Element;
use xmpp_parsers::jid::Jid;

use crate::proto::error::Condition;

/// Default namespace of a client stream (RFC 6120 §4.8.3).
pub(crate) const NS_CLIENT: &str = "jabber:client";
/// Namespace of the stanza error conditions (RFC 6120 §8.3.3).
const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
/// XEP-0199 ping, used as the keepalive.
const NS_PING: &str = "urn:xmpp:ping";

/// Makes stanza ids that are unique per client and hard to guess across clients.
///
/// A random prefix keeps two clients (or two runs) from reusing each other's ids; the
/// counter keeps ids unique within one client without any locking.
#[derive(Debug)]
pub(crate) struct IdGen {
    prefix: String,
    counter: AtomicU64,
}

impl IdGen {
    /// A generator with a fresh random prefix.
    pub(crate) fn new() -> IdGen {
        IdGen {
            prefix: format!("{:08x}", rand::random::<u32>()),
            counter: AtomicU64::new(0),
        }
    }

    /// The next id, such as `"1a2b3c4d-7"`.
    pub(crate) fn next_id(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{}-{}", self.prefix, n)
    }
}

/// Builds `<iq type=kind id=id to=to>payload</iq>` in the client namespace.
///
/// The element is in `jabber:client`, the stream's default namespace, so no stray xmlns
/// is written. `to` is optional because the bind and session requests go to the server
/// without one.
pub(crate) fn iq(kind: &str, id: &str, to: Option<&str>, payload: Option<Element>) -> Element {
    let mut builder = Element::builder("iq", NS_CLIENT)
        .attr(xml_ncname!("type").into(), kind)
        .attr(xml_ncname!("id").into(), id)
        .attr(xml_ncname!("to").into(), to);
    if let Some(payload) = payload {
        builder = builder.append(payload);
    }
    builder.build()
}

/// The XEP-0199 keepalive ping to `domain`.
pub(crate) fn ping(id: &str, domain: &str) -> Element {
    iq(
        "get",
        id,
        Some(domain),
        Some(Element::bare("ping", NS_PING)),
    )
}

/// A result iq answering `request`: same id, addressed back to its sender.
///
/// `from` is left out on purpose: Prosody stamps every c2s stanza with the session's full
/// JID anyway (core/stanza_router.lua), and RFC 6120 §8.1.2.1 lets the server do so.
pub(crate) fn result_for(request: &Element, payload: Option<Element>) -> Element {
    iq(
        "result",
        request.attr("id").unwrap_or_default(),
        request.attr("from"),
        payload,
    )
}

/// An error iq answering `request` with the given defined condition and its type.
pub(crate) fn error_for(request: &Element, condition: Condition) -> Element {
    let error = Element::builder("error", NS_CLIENT)
        .attr(xml_ncname!("type").into(), condition.error_type())
        .append(Element::bare(condition.name(), NS_STANZAS))
        .build();
    iq(
        "error",
        request.attr("id").unwrap_or_default(),
        request.attr("from"),
        Some(error),
    )
}

/// True for an `<iq/>` of type `result` or `error`: the kinds that answer a request.
pub(crate) fn is_iq_response(stanza: &Element) -> bool {
    stanza.is("iq", NS_CLIENT) && matches!(stanza.attr("type"), Some("result" | "error"))
}

/// True for an `<iq/>` of type `get` or `set`: the kinds that must be answered.
pub(crate) fn is_iq_request(stanza: &Element) -> bool {
    stanza.is("iq", NS_CLIENT) && matches!(stanza.attr("type"), Some("get" | "set"))
}

/// Does `stanza`, an iq response with our id, really come from `expected_from`?
///
/// RFC 6120 §8.1.2.1: a response must come from the entity the request was sent to. A
/// missing `from` stands for the user's bare JID or the server, so it only counts when
/// the request went to one of those (`own_bare`, `own_domain`). JIDs are compared after
/// normalisation, so `Localhost` matches `localhost`.
pub(crate) fn comes_from(
    stanza: &Element,
    expected_from: &str,
    own_bare: &str,
    own_domain: &str,
) -> bool {
    match stanza.attr("from") {
        // XEP-0037 "Connection waiting": a create sent to the bare DSPS JID is
        // answered from the stream's new full JID, so a request to a bare JID
        // accepts an answer from any resource of it.
        Some(from) => {
            same_jid(from, expected_from)
                || (!expected_from.contains('/')
                    && from
                        .split_once('/')
                        .is_some_and(|(b, _)| same_jid(b, expected_from)))
        }
        None => same_jid(expected_from, own_bare) || same_jid(expected_from, own_domain),
    }
}

/// Compares two JIDs after normalisation, falling back to plain string equality when
/// either does not parse.
fn same_jid(a: &str, b: &str) -> bool {
    match (Jid::new(a), Jid::new(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> Element {
        xml.parse().expect("test XML is well-formed")
    }

    #[test]
    fn ids_are_unique_and_share_a_prefix() {
        let ids = IdGen::new();
        let (a, b) = (ids.next_id(), ids.next_id());
        assert_ne!(a, b);
        assert_eq!(a.split('-').next(), b.split('-').next());
    }

    #[test]
    fn iq_has_type_id_to_and_payload() {
        let elem = iq(
            "get",
            "x1",
            Some("localhost"),
            Some(Element::bare("ping", NS_PING)),
        );
        let expected = parse(
            "<iq xmlns='jabber:client' type='get' id='x1' to='localhost'>\
             <ping xmlns='urn:xmpp:ping'/></iq>",
        );
        assert_eq!(elem, expected);
    }

    #[test]
    fn result_swaps_address_and_keeps_id() {
        let request = parse(
            "<iq xmlns='jabber:client' type='set' id='q7' from='alice@localhost/a' \
             to='bob@localhost/b'><query xmlns='jabber:iq:dsps'/></iq>",
        );
        let reply = result_for(&request, None);
        assert_eq!(reply.attr("type"), Some("result"));
        assert_eq!(reply.attr("id"), Some("q7"));
        assert_eq!(reply.attr("to"), Some("alice@localhost/a"));
        assert_eq!(reply.children().count(), 0);
    }

    #[test]
    fn error_reply_carries_condition() {
        let request = parse("<iq xmlns='jabber:client' type='get' id='e1' from='a@b/c'/>");
        let reply = error_for(&request, Condition::ResourceConstraint);
        let error = reply.get_child("error", NS_CLIENT).expect("error child");
        assert_eq!(error.attr("type"), Some("wait"));
        assert!(error.has_child("resource-constraint", NS_STANZAS));
    }

    #[test]
    fn response_kinds_are_told_apart_from_requests() {
        let result = parse("<iq xmlns='jabber:client' type='result' id='1'/>");
        let set = parse("<iq xmlns='jabber:client' type='set' id='1'/>");
        let message = parse("<message xmlns='jabber:client' type='error' id='1'/>");
        assert!(is_iq_response(&result) && !is_iq_request(&result));
        assert!(is_iq_request(&set) && !is_iq_response(&set));
        assert!(!is_iq_response(&message) && !is_iq_request(&message));
    }

    #[test]
    fn response_must_come_from_the_addressee() {
        let reply =
            parse("<iq xmlns='jabber:client' type='result' id='1' from='Bob@Localhost/r'/>");
        assert!(comes_from(
            &reply,
            "bob@localhost/r",
            "a@localhost",
            "localhost"
        ));
        assert!(!comes_from(
            &reply,
            "eve@localhost/r",
            "a@localhost",
            "localhost"
        ));
    }

    #[test]
    fn missing_from_counts_only_for_own_account_or_server() {
        let reply = parse("<iq xmlns='jabber:client' type='result' id='1'/>");
        assert!(comes_from(&reply, "localhost", "a@localhost", "localhost"));
        assert!(comes_from(
            &reply,
            "a@localhost",
            "a@localhost",
            "localhost"
        ));
        assert!(!comes_from(
            &reply,
            "bob@localhost/r",
            "a@localhost",
            "localhost"
        ));
    }
}
