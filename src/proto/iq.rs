//! The `<iq/>` envelope: kind, id, addresses and payload, in either namespace.
//!
//! We read stanzas as raw `minidom::Element`s rather than xmpp-parsers' typed `Iq`:
//! a typed parse fails on the XEP's legacy `<error code='405'>text</error>` form and
//! would make the stanza vanish (notes/xmpp-component.md §2), while an Element always
//! keeps `from`, `to` and `id` so we can still answer.

use minidom::Element;

use super::error::DspsError;
use super::xml::{attr, first_child, get_attr};

/// The four iq types of RFC 6120.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IqKind {
    /// A request for information.
    Get,
    /// A request that changes something.
    Set,
    /// A successful answer.
    Result,
    /// A failed answer.
    Error,
}

impl IqKind {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            IqKind::Get => "get",
            IqKind::Set => "set",
            IqKind::Result => "result",
            IqKind::Error => "error",
        }
    }

    /// Parses the attribute value.
    pub fn parse(s: &str) -> Option<IqKind> {
        match s {
            "get" => Some(IqKind::Get),
            "set" => Some(IqKind::Set),
            "result" => Some(IqKind::Result),
            "error" => Some(IqKind::Error),
            _ => None,
        }
    }

    /// Whether this kind is a request that must be answered.
    pub fn is_request(self) -> bool {
        matches!(self, IqKind::Get | IqKind::Set)
    }
}

/// An iq stanza with its addresses as strings (JIDs compared exactly as the server
/// stamped them).
#[derive(Debug, Clone, PartialEq)]
pub struct Iq {
    /// get, set, result or error.
    pub kind: IqKind,
    /// The stanza id.
    pub id: String,
    /// Sender (the server always stamps it for client traffic).
    pub from: String,
    /// Recipient.
    pub to: String,
    /// The first child element, if any (for errors, the non-`<error/>` child).
    pub payload: Option<Element>,
    /// The `<error/>` child of an error iq.
    pub error: Option<Element>,
}

/// Why an element is not a usable iq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IqParseError {
    /// Not an `<iq/>` at all.
    NotIq,
    /// Missing or unknown `type`.
    BadType,
}

impl Iq {
    /// Reads an `<iq/>` element; missing `from`/`to`/`id` read as empty strings.
    pub fn parse(e: &Element) -> Result<Iq, IqParseError> {
        if e.name() != "iq" {
            return Err(IqParseError::NotIq);
        }
        let kind = get_attr(e, "type")
            .and_then(IqKind::parse)
            .ok_or(IqParseError::BadType)?;
        let s = |n: &str| get_attr(e, n).unwrap_or("").to_string();
        let error = e.children().find(|c| c.name() == "error").cloned();
        let payload = e.children().find(|c| c.name() != "error").cloned();
        Ok(Iq {
            kind,
            id: s("id"),
            from: s("from"),
            to: s("to"),
            payload,
            error,
        })
    }

    /// A new request (or push) iq.
    pub fn request(kind: IqKind, id: &str, from: &str, to: &str, payload: Element) -> Iq {
        Iq {
            kind,
            id: id.to_string(),
            from: from.to_string(),
            to: to.to_string(),
            payload: Some(payload),
            error: None,
        }
    }

    /// The result answering this request, from the address it was sent to.
    pub fn result(&self, payload: Option<Element>) -> Iq {
        Iq {
            kind: IqKind::Result,
            id: self.id.clone(),
            from: self.to.clone(),
            to: self.from.clone(),
            payload,
            error: None,
        }
    }

    /// The result answering this request, sent from another address of ours
    /// (`create` is answered from the new peer resource, XEP "Connection waiting").
    pub fn result_from(&self, from: &str, payload: Option<Element>) -> Iq {
        let mut r = self.result(payload);
        r.from = from.to_string();
        r
    }

    /// The error answering this request. The request's payload is not echoed: it
    /// may be large and RFC 6120 makes it optional.
    pub fn error_reply(&self, err: DspsError, text: Option<&str>, ns: &str) -> Iq {
        Iq {
            kind: IqKind::Error,
            id: self.id.clone(),
            from: self.to.clone(),
            to: self.from.clone(),
            payload: None,
            error: Some(err.to_element(ns, text)),
        }
    }

