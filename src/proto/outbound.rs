//! The last guard before the component link: no stanza dsps sends is larger than
//! `[component] max_stanza_size`.
//!
//! Prosody closes a component's stream when the component sends a stanza over its
//! `component_stanza_size_limit` (512 KiB by default), which would cut every user
//! off, so one oversized stanza must never be sent whole. The registry already keeps
//! what it sends small (bounded comments and attributes, a public `stats` listing cut
//! to fit, invitations that would not fit refused); this guard catches whatever still
//! gets through, e.g. a `who` of a stream with a thousand long JIDs.
//!
//! An oversized `result` answers a client's get or set, and RFC 6120 wants that
//! request answered, so an error goes instead: `500 resource-constraint` (type
//! `wait`, the XEP-0086 pairing), because the limit is the service's, not a fault in
//! the request. Anything else (an oversized error, a push or request of ours) is
//! dropped. The caller logs what happened, once per stanza.

use minidom::Element;

use super::error::DspsError;
use super::iq::{Iq, IqKind};
use super::limits::{size_within, Limit, OverLimit};
use super::xml::get_attr;

/// What becomes of one outgoing stanza.
#[derive(Debug, PartialEq)]
pub enum Outbound {
    /// It fits: send it as it is.
    Send(Element),
    /// It was a result that does not fit: send this error reply instead.
    Replaced(Element),
    /// It does not fit and cannot be replaced: send nothing.
    Dropped,
}

/// Checks `stanza` against `max` bytes (serialised on its own, an upper bound of
/// what the link writes).
pub fn check(stanza: Element, max: usize) -> Outbound {
    if size_within(&stanza, max).is_some() {
        return Outbound::Send(stanza);
    }
    if !is_result(&stanza) {
        return Outbound::Dropped;
    }
    let text = OverLimit {
        limit: Limit::StanzaSize("reply"),
        max,
    }
    .to_string();
    let error = resource_constraint_instead(&stanza, &text);
    // With a huge id or address even the error would not fit.
    match size_within(&error, max) {
        Some(_) => Outbound::Replaced(error),
        None => Outbound::Dropped,
    }
}

/// The `500 resource-constraint` error (type `wait`) that goes instead of the iq
/// result `stanza`, to the same request, with `text`.
pub fn resource_constraint_instead(stanza: &Element, text: &str) -> Element {
    let ns = stanza.ns();
    let s = |name: &str| get_attr(stanza, name).unwrap_or("").to_string();
    Iq {
        kind: IqKind::Error,
        id: s("id"),
        from: s("from"),
        to: s("to"),
        payload: None,
        error: Some(DspsError::ResourceConstraint.to_element(&ns, Some(text))),
    }
    .to_element(&ns)
}

/// True for an iq result: the one kind of stanza a user can make dsps send at will.
pub fn is_result(stanza: &Element) -> bool {
    stanza.name() == "iq" && get_attr(stanza, "type") == Some("result")
}

/// [`check`], logging a stanza that is replaced or dropped: what is left to send.
pub fn guard(stanza: Element, max: usize) -> Option<Element> {
    if size_within(&stanza, max).is_some() {
        return Some(stanza);
    }
    let what = format!(
        "<{} type='{}' to='{}'>",
        stanza.name(),
        get_attr(&stanza, "type").unwrap_or(""),
        get_attr(&stanza, "to").unwrap_or("")
    );
    match check(stanza, max) {
        Outbound::Send(e) => Some(e),
        Outbound::Replaced(e) => {
            tracing::warn!(
                stanza = %what,
                max_stanza_size = max,
                "reply larger than max_stanza_size; sent 500 resource-constraint instead"
            );
            Some(e)
        }
        Outbound::Dropped => {
            tracing::warn!(
                stanza = %what,
                max_stanza_size = max,
                "stanza larger than max_stanza_size dropped"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::xml::{NS_COMPONENT, NS_STANZAS};

    fn iq(kind: &str, body_bytes: usize) -> Element {
        format!(
            "<iq xmlns='jabber:component:accept' type='{kind}' id='q1' from='dsps.localhost/r' to='a@b/c'><query xmlns='jabber:iq:dsps' type='stats'><comment>{}</comment></query></iq>",
            "x".repeat(body_bytes)
        )
        .parse()
        .unwrap()
    }

    #[test]
    fn a_stanza_at_the_limit_is_sent_as_it_is() {
        let e = iq("result", 1000);
        let len = String::from(&e).len();
        assert_eq!(check(e.clone(), len), Outbound::Send(e.clone()));
        assert_eq!(guard(e.clone(), len), Some(e));
    }

    #[test]
    fn an_oversized_result_becomes_a_500_error_to_the_same_request() {
        let e = iq("result", 1000);
        let len = String::from(&e).len();
        let Outbound::Replaced(r) = check(e, len - 1) else {
            panic!("not replaced")
        };
        assert!(String::from(&r).len() < len - 1);
        let r = Iq::parse(&r).unwrap();
        assert_eq!(r.kind, IqKind::Error);
        assert_eq!(
            (r.id.as_str(), r.from.as_str(), r.to.as_str()),
            ("q1", "dsps.localhost/r", "a@b/c")
        );
        assert_eq!(r.error_code(), Some(500));
        let error = r.error.unwrap();
        assert_eq!(get_attr(&error, "type"), Some("wait"));
        assert!(error.has_child("resource-constraint", NS_STANZAS));
        let text = error.get_child("text", NS_STANZAS).unwrap().text();
        assert_eq!(
            text,
            format!("reply larger than component.max_stanza_size ({})", len - 1)
        );
        assert!(r.payload.is_none());
        let _ = NS_COMPONENT;
    }

    #[test]
    fn oversized_pushes_requests_and_errors_are_dropped() {
        for kind in ["set", "get", "error"] {
            assert_eq!(check(iq(kind, 1000), 500), Outbound::Dropped, "{kind}");
            assert_eq!(guard(iq(kind, 1000), 500), None, "{kind}");
        }
        let m: Element =
            "<message xmlns='jabber:component:accept' to='a@b'><body>hello</body></message>"
                .parse()
                .unwrap();
        assert_eq!(check(m, 10), Outbound::Dropped);
    }

    #[test]
    fn a_result_whose_error_would_not_fit_either_is_dropped() {
        let id = "i".repeat(600);
        let e: Element = format!(
            "<iq xmlns='jabber:component:accept' type='result' id='{id}' from='d' to='a@b/c'/>"
        )
        .parse()
        .unwrap();
        assert_eq!(check(e, 500), Outbound::Dropped);
    }
}
