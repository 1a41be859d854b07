//! Errors a DSPS client can see, and their one mapping to `<error/>`.
//!
//! PROFILE.md item 10: every error carries the legacy XEP-0037 `code` *and* the
//! RFC 6120 condition with a text, e.g.
//! `<error code='405' type='cancel'><not-allowed/><text>Method Not Allowed</text></error>`.
//! xmpp-parsers' `StanzaError` cannot write `code`, so the element is built by hand.

use minidom::Element;

use super::xml::{attr, NS_STANZAS};

/// A DSPS error as seen by the requesting client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DspsError {
    /// 400: malformed or unknown request.
    BadRequest,
    /// 401: no such handshake, or a wrong key.
    NotAuthorized,
    /// 403: a slave used master rights.
    Forbidden,
    /// 404: no such resource, or not the owner of it (PROFILE 11).
    ItemNotFound,
    /// 405: method not allowed here (relay reconnect without credentials, unsupported feature).
    NotAllowed,
    /// 409: the client+DSPS pair is already connected.
    Conflict,
    /// 500: the answer would be larger than dsps may send (`component.max_stanza_size`).
    ResourceConstraint,
    /// 503: service unavailable (unknown iq, public stream full).
    ServiceUnavailable,
    /// 504: all relay destinations unreachable.
    RemoteServerTimeout,
}

impl DspsError {
    /// The legacy XEP-0037 error code.
    pub fn code(self) -> u16 {
        match self {
            DspsError::BadRequest => 400,
            DspsError::NotAuthorized => 401,
            DspsError::Forbidden => 403,
            DspsError::ItemNotFound => 404,
            DspsError::NotAllowed => 405,
            DspsError::Conflict => 409,
            DspsError::ResourceConstraint => 500,
            DspsError::ServiceUnavailable => 503,
            DspsError::RemoteServerTimeout => 504,
        }
    }

    /// The RFC 6120 defined condition element name.
    pub fn condition(self) -> &'static str {
        match self {
            DspsError::BadRequest => "bad-request",
            DspsError::NotAuthorized => "not-authorized",
            DspsError::Forbidden => "forbidden",
            DspsError::ItemNotFound => "item-not-found",
            DspsError::NotAllowed => "not-allowed",
            DspsError::Conflict => "conflict",
            DspsError::ResourceConstraint => "resource-constraint",
            DspsError::ServiceUnavailable => "service-unavailable",
            DspsError::RemoteServerTimeout => "remote-server-timeout",
        }
    }

    /// The RFC 6120 error type (XEP-0086 mapping of the legacy code).
    pub fn error_type(self) -> &'static str {
        match self {
            DspsError::BadRequest | DspsError::ItemNotFound => "modify",
            DspsError::NotAuthorized | DspsError::Forbidden => "auth",
            DspsError::NotAllowed | DspsError::Conflict | DspsError::ServiceUnavailable => "cancel",
            DspsError::ResourceConstraint | DspsError::RemoteServerTimeout => "wait",
        }
    }

    /// The XEP-0037 message text for the code.
    pub fn default_text(self) -> &'static str {
        match self {
            DspsError::BadRequest => "Bad Request",
            DspsError::NotAuthorized => "Unauthorized",
            DspsError::Forbidden => "Forbidden",
            DspsError::ItemNotFound => "Not Found",
            DspsError::NotAllowed => "Method Not Allowed",
            DspsError::Conflict => "Conflict",
            DspsError::ResourceConstraint => "Internal Server Error",
            DspsError::ServiceUnavailable => "Service Unavailable",
            DspsError::RemoteServerTimeout => "Gateway Timeout",
        }
    }

    /// Parses a legacy code back (client side).
    pub fn from_code(code: u16) -> Option<DspsError> {
        [
            DspsError::BadRequest,
            DspsError::NotAuthorized,
            DspsError::Forbidden,
            DspsError::ItemNotFound,
            DspsError::NotAllowed,
            DspsError::Conflict,
            DspsError::ResourceConstraint,
            DspsError::ServiceUnavailable,
            DspsError::RemoteServerTimeout,
        ]
        .into_iter()
        .find(|e| e.code() == code)
    }

    /// Renders the `<error/>` child in namespace `ns` (the stanza's namespace), with
    /// `text` or the default message.
    pub fn to_element(self, ns: &str, text: Option<&str>) -> Element {
        let text = text.unwrap_or(self.default_text());
        attr(
            attr(
                Element::builder("error", ns),
                "code",
                self.code().to_string(),
            ),
            "type",
            self.error_type(),
        )
        .append(Element::builder(self.condition(), NS_STANZAS).build())
        .append(Element::builder("text", NS_STANZAS).append(text).build())
        .build()
    }
}

impl std::fmt::Display for DspsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code(), self.default_text())
    }
}

impl std::error::Error for DspsError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::xml::{get_attr, NS_COMPONENT};

    #[test]
    fn error_element_carries_code_and_condition() {
        let e = DspsError::NotAllowed.to_element(NS_COMPONENT, None);
        assert_eq!(get_attr(&e, "code"), Some("405"));
        assert_eq!(get_attr(&e, "type"), Some("cancel"));
        assert!(e.has_child("not-allowed", NS_STANZAS));
        assert_eq!(
            e.get_child("text", NS_STANZAS).map(|t| t.text()),
            Some("Method Not Allowed".to_string())
        );
    }

    #[test]
    fn codes_round_trip() {
        for code in [400, 401, 403, 404, 405, 409, 500, 503, 504] {
            assert_eq!(DspsError::from_code(code).map(|e| e.code()), Some(code));
        }
        assert_eq!(DspsError::from_code(418), None);
    }
}