    /// The legacy code of an error iq, if it has one.
    pub fn error_code(&self) -> Option<u16> {
        self.error
            .as_ref()
            .and_then(|e| get_attr(e, "code"))
            .and_then(|c| c.parse().ok())
    }

    /// The payload's `type` attribute when it is a `jabber:iq:dsps` query.
    pub fn dsps_type(&self) -> Option<&str> {
        let p = self.payload.as_ref()?;
        if p.is("query", super::xml::NS_DSPS) {
            get_attr(p, "type")
        } else {
            None
        }
    }

    /// Renders the stanza in namespace `ns` (the stream's default namespace, so no
    /// stray xmlns is written on the wire).
    pub fn to_element(&self, ns: &str) -> Element {
        let mut b = attr(Element::builder("iq", ns), "type", self.kind.as_str());
        b = attr(b, "id", self.id.as_str());
        if !self.from.is_empty() {
            b = attr(b, "from", self.from.as_str());
        }
        if !self.to.is_empty() {
            b = attr(b, "to", self.to.as_str());
        }
        if let Some(p) = &self.payload {
            b = b.append(p.clone());
        }
        if let Some(e) = &self.error {
            b = b.append(e.clone());
        }
        b.build()
    }
}

/// The bare part of a JID (`user@host/res` → `user@host`).
pub fn bare(jid: &str) -> &str {
    jid.split_once('/').map_or(jid, |(b, _)| b)
}

/// The resource part of a JID, if any.
pub fn resource(jid: &str) -> Option<&str> {
    jid.split_once('/').map(|(_, r)| r)
}

/// The first child of the payload-less iq, for callers that hold an Element.
pub fn payload_of(e: &Element) -> Option<&Element> {
    first_child(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::xml::{NS_CLIENT, NS_COMPONENT};

    #[test]
    fn parses_spec_who_request() {
        let e: Element = "<iq xmlns='jabber:client' id='dsps8' type='get' from='rob@nauseum.org/dspsclient' to='dsps.jabber.org/0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33'><query type='who' xmlns='jabber:iq:dsps'/></iq>".parse().unwrap();
        let iq = Iq::parse(&e).unwrap();
        assert_eq!(iq.kind, IqKind::Get);
        assert_eq!(iq.id, "dsps8");
        assert_eq!(iq.from, "rob@nauseum.org/dspsclient");
        assert_eq!(
            resource(&iq.to),
            Some("0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33")
        );
        assert_eq!(iq.dsps_type(), Some("who"));
    }

    #[test]
    fn error_reply_swaps_addresses_and_keeps_id() {
        let e: Element =
            "<iq xmlns='jabber:component:accept' id='x' type='set' from='a@b/c' to='d'><query xmlns='jabber:iq:dsps' type='bogus'/></iq>"
                .parse()
                .unwrap();
        let iq = Iq::parse(&e).unwrap();
        let r = iq.error_reply(DspsError::BadRequest, None, NS_COMPONENT);
        let el = r.to_element(NS_COMPONENT);
        let back = Iq::parse(&el).unwrap();
        assert_eq!(back.kind, IqKind::Error);
        assert_eq!(back.to, "a@b/c");
        assert_eq!(back.from, "d");
        assert_eq!(back.id, "x");
        assert_eq!(back.error_code(), Some(400));
    }

    #[test]
    fn rejects_non_iq_and_bad_type() {
        let m: Element = "<message xmlns='jabber:client'/>".parse().unwrap();
        assert_eq!(Iq::parse(&m), Err(IqParseError::NotIq));
        let b: Element = "<iq xmlns='jabber:client' type='x'/>".parse().unwrap();
        assert_eq!(Iq::parse(&b), Err(IqParseError::BadType));
        let _ = NS_CLIENT;
    }

    #[test]
    fn jid_parts() {
        assert_eq!(bare("a@b/c/d"), "a@b");
        assert_eq!(resource("a@b/c/d"), Some("c/d"));
        assert_eq!(resource("a@b"), None);
    }
}
